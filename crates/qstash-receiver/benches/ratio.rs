//! Paired measurement of `verify` against the floor, robust to a shared, noisy machine: the
//! candidates run in alternating short batches, so any slowdown hits all of them alike, and
//! the report gives the median time per call of each and the ratio of the medians.
//!
//! `cargo bench -p qstash-receiver --bench ratio`

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: a failed set-up should stop it loudly

use std::hint::black_box;
use std::time::Instant;

mod common;

use common::{CURRENT, JwtVerifier, NEXT, URL};
use hmac::{Hmac, KeyInit, Mac};
use qstash_receiver::{Signer, SigningKeys, Subject, Validation, Verifier};
use sha2::{Digest, Sha256};

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let verifier = Verifier::new(SigningKeys::new(CURRENT, NEXT).unwrap());
    let jwt = JwtVerifier::new();
    let floor_key = Hmac::<Sha256>::new_from_slice(CURRENT.as_bytes()).unwrap();
    println!(
        "| body | floor | verify, current key | ratio | verify, next key | ratio | next - current | jsonwebtoken | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for size in [0usize, 1024, 64 * 1024, 1024 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        // `jsonwebtoken` reads the system clock itself, so the tokens are issued now.
        let now = common::now();
        let current = Signer::new(CURRENT).unwrap().sign_at(URL, &body, now);
        let next = Signer::new(NEXT).unwrap().sign_at(URL, &body, now);
        let signing_input = current[..current.rfind('.').unwrap()].to_owned();
        assert!(
            verifier
                .verify(&current, &body, &Validation::new(Subject::Url(URL)).at(now))
                .is_ok()
        );
        assert!(
            verifier
                .verify(&next, &body, &Validation::new(Subject::Url(URL)).at(now))
                .is_ok()
        );

        let floor = || {
            let digest = Sha256::digest(black_box(&body));
            let mut mac = floor_key.clone();
            mac.update(black_box(signing_input.as_bytes()));
            black_box((digest, mac.finalize().into_bytes()));
        };
        let with_current = || {
            let _ = black_box(verifier.verify(
                black_box(&current),
                black_box(&body),
                &Validation::new(Subject::Url(URL)).at(now),
            ));
        };
        let with_next = || {
            let _ = black_box(verifier.verify(
                black_box(&next),
                black_box(&body),
                &Validation::new(Subject::Url(URL)).at(now),
            ));
        };
        let with_jsonwebtoken = || {
            black_box(jwt.verify(black_box(&current), black_box(&body)));
        };
        assert!(jwt.verify(&current, &body));
        let candidates: [&dyn Fn(); 4] = [&floor, &with_current, &with_next, &with_jsonwebtoken];
        // About 2 ms per batch.
        let batch = (2_000_000 / (size + 1500)).max(2);
        let rounds = 301;
        let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for round in 0..rounds + 10 {
            for (i, run) in candidates.iter().enumerate() {
                let start = Instant::now();
                for _ in 0..batch {
                    run();
                }
                if round >= 10 {
                    samples[i].push(start.elapsed().as_secs_f64() * 1e9 / batch as f64);
                }
            }
        }
        let [f, c, n, j] = samples.map(median);
        let fmt = |ns: f64| {
            if ns >= 10_000.0 {
                format!("{:.1} µs", ns / 1000.0)
            } else {
                format!("{ns:.0} ns")
            }
        };
        println!(
            "| {} | {} | {} | {:.3}x | {} | {:.3}x | {} | {} | {:.2}x |",
            if size >= 1024 {
                format!("{} KiB", size / 1024)
            } else {
                format!("{size} B")
            },
            fmt(f),
            fmt(c),
            c / f,
            fmt(n),
            n / f,
            fmt(n - c),
            fmt(j),
            j / f
        );
    }
}
