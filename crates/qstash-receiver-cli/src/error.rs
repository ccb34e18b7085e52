//! [`CliError`] and the exit codes: 0 success, 1 delivery or verification failed, 2 usage error.

use std::fmt;
use std::process::ExitCode;

/// How a command ended when it ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The token is valid, or the message (and its callback) was delivered.
    Success,
    /// The token is invalid, or the delivery failed; the command has already said why.
    Failure,
}

impl Verdict {
    /// Exit code 0 for success, 1 for failure.
    pub(crate) fn exit_code(self) -> ExitCode {
        match self {
            Self::Success => ExitCode::SUCCESS,
            Self::Failure => ExitCode::from(1),
        }
    }
}

/// Why a command could not run. Messages never contain a signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliError {
    /// A bad argument, an unreadable file, a missing or unusable key: exit code 2.
    Usage(String),
    /// Something failed while running (the runtime, a socket): exit code 1.
    Failed(String),
}

impl CliError {
    /// A usage error with `message`.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    /// A run-time failure with `message`.
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// Exit code 2 for usage errors, 1 otherwise.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::Failed(_) => ExitCode::from(1),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) | Self::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CliError {}
