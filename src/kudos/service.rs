//! The rules of thanking, and the points that follow. Runs inside write transactions.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

use super::model::{Given, KudosSettings, Points, Received, SlackUser, Thanks};
use super::slack::Mention;
use crate::error::AppError;
use crate::people::Employee;
use crate::store::{ReadTx, StoreError, Tx, Value};

/// A thanks that breaks a rule; the text goes back to the person who typed it.
pub fn rule(msg: impl Into<String>) -> AppError {
    AppError::Conflict(msg.into())
}

pub fn month_of(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    format!("{:04}-{:02}", local.year(), local.month())
}

pub fn settings(tx: &Tx<'_, '_>) -> Result<KudosSettings, StoreError> {
    Ok(tx.get::<KudosSettings>(1)?.unwrap_or_default())
}

pub fn settings_read(r: &ReadTx) -> Result<KudosSettings, StoreError> {
    Ok(r.get::<KudosSettings>(1)?.unwrap_or_default())
}

/// Bots, Slackbot and workflow users cannot be thanked.
pub fn is_bot_id(id: &str) -> bool {
    id == "USLACKBOT" || id.starts_with('B')
}

/// The Slack user for a mention, created on first sight (and matched to an employee by email
/// when `email` is known).
pub fn ensure_user(
    tx: &mut Tx<'_, '_>,
    id: &str,
    name: &str,
    email: Option<&str>,
    is_bot: bool,
) -> Result<SlackUser, AppError> {
    if let Some((sid, mut u)) = tx.find_unique::<SlackUser>("slack_id", id)? {
        let mut changed = false;
        if let Some(e) = email
            && u.email.as_deref() != Some(e)
        {
            u.email = Some(e.to_string());
            changed = true;
        }
        if u.employee.is_none()
            && let Some(e) = &u.email
            && let Some((emp, _)) = tx.find_unique::<Employee>("work_email", e)?
        {
            u.employee = Some(emp);
            changed = true;
        }
        if is_bot && !u.is_bot {
            u.is_bot = true;
            changed = true;
        }
        if changed {
            tx.update(sid, &u)?;
        }
        return Ok(u);
    }
    let employee = match email {
        Some(e) => tx.find_unique::<Employee>("work_email", e)?.map(|(id, _)| id),
        None => None,
    };
    let u = SlackUser {
        slack_id: id.to_string(),
        name: name.to_string(),
        email: email.map(str::to_string),
        employee,
        is_bot: is_bot || is_bot_id(id),
    };
    tx.insert(&u)?;
    Ok(u)
}

pub struct Thanker<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub channel: &'a str,
    pub trigger: &'a str,
    /// What identifies the signed request ([`super::slack::request_key`]), when it came from
    /// Slack: a replay of the same request (same signature and timestamp) stores nothing, with
    /// or without a `trigger_id`.
    pub request: &'a str,
}

impl Thanker<'_> {
    /// The idempotency key of this request's thanks to `receiver`, if the request has one.
    fn key_for(&self, receiver: &str) -> Option<String> {
        if !self.trigger.is_empty() {
            Some(format!("{}:{receiver}", self.trigger))
        } else if !self.request.is_empty() {
            Some(format!("req:{}:{receiver}", self.request))
        } else {
            None
        }
    }
}

/// What happened to a `/thanks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Recorded {
        people: Vec<String>,
        given: i64,
        received: i64,
    },
    /// A retry of a request already recorded.
    Duplicate {
        people: Vec<String>,
    },
}

/// Records `from` thanking `people` for `reason` now, enforcing the rules.
pub fn give(
    tx: &mut Tx<'_, '_>,
    from: &Thanker<'_>,
    people: &[Mention],
    reason: &str,
    tz: Tz,
) -> Result<Outcome, AppError> {
    let now = tx.now();
    give_at(tx, from, people, reason, tz, now)
}

/// [`give`] at a given time (the day cap and the month are those of `now` in `tz`): the
/// demo data's history goes through the same rules as a live `/thanks`.
pub fn give_at(
    tx: &mut Tx<'_, '_>,
    from: &Thanker<'_>,
    people: &[Mention],
    reason: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Outcome, AppError> {
    let ids: Vec<String> = people.iter().map(|p| p.id.clone()).collect();
    if people.iter().any(|p| p.id == from.id) {
        return Err(rule("You can’t thank yourself — but thank you for being you."));
    }
    // A retry from Slack carries the same trigger id, a replay the same signed request: answer
    // as before, store nothing.
    if let Some(first) = people.first()
        && let Some(key) = from.key_for(&first.id)
        && tx.find_unique::<Thanks>("key", &key)?.is_some()
    {
        return Ok(Outcome::Duplicate { people: ids });
    }
    ensure_user(tx, from.id, from.name, None, false)?;
    for p in people {
        let u = ensure_user(tx, &p.id, &p.name, None, false)?;
        if u.is_bot {
            return Err(rule(format!("<@{}> is a bot; thank the people behind it instead.", p.id)));
        }
    }
    let s = settings(tx)?;
    let local = now.with_timezone(&tz);
    let day = local.date_naive();
    let month = month_of(now, tz);
    // Counting stops at the cap: past it, the answer is the same.
    let cap = usize::try_from(s.daily_cap.max(0)).unwrap_or(usize::MAX);
    let given_today = tx.count_by::<Thanks>("giver_day", &Value::text(format!("{}:{day}", from.id)), cap)? as i64;
    if given_today + people.len() as i64 > s.daily_cap {
        let left = (s.daily_cap - given_today).max(0);
        return Err(rule(if left == 0 {
            format!("You’ve given all {} thanks for today — that’s generous! More tomorrow.", s.daily_cap)
        } else {
            format!("You have {left} thanks left today; thank at most {left} people at once.")
        }));
    }
    for p in people {
        let t = Thanks {
            giver: from.id.to_string(),
            receiver: p.id.clone(),
            giver_name: from.name.to_string(),
            receiver_name: p.name.clone(),
            reason: reason.to_string(),
            channel: from.channel.to_string(),
            at: now,
            month: month.clone(),
            day,
            key: from.key_for(&p.id).unwrap_or_else(|| format!("{}:{}:{}", now.timestamp_micros(), from.id, p.id)),
        };
        let tid = tx.insert(&t)?;
        tx.insert_quiet(&Given(Points {
            slack_user: from.id.to_string(),
            points: s.points_for_giving,
            thanks: tid,
            month: month.clone(),
        }))?;
        tx.insert_quiet(&Received(Points {
            slack_user: p.id.clone(),
            points: s.points_for_receiving,
            thanks: tid,
            month: month.clone(),
        }))?;
    }
    Ok(Outcome::Recorded {
        people: ids,
        given: s.points_for_giving * people.len() as i64,
        received: s.points_for_receiving,
    })
}

/// Points per Slack user in a month, highest first (ties by id for a stable order).
pub fn board<T: crate::store::Entity>(
    r: &ReadTx,
    month: &str,
    points: impl Fn(&T) -> (String, i64),
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut sums: HashMap<String, i64> = HashMap::new();
    for id in r.find_by::<T>("month", &Value::text(month))? {
        if let Some(row) = r.get::<T>(id)? {
            let (user, p) = points(&row);
            *sums.entry(user).or_default() += p;
        }
    }
    let mut v: Vec<(String, i64)> = sums.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(v)
}

pub fn received_board(r: &ReadTx, month: &str) -> Result<Vec<(String, i64)>, StoreError> {
    board::<Received>(r, month, |x| (x.0.slack_user.clone(), x.0.points))
}

pub fn given_board(r: &ReadTx, month: &str) -> Result<Vec<(String, i64)>, StoreError> {
    board::<Given>(r, month, |x| (x.0.slack_user.clone(), x.0.points))
}

/// (received, given) points of one Slack user: this month and all time.
pub fn my_points(r: &ReadTx, slack_id: &str, month: &str) -> Result<[(i64, i64); 2], StoreError> {
    let mut out = [(0, 0); 2];
    for id in r.find_by::<Received>("slack_user", &Value::text(slack_id))? {
        if let Some(x) = r.get::<Received>(id)? {
            out[1].0 += x.0.points;
            if x.0.month == month {
                out[0].0 += x.0.points;
            }
        }
    }
    for id in r.find_by::<Given>("slack_user", &Value::text(slack_id))? {
        if let Some(x) = r.get::<Given>(id)? {
            out[1].1 += x.0.points;
            if x.0.month == month {
                out[0].1 += x.0.points;
            }
        }
    }
    Ok(out)
}
