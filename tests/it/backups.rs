//! Backups: consistent snapshots under load, verification, and a restore drill.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bravely::backups::archive;
use bravely::inventory::{Assignment, Item};
use bravely::people::Employee;
use bravely::store::{Actor, Entity};

use crate::harness::{TestApp, location};

/// Opens a backup's snapshot as a data directory, for looking inside.
fn open_snapshot(file: &std::path::Path) -> (tempfile::TempDir, bravely::App) {
    let dir = tempfile::tempdir().expect("tempdir");
    archive::verify(file, Some(&dir.path().join("bravely.redb"))).expect("verifies");
    let config = bravely::config::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
    let app = bravely::App::open(config, bravely::clock::Clock::system()).expect("opens");
    (dir, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_taken_while_writers_commit_are_consistent() {
    let t = TestApp::spawn().await;
    t.demo(30, 60).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Writers assign and return items without pause; an item's assignee and its open
    // assignment rows live in different tables and must agree in every snapshot.
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (store, stop) = (t.app.store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let item = 1 + (n * 4 + w) % 60;
                let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid");
                let _ = store
                    .write(Actor::system("writer"), move |tx| {
                        let open: Vec<u64> = tx
                            .find_by::<Assignment>("item", &bravely::store::Value::Ref(item))?
                            .into_iter()
                            .filter(|id| {
                                tx.get::<Assignment>(*id).ok().flatten().is_some_and(|a| a.returned_on.is_none())
                            })
                            .collect();
                        match open.first() {
                            Some(a) => bravely::inventory::service::return_assignment(tx, *a, today).map(|_| ()),
                            None => {
                                bravely::inventory::service::assign(tx, item, 1 + n % 30, 1, today, None).map(|_| ())
                            }
                        }
                    })
                    .await;
                n += 1;
            }
            n
        }));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..4 {
        let out = dir.path().join(format!("b{i}.{}", archive::EXTENSION));
        let store = t.app.store.clone();
        let o = out.clone();
        tokio::task::spawn_blocking(move || archive::create(&store, &o, "test")).await.expect("join").expect("backup");
        let (_d, snap) = open_snapshot(&out);
        let r = snap.store.read().expect("read");
        let assignments = r.all::<Assignment>().expect("assignments");
        for (id, item) in r.all::<Item>().expect("items") {
            let open: Vec<&Assignment> =
                assignments.iter().map(|(_, a)| a).filter(|a| a.item == id && a.returned_on.is_none()).collect();
            if item.quantity == 1 && item.serial.is_some() {
                assert_eq!(
                    item.assignee.is_some(),
                    !open.is_empty(),
                    "snapshot {i}: item {id} and its assignments agree"
                );
            } else {
                assert_eq!(
                    item.assigned_qty,
                    open.iter().map(|a| a.quantity).sum::<i64>(),
                    "snapshot {i}: stock of {id}"
                );
            }
        }
        snap.store.shutdown();
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in writers {
        total += w.await.expect("writer");
    }
    assert!(total > 20, "writers kept committing during the backups ({total} writes)");
}

#[tokio::test]
async fn restore_drill_brings_back_exactly_the_backed_up_data() {
    let t = TestApp::spawn().await;
    t.demo(12, 5).await;
    t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    let r = c.post("/backups", &[]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.text(&location(&r)).await;
    assert!(page.contains("written and checked in"), "flash after the backup");
    let name = page.split("/backups/").nth(1).and_then(|s| s.split('/').next()).expect("a listed backup").to_string();
    // The download is the file, byte for byte.
    let file = t.app.config.data_dir.join("backups").join(&name);
    let body = c.get(&format!("/backups/{name}/download")).await.bytes().await.expect("body");
    assert_eq!(body.as_ref(), std::fs::read(&file).expect("read").as_slice());
    let r = c.post(&format!("/backups/{name}/verify"), &[]).await;
    let (_, page) = c.text(&location(&r)).await;
    assert!(page.contains("is sound"), "verified from the page");

    // More changes after the backup.
    let r = c
        .post(
            "/admin/employees/new",
            &[
                ("name", "After Backup"),
                ("work_email", "after@example.com"),
                ("title", "Dev"),
                ("start_date", "2024-01-01"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let before: Vec<(u64, Employee)> = {
        let (_d, snap) = open_snapshot(&file);
        let rows = snap.store.read().expect("read").all::<Employee>().expect("rows");
        snap.store.shutdown();
        rows
    };
    assert_eq!(before.len(), 12);

    // Stop the app, restore, reopen: exactly the backed-up data.
    let data_dir = t.app.config.data_dir.clone();
    drop(c);
    let dir = t.stop().await;
    let (_, kept) = archive::restore_offline(&data_dir, &file, chrono::DateTime::UNIX_EPOCH).expect("restores");
    assert!(kept.expect("old data kept").exists());
    let config = bravely::config::Config { data_dir: data_dir.clone(), ..Default::default() };
    let app = bravely::App::open(config, bravely::clock::Clock::system()).expect("reopens");
    let after = app.store.read().expect("read").all::<Employee>().expect("rows");
    assert_eq!(after, before, "same rows, same ids");
    app.store.shutdown();
    drop(dir);
}

#[tokio::test]
async fn damaged_and_foreign_files_are_refused_and_the_live_data_is_untouched() {
    let t = TestApp::spawn().await;
    t.demo(5, 5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join(format!("good.{}", archive::EXTENSION));
    let store = t.app.store.clone();
    let g = good.clone();
    tokio::task::spawn_blocking(move || archive::create(&store, &g, "test")).await.expect("join").expect("backup");
    let bytes = std::fs::read(&good).expect("read");

    let truncated = dir.path().join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let flipped = dir.path().join("flipped");
    let mut f = bytes.clone();
    let mid = f.len() * 2 / 3;
    f[mid] ^= 0xff;
    std::fs::write(&flipped, &f).expect("write");
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, b"PK\x03\x04 this is a zip file, not a backup").expect("write");

    let e = archive::verify(&truncated, None).expect_err("truncated").to_string();
    assert!(e.contains("damaged"), "{e}");
    let e = archive::verify(&flipped, None).expect_err("flipped").to_string();
    assert!(e.contains("damaged") || e.contains("not a Bravely backup"), "{e}");
    let e = archive::verify(&foreign, None).expect_err("foreign").to_string();
    assert!(e.contains("not a Bravely backup"), "{e}");
    assert!(archive::verify(&good, None).is_ok());

    // Restore refuses them before touching anything.
    let data_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(data_dir.path().join("bravely.redb"), b"live").expect("write");
    for bad in [&truncated, &flipped, &foreign] {
        assert!(archive::restore_offline(data_dir.path(), bad, chrono::DateTime::UNIX_EPOCH).is_err());
        assert_eq!(std::fs::read(data_dir.path().join("bravely.redb")).expect("live file"), b"live");
    }
    // And it refuses to replace a database a server still holds.
    let e = archive::restore_offline(&t.app.config.data_dir, &good, chrono::DateTime::UNIX_EPOCH)
        .expect_err("in use")
        .to_string();
    assert!(e.contains("in use"), "{e}");
    assert!(t.app.store.read().expect("read").count(Employee::TABLE).expect("count") == 5);
}

#[tokio::test]
async fn backup_outcomes_reach_the_metrics_scrape() {
    let token = "metrics-token-for-tests";
    let t = TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.metrics_token = Some(bravely::config::Secret::new(token));
    })
    .await;
    t.demo(3, 0).await;
    t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    assert_eq!(c.post("/backups", &[]).await.status(), 303);
    let scrape = c
        .http
        .get(format!("{}/metrics", c.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    assert!(scrape.contains("bravely_backups_total{operation=\"create\",result=\"ok\"} 1"), "{scrape}");
    let expected = format!("bravely_backup_last_success_timestamp_seconds {}", t.clock.now().timestamp());
    assert!(scrape.contains(&expected), "the injected clock's time: {scrape}");
}
