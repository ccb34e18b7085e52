//! Rotating signing keys while serving, without a restart.
//!
//! ```sh
//! printf 'sig_current...\nsig_next...\n' > keys.txt
//! QSTASH_KEYS_FILE=keys.txt cargo run --example key_rotation
//! ```
//!
//! After a rotation in the QStash console the old next key becomes the current one. This
//! receiver re-reads a two-line key file (current, then next) every few seconds and calls
//! `Verifier::rotate`, which swaps the keys atomically for every clone of the verifier: no
//! delivery is verified with half-old, half-new keys, and none is dropped (verification tries
//! the current key, then the next).

use std::error::Error;
use std::io::Write as _;
use std::time::Duration;

use std::process::ExitCode;

use axum::Router;
use axum::routing::post;
use qstash_examples::{WEBHOOK_PATH, port_from_env, serve_axum};
use qstash_receiver::{Receiver, SigningKeys, Verifier};
use tower_qstash::{QStashLayer, QStashRaw};

fn read_keys(path: &str) -> Result<SigningKeys, Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let (Some(current), Some(next)) = (lines.next(), lines.next()) else {
        return Err(format!("{path}: expected two lines, the current and the next key").into());
    };
    Ok(SigningKeys::new(current, next)?)
}

/// Any verified delivery: which key matched tells whether QStash has rotated yet.
async fn webhook(delivery: QStashRaw<tower_qstash::Layered>) -> String {
    format!(
        "{} verified with the {:?} key",
        delivery.delivery.message_id,
        delivery.claims.matched_key()
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let path = std::env::var("QSTASH_KEYS_FILE").map_err(
        |_| "set QSTASH_KEYS_FILE to a file with two lines: the current and the next signing key",
    )?;
    let verifier = Verifier::new(read_keys(&path)?);

    // The server gets a clone; this task keeps one to rotate.
    let rotating = verifier.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            match read_keys(&path) {
                Ok(keys) => rotating.rotate(keys),
                // Keep the keys we have: a half-written file must not stop deliveries.
                Err(error) => eprintln!("keeping the current keys: {error}"),
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port_from_env()?)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let app = Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .layer(QStashLayer::new(Receiver::new(verifier)));
    serve_axum(listener, app).await?;
    Ok(())
}
