//! [`InboxTransaction`]: the open transaction a handler writes through.

use std::fmt;
use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::{Executor as _, Postgres};

use crate::postgres::PgInbox;
use crate::postgres::answer::InboxAnswer;
use crate::postgres::schema::{Mark, RowId};

/// A delivery whose handler runs: the open transaction that holds its claim, with the
/// message id and retry count. Write the handler's effects through it (it dereferences to
/// the transaction's `PgConnection`, an sqlx executor: `.execute(&mut *tx)`), then hand the
/// handler's answer to [`finish`](Self::finish).
///
/// Dropped without `finish` (the handler returned early with `?`, panicked, or the request
/// was cancelled and its future dropped), the connection is closed and the server rolls the
/// transaction back: neither the mark nor any effect stays, and QStash's retry runs the
/// handler cleanly.
///
/// The transaction is the connection's own (`BEGIN` was sent with the claim, in one round
/// trip, and `finish` sends the mark's answer with `COMMIT`): do not call sqlx's `begin`,
/// `commit` or `rollback` on the connection; use `SAVEPOINT` statements for nested work. A
/// handler that ends the transaction itself gets a 500 from `finish` and an `error` event.
#[must_use]
pub struct InboxTransaction {
    /// `None` only once settled (the consuming methods) or dropped.
    conn: Option<PoolConnection<Postgres>>,
    inbox: PgInbox,
    message_id: String,
    retried: u32,
    token_id: Option<String>,
    /// The pending mark the claim inserted; set before the handler runs.
    row: Option<RowId>,
}

impl fmt::Debug for InboxTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxTransaction")
            .field("message_id", &self.message_id)
            .field("retried", &self.retried)
            .finish_non_exhaustive()
    }
}

impl InboxTransaction {
    pub(crate) const fn new(
        conn: PoolConnection<Postgres>,
        inbox: PgInbox,
        message_id: String,
        retried: u32,
        token_id: Option<String>,
    ) -> Self {
        Self {
            conn: Some(conn),
            inbox,
            message_id,
            retried,
            token_id,
            row: None,
        }
    }

    pub(crate) fn set_row(&mut self, row: RowId) {
        self.row = Some(row);
    }

    pub(crate) fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// The delivery's message id (`Upstash-Message-Id`): pass it on as the idempotency key
    /// of effects outside the database.
    #[must_use]
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// How often QStash retried this message before this attempt (`Upstash-Retried`).
    #[must_use]
    pub const fn retried(&self) -> u32 {
        self.retried
    }

    /// The connection of the open transaction.
    pub fn conn(&mut self) -> &mut PgConnection {
        self
    }

    /// Settles the delivery with the handler's answer: on a 2xx, stores the status, content
    /// type and the first bytes of the body in the mark (for replays) and commits, in one
    /// round trip, then returns the answer; on anything else, rolls back and returns the
    /// answer.
    ///
    /// When the mark or the commit fails, nothing was committed and the answer becomes the
    /// retryable one for that failure (503 unavailable, 409 conflict, 500), so QStash
    /// retries; if the commit reached the server but its reply was lost, the retry finds
    /// the mark and gets the stored answer.
    pub async fn finish(mut self, answer: InboxAnswer) -> InboxAnswer {
        let status = answer.status();
        if !status.is_success() {
            let answer = answer.for_message(&self.message_id);
            self.rollback().await;
            return answer;
        }
        let Some(row) = self.row.take() else {
            let error = sqlx::Error::Decode("the delivery holds no claim".into());
            return self
                .inbox
                .failed_at(&self.message_id, self.retried, "mark and commit", &error);
        };
        let body = answer.body();
        let kept = &body[..body.len().min(self.inbox.replay_body_limit())];
        let sql = self.inbox.done_and_commit(
            &row,
            &Mark {
                status: status.as_u16(),
                content_type: answer.body_content_type().to_str().unwrap_or_default(),
                body: kept,
            },
        );
        match self.conn().execute(sqlx::raw_sql(&sql)).await {
            Ok(_) => {
                // Committed: the connection goes back to the pool.
                drop(self.conn.take());
                tracing::debug!(
                    message_id = %self.message_id,
                    status = status.as_u16(),
                    "inbox: handled, mark and effects committed"
                );
                answer
            }
            Err(error) => {
                if let sqlx::Error::Database(db) = &error {
                    if db.code().as_deref() == Some("25P01") {
                        tracing::error!(
                            message_id = %self.message_id,
                            "inbox: the handler ended the delivery's transaction itself \
                             (begin/commit/rollback on its connection): its effects are not \
                             covered by the mark; use SAVEPOINT for nested work"
                        );
                        // A COMMIT of the handler's committed the pending mark, without an
                        // answer: removed, so the message is not taken as handled.
                        let forget = format!("ROLLBACK; {}", self.inbox.forget(&self.message_id));
                        if self.conn().execute(sqlx::raw_sql(&forget)).await.is_ok() {
                            drop(self.conn.take());
                        }
                    }
                }
                // Dropping `self` closes the connection (unless it went back to the pool
                // above): the server ends the transaction.
                self.inbox
                    .failed_at(&self.message_id, self.retried, "mark and commit", &error)
            }
        }
    }

    /// Rolls back and answers for a database error the handler met (the answer
    /// [`InboxAnswer::from`] gives, with the `Retry-After` of this delivery's retry count).
    pub async fn fail(self, error: &sqlx::Error) -> InboxAnswer {
        let answer = self
            .inbox
            .failed_at(&self.message_id, self.retried, "handler", error);
        self.rollback().await;
        answer
    }

    /// `ROLLBACK`, and the connection back to the pool; closed instead when that fails (or
    /// when this future is dropped first), which rolls back too.
    pub(crate) async fn rollback(mut self) {
        if self.conn().execute(sqlx::raw_sql("ROLLBACK")).await.is_ok() {
            drop(self.conn.take());
        }
        tracing::debug!(message_id = %self.message_id, "inbox: rolled back");
    }
}

impl Drop for InboxTransaction {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Not back to the pool: it may be inside the transaction. Closing it makes the
            // server roll back and release the claim's locks.
            drop(conn.detach());
            tracing::debug!(
                message_id = %self.message_id,
                "inbox: transaction dropped unsettled (an error, a panic or a cancelled \
                 request); its connection is closed and the server rolls back"
            );
        }
    }
}

impl Deref for InboxTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("the connection is taken only when settling or dropping"),
        }
    }
}

impl DerefMut for InboxTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("the connection is taken only when settling or dropping"),
        }
    }
}

/// A database error a handler met, for `?`: the core's retryable answers
/// ([`Answer::store_unavailable`](qstash_receiver::Answer::store_unavailable), 503 +
/// `Retry-After`, when the database is unavailable;
/// [`Answer::conflict`](qstash_receiver::Answer::conflict), 409 + `Retry-After`, for a
/// serialization failure, deadlock or lock time-out),
/// [`Answer::store_failed`](qstash_receiver::Answer::store_failed) (500) otherwise, logged
/// once when written. The `Retry-After` is that of a first attempt (12 s unavailable, 5 s
/// conflict); [`InboxTransaction::fail`] uses the delivery's retry count. The transaction,
/// dropped on the way out, rolls back.
impl From<sqlx::Error> for InboxAnswer {
    fn from(error: sqlx::Error) -> Self {
        crate::postgres::error::database_answer(
            &error,
            "handler",
            qstash_receiver::retry::backoff(1).as_secs(),
            crate::postgres::DEFAULT_BUSY_RETRY_AFTER.as_secs(),
        )
        .into()
    }
}
