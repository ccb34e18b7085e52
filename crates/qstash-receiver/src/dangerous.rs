//! Reading a token **without verifying it**, fenced in a module whose name says so (as
//! jsonwebtoken's `dangerous`): for tools that explain a refusal, never for deciding anything.
//!
//! # Security
//!
//! Anyone can write a token that reads well here. Authorize, route and deduplicate only on
//! what [`Verifier`](crate::Verifier) or [`Receiver`](crate::Receiver) verified.

pub use crate::inspect::{UnverifiedClaims, inspect_unverified};
