//! axum extractors: [`QStash<T>`], [`QStashRaw`], [`QStashCallback<T>`].
//!
//! Behind [`QStashLayer`](crate::QStashLayer) they take what the layer verified from the
//! request's extensions (no second verification) and use the layer's configuration. Without
//! the layer they verify by themselves with the configuration their second type parameter
//! `K` names, taken from the router's state through `FromRef`; see [`ConfigSource`].

use std::marker::PhantomData;

use axum_core::extract::{FromRef, FromRequest, Request};
use bytes::Bytes;
use qstash_receiver::{Callback, CallbackError, Claims, Delivery, Verifier};
use serde::de::DeserializeOwned;

use crate::config::QStashConfig;
use crate::layer::VerifiedByLayer;
use crate::rejection::{InvalidCallback, InvalidPayload, MissingLayer, QStashRejection};
use crate::verify::{self, refuse};

/// Where an extractor without [`QStashLayer`](crate::QStashLayer) in front of it gets its
/// [`QStashConfig`] from: the `K` of [`QStash<T, K>`], [`QStashRaw<K>`] and
/// [`QStashCallback<T, K>`].
///
/// | `K` | configuration | state needed |
/// |---|---|---|
/// | [`QStashConfig`] (the default) | from the state | `QStashConfig: FromRef<S>` |
/// | [`Verifier`] | from the state, with the defaults of [`QStashConfig::new`] | `Verifier: FromRef<S>` |
/// | [`Layered`] | none: the route must have the layer (else 500, [`MissingLayer`]) | none |
///
/// Behind the layer, every `K` uses what the layer verified and the layer's configuration.
/// Sealed: the three types above are the only sources.
pub trait ConfigSource<S>: sealed::Sealed {
    /// The configuration for a request without the layer, if this source has one.
    fn config(state: &S) -> Option<QStashConfig>;
}

#[allow(unreachable_pub)]
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::QStashConfig {}
    impl Sealed for super::Verifier {}
    impl Sealed for super::Layered {}
}

impl<S> ConfigSource<S> for QStashConfig
where
    Self: FromRef<S>,
{
    fn config(state: &S) -> Option<QStashConfig> {
        Some(Self::from_ref(state))
    }
}

impl<S> ConfigSource<S> for Verifier
where
    Self: FromRef<S>,
{
    fn config(state: &S) -> Option<QStashConfig> {
        Some(QStashConfig::new(Self::from_ref(state)))
    }
}

/// The [`ConfigSource`] for routes behind [`QStashLayer`](crate::QStashLayer): works with any
/// state, and needs nothing in it. `QStash<Order, Layered>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layered;

impl<S> ConfigSource<S> for Layered {
    fn config(_: &S) -> Option<QStashConfig> {
        None
    }
}

/// A verified delivery, before it is decoded.
struct Verified {
    body: Bytes,
    delivery: Delivery,
    claims: Claims,
    config: QStashConfig,
    headers: http::HeaderMap,
}

/// What the layer verified, or a verification with `K`'s configuration.
async fn verified<K, S>(req: Request, state: &S) -> Result<Verified, QStashRejection>
where
    K: ConfigSource<S>,
{
    let (mut parts, body) = req.into_parts();
    if let Some(VerifiedByLayer { config, body }) = parts.extensions.remove::<VerifiedByLayer>() {
        let claims = parts.extensions.remove::<Claims>();
        let delivery = parts.extensions.remove::<Delivery>();
        if let (Some(claims), Some(delivery)) = (claims, delivery) {
            // The bytes the layer verified (a reference to the same buffer as the request's
            // body, which is not read again).
            return Ok(Verified {
                body,
                delivery,
                claims,
                config,
                headers: parts.headers,
            });
        }
    }
    let Some(config) = K::config(state) else {
        return Err(refuse(MissingLayer, &parts.headers));
    };
    let body = verify::read_body(&parts.headers, body, &config).await?;
    let (claims, delivery) = verify::verify(&config, &parts, &body)?;
    Ok(Verified {
        body,
        delivery,
        claims,
        config,
        headers: parts.headers,
    })
}

/// A verified QStash delivery whose JSON body deserialized into `T`.
///
/// Refusals: 401 for a missing, repeated or invalid signature, 413 for a body over the limit,
/// and, once the signature is valid, 489 with `Upstash-NonRetryable-Error: true` (or the
/// configured status) for a body that is not a `T` or unusable `Upstash-*` headers. See
/// [`QStashRejection`].
///
/// `K` says where the configuration comes from when no [`QStashLayer`](crate::QStashLayer)
/// verified the request first: by default a [`QStashConfig`] in the state; [`Layered`] for
/// routes behind the layer with any state. See [`ConfigSource`].
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::post};
/// use qstash_receiver::{SigningKeys, Verifier};
/// use tower_qstash::{QStash, QStashConfig};
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// async fn handle(QStash { payload, delivery, .. }: QStash<Order>) -> String {
///     format!("order {} (message {}, retried {})", payload.id, delivery.message_id, delivery.retried)
/// }
///
/// let verifier = Verifier::new(SigningKeys::new("sig_current", "sig_next")?);
/// let app: Router = Router::new()
///     .route("/api/orders", post(handle))
///     .with_state(QStashConfig::new(verifier));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct QStash<T, K = QStashConfig> {
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
        let v = verified::<K, S>(req, state).await?;
        match serde_json::from_slice(&v.body) {
            Ok(payload) => Ok(Self::new(payload, v.delivery, v.claims)),
            Err(e) => Err(refuse(
                InvalidPayload::new(
                    json_error_text(&e),
                    v.config.payload_status(),
                    v.config.hook(),
                ),
                &v.headers,
            )),
        }
    }
}

/// A serde_json error as text that never quotes the input (its "invalid type: string
/// \"...\"" messages would copy body content into logs): the category and the position.
fn json_error_text(e: &serde_json::Error) -> Box<str> {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "not valid JSON",
        Category::Data => "JSON of another shape",
        Category::Eof => "JSON ends early",
    };
    format!("{what} at line {}, column {}", e.line(), e.column()).into()
}

/// A verified QStash delivery with its raw body, for payloads that are not JSON.
///
/// Refusals as for [`QStash`], without the payload check. `K` as for [`QStash`].
#[must_use]
#[derive(Debug, Clone)]
pub struct QStashRaw<K = QStashConfig> {
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
        let v = verified::<K, S>(req, state).await?;
        Ok(Self::new(v.body, v.delivery, v.claims))
    }
}

/// A verified callback or failure-callback delivery: what QStash POSTs to the
/// `Upstash-Callback` / `Upstash-Failure-Callback` URL after delivering a message.
///
/// The body is parsed with [`Callback::from_slice`]; a body that is not a callback gets 489
/// (or the configured status). The destination's response body is decoded into `T` only when
/// you call [`response`](Self::response): a failure callback usually carries an error page,
/// and refusing it would send the callback to the dead-letter queue. `K` as for [`QStash`].
///
/// # Examples
///
/// ```
/// use tower_qstash::{Layered, QStashCallback};
///
/// #[derive(serde::Deserialize)]
/// struct Receipt { ok: bool }
///
/// async fn on_callback(callback: QStashCallback<Receipt, Layered>) {
///     match callback.response() {
///         Ok(receipt) if callback.callback.is_success() => assert!(receipt.ok),
///         _ => eprintln!("message {:?} failed: {}", callback.callback.source_message_id, callback.callback.status),
///     }
/// }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct QStashCallback<T = serde_json::Value, K = QStashConfig> {
    /// The callback: the destination's status, headers and body, the source message, …
    pub callback: Callback,
    /// The `Upstash-*` headers of the callback delivery itself.
    pub delivery: Delivery,
    /// The verified token's claims (`sub` is the callback URL).
    pub claims: Claims,
    types: PhantomData<fn() -> (T, K)>,
}

impl<T, K> QStashCallback<T, K> {
    /// Builds the value a handler would get, e.g. to call the handler in a unit test.
    pub const fn new(callback: Callback, delivery: Delivery, claims: Claims) -> Self {
        Self {
            callback,
            delivery,
            claims,
            types: PhantomData,
        }
    }
}

impl<T: DeserializeOwned, K> QStashCallback<T, K> {
    /// The destination's response body, decoded from JSON into `T`.
    ///
    /// # Errors
    ///
    /// [`CallbackError::BodyJson`] when the body is not JSON of type `T` (as a failure
    /// callback's error page usually is not).
    pub fn response(&self) -> Result<T, CallbackError> {
        self.callback.body_json()
    }
}

impl<S, T, K> FromRequest<S> for QStashCallback<T, K>
where
    S: Send + Sync,
    K: ConfigSource<S>,
{
    type Rejection = QStashRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let v = verified::<K, S>(req, state).await?;
        match Callback::from_slice(&v.body) {
            Ok(callback) => Ok(Self::new(callback, v.delivery, v.claims)),
            Err(e) => Err(refuse(
                InvalidCallback::new(e, v.config.payload_status(), v.config.hook()),
                &v.headers,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_do_not_quote_the_body() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let cases = [
            (
                "wrong type",
                r#"{"n":"secret-value"}"#,
                "JSON of another shape",
            ),
            ("syntax", r#"{"n": secret"#, "not valid JSON"),
            ("truncated", r#"{"n": 1"#, "JSON ends early"),
        ];
        for (name, json, want) in cases {
            let e = serde_json::from_str::<T>(json).unwrap_err();
            let text = json_error_text(&e);
            assert!(text.starts_with(want), "{name}: {text}");
            assert!(!text.contains("secret"), "{name}: {text}");
        }
    }
}
