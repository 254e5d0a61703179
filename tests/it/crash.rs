//! Acknowledged writes survive `kill -9`: many clients write concurrently, the server is
//! killed mid-stream, and after a restart every write that got a success answer is there.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bravely::people::Employee;

fn start_server(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bravely"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines.next().expect("server printed its address").expect("utf8");
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on ".len()..].trim().to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut add = Command::new(env!("CARGO_BIN_EXE_bravely"))
        .args(["user", "add", "--email", "root@example.com", "--name", "Root", "--superuser", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    add.stdin.take().expect("stdin").write_all(crate::harness::PASSWORD.as_bytes()).expect("pw");
    assert!(add.wait().expect("wait").success());

    let (mut server, base) = start_server(dir.path());
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
    server.kill().expect("SIGKILL");
    server.wait().expect("reaped");
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
