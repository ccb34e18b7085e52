#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod base64url;
mod callback;
mod claims;
pub mod dangerous;
mod delivery;
mod diagnose;
mod digest;
mod error;
pub mod headers;
mod inspect;
mod keys;
mod receive;
pub mod retry;
mod sign;
mod time;
mod verify;

pub use callback::{Callback, CallbackError};
pub use claims::{Claims, MatchedKey};
pub use delivery::{
    CALLER_IP_HEADER, Delivery, DeliveryError, MESSAGE_ID_HEADER, NON_RETRYABLE_HEADER,
    NON_RETRYABLE_STATUS, RETRIED_HEADER, SCHEDULE_ID_HEADER, TOPIC_NAME_HEADER,
};
pub use diagnose::{Check, Diagnosis, Hint, Outcome, Step, SubjectFacts, Window};
pub use digest::body_hash;
pub use error::{ConfigError, Error, ErrorKind};
pub use headers::{HeaderLookup, REGION_HEADER, SIGNATURE_HEADER};
pub use keys::{
    DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY, ENV_CURRENT, ENV_DEV, ENV_NEXT, ENV_REGION,
    KNOWN_REGIONS, KeyRing, SigningKeys,
};
pub use receive::{
    Admission, Answer, BUSY_RETRY_AFTER_SECS, BaseUrl, BodyFailure, BodyStep, DEFAULT_BODY_TIMEOUT,
    DEFAULT_BUDGET_BODIES, DEFAULT_MAX_BODY_BYTES, DUPLICATE_HEADER, LOG_TARGET, LogLevel,
    MAX_LOGGED_MESSAGE_ID, MAX_REPLAYED_BODY, PayloadErrorStatus, Reason, Receiver, Refusal,
    RequestHead, RequestTarget, Settings, SubjectPolicy, Verified, VerifiedRest,
};
pub use sign::{Signer, TOKEN_LIFETIME_SECS, new_id, new_token_id};
pub use time::{Clock, unix_now};
pub use verify::{
    DEFAULT_MAX_TOKEN_BYTES, Subject, VerifiedToken, Verifier, path_and_query,
    signature_from_headers,
};
