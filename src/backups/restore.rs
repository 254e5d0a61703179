//! Restores requested from the web page.
//!
//! The live database cannot be swapped under a running server, so a restore from the page is
//! carried out between two processes:
//! 1. the page checks the backup completely (checksums, decryption, the snapshot opens, row
//!    counts) and writes `restore.pending.json` in the data directory;
//! 2. the server stops accepting, drains, closes the database and re-executes itself, handing
//!    the listening socket over (connections wait in the kernel queue meanwhile);
//! 3. the new process, before opening the database, carries the restore out with
//!    [`archive::restore_offline_with`] (current data moved aside, put back on any failure),
//!    writes `restore.done.json`, opens the restored database and records the restore, with who
//!    asked for it, in the audit log (which the restored database would otherwise not know).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::archive;
use crate::App;
use crate::config::Config;
use crate::store::Actor;

const PENDING: &str = "restore.pending.json";
const DONE: &str = "restore.done.json";
/// Audit entries of restores are kept on this pseudo-record.
pub const AUDIT_TABLE: &str = "backups";
pub const AUDIT_ID: u64 = 0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The backup's file name in `<data dir>/backups`.
    pub file: String,
    pub user_id: u64,
    pub user: String,
    pub requested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub request: Request,
    pub ok: bool,
    pub message: String,
    pub finished_at: DateTime<Utc>,
}

/// Writes the request for the next start. The caller has verified the backup.
pub fn stage(data_dir: &Path, req: &Request) -> std::io::Result<()> {
    let tmp = data_dir.join(format!("{PENDING}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(req).map_err(std::io::Error::other)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(tmp, data_dir.join(PENDING))
}

pub fn pending(data_dir: &Path) -> Option<Request> {
    serde_json::from_slice(&std::fs::read(data_dir.join(PENDING)).ok()?).ok()
}

/// Carries out a staged restore, if any, before the database is opened. Never fails the
/// start: a failed restore leaves the previous data in place and is reported on the page.
pub fn carry_out_pending(config: &Config, now: DateTime<Utc>) -> Option<Outcome> {
    let data_dir = &config.data_dir;
    let path = data_dir.join(PENDING);
    if !path.exists() {
        return None;
    }
    let req = match pending(data_dir) {
        Some(r) => r,
        None => {
            tracing::error!("restore.pending.json is unreadable; no restore was made");
            let _ = std::fs::remove_file(&path);
            return None;
        }
    };
    let result = match super::file_of(data_dir, &req.file) {
        None => Err(format!("{} is no longer there", req.file)),
        Some(file) => {
            let pass = archive::read_manifest(&file).and_then(|m| super::policy::passphrase_for(config, &m.policy));
            archive::restore_offline_in(data_dir, &file, pass.as_ref(), now, config.backups.max_expanded_bytes())
                .map_err(|e| e.to_string())
                .map(|(m, kept)| {
                    let kept = kept.and_then(|k| k.file_name().map(|n| n.to_string_lossy().to_string()));
                    format!(
                        "restored {} ({} rows, made {}); the previous database is kept as {}",
                        req.file,
                        m.rows(),
                        m.created_at.format("%Y-%m-%d %H:%M UTC"),
                        kept.unwrap_or_else(|| "nothing (there was none)".into())
                    )
                })
        }
    };
    let outcome = Outcome {
        ok: result.is_ok(),
        message: match &result {
            Ok(m) => m.clone(),
            Err(e) => format!("the restore of {} failed, the data is as it was: {e}", req.file),
        },
        request: req,
        finished_at: now,
    };
    if outcome.ok {
        tracing::warn!(by = %outcome.request.user, "{}", outcome.message);
    } else {
        tracing::error!(by = %outcome.request.user, "{}", outcome.message);
    }
    if let Ok(json) = serde_json::to_vec_pretty(&outcome) {
        let _ = std::fs::write(data_dir.join(DONE), json);
    }
    let _ = std::fs::remove_file(&path);
    Some(outcome)
}

fn done_path(app: &App) -> PathBuf {
    app.config.data_dir.join(DONE)
}

/// After a start: writes the outcome of the restore carried out into the audit log, once.
pub async fn record_outcome(app: &App) {
    let path = done_path(app);
    let Some(outcome) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Outcome>(&b).ok()) else {
        return;
    };
    let actor = Actor::user(outcome.request.user_id, outcome.request.user.clone());
    let note = outcome.message.clone();
    let action = if outcome.ok { "restore" } else { "restore failed" };
    match app.store.write(actor, move |tx| Ok(tx.note(AUDIT_TABLE, AUDIT_ID, action, note)?)).await {
        Ok(()) => {
            let _ = std::fs::remove_file(&path);
        }
        Err(e) => tracing::error!(error = %e, "cannot record the restore in the audit log"),
    }
}
