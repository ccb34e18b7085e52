//! Reading the body with the admission's limit, enforced while it streams in, and its total
//! time limit on Tokio's timer.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use bytes::{Bytes, BytesMut};
use futures_core::Stream as _;
use qstash_receiver::{Admission, receive::BodyFailure};

/// Collects a payload of at most `limit` bytes, within `timeout` in total. One chunk (the usual
/// case for small bodies, and always for a payload put back by the middleware) is handed on as
/// is, without a copy.
pub(crate) struct BodyReader {
    payload: Payload,
    limit: usize,
    /// The body's length when the payload does not end by itself (see
    /// [`upgrade_body_len`](crate::head::upgrade_body_len)): reading stops there.
    len_hint: Option<u64>,
    first: Option<Bytes>,
    rest: BytesMut,
    len: usize,
    timeout: Option<Duration>,
    /// Started the first time the payload is not ready, so a body that is already here never
    /// touches the timer; boxed because `Sleep` cannot move, and only slow bodies need one.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BodyReader {
    /// A reader with the limit and time of `admission`; `exact` is the body's length when the
    /// payload does not end by itself.
    pub(crate) fn new(payload: Payload, admission: &Admission, exact: Option<u64>) -> Self {
        Self::with_limits(
            payload,
            admission.body_limit(),
            admission.body_timeout(),
            exact,
        )
    }

    fn with_limits(
        payload: Payload,
        limit: usize,
        timeout: Option<Duration>,
        exact: Option<u64>,
    ) -> Self {
        Self {
            payload,
            limit,
            len_hint: exact,
            first: None,
            rest: BytesMut::new(),
            len: 0,
            timeout,
            deadline: None,
        }
    }

    /// Reads until the end of the body; refuses as soon as the count passes the limit, so an
    /// oversize body is never buffered, and when the time is up, so a body trickling in holds
    /// its connection for at most that long.
    pub(crate) fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, BodyFailure>> {
        loop {
            if self
                .len_hint
                .is_some_and(|exact| u64::try_from(self.len).is_ok_and(|len| len >= exact))
            {
                return Poll::Ready(Ok(self.take()));
            }
            let Poll::Ready(next) = Pin::new(&mut self.payload).poll_next(cx) else {
                return if self.expired(cx) {
                    self.discard();
                    Poll::Ready(Err(BodyFailure::TimedOut))
                } else {
                    Poll::Pending
                };
            };
            match next {
                // A payload that should have run on ended early: the client went away.
                None if self.len_hint.is_some() => {
                    self.discard();
                    return Poll::Ready(Err(BodyFailure::Unreadable));
                }
                None => return Poll::Ready(Ok(self.take())),
                Some(Err(PayloadError::Overflow)) => {
                    self.discard();
                    return Poll::Ready(Err(BodyFailure::TooLarge));
                }
                Some(Err(_)) => {
                    self.discard();
                    return Poll::Ready(Err(BodyFailure::Unreadable));
                }
                Some(Ok(mut chunk)) => {
                    if let Some(exact) = self.len_hint {
                        // What follows the declared length is not this body's.
                        let room = usize::try_from(exact)
                            .unwrap_or(usize::MAX)
                            .saturating_sub(self.len);
                        chunk.truncate(room);
                    }
                    self.len = self.len.saturating_add(chunk.len());
                    if self.len > self.limit {
                        // Drop what was read: nothing of an oversize body is kept.
                        self.discard();
                        return Poll::Ready(Err(BodyFailure::TooLarge));
                    }
                    self.push(chunk);
                }
            }
        }
    }

    /// Whether the time is up; otherwise `cx` is woken when it is. Outside a Tokio runtime
    /// (actix always runs in one) there is no timer, and the time is never up.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.deadline.is_none() {
            let Some(timeout) = self.timeout else {
                return false;
            };
            if tokio::runtime::Handle::try_current().is_err() {
                return false;
            }
            self.deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        }
        self.deadline
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }

    fn discard(&mut self) {
        self.first = None;
        self.rest = BytesMut::new();
    }

    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        match self.first.take() {
            None if self.rest.is_empty() => self.first = Some(chunk),
            None => self.rest.extend_from_slice(&chunk),
            Some(first) => {
                self.rest.reserve(first.len() + chunk.len());
                self.rest.extend_from_slice(&first);
                self.rest.extend_from_slice(&chunk);
            }
        }
    }

    fn take(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.rest).freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::future::poll_fn;
    use std::rc::Rc;

    /// A payload of `chunks`, counting how many were pulled, then pending forever if `endless`.
    fn payload(chunks: Vec<&'static [u8]>, pulled: Rc<Cell<usize>>, endless: bool) -> Payload {
        let mut chunks = chunks.into_iter();
        let stream = futures_stream(move || {
            pulled.set(pulled.get() + 1);
            match chunks.next() {
                Some(c) => Poll::Ready(Some(Ok(Bytes::from_static(c)))),
                None if endless => Poll::Ready(Some(Ok(Bytes::from_static(&[b'x'; 1024])))),
                None => Poll::Ready(None),
            }
        });
        Payload::from(stream)
    }

    fn futures_stream(
        next: impl FnMut() -> Poll<Option<Result<Bytes, PayloadError>>> + Unpin + 'static,
    ) -> Pin<Box<dyn futures_core::Stream<Item = Result<Bytes, PayloadError>>>> {
        struct FnStream<F>(F);
        impl<F> futures_core::Stream for FnStream<F>
        where
            F: FnMut() -> Poll<Option<Result<Bytes, PayloadError>>> + Unpin,
        {
            type Item = Result<Bytes, PayloadError>;
            fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                (self.get_mut().0)()
            }
        }
        Box::pin(FnStream(next))
    }

    async fn read(payload: Payload, limit: usize) -> Result<Bytes, BodyFailure> {
        read_exact(payload, limit, None).await
    }

    async fn read_exact(
        payload: Payload,
        limit: usize,
        exact: Option<u64>,
    ) -> Result<Bytes, BodyFailure> {
        let mut reader = BodyReader::with_limits(payload, limit, None, exact);
        poll_fn(|cx| reader.poll_body(cx)).await
    }

    #[actix_web::test]
    async fn collects_chunks() {
        type Case = (&'static str, Vec<&'static [u8]>, &'static [u8]);
        let cases: [Case; 4] = [
            ("empty", vec![], b""),
            ("one chunk", vec![b"abc"], b"abc"),
            ("three chunks", vec![b"ab", b"", b"cd", b"e"], b"abcde"),
            ("exactly the limit", vec![b"12345", b"67890"], b"1234567890"),
        ];
        for (name, chunks, want) in cases {
            let pulled = Rc::new(Cell::new(0));
            let body = read(payload(chunks, pulled, false), 10).await.unwrap();
            assert_eq!(body, want, "{name}");
        }
    }

    #[actix_web::test]
    async fn one_chunk_is_not_copied() {
        let chunk = Bytes::from_static(b"only chunk");
        let body = read(Payload::from(chunk.clone()), 100).await.unwrap();
        assert_eq!(body.as_ptr(), chunk.as_ptr());
    }

    #[actix_web::test]
    async fn stops_pulling_at_the_limit() {
        // An endless body: reading to the end would never finish.
        let pulled = Rc::new(Cell::new(0));
        let err = read(payload(vec![], pulled.clone(), true), 4096)
            .await
            .unwrap_err();
        assert_eq!(err, BodyFailure::TooLarge);
        assert_eq!(
            pulled.get(),
            5,
            "4 chunks of 1 KiB fit, the 5th passes the limit"
        );
    }

    #[actix_web::test]
    async fn stream_errors() {
        let overflow = Payload::from(futures_stream(|| {
            Poll::Ready(Some(Err(PayloadError::Overflow)))
        }));
        assert_eq!(read(overflow, 10).await, Err(BodyFailure::TooLarge));
        let incomplete = Payload::from(futures_stream(|| {
            Poll::Ready(Some(Err(PayloadError::Incomplete(None))))
        }));
        assert_eq!(read(incomplete, 10).await, Err(BodyFailure::Unreadable));
    }

    #[actix_web::test]
    async fn a_payload_that_runs_on_is_cut_at_its_length() {
        // An endless payload (as actix-http hands out for `Upgrade: websocket`): the declared
        // length ends the body, and the bytes after it are not the body's.
        type Case = (
            &'static str,
            Vec<&'static [u8]>,
            u64,
            Result<&'static [u8], BodyFailure>,
        );
        let cases: [Case; 5] = [
            ("empty", vec![], 0, Ok(b"")),
            ("one chunk", vec![b"abc"], 3, Ok(b"abc")),
            ("across chunks", vec![b"ab", b"cd"], 3, Ok(b"abc")),
            ("ends early", vec![b"ab"], 3, Err(BodyFailure::Unreadable)),
            (
                "over the limit",
                vec![b"abcdefghijk"],
                11,
                Err(BodyFailure::TooLarge),
            ),
        ];
        for (name, chunks, exact, want) in cases {
            let endless = !matches!(want, Err(BodyFailure::Unreadable));
            let pulled = Rc::new(Cell::new(0));
            let got = read_exact(payload(chunks, pulled, endless), 10, Some(exact)).await;
            assert_eq!(got.as_deref(), want.as_deref(), "{name}");
        }
    }
}
