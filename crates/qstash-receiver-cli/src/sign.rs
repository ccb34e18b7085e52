//! `qstash-receiver sign`: print a token as QStash would make it.

use qstash_receiver::{
    keys::ENV_CURRENT, keys::ENV_NEXT, sign::new_token_id, subject::path_and_query,
};

use crate::body::BodyArgs;
use crate::clock::unix_now;
use crate::error::{CliError, Verdict};
use crate::keys::{self, KeySource};

/// Arguments of `sign`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
The key is --key, else $QSTASH_CURRENT_SIGNING_KEY ($QSTASH_NEXT_SIGNING_KEY with --next), else \
the public dev-server key (with a notice on standard error).

Example:
  qstash-receiver sign --url http://localhost:3000/api/qstash --body '{\"order\":42}'")]
pub(crate) struct SignArgs {
    /// The destination URL: the token's `sub` claim.
    #[arg(long, value_name = "URL")]
    url: String,
    #[command(flatten)]
    body: BodyArgs,
    /// The signing key (`sig_...`).
    #[arg(long, value_name = "KEY", conflicts_with = "next")]
    key: Option<String>,
    /// Sign with the next key ($QSTASH_NEXT_SIGNING_KEY or the dev next key), as QStash does
    /// after a key rotation.
    #[arg(long)]
    next: bool,
    /// Issue the token at this time, unix seconds (default: now). It is valid for 300 s.
    #[arg(long, value_name = "UNIX_SECONDS", allow_negative_numbers = true)]
    now: Option<i64>,
    /// The token's `jti` (default: a fresh `jwt_...`), for reproducible tokens.
    #[arg(long, value_name = "ID")]
    token_id: Option<String>,
}

/// Runs `sign`: prints the token on standard output.
pub(crate) fn run(
    args: &SignArgs,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Verdict, CliError> {
    if path_and_query(&args.url).is_none() {
        return Err(CliError::usage(format!(
            "--url `{}` is not an absolute URL like https://app.example.com/api/qstash",
            args.url
        )));
    }
    let body = args.body.read()?;
    let key = keys::signing_key(args.key.as_deref(), args.next, lookup)?;
    if key.source() == KeySource::Dev {
        let var = if args.next { ENV_NEXT } else { ENV_CURRENT };
        eprintln!("{}", keys::dev_notice("--key", var));
    }
    let signer = key.signer()?;
    let now = args.now.unwrap_or_else(unix_now);
    let jti = args.token_id.clone().unwrap_or_else(new_token_id);
    println!("{}", signer.sign_with_id(&args.url, &body, now, &jti));
    Ok(Verdict::Success)
}
