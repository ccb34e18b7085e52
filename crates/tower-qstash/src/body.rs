//! The request body the inner service gets, and the response body the layer answers with.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use qstash_receiver::receive::BodyFailure;

use crate::deadline::Deadline;

pin_project! {
    /// Reads a whole body, counting: fails with [`BodyFailure::TooLarge`] as soon as it grows
    /// past `limit`, without reading the rest, and with [`BodyFailure::TimedOut`] when it is not
    /// whole `timeout` after it first had to be waited for (a total, not a per-read, limit:
    /// a body trickling in a byte at a time is cut off as surely as a stalled one). A body that
    /// arrives in one chunk is handed on as that chunk, without a copy (the usual case: one
    /// read of a small request); several chunks are joined into one buffer. Trailers are
    /// ignored; a failing body stream is [`BodyFailure::Unreadable`].
    pub(crate) struct ReadBody<B> {
        #[pin]
        body: B,
        limit: usize,
        first: Option<Bytes>,
        joined: Option<BytesMut>,
        deadline: Deadline,
    }
}

impl<B> ReadBody<B> {
    pub(crate) const fn new(body: B, limit: usize, timeout: Option<Duration>) -> Self {
        Self {
            body,
            limit,
            first: None,
            joined: None,
            deadline: Deadline::new(timeout),
        }
    }
}

impl<B: Body> Future for ReadBody<B> {
    type Output = Result<Bytes, BodyFailure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let polled = this.body.as_mut().poll_frame(cx);
            let Poll::Ready(frame) = polled else {
                if this.deadline.expired(cx) {
                    return Poll::Ready(Err(BodyFailure::TimedOut));
                }
                return Poll::Pending;
            };
            let Some(frame) = frame else {
                let bytes = match (this.joined.take(), this.first.take()) {
                    (Some(joined), _) => joined.freeze(),
                    (None, first) => first.unwrap_or_default(),
                };
                return Poll::Ready(Ok(bytes));
            };
            let frame = frame.map_err(|_| BodyFailure::Unreadable)?;
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            let len = data.remaining();
            let so_far = this
                .joined
                .as_ref()
                .map_or_else(|| this.first.as_ref().map_or(0, Bytes::len), BytesMut::len);
            if len > this.limit.saturating_sub(so_far) {
                return Poll::Ready(Err(BodyFailure::TooLarge));
            }
            if len == 0 {
                continue;
            }
            if let Some(joined) = this.joined.as_mut() {
                joined.extend_from_slice(&data.copy_to_bytes(len));
            } else if let Some(first) = this.first.take() {
                let mut joined = BytesMut::with_capacity(first.len() + len);
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data.copy_to_bytes(len));
                *this.joined = Some(joined);
            } else {
                // `Bytes::copy_to_bytes` hands out the same buffer: no copy.
                *this.first = Some(data.copy_to_bytes(len));
            }
        }
    }
}

/// The body of a verified request: the bytes the signature was checked over, buffered once
/// and handed on without a copy, as a single data frame.
#[derive(Debug, Default, Clone)]
pub struct VerifiedBody {
    bytes: Option<Bytes>,
}

impl VerifiedBody {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Self {
            bytes: (!bytes.is_empty()).then_some(bytes),
        }
    }

    /// The bytes (empty once the body has been polled to its end).
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.bytes.unwrap_or_default()
    }
}

impl Body for VerifiedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().bytes.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let len = self.bytes.as_ref().map_or(0, Bytes::len);
        SizeHint::with_exact(u64::try_from(len).unwrap_or(u64::MAX))
    }
}

pin_project! {
    /// The response body of [`QStashService`](crate::QStashService): the inner service's body,
    /// or the short answer to a refused delivery.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Body { #[pin] body: B },
        Rejection { bytes: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) const fn new(body: B) -> Self {
        Self {
            inner: Inner::Body { body },
        }
    }

    pub(crate) fn rejection(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Rejection {
                bytes: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Body { body } => f.debug_tuple("ResponseBody").field(body).finish(),
            Inner::Rejection { bytes } => f.debug_tuple("ResponseBody").field(bytes).finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProj::Body { body } => body.poll_frame(cx),
            InnerProj::Rejection { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Body { body } => body.is_end_stream(),
            Inner::Rejection { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Body { body } => body.size_hint(),
            Inner::Rejection { bytes } => {
                let len = bytes.as_ref().map_or(0, Bytes::len);
                SizeHint::with_exact(u64::try_from(len).unwrap_or(u64::MAX))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    /// A body of the given chunks.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn read_body_counts_and_joins() {
        struct Case {
            name: &'static str,
            chunks: &'static [&'static str],
            limit: usize,
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
                name: "chunks over",
                chunks: &["ab", "cd", "ef"],
                limit: 5,
                want: None,
            },
        ];
        for case in cases {
            let body = Chunks(
                case.chunks
                    .iter()
                    .map(|c| Bytes::from_static(c.as_bytes()))
                    .collect(),
            );
            let result = ReadBody::new(body, case.limit, None).await;
            match (result, case.want) {
                (Ok(bytes), Some(want)) => assert_eq!(bytes, want, "{}", case.name),
                (Err(BodyFailure::TooLarge), None) => {}
                (other, _) => panic!("{}: {other:?}", case.name),
            }
        }
    }

    /// A body that never yields anything.
    struct Never;

    impl Body for Never {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    #[test]
    fn outside_a_runtime_there_is_no_timer_and_no_panic() {
        let mut read = std::pin::pin!(ReadBody::new(Never, 10, Some(Duration::ZERO)));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(read.as_mut().poll(&mut cx).is_pending());
        assert!(read.as_mut().poll(&mut cx).is_pending());
    }

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let start = tokio::time::Instant::now();
        let result = ReadBody::new(Never, 10, Some(Duration::from_secs(3))).await;
        assert!(matches!(result, Err(BodyFailure::TimedOut)), "{result:?}");
        assert_eq!(start.elapsed().as_secs(), 3);
    }

    #[tokio::test]
    async fn read_body_does_not_copy_a_single_chunk() {
        let bytes = Bytes::from(vec![1u8; 4096]);
        let ptr = bytes.as_ptr();
        let read = ReadBody::new(http_body_util::Full::new(bytes), 4096, None)
            .await
            .unwrap();
        assert_eq!(read.as_ptr(), ptr);
    }

    #[tokio::test]
    async fn verified_body_is_one_frame_without_a_copy() {
        let bytes = Bytes::from(vec![7u8; 1000]);
        let ptr = bytes.as_ptr();
        let body = VerifiedBody::new(bytes);
        assert_eq!(body.size_hint().exact(), Some(1000));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.as_ptr(), ptr);
    }

    #[tokio::test]
    async fn empty_bodies_end_at_once() {
        let body = VerifiedBody::new(Bytes::new());
        assert!(body.is_end_stream());
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
        let body = ResponseBody::<VerifiedBody>::rejection(Bytes::new());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn response_body_passes_either_through() {
        let inner = ResponseBody::new(VerifiedBody::new(Bytes::from_static(b"inner")));
        assert_eq!(inner.collect().await.unwrap().to_bytes(), "inner");
        let refused = ResponseBody::<VerifiedBody>::rejection(Bytes::from_static(b"no"));
        assert_eq!(refused.size_hint().exact(), Some(2));
        assert_eq!(refused.collect().await.unwrap().to_bytes(), "no");
    }
}
