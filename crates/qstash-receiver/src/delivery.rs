//! [`Delivery`]: what the `Upstash-*` headers say about a delivery.

use http::{HeaderMap, HeaderName, header::CONTENT_TYPE};

use crate::headers::{
    CALLER_IP_HEADER, MESSAGE_ID_HEADER, RETRIED_HEADER, SCHEDULE_ID_HEADER, Seen,
    TOPIC_NAME_HEADER,
};

const MESSAGE_ID: HeaderName = HeaderName::from_static(MESSAGE_ID_HEADER);
const RETRIED: HeaderName = HeaderName::from_static(RETRIED_HEADER);
const SCHEDULE_ID: HeaderName = HeaderName::from_static(SCHEDULE_ID_HEADER);
const TOPIC_NAME: HeaderName = HeaderName::from_static(TOPIC_NAME_HEADER);
const CALLER_IP: HeaderName = HeaderName::from_static(CALLER_IP_HEADER);

/// What QStash says about a delivery in its `Upstash-*` headers.
///
/// Read these only after the signature verified: the headers themselves are not signed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// `Upstash-Message-Id`: the same on every retry of one message (use it to deduplicate).
    pub message_id: String,
    /// `Upstash-Retried`: how often this message was retried before this attempt (0 first).
    pub retried: u32,
    /// `Upstash-Schedule-Id`: present when a schedule produced the message.
    pub schedule_id: Option<String>,
    /// `Upstash-Topic-Name`: the URL group the message was published to.
    pub topic_name: Option<String>,
    /// `Upstash-Caller-Ip`: the publisher's IP address, as sent.
    pub caller_ip: Option<String>,
    /// `Upstash-Region`: the region of the QStash instance, e.g. `EU-CENTRAL-1`.
    pub region: Option<String>,
    /// `Content-Type`: the publisher's content type.
    pub content_type: Option<String>,
}

/// Why the delivery headers could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// A required header is absent.
    #[error("missing `{0}` header")]
    Missing(&'static str),
    /// A header appears more than once.
    #[error("more than one `{0}` header")]
    Repeated(&'static str),
    /// A header's value is not visible ASCII, or is not what it should be.
    #[error("invalid `{0}` header")]
    Invalid(&'static str),
}

impl Delivery {
    /// Reads the delivery headers. `Upstash-Message-Id` is required; `Upstash-Retried` is 0
    /// when absent.
    ///
    /// # Errors
    ///
    /// A missing message id, a repeated header, a value that is not visible ASCII, or an
    /// `Upstash-Retried` that is not a non-negative integer (a garbled count is an error, not
    /// a silent 0).
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, DeliveryError> {
        Self::from_lookup(|name| {
            headers
                .get_all(name)
                .iter()
                .map(http::HeaderValue::as_bytes)
        })
    }

    /// Like [`Delivery::from_headers`], for header maps that are not `http` 1.x ones (such as
    /// actix-web 4's): `get_all` returns the raw values of a header, in order.
    ///
    /// # Errors
    ///
    /// As [`Delivery::from_headers`].
    pub fn from_lookup<'h, I>(get_all: impl Fn(&HeaderName) -> I) -> Result<Self, DeliveryError>
    where
        I: Iterator<Item = &'h [u8]>,
    {
        Self::from_seen(&DeliveryHeaders {
            message_id: Seen::of(get_all(&MESSAGE_ID)),
            retried: Seen::of(get_all(&RETRIED)),
            schedule_id: Seen::of(get_all(&SCHEDULE_ID)),
            topic_name: Seen::of(get_all(&TOPIC_NAME)),
            caller_ip: Seen::of(get_all(&CALLER_IP)),
            region: Seen::of(get_all(&crate::headers::REGION_NAME)),
            content_type: get_all(&CONTENT_TYPE).find_map(readable),
        })
    }

    /// The rules of [`Delivery::from_lookup`] on the headers seen.
    pub(crate) fn from_seen(seen: &DeliveryHeaders<'_>) -> Result<Self, DeliveryError> {
        let message_id = one(seen.message_id, "Upstash-Message-Id")?
            .filter(|id| !id.is_empty())
            .ok_or(DeliveryError::Missing("Upstash-Message-Id"))?;
        let retried = match one(seen.retried, "Upstash-Retried")? {
            None => 0,
            Some(text) => parse_count(text).ok_or(DeliveryError::Invalid("Upstash-Retried"))?,
        };
        let owned = |seen, display| one(seen, display).map(|v| v.map(str::to_owned));
        Ok(Self {
            message_id: message_id.to_owned(),
            retried,
            schedule_id: owned(seen.schedule_id, "Upstash-Schedule-Id")?,
            topic_name: owned(seen.topic_name, "Upstash-Topic-Name")?,
            caller_ip: owned(seen.caller_ip, "Upstash-Caller-Ip")?,
            region: owned(seen.region, "Upstash-Region")?,
            content_type: seen.content_type.map(str::to_owned),
        })
    }

    /// Whether this is a retry (`retried > 0`).
    #[must_use]
    pub const fn is_retry(&self) -> bool {
        self.retried > 0
    }
}

/// The delivery headers of a request as seen (see [`Seen`]), before their rules.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DeliveryHeaders<'h> {
    pub(crate) message_id: Seen<'h>,
    pub(crate) retried: Seen<'h>,
    pub(crate) schedule_id: Seen<'h>,
    pub(crate) topic_name: Seen<'h>,
    pub(crate) caller_ip: Seen<'h>,
    pub(crate) region: Seen<'h>,
    /// The first readable `Content-Type`. Not a QStash header: a publisher's duplicate must
    /// not make a valid delivery non-retryable, so the first readable value is kept.
    pub(crate) content_type: Option<&'h str>,
}

impl<'h> DeliveryHeaders<'h> {
    /// One more `Content-Type` value, in the order received.
    pub(crate) fn add_content_type(&mut self, value: &'h [u8]) {
        if self.content_type.is_none() {
            self.content_type = readable(value);
        }
    }
}

/// At most one value, as visible ASCII (the rule of `http::HeaderValue::to_str`).
fn one<'h>(seen: Seen<'h>, display: &'static str) -> Result<Option<&'h str>, DeliveryError> {
    let Some(value) = seen.first else {
        return Ok(None);
    };
    if seen.repeated {
        return Err(DeliveryError::Repeated(display));
    }
    readable(value)
        .map(Some)
        .ok_or(DeliveryError::Invalid(display))
}

/// `value` as text, if it is visible ASCII (or tabs).
fn readable(value: &[u8]) -> Option<&str> {
    let visible = value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    std::str::from_utf8(value).ok().filter(|_| visible)
}

/// Only ASCII digits: `u32::from_str` would also take a leading `+`.
fn parse_count(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_every_header() {
        let delivery = Delivery::from_headers(&headers(&[
            ("upstash-message-id", b"msg_123"),
            ("upstash-retried", b"2"),
            ("upstash-schedule-id", b"scd_1"),
            ("upstash-topic-name", b"orders"),
            ("upstash-caller-ip", b"178.247.74.179"),
            ("upstash-region", b"EU-CENTRAL-1"),
            ("content-type", b"application/json"),
        ]))
        .unwrap();
        assert_eq!(delivery.message_id, "msg_123");
        assert_eq!(delivery.retried, 2);
        assert!(delivery.is_retry());
        assert_eq!(delivery.schedule_id.as_deref(), Some("scd_1"));
        assert_eq!(delivery.topic_name.as_deref(), Some("orders"));
        assert_eq!(delivery.caller_ip.as_deref(), Some("178.247.74.179"));
        assert_eq!(delivery.region.as_deref(), Some("EU-CENTRAL-1"));
        assert_eq!(delivery.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn a_repeated_content_type_keeps_the_first() {
        let delivery = Delivery::from_headers(&headers(&[
            ("upstash-message-id", b"msg_1"),
            ("content-type", b"application/json"),
            ("content-type", b"text/plain"),
        ]))
        .unwrap();
        assert_eq!(delivery.content_type.as_deref(), Some("application/json"));
        let delivery = Delivery::from_headers(&headers(&[
            ("upstash-message-id", b"msg_1"),
            ("content-type", b"\xff"),
            ("content-type", b"text/plain"),
        ]))
        .unwrap();
        assert_eq!(delivery.content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn retried_defaults_to_zero() {
        let delivery =
            Delivery::from_headers(&headers(&[("upstash-message-id", b"msg_1")])).unwrap();
        assert_eq!(delivery.retried, 0);
        assert!(!delivery.is_retry());
        assert_eq!(delivery.schedule_id, None);
    }

    #[test]
    fn refuses_bad_headers() {
        type Case<'a> = (&'a str, &'a [(&'static str, &'a [u8])], DeliveryError);
        let cases: &[Case<'_>] = &[
            (
                "no message id",
                &[],
                DeliveryError::Missing("Upstash-Message-Id"),
            ),
            (
                "empty message id",
                &[("upstash-message-id", b"")],
                DeliveryError::Missing("Upstash-Message-Id"),
            ),
            (
                "two message ids",
                &[("upstash-message-id", b"a"), ("upstash-message-id", b"b")],
                DeliveryError::Repeated("Upstash-Message-Id"),
            ),
            (
                "non-ascii message id",
                &[("upstash-message-id", b"msg_\xff")],
                DeliveryError::Invalid("Upstash-Message-Id"),
            ),
            (
                "garbled retried",
                &[("upstash-message-id", b"m"), ("upstash-retried", b"two")],
                DeliveryError::Invalid("Upstash-Retried"),
            ),
            (
                "negative retried",
                &[("upstash-message-id", b"m"), ("upstash-retried", b"-1")],
                DeliveryError::Invalid("Upstash-Retried"),
            ),
            (
                "plus retried",
                &[("upstash-message-id", b"m"), ("upstash-retried", b"+1")],
                DeliveryError::Invalid("Upstash-Retried"),
            ),
            (
                "empty retried",
                &[("upstash-message-id", b"m"), ("upstash-retried", b"")],
                DeliveryError::Invalid("Upstash-Retried"),
            ),
            (
                "overflowing retried",
                &[
                    ("upstash-message-id", b"m"),
                    ("upstash-retried", b"4294967296"),
                ],
                DeliveryError::Invalid("Upstash-Retried"),
            ),
        ];
        for (name, pairs, want) in cases {
            assert_eq!(
                Delivery::from_headers(&headers(pairs)).unwrap_err(),
                *want,
                "{name}"
            );
        }
    }
}
