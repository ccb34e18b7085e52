//! The crates.io crate `qstash-rs` (`Receiver::verify`) over the shared cases, and its time
//! for one verification of the 1 KiB bench token.
//!
//!   qstash-rs-bench check --cases FILE --out FILE [--only-now T]
//!   qstash-rs-bench time --bench FILE --out FILE [--millis N]
//!
//! Clock: `qstash-rs` reads the system clock (through `jsonwebtoken`) and takes no injected
//! time. run.sh runs `check` once per distinct instant under a frozen `faketime` clock set to
//! `T`, with `--only-now T`; this program refuses to give a verdict (`n/a`) when the clock it sees is
//! not `T`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use qstash_rs::{Receiver, ReceiverConfig, VerifyRequest};
use serde::{Deserialize, Serialize};

const NAME: &str = "qstash-rs 0.6.0 (crates.io)";

#[derive(Deserialize)]
struct Case {
    name: String,
    token: String,
    body_b64: String,
    url: Option<String>,
    current_key: String,
    next_key: String,
    now: i64,
    tolerance_secs: u64,
}

#[derive(Deserialize)]
struct BenchToken {
    /// QStash's claims without `"aud":""`: qstash-rs refuses every token with an `aud` claim
    /// (see BENCHMARKS.md), so it is timed on this one, otherwise the same.
    token_no_aud: String,
    body_b64: String,
    url: String,
    current_key: String,
    next_key: String,
}

#[derive(Serialize)]
struct Verdict {
    name: String,
    verdict: String,
    detail: String,
}

fn receiver(current: &str, next: &str) -> Receiver {
    Receiver::new(ReceiverConfig {
        current_signing_key: current.to_owned(),
        next_signing_key: next.to_owned(),
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opts: BTreeMap<&str, &str> = args[2.min(args.len())..]
        .chunks(2)
        .filter_map(|p| match p {
            [k, v] => Some((k.trim_start_matches("--"), v.as_str())),
            _ => None,
        })
        .collect();
    let opt = |name: &str| {
        opts.get(name)
            .copied()
            .unwrap_or_else(|| panic!("missing --{name}"))
    };
    match args.get(1).map(String::as_str) {
        Some("check") => {
            let cases: Vec<Case> =
                serde_json::from_str(&std::fs::read_to_string(opt("cases")).expect("cases"))
                    .expect("case file parses");
            let only_now: Option<i64> =
                opts.get("only-now").map(|t| t.parse().expect("--only-now"));
            let mut results = Vec::new();
            for case in cases.iter().filter(|c| only_now.is_none_or(|t| c.now == t)) {
                let seen = unix_now();
                let (verdict, detail) = if only_now.is_some() && seen != case.now {
                    (
                        "n/a".to_owned(),
                        format!("no clock injection (faketime ineffective: clock reads {seen})"),
                    )
                } else {
                    let body = STANDARD.decode(&case.body_b64).expect("body");
                    let result =
                        receiver(&case.current_key, &case.next_key).verify(VerifyRequest {
                            signature: &case.token,
                            body: &body,
                            url: case.url.as_deref(),
                            clock_tolerance_seconds: case.tolerance_secs,
                        });
                    match result {
                        Ok(()) => ("ok".to_owned(), String::new()),
                        Err(e) => (
                            "reject".to_owned(),
                            e.to_string().chars().take(160).collect(),
                        ),
                    }
                };
                results.push(Verdict {
                    name: case.name.clone(),
                    verdict,
                    detail,
                });
            }
            let out = serde_json::json!({
                "implementation": NAME,
                "clock": if only_now.is_some() { "faketime (frozen clock, LD_PRELOAD)" } else { "system" },
                "results": results,
            });
            std::fs::write(
                opt("out"),
                serde_json::to_string_pretty(&out).expect("json") + "\n",
            )
            .expect("write");
        }
        Some("time") => {
            let b: BenchToken =
                serde_json::from_str(&std::fs::read_to_string(opt("bench")).expect("bench"))
                    .expect("bench file parses");
            let body = STANDARD.decode(&b.body_b64).expect("body");
            let r = receiver(&b.current_key, &b.next_key);
            let request = || VerifyRequest {
                signature: black_box(&b.token_no_aud),
                body: black_box(&body),
                url: Some(&b.url),
                clock_tolerance_seconds: 0,
            };
            r.verify(request())
                .expect("the bench token (without aud) verifies");
            let millis: u64 = opts
                .get("millis")
                .map_or(3000, |m| m.parse().expect("--millis"));
            let start = Instant::now();
            let mut warm = 0usize;
            while start.elapsed() < Duration::from_millis(300) {
                black_box(r.verify(request()).is_ok());
                warm += 1;
            }
            let per_call = start.elapsed().as_secs_f64() / warm as f64;
            let batch = ((0.002 / per_call) as usize).max(1);
            let mut samples = Vec::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(millis) || samples.len() < 51 {
                let t = Instant::now();
                for _ in 0..batch {
                    black_box(r.verify(request()).is_ok());
                }
                samples.push(t.elapsed().as_nanos() as f64 / batch as f64);
            }
            samples.sort_by(f64::total_cmp);
            let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
            let out = serde_json::json!({
                "implementation": NAME,
                "median_ns": at(0.5), "p10_ns": at(0.1), "p90_ns": at(0.9),
                "batches": samples.len(), "batch_size": batch, "iterations": samples.len() * batch,
            });
            std::fs::write(
                opt("out"),
                serde_json::to_string_pretty(&out).expect("json") + "\n",
            )
            .expect("write");
        }
        _ => {
            eprintln!("usage: qstash-rs-bench check|time --opt value ...");
            std::process::exit(2);
        }
    }
}
