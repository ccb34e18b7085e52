//! The extractors beyond the shared table: the receiver's lookup, subject policies, statuses,
//! the error handler, raw and callback bodies, constructors for handler tests, and what is
//! logged.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};

use actix_qstash::{QStash, QStashCallback, QStashErrorHandler, QStashRaw};
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, FromRequest as _, HttpResponse, web};
use qstash_receiver::{
    Receiver, Validation, Verifier, receive::PayloadErrorStatus, subject::SubjectPolicy,
};
use qstash_test_cases::ROUTE;
use qstash_test_cases::{CURRENT_KEY, LIMIT, Order, keys};
use support::{Answer, handle, receiver, route_path, route_url, signed, signed_as, with_logs};

const BODY: &[u8] = br#"{"order":7}"#;

async fn answer(app_receiver: Option<Receiver>, req: TestRequest) -> Answer {
    let req = match app_receiver {
        Some(r) => req.app_data(r),
        None => req,
    };
    let (req, mut payload) = req.to_http_parts();
    match QStash::<Order>::from_request(&req, &mut payload).await {
        Ok(q) => Answer::handled(format!("{} {}", q.delivery.message_id, q.payload.order)),
        Err(e) => Answer::from_http_response(e.error_response()),
    }
}

fn policy(base: &str) -> SubjectPolicy {
    SubjectPolicy::public_base_url(base).expect("a valid base URL")
}

#[test]
fn without_a_receiver_the_answer_is_500_and_an_error_is_logged() {
    // The core's `not_configured` refusal names no message id; this is the only test that
    // makes one, so the events without a message id of this binary are its own.
    let id = "msg_log_unconfigured";
    let (got, logs) = with_logs(
        "",
        answer(None, signed_as(CURRENT_KEY, id, &route_url(), ROUTE, BODY)),
    );
    let logs: Vec<_> = logs
        .into_iter()
        .filter(|l| l.field("reason") == Some("not_configured"))
        .collect();
    assert_eq!(got.status, 500);
    assert_eq!(got.body, "QStash receiver not configured");
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].level, tracing::Level::ERROR);
    assert_eq!(logs[0].field("reason"), Some("not_configured"));
    assert!(
        logs[0].field("error").unwrap().contains("Receiver"),
        "{logs:?}"
    );

    // An error handler in `app_data` answers the missing configuration too.
    let handler = QStashErrorHandler::new(|refusal, _| {
        actix_web::error::ErrorForbidden(refusal.reason().as_str())
    });
    let req = signed(&route_url(), ROUTE, BODY).app_data(handler);
    let (got, _) = with_logs("", answer(None, req));
    assert_eq!((got.status, &got.body[..]), (403, &b"not_configured"[..]));
}

#[actix_web::test]
async fn the_receiver_is_found_as_data_too() {
    let app = init_service(
        App::new()
            .app_data(web::Data::new(receiver()))
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
    let trusted = || receiver().subject_policy(SubjectPolicy::TrustForwardedHeaders);
    let cases: Vec<(&str, Receiver, TestRequest, u16)> = vec![
        (
            "default: path and query",
            receiver(),
            signed(&signed_url, target, BODY),
            200,
        ),
        (
            "default: another host is fine",
            receiver(),
            signed(&format!("http://elsewhere:1{target}"), target, BODY),
            200,
        ),
        (
            "default: another query is not",
            receiver(),
            signed(&format!("{public}/api/webhook?team=8"), target, BODY),
            401,
        ),
        (
            "public base url matches",
            receiver().subject_policy(policy(public)),
            signed(&signed_url, target, BODY),
            200,
        ),
        (
            "public base url with a trailing slash",
            receiver().subject_policy(policy(&format!("{public}/"))),
            signed(&signed_url, target, BODY),
            200,
        ),
        (
            "public base url: a sub without a path reaches /",
            receiver().subject_policy(policy(public)),
            signed(public, "/", BODY),
            200,
        ),
        (
            "public base url: a sub with only a query reaches /?q",
            receiver().subject_policy(policy(public)),
            signed(&format!("{public}?team=7"), "/?team=7", BODY),
            200,
        ),
        (
            "default: a sub with only a query reaches /?q",
            receiver(),
            signed(&format!("{public}?team=7"), "/?team=7", BODY),
            200,
        ),
        (
            "public base url: a sub without a path is not another path",
            receiver().subject_policy(policy(public)),
            signed(public, "/api", BODY),
            401,
        ),
        (
            "public base url: another scheme",
            receiver().subject_policy(policy(public)),
            signed(
                &format!("http://receiver.example.com{target}"),
                target,
                BODY,
            ),
            401,
        ),
        (
            "public base url: forwarded headers are ignored",
            receiver().subject_policy(policy("https://other.example")),
            forwarded(signed(&signed_url, target, BODY)),
            401,
        ),
        (
            "forwarded, trusted",
            trusted(),
            forwarded(signed(&signed_url, target, BODY)),
            200,
        ),
        (
            "forwarded, trusted, but the proxy sent none",
            trusted(),
            signed(&signed_url, target, BODY).insert_header(("host", "10.0.0.5:8080")),
            401,
        ),
        (
            "forwarded, trusted, host only",
            trusted(),
            signed(&format!("http://10.0.0.5:8080{target}"), target, BODY)
                .insert_header(("host", "10.0.0.5:8080")),
            200,
        ),
        (
            "forwarded headers are not trusted by default",
            receiver(),
            forwarded(signed(
                "https://receiver.example.com/api/other?team=7",
                target,
                BODY,
            )),
            401,
        ),
        (
            "skip: any path",
            receiver().subject_policy(SubjectPolicy::DangerouslySkipCheck),
            signed(&format!("{public}/api/other"), target, BODY),
            200,
        ),
        (
            "skip still checks the body",
            receiver().subject_policy(SubjectPolicy::DangerouslySkipCheck),
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
    let c = receiver().payload_error_status(PayloadErrorStatus::UnprocessableEntity);
    let wrong = br#"{"order":"seven"}"#;
    let got = answer(
        Some(c),
        signed(&route_url(), qstash_test_cases::ROUTE, wrong),
    )
    .await;
    assert_eq!(got.status, 422);
    assert_eq!(got.non_retryable, None);
    assert_eq!(got.body, "invalid QStash payload");
}

#[actix_web::test]
async fn the_error_handler_sees_every_refusal() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        QStashErrorHandler::new(move |refusal, req| {
            seen.lock().unwrap().push((
                refusal.reason().as_str(),
                refusal.status().as_u16(),
                req.path().to_owned(),
            ));
            actix_web::error::ErrorForbidden("custom")
        })
    };
    let route = qstash_test_cases::ROUTE;
    let cases = || {
        [
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
        ]
    };
    for as_data in [false, true] {
        for (name, req, reason, status) in cases() {
            let req = if as_data {
                req.app_data(web::Data::new(handler.clone()))
            } else {
                req.app_data(handler.clone())
            };
            let got = answer(Some(receiver()), req).await;
            assert_eq!(got.status, 403, "{name}");
            assert_eq!(got.body, "custom", "{name}");
            let last = seen.lock().unwrap().pop().unwrap();
            assert_eq!(last, (reason, status, "/api/webhook".to_owned()), "{name}");
        }
    }
}

#[actix_web::test]
async fn raw_bodies_are_handed_on_as_signed() {
    let body: &[u8] = b"\x00\xffnot json at all\r\n";
    let req = signed(&route_url(), qstash_test_cases::ROUTE, body)
        .insert_header(("content-type", "application/octet-stream"));
    let (req, mut payload) = req.app_data(receiver()).to_http_parts();
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
    let got = answer(Some(receiver()), req).await;
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
            .app_data(receiver())
            .to_http_parts();
        QStashCallback::from_request(&req, &mut payload).await
    };

    let ok = extract(success).await.unwrap();
    assert!(ok.callback.is_success());
    assert_eq!(ok.callback.source_message_id.as_deref(), Some("msg_src"));
    assert_eq!(ok.response::<Reply>().unwrap(), Reply { ok: true });
    assert_eq!(
        ok.response::<serde_json::Value>().unwrap(),
        serde_json::json!({"ok": true}),
        "any type, on demand"
    );
    assert_eq!(ok.delivery.message_id, "msg_test");

    let failed = extract(failure).await.unwrap();
    assert!(!failed.callback.is_success() && failed.callback.is_last_attempt());
    assert!(
        failed.response::<Reply>().is_err(),
        "an error page is not a Reply"
    );
    assert_eq!(failed.callback.body, "<html>oops</html>");

    let err = extract(b"not a callback").await.unwrap_err();
    let res = err.error_response();
    assert_eq!(res.status().as_u16(), 489);
    assert_eq!(
        Answer::from_http_response(res).body,
        "invalid QStash callback"
    );
}

#[actix_web::test]
async fn handlers_can_be_unit_tested_with_the_constructors() {
    async fn orders(
        QStash {
            payload, delivery, ..
        }: QStash<Order>,
    ) -> HttpResponse {
        HttpResponse::Ok().body(format!("{} {}", delivery.message_id, payload.order))
    }
    async fn raw(QStashRaw { body, .. }: QStashRaw) -> HttpResponse {
        HttpResponse::Ok().body(body)
    }
    async fn callback(cb: QStashCallback) -> HttpResponse {
        HttpResponse::Ok().body(format!("{}", cb.callback.status))
    }
    // A delivery and claims as the core would give them, without a request.
    let headers = qstash_receiver::Signer::new(CURRENT_KEY)
        .unwrap()
        .delivery_headers(&route_url(), BODY, "msg_unit", 0);
    let delivery = qstash_receiver::Delivery::from_headers(&headers).unwrap();
    let token = qstash_receiver::headers::signature(&headers).unwrap();
    let validation = Validation::new(qstash_receiver::Subject::DangerouslySkipCheck);
    let claims = Verifier::new(keys())
        .verify(token, BODY, &validation)
        .unwrap();
    let order = Order {
        order: 3,
        pad: String::new(),
    };

    let res = orders(QStash::new(order, delivery.clone(), claims.clone())).await;
    assert_eq!(read_body_of(res), "msg_unit 3");
    let res = raw(QStashRaw::new(
        bytes::Bytes::from_static(b"raw"),
        delivery.clone(),
        claims.clone(),
    ))
    .await;
    assert_eq!(read_body_of(res), "raw");
    let cb = qstash_receiver::Callback::from_slice(br#"{"status":204}"#).unwrap();
    let res = callback(QStashCallback::new(cb, delivery, claims)).await;
    assert_eq!(read_body_of(res), "204");
}

fn read_body_of(res: HttpResponse) -> bytes::Bytes {
    actix_web::body::MessageBody::try_into_bytes(res.into_body())
        .unwrap_or_else(|_| panic!("in memory"))
}

#[test]
fn refusals_are_logged_with_reason_and_message_id_but_no_secrets() {
    let token_req = signed(&route_url(), ROUTE, BODY);
    let (req, _) = token_req.to_http_parts();
    let token = req
        .headers()
        .get("upstash-signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let secret_body = br#"{"order":"secret-payload-value"}"#;
    let elsewhere = "https://receiver.example.com/elsewhere";
    let cases = [
        (
            "msg_log_tampered",
            signed_as(CURRENT_KEY, "msg_log_tampered", &route_url(), ROUTE, BODY)
                .set_payload(&br#"{"order":"secret-payload-value"}"#[..]),
            "body_hash_mismatch",
            tracing::Level::WARN,
            false,
        ),
        (
            "msg_log_shape",
            signed_as(
                CURRENT_KEY,
                "msg_log_shape",
                &route_url(),
                ROUTE,
                secret_body,
            ),
            "invalid_payload",
            tracing::Level::WARN,
            false,
        ),
        (
            "msg_log_subject",
            signed_as(CURRENT_KEY, "msg_log_subject", elsewhere, ROUTE, BODY),
            "subject_mismatch",
            tracing::Level::WARN,
            true,
        ),
        (
            "msg_log_unsigned",
            TestRequest::post()
                .uri(ROUTE)
                .insert_header(("upstash-message-id", "msg_log_unsigned"))
                .set_payload(BODY),
            "missing_signature",
            tracing::Level::DEBUG,
            true,
        ),
    ];
    for (id, req, reason, level, before_the_body) in cases {
        let (got, logs) = with_logs(id, answer(Some(receiver()), req));
        assert_ne!(got.status, 200, "{id}");
        assert_eq!(logs.len(), 1, "{id}: {logs:?}");
        let log = &logs[0];
        assert_eq!(log.level, level, "{id}");
        assert_eq!(log.field("reason"), Some(reason), "{id}");
        assert_eq!(log.field("message_id"), Some(id), "{id}");
        // The core names the method of refusals it makes before the body.
        if before_the_body {
            assert_eq!(log.field("method"), Some("POST"), "{id}");
        }
        assert_eq!(
            log.field("status"),
            Some(got.status.to_string().as_str()),
            "{id}"
        );
        let all = format!("{log:?}");
        for secret in [token.as_str(), CURRENT_KEY, "secret-payload-value", "order"] {
            assert!(!all.contains(secret), "{id}: logged {secret:?}: {all}");
        }
        // The subject mismatch names both sides: not secret, and what makes a proxy problem
        // clear.
        if reason == "subject_mismatch" {
            assert!(
                log.field("error").unwrap().contains("/elsewhere"),
                "{logs:?}"
            );
        }
    }
}

#[actix_web::test]
async fn unsigned_junk_or_oversize_requests_are_refused_before_the_body_is_read() {
    let cases = [
        (
            "no signature",
            TestRequest::post().uri(qstash_test_cases::ROUTE),
            401,
        ),
        (
            "a junk signature",
            TestRequest::post()
                .uri(qstash_test_cases::ROUTE)
                .insert_header(("upstash-signature", "junk.junk.junk"))
                .insert_header(("content-length", "2097152")),
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
        let (req, _) = req.app_data(receiver()).to_http_parts();
        let err = QStashRaw::from_request(&req, &mut support::untouchable())
            .await
            .unwrap_err();
        let got = Answer::from_http_response(err.error_response());
        assert_eq!(got.status, status, "{name}");
        assert_eq!(got.header("connection"), Some("close"), "{name}");
    }
}

#[actix_web::test]
async fn keys_rotate_for_every_clone() {
    let verifier = Verifier::new(keys());
    let c = Receiver::new(verifier.clone());
    let new_key = "sig_rotatedcurrent000000000000";
    let req = || support::signed_with(new_key, &route_url(), qstash_test_cases::ROUTE, BODY);
    assert_eq!(answer(Some(c.clone()), req()).await.status, 401);
    verifier.rotate(
        qstash_receiver::SigningKeys::new(new_key, "sig_rotatednext00000000000000").unwrap(),
    );
    assert_eq!(answer(Some(c.clone()), req()).await.status, 200);
    // The receiver's own verifier is the same one.
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
            .app_data(receiver())
            .route("/raw", web::post().to(raw)),
    )
    .await;
    let req = signed("https://x.example/raw", "/raw", b"hello").to_request();
    let res = call_service(&app, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(read_body(res).await, "hello");
}
