//! Servers for `scripts/http-ratio.sh`, which measures what verification costs over HTTP: each
//! serves an example receiver's own QStash route (`POST /api/webhook`, its router or its
//! handlers and extractors, compiled from `examples/`) and, in the same server, a bare route
//! ([`BARE_PATH`]) with the same handler logic and no verification (the framework's plain
//! JSON extractor). Both routes answer the same request with the same echo, so the difference
//! in requests per second between them is the cost of verifying.
//!
//! - `axum-ratio`: the router of `examples/axum_receiver.rs` (behind `QStashLayer`) merged
//!   with the bare route and the bare route behind a middleware that does nothing
//!   ([`NOOP_LAYER_PATH`]), served by the examples' `serve_axum`.
//! - `actix-ratio`: the handlers of `examples/actix_receiver.rs` (the `QStash<Order>`
//!   extractor) with the app data and server settings of that example, and the bare route.
//!
//! Both read the signing keys as the examples do (`QSTASH_DEV=1`, or the key variables) and
//! the port from `PORT`, print `listening on http://...`, and install no log subscriber.

/// The bare route: the webhook's logic behind the framework's plain JSON extractor.
pub const BARE_PATH: &str = "/api/bare";

/// axum only: the bare route behind `axum::middleware::from_fn` of a function that only calls
/// the rest of the route. What any middleware that runs before its inner service costs a
/// request (the inner route cloned, the future boxed, the request and response passed through
/// one more route), for comparison with `QStashLayer`, which is such a middleware.
pub const NOOP_LAYER_PATH: &str = "/api/noop-layer";

/// What the webhook's logic takes from the headers besides the payload, read without
/// verification: `Upstash-Message-Id` (empty when absent) and `Upstash-Retried` (0 when absent
/// or not a number). `header` looks a header up by its lowercase name.
pub fn unverified_fields<'a>(header: impl Fn(&str) -> Option<&'a [u8]>) -> (String, u32) {
    use qstash_receiver::headers::{MESSAGE_ID_HEADER, RETRIED_HEADER};
    let message_id = header(MESSAGE_ID_HEADER)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let retried = header(RETRIED_HEADER)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (message_id, retried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bare_route_reads_message_id_and_retried() {
        let headers = [("upstash-message-id", "msg_1"), ("upstash-retried", "3")];
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        };
        assert_eq!(unverified_fields(lookup), ("msg_1".to_owned(), 3));
        assert_eq!(unverified_fields(|_| None), (String::new(), 0));
        assert_eq!(unverified_fields(|_| Some(&b"x"[..])), ("x".to_owned(), 0));
    }
}
