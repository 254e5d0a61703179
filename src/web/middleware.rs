//! The request pipeline: request id, session, CSRF check, error pages, security headers.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures_util::FutureExt;
use sentry::SentryFutureExt;
use tracing::Instrument;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::cookie::{Cookie, SameSite};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::Ctx;
use super::layout::{self, Flash};
use crate::App;
use crate::auth::{CSRF_COOKIE, session};
use crate::error::AppError;

/// Largest form body we buffer to find the CSRF field (CSV uploads included).
const MAX_FORM_BODY: usize = 64 * 1024 * 1024;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

fn request_id() -> String {
    let mut b = [0u8; 8];
    rand::fill(&mut b);
    hex::encode(b)
}

/// Wraps the whole router. Every log line of the request carries its id (a tracing span), and
/// so does any Sentry event it raises (a hub bound to the request's future).
pub async fn pipeline<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let Some(app) = req.data::<App>().cloned() else {
        return Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    let rid = request_id();
    // ERROR level so that the id is there whatever `BRAVELY_LOG` lets through: a span's level
    // only decides whether the span exists at all.
    let span = tracing::error_span!("request", request_id = %rid);
    let method = req.method().clone();
    let fut = handle(ep, req, app.clone(), rid.clone()).instrument(span);
    let (resp, route) = match app.reporter.request_hub(&rid) {
        Some(hub) => fut.bind_hub(hub).await,
        None => fut.await,
    };
    let route = route.unwrap_or_else(|| Arc::from(crate::metrics::UNMATCHED));
    app.http_metrics.observe(&method, &route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    Ok(resp)
}

/// The request proper; returns the response and the matched route pattern.
async fn handle<E: Endpoint>(ep: Arc<E>, mut req: Request, app: App, rid: String) -> (Response, Option<Arc<str>>) {
    let started = Instant::now();
    // Health checks answer at once; everything else waits for the read models (start-up only).
    if req.uri().path() != "/healthz"
        && req.uri().path() != "/readyz"
        && let Err(e) = app.store.ready().await
    {
        tracing::error!(error = %e, "data not loaded");
        return (StatusCode::SERVICE_UNAVAILABLE.into_response(), None);
    }
    let now = app.store.now();
    let method = req.method().clone();
    let uri = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let path = req.uri().path().to_string();

    // API requests authenticate with a bearer token only: cookies are ignored, so there is no
    // ambient credential and no CSRF check. Pages authenticate with the session cookie only.
    let api = super::is_api(&path);
    let mut user = None;
    let mut refused = None;
    if api {
        if let Some(presented) = bearer_token(&req) {
            use crate::tokens::service::{Outcome, authenticate};
            match authenticate(&app, presented, &client_ip(&req)) {
                Ok(Outcome::Ok(p)) => user = Some(Arc::new(p)),
                Ok(Outcome::Refused(why)) => refused = Some(api_unauthorized(&rid, why.message(), true)),
                Ok(Outcome::Limited(minutes)) => {
                    let mut resp = api_error(
                        &rid,
                        AppError::TooManyRequests(format!(
                            "too many failed token attempts from this address; try again in {minutes} minutes"
                        )),
                    );
                    if let Ok(v) = HeaderValue::from_str(&(minutes * 60).to_string()) {
                        resp.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    refused = Some(resp);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot check an API token");
                    refused = Some(api_error(&rid, e));
                }
            }
        }
    } else if let Some(c) = cookie(&req, session::COOKIE)
        && let Some((key, s)) = app.auth.sessions.check(&c, now)
        && let Some(p) = app.auth.directory.principal(s.user_id, key.clone())
    {
        user = Some(Arc::new(p));
        if app.auth.sessions.touch(&key, now) {
            app.auth.sessions.persist_touch(&app.store, &key);
        }
    }

    // Paths authenticated by their own signature (Slack) need no CSRF token and get no cookie.
    let exempt = app.csrf_exempt.iter().any(|p| path.starts_with(p.as_str()));
    // CSRF binding: the session, or an anonymous nonce cookie made on first sight.
    let mut new_nonce = None;
    let binding = match (&user, cookie(&req, CSRF_COOKIE)) {
        (Some(u), _) => u.session_key.clone(),
        (None, _) if api || exempt => String::new(),
        (None, Some(c)) if c.len() >= 16 => c,
        (None, _) => {
            let n = session::new_token();
            new_nonce = Some(n.clone());
            n
        }
    };
    let csrf = if binding.is_empty() { String::new() } else { app.auth.csrf_token(&binding) };

    let flash = cookie(&req, layout::FLASH_COOKIE).and_then(|c| Flash::decode(&c));
    let hx = req.headers().contains_key("hx-request");
    let boosted = req.headers().contains_key("hx-boosted");
    let ctx = Arc::new(Ctx {
        request_id: rid.clone(),
        user,
        csrf: csrf.clone(),
        fragment: hx && !boosted,
        uri: uri.clone(),
        flash: flash.clone(),
        route: OnceLock::new(),
        api,
    });
    req.extensions_mut().insert(ctx.clone());

    let unsafe_method = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let call = async {
        if let Some(resp) = refused {
            return Ok(resp);
        }
        if unsafe_method
            && !exempt
            && !api
            && let Err(e) = check_csrf(&app, &mut req, &binding).await
        {
            let _ = ctx.route.set(Arc::from(crate::metrics::CSRF_REFUSED));
            return Err(e.into());
        }
        ep.call(req).await.map(IntoResponse::into_response)
    };
    // A panicking handler costs its own request a 500 page, nothing more. The panic hook has
    // already logged it and reported it to Sentry (with this request's hub), so it is not
    // reported a second time here.
    let mut resp = match AssertUnwindSafe(call).catch_unwind().await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => error_response(&app, &ctx, poem_to_app(e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            tracing::error!(panic = %msg, "handler panicked");
            render_error(&app, &ctx, AppError::internal("handler panicked"))
        }
    };

    let h = resp.headers_mut();
    h.insert("x-request-id", HeaderValue::from_str(&rid).unwrap_or(HeaderValue::from_static("-")));
    h.insert(header::VARY, HeaderValue::from_static("HX-Request"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    if app.auth.secure_cookies {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if app.draining.load(std::sync::atomic::Ordering::Relaxed) {
        // Stopping: the client should send its next request on a new connection (see server.rs).
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(n) = new_nonce {
        let mut c = Cookie::new_with_str(CSRF_COOKIE, n);
        c.set_http_only(true);
        c.set_same_site(SameSite::Lax);
        c.set_path("/");
        c.set_secure(app.auth.secure_cookies);
        append_cookie(&mut resp, &c);
    }
    // A flash is shown once: clear it after a page that rendered it.
    if flash.is_some()
        && !resp
            .headers()
            .get(header::SET_COOKIE)
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with(layout::FLASH_COOKIE))
        && resp.status() == StatusCode::OK
    {
        let mut c = Cookie::new_with_str(layout::FLASH_COOKIE, "");
        c.set_path("/");
        c.set_max_age(std::time::Duration::ZERO);
        append_cookie(&mut resp, &c);
    }

    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, path = %path, status, ms, "request failed");
    } else {
        tracing::debug!(%method, path = %path, status, ms, "request");
    }
    let route = ctx.route.get().cloned();
    (resp, route)
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

pub fn append_cookie(resp: &mut Response, c: &Cookie) {
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn poem_to_app(e: poem::Error) -> AppError {
    if e.is::<AppError>() {
        return e.downcast::<AppError>().unwrap_or(AppError::NotFound);
    }
    let status = e.status();
    match status {
        StatusCode::NOT_FOUND => AppError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => AppError::BadRequest("This address does not accept that method.".into()),
        s if s.is_client_error() => AppError::BadRequest(e.to_string()),
        _ => AppError::internal(e.to_string()),
    }
}

/// Checks the token in `X-CSRF-Token` or the form's `csrf_token` field, and the Origin.
async fn check_csrf(app: &App, req: &mut Request, binding: &str) -> Result<(), AppError> {
    let forbidden = |why: &str| {
        tracing::warn!(reason = why, "CSRF check failed");
        AppError::Forbidden
    };
    if let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin != "null"
    {
        let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        if origin_host != host {
            return Err(forbidden("cross-origin request"));
        }
    }
    if let Some(t) = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return if app.auth.csrf_ok(binding, t) { Ok(()) } else { Err(forbidden("bad header token")) };
    }
    let ctype = req.content_type().unwrap_or("").to_string();
    let body = req
        .take_body()
        .into_bytes_limit(MAX_FORM_BODY)
        .await
        .map_err(|_| AppError::BadRequest("The request body is too large.".into()))?;
    let token = if ctype.starts_with("application/x-www-form-urlencoded") {
        form_urlencoded_field(&body, "csrf_token")
    } else if ctype.starts_with("multipart/form-data") {
        multipart_field(&ctype, body.clone(), "csrf_token").await
    } else {
        None
    };
    req.set_body(body);
    match token {
        Some(t) if app.auth.csrf_ok(binding, &t) => Ok(()),
        Some(_) => Err(forbidden("bad form token")),
        None => Err(forbidden("missing token")),
    }
}

pub fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn multipart_field(ctype: &str, body: bytes::Bytes, name: &str) -> Option<String> {
    let boundary = multer::parse_boundary(ctype).ok()?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = mp.next_field().await {
        if field.name() == Some(name) {
            return field.text().await.ok();
        }
    }
    None
}

/// Renders an error as a page (or a redirect to the login page); internal errors are logged
/// and reported to Sentry first.
pub fn error_response(app: &App, ctx: &Ctx, err: AppError) -> Response {
    if let AppError::Internal(e) = &err {
        tracing::error!(error = format!("{e:#}"), "internal error");
        let route = ctx.route.get().map(|r| r.to_string()).unwrap_or_else(|| crate::metrics::UNMATCHED.into());
        let hub = sentry::Hub::current();
        hub.with_scope(
            |s| s.set_tag("route", route),
            || hub.capture_error::<dyn std::error::Error + Send + Sync>(e.as_ref()),
        );
    }
    render_error(app, ctx, err)
}

/// The error page (or the redirect to the login page), without logging or reporting.
fn render_error(app: &App, ctx: &Ctx, err: AppError) -> Response {
    if ctx.api {
        return api_error(&ctx.request_id, err);
    }
    if let AppError::Unauthenticated { next } = &err {
        if ctx.fragment {
            // htmx follows HX-Redirect with a full navigation.
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("HX-Redirect", super::paths::login(Some(next)))
                .finish();
        }
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, super::paths::login(Some(next)))
            .finish();
    }
    let status = err.status();
    let (title, message) = match &err {
        AppError::Forbidden => ("Forbidden", "You do not have permission to see this page or do this.".to_string()),
        AppError::NotFound => ("Not found", "There is nothing at this address.".to_string()),
        AppError::Internal(_) => ("Something went wrong", "The error has been logged.".to_string()),
        other => ("Request refused", other.to_string()),
    };
    let body = layout::error_page(app, ctx, status.as_u16(), title, &message);
    let mut resp = body.into_response();
    resp.set_status(status);
    resp
}

/// `Authorization: Bearer <token>` (the scheme is case-insensitive), if the request has one.
fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn client_ip(req: &Request) -> String {
    req.remote_addr().as_socket_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// An error as the API answers it: JSON `{"error": …, "request_id": …}` (plus `fields` for
/// validation errors) with the error's status; a missing credential is 401 with
/// `WWW-Authenticate: Bearer`.
pub fn api_error(request_id: &str, err: AppError) -> Response {
    let message = match &err {
        AppError::Unauthenticated { .. } => {
            return api_unauthorized(request_id, "an API token is required: send Authorization: Bearer bvt_…", false);
        }
        AppError::Internal(_) => "internal error; it has been logged with the request id".to_string(),
        other => other.to_string(),
    };
    let mut body = serde_json::json!({ "error": message, "request_id": request_id });
    if let AppError::Validation(fields) = &err {
        body["fields"] = serde_json::json!(fields.0);
    }
    let mut resp = poem::web::Json(body).into_response();
    resp.set_status(err.status());
    resp
}

/// 401 for the API; `invalid` when a token was presented and refused (RFC 6750's
/// `invalid_token`), otherwise none was presented.
fn api_unauthorized(request_id: &str, message: &str, invalid: bool) -> Response {
    let challenge =
        if invalid { r#"Bearer realm="bravely", error="invalid_token""# } else { r#"Bearer realm="bravely""# };
    let mut resp = poem::web::Json(serde_json::json!({ "error": message, "request_id": request_id })).into_response();
    resp.set_status(StatusCode::UNAUTHORIZED);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    resp
}
