//! Exactly-once effects: each QStash message's writes commit once, in one PostgreSQL
//! transaction with its message-id mark (qstash-dedupe's `PgInbox`), behind `QStashLayer`.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1/postgres QSTASH_DEV=1 \
//!     cargo run --example postgres_receiver          # or set QSTASH_CURRENT/NEXT_SIGNING_KEY
//! qstash-receiver send http://127.0.0.1:3000/api/webhook --body '{"order":42,"item":"tea"}'
//! ```
//!
//! At start it creates what it needs: the table `orders(message_id TEXT, order_id BIGINT,
//! item TEXT)` (no unique key: exactly-once comes from the inbox) and the inbox table.
//! `POST /api/webhook` takes an `Order` (`{"order": N, "item": "..."}`), inserts one row into
//! `orders` in the delivery's transaction and answers 200; order 0 answers 489 (not retried)
//! and rolls back. A duplicate gets the stored answer without a second row.
//!
//! Environment: `DATABASE_URL` (required), `PORT` (3000), `DATABASE_POOL` (pool size, 10),
//! the QStash keys as the other examples. For comparisons (`scripts/chaos.sh`,
//! `scripts/inbox-bench.sh`), `INBOX_MODE` picks how duplicates are handled:
//! `postgres` (default, the inbox), `none` (the same insert in its own transaction, no
//! dedupe), `redis` (qstash-dedupe's `DedupeLayer` over Redis at `REDIS_URL`, marks apart
//! from the insert; lease `DEDUPE_LEASE_SECS`, 60).

use std::error::Error;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use http::StatusCode;
use qstash_dedupe::{DedupeLayer, Deduplicator, InboxAnswer, PgInbox, RedisStore};
use qstash_examples::{Order, WEBHOOK_PATH, missing_keys, port_from_env, serve_axum};
use qstash_receiver::Receiver;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tower_qstash::{Layered, QStash, QStashLayer};

const CREATE_ORDERS: &str =
    "CREATE TABLE IF NOT EXISTS orders (message_id TEXT, order_id BIGINT, item TEXT)";
const INSERT_ORDER: &str = "INSERT INTO orders (message_id, order_id, item) VALUES ($1, $2, $3)";

/// The inbox: the order's row and the message's mark commit together, or not at all.
async fn webhook(
    State(inbox): State<PgInbox>,
    QStash {
        payload,
        delivery,
        claims,
        ..
    }: QStash<Order, Layered>,
) -> Result<InboxAnswer, InboxAnswer> {
    let mut tx = inbox.begin(&delivery, &claims).await?;
    if payload.order == 0 {
        // Rolled back: a retry from the dead-letter queue (after a fix) runs again.
        return Ok(tx
            .finish(InboxAnswer::non_retryable("order 0 does not exist"))
            .await);
    }
    sqlx::query(INSERT_ORDER)
        .bind(tx.message_id().to_owned())
        .bind(i64::from(payload.order))
        .bind(payload.item)
        .execute(&mut *tx)
        .await?;
    Ok(tx
        .finish(InboxAnswer::ok(format!("stored order {}", payload.order)))
        .await)
}

/// Without the inbox (modes `none` and `redis`): the same insert in its own transaction.
async fn webhook_plain(
    State(pool): State<PgPool>,
    QStash {
        payload, delivery, ..
    }: QStash<Order, Layered>,
) -> Result<InboxAnswer, InboxAnswer> {
    if payload.order == 0 {
        return Ok(InboxAnswer::non_retryable("order 0 does not exist"));
    }
    let mut tx = pool.begin().await?;
    sqlx::query(INSERT_ORDER)
        .bind(&delivery.message_id)
        .bind(i64::from(payload.order))
        .bind(payload.item)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(InboxAnswer::new(
        StatusCode::OK,
        format!("stored order {}", payload.order),
    ))
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

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not {value:?}")),
        Err(_) => Ok(default),
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("qstash_receiver=warn,qstash_dedupe=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let receiver = Receiver::from_env().map_err(|e| missing_keys(&e))?;
    let port = port_from_env()?;
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is not set (e.g. postgres://user@127.0.0.1/db)")?;
    // The URL is not printed in errors: it may carry a password.
    let options: PgConnectOptions = url
        .parse()
        .map_err(|_| "DATABASE_URL is not a valid PostgreSQL URL")?;
    // A statement that hangs becomes a 503 (QStash retries), not a request held forever.
    let options = options.options([("statement_timeout", "10s")]);
    let pool_size = u32::try_from(env_number("DATABASE_POOL", 10)?)?;
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        // Pool exhausted: answer 503 after 3 s rather than queue without bound.
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
        .map_err(|e| {
            format!(
                "cannot connect to DATABASE_URL: {}",
                e.to_string().lines().next().unwrap_or("")
            )
        })?;
    sqlx::query(CREATE_ORDERS).execute(&pool).await?;

    let mode = std::env::var("INBOX_MODE").unwrap_or_else(|_| "postgres".to_owned());
    let app = match mode.as_str() {
        "postgres" => {
            let inbox = PgInbox::new(pool);
            inbox.migrate().await?;
            // Retention: expired marks go in batches, on a timer, never per request.
            let cleaner = inbox.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(300));
                loop {
                    every.tick().await;
                    if let Err(error) = cleaner.cleanup().await {
                        eprintln!("inbox cleanup failed: {error}");
                    }
                }
            });
            Router::new()
                .route(WEBHOOK_PATH, post(webhook))
                .with_state(inbox)
        }
        "none" => Router::new()
            .route(WEBHOOK_PATH, post(webhook_plain))
            .with_state(pool),
        "redis" => {
            let store = RedisStore::from_env().await?;
            let lease = Duration::from_secs(env_number("DEDUPE_LEASE_SECS", 60)?);
            Router::new()
                .route(WEBHOOK_PATH, post(webhook_plain))
                .with_state(pool)
                .layer(DedupeLayer::new(Deduplicator::new(store).lease(lease)))
        }
        other => {
            return Err(
                format!("INBOX_MODE must be postgres, none or redis, not {other:?}").into(),
            );
        }
    };
    let app = app.layer(QStashLayer::new(receiver));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{} ({mode})", listener.local_addr()?);
    std::io::stdout().flush()?;
    serve_axum(listener, app).await?;
    Ok(())
}
