//! A QStash receiver on actix-web, verified by `actix-qstash`'s extractors.
//!
//! ```sh
//! QSTASH_DEV=1 cargo run --example actix_receiver       # or set QSTASH_CURRENT/NEXT_SIGNING_KEY
//! qstash-receiver send http://127.0.0.1:3000/api/webhook --body '{"order":42}' \
//!     --callback http://127.0.0.1:3000/api/callback
//! ```
//!
//! Same routes and answers as `axum_receiver`.

use std::error::Error;
use std::io::Write as _;
use std::process::ExitCode;

use actix_qstash::QStashConfig;
use actix_web::{App, HttpServer};
use qstash_examples::{Inbox, actix_app, missing_keys, port_from_env};

#[actix_web::main]
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
    // QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or QSTASH_DEV=1. Read once, here:
    // the extractors never read the environment themselves.
    let config = QStashConfig::from_env().map_err(|e| missing_keys(&e))?;
    let port = port_from_env()?;
    let routes = actix_app::configure(config, Inbox::new());
    let server =
        HttpServer::new(move || App::new().configure(routes.clone())).bind(("127.0.0.1", port))?;
    let address = server
        .addrs()
        .first()
        .copied()
        .ok_or("the server is bound to no address")?;
    println!("listening on http://{address}");
    std::io::stdout().flush()?;
    server.run().await?;
    Ok(())
}
