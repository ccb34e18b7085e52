//! axum extractors: [`QStash<T>`], [`QStashRaw`], [`QStashCallback`].
//!
//! Behind [`QStashLayer`](crate::QStashLayer) they take what the layer verified from the
//! request's extensions (no second verification, the layer's payload-error status). Without
//! the layer they run the core's pipeline themselves with the [`Receiver`] their type
//! parameter `K` names, taken from the router's state; see [`ConfigSource`].

use std::marker::PhantomData;

use axum_core::extract::{FromRef, FromRequest, Request};
use bytes::Bytes;
use qstash_receiver::{
    Callback, Claims, Delivery, Receiver, Verified, Verifier, callback::CallbackError,
    receive::Refusal,
};
use serde::de::DeserializeOwned;

use crate::body::ReadBody;
use crate::head;
use crate::layer::VerifiedByLayer;
use crate::rejection::QStashRejection;

/// Where an extractor gets its [`Receiver`] when no [`QStashLayer`](crate::QStashLayer)
/// verified the request first: the `K` of [`QStash<T, K>`], [`QStashRaw<K>`] and
/// [`QStashCallback<K>`].
///
/// | `K` | receiver | the router's state must |
/// |---|---|---|
/// | [`Receiver`] (the default) | from the state | give a `Receiver` (`FromRef`) |
/// | [`Verifier`] | a default [`Receiver::new`] around the state's verifier, per request (its buffer budget is then not shared between requests: prefer a `Receiver`) | give a `Verifier` (`FromRef`) |
/// | [`Layered`] | none: the route must have the layer (else 500, `not_configured`) | nothing: any state works |
///
/// Behind the layer, every `K` uses what the layer verified. Sealed: the three types above
/// are the only sources.
///
/// A route whose state has no `Receiver` does not compile with `K = Receiver`, and rustc does
/// not name the fix. What rustc 1.95 prints with axum 0.8 for `post(handler)` where
/// `handler` takes `QStash<T>` and the state is `AppState`:
///
/// ```text
/// error[E0277]: the trait bound `fn(QStash<Value>) -> ... {handler}: Handler<..., ...>` is not satisfied
///   = help: the trait `Handler<(ViaRequest, QStash<Value>), AppState>` is not implemented for fn item ...
///   = note: Consider using `#[axum::debug_handler]` to improve the error message
/// ```
///
/// `#[axum::debug_handler]` (axum's `macros` feature, off by default) moves the error to the
/// argument: "the trait `FromRequest<(), _>` is not implemented for `QStash<Value>`" (write
/// `#[axum::debug_handler(state = AppState)]` to check against your state). Neither message
/// names [`Layered`]: behind [`QStashLayer`](crate::QStashLayer), write `QStash<T, Layered>`;
/// without it, put a `Receiver` in the state. The router's state is never inferred to be a
/// `Receiver` from the extractor alone.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not where a QStash extractor can get its `Receiver` with the router state `{S}`",
    label = "the extractor's `K` must be `Receiver`, `Verifier` or `Layered`",
    note = "behind `QStashLayer`, write `QStash<T, Layered>` (or `QStashRaw<Layered>`, `QStashCallback<Layered>`)",
    note = "without the layer, put a `Receiver` in the router state: `.with_state(receiver)`, or `impl FromRef<YourState> for Receiver`"
)]
pub trait ConfigSource<S>: sealed::Sealed {
    /// The receiver for a request without the layer, if this source has one.
    fn receiver(state: &S) -> Option<Receiver>;
}

#[allow(unreachable_pub)]
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Receiver {}
    impl Sealed for super::Verifier {}
    impl Sealed for super::Layered {}
}

impl<S> ConfigSource<S> for Receiver
where
    Self: FromRef<S>,
{
    fn receiver(state: &S) -> Option<Receiver> {
        Some(Self::from_ref(state))
    }
}

impl<S> ConfigSource<S> for Verifier
where
    Self: FromRef<S>,
{
    fn receiver(state: &S) -> Option<Receiver> {
        Some(Receiver::new(Self::from_ref(state)))
    }
}

/// A second `FromRef` source of [`Receiver`] next to axum's `impl<T: Clone> FromRef<T> for T`,
/// so that a router's state is never *inferred* to be a `Receiver` from an extractor's `K`
/// (that turns a forgotten `Layered` into a `Router<Receiver>` type error far from its
/// cause). rustc does not print its name (see [`ConfigSource`]). It cannot be built.
#[doc(hidden)]
#[allow(unreachable_pub)]
pub struct BehindQStashLayerWriteLayeredElsePutAReceiverInTheState(std::convert::Infallible);

impl FromRef<BehindQStashLayerWriteLayeredElsePutAReceiverInTheState> for Receiver {
    fn from_ref(never: &BehindQStashLayerWriteLayeredElsePutAReceiverInTheState) -> Self {
        match never.0 {}
    }
}

/// The [`ConfigSource`] for routes behind [`QStashLayer`](crate::QStashLayer): works with any
/// state and needs nothing in it, e.g. `QStash<Order, Layered>`. On a route without the layer
/// the extractor refuses every request with [`Refusal::not_configured`] (500, logged at
/// `error`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Layered;

impl<S> ConfigSource<S> for Layered {
    fn receiver(_: &S) -> Option<Receiver> {
        None
    }
}

/// What the layer verified, or the pipeline run here with `K`'s receiver.
async fn verified<K, S>(req: Request, state: &S) -> Result<Verified, QStashRejection>
where
    K: ConfigSource<S>,
{
    let (mut parts, body) = req.into_parts();
    if let Some(VerifiedByLayer { rest }) = parts.extensions.remove() {
        // The body extractor runs last: nothing after it reads these extensions.
        let claims = parts.extensions.remove::<Claims>();
        let delivery = parts.extensions.remove::<Delivery>();
        let (Some(claims), Some(delivery)) = (claims, delivery) else {
            return Err(Refusal::not_configured(
                "a layer between `QStashLayer` and the extractor removed the verified \
                 `Claims` or `Delivery` from the request's extensions",
            )
            .into());
        };
        return Ok(Verified::join(claims, delivery, rest));
    }
    let Some(receiver) = K::receiver(state) else {
        return Err(Refusal::not_configured(
            "QStash extractor with `Layered` on a route without `QStashLayer`",
        )
        .into());
    };
    let mut admission = match head::check(&receiver, &parts, &body) {
        Ok(admission) => admission,
        Err(refusal) => {
            crate::drain::linger(body, &refusal);
            return Err(refusal.into());
        }
    };
    let mut read = std::pin::pin!(ReadBody::new(body));
    std::future::poll_fn(|cx| read.as_mut().poll_read(cx, &mut admission)).await;
    Ok(admission.finish()?)
}

/// A verified QStash delivery whose JSON body deserialized into `T`.
///
/// Refusals are the core's (see [`Refusal`]): 401 for a missing or invalid signature, 413 for
/// a body over the limit, …, and, once the signature is valid, 489 with
/// `Upstash-NonRetryable-Error: true` (or 422, see
/// [`PayloadErrorStatus`](qstash_receiver::receive::PayloadErrorStatus)) for a body that is not a `T`.
///
/// `K` says where the [`Receiver`] comes from when no [`QStashLayer`](crate::QStashLayer)
/// verified the request first: by default from the state; [`Layered`] for routes behind the
/// layer with any state. See [`ConfigSource`].
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::post};
/// use qstash_receiver::{Receiver, SigningKeys};
/// use tower_qstash::QStash;
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// async fn handle(QStash { payload, delivery, .. }: QStash<Order>) -> String {
///     format!("order {} (message {}, retried {})", payload.id, delivery.message_id, delivery.retried)
/// }
///
/// let receiver = Receiver::from(SigningKeys::new("sig_current", "sig_next")?);
/// let app: Router = Router::new()
///     .route("/api/orders", post(handle))
///     .with_state(receiver);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct QStash<T, K = Receiver> {
    /// The body, deserialized from JSON.
    pub payload: T,
    /// The `Upstash-*` headers: message id, retry count, …
    pub delivery: Delivery,
    /// The verified token's claims.
    pub claims: Claims,
    source: PhantomData<fn() -> K>,
}

impl<T, K> QStash<T, K> {
    /// Builds the value a handler would get, e.g. to call the handler in a unit test.
    pub const fn new(payload: T, delivery: Delivery, claims: Claims) -> Self {
        Self {
            payload,
            delivery,
            claims,
            source: PhantomData,
        }
    }
}

impl<S, T, K> FromRequest<S> for QStash<T, K>
where
    S: Send + Sync,
    T: DeserializeOwned,
    K: ConfigSource<S>,
{
    type Rejection = QStashRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verified = verified::<K, S>(req, state).await?;
        match verified.json() {
            Ok(payload) => {
                let (claims, delivery, _) = verified.into_parts();
                Ok(Self::new(payload, delivery, claims))
            }
            Err(refusal) => Err(refusal.into()),
        }
    }
}

/// A verified QStash delivery with its raw body, for payloads that are not JSON.
///
/// Refusals as for [`QStash`], without the payload check. `K` as for [`QStash`].
#[must_use]
#[derive(Debug, Clone)]
pub struct QStashRaw<K = Receiver> {
    /// The body, exactly as signed.
    pub body: Bytes,
    /// The `Upstash-*` headers.
    pub delivery: Delivery,
    /// The verified token's claims.
    pub claims: Claims,
    source: PhantomData<fn() -> K>,
}

impl<K> QStashRaw<K> {
    /// Builds the value a handler would get, e.g. to call the handler in a unit test.
    pub const fn new(body: Bytes, delivery: Delivery, claims: Claims) -> Self {
        Self {
            body,
            delivery,
            claims,
            source: PhantomData,
        }
    }
}

impl<S, K> FromRequest<S> for QStashRaw<K>
where
    S: Send + Sync,
    K: ConfigSource<S>,
{
    type Rejection = QStashRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verified = verified::<K, S>(req, state).await?;
        let (claims, delivery, body) = verified.into_parts();
        Ok(Self::new(body, delivery, claims))
    }
}

/// A verified callback or failure-callback delivery: what QStash POSTs to the
/// `Upstash-Callback` / `Upstash-Failure-Callback` URL after delivering a message.
///
/// The body is parsed with [`Callback::from_slice`]; a body that is not a callback gets 489
/// (or 422, as for [`QStash`]). The destination's response body is decoded only when you call
/// [`response`](Self::response), into the type you name there: a failure callback usually
/// carries an error page, and refusing it would send the callback to the dead-letter queue.
/// `K` as for [`QStash`].
///
/// # Examples
///
/// ```
/// use tower_qstash::{Layered, QStashCallback};
///
/// #[derive(serde::Deserialize)]
/// struct Receipt { ok: bool }
///
/// async fn on_callback(callback: QStashCallback<Layered>) {
///     match callback.response::<Receipt>() {
///         Ok(receipt) if callback.callback.is_success() => assert!(receipt.ok),
///         _ => eprintln!("message {:?} failed: {}", callback.callback.source_message_id, callback.callback.status),
///     }
/// }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct QStashCallback<K = Receiver> {
    /// The callback: the destination's status, headers and body, the source message, …
    pub callback: Callback,
    /// The `Upstash-*` headers of the callback delivery itself.
    pub delivery: Delivery,
    /// The verified token's claims (`sub` is the callback URL).
    pub claims: Claims,
    source: PhantomData<fn() -> K>,
}

impl<K> QStashCallback<K> {
    /// Builds the value a handler would get, e.g. to call the handler in a unit test.
    pub const fn new(callback: Callback, delivery: Delivery, claims: Claims) -> Self {
        Self {
            callback,
            delivery,
            claims,
            source: PhantomData,
        }
    }

    /// The destination's response body, decoded from JSON into `T`.
    ///
    /// # Errors
    ///
    /// [`CallbackError::BodyJson`] when the body is not JSON of type `T` (as a failure
    /// callback's error page usually is not).
    pub fn response<T: DeserializeOwned>(&self) -> Result<T, CallbackError> {
        self.callback.body_json()
    }
}

impl<S, K> FromRequest<S> for QStashCallback<K>
where
    S: Send + Sync,
    K: ConfigSource<S>,
{
    type Rejection = QStashRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verified = verified::<K, S>(req, state).await?;
        match verified.callback() {
            Ok(callback) => {
                let (claims, delivery, _) = verified.into_parts();
                Ok(Self::new(callback, delivery, claims))
            }
            Err(refusal) => Err(refusal.into()),
        }
    }
}
