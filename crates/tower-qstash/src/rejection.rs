//! [`QStashRejection`]: the extractors' refusal, which is the core's [`Refusal`] as it is.

use std::fmt;

use bytes::Bytes;
use http::{Response, StatusCode};
use qstash_receiver::{Reason, Refusal};

use crate::layer::{RejectionHook, answer};

/// Why an extractor refused a request: the core's [`Refusal`], which decides the answer
/// (status, body text, headers, log level; the table is on [`Refusal`]).
///
/// Match on [`reason`](Self::reason) for the cause. As an `IntoResponse` it logs the refusal
/// once ([`Refusal::log`]) and answers with [`Refusal::to_response`], or behind a
/// [`QStashLayer`](crate::QStashLayer) with an [`on_rejection`](crate::QStashLayer::on_rejection)
/// hook, with the hook's answer. A handler that takes `Result<QStash<T>, QStashRejection>`
/// and does not turn the rejection into a response logs nothing.
#[derive(Debug)]
#[must_use]
pub struct QStashRejection {
    refusal: Refusal,
    hook: Option<RejectionHook>,
}

impl QStashRejection {
    pub(crate) const fn new(refusal: Refusal, hook: Option<RejectionHook>) -> Self {
        Self { refusal, hook }
    }

    /// The core's refusal.
    #[must_use]
    pub const fn refusal(&self) -> &Refusal {
        &self.refusal
    }

    /// The core's refusal, consuming `self` (not logged).
    #[must_use]
    pub fn into_refusal(self) -> Refusal {
        self.refusal
    }

    /// The answer's status ([`Refusal::status`]).
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.refusal.status()
    }

    /// Why it was refused ([`Refusal::reason`]; [`Reason::as_str`] is the stable name).
    #[must_use]
    pub const fn reason(&self) -> Reason {
        self.refusal.reason()
    }

    /// The answer's short body text ([`Refusal::body_text`]).
    #[must_use]
    pub const fn body_text(&self) -> &'static str {
        self.refusal.body_text()
    }

    /// Logs the refusal and builds the answer, as `IntoResponse` does, for plain `http`.
    pub fn into_http(self) -> Response<Bytes> {
        answer(&self.refusal, self.hook.as_ref())
    }
}

impl From<Refusal> for QStashRejection {
    fn from(refusal: Refusal) -> Self {
        Self::new(refusal, None)
    }
}

impl fmt::Display for QStashRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.refusal, f)
    }
}

impl std::error::Error for QStashRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.refusal)
    }
}

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

    #[test]
    fn the_answer_is_the_refusal_s() {
        let refusal = Refusal::not_configured("no receiver");
        let rejection = QStashRejection::from(refusal.clone());
        assert_eq!(rejection.status(), refusal.status());
        assert_eq!(rejection.reason().as_str(), "not_configured");
        assert_eq!(rejection.body_text(), refusal.body_text());
        assert_eq!(rejection.to_string(), refusal.to_string());
        let response = rejection.into_http();
        let want = refusal.to_response();
        assert_eq!(response.status(), want.status());
        assert_eq!(response.headers(), want.headers());
        assert_eq!(response.body(), want.body());
    }
}
