//! Step 1 of the pipeline: what a request's head can decide, before its body is read.

use std::fmt;

use http::{StatusCode, Version};

use super::admission::{Admission, too_large};
use super::answer::{MethodForLog, Reason, Refusal, logged_message_id};
use super::budget::Reserve as _;
use super::config::{BUSY_RETRY_AFTER_SECS, Receiver};
use super::subject;
use crate::delivery::{Delivery, DeliveryHeaders};
use crate::diagnose;
use crate::error::Error;
use crate::headers::{
    self, CALLER_IP_HEADER, HeaderLookup, MESSAGE_ID_HEADER, REGION_HEADER, RETRIED_HEADER,
    SCHEDULE_ID_HEADER, SIGNATURE_HEADER, Seen, TOPIC_NAME_HEADER,
};
use crate::verify::{Validation, VerifiedToken};

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

    fn closes(&self) -> bool {
        matches!(
            self.version,
            Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
        )
    }
}

/// The headers the pipeline reads, found in one walk over the request's headers
/// ([`HeaderLookup::for_each`]).
#[derive(Debug, Default)]
struct Found<'h> {
    signature: Seen<'h>,
    content_length: Seen<'h>,
    /// With `Upstash-Region`, which the verifier also reads (its first value).
    delivery: DeliveryHeaders<'h>,
}

impl<'h> Found<'h> {
    fn in_headers<H: HeaderLookup + ?Sized>(headers: &'h H) -> Self {
        let mut found = Self::default();
        headers.for_each(&mut |name, value| match name {
            SIGNATURE_HEADER => found.signature.add(value),
            REGION_HEADER => found.delivery.region.add(value),
            "content-length" => found.content_length.add(value),
            MESSAGE_ID_HEADER => found.delivery.message_id.add(value),
            RETRIED_HEADER => found.delivery.retried.add(value),
            SCHEDULE_ID_HEADER => found.delivery.schedule_id.add(value),
            TOPIC_NAME_HEADER => found.delivery.topic_name.add(value),
            CALLER_IP_HEADER => found.delivery.caller_ip.add(value),
            "content-type" => found.delivery.add_content_type(value),
            _ => {}
        });
        found
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
        let found = Found::in_headers(head.headers);
        let refuse = |refusal: Refusal| {
            refusal
                .closing(head.closes())
                .for_message(logged_message_id(found.delivery.message_id.first))
                .with_method(head.method)
        };
        let c = &self.inner.settings;
        let token =
            headers::signature_of(found.signature).map_err(|e| refuse(Refusal::signature(e)))?;
        let region = found.delivery.region.first_text();
        let now = c.clock().now();
        let token = self
            .verify_token(head, region, token, now)
            .map_err(|e| refuse(self.diagnosed(Refusal::signature(e), head, region, token, now)))?;
        let declared = head
            .declared_len
            .or_else(|| headers::content_length_of(found.content_length));
        let limit = u64::try_from(c.max_body_bytes()).unwrap_or(u64::MAX);
        if declared.is_some_and(|len| len > limit) {
            return Err(refuse(too_large(c.max_body_bytes())));
        }
        let delivery = Delivery::from_seen(&found.delivery)
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

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::headers::READ_BY_THE_PIPELINE;

    /// A map that is only looked up, so the pipeline walks it with the default
    /// [`HeaderLookup::for_each`] (nine lookups), as an adapter that implements only `get_all`.
    struct LookupOnly(HeaderMap);

    impl HeaderLookup for LookupOnly {
        type Values<'h> = <HeaderMap as HeaderLookup>::Values<'h>;

        fn get_all<'h>(&'h self, name: &HeaderName) -> Self::Values<'h> {
            HeaderLookup::get_all(&self.0, name)
        }
    }

    fn found<H: HeaderLookup>(map: &H) -> String {
        format!("{:?}", Found::in_headers(map))
    }

    /// Each header the pipeline reads, absent, once, once unreadable and twice, among the
    /// others and unrelated ones: `http::HeaderMap`'s one walk finds what nine lookups find,
    /// and each header is found (the walk's names and the lookups' names are the same list).
    #[test]
    fn one_walk_finds_what_the_lookups_find() {
        let values: [&[&[u8]]; 4] = [&[], &[b"1"], &[b"\xff x"], &[b"a", b"b"]];
        let empty = found(&HeaderMap::new());
        for name in &READ_BY_THE_PIPELINE {
            for (i, values) in values.iter().enumerate() {
                let mut map = HeaderMap::new();
                map.append("x-unrelated", HeaderValue::from_static("1"));
                for other in &READ_BY_THE_PIPELINE {
                    if other != name {
                        map.append(other.clone(), HeaderValue::from_static("v"));
                    }
                }
                for value in *values {
                    map.append(name.clone(), HeaderValue::from_bytes(value).unwrap());
                }
                let walked = found(&map);
                assert_eq!(walked, found(&LookupOnly(map.clone())), "{name} {i}");
                let mut alone = HeaderMap::new();
                for value in *values {
                    alone.append(name.clone(), HeaderValue::from_bytes(value).unwrap());
                }
                if i == 1 {
                    assert_ne!(found(&alone), empty, "{name} is not read");
                }
            }
        }
    }
}
