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

use actix_qstash::{QStash, QStashCallback, QStashError};
use actix_web::{App, HttpResponse, HttpServer, web};
use qstash_examples::{
    CALLBACK_PATH, HEADER_READ_TIMEOUT, Inbox, Order, WEBHOOK_PATH, missing_keys, port_from_env,
};
use qstash_receiver::Receiver;

/// The extractor verifies with the `Receiver` in `app_data`. A refused order is the core's
/// `Answer`, written (and logged) as every refusal of the extractor is.
async fn webhook(
    inbox: web::Data<Inbox>,
    QStash {
        payload, delivery, ..
    }: QStash<Order>,
) -> Result<HttpResponse, QStashError> {
    let echo = inbox.handle_order(delivery.message_id, delivery.retried, payload)?;
    Ok(HttpResponse::Ok().json(echo))
}

async fn callback(
    inbox: web::Data<Inbox>,
    QStashCallback {
        callback, delivery, ..
    }: QStashCallback,
) -> String {
    inbox.handle_callback(delivery.message_id, callback)
}

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
    // Every refusal is one event on target `qstash_receiver` (debug for traffic that is most
    // likely not QStash's, warn otherwise): print them unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("qstash_receiver=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    // QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or QSTASH_DEV=1 (alone). Read
    // once, here: the extractors never read the environment themselves.
    let receiver = Receiver::from_env().map_err(|e| missing_keys(&e))?;
    let port = port_from_env()?;
    let inbox = web::Data::new(Inbox::new());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(receiver.clone())
            .app_data(inbox.clone())
            .route(WEBHOOK_PATH, web::post().to(webhook))
            .route(CALLBACK_PATH, web::post().to(callback))
    })
    // A request head must arrive within 5 s, and idle keep-alive connections are closed.
    .client_request_timeout(HEADER_READ_TIMEOUT)
    .keep_alive(HEADER_READ_TIMEOUT)
    // After an answer given before the body was read, actix-http reads and drops what the
    // client still sends for this long, then closes: the core's lingering time.
    .client_disconnect_timeout(qstash_receiver::receive::Linger::MAX_TIME)
    .bind(("127.0.0.1", port))?;
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
