//! One table of deliveries, with the answer every adapter must give to each.
//!
//! Each adapter's tests mount [`ROUTE`] behind its verification with [`keys`] and
//! [`LIMIT`] as the body limit, with a handler that takes a typed [`Order`] and answers 200
//! with [`handled_body`]; then they send every [`Case`] of [`cases`] and compare.

use qstash_receiver::{Signer, SigningKeys};

/// The public base URL the tokens are signed for.
pub const BASE_URL: &str = "https://receiver.example.com";
/// The route under test (path and query).
pub const ROUTE: &str = "/api/webhook?team=7";
/// The body limit the adapters are configured with for the table.
pub const LIMIT: usize = 4096;
/// The current signing key of the table.
pub const CURRENT_KEY: &str = "sig_tablecurrent0000000000000000";
/// The next signing key of the table.
pub const NEXT_KEY: &str = "sig_tablenext000000000000000000000";

/// The keys the adapters verify with.
#[must_use]
pub fn keys() -> SigningKeys {
    SigningKeys::new(CURRENT_KEY, NEXT_KEY).expect("table keys are valid")
}

/// The typed payload of [`ROUTE`].
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

/// The answer a case must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// 200 from the handler, with this body.
    Handled(String),
    /// Refused before the handler, with this status; `non_retryable` means the answer carries
    /// `Upstash-NonRetryable-Error: true`.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Whether `Upstash-NonRetryable-Error: true` is set.
        non_retryable: bool,
    },
}

/// One delivery.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case shows.
    pub name: &'static str,
    /// The request target (path and query).
    pub target: String,
    /// Request headers, in order; a name may repeat.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The answer it must get.
    pub expect: Expect,
}

const fn rejected(status: u16) -> Expect {
    Expect::Rejected {
        status,
        non_retryable: false,
    }
}

const NON_RETRYABLE: Expect = Expect::Rejected {
    status: 489,
    non_retryable: true,
};

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

fn delivery(signature: &str, message_id: &str, retried: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("upstash-signature".into(), signature.as_bytes().to_vec()),
        ("upstash-message-id".into(), message_id.as_bytes().to_vec()),
        ("upstash-retried".into(), retried.as_bytes().to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ]
}

/// Every case, signed at `now` (unix seconds; pass the real clock, adapters verify with it).
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn cases(now: i64) -> Vec<Case> {
    let current = Signer::new(CURRENT_KEY).expect("key");
    let next = Signer::new(NEXT_KEY).expect("key");
    let stranger = Signer::new("sig_somebodyelse000000000000000").expect("key");
    let route_url = url(ROUTE);
    let body = order_body(42);
    let ok = current.sign_at(&route_url, &body, now);
    let case = |name, headers, body: &[u8], expect| Case {
        name,
        target: ROUTE.to_owned(),
        headers,
        body: body.to_vec(),
        expect,
    };
    let handled = |id: &str, retried, order| {
        Expect::Handled(handled_body(
            id,
            retried,
            &Order {
                order,
                pad: String::new(),
            },
        ))
    };
    let big = padded_order(LIMIT);
    let too_big = padded_order(LIMIT + 1);
    let wrong_shape = br#"{"order":"forty-two"}"#.to_vec();
    let not_json = b"\xff\xfenot json".to_vec();
    let forged_alg = |alg: &str| {
        // A header other than HS256 over a valid payload, with the real MAC: refused for `alg`.
        let header = base64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        let mut parts = ok.splitn(2, '.');
        let _ = parts.next();
        format!("{header}.{}", parts.next().unwrap_or_default())
    };
    let mut two_signatures = delivery(&ok, "msg_two", "0");
    two_signatures.push(("upstash-signature".into(), ok.as_bytes().to_vec()));
    let mut no_signature = delivery(&ok, "msg_none", "0");
    no_signature.remove(0);
    let mut no_message_id = delivery(&ok, "msg_x", "0");
    no_message_id.remove(1);

    vec![
        case(
            "valid",
            delivery(&ok, "msg_valid", "0"),
            &body,
            handled("msg_valid", 0, 42),
        ),
        case(
            "valid, third retry",
            delivery(&ok, "msg_retry", "3"),
            &body,
            handled("msg_retry", 3, 42),
        ),
        case(
            "signed with the next key",
            delivery(&next.sign_at(&route_url, &body, now), "msg_next", "0"),
            &body,
            handled("msg_next", 0, 42),
        ),
        case(
            "body of exactly the limit",
            delivery(&current.sign_at(&route_url, &big, now), "msg_big", "0"),
            &big,
            handled("msg_big", 0, 1),
        ),
        case("no signature", no_signature, &body, rejected(401)),
        case("two signatures", two_signatures, &body, rejected(401)),
        case(
            "empty signature",
            delivery("", "msg_e", "0"),
            &body,
            rejected(401),
        ),
        case(
            "garbage signature",
            delivery("not.a.jwt", "msg_g", "0"),
            &body,
            rejected(401),
        ),
        case(
            "tampered body",
            delivery(&ok, "msg_t", "0"),
            &order_body(43),
            rejected(401),
        ),
        case(
            "signed by another key",
            delivery(&stranger.sign_at(&route_url, &body, now), "msg_s", "0"),
            &body,
            rejected(401),
        ),
        case(
            "expired",
            delivery(
                &current.sign_at(&route_url, &body, now - 301),
                "msg_exp",
                "0",
            ),
            &body,
            rejected(401),
        ),
        case(
            "not valid yet",
            delivery(
                &current.sign_at(&route_url, &body, now + 60),
                "msg_nbf",
                "0",
            ),
            &body,
            rejected(401),
        ),
        case(
            "signed for another path",
            delivery(
                &current.sign_at(&url("/api/other?team=7"), &body, now),
                "msg_p",
                "0",
            ),
            &body,
            rejected(401),
        ),
        case(
            "signed for another query",
            delivery(
                &current.sign_at(&url("/api/webhook?team=8"), &body, now),
                "msg_q",
                "0",
            ),
            &body,
            rejected(401),
        ),
        case(
            "alg none",
            delivery(&forged_alg("none"), "msg_a", "0"),
            &body,
            rejected(401),
        ),
        case(
            "alg HS512",
            delivery(&forged_alg("HS512"), "msg_a", "0"),
            &body,
            rejected(401),
        ),
        case(
            "body over the limit",
            delivery(&current.sign_at(&route_url, &too_big, now), "msg_big", "0"),
            &too_big,
            rejected(413),
        ),
        case(
            "payload of the wrong shape",
            delivery(
                &current.sign_at(&route_url, &wrong_shape, now),
                "msg_shape",
                "0",
            ),
            &wrong_shape,
            NON_RETRYABLE,
        ),
        case(
            "payload not JSON",
            delivery(&current.sign_at(&route_url, &not_json, now), "msg_nj", "0"),
            &not_json,
            NON_RETRYABLE,
        ),
        case("no message id", no_message_id, &body, NON_RETRYABLE),
        case(
            "garbled retry count",
            delivery(&ok, "msg_r", "two"),
            &body,
            NON_RETRYABLE,
        ),
    ]
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
mod tests {
    use super::*;
    use qstash_receiver::{Subject, Verifier};

    #[test]
    fn padded_orders_have_the_requested_size() {
        assert_eq!(padded_order(LIMIT).len(), LIMIT);
        assert_eq!(padded_order(100).len(), 100);
    }

    #[test]
    fn base64url_matches_the_standard() {
        assert_eq!(
            base64url(br#"{"alg":"HS256","typ":"JWT"}"#),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        );
        assert_eq!(base64url(b"ab"), "YWI");
    }

    #[test]
    fn the_core_agrees_with_every_signature_case() {
        let now = 1_800_000_000;
        let verifier = Verifier::new(keys());
        for case in cases(now) {
            let signatures: Vec<_> = case
                .headers
                .iter()
                .filter(|(n, _)| n == "upstash-signature")
                .collect();
            let verified = match signatures.as_slice() {
                [(_, token)] => verifier
                    .verify_at(
                        std::str::from_utf8(token).unwrap(),
                        &case.body,
                        Subject::PathAndQuery(&case.target),
                        now,
                    )
                    .is_ok(),
                _ => false,
            };
            let should = !matches!(case.expect, Expect::Rejected { status: 401, .. });
            assert_eq!(verified, should, "{}", case.name);
        }
    }
}
