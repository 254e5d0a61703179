//! Boot configuration: defaults < TOML file (`--config`) < `BRAVELY_*` environment < CLI flags.
//!
//! Unknown keys in the file are errors; unknown `BRAVELY_*` variables are warnings. Secrets may
//! come from `BRAVELY_<NAME>_FILE`, and [`Secret`] never prints its value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub mod reference;

/// A string that never reaches logs or `Debug` output.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Serialized redacted too (serialization exists for the configuration reference's check).
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "[redacted]" })
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"[redacted]\"" })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Directory holding `bravely.redb`, the secret key and uploaded files.
    pub data_dir: PathBuf,
    /// The URL users reach Bravely at, e.g. `https://ops.example.com`. Decides Secure cookies.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// ISO 4217 code used when a money field is entered without a currency.
    pub currency: String,
    /// IANA time zone of the company: month boundaries, "today", dates shown.
    pub time_zone: String,
    pub session: SessionConfig,
    pub login: LoginConfig,
    pub slack: SlackConfig,
    /// Bearer token that `GET /metrics` requires; without one the endpoint answers 404.
    pub metrics_token: Option<Secret>,
    pub oidc: OidcConfig,
    pub alerts: AlertsConfig,
    pub backups: BackupsConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// A Slack incoming-webhook URL: failed jobs and backups post a message there.
    pub slack_webhook_url: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupsConfig {
    /// The most a backup may expand to when it is verified or restored (its manifest's declared
    /// sizes, which are enforced too): an uploaded file that claims more is refused before
    /// anything is written.
    pub max_expanded_mib: u64,
    /// Where the default weekly full backup goes (a URL such as `s3://bucket/bravely`); without
    /// it, that policy keeps its backups in `<data dir>/backups` too.
    pub remote: Option<String>,
    /// Backup policies; when none are given, the two default ones apply (see
    /// docs/src/operators/backups.md).
    pub policies: Vec<PolicyConfig>,
    /// `[backups.storage]`: options of remote destinations (`s3://`, `gs://`, `az://`).
    pub storage: crate::backups::destination::StorageOptions,
}

impl Default for BackupsConfig {
    fn default() -> Self {
        BackupsConfig { max_expanded_mib: 10 * 1024, remote: None, policies: vec![], storage: Default::default() }
    }
}

impl BackupsConfig {
    /// [`BackupsConfig::max_expanded_mib`] in bytes.
    pub fn max_expanded_bytes(&self) -> u64 {
        self.max_expanded_mib.saturating_mul(1 << 20)
    }
}

/// One `[[backups.policies]]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Shown in the list and in file names: lowercase letters, digits and dashes.
    pub name: String,
    /// `database`, or `full` (the database plus the uploaded files under `<data dir>/files`).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Cron expression in the company's time zone, e.g. `"0 */4 * * *"`.
    pub schedule: String,
    /// `local` (`<data dir>/backups`, the default) or a URL (`s3://…`, `gs://…`, `az://…`,
    /// `file:///…`).
    #[serde(default)]
    pub destination: Option<String>,
    /// `"30 days"`, `"12 weeks"`, `"last 10"` or `"forever"` (the default).
    #[serde(default)]
    pub keep: Option<String>,
    /// Encrypts the backup with this passphrase (age, scrypt): keep it somewhere else too.
    #[serde(default)]
    pub passphrase: Option<Secret>,
    /// Reads the passphrase from this file instead.
    #[serde(default)]
    pub passphrase_file: Option<PathBuf>,
}

fn default_scope() -> String {
    "database".into()
}

/// Organisation sign-in through OpenID Connect providers (`[[oidc.providers]]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    pub providers: Vec<OidcProvider>,
}

/// One OpenID provider. Its redirect URI is `public_url` + `/auth/oidc/callback`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// Short name used in URLs (`/auth/oidc/{id}/login`): lowercase letters, digits, `-`, `_`.
    pub id: String,
    /// Shown on the sign-in button ("Sign in with {name}").
    pub name: String,
    /// Discovery reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// A file holding the client secret (read at start-up, trailing newline dropped).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Email domains allowed to sign in (at least one); `example.com` does not admit
    /// `sub.example.com`.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Requested besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Google Workspace: the id_token's `hd` claim must be one of `allowed_domains` (and the
    /// `hd` hint is sent when there is one domain).
    #[serde(default)]
    pub require_hd: bool,
    /// Trust `email` without `email_verified = true`, for providers that never send that claim
    /// but own every address they issue (Microsoft Entra ID). Off by default.
    #[serde(default)]
    pub assume_email_verified: bool,
    /// The id_token claim listing the user's groups (a string or an array of strings).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Claim value -> Bravely group name. Only these Bravely groups are synced at each sign-in.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, String>,
    /// Claim values that make a user a superuser. When set, superuser status is synced at each
    /// sign-in, except that the last active superuser is never demoted.
    #[serde(default)]
    pub superuser_groups: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

/// Who may sign in with a password (`login.password_login`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordLogin {
    Everyone,
    /// Break-glass only: everyone else signs in through an organisation provider.
    Superusers,
}

impl std::str::FromStr for PasswordLogin {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "everyone" => Ok(PasswordLogin::Everyone),
            "superusers" => Ok(PasswordLogin::Superusers),
            _ => bail!("must be \"everyone\" or \"superusers\", not {s:?}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// Verifies requests from Slack. Without it `/slack/commands` answers 503.
    pub signing_secret: Option<Secret>,
    /// Bot token (`xoxb-…`) for looking up users and posting messages; optional.
    pub bot_token: Option<Secret>,
    /// Slack's Web API (changed only by tests).
    pub api_base: String,
    /// Replies are only sent to `response_url`s starting with this.
    pub response_url_prefix: String,
    /// Channel id (`C…`) where the past month's leaderboard is posted on the 1st at 09:00
    /// (needs `bot_token` with `chat:write`); unset: no post.
    pub leaderboard_channel: Option<String>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            signing_secret: None,
            bot_token: None,
            api_base: "https://slack.com/api".into(),
            response_url_prefix: "https://hooks.slack.com/".into(),
            leaderboard_channel: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused for this long ends.
    pub idle_minutes: i64,
    /// A session ends this long after sign-in, however active.
    pub absolute_hours: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Failed attempts allowed per account within `window_minutes`.
    pub max_failures_per_account: u32,
    /// Failed attempts allowed per client IP within `window_minutes`.
    pub max_failures_per_ip: u32,
    pub window_minutes: i64,
    /// `"superusers"` turns password sign-in off for everyone else (organisation sign-in only).
    pub password_login: PasswordLogin,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            log_format: LogFormat::Text,
            currency: "EUR".into(),
            time_zone: "UTC".into(),
            session: SessionConfig::default(),
            login: LoginConfig::default(),
            slack: SlackConfig::default(),
            metrics_token: None,
            alerts: AlertsConfig::default(),
            backups: BackupsConfig::default(),
            oidc: OidcConfig::default(),
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { idle_minutes: 12 * 60, absolute_hours: 14 * 24 }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            max_failures_per_account: 5,
            max_failures_per_ip: 20,
            window_minutes: 15,
            password_login: PasswordLogin::Everyone,
        }
    }
}

/// Values given on the command line (clap also fills these from the matching env variables).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Builds the configuration from every source, in order of precedence.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut cfg = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        for (key, _) in std::env::vars() {
            let base = key.strip_suffix("_FILE").unwrap_or(&key);
            let known = reference::known_env().any(|k| k == key || k == base);
            if key.starts_with("BRAVELY_") && !known {
                tracing::warn!(variable = %key, "unknown BRAVELY_* environment variable ignored");
            }
        }
        if let Some(l) = overrides.listen {
            cfg.listen = l;
        }
        if let Some(d) = &overrides.data_dir {
            cfg.data_dir = d.clone();
        }
        cfg.read_secret_files()?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in config file {}", path.display()))
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        // toml's message already names the unknown key and lists the expected ones.
        toml::from_str::<Config>(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let read = |name: &str| -> anyhow::Result<Option<String>> {
            if let Some(v) = get(name) {
                return Ok(Some(v));
            }
            if let Some(path) = get(&format!("{name}_FILE")) {
                let v = std::fs::read_to_string(&path).with_context(|| format!("cannot read {name}_FILE ({path})"))?;
                return Ok(Some(v.trim_end_matches(['\n', '\r']).to_string()));
            }
            Ok(None)
        };
        if let Some(v) = read("BRAVELY_LISTEN")? {
            self.listen =
                v.parse().with_context(|| format!("BRAVELY_LISTEN={v:?} is not an address like 127.0.0.1:8080"))?;
        }
        if let Some(v) = read("BRAVELY_DATA_DIR")? {
            self.data_dir = v.into();
        }
        if let Some(v) = read("BRAVELY_PUBLIC_URL")? {
            self.public_url = Some(v);
        }
        if let Some(v) = read("BRAVELY_LOG_FORMAT")? {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => bail!("BRAVELY_LOG_FORMAT must be \"text\" or \"json\", not {v:?}"),
            };
        }
        if let Some(v) = read("BRAVELY_CURRENCY")? {
            self.currency = v;
        }
        if let Some(v) = read("BRAVELY_TIME_ZONE")? {
            self.time_zone = v;
        }
        if let Some(v) = read("BRAVELY_SESSION_IDLE_MINUTES")? {
            self.session.idle_minutes =
                v.parse().context("BRAVELY_SESSION_IDLE_MINUTES must be a number of minutes")?;
        }
        if let Some(v) = read("BRAVELY_SLACK_SIGNING_SECRET")? {
            self.slack.signing_secret = Some(Secret::new(v));
        }
        if let Some(v) = read("BRAVELY_SLACK_BOT_TOKEN")? {
            self.slack.bot_token = Some(Secret::new(v));
        }
        if let Some(v) = read("BRAVELY_SLACK_LEADERBOARD_CHANNEL")? {
            self.slack.leaderboard_channel = Some(v);
        }
        if let Some(v) = read("BRAVELY_SESSION_ABSOLUTE_HOURS")? {
            self.session.absolute_hours =
                v.parse().context("BRAVELY_SESSION_ABSOLUTE_HOURS must be a number of hours")?;
        }
        if let Some(v) = read("BRAVELY_METRICS_TOKEN")? {
            self.metrics_token = Some(Secret::new(v));
        }
        if let Some(v) = read("BRAVELY_ALERTS_SLACK_WEBHOOK_URL")? {
            self.alerts.slack_webhook_url = Some(Secret::new(v));
        }
        if let Some(v) = read("BRAVELY_BACKUPS_REMOTE")? {
            self.backups.remote = Some(v);
        }
        if let Some(v) = read("BRAVELY_BACKUPS_MAX_EXPANDED_MIB")? {
            self.backups.max_expanded_mib = v.trim().parse().context("BRAVELY_BACKUPS_MAX_EXPANDED_MIB")?;
        }
        if let Some(v) = read("BRAVELY_PASSWORD_LOGIN")? {
            self.login.password_login = v.parse().context("BRAVELY_PASSWORD_LOGIN")?;
        }
        self.apply_backups_env(&read)
    }

    /// Reads every `client_secret_file` into its `client_secret`.
    fn read_secret_files(&mut self) -> anyhow::Result<()> {
        for p in &mut self.oidc.providers {
            if let Some(path) = &p.client_secret_file {
                if p.client_secret.is_some() {
                    bail!("oidc provider {:?}: set client_secret or client_secret_file, not both", p.id);
                }
                let v = std::fs::read_to_string(path).with_context(|| {
                    format!("oidc provider {:?}: cannot read client_secret_file {}", p.id, path.display())
                })?;
                p.client_secret = Some(Secret::new(v.trim_end_matches(['\n', '\r'])));
            }
        }
        Ok(())
    }

    fn validate_oidc(&self) -> anyhow::Result<()> {
        let providers = &self.oidc.providers;
        if providers.is_empty() {
            if self.login.password_login == PasswordLogin::Superusers {
                bail!(
                    "login.password_login = \"superusers\" needs at least one [[oidc.providers]]: nobody else could sign in"
                );
            }
            return Ok(());
        }
        if self.public_url.is_none() {
            bail!(
                "public_url (BRAVELY_PUBLIC_URL) is required with [[oidc.providers]]: the redirect URI is public_url + /auth/oidc/callback"
            );
        }
        let mut ids = std::collections::BTreeSet::new();
        for p in providers {
            let at = |field: &str, msg: &str| anyhow::anyhow!("oidc provider {:?}: {field}: {msg}", p.id);
            if p.id.is_empty()
                || !p.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(at("id", "use lowercase letters, digits, '-' and '_' only (it appears in URLs)"));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(at("id", "two providers have this id"));
            }
            if p.name.trim().is_empty() {
                return Err(at("name", "is required (it labels the sign-in button)"));
            }
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|h| p.issuer.strip_prefix(h).is_some_and(|r| r.is_empty() || r.starts_with([':', '/'])));
            if !(p.issuer.starts_with("https://") || loopback) {
                return Err(at("issuer", "must be an https:// URL (http:// only on 127.0.0.1 or localhost)"));
            }
            if p.client_id.trim().is_empty() {
                return Err(at("client_id", "is required"));
            }
            if p.client_secret.as_ref().is_none_or(|s| s.expose().is_empty()) {
                return Err(at("client_secret", "is required (or client_secret_file)"));
            }
            if p.allowed_domains.is_empty() {
                return Err(at("allowed_domains", "list the email domains that may sign in, e.g. [\"example.com\"]"));
            }
            for d in &p.allowed_domains {
                if d.is_empty() || d.contains(['@', '/', ' ']) || !d.contains('.') || d.to_lowercase() != *d {
                    return Err(at(
                        "allowed_domains",
                        &format!("{d:?} is not a lowercase domain like \"example.com\""),
                    ));
                }
            }
            if p.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(at("scopes", "scopes are single words such as \"email\""));
            }
            if (!p.groups.is_empty() || !p.superuser_groups.is_empty()) && p.groups_claim.is_none() {
                return Err(at("groups_claim", "is required for groups and superuser_groups (e.g. \"groups\")"));
            }
            if let Some((k, _)) = p.groups.iter().find(|(k, v)| k.is_empty() || v.trim().is_empty()) {
                return Err(at("groups", &format!("{k:?}: claim values and Bravely group names cannot be empty")));
            }
        }
        Ok(())
    }

    fn apply_backups_env(&mut self, read: &impl Fn(&str) -> anyhow::Result<Option<String>>) -> anyhow::Result<()> {
        let flag = |name: &str, v: String| -> anyhow::Result<bool> {
            v.parse().map_err(|_| anyhow::anyhow!("{name} must be \"true\" or \"false\", not {v:?}"))
        };
        let s3 = &mut self.backups.storage.s3;
        if let Some(v) = read("BRAVELY_BACKUPS_S3_ENDPOINT")? {
            s3.endpoint = Some(v);
        }
        if let Some(v) = read("BRAVELY_BACKUPS_S3_REGION")? {
            s3.region = Some(v);
        }
        if let Some(v) = read("BRAVELY_BACKUPS_S3_ACCESS_KEY_ID")? {
            s3.access_key_id = Some(v);
        }
        if let Some(v) = read("BRAVELY_BACKUPS_S3_SECRET_ACCESS_KEY")? {
            s3.secret_access_key = Some(Secret::new(v));
        }
        if let Some(v) = read("BRAVELY_BACKUPS_S3_PATH_STYLE")? {
            s3.path_style = flag("BRAVELY_BACKUPS_S3_PATH_STYLE", v)?;
        }
        if let Some(v) = read("BRAVELY_BACKUPS_S3_ALLOW_HTTP")? {
            s3.allow_http = flag("BRAVELY_BACKUPS_S3_ALLOW_HTTP", v)?;
        }
        if let Some(v) = read("BRAVELY_BACKUPS_GCS_SERVICE_ACCOUNT_KEY")? {
            self.backups.storage.gcs.service_account_key = Some(Secret::new(v));
        }
        if let Some(v) = read("BRAVELY_BACKUPS_AZURE_ACCOUNT")? {
            self.backups.storage.azure.account = Some(v);
        }
        if let Some(v) = read("BRAVELY_BACKUPS_AZURE_ACCESS_KEY")? {
            self.backups.storage.azure.access_key = Some(Secret::new(v));
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        crate::money::Currency::parse(&self.currency).map_err(|e| anyhow::anyhow!("currency: {e}"))?;
        self.tz()?;
        if let Some(u) = &self.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("public_url must start with http:// or https://, got {u:?}");
        }
        if self.session.idle_minutes <= 0 || self.session.absolute_hours <= 0 {
            bail!("session.idle_minutes and session.absolute_hours must be positive");
        }
        if self.backups.max_expanded_mib == 0 {
            bail!("backups.max_expanded_mib must be positive (the largest a backup may expand to, in MiB)");
        }
        let part = self.backups.storage.part_size_mib;
        use crate::backups::destination::{MAX_PART_SIZE_MIB, MIN_PART_SIZE_MIB};
        if !(MIN_PART_SIZE_MIB..=MAX_PART_SIZE_MIB).contains(&part) {
            bail!(
                "backups.storage.part_size_mib must be between {MIN_PART_SIZE_MIB} and {MAX_PART_SIZE_MIB}, not {part}"
            );
        }
        if let Some(t) = &self.metrics_token
            && t.expose().trim().len() < 16
        {
            bail!("metrics_token must be at least 16 characters (generate one with `openssl rand -hex 32`)");
        }
        crate::backups::policy::policies(self)?;
        self.validate_oidc()?;
        Ok(())
    }

    pub fn tz(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
            anyhow::anyhow!("time_zone {:?} is not an IANA time zone such as \"Europe/Warsaw\"", self.time_zone)
        })
    }

    /// Cookies get `Secure` when the public URL is HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("bravely.redb")
    }

    /// Scratch space inside the data directory (expanded backups, integrity snapshots): on the
    /// data's disk, whose free space is checked, never a small `/tmp`.
    pub fn temp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = Config::from_toml("listen = \"127.0.0.1:9000\"\nlisten_port = 3\n").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_file_overrides_defaults() {
        let mut cfg = Config::from_toml("currency = \"PLN\"\ntime_zone = \"Europe/Warsaw\"\n").expect("valid");
        assert_eq!(cfg.currency, "PLN");
        cfg.apply_env(|k| (k == "BRAVELY_CURRENCY").then(|| "USD".to_string())).expect("valid");
        assert_eq!(cfg.currency, "USD");
        assert_eq!(cfg.time_zone, "Europe/Warsaw");
    }

    #[test]
    fn slack_secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "8f742231b10e8888abcd99yyyzzz85a5\n").expect("write");
        let mut cfg = Config::default();
        let p = path.to_string_lossy().to_string();
        cfg.apply_env(|k| (k == "BRAVELY_SLACK_SIGNING_SECRET_FILE").then(|| p.clone())).expect("valid");
        assert_eq!(cfg.slack.signing_secret.as_ref().map(Secret::expose), Some("8f742231b10e8888abcd99yyyzzz85a5"));
        assert!(!format!("{cfg:?}").contains("8f742231"), "Debug redacts the secret");
    }

    #[test]
    fn backup_storage_secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s3-secret");
        std::fs::write(&path, "s3-secret-from-a-file\n").expect("write");
        let mut cfg = Config::default();
        let p = path.to_string_lossy().to_string();
        cfg.apply_env(|k| match k {
            "BRAVELY_BACKUPS_S3_SECRET_ACCESS_KEY_FILE" => Some(p.clone()),
            "BRAVELY_BACKUPS_S3_PATH_STYLE" => Some("false".into()),
            _ => None,
        })
        .expect("valid");
        let s3 = &cfg.backups.storage.s3;
        assert_eq!(s3.secret_access_key.as_ref().map(Secret::expose), Some("s3-secret-from-a-file"));
        assert!(!s3.path_style);
        assert!(!format!("{cfg:?}").contains("s3-secret-from"), "Debug redacts the secret");
        let err = cfg.apply_env(|k| (k == "BRAVELY_BACKUPS_S3_ALLOW_HTTP").then(|| "yes".into())).unwrap_err();
        assert!(err.to_string().contains("BRAVELY_BACKUPS_S3_ALLOW_HTTP"), "{err}");
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"[redacted]\"");
    }

    #[test]
    fn metrics_token_comes_from_env_is_redacted_and_must_be_long() {
        let mut cfg = Config::default();
        cfg.apply_env(|k| (k == "BRAVELY_METRICS_TOKEN").then(|| "0123456789abcdef-token".to_string())).expect("ok");
        assert_eq!(cfg.metrics_token.as_ref().map(Secret::expose), Some("0123456789abcdef-token"));
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"), "Debug redacts the token");
        cfg.validate().expect("long enough");
        let short = Config { metrics_token: Some(Secret::new("short")), ..Config::default() };
        assert!(short.validate().unwrap_err().to_string().contains("metrics_token"));
    }

    const PROVIDER: &str = r#"
public_url = "https://ops.example.com"
[[oidc.providers]]
id = "google"
name = "Company Google account"
issuer = "https://accounts.google.com"
client_id = "client-1"
client_secret = "s3cret-value-123"
allowed_domains = ["example.com"]
groups_claim = "groups"
superuser_groups = ["admins"]
[oidc.providers.groups]
"eng" = "Engineers"
"#;

    #[test]
    fn oidc_providers_parse_validate_and_redact_their_secret() {
        let cfg = Config::from_toml(PROVIDER).expect("parses");
        cfg.validate().expect("valid");
        let p = &cfg.oidc.providers[0];
        assert_eq!(p.scopes, ["email", "profile"], "default scopes");
        assert_eq!(p.groups.get("eng").map(String::as_str), Some("Engineers"));
        assert!(!format!("{cfg:?}").contains("s3cret-value"), "Debug redacts the client secret");
    }

    #[test]
    fn oidc_mistakes_are_explained_by_field() {
        let bad = |from: &str, to: &str, expect: &str| {
            let text = PROVIDER.replace(from, to);
            let err = match Config::from_toml(&text) {
                Ok(cfg) => cfg.validate().unwrap_err().to_string(),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(expect), "{from} -> {to}: {err}");
        };
        bad("id = \"google\"", "id = \"Google Accounts\"", "id:");
        bad("issuer = \"https://", "issuer = \"http://", "issuer: must be an https://");
        bad("allowed_domains = [\"example.com\"]", "allowed_domains = []", "allowed_domains");
        bad("allowed_domains = [\"example.com\"]", "allowed_domains = [\"@example.com\"]", "allowed_domains");
        bad("client_secret = \"s3cret-value-123\"\n", "", "client_secret: is required");
        bad("groups_claim = \"groups\"\n", "", "groups_claim");
        bad("public_url = \"https://ops.example.com\"\n", "", "public_url");
        bad("client_id = \"client-1\"", "client_id = \"client-1\"\nclient_idd = \"x\"", "client_idd");
    }

    #[test]
    fn client_secret_file_is_read_and_password_login_can_be_limited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("oidc-secret");
        std::fs::write(&path, "from-a-file-0123\n").expect("write");
        let text = PROVIDER.replace(
            "client_secret = \"s3cret-value-123\"",
            &format!("client_secret_file = {:?}", path.to_string_lossy()),
        );
        let mut cfg = Config::from_toml(&text).expect("parses");
        cfg.read_secret_files().expect("reads");
        assert_eq!(cfg.oidc.providers[0].client_secret.as_ref().map(Secret::expose), Some("from-a-file-0123"));
        cfg.apply_env(|k| (k == "BRAVELY_PASSWORD_LOGIN").then(|| "superusers".to_string())).expect("valid");
        assert_eq!(cfg.login.password_login, PasswordLogin::Superusers);
        cfg.validate().expect("valid with a provider");
        let alone = Config { login: cfg.login.clone(), ..Config::default() };
        assert!(alone.validate().unwrap_err().to_string().contains("needs at least one"));
        let mut env = Config::default();
        let err = env.apply_env(|k| (k == "BRAVELY_PASSWORD_LOGIN").then(|| "some".to_string())).unwrap_err();
        assert!(format!("{err:#}").contains("everyone"), "{err:#}");
    }

    #[test]
    fn bad_values_are_explained() {
        let cfg = Config::from_toml("time_zone = \"Mars/Olympus\"\n").expect("parses");
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("Mars/Olympus"), "{err}");
    }
}
