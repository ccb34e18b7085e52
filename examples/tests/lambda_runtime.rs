//! The `lambda_receiver` example end to end, without AWS: the test builds the example binary
//! (`cargo build --example lambda_receiver`, as a user would), runs it against a fake Lambda
//! Runtime API on loopback, feeds it events of the four types (Function URL, API Gateway HTTP
//! and REST, ALB) and checks every answer the function posts back: status, headers, body.
//!
//! The Runtime API, as far as a function uses it: `GET /2018-06-01/runtime/invocation/next`
//! answers the next event with `lambda-runtime-aws-request-id` and
//! `lambda-runtime-deadline-ms`; the function posts `/2018-06-01/runtime/invocation/{id}/response`
//! or `/error`.

#![allow(clippy::unwrap_used)]

#[path = "../../crates/tower-qstash/tests/lambda/events.rs"]
mod events;
mod lambda_support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use events::{Kind, event};
use lambda_support::{Function, build_example};
use qstash_receiver::{Signer, headers::NON_RETRYABLE_HEADER};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

const CURRENT: &str = "sig_example_current";
const NEXT: &str = "sig_example_next";

/// What the function posted for one invocation.
#[derive(Debug)]
struct Posted {
    id: String,
    outcome: &'static str,
    body: Bytes,
}

#[derive(Clone)]
struct Runtime {
    events: Arc<Mutex<mpsc::UnboundedReceiver<(String, String)>>>,
    posted: mpsc::UnboundedSender<Posted>,
}

async fn next(State(runtime): State<Runtime>) -> impl IntoResponse {
    // Held open until there is an event, as the real Runtime API does.
    let Some((id, event)) = runtime.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    headers.insert(
        "lambda-runtime-deadline-ms",
        "4102444800000".parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-central-1:123456789012:function:qstash-receiver"
            .parse()
            .unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-66d0a9c6-5e0b3f0e1c2d3a4b5c6d7e8f".parse().unwrap(),
    );
    headers.insert("content-type", "application/json".parse().unwrap());
    (StatusCode::OK, headers, event)
}

async fn on_posted(
    State(runtime): State<Runtime>,
    Path((id, outcome)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let outcome = match outcome.as_str() {
        "response" => "response",
        "error" => "error",
        _ => return StatusCode::NOT_FOUND,
    };
    runtime.posted.send(Posted { id, outcome, body }).unwrap();
    StatusCode::ACCEPTED
}

async fn init_error(State(runtime): State<Runtime>, body: Bytes) -> StatusCode {
    let id = "init".to_owned();
    runtime
        .posted
        .send(Posted {
            id,
            outcome: "init error",
            body,
        })
        .unwrap();
    StatusCode::ACCEPTED
}

fn signed(key: &str, url: &str, body: &[u8], message_id: &str) -> HeaderMap {
    Signer::new(key)
        .unwrap()
        .delivery_headers(url, body, message_id, 0)
}

/// One invocation and what its answer must be.
struct Case {
    name: String,
    event: String,
    status: u16,
    content_type: &'static str,
    body: Body,
    non_retryable: bool,
}

enum Body {
    Exactly(String),
    Json(Value),
}

/// A header of an answer: `headers` (payload 2.0, ALB) or `multiValueHeaders` (REST, ALB).
fn header<'a>(answer: &'a Value, name: &str) -> Option<&'a str> {
    let single = answer["headers"].as_object().and_then(|h| {
        h.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    });
    single.or_else(|| {
        answer["multiValueHeaders"].as_object().and_then(|h| {
            h.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v[0].as_str())
        })
    })
}

fn cases() -> Vec<Case> {
    let query = "?b=2&a=one%20two&a=3&e=%E2%9C%93&p=a+b";
    let callback = br#"{"status":500,"header":{"Content-Type":["text/plain"]},"body":"b29wcw==","retried":3,"maxRetries":3,"dlqId":"1725323658779-0","sourceMessageId":"msg_src","url":"https://example.com/api/webhook","method":"POST","sourceBody":"eyJvcmRlciI6NDJ9","notBefore":1725323658779,"createdAt":1725323658000}"#;
    let mut cases = Vec::new();
    for kind in Kind::ALL {
        let webhook = kind.url(&format!("/api/webhook{query}"));
        let order = br#"{"order":42,"item":"tea"}"#;
        for base64 in [false, true] {
            cases.push(Case {
                name: format!("{kind:?}: an order, base64 {base64}"),
                event: event(
                    kind,
                    &webhook,
                    &signed(CURRENT, &webhook, order, "msg_1"),
                    order,
                    base64,
                ),
                status: 200,
                content_type: "application/json",
                body: Body::Json(serde_json::json!({
                    "message_id": "msg_1", "retried": 0, "payload": {"order": 42, "item": "tea"}
                })),
                non_retryable: false,
            });
        }
        let zero = br#"{"order":0}"#;
        cases.push(Case {
            name: format!("{kind:?}: order 0"),
            event: event(
                kind,
                &webhook,
                &signed(CURRENT, &webhook, zero, "msg_0"),
                zero,
                false,
            ),
            status: 489,
            content_type: "text/plain; charset=utf-8",
            body: Body::Exactly("order 0 does not exist".into()),
            non_retryable: true,
        });
        cases.push(Case {
            name: format!("{kind:?}: the next key"),
            event: event(
                kind,
                &webhook,
                &signed(NEXT, &webhook, order, "msg_2"),
                order,
                false,
            ),
            status: 200,
            content_type: "application/json",
            body: Body::Json(serde_json::json!({
                "message_id": "msg_2", "retried": 0, "payload": {"order": 42, "item": "tea"}
            })),
            non_retryable: false,
        });
        cases.push(Case {
            name: format!("{kind:?}: another key"),
            event: event(
                kind,
                &webhook,
                &signed("sig_other", &webhook, order, "m"),
                order,
                false,
            ),
            status: 401,
            content_type: "text/plain; charset=utf-8",
            body: Body::Exactly("invalid QStash signature".into()),
            non_retryable: false,
        });
        let other_query = kind.url("/api/webhook?b=2&a=one%20two&a=4&e=%E2%9C%93&p=a+b");
        cases.push(Case {
            name: format!("{kind:?}: a token for another query"),
            event: event(
                kind,
                &webhook,
                &signed(CURRENT, &other_query, order, "m"),
                order,
                false,
            ),
            status: 401,
            content_type: "text/plain; charset=utf-8",
            body: Body::Exactly("invalid QStash signature".into()),
            non_retryable: false,
        });
        let callback_url = kind.url("/api/callback");
        cases.push(Case {
            name: format!("{kind:?}: a failure callback"),
            event: event(
                kind,
                &callback_url,
                &signed(CURRENT, &callback_url, callback, "msg_cb"),
                callback,
                kind == Kind::Alb,
            ),
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: Body::Exactly(
                r#"failure: message msg_src answered 500 (retried 3 of 3); original body: {"order":42}"#
                    .into(),
            ),
            non_retryable: false,
        });
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_answers_every_event_type_under_a_fake_runtime_api() {
    let executable = build_example();

    let (events, queue) = mpsc::unbounded_channel();
    let (posted_tx, mut posted) = mpsc::unbounded_channel();
    let runtime = Runtime {
        events: Arc::new(Mutex::new(queue)),
        posted: posted_tx,
    };
    let api = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/{outcome}",
            post(on_posted),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api).await.unwrap() });

    let _function = Function(
        Command::new(executable)
            .env_remove("QSTASH_DEV")
            .env_remove("QSTASH_REGION")
            .env("QSTASH_CURRENT_SIGNING_KEY", CURRENT)
            .env("QSTASH_NEXT_SIGNING_KEY", NEXT)
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "qstash-receiver")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            // The REST API's routes match at the root; the subject check keeps the stage.
            .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
            // The broken event's panic is expected; its backtrace is not needed.
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let cases = cases();
    let mut names = HashMap::new();
    for (n, case) in cases.iter().enumerate() {
        let id = format!("req-{n}");
        names.insert(id.clone(), n);
        events.send((id, case.event.clone())).unwrap();
    }
    for _ in 0..cases.len() {
        let posted = tokio::time::timeout(Duration::from_secs(60), posted.recv())
            .await
            .expect("the function answers within a minute")
            .expect("the fake Runtime API is up");
        let case = names
            .get(&posted.id)
            .map(|&n| &cases[n])
            .unwrap_or_else(|| panic!("an answer to no invocation: {posted:?}"));
        let name = &case.name;
        assert_eq!(posted.outcome, "response", "{name}: {posted:?}");
        let answer: Value = serde_json::from_slice(&posted.body).unwrap();
        assert_eq!(answer["statusCode"], case.status, "{name}: {answer}");
        let body = answer["body"].as_str().unwrap_or_default();
        let body = if answer["isBase64Encoded"] == true {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        } else {
            body.as_bytes().to_vec()
        };
        match &case.body {
            Body::Exactly(text) => {
                assert_eq!(String::from_utf8_lossy(&body), *text, "{name}");
            }
            Body::Json(json) => {
                assert_eq!(
                    serde_json::from_slice::<Value>(&body).unwrap(),
                    *json,
                    "{name}"
                );
            }
        }
        assert_eq!(
            header(&answer, "content-type"),
            Some(case.content_type),
            "{name}: {answer}"
        );
        assert_eq!(
            header(&answer, NON_RETRYABLE_HEADER),
            case.non_retryable.then_some("true"),
            "{name}: {answer}"
        );
        if case.status == 200 && answer.get("statusDescription").is_some() {
            assert_eq!(answer["statusDescription"], "200 OK", "{name}");
        }
    }

    // Last, as it may end the process: an event whose body is not base64 makes `lambda_http`
    // panic while it turns the event into a request, before any of the receiver's code runs.
    let url = Kind::Alb.url("/api/webhook");
    let mut broken: Value = serde_json::from_str(&event(
        Kind::Alb,
        &url,
        &signed(CURRENT, &url, b"{}", "msg_b"),
        b"{}",
        true,
    ))
    .unwrap();
    broken["body"] = Value::from("not base64!");
    events
        .send(("req-broken".into(), broken.to_string()))
        .unwrap();
    let posted = tokio::time::timeout(Duration::from_secs(60), posted.recv())
        .await
        .expect("the function reports the broken event")
        .expect("the fake Runtime API is up");
    assert_eq!(posted.id, "req-broken");
    assert_eq!(posted.outcome, "error", "{posted:?}");
    let error: Value = serde_json::from_slice(&posted.body).unwrap();
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("base64"), "{error}");
}
