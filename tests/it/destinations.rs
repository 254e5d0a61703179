//! Backup destinations: a real S3-compatible server (s3s-fs, SigV4 checked) and a local
//! directory, through the library and the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bravely::backups::archive;
use bravely::backups::destination::{Destination, DestinationError, StorageOptions, UploadProgress};
use bravely::config::Secret;
use bravely::people::Employee;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::harness::TestApp;
use crate::s3server::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};

const MIB: usize = 1024 * 1024;

/// A real backup of a database holding `employees` employees, written into `dir`.
async fn real_backup(dir: &Path, employees: usize) -> PathBuf {
    let t = TestApp::spawn().await;
    t.demo(employees, 3).await;
    let out = dir.join(bravely::backups::new_name(t.clock.now(), "manual"));
    let store = t.app.store.clone();
    let o = out.clone();
    tokio::task::spawn_blocking(move || archive::create(&store, &o, "manual")).await.expect("join").expect("backup");
    t.stop().await;
    out
}

/// `len` bytes that do not compress or repeat (a cheap xorshift).
fn noise_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    std::fs::write(path, bytes).expect("write");
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read")))
}

fn name_of(path: &Path) -> String {
    path.file_name().expect("name").to_string_lossy().to_string()
}

fn no_progress(_: UploadProgress) {}

/// Upload, list, download, stream, delete: the same checks for any destination.
async fn round_trip(dest: &Destination, backup: &Path) {
    let name = name_of(backup);
    let size = std::fs::metadata(backup).expect("meta").len();
    assert_eq!(dest.upload(backup, &name, &no_progress).await.expect("upload"), size);
    let listed = dest.list().await.expect("list");
    assert_eq!(listed.iter().map(|b| (b.name.as_str(), b.size)).collect::<Vec<_>>(), vec![(name.as_str(), size)]);

    let work = tempfile::tempdir().expect("tempdir");
    let copy = work.path().join(&name);
    assert_eq!(dest.download_to(&name, &copy).await.expect("download"), size);
    assert_eq!(sha(&copy), sha(backup), "the download is the file byte for byte");
    let m = archive::verify(&copy, None).expect("the downloaded backup verifies");
    assert_eq!(m.policy, "manual");
    assert_eq!(std::fs::read_dir(work.path()).expect("dir").count(), 1, "no temporary file is left");

    let mut read = dest.read(&name).await.expect("read");
    assert_eq!(read.size, size);
    let mut streamed = Vec::new();
    while let Some(chunk) = read.stream.next().await {
        streamed.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(streamed, std::fs::read(backup).expect("read"), "the stream is the file");

    dest.delete(&name).await.expect("delete");
    assert!(dest.list().await.expect("list").is_empty());
    let err = dest.delete(&name).await.expect_err("already gone");
    assert!(matches!(err, DestinationError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("no backup named {name}")), "{err}");
    let err = dest.download_to(&name, &copy).await.expect_err("gone");
    assert!(matches!(err, DestinationError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn s3_upload_list_download_verify_and_delete() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = real_backup(dir.path(), 8).await;
    let dest = Destination::open(&s3.url("prod/db"), &s3.options()).expect("opens");
    assert_eq!(dest.url(), format!("s3://{BUCKET}/prod/db"));
    // A file beside the backups and one in a deeper "folder" are not listed.
    noise_file(&dir.path().join("notes.txt"), 10);
    let other = Destination::open(&s3.url("prod/db/older"), &s3.options()).expect("opens");
    let deeper = dir.path().join("bravely-deeper.bravely-backup");
    noise_file(&deeper, 100);
    other.upload(&deeper, "bravely-deeper.bravely-backup", &no_progress).await.expect("upload");
    round_trip(&dest, &backup).await;
    assert_eq!(other.list().await.expect("list").len(), 1);
    assert!(s3.files().iter().any(|f| f.ends_with("older/bravely-deeper.bravely-backup")), "{:?}", s3.files());
}

#[tokio::test]
async fn files_larger_than_a_part_go_up_in_parts_with_progress() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("bravely-big.bravely-backup");
    noise_file(&big, 12 * MIB + 12_345);
    let options = StorageOptions { part_size_mib: 5, ..s3.options() };
    let dest = Destination::open(&s3.url("big"), &options).expect("opens");
    let seen = Mutex::new(Vec::<UploadProgress>::new());
    let record = |p: UploadProgress| seen.lock().expect("lock").push(p);
    let size = dest.upload(&big, "bravely-big.bravely-backup", &record).await.expect("multipart upload");
    assert_eq!(size, (12 * MIB + 12_345) as u64);
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.len(), 3, "three parts of at most 5 MiB: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done), "progress only grows: {seen:?}");
    let last = seen.last().expect("progress");
    assert_eq!((last.done, last.total, last.parts_done, last.parts_total), (size, size, 3, 3));

    let listed = dest.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, size);
    let copy = dir.path().join("copy");
    dest.download_to("bravely-big.bravely-backup", &copy).await.expect("download");
    assert_eq!(sha(&copy), sha(&big), "the parts were joined in order");
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_a_clear_error_without_the_secret() {
    let s3 = S3Server::start();
    let wrong_secret = "this-is-not-the-secret-0000";
    let mut options = s3.options();
    options.s3.secret_access_key = Some(Secret::new(wrong_secret));
    let dest = Destination::open(&s3.url("p"), &options).expect("opens");
    let err = dest.list().await.expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, DestinationError::Refused { .. }), "{err:?}");
    assert!(msg.starts_with("the storage refused the credentials (403 Forbidden: SignatureDoesNotMatch)"), "{msg}");
    assert!(msg.contains(&s3.endpoint) && msg.contains("s3://bravely-backups/p"), "says where: {msg}");
    assert!(!msg.contains(wrong_secret) && !format!("{err:?}").contains(wrong_secret), "{msg}");

    let mut options = s3.options();
    options.s3.access_key_id = Some("nobody-knows-this-key".into());
    let dest = Destination::open(&s3.url("p"), &options).expect("opens");
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bravely-x.bravely-backup");
    noise_file(&f, 1000);
    let err = dest.upload(&f, "bravely-x.bravely-backup", &no_progress).await.expect_err("refused");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(f.is_file(), "the local file stays");
    assert!(!s3.files().iter().any(|n| n.contains("bravely-x")), "nothing stored: {:?}", s3.files());
}

#[tokio::test]
async fn a_missing_bucket_is_named() {
    let s3 = S3Server::start();
    let dest = Destination::open("s3://no-such-bucket/p", &s3.options()).expect("opens");
    let err = dest.list().await.expect_err("no bucket");
    assert!(
        err.to_string().starts_with("the bucket \"no-such-bucket\" does not exist at s3://no-such-bucket/p"),
        "{err}"
    );
    let err =
        dest.download_to("bravely-x.bravely-backup", &std::env::temp_dir().join("x")).await.expect_err("no bucket");
    assert!(matches!(err, DestinationError::NoBucket { .. }), "{err:?}");
    // (s3s-fs makes the bucket directory on PUT, so uploads into a missing bucket are not tested here.)
}

#[tokio::test]
async fn an_unreachable_endpoint_gives_a_clear_error_quickly() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut options = StorageOptions::default();
    options.s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
    options.s3.access_key_id = Some(ACCESS_KEY.into());
    options.s3.secret_access_key = Some(Secret::new(SECRET_KEY));
    options.s3.allow_http = true;
    options.retries = 1;
    let dest = Destination::open("s3://b/p", &options).expect("opens");
    let started = Instant::now();
    let err = dest.list().await.expect_err("unreachable");
    let msg = err.to_string();
    assert!(matches!(err, DestinationError::Unreachable { .. }), "{err:?}");
    assert!(
        msg.starts_with("cannot reach the storage at s3://b/p") && msg.contains(&format!("127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "says why: {msg}");
    assert!(started.elapsed() < Duration::from_secs(10), "gave up after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_multipart_upload_that_fails_midway_keeps_the_local_file() {
    let s3 = Mutex::new(Some(S3Server::start()));
    let (url, options) = {
        let guard = s3.lock().expect("lock");
        let server = guard.as_ref().expect("server");
        (server.url("p"), StorageOptions { part_size_mib: 5, ..server.options() })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("bravely-big.bravely-backup");
    noise_file(&big, 16 * MIB);
    let before = sha(&big);
    let dest = Destination::open(&url, &options).expect("opens");
    // The server goes away once the first part is stored.
    let stop = |p: UploadProgress| {
        if p.parts_done == 1 {
            drop(s3.lock().expect("lock").take());
        }
    };
    let err = dest.upload(&big, "bravely-big.bravely-backup", &stop).await.expect_err("the upload fails");
    assert!(matches!(err, DestinationError::Unreachable { .. }), "{err:?}");
    assert_eq!(sha(&big), before, "the local file is untouched");
}

#[tokio::test]
async fn a_failed_multipart_upload_is_aborted_and_leaves_nothing_behind() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("bravely-big.bravely-backup");
    noise_file(&big, 16 * MIB);
    let dest = Destination::open(&s3.url("p"), &StorageOptions { part_size_mib: 5, ..s3.options() }).expect("opens");
    // Once the first part is stored, the file shrinks: the next read fails mid-upload.
    let parts_seen = Mutex::new(Vec::new());
    let shrink = |p: UploadProgress| {
        if p.parts_done == 1 {
            parts_seen.lock().expect("lock").extend(s3.files().into_iter().filter(|f| f.contains(".upload_id-")));
            std::fs::OpenOptions::new().write(true).open(&big).and_then(|f| f.set_len(7 * MIB as u64)).expect("shrink");
        }
    };
    let err = dest.upload(&big, "bravely-big.bravely-backup", &shrink).await.expect_err("the upload fails");
    assert!(matches!(err, DestinationError::Local { .. }), "{err:?}");
    assert!(!parts_seen.into_inner().expect("lock").is_empty(), "parts were stored before the failure");
    assert_eq!(s3.files(), Vec::<String>::new(), "the abort removed every stored part");
    assert!(dest.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn a_local_directory_is_a_destination_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = real_backup(dir.path(), 4).await;
    let target = dir.path().join("offsite");
    let dest = Destination::open(&target.to_string_lossy(), &StorageOptions::default()).expect("opens");
    round_trip(&dest, &backup).await;

    // file:// URLs, multipart-sized files, and other files left alone by list.
    let options = StorageOptions { part_size_mib: 5, ..StorageOptions::default() };
    let dest = Destination::open(&format!("file://{}", target.display()), &options).expect("opens");
    let big = dir.path().join("bravely-big.bravely-backup");
    noise_file(&big, 11 * MIB);
    let parts = Mutex::new(0);
    dest.upload(&big, "bravely-big.bravely-backup", &|p| *parts.lock().expect("lock") = p.parts_done)
        .await
        .expect("upload");
    assert_eq!(*parts.lock().expect("lock"), 3);
    std::fs::write(target.join("README.txt"), "not a backup").expect("write");
    let listed = dest.list().await.expect("list");
    assert_eq!(listed.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), vec!["bravely-big.bravely-backup"]);
    assert_eq!(sha(&target.join("bravely-big.bravely-backup")), sha(&big));
    let err = dest.upload(&big, "../escape.bravely-backup", &no_progress).await.expect_err("bad name");
    assert!(matches!(err, DestinationError::InvalidName(_)), "{err:?}");
}

// --- the CLI ------------------------------------------------------------------------------

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bravely")
}

/// A config file for the server, with the secret in a file named by the `_FILE` variable.
struct CliSetup {
    dir: tempfile::TempDir,
    config: PathBuf,
    secret_file: PathBuf,
}

fn cli_setup(s3: &S3Server) -> CliSetup {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bravely.toml");
    std::fs::write(
        &config,
        format!(
            "[backups.storage]\nretries = 0\n\n[backups.storage.s3]\nendpoint = \"{}\"\naccess_key_id = \"{ACCESS_KEY}\"\n\
             allow_http = true\n",
            s3.endpoint
        ),
    )
    .expect("write");
    let secret_file = dir.path().join("s3-secret");
    std::fs::write(&secret_file, format!("{SECRET_KEY}\n")).expect("write");
    CliSetup { dir, config, secret_file }
}

impl CliSetup {
    fn run(&self, data_dir: &Path, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("BRAVELY_BACKUPS_S3_SECRET_ACCESS_KEY_FILE", &self.secret_file)
            .env("NO_COLOR", "1")
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

#[tokio::test]
async fn cli_verify_and_restore_from_an_s3_url() {
    let s3 = S3Server::start();
    let cli = cli_setup(&s3);
    let backup = real_backup(cli.dir.path(), 9).await;
    let name = name_of(&backup);
    let dest = Destination::open(&s3.url("cli"), &s3.options()).expect("opens");
    dest.upload(&backup, &name, &no_progress).await.expect("upload");
    let url = dest.url_of(&name);

    let data = tempfile::tempdir().expect("tempdir");
    let (ok, out, err) = cli.run(data.path(), &["backup", "verify", &url]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{url} is sound")) && out.contains("tables"), "{out}");

    let (ok, out, err) = cli.run(data.path(), &["backup", "restore", &url]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("restored {url}")), "{out}");
    let config = bravely::config::Config { data_dir: data.path().to_path_buf(), ..Default::default() };
    let app = bravely::App::open(config, bravely::clock::Clock::system()).expect("opens");
    assert_eq!(app.store.read().expect("read").all::<Employee>().expect("rows").len(), 9, "the backed-up rows");
    app.store.shutdown();
    let leftovers: Vec<String> = std::fs::read_dir(data.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".download"))
        .collect();
    assert!(leftovers.is_empty(), "the downloaded copy is removed: {leftovers:?}");

    // A damaged object is refused; a missing one is named.
    let bytes = std::fs::read(&backup).expect("read");
    let damaged = cli.dir.path().join("bravely-damaged.bravely-backup");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).expect("write");
    dest.upload(&damaged, "bravely-damaged.bravely-backup", &no_progress).await.expect("upload");
    let damaged_url = dest.url_of("bravely-damaged.bravely-backup");
    let (ok, _, err) = cli.run(data.path(), &["backup", "verify", &damaged_url]);
    assert!(!ok && err.contains(&format!("{damaged_url} is damaged")), "names the object, not a temporary copy: {err}");
    let (ok, _, err) = cli.run(data.path(), &["backup", "restore", &dest.url_of("bravely-none.bravely-backup")]);
    assert!(!ok && err.contains("no backup named bravely-none.bravely-backup"), "{err}");
}

#[tokio::test]
async fn cli_create_uploads_and_a_failed_upload_keeps_the_local_backup() {
    let s3 = S3Server::start();
    let cli = cli_setup(&s3);
    let data = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = cli.run(data.path(), &["demo", "--employees", "3", "--items", "2"]);
    assert!(ok, "{err}");

    let (ok, out, err) = cli.run(data.path(), &["backup", "create", "--to", &s3.url("nightly")]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("uploaded to s3://{BUCKET}/nightly/bravely-")), "{out}");
    let dest = Destination::open(&s3.url("nightly"), &s3.options()).expect("opens");
    let listed = dest.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    let local = data.path().join("backups").join(&listed[0].name);
    assert_eq!(std::fs::metadata(&local).expect("local copy kept").len(), listed[0].size);

    // Wrong secret: the backup is written, the upload refused, the local copy kept.
    std::fs::write(&cli.secret_file, "a-wrong-secret-for-this-test\n").expect("write");
    let (ok, out, err) = cli.run(data.path(), &["backup", "create", "--to", &s3.url("nightly")]);
    assert!(!ok, "{out}");
    assert!(err.contains("refused the credentials") && err.contains("the backup is kept at"), "{err}");
    assert!(!err.contains("a-wrong-secret") && !out.contains("a-wrong-secret"), "{err}");
    let kept = err
        .split("the backup is kept at ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .map(|s| PathBuf::from(s.trim()))
        .expect("names the kept file");
    archive::verify(&kept, None).expect("the kept backup is sound");
    assert_eq!(std::fs::read_dir(data.path().join("backups")).expect("dir").count(), 2);
    assert_eq!(dest.list().await.expect("list").len(), 1, "nothing more stored remotely");

    // A destination that cannot work is refused before the snapshot is taken.
    let (ok, _, err) = cli.run(data.path(), &["backup", "create", "--to", "ftp://example/x"]);
    assert!(!ok && err.contains("unsupported destination"), "{err}");
    assert_eq!(std::fs::read_dir(data.path().join("backups")).expect("dir").count(), 2);
}

/// A policy with an S3 destination: the scheduled run uploads and drops the local copy,
/// retention works at the destination, the verify job reads the newest back, the page lists
/// and streams them; with the server gone, the run fails, keeps the local file and alerts.
#[tokio::test]
async fn a_policy_with_an_s3_destination_uploads_keeps_its_retention_and_verifies_remotely() {
    use bravely::config::{Config, PolicyConfig};
    let s3 = S3Server::start();
    let url = s3.url("nightly");
    let dir = tempfile::tempdir().expect("tempdir");
    let options = s3.options();
    let u2 = url.clone();
    let t = TestApp::spawn_with(dir, move |c: &mut Config| {
        c.backups.storage = options;
        c.backups.policies = vec![PolicyConfig {
            name: "offsite".into(),
            scope: "database".into(),
            schedule: "0 * * * *".into(),
            destination: Some(u2),
            keep: Some("last 2".into()),
            passphrase: None,
            passphrase_file: None,
        }];
    })
    .await;
    t.demo(5, 5).await;
    let run = |key: &'static str| {
        let app = t.app.clone();
        async move { app.scheduler.run_now(&app, key, "test").await.expect("starts").await.expect("task") }
    };
    let state = |key: &str| t.app.scheduler.states(&t.app).remove(key).expect("state");
    for i in 0..3 {
        t.clock.advance(chrono::Duration::minutes(61));
        run("backup-offsite").await;
        let s = state("backup-offsite");
        assert_eq!(s.last_ok, Some(true), "run {i}: {}", s.last_message);
    }
    let dest = Destination::open(&url, &t.app.config.backups.storage).expect("opens");
    let remote = dest.list().await.expect("list");
    assert_eq!(remote.len(), 2, "retention keeps the last 2 at the destination: {remote:?}");
    let local = bravely::backups::service::listing(&t.app);
    assert!(local.is_empty(), "uploaded backups do not stay on the server");

    run("backup-verify").await;
    let s = state("backup-verify");
    assert_eq!(s.last_ok, Some(true), "{}", s.last_message);
    let newest = remote.iter().map(|b| b.name.clone()).max().expect("newest");
    assert!(s.last_message.contains(&newest), "the newest remote backup was read back: {}", s.last_message);

    // The page lists them (loaded after the page) and streams a download.
    t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    let (status, html) = c.text("/backups/remote/offsite").await;
    assert_eq!(status, 200);
    assert!(html.contains(&newest) && html.contains("yes, "), "listed and verified: {html}");
    let r = c.get(&format!("/backups/remote/offsite/{newest}/download")).await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.expect("body");
    let work = tempfile::tempdir().expect("tempdir");
    let copy = work.path().join(&newest);
    std::fs::write(&copy, &bytes).expect("write");
    archive::verify(&copy, None).expect("the streamed download verifies");
    assert_eq!(c.get("/backups/remote/database/x.bravely-backup/download").await.status(), 404, "local policy");

    // The storage goes away: the run fails, the backup stays on this server.
    drop(s3);
    t.clock.advance(chrono::Duration::minutes(61));
    run("backup-offsite").await;
    let s = state("backup-offsite");
    assert_eq!(s.last_ok, Some(false));
    assert!(s.last_message.contains("kept on this server"), "{}", s.last_message);
    let local = bravely::backups::service::listing(&t.app);
    assert_eq!(local.len(), 1, "the failed upload kept the local copy");
    archive::verify(&t.app.config.data_dir.join("backups").join(&local[0].name), None).expect("intact");
}
