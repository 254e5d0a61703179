//! The group-commit writer thread (see the module docs of `store`).
//!
//! Every write waiting in the queue runs, one after another, inside ONE redb transaction, which
//! is then committed with `Durability::Immediate` before any caller is answered. A write that
//! fails (a validation error, a broken rule, a panic) is rolled back on its own with the undo
//! log its `Tx` kept, so the other writes of the batch still commit. Only a storage error
//! (or an undo that fails) aborts the whole batch, and then every caller gets the error.
//!
//! A storage failure (redb reports corruption or an I/O failure, or panics: a damaged page) is
//! not a failed write: the writer answers the batch's callers, sets the store's state to
//! [`LoadState::Failed`] (which `/healthz` and `/readyz` report) and stops. So does a panic of
//! a read model on the apply thread, whose lists would be wrong from then on.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Once};

use redb::{Database, Durability, ReadableDatabase};
use tokio::sync::oneshot;

use super::tx::{ReadTx, Tables, Tx, Undo};
use super::{Actor, Change, Listener, StoreError};
use crate::clock::Clock;
use crate::error::AppError;
use crate::metrics::CommitMetrics;

/// Most writes folded into one durable commit.
const MAX_BATCH: usize = 512;

/// What a job reports back to the batch.
enum Status {
    Ok,
    /// Rolled back on its own; the batch goes on.
    Failed,
    /// A storage failure (or a rollback that failed): the batch is aborted and the store fails.
    Fatal(Fatal),
}

/// Why the store fails, and whether it was the disk refusing I/O (full, a file size limit, an
/// I/O error) rather than a damaged file: the way out differs.
#[derive(Debug, Clone)]
struct Fatal {
    why: String,
    io: bool,
}

impl Fatal {
    fn damage(why: String) -> Fatal {
        Fatal { why, io: false }
    }
    fn of(why: String, e: &StoreError) -> Fatal {
        let io = matches!(e, StoreError::Db(redb::Error::Io(_) | redb::Error::PreviousIo));
        Fatal { why, io }
    }
}

thread_local! {
    /// Where the storage engine last panicked on this thread (see [`watch_storage_panics`]).
    static STORAGE_PANIC: Cell<Option<String>> = const { Cell::new(None) };
    /// Set while a check reads a file that may be damaged: its panics are findings, reported
    /// in words, not crashes to print with a backtrace.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the storage engine's panics on this thread kept out of the log (a check
/// reports them itself).
pub(super) fn quietly<R>(f: impl FnOnce() -> R) -> R {
    watch_storage_panics();
    let before = QUIET.with(|q| q.replace(true));
    let out = f();
    QUIET.with(|q| q.set(before));
    out
}

/// Chains a panic hook that notes, per thread, a panic raised inside redb. A write whose
/// closure panics is rolled back on its own when the panic is the application's (a bug in one
/// write); a panic inside redb means the engine met a page it cannot read, and stops the store.
pub(super) fn watch_storage_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(loc) = info.location()
                && is_storage_source(loc.file())
            {
                let what = format!("{} at {}:{}", super::check::panic_text(info.payload()), loc.file(), loc.line());
                STORAGE_PANIC.with(|c| c.set(Some(what)));
                if QUIET.with(|q| q.get()) {
                    return;
                }
            }
            previous(info);
        }));
    });
}

/// Whether a source path is redb's (`…/redb-4.6.0/src/…`, or a checkout named `redb`).
fn is_storage_source(file: &str) -> bool {
    file.split(['/', '\\']).any(|part| part == "redb" || part.starts_with("redb-"))
}

pub(super) fn take_storage_panic() -> Option<String> {
    STORAGE_PANIC.with(|c| c.take())
}

/// Whether an error means the storage itself failed (not one write's mistake).
fn is_storage_failure(e: &StoreError) -> bool {
    use redb::Error as E;
    match e {
        StoreError::Db(e) => matches!(
            e,
            E::Corrupted(_)
                | E::Io(_)
                | E::PreviousIo
                | E::TransactionPoisoned
                | E::LockPoisoned(_)
                | E::DatabaseClosed
                | E::UpgradeRequired(_)
        ),
        _ => false,
    }
}

/// [`is_storage_failure`] for an error a write returned.
fn app_storage_failure(e: &AppError) -> Option<Fatal> {
    match e {
        AppError::Internal(inner) => inner
            .downcast_ref::<StoreError>()
            .filter(|e| is_storage_failure(e))
            .map(|e| Fatal::of(format!("a write met a storage failure: {e}"), e)),
        _ => None,
    }
}

/// Sets the store's state to failed, once, with the reason and the way out.
#[derive(Clone)]
pub(super) struct Failure {
    state: Arc<tokio::sync::watch::Sender<LoadState>>,
    path: PathBuf,
}

impl Failure {
    fn fail(&self, what: &str) {
        self.fail_with(&Fatal::damage(what.to_string()));
    }

    fn fail_with(&self, f: &Fatal) {
        let hint = if f.io { super::io_failure_hint(&self.path) } else { super::recovery_hint(&self.path) };
        let text = format!("{}\n{hint}", f.why);
        tracing::error!(error = %text, "the store has failed; nothing will be written or served until it is restarted");
        self.state.send_if_modified(|s| {
            if matches!(s, LoadState::Failed(_)) {
                return false;
            }
            *s = LoadState::Failed(text);
            true
        });
    }

    fn failed(&self) -> bool {
        matches!(*self.state.borrow(), LoadState::Failed(_))
    }
}

/// Runs one write in the batch's transaction; returns its status and what to send once the
/// batch's fate is known.
type Job = Box<dyn FnOnce(&RefCell<Tables<'_>>, &Clock, &mut Vec<Change>) -> (Status, Completion) + Send>;
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

enum Msg {
    Job(Job),
    Shutdown,
}

pub(super) struct Handle {
    tx: mpsc::Sender<Msg>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Handle {
    pub(super) fn submit<R, F>(
        &self,
        actor: Actor,
        dry_run: bool,
        f: F,
    ) -> Result<oneshot::Receiver<Result<R, AppError>>, AppError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_, '_>) -> Result<R, AppError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |tables, clock, changes| {
            let (status, result) = run_one(tables, clock, &actor, changes, dry_run, f);
            let completion: Completion = Box::new(move |committed: Result<(), StoreError>| {
                let out = match (result, committed) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e.into()),
                };
                let _ = reply.send(out);
            });
            (status, completion)
        });
        self.tx.send(Msg::Job(job)).map_err(|_| AppError::from(StoreError::WriterGone))?;
        Ok(rx)
    }

    /// Finishes the queued writes, then waits for the writer thread to end (it holds the file).
    pub(super) fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

fn rollback(tables: &RefCell<Tables<'_>>, undo: Vec<Undo>) -> Result<(), StoreError> {
    let mut tables = tables.borrow_mut();
    for u in undo.into_iter().rev() {
        u(&mut tables)?;
    }
    Ok(())
}

fn run_one<R, F>(
    tables: &RefCell<Tables<'_>>,
    clock: &Clock,
    actor: &Actor,
    changes: &mut Vec<Change>,
    dry_run: bool,
    f: F,
) -> (Status, Result<R, AppError>)
where
    F: FnOnce(&mut Tx<'_, '_>) -> Result<R, AppError>,
{
    let mut local = Vec::new();
    let mut undo: Vec<Undo> = Vec::new();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut tx = Tx { tables, actor, now: clock.now(), changes: &mut local, undo: &mut undo };
        f(&mut tx)
    }));
    let result = match result {
        Ok(r) => r,
        Err(_) => {
            if let Some(at) = take_storage_panic() {
                let why = format!("the storage engine failed during a write ({at})");
                return (Status::Fatal(Fatal::damage(why.clone())), Err(AppError::internal(why)));
            }
            tracing::error!("a write panicked; it was rolled back");
            Err(AppError::internal("the write failed unexpectedly"))
        }
    };
    if let Err(e) = &result
        && let Some(fatal) = app_storage_failure(e)
    {
        return (Status::Fatal(fatal), result);
    }
    match result {
        Ok(v) if !dry_run => {
            changes.extend(local);
            (Status::Ok, Ok(v))
        }
        other => match rollback(tables, undo) {
            Ok(()) => (if other.is_ok() { Status::Ok } else { Status::Failed }, other),
            Err(e) => {
                tracing::error!(error = %e, "rolling back a failed write failed; aborting its batch");
                let fatal = Fatal::of(format!("rolling back a failed write failed: {e}"), &e);
                (Status::Fatal(fatal), other.and(Err(AppError::from(e))))
            }
        },
    }
}

/// Whether the read models have been loaded, and whether the store still works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    Loading,
    Ready,
    /// The load failed, or a storage failure stopped the writer: what happened and what to do.
    Failed(String),
}

pub(super) fn spawn(
    db: Arc<Database>,
    clock: Clock,
    listeners: Vec<Arc<dyn Listener>>,
    state: Arc<tokio::sync::watch::Sender<LoadState>>,
    metrics: Arc<CommitMetrics>,
    path: PathBuf,
) -> Result<Handle, StoreError> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let failure = Failure { state: state.clone(), path };
    let thread = std::thread::Builder::new()
        .name("bravely-writer".into())
        .spawn(move || {
            // Read models load on this thread before the first write runs, so none can miss a
            // change; the server already answers health checks meanwhile.
            let loaded = std::panic::catch_unwind(AssertUnwindSafe(|| {
                db.begin_read().map_err(StoreError::from).and_then(|r| {
                    let r = ReadTx::new(r);
                    listeners.iter().try_for_each(|l| l.load(&r))
                })
            }));
            match loaded {
                Ok(Ok(())) => {
                    state.send_replace(LoadState::Ready);
                    writer_loop(db, clock, listeners, rx, &metrics, &failure);
                }
                Ok(Err(e)) => failure.fail(&format!("the data cannot be loaded: {e}")),
                Err(p) => failure.fail(&format!(
                    "the storage engine failed while loading the data ({})",
                    take_storage_panic().unwrap_or_else(|| super::check::panic_text(&*p))
                )),
            }
        })
        .map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
    Ok(Handle { tx, thread: std::sync::Mutex::new(Some(thread)) })
}

/// A batch whose fate is known, on its way to the apply thread.
struct Settled {
    changes: Vec<Change>,
    completions: Vec<Completion>,
    /// The commit error, if the batch was not committed.
    error: Option<String>,
    /// A storage failure: the store fails once the batch is answered.
    fatal: Option<Fatal>,
}

/// Brings the read models up to date with a durable batch, then answers its callers (so a caller
/// always sees its own write in the lists). Runs on its own thread: the writer meanwhile runs
/// the next batch, and the two stages overlap.
fn apply_loop(listeners: Vec<Arc<dyn Listener>>, rx: mpsc::Receiver<Settled>, failure: Failure) {
    for Settled { changes, completions, error, fatal } in rx {
        if error.is_none() && !changes.is_empty() {
            for l in &listeners {
                if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| l.apply(&changes))) {
                    // The write is durable, but the lists no longer show the data as it is.
                    failure.fail(&format!(
                        "a read model failed while applying committed changes ({}); the lists would be wrong, so the store stops (a restart reloads them)",
                        take_storage_panic().unwrap_or_else(|| super::check::panic_text(&*p))
                    ));
                }
            }
        }
        for c in completions {
            c(match &error {
                None => Ok(()),
                Some(e) => Err(StoreError::Db(redb::Error::Io(std::io::Error::other(e.clone())))),
            });
        }
        if let Some(f) = fatal {
            failure.fail_with(&f);
        }
    }
}

fn writer_loop(
    db: Arc<Database>,
    clock: Clock,
    listeners: Vec<Arc<dyn Listener>>,
    rx: mpsc::Receiver<Msg>,
    metrics: &CommitMetrics,
    failure: &Failure,
) {
    // A small bound: the writer runs at most a couple of batches ahead of the read models.
    let (settled_tx, settled_rx) = mpsc::sync_channel::<Settled>(2);
    let apply_failure = failure.clone();
    let apply = match std::thread::Builder::new()
        .name("bravely-apply".into())
        .spawn(move || apply_loop(listeners, settled_rx, apply_failure))
    {
        Ok(h) => h,
        Err(e) => {
            failure.fail(&format!("cannot start the apply thread: {e}"));
            return;
        }
    };
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut stop = false;
    while !stop && !failure.failed() {
        match rx.recv() {
            Ok(Msg::Job(j)) => batch.push(j),
            Ok(Msg::Shutdown) | Err(_) => break,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => batch.push(j),
                Ok(Msg::Shutdown) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if failure.failed() {
            break;
        }
        let jobs = std::mem::take(&mut batch);
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| run_batch(&db, &clock, jobs, metrics)));
        let settled = match ran {
            Ok(s) => s,
            Err(p) => {
                // The batch's callers are dropped with it: they get "the writer has stopped".
                failure.fail(&format!(
                    "the storage engine failed during a commit ({})",
                    take_storage_panic().unwrap_or_else(|| super::check::panic_text(&*p))
                ));
                break;
            }
        };
        let fatal = settled.as_ref().and_then(|s| s.fatal.is_some().then_some(()));
        if let Some(settled) = settled
            && settled_tx.send(settled).is_err()
        {
            failure.fail("the apply thread has stopped; writes are no longer answered");
            break;
        }
        if fatal.is_some() {
            // The apply thread sets the failed state after answering the batch.
            break;
        }
    }
    // Every settled batch is answered before the writer (and with it the file) is released.
    drop(settled_tx);
    let _ = apply.join();
}

/// Runs one batch in one transaction and commits it durably. When the transaction cannot
/// even start, the jobs are answered with the error and the store fails (redb refuses new
/// transactions only when the storage failed).
fn run_batch(db: &Database, clock: &Clock, jobs: Vec<Job>, metrics: &CommitMetrics) -> Option<Settled> {
    let writes = jobs.len();
    // Monotonic time for the metric only; what is stored takes its time from `clock`.
    let started = std::time::Instant::now();
    let not_started = |jobs: Vec<Job>, e: StoreError| {
        tracing::error!(error = %e, "a write batch could not start");
        let error = e.to_string();
        // Dropped unrun, the jobs' callers are answered "the writer has stopped".
        drop(jobs);
        Some(Settled {
            changes: vec![],
            completions: vec![],
            error: Some(error.clone()),
            fatal: Some(Fatal::of(format!("a write transaction cannot start: {error}"), &e)),
        })
    };
    let mut txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => return not_started(jobs, StoreError::from(e)),
    };
    if let Err(e) = txn.set_durability(Durability::Immediate) {
        return not_started(jobs, StoreError::from(e));
    }
    let mut changes = Vec::new();
    let mut completions = Vec::with_capacity(jobs.len());
    let mut fatal: Option<Fatal> = None;
    let tables = RefCell::new(Tables::new(&txn));
    for job in jobs {
        let (status, completion) = job(&tables, clock, &mut changes);
        if let Status::Fatal(why) = status {
            fatal.get_or_insert(why);
        }
        completions.push(completion);
    }
    let tables = tables.into_inner();
    let finished = if fatal.is_some() {
        drop(tables);
        Ok(())
    } else {
        tables.finish()
    };
    let committed = match finished {
        _ if fatal.is_some() => {
            let _ = txn.abort();
            Err(StoreError::Db(redb::Error::Io(std::io::Error::other("the batch was aborted after a storage failure"))))
        }
        Err(e) => {
            let _ = txn.abort();
            Err(e)
        }
        Ok(()) => txn.commit().map_err(StoreError::from),
    };
    metrics.observe(writes, started.elapsed().as_secs_f64(), committed.is_ok());
    if let Err(e) = &committed
        && fatal.is_none()
        && is_storage_failure(e)
    {
        fatal = Some(Fatal::of(format!("a commit failed: {e}"), e));
    }
    let error = committed.err().map(|e| e.to_string());
    if let Some(e) = &error {
        tracing::error!(error = %e, "durable commit failed; the batch's writes were not acknowledged");
    }
    Some(Settled { changes, completions, error, fatal })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_sources_are_told_apart_from_the_application() {
        assert!(is_storage_source(
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/redb-4.6.0/src/tree_store/btree_base.rs"
        ));
        assert!(is_storage_source("redb/src/db.rs"));
        assert!(!is_storage_source("src/store/writer.rs"));
        assert!(!is_storage_source("/work/bravely/src/kudos/service.rs"));
        assert!(!is_storage_source("/x/redbird/src/a.rs"));
    }
}
