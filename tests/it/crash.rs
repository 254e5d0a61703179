//! Acknowledged writes survive `kill -9`: many clients write concurrently, the server is
//! killed mid-stream, and after a restart every write that got a success answer is there.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bravely::people::Employee;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::harness::add_superuser_with_cli(dir.path(), "root@example.com");

    let mut server = crate::harness::BinaryServer::start(dir.path());
    let base = server.base.clone();
    bravely::tls::install();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login_page = http.get(format!("{base}/login")).send().await.expect("login page").text().await.expect("body");
    let token = crate::harness::csrf_of(&login_page);
    let r = http
        .post(format!("{base}/login"))
        .form(&[("email", "root@example.com"), ("password", crate::harness::PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let home = http.get(format!("{base}/")).send().await.expect("home").text().await.expect("body");
    let token = crate::harness::csrf_of(&home);

    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (http, base, token, acked) = (http.clone(), base.clone(), token.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10_000 {
                if started.elapsed() > Duration::from_secs(20) {
                    break;
                }
                let email = format!("w{w}-{i}@example.com");
                let res = http
                    .post(format!("{base}/admin/employees/new"))
                    .header("X-CSRF-Token", &token)
                    .form(&[
                        ("name", "Crash Test"),
                        ("work_email", email.as_str()),
                        ("title", "Dev"),
                        ("start_date", "2025-01-01"),
                        ("active", "on"),
                    ])
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 303 => acked.lock().expect("lock").push(email),
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    // Let writes pile up, then kill the server without warning.
    while acked.lock().expect("lock").len() < 400 && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    for t in tasks {
        t.await.expect("writer task");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 400, "enough writes were acknowledged before the kill: {}", acked.len());

    // Reopen the data directory: every acknowledged write is there.
    let config = bravely::config::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
    let app = bravely::App::open(config, bravely::clock::Clock::system()).expect("reopens after SIGKILL");
    let r = app.store.read().expect("read");
    let missing: Vec<&String> =
        acked.iter().filter(|e| r.find_unique::<Employee>("work_email", e).ok().flatten().is_none()).collect();
    assert!(missing.is_empty(), "{} acknowledged writes lost, e.g. {:?}", missing.len(), missing.first());
    app.store.shutdown();
}
