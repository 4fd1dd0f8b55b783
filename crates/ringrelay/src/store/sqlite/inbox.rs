//! The SQLite inbox: the group-commit batch and inbox reads.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, TransactionBehavior, params};

use super::ops::PRUNE_BATCH;
use super::{Writer, sql_err};
use crate::store::codec::{account, opt_time, time, us};
use crate::store::{
    AppendOutcome, AppendReply, InboxRow, InboxStats, NewNotification, StoreError, answer_batch,
};

/// How far an account's newest notification moves on before `inbox_accounts` is written
/// again: one second.
const LAST_RECEIVED_STEP_US: i64 = 1_000_000;

/// Inserts a batch in one transaction and answers every caller after the commit (or with
/// the error when the transaction fails: then nothing of the batch was written).
pub(super) fn commit_batch(w: &mut Writer, batch: Vec<(NewNotification, AppendReply)>) {
    let started = std::time::Instant::now();
    let (notes, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let result = insert_all(w, &notes);
    answer_batch("sqlite", replies, result, started);
    metrics::gauge!("ringrelay_inbox_dedup_uuids").set(w.uuids.len() as f64);
}

fn insert_all(w: &mut Writer, notes: &[NewNotification]) -> Result<Vec<AppendOutcome>, StoreError> {
    // IMMEDIATE takes the write lock first, so no other connection can commit between the
    // dedup's catch-up and this commit.
    let tx = w
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    w.uuids.catch_up(&tx)?;
    let mut next_seq = w.uuids.max_seq() + 1;
    let mut outcomes = Vec::with_capacity(notes.len());
    let mut stored: Vec<(&str, i64)> = Vec::with_capacity(notes.len());
    let mut in_batch: HashSet<&str> = HashSet::with_capacity(notes.len());
    let mut duplicates = 0_i64;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO inbox (seq, account, subscription_id, uuid, event, ts, received_at,
                    body, unknown_subscription)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(sql_err)?;
        for n in notes {
            if in_batch.contains(n.uuid.as_str()) || w.uuids.find(&tx, &n.uuid)?.is_some() {
                duplicates += 1;
                outcomes.push(AppendOutcome::Duplicate);
                continue;
            }
            stmt.execute(params![
                next_seq,
                n.account.as_str(),
                n.subscription_id,
                n.uuid,
                n.event,
                n.timestamp.map(us),
                us(n.received_at),
                n.body,
                n.unknown_subscription,
            ])
            .map_err(sql_err)?;
            in_batch.insert(&n.uuid);
            stored.push((&n.uuid, next_seq));
            next_seq += 1;
            outcomes.push(AppendOutcome::Stored);
        }
    }
    // Each account's newest notification, kept so `status` and `/metrics` never scan the
    // inbox for it, to the second: it is written when it moved on by a second or more since
    // this writer last wrote it (not in every commit: one page less per commit).
    let mut newest: HashMap<&str, i64> = HashMap::new();
    for (n, o) in notes.iter().zip(&outcomes) {
        if *o == AppendOutcome::Stored {
            let at = us(n.received_at);
            let e = newest.entry(n.account.as_str()).or_insert(at);
            *e = (*e).max(at);
        }
    }
    newest.retain(|account, at| {
        w.last_received
            .get(*account)
            .is_none_or(|written| *at >= written + LAST_RECEIVED_STEP_US)
    });
    for (&account, &at) in &newest {
        tx.prepare_cached(
            "INSERT INTO inbox_accounts (account, last_received_at) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE
                SET last_received_at = MAX(last_received_at, excluded.last_received_at)",
        )
        .and_then(|mut s| s.execute(params![account, at]))
        .map_err(sql_err)?;
    }
    // Duplicates seen (only when there are some: every page a commit touches is one more
    // WAL write).
    if duplicates > 0 {
        tx.prepare_cached(
            "INSERT INTO counters (name, value) VALUES ('inbox_duplicates', ?1)
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        )
        .and_then(|mut s| s.execute([duplicates]))
        .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)?;
    for (uuid, seq) in stored {
        w.uuids.insert(uuid, seq);
    }
    for (account, at) in newest {
        w.last_received.insert(account.to_owned(), at);
    }
    Ok(outcomes)
}

/// Deletes up to [`PRUNE_BATCH`] rows received before `before` and forgets their uuids;
/// returns how many went. The newest row always stays: the writer numbers new rows after
/// it, so a seq is never handed out twice.
pub(super) fn prune(w: &mut Writer, before: i64) -> Result<u64, StoreError> {
    let tx = w.conn.transaction().map_err(sql_err)?;
    let gone = tx
        .prepare_cached(
            "DELETE FROM inbox WHERE seq IN
                (SELECT seq FROM inbox WHERE received_at < ?1
                    AND seq < (SELECT MAX(seq) FROM inbox) LIMIT ?2)
             RETURNING seq, uuid",
        )
        .and_then(|mut s| {
            s.query_map(params![before, PRUNE_BATCH], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql_err)?;
    tx.commit().map_err(sql_err)?;
    for (seq, uuid) in &gone {
        w.uuids.remove(uuid, *seq);
    }
    Ok(gone.len() as u64)
}

/// Up to `limit` rows after `after_seq`.
pub(super) fn after(
    conn: &Connection,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<InboxRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, account, subscription_id, uuid, event, ts, received_at, body,
                unknown_subscription
             FROM inbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(params![after_seq, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, bool>(8)?,
            ))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, acc, subscription_id, uuid, event, ts, received_at, body, unknown) =
            row.map_err(sql_err)?;
        out.push(InboxRow {
            seq,
            account: account(&acc)?,
            subscription_id,
            uuid,
            event,
            timestamp: opt_time(ts)?,
            received_at: time(received_at)?,
            body,
            unknown_subscription: unknown,
        });
    }
    Ok(out)
}

/// The inbox counters.
pub(super) fn stats(conn: &Connection) -> Result<InboxStats, StoreError> {
    let (rows, max_seq): (i64, Option<i64>) = conn
        .query_row("SELECT COUNT(*), MAX(seq) FROM inbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(sql_err)?;
    let ever: i64 = conn
        .query_row(
            "SELECT COALESCE((SELECT value FROM counters WHERE name = 'inbox_max_seq'), 0)",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    let duplicates: i64 = conn
        .query_row(
            "SELECT COALESCE((SELECT value FROM counters WHERE name = 'inbox_duplicates'), 0)",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    Ok(InboxStats {
        rows: u64::try_from(rows).unwrap_or(0),
        duplicates: u64::try_from(duplicates).unwrap_or(0),
        max_seq: ever.max(max_seq.unwrap_or(0)),
    })
}
