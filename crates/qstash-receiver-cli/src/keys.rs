//! Where the signing keys come from: a flag, else the environment, else the public dev keys
//! (with a notice on standard error). Keys are never printed; only where they came from.

use std::fmt;

use qstash_receiver::{
    ConfigError, Signer, SigningKeys, keys::DEV_CURRENT_SIGNING_KEY, keys::DEV_NEXT_SIGNING_KEY,
    keys::ENV_CURRENT, keys::ENV_NEXT,
};

use crate::error::CliError;

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// A command-line flag, e.g. `--key`.
    Flag(&'static str),
    /// An environment variable, e.g. `QSTASH_CURRENT_SIGNING_KEY`.
    Env(&'static str),
    /// The public key of the local QStash dev server.
    Dev,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "{flag}"),
            Self::Env(name) => write!(f, "${name}"),
            Self::Dev => f.write_str("the public dev-server key"),
        }
    }
}

/// A signing key and where it came from. `Debug` does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Key {
    value: String,
    source: KeySource,
}

impl Key {
    /// The key string (`sig_...`).
    pub(crate) fn value(&self) -> &str {
        &self.value
    }

    /// Where the key came from.
    pub(crate) fn source(&self) -> KeySource {
        self.source
    }

    /// A signer for this key.
    pub(crate) fn signer(&self) -> Result<Signer, CliError> {
        Signer::new(&self.value).map_err(|e| CliError::usage(format!("{}: {e}", self.source)))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("value", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// Reads a variable; the real one is the process environment.
pub(crate) fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `QSTASH_DEV` together with signing-key variables is refused, as the library refuses it:
/// one stray variable must not swap real keys for public ones.
fn refuse_dev_with_configured_keys(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(), CliError> {
    match SigningKeys::from_lookup(lookup) {
        Err(e @ ConfigError::DevWithConfiguredKeys { .. }) => Err(CliError::usage(e.to_string())),
        _ => Ok(()),
    }
}

/// One key from `flag`, else the variable `env`; `None` when neither is given.
fn lookup_key(
    flag: Option<&str>,
    flag_name: &'static str,
    env: &'static str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Key>, CliError> {
    let (value, source) = match (flag, lookup(env)) {
        (Some(value), _) => (value.to_owned(), KeySource::Flag(flag_name)),
        (None, Some(value)) => (value, KeySource::Env(env)),
        (None, None) => return Ok(None),
    };
    if value.trim().is_empty() {
        return Err(CliError::usage(format!(
            "the signing key from {source} is empty"
        )));
    }
    if value.trim() != value {
        return Err(CliError::usage(format!(
            "the signing key from {source} has leading or trailing whitespace"
        )));
    }
    Ok(Some(Key { value, source }))
}

/// The key to sign with: `--key`, else `QSTASH_CURRENT_SIGNING_KEY` (or
/// `QSTASH_NEXT_SIGNING_KEY` with `next`), else the matching dev key.
pub(crate) fn signing_key(
    flag: Option<&str>,
    next: bool,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Key, CliError> {
    refuse_dev_with_configured_keys(&lookup)?;
    let (env, dev) = if next {
        (ENV_NEXT, DEV_NEXT_SIGNING_KEY)
    } else {
        (ENV_CURRENT, DEV_CURRENT_SIGNING_KEY)
    };
    Ok(
        lookup_key(flag, "--key", env, &lookup)?.unwrap_or_else(|| Key {
            value: dev.to_owned(),
            source: KeySource::Dev,
        }),
    )
}

/// The current and next keys to verify with: `--current-key` / `--next-key`, else the
/// environment, else both dev keys. One key without the other is refused.
pub(crate) fn key_pair(
    current: Option<&str>,
    next: Option<&str>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(Key, Key), CliError> {
    refuse_dev_with_configured_keys(&lookup)?;
    let current = lookup_key(current, "--current-key", ENV_CURRENT, &lookup)?;
    let next = lookup_key(next, "--next-key", ENV_NEXT, &lookup)?;
    match (current, next) {
        (Some(current), Some(next)) => Ok((current, next)),
        (None, None) => Ok((
            Key {
                value: DEV_CURRENT_SIGNING_KEY.to_owned(),
                source: KeySource::Dev,
            },
            Key {
                value: DEV_NEXT_SIGNING_KEY.to_owned(),
                source: KeySource::Dev,
            },
        )),
        (Some(_), None) => Err(CliError::usage(format!(
            "the next signing key is missing: give --next-key or set {ENV_NEXT} (or give neither key to use the dev keys)"
        ))),
        (None, Some(_)) => Err(CliError::usage(format!(
            "the current signing key is missing: give --current-key or set {ENV_CURRENT} (or give neither key to use the dev keys)"
        ))),
    }
}

/// The pair as [`SigningKeys`].
pub(crate) fn signing_keys(current: &Key, next: &Key) -> Result<SigningKeys, CliError> {
    SigningKeys::new(current.value(), next.value())
        .map_err(|e| CliError::usage(format!("signing keys: {e}")))
}

/// The notice printed on standard error when the dev keys are used.
pub(crate) fn dev_notice(flags: &str, vars: &str) -> String {
    format!(
        "notice: no signing key given ({flags}) or set ({vars}): using the public QStash dev-server keys, which anyone can sign with"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn dev_mode_with_configured_keys_is_refused() {
        let vars = env(&[
            ("QSTASH_DEV", "1"),
            (ENV_CURRENT, "sig_env"),
            (ENV_NEXT, "sig_env_next"),
        ]);
        for err in [
            signing_key(None, false, &vars).unwrap_err(),
            key_pair(None, None, &vars).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                text.contains("QSTASH_DEV") && text.contains(ENV_CURRENT),
                "{text}"
            );
            assert!(!text.contains("sig_env"), "{text}");
        }
        let dev_only = env(&[("QSTASH_DEV", "1")]);
        assert_eq!(
            key_pair(None, None, &dev_only).unwrap().0.source(),
            KeySource::Dev
        );
    }

    #[test]
    fn signing_key_prefers_flag_then_env_then_dev() {
        let vars = env(&[(ENV_CURRENT, "sig_env"), (ENV_NEXT, "sig_env_next")]);
        let key = signing_key(Some("sig_flag"), false, &vars).unwrap();
        assert_eq!(
            (key.value(), key.source()),
            ("sig_flag", KeySource::Flag("--key"))
        );
        let key = signing_key(None, false, &vars).unwrap();
        assert_eq!(
            (key.value(), key.source()),
            ("sig_env", KeySource::Env(ENV_CURRENT))
        );
        let key = signing_key(None, true, &vars).unwrap();
        assert_eq!(key.value(), "sig_env_next");
        let key = signing_key(None, false, env(&[])).unwrap();
        assert_eq!(
            (key.value(), key.source()),
            (DEV_CURRENT_SIGNING_KEY, KeySource::Dev)
        );
        let key = signing_key(None, true, env(&[])).unwrap();
        assert_eq!(key.value(), DEV_NEXT_SIGNING_KEY);
    }

    #[test]
    fn pairs_are_whole_or_dev() {
        let (c, n) = key_pair(Some("sig_a"), Some("sig_b"), env(&[])).unwrap();
        assert_eq!((c.value(), n.value()), ("sig_a", "sig_b"));
        let (c, n) = key_pair(
            None,
            None,
            env(&[(ENV_CURRENT, "sig_c"), (ENV_NEXT, "sig_n")]),
        )
        .unwrap();
        assert_eq!(
            (c.source(), n.source()),
            (KeySource::Env(ENV_CURRENT), KeySource::Env(ENV_NEXT))
        );
        let (c, n) = key_pair(None, None, env(&[])).unwrap();
        assert_eq!((c.source(), n.source()), (KeySource::Dev, KeySource::Dev));
        let err = key_pair(Some("sig_a"), None, env(&[])).unwrap_err();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("--next-key")),
            "{err}"
        );
        let err = key_pair(None, None, env(&[(ENV_NEXT, "sig_n")])).unwrap_err();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("--current-key")),
            "{err}"
        );
    }

    #[test]
    fn bad_keys_are_refused_without_being_shown() {
        let err = signing_key(Some("  "), false, env(&[])).unwrap_err();
        assert!(err.to_string().contains("--key is empty"), "{err}");
        let err = signing_key(None, false, env(&[(ENV_CURRENT, "sig_secret\n")])).unwrap_err();
        assert!(err.to_string().contains("whitespace"), "{err}");
        assert!(!err.to_string().contains("sig_secret"), "{err}");
        let key = signing_key(Some("sig_secret"), false, env(&[])).unwrap();
        assert!(!format!("{key:?}").contains("sig_secret"));
    }
}
