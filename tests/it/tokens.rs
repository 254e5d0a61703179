//! Personal API tokens and the backups API: creation (CLI and page), shown once, stored as a
//! hash, refused when revoked, expired, wrong, malformed or missing, the user's current
//! permissions, rate limits, and the list/create/download round trip.

use std::process::{Command, Stdio};
use std::time::Duration;

use bravely::backups::archive;
use bravely::store::{Actor, AuditAction, Entity};
use bravely::tokens::ApiToken;
use serde_json::Value as Json;

use crate::harness::{TestApp, location};

fn api(t: &TestApp, method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new().request(method, format!("http://{}{path}", t.addr));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req
}

async fn get(t: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    api(t, reqwest::Method::GET, path, token).send().await.expect("request")
}

async fn post(t: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    api(t, reqwest::Method::POST, path, token).send().await.expect("request")
}

async fn json(r: reqwest::Response) -> Json {
    let ctype = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ctype.starts_with("application/json"), "JSON answer, got {ctype}");
    r.json().await.expect("JSON body")
}

/// Asserts a 401 with a Bearer challenge and a JSON error; returns the error message.
async fn unauthorized(r: reqwest::Response, what: &str) -> String {
    assert_eq!(r.status(), 401, "{what}");
    let challenge = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(challenge.starts_with("Bearer"), "{what}: challenge {challenge:?}");
    json(r).await["error"].as_str().unwrap_or_default().to_string()
}

/// The first whole token (`bvt_` and 43 characters) in a text.
fn token_in(text: &str) -> Option<String> {
    text.match_indices("bvt_").find_map(|(start, _)| {
        let token: String =
            text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        (token.len() == 47).then_some(token)
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn tokens_of(t: &TestApp) -> Vec<(u64, ApiToken)> {
    t.app.store.read().expect("read").all::<ApiToken>().expect("tokens")
}

#[tokio::test]
async fn cli_token_add_prints_a_token_the_api_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_bravely");
    let mut child = Command::new(bin)
        .args(["user", "add", "--email", "ops@example.com", "--name", "Ops", "--superuser", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(b"a long enough password\n").expect("write");
    }
    assert!(child.wait_with_output().expect("wait").status.success());
    let run = |email: &str| {
        Command::new(bin)
            .args(["token", "add", "--email", email, "--name", "nightly backups", "--expires-days", "30", "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("runs")
    };
    let unknown = run("nobody@example.com");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user with the email"));
    let out = run("OPS@example.com");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let token = token_in(&stdout).expect("the token on stdout");
    assert_eq!(stdout.trim(), token, "stdout holds the token alone");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only now"));

    // Only a hash is on disk.
    let db = std::fs::read(dir.path().join("bravely.redb")).expect("database file");
    assert!(!contains(&db, token.as_bytes()), "the token is not in the database file");
    assert!(!contains(&db, &token.as_bytes()["bvt_".len()..]), "nor its random part");
    let digest = bravely::tokens::model::hash(&token);
    assert!(contains(&db, digest.as_bytes()), "its SHA-256 is (so this looked in the right file)");

    let t = TestApp::spawn_in(dir).await;
    let r = get(&t, "/api/backups", Some(&token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["backups"], serde_json::json!([]));
    let stored = tokens_of(&t);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.name, "nightly backups");
    assert!(stored[0].1.expires_at.is_some());
    let history = t.app.store.history(ApiToken::TABLE, stored[0].0).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].1.action, AuditAction::Create);
    assert_eq!(history[0].1.actor_label, "system (bravely token add)");
}

#[tokio::test]
async fn a_token_made_on_the_page_is_shown_once_and_can_be_revoked() {
    let t = TestApp::spawn().await;
    t.user("root@example.com", true, &[]).await;
    t.user("ana@example.com", false, &["backups.view"]).await;
    let c = t.login("ana@example.com").await;
    let (s, page) = c.text("/account/tokens").await;
    assert_eq!(s, 200);
    assert!(page.contains("No tokens yet."));
    let (_, home) = c.text("/").await;
    assert!(home.contains("/account/tokens"), "the navigation links to the page");

    let r = c.post("/account/tokens", &[("name", ""), ("expires_in_days", "0")]).await;
    assert_eq!(r.status(), 422);
    assert!(tokens_of(&t).is_empty(), "nothing made from a bad form");

    let r = c.post("/account/tokens", &[("name", "reporting"), ("expires_in_days", "")]).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("page");
    let token = token_in(&page).expect("the new token is on the page");
    assert!(page.contains("will not be shown again"));

    let (_, later) = c.text("/account/tokens").await;
    assert!(token_in(&later).is_none(), "a later page load does not show it");
    let (id, stored) = tokens_of(&t).pop().expect("stored");
    assert!(later.contains(&stored.prefix) && token.starts_with(&stored.prefix), "the prefix tells it apart");
    assert!(later.contains("reporting"));

    // The database file holds the hash, never the token.
    let db = std::fs::read(t.app.config.data_dir.join("bravely.redb")).expect("database file");
    assert!(!contains(&db, token.as_bytes()));
    assert!(contains(&db, stored.secret_sha256.as_bytes()));

    assert_eq!(get(&t, "/api/backups", Some(&token)).await.status(), 200);

    // An admin sees everyone's tokens, never the secret, with their history.
    let root = t.login("root@example.com").await;
    let (s, list) = root.text("/admin/api-tokens/").await;
    assert_eq!(s, 200);
    assert!(list.contains("reporting") && list.contains(&stored.prefix));
    assert!(token_in(&list).is_none() && !list.contains(&stored.secret_sha256));
    let (_, history) = root.text(&format!("/admin/api-tokens/{id}/history")).await;
    assert!(history.contains("ana@example.com"), "created by Ana: {history}");
    assert!(!history.contains(&stored.secret_sha256), "the hash stays out of the audit log");
    // Ana cannot reach the admin list, and the admin cannot make tokens there.
    assert_eq!(c.get("/admin/api-tokens/").await.status(), 403);
    let r = root.post("/admin/api-tokens/new", &[("revoked", "")]).await;
    assert_eq!(r.status(), 422);
    assert_eq!(tokens_of(&t).len(), 1);

    // Someone else cannot revoke Ana's token from their own page.
    assert_eq!(root.post(&format!("/account/tokens/{id}/revoke"), &[]).await.status(), 404);
    assert_eq!(get(&t, "/api/backups", Some(&token)).await.status(), 200);

    let r = c.post(&format!("/account/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.text(&location(&r)).await;
    assert!(page.contains("revoked"));
    let msg = unauthorized(get(&t, "/api/backups", Some(&token)).await, "revoked").await;
    assert!(msg.contains("revoked"), "{msg}");
    let history = t.app.store.history(ApiToken::TABLE, id).expect("history");
    assert_eq!(history[0].1.action, AuditAction::Other("revoke".into()));
    assert_eq!(history[0].1.actor_id, tokens_of(&t).first().map(|(_, t)| t.user_id));
}

#[tokio::test]
async fn an_admin_revokes_a_token_from_the_admin_pages() {
    let t = TestApp::spawn().await;
    t.user("root@example.com", true, &[]).await;
    let ana = t.user("ana@example.com", false, &["backups.view"]).await;
    let token = t.token(ana, "script", None).await;
    assert_eq!(get(&t, "/api/backups", Some(&token)).await.status(), 200);
    let root = t.login("root@example.com").await;
    let r = root.post("/admin/api-tokens/1/", &[("revoked", "on")]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    unauthorized(get(&t, "/api/backups", Some(&token)).await, "revoked by an admin").await;
    let r = root.post("/admin/api-tokens/1/", &[]).await;
    assert_eq!(r.status(), 422, "a revoked token cannot be restored");
    unauthorized(get(&t, "/api/backups", Some(&token)).await, "still revoked").await;
}

#[tokio::test]
async fn wrong_malformed_missing_and_expired_tokens_and_inactive_users_get_401() {
    let t = TestApp::spawn().await;
    let ana = t.user("ana@example.com", false, &["backups.view"]).await;
    let expiring = t.token(ana, "short-lived", Some(1)).await;
    let lasting = t.token(ana, "lasting", None).await;
    assert_eq!(get(&t, "/api/backups", Some(&expiring)).await.status(), 200);

    let msg = unauthorized(get(&t, "/api/backups", None).await, "missing").await;
    assert!(msg.contains("Authorization: Bearer"), "{msg}");
    let wrong = format!("bvt_{}", "A".repeat(43));
    let msg = unauthorized(get(&t, "/api/backups", Some(&wrong)).await, "wrong").await;
    assert!(msg.contains("not valid"), "{msg}");
    for bad in ["bvt_short", "Bearer", "xyz", &lasting[..lasting.len() - 1], &format!("{lasting}x")] {
        let msg = unauthorized(get(&t, "/api/backups", Some(bad)).await, bad).await;
        assert!(msg.contains("malformed"), "{bad}: {msg}");
    }
    let r = api(&t, reqwest::Method::GET, "/api/backups", None)
        .header("authorization", format!("Basic {lasting}"))
        .send()
        .await
        .expect("request");
    unauthorized(r, "another scheme is no token").await;
    // The scheme is case-insensitive.
    let r = api(&t, reqwest::Method::GET, "/api/backups", None)
        .header("authorization", format!("bearer {lasting}"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);

    // A session cookie does not open the API.
    let c = t.login("ana@example.com").await;
    unauthorized(c.get("/api/backups").await, "a session is no token").await;

    t.clock.advance(chrono::Duration::days(1));
    let msg = unauthorized(get(&t, "/api/backups", Some(&expiring)).await, "expired").await;
    assert!(msg.contains("expired"), "{msg}");
    assert_eq!(get(&t, "/api/backups", Some(&lasting)).await.status(), 200);

    // Deactivating the user stops their tokens at once.
    t.app
        .store
        .write(Actor::system("test"), move |tx| {
            let mut u = tx.must_get::<bravely::auth::User>(ana)?;
            u.active = false;
            tx.update(ana, &u)?;
            Ok(())
        })
        .await
        .expect("deactivated");
    let msg = unauthorized(get(&t, "/api/backups", Some(&lasting)).await, "inactive user").await;
    assert!(msg.contains("inactive"), "{msg}");
}

#[tokio::test]
async fn tokens_act_with_their_users_current_permissions() {
    let t = TestApp::spawn().await;
    let ana = t.user("ana@example.com", false, &["items.view"]).await;
    let token = t.token(ana, "script", None).await;
    for r in [
        get(&t, "/api/backups", Some(&token)).await,
        post(&t, "/api/backups", Some(&token)).await,
        get(&t, "/api/backups/x.bravely-backup/download", Some(&token)).await,
    ] {
        assert_eq!(r.status(), 403);
        assert!(json(r).await["error"].as_str().is_some_and(|e| e.contains("permission")));
    }
    assert!(!t.app.config.data_dir.join("backups").exists(), "no backup was made");
    // Granting the permission later applies to the existing token.
    t.app
        .store
        .write(Actor::system("test"), move |tx| {
            let mut u = tx.must_get::<bravely::auth::User>(ana)?;
            u.permissions.push("backups.view".into());
            tx.update(ana, &u)?;
            Ok(())
        })
        .await
        .expect("granted");
    assert_eq!(get(&t, "/api/backups", Some(&token)).await.status(), 200);
    assert_eq!(post(&t, "/api/backups", Some(&token)).await.status(), 403);
}

#[tokio::test]
async fn backups_list_create_and_download_round_trip() {
    let t = TestApp::spawn().await;
    t.demo(4, 3).await;
    let ops = t.user("ops@example.com", false, &["backups.view", "backups.create", "backups.download"]).await;
    let token = t.token(ops, "backup script", None).await;

    let r = post(&t, "/api/backups?policy=nightly", Some(&token)).await;
    assert_eq!(r.status(), 400, "only configured policies");
    assert!(json(r).await.to_string().contains("database, full"), "the answer names the policies");
    let r = post(&t, "/api/backups?policy=database", Some(&token)).await;
    assert_eq!(r.status(), 201);
    let made = json(r).await;
    let id = made["id"].as_str().expect("id").to_string();
    assert_eq!(made["policy"], "database");
    assert_eq!(made["scope"], "database");
    assert_eq!(made["encrypted"], false);
    assert_eq!(made["created_at"], "2026-03-02T09:00:00Z", "the injected clock's time");
    let file = t.app.config.data_dir.join("backups").join(&id);
    assert_eq!(made["size"].as_u64(), Some(std::fs::metadata(&file).expect("the file is written").len()));

    t.clock.advance(chrono::Duration::seconds(5));
    let r = api(&t, reqwest::Method::POST, "/api/backups", Some(&token))
        .header("content-type", "application/json")
        .body(r#"{"policy": "full"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 201);
    let second = json(r).await;
    assert_eq!(second["scope"], "full", "the policy's scope");
    let second = second["id"].as_str().expect("id").to_string();

    let list = json(get(&t, "/api/backups", Some(&token)).await).await;
    let ids: Vec<&str> = list["backups"].as_array().expect("list").iter().filter_map(|b| b["id"].as_str()).collect();
    assert_eq!(ids, vec![second.as_str(), id.as_str()], "newest first");
    assert_eq!(list["backups"][1]["policy"], "database");
    assert_eq!(list["backups"][1]["download_url"], format!("/api/backups/{id}/download"));

    let r = get(&t, &format!("/api/backups/{id}/download"), Some(&token)).await;
    assert_eq!(r.status(), 200);
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(header("content-type"), "application/octet-stream");
    assert_eq!(header("content-disposition"), format!("attachment; filename=\"{id}\""));
    assert_eq!(header("content-length"), made["size"].to_string());
    let bytes = r.bytes().await.expect("body");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join(&id);
    std::fs::write(&copy, &bytes).expect("write");
    let manifest = archive::verify(&copy, None).expect("the download verifies");
    assert_eq!(manifest.policy, "database");
    assert_eq!(manifest.tables.get("people.employees"), Some(&4));

    // Bad input is a JSON 400 or 404, never a file outside the backups folder.
    for (path, status) in [
        ("/api/backups?policy=../../etc", 400),
        ("/api/backups?colour=red", 400),
        ("/api/backups?policy=a&policy=b", 400),
    ] {
        let r = post(&t, path, Some(&token)).await;
        assert_eq!(r.status(), status, "{path}");
        assert!(json(r).await["error"].is_string());
    }
    let r = api(&t, reqwest::Method::POST, "/api/backups", Some(&token)).body("not json").send().await.expect("req");
    assert_eq!(r.status(), 400);
    for path in ["/api/backups/nope.bravely-backup/download", "/api/backups/..%2Fbravely.redb/download", "/api/nothing"]
    {
        let r = get(&t, path, Some(&token)).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(json(r).await["error"].is_string());
    }
    assert_eq!(std::fs::read_dir(t.app.config.data_dir.join("backups")).expect("dir").count(), 2);
}

#[tokio::test]
async fn a_second_backup_while_one_runs_gets_409() {
    let t = TestApp::spawn().await;
    let ops = t.user("ops@example.com", false, &["backups.create"]).await;
    let token = t.token(ops, "script", None).await;
    let running = t.app.backup_lock.lock().await;
    let r = post(&t, "/api/backups", Some(&token)).await;
    assert_eq!(r.status(), 409);
    assert!(json(r).await["error"].as_str().is_some_and(|e| e.contains("is running")));
    drop(running);
    assert_eq!(post(&t, "/api/backups", Some(&token)).await.status(), 201);
}

#[tokio::test]
async fn failed_token_attempts_are_limited_per_address() {
    let t = TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.login.max_failures_per_ip = 3;
        c.login.window_minutes = 10;
    })
    .await;
    let ana = t.user("ana@example.com", false, &["backups.view"]).await;
    let token = t.token(ana, "script", None).await;
    // A missing token is not an attempt.
    for _ in 0..5 {
        assert_eq!(get(&t, "/api/backups", None).await.status(), 401);
    }
    for i in 0..3 {
        let wrong = format!("bvt_{}{i}", "B".repeat(42));
        assert_eq!(get(&t, "/api/backups", Some(&wrong)).await.status(), 401);
    }
    let r = get(&t, "/api/backups", Some(&token)).await;
    assert_eq!(r.status(), 429, "even a good token waits while the address is blocked");
    assert!(r.headers().contains_key("retry-after"));
    t.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(get(&t, "/api/backups", Some(&token)).await.status(), 200);
}

/// The last use is written in the background: wait for it.
async fn wait_for_last_use(t: &TestApp, want: chrono::DateTime<chrono::Utc>) {
    for _ in 0..200 {
        if tokens_of(t).first().and_then(|(_, t)| t.last_used_at) == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("last use not recorded as {want}");
}

#[tokio::test]
async fn last_use_is_recorded_at_most_once_a_minute_without_audit_entries() {
    let t = TestApp::spawn().await;
    let ana = t.user("ana@example.com", false, &["backups.view"]).await;
    let token = t.token(ana, "script", None).await;
    let last_used = || tokens_of(&t).first().and_then(|(_, t)| t.last_used_at);
    assert_eq!(last_used(), None);
    let first = t.clock.now();
    assert_eq!(get(&t, "/api/backups", Some(&token)).await.status(), 200);
    wait_for_last_use(&t, first).await;
    t.clock.advance(chrono::Duration::seconds(30));
    for _ in 0..5 {
        assert_eq!(get(&t, "/api/backups", Some(&token)).await.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(last_used(), Some(first), "not written again within the minute");
    t.clock.advance(chrono::Duration::seconds(31));
    let later = t.clock.now();
    assert_eq!(get(&t, "/api/backups", Some(&token)).await.status(), 200);
    wait_for_last_use(&t, later).await;
    let history = t.app.store.history(ApiToken::TABLE, 1).expect("history");
    assert_eq!(history.len(), 1, "only the creation is in the audit log: {history:?}");
}

#[tokio::test]
async fn the_api_routes_declare_the_backups_permissions() {
    let t = TestApp::spawn().await;
    let table = t.app.route_table();
    for (method, path, perm) in [
        ("GET", "/api/backups", "backups.view"),
        ("POST", "/api/backups", "backups.create"),
        ("GET", "/api/backups/:name/download", "backups.download"),
    ] {
        let r = table.iter().find(|r| r.method.as_str() == method && r.path == path).expect("registered");
        assert_eq!(r.access, bravely::web::Access::perm(perm), "{method} {path}");
    }
}
