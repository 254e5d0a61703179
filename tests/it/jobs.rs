//! The scheduler with the injected clock: catch-up after downtime, no overlap, /readyz
//! staleness, the /jobs page, alerts; and backup policies: retention, encryption, full scope.

use std::sync::{Arc, Mutex};

use bravely::backups::{archive, policy, service};
use bravely::config::{Config, PolicyConfig, Secret};
use bravely::jobs::{JobState, StartError};
use chrono::Duration;
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, handler, post};

use crate::harness::{TestApp, start_time};

fn backups_of(t: &TestApp, policy: &str) -> Vec<String> {
    let mut names: Vec<String> = service::listing(&t.app)
        .into_iter()
        .filter(|l| l.manifest.as_ref().is_some_and(|m| m.policy == policy))
        .map(|l| l.name)
        .collect();
    names.sort();
    names
}

async fn tick(t: &TestApp) -> usize {
    let handles = t.app.scheduler.tick(&t.app).await;
    let n = handles.len();
    for h in handles {
        h.await.expect("job task");
    }
    n
}

fn state(t: &TestApp, key: &str) -> JobState {
    t.app.scheduler.states(&t.app).remove(key).expect("state")
}

#[tokio::test]
async fn a_run_missed_while_the_server_was_down_happens_once_on_start() {
    // 09:00 start; the database policy runs at 12:00, 16:00, ...
    let t = TestApp::spawn().await;
    t.demo(5, 5).await;
    assert_eq!(tick(&t).await, 0, "nothing is due at first sight");
    t.clock.set(start_time() + Duration::hours(3));
    assert_eq!(tick(&t).await, 1);
    assert_eq!(backups_of(&t, "database").len(), 1);
    let s = state(&t, "backup-database");
    assert_eq!(s.last_trigger, "schedule");
    assert_eq!(s.last_ok, Some(true));
    assert_eq!(tick(&t).await, 0, "the 12:00 slot is done");

    // The server stops for 13 hours: the 16:00, 20:00 and 00:00 slots pass unseen.
    let clock = t.clock.clone();
    let dir = t.stop().await;
    clock.set(start_time() + Duration::hours(16));
    let t = TestApp::spawn_in(dir).await;
    t.clock.set(start_time() + Duration::hours(16));
    assert_eq!(tick(&t).await, 1, "one catch-up run, not three");
    assert_eq!(backups_of(&t, "database").len(), 2);
    let s = state(&t, "backup-database");
    assert_eq!(s.last_trigger, "catch-up");
    assert_eq!(s.runs, 2);
    assert_eq!(tick(&t).await, 0, "caught up");
    t.clock.advance(Duration::hours(3));
    assert_eq!(tick(&t).await, 1, "the 04:00 slot runs normally");
}

#[tokio::test]
async fn a_job_never_overlaps_itself() {
    let t = TestApp::spawn().await;
    tick(&t).await;
    // A backup waits for the backup lock, so holding it keeps the job running.
    let held = t.app.backup_lock.lock().await;
    let first = t.app.scheduler.run_now(&t.app, "backup-database", "ana@example.com").await.expect("starts");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(t.app.scheduler.is_running("backup-database"));
    let second = t.app.scheduler.run_now(&t.app, "backup-database", "ben@example.com").await;
    assert!(matches!(second, Err(StartError::Running(_))), "refused while running");
    // A scheduled slot passing meanwhile does not start a second run either.
    t.clock.set(start_time() + Duration::hours(3));
    assert_eq!(t.app.scheduler.tick(&t.app).await.len(), 0);
    drop(held);
    first.await.expect("job task");
    assert!(!t.app.scheduler.is_running("backup-database"));
    assert_eq!(backups_of(&t, "database").len(), 1);
    assert_eq!(state(&t, "backup-database").last_trigger, "run now by ana@example.com");
    assert!(matches!(t.app.scheduler.run_now(&t.app, "nope", "x").await, Err(StartError::Unknown(_))));
}

#[tokio::test]
async fn readyz_fails_when_a_backup_policy_has_not_succeeded_within_twice_its_interval() {
    let (url, hooks) = webhook_stand_in().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestApp::spawn_with(dir, |c| c.alerts.slack_webhook_url = Some(Secret::new(url))).await;
    tick(&t).await;
    let ready = |t: &TestApp| {
        let c = t.client();
        async move {
            let r = c.get("/readyz").await;
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.expect("json"))
        }
    };
    let (status, body) = ready(&t).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["job:backup-database"], "ok");
    // Eight hours without a success is still within twice four hours; 8 h 1 min is not.
    t.clock.set(start_time() + Duration::hours(8));
    assert_eq!(ready(&t).await.0, 200);
    t.clock.set(start_time() + Duration::hours(8) + Duration::minutes(1));
    let (status, body) = ready(&t).await;
    assert_eq!(status, 503, "{body}");
    let why = body["checks"]["job:backup-database"].as_str().expect("reason");
    assert!(why.starts_with("stale: no success since 2026-03-02 09:00"), "{why}");
    assert_eq!(body["checks"]["job:backup-full"], "ok", "the weekly policy is not late");
    // The scheduler loop alerts once per stale policy, not at every tick.
    assert_eq!(t.app.scheduler.alert_stale(&t.app).await, vec!["backup-database".to_string()]);
    assert!(t.app.scheduler.alert_stale(&t.app).await.is_empty(), "no second alert");
    {
        let sent = hooks.0.lock().expect("lock");
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0]["text"].as_str().is_some_and(|t| t.contains("Overdue") && t.contains("no success since")));
    }
    // The catch-up run succeeds: ready again, and a later lapse alerts again.
    assert_eq!(tick(&t).await, 1);
    assert_eq!(ready(&t).await.0, 200);
    assert!(t.app.scheduler.alert_stale(&t.app).await.is_empty());
    t.clock.set(start_time() + Duration::hours(20));
    assert_eq!(t.app.scheduler.alert_stale(&t.app).await, vec!["backup-database".to_string()]);
}

#[derive(Default)]
pub(crate) struct Hooks(pub(crate) Mutex<Vec<serde_json::Value>>);

#[handler]
fn hook(rec: Data<&Arc<Hooks>>, Json(body): Json<serde_json::Value>) -> &'static str {
    rec.0.0.lock().expect("lock").push(body);
    "ok"
}

pub(crate) async fn webhook_stand_in() -> (String, Arc<Hooks>) {
    let rec = Arc::new(Hooks::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let acceptor = poem::listener::TcpAcceptor::from_std(listener).expect("acceptor");
    let app = Route::new().at("/hook", post(hook)).data(rec.clone());
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    (format!("http://{addr}/hook"), rec)
}

#[tokio::test]
async fn a_damaged_backup_fails_the_verify_job_and_alerts_slack() {
    let (url, hooks) = webhook_stand_in().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestApp::spawn_with(dir, |c| c.alerts.slack_webhook_url = Some(Secret::new(url))).await;
    t.demo(5, 5).await;
    tick(&t).await;
    t.app.scheduler.run_now(&t.app, "backup-database", "test").await.expect("starts").await.expect("task");
    t.app.scheduler.run_now(&t.app, "backup-verify", "test").await.expect("starts").await.expect("task");
    assert_eq!(state(&t, "backup-verify").last_ok, Some(true));
    assert!(hooks.0.lock().expect("lock").is_empty(), "no alert for a sound backup");

    // Flip a byte in the middle of the newest backup.
    let name = backups_of(&t, "database").pop().expect("a backup");
    let path = t.app.config.data_dir.join("backups").join(&name);
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).expect("write");
    t.app.scheduler.run_now(&t.app, "backup-verify", "test").await.expect("starts").await.expect("task");
    let s = state(&t, "backup-verify");
    assert_eq!(s.last_ok, Some(false));
    assert!(s.last_message.contains(&name), "{}", s.last_message);
    let hooks = hooks.0.lock().expect("lock").clone();
    assert!(!hooks.is_empty(), "the failure reached Slack");
    assert!(hooks.iter().any(|h| h["text"].as_str().is_some_and(|t| t.contains(&name))), "{hooks:?}");
    // The page marks it.
    let admin = t.user("root@example.com", true, &[]).await;
    let _ = admin;
    let c = t.login("root@example.com").await;
    let (status, html) = c.text("/backups").await;
    assert_eq!(status, 200);
    assert!(html.contains("FAILED"), "the list shows the failed verification");
    let (_, jobs) = c.text("/jobs").await;
    assert!(jobs.contains("failed") && jobs.contains("Verify the newest backup"), "the jobs page shows it");
}

fn policy(name: &str, schedule: &str, keep: &str) -> PolicyConfig {
    PolicyConfig {
        name: name.into(),
        scope: "database".into(),
        schedule: schedule.into(),
        destination: None,
        keep: Some(keep.into()),
        passphrase: None,
        passphrase_file: None,
    }
}

#[tokio::test]
async fn retention_removes_only_its_own_old_backups_and_never_one_being_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestApp::spawn_with(dir, |c: &mut Config| {
        c.backups.policies = vec![policy("hourly", "0 * * * *", "last 2"), policy("daily", "0 3 * * *", "forever")];
    })
    .await;
    t.demo(3, 3).await;
    tick(&t).await;
    service::create_now(&t.app, None).await.expect("manual backup");
    let mut made = Vec::new();
    for h in 1..=3 {
        t.clock.set(start_time() + Duration::hours(h));
        assert_eq!(tick(&t).await, 1);
        made.push(backups_of(&t, "hourly").last().cloned().expect("made"));
    }
    assert_eq!(backups_of(&t, "hourly"), made[1..].to_vec(), "keep the last 2");
    assert_eq!(backups_of(&t, "manual").len(), 1, "manual backups are never removed by retention");

    // The oldest kept one is being downloaded: the next run leaves it.
    let reading = made[1].clone();
    let guard = t.app.backups_in_use.hold(&reading);
    t.clock.set(start_time() + Duration::hours(4));
    assert_eq!(tick(&t).await, 1);
    let kept = backups_of(&t, "hourly");
    assert_eq!(kept.len(), 3, "one more than the rule, because one is being read: {kept:?}");
    assert!(kept.contains(&reading));
    drop(guard);
    t.clock.set(start_time() + Duration::hours(5));
    assert_eq!(tick(&t).await, 1);
    assert_eq!(backups_of(&t, "hourly").len(), 2);
    assert!(!backups_of(&t, "hourly").contains(&reading), "removed once the download ended");
}

#[tokio::test]
async fn encrypted_backups_need_their_passphrase_and_wrong_keys_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pass = "correct horse battery staple";
    let t = TestApp::spawn_with(dir, |c: &mut Config| {
        let mut p = policy("secret", "@daily", "forever");
        p.passphrase = Some(Secret::new(pass));
        c.backups.policies = vec![p];
    })
    .await;
    t.demo(6, 4).await;
    tick(&t).await;
    t.app.scheduler.run_now(&t.app, "backup-secret", "test").await.expect("starts").await.expect("task");
    let name = backups_of(&t, "secret").pop().expect("made");
    let file = t.app.config.data_dir.join("backups").join(&name);
    let m = archive::read_manifest(&file).expect("the manifest is readable without the key");
    assert!(m.encrypted());
    // The database's bytes are not in the file in clear.
    let raw = std::fs::read(&file).expect("read");
    let mut plain = Vec::new();
    zstd::stream::copy_decode(raw.as_slice(), &mut plain).expect("outer zstd");
    // redb files start with this magic number; the unencrypted backup has it in clear.
    let magic = b"redb\x1a\x0a\xa9\x0d\x0a";
    assert!(!plain.windows(magic.len()).any(|w| w == magic), "no database in clear");
    let clear = t.app.config.data_dir.join("backups/clear.bravely-backup");
    archive::create(&t.app.store, &clear, "manual").expect("unencrypted");
    let mut clear_plain = Vec::new();
    zstd::stream::copy_decode(std::fs::read(&clear).expect("read").as_slice(), &mut clear_plain).expect("zstd");
    assert!(clear_plain.windows(magic.len()).any(|w| w == magic), "the check can fail");
    std::fs::remove_file(&clear).expect("rm");

    let c = archive::verify_with(&file, None, None).expect("checksum only");
    assert!(!c.contents_checked);
    let wrong = Secret::new("not the passphrase at all");
    let e = archive::verify_with(&file, Some(&wrong), None).expect_err("wrong key").to_string();
    assert!(e.contains("passphrase does not open"), "{e}");
    let c = archive::verify_with(&file, Some(&Secret::new(pass)), None).expect("opens");
    assert!(c.contents_checked);
    assert_eq!(c.manifest.tables, m.tables);

    // Restore with the wrong key or none: refused, the live data untouched.
    let target = tempfile::tempdir().expect("tempdir");
    std::fs::write(target.path().join("bravely.redb"), b"live data").expect("write");
    for key in [None, Some(&wrong)] {
        assert!(archive::restore_offline_with(target.path(), &file, key, chrono::Utc::now()).is_err());
        assert_eq!(std::fs::read(target.path().join("bravely.redb")).expect("read"), b"live data");
    }
    // The page verifies it with the policy's passphrase.
    let checked = service::verify_file(&t.app, &name).await.expect("verifies");
    assert!(checked.contents_checked);
    assert_eq!(policy::passphrase_for(&t.app.config, "secret").map(|s| s.expose().to_string()), Some(pass.into()));
}

#[tokio::test]
async fn a_full_backup_carries_the_uploaded_files_and_restores_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestApp::spawn_with(dir, |c: &mut Config| {
        let mut p = policy("weekly", "@weekly", "forever");
        p.scope = "full".into();
        c.backups.policies = vec![p];
    })
    .await;
    t.demo(4, 4).await;
    let files = bravely::backups::archive::files_dir(&t.app.config.data_dir);
    std::fs::create_dir_all(files.join("cv")).expect("mkdir");
    std::fs::write(files.join("cv/ana.pdf"), b"%PDF ana").expect("write");
    std::fs::write(files.join("logo.png"), vec![7u8; 100_000]).expect("write");
    tick(&t).await;
    t.app.scheduler.run_now(&t.app, "backup-weekly", "test").await.expect("starts").await.expect("task");
    let name = backups_of(&t, "weekly").pop().expect("made");
    let file = t.app.config.data_dir.join("backups").join(&name);
    let m = archive::read_manifest(&file).expect("manifest");
    assert_eq!(m.scope, "full");
    assert!(m.parts.iter().any(|p| p.name == "files/cv/ana.pdf"));

    let target = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(target.path().join("files")).expect("mkdir");
    std::fs::write(target.path().join("files/stale.txt"), b"old").expect("write");
    archive::restore_offline_with(target.path(), &file, None, chrono::Utc::now()).expect("restores");
    assert_eq!(std::fs::read(target.path().join("files/cv/ana.pdf")).expect("read"), b"%PDF ana");
    assert_eq!(std::fs::read(target.path().join("files/logo.png")).expect("read").len(), 100_000);
    assert!(!target.path().join("files/stale.txt").exists(), "the files are the backup's");
    let kept: Vec<_> = std::fs::read_dir(target.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("files.before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "the previous files are kept aside");
}

#[tokio::test]
async fn the_jobs_page_lists_jobs_and_runs_one_with_permission() {
    let t = TestApp::spawn().await;
    tick(&t).await;
    t.user("viewer@example.com", false, &["jobs.view"]).await;
    t.user("runner@example.com", false, &["jobs.view", "jobs.run"]).await;
    let viewer = t.login("viewer@example.com").await;
    let (status, html) = viewer.text("/jobs").await;
    assert_eq!(status, 200);
    for text in ["Backup: database", "Backup: full", "0 */4 * * *", "2026-03-02 12:00", "watched"] {
        assert!(html.contains(text), "{text} on the page");
    }
    assert!(!html.contains("Run now"), "no button without jobs.run");
    assert_eq!(viewer.post("/jobs/backup-database/run", &[]).await.status(), 403);

    let runner = t.login("runner@example.com").await;
    let r = runner.post("/jobs/backup-database/run", &[]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = runner.text("/jobs").await;
    assert!(page.contains("Started."), "the page says the job started");
    for _ in 0..200 {
        if !t.app.scheduler.is_running("backup-database") && state(&t, "backup-database").last_ok.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let s = state(&t, "backup-database");
    assert_eq!(s.last_ok, Some(true), "{}", s.last_message);
    assert_eq!(s.last_trigger, "run now by runner@example.com");
    assert_eq!(runner.post("/jobs/no-such-job/run", &[]).await.status(), 404);
}

#[tokio::test]
async fn job_outcomes_reach_the_metrics_scrape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestApp::spawn_with(dir, |c| c.metrics_token = Some(Secret::new("metrics-token-0123456789"))).await;
    tick(&t).await;
    t.app.scheduler.run_now(&t.app, "backup-database", "test").await.expect("starts").await.expect("task");
    let r = reqwest::Client::new()
        .get(format!("http://{}/metrics", t.addr))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .expect("scrape");
    let text = r.text().await.expect("text");
    assert!(text.contains("bravely_job_runs_total{job=\"backup-database\",result=\"ok\"} 1"), "{text}");
    assert!(text.contains("bravely_job_runs_total{job=\"backup-full\",result=\"ok\"} 0"));
    assert!(text.contains("bravely_job_running{job=\"backup-database\"} 0"));
    assert!(text.contains("bravely_job_last_success_timestamp_seconds{job=\"backup-database\"} 1772442000"), "{text}");
}

#[tokio::test]
async fn an_uploaded_backup_is_checked_listed_and_never_removed_by_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestApp::spawn_with(dir, |c: &mut Config| {
        c.backups.policies = vec![policy("hourly", "0 * * * *", "last 1")];
    })
    .await;
    t.demo(3, 3).await;
    // A backup made elsewhere, by the same policy name.
    let other = tempfile::tempdir().expect("tempdir");
    let made = {
        let t2 = TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c: &mut Config| {
            c.backups.policies = vec![policy("hourly", "0 * * * *", "last 1")];
        })
        .await;
        t2.demo(7, 2).await;
        let out = other.path().join("theirs.bravely-backup");
        archive::create(&t2.app.store, &out, "hourly").expect("backup");
        t2.stop().await;
        out
    };
    t.user("ops@example.com", false, &["backups.view", "backups.create"]).await;
    let c = t.login("ops@example.com").await;
    let upload = |bytes: Vec<u8>| {
        let c = &c;
        async move {
            let token = c.csrf().await;
            let form = reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(bytes).file_name("x.bravely-backup"));
            c.http
                .post(format!("{}/backups/upload", c.base))
                .header("x-csrf-token", token)
                .multipart(form)
                .send()
                .await
                .expect("upload")
        }
    };
    let r = upload(b"this is not a backup".to_vec()).await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.text("/backups").await;
    assert!(page.contains("Not added") && page.contains("not zstd-compressed"), "a foreign file is refused");
    assert!(backups_of(&t, "hourly").is_empty());

    let r = upload(std::fs::read(&made).expect("read")).await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.text("/backups").await;
    assert!(page.contains("Added bravely-"), "{page}");
    let uploaded = backups_of(&t, "hourly");
    assert_eq!(uploaded.len(), 1);
    assert!(uploaded[0].ends_with("-uploaded.bravely-backup"), "{uploaded:?}");

    // The policy keeps its last 1, and runs twice: the uploaded file stays.
    tick(&t).await;
    for h in 1..=2 {
        t.clock.set(start_time() + Duration::hours(h));
        assert_eq!(tick(&t).await, 1);
    }
    let all = backups_of(&t, "hourly");
    assert_eq!(all.len(), 2, "one of the policy's own and the uploaded one: {all:?}");
    assert!(all.contains(&uploaded[0]));
}

#[tokio::test]
async fn a_backup_being_downloaded_cannot_be_deleted() {
    let t = TestApp::spawn().await;
    t.user("ops@example.com", false, &["backups.view", "backups.download", "backups.delete"]).await;
    let c = t.login("ops@example.com").await;
    let dir = t.app.config.data_dir.join("backups");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let name = "bravely-20260302-090000.000-manual.bravely-backup";
    // Larger than the socket buffers, so the download stays open while nobody reads it.
    std::fs::write(dir.join(name), vec![0x5a; 64 << 20]).expect("write");
    let download = c.get(&format!("/backups/{name}/download")).await;
    assert_eq!(download.status(), 200);
    for _ in 0..100 {
        if t.app.backups_in_use.contains(name) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(t.app.backups_in_use.contains(name), "the open download holds the file");
    let r = c.post(&format!("/backups/{name}/delete"), &[]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.text("/backups").await;
    assert!(page.contains("being downloaded"), "refused with a reason");
    assert!(dir.join(name).exists());
    drop(download);
    for _ in 0..250 {
        if !t.app.backups_in_use.contains(name) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!t.app.backups_in_use.contains(name), "released when the download ends");
    assert_eq!(c.post(&format!("/backups/{name}/delete"), &[]).await.status(), 303);
    assert!(!dir.join(name).exists());
}
