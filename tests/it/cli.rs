use std::process::{Command, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bravely")
}

#[test]
fn unknown_config_keys_are_rejected_with_their_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bravely.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nlisten_port = 9\n").expect("write");
    let out = Command::new(bin())
        .args([
            "--config",
            cfg.to_str().unwrap_or_default(),
            "--data-dir",
            dir.path().to_str().unwrap_or_default(),
            "demo",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_port") && err.contains("configuration error"), "{err}");
}

#[test]
fn user_add_reads_the_password_from_stdin_and_refuses_weak_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |pw: &str| {
        use std::io::Write;
        let mut child = Command::new(bin())
            .args(["user", "add", "--email", "ops@example.com", "--name", "Ops", "--superuser", "--data-dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(pw.as_bytes()).expect("write");
        child.wait_with_output().expect("wait")
    };
    let weak = run("short\n");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 10 characters"));
    let ok = run("a long enough password\n");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("created user 1 <ops@example.com> (superuser)"));
}

#[test]
fn a_second_process_gets_a_clear_message_while_the_server_holds_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::harness::BinaryServer::start(dir.path());
    // The setup link follows the "listening" line once the data is loaded.
    let log = server.wait_for_log(|lines| lines.iter().any(|l| l.contains("/setup/")));
    let saw_setup = log.iter().any(|l| l.contains("/setup/"));
    let out = Command::new(bin())
        .args(["demo", "--employees", "1", "--items", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    drop(server);
    assert!(saw_setup, "an empty database logs the one-time setup link");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another running bravely process"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
