// The README's examples use the axum extractors.
#![cfg_attr(feature = "axum", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "axum"),
    doc = "Tower layer that runs QStash's receiving pipeline (`qstash_receiver::Receiver`) \
           before the inner service; see `QStashLayer`. The `axum` feature adds the \
           extractors and the full crate documentation."
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod body;
mod deadline;
mod drain;
#[cfg(feature = "axum")]
mod extract;
mod head;
#[cfg(feature = "lambda")]
mod lambda;
mod layer;
mod rejection;

pub use body::{ResponseBody, VerifiedBody};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::{ConfigSource, Layered, QStash, QStashCallback, QStashRaw};
pub use layer::{QStashLayer, QStashService, ResponseFuture};
pub use rejection::{QStashAnswer, QStashRejection};

/// The core crate, re-exported: `Receiver`, `Answer`, `Verifier`, `SigningKeys`, `Claims`,
/// `Delivery`, `Callback`, `Signer`, …
pub use qstash_receiver;
