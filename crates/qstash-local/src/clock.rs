//! [`Clock`]: the engine's time, the system's or one a test moves by hand.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::duration::wall_clock_ms;

/// Where the engine reads the time (unix milliseconds) that decides when deliveries, retries
/// and schedules fall due.
///
/// Tokens are always signed with the wall clock, so that receivers, which check `nbf`/`exp`
/// against their own clock, accept them whatever time a manual clock shows.
#[derive(Clone)]
pub enum Clock {
    /// The system clock; the engine's driver sleeps until the next due time.
    System,
    /// A clock that moves only when [`LocalQStash::advance`] (or
    /// [`Engine::advance_to`]) moves it.
    ///
    /// [`LocalQStash::advance`]: crate::LocalQStash::advance
    /// [`Engine::advance_to`]: crate::Engine::advance_to
    Manual(ManualClock),
}

impl Clock {
    /// A manual clock showing `start_ms` (unix milliseconds).
    #[must_use]
    pub fn manual(start_ms: u64) -> Self {
        Self::Manual(ManualClock(Arc::new(AtomicU64::new(start_ms))))
    }

    /// The time now, unix milliseconds.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        match self {
            Self::System => wall_clock_ms(),
            Self::Manual(clock) => clock.0.load(Ordering::SeqCst),
        }
    }

    /// Whether this is a manual clock.
    #[must_use]
    pub const fn is_manual(&self) -> bool {
        matches!(self, Self::Manual(_))
    }

    pub(crate) fn set(&self, ms: u64) {
        if let Self::Manual(clock) = self {
            clock.0.fetch_max(ms, Ordering::SeqCst);
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("Clock::System"),
            Self::Manual(_) => write!(f, "Clock::Manual({})", self.now_ms()),
        }
    }
}

/// The shared time of a [`Clock::Manual`]; it never goes backwards.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicU64>);
