//! The transactional inbox in axum (behind tower-qstash's `QStashLayer`) and actix-web
//! (behind actix-qstash's extractor): the handler writes through the transaction it is
//! handed, and both frameworks write the same `InboxAnswer`s: the inbox's own answers are the
//! core's `Answer`, logged once when written, on the core's target.
#![cfg(all(feature = "postgres", feature = "axum", feature = "actix"))]
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use http::HeaderMap;
use qstash_dedupe::{InboxAnswer, PgInbox};
use qstash_receiver::{Receiver, SigningKeys, receive::LogLevel};
use qstash_test_cases::{LogCapture, Logged};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

#[derive(serde::Deserialize)]
struct Order {
    order: i64,
    item: Option<String>,
}

async fn setup(schema: &str) -> Option<(PgPool, PgInbox)> {
    let server = support::postgres_server::server()?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&server.url)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema}; \
         CREATE TABLE {schema}.orders (message_id TEXT, order_id BIGINT, item TEXT)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let inbox = PgInbox::builder(pool.clone())
        .schema(schema)
        .build()
        .unwrap();
    inbox.migrate().await.unwrap();
    Some((pool, inbox))
}

/// The handler's work, the same for both frameworks: one row per order, in the delivery's
/// transaction; order 0 is refused for good (rolled back).
async fn store_order(
    inbox: &PgInbox,
    schema: &str,
    delivery: &qstash_receiver::Delivery,
    claims: &qstash_receiver::Claims,
    order: Order,
) -> Result<InboxAnswer, InboxAnswer> {
    let mut tx = inbox.begin(delivery, claims).await?;
    sqlx::query(&format!(
        "INSERT INTO {schema}.orders (message_id, order_id, item) VALUES ($1, $2, $3)"
    ))
    .bind(tx.message_id().to_owned())
    .bind(order.order)
    .bind(order.item)
    .execute(&mut *tx)
    .await?;
    if order.order == 0 {
        return Ok(tx
            .finish(InboxAnswer::non_retryable("order 0 does not exist"))
            .await);
    }
    Ok(tx
        .finish(InboxAnswer::ok(format!("stored order {}", order.order)))
        .await)
}

async fn orders(pool: &PgPool, schema: &str, id: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {schema}.orders WHERE message_id = $1"
    ))
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The one event the answer to `id` logged: its reason and level.
#[track_caller]
fn logged_once(capture: &LogCapture, id: &str) -> Logged {
    let mut events = capture.take(id);
    assert_eq!(events.len(), 1, "{id}: {events:?}");
    events.remove(0)
}

fn signed(id: &str, retried: u32, body: &[u8]) -> HeaderMap {
    support::delivery_headers(id, retried, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_handler_writes_through_the_transaction() {
    use axum::Router;
    use axum::extract::State;
    use axum::routing::post;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    use tower_qstash::{Layered, QStash, QStashLayer};

    const SCHEMA: &str = "frameworks_axum";
    let Some((pool, inbox)) = setup(SCHEMA).await else {
        return;
    };
    let capture = LogCapture::global();
    async fn webhook(
        State(inbox): State<PgInbox>,
        QStash {
            payload,
            delivery,
            claims,
            ..
        }: QStash<Order, Layered>,
    ) -> Result<InboxAnswer, InboxAnswer> {
        store_order(&inbox, SCHEMA, &delivery, &claims, payload).await
    }
    let app = Router::new()
        .route(support::PATH, post(webhook))
        .with_state(inbox)
        .layer(QStashLayer::new(Receiver::from(SigningKeys::dev())));
    let send = |id: &str, retried: u32, body: &'static [u8]| {
        let mut request = http::Request::post(support::PATH)
            .body(axum::body::Body::from(body))
            .unwrap();
        *request.headers_mut() = signed(id, retried, body);
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            (parts, body.collect().await.unwrap().to_bytes())
        }
    };

    let (first, body) = send("msg_ax", 0, br#"{"order":7,"item":"tea"}"#).await;
    assert_eq!(first.status, 200);
    assert_eq!(body.as_ref(), b"stored order 7");
    assert!(
        capture.take("msg_ax").is_empty(),
        "a handled delivery logs nothing"
    );
    let (again, body) = send("msg_ax", 1, br#"{"order":7,"item":"tea"}"#).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["x-qstash-duplicate"], "true");
    assert_eq!(
        body.as_ref(),
        b"stored order 7",
        "the stored answer, replayed"
    );
    let event = logged_once(&capture, "msg_ax");
    assert_eq!(event.reason(), "duplicate");
    assert_eq!(event.level, LogLevel::Debug);
    assert_eq!(orders(&pool, SCHEMA, "msg_ax").await, 1);

    let (refused, _) = send("msg_ax0", 0, br#"{"order":0}"#).await;
    assert_eq!(refused.status, 489);
    assert_eq!(refused.headers["upstash-nonretryable-error"], "true");
    let event = logged_once(&capture, "msg_ax0");
    assert_eq!(event.reason(), "do_not_retry");
    assert_eq!(event.level, LogLevel::Warn);
    assert_eq!(orders(&pool, SCHEMA, "msg_ax0").await, 0, "rolled back");
}

#[actix_web::test]
async fn actix_handler_writes_through_the_transaction() {
    use actix_qstash::QStash;
    use actix_web::{App, test, web};

    const SCHEMA: &str = "frameworks_actix";
    let Some((pool, inbox)) = setup(SCHEMA).await else {
        return;
    };
    let capture = LogCapture::global();
    async fn webhook(
        inbox: web::Data<PgInbox>,
        QStash {
            payload,
            delivery,
            claims,
            ..
        }: QStash<Order>,
    ) -> InboxAnswer {
        store_order(&inbox, SCHEMA, &delivery, &claims, payload)
            .await
            .unwrap_or_else(|answer| answer)
    }
    let app = test::init_service(
        App::new()
            .app_data(Receiver::from(SigningKeys::dev()))
            .app_data(web::Data::new(inbox))
            .route(support::PATH, web::post().to(webhook)),
    )
    .await;
    let request = |id: &str, retried: u32, body: &'static [u8]| {
        signed(id, retried, body)
            .iter()
            .fold(
                test::TestRequest::post().uri(support::PATH),
                |req, (name, value)| req.insert_header((name.as_str(), value.to_str().unwrap())),
            )
            .set_payload(body)
            .to_request()
    };

    let first = test::call_service(&app, request("msg_ac", 0, br#"{"order":8}"#)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(test::read_body(first).await.as_ref(), b"stored order 8");
    assert!(
        capture.take("msg_ac").is_empty(),
        "a handled delivery logs nothing"
    );
    let again = test::call_service(&app, request("msg_ac", 1, br#"{"order":8}"#)).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers().get("x-qstash-duplicate").unwrap(), "true");
    assert_eq!(test::read_body(again).await.as_ref(), b"stored order 8");
    let event = logged_once(&capture, "msg_ac");
    assert_eq!(event.reason(), "duplicate");
    assert_eq!(event.fields["method"], "POST");
    assert_eq!(orders(&pool, SCHEMA, "msg_ac").await, 1);

    let refused = test::call_service(&app, request("msg_ac0", 0, br#"{"order":0}"#)).await;
    assert_eq!(refused.status(), 489);
    assert_eq!(
        refused.headers().get("upstash-nonretryable-error").unwrap(),
        "true"
    );
    let event = logged_once(&capture, "msg_ac0");
    assert_eq!(event.reason(), "do_not_retry");
    assert_eq!(event.fields["method"], "POST");
    assert_eq!(orders(&pool, SCHEMA, "msg_ac0").await, 0, "rolled back");
}
