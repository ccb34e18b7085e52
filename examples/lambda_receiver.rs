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

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use qstash_examples::{CALLBACK_PATH, Echo, Inbox, Order, WEBHOOK_PATH, missing_keys};
use qstash_receiver::Receiver;
use tower_qstash::{Layered, QStash, QStashAnswer, QStashCallback, QStashLayer};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or QSTASH_DEV=1 (alone).
    let receiver = Receiver::from_env().map_err(|e| missing_keys(&e))?;
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
