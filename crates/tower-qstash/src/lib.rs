// The README's examples use the axum extractors.
#![cfg_attr(feature = "axum", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "axum"),
    doc = "Tower layer that verifies Upstash QStash deliveries; see `QStashLayer`. The \
           `axum` feature adds the extractors and the full crate documentation."
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod body;
mod config;
mod deadline;
#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "lambda")]
mod lambda;
#[cfg(feature = "lambda")]
mod lambda_verify;
mod layer;
mod rejection;
mod verify;

pub use body::{ResponseBody, VerifiedBody};
pub use config::{DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, QStashConfig};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::{ConfigSource, Layered, QStash, QStashCallback, QStashRaw};
pub use layer::{QStashLayer, QStashService, ResponseFuture};
pub use rejection::{
    BodyReadFailed, BodyTimeout, InvalidCallback, InvalidDelivery, InvalidPayload,
    InvalidSignature, MissingLayer, PayloadTooLarge, QStashRejection,
};

/// The core crate, re-exported: `Verifier`, `SigningKeys`, `Claims`, `Delivery`, `Callback`,
/// `Signer`, …
pub use qstash_receiver;
