//! Sign-in, sign-out and the first-run setup page.

use std::sync::Arc;

use maud::html;
use poem::web::cookie::{Cookie, SameSite};
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::{User, password};
use crate::App;
use crate::config::PasswordLogin;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::store::Actor;
use crate::web::layout::{Flash, csrf_field, redirect, render_bare};
use crate::web::middleware::append_cookie;
use crate::web::{Access, Ctx, Routes, paths};

pub fn routes(r: &mut Routes) {
    super::oidc::handlers::routes(r);
    r.get("/login", Access::Public, login_form);
    r.post("/login", Access::Public, login);
    r.post("/logout", Access::Public, logout);
    r.get("/setup/:token", Access::Public, setup_form);
    r.post("/setup/:token", Access::Public, setup);
}

/// Only local paths are followed after sign-in.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n.to_string(),
        _ => paths::home(),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct NextQuery {
    pub next: Option<String>,
}

fn login_page(app: &App, ctx: &Ctx, email: &str, next: &str, error: Option<&str>) -> Response {
    let providers = &app.oidc.providers;
    let passwords_limited = app.config.login.password_login == PasswordLogin::Superusers;
    render_bare(
        ctx,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error { div.form-errors role="alert" { (e) } }
            @if !providers.is_empty() {
                div.sso {
                    @for p in providers {
                        p { a.btn.btn-primary href=(paths::oidc_login(&p.config.id, next)) { "Sign in with " (p.config.name) } }
                    }
                }
                p.muted {
                    @if passwords_limited { "Password sign-in is for administrators only:" }
                    @else { "Or with your Bravely password:" }
                }
            }
            form.form method="post" action=(paths::login(None)) {
                (csrf_field(ctx))
                input type="hidden" name="next" value=(next);
                div.field {
                    label for="email" { "Email" }
                    input type="email" id="email" name="email" value=(email) autocomplete="username" required autofocus;
                }
                div.field {
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="current-password" required;
                }
                div.form-actions { button.btn.btn-primary type="submit" { "Sign in" } }
            }
        },
    )
}

#[handler]
async fn login_form(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Query(q): Query<NextQuery>) -> Response {
    if ctx.user.is_some() {
        return redirect(&safe_next(q.next.as_deref()), None);
    }
    login_page(&app, &ctx, "", &safe_next(q.next.as_deref()), None)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

fn client_ip(req: &Request) -> String {
    req.remote_addr().as_socket_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

#[handler]
async fn login(app: Data<&App>, ctx: Data<&Arc<Ctx>>, req: &Request, Form(f): Form<LoginForm>) -> AppResult<Response> {
    let now = app.store.now();
    let ip = client_ip(req);
    let email = f.email.trim().to_lowercase();
    let next = safe_next(f.next.as_deref());
    if let Err(minutes) = app.auth.limiter.check(&email, &ip, now) {
        tracing::warn!(ip = %ip, "sign-in rate limit reached");
        let mut r = login_page(
            &app,
            &ctx,
            &email,
            &next,
            Some(&format!(
                "Too many failed attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
        r.set_status(poem::http::StatusCode::TOO_MANY_REQUESTS);
        return Ok(r);
    }
    let found = app.store.read()?.find_unique::<User>("email", &email)?;
    let pw = f.password.clone();
    let hash = found.as_ref().and_then(|(_, u)| u.password_hash.clone());
    // Always verify against some hash so timing does not reveal whether the account exists.
    let ok = tokio::task::spawn_blocking(move || {
        let h = hash.unwrap_or_else(|| password::dummy_hash().to_string());
        password::verify(&pw, &h)
    })
    .await
    .unwrap_or(false);
    let user = match found {
        Some((id, u)) if ok && u.password_hash.is_some() && u.active => (id, u),
        _ => {
            app.auth.limiter.fail(&email, &ip, now);
            tracing::info!(ip = %ip, "failed sign-in");
            let mut r = login_page(
                &app,
                &ctx,
                &email,
                &next,
                Some("Email or password is not correct, or the account is inactive."),
            );
            r.set_status(poem::http::StatusCode::UNAUTHORIZED);
            return Ok(r);
        }
    };
    app.auth.limiter.succeed(&email);
    if !user.1.superuser && app.config.login.password_login == PasswordLogin::Superusers {
        tracing::info!(user_id = user.0, "password sign-in refused: only superusers may use passwords");
        let mut r = login_page(
            &app,
            &ctx,
            &email,
            &next,
            Some("Password sign-in is turned off for your account. Use your organisation account."),
        );
        r.set_status(poem::http::StatusCode::FORBIDDEN);
        return Ok(r);
    }
    sign_in(&app, &ctx, req, user.0, &next).await
}

/// Starts a session for `user_id` (rotating any existing one) and redirects to `next`.
pub async fn sign_in(app: &App, ctx: &Ctx, req: &Request, user_id: u64, next: &str) -> AppResult<Response> {
    start_session(app, ctx, req, user_id, next).await.map(|(resp, _)| resp)
}

/// [`sign_in`], also returning the new session's key.
pub async fn start_session(
    app: &App,
    ctx: &Ctx,
    req: &Request,
    user_id: u64,
    next: &str,
) -> AppResult<(Response, String)> {
    let ua = req.header("user-agent").unwrap_or("").chars().take(200).collect();
    let old = ctx.user.as_ref().map(|u| u.session_key.clone());
    let token = app.auth.sessions.create(&app.store, user_id, client_ip(req), ua, old).await?;
    let now = app.store.now();
    app.store
        .write(Actor::system("sign-in"), move |tx| {
            if let Some(mut u) = tx.get::<User>(user_id)? {
                u.last_login = Some(now);
                tx.update_as(user_id, &u, crate::store::AuditAction::Other("signed in".into()), None)?;
            }
            Ok(())
        })
        .await?;
    let key = super::session::key_of(&token);
    let mut resp = redirect(next, None);
    let mut c = Cookie::new_with_str(super::session::COOKIE, token);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    c.set_secure(app.auth.secure_cookies);
    append_cookie(&mut resp, &c);
    Ok((resp, key))
}

/// Ends the session. After an organisation sign-in whose provider has an
/// `end_session_endpoint`, a page offers signing out there too (RP-initiated logout): a link,
/// since the page's `form-action 'self'` policy keeps a form's redirect from leaving the site.
#[handler]
async fn logout(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> AppResult<Response> {
    let mut provider_logout = None;
    if let Some(u) = &ctx.user {
        app.auth.sessions.end(&app.store, &u.session_key).await?;
        provider_logout = app.oidc.logout_url(&u.session_key, app.store.now()).await;
    }
    let mut resp = match provider_logout {
        Some((idx, url)) => {
            let name = &app.oidc.providers[idx].config.name;
            render_bare(
                &ctx,
                "Signed out",
                html! {
                    h1 { "You have signed out of Bravely" }
                    p { "You are still signed in to " (name) " in this browser." }
                    p { a.btn.btn-primary #provider-logout href=(url) { "Sign out of " (name) " too" } }
                    p { a href=(paths::login(None)) { "Back to the sign-in page" } }
                },
            )
        }
        None => redirect(&paths::login(None), Some(Flash::info("You have signed out."))),
    };
    let mut c = Cookie::new_with_str(super::session::COOKIE, "");
    c.set_path("/");
    c.set_max_age(std::time::Duration::ZERO);
    append_cookie(&mut resp, &c);
    Ok(resp)
}

fn setup_valid(app: &App, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    let guard = app.auth.setup_token.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_deref().is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())))
        && app.auth.directory.user_count() == 0
}

fn setup_page(ctx: &Ctx, token: &str, email: &str, name: &str, errs: &FieldErrors) -> Response {
    let err = |f: &str| html! { @for m in errs.get(f) { ul.errorlist { li { (m) } } } };
    render_bare(
        ctx,
        "Set up Bravely",
        html! {
            h1 { "Create the first administrator" }
            p.muted { "This link works once. The account you create here can do everything and can invite everyone else." }
            form.form method="post" action=(paths::setup(token)) {
                (csrf_field(ctx))
                div class=(if errs.get("email").is_empty() { "field" } else { "field has-error" }) {
                    label for="email" { "Email" }
                    input type="email" id="email" name="email" value=(email) required;
                    (err("email"))
                }
                div class=(if errs.get("name").is_empty() { "field" } else { "field has-error" }) {
                    label for="name" { "Name" }
                    input type="text" id="name" name="name" value=(name) required;
                    (err("name"))
                }
                div class=(if errs.get("password").is_empty() { "field" } else { "field has-error" }) {
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="new-password" required;
                    p.help { "At least " (password::MIN_LENGTH) " characters." }
                    (err("password"))
                }
                div.form-actions { button.btn.btn-primary type="submit" { "Create administrator" } }
            }
        },
    )
}

#[handler]
async fn setup_form(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(token): Path<String>) -> AppResult<Response> {
    if !setup_valid(&app, &token) {
        return Err(AppError::NotFound);
    }
    Ok(setup_page(&ctx, &token, "", "", &FieldErrors::new()))
}

#[derive(Deserialize)]
struct SetupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

#[handler]
async fn setup(
    app: Data<&App>,
    ctx: Data<&Arc<Ctx>>,
    req: &Request,
    Path(token): Path<String>,
    Form(f): Form<SetupForm>,
) -> AppResult<Response> {
    if !setup_valid(&app, &token) {
        return Err(AppError::NotFound);
    }
    let email = f.email.trim().to_lowercase();
    let name = f.name.trim().to_string();
    let mut errs = FieldErrors::new();
    if !super::model::valid_email(&email) {
        errs.add("email", "Enter a valid email address.");
    }
    if name.is_empty() {
        errs.add("name", "This field is required.");
    }
    if let Err(m) = password::check_strength(&f.password, &email) {
        errs.add("password", m);
    }
    if !errs.is_empty() {
        let mut r = setup_page(&ctx, &token, &email, &name, &errs);
        r.set_status(poem::http::StatusCode::UNPROCESSABLE_ENTITY);
        return Ok(r);
    }
    // Single use: take the token before creating the account.
    if app.auth.setup_token.lock().unwrap_or_else(|p| p.into_inner()).take().is_none() {
        return Err(AppError::NotFound);
    }
    let pw = f.password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw)).await.map_err(AppError::internal)??;
    let id = create_user(&app, Actor::system("first-run setup"), email, name, Some(hash), true).await?;
    tracing::info!(user_id = id, "first superuser created through the setup link");
    sign_in(&app, &ctx, req, id, &paths::home()).await
}

/// Creates a user; used by setup, the CLI and tests.
pub async fn create_user(
    app: &App,
    actor: Actor,
    email: String,
    name: String,
    password_hash: Option<String>,
    superuser: bool,
) -> AppResult<u64> {
    app.store
        .write(actor, move |tx| {
            let now = tx.now();
            let u = User {
                email,
                name,
                active: true,
                superuser,
                password_hash,
                groups: vec![],
                permissions: vec![],
                created_at: now,
                last_login: None,
            };
            Ok(tx.insert(&u)?)
        })
        .await
}
