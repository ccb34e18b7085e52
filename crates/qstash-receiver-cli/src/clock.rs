//! The system clock, in the units tokens and callbacks use.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now (0 before 1970).
pub(crate) use qstash_receiver::time::unix_now;

/// Unix milliseconds now (0 before 1970).
pub(crate) fn unix_now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
