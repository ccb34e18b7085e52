//! The example receivers' handler logic, free of any web framework or runtime: the payload
//! ([`Order`]), what the webhook answers ([`Echo`], or the core's `Answer`), the [`Inbox`] that records
//! what the handlers saw and decides each answer, and how a callback is summed up
//! ([`describe`]). The Cloudflare Worker (`workers/`, built for wasm32) includes this same file,
//! so every example receiver answers alike.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use qstash_receiver::{Answer, Callback, headers::NON_RETRYABLE_HEADER};
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

/// The handlers' shared state: what they saw, and (for demos and tests) how many deliveries
/// to fail with 503 before accepting.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    seen: Arc<Mutex<Kept>>,
    fail_first: Arc<AtomicU32>,
}

/// The things seen, newest last, with the bytes they hold.
#[derive(Debug, Default)]
struct Kept {
    items: VecDeque<(Seen, usize)>,
    bytes: usize,
}

impl Seen {
    /// About how many bytes of payload this holds (its strings and bodies).
    fn weight(&self) -> usize {
        match self {
            Self::Delivery { echo, .. } => {
                echo.message_id.len() + echo.payload.item.as_ref().map_or(0, String::len)
            }
            Self::Callback {
                message_id,
                callback,
            } => {
                let headers: usize = callback
                    .header
                    .iter()
                    .chain(&callback.source_header)
                    .map(|(name, values)| {
                        name.len() + values.iter().map(String::len).sum::<usize>()
                    })
                    .sum();
                message_id.len() + callback.body.len() + callback.source_body.len() + headers
            }
        }
    }
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

    /// The last things seen, oldest first: at most [`Inbox::KEEP`] of them, holding at most
    /// [`Inbox::KEEP_BYTES`] of payload.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.lock()
            .items
            .iter()
            .map(|(seen, _)| seen.clone())
            .collect()
    }

    /// How many of the things seen are kept: a receiver under load must not grow without end.
    pub const KEEP: usize = 1000;

    /// How many bytes of payloads and bodies the kept things may hold: replays of large
    /// deliveries must not grow the receiver either. A thing larger than this alone is not kept.
    pub const KEEP_BYTES: usize = 4 * 1024 * 1024;

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, seen: Seen) {
        let weight = seen.weight();
        let mut kept = self.lock();
        if weight > Self::KEEP_BYTES {
            return;
        }
        while kept.items.len() >= Self::KEEP || kept.bytes + weight > Self::KEEP_BYTES {
            let Some((_, dropped)) = kept.items.pop_front() else {
                break;
            };
            kept.bytes -= dropped;
        }
        kept.bytes += weight;
        kept.items.push_back((seen, weight));
    }

    /// The bytes of payload the kept things hold.
    #[must_use]
    pub fn kept_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The webhook's logic: record the delivery and decide the answer: the echo (200, as
    /// JSON), or the core's [`Answer`] that each framework's writer of this workspace writes
    /// (a 503 "retry later" while failing, with QStash's own backoff as `Retry-After`; a 489
    /// "do not retry" for order 0).
    ///
    /// # Errors
    ///
    /// The answer for a delivery that is not accepted.
    pub fn handle_order(
        &self,
        message_id: String,
        retried: u32,
        payload: Order,
    ) -> Result<Echo, Answer> {
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
            let wait = qstash_receiver::retry::backoff(retried.saturating_add(1)).as_secs();
            let wait = u32::try_from(wait).unwrap_or(u32::MAX);
            Err(Answer::retry_later(wait, "try again later").with_message_id(&echo.message_id))
        } else if echo.payload.order == 0 {
            Err(Answer::do_not_retry("order 0 does not exist").with_message_id(&echo.message_id))
        } else {
            Ok(echo.clone())
        };
        let status = outcome
            .as_ref()
            .map_or_else(|answer| answer.status().as_u16(), |_| 200);
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
    if matches!(
        error,
        qstash_receiver::ConfigError::DevWithConfiguredKeys { .. }
    ) {
        return error.to_string();
    }
    format!(
        "no usable QStash signing keys ({error}). Set QSTASH_CURRENT_SIGNING_KEY and \
         QSTASH_NEXT_SIGNING_KEY (from the QStash console), or QSTASH_DEV=1 to accept the \
         local dev server's public keys"
    )
}
