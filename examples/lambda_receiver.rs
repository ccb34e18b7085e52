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
//! The subject check needs no setting for any event type AWS sends: tower-qstash's feature
//! `lambda` takes the public URL from the event. Behind an API Gateway REST stage, set
//! `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH=true` on the function so that these routes match
//! (`lambda_http` otherwise puts `/{stage}` before them); the check still compares `sub` with
//! the URL that has the stage.
//!
//! Where the URL QStash calls has a path the event does not show, set `QSTASH_PUBLIC_BASE_URL`
//! to the URL's part before the routes: `sub` must then equal it followed by the path and
//! query. `cargo lambda watch` is such a place: it serves the function at
//! `http://127.0.0.1:9000/lambda-url/<function>/…` (`_` for an example: cargo lambda names
//! only binaries) and hands it `rawPath` without the prefix:
//!
//! ```sh
//! cd examples && cargo lambda watch --example lambda_receiver \
//!     --env-var QSTASH_DEV=1 \
//!     --env-var QSTASH_PUBLIC_BASE_URL=http://127.0.0.1:9000/lambda-url/_
//! qstash-receiver send http://127.0.0.1:9000/lambda-url/_/api/webhook \
//!     --body '{"order":42}'
//! ```

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use qstash_examples::{CALLBACK_PATH, Echo, Inbox, Order, WEBHOOK_PATH, missing_keys};
use qstash_receiver::{Receiver, subject::SubjectPolicy};
use tower_qstash::{Layered, QStash, QStashAnswer, QStashCallback, QStashLayer};

/// The URL before the routes, where the event's path lacks part of the URL QStash calls.
const PUBLIC_BASE_URL: &str = "QSTASH_PUBLIC_BASE_URL";

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // One line per event on standard output, which CloudWatch Logs shows: without ANSI colours
    // (CloudWatch prints them as text) and without the time (CloudWatch stamps each line).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("qstash_receiver=debug,info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .init();

    // QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or QSTASH_DEV=1 (alone).
    let mut receiver = Receiver::from_env().map_err(|e| missing_keys(&e))?;
    if let Ok(base) = std::env::var(PUBLIC_BASE_URL) {
        let policy =
            SubjectPolicy::public_base_url(&base).map_err(|e| format!("{PUBLIC_BASE_URL}: {e}"))?;
        receiver = receiver.subject_policy(policy);
    }
    let app = Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route(CALLBACK_PATH, post(callback))
        .with_state(Inbox::new())
        .layer(QStashLayer::new(receiver));
    lambda_http::run(app).await
}

async fn webhook(
    State(inbox): State<Inbox>,
    QStash {
        payload, delivery, ..
    }: QStash<Order, Layered>,
) -> Result<Json<Echo>, QStashAnswer> {
    let answer = inbox.handle_order(delivery.message_id, delivery.retried, payload);
    answer.map(Json).map_err(QStashAnswer::from)
}

async fn callback(
    State(inbox): State<Inbox>,
    QStashCallback {
        callback, delivery, ..
    }: QStashCallback<Layered>,
) -> String {
    inbox.handle_callback(delivery.message_id, callback)
}
