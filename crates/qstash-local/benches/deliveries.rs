//! Deliveries per second from the engine (system clock) to a trivial receiver on loopback:
//! each delivery signed, sent over HTTP/1.1 keep-alive, answered 200, recorded.
//!
//! `cargo bench -p qstash-local --bench deliveries` prints each run and the median.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use qstash_local::{Clock, Config, Engine, Publish};

const MESSAGES: usize = 20_000;
const RUNS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(|| async { "ok" });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut rates = Vec::with_capacity(RUNS);
        for run in 1..=RUNS {
            let engine = Engine::new(Config::new(), Clock::system()).unwrap();
            let driver = tokio::spawn(engine.clone().run());
            let started = Instant::now();
            for n in 0..MESSAGES {
                let body = format!(r#"{{"order":{n}}}"#);
                engine.publish(Publish::new(url.clone(), body)).unwrap();
            }
            engine.settled().await;
            let elapsed = started.elapsed();
            driver.abort();
            let attempts = engine.attempts();
            assert!(
                attempts
                    .iter()
                    .all(|a| a.answer.as_ref().is_ok_and(|a| a.status == 200))
            );
            let rate = MESSAGES as f64 / elapsed.as_secs_f64();
            println!("run {run}: {MESSAGES} deliveries in {elapsed:.2?}: {rate:.0}/s");
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "median: {:.0} deliveries/s ({} runs of {MESSAGES}, publish included)",
            rates[RUNS / 2],
            RUNS
        );
    });
}
