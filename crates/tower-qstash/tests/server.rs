//! Real servers on 127.0.0.1 and real HTTP/1.1 clients (hyper, and the table's wire driver): chunked and
//! oversize bodies, refusals before the body while the client keeps writing, keep-alive after
//! a refusal, callbacks, key rotation while serving, and 1,000 deliveries over 64 connections.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use axum::routing::post;
use bytes::Bytes;
use common::{
    ANSWER_WITHIN, Calls, Connection, chunked, full, request_head, serve, table_receiver,
};
use http::{HeaderMap, StatusCode};
use qstash_receiver::{Receiver, Signer, SigningKeys, Verifier, subject::SubjectPolicy};
use qstash_test_cases::wire::Client;
use qstash_test_cases::{
    BASE_URL, CURRENT_KEY, LIMIT, Order, ROUTE, ROUTE_PATH, handled_body, padded_order,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower_qstash::{Layered, QStashCallback, QStashLayer};

fn route_url() -> String {
    format!("{BASE_URL}{ROUTE}")
}

fn headers_for(url: &str, body: &[u8], message_id: &str) -> HeaderMap {
    Signer::new(CURRENT_KEY)
        .unwrap()
        .delivery_headers(url, body, message_id, 0)
}

#[derive(Clone, Copy)]
enum Send {
    Full,
    Chunked { chunk: usize, close: bool },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_over_http() {
    struct Case {
        name: &'static str,
        body: Vec<u8>,
        signed_body: Vec<u8>,
        send: Send,
        status: StatusCode,
        answer: String,
    }
    let order = padded_order(1000);
    let handled = handled_body(
        "msg_http",
        0,
        &Order {
            order: 1,
            pad: String::new(),
        },
    );
    let big = padded_order(LIMIT + 1);
    let cases = [
        Case {
            name: "signed",
            body: order.clone(),
            signed_body: order.clone(),
            send: Send::Full,
            status: StatusCode::OK,
            answer: handled.clone(),
        },
        Case {
            name: "tampered",
            body: padded_order(999),
            signed_body: order.clone(),
            send: Send::Full,
            status: StatusCode::UNAUTHORIZED,
            answer: "invalid QStash signature".into(),
        },
        Case {
            name: "oversize with Content-Length",
            body: big.clone(),
            signed_body: big.clone(),
            send: Send::Full,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            answer: "payload too large".into(),
        },
        Case {
            name: "chunked without Content-Length",
            body: order.clone(),
            signed_body: order.clone(),
            send: Send::Chunked {
                chunk: 100,
                close: true,
            },
            status: StatusCode::OK,
            answer: handled.clone(),
        },
        Case {
            // The client sends LIMIT + 1 bytes and keeps the body open: the answer must come
            // without the server waiting for the rest.
            name: "chunked past the limit, body left open",
            body: big.clone(),
            signed_body: big.clone(),
            send: Send::Chunked {
                chunk: 512,
                close: false,
            },
            status: StatusCode::PAYLOAD_TOO_LARGE,
            answer: "payload too large".into(),
        },
    ];
    for case in cases {
        for way in ["layer", "extractor"] {
            let calls = Calls::default();
            let app = app(way, table_receiver(), &calls);
            let addr = serve(app).await;
            let mut conn = Connection::open(addr).await;
            let headers = headers_for(&route_url(), &case.signed_body, "msg_http");
            let (answer, _keep_open) = match case.send {
                Send::Full => (conn.send(ROUTE, &headers, full(case.body.clone())), None),
                Send::Chunked { chunk, close } => {
                    let (tx, body) = chunked();
                    let chunks: Vec<Bytes> = case
                        .body
                        .chunks(chunk)
                        .map(Bytes::copy_from_slice)
                        .collect();
                    let feeder = tokio::spawn(async move {
                        for c in chunks {
                            if tx.send(c).await.is_err() {
                                return None;
                            }
                        }
                        // Dropping `tx` ends the body; keeping it leaves the body open.
                        (!close).then_some(tx)
                    });
                    (conn.send(ROUTE, &headers, body), Some(feeder))
                }
            };
            let answer = tokio::time::timeout(ANSWER_WITHIN, answer)
                .await
                .unwrap_or_else(|_| panic!("{} ({way}): no answer", case.name));
            assert_eq!(answer.status, case.status, "{} ({way})", case.name);
            assert_eq!(answer.text(), case.answer, "{} ({way})", case.name);
            let want_calls = usize::from(case.status == StatusCode::OK);
            assert_eq!(calls.get(), want_calls, "{} ({way})", case.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_over_http() {
    async fn on_callback(callback: QStashCallback<Layered>) -> String {
        format!(
            "{} {}",
            callback.callback.status,
            callback
                .response::<serde_json::Value>()
                .map(|v| v.to_string())
                .unwrap_or_default()
        )
    }
    let app = Router::new()
        .route("/api/callback", post(on_callback))
        .layer(QStashLayer::new(table_receiver()));
    let addr = serve(app).await;
    let mut conn = Connection::open(addr).await;
    let url = format!("{BASE_URL}/api/callback");
    let body = br#"{"status":201,"header":{"Content-Type":["application/json"]},"body":"eyJpZCI6N30=","retried":0,"maxRetries":3,"sourceMessageId":"msg_1","createdAt":1701198447054}"#;
    let answer = conn
        .send(
            "/api/callback",
            &headers_for(&url, body, "msg_cb"),
            full(&body[..]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), r#"201 {"id":7}"#);
    let answer = conn
        .send(
            "/api/callback",
            &headers_for(&url, b"[]", "msg_cb"),
            full(&b"[]"[..]),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 489);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_route_with_query_behind_public_base_url() {
    let inner = Router::new()
        .route("/webhook", post(common::order_handler::<Layered>))
        .layer(QStashLayer::new(table_receiver().subject_policy(
            SubjectPolicy::public_base_url("https://receiver.example.com").unwrap(),
        )));
    let calls = Calls::default();
    let app = Router::new()
        .nest("/api/v1", inner)
        .layer(Extension(calls.clone()));
    let addr = serve(app).await;
    let mut conn = Connection::open(addr).await;
    let body = br#"{"order":9}"#;
    let target = "/api/v1/webhook?team=7&x=a%20b";
    for (signed_for, status) in [
        (
            format!("https://receiver.example.com{target}"),
            StatusCode::OK,
        ),
        (
            format!("https://other.example.com{target}"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "https://receiver.example.com/webhook?team=7&x=a%20b".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "https://receiver.example.com/api/v1/webhook?team=8&x=a%20b".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let answer = conn
            .send(
                target,
                &headers_for(&signed_for, body, "msg_nest"),
                full(&body[..]),
            )
            .await;
        assert_eq!(answer.status, status, "{signed_for}: {}", answer.text());
    }
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_while_serving() {
    const OLD_CURRENT: &str = "sig_rotation_old_current";
    const OLD_NEXT: &str = "sig_rotation_old_next";
    const NEW_NEXT: &str = "sig_rotation_new_next";
    const REQUESTS: usize = 400;
    const CONNECTIONS: usize = 4;

    let verifier = Verifier::new(SigningKeys::new(OLD_CURRENT, OLD_NEXT).unwrap());
    let calls = Calls::default();
    let app = Router::new()
        .route(ROUTE_PATH, post(common::order_handler::<Layered>))
        .layer(QStashLayer::new(verifier.clone()))
        .layer(Extension(calls.clone()));
    let addr = serve(app).await;

    // QStash signs with the old next key from the moment it is promoted; the receiver
    // rotates while those deliveries stream in.
    let signer = Signer::new(OLD_NEXT).unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let (rotated_tx, rotated_rx) = tokio::sync::oneshot::channel();
    let rotator = {
        let answered = answered.clone();
        let verifier = verifier.clone();
        tokio::spawn(async move {
            while answered.load(Ordering::SeqCst) < REQUESTS / 2 {
                tokio::task::yield_now().await;
            }
            verifier.rotate(SigningKeys::new(OLD_NEXT, NEW_NEXT).unwrap());
            let _ = rotated_tx.send(answered.load(Ordering::SeqCst));
        })
    };
    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        let signer = signer.clone();
        let answered = answered.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await;
            let mut refused = Vec::new();
            for i in (c..REQUESTS).step_by(CONNECTIONS) {
                let body = format!(r#"{{"order":{i}}}"#);
                let id = format!("msg_rot_{i}");
                let headers = signer.delivery_headers(&route_url(), body.as_bytes(), &id, 0);
                let answer = conn.send(ROUTE, &headers, full(body)).await;
                if answer.status != StatusCode::OK {
                    refused.push((i, answer.status));
                }
                answered.fetch_add(1, Ordering::SeqCst);
            }
            refused
        }));
    }
    for client in clients {
        assert_eq!(
            client.await.unwrap(),
            vec![],
            "deliveries with valid tokens refused"
        );
    }
    rotator.await.unwrap();
    let rotated_at = rotated_rx.await.unwrap();
    assert!(
        rotated_at < REQUESTS,
        "the rotation happened after the stream ended"
    );
    assert_eq!(calls.get(), REQUESTS);

    // The rotation took effect: the old current key is gone, the new next key works.
    let mut conn = Connection::open(addr).await;
    for (key, status) in [
        (OLD_CURRENT, StatusCode::UNAUTHORIZED),
        (NEW_NEXT, StatusCode::OK),
    ] {
        let body = br#"{"order":1}"#;
        let headers =
            Signer::new(key)
                .unwrap()
                .delivery_headers(&route_url(), body, "msg_after", 0);
        let answer = conn.send(ROUTE, &headers, full(&body[..])).await;
        assert_eq!(answer.status, status, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_deliveries_over_64_connections() {
    const DELIVERIES: usize = 1000;
    const CONNECTIONS: usize = 64;

    async fn slow_handler(
        Extension(calls): Extension<Calls>,
        q: tower_qstash::QStash<Order, Layered>,
    ) -> String {
        // Let other requests interleave with this one.
        tokio::task::yield_now().await;
        common::order_handler::<Layered>(Extension(calls), q).await
    }
    let calls = Calls::default();
    let app = Router::new()
        .route(ROUTE_PATH, post(slow_handler))
        .layer(QStashLayer::new(table_receiver()))
        .layer(Extension(calls.clone()));
    let addr = serve(app).await;
    let signer = Signer::new(CURRENT_KEY).unwrap();

    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        let signer = signer.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await;
            let mut wrong = Vec::new();
            let mut done = 0usize;
            for i in (c..DELIVERIES).step_by(CONNECTIONS) {
                let order = u32::try_from(i).unwrap();
                let retried = order % 4;
                let body = format!(r#"{{"order":{order}}}"#);
                let id = format!("msg_{c}_{i}");
                // Every tenth delivery is tampered with: it must be refused, alone.
                let tampered = i % 10 == 7;
                let headers = signer.delivery_headers(&route_url(), body.as_bytes(), &id, retried);
                let sent = if tampered {
                    format!(r#"{{"order":{}}}"#, order + 1)
                } else {
                    body
                };
                let answer = conn.send(ROUTE, &headers, full(sent)).await;
                let want = if tampered {
                    (
                        StatusCode::UNAUTHORIZED,
                        "invalid QStash signature".to_owned(),
                    )
                } else {
                    let payload = Order {
                        order,
                        pad: String::new(),
                    };
                    (StatusCode::OK, handled_body(&id, retried, &payload))
                };
                if (answer.status, answer.text()) != want {
                    wrong.push((i, answer.status, answer.text()));
                }
                done += 1;
            }
            (done, wrong)
        }));
    }
    let mut total = 0;
    for client in clients {
        let (done, wrong) = tokio::time::timeout(Duration::from_secs(120), client)
            .await
            .expect("clients finish")
            .unwrap();
        assert_eq!(wrong, vec![], "misanswered deliveries");
        total += done;
    }
    assert_eq!(total, DELIVERIES);
    assert_eq!(calls.get(), DELIVERIES - DELIVERIES / 10);
}

/// The app under test: the layer, or the extractor alone.
fn app(way: &str, receiver: Receiver, calls: &Calls) -> Router {
    if way == "layer" {
        common::layered_app(QStashLayer::new(receiver), calls)
    } else {
        common::extractor_app(receiver, calls)
    }
}

/// Over a real socket: a client that sends its headers and a little of its body, then nothing,
/// gets 408 when the (short) body timeout is up, and the server closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_client_gets_408_and_a_closed_connection() {
    let calls = Calls::default();
    let layer = QStashLayer::new(table_receiver().body_timeout(Duration::from_millis(300)));
    let addr = serve(common::app_with::<Layered, ()>(&calls, Some(layer), ())).await;

    let body = padded_order(1000);
    let mut head = format!("POST {ROUTE} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 1000\r\n");
    for (name, value) in &headers_for(&route_url(), &body, "msg_trickle") {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();

    // Read until the server closes: the whole answer, then EOF.
    let mut answer = Vec::new();
    tokio::time::timeout(ANSWER_WITHIN, stream.read_to_end(&mut answer))
        .await
        .expect("the server neither answered nor closed the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.ends_with("request body timeout"), "{answer}");
    assert_eq!(calls.get(), 0);
}

/// An unsigned request that declares a 2 MiB body gets its 401 (with `Connection: close`)
/// before the server reads the body, and the client reads it whether it keeps writing the
/// body or sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_2_mib_request_is_answered_while_the_client_keeps_writing() {
    const DECLARED: usize = 2 * 1024 * 1024;
    for way in ["layer", "extractor"] {
        for keeps_writing in [true, false] {
            let calls = Calls::default();
            let addr = serve(app(way, table_receiver(), &calls)).await;
            let mut headers = headers_for(&route_url(), b"{}", "msg_unsigned");
            headers.remove("upstash-signature");
            let pairs: Vec<(String, Vec<u8>)> = headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            let head = request_head(
                "POST",
                ROUTE,
                addr,
                &pairs,
                &format!("content-length: {DECLARED}\r\n"),
            );
            // The wire driver blocks: off the runtime that serves.
            let (got, sent, closed) = tokio::task::spawn_blocking(move || {
                let mut client = Client::connect(addr).unwrap();
                client.write(&head).unwrap();
                let writer = keeps_writing.then(|| {
                    let mut write = client.stream().try_clone().unwrap();
                    std::thread::spawn(move || {
                        use std::io::Write as _;
                        // The whole declared body, in 64 KiB writes, until the server stops
                        // taking it.
                        let chunk = vec![b'x'; 64 * 1024];
                        let mut sent = 0;
                        while sent < DECLARED {
                            if write.write_all(&chunk).is_err() {
                                break;
                            }
                            sent += chunk.len();
                        }
                        sent
                    })
                });
                let got = client.read_answer();
                let closed = client.closed_by_server();
                let sent = writer.map_or(0, |writer| writer.join().unwrap());
                (got, sent, closed)
            })
            .await
            .unwrap();
            let got = got.unwrap_or_else(|e| panic!("{way}: {e}"));
            assert_eq!(got.status, 401, "{way}: {}", got.body);
            assert!(
                got.headers
                    .iter()
                    .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close")),
                "{way}: {:?}",
                got.headers
            );
            assert_eq!(got.body, "invalid QStash signature", "{way}");
            assert!(closed, "{way}: the server kept the connection");
            if keeps_writing {
                // The lingering close took the whole body (it is within the bounds) before
                // closing, so no write was reset.
                assert_eq!(sent, DECLARED, "{way}: the server stopped taking the body");
            }
            assert_eq!(calls.get(), 0);
        }
    }
}

/// A keep-alive client (hyper's) after a 413 that left the body unread: the answer says
/// `Connection: close`, the server closes, and the client's next request, on a new
/// connection as the header asks, is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_client_s_next_request_after_a_413_is_answered() {
    for way in ["layer", "extractor"] {
        let calls = Calls::default();
        let addr = serve(app(way, table_receiver(), &calls)).await;
        let big = padded_order(LIMIT + 1);
        let mut conn = Connection::open(addr).await;
        let answer = conn
            .send(
                ROUTE,
                &headers_for(&route_url(), &big, "msg_413"),
                full(big),
            )
            .await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{way}");
        assert_eq!(answer.headers["connection"], "close", "{way}");

        let body = br#"{"order":8}"#;
        let next = || headers_for(&route_url(), body, "msg_after_413");
        let mut conn = Connection::open(addr).await;
        let answer = conn.send(ROUTE, &next(), full(&body[..])).await;
        assert_eq!(answer.status, StatusCode::OK, "{way}: {}", answer.text());
        assert_eq!(answer.text(), "msg_after_413 retried=0 order=8");

        // Over a raw socket, the same: the server closes after the 413 (nothing written after
        // it is silently lost), and the next connection is served.
        let pairs: Vec<(String, Vec<u8>)> = headers_for(&route_url(), b"{}", "msg_413_raw")
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let head = request_head("POST", ROUTE, addr, &pairs, "content-length: 1048576\r\n");
        let (got, closed) = tokio::task::spawn_blocking(move || {
            let mut raw = Client::connect(addr).unwrap();
            raw.write(&head).unwrap();
            let got = raw.read_answer();
            (got, raw.closed_by_server())
        })
        .await
        .unwrap();
        assert_eq!(got.unwrap().status, 413, "{way}");
        assert!(closed, "{way}: the server kept the connection");
        let mut conn = Connection::open(addr).await;
        let answer = conn.send(ROUTE, &next(), full(&body[..])).await;
        assert_eq!(answer.status, StatusCode::OK, "{way}");
        assert_eq!(calls.get(), 2, "{way}");
    }
}

/// After a refusal that read the body (a tampered one), the connection stays open and its
/// next request is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_after_reading_keeps_the_connection() {
    for way in ["layer", "extractor"] {
        let calls = Calls::default();
        let addr = serve(app(way, table_receiver(), &calls)).await;
        let mut conn = Connection::open(addr).await;
        let body = br#"{"order":1}"#;
        let headers = headers_for(&route_url(), body, "msg_keep");
        let answer = conn
            .send(ROUTE, &headers, full(&br#"{"order":2}"#[..]))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{way}");
        assert!(answer.headers.get("connection").is_none(), "{way}");
        let answer = conn.send(ROUTE, &headers, full(&body[..])).await;
        assert_eq!(answer.status, StatusCode::OK, "{way}");
    }
}
