//! The inbox table: its names, the statements on it, and creating it.

use crate::postgres::error::InboxError;

/// The schema the inbox table is created in by default: `public`.
pub const DEFAULT_SCHEMA: &str = "public";
/// The inbox table's name by default: `qstash_inbox`.
pub const DEFAULT_TABLE: &str = "qstash_inbox";

/// A Postgres identifier we accept: 1 to 63 bytes of ASCII letters, digits and `_`, not
/// starting with a digit. Quoted when used, so case is kept as written.
pub(crate) fn check_identifier(what: &'static str, name: &str) -> Result<(), InboxError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(InboxError::InvalidName(what))
    }
}

/// Every statement the inbox runs, with the table's quoted name in place, built once.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `"schema"."table"`, for messages.
    pub(crate) qualified: String,
    /// Creating the schema, table and indexes (idempotent).
    pub(crate) create: Vec<String>,
    /// $1 consumer, $2 message id, $3 token id (or NULL): the two locks, the stored answer,
    /// and whether the token was seen on another message.
    pub(crate) claim: String,
    /// $1 consumer, $2 message id, $3 token id, $4 status, $5 content type, $6 body.
    pub(crate) mark: String,
    /// $1 consumer, $2 retention in seconds, $3 batch size.
    pub(crate) cleanup: String,
}

impl Statements {
    pub(crate) fn new(schema: &str, table: &str) -> Self {
        let t = format!("\"{schema}\".\"{table}\"");
        let create = vec![
            format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 consumer TEXT NOT NULL, \
                 message_id TEXT NOT NULL, \
                 token_id TEXT, \
                 status SMALLINT NOT NULL, \
                 content_type TEXT NOT NULL, \
                 body BYTEA NOT NULL, \
                 handled_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
                 PRIMARY KEY (consumer, message_id))"
            ),
            // The replay guard: one token id per consumer, ever (a token is signed for one attempt).
            format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS \"{table}_token_id\" ON {t} (consumer, token_id)"
            ),
            // Retention: the cleanup walks this index, oldest first, in batches.
            format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_handled_at\" ON {t} (consumer, handled_at)"
            ),
        ];
        // Advisory locks, not a blocking insert on the unique key: a concurrent duplicate
        // answers 409 at once instead of holding a pooled connection until the first attempt
        // ends. Keys are hashed from the table, consumer and id, so two tables or consumers
        // never share a lock; a 64-bit collision only costs a 409 (QStash retries).
        let claim = format!(
            "SELECT \
               pg_try_advisory_xact_lock(hashtextextended('m' || chr(10) || '{t}' || chr(10) || $1 || chr(10) || $2, 0)) AS locked, \
               ($3::text IS NULL OR pg_try_advisory_xact_lock(hashtextextended('j' || chr(10) || '{t}' || chr(10) || $1 || chr(10) || $3, 0))) AS token_free, \
               d.status, d.content_type, d.body, \
               EXISTS (SELECT 1 FROM {t} r WHERE r.consumer = $1 AND r.token_id = $3 AND r.message_id <> $2) AS replayed \
             FROM (SELECT 1) AS one LEFT JOIN {t} AS d ON d.consumer = $1 AND d.message_id = $2"
        );
        let mark = format!(
            "INSERT INTO {t} (consumer, message_id, token_id, status, content_type, body) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        );
        let cleanup = format!(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY(\
               SELECT ctid FROM {t} WHERE consumer = $1 \
                 AND handled_at < now() - make_interval(secs => $2) \
               ORDER BY handled_at LIMIT $3))"
        );
        Self {
            qualified: t,
            create,
            claim,
            mark,
            cleanup,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_accepted() {
        for good in ["qstash_inbox", "Inbox2", "_x", &"a".repeat(63)] {
            assert!(check_identifier("table", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "a b",
            "a\"b",
            "a;drop",
            "ä",
            &"a".repeat(64),
            "a.b",
        ] {
            assert_eq!(
                check_identifier("table", bad),
                Err(InboxError::InvalidName("table")),
                "{bad}"
            );
        }
    }

    #[test]
    fn statements_name_the_quoted_table() {
        let sql = Statements::new("s", "T");
        assert_eq!(sql.qualified, "\"s\".\"T\"");
        assert!(sql.mark.contains("INSERT INTO \"s\".\"T\""));
        assert!(sql.create[3].contains("ON \"s\".\"T\" (consumer, handled_at)"));
    }
}
