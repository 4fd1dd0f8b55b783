//! The [`Store`] trait on PostgreSQL.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::rows::{
    DELIVERY_COLUMNS, GAP_COLUMNS, SUBSCRIPTION_COLUMNS, claimed_row, delivery_row, gap_row, get,
    rows, subscription_row,
};
use super::{PostgresStore, pg_err};
use crate::account::AccountId;
use crate::config::Secret;
use crate::store::codec::{
    self, account, backfill_columns, completion, cursor_account, from_json, limit, opt_time, parse,
    time, to_json, us,
};
use crate::store::{
    AppendOutcome, BackfillState, ClaimedDelivery, CursorUpdate, Delivery, DeliveryCount,
    DeliveryFilter, DeliveryResult, DeliveryState, ExtensionRecord, Gap, GapCause,
    InboxAccountSummary, InboxRow, InboxStats, Lease, NewActivity, NewNotification, PruneCounts,
    SinkState, Store, StoreError, StoredExtension, StoredTokens, SubscriptionRecord,
    chrono_duration,
};

/// Rows removed per pruning transaction.
const PRUNE_BATCH: i64 = 1000;

/// Query parameters.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A row count as an `i64`.
fn changed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresStore {
    async fn query<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        map: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let c = self.client().await?;
        let r = c.query(sql, params).await.map_err(pg_err)?;
        rows(&r, map)
    }

    async fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let c = self.client().await?;
        c.execute(sql, params).await.map_err(pg_err)
    }

    pub(super) async fn insert_activity(
        t: &deadpool_postgres::Transaction<'_>,
        n: &NewActivity,
        now: i64,
    ) -> Result<bool, StoreError> {
        let a = &n.activity;
        let payload = to_json(&a.payload)?;
        let inserted = t
            .query_opt(
                "INSERT INTO activities (key, activity_id, account, call_key, kind, source,
                    occurred_at, payload, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key) DO NOTHING
                 RETURNING id",
                &[
                    &a.key,
                    &a.id.0.to_string(),
                    &a.account.as_str(),
                    &a.call_key,
                    &a.kind.as_str(),
                    &a.source.as_str(),
                    &us(a.occurred_at),
                    &payload,
                    &now,
                ],
            )
            .await
            .map_err(pg_err)?;
        let Some(row) = inserted else {
            return Ok(false);
        };
        let id: i64 = get(&row, 0)?;
        let mut sinks: Vec<&String> = n.sinks.iter().collect();
        sinks.sort();
        sinks.dedup();
        for sink in sinks {
            t.execute(
                "INSERT INTO deliveries (activity, sink, account, call_key, state, due_at,
                    created_at)
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5)",
                &[&id, sink, &a.account.as_str(), &a.call_key, &now],
            )
            .await
            .map_err(pg_err)?;
        }
        Ok(true)
    }

    async fn prune_all(&self, sql: &str, before: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.exec(sql, &[&before, &PRUNE_BATCH]).await?;
            total += n;
            if changed(n) < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn append_inbox(&self, n: NewNotification) -> Result<AppendOutcome, StoreError> {
        self.append(n).await
    }

    async fn inbox_after(&self, after_seq: i64, n: usize) -> Result<Vec<InboxRow>, StoreError> {
        self.query(
            "SELECT seq, account, subscription_id, uuid, event, ts, received_at, body,
                unknown_subscription
             FROM inbox WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after_seq, &limit(n)],
            |r| {
                Ok(InboxRow {
                    seq: get(r, 0)?,
                    account: account(get(r, 1)?)?,
                    subscription_id: get(r, 2)?,
                    uuid: get(r, 3)?,
                    event: get(r, 4)?,
                    timestamp: opt_time(get(r, 5)?)?,
                    received_at: time(get(r, 6)?)?,
                    body: get(r, 7)?,
                    unknown_subscription: get(r, 8)?,
                })
            },
        )
        .await
    }

    async fn inbox_stats(&self) -> Result<InboxStats, StoreError> {
        let mut v = self
            .query(
                "SELECT (SELECT COUNT(*) FROM inbox),
                    COALESCE((SELECT value FROM counters WHERE name = 'inbox_duplicates'), 0),
                    GREATEST(COALESCE((SELECT value FROM counters WHERE name = 'inbox_max_seq'), 0),
                        COALESCE((SELECT MAX(seq) FROM inbox), 0))",
                &[],
                |r| {
                    Ok(InboxStats {
                        rows: codec::count(get(r, 0)?),
                        duplicates: codec::count(get(r, 1)?),
                        max_seq: get(r, 2)?,
                    })
                },
            )
            .await?;
        Ok(v.pop().unwrap_or_default())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(count = activities.len()))]
    async fn insert_activities(
        &self,
        activities: Vec<NewActivity>,
        processed: Option<CursorUpdate>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let now = us(Utc::now());
        let mut c = self.client().await?;
        let t = c.transaction().await.map_err(pg_err)?;
        let mut out = Vec::with_capacity(activities.len());
        for a in &activities {
            out.push(if Self::insert_activity(&t, a, now).await? {
                AppendOutcome::Stored
            } else {
                AppendOutcome::Duplicate
            });
        }
        if let Some(u) = &processed {
            t.execute(
                "INSERT INTO cursors (account, name, value) VALUES ($1, $2, $3)
                 ON CONFLICT (account, name) DO UPDATE SET value = excluded.value",
                &[&cursor_account(u.account.as_ref()), &u.name, &u.value],
            )
            .await
            .map_err(pg_err)?;
        }
        t.commit().await.map_err(pg_err)?;
        Ok(out)
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
        let until = us(now + chrono_duration(lease));
        let c = self.client().await?;
        let r = c
            .query(
                "WITH due AS (
                    SELECT d.id FROM deliveries d
                    WHERE d.sink = $1 AND d.state IN ('pending', 'failed', 'in_flight')
                      AND d.due_at <= $2
                      AND NOT EXISTS (SELECT 1 FROM deliveries e
                          WHERE e.sink = d.sink AND e.call_key = d.call_key
                            AND e.state IN ('pending', 'failed', 'in_flight') AND e.id < d.id)
                      AND NOT EXISTS (SELECT 1 FROM sinks s
                          WHERE s.name = $1 AND s.disabled_reason IS NOT NULL)
                    ORDER BY d.due_at, d.id LIMIT $3
                    FOR UPDATE OF d SKIP LOCKED),
                 claimed AS (
                    UPDATE deliveries SET state = 'in_flight', attempts = attempts + 1,
                        due_at = $4, owner = $5
                    FROM due WHERE deliveries.id = due.id
                    RETURNING deliveries.id, deliveries.attempts, deliveries.activity)
                 SELECT c.id, c.attempts, a.activity_id, a.key, a.kind, a.account, a.call_key,
                    a.source, a.occurred_at, a.payload
                 FROM claimed c JOIN activities a ON a.id = c.activity ORDER BY c.id",
                &[&sink, &us(now), &limit(n), &until, &owner],
            )
            .await
            .map_err(pg_err)?;
        r.iter().map(|row| claimed_row(row, sink, until)).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id, attempt))]
    async fn complete_delivery(
        &self,
        id: i64,
        attempt: u32,
        now: DateTime<Utc>,
        result: DeliveryResult,
    ) -> Result<(), StoreError> {
        let (state, due_at, error, status, delivered_at) = completion(&result, now);
        let n = self
            .exec(
                "UPDATE deliveries SET state = $3, due_at = $4, last_error = $5, last_status = $6,
                    delivered_at = $7, owner = NULL
                 WHERE id = $1 AND attempts = $2 AND state = 'in_flight'",
                &[
                    &id,
                    &i64::from(attempt),
                    &state.as_str(),
                    &due_at,
                    &error,
                    &status,
                    &delivered_at,
                ],
            )
            .await?;
        if n == 1 {
            return Ok(());
        }
        let found = self
            .query(
                "SELECT state, attempts FROM deliveries WHERE id = $1",
                &[&id],
                |r| Ok((get::<String>(r, 0)?, get::<i64>(r, 1)?)),
            )
            .await?;
        match found.into_iter().next() {
            None => Err(StoreError::NotFound(format!("delivery {id}"))),
            Some((state, attempts)) => Err(StoreError::Conflict(format!(
                "delivery {id} is {state} at attempt {attempts}, not in flight at attempt {attempt}"
            ))),
        }
    }

    async fn list_deliveries(&self, f: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN activities a ON a.id = d.activity
             WHERE ($1::TEXT IS NULL OR d.sink = $1) AND ($2::TEXT IS NULL OR d.account = $2)
               AND ($3::TEXT IS NULL OR d.state = $3) AND ($4::BIGINT IS NULL OR d.id < $4)
             ORDER BY d.id DESC LIMIT $5"
        );
        let lim = if f.limit == 0 { 100 } else { limit(f.limit) };
        self.query(
            &sql,
            &[
                &f.sink,
                &f.account.as_ref().map(AccountId::as_str),
                &f.state.map(DeliveryState::as_str),
                &f.before_id,
                &lim,
            ],
            delivery_row,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id))]
    async fn retry_delivery(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        let n = self
            .exec(
                "UPDATE deliveries SET state = 'failed', due_at = $2
                 WHERE id = $1 AND state IN ('dead', 'failed')",
                &[&id, &us(now)],
            )
            .await?;
        if n == 1 {
            return Ok(());
        }
        let found = self
            .query("SELECT state FROM deliveries WHERE id = $1", &[&id], |r| {
                get::<String>(r, 0)
            })
            .await?;
        match found.into_iter().next() {
            None => Err(StoreError::NotFound(format!("delivery {id}"))),
            Some(other) => Err(StoreError::Conflict(format!(
                "delivery {id} is {other}; only dead or failed deliveries are retried"
            ))),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sink))]
    async fn replay(
        &self,
        sink: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.exec(
            "UPDATE deliveries SET state = 'pending', due_at = $3, delivered_at = NULL
             WHERE sink = $1 AND state = 'delivered' AND activity IN
                (SELECT id FROM activities WHERE occurred_at >= $2)",
            &[&sink, &us(since), &us(now)],
        )
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError> {
        self.query(
            "SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state
             ORDER BY sink, state",
            &[],
            |r| {
                Ok(DeliveryCount {
                    sink: get(r, 0)?,
                    state: parse(get(r, 1)?)?,
                    count: codec::count(get(r, 2)?),
                })
            },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sink))]
    async fn set_sink_disabled(
        &self,
        sink: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO sinks (name, disabled_reason, changed_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET disabled_reason = excluded.disabled_reason,
                changed_at = excluded.changed_at",
            &[&sink, &reason, &us(now)],
        )
        .await
        .map(drop)
    }

    async fn sink_states(&self) -> Result<Vec<SinkState>, StoreError> {
        self.query(
            "SELECT name, disabled_reason, changed_at FROM sinks ORDER BY name",
            &[],
            |r| {
                Ok(SinkState {
                    sink: get(r, 0)?,
                    disabled_reason: get(r, 1)?,
                    changed_at: time(get(r, 2)?)?,
                })
            },
        )
        .await
    }

    async fn upsert_subscription(&self, s: &SubscriptionRecord) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO subscriptions (account, id, status, expires_at, address,
                verification_token, event_filters, disabled_filters, created_at, renewed_at,
                last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (account) DO UPDATE SET id = excluded.id, status = excluded.status,
                expires_at = excluded.expires_at, address = excluded.address,
                verification_token = excluded.verification_token,
                event_filters = excluded.event_filters,
                disabled_filters = excluded.disabled_filters,
                created_at = excluded.created_at, renewed_at = excluded.renewed_at,
                last_error = excluded.last_error",
            &[
                &s.account.as_str(),
                &s.id,
                &s.status,
                &us(s.expires_at),
                &s.address,
                &s.verification_token.as_ref().map(Secret::expose),
                &to_json(&s.event_filters)?,
                &to_json(&s.disabled_filters)?,
                &us(s.created_at),
                &s.renewed_at.map(us),
                &s.last_error,
            ],
        )
        .await
        .map(drop)
    }

    async fn subscription(
        &self,
        acc: &AccountId,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE account = $1");
        Ok(self
            .query(&sql, &[&acc.as_str()], subscription_row)
            .await?
            .pop())
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY account");
        self.query(&sql, &[], subscription_row).await
    }

    async fn delete_subscription(&self, acc: &AccountId) -> Result<bool, StoreError> {
        let n = self
            .exec(
                "DELETE FROM subscriptions WHERE account = $1",
                &[&acc.as_str()],
            )
            .await?;
        Ok(n > 0)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(account = %acc, cause = %cause))]
    async fn open_gap(
        &self,
        acc: &AccountId,
        from: DateTime<Utc>,
        cause: GapCause,
    ) -> Result<Gap, StoreError> {
        self.exec(
            "INSERT INTO gaps (account, from_at, cause) VALUES ($1, $2, $3)
             ON CONFLICT (account) WHERE until_at IS NULL DO NOTHING",
            &[&acc.as_str(), &us(from), &cause.as_str()],
        )
        .await?;
        let sql = format!("SELECT {GAP_COLUMNS} FROM gaps WHERE account = $1 AND until_at IS NULL");
        self.query(&sql, &[&acc.as_str()], gap_row)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Conflict("the open gap was closed meanwhile".into()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(account = %acc))]
    async fn close_gap(
        &self,
        acc: &AccountId,
        until: DateTime<Utc>,
    ) -> Result<Option<Gap>, StoreError> {
        let sql = format!(
            "UPDATE gaps SET until_at = $2 WHERE account = $1 AND until_at IS NULL
             RETURNING {GAP_COLUMNS}"
        );
        Ok(self
            .query(&sql, &[&acc.as_str(), &us(until)], gap_row)
            .await?
            .pop())
    }

    async fn gaps(
        &self,
        acc: Option<&AccountId>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Gap>, StoreError> {
        let sql = format!(
            "SELECT {GAP_COLUMNS} FROM gaps WHERE ($1::TEXT IS NULL OR account = $1)
               AND ($2::BIGINT IS NULL OR until_at IS NULL OR until_at >= $2)
             ORDER BY from_at, id"
        );
        let acc = acc.map(AccountId::as_str);
        self.query(&sql, &[&acc, &since.map(us)], gap_row).await
    }

    async fn gaps_to_backfill(&self, n: usize) -> Result<Vec<Gap>, StoreError> {
        let sql = format!(
            "SELECT {GAP_COLUMNS} FROM gaps WHERE until_at IS NOT NULL
               AND backfill IN ('pending', 'failed') ORDER BY from_at, id LIMIT $1"
        );
        self.query(&sql, &[&limit(n)], gap_row).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id))]
    async fn mark_gap_backfilled(
        &self,
        id: i64,
        state: BackfillState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (st, records, found, error) = backfill_columns(&state);
        let n = self
            .exec(
                "UPDATE gaps SET backfill = $2, records = $3, found = $4, backfill_error = $5,
                    backfilled_at = $6 WHERE id = $1 AND until_at IS NOT NULL",
                &[&id, &st, &records, &found, &error, &us(now)],
            )
            .await?;
        if n == 1 {
            return Ok(());
        }
        let exists = self
            .query("SELECT 1 FROM gaps WHERE id = $1", &[&id], |_| Ok(()))
            .await?;
        if exists.is_empty() {
            Err(StoreError::NotFound(format!("gap {id}")))
        } else {
            Err(StoreError::Conflict(format!("gap {id} is still open")))
        }
    }

    async fn record_liveness(&self, acc: &AccountId, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO liveness (account, at) VALUES ($1, $2)
             ON CONFLICT (account) DO UPDATE SET at = GREATEST(liveness.at, excluded.at)",
            &[&acc.as_str(), &us(at)],
        )
        .await
        .map(drop)
    }

    async fn inbox_account_summary(
        &self,
        acc: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<InboxAccountSummary, StoreError> {
        let since = codec::us(since);
        let mut v = self
            .query(
                "SELECT (SELECT last_received_at FROM inbox_accounts WHERE account = $1),
                        (SELECT COUNT(*) FROM inbox WHERE account = $1 AND received_at >= $2)",
                &[&acc.as_str(), &since],
                |r| {
                    Ok(InboxAccountSummary {
                        last_received_at: codec::opt_time(get(r, 0)?)?,
                        since_count: codec::count(get(r, 1)?),
                    })
                },
            )
            .await?;
        Ok(v.pop().unwrap_or_default())
    }

    async fn last_liveness(&self, acc: &AccountId) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v = self
            .query(
                "SELECT at FROM liveness WHERE account = $1",
                &[&acc.as_str()],
                |r| time(get(r, 0)?),
            )
            .await?;
        Ok(v.into_iter().next())
    }

    async fn cursor(
        &self,
        acc: Option<&AccountId>,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        let v = self
            .query(
                "SELECT value FROM cursors WHERE account = $1 AND name = $2",
                &[&cursor_account(acc), &name],
                |r| get::<String>(r, 0),
            )
            .await?;
        Ok(v.into_iter().next())
    }

    async fn set_cursor(&self, u: &CursorUpdate) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO cursors (account, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (account, name) DO UPDATE SET value = excluded.value",
            &[&cursor_account(u.account.as_ref()), &u.name, &u.value],
        )
        .await
        .map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(name, owner))]
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let until = us(now + chrono_duration(ttl));
        // One statement: insert, or take over when free/expired/ours (a new owner bumps the
        // fence); the row lock makes concurrent acquirers take turns.
        let v = self
            .query(
                "INSERT INTO leases (name, owner, fence, expires_at) VALUES ($1, $2, 1, $4)
                 ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                    expires_at = excluded.expires_at,
                    fence = CASE WHEN leases.owner = excluded.owner THEN leases.fence
                        ELSE leases.fence + 1 END
                 WHERE leases.owner IS NULL OR leases.owner = excluded.owner
                    OR leases.expires_at <= $3
                 RETURNING fence",
                &[&name, &owner, &us(now), &until],
                |r| get::<i64>(r, 0),
            )
            .await?;
        match v.into_iter().next() {
            None => Ok(None),
            Some(fence) => Ok(Some(Lease {
                name: name.to_owned(),
                owner: owner.to_owned(),
                fence,
                expires_at: time(until)?,
            })),
        }
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        let until = us(now + chrono_duration(ttl));
        let n = self
            .exec(
                "UPDATE leases SET expires_at = $4 WHERE name = $1 AND owner = $2 AND fence = $3",
                &[&lease.name, &lease.owner, &lease.fence, &until],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "lease {} is no longer held by {} with fence {}",
                lease.name, lease.owner, lease.fence
            )));
        }
        Ok(Lease {
            expires_at: time(until)?,
            ..lease.clone()
        })
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.exec(
            "UPDATE leases SET owner = NULL, expires_at = 0
             WHERE name = $1 AND owner = $2 AND fence = $3",
            &[&lease.name, &lease.owner, &lease.fence],
        )
        .await
        .map(drop)
    }

    async fn activity_payload(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let v = self
            .query(
                "SELECT payload FROM activities WHERE key = $1",
                &[&key],
                |r| from_json(get(r, 0)?),
            )
            .await?;
        Ok(v.into_iter().next())
    }

    async fn load_telephony(
        &self,
        acc: &AccountId,
        session_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let v = self
            .query(
                "SELECT state FROM telephony WHERE account = $1 AND session_id = $2",
                &[&acc.as_str(), &session_id],
                |r| from_json(get(r, 0)?),
            )
            .await?;
        Ok(v.into_iter().next())
    }

    async fn save_telephony(
        &self,
        acc: &AccountId,
        session_id: &str,
        state: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO telephony (account, session_id, state, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (account, session_id) DO UPDATE SET state = excluded.state,
                updated_at = excluded.updated_at",
            &[&acc.as_str(), &session_id, &to_json(state)?, &us(now)],
        )
        .await
        .map(drop)
    }

    async fn delete_telephony(
        &self,
        acc: &AccountId,
        session_id: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                "DELETE FROM telephony WHERE account = $1 AND session_id = $2",
                &[&acc.as_str(), &session_id],
            )
            .await?;
        Ok(n > 0)
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
        let inbox = self
            .prune_all(
                "DELETE FROM inbox WHERE seq IN
                    (SELECT seq FROM inbox WHERE received_at < $1 LIMIT $2)",
                inbox_before,
            )
            .await?;
        let deliveries = self
            .prune_all(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries
                    WHERE state = 'delivered' AND delivered_at < $1 LIMIT $2)",
                delivered_before,
            )
            .await?;
        let activities = self
            .prune_all(
                "DELETE FROM activities WHERE id IN (SELECT a.id FROM activities a
                    WHERE a.created_at < $1
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.activity = a.id)
                    LIMIT $2)",
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
        self.replace_extension_rows(acc, records, now).await
    }

    async fn extensions(&self, acc: &AccountId) -> Result<Vec<StoredExtension>, StoreError> {
        self.extension_rows(acc).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("SELECT 1", &[])
            .await
            .map_err(|e| StoreError::Unavailable(format!("postgres: {e}")))?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.cluster_leases().await
    }

    async fn renew_leases(
        &self,
        owner: &str,
        prefix: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        self.renew_owned_leases(owner, prefix, us(now + chrono_duration(ttl)))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(count = activities.len()))]
    async fn insert_activities_fenced(
        &self,
        activities: Vec<NewActivity>,
        processed: Option<CursorUpdate>,
        fence: &Lease,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        self.insert_fenced(&activities, processed.as_ref(), fence)
            .await
    }

    async fn oauth_tokens(&self, acc: &AccountId) -> Result<Option<StoredTokens>, StoreError> {
        self.load_oauth_tokens(acc.as_str()).await
    }

    async fn save_oauth_tokens(&self, s: &StoredTokens, fence: &Lease) -> Result<(), StoreError> {
        self.store_oauth_tokens(s, fence).await
    }
}
