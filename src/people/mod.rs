//! People: current and past employees. Starts as the minimal record other modules refer to.

pub mod model;

use std::sync::Arc;

pub use model::Employee;

use crate::admin::{AdminResource, Typed};
use crate::{Module, NavEntry};

pub struct People;

impl Module for People {
    fn name(&self) -> &'static str {
        "People"
    }
    fn resources(&self) -> Vec<Arc<dyn AdminResource>> {
        vec![Typed::<Employee>::new()]
    }
    fn nav(&self) -> Vec<NavEntry> {
        vec![NavEntry::new("People", "Employees", crate::web::paths::admin_list("employees"), Some("employees.view"))]
    }
}
