//! The [`Verifier`]: a strict HS256 check of the `Upstash-Signature` token over the raw body.
//!
//! Written on `hmac` + `sha2` rather than a general JWT crate: QStash uses one algorithm and
//! one fixed claim set, and a general crate brings algorithm negotiation, other crypto
//! backends and per-call key setup that this check must not have (see the crate docs).

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::base64url;
use crate::claims::{self, Claims, MatchedKey};
use crate::digest::{claimed_digest, digest_matches};
use crate::error::{ConfigError, Error, ErrorKind};
use crate::headers::HeaderLookup;
use crate::keys::{KeyRing, SigningKeys};
use crate::subject::{self, Subject};
use crate::time::unix_now;

/// Default bound on the token's length: 16 KiB. A token is about 400 bytes plus 4/3 of the
/// destination URL, so this admits URLs of up to about 11 KiB (QStash's own URL limit is
/// lower), while bounding the work done before the MAC is checked.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The header every QStash token carries, `{"alg":"HS256","typ":"JWT"}`, base64url-encoded;
/// recognised without decoding.
const STANDARD_HEADER: &[u8] = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// An HMAC-SHA256 tag in unpadded base64url.
const SIGNATURE_B64_LEN: usize = 43;

/// What a token is checked against besides the keys: the [`Subject`] its `sub` must match,
/// the region whose keys sign it, and the instant its validity window is read at. As
/// `jsonwebtoken`'s `Validation`, one value for every way of verifying.
///
/// # Examples
///
/// ```
/// use qstash_receiver::{Subject, Validation};
///
/// // The default keys, the system clock.
/// let validation = Validation::new(Subject::PathAndQuery("/api/hook"));
/// // The keys of a region (the raw `Upstash-Region` value), at a given instant.
/// let pinned = validation.in_region(Some("us-east-1")).at(1_700_000_000);
/// assert_eq!(pinned.now(), 1_700_000_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validation<'a> {
    subject: Subject<'a>,
    region: Option<&'a str>,
    now: Option<i64>,
}

impl<'a> Validation<'a> {
    /// `sub` must match `subject`; the default keys; the system clock.
    #[must_use]
    pub const fn new(subject: Subject<'a>) -> Self {
        Self {
            subject,
            region: None,
            now: None,
        }
    }

    /// Uses the keys of `region`, the raw `Upstash-Region` value of the request if it has one
    /// (see [`headers::region`](crate::headers::region)), falling back to the default keys.
    #[must_use]
    pub const fn in_region(mut self, region: Option<&'a str>) -> Self {
        self.region = region;
        self
    }

    /// Reads the validity window at `now` (unix seconds) instead of the system clock.
    #[must_use]
    pub const fn at(mut self, now: i64) -> Self {
        self.now = Some(now);
        self
    }

    /// The subject `sub` must match.
    #[must_use]
    pub const fn subject(&self) -> Subject<'a> {
        self.subject
    }

    /// The region whose keys are used, if any.
    #[must_use]
    pub const fn region(&self) -> Option<&'a str> {
        self.region
    }

    /// The instant the window is read at: the one given to [`at`](Self::at), else the system
    /// clock now.
    #[must_use]
    pub fn now(&self) -> i64 {
        self.now.unwrap_or_else(unix_now)
    }
}

/// Verifies `Upstash-Signature` tokens.
///
/// Cheap to clone: clones share the keys, so [`Verifier::rotate`] on any clone is seen by all
/// of them (keep one clone to rotate, give the others to your server).
///
/// # Examples
///
/// ```
/// use qstash_receiver::{Signer, SigningKeys, Subject, Validation, Verifier};
///
/// let keys = SigningKeys::new("sig_current", "sig_next")?;
/// let verifier = Verifier::new(keys);
/// let token = Signer::new("sig_current")?.sign_at("https://example.com/hook", b"hi", 1_700_000_000);
///
/// let validation = Validation::new(Subject::PathAndQuery("/hook")).at(1_700_000_000);
/// let claims = verifier.verify(&token, b"hi", &validation)?;
/// assert_eq!(claims.subject(), "https://example.com/hook");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    pub(crate) keys: Arc<ArcSwap<KeyRing>>,
    pub(crate) tolerance: u64,
    pub(crate) max_token_bytes: usize,
}

impl Verifier {
    /// A verifier over `keys` (a [`SigningKeys`] pair or a multi-region [`KeyRing`]), with no
    /// clock tolerance and a 16 KiB token bound.
    #[must_use]
    pub fn new(keys: impl Into<KeyRing>) -> Self {
        Self {
            keys: Arc::new(ArcSwap::from_pointee(keys.into())),
            tolerance: 0,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    /// A verifier over [`KeyRing::from_env`].
    ///
    /// # Errors
    ///
    /// As [`KeyRing::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        KeyRing::from_env().map(Self::new)
    }

    /// How far the clock may be off: a token is accepted for `nbf - tolerance <= now < exp +
    /// tolerance`. Whole seconds; fractions are dropped.
    ///
    /// Defaults to 0 seconds.
    #[must_use]
    pub fn clock_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance.as_secs();
        self
    }

    /// The longest token accepted; longer ones are refused before any decoding.
    ///
    /// Defaults to 16 KiB ([`DEFAULT_MAX_TOKEN_BYTES`]).
    #[must_use]
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Replaces the default signing keys (keeping any per-region keys), atomically: every
    /// verification sees either the old pair or the new pair, never a mix. Takes `&self`, so
    /// a running server can rotate without a restart.
    pub fn rotate(&self, keys: SigningKeys) {
        self.keys
            .rcu(|ring| KeyRing::clone(ring).with_default(keys.clone()));
    }

    /// Replaces the whole key ring atomically.
    pub fn set_key_ring(&self, ring: KeyRing) {
        self.keys.store(Arc::new(ring));
    }

    /// A snapshot of the current key ring.
    #[must_use]
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.load_full()
    }

    /// Verifies `token` (the `Upstash-Signature` value) over `body`, against `validation`:
    /// the subject, the region's keys and the instant.
    ///
    /// Checks, in order: the token's length; its shape (three base64url segments); `alg` is
    /// exactly `HS256` and there is no `crit`; the MAC, in constant time, with the current key
    /// and then the next; the claims' presence and JSON types; `iss`; the validity window;
    /// `sub` against the subject; and the `body` claim against SHA-256 of `body`, in constant
    /// time and insensitive to `=` padding.
    ///
    /// # Errors
    ///
    /// The first check that fails, as an [`Error`] whose [`kind`](Error::kind) names it;
    /// [`ErrorKind::NoSigningKeys`] when the ring has no keys for the region and no default
    /// keys.
    pub fn verify(
        &self,
        token: &str,
        body: &[u8],
        validation: &Validation<'_>,
    ) -> Result<Claims, Error> {
        self.verify_token(token, validation)?.verify_body(body)
    }

    /// Verifies a request from its headers: its one `Upstash-Signature` over `body`, with the
    /// keys of its `Upstash-Region` (multi-region accounts) unless `validation` names a region.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingSignature`] / [`ErrorKind::MultipleSignatures`] for zero or several
    /// `Upstash-Signature` headers, [`ErrorKind::MalformedToken`] for a value that is not
    /// visible ASCII, then as [`Verifier::verify`].
    pub fn verify_headers<H: HeaderLookup + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        validation: &Validation<'_>,
    ) -> Result<Claims, Error> {
        let token = crate::headers::signature(headers)?;
        let region = validation
            .region
            .or_else(|| crate::headers::region(headers));
        self.verify(token, body, &validation.in_region(region))
    }

    /// Verifies everything about `token` that does not need the body: its length and shape,
    /// `alg`, the MAC (current key, then next), the claims' presence and types, `iss`, the
    /// validity window and `sub`. The `body` claim is checked later, by
    /// [`VerifiedToken::verify_body`], once the body is read.
    ///
    /// This is what lets a receiver refuse a forged or stale delivery before it reads a byte
    /// of the body: the MAC covers the token's header and claims, not the body.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`], but for [`ErrorKind::BodyHashMismatch`], which only a `body`
    /// claim that can match no body at all (not a SHA-256 digest) gives here.
    pub fn verify_token(
        &self,
        token: &str,
        validation: &Validation<'_>,
    ) -> Result<VerifiedToken, Error> {
        let ring = self.keys.load();
        let keys = ring
            .keys_for(validation.region)
            .ok_or(Error::new(ErrorKind::NoSigningKeys))?;
        self.verify_token_with(keys, token, validation.subject, validation.now())
    }

    fn verify_token_with(
        &self,
        keys: &SigningKeys,
        token: &str,
        subject: Subject<'_>,
        now: i64,
    ) -> Result<VerifiedToken, Error> {
        let parts = split_token(token, self.max_token_bytes)?;
        let matched = match_key(keys, &parts).ok_or(Error::new(ErrorKind::InvalidSignature))?;

        // Real payloads are about 250 bytes plus the URL: decode on the stack when they fit.
        let mut stack = [MaybeUninit::uninit(); 1024];
        let mut heap = Vec::new();
        let needed = base64url::decoded_len(parts.payload_b64.len());
        let buffer = if needed <= stack.len() {
            &mut stack[..]
        } else {
            heap.resize(needed, MaybeUninit::uninit());
            &mut heap[..]
        };
        let payload = decode_payload(parts.payload_b64, buffer)?;
        let raw = claims::parse(payload)?;

        check_window(now, raw.nbf, raw.exp, self.tolerance)?;
        subject::check(&raw.sub, subject)?;
        let claimed = claimed_digest(&raw.body).ok_or(Error::new(ErrorKind::BodyHashMismatch))?;
        Ok(VerifiedToken {
            claims: Claims::new(&raw, matched, claimed),
        })
    }
}

/// A token split into what the MAC covers, the claims and the decoded tag, after its length,
/// shape and header passed.
pub(crate) struct TokenParts<'t> {
    /// `header.payload`, the MAC's input.
    pub(crate) signing_input: &'t [u8],
    /// The payload segment, base64url.
    pub(crate) payload_b64: &'t [u8],
    /// The HMAC-SHA256 tag.
    pub(crate) tag: [u8; 32],
}

/// The checks before any MAC work: the token's length, its three segments, its header (`alg`
/// exactly `HS256`, no `crit`) and a tag of the right size.
pub(crate) fn split_token(token: &str, max_token_bytes: usize) -> Result<TokenParts<'_>, Error> {
    if token.len() > max_token_bytes {
        return Err(Error::new(ErrorKind::TokenTooLong));
    }
    let token = token.as_bytes();
    let header_end = memchr::memchr(b'.', token)
        .ok_or_else(|| Error::with_text(ErrorKind::MalformedToken, "expected three segments"))?;
    let signature_start = memchr::memrchr(b'.', token).unwrap_or(header_end) + 1;
    if signature_start <= header_end + 1 {
        return Err(Error::with_text(
            ErrorKind::MalformedToken,
            "expected three segments",
        ));
    }
    let header_b64 = &token[..header_end];
    let payload_b64 = &token[header_end + 1..signature_start - 1];
    let signing_input = &token[..signature_start - 1];
    let signature_b64 = &token[signature_start..];
    if memchr::memchr(b'.', payload_b64).is_some() {
        return Err(Error::with_text(
            ErrorKind::MalformedToken,
            "more than three segments",
        ));
    }
    check_header(header_b64)?;

    // Decode the tag before any MAC work: a tag of the wrong size can never match.
    let mut tag_buffer = [MaybeUninit::uninit(); 32];
    let tag = base64url::decode(signature_b64, &mut tag_buffer)
        .filter(|_| signature_b64.len() == SIGNATURE_B64_LEN)
        .and_then(|tag| <[u8; 32]>::try_from(tag).ok())
        .ok_or_else(|| {
            Error::with_text(
                ErrorKind::MalformedToken,
                "signature segment is not an HS256 tag",
            )
        })?;
    Ok(TokenParts {
        signing_input,
        payload_b64,
        tag,
    })
}

/// Which key's MAC matches, in constant time: the current key, then the next.
pub(crate) fn match_key(keys: &SigningKeys, parts: &TokenParts<'_>) -> Option<MatchedKey> {
    if mac_matches(keys.current.mac(), parts.signing_input, &parts.tag) {
        Some(MatchedKey::Current)
    } else if mac_matches(keys.next.mac(), parts.signing_input, &parts.tag) {
        Some(MatchedKey::Next)
    } else {
        None
    }
}

/// The payload segment decoded into `buffer` (at least
/// [`base64url::decoded_len`] of it long).
pub(crate) fn decode_payload<'b>(
    payload_b64: &[u8],
    buffer: &'b mut [MaybeUninit<u8>],
) -> Result<&'b [u8], Error> {
    base64url::decode(payload_b64, buffer)
        .map(|payload| &*payload)
        .ok_or_else(|| Error::with_text(ErrorKind::MalformedToken, "payload is not base64url"))
}

/// The validity window: accepted for `nbf - tolerance <= now < exp + tolerance`.
pub(crate) fn check_window(now: i64, nbf: i64, exp: i64, tolerance: u64) -> Result<(), Error> {
    let slack = i64::try_from(tolerance).unwrap_or(i64::MAX);
    if now < nbf.saturating_sub(slack) {
        return Err(Error::window(
            ErrorKind::NotYetValid,
            now,
            nbf,
            exp,
            tolerance,
        ));
    }
    if now >= exp.saturating_add(slack) {
        return Err(Error::window(ErrorKind::Expired, now, nbf, exp, tolerance));
    }
    Ok(())
}

/// A token whose MAC and claims are verified, all but the `body` claim: the state of a
/// delivery between reading its headers and reading its body.
#[derive(Debug, Clone)]
#[must_use = "the body is not verified until `verify_body` is called"]
pub struct VerifiedToken {
    /// The claims, with the digest the `body` claim names (checked by `verify_body`).
    claims: Claims,
}

impl VerifiedToken {
    /// The token's `sub` claim.
    #[must_use]
    pub fn subject(&self) -> &str {
        self.claims.subject()
    }

    /// The digest the `body` claim names (not yet compared with a body).
    pub(crate) const fn claimed_digest(&self) -> &[u8; 32] {
        self.claims.body_digest()
    }

    /// Checks the `body` claim against SHA-256 of `body`, in constant time, and gives the
    /// verified claims.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BodyHashMismatch`] when the body is not the one QStash signed.
    pub fn verify_body(self, body: &[u8]) -> Result<Claims, Error> {
        let digest = Sha256::digest(body);
        if digest_matches(self.claims.body_digest(), &digest) {
            Ok(self.claims)
        } else {
            Err(Error::new(ErrorKind::BodyHashMismatch))
        }
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &"<redacted>")
            .field("tolerance_secs", &self.tolerance)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish()
    }
}

/// The JOSE header's fields that matter; `serde` refuses a duplicate `alg`.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

fn check_header(header_b64: &[u8]) -> Result<(), Error> {
    if header_b64 == STANDARD_HEADER {
        return Ok(());
    }
    let json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| Error::with_text(ErrorKind::MalformedToken, "header is not base64url"))?;
    if !claims::is_json_object(&json) {
        return Err(Error::with_text(
            ErrorKind::MalformedToken,
            "header is not a JSON object",
        ));
    }
    let header: Header<'_> = serde_json::from_slice(&json)
        .map_err(|_| Error::with_text(ErrorKind::MalformedToken, "header is not a JOSE header"))?;
    if header.alg != "HS256" {
        return Err(Error::new(ErrorKind::UnsupportedAlgorithm));
    }
    if header.crit.is_some() {
        return Err(Error::new(ErrorKind::UnsupportedCriticalHeader));
    }
    Ok(())
}

fn mac_matches(mut mac: crate::keys::HmacSha256, signing_input: &[u8], tag: &[u8]) -> bool {
    mac.update(signing_input);
    // `verify_slice` compares in constant time.
    mac.verify_slice(tag).is_ok()
}
