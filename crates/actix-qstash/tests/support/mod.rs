//! Shared by the integration tests: the table's configuration and handler, request builders,
//! a real server on loopback, and the comparison of an answer with a case's expectation.

// Test support: panicking on unexpected values is the point.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_qstash::{QStash, QStashConfig, QStashGuard};
use actix_web::dev::{Payload, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::test::TestRequest;
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use qstash_receiver::Verifier;
use qstash_test_cases::{Case, Expect, LIMIT, Order, ROUTE, handled_body, keys};

/// The path part of the table's route.
pub fn route_path() -> &'static str {
    ROUTE.split('?').next().unwrap()
}

/// The configuration every table run uses.
pub fn config() -> QStashConfig {
    QStashConfig::new(Verifier::new(keys())).max_body_bytes(LIMIT)
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

/// A `TestRequest` for `case`, headers in order, without a body.
pub fn test_headers(case: &Case) -> TestRequest {
    let mut req = TestRequest::post().uri(&case.target);
    for (name, value) in &case.headers {
        req = req.append_header((name.as_str(), value.clone()));
    }
    req
}

/// A `TestRequest` for `case`, headers in order; the body is set with its `Content-Length`.
pub fn test_request(case: &Case) -> TestRequest {
    test_headers(case).set_payload(case.body.clone())
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

/// An answer, reduced to what the table compares.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub non_retryable: Option<String>,
    pub body: Bytes,
}

impl Answer {
    pub async fn from_response<B: actix_web::body::MessageBody>(res: ServiceResponse<B>) -> Self {
        let status = res.status().as_u16();
        let non_retryable = res
            .headers()
            .get("upstash-nonretryable-error")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = actix_web::test::read_body(res).await;
        Self {
            status,
            non_retryable,
            body,
        }
    }

    pub fn from_http_response(res: HttpResponse) -> Self {
        let status = res.status().as_u16();
        let non_retryable = res
            .headers()
            .get("upstash-nonretryable-error")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = actix_web::body::MessageBody::try_into_bytes(res.into_body())
            .unwrap_or_else(|_| panic!("error bodies are in memory"));
        Self {
            status,
            non_retryable,
            body,
        }
    }

    pub async fn from_reqwest(res: reqwest::Response) -> Self {
        let status = res.status().as_u16();
        let non_retryable = res
            .headers()
            .get("upstash-nonretryable-error")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.bytes().await.unwrap();
        Self {
            status,
            non_retryable,
            body,
        }
    }
}

/// Panics unless `answer` is what `case` expects. `how` names the path the case went through.
pub fn check(how: &str, case: &Case, answer: &Answer) {
    let name = case.name;
    match &case.expect {
        Expect::Handled(body) => {
            assert_eq!(answer.status, 200, "{how}: {name}: {answer:?}");
            assert_eq!(answer.body, body.as_bytes(), "{how}: {name}");
            assert_eq!(answer.non_retryable, None, "{how}: {name}");
        }
        Expect::Rejected {
            status,
            non_retryable,
        } => {
            assert_eq!(answer.status, *status, "{how}: {name}: {answer:?}");
            assert_eq!(
                answer.non_retryable.as_deref(),
                non_retryable.then_some("true"),
                "{how}: {name}"
            );
            // Short, and says nothing about the token or the body.
            assert!(answer.body.len() < 40, "{how}: {name}: {answer:?}");
            for (header, value) in &case.headers {
                if header == "upstash-signature" && value.len() > 8 {
                    assert!(
                        !contains(&answer.body, value),
                        "{how}: {name}: the answer quotes the token"
                    );
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The table's route through the extractor, with the configuration in `app_data`.
pub fn extractor_app() -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(config())
        .route(route_path(), web::post().to(handle))
}

/// The table's route behind the guard, on a scope; no configuration in `app_data`, so the
/// extractor can only answer by reusing the guard's result.
pub fn guard_app() -> App<
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
            .wrap(QStashGuard::new(config()))
            .route(&format!("/{rest}"), web::post().to(handle)),
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
        let server = HttpServer::new(factory)
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

/// Sends `case` to `server` with reqwest.
pub async fn send(client: &reqwest::Client, server: &Server, case: &Case) -> Answer {
    let mut req = client.post(server.url(&case.target));
    for (name, value) in &case.headers {
        req = req.header(name.as_str(), value.clone());
    }
    let res = req.body(case.body.clone()).send().await.unwrap();
    Answer::from_reqwest(res).await
}

/// A `TestRequest` to `target` with `body`, signed with the table's current key for `url`.
pub fn signed(url: &str, target: &str, body: &[u8]) -> TestRequest {
    signed_with(qstash_test_cases::CURRENT_KEY, url, target, body)
}

/// As [`signed`], with `key`.
pub fn signed_with(key: &str, url: &str, target: &str, body: &[u8]) -> TestRequest {
    let headers = qstash_receiver::Signer::new(key)
        .unwrap()
        .delivery_headers_at(url, body, "msg_test", 1, now());
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

/// One `tracing` event of this crate.
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

/// Runs `fut` on a fresh actix runtime while recording this crate's `tracing` events.
pub fn with_logs<F: std::future::Future>(fut: F) -> (F::Output, Vec<Logged>) {
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span;

    struct Capture(Arc<Mutex<Vec<Logged>>>);
    struct Fields(std::collections::BTreeMap<String, String>);
    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if !event.metadata().target().starts_with("actix_qstash") {
                return;
            }
            let mut fields = Fields(Default::default());
            event.record(&mut fields);
            self.0.lock().unwrap().push(Logged {
                level: *event.metadata().level(),
                fields: fields.0,
            });
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    let logs = Arc::new(Mutex::new(Vec::new()));
    let out = tracing::subscriber::with_default(Capture(logs.clone()), || {
        // Another test's thread, with no subscriber, may have cached a callsite as "never"
        // while this one was being installed: recompute, so that no event is lost here.
        tracing::callsite::rebuild_interest_cache();
        actix_web::rt::System::new().block_on(fut)
    });
    let logs = logs.lock().unwrap().clone();
    (out, logs)
}
