//! A restore from the web page against the real binary: the server checks the backup,
//! restarts itself on the same socket, comes back with exactly the backed-up data, and the
//! audit log says who restored what.

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::harness::{Client, PASSWORD};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bravely")
}

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path) -> Server {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("listening on http://") {
                let addr = line[i + "listening on ".len()..].split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(addr);
            }
            sink.lock().expect("log").push(line);
        }
    });
    let base = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the server says where it listens");
    Server { child, base, log }
}

fn group_names(html: &str) -> Vec<String> {
    let mut names: Vec<String> =
        crate::harness::table_rows(html).into_iter().filter_map(|r| r.into_iter().find(|c| !c.is_empty())).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_restore_from_the_page_restarts_the_server_with_exactly_the_backed_up_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut add = Command::new(bin())
        .args(["user", "add", "--email", "root@example.com", "--name", "Root", "--superuser", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    add.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("password");
    assert!(add.wait().expect("user add").success());

    let server = start(dir.path());
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
    let log = server.log.lock().expect("log").join("\n");
    assert!(log.contains("restarting to carry out a restore"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
