//! The `lambda_receiver` example under cargo-lambda's own emulator, the loop a user runs:
//! `cargo lambda watch --example lambda_receiver` serves the function's URL at
//! `http://127.0.0.1:{port}/lambda-url/_/…` (`_`: the default function; cargo lambda names only
//! binaries) and hands the function a Function URL event whose `rawPath` lacks that prefix.
//! Deliveries are signed for the URL they were sent to, as QStash and `qstash-receiver dev`
//! sign them.
//!
//! Without a setting the subject check refuses them (401 `subject_mismatch`); with
//! `QSTASH_PUBLIC_BASE_URL` set to the prefix they are accepted, and every answer is checked.
//!
//! Needs `cargo-lambda` on `PATH` (`pip install cargo-lambda`, or `scripts/cargo-lambda.sh`).
//! Without it the test says it skipped, or fails when `CI` is set.

#![allow(clippy::unwrap_used)]

mod lambda_support;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lambda_support::build_example;
use qstash_receiver::{Signer, headers::NON_RETRYABLE_HEADER};
use qstash_test_cases::Got;
use serde_json::{Value, json};

const CURRENT: &str = "sig_cargo_lambda_current";
const NEXT: &str = "sig_cargo_lambda_next";

/// cargo-lambda (and the function it runs), killed when the test ends however it ends.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        // cargo-lambda ends the function it started when it is interrupted.
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cargo_lambda() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("cargo-lambda"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cargo lambda watch --example lambda_receiver` on `port`, with `base_url` as
/// `QSTASH_PUBLIC_BASE_URL` when given; the log goes to `log`.
fn watch(tool: &PathBuf, port: u16, base_url: Option<&str>, log: &PathBuf) -> Watch {
    let mut command = Command::new(tool);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "lambda",
            "watch",
            "--example",
            "lambda_receiver",
            "--ignore-changes",
        ])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .args([
            "--env-var",
            &format!("QSTASH_CURRENT_SIGNING_KEY={CURRENT}"),
        ])
        .args(["--env-var", &format!("QSTASH_NEXT_SIGNING_KEY={NEXT}")])
        .env_remove("QSTASH_DEV")
        .env_remove("QSTASH_REGION")
        .env_remove("QSTASH_PUBLIC_BASE_URL")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    if let Some(base) = base_url {
        command.args(["--env-var", &format!("QSTASH_PUBLIC_BASE_URL={base}")]);
    }
    let watch = Watch(command.spawn().unwrap());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "cargo lambda watch did not listen on {addr} within 60 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    watch
}

/// POSTs `body` to `url` (on `addr`), signed for `signed_for`.
fn post(addr: SocketAddr, url: &str, signed_for: &str, body: &[u8], message_id: &str) -> Got {
    let headers = Signer::new(CURRENT)
        .unwrap()
        .delivery_headers(signed_for, body, message_id, 0);
    let target = url.strip_prefix(&format!("http://{addr}")).unwrap();
    let mut wire = format!(
        "POST {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in &headers {
        wire.extend_from_slice(format!("{name}: ").as_bytes());
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    wire.extend_from_slice(body);
    qstash_test_cases::wire::exchange(addr, &wire).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn header<'a>(got: &'a Got, name: &str) -> Option<&'a str> {
    got.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_example_under_cargo_lambda_watch_with_and_without_the_base_url() {
    let Some(tool) = cargo_lambda() else {
        let why = "cargo-lambda is not on PATH: `pip install cargo-lambda` (PyPI)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: cargo-lambda not installed ({why})");
        return;
    };
    // cargo lambda builds the example itself (with the same cargo and target directory): this
    // makes that build a no-op, so the first invocation is not a compile.
    build_example();
    let log = std::env::temp_dir().join(format!("cargo-lambda-watch-{}.log", std::process::id()));

    // Without the setting: the URL QStash signed has `/lambda-url/_`, the event's path has not.
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let base = format!("http://{addr}/lambda-url/_");
    let webhook = format!("{base}/api/webhook?source=loop");
    {
        let _watch = watch(&tool, port, None, &log);
        let got = post(addr, &webhook, &webhook, br#"{"order":42}"#, "msg_loop_0");
        assert_eq!(got.status, 401, "{got:?}; see {}", log.display());
        assert_eq!(got.body, "invalid QStash signature");
    }

    // With it: accepted, and every answer is the example's.
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let base = format!("http://{addr}/lambda-url/_");
    let webhook = format!("{base}/api/webhook?source=loop");
    let callback = format!("{base}/api/callback");
    let _watch = watch(&tool, port, Some(&base), &log);

    let got = post(addr, &webhook, &webhook, br#"{"order":42}"#, "msg_loop_1");
    assert_eq!(got.status, 200, "{got:?}; see {}", log.display());
    assert_eq!(header(&got, "content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&got.body).unwrap(),
        json!({"message_id": "msg_loop_1", "retried": 0, "payload": {"order": 42}})
    );

    let got = post(addr, &webhook, &webhook, br#"{"order":0}"#, "msg_loop_2");
    assert_eq!(got.status, 489, "{got:?}");
    assert_eq!(header(&got, NON_RETRYABLE_HEADER), Some("true"));
    assert_eq!(got.body, "order 0 does not exist");

    let summary = json!({
        "status": 200, "body": "b2s=", "retried": 1, "maxRetries": 3,
        "sourceMessageId": "msg_loop_1", "url": webhook, "method": "POST",
    })
    .to_string();
    let got = post(addr, &callback, &callback, summary.as_bytes(), "msg_loop_3");
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(
        got.body,
        "success: message msg_loop_1 answered 200 (retried 1 of 3): ok"
    );

    // The prefix is compared, not skipped: a token for the path alone, for another function,
    // or for another query is refused.
    for (n, signed_for) in [
        format!("http://{addr}/api/webhook?source=loop"),
        format!("http://{addr}/lambda-url/other/api/webhook?source=loop"),
        format!("{base}/api/webhook?source=other"),
    ]
    .iter()
    .enumerate()
    {
        let got = post(
            addr,
            &webhook,
            signed_for,
            br#"{"order":42}"#,
            &format!("msg_loop_x{n}"),
        );
        assert_eq!(got.status, 401, "signed for {signed_for}: {got:?}");
    }
}
