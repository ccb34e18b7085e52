//! Time as tokens count it: [`unix_now`] and the one [`Clock`] of the workspace.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system clock in unix seconds, as tokens count time (0 if the clock is before 1970).
#[must_use]
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The system clock in unix milliseconds (0 if the clock is before 1970).
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The workspace's one time source: what a [`Receiver`](crate::Receiver) checks a token's
/// validity window against, what decides when a local QStash delivers, and when a dedupe
/// memory store's marks expire.
///
/// - [`Clock::system`] (the default): the wall clock. It is not monotonic: when the system
///   clock is stepped, everything read from it moves with it.
/// - [`Clock::fixed`]: always the same second, for tests of a token's window.
/// - [`Clock::from_fn`]: a function that returns unix seconds, where the system clock is not
///   usable (`SystemTime::now()` panics on `wasm32-unknown-unknown`, e.g. Cloudflare Workers).
/// - [`Clock::manual`]: unix milliseconds that move only when a test moves them
///   ([`advance`](Clock::advance), [`advance_to`](Clock::advance_to)), never backwards.
///
/// Clones share their time: a test keeps one clone and moves it, and every receiver, engine
/// or store given another clone sees the move. With a clock set, nothing reads the system
/// clock behind its back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use qstash_receiver::Clock;
///
/// let clock = Clock::manual(1_700_000_000_000);
/// let seen_by_a_store = clock.clone();
/// clock.advance(Duration::from_millis(301_500));
/// assert_eq!(seen_by_a_store.now_ms(), 1_700_000_301_500);
/// assert_eq!(seen_by_a_store.now(), 1_700_000_301);
///
/// // Never backwards.
/// clock.advance_to(1_000);
/// assert_eq!(clock.now_ms(), 1_700_000_301_500);
/// ```
///
/// A platform's own time, in seconds:
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
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The system's wall clock ([`unix_now`]).
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
    ///
    /// Read in milliseconds ([`now_ms`](Clock::now_ms)), it says the start of that second.
    #[must_use]
    pub fn from_fn(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Source::Custom(Arc::new(now)))
    }

    /// A clock showing `start_ms` (unix milliseconds) that moves only when
    /// [`advance`](Clock::advance) or [`advance_to`](Clock::advance_to) moves it: for tests
    /// that move time instead of sleeping.
    #[must_use]
    pub fn manual(start_ms: u64) -> Self {
        Self(Source::Manual(Arc::new(AtomicU64::new(start_ms))))
    }

    /// Whether this clock was made by [`Clock::manual`].
    #[must_use]
    pub const fn is_manual(&self) -> bool {
        matches!(self.0, Source::Manual(_))
    }

    /// The time now, in unix seconds (a manual clock's milliseconds rounded down).
    #[must_use]
    pub fn now(&self) -> i64 {
        match &self.0 {
            Source::System => unix_now(),
            Source::Fixed(secs) => *secs,
            Source::Custom(now) => now(),
            Source::Manual(ms) => {
                i64::try_from(ms.load(Ordering::SeqCst) / 1000).unwrap_or(i64::MAX)
            }
        }
    }

    /// The time now, in unix milliseconds (0 for a time before 1970).
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::System => unix_now_ms(),
            Source::Fixed(secs) => secs_to_ms(*secs),
            Source::Custom(now) => secs_to_ms(now()),
            Source::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward by `by` (saturating at `u64::MAX` milliseconds). Every
    /// clone sees the move.
    ///
    /// Any other clock is not moved: the system's moves by itself, and a fixed or
    /// function clock is moved by what it reads.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(ms) = &self.0 {
            let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            // The closure always returns `Some`, so the update cannot fail.
            let _ = ms.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
        }
    }

    /// Moves a manual clock to `unix_ms` if that is later than its time; an earlier time
    /// leaves it where it is, so a manual clock never goes backwards. Every clone sees the
    /// move.
    ///
    /// Any other clock is not moved (see [`advance`](Clock::advance)).
    pub fn advance_to(&self, unix_ms: u64) {
        if let Source::Manual(ms) = &self.0 {
            ms.fetch_max(unix_ms, Ordering::SeqCst);
        }
    }
}

fn secs_to_ms(secs: i64) -> u64 {
    u64::try_from(secs).map_or(0, |secs| secs.saturating_mul(1000))
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::system()"),
            Source::Fixed(secs) => write!(f, "Clock::fixed({secs})"),
            Source::Custom(_) => f.write_str("Clock::from_fn(..)"),
            // The time it shows now, not the one it started at.
            Source::Manual(ms) => write!(f, "Clock::manual({})", ms.load(Ordering::SeqCst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START_MS: u64 = 1_767_225_600_000;

    #[test]
    fn a_manual_clock_moves_only_when_moved_and_clones_share_it() {
        let clock = Clock::manual(START_MS);
        let clone = clock.clone();
        assert!(clock.is_manual());
        assert_eq!(clone.now_ms(), START_MS);
        assert_eq!(clone.now(), 1_767_225_600);

        clock.advance(Duration::from_millis(1_999));
        assert_eq!(clone.now_ms(), START_MS + 1_999);
        assert_eq!(clone.now(), 1_767_225_601, "seconds are rounded down");

        clone.advance_to(START_MS + 60_000);
        assert_eq!(clock.now_ms(), START_MS + 60_000);
    }

    #[test]
    fn a_manual_clock_never_goes_backwards_nor_wraps() {
        let clock = Clock::manual(START_MS);
        clock.advance_to(START_MS - 1);
        assert_eq!(clock.now_ms(), START_MS);
        clock.advance_to(START_MS);
        assert_eq!(clock.now_ms(), START_MS);

        clock.advance(Duration::MAX);
        assert_eq!(clock.now_ms(), u64::MAX);
        clock.advance(Duration::from_millis(1));
        assert_eq!(clock.now_ms(), u64::MAX);
        assert_eq!(clock.now(), i64::try_from(u64::MAX / 1000).unwrap());
    }

    #[test]
    fn other_clocks_are_not_moved_and_read_in_milliseconds() {
        let fixed = Clock::fixed(1_700_000_000);
        fixed.advance(Duration::from_secs(60));
        fixed.advance_to(u64::MAX);
        assert!(!fixed.is_manual());
        assert_eq!(fixed.now(), 1_700_000_000);
        assert_eq!(fixed.now_ms(), 1_700_000_000_000);

        assert_eq!(Clock::fixed(-5).now_ms(), 0, "before 1970");
        assert_eq!(Clock::fixed(i64::MAX).now_ms(), u64::MAX);
        assert_eq!(Clock::from_fn(|| 42).now_ms(), 42_000);

        let system = Clock::system();
        assert!(!system.is_manual());
        let before = unix_now_ms();
        let read = system.now_ms();
        assert!(read >= before && read - before < 60_000, "{before} {read}");
    }

    #[test]
    fn debug_names_the_constructor() {
        let manual = Clock::manual(7);
        manual.advance(Duration::from_millis(3));
        assert_eq!(format!("{manual:?}"), "Clock::manual(10)");
        assert_eq!(format!("{:?}", Clock::default()), "Clock::system()");
        assert_eq!(format!("{:?}", Clock::fixed(1)), "Clock::fixed(1)");
        assert_eq!(format!("{:?}", Clock::from_fn(|| 0)), "Clock::from_fn(..)");
    }
}
