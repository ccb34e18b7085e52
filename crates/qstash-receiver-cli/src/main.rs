//! `qstash-receiver`: sign, verify and deliver Upstash QStash messages locally, and a demo of
//! a verifying receiver. See `qstash-receiver --help`.

mod body;
mod clock;
mod demo;
mod dev;
mod error;
mod keys;
mod progress;
mod send;
mod sign;
mod transport;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Test Upstash QStash receivers locally: sign and verify `Upstash-Signature` tokens,
/// deliver messages like QStash does (signed, retried, with callbacks), and run a local QStash
/// that the official clients publish to.
#[derive(Debug, Parser)]
#[command(name = "qstash-receiver", version, propagate_version = true)]
#[command(after_help = "Exit codes: 0 success, 1 delivery or verification failed, 2 usage error.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a verifying axum receiver on a loopback port and deliver a set of good and bad
    /// messages to it; print what it answered and saw.
    Demo(demo::DemoArgs),
    /// Print an `Upstash-Signature` token for a body and URL, as QStash makes it.
    Sign(sign::SignArgs),
    /// Verify a token and say which check failed and why (subject, expiry, key, body hash).
    Verify(verify::VerifyArgs),
    /// Deliver a message like QStash: signed, retried with backoff, then the callbacks.
    Send(send::SendArgs),
    /// Run a local QStash (127.0.0.1:8080) that the official clients publish to: deliveries,
    /// retries, callbacks, DLQ, delays, schedules, URL groups, queues, deduplication.
    Dev(dev::DevArgs),
}

fn main() -> ExitCode {
    // clap prints usage errors and exits with 2, and prints --help / --version and exits with 0.
    let cli = Cli::parse();
    let lookup = keys::env_lookup;
    let result = match &cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Sign(args) => sign::run(args, lookup),
        Command::Verify(args) => verify::run(args, lookup),
        Command::Send(args) => send::run(args, lookup),
        Command::Dev(args) => dev::run(args),
    };
    match result {
        Ok(verdict) => verdict.exit_code(),
        Err(error) => {
            let prefix = match error {
                CliError::Usage(_) => "error",
                CliError::Failed(_) => "failed",
            };
            eprintln!("{prefix}: {error}");
            error.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_each_command() {
        let cli = Cli::try_parse_from([
            "qstash-receiver",
            "sign",
            "--url",
            "http://a/",
            "--body",
            "x",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Sign(_)));
        let err = Cli::try_parse_from([
            "qstash-receiver",
            "sign",
            "--url",
            "http://a/",
            "--body",
            "x",
            "--body-file",
            "f",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err =
            Cli::try_parse_from(["qstash-receiver", "sign", "--url", "http://a/"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let err = Cli::try_parse_from([
            "qstash-receiver",
            "verify",
            "--signature",
            "t",
            "--body",
            "x",
            "--url",
            "http://a/",
            "--path",
            "/",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let cli = Cli::try_parse_from([
            "qstash-receiver",
            "verify",
            "--signature",
            "t",
            "--body",
            "x",
            "--path",
            "/",
            "--now",
            "-5",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Verify(_)));
        let cli = Cli::try_parse_from([
            "qstash-receiver",
            "send",
            "http://a/",
            "--body",
            "x",
            "-H",
            "A: b",
            "--header",
            "C:d",
            "--retries",
            "0",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Send(_)));
        for bad in [
            ["--retries", "-1"],
            ["--delay-scale", "-2"],
            ["--header", "nocolon"],
            ["--method", "BREW"],
        ] {
            let mut argv = vec!["qstash-receiver", "send", "http://a/", "--body", "x"];
            argv.extend(bad);
            let err = Cli::try_parse_from(&argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
