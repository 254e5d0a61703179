//! A field value as the generic layers (audit diffs, admin forms and lists, CSV) see it.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Money;

/// Stored inside audit entries, so its encoding is pinned by the golden-bytes test:
/// add variants only at the end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub enum Value {
    #[default]
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Date(NaiveDate),
    Time(DateTime<Utc>),
    Money(Money),
    Ref(u64),
    Refs(Vec<u64>),
    Texts(Vec<String>),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Value {
        let s = s.into();
        if s.is_empty() { Value::Null } else { Value::Text(s) }
    }

    pub fn opt_text(s: &Option<String>) -> Value {
        s.as_ref().map(|s| Value::text(s.clone())).unwrap_or(Value::Null)
    }

    pub fn opt_date(d: Option<NaiveDate>) -> Value {
        d.map(Value::Date).unwrap_or(Value::Null)
    }

    pub fn opt_ref(r: Option<u64>) -> Value {
        r.map(Value::Ref).unwrap_or(Value::Null)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_ref_id(&self) -> Option<u64> {
        match self {
            Value::Ref(id) => Some(*id),
            _ => None,
        }
    }

    /// Plain text rendering, used in CSV export and diffs. References show as their id;
    /// the web layer replaces them with labels.
    pub fn plain(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Text(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            Value::Date(d) => {
                let mut s = String::with_capacity(10);
                crate::admin::form::push_date(&mut s, *d);
                s
            }
            Value::Time(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            Value::Money(m) => m.to_string(),
            Value::Ref(id) => id.to_string(),
            Value::Refs(ids) => ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            Value::Texts(t) => t.join(", "),
        }
    }

    /// Total order for sorting lists; nulls sort last in ascending order.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Text(a), Text(b)) => cmp_text(a, b),
            (Int(a), Int(b)) => a.cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (Money(a), Money(b)) => (a.currency, a.minor).cmp(&(b.currency, b.minor)),
            (Ref(a), Ref(b)) => a.cmp(b),
            (a, b) => a.plain().cmp(&b.plain()),
        }
    }

    /// Bytes a secondary index keys this value by; `None` for values that are not indexed.
    pub fn index_keys(&self) -> Vec<Vec<u8>> {
        match self {
            Value::Null => vec![],
            Value::Text(s) => {
                let n = s.trim().to_lowercase();
                if n.is_empty() { vec![] } else { vec![n.into_bytes()] }
            }
            Value::Int(i) => vec![i.to_be_bytes().to_vec()],
            Value::Bool(b) => vec![vec![u8::from(*b)]],
            Value::Date(d) => vec![d.format("%Y-%m-%d").to_string().into_bytes()],
            Value::Time(t) => vec![t.timestamp_micros().to_be_bytes().to_vec()],
            Value::Money(m) => vec![m.to_string().into_bytes()],
            Value::Ref(id) => vec![id.to_be_bytes().to_vec()],
            Value::Refs(ids) => ids.iter().map(|id| id.to_be_bytes().to_vec()).collect(),
            Value::Texts(t) => t.iter().map(|s| s.to_lowercase().into_bytes()).collect(),
        }
    }
}

/// Case-insensitive comparison that does not allocate for ASCII.
pub fn cmp_text(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        let (x, y) = (a.as_bytes(), b.as_bytes());
        for (p, q) in x.iter().zip(y) {
            match p.to_ascii_lowercase().cmp(&q.to_ascii_lowercase()) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        return x.len().cmp(&y.len()).then_with(|| x.cmp(y));
    }
    let mut ai = a.chars().flat_map(char::to_lowercase);
    let mut bi = b.chars().flat_map(char::to_lowercase);
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(&y) {
                Ordering::Equal => continue,
                o => return o,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_sort_last_and_text_ignores_case() {
        let mut v = [Value::Null, Value::text("beta"), Value::text("Alpha")];
        v.sort_by(Value::sort_cmp);
        assert_eq!(v[0], Value::text("Alpha"));
        assert_eq!(v[2], Value::Null);
    }

    #[test]
    fn unique_text_keys_are_normalised() {
        assert_eq!(Value::text(" Ana@Example.com ").index_keys(), vec![b"ana@example.com".to_vec()]);
        assert!(Value::text("").index_keys().is_empty());
    }
}
