//! The actix-web middleware over the in-memory store.
#![cfg(feature = "actix")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, HttpMessage as _, HttpResponse, test, web};
use qstash_dedupe::{DUPLICATE_HEADER, DedupeMiddleware, Deduplicator};
use qstash_receiver::Delivery;
use tokio::sync::Notify;

/// Builds an actix test request carrying these QStash headers.
fn request(headers: &http::HeaderMap) -> test::TestRequest {
    headers.iter().fold(
        test::TestRequest::post().uri(support::PATH),
        |req, (name, value)| req.insert_header((name.as_str(), value.to_str().unwrap())),
    )
}

fn delivery(id: &str) -> test::TestRequest {
    request(&support::delivery_headers(id, 0, b""))
}

/// Copies actix's headers into an `http` 1 map for the core crate.
fn http_headers(req: &actix_web::dev::ServiceRequest) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in req.headers() {
        map.append(
            http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    map
}

fn is_duplicate<B>(response: &ServiceResponse<B>) -> bool {
    response
        .headers()
        .get(DUPLICATE_HEADER)
        .is_some_and(|v| v == "true")
}

#[derive(Clone, Default)]
struct Handler {
    runs: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    proceed: Option<Arc<Notify>>,
}

macro_rules! app {
    ($handler:expr, $dedupe:expr, verified: $verified:expr) => {{
        let handler: Handler = $handler.clone();
        let verified: bool = $verified;
        test::init_service(
            App::new()
                .route(
                    support::PATH,
                    web::post().to(move |delivery: web::ReqData<Delivery>| {
                        let handler = handler.clone();
                        async move {
                            let _ = &delivery.message_id;
                            handler.runs.fetch_add(1, Ordering::SeqCst);
                            if let Some(proceed) = &handler.proceed {
                                proceed.notified().await;
                            }
                            let status = match handler.status.load(Ordering::SeqCst) {
                                0 => 200,
                                s => s,
                            };
                            HttpResponse::build(StatusCode::from_u16(status).unwrap())
                                .body("handled")
                        }
                    }),
                )
                .wrap(DedupeMiddleware::new($dedupe))
                // Stand-in for actix-qstash's QStashMiddleware: the outermost, runs first.
                .wrap_fn(move |req, srv| {
                    if verified {
                        let (delivery, claims) = support::verify(&http_headers(&req), b"");
                        req.extensions_mut().insert(delivery);
                        req.extensions_mut().insert(claims);
                    }
                    srv.call(req)
                }),
        )
        .await
    }};
}

#[actix_web::test]
async fn runs_once_and_answers_duplicates_with_200() {
    let handler = Handler::default();
    let app = app!(handler, Deduplicator::default(), verified: true);
    let first = test::call_service(&app, delivery("m").to_request()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(!is_duplicate(&first));
    assert_eq!(test::read_body(first).await, "handled");

    let again = test::call_service(&app, delivery("m").to_request()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(is_duplicate(&again));
    assert!(
        std::str::from_utf8(&test::read_body(again).await)
            .unwrap()
            .contains("duplicate")
    );
    assert_eq!(handler.runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn a_failed_handler_releases_the_mark() {
    let handler = Handler::default();
    let app = app!(handler, Deduplicator::default(), verified: true);
    for status in [500, 489] {
        handler.status.store(status, Ordering::SeqCst);
        let failed = test::call_service(&app, delivery("m").to_request()).await;
        assert_eq!(failed.status().as_u16(), status);
    }
    handler.status.store(0, Ordering::SeqCst);
    let ok = test::call_service(&app, delivery("m").to_request()).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(!is_duplicate(&ok));
    assert_eq!(handler.runs.load(Ordering::SeqCst), 3);
    let dup = test::call_service(&app, delivery("m").to_request()).await;
    assert!(is_duplicate(&dup));
    assert_eq!(handler.runs.load(Ordering::SeqCst), 3);
}

#[actix_web::test]
async fn without_the_verification_it_answers_500() {
    let handler = Handler::default();
    let app = app!(handler, Deduplicator::default(), verified: false);
    let response = test::call_service(&app, delivery("m").to_request()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(handler.runs.load(Ordering::SeqCst), 0);
}

#[actix_web::test]
async fn a_duplicate_in_progress_gets_409_with_retry_after() {
    let proceed = Arc::new(Notify::new());
    let handler = Handler {
        proceed: Some(proceed.clone()),
        ..Handler::default()
    };
    let app = app!(handler, Deduplicator::default(), verified: true);
    // `join!` polls the first call until its handler waits, then the second.
    let (a, b) = tokio::join!(
        test::call_service(&app, delivery("m").to_request()),
        async {
            let second = test::call_service(&app, delivery("m").to_request()).await;
            proceed.notify_one();
            second
        }
    );
    assert_eq!(a.status(), StatusCode::OK);
    assert!(!is_duplicate(&a));
    assert_eq!(b.status(), StatusCode::CONFLICT);
    assert!(is_duplicate(&b));
    let retry_after: u64 = b
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(handler.runs.load(Ordering::SeqCst), 1);
}
