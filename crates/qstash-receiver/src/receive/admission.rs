//! Step 2 of the pipeline, the body step as data: an [`Admission`] takes the body's chunks as
//! the adapter reads them, counts them against the limit, keeps them (one chunk as it is, several
//! joined), says when the body's timer starts, and finishes into a [`Verified`] delivery or the
//! [`Answer`] to give. The adapter only polls the body, runs the timer it is told to start, and
//! translates, like a caller of rustls' unbuffered API or of quinn-proto: bytes and time in,
//! what to do next out ([`BodyStep`]).

use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde::de::DeserializeOwned;

use super::answer::{Answer, MethodForLog, Reason, Refusal, logged_message_id};
use super::budget::Permit;
use super::config::PayloadErrorStatus;
use crate::callback::Callback;
use crate::claims::Claims;
use crate::delivery::Delivery;
use crate::diagnose;
use crate::verify::VerifiedToken;

/// Why reading a body failed, as the adapter saw it: told to [`Admission::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyFailure {
    /// The framework refused more bytes than its own limit (the admission counts against
    /// [`Admission::body_limit`] itself).
    TooLarge,
    /// The timer of [`BodyStep::StartTimer`] fired before the body was whole.
    TimedOut,
    /// The body stream failed (the client went away, a framing error).
    Unreadable,
    /// The adapter was asked to start a timer ([`BodyStep::StartTimer`]) and can run none
    /// here (no timer feature, no runtime): the body is not read with no time limit.
    NoTimer,
}

/// What the adapter does next, as an [`Admission`] answers each step of reading a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum BodyStep {
    /// Poll the body for its next frame.
    Read,
    /// The body had nothing: wait for its waker (and the timer's, once started).
    Wait,
    /// The body had nothing, for the first time: start a timer of this long now, poll it
    /// once so that it wakes the task, and wait. When it fires, tell
    /// [`Admission::fail`] [`BodyFailure::TimedOut`]; an adapter that can run no timer tells
    /// it [`BodyFailure::NoTimer`] at once instead. A body that never has to be waited for
    /// (already buffered) never starts one.
    StartTimer(Duration),
    /// Stop reading (the body is over the limit, complete, or failed): call
    /// [`Admission::finish`].
    Finish,
}

/// A request whose head passed every check, and the body step: the body's chunks go in with
/// [`data`](Self::data), a body that has nothing yet is reported with
/// [`pending`](Self::pending), a broken one with [`fail`](Self::fail), and
/// [`finish`](Self::finish) gives the verified delivery or the answer.
///
/// Holds the request's reservation in the buffer budget until it is finished or dropped.
///
/// # Examples
///
/// An adapter's loop, over a body given as a list of polls (`None` for "not ready"):
///
/// ```
/// use bytes::Bytes;
/// use qstash_receiver::receive::{BodyFailure, BodyStep};
/// use qstash_receiver::{Receiver, RequestHead, Signer, SigningKeys};
///
/// let receiver = Receiver::from(SigningKeys::new("sig_current", "sig_next")?);
/// let headers = Signer::new("sig_current")?
///     .delivery_headers("https://app.example.com/hook", b"{\"id\":1}", "msg_1", 0);
/// let mut admission = receiver
///     .check_head(&RequestHead::new("POST", "/hook", &headers))
///     .map_err(|r| r.to_string())?;
///
/// let mut polls = [Some("{\"id\""), None, Some(":1}")].into_iter();
/// loop {
///     let step = match polls.next() {
///         Some(Some(chunk)) => admission.data(Bytes::from_static(chunk.as_bytes())),
///         Some(None) => admission.pending(),
///         None => break, // the body's end
///     };
///     match step {
///         BodyStep::Read | BodyStep::Wait => {}
///         // This example has no timer: the time is never up.
///         BodyStep::StartTimer(_) => {}
///         BodyStep::Finish => break,
///     }
/// }
/// let verified = admission.finish().map_err(|r| r.to_string())?;
/// assert_eq!(&verified.body[..], b"{\"id\":1}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "an admission reserves buffer budget until it is finished or dropped"]
pub struct Admission {
    // Copied, not a `Receiver` clone: no shared reference count to touch per request.
    body_limit: usize,
    body_timeout: Option<Duration>,
    payload_error_status: PayloadErrorStatus,
    token: VerifiedToken,
    delivery: Delivery,
    close: bool,
    method: MethodForLog,
    _permit: Permit,
    /// The body's declared length (at most the limit): the capacity of a joined body.
    declared: usize,
    /// Where the body ends when its stream does not end by itself.
    ends_at: Option<u64>,
    /// The body's bytes so far.
    len: usize,
    /// The body while it is one chunk: handed on as it is.
    first: Option<Bytes>,
    /// The body once it is more than one chunk (empty until then: no allocation).
    joined: BytesMut,
    timer_started: bool,
    failure: Option<BodyFailure>,
}

impl Admission {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        body_limit: usize,
        body_timeout: Option<Duration>,
        payload_error_status: PayloadErrorStatus,
        token: VerifiedToken,
        delivery: Delivery,
        close: bool,
        method: MethodForLog,
        permit: Permit,
        declared: Option<u64>,
    ) -> Self {
        let declared = declared.map_or(0, |len| {
            usize::try_from(len).unwrap_or(usize::MAX).min(body_limit)
        });
        Self {
            body_limit,
            body_timeout,
            payload_error_status,
            token,
            delivery,
            close,
            method,
            _permit: permit,
            declared,
            ends_at: None,
            len: 0,
            first: None,
            joined: BytesMut::new(),
            timer_started: false,
            failure: None,
        }
    }

    /// The most body bytes accepted.
    #[must_use]
    pub const fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// How long reading the body may take in total, if limited: the timer
    /// [`BodyStep::StartTimer`] asks for.
    #[must_use]
    pub const fn body_timeout(&self) -> Option<Duration> {
        self.body_timeout
    }

    /// The delivery headers, already checked.
    #[must_use]
    pub const fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// The body's bytes taken so far.
    #[must_use]
    pub const fn body_len(&self) -> usize {
        self.len
    }

    /// Says where the body ends when its stream does not end by itself (a framework that
    /// hands out an upgraded connection's payload, which runs on past the body): bytes past
    /// `len` are not the body's, and the body is complete when it has `len` bytes; a stream
    /// that ends before is [`BodyFailure::Unreadable`]. [`BodyStep::Finish`] when that is
    /// already so, else [`BodyStep::Read`].
    pub fn body_ends_at(&mut self, len: u64) -> BodyStep {
        self.ends_at = Some(len);
        if self.is_complete() {
            BodyStep::Finish
        } else {
            BodyStep::Read
        }
    }

    /// Takes the body's next chunk: counts it against the limit (over it, nothing read is kept
    /// and the answer is 413) and keeps it, without a copy while the body is one chunk.
    /// [`BodyStep::Read`] for more, or [`BodyStep::Finish`].
    pub fn data(&mut self, mut chunk: Bytes) -> BodyStep {
        if self.failure.is_some() {
            return BodyStep::Finish;
        }
        if let Some(end) = self.ends_at {
            let room = usize::try_from(end)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.len);
            chunk.truncate(room);
        }
        if chunk.len() > self.body_limit.saturating_sub(self.len) {
            return self.fail(BodyFailure::TooLarge);
        }
        self.len += chunk.len();
        self.keep(chunk);
        if self.is_complete() {
            BodyStep::Finish
        } else {
            BodyStep::Read
        }
    }

    /// The body had nothing ready: [`BodyStep::StartTimer`] the first time when a timeout is
    /// set, else [`BodyStep::Wait`] ([`BodyStep::Finish`] after a failure).
    pub fn pending(&mut self) -> BodyStep {
        if self.failure.is_some() {
            return BodyStep::Finish;
        }
        match self.body_timeout {
            Some(timeout) if !self.timer_started => {
                self.timer_started = true;
                BodyStep::StartTimer(timeout)
            }
            _ => BodyStep::Wait,
        }
    }

    /// Reading the body failed: what was read is dropped, and [`finish`](Self::finish)
    /// answers for the first failure told. Always [`BodyStep::Finish`].
    pub fn fail(&mut self, failure: BodyFailure) -> BodyStep {
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
        self.first = None;
        self.joined = BytesMut::new();
        BodyStep::Finish
    }

    /// The adapter's whole body loop, on its three primitives: `next_chunk` polls the body's
    /// next chunk (`Ready(None)` at its end; an empty chunk for a frame without data),
    /// `start_timer` starts a timer of the given length (`None` where none can run), and
    /// `timer_expired` polls it. Each event goes to [`data`](Self::data),
    /// [`pending`](Self::pending) or [`fail`](Self::fail), and their [`BodyStep`]s are carried
    /// out: `Ready` when the admission is to be [finished](Self::finish), `Pending` when the
    /// body or the timer will wake `cx`.
    pub fn poll_body<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut next_chunk: impl FnMut(&mut Context<'_>) -> Poll<Option<Result<Bytes, BodyFailure>>>,
        timer: &mut Option<T>,
        start_timer: impl FnOnce(Duration) -> Option<T>,
        mut timer_expired: impl FnMut(&mut T, &mut Context<'_>) -> bool,
    ) -> Poll<()> {
        let mut start_timer = Some(start_timer);
        loop {
            let step = match next_chunk(cx) {
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Ready(Some(Ok(chunk))) => self.data(chunk),
                Poll::Ready(Some(Err(failure))) => self.fail(failure),
                Poll::Pending => match self.pending() {
                    BodyStep::StartTimer(timeout) => {
                        match start_timer.take().and_then(|start| start(timeout)) {
                            Some(started) => {
                                *timer = Some(started);
                                BodyStep::Wait
                            }
                            None => self.fail(BodyFailure::NoTimer),
                        }
                    }
                    step => step,
                },
            };
            match step {
                BodyStep::Read => {}
                BodyStep::Finish => return Poll::Ready(()),
                BodyStep::Wait | BodyStep::StartTimer(_) => {
                    if timer.as_mut().is_some_and(|t| timer_expired(t, cx)) {
                        let _ = self.fail(BodyFailure::TimedOut);
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Takes a whole body at once and finishes: [`data`](Self::data), then
    /// [`finish`](Self::finish).
    ///
    /// # Errors
    ///
    /// As [`finish`](Self::finish).
    pub fn finish_with(mut self, body: Bytes) -> Result<Verified, Refusal> {
        let _ = self.data(body);
        self.finish()
    }

    /// The body is read (its stream ended, or a step said [`BodyStep::Finish`]): checks the
    /// token's `body` claim against it.
    ///
    /// # Errors
    ///
    /// The answer for a failed body: 413 over the limit, 408 timed out, 400 unreadable, 500
    /// (`not_configured`) when no timer could run; 401 (`body_hash_mismatch`) for a body QStash
    /// did not sign.
    pub fn finish(mut self) -> Result<Verified, Refusal> {
        if self.failure.is_none() && self.ends_at.is_some() && !self.is_complete() {
            // The stream ended before the length the body was said to have.
            self.failure = Some(BodyFailure::Unreadable);
        }
        if let Some(failure) = self.failure {
            return Err(self.failed(failure));
        }
        let body = match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.joined).freeze(),
        };
        let Self {
            token,
            delivery,
            payload_error_status,
            method,
            ..
        } = self;
        let claimed = *token.claimed_digest();
        match token.verify_body(&body) {
            Ok(claims) => Ok(Verified {
                claims,
                delivery,
                body,
                payload_error_status,
                method,
            }),
            Err(e) => Err(logged(
                Refusal::signature(e)
                    .with_diagnosis(|| Some(diagnose::body_summary(&claimed, &body))),
                &delivery,
                method,
            )),
        }
    }

    fn is_complete(&self) -> bool {
        self.ends_at
            .is_some_and(|end| u64::try_from(self.len).is_ok_and(|len| len >= end))
    }

    fn keep(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(chunk),
            None => self.joined.extend_from_slice(&chunk),
            Some(first) => {
                // The second chunk: room for the declared length, at least both chunks.
                self.joined
                    .reserve(self.declared.max(first.len() + chunk.len()));
                self.joined.extend_from_slice(&first);
                self.joined.extend_from_slice(&chunk);
            }
        }
    }

    /// The answer to a body that could not be read.
    fn failed(&self, failure: BodyFailure) -> Refusal {
        let refusal = match failure {
            BodyFailure::TooLarge => too_large(self.body_limit),
            BodyFailure::TimedOut => Refusal::new(
                Reason::BodyTimeout,
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "body not received within {:?}",
                    self.body_timeout.unwrap_or_default()
                ),
            ),
            BodyFailure::Unreadable => Refusal::new(
                Reason::BodyUnreadable,
                StatusCode::BAD_REQUEST,
                "the body stream failed",
            ),
            BodyFailure::NoTimer => Refusal::not_configured(&format!(
                "the body had to be waited for and a body timeout of {:?} is set, but no timer \
                 can run here (tower-qstash: build it with its `tokio` feature and serve on a \
                 Tokio runtime); or set `Receiver::body_timeout(None)` to read bodies with no \
                 time limit",
                self.body_timeout.unwrap_or_default()
            )),
        };
        logged(refusal.closing(self.close), &self.delivery, self.method)
    }
}

/// The answer to a body over `limit`: 413.
pub(super) fn too_large(limit: usize) -> Refusal {
    Refusal::new(
        Reason::PayloadTooLarge,
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body larger than the limit of {limit} bytes"),
    )
}

/// `answer` with the request's message id and method, for its log event.
fn logged(answer: Answer, delivery: &Delivery, method: MethodForLog) -> Answer {
    answer
        .for_message(logged_message_id(Some(delivery.message_id.as_bytes())))
        .with_method(method.as_str())
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("delivery", &self.delivery)
            .field("body_limit", &self.body_limit)
            .field("body_timeout", &self.body_timeout)
            .field("body_len", &self.len)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

/// What [`Verified::split`] leaves besides the claims and the delivery: the body and how to
/// refuse its payload.
#[derive(Debug, Clone)]
pub struct VerifiedRest {
    body: Bytes,
    payload_error_status: PayloadErrorStatus,
    method: MethodForLog,
}

impl VerifiedRest {
    /// The raw body, as signed.
    #[must_use]
    pub const fn body(&self) -> &Bytes {
        &self.body
    }
}

/// A verified delivery: the claims, the delivery headers and the body QStash signed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified {
    /// The token's claims.
    pub claims: Claims,
    /// What the `Upstash-*` headers say.
    pub delivery: Delivery,
    /// The raw body, as signed.
    pub body: Bytes,
    payload_error_status: PayloadErrorStatus,
    method: MethodForLog,
}

impl Verified {
    /// The body as JSON of type `T`.
    ///
    /// # Errors
    ///
    /// The refusal for a payload that does not deserialize (489 or 422); its detail names
    /// the place and kind of the error, never the body's content.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Refusal> {
        serde_json::from_slice(&self.body).map_err(|e| {
            self.payload_refusal(
                Reason::InvalidPayload,
                &format!(
                    "payload does not deserialize: {}",
                    crate::error::json_error_text(&e)
                ),
            )
        })
    }

    /// The body as a QStash callback.
    ///
    /// # Errors
    ///
    /// The refusal for a body that is not a callback (489 or 422).
    pub fn callback(&self) -> Result<Callback, Refusal> {
        Callback::from_slice(&self.body)
            .map_err(|e| self.payload_refusal(Reason::InvalidCallback, &e))
    }

    /// The claims, the delivery and the body.
    #[must_use]
    pub fn into_parts(self) -> (Claims, Delivery, Bytes) {
        (self.claims, self.delivery, self.body)
    }

    /// The claims, the delivery and the rest, to keep apart without a copy (an adapter puts
    /// the claims and the delivery in the request's extensions, where handlers read them, and
    /// [`join`](Self::join)s them again for its extractors).
    #[must_use]
    pub fn split(self) -> (Claims, Delivery, VerifiedRest) {
        let rest = VerifiedRest {
            body: self.body,
            payload_error_status: self.payload_error_status,
            method: self.method,
        };
        (self.claims, self.delivery, rest)
    }

    /// The verified delivery [`split`](Self::split) apart, whole again.
    #[must_use]
    pub fn join(claims: Claims, delivery: Delivery, rest: VerifiedRest) -> Self {
        Self {
            claims,
            delivery,
            body: rest.body,
            payload_error_status: rest.payload_error_status,
            method: rest.method,
        }
    }

    /// The payload-error status this delivery was received with.
    #[must_use]
    pub const fn payload_error_status(&self) -> PayloadErrorStatus {
        self.payload_error_status
    }

    fn payload_refusal(&self, reason: Reason, error: &dyn fmt::Display) -> Refusal {
        let answer = Refusal::new(
            reason,
            self.payload_error_status.status(),
            error.to_string(),
        );
        logged(answer, &self.delivery, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Receiver, RequestHead, Signer, SigningKeys};

    const KEY: &str = "sig_current";
    const URL: &str = "https://app.example.com/hook";

    /// An admission for a delivery of `signed`, with `limit` and `timeout`.
    fn admission(signed: &[u8], limit: usize, timeout: Option<Duration>) -> Admission {
        let headers = Signer::new(KEY)
            .unwrap()
            .delivery_headers(URL, signed, "msg_1", 0);
        Receiver::from(SigningKeys::new(KEY, "sig_next").unwrap())
            .max_body_bytes(limit)
            .body_timeout(timeout)
            .check_head(&RequestHead::new("POST", "/hook", &headers))
            .unwrap()
    }

    /// Feeds `chunks` until a step says to finish; the steps taken.
    fn feed(admission: &mut Admission, chunks: &[&'static str]) -> Vec<BodyStep> {
        let mut steps = Vec::new();
        for chunk in chunks {
            let step = admission.data(Bytes::from_static(chunk.as_bytes()));
            steps.push(step);
            if step == BodyStep::Finish {
                break;
            }
        }
        steps
    }

    #[test]
    fn counts_and_joins() {
        struct Case {
            name: &'static str,
            chunks: &'static [&'static str],
            limit: usize,
            /// The body, or `None` for a 413.
            want: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "empty",
                chunks: &[],
                limit: 0,
                want: Some(""),
            },
            Case {
                name: "one chunk at the limit",
                chunks: &["abcd"],
                limit: 4,
                want: Some("abcd"),
            },
            Case {
                name: "one chunk over",
                chunks: &["abcde"],
                limit: 4,
                want: None,
            },
            Case {
                name: "chunks joined",
                chunks: &["ab", "", "cd", "e"],
                limit: 5,
                want: Some("abcde"),
            },
            Case {
                name: "exactly the limit in chunks",
                chunks: &["12345", "67890"],
                limit: 10,
                want: Some("1234567890"),
            },
            Case {
                name: "chunks over",
                chunks: &["ab", "cd", "ef"],
                limit: 5,
                want: None,
            },
        ];
        for case in cases {
            let signed = case.want.unwrap_or("").as_bytes();
            let mut reading = admission(signed, case.limit, None);
            let steps = feed(&mut reading, case.chunks);
            let result = reading.finish();
            match (result, case.want) {
                (Ok(verified), Some(want)) => {
                    assert_eq!(verified.body, want, "{}", case.name);
                    assert!(steps.iter().all(|s| *s == BodyStep::Read), "{}", case.name);
                }
                (Err(refusal), None) => {
                    assert_eq!(refusal.status(), 413, "{}", case.name);
                    assert_eq!(steps.last(), Some(&BodyStep::Finish), "{}", case.name);
                }
                (other, _) => panic!("{}: {other:?}", case.name),
            }
        }
    }

    #[test]
    fn over_the_limit_stops_at_the_chunk_that_passes_it() {
        let mut endless = admission(b"", 4096, None);
        let chunk = Bytes::from(vec![b'x'; 1024]);
        let mut taken = 0;
        while endless.data(chunk.clone()) == BodyStep::Read {
            taken += 1;
            assert!(taken <= 4, "went on past the limit");
        }
        assert_eq!(taken, 4, "4 chunks of 1 KiB fit, the 5th passes the limit");
        assert_eq!(endless.data(chunk), BodyStep::Finish, "stays finished");
        let refusal = endless.finish().unwrap_err();
        assert_eq!(
            (refusal.status().as_u16(), refusal.reason()),
            (413, Reason::PayloadTooLarge)
        );
        assert!(refusal.closes_connection());
    }

    #[test]
    fn one_chunk_is_not_copied() {
        let chunk = Bytes::from(vec![1u8; 4096]);
        let mut one = admission(&chunk, 4096, None);
        assert_eq!(one.data(chunk.clone()), BodyStep::Read);
        let verified = one.finish().unwrap();
        assert_eq!(verified.body.as_ptr(), chunk.as_ptr());
    }

    #[test]
    fn a_joined_body_is_allocated_once_for_its_declared_length() {
        let body = b"0123456789";
        let headers = Signer::new(KEY)
            .unwrap()
            .delivery_headers(URL, body, "msg_1", 0);
        let mut admission = Receiver::from(SigningKeys::new(KEY, "sig_next").unwrap())
            .check_head(&RequestHead::new("POST", "/hook", &headers).declared_len(Some(10)))
            .unwrap();
        let _ = admission.data(Bytes::from_static(b"01"));
        let _ = admission.data(Bytes::from_static(b"23"));
        assert!(admission.joined.capacity() >= 10);
        let ptr = admission.joined.as_ptr();
        let _ = admission.data(Bytes::from_static(b"456789"));
        let verified = admission.finish().unwrap();
        assert_eq!(verified.body.as_ptr(), ptr, "no reallocation");
    }

    #[test]
    fn the_timer_starts_the_first_time_the_body_is_not_ready() {
        let timeout = Duration::from_secs(3);
        let mut slow = admission(b"ab", 10, Some(timeout));
        assert_eq!(slow.data(Bytes::from_static(b"a")), BodyStep::Read);
        assert_eq!(slow.pending(), BodyStep::StartTimer(timeout));
        assert_eq!(slow.pending(), BodyStep::Wait, "started once");
        assert_eq!(slow.data(Bytes::from_static(b"b")), BodyStep::Read);
        assert_eq!(slow.pending(), BodyStep::Wait);
        assert!(slow.finish().is_ok());

        // A buffered body is never waited for: no timer.
        let mut buffered = admission(b"ab", 10, Some(timeout));
        assert_eq!(buffered.data(Bytes::from_static(b"ab")), BodyStep::Read);
        assert!(!buffered.timer_started);
        assert!(buffered.finish().is_ok());

        // No timeout, no timer.
        let mut unlimited = admission(b"ab", 10, None);
        assert_eq!(unlimited.pending(), BodyStep::Wait);
        assert_eq!(unlimited.pending(), BodyStep::Wait);
    }

    #[test]
    fn failures_are_answered_by_the_core() {
        let cases = [
            (BodyFailure::TimedOut, 408, Reason::BodyTimeout),
            (BodyFailure::Unreadable, 400, Reason::BodyUnreadable),
            (BodyFailure::TooLarge, 413, Reason::PayloadTooLarge),
            (BodyFailure::NoTimer, 500, Reason::NotConfigured),
        ];
        for (failure, status, reason) in cases {
            let mut failed = admission(b"ab", 10, Some(Duration::from_secs(3)));
            let _ = failed.data(Bytes::from_static(b"a"));
            assert_eq!(failed.fail(failure), BodyStep::Finish);
            assert_eq!(failed.data(Bytes::from_static(b"b")), BodyStep::Finish);
            assert_eq!(failed.pending(), BodyStep::Finish);
            assert!(failed.first.is_none(), "what was read is dropped");
            // The first failure told is the one answered.
            let _ = failed.fail(BodyFailure::Unreadable);
            let refusal = failed.finish().unwrap_err();
            assert_eq!(
                (refusal.status().as_u16(), refusal.reason()),
                (status, reason),
                "{failure:?}"
            );
            assert!(refusal.closes_connection(), "{failure:?}");
            assert_eq!(refusal.message_id(), Some("msg_1"));
            assert_eq!(refusal.method(), Some("POST"));
        }
    }

    #[test]
    fn no_timer_names_the_fix_and_no_secret() {
        let mut untimed = admission(b"", 10, Some(Duration::from_secs(10)));
        assert_eq!(
            untimed.pending(),
            BodyStep::StartTimer(Duration::from_secs(10))
        );
        let _ = untimed.fail(BodyFailure::NoTimer);
        let refusal = untimed.finish().unwrap_err();
        assert!(
            refusal.detail().contains("body_timeout(None)"),
            "{}",
            refusal.detail()
        );
        assert!(refusal.detail().contains("tokio"), "{}", refusal.detail());
        assert!(!refusal.detail().contains(KEY));
    }

    #[test]
    fn a_body_that_runs_on_ends_at_its_length() {
        type Case = (
            &'static str,
            &'static [&'static str],
            u64,
            Result<&'static str, u16>,
        );
        let cases: [Case; 5] = [
            ("empty", &[], 0, Ok("")),
            ("one chunk", &["abc"], 3, Ok("abc")),
            ("across chunks", &["ab", "cdef"], 3, Ok("abc")),
            ("ends early", &["ab"], 3, Err(400)),
            ("over the limit", &["abcdefghijk"], 11, Err(413)),
        ];
        for (name, chunks, end, want) in cases {
            let signed = want.unwrap_or("").as_bytes();
            let mut running_on = admission(signed, 10, None);
            let first = running_on.body_ends_at(end);
            assert_eq!(first == BodyStep::Finish, end == 0, "{name}");
            if first == BodyStep::Read {
                let _ = feed(&mut running_on, chunks);
            }
            match (running_on.finish(), want) {
                (Ok(verified), Ok(body)) => assert_eq!(verified.body, body, "{name}"),
                (Err(refusal), Err(status)) => assert_eq!(refusal.status(), status, "{name}"),
                (other, _) => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_body_qstash_did_not_sign_is_refused() {
        let mut unsigned = admission(b"signed", 10, None);
        let _ = unsigned.data(Bytes::from_static(b"other"));
        let refusal = unsigned.finish().unwrap_err();
        assert_eq!(refusal.status(), 401);
        assert_eq!(refusal.reason().as_str(), "body_hash_mismatch");
    }
}
