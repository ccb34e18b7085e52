//! `qstash-receiver verify`: the verdict of the real [`Verifier`], and, for a refusal, which
//! check failed and why (expected vs actual), read from the token with
//! [`inspect_unverified`] — which only explains, never decides.

use std::fmt::Write as _;
use std::time::Duration;

use qstash_receiver::dangerous::{UnverifiedClaims, inspect_unverified};
use qstash_receiver::{
    Claims, ENV_CURRENT, ENV_NEXT, Error, ErrorKind, MatchedKey, SigningKeys, Subject, Verifier,
    body_hash, path_and_query,
};

use crate::body::BodyArgs;
use crate::clock::unix_now;
use crate::error::{CliError, Verdict};
use crate::keys::{self, Key, KeySource};

/// Arguments of `verify`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Keys: --current-key and --next-key, else $QSTASH_CURRENT_SIGNING_KEY and \
$QSTASH_NEXT_SIGNING_KEY, else the public dev-server keys (with a notice on standard error).

Exit code 0 when the token is valid, 1 when it is not (the output says which check failed and \
why), 2 for a usage error.

Why does my signature fail behind my proxy? Run verify with the `Upstash-Signature` value and \
raw body your server logged, and --url set to the URL your server thinks it serves: a subject \
mismatch prints both URLs.

Example:
  qstash-receiver verify --signature \"$TOKEN\" --url https://app.example.com/api/qstash --body-file body.json")]
pub(crate) struct VerifyArgs {
    /// The `Upstash-Signature` header's value (a JWT).
    #[arg(long, value_name = "TOKEN")]
    signature: String,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    body: BodyArgs,
    /// Accept tokens up to this many seconds outside their validity window (clock skew).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    tolerance: u64,
    /// Verify as if it were this time, unix seconds (default: now).
    #[arg(long, value_name = "UNIX_SECONDS", allow_negative_numbers = true)]
    now: Option<i64>,
    /// The current signing key (`sig_...`).
    #[arg(long, value_name = "KEY")]
    current_key: Option<String>,
    /// The next signing key (`sig_...`).
    #[arg(long, value_name = "KEY")]
    next_key: Option<String>,
}

/// What the token's `sub` is compared with: `--url` or `--path`, exactly one.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct TargetArgs {
    /// The whole URL the request was sent to; `sub` must equal it exactly.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Compare only the path and query, as the adapters do by default (survives proxies that
    /// change scheme, host or port): a request target like `/api/qstash?x=1`, or a URL whose
    /// path and query are used.
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
}

impl TargetArgs {
    fn subject(&self) -> Result<Subject<'_>, CliError> {
        match (&self.url, &self.path) {
            (Some(url), _) => Ok(Subject::Url(url)),
            (None, Some(path)) if path.is_empty() || path.starts_with(['/', '?']) => {
                Ok(Subject::PathAndQuery(path))
            }
            (None, Some(path)) => path_and_query(path).map(Subject::PathAndQuery).ok_or_else(|| {
                CliError::usage(format!(
                    "--path `{path}` is neither a request target starting with `/` nor an absolute URL"
                ))
            }),
            (None, None) => Err(CliError::usage("give --url or --path")),
        }
    }
}

/// Runs `verify`: prints the verdict and explanation on standard output.
pub(crate) fn run(
    args: &VerifyArgs,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Verdict, CliError> {
    let subject = args.target.subject()?;
    let body = args.body.read()?;
    let (current, next) = keys::key_pair(
        args.current_key.as_deref(),
        args.next_key.as_deref(),
        lookup,
    )?;
    if current.source() == KeySource::Dev {
        eprintln!(
            "{}",
            keys::dev_notice(
                "--current-key, --next-key",
                &format!("{ENV_CURRENT}, {ENV_NEXT}")
            )
        );
    }
    let check = Check {
        token: args.signature.trim(),
        body: &body,
        subject,
        now: args.now.unwrap_or_else(unix_now),
        tolerance: args.tolerance,
    };
    let (verdict, text) = check.report(&current, &next)?;
    print!("{text}");
    Ok(verdict)
}

/// One verification to run and explain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check<'a> {
    /// The token.
    pub(crate) token: &'a str,
    /// The raw body.
    pub(crate) body: &'a [u8],
    /// What `sub` is compared with.
    pub(crate) subject: Subject<'a>,
    /// Unix seconds.
    pub(crate) now: i64,
    /// Clock tolerance, seconds.
    pub(crate) tolerance: u64,
}

/// The state of one check in the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Ok,
    /// The check the verifier refused the token at.
    Failed,
    /// A later check that fails as well (read from the verified-MAC claims).
    AlsoFails,
    /// The MAC did not match, so this is what an unverified claim says.
    Unverified,
    /// A check that fails on the unverified claims.
    UnverifiedFails,
}

impl Mark {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "FAILED",
            Self::AlsoFails => "also fails",
            Self::Unverified => "unverified",
            Self::UnverifiedFails => "would fail",
        }
    }
}

impl Check<'_> {
    fn verifier(&self, keys: SigningKeys) -> Verifier {
        Verifier::new(keys).clock_tolerance(Duration::from_secs(self.tolerance))
    }

    /// The verdict and its explanation, as printed.
    pub(crate) fn report(&self, current: &Key, next: &Key) -> Result<(Verdict, String), CliError> {
        let keys = keys::signing_keys(current, next)?;
        let result = self
            .verifier(keys)
            .verify_at(self.token, self.body, self.subject, self.now);
        let mut out = String::new();
        match result {
            Ok(claims) => {
                self.explain_valid(&claims, current, next, &mut out);
                Ok((Verdict::Success, out))
            }
            Err(error) => {
                self.explain_invalid(&error, current, next, &mut out)?;
                Ok((Verdict::Failure, out))
            }
        }
    }

    fn explain_valid(&self, claims: &Claims, current: &Key, next: &Key, out: &mut String) {
        let key = match claims.matched_key() {
            MatchedKey::Current => format!("the current key ({})", current.source()),
            MatchedKey::Next => format!("the next key ({})", next.source()),
        };
        let _ = writeln!(out, "valid: signed with {key}");
        let _ = writeln!(
            out,
            "  subject    {} ({})",
            claims.subject(),
            self.compared_as()
        );
        let _ = writeln!(
            out,
            "  window     valid from {} until {} (exclusive); now {}, tolerance {} s",
            claims.not_before(),
            claims.expires_at(),
            self.now,
            self.tolerance
        );
        let _ = writeln!(
            out,
            "  body hash  {} ({} bytes)",
            claims.body_hash(),
            self.body.len()
        );
        if let Some(jti) = claims.token_id() {
            let _ = writeln!(out, "  token id   {jti}");
        }
        if claims.matched_key() == MatchedKey::Next {
            let _ = writeln!(
                out,
                "note: the token matches the next key: QStash signs with it after a key rotation; make it your current key."
            );
        }
    }

    fn explain_invalid(
        &self,
        error: &Error,
        current: &Key,
        next: &Key,
        out: &mut String,
    ) -> Result<(), CliError> {
        let kind = error.kind();
        let _ = writeln!(out, "invalid: {error} [{kind}]");
        if let Some(hint) = token_hint(self.token) {
            let _ = writeln!(out, "  hint: {hint}");
        }
        let mac_matched = matches!(
            kind,
            ErrorKind::InvalidClaims
                | ErrorKind::InvalidIssuer
                | ErrorKind::Expired
                | ErrorKind::NotYetValid
                | ErrorKind::SubjectMismatch
                | ErrorKind::BodyHashMismatch
        );
        let claims = inspect_unverified(self.token);
        // The signature line.
        if mac_matched {
            // Which key: the real verifier again, with the current key in both places.
            let only_current = keys::signing_keys(current, current)?;
            let with_current = self.verifier(only_current).verify_at(
                self.token,
                self.body,
                self.subject,
                self.now,
            );
            let key = match with_current {
                Err(e) if e.kind() == ErrorKind::InvalidSignature => {
                    format!("the next key ({})", next.source())
                }
                _ => format!("the current key ({})", current.source()),
            };
            let _ = writeln!(out, "  signature  ok: matches {key}");
        } else if kind == ErrorKind::InvalidSignature {
            let _ = writeln!(
                out,
                "  signature  FAILED: matches neither the current key ({}) nor the next key ({})",
                current.source(),
                next.source()
            );
        } else {
            let _ = writeln!(
                out,
                "  signature  not checked: the token was refused before"
            );
        }
        let Ok(claims) = claims else {
            return Ok(());
        };
        let mark = |this: bool, fails: bool| match (this, fails, mac_matched) {
            (true, _, _) => Mark::Failed,
            (false, false, true) => Mark::Ok,
            (false, true, true) => Mark::AlsoFails,
            (false, false, false) => Mark::Unverified,
            (false, true, false) => Mark::UnverifiedFails,
        };
        if !mac_matched {
            let _ = writeln!(
                out,
                "  the claims below are read without verification, to help find the cause:"
            );
        }
        if let Some(alg) = &claims.algorithm {
            if kind == ErrorKind::UnsupportedAlgorithm {
                let _ = writeln!(out, "  algorithm  FAILED: `{alg}`, only HS256 is accepted");
            }
        }
        match claims.issuer.as_deref() {
            Some(iss) => {
                let fails = iss != "Upstash";
                let m = mark(kind == ErrorKind::InvalidIssuer, fails);
                let expected = if fails { " (expected \"Upstash\")" } else { "" };
                let _ = writeln!(out, "  issuer     {}: {iss:?}{expected}", m.label());
            }
            None => {
                let _ = writeln!(out, "  issuer     missing or not a string");
            }
        }
        self.explain_window(&claims, kind, mark, out);
        self.explain_subject(&claims, kind, mark, out);
        self.explain_body(&claims, kind, mark, out);
        if kind == ErrorKind::InvalidSignature {
            self.explain_signature(current, out);
        }
        Ok(())
    }

    fn explain_window(
        &self,
        claims: &UnverifiedClaims,
        kind: ErrorKind,
        mark: impl Fn(bool, bool) -> Mark,
        out: &mut String,
    ) {
        let (Some(nbf), Some(exp)) = (claims.not_before, claims.expires_at) else {
            let _ = writeln!(out, "  window     `nbf` or `exp` missing or not an integer");
            return;
        };
        let tolerance = i64::try_from(self.tolerance).unwrap_or(i64::MAX);
        let early = self.now < nbf.saturating_sub(tolerance);
        let late = self.now >= exp.saturating_add(tolerance);
        let this = matches!(kind, ErrorKind::Expired | ErrorKind::NotYetValid);
        let m = mark(this, early || late);
        let _ = writeln!(
            out,
            "  window     {}: valid from {nbf} (nbf) until {exp} (exp, exclusive); now {}, tolerance {} s",
            m.label(),
            self.now,
            self.tolerance
        );
        if late {
            let _ = writeln!(
                out,
                "             expired {} s ago (exp + tolerance <= now). QStash tokens live 300 s: a delivery replayed later, or a clock running fast here; --tolerance accepts clock skew, --now checks another time",
                self.now.saturating_sub(exp.saturating_add(tolerance))
            );
        } else if early {
            let _ = writeln!(
                out,
                "             valid only in {} s (now < nbf - tolerance): the clock here is behind; --tolerance accepts clock skew",
                nbf.saturating_sub(tolerance).saturating_sub(self.now)
            );
        }
    }

    fn compared_as(&self) -> &'static str {
        match self.subject {
            Subject::Url(_) => "compared as a whole URL, --url",
            Subject::PathAndQuery(_) => "compared as path and query, --path",
            _ => "not compared",
        }
    }

    fn explain_subject(
        &self,
        claims: &UnverifiedClaims,
        kind: ErrorKind,
        mark: impl Fn(bool, bool) -> Mark,
        out: &mut String,
    ) {
        let Some(sub) = claims.subject.as_deref() else {
            let _ = writeln!(out, "  subject    `sub` missing or not a string");
            return;
        };
        // The verifier's own comparison, so the explanation never disagrees with the verdict.
        let fails = !self.subject.matches(sub);
        let actual = match self.subject {
            Subject::Url(url) => url,
            Subject::PathAndQuery("") => "/",
            Subject::PathAndQuery(target) => target,
            _ => "",
        };
        let m = mark(kind == ErrorKind::SubjectMismatch, fails);
        if !fails {
            let _ = writeln!(
                out,
                "  subject    {}: {sub} ({})",
                m.label(),
                self.compared_as()
            );
            return;
        }
        let _ = writeln!(out, "  subject    {} ({})", m.label(), self.compared_as());
        let _ = writeln!(out, "             expected (token `sub`): {sub}");
        let _ = writeln!(out, "             actual (request):       {actual}");
        for hint in subject_hints(sub, self.subject) {
            let _ = writeln!(out, "             hint: {hint}");
        }
    }

    fn explain_body(
        &self,
        claims: &UnverifiedClaims,
        kind: ErrorKind,
        mark: impl Fn(bool, bool) -> Mark,
        out: &mut String,
    ) {
        let Some(claimed) = claims.body_hash.as_deref() else {
            let _ = writeln!(out, "  body hash  `body` missing or not a string");
            return;
        };
        let actual = body_hash(self.body);
        let same = |hash: &str| hash.trim_end_matches('=') == claimed.trim_end_matches('=');
        let fails = !same(&actual);
        let m = mark(kind == ErrorKind::BodyHashMismatch, fails);
        if !fails {
            let _ = writeln!(
                out,
                "  body hash  {}: {actual} ({} bytes)",
                m.label(),
                self.body.len()
            );
            return;
        }
        let _ = writeln!(out, "  body hash  {}", m.label());
        let _ = writeln!(out, "             expected (token `body`): {claimed}");
        let _ = writeln!(
            out,
            "             actual (SHA-256 of the {} bytes given): {actual}",
            self.body.len()
        );
        match body_hint(self.body, same) {
            Some(hint) => {
                let _ = writeln!(out, "             hint: {hint}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "             hint: the body must be the raw bytes as received, before any parsing, re-encoding or decompression"
                );
            }
        }
    }

    fn explain_signature(&self, current: &Key, out: &mut String) {
        if current.source() != KeySource::Dev {
            let dev = self.verifier(SigningKeys::dev()).verify_at(
                self.token,
                self.body,
                Subject::DangerouslySkipCheck,
                self.now,
            );
            if !matches!(&dev, Err(e) if e.kind() == ErrorKind::InvalidSignature) {
                let _ = writeln!(
                    out,
                    "  hint: the token matches the public dev-server keys: it comes from the local QStash dev server (or a test); verify it with the dev keys (set no key)"
                );
                return;
            }
        }
        let _ = writeln!(
            out,
            "  hint: use this QStash account's current and next signing keys (console, Signing keys), and pass the token whole, as received"
        );
    }
}

/// A hint for a token pasted with what surrounds it in a log or a header dump.
fn token_hint(token: &str) -> Option<&'static str> {
    let quoted = |q: char| token.len() >= 2 && token.starts_with(q) && token.ends_with(q);
    if quoted('"') || quoted('\'') {
        Some("the token is quoted: pass it without the surrounding quotes")
    } else if token
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
    {
        Some(
            "the token starts with `Bearer `: QStash sends `Upstash-Signature` without a scheme; \
             pass only the token",
        )
    } else if token.contains(char::is_whitespace) {
        Some("the token contains whitespace: it is one line of three base64url segments")
    } else {
        None
    }
}

/// Why a `sub` may differ from the request, beyond "it differs".
fn subject_hints(sub: &str, subject: Subject<'_>) -> Vec<String> {
    let mut hints = Vec::new();
    let sub_target = path_and_query(sub);
    match subject {
        Subject::Url(url) => {
            let request_target = path_and_query(url);
            if request_target.is_none() {
                hints.push("--url is not an absolute URL (scheme://host/path)".to_owned());
            } else if sub_target.is_some() && sub_target == request_target {
                hints.push(
                    "path and query agree, scheme, host or port differ: a proxy or load balancer (TLS termination, internal host or port) rewrote the URL. Compare path and query only (--path, the adapters' default) or configure the adapter's public base URL to the URL QStash calls"
                        .to_owned(),
                );
            } else if let (Some(a), Some(b)) = (sub_target, request_target) {
                hints.extend(target_hints(a, b));
            }
        }
        Subject::PathAndQuery(target) => {
            let target = if target.is_empty() { "/" } else { target };
            if let Some(a) = sub_target {
                hints.extend(target_hints(a, target));
            } else {
                hints.push("the token's `sub` is not an absolute URL".to_owned());
            }
        }
        _ => {}
    }
    hints
}

/// Hints for two request targets (path and query) that differ.
fn target_hints(token: &str, request: &str) -> Vec<String> {
    let split = |t: &str| -> (String, Option<String>) {
        match t.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (t.to_owned(), None),
        }
    };
    let (token_path, token_query) = split(token);
    let (request_path, request_query) = split(request);
    let mut hints = Vec::new();
    if token_path == request_path {
        hints.push(
            "the paths agree, the query strings differ: QStash signs the URL with the query it was published with"
                .to_owned(),
        );
    } else if token_path.trim_end_matches('/') == request_path.trim_end_matches('/') {
        hints.push("the paths differ only in a trailing `/`".to_owned());
    } else if token_path.ends_with(&request_path) && token_query == request_query {
        hints.push(format!(
            "the token's path ends with the request's: a path prefix (`{}`) was stripped by a proxy or a nested router before the check",
            &token_path[..token_path.len() - request_path.len()]
        ));
    }
    hints
}

/// Why the body hash may differ: an edit that makes it match.
fn body_hint(body: &[u8], matches: impl Fn(&str) -> bool) -> Option<String> {
    let mut candidates: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some(trimmed) = body.strip_suffix(b"\n") {
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        candidates.push((
            "the body without its trailing newline matches: something (echo, an editor, a heredoc) added one; use printf or --body",
            trimmed.to_vec(),
        ));
    }
    let mut crlf_to_lf = Vec::with_capacity(body.len());
    let mut previous_cr = false;
    for &b in body {
        if previous_cr && b != b'\n' {
            crlf_to_lf.push(b'\r');
        }
        previous_cr = b == b'\r';
        if !previous_cr {
            crlf_to_lf.push(b);
        }
    }
    if previous_cr {
        crlf_to_lf.push(b'\r');
    }
    if crlf_to_lf != body {
        candidates.push((
            "the body with CRLF line ends turned into LF matches: line ends were converted (git autocrlf, a Windows editor)",
            crlf_to_lf,
        ));
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Ok(compact) = serde_json::to_vec(&json) {
            candidates.push((
                "the body re-serialized as compact JSON matches: something parsed and re-encoded the JSON; hash the raw bytes as received",
                compact,
            ));
        }
    }
    candidates
        .into_iter()
        .find(|(_, candidate)| candidate.as_slice() != body && matches(&body_hash(candidate)))
        .map(|(hint, _)| hint.to_owned())
}

#[cfg(test)]
mod tests {
    use qstash_receiver::{DEV_CURRENT_SIGNING_KEY, Signer};

    use super::*;

    fn keys() -> (Key, Key) {
        keys::key_pair(Some("sig_current"), Some("sig_next"), |_| None).unwrap()
    }

    fn report(token: &str, body: &[u8], subject: Subject<'_>, now: i64) -> (Verdict, String) {
        let (current, next) = keys();
        Check {
            token,
            body,
            subject,
            now,
            tolerance: 0,
        }
        .report(&current, &next)
        .unwrap()
    }

    const URL: &str = "https://app.example.com/api/hook?team=1";

    fn token(key: &str, body: &[u8], now: i64) -> String {
        Signer::new(key).unwrap().sign_at(URL, body, now)
    }

    #[test]
    fn valid_names_the_key() {
        let (verdict, text) = report(
            &token("sig_next", b"hi", 1000),
            b"hi",
            Subject::Url(URL),
            1000,
        );
        assert_eq!(verdict, Verdict::Success, "{text}");
        assert!(
            text.starts_with("valid: signed with the next key (--next-key)"),
            "{text}"
        );
        assert!(
            text.contains("note: the token matches the next key"),
            "{text}"
        );
    }

    #[test]
    fn a_proxy_rewrite_is_recognised() {
        let token = token("sig_current", b"hi", 1000);
        let request = "http://10.0.0.7:8080/api/hook?team=1";
        let (verdict, text) = report(&token, b"hi", Subject::Url(request), 1000);
        assert_eq!(verdict, Verdict::Failure);
        assert!(text.contains("[subject_mismatch]"), "{text}");
        assert!(
            text.contains("signature  ok: matches the current key"),
            "{text}"
        );
        assert!(
            text.contains(&format!("expected (token `sub`): {URL}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("actual (request):       {request}")),
            "{text}"
        );
        assert!(text.contains("path and query agree"), "{text}");
        let (verdict, _) = report(
            &token,
            b"hi",
            Subject::PathAndQuery("/api/hook?team=1"),
            1000,
        );
        assert_eq!(verdict, Verdict::Success);
        let (_, text) = report(&token, b"hi", Subject::PathAndQuery("/hook?team=1"), 1000);
        assert!(
            text.contains("a path prefix (`/api`) was stripped"),
            "{text}"
        );
        let (_, text) = report(&token, b"hi", Subject::PathAndQuery("/api/hook"), 1000);
        assert!(text.contains("the query strings differ"), "{text}");
    }

    #[test]
    fn several_failures_are_all_listed_in_order() {
        let token = token("sig_current", b"hi", 1000);
        let (_, text) = report(&token, b"ho", Subject::Url("https://other.example/"), 5000);
        assert!(text.starts_with("invalid: token expired"), "{text}");
        assert!(text.contains("window     FAILED"), "{text}");
        assert!(text.contains("expired 3700 s ago"), "{text}");
        assert!(text.contains("subject    also fails"), "{text}");
        assert!(text.contains("body hash  also fails"), "{text}");
    }

    /// Regression: the explanation compared `sub` byte for byte while the verifier treats an
    /// empty path as `/`, so a pathless `sub` with a query was shown as a mismatch.
    #[test]
    fn the_subject_line_uses_the_verifiers_comparison() {
        let sub = "https://app.example.com?team=1";
        let token = Signer::new("sig_current")
            .unwrap()
            .sign_at(sub, b"hi", 1000);
        let (verdict, text) = report(&token, b"hi", Subject::PathAndQuery("/?team=1"), 5000);
        assert_eq!(verdict, Verdict::Failure, "expired");
        assert!(!text.contains("subject    also fails"), "{text}");
        assert!(text.contains("subject    ok"), "{text}");
        let (_, text) = report(&token, b"hi", Subject::PathAndQuery("/?team=2"), 5000);
        assert!(text.contains("subject    also fails"), "{text}");
    }

    #[test]
    fn pasted_tokens_get_a_hint() {
        let token = token("sig_current", b"hi", 1000);
        let cases = [
            (format!("\"{token}\""), "quoted"),
            (format!("'{token}'"), "quoted"),
            (format!("Bearer {token}"), "`Bearer `"),
            (format!("{token} extra"), "whitespace"),
        ];
        for (pasted, hint) in cases {
            let (verdict, text) = report(&pasted, b"hi", Subject::Url(URL), 1000);
            assert_eq!(verdict, Verdict::Failure, "{pasted}");
            assert!(
                text.contains("hint: ") && text.contains(hint),
                "{hint}: {text}"
            );
        }
        let (_, text) = report(&token, b"ho", Subject::Url(URL), 1000);
        assert!(!text.contains("  hint: the token"), "{text}");
    }

    #[test]
    fn body_hints() {
        let json = br#"{"a":1,"b":[true]}"#;
        let token = token("sig_current", json, 1000);
        let cases: [(&[u8], &str); 3] = [
            (b"{\"a\":1,\"b\":[true]}\n", "without its trailing newline"),
            (b"{\"a\": 1, \"b\": [true]}", "compact JSON"),
            (b"{\"a\":2}", "raw bytes as received"),
        ];
        for (body, hint) in cases {
            let (verdict, text) = report(&token, body, Subject::Url(URL), 1000);
            assert_eq!(verdict, Verdict::Failure);
            assert!(text.contains("body hash  FAILED"), "{text}");
            assert!(text.contains(&body_hash(json)), "{text}");
            assert!(text.contains(&body_hash(body)), "{text}");
            assert!(text.contains(hint), "{hint}: {text}");
        }
        let lines = b"a\r\nb";
        let token = Signer::new("sig_current")
            .unwrap()
            .sign_at(URL, b"a\nb", 1000);
        let (_, text) = report(&token, lines, Subject::Url(URL), 1000);
        assert!(text.contains("CRLF"), "{text}");
    }

    #[test]
    fn wrong_keys_show_unverified_claims_and_spot_dev_tokens() {
        let dev_token = token(DEV_CURRENT_SIGNING_KEY, b"hi", 1000);
        let (verdict, text) = report(&dev_token, b"hi", Subject::Url(URL), 1000);
        assert_eq!(verdict, Verdict::Failure);
        assert!(
            text.contains("signature  FAILED: matches neither"),
            "{text}"
        );
        assert!(text.contains("read without verification"), "{text}");
        assert!(text.contains("subject    unverified"), "{text}");
        assert!(
            text.contains("matches the public dev-server keys"),
            "{text}"
        );
        assert!(!text.contains("sig_current"), "{text}");
        let other = token("sig_other", b"hi", 1000);
        let (_, text) = report(&other, b"x", Subject::Url(URL), 1000);
        assert!(text.contains("body hash  would fail"), "{text}");
        assert!(
            text.contains("account's current and next signing keys"),
            "{text}"
        );
    }

    #[test]
    fn malformed_and_foreign_algorithms() {
        let (verdict, text) = report("not-a-token", b"", Subject::Url(URL), 0);
        assert_eq!(verdict, Verdict::Failure);
        assert!(text.contains("[malformed_token]"), "{text}");
        assert!(text.contains("not checked"), "{text}");
        // {"alg":"none"} . {"iss":"Upstash"} . (empty)
        let (_, text) = report(
            "eyJhbGciOiJub25lIn0.eyJpc3MiOiJVcHN0YXNoIn0.",
            b"",
            Subject::Url(URL),
            0,
        );
        assert!(text.contains("[unsupported_algorithm]"), "{text}");
        assert!(text.contains("`none`"), "{text}");
    }

    #[test]
    fn path_argument_takes_a_target_or_a_url() {
        let target = |path: &str| TargetArgs {
            url: None,
            path: Some(path.to_owned()),
        };
        assert_eq!(
            target("/a?b").subject().unwrap(),
            Subject::PathAndQuery("/a?b")
        );
        assert_eq!(
            target("https://x.example/a?b").subject().unwrap(),
            Subject::PathAndQuery("/a?b")
        );
        assert!(matches!(target("a/b").subject(), Err(CliError::Usage(_))));
    }
}
