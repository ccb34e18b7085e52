//! What the example receivers share that is not about QStash verification: the handlers'
//! logic (an [`Inbox`] that records what it saw and decides each answer), the payload type,
//! and serving axum with the timers a public server needs. Each example file shows its own
//! routes, layer or extractors.
//!
//! The receivers (`axum_receiver`, `actix_receiver`, `lambda_receiver`, and the Cloudflare
//! Worker in `workers/`) expose the same two routes:
//!
//! - `POST /api/webhook`: a verified delivery of an [`Order`] (JSON). Answers 200 with an
//!   [`Echo`] of what it received; order `0` is refused for good (489 +
//!   `Upstash-NonRetryable-Error: true`, so QStash does not retry it).
//! - `POST /api/callback`: a verified callback or failure callback. Answers 200 with a one-line
//!   summary ([`describe`]).
//!
//! Policies are the pipeline's defaults: `sub` compared by path and query, 1 MiB body limit.

mod inbox;

pub use inbox::{CALLBACK_PATH, Echo, Inbox, Order, Seen, WEBHOOK_PATH, describe, missing_keys};

/// `PORT` from the environment, 3000 when unset.
///
/// # Errors
///
/// When `PORT` is set but not a port number.
pub fn port_from_env() -> Result<u16, String> {
    match std::env::var("PORT") {
        Ok(port) => port
            .trim()
            .parse()
            .map_err(|_| format!("PORT must be a port number, not {port:?}")),
        Err(_) => Ok(3000),
    }
}

/// Serves `app` on `listener` with hyper's HTTP/1.1 server and the timers `axum::serve` does
/// not set: a client that does not send a whole request head within [`HEADER_READ_TIMEOUT`]
/// (a dripped or partial head, or an idle keep-alive connection) is disconnected, so slow
/// clients cannot hold the file descriptors valid deliveries need.
///
/// # Errors
///
/// When accepting a connection fails for a reason other than running out of file descriptors
/// (which is waited out).
pub async fn serve_axum(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> std::io::Result<()> {
    serve_axum_with(listener, app, HEADER_READ_TIMEOUT).await
}

/// [`serve_axum`] with another header-read timeout.
///
/// # Errors
///
/// As [`serve_axum`].
pub async fn serve_axum_with(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_read_timeout: std::time::Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors (or a connection reset while queued): wait, retry.
            Err(error) if is_transient(&error) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                // Also the longest a keep-alive connection may sit idle between requests.
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            // A client that goes away or is timed out is not the server's error.
            drop(served);
        });
    }
}

/// How long a client may take to send a request's head, or stay idle between requests on a
/// keep-alive connection: 5 s, as actix-web's `client_request_timeout`.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) || matches!(error.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}

// The top-level README's snippets, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow-header attacks: a dripped head, a partial head and an idle keep-alive connection
    /// are all closed by the header-read timeout (`axum::serve` kept them open for good), and
    /// a valid request still gets through meanwhile.
    #[tokio::test]
    async fn slow_and_idle_clients_are_shed() {
        use std::time::{Duration, Instant};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let timeout = Duration::from_millis(300);
        tokio::spawn(serve_axum_with(listener, app, timeout));

        let request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        let partial = &request[..20];
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(request).await.unwrap();
        let mut first = [0u8; 17];
        idle.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(partial).await.unwrap();
        let mut drip = tokio::net::TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let dripping = tokio::spawn(async move {
            for byte in partial {
                if drip.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut rest = Vec::new();
            let _ = drip.read_to_end(&mut rest).await;
            start.elapsed()
        });

        // A fresh client is served while the slow ones wait.
        let mut fresh = tokio::net::TcpStream::connect(addr).await.unwrap();
        fresh.write_all(request).await.unwrap();
        let mut answer = [0u8; 17];
        fresh.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200 OK\r\n");

        for (name, mut stream) in [("partial head", slow), ("idle keep-alive", idle)] {
            let mut rest = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
            assert!(closed.is_ok(), "{name}: still open after 5 s");
        }
        let dripped = tokio::time::timeout(Duration::from_secs(5), dripping).await;
        let elapsed = dripped
            .expect("dripped head: still open after 5 s")
            .unwrap();
        assert!(
            elapsed < Duration::from_secs(2),
            "dripped head closed after {elapsed:?}, not the 20 bytes' 2 s"
        );
    }

    fn order(item_len: usize) -> Order {
        Order {
            order: 1,
            item: Some("x".repeat(item_len)),
        }
    }

    #[test]
    fn the_inbox_keeps_only_the_latest() {
        let inbox = Inbox::new();
        let total = u32::try_from(Inbox::KEEP).unwrap() + 5;
        for order in 1..=total {
            let outcome =
                inbox.handle_order(format!("msg_{order}"), 0, Order { order, item: None });
            assert!(outcome.is_ok());
        }
        let seen = inbox.seen();
        assert_eq!(seen.len(), Inbox::KEEP);
        let first = match &seen[0] {
            Seen::Delivery { echo, .. } => echo.payload.order,
            Seen::Callback { .. } => 0,
        };
        assert_eq!(first, 6);
    }

    /// 250 replays of a 1 MB delivery used to keep 250 MB: the inbox is bounded in bytes too.
    #[test]
    fn the_inbox_is_bounded_in_bytes_and_in_count() {
        let inbox = Inbox::new();
        for n in 0..250 {
            let _ = inbox.handle_order(format!("msg_{n}"), 0, order(1_000_000));
        }
        assert!(
            inbox.kept_bytes() <= Inbox::KEEP_BYTES,
            "{}",
            inbox.kept_bytes()
        );
        let seen = inbox.seen();
        assert_eq!(seen.len(), 4, "four 1 MB payloads fit in 4 MiB");
        assert!(matches!(&seen[3], Seen::Delivery { echo, .. } if echo.message_id == "msg_249"));

        let inbox = Inbox::new();
        for n in 0..(Inbox::KEEP + 10) {
            let _ = inbox.handle_order(format!("msg_{n}"), 0, order(1));
        }
        assert_eq!(inbox.seen().len(), Inbox::KEEP);

        let inbox = Inbox::new();
        let _ = inbox.handle_order("msg_huge".into(), 0, order(Inbox::KEEP_BYTES + 1));
        assert!(
            inbox.seen().is_empty(),
            "larger than the bound alone: not kept"
        );
    }
}
