//! The Vercel recipe, run: an axum `Router` with `Router::layer(QStashLayer)`, adapted by
//! `vercel_runtime`'s `VercelLayer` and served by `vercel_runtime::run` itself (its local
//! mode: plain HTTP on `127.0.0.1:$VERCEL_DEV_PORT`, no IPC socket), in a child process of
//! this test binary. Deliveries are sent to it over loopback and every answer is checked.
//!
//! What the runtime changes: it reads the whole body before the router runs, so the layer's
//! body limit still answers 413, but only after the bytes were buffered, and its body
//! timeout never fires (the platform's own request limits apply instead).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use axum::Router;
use axum::routing::post;
use qstash_receiver::{Receiver, Signer, SigningKeys, Verifier};
use tower_qstash::{Layered, QStash, QStashLayer};

const CURRENT: &str = "sig_vercel_current";
const CHILD: &str = "QSTASH_VERCEL_TEST_CHILD";
const TEST: &str = "vercel_runtime_serves_a_router_with_the_layer";
const LIMIT: usize = 1024;

#[derive(serde::Deserialize)]
struct Order {
    order: u32,
}

async fn webhook(
    QStash {
        payload, delivery, ..
    }: QStash<Order, Layered>,
) -> String {
    format!("order {} from {}", payload.order, delivery.message_id)
}

/// The recipe.
fn app() -> Router {
    let config = Receiver::new(Verifier::new(
        SigningKeys::new(CURRENT, "sig_vercel_next").unwrap(),
    ))
    .max_body_bytes(LIMIT);
    Router::new()
        .route("/api/webhook", post(webhook))
        // Inside the Router: `VercelLayer` wants a service answering axum's own body type.
        .layer(QStashLayer::new(config))
}

fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let service = tower::ServiceBuilder::new()
            .layer(vercel_runtime::axum::VercelLayer::new())
            .service(app());
        vercel_runtime::run(service).await.unwrap();
    });
}

/// The function process, killed when the test ends however it ends.
struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on its own connection; the status line and the body.
fn send(port: u16, path: &str, headers: &http::HeaderMap, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: my-app.vercel.app\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    (status, body.to_owned())
}

fn signed(url: &str, body: &[u8]) -> http::HeaderMap {
    Signer::new(CURRENT)
        .unwrap()
        .delivery_headers(url, body, "msg_v", 0)
}

#[test]
fn vercel_runtime_serves_a_router_with_the_layer() {
    if std::env::var_os(CHILD).is_some() {
        serve();
        return;
    }
    // A free loopback port for the runtime, which takes it from `VERCEL_DEV_PORT`.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture"])
        .env(CHILD, "1")
        .env("VERCEL_DEV_PORT", port.to_string())
        .env_remove("VERCEL_IPC_PATH")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _function = Function(child);
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(&format!("Dev server listening: {port}")));
    assert!(ready, "vercel_runtime did not start");

    let url = "https://my-app.vercel.app/api/webhook?v=1";
    let body = br#"{"order":42}"#;
    assert_eq!(
        send(port, "/api/webhook?v=1", &signed(url, body), body),
        (200, "order 42 from msg_v".to_owned())
    );
    // The subject check: a token for another query.
    let other = signed("https://my-app.vercel.app/api/webhook?v=2", body);
    assert_eq!(
        send(port, "/api/webhook?v=1", &other, body),
        (401, "invalid QStash signature".to_owned())
    );
    // Unsigned.
    assert_eq!(
        send(port, "/api/webhook?v=1", &http::HeaderMap::new(), body),
        (401, "invalid QStash signature".to_owned())
    );
    // Over the limit: still 413, though the runtime had read it all by then.
    let big = vec![b' '; LIMIT + 1];
    assert_eq!(
        send(port, "/api/webhook?v=1", &signed(url, &big), &big).0,
        413
    );
}
