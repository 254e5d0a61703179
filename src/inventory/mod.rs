//! Inventory: laptops, displays, licences and counted stock, and who has what.

pub mod handlers;
pub mod model;
pub mod service;

use std::sync::Arc;

pub use model::{Assignment, Item, ItemKind};

use crate::admin::{AdminResource, Typed};
use crate::web::{Routes, paths};
use crate::{Module, NavEntry};

pub struct Inventory;

impl Module for Inventory {
    fn stored(&self) -> Vec<crate::store::check::Stored> {
        use crate::store::check::Stored;
        vec![Stored::entity::<ItemKind>(), Stored::entity::<Item>(), Stored::entity::<Assignment>()]
    }
    fn name(&self) -> &'static str {
        "Inventory"
    }
    fn resources(&self) -> Vec<Arc<dyn AdminResource>> {
        vec![Typed::<ItemKind>::new(), Typed::<Item>::new(), Typed::<Assignment>::new()]
    }
    fn routes(&self, r: &mut Routes) {
        handlers::routes(r);
    }
    fn nav(&self) -> Vec<NavEntry> {
        vec![
            NavEntry::new("Inventory", "Overview", paths::inventory(), Some("items.view")),
            NavEntry::new("Inventory", "Who has what", paths::inventory_people(), Some("items.view")),
            NavEntry::new("Inventory", "Items", paths::admin_list("items"), Some("items.view")),
            NavEntry::new("Inventory", "Item kinds", paths::admin_list("item-kinds"), Some("item-kinds.view")),
            NavEntry::new("Inventory", "Assignments", paths::admin_list("assignments"), Some("assignments.view")),
        ]
    }
    fn glance(&self) -> Option<crate::Glance> {
        Some(handlers::glance)
    }
    fn help(&self) -> Option<crate::help::Help> {
        Some(crate::help::Help { chapter: "inventory", prefixes: &["/inventory"] })
    }
    fn panels(&self) -> Vec<(&'static str, crate::Panel)> {
        vec![("items", handlers::item_panel_for_edit)]
    }
}
