//! The transactional inbox against a real PostgreSQL (started by the tests; see
//! `support/postgres_server.rs`).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::StatusCode;
use qstash_dedupe::{InboxAnswer, InboxAnswerKind, InboxError, InboxTransaction, PgInbox};
use qstash_receiver::{Answer, Claims, Delivery};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The inbox answered with the core's `want`, for the delivery `message_id`: the same
/// reason, status, headers and body (the detail, for logs only, may differ).
#[track_caller]
fn is_core(got: &InboxAnswer, want: &Answer, message_id: &str) {
    let core = got.answer().expect("the core's answer, not a handler's");
    assert_eq!(core.reason(), want.reason(), "{core:?}");
    assert_eq!(core.status(), want.status(), "{core:?}");
    assert_eq!(
        core.headers().collect::<Vec<_>>(),
        want.headers().collect::<Vec<_>>(),
        "{core:?}"
    );
    assert_eq!(core.body(), want.body(), "{core:?}");
    assert_eq!(core.message_id(), Some(message_id), "{core:?}");
    assert_eq!(got.status(), want.status());
    assert_eq!(
        got.headers().collect::<Vec<_>>(),
        want.headers().collect::<Vec<_>>()
    );
    assert_eq!(got.body(), want.body());
}

/// A fresh schema per test: tests share one server and run at once.
fn schema_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

struct Setup {
    pool: PgPool,
    schema: String,
}

impl Setup {
    async fn new(max_connections: u32) -> Option<Self> {
        let server = support::postgres_server::server()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&server.url)
            .await
            .unwrap();
        let schema = schema_name();
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.effects (message_id TEXT NOT NULL); \
             CREATE TABLE {schema}.rows (k INT PRIMARY KEY, v INT NOT NULL); \
             INSERT INTO {schema}.rows VALUES (1, 0), (2, 0)"
        ))
        .execute(&pool)
        .await
        .unwrap();
        Some(Self { pool, schema })
    }

    fn builder(&self) -> qstash_dedupe::PgInboxBuilder {
        PgInbox::builder(self.pool.clone())
            .schema(&self.schema)
            .table("inbox")
    }

    async fn inbox(&self) -> PgInbox {
        let inbox = self.builder().build().unwrap();
        inbox.migrate().await.unwrap();
        inbox
    }

    async fn effects(&self, id: &str) -> i64 {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}.effects WHERE message_id = $1",
            self.schema
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    async fn marks(&self) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}.inbox", self.schema))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    fn effect_sql(&self) -> String {
        format!(
            "INSERT INTO {}.effects (message_id) VALUES ($1)",
            self.schema
        )
    }
}

/// Attempt `retried` of message `id`, as the verification hands it on (a fresh token).
fn attempt(id: &str, retried: u32) -> (Delivery, Claims) {
    let headers = support::delivery_headers(id, retried, b"");
    support::verify(&headers, b"")
}

/// Claims the message and writes its effect, or returns what the inbox answered.
async fn claim(setup: &Setup, inbox: &PgInbox, id: &str) -> Result<InboxTransaction, InboxAnswer> {
    let (delivery, claims) = attempt(id, 0);
    let mut tx = inbox.begin(&delivery, &claims).await?;
    sqlx::query(&setup.effect_sql())
        .bind(tx.message_id().to_owned())
        .execute(&mut *tx)
        .await
        .unwrap();
    Ok(tx)
}

/// [`claim`], again while another attempt holds the message: the attempt of a connection
/// closed unsettled (a panic, a dropped future) holds it until the server has noticed the
/// close and rolled back, a moment later. Polls for at most 10 s.
async fn claim_when_released(
    setup: &Setup,
    inbox: &PgInbox,
    id: &str,
) -> Result<InboxTransaction, InboxAnswer> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match claim(setup, inbox, id).await {
            Err(answer)
                if answer.kind() == InboxAnswerKind::Busy
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// One whole delivery whose handler answers `status`.
async fn deliver(setup: &Setup, inbox: &PgInbox, id: &str, status: u16) -> InboxAnswer {
    match claim(setup, inbox, id).await {
        Ok(tx) => {
            tx.finish(InboxAnswer::new(
                StatusCode::from_u16(status).unwrap(),
                "handled",
            ))
            .await
        }
        Err(answer) => answer,
    }
}

macro_rules! setup {
    ($connections:expr) => {
        match Setup::new($connections).await {
            Some(setup) => setup,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_commits_and_a_duplicate_replays_without_running() {
    let setup = setup!(4);
    let inbox = setup.inbox().await;
    let first = deliver(&setup, &inbox, "msg_a", 200).await;
    assert_eq!(first.kind(), InboxAnswerKind::Handler);
    assert_eq!(setup.effects("msg_a").await, 1);
    assert_eq!(setup.marks().await, 1);

    let again = deliver(&setup, &inbox, "msg_a", 200).await;
    assert_eq!(again.kind(), InboxAnswerKind::Duplicate);
    assert_eq!(again.status(), 200);
    assert_eq!(again.body().as_ref(), b"handled");
    assert!(
        again
            .headers()
            .any(|(n, v)| n == "x-qstash-duplicate" && v == "true")
    );
    assert_eq!(
        setup.effects("msg_a").await,
        1,
        "the handler did not run again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_other_answer_rolls_back_and_the_retry_runs() {
    let setup = setup!(4);
    let inbox = setup.inbox().await;
    for status in [489, 500, 503, 409, 302] {
        let answer = deliver(&setup, &inbox, "msg_b", status).await;
        assert_eq!(answer.kind(), InboxAnswerKind::Handler, "{status}");
        assert_eq!(answer.status(), status);
        assert_eq!(setup.effects("msg_b").await, 0, "{status} rolled back");
        assert_eq!(setup.marks().await, 0, "{status} left no mark");
    }
    let done = deliver(&setup, &inbox, "msg_b", 201).await;
    assert_eq!(done.status(), 201);
    assert_eq!(setup.effects("msg_b").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_answer_is_replayed_with_a_bounded_body() {
    let setup = setup!(4);
    let inbox = setup.builder().replay_body_limit(100).build().unwrap();
    inbox.migrate().await.unwrap();
    let body = vec![b'x'; 10_000];
    let tx = claim(&setup, &inbox, "msg_c").await.unwrap();
    let answer = InboxAnswer::new(StatusCode::CREATED, body.clone())
        .content_type(http::HeaderValue::from_static("application/json"));
    let sent = tx.finish(answer).await;
    assert_eq!(sent.body().len(), 10_000, "the first answer is sent whole");

    let replay = deliver(&setup, &inbox, "msg_c", 200).await;
    assert_eq!(replay.kind(), InboxAnswerKind::Duplicate);
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.body().as_ref(), &body[..100]);
    assert_eq!(replay.body_content_type(), "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_a_panic_and_a_dropped_future_roll_back() {
    // One connection: the next delivery waits until the dropped transaction's connection is
    // back in the pool, which sqlx returns only after flushing the rollback.
    let setup = setup!(1);
    let inbox = setup.inbox().await;

    // `?` in a handler: the transaction is dropped on the way out.
    let handler = async {
        let mut tx = claim(&setup, &inbox, "msg_d").await?;
        sqlx::query("SELECT * FROM no_such_table")
            .execute(&mut *tx)
            .await?;
        Ok::<_, InboxAnswer>(tx.finish(InboxAnswer::ok("unreachable")).await)
    };
    let answer = handler.await.unwrap_err();
    assert_eq!(answer.kind(), InboxAnswerKind::Failed);
    assert_eq!(answer.status(), 500);

    // A panic after the effect was written.
    let (s, i) = (
        Setup {
            pool: setup.pool.clone(),
            schema: setup.schema.clone(),
        },
        inbox.clone(),
    );
    let panicked = tokio::spawn(async move {
        let _tx = claim(&s, &i, "msg_d").await.unwrap();
        panic!("handler panicked");
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());

    // A future dropped (the request cancelled) while its transaction is open.
    let (written, wrote) = tokio::sync::oneshot::channel();
    let (s, i) = (
        Setup {
            pool: setup.pool.clone(),
            schema: setup.schema.clone(),
        },
        inbox.clone(),
    );
    let cancelled = tokio::spawn(async move {
        let _tx = claim_when_released(&s, &i, "msg_d").await.unwrap();
        written.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    wrote.await.unwrap();
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());

    assert_eq!(setup.effects("msg_d").await, 0);
    assert_eq!(setup.marks().await, 0);
    let answer = match claim_when_released(&setup, &inbox, "msg_d").await {
        Ok(tx) => tx.finish(InboxAnswer::ok("handled")).await,
        Err(answer) => answer,
    };
    assert_eq!(
        answer.kind(),
        InboxAnswerKind::Handler,
        "nothing blocks the retry"
    );
    assert_eq!(setup.effects("msg_d").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_duplicate_gets_409_then_the_stored_answer() {
    let setup = setup!(4);
    let inbox = setup.inbox().await;
    let first = claim(&setup, &inbox, "msg_e").await.unwrap();
    let busy = claim(&setup, &inbox, "msg_e").await.unwrap_err();
    assert_eq!(busy.kind(), InboxAnswerKind::Busy);
    assert_eq!(busy.status(), 409);
    assert_eq!(busy.retry_after_secs(), Some(5));
    assert!(busy.headers().any(|(n, _)| n == "x-qstash-duplicate"));
    is_core(&busy, &Answer::in_progress(5), "msg_e");

    let _ = first.finish(InboxAnswer::ok("first")).await;
    let replay = claim(&setup, &inbox, "msg_e").await.unwrap_err();
    assert_eq!(replay.kind(), InboxAnswerKind::Duplicate);
    assert_eq!(replay.body().as_ref(), b"first");
    let stored = Answer::replay(
        StatusCode::OK,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
        "first".into(),
    );
    is_core(&replay, &stored, "msg_e");
    assert_eq!(setup.effects("msg_e").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_first_attempt_rolls_back_the_waiting_duplicate_runs() {
    let setup = setup!(4);
    let inbox = setup.inbox().await;
    let first = claim(&setup, &inbox, "msg_f").await.unwrap();
    let busy = claim(&setup, &inbox, "msg_f").await.unwrap_err();
    assert_eq!(busy.kind(), InboxAnswerKind::Busy);

    let failed = first
        .finish(InboxAnswer::new(StatusCode::SERVICE_UNAVAILABLE, "no"))
        .await;
    assert_eq!(failed.status(), 503);
    // The duplicate's retry (Retry-After) now runs the handler.
    let second = claim(&setup, &inbox, "msg_f").await.unwrap();
    let _ = second.finish(InboxAnswer::ok("second")).await;
    assert_eq!(setup.effects("msg_f").await, 1);
    let replay = deliver(&setup, &inbox, "msg_f", 200).await;
    assert_eq!(replay.body().as_ref(), b"second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_message_run_once() {
    let setup = setup!(20);
    let inbox = setup.inbox().await;
    let setup = std::sync::Arc::new(setup);
    let mut runs = Vec::new();
    for _ in 0..16 {
        let (setup, inbox) = (setup.clone(), inbox.clone());
        runs.push(tokio::spawn(async move {
            loop {
                let answer = deliver(&setup, &inbox, "msg_g", 200).await;
                if answer.status().is_success() {
                    return answer.kind();
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut handled = 0;
    for run in runs {
        if run.await.unwrap() == InboxAnswerKind::Handler {
            handled += 1;
        }
    }
    assert_eq!(handled, 1);
    assert_eq!(setup.effects("msg_g").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_down_answers_503_with_retry_after() {
    let setup = setup!(4);
    // Refused: nothing listens on that port.
    let port = support::postgres_server::free_port();
    let gone = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&format!(
            "postgres://postgres:secret@127.0.0.1:{port}/postgres"
        ))
        .unwrap();
    let down = PgInbox::new(gone);
    for (retried, wait) in [(0, 12), (1, 148)] {
        let (delivery, claims) = attempt("msg_h", retried);
        let answer = down.begin(&delivery, &claims).await.unwrap_err();
        assert_eq!(answer.kind(), InboxAnswerKind::Unavailable);
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.retry_after_secs(), Some(wait));
        assert!(!format!("{answer:?}").contains("secret"));
        is_core(&answer, &Answer::store_unavailable(wait, ""), "msg_h");
    }

    // Pool exhausted: one connection, held by another delivery.
    let one = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect(&support::postgres_server::server().unwrap().url)
        .await
        .unwrap();
    let small = PgInbox::builder(one)
        .schema(&setup.schema)
        .table("inbox")
        .build()
        .unwrap();
    small.migrate().await.unwrap();
    let held = claim(&setup, &small, "msg_i").await.unwrap();
    let exhausted = claim(&setup, &small, "msg_j").await.unwrap_err();
    assert_eq!(exhausted.kind(), InboxAnswerKind::Unavailable);
    drop(held);

    // A statement time-out inside the handler.
    let inbox = setup.inbox().await;
    let mut tx = claim(&setup, &inbox, "msg_k").await.unwrap();
    sqlx::query("SET LOCAL statement_timeout = 100")
        .execute(&mut *tx)
        .await
        .unwrap();
    let error = sqlx::query("SELECT pg_sleep(30)")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    let answer = tx.fail(&error).await;
    assert_eq!(answer.kind(), InboxAnswerKind::Unavailable);
    assert_eq!(answer.retry_after_secs(), Some(12));
    assert_eq!(InboxAnswer::from(error).status(), 503);

    // Nothing was marked, nothing is lost: the retries run.
    for id in ["msg_h", "msg_j", "msg_k"] {
        assert_eq!(
            deliver(&setup, &inbox, id, 200).await.kind(),
            InboxAnswerKind::Handler
        );
        assert_eq!(setup.effects(id).await, 1, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_answered_retryably_and_the_other_commits() {
    let setup = setup!(4);
    let inbox = setup.inbox().await;
    let mut one = claim(&setup, &inbox, "msg_l").await.unwrap();
    let mut two = claim(&setup, &inbox, "msg_m").await.unwrap();
    let update = |k: i32| format!("UPDATE {}.rows SET v = v + 1 WHERE k = {k}", setup.schema);
    sqlx::query(&update(1)).execute(&mut *one).await.unwrap();
    sqlx::query(&update(2)).execute(&mut *two).await.unwrap();
    let cross = |mut tx: InboxTransaction, k: i32| {
        let sql = update(k);
        async move {
            match sqlx::query(&sql).execute(&mut *tx).await {
                Ok(_) => tx.finish(InboxAnswer::ok("done")).await,
                Err(error) => tx.fail(&error).await,
            }
        }
    };
    let (a, b) = tokio::join!(cross(one, 2), cross(two, 1));
    let mut kinds = [a.kind(), b.kind()];
    kinds.sort_by_key(|k| *k == InboxAnswerKind::Conflict);
    assert_eq!(kinds, [InboxAnswerKind::Handler, InboxAnswerKind::Conflict]);
    let (conflict, id) = if a.kind() == InboxAnswerKind::Conflict {
        (a, "msg_l")
    } else {
        (b, "msg_m")
    };
    assert_eq!(conflict.status(), 409);
    assert_eq!(conflict.retry_after_secs(), Some(5));
    is_core(&conflict, &Answer::conflict(5, ""), id);
    let total = setup.effects("msg_l").await + setup.effects("msg_m").await;
    assert_eq!(total, 1, "only the survivor committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_share_a_table_with_their_own_marks() {
    let setup = setup!(4);
    let orders = setup.builder().consumer("orders").build().unwrap();
    let mails = setup.builder().consumer("mails").build().unwrap();
    orders.migrate().await.unwrap();
    mails.migrate().await.unwrap();
    assert_eq!(
        deliver(&setup, &orders, "msg_n", 200).await.kind(),
        InboxAnswerKind::Handler
    );
    assert_eq!(
        deliver(&setup, &mails, "msg_n", 200).await.kind(),
        InboxAnswerKind::Handler
    );
    assert_eq!(
        deliver(&setup, &orders, "msg_n", 200).await.kind(),
        InboxAnswerKind::Duplicate
    );
    assert_eq!(setup.effects("msg_n").await, 2);
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{}.inbox", setup.schema))
        .fetch_one(&setup.pool)
        .await
        .unwrap();
    assert!(
        table.is_some(),
        "created in the configured schema and table"
    );

    for (schema, table) in [("public", "x;drop"), ("a b", "inbox"), ("s", "")] {
        let built = PgInbox::builder(setup.pool.clone())
            .schema(schema)
            .table(table)
            .build();
        assert!(
            matches!(built, Err(InboxError::InvalidName(_))),
            "{schema}.{table}"
        );
    }
    let empty = PgInbox::builder(setup.pool.clone()).consumer("").build();
    assert_eq!(empty.unwrap_err(), InboxError::EmptyConsumer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_is_idempotent_and_safe_at_once() {
    let setup = setup!(8);
    let inbox = setup
        .builder()
        .schema(format!("{}_m", setup.schema))
        .build()
        .unwrap();
    let (a, b, c) = tokio::join!(inbox.migrate(), inbox.migrate(), inbox.migrate());
    a.unwrap();
    b.unwrap();
    c.unwrap();
    inbox.migrate().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_expired_marks_in_batches_on_an_index() {
    let setup = setup!(4);
    let keep = setup.inbox().await;
    let expire = setup
        .builder()
        .retention(Duration::ZERO)
        .cleanup_batch(2)
        .build()
        .unwrap();
    for n in 0..5 {
        let _ = deliver(&setup, &keep, &format!("msg_o{n}"), 200).await;
    }
    assert_eq!(keep.cleanup().await.unwrap(), 0, "within the retention");
    assert_eq!(expire.cleanup_batch().await.unwrap(), 2, "one batch");
    assert_eq!(
        expire.cleanup().await.unwrap(),
        3,
        "the rest, batch by batch"
    );
    assert_eq!(setup.marks().await, 0);
    let other = setup
        .builder()
        .consumer("other")
        .retention(Duration::ZERO)
        .build()
        .unwrap();
    let _ = deliver(&setup, &keep, "msg_o9", 200).await;
    assert_eq!(
        other.cleanup().await.unwrap(),
        0,
        "only its own consumer's marks"
    );

    let index: Option<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'inbox' \
         AND indexdef LIKE '%(consumer, handled_at)%'",
    )
    .bind(&setup.schema)
    .fetch_optional(&setup.pool)
    .await
    .unwrap();
    assert!(index.is_some(), "the cleanup's index exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_replayed_on_another_message_is_refused() {
    let setup = setup!(4);
    let inbox = setup.inbox().await;
    let headers = support::delivery_headers("msg_p", 0, b"");
    let (delivery, claims) = support::verify(&headers, b"");
    let tx = inbox.begin(&delivery, &claims).await.unwrap();

    // The message id header is not signed: the captured token with another id.
    let mut forged = delivery.clone();
    forged.message_id = "msg_forged".to_owned();
    let refused = inbox.begin(&forged, &claims).await.unwrap_err();
    assert_eq!(
        refused.kind(),
        InboxAnswerKind::Replayed,
        "while the first is open"
    );
    assert_eq!(refused.status(), 401);
    is_core(&refused, &Answer::replayed(""), "msg_forged");
    let _ = tx.finish(InboxAnswer::ok("ok")).await;
    let refused = inbox.begin(&forged, &claims).await.unwrap_err();
    assert_eq!(
        refused.kind(),
        InboxAnswerKind::Replayed,
        "after it committed"
    );

    // The same token on the same message is a duplicate: the stored answer.
    let same = inbox.begin(&delivery, &claims).await.unwrap_err();
    assert_eq!(same.kind(), InboxAnswerKind::Duplicate);

    let unguarded = setup.builder().replay_guard(false).build().unwrap();
    let tx = unguarded.begin(&forged, &claims).await.unwrap();
    let _ = tx.finish(InboxAnswer::ok("ok")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_ends_the_transaction_itself_is_caught() {
    let setup = setup!(4);
    let inbox = setup.inbox().await;
    let mut tx = claim(&setup, &inbox, "msg_q").await.unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
    let answer = tx.finish(InboxAnswer::ok("ok")).await;
    assert_eq!(answer.kind(), InboxAnswerKind::Failed);
    assert_eq!(answer.status(), 500);
    is_core(&answer, &Answer::store_failed(""), "msg_q");
    assert_eq!(
        setup.marks().await,
        0,
        "no mark outside the delivery's transaction"
    );
    assert_eq!(setup.effects("msg_q").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_commits_and_begins_again_is_caught() {
    let setup = setup!(4);
    let inbox = setup.inbox().await;
    // The claim's effect is committed by the handler itself, outside the mark's reach.
    let mut tx = claim(&setup, &inbox, "msg_r").await.unwrap();
    sqlx::raw_sql("COMMIT; BEGIN")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(&setup.effect_sql())
        .bind("msg_r")
        .execute(&mut *tx)
        .await
        .unwrap();
    let answer = tx.finish(InboxAnswer::ok("ok")).await;
    assert_eq!(answer.kind(), InboxAnswerKind::Failed);
    assert_eq!(answer.status(), 500);
    assert_eq!(setup.marks().await, 0, "no mark in the second transaction");
    assert_eq!(
        setup.effects("msg_r").await,
        1,
        "the second transaction's effect rolled back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_the_first_schema_is_migrated_and_keeps_its_marks() {
    let setup = setup!(4);
    // The table and indexes as the inbox's first schema created them, with one mark.
    let s = &setup.schema;
    sqlx::raw_sql(&format!(
        "CREATE TABLE {s}.inbox (consumer TEXT NOT NULL, message_id TEXT NOT NULL, \
           token_id TEXT, status SMALLINT NOT NULL, content_type TEXT NOT NULL, \
           body BYTEA NOT NULL, handled_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
           PRIMARY KEY (consumer, message_id)); \
         CREATE UNIQUE INDEX inbox_token_id ON {s}.inbox (consumer, token_id); \
         CREATE INDEX inbox_handled_at ON {s}.inbox (consumer, handled_at); \
         INSERT INTO {s}.inbox (consumer, message_id, token_id, status, content_type, body) \
           VALUES ('default', 'msg_old', 'jwt_old', 201, 'text/plain', 'before')"
    ))
    .execute(&setup.pool)
    .await
    .unwrap();

    let inbox = setup.inbox().await;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = $1 AND tablename = 'inbox' ORDER BY indexname",
    )
    .bind(s)
    .fetch_all(&setup.pool)
    .await
    .unwrap();
    let names: Vec<&str> = indexes.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["inbox_handled_at", "inbox_pkey", "inbox_token"],
        "the first schema's token index is replaced, not kept beside the new one"
    );
    let token = &indexes[2].1;
    assert!(token.starts_with("CREATE UNIQUE INDEX"), "{token}");
    assert!(token.ends_with("WHERE (token_id IS NOT NULL)"), "{token}");

    // The old mark still answers for its message; new deliveries are marked as before.
    let old = deliver(&setup, &inbox, "msg_old", 200).await;
    assert_eq!(old.kind(), InboxAnswerKind::Duplicate);
    assert_eq!(old.status(), 201);
    assert_eq!(old.body().as_ref(), b"before");
    assert_eq!(setup.effects("msg_old").await, 0);
    assert_eq!(
        deliver(&setup, &inbox, "msg_new", 200).await.kind(),
        InboxAnswerKind::Handler
    );
    assert_eq!(
        deliver(&setup, &inbox, "msg_new", 200).await.kind(),
        InboxAnswerKind::Duplicate
    );
    inbox.migrate().await.unwrap();
    assert_eq!(setup.marks().await, 2);
}
