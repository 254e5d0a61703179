//! Organisation sign-in with OpenID Connect: authorization code flow with PKCE (S256), `state`
//! and `nonce`, the id_token verified by `openidconnect` (signature, issuer, audience, expiry).
//!
//! Pending sign-ins live here, in memory: each is keyed by its `state`, used once, expires
//! after [`FLOW_TTL`], and is bound to the browser that started it by the `bravely_oidc`
//! cookie (the flow keeps the cookie's SHA-256). A restart forgets them; the user starts again.
//!
//! Discovery documents (with the provider's signing keys) are cached for [`DISCOVERY_TTL`] and
//! fetched again sooner when an id_token is signed with a key the cache does not know.

pub mod accounts;
pub mod handlers;
pub mod http;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
};
use subtle::ConstantTimeEq;

use crate::config::{Config, OidcProvider};

/// How long a started sign-in may take at the provider.
pub const FLOW_TTL: Duration = Duration::minutes(10);
/// How long discovery documents and signing keys are used before they are fetched again.
pub const DISCOVERY_TTL: Duration = Duration::hours(1);
/// Pending sign-ins kept at most (each costs a few hundred bytes; anyone can start one).
const MAX_FLOWS: usize = 10_000;
/// The cookie binding a pending sign-in to its browser.
pub const BROWSER_COOKIE: &str = "bravely_oidc";

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// Why a sign-in did not go through: what the user reads, and what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    UnknownProvider,
    /// Discovery or the token endpoint could not be reached or answered nonsense.
    ProviderDown(String),
    /// No pending sign-in has this `state`: forged, already used, or forgotten by a restart.
    UnknownState,
    /// The pending sign-in was started by another browser.
    OtherBrowser,
    Expired,
    /// The provider sent `error=...` back instead of a code.
    ProviderRefused(String),
    /// The response lacks a parameter (`code`, `state`) or names another issuer.
    BadResponse(String),
    /// The token endpoint refused the code (used already, wrong verifier, expired).
    CodeRefused(String),
    /// The id_token is missing or fails verification.
    BadIdToken(String),
    NoEmail,
    EmailUnverified,
    DomainNotAllowed(String),
    HostedDomain(String),
    Inactive,
    Busy,
}

impl Failure {
    pub fn status(&self) -> u16 {
        match self {
            Failure::UnknownProvider => 404,
            Failure::ProviderDown(_) => 503,
            Failure::Busy => 503,
            Failure::NoEmail
            | Failure::EmailUnverified
            | Failure::DomainNotAllowed(_)
            | Failure::HostedDomain(_)
            | Failure::Inactive => 403,
            _ => 400,
        }
    }

    /// What the page says (no secrets, nothing from the provider but an error code).
    pub fn message(&self, provider: &str) -> String {
        match self {
            Failure::UnknownProvider => "There is no such sign-in provider.".into(),
            Failure::ProviderDown(_) => format!(
                "{provider} cannot be reached right now, so signing in with it is not possible. Try again in a few minutes."
            ),
            Failure::UnknownState => "This sign-in link is not valid: it was already used, or changed on the way. \
                                      Start again from the sign-in page."
                .into(),
            Failure::OtherBrowser => "This sign-in was started in another browser (or its cookie is gone). \
                                      Start again from the sign-in page in this browser."
                .into(),
            Failure::Expired => format!(
                "This sign-in took too long (more than {} minutes). Start again from the sign-in page.",
                FLOW_TTL.num_minutes()
            ),
            Failure::ProviderRefused(code) => format!("{provider} did not sign you in ({code})."),
            Failure::BadResponse(_) => {
                format!("The answer from {provider} was incomplete. Start again from the sign-in page.")
            }
            Failure::CodeRefused(_) => format!(
                "{provider} did not accept this sign-in: its code was already used or has expired. Start again from the sign-in page."
            ),
            Failure::BadIdToken(_) => format!("The identity sent by {provider} could not be verified."),
            Failure::NoEmail => format!("{provider} did not share an email address; Bravely needs one."),
            Failure::EmailUnverified => {
                format!("{provider} has not verified your email address, so it cannot be used to sign in.")
            }
            Failure::DomainNotAllowed(domain) => {
                format!("Accounts of {domain} may not sign in here. Use your organisation account.")
            }
            Failure::HostedDomain(_) => {
                "This account is not managed by the organisation. Use your organisation account.".into()
            }
            Failure::Inactive => "Your Bravely account is deactivated. Ask an administrator.".into(),
            Failure::Busy => "Too many sign-ins are in progress. Try again in a few minutes.".into(),
        }
    }

    /// The reason written to the log (never tokens, codes or secrets).
    pub fn reason(&self) -> String {
        match self {
            Failure::UnknownProvider => "unknown provider".into(),
            Failure::ProviderDown(e) => format!("provider unreachable: {e}"),
            Failure::UnknownState => "unknown, reused or tampered state".into(),
            Failure::OtherBrowser => "state bound to another browser".into(),
            Failure::Expired => "sign-in flow expired".into(),
            Failure::ProviderRefused(code) => format!("provider returned error {code}"),
            Failure::BadResponse(e) => format!("bad authorization response: {e}"),
            Failure::CodeRefused(e) => format!("token endpoint refused the code: {e}"),
            Failure::BadIdToken(e) => format!("id_token rejected: {e}"),
            Failure::NoEmail => "no email claim".into(),
            Failure::EmailUnverified => "email not verified".into(),
            Failure::DomainNotAllowed(d) => format!("email domain {d} not allowed"),
            Failure::HostedDomain(hd) => format!("hd claim {hd:?} does not match allowed_domains"),
            Failure::Inactive => "Bravely account is inactive".into(),
            Failure::Busy => "too many pending sign-ins".into(),
        }
    }
}

/// A sign-in started at a provider, waiting for the callback.
struct Flow {
    provider: usize,
    pkce_verifier: String,
    nonce: String,
    next: String,
    /// SHA-256 (hex) of the browser cookie.
    browser: String,
    started: DateTime<Utc>,
}

/// What a session needs for RP-initiated logout.
#[derive(Clone)]
pub struct LoginRecord {
    pub provider: usize,
    pub id_token: String,
}

struct Discovered {
    metadata: ProviderMetadataWithLogout,
    fetched: DateTime<Utc>,
}

pub struct Provider {
    pub config: OidcProvider,
    discovery: tokio::sync::Mutex<Option<Arc<Discovered>>>,
}

/// A verified identity, as the id_token states it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub email: String,
    pub name: String,
    /// Values of the groups claim; `None` when the provider is not configured to send one or
    /// it signals that the list is elsewhere (Entra ID's "overage"), so groups stay as they are.
    pub groups: Option<Vec<String>>,
}

/// What the callback produced: who signed in, and where to go.
pub struct Completed {
    pub provider: usize,
    pub identity: Identity,
    pub id_token: String,
    pub next: String,
}

pub struct Oidc {
    pub providers: Vec<Provider>,
    redirect_url: Option<String>,
    post_logout_url: Option<String>,
    flows: Mutex<HashMap<String, Flow>>,
    /// Session key -> how it signed in (kept in memory: after a restart, sign-out still offers
    /// the provider's logout, identified by `client_id` instead of the id_token).
    logins: Mutex<HashMap<String, LoginRecord>>,
    http: OnceLock<reqwest::Client>,
}

impl Oidc {
    pub fn new(config: &Config) -> Oidc {
        let base = config.public_url.as_deref().map(|u| u.trim_end_matches('/').to_string());
        Oidc {
            providers: config
                .oidc
                .providers
                .iter()
                .map(|p| Provider { config: p.clone(), discovery: tokio::sync::Mutex::new(None) })
                .collect(),
            redirect_url: base.as_ref().map(|b| format!("{b}{}", crate::web::paths::oidc_callback())),
            post_logout_url: base.as_ref().map(|b| format!("{b}{}", crate::web::paths::login(None))),
            flows: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
            http: OnceLock::new(),
        }
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(http::client)
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.config.id == id)
    }

    /// The provider's discovery document, from the cache unless it is older than
    /// [`DISCOVERY_TTL`] or `refresh` is set. When fetching fails, a cached copy is still used.
    async fn metadata(&self, idx: usize, now: DateTime<Utc>, refresh: bool) -> Result<Arc<Discovered>, Failure> {
        let p = &self.providers[idx];
        let mut cached = p.discovery.lock().await;
        if let Some(d) = cached.as_ref()
            && !refresh
            && now - d.fetched < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        let issuer = IssuerUrl::new(p.config.issuer.clone())
            .map_err(|e| Failure::ProviderDown(format!("issuer is not a URL: {e}")))?;
        let client = http::closure(self.http());
        match ProviderMetadataWithLogout::discover_async(issuer, &client).await {
            Ok(metadata) => {
                tracing::info!(provider = %p.config.id, "OpenID provider discovery fetched");
                let d = Arc::new(Discovered { metadata, fetched: now });
                *cached = Some(d.clone());
                Ok(d)
            }
            Err(e) => {
                let reason = error_chain(&e);
                match cached.as_ref() {
                    Some(d) => {
                        tracing::warn!(provider = %p.config.id, error = %reason, "discovery failed; using the cached copy");
                        Ok(d.clone())
                    }
                    None => Err(Failure::ProviderDown(reason)),
                }
            }
        }
    }

    fn client(&self, idx: usize, d: &Discovered) -> Result<Client, Failure> {
        let p = &self.providers[idx].config;
        let redirect = self.redirect_url.clone().ok_or_else(|| Failure::BadResponse("public_url is not set".into()))?;
        let redirect = RedirectUrl::new(redirect).map_err(|e| Failure::BadResponse(format!("redirect URI: {e}")))?;
        let secret = p.client_secret.as_ref().map(|s| ClientSecret::new(s.expose().to_string()));
        Ok(CoreClient::from_provider_metadata(d.metadata.clone(), ClientId::new(p.client_id.clone()), secret)
            .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: remembers the flow and returns the provider's authorization URL.
    /// `browser` is the value of the browser's [`BROWSER_COOKIE`].
    pub async fn start(&self, idx: usize, next: String, browser: &str, now: DateTime<Utc>) -> Result<String, Failure> {
        let d = self.metadata(idx, now, false).await?;
        let client = self.client(idx, &d)?;
        let p = &self.providers[idx].config;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for s in p.scopes.iter().filter(|s| s.as_str() != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if p.require_hd
            && let [domain] = p.allowed_domains.as_slice()
        {
            // Only a hint for Google's account chooser; the id_token's `hd` is what is checked.
            req = req.add_extra_param("hd", domain.clone());
        }
        let (url, state, nonce) = req.url();
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        flows.retain(|_, f| now - f.started <= FLOW_TTL);
        if flows.len() >= MAX_FLOWS {
            return Err(Failure::Busy);
        }
        flows.insert(
            state.secret().clone(),
            Flow {
                provider: idx,
                pkce_verifier: verifier.secret().clone(),
                nonce: nonce.secret().clone(),
                next,
                browser: super::session::key_of(browser),
                started: now,
            },
        );
        Ok(url.to_string())
    }

    /// Finishes a sign-in at the callback. The flow is used up whatever the outcome.
    /// `provider_of_state` is set as soon as the flow is known, for the page and the log.
    pub async fn finish(
        &self,
        q: &CallbackQuery,
        browser: Option<&str>,
        now: DateTime<Utc>,
        provider_of_state: &mut Option<usize>,
    ) -> Result<Completed, Failure> {
        let state = q.state.as_deref().filter(|s| !s.is_empty()).ok_or(Failure::UnknownState)?;
        let flow = self.flows.lock().unwrap_or_else(|e| e.into_inner()).remove(state).ok_or(Failure::UnknownState)?;
        *provider_of_state = Some(flow.provider);
        let bound =
            browser.is_some_and(|b| bool::from(super::session::key_of(b).as_bytes().ct_eq(flow.browser.as_bytes())));
        if !bound {
            return Err(Failure::OtherBrowser);
        }
        if now - flow.started > FLOW_TTL {
            return Err(Failure::Expired);
        }
        let p = &self.providers[flow.provider].config;
        if let Some(error) = &q.error {
            // Only the code: error_description is the provider's free text.
            let code: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            return Err(Failure::ProviderRefused(code));
        }
        // RFC 9207: a provider that names itself must be the one this flow went to.
        if let Some(iss) = &q.iss
            && iss.trim_end_matches('/') != p.issuer.trim_end_matches('/')
        {
            return Err(Failure::BadResponse("the iss parameter names another issuer".into()));
        }
        let code = q.code.as_deref().filter(|c| !c.is_empty()).ok_or(Failure::BadResponse("no code".into()))?;
        let d = self.metadata(flow.provider, now, false).await?;
        let client = self.client(flow.provider, &d)?;
        let http = http::closure(self.http());
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| Failure::ProviderDown(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => Failure::CodeRefused(r.error().to_string()),
                RequestTokenError::Request(e) => Failure::ProviderDown(error_chain(&e)),
                // The body may hold tokens: only the parser's message is kept.
                RequestTokenError::Parse(e, _) => Failure::ProviderDown(format!("token response unreadable: {e}")),
                RequestTokenError::Other(e) => Failure::ProviderDown(e),
            })?;
        let id_token = token.id_token().ok_or(Failure::BadIdToken("the token response has no id_token".into()))?;
        let nonce = Nonce::new(flow.nonce);
        let verify = |client: &Client| {
            let verifier = client.id_token_verifier().set_time_fn(move || now);
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&client) {
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                // The provider may have rotated its keys since discovery was cached.
                tracing::info!(provider = %p.id, "id_token signed with an unknown key; fetching discovery again");
                let d = self.metadata(flow.provider, now, true).await?;
                verify(&self.client(flow.provider, &d)?)
            }
            other => other,
        }
        .map_err(|e| Failure::BadIdToken(e.to_string()))?;
        let raw = id_token.to_string();
        // The token is verified: its payload can be read for the claims openidconnect does not model.
        let extra = payload(&raw).ok_or(Failure::BadIdToken("unreadable payload".into()))?;
        let email = claims.email().map(|e| e.as_str().trim().to_lowercase()).ok_or(Failure::NoEmail)?;
        if !crate::auth::model::valid_email(&email) {
            return Err(Failure::NoEmail);
        }
        if !(claims.email_verified() == Some(true) || p.assume_email_verified) {
            return Err(Failure::EmailUnverified);
        }
        let domain = email.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
        if !p.allowed_domains.contains(&domain) {
            return Err(Failure::DomainNotAllowed(domain));
        }
        if p.require_hd {
            let hd = extra.get("hd").and_then(|v| v.as_str()).unwrap_or("").to_lowercase();
            if !p.allowed_domains.contains(&hd) {
                return Err(Failure::HostedDomain(hd));
            }
        }
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
        let groups = p.groups_claim.as_deref().and_then(|c| group_values(&extra, c, &p.id));
        Ok(Completed {
            provider: flow.provider,
            identity: Identity { email, name, groups },
            id_token: raw,
            next: flow.next,
        })
    }

    /// Keeps what sign-out needs; entries of sessions that `alive` no longer knows are dropped
    /// once there are many.
    pub fn remember_login(&self, session_key: &str, record: LoginRecord, alive: impl Fn(&str) -> bool) {
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        if logins.len() >= 1024 {
            logins.retain(|k, _| alive(k));
        }
        logins.insert(session_key.to_string(), record);
    }

    /// Forgets how a session signed in and returns the provider's logout URL, when it has one.
    pub async fn logout_url(&self, session_key: &str, now: DateTime<Utc>) -> Option<(usize, String)> {
        let record = self.logins.lock().unwrap_or_else(|e| e.into_inner()).remove(session_key)?;
        let d = self.metadata(record.provider, now, false).await.ok()?;
        let endpoint = d.metadata.additional_metadata().end_session_endpoint.clone()?;
        let p = &self.providers[record.provider].config;
        let mut req = LogoutRequest::from(endpoint).set_client_id(ClientId::new(p.client_id.clone()));
        if let Ok(hint) = record.id_token.parse::<openidconnect::core::CoreIdToken>() {
            req = req.set_id_token_hint(&hint);
        }
        if let Some(u) = self.post_logout_url.clone().and_then(|u| PostLogoutRedirectUrl::new(u).ok()) {
            req = req.set_post_logout_redirect_uri(u);
        }
        Some((record.provider, req.http_get_url().to_string()))
    }
}

/// The query string of `GET /auth/oidc/callback`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

/// The JSON payload of a compact JWS.
fn payload(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The values of the groups claim: an array of strings, or one string. A missing claim is an
/// empty list, except when the provider says the groups are elsewhere (`_claim_names`).
fn group_values(
    claims: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    provider: &str,
) -> Option<Vec<String>> {
    match claims.get(name) {
        Some(serde_json::Value::Array(a)) => Some(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
        Some(serde_json::Value::String(s)) => Some(vec![s.clone()]),
        Some(_) => {
            tracing::warn!(
                provider,
                claim = name,
                "groups claim is neither a string nor a list; groups left as they are"
            );
            None
        }
        None if claims.get("_claim_names").and_then(|c| c.get(name)).is_some() => {
            tracing::warn!(
                provider,
                claim = name,
                "groups claim is sent elsewhere (too many groups); groups left as they are"
            );
            None
        }
        None => Some(vec![]),
    }
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_claim_takes_lists_strings_and_overage() {
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"g":["a","b",3],"one":"x","_claim_names":{"big":"src1"}}"#).expect("json");
        assert_eq!(group_values(&claims, "g", "p"), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(group_values(&claims, "one", "p"), Some(vec!["x".to_string()]));
        assert_eq!(group_values(&claims, "missing", "p"), Some(vec![]));
        assert_eq!(group_values(&claims, "big", "p"), None, "overage leaves groups alone");
    }

    #[test]
    fn payload_reads_the_middle_part() {
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"hd":"example.com"}"#);
        let p = payload(&format!("e30.{body}.sig")).expect("payload");
        assert_eq!(p.get("hd").and_then(|v| v.as_str()), Some("example.com"));
        assert!(payload("not a jwt").is_none());
    }
}
