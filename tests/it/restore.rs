//! A restore from the web page against the real binary: the server checks the backup,
//! restarts itself on the same socket, comes back with exactly the backed-up data, and the
//! audit log says who restored what.

use crate::harness::{BinaryServer, Client, PASSWORD, add_superuser_with_cli};

fn group_names(html: &str) -> Vec<String> {
    let mut names: Vec<String> =
        crate::harness::table_rows(html).into_iter().filter_map(|r| r.into_iter().find(|c| !c.is_empty())).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_restore_from_the_page_restarts_the_server_with_exactly_the_backed_up_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    add_superuser_with_cli(dir.path(), "root@example.com");

    let server = BinaryServer::start(dir.path());
    let c = Client::new(&server.base);
    assert_eq!(c.login("root@example.com", PASSWORD).await.status(), 303);
    assert_eq!(c.post("/admin/groups/new", &[("name", "Before")]).await.status(), 303);
    assert_eq!(c.post("/backups", &[]).await.status(), 303);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("backups"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".bravely-backup"))
        .collect();
    assert_eq!(names.len(), 1);
    let name = names[0].clone();
    // Changes after the backup, which the restore must undo.
    assert_eq!(c.post("/admin/groups/new", &[("name", "After")]).await.status(), 303);
    let (_, html) = c.text("/admin/groups/").await;
    assert_eq!(group_names(&html), vec!["After", "Before"]);

    // A wrong confirmation changes nothing.
    let r = c.post(&format!("/backups/{name}/restore"), &[("confirm", "restore")]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap_or_default().contains("Type RESTORE in capitals"));

    let r = c.post(&format!("/backups/{name}/restore"), &[("confirm", "RESTORE")]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap_or_default().contains("restarting"));

    // The same address answers again, from a new process image, with the old data.
    let mut restored = None;
    for _ in 0..300 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(r) = c.http.get(format!("{}/admin/groups/", c.base)).send().await
            && r.status() == 200
        {
            let html = r.text().await.unwrap_or_default();
            if group_names(&html) == vec!["Before"] {
                restored = Some(html);
                break;
            }
        }
    }
    assert!(
        restored.is_some(),
        "the server came back with the backed-up data; log: {:?}",
        server.log.lock().expect("log")
    );
    let kept: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("bravely.redb.before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "the replaced database is kept");
    assert!(!dir.path().join("restore.pending.json").exists());

    // The audit log of the restored database records the restore and who asked for it.
    let mut listed = String::new();
    for _ in 0..50 {
        listed = c.text("/backups").await.1;
        if listed.contains("Restores") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(listed.contains("root@example.com"), "who restored");
    assert!(listed.contains(&format!("restored {name}")), "what was restored");
    let log = server.log_text();
    assert!(log.contains("restarting to carry out a restore"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
