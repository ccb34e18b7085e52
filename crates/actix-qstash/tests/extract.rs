//! The extractors beyond the shared table: configuration lookup, subject policies, statuses,
//! the error handler, raw and callback bodies, and what is logged.

mod support;

use std::sync::{Arc, Mutex};

use actix_qstash::{QStash, QStashCallback, QStashConfig, QStashError, QStashRaw};
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, FromRequest as _, HttpResponse, web};
use qstash_receiver::Verifier;
use qstash_test_cases::{CURRENT_KEY, LIMIT, Order, keys};
use support::{Answer, config, handle, route_path, route_url, signed, with_logs};

const BODY: &[u8] = br#"{"order":7}"#;

async fn answer(app_config: Option<QStashConfig>, req: TestRequest) -> Answer {
    let req = match app_config {
        Some(c) => req.app_data(c),
        None => req,
    };
    let (req, mut payload) = req.to_http_parts();
    match QStash::<Order>::from_request(&req, &mut payload).await {
        Ok(q) => Answer {
            status: 200,
            non_retryable: None,
            body: format!("{} {}", q.delivery.message_id, q.payload.order).into(),
        },
        Err(e) => Answer::from_http_response(e.error_response()),
    }
}

#[test]
fn without_a_config_the_answer_is_500_and_an_error_is_logged() {
    let (answer, logs) = with_logs(answer(
        None,
        signed(&route_url(), qstash_test_cases::ROUTE, BODY),
    ));
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body, "QStash receiver not configured");
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].level, tracing::Level::ERROR);
    assert_eq!(logs[0].field("reason"), Some("not_configured"));
    assert!(logs[0].field("message").unwrap().contains("QStashConfig"));
}

#[actix_web::test]
async fn config_is_found_as_data_too() {
    let app = init_service(
        App::new()
            .app_data(web::Data::new(config()))
            .route(route_path(), web::post().to(handle)),
    )
    .await;
    let req = signed(&route_url(), qstash_test_cases::ROUTE, BODY).to_request();
    let res = call_service(&app, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(read_body(res).await, "msg_test retried=1 order=7");
}

#[actix_web::test]
async fn subject_policies() {
    let target = "/api/webhook?team=7";
    let public = "https://receiver.example.com";
    let signed_url = format!("{public}{target}");
    let forwarded = |req: TestRequest| {
        req.insert_header(("host", "10.0.0.5:8080"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header(("x-forwarded-host", "receiver.example.com"))
    };
    let cases: Vec<(&str, QStashConfig, TestRequest, u16)> = vec![
        (
            "default: path and query",
            config(),
            signed(&signed_url, target, BODY),
            200,
        ),
        (
            "default: another host is fine",
            config(),
            signed(&format!("http://elsewhere:1{target}"), target, BODY),
            200,
        ),
        (
            "default: another query is not",
            config(),
            signed(&format!("{public}/api/webhook?team=8"), target, BODY),
            401,
        ),
        (
            "public base url matches",
            config().public_base_url(public),
            signed(&signed_url, target, BODY),
            200,
        ),
        (
            "public base url with a trailing slash",
            config().public_base_url(format!("{public}/")),
            signed(&signed_url, target, BODY),
            200,
        ),
        (
            "public base url: a sub without a path reaches /",
            config().public_base_url(public),
            signed(public, "/", BODY),
            200,
        ),
        (
            "public base url: a sub with only a query reaches /?q",
            config().public_base_url(public),
            signed(&format!("{public}?team=7"), "/?team=7", BODY),
            200,
        ),
        (
            "default: a sub with only a query reaches /?q",
            config(),
            signed(&format!("{public}?team=7"), "/?team=7", BODY),
            200,
        ),
        (
            "public base url: a sub without a path is not another path",
            config().public_base_url(public),
            signed(public, "/api", BODY),
            401,
        ),
        (
            "public base url: another scheme",
            config().public_base_url(public),
            signed(
                &format!("http://receiver.example.com{target}"),
                target,
                BODY,
            ),
            401,
        ),
        (
            "public base url: forwarded headers are ignored",
            config().public_base_url("https://other.example"),
            forwarded(signed(&signed_url, target, BODY)),
            401,
        ),
        (
            "forwarded, trusted",
            config().trust_forwarded_headers(true),
            forwarded(signed(&signed_url, target, BODY)),
            200,
        ),
        (
            "forwarded, trusted, but the proxy sent none",
            config().trust_forwarded_headers(true),
            signed(&signed_url, target, BODY).insert_header(("host", "10.0.0.5:8080")),
            401,
        ),
        (
            "forwarded, trusted, host only",
            config().trust_forwarded_headers(true),
            signed(&format!("http://10.0.0.5:8080{target}"), target, BODY)
                .insert_header(("host", "10.0.0.5:8080")),
            200,
        ),
        (
            "forwarded headers are not trusted by default",
            config(),
            forwarded(signed(
                "https://receiver.example.com/api/other?team=7",
                target,
                BODY,
            )),
            401,
        ),
        (
            "skip: any path",
            config().dangerously_skip_subject_check(),
            signed(&format!("{public}/api/other"), target, BODY),
            200,
        ),
        (
            "skip still checks the body",
            config().dangerously_skip_subject_check(),
            signed(&format!("{public}/api/other"), target, BODY).set_payload(&b"{}"[..]),
            401,
        ),
    ];
    for (name, c, req, status) in cases {
        let got = answer(Some(c), req).await;
        assert_eq!(got.status, status, "{name}: {got:?}");
    }
}

#[actix_web::test]
async fn payload_error_status_can_be_422() {
    let c = config().payload_error_status(StatusCode::UNPROCESSABLE_ENTITY);
    let wrong = br#"{"order":"seven"}"#;
    let got = answer(
        Some(c),
        signed(&route_url(), qstash_test_cases::ROUTE, wrong),
    )
    .await;
    assert_eq!(got.status, 422);
    assert_eq!(got.non_retryable, None);
    assert_eq!(got.body, "invalid payload");
}

#[actix_web::test]
async fn the_error_handler_sees_every_refusal() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let c = {
        let seen = seen.clone();
        config().error_handler(move |err: QStashError, req| {
            seen.lock()
                .unwrap()
                .push((err.reason(), err.status().as_u16(), req.path().to_owned()));
            actix_web::error::ErrorForbidden("custom")
        })
    };
    let route = qstash_test_cases::ROUTE;
    let cases = [
        (
            "unsigned",
            TestRequest::post().uri(route).set_payload(BODY),
            "missing_signature",
            401,
        ),
        (
            "too large",
            signed(
                &route_url(),
                route,
                &qstash_test_cases::padded_order(LIMIT + 1),
            ),
            "payload_too_large",
            413,
        ),
        (
            "wrong shape",
            signed(&route_url(), route, b"[]"),
            "invalid_payload",
            489,
        ),
        (
            "tampered",
            signed(&route_url(), route, BODY).set_payload(&b"{\"order\":8}"[..]),
            "body_hash_mismatch",
            401,
        ),
    ];
    for (name, req, reason, status) in cases {
        let got = answer(Some(c.clone()), req).await;
        assert_eq!(got.status, 403, "{name}");
        assert_eq!(got.body, "custom", "{name}");
        let last = seen.lock().unwrap().pop().unwrap();
        assert_eq!(last, (reason, status, "/api/webhook".to_owned()), "{name}");
    }
}

#[actix_web::test]
async fn raw_bodies_are_handed_on_as_signed() {
    let body: &[u8] = b"\x00\xffnot json at all\r\n";
    let req = signed(&route_url(), qstash_test_cases::ROUTE, body)
        .insert_header(("content-type", "application/octet-stream"));
    let (req, mut payload) = req.app_data(config()).to_http_parts();
    let raw = QStashRaw::from_request(&req, &mut payload).await.unwrap();
    assert_eq!(raw.body, body);
    assert_eq!(raw.delivery.message_id, "msg_test");
    assert_eq!(
        raw.delivery.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(raw.claims.subject(), route_url());
}

#[actix_web::test]
async fn the_content_type_is_not_checked() {
    let req = signed(&route_url(), qstash_test_cases::ROUTE, BODY)
        .insert_header(("content-type", "text/plain"));
    let got = answer(Some(config()), req).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.body, "msg_test 7");
}

#[actix_web::test]
async fn callbacks() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Reply {
        ok: bool,
    }
    // `body` is base64 of the destination's response body.
    let success = br#"{"status":200,"body":"eyJvayI6dHJ1ZX0=","retried":0,"maxRetries":3,"sourceMessageId":"msg_src","unknownField":1}"#;
    let failure = br#"{"status":500,"body":"PGh0bWw+b29wczwvaHRtbD4=","retried":3,"maxRetries":3}"#;
    let extract = |body: &'static [u8]| async move {
        let (req, mut payload) = signed(&route_url(), qstash_test_cases::ROUTE, body)
            .app_data(config())
            .to_http_parts();
        QStashCallback::<Reply>::from_request(&req, &mut payload).await
    };

    let ok = extract(success).await.unwrap();
    assert!(ok.callback.is_success());
    assert_eq!(ok.callback.source_message_id.as_deref(), Some("msg_src"));
    assert_eq!(ok.body, Some(Reply { ok: true }));
    assert_eq!(ok.delivery.message_id, "msg_test");

    let failed = extract(failure).await.unwrap();
    assert!(!failed.callback.is_success() && failed.callback.is_last_attempt());
    assert_eq!(failed.body, None, "an error page is not a Reply");
    assert_eq!(failed.callback.body, "<html>oops</html>");

    let err = extract(b"not a callback").await.unwrap_err();
    let res = err.error_response();
    assert_eq!(res.status().as_u16(), 489);

    // The default `T` takes any JSON.
    let (req, mut payload) = signed(&route_url(), qstash_test_cases::ROUTE, success)
        .app_data(config())
        .to_http_parts();
    let any: QStashCallback = QStashCallback::from_request(&req, &mut payload)
        .await
        .unwrap();
    assert_eq!(any.body, Some(serde_json::json!({"ok": true})));
}

#[test]
fn refusals_are_logged_with_reason_and_message_id_but_no_secrets() {
    let token_req = signed(&route_url(), qstash_test_cases::ROUTE, BODY);
    let (req, _) = token_req.to_http_parts();
    let token = req
        .headers()
        .get("upstash-signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let secret_body = br#"{"order":"secret-payload-value"}"#;
    let cases = [
        (
            "tampered body",
            signed(&route_url(), qstash_test_cases::ROUTE, BODY)
                .set_payload(&br#"{"order":"secret-payload-value"}"#[..]),
            "body_hash_mismatch",
            tracing::Level::WARN,
        ),
        (
            "wrong shape",
            signed(&route_url(), qstash_test_cases::ROUTE, secret_body),
            "invalid_payload",
            tracing::Level::WARN,
        ),
        (
            "signed for another path",
            signed(
                "https://receiver.example.com/elsewhere",
                qstash_test_cases::ROUTE,
                BODY,
            ),
            "subject_mismatch",
            tracing::Level::WARN,
        ),
        (
            "unsigned",
            TestRequest::post()
                .uri(qstash_test_cases::ROUTE)
                .insert_header(("upstash-message-id", "msg_test"))
                .set_payload(BODY),
            "missing_signature",
            tracing::Level::DEBUG,
        ),
    ];
    for (name, req, reason, level) in cases {
        let (got, logs) = with_logs(answer(Some(config()), req));
        assert_ne!(got.status, 200, "{name}");
        assert_eq!(logs.len(), 1, "{name}: {logs:?}");
        let log = &logs[0];
        assert_eq!(log.level, level, "{name}");
        assert_eq!(log.field("reason"), Some(reason), "{name}");
        assert_eq!(log.field("message_id"), Some("msg_test"), "{name}");
        assert_eq!(log.field("path"), Some("/api/webhook"), "{name}");
        let all = format!("{log:?}");
        for secret in [token.as_str(), CURRENT_KEY, "secret-payload-value", "order"] {
            assert!(!all.contains(secret), "{name}: logged {secret:?}: {all}");
        }
    }
    // The subject mismatch names both sides: not secret, and what makes a proxy problem clear.
    let (_, logs) = with_logs(answer(
        Some(config()),
        signed(
            "https://receiver.example.com/elsewhere",
            qstash_test_cases::ROUTE,
            BODY,
        ),
    ));
    assert!(logs[0].field("message").unwrap().contains("/elsewhere"));
}

#[actix_web::test]
async fn unsigned_or_oversize_requests_are_refused_before_the_body_is_read() {
    // A payload that fails the test if it is ever polled.
    fn untouchable() -> actix_web::dev::Payload {
        struct Untouchable;
        impl futures_core::Stream for Untouchable {
            type Item = Result<bytes::Bytes, actix_web::error::PayloadError>;
            fn poll_next(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                panic!("the body was read");
            }
        }
        let stream: std::pin::Pin<Box<dyn futures_core::Stream<Item = _>>> = Box::pin(Untouchable);
        actix_web::dev::Payload::from(stream)
    }
    let cases = [
        (
            "no signature",
            TestRequest::post().uri(qstash_test_cases::ROUTE),
            401,
        ),
        (
            "Content-Length over the limit",
            signed(&route_url(), qstash_test_cases::ROUTE, BODY)
                .insert_header(("content-length", (LIMIT + 1).to_string())),
            413,
        ),
    ];
    for (name, req, status) in cases {
        let (req, _) = req.app_data(config()).to_http_parts();
        let err = QStashRaw::from_request(&req, &mut untouchable())
            .await
            .unwrap_err();
        assert_eq!(err.error_response().status().as_u16(), status, "{name}");
    }
}

#[actix_web::test]
async fn keys_rotate_for_every_clone() {
    let verifier = Verifier::new(keys());
    let c = QStashConfig::new(verifier.clone());
    let new_key = "sig_rotatedcurrent000000000000";
    let req = || support::signed_with(new_key, &route_url(), qstash_test_cases::ROUTE, BODY);
    assert_eq!(answer(Some(c.clone()), req()).await.status, 401);
    verifier.rotate(
        qstash_receiver::SigningKeys::new(new_key, "sig_rotatednext00000000000000").unwrap(),
    );
    assert_eq!(answer(Some(c.clone()), req()).await.status, 200);
    // The configuration's own verifier is the same one.
    c.verifier().rotate(keys());
    assert_eq!(answer(Some(c), req()).await.status, 401);
}

#[actix_web::test]
async fn extractors_in_handlers() {
    async fn raw(r: QStashRaw) -> HttpResponse {
        HttpResponse::Ok().body(r.body)
    }
    let app = init_service(
        App::new()
            .app_data(config())
            .route("/raw", web::post().to(raw)),
    )
    .await;
    let req = signed("https://x.example/raw", "/raw", b"hello").to_request();
    let res = call_service(&app, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(read_body(res).await, "hello");
}
