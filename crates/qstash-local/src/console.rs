//! The web console: a static page (HTML, CSS, one JavaScript module, embedded in the binary)
//! and the read-only views it needs beside QStash's own API.
//!
//! The page holds no data: it is served to anyone at `/console`, and reads everything through
//! `/v2/...` with the token, as the clients do. Its two views, `GET /v2/console/messages` (the
//! message list, built from the event log) and `GET /v2/console/messages/{id}` (one message
//! with its attempts, answers and callbacks), are routed by the API's handler behind the same
//! token check as every other `/v2/` route.

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::admin::message_json;
use crate::engine::{Engine, header_lists};
use crate::error::ApiError;
use crate::record::{Attempt, Event, EventState, MessageKind, RetryReason, Verdict};

/// The longest excerpt of an answer's body the console shows, in bytes.
const EXCERPT_BYTES: usize = 1024;

/// The most messages one list answer holds.
const MAX_LIST: usize = 500;

const INDEX_HTML: &str = include_str!("../console/index.html");
const CONSOLE_JS: &str = include_str!("../console/console.js");
const CONSOLE_CSS: &str = include_str!("../console/console.css");

/// The routes of the console's static shell: `/console` and its two assets.
pub(crate) fn routes() -> axum::Router {
    axum::Router::new()
        .route("/console", get(|| async { asset(INDEX_HTML, "text/html") }))
        .route(
            "/console/",
            get(|| async { asset(INDEX_HTML, "text/html") }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset(CONSOLE_JS, "text/javascript") }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset(CONSOLE_CSS, "text/css") }),
        )
}

fn asset(text: &'static str, kind: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("{kind}; charset=utf-8"))
            .unwrap_or(HeaderValue::from_static("text/plain")),
    );
    // Nothing outside this origin: no CDN, no inline script, no framing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    (StatusCode::OK, headers, text).into_response()
}

/// The console's address for a server at `base`: the token rides in the fragment, which the
/// browser never sends to a server (nor in a `Referer`); the page moves it to the tab's
/// `sessionStorage` and clears it from the address bar.
pub(crate) fn url(base: &str, token: &str) -> String {
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    format!("{base}/console#token={token}")
}

/// `GET /v2/console/{view}`: `messages` (filters `state`, `destination`, `label`, `queue`,
/// `count`) or `messages/{id}`.
pub(crate) fn view(
    engine: &Arc<Engine>,
    tail: &str,
    query: Option<&str>,
) -> Result<Value, ApiError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    match tail.split_once('/') {
        None if tail == "messages" => {
            let filter = Filter {
                state: get("state"),
                destination: get("destination"),
                label: get("label"),
                queue: get("queue"),
            };
            let count = get("count")
                .and_then(|c| c.parse().ok())
                .unwrap_or(100usize)
                .clamp(1, MAX_LIST);
            Ok(list(engine, &filter, count))
        }
        Some(("messages", id)) if !id.is_empty() => detail(engine, id),
        _ => Err(ApiError::not_found(format!("no console view {tail}"))),
    }
}

/// What the message list keeps.
struct Filter<'a> {
    state: Option<&'a str>,
    /// A substring of the destination URL.
    destination: Option<&'a str>,
    label: Option<&'a str>,
    queue: Option<&'a str>,
}

/// A message as the event log tells it: its latest state and where it went.
struct Summary {
    message_id: String,
    first: Event,
    last: Event,
    labels: Vec<String>,
    next_delivery_time: Option<u64>,
}

impl Summary {
    fn new(event: &Event) -> Self {
        Self {
            message_id: event.message_id.clone(),
            first: event.clone(),
            last: event.clone(),
            labels: event.labels.clone(),
            next_delivery_time: event.next_delivery_time,
        }
    }

    fn update(&mut self, event: &Event) {
        self.last = event.clone();
        if !event.labels.is_empty() {
            self.labels.clone_from(&event.labels);
        }
        match event.state {
            EventState::Created | EventState::Retry => {
                self.next_delivery_time = event.next_delivery_time;
            }
            EventState::Error | EventState::Active => {}
            _ => self.next_delivery_time = None,
        }
    }

    fn keeps(&self, filter: &Filter<'_>) -> bool {
        filter.state.is_none_or(|s| self.last.state.as_str() == s)
            && filter.destination.is_none_or(|d| self.last.url.contains(d))
            && filter
                .label
                .is_none_or(|l| self.labels.iter().any(|label| label == l))
            && filter
                .queue
                .is_none_or(|q| self.last.queue_name.as_deref() == Some(q))
    }
}

/// Every message the event log knows, oldest event first.
fn summaries(events: &[Event]) -> Vec<Summary> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<Summary> = Vec::new();
    for event in events {
        match index.get(event.message_id.as_str()) {
            Some(&i) => out[i].update(event),
            None => {
                index.insert(&event.message_id, out.len());
                out.push(Summary::new(event));
            }
        }
    }
    out
}

const fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Message => "message",
        MessageKind::Callback => "callback",
        MessageKind::FailureCallback => "failureCallback",
    }
}

/// What the engine holds about messages beside the event log: their kind, what they report
/// on, their DLQ id.
struct Known {
    kind: HashMap<String, (MessageKind, Option<String>)>,
    dlq: HashMap<String, String>,
}

impl Known {
    fn gather(engine: &Engine, attempts: &[Attempt]) -> Self {
        let mut kind = HashMap::new();
        for a in attempts {
            kind.insert(a.message_id.clone(), (a.kind, a.source_message_id.clone()));
        }
        let state = engine.lock();
        for m in state.messages.values() {
            kind.insert(m.id.clone(), (m.kind, m.source_message_id.clone()));
        }
        let dlq = state
            .dlq
            .iter()
            .map(|d| (d.msg.id.clone(), d.dlq_id.clone()))
            .collect();
        Self { kind, dlq }
    }

    fn kind_of(&self, id: &str) -> (MessageKind, Option<&str>) {
        self.kind
            .get(id)
            .map_or((MessageKind::Message, None), |(k, s)| (*k, s.as_deref()))
    }
}

fn summary_json(s: &Summary, known: &Known, attempts: &[Attempt]) -> Value {
    let (kind, source) = known.kind_of(&s.message_id);
    let mine: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.message_id == s.message_id)
        .collect();
    let mut object = Map::new();
    object.insert("messageId".into(), s.message_id.clone().into());
    object.insert("kind".into(), kind_name(kind).into());
    object.insert("state".into(), s.last.state.as_str().into());
    object.insert("url".into(), s.last.url.clone().into());
    object.insert("createdAt".into(), s.first.time.into());
    object.insert("updatedAt".into(), s.last.time.into());
    object.insert("attempts".into(), mine.len().into());
    let last_status = mine
        .last()
        .and_then(|a| a.answer.as_ref().ok())
        .map(|a| a.status.as_u16());
    put(&mut object, "lastStatus", last_status);
    put(&mut object, "sourceMessageId", source.map(str::to_owned));
    put(&mut object, "queueName", s.last.queue_name.clone());
    put(&mut object, "topicName", s.last.topic_name.clone());
    put(&mut object, "scheduleId", s.last.schedule_id.clone());
    put(
        &mut object,
        "label",
        (!s.labels.is_empty()).then(|| s.labels.join(", ")),
    );
    put(&mut object, "nextDeliveryTime", s.next_delivery_time);
    put(&mut object, "dlqId", known.dlq.get(&s.message_id).cloned());
    Value::Object(object)
}

fn put(object: &mut Map<String, Value>, name: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        object.insert(name.to_owned(), value.into());
    }
}

/// The message list, newest first.
fn list(engine: &Engine, filter: &Filter<'_>, count: usize) -> Value {
    let events = engine.events();
    let attempts = engine.attempts();
    let known = Known::gather(engine, &attempts);
    let messages: Vec<Value> = summaries(&events)
        .iter()
        .rev()
        .filter(|s| s.keeps(filter))
        .take(count)
        .map(|s| summary_json(s, &known, &attempts))
        .collect();
    json!({ "messages": messages, "now": engine.now_ms() })
}

/// The receiver's stated reason for a refusal: a short, one-line `text/plain` answer body
/// (what this workspace's receivers write), or why no answer arrived.
fn refusal_reason(attempt: &Attempt) -> Option<String> {
    let answer = match &attempt.answer {
        Err(error) => return Some(error.clone()),
        Ok(answer) => answer,
    };
    if answer.status.is_success() {
        return None;
    }
    let plain = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/plain"));
    let text = std::str::from_utf8(&answer.body).ok()?.trim();
    (plain && !text.is_empty() && text.len() <= 200 && !text.contains('\n'))
        .then(|| text.to_owned())
}

fn verdict_json(attempt: &Attempt) -> Value {
    match attempt.verdict {
        Verdict::Delivered => json!({ "outcome": "delivered" }),
        Verdict::Retry { after, reason } => {
            let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            let why = match reason {
                RetryReason::Backoff(n) => format!("default backoff for retry {n}"),
                RetryReason::AnswerAsked(wait) => {
                    format!("the answer asked for {} s", wait.as_secs())
                }
                RetryReason::Expression => "the Upstash-Retry-Delay expression".to_owned(),
            };
            json!({
                "outcome": "retry",
                "nextRetryAt": attempt.answered_ms.saturating_add(after_ms),
                "retryReason": why,
            })
        }
        Verdict::NoRetriesLeft => json!({ "outcome": "dlq", "why": "no retries left" }),
        Verdict::NonRetryable => json!({ "outcome": "dlq", "why": "non-retryable answer" }),
        Verdict::Cancelled => json!({ "outcome": "cancelled" }),
    }
}

fn attempt_json(attempt: &Attempt) -> Value {
    let mut object = Map::new();
    object.insert("at".into(), attempt.at_ms.into());
    object.insert(
        "durationMs".into(),
        attempt.answered_ms.saturating_sub(attempt.at_ms).into(),
    );
    object.insert("retried".into(), attempt.retried.into());
    object.insert("maxRetries".into(), attempt.max_retries.into());
    object.insert("method".into(), attempt.method.as_str().into());
    object.insert("url".into(), attempt.url.clone().into());
    match &attempt.answer {
        Ok(answer) => {
            object.insert("status".into(), answer.status.as_u16().into());
            object.insert("answerHeader".into(), json!(header_lists(&answer.headers)));
            let excerpt = &answer.body[..answer.body.len().min(EXCERPT_BYTES)];
            object.insert(
                "answerExcerpt".into(),
                String::from_utf8_lossy(excerpt).into_owned().into(),
            );
            object.insert("answerBytes".into(), answer.body.len().into());
        }
        Err(error) => {
            object.insert("error".into(), error.clone().into());
        }
    }
    put(&mut object, "reason", refusal_reason(attempt));
    if let Value::Object(verdict) = verdict_json(attempt) {
        object.extend(verdict);
    }
    Value::Object(object)
}

/// The request as sent: method, URL, headers and body (base64, so binary bodies survive).
fn request_json(method: &str, url: &str, headers: Value, body: &Bytes) -> Value {
    json!({
        "method": method,
        "url": url,
        "header": headers,
        "bodyBase64": STANDARD.encode(body),
        "bodyBytes": body.len(),
    })
}

/// One message: what the event log says, the message itself while the engine holds it, the
/// request as last sent, every attempt kept, and the callbacks it caused.
fn detail(engine: &Engine, id: &str) -> Result<Value, ApiError> {
    let events = engine.events();
    let attempts = engine.attempts();
    let known = Known::gather(engine, &attempts);
    let all = summaries(&events);
    let summary = all.iter().find(|s| s.message_id == id);
    let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.message_id == id).collect();
    let held = {
        let state = engine.lock();
        state
            .messages
            .get(id)
            .map(|m| (message_json(m), m.body.clone()))
            .or_else(|| {
                state
                    .dlq
                    .iter()
                    .find(|d| d.msg.id == id)
                    .map(|d| (message_json(&d.msg), d.msg.body.clone()))
            })
    };
    if summary.is_none() && mine.is_empty() && held.is_none() {
        return Err(ApiError::not_found(format!("message {id} not found")));
    }
    let request = match (mine.last(), &held) {
        (Some(a), _) => Some(request_json(
            a.method.as_str(),
            &a.url,
            json!(header_lists(&a.headers)),
            &a.body,
        )),
        (None, Some((message, body))) => Some(request_json(
            message["method"].as_str().unwrap_or("POST"),
            message["url"].as_str().unwrap_or(""),
            message["header"].clone(),
            body,
        )),
        (None, None) => None,
    };
    let callbacks: Vec<Value> = all
        .iter()
        .filter(|s| known.kind_of(&s.message_id).1 == Some(id))
        .map(|s| summary_json(s, &known, &attempts))
        .collect();
    let mut object = Map::new();
    object.insert("messageId".into(), id.into());
    if let Some(summary) = summary {
        if let Value::Object(fields) = summary_json(summary, &known, &attempts) {
            object.extend(fields);
        }
    } else {
        let (kind, source) = known.kind_of(id);
        object.insert("kind".into(), kind_name(kind).into());
        put(&mut object, "sourceMessageId", source.map(str::to_owned));
    }
    put(&mut object, "message", held.map(|(message, _)| message));
    put(&mut object, "request", request);
    object.insert(
        "attemptList".into(),
        Value::Array(mine.iter().map(|a| attempt_json(a)).collect()),
    );
    object.insert("callbacks".into(), Value::Array(callbacks));
    object.insert("now".into(), engine.now_ms().into());
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, state: EventState, time: u64) -> Event {
        Event {
            time,
            message_id: id.to_owned(),
            state,
            url: format!("http://127.0.0.1:1/{id}"),
            topic_name: None,
            endpoint_name: None,
            queue_name: (id == "b").then(|| "q".to_owned()),
            schedule_id: None,
            labels: if id == "a" {
                vec!["billing".to_owned()]
            } else {
                Vec::new()
            },
            caller_ip: None,
            flow_control_key: None,
            response_status: None,
            error: None,
            next_delivery_time: matches!(state, EventState::Created | EventState::Retry)
                .then_some(time + 100),
        }
    }

    #[test]
    fn the_console_url_carries_the_token_encoded_in_its_fragment() {
        assert_eq!(
            url("http://127.0.0.1:8080", "a+b/c=="),
            "http://127.0.0.1:8080/console#token=a%2Bb%2Fc%3D%3D"
        );
    }

    #[test]
    fn a_summary_has_the_latest_state_and_the_next_delivery_only_while_waiting() {
        let events = [
            event("a", EventState::Created, 1),
            event("b", EventState::Created, 2),
            event("a", EventState::Error, 3),
            event("a", EventState::Retry, 4),
            event("b", EventState::Delivered, 5),
        ];
        let all = summaries(&events);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].last.state, EventState::Retry);
        assert_eq!(all[0].next_delivery_time, Some(104));
        assert_eq!(all[0].first.time, 1);
        assert_eq!(all[1].last.state, EventState::Delivered);
        assert_eq!(all[1].next_delivery_time, None);
    }

    #[test]
    fn filters_keep_only_what_matches() {
        let events = [
            event("a", EventState::Created, 1),
            event("b", EventState::Created, 2),
            event("b", EventState::Failed, 3),
        ];
        let all = summaries(&events);
        let kept = |f: Filter<'_>| -> Vec<&str> {
            all.iter()
                .filter(|s| s.keeps(&f))
                .map(|s| s.message_id.as_str())
                .collect()
        };
        let none = || Filter {
            state: None,
            destination: None,
            label: None,
            queue: None,
        };
        assert_eq!(kept(none()), ["a", "b"]);
        assert_eq!(
            kept(Filter {
                state: Some("FAILED"),
                ..none()
            }),
            ["b"]
        );
        assert_eq!(
            kept(Filter {
                label: Some("billing"),
                ..none()
            }),
            ["a"]
        );
        assert_eq!(
            kept(Filter {
                queue: Some("q"),
                ..none()
            }),
            ["b"]
        );
        assert_eq!(
            kept(Filter {
                destination: Some("1/a"),
                ..none()
            }),
            ["a"]
        );
        assert!(
            kept(Filter {
                label: Some("other"),
                ..none()
            })
            .is_empty()
        );
    }
}
