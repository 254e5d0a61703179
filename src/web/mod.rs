//! The web shell: routes that declare their permission, request context, layout, assets.

pub mod assets;
pub mod layout;
pub mod middleware;
pub mod paths;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, RouteMethod};

use crate::auth::Principal;
use crate::config::Secret;
use crate::error::AppError;

/// Who may call a route. Every route states one; there is no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (login page, health checks, assets).
    Public,
    /// Any signed-in user.
    SignedIn,
    /// A signed-in user holding this permission codename.
    Perm(String),
    /// The `{slug}.{action}` permission of the admin resource named by the `slug` path parameter.
    Resource(&'static str),
    Superuser,
    /// Machines, not people: `Authorization: Bearer <token>` must carry `token` (sessions do not
    /// count). Without a configured token the route answers 404 and logs which `setting` to set.
    Bearer {
        token: Option<Secret>,
        setting: &'static str,
    },
}

impl Access {
    pub fn perm(p: &str) -> Access {
        Access::Perm(p.to_string())
    }
}

/// Whether a path belongs to the API, which authenticates by bearer token instead of cookies.
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// A registered route, listed for tests and docs.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

/// Per-request context, put in the request's extensions by the middleware.
pub struct Ctx {
    pub request_id: String,
    pub user: Option<Arc<Principal>>,
    /// The CSRF token forms and htmx requests must send back.
    pub csrf: String,
    /// `HX-Request` without `HX-Boosted`: answer with a fragment.
    pub fragment: bool,
    /// Path and query of this request (for `next=` links).
    pub uri: String,
    pub flash: Option<layout::Flash>,
    /// The pattern of the route that matched (`/admin/:slug/`), set by the route's guard; unset
    /// when no route matched. Metrics count by it.
    pub route: OnceLock<Arc<str>>,
    /// An API request (`/api/...`): bearer-token authentication, JSON errors.
    pub api: bool,
}

impl Ctx {
    pub fn can(&self, perm: &str) -> bool {
        self.user.as_ref().is_some_and(|u| u.can(perm))
    }

    pub fn user(&self) -> Result<&Arc<Principal>, AppError> {
        self.user.as_ref().ok_or_else(|| AppError::Unauthenticated { next: self.uri.clone() })
    }

    pub fn actor(&self) -> crate::store::Actor {
        match &self.user {
            Some(u) => crate::store::Actor::user(u.user_id, format!("{} <{}>", u.name, u.email)),
            None => crate::store::Actor::system("anonymous request"),
        }
    }
}

/// Collects routes with their access rule, then builds the poem router.
#[derive(Default)]
pub struct Routes {
    by_path: BTreeMap<String, Vec<(Method, Access, poem::endpoint::BoxEndpoint<'static>)>>,
    table: Vec<RouteInfo>,
}

impl Routes {
    pub fn add<E>(&mut self, method: Method, path: &str, access: Access, ep: E)
    where
        E: Endpoint + 'static,
        E::Output: IntoResponse,
    {
        self.table.push(RouteInfo { method: method.clone(), path: path.to_string(), access: access.clone() });
        let guarded = Guard { access, pattern: Arc::from(path), inner: ep.map_to_response() }.boxed();
        self.by_path.entry(path.to_string()).or_default().push((method, Access::Public, guarded));
    }

    pub fn get<E>(&mut self, path: &str, access: Access, ep: E)
    where
        E: Endpoint + 'static,
        E::Output: IntoResponse,
    {
        self.add(Method::GET, path, access, ep);
    }

    pub fn post<E>(&mut self, path: &str, access: Access, ep: E)
    where
        E: Endpoint + 'static,
        E::Output: IntoResponse,
    {
        self.add(Method::POST, path, access, ep);
    }

    pub fn table(&self) -> Vec<RouteInfo> {
        self.table.clone()
    }

    pub fn build(self) -> Route {
        let mut route = Route::new();
        for (path, methods) in self.by_path {
            let mut rm = RouteMethod::new();
            for (m, _, ep) in methods {
                rm = rm.method(m, ep);
            }
            route = route.at(path, rm);
        }
        route
    }
}

/// Enforces a route's [`Access`] before its handler runs.
struct Guard<E> {
    access: Access,
    pattern: Arc<str>,
    inner: E,
}

impl<E: Endpoint<Output = Response>> Endpoint for Guard<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let ctx = req.extensions().get::<Arc<Ctx>>().cloned();
        let Some(ctx) = ctx else {
            return Err(AppError::internal("request context missing").into());
        };
        let _ = ctx.route.set(self.pattern.clone());
        let allowed = match &self.access {
            Access::Public => true,
            Access::SignedIn => ctx.user()?.user_id > 0,
            Access::Perm(p) => ctx.user()?.can(p),
            Access::Superuser => ctx.user()?.superuser,
            Access::Resource(action) => {
                let user = ctx.user()?;
                let slug = req.raw_path_param("slug").unwrap_or_default();
                user.can(&format!("{slug}.{action}"))
            }
            Access::Bearer { token: None, setting } => {
                tracing::warn!(
                    path = %req.uri().path(),
                    "this endpoint is off until `{setting}` is configured; answering 404"
                );
                return Err(AppError::NotFound.into());
            }
            Access::Bearer { token: Some(token), .. } => {
                if !bearer_matches(&req, token) {
                    return Ok(Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .header(header::WWW_AUTHENTICATE, "Bearer")
                        .body("a valid bearer token is required\n"));
                }
                true
            }
        };
        if !allowed {
            return Err(AppError::Forbidden.into());
        }
        self.inner.call(req).await
    }
}

/// Whether `Authorization: Bearer <t>` carries `token`, compared in constant time.
fn bearer_matches(req: &Request, token: &Secret) -> bool {
    use subtle::ConstantTimeEq;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    given.is_some_and(|g| g.as_bytes().ct_eq(token.expose().trim().as_bytes()).into())
}
