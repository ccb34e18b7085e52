#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod body;
mod error;
mod extract;
mod head;
mod middleware;

pub use qstash_receiver;

pub use error::{QStashError, QStashErrorHandler};
pub use extract::{ExtractFuture, QStash, QStashCallback, QStashRaw};
pub use middleware::{QStashMiddleware, QStashMiddlewareFuture, QStashMiddlewareService};
