//! The receiver and its settings: what the pipeline is configured with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use super::budget::{Budget, DEFAULT_BUDGET_BODIES};
use crate::error::ConfigError;
use crate::keys::KeyRing;
use crate::subject::SubjectPolicy;
use crate::time::Clock;
use crate::verify::Verifier;

/// The default body limit: 1 MiB, QStash's own maximum message size on most plans.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The default body timeout: 10 s, 100 KiB/s for the default limit. QStash sends the whole
/// body at once from a data centre.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Retry-After` of a `busy` answer, in seconds.
pub const BUSY_RETRY_AFTER_SECS: u32 = 5;

/// The status of an answer to a delivery whose signature is valid but whose payload (or
/// delivery headers) cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PayloadErrorStatus {
    /// 489 with `Upstash-NonRetryable-Error: true`: QStash moves the message to the DLQ at
    /// once, since a retry of the same bytes cannot help. The default.
    #[default]
    NonRetryable,
    /// 422 Unprocessable Entity: QStash retries it like any failure, which helps when a
    /// deploy of a newer payload type is under way.
    UnprocessableEntity,
}

impl PayloadErrorStatus {
    /// The HTTP status.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::NonRetryable => StatusCode::from_u16(crate::headers::NON_RETRYABLE_STATUS)
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            Self::UnprocessableEntity => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// A [`Receiver`]'s settings, read through [`Receiver::settings`]: each getter has the name
/// of the [`Receiver`] builder method that sets it.
///
/// ```
/// use std::time::Duration;
/// use qstash_receiver::{Receiver, SigningKeys};
///
/// let receiver = Receiver::from(SigningKeys::new("sig_current", "sig_next")?)
///     .max_body_bytes(64 * 1024)
///     .body_timeout(Duration::from_secs(2));
/// let settings = receiver.settings();
/// assert_eq!(settings.max_body_bytes(), 64 * 1024);
/// assert_eq!(settings.body_timeout(), Some(Duration::from_secs(2)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Settings {
    subject_policy: SubjectPolicy,
    max_body_bytes: usize,
    body_timeout: Option<Duration>,
    payload_error_status: PayloadErrorStatus,
    clock: Clock,
    max_buffered_bytes: Option<usize>,
}

impl Settings {
    /// What the token's `sub` is compared with ([`Receiver::subject_policy`]).
    #[must_use]
    pub const fn subject_policy(&self) -> &SubjectPolicy {
        &self.subject_policy
    }

    /// The largest body accepted, in bytes ([`Receiver::max_body_bytes`]).
    #[must_use]
    pub const fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// How long reading the whole body may take, if limited ([`Receiver::body_timeout`]).
    #[must_use]
    pub const fn body_timeout(&self) -> Option<Duration> {
        self.body_timeout
    }

    /// The answer to a valid delivery whose payload cannot be used
    /// ([`Receiver::payload_error_status`]).
    #[must_use]
    pub const fn payload_error_status(&self) -> PayloadErrorStatus {
        self.payload_error_status
    }

    /// Where the time comes from ([`Receiver::clock`]).
    #[must_use]
    pub const fn clock(&self) -> &Clock {
        &self.clock
    }

    /// How many bytes all requests together may have reserved for their bodies at once
    /// ([`Receiver::max_buffered_bytes`]; by default [`DEFAULT_BUDGET_BODIES`] times the body
    /// limit).
    #[must_use]
    pub fn max_buffered_bytes(&self) -> usize {
        self.max_buffered_bytes
            .unwrap_or_else(|| self.max_body_bytes.saturating_mul(DEFAULT_BUDGET_BODIES))
    }
}

/// The receiving pipeline and its configuration: the verifier, the subject policy, the body
/// limit and timeout, the payload-error status, the clock and the buffer budget. The builder
/// methods set them; [`settings`](Self::settings) reads them.
///
/// Cheap to clone; clones share the keys (see [`Verifier::rotate`]) and the buffer budget.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use qstash_receiver::{Receiver, RequestHead, Signer, SigningKeys, Verifier};
///
/// let receiver = Receiver::new(Verifier::new(SigningKeys::new("sig_current", "sig_next")?));
///
/// let body = br#"{"order":42}"#;
/// let headers = Signer::new("sig_current")?
///     .delivery_headers("https://app.example.com/api/hook", body, "msg_1", 0);
///
/// // Before the body: everything the headers can prove.
/// let head = RequestHead::new("POST", "/api/hook", &headers).declared_len(Some(12));
/// let admission = receiver.check_head(&head).map_err(|r| r.to_string())?;
/// // The body, whole (an adapter hands it over chunk by chunk with `Admission::data`):
/// let verified = admission.finish_with(Bytes::from_static(body)).map_err(|r| r.to_string())?;
/// assert_eq!(verified.delivery.message_id, "msg_1");
///
/// // Refusals say everything the answer needs.
/// let refused = receiver.check_head(&RequestHead::new("POST", "/other", &headers)).unwrap_err();
/// assert_eq!((refused.status().as_u16(), refused.reason().as_str()), (401, "subject_mismatch"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Receiver {
    pub(super) inner: Arc<Inner>,
}

#[derive(Clone)]
pub(super) struct Inner {
    pub(super) verifier: Verifier,
    pub(super) settings: Settings,
    pub(super) budget: Arc<Budget>,
}

impl Receiver {
    /// A pipeline over `verifier` with the defaults: [`SubjectPolicy::PathAndQuery`], a 1 MiB
    /// body limit, a 10 s body timeout, 489 for payload errors, the system clock and a buffer
    /// budget of [`DEFAULT_BUDGET_BODIES`] body limits.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
                settings: Settings {
                    subject_policy: SubjectPolicy::PathAndQuery,
                    max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                    body_timeout: Some(DEFAULT_BODY_TIMEOUT),
                    payload_error_status: PayloadErrorStatus::NonRetryable,
                    clock: Clock::system(),
                    max_buffered_bytes: None,
                },
                budget: Arc::new(Budget::default()),
            }),
        }
    }

    /// A pipeline over [`Verifier::from_env`].
    ///
    /// # Errors
    ///
    /// As [`KeyRing::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Verifier::from_env().map(Self::new)
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut Arc::make_mut(&mut self.inner).settings);
        self
    }

    /// What the token's `sub` is compared with.
    ///
    /// Defaults to [`SubjectPolicy::PathAndQuery`].
    pub fn subject_policy(self, policy: SubjectPolicy) -> Self {
        self.with(|s| s.subject_policy = policy)
    }

    /// The largest body accepted, in bytes: a larger declared length is refused before
    /// reading, a longer body while reading (413).
    ///
    /// Defaults to 1 MiB ([`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(self, limit: usize) -> Self {
        self.with(|s| s.max_body_bytes = limit)
    }

    /// How long reading the whole body may take, in total, from the first time the body had
    /// to be waited for; `None` for no limit (408). The adapters run the timer the
    /// [`Admission`](crate::Admission) asks for; where an adapter can run none (tower-qstash
    /// without its `tokio` feature, or outside a Tokio runtime), a body that has to be waited
    /// for is answered 500 `not_configured` instead of being read with no limit: set `None`
    /// there.
    ///
    /// Defaults to 10 s ([`DEFAULT_BODY_TIMEOUT`]).
    pub fn body_timeout(self, timeout: impl Into<Option<Duration>>) -> Self {
        let timeout = timeout.into();
        self.with(|s| s.body_timeout = timeout)
    }

    /// The answer to a valid delivery whose payload or delivery headers cannot be used.
    ///
    /// Defaults to [`PayloadErrorStatus::NonRetryable`] (489).
    pub fn payload_error_status(self, status: PayloadErrorStatus) -> Self {
        self.with(|s| s.payload_error_status = status)
    }

    /// Where the time comes from.
    ///
    /// Defaults to [`Clock::system`].
    pub fn clock(self, clock: Clock) -> Self {
        self.with(|s| s.clock = clock)
    }

    /// How many bytes all requests together may have reserved for their bodies at once: a
    /// delivery that would go past it is answered 503 with `Retry-After` (QStash retries)
    /// instead of taking more memory. Each authenticated request reserves its declared length
    /// (or the body limit when it declares none) until its body is read.
    ///
    /// Defaults to [`DEFAULT_BUDGET_BODIES`] times the body limit.
    pub fn max_buffered_bytes(self, bytes: usize) -> Self {
        self.with(|s| s.max_buffered_bytes = Some(bytes))
    }

    /// The settings, each read by the name of the method that sets it.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The verifier.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The bytes reserved for bodies being read right now, across all clones.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.inner.budget.in_use()
    }
}

impl From<Verifier> for Receiver {
    fn from(verifier: Verifier) -> Self {
        Self::new(verifier)
    }
}

impl From<KeyRing> for Receiver {
    fn from(keys: KeyRing) -> Self {
        Self::new(Verifier::new(keys))
    }
}

impl From<crate::SigningKeys> for Receiver {
    fn from(keys: crate::SigningKeys) -> Self {
        Self::new(Verifier::new(keys))
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("Receiver")
            .field("verifier", &self.inner.verifier)
            .field("subject_policy", &s.subject_policy)
            .field("max_body_bytes", &s.max_body_bytes)
            .field("body_timeout", &s.body_timeout)
            .field("payload_error_status", &s.payload_error_status)
            .field("clock", &s.clock)
            .field("max_buffered_bytes", &s.max_buffered_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> Receiver {
        Receiver::from(crate::SigningKeys::new("sig_current", "sig_next").unwrap())
    }

    #[test]
    fn settings_read_what_the_builder_set() {
        let defaults = receiver();
        let s = defaults.settings();
        assert_eq!(s.subject_policy(), &SubjectPolicy::PathAndQuery);
        assert_eq!(s.max_body_bytes(), DEFAULT_MAX_BODY_BYTES);
        assert_eq!(s.body_timeout(), Some(DEFAULT_BODY_TIMEOUT));
        assert_eq!(s.payload_error_status(), PayloadErrorStatus::NonRetryable);
        assert_eq!(
            s.max_buffered_bytes(),
            DEFAULT_MAX_BODY_BYTES * DEFAULT_BUDGET_BODIES
        );

        let set = defaults
            .clone()
            .subject_policy(SubjectPolicy::DangerouslySkipCheck)
            .max_body_bytes(10)
            .body_timeout(None)
            .payload_error_status(PayloadErrorStatus::UnprocessableEntity)
            .clock(Clock::fixed(7));
        let s = set.settings();
        assert_eq!(s.subject_policy(), &SubjectPolicy::DangerouslySkipCheck);
        assert_eq!(s.max_body_bytes(), 10);
        assert_eq!(s.body_timeout(), None);
        assert_eq!(
            s.payload_error_status(),
            PayloadErrorStatus::UnprocessableEntity
        );
        assert_eq!(s.clock().now(), 7);
        assert_eq!(s.max_buffered_bytes(), 10 * DEFAULT_BUDGET_BODIES);
        assert_eq!(
            set.max_buffered_bytes(25).settings().max_buffered_bytes(),
            25
        );
        // A clone changed by a builder method leaves the original as it was.
        assert_eq!(defaults.settings().max_body_bytes(), DEFAULT_MAX_BODY_BYTES);
    }
}
