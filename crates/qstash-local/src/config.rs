//! [`Config`] and [`Limits`]: keys, token, delay scale and the bounds on memory.

use std::fmt;
use std::time::Duration;

use qstash_receiver::{Signer, keys::DEV_CURRENT_SIGNING_KEY, keys::DEV_NEXT_SIGNING_KEY};

use crate::record::Attempt;

/// The official dev server's token, which the official clients use in dev mode.
pub const DEV_TOKEN: &str =
    "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=";

/// The largest message body accepted: 1 MiB, as QStash's.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The bounds on what the engine keeps in memory. Past a bound, the oldest record is dropped
/// (DLQ, events, attempts, deduplication ids) or the request is refused with 412 and a
/// message naming the bound (messages, bytes, schedules, queues, URL groups, endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Messages waiting or being delivered. Defaults to 100,000.
    pub messages: usize,
    /// Bytes of message bodies held by messages waiting or being delivered. Defaults to
    /// 256 MiB.
    pub stored_bytes: usize,
    /// Dead letters kept. Defaults to 10,000.
    pub dlq: usize,
    /// Bytes of bodies (the message's and the last answer's) the dead letters may hold; the
    /// oldest are dropped past it. Defaults to 64 MiB.
    pub dlq_bytes: usize,
    /// Events kept. Defaults to 10,000.
    pub events: usize,
    /// Attempts kept for inspection. Defaults to 10,000.
    pub attempts: usize,
    /// Bytes of bodies (sent and answered) the kept attempts may hold. Defaults to 64 MiB.
    pub attempt_bytes: usize,
    /// Deduplication ids remembered. Defaults to 100,000.
    pub deduplication_ids: usize,
    /// Schedules. Defaults to 1,000.
    pub schedules: usize,
    /// Queues. Defaults to 1,000.
    pub queues: usize,
    /// URL groups. Defaults to 1,000.
    pub url_groups: usize,
    /// Flow-control keys (idle ones are forgotten first). Defaults to 1,000.
    pub flow_control_keys: usize,
    /// Endpoints per URL group. Defaults to 100.
    pub endpoints_per_group: usize,
    /// Deliveries under way at once. Defaults to 256.
    pub in_flight: usize,
    /// Deliveries under way at once to one destination (scheme, host and port), so a
    /// hanging endpoint cannot take every slot. Defaults to 64.
    pub in_flight_per_destination: usize,
    /// Messages in one batch request. Defaults to 1,000.
    pub batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            messages: 100_000,
            stored_bytes: 256 << 20,
            dlq: 10_000,
            dlq_bytes: 64 << 20,
            events: 10_000,
            attempts: 10_000,
            attempt_bytes: 64 << 20,
            deduplication_ids: 100_000,
            schedules: 1_000,
            queues: 1_000,
            url_groups: 1_000,
            flow_control_keys: 1_000,
            endpoints_per_group: 100,
            in_flight: 256,
            in_flight_per_destination: 64,
            batch: 1_000,
        }
    }
}

/// Called with every attempt once the engine has decided what follows it.
pub type Observer = std::sync::Arc<dyn Fn(&Attempt) + Send + Sync>;

/// How the engine signs, authenticates and paces.
#[derive(Clone)]
pub struct Config {
    pub(crate) current_key: String,
    pub(crate) next_key: String,
    pub(crate) signer: Signer,
    pub(crate) token: String,
    pub(crate) delay_scale: f64,
    pub(crate) default_timeout: Duration,
    pub(crate) deduplication_window: Duration,
    pub(crate) limits: Limits,
    pub(crate) observer: Option<Observer>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// The dev server's settings: the public dev keys and token, no delay scaling, a 30 s
    /// attempt timeout, a 10 min deduplication window, the default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            current_key: DEV_CURRENT_SIGNING_KEY.to_owned(),
            next_key: DEV_NEXT_SIGNING_KEY.to_owned(),
            // The dev key is a valid constant.
            signer: Signer::new(DEV_CURRENT_SIGNING_KEY).unwrap_or_else(|_| unreachable!()),
            token: DEV_TOKEN.to_owned(),
            delay_scale: 1.0,
            default_timeout: Duration::from_secs(30),
            deduplication_window: Duration::from_secs(600),
            limits: Limits::default(),
            observer: None,
        }
    }

    /// Sign with `current` (and answer `GET /v2/keys` with both). Defaults to the public dev
    /// keys.
    ///
    /// # Errors
    ///
    /// The core's [`qstash_receiver::ConfigError`] for an empty or padded key.
    pub fn with_signing_keys(
        mut self,
        current: &str,
        next: &str,
    ) -> Result<Self, qstash_receiver::ConfigError> {
        self.signer = Signer::new(current)?;
        Signer::new(next)?;
        self.current_key = current.to_owned();
        self.next_key = next.to_owned();
        Ok(self)
    }

    /// The token clients must present. Defaults to [`DEV_TOKEN`].
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// Multiply every retry delay (backoff, `Retry-After`, `Upstash-Retry-Delay`) by `scale`,
    /// e.g. 0.001 to turn QStash's 12 s first backoff into 12 ms. Defaults to 1; negative or
    /// non-finite values are taken as 1.
    #[must_use]
    pub fn with_delay_scale(mut self, scale: f64) -> Self {
        self.delay_scale = if scale.is_finite() && scale >= 0.0 {
            scale
        } else {
            1.0
        };
        self
    }

    /// How long an attempt may take when the message sets no `Upstash-Timeout`. Defaults to
    /// 30 seconds.
    #[must_use]
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// How long a deduplication id is remembered. Defaults to 10 minutes.
    #[must_use]
    pub fn with_deduplication_window(mut self, window: Duration) -> Self {
        self.deduplication_window = window;
        self
    }

    /// The memory bounds. Defaults to [`Limits::default`].
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Call `observer` with every attempt (for progress output).
    #[must_use]
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The token clients must present.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The signing keys, current then next, as `GET /v2/keys` answers them.
    #[must_use]
    pub fn signing_keys(&self) -> (&str, &str) {
        (&self.current_key, &self.next_key)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("keys", &"<redacted>")
            .field("token", &"<redacted>")
            .field("delay_scale", &self.delay_scale)
            .field("default_timeout", &self.default_timeout)
            .field("deduplication_window", &self.deduplication_window)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
