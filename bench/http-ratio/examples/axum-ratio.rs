//! The axum example receiver's router (`examples/axum_receiver.rs`: both routes behind
//! `QStashLayer`), a bare route of the same handler logic with `axum::Json`, and that bare
//! route behind a middleware that does nothing, in one server (the examples' `serve_axum`). See the crate docs and `scripts/http-ratio.sh`.

use std::error::Error;
use std::io::Write as _;
use std::process::ExitCode;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use qstash_examples::{Echo, Inbox, Order, port_from_env, serve_axum};
use qstash_http_ratio::{BARE_PATH, NOOP_LAYER_PATH, unverified_fields};
use qstash_receiver::Receiver;

/// The example's own source, compiled here (its `main` and `run` unused: this server has its
/// own), so the verified route is exactly the example's.
#[allow(dead_code)]
mod example {
    include!(concat!(env!("OUT_DIR"), "/axum_receiver.rs"));

    /// The example's router.
    pub(super) fn app(receiver: Receiver, inbox: Inbox) -> Router {
        router(receiver, inbox)
    }
}

/// The example's webhook logic without verification: the payload through `axum::Json`, the
/// message id and retry count read from the headers as they come.
async fn bare(
    State(inbox): State<Inbox>,
    headers: HeaderMap,
    Json(order): Json<Order>,
) -> Result<Json<Echo>, (StatusCode, String)> {
    let (message_id, retried) =
        unverified_fields(|name| headers.get(name).map(|value| value.as_bytes()));
    inbox
        .handle_order(message_id, retried, order)
        .map(Json)
        .map_err(|answer| (answer.status(), answer.body_text().to_owned()))
}

/// A middleware that does nothing but call the rest of the route: what any `axum::middleware`
/// costs a request (served at [`NOOP_LAYER_PATH`], the bare route's handler behind it).
async fn noop(request: Request, next: Next) -> Response {
    next.run(request).await
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
    let receiver = Receiver::from_env()?;
    let port = port_from_env()?;
    let inbox = Inbox::new();
    let app = Router::new()
        .route(BARE_PATH, post(bare))
        .with_state(inbox.clone())
        .merge(
            Router::new()
                .route(NOOP_LAYER_PATH, post(bare))
                .with_state(inbox.clone())
                .layer(axum::middleware::from_fn(noop)),
        )
        .merge(example::app(receiver, inbox));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    serve_axum(listener, app).await?;
    Ok(())
}
