#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod admin;
mod api;
mod config;
mod console;
mod duration;
mod engine;
mod error;
mod expr;
mod filter;
mod flow;
mod options;
mod record;
mod server;
mod state;

pub use crate::api::router;
pub use crate::config::{Config, DEV_TOKEN, Limits, MAX_BODY_BYTES, Observer};
pub use crate::engine::{Engine, Publish, PublishAnswer, Published};
pub use crate::error::ApiError;
pub use crate::options::MAX_RETRIES;
pub use crate::record::{
    Answer, Attempt, DeadLetter, Event, EventState, MessageKind, RetryReason, Verdict,
};
pub use crate::server::{Builder, HEADER_READ_TIMEOUT, LocalQStash};
/// The workspace's one clock (the same as `qstash_receiver::Clock`), which an [`Engine`]
/// runs on: [`Clock::system`], or [`Clock::manual`] for tests that move time.
pub use qstash_receiver::Clock;
