//! Lambda events of the four types (Function URL, API Gateway HTTP API and REST, ALB), parsed
//! by `lambda_http` itself and sent through an axum `Router` behind `QStashLayer`: the
//! subject check passes for every event type with no setting, and fails for a token signed
//! for another path, query or stage.

#![allow(clippy::unwrap_used)]

#[path = "lambda/events.rs"]
mod events;

use std::process::Command;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use events::{Kind, event};
use http_body_util::BodyExt as _;
use qstash_receiver::{
    Receiver, Signer, SigningKeys, Verifier, headers::NON_RETRYABLE_HEADER, subject::SubjectPolicy,
};
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;
use tower_qstash::{Layered, QStash, QStashCallback, QStashLayer, QStashRaw};

const CURRENT: &str = "sig_lambda_current";
const NEXT: &str = "sig_lambda_next";
const IGNORE_STAGE: &str = "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH";

/// A query with repeated names, escapes, a `+` and UTF-8, in an order no map keeps.
const QUERY: &str = "?b=2&a=one%20two&a=3&e=%E2%9C%93&p=a+b&amp=x%26y%3Dz&plus=1%2B1";

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    order: u32,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Echo {
    message_id: String,
    retried: u32,
    payload: Order,
}

fn receiver() -> Receiver {
    Receiver::new(Verifier::new(SigningKeys::new(CURRENT, NEXT).unwrap()))
}

fn layer() -> QStashLayer {
    QStashLayer::new(receiver())
}

fn layer_with_base(url: &str) -> QStashLayer {
    QStashLayer::new(receiver().subject_policy(SubjectPolicy::public_base_url(url).unwrap()))
}

fn routes() -> Router {
    Router::new()
        .route("/api/webhook", post(webhook))
        .route("/api/callback", post(callback))
        .route("/api/raw", post(raw))
}

/// The routes behind `layer`, mounted under `prefix` (the path `lambda_http` puts before
/// them, e.g. the REST stage).
fn app(prefix: &str, layer: QStashLayer) -> Router {
    let routes = routes().layer(layer);
    if prefix.is_empty() {
        routes
    } else {
        Router::new().nest(prefix, routes)
    }
}

async fn webhook(
    QStash {
        payload, delivery, ..
    }: QStash<Order, Layered>,
) -> Response {
    if payload.order == 0 {
        let status = StatusCode::from_u16(qstash_receiver::headers::NON_RETRYABLE_STATUS).unwrap();
        return (
            status,
            [(NON_RETRYABLE_HEADER, "true")],
            "order 0 does not exist",
        )
            .into_response();
    }
    Json(Echo {
        message_id: delivery.message_id,
        retried: delivery.retried,
        payload,
    })
    .into_response()
}

async fn callback(QStashCallback { callback, .. }: QStashCallback<Layered>) -> String {
    format!(
        "{} {} for {} after {} of {:?}: {}",
        if callback.is_success() {
            "success"
        } else {
            "failure"
        },
        callback.status,
        callback.source_message_id.as_deref().unwrap_or("?"),
        callback.retried,
        callback.max_retries,
        String::from_utf8_lossy(&callback.source_body),
    )
}

async fn raw(QStashRaw { body, .. }: QStashRaw<Layered>) -> Bytes {
    body
}

fn signed(url: &str, body: &[u8], message_id: &str) -> HeaderMap {
    Signer::new(CURRENT)
        .unwrap()
        .delivery_headers(url, body, message_id, 0)
}

/// `lambda_http`'s request for `event`, answered by `app`.
async fn send(app: Router, event: &str) -> (StatusCode, HeaderMap, Bytes) {
    let request = lambda_http::request::from_str(event).unwrap();
    let response = app.oneshot(request.map(Body::new)).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// The prefix `lambda_http` gives the URI of `kind`'s events (without
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`).
fn prefix(kind: Kind) -> &'static str {
    if kind == Kind::Rest && std::env::var_os(IGNORE_STAGE).is_none() {
        "/prod"
    } else {
        ""
    }
}

fn order_body(order: u32) -> Vec<u8> {
    serde_json::to_vec(&Order { order }).unwrap()
}

#[tokio::test]
async fn every_event_type_delivers_with_its_query_text_and_base64() {
    for kind in Kind::ALL {
        for base64 in [false, true] {
            let url = kind.url(&format!("/api/webhook{QUERY}"));
            let body = order_body(42);
            let event = event(kind, &url, &signed(&url, &body, "msg_1"), &body, base64);
            let (status, headers, answer) = send(app(prefix(kind), layer()), &event).await;
            let name = format!("{kind:?}, base64 {base64}");
            assert_eq!(status, StatusCode::OK, "{name}: {answer:?}");
            assert_eq!(headers["content-type"], "application/json", "{name}");
            let echo: Echo = serde_json::from_slice(&answer).unwrap();
            assert_eq!(
                echo,
                Echo {
                    message_id: "msg_1".into(),
                    retried: 0,
                    payload: Order { order: 42 }
                },
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn a_binary_body_arrives_byte_exact() {
    let body: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
    for kind in Kind::ALL {
        let url = kind.url("/api/raw?kind=binary");
        let event = event(kind, &url, &signed(&url, &body, "msg_bin"), &body, true);
        let (status, _, answer) = send(app(prefix(kind), layer()), &event).await;
        assert_eq!(status, StatusCode::OK, "{kind:?}: {answer:?}");
        assert_eq!(answer, body, "{kind:?}");
    }
}

#[tokio::test]
async fn a_token_for_another_query_path_or_stage_is_refused() {
    struct Case {
        name: &'static str,
        signed_for: &'static str,
        sent_to: &'static str,
    }
    let cases = [
        Case {
            name: "another value",
            signed_for: "/api/webhook?a=3&b=2",
            sent_to: "/api/webhook?a=4&b=2",
        },
        Case {
            name: "a parameter more",
            signed_for: "/api/webhook?a=3",
            sent_to: "/api/webhook?a=3&admin=1",
        },
        Case {
            name: "a parameter less",
            signed_for: "/api/webhook?a=3&b=2",
            sent_to: "/api/webhook?a=3",
        },
        Case {
            name: "a repeated parameter once",
            signed_for: "/api/webhook?a=3&a=3",
            sent_to: "/api/webhook?a=3",
        },
        Case {
            name: "an escaped & split in two",
            signed_for: "/api/webhook?x=a%26b%3D",
            sent_to: "/api/webhook?x=a&b=",
        },
        Case {
            name: "a plus that was a literal plus",
            signed_for: "/api/webhook?x=1%2B1",
            sent_to: "/api/webhook?x=1+1",
        },
        Case {
            name: "another path",
            signed_for: "/api/other",
            sent_to: "/api/webhook",
        },
    ];
    for kind in Kind::ALL {
        for case in &cases {
            let body = order_body(1);
            let headers = signed(&kind.url(case.signed_for), &body, "msg_x");
            let event = event(kind, &kind.url(case.sent_to), &headers, &body, false);
            let (status, headers, answer) = send(app(prefix(kind), layer()), &event).await;
            let name = format!("{kind:?}, {}", case.name);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
            assert_eq!(answer, "invalid QStash signature", "{name}");
            assert!(headers.get(NON_RETRYABLE_HEADER).is_none(), "{name}");
        }
    }
}

#[tokio::test]
async fn a_rest_token_must_name_the_stage() {
    let body = order_body(1);
    let url = Kind::Rest.url("/api/webhook");
    let without_stage = url.replace("/prod", "");
    let sent = event(
        Kind::Rest,
        &url,
        &signed(&without_stage, &body, "m"),
        &body,
        false,
    );
    let (status, _, _) = send(app(prefix(Kind::Rest), layer()), &sent).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let other_stage = url.replace("/prod", "/dev");
    let sent = event(
        Kind::Rest,
        &url,
        &signed(&other_stage, &body, "m"),
        &body,
        false,
    );
    let (status, _, _) = send(app(prefix(Kind::Rest), layer()), &sent).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn payload_errors_and_handler_refusals_answer_489() {
    for kind in Kind::ALL {
        let url = kind.url("/api/webhook");
        for (body, text) in [
            (order_body(0), "order 0 does not exist"),
            (br#"{"order":"many"}"#.to_vec(), ""),
        ] {
            let event = event(kind, &url, &signed(&url, &body, "m"), &body, false);
            let (status, headers, answer) = send(app(prefix(kind), layer()), &event).await;
            assert_eq!(status.as_u16(), 489, "{kind:?}: {answer:?}");
            assert_eq!(headers[NON_RETRYABLE_HEADER], "true", "{kind:?}");
            if !text.is_empty() {
                assert_eq!(answer, text, "{kind:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_failure_callback() {
    let callback = br#"{"status":500,"header":{"Content-Type":["text/plain"]},"body":"b29wcw==","retried":3,"maxRetries":3,"dlqId":"1725323658779-0","sourceMessageId":"msg_src","url":"https://example.com/api/webhook","method":"POST","sourceHeader":{"Content-Type":["application/json"]},"sourceBody":"eyJvcmRlciI6NDJ9","notBefore":1725323658779,"createdAt":1725323658000}"#;
    for kind in Kind::ALL {
        let url = kind.url("/api/callback?source=orders");
        let event = event(
            kind,
            &url,
            &signed(&url, callback, "msg_cb"),
            callback,
            kind == Kind::Alb,
        );
        let (status, _, answer) = send(app(prefix(kind), layer()), &event).await;
        assert_eq!(status, StatusCode::OK, "{kind:?}: {answer:?}");
        assert_eq!(
            answer, r#"failure 500 for msg_src after 3 of Some(3): {"order":42}"#,
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn the_key_is_checked_too() {
    for kind in Kind::ALL {
        let url = kind.url("/api/webhook");
        let body = order_body(1);
        let headers = Signer::new("sig_someone_else")
            .unwrap()
            .delivery_headers(&url, &body, "m", 0);
        let (status, _, _) = send(
            app(prefix(kind), layer()),
            &event(kind, &url, &headers, &body, false),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind:?}");
    }
}

/// A REST API on a custom domain whose base path `v1` maps to the stage `prod`: the URL has
/// `/v1` and no stage; `lambda_http` still prepends the stage to the URI.
#[tokio::test]
async fn a_custom_domain_with_a_base_path() {
    let url = format!("https://api.example.com/v1/api/webhook{QUERY}");
    let body = order_body(7);
    let event = event(Kind::Rest, &url, &signed(&url, &body, "m"), &body, false);
    let mount = if std::env::var_os(IGNORE_STAGE).is_none() {
        "/prod/v1"
    } else {
        "/v1"
    };
    for (name, layer, want) in [
        ("no setting", layer(), StatusCode::OK),
        (
            "the custom domain as public base URL",
            layer_with_base("https://api.example.com"),
            StatusCode::OK,
        ),
        (
            "another host as public base URL",
            layer_with_base("https://other.example.com"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "the base path in the base URL too",
            layer_with_base("https://api.example.com/v1"),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (status, _, answer) = send(app(mount, layer), &event).await;
        assert_eq!(status, want, "{name}: {answer:?}");
    }
}

/// Runs the test `name` again in a child process of this test binary with
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH=true` (`lambda_http` reads it on every event, and
/// this workspace forbids the `unsafe` of `std::env::set_var`). Returns whether this is that
/// child, which then runs the test's body.
fn with_ignore_stage(name: &str) -> bool {
    if std::env::var_os(IGNORE_STAGE).is_some() {
        return true;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1"])
        .env(IGNORE_STAGE, "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

#[test]
fn rest_stage_ignored_in_path_routes_at_the_root_and_still_checks_the_stage() {
    if !with_ignore_stage(
        "rest_stage_ignored_in_path_routes_at_the_root_and_still_checks_the_stage",
    ) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = Kind::Rest.url(&format!("/api/webhook{QUERY}"));
        assert!(url.contains("/prod/api/webhook"));
        let body = order_body(9);
        let request = lambda_http::request::from_str(&event(
            Kind::Rest,
            &url,
            &signed(&url, &body, "m"),
            &body,
            false,
        ))
        .unwrap();
        assert_eq!(request.uri().path(), "/api/webhook");
        // Routes at the root, and the token (for `/prod/api/webhook`) passes.
        let event_ok = event(Kind::Rest, &url, &signed(&url, &body, "m"), &body, false);
        let (status, _, answer) = send(app("", layer()), &event_ok).await;
        assert_eq!(status, StatusCode::OK, "{answer:?}");
        // A token for the path without the stage, which is what the URI now shows, does not.
        let bare = url.replace("/prod", "");
        let event_bare = event(Kind::Rest, &url, &signed(&bare, &body, "m"), &body, false);
        let (status, _, _) = send(app("", layer()), &event_bare).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    });
}

#[test]
fn custom_domain_with_stage_ignored_in_path() {
    if !with_ignore_stage("custom_domain_with_stage_ignored_in_path") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = "https://api.example.com/v1/api/webhook?x=1";
        let body = order_body(7);
        let event = event(Kind::Rest, url, &signed(url, &body, "m"), &body, false);
        let request = lambda_http::request::from_str(&event).unwrap();
        assert_eq!(request.uri().path(), "/v1/api/webhook");
        let (status, _, answer) = send(app("/v1", layer()), &event).await;
        assert_eq!(status, StatusCode::OK, "{answer:?}");
    });
}
