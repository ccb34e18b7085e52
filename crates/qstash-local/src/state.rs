//! The engine's state: messages, the timeline of what falls due, queues, URL groups,
//! schedules, the DLQ, the event and attempt logs, deduplication ids. Plain data, no I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::flow::{Flow, FlowSpec};
use crate::options::{CallbackSpec, Settings};
use crate::record::{Attempt, Event, EventState, MessageKind};

/// What falls due on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Task {
    Deliver(String),
    Fire(String),
    /// A flow-control key's rate window ends: its waiting messages may go.
    FlowWake(String),
}

/// A message waiting, being delivered, or waiting for a retry.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) id: String,
    pub(crate) kind: MessageKind,
    pub(crate) source_message_id: Option<String>,
    pub(crate) url: String,
    pub(crate) topic: Option<String>,
    pub(crate) endpoint_name: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) schedule_id: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) settings: Arc<Settings>,
    pub(crate) callback: Option<Arc<CallbackSpec>>,
    pub(crate) failure_callback: Option<Arc<CallbackSpec>>,
    pub(crate) created_ms: u64,
    pub(crate) not_before_ms: u64,
    pub(crate) retried: u32,
    pub(crate) caller_ip: Option<String>,
    pub(crate) labels: Vec<String>,
    pub(crate) due: Option<(u64, u64)>,
    pub(crate) in_flight: bool,
    pub(crate) cancelled: bool,
    pub(crate) holds_slot: bool,
    /// Its flow-control key and settings.
    pub(crate) flow: Option<Arc<FlowSpec>>,
    /// Whether it holds a slot of its flow-control key (from its start to its attempt's end).
    pub(crate) holds_flow: bool,
}

/// A message in the dead-letter queue, with the last answer.
#[derive(Debug, Clone)]
pub(crate) struct Dead {
    pub(crate) dlq_id: String,
    pub(crate) msg: Msg,
    pub(crate) status: Option<u16>,
    pub(crate) headers: BTreeMap<String, Vec<String>>,
    pub(crate) body: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub(crate) parallelism: usize,
    pub(crate) paused: bool,
    pub(crate) in_flight: usize,
    pub(crate) waiting: VecDeque<String>,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) name: Option<String>,
    pub(crate) url: String,
}

#[derive(Debug, Clone)]
pub(crate) struct UrlGroup {
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub(crate) id: String,
    pub(crate) destination: String,
    pub(crate) cron_text: String,
    pub(crate) cron: croner::Cron,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) queue: Option<String>,
    pub(crate) caller_ip: Option<String>,
    pub(crate) created_ms: u64,
    pub(crate) paused: bool,
    pub(crate) due: Option<(u64, u64)>,
    pub(crate) last_ms: Option<u64>,
    /// Times it fell due and published nothing (the engine was full).
    pub(crate) skipped: u64,
}

/// A publish's answer kept for its deduplication window.
#[derive(Debug, Clone)]
pub(crate) struct Remembered {
    pub(crate) expires_ms: u64,
    pub(crate) answer: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    seq: u64,
    pub(crate) timeline: BTreeMap<(u64, u64), Task>,
    pub(crate) messages: HashMap<String, Msg>,
    pub(crate) stored_bytes: usize,
    pub(crate) in_flight: usize,
    pub(crate) queues: HashMap<String, Queue>,
    pub(crate) flows: BTreeMap<String, Flow>,
    pub(crate) groups: BTreeMap<String, UrlGroup>,
    pub(crate) schedules: BTreeMap<String, Schedule>,
    pub(crate) dlq: VecDeque<Dead>,
    /// Bytes of the dead letters' bodies (their own budget: a full DLQ never blocks publishing).
    pub(crate) dlq_bytes: usize,
    pub(crate) events: VecDeque<Event>,
    pub(crate) attempts: VecDeque<Attempt>,
    attempt_bytes: usize,
    pub(crate) dedupe: HashMap<String, Remembered>,
    pub(crate) dedupe_order: VecDeque<(u64, String)>,
}

fn dead_size(dead: &Dead) -> usize {
    dead.msg.body.len() + dead.body.len()
}

fn attempt_size(attempt: &Attempt) -> usize {
    attempt.body.len() + attempt.answer.as_ref().map_or(0, |a| a.body.len())
}

impl State {
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Puts `task` on the timeline at `at_ms`; returns its key.
    pub(crate) fn schedule(&mut self, at_ms: u64, task: Task) -> (u64, u64) {
        let key = (at_ms, self.next_seq());
        self.timeline.insert(key, task);
        key
    }

    /// The earliest due time on the timeline.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.timeline.keys().next().map(|(at, _)| *at)
    }

    /// Takes every task due at or before `now_ms`, earliest first.
    pub(crate) fn pop_due(&mut self, now_ms: u64) -> Vec<Task> {
        let later = self.timeline.split_off(&(now_ms.saturating_add(1), 0));
        let due = std::mem::replace(&mut self.timeline, later);
        due.into_values().collect()
    }

    /// Nothing due and nothing under way (schedules aside, which never end).
    pub(crate) fn is_settled(&self) -> bool {
        self.in_flight == 0
            && self
                .timeline
                .values()
                .all(|task| matches!(task, Task::Fire(_)))
            && self.queues.values().all(|q| q.waiting.is_empty())
            && self.flows.values().all(|f| f.waiting.is_empty())
    }

    pub(crate) fn event(&mut self, limit: usize, event: Event) {
        if limit == 0 {
            return;
        }
        while self.events.len() >= limit {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Keeps `attempt`, dropping the oldest past `limit` attempts or `byte_limit` bytes of
    /// bodies sent and received.
    pub(crate) fn record_attempt(&mut self, limit: usize, byte_limit: usize, attempt: Attempt) {
        if limit == 0 {
            return;
        }
        let size = attempt_size(&attempt);
        while self.attempts.len() >= limit
            || (!self.attempts.is_empty() && self.attempt_bytes + size > byte_limit)
        {
            if let Some(old) = self.attempts.pop_front() {
                self.attempt_bytes = self.attempt_bytes.saturating_sub(attempt_size(&old));
            }
        }
        self.attempt_bytes += size;
        self.attempts.push_back(attempt);
    }

    /// An event about `msg`.
    pub(crate) fn msg_event(msg: &Msg, state: EventState, time: u64) -> Event {
        Event {
            time,
            message_id: msg.id.clone(),
            state,
            url: msg.url.clone(),
            topic_name: msg.topic.clone(),
            endpoint_name: msg.endpoint_name.clone(),
            queue_name: msg.queue.clone(),
            schedule_id: msg.schedule_id.clone(),
            labels: msg.labels.clone(),
            caller_ip: msg.caller_ip.clone(),
            flow_control_key: msg.flow.as_ref().map(|f| f.key.clone()),
            response_status: None,
            error: None,
            next_delivery_time: None,
        }
    }

    /// Frees `msg`'s queue slot, if it holds one, and lets the next waiting message go.
    pub(crate) fn release_slot(&mut self, msg: &Msg, now_ms: u64) {
        if !msg.holds_slot {
            return;
        }
        let Some(name) = &msg.queue else { return };
        let Some(queue) = self.queues.get_mut(name) else {
            return;
        };
        queue.in_flight = queue.in_flight.saturating_sub(1);
        self.wake_queue(name, now_ms);
    }

    /// Puts as many of `name`'s waiting messages on the timeline as it has free slots.
    pub(crate) fn wake_queue(&mut self, name: &str, now_ms: u64) {
        loop {
            let Some(queue) = self.queues.get_mut(name) else {
                return;
            };
            if queue.paused || queue.in_flight >= queue.parallelism {
                return;
            }
            let Some(id) = queue.waiting.pop_front() else {
                return;
            };
            queue.in_flight += 1;
            let key = self.schedule(now_ms, Task::Deliver(id.clone()));
            if let Some(msg) = self.messages.get_mut(&id) {
                msg.holds_slot = true;
                msg.due = Some(key);
            }
        }
    }

    /// Takes `id` off the timeline and out of its queue; returns the message.
    pub(crate) fn remove_message(&mut self, id: &str, now_ms: u64) -> Option<Msg> {
        // A flow-control slot it held (woken but not started) goes to the next in line.
        self.flow_leave(id, true, now_ms);
        let msg = self.messages.remove(id)?;
        if let Some(key) = msg.due {
            self.timeline.remove(&key);
        }
        if let Some(queue) = msg.queue.as_ref().and_then(|q| self.queues.get_mut(q)) {
            queue.waiting.retain(|waiting| waiting != id);
        }
        if let Some(flow) = msg.flow.as_ref().and_then(|f| self.flows.get_mut(&f.key)) {
            flow.waiting.retain(|waiting| waiting != id);
        }
        self.stored_bytes = self.stored_bytes.saturating_sub(msg.body.len());
        Some(msg)
    }

    /// Adds a dead letter, dropping the oldest past `limit` letters or `byte_limit` bytes of
    /// bodies (the message's and the last answer's). Returns how many were dropped.
    pub(crate) fn push_dead(&mut self, limit: usize, byte_limit: usize, dead: Dead) -> usize {
        let size = dead_size(&dead);
        let mut dropped = 0;
        while !self.dlq.is_empty()
            && (self.dlq.len() >= limit.max(1) || self.dlq_bytes + size > byte_limit)
        {
            if let Some(old) = self.dlq.pop_front() {
                self.dlq_bytes = self.dlq_bytes.saturating_sub(dead_size(&old));
                dropped += 1;
            }
        }
        self.dlq_bytes += size;
        self.dlq.push_back(dead);
        dropped
    }

    /// Removes the dead letter `dlq_id`.
    pub(crate) fn take_dead(&mut self, dlq_id: &str) -> Option<Dead> {
        let at = self.dlq.iter().position(|d| d.dlq_id == dlq_id)?;
        let dead = self.dlq.remove(at)?;
        self.dlq_bytes = self.dlq_bytes.saturating_sub(dead_size(&dead));
        Some(dead)
    }

    /// The answer remembered for `key`, if still within its window.
    pub(crate) fn remembered(&mut self, key: &str, now_ms: u64) -> Option<Vec<(String, String)>> {
        while let Some((expires, _)) = self.dedupe_order.front() {
            if *expires > now_ms {
                break;
            }
            if let Some((_, old)) = self.dedupe_order.pop_front() {
                if self
                    .dedupe
                    .get(&old)
                    .is_some_and(|r| r.expires_ms <= now_ms)
                {
                    self.dedupe.remove(&old);
                }
            }
        }
        self.dedupe
            .get(key)
            .filter(|r| r.expires_ms > now_ms)
            .map(|r| r.answer.clone())
    }

    pub(crate) fn remember(
        &mut self,
        limit: usize,
        key: String,
        expires_ms: u64,
        answer: Vec<(String, String)>,
    ) {
        if limit == 0 {
            return;
        }
        while self.dedupe.len() >= limit {
            match self.dedupe_order.pop_front() {
                Some((_, old)) => {
                    self.dedupe.remove(&old);
                }
                None => break,
            }
        }
        self.dedupe_order.push_back((expires_ms, key.clone()));
        self.dedupe.insert(key, Remembered { expires_ms, answer });
    }
}
