//! The backup file: one zstd-compressed tar holding `manifest.json` (always first, always
//! readable) and then the parts: the database snapshot `bravely.redb` and, for full backups,
//! the uploaded files as `files/…`. The manifest records each part's size and SHA-256 and the
//! row count of every table.
//!
//! An encrypted backup keeps the manifest in clear (so lists and checksum checks need no key)
//! and replaces the parts with one entry, `payload.tar.zst.age`: the parts as a zstd tar,
//! encrypted with age (scrypt passphrase). The manifest then also records the payload's
//! SHA-256, so a checksum check works without the passphrase; with it, verify decrypts, checks
//! every part and opens the database.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reader::{self, Limits, Members};
use crate::config::Secret;
use crate::store::Store;
use crate::store::snapshot::table_counts;

/// 1: database only. 2: adds full scope (files) and encryption. Both are read.
pub const FORMAT: u32 = 2;
pub const EXTENSION: &str = "bravely-backup";
const DB_PART: &str = "bravely.redb";
const MANIFEST: &str = "manifest.json";
const PAYLOAD: &str = "payload.tar.zst.age";
const FILES: &str = "files";
pub const ENCRYPTION_AGE: &str = "age-scrypt";

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
    /// `database`, or `full` (with the files under `<data dir>/files`).
    pub scope: String,
    /// The policy that made it, or `manual`.
    pub policy: String,
    pub tables: BTreeMap<String, u64>,
    /// The parts in clear: sizes and checksums of what a restore puts in place.
    pub parts: Vec<Part>,
    /// `age-scrypt` when the parts are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// The encrypted payload as stored in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Part>,
}

impl Manifest {
    pub fn rows(&self) -> u64 {
        self.tables.values().sum()
    }
    pub fn encrypted(&self) -> bool {
        self.encryption.is_some()
    }
}

/// What to put in a backup.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// The policy's name, or `manual`.
    pub policy: &'a str,
    /// Include the files under `<data_dir>/files`.
    pub full: bool,
    pub data_dir: &'a Path,
    pub passphrase: Option<&'a Secret>,
}

/// The result of a verification.
#[derive(Debug, Clone)]
pub struct Checked {
    pub manifest: Manifest,
    /// False when an encrypted backup was checked without its passphrase: the stored bytes
    /// match their checksum, but the contents were not opened.
    pub contents_checked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} is not a Bravely backup ({1})")]
    Foreign(String, String),
    #[error("{0} was written by a newer Bravely (backup format {1}); upgrade first")]
    NewerFormat(String, u32),
    #[error("{0} is damaged: {1}")]
    Corrupt(String, String),
    #[error("{0} is encrypted and {1}")]
    Key(String, String),
    #[error("{0} is refused: {1}")]
    TooLarge(String, String),
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

/// Every regular file under `root`, as sorted paths relative to it (`/`-separated).
fn list_files(root: &Path) -> std::io::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                walk(root, &e.path(), out)?;
            } else if t.is_file() {
                let rel = e.path().strip_prefix(root).map_err(std::io::Error::other)?.to_path_buf();
                let parts: Vec<String> =
                    rel.components().map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if root.is_dir() {
        walk(root, root, &mut out)?;
    }
    out.sort();
    Ok(out)
}

/// The directory holding uploaded files, which full backups include.
pub fn files_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(FILES)
}

/// Adds the parts (database, then files) to a tar.
fn append_parts<W: Write>(
    tar: &mut tar::Builder<W>,
    db_copy: &Path,
    files: &[(String, PathBuf)],
) -> std::io::Result<()> {
    tar.append_path_with_name(db_copy, DB_PART)?;
    for (name, path) in files {
        tar.append_path_with_name(path, name)?;
    }
    Ok(())
}

fn age_passphrase(p: &Secret) -> age::secrecy::SecretString {
    age::secrecy::SecretString::from(p.expose().to_string())
}

/// Takes a snapshot of the live store and writes a database-only backup file `out`.
pub fn create(store: &Store, out: &Path, policy: &str) -> Result<Manifest, BackupError> {
    let data_dir = out.parent().unwrap_or(Path::new("."));
    create_with(store, out, &Options { policy, full: false, data_dir, passphrase: None })
}

/// Takes a snapshot of the live store and writes the backup file `out` (via a temporary name,
/// so a half-written file never looks like a backup).
pub fn create_with(store: &Store, out: &Path, opts: &Options<'_>) -> Result<Manifest, BackupError> {
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let work = tempfile::Builder::new().prefix(".snapshot-").tempdir_in(dir)?;
    let db_copy = work.path().join(DB_PART);
    let t0 = std::time::Instant::now();
    let tables = store.snapshot_to(&db_copy)?;
    let snapshot_s = t0.elapsed().as_secs_f64();
    let (size, sha256) = sha256_file(&db_copy)?;
    let mut parts = vec![Part { name: DB_PART.into(), size, sha256 }];
    let mut files = Vec::new();
    if opts.full {
        let root = files_dir(opts.data_dir);
        for rel in list_files(&root)? {
            let path = root.join(&rel);
            let (size, sha256) = sha256_file(&path)?;
            let name = format!("{FILES}/{rel}");
            parts.push(Part { name: name.clone(), size, sha256 });
            files.push((name, path));
        }
    }
    let mut manifest = Manifest {
        format: FORMAT,
        app_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: store.now(),
        scope: if opts.full { "full" } else { "database" }.into(),
        policy: opts.policy.to_string(),
        tables,
        parts,
        encryption: None,
        payload: None,
    };
    let payload = match opts.passphrase {
        Some(pass) => {
            let path = work.path().join(PAYLOAD);
            {
                let f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                let enc = age::Encryptor::with_user_passphrase(age_passphrase(pass));
                let age_out = enc.wrap_output(f)?;
                let zst = zstd::Encoder::new(age_out, 3)?;
                let mut tar = tar::Builder::new(zst);
                append_parts(&mut tar, &db_copy, &files)?;
                let zst = tar.into_inner()?;
                let age_out = zst.finish()?;
                let mut f = age_out.finish()?;
                f.flush()?;
            }
            let (size, sha256) = sha256_file(&path)?;
            manifest.encryption = Some(ENCRYPTION_AGE.into());
            manifest.payload = Some(Part { name: PAYLOAD.into(), size, sha256 });
            Some(path)
        }
        None => None,
    };
    let tmp = out.with_extension("partial");
    {
        let file = std::fs::File::create(&tmp)?;
        // Encrypted bytes do not compress: spend no effort on them.
        let level = if payload.is_some() { 1 } else { 3 };
        let enc = zstd::Encoder::new(file, level)?.auto_finish();
        let mut tar = tar::Builder::new(enc);
        let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(manifest.created_at.timestamp().max(0) as u64);
        header.set_cksum();
        tar.append_data(&mut header, MANIFEST, json.as_slice())?;
        match &payload {
            Some(p) => tar.append_path_with_name(p, PAYLOAD)?,
            None => append_parts(&mut tar, &db_copy, &files)?,
        }
        let enc = tar.into_inner()?;
        drop(enc);
    }
    let f = std::fs::File::open(&tmp)?;
    f.sync_all()?;
    std::fs::rename(&tmp, out)?;
    tracing::info!(
        snapshot_s = format!("{snapshot_s:.3}"),
        total_s = format!("{:.3}", t0.elapsed().as_secs_f64()),
        snapshot_bytes = size,
        file_bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
        "backup file written (snapshot and compaction, then checksum, compression and fsync)"
    );
    Ok(manifest)
}

/// Reads only the manifest (the first entry: the rest is not decompressed).
pub fn read_manifest(path: &Path) -> Option<Manifest> {
    let f = std::fs::File::open(path).ok()?;
    let dec = zstd::Decoder::new(f).ok()?;
    let mut ar = tar::Archive::new(dec);
    let mut members = Members::new(&mut ar).ok()?;
    let first = members.next()?.ok()?;
    if first.name != MANIFEST || first.size > reader::MAX_MANIFEST {
        return None;
    }
    let mut json = Vec::new();
    first.entry.take(reader::MAX_MANIFEST).read_to_end(&mut json).ok()?;
    serde_json::from_slice(&json).ok()
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Checks a part's name and makes it a path under `dir`; `None` for names a restore must not
/// write (absolute paths, `..`).
fn part_path(dir: &Path, name: &str) -> Option<PathBuf> {
    if name == DB_PART {
        return Some(dir.join(DB_PART));
    }
    let rel = name.strip_prefix(&format!("{FILES}/"))?;
    let ok = !rel.is_empty() && rel.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
    ok.then(|| dir.join(FILES).join(rel))
}

/// Reads parts from the archive's members into `dir`, recording size and checksum of each.
/// Only parts the manifest lists, each once and of exactly its declared size, are written.
fn take_parts<R: Read>(
    members: Members<'_, R>,
    dir: &Path,
    label: &str,
    expected: &[Part],
    got: &mut BTreeMap<String, (u64, String)>,
) -> Result<(), BackupError> {
    let corrupt = |why: String| BackupError::Corrupt(label.to_string(), why);
    for member in members {
        let mut member = member.map_err(corrupt)?;
        let name = member.name.clone();
        let Some(path) = part_path(dir, &name) else {
            return Err(corrupt(format!("unexpected entry {name:?}")));
        };
        let Some(part) = expected.iter().find(|p| p.name == name) else {
            return Err(corrupt(format!("{name} is not in the manifest")));
        };
        if got.contains_key(&name) {
            return Err(corrupt(format!("{name} is in the archive twice")));
        }
        if member.size != part.size {
            return Err(corrupt(format!(
                "{name} is {} bytes in the archive but {} in its manifest",
                member.size, part.size
            )));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = member
                .entry
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
        got.insert(name, (size, hex::encode(h.finalize())));
    }
    Ok(())
}

/// Reads the manifest and checks everything: the archive reads to its end (and nothing follows
/// it), every part's checksum matches, the snapshot passes redb's integrity check, and its row
/// counts match. Returns the manifest and, when `extract_to` is given, leaves the database
/// snapshot at that path.
pub fn verify(file: &Path, extract_to: Option<&Path>) -> Result<Manifest, BackupError> {
    match extract_to {
        None => verify_with(file, None, None).map(|c| c.manifest),
        Some(db) => {
            let work = tempfile::tempdir_in(db.parent().unwrap_or(Path::new(".")))?;
            let c = verify_with(file, None, Some(work.path()))?;
            std::fs::rename(work.path().join(DB_PART), db)?;
            Ok(c.manifest)
        }
    }
}

/// [`verify`] with a passphrase for encrypted backups; extracts every part into the directory
/// `extract_to` (`bravely.redb`, `files/…`) when given. Without the passphrase an encrypted
/// backup is checked against its payload checksum only (`contents_checked == false`).
/// Expands beside the file with the default maximum; the server uses [`verify_in`].
pub fn verify_with(
    file: &Path,
    passphrase: Option<&Secret>,
    extract_to: Option<&Path>,
) -> Result<Checked, BackupError> {
    verify_in(file, passphrase, extract_to, &Limits::beside(file))
}

/// [`verify_with`] expanding into `limits.work_dir` (unless `extract_to` is given), refusing a
/// backup whose declared contents exceed `limits.max_expanded` or the free space, before any
/// part is written.
pub fn verify_in(
    file: &Path,
    passphrase: Option<&Secret>,
    extract_to: Option<&Path>,
    limits: &Limits,
) -> Result<Checked, BackupError> {
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
    let mut members = Members::new(&mut archive).map_err(&corrupt)?;

    let manifest: Manifest = {
        let first = match members.next() {
            Some(m) => m.map_err(&corrupt)?,
            None => return Err(foreign("it is empty")),
        };
        if first.name != MANIFEST {
            return Err(foreign("the manifest is not the first entry"));
        }
        if first.size > reader::MAX_MANIFEST {
            return Err(corrupt(format!("its manifest is {} bytes, more than a manifest can be", first.size)));
        }
        let mut json = Vec::new();
        first.entry.take(reader::MAX_MANIFEST).read_to_end(&mut json).map_err(|e| corrupt(e.to_string()))?;
        let m: Manifest = serde_json::from_slice(&json).map_err(|_| foreign("no readable manifest"))?;
        if m.format > FORMAT {
            return Err(BackupError::NewerFormat(label.clone(), m.format));
        }
        m
    };

    // Everything the parts may expand to, as declared, checked before anything is written.
    let declared = manifest
        .parts
        .iter()
        .try_fold(0u64, |sum, p| sum.checked_add(p.size))
        .ok_or_else(|| corrupt("its manifest declares impossible sizes".into()))?;
    let work;
    let dir: &Path = match extract_to {
        Some(d) => d,
        None => {
            std::fs::create_dir_all(&limits.work_dir)?;
            work = tempfile::Builder::new().prefix(".verify-").tempdir_in(&limits.work_dir)?;
            work.path()
        }
    };
    std::fs::create_dir_all(dir)?;
    let decrypting = manifest.payload.is_some() && passphrase.is_some();
    if manifest.payload.is_none() || decrypting {
        reader::check_room(dir, declared, limits.max_expanded)
            .map_err(|why| BackupError::TooLarge(label.clone(), why))?;
    }

    let mut got = BTreeMap::new();
    let mut contents_checked = true;
    match &manifest.payload {
        None => {
            take_parts(members, dir, &label, &manifest.parts, &mut got)?;
        }
        Some(expected) => {
            let member = match members.next() {
                Some(m) => m.map_err(&corrupt)?,
                None => return Err(corrupt("the encrypted payload is missing".into())),
            };
            if member.name != PAYLOAD {
                return Err(corrupt(format!("unexpected entry {:?}", member.name)));
            }
            if member.size != expected.size {
                return Err(corrupt(format!(
                    "the encrypted payload is {} bytes in the archive but {} in its manifest",
                    member.size, expected.size
                )));
            }
            if expected.size > limits.max_expanded {
                return Err(BackupError::TooLarge(
                    label.clone(),
                    format!("its encrypted payload is {} bytes, more than the maximum allowed", expected.size),
                ));
            }
            let mut entry = member.entry;
            let mut hashing = Hashing { inner: &mut entry, hash: Sha256::new(), size: 0 };
            match passphrase {
                Some(pass) => {
                    let decryptor = age::Decryptor::new(&mut hashing)
                        .map_err(|e| corrupt(format!("the encrypted payload cannot be read ({e})")))?;
                    let mut identity = age::scrypt::Identity::new(age_passphrase(pass));
                    identity.set_max_work_factor(30);
                    let plain =
                        decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).map_err(|e| match e {
                            age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
                                BackupError::Key(label.clone(), "the passphrase does not open it".into())
                            }
                            e => corrupt(format!("the encrypted payload cannot be read ({e})")),
                        })?;
                    let zst = zstd::Decoder::new(plain).map_err(|e| unreadable(&e.to_string()))?;
                    let mut inner = tar::Archive::new(zst);
                    take_parts(Members::new(&mut inner).map_err(&corrupt)?, dir, &label, &manifest.parts, &mut got)?;
                    reader::expect_end(inner.into_inner())
                        .map_err(|why| corrupt(format!("in the encrypted payload, {why}")))?;
                }
                None => contents_checked = false,
            }
            // Read to the end of the payload so its checksum covers all of it.
            std::io::copy(&mut hashing, &mut std::io::sink())
                .map_err(|e| corrupt(format!("the archive ends early or is garbled ({e})")))?;
            let sha = hex::encode(hashing.hash.finalize());
            if hashing.size != expected.size || sha != expected.sha256 {
                return Err(corrupt(format!(
                    "checksum mismatch for the encrypted payload (expected {}, got {sha})",
                    expected.sha256
                )));
            }
            if let Some(extra) = members.next() {
                let what = extra.map(|m| format!("an entry {:?}", m.name)).unwrap_or_else(|e| e);
                return Err(corrupt(format!("{what} follows the encrypted payload")));
            }
        }
    }
    // Nothing may follow the archive (garbage appended to the file shows up here).
    reader::expect_end(archive.into_inner()).map_err(&corrupt)?;
    if !contents_checked {
        return Ok(Checked { manifest, contents_checked });
    }
    for part in &manifest.parts {
        match got.remove(&part.name) {
            None if part.name == DB_PART => return Err(corrupt("the database snapshot is missing".into())),
            None => return Err(corrupt(format!("{} is missing", part.name))),
            Some((size, sha)) if size != part.size || sha != part.sha256 => {
                return Err(corrupt(format!(
                    "checksum mismatch for {} (expected {}, got {sha})",
                    part.name, part.sha256
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = got.keys().next() {
        return Err(corrupt(format!("{extra} is not in the manifest")));
    }
    if !manifest.parts.iter().any(|p| p.name == DB_PART) {
        return Err(corrupt("the manifest lists no database".into()));
    }
    let counts = crate::store::check::table_counts_checked(&dir.join(DB_PART))
        .map_err(|e| corrupt(format!("the snapshot does not pass the integrity check: {e}")))?;
    if counts != manifest.tables {
        return Err(corrupt("row counts differ from the manifest".into()));
    }
    Ok(Checked { manifest, contents_checked })
}

/// Replaces the data in `data_dir` with a database-only or unencrypted backup. See
/// [`restore_offline_with`].
pub fn restore_offline(
    data_dir: &Path,
    file: &Path,
    now: DateTime<Utc>,
) -> Result<(Manifest, Option<PathBuf>), BackupError> {
    restore_offline_with(data_dir, file, None, now)
}

/// Replaces the database (and, for a full backup, the files directory) in `data_dir` with the
/// backup's. The server must be stopped (the caller holds no `Store`). The backup is checked
/// completely first; the current database is kept as `bravely.redb.before-restore-…` (and the
/// files as `files.before-restore-…`); on any failure they are put back. Returns the manifest
/// and the name of the kept database file.
pub fn restore_offline_with(
    data_dir: &Path,
    file: &Path,
    passphrase: Option<&Secret>,
    now: DateTime<Utc>,
) -> Result<(Manifest, Option<PathBuf>), BackupError> {
    restore_offline_in(data_dir, file, passphrase, now, reader::DEFAULT_MAX_EXPANDED)
}

/// [`restore_offline_with`], refusing a backup that declares more than `max_expanded` bytes.
/// A damaged current database (one that does not even open) is replaced like a sound one.
pub fn restore_offline_in(
    data_dir: &Path,
    file: &Path,
    passphrase: Option<&Secret>,
    now: DateTime<Utc>,
    max_expanded: u64,
) -> Result<(Manifest, Option<PathBuf>), BackupError> {
    std::fs::create_dir_all(data_dir)?;
    let incoming = tempfile::Builder::new().prefix(".restoring-").tempdir_in(data_dir)?;
    let limits = Limits { work_dir: data_dir.to_path_buf(), max_expanded };
    let checked = verify_in(file, passphrase, Some(incoming.path()), &limits)?;
    if !checked.contents_checked {
        return Err(BackupError::Key(file.display().to_string(), "no passphrase was given".into()));
    }
    let manifest = checked.manifest;
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let live = data_dir.join(DB_PART);
    let kept = data_dir.join(format!("{DB_PART}.before-restore-{stamp}"));
    let had_live = live.exists();
    if had_live {
        if crate::store::check::in_use(&live) {
            return Err(crate::store::StoreError::InUse(live.display().to_string()).into());
        }
        std::fs::rename(&live, &kept)?;
    }
    let full = manifest.scope == "full";
    let live_files = files_dir(data_dir);
    let kept_files = data_dir.join(format!("{FILES}.before-restore-{stamp}"));
    let had_files = full && live_files.exists();
    let result = (|| -> Result<(), BackupError> {
        std::fs::rename(incoming.path().join(DB_PART), &live)?;
        if full {
            if had_files {
                std::fs::rename(&live_files, &kept_files)?;
            }
            let new_files = incoming.path().join(FILES);
            if new_files.exists() {
                std::fs::rename(&new_files, &live_files)?;
            } else {
                std::fs::create_dir_all(&live_files)?;
            }
        }
        let counts = table_counts(&live)?;
        if counts != manifest.tables {
            return Err(BackupError::Corrupt(
                file.display().to_string(),
                "the restored file does not match its manifest".into(),
            ));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok((manifest, had_live.then_some(kept))),
        Err(e) => {
            let _ = std::fs::remove_file(&live);
            if had_live {
                std::fs::rename(&kept, &live)?;
            }
            if full && kept_files.exists() {
                let _ = std::fs::remove_dir_all(&live_files);
                std::fs::rename(&kept_files, &live_files)?;
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_cannot_escape_the_directory() {
        let d = Path::new("/x");
        assert_eq!(part_path(d, "bravely.redb"), Some(PathBuf::from("/x/bravely.redb")));
        assert_eq!(part_path(d, "files/cv/ana.pdf"), Some(PathBuf::from("/x/files/cv/ana.pdf")));
        for bad in ["files/../bravely.redb", "files/", "/etc/passwd", "files//a", "other", "files/./a"] {
            assert_eq!(part_path(d, bad), None, "{bad}");
        }
    }
}
