//! Testing QStash handlers, two ways:
//!
//! - the handler alone, called with an extractor built by its constructor from a delivery the
//!   `Signer` signed and the pipeline verified (`Signer::verified`): no router, no HTTP;
//! - the whole route behind `QStashLayer`, with `tower::ServiceExt::oneshot` and a request
//!   signed like QStash signs it.
//!
//! ```sh
//! cargo run --example testing      # or: cargo test --example testing
//! ```

use std::error::Error;
use std::process::ExitCode;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::StatusCode;
use qstash_receiver::{Receiver, Signer, SigningKeys, Verifier};
use tower::ServiceExt as _;
use tower_qstash::{Layered, QStash, QStashLayer};

const CURRENT: &str = "sig_test_current";
const NEXT: &str = "sig_test_next";
const URL: &str = "https://my-app.example.com/api/webhook";

#[derive(Debug, serde::Deserialize)]
struct Order {
    order: u32,
}

/// The handler under test.
async fn webhook(
    QStash {
        payload, delivery, ..
    }: QStash<Order, Layered>,
) -> (StatusCode, String) {
    if payload.order == 0 {
        return (StatusCode::BAD_REQUEST, "no such order".to_owned());
    }
    let text = format!(
        "order {} (message {}, retried {})",
        payload.order, delivery.message_id, delivery.retried
    );
    (StatusCode::OK, text)
}

fn app() -> Result<Router, Box<dyn Error>> {
    let receiver = Receiver::new(Verifier::new(SigningKeys::new(CURRENT, NEXT)?));
    Ok(Router::new()
        .route("/api/webhook", post(webhook))
        .layer(QStashLayer::new(receiver)))
}

/// The handler alone: a verified delivery, then the extractor's constructor.
async fn handler_alone() -> Result<(), Box<dyn Error>> {
    let verified = Signer::new(CURRENT)?.verified(URL, br#"{"order":7}"#, "msg_test", 1)?;
    let order = verified.json::<Order>()?;
    let (claims, delivery, _body) = verified.into_parts();
    let (status, text) = webhook(QStash::new(order, delivery, claims)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "order 7 (message msg_test, retried 1)");
    Ok(())
}

async fn deliver(body: &[u8], signed_body: &[u8]) -> Result<(StatusCode, String), Box<dyn Error>> {
    let mut request = http::Request::post("/api/webhook").body(Body::from(body.to_vec()))?;
    *request.headers_mut() =
        Signer::new(CURRENT)?.delivery_headers(URL, signed_body, "msg_test", 1);
    let response = app()?.oneshot(request).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The whole route: the layer verifies, the handler answers.
async fn whole_route() -> Result<(), Box<dyn Error>> {
    let body = br#"{"order":7}"#;
    let (status, text) = deliver(body, body).await?;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, "order 7 (message msg_test, retried 1)");

    let (status, _) = deliver(br#"{"order":8}"#, body).await?;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a tampered body is refused"
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match async { handler_alone().await.and(whole_route().await) }.await {
        Ok(()) => {
            println!("OK");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_handler_alone() {
        super::handler_alone().await.unwrap();
    }

    #[tokio::test]
    async fn the_whole_route() {
        super::whole_route().await.unwrap();
    }
}
