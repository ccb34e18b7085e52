//! Unit-testing your own handler with the core's `Signer`.
//!
//! ```sh
//! cargo run --example testing     # runs the checks below and prints OK
//! ```
//!
//! `Signer` makes tokens exactly as QStash does, and `delivery_headers` the whole header set of
//! a delivery, so a test can send your router real deliveries (and tampered ones) without
//! QStash, a tunnel or a clock trick.

use std::error::Error;

use axum::body::Body;
use http::StatusCode;
use qstash_examples::{Inbox, axum_app};
use qstash_receiver::{Signer, SigningKeys, Verifier};
use tower::ServiceExt as _;
use tower_qstash::QStashConfig;

const CURRENT: &str = "sig_test_current";
const NEXT: &str = "sig_test_next";

async fn deliver(body: &[u8], signed_body: &[u8]) -> Result<(StatusCode, String), Box<dyn Error>> {
    let verifier = Verifier::new(SigningKeys::new(CURRENT, NEXT)?);
    let app = axum_app::router(QStashConfig::new(verifier), Inbox::new());
    let mut request = http::Request::post("/api/webhook").body(Body::from(body.to_vec()))?;
    *request.headers_mut() = Signer::new(CURRENT)?.delivery_headers(
        "https://my-app.example.com/api/webhook",
        signed_body,
        "msg_test",
        1,
    );
    let response = app.oneshot(request).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

async fn checks() -> Result<(), Box<dyn Error>> {
    let body = br#"{"order":7}"#;
    let (status, text) = deliver(body, body).await?;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("msg_test") && text.contains("\"retried\":1"),
        "{text}"
    );

    let (status, _) = deliver(br#"{"order":8}"#, body).await?;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a tampered body must be refused"
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    checks().await?;
    println!("OK");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn handler_sees_verified_deliveries_only() {
        super::checks().await.unwrap();
    }
}
