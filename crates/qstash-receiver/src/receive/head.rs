//! Step 1 of the pipeline: what a request's head can decide, before its body is read.

use std::fmt;

use http::{HeaderName, StatusCode, Version};

use super::admission::{Admission, too_large};
use super::answer::{MethodForLog, Reason, Refusal, logged_message_id};
use super::budget::Reserve as _;
use super::config::{BUSY_RETRY_AFTER_SECS, Receiver};
use super::subject;
use crate::delivery::Delivery;
use crate::diagnose;
use crate::error::Error;
use crate::headers::{self, HeaderLookup};
use crate::verify::{Validation, VerifiedToken};

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

impl Receiver {
    /// Step 1: decides everything the request's head can decide, before its body is read.
    /// In this order: exactly one `Upstash-Signature`, visible ASCII (else 401); the token, all
    /// but its `body` claim, with `sub` under the [`SubjectPolicy`](crate::subject::SubjectPolicy)
    /// (else 401); the declared
    /// body length against the limit (else 413); the `Upstash-*` delivery headers (else 489 or
    /// 422, see [`PayloadErrorStatus`](crate::receive::PayloadErrorStatus)); room in the buffer budget
    /// (else 503).
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
        let c = &self.inner.settings;
        let token = headers::signature(head.headers).map_err(|e| refuse(Refusal::signature(e)))?;
        let region = headers::region(head.headers);
        let now = c.clock().now();
        let token = self
            .verify_token(head, region, token, now)
            .map_err(|e| refuse(self.diagnosed(Refusal::signature(e), head, region, token, now)))?;
        let declared = head
            .declared_len
            .or_else(|| headers::content_length(head.headers));
        let limit = u64::try_from(c.max_body_bytes()).unwrap_or(u64::MAX);
        if declared.is_some_and(|len| len > limit) {
            return Err(refuse(too_large(c.max_body_bytes())));
        }
        let delivery = Delivery::from_lookup(|name| head.headers.get_all(name))
            .map_err(|e| refuse(self.payload_refusal(Reason::InvalidDeliveryHeaders, &e)))?;
        let reserve = declared.map_or(c.max_body_bytes(), |len| {
            usize::try_from(len).unwrap_or(usize::MAX)
        });
        let permit = self
            .inner
            .budget
            .reserve(reserve, c.max_buffered_bytes())
            .ok_or_else(|| {
                refuse(
                    Refusal::new(
                        Reason::Busy,
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "{reserve} more bytes would pass the buffer budget of {} bytes",
                            c.max_buffered_bytes()
                        ),
                    )
                    .retry_after(BUSY_RETRY_AFTER_SECS),
                )
            })?;
        Ok(Admission::new(
            c.max_body_bytes(),
            c.body_timeout(),
            c.payload_error_status(),
            token,
            delivery,
            head.closes(),
            MethodForLog::new(head.method),
            permit,
            declared,
        ))
    }

    fn verify_token<H: HeaderLookup + ?Sized>(
        &self,
        head: &RequestHead<'_, H>,
        region: Option<&str>,
        token: &str,
        now: i64,
    ) -> Result<VerifiedToken, Error> {
        let expected = subject::expected(self.inner.settings.subject_policy(), head);
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
            let expected = subject::expected(self.inner.settings.subject_policy(), head);
            let validation = Validation::new(expected.subject())
                .in_region(region)
                .at(now);
            diagnose::token_summary(&self.inner.verifier, token, &validation, kind)
        })
    }

    fn payload_refusal(&self, reason: Reason, error: &dyn fmt::Display) -> Refusal {
        Refusal::new(
            reason,
            self.inner.settings.payload_error_status().status(),
            error.to_string(),
        )
    }
}
