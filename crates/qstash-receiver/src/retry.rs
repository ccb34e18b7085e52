//! QStash's retry schedule: how long QStash waits before each retry of a failed delivery.
//!
//! One definition for the whole workspace: the dedupe crate sizes its retention with it and
//! the local QStash schedules its retries with it.

use std::time::Duration;

/// How often QStash retries a message by default (`Upstash-Retries` unset).
pub const DEFAULT_RETRIES: u32 = 3;

/// The longest QStash waits before one retry: a day.
pub const MAX_BACKOFF: Duration = Duration::from_secs(86_400);

/// The delay QStash's default backoff waits before retry number `retry` (1 for the first
/// retry): `min(86400, e^(2.5 retry))` seconds. Retry 0 (the first attempt) waits 1 s (e^0).
///
/// # Examples
///
/// ```
/// use qstash_receiver::retry::backoff;
///
/// assert_eq!(backoff(1).as_secs(), 12);
/// assert_eq!(backoff(3).as_secs(), 1808);
/// assert_eq!(backoff(9).as_secs(), 86_400);
/// ```
#[must_use]
pub fn backoff(retry: u32) -> Duration {
    let cap = MAX_BACKOFF.as_secs_f64();
    // e^(2.5 n) passes the cap at n = 5; stop computing before f64 could overflow.
    let secs = if retry >= 5 {
        cap
    } else {
        (2.5 * f64::from(retry)).exp().min(cap)
    };
    Duration::from_secs_f64(secs)
}

/// How long QStash's default schedule of `retries` retries lasts from the first attempt to
/// the last: the sum of [`backoff`] for 1..=`retries`.
#[must_use]
pub fn retry_schedule_span(retries: u32) -> Duration {
    (1..=retries).map(backoff).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_qstash_table() {
        // e^2.5 ≈ 12.18, e^5 ≈ 148.4, e^7.5 ≈ 1808.0, e^10 ≈ 22026.5, then the one-day cap.
        let want = [
            (0, 1),
            (1, 12),
            (2, 148),
            (3, 1808),
            (4, 22_026),
            (5, 86_400),
        ];
        for (n, secs) in want {
            assert_eq!(backoff(n).as_secs(), secs, "retry {n}");
        }
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(retry_schedule_span(0), Duration::ZERO);
        assert_eq!(retry_schedule_span(DEFAULT_RETRIES).as_secs(), 1968);
    }
}
