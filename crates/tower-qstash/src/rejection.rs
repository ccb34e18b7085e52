//! Why a delivery was refused, one type per cause, and the answer each gets.
//!
//! The answer never says more than a short text: QStash does not read it, and anybody else
//! should learn nothing from it. The `Display` of each type has the detail for logs (never the
//! token, a key or the body), and each refusal is logged once through `tracing`.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use qstash_receiver::{
    CallbackError, DeliveryError, Error, ErrorKind, MESSAGE_ID_HEADER, NON_RETRYABLE_HEADER,
    NON_RETRYABLE_STATUS,
};

use crate::config::RejectionHook;

type BoxError = Box<dyn StdError + Send + Sync>;

/// 401: no `Upstash-Signature` header, more than one, or a token that does not verify
/// (expired, wrong key, other endpoint, tampered body, …). [`kind`](Self::kind) says which.
#[derive(Debug, thiserror::Error)]
#[error("invalid QStash signature: {error}")]
pub struct InvalidSignature {
    #[source]
    error: Error,
    hook: Option<RejectionHook>,
}

impl InvalidSignature {
    pub(crate) const fn new(error: Error, hook: Option<RejectionHook>) -> Self {
        Self { error, hook }
    }

    /// Why the signature was refused.
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// The verifier's error, with its detail (for logs, not for the caller).
    #[must_use]
    pub const fn error(&self) -> &Error {
        &self.error
    }

    /// `401 Unauthorized`.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// `"invalid QStash signature"`, whatever the cause.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        "invalid QStash signature"
    }
}

/// 413: the body is larger than the configured limit (by its `Content-Length`, or counted
/// while reading).
#[derive(Debug, thiserror::Error)]
#[error("QStash delivery body larger than the limit of {limit} bytes")]
pub struct PayloadTooLarge {
    limit: usize,
    hook: Option<RejectionHook>,
}

impl PayloadTooLarge {
    pub(crate) const fn new(limit: usize, hook: Option<RejectionHook>) -> Self {
        Self { limit, hook }
    }

    /// The limit the body exceeded.
    #[must_use]
    pub const fn limit(&self) -> usize {
        self.limit
    }

    /// `413 Payload Too Large`.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        StatusCode::PAYLOAD_TOO_LARGE
    }

    /// `"payload too large"`.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        "payload too large"
    }
}

/// 489 (or the configured status): the signature is valid, but the `Upstash-*` headers are
/// unusable (no message id, a garbled `Upstash-Retried`). A retry would not change them.
#[derive(Debug, thiserror::Error)]
#[error("invalid QStash delivery headers: {error}")]
pub struct InvalidDelivery {
    #[source]
    error: DeliveryError,
    status: StatusCode,
    hook: Option<RejectionHook>,
}

impl InvalidDelivery {
    pub(crate) const fn new(
        error: DeliveryError,
        status: StatusCode,
        hook: Option<RejectionHook>,
    ) -> Self {
        Self {
            error,
            status,
            hook,
        }
    }

    /// What is wrong with the headers.
    #[must_use]
    pub const fn error(&self) -> &DeliveryError {
        &self.error
    }

    /// 489 by default, or the configured payload error status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// `"invalid QStash delivery headers"`.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        "invalid QStash delivery headers"
    }
}

/// 489 (or the configured status): the signature is valid, but the body does not deserialize
/// into the handler's type. A retry would send the same body.
#[derive(Debug, thiserror::Error)]
#[error("QStash payload does not deserialize: {detail}")]
pub struct InvalidPayload {
    detail: Box<str>,
    status: StatusCode,
    hook: Option<RejectionHook>,
}

impl InvalidPayload {
    /// `detail` must not quote the body.
    #[cfg(feature = "axum")]
    pub(crate) const fn new(
        detail: Box<str>,
        status: StatusCode,
        hook: Option<RejectionHook>,
    ) -> Self {
        Self {
            detail,
            status,
            hook,
        }
    }

    /// 489 by default, or the configured payload error status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// `"invalid QStash payload"`.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        "invalid QStash payload"
    }
}

/// 489 (or the configured status): the signature is valid, but the body is not a QStash
/// callback.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct InvalidCallback {
    #[source]
    error: CallbackError,
    status: StatusCode,
    hook: Option<RejectionHook>,
}

impl InvalidCallback {
    #[cfg(feature = "axum")]
    pub(crate) const fn new(
        error: CallbackError,
        status: StatusCode,
        hook: Option<RejectionHook>,
    ) -> Self {
        Self {
            error,
            status,
            hook,
        }
    }

    /// What is wrong with the callback body.
    #[must_use]
    pub const fn error(&self) -> &CallbackError {
        &self.error
    }

    /// 489 by default, or the configured payload error status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// `"invalid QStash callback"`.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        "invalid QStash callback"
    }
}

/// 400: the body could not be read (the connection failed, or the body stream reported an
/// error).
#[derive(Debug, thiserror::Error)]
#[error("failed to read the request body")]
pub struct BodyReadFailed {
    #[source]
    error: BoxError,
    hook: Option<RejectionHook>,
}

impl BodyReadFailed {
    pub(crate) fn new(error: BoxError, hook: Option<RejectionHook>) -> Self {
        Self { error, hook }
    }

    /// `400 Bad Request`.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// `"failed to read the request body"`.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        "failed to read the request body"
    }
}

/// 408: the body did not arrive whole within the configured
/// [body timeout](crate::QStashConfig::body_timeout); the rest was not read. QStash retries.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {timeout:?}")]
pub struct BodyTimeout {
    timeout: Duration,
    hook: Option<RejectionHook>,
}

impl BodyTimeout {
    pub(crate) const fn new(timeout: Duration, hook: Option<RejectionHook>) -> Self {
        Self { timeout, hook }
    }

    /// The time limit the body missed.
    #[must_use]
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `408 Request Timeout`.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        StatusCode::REQUEST_TIMEOUT
    }

    /// `"request body timeout"`.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        "request body timeout"
    }
}

/// 500: an extractor that relies on [`QStashLayer`](crate::QStashLayer) (with
/// [`Layered`](crate::Layered)) ran on a route without the layer. A server bug; QStash will
/// retry.
#[derive(Debug, Default, thiserror::Error)]
#[error("QStash extractor with `Layered` used on a route without `QStashLayer`")]
#[non_exhaustive]
pub struct MissingLayer;

impl MissingLayer {
    /// `500 Internal Server Error`.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// `"QStash verification is not configured"`.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        "QStash verification is not configured"
    }
}

/// Why a QStash delivery was refused: one variant per cause.
///
/// | variant | status |
/// |---|---|
/// | [`InvalidSignature`] | 401 |
/// | [`PayloadTooLarge`] | 413 |
/// | [`InvalidDelivery`], [`InvalidPayload`], [`InvalidCallback`] | 489 + `Upstash-NonRetryable-Error: true` (or the configured status) |
/// | [`BodyReadFailed`] | 400 |
/// | [`BodyTimeout`] | 408 |
/// | [`MissingLayer`] | 500 |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QStashRejection {
    /// See [`InvalidSignature`].
    #[error(transparent)]
    InvalidSignature(#[from] InvalidSignature),
    /// See [`PayloadTooLarge`].
    #[error(transparent)]
    PayloadTooLarge(#[from] PayloadTooLarge),
    /// See [`InvalidDelivery`].
    #[error(transparent)]
    InvalidDelivery(#[from] InvalidDelivery),
    /// See [`InvalidPayload`].
    #[error(transparent)]
    InvalidPayload(#[from] InvalidPayload),
    /// See [`InvalidCallback`].
    #[error(transparent)]
    InvalidCallback(#[from] InvalidCallback),
    /// See [`BodyReadFailed`].
    #[error(transparent)]
    BodyReadFailed(#[from] BodyReadFailed),
    /// See [`BodyTimeout`].
    #[error(transparent)]
    BodyTimeout(#[from] BodyTimeout),
    /// See [`MissingLayer`].
    #[error(transparent)]
    MissingLayer(#[from] MissingLayer),
}

impl QStashRejection {
    /// The status of the built-in answer.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::InvalidSignature(r) => r.status(),
            Self::PayloadTooLarge(r) => r.status(),
            Self::InvalidDelivery(r) => r.status(),
            Self::InvalidPayload(r) => r.status(),
            Self::InvalidCallback(r) => r.status(),
            Self::BodyReadFailed(r) => r.status(),
            Self::BodyTimeout(r) => r.status(),
            Self::MissingLayer(r) => r.status(),
        }
    }

    /// The short text of the built-in answer; it gives the caller no detail.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        match self {
            Self::InvalidSignature(r) => r.body_text(),
            Self::PayloadTooLarge(r) => r.body_text(),
            Self::InvalidDelivery(r) => r.body_text(),
            Self::InvalidPayload(r) => r.body_text(),
            Self::InvalidCallback(r) => r.body_text(),
            Self::BodyReadFailed(r) => r.body_text(),
            Self::BodyTimeout(r) => r.body_text(),
            Self::MissingLayer(r) => r.body_text(),
        }
    }

    /// A short, stable name for logs and metrics: the [`ErrorKind`] name for a refused
    /// signature (`"expired"`, `"invalid_signature"`, …), else `"payload_too_large"`,
    /// `"invalid_delivery_headers"`, `"invalid_payload"`, `"invalid_callback"`,
    /// `"body_read_failed"`, `"body_timeout"` or `"missing_layer"`.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSignature(r) => r.kind().as_str(),
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::InvalidDelivery(_) => "invalid_delivery_headers",
            Self::InvalidPayload(_) => "invalid_payload",
            Self::InvalidCallback(_) => "invalid_callback",
            Self::BodyReadFailed(_) => "body_read_failed",
            Self::BodyTimeout(_) => "body_timeout",
            Self::MissingLayer(_) => "missing_layer",
        }
    }

    /// Whether the built-in answer tells QStash not to retry (status 489 with
    /// `Upstash-NonRetryable-Error: true`).
    #[must_use]
    pub fn is_non_retryable(&self) -> bool {
        self.status().as_u16() == NON_RETRYABLE_STATUS
    }

    /// The built-in answer: [`status`](Self::status), [`body_text`](Self::body_text) as
    /// `text/plain`, and `Upstash-NonRetryable-Error: true` with 489. Useful in an
    /// [`on_rejection`](crate::QStashConfig::on_rejection) hook that only adds to it.
    #[must_use]
    pub fn default_response(&self) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from_static(self.body_text().as_bytes()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.is_non_retryable() {
            headers.insert(NON_RETRYABLE_HEADER, HeaderValue::from_static("true"));
        }
        response
    }

    fn hook(&self) -> Option<&RejectionHook> {
        match self {
            Self::InvalidSignature(r) => r.hook.as_ref(),
            Self::PayloadTooLarge(r) => r.hook.as_ref(),
            Self::InvalidDelivery(r) => r.hook.as_ref(),
            Self::InvalidPayload(r) => r.hook.as_ref(),
            Self::InvalidCallback(r) => r.hook.as_ref(),
            Self::BodyReadFailed(r) => r.hook.as_ref(),
            Self::BodyTimeout(r) => r.hook.as_ref(),
            Self::MissingLayer(_) => None,
        }
    }

    /// The answer: the configured hook's, else [`default_response`](Self::default_response).
    pub(crate) fn into_http(self) -> Response<Bytes> {
        match self.hook() {
            Some(hook) => hook.call(&self),
            None => self.default_response(),
        }
    }

    /// One `tracing` event for this refusal: `reason`, `message_id` (as sent; the header is not
    /// signed) and the detail, never the token, a key or the body. Requests that are most
    /// likely not from QStash at all (no or a malformed token, a dropped connection, a body
    /// that trickles in) are logged at `debug`, the rest at `warn`.
    pub(crate) fn log(&self, headers: &HeaderMap) {
        let message_id = headers.get(MESSAGE_ID_HEADER).and_then(|v| v.to_str().ok());
        let reason = self.reason();
        let status = self.status().as_u16();
        let quiet = match self {
            Self::InvalidSignature(r) => matches!(
                r.kind(),
                ErrorKind::MissingSignature
                    | ErrorKind::MultipleSignatures
                    | ErrorKind::MalformedToken
                    | ErrorKind::TokenTooLong
            ),
            Self::BodyReadFailed(_) | Self::BodyTimeout(_) => true,
            _ => false,
        };
        if quiet {
            tracing::debug!(reason, message_id, status, error = %self, "QStash delivery refused");
        } else {
            tracing::warn!(reason, message_id, status, error = %self, "QStash delivery refused");
        }
    }
}

macro_rules! into_response {
    ($($ty:ident),*) => {$(
        #[cfg(feature = "axum")]
        #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
        impl axum_core::response::IntoResponse for $ty {
            fn into_response(self) -> axum_core::response::Response {
                QStashRejection::from(self).into_response()
            }
        }
    )*};
}

into_response!(
    InvalidSignature,
    PayloadTooLarge,
    InvalidDelivery,
    InvalidPayload,
    InvalidCallback,
    BodyReadFailed,
    BodyTimeout,
    MissingLayer
);

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum_core::response::IntoResponse for QStashRejection {
    fn into_response(self) -> axum_core::response::Response {
        self.into_http().map(axum_core::body::Body::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<(&'static str, QStashRejection, u16, &'static str)> {
        let status = crate::config::non_retryable_status();
        #[cfg_attr(not(feature = "axum"), allow(unused_mut))]
        let mut cases = vec![
            (
                "signature",
                QStashRejection::from(InvalidSignature::new(ErrorKind::Expired.into(), None)),
                401,
                "invalid QStash signature",
            ),
            (
                "too large",
                PayloadTooLarge::new(10, None).into(),
                413,
                "payload too large",
            ),
            (
                "delivery",
                InvalidDelivery::new(DeliveryError::Missing("Upstash-Message-Id"), status, None)
                    .into(),
                489,
                "invalid QStash delivery headers",
            ),
            (
                "body read",
                BodyReadFailed::new("reset".into(), None).into(),
                400,
                "failed to read the request body",
            ),
            (
                "body timeout",
                BodyTimeout::new(Duration::from_secs(10), None).into(),
                408,
                "request body timeout",
            ),
            (
                "missing layer",
                MissingLayer.into(),
                500,
                "QStash verification is not configured",
            ),
        ];
        #[cfg(feature = "axum")]
        cases.extend([
            (
                "payload",
                InvalidPayload::new("invalid type".into(), status, None).into(),
                489,
                "invalid QStash payload",
            ),
            (
                "callback",
                InvalidCallback::new(CallbackError::Base64("body"), status, None).into(),
                489,
                "invalid QStash callback",
            ),
        ]);
        cases
    }

    #[test]
    fn default_answers() {
        for (name, rejection, status, text) in all() {
            assert_eq!(rejection.status().as_u16(), status, "{name}");
            assert_eq!(rejection.body_text(), text, "{name}");
            let response = rejection.into_http();
            assert_eq!(response.status().as_u16(), status, "{name}");
            assert_eq!(response.body().as_ref(), text.as_bytes(), "{name}");
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "text/plain; charset=utf-8",
                "{name}"
            );
            assert_eq!(
                response.headers().get(NON_RETRYABLE_HEADER).is_some(),
                status == 489,
                "{name}"
            );
        }
    }

    #[test]
    fn reasons_name_the_cause() {
        let reasons: Vec<_> = all().iter().map(|(_, r, _, _)| r.reason()).collect();
        assert_eq!(
            reasons[..6],
            [
                "expired",
                "payload_too_large",
                "invalid_delivery_headers",
                "body_read_failed",
                "body_timeout",
                "missing_layer"
            ]
        );
    }

    #[test]
    fn a_payload_error_with_422_is_retryable() {
        let r = QStashRejection::from(InvalidDelivery::new(
            DeliveryError::Invalid("Upstash-Retried"),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ));
        assert!(!r.is_non_retryable());
        let response = r.into_http();
        assert_eq!(response.status(), 422);
        assert!(response.headers().get(NON_RETRYABLE_HEADER).is_none());
    }
}
