//! The table through the core's pipeline itself, as the smallest possible adapter: every
//! case must get its answer here before any adapter is asked to give it.

use super::*;
use bytes_free::to_header_map;
use qstash_receiver::receive::{BodyFailure, BodyStep, Refusal};
use qstash_receiver::{RequestHead, Subject, Validation};

mod bytes_free {
    pub(super) fn to_header_map(pairs: &[(String, Vec<u8>)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }
}

fn refused(refusal: &Refusal) -> Got {
    refusal.log();
    Got {
        status: refusal.status().as_u16(),
        headers: refusal
            .headers()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect(),
        body: refusal.body_text().to_owned(),
    }
}

/// The reference adapter: head, then the body as the framing delivers it, then the payload.
fn answer(case: &Case, now: i64) -> Got {
    let receiver = case.setup.receiver(now);
    let mut headers = to_header_map(&case.headers);
    if case.transport == Transport::Any {
        headers.insert(http::header::HOST, "127.0.0.1:8080".parse().unwrap());
    }
    if let Some(len) = case.content_length() {
        headers.insert(http::header::CONTENT_LENGTH, len.into());
    }
    let head = RequestHead::new(case.method, &case.target, &headers);
    let mut admission = match receiver.check_head(&head) {
        Ok(admission) => admission,
        Err(refusal) => return refused(&refusal),
    };
    // The body step: the whole body as one chunk, or a body that never comes until the timer
    // the admission asks for fires.
    match case.framing {
        Framing::Declared(_) => panic!("{}: a declared oversize body got past the head", case.name),
        Framing::Stalled => {
            assert!(
                matches!(admission.pending(), BodyStep::StartTimer(_)),
                "{}",
                case.name
            );
            let _ = admission.fail(BodyFailure::TimedOut);
        }
        Framing::Exact | Framing::Chunked => {
            let _ = admission.data(case.body.clone().into());
        }
    }
    let verified = admission.finish();
    match verified.and_then(|v| v.json::<Order>().map(|order| (v, order))) {
        Ok((v, order)) => Got {
            status: 200,
            headers: Vec::new(),
            body: handled_body(&v.delivery.message_id, v.delivery.retried, &order),
        },
        Err(refusal) => refused(&refusal),
    }
}

#[test]
fn the_core_pipeline_gives_every_answer() {
    let now = 1_800_000_000;
    let logs = LogCapture::global();
    let cases = cases(now);
    assert!(cases.len() >= 50, "the whole table: {}", cases.len());
    let mut ids = std::collections::HashSet::new();
    for case in &cases {
        if let Some(id) = case.message_id() {
            assert!(
                ids.insert(id.to_owned()),
                "{}: message id not unique",
                case.name
            );
        }
        let got = answer(case, now);
        check("core", case, &got);
        let events = logs.take(case.message_id().unwrap_or(""));
        check_logs("core", case, &events);
    }
}

#[test]
fn every_setup_is_used_and_signature_cases_agree_with_the_verifier() {
    let now = 1_800_000_000;
    let cases = cases(now);
    for setup in Setup::ALL {
        assert!(cases.iter().any(|c| c.setup == setup), "{setup:?} unused");
    }
    let verifier = Verifier::new(keys());
    for case in cases.iter().filter(|c| c.setup == Setup::Default) {
        let signatures: Vec<_> = case
            .headers
            .iter()
            .filter(|(n, _)| n == "upstash-signature")
            .collect();
        let verified = match signatures.as_slice() {
            [(_, token)] => verifier
                .verify(
                    std::str::from_utf8(token).unwrap(),
                    &case.body,
                    &Validation::new(Subject::PathAndQuery(&case.target)).at(now),
                )
                .is_ok(),
            _ => false,
        };
        let refused_for_signature = case.expect.status == 401;
        assert_eq!(verified, !refused_for_signature, "{}", case.name);
    }
}

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
