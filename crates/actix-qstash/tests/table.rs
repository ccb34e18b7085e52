//! Every case of the conformance table (`qstash-test-cases`) through every entry point: the
//! extractor alone (`FromRequest::from_request`), the extractor in an app and the middleware
//! in an app (`init_service`), then the extractor and the middleware over a real
//! `HttpServer` on loopback, with one keep-alive HTTP/1.1 client per setup (the table's wire
//! driver, which writes each request whole before it reads the answer). Each answer is
//! compared whole (status, body, `Upstash-NonRetryable-Error`, `Connection`, `Retry-After`,
//! `Content-Type`), and so is each refusal's one log event.

// Test helpers unwrap: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_qstash::QStash;
use actix_web::FromRequest as _;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::Method;
use actix_web::test::{self, TestRequest};
use bytes::Bytes;
use qstash_test_cases::wire::Client;
use qstash_test_cases::{
    Case, Framing, Got, LogCapture, Order, Setup, Transport, cases, check, check_logs, handled_body,
};
use support::{Answer, Server, extractor_app_with, middleware_app_with};

/// The host a client sends in process, as an HTTP/1.1 client always does.
const HOST: &str = "127.0.0.1:8080";

fn got(answer: Answer) -> Got {
    Got {
        status: answer.status,
        headers: answer.headers,
        body: String::from_utf8_lossy(&answer.body).into_owned(),
    }
}

/// The case's head as a `TestRequest`: method, target, headers in order, `Host` unless the
/// case leaves it out, and `Content-Length` as its framing says.
fn head(case: &Case) -> TestRequest {
    let mut req = TestRequest::default()
        .method(Method::from_bytes(case.method.as_bytes()).unwrap())
        .uri(&case.target);
    if case.transport == Transport::Any {
        req = req.insert_header(("host", HOST));
    }
    for (name, value) in &case.headers {
        req = req.append_header((name.as_str(), value.clone()));
    }
    if let Some(len) = case.content_length() {
        req = req.insert_header(("content-length", len.to_string()));
    }
    req
}

/// The case's body as a payload: whole, in 1000-byte chunks, or the body and then nothing
/// (a client waiting for its answer).
fn payload(case: &Case) -> Payload {
    let chunks: VecDeque<Bytes> = match case.framing {
        Framing::Chunked => case.body.chunks(1000).map(Bytes::copy_from_slice).collect(),
        _ => VecDeque::from([Bytes::from(case.body.clone())]),
    };
    let ends = matches!(case.framing, Framing::Exact | Framing::Chunked);
    struct Body(VecDeque<Bytes>, bool);
    impl futures_core::Stream for Body {
        type Item = Result<Bytes, PayloadError>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = self.get_mut();
            match this.0.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(chunk))),
                None if this.1 => Poll::Ready(None),
                // The rest never comes (and nobody is woken): only the body timeout ends it.
                None => Poll::Pending,
            }
        }
    }
    let stream: Pin<Box<dyn futures_core::Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(Body(chunks, ends));
    Payload::from(stream)
}

async fn in_process(now: i64, logs: &LogCapture) -> usize {
    let mut checked = 0;
    // Tokio's clock, paused: a stalled body's timeout comes as soon as nothing else can run.
    tokio::time::pause();
    for case in &cases(now) {
        let receiver = case.setup.receiver(now);
        let id = case.message_id().unwrap_or("");

        let how = "extractor alone (from_request)";
        let (req, _) = head(case).app_data(receiver.clone()).to_http_parts();
        let answer = match QStash::<Order>::from_request(&req, &mut payload(case)).await {
            Ok(q) => Answer::handled(handled_body(
                &q.delivery.message_id,
                q.delivery.retried,
                &q.payload,
            )),
            Err(e) => Answer::from_http_response(e.error_response()),
        };
        check(how, case, &got(answer));
        check_logs(how, case, &logs.take(id));
        checked += 1;

        for (how, middleware) in [
            ("extractor in an app (init_service)", false),
            ("middleware in an app (init_service)", true),
        ] {
            let req = || {
                let (req, _) = head(case).to_request().replace_payload(payload(case));
                req
            };
            let answer = if middleware {
                let app = test::init_service(middleware_app_with(receiver.clone())).await;
                Answer::from_response(test::call_service(&app, req()).await).await
            } else {
                let app = test::init_service(extractor_app_with(receiver.clone())).await;
                Answer::from_response(test::call_service(&app, req()).await).await
            };
            check(how, case, &got(answer));
            check_logs(how, case, &logs.take(id));
            checked += 1;
        }
    }
    tokio::time::resume();
    checked
}

async fn over_sockets(now: i64, logs: &LogCapture) -> usize {
    let mut checked = 0;
    let all = cases(now);
    for setup in Setup::ALL {
        let cases: Vec<Case> = all
            .iter()
            .filter(|c| c.setup == setup && c.transport == Transport::Any)
            .cloned()
            .collect();
        for (how, middleware) in [
            ("extractor over HTTP", false),
            ("middleware over HTTP", true),
        ] {
            let receiver = setup.receiver(now);
            let server = if middleware {
                Server::start(move || middleware_app_with(receiver.clone()))
            } else {
                Server::start(move || extractor_app_with(receiver.clone()))
            };
            let addr = server.addr;
            let cases = cases.clone();
            let answers = actix_web::rt::task::spawn_blocking(move || {
                let mut client = Client::connect(addr).unwrap();
                cases
                    .iter()
                    .map(|case| {
                        let got = client
                            .send(case)
                            .unwrap_or_else(|e| panic!("{how}: case {:?}: {e}", case.name));
                        if got
                            .headers
                            .iter()
                            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"))
                        {
                            client = Client::connect(addr).unwrap();
                        }
                        (case.clone(), got)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap();
            for (case, got) in &answers {
                check(how, &over_the_wire(case), got);
                check_logs(how, case, &logs.take(case.message_id().unwrap_or("")));
                checked += 1;
            }
            server.stop().await;
        }
    }
    checked
}

/// The answer a case gets from actix-web on the wire: as the table says, except that
/// actix-http closes the connection after a request with `Upgrade: websocket` (it reads such
/// a body until the connection closes, so the request's end is unknown to it; see the
/// crate's `head::upgrade_body_len`), which the answer says with `Connection: close`.
fn over_the_wire(case: &Case) -> Case {
    let mut case = case.clone();
    let upgrade = case
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("upgrade") && v.eq_ignore_ascii_case(b"websocket"));
    if upgrade {
        case.expect.connection_close = true;
    }
    case
}

/// One test, so that no other test's requests log under the same message ids meanwhile.
#[actix_web::test]
async fn every_case_through_every_entry_point() {
    let now = support::now();
    let logs = LogCapture::global();
    let table = cases(now);
    assert!(table.len() >= 50, "the whole table: {}", table.len());
    let sockets = table
        .iter()
        .filter(|c| c.transport == Transport::Any)
        .count();
    let in_process = in_process(now, &logs).await;
    let over_sockets = over_sockets(now, &logs).await;
    // Every case through the three in-process entry points, every case a socket can carry
    // through the two servers.
    assert_eq!(in_process, 3 * table.len());
    assert_eq!(over_sockets, 2 * sockets);
    println!(
        "{} cases: {in_process} answers in process, {over_sockets} over sockets",
        table.len()
    );
}
