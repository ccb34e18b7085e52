//! A one-shot HTTP transport for the demo, which sends hand-made deliveries (tampered,
//! expired, oversize) that the engine never would, and the callback body for its callback case.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Serialize;

use crate::error::CliError;
use crate::send::ForwardedHeader;

/// A message to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// The destination URL (the token's `sub`).
    pub(crate) url: String,
    /// The HTTP method.
    pub(crate) method: Method,
    /// Headers sent with every attempt, besides the `Upstash-*` ones.
    pub(crate) headers: HeaderMap,
    /// The body.
    pub(crate) body: Bytes,
    /// `Upstash-Message-Id`, the same on every attempt.
    pub(crate) message_id: String,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The status.
    pub(crate) status: StatusCode,
    /// The headers.
    pub(crate) headers: HeaderMap,
    /// The whole body.
    pub(crate) body: Bytes,
}

/// Sends one attempt.
pub(crate) trait Transport {
    /// Sends `message` with `headers`; `Err` describes why no answer arrived.
    async fn send(&self, message: &Message, headers: HeaderMap) -> Result<Answer, String>;
}

/// How a delivery ended.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// `Upstash-Retried` of the last attempt.
    pub(crate) retried: u32,
    /// The last attempt's answer, or why there was none.
    pub(crate) last: Result<Answer, String>,
}

/// The callback body QStash POSTs after a delivery or a final failure.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CallbackBody<'a> {
    status: u16,
    header: BTreeMap<String, Vec<String>>,
    body: String,
    retried: u32,
    max_retries: u32,
    source_message_id: &'a str,
    url: &'a str,
    method: &'a str,
    source_header: BTreeMap<String, Vec<String>>,
    source_body: String,
    not_before: String,
    created_at: String,
}

/// `content-type` → `Content-Type`, as QStash writes response header names.
fn canonical_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn header_lists<'a>(
    headers: impl IntoIterator<Item = (String, &'a HeaderValue)>,
) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name)
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    map
}

/// The JSON body of the callback reporting `outcome` of `message`. With no answer at all, the
/// status is 0 and the body empty.
pub(crate) fn callback_body(
    message: &Message,
    source_headers: &[ForwardedHeader],
    outcome: &Outcome,
    max_retries: u32,
    created_at_ms: i64,
) -> Vec<u8> {
    let (status, header, body) = match &outcome.last {
        Ok(answer) => (
            answer.status.as_u16(),
            header_lists(
                answer
                    .headers
                    .iter()
                    .map(|(name, value)| (canonical_name(name.as_str()), value)),
            ),
            STANDARD.encode(&answer.body),
        ),
        Err(_) => (0, BTreeMap::new(), String::new()),
    };
    let callback = CallbackBody {
        status,
        header,
        body,
        retried: outcome.retried,
        max_retries,
        source_message_id: &message.message_id,
        url: &message.url,
        method: message.method.as_str(),
        source_header: header_lists(
            source_headers
                .iter()
                .map(|h| (h.given_name.clone(), &h.value)),
        ),
        source_body: STANDARD.encode(&message.body),
        not_before: created_at_ms.to_string(),
        created_at: created_at_ms.to_string(),
    };
    // A struct of strings, numbers and maps of strings always serializes.
    serde_json::to_vec(&callback).unwrap_or_default()
}

/// The real transport: a `reqwest` client.
pub(crate) struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A client that gives up on an attempt after `timeout` and follows no redirects.
    pub(crate) fn new(timeout: Duration) -> Result<Self, CliError> {
        #[cfg(feature = "https")]
        {
            // reqwest is built without a default provider; another install wins, which is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                CliError::failed(format!("cannot build the HTTP client: {}", chain(&e)))
            })?;
        Ok(Self { client })
    }
}

/// An error and its sources, `: `-separated (reqwest's own message hides the cause).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

impl Transport for HttpTransport {
    async fn send(&self, message: &Message, headers: HeaderMap) -> Result<Answer, String> {
        let response = self
            .client
            .request(message.method.clone(), &message.url)
            .headers(headers)
            .body(message.body.clone())
            .send()
            .await
            .map_err(|e| chain(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| chain(&e))?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}
