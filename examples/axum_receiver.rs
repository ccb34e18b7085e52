//! A QStash receiver on axum, verified by `tower-qstash`.
//!
//! ```sh
//! QSTASH_DEV=1 cargo run --example axum_receiver        # or set QSTASH_CURRENT/NEXT_SIGNING_KEY
//! qstash-receiver send http://127.0.0.1:3000/api/webhook --body '{"order":42}' \
//!     --callback http://127.0.0.1:3000/api/callback
//! ```
//!
//! `POST /api/webhook` takes an `Order` as JSON and answers its echo (message id, retried,
//! payload); `POST /api/callback` takes callbacks and failure callbacks.

use std::error::Error;
use std::io::Write as _;
use std::process::ExitCode;

use qstash_examples::{Inbox, axum_app, missing_keys, port_from_env};
use tower_qstash::QStashConfig;

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
    // QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or QSTASH_DEV=1.
    let config = QStashConfig::from_env().map_err(|e| missing_keys(&e))?;
    let port = port_from_env()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = axum_app::router(config, Inbox::new());
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
