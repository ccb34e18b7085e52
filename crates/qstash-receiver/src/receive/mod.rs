//! The receiving pipeline: one framework-free function from a request to a verified delivery
//! or a [`Refusal`], in two steps so that nothing is buffered before it is authenticated.
//!
//! 1. [`Receiver::check_head`], with the request's method, target, headers and declared
//!    length, before any byte of the body is read. In this order:
//!    1. exactly one `Upstash-Signature`, visible ASCII (else 401);
//!    2. the token, all but its `body` claim: length, shape, `alg`, the MAC (current key, then
//!       next), the claims, `iss`, the validity window on the configured [`Clock`], and `sub`
//!       under the [`SubjectPolicy`](crate::subject::SubjectPolicy) (else 401);
//!    3. the declared body length against the limit (else 413);
//!    4. the `Upstash-*` delivery headers (else 489 or 422, see [`PayloadErrorStatus`]);
//!    5. room in the buffer budget shared by all requests (else 503 with `Retry-After`).
//!
//!    Every refusal of this step leaves the body unread and answers HTTP/1.x with
//!    `Connection: close`.
//! 2. The body step ([`Admission`]): the adapter hands over each chunk
//!    ([`Admission::data`]), reports a body that is not ready ([`Admission::pending`]) or
//!    broken ([`Admission::fail`]), does what each [`BodyStep`] says (read on, wait, start the
//!    body's timer, finish), and calls [`Admission::finish`]: the `body` claim (else 401), or
//!    the answer to a failed body (413, 408, 400, or 500 when no timer can run).
//!
//! A typed payload is then read with [`Verified::json`] or [`Verified::callback`] (489 or 422).
//!
//! [`Clock`]: crate::Clock

mod admission;
mod answer;
mod budget;
mod config;
mod head;
mod subject;

pub use self::admission::{Admission, BodyFailure, BodyStep, Verified, VerifiedRest};
pub use self::answer::{
    Answer, LOG_TARGET, Linger, LogLevel, MAX_LOGGED_MESSAGE_ID, MAX_REPLAYED_BODY, Reason, Refusal,
};
pub use self::budget::DEFAULT_BUDGET_BODIES;
pub use self::config::{
    BUSY_RETRY_AFTER_SECS, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, PayloadErrorStatus,
    Receiver, Settings,
};
pub use self::head::{RequestHead, RequestTarget};
