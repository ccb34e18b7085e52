//! The same 1 KiB JSON route bare (`web::Json`, the same JSON work without verification), with
//! the `QStash<T>` extractor, and behind `QStashMiddleware` (then `QStash<T>`), in one run: in
//! process (`actix_web::test`), then over real HTTP (one actix worker on loopback, a reqwest
//! client with `CONNECTIONS` keep-alive connections), then over HTTP again in alternating
//! rounds that print the median requests/s and the ratio to the bare route (robust to load
//! from other processes on a shared machine).

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use actix_qstash::{QStash, QStashMiddleware};
use actix_web::{App, HttpResponse, HttpServer, web};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qstash_receiver::{Receiver, Signer};
use qstash_test_cases::{CURRENT_KEY, Order, keys, padded_order};

const CONNECTIONS: u64 = 8;
const BODY_BYTES: usize = 1024;

async fn bare(order: web::Json<Order>) -> HttpResponse {
    HttpResponse::Ok().body(format!("order={}", order.order))
}

async fn verified(QStash { payload, .. }: QStash<Order>) -> HttpResponse {
    HttpResponse::Ok().body(format!("order={}", payload.order))
}

fn app(
    receiver: Receiver,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(receiver.clone())
        .route("/bare", web::post().to(bare))
        .route("/extractor", web::post().to(verified))
        .service(
            web::scope("/middleware")
                .wrap(QStashMiddleware::new(receiver))
                .route("/hook", web::post().to(verified)),
        )
}

/// Sends `total` requests over `CONNECTIONS` parallel connections; returns the elapsed time.
async fn load(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &bytes::Bytes,
    total: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let n = total / CONNECTIONS + u64::from(i < total % CONNECTIONS);
            let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
            let token = reqwest::header::HeaderValue::from_str(token).expect("token");
            actix_web::rt::spawn(async move {
                for _ in 0..n {
                    let req = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("upstash-message-id", "msg_bench")
                        .header("upstash-signature", token.clone());
                    let res = req.body(body.clone()).send().await.expect("request");
                    assert_eq!(res.status(), 200, "{url}");
                    let _ = res.bytes().await.expect("body");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("load task");
    }
    start.elapsed()
}

fn over_http(c: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let receiver = Receiver::from(keys());
    let server = HttpServer::new(move || app(receiver.clone()))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    system.block_on(async { drop(actix_web::rt::spawn(server)) });

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS as usize)
        .build()
        .expect("client");
    let body = bytes::Bytes::from(padded_order(BODY_BYTES));
    let signer = Signer::new(CURRENT_KEY).expect("key");
    // Signed once with the real clock: valid for 5 minutes, longer than the run.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time");

    let routes: Vec<(&str, String, String)> = [
        ("bare (web::Json)", "/bare"),
        ("QStash<T> extractor", "/extractor"),
        ("QStashMiddleware + QStash<T>", "/middleware/hook"),
    ]
    .into_iter()
    .map(|(name, path)| {
        // Every route gets the same request, signature included: QStash always sends it, the
        // bare route just does not look at it.
        let token = signer.sign_at(&format!("https://bench.example{path}"), &body, now);
        (name, format!("http://{addr}{path}"), token)
    })
    .collect();

    let mut group = c.benchmark_group("1 KiB JSON route over HTTP");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for (name, url, token) in &routes {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| system.block_on(load(&client, url, token, &body, iters)));
        });
    }
    group.finish();
    // Not in `cargo bench -- --test` (a smoke run) or `--list`.
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        interleaved(&system, &client, &routes, &body);
    }
    system.block_on(handle.stop(true));
}

/// The routes again, in alternating rounds, so that load from other processes on a shared
/// machine hits them alike; prints the median requests/s and the median per-round ratio to
/// the bare route.
fn interleaved(
    system: &actix_web::rt::SystemRunner,
    client: &reqwest::Client,
    routes: &[(&str, String, String)],
    body: &bytes::Bytes,
) {
    const ROUNDS: usize = 15;
    const PER_ROUND: u64 = 4000;
    let mut rps = vec![Vec::with_capacity(ROUNDS); routes.len()];
    for round in 0..ROUNDS {
        for i in (0..routes.len()).map(|i| (i + round) % routes.len()) {
            let (_, url, token) = &routes[i];
            let took = system.block_on(load(client, url, token, body, PER_ROUND));
            rps[i].push(PER_ROUND as f64 / took.as_secs_f64());
        }
    }
    println!("interleaved: {ROUNDS} rounds of {PER_ROUND} requests per route, medians");
    for (i, (name, _, _)) in routes.iter().enumerate() {
        let ratios: Vec<f64> = rps[i]
            .iter()
            .zip(&rps[0])
            .map(|(r, bare)| r / bare)
            .collect();
        println!(
            "  {name:<26} {:>8.0} req/s  {:.3}x bare",
            median(rps[i].clone()),
            median(ratios)
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The same routes in process (`actix_web::test`): no sockets and no client, so this is the
/// server's own work per request.
fn in_process(c: &mut Criterion) {
    use actix_web::test::{TestRequest, call_service, init_service, read_body};

    let system = actix_web::rt::System::new();
    let app = system.block_on(init_service(app(Receiver::from(keys()))));
    let body = bytes::Bytes::from(padded_order(BODY_BYTES));
    let signer = Signer::new(CURRENT_KEY).expect("key");
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time");
    let mut group = c.benchmark_group("1 KiB JSON route in process");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, path) in [
        ("bare (web::Json)", "/bare"),
        ("QStash<T> extractor", "/extractor"),
        ("QStashMiddleware + QStash<T>", "/middleware/hook"),
    ] {
        let token = signer.sign_at(&format!("https://bench.example{path}"), &body, now);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let req = TestRequest::post()
                            .uri(path)
                            .insert_header(("content-type", "application/json"))
                            .insert_header(("upstash-message-id", "msg_bench"))
                            .insert_header(("upstash-signature", token.as_str()))
                            .set_payload(body.clone())
                            .to_request();
                        let res = call_service(&app, req).await;
                        assert_eq!(res.status(), 200, "{path}");
                        std::hint::black_box(read_body(res).await);
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, in_process, over_http);
criterion_main!(benches);
