use crate::harness::{PASSWORD, TestApp, location};

#[tokio::test]
async fn login_sets_an_httponly_session_and_lands_on_next() {
    let t = TestApp::spawn().await;
    t.user("ana@example.com", true, &[]).await;
    let c = t.client();
    let token = c.csrf().await;
    let r = c
        .post_raw(
            "/login",
            &[("email", "Ana@Example.com"), ("password", PASSWORD), ("next", "/admin/items/"), ("csrf_token", &token)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/admin/items/");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("bravely_session="))
        .expect("session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let (status, html) = c.text("/admin/items/").await;
    assert_eq!(status, 200);
    assert!(html.contains("User ana@example.com"), "signed-in name shown");
}

#[tokio::test]
async fn wrong_password_is_refused_and_repeated_failures_are_rate_limited() {
    let t = TestApp::spawn().await;
    t.user("ben@example.com", false, &[]).await;
    let c = t.client();
    for _ in 0..5 {
        let r = c.login("ben@example.com", "wrong password!").await;
        assert_eq!(r.status(), 401);
        assert!(r.text().await.unwrap_or_default().contains("not correct"));
    }
    let r = c.login("ben@example.com", PASSWORD).await;
    assert_eq!(r.status(), 429, "even the right password waits after 5 failures");
    assert!(r.text().await.unwrap_or_default().contains("Too many failed attempts"));
    t.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(c.login("ben@example.com", PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token() {
    let t = TestApp::spawn().await;
    t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    let form =
        [("name", "Eve Example"), ("work_email", "eve@example.com"), ("title", "Dev"), ("start_date", "2026-01-01")];
    assert_eq!(c.post_raw("/admin/employees/new", &form).await.status(), 403, "no token");
    let mut bad = form.to_vec();
    bad.push(("csrf_token", "forged"));
    assert_eq!(c.post_raw("/admin/employees/new", &bad).await.status(), 403, "wrong token");
    let token = c.csrf().await;
    let cross = c
        .http
        .post(format!("{}/admin/employees/new", c.base))
        .header("Origin", "https://evil.example")
        .header("X-CSRF-Token", &token)
        .form(&form)
        .send()
        .await
        .expect("request");
    assert_eq!(cross.status(), 403, "cross-origin");
    let header_ok = c
        .http
        .post(format!("{}/admin/employees/new", c.base))
        .header("X-CSRF-Token", &token)
        .form(&form)
        .send()
        .await
        .expect("request");
    assert_eq!(header_ok.status(), 303, "htmx-style header token accepted");
    assert_eq!(t.app.registry.get("employees").map(|r| r.model().len()), Some(1), "only the valid request stored");
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let t = TestApp::spawn().await;
    t.user("cy@example.com", true, &[]).await;
    let c = t.login("cy@example.com").await;
    assert_eq!(c.get("/").await.status(), 200);
    assert_eq!(c.post("/logout", &[]).await.status(), 303);
    let r = c.get("/admin/").await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/login?next=/admin/"));
}

#[tokio::test]
async fn sessions_expire_after_idle_time() {
    let t = TestApp::spawn().await;
    t.user("dee@example.com", true, &[]).await;
    let c = t.login("dee@example.com").await;
    assert_eq!(c.get("/").await.status(), 200);
    t.clock.advance(chrono::Duration::hours(13));
    assert_eq!(c.get("/").await.status(), 303, "idle for longer than 12 h");
}

#[tokio::test]
async fn the_setup_link_creates_the_first_superuser_once() {
    let t = TestApp::spawn().await;
    let link = t.app.setup_link().await.expect("empty database offers a setup link");
    let c = t.client();
    let (status, html) = c.text(&link).await;
    assert_eq!(status, 200);
    assert!(html.contains("Create the first administrator"));
    let short = c.post(&link, &[("email", "boss@example.com"), ("name", "Boss"), ("password", "short")]).await;
    assert_eq!(short.status(), 422);
    assert!(short.text().await.unwrap_or_default().contains("at least 10 characters"));
    let ok = c.post(&link, &[("email", "boss@example.com"), ("name", "Boss"), ("password", PASSWORD)]).await;
    assert_eq!(ok.status(), 303);
    assert_eq!(c.get("/admin/users/").await.status(), 200, "signed in as a superuser");
    let again = t.client();
    assert_eq!(again.get(&link).await.status(), 404, "the token is single-use");
    assert!(t.app.setup_link().await.is_none());
}

#[tokio::test]
async fn pages_carry_security_headers_and_vary() {
    let t = TestApp::spawn().await;
    let r = t.client().get("/login").await;
    let h = r.headers();
    let csp = h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(h.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));
    assert_eq!(h.get("vary").and_then(|v| v.to_str().ok()), Some("HX-Request"));
    assert!(h.get("x-request-id").is_some());
    let body = r.text().await.unwrap_or_default();
    assert!(!body.contains("<script>") && !body.contains(" style="), "no inline scripts or styles");
}

#[tokio::test]
async fn health_and_readiness() {
    let t = TestApp::spawn().await;
    let c = t.client();
    let (s, body) = c.text("/healthz").await;
    assert_eq!((s, body.as_str()), (200, "ok"));
    let (s, body) = c.text("/readyz").await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["checks"]["database"], "ok");
}

#[tokio::test]
async fn assets_have_hashed_urls_and_long_cache() {
    let t = TestApp::spawn().await;
    let c = t.client();
    let (_, html) = c.text("/login").await;
    let start = html.find("/assets/app.").expect("css link");
    let url: String = html[start..].chars().take_while(|c| *c != '"').collect();
    let r = c.get(&url).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("").contains("immutable"));
    assert!(r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("text/css"));
}
