//! CPU cost of admin list queries on the in-memory read model at 100,000 rows: the first
//! page, a deep page, a search, a filter, and a search with a filter. Run with
//! `cargo bench --bench list_query`.

use std::hint::black_box;

use bravely::admin::list::{Filter, ListModel, Query};
use bravely::admin::{AdminRecord, def::ResourceDef};
use bravely::people::Employee;
use bravely::store::Value;
use criterion::{Criterion, criterion_group, criterion_main};

const FIRST: &[&str] =
    &["Ada", "Ben", "Chloe", "Dawid", "Ewa", "Filip", "Hanna", "Igor", "Julia", "Karol", "Lena", "Marek"];
const LAST: &[&str] = &["Nowak", "Johansson", "Smith", "Garcia", "Müller", "Rossi", "Berg", "Silva", "Novak", "Larsen"];
const TITLES: &[&str] = &["Software Engineer", "QA Engineer", "Designer", "Project Manager", "Data Engineer"];

fn model(def: &ResourceDef, n: u64) -> ListModel {
    let m = ListModel::new(def);
    for i in 0..n {
        let first = FIRST[(i * 7 % FIRST.len() as u64) as usize];
        let last = LAST[(i * 13 % LAST.len() as u64) as usize];
        let name = format!("{first} {last}");
        let values = vec![
            Value::text(name.clone()),
            Value::text(format!("{}.{}.{i}@example.com", first.to_lowercase(), last.to_lowercase())),
            Value::text(TITLES[(i % TITLES.len() as u64) as usize]),
            Value::text(["Web", "Data", "Mobile"][(i % 3) as usize]),
            Value::Date(
                chrono::NaiveDate::from_ymd_opt(2015 + (i % 10) as i32, 1 + (i % 12) as u32, 1).unwrap_or_default(),
            ),
            Value::Null,
            Value::Bool(i % 8 != 0),
        ];
        m.upsert(i + 1, values, name);
    }
    m
}

fn bench(c: &mut Criterion) {
    let def = Employee::def();
    let m = model(&def, 100_000);
    let active = def.field_index("active").unwrap_or(0);
    let only_active = [Filter::Eq(active, Value::Bool(true))];
    let q = |search: &'static str, filters: &'static [Filter], offset: usize, sort: usize| Query {
        search,
        filters,
        sort_field: sort,
        descending: false,
        offset,
        limit: Some(100),
    };
    let filters: &'static [Filter] = Box::leak(Box::new(only_active));
    let mut g = c.benchmark_group("list_100k");
    g.bench_function("page_1", |b| b.iter(|| black_box(m.query(&q("", &[], 0, 0)))));
    g.bench_function("page_500", |b| b.iter(|| black_box(m.query(&q("", &[], 49_900, 0)))));
    g.bench_function("search_johans", |b| b.iter(|| black_box(m.query(&q("johans", &[], 0, 0)))));
    g.bench_function("search_rare_email", |b| b.iter(|| black_box(m.query(&q("ada.nowak.4", &[], 0, 0)))));
    g.bench_function("filter_active", |b| b.iter(|| black_box(m.query(&q("", filters, 0, 0)))));
    g.bench_function("search_son_and_filter", |b| b.iter(|| black_box(m.query(&q("son", filters, 0, 0)))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
