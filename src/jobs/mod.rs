//! Scheduled jobs: shared infrastructure for every module.
//!
//! Modules register [`Job`]s (a key, a cron [`Schedule`], an async function). The scheduler
//! keeps each job's run state in the database ([`JobState`]), so that:
//! - a job whose scheduled time passed while the server was down runs **once** on start
//!   (missed slots collapse into one catch-up run);
//! - a job never overlaps itself (a second start while it runs is refused);
//! - `/jobs` lists every job with its last run, result, duration and next run, and can start
//!   one now;
//! - `/readyz` fails when a *watched* job (backup policies) has not succeeded within twice
//!   its longest interval.
//!
//! Time comes from the store's injected clock: tests move a manual clock and call
//! [`Scheduler::tick`]; the server calls it from a loop ([`run_loop`]).

pub mod handlers;
pub mod integrity;
pub mod schedule;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use schedule::Schedule;

use crate::App;
use crate::store::codec::{Entity, IndexDef};
use crate::store::{Actor, Value};

/// What a job reports: a one-line summary on success, the reason on failure.
pub type JobResult = Result<String, String>;
pub type JobFuture = Pin<Box<dyn Future<Output = JobResult> + Send>>;
pub type JobFn = Arc<dyn Fn(App) -> JobFuture + Send + Sync>;

/// A registered job.
#[derive(Clone)]
pub struct Job {
    /// Stable identifier, `[a-z0-9-]`, used in URLs and the database.
    pub key: String,
    pub name: String,
    pub schedule: Schedule,
    /// When set, `/readyz` fails if the job has not succeeded within twice its interval.
    pub watched: bool,
    pub run: JobFn,
}

impl Job {
    pub fn new<F, Fut>(key: impl Into<String>, name: impl Into<String>, schedule: Schedule, run: F) -> Job
    where
        F: Fn(App) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        Job {
            key: key.into(),
            name: name.into(),
            schedule,
            watched: false,
            run: Arc::new(move |app| Box::pin(run(app))),
        }
    }

    pub fn watched(mut self) -> Job {
        self.watched = true;
        self
    }
}

/// A job's run state, one row per job key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub key: String,
    /// When the scheduler first saw this job: schedules count from here.
    pub first_seen: DateTime<Utc>,
    /// The scheduled time the last scheduled run was for.
    pub last_slot: Option<DateTime<Utc>>,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_ok: Option<bool>,
    pub last_message: String,
    pub last_duration_ms: u64,
    /// "schedule", "catch-up" or "run now by …".
    pub last_trigger: String,
    pub last_success: Option<DateTime<Utc>>,
    pub runs: u64,
    pub failures: u64,
}

crate::envelope_v1!(JobState, JobStateRecord);

impl Entity for JobState {
    const TABLE: &'static str = "jobs.state";
    const INDEXES: &'static [IndexDef] = &[IndexDef { name: "key", field: "key", unique: true }];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let time = |t: Option<DateTime<Utc>>| t.map(Value::Time).unwrap_or_default();
        vec![
            ("key", Value::text(self.key.clone())),
            ("first_seen", Value::Time(self.first_seen)),
            ("last_slot", time(self.last_slot)),
            ("last_started", time(self.last_started)),
            ("last_finished", time(self.last_finished)),
            ("last_ok", self.last_ok.map(Value::Bool).unwrap_or_default()),
            ("last_message", Value::text(self.last_message.clone())),
            ("last_duration_ms", Value::Int(self.last_duration_ms as i64)),
            ("last_trigger", Value::text(self.last_trigger.clone())),
            ("last_success", time(self.last_success)),
            ("runs", Value::Int(self.runs as i64)),
            ("failures", Value::Int(self.failures as i64)),
        ]
    }
}

impl JobState {
    fn new(key: &str, now: DateTime<Utc>) -> JobState {
        JobState {
            key: key.to_string(),
            first_seen: now,
            last_slot: None,
            last_started: None,
            last_finished: None,
            last_ok: None,
            last_message: String::new(),
            last_duration_ms: 0,
            last_trigger: String::new(),
            last_success: None,
            runs: 0,
            failures: 0,
        }
    }

    /// Started and not finished: running now, or interrupted by a stop.
    pub fn unfinished(&self) -> bool {
        match (self.last_started, self.last_finished) {
            (Some(s), Some(f)) => s > f,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// Why a run did not start.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("no job {0:?}")]
    Unknown(String),
    #[error("{0} is running already")]
    Running(String),
}

#[derive(Debug, Clone)]
enum Trigger {
    Schedule(DateTime<Utc>),
    CatchUp(DateTime<Utc>),
    Manual(String),
}

impl Trigger {
    fn label(&self) -> String {
        match self {
            Trigger::Schedule(_) => "schedule".into(),
            Trigger::CatchUp(_) => "catch-up".into(),
            Trigger::Manual(who) => format!("run now by {who}"),
        }
    }
    fn slot(&self) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Schedule(s) | Trigger::CatchUp(s) => Some(*s),
            Trigger::Manual(_) => None,
        }
    }
}

/// Outcome counters per job, for `/metrics`.
#[derive(Default)]
struct JobStats {
    runs: BTreeMap<(String, &'static str), u64>,
    last_seconds: BTreeMap<String, f64>,
    last_success_unix: BTreeMap<String, i64>,
}

pub struct Scheduler {
    jobs: Vec<Job>,
    running: Mutex<HashSet<String>>,
    stats: Mutex<JobStats>,
    /// Watched jobs already reported as stale (one alert each, until they succeed again).
    alerted_stale: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scheduler {
    /// Checks the registry: keys unique and URL-safe.
    pub fn new(jobs: Vec<Job>) -> anyhow::Result<Scheduler> {
        let mut seen = HashSet::new();
        for j in &jobs {
            if j.key.is_empty() || !j.key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                anyhow::bail!("job key {:?} must be lowercase letters, digits and dashes", j.key);
            }
            if !seen.insert(j.key.clone()) {
                anyhow::bail!("two jobs have the key {:?}", j.key);
            }
        }
        Ok(Scheduler {
            jobs,
            running: Mutex::new(HashSet::new()),
            stats: Mutex::default(),
            alerted_stale: Mutex::default(),
        })
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    pub fn job(&self, key: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.key == key)
    }

    pub fn is_running(&self, key: &str) -> bool {
        lock(&self.running).contains(key)
    }

    /// The stored state of every job (jobs not seen yet have none).
    pub fn states(&self, app: &App) -> BTreeMap<String, JobState> {
        let Ok(r) = app.store.read() else { return BTreeMap::new() };
        r.all::<JobState>().unwrap_or_default().into_iter().map(|(_, s)| (s.key.clone(), s)).collect()
    }

    /// When the job runs next on its own: its first slot after the last one handled. In the
    /// past when it is due (it then runs at the next tick).
    pub fn next_run(&self, app: &App, job: &Job, state: Option<&JobState>) -> Option<DateTime<Utc>> {
        let base = state.map(|s| s.last_slot.unwrap_or(s.first_seen)).unwrap_or_else(|| app.store.now());
        job.schedule.next_after(base, app.tz)
    }

    /// Starts every job that is due at the clock's "now" and returns their tasks. A job whose
    /// slots were missed (the server was down) runs once, for the latest missed slot.
    pub async fn tick(&self, app: &App) -> Vec<tokio::task::JoinHandle<()>> {
        let now = app.store.now();
        let states = self.states(app);
        let unseen: Vec<String> =
            self.jobs.iter().filter(|j| !states.contains_key(&j.key)).map(|j| j.key.clone()).collect();
        if !unseen.is_empty() {
            let res = app
                .store
                .write(Actor::system("scheduler"), move |tx| {
                    for key in &unseen {
                        if tx.find_unique::<JobState>("key", key)?.is_none() {
                            tx.insert_quiet(&JobState::new(key, now))?;
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "scheduler cannot record new jobs");
            }
        }
        let mut started = Vec::new();
        for job in &self.jobs {
            let state = states.get(&job.key);
            let Some(next) = state.and_then(|s| self.next_run(app, job, Some(s))) else { continue };
            if next > now {
                continue;
            }
            let latest = job.schedule.latest_at_or_before(now, app.tz).unwrap_or(next);
            let trigger = if latest > next || now - latest > Duration::minutes(5) {
                Trigger::CatchUp(latest)
            } else {
                Trigger::Schedule(latest)
            };
            if let Ok(h) = self.start(app, job, trigger).await {
                started.push(h);
            }
        }
        started
    }

    /// Starts `key` now (the "run now" button). Refused while it runs.
    pub async fn run_now(&self, app: &App, key: &str, who: &str) -> Result<tokio::task::JoinHandle<()>, StartError> {
        let job = self.job(key).ok_or_else(|| StartError::Unknown(key.to_string()))?;
        self.start(app, job, Trigger::Manual(who.to_string())).await
    }

    async fn start(&self, app: &App, job: &Job, trigger: Trigger) -> Result<tokio::task::JoinHandle<()>, StartError> {
        if !lock(&self.running).insert(job.key.clone()) {
            return Err(StartError::Running(job.name.clone()));
        }
        let key = job.key.clone();
        let started_at = app.store.now();
        let label = trigger.label();
        tracing::info!(job = %key, trigger = %label, "job starting");
        let res = app
            .store
            .write(Actor::system("scheduler"), {
                let key = key.clone();
                let label = label.clone();
                move |tx| {
                    let (id, mut s) = match tx.find_unique::<JobState>("key", &key)? {
                        Some(found) => found,
                        None => {
                            let s = JobState::new(&key, started_at);
                            (tx.insert_quiet(&s)?, s)
                        }
                    };
                    s.last_started = Some(started_at);
                    s.last_trigger = label;
                    tx.update(id, &s)?;
                    Ok(())
                }
            })
            .await;
        if let Err(e) = res {
            tracing::error!(job = %key, error = %e, "cannot record the job's start");
        }
        let app = app.clone();
        let run = job.run.clone();
        let name = job.name.clone();
        Ok(tokio::spawn(async move {
            let clock = app.store.clock().clone();
            let t0 = clock.instant();
            // Its own task, so that a panic in the job is caught here as an error.
            let result = match tokio::spawn(run(app.clone())).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err("the job panicked (see the log)".into()),
                Err(e) => Err(format!("the job was cancelled: {e}")),
            };
            let elapsed = t0.elapsed();
            app.scheduler.finish(&app, &key, &name, trigger, result, elapsed).await;
        }))
    }

    async fn finish(
        &self,
        app: &App,
        key: &str,
        name: &str,
        trigger: Trigger,
        result: JobResult,
        elapsed: std::time::Duration,
    ) {
        let now = app.store.now();
        let ok = result.is_ok();
        let message = match &result {
            Ok(m) | Err(m) => m.clone(),
        };
        match &result {
            Ok(m) => tracing::info!(job = %key, seconds = elapsed.as_secs_f64(), result = %m, "job finished"),
            Err(m) => tracing::error!(job = %key, seconds = elapsed.as_secs_f64(), error = %m, "job failed"),
        }
        {
            let mut st = lock(&self.stats);
            *st.runs.entry((key.to_string(), if ok { "ok" } else { "failed" })).or_default() += 1;
            st.last_seconds.insert(key.to_string(), elapsed.as_secs_f64());
            if ok {
                st.last_success_unix.insert(key.to_string(), now.timestamp());
            }
        }
        let key_owned = key.to_string();
        let res = app
            .store
            .write(Actor::system("scheduler"), move |tx| {
                let Some((id, mut s)) = tx.find_unique::<JobState>("key", &key_owned)? else { return Ok(()) };
                if let Some(slot) = trigger.slot() {
                    s.last_slot = Some(s.last_slot.map_or(slot, |old| old.max(slot)));
                }
                s.last_finished = Some(now);
                s.last_ok = Some(ok);
                s.last_message = message.chars().take(2000).collect();
                s.last_duration_ms = elapsed.as_millis().min(u64::MAX as u128) as u64;
                s.runs += 1;
                if ok {
                    s.last_success = Some(now);
                } else {
                    s.failures += 1;
                }
                tx.update(id, &s)?;
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::error!(job = %key, error = %e, "cannot record the job's result");
        }
        lock(&self.running).remove(key);
        if let Err(why) = result {
            crate::alerts::send(app, &format!("Job failed: {name}"), &why).await;
        }
    }

    /// Watched jobs that have not succeeded within twice their longest interval, with why.
    pub fn stale(&self, app: &App) -> Vec<(String, String)> {
        let now = app.store.now();
        let states = self.states(app);
        let mut out = Vec::new();
        for job in self.jobs.iter().filter(|j| j.watched) {
            let Some(s) = states.get(&job.key) else { continue };
            let since = s.last_success.unwrap_or(s.first_seen);
            let allowed = job.schedule.longest_interval(since, app.tz) * 2;
            if now - since > allowed {
                let what = match s.last_success {
                    Some(t) => format!("last success {}", t.format("%Y-%m-%d %H:%M UTC")),
                    None => format!("no success since {}", s.first_seen.format("%Y-%m-%d %H:%M UTC")),
                };
                out.push((job.key.clone(), format!("{what}; expected every {}", human_duration(allowed / 2))));
            }
        }
        out
    }

    /// Alerts once for each watched job that became stale (a stopped or failing schedule), and
    /// forgets it when it is fresh again. Returns the keys alerted now.
    pub async fn alert_stale(&self, app: &App) -> Vec<String> {
        let stale = self.stale(app);
        let fresh: Vec<(String, String)> = {
            let mut seen = lock(&self.alerted_stale);
            seen.retain(|k| stale.iter().any(|(s, _)| s == k));
            stale.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect()
        };
        for (key, why) in &fresh {
            let name = self.job(key).map(|j| j.name.clone()).unwrap_or_else(|| key.clone());
            crate::alerts::send(app, &format!("Overdue: {name}"), why).await;
        }
        fresh.into_iter().map(|(k, _)| k).collect()
    }

    /// Prometheus lines for job outcomes.
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let st = lock(&self.stats);
        out.push_str("# HELP bravely_job_runs_total Scheduled job runs, by job and result.\n");
        out.push_str("# TYPE bravely_job_runs_total counter\n");
        for j in &self.jobs {
            for result in ["ok", "failed"] {
                let n = st.runs.get(&(j.key.clone(), result)).copied().unwrap_or(0);
                let _ = writeln!(out, "bravely_job_runs_total{{job=\"{}\",result=\"{result}\"}} {n}", j.key);
            }
        }
        out.push_str("# HELP bravely_job_running Whether the job is running now.\n");
        out.push_str("# TYPE bravely_job_running gauge\n");
        let running = lock(&self.running);
        for j in &self.jobs {
            let _ = writeln!(out, "bravely_job_running{{job=\"{}\"}} {}", j.key, u8::from(running.contains(&j.key)));
        }
        out.push_str("# HELP bravely_job_last_duration_seconds How long the job's last run took.\n");
        out.push_str("# TYPE bravely_job_last_duration_seconds gauge\n");
        for (k, v) in &st.last_seconds {
            let _ = writeln!(out, "bravely_job_last_duration_seconds{{job=\"{k}\"}} {v}");
        }
        out.push_str("# HELP bravely_job_last_success_timestamp_seconds When the job last succeeded.\n");
        out.push_str("# TYPE bravely_job_last_success_timestamp_seconds gauge\n");
        for (k, v) in &st.last_success_unix {
            let _ = writeln!(out, "bravely_job_last_success_timestamp_seconds{{job=\"{k}\"}} {v}");
        }
    }
}

pub fn human_duration(d: Duration) -> String {
    let mins = d.num_minutes();
    match mins {
        m if m % (24 * 60) == 0 && m >= 24 * 60 => format!("{} d", m / (24 * 60)),
        m if m % 60 == 0 && m >= 60 => format!("{} h", m / 60),
        m if m >= 1 => format!("{m} min"),
        _ => format!("{} s", d.num_seconds()),
    }
}

/// The server's scheduling loop: a tick at least every 30 s (and right at start, which is when
/// missed runs catch up).
pub async fn run_loop(app: App) {
    loop {
        app.scheduler.tick(&app).await;
        app.scheduler.alert_stale(&app).await;
        let now = app.store.now();
        let states = app.scheduler.states(&app);
        let next = app
            .scheduler
            .jobs()
            .iter()
            .filter_map(|j| app.scheduler.next_run(&app, j, states.get(&j.key)))
            .min()
            .map(|t| (t - now).num_milliseconds().max(0) as u64)
            .unwrap_or(30_000);
        tokio::time::sleep(std::time::Duration::from_millis(next.clamp(1_000, 30_000))).await;
    }
}
