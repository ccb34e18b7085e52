//! [`QStashAnswer`]: the core's [`Answer`] as tower and axum write it; the one writer of this
//! crate (the layer, the extractors and a handler's own answers all go through it).

use std::fmt;

use bytes::Bytes;
use http::{Response, StatusCode};
use qstash_receiver::{Answer, Reason};

/// The core's [`Answer`], written for tower and axum: a refusal of the layer or of an
/// extractor, an exactly-once layer's duplicate, or a handler's "do not retry" / "retry
/// later" (status, body text, headers and log level: the table is on [`Answer`]).
///
/// As an `IntoResponse` (or through [`into_http`](Self::into_http)) it logs the answer once
/// ([`Answer::log`]) and answers with [`Answer::to_response`], with the [`Answer`] itself in
/// the response's extensions. To answer differently, change the response the axum way, with
/// `axum::middleware::map_response` (or tower's `MapResponseLayer`) around the routes: a
/// response that carries an [`Answer`] extension is one of these. A handler that takes
/// `Result<QStash<T>, QStashRejection>` and does not turn the rejection into a response logs
/// nothing.
///
/// # Examples
///
/// A handler's "a retry cannot help" (489 with `Upstash-NonRetryable-Error: true`):
///
/// ```
/// use qstash_receiver::Answer;
/// use tower_qstash::QStashAnswer;
///
/// let response = QStashAnswer::from(Answer::do_not_retry("order 0 does not exist")).into_http();
/// assert_eq!(response.status().as_u16(), 489);
/// assert_eq!(response.headers()["upstash-nonretryable-error"], "true");
/// assert!(response.extensions().get::<Answer>().is_some());
/// ```
#[derive(Debug)]
#[must_use]
pub struct QStashAnswer {
    answer: Answer,
}

/// The extractors' rejection: a [`QStashAnswer`] (the same type).
pub type QStashRejection = QStashAnswer;

impl QStashAnswer {
    /// The core's answer.
    #[must_use]
    pub const fn answer(&self) -> &Answer {
        &self.answer
    }

    /// The core's answer (the same as [`answer`](Self::answer)), by its older name.
    #[must_use]
    pub const fn refusal(&self) -> &Answer {
        &self.answer
    }

    /// The core's answer, consuming `self` (not logged).
    #[must_use]
    pub fn into_answer(self) -> Answer {
        self.answer
    }

    /// The core's answer, consuming `self` (not logged), by its older name.
    #[must_use]
    pub fn into_refusal(self) -> Answer {
        self.answer
    }

    /// The answer's status ([`Answer::status`]).
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.answer.status()
    }

    /// Why ([`Answer::reason`]; [`Reason::as_str`] is the stable name).
    #[must_use]
    pub const fn reason(&self) -> Reason {
        self.answer.reason()
    }

    /// The answer's short body text ([`Answer::body_text`]).
    #[must_use]
    pub fn body_text(&self) -> &str {
        self.answer.body_text()
    }

    /// Logs the answer and builds the response, as `IntoResponse` does, for plain `http`.
    pub fn into_http(self) -> Response<Bytes> {
        self.answer.log();
        let mut response = self.answer.to_response();
        response.extensions_mut().insert(self.answer);
        response
    }
}

impl From<Answer> for QStashAnswer {
    fn from(answer: Answer) -> Self {
        Self { answer }
    }
}

impl fmt::Display for QStashAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.answer, f)
    }
}

impl std::error::Error for QStashAnswer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.answer)
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum_core::response::IntoResponse for QStashAnswer {
    fn into_response(self) -> axum_core::response::Response {
        self.into_http().map(axum_core::body::Body::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_is_the_answer_s() {
        for answer in [
            Answer::not_configured("no receiver"),
            Answer::duplicate(),
            Answer::do_not_retry("no such order"),
        ] {
            let rejection = QStashAnswer::from(answer.clone());
            assert_eq!(rejection.status(), answer.status());
            assert_eq!(rejection.reason(), answer.reason());
            assert_eq!(rejection.body_text(), answer.body_text());
            assert_eq!(rejection.to_string(), answer.to_string());
            let response = rejection.into_http();
            let want = answer.to_response();
            assert_eq!(response.status(), want.status());
            assert_eq!(response.headers(), want.headers());
            assert_eq!(response.body(), want.body());
            let kept = response.extensions().get::<Answer>().unwrap();
            assert_eq!(kept.reason(), answer.reason());
        }
    }
}
