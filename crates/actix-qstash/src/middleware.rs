//! [`QStashMiddleware`]: verifies every request of a scope or app through the core's pipeline.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage as _};
use pin_project_lite::pin_project;
use qstash_receiver::{Admission, Receiver, receive::Refusal, receive::VerifiedRest};

use crate::body::BodyReader;
use crate::error::{QStashErrorHandler, answer};
use crate::head::{check_head, upgrade_body_len};

/// Marks a request the middleware verified: the extractors behind it take this result
/// instead of verifying again.
#[derive(Clone)]
pub(crate) struct Guarded {
    /// What the core verified besides the `Claims` and `Delivery`, which are in the
    /// extensions on their own.
    pub(crate) rest: VerifiedRest,
}

/// Middleware that verifies every request of the scope or app it wraps, with its
/// [`Receiver`].
///
/// For each request, before reading any of its body, the receiver decides on the head
/// ([`Receiver::check_head`]: signature, token, declared length, delivery headers, buffer
/// budget); a refusal is answered at once, the body left unread. Otherwise it reads the body
/// (within the receiver's limit and time), checks the token's `body` claim, and calls the
/// inner service with the body put back (`ServiceRequest::set_payload`), so any extractor
/// downstream (`web::Bytes`, `web::Json`, [`QStash`](crate::QStash), …) reads it as usual,
/// and with the [`Delivery`](qstash_receiver::Delivery) and the
/// [`Claims`](qstash_receiver::Claims) in the request extensions (`web::ReqData<Delivery>`).
/// The crate's extractors behind it reuse its result instead of verifying again.
///
/// The middleware carries its own receiver; it does not read `app_data`.
///
/// # Examples
///
/// ```
/// use actix_qstash::{QStash, QStashMiddleware};
/// use actix_web::{HttpResponse, web};
/// use qstash_receiver::{Receiver, SigningKeys};
///
/// #[derive(serde::Deserialize)]
/// struct Order {
///     id: u64,
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let receiver = Receiver::from(SigningKeys::new("sig_current", "sig_next")?);
/// let app = actix_web::App::new().service(
///     web::scope("/qstash")
///         .wrap(QStashMiddleware::new(receiver))
///         .route("/orders", web::post().to(|order: QStash<Order>| async move {
///             HttpResponse::Ok().body(format!("order {} ({})", order.payload.id, order.delivery.message_id))
///         })),
/// );
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct QStashMiddleware {
    receiver: Receiver,
}

impl QStashMiddleware {
    /// Middleware that verifies with `receiver`.
    pub const fn new(receiver: Receiver) -> Self {
        Self { receiver }
    }

    /// The receiver; rotate keys through its verifier and every clone sees them.
    pub const fn receiver(&self) -> &Receiver {
        &self.receiver
    }
}

impl fmt::Debug for QStashMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QStashMiddleware")
            .field("receiver", &self.receiver)
            .finish()
    }
}

impl<S, B> Transform<S, ServiceRequest> for QStashMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = QStashMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(QStashMiddlewareService {
            service: Rc::new(service),
            config: Rc::new(self.clone()),
        }))
    }
}

/// The service [`QStashMiddleware`] wraps around the inner service `S`.
pub struct QStashMiddlewareService<S> {
    service: Rc<S>,
    config: Rc<QStashMiddleware>,
}

impl<S> fmt::Debug for QStashMiddlewareService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QStashMiddlewareService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for QStashMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = QStashMiddlewareFuture<S, B>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let state = match check_head(&self.config.receiver, req.request()) {
            Ok(mut admission) => {
                let exact = upgrade_body_len(req.request());
                let body = BodyReader::new(req.take_payload(), &mut admission, exact);
                State::Reading {
                    req: Some(req),
                    admission: Some(admission),
                    body,
                    service: Rc::clone(&self.service),
                }
            }
            Err(refusal) => State::Answered {
                res: Some(refuse(req, refusal)),
            },
        };
        QStashMiddlewareFuture { state }
    }
}

fn refuse<B>(req: ServiceRequest, refusal: Refusal) -> ServiceResponse<EitherBody<B>> {
    let handler = QStashErrorHandler::from_req(req.request());
    let err = answer(req.request(), refusal, handler);
    req.error_response(err).map_into_right_body()
}

pin_project! {
    /// The response future of [`QStashMiddlewareService`]: reads the body and finishes its
    /// verification, then calls the inner service.
    #[must_use = "futures do nothing unless polled"]
    pub struct QStashMiddlewareFuture<S, B>
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    {
        Reading {
            req: Option<ServiceRequest>,
            admission: Option<Admission>,
            body: BodyReader,
            service: Rc<S>,
        },
        Calling {
            #[pin]
            fut: S::Future,
        },
        Answered {
            res: Option<ServiceResponse<EitherBody<B>>>,
        },
    }
}

impl<S, B> Future for QStashMiddlewareFuture<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Reading {
                    req,
                    admission,
                    body,
                    service,
                } => {
                    let Some(reading) = admission.as_mut() else {
                        panic!("QStashMiddlewareFuture polled after completion");
                    };
                    std::task::ready!(body.poll_read(cx, reading));
                    let (Some(mut req), Some(admission)) = (req.take(), admission.take()) else {
                        panic!("QStashMiddlewareFuture polled after completion");
                    };
                    match admission.finish() {
                        Ok(verified) => {
                            // Moved, not cloned: the extractors read them back from here.
                            let (claims, delivery, rest) = verified.split();
                            req.set_payload(Payload::from(rest.body().clone()));
                            {
                                let mut extensions = req.extensions_mut();
                                extensions.insert(delivery);
                                extensions.insert(claims);
                                extensions.insert(Guarded { rest });
                            }
                            let fut = service.call(req);
                            state.set(State::Calling { fut });
                        }
                        Err(refusal) => return Poll::Ready(Ok(refuse(req, refusal))),
                    }
                }
                StateProj::Calling { fut } => {
                    return fut.poll(cx).map_ok(ServiceResponse::map_into_left_body);
                }
                StateProj::Answered { res } => {
                    let res = res
                        .take()
                        .expect("QStashMiddlewareFuture polled after completion");
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}
