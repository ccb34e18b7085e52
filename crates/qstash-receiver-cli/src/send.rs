//! `qstash-receiver send`: deliver a message like QStash does — signed, with the `Upstash-*`
//! headers, retried with QStash's backoff, then reported to the callback URLs.
//!
//! The retry loop is [`deliver`], generic over a [`Transport`] and a [`Sleeper`] so that its
//! schedule is tested without a network and without sleeping.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use qstash_receiver::{ENV_CURRENT, NON_RETRYABLE_HEADER, NON_RETRYABLE_STATUS, Signer, new_id};
use serde::Serialize;

use crate::body::BodyArgs;
use crate::clock::{unix_now, unix_now_millis};
use crate::error::{CliError, Verdict};
use crate::keys::{self, KeySource};

/// QStash's cap on one retry delay: a day.
const MAX_DELAY_SECS: f64 = 86_400.0;

/// Arguments of `send`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Delivers like QStash: each attempt carries a fresh `Upstash-Signature` (sub = URL), the same \
`Upstash-Message-Id`, `Upstash-Retried: n` and `User-Agent: Upstash-QStash`. A 2xx answer \
delivers; anything else (or no answer) is retried after min(86400, e^(2.5 n)) s for retry n \
(12 s, 2.5 min, 30 min, ...), or after the answer's `Retry-After` seconds, each delay multiplied \
by --delay-scale. A 489 answer with `Upstash-NonRetryable-Error: true` stops at once. Then the \
callback body (JSON, see QStash's docs) is POSTed, signed for its own URL, to --callback after \
a delivery or to --failure-callback after the last failure, with the same retry policy.

The key is --key, else $QSTASH_CURRENT_SIGNING_KEY, else the public dev-server key (with a \
notice on standard error). Redirects are not followed.

Exit code 0 when the message (and its callback, if any) was delivered, 1 when not, 2 for a \
usage error.

Example, against a local receiver, with retries 1000 times faster than QStash's:
  qstash-receiver send http://localhost:3000/api/qstash --body '{\"order\":42}' \\
      -H 'Content-Type: application/json' --delay-scale 0.001 --failure-callback http://localhost:3000/api/failed")]
pub(crate) struct SendArgs {
    /// The destination URL (http://, or https:// when built with the `https` feature).
    #[arg(value_name = "URL")]
    url: String,
    #[command(flatten)]
    body: BodyArgs,
    /// A header to send with every attempt, as given, e.g. `Content-Type: application/json`.
    /// Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE", value_parser = parse_header)]
    headers: Vec<ForwardedHeader>,
    /// How often to retry a failed attempt (so up to N + 1 attempts).
    #[arg(long, value_name = "N", default_value_t = 3, allow_negative_numbers = true,
        value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: u32,
    /// After a delivery, POST the callback body to this URL.
    #[arg(long, value_name = "URL")]
    callback: Option<String>,
    /// After the last failed attempt, POST the failure-callback body to this URL.
    #[arg(long, value_name = "URL")]
    failure_callback: Option<String>,
    /// Multiply every retry delay by this factor (0.001 turns 12 s into 12 ms).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, allow_negative_numbers = true,
        value_parser = parse_delay_scale)]
    delay_scale: f64,
    /// The HTTP method of the delivery.
    #[arg(long, value_name = "METHOD", default_value = "POST", value_parser = parse_method)]
    method: Method,
    /// Give up on an attempt after this many seconds without a full answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// The signing key (`sig_...`).
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
}

/// A `--header` value: the name as typed (for the callback's `sourceHeader`) and as sent.
#[derive(Debug, Clone)]
pub(crate) struct ForwardedHeader {
    given_name: String,
    name: HeaderName,
    value: HeaderValue,
}

fn parse_header(text: &str) -> Result<ForwardedHeader, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not NAME:VALUE"))?;
    let given_name = name.trim().to_owned();
    let name = HeaderName::from_bytes(given_name.as_bytes())
        .map_err(|_| format!("`{given_name}` is not a valid header name"))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of `{given_name}` is not a valid header value"))?;
    Ok(ForwardedHeader {
        given_name,
        name,
        value,
    })
}

fn parse_delay_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale >= 0.0 => Ok(scale),
        _ => Err(format!("`{text}` is not a number >= 0")),
    }
}

fn parse_method(text: &str) -> Result<Method, String> {
    let method = text.to_ascii_uppercase();
    match method.as_str() {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("`{text}` is not an HTTP method")),
        _ => Err(format!(
            "`{text}` is not one of GET, POST, PUT, PATCH, DELETE"
        )),
    }
}

/// Checks a URL given on the command line: absolute, `http` (or `https` with TLS built in).
fn check_url(url: &str, what: &str) -> Result<(), CliError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CliError::usage(format!("{what} `{url}` is not a valid URL: {e}")))?;
    match parsed.scheme() {
        "http" => Ok(()),
        "https" if cfg!(feature = "https") => Ok(()),
        "https" => Err(CliError::usage(format!(
            "{what} `{url}`: this build speaks plain HTTP only (built without the `https` feature)"
        ))),
        other => Err(CliError::usage(format!(
            "{what} `{url}`: the scheme `{other}` is not http or https"
        ))),
    }
}

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

/// The retry policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// Factor applied to every delay.
    pub(crate) delay_scale: f64,
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

/// Waits between attempts.
pub(crate) trait Sleeper {
    /// Waits for `delay`.
    async fn sleep(&self, delay: Duration);
}

/// How a delivery ended.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Whether an attempt was answered with a 2xx.
    pub(crate) delivered: bool,
    /// `Upstash-Retried` of the last attempt.
    pub(crate) retried: u32,
    /// The last attempt's answer, or why there was none.
    pub(crate) last: Result<Answer, String>,
}

/// The delay before retry `n` (1 for the first retry): `min(86400, e^(2.5 n))` seconds.
pub(crate) fn backoff_secs(n: u32) -> f64 {
    (2.5 * f64::from(n)).exp().min(MAX_DELAY_SECS)
}

/// A `Retry-After` answer header in seconds (an HTTP date is not supported and ignored).
fn retry_after_secs(answer: &Answer) -> Option<f64> {
    let value = answer
        .headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    let secs = value.trim().parse::<u64>().ok()?;
    // u64 -> f64 loses precision only far beyond the one-day cap.
    #[allow(clippy::cast_precision_loss)]
    Some((secs as f64).min(MAX_DELAY_SECS))
}

fn scaled(secs: f64, scale: f64) -> Duration {
    Duration::try_from_secs_f64(secs * scale).unwrap_or(Duration::MAX)
}

/// Whether the answer is QStash's "do not retry": 489 with `Upstash-NonRetryable-Error: true`.
fn is_non_retryable(answer: &Answer) -> bool {
    answer.status.as_u16() == NON_RETRYABLE_STATUS
        && answer
            .headers
            .get(NON_RETRYABLE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// A duration for people: `850ms`, `12.2s`, `2m28s`, `6h50m`.
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 {
        format!("{}ms", duration.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        let whole = duration.as_secs();
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

fn describe(result: &Result<Answer, String>) -> String {
    match result {
        Ok(answer) => {
            let reason = answer.status.canonical_reason().unwrap_or("");
            format!("{} {reason}", answer.status.as_u16())
                .trim_end()
                .to_owned()
        }
        Err(error) => format!("no answer: {error}"),
    }
}

/// Delivers `message` with up to `policy.retries` retries, calling `log` with one line per
/// event (attempt, wait, verdict).
pub(crate) async fn deliver(
    transport: &impl Transport,
    sleeper: &impl Sleeper,
    signer: &Signer,
    message: &Message,
    policy: Policy,
    now: &dyn Fn() -> i64,
    log: &mut dyn FnMut(String),
) -> Outcome {
    let attempts = policy.retries.saturating_add(1);
    let mut retried = 0;
    loop {
        let mut headers = message.headers.clone();
        let upstash = signer.delivery_headers_at(
            &message.url,
            &message.body,
            &message.message_id,
            retried,
            now(),
        );
        for (name, value) in &upstash {
            headers.insert(name.clone(), value.clone());
        }
        let result = transport.send(message, headers).await;
        let mut line = format!(
            "attempt {} of {attempts} (Upstash-Retried: {retried}): {}",
            retried + 1,
            describe(&result)
        );
        let delay = match &result {
            Ok(answer) if answer.status.is_success() => {
                log(line + ": delivered");
                return Outcome {
                    delivered: true,
                    retried,
                    last: result,
                };
            }
            Ok(answer) if is_non_retryable(answer) => {
                log(line + " with Upstash-NonRetryable-Error: true: not retried");
                return Outcome {
                    delivered: false,
                    retried,
                    last: result,
                };
            }
            _ if retried >= policy.retries => {
                let _ = write!(line, ": no retries left");
                log(line);
                return Outcome {
                    delivered: false,
                    retried,
                    last: result,
                };
            }
            Ok(answer) => match retry_after_secs(answer) {
                Some(secs) => (
                    scaled(secs, policy.delay_scale),
                    format!("Retry-After: {secs}"),
                ),
                None => backoff_delay(retried + 1, policy.delay_scale),
            },
            Err(_) => backoff_delay(retried + 1, policy.delay_scale),
        };
        let (delay, why) = delay;
        let _ = write!(line, "; next retry in {} ({why})", human(delay));
        log(line);
        sleeper.sleep(delay).await;
        retried += 1;
    }
}

fn backoff_delay(n: u32, scale: f64) -> (Duration, String) {
    let secs = backoff_secs(n);
    let why = if (scale - 1.0).abs() < f64::EPSILON {
        format!("backoff e^(2.5*{n}) s")
    } else {
        format!(
            "backoff {} x {scale}",
            human(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        )
    };
    (scaled(secs, scale), why)
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

/// Sleeps on the tokio timer.
struct TokioSleeper;

impl Sleeper for TokioSleeper {
    async fn sleep(&self, delay: Duration) {
        tokio::time::sleep(delay).await;
    }
}

/// Runs `send`: prints progress on standard output.
pub(crate) fn run(
    args: &SendArgs,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Verdict, CliError> {
    check_url(&args.url, "URL")?;
    if let Some(url) = &args.callback {
        check_url(url, "--callback")?;
    }
    if let Some(url) = &args.failure_callback {
        check_url(url, "--failure-callback")?;
    }
    let body = args.body.read()?;
    let key = keys::signing_key(args.key.as_deref(), false, lookup)?;
    if key.source() == KeySource::Dev {
        eprintln!("{}", keys::dev_notice("--key", ENV_CURRENT));
    }
    let signer = key.signer()?;
    let mut headers = HeaderMap::new();
    for header in &args.headers {
        headers.append(header.name.clone(), header.value.clone());
    }
    let message = Message {
        url: args.url.clone(),
        method: args.method.clone(),
        headers,
        body: Bytes::from(body),
        message_id: new_id("msg_"),
    };
    let policy = Policy {
        retries: args.retries,
        delay_scale: args.delay_scale,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let transport = HttpTransport::new(Duration::from_secs(args.timeout))?;
    let created_at = unix_now_millis();
    let mut log = |line: String| println!("  {line}");
    let verdict = runtime.block_on(async {
        println!(
            "{} {} ({} bytes), message {}, {}",
            message.method,
            message.url,
            message.body.len(),
            message.message_id,
            match policy.retries {
                0 => "one attempt".to_owned(),
                n => format!("up to {} attempts", n + 1),
            }
        );
        let outcome = deliver(
            &transport,
            &TokioSleeper,
            &signer,
            &message,
            policy,
            &unix_now,
            &mut log,
        )
        .await;
        let verdict = if outcome.delivered {
            println!("delivered");
            Verdict::Success
        } else {
            println!("failed: {}", describe(&outcome.last));
            Verdict::Failure
        };
        let callback_url = if outcome.delivered {
            args.callback.as_deref().map(|url| ("callback", url))
        } else {
            args.failure_callback
                .as_deref()
                .map(|url| ("failure callback", url))
        };
        let Some((what, url)) = callback_url else {
            return verdict;
        };
        let mut callback_headers = HeaderMap::new();
        callback_headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let callback = Message {
            url: url.to_owned(),
            method: Method::POST,
            headers: callback_headers,
            body: Bytes::from(callback_body(
                &message,
                &args.headers,
                &outcome,
                policy.retries,
                created_at,
            )),
            message_id: new_id("msg_"),
        };
        println!(
            "{what}: POST {url} ({} bytes), message {}",
            callback.body.len(),
            callback.message_id
        );
        let reported = deliver(
            &transport,
            &TokioSleeper,
            &signer,
            &callback,
            policy,
            &unix_now,
            &mut log,
        )
        .await;
        if reported.delivered {
            println!("{what} delivered");
            verdict
        } else {
            println!("{what} failed: {}", describe(&reported.last));
            Verdict::Failure
        }
    });
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use qstash_receiver::{Callback, SigningKeys, Subject, Verifier};

    use super::*;

    struct Script {
        answers: RefCell<VecDeque<Result<Answer, String>>>,
        seen: RefCell<Vec<HeaderMap>>,
    }

    impl Script {
        fn new(answers: impl IntoIterator<Item = Result<Answer, String>>) -> Self {
            Self {
                answers: RefCell::new(answers.into_iter().collect()),
                seen: RefCell::new(Vec::new()),
            }
        }
    }

    impl Transport for Script {
        async fn send(&self, _message: &Message, headers: HeaderMap) -> Result<Answer, String> {
            self.seen.borrow_mut().push(headers);
            self.answers
                .borrow_mut()
                .pop_front()
                .expect("the script has an answer for every attempt")
        }
    }

    #[derive(Default)]
    struct Recorder(RefCell<Vec<Duration>>);

    impl Sleeper for Recorder {
        async fn sleep(&self, delay: Duration) {
            self.0.borrow_mut().push(delay);
        }
    }

    fn answer(status: u16, headers: &[(&'static str, &'static str)]) -> Result<Answer, String> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        Ok(Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from_static(b"answer"),
        })
    }

    fn message() -> Message {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Message {
            url: "http://127.0.0.1:9/hook".to_owned(),
            method: Method::POST,
            headers,
            body: Bytes::from_static(br#"{"n":1}"#),
            message_id: "msg_test".to_owned(),
        }
    }

    async fn run_script(
        answers: Vec<Result<Answer, String>>,
        policy: Policy,
    ) -> (Outcome, Vec<Duration>, Vec<HeaderMap>, Vec<String>) {
        let script = Script::new(answers);
        let sleeper = Recorder::default();
        let signer = Signer::new("sig_current").unwrap();
        let mut lines = Vec::new();
        let outcome = deliver(
            &script,
            &sleeper,
            &signer,
            &message(),
            policy,
            &|| 1_000,
            &mut |line| lines.push(line),
        )
        .await;
        (
            outcome,
            sleeper.0.into_inner(),
            script.seen.into_inner(),
            lines,
        )
    }

    const ONE: Policy = Policy {
        retries: 3,
        delay_scale: 1.0,
    };

    #[test]
    fn backoff_is_qstashs() {
        let secs: Vec<u64> = (1..=6).map(|n| backoff_secs(n) as u64).collect();
        assert_eq!(secs, [12, 148, 1808, 22026, 86400, 86400]);
    }

    #[tokio::test]
    async fn retries_with_backoff_then_gives_up() {
        let (outcome, sleeps, seen, lines) = run_script(
            vec![
                answer(500, &[]),
                answer(502, &[]),
                Err("refused".into()),
                answer(500, &[]),
            ],
            ONE,
        )
        .await;
        assert!(!outcome.delivered);
        assert_eq!(outcome.retried, 3);
        let want: Vec<Duration> = (1..=3)
            .map(|n| Duration::from_secs_f64(backoff_secs(n)))
            .collect();
        assert_eq!(sleeps, want);
        assert_eq!(seen.len(), 4);
        let verifier = Verifier::new(SigningKeys::new("sig_current", "sig_next").unwrap());
        let mut tokens = Vec::new();
        for (n, headers) in seen.iter().enumerate() {
            assert_eq!(headers["upstash-retried"], n.to_string().as_str());
            assert_eq!(headers["upstash-message-id"], "msg_test");
            assert_eq!(headers["user-agent"], "Upstash-QStash");
            assert_eq!(headers["content-type"], "application/json");
            let token = headers["upstash-signature"].to_str().unwrap();
            verifier
                .verify_headers_at(
                    headers,
                    br#"{"n":1}"#,
                    Subject::Url("http://127.0.0.1:9/hook"),
                    1_000,
                )
                .unwrap();
            tokens.push(token.to_owned());
        }
        tokens.dedup();
        assert_eq!(tokens.len(), 4, "a fresh token per attempt");
        assert!(lines[0].starts_with("attempt 1 of 4 (Upstash-Retried: 0): 500 Internal Server Error; next retry in 12.2s"), "{lines:?}");
        assert!(lines[2].contains("no answer: refused"), "{lines:?}");
        assert!(lines[3].ends_with("no retries left"), "{lines:?}");
    }

    #[tokio::test]
    async fn retry_after_overrides_and_is_scaled() {
        let policy = Policy {
            retries: 3,
            delay_scale: 0.5,
        };
        let (outcome, sleeps, _, lines) = run_script(
            vec![
                answer(503, &[("retry-after", "7")]),
                answer(429, &[("retry-after", "soon")]),
                answer(204, &[]),
            ],
            policy,
        )
        .await;
        assert!(outcome.delivered);
        assert_eq!(outcome.retried, 2);
        assert_eq!(
            sleeps,
            [
                Duration::from_secs_f64(3.5),
                Duration::from_secs_f64(backoff_secs(2) * 0.5)
            ]
        );
        assert!(lines[0].contains("(Retry-After: 7)"), "{lines:?}");
        assert!(lines[2].ends_with("204 No Content: delivered"), "{lines:?}");
    }

    #[tokio::test]
    async fn non_retryable_489_stops_at_once() {
        let (outcome, sleeps, seen, lines) = run_script(
            vec![answer(489, &[("upstash-nonretryable-error", "true")])],
            ONE,
        )
        .await;
        assert!(!outcome.delivered);
        assert!(sleeps.is_empty());
        assert_eq!(seen.len(), 1);
        assert!(lines[0].contains("not retried"), "{lines:?}");
        // Without the header, a 489 is an ordinary failure.
        let (outcome, sleeps, _, _) =
            run_script(vec![answer(489, &[]), answer(200, &[])], ONE).await;
        assert!(outcome.delivered);
        assert_eq!(sleeps.len(), 1);
    }

    #[tokio::test]
    async fn zero_retries_means_one_attempt() {
        let policy = Policy {
            retries: 0,
            delay_scale: 1.0,
        };
        let (outcome, sleeps, seen, _) = run_script(vec![answer(500, &[])], policy).await;
        assert!(!outcome.delivered);
        assert!(sleeps.is_empty());
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn callback_body_has_the_documented_shape() {
        let mut headers = HeaderMap::new();
        headers.append("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let outcome = Outcome {
            delivered: false,
            retried: 3,
            last: Ok(Answer {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                headers,
                body: Bytes::from_static(b"boom"),
            }),
        };
        let forwarded = [parse_header("X-Team: blue").unwrap()];
        let json = callback_body(&message(), &forwarded, &outcome, 3, 1_701_198_447_054);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["status"], 500);
        assert_eq!(
            value["header"]["Content-Type"],
            serde_json::json!(["text/plain"])
        );
        assert_eq!(value["header"]["X-Multi"], serde_json::json!(["a", "b"]));
        assert_eq!(value["body"], "Ym9vbQ==");
        assert_eq!(value["retried"], 3);
        assert_eq!(value["maxRetries"], 3);
        assert_eq!(value["sourceMessageId"], "msg_test");
        assert_eq!(value["url"], "http://127.0.0.1:9/hook");
        assert_eq!(value["method"], "POST");
        assert_eq!(
            value["sourceHeader"],
            serde_json::json!({"X-Team": ["blue"]})
        );
        assert_eq!(value["sourceBody"], STANDARD.encode(br#"{"n":1}"#));
        assert_eq!(value["createdAt"], "1701198447054");
        assert_eq!(value["notBefore"], "1701198447054");
        let parsed = Callback::from_slice(&json).unwrap();
        assert_eq!(
            (parsed.status, parsed.retried, parsed.max_retries),
            (500, 3, Some(3))
        );
        assert_eq!(&parsed.body[..], b"boom");
        assert_eq!(&parsed.source_body[..], br#"{"n":1}"#);
        assert!(parsed.is_last_attempt());
    }

    #[test]
    fn arguments_are_checked() {
        let header = parse_header("Content-Type:  application/json ").unwrap();
        assert_eq!(
            (header.name.as_str(), header.value.to_str().unwrap()),
            ("content-type", "application/json")
        );
        assert_eq!(header.given_name, "Content-Type");
        assert!(parse_header("no colon").unwrap_err().contains("NAME:VALUE"));
        assert!(
            parse_header("bad name: x")
                .unwrap_err()
                .contains("header name")
        );
        assert!(
            parse_header("x: a\nb")
                .unwrap_err()
                .contains("header value")
        );
        assert_eq!(parse_delay_scale("0.001"), Ok(0.001));
        for bad in ["-1", "NaN", "inf", "fast"] {
            assert!(parse_delay_scale(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_method("put"), Ok(Method::PUT));
        assert!(parse_method("TRACE").is_err());
        assert!(check_url("http://127.0.0.1:1/x", "URL").is_ok());
        assert!(
            matches!(check_url("ftp://x/", "URL"), Err(CliError::Usage(m)) if m.contains("`ftp`"))
        );
        assert!(matches!(
            check_url("/relative", "URL"),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn human_durations() {
        let cases = [
            (0.012, "12ms"),
            (12.18, "12.2s"),
            (148.4, "2m28s"),
            (24_607.0, "6h50m"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(Duration::from_secs_f64(secs)), want);
        }
        assert_eq!(canonical_name("content-type"), "Content-Type");
        assert_eq!(canonical_name("x-request-id"), "X-Request-Id");
    }
}
