//! Flow control: messages sharing an `Upstash-Flow-Control-Key` are delivered at most
//! `parallelism` at a time and at most `rate` per `period`, on the same wait-list machinery as
//! queues. A message takes its key's slot when it starts an attempt and gives it back when the
//! attempt ends (a retry waits for a slot again, and counts against the rate again).

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};

use crate::state::{State, Task};

/// What a message's `Upstash-Flow-Control-Key` and `-Value` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlowSpec {
    pub(crate) key: String,
    pub(crate) parallelism: Option<usize>,
    pub(crate) rate: Option<u32>,
    pub(crate) period: Duration,
}

/// The default rate period: one second.
const DEFAULT_PERIOD: Duration = Duration::from_secs(1);

impl FlowSpec {
    /// Reads `key` and `value` (`parallelism=N, rate=N, period=Xs`, at least one of the first
    /// two).
    pub(crate) fn parse(key: Option<&str>, value: Option<&str>) -> Result<Option<Self>, String> {
        let (key, value) = match (key, value) {
            (None, None) => return Ok(None),
            (Some(key), Some(value)) if !key.is_empty() => (key, value),
            (Some(_), _) => {
                return Err(
                    "Upstash-Flow-Control-Key needs an Upstash-Flow-Control-Value \
                            (parallelism=N, rate=N, period=Xs)"
                        .to_owned(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "Upstash-Flow-Control-Value needs an Upstash-Flow-Control-Key".to_owned(),
                );
            }
        };
        if key.len() > 256 {
            return Err("Upstash-Flow-Control-Key is longer than 256 bytes".to_owned());
        }
        let mut spec = Self {
            key: key.to_owned(),
            parallelism: None,
            rate: None,
            period: DEFAULT_PERIOD,
        };
        let invalid = |part: &str| format!("invalid Upstash-Flow-Control-Value part {part:?}");
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, number) = part.split_once('=').ok_or_else(|| invalid(part))?;
            let number = number.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "parallelism" => {
                    spec.parallelism = Some(
                        number
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| invalid(part))?,
                    );
                }
                "rate" => {
                    spec.rate = Some(
                        number
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| invalid(part))?,
                    );
                }
                "period" => {
                    spec.period = crate::duration::parse_duration(number)
                        .filter(|p| !p.is_zero())
                        .ok_or_else(|| invalid(part))?;
                }
                _ => return Err(invalid(part)),
            }
        }
        if spec.parallelism.is_none() && spec.rate.is_none() {
            return Err(
                "Upstash-Flow-Control-Value needs parallelism=N or rate=N (or both)".to_owned(),
            );
        }
        Ok(Some(spec))
    }
}

/// A flow-control key's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flow {
    pub(crate) parallelism: Option<usize>,
    pub(crate) rate: Option<u32>,
    pub(crate) period_ms: u64,
    pub(crate) in_flight: usize,
    pub(crate) waiting: VecDeque<String>,
    pub(crate) window_start_ms: u64,
    pub(crate) window_count: u32,
    pub(crate) paused: bool,
    pub(crate) pinned_parallelism: bool,
    pub(crate) pinned_rate: bool,
    pub(crate) wake_due: Option<(u64, u64)>,
}

impl Flow {
    fn is_idle(&self) -> bool {
        self.in_flight == 0
            && self.waiting.is_empty()
            && !self.paused
            && !self.pinned_parallelism
            && !self.pinned_rate
    }

    /// Starts a new rate window when the current one is over.
    fn roll(&mut self, now_ms: u64) {
        if now_ms >= self.window_start_ms.saturating_add(self.period_ms.max(1)) {
            self.window_start_ms = now_ms;
            self.window_count = 0;
        }
    }

    fn parallelism_full(&self) -> bool {
        self.parallelism.is_some_and(|p| self.in_flight >= p)
    }

    fn rate_spent(&self) -> bool {
        self.rate.is_some_and(|r| self.window_count >= r)
    }

    /// The key's view, as `GET /v2/flowControl/{key}` answers it.
    pub(crate) fn json(&self, key: &str, now_ms: u64) -> Value {
        let mut flow = self.clone();
        flow.roll(now_ms);
        json!({
            "flowControlKey": key,
            "waitListSize": flow.waiting.len(),
            "parallelismMax": flow.parallelism.unwrap_or(0),
            "parallelismCount": flow.in_flight,
            "rateMax": flow.rate.unwrap_or(0),
            "rateCount": flow.window_count,
            "ratePeriod": flow.period_ms / 1000,
            "ratePeriodStart": flow.window_start_ms / 1000,
            "isPaused": flow.paused,
            "isPinnedParallelism": flow.pinned_parallelism,
            "isPinnedRate": flow.pinned_rate,
        })
    }
}

impl State {
    /// Creates or updates `spec.key` with the message's settings (a pinned setting stays).
    /// `false` when a new key would pass `limit` keys (idle keys are forgotten first).
    pub(crate) fn flow_update(&mut self, spec: &FlowSpec, limit: usize) -> bool {
        if !self.flows.contains_key(&spec.key) && self.flows.len() >= limit {
            self.flows.retain(|_, flow| !flow.is_idle());
            if self.flows.len() >= limit {
                return false;
            }
        }
        let flow = self.flows.entry(spec.key.clone()).or_default();
        if !flow.pinned_parallelism {
            flow.parallelism = spec.parallelism;
        }
        if !flow.pinned_rate {
            flow.rate = spec.rate;
            flow.period_ms = u64::try_from(spec.period.as_millis()).unwrap_or(u64::MAX);
        }
        true
    }

    /// Lets message `id` of flow `key` start an attempt (taking a slot and a unit of rate), or
    /// parks it in the key's wait list. Returns whether it may start.
    pub(crate) fn flow_enter(&mut self, key: &str, id: &str, now_ms: u64) -> bool {
        if self.messages.get(id).is_some_and(|m| m.holds_flow) {
            return true;
        }
        // In line behind the key's waiting messages; `flow_wake` puts it back on the timeline
        // holding a slot as soon as it is its turn (at once, when nothing holds it).
        self.flows
            .entry(key.to_owned())
            .or_default()
            .waiting
            .push_back(id.to_owned());
        self.flow_wake(key, now_ms);
        false
    }

    /// Gives back message `id`'s slot (and, when `undo_rate`, its unit of rate: it did not
    /// start after all), and lets the next waiting message go.
    pub(crate) fn flow_leave(&mut self, id: &str, undo_rate: bool, now_ms: u64) {
        let Some(msg) = self.messages.get_mut(id) else {
            return;
        };
        if !msg.holds_flow {
            return;
        }
        msg.holds_flow = false;
        let Some(key) = msg.flow.as_ref().map(|f| f.key.clone()) else {
            return;
        };
        if let Some(flow) = self.flows.get_mut(&key) {
            flow.in_flight = flow.in_flight.saturating_sub(1);
            if undo_rate {
                flow.window_count = flow.window_count.saturating_sub(1);
            }
        }
        self.flow_wake(&key, now_ms);
    }

    /// Puts as many of `key`'s waiting messages on the timeline as its slots and rate allow,
    /// each holding its slot; when the rate is spent, wakes again when the window ends.
    pub(crate) fn flow_wake(&mut self, key: &str, now_ms: u64) {
        loop {
            let Some(flow) = self.flows.get_mut(key) else {
                return;
            };
            flow.roll(now_ms);
            if flow.paused || flow.parallelism_full() || flow.waiting.is_empty() {
                return;
            }
            if flow.rate_spent() {
                self.flow_wake_later(key, now_ms);
                return;
            }
            let Some(id) = flow.waiting.pop_front() else {
                return;
            };
            flow.in_flight += 1;
            flow.window_count += 1;
            let at = self.schedule(now_ms, Task::Deliver(id.clone()));
            if let Some(msg) = self.messages.get_mut(&id) {
                msg.holds_flow = true;
                msg.due = Some(at);
            }
        }
    }

    /// Puts a wake-up for `key` at the end of its rate window, if its rate is what holds it.
    fn flow_wake_later(&mut self, key: &str, now_ms: u64) {
        let Some(flow) = self.flows.get(key) else {
            return;
        };
        if flow.paused || flow.wake_due.is_some() || !flow.rate_spent() {
            return;
        }
        let at = flow
            .window_start_ms
            .saturating_add(flow.period_ms.max(1))
            .max(now_ms);
        let due = self.schedule(at, Task::FlowWake(key.to_owned()));
        if let Some(flow) = self.flows.get_mut(key) {
            flow.wake_due = Some(due);
        }
    }

    /// Pauses or resumes `key`; a resumed key lets its waiting messages go.
    pub(crate) fn flow_pause(&mut self, key: &str, paused: bool, now_ms: u64) -> bool {
        let Some(flow) = self.flows.get_mut(key) else {
            return false;
        };
        flow.paused = paused;
        if !paused {
            self.flow_wake(key, now_ms);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_read_as_the_clients_write_it() {
        let spec = FlowSpec::parse(Some("k"), Some("parallelism=2, rate=10, period=1m"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (spec.parallelism, spec.rate, spec.period),
            (Some(2), Some(10), Duration::from_secs(60))
        );
        let rate_only = FlowSpec::parse(Some("k"), Some("rate=3")).unwrap().unwrap();
        assert_eq!(
            (rate_only.parallelism, rate_only.period),
            (None, DEFAULT_PERIOD)
        );
        assert_eq!(FlowSpec::parse(None, None).unwrap(), None);
        for (key, value) in [
            (Some("k"), None),
            (None, Some("rate=1")),
            (Some("k"), Some("period=1s")),
            (Some("k"), Some("parallelism=0")),
            (Some("k"), Some("rate=x")),
            (Some("k"), Some("burst=3")),
            (Some("k"), Some("rate=1, period=0s")),
        ] {
            assert!(FlowSpec::parse(key, value).is_err(), "{key:?} {value:?}");
        }
    }
}
