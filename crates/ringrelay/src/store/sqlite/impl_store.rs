//! The [`Store`] trait on SQLite: every write runs on the writer thread in one
//! transaction, every read on a reader connection.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, inbox, sql_err};
use crate::account::AccountId;
use crate::config::Secret;
use crate::store::codec::{
    self, backfill_columns, cursor_account, from_json, limit, opt_time, parse, time, to_json, us,
};
use crate::store::{
    AppendOutcome, BackfillState, ClaimedDelivery, CursorUpdate, Delivery, DeliveryCount,
    DeliveryFilter, DeliveryResult, DeliveryState, ExtensionRecord, Gap, GapCause,
    InboxAccountSummary, InboxRow, InboxStats, Lease, NewActivity, NewNotification, PruneCounts,
    SinkState, Store, StoreError, StoredExtension, StoredTokens, SubscriptionRecord,
    chrono_duration,
};

use super::ops::{PRUNE_BATCH, acquire, claim, complete, insert_activity, prune_batch, set_cursor};
use super::rows::{
    DELIVERY_COLUMNS, GAP_COLUMNS, collect, delivery_row, gap_row, subscription_row,
};

impl SqliteStore {
    async fn prune_all(&self, sql: &'static str, before: i64) -> Result<u64, StoreError> {
        in_batches(|| self.write(move |t| prune_batch(t, sql, before))).await
    }
}

/// Runs `step` (one pruning transaction) until it removes less than a full batch; returns
/// how many rows went in all.
async fn in_batches<F, Fut>(mut step: F) -> Result<u64, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    loop {
        let n = step().await?;
        total += n;
        if n < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append_inbox(&self, n: NewNotification) -> Result<AppendOutcome, StoreError> {
        self.append(n).await
    }

    async fn inbox_after(&self, after_seq: i64, n: usize) -> Result<Vec<InboxRow>, StoreError> {
        self.read(move |c| inbox::after(c, after_seq, limit(n)))
            .await
    }

    async fn inbox_stats(&self) -> Result<InboxStats, StoreError> {
        self.read(inbox::stats).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(count = activities.len()))]
    async fn insert_activities(
        &self,
        activities: Vec<NewActivity>,
        processed: Option<CursorUpdate>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let now = us(Utc::now());
        self.write(move |t| {
            let mut out = Vec::with_capacity(activities.len());
            for a in &activities {
                out.push(if insert_activity(t, a, now)? {
                    AppendOutcome::Stored
                } else {
                    AppendOutcome::Duplicate
                });
            }
            if let Some(u) = &processed {
                set_cursor(t, u)?;
            }
            Ok(out)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sink, owner))]
    async fn claim_deliveries(
        &self,
        sink: &str,
        owner: &str,
        now: DateTime<Utc>,
        n: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let (sink, owner) = (sink.to_owned(), owner.to_owned());
        let until = us(now + chrono_duration(lease));
        self.write(move |t| claim(t, &sink, &owner, us(now), until, limit(n)))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id, attempt))]
    async fn complete_delivery(
        &self,
        id: i64,
        attempt: u32,
        now: DateTime<Utc>,
        result: DeliveryResult,
    ) -> Result<(), StoreError> {
        self.write(move |t| complete(t, id, attempt, now, &result))
            .await
    }

    async fn list_deliveries(&self, f: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let f = f.clone();
        self.read(move |c| {
            let sql = format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN activities a ON a.id = d.activity
                 WHERE (?1 IS NULL OR d.sink = ?1) AND (?2 IS NULL OR d.account = ?2)
                   AND (?3 IS NULL OR d.state = ?3) AND (?4 IS NULL OR d.id < ?4)
                 ORDER BY d.id DESC LIMIT ?5"
            );
            let lim = if f.limit == 0 { 100 } else { limit(f.limit) };
            collect(
                c,
                &sql,
                params![
                    f.sink,
                    f.account.as_ref().map(AccountId::as_str),
                    f.state.map(DeliveryState::as_str),
                    f.before_id,
                    lim
                ],
                delivery_row,
            )
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id))]
    async fn retry_delivery(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(move |t| {
            let state: Option<String> = t
                .query_row("SELECT state FROM deliveries WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql_err)?;
            match state.as_deref() {
                None => Err(StoreError::NotFound(format!("delivery {id}"))),
                Some("dead" | "failed") => {
                    t.execute(
                        "UPDATE deliveries SET state = 'failed', due_at = ?2 WHERE id = ?1",
                        params![id, us(now)],
                    )
                    .map_err(sql_err)?;
                    Ok(())
                }
                Some(other) => Err(StoreError::Conflict(format!(
                    "delivery {id} is {other}; only dead or failed deliveries are retried"
                ))),
            }
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sink))]
    async fn replay(
        &self,
        sink: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let sink = sink.to_owned();
        self.write(move |t| {
            let n = t
                .execute(
                    "UPDATE deliveries SET state = 'pending', due_at = ?3, delivered_at = NULL
                     WHERE sink = ?1 AND state = 'delivered' AND activity IN
                        (SELECT id FROM activities WHERE occurred_at >= ?2)",
                    params![sink, us(since), us(now)],
                )
                .map_err(sql_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state
                 ORDER BY sink, state",
                &[],
                |r| {
                    Ok(DeliveryCount {
                        sink: r.get(0).map_err(sql_err)?,
                        state: parse(&r.get::<_, String>(1).map_err(sql_err)?)?,
                        count: codec::count(r.get(2).map_err(sql_err)?),
                    })
                },
            )
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sink))]
    async fn set_sink_disabled(
        &self,
        sink: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sink = sink.to_owned();
        self.write(move |t| {
            t.execute(
                "INSERT INTO sinks (name, disabled_reason, changed_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET disabled_reason = excluded.disabled_reason,
                    changed_at = excluded.changed_at",
                params![sink, reason, us(now)],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn sink_states(&self) -> Result<Vec<SinkState>, StoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT name, disabled_reason, changed_at FROM sinks ORDER BY name",
                &[],
                |r| {
                    Ok(SinkState {
                        sink: r.get(0).map_err(sql_err)?,
                        disabled_reason: r.get(1).map_err(sql_err)?,
                        changed_at: time(r.get(2).map_err(sql_err)?)?,
                    })
                },
            )
        })
        .await
    }

    async fn upsert_subscription(&self, s: &SubscriptionRecord) -> Result<(), StoreError> {
        let s = s.clone();
        self.write(move |t| {
            t.execute(
                "INSERT INTO subscriptions (account, id, status, expires_at, address,
                    verification_token, event_filters, disabled_filters, created_at, renewed_at,
                    last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (account) DO UPDATE SET id = excluded.id, status = excluded.status,
                    expires_at = excluded.expires_at, address = excluded.address,
                    verification_token = excluded.verification_token,
                    event_filters = excluded.event_filters,
                    disabled_filters = excluded.disabled_filters,
                    created_at = excluded.created_at, renewed_at = excluded.renewed_at,
                    last_error = excluded.last_error",
                params![
                    s.account.as_str(),
                    s.id,
                    s.status,
                    us(s.expires_at),
                    s.address,
                    s.verification_token.as_ref().map(Secret::expose),
                    to_json(&s.event_filters)?,
                    to_json(&s.disabled_filters)?,
                    us(s.created_at),
                    s.renewed_at.map(us),
                    s.last_error,
                ],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn subscription(
        &self,
        acc: &AccountId,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        let acc = acc.clone();
        self.read(move |c| {
            let mut v = collect(
                c,
                "SELECT * FROM subscriptions WHERE account = ?1",
                params![acc.as_str()],
                subscription_row,
            )?;
            Ok(v.pop())
        })
        .await
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT * FROM subscriptions ORDER BY account",
                &[],
                subscription_row,
            )
        })
        .await
    }

    async fn delete_subscription(&self, acc: &AccountId) -> Result<bool, StoreError> {
        let acc = acc.clone();
        self.write(move |t| {
            let n = t
                .execute(
                    "DELETE FROM subscriptions WHERE account = ?1",
                    [acc.as_str()],
                )
                .map_err(sql_err)?;
            Ok(n > 0)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(account = %acc, cause = %cause))]
    async fn open_gap(
        &self,
        acc: &AccountId,
        from: DateTime<Utc>,
        cause: GapCause,
    ) -> Result<Gap, StoreError> {
        let acc = acc.clone();
        self.write(move |t| {
            t.execute(
                "INSERT INTO gaps (account, from_at, cause) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account) WHERE until_at IS NULL DO NOTHING",
                params![acc.as_str(), us(from), cause.as_str()],
            )
            .map_err(sql_err)?;
            let sql =
                format!("SELECT {GAP_COLUMNS} FROM gaps WHERE account = ?1 AND until_at IS NULL");
            collect(t, &sql, params![acc.as_str()], gap_row)?
                .pop()
                .ok_or_else(|| StoreError::Other("the open gap vanished".into()))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(account = %acc))]
    async fn close_gap(
        &self,
        acc: &AccountId,
        until: DateTime<Utc>,
    ) -> Result<Option<Gap>, StoreError> {
        let acc = acc.clone();
        self.write(move |t| {
            let sql = format!(
                "UPDATE gaps SET until_at = ?2 WHERE account = ?1 AND until_at IS NULL
                 RETURNING {GAP_COLUMNS}"
            );
            Ok(collect(t, &sql, params![acc.as_str(), us(until)], gap_row)?.pop())
        })
        .await
    }

    async fn gaps(
        &self,
        acc: Option<&AccountId>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Gap>, StoreError> {
        let acc = acc.map(|a| a.as_str().to_owned());
        self.read(move |c| {
            let sql = format!(
                "SELECT {GAP_COLUMNS} FROM gaps WHERE (?1 IS NULL OR account = ?1)
                   AND (?2 IS NULL OR until_at IS NULL OR until_at >= ?2)
                 ORDER BY from_at, id"
            );
            collect(c, &sql, params![acc, since.map(us)], gap_row)
        })
        .await
    }

    async fn gaps_to_backfill(&self, n: usize) -> Result<Vec<Gap>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {GAP_COLUMNS} FROM gaps WHERE until_at IS NOT NULL
                   AND backfill IN ('pending', 'failed') ORDER BY from_at, id LIMIT ?1"
            );
            collect(c, &sql, params![limit(n)], gap_row)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id))]
    async fn mark_gap_backfilled(
        &self,
        id: i64,
        state: BackfillState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(move |t| {
            let open: Option<Option<i64>> = t
                .query_row("SELECT until_at FROM gaps WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql_err)?;
            match open {
                None => return Err(StoreError::NotFound(format!("gap {id}"))),
                Some(None) => return Err(StoreError::Conflict(format!("gap {id} is still open"))),
                Some(Some(_)) => {}
            }
            let (st, records, found, error) = backfill_columns(&state);
            t.execute(
                "UPDATE gaps SET backfill = ?2, records = ?3, found = ?4, backfill_error = ?5,
                    backfilled_at = ?6 WHERE id = ?1",
                params![id, st, records, found, error, us(now)],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn record_liveness(&self, acc: &AccountId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let acc = acc.clone();
        self.write(move |t| {
            t.execute(
                "INSERT INTO liveness (account, at) VALUES (?1, ?2)
                 ON CONFLICT (account) DO UPDATE SET at = MAX(at, excluded.at)",
                params![acc.as_str(), us(at)],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn inbox_account_summary(
        &self,
        acc: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<InboxAccountSummary, StoreError> {
        let acc = acc.clone();
        let since = us(since);
        self.read(move |c| {
            let (last, n): (Option<i64>, i64) = c
                .query_row(
                    "SELECT (SELECT last_received_at FROM inbox_accounts WHERE account = ?1),
                            (SELECT COUNT(*) FROM inbox WHERE account = ?1 AND received_at >= ?2)",
                    rusqlite::params![acc.as_str(), since],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql_err)?;
            Ok(InboxAccountSummary {
                last_received_at: opt_time(last)?,
                since_count: u64::try_from(n).unwrap_or(0),
            })
        })
        .await
    }

    async fn last_liveness(&self, acc: &AccountId) -> Result<Option<DateTime<Utc>>, StoreError> {
        let acc = acc.clone();
        self.read(move |c| {
            let v: Option<i64> = c
                .query_row(
                    "SELECT at FROM liveness WHERE account = ?1",
                    [acc.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)?;
            opt_time(v)
        })
        .await
    }

    async fn cursor(
        &self,
        acc: Option<&AccountId>,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        let (acc, name) = (cursor_account(acc), name.to_owned());
        self.read(move |c| {
            c.query_row(
                "SELECT value FROM cursors WHERE account = ?1 AND name = ?2",
                params![acc, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)
        })
        .await
    }

    async fn set_cursor(&self, u: &CursorUpdate) -> Result<(), StoreError> {
        let u = u.clone();
        self.write(move |t| set_cursor(t, &u)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(name, owner))]
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        let until = us(now + chrono_duration(ttl));
        self.write(move |t| acquire(t, &name, &owner, us(now), until))
            .await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        let lease = lease.clone();
        let until = now + chrono_duration(ttl);
        self.write(move |t| {
            let n = t
                .execute(
                    "UPDATE leases SET expires_at = ?4 WHERE name = ?1 AND owner = ?2
                        AND fence = ?3",
                    params![lease.name, lease.owner, lease.fence, us(until)],
                )
                .map_err(sql_err)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "lease {} is no longer held by {} with fence {}",
                    lease.name, lease.owner, lease.fence
                )));
            }
            Ok(Lease {
                expires_at: time(us(until))?,
                ..lease
            })
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.write(move |t| {
            t.execute(
                "UPDATE leases SET owner = NULL, expires_at = 0 WHERE name = ?1 AND owner = ?2
                    AND fence = ?3",
                params![lease.name, lease.owner, lease.fence],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn activity_payload(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            let v: Option<String> = c
                .query_row(
                    "SELECT payload FROM activities WHERE key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)?;
            v.as_deref().map(from_json).transpose()
        })
        .await
    }

    async fn load_telephony(
        &self,
        acc: &AccountId,
        session_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let (acc, sid) = (acc.clone(), session_id.to_owned());
        self.read(move |c| {
            let v: Option<String> = c
                .query_row(
                    "SELECT state FROM telephony WHERE account = ?1 AND session_id = ?2",
                    params![acc.as_str(), sid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)?;
            v.as_deref().map(from_json).transpose()
        })
        .await
    }

    async fn save_telephony(
        &self,
        acc: &AccountId,
        session_id: &str,
        state: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (acc, sid, json) = (acc.clone(), session_id.to_owned(), to_json(state)?);
        self.write(move |t| {
            t.execute(
                "INSERT INTO telephony (account, session_id, state, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account, session_id) DO UPDATE SET state = excluded.state,
                    updated_at = excluded.updated_at",
                params![acc.as_str(), sid, json, us(now)],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_telephony(
        &self,
        acc: &AccountId,
        session_id: &str,
    ) -> Result<bool, StoreError> {
        let (acc, sid) = (acc.clone(), session_id.to_owned());
        self.write(move |t| {
            let n = t
                .execute(
                    "DELETE FROM telephony WHERE account = ?1 AND session_id = ?2",
                    params![acc.as_str(), sid],
                )
                .map_err(sql_err)?;
            Ok(n > 0)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune(
        &self,
        now: DateTime<Utc>,
        inbox_retention: Duration,
        delivered_retention: Duration,
    ) -> Result<PruneCounts, StoreError> {
        let inbox_before = us(now - chrono_duration(inbox_retention));
        let delivered_before = us(now - chrono_duration(delivered_retention));
        let inbox = in_batches(|| self.on_writer(move |w| inbox::prune(w, inbox_before))).await?;
        let deliveries = self
            .prune_all(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries
                    WHERE state = 'delivered' AND delivered_at < ?1 LIMIT ?2)",
                delivered_before,
            )
            .await?;
        let activities = self
            .prune_all(
                "DELETE FROM activities WHERE id IN (SELECT a.id FROM activities a
                    WHERE a.created_at < ?1
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.activity = a.id)
                    LIMIT ?2)",
                inbox_before,
            )
            .await?;
        Ok(PruneCounts {
            inbox,
            deliveries,
            activities,
        })
    }

    async fn replace_extensions(
        &self,
        acc: &AccountId,
        records: &[ExtensionRecord],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (acc, records) = (acc.clone(), records.to_vec());
        self.write(move |t| super::extensions::replace(t, &acc, &records, now))
            .await
    }

    async fn extensions(&self, acc: &AccountId) -> Result<Vec<StoredExtension>, StoreError> {
        let acc = acc.clone();
        self.read(move |c| super::extensions::list(c, &acc)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(|e| StoreError::Unavailable(format!("sqlite: {e}")))?;
            Ok(())
        })
        .await?;
        if self.jobs.is_closed() {
            return Err(super::gone());
        }
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.read(super::cluster::leases).await
    }

    async fn renew_leases(
        &self,
        owner: &str,
        prefix: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let (owner, prefix) = (owner.to_owned(), prefix.to_owned());
        let until = us(now + chrono_duration(ttl));
        self.write(move |t| super::cluster::renew_leases(t, &owner, &prefix, until))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(count = activities.len()))]
    async fn insert_activities_fenced(
        &self,
        activities: Vec<NewActivity>,
        processed: Option<CursorUpdate>,
        fence: &Lease,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let now = us(Utc::now());
        let fence = fence.clone();
        self.write(move |t| {
            super::cluster::insert_fenced(t, &activities, processed.as_ref(), &fence, now)
        })
        .await
    }

    async fn oauth_tokens(&self, acc: &AccountId) -> Result<Option<StoredTokens>, StoreError> {
        let acc = acc.as_str().to_owned();
        self.read(move |c| super::cluster::oauth_tokens(c, &acc))
            .await
    }

    async fn save_oauth_tokens(&self, s: &StoredTokens, fence: &Lease) -> Result<(), StoreError> {
        let (s, fence) = (s.clone(), fence.clone());
        self.write(move |t| super::cluster::save_oauth_tokens(t, &s, &fence))
            .await
    }
}
