#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

#[cfg(feature = "actix")]
mod actix;
mod deduplicator;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod replay;
mod store;
#[cfg(feature = "tower")]
mod tower;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub use crate::actix::{DedupeMiddleware, DedupeMiddlewareService};
pub use crate::deduplicator::{
    Attempt, DEFAULT_LEASE, DEFAULT_RETENTION, DUPLICATE_HEADER, Decision, Deduplicator,
    RetryAfter, StoreFailure,
};
pub use crate::memory::{DEFAULT_CAPACITY, MemoryStore};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use crate::postgres::{
    DEFAULT_BUSY_RETRY_AFTER, DEFAULT_CLEANUP_BATCH, DEFAULT_CONSUMER, DEFAULT_REPLAY_BODY_LIMIT,
    DEFAULT_SCHEMA, DEFAULT_TABLE, InboxAnswer, InboxAnswerKind, InboxError, InboxTransaction,
    PgInbox, PgInboxBuilder,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::redis::{
    DEFAULT_KEY_PREFIX, DEFAULT_TIMEOUT, REDIS_URL_ENV, RedisStore, RedisStoreBuilder,
};
pub use crate::replay::{ReplayError, ReplayGuard};
pub use crate::store::{Begin, DedupeStore, Settled, StoreError, StoreErrorKind};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use crate::tower::{Dedupe, DedupeLayer, ResponseBody, ResponseFuture};
/// The core's one answer type (the same as `qstash_receiver::Answer`), which
/// [`Decision::Answer`] carries.
pub use qstash_receiver::Answer;
/// The workspace's one clock (the same as `qstash_receiver::Clock`), which a
/// [`MemoryStore`] reads: [`Clock::system`], or [`Clock::manual`] for tests that move time.
pub use qstash_receiver::Clock;
