//! `qstash-receiver demo`: an axum receiver behind `tower-qstash`'s `QStashLayer`, started in
//! this process on a free loopback port, and a set of deliveries to it — valid, rotated keys,
//! tampered, expired, for another URL, oversize, of the wrong shape, a failure callback — with
//! a table of what the receiver answered and saw.
//!
//! The receiver writes what its handlers saw, and why its layer refused a request (through a
//! `map_response` that reads the core's answer from the response), into a [`Journal`]; the client only sees the status, as QStash does.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use qstash_receiver::{
    Receiver, Signer, SigningKeys, Verifier, claims::MatchedKey, headers::NON_RETRYABLE_HEADER,
    keys::DEV_CURRENT_SIGNING_KEY, keys::DEV_NEXT_SIGNING_KEY,
};
use tower_qstash::{Layered, QStash, QStashCallback, QStashLayer};

use crate::clock::{unix_now, unix_now_millis};
use crate::error::{CliError, Verdict};
use crate::transport::{self as send, Answer, HttpTransport, Message, Outcome, Transport as _};

/// Arguments of `demo` (none).
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Starts an axum receiver (tower-qstash's QStashLayer, 1 KiB body limit, the public dev-server \
keys) on a free loopback port in this process, delivers a set of messages to it, and prints \
what the receiver answered and what its handler saw, or why the layer refused the request. \
Nothing leaves the machine. Exit code 0 when every answer is the expected one, 1 otherwise.")]
pub(crate) struct DemoArgs {}

/// The receiver's body limit in the demo, small enough for an oversize case of 2 KiB.
const BODY_LIMIT: usize = 1024;

/// A newer key for the rotation cases (not a secret: the demo's own).
const DEMO_NEWER_KEY: &str = "sig_demoNewerKeyAfterRotation01";

/// What the receiver saw for the latest request: a handler's view or a refusal's reason.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Option<String>>>);

impl Journal {
    fn record(&self, entry: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(entry);
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The demo's payload type.
#[derive(Debug, serde::Deserialize)]
struct Order {
    id: u64,
    item: String,
}

fn key_name(key: MatchedKey) -> &'static str {
    match key {
        MatchedKey::Current => "current key",
        MatchedKey::Next => "next key",
    }
}

async fn on_order(State(journal): State<Journal>, order: QStash<Order, Layered>) -> StatusCode {
    let QStash {
        payload,
        delivery,
        claims,
        ..
    } = order;
    journal.record(format!(
        "handler: message {}, retried {}, {}, payload {{ id: {}, item: {:?} }}",
        delivery.message_id,
        delivery.retried,
        key_name(claims.matched_key()),
        payload.id,
        payload.item
    ));
    StatusCode::OK
}

async fn on_failure(
    State(journal): State<Journal>,
    callback: QStashCallback<Layered>,
) -> StatusCode {
    let QStashCallback {
        callback, delivery, ..
    } = callback;
    journal.record(format!(
        "failure callback {}: message {} to {} answered {} after {} of {} retries, body {:?}",
        delivery.message_id,
        callback.source_message_id.as_deref().unwrap_or("?"),
        callback.url.as_deref().unwrap_or("?"),
        callback.status,
        callback.retried,
        callback.max_retries.unwrap_or(0),
        String::from_utf8_lossy(&callback.body),
    ));
    StatusCode::OK
}

/// The receiver: `/api/orders` takes `QStash<Order>`, `/api/failed` takes failure callbacks,
/// both behind one `QStashLayer`; a `map_response` writes the reason of every refusal into the
/// journal.
fn receiver(verifier: Verifier, journal: Journal) -> Router {
    let answers = journal.clone();
    let layer = QStashLayer::new(Receiver::new(verifier).max_body_bytes(BODY_LIMIT));
    Router::new()
        .route("/api/orders", post(on_order))
        .route("/api/failed", post(on_failure))
        .layer(layer)
        .layer(axum::middleware::map_response(
            move |response: axum::response::Response| {
                // The pipeline's detail (the verifier's own words), which the answer never
                // carries, from the core's answer the layer left in the response.
                if let Some(answer) = response.extensions().get::<qstash_receiver::Answer>() {
                    answers.record(format!("refused, {}: {}", answer.reason(), answer.detail()));
                }
                std::future::ready(response)
            },
        ))
        .with_state(journal)
}

/// One delivery of the demo.
struct Case {
    name: &'static str,
    /// Rotate the verifier's keys to (next, newer) before this case.
    rotate_before: bool,
    message: Message,
    expect: u16,
}

/// The deliveries, signed now. `base` is `http://127.0.0.1:PORT`.
fn cases(base: &str, now: i64) -> Result<Vec<Case>, CliError> {
    let signer = |key: &str| {
        Signer::new(key).map_err(|e| CliError::failed(format!("demo signing key: {e}")))
    };
    let current = signer(DEV_CURRENT_SIGNING_KEY)?;
    let next = signer(DEV_NEXT_SIGNING_KEY)?;
    let orders = format!("{base}/api/orders");
    let failed = format!("{base}/api/failed");
    let json = |text: &str| Bytes::from(text.to_owned());
    // A delivery of `body` to `url`, signed by `signer` for `signed_url` over `signed_body`.
    let delivery = |signer: &Signer,
                    url: &str,
                    signed_url: &str,
                    body: Bytes,
                    signed_body: &[u8],
                    id: &str,
                    retried: u32,
                    at: i64| {
        let mut headers = signer.delivery_headers_at(signed_url, signed_body, id, retried, at);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Message {
            url: url.to_owned(),
            method: Method::POST,
            headers,
            body,
            message_id: id.to_owned(),
        }
    };
    let order = |id: u64, item: &str| json(&format!(r#"{{"id":{id},"item":"{item}"}}"#));
    let plain = |signer: &Signer, body: Bytes, id: &str, retried: u32| {
        let signed = body.clone();
        delivery(signer, &orders, &orders, body, &signed, id, retried, now)
    };

    let tampered_body = order(1000, "book");
    let oversize = json(&format!(
        r#"{{"id":5,"item":"{}"}}"#,
        "x".repeat(2 * BODY_LIMIT)
    ));
    let callback_source = Message {
        url: orders.clone(),
        method: Method::POST,
        headers: HeaderMap::new(),
        body: order(9, "piano"),
        message_id: "msg_demo09".to_owned(),
    };
    let callback_body = send::callback_body(
        &callback_source,
        &[],
        &Outcome {
            retried: 3,
            last: Ok(Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                headers: HeaderMap::new(),
                body: Bytes::from_static(b"warehouse offline"),
            }),
        },
        3,
        unix_now_millis(),
    );
    let callback_body = Bytes::from(callback_body);

    Ok(vec![
        Case {
            name: "valid",
            rotate_before: false,
            message: plain(&current, order(1, "book"), "msg_demo01", 0),
            expect: 200,
        },
        Case {
            name: "valid, a retry",
            rotate_before: false,
            message: plain(&current, order(2, "lamp"), "msg_demo02", 2),
            expect: 200,
        },
        Case {
            name: "signed with the next key",
            rotate_before: false,
            message: plain(&next, order(3, "desk"), "msg_demo03", 0),
            expect: 200,
        },
        Case {
            name: "tampered body",
            rotate_before: false,
            message: delivery(
                &current,
                &orders,
                &orders,
                tampered_body,
                &order(10, "book"),
                "msg_demo04",
                0,
                now,
            ),
            expect: 401,
        },
        Case {
            name: "expired (signed 10 min ago)",
            rotate_before: false,
            message: delivery(
                &current,
                &orders,
                &orders,
                order(5, "chair"),
                &order(5, "chair"),
                "msg_demo05",
                0,
                now - 600,
            ),
            expect: 401,
        },
        Case {
            name: "wrong URL (signed for /api/refunds)",
            rotate_before: false,
            message: delivery(
                &current,
                &orders,
                &format!("{base}/api/refunds"),
                order(6, "rug"),
                &order(6, "rug"),
                "msg_demo06",
                0,
                now,
            ),
            expect: 401,
        },
        Case {
            name: "oversize (2 KiB, limit 1 KiB)",
            rotate_before: false,
            message: plain(&current, oversize, "msg_demo07", 0),
            expect: 413,
        },
        Case {
            name: "payload of the wrong shape",
            rotate_before: false,
            message: plain(
                &current,
                json(r#"{"id":"eight","item":8}"#),
                "msg_demo08",
                0,
            ),
            expect: 489,
        },
        Case {
            name: "failure callback",
            rotate_before: false,
            message: {
                let signed = callback_body.clone();
                delivery(
                    &current,
                    &failed,
                    &failed,
                    callback_body,
                    &signed,
                    "msg_demo10",
                    0,
                    now,
                )
            },
            expect: 200,
        },
        Case {
            name: "after a key rotation: the new current key",
            rotate_before: true,
            message: plain(&next, order(11, "shelf"), "msg_demo11", 0),
            expect: 200,
        },
        Case {
            name: "after a key rotation: the retired key",
            rotate_before: false,
            message: plain(&current, order(12, "clock"), "msg_demo12", 0),
            expect: 401,
        },
    ])
}

/// One row of the table.
struct Row {
    name: &'static str,
    status: String,
    seen: String,
    expected: bool,
}

fn status_text(answer: &Answer) -> String {
    let mut text = answer.status.as_u16().to_string();
    if let Some(reason) = answer.status.canonical_reason() {
        let _ = write!(text, " {reason}");
    }
    if answer
        .headers
        .get(NON_RETRYABLE_HEADER)
        .is_some_and(|v| v.as_bytes() == b"true")
    {
        text.push_str(" non-retryable");
    }
    text
}

/// The table, columns aligned; `!` marks an unexpected status.
fn table(rows: &[Row]) -> String {
    let name_width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    let status_width = rows
        .iter()
        .map(|r| r.status.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:name_width$}  {:status_width$}  what the receiver saw",
        "case", "status"
    );
    for row in rows {
        let mark = if row.expected { ' ' } else { '!' };
        let _ = writeln!(
            out,
            "{mark} {:name_width$}  {:status_width$}  {}",
            row.name, row.status, row.seen
        );
    }
    out
}

/// Runs `demo`: prints the table on standard output.
pub(crate) fn run(_args: &DemoArgs) -> Result<Verdict, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(demo())
}

async fn demo() -> Result<Verdict, CliError> {
    let verifier = Verifier::new(SigningKeys::dev());
    let journal = Journal::default();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| CliError::failed(format!("cannot listen on a loopback port: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::failed(format!("cannot read the loopback port: {e}")))?;
    let app = receiver(verifier.clone(), journal.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://{address}");
    println!(
        "A receiver on {base}: axum + tower-qstash QStashLayer (body limit {BODY_LIMIT} bytes, the public dev-server keys)."
    );
    println!();

    let transport = HttpTransport::new(Duration::from_secs(5))?;
    let mut rows = Vec::new();
    for case in cases(&base, unix_now())? {
        if case.rotate_before {
            // QStash's console rotation: the next key becomes current, a new next key appears.
            let rotated = SigningKeys::new(DEV_NEXT_SIGNING_KEY, DEMO_NEWER_KEY)
                .map_err(|e| CliError::failed(format!("demo keys: {e}")))?;
            verifier.rotate(rotated);
        }
        let _ = journal.take();
        let result = transport
            .send(&case.message, case.message.headers.clone())
            .await;
        let (status, code) = match &result {
            Ok(answer) => (status_text(answer), answer.status.as_u16()),
            Err(error) => (format!("no answer: {error}"), 0),
        };
        rows.push(Row {
            name: case.name,
            status,
            seen: journal
                .take()
                .unwrap_or_else(|| "(nothing recorded)".to_owned()),
            expected: code == case.expect,
        });
    }
    server.abort();

    print!("{}", table(&rows));
    println!();
    let unexpected = rows.iter().filter(|r| !r.expected).count();
    if unexpected == 0 {
        println!(
            "Every answer is the expected one: 2xx delivers, 401/413 are retried by QStash, 489 with Upstash-NonRetryable-Error stops retries."
        );
        Ok(Verdict::Success)
    } else {
        println!("{unexpected} answer(s) marked ! differ from what the demo expects.");
        Ok(Verdict::Failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_and_marks_surprises() {
        let rows = [
            Row {
                name: "valid",
                status: "200 OK".into(),
                seen: "handler".into(),
                expected: true,
            },
            Row {
                name: "a longer case",
                status: "401 Unauthorized".into(),
                seen: "refused".into(),
                expected: false,
            },
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("  case           status"), "{text}");
        assert!(
            lines[1].starts_with("  valid          200 OK            handler"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("! a longer case  401 Unauthorized  refused"),
            "{text}"
        );
    }
}
