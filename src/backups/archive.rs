//! The backup file: one zstd-compressed tar holding `manifest.json` (first) and the database
//! snapshot `bravely.redb`, with the snapshot's SHA-256 and row counts in the manifest.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::Store;
use crate::store::snapshot::table_counts;

pub const FORMAT: u32 = 1;
pub const EXTENSION: &str = "bravely-backup";
const DB_PART: &str = "bravely.redb";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub app_version: String,
    pub created_at: DateTime<Utc>,
    /// `database` (the only scope so far).
    pub scope: String,
    /// The policy that made it, or `manual`.
    pub policy: String,
    pub tables: BTreeMap<String, u64>,
    pub parts: Vec<Part>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} is not a Bravely backup ({1})")]
    Foreign(String, String),
    #[error("{0} was written by a newer Bravely (backup format {1}); upgrade first")]
    NewerFormat(String, u32),
    #[error("{0} is damaged: {1}")]
    Corrupt(String, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Takes a snapshot of the live store and writes the backup file `out` (via a temporary name,
/// so a half-written file never looks like a backup).
pub fn create(store: &Store, out: &Path, policy: &str) -> Result<Manifest, BackupError> {
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let work = tempfile::Builder::new().prefix(".snapshot-").tempdir_in(dir)?;
    let db_copy = work.path().join(DB_PART);
    let tables = store.snapshot_to(&db_copy)?;
    let (size, sha256) = sha256_file(&db_copy)?;
    let manifest = Manifest {
        format: FORMAT,
        app_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: store.now(),
        scope: "database".into(),
        policy: policy.to_string(),
        tables,
        parts: vec![Part { name: DB_PART.into(), size, sha256 }],
    };
    let tmp = out.with_extension("partial");
    {
        let file = std::fs::File::create(&tmp)?;
        let enc = zstd::Encoder::new(file, 3)?.auto_finish();
        let mut tar = tar::Builder::new(enc);
        let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(manifest.created_at.timestamp().max(0) as u64);
        header.set_cksum();
        tar.append_data(&mut header, MANIFEST, json.as_slice())?;
        tar.append_path_with_name(&db_copy, DB_PART)?;
        let enc = tar.into_inner()?;
        drop(enc);
    }
    let f = std::fs::File::open(&tmp)?;
    f.sync_all()?;
    std::fs::rename(&tmp, out)?;
    Ok(manifest)
}

/// Reads the manifest and checks everything: the archive reads to its end, the snapshot's
/// checksum matches, the snapshot opens as a database, and its row counts match. Returns the
/// manifest and, when `extract_to` is given, leaves the snapshot there.
pub fn verify(file: &Path, extract_to: Option<&Path>) -> Result<Manifest, BackupError> {
    let label = file.display().to_string();
    let foreign = |why: &str| BackupError::Foreign(label.clone(), why.to_string());
    let corrupt = |why: String| BackupError::Corrupt(label.clone(), why);
    // A zstd frame starts with these bytes: past them, errors mean damage, not a foreign file.
    let mut magic = [0u8; 4];
    let zstd_file = std::fs::File::open(file)?.read_exact(&mut magic).is_ok() && magic == [0x28, 0xb5, 0x2f, 0xfd];
    if !zstd_file {
        return Err(foreign("it is not zstd-compressed"));
    }
    let unreadable = |why: &str| corrupt(format!("the archive cannot be read ({why})"));
    let f = std::fs::File::open(file)?;
    let dec = zstd::Decoder::new(f).map_err(|e| unreadable(&e.to_string()))?;
    let mut archive = tar::Archive::new(dec);
    let mut entries = archive.entries().map_err(|e| unreadable(&e.to_string()))?;
    let work = tempfile::tempdir()?;
    let db_path: PathBuf = match extract_to {
        Some(p) => p.to_path_buf(),
        None => work.path().join(DB_PART),
    };
    let mut manifest: Option<Manifest> = None;
    let mut got_db = None;
    for entry in entries.by_ref() {
        let mut entry = entry.map_err(|e| unreadable(&e.to_string()))?;
        let name = entry.path().map_err(|e| corrupt(e.to_string()))?.to_string_lossy().to_string();
        match name.as_str() {
            MANIFEST => {
                let mut json = Vec::new();
                entry.read_to_end(&mut json).map_err(|e| corrupt(e.to_string()))?;
                let m: Manifest = serde_json::from_slice(&json).map_err(|_| foreign("no readable manifest"))?;
                if m.format > FORMAT {
                    return Err(BackupError::NewerFormat(label.clone(), m.format));
                }
                manifest = Some(m);
            }
            DB_PART if manifest.is_some() => {
                let mut out = std::fs::File::create(&db_path)?;
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 256 * 1024];
                let mut size = 0u64;
                loop {
                    let n = entry
                        .read(&mut buf)
                        .map_err(|e| corrupt(format!("the archive ends early or is garbled ({e})")))?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    h.update(&buf[..n]);
                    out.write_all(&buf[..n])?;
                }
                out.sync_all()?;
                got_db = Some((size, hex::encode(h.finalize())));
            }
            _ if manifest.is_none() => return Err(foreign("the manifest is not the first entry")),
            _ => {}
        }
    }
    let manifest = manifest.ok_or_else(|| foreign("no manifest"))?;
    let (size, sha) = got_db.ok_or_else(|| corrupt("the database snapshot is missing".into()))?;
    let part = manifest
        .parts
        .iter()
        .find(|p| p.name == DB_PART)
        .ok_or_else(|| corrupt("the manifest lists no database".into()))?;
    if part.size != size || part.sha256 != sha {
        return Err(corrupt(format!("checksum mismatch for {DB_PART} (expected {}, got {sha})", part.sha256)));
    }
    let counts = table_counts(&db_path).map_err(|e| corrupt(format!("the snapshot does not open: {e}")))?;
    if counts != manifest.tables {
        return Err(corrupt("row counts differ from the manifest".into()));
    }
    Ok(manifest)
}

/// Replaces the database in `data_dir` with the backup's snapshot. The server must be stopped
/// (the caller holds no `Store`). The current file is kept as `bravely.redb.before-restore-…`;
/// on any failure it is put back. Returns the manifest and the name of the kept file.
pub fn restore_offline(
    data_dir: &Path,
    file: &Path,
    now: DateTime<Utc>,
) -> Result<(Manifest, Option<PathBuf>), BackupError> {
    std::fs::create_dir_all(data_dir)?;
    let incoming = data_dir.join("bravely.redb.restoring");
    let manifest = match verify(file, Some(&incoming)) {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(e);
        }
    };
    let live = data_dir.join("bravely.redb");
    let kept = data_dir.join(format!("bravely.redb.before-restore-{}", now.format("%Y%m%dT%H%M%SZ")));
    let had_live = live.exists();
    if had_live {
        // Fails with a clear message if a server still holds the file.
        table_counts(&live)?;
        std::fs::rename(&live, &kept)?;
    }
    let result = std::fs::rename(&incoming, &live).map_err(BackupError::from).and_then(|_| {
        let counts = table_counts(&live)?;
        if counts != manifest.tables {
            return Err(BackupError::Corrupt(
                file.display().to_string(),
                "the restored file does not match its manifest".into(),
            ));
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok((manifest, had_live.then_some(kept))),
        Err(e) => {
            let _ = std::fs::remove_file(&live);
            if had_live {
                std::fs::rename(&kept, &live)?;
            }
            Err(e)
        }
    }
}
