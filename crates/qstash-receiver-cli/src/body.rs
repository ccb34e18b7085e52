//! The body of a message: `--body TEXT` or `--body-file FILE` (`-` for standard input).

use std::io::Read as _;
use std::path::PathBuf;

use crate::error::CliError;

/// `--body` or `--body-file`, exactly one.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct BodyArgs {
    /// The body, as text (sent as its UTF-8 bytes, nothing added).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    body: Option<String>,
    /// Read the body from FILE, byte for byte (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
}

impl BodyArgs {
    /// The body's bytes.
    ///
    /// # Errors
    ///
    /// A usage error naming the file when it cannot be read.
    pub(crate) fn read(&self) -> Result<Vec<u8>, CliError> {
        match (&self.body, &self.body_file) {
            (Some(text), _) => Ok(text.as_bytes().to_vec()),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes).map_err(|e| {
                    CliError::usage(format!("cannot read the body from standard input: {e}"))
                })?;
                Ok(bytes)
            }
            (None, Some(path)) => std::fs::read(path).map_err(|e| {
                CliError::usage(format!("cannot read body file `{}`: {e}", path.display()))
            }),
            // clap's group makes one of them required.
            (None, None) => Err(CliError::usage("give --body or --body-file")),
        }
    }
}
