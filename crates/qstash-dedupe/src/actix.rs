//! [`DedupeMiddleware`]: the actix-web middleware.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_qstash::QStashError;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode as ActixStatus;
use actix_web::{Error, HttpMessage as _, HttpResponse};
use qstash_receiver::{Answer, Claims, Delivery};

use crate::deduplicator::{Decision, Deduplicator};
use crate::memory::MemoryStore;
use crate::store::DedupeStore;

/// Middleware that runs the wrapped scope or app once per QStash message id; the actix-web
/// twin of `DedupeLayer` (feature `tower`), with the same answers (see
/// [`Deduplicator::begin`]).
///
/// It reads the [`Delivery`] and [`Claims`] that actix-qstash's `QStashMiddleware` put in the
/// request extensions, so the verification must run first: in actix-web the last `.wrap`
/// is the outermost, so wrap the `DedupeMiddleware` *before* the `QStashMiddleware`:
///
/// ```text
/// web::scope("/qstash")
///     .wrap(DedupeMiddleware::new(dedupe))   // inner: runs second
///     .wrap(QStashMiddleware::new(receiver))   // outer: verifies first
/// ```
///
/// The handler's status decides: 2xx marks the message done, anything else (an `Err` from
/// the inner service by its error's status) releases the mark.
#[derive(Debug)]
#[must_use]
pub struct DedupeMiddleware<St = MemoryStore> {
    dedupe: Deduplicator<St>,
}

// By hand: a derive would require `St: Clone`, but clones share the store through an `Arc`.
impl<St> Clone for DedupeMiddleware<St> {
    fn clone(&self) -> Self {
        Self::new(self.dedupe.clone())
    }
}

impl Default for DedupeMiddleware<MemoryStore> {
    /// Over a fresh [`MemoryStore`] with the defaults.
    fn default() -> Self {
        Self::new(Deduplicator::default())
    }
}

impl<St> DedupeMiddleware<St> {
    /// A guard applying `dedupe`.
    pub const fn new(dedupe: Deduplicator<St>) -> Self {
        Self { dedupe }
    }

    /// The deduplicator.
    #[must_use]
    pub const fn deduplicator(&self) -> &Deduplicator<St> {
        &self.dedupe
    }
}

impl<S, B, St> Transform<S, ServiceRequest> for DedupeMiddleware<St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
    St: DedupeStore,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = DedupeMiddlewareService<S, St>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(DedupeMiddlewareService {
            service: Rc::new(service),
            dedupe: self.dedupe.clone(),
        }))
    }
}

/// The service [`DedupeMiddleware`] wraps around the inner one.
#[derive(Debug)]
pub struct DedupeMiddlewareService<S, St = MemoryStore> {
    service: Rc<S>,
    dedupe: Deduplicator<St>,
}

impl<S, B, St> Service<ServiceRequest> for DedupeMiddlewareService<S, St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
    St: DedupeStore,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    // Boxed, as every actix middleware that awaits something before calling the inner
    // service: the store's futures cannot be named.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let dedupe = self.dedupe.clone();
        Box::pin(async move {
            let (delivery, claims) = {
                let extensions = req.extensions();
                (
                    extensions.get::<Delivery>().cloned(),
                    extensions.get::<Claims>().cloned(),
                )
            };
            match dedupe.begin(delivery.as_ref(), claims.as_ref()).await {
                Decision::Answer(answer) => {
                    let response = answer_response(answer, req.method().as_str());
                    Ok(req.into_response(response.map_into_right_body()))
                }
                Decision::Run(attempt) => match service.call(req).await {
                    Ok(response) => {
                        dedupe.finish(attempt, to_http(response.status())).await;
                        Ok(response.map_into_left_body())
                    }
                    Err(error) => {
                        let status = error.as_response_error().status_code();
                        dedupe.finish(attempt, to_http(status)).await;
                        Err(error)
                    }
                },
            }
        })
    }
}

fn to_http(status: ActixStatus) -> http::StatusCode {
    http::StatusCode::from_u16(status.as_u16()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// Written by actix-qstash's one writer, which logs it (with the request's method).
fn answer_response(answer: Answer, method: &str) -> HttpResponse {
    QStashError::from(answer.with_method(method)).respond()
}
