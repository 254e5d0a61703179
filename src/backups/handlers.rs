//! The backups page and its actions.

use std::sync::Arc;

use maud::{Markup, html};
use poem::web::{Data, Form, Multipart, Path};
use poem::{Body, Response, handler};
use serde::Deserialize;

use super::service::{self, human_bytes};
use super::{archive, policy, restore};
use crate::App;
use crate::error::{AppError, AppResult};
use crate::web::layout::{Flash, Page, csrf_field, redirect, render};
use crate::web::{Access, Ctx, Routes};

pub fn routes(r: &mut Routes) {
    r.get("/backups", Access::perm("backups.view"), list);
    r.post("/backups", Access::perm("backups.create"), create);
    r.post("/backups/upload", Access::perm("backups.create"), upload);
    r.get("/backups/:name/download", Access::perm("backups.download"), download);
    r.post("/backups/:name/verify", Access::perm("backups.view"), verify);
    r.post("/backups/:name/delete", Access::perm("backups.delete"), delete);
    r.get("/backups/:name/restore", Access::perm("backups.restore"), restore_form);
    r.post("/backups/:name/restore", Access::perm("backups.restore"), restore_post);
    r.get("/backups/remote/:policy", Access::perm("backups.view"), remote_list);
    r.get("/backups/remote/:policy/:name/download", Access::perm("backups.download"), remote_download);
    r.post("/backups/remote/:policy/:name/verify", Access::perm("backups.view"), remote_verify);
    r.post("/backups/remote/:policy/:name/fetch", Access::perm("backups.restore"), remote_fetch);
    r.post("/backups/remote/:policy/:name/delete", Access::perm("backups.delete"), remote_delete);
}

/// The destination URL of a policy that keeps its backups elsewhere.
fn remote_of(app: &App, policy: &str) -> Result<String, AppError> {
    policy::policies(&app.config)
        .map_err(AppError::internal)?
        .into_iter()
        .find(|p| p.name == policy)
        .and_then(|p| match p.target {
            policy::Target::Remote(url) => Some(url),
            policy::Target::Local => None,
        })
        .ok_or(AppError::NotFound)
}

fn open_remote(app: &App, policy: &str) -> Result<super::destination::Destination, AppError> {
    let url = remote_of(app, policy)?;
    super::destination::Destination::open(&url, &app.config.backups.storage)
        .map_err(|e| AppError::BadRequest(e.to_string()))
}

/// The backups at a policy's destination: loaded after the page, so a slow or unreachable
/// storage never slows the page down.
#[handler]
async fn remote_list(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(policy_name): Path<String>) -> AppResult<Response> {
    let url = remote_of(&app, &policy_name)?;
    let listed = tokio::time::timeout(std::time::Duration::from_secs(20), service::remote_listing(&app, &url)).await;
    let base = format!("/backups/remote/{policy_name}");
    let body = match listed {
        Err(_) => html! { p.error { "The destination did not answer within 20 s." } },
        Ok(Err(e)) => html! { p.error { "Cannot list the destination: " (e) } },
        Ok(Ok(found)) => html! {
            table.list {
                thead { tr { th { "Made" } th.num { "Size" } th { "Verified" } th { "" } } }
                tbody {
                    @if found.is_empty() { tr { td.empty colspan="4" { "No backups there yet." } } }
                    @for b in &found {
                        @let check = service::remote_check(&app, &b.name);
                        tr {
                            td title=(b.name) { (service::made_at(&b.name).map(|t| when(t, &app)).unwrap_or_else(|| b.name.clone())) }
                            td.num { (human_bytes(b.size)) }
                            td {
                                @match &check {
                                    None => span.muted { "not yet" },
                                    Some(c) if c.ok && c.contents_checked => span.ok title=(c.message) { "yes, " (when(c.at, &app)) },
                                    Some(c) if c.ok => span.muted title=(c.message) { "checksum only, " (when(c.at, &app)) },
                                    Some(c) => span.error title=(c.message) { "FAILED " (when(c.at, &app)) },
                                }
                            }
                            td {
                                @if ctx.can("backups.download") { a.btn.btn-small href={ (base) "/" (b.name) "/download" } { "Download" } " " }
                                form.inline method="post" action={ (base) "/" (b.name) "/verify" } {
                                    (csrf_field(&ctx)) button.btn.btn-small type="submit" { "Verify" }
                                }
                                @if ctx.can("backups.restore") {
                                    " "
                                    form.inline method="post" action={ (base) "/" (b.name) "/fetch" } {
                                        (csrf_field(&ctx)) button.btn.btn-small type="submit" title="Copy it to this server, to restore it" { "Fetch" }
                                    }
                                }
                                @if ctx.can("backups.delete") {
                                    " "
                                    form.inline method="post" action={ (base) "/" (b.name) "/delete" } data-confirm="Delete this backup at the destination?" {
                                        (csrf_field(&ctx)) button.btn.btn-small.btn-danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    };
    Ok(Response::builder().content_type("text/html; charset=utf-8").body(body.into_string()))
}

/// Streams a backup from its destination.
#[handler]
async fn remote_download(app: Data<&App>, Path((policy_name, name)): Path<(String, String)>) -> AppResult<Response> {
    let dest = open_remote(&app, &policy_name)?;
    let read = dest.read(&name).await.map_err(|e| match e {
        super::destination::DestinationError::NotFound { .. }
        | super::destination::DestinationError::InvalidName(_) => AppError::NotFound,
        e => AppError::BadRequest(e.to_string()),
    })?;
    use futures_util::TryStreamExt;
    let stream = read.stream.map_err(std::io::Error::from);
    let resp = Response::builder()
        .content_type("application/octet-stream")
        .header("content-length", read.size)
        .body(Body::from_bytes_stream(stream));
    Ok(crate::admin::handlers::attachment(resp, &name))
}

#[handler]
async fn remote_verify(app: Data<&App>, Path((policy_name, name)): Path<(String, String)>) -> AppResult<Response> {
    let url = remote_of(&app, &policy_name)?;
    Ok(match service::verify_remote(&app, &url, &name).await {
        Ok(c) if c.contents_checked => redirect(
            "/backups",
            Some(Flash::success(format!(
                "{name} was read back from {} and is sound ({} rows).",
                policy::redact_url(&url),
                c.manifest.rows()
            ))),
        ),
        Ok(_) => redirect(
            "/backups",
            Some(Flash::info(format!(
                "{name}: the encrypted payload matches its checksum; no passphrase here to open it."
            ))),
        ),
        Err(e) => {
            tracing::error!(file = %name, error = %e, "remote backup verification failed");
            redirect("/backups", Some(Flash::error(e)))
        }
    })
}

/// Copies a remote backup to this server, where it can be verified and restored.
#[handler]
async fn remote_fetch(app: Data<&App>, Path((policy_name, name)): Path<(String, String)>) -> AppResult<Response> {
    let dest = open_remote(&app, &policy_name)?;
    if super::file_of(&app.config.data_dir, &name).is_some() {
        return Ok(redirect("/backups", Some(Flash::info(format!("{name} is on this server already.")))));
    }
    let dir = super::dir(&app.config.data_dir);
    tokio::fs::create_dir_all(&dir).await.map_err(AppError::internal)?;
    let tmp = dir.join(format!(".fetch-{name}"));
    match dest.download_to(&name, &tmp).await {
        Ok(_) => {
            tokio::fs::rename(&tmp, dir.join(&name)).await.map_err(AppError::internal)?;
            Ok(redirect(
                "/backups",
                Some(Flash::success(format!("{name} is now on this server: verify or restore it above."))),
            ))
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Ok(redirect("/backups", Some(Flash::error(format!("Not fetched: {e}")))))
        }
    }
}

#[handler]
async fn remote_delete(app: Data<&App>, Path((policy_name, name)): Path<(String, String)>) -> AppResult<Response> {
    let dest = open_remote(&app, &policy_name)?;
    let Ok(_guard) = app.backup_lock.try_lock() else {
        return Ok(redirect("/backups", Some(Flash::error("A backup or restore is running; try again shortly."))));
    };
    match dest.delete(&name).await {
        Ok(()) => {
            tracing::info!(file = %name, at = %dest.url(), "remote backup deleted");
            Ok(redirect("/backups", Some(Flash::success(format!("Deleted {name} at {}.", dest.url())))))
        }
        Err(e) => Ok(redirect("/backups", Some(Flash::error(format!("Not deleted: {e}"))))),
    }
}

fn when(t: chrono::DateTime<chrono::Utc>, app: &App) -> String {
    t.with_timezone(&app.tz).format("%Y-%m-%d %H:%M").to_string()
}

fn policies_table(app: &App) -> Markup {
    let policies = policy::policies(&app.config).unwrap_or_default();
    let states = app.scheduler.states(app);
    html! {
        h2 { "Policies" }
        table.list {
            thead { tr { th { "Policy" } th { "Scope" } th { "Schedule" } th { "Destination" } th { "Keep" } th { "Encrypted" } th { "Last success" } th { "Next run" } } }
            tbody {
                @for p in &policies {
                    @let job = app.scheduler.job(&p.job_key());
                    @let state = states.get(&p.job_key());
                    tr {
                        td { (p.name) }
                        td { (p.scope()) }
                        td { code { (p.schedule.text()) } }
                        td { (p.target.describe()) }
                        td { (p.retention.describe()) }
                        td { @if p.passphrase.is_some() { "yes" } @else { "no" } }
                        td { (state.and_then(|s| s.last_success).map(|t| when(t, app)).unwrap_or_else(|| "never".into())) }
                        td { (job.and_then(|j| app.scheduler.next_run(app, j, state)).map(|t| when(t, app)).unwrap_or_default()) }
                    }
                }
            }
        }
        @if app.config.backups.remote.is_none() && app.config.backups.policies.is_empty() {
            p.muted { "No remote destination is configured: every backup lives on this server's disk. Set "
                code { "backups.remote" } " to keep the weekly full backup elsewhere." }
        }
    }
}

#[handler]
async fn list(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> AppResult<Response> {
    let items = service::listing(&app);
    let restores = app.store.history(restore::AUDIT_TABLE, restore::AUDIT_ID).unwrap_or_default();
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
            "Each backup is one file: a consistent snapshot of the database (and, for full backups, the uploaded files) "
            "with a manifest of row counts and SHA-256 checksums. Scheduled runs are on the "
            a href="/jobs" { "jobs page" } "."
        }
        table.list {
            thead { tr { th { "Made" } th { "Policy" } th { "Scope" } th.num { "Size" } th.num { "Rows" } th { "Encrypted" } th { "Verified" } th { "" } } }
            tbody {
                @if items.is_empty() { tr { td.empty colspan="8" { "No backups yet." } } }
                @for b in &items {
                    tr {
                        td title=(b.name) { (b.manifest.as_ref().map(|m| when(m.created_at, &app)).unwrap_or_else(|| "unreadable".into())) }
                        td { (b.manifest.as_ref().map(|m| m.policy.clone()).unwrap_or_default()) }
                        td { (b.manifest.as_ref().map(|m| m.scope.clone()).unwrap_or_default()) }
                        td.num { (human_bytes(b.size)) }
                        td.num { (b.manifest.as_ref().map(|m| m.rows()).unwrap_or(0)) }
                        td { @if b.manifest.as_ref().is_some_and(|m| m.encrypted()) { "yes" } @else { "no" } }
                        td {
                            @match &b.check {
                                None => span.muted { "not yet" },
                                Some(c) if c.ok && c.contents_checked => span.ok title=(c.message) { "yes, " (when(c.at, &app)) },
                                Some(c) if c.ok => span.muted title=(c.message) { "checksum only, " (when(c.at, &app)) },
                                Some(c) => span.error title=(c.message) { "FAILED " (when(c.at, &app)) },
                            }
                        }
                        td {
                            @if ctx.can("backups.download") { a.btn.btn-small href={ "/backups/" (b.name) "/download" } { "Download" } " " }
                            form.inline method="post" action={ "/backups/" (b.name) "/verify" } {
                                (csrf_field(&ctx)) button.btn.btn-small type="submit" { "Verify" }
                            }
                            @if ctx.can("backups.restore") {
                                " " a.btn.btn-small href={ "/backups/" (b.name) "/restore" } { "Restore…" }
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
        @if ctx.can("backups.create") {
            form.upload method="post" action="/backups/upload" enctype="multipart/form-data" {
                (csrf_field(&ctx))
                label { "Add a backup file made elsewhere " input type="file" name="file" accept=".bravely-backup" required; }
                " " button.btn type="submit" { "Upload" }
            }
        }
        @if let Some(p) = app.backup_progress.get() { p.info { (p) } }
        @for p in policy::policies(&app.config).unwrap_or_default() {
            @if let policy::Target::Remote(url) = &p.target {
                h2 { "Policy " (p.name) " at " (policy::redact_url(url)) }
                div hx-get={ "/backups/remote/" (p.name) } hx-trigger="load" hx-swap="innerHTML" {
                    p.muted { "Listing the destination…" }
                }
            }
        }
        (policies_table(&app))
        @if !restores.is_empty() {
            h2 { "Restores" }
            ul.history {
                @for (_, e) in restores.iter().rev().take(10) {
                    li { (when(e.at, &app)) " · " (e.actor_label) " · " (e.note.clone().unwrap_or_default()) }
                }
            }
        }
    };
    Ok(render(&app, &ctx, Page::new("Backups", body).actions(actions)))
}

#[handler]
async fn create(app: Data<&App>) -> AppResult<Response> {
    match service::create_now(&app, None).await {
        Ok((name, _)) => {
            Ok(redirect("/backups", Some(Flash::success(format!("Backup {name} written and checked in.")))))
        }
        Err(AppError::Conflict(m)) => Ok(redirect("/backups", Some(Flash::error(m)))),
        Err(e) => Err(e),
    }
}

/// An external backup file, streamed to disk, then checked before it is listed.
#[handler]
async fn upload(app: Data<&App>, mut mp: Multipart) -> AppResult<Response> {
    use tokio::io::AsyncWriteExt;
    let dir = super::dir(&app.config.data_dir);
    tokio::fs::create_dir_all(&dir).await.map_err(AppError::internal)?;
    let tmp = tempfile::Builder::new().prefix(".upload-").tempfile_in(&dir).map_err(AppError::internal)?;
    let mut got = 0u64;
    while let Ok(Some(field)) = mp.next_field().await {
        if field.name() != Some("file") {
            continue;
        }
        let mut out = tokio::fs::File::create(tmp.path()).await.map_err(AppError::internal)?;
        let mut reader = field.into_async_read();
        got = tokio::io::copy(&mut reader, &mut out)
            .await
            .map_err(|e| AppError::BadRequest(format!("The upload did not complete: {e}")))?;
        out.flush().await.map_err(AppError::internal)?;
    }
    if got == 0 {
        return Ok(redirect("/backups", Some(Flash::error("Choose a backup file to upload."))));
    }
    let checked = match service::verify_path(&app, tmp.path().to_path_buf()).await {
        Ok(c) => c,
        Err(e) => return Ok(redirect("/backups", Some(Flash::error(format!("Not added: {e}"))))),
    };
    let name = super::new_name(app.store.now(), policy::UPLOADED);
    tmp.persist(dir.join(&name)).map_err(|e| AppError::internal(e.error))?;
    tracing::info!(file = %name, made = %checked.manifest.created_at, "backup file uploaded");
    Ok(redirect(
        "/backups",
        Some(Flash::success(format!(
            "Added {name} (made {}, {} rows){}.",
            checked.manifest.created_at.format("%Y-%m-%d %H:%M UTC"),
            checked.manifest.rows(),
            if checked.contents_checked { "" } else { "; encrypted, only its checksum was checked" }
        ))),
    ))
}

/// Streams a backup file from disk; retention leaves it alone until the download ends.
#[handler]
pub(crate) async fn download(app: Data<&App>, Path(name): Path<String>) -> AppResult<Response> {
    let path = super::file_of(&app.config.data_dir, &name).ok_or(AppError::NotFound)?;
    let file = tokio::fs::File::open(&path).await.map_err(AppError::internal)?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let reader = Holding { inner: file, _app: (*app).clone(), name: name.clone(), registered: false };
    let resp = Response::builder()
        .content_type("application/octet-stream")
        .header("content-length", len)
        .body(Body::from_async_read(reader));
    Ok(crate::admin::handlers::attachment(resp, &name))
}

/// A file reader that marks its backup as in use for as long as it lives.
struct Holding {
    inner: tokio::fs::File,
    _app: App,
    name: String,
    registered: bool,
}

impl tokio::io::AsyncRead for Holding {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.registered {
            self._app.backups_in_use.acquire(&self.name);
            self.registered = true;
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if self.registered {
            self._app.backups_in_use.release(&self.name);
        }
    }
}

#[handler]
async fn verify(app: Data<&App>, Path(name): Path<String>) -> AppResult<Response> {
    Ok(match service::verify_file(&app, &name).await {
        Ok(c) if c.contents_checked => redirect(
            "/backups",
            Some(Flash::success(format!(
                "{name} is sound: checksums match, the snapshot opens, {} rows in {} tables as recorded.",
                c.manifest.rows(),
                c.manifest.tables.len()
            ))),
        ),
        Ok(_) => redirect(
            "/backups",
            Some(Flash::info(format!(
                "{name}: the encrypted payload matches its checksum; no policy here has its passphrase, so its contents were not opened."
            ))),
        ),
        Err(AppError::NotFound) => return Err(AppError::NotFound),
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
        return Ok(redirect("/backups", Some(Flash::error("A backup or restore is running; try again shortly."))));
    };
    if app.backups_in_use.contains(&name) {
        return Ok(redirect(
            "/backups",
            Some(Flash::error(format!("{name} is being downloaded; try again when it ends."))),
        ));
    }
    service::remove(&path).map_err(AppError::internal)?;
    tracing::info!(file = %name, "backup deleted");
    Ok(redirect("/backups", Some(Flash::success(format!("Deleted {name}.")))))
}

const CONFIRM_WORD: &str = "RESTORE";

fn restore_page(app: &App, ctx: &Ctx, name: &str, manifest: &archive::Manifest, error: Option<&str>) -> Response {
    let body = html! {
        div.warning {
            p { strong { "Restoring replaces all current data" } " with the contents of this backup, made "
                (when(manifest.created_at, app)) " (" (manifest.rows()) " rows, scope " (manifest.scope) "). "
                "Everything changed since then is lost. The current database is kept beside it as "
                code { "bravely.redb.before-restore-…" } "." }
            p { "The server checks the backup, restarts with the restored data and is back within seconds; everyone stays signed in only if their session is in the backup." }
        }
        form method="post" action={ "/backups/" (name) "/restore" } {
            (csrf_field(ctx))
            div.field.has-error[error.is_some()] {
                label for="confirm" { "Type " code { (CONFIRM_WORD) } " to confirm" }
                input #confirm type="text" name="confirm" autocomplete="off" required;
                @if let Some(e) = error { p.error { (e) } }
            }
            button.btn.btn-danger type="submit" { "Restore this backup" }
            " " a.btn href="/backups" { "Cancel" }
        }
    };
    let mut resp = render(app, ctx, Page::new("Restore a backup", body).crumb("Backups", "/backups"));
    if error.is_some() {
        resp.set_status(poem::http::StatusCode::BAD_REQUEST);
    }
    resp
}

#[handler]
async fn restore_form(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(name): Path<String>) -> AppResult<Response> {
    let path = super::file_of(&app.config.data_dir, &name).ok_or(AppError::NotFound)?;
    let manifest = archive::read_manifest(&path)
        .ok_or_else(|| AppError::BadRequest(format!("{name} has no readable manifest; it cannot be restored.")))?;
    Ok(restore_page(&app, &ctx, &name, &manifest, None))
}

#[derive(Deserialize)]
struct RestoreForm {
    #[serde(default)]
    confirm: String,
}

#[handler]
async fn restore_post(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    Path(name): Path<String>,
    Form(form): Form<RestoreForm>,
) -> AppResult<Response> {
    let path = super::file_of(&app.config.data_dir, &name).ok_or(AppError::NotFound)?;
    let manifest = archive::read_manifest(&path)
        .ok_or_else(|| AppError::BadRequest(format!("{name} has no readable manifest; it cannot be restored.")))?;
    if form.confirm.trim() != CONFIRM_WORD {
        return Ok(restore_page(&app, &ctx, &name, &manifest, Some(&format!("Type {CONFIRM_WORD} in capitals."))));
    }
    if !app.restarter.available() {
        return Ok(redirect(
            "/backups",
            Some(Flash::error(
                "This server cannot restart itself (it was not started with `bravely serve`); stop it and run `bravely backup restore FILE`.",
            )),
        ));
    }
    let Ok(lock) = app.backup_lock.try_lock() else {
        return Ok(redirect("/backups", Some(Flash::error("A backup or restore is running; try again shortly."))));
    };
    let user = ctx.user()?.clone();
    // Check everything before anything changes: a bad file never stops the server.
    let checked = {
        let _hold = app.backups_in_use.hold(&name);
        service::verify_path(&app, path.clone()).await
    };
    match checked {
        Ok(c) if c.contents_checked => {}
        Ok(_) => {
            return Ok(redirect(
                "/backups",
                Some(Flash::error(format!(
                    "{name} is encrypted and no policy here has its passphrase; restore it with `bravely backup restore`."
                ))),
            ));
        }
        Err(e) => {
            tracing::error!(file = %name, error = %e, "restore refused: the backup does not verify");
            return Ok(redirect("/backups", Some(Flash::error(format!("Not restored: {e}")))));
        }
    }
    let req = restore::Request {
        file: name.clone(),
        user_id: user.user_id,
        user: user.email.clone(),
        requested_at: app.store.now(),
    };
    restore::stage(&app.config.data_dir, &req).map_err(AppError::internal)?;
    tracing::warn!(file = %name, by = %user.email, "restore requested: the server restarts to carry it out");
    // Keep other backups and restores out until the process ends.
    std::mem::forget(lock);
    app.restarter.request();
    let body = html! {
        div.card {
            p { "Restoring " strong { (name) } ". The server is restarting with the restored data." }
            p.muted { "This page reloads in a few seconds. The outcome is listed under Restores on the backups page." }
        }
    };
    let mut resp = render(&app, &ctx, Page::new("Restoring…", body));
    resp.headers_mut().insert("refresh", poem::http::HeaderValue::from_static("5; url=/backups"));
    Ok(resp)
}
