//! What the test binaries share: the apps under test, requests from table cases, answer
//! checks, a real server on loopback and an HTTP/1.1 client over hyper.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper_util::rt::TokioIo;
use qstash_receiver::{NON_RETRYABLE_HEADER, Verifier};
use qstash_test_cases::{Case, Expect, LIMIT, Order, handled_body};
use tower_qstash::{ConfigSource, QStash, QStashConfig, QStashLayer};

/// The path of the table's route, without its query.
pub const ROUTE_PATH: &str = "/api/webhook";

pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

pub fn table_verifier() -> Verifier {
    Verifier::new(qstash_test_cases::keys())
}

/// The table's configuration: its keys and limit, defaults otherwise.
pub fn table_config() -> QStashConfig {
    QStashConfig::new(table_verifier()).max_body_bytes(LIMIT)
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

/// The table's route behind the layer, with `QStash<Order, Layered>` and no state.
pub fn layered_app(calls: &Calls) -> Router {
    Router::new()
        .route(ROUTE_PATH, post(order_handler::<tower_qstash::Layered>))
        .layer(QStashLayer::new(table_config()))
        .layer(Extension(calls.clone()))
}

/// The table's route without the layer: `QStash<Order>` verifies with the state's config.
pub fn extractor_app(calls: &Calls) -> Router {
    Router::new()
        .route(ROUTE_PATH, post(order_handler::<QStashConfig>))
        .layer(Extension(calls.clone()))
        .with_state(table_config())
}

/// A route with `QStash<Order, K>` and state `state`, behind an optional layer.
pub fn app_with<K, S>(calls: &Calls, layer: Option<QStashLayer>, state: S) -> Router
where
    K: ConfigSource<S> + Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    let router = Router::new().route(ROUTE_PATH, post(order_handler::<K>));
    let router = match layer {
        Some(layer) => router.layer(layer),
        None => router,
    };
    router.layer(Extension(calls.clone())).with_state(state)
}

/// A table case as an axum request.
pub fn request(case: &Case) -> Request<Body> {
    let mut builder = Request::post(case.target.as_str());
    for (name, value) in &case.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    builder.body(Body::from(case.body.clone())).unwrap()
}

/// The short texts each refusal status may carry.
fn texts_for(status: u16) -> &'static [&'static str] {
    match status {
        401 => &["invalid QStash signature"],
        413 => &["payload too large"],
        489 | 422 => &["invalid QStash payload", "invalid QStash delivery headers"],
        _ => &[],
    }
}

/// Asserts that an answer is the one `case` expects.
pub fn check(case: &Case, status: StatusCode, headers: &HeaderMap, body: &[u8]) {
    let body = String::from_utf8_lossy(body);
    let non_retryable = headers
        .get(NON_RETRYABLE_HEADER)
        .is_some_and(|v| v == "true");
    match &case.expect {
        Expect::Handled(text) => {
            assert_eq!(status, StatusCode::OK, "{}: {body}", case.name);
            assert_eq!(body, *text, "{}", case.name);
            assert!(!non_retryable, "{}", case.name);
        }
        Expect::Rejected {
            status: want,
            non_retryable: want_non_retryable,
        } => {
            assert_eq!(status.as_u16(), *want, "{}: {body}", case.name);
            assert_eq!(non_retryable, *want_non_retryable, "{}", case.name);
            assert!(
                texts_for(*want).contains(&body.as_ref()),
                "{}: {body}",
                case.name
            );
        }
    }
}

/// How many cases of the table a handler must see.
pub fn handled_count(cases: &[Case]) -> usize {
    cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Handled(_)))
        .count()
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

/// The request body type of the test client.
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

/// One keep-alive HTTP/1.1 connection to `addr`.
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
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
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

    /// Sends `target` with `headers` and `body`; `Host` is set to the server's address.
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
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Sends a table case.
    pub async fn send_case(&mut self, case: &Case) -> Answer {
        let mut headers = HeaderMap::new();
        for (name, value) in &case.headers {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        self.send(&case.target, &headers, full(case.body.clone()))
            .await
    }
}
