//! The receiving pipeline: one framework-free function from a request to a verified delivery
//! or a [`Refusal`], in two steps so that nothing is buffered before it is authenticated.
//!
//! 1. [`Receiver::check_head`], with the request's method, target, headers and declared
//!    length, before any byte of the body is read. In this order:
//!    1. exactly one `Upstash-Signature`, visible ASCII (else 401);
//!    2. the token, all but its `body` claim: length, shape, `alg`, the MAC (current key, then
//!       next), the claims, `iss`, the validity window on the configured [`Clock`], and `sub`
//!       under the [`SubjectPolicy`] (else 401);
//!    3. the declared body length against the limit (else 413);
//!    4. the `Upstash-*` delivery headers (else 489 or 422, see [`PayloadErrorStatus`]);
//!    5. room in the buffer budget shared by all requests (else 503 with `Retry-After`).
//!
//!    Every refusal of this step leaves the body unread and answers HTTP/1.x with
//!    `Connection: close`.
//! 2. The adapter reads the body with [`Admission::body_limit`] and
//!    [`Admission::body_timeout`], then calls [`Admission::finish`] (the `body` claim, else
//!    401) or [`Admission::body_failed`] (413, 408 or 400).
//!
//! A typed payload is then read with [`Verified::json`] or [`Verified::callback`] (489 or 422).

mod answer;
mod budget;
mod subject;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, StatusCode, Version};
use serde::de::DeserializeOwned;

pub use self::answer::{
    Answer, LOG_TARGET, Linger, LogLevel, MAX_LOGGED_MESSAGE_ID, MAX_REPLAYED_BODY, Reason, Refusal,
};
pub use self::budget::DEFAULT_BUDGET_BODIES;

use self::answer::{MethodForLog, logged_message_id};
use self::budget::{Budget, Permit, Reserve as _};
use crate::callback::Callback;
use crate::claims::Claims;
use crate::delivery::Delivery;
use crate::diagnose;
use crate::error::{ConfigError, Error};
use crate::headers::{self, HeaderLookup};
use crate::keys::KeyRing;
use crate::subject::SubjectPolicy;
use crate::time::Clock;
use crate::verify::{Validation, VerifiedToken, Verifier};

/// The default body limit: 1 MiB, QStash's own maximum message size on most plans.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The default body timeout: 10 s, 100 KiB/s for the default limit. QStash sends the whole
/// body at once from a data centre.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Retry-After` of a `busy` answer, in seconds.
pub const BUSY_RETRY_AFTER_SECS: u32 = 5;

const MESSAGE_ID_NAME: HeaderName = HeaderName::from_static(crate::headers::MESSAGE_ID_HEADER);

/// The request target a delivery came to, as the server or platform gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestTarget<'a> {
    /// The path and query as they were sent (`/api/hook?a=1`): what every HTTP server has.
    Raw(&'a str),
    /// A path, and a query only as decoded name/value pairs: what serverless events that keep
    /// no raw query give (API Gateway REST, ALB). `sub`'s query is then compared as a
    /// multiset of decoded pairs: the same names and values, as often, in any order.
    DecodedQuery {
        /// The path (`/prod/api/hook`).
        path: &'a str,
        /// The decoded query pairs.
        query: &'a [(&'a str, &'a str)],
    },
}

/// What the pipeline reads of a request before its body.
#[derive(Debug)]
pub struct RequestHead<'a, H: ?Sized> {
    pub(crate) method: &'a str,
    pub(crate) target: RequestTarget<'a>,
    pub(crate) scheme: Option<&'a str>,
    pub(crate) authority: Option<&'a str>,
    pub(crate) version: Version,
    pub(crate) declared_len: Option<u64>,
    pub(crate) headers: &'a H,
}

impl<'a, H: HeaderLookup + ?Sized> RequestHead<'a, H> {
    /// A request to `target` (the path and query the server saw), over HTTP/1.1, with no
    /// known scheme, authority or body length.
    #[must_use]
    pub const fn new(method: &'a str, target: &'a str, headers: &'a H) -> Self {
        Self {
            method,
            target: RequestTarget::Raw(target),
            scheme: None,
            authority: None,
            version: Version::HTTP_11,
            declared_len: None,
            headers,
        }
    }

    /// The target in another form (see [`RequestTarget`]).
    #[must_use]
    pub const fn target(mut self, target: RequestTarget<'a>) -> Self {
        self.target = target;
        self
    }

    /// The scheme the request came in with (`https` behind TLS), when the server knows it.
    #[must_use]
    pub const fn scheme(mut self, scheme: Option<&'a str>) -> Self {
        self.scheme = scheme;
        self
    }

    /// The URI's authority (HTTP/2 `:authority`, or an absolute-form target), when it has one.
    #[must_use]
    pub const fn authority(mut self, authority: Option<&'a str>) -> Self {
        self.authority = authority;
        self
    }

    /// The HTTP version, which decides whether a refusal closes the connection.
    #[must_use]
    pub const fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// The body's declared length: `Content-Length`, or a body's exact size hint. A value
    /// `Content-Length` header is also read by [`Receiver::check_head`] itself.
    #[must_use]
    pub const fn declared_len(mut self, len: Option<u64>) -> Self {
        self.declared_len = len;
        self
    }

    fn message_id(&self) -> Option<Box<str>> {
        logged_message_id(self.headers.get_all(&MESSAGE_ID_NAME).next())
    }

    fn closes(&self) -> bool {
        matches!(
            self.version,
            Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
        )
    }
}

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

/// The receiving pipeline and its configuration: the verifier, the subject policy, the body
/// limit and timeout, the payload-error status, the clock and the buffer budget.
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
/// // After reading at most `admission.body_limit()` bytes:
/// let verified = admission.finish(Bytes::from_static(body)).map_err(|r| r.to_string())?;
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
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    verifier: Verifier,
    subject: SubjectPolicy,
    max_body_bytes: usize,
    body_timeout: Option<Duration>,
    payload_error_status: PayloadErrorStatus,
    clock: Clock,
    budget: Arc<Budget>,
    budget_bytes: Option<usize>,
}

impl Receiver {
    /// A pipeline over `verifier` with the defaults: [`SubjectPolicy::PathAndQuery`], a 1 MiB
    /// body limit, a 10 s body timeout, 489 for payload errors, the system clock and a buffer
    /// budget of [`DEFAULT_BUDGET_BODIES`] body limits.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
                subject: SubjectPolicy::PathAndQuery,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                body_timeout: Some(DEFAULT_BODY_TIMEOUT),
                payload_error_status: PayloadErrorStatus::NonRetryable,
                clock: Clock::system(),
                budget: Arc::new(Budget::default()),
                budget_bytes: None,
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

    fn with(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// What the token's `sub` is compared with.
    ///
    /// Defaults to [`SubjectPolicy::PathAndQuery`].
    pub fn subject_policy(self, policy: SubjectPolicy) -> Self {
        self.with(|c| c.subject = policy)
    }

    /// The largest body accepted, in bytes: a larger declared length is refused before
    /// reading, a longer body while reading (413).
    ///
    /// Defaults to 1 MiB ([`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(self, limit: usize) -> Self {
        self.with(|c| c.max_body_bytes = limit)
    }

    /// How long reading the whole body may take, in total; `None` for no limit (408).
    /// The adapters run the timer; this only says how long.
    ///
    /// Defaults to 10 s ([`DEFAULT_BODY_TIMEOUT`]).
    pub fn body_timeout(self, timeout: impl Into<Option<Duration>>) -> Self {
        let timeout = timeout.into();
        self.with(|c| c.body_timeout = timeout)
    }

    /// The answer to a valid delivery whose payload or delivery headers cannot be used.
    ///
    /// Defaults to [`PayloadErrorStatus::NonRetryable`] (489).
    pub fn payload_error_status(self, status: PayloadErrorStatus) -> Self {
        self.with(|c| c.payload_error_status = status)
    }

    /// Where the time comes from.
    ///
    /// Defaults to [`Clock::system`].
    pub fn clock(self, clock: Clock) -> Self {
        self.with(|c| c.clock = clock)
    }

    /// How many bytes all requests together may have reserved for their bodies at once: a
    /// delivery that would go past it is answered 503 with `Retry-After` (QStash retries)
    /// instead of taking more memory. Each authenticated request reserves its declared length
    /// (or the body limit when it declares none) until its body is read.
    ///
    /// Defaults to [`DEFAULT_BUDGET_BODIES`] times the body limit.
    pub fn max_buffered_bytes(self, bytes: usize) -> Self {
        self.with(|c| c.budget_bytes = Some(bytes))
    }

    /// The verifier.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The subject policy.
    #[must_use]
    pub fn subject(&self) -> &SubjectPolicy {
        &self.inner.subject
    }

    /// The body limit, in bytes.
    #[must_use]
    pub fn body_limit(&self) -> usize {
        self.inner.max_body_bytes
    }

    /// The body timeout.
    #[must_use]
    pub fn body_timeout_value(&self) -> Option<Duration> {
        self.inner.body_timeout
    }

    /// The payload-error status.
    #[must_use]
    pub fn payload_error(&self) -> PayloadErrorStatus {
        self.inner.payload_error_status
    }

    /// The clock.
    #[must_use]
    pub fn clock_source(&self) -> &Clock {
        &self.inner.clock
    }

    /// The buffer budget, in bytes.
    #[must_use]
    pub fn buffered_bytes_limit(&self) -> usize {
        self.inner.budget_bytes.unwrap_or_else(|| {
            self.inner
                .max_body_bytes
                .saturating_mul(DEFAULT_BUDGET_BODIES)
        })
    }

    /// The bytes reserved for bodies being read right now, across all clones.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.inner.budget.in_use()
    }

    /// Step 1: decides everything the request's head can decide, before its body is read.
    /// In this order: exactly one `Upstash-Signature`, visible ASCII (else 401); the token, all
    /// but its `body` claim, with `sub` under the [`SubjectPolicy`] (else 401); the declared
    /// body length against the limit (else 413); the `Upstash-*` delivery headers (else 489 or
    /// 422, see [`PayloadErrorStatus`]); room in the buffer budget (else 503).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] to answer with; the body must then be left unread.
    pub fn check_head<H: HeaderLookup + ?Sized>(
        &self,
        head: &RequestHead<'_, H>,
    ) -> Result<Admission, Refusal> {
        let refuse = |refusal: Refusal| {
            refusal
                .closing(head.closes())
                .for_message(head.message_id())
                .with_method(head.method)
        };
        let c = &*self.inner;
        let token = headers::signature(head.headers).map_err(|e| refuse(Refusal::signature(e)))?;
        let region = headers::region(head.headers);
        let now = c.clock.now();
        let token = self
            .verify_token(head, region, token, now)
            .map_err(|e| refuse(self.diagnosed(Refusal::signature(e), head, region, token, now)))?;
        let declared = head
            .declared_len
            .or_else(|| headers::content_length(head.headers));
        let limit = u64::try_from(c.max_body_bytes).unwrap_or(u64::MAX);
        if declared.is_some_and(|len| len > limit) {
            return Err(refuse(too_large(c.max_body_bytes)));
        }
        let delivery = Delivery::from_lookup(|name| head.headers.get_all(name))
            .map_err(|e| refuse(self.payload_refusal(Reason::InvalidDeliveryHeaders, &e)))?;
        let reserve = declared.map_or(c.max_body_bytes, |len| {
            usize::try_from(len).unwrap_or(usize::MAX)
        });
        let permit = c
            .budget
            .reserve(reserve, self.buffered_bytes_limit())
            .ok_or_else(|| {
                refuse(
                    Refusal::new(
                        Reason::Busy,
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "{reserve} more bytes would pass the buffer budget of {} bytes",
                            self.buffered_bytes_limit()
                        ),
                    )
                    .retry_after(BUSY_RETRY_AFTER_SECS),
                )
            })?;
        Ok(Admission {
            body_limit: c.max_body_bytes,
            body_timeout: c.body_timeout,
            payload_error_status: c.payload_error_status,
            token,
            delivery,
            close: head.closes(),
            method: MethodForLog::new(head.method),
            _permit: permit,
        })
    }

    fn verify_token<H: HeaderLookup + ?Sized>(
        &self,
        head: &RequestHead<'_, H>,
        region: Option<&str>,
        token: &str,
        now: i64,
    ) -> Result<VerifiedToken, Error> {
        let expected = subject::expected(&self.inner.subject, head);
        let validation = Validation::new(expected.subject())
            .in_region(region)
            .at(now);
        self.inner.verifier.verify_token(token, &validation)
    }

    /// `refusal` with the token's diagnosis, for the debug log only.
    fn diagnosed<H: HeaderLookup + ?Sized>(
        &self,
        refusal: Refusal,
        head: &RequestHead<'_, H>,
        region: Option<&str>,
        token: &str,
        now: i64,
    ) -> Refusal {
        let Reason::Signature(kind) = refusal.reason() else {
            return refusal;
        };
        refusal.with_diagnosis(|| {
            let expected = subject::expected(&self.inner.subject, head);
            let validation = Validation::new(expected.subject())
                .in_region(region)
                .at(now);
            diagnose::token_summary(&self.inner.verifier, token, &validation, kind)
        })
    }

    fn payload_refusal(&self, reason: Reason, error: &dyn fmt::Display) -> Refusal {
        Refusal::new(
            reason,
            self.inner.payload_error_status.status(),
            error.to_string(),
        )
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
        let c = &*self.inner;
        f.debug_struct("Receiver")
            .field("verifier", &c.verifier)
            .field("subject", &c.subject)
            .field("max_body_bytes", &c.max_body_bytes)
            .field("body_timeout", &c.body_timeout)
            .field("payload_error_status", &c.payload_error_status)
            .field("clock", &c.clock)
            .field("max_buffered_bytes", &self.buffered_bytes_limit())
            .finish()
    }
}

fn too_large(limit: usize) -> Refusal {
    Refusal::new(
        Reason::PayloadTooLarge,
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body larger than the limit of {limit} bytes"),
    )
}

/// Why reading a body failed, as the adapter saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyFailure {
    /// More bytes arrived than [`Admission::body_limit`].
    TooLarge,
    /// The body was not whole within [`Admission::body_timeout`].
    TimedOut,
    /// The body stream failed (the client went away, a framing error).
    Unreadable,
}

/// A request whose head passed every check: the body may now be read, up to
/// [`body_limit`](Self::body_limit) bytes within [`body_timeout`](Self::body_timeout).
///
/// Holds the request's reservation in the buffer budget until it is finished or dropped.
#[must_use = "an admission reserves buffer budget until it is finished or dropped"]
pub struct Admission {
    // Copied, not a `Receiver` clone: no shared reference count to touch per request.
    body_limit: usize,
    body_timeout: Option<Duration>,
    payload_error_status: PayloadErrorStatus,
    token: VerifiedToken,
    delivery: Delivery,
    close: bool,
    method: MethodForLog,
    _permit: Permit,
}

impl Admission {
    /// The most body bytes to read.
    #[must_use]
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// How long reading the body may take in total, if limited.
    #[must_use]
    pub fn body_timeout(&self) -> Option<Duration> {
        self.body_timeout
    }

    /// The delivery headers, already checked.
    #[must_use]
    pub const fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Step 2: the body is read; checks its length and the `body` claim.
    ///
    /// # Errors
    ///
    /// 413 for a body over the limit, 401 (`body_hash_mismatch`) for a body QStash did not sign.
    pub fn finish(self, body: Bytes) -> Result<Verified, Refusal> {
        if body.len() > self.body_limit() {
            return Err(self.logged(too_large(self.body_limit()).closing(self.close)));
        }
        let Self {
            token,
            delivery,
            payload_error_status,
            method,
            ..
        } = self;
        let claimed = *token.claimed_digest();
        match token.verify_body(&body) {
            Ok(claims) => Ok(Verified {
                claims,
                delivery,
                body,
                payload_error_status,
                method,
            }),
            Err(e) => Err(logged(
                Refusal::signature(e)
                    .with_diagnosis(|| Some(diagnose::body_summary(&claimed, &body))),
                &delivery,
                method,
            )),
        }
    }

    /// Step 2, when the body could not be read.
    pub fn body_failed(self, failure: BodyFailure) -> Refusal {
        let refusal = match failure {
            BodyFailure::TooLarge => too_large(self.body_limit()),
            BodyFailure::TimedOut => Refusal::new(
                Reason::BodyTimeout,
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "body not received within {:?}",
                    self.body_timeout().unwrap_or_default()
                ),
            ),
            BodyFailure::Unreadable => Refusal::new(
                Reason::BodyUnreadable,
                StatusCode::BAD_REQUEST,
                "the body stream failed",
            ),
        };
        let refusal = refusal.closing(self.close);
        self.logged(refusal)
    }

    /// `answer` with this request's message id and method, for its log event.
    fn logged(&self, answer: Answer) -> Answer {
        logged(answer, &self.delivery, self.method)
    }
}

/// `answer` with the request's message id and method, for its log event.
fn logged(answer: Answer, delivery: &Delivery, method: MethodForLog) -> Answer {
    answer
        .for_message(logged_message_id(Some(delivery.message_id.as_bytes())))
        .with_method(method.as_str())
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("delivery", &self.delivery)
            .field("body_limit", &self.body_limit())
            .field("body_timeout", &self.body_timeout())
            .finish_non_exhaustive()
    }
}

/// What [`Verified::split`] leaves besides the claims and the delivery: the body and how to
/// refuse its payload.
#[derive(Debug, Clone)]
pub struct VerifiedRest {
    body: Bytes,
    payload_error_status: PayloadErrorStatus,
    method: MethodForLog,
}

impl VerifiedRest {
    /// The raw body, as signed.
    #[must_use]
    pub const fn body(&self) -> &Bytes {
        &self.body
    }
}

/// A verified delivery: the claims, the delivery headers and the body QStash signed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified {
    /// The token's claims.
    pub claims: Claims,
    /// What the `Upstash-*` headers say.
    pub delivery: Delivery,
    /// The raw body, as signed.
    pub body: Bytes,
    payload_error_status: PayloadErrorStatus,
    method: MethodForLog,
}

impl Verified {
    /// The body as JSON of type `T`.
    ///
    /// # Errors
    ///
    /// The refusal for a payload that does not deserialize (489 or 422); its detail names
    /// the place and kind of the error, never the body's content.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Refusal> {
        serde_json::from_slice(&self.body).map_err(|e| {
            self.payload_refusal(
                Reason::InvalidPayload,
                &format!(
                    "payload does not deserialize: {}",
                    crate::error::json_error_text(&e)
                ),
            )
        })
    }

    /// The body as a QStash callback.
    ///
    /// # Errors
    ///
    /// The refusal for a body that is not a callback (489 or 422).
    pub fn callback(&self) -> Result<Callback, Refusal> {
        Callback::from_slice(&self.body)
            .map_err(|e| self.payload_refusal(Reason::InvalidCallback, &e))
    }

    /// The claims, the delivery and the body.
    #[must_use]
    pub fn into_parts(self) -> (Claims, Delivery, Bytes) {
        (self.claims, self.delivery, self.body)
    }

    /// The claims, the delivery and the rest, to keep apart without a copy (an adapter puts
    /// the claims and the delivery in the request's extensions, where handlers read them, and
    /// [`join`](Self::join)s them again for its extractors).
    #[must_use]
    pub fn split(self) -> (Claims, Delivery, VerifiedRest) {
        let rest = VerifiedRest {
            body: self.body,
            payload_error_status: self.payload_error_status,
            method: self.method,
        };
        (self.claims, self.delivery, rest)
    }

    /// The verified delivery [`split`](Self::split) apart, whole again.
    #[must_use]
    pub fn join(claims: Claims, delivery: Delivery, rest: VerifiedRest) -> Self {
        Self {
            claims,
            delivery,
            body: rest.body,
            payload_error_status: rest.payload_error_status,
            method: rest.method,
        }
    }

    /// The payload-error status this delivery was received with.
    #[must_use]
    pub const fn payload_error_status(&self) -> PayloadErrorStatus {
        self.payload_error_status
    }

    fn payload_refusal(&self, reason: Reason, error: &dyn fmt::Display) -> Refusal {
        let answer = Refusal::new(
            reason,
            self.payload_error_status.status(),
            error.to_string(),
        );
        logged(answer, &self.delivery, self.method)
    }
}
