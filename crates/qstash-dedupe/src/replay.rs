//! [`ReplayGuard`]: refuse a token whose `jti` was seen before.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use qstash_receiver::{Claims, Clock};

use crate::memory::MemoryStore;
use crate::store::{Begin, DedupeStore, StoreError};

/// Refuses a QStash token whose `jti` was already seen within its validity window.
///
/// QStash signs every attempt anew, with a fresh `jti`, so a `jti` seen twice means someone
/// re-sent a captured request. The signature alone does not catch that: a captured request
/// verifies until its `exp`, and the `Upstash-Message-Id` header is not signed, so a replay
/// with a changed message id would also get past the message-id dedupe. The guard keeps each
/// `jti` (as the store key `jti:<token id>`) for `exp - now` plus the clock tolerance, the
/// only time in which the token can verify at all, so the store holds at most five minutes
/// of token ids.
///
/// Used by [`Deduplicator::replay_guard`](crate::Deduplicator::replay_guard) inside the
/// layers, or on its own with the verified [`Claims`] of any framework.
pub struct ReplayGuard<St = MemoryStore> {
    store: Arc<St>,
    tolerance: Duration,
    clock: Clock,
}

impl<St> Clone for ReplayGuard<St> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            tolerance: self.tolerance,
            clock: self.clock.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for ReplayGuard<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("store", &self.store)
            .field("tolerance", &self.tolerance)
            .field("clock", &self.clock)
            .finish()
    }
}

/// Why [`ReplayGuard::check`] refused a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The token's `jti` was seen before: a replay.
    #[error("token id seen before (replayed token)")]
    Replayed,
    /// The token has no `jti` claim, so it cannot be checked (QStash always sends one).
    #[error("token has no `jti` claim")]
    MissingTokenId,
    /// The store failed; nothing is known about the token.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<St> ReplayGuard<St> {
    /// A guard over `store`, with a clock tolerance of 0 seconds.
    #[must_use]
    pub fn new(store: St) -> Self {
        Self::shared(Arc::new(store))
    }

    pub(crate) const fn shared(store: Arc<St>) -> Self {
        Self {
            store,
            tolerance: Duration::ZERO,
            clock: Clock::system(),
        }
    }

    /// The verifier's clock tolerance: a `jti` is kept that much past `exp`. Defaults to
    /// 0 seconds.
    #[must_use]
    pub const fn clock_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Where [`check`](ReplayGuard::check) reads the time: the receiver's clock (a token's
    /// id is kept until its `exp` on it). Defaults to [`Clock::system`].
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

impl<St: DedupeStore> ReplayGuard<St> {
    /// Records the token's `jti`, refusing it if it was recorded before. Call it only with
    /// the claims of a verified token.
    ///
    /// # Errors
    ///
    /// [`ReplayError::Replayed`], [`ReplayError::MissingTokenId`], or the store's failure.
    pub async fn check(&self, claims: &Claims) -> Result<(), ReplayError> {
        self.check_at(claims, self.clock.now()).await
    }

    /// [`check`](Self::check) at `now` (unix seconds).
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub async fn check_at(&self, claims: &Claims, now: i64) -> Result<(), ReplayError> {
        let jti = claims.token_id().ok_or(ReplayError::MissingTokenId)?;
        let left = claims.expires_at().saturating_sub(now).max(0);
        let keep = Duration::from_secs(left.unsigned_abs())
            .saturating_add(self.tolerance)
            .max(Duration::from_secs(1));
        let key = format!("jti:{jti}");
        let owner = qstash_receiver::sign::new_id("seen_");
        match self.store.begin(&key, &owner, keep).await? {
            Begin::Started => Ok(()),
            Begin::InProgress { .. } | Begin::Done => Err(ReplayError::Replayed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use qstash_receiver::{Clock, Signer, SigningKeys, Subject, Validation, Verifier};

    use super::{ReplayError, ReplayGuard};
    use crate::MemoryStore;

    /// A token id is kept until the token's `exp` on the guard's clock, not the system's: a
    /// token issued at a manual clock's time (long past, by the system clock) is still
    /// refused while it is valid on that clock.
    #[tokio::test]
    async fn keeps_a_token_id_until_exp_on_its_clock() {
        const ISSUED: i64 = 1_600_000_000;
        let clock = Clock::manual(u64::try_from(ISSUED).unwrap() * 1000);
        let store = MemoryStore::new().with_clock(clock.clone());
        let guard = ReplayGuard::new(store).clock(clock.clone());
        let url = "https://app.example.com/hook";
        let token = Signer::new("sig_current")
            .unwrap()
            .sign_at(url, b"{}", ISSUED);
        let claims = Verifier::new(SigningKeys::new("sig_current", "sig_next").unwrap())
            .verify(
                &token,
                b"{}",
                &Validation::new(Subject::Url(url)).at(ISSUED),
            )
            .unwrap();

        guard.check(&claims).await.unwrap();
        clock.advance(Duration::from_secs(200));
        assert_eq!(guard.check(&claims).await, Err(ReplayError::Replayed));
        clock.advance(Duration::from_secs(101));
        assert_eq!(
            guard.check(&claims).await,
            Ok(()),
            "kept until exp, not longer"
        );
    }
}
