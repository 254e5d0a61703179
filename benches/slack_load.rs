//! Load client for `POST /slack/commands`: every request is a distinct, validly signed
//! `/thanks`, against the release binary on 127.0.0.1. Run with
//! `cargo bench --bench slack_load` (env: BRAVELY_BIN, DURATION seconds, CONNECTIONS, PEOPLE).
//! With `LOADGEN=wrk` the requests are signed here beforehand (timestamps of the run's start,
//! well within Slack's five minutes) and wrk sends them, each once: the load generator then
//! costs the shared cores far less than this process's HTTP client does.
//! Afterwards it stops the server and counts the stored thanks: every acknowledged thanks
//! must be there.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-signing-secret";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; test runners probing every target (`--list`, or none) get
    // nothing: this is a load run, not a test.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let bin = std::env::var("BRAVELY_BIN").unwrap_or_else(|_| "target/release/bravely".into());
    let seconds: u64 = env_or("DURATION", 10);
    let connections: usize = env_or("CONNECTIONS", 16);
    if !std::path::Path::new(&bin).exists() {
        eprintln!("{bin} not found: run `cargo build --release` first (or set BRAVELY_BIN)");
        std::process::exit(2);
    }
    let people: u64 = env_or("PEOPLE", 500);
    let dir = tempfile::tempdir().expect("tempdir");
    // The bench sends far more thanks per person than the daily cap allows: raise it first.
    {
        let config = bravely::config::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
        let app = bravely::App::open(config, bravely::clock::Clock::system()).expect("open");
        app.store
            .write_blocking(bravely::store::Actor::system("bench"), |tx| {
                let s = bravely::kudos::KudosSettings { daily_cap: 1_000_000, ..Default::default() };
                tx.insert(&s)?;
                Ok(())
            })
            .expect("settings");
        app.store.shutdown();
        drop(app);
    }
    let mut server = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BRAVELY_SLACK_SIGNING_SECRET", SECRET)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("server starts");
    let mut lines = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let base = loop {
        let line = lines.next().expect("server output").expect("utf8");
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on ".len()..].trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let outcome = if std::env::var("LOADGEN").as_deref() == Ok("wrk") {
        with_wrk(&base, seconds, connections, people)
    } else {
        with_reqwest(&base, seconds, connections, people)
    };
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", server.id()))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .unwrap_or_default();
    // Stop the server (SIGTERM through `kill`), then count what is stored.
    let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
    let _ = server.wait();
    let config = bravely::config::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
    let app = bravely::App::open(config, bravely::clock::Clock::system()).expect("reopen");
    let stored = app
        .store
        .read()
        .expect("read")
        .count(<bravely::kudos::Thanks as bravely::store::Entity>::TABLE)
        .expect("count");
    app.store.shutdown();
    let Outcome { ok, errors, elapsed, latency } = outcome;
    let loadgen = std::env::var("LOADGEN").unwrap_or_else(|_| "reqwest".into());
    println!("slack /thanks load ({loadgen}): {connections} connections, {:.1} s", elapsed.as_secs_f64());
    // Requests still in flight when the run stops count as not acknowledged (about one per connection).
    println!("  acknowledged thanks: {ok} ({:.0}/s), not acknowledged: {errors}", ok as f64 / elapsed.as_secs_f64());
    println!("  latency {latency}");
    println!("  stored after shutdown: {stored} (must be >= acknowledged); server {rss_kb}");
    if stored < ok {
        eprintln!("LOST WRITES: {} acknowledged thanks are missing", ok - stored);
        std::process::exit(1);
    }
}

struct Outcome {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latency: String,
}

/// One thanks request, `n` of the run: (form body, timestamp, signature).
fn signed(n: u64, people: u64, ts: &str) -> (String, String) {
    // A company of PEOPLE people thanking each other: every request is a distinct thanks (its
    // own trigger id and reason) between two of them.
    let giver = n % people;
    let receiver = (n * 7 + 1) % people;
    let receiver = if receiver == giver { (receiver + 1) % people } else { receiver };
    let body = serde_urlencoded::to_string([
        ("team_id", "T1"),
        ("channel_id", "C1"),
        ("user_id", format!("U{giver:06}").as_str()),
        ("user_name", "bench"),
        ("command", "/thanks"),
        ("text", format!("<@U{receiver:06}|peer> for load test #{n}").as_str()),
        ("response_url", "https://hooks.slack.com/commands/x"),
        ("trigger_id", format!("bench.{n}").as_str()),
    ])
    .expect("form");
    let sig = bravely::kudos::slack::signature(SECRET, ts, body.as_bytes());
    (body, sig)
}

fn with_reqwest(base: &str, seconds: u64, connections: usize, people: u64) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (ok, latencies, errors, elapsed) = rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().expect("client");
        let counter = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (client, base, counter, errors) = (client.clone(), base.to_string(), counter.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    // A company of PEOPLE people thanking each other: every request is a distinct
                    // thanks (its own trigger id and reason) between two of them.
                    let ts = chrono::Utc::now().timestamp().to_string();
                    let (body, sig) = signed(n, people, &ts);
                    let t0 = Instant::now();
                    let res = client
                        .post(format!("{base}/slack/commands"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("X-Slack-Request-Timestamp", ts)
                        .header("X-Slack-Signature", sig)
                        .body(body)
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 200 => match r.text().await {
                            Ok(t) if t.contains("in_channel") => lat.push(t0.elapsed()),
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        let elapsed = started.elapsed();
        (all.len() as u64, all, errors.load(Ordering::Relaxed), elapsed)
    });
    let mut lat = latencies;
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    let latency = format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.9).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    Outcome { ok, errors, elapsed, latency }
}

/// Signs enough requests for the run up front, then lets wrk send them, each once.
fn with_wrk(base: &str, seconds: u64, connections: usize, people: u64) -> Outcome {
    use std::io::Write;
    let work = tempfile::tempdir().expect("tempdir");
    let requests = work.path().join("requests.tsv");
    // 30,000 a second is well above what two cores reach; running out would show as errors.
    let count = seconds * 30_000;
    let ts = chrono::Utc::now().timestamp().to_string();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&requests).expect("file"));
        for n in 0..count {
            let (body, sig) = signed(n, people, &ts);
            writeln!(f, "{sig}\t{ts}\t{body}").expect("write");
        }
    }
    let script = work.path().join("thanks.lua");
    std::fs::write(&script, WRK_SCRIPT).expect("script");
    let threads = 2;
    let started = Instant::now();
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{seconds}s")])
        .args(["--latency", "--timeout", "10s", "-s"])
        .arg(&script)
        .arg(base)
        .env("REQUESTS", &requests)
        .env("WRK_THREADS", threads.to_string())
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    let field = |key: &str| -> u64 {
        text.lines().find_map(|l| l.trim().strip_prefix(key)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    let pct = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
    };
    let max = text
        .lines()
        .find(|l| l.trim_start().starts_with("Latency") && l.split_whitespace().count() >= 4)
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        .unwrap_or_default();
    let ok = field("acknowledged:");
    let sent = field("sent:");
    // wrk's own duration excludes its start-up; the rate uses the requests it timed.
    let timed = text
        .lines()
        .find_map(|l| l.split(" requests in ").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|d| d.trim().strip_suffix('s'))
        .and_then(|d| d.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(elapsed);
    Outcome {
        ok,
        errors: sent.saturating_sub(ok),
        elapsed: timed,
        latency: format!(
            "p50 {}, p90 {}, p99 {}, max {max} (wrk)",
            pct("50%").unwrap_or_default(),
            pct("90%").unwrap_or_default(),
            pct("99%").unwrap_or_default()
        ),
    }
}

/// Requests are formatted once, in `init`; `request` only hands out the next one. There is no
/// `response` callback: with one, wrk copies every response's headers and body into Lua, which
/// cost the shared cores more than the server's own parsing. Every 2xx is counted as
/// acknowledged, and the count of stored thanks afterwards proves each was a recorded thanks
/// (a 200 carrying an error message would store nothing and fail the run).
const WRK_SCRIPT: &str = r#"
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
-- Globals, not locals: done() reads them through thread:get.
reqs, i = {}, 0
function init(args)
  local every = tonumber(os.getenv("WRK_THREADS"))
  local n = 0
  for line in io.lines(os.getenv("REQUESTS")) do
    if n % every == tid then
      local sig, ts, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/slack/commands", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Slack-Request-Timestamp"] = ts,
        ["X-Slack-Signature"] = sig,
      }, body)
    end
    n = n + 1
  end
end
function request()
  i = i + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local sent = 0
  for _, t in ipairs(threads) do sent = sent + t:get("i") end
  -- Completed requests minus those answered with a non-2xx/3xx status.
  io.write(string.format("sent: %d\nacknowledged: %d\n", sent, summary.requests - summary.errors.status))
end
"#;
