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

impl Row {
    fn cmp_by(&self, other: &Row, field: usize) -> std::cmp::Ordering {
        self.values[field].sort_cmp(&other.values[field]).then(self.id.cmp(&other.id))
    }
}

/// Sorted slot lists, used as posting lists.
type Postings = Vec<u32>;

#[derive(Default)]
struct Inner {
    slots: Vec<Option<Arc<Row>>>,
    free: Vec<u32>,
    by_id: HashMap<u64, u32>,
    trigrams: HashMap<[u8; 3], Postings>,
    /// Slots by (filter field, value) for equality filters on booleans, choices and references.
    equal: HashMap<(usize, Vec<u8>), Postings>,
    /// Sort orders by field index (ascending by value, then id), built on first use and kept
    /// up to date by every change.
    orders: HashMap<usize, Vec<u32>>,
    len: usize,
}

pub struct ListModel {
    search_idx: Vec<usize>,
    /// Fields with equality posting lists.
    equal_idx: Vec<usize>,
    inner: RwLock<Inner>,
}

/// A filter on one field, from the query string.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Equal to this value; `Value::Null` matches empty (and `false` for booleans).
    Eq(usize, Value),
    /// A reference list contains this id.
    Contains(usize, u64),
    DateRange(usize, Option<NaiveDate>, Option<NaiveDate>),
}

/// Posting-list key of a filter value; empty and `false` share one key.
fn normalise(v: &Value) -> Vec<u8> {
    match v {
        Value::Null | Value::Bool(false) => Vec::new(),
        other => other.index_keys().into_iter().next().unwrap_or_default(),
    }
}

impl Filter {
    fn matches(&self, row: &Row) -> bool {
        match self {
            Filter::Eq(i, v) => match (&row.values[*i], v) {
                (Value::Bool(false), Value::Null) | (Value::Null, Value::Bool(false)) => true,
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

fn post_insert(list: &mut Postings, slot: u32) {
    if list.last().is_none_or(|l| *l < slot) {
        list.push(slot);
    } else if let Err(pos) = list.binary_search(&slot) {
        list.insert(pos, slot);
    }
}

fn post_remove(list: &mut Postings, slot: u32) {
    if let Ok(pos) = list.binary_search(&slot) {
        list.remove(pos);
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Postings {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small.iter().copied().filter(|s| large.binary_search(s).is_ok()).collect()
}

impl ListModel {
    pub fn new(def: &ResourceDef) -> Self {
        let search_idx = def.search_fields.iter().filter_map(|f| def.field_index(f)).collect();
        let equal_idx = def
            .filters
            .iter()
            .filter_map(|f| def.field_index(f))
            .filter(|i| matches!(def.fields[*i].kind, Kind::Bool | Kind::Choice(_) | Kind::Ref { .. }))
            .collect();
        ListModel { search_idx, equal_idx, inner: RwLock::new(Inner::default()) }
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
        let slot = match g.by_id.get(&id).copied() {
            Some(slot) => {
                self.unindex(&mut g, slot);
                slot
            }
            None => {
                let slot = match g.free.pop() {
                    Some(s) => s,
                    None => {
                        g.slots.push(None);
                        (g.slots.len() - 1) as u32
                    }
                };
                g.by_id.insert(id, slot);
                g.len += 1;
                slot
            }
        };
        g.slots[slot as usize] = Some(row);
        self.index(&mut g, slot);
    }

    pub fn remove(&self, id: u64) {
        let mut g = self.write();
        if let Some(slot) = g.by_id.remove(&id) {
            self.unindex(&mut g, slot);
            g.slots[slot as usize] = None;
            g.free.push(slot);
            g.len -= 1;
        }
    }

    pub fn clear(&self) {
        *self.write() = Inner::default();
    }

    fn index(&self, g: &mut Inner, slot: u32) {
        let Some(row) = g.slots[slot as usize].clone() else { return };
        let mut grams: Vec<[u8; 3]> = trigrams(&row.search).collect();
        grams.sort_unstable();
        grams.dedup();
        for t in grams {
            post_insert(g.trigrams.entry(t).or_default(), slot);
        }
        for &i in &self.equal_idx {
            post_insert(g.equal.entry((i, normalise(&row.values[i]))).or_default(), slot);
        }
        let Inner { orders, slots, .. } = g;
        for (field, order) in orders.iter_mut() {
            let pos = order
                .binary_search_by(|s| match slots[*s as usize].as_ref() {
                    Some(r) => r.cmp_by(&row, *field),
                    None => std::cmp::Ordering::Less,
                })
                .unwrap_or_else(|p| p);
            order.insert(pos, slot);
        }
    }

    fn unindex(&self, g: &mut Inner, slot: u32) {
        let Some(row) = g.slots[slot as usize].clone() else { return };
        for t in trigrams(&row.search) {
            if let Some(list) = g.trigrams.get_mut(&t) {
                post_remove(list, slot);
            }
        }
        for &i in &self.equal_idx {
            if let Some(list) = g.equal.get_mut(&(i, normalise(&row.values[i]))) {
                post_remove(list, slot);
            }
        }
        let Inner { orders, slots, .. } = g;
        for (field, order) in orders.iter_mut() {
            if let Ok(pos) = order.binary_search_by(|s| match slots[*s as usize].as_ref() {
                Some(r) => r.cmp_by(&row, *field),
                None => std::cmp::Ordering::Less,
            }) {
                order.remove(pos);
            }
        }
    }

    /// Makes sure the sort order of `field` exists (built once, then maintained).
    fn ensure_order(&self, field: usize) {
        if self.read().orders.contains_key(&field) {
            return;
        }
        let mut g = self.write();
        if g.orders.contains_key(&field) {
            return;
        }
        let mut slots: Vec<u32> = g.by_id.values().copied().collect();
        slots.sort_by(|a, b| match (g.slots[*a as usize].as_ref(), g.slots[*b as usize].as_ref()) {
            (Some(ra), Some(rb)) => ra.cmp_by(rb, field),
            _ => std::cmp::Ordering::Equal,
        });
        g.orders.insert(field, slots);
    }

    /// Slots that can match the search and equality filters, or `None` for "every row".
    fn candidates(&self, g: &Inner, needle: &str, filters: &[Filter]) -> Option<Postings> {
        let mut lists: Vec<&Postings> = Vec::new();
        let empty = Postings::new();
        if needle.len() >= 3 {
            for t in trigrams(needle) {
                lists.push(g.trigrams.get(&t).unwrap_or(&empty));
            }
        }
        for f in filters {
            if let Filter::Eq(i, v) = f
                && self.equal_idx.contains(i)
            {
                lists.push(g.equal.get(&(*i, normalise(v))).unwrap_or(&empty));
            }
        }
        if lists.is_empty() {
            return None;
        }
        lists.sort_by_key(|l| l.len());
        let mut acc: Postings = lists[0].clone();
        for l in &lists[1..] {
            if acc.is_empty() {
                break;
            }
            acc = intersect(&acc, l);
        }
        Some(acc)
    }

    pub fn query(&self, q: &Query<'_>) -> Page {
        let needle = q.search.trim().to_lowercase();
        self.ensure_order(q.sort_field);
        let g = self.read();
        let Some(order) = g.orders.get(&q.sort_field) else { return Page { rows: vec![], total: 0 } };
        let accept = |row: &Row| {
            (needle.is_empty() || memchr::memmem::find(row.search.as_bytes(), needle.as_bytes()).is_some())
                && q.filters.iter().all(|f| f.matches(row))
        };
        let limit = q.limit.unwrap_or(usize::MAX);
        let page_of = |mut matched: Vec<&Arc<Row>>| {
            let total = matched.len();
            matched.sort_by(|a, b| a.cmp_by(b, q.sort_field));
            if q.descending {
                matched.reverse();
            }
            Page { rows: matched.into_iter().skip(q.offset).take(limit).cloned().collect(), total }
        };
        match self.candidates(&g, &needle, q.filters) {
            // Candidates from the indexes, checked exactly; few enough to sort directly.
            Some(c) if c.len() * 16 < g.len.max(1) || q.limit.is_none() && c.len() * 2 < g.len => {
                page_of(c.iter().filter_map(|s| g.slots[*s as usize].as_ref()).filter(|r| accept(r)).collect())
            }
            // Many candidates: mark them, then walk the sort order until the page is full.
            Some(c) => {
                let mut mask = vec![false; g.slots.len()];
                let mut total = 0;
                let exact = needle.len() < 3 || needle.is_empty();
                let only_eq = q.filters.iter().all(|f| matches!(f, Filter::Eq(i, _) if self.equal_idx.contains(i)));
                for s in c {
                    let ok = (exact && only_eq && needle.is_empty())
                        || g.slots[s as usize].as_ref().is_some_and(|r| accept(r));
                    if ok {
                        mask[s as usize] = true;
                        total += 1;
                    }
                }
                let rows = walk(&g, order, q, |s| mask[s as usize]);
                Page { rows, total }
            }
            // No index narrows it: everything, or a scan for short searches and date ranges.
            None if needle.is_empty() && q.filters.is_empty() => {
                Page { rows: walk(&g, order, q, |_| true), total: g.len }
            }
            None => page_of(g.slots.iter().flatten().filter(|r| accept(r)).collect()),
        }
    }

    /// The one record that typed text names (for pickers used without JavaScript): an exact
    /// label match, or the only search match. The error says what to do.
    pub fn resolve(&self, text: &str) -> Result<u64, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("Choose a record.".into());
        }
        let page = self.query(&Query {
            search: text,
            filters: &[],
            sort_field: 0,
            descending: false,
            offset: 0,
            limit: Some(50),
        });
        if let Some(r) = page.rows.iter().find(|r| r.label.eq_ignore_ascii_case(text)) {
            return Ok(r.id);
        }
        match page.total {
            0 => Err(format!("Nothing matches {text:?}.")),
            1 => Ok(page.rows[0].id),
            _ => Err(format!("Several records match {text:?}; type more of the name.")),
        }
    }

    /// Rows whose reference field `field` points at `target` (for delete confirmations).
    pub fn referencing(&self, field: usize, target: u64) -> Vec<Arc<Row>> {
        let g = self.read();
        if self.equal_idx.contains(&field) {
            return g
                .equal
                .get(&(field, normalise(&Value::Ref(target))))
                .map(|l| l.iter().filter_map(|s| g.slots[*s as usize].clone()).collect())
                .unwrap_or_default();
        }
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

/// The page of rows from a sort order, skipping `offset` accepted rows; stops once full.
fn walk(g: &Inner, order: &[u32], q: &Query<'_>, ok: impl Fn(u32) -> bool) -> Vec<Arc<Row>> {
    let limit = q.limit.unwrap_or(usize::MAX);
    let iter: Box<dyn Iterator<Item = &u32>> =
        if q.descending { Box::new(order.iter().rev()) } else { Box::new(order.iter()) };
    iter.filter(|s| ok(**s)).skip(q.offset).take(limit).filter_map(|s| g.slots[*s as usize].clone()).collect()
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

    /// Random inserts, updates and removals; every query must agree with a brute-force scan.
    #[test]
    fn indexes_and_orders_stay_consistent_with_a_scan() {
        let m = ListModel::new(&def());
        let mut truth: std::collections::BTreeMap<u64, (String, bool)> = Default::default();
        let mut seed = 42u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let words = ["alpha", "beta", "gamma", "delta", "Alphabet", "omega"];
        for step in 0..3000 {
            let id = next() % 300 + 1;
            if next() % 5 == 0 {
                m.remove(id);
                truth.remove(&id);
            } else {
                let name = format!("{} {}", words[(next() % 6) as usize], next() % 50);
                let active = next() % 3 == 0;
                m.upsert(id, vec![Value::text(name.clone()), Value::Bool(active)], name.clone());
                truth.insert(id, (name, active));
            }
            if step % 97 != 0 {
                continue;
            }
            for (search, only_active, desc, offset) in [
                ("alpha", false, false, 0),
                ("alph", true, true, 3),
                ("", true, false, 5),
                ("", false, true, 40),
                ("a 1", false, false, 0),
            ] {
                let filters = if only_active { vec![Filter::Eq(1, Value::Bool(true))] } else { vec![] };
                let page = m.query(&Query {
                    search,
                    filters: &filters,
                    sort_field: 0,
                    descending: desc,
                    offset,
                    limit: Some(10),
                });
                let mut expected: Vec<(&String, u64)> = truth
                    .iter()
                    .filter(|(_, (n, a))| n.to_lowercase().contains(search) && (!only_active || *a))
                    .map(|(id, (n, _))| (n, *id))
                    .collect();
                expected.sort_by(|a, b| crate::store::value::cmp_text(a.0, b.0).then(a.1.cmp(&b.1)));
                if desc {
                    expected.reverse();
                }
                assert_eq!(page.total, expected.len(), "total for {search:?} at step {step}");
                let want: Vec<u64> = expected.iter().skip(offset).take(10).map(|e| e.1).collect();
                assert_eq!(
                    page.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
                    want,
                    "page for {search:?} at step {step}"
                );
            }
        }
    }
}
