//! Typed access to rows, indexes and the audit log inside one transaction.

use chrono::{DateTime, Utc};
use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};

use super::audit::{self, Actor, AuditAction, AuditEntry, FieldChange};
use super::codec::{Entity, decode, encode};
use super::{AUDIT, AUDIT_BY_RECORD, Change, META, StoreError};
use crate::error::AppError;

fn rows_def(table: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(table)
}

/// Unique index: normalised value -> id.
fn unique_def(name: &str) -> TableDefinition<'_, &'static [u8], u64> {
    TableDefinition::new(name)
}

/// Non-unique index: (normalised value, id) -> ().
fn multi_def(name: &str) -> TableDefinition<'_, (&'static [u8], u64), ()> {
    TableDefinition::new(name)
}

fn index_table(table: &str, index: &str) -> String {
    format!("{table}#{index}")
}

type FieldSets<'a> = (&'a [(&'static str, super::Value)], &'a [(&'static str, super::Value)]);

type RowsTable<'t> = Table<'t, u64, &'static [u8]>;
type UniqueTable<'t> = Table<'t, &'static [u8], u64>;
type MultiTable<'t> = Table<'t, (&'static [u8], u64), ()>;

/// The tables a write batch has opened, kept open until the batch ends, and the sequence values
/// it has handed out. Opening a redb table looks it up in the table tree and closing it writes
/// its root back, which cost more than the inserts themselves when every write reopened its
/// tables; a batch now opens each table once. Sequences are written to `meta.seq` once per
/// batch in [`Tables::finish`].
pub(super) struct Tables<'t> {
    txn: &'t WriteTransaction,
    rows: HashMap<&'static str, RowsTable<'t>>,
    unique: HashMap<(&'static str, &'static str), UniqueTable<'t>>,
    multi: HashMap<(&'static str, &'static str), MultiTable<'t>>,
    audit: Option<Table<'t, u64, &'static [u8]>>,
    audit_by_record: Option<Table<'t, (&'static str, u64, u64), ()>>,
    /// Last id handed out per sequence in this batch (not yet in `meta.seq`).
    seq: HashMap<String, u64>,
}

impl<'t> Tables<'t> {
    pub(super) fn new(txn: &'t WriteTransaction) -> Self {
        Tables {
            txn,
            rows: HashMap::new(),
            unique: HashMap::new(),
            multi: HashMap::new(),
            audit: None,
            audit_by_record: None,
            seq: HashMap::new(),
        }
    }

    /// Closes the tables and writes the sequences; call before committing.
    pub(super) fn finish(self) -> Result<(), StoreError> {
        let Tables { txn, rows, unique, multi, audit, audit_by_record, seq } = self;
        drop((rows, unique, multi, audit, audit_by_record));
        if !seq.is_empty() {
            let mut meta = txn.open_table(META)?;
            for (name, last) in &seq {
                meta.insert(name.as_str(), *last)?;
            }
        }
        Ok(())
    }

    fn rows(&mut self, table: &'static str) -> Result<&mut RowsTable<'t>, StoreError> {
        let txn = self.txn;
        Ok(match self.rows.entry(table) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(txn.open_table(rows_def(table))?),
        })
    }

    fn unique(&mut self, table: &'static str, index: &'static str) -> Result<&mut UniqueTable<'t>, StoreError> {
        let txn = self.txn;
        Ok(match self.unique.entry((table, index)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(txn.open_table(unique_def(&index_table(table, index)))?),
        })
    }

    fn multi(&mut self, table: &'static str, index: &'static str) -> Result<&mut MultiTable<'t>, StoreError> {
        let txn = self.txn;
        Ok(match self.multi.entry((table, index)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(txn.open_table(multi_def(&index_table(table, index)))?),
        })
    }

    fn audit(&mut self) -> Result<&mut Table<'t, u64, &'static [u8]>, StoreError> {
        let txn = self.txn;
        Ok(match &mut self.audit {
            Some(t) => t,
            slot @ None => slot.insert(txn.open_table(AUDIT)?),
        })
    }

    fn audit_by_record(&mut self) -> Result<&mut Table<'t, (&'static str, u64, u64), ()>, StoreError> {
        let txn = self.txn;
        Ok(match &mut self.audit_by_record {
            Some(t) => t,
            slot @ None => slot.insert(txn.open_table(AUDIT_BY_RECORD)?),
        })
    }

    /// The last id handed out for `name`: this batch's value, else the committed one.
    fn last_id(&mut self, name: &str) -> Result<u64, StoreError> {
        if let Some(v) = self.seq.get(name) {
            return Ok(*v);
        }
        let last = self.txn.open_table(META)?.get(name)?.map(|v| v.value()).unwrap_or(0);
        self.seq.insert(name.to_string(), last);
        Ok(last)
    }
}

/// Reverses one write; run newest first when a write fails partway (see `store::writer`).
pub(super) type Undo = Box<dyn FnOnce(&mut Tables<'_>) -> Result<(), StoreError> + Send>;

/// A write inside the batch's transaction, with the acting user and the time of the write.
/// Every change made through these methods can be undone, so one failing write leaves the
/// other writes of its batch intact.
pub struct Tx<'a, 't> {
    pub(super) tables: &'a RefCell<Tables<'t>>,
    pub(super) actor: &'a Actor,
    pub(super) now: DateTime<Utc>,
    pub(super) changes: &'a mut Vec<Change>,
    pub(super) undo: &'a mut Vec<Undo>,
}

impl Tx<'_, '_> {
    pub fn actor(&self) -> &Actor {
        self.actor
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Direct access for tables outside the typed layer (sessions). Writes made here are not
    /// undone if the closure later fails: only use it in writes that cannot fail afterwards.
    /// Typed tables may be open in the batch: open only your own tables here.
    pub fn raw(&self) -> &WriteTransaction {
        self.tables.borrow().txn
    }

    fn put_row(&mut self, table: &'static str, id: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let old = self.tables.borrow_mut().rows(table)?.insert(id, bytes)?.map(|v| v.value().to_vec());
        self.undo.push(Box::new(move |t: &mut Tables<'_>| {
            let tbl = t.rows(table)?;
            match &old {
                Some(o) => tbl.insert(id, o.as_slice())?,
                None => tbl.remove(id)?,
            };
            Ok(())
        }));
        Ok(())
    }

    fn remove_row(&mut self, table: &'static str, id: u64) -> Result<(), StoreError> {
        let old = self.tables.borrow_mut().rows(table)?.remove(id)?.map(|v| v.value().to_vec());
        if let Some(o) = old {
            self.undo.push(Box::new(move |t: &mut Tables<'_>| {
                t.rows(table)?.insert(id, o.as_slice())?;
                Ok(())
            }));
        }
        Ok(())
    }

    /// Next id of a table's sequence (ids start at 1 and are never reused).
    pub fn next_id(&mut self, table: &str) -> Result<u64, StoreError> {
        let mut tables = self.tables.borrow_mut();
        let prev = tables.last_id(table)?;
        let next = prev + 1;
        tables.seq.insert(table.to_string(), next);
        let name = table.to_string();
        self.undo.push(Box::new(move |t: &mut Tables<'_>| {
            t.seq.insert(name, prev);
            Ok(())
        }));
        Ok(next)
    }

    pub fn get<T: Entity>(&self, id: u64) -> Result<Option<T>, StoreError> {
        let mut tables = self.tables.borrow_mut();
        let row = tables.rows(T::TABLE)?.get(id)?;
        row.map(|r| decode::<T>(r.value())).transpose()
    }

    pub fn must_get<T: Entity>(&self, id: u64) -> Result<T, StoreError> {
        self.get::<T>(id)?.ok_or(StoreError::NotFound)
    }

    pub fn find_unique<T: Entity>(&self, index: &'static str, key: &str) -> Result<Option<(u64, T)>, StoreError> {
        let Some(k) = super::Value::text(key).index_keys().into_iter().next() else {
            return Ok(None);
        };
        let id = self.tables.borrow_mut().unique(T::TABLE, index)?.get(k.as_slice())?.map(|v| v.value());
        match id {
            Some(id) => Ok(self.get::<T>(id)?.map(|r| (id, r))),
            None => Ok(None),
        }
    }

    /// Ids whose `index` field holds `key` (a non-unique index).
    pub fn find_by<T: Entity>(&self, index: &'static str, key: &super::Value) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        self.each_by::<T>(index, key, |id| {
            out.push(id);
            true
        })?;
        Ok(out)
    }

    /// How many rows' `index` field holds `key` (a non-unique index), counting no further than
    /// `limit` and collecting nothing.
    pub fn count_by<T: Entity>(
        &self,
        index: &'static str,
        key: &super::Value,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        if limit > 0 {
            self.each_by::<T>(index, key, |_| {
                n += 1;
                n < limit
            })?;
        }
        Ok(n)
    }

    /// Visits the ids under `key` in a non-unique index while `f` returns true.
    fn each_by<T: Entity>(
        &self,
        index: &'static str,
        key: &super::Value,
        mut f: impl FnMut(u64) -> bool,
    ) -> Result<(), StoreError> {
        let mut tables = self.tables.borrow_mut();
        let idx = tables.multi(T::TABLE, index)?;
        for k in key.index_keys() {
            for item in idx.range((k.as_slice(), 0)..=(k.as_slice(), u64::MAX))? {
                if !f(item?.0.value().1) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Inserts a new row with a fresh id, its index entries and an audit entry.
    pub fn insert<T: Entity>(&mut self, row: &T) -> Result<u64, StoreError> {
        let id = self.next_id(T::TABLE)?;
        self.put_new(id, row)?;
        Ok(id)
    }

    /// Inserts derived, high-volume rows (ledger lines) without an audit entry of their own;
    /// the change that caused them is audited.
    pub fn insert_quiet<T: Entity>(&mut self, row: &T) -> Result<u64, StoreError> {
        let id = self.next_id(T::TABLE)?;
        let fields = row.fields();
        self.update_indexes::<T>(id, (&[], &[]), (&fields, &row.secret_fields()))?;
        let bytes = encode(row);
        self.put_row(T::TABLE, id, &bytes)?;
        self.changes.push(Change { table: T::TABLE, id, row: Some(bytes) });
        Ok(id)
    }

    /// Inserts a row at an id the caller chose (for tables keyed by another table's id).
    pub fn insert_with_id<T: Entity>(&mut self, id: u64, row: &T) -> Result<(), StoreError> {
        if self.get::<T>(id)?.is_some() {
            return Err(StoreError::App(Box::new(AppError::Conflict(format!("{} {id} already exists", T::TABLE)))));
        }
        self.put_new(id, row)
    }

    fn put_new<T: Entity>(&mut self, id: u64, row: &T) -> Result<(), StoreError> {
        let fields = row.fields();
        self.update_indexes::<T>(id, (&[], &[]), (&fields, &row.secret_fields()))?;
        let bytes = encode(row);
        self.put_row(T::TABLE, id, &bytes)?;
        let changes = audit::diff(&[], &fields);
        self.audit(T::TABLE, id, AuditAction::Create, changes, None)?;
        self.changes.push(Change { table: T::TABLE, id, row: Some(bytes) });
        Ok(())
    }

    /// Replaces a row; indexes and the audit diff follow. Returns the field changes.
    pub fn update<T: Entity>(&mut self, id: u64, row: &T) -> Result<Vec<FieldChange>, StoreError> {
        self.update_as(id, row, AuditAction::Update, None)
    }

    /// [`Tx::update`] recorded as a named action (e.g. "assign") with an optional note.
    pub fn update_as<T: Entity>(
        &mut self,
        id: u64,
        row: &T,
        action: AuditAction,
        note: Option<String>,
    ) -> Result<Vec<FieldChange>, StoreError> {
        let old = self.must_get::<T>(id)?;
        let old_fields = old.fields();
        let new_fields = row.fields();
        let changes = audit::diff(&old_fields, &new_fields);
        self.update_indexes::<T>(id, (&old_fields, &old.secret_fields()), (&new_fields, &row.secret_fields()))?;
        let bytes = encode(row);
        self.put_row(T::TABLE, id, &bytes)?;
        if !changes.is_empty() || note.is_some() || action != AuditAction::Update {
            self.audit(T::TABLE, id, action, changes.clone(), note)?;
        }
        self.changes.push(Change { table: T::TABLE, id, row: Some(bytes) });
        Ok(changes)
    }

    /// Replaces a row without an audit entry: bookkeeping that changes often and means little
    /// on its own (an API token's last use). Indexes and read models follow as usual.
    pub fn update_quiet<T: Entity>(&mut self, id: u64, row: &T) -> Result<(), StoreError> {
        let old = self.must_get::<T>(id)?;
        self.update_indexes::<T>(id, (&old.fields(), &old.secret_fields()), (&row.fields(), &row.secret_fields()))?;
        let bytes = encode(row);
        self.put_row(T::TABLE, id, &bytes)?;
        self.changes.push(Change { table: T::TABLE, id, row: Some(bytes) });
        Ok(())
    }

    pub fn delete<T: Entity>(&mut self, id: u64) -> Result<T, StoreError> {
        let old = self.must_get::<T>(id)?;
        let old_fields = old.fields();
        self.update_indexes::<T>(id, (&old_fields, &old.secret_fields()), (&[], &[]))?;
        self.remove_row(T::TABLE, id)?;
        let changes = audit::diff(&old_fields, &[]);
        self.audit(T::TABLE, id, AuditAction::Delete, changes, None)?;
        self.changes.push(Change { table: T::TABLE, id, row: None });
        Ok(old)
    }

    /// Records a domain event on a record without changing it.
    pub fn note(&mut self, table: &str, id: u64, action: &str, note: impl Into<String>) -> Result<(), StoreError> {
        self.audit(table, id, AuditAction::Other(action.to_string()), vec![], Some(note.into()))
    }

    fn audit(
        &mut self,
        table: &str,
        record: u64,
        action: AuditAction,
        changes: Vec<FieldChange>,
        note: Option<String>,
    ) -> Result<(), StoreError> {
        let entry = AuditEntry {
            at: self.now,
            actor_id: self.actor.user_id,
            actor_label: self.actor.label.clone(),
            table: table.to_string(),
            record,
            action,
            changes,
            note,
        };
        let audit_id = self.next_id("audit.log")?;
        let mut tables = self.tables.borrow_mut();
        tables.audit()?.insert(audit_id, encode(&entry).as_slice())?;
        tables.audit_by_record()?.insert((table, record, audit_id), ())?;
        drop(tables);
        let table = entry.table;
        self.undo.push(Box::new(move |t: &mut Tables<'_>| {
            t.audit()?.remove(audit_id)?;
            t.audit_by_record()?.remove((table.as_str(), record, audit_id))?;
            Ok(())
        }));
        Ok(())
    }

    /// `old` and `new` are each (fields, secret fields) of the row before and after.
    fn update_indexes<T: Entity>(&mut self, id: u64, old: FieldSets<'_>, new: FieldSets<'_>) -> Result<(), StoreError> {
        let find = |(fields, secret): FieldSets<'_>, name: &str| {
            fields.iter().chain(secret).find(|(n, _)| *n == name).map(|(_, v)| v.index_keys()).unwrap_or_default()
        };
        for idx in T::INDEXES {
            let old_keys = find(old, idx.field);
            let new_keys = find(new, idx.field);
            if old_keys == new_keys {
                continue;
            }
            let (table, index) = (T::TABLE, idx.name);
            if idx.unique {
                let mut tables = self.tables.borrow_mut();
                let t = tables.unique(table, index)?;
                for k in &new_keys {
                    let existing = t.get(k.as_slice())?.map(|v| v.value());
                    if let Some(existing) = existing
                        && existing != id
                        && !old_keys.contains(k)
                    {
                        return Err(StoreError::Unique { table: T::TABLE, field: idx.field, existing });
                    }
                }
                for k in &old_keys {
                    t.remove(k.as_slice())?;
                }
                for k in &new_keys {
                    t.insert(k.as_slice(), id)?;
                }
            } else {
                let mut tables = self.tables.borrow_mut();
                let t = tables.multi(table, index)?;
                for k in &old_keys {
                    t.remove((k.as_slice(), id))?;
                }
                for k in &new_keys {
                    t.insert((k.as_slice(), id), ())?;
                }
            }
            let unique = idx.unique;
            self.undo.push(Box::new(move |t: &mut Tables<'_>| {
                if unique {
                    let tbl = t.unique(table, index)?;
                    for k in &new_keys {
                        tbl.remove(k.as_slice())?;
                    }
                    for k in &old_keys {
                        tbl.insert(k.as_slice(), id)?;
                    }
                } else {
                    let tbl = t.multi(table, index)?;
                    for k in &new_keys {
                        tbl.remove((k.as_slice(), id))?;
                    }
                    for k in &old_keys {
                        tbl.insert((k.as_slice(), id), ())?;
                    }
                }
                Ok(())
            }));
        }
        Ok(())
    }
}

/// A read transaction with typed helpers.
pub struct ReadTx {
    txn: ReadTransaction,
}

impl ReadTx {
    pub(super) fn new(txn: ReadTransaction) -> Self {
        ReadTx { txn }
    }

    pub fn raw(&self) -> &ReadTransaction {
        &self.txn
    }

    pub fn get<T: Entity>(&self, id: u64) -> Result<Option<T>, StoreError> {
        let t = match self.txn.open_table(rows_def(T::TABLE)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let row = t.get(id)?;
        row.map(|r| decode::<T>(r.value())).transpose()
    }

    pub fn find_unique<T: Entity>(&self, index: &str, key: &str) -> Result<Option<(u64, T)>, StoreError> {
        let idx = match self.txn.open_table(unique_def(&index_table(T::TABLE, index))) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(k) = super::Value::text(key).index_keys().into_iter().next() else {
            return Ok(None);
        };
        match idx.get(k.as_slice())?.map(|v| v.value()) {
            Some(id) => Ok(self.get::<T>(id)?.map(|r| (id, r))),
            None => Ok(None),
        }
    }

    pub fn find_by<T: Entity>(&self, index: &str, key: &super::Value) -> Result<Vec<u64>, StoreError> {
        let idx = match self.txn.open_table(multi_def(&index_table(T::TABLE, index))) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for k in key.index_keys() {
            for item in idx.range((k.as_slice(), 0)..=(k.as_slice(), u64::MAX))? {
                out.push(item?.0.value().1);
            }
        }
        Ok(out)
    }

    /// Every row of a table, decoded, in id order.
    pub fn all<T: Entity>(&self) -> Result<Vec<(u64, T)>, StoreError> {
        let mut out = Vec::new();
        self.for_each_raw(T::TABLE, |id, bytes| {
            out.push((id, decode::<T>(bytes)?));
            Ok(())
        })?;
        Ok(out)
    }

    /// Visits every encoded row of a table in id order (a missing table has no rows).
    pub fn for_each_raw(
        &self,
        table: &str,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let t = match self.txn.open_table(rows_def(table)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for item in t.iter()? {
            let (k, v) = item?;
            f(k.value(), v.value())?;
        }
        Ok(())
    }

    pub fn count(&self, table: &str) -> Result<u64, StoreError> {
        match self.txn.open_table(rows_def(table)) {
            Ok(t) => Ok(t.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Highest id handed out for `table` so far.
    pub fn last_id(&self, table: &str) -> Result<u64, StoreError> {
        let meta = self.txn.open_table(META)?;
        Ok(meta.get(table)?.map(|v| v.value()).unwrap_or(0))
    }
}
