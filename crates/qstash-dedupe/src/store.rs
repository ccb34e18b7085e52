//! [`DedupeStore`]: where the marks live, and what its answers mean.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// What [`DedupeStore::begin`] found for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Begin {
    /// There was no mark: the caller now holds the lease and should run the handler.
    Started,
    /// Another attempt holds the lease.
    InProgress {
        /// How long that lease still runs, when the store can tell.
        remaining: Option<Duration>,
    },
    /// The key is marked done: the handler already succeeded.
    Done,
}

/// What [`DedupeStore::complete`] or [`DedupeStore::release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// The mark was changed: it belonged to this owner (or, for `complete`, it had expired
    /// and no other attempt had taken it).
    Applied,
    /// The mark was left alone: another attempt holds it or marked it done, or (for
    /// `release`) it is gone already.
    NotOwner,
}

/// A store of dedupe marks, shared by every instance that must see the same marks.
///
/// A key is in one of three states: absent, *in progress* (held by one owner, with a lease
/// that expires), or *done* (kept for a retention time). Every method is atomic with respect
/// to the others on the same key, across all instances using the store, and compares the
/// owner: an attempt whose lease expired cannot complete or release a mark another attempt
/// took since.
///
/// Owners are opaque strings unique to one attempt; keys are opaque strings
/// (`msg:<message id>`, `jti:<token id>`). Stores never log keys' values or owners at a level
/// above `trace`.
///
/// Futures must be `Send` so that the tower layer works on multi-threaded runtimes.
pub trait DedupeStore: Send + Sync + 'static {
    /// Marks `key` in progress for `owner` for `lease`, unless it is marked already.
    ///
    /// # Errors
    ///
    /// The store could not be reached or answered unexpectedly; nothing is known about `key`.
    fn begin(
        &self,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<Begin, StoreError>> + Send;

    /// Marks `key` done for `retention`, if `owner` holds it or it is absent (the lease
    /// expired and nobody took it since).
    ///
    /// # Errors
    ///
    /// The store could not be reached or answered unexpectedly; the mark may or may not
    /// have been changed.
    fn complete(
        &self,
        key: &str,
        owner: &str,
        retention: Duration,
    ) -> impl Future<Output = Result<Settled, StoreError>> + Send;

    /// Removes `key`'s mark, if `owner` holds it (in progress).
    ///
    /// # Errors
    ///
    /// The store could not be reached or answered unexpectedly; the mark then stays until its
    /// lease expires.
    fn release(
        &self,
        key: &str,
        owner: &str,
    ) -> impl Future<Output = Result<Settled, StoreError>> + Send;
}

/// A store failure. Its text never contains keys, owners, tokens or bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dedupe store {kind}: {detail}")]
pub struct StoreError {
    kind: StoreErrorKind,
    detail: Cow<'static, str>,
}

/// Why a store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store cannot be reached: connection refused or lost, a time-out.
    Unavailable,
    /// The store is full of marks that must not be evicted (leases in progress).
    Full,
    /// The store answered, but not as expected (an error reply, a wrong type).
    Unexpected,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "unavailable",
            Self::Full => "full",
            Self::Unexpected => "answered unexpectedly",
        })
    }
}

impl StoreError {
    /// A store error of `kind`. `detail` must not contain keys, owners or secrets.
    pub fn new(kind: StoreErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// Why the store failed.
    #[must_use]
    pub const fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

/// At least one millisecond: a zero TTL is an error in Redis and meaningless elsewhere.
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
