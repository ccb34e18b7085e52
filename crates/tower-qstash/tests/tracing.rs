//! The `tracing` event of each refusal: its level, `reason` and `message_id`, and that it
//! never carries the token, a key or the body. Alone in its binary, so that no other test's
//! events mix in.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use common::{Calls, now, request};
use http::Request;
use tower::ServiceExt as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if !event.metadata().target().starts_with("tower_qstash") {
            return;
        }
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn one_event_per_refusal_without_secrets() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    struct Want {
        level: Level,
        reason: &'static str,
    }
    let want = |name: &str| -> Option<Want> {
        let (level, reason) = match name {
            "no signature" => (Level::DEBUG, "missing_signature"),
            "two signatures" => (Level::DEBUG, "multiple_signatures"),
            "empty signature" | "garbage signature" => (Level::DEBUG, "malformed_token"),
            "tampered body" => (Level::WARN, "body_hash_mismatch"),
            "signed by another key" => (Level::WARN, "invalid_signature"),
            "expired" => (Level::WARN, "expired"),
            "not valid yet" => (Level::WARN, "not_yet_valid"),
            "signed for another path" | "signed for another query" => {
                (Level::WARN, "subject_mismatch")
            }
            "alg none" | "alg HS512" => (Level::WARN, "unsupported_algorithm"),
            "body over the limit" => (Level::WARN, "payload_too_large"),
            "payload of the wrong shape" | "payload not JSON" => (Level::WARN, "invalid_payload"),
            "no message id" | "garbled retry count" => (Level::WARN, "invalid_delivery_headers"),
            _ => return None,
        };
        Some(Want { level, reason })
    };

    let calls = Calls::default();
    for case in qstash_test_cases::cases(now()) {
        for app in [common::layered_app(&calls), common::extractor_app(&calls)] {
            capture.0.lock().unwrap().clear();
            let response = app.oneshot(request(&case)).await.unwrap();
            let events = capture.0.lock().unwrap().clone();
            let Some(want) = want(case.name) else {
                assert!(response.status().is_success(), "{}", case.name);
                assert!(events.is_empty(), "{}: {events:?}", case.name);
                continue;
            };
            assert_eq!(events.len(), 1, "{}: {events:?}", case.name);
            let event = &events[0];
            assert_eq!(event.level, want.level, "{}", case.name);
            assert_eq!(event.fields["reason"], want.reason, "{}", case.name);
            let message_id = case
                .headers
                .iter()
                .find(|(n, _)| n == "upstash-message-id")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            assert_eq!(
                event.fields.get("message_id"),
                message_id.as_ref(),
                "{}",
                case.name
            );
            let text = format!("{:?}", event.fields);
            for (name, value) in &case.headers {
                if name == "upstash-signature" && value.len() > 10 {
                    let token = String::from_utf8_lossy(value);
                    for segment in token.split('.') {
                        assert!(!text.contains(segment), "{}: token in {text}", case.name);
                    }
                }
            }
            for key in [qstash_test_cases::CURRENT_KEY, qstash_test_cases::NEXT_KEY] {
                assert!(!text.contains(key), "{}: key in {text}", case.name);
            }
            if case.body.len() > 4 {
                let body = String::from_utf8_lossy(&case.body);
                assert!(
                    !text.contains(body.as_ref()),
                    "{}: body in {text}",
                    case.name
                );
            }
        }
    }

    // A payload error must not quote the body's values either.
    capture.0.lock().unwrap().clear();
    let body = br#"{"order":"secret-customer-value"}"#;
    let mut req = Request::post(qstash_test_cases::ROUTE)
        .body(Body::from(&body[..]))
        .unwrap();
    *req.headers_mut() = qstash_receiver::Signer::new(qstash_test_cases::CURRENT_KEY)
        .unwrap()
        .delivery_headers(
            &format!(
                "{}{}",
                qstash_test_cases::BASE_URL,
                qstash_test_cases::ROUTE
            ),
            body,
            "msg_secret",
            0,
        );
    let response = common::layered_app(&calls).oneshot(req).await.unwrap();
    assert_eq!(response.status().as_u16(), 489);
    let events = capture.0.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        !format!("{events:?}").contains("secret-customer-value"),
        "{events:?}"
    );
}
