//! A QStash receiver on axum, verified by `tower-qstash`'s layer.
//!
//! ```sh
//! QSTASH_DEV=1 cargo run --example axum_receiver        # or set QSTASH_CURRENT/NEXT_SIGNING_KEY
//! qstash-receiver send http://127.0.0.1:3000/api/webhook --body '{"order":42}' \
//!     --callback http://127.0.0.1:3000/api/callback
//! ```
//!
//! `POST /api/webhook` takes an `Order` as JSON and answers its echo (message id, retried,
//! payload); `POST /api/callback` takes callbacks and failure callbacks. Each refusal is
//! logged on standard error with its reason (`RUST_LOG=qstash_receiver=warn` for fewer).

use std::error::Error;
use std::io::Write as _;
use std::process::ExitCode;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use qstash_examples::{
    CALLBACK_PATH, Echo, Inbox, Order, WEBHOOK_PATH, missing_keys, port_from_env, serve_axum,
};
use qstash_receiver::Receiver;
use tower_qstash::{Layered, QStash, QStashAnswer, QStashCallback, QStashLayer};

/// Behind the layer, the extractors take what it verified: `Layered` says so. A refused order
/// is the core's `Answer`, written (and logged) as every refusal of the layer is.
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

/// Both routes behind one `QStashLayer`: every request is verified before a route sees it.
fn router(receiver: Receiver, inbox: Inbox) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route(CALLBACK_PATH, post(callback))
        .with_state(inbox)
        .layer(QStashLayer::new(receiver))
}

#[tokio::main]
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
    // Every refusal is one event on target `qstash_receiver` (debug for traffic that is most
    // likely not QStash's, warn otherwise): print them unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("qstash_receiver=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    // QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or QSTASH_DEV=1 (alone).
    let receiver = Receiver::from_env().map_err(|e| missing_keys(&e))?;
    let port = port_from_env()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    // Not `axum::serve`: it sets no header-read or idle timeout.
    serve_axum(listener, router(receiver, Inbox::new())).await?;
    Ok(())
}
