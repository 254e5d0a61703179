//! Realistic demo data: a software company's people, item kinds, items and assignments, and
//! a few months of `/thanks` between them.
//! Deterministic (seeded), fast enough for 10,000 employees and 20,000 items.

use std::collections::HashMap;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Weekday};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::AppResult;
use crate::inventory::{Item, ItemKind, service};
use crate::kudos::model::{SlackUser, Thanks};
use crate::kudos::service::{Thanker, ensure_user, give_at};
use crate::kudos::slack::Mention;
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
    /// `/thanks` commands over the last four months, between the new active employees.
    pub thanks: usize,
}

/// Reasons people give in the demo's `/thanks`.
const REASONS: &[&str] = &[
    "shipping the release on Friday without drama",
    "reviewing my pull request within the hour",
    "the onboarding session for the new joiners",
    "finding the flaky test that blocked CI all week",
    "covering my on-call shift",
    "the client demo that won us the extension",
    "pairing on the invoicing bug",
    "organising the team lunch",
    "the clear write-up of the outage",
    "answering every question in #help this week",
    "the migration plan, which worked first time",
    "staying late to get the hotfix out",
    "mentoring me through my first estimate",
    "the new dashboard everyone now uses",
    "taking notes in the planning meeting",
];

const CHANNELS: &[&str] = &["C0DEMOGEN1", "C0DEMODEV2", "C0DEMOSAL3", "C0DEMOOPS4"];

/// People outside the company who are on its Slack: thanks to them are kept until an admin
/// maps them to an employee.
const GUESTS: &[(&str, &str)] = &[("U0DEMOGST1", "sam.contractor"), ("U0DEMOGST2", "lee.agency")];

/// Fills the store; `progress` is told (done, total) as rows go in.
pub fn fill(
    store: &Store,
    plan: &Plan,
    currency: Currency,
    today: NaiveDate,
    tz: Tz,
    progress: &dyn Fn(u64, u64),
) -> AppResult<Filled> {
    let mut rng = StdRng::seed_from_u64(20_240_601);
    let actor = Actor::system("bravely demo");
    let total = (plan.employees + plan.items + KINDS.len() + plan.thanks) as u64;
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
    // (id, name, work email) of the new active employees: the people on Slack.
    let mut slack_people: Vec<(u64, String, String)> = Vec::new();
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
            for e in batch {
                ids.push((tx.insert(&e)?, e));
            }
            Ok(ids)
        })?;
        for (id, e) in ids.into_iter().filter(|(_, e)| e.active) {
            employee_ids.push(id);
            slack_people.push((id, e.name, e.work_email));
        }
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

    let thanks = fill_thanks(store, &actor, plan.thanks, &slack_people, today, tz, &mut rng, &mut |n| {
        done += n;
        progress(done, total);
    })?;
    Ok(Filled { thanks })
}

/// What [`fill`] added beyond the plan's exact counts.
pub struct Filled {
    /// `/thanks` recorded (a few planned ones can be skipped by the rules).
    pub thanks: usize,
}

/// `count` `/thanks` over the last four months among `people` (and the [`GUESTS`]), through
/// the same rules as a live one ([`give_at`]): each person's Slack user is matched to their
/// employee by email, nobody thanks themselves, and nobody gives more than two a day.
#[allow(clippy::too_many_arguments)]
fn fill_thanks(
    store: &Store,
    actor: &Actor,
    count: usize,
    people: &[(u64, String, String)],
    today: NaiveDate,
    tz: Tz,
    rng: &mut StdRng,
    progress: &mut dyn FnMut(u64),
) -> AppResult<usize> {
    if count == 0 || people.len() < 2 {
        return Ok(0);
    }
    // Slack handles like "ada.nowak"; the id is derived from the employee's id, so a second
    // run of the demo finds the same users.
    let users: Vec<(String, String, Option<String>)> = people
        .iter()
        .map(|(id, name, email)| {
            let handle: Vec<String> = name.split(' ').map(|w| ascii(w).to_lowercase()).collect();
            (format!("UDEMO{id:06}"), handle.join("."), Some(email.clone()))
        })
        .chain(GUESTS.iter().map(|(id, name)| (id.to_string(), name.to_string(), None)))
        .collect();
    let first_trigger = store.read()?.last_id(Thanks::TABLE)? + 1;
    let setup = users.clone();
    store.write_blocking(actor.clone(), move |tx| {
        for (id, name, email) in &setup {
            if tx.find_unique::<SlackUser>("slack_id", id)?.is_none() {
                ensure_user(tx, id, name, email.as_deref(), false)?;
            }
        }
        Ok(())
    })?;

    // Working days of the last four months, up to yesterday (the demo's today is still young).
    let days: Vec<NaiveDate> = (1..=120)
        .map(|d| today - Duration::days(d))
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect();
    let mut given: HashMap<(usize, NaiveDate), u8> = HashMap::new();
    let mut planned = Vec::with_capacity(count);
    let mut attempts = 0;
    while planned.len() < count && attempts < count * 20 {
        attempts += 1;
        // Guests receive now and then but do not give (they are not employees).
        let from = rng.random_range(0..people.len());
        let day = days[rng.random_range(0..days.len())];
        let slot = given.entry((from, day)).or_default();
        if *slot >= 2 {
            continue;
        }
        let mut to = vec![];
        let how_many = if rng.random_ratio(1, 5) { 2 } else { 1 };
        while to.len() < how_many {
            let t = if rng.random_ratio(1, 25) {
                people.len() + rng.random_range(0..GUESTS.len())
            } else {
                rng.random_range(0..people.len())
            };
            if t != from && !to.contains(&t) {
                to.push(t);
            }
        }
        let Some(at) = tz
            .with_ymd_and_hms(day.year(), day.month(), day.day(), rng.random_range(9..18), rng.random_range(0..60), 0)
            .single()
        else {
            continue;
        };
        *slot += 1;
        let at = at.with_timezone(&chrono::Utc);
        planned.push((
            from,
            to,
            REASONS[rng.random_range(0..REASONS.len())],
            CHANNELS[rng.random_range(0..CHANNELS.len())],
            at,
        ));
    }
    planned.sort_by_key(|p| p.4);

    let mut trigger = first_trigger;
    let mut recorded = 0;
    for chunk in planned.chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|(from, to, reason, channel, at)| {
                let t = trigger;
                trigger += 1;
                (
                    users[*from].clone(),
                    to.iter()
                        .map(|i| Mention { id: users[*i].0.clone(), name: users[*i].1.clone() })
                        .collect::<Vec<_>>(),
                    reason.to_string(),
                    channel.to_string(),
                    *at,
                    format!("demo{t}"),
                )
            })
            .collect();
        let len = batch.len() as u64;
        recorded += store.write_blocking(actor.clone(), move |tx| {
            let mut recorded = 0;
            for ((id, name, _), mentions, reason, channel, at, trigger) in &batch {
                let from = Thanker { id, name, channel, trigger, request: "" };
                match give_at(tx, &from, mentions, reason, tz, *at) {
                    Ok(crate::kudos::service::Outcome::Recorded { .. }) => recorded += 1,
                    // A rule (an admin's lower daily cap, a guest marked as a bot) skips
                    // that one thanks, as it would in Slack.
                    Ok(_) | Err(crate::error::AppError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(recorded)
        })?;
        progress(len);
    }
    Ok(recorded)
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
