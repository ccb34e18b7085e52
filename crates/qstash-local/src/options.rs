//! The publish headers (`Upstash-*`, `Content-Type`) read into what the engine needs.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::duration::parse_duration;
use crate::expr::RetryDelay;
use crate::flow::FlowSpec;

/// The most retries a message may ask for.
pub const MAX_RETRIES: u32 = 100;

/// How one message (or one callback) is delivered.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) method: Method,
    pub(crate) retries: u32,
    pub(crate) retry_delay: Option<RetryDelay>,
    pub(crate) timeout: Option<Duration>,
    /// Headers delivered as they are: the forwarded ones (prefix removed) and `Content-Type`.
    pub(crate) headers: HeaderMap,
    /// The forwarded headers by canonical name, as the API and callbacks show them.
    pub(crate) header_lists: BTreeMap<String, Vec<String>>,
}

/// A callback URL and how it is delivered.
#[derive(Debug, Clone)]
pub(crate) struct CallbackSpec {
    pub(crate) url: String,
    pub(crate) delay: Duration,
    pub(crate) settings: Settings,
}

/// Everything a publish request's headers say.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) settings: Settings,
    pub(crate) delay: Duration,
    pub(crate) not_before_secs: Option<u64>,
    pub(crate) callback: Option<CallbackSpec>,
    pub(crate) failure_callback: Option<CallbackSpec>,
    pub(crate) deduplication_id: Option<String>,
    pub(crate) content_based_deduplication: bool,
    pub(crate) labels: Vec<String>,
    pub(crate) cron: Option<String>,
    pub(crate) schedule_id: Option<String>,
    pub(crate) queue_name: Option<String>,
    pub(crate) flow: Option<FlowSpec>,
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| format!("header {name} is not visible ASCII")),
    }
}

fn duration(headers: &HeaderMap, name: &str) -> Result<Option<Duration>, String> {
    text(headers, name)?
        .map(|v| parse_duration(v).ok_or_else(|| format!("invalid {name}: {v:?}")))
        .transpose()
}

/// `true` or `false` (any case); anything else is refused rather than read as false.
fn boolean(headers: &HeaderMap, name: &str) -> Result<bool, String> {
    match text(headers, name)? {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v.is_empty() => Ok(false),
        Some(v) => Err(format!("invalid {name}: {v:?} (true or false)")),
    }
}

/// Headers that frame a message or a connection: a forwarded one would make the delivery lie
/// about its body or its hop, so a publish carrying one is refused.
const FRAMING_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Whether `name` (lower case) is a framing or hop-by-hop header.
pub(crate) fn is_framing(name: &str) -> bool {
    FRAMING_HEADERS.contains(&name)
}

/// The `Upstash-*` publish headers the local QStash reads.
const KNOWN_HEADERS: &[&str] = &[
    "upstash-method",
    "upstash-delay",
    "upstash-not-before",
    "upstash-retries",
    "upstash-retry-delay",
    "upstash-timeout",
    "upstash-callback",
    "upstash-failure-callback",
    "upstash-deduplication-id",
    "upstash-content-based-deduplication",
    "upstash-label",
    "upstash-flow-control-key",
    "upstash-flow-control-value",
    "upstash-cron",
    "upstash-schedule-id",
    "upstash-queue-name",
];

/// The settings a callback takes after `upstash-callback-` or `upstash-failure-callback-`.
const CALLBACK_SETTINGS: &[&str] = &["retries", "timeout", "delay", "method", "retry-delay"];

/// Whether the local QStash reads `name` (lower case), or ignores it knowingly (telemetry).
fn is_known(name: &str) -> bool {
    if !name.starts_with("upstash-")
        || KNOWN_HEADERS.contains(&name)
        || name.starts_with("upstash-forward-")
        || name.starts_with("upstash-telemetry-")
    {
        return true;
    }
    ["upstash-callback-", "upstash-failure-callback-"]
        .iter()
        .filter_map(|prefix| name.strip_prefix(prefix))
        .any(|rest| CALLBACK_SETTINGS.contains(&rest) || rest.starts_with("forward-"))
}

/// `content-type` → `Content-Type`, as QStash writes header names.
pub(crate) fn canonical_name(name: &str) -> String {
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

/// A URL the engine can deliver to: absolute `http` or `https`.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        Ok(parsed) => Err(format!(
            "invalid destination url: the scheme {:?} is not http or https",
            parsed.scheme()
        )),
        Err(e) => Err(format!("invalid destination url: {e}")),
    }
}

/// The settings under `prefix` (`upstash-` for the message, `upstash-callback-` and
/// `upstash-failure-callback-` for the callbacks). A callback's retries default to the
/// message's.
fn settings(
    headers: &HeaderMap,
    prefix: &str,
    callback: bool,
    default_retries: u32,
) -> Result<Settings, String> {
    let method = match text(headers, &format!("{prefix}method"))? {
        None => Method::POST,
        Some(m) => {
            let upper = m.to_ascii_uppercase();
            match upper.as_str() {
                "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
                    Method::from_bytes(upper.as_bytes())
                        .map_err(|_| format!("invalid {prefix}method: {m:?}"))?
                }
                _ => return Err(format!("invalid {prefix}method: {m:?}")),
            }
        }
    };
    let retries = match text(headers, &format!("{prefix}retries"))? {
        None => default_retries,
        Some(r) => r
            .parse::<u32>()
            .ok()
            .filter(|r| *r <= MAX_RETRIES)
            .ok_or_else(|| format!("invalid {prefix}retries: {r:?} (0 to {MAX_RETRIES})"))?,
    };
    let retry_delay = text(headers, &format!("{prefix}retry-delay"))?
        .map(|e| RetryDelay::parse(e).map_err(|why| format!("invalid {prefix}retry-delay: {why}")))
        .transpose()?;
    let timeout = duration(headers, &format!("{prefix}timeout"))?;
    if timeout.is_some_and(|t| t.is_zero()) {
        return Err(format!("invalid {prefix}timeout: 0 (at least 1s)"));
    }
    let forward = format!("{prefix}forward-");
    let mut delivered = HeaderMap::new();
    let mut header_lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let Some(rest) = name.as_str().strip_prefix(forward.as_str()) else {
            continue;
        };
        if is_framing(rest) {
            return Err(format!(
                "{name} is refused: {rest} frames the request, the local QStash sets it itself"
            ));
        }
        let Ok(target) = HeaderName::from_bytes(rest.as_bytes()) else {
            continue;
        };
        delivered.append(target, value.clone());
        header_lists
            .entry(canonical_name(rest))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    if callback {
        delivered.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    } else if let Some(content_type) = headers.get(http::header::CONTENT_TYPE) {
        delivered.insert(http::header::CONTENT_TYPE, content_type.clone());
    }
    Ok(Settings {
        method,
        retries,
        retry_delay,
        timeout,
        headers: delivered,
        header_lists,
    })
}

fn callback(
    headers: &HeaderMap,
    name: &str,
    default_retries: u32,
) -> Result<Option<CallbackSpec>, String> {
    let Some(url) = text(headers, name)? else {
        return Ok(None);
    };
    check_url(url).map_err(|e| format!("invalid {name}: {e}"))?;
    let prefix = format!("{name}-");
    Ok(Some(CallbackSpec {
        url: url.to_owned(),
        delay: duration(headers, &format!("{prefix}delay"))?.unwrap_or_default(),
        settings: settings(headers, &prefix, true, default_retries)?,
    }))
}

impl Options {
    /// Reads the publish headers.
    ///
    /// # Errors
    ///
    /// A message naming the header, for a 400 answer.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Self, String> {
        // A header QStash reads and this server does not (workflows, redaction) is refused:
        // ignoring it would do something else silently.
        if let Some(name) = headers.keys().find(|n| !is_known(n.as_str())) {
            return Err(format!(
                "{} is not supported by the local QStash",
                canonical_name(name.as_str())
            ));
        }
        let not_before_secs = text(headers, "upstash-not-before")?
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("invalid Upstash-Not-Before: {v:?} (unix seconds)"))
            })
            .transpose()?;
        let deduplication_id = text(headers, "upstash-deduplication-id")?
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if deduplication_id.as_ref().is_some_and(|id| id.len() > 512) {
            return Err("Upstash-Deduplication-Id is longer than 512 bytes".to_owned());
        }
        let settings = settings(
            headers,
            "upstash-",
            false,
            qstash_receiver::retry::DEFAULT_RETRIES,
        )?;
        let retries = settings.retries;
        Ok(Self {
            settings,
            delay: duration(headers, "upstash-delay")?.unwrap_or_default(),
            not_before_secs,
            callback: callback(headers, "upstash-callback", retries)?,
            failure_callback: callback(headers, "upstash-failure-callback", retries)?,
            deduplication_id,
            content_based_deduplication: boolean(headers, "upstash-content-based-deduplication")?,
            labels: text(headers, "upstash-label")?
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            cron: text(headers, "upstash-cron")?.map(str::to_owned),
            schedule_id: text(headers, "upstash-schedule-id")?
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            flow: FlowSpec::parse(
                text(headers, "upstash-flow-control-key")?,
                text(headers, "upstash-flow-control-value")?,
            )?,
            queue_name: text(headers, "upstash-queue-name")?
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn reads_every_publish_header() {
        let options = Options::from_headers(&headers(&[
            ("upstash-method", "put"),
            ("upstash-retries", "5"),
            ("upstash-retry-delay", "pow(2, retried) * 1000"),
            ("upstash-timeout", "10s"),
            ("upstash-delay", "1d10h30m"),
            ("upstash-forward-x-team", "blue"),
            ("upstash-forward-x-team", "green"),
            ("content-type", "text/plain"),
            ("upstash-callback", "http://127.0.0.1:1/cb"),
            ("upstash-callback-retries", "1"),
            ("upstash-callback-forward-x-cb", "yes"),
            ("upstash-failure-callback", "http://127.0.0.1:1/failed"),
            ("upstash-failure-callback-method", "PUT"),
            ("upstash-deduplication-id", "abc"),
            ("upstash-content-based-deduplication", "True"),
            ("upstash-label", "a, b,,c"),
            ("upstash-telemetry-sdk", "upstash-qstash-js@2.12.0"),
            ("upstash-failure-callback-forward-x-why", "because"),
        ]))
        .unwrap();
        let s = &options.settings;
        assert_eq!((s.method.as_str(), s.retries), ("PUT", 5));
        assert_eq!(s.timeout, Some(Duration::from_secs(10)));
        assert_eq!(options.delay, Duration::from_secs(86_400 + 37_800));
        let teams: Vec<_> = s.headers.get_all("x-team").iter().collect();
        assert_eq!(teams, ["blue", "green"]);
        assert_eq!(s.headers["content-type"], "text/plain");
        assert_eq!(s.header_lists["X-Team"], ["blue", "green"]);
        assert!(!s.headers.contains_key("x-cb"));
        let callback = options.callback.unwrap();
        assert_eq!(callback.settings.retries, 1);
        assert_eq!(callback.settings.headers["x-cb"], "yes");
        assert_eq!(
            callback.settings.headers["content-type"],
            "application/json"
        );
        let failure = options.failure_callback.unwrap();
        assert_eq!(failure.settings.method, Method::PUT);
        assert_eq!(failure.settings.retries, 5, "the message's retries");
        assert_eq!(options.deduplication_id.as_deref(), Some("abc"));
        assert!(options.content_based_deduplication);
        assert_eq!(options.labels, ["a", "b", "c"]);
    }

    #[test]
    fn refuses_malformed_headers_by_name() {
        let cases: [(&str, &str, &str); 16] = [
            ("upstash-timeout", "0", "upstash-timeout"),
            (
                "upstash-content-based-deduplication",
                "yes",
                "deduplication",
            ),
            ("upstash-forward-content-length", "3", "content-length"),
            ("upstash-forward-host", "evil.example", "host"),
            ("upstash-redact-fields", "body", "Upstash-Redact-Fields"),
            ("upstash-workflow-runid", "wfr_1", "not supported"),
            ("upstash-callback-workflow-init", "true", "not supported"),
            (
                "upstash-flow-control-key",
                "k",
                "Upstash-Flow-Control-Value",
            ),
            ("upstash-delay", "soon", "upstash-delay"),
            ("upstash-retries", "-1", "upstash-retries"),
            ("upstash-retries", "101", "upstash-retries"),
            ("upstash-retry-delay", "pow(", "upstash-retry-delay"),
            ("upstash-method", "BREW", "upstash-method"),
            ("upstash-not-before", "tomorrow", "Upstash-Not-Before"),
            ("upstash-callback", "not a url", "upstash-callback"),
            ("upstash-timeout", "1x", "upstash-timeout"),
        ];
        for (name, value, says) in cases {
            let mut map = HeaderMap::new();
            map.insert(name, HeaderValue::from_str(value).unwrap());
            let error = Options::from_headers(&map).unwrap_err();
            assert!(error.contains(says), "{name}: {error}");
        }
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("http://127.0.0.1:3000/a?b=1").is_ok());
    }

    /// A small deterministic generator: no dependency, the same cases every run.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        *state >> 33
    }

    #[test]
    fn arbitrary_header_values_never_panic() {
        const ALPHABET: &[u8] = b"0123456789.,()+-*/% dhmsxretiawpoqlf:";
        let names = [
            "upstash-delay",
            "upstash-retries",
            "upstash-retry-delay",
            "upstash-timeout",
            "upstash-not-before",
            "upstash-method",
            "upstash-callback",
            "upstash-callback-retry-delay",
            "upstash-failure-callback-delay",
            "upstash-deduplication-id",
        ];
        let mut state = 7;
        for _ in 0..20_000 {
            let len = (lcg(&mut state) % 24) as usize;
            let text: String = (0..len)
                .map(|_| char::from(ALPHABET[(lcg(&mut state) as usize) % ALPHABET.len()]))
                .collect();
            let name = names[(lcg(&mut state) as usize) % names.len()];
            let mut map = HeaderMap::new();
            map.insert(name, HeaderValue::from_str(&text).unwrap());
            let _ = Options::from_headers(&map);
            if let Ok(expr) = RetryDelay::parse(&text) {
                for retried in [0, 1, 7, u32::MAX] {
                    assert!(expr.delay(retried) <= qstash_receiver::retry::MAX_BACKOFF);
                }
            }
            let _ = crate::duration::parse_duration(&text);
        }
    }
}
