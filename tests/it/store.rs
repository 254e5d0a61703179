//! The group-commit writer: failing writes roll back alone; the rest of their batch commits.

use bravely::error::{AppError, FieldErrors};
use bravely::people::Employee;
use bravely::store::{Actor, Entity};

use crate::harness::TestApp;

fn employee(i: usize) -> Employee {
    Employee {
        name: format!("Writer {i}"),
        work_email: format!("w{i}@example.com"),
        title: "Dev".into(),
        team: None,
        start_date: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid"),
        end_date: None,
        active: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_is_undone_without_touching_its_batch() {
    let t = TestApp::spawn().await;
    let mut futures = Vec::new();
    for i in 0..200 {
        let store = t.app.store.clone();
        futures.push(tokio::spawn(async move {
            store
                .write(Actor::system("test"), move |tx| {
                    tx.insert(&employee(i))?;
                    match i % 4 {
                        // Fails after writing a row, its index entry and an audit entry.
                        1 => Err(AppError::Validation(FieldErrors::single("name", "no"))),
                        // Panics after writing.
                        3 => panic!("boom"),
                        _ => Ok(i),
                    }
                })
                .await
        }));
    }
    let mut ok = 0;
    for f in futures {
        if f.await.expect("join").is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 100);
    let r = t.app.store.read().expect("read");
    assert_eq!(r.count(Employee::TABLE).expect("count"), 100);
    for i in 0..200 {
        let found = r.find_unique::<Employee>("work_email", &format!("w{i}@example.com")).expect("read");
        assert_eq!(found.is_some(), i % 2 == 0, "writer {i}");
    }
    // The read model agrees with the store, and the writer still works after the panics.
    assert_eq!(t.app.registry.get("employees").map(|r| r.model().len()), Some(100));
    let id = t.app.store.write(Actor::system("test"), |tx| Ok(tx.insert(&employee(999))?)).await.expect("writes go on");
    assert!(id > 0);
    let history = t.app.store.history(Employee::TABLE, id).expect("history");
    assert_eq!(history.len(), 1, "one audit entry for the surviving write");
}

#[tokio::test]
async fn tables_of_retired_indexes_are_deleted_when_the_store_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // A file written by a version whose thanks had `receiver` and `month` indexes.
        let db = redb::Database::create(dir.path().join("bravely.redb")).expect("create");
        let w = db.begin_write().expect("write");
        let def: redb::TableDefinition<'_, (&[u8], u64), ()> = redb::TableDefinition::new("kudos.thanks#month");
        w.open_table(def).expect("open").insert((b"2026-03".as_slice(), 1), ()).expect("insert");
        let def: redb::TableDefinition<'_, (&[u8], u64), ()> = redb::TableDefinition::new("kudos.thanks#receiver");
        w.open_table(def).expect("open").insert((b"u1".as_slice(), 1), ()).expect("insert");
        let def: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("people.kept");
        w.open_table(def).expect("open").insert(1, 2).expect("insert");
        w.commit().expect("commit");
    }
    let t = TestApp::spawn_in(dir).await;
    let names = t.app.store.table_names().expect("names");
    assert!(!names.iter().any(|n| n == "kudos.thanks#month" || n == "kudos.thanks#receiver"), "{names:?}");
    assert!(names.iter().any(|n| n == "people.kept"), "other tables stay: {names:?}");
}

/// Records what it is given, and panics on the second batch it sees.
struct Flaky {
    seen: std::sync::Mutex<Vec<u64>>,
}

impl bravely::store::Listener for Flaky {
    fn load(&self, _: &bravely::store::ReadTx) -> Result<(), bravely::store::StoreError> {
        Ok(())
    }
    fn apply(&self, changes: &[bravely::store::Change]) {
        let mut seen = self.seen.lock().expect("lock");
        let first = seen.is_empty();
        seen.extend(changes.iter().map(|c| c.id));
        drop(seen);
        assert!(first, "a read model fails");
    }
}

#[tokio::test]
async fn read_models_see_each_write_before_its_caller_and_a_panicking_one_stops_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flaky = std::sync::Arc::new(Flaky { seen: std::sync::Mutex::new(vec![]) });
    let clock = bravely::clock::Clock::manual(crate::harness::start_time());
    let path = dir.path().join("bravely.redb");
    let store = bravely::store::Store::open(&path, clock.clone(), vec![flaky.clone()]).expect("open");
    store.ready().await.expect("ready");
    for i in 0..2 {
        let id = store.write(Actor::system("test"), move |tx| Ok(tx.insert(&employee(i))?)).await.expect("write");
        // Answered only after the read model has had the change (even when it panicked on it).
        assert!(flaky.seen.lock().expect("lock").contains(&id), "write {i}");
    }
    // The second batch made the read model panic: its lists would be wrong from here on, so the
    // store stops (health checks report it) rather than serve them.
    assert!(matches!(store.load_state(), bravely::store::LoadState::Failed(why) if why.contains("read model")));
    assert!(store.write(Actor::system("test"), move |tx| Ok(tx.insert(&employee(9))?)).await.is_err());
    store.shutdown();
    drop(store);
    let store = bravely::store::Store::open(&path, clock, vec![]).expect("reopen");
    let r = store.read().expect("read");
    assert_eq!(r.count(Employee::TABLE).expect("count"), 2, "every acknowledged write is stored");
    store.shutdown();
}
