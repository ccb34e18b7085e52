//! The body timeout, on Tokio's paused clock: a body that trickles in or stalls is refused with
//! 408 when the total time is up, by the extractor and by the middleware; a slow body within the
//! limit is delivered; the limit can be changed or switched off. Then once over a real socket.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::VecDeque;
use std::future::Future as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_qstash::{QStashErrorHandler, QStashMiddleware};
use actix_web::dev::{Payload, Service as _};
use actix_web::error::PayloadError;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, HttpRequest, HttpResponse, web};
use bytes::Bytes;
use qstash_receiver::{Reason, Receiver, Signer, receive::Refusal};
use qstash_test_cases::{CURRENT_KEY, ROUTE, padded_order};
use support::{Server, handle, route_path, route_url};
use tokio::time::{Instant, Sleep};

/// A payload that hands out its chunks one every `every` on Tokio's clock, then ends, or, with
/// `stall`, never ends (and never wakes anybody). The end comes at once after the last chunk.
struct Trickle {
    chunks: VecDeque<Bytes>,
    every: Duration,
    sleep: Pin<Box<Sleep>>,
    stall: bool,
}

impl futures_core::Stream for Trickle {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.chunks.is_empty() {
            return if self.stall {
                Poll::Pending
            } else {
                Poll::Ready(None)
            };
        }
        ready!(self.sleep.as_mut().poll(cx));
        let next = Instant::now() + self.every;
        self.sleep.as_mut().reset(next);
        let chunk = self.chunks.pop_front().unwrap_or_default();
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// `body` cut into `pieces` chunks, one every `every`.
fn trickle(body: &[u8], pieces: usize, every: Duration, stall: bool) -> Payload {
    let size = body.len().div_ceil(pieces).max(1);
    let stream: Pin<Box<dyn futures_core::Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(Trickle {
            chunks: body.chunks(size).map(Bytes::copy_from_slice).collect(),
            every,
            sleep: Box::pin(tokio::time::sleep(every)),
            stall,
        });
    Payload::from(stream)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// How a refusal is answered: as the core says, or by [`teapot`].
#[derive(Clone, Copy)]
enum Answer {
    AsIs,
    Teapot,
}

/// An error handler that says whether the refusal was a body timeout, and after how long.
fn teapot(refusal: Refusal, _: &HttpRequest) -> actix_web::Error {
    let text = format!(
        "timed out: {} ({})",
        refusal.reason() == Reason::BodyTimeout,
        refusal.detail()
    );
    actix_web::error::InternalError::from_response(refusal, HttpResponse::ImATeapot().body(text))
        .into()
}

/// Sends a valid delivery of `order`, whose body arrives as `payload`, to the extractor
/// (receiver in `app_data`) or to the middleware; returns the status, the answer and the time
/// it took on Tokio's clock.
async fn send(
    receiver: &Receiver,
    middleware: bool,
    order: &[u8],
    payload: Payload,
) -> (u16, String, Duration) {
    send_answered(receiver, Answer::AsIs, middleware, order, payload).await
}

async fn send_answered(
    receiver: &Receiver,
    answer: Answer,
    middleware: bool,
    order: &[u8],
    payload: Payload,
) -> (u16, String, Duration) {
    // A guard against a body that is never cut off: fails instead of hanging.
    tokio::time::timeout(
        secs(600),
        send_unguarded(receiver, answer, middleware, order, payload),
    )
    .await
    .expect("no answer within 600 s")
}

async fn send_unguarded(
    receiver: &Receiver,
    answer: Answer,
    middleware: bool,
    order: &[u8],
    payload: Payload,
) -> (u16, String, Duration) {
    let mut req = TestRequest::post().uri(ROUTE);
    for (name, value) in
        &Signer::new(CURRENT_KEY)
            .unwrap()
            .delivery_headers(&route_url(), order, "msg_slow", 0)
    {
        req = req.insert_header((name.as_str(), value.to_str().unwrap()));
    }
    let start = Instant::now();
    let res = if middleware {
        let (scope, rest) = route_path()[1..].split_once('/').unwrap();
        let mut app = App::new();
        if let Answer::Teapot = answer {
            app = app.app_data(QStashErrorHandler::new(teapot));
        }
        let app = init_service(
            app.service(
                web::scope(&format!("/{scope}"))
                    .wrap(QStashMiddleware::new(receiver.clone()))
                    .route(&format!("/{rest}"), web::post().to(handle)),
            ),
        )
        .await;
        let (req, _) = req.to_request().replace_payload(payload);
        app.call(req).await.unwrap()
    } else {
        let mut app = App::new().app_data(receiver.clone());
        if let Answer::Teapot = answer {
            app = app.app_data(QStashErrorHandler::new(teapot));
        }
        let app = init_service(app.route(route_path(), web::post().to(handle))).await;
        let (req, _) = req.to_request().replace_payload(payload);
        call_service(&app, req).await
    };
    let elapsed = start.elapsed();
    let status = res.status().as_u16();
    let body = read_body(res).await;
    (status, String::from_utf8_lossy(&body).into_owned(), elapsed)
}

#[actix_web::test]
async fn a_trickling_body_is_cut_off_at_the_total_limit() {
    tokio::time::pause();
    // 100 bytes, one a second: every single read is quick, the whole is not.
    let order = padded_order(100);
    for middleware in [false, true] {
        let payload = trickle(&order, 100, secs(1), false);
        let (status, text, elapsed) = send(&support::receiver(), middleware, &order, payload).await;
        assert_eq!(
            (status, text.as_str()),
            (408, "request body timeout"),
            "middleware {middleware}"
        );
        assert!(
            elapsed >= secs(10) && elapsed < secs(12),
            "middleware {middleware}: {elapsed:?}"
        );
    }
}

#[actix_web::test]
async fn a_stalled_body_is_cut_off() {
    tokio::time::pause();
    let order = padded_order(100);
    for middleware in [false, true] {
        let payload = trickle(&order, 2, secs(1), true);
        let (status, _, elapsed) = send(&support::receiver(), middleware, &order, payload).await;
        assert_eq!(status, 408, "middleware {middleware}");
        assert!(
            elapsed >= secs(10) && elapsed < secs(12),
            "middleware {middleware}: {elapsed:?}"
        );
    }
}

#[actix_web::test]
async fn a_slow_body_within_the_limit_is_delivered() {
    tokio::time::pause();
    // Nine chunks a second apart: 9 s, under the default 10 s.
    let order = padded_order(200);
    for middleware in [false, true] {
        let payload = trickle(&order, 9, secs(1), false);
        let (status, text, elapsed) = send(&support::receiver(), middleware, &order, payload).await;
        assert_eq!(
            status, 200,
            "middleware {middleware}: {text} after {elapsed:?}"
        );
        assert!(elapsed >= secs(9), "middleware {middleware}: {elapsed:?}");
    }
}

#[actix_web::test]
async fn the_limit_can_be_changed_or_switched_off() {
    tokio::time::pause();
    let order = padded_order(120);
    let short = support::receiver().body_timeout(Duration::from_millis(2500));
    for middleware in [false, true] {
        let payload = trickle(&order, 5, secs(1), false);
        let (status, text, elapsed) =
            send_answered(&short, Answer::Teapot, middleware, &order, payload).await;
        assert_eq!(
            (status, text.as_str()),
            (418, "timed out: true (body not received within 2.5s)"),
            "middleware {middleware}"
        );
        let window = Duration::from_millis(2500)..Duration::from_millis(3500);
        assert!(
            window.contains(&elapsed),
            "middleware {middleware}: {elapsed:?}"
        );
    }

    // A minute of trickling, with no limit at all.
    let unlimited = support::receiver().body_timeout(None);
    for middleware in [false, true] {
        let payload = trickle(&order, 60, secs(1), false);
        let (status, text, elapsed) = send(&unlimited, middleware, &order, payload).await;
        assert_eq!(status, 200, "middleware {middleware}: {text}");
        assert!(elapsed >= secs(60), "middleware {middleware}: {elapsed:?}");
    }
}

#[actix_web::test]
async fn a_body_that_is_already_here_needs_no_time() {
    tokio::time::pause();
    // A zero limit still accepts a body that never has to be waited for.
    let order = padded_order(100);
    let receiver = support::receiver().body_timeout(Duration::ZERO);
    for middleware in [false, true] {
        let payload = Payload::from(Bytes::from(order.clone()));
        let (status, text, _) = send(&receiver, middleware, &order, payload).await;
        assert_eq!(status, 200, "middleware {middleware}: {text}");
    }
}

/// Over a real socket: a client that sends its headers and a little of its body, then nothing,
/// gets 408 when the (short) body timeout is up, and the server closes the connection.
#[actix_web::test]
async fn a_trickling_client_gets_408_and_a_closed_connection() {
    fn app() -> App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .app_data(support::receiver().body_timeout(Duration::from_millis(300)))
            .route(route_path(), web::post().to(handle))
    }
    let server = Server::start(app);
    let addr = server.addr;
    let answer = actix_web::rt::task::spawn_blocking(move || {
        let body = padded_order(1000);
        let mut head = format!("POST {ROUTE} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 1000\r\n");
        for (name, value) in &Signer::new(CURRENT_KEY).unwrap().delivery_headers(
            &route_url(),
            &body,
            "msg_trickle",
            0,
        ) {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(addr).unwrap();
        // A guard against a server that neither answers nor closes: fails instead of hanging.
        stream.set_read_timeout(Some(secs(20))).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body[..10]).unwrap();
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .expect("the server neither answered nor closed the connection");
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.ends_with("request body timeout"), "{answer}");
    server.stop().await;
}
