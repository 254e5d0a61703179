//! The in-memory read model behind list pages.
//!
//! redb has no query engine, so each admin resource keeps its rows decoded in memory, in step
//! with every commit (it is a store `Listener`): field values, a lowercase search text and a
//! trigram index over it. A list request intersects trigram postings for the search, applies
//! filters to the candidates, then walks a cached sort order until the page is full. No request
//! decodes stored rows, and no page view scans the whole table when a search narrows it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::NaiveDate;

use super::def::{Kind, ResourceDef};
use crate::store::Value;

pub struct Row {
    pub id: u64,
    /// Values in the order of `ResourceDef::fields` (write-only fields hold `Null`).
    pub values: Vec<Value>,
    pub label: String,
    search: Box<str>,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Option<Arc<Row>>>,
    free: Vec<u32>,
    by_id: HashMap<u64, u32>,
    trigrams: HashMap<[u8; 3], Vec<u32>>,
    /// Sort orders by field index (ascending by value, then id), built lazily.
    orders: HashMap<usize, Arc<Vec<u32>>>,
    len: usize,
}

pub struct ListModel {
    search_idx: Vec<usize>,
    inner: RwLock<Inner>,
}

/// A filter on one field, from the query string.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Equal to this value; `Value::Null` matches empty.
    Eq(usize, Value),
    /// A reference list contains this id.
    Contains(usize, u64),
    DateRange(usize, Option<NaiveDate>, Option<NaiveDate>),
}

impl Filter {
    fn matches(&self, row: &Row) -> bool {
        match self {
            Filter::Eq(i, v) => match (&row.values[*i], v) {
                (Value::Bool(false), Value::Null) => true,
                (a, b) => a == b,
            },
            Filter::Contains(i, id) => matches!(&row.values[*i], Value::Refs(ids) if ids.contains(id)),
            Filter::DateRange(i, from, to) => match &row.values[*i] {
                Value::Date(d) => from.is_none_or(|f| *d >= f) && to.is_none_or(|t| *d <= t),
                _ => false,
            },
        }
    }
}

pub struct Query<'a> {
    pub search: &'a str,
    pub filters: &'a [Filter],
    pub sort_field: usize,
    pub descending: bool,
    pub offset: usize,
    /// `None` returns every match (CSV export).
    pub limit: Option<usize>,
}

pub struct Page {
    pub rows: Vec<Arc<Row>>,
    /// Number of matching rows.
    pub total: usize,
}

fn trigrams(s: &str) -> impl Iterator<Item = [u8; 3]> + '_ {
    s.as_bytes().windows(3).map(|w| [w[0], w[1], w[2]])
}

impl ListModel {
    pub fn new(def: &ResourceDef) -> Self {
        let search_idx = def.search_fields.iter().filter_map(|f| def.field_index(f)).collect();
        ListModel { search_idx, inner: RwLock::new(Inner::default()) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: u64) -> Option<Arc<Row>> {
        let g = self.read();
        g.by_id.get(&id).and_then(|s| g.slots[*s as usize].clone())
    }

    pub fn label(&self, id: u64) -> Option<String> {
        self.get(id).map(|r| r.label.clone())
    }

    /// Every row, in id order (small tables: choices in filters and pickers).
    pub fn all(&self) -> Vec<Arc<Row>> {
        let g = self.read();
        let mut v: Vec<Arc<Row>> = g.slots.iter().flatten().cloned().collect();
        v.sort_by_key(|r| r.id);
        v
    }

    /// Inserts or replaces a row.
    pub fn upsert(&self, id: u64, values: Vec<Value>, label: String) {
        let mut search = String::new();
        for &i in &self.search_idx {
            if let Some(v) = values.get(i) {
                search.push_str(&v.plain().to_lowercase());
                search.push('\u{1}');
            }
        }
        let row = Arc::new(Row { id, values, label, search: search.into_boxed_str() });
        let mut g = self.write();
        if let Some(slot) = g.by_id.get(&id).copied() {
            Self::unindex(&mut g, slot);
            g.slots[slot as usize] = Some(row);
            Self::index(&mut g, slot);
        } else {
            let slot = match g.free.pop() {
                Some(s) => {
                    g.slots[s as usize] = Some(row);
                    s
                }
                None => {
                    g.slots.push(Some(row));
                    (g.slots.len() - 1) as u32
                }
            };
            g.by_id.insert(id, slot);
            g.len += 1;
            Self::index(&mut g, slot);
        }
        g.orders.clear();
    }

    pub fn remove(&self, id: u64) {
        let mut g = self.write();
        if let Some(slot) = g.by_id.remove(&id) {
            Self::unindex(&mut g, slot);
            g.slots[slot as usize] = None;
            g.free.push(slot);
            g.len -= 1;
            g.orders.clear();
        }
    }

    pub fn clear(&self) {
        *self.write() = Inner::default();
    }

    fn index(g: &mut Inner, slot: u32) {
        let Some(row) = g.slots[slot as usize].clone() else { return };
        let mut grams: Vec<[u8; 3]> = trigrams(&row.search).collect();
        grams.sort_unstable();
        grams.dedup();
        for t in grams {
            let list = g.trigrams.entry(t).or_default();
            if let Err(pos) = list.binary_search(&slot) {
                list.insert(pos, slot);
            }
        }
    }

    fn unindex(g: &mut Inner, slot: u32) {
        let Some(row) = g.slots[slot as usize].clone() else { return };
        for t in trigrams(&row.search) {
            if let Some(list) = g.trigrams.get_mut(&t)
                && let Ok(pos) = list.binary_search(&slot)
            {
                list.remove(pos);
            }
        }
    }

    fn order(&self, field: usize) -> Arc<Vec<u32>> {
        if let Some(o) = self.read().orders.get(&field) {
            return o.clone();
        }
        let mut g = self.write();
        if let Some(o) = g.orders.get(&field) {
            return o.clone();
        }
        let mut slots: Vec<u32> = g.by_id.values().copied().collect();
        slots.sort_by(|a, b| {
            let (ra, rb) = (g.slots[*a as usize].as_ref(), g.slots[*b as usize].as_ref());
            match (ra, rb) {
                (Some(ra), Some(rb)) => ra.values[field].sort_cmp(&rb.values[field]).then(ra.id.cmp(&rb.id)),
                _ => std::cmp::Ordering::Equal,
            }
        });
        let o = Arc::new(slots);
        g.orders.insert(field, o.clone());
        o
    }

    /// Candidate slots for a search text: `None` means "every row".
    fn candidates(g: &Inner, needle: &str) -> Option<Vec<u32>> {
        if needle.len() < 3 {
            return None;
        }
        let mut lists: Vec<&Vec<u32>> = Vec::new();
        for t in trigrams(needle) {
            match g.trigrams.get(&t) {
                Some(l) => lists.push(l),
                None => return Some(vec![]),
            }
        }
        lists.sort_by_key(|l| l.len());
        let mut acc: Vec<u32> = lists[0].clone();
        for l in &lists[1..] {
            acc.retain(|s| l.binary_search(s).is_ok());
            if acc.is_empty() {
                break;
            }
        }
        Some(acc)
    }

    pub fn query(&self, q: &Query<'_>) -> Page {
        let needle = q.search.trim().to_lowercase();
        let order = self.order(q.sort_field);
        let g = self.read();
        let accept = |row: &Row| {
            (needle.is_empty() || memchr::memmem::find(row.search.as_bytes(), needle.as_bytes()).is_some())
                && q.filters.iter().all(|f| f.matches(row))
        };
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        let mut total = 0usize;
        let cands = if needle.is_empty() { None } else { Self::candidates(&g, &needle) };
        match cands {
            // A narrowed candidate set: filter it, then sort just the matches.
            Some(c) if c.len() * 8 < g.len.max(1) => {
                let mut m: Vec<&Arc<Row>> =
                    c.iter().filter_map(|s| g.slots[*s as usize].as_ref()).filter(|r| accept(r)).collect();
                m.sort_by(|a, b| a.values[q.sort_field].sort_cmp(&b.values[q.sort_field]).then(a.id.cmp(&b.id)));
                if q.descending {
                    m.reverse();
                }
                total = m.len();
                rows = m.into_iter().skip(q.offset).take(limit).cloned().collect();
            }
            cands => {
                let mask: Option<Vec<bool>> = cands.map(|c| {
                    let mut mask = vec![false; g.slots.len()];
                    for s in c {
                        mask[s as usize] = true;
                    }
                    mask
                });
                let unfiltered = needle.is_empty() && q.filters.is_empty();
                let mut visit = |slot: &u32| {
                    if let Some(m) = &mask
                        && !m[*slot as usize]
                    {
                        return;
                    }
                    let Some(row) = g.slots[*slot as usize].as_ref() else { return };
                    if !unfiltered && !accept(row) {
                        return;
                    }
                    if total >= q.offset && rows.len() < limit {
                        rows.push(row.clone());
                    }
                    total += 1;
                };
                if unfiltered {
                    // Every row matches: jump straight to the page.
                    total = g.len;
                    let iter: Box<dyn Iterator<Item = &u32>> =
                        if q.descending { Box::new(order.iter().rev()) } else { Box::new(order.iter()) };
                    rows = iter.skip(q.offset).take(limit).filter_map(|s| g.slots[*s as usize].clone()).collect();
                } else if q.descending {
                    order.iter().rev().for_each(&mut visit);
                } else {
                    order.iter().for_each(&mut visit);
                }
            }
        }
        Page { rows, total }
    }

    /// Rows whose reference field `field` points at `target` (for delete confirmations).
    pub fn referencing(&self, field: usize, target: u64) -> Vec<Arc<Row>> {
        let g = self.read();
        g.slots
            .iter()
            .flatten()
            .filter(|r| match &r.values[field] {
                Value::Ref(id) => *id == target,
                Value::Refs(ids) => ids.contains(&target),
                _ => false,
            })
            .cloned()
            .collect()
    }
}

/// Kinds a field can be sorted by in lists.
pub fn sortable(kind: &Kind) -> bool {
    !matches!(kind, Kind::Refs { .. } | Kind::Permissions | Kind::Password | Kind::LongText)
}

#[cfg(test)]
mod tests {
    use super::super::def::{Field, Kind, ResourceDef};
    use super::*;

    fn def() -> ResourceDef {
        ResourceDef {
            slug: "t",
            module: "T",
            singular: "thing",
            plural: "things",
            fields: vec![Field::new("name", "Name", Kind::Text), Field::new("active", "Active", Kind::Bool)],
            list_display: vec!["name"],
            search_fields: vec!["name"],
            filters: vec!["active"],
            ordering: "name",
            per_page: 10,
            importable: true,
        }
    }

    fn model(n: u64) -> ListModel {
        let m = ListModel::new(&def());
        for i in 1..=n {
            let name = format!("person {i:05} {}", if i % 7 == 0 { "Johansson" } else { "Smith" });
            m.upsert(i, vec![Value::text(name.clone()), Value::Bool(i % 2 == 0)], name);
        }
        m
    }

    fn q<'a>(search: &'a str, filters: &'a [Filter], offset: usize, descending: bool) -> Query<'a> {
        Query { search, filters, sort_field: 0, descending, offset, limit: Some(10) }
    }

    #[test]
    fn search_and_filters_agree_with_a_plain_scan() {
        let m = model(1000);
        let f = [Filter::Eq(1, Value::Bool(true))];
        let page = m.query(&q("johans", &f, 0, false));
        let expected: Vec<u64> = (1..=1000).filter(|i| i % 7 == 0 && i % 2 == 0).collect();
        assert_eq!(page.total, expected.len());
        assert_eq!(page.rows.iter().map(|r| r.id).collect::<Vec<_>>(), expected[..10].to_vec());
        // Short needles fall back to a scan and still match substrings.
        assert_eq!(m.query(&q("n 0000", &[], 0, false)).total, 9);
    }

    #[test]
    fn pages_walk_the_sort_order_both_ways() {
        let m = model(25);
        let last = m.query(&q("", &[], 20, false));
        assert_eq!(last.total, 25);
        assert_eq!(last.rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![21, 22, 23, 24, 25]);
        let first_desc = m.query(&q("", &[], 0, true));
        assert_eq!(first_desc.rows[0].id, 25);
    }

    #[test]
    fn updates_and_removals_are_seen_by_search() {
        let m = model(10);
        m.upsert(3, vec![Value::text("renamed zebra"), Value::Bool(false)], "renamed zebra".into());
        assert_eq!(m.query(&q("zebra", &[], 0, false)).total, 1);
        assert_eq!(m.query(&q("00003", &[], 0, false)).total, 0);
        m.remove(3);
        assert_eq!(m.query(&q("zebra", &[], 0, false)).total, 0);
        assert_eq!(m.len(), 9);
    }
}
