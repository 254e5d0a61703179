//! `/metrics`, Sentry reports of panics and 500s, and request ids on log lines.

use std::collections::HashMap;
use std::sync::Arc;

use bravely::error::AppError;
use bravely::web::Access;
use poem::handler;

use crate::harness::TestApp;

const TOKEN: &str = "scrape-token-0123456789abcdef";

/// Parses the Prometheus text format: `name{labels} value` per line, `#` lines are comments.
/// Panics on a line that is neither, so a malformed scrape fails the test.
fn parse_scrape(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().expect("name").to_string();
            let kind = parts.next().expect("kind");
            assert!(matches!(kind, "counter" | "gauge" | "histogram"), "{line}");
            typed.push(name);
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            typed.iter().any(|t| name == t || name.strip_prefix(t.as_str()).is_some_and(|s| s.starts_with('_'))),
            "{name} has no # TYPE line before it"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "{line}");
        }
        assert!(samples.insert(series.to_string(), value).is_none(), "duplicate series {series}");
    }
    samples
}

#[tokio::test]
async fn metrics_need_the_token_parse_and_count_requests_by_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestApp::spawn_custom(dir, |c| c.metrics_token = Some(bravely::config::Secret::new(TOKEN)), |_| {}).await;
    let route = t.app.route_table().into_iter().find(|r| r.path == "/metrics").expect("/metrics is a route");
    assert!(matches!(route.access, Access::Bearer { token: Some(_), .. }));
    t.user("root@example.com", true, &[]).await; // one durable write
    let c = t.client();
    for _ in 0..3 {
        assert_eq!(c.get("/healthz").await.status(), 200);
    }
    assert_eq!(c.get("/admin/employees/1/").await.status(), 303, "anonymous is sent to sign in");
    assert_eq!(c.get("/no/such/page").await.status(), 404);
    assert_eq!(c.post_raw("/login", &[("email", "x@example.com")]).await.status(), 403, "no CSRF token");

    let url = format!("{}/metrics", c.base);
    let r = c.http.get(&url).send().await.expect("scrape");
    assert_eq!(r.status(), 401, "no token");
    assert_eq!(r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    assert_eq!(c.http.get(&url).bearer_auth("wrong-token-0123456789").send().await.expect("scrape").status(), 401);
    let root = t.login("root@example.com").await;
    assert_eq!(root.get("/metrics").await.status(), 401, "a superuser's session is not the token");

    let r = c.http.get(&url).bearer_auth(TOKEN).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let ctype = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let m = parse_scrape(&r.text().await.expect("body"));
    let get = |k: &str| m.get(k).copied().unwrap_or_else(|| panic!("no series {k}"));
    assert_eq!(get(r#"bravely_http_requests_total{method="GET",route="/healthz",status="200"}"#), 3.0);
    assert_eq!(get(r#"bravely_http_request_duration_seconds_count{method="GET",route="/healthz"}"#), 3.0);
    assert_eq!(get(r#"bravely_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="+Inf"}"#), 3.0);
    // By pattern, never by raw path; unmatched paths share one label.
    assert_eq!(get(r#"bravely_http_requests_total{method="GET",route="/admin/:slug/:id/",status="303"}"#), 1.0);
    assert_eq!(get(r#"bravely_http_requests_total{method="GET",route="unmatched",status="404"}"#), 1.0);
    assert_eq!(get(r#"bravely_http_requests_total{method="GET",route="/metrics",status="401"}"#), 3.0);
    assert_eq!(get(r#"bravely_http_requests_total{method="POST",route="csrf_refused",status="403"}"#), 1.0);
    assert!(!m.keys().any(|k| k.contains("/no/such/page") || k.contains("/admin/employees/1/")));
    // The user and the sign-in were durable writes: at least two batches.
    assert!(get("bravely_store_commit_seconds_count") >= 2.0);
    assert!(get("bravely_store_commit_writes_sum") >= 2.0);
    assert_eq!(get("bravely_store_commit_failures_total"), 0.0);
}

#[handler]
fn panics() -> &'static str {
    panic!("test handler panicked on purpose");
}

#[handler]
fn fails() -> Result<&'static str, AppError> {
    Err(AppError::internal("the test handler failed on purpose"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_and_a_500_each_send_one_sentry_event_with_the_request_id_and_the_server_keeps_serving() {
    let transport = sentry::test::TestTransport::new();
    let opts = bravely::reporting::options(
        Some("https://public@sentry.invalid/1".parse().expect("dsn")),
        Some("test".into()),
        None,
    )
    .transport(transport.clone());
    let client = Arc::new(sentry::Client::from(sentry::apply_defaults(opts)));
    let hub = Arc::new(sentry::Hub::new(Some(client), Arc::new(sentry::Scope::default())));

    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestApp::spawn_custom(
        dir,
        |_| {},
        |r| {
            r.get("/test/panic", Access::Public, panics);
            r.get("/test/fail", Access::Public, fails);
        },
    )
    .await;
    t.app.reporter.use_hub(hub);
    let c = t.client();

    let r = c.get("/test/panic").await;
    assert_eq!(r.status(), 500);
    let rid = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let page = r.text().await.expect("body");
    assert!(page.contains("Something went wrong") && page.contains(&rid), "an error page with the request id");
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1, "one event per panic: {events:#?}");
    let e = &events[0];
    assert_eq!(e.tags.get("request_id"), Some(&rid));
    let text = format!("{e:?}");
    assert!(text.contains("test handler panicked on purpose"), "{text}");
    assert_eq!(e.environment.as_deref(), Some("test"));
    assert_eq!(e.release.as_deref(), Some(concat!("bravely@", env!("CARGO_PKG_VERSION"))));
    assert!(e.request.is_none() && e.user.is_none(), "no request data or user is sent");

    // Still serving, on every worker.
    for _ in 0..8 {
        assert_eq!(c.get("/healthz").await.status(), 200);
    }
    assert_eq!(c.get("/login").await.status(), 200);
    assert!(transport.fetch_and_clear_events().is_empty(), "healthy requests send nothing");

    let r = c.get("/test/fail").await;
    assert_eq!(r.status(), 500);
    let rid = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1, "one event per 500: {events:#?}");
    assert_eq!(events[0].tags.get("request_id"), Some(&rid));
    assert_eq!(events[0].tags.get("route").map(String::as_str), Some("/test/fail"));
    assert!(format!("{:?}", events[0].exception).contains("the test handler failed on purpose"));
    assert!(events[0].request.is_none());

    // Client errors are not reported.
    assert_eq!(c.get("/no/such/page").await.status(), 404);
    assert!(transport.fetch_and_clear_events().is_empty());
}

#[test]
fn every_log_line_of_a_request_carries_its_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::harness::BinaryServer::start_with(
        dir.path(),
        &[("BRAVELY_LOG_FORMAT", "json"), ("BRAVELY_LOG", "debug,hyper=info,poem=info")],
    );
    let base = server.base.clone();
    // A POST without a CSRF token logs twice inside the request: the refusal and the summary.
    let headers = {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(base.trim_start_matches("http://")).expect("connect");
        conn.write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\nx=1",
        )
        .expect("send");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("read");
        answer
    };
    assert!(headers.starts_with("HTTP/1.1 403"), "{headers}");
    let rid = headers
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no x-request-id in {headers}"));
    let lines =
        server.wait_for_log(|lines| lines.iter().any(|l| l.contains(&rid) && l.contains("\"message\":\"request\"")));
    let mut seen = Vec::new();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
        let msg = v["fields"]["message"].as_str().unwrap_or_default().to_string();
        if msg == "CSRF check failed" || msg == "request" {
            assert_eq!(v["span"]["request_id"].as_str(), Some(rid.as_str()), "{line}");
            seen.push(msg);
        }
    }
    drop(server);
    assert_eq!(seen, ["CSRF check failed", "request"]);
}
