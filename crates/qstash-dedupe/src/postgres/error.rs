//! What a database error means for a delivery.

use qstash_receiver::Answer;

use crate::postgres::answer::InboxAnswerKind;

/// Why creating, migrating or cleaning the inbox failed. Its text never contains the
/// database URL, a password, a message id or a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// A schema or table name is not a plain identifier (ASCII letters, digits and `_`, 1 to
    /// 63 bytes, not starting with a digit).
    #[error(
        "invalid {0} name: use 1 to 63 ASCII letters, digits or `_`, not starting with a digit"
    )]
    InvalidName(&'static str),
    /// The consumer name is empty.
    #[error("the consumer name is empty")]
    EmptyConsumer,
    /// The database could not be reached, or answered with an error.
    #[error("inbox database {kind}: {detail}")]
    Database {
        /// `unavailable`, `conflict` or `error`.
        kind: &'static str,
        /// What the driver or the server said (a SQLSTATE and message; no connection string).
        detail: String,
    },
}

impl From<sqlx::Error> for InboxError {
    fn from(error: sqlx::Error) -> Self {
        let kind = match classify(&error) {
            InboxAnswerKind::Unavailable => "unavailable",
            InboxAnswerKind::Conflict | InboxAnswerKind::Busy => "conflict",
            _ => "error",
        };
        Self::Database {
            kind,
            detail: describe(&error),
        }
    }
}

/// What the driver or server said, without anything that could carry a secret: sqlx's
/// `Configuration` errors can quote the connection string, so they are named, not printed.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Configuration(_) => "invalid connection configuration".to_owned(),
        sqlx::Error::Database(db) => {
            format!(
                "{} (SQLSTATE {})",
                db.message(),
                db.code().unwrap_or_default()
            )
        }
        other => other.to_string(),
    }
}

/// The outcome a database error stands for: a retryable conflict (serialization failure,
/// deadlock, lock time-out, a unique key taken by a concurrent attempt), the database being
/// unavailable (connection refused or lost, pool exhausted, statement time-out, shutdown,
/// too many connections), or anything else (`Failed`).
pub(crate) fn classify(error: &sqlx::Error) -> InboxAnswerKind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => InboxAnswerKind::Unavailable,
        sqlx::Error::Database(db) => classify_sqlstate(db.code().as_deref().unwrap_or_default()),
        _ => InboxAnswerKind::Failed,
    }
}

/// By SQLSTATE (PostgreSQL's Appendix A).
pub(crate) fn classify_sqlstate(code: &str) -> InboxAnswerKind {
    match code {
        // serialization_failure, deadlock_detected, lock_not_available, unique_violation
        // (a concurrent attempt committed the same message or token first).
        "40001" | "40P01" | "55P03" | "23505" => InboxAnswerKind::Conflict,
        // query_canceled (statement_timeout), idle_in_transaction_session_timeout,
        // read_only_sql_transaction (a standby after failover).
        "57014" | "25P03" | "25006" => InboxAnswerKind::Unavailable,
        // connection exceptions, insufficient resources (too many connections, disk full),
        // operator intervention (admin shutdown, crash shutdown, cannot connect now).
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            InboxAnswerKind::Unavailable
        }
        _ => InboxAnswerKind::Failed,
    }
}

/// The core's answer to a database error met `during` a step, nothing marked: 503 +
/// `Retry-After: unavailable_secs` when the database is unavailable, 409 +
/// `Retry-After: conflict_secs` for a conflict, 500 otherwise. The detail names the step
/// and what the server said (never the connection string).
pub(crate) fn database_answer(
    error: &sqlx::Error,
    during: &str,
    unavailable_secs: u64,
    conflict_secs: u64,
) -> Answer {
    let detail = format!(
        "inbox {during}: {}; rolled back, nothing was marked",
        describe(error)
    );
    match classify(error) {
        InboxAnswerKind::Unavailable => {
            Answer::store_unavailable(secs_u32(unavailable_secs.max(1)), &detail)
        }
        InboxAnswerKind::Conflict | InboxAnswerKind::Busy => {
            Answer::conflict(secs_u32(conflict_secs.max(1)), &detail)
        }
        _ => Answer::store_failed(&detail),
    }
}

/// Seconds as the core's `Retry-After` takes them.
pub(crate) fn secs_u32(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_retryable_outcomes() {
        let cases = [
            ("serialization failure", "40001", InboxAnswerKind::Conflict),
            ("deadlock", "40P01", InboxAnswerKind::Conflict),
            ("lock not available", "55P03", InboxAnswerKind::Conflict),
            ("unique violation", "23505", InboxAnswerKind::Conflict),
            ("statement timeout", "57014", InboxAnswerKind::Unavailable),
            ("admin shutdown", "57P01", InboxAnswerKind::Unavailable),
            ("cannot connect now", "57P03", InboxAnswerKind::Unavailable),
            (
                "too many connections",
                "53300",
                InboxAnswerKind::Unavailable,
            ),
            ("connection failure", "08006", InboxAnswerKind::Unavailable),
            ("read-only standby", "25006", InboxAnswerKind::Unavailable),
            ("undefined table", "42P01", InboxAnswerKind::Failed),
            ("syntax error", "42601", InboxAnswerKind::Failed),
            ("no code", "", InboxAnswerKind::Failed),
        ];
        for (name, code, kind) in cases {
            assert_eq!(classify_sqlstate(code), kind, "{name}");
        }
    }

    #[test]
    fn driver_errors_are_unavailable_and_configuration_is_not_quoted() {
        assert_eq!(
            classify(&sqlx::Error::PoolTimedOut),
            InboxAnswerKind::Unavailable
        );
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&io), InboxAnswerKind::Unavailable);
        let config = sqlx::Error::Configuration("postgres://u:hunter2@h/db".into());
        assert!(!describe(&config).contains("hunter2"));
        assert!(!InboxError::from(config).to_string().contains("hunter2"));
    }
}
