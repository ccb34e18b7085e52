//! A `Diagnosis` agrees with the `Verifier`: valid exactly when it accepts, and the first
//! failing check is the verifier's error, for valid tokens and every kind of mutation.

#![allow(clippy::unwrap_used)] // test set-up: a failed set-up should fail the test

use std::time::Duration;

use proptest::prelude::*;
use qstash_receiver::{
    ErrorKind, KeyRing, Signer, SigningKeys, Subject, Validation, Verifier, claims::MatchedKey,
    diagnose::Hint, digest::body_hash,
};

const URL: &str = "https://app.example.com/api/hook?team=1";
const NOW: i64 = 1_700_000_000;

fn verifier() -> Verifier {
    Verifier::new(SigningKeys::new("sig_current", "sig_next").unwrap())
        .clock_tolerance(Duration::from_secs(5))
        .max_token_bytes(4096)
}

/// Checks agreement for one case and gives the diagnosis' first failing kind.
fn agree(
    verifier: &Verifier,
    region: Option<&str>,
    token: &str,
    body: &[u8],
    subject: Subject<'_>,
    now: i64,
) -> Option<ErrorKind> {
    let verdict = verifier.verify(
        token,
        body,
        &Validation::new(subject).in_region(region).at(now),
    );
    let diagnosis = verifier.diagnose(
        token,
        body,
        &Validation::new(subject).in_region(region).at(now),
    );
    assert_eq!(
        diagnosis.is_valid(),
        verdict.is_ok(),
        "{token}: {verdict:?}\n{diagnosis}"
    );
    let diagnosed = diagnosis.error().map(|e| e.kind());
    assert_eq!(
        diagnosed,
        verdict.as_ref().err().map(|e| e.kind()),
        "{token}\n{diagnosis}"
    );
    if let (Some(error), Err(expected)) = (diagnosis.error(), &verdict) {
        assert_eq!(error, expected, "{token}");
    }
    if let Ok(claims) = &verdict {
        assert_eq!(diagnosis.matched_key(), Some(claims.matched_key()));
    }
    let text = format!("{diagnosis}{diagnosis:?}{}", diagnosis.summary());
    assert!(!text.contains("sig_current") && !text.contains("sig_next"));
    if token.len() > 20 {
        assert!(!text.contains(token), "the token leaks: {text}");
    }
    diagnosed
}

fn sign(key: &str, body: &[u8], now: i64) -> String {
    Signer::new(key).unwrap().sign_at(URL, body, now)
}

#[test]
fn a_table_of_mutations_agrees_with_the_verifier() {
    let v = verifier();
    let body = br#"{"a":1,"b":[true]}"#;
    let good = sign("sig_current", body, NOW);
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, tag) = rest.split_once('.').unwrap();
    let signer = Signer::new("sig_current").unwrap();
    let claims = |json: &str| signer.sign_claims(json.as_bytes());
    let hash = body_hash(body);
    type Case<'a> = (String, &'a [u8], Subject<'a>, i64, Option<ErrorKind>);
    let cases: Vec<Case<'_>> = vec![
        (good.clone(), body, Subject::Url(URL), NOW, None),
        (
            sign("sig_next", body, NOW),
            body,
            Subject::PathAndQuery("/api/hook?team=1"),
            NOW,
            None,
        ),
        (
            good.clone(),
            body,
            Subject::DangerouslySkipCheck,
            NOW + 304,
            None,
        ),
        (
            good.clone(),
            body,
            Subject::Url(URL),
            NOW + 305,
            Some(ErrorKind::Expired),
        ),
        (
            good.clone(),
            body,
            Subject::Url(URL),
            NOW - 6,
            Some(ErrorKind::NotYetValid),
        ),
        (
            good.clone(),
            body,
            Subject::PathAndQuery("/hook"),
            NOW,
            Some(ErrorKind::SubjectMismatch),
        ),
        (
            good.clone(),
            b"{\"a\": 1}",
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::BodyHashMismatch),
        ),
        (
            sign("sig_other", body, NOW),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::InvalidSignature),
        ),
        (
            format!("{head}.{payload}.{}", &tag[..42]),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::MalformedToken),
        ),
        (
            format!("{head}.{payload}"),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::MalformedToken),
        ),
        (
            format!("{head}.{payload}.{tag}.x"),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::MalformedToken),
        ),
        (
            "x".repeat(5000),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::TokenTooLong),
        ),
        (
            format!("eyJhbGciOiJub25lIn0.{payload}.{tag}"),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::UnsupportedAlgorithm),
        ),
        // {"alg":"HS256","crit":["b64"]}
        (
            format!("eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiYjY0Il19.{payload}.{tag}"),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::UnsupportedCriticalHeader),
        ),
        (
            claims(&format!(
                r#"{{"iss":"Other","sub":"{URL}","exp":{},"nbf":{NOW},"body":"{hash}"}}"#,
                NOW + 300
            )),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::InvalidIssuer),
        ),
        (
            claims(&format!(
                r#"{{"iss":"Upstash","sub":"{URL}","exp":"soon","nbf":{NOW},"body":"{hash}"}}"#
            )),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::InvalidClaims),
        ),
        (
            claims(&format!(
                r#"{{"iss":"Upstash","sub":"{URL}","exp":{},"nbf":{NOW},"body":"short"}}"#,
                NOW + 300
            )),
            body,
            Subject::Url(URL),
            NOW,
            Some(ErrorKind::BodyHashMismatch),
        ),
        (
            claims(&format!(
                r#"{{"iss":"Upstash","sub":"{URL}","exp":{},"nbf":{NOW},"body":"{}"}}"#,
                NOW + 300,
                hash.trim_end_matches('=')
            )),
            body,
            Subject::Url(URL),
            NOW,
            None,
        ),
    ];
    for (token, body, subject, now, want) in cases {
        assert_eq!(agree(&v, None, &token, body, subject, now), want, "{token}");
    }
    // A ring without default keys: no keys for an unknown region.
    let ring = KeyRing::regions_only().with_region(
        "EU_CENTRAL_1",
        SigningKeys::new("sig_eu", "sig_eu2").unwrap(),
    );
    let v = Verifier::new(ring);
    let eu = sign("sig_eu", body, NOW);
    assert_eq!(
        agree(&v, Some("eu-central-1"), &eu, body, Subject::Url(URL), NOW),
        None
    );
    assert_eq!(
        agree(&v, Some("us-east-1"), &eu, body, Subject::Url(URL), NOW),
        Some(ErrorKind::NoSigningKeys)
    );
}

#[test]
fn every_check_is_reported_not_only_the_first() {
    let v = verifier();
    let token = sign("sig_current", b"hi", NOW);
    let d = v.diagnose(
        &token,
        b"ho",
        &Validation::new(Subject::Url("https://other.example/")).at(NOW + 1000),
    );
    let failed: Vec<_> = d
        .checks()
        .iter()
        .filter(|c| c.failed())
        .map(|c| c.step())
        .collect();
    use qstash_receiver::diagnose::Step;
    assert_eq!(failed, [Step::Window, Step::Subject, Step::BodyHash]);
    assert_eq!(d.window().unwrap().skew(), 1000 - 300 - 5);
    assert_eq!(d.matched_key(), Some(MatchedKey::Current));
    // After a MAC mismatch the later checks are read, unverified.
    let d = v.diagnose(
        &sign("sig_x", b"hi", NOW),
        b"ho",
        &Validation::new(Subject::Url(URL)).at(NOW),
    );
    let body = d.checks().last().unwrap();
    assert!(body.failed() && !body.is_verified());
    assert!(d.to_string().contains("body hash  would fail"), "{d}");
}

#[test]
fn hints_say_what_to_change() {
    let v = verifier();
    let json = br#"{"a":1,"b":[true]}"#;
    let token = sign("sig_current", json, NOW);
    let hint = |body: &[u8]| {
        v.diagnose(&token, body, &Validation::new(Subject::Url(URL)).at(NOW))
            .hints()
            .to_vec()
    };
    assert!(hint(b"{\"a\":1,\"b\":[true]}\n").contains(&Hint::BodyNewlineAdded));
    assert!(hint(b"{\"a\": 1, \"b\": [true]}").contains(&Hint::BodyReserializedCompact));
    assert!(hint(b"{\"a\":2}").contains(&Hint::BodyNotRaw));
    let pretty = serde_json::to_vec_pretty(&serde_json::json!({"a": 1})).unwrap();
    let token = sign("sig_current", &pretty, NOW);
    let d = v.diagnose(
        &token,
        br#"{"a":1}"#,
        &Validation::new(Subject::Url(URL)).at(NOW),
    );
    assert!(d.hints().contains(&Hint::BodyReserializedPretty), "{d}");
    let token = sign("sig_current", b"a\n", NOW);
    let d = v.diagnose(&token, b"a", &Validation::new(Subject::Url(URL)).at(NOW));
    assert!(d.hints().contains(&Hint::BodyNewlineRemoved), "{d}");

    // Another region's keys.
    let ring = KeyRing::new(SigningKeys::new("sig_current", "sig_next").unwrap())
        .with_region("US_EAST_1", SigningKeys::new("sig_us", "sig_us2").unwrap());
    let v2 = Verifier::new(ring);
    let d = v2.diagnose(
        &sign("sig_us", b"x", NOW),
        b"x",
        &Validation::new(Subject::Url(URL)).at(NOW),
    );
    assert!(
        d.hints().contains(&Hint::OtherRegion("US_EAST_1".into())),
        "{d}"
    );
    assert!(!d.to_string().contains("sig_us"), "{d}");

    // A token signed with a key read with its newline.
    let claims = serde_json::json!({
        "iss": "Upstash", "sub": URL, "exp": NOW + 300, "nbf": NOW, "body": body_hash(b"x"),
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"sig_current\n").unwrap(),
    )
    .unwrap();
    let d = v
        .diagnose(&token, b"x", &Validation::new(Subject::Url(URL)).at(NOW))
        .with_key_text(&token, "sig_current", "sig_next");
    assert_eq!(
        d.hints().first(),
        Some(&Hint::KeyWhitespace(MatchedKey::Current)),
        "{d}"
    );

    // The dev keys, a proxy rewrite, a pasted token.
    let dev = sign(qstash_receiver::keys::DEV_CURRENT_SIGNING_KEY, b"x", NOW);
    let d = v.diagnose(&dev, b"x", &Validation::new(Subject::Url(URL)).at(NOW));
    assert!(d.hints().contains(&Hint::DevKeys), "{d}");
    let token = sign("sig_current", b"x", NOW);
    let d = v.diagnose(
        &token,
        b"x",
        &Validation::new(Subject::Url("http://10.0.0.7:8080/api/hook?team=1")).at(NOW),
    );
    assert_eq!(d.hints(), [Hint::ProxyRewrite]);
    let d = v.diagnose(
        &format!("Bearer {token}"),
        b"x",
        &Validation::new(Subject::Url(URL)).at(NOW),
    );
    assert!(d.hints().contains(&Hint::TokenBearer), "{d}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random mutations of a valid token, body, URL and clock: the diagnosis and the verifier
    /// agree on every one.
    #[test]
    fn mutations_agree(
        key in prop::sample::select(vec!["sig_current", "sig_next", "sig_other"]),
        body in prop::collection::vec(any::<u8>(), 0..64),
        body_edit in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        token_edit in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(vec![b'.', b'A', b'_', b'=', b' ', b'x']))),
        cut in prop::option::of(any::<prop::sample::Index>()),
        skew in -400i64..400,
        path in prop::sample::select(vec!["/api/hook?team=1", "/api/hook", "/", ""]),
    ) {
        let v = verifier();
        let mut token = sign(key, &body, NOW).into_bytes();
        if let Some((at, byte)) = token_edit {
            let i = at.index(token.len());
            token[i] = byte;
        }
        if let Some(at) = cut {
            token.truncate(at.index(token.len()));
        }
        let token = String::from_utf8(token).unwrap();
        let mut body = body;
        if let (Some((at, byte)), false) = (body_edit, body.is_empty()) {
            let i = at.index(body.len());
            body[i] = byte;
        }
        agree(&v, None, &token, &body, Subject::PathAndQuery(path), NOW + skew);
    }
}
