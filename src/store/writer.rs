//! The group-commit writer thread (see the module docs of `store`).

use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, Durability, ReadableDatabase};
use tokio::sync::oneshot;

use super::tx::{ReadTx, Tx};
use super::{Actor, Change, Listener, StoreError};
use crate::clock::Clock;
use crate::error::AppError;
use crate::metrics::CommitMetrics;

/// Most writes folded into one durable commit.
const MAX_BATCH: usize = 256;

/// Runs one write in its own transaction, then returns what to send once durability is known.
type Job = Box<dyn FnOnce(&Database, &Clock, &mut Vec<Change>, bool) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

enum Msg {
    Job(Job),
    Shutdown,
}

pub(super) struct Handle {
    tx: mpsc::Sender<Msg>,
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
        F: FnOnce(&mut Tx<'_>) -> Result<R, AppError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |db, clock, changes, alone| {
            let result = run_one(db, clock, &actor, changes, alone, dry_run, f);
            Box::new(move |durable: Result<(), StoreError>| {
                let out = match (result, durable) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e.into()),
                };
                let _ = reply.send(out);
            })
        });
        self.tx.send(Msg::Job(job)).map_err(|_| AppError::from(StoreError::WriterGone))?;
        Ok(rx)
    }

    pub(super) fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
    }
}

fn run_one<R, F>(
    db: &Database,
    clock: &Clock,
    actor: &Actor,
    changes: &mut Vec<Change>,
    alone: bool,
    dry_run: bool,
    f: F,
) -> Result<R, AppError>
where
    F: FnOnce(&mut Tx<'_>) -> Result<R, AppError>,
{
    let mut txn = db.begin_write().map_err(StoreError::from)?;
    // A write that is alone in its batch commits durably itself; otherwise the batch's final
    // commit makes it durable.
    txn.set_durability(if alone { Durability::Immediate } else { Durability::None }).map_err(StoreError::from)?;
    let mut local = Vec::new();
    let result = {
        let mut tx = Tx { txn: &txn, actor, now: clock.now(), changes: &mut local };
        f(&mut tx)
    };
    match result {
        Ok(v) if dry_run => {
            let _ = txn.abort();
            Ok(v)
        }
        Ok(v) => {
            txn.commit().map_err(StoreError::from)?;
            changes.extend(local);
            Ok(v)
        }
        Err(e) => {
            let _ = txn.abort();
            Err(e)
        }
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
    std::thread::Builder::new()
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
    Ok(Handle { tx })
}

fn writer_loop(
    db: Arc<Database>,
    clock: Clock,
    listeners: Vec<Arc<dyn Listener>>,
    rx: mpsc::Receiver<Msg>,
    metrics: &CommitMetrics,
) {
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
        let alone = batch.len() == 1;
        let writes = batch.len();
        // Monotonic time for the metric only; what is stored takes its time from `clock`.
        let started = std::time::Instant::now();
        let mut changes = Vec::new();
        let completions: Vec<Completion> = batch.drain(..).map(|job| job(&db, &clock, &mut changes, alone)).collect();
        let durable = if alone { Ok(()) } else { flush(&db) };
        metrics.observe(writes, started.elapsed().as_secs_f64(), durable.is_ok());
        if durable.is_ok() && !changes.is_empty() {
            for l in &listeners {
                l.apply(&changes);
            }
        }
        let err_text = durable.as_ref().err().map(|e| e.to_string());
        if let Some(e) = &err_text {
            tracing::error!(error = %e, "durable commit failed; the batch's writes were not acknowledged");
        }
        for c in completions {
            c(match &err_text {
                None => Ok(()),
                Some(e) => Err(StoreError::Db(redb::Error::Io(std::io::Error::other(e.clone())))),
            });
        }
    }
}

/// An empty transaction committed with `Durability::Immediate` persists every earlier
/// `Durability::None` commit.
fn flush(db: &Database) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}
