//! The `qstash-receiver` binary, run as a user runs it: `sign` → `verify`, each verify
//! explanation, exit codes, and `send` against a small HTTP server on 127.0.0.1.

#![allow(clippy::unwrap_used)] // test helpers: a failed set-up should fail the test

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use qstash_receiver::dangerous::inspect_unverified;
use qstash_receiver::{
    Callback, SigningKeys, Subject, Validation, Verifier, headers, keys::DEV_CURRENT_SIGNING_KEY,
};

const URL: &str = "https://app.example.com/api/hook?team=1";
const NOW: &str = "1700000000";

/// The binary, with no key variables from the environment it runs in.
fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qstash-receiver"));
    for name in [
        "QSTASH_CURRENT_SIGNING_KEY",
        "QSTASH_NEXT_SIGNING_KEY",
        "QSTASH_DEV",
        "QSTASH_REGION",
    ] {
        command.env_remove(name);
    }
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    (
        status.code().expect("an exit code"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn sign(args: &[&str]) -> String {
    let (code, stdout, stderr) = run(bin().arg("sign").args(args));
    assert_eq!(code, 0, "{stderr}");
    stdout.trim().to_owned()
}

fn verify(token: &str, args: &[&str]) -> (i32, String, String) {
    run(bin().args(["verify", "--signature", token]).args(args))
}

#[test]
fn sign_then_verify_round_trips() {
    let token = sign(&["--url", URL, "--body", r#"{"order":42}"#, "--now", NOW]);
    assert_eq!(token.split('.').count(), 3, "{token}");
    let (code, stdout, stderr) = verify(
        &token,
        &[
            "--url",
            URL,
            "--body",
            r#"{"order":42}"#,
            "--now",
            "1700000100",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("valid: signed with the current key"),
        "{stdout}"
    );
    assert!(stderr.contains("public QStash dev-server keys"), "{stderr}");
    // --path compares the path and query only, as the adapters do.
    let (code, stdout, _) = verify(
        &token,
        &[
            "--path",
            "/api/hook?team=1",
            "--body",
            r#"{"order":42}"#,
            "--now",
            NOW,
        ],
    );
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn a_body_file_signs_the_same_bytes() {
    let dir = std::env::temp_dir().join(format!("qstash-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.bin");
    std::fs::write(&file, b"\x00\xffbinary\n").unwrap();
    let file = file.to_str().unwrap();
    let token = sign(&["--url", URL, "--body-file", file, "--now", NOW]);
    let claims = inspect_unverified(&token).unwrap();
    assert_eq!(
        claims.body_hash.as_deref(),
        Some(qstash_receiver::digest::body_hash(b"\x00\xffbinary\n").as_str())
    );
    let (code, stdout, _) = verify(&token, &["--url", URL, "--body-file", file, "--now", NOW]);
    assert_eq!(code, 0, "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keys_come_from_flags_or_the_environment_and_are_never_printed() {
    let token = sign(&[
        "--url",
        URL,
        "--body",
        "x",
        "--now",
        NOW,
        "--key",
        "sig_secretCurrent",
    ]);
    let (code, stdout, stderr) = run(bin()
        .args([
            "verify",
            "--signature",
            &token,
            "--url",
            URL,
            "--body",
            "x",
            "--now",
            NOW,
        ])
        .env("QSTASH_CURRENT_SIGNING_KEY", "sig_secretCurrent")
        .env("QSTASH_NEXT_SIGNING_KEY", "sig_secretNext"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("$QSTASH_CURRENT_SIGNING_KEY"), "{stdout}");
    assert!(stderr.is_empty(), "no dev-key notice: {stderr}");
    // Signed with the next key from the environment.
    let (code, next_token, _) = run(bin()
        .args(["sign", "--next", "--url", URL, "--body", "x", "--now", NOW])
        .env("QSTASH_NEXT_SIGNING_KEY", "sig_secretNext"));
    assert_eq!(code, 0);
    let (code, stdout, stderr) = verify(
        next_token.trim(),
        &[
            "--url",
            URL,
            "--body",
            "x",
            "--now",
            NOW,
            "--current-key",
            "sig_secretCurrent",
            "--next-key",
            "sig_secretNext",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("signed with the next key") && stdout.contains("next from --next-key"),
        "{stdout}"
    );
    // A failure names where the keys came from, not what they are.
    let (code, stdout, stderr2) = verify(
        &token,
        &[
            "--url",
            URL,
            "--body",
            "x",
            "--now",
            NOW,
            "--current-key",
            "sig_otherA",
            "--next-key",
            "sig_otherB",
        ],
    );
    assert_eq!(code, 1);
    for text in [&stdout, &stderr, &stderr2] {
        for key in ["sig_secret", "sig_other"] {
            assert!(!text.contains(key), "a key was printed: {text}");
        }
    }
}

#[test]
fn verify_explains_an_expired_token() {
    let token = sign(&["--url", URL, "--body", "x", "--now", NOW]);
    let (code, stdout, _) = verify(
        &token,
        &["--url", URL, "--body", "x", "--now", "1700000400"],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.starts_with("invalid: token expired"), "{stdout}");
    assert!(stdout.contains("[expired]"), "{stdout}");
    assert!(
        stdout.contains("signature  ok: matches the current key"),
        "{stdout}"
    );
    assert!(
        stdout.contains("window     FAILED: valid from 1700000000 (nbf) until 1700000300 (exp, exclusive); now 1700000400"),
        "{stdout}"
    );
    assert!(stdout.contains("expired 100 s ago"), "{stdout}");
    // Within a tolerance it is valid.
    let (code, stdout, _) = verify(
        &token,
        &[
            "--url",
            URL,
            "--body",
            "x",
            "--now",
            "1700000400",
            "--tolerance",
            "101",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    // And before its time, not yet valid.
    let (code, stdout, _) = verify(
        &token,
        &["--url", URL, "--body", "x", "--now", "1699999000"],
    );
    assert_eq!(code, 1);
    assert!(stdout.contains("[not_yet_valid]"), "{stdout}");
    assert!(stdout.contains("valid only in 1000 s"), "{stdout}");
}

#[test]
fn verify_explains_a_wrong_subject() {
    let token = sign(&["--url", URL, "--body", "x", "--now", NOW]);
    let behind_proxy = "http://internal:8080/api/hook?team=1";
    let (code, stdout, _) = verify(
        &token,
        &["--url", behind_proxy, "--body", "x", "--now", NOW],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("[subject_mismatch]"), "{stdout}");
    assert!(
        stdout.contains("subject    FAILED (compared as a whole URL)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("expected (token `sub`): {URL}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("actual (request):       {behind_proxy}")),
        "{stdout}"
    );
    assert!(stdout.contains("a proxy or load balancer"), "{stdout}");
    let (code, stdout, _) = verify(
        &token,
        &["--path", "/hook?team=1", "--body", "x", "--now", NOW],
    );
    assert_eq!(code, 1);
    assert!(
        stdout.contains("actual (request):       /hook?team=1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("path prefix (`/api`) was stripped"),
        "{stdout}"
    );
}

#[test]
fn verify_explains_a_wrong_body() {
    let token = sign(&["--url", URL, "--body", r#"{"a":1}"#, "--now", NOW]);
    let (code, stdout, _) = verify(
        &token,
        &["--url", URL, "--body", "{\"a\":1}\n", "--now", NOW],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("[body_hash_mismatch]"), "{stdout}");
    assert!(stdout.contains("body hash  FAILED"), "{stdout}");
    let expected = qstash_receiver::digest::body_hash(br#"{"a":1}"#);
    let actual = qstash_receiver::digest::body_hash(b"{\"a\":1}\n");
    assert!(
        stdout.contains(&format!("expected (token `body`): {expected}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("actual (SHA-256 of the 8 bytes given): {actual}")),
        "{stdout}"
    );
    assert!(stdout.contains("without its trailing newline"), "{stdout}");
}

#[test]
fn verify_explains_a_wrong_key() {
    let token = sign(&[
        "--url",
        URL,
        "--body",
        "x",
        "--now",
        NOW,
        "--key",
        "sig_elsewhere",
    ]);
    let (code, stdout, _) = verify(&token, &["--url", URL, "--body", "x", "--now", NOW]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("[invalid_signature]"), "{stdout}");
    assert!(
        stdout.contains("signature  FAILED: matches neither the current nor the next key")
            && stdout.contains("current from the public dev-server key"),
        "{stdout}"
    );
    assert!(stdout.contains("read without verification"), "{stdout}");
    assert!(
        stdout.contains(&format!("subject    unverified: {URL}")),
        "{stdout}"
    );
    // A dev-server token checked against real keys is recognised.
    let dev = sign(&["--url", URL, "--body", "x", "--now", NOW]);
    let (code, stdout, _) = verify(
        &dev,
        &[
            "--url",
            URL,
            "--body",
            "x",
            "--now",
            NOW,
            "--current-key",
            "sig_a",
            "--next-key",
            "sig_b",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        stdout.contains("matches the public dev-server keys"),
        "{stdout}"
    );
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage"),
        (&["sign", "--url", URL], "--body"),
        (
            &["sign", "--url", URL, "--body", "x", "--body-file", "f"],
            "cannot be used with",
        ),
        (
            &["sign", "--url", "not-a-url", "--body", "x"],
            "not an absolute URL",
        ),
        (
            &["sign", "--url", URL, "--body", "x", "--now", "yesterday"],
            "invalid value 'yesterday'",
        ),
        (
            &["sign", "--url", URL, "--body", "x", "--key", ""],
            "--key is empty",
        ),
        (
            &[
                "sign",
                "--url",
                URL,
                "--body-file",
                "/nonexistent/body.json",
            ],
            "cannot read body file `/nonexistent/body.json`",
        ),
        (
            &["verify", "--signature", "t", "--body", "x"],
            "--url <URL>|--path <PATH>",
        ),
        (
            &["verify", "--signature", "t", "--body", "x", "--path", "api"],
            "neither a request target",
        ),
        (
            &[
                "verify",
                "--signature",
                "t",
                "--body",
                "x",
                "--url",
                URL,
                "--current-key",
                "sig_a",
            ],
            "--next-key",
        ),
        (
            &[
                "verify",
                "--signature",
                "t",
                "--body",
                "x",
                "--url",
                URL,
                "--tolerance",
                "-1",
            ],
            "--tolerance",
        ),
        (
            &["send", "ftp://x/", "--body", "x"],
            "`ftp` is not http or https",
        ),
        (
            &[
                "send",
                "http://127.0.0.1:1/",
                "--body",
                "x",
                "--header",
                "nocolon",
            ],
            "NAME:VALUE",
        ),
        (
            &[
                "send",
                "http://127.0.0.1:1/",
                "--body",
                "x",
                "--delay-scale",
                "-1",
            ],
            "number >= 0",
        ),
        (
            &[
                "send",
                "http://127.0.0.1:1/",
                "--body",
                "x",
                "--retries",
                "1000",
            ],
            "--retries",
        ),
        (
            &[
                "send",
                "http://127.0.0.1:1/",
                "--body",
                "x",
                "--callback",
                "nope",
            ],
            "--callback `nope`",
        ),
        (&["unknown"], "unrecognized subcommand"),
    ];
    for (args, message) in cases {
        let (code, stdout, stderr) = run(bin().args(*args));
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn help_everywhere() {
    for command in [&[][..], &["demo"], &["sign"], &["verify"], &["send"]] {
        let (code, stdout, _) = run(bin().args(command).arg("--help"));
        assert_eq!(code, 0, "{command:?}");
        assert!(
            stdout.contains("Usage: qstash-receiver"),
            "{command:?}: {stdout}"
        );
    }
    let (_, stdout, _) = run(bin().args(["send", "--help"]));
    assert!(stdout.contains("--delay-scale"), "{stdout}");
}

// ---- send, against a recording server on 127.0.0.1 ----

#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A scripted answer: status and headers.
type Scripted = (u16, Vec<(&'static str, &'static str)>);

#[derive(Clone, Default)]
struct Server {
    /// Answers for the destination, in order; 200 once they run out.
    script: Arc<Mutex<VecDeque<Scripted>>>,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    fn start(script: Vec<Scripted>) -> (Self, SocketAddr) {
        let server = Self {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        };
        let state = server.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new().fallback(record).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        (server, rx.recv().unwrap())
    }

    fn seen(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(State(server): State<Server>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path().to_owned();
    server.seen.lock().unwrap().push(Recorded {
        path: path.clone(),
        headers: parts.headers,
        body: body.to_vec(),
    });
    if path.starts_with("/callback") {
        return StatusCode::OK.into_response();
    }
    let (status, headers) = server
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, Vec::new()));
    let mut response = format!("answer {status}").into_response();
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn dev_verifier() -> Verifier {
    Verifier::new(SigningKeys::dev())
}

fn header<'a>(recorded: &'a Recorded, name: &str) -> &'a str {
    recorded.headers[name].to_str().unwrap()
}

/// Checks the delivery's signature with the core verifier, for `url`.
fn assert_signed_for(recorded: &Recorded, url: &str) {
    let token = headers::signature(&recorded.headers).unwrap_or_else(|e| panic!("{url}: {e}"));
    let validation =
        Validation::new(Subject::Url(url)).in_region(headers::region(&recorded.headers));
    dev_verifier()
        .verify(token, &recorded.body, &validation)
        .unwrap_or_else(|e| panic!("{url}: {e}"));
}

#[test]
fn send_delivers_once_on_success() {
    let (server, address) = Server::start(vec![]);
    let url = format!("http://{address}/hook?x=1");
    let (code, stdout, stderr) = run(bin().args([
        "send",
        &url,
        "--body",
        r#"{"order":42}"#,
        "-H",
        "Content-Type: application/json",
        "--header",
        "X-Team:blue",
        "--header",
        "X-Team: green",
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("attempt 1 of 4 (Upstash-Retried: 0): 200 OK: delivered"),
        "{stdout}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let delivery = &seen[0];
    assert_eq!(delivery.path, "/hook");
    assert_eq!(delivery.body, br#"{"order":42}"#);
    assert_eq!(header(delivery, "upstash-retried"), "0");
    assert!(header(delivery, "upstash-message-id").starts_with("msg_"));
    assert_eq!(header(delivery, "user-agent"), "Upstash-QStash");
    assert_eq!(header(delivery, "content-type"), "application/json");
    let teams: Vec<_> = delivery.headers.get_all("x-team").iter().collect();
    assert_eq!(teams, ["blue", "green"]);
    assert_signed_for(delivery, &url);
}

#[test]
fn send_retries_then_succeeds_with_a_fresh_token_each_time() {
    let (server, address) = Server::start(vec![
        (500, vec![]),
        (503, vec![("retry-after", "2")]),
        (200, vec![]),
    ]);
    let url = format!("http://{address}/hook");
    let callback = format!("http://{address}/callback/ok");
    let (code, stdout, stderr) = run(bin().args([
        "send",
        &url,
        "--body",
        "hello",
        "--delay-scale",
        "0.001",
        "--callback",
        &callback,
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "attempt 1 of 4 (Upstash-Retried: 0): 500 Internal Server Error; next retry in 12ms"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("attempt 2 of 4 (Upstash-Retried: 1): 503 Service Unavailable; next retry in 2ms (Retry-After: 2)"), "{stdout}");
    assert!(
        stdout.contains("attempt 3 of 4 (Upstash-Retried: 2): 200 OK: delivered"),
        "{stdout}"
    );
    let seen = server.seen();
    let deliveries: Vec<_> = seen.iter().filter(|r| r.path == "/hook").collect();
    assert_eq!(deliveries.len(), 3);
    let id = header(deliveries[0], "upstash-message-id");
    let mut tokens = Vec::new();
    for (n, delivery) in deliveries.iter().enumerate() {
        assert_eq!(header(delivery, "upstash-retried"), n.to_string());
        assert_eq!(header(delivery, "upstash-message-id"), id);
        assert_signed_for(delivery, &url);
        tokens.push(header(delivery, "upstash-signature"));
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "a fresh token per attempt");
    // The callback reports every attempt, as QStash's does, signed for the callback URL.
    let callbacks: Vec<_> = seen.iter().filter(|r| r.path == "/callback/ok").collect();
    assert_eq!(callbacks.len(), 3);
    let mut statuses: Vec<u16> = callbacks
        .iter()
        .map(|c| Callback::from_slice(&c.body).unwrap().status)
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 500, 503]);
    let delivering = callbacks
        .iter()
        .find(|c| Callback::from_slice(&c.body).unwrap().status == 200)
        .unwrap();
    assert_signed_for(delivering, &callback);
    assert_ne!(header(delivering, "upstash-message-id"), id);
    let body = Callback::from_slice(&delivering.body).unwrap();
    assert_eq!(body.status, 200);
    assert_eq!(body.retried, 2);
    assert_eq!(&body.body[..], b"answer 200");
    assert_eq!(body.source_message_id.as_deref(), Some(id));
}

#[test]
fn send_stops_on_489_and_reports_to_the_failure_callback() {
    let (server, address) = Server::start(vec![(
        489,
        vec![
            ("upstash-nonretryable-error", "true"),
            ("content-type", "text/plain"),
        ],
    )]);
    let url = format!("http://{address}/hook");
    let failure = format!("http://{address}/callback/failed");
    let success = format!("http://{address}/callback/ok");
    let (code, stdout, stderr) = run(bin().args([
        "send",
        &url,
        "--body",
        r#"{"id":"bad"}"#,
        "--header",
        "X-Team: blue",
        "--failure-callback",
        &failure,
        "--callback",
        &success,
    ]));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("with Upstash-NonRetryable-Error: true: not retried"),
        "{stdout}"
    );
    assert!(stdout.contains("failure callback delivered"), "{stdout}");
    let seen = server.seen();
    assert_eq!(
        seen.iter().filter(|r| r.path == "/hook").count(),
        1,
        "no retry after 489"
    );
    // The callback reports the attempt too (one per attempt, as QStash's).
    assert_eq!(seen.iter().filter(|r| r.path == "/callback/ok").count(), 1);
    let callbacks: Vec<_> = seen
        .iter()
        .filter(|r| r.path == "/callback/failed")
        .collect();
    assert_eq!(callbacks.len(), 1);
    let callback = callbacks[0];
    assert_signed_for(callback, &failure);
    assert_eq!(header(callback, "content-type"), "application/json");
    // The documented body, field by field.
    let json: serde_json::Value = serde_json::from_slice(&callback.body).unwrap();
    let message_id = header(&seen[0], "upstash-message-id");
    assert_eq!(json["status"], 489);
    assert_eq!(
        json["header"]["Upstash-Nonretryable-Error"],
        serde_json::json!(["true"])
    );
    assert_eq!(
        json["header"]["Content-Type"],
        serde_json::json!(["text/plain"])
    );
    assert_eq!(
        json["body"],
        base64::engine::general_purpose::STANDARD.encode("answer 489")
    );
    assert_eq!(json["retried"], 0);
    assert_eq!(json["maxRetries"], 3);
    assert_eq!(json["sourceMessageId"], message_id);
    assert_eq!(json["url"], url.as_str());
    assert_eq!(json["method"], "POST");
    assert_eq!(
        json["sourceHeader"],
        serde_json::json!({"X-Team": ["blue"]})
    );
    assert_eq!(
        json["sourceBody"],
        base64::engine::general_purpose::STANDARD.encode(r#"{"id":"bad"}"#)
    );
    assert!(json["createdAt"].as_str().unwrap().parse::<i64>().unwrap() > 1_700_000_000_000);
    assert_eq!(json["notBefore"], json["createdAt"]);
    let parsed = Callback::from_slice(&callback.body).unwrap();
    assert!(!parsed.is_success());
    assert_eq!(&parsed.source_body[..], br#"{"id":"bad"}"#);
}

#[test]
fn send_gives_up_after_the_last_retry() {
    let (server, address) = Server::start(vec![(500, vec![]); 5]);
    let url = format!("http://{address}/hook");
    let (code, stdout, _) = run(bin().args([
        "send",
        &url,
        "--body",
        "x",
        "--retries",
        "2",
        "--delay-scale",
        "0.0001",
    ]));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(
            "attempt 3 of 3 (Upstash-Retried: 2): 500 Internal Server Error: no retries left"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("failed: 500 Internal Server Error"),
        "{stdout}"
    );
    assert_eq!(server.seen().len(), 3);
}

#[test]
fn send_to_nobody_fails_with_the_reason() {
    // A port that was free a moment ago: nothing listens there.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{address}/hook");
    let (code, stdout, _) = run(bin().args([
        "send",
        &url,
        "--body",
        "x",
        "--retries",
        "1",
        "--delay-scale",
        "0",
        "--key",
        DEV_CURRENT_SIGNING_KEY,
    ]));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("no answer"), "{stdout}");
    assert!(stdout.contains("attempt 2 of 2"), "{stdout}");
}

#[test]
fn demo_runs_every_case_as_expected() {
    let (code, stdout, stderr) = run(bin().arg("demo"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    for row in [
        "valid ",
        "signed with the next key",
        "after a key rotation: the new current key",
        "tampered body",
        "expired",
        "wrong URL",
        "oversize",
        "payload of the wrong shape",
        "failure callback",
    ] {
        assert!(stdout.contains(row), "{row}: {stdout}");
    }
    assert!(
        stdout.contains("handler: message msg_demo01, retried 0, current key"),
        "{stdout}"
    );
    assert!(stdout.contains("refused, body_hash_mismatch"), "{stdout}");
    assert!(stdout.contains("489 non-retryable"), "{stdout}");
    assert!(
        !stdout.lines().any(|line| line.starts_with('!')),
        "{stdout}"
    );
}
