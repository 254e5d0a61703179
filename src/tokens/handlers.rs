//! The signed-in user's own tokens: list, create (shown once), revoke.

use std::sync::Arc;

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Response, handler};
use serde::Deserialize;

use super::model::ApiToken;
use super::service::{self, MAX_EXPIRY_DAYS, NewToken};
use crate::App;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::web::layout::{Flash, Page, csrf_field, redirect, render};
use crate::web::{Access, Ctx, Routes, paths};

pub fn routes(r: &mut Routes) {
    r.get("/account/tokens", Access::SignedIn, page);
    r.post("/account/tokens", Access::SignedIn, create);
    r.post("/account/tokens/:id/revoke", Access::SignedIn, revoke);
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>, none: &str) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| none.to_string())
}

/// Just created: the token text, shown on this one response only.
struct Created {
    name: String,
    token: String,
}

fn view(
    app: &App,
    ctx: &Ctx,
    user_id: u64,
    created: Option<Created>,
    form: (&str, &str),
    errs: &FieldErrors,
) -> AppResult<Response> {
    let tokens = service::of_user(&app.store, user_id)?;
    let now = app.store.now();
    let field_errors = |name: &str| {
        html! {
            @if !errs.get(name).is_empty() {
                ul.errorlist { @for m in errs.get(name) { li { (m) } } }
            }
        }
    };
    let body = html! {
        p.muted {
            "A token lets a script call the API (" code { "/api/…" } ") as you, with your permissions as they are when it "
            "calls. Send it as " code { "Authorization: Bearer bvt_…" } ". Bravely keeps only a hash: the token is shown "
            "once, when you create it."
        }
        @if let Some(c) = &created {
            div.flash.flash-info.token-created role="status" {
                p { "Token " strong { (c.name) } " created. Copy it now: it will not be shown again." }
                p { code.token-secret { (c.token) } }
            }
        }
        @if !errs.get("").is_empty() {
            div.form-errors role="alert" { ul.errorlist { @for m in errs.get("") { li { (m) } } } }
        }
        table.list {
            thead { tr { th { "Name" } th { "Prefix" } th { "Created" } th { "Expires" } th { "Last used" } th { "State" } th { "" } } }
            tbody {
                @if tokens.is_empty() { tr { td.empty colspan="7" { "No tokens yet." } } }
                @for (id, t) in &tokens { (row(ctx, *id, t, now)) }
            }
        }
        h2 { "New token" }
        form method="post" action=(paths::account_tokens()) {
            (csrf_field(ctx))
            div.field.has-error[!errs.get("name").is_empty()] {
                label for="name" { "Name" }
                input #name type="text" name="name" value=(form.0) required maxlength="100" placeholder="nightly backup script";
                (field_errors("name"))
            }
            div.field.has-error[!errs.get("expires_in_days").is_empty()] {
                label for="expires_in_days" { "Expires after (days)" }
                input #expires_in_days type="number" name="expires_in_days" value=(form.1) min="1" max=(MAX_EXPIRY_DAYS);
                p.help { "Leave empty for a token that does not expire." }
                (field_errors("expires_in_days"))
            }
            div.form-actions { button.btn.btn-primary type="submit" { "Create token" } }
        }
    };
    let mut resp = render(app, ctx, Page::new("API tokens", body));
    if !errs.is_empty() {
        resp.set_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    Ok(resp)
}

fn row(ctx: &Ctx, id: u64, t: &ApiToken, now: chrono::DateTime<chrono::Utc>) -> Markup {
    let state = t.state(now);
    html! {
        tr {
            td { (t.name) }
            td { code { (t.prefix) "…" } }
            td { (when(Some(t.created_at), "")) }
            td { (when(t.expires_at, "never")) }
            td { (when(t.last_used_at, "never")) }
            td { span class={ "badge " (if state == "active" { "badge-ok" } else { "badge-danger" }) } { (state) } }
            td {
                @if !t.is_revoked() {
                    form.inline method="post" action=(paths::account_token_revoke(id)) data-confirm="Revoke this token? Scripts using it stop working at once." {
                        (csrf_field(ctx)) button.btn.btn-small.btn-danger type="submit" { "Revoke" }
                    }
                }
            }
        }
    }
}

#[handler]
async fn page(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> AppResult<Response> {
    let user = ctx.user()?.user_id;
    view(&app, &ctx, user, None, ("", ""), &FieldErrors::new())
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

/// Answers with the page itself (not a redirect), so the token text travels in this one
/// response and nowhere else (no flash cookie, no URL).
#[handler]
async fn create(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Form(f): Form<CreateForm>) -> AppResult<Response> {
    let user = ctx.user()?.user_id;
    let new = match NewToken::parse(&f.name, &f.expires_in_days) {
        Ok(n) => n,
        Err(errs) => return view(&app, &ctx, user, None, (&f.name, &f.expires_in_days), &errs),
    };
    let name = new.name.clone();
    let result = app.store.write(ctx.actor(), move |tx| service::create(tx, user, new)).await;
    match result {
        Ok((id, token)) => {
            tracing::info!(token = id, user, "API token created");
            view(&app, &ctx, user, Some(Created { name, token }), ("", ""), &FieldErrors::new())
        }
        Err(AppError::Validation(errs)) => view(&app, &ctx, user, None, (&f.name, &f.expires_in_days), &errs),
        Err(e) => Err(e),
    }
}

#[handler]
async fn revoke(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(id): Path<u64>) -> AppResult<Response> {
    let user = ctx.user()?.user_id;
    let t = app.store.write(ctx.actor(), move |tx| service::revoke_own(tx, user, id)).await?;
    tracing::info!(token = id, user, "API token revoked");
    Ok(redirect(&paths::account_tokens(), Some(Flash::success(format!("Token {} revoked.", t.name)))))
}
