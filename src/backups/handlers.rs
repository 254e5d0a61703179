//! The backups page and its actions.

use std::sync::Arc;

use maud::html;
use poem::web::{Data, Path};
use poem::{Body, Response, handler};

use super::archive;
use crate::App;
use crate::error::{AppError, AppResult};
use crate::web::layout::{Flash, Page, csrf_field, redirect, render};
use crate::web::{Access, Ctx, Routes};

pub fn routes(r: &mut Routes) {
    r.get("/backups", Access::perm("backups.view"), list);
    r.post("/backups", Access::perm("backups.create"), create);
    r.get("/backups/:name/download", Access::perm("backups.download"), download);
    r.post("/backups/:name/verify", Access::perm("backups.view"), verify);
    r.post("/backups/:name/delete", Access::perm("backups.delete"), delete);
}

pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) manifest: Option<archive::Manifest>,
}

fn read_manifest(path: &std::path::Path) -> Option<archive::Manifest> {
    // The manifest is the first tar entry: reading it does not decompress the snapshot.
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let dec = zstd::Decoder::new(f).ok()?;
    let mut ar = tar::Archive::new(dec);
    let mut entries = ar.entries().ok()?;
    let mut first = entries.next()?.ok()?;
    let mut json = Vec::new();
    first.read_to_end(&mut json).ok()?;
    serde_json::from_slice(&json).ok()
}

pub(crate) fn listing(app: &App) -> Vec<Listed> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(super::dir(&app.config.data_dir)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if super::file_of(&app.config.data_dir, &name).is_none() {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(Listed { manifest: read_manifest(&e.path()), name, size });
        }
    }
    out.sort_by(|a, b| b.name.cmp(&a.name));
    out
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[handler]
async fn list(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> AppResult<Response> {
    let items = listing(&app);
    let actions = html! {
        @if ctx.can("backups.create") {
            form method="post" action="/backups" {
                (csrf_field(&ctx))
                button.btn.btn-primary type="submit" { "Back up now" }
            }
        }
    };
    let body = html! {
        p.muted {
            "Each backup is one file: a consistent snapshot of the database with a manifest (row counts, SHA-256). "
            "Restore one with the server stopped: " code { "bravely backup restore FILE" } "."
        }
        table.list {
            thead { tr { th { "Made" } th { "Policy" } th { "Scope" } th.num { "Size" } th.num { "Rows" } th { "" } } }
            tbody {
                @if items.is_empty() { tr { td.empty colspan="6" { "No backups yet." } } }
                @for b in &items {
                    tr {
                        td { (b.manifest.as_ref().map(|m| m.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| "unreadable".into())) }
                        td { (b.manifest.as_ref().map(|m| m.policy.clone()).unwrap_or_default()) }
                        td { (b.manifest.as_ref().map(|m| m.scope.clone()).unwrap_or_default()) }
                        td.num { (human(b.size)) }
                        td.num { (b.manifest.as_ref().map(|m| m.tables.values().sum::<u64>()).unwrap_or(0)) }
                        td {
                            @if ctx.can("backups.download") { a.btn.btn-small href={ "/backups/" (b.name) "/download" } { "Download" } " " }
                            form.inline method="post" action={ "/backups/" (b.name) "/verify" } {
                                (csrf_field(&ctx)) button.btn.btn-small type="submit" { "Verify" }
                            }
                            @if ctx.can("backups.delete") {
                                " "
                                form.inline method="post" action={ "/backups/" (b.name) "/delete" } data-confirm="Delete this backup file?" {
                                    (csrf_field(&ctx)) button.btn.btn-small.btn-danger type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&app, &ctx, Page::new("Backups", body).actions(actions)))
}

/// Makes a backup now and returns its file name.
pub async fn create_now(app: &App, policy: &str) -> Result<(String, archive::Manifest), AppError> {
    let _guard = app.backup_lock.try_lock().map_err(|_| AppError::Conflict("A backup is already running.".into()))?;
    let name = super::new_name(app.store.now(), policy);
    let out = super::dir(&app.config.data_dir).join(&name);
    let store = app.store.clone();
    let policy = policy.to_string();
    let started = app.store.clock().instant();
    let result = tokio::task::spawn_blocking(move || archive::create(&store, &out, &policy))
        .await
        .map_err(AppError::internal)?;
    app.backup_metrics.created(result.is_ok(), started.elapsed().as_secs_f64(), app.store.now().timestamp());
    let manifest = result.map_err(AppError::internal)?;
    tracing::info!(file = %name, rows = manifest.tables.values().sum::<u64>(), "backup written");
    Ok((name, manifest))
}

#[handler]
async fn create(app: Data<&App>) -> AppResult<Response> {
    match create_now(&app, "manual").await {
        Ok((name, _)) => {
            Ok(redirect("/backups", Some(Flash::success(format!("Backup {name} written and checked in.")))))
        }
        Err(AppError::Conflict(m)) => Ok(redirect("/backups", Some(Flash::error(m)))),
        Err(e) => Err(e),
    }
}

#[handler]
pub(crate) async fn download(app: Data<&App>, Path(name): Path<String>) -> AppResult<Response> {
    let path = super::file_of(&app.config.data_dir, &name).ok_or(AppError::NotFound)?;
    let file = tokio::fs::File::open(&path).await.map_err(AppError::internal)?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let resp = Response::builder()
        .content_type("application/octet-stream")
        .header("content-length", len)
        .body(Body::from_async_read(file));
    Ok(crate::admin::handlers::attachment(resp, &name))
}

#[handler]
async fn verify(app: Data<&App>, Path(name): Path<String>) -> AppResult<Response> {
    let path = super::file_of(&app.config.data_dir, &name).ok_or(AppError::NotFound)?;
    let result = tokio::task::spawn_blocking(move || archive::verify(&path, None)).await.map_err(AppError::internal)?;
    app.backup_metrics.verified(result.is_ok());
    Ok(match result {
        Ok(m) => redirect(
            "/backups",
            Some(Flash::success(format!(
                "{name} is sound: checksum matches, the snapshot opens, {} rows in {} tables as recorded.",
                m.tables.values().sum::<u64>(),
                m.tables.len()
            ))),
        ),
        Err(e) => {
            tracing::error!(file = %name, error = %e, "backup verification failed");
            redirect("/backups", Some(Flash::error(e.to_string())))
        }
    })
}

#[handler]
async fn delete(app: Data<&App>, Path(name): Path<String>) -> AppResult<Response> {
    let path = super::file_of(&app.config.data_dir, &name).ok_or(AppError::NotFound)?;
    let Ok(_guard) = app.backup_lock.try_lock() else {
        return Ok(redirect("/backups", Some(Flash::error("A backup is running; try again shortly."))));
    };
    std::fs::remove_file(&path).map_err(AppError::internal)?;
    tracing::info!(file = %name, "backup deleted");
    Ok(redirect("/backups", Some(Flash::success(format!("Deleted {name}.")))))
}
