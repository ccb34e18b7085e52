//! The request body the inner service gets, and the response body the layer answers with.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use qstash_receiver::Admission;
use qstash_receiver::receive::BodyFailure;

use crate::deadline::Timer;

pin_project! {
    /// Polls a request body into an [`Admission`], which decides: each data frame goes to
    /// [`Admission::data`] (trailers are ignored), a body that is not ready to
    /// [`Admission::pending`], a failing one to [`Admission::fail`]; the timer the admission
    /// asks for runs here, on Tokio ([`Timer`]). Ready when the admission is to be finished.
    pub(crate) struct ReadBody<B> {
        #[pin]
        body: B,
        timer: Option<Timer>,
    }
}

impl<B> ReadBody<B> {
    pub(crate) const fn new(body: B) -> Self {
        Self { body, timer: None }
    }
}

impl<B: Body> ReadBody<B> {
    /// Reads until the admission says to finish or the body ends; then
    /// [`Admission::finish`] gives the answer.
    pub(crate) fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        admission: &mut Admission,
    ) -> Poll<()> {
        let this = self.project();
        let mut body = this.body;
        admission.poll_body(
            cx,
            |cx| {
                body.as_mut().poll_frame(cx).map(|frame| {
                    frame.map(|frame| match frame {
                        Ok(frame) => Ok(frame.into_data().map_or_else(
                            |_trailers| Bytes::new(),
                            // `Bytes::copy_to_bytes` hands out the same buffer: no copy.
                            |mut data| data.copy_to_bytes(data.remaining()),
                        )),
                        Err(_) => Err(BodyFailure::Unreadable),
                    })
                })
            },
            this.timer,
            Timer::start,
            Timer::expired,
        )
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
    use std::time::Duration;

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

    /// An admission for a delivery of `signed`, with a 4 KiB limit and `timeout`.
    fn admission(signed: &[u8], timeout: Option<Duration>) -> Admission {
        let headers = qstash_receiver::Signer::new("sig_current")
            .unwrap()
            .delivery_headers("https://app.example.com/hook", signed, "msg_1", 0);
        qstash_receiver::Receiver::from(
            qstash_receiver::SigningKeys::new("sig_current", "sig_next").unwrap(),
        )
        .max_body_bytes(4096)
        .body_timeout(timeout)
        .check_head(&qstash_receiver::RequestHead::new(
            "POST", "/hook", &headers,
        ))
        .unwrap()
    }

    /// Reads `body` into `admission` and finishes it.
    async fn read<B: Body>(
        body: B,
        mut admission: Admission,
    ) -> Result<qstash_receiver::Verified, qstash_receiver::Answer> {
        let mut read = std::pin::pin!(ReadBody::new(body));
        std::future::poll_fn(|cx| read.as_mut().poll_read(cx, &mut admission)).await;
        admission.finish()
    }

    #[tokio::test]
    async fn frames_go_to_the_admission() {
        let chunks = [&b"ab"[..], b"", b"cd"].map(Bytes::from_static);
        let verified = read(Chunks(chunks.into()), admission(b"abcd", None))
            .await
            .unwrap();
        assert_eq!(verified.body, "abcd");

        // Over the core's limit: refused without reading on (the chunks after are not pulled).
        let big = Bytes::from(vec![b'x'; 4097]);
        let rest = Bytes::from_static(b"unread");
        let mut body = Chunks([big, rest.clone()].into());
        let mut admission = admission(b"", None);
        let mut reader = std::pin::pin!(ReadBody::new(&mut body));
        std::future::poll_fn(|cx| reader.as_mut().poll_read(cx, &mut admission)).await;
        assert_eq!(admission.finish().unwrap_err().status(), 413);
        assert_eq!(body.0.front(), Some(&rest));
    }

    #[tokio::test]
    async fn a_single_frame_is_not_copied() {
        let bytes = Bytes::from(vec![1u8; 4096]);
        let ptr = bytes.as_ptr();
        let verified = read(
            http_body_util::Full::new(bytes.clone()),
            admission(&bytes, Some(Duration::from_secs(1))),
        )
        .await
        .unwrap();
        assert_eq!(verified.body.as_ptr(), ptr);
    }

    /// A body of the given frames, then its end.
    struct Frames(std::collections::VecDeque<Result<Frame<Bytes>, &'static str>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    #[tokio::test]
    async fn trailers_are_skipped_and_a_failing_stream_is_unreadable() {
        let trailers = Frames(
            [
                Ok(Frame::data(Bytes::from_static(b"ab"))),
                Ok(Frame::trailers(http::HeaderMap::new())),
            ]
            .into(),
        );
        assert_eq!(
            read(trailers, admission(b"ab", None)).await.unwrap().body,
            "ab"
        );
        let failing = Frames(
            [
                Ok(Frame::data(Bytes::from_static(b"ab"))),
                Err("connection reset"),
            ]
            .into(),
        );
        let refusal = read(failing, admission(b"ab", None)).await.unwrap_err();
        assert_eq!(refusal.status(), 400);
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
    fn where_no_timer_runs_a_timeout_is_refused_not_ignored() {
        // Outside a Tokio runtime (and without the `tokio` feature) there is no timer: a body
        // that has to be waited for is answered 500 instead of being read with no limit.
        let mut admission = admission(b"", Some(Duration::from_secs(10)));
        let mut read = std::pin::pin!(ReadBody::new(Never));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(read.as_mut().poll_read(&mut cx, &mut admission).is_ready());
        let refusal = admission.finish().unwrap_err();
        assert_eq!(refusal.status(), 500);
        assert_eq!(refusal.reason().as_str(), "not_configured");

        // With no timeout, there is nothing to run: the body is waited for.
        let mut admission = self::admission(b"", None);
        let mut read = std::pin::pin!(ReadBody::new(Never));
        assert!(
            read.as_mut()
                .poll_read(&mut cx, &mut admission)
                .is_pending()
        );
        assert!(
            read.as_mut()
                .poll_read(&mut cx, &mut admission)
                .is_pending()
        );
    }

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let start = tokio::time::Instant::now();
        let refusal = read(Never, admission(b"", Some(Duration::from_secs(3))))
            .await
            .unwrap_err();
        assert_eq!(refusal.status(), 408);
        assert_eq!(start.elapsed().as_secs(), 3);
    }

    #[cfg(not(feature = "tokio"))]
    #[tokio::test]
    async fn without_tokio_even_a_runtime_has_no_timer() {
        let refusal = read(Never, admission(b"", Some(Duration::from_secs(3))))
            .await
            .unwrap_err();
        assert_eq!(refusal.status(), 500);
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
