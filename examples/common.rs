//! The receiver that the examples serve, written once for axum (`tower-qstash`) and once for
//! actix-web (`actix-qstash`), and shared with the end-to-end tests in `tests/`.
//!
//! Both expose the same two routes:
//!
//! - `POST /api/webhook`: a verified delivery of an [`Order`] (JSON). Answers 200 with an
//!   [`Echo`] of what it received; order `0` is refused for good (489 +
//!   `Upstash-NonRetryable-Error: true`, so QStash does not retry it).
//! - `POST /api/callback`: a verified callback or failure callback. Answers 200 with a one-line
//!   summary ([`describe`]).
//!
//! Policies are the adapters' defaults: `sub` compared by path and query, 1 MiB body limit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use qstash_receiver::{Callback, NON_RETRYABLE_HEADER, NON_RETRYABLE_STATUS};
use serde::{Deserialize, Serialize};

/// The route that takes deliveries.
pub const WEBHOOK_PATH: &str = "/api/webhook";
/// The route that takes callbacks and failure callbacks.
pub const CALLBACK_PATH: &str = "/api/callback";

/// The payload the webhook expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order number; `0` is refused for good.
    pub order: u32,
    /// An optional note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

/// What the webhook answers (as JSON) for a delivery it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// `Upstash-Message-Id`: the same on every retry, the key to deduplicate on.
    pub message_id: String,
    /// `Upstash-Retried`: 0 on the first attempt.
    pub retried: u32,
    /// The verified, typed payload.
    pub payload: Order,
}

/// One thing a handler saw.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A verified delivery, and the status the handler answered with.
    Delivery {
        /// What was delivered.
        echo: Echo,
        /// The status answered.
        status: u16,
    },
    /// A verified callback (success or failure).
    Callback {
        /// The callback's own `Upstash-Message-Id`.
        message_id: String,
        /// The parsed callback body.
        callback: Box<Callback>,
    },
}

/// What the webhook decided, independent of the framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the echo as JSON.
    Accepted(Echo),
    /// 503: a temporary failure; QStash retries.
    TryLater,
    /// 489 + `Upstash-NonRetryable-Error: true`: QStash stops retrying (and calls the failure
    /// callback).
    Refused(String),
}

/// The handlers' shared state: what they saw, and (for demos and tests) how many deliveries
/// to fail with 503 before accepting.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    seen: Arc<Mutex<VecDeque<Seen>>>,
    fail_first: Arc<AtomicU32>,
}

impl Inbox {
    /// An empty inbox that accepts every valid order.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An inbox whose webhook answers 503 to the first `n` deliveries.
    #[must_use]
    pub fn failing_first(n: u32) -> Self {
        let inbox = Self::default();
        inbox.fail_first.store(n, Ordering::SeqCst);
        inbox
    }

    /// The last [`Inbox::KEEP`] things seen, oldest first.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().iter().cloned().collect()
    }

    /// How many of the things seen are kept: a receiver under load must not grow without end.
    pub const KEEP: usize = 1000;

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Seen>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, seen: Seen) {
        let mut kept = self.lock();
        if kept.len() == Self::KEEP {
            kept.pop_front();
        }
        kept.push_back(seen);
    }

    /// The webhook's logic: record the delivery and decide the answer.
    pub fn handle_order(&self, message_id: String, retried: u32, payload: Order) -> Outcome {
        let echo = Echo {
            message_id,
            retried,
            payload,
        };
        let failing = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let outcome = if failing {
            Outcome::TryLater
        } else if echo.payload.order == 0 {
            Outcome::Refused("order 0 does not exist".to_owned())
        } else {
            Outcome::Accepted(echo.clone())
        };
        let status = match outcome {
            Outcome::Accepted(_) => 200,
            Outcome::TryLater => 503,
            Outcome::Refused(_) => NON_RETRYABLE_STATUS,
        };
        self.record(Seen::Delivery { echo, status });
        outcome
    }

    /// The callback route's logic: record the callback and describe it.
    pub fn handle_callback(&self, message_id: String, callback: Callback) -> String {
        let summary = describe(&callback);
        self.record(Seen::Callback {
            message_id,
            callback: Box::new(callback),
        });
        summary
    }
}

/// A one-line summary of a callback: success or failure, for which message, after how many
/// retries, and with what answer.
#[must_use]
pub fn describe(callback: &Callback) -> String {
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

/// The message for missing or unusable keys.
#[must_use]
pub fn missing_keys(error: &qstash_receiver::ConfigError) -> String {
    format!(
        "no usable QStash signing keys ({error}). Set QSTASH_CURRENT_SIGNING_KEY and \
         QSTASH_NEXT_SIGNING_KEY (from the QStash console), or QSTASH_DEV=1 to accept the \
         local dev server's public keys"
    )
}

/// `PORT` from the environment, 3000 when unset.
///
/// # Errors
///
/// When `PORT` is set but not a port number.
pub fn port_from_env() -> Result<u16, String> {
    match std::env::var("PORT") {
        Ok(port) => port
            .trim()
            .parse()
            .map_err(|_| format!("PORT must be a port number, not {port:?}")),
        Err(_) => Ok(3000),
    }
}

/// The receiver on axum, behind `tower-qstash`'s layer.
pub mod axum_app {
    use axum::extract::State;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use http::StatusCode;
    use tower_qstash::{Layered, QStash, QStashCallback, QStashConfig, QStashLayer};

    use super::{CALLBACK_PATH, Inbox, NON_RETRYABLE_HEADER, Order, Outcome, WEBHOOK_PATH};

    /// Both routes, verified by one `QStashLayer` with `config`.
    pub fn router(config: QStashConfig, inbox: Inbox) -> Router {
        Router::new()
            .route(WEBHOOK_PATH, post(webhook))
            .route(CALLBACK_PATH, post(callback))
            .with_state(inbox)
            .layer(QStashLayer::new(config))
    }

    async fn webhook(
        State(inbox): State<Inbox>,
        QStash {
            payload, delivery, ..
        }: QStash<Order, Layered>,
    ) -> Response {
        match inbox.handle_order(delivery.message_id, delivery.retried, payload) {
            Outcome::Accepted(echo) => Json(echo).into_response(),
            Outcome::TryLater => {
                (StatusCode::SERVICE_UNAVAILABLE, "try again later").into_response()
            }
            Outcome::Refused(reason) => {
                let status = StatusCode::from_u16(super::NON_RETRYABLE_STATUS)
                    .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
                (status, [(NON_RETRYABLE_HEADER, "true")], reason).into_response()
            }
        }
    }

    async fn callback(
        State(inbox): State<Inbox>,
        QStashCallback {
            callback, delivery, ..
        }: QStashCallback<serde_json::Value, Layered>,
    ) -> String {
        inbox.handle_callback(delivery.message_id, callback)
    }
}

/// The receiver on actix-web, with `actix-qstash`'s extractors.
pub mod actix_app {
    use actix_qstash::{QStash, QStashCallback, QStashConfig};
    use actix_web::http::StatusCode;
    use actix_web::{HttpResponse, web};

    use super::{CALLBACK_PATH, Inbox, NON_RETRYABLE_HEADER, Order, Outcome, WEBHOOK_PATH};

    /// Both routes, with `config` and `inbox` in `app_data`:
    /// `App::new().configure(actix_app::configure(config, inbox))`.
    pub fn configure(
        config: QStashConfig,
        inbox: Inbox,
    ) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(config.clone())
                .app_data(web::Data::new(inbox.clone()))
                .route(WEBHOOK_PATH, web::post().to(webhook))
                .route(CALLBACK_PATH, web::post().to(callback));
        }
    }

    async fn webhook(
        inbox: web::Data<Inbox>,
        QStash {
            payload, delivery, ..
        }: QStash<Order>,
    ) -> HttpResponse {
        match inbox.handle_order(delivery.message_id, delivery.retried, payload) {
            Outcome::Accepted(echo) => HttpResponse::Ok().json(echo),
            Outcome::TryLater => HttpResponse::ServiceUnavailable().body("try again later"),
            Outcome::Refused(reason) => {
                let status = StatusCode::from_u16(super::NON_RETRYABLE_STATUS)
                    .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
                HttpResponse::build(status)
                    .insert_header((NON_RETRYABLE_HEADER, "true"))
                    .body(reason)
            }
        }
    }

    async fn callback(
        inbox: web::Data<Inbox>,
        QStashCallback {
            callback, delivery, ..
        }: QStashCallback,
    ) -> String {
        inbox.handle_callback(delivery.message_id, callback)
    }
}

// The top-level README's snippets, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_keeps_only_the_latest() {
        let inbox = Inbox::new();
        let total = u32::try_from(Inbox::KEEP).unwrap() + 5;
        for order in 1..=total {
            let outcome =
                inbox.handle_order(format!("msg_{order}"), 0, Order { order, item: None });
            assert!(matches!(outcome, Outcome::Accepted(_)));
        }
        let seen = inbox.seen();
        assert_eq!(seen.len(), Inbox::KEEP);
        let first = match &seen[0] {
            Seen::Delivery { echo, .. } => echo.payload.order,
            Seen::Callback { .. } => 0,
        };
        assert_eq!(first, 6);
    }
}
