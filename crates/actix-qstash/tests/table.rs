//! Every case of the shared table (`qstash-test-cases`), through the extractor and through the
//! guard: in process (`TestRequest`, `init_service`) and over real HTTP (`HttpServer` on
//! loopback, reqwest). `tower-qstash` answers the same table the same way.

mod support;

use actix_qstash::QStash;
use actix_web::{FromRequest as _, test};
use qstash_test_cases::{Order, cases, handled_body};
use support::{
    Answer, Server, check, chunked_payload, extractor_app, guard_app, now, send, test_headers,
    test_request,
};

/// The extractor alone: `TestRequest::to_http_parts` + `FromRequest::from_request`.
#[actix_web::test]
async fn extractor_with_test_request() {
    let cases = cases(now());
    assert!(cases.len() >= 20, "the whole table");
    for case in &cases {
        for streamed in [false, true] {
            let (req, mut payload) = if streamed {
                // The same body in 1000-byte chunks and without `Content-Length`: the limit is
                // then enforced while counting.
                let (req, _) = test_headers(case)
                    .app_data(support::config())
                    .to_http_parts();
                (req, chunked_payload(&case.body, 1000))
            } else {
                test_request(case)
                    .app_data(support::config())
                    .to_http_parts()
            };
            let answer = match QStash::<Order>::from_request(&req, &mut payload).await {
                Ok(QStash {
                    payload, delivery, ..
                }) => Answer {
                    status: 200,
                    non_retryable: None,
                    body: handled_body(&delivery.message_id, delivery.retried, &payload).into(),
                },
                Err(e) => Answer::from_http_response(e.error_response()),
            };
            let how = if streamed {
                "extractor, streamed"
            } else {
                "extractor"
            };
            check(how, case, &answer);
        }
    }
}

/// The extractor in an app: `init_service` + `call_service`.
#[actix_web::test]
async fn extractor_with_init_service() {
    let app = test::init_service(extractor_app()).await;
    for case in &cases(now()) {
        let res = test::call_service(&app, test_request(case).to_request()).await;
        check("extractor app", case, &Answer::from_response(res).await);
    }
}

/// The guard on a scope, the handler's extractor reusing its result: `init_service`.
#[actix_web::test]
async fn guard_with_init_service() {
    let app = test::init_service(guard_app()).await;
    for case in &cases(now()) {
        let res = test::call_service(&app, test_request(case).to_request()).await;
        check("guard", case, &Answer::from_response(res).await);
    }
}

/// Both over real HTTP: one server each, one keep-alive client.
#[actix_web::test]
async fn real_server() {
    let client = support::client();
    for (how, server) in [
        ("extractor over HTTP", Server::start(extractor_app)),
        ("guard over HTTP", Server::start(guard_app)),
    ] {
        for case in &cases(now()) {
            check(how, case, &send(&client, &server, case).await);
        }
        server.stop().await;
    }
}
