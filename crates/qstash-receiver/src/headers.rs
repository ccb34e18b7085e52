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
    Seen::of(headers.get_all(&REGION_NAME)).first_text()
}

/// Every header the pipeline reads of a request, in the order
/// [`HeaderLookup::for_each`]'s default walks them.
pub const READ_BY_THE_PIPELINE: [HeaderName; 9] = [
    SIGNATURE_NAME,
    REGION_NAME,
    http::header::CONTENT_LENGTH,
    HeaderName::from_static(MESSAGE_ID_HEADER),
    HeaderName::from_static(RETRIED_HEADER),
    HeaderName::from_static(SCHEDULE_ID_HEADER),
    HeaderName::from_static(TOPIC_NAME_HEADER),
    HeaderName::from_static(CALLER_IP_HEADER),
    http::header::CONTENT_TYPE,
];

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

    /// Calls `visit` with each header's lowercase name and value, the values of one name in
    /// the order received: at least every header of [`READ_BY_THE_PIPELINE`], which is what
    /// the default does (one [`get_all`](Self::get_all) each). The pipeline reads a request's
    /// headers with one call: a map that can be walked once more cheaply than it can be looked
    /// up nine times (as `http::HeaderMap`, whose lookups hash the name) passes all of its
    /// headers instead; the pipeline skips those it does not read.
    fn for_each<'h>(&'h self, visit: &mut dyn FnMut(&str, &'h [u8])) {
        for name in &READ_BY_THE_PIPELINE {
            for value in self.get_all(name) {
                visit(name.as_str(), value);
            }
        }
    }
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

    fn for_each<'h>(&'h self, visit: &mut dyn FnMut(&str, &'h [u8])) {
        for (name, value) in self {
            visit(name.as_str(), value.as_bytes());
        }
    }
}

/// One header's values as the pipeline's rules need them: the first, and whether another
/// followed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen<'h> {
    pub(crate) first: Option<&'h [u8]>,
    pub(crate) repeated: bool,
}

impl<'h> Seen<'h> {
    /// The values of one header, as looked up.
    pub(crate) fn of(mut values: impl Iterator<Item = &'h [u8]>) -> Self {
        let first = values.next();
        Self {
            first,
            repeated: first.is_some() && values.next().is_some(),
        }
    }

    /// One more value, in the order received.
    pub(crate) fn add(&mut self, value: &'h [u8]) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.repeated = true;
        }
    }

    /// The first value, if it is UTF-8.
    pub(crate) fn first_text(self) -> Option<&'h str> {
        self.first.and_then(|v| std::str::from_utf8(v).ok())
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
    signature_of(Seen::of(headers.get_all(&SIGNATURE_NAME)))
}

/// [`signature`]'s rule on the values seen.
pub(crate) fn signature_of(seen: Seen<'_>) -> Result<&str, Error> {
    let value = seen.first.ok_or(Error::new(ErrorKind::MissingSignature))?;
    if seen.repeated {
        return Err(Error::new(ErrorKind::MultipleSignatures));
    }
    std::str::from_utf8(value)
        .ok()
        .filter(|_| is_visible_ascii(value))
        .ok_or_else(|| Error::with_text(ErrorKind::MalformedToken, "header is not visible ASCII"))
}

/// `Content-Length`, when there is exactly one valid value.
pub fn content_length<H: HeaderLookup + ?Sized>(headers: &H) -> Option<u64> {
    content_length_of(Seen::of(headers.get_all(&http::header::CONTENT_LENGTH)))
}

/// [`content_length`]'s rule on the values seen.
pub(crate) fn content_length_of(seen: Seen<'_>) -> Option<u64> {
    if seen.repeated {
        return None;
    }
    std::str::from_utf8(seen.first?).ok()?.trim().parse().ok()
}
