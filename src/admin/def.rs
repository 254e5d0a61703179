//! Declarations a module writes to get admin pages for a record type.

use crate::error::FieldErrors;
use crate::money::Currency;
use crate::store::{Entity, Tx, Value};

/// What happens to rows pointing at a record that is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// The delete is refused while such rows exist; the confirmation page lists them.
    Protect,
    /// Those rows are deleted too.
    Cascade,
    /// The reference is cleared (see [`AdminRecord::clear_ref`]).
    Clear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    LongText,
    Email,
    Int,
    Bool,
    Date,
    /// An instant; always read-only in forms.
    Time,
    Money,
    Choice(&'static [(&'static str, &'static str)]),
    /// A reference to a record of the resource with this slug.
    Ref {
        target: &'static str,
        on_delete: OnDelete,
    },
    /// Several references (e.g. a user's groups).
    Refs {
        target: &'static str,
    },
    /// Permission codenames, chosen from every permission the modules declare.
    Permissions,
    /// Write-only secret input; never shown, blank keeps the old value.
    Password,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub readonly: bool,
    pub help: &'static str,
}

impl Field {
    pub fn new(name: &'static str, label: &'static str, kind: Kind) -> Field {
        Field { name, label, kind, required: false, readonly: false, help: "" }
    }
    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub fn readonly(mut self) -> Field {
        self.readonly = true;
        self
    }
    pub fn help(mut self, h: &'static str) -> Field {
        self.help = h;
        self
    }
    pub fn is_write_only(&self) -> bool {
        matches!(self.kind, Kind::Password)
    }
    pub fn ref_target(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Ref { target, .. } | Kind::Refs { target } => Some(target),
            _ => None,
        }
    }
}

/// The declaration of one admin resource (Django's `ModelAdmin`).
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub slug: &'static str,
    /// Module heading on the admin index and in the navigation.
    pub module: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    pub fields: Vec<Field>,
    pub list_display: Vec<&'static str>,
    pub search_fields: Vec<&'static str>,
    pub filters: Vec<&'static str>,
    /// Default order: a field name, `-` for descending.
    pub ordering: &'static str,
    pub per_page: usize,
    /// Whether CSV import is offered.
    pub importable: bool,
}

impl ResourceDef {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Checks at start-up that every name the declaration uses is a field of the right kind.
    pub fn check(&self, known_slugs: &[&str]) -> Result<(), String> {
        let err =
            |what: &str, name: &str| format!("admin resource {:?}: {what} names unknown field {name:?}", self.slug);
        for c in &self.list_display {
            self.field(c).ok_or_else(|| err("list_display", c))?;
        }
        for c in &self.search_fields {
            let f = self.field(c).ok_or_else(|| err("search_fields", c))?;
            if !matches!(f.kind, Kind::Text | Kind::LongText | Kind::Email | Kind::Choice(_)) {
                return Err(format!("admin resource {:?}: search field {c:?} is not a text field", self.slug));
            }
        }
        for c in &self.filters {
            let f = self.field(c).ok_or_else(|| err("filters", c))?;
            if !matches!(f.kind, Kind::Bool | Kind::Choice(_) | Kind::Date | Kind::Ref { .. }) {
                return Err(format!(
                    "admin resource {:?}: filter {c:?} must be a boolean, choice, date or reference field",
                    self.slug
                ));
            }
        }
        let o = self.ordering.trim_start_matches('-');
        self.field(o).ok_or_else(|| err("ordering", o))?;
        for f in &self.fields {
            if let Some(t) = f.ref_target()
                && !known_slugs.contains(&t)
            {
                return Err(format!(
                    "admin resource {:?}: field {:?} refers to unknown resource {t:?}",
                    self.slug, f.name
                ));
            }
        }
        if self.per_page == 0 {
            return Err(format!("admin resource {:?}: per_page must be positive", self.slug));
        }
        Ok(())
    }
}

/// Context for building a record from a submitted form.
pub struct FormCtx<'a, 'b, 'c> {
    pub currency: Currency,
    pub today: chrono::NaiveDate,
    pub tx: &'a Tx<'b, 'c>,
}

/// Submitted values by field name, already parsed per [`Kind`]. Read-only fields are absent.
pub type Values = std::collections::HashMap<&'static str, Value>;

/// A record type that has admin pages.
pub trait AdminRecord: Entity {
    fn def() -> ResourceDef;
    /// How a record is named in lists, pickers and breadcrumbs.
    fn label(&self) -> String;
    /// Builds the record from a form (or CSV row). `old` is the stored record when editing.
    /// Reports every problem as a field error.
    fn from_values(values: &Values, old: Option<&Self>, ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors>;
    /// Clears a reference to a deleted record (for [`OnDelete::Clear`]).
    fn clear_ref(&mut self, _field: &str, _target: u64) -> bool {
        false
    }
}

/// Helpers for `from_values` implementations.
pub mod take {
    use super::*;
    use chrono::NaiveDate;

    pub fn text(v: &Values, name: &str) -> Option<String> {
        match v.get(name) {
            Some(Value::Text(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            _ => None,
        }
    }
    pub fn req_text(v: &Values, name: &str, errs: &mut FieldErrors) -> String {
        text(v, name).unwrap_or_else(|| {
            errs.add(name, "This field is required.");
            String::new()
        })
    }
    pub fn date(v: &Values, name: &str) -> Option<NaiveDate> {
        match v.get(name) {
            Some(Value::Date(d)) => Some(*d),
            _ => None,
        }
    }
    pub fn boolean(v: &Values, name: &str) -> bool {
        matches!(v.get(name), Some(Value::Bool(true)))
    }
    pub fn int(v: &Values, name: &str) -> Option<i64> {
        match v.get(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    pub fn reference(v: &Values, name: &str) -> Option<u64> {
        match v.get(name) {
            Some(Value::Ref(i)) => Some(*i),
            _ => None,
        }
    }
    pub fn refs(v: &Values, name: &str) -> Vec<u64> {
        match v.get(name) {
            Some(Value::Refs(i)) => i.clone(),
            _ => vec![],
        }
    }
    pub fn texts(v: &Values, name: &str) -> Vec<String> {
        match v.get(name) {
            Some(Value::Texts(t)) => t.clone(),
            _ => vec![],
        }
    }
    pub fn money(v: &Values, name: &str) -> Option<crate::money::Money> {
        match v.get(name) {
            Some(Value::Money(m)) => Some(*m),
            _ => None,
        }
    }
}
