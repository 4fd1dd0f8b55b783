//! The SQLite inbox's uuid dedup, kept in memory by the writer thread.
//!
//! A unique index on `inbox.uuid` would put every notification's key at a random place in a
//! B-tree, so each group commit would write one more 4 KiB WAL page per notification, and
//! fsync it: most of a commit's cost (`docs/benchmarks.md`). Instead the writer holds a map
//! from a keyed 64-bit hash of each stored uuid to its inbox `seq`, loaded from the
//! `inbox_seq_uuid` index (which grows at its end, like the table) the first time it is
//! needed. The inbox stays the only durable record; the map is rebuilt from it after a
//! restart or a crash.
//!
//! Exactness: a hit is confirmed by reading the row at that `seq`, so a hash collision or an
//! entry whose row another connection deleted never hides a new notification. A uuid whose
//! hash is already taken by a different uuid goes into a small spill map.
//!
//! Other connections: the map is brought up to date inside the write transaction (which
//! holds SQLite's write lock) whenever `PRAGMA data_version` says another connection has
//! committed, by loading the rows after the highest `seq` it knows.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use rusqlite::{Connection, OptionalExtension, params};

use super::sql_err;
use crate::store::StoreError;

/// A hasher for keys that are already uniformly distributed hashes.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by the map; fold anything else in all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The uuids stored in the inbox, by keyed hash.
pub(super) struct UuidIndex {
    hash: Box<dyn Fn(&str) -> u64 + Send>,
    by_hash: HashMap<u64, i64, BuildHasherDefault<Prehashed>>,
    /// Uuids whose hash slot holds another uuid.
    spill: HashMap<String, i64>,
    /// The highest `seq` handed out: loaded, inserted, or `counters.inbox_max_seq` (the
    /// high-water mark from before migration 8 rebuilt the inbox). New rows are numbered
    /// after it.
    max_seq: i64,
    /// `PRAGMA data_version` when the map was last brought up to date.
    data_version: Option<i64>,
}

impl UuidIndex {
    /// An empty index with a per-process random hash key (so uuids chosen by a client cannot
    /// be made to collide); it loads itself on first use.
    pub(super) fn new() -> Self {
        let state = RandomState::new();
        Self::with_hash(move |u| state.hash_one(u))
    }

    /// An empty index with the given hash (tests use a weak one to force collisions).
    pub(super) fn with_hash(hash: impl Fn(&str) -> u64 + Send + 'static) -> Self {
        Self {
            hash: Box::new(hash),
            by_hash: HashMap::default(),
            spill: HashMap::new(),
            max_seq: 0,
            data_version: None,
        }
    }

    /// The highest `seq` handed out (pruning does not lower it); valid after `catch_up`.
    pub(super) fn max_seq(&self) -> i64 {
        self.max_seq
    }

    /// How many uuids the index holds.
    pub(super) fn len(&self) -> usize {
        self.by_hash.len() + self.spill.len()
    }

    /// Loads what other connections (or an earlier run) committed since the map was last
    /// up to date. Call inside the write transaction, so nothing can commit in between.
    pub(super) fn catch_up(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let version: i64 = conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(sql_err)?;
        if self.data_version == Some(version) {
            return Ok(());
        }
        if self.data_version.is_none() {
            let floor: i64 = conn
                .query_row(
                    "SELECT COALESCE((SELECT value FROM counters WHERE name = 'inbox_max_seq'), 0)",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err)?;
            self.max_seq = self.max_seq.max(floor);
        }
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, uuid FROM inbox INDEXED BY inbox_seq_uuid WHERE seq > ?1 ORDER BY seq",
            )
            .map_err(sql_err)?;
        let started = std::time::Instant::now();
        let before = self.len();
        let mut rows = stmt.query(params![self.max_seq]).map_err(sql_err)?;
        while let Some(row) = rows.next().map_err(sql_err)? {
            let seq: i64 = row.get(0).map_err(sql_err)?;
            let uuid: String = row.get(1).map_err(sql_err)?;
            self.insert(&uuid, seq);
        }
        if self.data_version.is_none() {
            tracing::info!(
                uuids = self.len(),
                elapsed_ms = started.elapsed().as_millis(),
                "inbox dedup loaded"
            );
        } else {
            tracing::debug!(
                loaded = self.len() - before,
                uuids = self.len(),
                "inbox dedup caught up with another connection's commits"
            );
        }
        self.data_version = Some(version);
        Ok(())
    }

    /// The `seq` of the stored row with this uuid, if there is one. Forgets entries whose
    /// row is gone.
    pub(super) fn find(
        &mut self,
        conn: &Connection,
        uuid: &str,
    ) -> Result<Option<i64>, StoreError> {
        let h = (self.hash)(uuid);
        if let Some(&seq) = self.by_hash.get(&h) {
            match stored_uuid(conn, seq)? {
                Some(stored) if stored == uuid => return Ok(Some(seq)),
                Some(_) => {}
                None => {
                    self.by_hash.remove(&h);
                }
            }
        }
        if self.spill.is_empty() {
            return Ok(None);
        }
        let Some(&seq) = self.spill.get(uuid) else {
            return Ok(None);
        };
        if stored_uuid(conn, seq)?.as_deref() == Some(uuid) {
            Ok(Some(seq))
        } else {
            self.spill.remove(uuid);
            Ok(None)
        }
    }

    /// Records a committed row. `find` must have answered `None` for this uuid.
    pub(super) fn insert(&mut self, uuid: &str, seq: i64) {
        let h = (self.hash)(uuid);
        match self.by_hash.entry(h) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.spill.insert(uuid.to_owned(), seq);
            }
        }
        self.max_seq = self.max_seq.max(seq);
    }

    /// Forgets a deleted row.
    pub(super) fn remove(&mut self, uuid: &str, seq: i64) {
        let h = (self.hash)(uuid);
        if self.by_hash.get(&h) == Some(&seq) {
            self.by_hash.remove(&h);
        } else if self.spill.get(uuid) == Some(&seq) {
            self.spill.remove(uuid);
        }
    }
}

fn stored_uuid(conn: &Connection, seq: i64) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT uuid FROM inbox WHERE seq = ?1")
        .and_then(|mut s| s.query_row([seq], |r| r.get(0)).optional())
        .map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        c
    }

    fn put(c: &Connection, uuid: &str) -> i64 {
        c.execute(
            "INSERT INTO inbox (account, uuid, event, received_at, body, unknown_subscription)
             VALUES ('acme', ?1, 'e', 0, '{}', 0)",
            [uuid],
        )
        .unwrap();
        c.last_insert_rowid()
    }

    #[test]
    fn loads_stored_rows_and_finds_them() {
        let c = db();
        let a = put(&c, "a");
        let b = put(&c, "b");
        let mut ix = UuidIndex::new();
        ix.catch_up(&c).unwrap();
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.find(&c, "a").unwrap(), Some(a));
        assert_eq!(ix.find(&c, "b").unwrap(), Some(b));
        assert_eq!(ix.find(&c, "c").unwrap(), None);
    }

    #[test]
    fn colliding_uuids_are_told_apart() {
        let c = db();
        // Every uuid hashes alike: the first takes the slot, the others spill.
        let mut ix = UuidIndex::with_hash(|_| 7);
        ix.catch_up(&c).unwrap();
        let a = put(&c, "a");
        assert_eq!(ix.find(&c, "a").unwrap(), None);
        ix.insert("a", a);
        assert_eq!(
            ix.find(&c, "b").unwrap(),
            None,
            "a collision is not a duplicate"
        );
        let b = put(&c, "b");
        ix.insert("b", b);
        assert_eq!(ix.find(&c, "a").unwrap(), Some(a));
        assert_eq!(ix.find(&c, "b").unwrap(), Some(b));
        assert_eq!(ix.len(), 2);
        ix.remove("a", a);
        c.execute("DELETE FROM inbox WHERE seq = ?1", [a]).unwrap();
        assert_eq!(ix.find(&c, "a").unwrap(), None);
        assert_eq!(ix.find(&c, "b").unwrap(), Some(b));
    }

    #[test]
    fn rows_deleted_elsewhere_are_forgotten_on_lookup() {
        let c = db();
        let mut ix = UuidIndex::new();
        let a = put(&c, "a");
        ix.catch_up(&c).unwrap();
        c.execute("DELETE FROM inbox WHERE seq = ?1", [a]).unwrap();
        assert_eq!(ix.find(&c, "a").unwrap(), None);
        assert_eq!(ix.len(), 0);
    }

    #[test]
    fn rows_committed_by_another_connection_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let mut mine = Connection::open(&path).unwrap();
        super::super::schema::migrate(&mut mine).unwrap();
        let other = Connection::open(&path).unwrap();
        let mut ix = UuidIndex::new();
        put(&mine, "a");
        ix.catch_up(&mine).unwrap();
        assert_eq!(ix.len(), 1);
        let b = put(&other, "b");
        ix.catch_up(&mine).unwrap();
        assert_eq!(ix.find(&mine, "b").unwrap(), Some(b));
        // Nothing new: no reload.
        ix.catch_up(&mine).unwrap();
        assert_eq!(ix.len(), 2);
    }
}
