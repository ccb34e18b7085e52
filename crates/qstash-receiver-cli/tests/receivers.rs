//! End to end: `qstash-receiver send` against an axum receiver (tower-qstash) and an actix-web
//! one (actix-qstash), each on a free loopback port.

#![allow(clippy::unwrap_used)] // test code: a failed set-up should fail the test

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use qstash_receiver::{
    Callback, Receiver, SigningKeys, headers::NON_RETRYABLE_HEADER, keys::DEV_CURRENT_SIGNING_KEY,
};

#[derive(Debug, Clone, serde::Deserialize)]
struct Order {
    order: u32,
}

#[derive(Debug, Clone)]
enum Seen {
    Delivery {
        message_id: String,
        retried: u32,
        order: u32,
        status: u16,
    },
    Callback(Box<Callback>),
}

/// What the receivers saw; the webhook answers 503 to the first `fail_first` deliveries and
/// 489 (non-retryable) to order 0, as a real handler might.
#[derive(Debug, Clone, Default)]
struct Inbox {
    seen: Arc<Mutex<Vec<Seen>>>,
    fail_first: Arc<Mutex<u32>>,
}

impl Inbox {
    fn failing_first(n: u32) -> Self {
        let inbox = Self::default();
        *inbox.fail_first.lock().unwrap() = n;
        inbox
    }

    fn order(&self, message_id: String, retried: u32, order: u32) -> u16 {
        let mut failing = self.fail_first.lock().unwrap();
        let status = if *failing > 0 {
            *failing -= 1;
            503
        } else if order == 0 {
            489
        } else {
            200
        };
        self.seen.lock().unwrap().push(Seen::Delivery {
            message_id,
            retried,
            order,
            status,
        });
        status
    }

    fn callback(&self, callback: Callback) {
        self.seen
            .lock()
            .unwrap()
            .push(Seen::Callback(Box::new(callback)));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn dev_receiver() -> Receiver {
    Receiver::from(SigningKeys::dev())
}

/// An axum receiver behind tower-qstash's layer, with the dev keys; returns its address.
fn axum_receiver(inbox: Inbox) -> SocketAddr {
    use axum::extract::State;
    use axum::routing::post;
    use tower_qstash::{Layered, QStash, QStashCallback, QStashLayer};

    async fn webhook(
        State(inbox): State<Inbox>,
        QStash {
            payload, delivery, ..
        }: QStash<Order, Layered>,
    ) -> http::Response<axum::body::Body> {
        let status = inbox.order(delivery.message_id, delivery.retried, payload.order);
        let mut response = http::Response::builder().status(status);
        if status == 489 {
            response = response.header(NON_RETRYABLE_HEADER, "true");
        }
        response.body(axum::body::Body::empty()).unwrap()
    }
    async fn callback(State(inbox): State<Inbox>, extracted: QStashCallback<Layered>) {
        inbox.callback(extracted.callback);
    }

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
            let app = axum::Router::new()
                .route("/api/webhook", post(webhook))
                .route("/api/callback", post(callback))
                .with_state(inbox)
                .layer(QStashLayer::new(dev_receiver()));
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

/// An actix-web receiver with actix-qstash's extractors, with the dev keys.
fn actix_receiver(inbox: Inbox) -> SocketAddr {
    use actix_qstash::{QStash, QStashCallback};
    use actix_web::{HttpResponse, web};

    async fn webhook(inbox: web::Data<Inbox>, extracted: QStash<Order>) -> HttpResponse {
        let QStash {
            payload, delivery, ..
        } = extracted;
        let status = inbox.order(delivery.message_id, delivery.retried, payload.order);
        let mut response =
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
        if status == 489 {
            response.insert_header((NON_RETRYABLE_HEADER, "true"));
        }
        response.finish()
    }
    async fn callback(inbox: web::Data<Inbox>, extracted: QStashCallback) -> HttpResponse {
        inbox.callback(extracted.callback);
        HttpResponse::Ok().finish()
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let inbox = web::Data::new(inbox);
            actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .app_data(dev_receiver())
                    .app_data(inbox.clone())
                    .route("/api/webhook", web::post().to(webhook))
                    .route("/api/callback", web::post().to(callback))
            })
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
            Seen::Delivery {
                message_id,
                retried,
                order,
                status,
            } => Some((message_id, retried, order, status)),
            Seen::Callback(_) => None,
        })
        .collect()
}

type Start = fn(Inbox) -> SocketAddr;
const RECEIVERS: [(&str, Start); 2] = [("axum", axum_receiver), ("actix", actix_receiver)];

#[test]
fn a_delivery_is_verified_and_handled() {
    for (name, start) in RECEIVERS {
        let inbox = Inbox::default();
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
        let inbox = Inbox::default();
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
                Seen::Callback(callback) => Some(callback),
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
