//! [`QStashLayer`] → [`QStashService`] → [`ResponseFuture`]: the core's pipeline around an
//! inner service. The pipeline decides; this only reads the body and writes the answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use qstash_receiver::{Admission, Answer, ConfigError, Receiver};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{ReadBody, ResponseBody, VerifiedBody};
use crate::head;
use crate::rejection::QStashAnswer;

/// Logs `answer` (the one event of its life) and builds its response: the crate's one
/// writer ([`QStashAnswer::into_http`]).
pub(crate) fn answer(answer: Answer) -> Response<Bytes> {
    QStashAnswer::from(answer).into_http()
}

/// The mark the layer leaves on a request it verified, so that the extractors behind it
/// neither read the body nor verify again: what the core verified besides the `Claims` and
/// the `Delivery`, which are in the extensions on their own (for handlers and other layers)
/// and which the extractor, the last to see the request, takes back out.
#[derive(Clone)]
#[cfg(feature = "axum")]
pub(crate) struct VerifiedByLayer {
    pub(crate) rest: qstash_receiver::receive::VerifiedRest,
}

/// A [`Layer`] that runs QStash's receiving pipeline ([`Receiver`]) before the inner service
/// sees a request. See [`QStashService`] for what it does.
///
/// All policies (subject, body limit and timeout, payload-error status, buffer budget) are
/// the [`Receiver`]'s. Refusals are written by [`QStashAnswer`]: to answer differently,
/// change the response the framework's way (`axum::middleware::map_response`, tower's
/// `MapResponseLayer`); the response carries the core's [`Answer`] in its extensions.
///
/// # Examples
///
/// ```
/// use qstash_receiver::{Receiver, SigningKeys, subject::SubjectPolicy, Verifier};
/// use tower_qstash::QStashLayer;
///
/// let receiver = Receiver::new(Verifier::new(SigningKeys::new("sig_current", "sig_next")?))
///     .max_body_bytes(256 * 1024)
///     .subject_policy(SubjectPolicy::public_base_url("https://app.example.com")?);
/// let layer = QStashLayer::new(receiver);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct QStashLayer {
    receiver: Receiver,
}

impl QStashLayer {
    /// A layer over `receiver` (a [`Receiver`], or anything that becomes one: a
    /// [`Verifier`](qstash_receiver::Verifier), [`SigningKeys`](qstash_receiver::SigningKeys)).
    pub fn new(receiver: impl Into<Receiver>) -> Self {
        Self {
            receiver: receiver.into(),
        }
    }

    /// A layer over [`Receiver::from_env`], with the defaults.
    ///
    /// # Errors
    ///
    /// As [`Receiver::from_env`]: a missing or empty key variable, or keys together with
    /// `QSTASH_DEV`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Receiver::from_env().map(Self::new)
    }

    /// The receiver.
    pub const fn receiver(&self) -> &Receiver {
        &self.receiver
    }
}

impl From<Receiver> for QStashLayer {
    fn from(receiver: Receiver) -> Self {
        Self::new(receiver)
    }
}

impl<S> Layer<S> for QStashLayer {
    type Service = QStashService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        QStashService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A [`Service`] that runs QStash's receiving pipeline before calling the inner service.
///
/// For each request it:
/// 1. calls [`Receiver::check_head`] with the request's head (method, path and query, under
///    axum's `Router::nest` the original ones, scheme, authority, version, headers, and the
///    body's exact size hint), before reading any byte of the body. A refusal is answered at
///    once; the rest of the body is then read and dropped on a Tokio task within the core's
///    [`Linger`](qstash_receiver::receive::Linger) bounds, so that the answer reaches a client
///    that is still writing (without the `tokio` feature, or outside a runtime, it is dropped);
/// 2. polls the body into the [`Admission`], which counts it against the limit, keeps it
///    and says when to start the body's timer (run here on Tokio's timer, feature `tokio`;
///    where none can run, a body that has to be waited for is answered 500, see
///    [`Receiver::body_timeout`]), then calls [`Admission::finish`];
/// 3. calls the inner service with the same request, its body replaced by the verified bytes
///    ([`VerifiedBody`], no copy), and the verified [`Claims`](qstash_receiver::Claims) and
///    [`Delivery`](qstash_receiver::Delivery) in its extensions.
///
/// What each refusal is answered with is the core's decision (see
/// [`Answer`]); the service writes it with [`QStashAnswer`], which logs it once
/// ([`Answer::log`]). The inner service is not called.
#[derive(Clone, Debug)]
pub struct QStashService<S> {
    inner: S,
    layer: QStashLayer,
}

impl<S> QStashService<S> {
    /// Wraps `inner` in the pipeline of `receiver`.
    pub fn new(inner: S, receiver: impl Into<Receiver>) -> Self {
        QStashLayer::new(receiver).layer(inner)
    }

    /// A [`QStashLayer`] over `receiver`.
    pub fn layer(receiver: impl Into<Receiver>) -> QStashLayer {
        QStashLayer::new(receiver)
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for QStashService<S>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let state = match head::check(&self.layer.receiver, &parts, &body) {
            // Answered before the body is polled (with `Connection: close`); the rest of the
            // body is drained within the core's bounds so that the answer arrives.
            Err(refusal) => {
                crate::drain::linger(body, &refusal);
                State::Refused {
                    response: Some(answer(refusal)),
                }
            }
            Ok(admission) => {
                // `self.inner` is the clone that `poll_ready` readied: keep that one for this
                // request and leave a fresh clone in its place (tower's documented pattern).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                State::Reading {
                    read: ReadBody::new(body),
                    pending: Some(Pending {
                        inner,
                        parts,
                        admission,
                    }),
                }
            }
        };
        ResponseFuture { state }
    }
}

/// What is kept while the body is read.
struct Pending<S> {
    inner: S,
    parts: Parts,
    admission: Admission,
}

pin_project! {
    /// The response future of [`QStashService`]: reads the body of an admitted request,
    /// finishes its verification, then runs the inner service's future.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<VerifiedBody>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<VerifiedBody>>,
    {
        Reading {
            #[pin]
            read: ReadBody<B>,
            pending: Option<Pending<S>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Refused {
            response: Option<Response<Bytes>>,
        },
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Reading { read, pending } => {
                    let admission = &mut pending
                        .as_mut()
                        .expect("ResponseFuture polled after completion")
                        .admission;
                    ready!(read.poll_read(cx, admission));
                    let Pending {
                        mut inner,
                        mut parts,
                        admission,
                    } = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let verified = match admission.finish() {
                        Ok(verified) => verified,
                        Err(refusal) => {
                            let response = answer(refusal);
                            return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                        }
                    };
                    // Moved, not cloned: the extractors take them back out ([`VerifiedByLayer`]).
                    let (claims, delivery, rest) = verified.split();
                    parts.extensions.insert(claims);
                    parts.extensions.insert(delivery);
                    let body = VerifiedBody::new(rest.body().clone());
                    #[cfg(feature = "axum")]
                    parts.extensions.insert(VerifiedByLayer { rest });
                    #[cfg(not(feature = "axum"))]
                    let _ = rest;
                    let future = inner.call(Request::from_parts(parts, body));
                    state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::new)));
                }
                StateProj::Refused { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
            }
        }
    }
}
