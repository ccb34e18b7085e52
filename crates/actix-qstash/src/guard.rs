//! [`QStashGuard`]: a middleware that verifies every request of a scope or app.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage as _};
use pin_project_lite::pin_project;

use crate::body::BodyReader;
use crate::config::QStashConfig;
use crate::verification::{Pending, reject};

/// Marks a request the guard verified, with the configuration it used; the extractors then
/// take its result instead of verifying again.
pub(crate) struct Guarded(pub(crate) Rc<QStashConfig>);

/// Middleware that verifies every request of the scope or app it wraps.
///
/// For each request: refuses it unless it carries exactly one `Upstash-Signature`, reads the
/// body (up to [`QStashConfig::max_body_bytes`], refusing an oversize one while it streams
/// in), verifies the signature over it, and reads the delivery headers. A verified request
/// goes on with its body put back (`ServiceRequest::set_payload`), so any extractor downstream
/// (`web::Json`, `web::Bytes`, [`QStash`](crate::QStash), …) reads it as usual, and with its
/// [`Delivery`](qstash_receiver::Delivery) and [`Claims`](qstash_receiver::Claims) in the
/// request extensions (`web::ReqData<Delivery>`, `req.extensions()`). Refusals are answered
/// as [`QStashError`](crate::QStashError) says, or by the configured error handler.
///
/// The guard carries its own [`QStashConfig`]; it does not read `app_data`.
///
/// # Examples
///
/// ```
/// use actix_qstash::{QStashConfig, QStashGuard};
/// use actix_web::{HttpResponse, web};
/// use qstash_receiver::{Delivery, SigningKeys, Verifier};
///
/// # fn keys() -> SigningKeys { SigningKeys::new("sig_current", "sig_next").unwrap() }
/// let config = QStashConfig::new(Verifier::new(keys()));
/// let app = actix_web::App::new().service(
///     web::scope("/qstash")
///         .wrap(QStashGuard::new(config))
///         .route("/orders", web::post().to(|body: web::Bytes, delivery: web::ReqData<Delivery>| async move {
///             HttpResponse::Ok().body(format!("{} bytes from {}", body.len(), delivery.message_id))
///         })),
/// );
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct QStashGuard {
    config: QStashConfig,
}

impl QStashGuard {
    /// A guard that verifies with `config`.
    pub const fn new(config: QStashConfig) -> Self {
        Self { config }
    }

    /// The guard's configuration.
    pub const fn config(&self) -> &QStashConfig {
        &self.config
    }
}

impl<S, B> Transform<S, ServiceRequest> for QStashGuard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = QStashGuardMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(QStashGuardMiddleware {
            service: Rc::new(service),
            config: Rc::new(self.config.clone()),
        }))
    }
}

/// The service [`QStashGuard`] wraps around the inner service `S`.
pub struct QStashGuardMiddleware<S> {
    service: Rc<S>,
    config: Rc<QStashConfig>,
}

impl<S> std::fmt::Debug for QStashGuardMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QStashGuardMiddleware")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for QStashGuardMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = QStashGuardFuture<S, B>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let state = match Pending::start(req.request(), &self.config) {
            Ok(pending) => {
                let body = BodyReader::new(
                    req.take_payload(),
                    self.config.max_body_bytes,
                    self.config.body_timeout,
                );
                GuardState::Reading {
                    req: Some(req),
                    pending,
                    body,
                    service: Rc::clone(&self.service),
                    config: Rc::clone(&self.config),
                }
            }
            Err(err) => {
                let err = reject(req.request(), Some(&self.config), err);
                GuardState::Rejected {
                    res: Some(req.error_response(err).map_into_right_body()),
                }
            }
        };
        QStashGuardFuture { state }
    }
}

pin_project! {
    /// The response future of [`QStashGuardMiddleware`]: reads and verifies the body, then
    /// calls the inner service.
    #[must_use = "futures do nothing unless polled"]
    pub struct QStashGuardFuture<S, B>
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    {
        #[pin]
        state: GuardState<S, B>,
    }
}

pin_project! {
    #[project = GuardStateProj]
    enum GuardState<S, B>
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    {
        Reading {
            req: Option<ServiceRequest>,
            pending: Pending,
            body: BodyReader,
            service: Rc<S>,
            config: Rc<QStashConfig>,
        },
        Calling {
            #[pin]
            fut: S::Future,
        },
        Rejected {
            res: Option<ServiceResponse<EitherBody<B>>>,
        },
    }
}

impl<S, B> Future for QStashGuardFuture<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                GuardStateProj::Reading {
                    req,
                    pending,
                    body,
                    service,
                    config,
                } => {
                    let read = std::task::ready!(body.poll_body(cx));
                    let mut req = req
                        .take()
                        .expect("QStashGuardFuture polled after completion");
                    let verified = read.and_then(|bytes| {
                        pending
                            .finish(req.request(), config, &bytes)
                            .map(|found| (bytes, found))
                    });
                    match verified {
                        Ok((bytes, (delivery, claims))) => {
                            req.set_payload(Payload::from(bytes));
                            {
                                let mut extensions = req.extensions_mut();
                                extensions.insert(delivery);
                                extensions.insert(claims);
                                extensions.insert(Guarded(Rc::clone(config)));
                            }
                            let fut = service.call(req);
                            state.set(GuardState::Calling { fut });
                        }
                        Err(err) => {
                            let err = reject(req.request(), Some(config), err);
                            let res = req.error_response(err).map_into_right_body();
                            return Poll::Ready(Ok(res));
                        }
                    }
                }
                GuardStateProj::Calling { fut } => {
                    return fut.poll(cx).map_ok(ServiceResponse::map_into_left_body);
                }
                GuardStateProj::Rejected { res } => {
                    let res = res
                        .take()
                        .expect("QStashGuardFuture polled after completion");
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}
