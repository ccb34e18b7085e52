//! A scripted receiver on a free loopback port that records what reaches it.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use qstash_local::LocalQStash;
use qstash_receiver::{SigningKeys, Subject, Validation, Verifier, headers};

/// 2026-01-01T00:00:00Z, a Thursday, on a whole hour: cron times are easy to read from it.
pub const START_MS: u64 = 1_767_225_600_000;

pub type Scripted = (u16, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub method: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    script: Arc<Mutex<HashMap<String, VecDeque<Scripted>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    barrier: Arc<Mutex<Option<Arc<tokio::sync::Barrier>>>>,
    pub addr: Option<SocketAddr>,
}

impl Receiver {
    pub async fn start() -> Self {
        let mut receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.addr = Some(listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.unwrap())
    }

    /// Answers for `path`, in order; 200 `ok` once they run out.
    pub fn script(&self, path: &str, answers: Vec<Scripted>) {
        self.script
            .lock()
            .unwrap()
            .insert(path.to_owned(), answers.into());
    }

    /// Requests to paths starting with `/wait` meet at a barrier of `n` before answering.
    pub fn barrier(&self, n: usize) {
        *self.barrier.lock().unwrap() = Some(Arc::new(tokio::sync::Barrier::new(n)));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn record(State(receiver): State<Receiver>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 2 << 20).await.unwrap();
    let path = parts.uri.path().to_owned();
    receiver.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        method: parts.method.to_string(),
        headers: parts.headers,
        body: body.to_vec(),
    });
    let now = receiver.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    receiver.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if path.starts_with("/wait") {
        let barrier = receiver.barrier.lock().unwrap().clone();
        if let Some(barrier) = barrier {
            // A safety net so a broken engine fails the test instead of hanging it.
            let _ = tokio::time::timeout(Duration::from_secs(10), barrier.wait()).await;
        }
    }
    receiver.in_flight.fetch_sub(1, Ordering::SeqCst);
    let scripted = receiver
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let (status, headers, text) = scripted.unwrap_or((200, Vec::new(), "ok"));
    let mut response = text.into_response();
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

pub async fn qstash() -> LocalQStash {
    LocalQStash::builder()
        .manual_clock(START_MS)
        .start()
        .await
        .unwrap()
}

/// Checks a delivery's token with the core verifier (dev keys) for `url`.
pub fn assert_signed_for(seen: &Seen, url: &str) {
    let token = headers::signature(&seen.headers).unwrap_or_else(|e| panic!("{url}: {e}"));
    let validation = Validation::new(Subject::Url(url)).in_region(headers::region(&seen.headers));
    Verifier::new(SigningKeys::dev())
        .verify(token, &seen.body, &validation)
        .unwrap_or_else(|e| panic!("{url}: {e}"));
}

pub fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

/// An HTTP client of the local QStash's API with the dev token.
pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(qstash: &LocalQStash) -> Self {
        Self {
            base: qstash.url(),
            token: qstash.token().to_owned(),
            client: reqwest::Client::new(),
        }
    }

    pub fn request(&self, method: http::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
        (status, value)
    }
}
