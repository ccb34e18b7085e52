#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod base64url;
pub mod callback;
pub mod claims;
pub mod dangerous;
pub mod delivery;
pub mod diagnose;
pub mod digest;
mod error;
pub mod headers;
mod inspect;
pub mod keys;
pub mod receive;
pub mod retry;
pub mod sign;
pub mod subject;
pub mod time;
pub mod verify;

// The names nearly every user needs; the rest are in the modules above.
pub use callback::Callback;
pub use claims::Claims;
pub use delivery::Delivery;
pub use diagnose::Diagnosis;
pub use error::{ConfigError, Error, ErrorKind};
pub use keys::{KeyRing, SigningKeys};
pub use receive::{Admission, Answer, Reason, Receiver, RequestHead, Verified};
pub use sign::Signer;
pub use subject::Subject;
pub use time::Clock;
pub use verify::{Validation, VerifiedToken, Verifier};
