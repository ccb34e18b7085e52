//! What the engine shows for inspection: each [`Attempt`] with its answer, the dead letters,
//! the [`Event`]s.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageKind {
    /// A published message (or one a schedule produced).
    Message,
    /// The callback reporting a delivery.
    Callback,
    /// The failure callback reporting a message's last failed attempt.
    FailureCallback,
}

/// A destination's answer to one attempt.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, up to 1 MiB (the rest is not read).
    pub body: Bytes,
}

/// Why the next attempt waits as long as it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// QStash's default backoff for retry `n`: `min(86400, e^(2.5 n))` s.
    Backoff(u32),
    /// The answer's `Retry-After` or `X-RateLimit-Reset*` (unscaled).
    AnswerAsked(Duration),
    /// The message's `Upstash-Retry-Delay` expression.
    Expression,
}

/// What the engine did after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// A 2xx answer: delivered.
    Delivered,
    /// Retried after `after` (already scaled by the engine's delay scale).
    Retry {
        /// The wait before the next attempt.
        after: Duration,
        /// Why that long.
        reason: RetryReason,
    },
    /// Failed with no retries left: into the dead-letter queue.
    NoRetriesLeft,
    /// 489 with `Upstash-NonRetryable-Error: true`: into the dead-letter queue at once.
    NonRetryable,
    /// The message was cancelled while the attempt was under way.
    Cancelled,
}

/// One HTTP attempt the engine made, with what it sent and what came back.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Attempt {
    /// The message id (`Upstash-Message-Id`).
    pub message_id: String,
    /// A message or one of its callbacks.
    pub kind: MessageKind,
    /// For callbacks, the message they report on.
    pub source_message_id: Option<String>,
    /// The destination URL.
    pub url: String,
    /// The method.
    pub method: Method,
    /// Every header sent, `Upstash-Signature` included.
    pub headers: HeaderMap,
    /// The body sent.
    pub body: Bytes,
    /// `Upstash-Retried` of this attempt.
    pub retried: u32,
    /// The message's retry budget.
    pub max_retries: u32,
    /// When the attempt started, on the engine's clock (unix milliseconds).
    pub at_ms: u64,
    /// When its answer (or its failure) was in, on the engine's clock (unix milliseconds).
    pub answered_ms: u64,
    /// The answer, or why none arrived.
    pub answer: Result<Answer, String>,
    /// What happened next.
    pub verdict: Verdict,
    /// For a message in a queue: how many of that queue's messages were being delivered,
    /// this one included, when it started.
    pub queue_in_flight: Option<usize>,
}

/// A message in the dead-letter queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The DLQ id (`dlqId`).
    pub dlq_id: String,
    /// The message id.
    pub message_id: String,
    /// The destination URL.
    pub url: String,
    /// The last attempt's status, or `None` when no answer arrived.
    pub response_status: Option<u16>,
    /// The last answer's body.
    pub response_body: Bytes,
    /// How often the message was retried.
    pub retried: u32,
    /// The message's body.
    pub body: Bytes,
}

/// A message's state in the event log, as QStash names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum EventState {
    /// Published.
    Created,
    /// Due and being delivered.
    Active,
    /// Failed an attempt; a retry is scheduled.
    Retry,
    /// An attempt failed.
    Error,
    /// Delivered.
    Delivered,
    /// Failed for good: in the dead-letter queue.
    Failed,
    /// A cancel was asked for.
    CancelRequested,
    /// Cancelled.
    Canceled,
}

impl EventState {
    /// The name QStash uses: `CREATED`, `DELIVERED`, ...
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Active => "ACTIVE",
            Self::Retry => "RETRY",
            Self::Error => "ERROR",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
            Self::CancelRequested => "CANCEL_REQUESTED",
            Self::Canceled => "CANCELED",
        }
    }
}

/// One entry of the event log (`GET /v2/events`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Event {
    /// When, on the engine's clock (unix milliseconds).
    pub time: u64,
    /// The message id.
    pub message_id: String,
    /// The state the message entered.
    pub state: EventState,
    /// The destination URL.
    pub url: String,
    /// The URL group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// The endpoint name in the URL group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_name: Option<String>,
    /// The queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    /// The schedule that produced the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// The message's labels (`Upstash-Label`, comma-separated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The publisher's address.
    #[serde(rename = "callerIp", skip_serializing_if = "Option::is_none")]
    pub caller_ip: Option<String>,
    /// The message's flow-control key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_control_key: Option<String>,
    /// The status of the attempt that failed (`ERROR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    /// Why an attempt got no answer (`ERROR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due (`RETRY`, `CREATED`), unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_delivery_time: Option<u64>,
}
