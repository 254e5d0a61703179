//! `GET /auth/oidc/{provider}/login` and `GET /auth/oidc/callback`.

use std::sync::Arc;

use maud::html;
use poem::http::StatusCode;
use poem::web::cookie::{Cookie, SameSite};
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};

use super::accounts::{self, Outcome};
use super::{BROWSER_COOKIE, CallbackQuery, FLOW_TTL, Failure, LoginRecord};
use crate::App;
use crate::auth::handlers::{NextQuery, safe_next, start_session};
use crate::error::AppResult;
use crate::web::layout::{redirect, render_bare};
use crate::web::middleware::{append_cookie, cookie};
use crate::web::{Access, Ctx, Routes, paths};

pub fn routes(r: &mut Routes) {
    r.get("/auth/oidc/:provider/login", Access::Public, start);
    r.get("/auth/oidc/callback", Access::Public, callback);
}

/// The page for a sign-in that did not go through; the reason goes to the log.
fn failure_page(ctx: &Ctx, provider: &str, provider_id: &str, f: &Failure) -> Response {
    tracing::warn!(provider = provider_id, reason = %f.reason(), "organisation sign-in refused");
    let mut resp = render_bare(
        ctx,
        "Sign-in failed",
        html! {
            h1 { "Sign-in failed" }
            div.form-errors role="alert" { (f.message(provider)) }
            p { a href=(paths::login(None)) { "Back to the sign-in page" } }
        },
    );
    resp.set_status(StatusCode::from_u16(f.status()).unwrap_or(StatusCode::BAD_REQUEST));
    resp
}

#[handler]
async fn start(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    req: &Request,
    Path(provider): Path<String>,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(idx) = app.oidc.index_of(&provider) else {
        return failure_page(&ctx, "This provider", "-", &Failure::UnknownProvider);
    };
    let p = &app.oidc.providers[idx].config;
    if ctx.user.is_some() {
        return redirect(&next, None);
    }
    // One cookie per browser, kept while it has sign-ins pending (several tabs may).
    let browser = cookie(req, BROWSER_COOKIE).filter(|c| c.len() >= 32).unwrap_or_else(crate::auth::session::new_token);
    match app.oidc.start(idx, next, &browser, app.store.now()).await {
        Ok(url) => {
            let mut resp = redirect(&url, None);
            let mut c = Cookie::new_with_str(BROWSER_COOKIE, browser);
            c.set_http_only(true);
            // Lax: the provider's redirect back is a top-level GET navigation, which carries it.
            c.set_same_site(SameSite::Lax);
            c.set_path("/auth/oidc/");
            c.set_secure(app.auth.secure_cookies);
            c.set_max_age(FLOW_TTL.to_std().unwrap_or_default());
            append_cookie(&mut resp, &c);
            resp
        }
        Err(f) => failure_page(&ctx, &p.name, &p.id, &f),
    }
}

#[handler]
async fn callback(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    req: &Request,
    Query(q): Query<CallbackQuery>,
) -> AppResult<Response> {
    let now = app.store.now();
    let browser = cookie(req, BROWSER_COOKIE);
    let mut idx = None;
    let outcome = app.oidc.finish(&q, browser.as_deref(), now, &mut idx).await;
    let (name, id) = match idx.map(|i| &app.oidc.providers[i].config) {
        Some(p) => (p.name.as_str(), p.id.as_str()),
        None => ("The provider", "-"),
    };
    let done = match outcome {
        Ok(done) => done,
        Err(f) => return Ok(failure_page(&ctx, name, id, &f)),
    };
    let p = &app.oidc.providers[done.provider].config;
    let user_id = match accounts::provision(&app, p, done.identity.clone()).await? {
        Outcome::Inactive { user_id } => {
            tracing::info!(user_id, "inactive user tried organisation sign-in");
            return Ok(failure_page(&ctx, name, id, &Failure::Inactive));
        }
        Outcome::SignIn { user_id, created } => {
            tracing::info!(user_id, provider = id, created, "organisation sign-in");
            user_id
        }
    };
    let (resp, session_key) = start_session(&app, &ctx, req, user_id, &done.next).await?;
    let record = LoginRecord { provider: done.provider, id_token: done.id_token };
    app.oidc.remember_login(&session_key, record, |k| app.auth.sessions.has(k));
    Ok(resp)
}
