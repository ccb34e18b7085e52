//! [`PgInbox`]: exactly-once effects, the message id marked in the handler's own PostgreSQL
//! transaction.

mod answer;
mod error;
mod schema;
mod transaction;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use qstash_receiver::{Answer, Claims, Delivery};
use sqlx::{Executor as _, PgPool, Row as _};

pub use self::answer::{InboxAnswer, InboxAnswerKind};
pub use self::error::InboxError;
pub use self::schema::{DEFAULT_SCHEMA, DEFAULT_TABLE};
pub use self::transaction::InboxTransaction;

use self::error::{database_answer, secs_u32};
use self::schema::{MAX_SCHEMA_NAME, MAX_TABLE_NAME, Mark, RowId, Statements, check_identifier};
use crate::deduplicator::{DEFAULT_RETENTION, RetryAfter};

/// The consumer name by default: `default`.
pub const DEFAULT_CONSUMER: &str = "default";

/// How many bytes of a handler's body are stored for replay by default: 4 KiB.
///
/// A duplicate is answered with the stored status, content type and these first bytes, so a
/// callback for a duplicate delivery shows the real answer. Larger bodies are cut there: the
/// table must not grow with handlers' bodies.
pub const DEFAULT_REPLAY_BODY_LIMIT: usize = 4096;

/// The `Retry-After` of a 409 by default (another attempt holds the message, or a
/// serialization failure or deadlock): 5 seconds.
pub const DEFAULT_BUSY_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How many expired marks one cleanup statement deletes by default: 1000.
pub const DEFAULT_CLEANUP_BATCH: u32 = 1000;

/// A transactional inbox in PostgreSQL: for each verified delivery it opens a transaction,
/// claims the message id, and hands the handler that transaction; the mark is written and
/// committed with the handler's writes only when the handler answers 2xx.
///
/// Cheap to clone: clones share the pool and the settings. Build one with
/// [`PgInbox::builder`], create its table once with [`migrate`](Self::migrate), then per
/// delivery call [`begin`](Self::begin).
#[derive(Clone)]
pub struct PgInbox {
    pool: PgPool,
    settings: Arc<Settings>,
}

#[derive(Debug)]
struct Settings {
    sql: Statements,
    consumer: String,
    retention: Duration,
    replay_body_limit: usize,
    busy_retry_after: u64,
    store_retry_after: RetryAfter,
    replay_guard: bool,
    cleanup_batch: u32,
}

impl fmt::Debug for PgInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the pool: its options hold the connection's password.
        f.debug_struct("PgInbox")
            .field("table", &self.settings.sql.qualified)
            .field("consumer", &self.settings.consumer)
            .field("retention", &self.settings.retention)
            .field("replay_guard", &self.settings.replay_guard)
            .finish_non_exhaustive()
    }
}

/// Builds a [`PgInbox`]; every setting has a default.
#[derive(Debug)]
#[must_use]
pub struct PgInboxBuilder {
    pool: PgPool,
    schema: String,
    table: String,
    consumer: String,
    retention: Duration,
    replay_body_limit: usize,
    busy_retry_after: Duration,
    store_retry_after: RetryAfter,
    replay_guard: bool,
    cleanup_batch: u32,
}

impl PgInboxBuilder {
    /// The schema of the inbox table. Defaults to [`DEFAULT_SCHEMA`] (`public`); created by
    /// [`PgInbox::migrate`] when missing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The inbox table's name. Defaults to [`DEFAULT_TABLE`] (`qstash_inbox`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The consumer name: several endpoints (or services) share one table, each with its
    /// own marks, by using different names. Defaults to [`DEFAULT_CONSUMER`].
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = consumer.into();
        self
    }

    /// How long a handled message stays marked. Defaults to [`DEFAULT_RETENTION`] (24 hours),
    /// which covers QStash's default retry schedule (about 33 minutes) some 40 times over;
    /// with more retries use [`retry_schedule_span`](qstash_receiver::retry::retry_schedule_span)
    /// of your retry count plus the handler's time-out.
    pub const fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How many bytes of a handler's body are stored for replay. Defaults to
    /// [`DEFAULT_REPLAY_BODY_LIMIT`] (4 KiB).
    /// A replay carries at most [`MAX_REPLAYED_BODY`](qstash_receiver::receive::MAX_REPLAYED_BODY)
    /// (64 KiB) of it.
    pub const fn replay_body_limit(mut self, bytes: usize) -> Self {
        self.replay_body_limit = bytes;
        self
    }

    /// The `Retry-After` of a 409 (busy, or a conflict). Defaults to
    /// [`DEFAULT_BUSY_RETRY_AFTER`] (5 seconds); whole seconds, at least 1.
    pub const fn busy_retry_after(mut self, retry_after: Duration) -> Self {
        self.busy_retry_after = retry_after;
        self
    }

    /// The `Retry-After` of a 503 (the database unavailable). Defaults to
    /// [`RetryAfter::Backoff`]: what QStash's default backoff waits anyway (12 s, 148 s,
    /// 1808 s, …), so an outage does not burn the retries within seconds.
    pub const fn store_retry_after(mut self, retry_after: RetryAfter) -> Self {
        self.store_retry_after = retry_after;
        self
    }

    /// Whether to refuse (401) a token whose `jti` was used on another message of this
    /// consumer, or a token without a `jti`. On by default: `Upstash-Message-Id` is not
    /// signed, so without it a captured delivery re-sent with another message id would run
    /// the handler again. Costs nothing extra: the token id is locked and checked in the
    /// same statement as the message id, and stored in the mark.
    pub const fn replay_guard(mut self, enabled: bool) -> Self {
        self.replay_guard = enabled;
        self
    }

    /// How many expired marks one cleanup statement deletes. Defaults to
    /// [`DEFAULT_CLEANUP_BATCH`] (1000); at least 1.
    pub const fn cleanup_batch(mut self, batch: u32) -> Self {
        self.cleanup_batch = batch;
        self
    }

    /// The inbox.
    ///
    /// # Errors
    ///
    /// [`InboxError::InvalidName`] for a schema or table name that is not a plain
    /// identifier, [`InboxError::EmptyConsumer`] for an empty consumer name.
    pub fn build(self) -> Result<PgInbox, InboxError> {
        check_identifier("schema", &self.schema, MAX_SCHEMA_NAME)?;
        check_identifier("table", &self.table, MAX_TABLE_NAME)?;
        if self.consumer.is_empty() {
            return Err(InboxError::EmptyConsumer);
        }
        Ok(PgInbox {
            pool: self.pool,
            settings: Arc::new(Settings {
                sql: Statements::new(&self.schema, &self.table),
                consumer: self.consumer,
                retention: self.retention,
                replay_body_limit: self.replay_body_limit,
                busy_retry_after: ceil_secs(self.busy_retry_after).max(1),
                store_retry_after: self.store_retry_after,
                replay_guard: self.replay_guard,
                cleanup_batch: self.cleanup_batch.max(1),
            }),
        })
    }
}

impl PgInbox {
    /// A builder over `pool`, with every setting at its default.
    pub fn builder(pool: PgPool) -> PgInboxBuilder {
        PgInboxBuilder {
            pool,
            schema: DEFAULT_SCHEMA.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            consumer: DEFAULT_CONSUMER.to_owned(),
            retention: DEFAULT_RETENTION,
            replay_body_limit: DEFAULT_REPLAY_BODY_LIMIT,
            busy_retry_after: DEFAULT_BUSY_RETRY_AFTER,
            store_retry_after: RetryAfter::Backoff,
            replay_guard: true,
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
        }
    }

    /// An inbox over `pool` with every default: table `public.qstash_inbox`, consumer
    /// `default`.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool)
            .build()
            .unwrap_or_else(|_| unreachable!("the defaults are valid names"))
    }

    /// The pool.
    #[must_use]
    pub const fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The consumer name.
    #[must_use]
    pub fn consumer(&self) -> &str {
        &self.settings.consumer
    }

    /// Creates the schema, the table and its indexes when missing (idempotent; safe to run
    /// from several instances at once: it takes a transaction-scoped advisory lock).
    ///
    /// # Errors
    ///
    /// The database could not be reached, or refused a statement (e.g. no `CREATE`
    /// privilege): [`InboxError::Database`].
    pub async fn migrate(&self) -> Result<(), InboxError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('qstash-dedupe migrate', 0))")
            .execute(&mut *tx)
            .await?;
        for statement in &self.settings.sql.create {
            sqlx::raw_sql(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Opens a transaction for a verified delivery and claims its message id, or says what
    /// to answer instead. Pass the [`Delivery`] and [`Claims`] the QStash verification
    /// produced (tower-qstash's and actix-qstash's extractors hand both).
    ///
    /// - `Ok(transaction)`: the handler runs; write through it, then
    ///   [`finish`](InboxTransaction::finish) with the answer (commits on a 2xx). Dropped
    ///   without that (an error, a panic, a cancelled request), it rolls back.
    /// - `Err(answer)`: do not run the handler; send `answer`: the stored answer of a handled
    ///   message ([`Duplicate`](InboxAnswerKind::Duplicate)), 409 while another attempt holds
    ///   it ([`Busy`](InboxAnswerKind::Busy)), 503 when the database is unavailable, 401 for
    ///   a replayed token.
    ///
    /// # Errors
    ///
    /// The answer to send instead of running the handler, as above. Every one is logged
    /// through `tracing` with the message id and the reason.
    pub async fn begin(
        &self,
        delivery: &Delivery,
        claims: &Claims,
    ) -> Result<InboxTransaction, InboxAnswer> {
        let settings = &*self.settings;
        let message_id = delivery.message_id.as_str();
        let token_id = if settings.replay_guard {
            let Some(jti) = claims.token_id() else {
                let answer = Answer::replayed("inbox: token without `jti` refused");
                return Err(answer.with_message_id(message_id).into());
            };
            Some(jti.to_owned())
        } else {
            None
        };
        let conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(error) => return Err(self.failed(delivery, "connect", &error)),
        };
        // From here the connection may hold an open transaction: if this future is dropped,
        // the guard closes the connection, and the server rolls back.
        let mut tx = InboxTransaction::new(
            conn,
            self.clone(),
            delivery.message_id.clone(),
            delivery.retried,
            token_id,
        );
        let claim = settings
            .sql
            .claim(&settings.consumer, message_id, tx.token_id());
        let row = match tx.conn().fetch_all(sqlx::raw_sql(&claim)).await {
            Ok(rows) => rows.first().map(|row| row.try_get::<Option<String>, _>(0)),
            Err(error) => return Err(self.failed(delivery, "claim", &error)),
        };
        match row {
            Some(Ok(Some(text))) => match RowId::parse(&text) {
                Some(row) => tx.set_row(row),
                None => {
                    let error = sqlx::Error::Decode("the claim returned no row id".into());
                    return Err(self.failed(delivery, "claim", &error));
                }
            },
            // The claim took nothing: a duplicate, a concurrent attempt, a replayed token.
            Some(Ok(None)) => return Err(self.taken(delivery, tx).await),
            Some(Err(error)) => return Err(self.failed(delivery, "claim", &error)),
            None => return Err(self.failed(delivery, "claim", &sqlx::Error::RowNotFound)),
        }
        tracing::debug!(message_id, "inbox: message claimed, running the handler");
        Ok(tx)
    }

    /// What to answer when the claim took nothing, from what holds the message (read in
    /// the delivery's transaction, which then rolls back).
    async fn taken(&self, delivery: &Delivery, mut tx: InboxTransaction) -> InboxAnswer {
        let settings = &*self.settings;
        let message_id = delivery.message_id.as_str();
        let lookup = settings
            .sql
            .lookup(&settings.consumer, message_id, tx.token_id());
        let rows = match tx.conn().fetch_all(sqlx::raw_sql(&lookup)).await {
            Ok(rows) => rows,
            Err(error) => return self.failed(delivery, "claim", &error),
        };
        let found = (|| {
            let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
            Ok::<_, sqlx::Error>((
                row.try_get::<bool, _>("o_token_free")?,
                row.try_get::<Option<i16>, _>("o_status")?,
                row.try_get::<Option<String>, _>("o_content_type")?,
                row.try_get::<Option<Vec<u8>>, _>("o_body")?,
                row.try_get::<bool, _>("o_replayed")?,
            ))
        })();
        let (token_free, status, content_type, body, replayed) = match found {
            Ok(found) => found,
            Err(error) => return self.failed(delivery, "claim", &error),
        };
        tx.rollback().await;
        if !token_free || replayed {
            let answer = Answer::replayed("inbox: token id seen on another message");
            return answer.with_message_id(message_id).into();
        }
        if let Some(status) = status {
            // 0: a pending mark that a handler committed itself, its answer never stored.
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let content_type = content_type
                .and_then(|c| HeaderValue::from_str(&c).ok())
                .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
            let answer =
                Answer::replay(status, content_type, Bytes::from(body.unwrap_or_default()));
            return answer.with_message_id(message_id).into();
        }
        // Held by another attempt (or let go in the meantime: it rolled back): QStash
        // retries after `Retry-After`.
        let answer = Answer::in_progress(secs_u32(settings.busy_retry_after));
        answer.with_message_id(message_id).into()
    }

    /// Deletes one batch of marks older than the retention, oldest first, through the
    /// `(consumer, handled_at)` index. Returns how many it deleted.
    ///
    /// # Errors
    ///
    /// The database could not be reached or refused the statement.
    pub async fn cleanup_batch(&self) -> Result<u64, InboxError> {
        let settings = &*self.settings;
        let done = sqlx::query(&settings.sql.cleanup)
            .bind(&settings.consumer)
            .bind(settings.retention.as_secs_f64())
            .bind(i64::from(settings.cleanup_batch))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes every mark older than the retention, in batches (each its own short
    /// statement, so no long lock), until a batch comes back short. Returns how many it
    /// deleted. Run it from a timer (every few minutes), never per request.
    ///
    /// # Errors
    ///
    /// As [`cleanup_batch`](Self::cleanup_batch); what was deleted before stays deleted.
    pub async fn cleanup(&self) -> Result<u64, InboxError> {
        let mut total = 0;
        loop {
            let deleted = self.cleanup_batch().await?;
            total += deleted;
            if deleted < u64::from(self.settings.cleanup_batch) {
                return Ok(total);
            }
        }
    }

    /// The core's answer to a database error (logged once, by the writer that sends it).
    pub(crate) fn failed(
        &self,
        delivery: &Delivery,
        during: &'static str,
        error: &sqlx::Error,
    ) -> InboxAnswer {
        self.failed_at(&delivery.message_id, delivery.retried, during, error)
    }

    pub(crate) fn failed_at(
        &self,
        message_id: &str,
        retried: u32,
        during: &'static str,
        error: &sqlx::Error,
    ) -> InboxAnswer {
        let store_retry_after = match self.settings.store_retry_after {
            RetryAfter::Fixed(delay) => ceil_secs(delay),
            _ => qstash_receiver::retry::backoff(retried.saturating_add(1)).as_secs(),
        };
        database_answer(
            error,
            during,
            store_retry_after,
            self.settings.busy_retry_after,
        )
        .with_message_id(message_id)
        .into()
    }

    pub(crate) fn replay_body_limit(&self) -> usize {
        self.settings.replay_body_limit
    }

    pub(crate) fn done_and_commit(&self, row: &RowId, mark: &Mark<'_>) -> String {
        self.settings.sql.done_and_commit(row, mark)
    }

    pub(crate) fn forget(&self, message_id: &str) -> String {
        self.settings
            .sql
            .forget(&self.settings.consumer, message_id)
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

#[cfg(test)]
mod send_check {
    fn send<T: Send>(_: &T) {}

    #[allow(dead_code)]
    fn futures_are_send(
        inbox: &super::PgInbox,
        d: &qstash_receiver::Delivery,
        c: &qstash_receiver::Claims,
        tx: super::InboxTransaction,
    ) {
        send(&inbox.begin(d, c));
        send(&tx.finish(super::InboxAnswer::ok("")));
    }
}
