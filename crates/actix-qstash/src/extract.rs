//! The extractors: [`QStash`], [`QStashRaw`] and [`QStashCallback`].

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use bytes::Bytes;
use qstash_receiver::{
    Admission, Callback, Claims, Delivery, Verified, callback::CallbackError, receive::Refusal,
};
use serde::de::DeserializeOwned;

use crate::body::BodyReader;
use crate::error::{QStashErrorHandler, answer};
use crate::head::{self, check_head, upgrade_body_len};
use crate::middleware::Guarded;

/// A verified QStash delivery whose body is deserialized from JSON into `T`.
///
/// Verifies the request with the [`Receiver`](qstash_receiver::Receiver) found in `app_data`
/// (`Receiver`, then `web::Data<Receiver>`): the head before any body byte is read, then the
/// body within the receiver's limit and time; then deserializes the body. The `Content-Type`
/// is not checked: QStash passes on whatever the publisher sent.
///
/// Behind [`QStashMiddleware`](crate::QStashMiddleware) it does not verify again: it takes
/// the middleware's result and only deserializes.
///
/// # Errors
///
/// A [`QStashError`](crate::QStashError) with the core's [`Refusal`]: 401 for any signature
/// failure, 413 for an oversize body, 408 for a body too slow, the receiver's payload-error
/// status (489 + `Upstash-NonRetryable-Error: true` by default) for a body that does not
/// deserialize into `T` or unusable delivery headers, 503 when the buffer budget is spent,
/// 500 when there is neither a receiver in `app_data` nor the middleware.
///
/// # Examples
///
/// ```
/// use actix_qstash::QStash;
/// use actix_web::{HttpResponse, post};
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// #[post("/api/orders")]
/// async fn orders(QStash { payload, delivery, .. }: QStash<Order>) -> HttpResponse {
///     // `delivery.message_id` is the same on every retry: use it to deduplicate.
///     HttpResponse::Ok().body(format!("{} {}", delivery.message_id, payload.id))
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub struct QStash<T> {
    /// The deserialized body.
    pub payload: T,
    /// What the `Upstash-*` headers say (message id, retry count, …).
    pub delivery: Delivery,
    /// The verified token's claims.
    pub claims: Claims,
}

impl<T> QStash<T> {
    /// The value a handler gets, e.g. to call the handler in a unit test.
    pub const fn new(payload: T, delivery: Delivery, claims: Claims) -> Self {
        Self {
            payload,
            delivery,
            claims,
        }
    }
}

/// A verified QStash delivery with its raw body, for bodies that are not JSON.
///
/// Like [`QStash`] without the deserialization; the body is handed on without a copy.
///
/// # Errors
///
/// As [`QStash`], less the payload error.
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub struct QStashRaw {
    /// The raw body, exactly as signed.
    pub body: Bytes,
    /// What the `Upstash-*` headers say (message id, retry count, …).
    pub delivery: Delivery,
    /// The verified token's claims.
    pub claims: Claims,
}

impl QStashRaw {
    /// The value a handler gets, e.g. to call the handler in a unit test.
    pub const fn new(body: Bytes, delivery: Delivery, claims: Claims) -> Self {
        Self {
            body,
            delivery,
            claims,
        }
    }
}

/// A verified QStash callback or failure callback: QStash reporting the outcome of a delivery
/// to the `Upstash-Callback` / `Upstash-Failure-Callback` URL.
///
/// The request is verified like any delivery (its token names the callback URL), then the
/// body is parsed as a [`Callback`]. The destination's response body is decoded on demand,
/// into the type you ask for, with [`response`](Self::response).
///
/// # Errors
///
/// As [`QStash`]; a body that is not a callback gets the payload-error status.
///
/// # Examples
///
/// ```
/// use actix_qstash::QStashCallback;
/// use actix_web::HttpResponse;
///
/// #[derive(serde::Deserialize)]
/// struct Receipt { ok: bool }
///
/// async fn callback(cb: QStashCallback) -> HttpResponse {
///     if !cb.callback.is_success() && cb.callback.is_last_attempt() {
///         // give up on `cb.callback.source_message_id`
///     }
///     // A failure callback often carries an error page, not JSON.
///     let ok = cb.response::<Receipt>().is_ok_and(|r| r.ok);
///     HttpResponse::Ok().body(format!("ok: {ok}"))
/// }
/// let app = actix_web::App::new().route("/callback", actix_web::web::post().to(callback));
/// ```
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub struct QStashCallback {
    /// The callback body: the destination's status, headers and body, and the source message.
    pub callback: Callback,
    /// What the `Upstash-*` headers of the callback request say.
    pub delivery: Delivery,
    /// The verified token's claims (`sub` is the callback URL).
    pub claims: Claims,
}

impl QStashCallback {
    /// The value a handler gets, e.g. to call the handler in a unit test.
    pub const fn new(callback: Callback, delivery: Delivery, claims: Claims) -> Self {
        Self {
            callback,
            delivery,
            claims,
        }
    }

    /// The destination's response body (`callback.body`), decoded from JSON into `T`.
    ///
    /// # Errors
    ///
    /// A [`CallbackError`] when the body is not JSON of type `T`.
    pub fn response<T: DeserializeOwned>(&self) -> Result<T, CallbackError> {
        self.callback.body_json()
    }
}

/// The future of the extractors: reads the body and finishes the verification (or takes the
/// middleware's result), then builds `X`.
#[must_use = "futures do nothing unless polled"]
pub struct ExtractFuture<X> {
    req: HttpRequest,
    state: State,
    _extractor: PhantomData<fn() -> X>,
}

// One per extraction, never moved once polled: boxing the large variant would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum State {
    /// Behind the middleware, or refused before the body.
    Ready(Option<Result<(Verified, Option<QStashErrorHandler>), actix_web::Error>>),
    Reading {
        admission: Option<Admission>,
        body: BodyReader,
        handler: Option<QStashErrorHandler>,
    },
}

impl<X> ExtractFuture<X> {
    fn new(req: &HttpRequest, payload: &mut Payload) -> Self {
        let guarded = {
            let extensions = req.extensions();
            extensions.get::<Guarded>().map(|guarded| {
                (
                    guarded.rest.clone(),
                    extensions.get::<Claims>().cloned(),
                    extensions.get::<Delivery>().cloned(),
                )
            })
        };
        let state = match guarded {
            Some((rest, Some(claims), Some(delivery))) => State::Ready(Some(Ok((
                Verified::join(claims, delivery, rest),
                QStashErrorHandler::from_req(req).cloned(),
            )))),
            Some(_) => State::Ready(Some(Err(answer(
                req,
                Refusal::not_configured(
                    "something between `QStashMiddleware` and the extractor removed the \
                     verified `Claims` or `Delivery` from the request's extensions",
                ),
                QStashErrorHandler::from_req(req),
            )))),
            None => Self::start(req, payload),
        };
        Self {
            req: req.clone(),
            state,
            _extractor: PhantomData,
        }
    }

    /// Without the middleware: the receiver in `app_data` decides on the head at once.
    fn start(req: &HttpRequest, payload: &mut Payload) -> State {
        let handler = QStashErrorHandler::from_req(req).cloned();
        let admission = match head::receiver(req) {
            Some(receiver) => check_head(receiver, req),
            None => Err(Refusal::not_configured(
                "no `qstash_receiver::Receiver` in app_data: add one with `App::app_data` or \
                 wrap the route in `QStashMiddleware`",
            )),
        };
        match admission {
            Ok(mut admission) => State::Reading {
                body: BodyReader::new(payload.take(), &mut admission, upgrade_body_len(req)),
                admission: Some(admission),
                handler,
            },
            Err(refusal) => State::Ready(Some(Err(answer(req, refusal, handler.as_ref())))),
        }
    }

    fn poll_verified(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Verified, Option<QStashErrorHandler>), actix_web::Error>> {
        Poll::Ready(match &mut self.state {
            State::Ready(result) => result
                .take()
                .expect("ExtractFuture polled after completion"),
            State::Reading {
                admission,
                body,
                handler,
            } => {
                let reading = admission
                    .as_mut()
                    .expect("ExtractFuture polled after completion");
                ready!(body.poll_read(cx, reading));
                let admission = admission
                    .take()
                    .expect("ExtractFuture polled after completion");
                let verified = admission.finish();
                let handler = handler.take();
                match verified {
                    Ok(verified) => Ok((verified, handler)),
                    Err(refusal) => Err(answer(&self.req, refusal, handler.as_ref())),
                }
            }
        })
    }

    /// Builds the extractor from the verified delivery, or answers the payload's refusal.
    fn poll_with<Y>(
        &mut self,
        cx: &mut Context<'_>,
        build: impl FnOnce(Verified) -> Result<Y, Refusal>,
    ) -> Poll<Result<Y, actix_web::Error>> {
        let (verified, handler) = ready!(self.poll_verified(cx))?;
        Poll::Ready(build(verified).map_err(|refusal| answer(&self.req, refusal, handler.as_ref())))
    }
}

impl<T: DeserializeOwned> Future for ExtractFuture<QStash<T>> {
    type Output = Result<QStash<T>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_with(cx, |verified| {
            let payload = verified.json()?;
            let (claims, delivery, _) = verified.into_parts();
            Ok(QStash::new(payload, delivery, claims))
        })
    }
}

impl Future for ExtractFuture<QStashRaw> {
    type Output = Result<QStashRaw, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_with(cx, |verified| {
            let (claims, delivery, body) = verified.into_parts();
            Ok(QStashRaw::new(body, delivery, claims))
        })
    }
}

impl Future for ExtractFuture<QStashCallback> {
    type Output = Result<QStashCallback, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_with(cx, |verified| {
            let callback = verified.callback()?;
            let (claims, delivery, _) = verified.into_parts();
            Ok(QStashCallback::new(callback, delivery, claims))
        })
    }
}

impl<T: DeserializeOwned> FromRequest for QStash<T> {
    type Error = actix_web::Error;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ExtractFuture::new(req, payload)
    }
}

impl FromRequest for QStashRaw {
    type Error = actix_web::Error;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ExtractFuture::new(req, payload)
    }
}

impl FromRequest for QStashCallback {
    type Error = actix_web::Error;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ExtractFuture::new(req, payload)
    }
}
