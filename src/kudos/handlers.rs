//! `POST /slack/commands` and the leaderboard and feed pages.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Json, Query};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::model::{Received, SlackUser, Thanks};
use super::service::{self, Outcome, Thanker};
use super::slack::{self, HELP, Reply, Request as Ask, SlashCommand};
use crate::App;
use crate::error::{AppError, AppResult};
use crate::people::Employee;
use crate::store::{Actor, ReadTx, Value};
use crate::web::layout::{Page, render};
use crate::web::{Access, Ctx, Routes, paths};

pub fn routes(r: &mut Routes) {
    // Authenticated by Slack's signature instead of a session (and exempt from CSRF).
    r.post("/slack/commands", Access::Public, command);
    r.get("/kudos", Access::SignedIn, leaderboard_page);
    r.get("/kudos/feed", Access::SignedIn, feed_page);
}

const MAX_BODY: usize = 64 * 1024;

fn reply(r: Reply) -> Response {
    Json(r).into_response()
}

#[handler]
async fn command(app: Data<&App>, req: &Request, body: Body) -> Response {
    let Some(secret) = app.config.slack.signing_secret.clone() else {
        tracing::error!("a Slack command arrived but slack.signing_secret is not configured; refusing it");
        return (StatusCode::SERVICE_UNAVAILABLE, "Slack is not configured on this server.").into_response();
    };
    let Ok(raw) = body.into_bytes_limit(MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    if let Err(e) = slack::verify(
        secret.expose(),
        req.header("x-slack-request-timestamp"),
        req.header("x-slack-signature"),
        &raw,
        app.store.now(),
    ) {
        tracing::warn!(reason = %e, "refused a Slack request");
        return (StatusCode::UNAUTHORIZED, "invalid Slack signature").into_response();
    }
    // Known once the signature holds: a replay of this exact request has the same key.
    let request = slack::request_key(
        req.header("x-slack-request-timestamp").unwrap_or(""),
        req.header("x-slack-signature").unwrap_or(""),
    );
    let cmd: SlashCommand = match serde_urlencoded::from_bytes(&raw) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "malformed Slack command body");
            return reply(Reply::private(format!("Sorry, that request was garbled.\n{HELP}")));
        }
    };
    if cmd.user_id.is_empty() {
        return reply(Reply::private(format!("Sorry, Slack did not say who you are.\n{HELP}")));
    }
    match slack::parse(&cmd.text) {
        Err(e) => reply(Reply::private(e.to_string())),
        Ok(Ask::Help) => reply(Reply::private(HELP)),
        Ok(Ask::Leaderboard) => match leaderboard_text(&app) {
            Ok(t) => reply(Reply::private(t)),
            Err(e) => internal(e),
        },
        Ok(Ask::Me) => match me_text(&app, &cmd.user_id) {
            Ok(t) => reply(Reply::private(t)),
            Err(e) => internal(e),
        },
        Ok(Ask::Thank { people, reason }) => {
            // Without a bot token nobody can be looked up: unknown users are recorded by name.
            let unknown =
                if app.config.slack.bot_token.is_some() { unknown_users(&app, &cmd, &people) } else { vec![] };
            if !unknown.is_empty() {
                // Looking people up in Slack may take longer than Slack waits: answer now, finish
                // through the response_url.
                let app2 = (*app).clone();
                tokio::spawn(async move {
                    lookup_users(&app2, &unknown).await;
                    let r = thank(&app2, &cmd, &request, people, reason).await;
                    post_response(&app2, &cmd.response_url, &r).await;
                });
                reply(Reply::private("Got it — recording your thanks…"))
            } else {
                reply(thank(&app, &cmd, &request, people, reason).await)
            }
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "Slack command failed");
    reply(Reply::private("Sorry, something went wrong on our side; the error has been logged."))
}

async fn thank(app: &App, cmd: &SlashCommand, request: &str, people: Vec<slack::Mention>, reason: String) -> Reply {
    let tz = app.tz;
    let c = cmd.clone();
    let request = request.to_string();
    let r2 = reason.clone();
    let result = app
        .store
        .write(Actor::system(&format!("Slack user {}", cmd.user_id)), move |tx| {
            let from = Thanker {
                id: &c.user_id,
                name: &c.user_name,
                channel: &c.channel_id,
                trigger: &c.trigger_id,
                request: &request,
            };
            service::give(tx, &from, &people, &r2, tz)
        })
        .await;
    match result {
        Ok(Outcome::Recorded { people, .. }) | Ok(Outcome::Duplicate { people }) => {
            let names: Vec<String> = people.iter().map(|p| format!("<@{p}>")).collect();
            Reply::public(format!(":tada: <@{}> thanked {} for {}", cmd.user_id, join_names(&names), reason))
        }
        Err(AppError::Conflict(m)) => Reply::private(m),
        Err(e) => {
            tracing::error!(error = %e, "recording thanks failed");
            Reply::private("Sorry, your thanks could not be recorded; the error has been logged.")
        }
    }
}

fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn unknown_users(app: &App, cmd: &SlashCommand, people: &[slack::Mention]) -> Vec<(String, String)> {
    let Ok(r) = app.store.read() else { return vec![] };
    let mut out = Vec::new();
    let all = std::iter::once((cmd.user_id.clone(), cmd.user_name.clone()))
        .chain(people.iter().map(|p| (p.id.clone(), p.name.clone())));
    for (id, name) in all {
        if matches!(r.find_unique::<SlackUser>("slack_id", &id), Ok(None)) {
            out.push((id, name));
        }
    }
    out
}

#[derive(Deserialize)]
struct UsersInfo {
    ok: bool,
    user: Option<SlackApiUser>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct SlackApiUser {
    name: Option<String>,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    profile: SlackProfile,
}

#[derive(Deserialize, Default)]
struct SlackProfile {
    email: Option<String>,
}

/// Fetches unknown users from Slack (users.info) and records them, matched to employees by email.
async fn lookup_users(app: &App, users: &[(String, String)]) {
    let Some(token) = app.config.slack.bot_token.clone() else { return };
    for (id, fallback_name) in users {
        let url = format!("{}/users.info", app.config.slack.api_base.trim_end_matches('/'));
        let res = app.http().get(&url).query(&[("user", id.as_str())]).bearer_auth(token.expose()).send().await;
        let info: Option<UsersInfo> = match res {
            Ok(r) => r.json().await.ok(),
            Err(e) => {
                tracing::warn!(error = %e, "Slack users.info failed");
                None
            }
        };
        let (name, email, bot) = match info {
            Some(UsersInfo { ok: true, user: Some(u), .. }) => {
                (u.name.unwrap_or_else(|| fallback_name.clone()), u.profile.email.map(|e| e.to_lowercase()), u.is_bot)
            }
            Some(UsersInfo { error, .. }) => {
                tracing::warn!(error = error.as_deref().unwrap_or("unknown"), "Slack users.info refused");
                (fallback_name.clone(), None, false)
            }
            None => (fallback_name.clone(), None, false),
        };
        let id = id.clone();
        let r = app
            .store
            .write(Actor::system("Slack user lookup"), move |tx| {
                service::ensure_user(tx, &id, &name, email.as_deref(), bot)?;
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "recording a Slack user failed");
        }
    }
}

async fn post_response(app: &App, url: &str, r: &Reply) {
    if !url.starts_with(&app.config.slack.response_url_prefix) {
        tracing::warn!("not replying to a response_url outside slack.response_url_prefix");
        return;
    }
    if let Err(e) = app.http().post(url).json(r).send().await {
        tracing::warn!(error = %e, "posting to the Slack response_url failed");
    }
}

fn leaderboard_text(app: &App) -> Result<String, crate::store::StoreError> {
    leaderboard_text_of(app, &service::month_of(app.store.now(), app.tz))
}

/// The leaderboard of `month` ("YYYY-MM") as a Slack message.
pub fn leaderboard_text_of(app: &App, month: &str) -> Result<String, crate::store::StoreError> {
    let r = app.store.read()?;
    let month = month.to_string();
    let recv = service::received_board(&r, &month)?;
    let given = service::given_board(&r, &month)?;
    let fmt = |v: &[(String, i64)]| {
        if v.is_empty() {
            return "  nobody yet\n".to_string();
        }
        v.iter().take(5).enumerate().map(|(i, (u, p))| format!("  {}. <@{u}> — {p}\n", i + 1)).collect::<String>()
    };
    Ok(format!("*Thanks leaderboard, {month}*\nMost thanked:\n{}Most thankful:\n{}", fmt(&recv), fmt(&given)))
}

fn me_text(app: &App, user: &str) -> Result<String, crate::store::StoreError> {
    let r = app.store.read()?;
    let month = service::month_of(app.store.now(), app.tz);
    let [(rm, gm), (ra, ga)] = service::my_points(&r, user, &month)?;
    Ok(format!(
        "This month you received {rm} and gave {gm} points ({} in total). All time: {ra} received, {ga} given.",
        rm + gm
    ))
}

/// The home page's kudos card: how many thanks this month (one index read, no rows decoded,
/// so it stays cheap however many there are), and the signed-in person's own points when
/// their account's email is an employee's with a Slack user. Everyone signed in may see the
/// leaderboard, so everyone gets the card.
pub fn glance(app: &App, ctx: &Ctx) -> Option<Markup> {
    let month = service::month_of(app.store.now(), app.tz);
    let r = app.store.read().ok()?;
    let thanks = r.find_by::<Received>("month", &crate::store::Value::text(month.clone())).ok()?.len();
    let mine = ctx.user.as_ref().and_then(|u| {
        let (employee, _) = r.find_unique::<Employee>("work_email", &u.email).ok()??;
        let slack = r.find_by::<SlackUser>("employee", &crate::store::Value::Ref(employee)).ok()?;
        let user = r.get::<SlackUser>(*slack.first()?).ok()??;
        service::my_points(&r, &user.slack_id, &month).ok()
    });
    Some(html! {
        div.card.glance-card {
            h3 { a href="/kudos" { "Kudos" } }
            div.stat { span.stat-value { (thanks) } span.stat-label { "thanks this month (" (month) ")" } }
            p.muted {
                @if let Some([(received, given), _]) = mine {
                    "You: " (received) " points received, " (given) " given this month."
                } @else {
                    a href="/kudos" { "See who was thanked most" }
                }
            }
        }
    })
}

/// Names for Slack users: the employee's name when mapped, else the Slack name.
/// Looked up per Slack id through the indexes and remembered for the page: a page shows a few
/// dozen people, so it never reads every employee.
struct Names<'a> {
    r: &'a ReadTx,
    seen: std::cell::RefCell<HashMap<String, (String, Option<Employee>)>>,
}

impl<'a> Names<'a> {
    fn new(r: &'a ReadTx) -> Names<'a> {
        Names { r, seen: Default::default() }
    }
    fn lookup(&self, id: &str) -> (String, Option<Employee>) {
        if let Some(v) = self.seen.borrow().get(id) {
            return v.clone();
        }
        let found = self.r.find_unique::<SlackUser>("slack_id", id).ok().flatten().map(|(_, u)| u);
        let emp = found.as_ref().and_then(|u| u.employee).and_then(|e| self.r.get::<Employee>(e).ok().flatten());
        let name = match (&emp, &found) {
            (Some(e), _) => e.name.clone(),
            (None, Some(u)) => format!("@{}", u.name),
            (None, None) => id.to_string(),
        };
        self.seen.borrow_mut().insert(id.to_string(), (name.clone(), emp.clone()));
        (name, emp)
    }
    fn name(&self, id: &str) -> String {
        self.lookup(id).0
    }
    fn team(&self, id: &str) -> Option<String> {
        self.lookup(id).1.and_then(|e| e.team)
    }
}

#[derive(Deserialize, Default)]
struct BoardQuery {
    month: Option<String>,
    team: Option<String>,
}

fn parse_month(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()
}

#[handler]
async fn leaderboard_page(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Query(q): Query<BoardQuery>) -> AppResult<Response> {
    let this_month = service::month_of(app.store.now(), app.tz);
    let month = q.month.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| this_month.clone());
    let first =
        parse_month(&month).ok_or_else(|| AppError::BadRequest(format!("{month:?} is not a month like 2026-03.")))?;
    let prev = (first - chrono::Duration::days(1)).format("%Y-%m").to_string();
    let next =
        (first + chrono::Duration::days(32)).with_day(1).map(|d| d.format("%Y-%m").to_string()).unwrap_or_default();
    let r = app.store.read()?;
    let names = Names::new(&r);
    let mut all_teams: Vec<String> = match app.registry.get("employees") {
        Some(res) => {
            let i = res.def().field_index("team").unwrap_or(0);
            res.model().all().iter().filter_map(|row| row.values[i].as_str().map(str::to_string)).collect()
        }
        None => vec![],
    };
    all_teams.sort();
    all_teams.dedup();
    let team = q.team.clone().filter(|t| !t.is_empty());
    let in_team = |slack: &str| match &team {
        None => true,
        Some(t) => names.team(slack).as_deref() == Some(t.as_str()),
    };
    let recv: Vec<(String, i64)> =
        service::received_board(&r, &month)?.into_iter().filter(|(u, _)| in_team(u)).collect();
    let given: Vec<(String, i64)> = service::given_board(&r, &month)?.into_iter().filter(|(u, _)| in_team(u)).collect();
    let link = |m: &str, t: Option<&str>| {
        let q = paths::query(&[("month", m), ("team", t.unwrap_or(""))]);
        format!("/kudos?{q}")
    };
    let table = |title: &str, rows: &[(String, i64)]| -> Markup {
        html! {
            div.card {
                h2 { (title) }
                table.simple {
                    thead { tr { th.num { "#" } th { "Person" } th.num { "Points" } } }
                    tbody {
                        @if rows.is_empty() { tr { td.empty colspan="3" { "No thanks yet this month." } } }
                        @for (i, (u, p)) in rows.iter().take(20).enumerate() {
                            tr { td.num { (i + 1) } td { (names.name(u)) } td.num { (p) } }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        p {
            a href=(link(&prev, team.as_deref())) { "← " (prev) }
            " · " strong { (month) }
            @if month < this_month { " · " a href=(link(&next, team.as_deref())) { (next) " →" } }
            " · " a href="/kudos/feed" { "All thanks" }
        }
        @if !all_teams.is_empty() {
            p.muted {
                "Team: "
                a href=(link(&month, None)) class=[team.is_none().then_some("selected")] { "everyone" }
                @for t in &all_teams { " · " a href=(link(&month, Some(t))) { (t) } }
            }
        }
        div.cards {
            (table("Most thanked", &recv))
            (table("Most thankful", &given))
        }
    };
    let title = format!("Thanks leaderboard, {month}");
    Ok(render(&app, &ctx, Page::new(&title, body)))
}

#[handler]
async fn feed_page(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> AppResult<Response> {
    let r = app.store.read()?;
    let names = Names::new(&r);
    let res = app.registry.get("thanks").ok_or(AppError::NotFound)?;
    let at = res.def().field_index("at").unwrap_or(0);
    let page = res.model().query(&crate::admin::list::Query {
        search: "",
        filters: &[],
        sort_field: at,
        descending: true,
        offset: 0,
        limit: Some(100),
    });
    let mut items = Vec::new();
    for row in &page.rows {
        if let Some(t) = r.get::<Thanks>(row.id)? {
            items.push(t);
        }
    }
    Ok(render(&app, &ctx, Page::new("Thanks", feed(&names, &items)).crumb("Leaderboard", "/kudos")))
}

fn feed(names: &Names<'_>, items: &[Thanks]) -> Markup {
    html! {
        @if items.is_empty() { p.muted { "Nobody has been thanked yet. Try /thanks in Slack." } }
        ul.feed {
            @for t in items {
                li {
                    strong { (names.name(&t.giver)) } " thanked " strong { (names.name(&t.receiver)) }
                    " for " (t.reason)
                    span.muted { " · " (t.day) }
                }
            }
        }
    }
}

/// Thanks an employee received, shown on their page.
pub fn employee_panel(app: &App, _ctx: &Ctx, employee: u64) -> Markup {
    let render = || -> AppResult<Markup> {
        let r = app.store.read()?;
        let mut items = Vec::new();
        for sid in r.find_by::<SlackUser>("employee", &Value::Ref(employee))? {
            if let Some(u) = r.get::<SlackUser>(sid)? {
                for lid in r.find_by::<Received>("slack_user", &Value::text(u.slack_id.clone()))? {
                    if let Some(line) = r.get::<Received>(lid)?
                        && let Some(t) = r.get::<Thanks>(line.0.thanks)?
                    {
                        items.push(t);
                    }
                }
            }
        }
        items.sort_by_key(|t| std::cmp::Reverse(t.at));
        items.truncate(50);
        let names = Names::new(&r);
        Ok(html! {
            section.card id="thanks" {
                h2 { "Thanks received" }
                @if items.is_empty() { p.muted { "None yet." } } @else { (feed(&names, &items)) }
            }
        })
    };
    render().unwrap_or_else(|e| html! { div.form-errors { (e.to_string()) } })
}
