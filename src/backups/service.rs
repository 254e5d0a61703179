//! What the page, the API and the scheduled jobs do with backups: make one (per policy or by
//! hand), apply retention, verify the newest, and stage a restore.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::archive::{self, Manifest};
use super::destination::Destination;
use super::policy::{self, Policy, Target};
use crate::App;
use crate::error::AppError;
use crate::jobs::{Job, JobResult, Schedule};

/// Backup files being read (downloads, restores): retention and deletion leave them alone.
#[derive(Default)]
pub struct InUse(Mutex<HashMap<String, usize>>);

/// Held while a backup file is read; releases it when dropped.
pub struct InUseGuard<'a> {
    set: &'a InUse,
    name: String,
}

impl InUse {
    pub fn hold(&self, name: &str) -> InUseGuard<'_> {
        self.acquire(name);
        InUseGuard { set: self, name: name.to_string() }
    }
    /// Marks `name` in use; pair with [`InUse::release`].
    pub fn acquire(&self, name: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_string()).or_default() += 1;
    }
    pub fn release(&self, name: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                m.remove(name);
            }
        }
    }
    pub fn contains(&self, name: &str) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(name).is_some_and(|n| *n > 0)
    }
}

impl Drop for InUseGuard<'_> {
    fn drop(&mut self) {
        self.set.release(&self.name);
    }
}

/// The last verification of a backup file, kept beside it as `<file>.check`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// False when an encrypted backup was checked without its passphrase.
    pub contents_checked: bool,
    pub message: String,
}

impl Check {
    fn of(at: DateTime<Utc>, result: &Result<archive::Checked, String>) -> Check {
        match result {
            Ok(c) => Check {
                at,
                ok: true,
                contents_checked: c.contents_checked,
                message: if c.contents_checked {
                    format!("checksums match, the snapshot opens, {} rows as recorded", c.manifest.rows())
                } else {
                    "checksum of the encrypted payload matches; contents not opened (no passphrase)".into()
                },
            },
            Err(e) => Check { at, ok: false, contents_checked: false, message: e.clone() },
        }
    }
}

fn check_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".check");
    PathBuf::from(s)
}

pub fn read_check(file: &Path) -> Option<Check> {
    serde_json::from_slice(&std::fs::read(check_path(file)).ok()?).ok()
}

fn write_check(file: &Path, check: &Check) {
    if let Ok(json) = serde_json::to_vec(check)
        && let Err(e) = std::fs::write(check_path(file), json)
    {
        tracing::warn!(error = %e, "cannot record the verification result");
    }
}

/// Removes a backup file and what is kept beside it.
pub fn remove(file: &Path) -> std::io::Result<()> {
    std::fs::remove_file(file)?;
    let _ = std::fs::remove_file(check_path(file));
    Ok(())
}

/// A backup file in `<data dir>/backups`.
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub manifest: Option<Manifest>,
    pub check: Option<Check>,
}

pub fn listing(app: &App) -> Vec<Listed> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(super::dir(&app.config.data_dir)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if super::file_of(&app.config.data_dir, &name).is_none() {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(Listed { manifest: archive::read_manifest(&e.path()), check: read_check(&e.path()), name, size });
        }
    }
    out.sort_by(|a, b| b.name.cmp(&a.name));
    out
}

/// Makes a backup now: by hand (`policy` None) or for a policy. Manual backups are refused
/// while another backup or a restore runs; scheduled ones wait for it.
pub async fn create_now(app: &App, policy: Option<&Policy>) -> Result<(String, Manifest), AppError> {
    let _guard = match policy {
        None => app.backup_lock.try_lock().map_err(|_| AppError::Conflict("A backup or restore is running.".into()))?,
        Some(_) => app.backup_lock.lock().await,
    };
    let label = policy.map(|p| p.name.clone()).unwrap_or_else(|| policy::MANUAL.to_string());
    let name = super::new_name(app.store.now(), &label);
    let out = super::dir(&app.config.data_dir).join(&name);
    let store = app.store.clone();
    let data_dir = app.config.data_dir.clone();
    let full = policy.is_some_and(|p| p.full);
    let passphrase = policy.and_then(|p| p.passphrase.clone());
    let started = app.store.clock().instant();
    // Its own thread at a lower CPU priority: the copy and compression yield to requests.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("backup".into())
        .spawn(move || {
            lower_priority();
            let opts = archive::Options { policy: &label, full, data_dir: &data_dir, passphrase: passphrase.as_ref() };
            let _ = tx.send(archive::create_with(&store, &out, &opts));
        })
        .map_err(AppError::internal)?;
    let result = rx.await.map_err(|_| AppError::internal("the backup thread ended without a result"))?;
    app.backup_metrics.created(result.is_ok(), started.elapsed().as_secs_f64(), app.store.now().timestamp());
    let manifest = result.map_err(AppError::internal)?;
    tracing::info!(file = %name, rows = manifest.rows(), scope = %manifest.scope, "backup written");
    Ok((name, manifest))
}

/// Nice 10 for the calling thread (Linux keeps a nice value per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(error = %e, "cannot lower the backup thread's priority");
    }
}

/// Retention for one policy in the local directory: only that policy's backups, never one
/// being read. Returns the names removed.
pub fn apply_retention(app: &App, policy: &Policy) -> Vec<String> {
    let now = app.store.now();
    // A policy's own files: named by it and saying so in their manifest (uploaded and manual
    // backups are named differently, whatever their manifest says).
    let suffix = format!("-{}.{}", policy.name, archive::EXTENSION);
    let mine: Vec<(String, DateTime<Utc>)> = listing(app)
        .into_iter()
        .filter(|l| l.name.ends_with(&suffix))
        .filter_map(|l| l.manifest.filter(|m| m.policy == policy.name).map(|m| (l.name, m.created_at)))
        .collect();
    let mut removed = Vec::new();
    for name in policy.retention.expired(now, &mine) {
        if app.backups_in_use.contains(&name) {
            tracing::info!(file = %name, "retention skips a backup being read");
            continue;
        }
        let Some(path) = super::file_of(&app.config.data_dir, &name) else { continue };
        match remove(&path) {
            Ok(()) => removed.push(name),
            Err(e) => tracing::error!(file = %name, error = %e, "retention cannot delete a backup"),
        }
    }
    if !removed.is_empty() {
        tracing::info!(policy = %policy.name, removed = removed.len(), "retention removed old backups");
    }
    removed
}

/// One scheduled run of a policy: back up, deliver, apply retention.
pub async fn run_policy(app: App, policy: Policy) -> JobResult {
    let (name, manifest) = create_now(&app, Some(&policy)).await.map_err(|e| format!("the backup failed: {e}"))?;
    let size =
        super::file_of(&app.config.data_dir, &name).and_then(|p| p.metadata().ok()).map(|m| m.len()).unwrap_or(0);
    let removed = match &policy.target {
        Target::Local => apply_retention(&app, &policy),
        Target::Remote(url) => {
            let dest = Destination::open(url, &app.config.backups.storage)
                .map_err(|e| format!("{name} is kept on this server: the destination cannot be used: {e}"))?;
            deliver(&app, &dest, &name).await?;
            apply_remote_retention(&app, &policy, &dest).await
        }
    };
    let mut summary = format!(
        "{name}: {} rows, {}{}",
        manifest.rows(),
        human_bytes(size),
        if manifest.encrypted() { ", encrypted" } else { "" }
    );
    if !removed.is_empty() {
        summary.push_str(&format!("; retention removed {}", removed.len()));
    }
    Ok(summary)
}

/// What the page shows while a backup goes up to its destination.
#[derive(Default)]
pub struct Progress(Mutex<Option<String>>);

impl Progress {
    pub fn set(&self, text: Option<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = text;
    }
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Copies a local backup to its policy's destination (multipart for large files, progress on
/// the page and in the log), then removes the local copy. A failed upload keeps it.
pub async fn deliver(app: &App, dest: &Destination, name: &str) -> Result<(), String> {
    let path = super::file_of(&app.config.data_dir, name).ok_or_else(|| format!("{name} is gone"))?;
    let label = dest.url_of(name);
    let shown = name.to_string();
    let progress = |p: super::destination::UploadProgress| {
        let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
        app.backup_progress.set(Some(format!(
            "Uploading {shown}: {pct}% ({} of {}, part {} of {})",
            human_bytes(p.done),
            human_bytes(p.total),
            p.parts_done,
            p.parts_total
        )));
    };
    let result = {
        let _hold = app.backups_in_use.hold(name);
        dest.upload(&path, name, &progress).await
    };
    app.backup_progress.set(None);
    match result {
        Ok(bytes) => {
            tracing::info!(file = %name, to = %label, bytes, "backup uploaded");
            if let Err(e) = remove(&path) {
                tracing::warn!(file = %name, error = %e, "the uploaded backup's local copy could not be removed");
            }
            Ok(())
        }
        Err(e) => Err(format!("the upload to {label} failed; the backup is kept on this server as {name}: {e}")),
    }
}

/// When a backup was made, from its name (`bravely-YYYYMMDD-HHMMSS.mmm-policy…`).
pub fn made_at(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix("bravely-")?.get(..19)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S%.3f").ok().map(|t| t.and_utc())
}

/// Retention at a remote destination: the same rule, on the policy's own files there.
pub async fn apply_remote_retention(app: &App, policy: &Policy, dest: &Destination) -> Vec<String> {
    let suffix = format!("-{}.{}", policy.name, archive::EXTENSION);
    let listed = match dest.list().await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(policy = %policy.name, error = %e, "retention cannot list the destination");
            return vec![];
        }
    };
    let mine: Vec<(String, DateTime<Utc>)> = listed
        .into_iter()
        .filter(|b| b.name.ends_with(&suffix))
        .map(|b| (b.name.clone(), made_at(&b.name).unwrap_or(b.modified)))
        .collect();
    let mut removed = Vec::new();
    for name in policy.retention.expired(app.store.now(), &mine) {
        if app.backups_in_use.contains(&name) {
            continue;
        }
        match dest.delete(&name).await {
            Ok(()) => removed.push(name),
            Err(e) => tracing::error!(file = %name, error = %e, "retention cannot delete a remote backup"),
        }
    }
    removed
}

/// Backups at a policy's remote destination, newest first.
pub async fn remote_listing(app: &App, url: &str) -> Result<Vec<super::destination::RemoteBackup>, String> {
    let dest = Destination::open(url, &app.config.backups.storage).map_err(|e| e.to_string())?;
    let mut list = dest.list().await.map_err(|e| e.to_string())?;
    list.sort_by(|a, b| b.name.cmp(&a.name));
    Ok(list)
}

/// Downloads a remote backup, verifies it completely with its policy's passphrase, and
/// records the result beside the other remote checks.
pub async fn verify_remote(app: &App, url: &str, name: &str) -> Result<archive::Checked, String> {
    let dest = Destination::open(url, &app.config.backups.storage).map_err(|e| e.to_string())?;
    let dir = super::dir(&app.config.data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tmp = tempfile::Builder::new().prefix(".verify-").tempdir_in(&dir).map_err(|e| e.to_string())?;
    let local = tmp.path().join(name);
    dest.download_to(name, &local).await.map_err(|e| format!("{}: {e}", dest.url_of(name)))?;
    let result =
        verify_path(app, local.clone()).await.map_err(|e| e.replace(&local.display().to_string(), &dest.url_of(name)));
    let check = Check::of(app.store.now(), &result);
    let checks = remote_checks_dir(app);
    if std::fs::create_dir_all(&checks).is_ok() {
        write_check(&checks.join(name), &check);
    }
    result
}

fn remote_checks_dir(app: &App) -> PathBuf {
    super::dir(&app.config.data_dir).join(".remote-checks")
}

/// The last verification of a remote backup, if any.
pub fn remote_check(app: &App, name: &str) -> Option<Check> {
    read_check(&remote_checks_dir(app).join(name))
}

/// Verifies one local backup file completely (with its policy's passphrase when encrypted)
/// and records the result beside it.
pub async fn verify_file(app: &App, name: &str) -> Result<archive::Checked, AppError> {
    let path = super::file_of(&app.config.data_dir, name).ok_or(AppError::NotFound)?;
    let _hold = app.backups_in_use.hold(name);
    let result = verify_path(app, path.clone()).await;
    let check = Check::of(app.store.now(), &result);
    write_check(&path, &check);
    result.map_err(AppError::BadRequest)
}

/// Verifies a backup file completely, with the passphrase of the policy that made it, off the
/// async threads; counted in the metrics.
pub async fn verify_path(app: &App, path: PathBuf) -> Result<archive::Checked, String> {
    let config = app.config.clone();
    let result = tokio::task::spawn_blocking(move || {
        let pass = archive::read_manifest(&path).and_then(|m| policy::passphrase_for(&config, &m.policy));
        archive::verify_in(&path, pass.as_ref(), None, &super::reader::Limits::of(&config))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string());
    app.backup_metrics.verified(result.is_ok());
    result
}

/// The scheduled verification: the newest backup of each policy, read back and checked. A
/// failure fails the run, and the scheduler's alert names every failed file.
pub async fn verify_newest(app: App) -> JobResult {
    let policies = policy::policies(&app.config).map_err(|e| e.to_string())?;
    let files = listing(&app);
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for p in &policies {
        if let Target::Remote(url) = &p.target {
            let suffix = format!("-{}.{}", p.name, archive::EXTENSION);
            let newest = match remote_listing(&app, url).await {
                Ok(list) => list.into_iter().find(|b| b.name.ends_with(&suffix)),
                Err(e) => {
                    let why = format!("cannot list {}: {e}", policy::redact_url(url));
                    failed.push(why);
                    continue;
                }
            };
            let Some(newest) = newest else { continue };
            match verify_remote(&app, url, &newest.name).await {
                Ok(_) => ok.push(newest.name.clone()),
                Err(e) => {
                    failed.push(format!("{}: {e}", newest.name));
                }
            }
            continue;
        }
        let Some(newest) = files.iter().find(|l| l.manifest.as_ref().is_some_and(|m| m.policy == p.name)) else {
            continue;
        };
        match verify_file(&app, &newest.name).await {
            Ok(_) => ok.push(newest.name.clone()),
            Err(e) => {
                failed.push(format!("{}: {e}", newest.name));
            }
        }
    }
    if failed.is_empty() {
        Ok(if ok.is_empty() { "no backups to verify yet".into() } else { format!("verified {}", ok.join(", ")) })
    } else {
        Err(failed.join("; "))
    }
}

/// The scheduled jobs of the backups module: one per policy (watched by `/readyz`) and the
/// daily verification.
pub fn jobs(config: &crate::config::Config) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for p in policy::policies(config)? {
        let name =
            format!("Backup: {} ({}, keep {}, to {})", p.name, p.scope(), p.retention.describe(), p.target.describe());
        let key = p.job_key();
        let schedule = p.schedule.clone();
        jobs.push(Job::new(key, name, schedule, move |app| run_policy(app, p.clone())).watched());
    }
    jobs.push(Job::new(
        "backup-verify",
        "Verify the newest backup of each policy",
        Schedule::parse("30 5 * * *").map_err(anyhow::Error::msg)?,
        verify_newest,
    ));
    Ok(jobs)
}

pub use crate::fsutil::human_bytes;
