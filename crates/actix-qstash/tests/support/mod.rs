//! Shared by the integration tests: the table's configuration and handler, request builders,
//! a real server on loopback, and the comparison of an answer with a case's expectation.

// Test support: panicking on unexpected values is the point.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_qstash::{QStash, QStashMiddleware};
use actix_web::dev::{Payload, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::test::TestRequest;
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use qstash_receiver::{Receiver, Verifier};
use qstash_test_cases::{LIMIT, Order, ROUTE, handled_body, keys};

/// The path part of the table's route.
pub fn route_path() -> &'static str {
    ROUTE.split('?').next().unwrap()
}

/// The receiver every table run uses.
pub fn receiver() -> Receiver {
    Receiver::new(Verifier::new(keys())).max_body_bytes(LIMIT)
}

/// The table's handler: a typed `Order`, answered with `handled_body`.
pub async fn handle(
    QStash {
        payload, delivery, ..
    }: QStash<Order>,
) -> HttpResponse {
    HttpResponse::Ok().body(handled_body(
        &delivery.message_id,
        delivery.retried,
        &payload,
    ))
}

/// The current unix time, which the table's tokens are signed at.
pub fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A payload that hands out `body` in chunks of `chunk` bytes.
pub fn chunked_payload(body: &[u8], chunk: usize) -> Payload {
    struct Chunks(VecDeque<Bytes>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Bytes, PayloadError>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.get_mut().0.pop_front().map(Ok))
        }
    }
    let chunks = body
        .chunks(chunk)
        .map(Bytes::copy_from_slice)
        .collect::<VecDeque<_>>();
    let stream: Pin<Box<dyn futures_core::Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(Chunks(chunks));
    Payload::from(stream)
}

/// A payload that fails the test if it is ever polled.
pub fn untouchable() -> Payload {
    struct Untouchable;
    impl futures_core::Stream for Untouchable {
        type Item = Result<Bytes, PayloadError>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            panic!("the body was read");
        }
    }
    let stream: Pin<Box<dyn futures_core::Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(Untouchable);
    Payload::from(stream)
}

/// An answer, reduced to what the table compares.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub non_retryable: Option<String>,
    /// Every header, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

fn header_list(headers: &actix_web::http::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

impl Answer {
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Bytes) -> Self {
        let non_retryable = headers
            .iter()
            .find(|(n, _)| n == "upstash-nonretryable-error")
            .map(|(_, v)| v.clone());
        Self {
            status,
            non_retryable,
            headers,
            body,
        }
    }

    /// The handler's answer, as a table run builds it without a server.
    pub fn handled(body: String) -> Self {
        Self::new(200, Vec::new(), body.into())
    }

    /// The value of header `name`, if present (the first one).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// In process; a head that closes the connection (what actix-http writes on the wire as
    /// `Connection: close`) counts as the header.
    pub async fn from_response<B: actix_web::body::MessageBody>(res: ServiceResponse<B>) -> Self {
        let status = res.status().as_u16();
        let mut headers = header_list(res.headers());
        if res.response().head().connection_type() == actix_web::http::ConnectionType::Close
            && !headers.iter().any(|(n, _)| n == "connection")
        {
            headers.push(("connection".into(), "close".into()));
        }
        let body = actix_web::test::read_body(res).await;
        Self::new(status, headers, body)
    }

    pub fn from_http_response(res: HttpResponse) -> Self {
        let status = res.status().as_u16();
        let mut headers = header_list(res.headers());
        if res.head().connection_type() == actix_web::http::ConnectionType::Close
            && !headers.iter().any(|(n, _)| n == "connection")
        {
            headers.push(("connection".into(), "close".into()));
        }
        let body = actix_web::body::MessageBody::try_into_bytes(res.into_body())
            .unwrap_or_else(|_| panic!("error bodies are in memory"));
        Self::new(status, headers, body)
    }

    pub async fn from_reqwest(res: reqwest::Response) -> Self {
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let body = res.bytes().await.unwrap();
        Self::new(status, headers, body)
    }
}

/// The table's route through the extractor, with the receiver in `app_data`.
pub fn extractor_app() -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    extractor_app_with(receiver())
}

/// [`extractor_app`] with `receiver`, for every method.
pub fn extractor_app_with(
    receiver: Receiver,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(receiver)
        .route(route_path(), web::route().to(handle))
}

/// The table's route behind the middleware, on a scope; no receiver in `app_data`, so the
/// extractor can only answer by reusing the middleware's result.
pub fn middleware_app() -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    middleware_app_with(receiver())
}

/// [`middleware_app`] with `receiver`, for every method.
pub fn middleware_app_with(
    receiver: Receiver,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (scope, rest) = route_path()[1..].split_once('/').unwrap();
    App::new().service(
        web::scope(&format!("/{scope}"))
            .wrap(QStashMiddleware::new(receiver))
            .route(&format!("/{rest}"), web::route().to(handle)),
    )
}

/// A real server on loopback (one worker thread) running the app `factory` builds.
pub struct Server {
    pub addr: SocketAddr,
    handle: ServerHandle,
}

impl Server {
    pub fn start<F, T, B>(factory: F) -> Self
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: actix_web::body::MessageBody + 'static,
    {
        // actix-http's own lingering close lasts the client-disconnect timeout: the core's.
        let server = HttpServer::new(factory)
            .client_disconnect_timeout(qstash_receiver::receive::Linger::MAX_TIME)
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { addr, handle }
    }

    pub fn url(&self, target: &str) -> String {
        format!("http://{}{target}", self.addr)
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// A reqwest client. Installs rustls' `ring` provider first: in a workspace build, reqwest's
/// rustls support is switched on by the CLI's `https` feature without a default provider.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A `TestRequest` to `target` with `body`, signed with the table's current key for `url`.
pub fn signed(url: &str, target: &str, body: &[u8]) -> TestRequest {
    signed_with(qstash_test_cases::CURRENT_KEY, url, target, body)
}

/// As [`signed`], with `key`.
pub fn signed_with(key: &str, url: &str, target: &str, body: &[u8]) -> TestRequest {
    signed_as(key, "msg_test", url, target, body)
}

/// As [`signed_with`], with the message id `id`.
pub fn signed_as(key: &str, id: &str, url: &str, target: &str, body: &[u8]) -> TestRequest {
    let headers = qstash_receiver::Signer::new(key)
        .unwrap()
        .delivery_headers_at(url, body, id, 1, now());
    let mut req = TestRequest::post().uri(target);
    for (name, value) in &headers {
        req = req.append_header((name.as_str(), value.as_bytes()));
    }
    req.set_payload(body.to_vec())
}

/// The table's URL for its route.
pub fn route_url() -> String {
    format!("{}{ROUTE}", qstash_test_cases::BASE_URL)
}

/// One `tracing` event of the core's pipeline (target `qstash_receiver`).
#[derive(Debug, Clone)]
pub struct Logged {
    pub level: tracing::Level,
    pub fields: std::collections::BTreeMap<String, String>,
}

impl Logged {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Runs `fut` on a fresh actix runtime and returns, with its output, the core's log events
/// for the message id `id` (unique to the caller: the capture is process-wide, and other
/// tests run meanwhile).
pub fn with_logs<F: std::future::Future>(id: &str, fut: F) -> (F::Output, Vec<Logged>) {
    let capture = qstash_test_cases::LogCapture::global();
    let out = actix_web::rt::System::new().block_on(fut);
    let logs = capture
        .take(id)
        .into_iter()
        .map(|e| Logged {
            level: match e.level {
                qstash_receiver::receive::LogLevel::Debug => tracing::Level::DEBUG,
                qstash_receiver::receive::LogLevel::Warn => tracing::Level::WARN,
                _ => tracing::Level::ERROR,
            },
            fields: e.fields,
        })
        .collect();
    (out, logs)
}
