//! Inventory pages: overview per kind, who has what, and the assign/return panel.

use std::collections::BTreeMap;
use std::sync::Arc;

use maud::{Markup, html};
use poem::web::{Data, Form, Path};
use poem::{Response, handler};
use serde::Deserialize;

use super::model::{Assignment, Item, ItemKind};
use super::service;
use crate::App;
use crate::admin::form::{SELECT_MAX, typeahead};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::people::Employee;
use crate::store::{ReadTx, Value};
use crate::web::layout::{Flash, Page, csrf_field, html_response, redirect, render};
use crate::web::{Access, Ctx, Routes, paths};

pub fn routes(r: &mut Routes) {
    r.get("/inventory", Access::perm("items.view"), overview);
    r.get("/inventory/people", Access::perm("items.view"), people);
    r.get("/inventory/people/:id", Access::perm("items.view"), person);
    r.get("/inventory/items/:id/panel", Access::perm("items.view"), panel);
    r.post("/inventory/items/:id/assign", Access::perm("items.change"), assign);
    r.post("/inventory/assignments/:id/return", Access::perm("items.change"), return_item);
}

struct KindStats {
    id: u64,
    name: String,
    counted: bool,
    low: Option<i64>,
    total: i64,
    assigned: i64,
}

fn idx(app: &App, slug: &str, field: &str) -> usize {
    app.registry.get(slug).and_then(|r| r.def().field_index(field)).unwrap_or(0)
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

/// Stock per item kind, sorted by name, from the list models (no database read).
fn stock(app: &App) -> AppResult<Vec<KindStats>> {
    let kinds = app.registry.get("item-kinds").ok_or(AppError::NotFound)?;
    let items = app.registry.get("items").ok_or(AppError::NotFound)?;
    let (k_track, k_low) = (idx(app, "item-kinds", "tracking"), idx(app, "item-kinds", "low_stock"));
    let mut stats: BTreeMap<u64, KindStats> = kinds
        .model()
        .all()
        .into_iter()
        .map(|k| {
            let low = match &k.values[k_low] {
                Value::Int(i) => Some(*i),
                _ => None,
            };
            let counted = k.values[k_track] == Value::text("counted");
            (k.id, KindStats { id: k.id, name: k.label.clone(), counted, low, total: 0, assigned: 0 })
        })
        .collect();
    let (i_kind, i_qty, i_out, i_who) = (
        idx(app, "items", "kind"),
        idx(app, "items", "quantity"),
        idx(app, "items", "assigned_qty"),
        idx(app, "items", "assignee"),
    );
    for row in items.model().all() {
        if let Some(Value::Ref(k)) = row.values.get(i_kind)
            && let Some(s) = stats.get_mut(k)
        {
            s.total += int(&row.values[i_qty]);
            s.assigned += if row.values[i_who].is_null() { int(&row.values[i_out]) } else { 1 };
        }
    }
    let mut list: Vec<KindStats> = stats.into_values().collect();
    list.sort_by_key(|s| s.name.to_lowercase());
    Ok(list)
}

impl KindStats {
    fn low_on_stock(&self) -> bool {
        self.low.is_some_and(|l| self.total - self.assigned < l)
    }
}

/// The home page's inventory card (for those who may view items).
pub fn glance(app: &App, ctx: &Ctx) -> Option<Markup> {
    if !ctx.can("items.view") {
        return None;
    }
    let list = stock(app).ok()?;
    let total: i64 = list.iter().map(|s| s.total).sum();
    let out: i64 = list.iter().map(|s| s.assigned).sum();
    let low = list.iter().filter(|s| s.low_on_stock()).count();
    Some(html! {
        div.card.glance-card {
            h3 { a href="/inventory" { "Inventory" } }
            div.stat { span.stat-value { (total - out) } span.stat-label { "free of " (total) " items" } }
            p.muted {
                @if low == 0 { "No kind is low on stock." }
                @else { a href="/inventory" { (low) " kind" @if low != 1 { "s" } " low on stock" } }
            }
        }
    })
}

#[handler]
async fn overview(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> AppResult<Response> {
    let list = stock(&app)?;
    let body = html! {
        div.cards {
            div.card { div.stat { span.stat-value { (list.iter().map(|s| s.total).sum::<i64>()) } span.stat-label { "items in stock" } } }
            div.card { div.stat { span.stat-value { (list.iter().map(|s| s.assigned).sum::<i64>()) } span.stat-label { "handed out" } } }
            div.card { div.stat { span.stat-value { (list.iter().filter(|s| s.low_on_stock()).count()) } span.stat-label { "kinds low on stock" } } }
        }
        table.list {
            thead { tr { th { "Kind" } th { "Tracking" } th.num { "Total" } th.num { "Assigned" } th.num { "Free" } th { "" } } }
            tbody {
                @if list.is_empty() { tr { td.empty colspan="6" { "No item kinds yet." } } }
                @for s in &list {
                    @let free = s.total - s.assigned;
                    @let low = s.low.is_some_and(|l| free < l);
                    tr class=[low.then_some("low-stock")] {
                        td { a href={ (paths::admin_list("items")) "?kind=" (s.id) } { (s.name) } }
                        td { (if s.counted { "counted" } else { "serialised" }) }
                        td.num { (s.total) }
                        td.num { a href={ (paths::admin_list("items")) "?kind=" (s.id) "&assigned=yes" } { (s.assigned) } }
                        td.num { a href={ (paths::admin_list("items")) "?kind=" (s.id) "&assigned=no" } { (free) } }
                        td { @if low { span.badge.badge-warn { "Low stock (under " (s.low.unwrap_or(0)) ")" } } }
                    }
                }
            }
        }
    };
    Ok(render(&app, &ctx, Page::new("Inventory", body)))
}

/// Open assignments by employee: (employee id) -> list of (assignment id, item id, quantity).
fn open_by_employee(r: &ReadTx) -> AppResult<BTreeMap<u64, Vec<(u64, Assignment)>>> {
    let mut out: BTreeMap<u64, Vec<(u64, Assignment)>> = BTreeMap::new();
    for (id, a) in r.all::<Assignment>()? {
        if a.returned_on.is_none() {
            out.entry(a.employee).or_default().push((id, a));
        }
    }
    Ok(out)
}

#[handler]
async fn people(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> AppResult<Response> {
    let r = app.store.read()?;
    let open = open_by_employee(&r)?;
    let body = html! {
        p.muted { "Everyone who holds at least one item." }
        table.list {
            thead { tr { th { "Employee" } th.num { "Items" } th { "What" } } }
            tbody {
                @if open.is_empty() { tr { td.empty colspan="3" { "Nobody holds any items." } } }
                @for (emp, list) in &open {
                    tr {
                        td { a href=(paths::inventory_person(*emp)) { (app.registry.label_of("employees", *emp)) } }
                        td.num { (list.iter().map(|(_, a)| a.quantity).sum::<i64>()) }
                        td { (list.iter().map(|(_, a)| app.registry.label_of("items", a.item)).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
    };
    Ok(render(&app, &ctx, Page::new("Who has what", body).crumb("Inventory", paths::inventory())))
}

#[handler]
async fn person(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(id): Path<u64>) -> AppResult<Response> {
    let r = app.store.read()?;
    let emp = r.get::<Employee>(id)?.ok_or(AppError::NotFound)?;
    let mut rows: Vec<(u64, Assignment)> = r
        .find_by::<Assignment>("employee", &Value::Ref(id))?
        .into_iter()
        .filter_map(|aid| r.get::<Assignment>(aid).ok().flatten().map(|a| (aid, a)))
        .collect();
    rows.sort_by(|a, b| b.1.assigned_on.cmp(&a.1.assigned_on).then(b.0.cmp(&a.0)));
    let can_change = ctx.can("items.change");
    let body = html! {
        h2 { "Holds now" }
        (assignment_table(&ctx, &app, rows.iter().filter(|(_, a)| a.returned_on.is_none()), can_change, true))
        h2 { "History" }
        (assignment_table(&ctx, &app, rows.iter().filter(|(_, a)| a.returned_on.is_some()), false, true))
    };
    let title = format!("{} — items", emp.name);
    Ok(render(
        &app,
        &ctx,
        Page::new(&title, body).crumb("Inventory", paths::inventory()).crumb("Who has what", paths::inventory_people()),
    ))
}

fn assignment_table<'a>(
    ctx: &Ctx,
    app: &App,
    rows: impl Iterator<Item = &'a (u64, Assignment)>,
    can_return: bool,
    show_item: bool,
) -> Markup {
    let rows: Vec<&(u64, Assignment)> = rows.collect();
    html! {
        table.simple {
            thead { tr {
                th { @if show_item { "Item" } @else { "Employee" } }
                th.num { "Qty" } th { "Assigned" } th { "Returned" } th { "Note" } th {}
            } }
            tbody {
                @if rows.is_empty() { tr { td.empty colspan="6" { "None." } } }
                @for (aid, a) in rows {
                    tr {
                        td {
                            @if show_item { a href=(paths::admin_edit("items", a.item)) { (app.registry.label_of("items", a.item)) } }
                            @else { a href=(paths::inventory_person(a.employee)) { (app.registry.label_of("employees", a.employee)) } }
                        }
                        td.num { (a.quantity) }
                        td { (a.assigned_on) }
                        td { (a.returned_on.map(|d| d.to_string()).unwrap_or_else(|| "—".into())) }
                        td { (a.note.clone().unwrap_or_default()) }
                        td {
                            @if can_return && a.returned_on.is_none() {
                                form method="post" action=(paths::assignment_return(*aid)) hx-post=(paths::assignment_return(*aid)) hx-target="#assignment" hx-swap="outerHTML" {
                                    (csrf_field(ctx))
                                    button.btn.btn-small type="submit" { "Return" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The assignment panel shown under an item's edit form.
pub fn item_panel_for_edit(app: &App, ctx: &Ctx, item_id: u64) -> Markup {
    match item_panel(app, ctx, item_id, &FieldErrors::new()) {
        Ok(m) => m,
        Err(e) => html! { div.form-errors { (e.to_string()) } },
    }
}

fn item_panel(app: &App, ctx: &Ctx, item_id: u64, errs: &FieldErrors) -> AppResult<Markup> {
    let r = app.store.read()?;
    let item = r.get::<Item>(item_id)?.ok_or(AppError::NotFound)?;
    let kind = r.get::<ItemKind>(item.kind)?.ok_or(AppError::NotFound)?;
    let mut rows: Vec<(u64, Assignment)> = r
        .find_by::<Assignment>("item", &Value::Ref(item_id))?
        .into_iter()
        .filter_map(|aid| r.get::<Assignment>(aid).ok().flatten().map(|a| (aid, a)))
        .collect();
    rows.sort_by(|a, b| b.1.assigned_on.cmp(&a.1.assigned_on).then(b.0.cmp(&a.0)));
    let can_change = ctx.can("items.change");
    let holder = item.assignee.map(|e| app.registry.label_of("employees", e));
    let employees = app.registry.get("employees").map(|r| r.model().len()).unwrap_or(0);
    let open = item.assignee.is_none() && item.free() > 0;
    Ok(html! {
        section.card id="assignment" data-panel="assignment" {
            h2 { "Assignment" }
            @if kind.counted() {
                p { (item.assigned_qty) " of " (item.quantity) " handed out; " strong { (item.free()) } " free." }
            } @else {
                @match &holder {
                    Some(h) => p { "Assigned to " strong.assignee { (h) } "." },
                    None => p { "Not assigned." },
                }
            }
            @if can_change && open {
                form.form method="post" action=(paths::item_assign(item_id)) hx-post=(paths::item_assign(item_id)) hx-target="#assignment" hx-swap="outerHTML" {
                    (csrf_field(ctx))
                    div class=(if errs.get("employee").is_empty() { "field" } else { "field has-error" }) {
                        label for="assign-employee" { "Employee" }
                        @if employees <= SELECT_MAX {
                            select id="assign-employee" name="employee" required {
                                option value="" { "—" }
                                @for e in active_employees(app) {
                                    option value=(e.id) { (e.label) }
                                }
                            }
                        } @else {
                            (typeahead("employee", "assign-employee", "employees", None, "", &[("active", "yes")]))
                        }
                        @for m in errs.get("employee") { ul.errorlist { li { (m) } } }
                    }
                    @if kind.counted() {
                        div class=(if errs.get("quantity").is_empty() { "field" } else { "field has-error" }) {
                            label for="assign-qty" { "Quantity" }
                            input type="number" id="assign-qty" name="quantity" min="1" max=(item.free()) value="1";
                            @for m in errs.get("quantity") { ul.errorlist { li { (m) } } }
                        }
                    }
                    div.field {
                        label for="assign-note" { "Note" }
                        input type="text" id="assign-note" name="note";
                    }
                    div.form-actions { button.btn.btn-primary type="submit" { "Assign" } }
                }
            }
            h3 { "History" }
            (assignment_table(ctx, app, rows.iter(), can_change, false))
        }
    })
}

/// Employees who can receive items (people who have left are not offered).
fn active_employees(app: &App) -> Vec<Arc<crate::admin::list::Row>> {
    let Some(res) = app.registry.get("employees") else { return vec![] };
    let active = res.def().field_index("active").unwrap_or(0);
    let mut v: Vec<_> = res.model().all().into_iter().filter(|r| r.values[active] == Value::Bool(true)).collect();
    v.sort_by_key(|r| r.label.to_lowercase());
    v
}

#[handler]
async fn panel(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(id): Path<u64>) -> AppResult<Response> {
    Ok(html_response(item_panel(&app, &ctx, id, &FieldErrors::new())?))
}

#[derive(Deserialize)]
struct AssignForm {
    #[serde(default)]
    employee: String,
    #[serde(default, rename = "employee__search")]
    employee_search: String,
    quantity: Option<String>,
    note: Option<String>,
}

#[handler]
async fn assign(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path(id): Path<u64>,
    Form(f): Form<AssignForm>,
) -> AppResult<Response> {
    let mut errs = FieldErrors::new();
    let employee = match f.employee.trim().parse::<u64>() {
        Ok(e) => Some(e),
        Err(_) => {
            // Without JavaScript the typed name is resolved here.
            match app.registry.get("employees").map(|r| r.model().resolve(&f.employee_search)) {
                Some(Ok(id)) => Some(id),
                Some(Err(m)) => {
                    errs.add("employee", m);
                    None
                }
                None => {
                    errs.add("employee", "Choose an employee.");
                    None
                }
            }
        }
    };
    let quantity = match f.quantity.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => 1,
        Some(q) => q.parse::<i64>().unwrap_or_else(|_| {
            errs.add("quantity", "Enter a whole number.");
            0
        }),
    };
    let note = f.note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let result = match (employee, errs.is_empty()) {
        (Some(e), true) => {
            let today = app.today();
            app.store.write(ctx.actor(), move |tx| service::assign(tx, id, e, quantity, today, note)).await.map(|_| ())
        }
        _ => Err(AppError::Validation(errs)),
    };
    finish(&app, &ctx, id, result, "Assigned.")
}

fn finish(app: &App, ctx: &Ctx, item_id: u64, result: AppResult<()>, ok: &str) -> AppResult<Response> {
    match result {
        Ok(()) if ctx.fragment => Ok(html_response(item_panel(app, ctx, item_id, &FieldErrors::new())?)),
        Ok(()) => Ok(redirect(&paths::admin_edit("items", item_id), Some(Flash::success(ok)))),
        Err(AppError::Validation(e)) => {
            if ctx.fragment {
                // 200 so htmx swaps the panel in; the panel shows the field errors.
                Ok(html_response(item_panel(app, ctx, item_id, &e)?))
            } else {
                Ok(redirect(&paths::admin_edit("items", item_id), Some(Flash::error(e.to_string()))))
            }
        }
        Err(AppError::Conflict(m)) if ctx.fragment => {
            Ok(html_response(item_panel(app, ctx, item_id, &FieldErrors::single("employee", m))?))
        }
        Err(AppError::Conflict(m)) => Ok(redirect(&paths::admin_edit("items", item_id), Some(Flash::error(m)))),
        Err(e) => Err(e),
    }
}

#[handler]
async fn return_item(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(id): Path<u64>) -> AppResult<Response> {
    let today = app.today();
    let item = app.store.write(ctx.actor(), move |tx| service::return_assignment(tx, id, today)).await;
    match item {
        Ok(item_id) => finish(&app, &ctx, item_id, Ok(()), "Returned."),
        // Someone else returned it first: reload the page to show the current state.
        Err(AppError::Conflict(m)) if ctx.fragment => {
            let mut r = redirect(&paths::inventory(), Some(Flash::error(m)));
            r.headers_mut().insert("HX-Refresh", poem::http::HeaderValue::from_static("true"));
            r.set_status(poem::http::StatusCode::OK);
            Ok(r)
        }
        Err(AppError::Conflict(m)) => Ok(redirect(&paths::inventory(), Some(Flash::error(m)))),
        Err(e) => Err(e),
    }
}
