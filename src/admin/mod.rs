//! The generic admin layer: Django admin, done in Rust.
//!
//! A module declares a [`ResourceDef`] for a record type implementing [`AdminRecord`]; the
//! layer serves list, add, change, delete, history, CSV export and CSV import pages for it,
//! guarded by the resource's `view`/`add`/`change`/`delete` permissions.

pub mod csv_io;
pub mod def;
pub mod form;
pub mod handlers;
pub mod import;
pub mod list;
pub mod views;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

pub use def::{AdminRecord, Field, FormCtx, Kind, OnDelete, ResourceDef, Values};
pub use list::ListModel;

use crate::error::{AppError, FieldErrors};
use crate::store::{Change, Entity, Listener, ReadTx, StoreError, Tx, Value, decode};

/// What the generic pages need from a resource, without knowing its Rust type.
pub trait AdminResource: Send + Sync {
    fn def(&self) -> &ResourceDef;
    fn table(&self) -> &'static str;
    fn model(&self) -> &ListModel;
    /// Decodes a stored row into values in field order, and its label.
    fn values_of(&self, bytes: &[u8]) -> Result<(Vec<Value>, String), StoreError>;
    /// The stored values of one record, read in `tx` (not from the read model).
    fn load(&self, tx: &Tx<'_, '_>, id: u64) -> Result<Option<Vec<Value>>, AppError>;
    /// Creates (`id = None`) or changes a record from parsed values.
    fn save(
        &self,
        tx: &mut Tx<'_, '_>,
        id: Option<u64>,
        values: &Values,
        currency: crate::money::Currency,
    ) -> Result<u64, AppError>;
    fn delete(&self, tx: &mut Tx<'_, '_>, id: u64) -> Result<(), AppError>;
    fn clear_ref(&self, tx: &mut Tx<'_, '_>, id: u64, field: &str, target: u64) -> Result<(), AppError>;
}

/// Adapts an [`AdminRecord`] type to [`AdminResource`].
pub struct Typed<T: AdminRecord> {
    def: ResourceDef,
    model: ListModel,
    _t: PhantomData<fn() -> T>,
}

impl<T: AdminRecord> Typed<T> {
    pub fn new() -> Arc<Self> {
        let def = T::def();
        let model = ListModel::new(&def);
        Arc::new(Typed { def, model, _t: PhantomData })
    }

    fn values(&self, rec: &T) -> Vec<Value> {
        let fields = rec.fields();
        self.def
            .fields
            .iter()
            .map(|f| fields.iter().find(|(n, _)| *n == f.name).map(|(_, v)| v.clone()).unwrap_or_default())
            .collect()
    }
}

impl<T: AdminRecord> AdminResource for Typed<T> {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn table(&self) -> &'static str {
        T::TABLE
    }
    fn model(&self) -> &ListModel {
        &self.model
    }
    fn values_of(&self, bytes: &[u8]) -> Result<(Vec<Value>, String), StoreError> {
        let rec = decode::<T>(bytes)?;
        Ok((self.values(&rec), rec.label()))
    }
    fn load(&self, tx: &Tx<'_, '_>, id: u64) -> Result<Option<Vec<Value>>, AppError> {
        Ok(tx.get::<T>(id)?.map(|r| self.values(&r)))
    }
    fn save(
        &self,
        tx: &mut Tx<'_, '_>,
        id: Option<u64>,
        values: &Values,
        currency: crate::money::Currency,
    ) -> Result<u64, AppError> {
        let old = match id {
            Some(id) => Some(tx.must_get::<T>(id)?),
            None => None,
        };
        let rec = {
            let ctx = FormCtx { currency, today: tx.now().date_naive(), tx };
            T::from_values(values, old.as_ref(), &ctx).map_err(AppError::Validation)?
        };
        match id {
            Some(id) => {
                tx.update(id, &rec)?;
                Ok(id)
            }
            None => Ok(tx.insert(&rec)?),
        }
    }
    fn delete(&self, tx: &mut Tx<'_, '_>, id: u64) -> Result<(), AppError> {
        tx.delete::<T>(id)?;
        Ok(())
    }
    fn clear_ref(&self, tx: &mut Tx<'_, '_>, id: u64, field: &str, target: u64) -> Result<(), AppError> {
        let mut rec = tx.must_get::<T>(id)?;
        if rec.clear_ref(field, target) {
            tx.update(id, &rec)?;
            Ok(())
        } else {
            Err(AppError::internal(format!("{} cannot clear {field}", T::TABLE)))
        }
    }
}

/// Every admin resource, by slug. It is the store listener that keeps their read models.
pub struct Registry {
    by_slug: BTreeMap<&'static str, Arc<dyn AdminResource>>,
    order: Vec<&'static str>,
    /// Every permission codename with a description, for pickers and checks.
    pub permissions: Vec<(String, String)>,
}

impl Registry {
    /// Builds the registry and checks every declaration; a bad one stops the boot.
    pub fn new(resources: Vec<Arc<dyn AdminResource>>, extra_perms: Vec<(String, String)>) -> anyhow::Result<Registry> {
        let slugs: Vec<&'static str> = resources.iter().map(|r| r.def().slug).collect();
        let mut by_slug = BTreeMap::new();
        let mut permissions = Vec::new();
        for r in &resources {
            let d = r.def();
            d.check(&slugs).map_err(|e| anyhow::anyhow!(e))?;
            if by_slug.insert(d.slug, r.clone()).is_some() {
                anyhow::bail!("two admin resources use the slug {:?}", d.slug);
            }
            for (action, verb) in [("view", "View"), ("add", "Add"), ("change", "Change"), ("delete", "Delete")] {
                permissions.push((format!("{}.{action}", d.slug), format!("{verb} {}", d.plural)));
            }
        }
        permissions.extend(extra_perms);
        Ok(Registry { by_slug, order: slugs, permissions })
    }

    pub fn get(&self, slug: &str) -> Option<&Arc<dyn AdminResource>> {
        self.by_slug.get(slug)
    }

    pub fn resources(&self) -> impl Iterator<Item = &Arc<dyn AdminResource>> {
        self.order.iter().filter_map(|s| self.by_slug.get(s))
    }

    pub fn label_of(&self, slug: &str, id: u64) -> String {
        self.get(slug).and_then(|r| r.model().label(id)).unwrap_or_else(|| format!("#{id} (deleted)"))
    }

    /// Rows elsewhere that point at `slug`/`id`, with what deleting it would do to them.
    pub fn dependents(&self, slug: &str, id: u64) -> Vec<Dependent> {
        let mut out = Vec::new();
        for r in self.resources() {
            for (i, f) in r.def().fields.iter().enumerate() {
                let policy = match f.kind {
                    Kind::Ref { target, on_delete } if target == slug => on_delete,
                    Kind::Refs { target } if target == slug => OnDelete::Clear,
                    _ => continue,
                };
                for row in r.model().referencing(i, id) {
                    out.push(Dependent {
                        slug: r.def().slug,
                        singular: r.def().singular,
                        field: f.name,
                        id: row.id,
                        label: row.label.clone(),
                        policy,
                    });
                }
            }
        }
        out
    }

    /// Deletes a record and applies each dependent's policy, all in `tx`.
    pub fn delete_with_dependents(&self, tx: &mut Tx<'_, '_>, slug: &str, id: u64) -> Result<(), AppError> {
        let res = self.get(slug).ok_or(AppError::NotFound)?;
        let deps = self.dependents(slug, id);
        if let Some(p) = deps.iter().find(|d| d.policy == OnDelete::Protect) {
            return Err(AppError::Conflict(format!(
                "{} cannot be deleted while {} {:?} refers to it.",
                res.model().label(id).unwrap_or_default(),
                p.singular,
                p.label
            )));
        }
        for d in &deps {
            let dres = self.get(d.slug).ok_or(AppError::NotFound)?;
            match d.policy {
                OnDelete::Cascade => self.delete_with_dependents(tx, d.slug, d.id)?,
                OnDelete::Clear => dres.clear_ref(tx, d.id, d.field, id)?,
                OnDelete::Protect => {}
            }
        }
        res.delete(tx, id)
    }

    /// The registry as the listener of every resource table.
    pub fn listener(self: &Arc<Self>) -> Arc<dyn Listener> {
        Arc::new(RegistryListener(self.clone()))
    }
}

#[derive(Debug, Clone)]
pub struct Dependent {
    pub slug: &'static str,
    pub singular: &'static str,
    pub field: &'static str,
    pub id: u64,
    pub label: String,
    pub policy: OnDelete,
}

struct RegistryListener(Arc<Registry>);

impl Listener for RegistryListener {
    fn load(&self, store: &ReadTx) -> Result<(), StoreError> {
        for r in self.0.resources() {
            r.model().clear();
            store.for_each_raw(r.table(), |id, bytes| {
                let (values, label) = r.values_of(bytes)?;
                r.model().upsert(id, values, label);
                Ok(())
            })?;
        }
        Ok(())
    }

    fn apply(&self, changes: &[Change]) {
        for c in changes {
            for r in self.0.resources().filter(|r| r.table() == c.table) {
                match &c.row {
                    Some(bytes) => match r.values_of(bytes) {
                        Ok((values, label)) => r.model().upsert(c.id, values, label),
                        Err(e) => tracing::error!(error = %e, "read model could not decode a committed row"),
                    },
                    None => r.model().remove(c.id),
                }
            }
        }
    }
}

/// Turns a unique-index clash into a form error on that field.
pub fn field_errors_of(e: &AppError) -> Option<FieldErrors> {
    match e {
        AppError::Validation(f) => Some(f.clone()),
        _ => None,
    }
}

/// Marker used by `Typed` to satisfy `Entity` bounds in generic code.
pub fn table_of<T: Entity>() -> &'static str {
    T::TABLE
}
