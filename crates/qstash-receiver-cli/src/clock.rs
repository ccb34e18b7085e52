//! The system clock, in the units tokens and callbacks use.

use qstash_receiver::Clock;

/// Unix seconds now (0 before 1970).
pub(crate) use qstash_receiver::time::unix_now;

/// Unix milliseconds now (0 before 1970).
pub(crate) fn unix_now_millis() -> i64 {
    i64::try_from(Clock::system().now_ms()).unwrap_or(i64::MAX)
}
