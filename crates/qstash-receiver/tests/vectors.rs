//! Real tokens signed by QStash, checked at the instants recorded with them.

#![allow(clippy::unwrap_used)] // test helpers: a failed set-up should fail the test

use std::time::Duration;

use qstash_receiver::{ErrorKind, SigningKeys, Subject, Validation, Verifier};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    name: String,
    token: String,
    current_key: String,
    next_key: String,
    body: String,
    url: Option<String>,
    now: i64,
    tolerance_secs: u64,
    expect: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("data/real-tokens.json")).expect("vectors parse")
}

fn expected_kind(expect: &str) -> Option<ErrorKind> {
    match expect {
        "ok" => None,
        "expired" => Some(ErrorKind::Expired),
        "not_yet_valid" => Some(ErrorKind::NotYetValid),
        "subject_mismatch" => Some(ErrorKind::SubjectMismatch),
        "body_hash_mismatch" => Some(ErrorKind::BodyHashMismatch),
        "invalid_signature" => Some(ErrorKind::InvalidSignature),
        other => panic!("unknown expectation {other}"),
    }
}

#[test]
fn every_real_token_verifies_or_fails_for_the_recorded_reason() {
    let vectors = vectors();
    assert!(
        vectors.len() >= 30,
        "expected the whole vector file, got {}",
        vectors.len()
    );
    for v in &vectors {
        let keys = SigningKeys::new(&v.current_key, &v.next_key).unwrap();
        let verifier = Verifier::new(keys).clock_tolerance(Duration::from_secs(v.tolerance_secs));
        let subject = v
            .url
            .as_deref()
            .map_or(Subject::DangerouslySkipCheck, Subject::Url);
        let got = verifier.verify(
            &v.token,
            v.body.as_bytes(),
            &Validation::new(subject).at(v.now),
        );
        match (expected_kind(&v.expect), got) {
            (None, Ok(claims)) => {
                if let Some(url) = &v.url {
                    assert_eq!(claims.subject(), url, "{}", v.name);
                }
            }
            (Some(want), Err(err)) => assert_eq!(err.kind(), want, "{}: {err}", v.name),
            (want, got) => panic!("{}: expected {want:?}, got {got:?}", v.name),
        }
    }
}

#[test]
fn real_tokens_verify_by_path_and_query_too() {
    for v in vectors().iter().filter(|v| v.expect == "ok") {
        let Some(url) = &v.url else { continue };
        let keys = SigningKeys::new(&v.current_key, &v.next_key).unwrap();
        let verifier = Verifier::new(keys).clock_tolerance(Duration::from_secs(v.tolerance_secs));
        let target = qstash_receiver::subject::path_and_query(url).unwrap();
        verifier
            .verify(
                &v.token,
                v.body.as_bytes(),
                &Validation::new(Subject::PathAndQuery(target)).at(v.now),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
    }
}

#[test]
fn real_tokens_verify_with_either_key_order() {
    // Whichever key signed a real token, swapping current and next must flip which one matched:
    // a rotation in the console never drops a delivery.
    use qstash_receiver::claims::MatchedKey::{Current, Next};
    for v in vectors().iter().filter(|v| v.expect == "ok") {
        let check = |current: &str, next: &str| {
            let verifier = Verifier::new(SigningKeys::new(current, next).unwrap())
                .clock_tolerance(Duration::from_secs(v.tolerance_secs));
            verifier
                .verify(
                    &v.token,
                    v.body.as_bytes(),
                    &Validation::new(Subject::DangerouslySkipCheck).at(v.now),
                )
                .unwrap_or_else(|e| panic!("{}: {e}", v.name))
                .matched_key()
        };
        let straight = check(&v.current_key, &v.next_key);
        let swapped = check(&v.next_key, &v.current_key);
        assert!(
            matches!((straight, swapped), (Current, Next) | (Next, Current)),
            "{}",
            v.name
        );
    }
}

#[test]
fn real_tokens_fail_with_unrelated_keys() {
    let verifier = Verifier::new(SigningKeys::dev());
    for v in vectors() {
        let err = verifier
            .verify(
                &v.token,
                v.body.as_bytes(),
                &Validation::new(Subject::DangerouslySkipCheck).at(v.now),
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{}", v.name);
    }
}
