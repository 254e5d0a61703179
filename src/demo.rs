//! Realistic demo data: a software company's people, item kinds, items and assignments.
//! Deterministic (seeded), fast enough for 10,000 employees and 20,000 items.

use chrono::{Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::AppResult;
use crate::inventory::{Item, ItemKind, service};
use crate::money::{Currency, Money};
use crate::people::Employee;
use crate::store::{Actor, Entity, Store};

const FIRST: &[&str] = &[
    "Ada",
    "Adam",
    "Agnieszka",
    "Alicja",
    "Amelia",
    "Anna",
    "Antoni",
    "Bartosz",
    "Ben",
    "Chloe",
    "Dawid",
    "Diego",
    "Ewa",
    "Emma",
    "Filip",
    "Gabriela",
    "Hanna",
    "Igor",
    "Iris",
    "Jakub",
    "Jan",
    "Julia",
    "Kacper",
    "Karolina",
    "Leo",
    "Lena",
    "Maja",
    "Marek",
    "Maria",
    "Mateusz",
    "Mia",
    "Michał",
    "Natalia",
    "Noah",
    "Olga",
    "Oliver",
    "Paweł",
    "Piotr",
    "Rosa",
    "Sara",
    "Szymon",
    "Tomasz",
    "Uma",
    "Wiktor",
    "Zofia",
    "Zuzanna",
    "Liam",
    "Nora",
];
const LAST: &[&str] = &[
    "Nowak",
    "Kowalski",
    "Wiśniewska",
    "Wójcik",
    "Kamińska",
    "Lewandowski",
    "Zielińska",
    "Szymański",
    "Woźniak",
    "Dąbrowski",
    "Johansson",
    "Andersson",
    "Smith",
    "Johnson",
    "Garcia",
    "Martin",
    "Bernard",
    "Dubois",
    "Rossi",
    "Bianchi",
    "Müller",
    "Schmidt",
    "Fischer",
    "Weber",
    "Novak",
    "Horvat",
    "Kovač",
    "Nielsen",
    "Jensen",
    "Hansen",
    "Larsen",
    "Olsen",
    "Peterson",
    "Carlsson",
    "Lindqvist",
    "Berg",
    "Fernandez",
    "Lopez",
    "Silva",
    "Santos",
];
const TITLES: &[&str] = &[
    "Software Engineer",
    "Senior Software Engineer",
    "Staff Engineer",
    "Frontend Developer",
    "Backend Developer",
    "QA Engineer",
    "DevOps Engineer",
    "Product Designer",
    "Project Manager",
    "Engineering Manager",
    "Data Engineer",
    "Mobile Developer",
    "Office Manager",
    "Sales Manager",
    "Accountant",
    "Recruiter",
];
const TEAMS: &[&str] = &["Platform", "Web", "Mobile", "Data", "Design", "Delivery", "Sales", "Operations"];

/// (kind, tracking, low-stock threshold, models with their typical cost in minor units)
/// A kind of item in the demo: name, tracking, low-stock threshold, models with their cost.
type DemoKind = (&'static str, &'static str, Option<i64>, &'static [(&'static str, i64)]);

const KINDS: &[DemoKind] = &[
    (
        "Laptop",
        "serialised",
        Some(3),
        &[("MacBook Pro 14\" M3", 219_900), ("ThinkPad T14 Gen 5", 149_900), ("Dell XPS 15", 189_900)],
    ),
    ("Display", "serialised", Some(2), &[("Dell U2723QE 27\"", 54_900), ("LG 27UP850 27\"", 44_900)]),
    ("Phone", "serialised", Some(1), &[("iPhone 15", 89_900), ("Pixel 8", 69_900)]),
    ("Docking station", "serialised", None, &[("CalDigit TS4", 39_900), ("Dell WD19S", 21_900)]),
    ("Headset", "counted", Some(5), &[("Jabra Evolve2 65", 19_900)]),
    ("USB-C cable", "counted", Some(10), &[("USB-C to USB-C 2 m", 1_900)]),
    ("IDE licence", "counted", Some(2), &[("JetBrains All Products seat", 68_900)]),
];

pub struct Plan {
    pub employees: usize,
    pub items: usize,
}

/// Fills the store; `progress` is told (done, total) as rows go in.
pub fn fill(
    store: &Store,
    plan: &Plan,
    currency: Currency,
    today: NaiveDate,
    progress: &dyn Fn(u64, u64),
) -> AppResult<()> {
    let mut rng = StdRng::seed_from_u64(20_240_601);
    let actor = Actor::system("bravely demo");
    let total = (plan.employees + plan.items + KINDS.len()) as u64;
    let mut done = 0u64;
    let chunk = 1000;

    let kinds: Vec<ItemKind> = KINDS
        .iter()
        .map(|(n, t, low, _)| ItemKind { name: n.to_string(), tracking: t.to_string(), low_stock: *low })
        .collect();
    let kind_ids: Vec<u64> = store.write_blocking(actor.clone(), move |tx| {
        let mut ids = Vec::new();
        for k in &kinds {
            ids.push(match tx.find_unique::<ItemKind>("name", &k.name)? {
                Some((id, _)) => id,
                None => tx.insert(k)?,
            });
        }
        Ok(ids)
    })?;
    done += KINDS.len() as u64;
    progress(done, total);

    // Numbers in work emails continue after the employees already there, so a second run adds.
    let existing = store.read()?.last_id(Employee::TABLE)? as usize;
    let mut employee_ids = Vec::with_capacity(plan.employees);
    let mut n = 0usize;
    while n < plan.employees {
        let batch: Vec<Employee> = (n..(n + chunk).min(plan.employees))
            .map(|i| {
                let first = FIRST[rng.random_range(0..FIRST.len())];
                let last = LAST[rng.random_range(0..LAST.len())];
                let start = today - Duration::days(rng.random_range(30..3650));
                let left = rng.random_ratio(1, 8);
                Employee {
                    name: format!("{first} {last}"),
                    work_email: format!(
                        "{}.{}.{}@example.com",
                        ascii(first).to_lowercase(),
                        ascii(last).to_lowercase(),
                        existing + i
                    ),
                    title: TITLES[rng.random_range(0..TITLES.len())].to_string(),
                    team: Some(TEAMS[rng.random_range(0..TEAMS.len())].to_string()),
                    start_date: start,
                    end_date: left.then(|| start + Duration::days(rng.random_range(60..900))).map(|d| d.min(today)),
                    active: !left,
                }
            })
            .collect();
        let len = batch.len();
        let ids = store.write_blocking(actor.clone(), move |tx| {
            let mut ids = Vec::new();
            for e in &batch {
                ids.push((tx.insert(e)?, e.active));
            }
            Ok(ids)
        })?;
        employee_ids.extend(ids.into_iter().filter(|(_, active)| *active).map(|(id, _)| id));
        n += len;
        done += len as u64;
        progress(done, total);
    }

    let existing_items = store.read()?.last_id(Item::TABLE)? as usize;
    let mut n = 0usize;
    while n < plan.items {
        let mut batch = Vec::new();
        for i in n..(n + chunk).min(plan.items) {
            // Most items are laptops and displays, as in a real office.
            let k = match rng.random_range(0..100) {
                0..=39 => 0,
                40..=64 => 1,
                65..=74 => 2,
                75..=84 => 3,
                85..=91 => 4,
                92..=96 => 5,
                _ => 6,
            };
            let (kname, tracking, _, models) = KINDS[k];
            let (model, cost) = models[rng.random_range(0..models.len())];
            let purchased = today - Duration::days(rng.random_range(10..1500));
            let counted = tracking == "counted";
            let item = Item {
                kind: kind_ids[k],
                name: model.to_string(),
                serial: (!counted)
                    .then(|| format!("{}-{:06}", &ascii(kname)[..2].to_uppercase(), 100_000 + existing_items + i)),
                purchase_date: Some(purchased),
                cost: Some(Money::new(cost, currency)),
                warranty_end: (!counted).then(|| purchased + Duration::days(365 * if k == 0 { 3 } else { 2 })),
                quantity: if counted { rng.random_range(10..40) } else { 1 },
                notes: None,
                assignee: None,
                assigned_qty: 0,
            };
            // Four in five serialised assets are with someone; some stock is handed out.
            let holder = if employee_ids.is_empty() || (!counted && rng.random_ratio(1, 5)) {
                None
            } else {
                Some((
                    employee_ids[rng.random_range(0..employee_ids.len())],
                    if counted { rng.random_range(1..4) } else { 1 },
                    purchased + Duration::days(rng.random_range(0..10)),
                ))
            };
            batch.push((item, holder));
        }
        let len = batch.len();
        store.write_blocking(actor.clone(), move |tx| {
            for (item, holder) in &batch {
                let id = tx.insert(item)?;
                if let Some((emp, qty, on)) = holder {
                    service::assign(tx, id, *emp, *qty, *on, None)?;
                }
            }
            Ok(())
        })?;
        n += len;
        done += len as u64;
        progress(done, total);
    }
    Ok(())
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ą' => 'a',
            'ć' => 'c',
            'ę' => 'e',
            'ł' => 'l',
            'ń' => 'n',
            'ó' => 'o',
            'ś' => 's',
            'ź' | 'ż' => 'z',
            'ü' => 'u',
            'č' => 'c',
            'Ł' => 'L',
            'Ś' => 'S',
            'Ż' | 'Ź' => 'Z',
            c => c,
        })
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}
