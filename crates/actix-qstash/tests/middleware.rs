//! The middleware beyond the shared table: what handlers downstream see, what it leaves alone,
//! and that extractors behind it do not verify again.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_qstash::{QStash, QStashErrorHandler, QStashMiddleware, QStashRaw};
use actix_web::dev::Service as _;
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, HttpMessage as _, HttpRequest, HttpResponse, web};
use qstash_receiver::{
    Claims, Delivery, Receiver, SigningKeys, claims::MatchedKey, receive::PayloadErrorStatus,
};
use qstash_test_cases::Order;
use support::{receiver, signed};

const BODY: &[u8] = br#"{"order":5}"#;
const URL: &str = "https://app.example.com/hooks/orders?x=1";
const TARGET: &str = "/hooks/orders?x=1";

#[actix_web::test]
async fn handlers_downstream_read_the_body_and_the_extensions() {
    async fn json(
        order: web::Json<Order>,
        delivery: web::ReqData<Delivery>,
        claims: web::ReqData<Claims>,
    ) -> HttpResponse {
        HttpResponse::Ok().body(format!(
            "json {} {} {} {:?}",
            order.order,
            delivery.message_id,
            delivery.retried,
            claims.matched_key()
        ))
    }
    async fn bytes(body: web::Bytes, req: HttpRequest) -> HttpResponse {
        let id = req
            .extensions()
            .get::<Delivery>()
            .unwrap()
            .message_id
            .clone();
        HttpResponse::Ok().body(format!("bytes {} {id}", body.len()))
    }
    async fn payload(body: web::Payload) -> HttpResponse {
        let bytes = body.to_bytes().await.unwrap();
        HttpResponse::Ok().body(format!("payload {}", bytes.len()))
    }
    let app = init_service(
        App::new().service(
            web::scope("/hooks")
                .wrap(QStashMiddleware::new(receiver()))
                .route("/orders", web::post().to(json))
                .route("/bytes", web::post().to(bytes))
                .route("/payload", web::post().to(payload)),
        ),
    )
    .await;
    let cases = [
        (
            "web::Json + ReqData",
            URL,
            TARGET,
            "json 5 msg_test 1 Current",
        ),
        (
            "web::Bytes + extensions",
            "https://app.example.com/hooks/bytes",
            "/hooks/bytes",
            "bytes 11 msg_test",
        ),
        (
            "web::Payload",
            "https://app.example.com/hooks/payload",
            "/hooks/payload",
            "payload 11",
        ),
    ];
    for (name, url, target, want) in cases {
        // `web::Json` wants a JSON content type; QStash passes on the publisher's.
        let req = signed(url, target, BODY).insert_header(("content-type", "application/json"));
        let res = call_service(&app, req.to_request()).await;
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(read_body(res).await, want, "{name}");
    }
}

#[actix_web::test]
async fn extractors_behind_the_middleware_reuse_its_result() {
    // The app's own receiver has keys that would refuse every request: the extractor can only
    // succeed by taking the middleware's result.
    let wrong = Receiver::from(SigningKeys::new("sig_wrongcurrent", "sig_wrongnext").unwrap());
    async fn typed(
        QStash {
            payload, claims, ..
        }: QStash<Order>,
    ) -> HttpResponse {
        HttpResponse::Ok().body(format!("{} {:?}", payload.order, claims.matched_key()))
    }
    async fn raw(QStashRaw { body, delivery, .. }: QStashRaw) -> HttpResponse {
        HttpResponse::Ok().body(format!("{} {}", body.len(), delivery.message_id))
    }
    let app = init_service(
        App::new().app_data(wrong.clone()).service(
            web::scope("/hooks")
                .wrap(QStashMiddleware::new(receiver()))
                .route("/orders", web::post().to(typed))
                .route("/raw", web::post().to(raw)),
        ),
    )
    .await;
    let res = call_service(&app, signed(URL, TARGET, BODY).to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(read_body(res).await, "5 Current");
    let req = signed("https://app.example.com/hooks/raw", "/hooks/raw", BODY).to_request();
    let res = call_service(&app, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(read_body(res).await, "11 msg_test");

    // Without the middleware, the same app's extractor verifies with the wrong keys.
    let app = init_service(
        App::new()
            .app_data(wrong)
            .route("/hooks/orders", web::post().to(typed)),
    )
    .await;
    let res = call_service(&app, signed(URL, TARGET, BODY).to_request()).await;
    assert_eq!(res.status(), 401);
}

#[actix_web::test]
async fn the_middleware_uses_its_own_payload_error_status() {
    // The middleware's 422 applies to the extractor behind it, not the app's default 489.
    let app = init_service(
        App::new().app_data(receiver()).service(
            web::scope("/hooks")
                .wrap(QStashMiddleware::new(receiver().payload_error_status(
                    PayloadErrorStatus::UnprocessableEntity,
                )))
                .route("/orders", web::post().to(support::handle)),
        ),
    )
    .await;
    let res = call_service(&app, signed(URL, TARGET, b"{}").to_request()).await;
    assert_eq!(res.status(), 422);
    assert!(res.headers().get("upstash-nonretryable-error").is_none());
}

#[actix_web::test]
async fn refused_requests_never_reach_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { HttpResponse::Ok().finish() }
        }
    };
    let app = init_service(
        App::new()
            .wrap(QStashMiddleware::new(receiver()))
            .route("/hooks/orders", web::post().to(counted)),
    )
    .await;
    let no_message_id = {
        let (req, _) = signed(URL, TARGET, BODY).to_http_parts();
        let mut r = TestRequest::post().uri(TARGET).set_payload(BODY);
        for (name, value) in req.headers() {
            if name != "upstash-message-id" && name != "content-length" {
                r = r.append_header((name.clone(), value.clone()));
            }
        }
        r
    };
    let cases = [
        (
            "unsigned",
            TestRequest::post().uri(TARGET).set_payload(BODY),
            401,
        ),
        (
            "tampered",
            signed(URL, TARGET, BODY).set_payload(&b"{\"order\":6}"[..]),
            401,
        ),
        ("too large", signed(URL, TARGET, &[b' '; 4097]), 413),
        ("no message id", no_message_id, 489),
    ];
    for (name, req, status) in cases {
        let res = call_service(&app, req.to_request()).await;
        assert_eq!(res.status().as_u16(), status, "{name}");
        assert_eq!(
            res.headers().get("upstash-nonretryable-error").is_some(),
            status == 489,
            "{name}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let res = call_service(&app, signed(URL, TARGET, BODY).to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn routes_outside_the_scope_are_left_alone() {
    let app = init_service(
        App::new()
            .service(
                web::scope("/hooks")
                    .wrap(QStashMiddleware::new(receiver()))
                    .route("/orders", web::post().to(HttpResponse::Ok)),
            )
            .route("/health", web::get().to(HttpResponse::Ok)),
    )
    .await;
    let res = call_service(&app, TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(res.status(), 200);
    let res = call_service(&app, TestRequest::post().uri("/hooks/orders").to_request()).await;
    assert_eq!(res.status(), 401);
}

#[actix_web::test]
async fn the_error_handler_in_app_data_shapes_every_refusal_behind_the_middleware() {
    let app = init_service(
        App::new()
            .app_data(QStashErrorHandler::new(|refusal, _req| {
                actix_web::error::InternalError::new(
                    format!(
                        "refused: {} {}",
                        refusal.reason(),
                        refusal.status().as_u16()
                    ),
                    StatusCode::FORBIDDEN,
                )
                .into()
            }))
            .service(
                web::scope("/hooks")
                    .wrap(QStashMiddleware::new(receiver()))
                    .route("/orders", web::post().to(support::handle)),
            ),
    )
    .await;
    let cases = [
        (
            "the middleware's own refusal",
            TestRequest::post().uri(TARGET),
            "refused: missing_signature 401",
        ),
        (
            "the extractor's, behind it",
            signed(URL, TARGET, b"[]"),
            "refused: invalid_payload 489",
        ),
    ];
    for (name, req, want) in cases {
        let res = call_service(&app, req.to_request()).await;
        assert_eq!(res.status(), 403, "{name}");
        assert_eq!(read_body(res).await, want, "{name}");
    }
}

#[actix_web::test]
async fn refusals_before_the_body_leave_it_unread() {
    let app = init_service(
        App::new()
            .wrap(QStashMiddleware::new(receiver()))
            .route("/hooks/orders", web::post().to(HttpResponse::Ok)),
    )
    .await;
    let cases = [
        ("no signature", TestRequest::post().uri(TARGET), 401),
        (
            "a junk signature",
            TestRequest::post()
                .uri(TARGET)
                .insert_header(("upstash-signature", "junk.junk.junk")),
            401,
        ),
        (
            "Content-Length over the limit",
            signed(URL, TARGET, BODY)
                .insert_header(("content-length", (qstash_test_cases::LIMIT + 1).to_string())),
            413,
        ),
    ];
    for (name, req, status) in cases {
        let (req, _) = req.to_request().replace_payload(support::untouchable());
        let res = app.call(req).await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{name}");
        assert_eq!(
            res.response().head().connection_type(),
            actix_web::http::ConnectionType::Close,
            "{name}"
        );
    }
}

#[actix_web::test]
async fn the_next_key_is_reported() {
    async fn which(claims: web::ReqData<Claims>) -> HttpResponse {
        HttpResponse::Ok().body(format!("{:?}", claims.matched_key()))
    }
    let app = init_service(
        App::new()
            .wrap(QStashMiddleware::new(receiver()))
            .route("/hooks/orders", web::post().to(which)),
    )
    .await;
    let req = support::signed_with(qstash_test_cases::NEXT_KEY, URL, TARGET, BODY);
    let res = call_service(&app, req.to_request()).await;
    assert_eq!(read_body(res).await, format!("{:?}", MatchedKey::Next));
}
