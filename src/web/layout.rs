//! The page shell: head, top bar, navigation by module, flash messages.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};

use super::assets::{asset_url, htmx_url};
use super::{Ctx, paths};
use crate::App;

pub const FLASH_COOKIE: &str = "bravely_flash";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Success,
    Error,
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

impl Flash {
    pub fn success(m: impl Into<String>) -> Flash {
        Flash { kind: FlashKind::Success, message: m.into() }
    }
    pub fn error(m: impl Into<String>) -> Flash {
        Flash { kind: FlashKind::Error, message: m.into() }
    }
    pub fn info(m: impl Into<String>) -> Flash {
        Flash { kind: FlashKind::Info, message: m.into() }
    }
    fn encode(&self) -> String {
        let k = match self.kind {
            FlashKind::Success => 's',
            FlashKind::Error => 'e',
            FlashKind::Info => 'i',
        };
        format!("{k}{}", paths::urlencode(&self.message))
    }
    pub fn decode(s: &str) -> Option<Flash> {
        let mut chars = s.chars();
        let kind = match chars.next()? {
            's' => FlashKind::Success,
            'e' => FlashKind::Error,
            'i' => FlashKind::Info,
            _ => return None,
        };
        let rest: String = chars.collect();
        let bytes: Vec<u8> = percent_decode(&rest);
        let message = String::from_utf8(bytes).ok()?;
        (!message.is_empty()).then_some(Flash { kind, message: message.chars().take(500).collect() })
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// A 303 redirect that shows `flash` on the next page.
pub fn redirect(to: &str, flash: Option<Flash>) -> Response {
    let mut resp = Response::builder().status(StatusCode::SEE_OTHER).header(header::LOCATION, to).finish();
    if let Some(f) = flash {
        // Written by hand: the value is already percent-encoded.
        let c = format!("{FLASH_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax", f.encode());
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// What a page puts in the shell.
pub struct Page<'a> {
    pub title: &'a str,
    pub crumbs: Vec<(String, String)>,
    pub actions: Markup,
    pub body: Markup,
}

impl<'a> Page<'a> {
    pub fn new(title: &'a str, body: Markup) -> Self {
        Page { title, crumbs: vec![], actions: html! {}, body }
    }
    pub fn crumb(mut self, label: impl Into<String>, href: impl Into<String>) -> Self {
        self.crumbs.push((label.into(), href.into()));
        self
    }
    pub fn actions(mut self, a: Markup) -> Self {
        self.actions = a;
        self
    }
}

fn head(ctx: &Ctx, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Bravely" }
            meta name="csrf-token" content=(ctx.csrf);
            // htmx 2 does not swap 4xx/5xx answers by default: a boosted form's field errors (400, 422)
            // and error pages would never show. Swap them, and still report them as errors.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0,"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"[45]..","swap":true,"error":true}]}"#;
            link rel="icon" href=(asset_url("favicon.svg")) type="image/svg+xml";
            link rel="stylesheet" href=(asset_url("app.css"));
            script src=(htmx_url()) defer {}
            script src=(asset_url("app.js")) defer {}
        }
    }
}

pub fn flashes(ctx: &Ctx) -> Markup {
    html! {
        @if let Some(f) = &ctx.flash {
            div.flashes {
                div class={ "flash " (match f.kind { FlashKind::Success => "flash-success", FlashKind::Error => "flash-error", FlashKind::Info => "flash-info" }) } role="status" {
                    (f.message)
                }
            }
        }
    }
}

fn nav(app: &App, ctx: &Ctx) -> Markup {
    let mut groups: Vec<(&str, Vec<&crate::NavEntry>)> = Vec::new();
    for e in &app.nav {
        if !e.perm.as_deref().is_none_or(|p| ctx.can(p)) {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == e.group) {
            Some((_, v)) => v.push(e),
            None => groups.push((e.group, vec![e])),
        }
    }
    let path = ctx.uri.split('?').next().unwrap_or("");
    // The entry whose link is the longest prefix of this page is the current one.
    let current = app
        .nav
        .iter()
        .filter(|e| path == e.href || (e.href.ends_with('/') && path.starts_with(&e.href)))
        .max_by_key(|e| e.href.len())
        .map(|e| e.href.as_str());
    html! {
        nav.sidebar aria-label="Main" {
            @for (g, entries) in groups {
                div.nav-group {
                    h3 { (g) }
                    ul {
                        @for e in entries {
                            li { a href=(e.href) class=[(current == Some(e.href.as_str())).then_some("active")] { (e.label) } }
                        }
                    }
                }
            }
        }
    }
}

/// "?": the help chapter of this page's module.
fn help_link(app: &App, ctx: &Ctx) -> Markup {
    let path = ctx.uri.split('?').next().unwrap_or("");
    let chapter = app.help_chapter(path);
    html! {
        a.help-link href=(paths::help_chapter(chapter)) title="Help for this page" aria-label="Help for this page" { "?" }
    }
}

/// The full page, or just its main content when htmx asked for a fragment.
pub fn render(app: &App, ctx: &Ctx, page: Page<'_>) -> Response {
    let top = html! {
        @if !page.crumbs.is_empty() {
            nav.breadcrumbs aria-label="Breadcrumbs" {
                @for (i, (label, href)) in page.crumbs.iter().enumerate() {
                    @if i > 0 { " › " }
                    a href=(href) { (label) }
                }
            }
        }
        div.title-row {
            h1 { (page.title) }
            div.page-actions { (page.actions) }
        }
        (flashes(ctx))
    };
    // The body is usually the biggest part: assemble into one buffer of the right size
    // instead of copying it through nested templates.
    let body = page.body.into_string();
    if ctx.fragment {
        let mut out = String::with_capacity(top.0.len() + body.len());
        out.push_str(&top.0);
        out.push_str(&body);
        return html_string(out);
    }
    let shell = html! {
        (DOCTYPE)
        html lang="en" {
            (head(ctx, page.title))
            body hx-boost="true" {
                header.topbar {
                    a.brand href=(paths::home()) { "Bravely" }
                    @if let Some(u) = &ctx.user {
                        span.who { (u.name) }
                        (help_link(app, ctx))
                        form.logout method="post" action=(paths::logout()) {
                            input type="hidden" name="csrf_token" value=(ctx.csrf);
                            button.btn-link type="submit" { "Sign out" }
                        }
                    }
                }
                div.shell {
                    (nav(app, ctx))
                    main.content id="main" { (top) (PreEscaped(MAIN_SLOT)) }
                }
            }
        }
    }
    .into_string();
    let (before, after) = shell.split_once(MAIN_SLOT).unwrap_or((&shell, ""));
    let mut out = String::with_capacity(shell.len() + body.len());
    out.push_str(before);
    out.push_str(&body);
    out.push_str(after);
    html_string(out)
}

/// Where the page body goes in the shell; a comment no template produces.
const MAIN_SLOT: &str = "<!--bravely:main-->";

fn html_string(s: String) -> Response {
    Response::builder().content_type("text/html; charset=utf-8").body(s)
}

/// A page without navigation (sign-in, first-run setup).
pub fn render_bare(ctx: &Ctx, title: &str, body: Markup) -> Response {
    html_response(html! {
        (DOCTYPE)
        html lang="en" {
            (head(ctx, title))
            body.auth {
                div.auth-box {
                    a.brand href=(paths::home()) { "Bravely" }
                    (flashes(ctx))
                    (body)
                }
            }
        }
    })
}

pub fn html_response(m: Markup) -> Response {
    html_string(m.into_string())
}

pub fn error_page(app: &App, ctx: &Ctx, code: u16, title: &str, message: &str) -> Response {
    let body = html! {
        div.error-page {
            h1 { (code) }
            p { (message) }
            @if code >= 500 {
                p { "Request id: " code.request-id { (ctx.request_id) } }
            }
            p { a href=(paths::home()) { "Back to the start page" } }
        }
    };
    if ctx.user.is_none() {
        return render_bare(ctx, title, body);
    }
    render(app, ctx, Page::new(title, body))
}

/// A hidden CSRF field for forms.
pub fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(ctx.csrf); }
}

pub fn raw(s: &str) -> PreEscaped<String> {
    PreEscaped(s.to_string())
}

impl IntoResponse for Page<'_> {
    fn into_response(self) -> Response {
        html_response(self.body)
    }
}
