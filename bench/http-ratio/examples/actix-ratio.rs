//! The actix example receiver's handlers (`examples/actix_receiver.rs`: the `QStash<Order>`
//! and `QStashCallback` extractors), with that example's app data and server settings, and a
//! bare route of the same handler logic with `web::Json`, in one server. See the crate docs and
//! `scripts/http-ratio.sh`.

use std::error::Error;
use std::io::Write as _;
use std::process::ExitCode;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use qstash_examples::{HEADER_READ_TIMEOUT, Inbox, Order, port_from_env};
use qstash_http_ratio::{BARE_PATH, unverified_fields};
use qstash_receiver::Receiver;

/// The example's own source, compiled here (its `main` and `run` unused: this server has its
/// own), so the verified route runs exactly the example's handlers.
#[allow(dead_code)]
mod example {
    include!(concat!(env!("OUT_DIR"), "/actix_receiver.rs"));

    /// The example's app data and routes, as its `run` registers them on its `App`.
    pub(super) fn configure(
        receiver: Receiver,
        inbox: web::Data<Inbox>,
    ) -> impl FnOnce(&mut web::ServiceConfig) {
        move |config| {
            config
                .app_data(receiver)
                .app_data(inbox)
                .route(WEBHOOK_PATH, web::post().to(webhook))
                .route(CALLBACK_PATH, web::post().to(callback));
        }
    }
}

/// The example's webhook logic without verification: the payload through `web::Json`, the
/// message id and retry count read from the headers as they come.
async fn bare(
    inbox: web::Data<Inbox>,
    request: HttpRequest,
    order: web::Json<Order>,
) -> HttpResponse {
    let headers = request.headers();
    let (message_id, retried) =
        unverified_fields(|name| headers.get(name).map(|value| value.as_bytes()));
    match inbox.handle_order(message_id, retried, order.into_inner()) {
        Ok(echo) => HttpResponse::Ok().json(echo),
        Err(answer) => HttpResponse::build(
            StatusCode::from_u16(answer.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )
        .body(answer.body_text().to_owned()),
    }
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
    let receiver = Receiver::from_env()?;
    let port = port_from_env()?;
    let inbox = web::Data::new(Inbox::new());
    let server = HttpServer::new(move || {
        // The bare route first: actix-web tries routes in order, so the verified one pays for
        // the extra miss, not the bare one.
        App::new()
            .route(BARE_PATH, web::post().to(bare))
            .configure(example::configure(receiver.clone(), inbox.clone()))
    })
    .client_request_timeout(HEADER_READ_TIMEOUT)
    .keep_alive(HEADER_READ_TIMEOUT)
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
