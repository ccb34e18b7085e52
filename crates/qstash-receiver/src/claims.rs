//! The claims of a verified token.

use std::borrow::Cow;

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
/// Owned (copied out of the token, one allocation), so a `Claims` can outlive the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub` followed by `jti`, in one allocation.
    text: String,
    sub_len: usize,
    has_jti: bool,
    exp: i64,
    nbf: i64,
    iat: Option<i64>,
    /// SHA-256 of the verified body, which the `body` claim matched.
    body_digest: [u8; 32],
    key: MatchedKey,
}

impl Claims {
    pub(crate) fn new(raw: &RawClaims<'_>, key: MatchedKey, body_digest: [u8; 32]) -> Self {
        let jti = raw.jti.as_deref().unwrap_or("");
        let mut text = String::with_capacity(raw.sub.len() + jti.len());
        text.push_str(&raw.sub);
        text.push_str(jti);
        Self {
            text,
            sub_len: raw.sub.len(),
            has_jti: raw.jti.is_some(),
            exp: raw.exp,
            nbf: raw.nbf,
            iat: raw.iat,
            body_digest,
            key,
        }
    }

    /// `sub`: the full destination URL the message was published to.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.text[..self.sub_len]
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
        self.has_jti.then(|| &self.text[self.sub_len..])
    }

    /// The `body` claim: base64url SHA-256 of the body, in QStash's padded form (the claim
    /// matched it, with or without padding). Encoded on each call.
    #[must_use]
    pub fn body_hash(&self) -> String {
        crate::digest::encode_hash(&self.body_digest)
    }

    /// SHA-256 of the verified body.
    #[must_use]
    pub const fn body_digest(&self) -> &[u8; 32] {
        &self.body_digest
    }

    /// Which signing key matched.
    #[must_use]
    pub const fn matched_key(&self) -> MatchedKey {
        self.key
    }
}

/// The claims as the token carries them, borrowed from the decoded payload where possible.
/// `serde` refuses duplicate keys and wrong JSON types for the named fields; unknown fields
/// (`aud` among them) are skipped.
#[derive(Deserialize)]
pub(crate) struct RawClaims<'a> {
    #[serde(borrow)]
    pub(crate) iss: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) sub: Cow<'a, str>,
    pub(crate) exp: i64,
    pub(crate) nbf: i64,
    #[serde(default)]
    pub(crate) iat: Option<i64>,
    #[serde(default, borrow)]
    pub(crate) jti: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) body: Cow<'a, str>,
    #[serde(default, rename = "aud")]
    _aud: Option<IgnoredAny>,
}

/// The value QStash puts in `iss`.
pub(crate) const ISSUER: &str = "Upstash";

/// Parses the claims and checks `iss`.
pub(crate) fn parse(payload: &[u8]) -> Result<RawClaims<'_>, Error> {
    let raw = parse_claims(payload)?;
    check_issuer(&raw.iss)?;
    Ok(raw)
}

/// Parses the claims: their presence and JSON types, `iss` not checked.
pub(crate) fn parse_claims(payload: &[u8]) -> Result<RawClaims<'_>, Error> {
    match parse_canonical(payload) {
        Some(raw) => Ok(raw),
        None => parse_json(payload),
    }
}

/// `iss` must be exactly `Upstash`.
pub(crate) fn check_issuer(iss: &str) -> Result<(), Error> {
    if iss == ISSUER {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::InvalidIssuer))
    }
}

fn parse_json(payload: &[u8]) -> Result<RawClaims<'_>, Error> {
    // serde's derived structs also accept a JSON array of the fields in order; a JWT claims
    // set is an object, so nothing else is parsed.
    if !is_json_object(payload) {
        return Err(Error::with_text(
            ErrorKind::InvalidClaims,
            "claims are not a JSON object",
        ));
    }
    // serde_json does not check the UTF-8 of strings it skips; JSON text must be UTF-8.
    if std::str::from_utf8(payload).is_err() {
        return Err(Error::with_text(
            ErrorKind::InvalidClaims,
            "claims are not UTF-8",
        ));
    }
    serde_json::from_slice(payload)
        .map_err(|e| Error::with_text(ErrorKind::InvalidClaims, json_error_text(&e)))
}

/// Whether `json` starts (after whitespace) with `{`; serde_json checks the rest.
pub(crate) fn is_json_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Reads QStash's own layout of the claims, byte for byte:
/// `{"aud":"","body":"…","exp":N,"iat":N,"iss":"…","jti":"…","nbf":N,"sub":"…"}` with strings
/// free of escapes and control characters. Anything else (other order, whitespace, escapes,
/// extra or missing claims) returns `None` and goes through `serde_json`, which decides.
///
/// Why by hand: `serde_json` spends about 400 ns on these 250 bytes, more than the whole
/// budget above the cryptographic floor at 1 KiB (see the crate README). Every payload this
/// accepts is valid JSON with exactly these members, so both parsers give the same claims
/// (a property test checks it).
fn parse_canonical(payload: &[u8]) -> Option<RawClaims<'_>> {
    // No escape or control character anywhere, so none in a string: the layout's other
    // bytes (names, punctuation, digits) never are one. One pass over the payload costs less
    // than one per string. No short-circuit, so that this loop vectorizes.
    if payload
        .iter()
        .fold(false, |bad, &b| bad | (b == b'\\') | (b < 0x20))
    {
        return None;
    }
    let mut cur = Cursor(std::str::from_utf8(payload).ok()?);
    cur.literal(r#"{"aud":"","body":""#)?;
    let body = cur.string()?;
    cur.literal(r#","exp":"#)?;
    let exp = cur.integer()?;
    cur.literal(r#","iat":"#)?;
    let iat = cur.integer()?;
    cur.literal(r#","iss":""#)?;
    let iss = cur.string()?;
    cur.literal(r#","jti":""#)?;
    let jti = cur.string()?;
    cur.literal(r#","nbf":"#)?;
    let nbf = cur.integer()?;
    cur.literal(r#","sub":""#)?;
    let sub = cur.string()?;
    if cur.0 != "}" {
        return None;
    }
    Some(RawClaims {
        iss: Cow::Borrowed(iss),
        sub: Cow::Borrowed(sub),
        exp,
        nbf,
        iat: Some(iat),
        jti: Some(Cow::Borrowed(jti)),
        body: Cow::Borrowed(body),
        _aud: None,
    })
}

/// Its steps are `#[inline(always)]`: called seven times per token, inlined they cost about
/// 80 instructions less per verification (callgrind).
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn literal(&mut self, expected: &str) -> Option<()> {
        self.0 = self.0.strip_prefix(expected)?;
        Some(())
    }

    /// The rest of a string whose opening quote was consumed, and its closing quote, in a
    /// payload without escapes (so the next quote closes it).
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let end = memchr::memchr(b'"', self.0.as_bytes())?;
        let (text, rest) = self.0.split_at(end);
        self.0 = &rest[1..];
        Some(text)
    }

    /// A JSON integer of at most 18 digits (which always fits in `i64`), without exponent or
    /// fraction; longer ones are left to serde_json.
    #[inline(always)]
    fn integer(&mut self) -> Option<i64> {
        let bytes = self.0.as_bytes();
        let negative = bytes.first() == Some(&b'-');
        let start = usize::from(negative);
        let (value, len) = digits(&bytes[start..]);
        // JSON forbids leading zeros; `-0` is left to serde_json.
        match (len, bytes.get(start)) {
            (0, _) | (19.., _) => return None,
            (2.., Some(b'0')) => return None,
            (1, Some(b'0')) if negative => return None,
            _ => {}
        }
        if matches!(bytes.get(start + len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.0 = &self.0[start + len..];
        let value = i64::try_from(value).ok()?;
        Some(if negative { -value } else { value })
    }
}

/// The value and count of the leading ASCII digits of `bytes`, reading at most 19 (a count of
/// 19 means "too long"). Eight digits at a time where possible: a Unix time has ten.
fn digits(bytes: &[u8]) -> (u64, usize) {
    let mut value = 0u64;
    let mut len = 0;
    if let Some(chunk) = bytes.first_chunk::<8>() {
        let word = u64::from_le_bytes(*chunk);
        // All eight bytes are 0x30..=0x39 (simdjson's `is_made_of_eight_digits_fast`).
        let all_digits = ((word & 0xf0f0_f0f0_f0f0_f0f0)
            | ((word.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0) >> 4))
            == 0x3333_3333_3333_3333;
        if all_digits {
            let low = word - 0x3030_3030_3030_3030;
            // Combine pairs, then pairs of pairs (the classic SWAR reduction).
            let pairs = (low.wrapping_mul(10) + (low >> 8)) & 0x00ff_00ff_00ff_00ff;
            let quads = (pairs.wrapping_mul(100) + (pairs >> 16)) & 0x0000_ffff_0000_ffff;
            value = (quads.wrapping_mul(10_000) + (quads >> 32)) & 0xffff_ffff;
            len = 8;
        }
    }
    while let Some(&b) = bytes.get(len) {
        if !b.is_ascii_digit() || len == 19 {
            break;
        }
        value = value * 10 + u64::from(b - b'0');
        len += 1;
    }
    (value, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn both(payload: &[u8]) -> (Option<String>, Option<String>) {
        let show = |r: &RawClaims<'_>| {
            format!(
                "{}|{}|{}|{}|{:?}|{:?}|{}",
                r.iss, r.sub, r.exp, r.nbf, r.iat, r.jti, r.body
            )
        };
        (
            parse_canonical(payload).as_ref().map(show),
            parse_json(payload).ok().as_ref().map(show),
        )
    }

    #[test]
    fn canonical_layout_is_read_without_serde() {
        let payload = br#"{"aud":"","body":"pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=","exp":1657530756,"iat":1657530456,"iss":"Upstash","jti":"jwt_7AqGnDKWwKNf6tGT4LgF8jtCDB8j","nbf":1657530456,"sub":"https://example.com/test"}"#;
        let raw = parse_canonical(payload).unwrap();
        assert_eq!(
            (raw.exp, raw.nbf, raw.iat),
            (1_657_530_756, 1_657_530_456, Some(1_657_530_456))
        );
        assert_eq!(raw.sub, "https://example.com/test");
        let (fast, slow) = both(payload);
        assert_eq!(fast, slow);
    }

    #[test]
    fn anything_unusual_is_left_to_serde() {
        let cases: &[&[u8]] = &[
            br#"{"aud":"","body":"x","exp":1,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a\/b"}"#,
            br#"{"aud":"","body":"x","exp":1,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"} "#,
            br#"{"aud":"","body":"x","exp":01,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"}"#,
            br#"{"aud":"","body":"x","exp":1.5,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"}"#,
            br#"{"aud":"","body":"x","exp":1e3,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"}"#,
            br#"{"aud":"","body":"x","exp":-0,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"}"#,
            br#"{"aud":"","body":"x","exp":99999999999999999999,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"}"#,
            br#"{"aud":"","body":"x","exp":"1","iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"}"#,
            br#"{"aud":"x","body":"x","exp":1,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"}"#,
            b"{\"aud\":\"\",\"body\":\"x\",\"exp\":1,\"iat\":1,\"iss\":\"Upstash\",\"jti\":\"j\",\"nbf\":1,\"sub\":\"a\x01\"}",
            b"{\"aud\":\"\",\"body\":\"x\",\"exp\":1,\"iat\":1,\"iss\":\"Upstash\",\"jti\":\"j\",\"nbf\":1,\"sub\":\"\xff\"}",
            br#"{"aud":"","body":"x","exp":1,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a","sub":"b"}"#,
            br#"{"body":"x","exp":1,"iat":1,"iss":"Upstash","jti":"j","nbf":1,"sub":"a"}"#,
        ];
        for payload in cases {
            assert!(
                parse_canonical(payload).is_none(),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        // And the ones with a meaning get the same meaning from serde.
        let (_, slow) = both(cases[0]);
        assert!(slow.unwrap().contains("|a/b|"));
    }

    #[test]
    fn digit_runs() {
        let cases: &[(&[u8], (u64, usize))] = &[
            (b"", (0, 0)),
            (b"x", (0, 0)),
            (b"7,", (7, 1)),
            (b"1657530756,", (1_657_530_756, 10)),
            (b"12345678", (12_345_678, 8)),
            (b"1234567/9", (1_234_567, 7)),
            (b"1234567:9", (1_234_567, 7)),
            (b"00000000", (0, 8)),
            (b"99999999999", (99_999_999_999, 11)),
            (b"999999999999999999", (999_999_999_999_999_999, 18)),
        ];
        for (bytes, want) in cases {
            assert_eq!(digits(bytes), *want, "{}", String::from_utf8_lossy(bytes));
        }
        assert_eq!(digits(b"12345678901234567890").1, 19);
    }

    proptest! {
        #[test]
        fn digit_runs_match_a_plain_loop(bytes in prop::collection::vec(prop::sample::select(b"0123456789/:,x ".to_vec()), 0..24)) {
            let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let (value, got_len) = digits(&bytes);
            if len <= 18 {
                prop_assert_eq!(got_len, len);
                let want = bytes[..len].iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
                prop_assert_eq!(value, want);
            } else {
                prop_assert_eq!(got_len, 19);
            }
        }
    }

    #[test]
    fn negative_and_extreme_integers() {
        let payload = |n: &str| {
            format!(
                r#"{{"aud":"","body":"x","exp":{n},"iat":{n},"iss":"Upstash","jti":"j","nbf":{n},"sub":"a"}}"#
            )
        };
        for n in [
            "-62135596800",
            "0",
            "999999999999999999",
            "-999999999999999999",
        ] {
            let (fast, slow) = both(payload(n).as_bytes());
            assert!(fast.is_some(), "{n}");
            assert_eq!(fast, slow, "{n}");
        }
        for n in ["-", "+1", "1.0", "1e3", "-0", "00"] {
            assert!(parse_canonical(payload(n).as_bytes()).is_none(), "{n}");
        }
        // Past 18 digits serde_json decides, refusing what does not fit.
        for n in [
            "9223372036854775808",
            "-9223372036854775809",
            "1000000000000000000",
        ] {
            let (fast, _) = both(payload(n).as_bytes());
            assert!(fast.is_none(), "{n}");
        }
        assert!(parse_json(payload("9223372036854775808").as_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_serde_on_canonical_payloads(
            body in "[A-Za-z0-9_=-]{0,50}",
            jti in "[ -~]{0,40}",
            sub in "[ -~]{0,80}",
            exp in any::<i64>(),
            iat in any::<i64>(),
            nbf in any::<i64>(),
        ) {
            let payload = format!(
                r#"{{"aud":"","body":{},"exp":{exp},"iat":{iat},"iss":"Upstash","jti":{},"nbf":{nbf},"sub":{}}}"#,
                serde_json::to_string(&body).unwrap(),
                serde_json::to_string(&jti).unwrap(),
                serde_json::to_string(&sub).unwrap(),
            );
            let (fast, slow) = both(payload.as_bytes());
            prop_assert!(slow.is_some());
            let short = [exp, iat, nbf].iter().all(|n| n.unsigned_abs() < 1_000_000_000_000_000_000);
            if short && !jti.contains(['"', '\\']) && !sub.contains(['"', '\\']) {
                prop_assert!(fast.is_some());
            }
            if fast.is_some() {
                prop_assert_eq!(fast, slow);
            }
        }

        #[test]
        fn fast_path_never_accepts_what_serde_reads_differently(
            payload in prop::collection::vec(any::<u8>(), 0..160),
            prefix_len in 0usize..120,
        ) {
            // Splice random bytes into a canonical payload at random points.
            let canonical = br#"{"aud":"","body":"x","exp":1,"iat":2,"iss":"Upstash","jti":"j","nbf":3,"sub":"https://a.example/"}"#;
            let cut = prefix_len.min(canonical.len());
            let mut mutated = canonical[..cut].to_vec();
            mutated.extend_from_slice(&payload);
            let (fast, slow) = both(&mutated);
            if fast.is_some() {
                prop_assert_eq!(fast, slow);
            }
        }
    }
}
