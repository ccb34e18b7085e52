//! [`Callback`]: the body QStash POSTs to `Upstash-Callback` and `Upstash-Failure-Callback` URLs.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::error::json_error_text;

/// Standard alphabet; QStash pads, but an unpadded value is tolerated.
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A callback or failure-callback delivery: the outcome of delivering a message to its
/// destination.
///
/// Verify the request's signature first (its `sub` is the callback URL); then parse the body
/// with [`Callback::from_slice`]. QStash sends one callback per attempt when retrying: the last
/// one has `retried == max_retries`. A failure callback carries the last failed response.
///
/// Every field but `status` may be absent (QStash omits empty fields); numbers and strings
/// are accepted for the timestamps, a string or a list for each header value, and unknown
/// fields are ignored.
///
/// # Examples
///
/// ```
/// use qstash_receiver::Callback;
///
/// let callback = Callback::from_slice(br#"{"status":200,"body":"eyJvayI6dHJ1ZX0=","retried":0,"maxRetries":3,"sourceMessageId":"msg_1"}"#)?;
/// assert!(callback.is_success());
/// #[derive(serde::Deserialize)]
/// struct Answer { ok: bool }
/// assert!(callback.body_json::<Answer>()?.ok);
/// # Ok::<(), qstash_receiver::callback::CallbackError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Callback {
    /// The HTTP status the destination answered with.
    pub status: u16,
    /// The destination's response headers (a name maps to its values).
    pub header: HashMap<String, Vec<String>>,
    /// The destination's response body, decoded from base64 (empty when absent).
    pub body: Bytes,
    /// How often the message was retried before the attempt this callback reports.
    pub retried: u32,
    /// The message's retry budget, when QStash sent it.
    pub max_retries: Option<u32>,
    /// The id of the message whose delivery this reports.
    pub source_message_id: Option<String>,
    /// The URL group (topic) the message was published to.
    pub topic_name: Option<String>,
    /// The endpoint name within the URL group.
    pub endpoint_name: Option<String>,
    /// The destination URL.
    pub url: Option<String>,
    /// The HTTP method used for the delivery.
    pub method: Option<String>,
    /// The headers the message was published with.
    pub source_header: HashMap<String, Vec<String>>,
    /// The message's original body, decoded from base64 (empty when absent).
    pub source_body: Bytes,
    /// When the message became deliverable, unix milliseconds.
    pub not_before: Option<i64>,
    /// When the message was created, unix milliseconds.
    pub created_at: Option<i64>,
    /// The schedule that produced the message, if any.
    pub schedule_id: Option<String>,
    /// The publisher's IP address.
    pub caller_ip: Option<String>,
    /// The dead-letter-queue id (failure callbacks).
    pub dlq_id: Option<String>,
}

/// Why a callback body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The body is not JSON of the callback's shape. The text never quotes the input.
    #[error("invalid callback body: {0}")]
    Json(String),
    /// A base64 field (`body` or `sourceBody`) is not valid standard base64.
    #[error("invalid callback body: `{0}` is not valid base64")]
    Base64(&'static str),
    /// The decoded response body is not JSON of the requested type.
    #[error("callback response body does not deserialize: {0}")]
    BodyJson(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    status: u16,
    #[serde(default, deserialize_with = "headers")]
    header: HashMap<String, Vec<String>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    retried: Option<u32>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    source_message_id: Option<String>,
    #[serde(default)]
    topic_name: Option<String>,
    #[serde(default)]
    endpoint_name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, deserialize_with = "headers")]
    source_header: HashMap<String, Vec<String>>,
    #[serde(default)]
    source_body: Option<String>,
    #[serde(default, deserialize_with = "millis")]
    not_before: Option<i64>,
    #[serde(default, deserialize_with = "millis")]
    created_at: Option<i64>,
    #[serde(default)]
    schedule_id: Option<String>,
    #[serde(default, rename = "callerIP")]
    caller_ip: Option<String>,
    #[serde(default)]
    dlq_id: Option<String>,
}

impl Callback {
    /// Parses a callback body.
    ///
    /// # Errors
    ///
    /// [`CallbackError::Json`] for malformed JSON, a missing `status` or a field of the wrong
    /// type; [`CallbackError::Base64`] for a `body` or `sourceBody` that is not base64.
    pub fn from_slice(json: &[u8]) -> Result<Self, CallbackError> {
        if !crate::claims::is_json_object(json) {
            return Err(CallbackError::Json("not a JSON object".to_owned()));
        }
        // serde_json does not check the UTF-8 of strings it skips; JSON text must be UTF-8.
        if std::str::from_utf8(json).is_err() {
            return Err(CallbackError::Json("not UTF-8".to_owned()));
        }
        let wire: Wire =
            serde_json::from_slice(json).map_err(|e| CallbackError::Json(json_error_text(&e)))?;
        Ok(Self {
            status: wire.status,
            header: wire.header,
            body: decode(wire.body, "body")?,
            retried: wire.retried.unwrap_or(0),
            max_retries: wire.max_retries,
            source_message_id: wire.source_message_id,
            topic_name: wire.topic_name,
            endpoint_name: wire.endpoint_name,
            url: wire.url,
            method: wire.method,
            source_header: wire.source_header,
            source_body: decode(wire.source_body, "sourceBody")?,
            not_before: wire.not_before,
            created_at: wire.created_at,
            schedule_id: wire.schedule_id,
            caller_ip: wire.caller_ip,
            dlq_id: wire.dlq_id,
        })
    }

    /// Whether the destination answered with a 2xx status.
    #[must_use]
    pub const fn is_success(&self) -> bool {
        self.status >= 200 && self.status < 300
    }

    /// Whether this reports the message's last attempt: `retried >= max_retries` (an absent
    /// `maxRetries` counts as 0, as QStash omits zero values).
    #[must_use]
    pub fn is_last_attempt(&self) -> bool {
        self.retried >= self.max_retries.unwrap_or(0)
    }

    /// The destination's response body as JSON of type `T`.
    ///
    /// # Errors
    ///
    /// [`CallbackError::BodyJson`] when the body does not deserialize into `T`.
    pub fn body_json<T: DeserializeOwned>(&self) -> Result<T, CallbackError> {
        serde_json::from_slice(&self.body).map_err(|e| CallbackError::BodyJson(json_error_text(&e)))
    }

    /// The message's original body as JSON of type `T`.
    ///
    /// # Errors
    ///
    /// [`CallbackError::BodyJson`] when the source body does not deserialize into `T`.
    pub fn source_body_json<T: DeserializeOwned>(&self) -> Result<T, CallbackError> {
        serde_json::from_slice(&self.source_body)
            .map_err(|e| CallbackError::BodyJson(json_error_text(&e)))
    }

    /// The first value of a response header, looked up case-insensitively.
    #[must_use]
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }
}

fn decode(text: Option<String>, field: &'static str) -> Result<Bytes, CallbackError> {
    match text {
        None => Ok(Bytes::new()),
        Some(text) => STANDARD_ANY_PAD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|_| CallbackError::Base64(field)),
    }
}

/// A header map whose values are each a list of strings or a bare string.
fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Values {
        One(String),
        Many(Vec<String>),
    }
    let map: Option<HashMap<String, Values>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(name, values)| match values {
            Values::One(value) => (name, vec![value]),
            Values::Many(values) => (name, values),
        })
        .collect())
}

/// Milliseconds as a JSON integer or a string of digits.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Millis;
    impl Visitor<'_> for Millis {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("milliseconds as an integer or a string of digits")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom("timestamp out of range"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.is_empty() {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| E::custom("timestamp is not an integer"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENTED: &str = r#"{ "status": 200, "header": {"Content-Type": ["text/plain"]}, "body": "aGVsbG8=",
      "retried": 2, "maxRetries": 3, "sourceMessageId": "msg_xxx", "topicName": "myTopic",
      "endpointName": "myEndpoint", "url": "http://myurl.com", "method": "GET",
      "sourceHeader": {"key": ["value"]}, "sourceBody": "eyJvcmRlciI6MX0=",
      "notBefore": "1701198458025", "createdAt": "1701198447054", "scheduleId": "scd_xxx",
      "callerIP": "178.247.74.179" }"#;

    #[test]
    fn documented_example() {
        let cb = Callback::from_slice(DOCUMENTED.as_bytes()).unwrap();
        assert_eq!(cb.status, 200);
        assert!(cb.is_success());
        assert_eq!(cb.header_value("content-type"), Some("text/plain"));
        assert_eq!(&cb.body[..], b"hello");
        assert_eq!(cb.retried, 2);
        assert_eq!(cb.max_retries, Some(3));
        assert!(!cb.is_last_attempt());
        assert_eq!(cb.source_message_id.as_deref(), Some("msg_xxx"));
        assert_eq!(cb.topic_name.as_deref(), Some("myTopic"));
        assert_eq!(cb.endpoint_name.as_deref(), Some("myEndpoint"));
        assert_eq!(cb.url.as_deref(), Some("http://myurl.com"));
        assert_eq!(cb.method.as_deref(), Some("GET"));
        assert_eq!(cb.source_header["key"], ["value"]);
        assert_eq!(&cb.source_body[..], br#"{"order":1}"#);
        assert_eq!(cb.not_before, Some(1_701_198_458_025));
        assert_eq!(cb.created_at, Some(1_701_198_447_054));
        assert_eq!(cb.schedule_id.as_deref(), Some("scd_xxx"));
        assert_eq!(cb.caller_ip.as_deref(), Some("178.247.74.179"));
        #[derive(Deserialize)]
        struct Order {
            order: u32,
        }
        assert_eq!(cb.source_body_json::<Order>().unwrap().order, 1);
    }

    #[test]
    fn real_capture_shape() {
        // Numbers for timestamps, `retried` omitted when 0, bare-string header values,
        // fields this parser does not know.
        let json = br#"{"status":500,"header":{"Content-Type":"application/json"},"body":"eyJlcnJvciI6ImJvb20ifQ==",
            "maxRetries":0,"sourceMessageId":"msg_2","url":"https://a.example/x","method":"POST",
            "sourceBody":"","notBefore":1701198458025,"createdAt":1701198447054,"api":"publish",
            "dlqId":"dlq_1","workflowRunId":"wfr_1","unknown":{"nested":[1,2]}}"#;
        let cb = Callback::from_slice(json).unwrap();
        assert!(!cb.is_success());
        assert_eq!(cb.retried, 0);
        assert!(cb.is_last_attempt());
        assert_eq!(cb.header["Content-Type"], ["application/json"]);
        assert_eq!(&cb.body[..], br#"{"error":"boom"}"#);
        assert!(cb.source_body.is_empty());
        assert_eq!(cb.not_before, Some(1_701_198_458_025));
        assert_eq!(cb.dlq_id.as_deref(), Some("dlq_1"));
    }

    #[test]
    fn only_status_is_required() {
        let cb = Callback::from_slice(br#"{"status":204}"#).unwrap();
        assert_eq!(cb.status, 204);
        assert!(cb.body.is_empty() && cb.header.is_empty() && cb.max_retries.is_none());
        assert!(cb.is_last_attempt());
    }

    #[test]
    fn refuses_bad_bodies() {
        let cases: &[(&str, &[u8], CallbackError)] = &[
            (
                "no status",
                br#"{"body":""}"#,
                CallbackError::Json("missing field `status` (line 1, column 11)".into()),
            ),
            (
                "not json",
                b"\xff\x00",
                CallbackError::Json("not a JSON object".into()),
            ),
            (
                "a JSON array",
                b"[200]",
                CallbackError::Json("not a JSON object".into()),
            ),
            (
                "truncated",
                br#"{"status":2"#,
                CallbackError::Json("not valid JSON (line 1, column 11)".into()),
            ),
            (
                "bad base64 body",
                br#"{"status":200,"body":"***"}"#,
                CallbackError::Base64("body"),
            ),
            (
                "url-safe base64",
                br#"{"status":200,"sourceBody":"-_-_"}"#,
                CallbackError::Base64("sourceBody"),
            ),
        ];
        for (name, json, want) in cases {
            assert_eq!(&Callback::from_slice(json).unwrap_err(), want, "{name}");
        }
        let wrong_types: &[&[u8]] = &[
            br#"{"status":"200"}"#,
            br#"{"status":70000}"#,
            br#"{"status":200,"retried":"2"}"#,
            br#"{"status":200,"retried":-1}"#,
            br#"{"status":200,"notBefore":"soon"}"#,
            br#"{"status":200,"notBefore":true}"#,
            br#"{"status":200,"header":{"a":1}}"#,
            br#"{"status":200,"header":["a"]}"#,
            br#"{"status":200,"body":5}"#,
        ];
        for json in wrong_types {
            let err = Callback::from_slice(json).unwrap_err();
            assert!(
                matches!(err, CallbackError::Json(_)),
                "{}: {err}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn body_json_errors_are_clear() {
        let cb = Callback::from_slice(br#"{"status":200,"body":"bm90IGpzb24="}"#).unwrap();
        let err = cb.body_json::<serde_json::Value>().unwrap_err();
        assert!(matches!(err, CallbackError::BodyJson(_)), "{err}");
    }
}
