//! The layer and the extractors, driven in process with `tower::ServiceExt::oneshot`: the
//! shared table of delivery cases through each way of mounting them, and every success and
//! refusal path on its own.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::response::IntoResponse as _;
use axum::routing::post;
use bytes::Bytes;
use common::{Calls, ROUTE_PATH, check, handled_count, now, request, table_config};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt as _;
use qstash_receiver::{Claims, Delivery, NON_RETRYABLE_HEADER, Signer, SigningKeys, Verifier};
use qstash_test_cases::{BASE_URL, CURRENT_KEY, LIMIT, ROUTE, cases, padded_order};
use tower::ServiceExt as _;
use tower_qstash::{
    Layered, QStash, QStashCallback, QStashConfig, QStashLayer, QStashRaw, QStashRejection,
    VerifiedBody,
};

async fn answer(app: Router, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = app.oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

fn signer() -> Signer {
    Signer::new(CURRENT_KEY).unwrap()
}

/// A POST to `target` signed for `url`, with `body`.
fn signed(target: &str, url: &str, body: &[u8], message_id: &str) -> Request<Body> {
    let mut req = Request::post(target)
        .body(Body::from(body.to_vec()))
        .unwrap();
    *req.headers_mut() = signer().delivery_headers(url, body, message_id, 0);
    req
}

fn route_url() -> String {
    format!("{BASE_URL}{ROUTE}")
}

#[tokio::test]
async fn table_through_the_layer() {
    let calls = Calls::default();
    let cases = cases(now());
    for case in &cases {
        let (status, headers, body) = answer(common::layered_app(&calls), request(case)).await;
        check(case, status, &headers, &body);
    }
    assert_eq!(calls.get(), handled_count(&cases));
}

#[tokio::test]
async fn table_through_the_extractor_without_the_layer() {
    let calls = Calls::default();
    let cases = cases(now());
    for case in &cases {
        let (status, headers, body) = answer(common::extractor_app(&calls), request(case)).await;
        check(case, status, &headers, &body);
    }
    assert_eq!(calls.get(), handled_count(&cases));
}

#[tokio::test]
async fn behind_the_layer_the_extractor_does_not_verify_again() {
    // The state's configuration would refuse every delivery (other keys, tiny limit): the
    // answers match the table only if the extractor uses what the layer verified.
    let refusing = QStashConfig::new(Verifier::new(
        SigningKeys::new("sig_other1", "sig_other2").unwrap(),
    ))
    .max_body_bytes(1);
    let calls = Calls::default();
    let cases = cases(now());
    for case in &cases {
        let app = common::app_with::<QStashConfig, _>(
            &calls,
            Some(QStashLayer::new(table_config())),
            refusing.clone(),
        );
        let (status, headers, body) = answer(app, request(case)).await;
        check(case, status, &headers, &body);
    }
    assert_eq!(calls.get(), handled_count(&cases));
}

#[tokio::test]
async fn verifier_in_state_verifies_with_the_defaults() {
    let calls = Calls::default();
    let app = common::app_with::<Verifier, _>(&calls, None, common::table_verifier());
    let body = br#"{"order":5}"#;
    let (status, _, text) = answer(app, signed(ROUTE, &route_url(), body, "msg_v")).await;
    assert_eq!(
        (status, &text[..]),
        (StatusCode::OK, &b"msg_v retried=0 order=5"[..])
    );
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn layered_extractor_without_the_layer_is_a_server_error() {
    let calls = Calls::default();
    let app = common::app_with::<Layered, _>(&calls, None, ());
    let body = br#"{"order":5}"#;
    let (status, _, text) = answer(app, signed(ROUTE, &route_url(), body, "msg_m")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text, "QStash verification is not configured");
    assert_eq!(calls.get(), 0);
}

/// What a plain tower service behind the layer saw.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    body_ptr: AtomicUsize,
    body_len: AtomicUsize,
    message_id: std::sync::Mutex<Option<String>>,
    subject: std::sync::Mutex<Option<String>>,
}

fn plain_service(
    seen: Arc<Seen>,
) -> impl tower::Service<
    Request<VerifiedBody>,
    Response = Response<http_body_util::Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |req: Request<VerifiedBody>| {
        let seen = seen.clone();
        async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            *seen.message_id.lock().unwrap() = req
                .extensions()
                .get::<Delivery>()
                .map(|d| d.message_id.clone());
            *seen.subject.lock().unwrap() = req
                .extensions()
                .get::<Claims>()
                .map(|c| c.subject().to_owned());
            let bytes = req.into_body().into_bytes();
            seen.body_ptr
                .store(bytes.as_ptr() as usize, Ordering::SeqCst);
            seen.body_len.store(bytes.len(), Ordering::SeqCst);
            Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                Bytes::from_static(b"handled"),
            )))
        }
    })
}

#[tokio::test]
async fn plain_tower_gets_the_same_bytes_and_the_verified_extensions() {
    let seen = Arc::new(Seen::default());
    let service = tower::ServiceBuilder::new()
        .layer(QStashLayer::new(table_config()))
        .service(plain_service(seen.clone()));
    let bytes = Bytes::from(padded_order(1024));
    let ptr = bytes.as_ptr() as usize;
    let mut req = Request::post(ROUTE)
        .body(http_body_util::Full::new(bytes.clone()))
        .unwrap();
    *req.headers_mut() = signer().delivery_headers(&route_url(), &bytes, "msg_plain", 2);
    let response = service.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "handled"
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
    assert_eq!(seen.body_len.load(Ordering::SeqCst), 1024);
    assert_eq!(
        seen.body_ptr.load(Ordering::SeqCst),
        ptr,
        "the body was copied"
    );
    assert_eq!(
        seen.message_id.lock().unwrap().as_deref(),
        Some("msg_plain")
    );
    assert_eq!(seen.subject.lock().unwrap().as_deref(), Some(&*route_url()));
}

#[tokio::test]
async fn plain_tower_table() {
    // The layer alone answers every refusal the table expects before the extractor's payload
    // check; payload errors are the extractor's, so those cases reach the service here.
    let cases = cases(now());
    for case in &cases {
        let seen = Arc::new(Seen::default());
        let service = tower_qstash::QStashService::new(plain_service(seen.clone()), table_config());
        let mut req = Request::post(case.target.as_str())
            .body(http_body_util::Full::new(Bytes::from(case.body.clone())))
            .unwrap();
        for (name, value) in &case.headers {
            req.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let response = service.oneshot(req).await.unwrap();
        let reached = seen.calls.load(Ordering::SeqCst) == 1;
        match &case.expect {
            qstash_test_cases::Expect::Handled(_) => {
                assert_eq!(response.status(), StatusCode::OK, "{}", case.name);
                assert!(reached, "{}", case.name);
            }
            qstash_test_cases::Expect::Rejected { .. } if case.name.starts_with("payload") => {
                assert_eq!(response.status(), StatusCode::OK, "{}", case.name);
                assert!(reached, "{}", case.name);
            }
            qstash_test_cases::Expect::Rejected { status, .. } => {
                assert_eq!(response.status().as_u16(), *status, "{}", case.name);
                assert!(!reached, "{}: the service was called", case.name);
            }
        }
    }
}

/// A request body that yields `chunk` forever (or errors), counting its polls.
struct Probe {
    polls: Arc<AtomicUsize>,
    chunk: Bytes,
    fail: bool,
}

impl http_body::Body for Probe {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polls = self.polls.fetch_add(1, Ordering::SeqCst);
        if self.fail && polls > 0 {
            return Poll::Ready(Some(Err(std::io::Error::other("connection reset"))));
        }
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

fn probe_request(
    polls: &Arc<AtomicUsize>,
    fail: bool,
    content_length: Option<usize>,
) -> Request<Body> {
    let probe = Probe {
        polls: polls.clone(),
        chunk: Bytes::from(vec![b' '; 1024]),
        fail,
    };
    let mut req = Request::post(ROUTE).body(Body::new(probe)).unwrap();
    *req.headers_mut() = signer().delivery_headers(&route_url(), b"{}", "msg_probe", 0);
    if let Some(len) = content_length {
        req.headers_mut()
            .insert(http::header::CONTENT_LENGTH, len.into());
    }
    req
}

#[tokio::test]
async fn body_limits_and_failures() {
    struct Case {
        name: &'static str,
        fail: bool,
        content_length: Option<usize>,
        status: StatusCode,
        text: &'static str,
        max_polls: usize,
    }
    let cases = [
        Case {
            name: "Content-Length over the limit: refused before reading",
            fail: false,
            content_length: Some(LIMIT + 1),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            text: "payload too large",
            max_polls: 0,
        },
        Case {
            name: "endless body without Content-Length: refused once past the limit",
            fail: false,
            content_length: None,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            text: "payload too large",
            max_polls: LIMIT / 1024 + 1,
        },
        Case {
            name: "body that fails while read",
            fail: true,
            content_length: None,
            status: StatusCode::BAD_REQUEST,
            text: "failed to read the request body",
            max_polls: 2,
        },
    ];
    for case in cases {
        for (way, layered) in [("layer", true), ("extractor", false)] {
            let calls = Calls::default();
            let app = if layered {
                common::layered_app(&calls)
            } else {
                common::extractor_app(&calls)
            };
            let polls = Arc::new(AtomicUsize::new(0));
            let (status, _, body) =
                answer(app, probe_request(&polls, case.fail, case.content_length)).await;
            assert_eq!(status, case.status, "{} ({way})", case.name);
            assert_eq!(body, case.text, "{} ({way})", case.name);
            let polled = polls.load(Ordering::SeqCst);
            assert!(
                polled <= case.max_polls,
                "{} ({way}): polled {polled}",
                case.name
            );
            assert_eq!(calls.get(), 0, "{} ({way})", case.name);
        }
    }
}

#[tokio::test]
async fn handler_sees_claims_and_delivery_in_extensions() {
    async fn handler(
        Extension(claims): Extension<Claims>,
        Extension(delivery): Extension<Delivery>,
        body: Bytes,
    ) -> String {
        format!(
            "{} {} {}",
            claims.subject(),
            delivery.message_id,
            body.len()
        )
    }
    let app = Router::new()
        .route(ROUTE_PATH, post(handler))
        .layer(QStashLayer::new(table_config()));
    let (status, _, text) = answer(app, signed(ROUTE, &route_url(), b"abc", "msg_ext")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, format!("{} msg_ext 3", route_url()));
}

/// Valid signatures over a body of the wrong shape, and over unusable delivery headers.
fn non_retryable_requests() -> Vec<(&'static str, Request<Body>)> {
    let mut garbled = signed(ROUTE, &route_url(), br#"{"order":1}"#, "msg_r");
    garbled
        .headers_mut()
        .insert("upstash-retried", "many".parse().unwrap());
    vec![
        (
            "wrong shape",
            signed(ROUTE, &route_url(), br#"{"order":"x"}"#, "msg_s"),
        ),
        ("garbled retried", garbled),
    ]
}

#[tokio::test]
async fn payload_error_status_422() {
    let status_422 = StatusCode::UNPROCESSABLE_ENTITY;
    for (name, req) in non_retryable_requests() {
        let calls = Calls::default();
        let layer = QStashLayer::new(table_config()).payload_error_status(status_422);
        let app = common::app_with::<Layered, _>(&calls, Some(layer), ());
        let (status, headers, _) = answer(app, req).await;
        assert_eq!(status, status_422, "{name} (layer)");
        assert!(headers.get(NON_RETRYABLE_HEADER).is_none(), "{name}");
        assert_eq!(calls.get(), 0, "{name}");
    }
    for (name, req) in non_retryable_requests() {
        let calls = Calls::default();
        let config = table_config().payload_error_status(status_422);
        let app = common::app_with::<QStashConfig, _>(&calls, None, config);
        let (status, headers, _) = answer(app, req).await;
        assert_eq!(status, status_422, "{name} (extractor)");
        assert!(headers.get(NON_RETRYABLE_HEADER).is_none(), "{name}");
        assert_eq!(calls.get(), 0, "{name}");
    }
}

fn json_hook(r: &QStashRejection) -> Response<Bytes> {
    let mut response = r.default_response();
    *response.body_mut() = Bytes::from(format!(r#"{{"error":"{}"}}"#, r.reason()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    response
}

#[tokio::test]
async fn on_rejection_hook_answers_for_layer_and_extractor() {
    struct Case {
        name: &'static str,
        request: fn() -> Request<Body>,
        status: u16,
        body: &'static str,
    }
    let cases = [
        Case {
            name: "tampered (layer refusal)",
            request: || {
                let mut r = signed(ROUTE, &route_url(), br#"{"order":1}"#, "msg_t");
                *r.body_mut() = Body::from(&br#"{"order":2}"#[..]);
                r
            },
            status: 401,
            body: r#"{"error":"body_hash_mismatch"}"#,
        },
        Case {
            name: "wrong shape (extractor refusal)",
            request: || signed(ROUTE, &route_url(), br#"{"order":[]}"#, "msg_s"),
            status: 489,
            body: r#"{"error":"invalid_payload"}"#,
        },
    ];
    for case in &cases {
        let layered = Router::new()
            .route(ROUTE_PATH, post(common::order_handler::<Layered>))
            .layer(QStashLayer::new(table_config()).on_rejection(json_hook))
            .layer(Extension(Calls::default()));
        let alone = common::app_with::<QStashConfig, _>(
            &Calls::default(),
            None,
            table_config().on_rejection(json_hook),
        );
        for (way, app) in [("layer", layered), ("extractor", alone)] {
            let (status, headers, body) = answer(app, (case.request)()).await;
            assert_eq!(status.as_u16(), case.status, "{} ({way})", case.name);
            assert_eq!(body, case.body, "{} ({way})", case.name);
            assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
            assert_eq!(
                headers.get(NON_RETRYABLE_HEADER).is_some(),
                case.status == 489,
                "{} ({way})",
                case.name
            );
        }
    }
}

#[tokio::test]
async fn handler_may_take_the_rejection_itself() {
    async fn handler(result: Result<QStash<serde_json::Value>, QStashRejection>) -> String {
        match result {
            Ok(q) => q.delivery.message_id,
            Err(r) => format!("{} {}", r.status().as_u16(), r.reason()),
        }
    }
    let app = Router::new()
        .route(ROUTE_PATH, post(handler))
        .with_state(table_config());
    let mut req = signed(ROUTE, &route_url(), b"{}", "msg_h");
    req.headers_mut().remove("upstash-signature");
    let (status, _, body) = answer(app, req).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"401 missing_signature"[..])
    );
}

#[tokio::test]
async fn raw_extractor_takes_any_body() {
    async fn handler(QStashRaw { body, delivery, .. }: QStashRaw<Layered>) -> Vec<u8> {
        let mut out = delivery.message_id.into_bytes();
        out.extend_from_slice(&body);
        out
    }
    async fn alone(raw: QStashRaw) -> Bytes {
        raw.body
    }
    let bytes: &[u8] = b"\x00\xffbinary";
    let layered = Router::new()
        .route(ROUTE_PATH, post(handler))
        .layer(QStashLayer::new(table_config()));
    let (status, _, body) = answer(layered, signed(ROUTE, &route_url(), bytes, "msg_raw")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, [&b"msg_raw"[..], bytes].concat());

    let standalone = Router::new()
        .route(ROUTE_PATH, post(alone))
        .with_state(table_config());
    let (status, _, body) = answer(standalone, signed(ROUTE, &route_url(), bytes, "msg_raw")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, bytes));
    // Tampered: refused.
    let standalone = Router::new()
        .route(ROUTE_PATH, post(alone))
        .with_state(table_config());
    let mut req = signed(ROUTE, &route_url(), bytes, "msg_raw");
    *req.body_mut() = Body::from(&b"other"[..]);
    assert_eq!(answer(standalone, req).await.0, StatusCode::UNAUTHORIZED);
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Receipt {
    ok: bool,
}

async fn callback_handler(callback: QStashCallback<Receipt, Layered>) -> String {
    let receipt = match callback.response() {
        Ok(r) => format!("{r:?}"),
        Err(_) => "not a receipt".to_owned(),
    };
    format!(
        "{} {} {} {receipt}",
        callback.callback.status,
        callback
            .callback
            .source_message_id
            .as_deref()
            .unwrap_or("-"),
        callback.delivery.message_id,
    )
}

#[tokio::test]
async fn callback_extractor() {
    struct Case {
        name: &'static str,
        body: &'static str,
        status: StatusCode,
        answer: &'static str,
    }
    let cases = [
        Case {
            name: "success callback with a typed response body",
            // body = base64(`{"ok":true}`)
            body: r#"{"status":200,"body":"eyJvayI6dHJ1ZX0=","retried":0,"maxRetries":3,"sourceMessageId":"msg_src","url":"https://app.example.com/api/work"}"#,
            status: StatusCode::OK,
            answer: "200 msg_src msg_cb Receipt { ok: true }",
        },
        Case {
            name: "failure callback with an HTML error page is still delivered",
            // body = base64(`<h1>oops</h1>`)
            body: r#"{"status":500,"body":"PGgxPm9vcHM8L2gxPg==","retried":3,"maxRetries":3,"sourceMessageId":"msg_src","dlqId":"dlq_1","someNewField":1}"#,
            status: StatusCode::OK,
            answer: "500 msg_src msg_cb not a receipt",
        },
        Case {
            name: "not a callback body",
            body: r#"{"order":1}"#,
            status: StatusCode::from_u16(489).unwrap(),
            answer: "invalid QStash callback",
        },
        Case {
            name: "bad base64 in the callback",
            body: r#"{"status":200,"body":"***"}"#,
            status: StatusCode::from_u16(489).unwrap(),
            answer: "invalid QStash callback",
        },
    ];
    for case in cases {
        let app = Router::new()
            .route("/api/callback", post(callback_handler))
            .layer(QStashLayer::new(table_config()));
        let url = format!("{BASE_URL}/api/callback");
        let req = signed("/api/callback", &url, case.body.as_bytes(), "msg_cb");
        let (status, headers, body) = answer(app, req).await;
        assert_eq!(status, case.status, "{}", case.name);
        assert_eq!(body, case.answer, "{}", case.name);
        assert_eq!(
            headers.get(NON_RETRYABLE_HEADER).is_some(),
            status.as_u16() == 489,
            "{}",
            case.name
        );
    }
    // Default `T` (a JSON value), with the configuration in the state.
    async fn any(callback: QStashCallback) -> String {
        callback
            .response()
            .map(|v| v.to_string())
            .unwrap_or_default()
    }
    let app = Router::new()
        .route("/api/callback", post(any))
        .with_state(table_config());
    let body = br#"{"status":200,"body":"eyJvayI6dHJ1ZX0="}"#;
    let url = format!("{BASE_URL}/api/callback");
    let (status, _, text) = answer(app, signed("/api/callback", &url, body, "msg_cb")).await;
    assert_eq!(
        (status, &text[..]),
        (StatusCode::OK, &br#"{"ok":true}"#[..])
    );
}

#[tokio::test]
async fn nested_router_checks_the_original_path() {
    struct Case {
        name: &'static str,
        signed_for: &'static str,
        status: StatusCode,
    }
    let cases = [
        Case {
            name: "token for the full path",
            signed_for: "/api/v1/webhook?team=7",
            status: StatusCode::OK,
        },
        Case {
            name: "token for the stripped path",
            signed_for: "/webhook?team=7",
            status: StatusCode::UNAUTHORIZED,
        },
    ];
    for case in cases {
        let calls = Calls::default();
        let inner = Router::new()
            .route("/webhook", post(common::order_handler::<Layered>))
            .layer(QStashLayer::new(table_config()));
        let layered = Router::new()
            .nest("/api/v1", inner)
            .layer(Extension(calls.clone()));
        let inner_alone: Router<QStashConfig> =
            Router::new().route("/webhook", post(common::order_handler::<QStashConfig>));
        let alone = Router::new()
            .nest("/api/v1", inner_alone)
            .layer(Extension(calls.clone()))
            .with_state(table_config());
        for (way, app) in [("layer", layered), ("extractor", alone)] {
            let url = format!("{BASE_URL}{}", case.signed_for);
            let req = signed("/api/v1/webhook?team=7", &url, br#"{"order":3}"#, "msg_n");
            let (status, _, body) = answer(app, req).await;
            assert_eq!(status, case.status, "{} ({way}): {body:?}", case.name);
        }
    }
}

#[tokio::test]
async fn whole_url_policies() {
    struct Case {
        name: &'static str,
        layer: fn(QStashLayer) -> QStashLayer,
        signed_for: &'static str,
        headers: &'static [(&'static str, &'static str)],
        status: StatusCode,
    }
    let base = |l: QStashLayer| l.public_base_url("https://receiver.example.com");
    let forwarded = |l: QStashLayer| l.trust_forwarded_headers(true);
    let cases = [
        Case {
            name: "public base url: same URL",
            layer: base,
            signed_for: "https://receiver.example.com/api/webhook?team=7",
            headers: &[],
            status: StatusCode::OK,
        },
        Case {
            name: "public base url: another host, same path",
            layer: base,
            signed_for: "https://other.example.com/api/webhook?team=7",
            headers: &[],
            status: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "public base url: forwarded headers do not matter",
            layer: base,
            signed_for: "https://other.example.com/api/webhook?team=7",
            headers: &[("x-forwarded-host", "other.example.com")],
            status: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "forwarded: URL from the proxy's headers",
            layer: forwarded,
            signed_for: "https://receiver.example.com/api/webhook?team=7",
            headers: &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "receiver.example.com"),
                ("host", "10.0.0.1:8080"),
            ],
            status: StatusCode::OK,
        },
        Case {
            name: "forwarded: another host",
            layer: forwarded,
            signed_for: "https://other.example.com/api/webhook?team=7",
            headers: &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "receiver.example.com"),
            ],
            status: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "default: forwarded headers are not trusted, path and query are",
            layer: |l| l,
            signed_for: "https://anything.example/api/webhook?team=7",
            headers: &[("x-forwarded-host", "receiver.example.com")],
            status: StatusCode::OK,
        },
        Case {
            name: "skip: a token for another path",
            layer: QStashLayer::dangerously_skip_subject_check,
            signed_for: "https://receiver.example.com/api/other",
            headers: &[],
            status: StatusCode::OK,
        },
    ];
    for case in cases {
        let app = Router::new()
            .route(ROUTE_PATH, post(common::order_handler::<Layered>))
            .layer((case.layer)(QStashLayer::new(table_config())))
            .layer(Extension(Calls::default()));
        let mut req = signed(ROUTE, case.signed_for, br#"{"order":1}"#, "msg_u");
        for (name, value) in case.headers {
            req.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (status, _, body) = answer(app, req).await;
        assert_eq!(status, case.status, "{}: {body:?}", case.name);
    }
}

#[test]
fn rejections_render_through_axum() {
    let response = tower_qstash::MissingLayer::default().into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
}
