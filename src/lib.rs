//! Bravely: an internal operations platform in one binary.
//!
//! `App::build` opens the store, registers every module's admin resources, routes, navigation
//! and read models, and returns the HTTP endpoint.

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod backups;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod fsutil;
pub mod help;
pub mod inventory;
pub mod jobs;
pub mod kudos;
pub mod metrics;
pub mod money;
pub mod people;
pub mod reporting;
pub mod server;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod web;

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use maud::Markup;
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Endpoint, EndpointExt, IntoResponse, Response, handler};

use admin::{AdminResource, Registry, Typed};
use auth::{AuthState, Directory, DirectoryListener, Group, User, ratelimit::LoginLimiter, session};
use clock::Clock;
use config::Config;
use store::{Listener, Store};
use web::{Access, Ctx, RouteInfo, Routes};

/// A link in the navigation, shown to users holding `perm`.
#[derive(Debug, Clone)]
pub struct NavEntry {
    pub group: &'static str,
    pub label: &'static str,
    pub href: String,
    pub perm: Option<String>,
}

impl NavEntry {
    pub fn new(group: &'static str, label: &'static str, href: String, perm: Option<&str>) -> NavEntry {
        NavEntry { group, label, href, perm: perm.map(str::to_string) }
    }
}

/// Extra markup a module shows under a resource's edit form (e.g. inventory assignments).
pub type Panel = fn(&App, &Ctx, u64) -> Markup;
/// A module's card on the home page: its few numbers that matter, or `None` when the user may
/// not see them. It must be cheap (it runs on every visit to the home page).
pub type Glance = fn(&App, &Ctx) -> Option<Markup>;

/// What a business module contributes. Adding a module is adding a folder and one line in
/// [`modules`].
pub trait Module: Send + Sync {
    fn name(&self) -> &'static str;
    fn resources(&self) -> Vec<Arc<dyn AdminResource>> {
        vec![]
    }
    fn routes(&self, _r: &mut Routes) {}
    fn nav(&self) -> Vec<NavEntry> {
        vec![]
    }
    /// Named permissions beyond the admin ones, with descriptions.
    fn permissions(&self) -> Vec<(String, String)> {
        vec![]
    }
    fn listeners(&self) -> Vec<Arc<dyn Listener>> {
        vec![]
    }
    fn panels(&self) -> Vec<(&'static str, Panel)> {
        vec![]
    }
    fn glance(&self) -> Option<Glance> {
        None
    }
    /// Path prefixes whose POSTs are authenticated another way (signed webhooks) and skip CSRF.
    fn csrf_exempt(&self) -> Vec<&'static str> {
        vec![]
    }
    /// The user-guide chapter of this module's pages (the "?" in the header links to it).
    fn help(&self) -> Option<help::Help> {
        None
    }
    /// Scheduled jobs (see [`jobs`]); configuration errors stop the start.
    fn jobs(&self, _config: &Config) -> anyhow::Result<Vec<jobs::Job>> {
        Ok(vec![])
    }
    /// The stored types whose tables the module owns, for `bravely check` and the weekly
    /// integrity job: every row of them must decode and match its indexes.
    fn stored(&self) -> Vec<store::check::Stored> {
        vec![]
    }
}

/// Every stored type of every module.
pub fn stored_types() -> Vec<store::check::Stored> {
    modules().iter().flat_map(|m| m.stored()).collect()
}

/// The accounts module: users and groups.
struct Accounts;

impl Module for Accounts {
    fn name(&self) -> &'static str {
        "Accounts"
    }
    fn resources(&self) -> Vec<Arc<dyn AdminResource>> {
        vec![Typed::<User>::new(), Typed::<Group>::new()]
    }
    fn routes(&self, r: &mut Routes) {
        auth::handlers::routes(r);
    }
    fn stored(&self) -> Vec<store::check::Stored> {
        use store::check::Stored;
        vec![
            Stored::entity::<User>(),
            Stored::entity::<Group>(),
            Stored::keyed("auth.sessions", |b| session::decode(b).map(|_| ()).map_err(|e| e.to_string())),
        ]
    }
    fn nav(&self) -> Vec<NavEntry> {
        vec![
            NavEntry::new("Administration", "Users", web::paths::admin_list("users"), Some("users.view")),
            NavEntry::new("Administration", "Groups", web::paths::admin_list("groups"), Some("groups.view")),
            NavEntry::new("Administration", "All admin pages", web::paths::admin_index(), None),
        ]
    }
    fn help(&self) -> Option<help::Help> {
        Some(help::Help { chapter: "accounts", prefixes: &[] })
    }
}

pub fn modules() -> Vec<Box<dyn Module>> {
    vec![
        Box::new(Accounts),
        Box::new(people::People),
        Box::new(inventory::Inventory),
        Box::new(kudos::Kudos),
        Box::new(backups::Backups),
        Box::new(tokens::Tokens),
        Box::new(jobs::handlers::Jobs),
        Box::new(help::handlers::HelpPages),
    ]
}

pub struct AppInner {
    pub config: Config,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub auth: AuthState,
    /// API tokens: failed-attempt limits and last-use bookkeeping.
    pub tokens: tokens::TokenState,
    /// Organisation sign-in: providers, pending sign-ins, discovery cache.
    pub oidc: auth::oidc::Oidc,
    pub nav: Vec<NavEntry>,
    pub panels: Vec<(&'static str, Panel)>,
    /// The modules' cards on the home page, in module order.
    pub glances: Vec<Glance>,
    /// Path prefix -> help chapter, from each module's [`Module::help`].
    pub help: Vec<(String, &'static str)>,
    pub currency: money::Currency,
    pub tz: chrono_tz::Tz,
    pub imports: admin::import::Jobs,
    /// Path prefixes whose POSTs authenticate otherwise (signed webhooks) and skip CSRF.
    pub csrf_exempt: Vec<String>,
    /// The one HTTP client (rustls) for calls to other services; made on first use, since
    /// loading the system's root certificates would slow every start-up.
    http: std::sync::OnceLock<reqwest::Client>,
    pub routes: Mutex<Vec<RouteInfo>>,
    /// Requests by route and status, for `GET /metrics`.
    pub http_metrics: metrics::HttpMetrics,
    pub backup_metrics: metrics::BackupMetrics,
    /// One backup (or deletion of one) at a time.
    pub backup_lock: tokio::sync::Mutex<()>,
    /// Where panics and 500s are reported (Sentry, when configured).
    pub reporter: reporting::Reporter,
    /// Set when the server is stopping: responses then ask clients to close the connection.
    pub draining: std::sync::atomic::AtomicBool,
    pub scheduler: jobs::Scheduler,
    /// Backup files being read (downloads, restores): retention leaves them alone.
    pub backups_in_use: backups::service::InUse,
    /// Upload progress of the backup going to its destination, for the backups page.
    pub backup_progress: backups::service::Progress,
    /// Lets a restore from the web page restart the server.
    pub restarter: server::Restarter,
}

#[derive(Clone)]
pub struct App(Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// Opens the data directory and assembles every module.
    pub fn open(config: Config, clock: Clock) -> anyhow::Result<App> {
        tls::install();
        let mods = modules();
        let mut resources = Vec::new();
        let mut perms = Vec::new();
        let mut nav = Vec::new();
        let mut panels = Vec::new();
        let mut glances = Vec::new();
        let mut listeners: Vec<Arc<dyn Listener>> = Vec::new();
        let mut csrf_exempt = Vec::new();
        let mut job_list = Vec::new();
        let mut help_map = Vec::new();
        for m in &mods {
            if let Some(h) = m.help() {
                anyhow::ensure!(help::exists(h.chapter), "module {}: no help chapter {:?}", m.name(), h.chapter);
                help_map.extend(h.prefixes.iter().map(|p| (p.to_string(), h.chapter)));
                help_map.extend(m.resources().iter().map(|r| (web::paths::admin_list(r.def().slug), h.chapter)));
            }
            job_list.extend(m.jobs(&config)?);
            csrf_exempt.extend(m.csrf_exempt().into_iter().map(str::to_string));
            resources.extend(m.resources());
            perms.extend(m.permissions());
            nav.extend(m.nav());
            panels.extend(m.panels());
            glances.extend(m.glance());
            listeners.extend(m.listeners());
        }
        let registry = Arc::new(Registry::new(resources, perms)?);
        listeners.push(registry.listener());
        let directory = Arc::new(Directory::default());
        listeners.push(Arc::new(DirectoryListener(directory.clone())));
        let sessions = Arc::new(session::Sessions::new(
            chrono::Duration::minutes(config.session.idle_minutes),
            chrono::Duration::hours(config.session.absolute_hours),
        ));
        listeners.push(Arc::new(session::SessionsListener(sessions.clone())));

        let key = auth::load_or_create_key(&config.data_dir)?;
        let store = Store::open(&config.db_path(), clock, listeners)?;
        let auth = AuthState {
            key,
            sessions,
            directory,
            limiter: LoginLimiter::new(
                config.login.max_failures_per_account,
                config.login.max_failures_per_ip,
                chrono::Duration::minutes(config.login.window_minutes),
            ),
            setup_token: Mutex::new(None),
            secure_cookies: config.secure_cookies(),
        };
        let tokens = tokens::TokenState::new(
            config.login.max_failures_per_ip,
            chrono::Duration::minutes(config.login.window_minutes),
        );
        let currency = money::Currency::parse(&config.currency).map_err(|e| anyhow::anyhow!(e))?;
        let tz = config.tz()?;
        let scheduler = jobs::Scheduler::new(job_list)?;
        let oidc = auth::oidc::Oidc::new(&config);
        Ok(App(Arc::new(AppInner {
            config,
            store,
            registry,
            auth,
            tokens,
            oidc,
            nav,
            panels,
            glances,
            help: help_map,
            currency,
            tz,
            imports: admin::import::Jobs::default(),
            csrf_exempt,
            http: std::sync::OnceLock::new(),
            routes: Mutex::new(vec![]),
            http_metrics: metrics::HttpMetrics::default(),
            backup_metrics: metrics::BackupMetrics::default(),
            backup_lock: tokio::sync::Mutex::new(()),
            reporter: reporting::Reporter::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
            scheduler,
            backups_in_use: backups::service::InUse::default(),
            backup_progress: backups::service::Progress::default(),
            restarter: server::Restarter::default(),
        })))
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("bravely/", env!("CARGO_PKG_VERSION")))
                .timeout(std::time::Duration::from_secs(15))
                .build()
                .unwrap_or_default()
        })
    }

    /// The help chapter of the page at `path`.
    pub fn help_chapter(&self, path: &str) -> &str {
        help::chapter_for(&self.help, path)
    }

    /// Today in the company's time zone.
    pub fn today(&self) -> chrono::NaiveDate {
        self.store.now().with_timezone(&self.tz).date_naive()
    }

    /// On an empty database, makes the one-time link for creating the first superuser.
    pub async fn setup_link(&self) -> Option<String> {
        self.store.ready().await.ok()?;
        if self.auth.directory.user_count() > 0 {
            return None;
        }
        let mut guard = self.auth.setup_token.lock().unwrap_or_else(|p| p.into_inner());
        let token = guard.get_or_insert_with(session::new_token).clone();
        Some(web::paths::setup(&token))
    }

    /// Every route with its declared access.
    pub fn route_table(&self) -> Vec<RouteInfo> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The HTTP endpoint: routes of every module behind the request pipeline.
    pub fn endpoint(&self) -> impl Endpoint + 'static {
        self.endpoint_with(|_| {})
    }

    /// [`App::endpoint`] with extra routes, for tests that need a route the app does not ship
    /// (a handler that panics, say).
    pub fn endpoint_with(&self, extra: impl FnOnce(&mut Routes)) -> impl Endpoint + 'static {
        let mut r = Routes::default();
        r.get("/", Access::SignedIn, home);
        r.get("/healthz", Access::Public, healthz);
        r.get("/readyz", Access::Public, readyz);
        r.get(
            "/metrics",
            Access::Bearer {
                token: self.config.metrics_token.clone(),
                setting: "metrics_token (BRAVELY_METRICS_TOKEN)",
            },
            metrics_page,
        );
        r.get("/assets/*path", Access::Public, web::assets::serve);
        admin::handlers::routes(&mut r);
        for m in modules() {
            m.routes(&mut r);
        }
        extra(&mut r);
        *self.routes.lock().unwrap_or_else(|p| p.into_inner()) = r.table();
        let app = self.clone();
        // The pipeline catches panics itself, so that they get the error page and the request id.
        r.build().around(web::middleware::pipeline).data(app)
    }
}

/// Liveness: 200 while the process can serve; 503 once the store has failed (a damaged
/// database found after the start), since only a restart (after a restore) helps then.
#[handler]
fn healthz(app: Data<&App>) -> Response {
    match app.store.load_state() {
        store::LoadState::Failed(why) => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .content_type("text/plain; charset=utf-8")
            .body(format!("failed: {why}\n")),
        _ => Response::builder().content_type("text/plain; charset=utf-8").body("ok"),
    }
}

/// Prometheus text format; the route's [`Access::Bearer`] checks the token.
#[handler]
fn metrics_page(app: Data<&App>) -> Response {
    let mut out = metrics::render(&app.http_metrics, app.store.commit_metrics(), &app.backup_metrics);
    app.scheduler.write_metrics(&mut out);
    Response::builder().content_type("text/plain; version=0.0.4; charset=utf-8").body(out)
}

#[handler]
fn readyz(app: Data<&App>) -> Response {
    let db = app.store.read().map(|r| r.count(User::TABLE_NAME).is_ok()).unwrap_or(false);
    let loaded = app.store.load_state();
    let stale = if db { app.scheduler.stale(&app) } else { vec![] };
    let ready = db && loaded == store::LoadState::Ready && stale.is_empty();
    let mut checks = serde_json::Map::new();
    checks.insert("database".into(), (if db { "ok" } else { "unreadable" }).into());
    checks.insert(
        "read_models".into(),
        match &loaded {
            store::LoadState::Ready => "ok".to_string(),
            store::LoadState::Loading => "loading".to_string(),
            store::LoadState::Failed(e) => format!("failed: {e}"),
        }
        .into(),
    );
    // Watched jobs (backup policies): each one's freshness.
    for job in app.scheduler.jobs().iter().filter(|j| j.watched) {
        let verdict = stale.iter().find(|(k, _)| *k == job.key).map(|(_, why)| format!("stale: {why}"));
        checks.insert(format!("job:{}", job.key), verdict.unwrap_or_else(|| "ok".into()).into());
    }
    let body = serde_json::json!({ "ready": ready, "checks": checks });
    let mut resp = Json(body).into_response();
    if !ready {
        resp.set_status(StatusCode::SERVICE_UNAVAILABLE);
    }
    resp
}

#[handler]
fn home(app: Data<&App>, ctx: Data<&Arc<Ctx>>) -> Response {
    use maud::html;
    let entries: Vec<&NavEntry> = app.nav.iter().filter(|e| e.perm.as_deref().is_none_or(|p| ctx.can(p))).collect();
    let glances: Vec<Markup> = app.glances.iter().filter_map(|g| g(&app, &ctx)).collect();
    let body = html! {
        p { "Welcome, " (ctx.user.as_ref().map(|u| u.name.as_str()).unwrap_or("")) "." }
        @if !glances.is_empty() {
            section.glance aria-label="At a glance" {
                div.cards { @for g in &glances { (g) } }
            }
            h2.section-title { "Pages" }
        }
        div.cards {
            @for e in entries {
                div.card { h3 { a href=(e.href) { (e.label) } } p.muted { (e.group) } }
            }
        }
    };
    web::layout::render(&app, &ctx, web::layout::Page::new("Bravely", body))
}

impl User {
    pub const TABLE_NAME: &'static str = <User as store::Entity>::TABLE;
}
