//! Organisation sign-in against a real OpenID provider: `oidc-provider` (tests/oidc/server.mjs)
//! started as a child process on a socket this test holds, with its own sign-in form and the
//! users of tests/oidc/users.json. Nothing is faked: discovery, PKCE, the token endpoint and the
//! id_token signature are the provider's.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use bravely::auth::{Group, User};
use bravely::config::{Config, OidcProvider, PasswordLogin, Secret};
use bravely::store::Actor;
use command_fds::{CommandFdExt, FdMapping};

use crate::harness::{Client, PASSWORD, TestApp, location};

const CLIENT_ID: &str = "bravely";
const CLIENT_SECRET: &str = "bravely-test-client-secret-0123456789";

/// The provider process; killed (by its pid, through `Child`) when dropped.
struct ProviderProcess {
    child: Child,
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Starts tests/oidc/server.mjs on `listener` (passed as fd 3) for an app at `app_base`.
fn start_provider(listener: &TcpListener, app_base: &str) -> ProviderProcess {
    let dir = provider_dir();
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "the test OpenID provider is not installed: run `npm ci --prefix tests/oidc` \
         (./tests/run.sh does this in its deps step)"
    );
    let fd = listener.as_fd().try_clone_to_owned().expect("dup the provider's socket");
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("server.mjs")
        .args(["--fd", "3", "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
        .arg("--redirect-uri")
        .arg(format!("{app_base}/auth/oidc/callback"))
        .arg("--post-logout-uri")
        .arg(format!("{app_base}/login"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.fd_mappings(vec![FdMapping { parent_fd: fd, child_fd: 3 }]).expect("fd 3");
    let mut child = cmd.spawn().expect("node runs (Node.js 20 or later is required)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    match lines.next() {
        Some(Ok(l)) if l.starts_with("listening on http://127.0.0.1:") => {}
        other => {
            let _ = child.kill();
            panic!("the test OpenID provider did not start: {other:?}");
        }
    }
    std::thread::spawn(move || for _ in lines {});
    ProviderProcess { child }
}

fn provider_config(issuer: &str) -> OidcProvider {
    OidcProvider {
        id: "test".into(),
        name: "Test Org".into(),
        issuer: issuer.into(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(Secret::new(CLIENT_SECRET)),
        client_secret_file: None,
        allowed_domains: vec!["example.com".into()],
        scopes: vec!["email".into(), "profile".into(), "groups".into()],
        require_hd: false,
        assume_email_verified: false,
        groups_claim: Some("groups".into()),
        groups: [("eng".to_string(), "Engineers".to_string()), ("ops".to_string(), "Operations".to_string())]
            .into_iter()
            .collect(),
        superuser_groups: vec![],
    }
}

struct Env {
    t: TestApp,
    provider: ProviderProcess,
    listener: TcpListener,
}

impl Env {
    /// Stops the provider and starts a new one on the same port (with new signing keys).
    fn restart_provider(&mut self) {
        let old =
            std::mem::replace(&mut self.provider, start_provider(&self.listener, &format!("http://{}", self.t.addr)));
        drop(old);
    }
}

/// The app with the test provider configured (changed by `tweak`), and the provider running.
async fn setup(tweak: impl FnOnce(&mut Config)) -> Env {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the provider's port");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let t = TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.oidc.providers = vec![provider_config(&issuer)];
        tweak(c);
    })
    .await;
    // The provider stamps its tokens with the real time, which the app's clock must agree with.
    t.clock.set(chrono::Utc::now());
    let provider = start_provider(&listener, &format!("http://{}", t.addr));
    Env { t, provider, listener }
}

/// Bravely groups the mapping refers to: Engineers see items, Operations see employees.
async fn groups(t: &TestApp) -> (u64, u64) {
    t.app
        .store
        .write(Actor::system("test"), |tx| {
            let e = tx.insert(&Group { name: "Engineers".into(), permissions: vec!["items.view".into()] })?;
            let o = tx.insert(&Group { name: "Operations".into(), permissions: vec!["employees.view".into()] })?;
            Ok((e, o))
        })
        .await
        .expect("groups")
}

fn user_by_email(t: &TestApp, email: &str) -> Option<(u64, User)> {
    t.app.store.read().expect("read").find_unique::<User>("email", email).expect("lookup")
}

fn base_of(c: &Client) -> reqwest::Url {
    reqwest::Url::parse(&c.base).expect("base url")
}

/// Follows a sign-in from `start` (a Bravely path) through the provider's own form, signing in
/// there as `email`, and returns the callback URL the provider sends the browser to (not yet
/// visited).
async fn through_provider(c: &Client, start: &str, email: &str, password: &str) -> String {
    let r = c.get(start).await;
    assert_eq!(r.status(), 303, "{start} redirects to the provider");
    let mut url = reqwest::Url::parse(&location(&r)).expect("absolute provider URL");
    assert_ne!(url.port(), base_of(c).port(), "the redirect leaves Bravely");
    let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"), "PKCE S256");
    assert!(param("state").is_some_and(|s| s.len() >= 16) && param("nonce").is_some_and(|s| s.len() >= 16));
    let mut signed_in = false;
    for _ in 0..12 {
        let r = c.http.get(url.clone()).send().await.expect("provider request");
        if r.status().is_redirection() {
            let next = url.join(&location(&r)).expect("redirect URL");
            if next.path() == "/auth/oidc/callback" {
                return next.to_string();
            }
            url = next;
            continue;
        }
        let status = r.status();
        let html = r.text().await.unwrap_or_default();
        assert!(!signed_in && status == 200 && html.contains("Test provider sign-in"), "{status}: {html}");
        let action = html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("form action");
        let post = url.join(action).expect("action URL");
        let r = c
            .http
            .post(post.clone())
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .expect("provider login");
        assert_eq!(r.status(), 303, "the provider accepts {email}'s password");
        url = post.join(&location(&r)).expect("redirect URL");
        signed_in = true;
    }
    panic!("the provider never sent the browser back");
}

/// GETs an absolute URL (a callback) with the client's cookies.
async fn visit(c: &Client, url: &str) -> (u16, String, String) {
    let r = c.http.get(url).send().await.expect("request");
    let s = r.status().as_u16();
    let loc = location(&r);
    (s, loc, r.text().await.unwrap_or_default())
}

const ALICE: (&str, &str) = ("alice@example.com", "alice-pw-1234");

#[tokio::test]
async fn a_new_user_signs_in_lands_on_next_with_the_mapped_groups() {
    let e = setup(|_| {}).await;
    let (engineers, _) = groups(&e.t).await;
    let c = e.t.client();
    let (status, login_page) = c.text("/login?next=/admin/items/").await;
    assert_eq!(status, 200);
    assert!(login_page.contains("Sign in with Test Org"), "a button per provider");
    assert!(login_page.contains("/auth/oidc/test/login?next=/admin/items/"), "the button keeps next");
    assert!(login_page.contains("name=\"password\""), "the local form stays");

    let cb = through_provider(&c, "/auth/oidc/test/login?next=/admin/items/", ALICE.0, ALICE.1).await;
    let (status, loc, _) = visit(&c, &cb).await;
    assert_eq!((status, loc.as_str()), (303, "/admin/items/"), "lands on the page asked for");
    let (status, html) = c.text("/admin/items/").await;
    assert_eq!(status, 200, "Engineers may see items");
    assert!(html.contains("Alice Example"), "the name comes from the id_token");
    assert_eq!(c.get("/admin/employees/").await.status(), 403, "but not employees");

    let (_, u) = user_by_email(&e.t, ALICE.0).expect("the user was created");
    assert_eq!(u.groups, vec![engineers]);
    assert!(u.password_hash.is_none() && u.active && !u.superuser && u.last_login.is_some());
}

#[tokio::test]
async fn an_existing_user_is_linked_and_only_mapped_groups_are_synced() {
    let e = setup(|_| {}).await;
    let (engineers, operations) = groups(&e.t).await;
    let id = e.t.user(ALICE.0, false, &[]).await;
    let local =
        e.t.app
            .store
            .write(Actor::system("test"), move |tx| {
                let local = tx.insert(&Group { name: "Local".into(), permissions: vec![] })?;
                let mut u = tx.must_get::<User>(id)?;
                u.groups = vec![operations, local];
                tx.update(id, &u)?;
                Ok(local)
            })
            .await
            .expect("groups set");
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", ALICE.0, ALICE.1).await;
    let (status, loc, _) = visit(&c, &cb).await;
    assert_eq!((status, loc.as_str()), (303, "/"));
    let (same, u) = user_by_email(&e.t, ALICE.0).expect("user");
    assert_eq!(same, id, "linked by verified email, no second account");
    assert_eq!(u.groups, vec![local, engineers], "Operations (mapped, not claimed) left; Local (unmapped) kept");
    assert_eq!(e.t.app.registry.get("users").map(|r| r.model().len()), Some(1));
    // The password still works: organisation sign-in does not replace it.
    assert_eq!(e.t.client().login(ALICE.0, PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn the_wrong_domain_is_refused() {
    let e = setup(|_| {}).await;
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", "eve@other.org", "eve-pw-1234").await;
    let (status, _, html) = visit(&c, &cb).await;
    assert_eq!(status, 403);
    assert!(html.contains("Accounts of other.org may not sign in here"), "{html}");
    assert!(user_by_email(&e.t, "eve@other.org").is_none(), "no account created");
    assert_eq!(c.get("/").await.status(), 303, "not signed in");
}

#[tokio::test]
async fn an_unverified_email_is_refused() {
    let e = setup(|_| {}).await;
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", "uma@example.com", "uma-pw-1234").await;
    let (status, _, html) = visit(&c, &cb).await;
    assert_eq!(status, 403);
    assert!(html.contains("has not verified your email address"), "{html}");
    assert!(user_by_email(&e.t, "uma@example.com").is_none());
}

#[tokio::test]
async fn the_hosted_domain_claim_must_match_when_required() {
    let e = setup(|c| c.oidc.providers[0].require_hd = true).await;
    let c = e.t.client();
    let r = c.get("/auth/oidc/test/login").await;
    assert!(location(&r).contains("hd=example.com"), "the hint is sent");
    let cb = through_provider(&c, "/auth/oidc/test/login", "hal@example.com", "hal-pw-1234").await;
    let (status, _, html) = visit(&c, &cb).await;
    assert_eq!(status, 403, "an example.com address without the hd claim is not the organisation's");
    assert!(html.contains("not managed by the organisation"), "{html}");
    // A new browser: the provider would otherwise still have hal signed in.
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", ALICE.0, ALICE.1).await;
    assert_eq!(visit(&c, &cb).await.0, 303, "hd = example.com passes");
}

#[tokio::test]
async fn a_tampered_state_or_another_browser_is_refused() {
    let e = setup(|_| {}).await;
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", ALICE.0, ALICE.1).await;
    let mut url = reqwest::Url::parse(&cb).expect("url");
    let pairs: Vec<(String, String)> =
        url.query_pairs().into_owned().map(|(k, v)| if k == "state" { (k, format!("{v}x")) } else { (k, v) }).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, _, html) = visit(&c, url.as_str()).await;
    assert_eq!(status, 400);
    assert!(html.contains("This sign-in link is not valid"), "{html}");

    let other = e.t.client();
    let (status, _, html) = visit(&other, &cb).await;
    assert_eq!(status, 400, "the state is bound to the browser that started the sign-in");
    assert!(html.contains("started in another browser"), "{html}");
    assert!(user_by_email(&e.t, ALICE.0).is_none());
}

#[tokio::test]
async fn a_replayed_callback_or_code_is_refused() {
    let e = setup(|_| {}).await;
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", ALICE.0, ALICE.1).await;
    assert_eq!(visit(&c, &cb).await.0, 303, "the first use signs in");

    let (status, _, html) = visit(&c, &cb).await;
    assert_eq!(status, 400, "a callback works once");
    assert!(html.contains("already used"), "{html}");

    // The same code with a new, valid state: Bravely's checks pass, the provider refuses it.
    let again = e.t.client();
    let code = reqwest::Url::parse(&cb)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let r = again.get("/auth/oidc/test/login").await;
    let started = reqwest::Url::parse(&location(&r)).expect("provider url");
    let state = started.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).expect("state");
    let mut replay = reqwest::Url::parse(&format!("{}/auth/oidc/callback", again.base)).expect("url");
    replay.query_pairs_mut().append_pair("code", &code).append_pair("state", &state);
    let (status, _, html) = visit(&again, replay.as_str()).await;
    assert_eq!(status, 400);
    assert!(html.contains("did not accept this sign-in"), "{html}");
    assert_eq!(again.get("/").await.status(), 303, "not signed in");
}

#[tokio::test]
async fn an_expired_flow_is_refused() {
    let e = setup(|_| {}).await;
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", ALICE.0, ALICE.1).await;
    e.t.clock.advance(chrono::Duration::minutes(11));
    let (status, _, html) = visit(&c, &cb).await;
    assert_eq!(status, 400);
    assert!(html.contains("took too long"), "{html}");
}

#[tokio::test]
async fn a_provider_that_is_down_gets_a_clear_page() {
    // A port that was free a moment ago and that nothing listens on.
    let issuer = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let t = TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.oidc.providers = vec![provider_config(&issuer)];
    })
    .await;
    t.user("root@example.com", true, &[]).await;
    let c = t.client();
    let r = c.get("/auth/oidc/test/login?next=/admin/").await;
    assert_eq!(r.status(), 503);
    let html = r.text().await.unwrap_or_default();
    assert!(html.contains("Test Org cannot be reached right now"), "{html}");
    assert!(html.contains("href=\"/login\""), "a way back");
    assert_eq!(c.login("root@example.com", PASSWORD).await.status(), 303, "passwords still work");
    assert_eq!(c.get("/auth/oidc/nope/login").await.status(), 404, "unknown providers are not found");
}

#[tokio::test]
async fn an_inactive_bravely_user_is_refused() {
    let e = setup(|_| {}).await;
    let id = e.t.user("dora@example.com", false, &[]).await;
    e.t.app
        .store
        .write(Actor::system("test"), move |tx| {
            let mut u = tx.must_get::<User>(id)?;
            u.active = false;
            tx.update(id, &u)?;
            Ok(())
        })
        .await
        .expect("deactivated");
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", "dora@example.com", "dora-pw-1234").await;
    let (status, _, html) = visit(&c, &cb).await;
    assert_eq!(status, 403);
    assert!(html.contains("deactivated"), "{html}");
    assert_eq!(c.get("/").await.status(), 303, "not signed in");
}

#[tokio::test]
async fn password_login_can_be_kept_for_superusers_only() {
    let e = setup(|c| c.login.password_login = PasswordLogin::Superusers).await;
    e.t.user("root@example.com", true, &[]).await;
    e.t.user("staff@example.com", false, &[]).await;
    let c = e.t.client();
    let r = c.login("staff@example.com", PASSWORD).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap_or_default().contains("Use your organisation account"));
    assert_eq!(c.get("/").await.status(), 303, "not signed in");
    assert_eq!(c.login("root@example.com", PASSWORD).await.status(), 303, "break-glass for superusers");
}

#[tokio::test]
async fn superuser_sync_never_demotes_the_last_superuser() {
    let e = setup(|c| c.oidc.providers[0].superuser_groups = vec!["admins".into()]).await;
    e.t.user("root@example.com", true, &[]).await;
    e.t.user(ALICE.0, true, &[]).await;
    // Alice's claims lack "admins": with root left, she is demoted.
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", ALICE.0, ALICE.1).await;
    assert_eq!(visit(&c, &cb).await.0, 303);
    assert!(!user_by_email(&e.t, ALICE.0).expect("alice").1.superuser);
    // Root's claims lack it too, but root is now the last superuser.
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", "root@example.com", "root-pw-1234").await;
    assert_eq!(visit(&c, &cb).await.0, 303);
    assert!(user_by_email(&e.t, "root@example.com").expect("root").1.superuser, "the last superuser stays");
}

#[tokio::test]
async fn sign_out_ends_the_session_and_offers_the_providers_logout() {
    let e = setup(|_| {}).await;
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login?next=//evil.example/", ALICE.0, ALICE.1).await;
    let (status, loc, _) = visit(&c, &cb).await;
    assert_eq!((status, loc.as_str()), (303, "/"), "an outside next is ignored");
    let r = c.post("/logout", &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap_or_default();
    let href = html
        .split("id=\"provider-logout\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a link to the provider's logout")
        .replace("&amp;", "&");
    let url = reqwest::Url::parse(&href).expect("logout URL");
    assert_eq!(url.path(), "/session/end");
    let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(q.iter().any(|(k, v)| k == "id_token_hint" && v.split('.').count() == 3));
    assert!(q.iter().any(|(k, v)| k == "post_logout_redirect_uri" && *v == format!("{}/login", c.base)));
    assert_eq!(c.get("/").await.status(), 303, "the Bravely session is over");
    let r = c.http.get(url).send().await.expect("provider logout");
    assert_eq!(r.status(), 200, "the provider knows the hint and asks to confirm");
}

#[tokio::test]
async fn rotated_signing_keys_are_fetched_again() {
    let mut e = setup(|_| {}).await;
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", ALICE.0, ALICE.1).await;
    assert_eq!(visit(&c, &cb).await.0, 303, "discovery and keys are now cached");
    // Same issuer and port, new key: the cached key set no longer has the token's key id.
    e.restart_provider();
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", "root@example.com", "root-pw-1234").await;
    let (status, loc, html) = visit(&c, &cb).await;
    assert_eq!((status, loc.as_str()), (303, "/"), "the unknown key id made Bravely fetch the keys again: {html}");
}

/// A log sink shared with the test.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refusals_are_logged_with_a_reason_and_without_codes_tokens_or_secrets() {
    let logs = LogBuffer::default();
    let sink = logs.clone();
    // This test's runtime has one thread, which serves the app too: a thread-local subscriber
    // sees every request's log lines.
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || sink.clone())
            .finish(),
    );
    let e = setup(|_| {}).await;
    let c = e.t.client();
    let cb = through_provider(&c, "/auth/oidc/test/login", ALICE.0, ALICE.1).await;
    assert_eq!(visit(&c, &cb).await.0, 303);
    let (status, _, _) = visit(&c, &cb).await;
    assert_eq!(status, 400, "replayed");
    let other = e.t.client();
    let cb2 = through_provider(&other, "/auth/oidc/test/login", "eve@other.org", "eve-pw-1234").await;
    assert_eq!(visit(&other, &cb2).await.0, 403);

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|p| p.into_inner())).to_string();
    assert!(
        text.contains("organisation sign-in refused") && text.contains("unknown, reused or tampered state"),
        "{text}"
    );
    assert!(text.contains("email domain other.org not allowed"), "{text}");
    for url in [&cb, &cb2] {
        let parsed = reqwest::Url::parse(url).expect("url");
        for (k, v) in parsed.query_pairs() {
            if k == "code" || k == "state" {
                assert!(!text.contains(v.as_ref()), "the {k} is not logged");
            }
        }
    }
    assert!(!text.contains(CLIENT_SECRET), "the client secret is not logged");
    assert!(!text.contains("eyJ"), "no JWT (id_token) is logged");
}
