//! The layer and the extractors, driven in process with `tower::ServiceExt::oneshot`: each
//! way of mounting them, what reaches a plain tower service, when the body is (not) polled,
//! the rejection hook, the callback extractor and the subject policies.

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
use common::{Calls, TestBody, got, now, table_receiver, table_request};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use qstash_receiver::{
    Claims, Delivery, Receiver, Signer, SigningKeys, Validation, Verifier,
    headers::NON_RETRYABLE_HEADER, receive::PayloadErrorStatus, receive::Refusal,
    subject::SubjectPolicy,
};
use qstash_test_cases::{
    BASE_URL, CURRENT_KEY, LIMIT, ROUTE, ROUTE_PATH, cases, check, padded_order,
};
use tower::ServiceExt as _;
use tower_qstash::{
    Layered, QStash, QStashCallback, QStashLayer, QStashRaw, QStashRejection, QStashService,
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
async fn behind_the_layer_the_extractor_does_not_verify_again() {
    // The state's receiver would refuse every delivery (other keys, tiny limit): the answers
    // match the table only if the extractor uses what the layer verified.
    let refusing = Receiver::new(Verifier::new(
        SigningKeys::new("sig_other1", "sig_other2").unwrap(),
    ))
    .max_body_bytes(1);
    let now = now();
    for case in &cases(now) {
        let calls = Calls::default();
        let layer = QStashLayer::new(case.setup.receiver(now));
        let app = common::app_with::<Receiver, _>(&calls, Some(layer), refusing.clone());
        let (request, _) = table_request(case);
        check(
            "layer over a refusing state",
            case,
            &got(app.oneshot(request).await.unwrap()).await,
        );
        assert_eq!(
            calls.get(),
            usize::from(case.expect.reason.is_none()),
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn verifier_in_state_verifies_with_the_defaults() {
    let calls = Calls::default();
    let verifier = Verifier::new(qstash_test_cases::keys());
    let app = common::app_with::<Verifier, _>(&calls, None, verifier);
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
    let (status, headers, text) = answer(app, signed(ROUTE, &route_url(), body, "msg_m")).await;
    let want = Refusal::not_configured("");
    assert_eq!(status, want.status());
    assert_eq!(text, want.body_text());
    assert_eq!(
        headers[http::header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
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
        .layer(QStashLayer::new(table_receiver()))
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
    // The layer alone gives every answer of the table but the payload's, which is the
    // extractor's: those cases reach the service.
    let now = now();
    for case in &cases(now) {
        let seen = Arc::new(Seen::default());
        let service = QStashService::new(plain_service(seen.clone()), case.setup.receiver(now));
        let (request, _) = table_request(case);
        let response = service.oneshot(request).await.unwrap();
        let reached = seen.calls.load(Ordering::SeqCst) == 1;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        match case.expect.reason {
            None | Some("invalid_payload") => {
                assert_eq!(
                    (parts.status, &body[..]),
                    (StatusCode::OK, &b"handled"[..]),
                    "{}",
                    case.name
                );
                assert!(reached, "{}", case.name);
            }
            Some(_) => {
                let got = qstash_test_cases::Got {
                    status: parts.status.as_u16(),
                    headers: common::header_pairs(&parts.headers),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                check("plain tower", case, &got);
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
    exact: Option<u64>,
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

    fn size_hint(&self) -> SizeHint {
        self.exact
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

fn probe_request(
    polls: &Arc<AtomicUsize>,
    fail: bool,
    content_length: Option<u64>,
    signature: Option<&str>,
) -> Request<Body> {
    let probe = Probe {
        polls: polls.clone(),
        chunk: Bytes::from(vec![b' '; 1024]),
        fail,
        exact: content_length,
    };
    let mut req = Request::post(ROUTE).body(Body::new(probe)).unwrap();
    *req.headers_mut() = signer().delivery_headers(&route_url(), b"{}", "msg_probe", 0);
    if let Some(signature) = signature {
        req.headers_mut()
            .insert("upstash-signature", signature.parse().unwrap());
    }
    if let Some(len) = content_length {
        req.headers_mut()
            .insert(http::header::CONTENT_LENGTH, len.into());
    }
    req
}

#[tokio::test]
async fn the_body_is_polled_only_after_the_head_passed() {
    struct Case {
        name: &'static str,
        fail: bool,
        content_length: Option<u64>,
        signature: Option<&'static str>,
        status: StatusCode,
        text: &'static str,
        close: bool,
        max_polls: usize,
    }
    const MIB: u64 = 1024 * 1024;
    let cases = [
        Case {
            name: "junk signature, 1 MiB declared: refused without polling the body",
            fail: false,
            content_length: Some(MIB),
            signature: Some("junk.junk.junk"),
            status: StatusCode::UNAUTHORIZED,
            text: "invalid QStash signature",
            close: true,
            max_polls: 0,
        },
        Case {
            name: "junk signature, no length: refused without polling the body",
            fail: false,
            content_length: None,
            signature: Some("junk.junk.junk"),
            status: StatusCode::UNAUTHORIZED,
            text: "invalid QStash signature",
            close: true,
            max_polls: 0,
        },
        Case {
            name: "valid token, Content-Length over the limit: refused before reading",
            fail: false,
            content_length: Some(u64::try_from(LIMIT).unwrap() + 1),
            signature: None,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            text: "payload too large",
            close: true,
            max_polls: 0,
        },
        Case {
            name: "endless body without Content-Length: refused once past the limit",
            fail: false,
            content_length: None,
            signature: None,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            text: "payload too large",
            close: true,
            max_polls: LIMIT / 1024 + 1,
        },
        Case {
            name: "body that fails while read",
            fail: true,
            content_length: None,
            signature: None,
            status: StatusCode::BAD_REQUEST,
            text: "could not read the body",
            close: true,
            max_polls: 2,
        },
    ];
    // Over HTTP/1.x a refusal that leaves the body unread lingers: the body is drained after
    // the answer, on a task, so its polls are not counted there; over HTTP/2 nothing is
    // drained, and the polls show what deciding took.
    for (case, version) in cases.iter().flat_map(|case| {
        [
            (case, http::Version::HTTP_11),
            (case, http::Version::HTTP_2),
        ]
    }) {
        let http2 = version == http::Version::HTTP_2;
        for way in ["layer", "extractor"] {
            let calls = Calls::default();
            let app = if way == "layer" {
                common::layered_app(QStashLayer::new(table_receiver()), &calls)
            } else {
                common::extractor_app(table_receiver(), &calls)
            };
            let polls = Arc::new(AtomicUsize::new(0));
            let mut request = probe_request(&polls, case.fail, case.content_length, case.signature);
            *request.version_mut() = version;
            let (status, headers, body) = answer(app, request).await;
            assert_eq!(status, case.status, "{} ({way})", case.name);
            assert_eq!(body, case.text, "{} ({way})", case.name);
            assert_eq!(
                headers
                    .get(http::header::CONNECTION)
                    .is_some_and(|v| v == "close"),
                case.close && !http2,
                "{} ({way}, {version:?})",
                case.name
            );
            let polled = polls.load(Ordering::SeqCst);
            if http2 || case.max_polls > 0 {
                assert!(
                    polled <= case.max_polls,
                    "{} ({way}, {version:?}): polled {polled}",
                    case.name
                );
            }
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
        .layer(QStashLayer::new(table_receiver()));
    let (status, _, text) = answer(app, signed(ROUTE, &route_url(), b"abc", "msg_ext")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, format!("{} msg_ext 3", route_url()));
}

#[tokio::test]
async fn payload_error_status_422_is_the_receiver_s() {
    let receiver = table_receiver().payload_error_status(PayloadErrorStatus::UnprocessableEntity);
    let requests = || {
        let mut garbled = signed(ROUTE, &route_url(), br#"{"order":1}"#, "msg_r");
        garbled
            .headers_mut()
            .insert("upstash-retried", "many".parse().unwrap());
        [
            (
                "wrong shape",
                signed(ROUTE, &route_url(), br#"{"order":"x"}"#, "msg_s"),
            ),
            ("garbled retried", garbled),
        ]
    };
    for way in ["layer", "extractor"] {
        for (name, req) in requests() {
            let calls = Calls::default();
            let app = if way == "layer" {
                common::layered_app(QStashLayer::new(receiver.clone()), &calls)
            } else {
                common::extractor_app(receiver.clone(), &calls)
            };
            let (status, headers, _) = answer(app, req).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name} ({way})");
            assert!(
                headers.get(NON_RETRYABLE_HEADER).is_none(),
                "{name} ({way})"
            );
            assert_eq!(calls.get(), 0, "{name} ({way})");
        }
    }
}

/// Answers the crate's answers as JSON, the axum way: a `map_response` around the routes
/// that rewrites every response carrying the core's `Answer`.
async fn json_answers(mut response: axum::response::Response) -> axum::response::Response {
    if let Some(answer) = response.extensions().get::<qstash_receiver::Answer>() {
        *response.body_mut() = Body::from(format!(r#"{{"error":"{}"}}"#, answer.reason()));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
    }
    response
}

#[tokio::test]
async fn a_map_response_rewrites_the_layer_s_refusals_and_those_of_the_extractors_behind_it() {
    struct Case {
        name: &'static str,
        request: fn() -> Request<Body>,
        status: u16,
        body: &'static str,
    }
    let cases = [
        Case {
            name: "no signature (refused before the body)",
            request: || {
                let mut r = signed(ROUTE, &route_url(), br#"{"order":1}"#, "msg_t");
                r.headers_mut().remove("upstash-signature");
                r
            },
            status: 401,
            body: r#"{"error":"missing_signature"}"#,
        },
        Case {
            name: "tampered (refused after the body)",
            request: || {
                let mut r = signed(ROUTE, &route_url(), br#"{"order":1}"#, "msg_t");
                *r.body_mut() = Body::from(&br#"{"order":2}"#[..]);
                r
            },
            status: 401,
            body: r#"{"error":"body_hash_mismatch"}"#,
        },
        Case {
            name: "wrong shape (the extractor's refusal)",
            request: || signed(ROUTE, &route_url(), br#"{"order":[]}"#, "msg_s"),
            status: 489,
            body: r#"{"error":"invalid_payload"}"#,
        },
    ];
    for case in &cases {
        let layer = QStashLayer::new(table_receiver());
        let app = common::layered_app(layer, &Calls::default())
            .layer(axum::middleware::map_response(json_answers));
        let (status, headers, body) = answer(app, (case.request)()).await;
        assert_eq!(status.as_u16(), case.status, "{}", case.name);
        assert_eq!(body, case.body, "{}", case.name);
        assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
        assert_eq!(
            headers.get(NON_RETRYABLE_HEADER).is_some(),
            case.status == 489,
            "{}",
            case.name
        );
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
        .with_state(table_receiver());
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
        .layer(QStashLayer::new(table_receiver()));
    let (status, _, body) = answer(layered, signed(ROUTE, &route_url(), bytes, "msg_raw")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, [&b"msg_raw"[..], bytes].concat());

    let standalone = || {
        Router::new()
            .route(ROUTE_PATH, post(alone))
            .with_state(table_receiver())
    };
    let (status, _, body) =
        answer(standalone(), signed(ROUTE, &route_url(), bytes, "msg_raw")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, bytes));
    // Tampered: refused.
    let mut req = signed(ROUTE, &route_url(), bytes, "msg_raw");
    *req.body_mut() = Body::from(&b"other"[..]);
    assert_eq!(answer(standalone(), req).await.0, StatusCode::UNAUTHORIZED);
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Receipt {
    ok: bool,
}

async fn callback_handler(callback: QStashCallback<Layered>) -> String {
    let receipt = match callback.response::<Receipt>() {
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
            .layer(QStashLayer::new(table_receiver()));
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
    // Without the layer, with the receiver in the state.
    async fn any(callback: QStashCallback) -> String {
        callback
            .response::<serde_json::Value>()
            .map(|v| v.to_string())
            .unwrap_or_default()
    }
    let app = Router::new()
        .route("/api/callback", post(any))
        .with_state(table_receiver());
    let body = br#"{"status":200,"body":"eyJvayI6dHJ1ZX0="}"#;
    let url = format!("{BASE_URL}/api/callback");
    let (status, _, text) = answer(app, signed("/api/callback", &url, body, "msg_cb")).await;
    assert_eq!(
        (status, &text[..]),
        (StatusCode::OK, &br#"{"ok":true}"#[..])
    );
}

#[tokio::test]
async fn extractors_can_be_built_for_handler_unit_tests() {
    let body = br#"{"status":200,"body":"eyJvayI6dHJ1ZX0=","sourceMessageId":"msg_src"}"#;
    let url = format!("{BASE_URL}/api/callback");
    let headers = signer().delivery_headers(&url, body, "msg_cb", 0);
    let claims = Verifier::new(qstash_test_cases::keys())
        .verify_headers(
            &headers,
            body,
            &Validation::new(qstash_receiver::Subject::PathAndQuery("/api/callback")),
        )
        .unwrap();
    let delivery = Delivery::from_headers(&headers).unwrap();
    let callback = qstash_receiver::Callback::from_slice(body).unwrap();
    let answer = callback_handler(QStashCallback::new(
        callback,
        delivery.clone(),
        claims.clone(),
    ))
    .await;
    assert_eq!(answer, "200 msg_src msg_cb Receipt { ok: true }");

    let order = qstash_test_cases::Order {
        order: 3,
        pad: String::new(),
    };
    let answer = common::order_handler::<Layered>(
        Extension(Calls::default()),
        QStash::new(order, delivery.clone(), claims.clone()),
    )
    .await;
    assert_eq!(answer, "msg_cb retried=0 order=3");
    let raw: QStashRaw<Layered> = QStashRaw::new(Bytes::from_static(b"x"), delivery, claims);
    assert_eq!(raw.body, "x");
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
            .layer(QStashLayer::new(table_receiver()));
        let layered = Router::new()
            .nest("/api/v1", inner)
            .layer(Extension(calls.clone()));
        let inner_alone: Router<Receiver> =
            Router::new().route("/webhook", post(common::order_handler::<Receiver>));
        let alone = Router::new()
            .nest("/api/v1", inner_alone)
            .layer(Extension(calls.clone()))
            .with_state(table_receiver());
        for (way, app) in [("layer", layered), ("extractor", alone)] {
            let url = format!("{BASE_URL}{}", case.signed_for);
            let req = signed("/api/v1/webhook?team=7", &url, br#"{"order":3}"#, "msg_n");
            let (status, _, body) = answer(app, req).await;
            assert_eq!(status, case.status, "{} ({way}): {body:?}", case.name);
        }
    }
}

#[tokio::test]
async fn subject_policies_are_the_receiver_s() {
    struct Case {
        name: &'static str,
        policy: fn() -> SubjectPolicy,
        signed_for: &'static str,
        headers: &'static [(&'static str, &'static str)],
        status: StatusCode,
    }
    let base = || SubjectPolicy::public_base_url("https://receiver.example.com").unwrap();
    let forwarded = || SubjectPolicy::TrustForwardedHeaders;
    let cases = [
        Case {
            name: "public base url: same URL",
            policy: base,
            signed_for: "https://receiver.example.com/api/webhook?team=7",
            headers: &[],
            status: StatusCode::OK,
        },
        Case {
            name: "public base url: another host, same path",
            policy: base,
            signed_for: "https://other.example.com/api/webhook?team=7",
            headers: &[],
            status: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "public base url: forwarded headers do not matter",
            policy: base,
            signed_for: "https://other.example.com/api/webhook?team=7",
            headers: &[("x-forwarded-host", "other.example.com")],
            status: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "forwarded: URL from the proxy's headers, proto in any case",
            policy: forwarded,
            signed_for: "https://receiver.example.com/api/webhook?team=7",
            headers: &[
                ("x-forwarded-proto", "HTTPS"),
                ("x-forwarded-host", "receiver.example.com"),
                ("host", "10.0.0.1:8080"),
            ],
            status: StatusCode::OK,
        },
        Case {
            name: "forwarded: falls back to Host and http",
            policy: forwarded,
            signed_for: "http://receiver.example.com/api/webhook?team=7",
            headers: &[("host", "receiver.example.com")],
            status: StatusCode::OK,
        },
        Case {
            name: "forwarded: another host",
            policy: forwarded,
            signed_for: "https://other.example.com/api/webhook?team=7",
            headers: &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "receiver.example.com"),
            ],
            status: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "forwarded: no host at all",
            policy: forwarded,
            signed_for: "https://receiver.example.com/api/webhook?team=7",
            headers: &[],
            status: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "default: forwarded headers are not trusted, path and query are",
            policy: SubjectPolicy::default,
            signed_for: "https://anything.example/api/webhook?team=7",
            headers: &[("x-forwarded-host", "receiver.example.com")],
            status: StatusCode::OK,
        },
        Case {
            name: "skip: a token for another path",
            policy: || SubjectPolicy::DangerouslySkipCheck,
            signed_for: "https://receiver.example.com/api/other",
            headers: &[],
            status: StatusCode::OK,
        },
    ];
    for case in cases {
        let receiver = table_receiver().subject_policy((case.policy)());
        for way in ["layer", "extractor"] {
            let calls = Calls::default();
            let app = if way == "layer" {
                common::layered_app(QStashLayer::new(receiver.clone()), &calls)
            } else {
                common::extractor_app(receiver.clone(), &calls)
            };
            let mut req = signed(ROUTE, case.signed_for, br#"{"order":1}"#, "msg_u");
            for (name, value) in case.headers {
                req.headers_mut().insert(*name, value.parse().unwrap());
            }
            let (status, _, body) = answer(app, req).await;
            assert_eq!(status, case.status, "{} ({way}): {body:?}", case.name);
            assert_eq!(calls.get(), usize::from(case.status == StatusCode::OK));
        }
    }
}

#[test]
fn rejections_render_the_refusal_through_axum() {
    let refusal = Refusal::not_configured("test");
    let response = QStashRejection::from(refusal.clone()).into_response();
    assert_eq!(response.status(), refusal.status());
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
}

#[tokio::test]
async fn a_test_body_counts_its_polls() {
    // The counter the table's "not polled" checks rely on.
    let body = TestBody::new([Bytes::from_static(b"ab")], false, Some(2));
    let polls = body.polls();
    assert_eq!(body.collect().await.unwrap().to_bytes(), "ab");
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}
