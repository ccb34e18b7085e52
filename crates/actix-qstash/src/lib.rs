#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod body;
mod config;
mod error;
mod extract;
mod guard;
mod verification;

pub use qstash_receiver;

pub use config::{DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, QStashConfig};
pub use error::QStashError;
pub use extract::{ExtractFuture, QStash, QStashCallback, QStashRaw};
pub use guard::{QStashGuard, QStashGuardFuture, QStashGuardMiddleware};
