//! A QStash receiver as a Cloudflare Worker: an axum `Router` behind `QStashLayer`, compiled
//! for `wasm32-unknown-unknown` with `worker-build`.
//!
//! `POST /api/webhook` takes an `Order` as JSON and answers its echo (message id, retried,
//! payload), order `0` with 489 + `Upstash-NonRetryable-Error: true`; `POST /api/callback`
//! takes callbacks and failure callbacks and answers a one-line summary: the same routes and
//! answers as the other example receivers, from the same handler logic (`inbox.rs`).
//!
//! Two things differ from a server:
//! - the keys come from the Worker's bindings (`QSTASH_CURRENT_SIGNING_KEY` and
//!   `QSTASH_NEXT_SIGNING_KEY` as secrets or vars; `std::env` is empty on Workers);
//! - the time comes from the platform (`Date.now()`): `SystemTime::now()` panics on wasm32, so
//!   the receiver is given a [`Clock`] that never reads it. There is no body timer (Tokio's
//!   timers do not run here); the platform bounds how long a request may take.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use qstash_receiver::{Clock, KeyRing, Receiver, Verifier};
use tower_qstash::{Layered, QStash, QStashAnswer, QStashCallback, QStashLayer};
use tower_service::Service as _;
use worker::{Context, Env, HttpRequest, event};

/// The handler logic every example receiver shares.
#[path = "../../inbox.rs"]
pub mod inbox;

use inbox::{CALLBACK_PATH, Echo, Inbox, Order, WEBHOOK_PATH, missing_keys};

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

/// Both routes behind one `QStashLayer`, as in `axum_receiver`.
fn router(receiver: Receiver) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route(CALLBACK_PATH, post(callback))
        .with_state(Inbox::new())
        .layer(QStashLayer::new(receiver))
}

/// The receiver for this request: keys from the bindings, time from the platform.
fn receiver(env: &Env) -> Result<Receiver, String> {
    // A secret (`wrangler secret put`) or a plain var; the same names as the servers' variables
    // (`QSTASH_REGION` and the regional names included).
    let binding = |name: &str| {
        env.secret(name)
            .or_else(|_| env.var(name))
            .ok()
            .map(|value| value.to_string())
    };
    let keys = KeyRing::from_lookup(binding).map_err(|e| missing_keys(&e))?;
    Ok(Receiver::new(Verifier::new(keys))
        .clock(Clock::from_fn(platform_now))
        // No Tokio timer runs here: with a timeout set, a body that has to be waited for
        // would be answered 500 (`not_configured`) rather than read with no limit.
        .body_timeout(None))
}

/// Unix seconds from the platform's clock (`Date.now()`).
fn platform_now() -> i64 {
    i64::try_from(worker::Date::now().as_millis() / 1000).unwrap_or(i64::MAX)
}

#[event(fetch)]
async fn fetch(
    request: HttpRequest,
    env: Env,
    _ctx: Context,
) -> worker::Result<axum::http::Response<axum::body::Body>> {
    let receiver = receiver(&env).map_err(worker::Error::RustError)?;
    Ok(router(receiver).call(request).await?)
}
