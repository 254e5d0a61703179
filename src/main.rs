use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use bravely::App;
use bravely::clock::Clock;
use bravely::config::{Config, LogFormat, Overrides};
use bravely::store::Actor;

/// mimalloc on every target: musl's own allocator serialises a multi-threaded server (the list
/// benchmark ran 4x slower with it), and glibc's took a fifth of the writer thread's time in the
/// `/thanks` benchmark. Benchmarks of the glibc build thus measure the allocator that ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bravely", version, about = "Internal operations platform for software companies")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct Global {
    /// Data directory (database, secret key, uploads).
    #[arg(long, env = "BRAVELY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Optional TOML configuration file.
    #[arg(long, env = "BRAVELY_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (the default).
    Serve(ServeArgs),
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Fill the data directory with realistic demo data.
    Demo(DemoArgs),
    /// Make, check and restore backups.
    Backup {
        #[command(subcommand)]
        cmd: BackupCmd,
    },
    /// Manage personal API tokens.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Check a database file completely: redb's integrity check of every page, then that every
    /// row of every table decodes and matches its indexes. The file is only read. Exits 1 with
    /// a report when anything is wrong.
    Check {
        /// The file to check (default: the data directory's bravely.redb, with the server
        /// stopped); a copy or snapshot works too.
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create an API token for a user (the server must be stopped; while it runs, use the API
    /// tokens page). The token is printed once, alone on standard output.
    Add {
        #[arg(long)]
        email: String,
        /// What the token is for, e.g. "nightly backup script".
        #[arg(long)]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_days: Option<i64>,
    },
}

#[derive(Subcommand)]
enum BackupCmd {
    /// Write a backup of the data directory (the server must be stopped; while it runs, use its
    /// Backups page).
    Create {
        /// Where to write it (default: <data dir>/backups/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Then copy it to this destination: a directory, s3://bucket/prefix, gs://…, az://…
        /// (options in [backups.storage]). The local copy is kept either way.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
    },
    /// Check a backup: archive, checksums, that the snapshot opens, row counts. FILE may be a
    /// destination URL of a backup (s3://bucket/prefix/NAME): it is downloaded first.
    Verify {
        file: String,
        #[command(flatten)]
        key: PassphraseArg,
    },
    /// Replace the data with a backup (the server must be stopped). The current database is
    /// kept beside it as bravely.redb.before-restore-<time>. FILE may be a destination URL.
    Restore {
        file: String,
        #[command(flatten)]
        key: PassphraseArg,
    },
}

#[derive(Args)]
struct PassphraseArg {
    /// For an encrypted backup: a file holding its passphrase (by default the passphrase of the
    /// configured policy that made it).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

/// The passphrase for an encrypted backup: from `--passphrase-file`, else from the policy
/// named in its manifest.
fn backup_passphrase(
    config: &Config,
    file: &std::path::Path,
    given: Option<&std::path::Path>,
) -> anyhow::Result<Option<bravely::config::Secret>> {
    if let Some(path) = given {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Some(bravely::config::Secret::new(text.trim_end_matches(['\n', '\r']))));
    }
    Ok(bravely::backups::archive::read_manifest(file)
        .and_then(|m| bravely::backups::policy::passphrase_for(config, &m.policy)))
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BRAVELY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Fill an empty database with demo data before starting.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        superuser: bool,
    },
}

#[derive(Args)]
struct DemoArgs {
    #[arg(long, default_value_t = 40)]
    employees: usize,
    #[arg(long, default_value_t = 90)]
    items: usize,
    /// `/thanks` over the last four months between the new employees (default: 3 per employee)
    #[arg(long)]
    thanks: Option<usize>,
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BRAVELY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.with_ansi(ansi).init(),
    }
}

fn main() {
    bravely::tls::install();
    let cli = Cli::parse();
    let listen = match &cli.command {
        Some(Command::Serve(s)) => s.listen,
        None => std::env::var("BRAVELY_LISTEN").ok().and_then(|v| v.parse().ok()),
        _ => None,
    };
    let overrides = Overrides { listen, data_dir: cli.global.data_dir.clone() };
    let config = match Config::load(cli.global.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bravely: configuration error: {e:#}");
            std::process::exit(2);
        }
    };
    init_logs(config.log_format);
    // Before any other thread starts, so the panic hook covers them all. Dropping the guard at
    // the end of `main` flushes queued events.
    let reporting = match bravely::reporting::init_from_env() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("bravely: configuration error: {e:#}");
            std::process::exit(2);
        }
    };
    if reporting.is_some() {
        tracing::info!("reporting errors to Sentry");
    }
    let result = match cli.command {
        None => serve(config, ServeArgs::default()),
        Some(Command::Serve(a)) => serve(config, a),
        Some(Command::User { cmd: UserCmd::Add { email, name, superuser } }) => {
            user_add(config, email, name, superuser)
        }
        Some(Command::Demo(a)) => demo(config, a.employees, a.items, a.thanks.unwrap_or(a.employees * 3)),
        Some(Command::Backup { cmd }) => backup(config, cmd),
        Some(Command::Token { cmd: TokenCmd::Add { email, name, expires_days } }) => {
            token_add(config, email, name, expires_days)
        }
        Some(Command::Check { file }) => check(config, file),
    };
    drop(reporting);
    if let Err(e) = result {
        eprintln!("bravely: {e:#}");
        std::process::exit(1);
    }
}

fn check(config: Config, file: Option<PathBuf>) -> anyhow::Result<()> {
    use bravely::store::StoreError;
    let path = file.unwrap_or_else(|| config.db_path());
    let report = match bravely::store::check::check_file(&path, &bravely::stored_types()) {
        Ok(r) => r,
        Err(StoreError::InUse(_)) => anyhow::bail!(
            "{} is open in a running server, and a check needs the file to itself. Stop the server first, \
             or check the live database through its weekly job (run \"{}\" now on the Scheduled jobs page)",
            path.display(),
            bravely::jobs::integrity::KEY
        ),
        Err(e) => anyhow::bail!("cannot check {}: {e}", path.display()),
    };
    print!("{}", report.text());
    if report.ok() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{} is damaged\n{}", path.display(), bravely::store::recovery_hint(&path)))
    }
}

fn open(config: Config) -> anyhow::Result<App> {
    App::open(config, Clock::system())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let listen = config.listen;
    // A restore asked for on the web page happens here, before the database is opened.
    bravely::backups::restore::carry_out_pending(&config, Clock::system().now());
    let app = open(config)?;
    if args.demo && {
        app.store.ready_blocking()?;
        app.registry.get("employees").is_some_and(|r| r.model().is_empty())
    } {
        tracing::info!("empty database: adding demo data");
        bravely::demo::fill(
            &app.store,
            &bravely::demo::Plan { employees: 40, items: 90, thanks: 150 },
            app.currency,
            app.today(),
            app.tz,
            &|_, _| {},
        )?;
    }
    let rt = runtime()?;
    let restart_on = rt.block_on(async move {
        // A file size limit (ulimit -f, systemd's LimitFSIZE) reached by a commit must be a
        // storage error, which stops the store and fails the health checks with the reason;
        // the signal's default action would kill the process without a word.
        #[cfg(unix)]
        let _file_size_limit =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ)).ok();
        let (std_listener, activated) = match activated_listener()? {
            Some(l) => (l, true),
            None => (std::net::TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?, false),
        };
        let addr = std_listener.local_addr()?;
        if activated {
            tracing::info!("listening on http://{addr} (socket from systemd; `listen` is not used)");
        } else {
            tracing::info!("listening on http://{addr}");
        }
        if app.config.metrics_token.is_none() {
            tracing::info!("GET /metrics is off: set metrics_token (BRAVELY_METRICS_TOKEN) to turn it on");
        }
        // The read models load while health checks are answered: if the data cannot be loaded
        // (a damaged page the open did not read), nothing could ever be served, so stop with
        // the reason and the way out instead of answering 503 forever.
        let loading = app.clone();
        tokio::spawn(async move {
            if let Err(e) = loading.store.ready().await {
                eprintln!("bravely: {e}");
                std::process::exit(1);
            }
        });
        let first_run = app.clone();
        tokio::spawn(async move {
            if let Some(link) = first_run.setup_link().await {
                tracing::warn!(
                    "no users yet: open http://{addr}{link} to create the first administrator (the link works once)"
                );
            }
        });
        let sessions = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                let _ = sessions.auth.sessions.sweep(&sessions.store).await;
            }
        });
        let recorder = app.clone();
        tokio::spawn(async move {
            if recorder.store.ready().await.is_ok() {
                bravely::backups::restore::record_outcome(&recorder).await;
            }
        });
        tokio::spawn(bravely::jobs::run_loop(app.clone()));
        // Kept for a self-restart (a restore from the web page): the next process serves it.
        let kept = std_listener.try_clone()?;
        app.restarter.enable();
        let stop = {
            let app = app.clone();
            async move {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = app.restarter.wait() => tracing::warn!("restarting to carry out a restore"),
                }
            }
        };
        bravely::server::run(app.clone(), std_listener, stop).await?;
        app.store.shutdown();
        tracing::info!("stopped");
        anyhow::Ok(app.restarter.requested().then_some(kept))
    })?;
    // Ends background tasks, and with them every handle on the database.
    drop(rt);
    match restart_on {
        Some(listener) => Err(reexec(listener)),
        None => Ok(()),
    }
}

/// Replaces this process with a fresh `bravely` (same arguments), handing it the listening
/// socket as systemd would (`LISTEN_FDS`), so connections that arrive meanwhile wait in the
/// kernel queue. Returns only on failure.
#[cfg(unix)]
#[allow(unsafe_code)] // two fd syscalls std does not offer; nothing else in the crate is unsafe
fn reexec(listener: std::net::TcpListener) -> anyhow::Error {
    use std::os::unix::io::AsRawFd;
    use std::os::unix::process::CommandExt;
    const FIRST: i32 = 3; // SD_LISTEN_FDS_START
    let fd = listener.as_raw_fd();
    // SAFETY: plain fd syscalls on a descriptor this function owns; the process image is
    // replaced right after.
    let ok =
        unsafe { if fd == FIRST { libc::fcntl(fd, libc::F_SETFD, 0) == 0 } else { libc::dup2(fd, FIRST) == FIRST } };
    if !ok {
        return anyhow::anyhow!("cannot hand the listening socket over: {}", std::io::Error::last_os_error());
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "bravely".into());
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", std::process::id().to_string())
        .env_remove("LISTEN_FDNAMES")
        .exec();
    anyhow::anyhow!("cannot restart: {err}")
}

#[cfg(not(unix))]
fn reexec(_listener: std::net::TcpListener) -> anyhow::Error {
    anyhow::anyhow!("restarting in place needs a Unix system; start the server again")
}

/// The listening socket passed by systemd socket activation (`LISTEN_FDS`, with `LISTEN_PID`
/// naming this process), if any. A restart then loses no connection: the socket stays open in
/// systemd while one process drains and the next one opens the database, and the kernel queues
/// the connections that arrive meanwhile.
fn activated_listener() -> anyhow::Result<Option<std::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    if fds.len() > 1 {
        tracing::warn!(sockets = fds.len(), "systemd passed several sockets; serving the first one only");
    }
    fds.take_tcp_listener(0).context("the socket from systemd (LISTEN_FDS) is not a TCP listener")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing requests in flight");
}

fn user_add(config: Config, email: String, name: String, superuser: bool) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    let email = email.trim().to_lowercase();
    if !bravely::auth::model::valid_email(&email) {
        anyhow::bail!("{email:?} is not a valid email address");
    }
    bravely::auth::password::check_strength(&password, &email).map_err(|m| anyhow::anyhow!("password: {m}"))?;
    let hash = bravely::auth::password::hash(&password)?;
    let app = open(config)?;
    let rt = runtime()?;
    let id = rt
        .block_on(bravely::auth::handlers::create_user(
            &app,
            Actor::system("bravely user add"),
            email.clone(),
            name,
            Some(hash),
            superuser,
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    app.store.shutdown();
    println!("created user {id} <{email}>{}", if superuser { " (superuser)" } else { "" });
    Ok(())
}

fn token_add(config: Config, email: String, name: String, expires_days: Option<i64>) -> anyhow::Result<()> {
    use bravely::tokens::service::{NewToken, create};
    let days = expires_days.map(|d| d.to_string()).unwrap_or_default();
    let new = NewToken::parse(&name, &days).map_err(|e| anyhow::anyhow!("{e}"))?;
    let email = email.trim().to_lowercase();
    let app = open(config)?;
    app.store.ready_blocking()?;
    let user = app.store.read()?.find_unique::<bravely::auth::User>("email", &email)?;
    let Some((user_id, user)) = user else {
        app.store.shutdown();
        anyhow::bail!("there is no user with the email {email:?}");
    };
    let created = app.store.write_blocking(Actor::system("bravely token add"), move |tx| create(tx, user_id, new));
    app.store.shutdown();
    let (id, token) = created.map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "created API token {id} for {} <{}>{}; it is shown only now:",
        user.name,
        user.email,
        expires_days.map(|d| format!(", expiring in {d} days")).unwrap_or_default()
    );
    println!("{token}");
    Ok(())
}

/// A backup named on the command line: a local file, or a destination URL downloaded into a
/// temporary directory in the data directory (removed when this is dropped).
struct BackupSource {
    file: PathBuf,
    label: String,
    _download: Option<tempfile::TempDir>,
}

fn backup_source(config: &Config, arg: &str) -> anyhow::Result<BackupSource> {
    use bravely::backups::destination::{Destination, is_url};
    if !is_url(arg) {
        return Ok(BackupSource { file: PathBuf::from(arg), label: arg.to_string(), _download: None });
    }
    let (dest, name) = Destination::open_object(arg, &config.backups.storage)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&config.data_dir)
        .with_context(|| format!("cannot make a temporary directory in {}", config.data_dir.display()))?;
    let file = tmp.path().join(&name);
    let label = dest.url_of(&name);
    eprintln!("downloading {label}");
    runtime()?.block_on(dest.download_to(&name, &file))?;
    Ok(BackupSource { file, label, _download: Some(tmp) })
}

impl BackupSource {
    /// A verify or restore error naming the backup as the user did, not the temporary copy.
    fn explain(&self, e: bravely::backups::BackupError) -> anyhow::Error {
        anyhow::anyhow!("{}", e.to_string().replace(&self.file.display().to_string(), &self.label))
    }
}

/// Uploads `file` to `url` with a progress bar; the local file is never touched.
fn upload_backup(config: &Config, url: &str, file: &std::path::Path) -> anyhow::Result<String> {
    use bravely::backups::destination::Destination;
    let dest = Destination::open(url, &config.backups.storage)?;
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).context("the backup file has no name")?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = runtime()?.block_on(dest.upload(file, &name, &|p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    }));
    bar.finish_and_clear();
    result?;
    Ok(dest.url_of(&name))
}

fn backup(config: Config, cmd: BackupCmd) -> anyhow::Result<()> {
    match cmd {
        BackupCmd::Create { out, to } => {
            // Check the destination before the backup: a typo should not cost a snapshot.
            if let Some(url) = &to {
                bravely::backups::destination::Destination::open(url, &config.backups.storage)?;
            }
            let app = open(config.clone())?;
            let out = out.unwrap_or_else(|| {
                bravely::backups::dir(&config.data_dir).join(bravely::backups::new_name(app.store.now(), "manual"))
            });
            let m = bravely::backups::archive::create(&app.store, &out, "manual")?;
            app.store.shutdown();
            println!("wrote {} ({} tables, {} rows)", out.display(), m.tables.len(), m.tables.values().sum::<u64>());
            if let Some(url) = to {
                match upload_backup(&config, &url, &out) {
                    Ok(remote) => println!("uploaded to {remote}"),
                    Err(e) => {
                        return Err(e.context(format!("the upload failed; the backup is kept at {}", out.display())));
                    }
                }
            }
        }
        BackupCmd::Verify { file, key } => {
            let src = backup_source(&config, &file)?;
            let pass = backup_passphrase(&config, &src.file, key.passphrase_file.as_deref())?;
            let c = bravely::backups::archive::verify_in(
                &src.file,
                pass.as_ref(),
                None,
                &bravely::backups::reader::Limits::of(&config),
            )
            .map_err(|e| src.explain(e))?;
            let m = &c.manifest;
            if !c.contents_checked {
                println!(
                    "{}: the encrypted payload matches its checksum (made {}); give --passphrase-file to check the contents",
                    src.label,
                    m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                );
                return Ok(());
            }
            println!(
                "{} is sound: made {} by bravely {}, {} tables, {} rows, checksum and row counts match",
                src.label,
                m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                m.app_version,
                m.tables.len(),
                m.tables.values().sum::<u64>()
            );
        }
        BackupCmd::Restore { file, key } => {
            let src = backup_source(&config, &file)?;
            let pass = backup_passphrase(&config, &src.file, key.passphrase_file.as_deref())?;
            let (m, kept) = bravely::backups::archive::restore_offline_in(
                &config.data_dir,
                &src.file,
                pass.as_ref(),
                Clock::system().now(),
                config.backups.max_expanded_bytes(),
            )
            .map_err(|e| src.explain(e))?;
            println!("restored {} (made {})", src.label, m.created_at.format("%Y-%m-%d %H:%M:%S UTC"));
            if let Some(k) = kept {
                println!("the previous database is kept as {}", k.display());
            }
        }
    }
    Ok(())
}

fn demo(config: Config, employees: usize, items: usize, thanks: usize) -> anyhow::Result<()> {
    let app = open(config)?;
    let bar = indicatif::ProgressBar::new((employees + items) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} rows ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let filled = bravely::demo::fill(
        &app.store,
        &bravely::demo::Plan { employees, items, thanks },
        app.currency,
        app.today(),
        app.tz,
        &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    app.store.shutdown();
    println!("added {employees} employees, {items} items and {} thanks in {:.1?}", filled.thanks, started.elapsed());
    Ok(())
}
