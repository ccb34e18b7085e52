//! [`InboxAnswer`]: what the inbox path sends: the handler's own answer, or the core's
//! [`Answer`] for every outcome the inbox decides (a replayed duplicate, busy, conflict,
//! unavailable, replayed token, failure).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use qstash_receiver::{Answer, Reason};

/// Which outcome an [`InboxAnswer`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InboxAnswerKind {
    /// The handler's own answer (and a handler's [`Answer`], e.g. "do not retry"). Committed
    /// when it is a 2xx, rolled back otherwise.
    Handler,
    /// The message was handled before: the stored answer (status, content type, the first
    /// bytes of the body) replayed ([`Answer::replay`]). The handler did not run.
    Duplicate,
    /// Another attempt of this message holds its lock ([`Answer::in_progress`]: 409 +
    /// `Retry-After` + `X-QStash-Duplicate: true`). The handler did not run.
    Busy,
    /// A serialization failure, a deadlock or a lock time-out rolled the transaction back
    /// ([`Answer::conflict`]: 409 + `Retry-After`). Nothing was committed; the retry runs
    /// the handler cleanly.
    Conflict,
    /// The database cannot be reached (refused, pool exhausted, statement time-out, shutting
    /// down) ([`Answer::store_unavailable`]: 503 + `Retry-After`). Nothing was committed.
    Unavailable,
    /// The replay guard saw this token's `jti` on another message, or the token has none
    /// ([`Answer::replayed`]: 401).
    Replayed,
    /// The database answered unexpectedly (a missing table, a permission, a bad statement)
    /// ([`Answer::store_failed`]: 500, logged at `error`). Nothing was committed; QStash
    /// retries.
    Failed,
}

/// An answer of the inbox path: what the handler answered, or what the inbox answered
/// instead, which is always the core's [`Answer`] (its status, headers, body and log are
/// decided there). Handlers build theirs with [`InboxAnswer::new`] (or [`ok`](Self::ok),
/// [`non_retryable`](Self::non_retryable), or any [`Answer`] through `From`) and hand it
/// to [`InboxTransaction::finish`](crate::InboxTransaction::finish), which commits on a 2xx.
///
/// Written by axum (feature `axum`, `IntoResponse`) and actix-web (feature `actix`,
/// `Responder`), or as plain `http` by [`into_http`](Self::into_http): a handler's own
/// answer as it is, an [`Answer`] through the framework's one writer of answers
/// (tower-qstash's `QStashAnswer`, actix-qstash's `QStashError`), which logs it once.
#[derive(Debug, Clone)]
#[must_use]
pub struct InboxAnswer {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    /// The handler's own status, content type and body, sent as they are.
    Handler {
        status: StatusCode,
        content_type: HeaderValue,
        body: Bytes,
    },
    /// The core's answer.
    Answer(Answer),
}

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

impl InboxAnswer {
    /// A handler's answer: `status` with `body` as `text/plain; charset=utf-8` (change it with
    /// [`content_type`](Self::content_type)), sent as it is. For a 489 that QStash must not
    /// retry, use [`non_retryable`](Self::non_retryable), which adds
    /// `Upstash-NonRetryable-Error: true`.
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Handler {
                status,
                content_type: TEXT,
                body: body.into(),
            },
        }
    }

    /// A handler's `200 OK` with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self::new(StatusCode::OK, body)
    }

    /// A handler's refusal for good, the core's [`Answer::do_not_retry`]: 489 +
    /// `Upstash-NonRetryable-Error: true`, so QStash sends the message to the dead-letter
    /// queue without retrying. Rolled back like any non-2xx; logged (at `warn`) when written.
    pub fn non_retryable(text: impl Into<Box<str>>) -> Self {
        Answer::do_not_retry(text).into()
    }

    /// The `Content-Type` of a handler's body. Defaults to `text/plain; charset=utf-8`. An
    /// [`Answer`]'s content type is the core's: unchanged.
    pub fn content_type(mut self, content_type: HeaderValue) -> Self {
        if let Inner::Handler {
            content_type: ref mut ct,
            ..
        } = self.inner
        {
            *ct = content_type;
        }
        self
    }

    /// The answer, logged with this request method when written as an [`Answer`] (the
    /// actix-web writer adds the request's own).
    pub fn with_method(mut self, method: &str) -> Self {
        if let Inner::Answer(answer) = self.inner {
            self.inner = Inner::Answer(answer.with_method(method));
        }
        self
    }

    /// The answer, an [`Answer`] logged with this message id unless it has one.
    pub(crate) fn for_message(mut self, message_id: &str) -> Self {
        if let Inner::Answer(answer) = self.inner {
            self.inner = Inner::Answer(if answer.message_id().is_some() {
                answer
            } else {
                answer.with_message_id(message_id)
            });
        }
        self
    }

    /// The core's answer, unless this is the handler's own.
    #[must_use]
    pub const fn answer(&self) -> Option<&Answer> {
        match &self.inner {
            Inner::Answer(answer) => Some(answer),
            Inner::Handler { .. } => None,
        }
    }

    /// Which outcome this reports.
    #[must_use]
    pub const fn kind(&self) -> InboxAnswerKind {
        match &self.inner {
            Inner::Handler { .. } => InboxAnswerKind::Handler,
            Inner::Answer(answer) => match answer.reason() {
                Reason::Duplicate => InboxAnswerKind::Duplicate,
                Reason::InProgress => InboxAnswerKind::Busy,
                Reason::Conflict => InboxAnswerKind::Conflict,
                Reason::StoreUnavailable => InboxAnswerKind::Unavailable,
                Reason::Replayed => InboxAnswerKind::Replayed,
                Reason::StoreFailed | Reason::NotConfigured => InboxAnswerKind::Failed,
                _ => InboxAnswerKind::Handler,
            },
        }
    }

    /// The status to answer with.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        match &self.inner {
            Inner::Handler { status, .. } => *status,
            Inner::Answer(answer) => answer.status(),
        }
    }

    /// The `Retry-After` value in seconds, if any.
    #[must_use]
    pub const fn retry_after_secs(&self) -> Option<u32> {
        match &self.inner {
            Inner::Handler { .. } => None,
            Inner::Answer(answer) => answer.retry_after_secs(),
        }
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> Bytes {
        match &self.inner {
            Inner::Handler { body, .. } => body.clone(),
            Inner::Answer(answer) => answer.body(),
        }
    }

    /// The body's `Content-Type`.
    #[must_use]
    pub fn body_content_type(&self) -> HeaderValue {
        match &self.inner {
            Inner::Handler { content_type, .. } => content_type.clone(),
            Inner::Answer(answer) => answer
                .headers()
                .find(|(name, _)| *name == http::header::CONTENT_TYPE)
                .map_or(TEXT, |(_, value)| value),
        }
    }

    /// The headers to send: a handler's `Content-Type`, or an [`Answer`]'s
    /// ([`Answer::headers`]).
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + use<> {
        let (handler, answer) = match &self.inner {
            Inner::Handler { content_type, .. } => (
                Some((http::header::CONTENT_TYPE, content_type.clone())),
                None,
            ),
            Inner::Answer(answer) => (None, Some(answer.headers())),
        };
        handler.into_iter().chain(answer.into_iter().flatten())
    }

    /// The answer as a plain `http` response: a handler's as it is; an [`Answer`] through
    /// tower-qstash's `QStashAnswer`, which logs it once and puts the [`Answer`] in the
    /// response's extensions.
    #[must_use]
    pub fn into_http(self) -> http::Response<Bytes> {
        match self.inner {
            Inner::Handler {
                status,
                content_type,
                body,
            } => {
                let mut response = http::Response::new(body);
                *response.status_mut() = status;
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, content_type);
                response
            }
            Inner::Answer(answer) => tower_qstash::QStashAnswer::from(answer).into_http(),
        }
    }
}

impl From<Answer> for InboxAnswer {
    fn from(answer: Answer) -> Self {
        Self {
            inner: Inner::Answer(answer),
        }
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

    fn respond_to(self, req: &actix_web::HttpRequest) -> actix_web::HttpResponse {
        use actix_web::http::StatusCode as ActixStatus;
        use actix_web::http::header::{HeaderName as ActixName, HeaderValue as ActixValue};

        match self.inner {
            Inner::Answer(answer) => {
                let answer = if answer.method().is_some() {
                    answer
                } else {
                    answer.with_method(req.method().as_str())
                };
                actix_qstash::QStashError::from(answer).respond()
            }
            Inner::Handler {
                status,
                content_type,
                body,
            } => {
                // actix-web 4 speaks `http` 0.2: the same bytes, another type.
                let status = ActixStatus::from_u16(status.as_u16())
                    .unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR);
                let mut response = actix_web::HttpResponse::new(status);
                if let (Ok(name), Ok(value)) = (
                    ActixName::from_bytes(http::header::CONTENT_TYPE.as_str().as_bytes()),
                    ActixValue::from_bytes(content_type.as_bytes()),
                ) {
                    response.headers_mut().insert(name, value);
                }
                response.set_body(actix_web::body::BoxBody::new(body))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_s_answer_is_sent_as_it_is() {
        let answer = InboxAnswer::new(StatusCode::CREATED, "{}")
            .content_type(HeaderValue::from_static("application/json"));
        assert_eq!(answer.kind(), InboxAnswerKind::Handler);
        assert!(answer.answer().is_none());
        let headers: Vec<_> = answer.headers().collect();
        assert_eq!(
            headers,
            [(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json")
            )]
        );
        let response = answer.into_http();
        assert_eq!(response.status(), 201);
        assert_eq!(response.body().as_ref(), b"{}");
        assert!(response.extensions().get::<Answer>().is_none());
    }

    #[test]
    fn every_other_answer_is_the_core_s() {
        let cases = [
            (
                InboxAnswer::non_retryable("no"),
                Answer::do_not_retry("no"),
                InboxAnswerKind::Handler,
            ),
            (
                Answer::in_progress(5).into(),
                Answer::in_progress(5),
                InboxAnswerKind::Busy,
            ),
            (
                Answer::conflict(5, "x").into(),
                Answer::conflict(5, "x"),
                InboxAnswerKind::Conflict,
            ),
            (
                Answer::store_unavailable(12, "x").into(),
                Answer::store_unavailable(12, "x"),
                InboxAnswerKind::Unavailable,
            ),
            (
                Answer::replayed("x").into(),
                Answer::replayed("x"),
                InboxAnswerKind::Replayed,
            ),
            (
                Answer::store_failed("x").into(),
                Answer::store_failed("x"),
                InboxAnswerKind::Failed,
            ),
        ];
        for (inbox, core, kind) in cases {
            assert_eq!(inbox.kind(), kind, "{core:?}");
            assert_eq!(inbox.answer().map(Answer::reason), Some(core.reason()));
            let got = inbox.into_http();
            let want = core.to_response();
            assert_eq!(got.status(), want.status(), "{core:?}");
            assert_eq!(got.headers(), want.headers(), "{core:?}");
            assert_eq!(got.body(), want.body(), "{core:?}");
            assert!(got.extensions().get::<Answer>().is_some(), "{core:?}");
        }
    }
}
