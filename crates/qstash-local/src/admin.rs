//! The engine's resources besides publishing: messages, the DLQ, queues, URL groups,
//! schedules. JSON views are shaped as the official clients read them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::engine::{
    Engine, Publish, PublishAnswer, check_name, ensure_queue, is_url, new_queue, next_fire,
};
use crate::error::ApiError;
use crate::filter::{Fields, Filter};
use crate::options::{Options, check_url};
use crate::record::MessageKind;
use crate::state::{Dead, Endpoint, Msg, Schedule, Task, UrlGroup};

fn insert_some(object: &mut Map<String, Value>, name: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        object.insert(name.to_owned(), value.into());
    }
}

fn body_fields(object: &mut Map<String, Value>, body: &Bytes, text: &str, base64: &str) {
    if body.is_empty() {
        return;
    }
    match std::str::from_utf8(body) {
        Ok(utf8) => object.insert(text.to_owned(), Value::from(utf8)),
        Err(_) => object.insert(base64.to_owned(), Value::from(STANDARD.encode(body))),
    };
}

/// A message as `GET /v2/messages/{id}` shows it.
pub(crate) fn message_json(msg: &Msg) -> Value {
    let mut object = Map::new();
    object.insert("messageId".into(), msg.id.clone().into());
    object.insert("url".into(), msg.url.clone().into());
    object.insert("method".into(), msg.settings.method.as_str().into());
    object.insert("header".into(), json!(msg.settings.header_lists));
    body_fields(&mut object, &msg.body, "body", "bodyBase64");
    object.insert("maxRetries".into(), msg.settings.retries.into());
    object.insert("retried".into(), msg.retried.into());
    object.insert("notBefore".into(), msg.not_before_ms.into());
    object.insert("createdAt".into(), msg.created_ms.into());
    insert_some(&mut object, "topicName", msg.topic.clone());
    insert_some(&mut object, "endpointName", msg.endpoint_name.clone());
    insert_some(&mut object, "queueName", msg.queue.clone());
    insert_some(&mut object, "scheduleId", msg.schedule_id.clone());
    // The Python client reads `callerIP`, the TypeScript client's type says `callerIp`.
    insert_some(&mut object, "callerIP", msg.caller_ip.clone());
    insert_some(&mut object, "callerIp", msg.caller_ip.clone());
    insert_some(
        &mut object,
        "callback",
        msg.callback.as_ref().map(|c| c.url.clone()),
    );
    insert_some(
        &mut object,
        "failureCallback",
        msg.failure_callback.as_ref().map(|c| c.url.clone()),
    );
    insert_some(
        &mut object,
        "retryDelayExpression",
        msg.settings
            .retry_delay
            .as_ref()
            .map(|e| e.as_str().to_owned()),
    );
    if let Some(first) = msg.labels.first() {
        object.insert("label".into(), first.clone().into());
        object.insert("labels".into(), json!(msg.labels));
    }
    if let Some(flow) = &msg.flow {
        object.insert("flowControlKey".into(), flow.key.clone().into());
        insert_some(&mut object, "parallelism", flow.parallelism);
        insert_some(&mut object, "rate", flow.rate);
        if flow.rate.is_some() {
            object.insert("period".into(), flow.period.as_secs().into());
        }
    }
    Value::Object(object)
}

fn dead_json(dead: &Dead) -> Value {
    let mut value = message_json(&dead.msg);
    if let Some(object) = value.as_object_mut() {
        object.insert("dlqId".into(), dead.dlq_id.clone().into());
        // 0 when no answer arrived: the clients read the field unconditionally.
        object.insert("responseStatus".into(), dead.status.unwrap_or(0).into());
        object.insert("responseHeader".into(), json!(dead.headers));
        body_fields(object, &dead.body, "responseBody", "responseBodyBase64");
    }
    value
}

/// What a dead letter shows to a filter.
fn dead_fields(dead: &Dead) -> Fields<'_> {
    let msg = &dead.msg;
    Fields {
        message_id: &msg.id,
        url: &msg.url,
        topic: msg.topic.as_deref(),
        schedule: msg.schedule_id.as_deref(),
        queue: msg.queue.as_deref(),
        caller_ip: msg.caller_ip.as_deref(),
        labels: &msg.labels,
        flow_key: msg.flow.as_ref().map(|f| f.key.as_str()),
        state: None,
        response_status: dead.status,
        time_ms: msg.created_ms,
    }
}

/// 412 when schedules publish to URL group `group`, naming them.
fn schedules_using(state: &crate::state::State, group: &str) -> Result<(), ApiError> {
    let ids: Vec<&str> = state
        .schedules
        .values()
        .filter(|s| s.destination == group)
        .map(|s| s.id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        http::StatusCode::PRECONDITION_FAILED,
        format!(
            "url group {group} is the destination of schedule(s) {}: delete them first",
            ids.join(", ")
        ),
    ))
}

fn queue_json(name: &str, queue: &crate::state::Queue) -> Value {
    json!({
        "name": name,
        "parallelism": queue.parallelism,
        "paused": queue.paused,
        "lag": queue.waiting.len(),
        "createdAt": queue.created_ms,
        "updatedAt": queue.updated_ms,
    })
}

fn group_json(name: &str, group: &UrlGroup) -> Value {
    let endpoints: Vec<Value> = group
        .endpoints
        .iter()
        .map(|e| {
            let mut object = Map::new();
            object.insert("url".into(), e.url.clone().into());
            insert_some(&mut object, "name", e.name.clone());
            Value::Object(object)
        })
        .collect();
    json!({
        "name": name,
        "createdAt": group.created_ms,
        "updatedAt": group.updated_ms,
        "endpoints": endpoints,
    })
}

fn schedule_json(schedule: &Schedule) -> Value {
    let options = Options::from_headers(&schedule.headers).ok();
    let mut object = Map::new();
    object.insert("scheduleId".into(), schedule.id.clone().into());
    object.insert("destination".into(), schedule.destination.clone().into());
    object.insert("cron".into(), schedule.cron_text.clone().into());
    object.insert("createdAt".into(), schedule.created_ms.into());
    object.insert("isPaused".into(), schedule.paused.into());
    body_fields(&mut object, &schedule.body, "body", "bodyBase64");
    insert_some(&mut object, "queueName", schedule.queue.clone());
    insert_some(&mut object, "callerIP", schedule.caller_ip.clone());
    insert_some(&mut object, "lastScheduleTime", schedule.last_ms);
    if schedule.skipped > 0 {
        object.insert("skippedFires".into(), schedule.skipped.into());
    }
    insert_some(
        &mut object,
        "nextScheduleTime",
        schedule.due.map(|(at, _)| at),
    );
    if let Some(options) = options {
        let s = &options.settings;
        object.insert("method".into(), s.method.as_str().into());
        object.insert("header".into(), json!(s.header_lists));
        object.insert("retries".into(), s.retries.into());
        if !options.delay.is_zero() {
            object.insert("delay".into(), options.delay.as_secs().into());
        }
        insert_some(&mut object, "timeout", s.timeout.map(|t| t.as_secs()));
        if let Some(first) = options.labels.first() {
            object.insert("label".into(), first.clone().into());
            object.insert("labels".into(), json!(options.labels));
        }
        insert_some(&mut object, "callback", options.callback.map(|c| c.url));
        insert_some(
            &mut object,
            "failureCallback",
            options.failure_callback.map(|c| c.url),
        );
        insert_some(
            &mut object,
            "retryDelayExpression",
            s.retry_delay.as_ref().map(|e| e.as_str().to_owned()),
        );
    }
    Value::Object(object)
}

/// Parses a cron expression as QStash takes it: five fields, UTC (`CRON_TZ=UTC` allowed).
fn parse_cron(text: &str) -> Result<croner::Cron, ApiError> {
    let mut pattern = text.trim();
    if let Some(rest) = pattern.strip_prefix("CRON_TZ=") {
        let (zone, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if !matches!(zone, "UTC" | "Etc/UTC" | "GMT") {
            return Err(ApiError::bad_request(format!(
                "invalid Upstash-Cron: the local QStash runs schedules in UTC only, not {zone}"
            )));
        }
        pattern = rest.trim();
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| ApiError::bad_request(format!("invalid Upstash-Cron {text:?}: {e}")))
}

impl Engine {
    /// `GET /v2/messages/{id}`.
    pub(crate) fn message_view(&self, id: &str) -> Result<Value, ApiError> {
        self.lock()
            .messages
            .get(id)
            .filter(|m| m.kind == MessageKind::Message && !m.cancelled)
            .map(message_json)
            .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))
    }

    /// `GET /v2/dlq`: newest first, `count` from `cursor` (an offset), the dead letters with
    /// one of `ids` (when given) that pass `filter`.
    pub(crate) fn dlq_view(
        &self,
        ids: &[String],
        filter: &Filter,
        cursor: usize,
        count: usize,
    ) -> Value {
        let state = self.lock();
        let matching: Vec<&Dead> = state
            .dlq
            .iter()
            .rev()
            .filter(|d| ids.is_empty() || ids.contains(&d.dlq_id))
            .filter(|d| filter.matches(&dead_fields(d)))
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(cursor)
            .take(count)
            .map(|d| dead_json(d))
            .collect();
        let mut object = Map::new();
        object.insert("messages".into(), Value::Array(page));
        if cursor + count < matching.len() {
            object.insert("cursor".into(), (cursor + count).to_string().into());
        }
        Value::Object(object)
    }

    /// `GET /v2/dlq/{id}`.
    pub(crate) fn dead_view(&self, dlq_id: &str) -> Result<Value, ApiError> {
        self.lock()
            .dlq
            .iter()
            .find(|d| d.dlq_id == dlq_id)
            .map(dead_json)
            .ok_or_else(|| ApiError::not_found(format!("dlq message {dlq_id} not found")))
    }

    /// Deletes dead letters; returns how many.
    pub(crate) fn dlq_delete(&self, ids: &[String]) -> usize {
        let mut state = self.lock();
        ids.iter()
            .filter(|id| state.take_dead(id).is_some())
            .count()
    }

    /// The ids of up to `count` dead letters, oldest first from `cursor` (an offset), that
    /// pass `filter`, and the cursor of the next page (`None` at the end).
    pub(crate) fn dlq_select(
        &self,
        filter: &Filter,
        cursor: usize,
        count: usize,
    ) -> (Vec<String>, Option<usize>) {
        let state = self.lock();
        let matching: Vec<&Dead> = state
            .dlq
            .iter()
            .filter(|d| filter.matches(&dead_fields(d)))
            .collect();
        let ids = matching
            .iter()
            .skip(cursor)
            .take(count)
            .map(|d| d.dlq_id.clone())
            .collect();
        let next = (cursor + count < matching.len()).then_some(cursor + count);
        (ids, next)
    }

    /// Publishes dead letters again as new messages, removing them from the DLQ.
    pub(crate) fn dlq_retry(&self, ids: &[String]) -> Result<Vec<String>, ApiError> {
        let now = self.now_ms();
        let mut state = self.lock();
        if let Some(missing) = ids
            .iter()
            .find(|id| !state.dlq.iter().any(|d| &d.dlq_id == *id))
        {
            return Err(ApiError::not_found(format!(
                "dlq message {missing} not found"
            )));
        }
        let limits = self.config().limits;
        // A queue deleted since comes back, as an enqueue creates it (before anything moves,
        // so a refusal loses nothing).
        let missing: std::collections::BTreeSet<String> = state
            .dlq
            .iter()
            .filter(|d| ids.contains(&d.dlq_id))
            .filter_map(|d| d.msg.queue.clone())
            .filter(|q| !state.queues.contains_key(q))
            .collect();
        if state.queues.len() + missing.len() > limits.queues {
            return Err(ApiError::full("queues", limits.queues, "queues"));
        }
        for queue in missing {
            ensure_queue(&mut state, &queue, limits.queues, now)?;
        }
        let mut created = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(dead) = state.take_dead(id) else {
                continue;
            };
            let mut msg = dead.msg;
            msg.id = qstash_receiver::sign::new_id("msg_");
            msg.retried = 0;
            msg.created_ms = now;
            msg.not_before_ms = now;
            msg.holds_slot = false;
            msg.in_flight = false;
            msg.cancelled = false;
            created.push(msg.id.clone());
            self.insert_message(&mut state, msg, now);
        }
        drop(state);
        self.wake();
        Ok(created)
    }

    // ---- flow control ----

    /// `GET /v2/flowControl/{key}`.
    pub(crate) fn flow_view(&self, key: &str) -> Result<Value, ApiError> {
        let now = self.now_ms();
        self.lock()
            .flows
            .get(key)
            .map(|f| f.json(key, now))
            .ok_or_else(|| ApiError::not_found(format!("flow-control key {key} not found")))
    }

    /// `GET /v2/flowControl`: every key.
    pub(crate) fn flows_view(&self) -> Value {
        let now = self.now_ms();
        let state = self.lock();
        Value::Array(state.flows.iter().map(|(k, f)| f.json(k, now)).collect())
    }

    /// `GET /v2/globalParallelism`.
    pub(crate) fn global_parallelism_view(&self) -> Value {
        json!({
            "parallelismMax": self.config().limits.in_flight,
            "parallelismCount": self.lock().in_flight,
        })
    }

    /// `POST /v2/flowControl/{key}/{action}`: pause, resume, pin, unpin, resetRate.
    pub(crate) fn flow_action(
        &self,
        key: &str,
        action: &str,
        query: &[(String, String)],
    ) -> Result<(), ApiError> {
        let now = self.now_ms();
        let mut state = self.lock();
        if !state.flows.contains_key(key) {
            return Err(ApiError::not_found(format!(
                "flow-control key {key} not found"
            )));
        }
        let number = |name: &str| -> Result<Option<u64>, ApiError> {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| {
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| ApiError::bad_request(format!("invalid {name} {v:?}")))
                })
                .transpose()
        };
        let flag = |name: &str| query.iter().any(|(k, v)| k == name && v == "true");
        match action {
            "pause" | "resume" => {
                state.flow_pause(key, action == "pause", now);
            }
            "pin" => {
                let (parallelism, rate, period) =
                    (number("parallelism")?, number("rate")?, number("period")?);
                if let Some(flow) = state.flows.get_mut(key) {
                    if let Some(p) = parallelism {
                        flow.parallelism = Some(usize::try_from(p).unwrap_or(usize::MAX));
                        flow.pinned_parallelism = true;
                    }
                    if rate.is_some() || period.is_some() {
                        if let Some(r) = rate {
                            flow.rate = Some(u32::try_from(r).unwrap_or(u32::MAX));
                        }
                        if let Some(p) = period {
                            flow.period_ms = p.saturating_mul(1000);
                        }
                        flow.pinned_rate = true;
                    }
                }
                state.flow_wake(key, now);
            }
            "unpin" => {
                if let Some(flow) = state.flows.get_mut(key) {
                    if flag("parallelism") {
                        flow.pinned_parallelism = false;
                    }
                    if flag("rate") {
                        flow.pinned_rate = false;
                    }
                }
            }
            "resetRate" => {
                if let Some(flow) = state.flows.get_mut(key) {
                    flow.window_start_ms = now;
                    flow.window_count = 0;
                }
                state.flow_wake(key, now);
            }
            other => {
                return Err(ApiError::not_found(format!(
                    "no flow-control action {other:?} (pause, resume, pin, unpin, resetRate)"
                )));
            }
        }
        drop(state);
        self.wake();
        Ok(())
    }

    // ---- queues ----

    /// Creates or updates queue `name` with `parallelism` (at least 1).
    ///
    /// # Errors
    ///
    /// 400 for a bad name or a parallelism of 0, 412 past [`Limits::queues`](crate::Limits).
    pub fn upsert_queue(
        &self,
        name: &str,
        parallelism: usize,
        paused: bool,
    ) -> Result<(), ApiError> {
        check_name(name, "queue name")?;
        if parallelism == 0 {
            return Err(ApiError::bad_request(
                "invalid parallelism 0: a queue delivers at least 1 message at a time",
            ));
        }
        let now = self.now_ms();
        let mut state = self.lock();
        let limit = self.config().limits.queues;
        if !state.queues.contains_key(name) && state.queues.len() >= limit {
            return Err(ApiError::full("queues", limit, "queues"));
        }
        let queue = state
            .queues
            .entry(name.to_owned())
            .or_insert_with(|| new_queue(parallelism, now));
        queue.parallelism = parallelism.max(1);
        queue.paused = paused;
        queue.updated_ms = now;
        state.wake_queue(name, now);
        drop(state);
        self.wake();
        Ok(())
    }

    pub(crate) fn queues_view(&self) -> Value {
        let state = self.lock();
        let mut names: Vec<&String> = state.queues.keys().collect();
        names.sort();
        Value::Array(
            names
                .into_iter()
                .map(|n| queue_json(n, &state.queues[n]))
                .collect(),
        )
    }

    pub(crate) fn queue_view(&self, name: &str) -> Result<Value, ApiError> {
        let state = self.lock();
        state
            .queues
            .get(name)
            .map(|q| queue_json(name, q))
            .ok_or_else(|| ApiError::not_found(format!("queue {name} not found")))
    }

    /// Deletes a queue and cancels its messages: waiting, in a retry's backoff, or (when
    /// their attempt ends) under way. Returns how many were cancelled.
    pub(crate) fn queue_delete(&self, name: &str) -> Result<usize, ApiError> {
        let state = self.lock();
        if !state.queues.contains_key(name) {
            return Err(ApiError::not_found(format!("queue {name} not found")));
        }
        let ids: Vec<String> = state
            .messages
            .values()
            .filter(|m| m.queue.as_deref() == Some(name) && !m.cancelled)
            .map(|m| m.id.clone())
            .collect();
        drop(state);
        let cancelled = self.cancel(Some(&ids));
        self.lock().queues.remove(name);
        Ok(cancelled)
    }

    pub(crate) fn queue_pause(&self, name: &str, paused: bool) -> Result<(), ApiError> {
        let now = self.now_ms();
        let mut state = self.lock();
        let queue = state
            .queues
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found(format!("queue {name} not found")))?;
        queue.paused = paused;
        queue.updated_ms = now;
        state.wake_queue(name, now);
        drop(state);
        self.wake();
        Ok(())
    }

    // ---- URL groups ----

    /// Adds endpoints `(name, url)` to URL group `group`, creating it; an endpoint with a URL
    /// already there is replaced.
    ///
    /// # Errors
    ///
    /// 400 for a bad group name or URL, 412 past the limits.
    pub fn add_endpoints(
        &self,
        group: &str,
        endpoints: &[(Option<String>, String)],
    ) -> Result<(), ApiError> {
        check_name(group, "url group name")?;
        for (_, url) in endpoints {
            check_url(url).map_err(ApiError::bad_request)?;
        }
        let limits = self.config().limits;
        let now = self.now_ms();
        let mut state = self.lock();
        if !state.groups.contains_key(group) && state.groups.len() >= limits.url_groups {
            return Err(ApiError::full(
                "url groups",
                limits.url_groups,
                "url_groups",
            ));
        }
        let entry = state
            .groups
            .entry(group.to_owned())
            .or_insert_with(|| UrlGroup {
                endpoints: Vec::new(),
                created_ms: now,
                updated_ms: now,
            });
        for (name, url) in endpoints {
            entry
                .endpoints
                .retain(|e| &e.url != url && (name.is_none() || &e.name != name));
            entry.endpoints.push(Endpoint {
                name: name.clone(),
                url: url.clone(),
            });
        }
        if entry.endpoints.len() > limits.endpoints_per_group {
            entry.endpoints.truncate(limits.endpoints_per_group);
            return Err(ApiError::full(
                "endpoints in a url group",
                limits.endpoints_per_group,
                "endpoints_per_group",
            ));
        }
        entry.updated_ms = now;
        Ok(())
    }

    /// Removes endpoints (by URL or by name) from a URL group; an emptied group is deleted.
    pub(crate) fn remove_endpoints(
        &self,
        group: &str,
        endpoints: &[(Option<String>, Option<String>)],
    ) -> Result<(), ApiError> {
        let now = self.now_ms();
        let mut state = self.lock();
        let entry = state
            .groups
            .get(group)
            .ok_or_else(|| ApiError::not_found(format!("url group {group} not found")))?;
        let kept: Vec<Endpoint> = entry
            .endpoints
            .iter()
            .filter(|e| {
                !endpoints.iter().any(|(name, url)| {
                    url.as_ref().is_some_and(|u| *u == e.url)
                        || name.as_ref().is_some_and(|n| Some(n) == e.name.as_ref())
                })
            })
            .cloned()
            .collect();
        if kept.is_empty() {
            // An emptied group is deleted, which its schedules would not survive.
            schedules_using(&state, group)?;
            state.groups.remove(group);
        } else if let Some(entry) = state.groups.get_mut(group) {
            entry.endpoints = kept;
            entry.updated_ms = now;
        }
        Ok(())
    }

    pub(crate) fn groups_view(&self) -> Value {
        let state = self.lock();
        Value::Array(state.groups.iter().map(|(n, g)| group_json(n, g)).collect())
    }

    pub(crate) fn group_view(&self, name: &str) -> Result<Value, ApiError> {
        let state = self.lock();
        state
            .groups
            .get(name)
            .map(|g| group_json(name, g))
            .ok_or_else(|| ApiError::not_found(format!("url group {name} not found")))
    }

    /// Deletes a URL group, unless a schedule publishes to it (412 naming the schedules).
    pub(crate) fn group_delete(&self, name: &str) -> Result<(), ApiError> {
        let mut state = self.lock();
        if !state.groups.contains_key(name) {
            return Err(ApiError::not_found(format!("url group {name} not found")));
        }
        schedules_using(&state, name)?;
        state.groups.remove(name);
        Ok(())
    }

    // ---- schedules ----

    /// Creates (or, with the same `Upstash-Schedule-Id`, replaces) a schedule that publishes
    /// `body` to `destination` with `headers` each time the `Upstash-Cron` expression in
    /// `headers` fires (UTC). Returns its id.
    ///
    /// # Errors
    ///
    /// 400 for a missing or bad cron expression, header or destination; 412 past
    /// [`Limits::schedules`](crate::Limits).
    pub fn create_schedule(
        &self,
        destination: &str,
        headers: HeaderMap,
        body: Bytes,
        caller_ip: Option<String>,
    ) -> Result<String, ApiError> {
        if body.len() > crate::config::MAX_BODY_BYTES {
            return Err(ApiError::too_large());
        }
        let options = Options::from_headers(&headers).map_err(ApiError::bad_request)?;
        let cron_text = options
            .cron
            .clone()
            .ok_or_else(|| ApiError::bad_request("the Upstash-Cron header is required"))?;
        let cron = parse_cron(&cron_text)?;
        if is_url(destination) {
            check_url(destination).map_err(ApiError::bad_request)?;
        } else {
            check_name(destination, "destination")?;
        }
        if let Some(queue) = &options.queue_name {
            check_name(queue, "queue name")?;
        }
        let id = match &options.schedule_id {
            Some(id) => {
                check_name(id, "schedule id")?;
                id.clone()
            }
            None => qstash_receiver::sign::new_id("scd_"),
        };
        let now = self.now_ms();
        let mut state = self.lock();
        if !is_url(destination) && !state.groups.contains_key(destination) {
            return Err(ApiError::not_found(format!(
                "url group {destination} not found"
            )));
        }
        let limit = self.config().limits.schedules;
        if !state.schedules.contains_key(&id) && state.schedules.len() >= limit {
            return Err(ApiError::full("schedules", limit, "schedules"));
        }
        let created_ms = match state.schedules.remove(&id) {
            Some(old) => {
                if let Some(key) = old.due {
                    state.timeline.remove(&key);
                }
                old.created_ms
            }
            None => now,
        };
        let due = next_fire(&cron, now).map(|at| state.schedule(at, Task::Fire(id.clone())));
        let queue = options.queue_name.clone();
        state.schedules.insert(
            id.clone(),
            Schedule {
                id: id.clone(),
                destination: destination.to_owned(),
                cron_text,
                cron,
                headers,
                body,
                queue,
                caller_ip,
                created_ms,
                paused: false,
                due,
                last_ms: None,
                skipped: 0,
            },
        );
        drop(state);
        self.wake();
        Ok(id)
    }

    pub(crate) fn schedules_view(&self) -> Value {
        let state = self.lock();
        Value::Array(state.schedules.values().map(schedule_json).collect())
    }

    pub(crate) fn schedule_view(&self, id: &str) -> Result<Value, ApiError> {
        self.lock()
            .schedules
            .get(id)
            .map(schedule_json)
            .ok_or_else(|| ApiError::not_found(format!("schedule {id} not found")))
    }

    pub(crate) fn schedule_delete(&self, id: &str) -> Result<(), ApiError> {
        let mut state = self.lock();
        let schedule = state
            .schedules
            .remove(id)
            .ok_or_else(|| ApiError::not_found(format!("schedule {id} not found")))?;
        if let Some(key) = schedule.due {
            state.timeline.remove(&key);
        }
        Ok(())
    }

    /// Pauses or resumes a schedule; a resumed one fires next at its next time from now.
    pub(crate) fn schedule_pause(&self, id: &str, paused: bool) -> Result<(), ApiError> {
        let now = self.now_ms();
        let mut state = self.lock();
        let schedule = state
            .schedules
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("schedule {id} not found")))?;
        schedule.paused = paused;
        let old = schedule.due.take();
        let next = (!paused).then(|| next_fire(&schedule.cron, now)).flatten();
        if let Some(key) = old {
            state.timeline.remove(&key);
        }
        if let Some(at) = next {
            let key = state.schedule(at, Task::Fire(id.to_owned()));
            if let Some(schedule) = state.schedules.get_mut(id) {
                schedule.due = Some(key);
            }
        }
        drop(state);
        self.wake();
        Ok(())
    }

    /// Publishes a batch: each element on its own, with its own result (a refused element
    /// refuses nothing else).
    ///
    /// # Errors
    ///
    /// 400 past [`Limits::batch`](crate::Limits) elements (nothing is published).
    pub(crate) fn publish_batch(
        &self,
        messages: Vec<Result<Publish, ApiError>>,
    ) -> Result<Vec<Result<PublishAnswer, ApiError>>, ApiError> {
        let limit = self.config().limits.batch;
        if messages.len() > limit {
            return Err(ApiError::bad_request(format!(
                "a batch holds at most {limit} messages (its limit Limits::batch)"
            )));
        }
        Ok(messages
            .into_iter()
            .map(|m| m.and_then(|m| self.publish(m)))
            .collect())
    }
}
