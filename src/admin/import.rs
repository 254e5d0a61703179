//! CSV import: upload, a dry-run preview (new / changed / unchanged / error per row), then
//! a confirm step that applies every row in one transaction, or none. Both steps run in the
//! background with a live progress bar.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use maud::{Markup, html};
use poem::web::{Data, Multipart, Path};
use poem::{Response, handler};

use super::AdminResource;
use super::csv_io::{ImportRow, parse_csv};
use super::def::Values;
use super::handlers::resource;
use super::views::capitalise;
use crate::App;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::store::{Actor, Value};
use crate::web::layout::{Flash, Page, csrf_field, redirect, render};
use crate::web::{Access, Ctx, Routes, paths};

pub fn routes(r: &mut Routes) {
    r.get("/admin/:slug/import", Access::Resource("add"), upload_form);
    r.post("/admin/:slug/import", Access::Resource("add"), upload);
    r.get("/admin/:slug/import/:job", Access::Resource("add"), job_page);
    r.post("/admin/:slug/import/:job", Access::Resource("add"), confirm);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    New,
    Changed,
    Unchanged,
    Error,
}

#[derive(Debug, Clone)]
pub struct RowResult {
    pub line: usize,
    pub outcome: Outcome,
    pub label: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum Stage {
    Previewing,
    Preview(Vec<RowResult>),
    Applying,
    Done { created: usize, changed: usize },
    Failed(String),
}

pub struct Job {
    pub slug: String,
    pub user_id: u64,
    pub filename: String,
    rows: Vec<ImportRow>,
    pub total: usize,
    pub done: AtomicUsize,
    pub stage: Mutex<Stage>,
}

#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Jobs {
    fn add(&self, job: Job) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 50 {
            let oldest = m.keys().min().copied();
            if let Some(k) = oldest {
                m.remove(&k);
            }
        }
        m.insert(id, Arc::new(job));
        id
    }
    fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }
}

#[handler]
async fn upload_form(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(slug): Path<String>) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    Ok(render(&app, &ctx, page_for(res.as_ref(), "Import CSV", upload_markup(&ctx, res.as_ref(), None))))
}

fn page_for<'a>(res: &dyn AdminResource, title: &'a str, body: Markup) -> Page<'a> {
    Page::new(title, body)
        .crumb("Admin", paths::admin_index())
        .crumb(capitalise(res.def().plural), paths::admin_list(res.def().slug))
}

fn upload_markup(ctx: &Ctx, res: &dyn AdminResource, error: Option<&str>) -> Markup {
    let def = res.def();
    let cols: Vec<&str> = def.fields.iter().filter(|f| !f.readonly && !f.is_write_only()).map(|f| f.name).collect();
    html! {
        @if let Some(e) = error { div.form-errors role="alert" { (e) } }
        form.form method="post" action=(paths::admin_import(def.slug)) enctype="multipart/form-data" {
            (csrf_field(ctx))
            div.field {
                label for="file" { "CSV file" }
                input type="file" id="file" name="file" accept=".csv,text/csv" required;
                p.help {
                    "The first row names the columns: " code { "id" } " (optional: rows with an id change that record) and any of "
                    @for (i, c) in cols.iter().enumerate() { @if i > 0 { ", " } code { (c) } } ". "
                    "An export of this list is a valid import file. You will see a preview before anything changes."
                }
            }
            div.form-actions { button.btn.btn-primary type="submit" { "Upload and preview" } }
        }
    }
}

#[handler]
async fn upload(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path(slug): Path<String>,
    mut mp: Multipart,
) -> AppResult<Response> {
    let res = resource(&app, &slug)?.clone();
    let user = ctx.user()?.clone();
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Ok(Some(field)) = mp.next_field().await {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("upload.csv").to_string();
            let bytes = field.bytes().await.map_err(|e| AppError::BadRequest(format!("Upload failed: {e}")))?;
            file = Some((name, bytes));
        }
    }
    let fail =
        |m: &str| render(&app, &ctx, page_for(res.as_ref(), "Import CSV", upload_markup(&ctx, res.as_ref(), Some(m))));
    let Some((filename, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        let mut r = fail("Choose a CSV file to upload.");
        r.set_status(poem::http::StatusCode::BAD_REQUEST);
        return Ok(r);
    };
    let rows = match parse_csv(&app.registry, res.def(), &bytes, app.currency) {
        Ok(r) => r,
        Err(m) => {
            let mut r = fail(&m);
            r.set_status(poem::http::StatusCode::BAD_REQUEST);
            return Ok(r);
        }
    };
    let total = rows.len();
    let job = Job {
        slug: slug.clone(),
        user_id: user.user_id,
        filename,
        rows,
        total,
        done: AtomicUsize::new(0),
        stage: Mutex::new(Stage::Previewing),
    };
    let id = app.imports.add(job);
    let job = app.imports.get(id).ok_or(AppError::NotFound)?;
    let app2 = (*app).clone();
    let actor = ctx.actor();
    tokio::spawn(async move {
        let stage = match run(&app2, &job, actor, true).await {
            Ok(results) => Stage::Preview(results),
            Err(e) => Stage::Failed(e.to_string()),
        };
        *job.stage.lock().unwrap_or_else(|p| p.into_inner()) = stage;
    });
    Ok(redirect(&paths::admin_import_job(&slug, id), None))
}

/// Runs every row in one transaction. In a dry run the transaction is rolled back and each
/// row's outcome returned; otherwise any error rolls back the whole import.
async fn run(app: &App, job: &Arc<Job>, actor: Actor, dry: bool) -> Result<Vec<RowResult>, AppError> {
    let res = resource(app, &job.slug)?.clone();
    let job2 = job.clone();
    let currency = app.currency;
    let reg = app.registry.clone();
    job.done.store(0, Ordering::SeqCst);
    let f = move |tx: &mut crate::store::Tx<'_, '_>| -> Result<Vec<RowResult>, AppError> {
        let def = res.def();
        let mut out = Vec::with_capacity(job2.rows.len());
        for row in &job2.rows {
            job2.done.fetch_add(1, Ordering::Relaxed);
            let mut result =
                RowResult { line: row.line, outcome: Outcome::Error, label: String::new(), message: String::new() };
            if !row.errors.is_empty() {
                result.message = row.errors.to_string();
                out.push(result);
                continue;
            }
            let existing = match row.id {
                Some(id) => res.load(tx, id)?,
                None => None,
            };
            if row.id.is_some() && existing.is_none() {
                result.message = format!("There is no record with id {}.", row.id.unwrap_or(0));
                out.push(result);
                continue;
            }
            // Columns missing from the file keep their stored values.
            let mut values: Values = Values::new();
            if let Some(old) = &existing {
                for (i, f) in def.fields.iter().enumerate() {
                    if !f.readonly && !f.is_write_only() {
                        values.insert(f.name, old[i].clone());
                    }
                }
            }
            for (k, v) in &row.values {
                values.insert(k, v.clone());
            }
            for f in &def.fields {
                let missing = values.get(f.name).is_none_or(Value::is_null);
                if f.required && missing && !f.is_write_only() && !matches!(f.kind, super::Kind::Bool) {
                    let mut e = FieldErrors::new();
                    e.add(f.name, "This field is required.");
                    result.message = e.to_string();
                }
            }
            if !result.message.is_empty() {
                out.push(result);
                continue;
            }
            match res.save(tx, row.id, &values, currency) {
                Ok(id) => {
                    let after = res.load(tx, id)?.unwrap_or_default();
                    result.label = super::form::display_value(
                        &reg,
                        &def.fields[def.field_index(def.list_display[0]).unwrap_or(0)],
                        &after[def.field_index(def.list_display[0]).unwrap_or(0)],
                    );
                    result.outcome = match &existing {
                        None => Outcome::New,
                        Some(old) if *old == after => Outcome::Unchanged,
                        Some(_) => Outcome::Changed,
                    };
                }
                Err(AppError::Validation(e)) => result.message = e.to_string(),
                Err(e) => return Err(e),
            }
            if !dry && result.outcome == Outcome::Error {
                return Err(AppError::BadRequest(format!("Line {}: {}", row.line, result.message)));
            }
            out.push(result);
        }
        if !dry && out.iter().any(|r| r.outcome == Outcome::Error) {
            return Err(AppError::BadRequest("The file has rows with errors; nothing was imported.".into()));
        }
        Ok(out)
    };
    if dry { app.store.dry_run(actor, f).await } else { app.store.write(actor, f).await }
}

#[handler]
async fn job_page(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path((slug, id)): Path<(String, u64)>) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let job = app
        .imports
        .get(id)
        .filter(|j| j.slug == slug && ctx.user().is_ok_and(|u| u.user_id == j.user_id))
        .ok_or(AppError::NotFound)?;
    let stage = job.stage.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let running = matches!(stage, Stage::Previewing | Stage::Applying);
    let done = job.done.load(Ordering::Relaxed).min(job.total);
    let body = html! {
        div id="import-job" hx-get=[running.then(|| paths::admin_import_job(&slug, id))] hx-trigger=[running.then_some("every 500ms")] hx-swap="outerHTML" hx-select="#import-job" {
            p.muted { "File: " (job.filename) " · " (job.total) " rows" }
            @match &stage {
                Stage::Previewing | Stage::Applying => {
                    div.progress {
                        progress max=(job.total) value=(done) {}
                        p { (if matches!(stage, Stage::Previewing) { "Checking" } else { "Importing" }) " row " (done) " of " (job.total) "…" }
                    }
                    noscript { p { a href=(paths::admin_import_job(&slug, id)) { "Refresh to see progress" } } }
                }
                Stage::Failed(m) => div.form-errors role="alert" { "Nothing was imported: " (m) },
                Stage::Done { created, changed } => {
                    p { "Imported: " (created) " new, " (changed) " changed." }
                    a.btn.btn-primary href=(paths::admin_list(&slug)) { "Back to the list" }
                }
                Stage::Preview(rows) => (preview(&ctx, &slug, id, rows)),
            }
        }
    };
    Ok(render(&app, &ctx, page_for(res.as_ref(), "Import CSV", body)))
}

fn preview(ctx: &Ctx, slug: &str, id: u64, rows: &[RowResult]) -> Markup {
    let count = |o: Outcome| rows.iter().filter(|r| r.outcome == o).count();
    let errors = count(Outcome::Error);
    html! {
        p {
            strong { (count(Outcome::New)) } " new · " strong { (count(Outcome::Changed)) } " changed · "
            strong { (count(Outcome::Unchanged)) } " unchanged · " strong { (errors) } " with errors"
        }
        @if errors > 0 {
            div.form-errors role="alert" { "Fix the rows with errors and upload the file again; nothing has been imported." }
        } @else {
            form method="post" action=(paths::admin_import_job(slug, id)) {
                (csrf_field(ctx))
                div.form-actions {
                    button.btn.btn-primary type="submit" { "Confirm import" }
                    a.btn href=(paths::admin_import(slug)) { "Cancel" }
                }
            }
        }
        table.preview {
            thead { tr { th { "Line" } th { "Result" } th { "Record" } th { "Problem" } } }
            tbody {
                @for r in rows.iter().take(1000) {
                    tr class=(match r.outcome { Outcome::New => "row-new", Outcome::Changed => "row-changed", Outcome::Unchanged => "row-unchanged", Outcome::Error => "row-error" }) {
                        td.num { (r.line) }
                        td { (match r.outcome { Outcome::New => "new", Outcome::Changed => "changed", Outcome::Unchanged => "unchanged", Outcome::Error => "error" }) }
                        td { (r.label) }
                        td { (r.message) }
                    }
                }
            }
        }
        @if rows.len() > 1000 { p.muted { "Showing the first 1,000 rows." } }
    }
}

#[handler]
async fn confirm(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path((slug, id)): Path<(String, u64)>) -> AppResult<Response> {
    let job = app
        .imports
        .get(id)
        .filter(|j| j.slug == slug && ctx.user().is_ok_and(|u| u.user_id == j.user_id))
        .ok_or(AppError::NotFound)?;
    {
        let mut st = job.stage.lock().unwrap_or_else(|p| p.into_inner());
        match &*st {
            Stage::Preview(rows) if rows.iter().all(|r| r.outcome != Outcome::Error) => *st = Stage::Applying,
            _ => {
                return Ok(redirect(
                    &paths::admin_import_job(&slug, id),
                    Some(Flash::error("This import cannot be confirmed now.")),
                ));
            }
        }
    }
    let needs_change = job.rows.iter().any(|r| r.id.is_some());
    if needs_change && !ctx.can(&format!("{slug}.change")) {
        *job.stage.lock().unwrap_or_else(|p| p.into_inner()) =
            Stage::Failed("The file changes existing records, which you may not do.".into());
        return Err(AppError::Forbidden);
    }
    let app2 = (*app).clone();
    let actor = ctx.actor();
    let job2 = job.clone();
    tokio::spawn(async move {
        let stage = match run(&app2, &job2, actor, false).await {
            Ok(results) => Stage::Done {
                created: results.iter().filter(|r| r.outcome == Outcome::New).count(),
                changed: results.iter().filter(|r| r.outcome == Outcome::Changed).count(),
            },
            Err(e) => Stage::Failed(e.to_string()),
        };
        *job2.stage.lock().unwrap_or_else(|p| p.into_inner()) = stage;
    });
    Ok(redirect(&paths::admin_import_job(&slug, id), None))
}
