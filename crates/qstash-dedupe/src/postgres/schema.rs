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
    /// Creating the schema, table and indexes (idempotent).
    pub(crate) create: Vec<String>,
    /// The claim function's quoted name.
    pub(crate) claim_function: String,
    /// The mark function's quoted name.
    pub(crate) mark_function: String,
    /// $1 consumer, $2 retention in seconds, $3 batch size.
    pub(crate) cleanup: String,
}

impl Statements {
    pub(crate) fn new(schema: &str, table: &str) -> Self {
        let t = format!("\"{schema}\".\"{table}\"");
        let mut create = vec![
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
        // The claim, one function so that a delivery's BEGIN and claim are one round trip
        // (`BEGIN; SELECT * FROM claim(..)`) with plans cached per connection, and so that
        // each of its statements reads a fresh snapshot, taken after the locks.
        //
        // Advisory locks, not a blocking insert on the unique key: a concurrent duplicate
        // answers 409 at once instead of holding a pooled connection until the first attempt
        // ends. Keys are hashed from the table, consumer and id, so two tables or consumers
        // never share a lock; a 64-bit collision only costs a 409 (QStash retries).
        let function = format!("\"{schema}\".\"{table}_claim\"");
        create.push(format!(
            "CREATE OR REPLACE FUNCTION {function}(h_consumer TEXT, h_message_id TEXT, h_token_id TEXT) \
             RETURNS TABLE (o_locked BOOLEAN, o_token_free BOOLEAN, o_status SMALLINT, \
                            o_content_type TEXT, o_body BYTEA, o_replayed BOOLEAN) \
             LANGUAGE plpgsql VOLATILE AS $claim$ \
             DECLARE \
               p_consumer TEXT := convert_from(decode(h_consumer, 'hex'), 'UTF8'); \
               p_message_id TEXT := convert_from(decode(h_message_id, 'hex'), 'UTF8'); \
               p_token_id TEXT := convert_from(decode(h_token_id, 'hex'), 'UTF8'); \
             BEGIN \
               o_locked := pg_try_advisory_xact_lock(hashtextextended( \
                 'm' || chr(10) || '{t}' || chr(10) || p_consumer || chr(10) || p_message_id, 0)); \
               o_token_free := p_token_id IS NULL OR pg_try_advisory_xact_lock(hashtextextended( \
                 'j' || chr(10) || '{t}' || chr(10) || p_consumer || chr(10) || p_token_id, 0)); \
               SELECT d.status, d.content_type, d.body INTO o_status, o_content_type, o_body \
                 FROM {t} AS d WHERE d.consumer = p_consumer AND d.message_id = p_message_id; \
               o_replayed := p_token_id IS NOT NULL AND EXISTS (SELECT 1 FROM {t} AS r \
                 WHERE r.consumer = p_consumer AND r.token_id = p_token_id \
                   AND r.message_id <> p_message_id); \
               PERFORM set_config('qstash_inbox.claim', h_message_id, true); \
               RETURN NEXT; \
             END $claim$"
        ));
        // The mark, one function so that finishing is one statement before `COMMIT`, with
        // its plan cached per connection. It first checks the transaction is still the one
        // the claim opened (the transaction-local setting the claim made is gone once that
        // transaction ended): otherwise 25P01, and the query's `COMMIT` never runs.
        let mark_function = format!("\"{schema}\".\"{table}_mark\"");
        create.push(format!(
            "CREATE OR REPLACE FUNCTION {mark_function}(h_consumer TEXT, h_message_id TEXT, \
               h_token_id TEXT, p_status INTEGER, h_content_type TEXT, h_body TEXT) \
             RETURNS VOID LANGUAGE plpgsql VOLATILE AS $mark$ \
             BEGIN \
               IF current_setting('qstash_inbox.claim', true) IS DISTINCT FROM h_message_id THEN \
                 RAISE EXCEPTION 'the delivery''s transaction was ended before its mark' \
                   USING ERRCODE = '25P01'; \
               END IF; \
               INSERT INTO {t} (consumer, message_id, token_id, status, content_type, body) \
               VALUES (convert_from(decode(h_consumer, 'hex'), 'UTF8'), \
                 convert_from(decode(h_message_id, 'hex'), 'UTF8'), \
                 convert_from(decode(h_token_id, 'hex'), 'UTF8'), p_status::SMALLINT, \
                 convert_from(decode(h_content_type, 'hex'), 'UTF8'), decode(h_body, 'hex')); \
             END $mark$"
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
            claim_function: function,
            mark_function,
            cleanup,
        }
    }
}

impl Statements {
    /// `BEGIN` and the claim, one simple query: every value travels hex-encoded, so no
    /// byte of a header can be read as SQL (whatever `standard_conforming_strings` says).
    pub(crate) fn claim(&self, consumer: &str, message_id: &str, token_id: Option<&str>) -> String {
        // The function decodes its arguments itself: with `convert_from(..)` expressions as
        // its arguments, pgbench measured PostgreSQL 15 at ~130 claims/s against ~1600.
        let mut sql = format!("BEGIN; SELECT * FROM {}('", self.claim_function);
        hex(&mut sql, consumer.as_bytes());
        sql.push_str("', '");
        hex(&mut sql, message_id.as_bytes());
        sql.push_str("', ");
        match token_id {
            Some(token_id) => {
                sql.push('\'');
                hex(&mut sql, token_id.as_bytes());
                sql.push('\'');
            }
            None => sql.push_str("NULL"),
        }
        sql.push(')');
        sql
    }

    /// The mark and `COMMIT`, one simple query of two statements: every value travels
    /// hex-encoded, as in the claim.
    pub(crate) fn mark_and_commit(&self, mark: &Mark<'_>) -> String {
        let mut sql = format!("SELECT {}('", self.mark_function);
        hex(&mut sql, mark.consumer.as_bytes());
        sql.push_str("', '");
        hex(&mut sql, mark.message_id.as_bytes());
        sql.push_str("', ");
        match mark.token_id {
            Some(token_id) => {
                sql.push('\'');
                hex(&mut sql, token_id.as_bytes());
                sql.push('\'');
            }
            None => sql.push_str("NULL"),
        }
        sql.push_str(&format!(", {}, '", mark.status));
        hex(&mut sql, mark.content_type.as_bytes());
        sql.push_str("', '");
        hex(&mut sql, mark.body);
        sql.push_str("'); COMMIT");
        sql
    }
}

/// What a mark stores.
pub(crate) struct Mark<'a> {
    pub(crate) consumer: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) token_id: Option<&'a str>,
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
        assert!(sql.create[3].contains("ON \"s\".\"T\" (consumer, handled_at)"));
        assert_eq!(
            sql.claim("c", "m", None),
            "BEGIN; SELECT * FROM \"s\".\"T_claim\"('63', '6d', NULL)"
        );
    }

    #[test]
    fn values_travel_as_hex_digits_only() {
        let sql = Statements::new("s", "t");
        let hostile = "msg'); DROP TABLE t; --\\'";
        let claim = sql.claim(hostile, hostile, Some(hostile));
        assert!(!claim.contains("DROP"), "{claim}");
        for (i, part) in claim.split('\'').enumerate() {
            if i % 2 == 1 {
                assert!(part.bytes().all(|b| b.is_ascii_hexdigit()), "{part}");
            }
        }
        let mark = sql.mark_and_commit(&Mark {
            consumer: "c",
            message_id: hostile,
            token_id: None,
            status: 201,
            content_type: "text/plain",
            body: b"\x00'\\",
        });
        assert!(!mark.contains("DROP"));
        assert!(mark.contains("'00275c'"), "{mark}");
        assert!(mark.starts_with("SELECT \"s\".\"t_mark\"('63', "), "{mark}");
        assert!(mark.ends_with("'); COMMIT"), "{mark}");
        // Between the quotes, only hex digits.
        for (i, part) in mark.split('\'').enumerate() {
            if i % 2 == 1 {
                assert!(part.bytes().all(|b| b.is_ascii_hexdigit()), "{part}");
            }
        }
    }
}
