//! Kudos: the Slack `/thanks` command, points for giver and receiver, monthly leaderboards.

pub mod handlers;
pub mod model;
pub mod service;
pub mod slack;

use std::sync::Arc;

pub use model::{Given, KudosSettings, Received, SlackUser, Thanks};

use crate::admin::{AdminResource, Typed};
use crate::web::{Routes, paths};
use crate::{Module, NavEntry};

pub struct Kudos;

impl Module for Kudos {
    fn stored(&self) -> Vec<crate::store::check::Stored> {
        use crate::store::check::Stored;
        vec![
            Stored::entity::<Thanks>(),
            Stored::entity::<Given>(),
            Stored::entity::<Received>(),
            Stored::entity::<SlackUser>(),
            Stored::entity::<KudosSettings>(),
        ]
    }
    fn name(&self) -> &'static str {
        "Kudos"
    }
    fn resources(&self) -> Vec<Arc<dyn AdminResource>> {
        vec![
            Typed::<Thanks>::new(),
            Typed::<Given>::new(),
            Typed::<Received>::new(),
            Typed::<SlackUser>::new(),
            Typed::<KudosSettings>::new(),
        ]
    }
    fn routes(&self, r: &mut Routes) {
        handlers::routes(r);
    }
    fn nav(&self) -> Vec<NavEntry> {
        vec![
            NavEntry::new("Kudos", "Leaderboard", "/kudos".into(), None),
            NavEntry::new("Kudos", "All thanks", "/kudos/feed".into(), None),
            NavEntry::new("Kudos", "Slack users", paths::admin_list("slack-users"), Some("slack-users.view")),
            NavEntry::new("Kudos", "Points settings", paths::admin_list("kudos-settings"), Some("kudos-settings.view")),
        ]
    }
    fn glance(&self) -> Option<crate::Glance> {
        Some(handlers::glance)
    }
    fn help(&self) -> Option<crate::help::Help> {
        Some(crate::help::Help { chapter: "kudos", prefixes: &["/kudos"] })
    }
    fn panels(&self) -> Vec<(&'static str, crate::Panel)> {
        vec![("employees", handlers::employee_panel)]
    }
    fn csrf_exempt(&self) -> Vec<&'static str> {
        vec!["/slack/"]
    }
    fn jobs(&self, config: &crate::config::Config) -> anyhow::Result<Vec<crate::jobs::Job>> {
        if config.slack.leaderboard_channel.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![crate::jobs::Job::new(
            "kudos-monthly-post",
            "Post last month's thanks leaderboard to Slack",
            crate::jobs::Schedule::parse("0 9 1 * *").map_err(anyhow::Error::msg)?,
            post_monthly_leaderboard,
        )])
    }
}

/// The month before the one `now` falls in, in the company's time zone ("YYYY-MM").
pub fn previous_month(now: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    use chrono::{Datelike, Duration};
    let today = now.with_timezone(&tz).date_naive();
    let last_of_previous = today.with_day(1).unwrap_or(today) - Duration::days(1);
    last_of_previous.format("%Y-%m").to_string()
}

#[derive(serde::Deserialize)]
struct SlackAnswer {
    ok: bool,
    error: Option<String>,
}

/// Posts the leaderboard of the month that just ended with `chat.postMessage`.
async fn post_monthly_leaderboard(app: crate::App) -> crate::jobs::JobResult {
    let channel = app.config.slack.leaderboard_channel.clone().ok_or("slack.leaderboard_channel is not set")?;
    let token = app.config.slack.bot_token.clone().ok_or("slack.bot_token is not set: it is needed to post")?;
    let month = previous_month(app.store.now(), app.tz);
    let text = handlers::leaderboard_text_of(&app, &month).map_err(|e| e.to_string())?;
    let url = format!("{}/chat.postMessage", app.config.slack.api_base.trim_end_matches('/'));
    let res = app
        .http()
        .post(&url)
        .bearer_auth(token.expose())
        .json(&serde_json::json!({ "channel": channel, "text": text }))
        .send()
        .await
        .map_err(|e| format!("Slack is unreachable: {}", e.without_url()))?;
    let answer: SlackAnswer = res.json().await.map_err(|e| format!("Slack answered oddly: {}", e.without_url()))?;
    if !answer.ok {
        return Err(format!("Slack refused the post: {}", answer.error.unwrap_or_else(|| "no reason given".into())));
    }
    Ok(format!("posted the {month} leaderboard to {channel}"))
}
