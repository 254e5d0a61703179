//! `/jobs`: every scheduled job with its last run, result, duration and next run.

use std::sync::Arc;

use maud::html;
use poem::web::{Data, Path};
use poem::{Response, handler};

use crate::error::{AppError, AppResult};
use crate::web::layout::{Flash, Page, csrf_field, redirect, render};
use crate::web::{Access, Ctx, Routes};
use crate::{App, Module, NavEntry};

pub struct Jobs;

impl Module for Jobs {
    fn name(&self) -> &'static str {
        "Jobs"
    }
    fn jobs(&self, _config: &crate::config::Config) -> anyhow::Result<Vec<super::Job>> {
        Ok(vec![super::integrity::job()?])
    }
    fn stored(&self) -> Vec<crate::store::check::Stored> {
        vec![crate::store::check::Stored::entity::<super::JobState>()]
    }
    fn routes(&self, r: &mut Routes) {
        r.get("/jobs", Access::perm("jobs.view"), list);
        r.post("/jobs/:key/run", Access::perm("jobs.run"), run_now);
    }
    fn nav(&self) -> Vec<NavEntry> {
        vec![NavEntry::new("Administration", "Scheduled jobs", "/jobs".into(), Some("jobs.view"))]
    }
    fn help(&self) -> Option<crate::help::Help> {
        Some(crate::help::Help { chapter: "accounts", prefixes: &["/jobs"] })
    }
    fn permissions(&self) -> Vec<(String, String)> {
        vec![
            ("jobs.view".into(), "See scheduled jobs and their results".into()),
            ("jobs.run".into(), "Start a scheduled job now".into()),
        ]
    }
}

fn when(app: &App, t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&app.tz).format("%Y-%m-%d %H:%M").to_string()
}

fn duration(ms: u64) -> String {
    match ms {
        m if m >= 60_000 => format!("{} min {} s", m / 60_000, (m % 60_000) / 1000),
        m if m >= 1000 => format!("{:.1} s", m as f64 / 1000.0),
        m => format!("{m} ms"),
    }
}

#[handler]
async fn list(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> AppResult<Response> {
    let states = app.scheduler.states(&app);
    let stale: std::collections::HashMap<String, String> = app.scheduler.stale(&app).into_iter().collect();
    let any_running = app.scheduler.jobs().iter().any(|j| app.scheduler.is_running(&j.key));
    let body = html! {
        p.muted { "Times are in " (app.tz.name()) ". A run missed while the server was stopped happens once when it starts again. "
            "Jobs marked " em { "watched" } " make " code { "/readyz" } " fail when they have not succeeded within twice their interval." }
        div #jobs hx-get=[any_running.then_some("/jobs")] hx-trigger=[any_running.then_some("every 2s")] hx-select="#jobs" hx-swap="outerHTML" {
            table.list {
                thead { tr { th { "Job" } th { "Schedule" } th { "Last run" } th { "Result" } th.num { "Duration" } th { "Next run" } th { "" } } }
                tbody {
                    @for job in app.scheduler.jobs() {
                        @let s = states.get(&job.key);
                        @let running = app.scheduler.is_running(&job.key);
                        tr id={ "job-" (job.key) } {
                            td { (job.name) @if job.watched { " " span.badge { "watched" } } }
                            td { code { (job.schedule.text()) } br; span.muted { (job.schedule.describe()) } }
                            td { @if let Some(t) = s.and_then(|s| s.last_started) { (when(&app, t)) br; span.muted { (s.map(|s| s.last_trigger.as_str()).unwrap_or("")) } } @else { span.muted { "never" } } }
                            td {
                                @if running { strong { "running…" } }
                                @else if s.is_some_and(|s| s.unfinished()) { span.error { "interrupted (the server stopped)" } }
                                @else {
                                    @match s.and_then(|s| s.last_ok) {
                                        Some(true) => span.ok { "ok" },
                                        Some(false) => span.error { "failed" },
                                        None => span.muted { "–" },
                                    }
                                    @if let Some(s) = s { @if !s.last_message.is_empty() { br; span.muted { (s.last_message) } } }
                                }
                                @if let Some(why) = stale.get(&job.key) { br; span.error { "overdue: " (why) } }
                            }
                            td.num { (s.filter(|s| s.last_finished.is_some()).map(|s| duration(s.last_duration_ms)).unwrap_or_default()) }
                            td { (app.scheduler.next_run(&app, job, s).map(|t| when(&app, t)).unwrap_or_default()) }
                            td {
                                @if ctx.can("jobs.run") && !running {
                                    form.inline method="post" action={ "/jobs/" (job.key) "/run" } {
                                        (csrf_field(&ctx)) button.btn.btn-small type="submit" { "Run now" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&app, &ctx, Page::new("Scheduled jobs", body)))
}

#[handler]
async fn run_now(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(key): Path<String>) -> AppResult<Response> {
    let who = ctx.user()?.email.clone();
    match app.scheduler.run_now(&app, &key, &who).await {
        Ok(_) => Ok(redirect("/jobs", Some(Flash::info("Started. This page shows the result when it finishes.")))),
        Err(crate::jobs::StartError::Unknown(_)) => Err(AppError::NotFound),
        Err(e) => Ok(redirect("/jobs", Some(Flash::error(e.to_string())))),
    }
}
