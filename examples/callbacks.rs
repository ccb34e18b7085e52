//! Success and failure callbacks, handled with `QStashCallback`.
//!
//! ```sh
//! cargo run --example callbacks
//! ```
//!
//! When a message is published with `Upstash-Callback` / `Upstash-Failure-Callback`, QStash
//! POSTs a signed JSON body describing the destination's answer to that URL. This example
//! serves a callback route in process, delivers one success and one failure callback to it,
//! signed as QStash signs them, and prints what the handler saw.

use std::error::Error;
use std::process::ExitCode;

use axum::body::Body;
use axum::routing::post;
use axum::{Json, Router};
use qstash_receiver::{Receiver, Signer, SigningKeys};
use tower::ServiceExt as _;
use tower_qstash::{Layered, QStashCallback, QStashLayer};

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Receipt {
    ok: bool,
}

/// `callback.is_success()` tells a success callback from a failure callback;
/// `response::<T>()` decodes the destination's answer.
async fn on_callback(extracted: QStashCallback<Layered>) -> Json<serde_json::Value> {
    let QStashCallback {
        callback, delivery, ..
    } = &extracted;
    let line = if callback.is_success() {
        let receipt = extracted.response::<Receipt>();
        format!(
            "delivered {} after {} retries; the destination answered {receipt:?}",
            callback.source_message_id.as_deref().unwrap_or("?"),
            callback.retried,
        )
    } else {
        format!(
            "FAILED {}: status {} after {} of {} retries{}",
            callback.source_message_id.as_deref().unwrap_or("?"),
            callback.status,
            callback.retried,
            callback.max_retries.unwrap_or(0),
            if callback.is_last_attempt() {
                " (last attempt: to the DLQ)"
            } else {
                ""
            },
        )
    };
    println!("callback {}: {line}", delivery.message_id);
    Json(serde_json::json!({ "seen": line }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let app = Router::new()
        .route("/api/callback", post(on_callback))
        .layer(QStashLayer::new(Receiver::from(SigningKeys::dev())));
    let signer = Signer::new(qstash_receiver::keys::DEV_CURRENT_SIGNING_KEY)?;

    let success = br#"{"status":200,"body":"eyJvayI6dHJ1ZX0=","retried":0,"maxRetries":3,"sourceMessageId":"msg_1","url":"https://app.example.com/api/orders","method":"POST"}"#;
    let failure = br#"{"status":503,"body":"d2FyZWhvdXNlIG9mZmxpbmU=","retried":3,"maxRetries":3,"sourceMessageId":"msg_2","url":"https://app.example.com/api/orders","method":"POST","dlqId":"dlq_1"}"#;
    for (id, body) in [("msg_cb1", &success[..]), ("msg_cb2", &failure[..])] {
        let mut request = http::Request::post("/api/callback").body(Body::from(body.to_vec()))?;
        *request.headers_mut() =
            signer.delivery_headers("https://app.example.com/api/callback", body, id, 0);
        let response = app.clone().oneshot(request).await?;
        if !response.status().is_success() {
            return Err(format!("callback {id} answered {}", response.status()).into());
        }
    }
    Ok(())
}
