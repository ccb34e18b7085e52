//! End to end: `qstash-receiver send` against the example receivers (`examples/`), the axum one
//! (tower-qstash) and the actix one (actix-qstash), each on a free loopback port.

#![allow(clippy::unwrap_used)] // test code: a failed set-up should fail the test

use qstash_examples::{Inbox, Seen, actix_app, axum_app};
use qstash_receiver::{DEV_CURRENT_SIGNING_KEY, SigningKeys, Verifier};
use std::net::SocketAddr;
use std::process::{Command, Output};

/// Starts the axum example receiver with the dev keys; returns its address.
fn axum_receiver(inbox: Inbox) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let config = tower_qstash::QStashConfig::new(Verifier::new(SigningKeys::dev()));
            axum::serve(listener, axum_app::router(config, inbox))
                .await
                .unwrap();
        });
    });
    addr
}

/// Starts the actix example receiver with the dev keys; returns its address.
fn actix_receiver(inbox: Inbox) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let config = actix_qstash::QStashConfig::new(Verifier::new(SigningKeys::dev()));
            let routes = actix_app::configure(config, inbox);
            actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
                .workers(1)
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
        });
    });
    addr
}

fn send(addr: SocketAddr, body: &str, extra: &[&str]) -> Output {
    let url = format!("http://{addr}/api/webhook");
    Command::new(env!("CARGO_BIN_EXE_qstash-receiver"))
        .args([
            "send",
            &url,
            "--body",
            body,
            "--key",
            DEV_CURRENT_SIGNING_KEY,
        ])
        .args(["--delay-scale", "0.001", "--timeout", "10"])
        .args(extra)
        .output()
        .unwrap()
}

fn deliveries(inbox: &Inbox) -> Vec<(String, u32, u32, u16)> {
    inbox
        .seen()
        .into_iter()
        .filter_map(|seen| match seen {
            Seen::Delivery { echo, status } => {
                Some((echo.message_id, echo.retried, echo.payload.order, status))
            }
            Seen::Callback { .. } => None,
        })
        .collect()
}

type Start = fn(Inbox) -> SocketAddr;
const RECEIVERS: [(&str, Start); 2] = [("axum", axum_receiver), ("actix", actix_receiver)];

#[test]
fn a_delivery_is_verified_and_handled() {
    for (name, start) in RECEIVERS {
        let inbox = Inbox::new();
        let addr = start(inbox.clone());
        let out = send(addr, r#"{"order":5}"#, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen = deliveries(&inbox);
        assert_eq!(seen.len(), 1, "{name}: {seen:?}");
        let (id, retried, order, status) = &seen[0];
        assert!(id.starts_with("msg_"), "{name}: {id}");
        assert_eq!((*retried, *order, *status), (0, 5, 200), "{name}");
    }
}

#[test]
fn retries_then_success_keep_the_message_id() {
    for (name, start) in RECEIVERS {
        let inbox = Inbox::failing_first(2);
        let addr = start(inbox.clone());
        let out = send(addr, r#"{"order":6}"#, &["--retries", "3"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen = deliveries(&inbox);
        let retried: Vec<_> = seen.iter().map(|(_, r, _, s)| (*r, *s)).collect();
        assert_eq!(retried, [(0, 503), (1, 503), (2, 200)], "{name}");
        assert!(
            seen.iter().all(|(id, ..)| *id == seen[0].0),
            "{name}: one message id"
        );
    }
}

#[test]
fn non_retryable_answer_ends_retries_and_the_failure_callback_arrives_signed() {
    for (name, start) in RECEIVERS {
        let inbox = Inbox::new();
        let addr = start(inbox.clone());
        let callback_url = format!("http://{addr}/api/callback");
        let body = r#"{"order":0}"#;
        let out = send(
            addr,
            body,
            &["--retries", "3", "--failure-callback", &callback_url],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen = deliveries(&inbox);
        assert_eq!(seen.len(), 1, "{name}: 489 must stop the retries: {seen:?}");
        assert_eq!(seen[0].3, 489, "{name}");
        // The callback route only sees callbacks whose signature (sub = the callback URL)
        // verified: its arrival is the proof.
        let callbacks: Vec<_> = inbox
            .seen()
            .into_iter()
            .filter_map(|seen| match seen {
                Seen::Callback { callback, .. } => Some(callback),
                Seen::Delivery { .. } => None,
            })
            .collect();
        assert_eq!(callbacks.len(), 1, "{name}");
        let callback = &callbacks[0];
        assert_eq!(callback.status, 489, "{name}");
        assert!(!callback.is_success(), "{name}");
        assert_eq!(
            callback.source_message_id.as_deref(),
            Some(seen[0].0.as_str()),
            "{name}"
        );
        assert_eq!(
            callback.url.as_deref(),
            Some(format!("http://{addr}/api/webhook").as_str())
        );
        assert_eq!(&callback.source_body[..], body.as_bytes(), "{name}");
        assert!(callback.max_retries.is_some(), "{name}");
    }
}
