//! The backups API for scripts, authenticated by personal API tokens (see `crate::tokens`):
//! list, make one now, download. The permissions are the ones the `/backups` page checks.

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use super::archive::Manifest;
use super::policy::{self, Policy};
use super::service::{Check, create_now, listing};
use crate::App;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::web::{Access, Routes};

pub fn routes(r: &mut Routes) {
    r.get("/api/backups", Access::perm("backups.view"), list);
    r.post("/api/backups", Access::perm("backups.create"), create);
    // The page's download handler: streamed from disk with length and file name.
    r.get("/api/backups/:name/download", Access::perm("backups.download"), super::handlers::download);
}

/// One backup as the API shows it. `id` is the file name, which the download URL takes.
#[derive(Debug, Serialize)]
pub struct BackupJson {
    pub id: String,
    /// From the manifest; `null` when the file's manifest cannot be read.
    pub created_at: Option<DateTime<Utc>>,
    pub policy: Option<String>,
    pub scope: Option<String>,
    /// Size of the backup file in bytes.
    pub size: u64,
    pub rows: Option<u64>,
    pub app_version: Option<String>,
    pub encrypted: bool,
    /// The last verification's result (`null`: never verified). `true` means the contents
    /// were opened and checked, not only the checksum of an encrypted payload.
    pub verified: Option<bool>,
    pub verified_at: Option<DateTime<Utc>>,
    pub download_url: String,
}

impl BackupJson {
    fn new(id: String, size: u64, manifest: Option<&Manifest>, check: Option<&Check>) -> BackupJson {
        BackupJson {
            download_url: format!("/api/backups/{id}/download"),
            id,
            created_at: manifest.map(|m| m.created_at),
            policy: manifest.map(|m| m.policy.clone()),
            scope: manifest.map(|m| m.scope.clone()),
            size,
            rows: manifest.map(|m| m.tables.values().sum()),
            app_version: manifest.map(|m| m.app_version.clone()),
            encrypted: manifest.is_some_and(|m| m.encrypted()),
            verified: check.map(|c| c.ok && c.contents_checked),
            verified_at: check.map(|c| c.at),
        }
    }
}

#[derive(Debug, Serialize)]
struct ListJson {
    backups: Vec<BackupJson>,
}

/// Newest first.
#[handler]
async fn list(app: Data<&App>) -> Json<ListJson> {
    let backups = listing(&app)
        .into_iter()
        .map(|b| BackupJson::new(b.name, b.size, b.manifest.as_ref(), b.check.as_ref()))
        .collect();
    Json(ListJson { backups })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    policy: Option<String>,
}

/// No policy (or `manual`): a manual backup. Otherwise one of the configured policies, whose
/// scope and encryption the backup then follows.
fn policy_named(policies: &[Policy], p: Option<String>) -> Result<Option<Policy>, AppError> {
    let Some(p) = p.map(|p| p.trim().to_string()).filter(|p| !p.is_empty() && p != policy::MANUAL) else {
        return Ok(None);
    };
    match policies.iter().find(|x| x.name == p) {
        Some(found) => Ok(Some(found.clone())),
        None => {
            let names: Vec<&str> = policies.iter().map(|x| x.name.as_str()).collect();
            Err(AppError::Validation(FieldErrors::single(
                "policy",
                format!("No policy {p:?}; the policies are: {}, or none for a manual backup.", names.join(", ")),
            )))
        }
    }
}

/// Makes a backup now and answers once the file is written: 201 with the backup, 409 while
/// another backup runs. `policy` comes from the query string or a JSON body.
#[handler]
async fn create(app: Data<&App>, req: &Request, body: Body) -> AppResult<Response> {
    let from_query: CreateParams = match req.uri().query() {
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| AppError::BadRequest(format!("Bad query string: {e}")))?,
        None => CreateParams::default(),
    };
    let bytes =
        body.into_bytes_limit(64 * 1024).await.map_err(|_| AppError::BadRequest("The body is too large.".into()))?;
    let from_body: CreateParams = if bytes.iter().all(u8::is_ascii_whitespace) {
        CreateParams::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            AppError::BadRequest(format!("The body must be JSON such as {{\"policy\": \"nightly\"}}: {e}"))
        })?
    };
    let policy = match (from_query.policy, from_body.policy) {
        (Some(a), Some(b)) if a != b => {
            return Err(AppError::BadRequest("`policy` differs between the query string and the body.".into()));
        }
        (a, b) => policy_named(&policy::policies(&app.config).map_err(AppError::internal)?, a.or(b))?,
    };
    let (name, manifest) = create_now(&app, policy.as_ref()).await?;
    let size = super::file_of(&app.config.data_dir, &name)
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0);
    let mut resp = Json(BackupJson::new(name, size, Some(&manifest), None)).into_response();
    resp.set_status(StatusCode::CREATED);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_policies_are_accepted() {
        let policies = policy::policies(&crate::config::Config::default()).expect("defaults");
        assert!(policy_named(&policies, None).expect("manual").is_none());
        assert!(policy_named(&policies, Some(" manual ".into())).expect("manual").is_none());
        assert_eq!(
            policy_named(&policies, Some("database".into())).expect("known").map(|p| p.name),
            Some("database".into())
        );
        for bad in ["../etc", "nightly", "a b"] {
            assert!(policy_named(&policies, Some(bad.into())).is_err(), "{bad}");
        }
    }
}
