//! The group-commit writer thread (see the module docs of `store`).
//!
//! Every write waiting in the queue runs, one after another, inside ONE redb transaction, which
//! is then committed with `Durability::Immediate` before any caller is answered. A write that
//! fails (a validation error, a broken rule, a panic) is rolled back on its own with the undo
//! log its `Tx` kept, so the other writes of the batch still commit. Only a storage error
//! (or an undo that fails) aborts the whole batch, and then every caller gets the error.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;

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
    /// Could not be rolled back: the batch must be aborted.
    Fatal,
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
            tracing::error!("a write panicked; it was rolled back");
            Err(AppError::internal("the write failed unexpectedly"))
        }
    };
    match result {
        Ok(v) if !dry_run => {
            changes.extend(local);
            (Status::Ok, Ok(v))
        }
        other => match rollback(tables, undo) {
            Ok(()) => (if other.is_ok() { Status::Ok } else { Status::Failed }, other),
            Err(e) => {
                tracing::error!(error = %e, "rolling back a failed write failed; aborting its batch");
                (Status::Fatal, other.and(Err(AppError::from(e))))
            }
        },
    }
}

/// Whether the read models have been loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    Loading,
    Ready,
    Failed(String),
}

pub(super) fn spawn(
    db: Arc<Database>,
    clock: Clock,
    listeners: Vec<Arc<dyn Listener>>,
    state: tokio::sync::watch::Sender<LoadState>,
    metrics: Arc<CommitMetrics>,
) -> Result<Handle, StoreError> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let thread = std::thread::Builder::new()
        .name("bravely-writer".into())
        .spawn(move || {
            // Read models load on this thread before the first write runs, so none can miss a
            // change; the server already answers health checks meanwhile.
            let loaded = db.begin_read().map_err(StoreError::from).and_then(|r| {
                let r = ReadTx::new(r);
                listeners.iter().try_for_each(|l| l.load(&r))
            });
            match loaded {
                Ok(()) => {
                    state.send_replace(LoadState::Ready);
                    writer_loop(db, clock, listeners, rx, &metrics);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the data; nothing will be served");
                    state.send_replace(LoadState::Failed(e.to_string()));
                }
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
}

/// Brings the read models up to date with a durable batch, then answers its callers (so a caller
/// always sees its own write in the lists). Runs on its own thread: the writer meanwhile runs
/// the next batch, and the two stages overlap.
fn apply_loop(listeners: Vec<Arc<dyn Listener>>, rx: mpsc::Receiver<Settled>) {
    for Settled { changes, completions, error } in rx {
        if error.is_none() && !changes.is_empty() {
            for l in &listeners {
                if std::panic::catch_unwind(AssertUnwindSafe(|| l.apply(&changes))).is_err() {
                    tracing::error!(
                        "a read model panicked while applying committed changes; lists may be stale until restart"
                    );
                }
            }
        }
        for c in completions {
            c(match &error {
                None => Ok(()),
                Some(e) => Err(StoreError::Db(redb::Error::Io(std::io::Error::other(e.clone())))),
            });
        }
    }
}

fn writer_loop(
    db: Arc<Database>,
    clock: Clock,
    listeners: Vec<Arc<dyn Listener>>,
    rx: mpsc::Receiver<Msg>,
    metrics: &CommitMetrics,
) {
    // A small bound: the writer runs at most a couple of batches ahead of the read models.
    let (settled_tx, settled_rx) = mpsc::sync_channel::<Settled>(2);
    let apply =
        match std::thread::Builder::new().name("bravely-apply".into()).spawn(move || apply_loop(listeners, settled_rx))
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the apply thread; nothing will be written");
                return;
            }
        };
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut stop = false;
    while !stop {
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
        if let Some(settled) = run_batch(&db, &clock, std::mem::take(&mut batch), metrics)
            && settled_tx.send(settled).is_err()
        {
            tracing::error!("the apply thread has stopped; writes are no longer answered");
            break;
        }
    }
    // Every settled batch is answered before the writer (and with it the file) is released.
    drop(settled_tx);
    let _ = apply.join();
}

/// Runs one batch in one transaction and commits it durably. `None` when the transaction could
/// not even start (the jobs are dropped: their callers see `WriterGone`).
fn run_batch(db: &Database, clock: &Clock, jobs: Vec<Job>, metrics: &CommitMetrics) -> Option<Settled> {
    let writes = jobs.len();
    // Monotonic time for the metric only; what is stored takes its time from `clock`.
    let started = std::time::Instant::now();
    let fail_all = |jobs: Vec<Job>, e: &StoreError| {
        tracing::error!(error = %e, "a write batch could not start");
        drop(jobs);
    };
    let mut txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            fail_all(jobs, &StoreError::from(e));
            return None;
        }
    };
    if let Err(e) = txn.set_durability(Durability::Immediate) {
        fail_all(jobs, &StoreError::from(e));
        return None;
    }
    let mut changes = Vec::new();
    let mut completions = Vec::with_capacity(jobs.len());
    let mut fatal = false;
    let tables = RefCell::new(Tables::new(&txn));
    for job in jobs {
        let (status, completion) = job(&tables, clock, &mut changes);
        fatal |= matches!(status, Status::Fatal);
        completions.push(completion);
    }
    let tables = tables.into_inner();
    let finished = if fatal {
        drop(tables);
        Ok(())
    } else {
        tables.finish()
    };
    let committed = match finished {
        _ if fatal => {
            let _ = txn.abort();
            Err(StoreError::Db(redb::Error::Io(std::io::Error::other("the batch was aborted after a failed rollback"))))
        }
        Err(e) => {
            let _ = txn.abort();
            Err(e)
        }
        Ok(()) => txn.commit().map_err(StoreError::from),
    };
    metrics.observe(writes, started.elapsed().as_secs_f64(), committed.is_ok());
    let error = committed.err().map(|e| e.to_string());
    if let Some(e) = &error {
        tracing::error!(error = %e, "durable commit failed; the batch's writes were not acknowledged");
    }
    Some(Settled { changes, completions, error })
}
