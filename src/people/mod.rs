//! People: current and past employees. Starts as the minimal record other modules refer to.

pub mod model;

use std::sync::Arc;

pub use model::Employee;

use crate::admin::{AdminResource, Typed};
use crate::{Module, NavEntry};

pub struct People;

impl Module for People {
    fn stored(&self) -> Vec<crate::store::check::Stored> {
        use crate::store::check::Stored;
        vec![Stored::entity::<Employee>()]
    }
    fn name(&self) -> &'static str {
        "People"
    }
    fn resources(&self) -> Vec<Arc<dyn AdminResource>> {
        vec![Typed::<Employee>::new()]
    }
    fn nav(&self) -> Vec<NavEntry> {
        vec![NavEntry::new("People", "Employees", crate::web::paths::admin_list("employees"), Some("employees.view"))]
    }
    fn glance(&self) -> Option<crate::Glance> {
        Some(glance)
    }
    fn help(&self) -> Option<crate::help::Help> {
        Some(crate::help::Help { chapter: "people", prefixes: &[] })
    }
}

/// The home page's people card: current employees, and who joined in the last 30 days and
/// is leaving in the next 30 (from the employees' list model: no database read).
fn glance(app: &crate::App, ctx: &crate::web::Ctx) -> Option<maud::Markup> {
    use crate::store::Value;
    if !ctx.can("employees.view") {
        return None;
    }
    let res = app.registry.get("employees")?;
    let field = |name: &str| res.def().field_index(name);
    let (active, start, end) = (field("active")?, field("start_date")?, field("end_date")?);
    let today = app.today();
    let (mut current, mut joined, mut leaving) = (0usize, 0usize, 0usize);
    for row in res.model().all() {
        if row.values[active] != Value::Bool(true) {
            continue;
        }
        current += 1;
        if let Value::Date(d) = row.values[start]
            && d <= today
            && today - d <= chrono::Duration::days(30)
        {
            joined += 1;
        }
        if let Value::Date(d) = row.values[end]
            && d >= today
            && d - today <= chrono::Duration::days(30)
        {
            leaving += 1;
        }
    }
    let list = crate::web::paths::admin_list("employees");
    Some(maud::html! {
        div.card.glance-card {
            h3 { a href=(list) { "People" } }
            div.stat { span.stat-value { (current) } span.stat-label { "current employees" } }
            p.muted { (joined) " joined in the last 30 days · " (leaving) " leaving in the next 30" }
        }
    })
}
