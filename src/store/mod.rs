//! The embedded store: one redb file, typed tables, secondary indexes, an audit log, and a
//! group-committing writer.
//!
//! Writes are closures sent to one writer thread. It drains every write waiting in its queue and
//! runs them one after another in ONE redb transaction (a failing write is rolled back alone with
//! its undo log), which it commits with `Durability::Immediate`: concurrent requests share one
//! fsync. The settled batch then goes to the apply thread, which updates the in-memory read
//! models and only then answers the callers, while the writer already runs the next batch.
//! Nothing is acknowledged before it is on disk, and a caller always sees its own write.

pub mod audit;
pub mod codec;
pub mod snapshot;
mod tx;
pub mod value;
mod writer;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, TableDefinition};

pub use audit::{Actor, AuditAction, AuditEntry, FieldChange};
pub use codec::{Entity, IndexDef, decode, encode};
pub use tx::{ReadTx, Tx};
pub use value::Value;
pub use writer::LoadState;

use crate::clock::Clock;
use crate::error::AppError;
use crate::metrics::CommitMetrics;

pub(crate) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta.seq");
pub(crate) const AUDIT: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("audit.log");
/// (table, record id, audit id) -> ()
pub(crate) const AUDIT_BY_RECORD: TableDefinition<'static, (&str, u64, u64), ()> =
    TableDefinition::new("audit.by_record");

/// Tables older versions wrote and this one no longer reads (dropped indexes), deleted when the
/// store opens so they take no space. A name may only be added here, never reused.
const RETIRED_TABLES: &[&str] = &["kudos.thanks#receiver", "kudos.thanks#month"];

/// redb's page cache. Lists and pickers read the in-memory models and the OS caches the file, so a
/// small cache does; a large one would hold a second copy of the data in the process.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory is in use by another running bravely process ({0}); stop it first, or do this through its web interface"
    )]
    InUse(String),
    #[error("a value for {field} must be unique and is already used (record {existing})")]
    Unique { table: &'static str, field: &'static str, existing: u64 },
    #[error("record not found")]
    NotFound,
    #[error("cannot decode a row of {table}: {reason}")]
    Decode { table: &'static str, reason: String },
    #[error("the writer has stopped")]
    WriterGone,
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error(transparent)]
    App(Box<AppError>),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, redb::SetDurabilityError);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        StoreError::Db(e.into())
    }
}

/// A committed change to one row, handed to read models after the batch is durable.
#[derive(Clone, Debug)]
pub struct Change {
    pub table: &'static str,
    pub id: u64,
    /// The new encoded row, or `None` when it was deleted.
    pub row: Option<Vec<u8>>,
}

/// Something that keeps an in-memory view in step with committed changes.
pub trait Listener: Send + Sync {
    /// Called once, on the writer thread, before any write runs.
    fn load(&self, store: &ReadTx) -> Result<(), StoreError>;
    /// Called on the apply thread after a batch is durable, before its callers are answered;
    /// batches arrive in commit order. A panic here is logged and does not stop the store.
    fn apply(&self, changes: &[Change]);
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    clock: Clock,
    writer: writer::Handle,
    state: tokio::sync::watch::Receiver<LoadState>,
    commits: Arc<CommitMetrics>,
}

impl Store {
    /// Opens (or creates) `path`. Fails with [`StoreError::InUse`] when another process holds it.
    pub fn open(path: &Path, clock: Clock, listeners: Vec<Arc<dyn Listener>>) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        }
        let db = match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse(path.display().to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let db = Arc::new(db);
        {
            // Make sure the shared tables exist so readers never see "table does not exist".
            let w = db.begin_write()?;
            w.open_table(META)?;
            w.open_table(AUDIT)?;
            w.open_table(AUDIT_BY_RECORD)?;
            for name in RETIRED_TABLES {
                w.delete_table(TableDefinition::<u64, ()>::new(name))?;
            }
            w.commit()?;
        }
        let (state_tx, state) = tokio::sync::watch::channel(LoadState::Loading);
        let commits = Arc::new(CommitMetrics::default());
        let writer = writer::spawn(db.clone(), clock.clone(), listeners, state_tx, commits.clone())?;
        Ok(Store { inner: Arc::new(Inner { db, clock, writer, state, commits }) })
    }

    pub fn load_state(&self) -> LoadState {
        self.inner.state.borrow().clone()
    }

    /// Waits until the read models are loaded (at start-up); errors if loading failed.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let mut rx = self.inner.state.clone();
        loop {
            match &*rx.borrow_and_update() {
                LoadState::Ready => return Ok(()),
                LoadState::Failed(e) => return Err(StoreError::Db(redb::Error::Io(std::io::Error::other(e.clone())))),
                LoadState::Loading => {}
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::WriterGone);
            }
        }
    }

    /// [`Store::ready`] for synchronous callers.
    pub fn ready_blocking(&self) -> Result<(), StoreError> {
        loop {
            match self.load_state() {
                LoadState::Ready => return Ok(()),
                LoadState::Failed(e) => return Err(StoreError::Db(redb::Error::Io(std::io::Error::other(e)))),
                LoadState::Loading => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    }

    /// Commit latency and batch sizes of the group-commit writer.
    pub fn commit_metrics(&self) -> &CommitMetrics {
        &self.inner.commits
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// A consistent read-only view. Cheap; use one per request.
    pub fn read(&self) -> Result<ReadTx, StoreError> {
        Ok(ReadTx::new(self.inner.db.begin_read()?))
    }

    /// Runs `f` in a write transaction on the writer thread; returns once it is durable.
    pub async fn write<R, F>(&self, actor: Actor, f: F) -> Result<R, AppError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_, '_>) -> Result<R, AppError> + Send + 'static,
    {
        let rx = self.inner.writer.submit(actor, false, f)?;
        rx.await.map_err(|_| AppError::from(StoreError::WriterGone))?
    }

    /// Runs `f` like [`Store::write`] but always rolls it back: previews of imports.
    pub async fn dry_run<R, F>(&self, actor: Actor, f: F) -> Result<R, AppError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_, '_>) -> Result<R, AppError> + Send + 'static,
    {
        let rx = self.inner.writer.submit(actor, true, f)?;
        rx.await.map_err(|_| AppError::from(StoreError::WriterGone))?
    }

    /// [`Store::write`] for synchronous callers (CLI commands); never call it on a runtime thread.
    pub fn write_blocking<R, F>(&self, actor: Actor, f: F) -> Result<R, AppError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_, '_>) -> Result<R, AppError> + Send + 'static,
    {
        let rx = self.inner.writer.submit(actor, false, f)?;
        rx.blocking_recv().map_err(|_| AppError::from(StoreError::WriterGone))?
    }

    /// Every table in the file: backups use this registry so a copy cannot miss one.
    pub fn table_names(&self) -> Result<Vec<String>, StoreError> {
        use redb::TableHandle;
        let r = self.inner.db.begin_read()?;
        let mut names: Vec<String> = r.list_tables()?.map(|t| t.name().to_string()).collect();
        names.sort();
        Ok(names)
    }

    /// Writes a consistent copy of the database to `out`, without blocking writers.
    /// Returns the rows copied per table.
    pub fn snapshot_to(&self, out: &Path) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        snapshot::snapshot(&self.inner.db, out)
    }

    /// The audit entries of one record, newest first.
    pub fn history(&self, table: &str, record: u64) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        let r = self.inner.db.begin_read()?;
        let by = r.open_table(AUDIT_BY_RECORD)?;
        let log = r.open_table(AUDIT)?;
        let mut out = Vec::new();
        for item in by.range((table, record, 0)..=(table, record, u64::MAX))? {
            let (k, _) = item?;
            let (_, _, audit_id) = k.value();
            if let Some(row) = log.get(audit_id)? {
                out.push((audit_id, decode::<AuditEntry>(row.value())?));
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Stops the writer after the queued writes and waits for it (blocking); once every `Store`
    /// clone is dropped too, the file is free for another process.
    pub fn shutdown(&self) {
        self.inner.writer.shutdown();
    }
}
