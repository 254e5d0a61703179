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
