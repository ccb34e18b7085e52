//! Polling the payload into the core's body step ([`Admission`]), and running the timer it
//! asks for on Tokio's timer.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use futures_core::Stream as _;
use qstash_receiver::Admission;
use qstash_receiver::receive::{BodyFailure, BodyStep};

/// Polls a payload into an [`Admission`], which decides: each chunk goes to
/// [`Admission::data`], a payload that is not ready to [`Admission::pending`], a failing one to
/// [`Admission::fail`] (actix's own overflow as [`BodyFailure::TooLarge`]). Ready when the
/// admission is to be finished.
pub(crate) struct BodyReader {
    payload: Payload,
    /// Nothing more to read: the body ended where the admission was told it does.
    done: bool,
    /// The timer the admission asked for; boxed because `Sleep` cannot move, and only a body
    /// that had to be waited for needs one.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BodyReader {
    /// A reader of `payload` into `admission`; `exact` is the body's length when the payload
    /// does not end by itself (see [`upgrade_body_len`](crate::head::upgrade_body_len)).
    pub(crate) fn new(payload: Payload, admission: &mut Admission, exact: Option<u64>) -> Self {
        let done = exact.is_some_and(|len| admission.body_ends_at(len) == BodyStep::Finish);
        Self {
            payload,
            done,
            timer: None,
        }
    }

    /// Reads until the admission says to finish or the payload ends; then
    /// [`Admission::finish`] gives the answer.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        admission: &mut Admission,
    ) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let payload = &mut self.payload;
        std::task::ready!(admission.poll_body(
            cx,
            |cx| {
                Pin::new(&mut *payload).poll_next(cx).map(|chunk| {
                    chunk.map(|chunk| {
                        chunk.map_err(|error| match error {
                            PayloadError::Overflow => BodyFailure::TooLarge,
                            _ => BodyFailure::Unreadable,
                        })
                    })
                })
            },
            &mut self.timer,
            start_timer,
            |timer, cx| timer.as_mut().poll(cx).is_ready(),
        ));
        self.done = true;
        Poll::Ready(())
    }
}

/// A timer of `timeout` from now; none outside a Tokio runtime (actix always runs in one).
fn start_timer(timeout: Duration) -> Option<Pin<Box<tokio::time::Sleep>>> {
    tokio::runtime::Handle::try_current().ok()?;
    Some(Box::pin(tokio::time::sleep(timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::future::poll_fn;
    use std::rc::Rc;

    use bytes::Bytes;
    use qstash_receiver::{Receiver, RequestHead, Signer, SigningKeys, Verified};

    /// A payload of `chunks`, counting how many were pulled, then 1 KiB chunks forever if
    /// `endless`.
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

    /// An admission for a delivery of `signed`, with a 4 KiB limit and `timeout`.
    fn admission(signed: &[u8], timeout: Option<Duration>) -> Admission {
        let headers = Signer::new("sig_current").unwrap().delivery_headers(
            "https://app.example.com/hook",
            signed,
            "msg_1",
            0,
        );
        Receiver::from(SigningKeys::new("sig_current", "sig_next").unwrap())
            .max_body_bytes(4096)
            .body_timeout(timeout)
            .check_head(&RequestHead::new("POST", "/hook", &headers))
            .unwrap()
    }

    /// Reads `payload` (ending at `exact`, if given) into an admission for `signed`.
    async fn read(
        payload: Payload,
        signed: &[u8],
        exact: Option<u64>,
    ) -> Result<Verified, qstash_receiver::Answer> {
        let mut admission = admission(signed, None);
        let mut reader = BodyReader::new(payload, &mut admission, exact);
        poll_fn(|cx| reader.poll_read(cx, &mut admission)).await;
        admission.finish()
    }

    #[actix_web::test]
    async fn chunks_go_to_the_admission() {
        let pulled = Rc::new(Cell::new(0));
        let chunks: Vec<&'static [u8]> = vec![b"ab", b"", b"cd"];
        let verified = read(payload(chunks, pulled, false), b"abcd", None)
            .await
            .unwrap();
        assert_eq!(verified.body, "abcd");
    }

    #[actix_web::test]
    async fn one_chunk_is_not_copied() {
        let chunk = Bytes::from_static(b"only chunk");
        let verified = read(Payload::from(chunk.clone()), &chunk, None)
            .await
            .unwrap();
        assert_eq!(verified.body.as_ptr(), chunk.as_ptr());
    }

    #[actix_web::test]
    async fn stops_pulling_at_the_limit() {
        // An endless body: reading to the end would never finish.
        let pulled = Rc::new(Cell::new(0));
        let refusal = read(payload(vec![], pulled.clone(), true), b"", None)
            .await
            .unwrap_err();
        assert_eq!(refusal.status(), 413);
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
        assert_eq!(read(overflow, b"", None).await.unwrap_err().status(), 413);
        let incomplete = Payload::from(futures_stream(|| {
            Poll::Ready(Some(Err(PayloadError::Incomplete(None))))
        }));
        assert_eq!(read(incomplete, b"", None).await.unwrap_err().status(), 400);
    }

    #[actix_web::test]
    async fn a_payload_that_runs_on_is_cut_at_its_length() {
        // An endless payload (as actix-http hands out for `Upgrade: websocket`): the declared
        // length ends the body, and the bytes after it are not the body's.
        type Case = (
            &'static str,
            Vec<&'static [u8]>,
            u64,
            Result<&'static str, u16>,
        );
        let cases: [Case; 4] = [
            ("empty", vec![], 0, Ok("")),
            ("one chunk", vec![b"abc"], 3, Ok("abc")),
            ("across chunks", vec![b"ab", b"cd"], 3, Ok("abc")),
            ("ends early", vec![b"ab"], 3, Err(400)),
        ];
        for (name, chunks, exact, want) in cases {
            let endless = want.is_ok();
            let pulled = Rc::new(Cell::new(0));
            let signed = want.unwrap_or("").as_bytes();
            let got = read(
                payload(chunks, pulled.clone(), endless),
                signed,
                Some(exact),
            )
            .await;
            match (got, want) {
                (Ok(verified), Ok(body)) => assert_eq!(verified.body, body, "{name}"),
                (Err(refusal), Err(status)) => assert_eq!(refusal.status(), status, "{name}"),
                (other, _) => panic!("{name}: {other:?}"),
            }
            if exact == 0 {
                assert_eq!(pulled.get(), 0, "{name}: nothing to read");
            }
        }
    }

    #[test]
    fn outside_a_runtime_a_timeout_is_refused_not_ignored() {
        let never = Payload::from(futures_stream(|| Poll::Pending));
        let mut admission = admission(b"", Some(Duration::from_secs(10)));
        let mut reader = BodyReader::new(never, &mut admission, None);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(reader.poll_read(&mut cx, &mut admission).is_ready());
        assert_eq!(admission.finish().unwrap_err().status(), 500);
    }
}
