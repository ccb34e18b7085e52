//! Time as tokens count it: [`unix_now`] and the one [`Clock`] of the workspace.

use std::time::{SystemTime, UNIX_EPOCH};

/// The system clock in unix seconds, as tokens count time (0 if the clock is before 1970).
#[must_use]
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

use std::fmt;
use std::sync::Arc;

/// The time source of a [`Receiver`](crate::Receiver): unix seconds.
///
/// Defaults to the system clock. Set one where the system clock is not usable
/// (`SystemTime::now()` panics on `wasm32-unknown-unknown`, e.g. Cloudflare Workers) or to
/// test expiry without waiting. With a clock set, the pipeline never reads the system clock.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use qstash_receiver::Clock;
///
/// let now = Arc::new(AtomicI64::new(1_700_000_000));
/// let clock = Clock::from_fn({
///     let now = Arc::clone(&now);
///     move || now.load(Ordering::Relaxed)
/// });
/// now.fetch_add(301, Ordering::Relaxed);
/// assert_eq!(clock.now(), 1_700_000_301);
/// ```
#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Fixed(i64),
    Custom(Arc<dyn Fn() -> i64 + Send + Sync>),
}

impl Clock {
    /// The system clock ([`unix_now`]).
    #[must_use]
    pub const fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that always says `unix_secs`: for tests.
    #[must_use]
    pub const fn fixed(unix_secs: i64) -> Self {
        Self(Source::Fixed(unix_secs))
    }

    /// A clock that calls `now` (unix seconds) each time it is read.
    #[must_use]
    pub fn from_fn(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Source::Custom(Arc::new(now)))
    }

    /// The time now, in unix seconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        match &self.0 {
            Source::System => unix_now(),
            Source::Fixed(secs) => *secs,
            Source::Custom(now) => now(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::system()"),
            Source::Fixed(secs) => write!(f, "Clock::fixed({secs})"),
            Source::Custom(_) => f.write_str("Clock::from_fn(..)"),
        }
    }
}
