//! Shared by the benches: the keys, the URL, and the `jsonwebtoken` verifier used as the
//! comparison.

#![allow(dead_code, unreachable_pub)] // each bench uses part of it

use qstash_receiver::digest::body_hash;

pub const CURRENT: &str = "sig_3nj4aiyJ2JojDnQ1RRodpYubZAZxAJxNfQcRSKPwVUNbueYk2o";
pub const NEXT: &str = "sig_31zVqmL3s7Eo1vpu1jRSMpaetJXvAT3RvNcfoGUp1Toii8fsQE";
pub const URL: &str = "https://qstash-receiver.example.com/api/webhooks/qstash";

/// The current time in unix seconds (`jsonwebtoken` reads the system clock itself).
pub fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// The same checks with `jsonwebtoken`: HS256 only, required `exp`/`nbf`/`iss`/`sub`, issuer,
/// subject, then the body hash (which `jsonwebtoken` does not know), current key then next.
pub struct JwtVerifier {
    keys: [jsonwebtoken::DecodingKey; 2],
    validation: jsonwebtoken::Validation,
}

#[derive(serde::Deserialize)]
struct BodyClaim {
    body: String,
}

impl JwtVerifier {
    pub fn new() -> Self {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.set_issuer(&["Upstash"]);
        validation.sub = Some(URL.to_owned());
        validation.validate_nbf = true;
        validation.validate_aud = false;
        let key = |k: &str| jsonwebtoken::DecodingKey::from_secret(k.as_bytes()).unwrap();
        Self {
            keys: [key(CURRENT), key(NEXT)],
            validation,
        }
    }

    pub fn verify(&self, token: &str, body: &[u8]) -> bool {
        self.keys.iter().any(|key| {
            jsonwebtoken::decode::<BodyClaim>(token, key, &self.validation).is_ok_and(|data| {
                data.claims.body.trim_end_matches('=') == body_hash(body).trim_end_matches('=')
            })
        })
    }
}
