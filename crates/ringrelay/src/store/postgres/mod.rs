//! The PostgreSQL backend, for several replicas sharing one database: a connection pool,
//! inbox appends batched by one writer task per process (each batch one transaction),
//! delivery claims with `FOR UPDATE SKIP LOCKED`, leases with fencing tokens.
//!
//! Connection loss surfaces as [`StoreError::Unavailable`]; the pool reconnects when the
//! server is back. Connections use no TLS (run it on a private network or a local socket).

mod cluster;
mod extensions;
mod impl_store;
mod rows;
mod schema;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

use super::codec::us;
use super::{AppendOutcome, NewNotification, OpenOptions, StoreError};

type Reply = super::AppendReply;

/// Serialises inbox batches across replicas so `seq` order is commit order (the processor
/// reads the inbox by `seq` and must never skip a row committed late).
const INBOX_LOCK: i64 = 7_243_917_002;

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    appends: mpsc::Sender<(NewNotification, Reply)>,
}

/// Maps a driver error: a lost or refused connection, a server shutting down or out of
/// resources is `Unavailable` (retry later); other errors the server reported are `Other`.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Unavailable(format!("postgres: {e}"));
    };
    let code = db.code().code();
    // Class 08: connection exception; 53: insufficient resources; 57P0x: shutdown.
    if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
        StoreError::Unavailable(format!("postgres: {e}"))
    } else {
        StoreError::Other(format!("postgres: {e}"))
    }
}

fn pool_err(e: &deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("postgres pool: {e}"))
}

fn make_pool(url: &str, size: usize) -> Result<Pool, StoreError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Other(format!("invalid postgres URL: {e}")))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(2))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .build()
        .map_err(|e| StoreError::Other(format!("postgres pool: {e}")))
}

/// Applies the migrations to the database at `url`; returns the version.
///
/// # Errors
/// [`StoreError::Unavailable`] when the server cannot be reached, [`StoreError::Other`]
/// when a migration fails.
pub async fn migrate(url: &str) -> Result<i64, StoreError> {
    let pool = make_pool(url, 1)?;
    let mut client = pool.get().await.map_err(|e| pool_err(&e))?;
    schema::migrate(&mut client).await
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` connection string; `options=-csearch_path%3D…`
    /// selects the schema) and starts the inbox writer task.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached; [`StoreError::Other`]
    /// when migrations fail, or when `options.migrate` is off and the schema is not current.
    pub async fn open(url: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        let pool = make_pool(url, options.pool_size)?;
        {
            let mut client = pool.get().await.map_err(|e| pool_err(&e))?;
            if options.migrate {
                schema::migrate(&mut client).await?;
            } else if schema::version(&client).await? != schema::latest() {
                return Err(StoreError::Other(
                    "the database schema is not current: run `ringrelay migrate`".into(),
                ));
            }
        }
        let (tx, rx) = mpsc::channel(options.ingest_queue.max(1));
        tokio::spawn(writer(pool.clone(), rx, options.max_batch.max(1)));
        Ok(Self { pool, appends: tx })
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| pool_err(&e))
    }

    async fn append(&self, n: NewNotification) -> Result<AppendOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.appends.try_send((n, tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                StoreError::Unavailable("the ingest queue is full".into())
            }
            mpsc::error::TrySendError::Closed(_) => {
                StoreError::Unavailable("the inbox writer has stopped".into())
            }
        })?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the inbox writer has stopped".into()))?
    }
}

/// The inbox writer: takes what is queued (up to `max_batch`), commits it in one
/// transaction, answers each caller; stops when the store is dropped.
async fn writer(pool: Pool, mut rx: mpsc::Receiver<(NewNotification, Reply)>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let started = std::time::Instant::now();
        let (notes, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let result = insert_batch(&pool, &notes).await;
        super::answer_batch("postgres", replies, result, started);
    }
}

/// The batch in one statement: the inbox rows (a uuid repeated inside the batch is stored
/// once, its first occurrence, as `DO NOTHING` skips later rows with the same key), each
/// account's newest notification (kept so `status` and `/metrics` never scan the inbox for
/// it), the duplicates counter and the seq high-water mark. `$9` is the batch's size.
const INSERT_BATCH: &str = "
WITH ins AS (
    INSERT INTO inbox (account, subscription_id, uuid, event, ts, received_at, body,
        unknown_subscription)
    SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
        $6::BIGINT[], $7::TEXT[], $8::BOOLEAN[])
    ON CONFLICT (uuid) DO NOTHING
    RETURNING seq, uuid, account, received_at
), newest AS (
    INSERT INTO inbox_accounts (account, last_received_at)
    SELECT account, MAX(received_at) FROM ins GROUP BY account
    ON CONFLICT (account) DO UPDATE
        SET last_received_at = GREATEST(inbox_accounts.last_received_at,
            excluded.last_received_at)
), counted AS (
    INSERT INTO counters (name, value)
    VALUES ('inbox_duplicates', $9::BIGINT - (SELECT COUNT(*) FROM ins)),
        ('inbox_max_seq', GREATEST((SELECT COALESCE(MAX(seq), 0) FROM ins),
            (SELECT COALESCE(MAX(seq), 0) FROM inbox)))
    ON CONFLICT (name) DO UPDATE SET value = CASE WHEN counters.name = 'inbox_duplicates'
        THEN counters.value + excluded.value
        ELSE GREATEST(counters.value, excluded.value) END
)
SELECT uuid FROM ins";

/// Commits one inbox batch: BEGIN, then the inbox lock and [`INSERT_BATCH`] pipelined (sent
/// together, run in that order: the lock makes `seq` order commit order), then COMMIT, so a
/// batch costs three round trips to the server (both statements are prepared once per
/// connection).
async fn insert_batch(
    pool: &Pool,
    notes: &[NewNotification],
) -> Result<Vec<AppendOutcome>, StoreError> {
    let mut client = pool.get().await.map_err(|e| pool_err(&e))?;
    let lock = client
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await
        .map_err(pg_err)?;
    let insert = client.prepare_cached(INSERT_BATCH).await.map_err(pg_err)?;
    let col = |f: fn(&NewNotification) -> String| notes.iter().map(f).collect::<Vec<_>>();
    let accounts = col(|n| n.account.as_str().to_owned());
    let uuids = col(|n| n.uuid.clone());
    let events = col(|n| n.event.clone());
    let bodies = col(|n| n.body.to_string());
    let subs: Vec<Option<String>> = notes.iter().map(|n| n.subscription_id.clone()).collect();
    let ts: Vec<Option<i64>> = notes.iter().map(|n| n.timestamp.map(us)).collect();
    let received: Vec<i64> = notes.iter().map(|n| us(n.received_at)).collect();
    let unknown: Vec<bool> = notes.iter().map(|n| n.unknown_subscription).collect();
    let size = i64::try_from(notes.len()).unwrap_or(i64::MAX);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &accounts, &subs, &uuids, &events, &ts, &received, &bodies, &unknown, &size,
    ];
    let t = client.transaction().await.map_err(pg_err)?;
    let (_, rows) = futures::try_join!(t.execute(&lock, &[&INBOX_LOCK]), t.query(&insert, &params))
        .map_err(pg_err)?;
    let mut fresh = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<std::collections::HashSet<String>, _>>()
        .map_err(pg_err)?;
    let outcomes: Vec<AppendOutcome> = notes
        .iter()
        .map(|n| {
            if fresh.remove(&n.uuid) {
                AppendOutcome::Stored
            } else {
                AppendOutcome::Duplicate
            }
        })
        .collect();
    t.commit().await.map_err(pg_err)?;
    Ok(outcomes)
}
