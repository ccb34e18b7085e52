//! [`Diagnosis`]: the result of every check of a token, not only the first that fails, with
//! hints that say why a check failed and what to change.
//!
//! Each check calls the verifier's own rule (the same functions [`Verifier`] runs), so a
//! diagnosis never disagrees with a verification: [`Diagnosis::is_valid`] is the verifier's
//! verdict and [`Diagnosis::error`] its error.

use std::fmt;
use std::mem::MaybeUninit;

use sha2::{Digest as _, Sha256};

use crate::base64url;
use crate::claims::{self, MatchedKey};
use crate::digest::{body_hash, claimed_digest, digest_matches};
use crate::error::{Error, ErrorKind};
use crate::inspect::inspect_unverified;
use crate::keys::SigningKeys;
use crate::subject::{self, Subject, path_and_query};
use crate::verify::{self, Validation, Verifier};

/// One check of a token, in the order the verifier makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The key ring has keys for the request's region.
    Keys,
    /// The token's length, its three base64url segments, its header (`alg`, `crit`) and tag.
    Token,
    /// The MAC, with the current key and then the next.
    Signature,
    /// The claims' presence and JSON types.
    Claims,
    /// `iss` is `Upstash`.
    Issuer,
    /// `nbf` and `exp` against the clock, with the tolerance.
    Window,
    /// `sub` against the URL the request was matched against.
    Subject,
    /// The `body` claim against SHA-256 of the body.
    BodyHash,
}

impl Step {
    /// The step's name as printed, padded to one width.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Keys => "keys      ",
            Self::Token => "token     ",
            Self::Signature => "signature ",
            Self::Claims => "claims    ",
            Self::Issuer => "issuer    ",
            Self::Window => "window    ",
            Self::Subject => "subject   ",
            Self::BodyHash => "body hash ",
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The check passed.
    Passed,
    /// The check failed with the error the verifier gives for it.
    Failed(Error),
    /// The check could not be made: an earlier one left nothing to check.
    NotChecked,
}

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    step: Step,
    outcome: Outcome,
    verified: bool,
}

impl Check {
    /// Which check.
    #[must_use]
    pub const fn step(&self) -> Step {
        self.step
    }

    /// What it found.
    #[must_use]
    pub const fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// Whether the check ran on claims whose MAC matched. `false` after a MAC mismatch: the
    /// claims were read without verification, only to explain.
    #[must_use]
    pub const fn is_verified(&self) -> bool {
        self.verified
    }

    /// Whether the check failed.
    #[must_use]
    pub const fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// The validity window and the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `nbf`, unix seconds.
    pub not_before: i64,
    /// `exp`, unix seconds (exclusive).
    pub expires_at: i64,
    /// The clock, unix seconds.
    pub now: i64,
    /// The configured clock tolerance, seconds.
    pub tolerance: u64,
}

impl Window {
    /// How far outside the window (tolerance included) the clock is, in seconds: `now - (exp +
    /// tolerance)` (0 or more) when the token expired, `now - (nbf - tolerance)` (negative) when
    /// it is not valid yet, 0 inside.
    #[must_use]
    pub fn skew(&self) -> i64 {
        let slack = i64::try_from(self.tolerance).unwrap_or(i64::MAX);
        let start = self.not_before.saturating_sub(slack);
        let end = self.expires_at.saturating_add(slack);
        if self.now < start {
            self.now.saturating_sub(start)
        } else if self.now >= end {
            self.now.saturating_sub(end)
        } else {
            0
        }
    }
}

/// Why a check failed, beyond "it failed", and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// The token is wrapped in quotes.
    TokenQuoted,
    /// The token starts with `Bearer `.
    TokenBearer,
    /// The token contains whitespace.
    TokenWhitespace,
    /// The token matches the next key: QStash rotated its keys.
    NextKey,
    /// The token matches the public dev-server keys.
    DevKeys,
    /// The token matches the keys of another region of the key ring.
    OtherRegion(Box<str>),
    /// The token matches the configured key once whitespace is added or removed around it:
    /// the key that signed it (or the one configured) was read with its newline or spaces.
    KeyWhitespace(MatchedKey),
    /// The token matches no key known here.
    WrongKeys,
    /// The token expired this many seconds ago.
    Expired(i64),
    /// The token becomes valid in this many seconds.
    NotYetValid(i64),
    /// `sub` and the URL agree in path and query but not in scheme, host or port.
    ProxyRewrite,
    /// The paths agree, the query strings differ.
    QueryDiffers,
    /// The paths differ only in a trailing `/`.
    TrailingSlash,
    /// The token's path ends with the request's: this prefix was stripped.
    PrefixStripped(Box<str>),
    /// The URL given for the request is not absolute.
    RequestNotAbsolute,
    /// The token's `sub` is not an absolute URL.
    SubjectNotAbsolute,
    /// The body with its trailing newline removed matches.
    BodyNewlineAdded,
    /// The body with a trailing newline added matches.
    BodyNewlineRemoved,
    /// The body with CRLF line ends turned into LF matches.
    BodyCrlf,
    /// The body's JSON re-encoded compactly matches: it was pretty-printed or re-formatted.
    BodyReserializedCompact,
    /// The body's JSON re-encoded pretty-printed matches.
    BodyReserializedPretty,
    /// No edit of the body matches.
    BodyNotRaw,
    /// The `body` claim is not 43 characters of base64url (with or without `=`).
    BodyClaimNotDigest,
    /// The `body` claim has no `=` padding, which is not the cause: it is compared without.
    BodyClaimUnpadded,
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenQuoted => f.write_str("the token is quoted: pass it without the surrounding quotes"),
            Self::TokenBearer => f.write_str(
                "the token starts with `Bearer `: QStash sends `Upstash-Signature` without a scheme; pass only the token",
            ),
            Self::TokenWhitespace => f.write_str(
                "the token contains whitespace: it is one line of three base64url segments",
            ),
            Self::NextKey => f.write_str(
                "the token matches the next key: QStash signs with it after a key rotation; make it your current key",
            ),
            Self::DevKeys => f.write_str(
                "the token matches the public dev-server keys: it comes from the local QStash dev server (or a test); verify it with the dev keys",
            ),
            Self::OtherRegion(region) => write!(
                f,
                "the token matches the {region} keys: the request's `Upstash-Region` selects other keys; check the region header and QSTASH_REGION"
            ),
            Self::KeyWhitespace(key) => write!(
                f,
                "the token matches the {} key with whitespace added or removed around it: the key has whitespace (a newline read from a file); trim it where it is configured",
                key_name(*key)
            ),
            Self::WrongKeys => f.write_str(
                "use this QStash account's current and next signing keys (console, Signing keys), and pass the token whole, as received",
            ),
            Self::Expired(secs) => write!(
                f,
                "expired {secs} s ago (exp + tolerance <= now). QStash tokens live 300 s: a delivery replayed later, or a clock running fast here; a clock tolerance accepts skew"
            ),
            Self::NotYetValid(secs) => write!(
                f,
                "valid only in {secs} s (now < nbf - tolerance): the clock here is behind; a clock tolerance accepts skew"
            ),
            Self::ProxyRewrite => f.write_str(
                "path and query agree, scheme, host or port differ: a proxy or load balancer (TLS termination, internal host or port) rewrote the URL. Compare path and query only (the adapters' default) or configure the public base URL to the URL QStash calls",
            ),
            Self::QueryDiffers => f.write_str(
                "the paths agree, the query strings differ: QStash signs the URL with the query it was published with",
            ),
            Self::TrailingSlash => f.write_str("the paths differ only in a trailing `/`"),
            Self::PrefixStripped(prefix) => write!(
                f,
                "the token's path ends with the request's: a path prefix (`{prefix}`) was stripped by a proxy or a nested router before the check"
            ),
            Self::RequestNotAbsolute => {
                f.write_str("the request URL is not an absolute URL (scheme://host/path)")
            }
            Self::SubjectNotAbsolute => f.write_str("the token's `sub` is not an absolute URL"),
            Self::BodyNewlineAdded => f.write_str(
                "the body without its trailing newline matches: something (echo, an editor, a heredoc) added one; pass the raw bytes",
            ),
            Self::BodyNewlineRemoved => f.write_str(
                "the body with a trailing newline matches: something trimmed the body; pass the raw bytes",
            ),
            Self::BodyCrlf => f.write_str(
                "the body with CRLF line ends turned into LF matches: line ends were converted (git autocrlf, a Windows editor); pass the raw bytes",
            ),
            Self::BodyReserializedCompact => f.write_str(
                "the body re-serialized as compact JSON matches: the body was parsed and re-serialized; pass the raw bytes",
            ),
            Self::BodyReserializedPretty => f.write_str(
                "the body re-serialized as pretty-printed JSON matches: the body was parsed and re-serialized; pass the raw bytes",
            ),
            Self::BodyNotRaw => f.write_str(
                "the body must be the raw bytes as received, before any parsing, re-encoding or decompression",
            ),
            Self::BodyClaimNotDigest => f.write_str(
                "the `body` claim is not base64url SHA-256 (43 characters, `=` optional): the token was not made by QStash",
            ),
            Self::BodyClaimUnpadded => f.write_str(
                "the `body` claim has no `=` padding: not the cause, padding is ignored",
            ),
        }
    }
}

/// How `sub` was compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectFacts {
    /// The token's `sub`.
    pub token: Box<str>,
    /// What it was compared with: the URL, or the request target.
    pub request: Box<str>,
    /// `true` for a whole-URL comparison, `false` for path and query.
    pub whole_url: bool,
}

/// The result of every check of a token, with hints.
///
/// Made by [`Verifier::diagnose`]. `Display` prints one line per check and the
/// hints; [`summary`](Self::summary) gives one line for a log.
///
/// # Security
///
/// Never holds a key, the token or the body: only lengths, hashes and claims (which are not
/// secret). Claims read after a MAC mismatch are marked unverified: they explain, never decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    checks: Vec<Check>,
    hints: Vec<Hint>,
    matched: Option<MatchedKey>,
    algorithm: Option<Box<str>>,
    issuer: Option<Box<str>>,
    window: Option<Window>,
    subject: Option<SubjectFacts>,
    claimed_hash: Option<Box<str>>,
    body_hash: String,
    body_len: usize,
    token_len: usize,
    token_id: Option<Box<str>>,
}

impl Diagnosis {
    /// Whether the verifier accepts the token: every check passed.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.checks.iter().all(|c| c.outcome == Outcome::Passed)
    }

    /// Every check, in the verifier's order.
    #[must_use]
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The first check that failed: the one the verifier refuses the token at.
    #[must_use]
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.failed())
    }

    /// The verifier's error: that of the first failing check.
    #[must_use]
    pub fn error(&self) -> Option<&Error> {
        match self.first_failure().map(Check::outcome) {
            Some(Outcome::Failed(error)) => Some(error),
            _ => None,
        }
    }

    /// The hints, most useful first.
    #[must_use]
    pub fn hints(&self) -> &[Hint] {
        &self.hints
    }

    /// Which key's MAC matched, if one did.
    #[must_use]
    pub const fn matched_key(&self) -> Option<MatchedKey> {
        self.matched
    }

    /// The validity window, when the claims could be read.
    #[must_use]
    pub const fn window(&self) -> Option<&Window> {
        self.window.as_ref()
    }

    /// How `sub` was compared, when the claims could be read.
    #[must_use]
    pub const fn subject(&self) -> Option<&SubjectFacts> {
        self.subject.as_ref()
    }

    /// base64url SHA-256 of the body given, padded.
    #[must_use]
    pub fn body_hash(&self) -> &str {
        &self.body_hash
    }

    /// One line for a log: the verdict, the first failure's kind and the hints.
    #[must_use]
    pub fn summary(&self) -> String {
        summary_line(self.error(), &self.hints)
    }

    fn label(&self, check: &Check) -> &'static str {
        let first = self.first_failure().is_some_and(|f| f.step == check.step);
        match (&check.outcome, check.verified) {
            (Outcome::Passed, true) => "ok",
            (Outcome::Passed, false) => "unverified",
            (Outcome::Failed(_), _) if first => "FAILED",
            (Outcome::Failed(_), true) => "also fails",
            (Outcome::Failed(_), false) => "would fail",
            (Outcome::NotChecked, _) => "not checked",
        }
    }

    fn write_check(&self, f: &mut fmt::Formatter<'_>, check: &Check) -> fmt::Result {
        let label = self.label(check);
        let name = check.step.label();
        let failed = check.failed();
        match check.step {
            Step::Keys => match &check.outcome {
                Outcome::Failed(error) => writeln!(f, "  {name} {label}: {error}"),
                _ => Ok(()),
            },
            Step::Token => match (&check.outcome, &self.algorithm) {
                (Outcome::Failed(e), Some(alg)) if e.kind() == ErrorKind::UnsupportedAlgorithm => {
                    writeln!(f, "  {name} {label}: `{alg}`, only HS256 is accepted")
                }
                (Outcome::Failed(error), _) => writeln!(f, "  {name} {label}: {error}"),
                _ => writeln!(f, "  {name} {label}: {} bytes", self.token_len),
            },
            Step::Signature => match (&check.outcome, self.matched) {
                (Outcome::Passed, Some(key)) => {
                    writeln!(f, "  {name} {label}: matches the {} key", key_name(key))
                }
                (Outcome::Failed(_), _) => {
                    writeln!(
                        f,
                        "  {name} {label}: matches neither the current nor the next key"
                    )?;
                    if self
                        .checks
                        .iter()
                        .any(|c| !c.verified && c.outcome != Outcome::NotChecked)
                    {
                        writeln!(
                            f,
                            "  the claims below are read without verification, to help find the cause:"
                        )?;
                    }
                    Ok(())
                }
                _ => writeln!(f, "  {name} {label}: the token was refused before"),
            },
            Step::Claims => match &check.outcome {
                Outcome::Failed(error) => writeln!(f, "  {name} {label}: {error}"),
                _ => Ok(()),
            },
            Step::Issuer => match &self.issuer {
                Some(iss) if failed => {
                    writeln!(f, "  {name} {label}: {iss:?} (expected \"Upstash\")")
                }
                Some(iss) => writeln!(f, "  {name} {label}: {iss:?}"),
                None => writeln!(f, "  {name} {label}"),
            },
            Step::Window => match &self.window {
                Some(w) => writeln!(
                    f,
                    "  {name} {label}: valid from {} (nbf) until {} (exp, exclusive); now {}, tolerance {} s, skew {} s",
                    w.not_before,
                    w.expires_at,
                    w.now,
                    w.tolerance,
                    w.skew()
                ),
                None => writeln!(f, "  {name} {label}"),
            },
            Step::Subject => match &self.subject {
                Some(s) => {
                    let how = if s.whole_url {
                        "compared as a whole URL"
                    } else {
                        "compared as path and query"
                    };
                    if failed {
                        writeln!(f, "  {name} {label} ({how})")?;
                        writeln!(f, "             expected (token `sub`): {}", s.token)?;
                        writeln!(f, "             actual (request):       {}", s.request)
                    } else {
                        writeln!(f, "  {name} {label}: {} ({how})", s.token)
                    }
                }
                None => writeln!(f, "  {name} {label}"),
            },
            Step::BodyHash => match &self.claimed_hash {
                Some(claimed) if failed => {
                    writeln!(f, "  {name} {label}")?;
                    writeln!(f, "             expected (token `body`): {claimed}")?;
                    writeln!(
                        f,
                        "             actual (SHA-256 of the {} bytes given): {}",
                        self.body_len, self.body_hash
                    )
                }
                _ if check.outcome == Outcome::NotChecked => writeln!(f, "  {name} {label}"),
                _ => writeln!(
                    f,
                    "  {name} {label}: {} ({} bytes)",
                    self.body_hash, self.body_len
                ),
            },
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.error(), self.matched) {
            (Some(error), _) => writeln!(f, "invalid: {error} [{}]", error.kind())?,
            (None, Some(key)) => writeln!(f, "valid: signed with the {} key", key_name(key))?,
            (None, None) => writeln!(f, "valid")?,
        }
        for check in &self.checks {
            self.write_check(f, check)?;
        }
        if let Some(jti) = &self.token_id {
            writeln!(f, "  token id   {jti}")?;
        }
        for hint in &self.hints {
            writeln!(f, "  hint: {hint}")?;
        }
        Ok(())
    }
}

fn summary_line(error: Option<&Error>, hints: &[Hint]) -> String {
    let mut line = match error {
        None => "valid".to_owned(),
        Some(error) => format!("invalid: {error} [{}]", error.kind()),
    };
    for hint in hints {
        line.push_str("; hint: ");
        line.push_str(&hint.to_string());
    }
    line
}

/// The one-line summary of a refusal at the token's checks (the body not read yet), for the
/// debug log; `None` when the diagnosis does not name the refusal's own error.
pub(crate) fn token_summary(
    verifier: &Verifier,
    token: &str,
    validation: &Validation<'_>,
    kind: ErrorKind,
) -> Option<String> {
    let d = verifier.diagnose_inner(token, None, validation);
    d.error()
        .is_some_and(|e| e.kind() == kind)
        .then(|| d.summary())
}

/// The one-line summary of a refusal for the body hash, with its hint, for the debug log.
pub(crate) fn body_summary(claimed: &[u8; 32], body: &[u8]) -> String {
    summary_line(
        Some(&Error::new(ErrorKind::BodyHashMismatch)),
        &[body_hint(body, claimed)],
    )
}

const fn key_name(key: MatchedKey) -> &'static str {
    match key {
        MatchedKey::Current => "current",
        MatchedKey::Next => "next",
    }
}

impl Verifier {
    /// Runs every check of `token` over `body` against `validation`, not only up to the first
    /// failure, and explains each. The verifier's own rules decide each check:
    /// [`Diagnosis::is_valid`] is `true` exactly when [`Verifier::verify`] accepts, and
    /// [`Diagnosis::error`] is its error.
    ///
    /// Costs more than a verification (it hashes edited copies of the body when the hash does
    /// not match): call it to explain a refusal, not on every request.
    ///
    /// # Examples
    ///
    /// ```
    /// use qstash_receiver::{Signer, SigningKeys, Subject, Validation, Verifier};
    ///
    /// let verifier = Verifier::new(SigningKeys::new("sig_current", "sig_next")?);
    /// let token = Signer::new("sig_current")?.sign_at("https://example.com/hook", b"{\"a\":1}", 1_000);
    /// let validation = Validation::new(Subject::PathAndQuery("/hook")).at(1_000);
    /// let diagnosis = verifier.diagnose(&token, b"{\"a\": 1}", &validation);
    /// assert!(!diagnosis.is_valid());
    /// assert!(diagnosis.to_string().contains("parsed and re-serialized"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn diagnose(&self, token: &str, body: &[u8], validation: &Validation<'_>) -> Diagnosis {
        self.diagnose_inner(token, Some(body), validation)
    }

    /// The diagnosis; with no body (not read yet), the body hash is not checked.
    fn diagnose_inner(
        &self,
        token: &str,
        body: Option<&[u8]>,
        validation: &Validation<'_>,
    ) -> Diagnosis {
        let (region, subject, now) = (validation.region(), validation.subject(), validation.now());
        let ring = self.key_ring();
        let mut d = Diagnosis {
            checks: Vec::with_capacity(8),
            hints: Vec::new(),
            matched: None,
            algorithm: None,
            issuer: None,
            window: None,
            subject: None,
            claimed_hash: None,
            body_hash: body.map(body_hash).unwrap_or_default(),
            body_len: body.map_or(0, <[u8]>::len),
            token_len: token.len(),
            token_id: None,
        };
        let push = |d: &mut Diagnosis, step, result: Option<Result<(), Error>>, verified| {
            let outcome = match result {
                Some(Ok(())) => Outcome::Passed,
                Some(Err(error)) => Outcome::Failed(error),
                None => Outcome::NotChecked,
            };
            d.checks.push(Check {
                step,
                outcome,
                verified,
            });
        };

        let keys = ring.keys_for(region);
        push(
            &mut d,
            Step::Keys,
            Some(keys.map(|_| ()).ok_or(Error::new(ErrorKind::NoSigningKeys))),
            true,
        );
        let parts = verify::split_token(token, self.max_token_bytes);
        push(
            &mut d,
            Step::Token,
            Some(parts.as_ref().map(|_| ()).map_err(Clone::clone)),
            true,
        );
        if let Err(e) = &parts {
            if e.kind() == ErrorKind::UnsupportedAlgorithm {
                d.algorithm = inspect_unverified(token)
                    .ok()
                    .and_then(|c| c.algorithm)
                    .map(Into::into);
            }
            d.hints.extend(token_hints(token));
        }
        let Ok(parts) = parts else {
            for step in [
                Step::Signature,
                Step::Claims,
                Step::Issuer,
                Step::Window,
                Step::Subject,
                Step::BodyHash,
            ] {
                push(&mut d, step, None, true);
            }
            return d;
        };

        let matched = keys.and_then(|keys| verify::match_key(keys, &parts));
        d.matched = matched;
        let verified = matched.is_some();
        match (keys, matched) {
            (Some(_), Some(key)) => {
                push(&mut d, Step::Signature, Some(Ok(())), true);
                if key == MatchedKey::Next {
                    d.hints.push(Hint::NextKey);
                }
            }
            (Some(keys), None) => {
                push(
                    &mut d,
                    Step::Signature,
                    Some(Err(Error::new(ErrorKind::InvalidSignature))),
                    true,
                );
                d.hints.extend(token_hints(token));
                d.hints.push(other_keys_hint(&ring, keys, &parts));
            }
            (None, _) => push(&mut d, Step::Signature, None, true),
        }

        let mut buffer =
            vec![MaybeUninit::uninit(); base64url::decoded_len(parts.payload_b64.len())];
        let raw = verify::decode_payload(parts.payload_b64, &mut buffer)
            .and_then(|payload| claims::parse_claims(payload).map(|raw| (payload, raw)));
        let raw = match raw {
            Ok((_, raw)) => {
                push(&mut d, Step::Claims, Some(Ok(())), verified);
                raw
            }
            Err(error) => {
                push(&mut d, Step::Claims, Some(Err(error)), verified);
                for step in [Step::Issuer, Step::Window, Step::Subject, Step::BodyHash] {
                    push(&mut d, step, None, verified);
                }
                return d;
            }
        };
        d.token_id = raw.jti.as_deref().map(Into::into);

        d.issuer = Some(raw.iss.as_ref().into());
        push(
            &mut d,
            Step::Issuer,
            Some(claims::check_issuer(&raw.iss)),
            verified,
        );

        let window = Window {
            not_before: raw.nbf,
            expires_at: raw.exp,
            now,
            tolerance: self.tolerance,
        };
        d.window = Some(window);
        let result = verify::check_window(now, raw.nbf, raw.exp, window.tolerance);
        match result.as_ref().map_err(Error::kind) {
            Err(ErrorKind::Expired) => d.hints.push(Hint::Expired(window.skew())),
            Err(ErrorKind::NotYetValid) => d.hints.push(Hint::NotYetValid(-window.skew())),
            _ => {}
        }
        push(&mut d, Step::Window, Some(result), verified);

        let result = subject::check(&raw.sub, subject);
        let (request, whole_url) = match subject {
            Subject::Url(url) => (url, true),
            Subject::PathAndQuery("") => ("/", false),
            Subject::PathAndQuery(target) | Subject::DecodedQuery { path: target, .. } => {
                (target, false)
            }
            Subject::NoHost => ("(no host in the request)", true),
            _ => ("(not checked)", false),
        };
        d.subject = Some(SubjectFacts {
            token: raw.sub.as_ref().into(),
            request: request.into(),
            whole_url,
        });
        if result.is_err() {
            d.hints.extend(subject_hints(&raw.sub, subject));
        }
        push(&mut d, Step::Subject, Some(result), verified);

        d.claimed_hash = Some(raw.body.as_ref().into());
        let result = match claimed_digest(&raw.body) {
            None => {
                d.hints.push(Hint::BodyClaimNotDigest);
                Err(Error::new(ErrorKind::BodyHashMismatch))
            }
            Some(_) if body.is_none() => {
                push(&mut d, Step::BodyHash, None, verified);
                return d;
            }
            Some(claimed)
                if digest_matches(&claimed, &Sha256::digest(body.unwrap_or_default())) =>
            {
                Ok(())
            }
            Some(claimed) => {
                let body = body.unwrap_or_default();
                d.hints.push(body_hint(body, &claimed));
                if !raw.body.ends_with('=') {
                    d.hints.push(Hint::BodyClaimUnpadded);
                }
                Err(Error::new(ErrorKind::BodyHashMismatch))
            }
        };
        push(&mut d, Step::BodyHash, Some(result), verified);
        d
    }
}

impl Diagnosis {
    /// Adds [`Hint::KeyWhitespace`] when the token's MAC matched no key but matches one of
    /// these key strings (the current and next keys as configured) with whitespace trimmed
    /// from or a newline added to it. The keys are used for this test only, never kept.
    #[must_use]
    pub fn with_key_text(mut self, token: &str, current: &str, next: &str) -> Self {
        let refused = self
            .error()
            .is_some_and(|e| e.kind() == ErrorKind::InvalidSignature);
        let Ok(parts) = verify::split_token(token, usize::MAX) else {
            return self;
        };
        if !refused {
            return self;
        }
        for (key, role) in [(current, MatchedKey::Current), (next, MatchedKey::Next)] {
            let trimmed = key.trim();
            let variants = [
                trimmed.to_owned(),
                format!("{trimmed}\n"),
                format!("{trimmed}\r\n"),
                format!("{trimmed} "),
            ];
            let matches = variants.iter().filter(|v| v.as_str() != key).any(|v| {
                SigningKeys::same_text(v)
                    .is_some_and(|keys| verify::match_key(&keys, &parts).is_some())
            });
            if matches {
                self.hints.insert(0, Hint::KeyWhitespace(role));
                break;
            }
        }
        self
    }
}

/// Which other keys the token matches, after it matched none of the configured ones.
fn other_keys_hint(
    ring: &crate::keys::KeyRing,
    used: &SigningKeys,
    parts: &verify::TokenParts<'_>,
) -> Hint {
    for region in ring.regions() {
        if let Some(keys) = ring.keys_for(Some(region)) {
            if verify::match_key(keys, parts).is_some() {
                return Hint::OtherRegion(region.into());
            }
        }
    }
    if let Some(keys) = ring.default_keys() {
        if !std::ptr::eq(keys, used) && verify::match_key(keys, parts).is_some() {
            return Hint::OtherRegion("default".into());
        }
    }
    if !used.is_dev() && verify::match_key(&SigningKeys::dev(), parts).is_some() {
        return Hint::DevKeys;
    }
    Hint::WrongKeys
}

/// Hints for a token pasted with what surrounds it in a log or a header dump.
fn token_hints(token: &str) -> Option<Hint> {
    let quoted = |q: char| token.len() >= 2 && token.starts_with(q) && token.ends_with(q);
    if quoted('"') || quoted('\'') {
        Some(Hint::TokenQuoted)
    } else if token
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
    {
        Some(Hint::TokenBearer)
    } else if token.contains(char::is_whitespace) {
        Some(Hint::TokenWhitespace)
    } else {
        None
    }
}

/// Why a `sub` may differ from the request, beyond "it differs".
fn subject_hints(sub: &str, subject: Subject<'_>) -> Vec<Hint> {
    let sub_target = path_and_query(sub);
    match subject {
        Subject::Url(url) => {
            let request_target = path_and_query(url);
            match (sub_target, request_target) {
                (_, None) => vec![Hint::RequestNotAbsolute],
                (Some(a), Some(b)) if a == b => vec![Hint::ProxyRewrite],
                (Some(a), Some(b)) => target_hints(a, b),
                (None, Some(_)) => vec![Hint::SubjectNotAbsolute],
            }
        }
        Subject::PathAndQuery(target) => {
            let target = if target.is_empty() { "/" } else { target };
            sub_target.map_or_else(
                || vec![Hint::SubjectNotAbsolute],
                |a| target_hints(a, target),
            )
        }
        _ => Vec::new(),
    }
}

/// Hints for two request targets (path and query) that differ.
fn target_hints(token: &str, request: &str) -> Vec<Hint> {
    let split = |t: &'_ str| -> (String, Option<String>) {
        match t.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (t.to_owned(), None),
        }
    };
    let (token_path, token_query) = split(token);
    let (request_path, request_query) = split(request);
    if token_path == request_path {
        vec![Hint::QueryDiffers]
    } else if token_path.trim_end_matches('/') == request_path.trim_end_matches('/') {
        vec![Hint::TrailingSlash]
    } else if token_path.ends_with(&request_path) && token_query == request_query {
        vec![Hint::PrefixStripped(
            token_path[..token_path.len() - request_path.len()].into(),
        )]
    } else {
        Vec::new()
    }
}

/// Why the body hash may differ: an edit of the body that makes the claimed digest match.
fn body_hint(body: &[u8], claimed: &[u8; 32]) -> Hint {
    let matches =
        |candidate: &[u8]| candidate != body && digest_matches(claimed, &Sha256::digest(candidate));
    if let Some(trimmed) = body.strip_suffix(b"\n") {
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if matches(trimmed) {
            return Hint::BodyNewlineAdded;
        }
    }
    let mut with_newline = body.to_vec();
    with_newline.push(b'\n');
    if matches(&with_newline) {
        return Hint::BodyNewlineRemoved;
    }
    let mut crlf_to_lf = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some((&b, tail)) = rest.split_first() {
        if !(b == b'\r' && tail.first() == Some(&b'\n')) {
            crlf_to_lf.push(b);
        }
        rest = tail;
    }
    if matches(&crlf_to_lf) {
        return Hint::BodyCrlf;
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        if serde_json::to_vec(&json).is_ok_and(|compact| matches(&compact)) {
            return Hint::BodyReserializedCompact;
        }
        if serde_json::to_vec_pretty(&json).is_ok_and(|pretty| matches(&pretty)) {
            return Hint::BodyReserializedPretty;
        }
    }
    Hint::BodyNotRaw
}
