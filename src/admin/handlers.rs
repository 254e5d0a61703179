//! HTTP handlers of the generic admin pages. Thin: parse, call the store, render.

use std::sync::Arc;

use maud::html;
use poem::http::header;
use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Response, handler};

use super::def::Kind;
use super::form::{Submitted, parse_form};
use super::list::{Filter, Query as ListQuery};
use super::views::{self, ListParams};
use super::{AdminResource, Registry};
use crate::App;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::store::Value;
use crate::web::layout::{Flash, Page, redirect, render};
use crate::web::{Access, Ctx, Routes, paths};

pub fn routes(r: &mut Routes) {
    r.get("/admin/", Access::SignedIn, index);
    r.get("/admin/:slug/", Access::Resource("view"), list);
    r.get("/admin/:slug/export.csv", Access::Resource("view"), super::csv_io::export);
    r.get("/admin/:slug/lookup", Access::Resource("view"), lookup);
    r.get("/admin/:slug/new", Access::Resource("add"), new_form);
    r.post("/admin/:slug/new", Access::Resource("add"), create);
    r.get("/admin/:slug/:id/", Access::Resource("view"), edit_form);
    r.post("/admin/:slug/:id/", Access::Resource("change"), update);
    r.get("/admin/:slug/:id/delete", Access::Resource("delete"), delete_form);
    r.post("/admin/:slug/:id/delete", Access::Resource("delete"), delete);
    r.get("/admin/:slug/:id/history", Access::Resource("view"), history);
    r.post("/admin/:slug/bulk", Access::Resource("delete"), bulk);
    super::import::routes(r);
}

pub fn resource<'a>(app: &'a App, slug: &str) -> AppResult<&'a Arc<dyn AdminResource>> {
    app.registry.get(slug).ok_or(AppError::NotFound)
}

fn crumbs<'a>(p: Page<'a>, res: &dyn AdminResource) -> Page<'a> {
    p.crumb("Admin", paths::admin_index()).crumb(views::capitalise(res.def().plural), paths::admin_list(res.def().slug))
}

#[handler]
async fn index(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> Response {
    render(&app, &ctx, Page::new("Administration", views::index(&ctx, &app.registry)))
}

/// Translates list parameters into read-model filters.
pub fn filters_of(reg: &Registry, res: &dyn AdminResource, params: &ListParams) -> Result<Vec<Filter>, String> {
    let def = res.def();
    let _ = reg;
    let mut out = Vec::new();
    for (k, v) in &params.filters {
        let (name, suffix) = match k.split_once("__") {
            Some((n, s)) => (n, Some(s)),
            None => (k.as_str(), None),
        };
        let Some(i) = def.field_index(name) else { continue };
        let f = &def.fields[i];
        let filter = match (f.kind, suffix) {
            (Kind::Bool, None) => Filter::Eq(
                i,
                Value::Bool(super::form::parse_bool(v).ok_or_else(|| format!("{}: use yes or no", f.label))?),
            ),
            (Kind::Choice(_), None) => Filter::Eq(i, Value::text(v.clone())),
            (Kind::Ref { .. }, None) if v == "none" => Filter::Eq(i, Value::Null),
            (Kind::Ref { .. }, None) => {
                Filter::Eq(i, Value::Ref(v.parse().map_err(|_| format!("{}: not an id", f.label))?))
            }
            (Kind::Date, Some("from")) => Filter::DateRange(i, Some(super::form::parse_date(v)?), None),
            (Kind::Date, Some("to")) => Filter::DateRange(i, None, Some(super::form::parse_date(v)?)),
            _ => continue,
        };
        out.push(filter);
    }
    Ok(out)
}

/// The sort field index and direction for list parameters.
pub fn sort_of(res: &dyn AdminResource, params: &ListParams) -> (usize, bool) {
    let def = res.def();
    let o = if params.order.is_empty() { def.ordering } else { params.order.as_str() };
    let (name, desc) = match o.strip_prefix('-') {
        Some(n) => (n, true),
        None => (o, false),
    };
    match def.field_index(name).filter(|i| super::list::sortable(&def.fields[*i].kind)) {
        Some(i) => (i, desc),
        None => (def.field_index(def.ordering.trim_start_matches('-')).unwrap_or(0), def.ordering.starts_with('-')),
    }
}

/// Runs the list query a request's parameters describe: one page, or every match (`paginate`
/// false, for the CSV export of exactly the filtered view).
pub fn run_query(
    app: &App,
    res: &dyn AdminResource,
    pairs: &[(String, String)],
    paginate: bool,
) -> AppResult<(ListParams, super::list::Page)> {
    let def = res.def();
    let params = ListParams::from_pairs(def, pairs);
    let filters = filters_of(&app.registry, res, &params).map_err(AppError::BadRequest)?;
    let (sort_field, descending) = sort_of(res, &params);
    let page = res.model().query(&ListQuery {
        search: &params.q,
        filters: &filters,
        sort_field,
        descending,
        offset: if paginate { (params.page - 1) * def.per_page } else { 0 },
        limit: paginate.then_some(def.per_page),
    });
    Ok((params, page))
}

#[handler]
async fn list(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path(slug): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let def = res.def();
    let (params, page) = run_query(&app, res.as_ref(), &pairs, true)?;
    let body = views::list_page(&ctx, &app.registry, res.as_ref(), &params, &page);
    let qs = params.with(&[("page", "")]);
    let actions = html! {
        @if ctx.can(&format!("{}.add", def.slug)) {
            a.btn.btn-primary href=(paths::admin_new(def.slug)) { "Add " (def.singular) }
            @if def.importable { a.btn href=(paths::admin_import(def.slug)) { "Import CSV" } }
        }
        a.btn href=(paths::admin_export(def.slug, &qs)) { "Export CSV" }
    };
    let title = views::capitalise(def.plural);
    Ok(render(&app, &ctx, Page::new(&title, body).crumb("Admin", paths::admin_index()).actions(actions)))
}

#[handler]
async fn lookup(
    app: Data<&App>,
    Path(slug): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let sub = Submitted(&pairs);
    let name = sub.one("name").unwrap_or("");
    let text = sub.one(&format!("{name}__search")).or(sub.one("q")).unwrap_or("").trim().to_string();
    let params = ListParams::from_pairs(res.def(), &pairs);
    let filters = filters_of(&app.registry, res.as_ref(), &params).map_err(AppError::BadRequest)?;
    let page = res.model().query(&ListQuery {
        search: &text,
        filters: &filters,
        sort_field: sort_of(res.as_ref(), &ListParams::default()).0,
        descending: false,
        offset: 0,
        limit: Some(10),
    });
    Ok(crate::web::layout::html_response(html! {
        @if page.rows.is_empty() { li.typeahead-empty { "No match" } }
        @for r in &page.rows {
            li { button.typeahead-option type="button" data-id=(r.id) data-label=(r.label) { (r.label) } }
        }
    }))
}

fn empty_values(res: &dyn AdminResource) -> Vec<Value> {
    res.def()
        .fields
        .iter()
        .map(|f| match f.kind {
            Kind::Bool if f.name == "active" => Value::Bool(true),
            _ => Value::Null,
        })
        .collect()
}

#[handler]
async fn new_form(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(slug): Path<String>) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let def = res.def();
    let values = empty_values(res.as_ref());
    let body = views::edit_form(&ctx, &app.registry, def, None, &values, None, &FieldErrors::new(), true, html! {});
    let title = format!("Add {}", def.singular);
    Ok(render(&app, &ctx, crumbs(Page::new(&title, body), res.as_ref())))
}

#[handler]
async fn create(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path(slug): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    save(&app, &ctx, &slug, None, pairs).await
}

async fn save(
    app: &App,
    ctx: &Arc<Ctx>,
    slug: &str,
    id: Option<u64>,
    pairs: Vec<(String, String)>,
) -> AppResult<Response> {
    let res = resource(app, slug)?.clone();
    let def = res.def();
    let sub = Submitted(&pairs);
    let (values, mut errs) = parse_form(&app.registry, def, &sub, app.currency, id.is_none());
    let outcome = if errs.is_empty() {
        let r = res.clone();
        let currency = app.currency;
        app.store.write(ctx.actor(), move |tx| r.save(tx, id, &values, currency)).await
    } else {
        Err(AppError::Validation(FieldErrors::new()))
    };
    match outcome {
        Ok(new_id) => {
            let label = res.model().label(new_id).unwrap_or_default();
            let verb = if id.is_some() { "changed" } else { "added" };
            let msg = format!("The {} “{label}” was {verb}.", def.singular);
            let to = if sub.one("_continue").is_some() { paths::admin_new(slug) } else { paths::admin_list(slug) };
            Ok(redirect(&to, Some(Flash::success(msg))))
        }
        Err(AppError::Validation(more)) => {
            errs.merge(more);
            let stored = match id {
                Some(i) => stored_values(app, res.as_ref(), i)?,
                None => empty_values(res.as_ref()),
            };
            let body = views::edit_form(ctx, &app.registry, def, id, &stored, Some(&sub), &errs, true, html! {});
            let title = match id {
                Some(_) => format!("Change {}", def.singular),
                None => format!("Add {}", def.singular),
            };
            let mut resp = render(app, ctx, crumbs(Page::new(&title, body), res.as_ref()));
            resp.set_status(poem::http::StatusCode::UNPROCESSABLE_ENTITY);
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

fn stored_values(app: &App, res: &dyn AdminResource, id: u64) -> AppResult<Vec<Value>> {
    let _ = app;
    res.model().get(id).map(|r| r.values.clone()).ok_or(AppError::NotFound)
}

#[handler]
async fn edit_form(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path((slug, id)): Path<(String, u64)>,
) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let def = res.def();
    let row = res.model().get(id).ok_or(AppError::NotFound)?;
    let can_change = ctx.can(&format!("{slug}.change"));
    let extra = match app.panels.iter().find(|(s, _)| *s == slug) {
        Some((_, panel)) => panel(&app, &ctx, id),
        None => html! {},
    };
    let body =
        views::edit_form(&ctx, &app.registry, def, Some(id), &row.values, None, &FieldErrors::new(), can_change, extra);
    let actions = html! { a.btn href=(paths::admin_history(&slug, id)) { "History" } };
    Ok(render(&app, &ctx, crumbs(Page::new(&row.label, body), res.as_ref()).actions(actions)))
}

#[handler]
async fn update(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path((slug, id)): Path<(String, u64)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    resource(&app, &slug)?.model().get(id).ok_or(AppError::NotFound)?;
    save(&app, &ctx, &slug, Some(id), pairs).await
}

#[handler]
async fn delete_form(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path((slug, id)): Path<(String, u64)>,
) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let row = res.model().get(id).ok_or(AppError::NotFound)?;
    let deps = app.registry.dependents(&slug, id);
    let body =
        views::delete_confirm(&ctx, res.def(), &[(id, row.label.clone())], &deps, &paths::admin_delete(&slug, id));
    let title = format!("Delete {}", res.def().singular);
    Ok(render(&app, &ctx, crumbs(Page::new(&title, body), res.as_ref())))
}

#[handler]
async fn delete(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path((slug, id)): Path<(String, u64)>) -> AppResult<Response> {
    delete_many(&app, &ctx, &slug, vec![id]).await
}

async fn delete_many(app: &App, ctx: &Arc<Ctx>, slug: &str, ids: Vec<u64>) -> AppResult<Response> {
    let res = resource(app, slug)?;
    let def = res.def();
    let reg = app.registry.clone();
    let s = slug.to_string();
    let n = ids.len();
    let result = app
        .store
        .write(ctx.actor(), move |tx| {
            for id in &ids {
                reg.delete_with_dependents(tx, &s, *id)?;
            }
            Ok(())
        })
        .await;
    match result {
        Ok(()) => {
            let what = if n == 1 { def.singular.to_string() } else { format!("{n} {}", def.plural) };
            Ok(redirect(&paths::admin_list(slug), Some(Flash::success(format!("Deleted {what}.")))))
        }
        Err(AppError::Conflict(m)) => Ok(redirect(&paths::admin_list(slug), Some(Flash::error(m)))),
        Err(e) => Err(e),
    }
}

#[handler]
async fn bulk(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path(slug): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let sub = Submitted(&pairs);
    if sub.one("action") != Some("delete") {
        return Err(AppError::BadRequest("Choose an action.".into()));
    }
    let ids: Vec<u64> = sub.all("ids").iter().filter_map(|s| s.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(redirect(&paths::admin_list(&slug), Some(Flash::info("Select one or more rows first."))));
    }
    if sub.one("confirm") == Some("yes") {
        return delete_many(&app, &ctx, &slug, ids).await;
    }
    let mut targets = Vec::new();
    let mut deps = Vec::new();
    for id in &ids {
        if let Some(row) = res.model().get(*id) {
            targets.push((*id, row.label.clone()));
            deps.extend(app.registry.dependents(&slug, *id));
        }
    }
    let body = views::delete_confirm(&ctx, res.def(), &targets, &deps, &paths::admin_bulk(&slug));
    let title = format!("Delete {} {}", targets.len(), res.def().plural);
    Ok(render(&app, &ctx, crumbs(Page::new(&title, body), res.as_ref())))
}

#[handler]
async fn history(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path((slug, id)): Path<(String, u64)>) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let entries = app.store.history(res.table(), id)?;
    if entries.is_empty() && res.model().get(id).is_none() {
        return Err(AppError::NotFound);
    }
    let label = res.model().label(id).unwrap_or_else(|| format!("#{id} (deleted)"));
    let body = views::history(&app.registry, res.def(), &entries);
    let title = format!("History: {label}");
    let page = crumbs(Page::new(&title, body), res.as_ref()).crumb(label, paths::admin_edit(&slug, id));
    Ok(render(&app, &ctx, page))
}

/// `Content-Disposition` for a download.
pub fn attachment(resp: Response, filename: &str) -> Response {
    let mut resp = resp.into_response();
    if let Ok(v) = poem::http::HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
