//! The audit log: who changed which record when, with the field-level diff.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::Entity;
use super::value::Value;

/// Who is acting. Requests act as a signed-in user; CLI commands and jobs as the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<u64>,
    pub label: String,
}

impl Actor {
    pub fn system(what: &str) -> Actor {
        Actor { user_id: None, label: format!("system ({what})") }
    }
    pub fn user(id: u64, label: impl Into<String>) -> Actor {
        Actor { user_id: Some(id), label: label.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AuditAction {
    Create,
    Update,
    Delete,
    /// A named domain action such as "assign" or "restore".
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor_id: Option<u64>,
    pub actor_label: String,
    pub table: String,
    pub record: u64,
    pub action: AuditAction,
    pub changes: Vec<FieldChange>,
    pub note: Option<String>,
}

crate::envelope_v1!(AuditEntry, AuditEntryRecord);

impl Entity for AuditEntry {
    const TABLE: &'static str = "audit.log";
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("at", Value::Time(self.at)),
            ("actor", Value::text(self.actor_label.clone())),
            ("table", Value::text(self.table.clone())),
            ("record", Value::Int(self.record as i64)),
        ]
    }
}

/// Field-level differences between two snapshots, in the order of `new`.
pub fn diff(old: &[(&'static str, Value)], new: &[(&'static str, Value)]) -> Vec<FieldChange> {
    let mut out = Vec::new();
    for (name, nv) in new {
        let ov = old.iter().find(|(n, _)| n == name).map(|(_, v)| v).unwrap_or(&Value::Null);
        if ov != nv {
            out.push(FieldChange { field: (*name).to_string(), old: ov.clone(), new: nv.clone() });
        }
    }
    for (name, ov) in old {
        if !new.iter().any(|(n, _)| n == name) && !ov.is_null() {
            out.push(FieldChange { field: (*name).to_string(), old: ov.clone(), new: Value::Null });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_only_changed_fields() {
        let old = vec![("name", Value::text("Ana")), ("title", Value::text("Dev"))];
        let new = vec![("name", Value::text("Ana")), ("title", Value::text("Lead"))];
        let d = diff(&old, &new);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "title");
        assert_eq!(d[0].old, Value::text("Dev"));
        assert_eq!(d[0].new, Value::text("Lead"));
    }
}
