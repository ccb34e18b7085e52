//! The body timeout, on Tokio's paused clock: a body that trickles in or stalls is refused with
//! 408 when the total time is up, by the layer and by the extractor alone; a slow body within
//! the limit is delivered; the limit can be changed or switched off; where no timer runs, a set
//! limit is answered 500 rather than ignored.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use common::{Calls, table_receiver};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt as _;
use qstash_receiver::{Receiver, Signer};
use qstash_test_cases::{BASE_URL, CURRENT_KEY, ROUTE, padded_order};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;
use tower_qstash::QStashLayer;

/// A body that hands out its chunks one every `every` on Tokio's clock, then ends, or, with
/// `stall`, never ends (and never wakes anybody). The end comes at once after the last chunk.
struct Trickle {
    chunks: VecDeque<Bytes>,
    every: Duration,
    sleep: Pin<Box<Sleep>>,
    stall: bool,
}

impl Trickle {
    /// `body` cut into `pieces` chunks.
    fn new(body: &[u8], pieces: usize, every: Duration) -> Self {
        let size = body.len().div_ceil(pieces).max(1);
        Self {
            chunks: body.chunks(size).map(Bytes::copy_from_slice).collect(),
            every,
            sleep: Box::pin(tokio::time::sleep(every)),
            stall: false,
        }
    }

    fn stalling(mut self) -> Self {
        self.stall = true;
        self
    }
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
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
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

/// A delivery of a valid order, signed for the table's route, with `body` as its body.
fn delivery(order: &[u8], body: Trickle) -> Request<Body> {
    let mut req = Request::post(ROUTE).body(Body::new(body)).unwrap();
    *req.headers_mut() = Signer::new(CURRENT_KEY).unwrap().delivery_headers(
        &format!("{BASE_URL}{ROUTE}"),
        order,
        "msg_slow",
        0,
    );
    req
}

/// Sends `req` and returns the status, the answer's text and how long it took on Tokio's clock.
async fn timed(app: Router, req: Request<Body>) -> (StatusCode, String, Duration) {
    let start = Instant::now();
    // A guard against a body that is never cut off: fails instead of hanging.
    let response: Response<Body> = tokio::time::timeout(secs(600), app.oneshot(req))
        .await
        .expect("no answer within 600 s")
        .unwrap();
    let elapsed = start.elapsed();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), elapsed)
}

/// The layered app and the extractor-only app over `receiver`.
fn apps(receiver: &Receiver, calls: &Calls) -> [(&'static str, Router); 2] {
    [
        (
            "layer",
            common::layered_app(QStashLayer::new(receiver.clone()), calls),
        ),
        ("extractor", common::extractor_app(receiver.clone(), calls)),
    ]
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn a_trickling_body_is_cut_off_at_the_total_limit() {
    // 100 bytes, one a second: every single read is quick, the whole is not.
    let order = padded_order(100);
    let calls = Calls::default();
    for (way, app) in apps(&table_receiver(), &calls) {
        let req = delivery(&order, Trickle::new(&order, 100, secs(1)));
        let (status, text, elapsed) = timed(app, req).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{way}: {text}");
        assert_eq!(text, "request body timeout", "{way}");
        assert!(
            elapsed >= secs(10) && elapsed < secs(12),
            "{way}: answered after {elapsed:?}"
        );
    }
    assert_eq!(calls.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_is_cut_off() {
    let order = padded_order(100);
    let calls = Calls::default();
    for (way, app) in apps(&table_receiver(), &calls) {
        let req = delivery(&order, Trickle::new(&order, 2, secs(1)).stalling());
        let (status, _, elapsed) = timed(app, req).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{way}");
        assert!(
            elapsed >= secs(10) && elapsed < secs(12),
            "{way}: {elapsed:?}"
        );
    }
    assert_eq!(calls.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_body_within_the_limit_is_delivered() {
    // Nine chunks a second apart: 9 s, under the default 10 s.
    let order = padded_order(200);
    let calls = Calls::default();
    for (way, app) in apps(&table_receiver(), &calls) {
        let req = delivery(&order, Trickle::new(&order, 9, secs(1)));
        let (status, text, elapsed) = timed(app, req).await;
        assert_eq!(status, StatusCode::OK, "{way}: {text}");
        assert!(elapsed >= secs(9), "{way}: {elapsed:?}");
    }
    assert_eq!(calls.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_limit_can_be_changed_or_switched_off() {
    let order = padded_order(120);
    let calls = Calls::default();

    let short = table_receiver().body_timeout(Duration::from_millis(2500));
    let window = Duration::from_millis(2500)..Duration::from_millis(3500);
    for (way, app) in apps(&short, &calls) {
        let req = delivery(&order, Trickle::new(&order, 5, secs(1)));
        let (status, text, elapsed) = timed(app, req).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::REQUEST_TIMEOUT, "request body timeout"),
            "{way}"
        );
        assert!(window.contains(&elapsed), "{way}: {elapsed:?}");
    }
    // A `map_response` around the routes answers it, with its own status (200) and the
    // reason the layer left in the response's extensions.
    let hooked = common::layered_app(QStashLayer::new(short), &calls).layer(
        axum::middleware::map_response(|response: axum::response::Response| async move {
            let reason = response
                .extensions()
                .get::<qstash_receiver::Answer>()
                .map_or("none", |answer| answer.reason().as_str());
            axum::response::Response::new(axum::body::Body::from(reason))
        }),
    );
    let req = delivery(&order, Trickle::new(&order, 5, secs(1)));
    let (status, text, elapsed) = timed(hooked, req).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "body_timeout"));
    assert!(window.contains(&elapsed), "map_response: {elapsed:?}");
    assert_eq!(calls.get(), 0);

    // A minute of trickling, with no limit at all.
    let unlimited = table_receiver().body_timeout(None);
    for (way, app) in apps(&unlimited, &calls) {
        let req = delivery(&order, Trickle::new(&order, 60, secs(1)));
        let (status, text, elapsed) = timed(app, req).await;
        assert_eq!(status, StatusCode::OK, "{way}: {text}");
        assert!(elapsed >= secs(60), "{way}: {elapsed:?}");
    }
    assert_eq!(calls.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_is_already_here_needs_no_time() {
    // A zero limit still accepts a body that never has to be waited for.
    let order = padded_order(100);
    let receiver = table_receiver().body_timeout(Duration::ZERO);
    let calls = Calls::default();
    for (way, app) in apps(&receiver, &calls) {
        let mut req = Request::post(ROUTE)
            .body(Body::from(order.clone()))
            .unwrap();
        *req.headers_mut() = Signer::new(CURRENT_KEY).unwrap().delivery_headers(
            &format!("{BASE_URL}{ROUTE}"),
            &order,
            "msg_fast",
            0,
        );
        let (status, text, _) = timed(app, req).await;
        assert_eq!(status, StatusCode::OK, "{way}: {text}");
    }
    assert_eq!(calls.get(), 2);
}

/// A body that never yields anything (and needs no timer of its own).
struct Never;

impl http_body::Body for Never {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

#[test]
fn outside_a_tokio_runtime_a_timeout_is_answered_not_ignored() {
    // No runtime, so no timer: a body that has to be waited for is answered 500 at once
    // (logged at `error`, naming the fix) instead of being read with no time limit.
    let order = padded_order(100);
    let calls = Calls::default();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let signed = |req: &mut Request<Body>| {
        *req.headers_mut() = Signer::new(CURRENT_KEY).unwrap().delivery_headers(
            &format!("{BASE_URL}{ROUTE}"),
            &order,
            "msg_untimed",
            0,
        );
    };
    for (way, app) in apps(&table_receiver(), &calls) {
        let mut req = Request::post(ROUTE).body(Body::new(Never)).unwrap();
        signed(&mut req);
        let mut answer = std::pin::pin!(app.oneshot(req));
        let Poll::Ready(response) = answer.as_mut().poll(&mut cx) else {
            panic!("{way}: waits for a body no timer limits");
        };
        let response = response.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{way}"
        );
        assert_eq!(
            response
                .extensions()
                .get::<qstash_receiver::Answer>()
                .map(|a| a.reason().as_str()),
            Some("not_configured"),
            "{way}"
        );
    }
    // With no timeout there is nothing to run: the body is waited for.
    for (way, app) in apps(&table_receiver().body_timeout(None), &calls) {
        let mut req = Request::post(ROUTE).body(Body::new(Never)).unwrap();
        signed(&mut req);
        let mut answer = std::pin::pin!(app.oneshot(req));
        assert!(answer.as_mut().poll(&mut cx).is_pending(), "{way}");
    }
    assert_eq!(calls.get(), 0);
}
