//! Signing keys: the current/next pair, the dev keys, the environment, and multi-region rings.

use std::fmt;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

use crate::error::ConfigError;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The current signing key of the local QStash dev server (a public constant).
pub const DEV_CURRENT_SIGNING_KEY: &str = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r";
/// The next signing key of the local QStash dev server (a public constant).
pub const DEV_NEXT_SIGNING_KEY: &str = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs";

/// Environment variable holding the current signing key.
pub const ENV_CURRENT: &str = "QSTASH_CURRENT_SIGNING_KEY";
/// Environment variable holding the next signing key.
pub const ENV_NEXT: &str = "QSTASH_NEXT_SIGNING_KEY";
/// Environment variable that, set to `true` or `1`, selects the public dev keys.
pub const ENV_DEV: &str = "QSTASH_DEV";
/// Environment variable that turns on multi-region key lookup.
pub const ENV_REGION: &str = "QSTASH_REGION";

/// The regions a multi-region account signs from, in environment-variable form.
pub const KNOWN_REGIONS: [&str; 2] = ["EU_CENTRAL_1", "US_EAST_1"];

/// One signing key, pre-keyed: the HMAC state after absorbing the key is computed once here,
/// so that each verification only clones it.
#[derive(Clone)]
pub(crate) struct SigningKey {
    mac: HmacSha256,
}

impl SigningKey {
    pub(crate) fn new(key: &str, role: &'static str) -> Result<Self, ConfigError> {
        if key.trim().is_empty() {
            return Err(ConfigError::EmptyKey(role));
        }
        if key.trim() != key {
            return Err(ConfigError::KeyWhitespace(role));
        }
        // HMAC accepts keys of any length, so this cannot fail; map it anyway rather than panic.
        let mac =
            HmacSha256::new_from_slice(key.as_bytes()).map_err(|_| ConfigError::EmptyKey(role))?;
        Ok(Self { mac })
    }

    /// A fresh MAC state, already keyed.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

/// An account's current and next signing keys.
///
/// QStash signs with the current key; after a key rotation in the console, the old next key
/// becomes the current one. Verification tries the current key, then the next, so a rotation
/// never drops a delivery.
///
/// # Security
///
/// The key strings are not kept: only the pre-keyed HMAC states. `Debug` prints
/// `SigningKeys { .. }` with the keys redacted.
#[derive(Clone)]
pub struct SigningKeys {
    pub(crate) current: SigningKey,
    pub(crate) next: SigningKey,
    dev: bool,
}

impl SigningKeys {
    /// A pair of the same key twice: what a [`Signer`](crate::Signer) verifies its own tokens with.
    pub(crate) fn same(key: SigningKey) -> Self {
        Self {
            current: key.clone(),
            next: key,
            dev: false,
        }
    }

    /// The same key text twice, whitespace and all: for a diagnosis' hint, never to verify.
    pub(crate) fn same_text(key: &str) -> Option<Self> {
        let mac = HmacSha256::new_from_slice(key.as_bytes()).ok()?;
        Some(Self::same(SigningKey { mac }))
    }

    /// The current and next keys, as shown in the QStash console (`sig_...`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptyKey`] for an empty or blank key, [`ConfigError::KeyWhitespace`] for a
    /// key with leading or trailing whitespace (a key read from a file with its newline would
    /// otherwise never match).
    pub fn new(current: impl AsRef<str>, next: impl AsRef<str>) -> Result<Self, ConfigError> {
        Ok(Self {
            current: SigningKey::new(current.as_ref(), "current")?,
            next: SigningKey::new(next.as_ref(), "next")?,
            dev: false,
        })
    }

    /// The public keys of the local QStash dev server.
    ///
    /// # Security
    ///
    /// Anyone can sign with these keys. Use them only against the local dev server.
    #[must_use]
    pub fn dev() -> Self {
        let mut keys = Self::new(DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY)
            .unwrap_or_else(|_| unreachable!("the dev keys are valid"));
        keys.dev = true;
        keys
    }

    /// Whether these are the public dev-server keys.
    #[must_use]
    pub const fn is_dev(&self) -> bool {
        self.dev
    }

    /// Keys from `QSTASH_CURRENT_SIGNING_KEY` and `QSTASH_NEXT_SIGNING_KEY`, or the dev keys
    /// when `QSTASH_DEV` is `true` or `1` and no key variable is set (announced once on
    /// standard error and as a `tracing` warning).
    ///
    /// # Errors
    ///
    /// A missing variable, a key refused by [`SigningKeys::new`], or
    /// [`ConfigError::DevWithConfiguredKeys`] when `QSTASH_DEV` is set together with any
    /// signing-key variable: one stray variable must not replace production keys with keys
    /// anyone can sign with.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Like [`SigningKeys::from_env`], reading variables through `lookup` (for tests and for
    /// configuration systems other than the process environment).
    ///
    /// # Errors
    ///
    /// As [`SigningKeys::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        if dev_requested(&lookup)? {
            refuse_configured_keys(&lookup)?;
            announce_dev_mode();
            return Ok(Self::dev());
        }
        Self::from_vars(&lookup, ENV_CURRENT, ENV_NEXT)
    }

    fn from_vars(
        lookup: &impl Fn(&str) -> Option<String>,
        current: &str,
        next: &str,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).ok_or_else(|| ConfigError::MissingEnv(name.to_owned()));
        let (c, n) = (get(current)?, get(next)?);
        Self::new(c, n).map_err(|e| match e {
            ConfigError::EmptyKey(role) => ConfigError::InvalidEnv {
                name: if role == "current" { current } else { next }.to_owned(),
                reason: "the key is empty",
            },
            ConfigError::KeyWhitespace(role) => ConfigError::InvalidEnv {
                name: if role == "current" { current } else { next }.to_owned(),
                reason: "the key has leading or trailing whitespace",
            },
            other => other,
        })
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("current", &"<redacted>")
            .field("next", &"<redacted>")
            .field("dev", &self.dev)
            .finish()
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Fails when any signing-key variable is set (plain or per region).
fn refuse_configured_keys(lookup: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let mut names = vec![ENV_CURRENT.to_owned(), ENV_NEXT.to_owned()];
    for region in KNOWN_REGIONS {
        names.push(format!("{region}_{ENV_CURRENT}"));
        names.push(format!("{region}_{ENV_NEXT}"));
    }
    let set: Vec<String> = names
        .into_iter()
        .filter(|name| lookup(name).is_some_and(|v| !v.trim().is_empty()))
        .collect();
    if set.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::DevWithConfiguredKeys {
            configured: set.join(", "),
        })
    }
}

/// Dev mode is said where a person sees it, once per process: on standard error (the
/// examples and most services install no `tracing` subscriber) and through `tracing`.
fn announce_dev_mode() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    const TEXT: &str = "QSTASH_DEV is set: verifying with the public QStash dev-server keys; \
                        anyone can sign deliveries for them. Never set it in production.";
    ONCE.call_once(|| eprintln!("qstash-receiver: {TEXT}"));
    tracing::warn!("{TEXT}");
}

fn dev_requested(lookup: &impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match lookup(ENV_DEV).as_deref().map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(ConfigError::InvalidEnv {
            name: ENV_DEV.to_owned(),
            reason: "expected `true`, `1`, `false` or `0`",
        }),
    }
}

/// The keys a [`Verifier`](crate::Verifier) chooses from: default keys, plus per-region keys for
/// multi-region accounts.
///
/// A request's `Upstash-Region` header (`EU-CENTRAL-1`, `US-EAST-1`) selects that region's keys
/// when the ring has them; otherwise the default keys are used. A ring made from one
/// [`SigningKeys`] (through `From`) serves single-region accounts.
#[derive(Clone, Debug)]
pub struct KeyRing {
    default: Option<SigningKeys>,
    regions: Vec<(Box<str>, SigningKeys)>,
}

impl KeyRing {
    /// A ring whose default keys are `keys`.
    #[must_use]
    pub fn new(keys: SigningKeys) -> Self {
        Self {
            default: Some(keys),
            regions: Vec::new(),
        }
    }

    /// A ring with no default keys: requests must name a region the ring has keys for.
    #[must_use]
    pub const fn regions_only() -> Self {
        Self {
            default: None,
            regions: Vec::new(),
        }
    }

    /// Adds (or replaces) the keys of `region` (`"EU-CENTRAL-1"` or `"EU_CENTRAL_1"`; case and
    /// `-`/`_` do not matter).
    #[must_use]
    pub fn with_region(mut self, region: &str, keys: SigningKeys) -> Self {
        self.set_region(region, keys);
        self
    }

    fn set_region(&mut self, region: &str, keys: SigningKeys) {
        let name = normalize_region(region);
        match self.regions.iter_mut().find(|(r, _)| **r == *name) {
            Some(slot) => slot.1 = keys,
            None => self.regions.push((name.into(), keys)),
        }
    }

    /// The default keys, if any.
    #[must_use]
    pub const fn default_keys(&self) -> Option<&SigningKeys> {
        self.default.as_ref()
    }

    /// A copy of this ring with different default keys (the per-region keys are kept).
    #[must_use]
    pub fn with_default(mut self, keys: SigningKeys) -> Self {
        self.default = Some(keys);
        self
    }

    /// The keys for a request from `region` (the raw `Upstash-Region` value, if any): that
    /// region's keys when the ring has them, else the default keys.
    #[must_use]
    pub fn keys_for(&self, region: Option<&str>) -> Option<&SigningKeys> {
        region
            .and_then(|region| {
                self.regions
                    .iter()
                    .find(|(name, _)| region_eq(name, region))
                    .map(|(_, keys)| keys)
            })
            .or(self.default.as_ref())
    }

    /// The regions this ring has keys for, in environment-variable form (`EU_CENTRAL_1`).
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(|(name, _)| &**name)
    }

    /// Keys from the environment, with multi-region support.
    ///
    /// Without `QSTASH_REGION`, this is [`SigningKeys::from_env`]. With it, each known region's
    /// keys are read from `{REGION}_QSTASH_CURRENT_SIGNING_KEY` / `{REGION}_QSTASH_NEXT_SIGNING_KEY`
    /// (regions: `EU_CENTRAL_1`, `US_EAST_1`), and the plain variables, when set, are the
    /// fallback for requests without a known region. `QSTASH_DEV` still selects the dev keys.
    ///
    /// # Errors
    ///
    /// No keys at all, half a pair, or an invalid key.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Like [`KeyRing::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    ///
    /// As [`KeyRing::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let region = lookup(ENV_REGION).filter(|r| !r.trim().is_empty());
        if region.is_none() || dev_requested(&lookup)? {
            return SigningKeys::from_lookup(lookup).map(Self::new);
        }
        let mut ring = Self::regions_only();
        for name in KNOWN_REGIONS {
            let current = format!("{name}_{ENV_CURRENT}");
            let next = format!("{name}_{ENV_NEXT}");
            if lookup(&current).is_some() || lookup(&next).is_some() {
                ring.set_region(name, SigningKeys::from_vars(&lookup, &current, &next)?);
            }
        }
        if lookup(ENV_CURRENT).is_some() || lookup(ENV_NEXT).is_some() || ring.regions.is_empty() {
            ring.default = Some(SigningKeys::from_vars(&lookup, ENV_CURRENT, ENV_NEXT)?);
        }
        Ok(ring)
    }
}

impl From<SigningKeys> for KeyRing {
    fn from(keys: SigningKeys) -> Self {
        Self::new(keys)
    }
}

fn normalize_region(region: &str) -> String {
    region.trim().to_ascii_uppercase().replace('-', "_")
}

/// `name` is normalized (`EU_CENTRAL_1`); `raw` is a header value such as `eu-central-1`.
fn region_eq(name: &str, raw: &str) -> bool {
    let raw = raw.trim();
    name.len() == raw.len()
        && name.bytes().zip(raw.bytes()).all(|(n, r)| {
            let r = if r == b'-' {
                b'_'
            } else {
                r.to_ascii_uppercase()
            };
            n == r
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn empty_blank_and_padded_keys_are_refused() {
        assert_eq!(
            SigningKeys::new("", "sig_b").unwrap_err(),
            ConfigError::EmptyKey("current")
        );
        assert_eq!(
            SigningKeys::new("sig_a", "  ").unwrap_err(),
            ConfigError::EmptyKey("next")
        );
        assert_eq!(
            SigningKeys::new("sig_a\n", "sig_b").unwrap_err(),
            ConfigError::KeyWhitespace("current")
        );
        assert!(SigningKeys::new("sig_a", "sig_b").is_ok());
    }

    #[test]
    fn debug_redacts_keys() {
        let keys = SigningKeys::new("sig_secretcurrent", "sig_secretnext").unwrap();
        let ring = KeyRing::new(keys.clone()).with_region("us-east-1", keys.clone());
        for text in [
            format!("{keys:?}"),
            format!("{ring:?}"),
            format!("{keys:#?}"),
        ] {
            assert!(!text.contains("secret"), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }

    #[test]
    fn from_env_reads_plain_keys_and_names_missing_variables() {
        let keys = SigningKeys::from_lookup(vars(&[(ENV_CURRENT, "sig_a"), (ENV_NEXT, "sig_b")]));
        assert!(!keys.unwrap().is_dev());
        let err = SigningKeys::from_lookup(vars(&[(ENV_CURRENT, "sig_a")])).unwrap_err();
        assert_eq!(err, ConfigError::MissingEnv(ENV_NEXT.to_owned()));
        let err = SigningKeys::from_lookup(vars(&[(ENV_CURRENT, ""), (ENV_NEXT, "sig_b")]));
        assert!(
            matches!(err, Err(ConfigError::InvalidEnv { ref name, .. }) if name == ENV_CURRENT)
        );
    }

    #[test]
    fn dev_mode_from_env() {
        for on in ["true", "1"] {
            assert!(
                SigningKeys::from_lookup(vars(&[(ENV_DEV, on)]))
                    .unwrap()
                    .is_dev()
            );
        }
        assert!(SigningKeys::from_lookup(vars(&[(ENV_DEV, "0")])).is_err());
        assert!(matches!(
            SigningKeys::from_lookup(vars(&[(ENV_DEV, "yes")])),
            Err(ConfigError::InvalidEnv { .. })
        ));
    }

    /// Regression: with configured keys, `QSTASH_DEV=1` used to replace them silently with the
    /// public dev keys, so anyone could sign deliveries.
    #[test]
    fn dev_mode_with_configured_keys_is_a_configuration_error() {
        let cases: [&[(&str, &str)]; 4] = [
            &[(ENV_DEV, "1"), (ENV_CURRENT, "sig_a"), (ENV_NEXT, "sig_b")],
            &[(ENV_DEV, "true"), (ENV_NEXT, "sig_b")],
            &[
                (ENV_DEV, "1"),
                (ENV_REGION, "US_EAST_1"),
                ("US_EAST_1_QSTASH_CURRENT_SIGNING_KEY", "sig_us1"),
            ],
            &[
                (ENV_DEV, "1"),
                ("EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY", "sig_eu"),
            ],
        ];
        for pairs in cases {
            for result in [
                SigningKeys::from_lookup(vars(pairs)).map(|_| ()),
                KeyRing::from_lookup(vars(pairs)).map(|_| ()),
            ] {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, ConfigError::DevWithConfiguredKeys { .. }),
                    "{pairs:?}: {err}"
                );
                let text = err.to_string();
                assert!(
                    text.contains("QSTASH_DEV") && text.contains("SIGNING_KEY"),
                    "{text}"
                );
                assert!(!text.contains("sig_"), "no key in the message: {text}");
            }
        }
        // An empty key variable next to dev mode is not a configured key.
        assert!(
            SigningKeys::from_lookup(vars(&[(ENV_DEV, "1"), (ENV_CURRENT, "")]))
                .unwrap()
                .is_dev()
        );
    }

    #[test]
    fn ring_from_env_with_regions_and_fallback() {
        let ring = KeyRing::from_lookup(vars(&[
            (ENV_REGION, "EU_CENTRAL_1"),
            ("EU_CENTRAL_1_QSTASH_CURRENT_SIGNING_KEY", "sig_eu1"),
            ("EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY", "sig_eu2"),
            ("US_EAST_1_QSTASH_CURRENT_SIGNING_KEY", "sig_us1"),
            ("US_EAST_1_QSTASH_NEXT_SIGNING_KEY", "sig_us2"),
            (ENV_CURRENT, "sig_a"),
            (ENV_NEXT, "sig_b"),
        ]))
        .unwrap();
        assert_eq!(
            ring.regions().collect::<Vec<_>>(),
            ["EU_CENTRAL_1", "US_EAST_1"]
        );
        assert!(ring.default_keys().is_some());

        let only_eu = KeyRing::from_lookup(vars(&[
            (ENV_REGION, "EU_CENTRAL_1"),
            ("EU_CENTRAL_1_QSTASH_CURRENT_SIGNING_KEY", "sig_eu1"),
            ("EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY", "sig_eu2"),
        ]))
        .unwrap();
        assert!(only_eu.default_keys().is_none());
        assert!(only_eu.keys_for(Some("eu-central-1")).is_some());
        assert!(only_eu.keys_for(Some("US-EAST-1")).is_none());
        assert!(only_eu.keys_for(None).is_none());

        let half = KeyRing::from_lookup(vars(&[
            (ENV_REGION, "US_EAST_1"),
            ("US_EAST_1_QSTASH_CURRENT_SIGNING_KEY", "sig_us1"),
        ]));
        assert_eq!(
            half.unwrap_err(),
            ConfigError::MissingEnv("US_EAST_1_QSTASH_NEXT_SIGNING_KEY".to_owned())
        );
    }

    #[test]
    fn region_names_match_header_spelling() {
        assert!(region_eq("EU_CENTRAL_1", "EU-CENTRAL-1"));
        assert!(region_eq("EU_CENTRAL_1", "eu-central-1"));
        assert!(region_eq("US_EAST_1", " US_EAST_1 "));
        assert!(!region_eq("US_EAST_1", "US-EAST-2"));
        assert!(!region_eq("US_EAST_1", "US-EAST-1x"));
    }
}
