//! [`QStashLayer`] → [`QStashService`] → [`ResponseFuture`]: verify, then call the inner
//! service with the verified request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use qstash_receiver::{ConfigError, Verifier};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{ReadBody, ResponseBody, VerifiedBody};
use crate::config::QStashConfig;
use crate::rejection::QStashRejection;
use crate::verify::{self, BoxError};

/// The mark the layer leaves on a request it verified, with its configuration and the bytes
/// it verified, so that the extractors neither read the body nor verify again, and need no
/// configuration of their own.
#[derive(Clone)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct VerifiedByLayer {
    pub(crate) config: QStashConfig,
    pub(crate) body: Bytes,
}

/// A [`Layer`] that verifies QStash deliveries before the inner service sees them.
///
/// See [`QStashService`] for what the service does. The builders are those of
/// [`QStashConfig`].
///
/// # Examples
///
/// ```
/// use qstash_receiver::{SigningKeys, Verifier};
/// use tower_qstash::QStashLayer;
///
/// let verifier = Verifier::new(SigningKeys::new("sig_current", "sig_next")?);
/// let layer = QStashLayer::new(verifier)
///     .max_body_bytes(256 * 1024)
///     .public_base_url("https://app.example.com");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct QStashLayer {
    config: QStashConfig,
}

impl QStashLayer {
    /// A layer verifying with `verifier` (or a whole [`QStashConfig`]), with the defaults of
    /// [`QStashConfig::new`].
    pub fn new(config: impl Into<QStashConfig>) -> Self {
        Self {
            config: config.into(),
        }
    }

    /// A layer over [`Verifier::from_env`], with the defaults.
    ///
    /// # Errors
    ///
    /// As [`Verifier::from_env`]: a missing or empty key variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Verifier::from_env().map(Self::new)
    }

    /// See [`QStashConfig::max_body_bytes`]. Defaults to 1 MiB.
    pub fn max_body_bytes(self, limit: usize) -> Self {
        self.map(|c| c.max_body_bytes(limit))
    }

    /// See [`QStashConfig::body_timeout`]. Defaults to 10 seconds.
    pub fn body_timeout(self, timeout: impl Into<Option<std::time::Duration>>) -> Self {
        self.map(|c| c.body_timeout(timeout))
    }

    /// See [`QStashConfig::public_base_url`]. Defaults to comparing the path and query only.
    pub fn public_base_url(self, base_url: impl Into<String>) -> Self {
        self.map(|c| c.public_base_url(base_url))
    }

    /// See [`QStashConfig::dangerously_skip_subject_check`].
    ///
    /// # Security
    ///
    /// A token signed for any of your endpoints is then accepted by this one.
    pub fn dangerously_skip_subject_check(self) -> Self {
        self.map(QStashConfig::dangerously_skip_subject_check)
    }

    /// See [`QStashConfig::trust_forwarded_headers`]. Defaults to `false`.
    pub fn trust_forwarded_headers(self, trust: bool) -> Self {
        self.map(|c| c.trust_forwarded_headers(trust))
    }

    /// See [`QStashConfig::payload_error_status`]. Defaults to 489 (only 489 and 422 make
    /// sense).
    pub fn payload_error_status(self, status: StatusCode) -> Self {
        self.map(|c| c.payload_error_status(status))
    }

    /// See [`QStashConfig::on_rejection`]. Defaults to the built-in short text answers.
    pub fn on_rejection<F>(self, hook: F) -> Self
    where
        F: Fn(&QStashRejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.map(|c| c.on_rejection(hook))
    }

    /// The configuration.
    pub const fn config(&self) -> &QStashConfig {
        &self.config
    }

    fn map(self, f: impl FnOnce(QStashConfig) -> QStashConfig) -> Self {
        Self {
            config: f(self.config),
        }
    }
}

impl From<QStashConfig> for QStashLayer {
    fn from(config: QStashConfig) -> Self {
        Self::new(config)
    }
}

impl<S> Layer<S> for QStashLayer {
    type Service = QStashService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        QStashService::new(inner, self.config.clone())
    }
}

/// A [`Service`] that verifies QStash deliveries before calling the inner service.
///
/// For each request it:
/// 1. refuses a `Content-Length` over the limit with 413, before reading anything;
/// 2. reads the body, counting, and refuses it with 413 as soon as it grows past the limit,
///    without reading the rest, and with 408 when it is not whole within the
///    [body timeout](QStashConfig::body_timeout) (a failing body gets 400);
/// 3. verifies the `Upstash-Signature` token over the bytes, and the `sub` claim under the
///    subject policy (the request's original URI under axum's `Router::nest`): 401 on any
///    failure;
/// 4. reads the `Upstash-*` headers into a [`Delivery`](qstash_receiver::Delivery): 489 with
///    `Upstash-NonRetryable-Error: true` (or the configured status) when they are unusable;
/// 5. calls the inner service with the same request, its body replaced by the buffered bytes
///    ([`VerifiedBody`], no copy), and the verified [`Claims`](qstash_receiver::Claims) and
///    [`Delivery`](qstash_receiver::Delivery) in its extensions.
///
/// Each refusal is logged once through `tracing` (reason and message id) and answered with a
/// short text, or by the [`on_rejection`](QStashLayer::on_rejection) hook; the inner service
/// is not called.
#[derive(Clone, Debug)]
pub struct QStashService<S> {
    inner: S,
    config: QStashConfig,
}

impl<S> QStashService<S> {
    /// Wraps `inner`, verifying with `config` (a [`Verifier`] or a [`QStashConfig`]).
    pub fn new(inner: S, config: impl Into<QStashConfig>) -> Self {
        Self {
            inner,
            config: config.into(),
        }
    }

    /// A [`QStashLayer`] with `config`.
    pub fn layer(config: impl Into<QStashConfig>) -> QStashLayer {
        QStashLayer::new(config)
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
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // `self.inner` is the clone that `poll_ready` readied: keep that one for this request
        // and leave a fresh clone in its place (tower's documented pattern).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        let limit = self.config.limit();
        let state = if verify::declared_too_large(&parts.headers, &body, limit) {
            let refusal = verify::too_large(&self.config, &parts.headers);
            State::Refused {
                response: Some(refusal.into_http()),
            }
        } else {
            State::Reading {
                read: ReadBody::new(body, limit, self.config.timeout()),
                pending: Some(Pending {
                    inner,
                    parts,
                    config: self.config.clone(),
                }),
            }
        };
        ResponseFuture { state }
    }
}

/// What is kept while the body is read.
struct Pending<S> {
    inner: S,
    parts: Parts,
    config: QStashConfig,
}

pin_project! {
    /// The response future of [`QStashService`]: reads the body, verifies it, then runs the
    /// inner service's future.
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
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Reading { read, pending } => {
                    let read = ready!(read.poll(cx));
                    let Pending {
                        mut inner,
                        mut parts,
                        config,
                    } = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let verified = read
                        .map_err(|e| verify::body_error(e, &config, &parts.headers))
                        .and_then(|bytes| {
                            verify::verify(&config, &parts, &bytes).map(|v| (v, bytes))
                        });
                    match verified {
                        Ok(((claims, delivery), bytes)) => {
                            parts.extensions.insert(claims);
                            parts.extensions.insert(delivery);
                            let body = VerifiedBody::new(bytes.clone());
                            parts.extensions.insert(VerifiedByLayer {
                                config,
                                body: bytes,
                            });
                            let request = Request::from_parts(parts, body);
                            let future = inner.call(request);
                            state.set(State::Calling { future });
                        }
                        Err(refusal) => {
                            let response = refusal.into_http();
                            return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                        }
                    }
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
