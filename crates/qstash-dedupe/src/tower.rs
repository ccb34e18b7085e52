//! [`DedupeLayer`]: the tower (and axum) middleware.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use qstash_receiver::{Claims, Delivery};
use tower_layer::Layer;
use tower_service::Service;

use bytes::Bytes;
use qstash_receiver::Answer;
use tower_qstash::QStashAnswer;

use crate::deduplicator::{Decision, Deduplicator};
use crate::memory::MemoryStore;
use crate::store::DedupeStore;

/// A [`Layer`] that runs the inner service once per QStash message id.
///
/// Place it *inside* the QStash verification, which puts the verified
/// [`Delivery`] and [`Claims`] in the request extensions: with axum, call
/// `.layer(DedupeLayer::new(..))` *before* `.layer(QStashLayer::new(..))` (the last layer
/// added is the outermost). See [`Dedupe`] for what it does per request.
#[derive(Debug)]
#[must_use]
pub struct DedupeLayer<St = MemoryStore> {
    dedupe: Deduplicator<St>,
}

// By hand: a derive would require `St: Clone`, but clones share the store through an `Arc`.
impl<St> Clone for DedupeLayer<St> {
    fn clone(&self) -> Self {
        Self::new(self.dedupe.clone())
    }
}

impl Default for DedupeLayer<MemoryStore> {
    /// Over a fresh [`MemoryStore`] with the defaults.
    fn default() -> Self {
        Self::new(Deduplicator::default())
    }
}

impl<St> DedupeLayer<St> {
    /// A layer applying `dedupe`.
    pub const fn new(dedupe: Deduplicator<St>) -> Self {
        Self { dedupe }
    }

    /// The deduplicator.
    #[must_use]
    pub const fn deduplicator(&self) -> &Deduplicator<St> {
        &self.dedupe
    }
}

impl<S, St> Layer<S> for DedupeLayer<St> {
    type Service = Dedupe<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Dedupe::new(inner, self.dedupe.clone())
    }
}

/// A [`Service`] that runs the inner service once per QStash message id.
///
/// For each request, with the [`Delivery`] (and [`Claims`]) the verification put in its
/// extensions, through [`Deduplicator::begin`]:
/// - first delivery: marks the message id in progress for the lease and calls the inner
///   service; a 2xx answer marks it done for the retention, anything else (or an error)
///   releases the mark so that the retry runs the inner service again;
/// - a message already handled: 200 with `X-QStash-Duplicate: true`, inner service not called;
/// - a message in progress: 409 with `Retry-After` (the rest of the lease) and
///   `X-QStash-Duplicate: true`;
/// - the store failed: 503 with `Retry-After` (fail-closed, the default), or the inner
///   service runs without a mark (fail-open);
/// - no verified `Delivery` in the extensions: 500, with an `error` event saying the layer
///   must sit behind the verification (QStash retries, so nothing is lost once fixed; reading
///   the unsigned `Upstash-Message-Id` header instead would let anyone mark ids).
#[derive(Debug)]
pub struct Dedupe<S, St = MemoryStore> {
    inner: S,
    dedupe: Deduplicator<St>,
}

impl<S: Clone, St> Clone for Dedupe<S, St> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.dedupe.clone())
    }
}

impl<S, St> Dedupe<S, St> {
    /// Wraps `inner`.
    pub const fn new(inner: S, dedupe: Deduplicator<St>) -> Self {
        Self { inner, dedupe }
    }

    /// A [`DedupeLayer`] applying `dedupe`.
    pub const fn layer(dedupe: Deduplicator<St>) -> DedupeLayer<St> {
        DedupeLayer::new(dedupe)
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming `self`.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for Dedupe<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    St: DedupeStore,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Keep the clone that `poll_ready` readied for this request (tower's documented
        // pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let dedupe = self.dedupe.clone();
        // Boxed: the store's futures are `impl Future` types returned by trait methods, which
        // cannot be named in a pin-project state machine without making every store spell
        // out associated future types. One allocation per request, next to a store round trip.
        let method = req.method().clone();
        let future = async move {
            // Borrowed from the request, not cloned: the borrow ends before the request moves
            // on to the inner service.
            let decision = dedupe
                .begin(
                    req.extensions().get::<Delivery>(),
                    req.extensions().get::<Claims>(),
                )
                .await;
            match decision {
                Decision::Answer(answer) => Ok(answer_response(answer, &method)),
                Decision::Run(attempt) => match inner.call(req).await {
                    Ok(response) => {
                        dedupe.finish(attempt, response.status()).await;
                        Ok(response.map(ResponseBody::inner))
                    }
                    Err(error) => {
                        dedupe.fail(attempt).await;
                        Err(error)
                    }
                },
            }
        };
        ResponseFuture {
            future: Box::pin(future),
        }
    }
}

/// Written by tower-qstash's one writer, which logs it (with the request's method).
fn answer_response<B>(answer: Answer, method: &http::Method) -> Response<ResponseBody<B>> {
    QStashAnswer::from(answer.with_method(method.as_str()))
        .into_http()
        .map(ResponseBody::answer)
}

type BoxedResponse<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

/// The response future of [`Dedupe`].
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<B, E> {
    future: BoxedResponse<B, E>,
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

pin_project! {
    /// The body of a [`Dedupe`] response: the inner service's, or the short text of an
    /// answer given instead of running it.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Answer { text: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    const fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    const fn answer(text: Bytes) -> Self {
        Self {
            kind: Kind::Answer { text: Some(text) },
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Answer { .. } => "answer",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Answer { text } => {
                Poll::Ready(text.take().map(|text| Ok(Frame::data(text.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Answer { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Answer { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |text| text.len() as u64))
            }
        }
    }
}
