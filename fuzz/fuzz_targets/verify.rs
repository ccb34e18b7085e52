//! Fuzzes `Verifier::verify` with invariants, not just "no panic":
//!
//! 1. An arbitrary token, body, URL, clock and subject policy: never panics, never accepts a
//!    token that was not MAC'd with one of the keys, and no error message shows a key.
//! 2. A token signed (by the crate's `Signer`, with the current and with the next key) for the
//!    fuzzed body and URL verifies at its issue instant, by whole URL and by path and query,
//!    reports the right key, subject and body digest; it is refused one second before `nbf`
//!    and at `exp`.
//! 3. The same token with one byte changed (fuzz-chosen position and bit pattern) is refused,
//!    and so is the original token with a changed body or URL.
//! 4. Fuzzed header and claims JSON, correctly MAC'd: when the verifier accepts, an independent
//!    reading with `serde_json::Value` must agree (alg is `HS256`, no `crit`, `iss` is
//!    `Upstash`, `sub`/`exp`/`nbf` equal what `Claims` reports, the time window holds, the body
//!    hash matches padding-insensitively).
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use qstash_receiver::{
    Error, ErrorKind, Signer, SigningKeys, Subject, Validation, Verifier, claims::MatchedKey,
    subject::path_and_query, verify::DEFAULT_MAX_TOKEN_BYTES,
};
use sha2::{Digest, Sha256};

const CURRENT: &str = "sig_FuzzCurrentKey7kYjw48mhY7kAjq";
const NEXT: &str = "sig_FuzzNextKey5ZB6DVzB1wjE8S6rZ";

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    token: &'a str,
    body: &'a [u8],
    url: &'a str,
    header_json: &'a [u8],
    claims_json: &'a [u8],
    now: i64,
    tolerance: u16,
    subject_mode: u8,
    mutate_at: u16,
    mutate_xor: u8,
}

fn verifier(tolerance: u16) -> Verifier {
    Verifier::new(SigningKeys::new(CURRENT, NEXT).expect("fixed keys are valid"))
        .clock_tolerance(std::time::Duration::from_secs(u64::from(tolerance)))
}

/// An error's `Display` and `Debug` never show a signing key (unless the attacker-controlled
/// inputs themselves contain it, which a subject-mismatch message may legitimately echo).
fn check_error_text(err: &Error, inputs: &[&[u8]]) {
    let echoes_key = inputs.iter().any(|input| {
        [CURRENT, NEXT]
            .iter()
            .any(|key| input.windows(key.len()).any(|w| w == key.as_bytes()))
    });
    if echoes_key {
        return;
    }
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(CURRENT), "current key in error text: {text}");
        assert!(!text.contains(NEXT), "next key in error text: {text}");
    }
}

fn subject_for<'a>(mode: u8, url: &'a str) -> Subject<'a> {
    match mode % 3 {
        0 => Subject::Url(url),
        1 => Subject::PathAndQuery(url),
        _ => Subject::DangerouslySkipCheck,
    }
}

/// JSON as `serde_json::Value`; bytes that are not UTF-8 are read lossily, since serde_json
/// does not check the UTF-8 of strings it skips (unknown fields), and so neither does the
/// verifier.
fn json_value(bytes: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(bytes)
        .ok()
        .or_else(|| serde_json::from_str(&String::from_utf8_lossy(bytes)).ok())
}

fn hs256(key: &str, input: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(input.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fuzz_target!(|input: Input<'_>| {
    let v = verifier(input.tolerance);
    let tol = i64::from(input.tolerance);

    // 1. Arbitrary token: no panic; acceptance is only possible with a MAC we made, which the
    //    fuzzer cannot produce, so any Ok here is a bypass.
    let subject = subject_for(input.subject_mode, input.url);
    match v.verify(
        input.token,
        input.body,
        &Validation::new(subject).at(input.now),
    ) {
        Ok(claims) => panic!("accepted a token that was never signed: {claims:?}"),
        Err(err) => check_error_text(&err, &[input.token.as_bytes(), input.url.as_bytes()]),
    }

    // 2. A token we sign for the fuzzed body and URL.
    let now = input.now.clamp(i64::MIN / 2, i64::MAX / 2);
    let current = Signer::new(CURRENT).expect("fixed key");
    let next = Signer::new(NEXT).expect("fixed key");
    let token = current.sign_with_id(input.url, input.body, now, "jwt_fuzz");
    let too_long = token.len() > DEFAULT_MAX_TOKEN_BYTES;
    let exact = v.verify(
        &token,
        input.body,
        &Validation::new(Subject::Url(input.url)).at(now),
    );
    if too_long {
        assert_eq!(
            exact.map(|_| ()).map_err(|e| e.kind()),
            Err(ErrorKind::TokenTooLong)
        );
    } else {
        let claims = exact.unwrap_or_else(|e| panic!("own token refused: {e}"));
        assert_eq!(claims.subject(), input.url);
        assert_eq!(claims.matched_key(), MatchedKey::Current);
        assert_eq!(claims.not_before(), now);
        assert_eq!(claims.expires_at(), now + 300);
        assert_eq!(claims.token_id(), Some("jwt_fuzz"));
        assert_eq!(&claims.body_digest()[..], &Sha256::digest(input.body)[..]);
        assert_eq!(
            claims.body_hash(),
            URL_SAFE.encode(Sha256::digest(input.body))
        );

        // Next key, path-and-query policy, skip policy.
        let by_next = next.sign_with_id(input.url, input.body, now, "jwt_fuzz");
        let claims = v
            .verify(
                &by_next,
                input.body,
                &Validation::new(Subject::DangerouslySkipCheck).at(now),
            )
            .unwrap_or_else(|e| panic!("next-key token refused: {e}"));
        assert_eq!(claims.matched_key(), MatchedKey::Next);
        if let Some(target) = path_and_query(input.url) {
            v.verify(
                &token,
                input.body,
                &Validation::new(Subject::PathAndQuery(target)).at(now),
            )
            .unwrap_or_else(|e| panic!("own token refused by path and query {target:?}: {e}"));
        }

        // The validity window, with the tolerance on both sides.
        let at = |t: i64| {
            v.verify(
                &token,
                input.body,
                &Validation::new(Subject::Url(input.url)).at(t),
            )
            .map(|_| ())
            .map_err(|e| e.kind())
        };
        assert_eq!(at(now - tol), Ok(()));
        assert_eq!(at(now - tol - 1), Err(ErrorKind::NotYetValid));
        assert_eq!(at(now + 299 + tol), Ok(()));
        assert_eq!(at(now + 300 + tol), Err(ErrorKind::Expired));

        // 3. One byte of the token changed (staying ASCII): always refused.
        let mut bytes = token.clone().into_bytes();
        let at_byte = usize::from(input.mutate_at) % bytes.len();
        let xor = (input.mutate_xor & 0x7f).max(1);
        bytes[at_byte] ^= xor;
        let mutated = String::from_utf8(bytes).expect("ASCII stays ASCII");
        if let Ok(claims) = v.verify(
            &mutated,
            input.body,
            &Validation::new(Subject::Url(input.url)).at(now),
        ) {
            panic!("accepted a token with byte {at_byte} xor {xor:#x}: {mutated} -> {claims:?}");
        }

        // A different body is refused for its hash.
        let mut other_body = input.body.to_vec();
        match other_body.get_mut(usize::from(input.mutate_at) % input.body.len().max(1)) {
            Some(b) => *b ^= xor,
            None => other_body.push(xor),
        }
        let err = v
            .verify(
                &token,
                &other_body,
                &Validation::new(Subject::Url(input.url)).at(now),
            )
            .expect_err("changed body accepted");
        assert_eq!(err.kind(), ErrorKind::BodyHashMismatch);

        // A different URL is refused for its subject.
        let other_url = format!("{}x", input.url);
        let err = v
            .verify(
                &token,
                input.body,
                &Validation::new(Subject::Url(&other_url)).at(now),
            )
            .expect_err("changed URL accepted");
        assert_eq!(err.kind(), ErrorKind::SubjectMismatch);
        check_error_text(&err, &[input.url.as_bytes()]);
    }

    // 4. Fuzzed header and claims, correctly MAC'd.
    let header_b64 = if input.header_json.is_empty() {
        String::from("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9")
    } else {
        URL_SAFE_NO_PAD.encode(input.header_json)
    };
    let signing_input = format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(input.claims_json));
    let key = if input.subject_mode & 0x80 == 0 {
        CURRENT
    } else {
        NEXT
    };
    let crafted = format!("{signing_input}.{}", hs256(key, &signing_input));
    match v.verify(
        &crafted,
        input.body,
        &Validation::new(subject).at(input.now),
    ) {
        Err(err) => check_error_text(
            &err,
            &[input.url.as_bytes(), input.claims_json, input.header_json],
        ),
        Ok(claims) => {
            let header: serde_json::Value = if input.header_json.is_empty() {
                serde_json::json!({"alg": "HS256", "typ": "JWT"})
            } else {
                json_value(input.header_json).expect("accepted header is JSON")
            };
            let header = header.as_object().expect("accepted header is an object");
            assert_eq!(header.get("alg"), Some(&serde_json::json!("HS256")));
            assert!(header.get("crit").is_none(), "accepted a crit header");

            let value = json_value(input.claims_json).expect("accepted claims are JSON");
            let object = value.as_object().expect("accepted claims are an object");
            assert_eq!(object.get("iss").and_then(|v| v.as_str()), Some("Upstash"));
            let sub = object
                .get("sub")
                .and_then(|v| v.as_str())
                .expect("sub string");
            assert_eq!(sub, claims.subject());
            let exp = object
                .get("exp")
                .and_then(|v| v.as_i64())
                .expect("exp integer");
            let nbf = object
                .get("nbf")
                .and_then(|v| v.as_i64())
                .expect("nbf integer");
            assert_eq!((exp, nbf), (claims.expires_at(), claims.not_before()));
            assert!(input.now >= nbf.saturating_sub(tol), "accepted before nbf");
            assert!(
                input.now < exp.saturating_add(tol),
                "accepted at or after exp"
            );
            let body = object
                .get("body")
                .and_then(|v| v.as_str())
                .expect("body string");
            assert_eq!(
                body.trim_end_matches('='),
                URL_SAFE_NO_PAD.encode(Sha256::digest(input.body)),
                "accepted a body hash that does not match"
            );
            match subject {
                Subject::Url(url) => assert_eq!(sub, url),
                Subject::PathAndQuery(target) => {
                    let target = if target.is_empty() { "/" } else { target };
                    assert_eq!(path_and_query(sub), Some(target));
                }
                _ => {}
            }
            assert_eq!(
                claims.matched_key(),
                if key == CURRENT {
                    MatchedKey::Current
                } else {
                    MatchedKey::Next
                }
            );
        }
    }
});
