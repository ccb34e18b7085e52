//! The receiving pipeline takes the time from its configured clock alone: what Cloudflare
//! Workers needs, where `SystemTime::now()` panics (`wasm32-unknown-unknown`). A token signed
//! at t = 1 000 expired decades ago on the system clock, so every acceptance below proves the
//! system clock was not what decided.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use qstash_receiver::{Clock, ErrorKind, Receiver, RequestHead, Signer, SigningKeys, Verifier};

const CURRENT: &str = "sig_clock_current";
const URL: &str = "https://worker.example.workers.dev/api/webhook?x=1";
const BODY: &[u8] = br#"{"order":42}"#;
const SIGNED_AT: i64 = 1_000;

fn receiver(clock: Clock) -> Receiver {
    Receiver::new(Verifier::new(
        SigningKeys::new(CURRENT, "sig_clock_next").unwrap(),
    ))
    .clock(clock)
}

fn headers() -> http::HeaderMap {
    Signer::new(CURRENT)
        .unwrap()
        .delivery_headers_at(URL, BODY, "msg_1", 0, SIGNED_AT)
}

/// The error kind of the answer at `clock`, or `None` when the delivery is accepted.
fn refused_as(clock: Clock) -> Option<ErrorKind> {
    let headers = headers();
    let head = RequestHead::new("POST", "/api/webhook?x=1", &headers);
    let result = receiver(clock)
        .check_head(&head)
        .and_then(|admission| admission.finish_with(Bytes::from_static(BODY)));
    match result {
        Ok(verified) => {
            assert_eq!(verified.claims.issued_at(), Some(SIGNED_AT));
            None
        }
        Err(refusal) => {
            assert_eq!(refusal.status(), 401);
            Some(refusal.error().unwrap().kind())
        }
    }
}

#[test]
fn a_fixed_clock_decides_the_validity_window() {
    assert_eq!(refused_as(Clock::fixed(SIGNED_AT)), None);
    assert_eq!(refused_as(Clock::fixed(SIGNED_AT + 299)), None);
    assert_eq!(
        refused_as(Clock::fixed(SIGNED_AT + 300)),
        Some(ErrorKind::Expired)
    );
    assert_eq!(
        refused_as(Clock::fixed(SIGNED_AT - 1)),
        Some(ErrorKind::NotYetValid)
    );
    // The same token on the system clock: long expired.
    assert_eq!(refused_as(Clock::system()), Some(ErrorKind::Expired));
}

#[test]
fn a_clock_from_a_function_is_what_is_read() {
    // As on Workers: `Clock::from_fn(|| (js_sys::Date::now() / 1000.0) as i64)`.
    let reads = Arc::new(AtomicUsize::new(0));
    let clock = Clock::from_fn({
        let reads = Arc::clone(&reads);
        move || {
            reads.fetch_add(1, Ordering::SeqCst);
            let millis = 1_000_500.0_f64;
            (millis / 1000.0) as i64
        }
    });
    assert_eq!(refused_as(clock.clone()), None);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "read once, before the body"
    );
    assert_eq!(refused_as(clock), None);
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}
