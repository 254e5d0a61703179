//! Backups: consistent snapshots of the database in one verifiable file each.
//!
//! - [`archive`]: the backup file (manifest + parts, optional age encryption), verify, restore;
//! - [`policy`]: policies from the configuration (scope, schedule, destination, retention,
//!   encryption) and their defaults;
//! - [`service`]: making backups, retention, verification, shared by page, API and jobs;
//! - [`restore`]: restores from the web page, carried out across a self-restart;
//! - [`handlers`]: the `/backups` page.

pub mod api;
pub mod archive;
pub mod destination;
pub mod handlers;
pub mod policy;
pub mod reader;
pub mod restore;
pub mod service;

use std::path::{Path, PathBuf};

use crate::web::Routes;
use crate::{Module, NavEntry};

pub use archive::{BackupError, Manifest};

pub struct Backups;

pub const PERMISSIONS: &[(&str, &str)] = &[
    ("backups.view", "See the list of backups and verify them"),
    ("backups.create", "Make a backup now"),
    ("backups.download", "Download backup files (they hold all data)"),
    ("backups.delete", "Delete backup files"),
    ("backups.restore", "Restore a backup over the live data"),
];

impl Module for Backups {
    fn name(&self) -> &'static str {
        "Backups"
    }
    fn routes(&self, r: &mut Routes) {
        handlers::routes(r);
        api::routes(r);
    }
    fn nav(&self) -> Vec<NavEntry> {
        vec![NavEntry::new("Administration", "Backups", "/backups".into(), Some("backups.view"))]
    }
    fn help(&self) -> Option<crate::help::Help> {
        Some(crate::help::Help { chapter: "backups", prefixes: &["/backups"] })
    }
    fn permissions(&self) -> Vec<(String, String)> {
        PERMISSIONS.iter().map(|(c, d)| (c.to_string(), d.to_string())).collect()
    }
    fn jobs(&self, config: &crate::config::Config) -> anyhow::Result<Vec<crate::jobs::Job>> {
        service::jobs(config)
    }
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("backups")
}

/// A backup's file name, checked: only names this module makes are accepted.
pub fn file_of(data_dir: &Path, name: &str) -> Option<PathBuf> {
    let ok = name.ends_with(&format!(".{}", archive::EXTENSION))
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let path = dir(data_dir).join(name);
    (ok && path.is_file()).then_some(path)
}

/// A file name for a new backup made at `now`.
pub fn new_name(now: chrono::DateTime<chrono::Utc>, policy: &str) -> String {
    format!("bravely-{}-{policy}.{}", now.format("%Y%m%d-%H%M%S%.3f"), archive::EXTENSION)
}
