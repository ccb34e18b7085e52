//! The request headers the core reads, read one way: one [`HeaderLookup`], one
//! [`signature`] rule, one [`content_length`], one visible-ASCII rule, and the names.

use http::{HeaderMap, HeaderName};

use crate::error::{Error, ErrorKind};

/// The `Upstash-Signature` header.
pub const SIGNATURE_HEADER: &str = "upstash-signature";
/// The `Upstash-Region` header (multi-region accounts).
pub const REGION_HEADER: &str = "upstash-region";
/// The `Upstash-Message-Id` header.
pub const MESSAGE_ID_HEADER: &str = "upstash-message-id";
/// The `Upstash-Retried` header.
pub const RETRIED_HEADER: &str = "upstash-retried";
/// The `Upstash-Schedule-Id` header.
pub const SCHEDULE_ID_HEADER: &str = "upstash-schedule-id";
/// The `Upstash-Topic-Name` header (URL group).
pub const TOPIC_NAME_HEADER: &str = "upstash-topic-name";
/// The `Upstash-Caller-Ip` header.
pub const CALLER_IP_HEADER: &str = "upstash-caller-ip";
/// The `Upstash-NonRetryable-Error` response header: with status 489, QStash stops retrying.
pub const NON_RETRYABLE_HEADER: &str = "upstash-nonretryable-error";
/// The status that, with `Upstash-NonRetryable-Error: true`, tells QStash not to retry.
pub const NON_RETRYABLE_STATUS: u16 = 489;

/// The response header that marks an answer given instead of running the handler:
/// `X-QStash-Duplicate: true`, on the 200 for a message already handled and on the 409 for
/// one still in progress.
///
/// Not an `Upstash-*` name: that prefix is QStash's own namespace, and QStash already reads
/// one response header from it (`Upstash-NonRetryable-Error`); a header of ours there could
/// collide with one QStash defines later.
pub const DUPLICATE_HEADER: &str = "x-qstash-duplicate";

// Pre-parsed names: a lookup by `&str` parses the name on every call.
pub(crate) const SIGNATURE_NAME: HeaderName = HeaderName::from_static(SIGNATURE_HEADER);
pub(crate) const REGION_NAME: HeaderName = HeaderName::from_static(REGION_HEADER);

/// Whether every byte is visible ASCII or a space (`0x20..0x7f`): the rule for the
/// signature and the other `Upstash-*` values the core reads as text.
#[must_use]
pub fn is_visible_ascii(value: &[u8]) -> bool {
    // No short-circuit, so that the check over a token's ~500 bytes vectorizes.
    value
        .iter()
        .fold(true, |visible, b| visible & (0x20..0x7f).contains(b))
}

/// The first `Upstash-Region` value, if it is UTF-8.
pub fn region<H: HeaderLookup + ?Sized>(headers: &H) -> Option<&str> {
    headers
        .get_all(&REGION_NAME)
        .next()
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Looks up a request's header values by name, without copying them: implemented for
/// `http::HeaderMap`; an adapter for a framework with its own header map implements it on a
/// borrowed wrapper.
pub trait HeaderLookup {
    /// The values of one header, in order.
    type Values<'h>: Iterator<Item = &'h [u8]>
    where
        Self: 'h;

    /// Every value of the header `name` (lowercase), in the order received.
    fn get_all<'h>(&'h self, name: &HeaderName) -> Self::Values<'h>;
}

impl HeaderLookup for HeaderMap {
    type Values<'h> = std::iter::Map<
        http::header::ValueIter<'h, http::HeaderValue>,
        fn(&http::HeaderValue) -> &[u8],
    >;

    fn get_all<'h>(&'h self, name: &HeaderName) -> Self::Values<'h> {
        HeaderMap::get_all(self, name)
            .iter()
            .map(http::HeaderValue::as_bytes)
    }
}

/// The single `Upstash-Signature` value, visible ASCII: the one rule for the pipeline and for
/// [`Verifier::verify_headers`](crate::Verifier::verify_headers).
///
/// # Errors
///
/// [`ErrorKind::MissingSignature`], [`ErrorKind::MultipleSignatures`], or
/// [`ErrorKind::MalformedToken`] for a value that is not visible ASCII.
pub fn signature<H: HeaderLookup + ?Sized>(headers: &H) -> Result<&str, Error> {
    let mut values = headers.get_all(&SIGNATURE_NAME);
    let value = values
        .next()
        .ok_or(Error::new(ErrorKind::MissingSignature))?;
    if values.next().is_some() {
        return Err(Error::new(ErrorKind::MultipleSignatures));
    }
    std::str::from_utf8(value)
        .ok()
        .filter(|_| is_visible_ascii(value))
        .ok_or_else(|| Error::with_text(ErrorKind::MalformedToken, "header is not visible ASCII"))
}

/// `Content-Length`, when there is exactly one valid value.
pub fn content_length<H: HeaderLookup + ?Sized>(headers: &H) -> Option<u64> {
    let mut values = headers.get_all(&http::header::CONTENT_LENGTH);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}
