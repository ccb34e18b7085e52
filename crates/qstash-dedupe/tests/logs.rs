//! The dedupe layers' answers are logged as every answer of the workspace: once, when written,
//! on the core's target, with the reason, the message id and the request's method.
#![cfg(all(feature = "tower", feature = "actix"))]
#![allow(clippy::unwrap_used)]

mod support;

use actix_web::test::{TestRequest, call_service, init_service};
use actix_web::{App, HttpMessage as _, HttpResponse, web};
use axum::Router;
use axum::routing::post;
use qstash_dedupe::{DedupeLayer, DedupeMiddleware, Deduplicator};
use qstash_receiver::receive::LogLevel;
use qstash_test_cases::{LogCapture, Logged};
use tower::ServiceExt as _;

use support::{delivery, delivery_headers, verified_request, verify};

fn events_of(capture: &LogCapture, message_id: &str) -> Vec<Logged> {
    capture.take(message_id)
}

#[tokio::test]
async fn tower_logs_a_duplicate_once_with_the_method() {
    let capture = LogCapture::global();
    let router = Router::new()
        .route(support::PATH, post(|| async { "handled" }))
        .layer(DedupeLayer::new(Deduplicator::default()));
    let id = "msg_log_tower";
    let first = router.clone().oneshot(delivery(id)).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(
        events_of(&capture, id).is_empty(),
        "a handled delivery logs nothing"
    );
    // QStash's retry, signed anew (the same token again would be a replay).
    let retry = verified_request(&delivery_headers(id, 1, b""));
    let again = router.clone().oneshot(retry).await.unwrap();
    assert_eq!(again.status(), 200);
    let events = events_of(&capture, id);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, LogLevel::Debug);
    assert_eq!(events[0].reason(), "duplicate");
    assert_eq!(events[0].fields["method"], "POST");
}

#[actix_web::test]
async fn actix_logs_a_duplicate_once_with_the_method() {
    let capture = LogCapture::global();
    let id = "msg_log_actix";
    let app = init_service(
        App::new()
            .wrap(DedupeMiddleware::new(Deduplicator::default()))
            .route(support::PATH, web::post().to(HttpResponse::Ok)),
    )
    .await;
    for (attempt, logged) in [(0, 0), (1, 1)] {
        // Each attempt signed anew, as QStash's retries are.
        let (delivery, claims) = verify(&delivery_headers(id, attempt, b""), b"");
        let req = TestRequest::post().uri(support::PATH).to_request();
        req.extensions_mut().insert(delivery);
        req.extensions_mut().insert(claims);
        let res = call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 200, "attempt {attempt}");
        let events = events_of(&capture, id);
        assert_eq!(events.len(), logged, "attempt {attempt}: {events:?}");
        if logged == 1 {
            assert_eq!(events[0].reason(), "duplicate");
            assert_eq!(events[0].fields["method"], "POST");
        }
    }
}
