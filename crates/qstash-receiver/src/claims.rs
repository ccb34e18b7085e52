//! The claims of a verified token.

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::error::{Error, ErrorKind, json_error_text};

/// Which of the two signing keys matched a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchedKey {
    /// The current signing key.
    Current,
    /// The next signing key (QStash signs with it once the keys are rotated in the console).
    Next,
}

/// The claims of a verified QStash token.
///
/// All fields are owned (copied out of the token), so a `Claims` can outlive the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub(crate) sub: String,
    pub(crate) exp: i64,
    pub(crate) nbf: i64,
    pub(crate) iat: Option<i64>,
    pub(crate) jti: Option<String>,
    pub(crate) body_hash: String,
    pub(crate) key: MatchedKey,
}

impl Claims {
    /// `sub`: the full destination URL the message was published to.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.sub
    }

    /// `exp`: unix seconds; the token is refused from this instant on (plus tolerance).
    #[must_use]
    pub const fn expires_at(&self) -> i64 {
        self.exp
    }

    /// `nbf`: unix seconds; the token is refused before this instant (minus tolerance).
    #[must_use]
    pub const fn not_before(&self) -> i64 {
        self.nbf
    }

    /// `iat`: unix seconds when QStash signed the token, if present (not checked).
    #[must_use]
    pub const fn issued_at(&self) -> Option<i64> {
        self.iat
    }

    /// `jti`: the token's unique id (`jwt_...`), if present. Different on every attempt.
    #[must_use]
    pub fn token_id(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    /// `body`: base64url SHA-256 of the body, exactly as the token carries it (QStash pads it
    /// with `=`).
    #[must_use]
    pub fn body_hash(&self) -> &str {
        &self.body_hash
    }

    /// Which signing key matched.
    #[must_use]
    pub const fn matched_key(&self) -> MatchedKey {
        self.key
    }
}

/// The wire form. Borrowed where JSON allows (no escapes), so that parsing does not allocate
/// until [`Claims`] is built. `serde` refuses duplicate keys and wrong JSON types for the
/// named fields; unknown fields (`aud` among them) are skipped.
#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(borrow)]
    iss: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    sub: std::borrow::Cow<'a, str>,
    exp: i64,
    nbf: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default, borrow)]
    jti: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
    #[serde(default, rename = "aud")]
    _aud: Option<IgnoredAny>,
}

/// The value QStash puts in `iss`.
pub(crate) const ISSUER: &str = "Upstash";

pub(crate) fn parse(payload: &[u8], key: MatchedKey) -> Result<Claims, Error> {
    // serde's derived structs also accept a JSON array of the fields in order; a JWT claims
    // set is an object, so nothing else is parsed.
    if !is_json_object(payload) {
        return Err(Error::with_text(
            ErrorKind::InvalidClaims,
            "claims are not a JSON object",
        ));
    }
    let raw: RawClaims<'_> = serde_json::from_slice(payload)
        .map_err(|e| Error::with_text(ErrorKind::InvalidClaims, json_error_text(&e)))?;
    if raw.iss != ISSUER {
        return Err(Error::new(ErrorKind::InvalidIssuer));
    }
    Ok(Claims {
        sub: raw.sub.into_owned(),
        exp: raw.exp,
        nbf: raw.nbf,
        iat: raw.iat,
        jti: raw.jti.map(std::borrow::Cow::into_owned),
        body_hash: raw.body.into_owned(),
        key,
    })
}

/// Whether `json` starts (after whitespace) with `{`; serde_json checks the rest.
pub(crate) fn is_json_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}
