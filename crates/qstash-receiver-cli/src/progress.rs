//! One line per attempt, for people: what was sent, what came back, what happens next.

use std::time::Duration;

use qstash_local::{Attempt, RetryReason, Verdict};

/// A duration for people: `850ms`, `12.2s`, `2m28s`, `6h50m`.
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 {
        format!("{}ms", duration.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        let whole = duration.as_secs();
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

/// `200 OK`, `503 Service Unavailable`, or `no answer: <why>`.
pub(crate) fn describe(attempt: &Attempt) -> String {
    match &attempt.answer {
        Ok(answer) => {
            let reason = answer.status.canonical_reason().unwrap_or("");
            format!("{} {reason}", answer.status.as_u16())
                .trim_end()
                .to_owned()
        }
        Err(error) => format!("no answer: {error}"),
    }
}

/// What follows the attempt: `: delivered`, `; next retry in 12ms (backoff 12.2s x 0.001)`.
pub(crate) fn next_step(attempt: &Attempt, delay_scale: f64) -> String {
    match attempt.verdict {
        Verdict::Delivered => ": delivered".to_owned(),
        Verdict::NonRetryable => " with Upstash-NonRetryable-Error: true: not retried".to_owned(),
        Verdict::NoRetriesLeft => ": no retries left".to_owned(),
        Verdict::Retry { after, reason } => {
            let why = match reason {
                RetryReason::Backoff(n) if (delay_scale - 1.0).abs() < f64::EPSILON => {
                    format!("backoff e^(2.5*{n}) s")
                }
                RetryReason::Backoff(n) => format!(
                    "backoff {} x {delay_scale}",
                    human(qstash_receiver::retry::backoff(n))
                ),
                RetryReason::AnswerAsked(wait) => format!("Retry-After: {}", wait.as_secs_f64()),
                RetryReason::Expression => "Upstash-Retry-Delay".to_owned(),
                _ => "retry".to_owned(),
            };
            format!("; next retry in {} ({why})", human(after))
        }
        Verdict::Cancelled => ": cancelled".to_owned(),
        _ => String::new(),
    }
}

/// `attempt 2 of 4 (Upstash-Retried: 1): 503 Service Unavailable; next retry in ...`.
pub(crate) fn attempt_line(attempt: &Attempt, delay_scale: f64) -> String {
    format!(
        "attempt {} of {} (Upstash-Retried: {}): {}{}",
        attempt.retried + 1,
        attempt.max_retries.saturating_add(1),
        attempt.retried,
        describe(attempt),
        next_step(attempt, delay_scale)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let cases = [
            (0.012, "12ms"),
            (12.18, "12.2s"),
            (148.4, "2m28s"),
            (24_607.0, "6h50m"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(Duration::from_secs_f64(secs)), want);
        }
    }
}
