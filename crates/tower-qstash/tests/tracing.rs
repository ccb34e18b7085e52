//! The `tracing` event of each refusal, target `qstash_receiver`: exactly one per refusal,
//! whether the layer or the extractor answers it, with the level and `reason` the table
//! expects and the `message_id` sent, and never the token, a key or the body. Alone in its
//! binary, so that no other test's events mix in.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use common::{Calls, now, table_receiver, table_request};
use http::Request;
use qstash_receiver::receive::LOG_TARGET;
use qstash_test_cases::{CURRENT_KEY, LogCapture, NEXT_KEY, check_logs};
use tower::ServiceExt as _;
use tower_qstash::QStashLayer;

#[tokio::test]
async fn one_event_per_refusal_without_secrets() {
    assert_eq!(LOG_TARGET, "qstash_receiver");
    let logs = LogCapture::global();
    let now = now();
    for case in qstash_test_cases::cases(now) {
        for way in ["layer", "extractor"] {
            let calls = Calls::default();
            let receiver = case.setup.receiver(now);
            let app = if way == "layer" {
                common::layered_app(QStashLayer::new(receiver), &calls)
            } else {
                common::extractor_app(receiver, &calls)
            };
            let (request, _) = table_request(&case);
            let _ = app.oneshot(request).await.unwrap();
            // Every event, not only this case's: a second event under another id would be a
            // refusal logged twice.
            let events = logs.take_all();
            check_logs(way, &case, &events);
            let Some(event) = events.first() else {
                continue;
            };
            assert_eq!(
                event.message_id(),
                case.message_id().unwrap_or(""),
                "{way}: {}",
                case.name
            );
            let text = format!("{:?}", event.fields);
            for (name, value) in &case.headers {
                if name == "upstash-signature" && value.len() > 10 {
                    let token = String::from_utf8_lossy(value);
                    for segment in token.split('.').filter(|s| s.len() > 4) {
                        assert!(
                            !text.contains(segment),
                            "{way}: {}: token in {text}",
                            case.name
                        );
                    }
                }
            }
            for key in [CURRENT_KEY, NEXT_KEY] {
                assert!(!text.contains(key), "{way}: {}: key in {text}", case.name);
            }
            if case.body.len() > 4 {
                let body = String::from_utf8_lossy(&case.body);
                assert!(
                    !text.contains(body.as_ref()),
                    "{way}: {}: body in {text}",
                    case.name
                );
            }
        }
    }

    // A payload error does not quote the body's values either.
    let body = br#"{"order":"secret-customer-value"}"#;
    let mut req = Request::post(qstash_test_cases::ROUTE)
        .body(Body::from(&body[..]))
        .unwrap();
    *req.headers_mut() = qstash_receiver::Signer::new(CURRENT_KEY)
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
    let app = common::layered_app(QStashLayer::new(table_receiver()), &Calls::default());
    let response = app.oneshot(req).await.unwrap();
    assert_eq!(response.status().as_u16(), 489);
    let events = logs.take_all();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason(), "invalid_payload");
    assert!(
        !format!("{events:?}").contains("secret-customer-value"),
        "{events:?}"
    );
}
