//! Inputs that made a fuzz target in `fuzz/` fail (see `scripts/fuzz.sh`), kept as tests.

#![allow(clippy::unwrap_used)] // test code: a failed expectation should fail the test

use qstash_receiver::{Callback, Validation, callback::CallbackError};

/// Target `callback`: the documented callback with two field names garbled and four bytes
/// that are not UTF-8 inside the string of one of those (now unknown) fields. `serde_json`
/// skips ignored strings without validating their UTF-8; JSON text must be UTF-8, so the body
/// is refused as a whole.
#[test]
fn callback_with_non_utf8_bytes_in_an_ignored_field_is_refused() {
    let body: &[u8] = b"{ \"status\": 200, \"header\": {\"Content-Type\": [\"text/plain\"]}, \"body\": \"aGVsbG8=\",\n  \"sourceBod!y\": \"eyJvcm\xff\xff\xff\xffRlciI3MX0=\", \"callerIX\": \"178.247.74.179\" }\n";
    assert!(std::str::from_utf8(std::hint::black_box(body)).is_err());
    let err = Callback::from_slice(body).unwrap_err();
    assert_eq!(err, CallbackError::Json("not UTF-8".into()));
}

/// The same leniency in the claims: a token with a valid MAC whose (ignored) `aud` holds bytes
/// that are not UTF-8, read through the general JSON path.
#[test]
fn claims_with_non_utf8_bytes_in_an_ignored_claim_are_refused() {
    use qstash_receiver::{ErrorKind, Signer, SigningKeys, Subject, Verifier, digest::body_hash};
    let claims = format!(
        "{{\"aud\":\"\x00\",\"body\":\"{}\",\"exp\":1700000300,\"iat\":1700000000,\"iss\":\"Upstash\",\"jti\":\"jwt_1\",\"nbf\":1700000000,\"sub\":\"https://a.example/\"}}",
        body_hash(b"b")
    );
    let mut bytes = claims.into_bytes();
    let at = bytes.iter().position(|&b| b == 0).unwrap();
    bytes[at] = 0xff;
    let token = Signer::new("sig_a").unwrap().sign_claims(&bytes);
    let verifier = Verifier::new(SigningKeys::new("sig_a", "sig_b").unwrap());
    let err = verifier
        .verify(
            &token,
            b"b",
            &Validation::new(Subject::DangerouslySkipCheck).at(1_700_000_000),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidClaims);
}
