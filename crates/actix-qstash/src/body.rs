//! Reading the body with a limit enforced while it streams in.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use bytes::{Bytes, BytesMut};
use futures_core::Stream as _;

use crate::error::QStashError;

/// Collects a payload of at most `limit` bytes, within `timeout` in total. One chunk (the usual
/// case for small bodies, and always for a payload put back by the guard) is handed on as is,
/// without a copy.
pub(crate) struct BodyReader {
    payload: Payload,
    limit: usize,
    first: Option<Bytes>,
    rest: BytesMut,
    len: usize,
    timeout: Option<Duration>,
    /// Started the first time the payload is not ready, so a body that is already here never
    /// touches the timer; boxed because `Sleep` cannot move, and only slow bodies need one.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BodyReader {
    pub(crate) fn new(payload: Payload, limit: usize, timeout: Option<Duration>) -> Self {
        Self {
            payload,
            limit,
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
    pub(crate) fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, QStashError>> {
        loop {
            let Poll::Ready(next) = Pin::new(&mut self.payload).poll_next(cx) else {
                return if self.expired(cx) {
                    self.discard();
                    Poll::Ready(Err(QStashError::BodyTimeout {
                        timeout: self.timeout.unwrap_or_default(),
                    }))
                } else {
                    Poll::Pending
                };
            };
            match next {
                None => return Poll::Ready(Ok(self.take())),
                Some(Err(PayloadError::Overflow)) => {
                    return Poll::Ready(Err(QStashError::PayloadTooLarge { limit: self.limit }));
                }
                Some(Err(e)) => return Poll::Ready(Err(QStashError::ReadBody(e))),
                Some(Ok(chunk)) => {
                    self.len = self.len.saturating_add(chunk.len());
                    if self.len > self.limit {
                        // Drop what was read: nothing of an oversize body is kept.
                        self.discard();
                        return Poll::Ready(Err(QStashError::PayloadTooLarge {
                            limit: self.limit,
                        }));
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

/// Whether the request's `Content-Length` already says the body is over `limit`.
pub(crate) fn content_length_exceeds(
    headers: &actix_web::http::header::HeaderMap,
    limit: usize,
) -> bool {
    headers
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX))
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

    async fn read(payload: Payload, limit: usize) -> Result<Bytes, QStashError> {
        let mut reader = BodyReader::new(payload, limit, None);
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
        assert!(matches!(err, QStashError::PayloadTooLarge { limit: 4096 }));
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
        assert!(matches!(
            read(overflow, 10).await,
            Err(QStashError::PayloadTooLarge { limit: 10 })
        ));
        let incomplete = Payload::from(futures_stream(|| {
            Poll::Ready(Some(Err(PayloadError::Incomplete(None))))
        }));
        assert!(matches!(
            read(incomplete, 10).await,
            Err(QStashError::ReadBody(_))
        ));
    }

    #[test]
    fn content_length() {
        use actix_web::http::header::{CONTENT_LENGTH, HeaderMap, HeaderValue};
        let cases = [
            ("absent", None, false),
            ("under", Some("99"), false),
            ("equal", Some("100"), false),
            ("over", Some("101"), true),
            ("huge", Some("99999999999999999999"), false),
            ("garbage", Some("abc"), false),
        ];
        for (name, value, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(CONTENT_LENGTH, HeaderValue::from_static(v));
            }
            assert_eq!(content_length_exceeds(&headers, 100), want, "{name}");
        }
    }
}
