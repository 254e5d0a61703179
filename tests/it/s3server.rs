//! A real S3-compatible server for the tests: `s3s-fs` (pinned 0.14.1), which checks SigV4
//! signatures, started on 127.0.0.1 on a free port with a temporary root and test credentials,
//! and stopped by PID when dropped.
//!
//! `tests/run.sh` installs it (deps step) into `~/.cargo/bravely-tools/s3s-fs-0.14.1/` and
//! passes its path as `$S3S_FS_BIN`; without that variable the tests look in that directory,
//! then on `PATH`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bravely::backups::destination::{S3Options, StorageOptions};
use bravely::config::Secret;

pub const VERSION: &str = "0.14.1";
pub const ACCESS_KEY: &str = "bravely-test-access";
pub const SECRET_KEY: &str = "bravely-test-secret-key-0123456789";
pub const BUCKET: &str = "bravely-backups";

pub struct S3Server {
    pub endpoint: String,
    pub root: tempfile::TempDir,
    child: Child,
}

fn tools_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("BRAVELY_TOOLS_DIR") {
        return Some(d.into());
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(cargo_home.join("bravely-tools"))
}

fn install_hint() -> String {
    format!(
        "s3s-fs {VERSION} (the S3-compatible server these tests run against) is not installed. \
         `./tests/run.sh` installs it in its deps step; or run `cargo install --locked --debug s3s-fs@{VERSION} \
         --features binary --root ~/.cargo/bravely-tools/s3s-fs-{VERSION}`, or set S3S_FS_BIN to its path"
    )
}

/// The binary: `$S3S_FS_BIN`, the test command's install, or `s3s-fs` on PATH.
fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("S3S_FS_BIN").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let installed = tools_dir()?.join(format!("s3s-fs-{VERSION}/bin/s3s-fs"));
    if installed.is_file() {
        return Some(installed);
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join("s3s-fs")).find(|p| p.is_file())
}

impl S3Server {
    /// Starts the server with an empty bucket [`BUCKET`].
    pub fn start() -> S3Server {
        let bin = binary().unwrap_or_else(|| panic!("{}", install_hint()));
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket directory");
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0", "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .env("RUST_LOG", "s3s_fs=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        // The server logs "server is running at http://127.0.0.1:PORT"; keep draining its output
        // afterwards so it never blocks on a full pipe.
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("server is running at ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(line[i + "server is running at ".len()..].trim().to_string());
                }
            }
        });
        let endpoint = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("s3s-fs ({}) did not report its address within 20 s", bin.display());
            }
        };
        S3Server { endpoint, root, child }
    }

    /// Storage options for this server, path-style, plain HTTP, no retries.
    pub fn options(&self) -> StorageOptions {
        StorageOptions {
            retries: 0,
            s3: S3Options {
                endpoint: Some(self.endpoint.clone()),
                region: Some("us-east-1".into()),
                access_key_id: Some(ACCESS_KEY.into()),
                secret_access_key: Some(Secret::new(SECRET_KEY)),
                allow_http: true,
                ..S3Options::default()
            },
            ..StorageOptions::default()
        }
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// Files the server keeps for a bucket (its on-disk layout mirrors the keys).
    pub fn files(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().to_string());
                }
            }
        }
        let mut out = vec![];
        walk(self.root.path(), self.root.path(), &mut out);
        out.sort();
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
