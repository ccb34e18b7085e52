//! [`InboxTransaction`]: the open transaction a handler writes through.

use std::fmt;
use std::ops::{Deref, DerefMut};

use sqlx::postgres::PgConnection;
use sqlx::{Postgres, Transaction};

use crate::postgres::PgInbox;
use crate::postgres::answer::{InboxAnswer, InboxAnswerKind};

/// A delivery whose handler runs: the open transaction that holds its claim, with the
/// message id and retry count. Write the handler's effects through it (it dereferences to a
/// `PgConnection`, an sqlx executor: `.execute(&mut *tx)`), then hand the handler's answer
/// to [`finish`](Self::finish).
///
/// Dropped without `finish` (the handler returned early with `?`, panicked, or the request
/// was cancelled and its future dropped), the transaction rolls back: neither the mark nor
/// any effect stays, and QStash's retry runs the handler cleanly.
#[must_use]
pub struct InboxTransaction {
    tx: Transaction<'static, Postgres>,
    inbox: PgInbox,
    message_id: String,
    retried: u32,
    token_id: Option<String>,
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
        tx: Transaction<'static, Postgres>,
        inbox: PgInbox,
        message_id: String,
        retried: u32,
        token_id: Option<String>,
    ) -> Self {
        Self {
            tx,
            inbox,
            message_id,
            retried,
            token_id,
        }
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
        &mut self.tx
    }

    /// Settles the delivery with the handler's answer: on a 2xx, writes the mark (with the
    /// status, content type and the first bytes of the body, for replays) and commits, then
    /// returns the answer; on anything else, rolls back and returns the answer.
    ///
    /// When the mark or the commit fails, nothing was committed and the answer becomes the
    /// retryable one for that failure (503 unavailable, 409 conflict, 500), so QStash
    /// retries; if the commit reached the server but its reply was lost, the retry finds
    /// the mark and gets the stored answer.
    pub async fn finish(mut self, answer: InboxAnswer) -> InboxAnswer {
        let status = answer.status();
        if !status.is_success() {
            if let Err(error) = self.tx.rollback().await {
                // The server rolls back on its own when the connection is dropped.
                tracing::debug!(
                    message_id = %self.message_id,
                    %error,
                    "inbox: rollback failed; the transaction ends with its connection"
                );
            }
            tracing::debug!(
                message_id = %self.message_id,
                status = status.as_u16(),
                "inbox: the handler did not answer 2xx, rolled back"
            );
            return answer;
        }
        let body = answer.body();
        let kept = body.slice(..body.len().min(self.inbox.replay_body_limit()));
        let content_type = answer.body_content_type().to_str().unwrap_or_default();
        let marked = sqlx::query(self.inbox.mark_sql())
            .bind(self.inbox.consumer())
            .bind(&self.message_id)
            .bind(self.token_id.as_deref())
            .bind(i16::try_from(status.as_u16()).unwrap_or(200))
            .bind(content_type)
            .bind(kept.as_ref())
            .execute(&mut *self.tx)
            .await;
        let committed = match marked {
            Ok(_) => self.tx.commit().await.map(|()| "commit"),
            Err(error) => Err(error),
        };
        match committed {
            Ok(_) => {
                tracing::debug!(
                    message_id = %self.message_id,
                    status = status.as_u16(),
                    "inbox: handled, mark and effects committed"
                );
                answer
            }
            Err(error) => {
                let during = "mark and commit";
                self.inbox
                    .failed_at(&self.message_id, self.retried, during, &error)
            }
        }
    }

    /// Rolls back and answers for a database error the handler met (the answer
    /// [`InboxAnswer::from`] gives, with the `Retry-After` of this delivery's retry count).
    pub async fn fail(self, error: &sqlx::Error) -> InboxAnswer {
        let answer = self
            .inbox
            .failed_at(&self.message_id, self.retried, "handler", error);
        let _ = self.tx.rollback().await;
        answer
    }
}

impl Deref for InboxTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for InboxTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// A database error a handler met, for `?`: retryable answers (503 + `Retry-After` when the
/// database is unavailable, 409 + `Retry-After` for a serialization failure, deadlock or
/// lock time-out), 500 otherwise. The `Retry-After` is that of a first attempt (12 s
/// unavailable, 5 s conflict); [`InboxTransaction::fail`] uses the delivery's retry count.
/// The transaction, dropped on the way out, rolls back.
impl From<sqlx::Error> for InboxAnswer {
    fn from(error: sqlx::Error) -> Self {
        let kind = crate::postgres::error::classify(&error);
        tracing::error!(
            error = %crate::postgres::error::describe(&error),
            "inbox: the handler met a database error, rolling back"
        );
        match kind {
            InboxAnswerKind::Unavailable => {
                Self::refusal(kind, qstash_receiver::retry::backoff(1).as_secs())
            }
            InboxAnswerKind::Conflict => {
                Self::refusal(kind, crate::postgres::DEFAULT_BUSY_RETRY_AFTER.as_secs())
            }
            _ => Self::refusal(InboxAnswerKind::Failed, 0),
        }
    }
}
