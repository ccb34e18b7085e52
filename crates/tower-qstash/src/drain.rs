//! The lingering close: after an answer given before the request body was read, the rest of
//! the body is read and dropped within the core's [`Linger`] bounds, so that the server does
//! not close the connection with unread bytes (which the kernel answers with a reset that can
//! destroy the answer before a client that is still writing reads it).
//!
//! The answer is written meanwhile, with its `Content-Length`: hyper keeps feeding the body
//! to whoever holds it, and closes the connection cleanly once the body ends, or as before
//! (with a reset) once the drain gives up.

use http_body::Body;
use qstash_receiver::Answer;

/// Lets go of `body` as `answer` says: for an answer that [lingers](Answer::linger), what
/// the body has ready is dropped at once, and the rest on a Tokio task that reads and drops
/// it within the bounds; otherwise (or without the `tokio` feature, or outside a Tokio
/// runtime) it is dropped at once.
pub(crate) fn linger<B>(body: B, answer: &Answer)
where
    B: Body + Send + 'static,
{
    #[cfg(feature = "tokio")]
    if let Some(linger) = answer.linger() {
        if !body.is_end_stream() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let mut drain = timed::Drain::new(body, linger);
                // A body that is already whole (a buffered one) needs no task and no timer.
                if drain.drop_ready() {
                    runtime.spawn(drain.within(linger));
                }
                return;
            }
        }
    }
    #[cfg(not(feature = "tokio"))]
    let _ = answer;
    drop(body);
}

#[cfg(feature = "tokio")]
mod timed {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use bytes::Buf as _;
    use http_body::Body;
    use pin_project_lite::pin_project;
    use qstash_receiver::receive::Linger;
    use tokio::time::Sleep;

    /// Frames taken in one poll before yielding to the runtime, so that a fast client does
    /// not keep the worker thread.
    const FRAMES_PER_POLL: usize = 32;

    /// Reads and drops frames of a body until it ends, fails, or has given
    /// [`Linger::max_bytes`]; then drops it.
    pub(super) struct Drain<B> {
        body: Pin<Box<B>>,
        left: u64,
    }

    impl<B: Body> Drain<B> {
        pub(super) fn new(body: B, linger: Linger) -> Self {
            Self {
                body: Box::pin(body),
                left: linger.max_bytes(),
            }
        }

        /// Drops what the body has ready now, up to [`FRAMES_PER_POLL`] frames (the answer
        /// waits for this); whether it may have more to come.
        pub(super) fn drop_ready(&mut self) -> bool {
            let mut cx = Context::from_waker(Waker::noop());
            !matches!(self.poll_frames(&mut cx), Poll::Ready(false))
        }

        /// The rest, within [`Linger::max_time`] from now.
        pub(super) fn within(self, linger: Linger) -> Within<B> {
            Within {
                drain: self,
                deadline: tokio::time::sleep(linger.max_time()),
            }
        }

        /// Up to [`FRAMES_PER_POLL`] frames: `Ready(true)` when there may be more right away,
        /// `Ready(false)` when done.
        fn poll_frames(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
            for _ in 0..FRAMES_PER_POLL {
                match self.body.as_mut().poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        let len = frame.data_ref().map_or(0, |data| data.remaining());
                        let len = u64::try_from(len).unwrap_or(u64::MAX);
                        if len >= self.left {
                            return Poll::Ready(false);
                        }
                        self.left -= len;
                    }
                    Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(false),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(true)
        }
    }

    pin_project! {
        /// A [`Drain`] that also stops at its deadline.
        pub(super) struct Within<B> {
            drain: Drain<B>,
            #[pin]
            deadline: Sleep,
        }
    }

    impl<B: Body> Future for Within<B> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let this = self.project();
            if this.deadline.poll(cx).is_ready() {
                return Poll::Ready(());
            }
            match this.drain.poll_frames(cx) {
                Poll::Ready(false) => Poll::Ready(()),
                Poll::Ready(true) => {
                    // Yield, so that a fast client does not keep the worker thread.
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use std::collections::VecDeque;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use bytes::Bytes;
        use http_body::Frame;

        use super::*;

        /// `count` chunks of `size` bytes, then the end (or, if `stall`, nothing ever again);
        /// counts the frames taken.
        struct Chunks {
            left: VecDeque<Bytes>,
            stall: bool,
            taken: Arc<AtomicUsize>,
        }

        impl Chunks {
            fn new(size: usize, count: usize, stall: bool) -> (Self, Arc<AtomicUsize>) {
                let taken = Arc::new(AtomicUsize::new(0));
                let left = (0..count).map(|_| Bytes::from(vec![b'x'; size])).collect();
                let body = Self {
                    left,
                    stall,
                    taken: Arc::clone(&taken),
                };
                (body, taken)
            }
        }

        impl Body for Chunks {
            type Data = Bytes;
            type Error = std::convert::Infallible;

            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                match self.left.pop_front() {
                    Some(chunk) => {
                        self.taken.fetch_add(1, Ordering::SeqCst);
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                    None if self.stall => Poll::Pending,
                    None => Poll::Ready(None),
                }
            }
        }

        #[tokio::test]
        async fn a_body_within_the_bounds_is_read_to_its_end() {
            let (body, taken) = Chunks::new(64 * 1024, 31, false);
            let mut drain = Drain::new(body, Linger::DEFAULT);
            assert!(!drain.drop_ready(), "a whole, short body needs no task");
            assert_eq!(taken.load(Ordering::SeqCst), 31);
            let (body, taken) = Chunks::new(64 * 1024, 32, false);
            let mut drain = Drain::new(body, Linger::DEFAULT);
            assert!(drain.drop_ready(), "a longer one is left to the task");
            drain.within(Linger::DEFAULT).await;
            assert_eq!(taken.load(Ordering::SeqCst), 32);
        }

        #[tokio::test]
        async fn the_drain_stops_at_the_byte_bound() {
            let chunk = 1024 * 1024;
            let count = usize::try_from(Linger::MAX_BYTES).unwrap() / chunk + 10;
            let (body, taken) = Chunks::new(chunk, count, false);
            Drain::new(body, Linger::DEFAULT)
                .within(Linger::DEFAULT)
                .await;
            let taken = taken.load(Ordering::SeqCst);
            assert_eq!(
                taken,
                usize::try_from(Linger::MAX_BYTES).unwrap() / chunk,
                "the frame that reaches the bound is the last"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn a_stalled_body_is_let_go_at_the_time_bound() {
            let (body, taken) = Chunks::new(10, 3, true);
            let started = tokio::time::Instant::now();
            let mut drain = Drain::new(body, Linger::DEFAULT);
            assert!(drain.drop_ready(), "a stalled body needs the task");
            assert_eq!(taken.load(Ordering::SeqCst), 3);
            drain.within(Linger::DEFAULT).await;
            assert_eq!(taken.load(Ordering::SeqCst), 3);
            assert_eq!(started.elapsed(), Linger::MAX_TIME);
        }
    }
}
