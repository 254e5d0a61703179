//! Hostile backup files: decompression bombs are refused before they expand, and anything
//! appended after the archive fails verification.

use std::io::{Read, Write};
use std::path::Path;

use bravely::backups::archive;
use bravely::backups::reader::Limits;

use crate::harness::{TestApp, location};

const GIB: u64 = 1 << 30;

/// A backup-shaped file: a manifest declaring `declared` bytes of database, then a database
/// entry of `actual` zero bytes, which zstd shrinks to almost nothing.
fn bomb(path: &Path, declared: u64, actual: u64) {
    let manifest = serde_json::json!({
        "format": 2,
        "app_version": "0.1.0",
        "created_at": "2026-03-02T09:00:00Z",
        "scope": "database",
        "policy": "manual",
        "tables": {},
        "parts": [{ "name": "bravely.redb", "size": declared, "sha256": "00".repeat(32) }],
    });
    let json = serde_json::to_vec(&manifest).expect("json");
    let file = std::fs::File::create(path).expect("create");
    let enc = zstd::Encoder::new(file, 3).expect("zstd").auto_finish();
    let mut tar = tar::Builder::new(enc);
    let mut h = tar::Header::new_gnu();
    h.set_size(json.len() as u64);
    h.set_mode(0o600);
    h.set_cksum();
    tar.append_data(&mut h, "manifest.json", json.as_slice()).expect("manifest");
    let mut h = tar::Header::new_gnu();
    h.set_size(actual);
    h.set_mode(0o600);
    h.set_cksum();
    tar.append_data(&mut h, "bravely.redb", std::io::repeat(0).take(actual)).expect("database");
    tar.into_inner().expect("finish");
}

/// Bytes under `dir`, recursively.
fn bytes_under(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("ls").flatten() {
        let t = e.file_type().expect("type");
        if t.is_dir() {
            n += bytes_under(&e.path());
        } else {
            n += e.metadata().expect("meta").len();
        }
    }
    n
}

#[test]
fn a_decompression_bomb_is_refused_before_it_expands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bomb.bravely-backup");
    bomb(&file, 4096, GIB);
    let size = std::fs::metadata(&file).expect("size").len();
    assert!(size < 256 * 1024, "a small file ({size} bytes) that expands to 1 GiB");
    let out = tempfile::tempdir().expect("tempdir");
    let limits = Limits { work_dir: dir.path().join("tmp"), max_expanded: 10 * GIB };

    // The manifest says 4 KiB, the archive's entry says 1 GiB: refused at the entry's header.
    let e = archive::verify_in(&file, None, Some(out.path()), &limits).expect_err("refused").to_string();
    assert!(e.contains("bravely.redb is 1073741824 bytes in the archive but 4096 in its manifest"), "{e}");
    assert_eq!(bytes_under(out.path()), 0, "nothing was expanded");

    // An honest manifest that declares 1 GiB: over the configured maximum, refused up front.
    bomb(&file, GIB, GIB);
    let small = Limits { work_dir: dir.path().join("tmp"), max_expanded: 64 << 20 };
    let e = archive::verify_in(&file, None, Some(out.path()), &small).expect_err("refused").to_string();
    assert!(e.contains("expands to 1.0 GiB, more than the 64.0 MiB allowed (backups.max_expanded_mib)"), "{e}");
    assert_eq!(bytes_under(out.path()), 0, "nothing was expanded");

    // More than the disk holds: refused after a look at the free space, not at "disk full".
    bomb(&file, 1 << 50, 4096);
    let huge = Limits { work_dir: dir.path().join("tmp"), max_expanded: u64::MAX };
    let e = archive::verify_in(&file, None, None, &huge).expect_err("refused").to_string();
    assert!(e.contains("expands to") && e.contains("free"), "{e}");
    assert_eq!(bytes_under(&dir.path().join("tmp")), 0, "the scratch space is left empty");
}

#[tokio::test]
async fn an_uploaded_bomb_is_refused_with_a_clear_message_and_leaves_no_bytes_behind() {
    let t = TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| c.backups.max_expanded_mib = 256).await;
    t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bomb.bravely-backup");
    bomb(&file, GIB, GIB);
    let token = c.csrf().await;
    let form = reqwest::multipart::Form::new().text("csrf_token", token).part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(&file).expect("read")).file_name("bomb.bravely-backup"),
    );
    let r = c.http.post(format!("{}/backups/upload", c.base)).multipart(form).send().await.expect("upload");
    assert_eq!(r.status(), 303);
    let (_, page) = c.text(&location(&r)).await;
    assert!(page.contains("Not added"), "{page}");
    assert!(page.contains("more than the 256.0 MiB allowed"), "{page}");
    let data = &t.app.config.data_dir;
    let tmp = t.app.config.temp_dir();
    assert!(!tmp.exists() || bytes_under(&tmp) == 0, "the scratch space is empty");
    assert!(bytes_under(data) < 8 << 20, "no expansion landed in the data directory: {} bytes", bytes_under(data));
}

async fn real_backup(t: &TestApp, dir: &Path) -> std::path::PathBuf {
    let good = dir.join(format!("good.{}", archive::EXTENSION));
    let store = t.app.store.clone();
    let g = good.clone();
    tokio::task::spawn_blocking(move || archive::create(&store, &g, "test")).await.expect("join").expect("backup");
    good
}

#[tokio::test]
async fn garbage_appended_after_the_archive_fails_verification() {
    let t = TestApp::spawn().await;
    t.demo(5, 5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = real_backup(&t, dir.path()).await;
    assert!(archive::verify(&good, None).is_ok());
    let bytes = std::fs::read(&good).expect("read");

    // Raw bytes after the zstd frame.
    let raw = dir.path().join("raw-tail");
    let mut b = bytes.clone();
    b.extend_from_slice(b"this is not part of any backup");
    std::fs::write(&raw, &b).expect("write");
    // A second, well-formed zstd frame with text in it.
    let framed = dir.path().join("framed-tail");
    let mut b = bytes.clone();
    let mut enc = zstd::Encoder::new(Vec::new(), 3).expect("zstd");
    enc.write_all(b"appended text, compressed").expect("write");
    b.extend(enc.finish().expect("finish"));
    std::fs::write(&framed, &b).expect("write");
    // A frame of zeros (looks like tar padding) far longer than any padding.
    let padded = dir.path().join("padded-tail");
    let mut b = bytes.clone();
    let mut enc = zstd::Encoder::new(Vec::new(), 3).expect("zstd");
    std::io::copy(&mut std::io::repeat(0).take(8 << 20), &mut enc).expect("zeros");
    b.extend(enc.finish().expect("finish"));
    std::fs::write(&padded, &b).expect("write");

    for (file, why) in [(&raw, "not part of the archive"), (&framed, "data follows"), (&padded, "of padding follows")] {
        let e = archive::verify(file, None).expect_err("an appended tail fails").to_string();
        assert!(e.contains("is damaged") && e.contains(why), "{}: {e}", file.display());
    }
    // The server's scheduled check says the same.
    let backups = t.app.config.data_dir.join("backups");
    std::fs::create_dir_all(&backups).expect("dir");
    let name = bravely::backups::new_name(t.clock.now(), "uploaded");
    std::fs::copy(&raw, backups.join(&name)).expect("copy");
    let e = bravely::backups::service::verify_file(&t.app, &name).await.expect_err("fails").to_string();
    assert!(e.contains("not part of the archive"), "{e}");
}

#[tokio::test]
async fn an_encrypted_backup_with_a_tail_fails_too() {
    let t = TestApp::spawn().await;
    t.demo(3, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("enc.{}", archive::EXTENSION));
    let pass = bravely::config::Secret::new("a passphrase for the test");
    let (store, f, p, data) = (t.app.store.clone(), file.clone(), pass.clone(), t.app.config.data_dir.clone());
    tokio::task::spawn_blocking(move || {
        archive::create_with(
            &store,
            &f,
            &archive::Options { policy: "test", full: false, data_dir: &data, passphrase: Some(&p) },
        )
    })
    .await
    .expect("join")
    .expect("backup");
    assert!(archive::verify_with(&file, Some(&pass), None).is_ok());
    let mut b = std::fs::read(&file).expect("read");
    b.extend_from_slice(b"tail");
    std::fs::write(&file, &b).expect("write");
    for key in [None, Some(&pass)] {
        let e = archive::verify_with(&file, key, None).expect_err("a tail fails").to_string();
        assert!(e.contains("is damaged"), "{e}");
    }
}
