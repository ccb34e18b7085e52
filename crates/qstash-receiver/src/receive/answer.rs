//! [`Answer`]: everything an adapter needs to answer a request it does not hand on (or hands
//! on and answers for the handler), decided here once.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::error::{Error, ErrorKind};
use crate::headers::{DUPLICATE_HEADER, NON_RETRYABLE_HEADER};

/// The `tracing` target of every answer's log event.
pub const LOG_TARGET: &str = "qstash_receiver";

/// Message ids are logged up to this many characters (the header is not signed, so it is
/// whatever the client sent).
pub const MAX_LOGGED_MESSAGE_ID: usize = 128;

/// Methods are logged up to this many characters.
const MAX_LOGGED_METHOD: usize = 16;

/// How many bytes of a stored answer's body a replayed duplicate carries at most
/// ([`Answer::replay`]): 64 KiB. A longer body is cut there.
pub const MAX_REPLAYED_BODY: usize = 64 * 1024;

/// How an adapter discards what a client still sends after an answer given before the
/// body was read ([`Answer::linger`]), before it closes the connection: nginx's lingering
/// close. Closing a socket with unread bytes makes the kernel answer them with a reset,
/// which can destroy the answer before a client that is still writing reads it; reading
/// and dropping the rest first lets the answer arrive. Discarding keeps nothing, so it
/// costs no memory; both bounds keep a client from holding the connection open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Linger {
    max_bytes: u64,
    max_time: Duration,
}

impl Linger {
    /// At most this many bytes of the request body are read and dropped after the answer:
    /// 8 MiB.
    pub const MAX_BYTES: u64 = 8 * 1024 * 1024;

    /// For at most this long after the answer: 2 seconds. A client that has not finished
    /// sending by then loses the connection (and, over HTTP/1.x, likely the answer).
    pub const MAX_TIME: Duration = Duration::from_secs(2);

    /// The bounds every lingering answer has ([`MAX_BYTES`](Self::MAX_BYTES),
    /// [`MAX_TIME`](Self::MAX_TIME)).
    pub const DEFAULT: Self = Self {
        max_bytes: Self::MAX_BYTES,
        max_time: Self::MAX_TIME,
    };

    /// How many bytes of the request body to read and drop at most; then close.
    #[must_use]
    pub const fn max_bytes(self) -> u64 {
        self.max_bytes
    }

    /// How long to read and drop at most, counted from when the answer is given; then close.
    #[must_use]
    pub const fn max_time(self) -> Duration {
        self.max_time
    }
}

// A body twice the default limit, refused by its `Content-Length`, is drained whole.
const _: () = assert!(Linger::MAX_BYTES >= 2 * crate::receive::DEFAULT_MAX_BODY_BYTES as u64);

/// Why a request got an [`Answer`]: a stable name for logs and metrics ([`Reason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The signature was refused; the [`ErrorKind`] says why.
    Signature(ErrorKind),
    /// The body is larger than the limit (declared, or counted while reading).
    PayloadTooLarge,
    /// The body was not whole within the body timeout.
    BodyTimeout,
    /// The body could not be read (the client went away, a framing error).
    BodyUnreadable,
    /// The signature is valid but the `Upstash-*` headers are unusable.
    InvalidDeliveryHeaders,
    /// The signature is valid but the payload does not deserialize into the handler's type.
    InvalidPayload,
    /// The signature is valid but the body is not a QStash callback.
    InvalidCallback,
    /// More bytes are being buffered for other deliveries than the receiver allows at once.
    Busy,
    /// The adapter found no receiver configuration, or a layer that needs a verified
    /// delivery found none (a programming error).
    NotConfigured,
    /// The message was handled already (exactly-once handling): 200, not run again.
    Duplicate,
    /// Another attempt is handling the message right now: 409 with `Retry-After`.
    InProgress,
    /// The store that marks handled messages failed: 503 with `Retry-After`.
    StoreUnavailable,
    /// The store's transaction met a concurrent one (a serialization failure, a deadlock, a
    /// lock time-out) and was rolled back: 409 with `Retry-After`.
    Conflict,
    /// The store answered unexpectedly (a missing table, a permission, a bad statement):
    /// 500. Nothing was marked; QStash retries.
    StoreFailed,
    /// The token was seen before (a replay), or has no `jti` to tell: 401.
    Replayed,
    /// The handler says a retry cannot help: 489 with `Upstash-NonRetryable-Error: true`.
    DoNotRetry,
    /// The handler failed for now and asks to be retried later: 503 with `Retry-After`.
    RetryLater,
}

impl Reason {
    /// The stable name: the [`ErrorKind`] name for a refused signature (`"expired"`,
    /// `"invalid_signature"`, …), else `"payload_too_large"`, `"body_timeout"`,
    /// `"body_unreadable"`, `"invalid_delivery_headers"`, `"invalid_payload"`,
    /// `"invalid_callback"`, `"busy"`, `"not_configured"`, `"duplicate"`, `"in_progress"`,
    /// `"store_unavailable"`, `"conflict"`, `"store_failed"`, `"replayed"`, `"do_not_retry"`
    /// or `"retry_later"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Signature(kind) => kind.as_str(),
            Self::PayloadTooLarge => "payload_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::BodyUnreadable => "body_unreadable",
            Self::InvalidDeliveryHeaders => "invalid_delivery_headers",
            Self::InvalidPayload => "invalid_payload",
            Self::InvalidCallback => "invalid_callback",
            Self::Busy => "busy",
            Self::NotConfigured => "not_configured",
            Self::Duplicate => "duplicate",
            Self::InProgress => "in_progress",
            Self::StoreUnavailable => "store_unavailable",
            Self::Conflict => "conflict",
            Self::StoreFailed => "store_failed",
            Self::Replayed => "replayed",
            Self::DoNotRetry => "do_not_retry",
            Self::RetryLater => "retry_later",
        }
    }

    /// The short text of the answer's body when no other is given; it gives the caller no
    /// detail. A replayed token is answered as any other refused signature.
    #[must_use]
    pub const fn body_text(self) -> &'static str {
        match self {
            Self::Signature(_) | Self::Replayed => "invalid QStash signature",
            Self::PayloadTooLarge => "payload too large",
            Self::BodyTimeout => "request body timeout",
            Self::BodyUnreadable => "could not read the body",
            Self::InvalidDeliveryHeaders => "invalid QStash delivery headers",
            Self::InvalidPayload => "invalid QStash payload",
            Self::InvalidCallback => "invalid QStash callback",
            Self::Busy => "receiver busy, retry later",
            Self::NotConfigured => "QStash receiver not configured",
            Self::Duplicate => "duplicate delivery: message already handled",
            Self::InProgress => "duplicate delivery: message being handled, retry later",
            Self::StoreUnavailable => "dedupe store unavailable, retry later",
            Self::Conflict => "transaction conflict, retry later",
            Self::StoreFailed => "dedupe store failed",
            Self::DoNotRetry => "not retryable",
            Self::RetryLater => "retry later",
        }
    }

    /// How loudly an answer for this reason is logged: requests that are most likely not
    /// from QStash at all (no token, a malformed one, a body that never arrives) and
    /// duplicates at `debug`; a missing configuration and a failed or unavailable store at
    /// `error`; everything else (a transaction conflict too) at `warn`.
    #[must_use]
    pub const fn log_level(self) -> LogLevel {
        match self {
            Self::Signature(
                ErrorKind::MissingSignature
                | ErrorKind::MultipleSignatures
                | ErrorKind::MalformedToken
                | ErrorKind::TokenTooLong,
            )
            | Self::BodyTimeout
            | Self::BodyUnreadable
            | Self::Duplicate
            | Self::InProgress => LogLevel::Debug,
            Self::NotConfigured | Self::StoreUnavailable | Self::StoreFailed => LogLevel::Error,
            _ => LogLevel::Warn,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level an answer is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// `tracing::Level::DEBUG`.
    Debug,
    /// `tracing::Level::WARN`.
    Warn,
    /// `tracing::Level::ERROR`.
    Error,
}

/// The one answer type of the workspace: the pipeline's refusals, the exactly-once layer's
/// duplicate, in-progress and store-down answers, and a handler's "do not retry" and
/// "retry later". Plain data: the status, a stable [`Reason`], the body text, the headers
/// and how to log it. Each framework adapter has one writer for it, which logs it once
/// ([`Answer::log`]) when it answers.
///
/// | reason | status | headers besides `Content-Type: text/plain; charset=utf-8` (always first) |
/// |---|---|---|
/// | any signature failure, `replayed` | 401 | `Connection: close` (HTTP/1.x) when the body was not read |
/// | `payload_too_large` | 413 | `Connection: close` (HTTP/1.x) |
/// | `body_timeout` | 408 | `Connection: close` (HTTP/1.x) |
/// | `body_unreadable` | 400 | `Connection: close` (HTTP/1.x) |
/// | `invalid_delivery_headers`, `invalid_payload`, `invalid_callback` | 489 (or 422, see [`PayloadErrorStatus`](crate::receive::PayloadErrorStatus)) | `Upstash-NonRetryable-Error: true` with 489; `Connection: close` when the body was not read |
/// | `busy` | 503 | `Retry-After`, `Connection: close` (HTTP/1.x) |
/// | `not_configured` | 500 | |
/// | `duplicate` | 200, or the stored status of a [`replay`](Answer::replay) | [`DUPLICATE_HEADER`] |
/// | `in_progress` | 409 | `Retry-After`, [`DUPLICATE_HEADER`] |
/// | `store_unavailable` | 503 | `Retry-After` |
/// | `conflict` | 409 | `Retry-After` |
/// | `store_failed` | 500 | |
/// | `do_not_retry` | 489 | `Upstash-NonRetryable-Error: true` |
/// | `retry_later` | 503 | `Retry-After` |
///
/// The headers come in this order: `Content-Type`, `Upstash-NonRetryable-Error`,
/// `Retry-After`, [`DUPLICATE_HEADER`], `Connection`. A body text never ends in a newline.
///
/// The one exception to the text body: a [`replay`](Answer::replay) of a handled message's
/// stored answer carries the stored `Content-Type` and body (at most
/// [`MAX_REPLAYED_BODY`] bytes) as they were, so a duplicate delivery shows the real answer.
///
/// # Examples
///
/// A handler's "a retry cannot help":
///
/// ```
/// use qstash_receiver::{Answer, Reason};
///
/// let answer = Answer::do_not_retry("order 0 does not exist");
/// assert_eq!(answer.status().as_u16(), 489);
/// assert_eq!(answer.reason(), Reason::DoNotRetry);
/// assert_eq!(answer.body_text(), "order 0 does not exist");
/// assert!(answer.is_non_retryable());
/// ```
#[derive(Clone)]
pub struct Answer {
    reason: Reason,
    status: StatusCode,
    close: bool,
    retry_after: Option<u32>,
    detail: Box<str>,
    error: Option<Error>,
    message_id: Option<Box<str>>,
    method: Option<Box<str>>,
    /// What few answers carry, behind one thin pointer so that every `Result<_, Refusal>`
    /// stays under clippy's large-error bound.
    extra: Option<Box<Extra>>,
}

/// What few answers carry: a replayed duplicate's stored answer, a refusal's diagnosis.
#[derive(Clone, Default)]
struct Extra {
    /// The stored answer an [`Answer::replay`] carries.
    replayed: Option<Replayed>,
    /// A refusal's one-line diagnosis, made only when `debug` is enabled for [`LOG_TARGET`].
    diagnosis: Option<String>,
}

/// The stored answer a [`Answer::replay`] carries.
#[derive(Clone)]
struct Replayed {
    content_type: HeaderValue,
    body: Bytes,
}

/// The name of [`Answer`] for the pipeline's refusals: the same type.
pub type Refusal = Answer;

impl Answer {
    pub(crate) fn new(reason: Reason, status: StatusCode, detail: impl Into<Box<str>>) -> Self {
        Self {
            reason,
            status,
            close: false,
            retry_after: None,
            detail: detail.into(),
            error: None,
            message_id: None,
            method: None,
            extra: None,
        }
    }

    /// This answer with the one-line diagnosis `summary` makes, computed only when `debug`
    /// is enabled for [`LOG_TARGET`] (so it costs nothing otherwise).
    pub(crate) fn with_diagnosis(mut self, summary: impl FnOnce() -> Option<String>) -> Self {
        if tracing::enabled!(target: LOG_TARGET, tracing::Level::DEBUG) {
            if let Some(summary) = summary() {
                self.extra.get_or_insert_default().diagnosis = Some(summary);
            }
        }
        self
    }

    /// A refusal's one-line [`Diagnosis`](crate::Diagnosis) summary (the failed check and the
    /// hints; never a key, a token or a body), present only when `debug` was enabled for
    /// [`LOG_TARGET`] when the request was refused.
    #[must_use]
    pub fn diagnosis(&self) -> Option<&str> {
        self.extra.as_deref()?.diagnosis.as_deref()
    }

    /// A replayed duplicate's stored answer.
    fn stored(&self) -> Option<&Replayed> {
        self.extra.as_deref()?.replayed.as_ref()
    }

    pub(crate) fn signature(error: Error) -> Self {
        let mut answer = Self::new(
            Reason::Signature(error.kind()),
            StatusCode::UNAUTHORIZED,
            error.to_string(),
        );
        answer.error = Some(error);
        answer
    }

    /// The answer for a request whose adapter found no receiver configuration, or whose
    /// layer needs a verified delivery and found none: 500, logged at `error`.
    #[must_use]
    pub fn not_configured(detail: &str) -> Self {
        Self::new(
            Reason::NotConfigured,
            StatusCode::INTERNAL_SERVER_ERROR,
            detail,
        )
    }

    /// The answer for a message handled already: 200 with [`DUPLICATE_HEADER`], logged at
    /// `debug`. QStash counts it as delivered.
    #[must_use]
    pub fn duplicate() -> Self {
        Self::new(
            Reason::Duplicate,
            StatusCode::OK,
            "message already handled, not run again",
        )
    }

    /// The answer for a message handled already, replaying its stored answer: `status`, with
    /// `Content-Type: content_type` and the first [`MAX_REPLAYED_BODY`] bytes of `body`, and
    /// [`DUPLICATE_HEADER`]; logged at `debug` as a [`duplicate`](Self::duplicate). For a
    /// store that keeps the handler's answer with its mark (a transactional inbox).
    #[must_use]
    pub fn replay(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Self {
        let mut answer = Self::new(
            Reason::Duplicate,
            status,
            "message already handled, its stored answer replayed",
        );
        answer.extra.get_or_insert_default().replayed = Some(Replayed {
            content_type,
            body: body.slice(..body.len().min(MAX_REPLAYED_BODY)),
        });
        answer
    }

    /// The answer for a message another attempt is handling: 409 with [`DUPLICATE_HEADER`]
    /// and `Retry-After: retry_after_secs`, logged at `debug`.
    #[must_use]
    pub fn in_progress(retry_after_secs: u32) -> Self {
        Self::new(
            Reason::InProgress,
            StatusCode::CONFLICT,
            "message being handled by another attempt",
        )
        .retry_after(retry_after_secs)
    }

    /// The answer when the store of handled messages failed: 503 with
    /// `Retry-After: retry_after_secs`, logged at `error` with `detail` (say what failed;
    /// never a password or a connection string with one).
    #[must_use]
    pub fn store_unavailable(retry_after_secs: u32, detail: &str) -> Self {
        Self::new(
            Reason::StoreUnavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            detail,
        )
        .retry_after(retry_after_secs)
    }

    /// The answer when the store's transaction met a concurrent one (a serialization
    /// failure, a deadlock, a lock time-out) and was rolled back: 409 with
    /// `Retry-After: retry_after_secs`, logged at `warn` with `detail`. Nothing was marked;
    /// the retry runs the handler cleanly.
    #[must_use]
    pub fn conflict(retry_after_secs: u32, detail: &str) -> Self {
        Self::new(Reason::Conflict, StatusCode::CONFLICT, detail).retry_after(retry_after_secs)
    }

    /// The answer when the store answered unexpectedly (a missing table, a permission, a
    /// bad statement): 500, logged at `error` with `detail` (never a password or a
    /// connection string with one). Nothing was marked; QStash retries.
    #[must_use]
    pub fn store_failed(detail: &str) -> Self {
        Self::new(
            Reason::StoreFailed,
            StatusCode::INTERNAL_SERVER_ERROR,
            detail,
        )
    }

    /// The answer to a token seen before: 401 with the body text of every refused
    /// signature, logged at `warn` with `detail`.
    #[must_use]
    pub fn replayed(detail: &str) -> Self {
        Self::new(Reason::Replayed, StatusCode::UNAUTHORIZED, detail)
    }

    /// A handler's "a retry cannot help": 489 with `Upstash-NonRetryable-Error: true`, so
    /// QStash moves the message to the dead-letter queue (and calls the failure callback) at
    /// once. `text` is the body; it is also logged (at `warn`), so keep secrets out of it.
    #[must_use]
    pub fn do_not_retry(text: impl Into<Box<str>>) -> Self {
        // The handler's text is the body and the detail alike.
        Self::new(
            Reason::DoNotRetry,
            StatusCode::from_u16(crate::headers::NON_RETRYABLE_STATUS)
                .unwrap_or(StatusCode::BAD_REQUEST),
            text,
        )
    }

    /// A handler's "failed for now": 503 with `Retry-After: retry_after_secs`, which QStash
    /// honours instead of its backoff (each answer uses up one retry). `text` is the body; it
    /// is also logged (at `warn`), so keep secrets out of it.
    #[must_use]
    pub fn retry_later(retry_after_secs: u32, text: impl Into<Box<str>>) -> Self {
        Self::new(Reason::RetryLater, StatusCode::SERVICE_UNAVAILABLE, text)
            .retry_after(retry_after_secs)
    }

    pub(crate) fn closing(mut self, close: bool) -> Self {
        self.close = close;
        self
    }

    pub(crate) fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub(crate) fn for_message(mut self, message_id: Option<Box<str>>) -> Self {
        self.message_id = message_id;
        self
    }

    /// The answer, logged with this `Upstash-Message-Id` (cut to [`MAX_LOGGED_MESSAGE_ID`]
    /// characters; it is not signed).
    #[must_use]
    pub fn with_message_id(self, message_id: &str) -> Self {
        self.for_message(logged_message_id(Some(message_id.as_bytes())))
    }

    /// The answer, logged with this request method (cut to 16 characters).
    #[must_use]
    pub fn with_method(mut self, method: &str) -> Self {
        self.method = Some(logged_method(method));
        self
    }

    /// Why it is answered this way.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// The answer's status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's body: short, `text/plain`, with no detail for the caller (except the
    /// text a handler chose for [`do_not_retry`](Self::do_not_retry) and
    /// [`retry_later`](Self::retry_later)). For a [`replay`](Self::replay), the stored body
    /// when it is UTF-8, else the text of a [`duplicate`](Self::duplicate) ([`body`](Self::body)
    /// has the stored bytes either way).
    #[must_use]
    pub fn body_text(&self) -> &str {
        if let Some(replayed) = self.stored() {
            if let Ok(text) = std::str::from_utf8(&replayed.body) {
                return text;
            }
        }
        match self.reason {
            Reason::DoNotRetry | Reason::RetryLater => &self.detail,
            reason => reason.body_text(),
        }
    }

    /// Whether the answer tells QStash not to retry (489 with `Upstash-NonRetryable-Error`).
    #[must_use]
    pub fn is_non_retryable(&self) -> bool {
        self.status.as_u16() == crate::headers::NON_RETRYABLE_STATUS
    }

    /// Whether the answer closes the connection (`Connection: close`): an HTTP/1.x request
    /// whose body was left unread, so that a keep-alive client does not lose its next
    /// request to the unread bytes.
    #[must_use]
    pub const fn closes_connection(&self) -> bool {
        self.close
    }

    /// What to do with the rest of the request body after this answer: `Some` exactly when
    /// the answer [closes the connection](Self::closes_connection) because the body was left
    /// unread. The adapter then writes the answer, reads and drops at most
    /// [`Linger::max_bytes`] of the body for at most [`Linger::max_time`], and closes.
    #[must_use]
    pub const fn linger(&self) -> Option<Linger> {
        if self.close {
            Some(Linger::DEFAULT)
        } else {
            None
        }
    }

    /// The stored `Content-Type` and body of a [`replay`](Self::replay).
    #[must_use]
    pub fn stored_answer(&self) -> Option<(&HeaderValue, &Bytes)> {
        self.stored()
            .map(|replayed| (&replayed.content_type, &replayed.body))
    }

    /// The `Retry-After` the answer carries, in seconds.
    #[must_use]
    pub const fn retry_after_secs(&self) -> Option<u32> {
        self.retry_after
    }

    /// The log level ([`Reason::log_level`]).
    #[must_use]
    pub const fn log_level(&self) -> LogLevel {
        self.reason.log_level()
    }

    /// The verification error, for a refused signature.
    #[must_use]
    pub const fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// What went wrong, for logs: never the token, a key or the body.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The `Upstash-Message-Id` the request carried, cut to [`MAX_LOGGED_MESSAGE_ID`]
    /// characters (it is not signed).
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// The request's method, as logged.
    #[must_use]
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The headers of the answer, in the order of the table on [`Answer`], `Content-Type`
    /// first (the stored one for a [`replay`](Self::replay)).
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + use<> {
        let non_retryable = self.is_non_retryable();
        let retry_after = self.retry_after;
        let duplicate = matches!(self.reason, Reason::Duplicate | Reason::InProgress);
        let close = self.close;
        let content_type = self.stored().map_or_else(
            || HeaderValue::from_static("text/plain; charset=utf-8"),
            |replayed| replayed.content_type.clone(),
        );
        [
            Some((CONTENT_TYPE, content_type)),
            non_retryable.then(|| {
                (
                    HeaderName::from_static(NON_RETRYABLE_HEADER),
                    HeaderValue::from_static("true"),
                )
            }),
            retry_after.map(|secs| (RETRY_AFTER, HeaderValue::from(secs))),
            duplicate.then(|| {
                (
                    HeaderName::from_static(DUPLICATE_HEADER),
                    HeaderValue::from_static("true"),
                )
            }),
            close.then(|| (CONNECTION, HeaderValue::from_static("close"))),
        ]
        .into_iter()
        .flatten()
    }

    /// The answer's body ([`body_text`](Self::body_text)) as bytes, without a copy for the
    /// fixed texts and a replay's stored body.
    #[must_use]
    pub fn body(&self) -> Bytes {
        if let Some(replayed) = self.stored() {
            return replayed.body.clone();
        }
        match self.reason {
            Reason::DoNotRetry | Reason::RetryLater => {
                Bytes::copy_from_slice(self.detail.as_bytes())
            }
            reason => Bytes::from_static(reason.body_text().as_bytes()),
        }
    }

    /// The answer as an `http` response (not logged: a writer calls [`log`](Self::log)).
    #[must_use]
    pub fn to_response(&self) -> http::Response<Bytes> {
        let mut response = http::Response::new(self.body());
        *response.status_mut() = self.status;
        response.headers_mut().extend(self.headers());
        response
    }

    /// Logs the answer through `tracing` (target [`LOG_TARGET`], at [`log_level`]) with
    /// `reason`, `status`, `message_id`, `method`, `error` (the detail) and, when `debug` is
    /// enabled, `diagnosis` (a signature refusal's one-line summary), message
    /// `"QStash delivery answered"`. A framework's writer calls it once, when it answers.
    ///
    /// [`log_level`]: Answer::log_level
    pub fn log(&self) {
        let reason = self.reason.as_str();
        let status = self.status.as_u16();
        let message_id = self.message_id.as_deref().unwrap_or("");
        let error = &*self.detail;
        let method = self.method.as_deref().unwrap_or("");
        // Present only when `debug` was enabled as the refusal was made; `None` is not recorded.
        let diagnosis = self.diagnosis();
        match self.log_level() {
            LogLevel::Debug => tracing::debug!(
                target: LOG_TARGET,
                reason,
                status,
                message_id,
                method,
                error,
                diagnosis,
                "QStash delivery answered"
            ),
            LogLevel::Warn => tracing::warn!(
                target: LOG_TARGET,
                reason,
                status,
                message_id,
                method,
                error,
                diagnosis,
                "QStash delivery answered"
            ),
            LogLevel::Error => tracing::error!(
                target: LOG_TARGET,
                reason,
                status,
                message_id,
                method,
                error,
                diagnosis,
                "QStash delivery answered"
            ),
        }
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("reason", &self.reason)
            .field("status", &self.status.as_u16())
            .field("close", &self.close)
            .field("retry_after", &self.retry_after)
            .field("detail", &self.detail)
            .field("message_id", &self.message_id)
            .field("method", &self.method)
            .field("replayed_body_len", &self.stored().map(|r| r.body.len()))
            .field("diagnosis", &self.diagnosis())
            .finish()
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.reason,
            self.status.as_u16(),
            self.detail
        )
    }
}

impl std::error::Error for Answer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_ref().map(|e| e as _)
    }
}

/// The method to log, cut to 16 characters.
pub(crate) fn logged_method(method: &str) -> Box<str> {
    method
        .chars()
        .take(MAX_LOGGED_METHOD)
        .collect::<String>()
        .into()
}

/// A request's method kept for the log of a later answer, without an allocation: its first
/// 16 bytes, cut at a character boundary.
#[derive(Clone, Copy)]
pub(crate) struct MethodForLog {
    bytes: [u8; MAX_LOGGED_METHOD],
    len: u8,
}

impl MethodForLog {
    pub(crate) fn new(method: &str) -> Self {
        let mut len = method.len().min(MAX_LOGGED_METHOD);
        while !method.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; MAX_LOGGED_METHOD];
        bytes[..len].copy_from_slice(&method.as_bytes()[..len]);
        #[allow(clippy::cast_possible_truncation)] // at most 16
        Self {
            bytes,
            len: len as u8,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for MethodForLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The message id to log: the first `Upstash-Message-Id` if it is visible ASCII, cut to
/// [`MAX_LOGGED_MESSAGE_ID`] characters.
pub(crate) fn logged_message_id(value: Option<&[u8]>) -> Option<Box<str>> {
    let value = value?;
    let text = std::str::from_utf8(value).ok()?;
    if !crate::headers::is_visible_ascii(value) {
        return Some("<not visible ASCII>".into());
    }
    Some(if text.len() > MAX_LOGGED_MESSAGE_ID {
        format!("{}…", &text[..MAX_LOGGED_MESSAGE_ID]).into()
    } else {
        text.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_answer() -> Vec<Answer> {
        vec![
            Answer::signature(Error::new(ErrorKind::InvalidSignature)),
            Answer::signature(Error::new(ErrorKind::MissingSignature)).closing(true),
            Answer::new(Reason::PayloadTooLarge, StatusCode::PAYLOAD_TOO_LARGE, "x").closing(true),
            Answer::new(Reason::Busy, StatusCode::SERVICE_UNAVAILABLE, "x")
                .retry_after(5)
                .closing(true),
            Answer::new(
                Reason::InvalidPayload,
                StatusCode::from_u16(489).unwrap(),
                "x",
            ),
            Answer::not_configured("x"),
            Answer::duplicate(),
            Answer::in_progress(7),
            Answer::store_unavailable(12, "x"),
            Answer::conflict(5, "x"),
            Answer::store_failed("x"),
            Answer::replayed("x"),
            Answer::do_not_retry("order 0 does not exist"),
            Answer::retry_later(30, String::from("try again")),
        ]
    }

    #[test]
    fn every_answer_is_text_without_a_trailing_newline_content_type_first() {
        for answer in every_answer() {
            let names: Vec<HeaderName> = answer.headers().map(|(n, _)| n).collect();
            assert_eq!(names[0], CONTENT_TYPE, "{answer:?}");
            let order = [
                CONTENT_TYPE.as_str(),
                NON_RETRYABLE_HEADER,
                RETRY_AFTER.as_str(),
                DUPLICATE_HEADER,
                CONNECTION.as_str(),
            ];
            let positions: Vec<usize> = names
                .iter()
                .map(|n| order.iter().position(|o| *o == n.as_str()).unwrap())
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{answer:?}");
            assert!(!answer.body_text().ends_with('\n'), "{answer:?}");
            assert!(!answer.body_text().is_empty(), "{answer:?}");
            let response = answer.to_response();
            assert_eq!(response.body(), answer.body_text().as_bytes());
            assert_eq!(response.status(), answer.status());
        }
    }

    #[test]
    fn an_answer_lingers_exactly_when_it_closes_for_an_unread_body() {
        for answer in every_answer() {
            let linger = answer.linger();
            assert_eq!(linger.is_some(), answer.closes_connection(), "{answer:?}");
            if let Some(linger) = linger {
                assert_eq!(linger.max_bytes(), Linger::MAX_BYTES);
                assert_eq!(linger.max_time(), Linger::MAX_TIME);
            }
        }
    }

    #[test]
    fn a_replay_is_answered_as_any_refused_signature() {
        let replayed = Answer::replayed("token seen before");
        let forged = Answer::signature(Error::new(ErrorKind::InvalidSignature));
        assert_eq!(replayed.status(), forged.status());
        assert_eq!(replayed.body_text(), forged.body_text());
        let headers = |a: &Answer| a.headers().collect::<Vec<_>>();
        assert_eq!(headers(&replayed), headers(&forged));
    }

    #[test]
    fn the_exactly_once_answers_say_what_qstash_needs() {
        let duplicate = Answer::duplicate();
        assert_eq!(duplicate.status(), StatusCode::OK);
        assert!(duplicate.headers().any(|(n, _)| n == DUPLICATE_HEADER));
        let in_progress = Answer::in_progress(7);
        assert_eq!(in_progress.status(), StatusCode::CONFLICT);
        assert_eq!(in_progress.retry_after_secs(), Some(7));
        assert!(in_progress.headers().any(|(n, _)| n == DUPLICATE_HEADER));
        let down = Answer::store_unavailable(12, "connection refused");
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.log_level(), LogLevel::Error);
        assert!(!down.headers().any(|(n, _)| n == DUPLICATE_HEADER));
        let later = Answer::retry_later(30, "busy upstream");
        assert_eq!(later.retry_after_secs(), Some(30));
        assert!(!later.is_non_retryable());
        assert!(Answer::do_not_retry("no").is_non_retryable());
    }

    #[test]
    fn a_replay_carries_the_stored_answer_bounded() {
        let body = Bytes::from(vec![b'{'; MAX_REPLAYED_BODY + 10]);
        let json = HeaderValue::from_static("application/json");
        let replay = Answer::replay(StatusCode::CREATED, json.clone(), body);
        assert_eq!(replay.reason(), Reason::Duplicate);
        assert_eq!(replay.status(), StatusCode::CREATED);
        assert_eq!(replay.log_level(), LogLevel::Debug);
        assert_eq!(replay.body().len(), MAX_REPLAYED_BODY);
        let headers: Vec<_> = replay.headers().collect();
        assert_eq!(
            headers,
            [
                (CONTENT_TYPE, json),
                (
                    HeaderName::from_static(DUPLICATE_HEADER),
                    HeaderValue::from_static("true")
                ),
            ]
        );
        let response = replay.to_response();
        assert_eq!(response.body().len(), MAX_REPLAYED_BODY);
        let binary = Answer::replay(
            StatusCode::OK,
            HeaderValue::from_static("application/octet-stream"),
            Bytes::from_static(&[0xff, 0]),
        );
        assert_eq!(binary.body().as_ref(), [0xff, 0]);
        assert_eq!(binary.body_text(), Reason::Duplicate.body_text());
    }

    #[test]
    fn the_store_s_answers_are_retryable_without_detail_for_the_caller() {
        let conflict = Answer::conflict(5, "serialization failure (SQLSTATE 40001)");
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert_eq!(conflict.retry_after_secs(), Some(5));
        assert_eq!(conflict.log_level(), LogLevel::Warn);
        assert!(!conflict.headers().any(|(n, _)| n == DUPLICATE_HEADER));
        assert!(!conflict.body_text().contains("SQLSTATE"));
        let failed = Answer::store_failed("relation does not exist (SQLSTATE 42P01)");
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failed.retry_after_secs(), None);
        assert_eq!(failed.log_level(), LogLevel::Error);
        assert!(!failed.body_text().contains("SQLSTATE"));
    }

    #[test]
    fn the_method_and_message_id_are_cut_for_the_log() {
        let answer = Answer::duplicate()
            .with_method(&"M".repeat(40))
            .with_message_id(&"m".repeat(400));
        assert_eq!(answer.method().map(str::len), Some(16));
        assert_eq!(
            answer.message_id().map(|m| m.chars().count()),
            Some(MAX_LOGGED_MESSAGE_ID + 1)
        );
    }
}
