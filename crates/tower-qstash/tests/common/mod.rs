//! What the test binaries share: the apps under test (the layer, the extractor alone), table
//! cases as in-process requests, a raw HTTP/1.1 client over a real socket, a hyper client,
//! and a server on loopback.
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
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
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

/// A raw HTTP/1.1 client on one TCP connection: writes exactly the bytes a case asks for and
/// reads answers one at a time, so that keep-alive and `Connection: close` are seen as they
/// are.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pub addr: SocketAddr,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
            addr,
        }
    }

    /// Writes a table case: its head, and its body as its framing says (for `Declared` and
    /// `Stalled`, the body and then nothing).
    pub async fn write_case(&mut self, case: &Case) -> std::io::Result<()> {
        let framing = match case.content_length() {
            Some(len) => format!("content-length: {len}\r\n"),
            None => "transfer-encoding: chunked\r\n".to_owned(),
        };
        let head = request_head(
            case.method,
            &case.target,
            self.addr,
            &case.headers,
            &framing,
        );
        self.stream.write_all(&head).await?;
        if case.framing == Framing::Chunked {
            for chunk in case.body.chunks(1000) {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(chunk);
                framed.extend_from_slice(b"\r\n");
                self.stream.write_all(&framed).await?;
            }
            self.stream.write_all(b"0\r\n\r\n").await?;
        } else {
            self.stream.write_all(&case.body).await?;
        }
        self.stream.flush().await
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one whole answer (`Content-Length` or chunked).
    pub async fn read_answer(&mut self) -> Result<Got, String> {
        let end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at;
            }
            match self.fill().await {
                Ok(0) => return Err(format!("EOF before the answer's head: {:?}", self.text())),
                Ok(_) => {}
                Err(e) => return Err(format!("{e} before the answer's head: {:?}", self.text())),
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if let Some(len) = header("content-length") {
            let len: usize = len.parse().map_err(|_| format!("bad length {len:?}"))?;
            while self.buf.len() < len {
                match self.fill().await {
                    Ok(0) => return Err("EOF in the answer's body".into()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("{e} in the answer's body")),
                }
            }
            self.buf.drain(..len).collect::<Vec<_>>()
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked().await?
        } else {
            Vec::new()
        };
        Ok(Got {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.buf, b"\r\n") {
                    break at;
                }
                if self.fill().await.map_err(|e| e.to_string())? == 0 {
                    return Err("EOF in a chunked answer".into());
                }
            };
            let size = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                if self.fill().await.map_err(|e| e.to_string())? == 0 {
                    return Err("EOF in a chunk".into());
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }

    /// Whether the server closes the connection (EOF or reset) within a few seconds, with
    /// nothing more to read.
    pub async fn closed_by_server(&mut self) -> bool {
        let read = tokio::time::timeout(Duration::from_secs(5), self.fill()).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
