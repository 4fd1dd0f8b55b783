//! The SQLite backend: one file in WAL mode with `synchronous=FULL`. One writer thread owns
//! the only writing connection; inbox appends queue in front of it and are committed in
//! batches (group commit), other writes run between batches. Reads use separate
//! connections, so they never wait behind the writer. The writer also keeps the inbox's
//! uuid dedup in memory (`dedup.rs`).

mod cluster;
mod dedup;
mod extensions;
mod impl_store;
mod inbox;
mod ops;
mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{AppendOutcome, NewNotification, OpenOptions, StoreError};

type WriteFn = Box<dyn FnOnce(&mut Writer) + Send>;

/// What the writer thread owns: the writing connection, the inbox's uuid dedup, and the
/// newest `inbox_accounts.last_received_at` it wrote for each account.
pub(super) struct Writer {
    conn: Connection,
    uuids: dedup::UuidIndex,
    last_received: std::collections::HashMap<String, i64>,
}

/// What the writer thread is asked to do.
enum Job {
    /// Append one notification (batched with its neighbours).
    Append(NewNotification, super::AppendReply),
    /// Run one write (it answers through its own channel).
    Write(WriteFn),
}

/// The SQLite store.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<ReaderPool>,
}

/// Idle reader connections; more are opened on demand.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

/// Maps a SQLite error: lock timeouts and I/O failures are `Unavailable`, the rest `Other`.
pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen,
        ) => StoreError::Unavailable(format!("sqlite: {e}")),
        _ => StoreError::Other(format!("sqlite: {e}")),
    }
}

fn gone() -> StoreError {
    StoreError::Unavailable("the sqlite writer has stopped".into())
}

fn open_conn(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        StoreError::Unavailable(format!("opening sqlite file {}: {e}", path.display()))
    })?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
    // A page cache big enough for the hot part of the uuid index keeps dedup inserts fast
    // as the inbox grows (SQLite's default is 2 MiB).
    let cache_kib: i64 = if read_only { 16 * 1024 } else { 64 * 1024 };
    conn.pragma_update(None, "cache_size", -cache_kib)
        .map_err(sql_err)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql_err)?;
    }
    Ok(conn)
}

/// Applies the migrations to the file at `path` (created if missing); returns the version.
///
/// # Errors
/// As [`schema::migrate`], or when the file cannot be opened.
pub async fn migrate(path: &Path) -> Result<i64, StoreError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = open_conn(&path, false)?;
        schema::migrate(&mut conn)
    })
    .await
    .map_err(|e| StoreError::Other(format!("migration task: {e}")))?
}

impl SqliteStore {
    /// Opens (creating if missing) the SQLite file at `path` and starts its writer thread.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened; [`StoreError::Other`]
    /// when migrations fail, or when `options.migrate` is off and the schema is not current.
    pub async fn open(path: &Path, options: &OpenOptions) -> Result<Self, StoreError> {
        let owned = path.to_owned();
        let migrate = options.migrate;
        let conn = tokio::task::spawn_blocking(move || {
            let mut conn = open_conn(&owned, false)?;
            if migrate {
                schema::migrate(&mut conn)?;
            } else if schema::version(&conn)? != schema::latest() {
                return Err(StoreError::Other(
                    "the database schema is not current: run `ringrelay migrate`".into(),
                ));
            }
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Other(format!("open task: {e}")))??;
        // Checkpoints run on their own connection and thread, so a commit never waits for
        // the WAL to be copied into the database file (SQLite's automatic checkpoint would
        // run inside whichever commit crosses the threshold).
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql_err)?;
        // After a burst (a long read can hold checkpoints back), the first commit after the
        // WAL restarts gives the space above this back; below it the file is rewritten in
        // place.
        conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)
            .map_err(sql_err)?;
        conn.busy_handler(Some(writer_busy)).map_err(sql_err)?;
        let checkpointer = open_conn(path, false)?;
        let (tx, rx) = mpsc::channel(options.ingest_queue.max(1));
        let alive = tx.downgrade();
        let restart = Arc::new(AtomicBool::new(false));
        let restart_wanted = Arc::clone(&restart);
        std::thread::Builder::new()
            .name("sqlite-ckpt".into())
            .spawn(move || checkpoint_loop(&checkpointer, &alive, &restart_wanted))
            .map_err(|e| StoreError::Other(format!("starting the sqlite checkpointer: {e}")))?;
        let (max_batch, preload) = (options.max_batch.max(1), options.preload_dedup);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, preload, &restart))
            .map_err(|e| StoreError::Other(format!("starting the sqlite writer: {e}")))?;
        Ok(Self {
            jobs: tx,
            readers: Arc::new(ReaderPool {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                max_idle: options.pool_size.max(1),
            }),
        })
    }

    /// Queues an append without waiting for room.
    async fn append(&self, n: NewNotification) -> Result<AppendOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .try_send(Job::Append(n, tx))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("the ingest queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => gone(),
            })?;
        rx.await.map_err(|_| gone())?
    }

    /// Runs `f` in one write transaction on the writer thread and commits it.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_writer(move |w| {
            let t = w.conn.transaction().map_err(sql_err)?;
            let out = f(&t)?;
            t.commit().map_err(sql_err)?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` on the writer thread, between group commits.
    async fn on_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteFn = Box::new(move |w: &mut Writer| {
            // The caller may have gone away; the write stands either way.
            let _ = tx.send(f(w));
        });
        self.jobs.send(Job::Write(job)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Runs `f` on a reader connection.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let idle = pool.idle.lock().ok().and_then(|mut v| v.pop());
            let conn = match idle {
                Some(c) => c,
                None => open_conn(&pool.path, true)?,
            };
            let out = f(&conn);
            if let Ok(mut v) = pool.idle.lock()
                && v.len() < pool.max_idle
            {
                v.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Other(format!("read task: {e}")))?
    }
}

/// The WAL is restarted once it holds this many frames (16 MiB at 4 KiB pages)...
const WAL_RESTART_FRAMES: i64 = 4096;
/// ...and its file is kept at most this big after a restart (`journal_size_limit`).
const WAL_KEEP_BYTES: i64 = 64 * 1024 * 1024;

/// The writer's wait for the file lock (held by another process's write or checkpoint):
/// retries every 50 us for the first 10 ms, then every millisecond, up to about 5 s in all
/// like the other connections' `busy_timeout`.
/// SQLite's own handler sleeps 1, 2, 5, 10… ms, so a lock held for 1 ms would hold up every
/// webhook in flight for several.
fn writer_busy(tries: i32) -> bool {
    let (fine, coarse) = (200, 4990);
    if tries < fine {
        std::thread::sleep(Duration::from_micros(50));
        true
    } else if tries < fine + coarse {
        std::thread::sleep(Duration::from_millis(1));
        true
    } else {
        false
    }
}

/// Copies the WAL into the database every 200 ms without blocking the writer (PASSIVE).
/// Once the WAL holds [`WAL_RESTART_FRAMES`] and all of it (as of the checkpoint's start)
/// is copied, it asks the writer to copy the few frames written meanwhile (see
/// [`writer_loop`]), after which the next commit writes the WAL from its start again: over
/// blocks the file already has, so its fsync allocates nothing, where an ever-growing WAL
/// makes every commit's fsync allocate blocks and write the file's new size. (Under
/// steady ingest this connection can never have the WAL to itself, so it cannot restart
/// the WAL alone.) Stops with the store.
fn checkpoint_loop(conn: &Connection, alive: &mpsc::WeakSender<Job>, restart: &AtomicBool) {
    while alive.upgrade().is_some() {
        std::thread::sleep(Duration::from_millis(200));
        let result: Result<(i64, i64, i64), rusqlite::Error> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        match result {
            Ok((_, log, done)) if log >= WAL_RESTART_FRAMES && done == log => {
                restart.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "sqlite checkpoint skipped"),
        }
    }
}

/// The writer thread: batches consecutive appends into one transaction, runs other writes
/// one by one, and stops when every sender is gone.
///
/// When the checkpointer asks, it runs a PASSIVE checkpoint between two jobs: it copies only
/// what was committed since the checkpointer's (about a millisecond, once per 16 MiB of
/// WAL) and, with no other writer, leaves the WAL fully copied, so the next transaction
/// restarts it. PASSIVE never waits for readers: with a reader on an old snapshot the
/// restart simply happens at a later request.
fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    preload: bool,
    restart: &AtomicBool,
) {
    let mut w = Writer {
        conn,
        uuids: dedup::UuidIndex::new(),
        last_received: std::collections::HashMap::new(),
    };
    if preload && let Err(e) = w.uuids.catch_up(&w.conn) {
        // The first append tries again (and fails with the error if it persists).
        tracing::warn!(error = %e, "could not load the inbox dedup; the first append will retry");
    }
    let mut next = rx.blocking_recv();
    while let Some(job) = next.take() {
        match job {
            Job::Write(f) => f(&mut w),
            Job::Append(n, reply) => {
                let mut batch = vec![(n, reply)];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(Job::Append(n, reply)) => batch.push((n, reply)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                inbox::commit_batch(&mut w, batch);
            }
        }
        if restart.swap(false, Ordering::Relaxed)
            && let Err(e) = w
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::debug!(error = %e, "sqlite WAL restart checkpoint skipped");
        }
        if next.is_none() {
            next = rx.blocking_recv();
        }
    }
}
