//! Consistent copies of the live database.
//!
//! Copying the live file is not safe (a writer may be mid-commit), so a snapshot opens one read
//! transaction and copies every table, found through redb's own table list, into a new redb file
//! in one write transaction on that file, then compacts it. Writers are never blocked: the read
//! transaction sees one committed state while they go on.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableError, TableHandle, Value, WriteTransaction,
};

use super::StoreError;

/// Copies `name` if its key and value types are `K` and `V`; `None` if they are not. Returns
/// the rows copied and the row count the table's header records (they differ only in a
/// damaged file).
fn copy_as<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    name: &str,
) -> Result<Option<(u64, u64)>, StoreError> {
    let def = TableDefinition::<K, V>::new(name);
    let s = match src.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableTypeMismatch { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut d = dst.open_table(def)?;
    let mut n = 0;
    for item in s.iter()? {
        let (k, v) = item?;
        d.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(Some((n, s.len()?)))
}

/// Copies one table, trying every key/value layout the store uses.
fn copy_table(src: &ReadTransaction, dst: &WriteTransaction, name: &str) -> Result<(u64, u64), StoreError> {
    macro_rules! try_layouts {
        ($(($k:ty, $v:ty)),* $(,)?) => {
            $(
                if let Some(n) = copy_as::<$k, $v>(src, dst, name)? {
                    return Ok(n);
                }
            )*
        };
    }
    try_layouts!((u64, &[u8]), (&[u8], u64), ((&[u8], u64), ()), (&str, u64), ((&str, u64, u64), ()), (&str, &[u8]),);
    Err(StoreError::Db(redb::Error::Io(std::io::Error::other(format!(
        "table {name} has a layout the snapshot does not know; add it to store::snapshot"
    )))))
}

/// Writes a consistent copy of `db` to `out` (a new file). Returns rows per table.
pub fn snapshot(db: &Database, out: &Path) -> Result<BTreeMap<String, u64>, StoreError> {
    let copied = snapshot_counted(db, out)?;
    for m in &copied.mismatches {
        tracing::warn!(problem = %m, "the live database disagrees with itself; run the integrity check");
    }
    Ok(copied.counts)
}

/// A snapshot, and what the live file's tables said of themselves while it was copied.
pub struct Copied {
    /// Rows copied per table.
    pub counts: BTreeMap<String, u64>,
    /// Tables whose recorded row count differs from the rows read.
    pub mismatches: Vec<String>,
}

/// [`snapshot`], also comparing each table's recorded row count with the rows read.
pub fn snapshot_counted(db: &Database, out: &Path) -> Result<Copied, StoreError> {
    let src = db.begin_read()?;
    let mut copy = Database::builder().create(out)?;
    let mut counts = BTreeMap::new();
    let mut mismatches = Vec::new();
    {
        let mut dst = copy.begin_write()?;
        // No fsync for the copy: compaction below commits durably, and the backup file made
        // from it is synced. A flush of hundreds of megabytes here would queue the live
        // database's small commits behind it.
        dst.set_durability(redb::Durability::None).map_err(|e| StoreError::Db(e.into()))?;
        let names: Vec<String> = src.list_tables()?.map(|t| t.name().to_string()).collect();
        for name in names {
            let (n, recorded) = copy_table(&src, &dst, &name)?;
            if n != recorded {
                mismatches.push(format!("{name}: {n} rows can be read, its header records {recorded}"));
            }
            counts.insert(name, n);
        }
        dst.commit()?;
    }
    drop(src);
    copy.compact().map_err(|e| StoreError::Db(e.into()))?;
    Ok(Copied { counts, mismatches })
}

/// Rows per table of a database file (opened read-only); checks that it opens cleanly.
pub fn table_counts(path: &Path) -> Result<BTreeMap<String, u64>, StoreError> {
    let db = match Database::builder().open(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::InUse(path.display().to_string())),
        Err(e) => return Err(e.into()),
    };
    let r = db.begin_read()?;
    let mut counts = BTreeMap::new();
    for handle in r.list_tables()? {
        let name = handle.name().to_string();
        let t = r.open_untyped_table(handle)?;
        counts.insert(name, t.len()?);
    }
    Ok(counts)
}
