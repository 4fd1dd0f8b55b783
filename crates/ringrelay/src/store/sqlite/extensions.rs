//! The `extensions` table on SQLite: an account's extension list replaced in one write
//! transaction, unchanged rows keeping their `updated_at`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, params};

use super::sql_err;
use crate::account::AccountId;
use crate::store::codec::{time, us};
use crate::store::{ExtensionRecord, StoreError, StoredExtension};

/// Replaces `account`'s rows with `records` (see `Store::replace_extensions`).
pub(super) fn replace(
    t: &Transaction<'_>,
    account: &AccountId,
    records: &[ExtensionRecord],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let keep: HashSet<&str> = records.iter().map(|r| r.extension_id.as_str()).collect();
    let existing: Vec<String> = {
        let mut stmt = t
            .prepare("SELECT extension_id FROM extensions WHERE account = ?1")
            .map_err(sql_err)?;
        stmt.query_map([account.as_str()], |r| r.get(0))
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?
    };
    for id in existing.iter().filter(|id| !keep.contains(id.as_str())) {
        t.execute(
            "DELETE FROM extensions WHERE account = ?1 AND extension_id = ?2",
            params![account.as_str(), id],
        )
        .map_err(sql_err)?;
    }
    let mut upsert = t
        .prepare(
            "INSERT INTO extensions (account, extension_id, number, name, kind, status, covered,
                reason, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (account, extension_id) DO UPDATE SET
                number = excluded.number, name = excluded.name, kind = excluded.kind,
                status = excluded.status, covered = excluded.covered, reason = excluded.reason,
                updated_at = CASE
                    WHEN extensions.number IS excluded.number AND extensions.name = excluded.name
                        AND extensions.kind = excluded.kind
                        AND extensions.status = excluded.status
                        AND extensions.covered = excluded.covered
                        AND extensions.reason IS excluded.reason
                    THEN extensions.updated_at ELSE excluded.updated_at END",
        )
        .map_err(sql_err)?;
    for r in records {
        upsert
            .execute(params![
                account.as_str(),
                r.extension_id,
                r.number,
                r.name,
                r.kind,
                r.status,
                r.covered,
                r.reason,
                us(now),
            ])
            .map_err(sql_err)?;
    }
    Ok(())
}

/// `account`'s rows, by extension id.
pub(super) fn list(
    c: &Connection,
    account: &AccountId,
) -> Result<Vec<StoredExtension>, StoreError> {
    let mut stmt = c
        .prepare(
            "SELECT extension_id, number, name, kind, status, covered, reason, updated_at
             FROM extensions WHERE account = ?1 ORDER BY extension_id",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([account.as_str()], |r| {
            Ok((
                ExtensionRecord {
                    extension_id: r.get(0)?,
                    number: r.get(1)?,
                    name: r.get(2)?,
                    kind: r.get(3)?,
                    status: r.get(4)?,
                    covered: r.get(5)?,
                    reason: r.get(6)?,
                },
                r.get::<_, i64>(7)?,
            ))
        })
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    rows.into_iter()
        .map(|(record, at)| {
            Ok(StoredExtension {
                record,
                updated_at: time(at)?,
            })
        })
        .collect()
}
