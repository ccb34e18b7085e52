//! Requests per second of the same 1 KiB JSON route with and without the QStash layer, over
//! real HTTP/1.1 on loopback, in one run.
//!
//! Two axum servers in this process: `bare` (`Json<Order>`) and `layered` (`QStashLayer` +
//! `QStash<Order, Layered>`). Clients: `CONNECTIONS` keep-alive hyper connections per server,
//! each sending its share of a batch of `BATCH` requests one after the other; every request
//! carries the same signed headers and body. Criterion measures batches; afterwards an
//! interleaved A/B round (bare, layered, bare, …) prints the medians and their ratio, which
//! is less sensitive to other load on a shared machine than two criterion runs one after the
//! other.
//!
//! `cargo bench -p tower-qstash --bench layer`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use qstash_receiver::{Signer, Verifier};
use qstash_test_cases::{BASE_URL, CURRENT_KEY, Order, padded_order};
use tower_qstash::{Layered, QStash, QStashLayer};

const PATH: &str = "/api/orders";
const CONNECTIONS: usize = 8;
const BATCH: usize = 512;
const AB_ROUNDS: usize = 15;

async fn bare(axum::Json(order): axum::Json<Order>) -> String {
    order.order.to_string()
}

async fn layered(QStash { payload, .. }: QStash<Order, Layered>) -> String {
    payload.order.to_string()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Keep-alive connections to one server, and the request they send.
struct Load {
    senders: Vec<SendRequest<Full<Bytes>>>,
    body: Bytes,
}

impl Load {
    async fn connect(addr: SocketAddr, body: Bytes) -> Self {
        let mut senders = Vec::new();
        for _ in 0..CONNECTIONS {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            senders.push(sender);
        }
        Self { senders, body }
    }

    /// Sends `BATCH` requests with `headers` over all connections; returns the elapsed time.
    async fn batch(&mut self, headers: &HeaderMap) -> Duration {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(CONNECTIONS);
        for mut sender in self.senders.drain(..) {
            let headers = headers.clone();
            let body = self.body.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..BATCH / CONNECTIONS {
                    let mut request = Request::post(PATH)
                        .header("host", "bench")
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .expect("request");
                    request.headers_mut().extend(headers.clone());
                    sender.ready().await.expect("ready");
                    let response = sender.send_request(request).await.expect("response");
                    assert!(response.status().is_success(), "{}", response.status());
                    response.into_body().collect().await.expect("body");
                }
                sender
            }));
        }
        for task in tasks {
            self.senders.push(task.await.expect("client task"));
        }
        start.elapsed()
    }
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    bare: Load,
    layered: Load,
    signer: Signer,
    body: Bytes,
}

impl Setup {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let body = Bytes::from(padded_order(1024));
        let (bare, layered) = runtime.block_on(async {
            let verifier = Verifier::new(qstash_test_cases::keys());
            let bare_addr = serve(Router::new().route(PATH, post(bare))).await;
            let layered_addr = serve(
                Router::new()
                    .route(PATH, post(layered))
                    .layer(QStashLayer::new(verifier)),
            )
            .await;
            (
                Load::connect(bare_addr, body.clone()).await,
                Load::connect(layered_addr, body.clone()).await,
            )
        });
        Self {
            runtime,
            bare,
            layered,
            signer: Signer::new(CURRENT_KEY).expect("key"),
            body,
        }
    }

    /// Headers signed now (tokens live 300 s: sign again for each measurement).
    fn headers(&self) -> HeaderMap {
        let url = format!("{BASE_URL}{PATH}");
        self.signer
            .delivery_headers(&url, &self.body, "msg_bench", 0)
    }

    fn run(&mut self, layered: bool, batches: u64) -> Duration {
        let headers = self.headers();
        let load = if layered {
            &mut self.layered
        } else {
            &mut self.bare
        };
        self.runtime.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..batches {
                total += load.batch(&headers).await;
            }
            total
        })
    }
}

fn http_routes(c: &mut Criterion) {
    let mut setup = Setup::new();
    let mut group = c.benchmark_group("http_1kib_json");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("bare", |b| b.iter_custom(|n| setup.run(false, n)));
    group.bench_function("qstash_layer", |b| b.iter_custom(|n| setup.run(true, n)));
    group.finish();
    // `cargo test --benches` runs each benchmark once, without `--bench`: no A/B then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }

    // Interleaved A/B: the ratio of requests per second, layered / bare.
    let mut rates = [Vec::new(), Vec::new()];
    for _ in 0..AB_ROUNDS {
        for (i, layered) in [false, true].into_iter().enumerate() {
            let elapsed = setup.run(layered, 4);
            rates[i].push(4.0 * BATCH as f64 / elapsed.as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let bare = median(&mut rates[0]);
    let layered = median(&mut rates[1]);
    println!(
        "interleaved A/B ({AB_ROUNDS} rounds of {} requests each): bare {bare:.0} req/s, \
         qstash_layer {layered:.0} req/s, ratio {:.3}",
        4 * BATCH,
        layered / bare
    );
}

criterion_group!(benches, http_routes);
criterion_main!(benches);
