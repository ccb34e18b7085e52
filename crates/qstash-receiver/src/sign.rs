//! [`Signer`]: makes tokens exactly as QStash does, for tests, tools and local delivery.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use http::{HeaderMap, HeaderValue};

use crate::claims::ISSUER;
use crate::digest::body_hash;
use crate::error::ConfigError;
use crate::headers::SIGNATURE_HEADER;
use crate::headers::{MESSAGE_ID_HEADER, RETRIED_HEADER};
use crate::keys::SigningKey;
use crate::time::unix_now;

/// How long a QStash token is valid: `exp = iat + 300`.
pub const TOKEN_LIFETIME_SECS: i64 = 300;

/// `{"alg":"HS256","typ":"JWT"}` in base64url, the header of every QStash token.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Signs deliveries with one signing key, producing the same tokens QStash produces: header
/// `{"alg":"HS256","typ":"JWT"}`, claims in alphabetical order with `"aud":""`, the padded
/// base64url body hash, `nbf = iat`, `exp = iat + 300` and a `jwt_...` id.
///
/// # Examples
///
/// ```
/// use qstash_receiver::{Signer, SigningKeys, Subject, Validation, Verifier};
///
/// let signer = Signer::new("sig_current")?;
/// let headers = signer.delivery_headers("https://example.com/hook", b"{}", "msg_1", 0);
/// let verifier = Verifier::new(SigningKeys::new("sig_current", "sig_next")?);
/// verifier.verify_headers(&headers, b"{}", &Validation::new(Subject::Url("https://example.com/hook")))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// A signer for `key` (a `sig_...` string, used as is), checked as [`SigningKeys::new`]
    /// checks its keys.
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptyKey`] for an empty or blank key, [`ConfigError::KeyWhitespace`] for
    /// one with leading or trailing whitespace (a key read with its newline would sign tokens
    /// that no receiver configured with the real key accepts).
    ///
    /// [`SigningKeys::new`]: crate::SigningKeys::new
    pub fn new(key: impl AsRef<str>) -> Result<Self, ConfigError> {
        SigningKey::new(key.as_ref(), "signing").map(|key| Self { key })
    }

    /// A token for a delivery of `body` to `url`, issued now.
    #[must_use]
    pub fn sign(&self, url: &str, body: &[u8]) -> String {
        self.sign_at(url, body, unix_now())
    }

    /// A token for a delivery of `body` to `url`, issued at `now` (unix seconds).
    #[must_use]
    pub fn sign_at(&self, url: &str, body: &[u8], now: i64) -> String {
        self.sign_with_id(url, body, now, &new_token_id())
    }

    /// Like [`Signer::sign_at`] with a given `jti`, for reproducible tokens.
    #[must_use]
    pub fn sign_with_id(&self, url: &str, body: &[u8], now: i64, jti: &str) -> String {
        let claims = format!(
            r#"{{"aud":"","body":"{body}","exp":{exp},"iat":{now},"iss":"{ISSUER}","jti":{jti},"nbf":{now},"sub":{sub}}}"#,
            body = body_hash(body),
            exp = now.saturating_add(TOKEN_LIFETIME_SECS),
            jti = json_string(jti),
            sub = json_string(url),
        );
        self.sign_claims(claims.as_bytes())
    }

    /// Signs an arbitrary claims JSON under the QStash header. For tests of malformed claims.
    #[must_use]
    pub fn sign_claims(&self, claims_json: &[u8]) -> String {
        let mut token = String::with_capacity(HEADER_B64.len() + claims_json.len() * 4 / 3 + 48);
        token.push_str(HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut token);
        let mut mac = self.key.mac();
        mac.update(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
        token
    }

    /// The headers of a delivery as QStash sends them, signed now: `Upstash-Signature`,
    /// `Upstash-Message-Id`, `Upstash-Retried`, and `User-Agent: Upstash-QStash`.
    #[must_use]
    pub fn delivery_headers(
        &self,
        url: &str,
        body: &[u8],
        message_id: &str,
        retried: u32,
    ) -> HeaderMap {
        self.delivery_headers_at(url, body, message_id, retried, unix_now())
    }

    /// Like [`Signer::delivery_headers`], signed at `now`. A `message_id` that is not a valid
    /// header value is left out.
    #[must_use]
    pub fn delivery_headers_at(
        &self,
        url: &str,
        body: &[u8],
        message_id: &str,
        retried: u32,
        now: i64,
    ) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(4);
        if let Ok(token) = HeaderValue::from_str(&self.sign_at(url, body, now)) {
            headers.insert(SIGNATURE_HEADER, token);
        }
        if let Ok(id) = HeaderValue::from_str(message_id) {
            headers.insert(MESSAGE_ID_HEADER, id);
        }
        headers.insert(RETRIED_HEADER, HeaderValue::from(retried));
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static("Upstash-QStash"),
        );
        headers
    }
}

impl Signer {
    /// A delivery of `body` to `url`, signed now and verified by the receiving pipeline with
    /// this signer's key: real [`Claims`](crate::Claims) and [`Delivery`](crate::Delivery) for
    /// unit tests of handlers, which take them through the extractors' constructors.
    ///
    /// # Errors
    ///
    /// The pipeline's refusal, e.g. for a `message_id` that is not a valid header value or a
    /// `url` that is not absolute.
    ///
    /// # Examples
    ///
    /// ```
    /// use qstash_receiver::Signer;
    ///
    /// let verified = Signer::new("sig_test")?.verified("https://app.example.com/hook", b"{}", "msg_1", 2)?;
    /// assert_eq!((verified.delivery.message_id.as_str(), verified.delivery.retried), ("msg_1", 2));
    /// assert_eq!(verified.claims.subject(), "https://app.example.com/hook");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verified(
        &self,
        url: &str,
        body: &[u8],
        message_id: &str,
        retried: u32,
    ) -> Result<crate::Verified, crate::Answer> {
        let now = unix_now();
        let headers = self.delivery_headers_at(url, body, message_id, retried, now);
        let target = crate::subject::path_and_query(url).unwrap_or(url);
        let receiver = crate::Receiver::new(crate::Verifier::new(crate::SigningKeys::same(
            self.key.clone(),
        )))
        .max_body_bytes(body.len())
        .clock(crate::Clock::fixed(now));
        receiver
            .check_head(&crate::RequestHead::new("POST", target, &headers))?
            .finish_with(bytes::Bytes::copy_from_slice(body))
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key", &"<redacted>")
            .finish()
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""))
}

/// A fresh `jwt_` id: 32 base62 characters. Unique per process (a counter) and across
/// processes (std's randomly keyed hasher); not a secret, so no CSPRNG is needed.
#[must_use]
pub fn new_token_id() -> String {
    new_id("jwt_")
}

/// A fresh id with `prefix` and 32 base62 characters, like QStash's `msg_...` ids.
#[must_use]
pub fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    // Eight base62 digits from each of four 64-bit hashes (62^8 < 2^64).
    for part in 0..4u64 {
        let mut hasher = state.build_hasher();
        hasher.write_u64(count);
        hasher.write_u64(part);
        let mut n = hasher.finish();
        for _ in 0..8 {
            id.push(char::from(ALPHABET[(n % 62) as usize]));
            n /= 62;
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_like_the_verifiers() {
        let cases = [
            ("", Some(ConfigError::EmptyKey("signing"))),
            (" \n", Some(ConfigError::EmptyKey("signing"))),
            ("sig_abc\n", Some(ConfigError::KeyWhitespace("signing"))),
            (" sig_abc", Some(ConfigError::KeyWhitespace("signing"))),
            ("sig_abc", None),
        ];
        for (key, want) in cases {
            assert_eq!(Signer::new(key).err(), want, "{key:?}");
        }
    }
}
