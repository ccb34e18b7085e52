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

use qstash_examples::{Inbox, axum_app, port_from_env};
use qstash_receiver::{SigningKeys, Verifier};
use tower_qstash::QStashConfig;

fn read_keys(path: &str) -> Result<SigningKeys, Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let (Some(current), Some(next)) = (lines.next(), lines.next()) else {
        return Err(format!("{path}: expected two lines, the current and the next key").into());
    };
    Ok(SigningKeys::new(current, next)?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
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
    axum::serve(
        listener,
        axum_app::router(QStashConfig::new(verifier), Inbox::new()),
    )
    .await?;
    Ok(())
}
