//! What the test binaries share: the apps under test (the layer, the extractor alone), table
//! cases as in-process requests, a raw request head (the table's wire driver,
//! `qstash_test_cases::wire`, sends it), a hyper client, and a server on loopback.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::routing::any;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper_util::rt::TokioIo;
use qstash_receiver::{Receiver, Verifier};
use qstash_test_cases::{Case, Framing, Got, LIMIT, Order, ROUTE_PATH, Transport, handled_body};
use tokio::net::TcpStream;
use tower_qstash::{ConfigSource, Layered, QStash, QStashLayer};

/// A guard against a server that never answers: fails the test instead of hanging it.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(20);

pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// The table's keys and limit on the system clock, defaults otherwise.
pub fn table_receiver() -> Receiver {
    Receiver::new(Verifier::new(qstash_test_cases::keys())).max_body_bytes(LIMIT)
}

/// Counts the handler's calls.
#[derive(Clone, Default)]
pub struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The table's handler: a typed `Order`, answered with `handled_body`.
pub async fn order_handler<K>(
    Extension(calls): Extension<Calls>,
    QStash {
        payload, delivery, ..
    }: QStash<Order, K>,
) -> String {
    calls.0.fetch_add(1, Ordering::SeqCst);
    handled_body(&delivery.message_id, delivery.retried, &payload)
}

/// The table's route (every method) behind the layer, with `QStash<Order, Layered>` and no
/// state.
pub fn layered_app(layer: QStashLayer, calls: &Calls) -> Router {
    Router::new()
        .route(ROUTE_PATH, any(order_handler::<Layered>))
        .layer(layer)
        .layer(Extension(calls.clone()))
}

/// The table's route without the layer: `QStash<Order>` runs the pipeline with the state's
/// receiver.
pub fn extractor_app(receiver: Receiver, calls: &Calls) -> Router {
    Router::new()
        .route(ROUTE_PATH, any(order_handler::<Receiver>))
        .layer(Extension(calls.clone()))
        .with_state(receiver)
}

/// A route with `QStash<Order, K>` and state `state`, behind an optional layer.
pub fn app_with<K, S>(calls: &Calls, layer: Option<QStashLayer>, state: S) -> Router
where
    K: ConfigSource<S> + Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    let router = Router::new().route(ROUTE_PATH, any(order_handler::<K>));
    let router = match layer {
        Some(layer) => router.layer(layer),
        None => router,
    };
    router.layer(Extension(calls.clone())).with_state(state)
}

/// A request body that counts its polls: its chunks, then the end, or, when `stall`, nothing
/// ever again. Its size hint is `exact` when given.
pub struct TestBody {
    chunks: VecDeque<Bytes>,
    stall: bool,
    exact: Option<u64>,
    polls: Arc<AtomicUsize>,
}

impl TestBody {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>, stall: bool, exact: Option<u64>) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
            stall,
            exact,
            polls: Arc::default(),
        }
    }

    /// How often it was polled, from anywhere.
    pub fn polls(&self) -> Arc<AtomicUsize> {
        self.polls.clone()
    }
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        match self.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            // Never woken: a client that sent everything it will send.
            None if self.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.exact
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A table case as an in-process request, framed as a server would hand it on: `Host` for
/// cases that run over sockets too, `Content-Length` and the body's size hint as the framing
/// says. The body's poll counter comes along.
pub fn table_request(case: &Case) -> (Request<Body>, Arc<AtomicUsize>) {
    let chunks: Vec<Bytes> = match case.framing {
        Framing::Chunked => case.body.chunks(1000).map(Bytes::copy_from_slice).collect(),
        _ => vec![Bytes::from(case.body.clone())],
    };
    let stall = matches!(case.framing, Framing::Declared(_) | Framing::Stalled);
    let body = TestBody::new(chunks, stall, case.content_length());
    let polls = body.polls();
    let mut request = Request::builder()
        .method(case.method)
        .uri(case.target.as_str())
        .body(Body::new(body))
        .unwrap();
    let headers = request.headers_mut();
    for (name, value) in &case.headers {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if case.transport == Transport::Any {
        headers.insert(http::header::HOST, "127.0.0.1:8080".parse().unwrap());
    }
    if let Some(len) = case.content_length() {
        headers.insert(http::header::CONTENT_LENGTH, len.into());
    }
    (request, polls)
}

/// An in-process answer as the table compares it.
pub async fn got(response: Response<Body>) -> Got {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: header_pairs(&parts.headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Serves `app` on 127.0.0.1, on a port of the system's choosing.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// The head of an HTTP/1.1 request, with `Host` set to `addr` and the framing headers.
pub fn request_head(
    method: &str,
    target: &str,
    addr: SocketAddr,
    headers: &[(String, Vec<u8>)],
    framing: &str,
) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\n").into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(framing.as_bytes());
    head.extend_from_slice(b"\r\n");
    head
}

/// The request body type of the hyper test client.
pub type ClientBody = BoxBody<Bytes, Infallible>;

/// A body of known length (sent with `Content-Length`).
pub fn full(bytes: impl Into<Bytes>) -> ClientBody {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A body of unknown length, fed through a channel (sent chunked, without `Content-Length`).
pub fn chunked() -> (tokio::sync::mpsc::Sender<Bytes>, ClientBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, ChannelBody(rx).boxed())
}

struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// One keep-alive HTTP/1.1 connection to `addr`, through hyper's client.
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<ClientBody>,
    addr: SocketAddr,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(async move {
            // The connection ends when the test drops the sender, or the server closes it.
            let _ = conn.await;
        });
        Self { sender, addr }
    }

    /// Sends `target` with `headers` and `body`; `Host` is set to the server's address. After
    /// an answer with `Connection: close`, the next request goes on a new connection, as
    /// keep-alive clients do.
    pub async fn send(&mut self, target: &str, headers: &HeaderMap, body: ClientBody) -> Answer {
        let mut request = Request::post(target).body(body).unwrap();
        request.headers_mut().extend(headers.clone());
        request
            .headers_mut()
            .entry(http::header::HOST)
            .or_insert_with(|| self.addr.to_string().parse().unwrap());
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        if parts
            .headers
            .get(http::header::CONNECTION)
            .is_some_and(|v| v == "close")
        {
            *self = Self::open(self.addr).await;
        }
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}
