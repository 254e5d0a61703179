//! Zero-downtime restarts under socket activation. The test plays systemd: it holds the
//! listening socket and starts `bravely serve` with it as fd 3 (`LISTEN_FDS=1`, `LISTEN_PID` set
//! to the server's pid), while clients keep sending requests. The binary is replaced on disk, the
//! old process is stopped with SIGTERM and a new one is started on the same socket, twice; no
//! request may fail.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};

/// Starts `bin serve` on `listener` the way systemd does, and waits for its "listening" line.
fn start_activated(bin: &Path, listener: &TcpListener, data: &Path) -> Child {
    let fd = listener.as_fd().try_clone_to_owned().expect("dup the listening socket");
    let mut cmd = Command::new("/bin/sh");
    // `exec` keeps the shell's pid, so `$$` is the server's pid, as LISTEN_PID must be.
    cmd.arg("-c")
        .arg(r#"export LISTEN_PID=$$; exec "$0" "$@""#)
        .arg(bin)
        .args(["serve", "--data-dir"])
        .arg(data)
        .env("LISTEN_FDS", "1")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.fd_mappings(vec![FdMapping { parent_fd: fd, child_fd: 3 }]).expect("fd 3");
    let mut child = cmd.spawn().expect("spawn server");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    loop {
        let line = lines.next().expect("the server logs before it serves").expect("utf8");
        if line.contains("listening on http://") {
            assert!(line.contains("socket from systemd"), "the server uses the passed socket: {line}");
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// SIGTERM, then wait for the graceful exit.
fn stop(child: &mut Child) {
    let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill runs");
    assert!(ok.success());
    let status = child.wait().expect("reaped");
    assert!(status.success(), "a clean exit after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarts_under_load_lose_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The "installed" binary, replaced on disk at each deploy as `cp` + `mv` would.
    let installed = dir.path().join("bravely");
    std::fs::copy(env!("CARGO_BIN_EXE_bravely"), &installed).expect("install");

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut server = start_activated(&installed, &listener, &data);

    // Every request on a new connection, as browsers arriving during a deploy would.
    bravely::tls::install();
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(20)).build().expect("client");
    let stop_load = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (http, base, stop_load, ok) = (http.clone(), base.clone(), stop_load.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            // Bounded in time and count.
            for _ in 0..200_000 {
                if stop_load.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                // The login page waits for the read models, so it is answered only once the
                // new process has loaded them.
                match http.get(format!("{base}/login")).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(format!("{e:?}")),
                }
            }
            failures
        }));
    }

    let wait_for_more = |n: usize| {
        let ok = ok.clone();
        async move {
            let target = ok.load(Ordering::Relaxed) + n;
            let t = Instant::now();
            while ok.load(Ordering::Relaxed) < target && t.elapsed() < Duration::from_secs(20) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(ok.load(Ordering::Relaxed) >= target, "the load generator makes progress");
        }
    };
    wait_for_more(200).await;
    let mut restarts = Vec::new();
    for _ in 0..2 {
        let replaced = dir.path().join("bravely.new");
        std::fs::copy(env!("CARGO_BIN_EXE_bravely"), &replaced).expect("copy the new binary");
        std::fs::rename(&replaced, &installed).expect("replace the binary");
        let before = ok.load(Ordering::Relaxed);
        let t = Instant::now();
        stop(&mut server);
        server = start_activated(&installed, &listener, &data);
        restarts.push(t.elapsed());
        wait_for_more(200).await;
        assert!(ok.load(Ordering::Relaxed) > before);
    }
    stop_load.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.expect("client task"));
    }
    stop(&mut server);
    let answered = ok.load(Ordering::Relaxed);
    eprintln!("restart test: {answered} requests answered, {} failed; restarts took {restarts:?}", failures.len());
    assert!(failures.is_empty(), "{} of {} requests failed, e.g. {:?}", failures.len(), answered, failures.first());
    assert!(answered >= 600);
}
