//! `verify` beside the floor (SHA-256 of the body plus one HMAC over the signing input with a
//! pre-keyed state) and beside a `jsonwebtoken`-based verifier doing the same checks.
//!
//! `cargo bench -p qstash-receiver --bench verify`

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: a failed set-up should stop it loudly

use std::hint::black_box;
use std::time::Duration;

mod common;

use common::{CURRENT, JwtVerifier, NEXT, URL, now};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use qstash_receiver::{Signer, SigningKeys, Subject, Validation, Verifier};
use sha2::{Digest, Sha256};

fn bench(c: &mut Criterion) {
    let verifier = Verifier::new(SigningKeys::new(CURRENT, NEXT).unwrap());
    let jwt = JwtVerifier::new();
    let floor_key = Hmac::<Sha256>::new_from_slice(CURRENT.as_bytes()).unwrap();
    let issued = now() - 5;
    let at = issued + 5;

    let mut group = c.benchmark_group("verify");
    for size in [0usize, 1024, 64 * 1024, 1024 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let current = Signer::new(CURRENT).unwrap().sign_at(URL, &body, issued);
        let next = Signer::new(NEXT).unwrap().sign_at(URL, &body, issued);
        let signing_input = &current[..current.rfind('.').unwrap()];
        assert!(
            verifier
                .verify(&current, &body, &Validation::new(Subject::Url(URL)).at(at))
                .is_ok()
        );
        assert!(
            verifier
                .verify(&next, &body, &Validation::new(Subject::Url(URL)).at(at))
                .is_ok()
        );
        assert!(jwt.verify(&current, &body) && jwt.verify(&next, &body));

        group.throughput(Throughput::Bytes(size as u64));
        if size >= 64 * 1024 {
            group
                .sample_size(30)
                .measurement_time(Duration::from_secs(4));
        } else {
            group
                .sample_size(100)
                .measurement_time(Duration::from_secs(3));
        }
        group.bench_with_input(BenchmarkId::new("floor", size), &body, |b, body| {
            b.iter(|| {
                let digest = Sha256::digest(black_box(body));
                let mut mac = floor_key.clone();
                mac.update(black_box(signing_input.as_bytes()));
                (digest, mac.finalize().into_bytes())
            });
        });
        group.bench_with_input(BenchmarkId::new("current_key", size), &body, |b, body| {
            b.iter(|| {
                verifier.verify(
                    black_box(&current),
                    black_box(body),
                    &Validation::new(Subject::Url(URL)).at(at),
                )
            });
        });
        group.bench_with_input(BenchmarkId::new("next_key", size), &body, |b, body| {
            b.iter(|| {
                verifier.verify(
                    black_box(&next),
                    black_box(body),
                    &Validation::new(Subject::Url(URL)).at(at),
                )
            });
        });
        group.bench_with_input(BenchmarkId::new("jsonwebtoken", size), &body, |b, body| {
            b.iter(|| jwt.verify(black_box(&current), black_box(body)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
