//! Error reporting to Sentry: panics and 500s, tagged with the request id.
//!
//! Off unless `SENTRY_DSN` is set. Nothing personal is sent: `send_default_pii` is off, no
//! request data (URL, headers, cookies, body) and no user is attached, and no breadcrumbs are
//! kept. An event carries the error or panic message with its stack trace, the request id, the
//! route pattern, the release (`bravely@<version>`, or `SENTRY_RELEASE`) and the environment
//! (`SENTRY_ENVIRONMENT`, default `production`).

use std::sync::{Arc, OnceLock};

use sentry::{ClientOptions, Hub};

/// Where one app's errors go: the process-wide hub set up by [`init_from_env`], or a hub given
/// with [`Reporter::use_hub`] (tests use one with a capturing transport).
#[derive(Default)]
pub struct Reporter {
    hub: OnceLock<Arc<Hub>>,
}

impl Reporter {
    /// Sends this app's events to `hub` instead of the process-wide one. The first call wins.
    pub fn use_hub(&self, hub: Arc<Hub>) {
        let _ = self.hub.set(hub);
    }

    /// A hub for one request, with its id as a tag; `None` when reporting is off.
    pub fn request_hub(&self, request_id: &str) -> Option<Arc<Hub>> {
        let top = self.hub.get().cloned().unwrap_or_else(Hub::main);
        if !top.client().is_some_and(|c| c.is_enabled()) {
            return None;
        }
        let hub = Arc::new(Hub::new_from_top(&top));
        hub.configure_scope(|s| s.set_tag("request_id", request_id));
        Some(hub)
    }
}

/// The client options Bravely uses. `sentry::init` (or `sentry::apply_defaults` in tests, which
/// also set a capturing transport) adds the default integrations: panics, stack traces, OS and
/// runtime contexts, and the reqwest + rustls transport.
pub fn options(dsn: Option<sentry::types::Dsn>, environment: Option<String>, release: Option<String>) -> ClientOptions {
    let mut o = ClientOptions::new();
    o.dsn = dsn;
    o.release = release.map(Into::into).or_else(|| sentry::release_name!());
    o.environment = Some(environment.unwrap_or_else(|| "production".into()).into());
    o.send_default_pii = false;
    o.max_breadcrumbs = 0;
    o.before_send = Some(Arc::new(|mut event| {
        // Nothing sets these today; this keeps it so if an integration ever does.
        event.request = None;
        event.user = None;
        Some(event)
    }));
    o
}

/// Starts reporting when `SENTRY_DSN` is set. Keep the guard alive: dropping it flushes the
/// queue (for up to two seconds).
pub fn init_from_env() -> anyhow::Result<Option<sentry::ClientInitGuard>> {
    let Some(dsn) = std::env::var("SENTRY_DSN").ok().filter(|d| !d.trim().is_empty()) else {
        return Ok(None);
    };
    let dsn = dsn
        .trim()
        .parse::<sentry::types::Dsn>()
        .map_err(|e| anyhow::anyhow!("SENTRY_DSN is not a valid Sentry DSN ({e})"))?;
    let env = std::env::var("SENTRY_ENVIRONMENT").ok().filter(|e| !e.is_empty());
    let release = std::env::var("SENTRY_RELEASE").ok().filter(|r| !r.is_empty());
    let guard = sentry::init(options(Some(dsn), env, release));
    Ok(Some(guard))
}
