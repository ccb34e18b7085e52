//! [`Engine`]: publishes, delivers, retries, reports to callbacks, dead-letters, fires
//! schedules, on a [`Clock`] it is given.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use qstash_receiver::{
    Clock, headers::CALLER_IP_HEADER, headers::NON_RETRYABLE_HEADER, headers::NON_RETRYABLE_STATUS,
    headers::SCHEDULE_ID_HEADER, headers::TOPIC_NAME_HEADER, retry, sign::new_id, time::unix_now,
};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Notify, Semaphore};

use crate::config::{Config, MAX_BODY_BYTES};
use crate::duration::answer_wait;
use crate::error::ApiError;
use crate::filter::{Fields, Filter};
use crate::options::{CallbackSpec, Options, Settings, canonical_name, check_url, is_framing};
use crate::record::{
    Answer, Attempt, DeadLetter, Event, EventState, MessageKind, RetryReason, Verdict,
};
use crate::state::{Dead, Msg, State, Task};

/// A message to publish: what `POST /v2/publish/{destination}` carries.
#[derive(Debug, Clone)]
pub struct Publish {
    /// A URL (`http://` or `https://`) or a URL group's name.
    pub destination: String,
    /// The publish headers (`Upstash-*`, `Content-Type`).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The queue to go through, if any.
    pub queue: Option<String>,
    /// The publisher's address, sent as `Upstash-Caller-Ip`.
    pub caller_ip: Option<String>,
}

impl Publish {
    /// A message to `destination` with `body`, no headers.
    #[must_use]
    pub fn new(destination: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            destination: destination.into(),
            headers: HeaderMap::new(),
            body: body.into(),
            queue: None,
            caller_ip: None,
        }
    }

    /// Adds a publish header, e.g. `("Upstash-Retries", "0")`.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// One message a publish created (or found, when deduplicated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its id.
    pub message_id: String,
    /// Its destination URL.
    pub url: String,
    /// Whether an earlier message with the same deduplication id answered for it.
    pub deduplicated: bool,
}

/// What a publish answers: one message for a URL, one per endpoint for a URL group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishAnswer {
    /// Published to a URL.
    Url(Published),
    /// Published to a URL group.
    Group(Vec<Published>),
}

impl PublishAnswer {
    /// The messages, one or many.
    #[must_use]
    pub fn messages(&self) -> &[Published] {
        match self {
            Self::Url(one) => std::slice::from_ref(one),
            Self::Group(many) => many,
        }
    }
}

/// An attempt to make: a snapshot of the message taken when it fell due.
#[derive(Debug)]
struct Job {
    id: String,
    kind: MessageKind,
    source_message_id: Option<String>,
    url: String,
    settings: Arc<Settings>,
    extra: HeaderMap,
    body: Bytes,
    retried: u32,
    queue_in_flight: Option<usize>,
    at_ms: u64,
}

/// The local QStash's engine: the state, the delivery loop and the clock.
///
/// Deliveries happen only when they fall due: on the system clock, [`Engine::run`] sleeps
/// until the next due time (no polling); on a manual clock, [`Engine::advance_to`] runs them.
pub struct Engine {
    config: Config,
    clock: Clock,
    client: reqwest::Client,
    state: Mutex<State>,
    wake: Notify,
    settled: Notify,
    slots: Arc<Semaphore>,
    /// A semaphore per destination origin, while deliveries to it are under way or waiting.
    destinations: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Engine {
    /// An engine with `config` on `clock`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built (no TLS provider), with the reason.
    pub fn new(config: Config, clock: Clock) -> Result<Arc<Self>, String> {
        #[cfg(feature = "https")]
        {
            // Another installed provider wins, which is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.limits.in_flight)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))?;
        Ok(Arc::new(Self {
            slots: Arc::new(Semaphore::new(config.limits.in_flight.max(1))),
            config,
            clock,
            client,
            state: Mutex::new(State::default()),
            destinations: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            settled: Notify::new(),
        }))
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The engine's clock.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The time on the engine's clock, unix milliseconds.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters more than stopping would; keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the driver: something new is on the timeline.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn scale(&self, delay: Duration) -> Duration {
        Duration::try_from_secs_f64(delay.as_secs_f64() * self.config.delay_scale)
            .unwrap_or(retry::MAX_BACKOFF)
    }

    // ---- publishing ----

    /// Publishes a message to a URL or a URL group.
    ///
    /// # Errors
    ///
    /// 400 for a malformed header or destination, 404 for an unknown URL group, 413 for a
    /// body over 1 MiB, 412 when a bound of `Limits` is reached.
    pub fn publish(&self, publish: Publish) -> Result<PublishAnswer, ApiError> {
        self.publish_from(publish, None)
    }

    pub(crate) fn publish_from(
        &self,
        publish: Publish,
        schedule_id: Option<&str>,
    ) -> Result<PublishAnswer, ApiError> {
        let now = self.now_ms();
        let answer = self.publish_in(&mut self.lock(), publish, schedule_id, now)?;
        self.wake.notify_one();
        Ok(answer)
    }

    /// Publishes with the state locked (a schedule fires with it locked).
    fn publish_in(
        &self,
        state: &mut State,
        publish: Publish,
        schedule_id: Option<&str>,
        now: u64,
    ) -> Result<PublishAnswer, ApiError> {
        if publish.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::too_large());
        }
        let options = Options::from_headers(&publish.headers).map_err(ApiError::bad_request)?;
        let limits = self.config.limits;
        let is_url = is_url(&publish.destination);
        let targets: Vec<(String, Option<String>)> = if is_url {
            check_url(&publish.destination).map_err(ApiError::bad_request)?;
            vec![(publish.destination.clone(), None)]
        } else {
            check_name(&publish.destination, "destination")?;
            let group = state.groups.get(&publish.destination).ok_or_else(|| {
                ApiError::not_found(format!("url group {} not found", publish.destination))
            })?;
            group
                .endpoints
                .iter()
                .map(|e| (e.url.clone(), e.name.clone()))
                .collect()
        };
        let dedupe_key = dedupe_key(&publish, &options);
        if let Some(key) = &dedupe_key {
            if let Some(answer) = state.remembered(key, now) {
                let published: Vec<Published> = answer
                    .into_iter()
                    .map(|(message_id, url)| Published {
                        message_id,
                        url,
                        deduplicated: true,
                    })
                    .collect();
                return Ok(answer_for(is_url, published));
            }
        }
        if state.messages.len() + targets.len() > limits.messages {
            return Err(ApiError::full(
                "messages waiting or being delivered",
                limits.messages,
                "messages",
            ));
        }
        if state.stored_bytes + publish.body.len() * targets.len() > limits.stored_bytes {
            return Err(ApiError::full(
                "bytes of waiting messages' bodies",
                limits.stored_bytes,
                "stored_bytes",
            ));
        }
        if let Some(queue) = &publish.queue {
            check_name(queue, "queue name")?;
            ensure_queue(state, queue, limits.queues, now)?;
        }
        if let Some(spec) = &options.flow {
            if !state.flow_update(spec, limits.flow_control_keys) {
                return Err(ApiError::full(
                    "flow-control keys",
                    limits.flow_control_keys,
                    "flow_control_keys",
                ));
            }
            // Its settings may have grown: waiting messages may go.
            state.flow_wake(&spec.key, now);
        }
        let flow = options.flow.clone().map(Arc::new);
        let not_before = match options.not_before_secs {
            Some(secs) => secs.saturating_mul(1000),
            None => now.saturating_add(millis(options.delay)),
        };
        let settings = Arc::new(options.settings.clone());
        let callback = options.callback.clone().map(Arc::new);
        let failure_callback = options.failure_callback.clone().map(Arc::new);
        let mut published = Vec::with_capacity(targets.len());
        for (url, endpoint_name) in targets {
            let msg = Msg {
                id: new_id("msg_"),
                kind: MessageKind::Message,
                source_message_id: None,
                url,
                topic: (!is_url).then(|| publish.destination.clone()),
                endpoint_name,
                queue: publish.queue.clone(),
                schedule_id: schedule_id.map(str::to_owned),
                body: publish.body.clone(),
                settings: settings.clone(),
                callback: callback.clone(),
                failure_callback: failure_callback.clone(),
                created_ms: now,
                not_before_ms: not_before,
                retried: 0,
                caller_ip: publish.caller_ip.clone(),
                labels: options.labels.clone(),
                due: None,
                in_flight: false,
                cancelled: false,
                holds_slot: false,
                flow: flow.clone(),
                holds_flow: false,
            };
            published.push(Published {
                message_id: msg.id.clone(),
                url: msg.url.clone(),
                deduplicated: false,
            });
            self.insert_message(state, msg, now);
        }
        if let Some(key) = dedupe_key {
            let expires = now.saturating_add(millis(self.config.deduplication_window));
            let answer = published
                .iter()
                .map(|p| (p.message_id.clone(), p.url.clone()))
                .collect();
            state.remember(limits.deduplication_ids, key, expires, answer);
        }
        Ok(answer_for(is_url, published))
    }

    /// Stores `msg` and puts it on the timeline at its not-before time.
    pub(crate) fn insert_message(&self, state: &mut State, mut msg: Msg, now: u64) {
        let key = state.schedule(msg.not_before_ms, Task::Deliver(msg.id.clone()));
        msg.due = Some(key);
        state.stored_bytes += msg.body.len();
        let mut event = State::msg_event(&msg, EventState::Created, now);
        event.next_delivery_time = Some(msg.not_before_ms);
        state.event(self.config.limits.events, event);
        state.messages.insert(msg.id.clone(), msg);
    }

    // ---- running ----

    /// Runs deliveries as they fall due on the system clock, until the engine is dropped
    /// elsewhere and this future with it. Sleeps while nothing is due.
    pub async fn run(self: Arc<Self>) {
        loop {
            let wake = self.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let now = self.now_ms();
            let (jobs, next) = self.take_due(now);
            for job in jobs {
                let engine = self.clone();
                tokio::spawn(async move { engine.execute(job).await });
            }
            match next {
                None => wake.await,
                Some(at) if at <= now => {}
                Some(at) => {
                    let sleep = tokio::time::sleep(Duration::from_millis(at - now));
                    tokio::select! {
                        () = sleep => {}
                        () = wake => {}
                    }
                }
            }
        }
    }

    /// Moves a manual clock to `target_ms`, running every delivery, retry, callback and
    /// schedule that falls due on the way, in order of due time, each instant's attempts
    /// concurrently (as far as their queues allow), each to its end. Returns how many attempts
    /// were made. On the system clock, it only runs what is due now.
    pub async fn advance_to(self: &Arc<Self>, target_ms: u64) -> usize {
        let mut made = 0;
        loop {
            let next = self.lock().next_due();
            let Some(at) = next.filter(|at| *at <= target_ms) else {
                break;
            };
            self.clock.advance_to(at);
            let (jobs, _) = self.take_due(self.now_ms().max(at));
            made += jobs.len();
            let mut running = tokio::task::JoinSet::new();
            for job in jobs {
                let engine = self.clone();
                running.spawn(async move { engine.execute(job).await });
            }
            while running.join_next().await.is_some() {}
            if !self.clock.is_manual() {
                break;
            }
        }
        self.clock.advance_to(target_ms);
        made
    }

    /// Waits until no message is due, waiting or under way (schedules aside).
    pub async fn settled(&self) {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.lock().is_settled() {
                return;
            }
            settled.await;
        }
    }

    /// Takes what is due at `now`: fires schedules, admits queued messages as their queues
    /// allow, and returns the attempts to make and the next due time after them.
    fn take_due(&self, now: u64) -> (Vec<Job>, Option<u64>) {
        let mut state = self.lock();
        let mut jobs = Vec::new();
        // A schedule firing or a queue slot can put more on the timeline at `now`.
        loop {
            let due = state.pop_due(now);
            if due.is_empty() {
                break;
            }
            for task in due {
                match task {
                    Task::Fire(id) => self.fire(&mut state, &id, now),
                    Task::FlowWake(key) => {
                        if let Some(flow) = state.flows.get_mut(&key) {
                            flow.wake_due = None;
                        }
                        state.flow_wake(&key, now);
                    }
                    Task::Deliver(id) => {
                        if let Some(job) = self.admit(&mut state, &id, now) {
                            jobs.push(job);
                        }
                    }
                }
            }
        }
        state.in_flight += jobs.len();
        (jobs, state.next_due())
    }

    /// Starts an attempt of message `id`, or parks it in its queue.
    fn admit(&self, state: &mut State, id: &str, now: u64) -> Option<Job> {
        let msg = state.messages.get_mut(id)?;
        msg.due = None;
        // Flow control first: a message waiting for its key holds no queue slot.
        if let Some(key) = msg.flow.as_ref().map(|f| f.key.clone()) {
            if !state.flow_enter(&key, id, now) {
                if let Some(msg) = state.messages.get(id).cloned() {
                    if let Some(msg) = state.messages.get_mut(id) {
                        msg.holds_slot = false;
                    }
                    state.release_slot(&msg, now);
                }
                return None;
            }
        }
        let msg = state.messages.get_mut(id)?;
        let mut queue_in_flight = None;
        if let Some(name) = msg.queue.clone() {
            let holds = msg.holds_slot;
            // A queue deleted since cancels its messages; one still here gets it back rather
            // than waiting forever.
            let queue = state
                .queues
                .entry(name.clone())
                .or_insert_with(|| new_queue(1, now));
            if queue.paused {
                // A retry that held its slot through its backoff waits like the rest.
                if holds {
                    queue.in_flight = queue.in_flight.saturating_sub(1);
                }
                queue.waiting.push_back(id.to_owned());
                if let Some(msg) = state.messages.get_mut(id) {
                    msg.holds_slot = false;
                }
                state.flow_leave(id, true, now);
                return None;
            }
            if !holds {
                if queue.in_flight >= queue.parallelism {
                    queue.waiting.push_back(id.to_owned());
                    state.flow_leave(id, true, now);
                    return None;
                }
                queue.in_flight += 1;
            }
            queue_in_flight = Some(queue.in_flight);
            let msg = state.messages.get_mut(id)?;
            msg.holds_slot = true;
        }
        let msg = state.messages.get_mut(id)?;
        msg.in_flight = true;
        let mut extra = HeaderMap::new();
        if let Some(value) = msg.schedule_id.as_deref().and_then(header_value) {
            extra.insert(SCHEDULE_ID_HEADER, value);
        }
        if let Some(value) = msg.topic.as_deref().and_then(header_value) {
            extra.insert(TOPIC_NAME_HEADER, value);
        }
        if let Some(value) = msg.caller_ip.as_deref().and_then(header_value) {
            extra.insert(CALLER_IP_HEADER, value);
        }
        let job = Job {
            id: msg.id.clone(),
            kind: msg.kind,
            source_message_id: msg.source_message_id.clone(),
            url: msg.url.clone(),
            settings: msg.settings.clone(),
            extra,
            body: msg.body.clone(),
            retried: msg.retried,
            queue_in_flight,
            at_ms: now,
        };
        if msg.retried == 0 {
            let event = State::msg_event(msg, EventState::Active, now);
            state.event(self.config.limits.events, event);
        }
        Some(job)
    }

    /// Makes one attempt and decides what follows.
    async fn execute(self: Arc<Self>, job: Job) {
        // The destination's slot first: deliveries waiting for a slow destination hold none
        // of the global slots the others need.
        let origin = origin_of(&job.url);
        let destination = self.destination(&origin);
        let destination_permit = destination.clone().acquire_owned().await.ok();
        let permit = self.slots.clone().acquire_owned().await.ok();
        let mut headers = job.settings.headers.clone();
        for (name, value) in &job.extra {
            headers.insert(name.clone(), value.clone());
        }
        let upstash = self.config.signer.delivery_headers_at(
            &job.url,
            &job.body,
            &job.id,
            job.retried,
            unix_now(),
        );
        for (name, value) in upstash {
            if let Some(name) = name {
                headers.insert(name, value);
            }
        }
        let timeout = job.settings.timeout.unwrap_or(self.config.default_timeout);
        let answer = self.send(&job, headers.clone(), timeout).await;
        drop(permit);
        drop(destination_permit);
        self.release_destination(&origin, destination);
        let attempt = self.complete(job, headers, answer);
        if let Some(observer) = &self.config.observer {
            observer(&attempt);
        }
        self.wake.notify_one();
        self.settled.notify_waiters();
    }

    /// The semaphore of deliveries to `origin`.
    fn destination(&self, origin: &str) -> Arc<Semaphore> {
        let mut map = self
            .destinations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(origin.to_owned())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.limits.in_flight_per_destination.max(1),
                ))
            })
            .clone()
    }

    /// Forgets `origin`'s semaphore once nothing uses it (the map stays bounded).
    fn release_destination(&self, origin: &str, semaphore: Arc<Semaphore>) {
        let mut map = self
            .destinations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(semaphore);
        if map.get(origin).is_some_and(|s| Arc::strong_count(s) == 1) {
            map.remove(origin);
        }
    }

    async fn send(
        &self,
        job: &Job,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let mut request = self
            .client
            .request(job.settings.method.clone(), &job.url)
            .headers(headers)
            .timeout(timeout);
        if !job.body.is_empty() {
            request = request.body(job.body.clone());
        }
        let mut response = request.send().await.map_err(|e| chain(&e))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| chain(&e))? {
            let room = MAX_BODY_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        Ok(Answer {
            status,
            headers,
            body: body.freeze(),
        })
    }

    /// Records the attempt and applies its outcome: delivered, retried, or dead-lettered.
    fn complete(&self, job: Job, sent: HeaderMap, answer: Result<Answer, String>) -> Attempt {
        let now = self.now_ms();
        let limits = self.config.limits;
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        // The attempt is over: its flow-control slot goes to the next in line.
        state.flow_leave(&job.id, false, now);
        let max_retries = job.settings.retries;
        let success = matches!(&answer, Ok(a) if a.status.is_success());
        let non_retryable = matches!(&answer, Ok(a) if is_non_retryable(a));
        let cancelled = state.messages.get(&job.id).is_none_or(|m| m.cancelled);
        let verdict = if cancelled {
            Verdict::Cancelled
        } else if success {
            Verdict::Delivered
        } else if non_retryable {
            Verdict::NonRetryable
        } else if job.retried >= max_retries {
            Verdict::NoRetriesLeft
        } else {
            let next = job.retried + 1;
            let asked = answer
                .as_ref()
                .ok()
                .and_then(|a| answer_wait(&a.headers, Clock::system().now_ms()));
            let (delay, reason) = match (asked, &job.settings.retry_delay) {
                (Some(wait), _) => (wait, RetryReason::AnswerAsked(wait)),
                (None, Some(expr)) => (expr.delay(job.retried), RetryReason::Expression),
                (None, None) => (retry::backoff(next), RetryReason::Backoff(next)),
            };
            Verdict::Retry {
                after: self.scale(delay),
                reason,
            }
        };
        let attempt = Attempt {
            message_id: job.id.clone(),
            kind: job.kind,
            source_message_id: job.source_message_id.clone(),
            url: job.url.clone(),
            method: job.settings.method.clone(),
            headers: sent,
            body: job.body.clone(),
            retried: job.retried,
            max_retries,
            at_ms: job.at_ms,
            answered_ms: now,
            answer,
            verdict,
            queue_in_flight: job.queue_in_flight,
        };
        state.record_attempt(limits.attempts, limits.attempt_bytes, attempt.clone());
        if let Some(msg) = state.messages.get_mut(&job.id) {
            msg.in_flight = false;
        }
        if !success {
            if let Some(msg) = state.messages.get(&job.id) {
                let mut event = State::msg_event(msg, EventState::Error, now);
                match &attempt.answer {
                    Ok(a) => event.response_status = Some(a.status.as_u16()),
                    Err(e) => event.error = Some(e.clone()),
                }
                state.event(limits.events, event);
            }
        }
        // One callback per attempt, whatever its outcome (a cancelled message's aside).
        let callback = (verdict != Verdict::Cancelled)
            .then(|| state.messages.get(&job.id))
            .flatten()
            .and_then(|msg| {
                let spec = msg.callback.clone()?;
                let body = callback_body(msg, &attempt, None);
                Some(self.callback_msg(msg, &spec, MessageKind::Callback, body, now))
            });
        if let Some(callback) = callback {
            self.insert_message(&mut state, callback, now);
        }
        match verdict {
            Verdict::Retry { after, .. } => {
                let at = now.saturating_add(millis(after));
                let key = state.schedule(at, Task::Deliver(job.id.clone()));
                if let Some(msg) = state.messages.get_mut(&job.id) {
                    msg.retried += 1;
                    msg.due = Some(key);
                    let mut event = State::msg_event(msg, EventState::Retry, now);
                    event.next_delivery_time = Some(at);
                    state.event(limits.events, event);
                }
            }
            Verdict::Cancelled => {
                if let Some(msg) = state.remove_message(&job.id, now) {
                    state.release_slot(&msg, now);
                }
            }
            Verdict::Delivered => {
                if let Some(msg) = state.remove_message(&job.id, now) {
                    state.release_slot(&msg, now);
                    let event = State::msg_event(&msg, EventState::Delivered, now);
                    state.event(limits.events, event);
                }
            }
            Verdict::NoRetriesLeft | Verdict::NonRetryable => {
                if let Some(msg) = state.remove_message(&job.id, now) {
                    state.release_slot(&msg, now);
                    let event = State::msg_event(&msg, EventState::Failed, now);
                    state.event(limits.events, event);
                    let dlq_id = format!("{now}-{}", state.next_seq());
                    if let Some(spec) = &msg.failure_callback {
                        let body = callback_body(&msg, &attempt, Some(&dlq_id));
                        let callback =
                            self.callback_msg(&msg, spec, MessageKind::FailureCallback, body, now);
                        self.insert_message(&mut state, callback, now);
                    }
                    let (status, headers, body) = match &attempt.answer {
                        Ok(a) => (
                            Some(a.status.as_u16()),
                            answer_header_lists(&a.headers),
                            a.body.clone(),
                        ),
                        Err(_) => (None, BTreeMap::new(), Bytes::new()),
                    };
                    state.push_dead(
                        limits.dlq,
                        limits.dlq_bytes,
                        Dead {
                            dlq_id,
                            msg,
                            status,
                            headers,
                            body,
                        },
                    );
                }
            }
        }
        let retry_scheduled = matches!(verdict, Verdict::Retry { .. });
        drop(state);
        if retry_scheduled || !success {
            self.wake.notify_one();
        }
        attempt
    }

    /// The callback message reporting on `msg`.
    fn callback_msg(
        &self,
        msg: &Msg,
        spec: &CallbackSpec,
        kind: MessageKind,
        body: Vec<u8>,
        now: u64,
    ) -> Msg {
        Msg {
            id: new_id("msg_"),
            kind,
            source_message_id: Some(msg.id.clone()),
            url: spec.url.clone(),
            topic: None,
            endpoint_name: None,
            queue: None,
            schedule_id: None,
            body: Bytes::from(body),
            settings: Arc::new(spec.settings.clone()),
            callback: None,
            failure_callback: None,
            created_ms: now,
            not_before_ms: now.saturating_add(millis(spec.delay)),
            retried: 0,
            caller_ip: msg.caller_ip.clone(),
            labels: Vec::new(),
            due: None,
            in_flight: false,
            cancelled: false,
            holds_slot: false,
            flow: None,
            holds_flow: false,
        }
    }

    // ---- schedules ----

    /// Fires schedule `id` at `now`: publishes its message, puts its next time on the timeline.
    fn fire(&self, state: &mut State, id: &str, now: u64) {
        let Some(schedule) = state.schedules.get_mut(id) else {
            return;
        };
        schedule.due = None;
        if schedule.paused {
            return;
        }
        schedule.last_ms = Some(now);
        let publish = Publish {
            destination: schedule.destination.clone(),
            headers: schedule.headers.clone(),
            body: schedule.body.clone(),
            queue: schedule.queue.clone(),
            caller_ip: schedule.caller_ip.clone(),
        };
        let next = next_fire(&schedule.cron, now);
        if let Some(at) = next {
            let key = state.schedule(at, Task::Fire(id.to_owned()));
            if let Some(schedule) = state.schedules.get_mut(id) {
                schedule.due = Some(key);
            }
        }
        // A URL group cannot be deleted while a schedule publishes to it; a schedule that
        // meets a full engine skips a beat, and its view counts it.
        if self.publish_in(state, publish, Some(id), now).is_err() {
            if let Some(schedule) = state.schedules.get_mut(id) {
                schedule.skipped += 1;
            }
        }
    }

    // ---- inspection ----

    /// Every attempt kept (the most recent [`Limits::attempts`](crate::Limits)), oldest first.
    #[must_use]
    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock().attempts.iter().cloned().collect()
    }

    /// The dead-letter queue, oldest first.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock()
            .dlq
            .iter()
            .map(|dead| DeadLetter {
                dlq_id: dead.dlq_id.clone(),
                message_id: dead.msg.id.clone(),
                url: dead.msg.url.clone(),
                response_status: dead.status,
                response_body: dead.body.clone(),
                retried: dead.msg.retried,
                body: dead.msg.body.clone(),
            })
            .collect()
    }

    /// The event log, oldest first.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.iter().cloned().collect()
    }

    /// Ids of the messages waiting or being delivered.
    #[must_use]
    pub fn pending(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().messages.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// Ids of the schedules.
    #[must_use]
    pub fn schedule_ids(&self) -> Vec<String> {
        self.lock().schedules.keys().cloned().collect()
    }

    /// When the next delivery, retry or schedule falls due (unix milliseconds).
    #[must_use]
    pub fn next_due_ms(&self) -> Option<u64> {
        self.lock().next_due()
    }

    /// Cancels messages: the ids given, or all when `ids` is `None`. Returns how many.
    #[must_use]
    pub fn cancel(&self, ids: Option<&[String]>) -> usize {
        let ids: Vec<String> = match ids {
            Some(ids) => ids.to_vec(),
            None => self.select(&Filter::default(), usize::MAX),
        };
        self.cancel_ids(ids)
    }

    /// The ids of up to `count` messages (not callbacks, not cancelled) that pass `filter`,
    /// oldest first.
    pub(crate) fn select(&self, filter: &Filter, count: usize) -> Vec<String> {
        let state = self.lock();
        let mut matching: Vec<&Msg> = state
            .messages
            .values()
            .filter(|m| m.kind == MessageKind::Message && !m.cancelled)
            .filter(|m| {
                filter.matches(&Fields {
                    message_id: &m.id,
                    url: &m.url,
                    topic: m.topic.as_deref(),
                    schedule: m.schedule_id.as_deref(),
                    queue: m.queue.as_deref(),
                    caller_ip: m.caller_ip.as_deref(),
                    labels: &m.labels,
                    flow_key: m.flow.as_ref().map(|f| f.key.as_str()),
                    state: None,
                    response_status: None,
                    time_ms: m.created_ms,
                })
            })
            .collect();
        matching.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        matching
            .into_iter()
            .take(count)
            .map(|m| m.id.clone())
            .collect()
    }

    fn cancel_ids(&self, ids: Vec<String>) -> usize {
        let now = self.now_ms();
        let mut state = self.lock();
        let mut cancelled = 0;
        for id in ids {
            let Some(msg) = state.messages.get_mut(&id) else {
                continue;
            };
            if msg.cancelled {
                continue;
            }
            cancelled += 1;
            msg.cancelled = true;
            let requested = State::msg_event(msg, EventState::CancelRequested, now);
            let done = State::msg_event(msg, EventState::Canceled, now);
            let in_flight = msg.in_flight;
            state.event(self.config.limits.events, requested);
            state.event(self.config.limits.events, done);
            // One under way is dropped when its attempt ends.
            if !in_flight {
                if let Some(msg) = state.remove_message(&id, now) {
                    state.release_slot(&msg, now);
                }
            }
        }
        drop(state);
        self.wake.notify_one();
        self.settled.notify_waiters();
        cancelled
    }
}

/// Whether a destination is a URL rather than a URL group's name.
pub(crate) fn is_url(destination: &str) -> bool {
    let starts = |prefix: &str| {
        destination
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    starts("http://") || starts("https://")
}

/// Names of URL groups, queues and schedules: 1 to 128 of `A-Z a-z 0-9 - _ .`.
pub(crate) fn check_name(name: &str, what: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid {what} {name:?}: use 1 to 128 of A-Z a-z 0-9 - _ . (a URL must start with http:// or https://)"
        )))
    }
}

pub(crate) fn new_queue(parallelism: usize, now: u64) -> crate::state::Queue {
    crate::state::Queue {
        parallelism: parallelism.max(1),
        paused: false,
        in_flight: 0,
        waiting: std::collections::VecDeque::new(),
        created_ms: now,
        updated_ms: now,
    }
}

/// The next time `cron` fires after `now_ms`.
pub(crate) fn next_fire(cron: &croner::Cron, now_ms: u64) -> Option<u64> {
    let now = chrono::DateTime::from_timestamp_millis(i64::try_from(now_ms).ok()?)?;
    let next = cron.find_next_occurrence(&now, false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

fn answer_for(is_url: bool, mut published: Vec<Published>) -> PublishAnswer {
    if is_url && published.len() == 1 {
        PublishAnswer::Url(published.remove(0))
    } else {
        PublishAnswer::Group(published)
    }
}

fn dedupe_key(publish: &Publish, options: &Options) -> Option<String> {
    let scope = publish.queue.as_deref().unwrap_or("");
    if let Some(id) = &options.deduplication_id {
        return Some(format!("id\n{}\n{scope}\n{id}", publish.destination));
    }
    if !options.content_based_deduplication {
        return None;
    }
    let mut hash = Sha256::new();
    hash.update(publish.destination.as_bytes());
    hash.update([0]);
    hash.update(&publish.body);
    for (name, values) in &options.settings.header_lists {
        hash.update([0]);
        hash.update(name.as_bytes());
        for value in values {
            hash.update([1]);
            hash.update(value.as_bytes());
        }
    }
    if let Some(content_type) = options.settings.headers.get(http::header::CONTENT_TYPE) {
        hash.update([2]);
        hash.update(content_type.as_bytes());
    }
    let digest = hash.finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    Some(format!("content\n{scope}\n{hex}"))
}

fn header_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// Whether the answer is QStash's "do not retry": 489 with `Upstash-NonRetryable-Error: true`.
fn is_non_retryable(answer: &Answer) -> bool {
    answer.status == StatusCode::from_u16(NON_RETRYABLE_STATUS).unwrap_or(StatusCode::OK)
        && answer
            .headers
            .get(NON_RETRYABLE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Headers as `{Canonical-Name: [values]}`.
pub(crate) fn header_lists(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(canonical_name(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    map
}

/// An answer's headers as `{Canonical-Name: [values]}`, less the framing and hop-by-hop ones
/// (they described the connection to the destination, not the answer).
pub(crate) fn answer_header_lists(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut kept = headers.clone();
    for name in headers.keys() {
        if is_framing(name.as_str()) {
            kept.remove(name);
        }
    }
    header_lists(&kept)
}

/// `scheme://host:port` of a URL: what deliveries share a concurrency bound by.
fn origin_of(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.origin().ascii_serialization())
}

/// Creates queue `name` (parallelism 1) if it does not exist.
pub(crate) fn ensure_queue(
    state: &mut State,
    name: &str,
    limit: usize,
    now: u64,
) -> Result<(), ApiError> {
    if !state.queues.contains_key(name) {
        if state.queues.len() >= limit {
            return Err(ApiError::full("queues", limit, "queues"));
        }
        state.queues.insert(name.to_owned(), new_queue(1, now));
    }
    Ok(())
}

/// The JSON body QStash POSTs to a callback: the attempt's answer and the source message.
fn callback_body(msg: &Msg, attempt: &Attempt, dlq_id: Option<&str>) -> Vec<u8> {
    let (status, header, body) = match &attempt.answer {
        Ok(answer) => (
            answer.status.as_u16(),
            answer_header_lists(&answer.headers),
            STANDARD.encode(&answer.body),
        ),
        Err(_) => (0, BTreeMap::new(), String::new()),
    };
    let mut json = serde_json::json!({
        "status": status,
        "header": header,
        "body": body,
        "retried": attempt.retried,
        "maxRetries": attempt.max_retries,
        "sourceMessageId": msg.id,
        "url": msg.url,
        "method": msg.settings.method.as_str(),
        "sourceHeader": msg.settings.header_lists,
        "sourceBody": STANDARD.encode(&msg.body),
        "notBefore": msg.not_before_ms.to_string(),
        "createdAt": msg.created_ms.to_string(),
    });
    if let Some(object) = json.as_object_mut() {
        let optional = [
            ("topicName", msg.topic.as_deref()),
            ("endpointName", msg.endpoint_name.as_deref()),
            ("scheduleId", msg.schedule_id.as_deref()),
            ("callerIP", msg.caller_ip.as_deref()),
            ("queueName", msg.queue.as_deref()),
            ("label", msg.labels.first().map(String::as_str)),
            ("dlqId", dlq_id),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                object.insert(name.to_owned(), serde_json::Value::from(value));
            }
        }
        if !msg.labels.is_empty() {
            object.insert("labels".to_owned(), serde_json::json!(msg.labels));
        }
    }
    serde_json::to_vec(&json).unwrap_or_default()
}

/// An error and its sources, `: `-separated (reqwest's own message hides the cause).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
