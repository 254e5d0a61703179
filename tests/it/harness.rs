//! Spawns the real app on port 0 with a temporary data directory and a manual clock.

use std::net::SocketAddr;

use bravely::App;
use bravely::clock::Clock;
use bravely::config::Config;
use bravely::store::Actor;
use chrono::{DateTime, Utc};

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub app: App,
    pub addr: SocketAddr,
    pub clock: Clock,
    /// Removed when the test ends.
    pub _dir: tempfile::TempDir,
    stop: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").expect("valid").with_timezone(&Utc)
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::spawn_in(dir).await
    }

    pub async fn spawn_in(dir: tempfile::TempDir) -> TestApp {
        Self::spawn_with(dir, |_| {}).await
    }

    /// Spawns with a configuration changed by `tweak` (the data directory is set already).
    pub async fn spawn_with(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_custom(dir, tweak, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with a changed configuration and routes the app does not ship.
    pub async fn spawn_custom(
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut Config),
        extra_routes: impl FnOnce(&mut bravely::web::Routes),
    ) -> TestApp {
        // Bound first, so that the configuration can name the address (public_url).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            public_url: Some(format!("http://{addr}")),
            ..Config::default()
        };
        configure(&mut config);
        let clock = Clock::manual(start_time());
        let app = App::open(config, clock.clone()).expect("app opens");
        app.store.ready().await.expect("data loads");
        let acceptor = poem::listener::TcpAcceptor::from_std(listener).expect("acceptor");
        let ep = app.endpoint_with(extra_routes);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(ep, async move { drop(rx.await) }, Some(std::time::Duration::from_secs(5)))
                .await;
        });
        TestApp { app, addr, clock, _dir: dir, stop: Some((tx, server)) }
    }

    /// Stops the server and the store and releases the data directory (for restores).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some((tx, server)) = self.stop.take() {
            let _ = tx.send(());
            let _ = server.await;
        }
        self.app.store.shutdown();
        self._dir
    }

    /// Creates a user directly (superuser or with the given permissions).
    pub async fn user(&self, email: &str, superuser: bool, perms: &[&str]) -> u64 {
        let hash = bravely::auth::password::hash(PASSWORD).expect("hash");
        let perms: Vec<String> = perms.iter().map(|p| p.to_string()).collect();
        let email = email.to_string();
        self.app
            .store
            .write(Actor::system("test"), move |tx| {
                let u = bravely::auth::User {
                    email: email.clone(),
                    name: format!("User {email}"),
                    active: true,
                    superuser,
                    password_hash: Some(hash),
                    groups: vec![],
                    permissions: perms,
                    created_at: tx.now(),
                    last_login: None,
                };
                Ok(tx.insert(&u)?)
            })
            .await
            .expect("user created")
    }

    /// Creates an API token for a user, as the account page does, and returns its text.
    pub async fn token(&self, user_id: u64, name: &str, expires_in_days: Option<i64>) -> String {
        use bravely::tokens::service::{NewToken, create};
        let days = expires_in_days.map(|d| d.to_string()).unwrap_or_default();
        let new = NewToken::parse(name, &days).expect("valid token form");
        self.app.store.write(Actor::system("test"), move |tx| create(tx, user_id, new)).await.expect("token created").1
    }

    /// A client with a cookie jar that does not follow redirects.
    pub fn client(&self) -> Client {
        Client::new(&format!("http://{}", self.addr))
    }

    /// A signed-in client.
    pub async fn login(&self, email: &str) -> Client {
        let c = self.client();
        let r = c.login(email, PASSWORD).await;
        assert_eq!(r.status(), 303, "login of {email} should succeed");
        c
    }

    pub async fn demo(&self, employees: usize, items: usize) {
        self.demo_with(bravely::demo::Plan { employees, items, thanks: 0 }).await;
    }

    pub async fn demo_with(&self, plan: bravely::demo::Plan) -> bravely::demo::Filled {
        let store = self.app.store.clone();
        let currency = self.app.currency;
        let today = self.app.today();
        let tz = self.app.tz;
        tokio::task::spawn_blocking(move || bravely::demo::fill(&store, &plan, currency, today, tz, &|_, _| {}))
            .await
            .expect("join")
            .expect("demo data")
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf-token\" content=\"";
    let start = html.find(marker).map(|i| i + marker.len()).expect("page has a csrf meta tag");
    html[start..].split('"').next().unwrap_or_default().to_string()
}

impl Client {
    /// A client of the server at `base` with a cookie jar that does not follow redirects.
    pub fn new(base: &str) -> Client {
        // No app in this process when the server is the binary: install rustls' provider here.
        bravely::tls::install();
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_string(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).send().await.expect("request")
    }

    pub async fn text(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        let s = r.status().as_u16();
        (s, r.text().await.unwrap_or_default())
    }

    /// The CSRF token for this client's session (from any HTML page).
    pub async fn csrf(&self) -> String {
        let (_, html) = self.text("/login").await;
        if html.contains("csrf-token") {
            return csrf_of(&html);
        }
        let (_, html) = self.text("/").await;
        csrf_of(&html)
    }

    /// POSTs a form with a valid CSRF token added.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf().await;
        let mut f: Vec<(&str, &str)> = form.to_vec();
        f.push(("csrf_token", &token));
        self.http.post(format!("{}{path}", self.base)).form(&f).send().await.expect("request")
    }

    pub async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.base)).form(form).send().await.expect("request")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post("/login", &[("email", email), ("password", password), ("next", "/")]).await
    }
}

/// Rows of the first `table.list` on a page, as cell texts.
pub fn table_rows(html: &str) -> Vec<Vec<String>> {
    let doc = scraper::Html::parse_document(html);
    let row = scraper::Selector::parse("table.list tbody tr").expect("selector");
    let cell = scraper::Selector::parse("td").expect("selector");
    doc.select(&row)
        .map(|r| r.select(&cell).map(|c| c.text().collect::<String>().trim().to_string()).collect())
        .filter(|r: &Vec<String>| !(r.len() == 1 && r[0].contains("Nothing here")))
        .collect()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// `bravely user add --superuser` on a data directory, with [`PASSWORD`] on standard input.
pub fn add_superuser_with_cli(data: &std::path::Path, email: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut add = Command::new(env!("CARGO_BIN_EXE_bravely"))
        .args(["user", "add", "--email", email, "--name", "Root", "--superuser", "--data-dir"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    add.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("password");
    assert!(add.wait().expect("user add").success(), "user add succeeds");
}

/// The real binary serving a data directory on a free port; killed when dropped. Its log
/// lines are kept (and its stderr drained, so it never blocks on a full pipe).
pub struct BinaryServer {
    pub child: std::process::Child,
    pub base: String,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BinaryServer {
    pub fn start(data: &std::path::Path) -> BinaryServer {
        Self::start_with(data, &[])
    }

    /// Like [`BinaryServer::start`], with extra environment variables (log format, level...).
    pub fn start_with(data: &std::path::Path, env: &[(&str, &str)]) -> BinaryServer {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_bravely"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    // Text or JSON log lines: the address ends at a space or a quote.
                    let rest = &line[i + "listening on ".len()..];
                    let addr = rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                sink.lock().expect("log").push(line);
            }
        });
        let base = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the server says where it listens");
        BinaryServer { child, base, log }
    }

    /// Everything the server has logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Waits (at most 30 s) until the log lines satisfy `done`; returns them.
    pub fn wait_for_log(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let lines = self.log.lock().expect("log").clone();
            if done(&lines) || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
