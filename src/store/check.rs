//! The full check of a database file (`bravely check`, the weekly job, a restore's snapshot):
//! redb's integrity check (every page of the committed trees against its checksum), then ours:
//! every row of every table this version knows decodes, every index entry matches its row, and
//! the audit log's two tables agree.
//!
//! The file is never written (see [`super::overlay`]), and a panic of the storage engine on a
//! damaged page is caught and reported like any other damage.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError, TableHandle};

use super::codec::{Entity, decode};
use super::overlay::Overlay;
use super::{AUDIT, AUDIT_BY_RECORD, AuditEntry, META, StoreError};

/// Opens a table, `None` when it does not exist.
macro_rules! open_or_none {
    ($r:expr, $def:expr) => {
        match $r.open_table($def) {
            Ok(t) => Some(t),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        }
    };
}

/// Problems listed per table before the rest is only counted.
const SHOWN: usize = 5;

/// How one stored type is checked: its tables and a function that reads them.
#[derive(Clone)]
pub struct Stored {
    /// The table holding the rows.
    pub table: &'static str,
    /// Its index tables (`table#index`).
    pub indexes: Vec<String>,
    how: How,
}

#[derive(Clone, Copy)]
enum How {
    Tables(fn(&ReadTransaction, &mut Problems) -> Result<u64, StoreError>),
    /// Text key -> encoded value, decoded by the function.
    Keyed(fn(&[u8]) -> Result<(), String>),
}

impl Stored {
    /// A record type: rows decode, index tables hold exactly the entries its rows make.
    pub fn entity<T: Entity>() -> Stored {
        Stored {
            table: T::TABLE,
            indexes: T::INDEXES.iter().map(|i| format!("{}#{}", T::TABLE, i.name)).collect(),
            how: How::Tables(check_entity::<T>),
        }
    }

    /// A table outside the typed layer, text key -> value, whose values `decode` checks
    /// (sessions).
    pub fn keyed(table: &'static str, decode: fn(&[u8]) -> Result<(), String>) -> Stored {
        Stored { table, indexes: vec![], how: How::Keyed(decode) }
    }

    fn run(&self, r: &ReadTransaction, problems: &mut Problems) -> Result<u64, StoreError> {
        match self.how {
            How::Tables(f) => f(r, problems),
            How::Keyed(decode) => {
                let def: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(self.table);
                let mut n = 0;
                if let Some(t) = open_or_none!(r, def) {
                    for item in t.iter()? {
                        let (k, v) = item?;
                        n += 1;
                        if let Err(e) = decode(v.value()) {
                            problems.add(format!("the row under {:?} does not decode ({e})", k.value()));
                        }
                    }
                }
                Ok(n)
            }
        }
    }
}

/// The store's own tables: sequences and the audit log.
pub fn builtin() -> Vec<Stored> {
    vec![
        Stored { table: "audit.log", indexes: vec!["audit.by_record".into()], how: How::Tables(check_audit) },
        Stored { table: "meta.seq", indexes: vec![], how: How::Tables(check_meta) },
    ]
}

/// Problems found in one table, the first few in words.
pub struct Problems {
    table: String,
    shown: Vec<String>,
    more: u64,
}

impl Problems {
    fn new(table: &str) -> Problems {
        Problems { table: table.to_string(), shown: vec![], more: 0 }
    }

    pub fn add(&mut self, what: impl Into<String>) {
        if self.shown.len() < SHOWN {
            self.shown.push(format!("{}: {}", self.table, what.into()));
        } else {
            self.more += 1;
        }
    }

    fn into_lines(self) -> Vec<String> {
        let mut out = self.shown;
        if self.more > 0 {
            out.push(format!("{}: and {} more problems like these", self.table, self.more));
        }
        out
    }
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub file: PathBuf,
    pub size: u64,
    /// Damage or inconsistency: the check fails when there is any.
    pub problems: Vec<String>,
    /// Worth knowing, not damage (tables this version does not know, an unclean stop).
    pub notes: Vec<String>,
    /// Rows read per known table.
    pub tables: BTreeMap<String, u64>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn rows(&self) -> u64 {
        self.tables.values().sum()
    }

    /// The report as an operator reads it.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let name = self.file.display();
        if self.ok() {
            s.push_str(&format!(
                "{name} is sound: redb's integrity check passed; {} rows in {} tables decode and every index matches its rows ({} bytes)\n",
                self.rows(),
                self.tables.len(),
                self.size
            ));
        } else {
            s.push_str(&format!("{name} is DAMAGED ({} problems):\n", self.problems.len()));
            for p in &self.problems {
                s.push_str(&format!("  - {p}\n"));
            }
        }
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        s
    }
}

/// The text of a caught panic.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Checks the database file `path` without changing it. `Err` only when it cannot be checked
/// at all (missing, unreadable, in use by a running server); damage is in the report.
pub fn check_file(path: &Path, stored: &[Stored]) -> Result<Report, StoreError> {
    super::writer::quietly(|| check_file_inner(path, stored))
}

fn check_file_inner(path: &Path, stored: &[Stored]) -> Result<Report, StoreError> {
    let size = std::fs::metadata(path)
        .map_err(|e| {
            StoreError::Db(redb::Error::Io(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))))
        })?
        .len();
    let mut report = Report { file: path.to_path_buf(), size, ..Report::default() };
    if size == 0 {
        report.problems.push("the file is empty (0 bytes): it holds no database at all".into());
        return Ok(report);
    }
    let Some(db) = open_checked(path, &mut report)? else { return Ok(report) };
    let rows = std::panic::catch_unwind(AssertUnwindSafe(|| check_rows(&db, stored, &mut report)));
    match rows {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.problems.push(format!("reading the tables failed: {e}")),
        Err(p) => report.problems.push(format!("reading the tables made the storage engine fail: {}", panic_text(&*p))),
    }
    Ok(report)
}

/// Opens `path` on an [`Overlay`] and runs redb's integrity check; `None` when the file is too
/// damaged to read its tables (the report says why).
fn open_checked(path: &Path, report: &mut Report) -> Result<Option<Database>, StoreError> {
    let overlay = Overlay::open(path).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = repaired.clone();
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
        Database::builder()
            .set_cache_size(super::CACHE_BYTES)
            .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed))
            .create_with_backend(overlay)
    }));
    let mut db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => return Err(StoreError::InUse(path.display().to_string())),
        Ok(Err(e)) => {
            report.problems.push(format!("redb cannot open it: {}", describe(&e.into())));
            return Ok(None);
        }
        Err(p) => {
            // A plain open trusts the file; an open with the check reports corruption in words.
            let checked = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let overlay = Overlay::open(path)?;
                Database::builder()
                    .set_cache_size(super::CACHE_BYTES)
                    .set_check_integrity_on_open(true)
                    .create_with_backend(overlay)
                    .map(drop)
                    .map_err(|e| std::io::Error::other(describe(&e.into())))
            }));
            report.problems.push(match checked {
                Ok(Err(e)) => format!("redb's integrity check failed: {e}"),
                _ => format!("opening it made the storage engine fail: {}", panic_text(&*p)),
            });
            return Ok(None);
        }
    };
    if repaired.load(Ordering::Relaxed) {
        report.notes.push(
            "the file was not closed cleanly (a server was killed, or lost power): redb recovers it at the next start; \
             the check ran on the recovered state"
                .into(),
        );
    }
    match std::panic::catch_unwind(AssertUnwindSafe(|| db.check_integrity())) {
        Ok(Ok(true)) => Ok(Some(db)),
        Ok(Ok(false)) => {
            report.problems.push(
                "redb's integrity check found damage that it could repair (only in memory: the file is unchanged); \
                 the repair may drop the newest changes"
                    .into(),
            );
            Ok(Some(db))
        }
        Ok(Err(e)) => {
            report.problems.push(format!("redb's integrity check failed: {}", describe(&e.into())));
            Ok(None)
        }
        Err(p) => {
            report.problems.push(format!("redb's integrity check made the storage engine fail: {}", panic_text(&*p)));
            Ok(None)
        }
    }
}

/// A redb error in words, saying plainly when it means damage.
pub fn describe(e: &redb::Error) -> String {
    match e {
        redb::Error::Corrupted(why) => format!("the file is corrupted ({why})"),
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            format!("it is not a redb database or its header is damaged ({io})")
        }
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("the file is shorter than its header says: it was truncated ({io})")
        }
        redb::Error::UpgradeRequired(v) => format!("it is in an old redb file format ({v}) this version cannot read"),
        other => other.to_string(),
    }
}

fn check_rows(db: &Database, stored: &[Stored], report: &mut Report) -> Result<(), StoreError> {
    let r = db.begin_read()?;
    let present: BTreeSet<String> = r.list_tables()?.map(|t| t.name().to_string()).collect();
    let mut known = BTreeSet::new();
    for s in builtin().iter().chain(stored) {
        known.insert(s.table.to_string());
        known.extend(s.indexes.iter().cloned());
        let mut problems = Problems::new(s.table);
        let checked = std::panic::catch_unwind(AssertUnwindSafe(|| s.run(&r, &mut problems)));
        match checked {
            Ok(Ok(n)) => {
                if present.contains(s.table) {
                    report.tables.insert(s.table.to_string(), n);
                }
            }
            Ok(Err(e)) => problems.add(format!("cannot be read: {e}")),
            Err(p) => problems.add(format!("reading it made the storage engine fail: {}", panic_text(&*p))),
        }
        report.problems.extend(problems.into_lines());
    }
    let unknown: Vec<&String> = present.iter().filter(|t| !known.contains(*t)).collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        report.notes.push(format!(
            "tables this version does not know (written by a newer version?), not checked: {}",
            names.join(", ")
        ));
    }
    Ok(())
}

fn rows_def(table: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(table)
}

fn check_entity<T: Entity>(r: &ReadTransaction, problems: &mut Problems) -> Result<u64, StoreError> {
    // (index name, key, id) each row should have.
    let mut expected: BTreeMap<&'static str, BTreeSet<(Vec<u8>, u64)>> = BTreeMap::new();
    for idx in T::INDEXES {
        expected.insert(idx.name, BTreeSet::new());
    }
    let mut n = 0;
    if let Some(t) = open_or_none!(r, rows_def(T::TABLE)) {
        for item in t.iter()? {
            let (k, v) = item?;
            let id = k.value();
            n += 1;
            match decode::<T>(v.value()) {
                Ok(row) => {
                    let fields: Vec<_> = row.fields().into_iter().chain(row.secret_fields()).collect();
                    for idx in T::INDEXES {
                        let keys = fields.iter().find(|(f, _)| *f == idx.field).map(|(_, v)| v.index_keys());
                        let set = expected.entry(idx.name).or_default();
                        for key in keys.unwrap_or_default() {
                            set.insert((key, id));
                        }
                    }
                }
                Err(e) => problems.add(format!("row {id} does not decode ({e})")),
            }
        }
    }
    for idx in T::INDEXES {
        let name = format!("{}#{}", T::TABLE, idx.name);
        let mut want = expected.remove(idx.name).unwrap_or_default();
        let mut extra = Vec::new();
        if idx.unique {
            let mut seen: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            for (key, id) in &want {
                if let Some(other) = seen.insert(key.clone(), *id) {
                    problems.add(format!(
                        "rows {other} and {id} share the value {:?} of the unique field {}",
                        String::from_utf8_lossy(key),
                        idx.field
                    ));
                }
            }
            let def: TableDefinition<'_, &'static [u8], u64> = TableDefinition::new(&name);
            if let Some(t) = open_or_none!(r, def) {
                for item in t.iter()? {
                    let (k, v) = item?;
                    let entry = (k.value().to_vec(), v.value());
                    if !want.remove(&entry) {
                        extra.push(entry);
                    }
                }
            }
        } else {
            let def: TableDefinition<'_, (&'static [u8], u64), ()> = TableDefinition::new(&name);
            if let Some(t) = open_or_none!(r, def) {
                for item in t.iter()? {
                    let (k, _) = item?;
                    let (key, id) = k.value();
                    let entry = (key.to_vec(), id);
                    if !want.remove(&entry) {
                        extra.push(entry);
                    }
                }
            }
        }
        for (key, id) in extra {
            problems.add(format!(
                "index {} has an entry {:?} -> {id} that no row makes",
                idx.name,
                String::from_utf8_lossy(&key)
            ));
        }
        for (key, id) in want {
            problems.add(format!(
                "index {} lacks the entry {:?} -> {id} of row {id}",
                idx.name,
                String::from_utf8_lossy(&key)
            ));
        }
    }
    Ok(n)
}

fn check_audit(r: &ReadTransaction, problems: &mut Problems) -> Result<u64, StoreError> {
    let mut want: BTreeSet<(String, u64, u64)> = BTreeSet::new();
    let mut n = 0;
    if let Some(t) = open_or_none!(r, AUDIT) {
        for item in t.iter()? {
            let (k, v) = item?;
            n += 1;
            match decode::<AuditEntry>(v.value()) {
                Ok(e) => {
                    want.insert((e.table, e.record, k.value()));
                }
                Err(e) => problems.add(format!("entry {} does not decode ({e})", k.value())),
            }
        }
    }
    if let Some(t) = open_or_none!(r, AUDIT_BY_RECORD) {
        for item in t.iter()? {
            let (k, _) = item?;
            let (table, record, id) = k.value();
            if !want.remove(&(table.to_string(), record, id)) {
                problems
                    .add(format!("audit.by_record lists entry {id} for {table} {record}, which the log does not hold"));
            }
        }
    }
    for (table, record, id) in want {
        problems.add(format!("entry {id} (of {table} {record}) is missing from audit.by_record"));
    }
    Ok(n)
}

fn check_meta(r: &ReadTransaction, _problems: &mut Problems) -> Result<u64, StoreError> {
    let mut n = 0;
    if let Some(t) = open_or_none!(r, META) {
        for item in t.iter()? {
            item?;
            n += 1;
        }
    }
    Ok(n)
}

/// Rows per table of a database file after redb's integrity check, without changing the file
/// (a backup's snapshot: a crafted one must give an error, never a panic). The error says why.
pub fn table_counts_checked(path: &Path) -> Result<BTreeMap<String, u64>, String> {
    super::writer::quietly(|| table_counts_inner(path))
}

fn table_counts_inner(path: &Path) -> Result<BTreeMap<String, u64>, String> {
    let mut report = Report { file: path.to_path_buf(), ..Report::default() };
    let db = match open_checked(path, &mut report) {
        Ok(Some(db)) if report.ok() => db,
        Ok(_) => return Err(report.problems.join("; ")),
        Err(e) => return Err(e.to_string()),
    };
    let counted = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<BTreeMap<String, u64>, StoreError> {
        use redb::ReadableTableMetadata;
        let r = db.begin_read()?;
        let mut counts = BTreeMap::new();
        for handle in r.list_tables()? {
            let name = handle.name().to_string();
            let t = r.open_untyped_table(handle)?;
            counts.insert(name, t.len()?);
        }
        Ok(counts)
    }));
    match counted {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!("the storage engine failed on it ({})", panic_text(&*p))),
    }
}

/// Whether a running server (or another command) holds the database file `path`. A damaged or
/// unreadable file is not in use: a restore may replace it.
pub fn in_use(path: &Path) -> bool {
    let opened = std::panic::catch_unwind(|| Database::builder().open_read_only(path).map(drop));
    matches!(opened, Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)))
}
