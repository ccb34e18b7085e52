//! [`Deduplicator`]: the framework-free policy the layers apply.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use qstash_receiver::{Answer, Claims, Clock, Delivery};

use crate::memory::MemoryStore;
use crate::replay::{ReplayError, ReplayGuard};
use crate::store::{Begin, DedupeStore, Settled, StoreError};

pub use qstash_receiver::headers::DUPLICATE_HEADER;

/// How long a first delivery holds its in-progress mark by default: 60 seconds.
///
/// The lease must outlast the handler: a handler still running when its lease expires can
/// be run a second time by a retry. It is also how long a message stays blocked when the
/// process dies mid-handler (the mark cannot be released then), so it should not be much
/// longer than the slowest handler. Set it with [`Deduplicator::lease`].
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// How long a message stays marked done by default: 24 hours.
///
/// A duplicate of a handled message comes from a retry QStash scheduled because it did not
/// see the 2xx (lost response, time-out), so the mark must outlive the rest of the retry
/// schedule. QStash's default of 3 retries spans e^2.5 + e^5 + e^7.5 s ≈ 12 s + 148 s +
/// 1808 s ≈ 33 minutes; 24 hours covers that some 40 times over, and every schedule of up
/// to 4 retries (≈ 6.7 hours). A fifth and later retries each wait a full day (the backoff
/// cap): with more retries, set [`Deduplicator::retention`] to [`retry_schedule_span`](qstash_receiver::retry::retry_schedule_span) of
/// your retry count, plus the handler's time-out. Memory and Redis space grow with
/// retention × message rate, which is why the default is not longer.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// What to do when the store fails (cannot be reached, times out, is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreFailure {
    /// Answer 503 with `Retry-After` and do not run the handler: QStash retries, nothing is
    /// lost, nothing runs twice. The default.
    #[default]
    FailClosed,
    /// Run the handler without a mark: availability over exactly-once. A duplicate arriving
    /// while the store is down runs the handler again.
    FailOpen,
}

/// The `Retry-After` sent with 503 when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetryAfter {
    /// What QStash's default backoff would wait anyway before the next retry, from the
    /// delivery's `Upstash-Retried` (12 s, 148 s, 1808 s, …, at most a day). The default.
    ///
    /// QStash replaces its backoff with `Retry-After` and every answer uses up one retry, so
    /// a short fixed value would spend the default 3 retries within seconds of a store
    /// outage and send the message to the dead-letter queue; this keeps the ~33 minutes the
    /// default schedule rides out.
    #[default]
    Backoff,
    /// A fixed delay (whole seconds, rounded up).
    Fixed(Duration),
}

/// Deduplicates QStash deliveries by message id over a [`DedupeStore`]; the policy behind
/// `DedupeLayer` (feature `tower`) and `DedupeMiddleware` (feature `actix`), usable from
/// any framework through [`begin`](Self::begin) and [`finish`](Self::finish).
///
/// Cheap to clone: clones share the store.
pub struct Deduplicator<St = MemoryStore> {
    store: Arc<St>,
    lease: Duration,
    retention: Duration,
    on_store_failure: StoreFailure,
    store_retry_after: RetryAfter,
    replay: Option<ReplayGuard<St>>,
    clock_tolerance: Duration,
    clock: Clock,
}

impl<St> Clone for Deduplicator<St> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            lease: self.lease,
            retention: self.retention,
            on_store_failure: self.on_store_failure,
            store_retry_after: self.store_retry_after,
            replay: self.replay.clone(),
            clock_tolerance: self.clock_tolerance,
            clock: self.clock.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for Deduplicator<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deduplicator")
            .field("store", &self.store)
            .field("lease", &self.lease)
            .field("retention", &self.retention)
            .field("on_store_failure", &self.on_store_failure)
            .field("store_retry_after", &self.store_retry_after)
            .field("replay_guard", &self.replay.is_some())
            .field("clock_tolerance", &self.clock_tolerance)
            .finish()
    }
}

impl Default for Deduplicator<MemoryStore> {
    fn default() -> Self {
        Self::new(MemoryStore::new())
    }
}

impl<St> Deduplicator<St> {
    /// A deduplicator over `store` with the default lease, retention and failure policy,
    /// and the [replay guard](Self::replay_guard) on.
    #[must_use]
    pub fn new(store: St) -> Self {
        let store = Arc::new(store);
        Self {
            replay: Some(ReplayGuard::shared(Arc::clone(&store))),
            store,
            lease: DEFAULT_LEASE,
            retention: DEFAULT_RETENTION,
            on_store_failure: StoreFailure::FailClosed,
            store_retry_after: RetryAfter::Backoff,
            clock_tolerance: Duration::ZERO,
            clock: Clock::system(),
        }
    }

    /// How long a first delivery holds its in-progress mark. Defaults to [`DEFAULT_LEASE`]
    /// (60 seconds); at least 1 second.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// How long a handled message stays marked done. Defaults to [`DEFAULT_RETENTION`]
    /// (24 hours).
    #[must_use]
    pub const fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// What to do when the store fails. Defaults to [`StoreFailure::FailClosed`].
    #[must_use]
    pub const fn on_store_failure(mut self, policy: StoreFailure) -> Self {
        self.on_store_failure = policy;
        self
    }

    /// The `Retry-After` of the 503 sent when the store fails. Defaults to
    /// [`RetryAfter::Backoff`].
    #[must_use]
    pub const fn store_retry_after(mut self, retry_after: RetryAfter) -> Self {
        self.store_retry_after = retry_after;
        self
    }

    /// Whether to refuse (401) a token whose `jti` was seen before within its validity
    /// window, in the same store (keys `jti:<token id>`), and a token without a `jti`.
    /// On by default: `Upstash-Message-Id` is not signed, so without it a captured delivery
    /// re-sent with a new message id within the token's five minutes would run the handler
    /// again. It costs one more store operation per delivery. See [`ReplayGuard`].
    #[must_use]
    pub fn replay_guard(mut self, enabled: bool) -> Self {
        self.replay = enabled.then(|| {
            ReplayGuard::shared(Arc::clone(&self.store))
                .clock_tolerance(self.clock_tolerance)
                .clock(self.clock.clone())
        });
        self
    }

    /// The verifier's clock tolerance: the replay guard keeps a `jti` that much past the
    /// token's `exp`. Defaults to 0 seconds.
    #[must_use]
    pub fn clock_tolerance(mut self, tolerance: Duration) -> Self {
        self.clock_tolerance = tolerance;
        self.replay = self.replay.map(|guard| guard.clock_tolerance(tolerance));
        self
    }

    /// Where the replay guard reads the time: give it the receiver's clock
    /// ([`Receiver::clock`](qstash_receiver::Receiver::clock)). Defaults to
    /// [`Clock::system`]. (The marks' own expiry is the store's: see
    /// [`MemoryStore::with_clock`](crate::MemoryStore::with_clock).)
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.replay = self.replay.map(|guard| guard.clock(clock.clone()));
        self.clock = clock;
        self
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &St {
        &self.store
    }
}

/// What [`Deduplicator::begin`] decided.
#[derive(Debug)]
#[must_use]
pub enum Decision {
    /// Run the handler, then hand its status to [`Deduplicator::finish`].
    Run(Attempt),
    /// Do not run the handler: send this answer (the core's one answer type; its writers are
    /// tower-qstash's `QStashAnswer` and actix-qstash's `QStashError`, which log it when they
    /// write it).
    Answer(Answer),
}

/// A delivery whose handler may run. Hand it back to [`Deduplicator::finish`] or
/// [`Deduplicator::fail`]; dropped without that (the request was cancelled, the handler
/// panicked), its mark stays in progress until the lease expires and a `warn` event says so.
#[must_use]
pub struct Attempt {
    message_id: String,
    key: String,
    /// `None` once settled, or when running without a mark (fail-open).
    owner: Option<String>,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("message_id", &self.message_id)
            .field("marked", &self.owner.is_some())
            .finish()
    }
}

impl Attempt {
    /// The delivery's message id.
    #[must_use]
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// Whether the message is marked in progress for this attempt (false when the store
    /// failed and the policy is fail-open).
    #[must_use]
    pub const fn is_marked(&self) -> bool {
        self.owner.is_some()
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.owner.is_some() {
            tracing::warn!(
                message_id = %self.message_id,
                "dedupe: request dropped before the handler finished (cancelled or panicked); \
                 the message stays marked in progress until its lease expires"
            );
        }
    }
}

impl<St: DedupeStore> Deduplicator<St> {
    /// Decides whether this delivery's handler runs: marks its message id in progress for the
    /// lease when it is new, and answers duplicates, store failures, replays and requests that
    /// were not verified. Pass the [`Delivery`] and [`Claims`] the QStash verification put in
    /// the request's extensions.
    ///
    /// An answer is not logged here: its writer logs it once, when it answers (with the
    /// message id, which the answer carries, and the method the layer adds).
    pub async fn begin(&self, delivery: Option<&Delivery>, claims: Option<&Claims>) -> Decision {
        let Some(delivery) = delivery else {
            return Decision::Answer(Answer::not_configured(
                "dedupe: the request has no verified QStash `Delivery` in its extensions: the \
                 dedupe layer must sit behind the QStash verification (tower-qstash's \
                 QStashLayer as the outer layer, actix-qstash's QStashMiddleware wrapped after the \
                 DedupeMiddleware)",
            ));
        };
        let message_id = delivery.message_id.as_str();
        if let Some(guard) = &self.replay {
            let Some(claims) = claims else {
                return Decision::Answer(
                    Answer::not_configured(
                        "dedupe: the replay guard is on but the request has no verified QStash \
                         `Claims` in its extensions: the dedupe layer must sit behind the QStash \
                         verification",
                    )
                    .with_message_id(message_id),
                );
            };
            match guard.check(claims).await {
                Ok(()) => {}
                Err(ReplayError::Store(error)) => {
                    if let Some(answer) = self.store_failed(delivery, "replay check", &error) {
                        return Decision::Answer(answer);
                    }
                }
                Err(error) => {
                    return Decision::Answer(
                        Answer::replayed(&format!("dedupe: {error}")).with_message_id(message_id),
                    );
                }
            }
        }

        let key = format!("msg:{message_id}");
        let owner = qstash_receiver::sign::new_id("lease_");
        match self.store.begin(&key, &owner, self.lease).await {
            Ok(Begin::Started) => {
                tracing::debug!(message_id, "dedupe: first delivery, running the handler");
                Decision::Run(Attempt {
                    message_id: message_id.to_owned(),
                    key,
                    owner: Some(owner),
                })
            }
            Ok(Begin::InProgress { remaining }) => {
                let lease = ceil_secs(self.lease);
                let secs = remaining.map_or(lease, ceil_secs).clamp(1, lease);
                Decision::Answer(
                    Answer::in_progress(saturating_u32(secs)).with_message_id(message_id),
                )
            }
            Ok(Begin::Done) => Decision::Answer(Answer::duplicate().with_message_id(message_id)),
            Err(error) => match self.store_failed(delivery, "begin", &error) {
                Some(answer) => Decision::Answer(answer),
                None => Decision::Run(Attempt {
                    message_id: message_id.to_owned(),
                    key,
                    owner: None,
                }),
            },
        }
    }

    /// The answer to a store failure, or `None` to run the handler (fail-open).
    fn store_failed(
        &self,
        delivery: &Delivery,
        during: &str,
        error: &StoreError,
    ) -> Option<Answer> {
        let message_id = delivery.message_id.as_str();
        match self.on_store_failure {
            StoreFailure::FailClosed => {
                let secs = match self.store_retry_after {
                    // Whole seconds as QStash's table gives them (12 s, 148 s, ...).
                    RetryAfter::Backoff => {
                        qstash_receiver::retry::backoff(delivery.retried.saturating_add(1))
                            .as_secs()
                    }
                    RetryAfter::Fixed(delay) => ceil_secs(delay),
                };
                Some(
                    Answer::store_unavailable(
                        saturating_u32(secs),
                        &format!(
                            "dedupe: store failed during {during}: {error}; the handler was not \
                             run (fail-closed)"
                        ),
                    )
                    .with_message_id(message_id),
                )
            }
            StoreFailure::FailOpen => {
                tracing::warn!(
                    message_id,
                    during,
                    %error,
                    "dedupe: store failed, running the handler without a mark (fail-open): a \
                     duplicate may run it again"
                );
                None
            }
        }
    }

    /// Settles an attempt with the handler's status: a 2xx marks the message done for the
    /// retention; anything else (489 included) releases the mark so that QStash's retry (or a
    /// manual retry from the dead-letter queue) runs the handler again.
    ///
    /// Never fails: a store failure here is logged, and the handler's answer stands (turning
    /// a handled 2xx into an error would make QStash retry a message that was handled).
    pub async fn finish(&self, attempt: Attempt, status: StatusCode) {
        if status.is_success() {
            self.complete(attempt).await;
        } else {
            self.release(attempt, Some(status)).await;
        }
    }

    /// Settles an attempt whose handler failed without a status (an error from the inner
    /// service): releases the mark.
    pub async fn fail(&self, attempt: Attempt) {
        self.release(attempt, None).await;
    }

    async fn complete(&self, mut attempt: Attempt) {
        let Some(owner) = attempt.owner.take() else {
            return;
        };
        let message_id = attempt.message_id.as_str();
        match self
            .store
            .complete(&attempt.key, &owner, self.retention)
            .await
        {
            Ok(Settled::Applied) => {
                tracing::debug!(message_id, "dedupe: handled, marked done");
            }
            Ok(Settled::NotOwner) => tracing::warn!(
                message_id,
                "dedupe: the handler outlived its lease and another attempt took the message \
                 over (or finished it): the handler may have run twice; raise the lease"
            ),
            Err(error) => tracing::error!(
                message_id,
                %error,
                "dedupe: handled, but the done mark could not be stored: a duplicate will run \
                 the handler again once the lease expires"
            ),
        }
    }

    async fn release(&self, mut attempt: Attempt, status: Option<StatusCode>) {
        let Some(owner) = attempt.owner.take() else {
            return;
        };
        let message_id = attempt.message_id.as_str();
        let status = status.map(|s| s.as_u16());
        match self.store.release(&attempt.key, &owner).await {
            Ok(Settled::Applied) => {
                tracing::debug!(message_id, status, "dedupe: handler failed, mark released");
            }
            Ok(Settled::NotOwner) => tracing::warn!(
                message_id,
                status,
                "dedupe: handler failed after its lease expired; nothing to release"
            ),
            Err(error) => tracing::error!(
                message_id,
                status,
                %error,
                "dedupe: handler failed and its mark could not be released: retries get 409 \
                 until the lease expires"
            ),
        }
    }
}

/// Whole seconds, rounded up.
fn saturating_u32(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn ceil_secs(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qstash_receiver::retry::retry_schedule_span;

    #[test]
    fn default_retention_covers_the_default_schedule() {
        let three = retry_schedule_span(3);
        assert_eq!(three.as_secs() / 60, 32, "≈ 33 minutes");
        assert!(DEFAULT_RETENTION > retry_schedule_span(4));
        assert!(DEFAULT_RETENTION < retry_schedule_span(5));
        assert_eq!(retry_schedule_span(0), Duration::ZERO);
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }
}
