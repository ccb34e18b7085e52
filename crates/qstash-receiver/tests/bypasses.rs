//! One named case per known way around a JWT verifier, and the positive cases that a strict
//! verifier must still accept.

#![allow(clippy::unwrap_used)] // test helpers: a failed set-up should fail the test

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use qstash_receiver::{
    ErrorKind, Signer, SigningKeys, Subject, Validation, Verifier, claims::MatchedKey,
    digest::body_hash,
};
use sha2::Sha256;

const CURRENT: &str = "sig_bypasscurrent";
const NEXT: &str = "sig_bypassnext";
const URL: &str = "https://app.example.com/api/hook?x=1";
const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"hello":"world"}"#;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn mac(key: &str, input: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    b64(&mac.finalize().into_bytes())
}

/// A token with the given header and claims JSON, MAC'd with `key` over exactly these bytes.
fn token(header: &str, claims: &str, key: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = mac(key, &input);
    format!("{input}.{sig}")
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn claims_with(body_claim: &str, nbf: i64, sub: &str) -> String {
    format!(
        r#"{{"aud":"","body":"{body_claim}","exp":{exp},"iat":{nbf},"iss":"Upstash","jti":"jwt_1","nbf":{nbf},"sub":"{sub}"}}"#,
        exp = NOW + 300,
    )
}

fn good_claims() -> String {
    claims_with(&body_hash(BODY), NOW, URL)
}

fn verifier() -> Verifier {
    Verifier::new(SigningKeys::new(CURRENT, NEXT).unwrap())
}

struct Case {
    name: &'static str,
    token: String,
    body: Vec<u8>,
    want: Result<MatchedKey, ErrorKind>,
}

fn refuse(name: &'static str, token: String, kind: ErrorKind) -> Case {
    Case {
        name,
        token,
        body: BODY.to_vec(),
        want: Err(kind),
    }
}

fn accept(name: &'static str, token: String, body: &[u8], key: MatchedKey) -> Case {
    Case {
        name,
        token,
        body: body.to_vec(),
        want: Ok(key),
    }
}

/// The claims JSON with one claim replaced by `replacement` (`None` removes it).
fn claims_replacing(claim: &str, replacement: Option<&str>) -> String {
    let value: serde_json::Value = serde_json::from_str(&good_claims()).unwrap();
    let mut map = value.as_object().unwrap().clone();
    match replacement {
        None => {
            map.remove(claim);
        }
        Some(json) => {
            map.insert(claim.to_owned(), serde_json::from_str(json).unwrap());
        }
    }
    serde_json::Value::Object(map).to_string()
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    use ErrorKind::*;
    let good = token(HEADER, &good_claims(), CURRENT);
    let (input, sig) = good.rsplit_once('.').unwrap();
    let (header_b64, payload_b64) = input.split_once('.').unwrap();
    let mut cases = vec![
        accept(
            "the reference token",
            good.clone(),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "signed with the next key",
            token(HEADER, &good_claims(), NEXT),
            BODY,
            MatchedKey::Next,
        ),
        // alg confusion
        refuse(
            "alg none, no signature",
            format!("{}.{payload_b64}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
            UnsupportedAlgorithm,
        ),
        refuse(
            "alg none, valid MAC",
            token(r#"{"alg":"none","typ":"JWT"}"#, &good_claims(), CURRENT),
            UnsupportedAlgorithm,
        ),
        refuse(
            "alg HS384",
            token(r#"{"alg":"HS384","typ":"JWT"}"#, &good_claims(), CURRENT),
            UnsupportedAlgorithm,
        ),
        refuse(
            "alg HS512",
            token(r#"{"alg":"HS512","typ":"JWT"}"#, &good_claims(), CURRENT),
            UnsupportedAlgorithm,
        ),
        refuse(
            "alg RS256",
            token(r#"{"alg":"RS256","typ":"JWT"}"#, &good_claims(), CURRENT),
            UnsupportedAlgorithm,
        ),
        refuse(
            "alg lowercase hs256",
            token(r#"{"alg":"hs256","typ":"JWT"}"#, &good_claims(), CURRENT),
            UnsupportedAlgorithm,
        ),
        refuse(
            "alg missing",
            token(r#"{"typ":"JWT"}"#, &good_claims(), CURRENT),
            MalformedToken,
        ),
        refuse(
            "alg not a string",
            token(r#"{"alg":256}"#, &good_claims(), CURRENT),
            MalformedToken,
        ),
        refuse(
            "alg given twice",
            token(r#"{"alg":"HS256","alg":"none"}"#, &good_claims(), CURRENT),
            MalformedToken,
        ),
        refuse(
            "crit header",
            token(
                r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
                &good_claims(),
                CURRENT,
            ),
            UnsupportedCriticalHeader,
        ),
        refuse(
            "empty crit header",
            token(r#"{"alg":"HS256","crit":[]}"#, &good_claims(), CURRENT),
            UnsupportedCriticalHeader,
        ),
        refuse(
            "header not JSON",
            token("HS256", &good_claims(), CURRENT),
            MalformedToken,
        ),
        refuse(
            "header a JSON array",
            token(r#"["HS256"]"#, &good_claims(), CURRENT),
            MalformedToken,
        ),
        refuse(
            "header a JSON array with crit",
            token(r#"["HS256",["exp"]]"#, &good_claims(), CURRENT),
            MalformedToken,
        ),
        // structure
        refuse("empty token", String::new(), MalformedToken),
        refuse(
            "empty signature segment",
            format!("{input}."),
            MalformedToken,
        ),
        refuse("two segments", input.to_owned(), MalformedToken),
        refuse("four segments", format!("{good}.{sig}"), MalformedToken),
        refuse(
            "signature not base64url",
            format!("{input}.{}", sig.replace(|_| true, "!")),
            MalformedToken,
        ),
        refuse(
            "signature with padding",
            format!("{input}.{sig}="),
            MalformedToken,
        ),
        refuse(
            "signature in standard base64",
            format!("{input}.{}", sig.replace('-', "+").replace('_', "/")),
            if sig.contains(['-', '_']) {
                MalformedToken
            } else {
                InvalidSignature
            },
        ),
        refuse(
            "signature truncated",
            format!("{input}.{}", &sig[..42]),
            MalformedToken,
        ),
        refuse(
            "signature of HS512 length",
            format!("{input}.{sig}{sig}"),
            MalformedToken,
        ),
        refuse(
            "header not base64url",
            format!("!{header_b64}.{payload_b64}.{sig}"),
            MalformedToken,
        ),
        refuse(
            "payload not base64url, MAC valid",
            token_raw_payload("@@@@", CURRENT),
            MalformedToken,
        ),
        refuse(
            "payload not JSON, MAC valid",
            token(HEADER, "not json", CURRENT),
            InvalidClaims,
        ),
        refuse(
            "payload a JSON array, MAC valid",
            token(HEADER, "[1,2]", CURRENT),
            InvalidClaims,
        ),
        refuse(
            "claims as a JSON array in field order, MAC valid",
            token(
                HEADER,
                &format!(
                    r#"["Upstash","{URL}",{},{NOW},{NOW},"jwt_1","{}"]"#,
                    NOW + 300,
                    body_hash(BODY)
                ),
                CURRENT,
            ),
            InvalidClaims,
        ),
        refuse(
            "token over the bound",
            format!("{good}{}", "A".repeat(16 * 1024)),
            TokenTooLong,
        ),
        // keys
        refuse(
            "signed with another key",
            token(HEADER, &good_claims(), "sig_other"),
            InvalidSignature,
        ),
        refuse(
            "signed with an empty key",
            token(HEADER, &good_claims(), ""),
            InvalidSignature,
        ),
        refuse(
            "claims swapped after signing",
            format!(
                "{header_b64}.{}.{sig}",
                b64(claims_with(&body_hash(BODY), NOW, "https://evil.example/").as_bytes())
            ),
            InvalidSignature,
        ),
        // claims
        refuse(
            "duplicate sub",
            token(
                HEADER,
                &good_claims().replacen('{', r#"{"sub":"https://evil.example/","#, 1),
                CURRENT,
            ),
            InvalidClaims,
        ),
        refuse(
            "duplicate exp",
            token(
                HEADER,
                &good_claims().replacen('{', r#"{"exp":99999999999,"#, 1),
                CURRENT,
            ),
            InvalidClaims,
        ),
        refuse(
            "wrong issuer",
            token(
                HEADER,
                &claims_replacing("iss", Some(r#""Upstash2""#)),
                CURRENT,
            ),
            InvalidIssuer,
        ),
        refuse(
            "issuer in other case",
            token(
                HEADER,
                &claims_replacing("iss", Some(r#""upstash""#)),
                CURRENT,
            ),
            InvalidIssuer,
        ),
        refuse(
            "expired by a second",
            token(
                HEADER,
                &claims_replacing("exp", Some(&NOW.to_string())),
                CURRENT,
            ),
            Expired,
        ),
        refuse(
            "not valid for a second",
            token(
                HEADER,
                &claims_replacing("nbf", Some(&(NOW + 1).to_string())),
                CURRENT,
            ),
            NotYetValid,
        ),
        refuse(
            "subject of another endpoint",
            token(
                HEADER,
                &claims_with(&body_hash(BODY), NOW, "https://app.example.com/api/other"),
                CURRENT,
            ),
            SubjectMismatch,
        ),
        refuse(
            "body hash of another body",
            token(
                HEADER,
                &claims_with(&body_hash(b"other"), NOW, URL),
                CURRENT,
            ),
            BodyHashMismatch,
        ),
        refuse(
            "body hash empty",
            token(HEADER, &claims_with("", NOW, URL), CURRENT),
            BodyHashMismatch,
        ),
    ];
    let (body, standard) = body_with_standard_hash();
    cases.push(Case {
        name: "body hash in standard base64",
        token: token(HEADER, &claims_with(&standard, NOW, URL), CURRENT),
        body,
        want: Err(BodyHashMismatch),
    });
    for claim in ["iss", "sub", "exp", "nbf", "body"] {
        let name: &'static str = Box::leak(format!("missing {claim}").into_boxed_str());
        cases.push(refuse(
            name,
            token(HEADER, &claims_replacing(claim, None), CURRENT),
            InvalidClaims,
        ));
    }
    let wrong_types = [
        ("exp", r#""1700000300""#),
        ("exp", "1700000300.5"),
        ("exp", "null"),
        ("nbf", r#""1700000000""#),
        ("nbf", "true"),
        ("iss", "1"),
        ("iss", "null"),
        ("sub", r#"["https://app.example.com/api/hook?x=1"]"#),
        ("body", "{}"),
        ("iat", r#""1700000000""#),
        ("jti", "7"),
    ];
    for (claim, json) in wrong_types {
        let name: &'static str = Box::leak(format!("{claim} as {json}").into_boxed_str());
        cases.push(refuse(
            name,
            token(HEADER, &claims_replacing(claim, Some(json)), CURRENT),
            InvalidClaims,
        ));
    }
    // Positive cases a strict verifier must not break.
    let unpadded = body_hash(BODY).trim_end_matches('=').to_owned();
    cases.extend([
        accept(
            "unpadded body claim",
            token(HEADER, &claims_with(&unpadded, NOW, URL), CURRENT),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "empty body",
            token(HEADER, &claims_with(&body_hash(b""), NOW, URL), CURRENT),
            b"",
            MatchedKey::Current,
        ),
        accept(
            "binary body",
            token(
                HEADER,
                &claims_with(&body_hash(&[0, 0xff, 0xfe, 0x80]), NOW, URL),
                CURRENT,
            ),
            &[0, 0xff, 0xfe, 0x80],
            MatchedKey::Current,
        ),
        accept(
            "negative nbf (Go zero time)",
            token(
                HEADER,
                &claims_with(&body_hash(BODY), -62_135_596_800, URL),
                CURRENT,
            ),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "extra claims",
            token(
                HEADER,
                &claims_replacing("workflow", Some(r#"{"a":[1]}"#)),
                CURRENT,
            ),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "no aud, iat or jti",
            token(HEADER, &strip(&["aud", "iat", "jti"]), CURRENT),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "aud of another type",
            token(HEADER, &claims_replacing("aud", Some(r#"["x"]"#)), CURRENT),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "extra header fields",
            token(
                r#"{"alg":"HS256","typ":"JWT","kid":"k1","x5u":"ignored"}"#,
                &good_claims(),
                CURRENT,
            ),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "header without typ",
            token(r#"{"alg":"HS256"}"#, &good_claims(), CURRENT),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "escaped characters in sub",
            token(
                HEADER,
                &claims_replacing("sub", Some(r#""https:\/\/app.example.com\/api\/hook?x=1""#)),
                CURRENT,
            ),
            BODY,
            MatchedKey::Current,
        ),
        accept(
            "made by the crate's Signer",
            Signer::new(CURRENT).unwrap().sign_at(URL, BODY, NOW),
            BODY,
            MatchedKey::Current,
        ),
    ]);
    cases
}

fn strip(claims: &[&str]) -> String {
    let value: serde_json::Value = serde_json::from_str(&good_claims()).unwrap();
    let mut map = value.as_object().unwrap().clone();
    for claim in claims {
        map.remove(*claim);
    }
    serde_json::Value::Object(map).to_string()
}

fn token_raw_payload(payload_segment: &str, key: &str) -> String {
    let input = format!("{}.{payload_segment}", b64(HEADER.as_bytes()));
    let sig = mac(key, &input);
    format!("{input}.{sig}")
}

/// A body whose hash contains `-` or `_`, and that hash written with the standard alphabet
/// (`+`, `/`), which must not match.
fn body_with_standard_hash() -> (Vec<u8>, String) {
    (0..)
        .map(|i| format!("body {i}").into_bytes())
        .map(|body| (body_hash(&body), body))
        .find(|(hash, _)| hash.contains(['-', '_']))
        .map(|(hash, body)| (body, hash.replace('-', "+").replace('_', "/")))
        .unwrap()
}

#[test]
fn bypass_table() {
    let verifier = verifier();
    let mut failures = Vec::new();
    for case in cases() {
        let got = verifier
            .verify(
                &case.token,
                &case.body,
                &Validation::new(Subject::Url(URL)).at(NOW),
            )
            .map(|claims| claims.matched_key())
            .map_err(|e| e.kind());
        if got != case.want {
            failures.push(format!("{}: want {:?}, got {got:?}", case.name, case.want));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_never_show_token_or_keys() {
    let verifier = verifier();
    for case in cases() {
        if let Err(err) = verifier.verify(
            &case.token,
            &case.body,
            &Validation::new(Subject::Url(URL)).at(NOW),
        ) {
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(
                    !text.contains(CURRENT) && !text.contains(NEXT),
                    "{}: {text}",
                    case.name
                );
                let signature = case.token.rsplit('.').next().unwrap_or_default();
                assert!(
                    signature.len() < 8 || !text.contains(signature),
                    "{}: {text}",
                    case.name
                );
                assert!(!text.contains("hello"), "{}: {text}", case.name);
            }
        }
    }
}

#[test]
fn tolerance_widens_the_window_on_both_sides() {
    let tol = std::time::Duration::from_secs(5);
    let verifier = verifier().clock_tolerance(tol);
    let token = Signer::new(CURRENT).unwrap().sign_at(URL, BODY, NOW);
    let at = |now| {
        verifier
            .verify(&token, BODY, &Validation::new(Subject::Url(URL)).at(now))
            .map(|_| ())
            .map_err(|e| e.kind())
    };
    assert_eq!(at(NOW - 5), Ok(()));
    assert_eq!(at(NOW - 6), Err(ErrorKind::NotYetValid));
    assert_eq!(at(NOW + 304), Ok(()));
    assert_eq!(at(NOW + 305), Err(ErrorKind::Expired));
    // Saturating: a huge tolerance does not overflow.
    let lax = super_lax();
    assert!(
        lax.verify(
            &token,
            BODY,
            &Validation::new(Subject::Url(URL)).at(i64::MAX - 1)
        )
        .is_ok()
    );
}

fn super_lax() -> Verifier {
    verifier().clock_tolerance(std::time::Duration::from_secs(u64::MAX))
}

#[test]
fn token_bound_is_configurable() {
    let token = Signer::new(CURRENT).unwrap().sign_at(URL, BODY, NOW);
    let tight = verifier().max_token_bytes(token.len() - 1);
    let err = tight
        .verify(&token, BODY, &Validation::new(Subject::Url(URL)).at(NOW))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenTooLong);
    let exact = verifier().max_token_bytes(token.len());
    assert!(
        exact
            .verify(&token, BODY, &Validation::new(Subject::Url(URL)).at(NOW))
            .is_ok()
    );
}

#[test]
fn headers_convenience_refuses_zero_or_two_signatures() {
    use http::{HeaderMap, HeaderValue};
    let verifier = verifier();
    let token = Signer::new(CURRENT).unwrap().sign_at(URL, BODY, NOW);
    let mut headers = HeaderMap::new();
    let check = |h: &HeaderMap| {
        verifier
            .verify_headers(h, BODY, &Validation::new(Subject::Url(URL)).at(NOW))
            .map(|_| ())
            .map_err(|e| e.kind())
    };
    assert_eq!(check(&headers), Err(ErrorKind::MissingSignature));
    headers.insert("upstash-signature", HeaderValue::from_str(&token).unwrap());
    assert_eq!(check(&headers), Ok(()));
    headers.append("upstash-signature", HeaderValue::from_str(&token).unwrap());
    assert_eq!(check(&headers), Err(ErrorKind::MultipleSignatures));
    let mut bad = HeaderMap::new();
    bad.insert(
        "upstash-signature",
        HeaderValue::from_bytes(b"\xfftoken").unwrap(),
    );
    assert_eq!(check(&bad), Err(ErrorKind::MalformedToken));
}

#[test]
fn region_header_selects_region_keys() {
    use http::{HeaderMap, HeaderValue};
    use qstash_receiver::KeyRing;
    let eu = SigningKeys::new("sig_eu_current", "sig_eu_next").unwrap();
    let ring =
        KeyRing::new(SigningKeys::new(CURRENT, NEXT).unwrap()).with_region("EU_CENTRAL_1", eu);
    let verifier = Verifier::new(ring);
    let headers = |key: &str, region: Option<&str>| {
        let mut h = HeaderMap::new();
        let token = Signer::new(key).unwrap().sign_at(URL, BODY, NOW);
        h.insert("upstash-signature", HeaderValue::from_str(&token).unwrap());
        if let Some(region) = region {
            h.insert("upstash-region", HeaderValue::from_str(region).unwrap());
        }
        h
    };
    let check = |h: &HeaderMap| {
        verifier
            .verify_headers(h, BODY, &Validation::new(Subject::Url(URL)).at(NOW))
            .map(|c| c.matched_key())
            .map_err(|e| e.kind())
    };
    assert_eq!(
        check(&headers("sig_eu_current", Some("EU-CENTRAL-1"))),
        Ok(MatchedKey::Current)
    );
    assert_eq!(
        check(&headers("sig_eu_next", Some("eu-central-1"))),
        Ok(MatchedKey::Next)
    );
    // The EU keys are not valid for other regions, nor the default keys for the EU region.
    assert_eq!(
        check(&headers("sig_eu_current", None)),
        Err(ErrorKind::InvalidSignature)
    );
    assert_eq!(
        check(&headers(CURRENT, Some("EU-CENTRAL-1"))),
        Err(ErrorKind::InvalidSignature)
    );
    // A region without keys of its own falls back to the default keys.
    assert_eq!(
        check(&headers(CURRENT, Some("US-EAST-1"))),
        Ok(MatchedKey::Current)
    );

    let eu_only = Verifier::new(KeyRing::regions_only().with_region(
        "EU-CENTRAL-1",
        SigningKeys::new("sig_eu_current", "sig_eu_next").unwrap(),
    ));
    let err = eu_only
        .verify_headers(
            &headers(CURRENT, Some("US-EAST-1")),
            BODY,
            &Validation::new(Subject::Url(URL)).at(NOW),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSigningKeys);
}

/// A delivery to a long URL (8 KiB of path and query) is accepted: QStash signs the whole URL
/// into `sub`, so its token is about 11 KiB, past the old 4 KiB bound.
#[test]
fn a_token_for_an_8_kib_url_verifies() {
    let path = format!("/hook?q={}", "x".repeat(8 * 1024));
    let url = format!("https://app.example.com{path}");
    let token = qstash_receiver::Signer::new(CURRENT)
        .unwrap()
        .sign_at(&url, BODY, NOW);
    assert!(token.len() > 8 * 1024, "{}", token.len());
    let verifier = qstash_receiver::Verifier::new(
        qstash_receiver::SigningKeys::new(CURRENT, "sig_next_key_for_the_test").unwrap(),
    );
    let claims = verifier
        .verify(
            &token,
            BODY,
            &Validation::new(qstash_receiver::Subject::PathAndQuery(&path)).at(NOW),
        )
        .unwrap();
    assert_eq!(claims.subject(), url);
}
