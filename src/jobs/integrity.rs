//! The weekly integrity check of the live database (`database-check`).
//!
//! Not part of the start, which must stay fast: a full check reads the whole file. It runs on
//! its own thread at a lower CPU priority and checks a fresh snapshot (see
//! [`crate::store::Store::check_live`]), so writers are never held up for more than their own
//! commits. A failure fails the run, and the scheduler alerts like for any failed job.

use crate::App;
use crate::jobs::{Job, JobResult, Schedule};

pub const KEY: &str = "database-check";

pub fn job() -> anyhow::Result<Job> {
    Ok(Job::new(
        KEY,
        "Check the database's integrity (pages, rows, indexes) on a fresh snapshot",
        // Sunday 04:00, away from the daily backup verification at 05:30.
        Schedule::parse("0 4 * * 0").map_err(anyhow::Error::msg)?,
        run,
    ))
}

pub async fn run(app: App) -> JobResult {
    let store = app.store.clone();
    let work = app.config.temp_dir();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("integrity-check".into())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(store.check_live(&work, &crate::stored_types()));
        })
        .map_err(|e| format!("cannot start the check: {e}"))?;
    let report = rx.await.map_err(|_| "the check ended without a result".to_string())?;
    let report = report.map_err(|e| format!("the check could not run: {e}"))?;
    if report.ok() {
        let mut summary = format!("sound: {} rows in {} tables checked", report.rows(), report.tables.len());
        for n in &report.notes {
            summary.push_str(&format!("; note: {n}"));
        }
        Ok(summary)
    } else {
        tracing::error!(report = %report.text(), "the database integrity check found damage");
        Err(format!("{}\n{}", report.text().trim_end(), crate::store::recovery_hint(app.store.path())))
    }
}

/// Nice 10 for the calling thread, as the backup thread has.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(error = %e, "cannot lower the check thread's priority");
    }
}
