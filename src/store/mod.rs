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
pub mod check;
pub mod codec;
mod overlay;
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
pub(crate) const CACHE_BYTES: usize = 4 * 1024 * 1024;

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
    /// The database file cannot be used; the text names the file, the damage and the fix.
    #[error("{0}")]
    Damaged(String),
    /// The store stopped on a storage failure (or could not load); see [`LoadState::Failed`].
    #[error("{0}")]
    Failed(String),
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

/// [`StoreError::Damaged`] for `path`: what is wrong, and how to recover.
pub fn damaged(path: &Path, what: &str) -> StoreError {
    StoreError::Damaged(format!("{}\n{}", damage_headline(path, what), recovery_hint(path)))
}

fn damage_headline(path: &Path, what: &str) -> String {
    format!("the database file {} is damaged: {what}. Bravely does not run on a damaged database.", path.display())
}

/// What to do about a damaged database file, with the exact commands.
pub fn recovery_hint(path: &Path) -> String {
    let dir = path.parent().unwrap_or(Path::new("."));
    let backups = dir.join("backups");
    format!(
        "To recover, stop Bravely and restore the newest good backup:\n\
         \x20   bravely backup restore FILE --data-dir {dir}\n\
         FILE is a backup in {backups} (`ls -t {backups}`), or a policy's destination URL such as \
         s3://bucket/prefix/NAME (`bravely backup verify FILE` checks one first). The restore keeps the \
         damaged file beside the new one as bravely.redb.before-restore-<time>. \
         `bravely check {path}` reports in detail what is damaged.",
        dir = dir.display(),
        backups = backups.display(),
        path = path.display(),
    )
}

/// What to do when the disk refused a write (full, a file size limit, an I/O error): the file
/// itself is likely sound.
pub fn io_failure_hint(path: &Path) -> String {
    let dir = path.parent().unwrap_or(Path::new("."));
    format!(
        "The disk refused a write to {path}: make room on it (`df -h {dir}`), check the file size limit \
         (`ulimit -f`, systemd's LimitFSIZE) and the kernel log (`dmesg`), then restart Bravely; every \
         acknowledged write is in the file, and redb recovers its last commit at the start. If the start \
         then reports the database damaged, restore a backup: `bravely backup restore FILE --data-dir {dir}`.",
        path = path.display(),
        dir = dir.display(),
    )
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
    /// batches arrive in commit order. A panic here stops the store (its state becomes
    /// [`LoadState::Failed`]): the lists would no longer show the data as it is.
    fn apply(&self, changes: &[Change]);
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    path: std::path::PathBuf,
    clock: Clock,
    writer: writer::Handle,
    state: tokio::sync::watch::Receiver<LoadState>,
    commits: Arc<CommitMetrics>,
}

impl Store {
    /// Opens `path`, or creates it when there is no file. Fails with [`StoreError::InUse`] when
    /// another process holds it, and with [`StoreError::Damaged`] when redb refuses the file or
    /// fails on it (an existing empty file included: it is never taken for a new database).
    pub fn open(path: &Path, clock: Clock, listeners: Vec<Arc<dyn Listener>>) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        }
        writer::watch_storage_panics();
        let exists = match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => {
                return Err(damaged(path, "the file is empty (0 bytes), so the database in it is lost"));
            }
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(StoreError::Db(redb::Error::Io(e))),
        };
        let opened = std::panic::catch_unwind(|| {
            let mut b = Database::builder();
            b.set_cache_size(CACHE_BYTES);
            if exists { b.open(path) } else { b.create(path) }
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
                return Err(StoreError::InUse(path.display().to_string()));
            }
            Ok(Err(e)) => return Err(damaged(path, &check::describe(&e.into()))),
            Err(p) => {
                return Err(damaged(path, &format!("the storage engine failed on it ({})", check::panic_text(&*p))));
            }
        };
        let db = Arc::new(db);
        // Make sure the shared tables exist so readers never see "table does not exist".
        let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), StoreError> {
            let w = db.begin_write()?;
            w.open_table(META)?;
            w.open_table(AUDIT)?;
            w.open_table(AUDIT_BY_RECORD)?;
            for name in RETIRED_TABLES {
                w.delete_table(TableDefinition::<u64, ()>::new(name))?;
            }
            w.commit()?;
            Ok(())
        }));
        match prepared {
            Ok(Ok(())) => {}
            Ok(Err(StoreError::Db(e))) => return Err(damaged(path, &check::describe(&e))),
            Ok(Err(e)) => return Err(e),
            Err(p) => {
                return Err(damaged(path, &format!("the storage engine failed on it ({})", check::panic_text(&*p))));
            }
        }
        let (state_tx, state) = tokio::sync::watch::channel(LoadState::Loading);
        let commits = Arc::new(CommitMetrics::default());
        let writer = writer::spawn(
            db.clone(),
            clock.clone(),
            listeners,
            Arc::new(state_tx),
            commits.clone(),
            path.to_path_buf(),
        )?;
        Ok(Store { inner: Arc::new(Inner { db, path: path.to_path_buf(), clock, writer, state, commits }) })
    }

    /// Loading, ready, or failed (the load failed, or a storage failure stopped the writer).
    pub fn load_state(&self) -> LoadState {
        self.inner.state.borrow().clone()
    }

    /// Waits until the read models are loaded (at start-up); errors if loading failed.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let mut rx = self.inner.state.clone();
        loop {
            match &*rx.borrow_and_update() {
                LoadState::Ready => return Ok(()),
                LoadState::Failed(e) => return Err(StoreError::Failed(e.clone())),
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
                LoadState::Failed(e) => return Err(StoreError::Failed(e)),
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

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The integrity check of the live database (the weekly job): a consistent snapshot in
    /// `work_dir`, taken in one read transaction so writers go on, then [`check::check_file`]
    /// on the copy. Copying reads every row of the live file, which is what finds a damaged page
    /// there; the copy is then checked page by page, row by row. `Err` when it cannot run (no
    /// disk space for the copy); damage is in the report.
    pub fn check_live(&self, work_dir: &Path, stored: &[check::Stored]) -> Result<check::Report, StoreError> {
        let io = |e: std::io::Error| StoreError::Db(redb::Error::Io(e));
        std::fs::create_dir_all(work_dir).map_err(io)?;
        let size = std::fs::metadata(&self.inner.path).map_err(io)?.len();
        let free = crate::fsutil::available_bytes(work_dir).map_err(io)?;
        // The copy is compacted, so at most as large as the file; a margin for redb's growth.
        let needed = size + size / 10 + (16 << 20);
        if free < needed {
            return Err(io(std::io::Error::other(format!(
                "not enough free disk space in {} for the snapshot the check reads: {} free, about {} needed",
                work_dir.display(),
                crate::fsutil::human_bytes(free),
                crate::fsutil::human_bytes(needed)
            ))));
        }
        let tmp = tempfile::Builder::new().prefix(".check-").tempdir_in(work_dir).map_err(io)?;
        let copy = tmp.path().join("bravely.redb");
        let mut report = check::Report { file: self.inner.path.clone(), size, ..check::Report::default() };
        let copied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            snapshot::snapshot_counted(&self.inner.db, &copy)
        }));
        match copied {
            Ok(Ok(copied)) => {
                let of_copy = check::check_file(&copy, stored)?;
                report.problems.extend(copied.mismatches);
                report.problems.extend(of_copy.problems);
                report.notes.extend(of_copy.notes);
                report.tables = of_copy.tables;
            }
            Ok(Err(e)) => report.problems.push(format!("reading the live database failed: {e}")),
            Err(p) => report.problems.push(format!(
                "the storage engine failed while reading the live database ({})",
                writer::take_storage_panic().unwrap_or_else(|| check::panic_text(&*p))
            )),
        }
        Ok(report)
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
