//! `qstash-receiver verify`: the core's [`Diagnosis`] of a token, printed. Every rule (which
//! check failed, why, and what to change) is the core's; this module only gathers the inputs
//! and says where the keys came from.

use std::fmt::Write as _;
use std::time::Duration;

use qstash_receiver::{
    Diagnosis, Subject, Validation, Verifier, keys::ENV_CURRENT, keys::ENV_NEXT,
    subject::path_and_query,
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

impl Check<'_> {
    /// The verdict and its explanation, as printed: the core's [`Diagnosis`] of the token
    /// (every check, with hints), and where the keys came from.
    pub(crate) fn report(&self, current: &Key, next: &Key) -> Result<(Verdict, String), CliError> {
        let verifier = Verifier::new(keys::signing_keys(current, next)?)
            .clock_tolerance(Duration::from_secs(self.tolerance));
        let diagnosis: Diagnosis = verifier
            .diagnose(
                self.token,
                self.body,
                &Validation::new(self.subject).at(self.now),
            )
            .with_key_text(self.token, current.value(), next.value());
        let mut out = diagnosis.to_string();
        let _ = writeln!(
            out,
            "  keys: current from {}, next from {}",
            current.source(),
            next.source()
        );
        let verdict = if diagnosis.is_valid() {
            Verdict::Success
        } else {
            Verdict::Failure
        };
        Ok((verdict, out))
    }
}

#[cfg(test)]
mod tests {
    use qstash_receiver::{Signer, digest::body_hash, keys::DEV_CURRENT_SIGNING_KEY};

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
            text.starts_with("valid: signed with the next key")
                && text.contains("next from --next-key"),
            "{text}"
        );
        assert!(
            text.contains("hint: the token matches the next key"),
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
            (b"{\"a\": 1, \"b\": [true]}", "parsed and re-serialized"),
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
