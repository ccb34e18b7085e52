//! bench/compare's Rust side for our core:
//!
//! - `cases --real FILE --out FILE [--now T]`: the shared case file: QStash's real tokens (from
//!   the vector file) and the core crate's bypass table (`crates/qstash-receiver/tests/
//!   bypasses.rs`, ported here case by case), each with the verdict the *table* expects;
//! - `bench-token --out FILE`: a fresh QStash-shaped token over a 1 KiB body, signed now;
//! - `check --cases FILE --out FILE`: our core's verdict on every case, clock injected;
//! - `time --bench FILE --out FILE [--millis N]`: median time of one verification.
//!
//! The expected verdicts come from the table and the vectors, never from running the core.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use qstash_receiver::{Signer, SigningKeys, Subject, Validation, Verifier, digest::body_hash};
use serde::{Deserialize, Serialize};
use sha2::{Sha256, Sha384, Sha512};

// The bypass table's constants, as in crates/qstash-receiver/tests/bypasses.rs.
const CURRENT: &str = "sig_bypasscurrent";
const NEXT: &str = "sig_bypassnext";
const URL: &str = "https://app.example.com/api/hook?x=1";
const TABLE_NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"hello":"world"}"#;
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// The timing run's keys: as long as real ones (`sig_` and 28 characters), so that no
/// implementation spends time on a short-key warning.
const BENCH_CURRENT: &str = "sig_BenchCurrentQH6V9b96E63sS3b9";
const BENCH_NEXT: &str = "sig_BenchNext5KX2tPTwA8LWwQDEfPD";

/// One case of the shared file.
#[derive(Serialize, Deserialize, Clone)]
struct Case {
    name: String,
    /// `real` (a token QStash signed) or `bypass` (the core crate's table).
    group: String,
    token: String,
    /// The raw body, standard base64.
    body_b64: String,
    /// Whether the body is UTF-8 (the TypeScript and Python receivers take a string).
    body_is_utf8: bool,
    /// Compare `sub` with this URL exactly; `null`: no subject check.
    url: Option<String>,
    current_key: String,
    next_key: String,
    /// Unix seconds to verify at.
    now: i64,
    tolerance_secs: u64,
    /// `ok` or `reject`.
    expect: String,
    /// Why it must be refused (the core's error kind names), or `ok`.
    reason: String,
    /// For real tokens: what the official TypeScript and Python receivers answered when the
    /// vector file was made (`ok`/`reject`), to cross-check this run's measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    official_ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    official_py: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct BenchToken {
    token: String,
    /// The same claims without `"aud":""`, for an implementation that refuses every token
    /// with an `aud` claim (all QStash tokens have one).
    token_no_aud: String,
    body_b64: String,
    url: String,
    current_key: String,
    next_key: String,
    signed_at: i64,
}

#[derive(Serialize)]
struct Verdict {
    name: String,
    verdict: String,
    detail: String,
}

#[derive(Serialize)]
struct CheckOutput {
    implementation: String,
    clock: String,
    results: Vec<Verdict>,
}

#[derive(Serialize)]
struct Timing {
    implementation: String,
    median_ns: f64,
    p10_ns: f64,
    p90_ns: f64,
    batches: usize,
    batch_size: usize,
    iterations: usize,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn mac_with<M: Mac + KeyInit>(key: &str, input: &str) -> String {
    let mut mac = <M as KeyInit>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(input.as_bytes());
    b64(&mac.finalize().into_bytes())
}

fn mac(key: &str, input: &str) -> String {
    mac_with::<Hmac<Sha256>>(key, input)
}

/// A token with the given header and claims JSON, HS256-MAC'd with `key` over exactly these
/// bytes.
fn token(header: &str, claims: &str, key: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = mac(key, &input);
    format!("{input}.{sig}")
}

struct Table {
    now: i64,
}

impl Table {
    fn claims_with(&self, body_claim: &str, nbf: i64, sub: &str) -> String {
        format!(
            r#"{{"aud":"","body":"{body_claim}","exp":{exp},"iat":{nbf},"iss":"Upstash","jti":"jwt_1","nbf":{nbf},"sub":"{sub}"}}"#,
            exp = self.now + 300,
        )
    }

    fn good_claims(&self) -> String {
        self.claims_with(&body_hash(BODY), self.now, URL)
    }

    fn claims_replacing(&self, claim: &str, replacement: Option<&str>) -> String {
        let value: serde_json::Value = serde_json::from_str(&self.good_claims()).expect("json");
        let mut map = value.as_object().expect("object").clone();
        match replacement {
            None => {
                map.remove(claim);
            }
            Some(json) => {
                map.insert(claim.to_owned(), serde_json::from_str(json).expect("json"));
            }
        }
        serde_json::Value::Object(map).to_string()
    }

    fn strip(&self, claims: &[&str]) -> String {
        let value: serde_json::Value = serde_json::from_str(&self.good_claims()).expect("json");
        let mut map = value.as_object().expect("object").clone();
        for claim in claims {
            map.remove(*claim);
        }
        serde_json::Value::Object(map).to_string()
    }

    fn case(&self, name: &str, token: String, body: &[u8], expect: &str) -> Case {
        Case {
            name: name.to_owned(),
            group: "bypass".to_owned(),
            token,
            body_b64: STANDARD.encode(body),
            body_is_utf8: std::str::from_utf8(body).is_ok(),
            url: Some(URL.to_owned()),
            current_key: CURRENT.to_owned(),
            next_key: NEXT.to_owned(),
            now: self.now,
            tolerance_secs: 0,
            expect: if expect == "ok" { "ok" } else { "reject" }.to_owned(),
            reason: expect.to_owned(),
            official_ts: None,
            official_py: None,
        }
    }

    /// The table of crates/qstash-receiver/tests/bypasses.rs, in its order, plus a few
    /// algorithm-confusion cases with a *real* MAC of the named algorithm (marked "extra").
    #[allow(clippy::too_many_lines)]
    fn cases(&self) -> Vec<Case> {
        let good = token(HEADER, &self.good_claims(), CURRENT);
        let (input, sig) = good.rsplit_once('.').expect("three segments");
        let (header_b64, payload_b64) = input.split_once('.').expect("three segments");
        let good_claims = self.good_claims();
        let t = |header: &str, claims: &str, key: &str| token(header, claims, key);
        let mut cases = vec![
            self.case("the reference token", good.clone(), BODY, "ok"),
            self.case(
                "signed with the next key",
                t(HEADER, &good_claims, NEXT),
                BODY,
                "ok",
            ),
            self.case(
                "alg none, no signature",
                format!("{}.{payload_b64}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
                BODY,
                "unsupported_algorithm",
            ),
            self.case(
                "alg none, valid MAC",
                t(r#"{"alg":"none","typ":"JWT"}"#, &good_claims, CURRENT),
                BODY,
                "unsupported_algorithm",
            ),
            self.case(
                "alg HS384",
                t(r#"{"alg":"HS384","typ":"JWT"}"#, &good_claims, CURRENT),
                BODY,
                "unsupported_algorithm",
            ),
            self.case(
                "alg HS512",
                t(r#"{"alg":"HS512","typ":"JWT"}"#, &good_claims, CURRENT),
                BODY,
                "unsupported_algorithm",
            ),
            self.case(
                "alg RS256",
                t(r#"{"alg":"RS256","typ":"JWT"}"#, &good_claims, CURRENT),
                BODY,
                "unsupported_algorithm",
            ),
            self.case(
                "alg lowercase hs256",
                t(r#"{"alg":"hs256","typ":"JWT"}"#, &good_claims, CURRENT),
                BODY,
                "unsupported_algorithm",
            ),
            self.case(
                "alg missing",
                t(r#"{"typ":"JWT"}"#, &good_claims, CURRENT),
                BODY,
                "malformed_token",
            ),
            self.case(
                "alg not a string",
                t(r#"{"alg":256}"#, &good_claims, CURRENT),
                BODY,
                "malformed_token",
            ),
            self.case(
                "alg given twice",
                t(r#"{"alg":"HS256","alg":"none"}"#, &good_claims, CURRENT),
                BODY,
                "malformed_token",
            ),
            self.case(
                "crit header",
                t(
                    r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
                    &good_claims,
                    CURRENT,
                ),
                BODY,
                "unsupported_critical_header",
            ),
            self.case(
                "empty crit header",
                t(r#"{"alg":"HS256","crit":[]}"#, &good_claims, CURRENT),
                BODY,
                "unsupported_critical_header",
            ),
            self.case(
                "header not JSON",
                t("HS256", &good_claims, CURRENT),
                BODY,
                "malformed_token",
            ),
            self.case(
                "header a JSON array",
                t(r#"["HS256"]"#, &good_claims, CURRENT),
                BODY,
                "malformed_token",
            ),
            self.case(
                "header a JSON array with crit",
                t(r#"["HS256",["exp"]]"#, &good_claims, CURRENT),
                BODY,
                "malformed_token",
            ),
            self.case("empty token", String::new(), BODY, "malformed_token"),
            self.case(
                "empty signature segment",
                format!("{input}."),
                BODY,
                "malformed_token",
            ),
            self.case("two segments", input.to_owned(), BODY, "malformed_token"),
            self.case(
                "four segments",
                format!("{good}.{sig}"),
                BODY,
                "malformed_token",
            ),
            self.case(
                "signature not base64url",
                format!("{input}.{}", sig.replace(|_| true, "!")),
                BODY,
                "malformed_token",
            ),
            self.case(
                "signature with padding",
                format!("{input}.{sig}="),
                BODY,
                "malformed_token",
            ),
            self.case(
                "signature in standard base64",
                format!("{input}.{}", sig.replace('-', "+").replace('_', "/")),
                BODY,
                if sig.contains(['-', '_']) {
                    "malformed_token"
                } else {
                    "invalid_signature"
                },
            ),
            self.case(
                "signature truncated",
                format!("{input}.{}", &sig[..42]),
                BODY,
                "malformed_token",
            ),
            self.case(
                "signature of HS512 length",
                format!("{input}.{sig}{sig}"),
                BODY,
                "malformed_token",
            ),
            self.case(
                "header not base64url",
                format!("!{header_b64}.{payload_b64}.{sig}"),
                BODY,
                "malformed_token",
            ),
            self.case(
                "payload not base64url, MAC valid",
                token_raw_payload("@@@@", CURRENT),
                BODY,
                "malformed_token",
            ),
            self.case(
                "payload not JSON, MAC valid",
                t(HEADER, "not json", CURRENT),
                BODY,
                "invalid_claims",
            ),
            self.case(
                "payload a JSON array, MAC valid",
                t(HEADER, "[1,2]", CURRENT),
                BODY,
                "invalid_claims",
            ),
            self.case(
                "claims as a JSON array in field order, MAC valid",
                t(
                    HEADER,
                    &format!(
                        r#"["Upstash","{URL}",{},{now},{now},"jwt_1","{}"]"#,
                        self.now + 300,
                        body_hash(BODY),
                        now = self.now,
                    ),
                    CURRENT,
                ),
                BODY,
                "invalid_claims",
            ),
            self.case(
                "token over the bound",
                format!("{good}{}", "A".repeat(4096)),
                BODY,
                "token_too_long",
            ),
            self.case(
                "signed with another key",
                t(HEADER, &good_claims, "sig_other"),
                BODY,
                "invalid_signature",
            ),
            self.case(
                "signed with an empty key",
                t(HEADER, &good_claims, ""),
                BODY,
                "invalid_signature",
            ),
            self.case(
                "claims swapped after signing",
                format!(
                    "{header_b64}.{}.{sig}",
                    b64(self
                        .claims_with(&body_hash(BODY), self.now, "https://evil.example/")
                        .as_bytes())
                ),
                BODY,
                "invalid_signature",
            ),
            self.case(
                "duplicate sub",
                t(
                    HEADER,
                    &good_claims.replacen('{', r#"{"sub":"https://evil.example/","#, 1),
                    CURRENT,
                ),
                BODY,
                "invalid_claims",
            ),
            self.case(
                "duplicate exp",
                t(
                    HEADER,
                    &good_claims.replacen('{', r#"{"exp":99999999999,"#, 1),
                    CURRENT,
                ),
                BODY,
                "invalid_claims",
            ),
            self.case(
                "wrong issuer",
                t(
                    HEADER,
                    &self.claims_replacing("iss", Some(r#""Upstash2""#)),
                    CURRENT,
                ),
                BODY,
                "invalid_issuer",
            ),
            self.case(
                "issuer in other case",
                t(
                    HEADER,
                    &self.claims_replacing("iss", Some(r#""upstash""#)),
                    CURRENT,
                ),
                BODY,
                "invalid_issuer",
            ),
            self.case(
                "expired by a second",
                t(
                    HEADER,
                    &self.claims_replacing("exp", Some(&self.now.to_string())),
                    CURRENT,
                ),
                BODY,
                "expired",
            ),
            self.case(
                "not valid for a second",
                t(
                    HEADER,
                    &self.claims_replacing("nbf", Some(&(self.now + 1).to_string())),
                    CURRENT,
                ),
                BODY,
                "not_yet_valid",
            ),
            self.case(
                "subject of another endpoint",
                t(
                    HEADER,
                    &self.claims_with(
                        &body_hash(BODY),
                        self.now,
                        "https://app.example.com/api/other",
                    ),
                    CURRENT,
                ),
                BODY,
                "subject_mismatch",
            ),
            self.case(
                "body hash of another body",
                t(
                    HEADER,
                    &self.claims_with(&body_hash(b"other"), self.now, URL),
                    CURRENT,
                ),
                BODY,
                "body_hash_mismatch",
            ),
            self.case(
                "body hash empty",
                t(HEADER, &self.claims_with("", self.now, URL), CURRENT),
                BODY,
                "body_hash_mismatch",
            ),
        ];
        let (body, standard) = body_with_standard_hash();
        cases.push(self.case(
            "body hash in standard base64",
            t(HEADER, &self.claims_with(&standard, self.now, URL), CURRENT),
            &body,
            "body_hash_mismatch",
        ));
        for claim in ["iss", "sub", "exp", "nbf", "body"] {
            cases.push(self.case(
                &format!("missing {claim}"),
                t(HEADER, &self.claims_replacing(claim, None), CURRENT),
                BODY,
                "invalid_claims",
            ));
        }
        let exp = (self.now + 300).to_string();
        let exp_string = format!(r#""{exp}""#);
        let exp_fraction = format!("{exp}.5");
        let nbf_string = format!(r#""{}""#, self.now);
        let iat_string = nbf_string.clone();
        let sub_array = format!(r#"["{URL}"]"#);
        let wrong_types: [(&str, &str); 11] = [
            ("exp", &exp_string),
            ("exp", &exp_fraction),
            ("exp", "null"),
            ("nbf", &nbf_string),
            ("nbf", "true"),
            ("iss", "1"),
            ("iss", "null"),
            ("sub", &sub_array),
            ("body", "{}"),
            ("iat", &iat_string),
            ("jti", "7"),
        ];
        for (claim, json) in wrong_types {
            // Named as in the core's table (which uses its fixed instant in the names).
            let shown = json
                .replace(&exp, "1700000300")
                .replace(&self.now.to_string(), "1700000000");
            cases.push(self.case(
                &format!("{claim} as {shown}"),
                t(HEADER, &self.claims_replacing(claim, Some(json)), CURRENT),
                BODY,
                "invalid_claims",
            ));
        }
        let unpadded = body_hash(BODY).trim_end_matches('=').to_owned();
        let binary: &[u8] = &[0, 0xff, 0xfe, 0x80];
        cases.extend([
            self.case(
                "unpadded body claim",
                t(HEADER, &self.claims_with(&unpadded, self.now, URL), CURRENT),
                BODY,
                "ok",
            ),
            self.case(
                "empty body",
                t(
                    HEADER,
                    &self.claims_with(&body_hash(b""), self.now, URL),
                    CURRENT,
                ),
                b"",
                "ok",
            ),
            self.case(
                "binary body",
                t(
                    HEADER,
                    &self.claims_with(&body_hash(binary), self.now, URL),
                    CURRENT,
                ),
                binary,
                "ok",
            ),
            self.case(
                "negative nbf (Go zero time)",
                t(
                    HEADER,
                    &self.claims_with(&body_hash(BODY), -62_135_596_800, URL),
                    CURRENT,
                ),
                BODY,
                "ok",
            ),
            self.case(
                "extra claims",
                t(
                    HEADER,
                    &self.claims_replacing("workflow", Some(r#"{"a":[1]}"#)),
                    CURRENT,
                ),
                BODY,
                "ok",
            ),
            self.case(
                "no aud, iat or jti",
                t(HEADER, &self.strip(&["aud", "iat", "jti"]), CURRENT),
                BODY,
                "ok",
            ),
            self.case(
                "aud of another type",
                t(
                    HEADER,
                    &self.claims_replacing("aud", Some(r#"["x"]"#)),
                    CURRENT,
                ),
                BODY,
                "ok",
            ),
            self.case(
                "extra header fields",
                t(
                    r#"{"alg":"HS256","typ":"JWT","kid":"k1","x5u":"ignored"}"#,
                    &good_claims,
                    CURRENT,
                ),
                BODY,
                "ok",
            ),
            self.case(
                "header without typ",
                t(r#"{"alg":"HS256"}"#, &good_claims, CURRENT),
                BODY,
                "ok",
            ),
            self.case(
                "escaped characters in sub",
                t(
                    HEADER,
                    &self.claims_replacing(
                        "sub",
                        Some(r#""https:\/\/app.example.com\/api\/hook?x=1""#),
                    ),
                    CURRENT,
                ),
                BODY,
                "ok",
            ),
            self.case(
                "made by the crate's Signer",
                Signer::new(CURRENT)
                    .expect("key")
                    .sign_with_id(URL, BODY, self.now, "jwt_signer"),
                BODY,
                "ok",
            ),
        ]);
        // Extra (not in the core's table): the named algorithm with a real MAC of that
        // algorithm, keyed with the signing key. Only HS256 is QStash's algorithm.
        for (alg, sig) in [
            (
                "HS384",
                mac_with::<Hmac<Sha384>> as fn(&str, &str) -> String,
            ),
            ("HS512", mac_with::<Hmac<Sha512>>),
        ] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            let input = format!("{}.{}", b64(header.as_bytes()), b64(good_claims.as_bytes()));
            cases.push(self.case(
                &format!("extra: alg {alg} with a real {alg} MAC"),
                format!("{input}.{}", sig(CURRENT, &input)),
                BODY,
                "unsupported_algorithm",
            ));
        }
        // Extra: QStash's claims without `aud` (so that a verifier that refuses any `aud` can
        // show what it does with the rest), valid, at `exp`, and a second before `nbf`.
        let no_aud = |exp: i64, nbf: i64| {
            format!(
                r#"{{"body":"{}","exp":{exp},"iat":{nbf},"iss":"Upstash","jti":"jwt_1","nbf":{nbf},"sub":"{URL}"}}"#,
                body_hash(BODY)
            )
        };
        cases.extend([
            self.case(
                "extra: no aud claim",
                t(HEADER, &no_aud(self.now + 300, self.now), CURRENT),
                BODY,
                "ok",
            ),
            self.case(
                "extra: no aud claim, at exp",
                t(HEADER, &no_aud(self.now, self.now - 300), CURRENT),
                BODY,
                "expired",
            ),
            self.case(
                "extra: no aud claim, a second before nbf",
                t(HEADER, &no_aud(self.now + 301, self.now + 1), CURRENT),
                BODY,
                "not_yet_valid",
            ),
        ]);
        cases
    }
}

fn token_raw_payload(payload_segment: &str, key: &str) -> String {
    let input = format!("{}.{payload_segment}", b64(HEADER.as_bytes()));
    let sig = mac(key, &input);
    format!("{input}.{sig}")
}

fn body_with_standard_hash() -> (Vec<u8>, String) {
    (0..)
        .map(|i| format!("body {i}").into_bytes())
        .map(|body| (body_hash(&body), body))
        .find(|(hash, _)| hash.contains(['-', '_']))
        .map(|(hash, body)| (body, hash.replace('-', "+").replace('_', "/")))
        .expect("some body hash has - or _")
}

#[derive(Deserialize)]
struct RealToken {
    name: String,
    token: String,
    current_key: String,
    next_key: String,
    body: String,
    url: Option<String>,
    now: i64,
    tolerance_secs: u64,
    expect: String,
    official_ts: Option<String>,
    official_py: Option<String>,
}

fn real_cases(path: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let vectors: Vec<RealToken> = serde_json::from_str(&text).expect("vector file parses");
    vectors
        .into_iter()
        .map(|v| Case {
            name: v.name,
            group: "real".to_owned(),
            token: v.token,
            body_b64: STANDARD.encode(v.body.as_bytes()),
            body_is_utf8: true,
            url: v.url,
            current_key: v.current_key,
            next_key: v.next_key,
            now: v.now,
            tolerance_secs: v.tolerance_secs,
            expect: if v.expect == "ok" { "ok" } else { "reject" }.to_owned(),
            reason: v.expect,
            official_ts: v.official_ts,
            official_py: v.official_py,
        })
        .collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The timing body: 1024 bytes of JSON.
fn bench_body() -> Vec<u8> {
    let prefix = br#"{"event":"order.created","data":""#;
    let suffix = br#""}"#;
    let mut body = prefix.to_vec();
    body.extend(std::iter::repeat_n(
        b'x',
        1024 - prefix.len() - suffix.len(),
    ));
    body.extend_from_slice(suffix);
    assert_eq!(body.len(), 1024);
    body
}

fn check(cases: &[Case]) -> Vec<Verdict> {
    cases
        .iter()
        .map(|case| {
            let body = STANDARD.decode(&case.body_b64).expect("body_b64");
            let verifier = Verifier::new(
                SigningKeys::new(&case.current_key, &case.next_key).expect("case keys are valid"),
            )
            .clock_tolerance(Duration::from_secs(case.tolerance_secs));
            let subject = case
                .url
                .as_deref()
                .map_or(Subject::DangerouslySkipCheck, Subject::Url);
            let (verdict, detail) = match verifier.verify(&case.token, &body, &Validation::new(subject).at(case.now))
            {
                Ok(_) => ("ok", String::new()),
                Err(e) => ("reject", e.kind().as_str().to_owned()),
            };
            Verdict {
                name: case.name.clone(),
                verdict: verdict.to_owned(),
                detail,
            }
        })
        .collect()
}

/// Calls `f` in batches for about `millis` ms and returns per-call statistics over batches.
fn time_it(implementation: &str, millis: u64, mut f: impl FnMut()) -> Timing {
    // Warm up, then size a batch to about 2 ms.
    let start = Instant::now();
    let mut warm = 0usize;
    while start.elapsed() < Duration::from_millis(300) {
        f();
        warm += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / warm as f64;
    let batch_size = ((0.002 / per_call) as usize).max(1);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(millis) || samples.len() < 51 {
        let t = Instant::now();
        for _ in 0..batch_size {
            f();
        }
        samples.push(t.elapsed().as_nanos() as f64 / batch_size as f64);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Timing {
        implementation: implementation.to_owned(),
        median_ns: at(0.5),
        p10_ns: at(0.1),
        p90_ns: at(0.9),
        batches: samples.len(),
        batch_size,
        iterations: samples.len() * batch_size,
    }
}

fn write_json(path: &str, value: &impl Serialize) {
    let text = serde_json::to_string_pretty(value).expect("serializes");
    std::fs::write(path, text + "\n").unwrap_or_else(|e| panic!("{path}: {e}"));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opts: BTreeMap<&str, &str> = args[2.min(args.len())..]
        .chunks(2)
        .filter_map(|pair| match pair {
            [k, v] => Some((k.trim_start_matches("--"), v.as_str())),
            _ => None,
        })
        .collect();
    let opt = |name: &str| -> &str {
        opts.get(name)
            .copied()
            .unwrap_or_else(|| panic!("missing --{name}"))
    };
    match args.get(1).map(String::as_str) {
        Some("cases") => {
            let now = opts
                .get("now")
                .map_or(TABLE_NOW, |t| t.parse().expect("--now is unix seconds"));
            let mut cases = Vec::new();
            if let Some(real) = opts.get("real") {
                cases.extend(real_cases(real));
            }
            cases.extend(Table { now }.cases());
            write_json(opt("out"), &cases);
            eprintln!("{} cases written to {}", cases.len(), opt("out"));
        }
        Some("bench-token") => {
            let body = bench_body();
            let url = "https://app.example.com/api/qstash";
            let signed_at = unix_now();
            let signer = Signer::new(BENCH_CURRENT).expect("key");
            let token = signer.sign_with_id(url, &body, signed_at, "jwt_bench");
            let no_aud = format!(
                r#"{{"body":"{}","exp":{},"iat":{signed_at},"iss":"Upstash","jti":"jwt_bench","nbf":{signed_at},"sub":"{url}"}}"#,
                body_hash(&body),
                signed_at + 300,
            );
            let token_no_aud = signer.sign_claims(no_aud.as_bytes());
            write_json(
                opt("out"),
                &BenchToken {
                    token,
                    token_no_aud,
                    body_b64: STANDARD.encode(&body),
                    url: url.to_owned(),
                    current_key: BENCH_CURRENT.to_owned(),
                    next_key: BENCH_NEXT.to_owned(),
                    signed_at,
                },
            );
        }
        Some("check") => {
            let text = std::fs::read_to_string(opt("cases")).expect("case file");
            let cases: Vec<Case> = serde_json::from_str(&text).expect("case file parses");
            write_json(
                opt("out"),
                &CheckOutput {
                    implementation: "qstash-receiver (this repo)".to_owned(),
                    clock: "injected (`Validation::at`)".to_owned(),
                    results: check(&cases),
                },
            );
        }
        Some("time") => {
            let text = std::fs::read_to_string(opt("bench")).expect("bench file");
            let bench: BenchToken = serde_json::from_str(&text).expect("bench file parses");
            let body = STANDARD.decode(&bench.body_b64).expect("body");
            let verifier =
                Verifier::new(SigningKeys::new(&bench.current_key, &bench.next_key).expect("keys"));
            // Same call as a server makes: the system clock, the whole URL compared.
            verifier
                .verify(&bench.token, &body, &Validation::new(Subject::Url(&bench.url)))
                .expect("the bench token verifies");
            let millis = opts
                .get("millis")
                .map_or(3000, |m| m.parse().expect("--millis"));
            let timing = time_it("qstash-receiver (this repo)", millis, || {
                let claims = verifier.verify(black_box(&bench.token), black_box(&body), &Validation::new(Subject::Url(&bench.url)));
                black_box(claims.is_ok());
            });
            write_json(opt("out"), &timing);
        }
        _ => {
            eprintln!(
                "usage: {} cases|bench-token|check|time --opt value ...",
                args[0]
            );
            std::process::exit(2);
        }
    }
}
