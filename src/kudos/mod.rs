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
    fn panels(&self) -> Vec<(&'static str, crate::Panel)> {
        vec![("employees", handlers::employee_panel)]
    }
    fn csrf_exempt(&self) -> Vec<&'static str> {
        vec!["/slack/"]
    }
}
