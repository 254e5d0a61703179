//! A damaged database file: the real binary refuses to start on it with the way out, damage
//! found later turns `/healthz` to 503, and `bravely check` reports what is wrong without
//! changing the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bravely::clock::Clock;
use bravely::store::{Actor, Store};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bravely")
}

/// A data directory holding a database with demo data and a superuser.
fn data_dir_with_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::harness::add_superuser_with_cli(dir.path(), "root@example.com");
    let out = Command::new(bin())
        .args(["demo", "--employees", "30", "--items", "30", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("demo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn db(dir: &Path) -> PathBuf {
    dir.join("bravely.redb")
}

/// A 4 KiB page of the file overwritten with bytes no page starts with.
fn garble_page(file: &Path, page: u64) {
    let mut bytes = std::fs::read(file).expect("read");
    let at = (page * 4096) as usize;
    assert!(at + 4096 <= bytes.len(), "page {page} is in the file");
    for (i, b) in bytes[at..at + 4096].iter_mut().enumerate() {
        *b = 0x22 ^ (i as u8).wrapping_mul(37);
    }
    std::fs::write(file, bytes).expect("write");
}

/// Pages of the file that hold table data (a leaf or branch of some tree): found by asking
/// `bravely check` which garbled copies it finds damaged. Returns the first and the last.
fn used_pages(dir: &Path) -> (u64, u64) {
    let file = db(dir);
    let pages = std::fs::metadata(&file).expect("size").len() / 4096;
    let probe = tempfile::tempdir().expect("tempdir");
    let copy = probe.path().join("bravely.redb");
    let damaged = |page: u64| {
        std::fs::copy(&file, &copy).expect("copy");
        garble_page(&copy, page);
        !Command::new(bin()).arg("check").arg(&copy).output().expect("check").status.success()
    };
    let middle = (pages / 2..pages).find(|p| damaged(*p)).expect("a used page past the middle");
    let last = (1..pages).rev().find(|p| damaged(*p)).expect("a used page at the end");
    (middle, last)
}

/// Runs `bravely serve` on `dir` until it exits (it must, within a minute); its status and
/// standard error.
fn serve_until_exit(dir: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    let Some(status) = status else { panic!("the server kept running on a damaged database:\n{err}") };
    (status.code(), err)
}

fn assert_names_the_way_out(err: &str, dir: &Path) {
    assert!(err.contains("is damaged"), "says it is damaged: {err}");
    assert!(err.contains(&db(dir).display().to_string()), "names the file: {err}");
    assert!(err.contains("bravely backup restore FILE"), "gives the command: {err}");
    assert!(err.contains(&dir.join("backups").display().to_string()), "says where the backups are: {err}");
    assert!(err.contains("bravely check"), "{err}");
}

#[test]
fn the_server_refuses_to_start_on_a_damaged_file_and_says_how_to_recover() {
    let good = data_dir_with_data();
    let (middle, last) = used_pages(good.path());
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("a garbled page in the middle", Box::new(move |f| garble_page(f, middle))),
        ("a garbled page at the end", Box::new(move |f| garble_page(f, last))),
        (
            "a truncated file",
            Box::new(|f| {
                let len = std::fs::metadata(f).expect("size").len();
                std::fs::OpenOptions::new().write(true).open(f).expect("open").set_len(len / 2).expect("truncate");
            }),
        ),
        (
            "a garbled header",
            Box::new(|f| {
                let mut b = std::fs::read(f).expect("read");
                b[64..192].fill(0x5a);
                std::fs::write(f, b).expect("write");
            }),
        ),
    ];
    for (what, damage) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        for e in std::fs::read_dir(good.path()).expect("ls").flatten() {
            if e.file_type().expect("type").is_file() {
                std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy");
            }
        }
        damage(&db(dir.path()));
        let (code, err) = serve_until_exit(dir.path());
        assert_eq!(code, Some(1), "{what}: exits with an error:\n{err}");
        assert_names_the_way_out(&err, dir.path());
    }
}

#[test]
fn an_empty_database_file_is_never_taken_for_a_new_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(db(dir.path()), b"").expect("empty file");
    let (code, err) = serve_until_exit(dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("empty (0 bytes)"), "{err}");
    assert_names_the_way_out(&err, dir.path());
    assert!(!err.contains("/setup/"), "no setup link for a lost database: {err}");
    assert_eq!(std::fs::metadata(db(dir.path())).expect("still there").len(), 0, "the file is left as it was");
    // In-process too.
    let opened = Store::open(&db(dir.path()), Clock::system(), vec![]);
    assert!(matches!(opened, Err(bravely::store::StoreError::Damaged(_))));
}

// The binary's redb is a debug build in tests, and a debug build walks every page of the file
// when it opens it: damage in the file is always found at the start there (the test above).
// A release build trusts a cleanly closed file, so damage can show only later, when a write
// meets it; what the store then does is the same as for any storage failure on the writer
// thread, which the tests below cause for real (a disk that refuses a write) and in-process.

#[tokio::test]
async fn a_storage_failure_after_the_start_fails_health_checks_instead_of_loading_forever() {
    let dir = data_dir_with_data();
    let server = crate::harness::BinaryServer::start_with(dir.path(), &[("RUST_BACKTRACE", "0")]);
    let c = crate::harness::Client::new(&server.base);
    assert_eq!(c.login("root@example.com", crate::harness::PASSWORD).await.status(), 303);
    let (status, _) = c.text("/healthz").await;
    assert_eq!(status, 200);

    // From now on the file may not grow: the commit that needs more room fails with EFBIG, as
    // on a full disk.
    let size = std::fs::metadata(db(dir.path())).expect("size").len();
    let limit = rustix::process::Rlimit { current: Some(size), maximum: Some(size) };
    rustix::process::prlimit(
        Some(rustix::process::Pid::from_child(&server.child)),
        rustix::process::Resource::Fsize,
        limit,
    )
    .expect("prlimit");
    let token = c.csrf().await;
    let long = "x".repeat(2000);
    let mut refused = None;
    for i in 0..1000 {
        let r = c
            .http
            .post(format!("{}/admin/employees/new", c.base))
            .header("X-CSRF-Token", &token)
            .form(&[
                ("name", long.as_str()),
                ("work_email", &format!("w{i}@example.com")),
                ("title", "Dev"),
                ("start_date", "2025-01-01"),
                ("active", "on"),
            ])
            .send()
            .await
            .expect("the server answers");
        if r.status() != 303 {
            refused = Some(i);
            break;
        }
    }
    assert!(refused.is_some(), "a write needed the file to grow");
    let (status, health) = c.text("/healthz").await;
    assert_eq!(status, 503, "{health}\n{}", server.log_text());
    assert!(health.starts_with("failed: a commit failed") && health.contains("File too large"), "{health}");
    assert!(health.contains("make room") && health.contains("LimitFSIZE"), "says what to do: {health}");
    let (status, ready) = c.text("/readyz").await;
    assert_eq!(status, 503);
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("json");
    assert!(ready["checks"]["read_models"].as_str().is_some_and(|s| s.starts_with("failed: ")), "{ready}");
    let (status, _) = c.text("/").await;
    assert_eq!(status, 503, "pages are not served from a failed store");
    assert!(server.log_text().contains("the store has failed"), "{}", server.log_text());
}

#[tokio::test]
async fn a_write_that_meets_corruption_stops_the_store() {
    let t = crate::harness::TestApp::spawn().await;
    let c = t.client();
    assert_eq!(c.text("/healthz").await.0, 200);
    let r = t
        .app
        .store
        .write(Actor::system("test"), |_tx| -> Result<(), bravely::error::AppError> {
            Err(bravely::store::StoreError::Db(redb::Error::Corrupted("a branch points past the end".into())).into())
        })
        .await;
    assert!(r.is_err());
    let (status, health) = c.text("/healthz").await;
    assert_eq!(status, 503);
    assert!(
        health.contains("a branch points past the end") && health.contains("bravely backup restore FILE"),
        "{health}"
    );
    let later = t.app.store.write(Actor::system("test"), |_tx| Ok(())).await;
    assert!(later.is_err(), "nothing is written after the failure");

    // A failed write of the application's own (a rule, a validation) leaves the store alone.
    let t = crate::harness::TestApp::spawn().await;
    let r = t
        .app
        .store
        .write(Actor::system("test"), |_tx| -> Result<(), bravely::error::AppError> {
            Err(bravely::error::AppError::Conflict("no".into()))
        })
        .await;
    assert!(r.is_err());
    let panicked = t
        .app
        .store
        .write(Actor::system("test"), |_tx| -> Result<(), bravely::error::AppError> { panic!("a bug in one write") });
    assert!(panicked.await.is_err());
    assert_eq!(t.client().text("/healthz").await.0, 200, "an application panic is rolled back alone");
    assert!(t.app.store.write(Actor::system("test"), |_tx| Ok(())).await.is_ok());
}

/// A read model that panics on committed changes.
struct Breaks;

impl bravely::store::Listener for Breaks {
    fn load(&self, _store: &bravely::store::ReadTx) -> Result<(), bravely::store::StoreError> {
        Ok(())
    }
    fn apply(&self, _changes: &[bravely::store::Change]) {
        panic!("a read model broke");
    }
}

#[test]
fn a_read_model_that_fails_on_the_apply_thread_stops_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&db(dir.path()), Clock::system(), vec![std::sync::Arc::new(Breaks)]).expect("opens");
    store.ready_blocking().expect("loads");
    // The write is durable and answered; the lists would be wrong from here on.
    let _ = store.write_blocking(Actor::system("test"), |tx| {
        tx.insert(&bravely::auth::Group { name: "Office".into(), permissions: vec![] })?;
        Ok(())
    });
    match store.load_state() {
        bravely::store::LoadState::Failed(why) => assert!(why.contains("a read model broke"), "{why}"),
        other => panic!("the store goes on: {other:?}"),
    }
    assert!(store.write_blocking(Actor::system("test"), |_tx| Ok(())).is_err());
    store.shutdown();
}

fn check(file: &Path) -> (bool, String, String) {
    let out = Command::new(bin()).arg("check").arg(file).env("RUST_BACKTRACE", "0").output().expect("check");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn bravely_check_passes_a_sound_file_and_reports_damage_without_changing_the_file() {
    let dir = data_dir_with_data();
    let file = db(dir.path());
    let (ok, out, err) = check(&file);
    assert!(ok, "{out}{err}");
    assert!(out.contains("is sound") && out.contains("rows in"), "{out}");
    // The default is the data directory's database.
    let default = Command::new(bin()).args(["check", "--data-dir"]).arg(dir.path()).output().expect("check");
    assert!(default.status.success(), "{}", String::from_utf8_lossy(&default.stderr));

    let (middle, _) = used_pages(dir.path());
    garble_page(&file, middle);
    let before = std::fs::read(&file).expect("read");
    let (ok, out, err) = check(&file);
    assert!(!ok, "a damaged file fails the check");
    assert!(out.contains("is DAMAGED"), "{out}");
    assert!(!err.contains("panicked"), "the engine's panic is a finding, not a crash: {err}");
    assert!(err.contains("bravely backup restore FILE"), "{err}");
    assert_eq!(std::fs::read(&file).expect("read"), before, "the check never writes the file");
}

#[test]
fn bravely_check_finds_rows_that_do_not_decode_and_indexes_that_disagree() {
    let dir = data_dir_with_data();
    let file = db(dir.path());
    {
        let db = redb::Database::open(&file).expect("opens");
        let w = db.begin_write().expect("write");
        {
            let mut rows: redb::Table<'_, u64, &[u8]> =
                w.open_table(redb::TableDefinition::new("people.employees")).expect("employees");
            rows.insert(9_999, b"\xff\xfenot a record".as_slice()).expect("insert");
            let mut idx: redb::Table<'_, &[u8], u64> =
                w.open_table(redb::TableDefinition::new("auth.users#email")).expect("index");
            idx.insert(b"ghost@example.com".as_slice(), 4242).expect("insert");
        }
        w.commit().expect("commit");
    }
    let (ok, out, _) = check(&file);
    assert!(!ok, "{out}");
    assert!(out.contains("people.employees: row 9999 does not decode"), "{out}");
    assert!(
        out.contains("auth.users: index email has an entry \"ghost@example.com\" -> 4242 that no row makes"),
        "{out}"
    );
}

#[test]
fn bravely_check_refuses_a_file_a_running_server_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::harness::BinaryServer::start(dir.path());
    server.wait_for_log(|lines| lines.iter().any(|l| l.contains("/setup/")));
    let (ok, _, err) = check(&db(dir.path()));
    drop(server);
    assert!(!ok);
    assert!(err.contains("running server") && err.contains("database-check"), "{err}");
}

#[tokio::test]
async fn the_weekly_integrity_job_checks_the_live_database_and_alerts_on_damage() {
    let (url, hooks) = crate::jobs::webhook_stand_in().await;
    let t = crate::harness::TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.alerts.slack_webhook_url = Some(bravely::config::Secret::new(url))
    })
    .await;
    t.demo(10, 10).await;
    assert_eq!(
        t.app.scheduler.job("database-check").map(|j| j.schedule.text().to_string()),
        Some("0 4 * * 0".to_string()),
        "weekly"
    );
    let run = |t: &crate::harness::TestApp| {
        let app = t.app.clone();
        async move {
            app.scheduler.run_now(&app, "database-check", "test").await.expect("starts").await.expect("task");
            app.scheduler.states(&app).remove("database-check").expect("state")
        }
    };
    let s = run(&t).await;
    assert_eq!(s.last_ok, Some(true), "{}", s.last_message);
    assert!(s.last_message.starts_with("sound:"), "{}", s.last_message);
    assert!(hooks.0.lock().expect("lock").is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(t.app.config.temp_dir()).expect("tmp").flatten().collect();
    assert!(leftovers.is_empty(), "the snapshot is removed: {leftovers:?}");

    // A row the application cannot read, written past the typed layer.
    t.app
        .store
        .write(Actor::system("test"), |tx| {
            let mut rows: redb::Table<'_, u64, &[u8]> = tx
                .raw()
                .open_table(redb::TableDefinition::new("inventory.items"))
                .map_err(bravely::store::StoreError::from)?;
            rows.insert(77_777, b"\x09garbage".as_slice()).map_err(bravely::store::StoreError::from)?;
            Ok(())
        })
        .await
        .expect("raw write");
    let s = run(&t).await;
    assert_eq!(s.last_ok, Some(false));
    assert!(s.last_message.contains("inventory.items: row 77777 does not decode"), "{}", s.last_message);
    assert!(s.last_message.contains("bravely backup restore FILE"), "{}", s.last_message);
    let hooks = hooks.0.lock().expect("lock").clone();
    assert!(
        hooks.iter().any(|h| h["text"].as_str().is_some_and(|t| t.contains("inventory.items"))),
        "the failure reached Slack: {hooks:?}"
    );
}
