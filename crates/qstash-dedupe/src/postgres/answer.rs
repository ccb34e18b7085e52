//! [`InboxAnswer`]: every answer of the inbox path, and the one place that decides its status,
//! headers and body for each inbox outcome.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use qstash_receiver::{NON_RETRYABLE_HEADER, NON_RETRYABLE_STATUS};

use crate::deduplicator::DUPLICATE_HEADER;

/// Which outcome an [`InboxAnswer`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InboxAnswerKind {
    /// The handler's own answer. Committed when it is a 2xx, rolled back otherwise.
    Handler,
    /// The message was handled before: the stored answer (status, content type, the first
    /// bytes of the body) replayed, with `X-QStash-Duplicate: true`. The handler did not run.
    Duplicate,
    /// Another attempt of this message holds its lock: 409 + `Retry-After` +
    /// `X-QStash-Duplicate: true`. The handler did not run.
    Busy,
    /// A serialization failure, a deadlock or a lock time-out rolled the transaction back:
    /// 409 + `Retry-After`. Nothing was committed; the retry runs the handler cleanly.
    Conflict,
    /// The database cannot be reached (refused, pool exhausted, statement time-out, shutting
    /// down): 503 + `Retry-After`. Nothing was committed.
    Unavailable,
    /// The replay guard saw this token's `jti` on another message, or the token has none: 401.
    Replayed,
    /// The database answered unexpectedly (a missing table, a permission, a bad statement):
    /// 500, logged at `error`. Nothing was committed; QStash retries.
    Failed,
}

/// An answer of the inbox path: what the handler answered, or what the inbox answered
/// instead. Handlers build theirs with [`InboxAnswer::new`] (or [`ok`](Self::ok),
/// [`non_retryable`](Self::non_retryable)) and hand it to
/// [`InboxTransaction::finish`](crate::InboxTransaction::finish), which commits on a 2xx.
///
/// Written by axum (feature `axum`, `IntoResponse`) and actix-web (feature `actix`,
/// `Responder`), or by hand from [`status`](Self::status), [`headers`](Self::headers) and
/// [`body`](Self::body).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct InboxAnswer {
    kind: InboxAnswerKind,
    status: StatusCode,
    retry_after_secs: Option<u64>,
    content_type: HeaderValue,
    body: Bytes,
}

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

impl InboxAnswer {
    /// A handler's answer: `status` with `body` as `text/plain; charset=utf-8` (change it with
    /// [`content_type`](Self::content_type)).
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            kind: InboxAnswerKind::Handler,
            status,
            retry_after_secs: None,
            content_type: TEXT,
            body: body.into(),
        }
    }

    /// A handler's `200 OK` with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self::new(StatusCode::OK, body)
    }

    /// A handler's refusal for good: 489 + `Upstash-NonRetryable-Error: true`, so QStash sends
    /// the message to the dead-letter queue without retrying. Rolled back like any non-2xx.
    pub fn non_retryable(body: impl Into<Bytes>) -> Self {
        let status = StatusCode::from_u16(NON_RETRYABLE_STATUS).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(status, body)
    }

    /// The `Content-Type` of the body. Defaults to `text/plain; charset=utf-8`.
    pub fn content_type(mut self, content_type: HeaderValue) -> Self {
        self.content_type = content_type;
        self
    }

    /// The stored answer of a handled message, replayed.
    pub(crate) fn duplicate(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Self {
        Self {
            kind: InboxAnswerKind::Duplicate,
            status,
            retry_after_secs: None,
            content_type,
            body,
        }
    }

    /// What the inbox answers instead of the handler (every kind but `Handler` and
    /// `Duplicate`): the status, `Retry-After` and text are decided here, once.
    pub(crate) fn refusal(kind: InboxAnswerKind, retry_after_secs: u64) -> Self {
        let (status, text, retry) = match kind {
            InboxAnswerKind::Busy => (
                StatusCode::CONFLICT,
                "duplicate delivery: message being handled, retry later\n",
                true,
            ),
            InboxAnswerKind::Conflict => (
                StatusCode::CONFLICT,
                "transaction conflict (serialization failure or deadlock), retry later\n",
                true,
            ),
            InboxAnswerKind::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "inbox database unavailable, retry later\n",
                true,
            ),
            InboxAnswerKind::Replayed => (StatusCode::UNAUTHORIZED, "unauthorized\n", false),
            InboxAnswerKind::Failed | InboxAnswerKind::Handler | InboxAnswerKind::Duplicate => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error\n",
                false,
            ),
        };
        Self {
            kind,
            status,
            retry_after_secs: retry.then_some(retry_after_secs.max(1)),
            content_type: TEXT,
            body: Bytes::from_static(text.as_bytes()),
        }
    }

    /// Which outcome this reports.
    #[must_use]
    pub const fn kind(&self) -> InboxAnswerKind {
        self.kind
    }

    /// The status to answer with.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// The `Retry-After` value in seconds, if any.
    #[must_use]
    pub const fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The body.
    #[must_use]
    pub const fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body's `Content-Type`.
    #[must_use]
    pub const fn body_content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// The headers to send: `Content-Type`, and where they apply `Retry-After`,
    /// `X-QStash-Duplicate: true` and `Upstash-NonRetryable-Error: true` (on a 489).
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + use<> {
        let duplicate = matches!(
            self.kind,
            InboxAnswerKind::Duplicate | InboxAnswerKind::Busy
        )
        .then(|| {
            (
                HeaderName::from_static(DUPLICATE_HEADER),
                HeaderValue::from_static("true"),
            )
        });
        let retry_after = self
            .retry_after_secs
            .map(|secs| (http::header::RETRY_AFTER, HeaderValue::from(secs)));
        let non_retryable = (self.status.as_u16() == NON_RETRYABLE_STATUS).then(|| {
            (
                HeaderName::from_static(NON_RETRYABLE_HEADER),
                HeaderValue::from_static("true"),
            )
        });
        let content_type = (http::header::CONTENT_TYPE, self.content_type.clone());
        std::iter::once(content_type)
            .chain(duplicate)
            .chain(retry_after)
            .chain(non_retryable)
    }

    /// The answer as an `http` response.
    #[must_use]
    pub fn into_http(self) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::new());
        *response.status_mut() = self.status;
        response.headers_mut().extend(self.headers());
        *response.body_mut() = self.body;
        response
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum_core::response::IntoResponse for InboxAnswer {
    fn into_response(self) -> axum_core::response::Response {
        self.into_http().map(axum_core::body::Body::from)
    }
}

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
impl actix_web::Responder for InboxAnswer {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &actix_web::HttpRequest) -> actix_web::HttpResponse {
        use actix_web::http::StatusCode as ActixStatus;
        use actix_web::http::header::{HeaderName as ActixName, HeaderValue as ActixValue};

        // actix-web 4 speaks `http` 0.2: the same bytes, another type.
        let status = ActixStatus::from_u16(self.status.as_u16())
            .unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR);
        let mut response = actix_web::HttpResponse::new(status);
        for (name, value) in self.headers() {
            if let (Ok(name), Ok(value)) = (
                ActixName::from_bytes(name.as_str().as_bytes()),
                ActixValue::from_bytes(value.as_bytes()),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response.set_body(actix_web::body::BoxBody::new(self.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_status_and_headers() {
        type Case = (
            &'static str,
            InboxAnswer,
            u16,
            &'static [(&'static str, &'static str)],
        );
        let cases: [Case; 7] = [
            ("handler", InboxAnswer::ok("ok"), 200, &[]),
            (
                "non-retryable",
                InboxAnswer::non_retryable("no"),
                489,
                &[("upstash-nonretryable-error", "true")],
            ),
            (
                "duplicate",
                InboxAnswer::duplicate(StatusCode::CREATED, TEXT, Bytes::from_static(b"x")),
                201,
                &[("x-qstash-duplicate", "true")],
            ),
            (
                "busy",
                InboxAnswer::refusal(InboxAnswerKind::Busy, 5),
                409,
                &[("x-qstash-duplicate", "true"), ("retry-after", "5")],
            ),
            (
                "conflict",
                InboxAnswer::refusal(InboxAnswerKind::Conflict, 0),
                409,
                &[("retry-after", "1")],
            ),
            (
                "unavailable",
                InboxAnswer::refusal(InboxAnswerKind::Unavailable, 12),
                503,
                &[("retry-after", "12")],
            ),
            (
                "replayed",
                InboxAnswer::refusal(InboxAnswerKind::Replayed, 9),
                401,
                &[],
            ),
        ];
        for (name, answer, status, headers) in cases {
            assert_eq!(answer.status().as_u16(), status, "{name}");
            let got: Vec<(String, String)> = answer
                .headers()
                .filter(|(n, _)| *n != http::header::CONTENT_TYPE)
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            let want: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_http_response_carries_everything() {
        let response = InboxAnswer::refusal(InboxAnswerKind::Unavailable, 148).into_http();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "148");
        assert_eq!(
            response.body().as_ref(),
            b"inbox database unavailable, retry later\n"
        );
    }
}
