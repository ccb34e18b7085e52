//! [`ApiError`]: a refusal as QStash answers it, a status and `{"error": "..."}`.

use std::fmt;

use http::StatusCode;

/// Why the local QStash refused a request: the status and the message of its
/// `{"error": "..."}` body. Messages never contain the token or a signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message body is larger than 1 MiB",
        )
    }

    pub(crate) fn batch_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch request is larger than 1 MiB in total (all its messages' bodies and headers)",
        )
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid or missing token")
    }

    /// A capacity refusal: 412 (as QStash answers past a plan's limit, and not 429, which
    /// the clients read as a rate limit), naming the limit.
    pub(crate) fn full(what: &str, limit: usize, field: &str) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            format!("the local QStash holds at most {limit} {what} (its limit Limits::{field})"),
        )
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body, `{"error": "..."}`.
    #[must_use]
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.message }).to_string()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}
