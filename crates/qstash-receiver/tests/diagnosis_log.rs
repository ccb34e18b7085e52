//! A refusal carries its one-line diagnosis when `debug` is enabled for the crate's log
//! target, and is not diagnosed at all otherwise.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use qstash_receiver::{
    Clock, ErrorKind, Receiver, RequestHead, Signer, SigningKeys, Verifier, receive::LOG_TARGET,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

const URL: &str = "https://app.example.com/api/hook";
const BODY: &[u8] = br#"{"a":1}"#;

/// A subscriber that enables everything and keeps the `diagnosis` fields it sees.
#[derive(Default, Clone)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "diagnosis" {
            self.0.lock().unwrap().push(value.to_owned());
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl Subscriber for Collect {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == LOG_TARGET
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        event.record(&mut self.clone());
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn receiver() -> Receiver {
    Receiver::new(Verifier::new(
        SigningKeys::new("sig_current", "sig_next").unwrap(),
    ))
    .clock(Clock::fixed(1_000))
}

fn refuse(key: &str, body: &[u8]) -> qstash_receiver::receive::Refusal {
    let headers = Signer::new(key)
        .unwrap()
        .delivery_headers_at(URL, BODY, "msg_1", 0, 1_000);
    let head = RequestHead::new("POST", "/api/hook", &headers);
    receiver()
        .check_head(&head)
        .and_then(|admission| admission.finish_with(Bytes::copy_from_slice(body)))
        .unwrap_err()
}

#[test]
fn refusals_are_diagnosed_only_at_debug() {
    // No subscriber: nothing is computed.
    assert_eq!(refuse("sig_current", b"{\"a\": 1}").diagnosis(), None);

    let collect = Collect::default();
    tracing::subscriber::with_default(collect.clone(), || {
        let refusal = refuse("sig_current", b"{\"a\": 1}");
        assert_eq!(refusal.error().unwrap().kind(), ErrorKind::BodyHashMismatch);
        let summary = refusal.diagnosis().unwrap().to_owned();
        assert!(summary.contains("parsed and re-serialized"), "{summary}");
        assert!(!summary.contains("\"a\""), "the body leaks: {summary}");
        refusal.log();

        let refusal = refuse(qstash_receiver::keys::DEV_CURRENT_SIGNING_KEY, BODY);
        let summary = refusal.diagnosis().unwrap();
        assert!(summary.contains("[invalid_signature]"), "{summary}");
        assert!(summary.contains("dev-server keys"), "{summary}");
        assert!(!summary.contains("sig_"), "a key leaks: {summary}");
    });
    let logged = collect.0.lock().unwrap();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("[body_hash_mismatch]"), "{logged:?}");
}
