//! Durations as QStash's headers write them: `10s`, `1d10h30m`, `1.5h`, `300ms` (Go style, plus
//! `d` for days), or plain seconds; and the waits a receiver asks for in its answer.

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderMap;

/// The longest wait an answer can ask for: a day, as QStash caps it.
pub(crate) const MAX_ANSWER_WAIT: Duration = Duration::from_secs(86_400);

/// The longest duration a header may give: 10 years, so sums never overflow.
const MAX_HEADER_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Parses `10s`, `1d10h30m`, `1.5h`, `300ms`, `2m5s`, or a bare number of seconds.
/// `None` for anything else (empty, negative, unknown unit, over 10 years).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return checked(Duration::from_secs(
            secs.min(MAX_HEADER_DURATION.as_secs() + 1),
        ));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_secs = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let part = Duration::try_from_secs_f64(number * unit_secs).ok()?;
        total = total.checked_add(part)?;
        if total > MAX_HEADER_DURATION {
            return None;
        }
    }
    checked(total)
}

fn checked(duration: Duration) -> Option<Duration> {
    (duration <= MAX_HEADER_DURATION).then_some(duration)
}

/// How long the receiver asked QStash to wait before the next attempt: the longest of
/// `Retry-After`, `X-RateLimit-Reset`, `X-RateLimit-Reset-Requests`, `X-RateLimit-Reset-Tokens`
/// (each seconds, an HTTP date, a Go-style duration, or a unix timestamp in seconds or
/// milliseconds), capped at a day. `now_ms` is the wall clock, for dates and timestamps.
pub(crate) fn answer_wait(headers: &HeaderMap, now_ms: u64) -> Option<Duration> {
    [
        "retry-after",
        "x-ratelimit-reset",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ]
    .iter()
    .filter_map(|name| headers.get(*name)?.to_str().ok())
    .filter_map(|value| wait_value(value, now_ms))
    .max()
    .map(|wait| wait.min(MAX_ANSWER_WAIT))
}

/// A unix timestamp is told apart from a delay by its size: no delay is 30 years long.
const TIMESTAMP_SECS_FLOOR: u64 = 1_000_000_000;

fn wait_value(value: &str, now_ms: u64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(number) = value.parse::<u64>() {
        let until_ms = if number >= TIMESTAMP_SECS_FLOOR * 1000 {
            number
        } else if number >= TIMESTAMP_SECS_FLOOR {
            number.saturating_mul(1000)
        } else {
            return Some(Duration::from_secs(number));
        };
        return Some(Duration::from_millis(until_ms.saturating_sub(now_ms)));
    }
    if let Some(duration) = parse_duration(value) {
        return Some(duration);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let until_ms = date
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))?;
    Some(Duration::from_millis(until_ms.saturating_sub(now_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_durations() {
        let cases = [
            ("10s", Some(10_000)),
            ("1d10h30m", Some((86_400 + 10 * 3600 + 30 * 60) * 1000)),
            ("1.5h", Some(5_400_000)),
            ("300ms", Some(300)),
            ("2m5s", Some(125_000)),
            ("45", Some(45_000)),
            ("0s", Some(0)),
            ("", None),
            ("-5s", None),
            ("5x", None),
            ("s", None),
            ("1..2s", None),
            ("99999999999d", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_duration(text).map(|d| d.as_millis() as u64),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn answer_waits() {
        let now = 1_700_000_000_000;
        let mut headers = HeaderMap::new();
        assert_eq!(answer_wait(&headers, now), None);
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(answer_wait(&headers, now), Some(Duration::from_secs(7)));
        headers.insert("x-ratelimit-reset-tokens", "6m5s".parse().unwrap());
        assert_eq!(answer_wait(&headers, now), Some(Duration::from_secs(365)));
        headers.insert("x-ratelimit-reset", "1700000600".parse().unwrap());
        assert_eq!(answer_wait(&headers, now), Some(Duration::from_secs(600)));
        headers.insert("retry-after", "999999".parse().unwrap());
        assert_eq!(answer_wait(&headers, now), Some(MAX_ANSWER_WAIT));
        let mut dated = HeaderMap::new();
        dated.insert(
            "retry-after",
            "Tue, 14 Nov 2023 22:13:27 GMT".parse().unwrap(),
        );
        assert_eq!(answer_wait(&dated, now), Some(Duration::from_secs(7)));
        dated.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(answer_wait(&dated, now), None);
    }
}
