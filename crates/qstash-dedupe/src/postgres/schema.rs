//! The inbox table: its names, the statements on it, and creating it.

use crate::postgres::error::InboxError;

/// The schema the inbox table is created in by default: `public`.
pub const DEFAULT_SCHEMA: &str = "public";
/// The inbox table's name by default: `qstash_inbox`.
pub const DEFAULT_TABLE: &str = "qstash_inbox";

/// The longest table name: PostgreSQL cuts names at 63 bytes, and the table's index and
/// function names append up to 11 (`_handled_at`).
pub(crate) const MAX_TABLE_NAME: usize = 52;
/// The longest schema name (PostgreSQL's limit).
pub(crate) const MAX_SCHEMA_NAME: usize = 63;

/// A Postgres identifier we accept: 1 to `max` bytes of ASCII letters, digits and `_`, not
/// starting with a digit. Quoted when used, so case is kept as written.
pub(crate) fn check_identifier(
    what: &'static str,
    name: &str,
    max: usize,
) -> Result<(), InboxError> {
    let valid = !name.is_empty()
        && name.len() <= max
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
    /// Creating the schema, table, indexes and functions, and migrating a table an earlier
    /// version created (idempotent).
    pub(crate) create: Vec<String>,
    /// The claim function's quoted name: inserts the pending mark.
    pending_function: String,
    /// The function that stores the answer in the pending mark.
    done_function: String,
    /// The function that says what holds a message the claim could not take.
    lookup_function: String,
    /// The function that removes a pending mark a handler committed by itself.
    forget_function: String,
    /// $1 consumer, $2 retention in seconds, $3 batch size.
    pub(crate) cleanup: String,
}

impl Statements {
    pub(crate) fn new(schema: &str, table: &str) -> Self {
        let t = format!("\"{schema}\".\"{table}\"");
        let function = |suffix: &str| format!("\"{schema}\".\"{table}_{suffix}\"");
        // The lock keys: hashed from the table, consumer and id, so two tables or consumers
        // never share a lock; a 64-bit collision only costs a 409 (QStash retries). Every
        // version of the inbox computes them the same way, so instances of two versions
        // exclude each other during a rolling deploy.
        let message_lock = format!(
            "pg_try_advisory_xact_lock(hashtextextended(\
               'm' || chr(10) || '{t}' || chr(10) || p_consumer || chr(10) || p_message_id, 0))"
        );
        let token_lock = format!(
            "pg_try_advisory_xact_lock(hashtextextended(\
               'j' || chr(10) || '{t}' || chr(10) || p_consumer || chr(10) || p_token_id, 0))"
        );
        let decode = "p_consumer TEXT := convert_from(decode(h_consumer, 'hex'), 'UTF8'); \
             p_message_id TEXT := convert_from(decode(h_message_id, 'hex'), 'UTF8'); \
             p_token_id TEXT := convert_from(decode(h_token_id, 'hex'), 'UTF8');";
        let mut create = vec![
            format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""),
            // `status` 0 marks a pending claim: the row is inserted when the handler starts
            // and gets its answer before `COMMIT`, so no other transaction ever sees it
            // pending (unless a handler commits the delivery's transaction itself).
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
            // The replay guard: one token id per consumer, ever (a token is signed for one
            // attempt). Partial: with the guard off, marks carry no token and cost this index
            // nothing.
            format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS \"{table}_token\" ON {t} (consumer, token_id) \
                 WHERE token_id IS NOT NULL"
            ),
            // The inbox's first schema indexed every row's token, NULLs too, under another
            // name: replaced by the partial index above (created first, so the guard is never
            // without its index), not left in place beside it.
            format!("DROP INDEX IF EXISTS \"{schema}\".\"{table}_token_id\""),
            // Retention: the cleanup walks this index, oldest first, in batches. One consumer's
            // marks arrive in time order, so inserts land on its rightmost leaf.
            format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_handled_at\" ON {t} (consumer, handled_at)"
            ),
        ];
        // The claim: one statement that takes both advisory locks and inserts the pending
        // mark, which returns its row (or NULL: a lock was held, or a unique key was taken).
        // Advisory locks, not a blocking insert on the unique keys: a concurrent duplicate
        // answers 409 at once instead of holding a pooled connection until the first attempt
        // ends. With the locks held, no other transaction can hold an uncommitted row with
        // these keys, so `ON CONFLICT DO NOTHING` never waits; and it checks the unique keys
        // against the latest committed rows, whatever the statement's snapshot.
        //
        // Functions so that BEGIN and the claim are one round trip (`BEGIN; SELECT ..`) with
        // plans cached per connection. They decode their hex arguments themselves: with
        // `convert_from(..)` expressions as arguments, pgbench measured PostgreSQL 15 at
        // ~130 claims/s against ~1600 (`convert_from` derives the `C` collation from its
        // `name` argument, which the default-collation indexes cannot serve).
        let pending_function = function("pending");
        create.push(format!(
            "CREATE OR REPLACE FUNCTION {pending_function}(\
               h_consumer TEXT, h_message_id TEXT, h_token_id TEXT) \
             RETURNS TEXT LANGUAGE plpgsql VOLATILE AS $pending$ \
             DECLARE {decode} o_row TID; \
             BEGIN \
               INSERT INTO {t} (consumer, message_id, token_id, status, content_type, body) \
               SELECT p_consumer, p_message_id, p_token_id, 0, '', '' \
               WHERE {message_lock} AND (p_token_id IS NULL OR {token_lock}) \
               ON CONFLICT DO NOTHING RETURNING ctid INTO o_row; \
               RETURN o_row::TEXT; \
             END $pending$"
        ));
        // The answer, one statement before `COMMIT`: the pending row, found by its row id,
        // gets the status, content type and body (a heap-only update: no index changes).
        // Only a row this transaction inserted qualifies: when the handler ended the
        // delivery's transaction (ROLLBACK, or COMMIT and BEGIN), 25P01, and the query's
        // `COMMIT` never runs.
        let done_function = function("done");
        create.push(format!(
            "CREATE OR REPLACE FUNCTION {done_function}(\
               p_row TID, p_status INTEGER, h_content_type TEXT, h_body TEXT) \
             RETURNS VOID LANGUAGE plpgsql VOLATILE AS $done$ \
             BEGIN \
               UPDATE {t} SET status = p_status::SMALLINT, \
                 content_type = convert_from(decode(h_content_type, 'hex'), 'UTF8'), \
                 body = decode(h_body, 'hex') \
               WHERE ctid = p_row AND xmin = pg_current_xact_id()::xid; \
               IF NOT FOUND THEN \
                 RAISE EXCEPTION 'the delivery''s transaction was ended before its mark' \
                   USING ERRCODE = '25P01'; \
               END IF; \
             END $done$"
        ));
        // When the claim took nothing (rare: a duplicate, a concurrent attempt, a replayed
        // token): what holds the message. Its statements run after the claim's, so they see
        // the committed row that made the claim's insert do nothing. The token's lock is
        // tried again (granted again when this transaction holds it): held elsewhere, the
        // token is in use on another delivery.
        let lookup_function = function("lookup");
        create.push(format!(
            "CREATE OR REPLACE FUNCTION {lookup_function}(\
               h_consumer TEXT, h_message_id TEXT, h_token_id TEXT) \
             RETURNS TABLE (o_token_free BOOLEAN, o_status SMALLINT, o_content_type TEXT, \
                            o_body BYTEA, o_replayed BOOLEAN) \
             LANGUAGE plpgsql VOLATILE AS $lookup$ \
             DECLARE {decode} \
             BEGIN \
               o_token_free := p_token_id IS NULL OR {token_lock}; \
               SELECT d.status, d.content_type, d.body INTO o_status, o_content_type, o_body \
                 FROM {t} AS d WHERE d.consumer = p_consumer AND d.message_id = p_message_id; \
               o_replayed := p_token_id IS NOT NULL AND EXISTS (SELECT 1 FROM {t} AS r \
                 WHERE r.consumer = p_consumer AND r.token_id = p_token_id \
                   AND r.message_id <> p_message_id); \
               RETURN NEXT; \
             END $lookup$"
        ));
        // A handler that committed the delivery's transaction itself committed the pending
        // mark too, without an answer: removed, so that the message is not taken as handled.
        let forget_function = function("forget");
        create.push(format!(
            "CREATE OR REPLACE FUNCTION {forget_function}(h_consumer TEXT, h_message_id TEXT) \
             RETURNS VOID LANGUAGE plpgsql VOLATILE AS $forget$ \
             BEGIN \
               DELETE FROM {t} WHERE consumer = convert_from(decode(h_consumer, 'hex'), 'UTF8') \
                 AND message_id = convert_from(decode(h_message_id, 'hex'), 'UTF8') \
                 AND status = 0; \
             END $forget$"
        ));
        let cleanup = format!(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY(\
               SELECT ctid FROM {t} WHERE consumer = $1 \
                 AND handled_at < now() - make_interval(secs => $2) \
               ORDER BY handled_at LIMIT $3))"
        );
        Self {
            qualified: t,
            create,
            pending_function,
            done_function,
            lookup_function,
            forget_function,
            cleanup,
        }
    }

    /// `BEGIN` and the claim, one simple query: every value travels hex-encoded, so no
    /// byte of a header can be read as SQL (whatever `standard_conforming_strings` says).
    /// Its one row holds the pending mark's row id, or NULL.
    pub(crate) fn claim(&self, consumer: &str, message_id: &str, token_id: Option<&str>) -> String {
        let mut sql = format!("BEGIN; SELECT {}(", self.pending_function);
        keys(&mut sql, consumer, message_id, token_id);
        sql
    }

    /// What holds the message when the claim took nothing (one row: `o_token_free`,
    /// `o_status`, `o_content_type`, `o_body`, `o_replayed`).
    pub(crate) fn lookup(
        &self,
        consumer: &str,
        message_id: &str,
        token_id: Option<&str>,
    ) -> String {
        let mut sql = format!("SELECT * FROM {}(", self.lookup_function);
        keys(&mut sql, consumer, message_id, token_id);
        sql
    }

    /// The answer and `COMMIT`, one simple query of two statements. `row` is the claim's
    /// row id, as the server wrote it; the other values travel hex-encoded.
    pub(crate) fn done_and_commit(&self, row: &RowId, mark: &Mark<'_>) -> String {
        let mut sql = format!(
            "SELECT {}('{}', {}, '",
            self.done_function, row.0, mark.status
        );
        hex(&mut sql, mark.content_type.as_bytes());
        sql.push_str("', '");
        hex(&mut sql, mark.body);
        sql.push_str("'); COMMIT");
        sql
    }

    /// Removes the pending mark of `message_id` (autocommit), after a handler committed the
    /// delivery's transaction itself.
    pub(crate) fn forget(&self, consumer: &str, message_id: &str) -> String {
        let mut sql = format!("SELECT {}('", self.forget_function);
        hex(&mut sql, consumer.as_bytes());
        sql.push_str("', '");
        hex(&mut sql, message_id.as_bytes());
        sql.push_str("')");
        sql
    }
}

/// `'consumer', 'message id', 'token' | NULL)`, hex-encoded.
fn keys(sql: &mut String, consumer: &str, message_id: &str, token_id: Option<&str>) {
    sql.push('\'');
    hex(sql, consumer.as_bytes());
    sql.push_str("', '");
    hex(sql, message_id.as_bytes());
    sql.push_str("', ");
    match token_id {
        Some(token_id) => {
            sql.push('\'');
            hex(sql, token_id.as_bytes());
            sql.push('\'');
        }
        None => sql.push_str("NULL"),
    }
    sql.push(')');
}

/// The pending mark's row id (`ctid`) as the server wrote it, e.g. `(12,3)`: checked to be
/// only that, so it can travel back in a query as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowId(String);

impl RowId {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let inner = text.strip_prefix('(')?.strip_suffix(')')?;
        let (block, offset) = inner.split_once(',')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
        (digits(block) && digits(offset)).then(|| Self(text.to_owned()))
    }
}

/// The answer a mark stores.
pub(crate) struct Mark<'a> {
    pub(crate) status: u16,
    pub(crate) content_type: &'a str,
    pub(crate) body: &'a [u8],
}

/// `value` as lowercase hex digits.
fn hex(sql: &mut String, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    sql.reserve(value.len() * 2);
    for byte in value {
        sql.push(char::from(HEX[usize::from(byte >> 4)]));
        sql.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_accepted() {
        for good in ["qstash_inbox", "Inbox2", "_x", &"a".repeat(52)] {
            assert!(check_identifier("table", good, 52).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "a b",
            "a\"b",
            "a;drop",
            "ä",
            &"a".repeat(53),
            "a.b",
        ] {
            assert_eq!(
                check_identifier("table", bad, 52),
                Err(InboxError::InvalidName("table")),
                "{bad}"
            );
        }
    }

    #[test]
    fn statements_name_the_quoted_table() {
        let sql = Statements::new("s", "T");
        assert_eq!(sql.qualified, "\"s\".\"T\"");
        assert!(
            sql.create
                .iter()
                .any(|c| c.contains("ON \"s\".\"T\" (consumer, handled_at)"))
        );
        assert!(sql.create.iter().any(|c| c.contains(
            "\"T_token\" ON \"s\".\"T\" (consumer, token_id) WHERE token_id IS NOT NULL"
        )));
        assert!(
            sql.create
                .iter()
                .any(|c| c == "DROP INDEX IF EXISTS \"s\".\"T_token_id\""),
            "the first schema's token index is replaced"
        );
        assert_eq!(
            sql.claim("c", "m", None),
            "BEGIN; SELECT \"s\".\"T_pending\"('63', '6d', NULL)"
        );
        assert_eq!(
            sql.lookup("c", "m", Some("j")),
            "SELECT * FROM \"s\".\"T_lookup\"('63', '6d', '6a')"
        );
        assert_eq!(
            sql.forget("c", "m"),
            "SELECT \"s\".\"T_forget\"('63', '6d')"
        );
    }

    /// Between the quotes of `sql`, only hex digits.
    #[track_caller]
    fn only_hex_is_quoted(sql: &str) {
        for (i, part) in sql.split('\'').enumerate() {
            if i % 2 == 1 {
                assert!(part.bytes().all(|b| b.is_ascii_hexdigit()), "{part}");
            }
        }
    }

    #[test]
    fn values_travel_as_hex_digits_only() {
        let sql = Statements::new("s", "t");
        let hostile = "msg'); DROP TABLE t; --\\'";
        for query in [
            sql.claim(hostile, hostile, Some(hostile)),
            sql.lookup(hostile, hostile, Some(hostile)),
            sql.forget(hostile, hostile),
        ] {
            assert!(!query.contains("DROP"), "{query}");
            only_hex_is_quoted(&query);
        }
        let row = RowId::parse("(12,3)").unwrap();
        let done = sql.done_and_commit(
            &row,
            &Mark {
                status: 201,
                content_type: "text/plain'; DROP TABLE t; --",
                body: b"\x00'\\",
            },
        );
        assert!(!done.contains("DROP"), "{done}");
        assert!(done.contains("'00275c'"), "{done}");
        assert!(
            done.starts_with("SELECT \"s\".\"t_done\"('(12,3)', 201, '"),
            "{done}"
        );
        assert!(done.ends_with("'); COMMIT"), "{done}");
        only_hex_is_quoted(&done.replace("'(12,3)'", "''"));
    }

    #[test]
    fn a_row_id_is_only_what_the_server_writes() {
        assert_eq!(RowId::parse("(0,1)"), Some(RowId("(0,1)".to_owned())));
        assert!(RowId::parse("(4294967295,65535)").is_some());
        for bad in [
            "",
            "()",
            "(1)",
            "(1,)",
            "(,1)",
            "1,2",
            "(1,2",
            "(1,2)x",
            "(1, 2)",
            "(1,2');--)",
            "(-1,2)",
            "(12345678901,1)",
        ] {
            assert_eq!(RowId::parse(bad), None, "{bad}");
        }
    }
}
