//! [`inspect_unverified`]: read a token's header and claims **without verifying it**, to
//! explain why a verification failed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// The header and claims of a token, decoded **without any check**: not the MAC, not the
/// algorithm, not the time window, nothing.
///
/// Made by [`inspect_unverified`] for diagnostics only. Every field is optional and loosely
/// typed (a claim of the wrong JSON type reads as `None`), because the token being inspected is
/// usually one that failed verification.
///
/// # Security
///
/// Anyone can write any of these values: they are **not** proof that QStash sent anything.
/// Never authorize, route or deduplicate on them; use the [`Claims`](crate::Claims) that
/// [`Verifier::verify`](crate::Verifier::verify) returns instead.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct UnverifiedClaims {
    /// The header's `alg`, as written (QStash uses `HS256`).
    pub algorithm: Option<String>,
    /// `iss` (QStash uses `Upstash`).
    pub issuer: Option<String>,
    /// `sub`: the URL the token claims to be for.
    pub subject: Option<String>,
    /// `body`: the claimed base64url SHA-256 of the body, as written (usually padded).
    pub body_hash: Option<String>,
    /// `exp`, unix seconds.
    pub expires_at: Option<i64>,
    /// `nbf`, unix seconds.
    pub not_before: Option<i64>,
    /// `iat`, unix seconds.
    pub issued_at: Option<i64>,
    /// `jti`.
    pub token_id: Option<String>,
}

/// Decodes a token's header and claims **without verifying anything**, to explain a failed
/// verification (print the claimed subject, expiry and body hash next to the actual ones).
///
/// # Security
///
/// **This is not a verification.** The MAC is not checked, so the result says nothing about
/// who made the token. Verify with [`Verifier`](crate::Verifier) first and use this only to
/// describe a refusal.
///
/// # Errors
///
/// [`ErrorKind::MalformedToken`] when the token is not three segments, a segment is not
/// base64url, or the header or payload is not a JSON object.
///
/// # Examples
///
/// ```
/// use qstash_receiver::Signer;
/// use qstash_receiver::dangerous::inspect_unverified;
///
/// let token = Signer::new("sig_x")?.sign_at("https://example.com/hook", b"hi", 1_700_000_000);
/// let claims = inspect_unverified(&token)?;
/// assert_eq!(claims.subject.as_deref(), Some("https://example.com/hook"));
/// assert_eq!(claims.expires_at, Some(1_700_000_300));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect_unverified(token: &str) -> Result<UnverifiedClaims, Error> {
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(Error::with_text(
            ErrorKind::MalformedToken,
            "expected three segments",
        ));
    };
    let header = decode_object(header, "header")?;
    let claims = decode_object(payload, "payload")?;
    let text = |object: &serde_json::Map<String, Value>, name: &str| {
        object.get(name).and_then(Value::as_str).map(str::to_owned)
    };
    let int = |name: &str| claims.get(name).and_then(Value::as_i64);
    Ok(UnverifiedClaims {
        algorithm: text(&header, "alg"),
        issuer: text(&claims, "iss"),
        subject: text(&claims, "sub"),
        body_hash: text(&claims, "body"),
        expires_at: int("exp"),
        not_before: int("nbf"),
        issued_at: int("iat"),
        token_id: text(&claims, "jti"),
    })
}

fn decode_object(
    segment: &str,
    what: &'static str,
) -> Result<serde_json::Map<String, Value>, Error> {
    let json = URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        Error::with_text(
            ErrorKind::MalformedToken,
            format!("{what} is not base64url"),
        )
    })?;
    match serde_json::from_slice(&json) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(Error::with_text(
            ErrorKind::MalformedToken,
            format!("{what} is not a JSON object"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Signer;
    use crate::digest::body_hash;

    #[test]
    fn reads_what_the_signer_wrote() {
        let signer = Signer::new("sig_x").unwrap();
        let token = signer.sign_with_id("https://a.example/p?q=1", b"hi", 1_000, "jwt_1");
        let claims = inspect_unverified(&token).unwrap();
        assert_eq!(
            claims,
            UnverifiedClaims {
                algorithm: Some("HS256".into()),
                issuer: Some("Upstash".into()),
                subject: Some("https://a.example/p?q=1".into()),
                body_hash: Some(body_hash(b"hi")),
                expires_at: Some(1_300),
                not_before: Some(1_000),
                issued_at: Some(1_000),
                token_id: Some("jwt_1".into()),
            }
        );
    }

    #[test]
    fn does_not_check_the_signature_and_tolerates_odd_claims() {
        let signer = Signer::new("sig_x").unwrap();
        let token = signer.sign_claims(br#"{"exp":"soon","sub":7,"nbf":-62135596800}"#);
        let forged = format!("{}.AAAA", &token[..token.rfind('.').unwrap()]);
        let claims = inspect_unverified(&forged).unwrap();
        assert_eq!(claims.expires_at, None);
        assert_eq!(claims.subject, None);
        assert_eq!(claims.not_before, Some(-62_135_596_800));
    }

    #[test]
    fn refuses_what_is_not_a_token() {
        for token in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.x",
            "e30.W10.x",
            "e30.bm90IGpzb24.x",
        ] {
            let err = inspect_unverified(token).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MalformedToken, "{token}");
        }
    }
}
