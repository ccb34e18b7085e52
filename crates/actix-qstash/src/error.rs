//! [`QStashError`]: why a delivery was refused, and the HTTP answer for it.

use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use qstash_receiver::{DeliveryError, NON_RETRYABLE_HEADER, NON_RETRYABLE_STATUS};

/// Why a delivery was refused.
///
/// The HTTP answer (see [`QStashError::status`]) is short plain text that does not say why;
/// the reason goes to the logs. `Display` never shows the token, a key or the body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QStashError {
    /// No [`QStashConfig`](crate::QStashConfig) in `app_data`. Answered with 500.
    #[error("no `QStashConfig` in app_data: add one with `App::app_data` or use `QStashGuard`")]
    NotConfigured,
    /// No, several, or an invalid `Upstash-Signature`: every verification failure. Answered
    /// with 401; [`kind`](qstash_receiver::Error::kind) says why.
    #[error("{0}")]
    Signature(#[from] qstash_receiver::Error),
    /// The body is larger than the limit (by `Content-Length`, or counted while reading).
    /// Answered with 413.
    #[error("body larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// The body could not be read (the client went away, a broken chunked encoding, …).
    /// Answered with 400.
    #[error("could not read the body: {0}")]
    ReadBody(#[source] PayloadError),
    /// The body did not arrive whole within the
    /// [body timeout](crate::QStashConfig::body_timeout); the rest was not read. Answered with
    /// 408 (QStash retries it).
    #[error("body not received within {timeout:?}")]
    BodyTimeout {
        /// The configured time limit.
        timeout: Duration,
    },
    /// The signature is valid but the delivery headers are not usable (no
    /// `Upstash-Message-Id`, a garbled `Upstash-Retried`, …). Answered with the configured
    /// payload error status (489 by default).
    #[error("{source}")]
    Delivery {
        /// What is wrong with the headers.
        source: DeliveryError,
        /// The status to answer with.
        status: StatusCode,
    },
    /// The signature is valid but the body does not deserialize into the extractor's type (or
    /// is not a callback body). Answered with the configured payload error status (489 by
    /// default).
    #[error("payload does not deserialize: {reason}")]
    Payload {
        /// Why, without quoting the body.
        reason: String,
        /// The status to answer with.
        status: StatusCode,
    },
}

impl QStashError {
    /// The HTTP status this refusal is answered with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ReadBody(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Delivery { status, .. } | Self::Payload { status, .. } => *status,
        }
    }

    /// The short text of the HTTP answer; it does not say why, so it tells a prober nothing.
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        match self {
            Self::NotConfigured => "QStash receiver not configured",
            Self::Signature(_) => "invalid QStash signature",
            Self::PayloadTooLarge { .. } => "payload too large",
            Self::ReadBody(_) => "could not read the body",
            Self::BodyTimeout { .. } => "request body timeout",
            Self::Delivery { .. } => "invalid QStash delivery headers",
            Self::Payload { .. } => "invalid payload",
        }
    }

    /// A short, stable, lowercase name for logs and metrics: the core's
    /// [`ErrorKind::as_str`](qstash_receiver::ErrorKind::as_str) for signature failures, else
    /// `not_configured`, `payload_too_large`, `read_body`, `body_timeout`,
    /// `invalid_delivery_headers` or `invalid_payload`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::Signature(e) => e.kind().as_str(),
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::ReadBody(_) => "read_body",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::Delivery { .. } => "invalid_delivery_headers",
            Self::Payload { .. } => "invalid_payload",
        }
    }
}

impl ResponseError for QStashError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status();
        let mut res = HttpResponse::build(status);
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ));
        if status.as_u16() == NON_RETRYABLE_STATUS {
            res.insert_header((NON_RETRYABLE_HEADER, HeaderValue::from_static("true")));
        }
        res.body(self.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody as _;
    use qstash_receiver::ErrorKind;

    #[test]
    fn answers() {
        let non_retryable = StatusCode::from_u16(489).unwrap();
        let cases = [
            ("not configured", QStashError::NotConfigured, 500, false),
            (
                "signature",
                QStashError::Signature(ErrorKind::Expired.into()),
                401,
                false,
            ),
            (
                "too large",
                QStashError::PayloadTooLarge { limit: 1 },
                413,
                false,
            ),
            (
                "read",
                QStashError::ReadBody(PayloadError::Incomplete(None)),
                400,
                false,
            ),
            (
                "body timeout",
                QStashError::BodyTimeout {
                    timeout: Duration::from_secs(10),
                },
                408,
                false,
            ),
            (
                "delivery, 489",
                QStashError::Delivery {
                    source: DeliveryError::Missing("Upstash-Message-Id"),
                    status: non_retryable,
                },
                489,
                true,
            ),
            (
                "payload, 489",
                QStashError::Payload {
                    reason: "x".into(),
                    status: non_retryable,
                },
                489,
                true,
            ),
            (
                "payload, 422",
                QStashError::Payload {
                    reason: "x".into(),
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                },
                422,
                false,
            ),
        ];
        for (name, err, status, non_retryable) in cases {
            let res = err.error_response();
            assert_eq!(res.status().as_u16(), status, "{name}");
            assert_eq!(
                res.headers()
                    .get(NON_RETRYABLE_HEADER)
                    .map(|v| v.to_str().unwrap()),
                non_retryable.then_some("true"),
                "{name}"
            );
            let body = res.into_body().try_into_bytes().unwrap();
            assert_eq!(body, err.body_text().as_bytes(), "{name}");
            assert!(body.len() < 40, "{name}: short body");
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(
            QStashError::Signature(ErrorKind::SubjectMismatch.into()).reason(),
            "subject_mismatch"
        );
        assert_eq!(
            QStashError::PayloadTooLarge { limit: 3 }.reason(),
            "payload_too_large"
        );
    }
}
