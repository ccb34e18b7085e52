//! [`Refusal`]: everything an adapter needs to answer a refused request, decided here once.

use std::fmt;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::delivery::NON_RETRYABLE_HEADER;
use crate::error::{Error, ErrorKind};

/// The `tracing` target of every refusal's log event.
pub const LOG_TARGET: &str = "qstash_receiver";

/// Message ids are logged up to this many characters (the header is not signed, so it is
/// whatever the client sent).
pub const MAX_LOGGED_MESSAGE_ID: usize = 128;

/// Why a request was refused: a stable name for logs and metrics ([`Reason::as_str`]).
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
    /// The adapter found no receiver configuration (a programming error).
    NotConfigured,
}

impl Reason {
    /// The stable name: the [`ErrorKind`] name for a refused signature (`"expired"`,
    /// `"invalid_signature"`, …), else `"payload_too_large"`, `"body_timeout"`,
    /// `"body_unreadable"`, `"invalid_delivery_headers"`, `"invalid_payload"`,
    /// `"invalid_callback"`, `"busy"` or `"not_configured"`.
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
        }
    }

    /// The short text of the answer's body; it gives the caller no detail.
    #[must_use]
    pub const fn body_text(self) -> &'static str {
        match self {
            Self::Signature(_) => "invalid QStash signature",
            Self::PayloadTooLarge => "payload too large",
            Self::BodyTimeout => "request body timeout",
            Self::BodyUnreadable => "could not read the body",
            Self::InvalidDeliveryHeaders => "invalid QStash delivery headers",
            Self::InvalidPayload => "invalid QStash payload",
            Self::InvalidCallback => "invalid QStash callback",
            Self::Busy => "receiver busy, retry later",
            Self::NotConfigured => "QStash receiver not configured",
        }
    }

    /// How loudly a refusal for this reason is logged: requests that are most likely not
    /// from QStash at all (no token, a malformed one, a body that never arrives) at `debug`;
    /// a missing configuration at `error`; everything else at `warn`.
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
            | Self::BodyUnreadable => LogLevel::Debug,
            Self::NotConfigured => LogLevel::Error,
            _ => LogLevel::Warn,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level a refusal is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// `tracing::Level::DEBUG`.
    Debug,
    /// `tracing::Level::WARN`.
    Warn,
    /// `tracing::Level::ERROR`.
    Error,
}

/// A refused request, decided by the receiving pipeline: the status, a stable reason, the
/// body text, the headers to set and how to log it. An adapter writes it as it is.
///
/// | reason | status | headers besides `Content-Type: text/plain; charset=utf-8` |
/// |---|---|---|
/// | any signature failure | 401 | `Connection: close` (HTTP/1.x) when the body was not read |
/// | `payload_too_large` | 413 | `Connection: close` (HTTP/1.x) |
/// | `body_timeout` | 408 | `Connection: close` (HTTP/1.x) |
/// | `body_unreadable` | 400 | `Connection: close` (HTTP/1.x) |
/// | `invalid_delivery_headers`, `invalid_payload`, `invalid_callback` | 489 (or 422, see [`PayloadErrorStatus`](crate::PayloadErrorStatus)) | `Upstash-NonRetryable-Error: true` with 489; `Connection: close` when the body was not read |
/// | `busy` | 503 | `Retry-After`, `Connection: close` (HTTP/1.x) |
/// | `not_configured` | 500 | |
#[derive(Clone)]
pub struct Refusal {
    reason: Reason,
    status: StatusCode,
    close: bool,
    retry_after: Option<u32>,
    detail: Box<str>,
    error: Option<Error>,
    message_id: Option<Box<str>>,
    method: Option<Box<str>>,
}

impl Refusal {
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
        }
    }

    pub(crate) fn signature(error: Error) -> Self {
        let mut refusal = Self::new(
            Reason::Signature(error.kind()),
            StatusCode::UNAUTHORIZED,
            error.to_string(),
        );
        refusal.error = Some(error);
        refusal
    }

    /// The refusal for a request whose adapter found no receiver configuration: 500, logged
    /// at `error`.
    #[must_use]
    pub fn not_configured(detail: &str) -> Self {
        Self::new(
            Reason::NotConfigured,
            StatusCode::INTERNAL_SERVER_ERROR,
            detail,
        )
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

    pub(crate) fn for_method(mut self, method: &str) -> Self {
        self.method = Some(method.chars().take(16).collect::<String>().into());
        self
    }

    /// Why it was refused.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// The answer's status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's body: short, `text/plain`, with no detail for the caller.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        self.reason.body_text()
    }

    /// Whether the answer tells QStash not to retry (489 with `Upstash-NonRetryable-Error`).
    #[must_use]
    pub fn is_non_retryable(&self) -> bool {
        self.status.as_u16() == crate::NON_RETRYABLE_STATUS
    }

    /// Whether the answer closes the connection (`Connection: close`): an HTTP/1.x request
    /// whose body was left unread, so that a keep-alive client does not lose its next
    /// request to the unread bytes.
    #[must_use]
    pub const fn closes_connection(&self) -> bool {
        self.close
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

    /// The headers of the answer, `Content-Type` first.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + use<> {
        let non_retryable = self.is_non_retryable();
        let retry_after = self.retry_after;
        let close = self.close;
        [
            Some((
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )),
            non_retryable.then(|| {
                (
                    HeaderName::from_static(NON_RETRYABLE_HEADER),
                    HeaderValue::from_static("true"),
                )
            }),
            retry_after.map(|secs| (RETRY_AFTER, HeaderValue::from(secs))),
            close.then(|| (CONNECTION, HeaderValue::from_static("close"))),
        ]
        .into_iter()
        .flatten()
    }

    /// The answer as an `http` response.
    #[must_use]
    pub fn to_response(&self) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::from_static(self.body_text().as_bytes()));
        *response.status_mut() = self.status;
        response.headers_mut().extend(self.headers());
        response
    }

    /// Logs the refusal through `tracing` (target [`LOG_TARGET`], at [`log_level`]) with
    /// `reason`, `status`, `message_id`, `method` and `error` (the detail). Adapters call it once, when
    /// they answer.
    ///
    /// [`log_level`]: Refusal::log_level
    pub fn log(&self) {
        let reason = self.reason.as_str();
        let status = self.status.as_u16();
        let message_id = self.message_id.as_deref().unwrap_or("");
        let error = &*self.detail;
        let method = self.method.as_deref().unwrap_or("");
        match self.log_level() {
            LogLevel::Debug => tracing::debug!(
                target: LOG_TARGET,
                reason,
                status,
                message_id,
                method,
                error,
                "QStash delivery refused"
            ),
            LogLevel::Warn => tracing::warn!(
                target: LOG_TARGET,
                reason,
                status,
                message_id,
                method,
                error,
                "QStash delivery refused"
            ),
            LogLevel::Error => tracing::error!(
                target: LOG_TARGET,
                reason,
                status,
                message_id,
                method,
                error,
                "QStash delivery refused"
            ),
        }
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("reason", &self.reason)
            .field("status", &self.status.as_u16())
            .field("close", &self.close)
            .field("retry_after", &self.retry_after)
            .field("detail", &self.detail)
            .field("message_id", &self.message_id)
            .finish()
    }
}

impl fmt::Display for Refusal {
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

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_ref().map(|e| e as _)
    }
}

/// The message id to log: the first `Upstash-Message-Id` if it is visible ASCII, cut to
/// [`MAX_LOGGED_MESSAGE_ID`] characters.
pub(crate) fn logged_message_id(value: Option<&[u8]>) -> Option<Box<str>> {
    let value = value?;
    let text = std::str::from_utf8(value).ok()?;
    if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Some("<not visible ASCII>".into());
    }
    Some(if text.len() > MAX_LOGGED_MESSAGE_ID {
        format!("{}…", &text[..MAX_LOGGED_MESSAGE_ID]).into()
    } else {
        text.into()
    })
}
