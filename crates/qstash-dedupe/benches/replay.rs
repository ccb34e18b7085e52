//! What the replay guard (on by default) costs per delivery: `begin` + `finish` on the memory
//! store with the guard on and off, side by side in one run.
#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::StatusCode;
use qstash_dedupe::{Decision, Deduplicator, MemoryStore};
use qstash_receiver::{Claims, Delivery, Signer, SigningKeys, Subject, Validation, Verifier};

const KEY: &str = "sig_benchcurrent";
const URL: &str = "https://app.example.com/api/hook";
const NOW: i64 = 1_800_000_000;

/// The memory store's futures are ready at once: poll them without a runtime.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

/// A fresh delivery: a new message id and a new token id, as every QStash attempt has.
fn delivery(signer: &Signer, verifier: &Verifier, n: u64) -> (Delivery, Claims) {
    let token = signer.sign_with_id(URL, b"{}", NOW, &format!("jwt_{n}"));
    let claims = verifier
        .verify(
            &token,
            b"{}",
            &Validation::new(Subject::PathAndQuery("/api/hook")).at(NOW),
        )
        .unwrap();
    let headers = signer.delivery_headers(URL, b"{}", &format!("msg_{n}"), 0);
    (Delivery::from_headers(&headers).unwrap(), claims)
}

fn begin_finish(c: &mut Criterion) {
    let signer = Signer::new(KEY).unwrap();
    let verifier = Verifier::new(SigningKeys::new(KEY, "sig_benchnext").unwrap());
    let mut group = c.benchmark_group("dedupe begin+finish");
    for (name, guard) in [
        ("replay guard off", false),
        ("replay guard on (default)", true),
    ] {
        // Capacity for every iteration criterion may run, so no eviction is measured.
        let dedupe = Deduplicator::new(MemoryStore::with_capacity(4_000_000)).replay_guard(guard);
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    delivery(&signer, &verifier, n)
                },
                |(delivery, claims)| {
                    let Decision::Run(attempt) =
                        ready(dedupe.begin(Some(&delivery), Some(&claims)))
                    else {
                        panic!("a fresh delivery runs");
                    };
                    ready(dedupe.finish(black_box(attempt), StatusCode::OK));
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, begin_finish);
criterion_main!(benches);
