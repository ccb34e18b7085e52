//! A QStash receiver on AWS Lambda: an axum `Router` behind `QStashLayer` under
//! `lambda_http::run`, for Function URLs, API Gateway HTTP and REST APIs and ALB.
//!
//! ```sh
//! cargo build --release --example lambda_receiver   # then deploy it as `bootstrap`
//! ```
//!
//! Keys from `QSTASH_CURRENT_SIGNING_KEY` and `QSTASH_NEXT_SIGNING_KEY` (or `QSTASH_DEV=1`
//! for the local dev server's public keys), as the other example receivers.
//!
//! `POST /api/webhook` takes an `Order` as JSON and answers its echo (message id, retried,
//! payload), order `0` with 489 + `Upstash-NonRetryable-Error: true`; `POST /api/callback`
//! takes callbacks and failure callbacks and answers a one-line summary.
//!
//! The subject check needs no setting for any event type: tower-qstash's feature `lambda`
//! takes the public URL from the event. Behind an API Gateway REST stage, set
//! `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH=true` on the function so that these routes match
//! (`lambda_http` otherwise puts `/{stage}` before them); the check still compares `sub` with
//! the URL that has the stage.

use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use qstash_receiver::{Callback, NON_RETRYABLE_HEADER, NON_RETRYABLE_STATUS};
use serde::{Deserialize, Serialize};
use tower_qstash::{Layered, QStash, QStashCallback, QStashConfig, QStashLayer};

/// The payload the webhook expects.
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    order: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    item: Option<String>,
}

/// What the webhook answers for a delivery it accepted.
#[derive(Debug, Serialize)]
struct Echo {
    message_id: String,
    retried: u32,
    payload: Order,
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or QSTASH_DEV=1.
    let config = QStashConfig::from_env().map_err(|e| {
        format!(
            "no usable QStash signing keys ({e}). Set QSTASH_CURRENT_SIGNING_KEY and \
             QSTASH_NEXT_SIGNING_KEY (from the QStash console), or QSTASH_DEV=1 to accept the \
             local dev server's public keys"
        )
    })?;
    let app = Router::new()
        .route("/api/webhook", post(webhook))
        .route("/api/callback", post(callback))
        .layer(QStashLayer::new(config));
    lambda_http::run(app).await
}

async fn webhook(
    QStash {
        payload, delivery, ..
    }: QStash<Order, Layered>,
) -> Response {
    if payload.order == 0 {
        let status =
            StatusCode::from_u16(NON_RETRYABLE_STATUS).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
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

async fn callback(
    QStashCallback { callback, .. }: QStashCallback<serde_json::Value, Layered>,
) -> String {
    describe(&callback)
}

/// A one-line summary of a callback, as the other example receivers answer it.
fn describe(callback: &Callback) -> String {
    let source = callback.source_message_id.as_deref().unwrap_or("?");
    let attempts = match callback.max_retries {
        Some(max) => format!("retried {} of {max}", callback.retried),
        None => format!("retried {}", callback.retried),
    };
    if callback.is_success() {
        format!(
            "success: message {source} answered {} ({attempts}): {}",
            callback.status,
            String::from_utf8_lossy(&callback.body)
        )
    } else {
        let permanent = callback
            .header_value(NON_RETRYABLE_HEADER)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        format!(
            "failure: message {source} answered {} ({attempts}{}); original body: {}",
            callback.status,
            if permanent { ", not retryable" } else { "" },
            String::from_utf8_lossy(&callback.source_body)
        )
    }
}
