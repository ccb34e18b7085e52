//! Errors: why a delivery was refused, and why a configuration was refused.

use std::fmt;

/// Why a signature was refused.
///
/// Every cause has its own kind so that logs can say *why* a delivery was refused; the HTTP
/// answer that adapters give does not depend on it (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request carries no `Upstash-Signature` header.
    MissingSignature,
    /// The request carries more than one `Upstash-Signature` header.
    MultipleSignatures,
    /// The token is longer than the verifier's bound; it was not decoded.
    TokenTooLong,
    /// The token is not three base64url segments, or its header is not a JSON object.
    MalformedToken,
    /// The token's `alg` is not exactly `HS256`.
    UnsupportedAlgorithm,
    /// The token's header has a `crit` entry, which this verifier does not understand.
    UnsupportedCriticalHeader,
    /// The MAC matches neither the current nor the next signing key.
    InvalidSignature,
    /// A required claim is missing, has the wrong JSON type, or appears twice.
    InvalidClaims,
    /// The `iss` claim is not `Upstash`.
    InvalidIssuer,
    /// The token expired: `now >= exp + tolerance`.
    Expired,
    /// The token is not valid yet: `now < nbf - tolerance`.
    NotYetValid,
    /// The `sub` claim does not name the URL this request was sent to.
    SubjectMismatch,
    /// The `body` claim is not the SHA-256 of the request body.
    BodyHashMismatch,
    /// No signing keys are configured for the request's region.
    NoSigningKeys,
}

impl ErrorKind {
    /// A short, stable, lowercase name for logs and metrics, such as `"expired"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::MultipleSignatures => "multiple_signatures",
            Self::TokenTooLong => "token_too_long",
            Self::MalformedToken => "malformed_token",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnsupportedCriticalHeader => "unsupported_critical_header",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidClaims => "invalid_claims",
            Self::InvalidIssuer => "invalid_issuer",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::SubjectMismatch => "subject_mismatch",
            Self::BodyHashMismatch => "body_hash_mismatch",
            Self::NoSigningKeys => "no_signing_keys",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused signature: an [`ErrorKind`] plus, for some kinds, a detail that helps diagnose it.
///
/// # Security
///
/// `Display` and `Debug` never show the token, a signing key or the request body. A subject
/// mismatch names both URLs (they are not secret, and this is what makes a proxy
/// misconfiguration easy to spot); an expired token names `exp` and the current time.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    detail: Detail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Detail {
    None,
    Text(Box<str>),
    Subject {
        token: Box<str>,
        request: Box<str>,
    },
    Window {
        now: i64,
        nbf: i64,
        exp: i64,
        tolerance: u64,
    },
}

impl Error {
    pub(crate) const fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            detail: Detail::None,
        }
    }

    pub(crate) fn with_text(kind: ErrorKind, text: impl Into<Box<str>>) -> Self {
        Self {
            kind,
            detail: Detail::Text(text.into()),
        }
    }

    pub(crate) fn subject(token: &str, request: &str) -> Self {
        Self {
            kind: ErrorKind::SubjectMismatch,
            detail: Detail::Subject {
                token: token.into(),
                request: request.into(),
            },
        }
    }

    pub(crate) fn window(kind: ErrorKind, now: i64, nbf: i64, exp: i64, tolerance: u64) -> Self {
        Self {
            kind,
            detail: Detail::Window {
                now,
                nbf,
                exp,
                tolerance,
            },
        }
    }

    /// Why the signature was refused.
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For [`ErrorKind::SubjectMismatch`]: the subject the token names and what the request was
    /// compared as (a whole URL, or a path and query).
    #[must_use]
    pub fn subjects(&self) -> Option<(&str, &str)> {
        match &self.detail {
            Detail::Subject { token, request } => Some((token, request)),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::MissingSignature => "missing `Upstash-Signature` header",
            ErrorKind::MultipleSignatures => "more than one `Upstash-Signature` header",
            ErrorKind::TokenTooLong => "signature token longer than the allowed bound",
            ErrorKind::MalformedToken => "malformed signature token",
            ErrorKind::UnsupportedAlgorithm => {
                "unsupported token algorithm (only HS256 is accepted)"
            }
            ErrorKind::UnsupportedCriticalHeader => "token header has an unsupported `crit` entry",
            ErrorKind::InvalidSignature => {
                "invalid signature: matches neither the current nor the next signing key"
            }
            ErrorKind::InvalidClaims => "invalid token claims",
            ErrorKind::InvalidIssuer => "invalid `iss` claim (expected `Upstash`)",
            ErrorKind::Expired => "token expired",
            ErrorKind::NotYetValid => "token not valid yet",
            ErrorKind::SubjectMismatch => "`sub` claim does not match the request URL",
            ErrorKind::BodyHashMismatch => "`body` claim does not match the request body",
            ErrorKind::NoSigningKeys => "no signing keys configured for the request's region",
        };
        f.write_str(what)?;
        match &self.detail {
            Detail::None => Ok(()),
            Detail::Text(text) => write!(f, ": {text}"),
            Detail::Subject { token, request } => {
                write!(f, ": token is for `{token}`, request is `{request}`")
            }
            Detail::Window {
                now,
                nbf,
                exp,
                tolerance,
            } => write!(
                f,
                ": now {now}, valid from {nbf} until {exp} (exclusive), tolerance {tolerance}s"
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &format_args!("{self}"))
            .finish()
    }
}

impl std::error::Error for Error {}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

/// A refused configuration: an empty key, a missing environment variable, and so on.
///
/// Messages name the key's role or the variable, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A signing key is empty or blank.
    #[error("the {0} signing key is empty")]
    EmptyKey(&'static str),
    /// A signing key has leading or trailing whitespace (often a newline read from a file).
    #[error("the {0} signing key has leading or trailing whitespace")]
    KeyWhitespace(&'static str),
    /// A required environment variable is not set (or not valid UTF-8).
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    /// An environment variable is set to a value this crate cannot use.
    #[error("environment variable `{name}` is invalid: {reason}")]
    InvalidEnv {
        /// The variable's name.
        name: String,
        /// Why the value was refused (never the value itself).
        reason: &'static str,
    },
    /// A public base URL that cannot be the start of a delivery's URL.
    #[error("invalid public base URL: {reason}")]
    InvalidBaseUrl {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Signing keys are configured and `QSTASH_DEV` asks for the public dev keys too.
    #[error(
        "`QSTASH_DEV` is set together with configured signing keys ({configured}): unset \
         `QSTASH_DEV` in production, or unset the keys to verify with the public dev-server keys"
    )]
    DevWithConfiguredKeys {
        /// The key variables that are set.
        configured: String,
    },
}

/// A `serde_json` error as text that never quotes the input: serde's "invalid type: string
/// \"...\"" messages would copy body content into logs, so those keep only what was expected.
pub(crate) fn json_error_text(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = text
        .rfind(" at line ")
        .map_or(text.as_str(), |at| &text[..at]);
    let what = match text.find(", expected ") {
        Some(at) if text.starts_with("invalid") => {
            let kind = if text.starts_with("invalid type") {
                "invalid type"
            } else {
                "invalid value"
            };
            format!("{kind}, expected {}", &text[at + ", expected ".len()..])
        }
        _ if e.is_syntax() || e.is_eof() => "not valid JSON".to_owned(),
        _ => text.to_owned(),
    };
    if e.line() > 0 {
        format!("{what} (line {}, column {})", e.line(), e.column())
    } else {
        what
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_do_not_quote_the_input() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let e = serde_json::from_str::<T>(r#"{"n":"secret-value"}"#).unwrap_err();
        let text = json_error_text(&e);
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("expected u32"), "{text}");
        let e = serde_json::from_str::<T>(r#"{}"#).unwrap_err();
        assert!(json_error_text(&e).contains("missing field `n`"));
        let e = serde_json::from_str::<T>(r#"{"n": secret"#).unwrap_err();
        let text = json_error_text(&e);
        assert!(text.starts_with("not valid JSON"), "{text}");
    }
}
