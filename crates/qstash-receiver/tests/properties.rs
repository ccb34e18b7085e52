//! Properties over generated inputs: sign → verify round trips, single-byte tampering, the
//! validity window, and agreement with `jsonwebtoken` as an independent oracle.

#![allow(clippy::unwrap_used)] // test helpers: a failed set-up should fail the test

use std::time::Duration;

use proptest::prelude::*;
use qstash_receiver::{
    ErrorKind, Signer, SigningKeys, Subject, Validation, Verifier, digest::body_hash,
};

const CURRENT: &str = "sig_propcurrent";
const NEXT: &str = "sig_propnext";

fn verifier(tolerance: u64) -> Verifier {
    Verifier::new(SigningKeys::new(CURRENT, NEXT).unwrap())
        .clock_tolerance(Duration::from_secs(tolerance))
}

fn url_strategy() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("https"), Just("http")],
        "[a-z]{1,12}(\\.[a-z]{2,5}){1,2}",
        prop::option::of(1u16..),
        "(/[A-Za-z0-9._~%-]{0,12}){0,4}",
        prop::option::of("[A-Za-z0-9=&%._-]{0,24}"),
    )
        .prop_map(|(scheme, host, port, path, query)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("{scheme}://{host}{port}{path}{query}")
        })
}

const ISSUED: i64 = 1_700_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_deliveries_verify_inside_the_window(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        url in url_strategy(),
        tolerance in 0u64..120,
        offset in 0i64..300,
        next in any::<bool>(),
    ) {
        let key = if next { NEXT } else { CURRENT };
        let token = Signer::new(key).unwrap().sign_at(&url, &body, ISSUED);
        let now = ISSUED + offset;
        let claims = verifier(tolerance).verify(&token, &body, &Validation::new(Subject::Url(&url)).at(now)).unwrap();
        prop_assert_eq!(claims.subject(), url.as_str());
        prop_assert_eq!(claims.body_hash(), body_hash(&body));
        let target = qstash_receiver::subject::path_and_query(&url).unwrap();
        prop_assert!(verifier(tolerance).verify(&token, &body, &Validation::new(Subject::PathAndQuery(target)).at(now)).is_ok());
        // The tolerance stretches both ends.
        let t = i64::try_from(tolerance).unwrap();
        prop_assert!(verifier(tolerance).verify(&token, &body, &Validation::new(Subject::Url(&url)).at(ISSUED - t)).is_ok());
        prop_assert!(verifier(tolerance).verify(&token, &body, &Validation::new(Subject::Url(&url)).at(ISSUED + 299 + t)).is_ok());
    }

    #[test]
    fn instants_outside_the_window_are_refused(
        tolerance in 0u64..120,
        before in 1i64..1_000_000,
        after in 0i64..1_000_000,
    ) {
        let url = "https://a.example/x";
        let token = Signer::new(CURRENT).unwrap().sign_at(url, b"b", ISSUED);
        let t = i64::try_from(tolerance).unwrap();
        let v = verifier(tolerance);
        let early = v.verify(&token, b"b", &Validation::new(Subject::Url(url)).at(ISSUED - t - before)).unwrap_err();
        prop_assert_eq!(early.kind(), ErrorKind::NotYetValid);
        let late = v.verify(&token, b"b", &Validation::new(Subject::Url(url)).at(ISSUED + 300 + t + after)).unwrap_err();
        prop_assert_eq!(late.kind(), ErrorKind::Expired);
    }

    #[test]
    fn any_single_byte_change_to_the_token_is_refused(
        body in prop::collection::vec(any::<u8>(), 0..256),
        index in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let url = "https://a.example/hook?x=1";
        let token = Signer::new(CURRENT).unwrap().sign_at(url, &body, ISSUED);
        let mut bytes = token.clone().into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let tampered = String::from_utf8_lossy(&bytes);
        let result = verifier(0).verify(&tampered, &body, &Validation::new(Subject::Url(url)).at(ISSUED));
        prop_assert!(result.is_err(), "accepted a token changed at byte {i}");
    }

    #[test]
    fn any_single_byte_change_to_the_body_or_url_is_refused(
        body in prop::collection::vec(any::<u8>(), 1..512),
        url in url_strategy(),
        body_index in any::<prop::sample::Index>(),
        url_index in any::<prop::sample::Index>(),
        flip in 1u8..,
        url_char in "[a-zA-Z0-9/?=&.:-]",
    ) {
        let token = Signer::new(CURRENT).unwrap().sign_at(&url, &body, ISSUED);
        let v = verifier(0);
        let mut other_body = body.clone();
        other_body[body_index.index(body.len())] ^= flip;
        let err = v.verify(&token, &other_body, &Validation::new(Subject::Url(&url)).at(ISSUED)).unwrap_err();
        prop_assert_eq!(err.kind(), ErrorKind::BodyHashMismatch);

        let mut other_url: Vec<char> = url.chars().collect();
        let i = url_index.index(other_url.len());
        let c = url_char.chars().next().unwrap();
        prop_assume!(other_url[i] != c);
        other_url[i] = c;
        let other_url: String = other_url.into_iter().collect();
        let err = v.verify(&token, &body, &Validation::new(Subject::Url(&other_url)).at(ISSUED)).unwrap_err();
        prop_assert_eq!(err.kind(), ErrorKind::SubjectMismatch);
    }
}

/// `jsonwebtoken` with a QStash-strict `Validation`, plus the body-hash check it does not know.
/// It reads the system clock itself, so the tests sign relative to the real time and keep
/// two seconds away from the window's edges (where its inclusive `exp` differs from QStash's
/// exclusive one, and where the clock may tick between the two checks).
mod oracle {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    #[derive(serde::Deserialize)]
    struct Claims {
        body: String,
    }

    pub(super) fn verify(token: &str, body: &[u8], url: &str, tolerance: u64, key: &str) -> bool {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.set_issuer(&["Upstash"]);
        validation.sub = Some(url.to_owned());
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = tolerance;
        let decoding = DecodingKey::from_secret(key.as_bytes()).unwrap();
        match jsonwebtoken::decode::<Claims>(token, &decoding, &validation) {
            Ok(data) => {
                data.claims.body.trim_end_matches('=') == body_hash(body).trim_end_matches('=')
            }
            Err(_) => false,
        }
    }

    pub(super) fn either_key(token: &str, body: &[u8], url: &str, tolerance: u64) -> bool {
        verify(token, body, url, tolerance, CURRENT) || verify(token, body, url, tolerance, NEXT)
    }

    pub(super) fn now() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn oracle_agrees_on_generated_tokens(
        body in prop::collection::vec(any::<u8>(), 0..1024),
        url in url_strategy(),
        tolerance in 0u64..60,
        age in -200i64..700,
        key in prop_oneof![Just(CURRENT), Just(NEXT), Just("sig_stranger")],
    ) {
        let now = oracle::now();
        let t = i64::try_from(tolerance).unwrap();
        // Stay clear of the edges: nbf - t and exp + t.
        prop_assume!((age + t).abs() > 2 && (age - 300 - t).abs() > 2);
        let token = Signer::new(key).unwrap().sign_at(&url, &body, now - age);
        let ours = verifier(tolerance).verify(&token, &body, &Validation::new(Subject::Url(&url))).is_ok();
        let theirs = oracle::either_key(&token, &body, &url, tolerance);
        prop_assert_eq!(ours, theirs, "age {} tolerance {} key {}", age, tolerance, key);
    }

    #[test]
    fn oracle_agrees_on_mutated_tokens(
        body in prop::collection::vec(any::<u8>(), 0..256),
        index in any::<prop::sample::Index>(),
        replacement in prop::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec()
        ),
    ) {
        let url = "https://a.example/hook";
        let token = Signer::new(CURRENT).unwrap().sign_at(url, &body, oracle::now() - 10);
        let mut bytes = token.into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let tampered = String::from_utf8(bytes).unwrap();
        let ours = verifier(0).verify(&tampered, &body, &Validation::new(Subject::Url(url))).is_ok();
        let theirs = oracle::either_key(&tampered, &body, url, 0);
        prop_assert_eq!(ours, theirs, "byte {}", i);
        prop_assert!(!ours);
    }
}

#[test]
fn oracle_agrees_on_real_tokens() {
    #[derive(serde::Deserialize)]
    struct Vector {
        token: String,
        current_key: String,
        next_key: String,
        body: String,
        url: Option<String>,
    }
    let vectors: Vec<Vector> = serde_json::from_str(include_str!("data/real-tokens.json")).unwrap();
    // The real tokens expired long ago, so both must refuse them now, and both must accept
    // their MAC: checked through the signature alone with time validation off.
    for v in &vectors {
        let Some(url) = &v.url else { continue };
        let ours = Verifier::new(SigningKeys::new(&v.current_key, &v.next_key).unwrap()).verify(
            &v.token,
            v.body.as_bytes(),
            &Validation::new(Subject::Url(url)),
        );
        assert_eq!(ours.unwrap_err().kind(), ErrorKind::Expired);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let matches = [&v.current_key, &v.next_key].iter().any(|key| {
            jsonwebtoken::decode::<serde_json::Value>(
                &v.token,
                &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()).unwrap(),
                &validation,
            )
            .is_ok()
        });
        assert!(matches, "oracle refused a real token's MAC");
        assert!(!oracle::either_key(&v.token, v.body.as_bytes(), url, 0));
    }
}
