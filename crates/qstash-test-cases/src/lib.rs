//! The conformance table: every delivery case, the receiver setup it runs under, how its
//! body is sent, and the whole answer every adapter must give.
//!
//! An adapter is done when it passes every [`Case`] of [`cases`] through each of its entry
//! points (middleware or layer, and extractor alone), in process and over a real socket:
//!
//! - Mount a handler for [`ROUTE_PATH`], for every method, that takes a typed [`Order`] and
//!   answers 200 with [`handled_body`]. Verify with [`Setup::receiver`] of the case's setup.
//! - Send the case: its method, target, headers and body framed as [`Framing`] says. Over a
//!   socket, send all cases of a setup in order through one keep-alive HTTP/1.1 client: the
//!   answer after a refusal that left its body unread must still arrive (a refusal that
//!   closes the connection says so with `Connection: close`).
//! - Compare the answer with [`Case::expect`] through [`check`], and the refusal's log event
//!   (captured with [`LogCapture`], by the case's unique message id) with [`check_logs`].
//!
//! A new adapter starts from this table; a behaviour that differs between two adapters gets
//! a case here.

mod logs;
pub mod wire;

use std::time::Duration;

use qstash_receiver::{
    Clock, Receiver, Signer, SigningKeys, Verifier, receive::LogLevel, receive::PayloadErrorStatus,
    subject::SubjectPolicy,
};

pub use logs::{LogCapture, Logged};

/// The public base URL the tokens are signed for.
pub const BASE_URL: &str = "https://receiver.example.com";
/// The path of the route under test.
pub const ROUTE_PATH: &str = "/api/webhook";
/// The route under test, with the query the tokens are signed for.
pub const ROUTE: &str = "/api/webhook?team=7";
/// The body limit every setup has.
pub const LIMIT: usize = 4096;
/// The body timeout of [`Setup::ShortBodyTimeout`].
pub const SHORT_BODY_TIMEOUT: Duration = Duration::from_millis(300);
/// The buffer budget of [`Setup::SmallBudget`], in bytes.
pub const SMALL_BUDGET: usize = 100;
/// The current signing key of the table.
pub const CURRENT_KEY: &str = "sig_tablecurrent0000000000000000";
/// The next signing key of the table.
pub const NEXT_KEY: &str = "sig_tablenext000000000000000000000";
/// A declared length far over [`LIMIT`]: 2 MiB.
pub const OVERSIZE_DECLARED: u64 = 2 * 1024 * 1024;

/// The length of the bodies a client writes whole before it reads the answer: 2 MiB,
/// far more than a socket's buffers take in while nobody reads.
pub const WRITTEN_WHOLE: usize = 2 * 1024 * 1024;

/// The keys the adapters verify with.
#[must_use]
pub fn keys() -> SigningKeys {
    SigningKeys::new(CURRENT_KEY, NEXT_KEY).expect("table keys are valid")
}

/// The receiver configuration a case runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Setup {
    /// The defaults, with the table's keys and [`LIMIT`].
    Default,
    /// `SubjectPolicy::PublicBaseUrl(BASE_URL)`.
    PublicBaseUrl,
    /// `SubjectPolicy::TrustForwardedHeaders`.
    TrustForwardedHeaders,
    /// `SubjectPolicy::DangerouslySkipCheck`.
    SkipSubjectCheck,
    /// `PayloadErrorStatus::UnprocessableEntity` (422).
    Unprocessable,
    /// A body timeout of [`SHORT_BODY_TIMEOUT`].
    ShortBodyTimeout,
    /// A buffer budget of [`SMALL_BUDGET`] bytes.
    SmallBudget,
}

impl Setup {
    /// Every setup.
    pub const ALL: [Self; 7] = [
        Self::Default,
        Self::PublicBaseUrl,
        Self::TrustForwardedHeaders,
        Self::SkipSubjectCheck,
        Self::Unprocessable,
        Self::ShortBodyTimeout,
        Self::SmallBudget,
    ];

    /// The receiver of this setup, on a clock fixed at `now` (the time the cases were signed).
    ///
    /// # Panics
    ///
    /// Never: the table's base URL is valid.
    pub fn receiver(self, now: i64) -> Receiver {
        let receiver = Receiver::new(Verifier::new(keys()))
            .max_body_bytes(LIMIT)
            .clock(Clock::fixed(now));
        match self {
            Self::Default => receiver,
            Self::PublicBaseUrl => receiver
                .subject_policy(SubjectPolicy::public_base_url(BASE_URL).expect("valid base URL")),
            Self::TrustForwardedHeaders => {
                receiver.subject_policy(SubjectPolicy::TrustForwardedHeaders)
            }
            Self::SkipSubjectCheck => receiver.subject_policy(SubjectPolicy::DangerouslySkipCheck),
            Self::Unprocessable => {
                receiver.payload_error_status(PayloadErrorStatus::UnprocessableEntity)
            }
            Self::ShortBodyTimeout => receiver.body_timeout(SHORT_BODY_TIMEOUT),
            Self::SmallBudget => receiver.max_buffered_bytes(SMALL_BUDGET),
        }
    }
}

/// How the body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// With `Content-Length` equal to the body's length.
    Exact,
    /// Chunked, in chunks of 1000 bytes, without `Content-Length`.
    Chunked,
    /// `Content-Length` says this many bytes, but only the body is sent, and the client then
    /// waits for the answer (an answer must come without reading the rest).
    Declared(u64),
    /// `Content-Length` says 10 bytes more than the body; the body is sent, then nothing.
    Stalled,
}

/// Where a case can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// In process and over a socket.
    Any,
    /// In process only: HTTP/1.1 clients always send what this case leaves out (`Host`).
    InProcess,
}

/// The whole answer a case must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The status.
    pub status: u16,
    /// The refusal's reason (`None`: the handler answered).
    pub reason: Option<&'static str>,
    /// The answer's body, exactly.
    pub body: String,
    /// Whether `Upstash-NonRetryable-Error: true` is set (and otherwise absent).
    pub non_retryable: bool,
    /// Whether `Connection: close` is set: the refusal left the body unread.
    pub connection_close: bool,
    /// The `Retry-After` value, in seconds, when one is set (and otherwise absent).
    pub retry_after: Option<u32>,
    /// The level of the refusal's one log event (`None`: no event).
    pub log: Option<LogLevel>,
}

impl Expect {
    fn handled(message_id: &str, retried: u32, order: u32) -> Self {
        Self {
            status: 200,
            reason: None,
            body: handled_body(
                message_id,
                retried,
                &Order {
                    order,
                    pad: String::new(),
                },
            ),
            non_retryable: false,
            connection_close: false,
            retry_after: None,
            log: None,
        }
    }

    fn refused(status: u16, reason: &'static str, body: &str, log: LogLevel) -> Self {
        Self {
            status,
            reason: Some(reason),
            body: body.to_owned(),
            non_retryable: status == 489,
            connection_close: false,
            retry_after: None,
            log: Some(log),
        }
    }

    const fn closing(mut self) -> Self {
        self.connection_close = true;
        self
    }
}

const SIGNATURE_TEXT: &str = "invalid QStash signature";

fn unauthorized(reason: &'static str, log: LogLevel) -> Expect {
    Expect::refused(401, reason, SIGNATURE_TEXT, log).closing()
}

/// The typed payload of the route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// An order number.
    pub order: u32,
    /// Padding, to make bodies of a given size.
    #[serde(default)]
    pub pad: String,
}

/// What the handler answers for a delivery it accepted.
#[must_use]
pub fn handled_body(message_id: &str, retried: u32, order: &Order) -> String {
    format!("{message_id} retried={retried} order={}", order.order)
}

/// One request and the answer it must get.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case shows.
    pub name: &'static str,
    /// The receiver setup.
    pub setup: Setup,
    /// Where it can run.
    pub transport: Transport,
    /// The method.
    pub method: &'static str,
    /// The request target (path and query).
    pub target: String,
    /// Request headers, in order; a name may repeat. `Content-Length` and
    /// `Transfer-Encoding` are not among them: [`Case::framing`] decides them.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// How the body is sent.
    pub framing: Framing,
    /// The answer.
    pub expect: Expect,
}

impl Case {
    /// The `Content-Length` to send, if any.
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        let len = u64::try_from(self.body.len()).unwrap_or(u64::MAX);
        match self.framing {
            Framing::Exact => Some(len),
            Framing::Chunked => None,
            Framing::Declared(declared) => Some(declared),
            Framing::Stalled => Some(len + 10),
        }
    }

    /// The message id the case sends (unique in the table), if it sends one.
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name == "upstash-message-id")
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }
}

/// An answer as an adapter's test saw it.
#[derive(Debug, Clone, Default)]
pub struct Got {
    /// The status.
    pub status: u16,
    /// The response headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Compares an answer with the case's expectation.
///
/// # Panics
///
/// On any difference, naming the entry point (`how`), the case and the difference.
pub fn check(how: &str, case: &Case, got: &Got) {
    let expect = &case.expect;
    let at = format!("{how}: case {:?} ({:?})", case.name, case.setup);
    assert_eq!(
        got.status, expect.status,
        "{at}: status; body {:?}",
        got.body
    );
    assert_eq!(got.body, expect.body, "{at}: body");
    assert_eq!(
        got.header("upstash-nonretryable-error"),
        expect.non_retryable.then_some("true"),
        "{at}: Upstash-NonRetryable-Error"
    );
    let close = got
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    assert_eq!(close, expect.connection_close, "{at}: Connection: close");
    assert_eq!(
        got.header("retry-after").map(str::to_owned),
        expect.retry_after.map(|s| s.to_string()),
        "{at}: Retry-After"
    );
    if expect.reason.is_some() {
        assert_eq!(
            got.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{at}: Content-Type"
        );
    }
}

/// Compares the log events of one case (taken from a [`LogCapture`]) with its expectation:
/// exactly one event for a refusal, at the expected level and with the expected `reason`;
/// none for a handled delivery.
///
/// # Panics
///
/// On any difference.
pub fn check_logs(how: &str, case: &Case, events: &[Logged]) {
    let at = format!("{how}: case {:?} ({:?})", case.name, case.setup);
    match (case.expect.log, case.expect.reason) {
        (Some(level), Some(reason)) => {
            assert_eq!(events.len(), 1, "{at}: one log event, got {events:?}");
            assert_eq!(events[0].level, level, "{at}: log level");
            assert_eq!(events[0].reason(), reason, "{at}: logged reason");
            // Refusals decided after the body is read once logged `method=""`.
            assert_eq!(
                events[0].fields.get("method").map(String::as_str),
                Some(case.method),
                "{at}: logged method"
            );
            let text = format!("{events:?}");
            assert!(
                !text.contains(CURRENT_KEY) && !text.contains(NEXT_KEY),
                "{at}: a key in the log"
            );
        }
        _ => assert!(events.is_empty(), "{at}: no log event, got {events:?}"),
    }
}

fn url(target: &str) -> String {
    format!("{BASE_URL}{target}")
}

fn order_body(order: u32) -> Vec<u8> {
    format!(r#"{{"order":{order}}}"#).into_bytes()
}

/// A body of exactly `len` bytes that deserializes into [`Order`] number 1.
#[must_use]
pub fn padded_order(len: usize) -> Vec<u8> {
    let shell = r#"{"order":1,"pad":""}"#.len();
    format!(
        r#"{{"order":1,"pad":"{}"}}"#,
        "x".repeat(len.saturating_sub(shell))
    )
    .into_bytes()
}

type Headers = Vec<(String, Vec<u8>)>;

fn delivery(signature: &str, message_id: &str, retried: &str) -> Headers {
    vec![
        ("upstash-signature".into(), signature.as_bytes().to_vec()),
        ("upstash-message-id".into(), message_id.as_bytes().to_vec()),
        ("upstash-retried".into(), retried.as_bytes().to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ]
}

fn with(mut headers: Headers, name: &str, value: &str) -> Headers {
    headers.push((name.to_owned(), value.as_bytes().to_vec()));
    headers
}

fn without(mut headers: Headers, name: &str) -> Headers {
    headers.retain(|(n, _)| n != name);
    headers
}

/// Every case, signed at `now` (unix seconds); [`Setup::receiver`] verifies on a clock
/// fixed at the same `now`.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn cases(now: i64) -> Vec<Case> {
    use LogLevel::{Debug, Warn};

    let current = Signer::new(CURRENT_KEY).expect("key");
    let next = Signer::new(NEXT_KEY).expect("key");
    let stranger = Signer::new("sig_somebodyelse000000000000000").expect("key");
    let route_url = url(ROUTE);
    let body = order_body(42);
    let sign = |body: &[u8]| current.sign_at(&route_url, body, now);
    let ok = sign(&body);
    let big = padded_order(LIMIT);
    let too_big = padded_order(LIMIT + 1);
    let whole = padded_order(WRITTEN_WHOLE);
    let wrong_shape = br#"{"order":"forty-two"}"#.to_vec();
    let not_json = b"\xff\xfenot json".to_vec();
    let forged_alg = |alg: &str| {
        // A header other than HS256 over a valid payload, with the real MAC: refused for `alg`.
        let header = base64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        let mut parts = ok.splitn(2, '.');
        let _ = parts.next();
        format!("{header}.{}", parts.next().unwrap_or_default())
    };
    let nbf_zero = current.sign_claims(
        format!(
            r#"{{"aud":"","body":"{}","exp":{},"iat":{now},"iss":"Upstash","jti":"jwt_nbf0","nbf":0,"sub":"{route_url}"}}"#,
            qstash_receiver::digest::body_hash(&body),
            now + 300
        )
        .as_bytes(),
    );
    let long_target = format!("{ROUTE}&pad={}", "p".repeat(8 * 1024));
    let payload_error = |reason, status: u16| {
        let text = if reason == "invalid_delivery_headers" {
            "invalid QStash delivery headers"
        } else {
            "invalid QStash payload"
        };
        Expect::refused(status, reason, text, Warn)
    };

    let mut cases = Vec::new();
    let mut add = |name, setup, headers: Headers, body: &[u8], framing, expect| {
        cases.push(Case {
            name,
            setup,
            transport: Transport::Any,
            method: "POST",
            target: ROUTE.to_owned(),
            headers,
            body: body.to_vec(),
            framing,
            expect,
        });
    };
    use Framing::{Chunked, Declared, Exact, Stalled};
    use Setup::{
        Default, PublicBaseUrl, ShortBodyTimeout, SkipSubjectCheck, SmallBudget,
        TrustForwardedHeaders, Unprocessable,
    };

    // Accepted.
    add(
        "valid",
        Default,
        delivery(&ok, "msg_valid", "0"),
        &body,
        Exact,
        Expect::handled("msg_valid", 0, 42),
    );
    add(
        "valid, chunked",
        Default,
        delivery(&ok, "msg_chunked", "0"),
        &body,
        Chunked,
        Expect::handled("msg_chunked", 0, 42),
    );
    add(
        "valid, third retry",
        Default,
        delivery(&ok, "msg_retry", "3"),
        &body,
        Exact,
        Expect::handled("msg_retry", 3, 42),
    );
    add(
        "signed with the next key",
        Default,
        delivery(&next.sign_at(&route_url, &body, now), "msg_next", "0"),
        &body,
        Exact,
        Expect::handled("msg_next", 0, 42),
    );
    add(
        "body of exactly the limit",
        Default,
        delivery(&sign(&big), "msg_big", "0"),
        &big,
        Exact,
        Expect::handled("msg_big", 0, 1),
    );
    add(
        "body of exactly the limit, chunked",
        Default,
        delivery(&sign(&big), "msg_big_chunked", "0"),
        &big,
        Chunked,
        Expect::handled("msg_big_chunked", 0, 1),
    );
    add(
        "nbf 0 (QStash signs so since 2024)",
        Default,
        delivery(&nbf_zero, "msg_nbf0", "0"),
        &body,
        Exact,
        Expect::handled("msg_nbf0", 0, 42),
    );
    add(
        "two Content-Type headers",
        Default,
        with(
            delivery(&ok, "msg_two_ct", "0"),
            "content-type",
            "text/plain",
        ),
        &body,
        Exact,
        Expect::handled("msg_two_ct", 0, 42),
    );
    add(
        "no Content-Type",
        Default,
        without(delivery(&ok, "msg_no_ct", "0"), "content-type"),
        &body,
        Exact,
        Expect::handled("msg_no_ct", 0, 42),
    );
    add(
        "Upgrade: websocket on a valid delivery",
        Default,
        with(
            with(delivery(&ok, "msg_upgrade", "0"), "upgrade", "websocket"),
            "connection",
            "Upgrade",
        ),
        &body,
        Exact,
        Expect::handled("msg_upgrade", 0, 42),
    );
    add(
        "forwarded headers ignored by default",
        Default,
        with(
            delivery(&ok, "msg_fwd_default", "0"),
            "x-forwarded-host",
            "evil.example",
        ),
        &body,
        Exact,
        Expect::handled("msg_fwd_default", 0, 42),
    );

    // The signature, refused before the body is read.
    add(
        "no signature",
        Default,
        without(delivery(&ok, "msg_none", "0"), "upstash-signature"),
        &body,
        Exact,
        unauthorized("missing_signature", Debug),
    );
    add(
        "two signatures",
        Default,
        with(delivery(&ok, "msg_two_sigs", "0"), "upstash-signature", &ok),
        &body,
        Exact,
        unauthorized("multiple_signatures", Debug),
    );
    add(
        "empty signature",
        Default,
        delivery("", "msg_empty_sig", "0"),
        &body,
        Exact,
        unauthorized("malformed_token", Debug),
    );
    add(
        "garbage signature",
        Default,
        delivery("not.a.jwt", "msg_garbage", "0"),
        &body,
        Exact,
        unauthorized("malformed_token", Debug),
    );
    add(
        "token over the bound",
        Default,
        delivery(
            &format!("{ok}{}", "A".repeat(16 * 1024)),
            "msg_long_token",
            "0",
        ),
        &body,
        Exact,
        unauthorized("token_too_long", Debug),
    );
    add(
        "signed by another key",
        Default,
        delivery(
            &stranger.sign_at(&route_url, &body, now),
            "msg_stranger",
            "0",
        ),
        &body,
        Exact,
        unauthorized("invalid_signature", Warn),
    );
    add(
        "expired",
        Default,
        delivery(
            &current.sign_at(&route_url, &body, now - 301),
            "msg_expired",
            "0",
        ),
        &body,
        Exact,
        unauthorized("expired", Warn),
    );
    add(
        "not valid yet",
        Default,
        delivery(
            &current.sign_at(&route_url, &body, now + 60),
            "msg_early",
            "0",
        ),
        &body,
        Exact,
        unauthorized("not_yet_valid", Warn),
    );
    add(
        "signed for another path",
        Default,
        delivery(
            &current.sign_at(&url("/api/other?team=7"), &body, now),
            "msg_other_path",
            "0",
        ),
        &body,
        Exact,
        unauthorized("subject_mismatch", Warn),
    );
    add(
        "signed for another query",
        Default,
        delivery(
            &current.sign_at(&url("/api/webhook?team=8"), &body, now),
            "msg_other_query",
            "0",
        ),
        &body,
        Exact,
        unauthorized("subject_mismatch", Warn),
    );
    add(
        "alg none",
        Default,
        delivery(&forged_alg("none"), "msg_alg_none", "0"),
        &body,
        Exact,
        unauthorized("unsupported_algorithm", Warn),
    );
    add(
        "alg HS512",
        Default,
        delivery(&forged_alg("HS512"), "msg_alg_512", "0"),
        &body,
        Exact,
        unauthorized("unsupported_algorithm", Warn),
    );
    add(
        "unsigned, 2 MiB declared",
        Default,
        without(delivery(&ok, "msg_unsigned_big", "0"), "upstash-signature"),
        &body,
        Declared(OVERSIZE_DECLARED),
        unauthorized("missing_signature", Debug),
    );
    add(
        "junk signature, 2 MiB declared",
        Default,
        delivery("junk.junk.junk", "msg_junk_big", "0"),
        &body,
        Declared(OVERSIZE_DECLARED),
        unauthorized("malformed_token", Debug),
    );
    add(
        "forged, 2 MiB declared",
        Default,
        delivery(
            &stranger.sign_at(&route_url, &body, now),
            "msg_forged_big",
            "0",
        ),
        &body,
        Declared(OVERSIZE_DECLARED),
        unauthorized("invalid_signature", Warn),
    );

    // The body: its length, its hash, its time.
    add(
        "valid token, 2 MiB declared",
        Default,
        delivery(&ok, "msg_declared_big", "0"),
        &body,
        Declared(OVERSIZE_DECLARED),
        Expect::refused(413, "payload_too_large", "payload too large", Warn).closing(),
    );
    // Written whole before the answer is read, as most clients (Node's `fetch`) do: the
    // answer comes before the body is read, and must still arrive.
    add(
        "valid token, 2 MiB written whole",
        Default,
        delivery(&sign(&whole), "msg_whole_big", "0"),
        &whole,
        Exact,
        Expect::refused(413, "payload_too_large", "payload too large", Warn).closing(),
    );
    add(
        "unsigned, 2 MiB written whole",
        Default,
        without(
            delivery(&ok, "msg_unsigned_whole", "0"),
            "upstash-signature",
        ),
        &whole,
        Exact,
        unauthorized("missing_signature", Debug),
    );
    add(
        "body over the limit",
        Default,
        delivery(&sign(&too_big), "msg_too_big", "0"),
        &too_big,
        Exact,
        Expect::refused(413, "payload_too_large", "payload too large", Warn).closing(),
    );
    add(
        "body over the limit, chunked",
        Default,
        delivery(&sign(&too_big), "msg_too_big_chunked", "0"),
        &too_big,
        Chunked,
        Expect::refused(413, "payload_too_large", "payload too large", Warn).closing(),
    );
    add(
        "tampered body",
        Default,
        delivery(&ok, "msg_tampered", "0"),
        &order_body(43),
        Exact,
        Expect::refused(401, "body_hash_mismatch", SIGNATURE_TEXT, Warn),
    );
    add(
        "body stalls",
        ShortBodyTimeout,
        delivery(&ok, "msg_stalled", "0"),
        &body,
        Stalled,
        Expect::refused(408, "body_timeout", "request body timeout", Debug).closing(),
    );
    add(
        "valid, under a short body timeout",
        ShortBodyTimeout,
        delivery(&ok, "msg_quick", "0"),
        &body,
        Exact,
        Expect::handled("msg_quick", 0, 42),
    );

    // The delivery headers and the payload.
    add(
        "no message id",
        Default,
        without(delivery(&ok, "msg_unused", "0"), "upstash-message-id"),
        &body,
        Exact,
        payload_error("invalid_delivery_headers", 489).closing(),
    );
    add(
        "two message ids",
        Default,
        with(
            delivery(&ok, "msg_two_ids", "0"),
            "upstash-message-id",
            "msg_other",
        ),
        &body,
        Exact,
        payload_error("invalid_delivery_headers", 489).closing(),
    );
    add(
        "garbled retry count",
        Default,
        delivery(&ok, "msg_garbled", "two"),
        &body,
        Exact,
        payload_error("invalid_delivery_headers", 489).closing(),
    );
    add(
        "payload of the wrong shape",
        Default,
        delivery(&sign(&wrong_shape), "msg_shape", "0"),
        &wrong_shape,
        Exact,
        payload_error("invalid_payload", 489),
    );
    add(
        "payload not JSON",
        Default,
        delivery(&sign(&not_json), "msg_not_json", "0"),
        &not_json,
        Exact,
        payload_error("invalid_payload", 489),
    );
    add(
        "payload of the wrong shape, 422",
        Unprocessable,
        delivery(&sign(&wrong_shape), "msg_shape_422", "0"),
        &wrong_shape,
        Exact,
        payload_error("invalid_payload", 422),
    );
    add(
        "garbled retry count, 422",
        Unprocessable,
        delivery(&ok, "msg_garbled_422", "x"),
        &body,
        Exact,
        payload_error("invalid_delivery_headers", 422).closing(),
    );

    // Subject policies.
    add(
        "base URL: same URL",
        PublicBaseUrl,
        delivery(&ok, "msg_base_ok", "0"),
        &body,
        Exact,
        Expect::handled("msg_base_ok", 0, 42),
    );
    add(
        "base URL: other host",
        PublicBaseUrl,
        delivery(
            &current.sign_at(&format!("https://evil.example.com{ROUTE}"), &body, now),
            "msg_base_host",
            "0",
        ),
        &body,
        Exact,
        unauthorized("subject_mismatch", Warn),
    );
    add(
        "base URL: other scheme",
        PublicBaseUrl,
        delivery(
            &current.sign_at(&format!("http://receiver.example.com{ROUTE}"), &body, now),
            "msg_base_scheme",
            "0",
        ),
        &body,
        Exact,
        unauthorized("subject_mismatch", Warn),
    );
    add(
        "base URL: forwarded headers ignored",
        PublicBaseUrl,
        with(
            delivery(
                &current.sign_at(&format!("https://evil.example.com{ROUTE}"), &body, now),
                "msg_base_fwd",
                "0",
            ),
            "x-forwarded-host",
            "evil.example.com",
        ),
        &body,
        Exact,
        unauthorized("subject_mismatch", Warn),
    );
    add(
        "forwarded: HTTPS and host",
        TrustForwardedHeaders,
        with(
            with(
                delivery(&ok, "msg_fwd_ok", "0"),
                "x-forwarded-proto",
                "HTTPS",
            ),
            "x-forwarded-host",
            "receiver.example.com, proxy.internal",
        ),
        &body,
        Exact,
        Expect::handled("msg_fwd_ok", 0, 42),
    );
    add(
        "forwarded: wrong host",
        TrustForwardedHeaders,
        with(
            with(
                delivery(&ok, "msg_fwd_host", "0"),
                "x-forwarded-proto",
                "https",
            ),
            "x-forwarded-host",
            "other.example.com",
        ),
        &body,
        Exact,
        unauthorized("subject_mismatch", Warn),
    );
    add(
        "forwarded: no proto means http",
        TrustForwardedHeaders,
        with(
            delivery(&ok, "msg_fwd_proto", "0"),
            "x-forwarded-host",
            "receiver.example.com",
        ),
        &body,
        Exact,
        unauthorized("subject_mismatch", Warn),
    );
    add(
        "skip: any sub",
        SkipSubjectCheck,
        delivery(
            &current.sign_at("https://elsewhere.example/other", &body, now),
            "msg_skip",
            "0",
        ),
        &body,
        Exact,
        Expect::handled("msg_skip", 0, 42),
    );

    // The buffer budget.
    add(
        "over the buffer budget",
        SmallBudget,
        delivery(&sign(&big), "msg_busy", "0"),
        &big,
        Exact,
        Expect {
            retry_after: Some(qstash_receiver::receive::BUSY_RETRY_AFTER_SECS),
            ..Expect::refused(503, "busy", "receiver busy, retry later", Warn).closing()
        },
    );
    add(
        "within the buffer budget",
        SmallBudget,
        delivery(&ok, "msg_not_busy", "0"),
        &body,
        Exact,
        Expect::handled("msg_not_busy", 0, 42),
    );

    // Methods, targets, hosts.
    let empty_get = current.sign_at(&route_url, b"", now);
    cases.push(Case {
        name: "GET with an empty body (verified, then not an Order)",
        setup: Setup::Default,
        transport: Transport::Any,
        method: "GET",
        target: ROUTE.to_owned(),
        headers: without(delivery(&empty_get, "msg_get", "0"), "content-type"),
        body: Vec::new(),
        framing: Framing::Exact,
        expect: payload_error("invalid_payload", 489),
    });
    let long_url = url(&long_target);
    cases.push(Case {
        name: "a token for an 8 KiB URL",
        setup: Setup::Default,
        transport: Transport::Any,
        method: "POST",
        target: long_target.clone(),
        headers: delivery(&current.sign_at(&long_url, &body, now), "msg_long_url", "0"),
        body: body.clone(),
        framing: Framing::Exact,
        expect: Expect::handled("msg_long_url", 0, 42),
    });
    cases.push(Case {
        name: "forwarded: no host at all",
        setup: Setup::TrustForwardedHeaders,
        transport: Transport::InProcess,
        method: "POST",
        target: ROUTE.to_owned(),
        headers: delivery(&ok, "msg_no_host", "0"),
        body: body.clone(),
        framing: Framing::Exact,
        expect: unauthorized("subject_mismatch", Warn),
    });
    cases
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests;
