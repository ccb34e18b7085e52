//! The extractors: [`QStash`], [`QStashRaw`] and [`QStashCallback`].

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use bytes::Bytes;
use qstash_receiver::{Callback, Claims, Delivery};
use serde::de::DeserializeOwned;

use crate::body::BodyReader;
use crate::config::QStashConfig;
use crate::error::QStashError;
use crate::guard::Guarded;
use crate::verification::{Pending, reject};

/// A verified QStash delivery whose JSON body is deserialized into `T`.
///
/// Reads the body (up to [`QStashConfig::max_body_bytes`]), verifies the `Upstash-Signature`
/// over it with the [`QStashConfig`] found in `app_data`, reads the delivery headers, then
/// deserializes the body. The `Content-Type` is not checked: QStash passes on whatever the
/// publisher sent.
///
/// Behind [`QStashGuard`](crate::QStashGuard) it does not verify again: it takes the guard's
/// result from the request extensions and only deserializes.
///
/// # Errors
///
/// A [`QStashError`]: 401 for any signature failure, 413 for an oversize body, and the
/// configured payload error status (489 + `Upstash-NonRetryable-Error: true` by default) when
/// the body does not deserialize into `T` or the delivery headers are unusable; 500 when no
/// `QStashConfig` is configured.
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

/// A verified QStash callback or failure callback: QStash reporting the outcome of a delivery
/// to the `Upstash-Callback` / `Upstash-Failure-Callback` URL.
///
/// The request is verified like any delivery (its token names the callback URL), then the
/// body is parsed with [`Callback::from_slice`]. `body` is the destination's response body as
/// JSON of type `T`, when it is one.
///
/// # Errors
///
/// As [`QStash`]; a body that is not a callback gets the payload error status.
///
/// # Examples
///
/// ```
/// use actix_qstash::QStashCallback;
/// use actix_web::HttpResponse;
///
/// async fn callback(QStashCallback { callback, body, .. }: QStashCallback) -> HttpResponse {
///     if !callback.is_success() && callback.is_last_attempt() {
///         // give up on `callback.source_message_id`
///     }
///     let _json: Option<serde_json::Value> = body;
///     HttpResponse::Ok().finish()
/// }
/// let app = actix_web::App::new().route("/callback", actix_web::web::post().to(callback));
/// ```
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub struct QStashCallback<T = serde_json::Value> {
    /// The callback body: the destination's status, headers and body, and the source message.
    pub callback: Callback,
    /// The destination's response body (`callback.body`) as JSON of type `T`; `None` when it
    /// is empty or is not JSON of that type (a failure callback often carries an error page).
    /// [`Callback::body_json`] says why.
    pub body: Option<T>,
    /// What the `Upstash-*` headers of the callback request say.
    pub delivery: Delivery,
    /// The verified token's claims.
    pub claims: Claims,
}

/// The future of the extractors: reads the body, verifies, then builds `X`.
#[must_use = "futures do nothing unless polled"]
pub struct ExtractFuture<X> {
    req: HttpRequest,
    config: ConfigSource,
    state: State,
    _extractor: PhantomData<fn() -> X>,
}

enum ConfigSource {
    Missing,
    AppData,
    Guard(Rc<QStashConfig>),
}

// One per extraction, never moved once polled: boxing the large variant would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum State {
    Failed(Option<QStashError>),
    Unverified {
        pending: Pending,
        body: BodyReader,
    },
    Verified {
        known: Option<(Delivery, Claims)>,
        body: BodyReader,
    },
}

struct Verified {
    body: Bytes,
    delivery: Delivery,
    claims: Claims,
}

fn config<'a>(req: &'a HttpRequest, source: &'a ConfigSource) -> Option<&'a QStashConfig> {
    match source {
        ConfigSource::Missing => None,
        ConfigSource::AppData => QStashConfig::from_req(req),
        ConfigSource::Guard(config) => Some(config),
    }
}

impl<X> ExtractFuture<X> {
    fn new(req: &HttpRequest, payload: &mut Payload) -> Self {
        let req = req.clone();
        let guarded = {
            let extensions = req.extensions();
            extensions.get::<Guarded>().map(|guarded| {
                let known = extensions
                    .get::<Delivery>()
                    .cloned()
                    .zip(extensions.get::<Claims>().cloned());
                (guarded.0.clone(), known)
            })
        };
        let (source, state) = match guarded {
            // Behind the guard: the body it put back is the verified one.
            Some((config, Some(known))) => {
                let body =
                    BodyReader::new(payload.take(), config.max_body_bytes, config.body_timeout);
                let state = State::Verified {
                    known: Some(known),
                    body,
                };
                (ConfigSource::Guard(config), state)
            }
            // Behind the guard, but its result was removed from the extensions: verify anew.
            Some((config, None)) => {
                let state = Self::start(&req, &config, payload);
                (ConfigSource::Guard(config), state)
            }
            None => match QStashConfig::from_req(&req) {
                None => (
                    ConfigSource::Missing,
                    State::Failed(Some(QStashError::NotConfigured)),
                ),
                Some(config) => (ConfigSource::AppData, Self::start(&req, config, payload)),
            },
        };
        Self {
            req,
            config: source,
            state,
            _extractor: PhantomData,
        }
    }

    fn start(req: &HttpRequest, config: &QStashConfig, payload: &mut Payload) -> State {
        match Pending::start(req, config) {
            Ok(pending) => State::Unverified {
                pending,
                body: BodyReader::new(payload.take(), config.max_body_bytes, config.body_timeout),
            },
            Err(err) => State::Failed(Some(err)),
        }
    }

    fn poll_verified(&mut self, cx: &mut Context<'_>) -> Poll<Result<Verified, actix_web::Error>> {
        let config = config(&self.req, &self.config);
        let result = match &mut self.state {
            State::Failed(err) => Err(err.take().expect("ExtractFuture polled after completion")),
            State::Unverified { pending, body } => match (ready!(body.poll_body(cx)), config) {
                (Ok(body), Some(config)) => {
                    pending
                        .finish(&self.req, config, &body)
                        .map(|(delivery, claims)| Verified {
                            body,
                            delivery,
                            claims,
                        })
                }
                (Ok(_), None) => Err(QStashError::NotConfigured),
                (Err(err), _) => Err(err),
            },
            State::Verified { known, body } => ready!(body.poll_body(cx)).map(|body| {
                let (delivery, claims) =
                    known.take().expect("ExtractFuture polled after completion");
                Verified {
                    body,
                    delivery,
                    claims,
                }
            }),
        };
        Poll::Ready(result.map_err(|err| reject(&self.req, config, err)))
    }

    fn payload_error(&self, reason: String) -> actix_web::Error {
        let config = config(&self.req, &self.config);
        let err = match config {
            Some(c) => QStashError::Payload {
                reason,
                status: c.payload_error_status,
            },
            None => QStashError::NotConfigured,
        };
        reject(&self.req, config, err)
    }
}

/// Why `serde_json` refused a body, without quoting it (serde's messages can copy values).
fn json_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax | Category::Eof => "not valid JSON",
        Category::Data => "JSON of another shape",
        Category::Io => "unreadable",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

impl<T: DeserializeOwned> Future for ExtractFuture<QStash<T>> {
    type Output = Result<QStash<T>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let verified = ready!(this.poll_verified(cx))?;
        Poll::Ready(match serde_json::from_slice(&verified.body) {
            Ok(payload) => Ok(QStash {
                payload,
                delivery: verified.delivery,
                claims: verified.claims,
            }),
            Err(e) => Err(this.payload_error(json_reason(&e))),
        })
    }
}

impl Future for ExtractFuture<QStashRaw> {
    type Output = Result<QStashRaw, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let verified = ready!(self.get_mut().poll_verified(cx))?;
        Poll::Ready(Ok(QStashRaw {
            body: verified.body,
            delivery: verified.delivery,
            claims: verified.claims,
        }))
    }
}

impl<T: DeserializeOwned> Future for ExtractFuture<QStashCallback<T>> {
    type Output = Result<QStashCallback<T>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let verified = ready!(this.poll_verified(cx))?;
        Poll::Ready(match Callback::from_slice(&verified.body) {
            Ok(callback) => Ok(QStashCallback {
                body: callback.body_json().ok(),
                callback,
                delivery: verified.delivery,
                claims: verified.claims,
            }),
            // `CallbackError` never quotes the body.
            Err(e) => Err(this.payload_error(e.to_string())),
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

impl<T: DeserializeOwned> FromRequest for QStashCallback<T> {
    type Error = actix_web::Error;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ExtractFuture::new(req, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reasons_do_not_quote_the_body() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let cases = [
            (r#"{"n":"secret-value"}"#, "JSON of another shape"),
            (r#"{"secret-field":1}"#, "JSON of another shape"),
            ("secret", "not valid JSON"),
            (r#"{"n": 1"#, "not valid JSON"),
        ];
        for (body, want) in cases {
            let e = serde_json::from_str::<T>(body).unwrap_err();
            let reason = json_reason(&e);
            assert!(reason.starts_with(want), "{body}: {reason}");
            assert!(!reason.contains("secret"), "{body}: {reason}");
        }
    }
}
