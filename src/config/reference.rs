//! The configuration reference: every setting with its default, environment variable and
//! meaning, declared once.
//!
//! The loader takes the environment variables it accepts from here (an unknown `BRAVELY_*`
//! variable is one no row names), and the book's configuration chapter is generated from it
//! (`docs/src/operators/configuration.md`, checked by `tests/it/docs.rs`). A unit test below
//! walks the keys `Config::default()` serializes to and the variables `apply_env` reads, and
//! fails when one has no row here, or a row names something the loader does not know.
//!
//! **Adding a setting**: add its field (with a default) to the config struct, read its
//! variable in `apply_env` if it has one, add one row to [`SETTINGS`] below (a `[[table]]`
//! entry's keys go in [`POLICY_KEYS`] or [`PROVIDER_KEYS`]), then regenerate the chapter:
//! `BRAVELY_UPDATE_DOCS=1 cargo test --test it docs::`.

/// One setting of the boot configuration.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The TOML key, dotted (`session.idle_minutes`).
    pub key: &'static str,
    /// The default as the docs show it: the value in backticks (checked against
    /// `Config::default()`), then any note; `unset` when there is none.
    pub default: &'static str,
    /// The `BRAVELY_*` environment variable, if the setting has one (every one can also be
    /// given as `<NAME>_FILE`, the path of a file holding the value).
    pub env: Option<&'static str>,
    /// A command-line flag that sets it too.
    pub flag: Option<&'static str>,
    /// A secret: never logged, `[redacted]` in `Debug` output.
    pub secret: bool,
    /// What it does (Markdown; links are relative to `docs/src/operators/`).
    pub meaning: &'static str,
}

impl Setting {
    /// A setting with an environment variable.
    pub const fn env(key: &'static str, default: &'static str, env: &'static str, meaning: &'static str) -> Setting {
        Setting { key, default, env: Some(env), flag: None, secret: false, meaning }
    }
    /// A setting given in the TOML file only.
    pub const fn file(key: &'static str, default: &'static str, meaning: &'static str) -> Setting {
        Setting { key, default, env: None, flag: None, secret: false, meaning }
    }
    pub const fn flag(self, flag: &'static str) -> Setting {
        Setting { flag: Some(flag), ..self }
    }
    pub const fn secret(self) -> Setting {
        Setting { secret: true, ..self }
    }
}

const fn env(key: &'static str, default: &'static str, var: &'static str, meaning: &'static str) -> Setting {
    Setting::env(key, default, var, meaning)
}
const fn file(key: &'static str, default: &'static str, meaning: &'static str) -> Setting {
    Setting::file(key, default, meaning)
}

/// Every setting, in the order the docs list them. One row per key.
pub const SETTINGS: &[Setting] = &[
    env(
        "listen",
        "`127.0.0.1:8080`",
        "BRAVELY_LISTEN",
        "Address the HTTP server binds to. Port 0 picks a free port (the log says which).",
    )
    .flag("`serve --listen`"),
    env(
        "data_dir",
        "`./data`",
        "BRAVELY_DATA_DIR",
        "Holds `bravely.redb` and `secret.key`. Relative to the working directory.",
    )
    .flag("`--data-dir`"),
    env(
        "public_url",
        "unset",
        "BRAVELY_PUBLIC_URL",
        "The URL users reach Bravely at. If it starts with `https://`, cookies get `Secure` and responses carry HSTS.",
    ),
    env("log_format", "`text`", "BRAVELY_LOG_FORMAT", "`text` or `json`, written to stderr."),
    env("currency", "`EUR`", "BRAVELY_CURRENCY", "ISO 4217 code used when a money field is entered without one."),
    env("time_zone", "`UTC`", "BRAVELY_TIME_ZONE", "IANA zone of the company, for \"today\" and the dates shown."),
    env("session.idle_minutes", "`720` (12 h)", "BRAVELY_SESSION_IDLE_MINUTES", "A session unused this long ends."),
    env(
        "session.absolute_hours",
        "`336` (14 days)",
        "BRAVELY_SESSION_ABSOLUTE_HOURS",
        "A session ends this long after sign-in, however active.",
    ),
    file("login.max_failures_per_account", "`5`", "Failed sign-ins allowed per account within the window."),
    file("login.max_failures_per_ip", "`20`", "Failed sign-ins allowed per client address within the window."),
    file("login.window_minutes", "`15`", "The window for both limits."),
    env(
        "login.password_login",
        "`everyone`",
        "BRAVELY_PASSWORD_LOGIN",
        "`superusers` keeps password sign-in as a break-glass path for superusers only; everyone else uses an \
         [organisation provider](sign-in.md).",
    ),
    env(
        "slack.signing_secret",
        "unset",
        "BRAVELY_SLACK_SIGNING_SECRET",
        "Verifies requests from Slack. Without it `POST /slack/commands` answers 503 and logs why.",
    )
    .secret(),
    env(
        "slack.bot_token",
        "unset",
        "BRAVELY_SLACK_BOT_TOKEN",
        "`xoxb-…` token; lets Bravely look up new Slack users (bot or not, email for matching an employee).",
    )
    .secret(),
    file("slack.api_base", "`https://slack.com/api`", "Slack's Web API (tests point it at a local stand-in)."),
    file(
        "slack.response_url_prefix",
        "`https://hooks.slack.com/`",
        "Delayed replies go only to `response_url`s starting with this.",
    ),
    env(
        "slack.leaderboard_channel",
        "unset",
        "BRAVELY_SLACK_LEADERBOARD_CHANNEL",
        "Channel id for the monthly leaderboard post (needs `bot_token` with `chat:write`).",
    ),
    env(
        "metrics_token",
        "unset",
        "BRAVELY_METRICS_TOKEN",
        "Bearer token for `GET /metrics`, at least 16 characters; without it the endpoint answers 404.",
    )
    .secret(),
    env(
        "alerts.slack_webhook_url",
        "unset",
        "BRAVELY_ALERTS_SLACK_WEBHOOK_URL",
        "Slack incoming webhook for alerts (failed jobs, failed backup verification).",
    )
    .secret(),
    env(
        "backups.remote",
        "unset",
        "BRAVELY_BACKUPS_REMOTE",
        "Destination URL of the default weekly full backup (see [Backups](backups.md)).",
    ),
    env(
        "backups.max_expanded_mib",
        "`10240` (10 GiB)",
        "BRAVELY_BACKUPS_MAX_EXPANDED_MIB",
        "The most a backup may expand to when it is verified or restored: an uploaded file whose \
         manifest declares more (or more than the free disk space) is refused before anything is \
         written (see [Damaged files](damaged-files.md)).",
    ),
    file(
        "backups.policies",
        "two defaults",
        "`[[backups.policies]]` tables (keys [below](#backup-policies)); without any, the \
         [two default policies](backups.md#policies) apply.",
    ),
    file("backups.storage.part_size_mib", "`16`", "Multipart part size, 5 to 1024."),
    file(
        "backups.storage.retries",
        "`3`",
        "Retries of a failed request (connection errors, 5xx), with exponential backoff.",
    ),
    file("backups.storage.timeout_seconds", "`300`", "Longest wait for one request (one part)."),
    env(
        "backups.storage.s3.endpoint",
        "AWS",
        "BRAVELY_BACKUPS_S3_ENDPOINT",
        "The S3-compatible service's address, `https://…`.",
    ),
    env(
        "backups.storage.s3.region",
        "unset: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`",
        "BRAVELY_BACKUPS_S3_REGION",
        "Region used in the signature.",
    ),
    env("backups.storage.s3.access_key_id", "unset", "BRAVELY_BACKUPS_S3_ACCESS_KEY_ID", "The access key's id."),
    env(
        "backups.storage.s3.secret_access_key",
        "unset",
        "BRAVELY_BACKUPS_S3_SECRET_ACCESS_KEY",
        "The access key's secret.",
    )
    .secret(),
    file("backups.storage.s3.session_token", "unset (or `AWS_SESSION_TOKEN`)", "For temporary credentials.").secret(),
    env(
        "backups.storage.s3.path_style",
        "`true`",
        "BRAVELY_BACKUPS_S3_PATH_STYLE",
        "`true`: `https://endpoint/bucket/key`, understood by every S3-compatible server. `false`: virtual-hosted, \
         `https://bucket.endpoint/key`.",
    ),
    env(
        "backups.storage.s3.allow_http",
        "`false`",
        "BRAVELY_BACKUPS_S3_ALLOW_HTTP",
        "Allow an `http://` endpoint (a server on the same host or a trusted network).",
    ),
    file(
        "backups.storage.s3.instance_metadata",
        "`false`",
        "Without keys, take credentials from the EC2 instance metadata service.",
    ),
    file(
        "backups.storage.gcs.service_account_path",
        "unset (or `GOOGLE_APPLICATION_CREDENTIALS`)",
        "Service account JSON key file.",
    ),
    env(
        "backups.storage.gcs.service_account_key",
        "unset",
        "BRAVELY_BACKUPS_GCS_SERVICE_ACCOUNT_KEY",
        "The JSON key itself.",
    )
    .secret(),
    file(
        "backups.storage.gcs.instance_metadata",
        "`false`",
        "Without a key, use the instance's service account (GCE metadata server).",
    ),
    env("backups.storage.azure.account", "unset", "BRAVELY_BACKUPS_AZURE_ACCOUNT", "Storage account name."),
    env("backups.storage.azure.access_key", "unset", "BRAVELY_BACKUPS_AZURE_ACCESS_KEY", "The account's access key.")
        .secret(),
    file("backups.storage.azure.endpoint", "Azure", "Another blob endpoint (Azurite)."),
    file("backups.storage.azure.allow_http", "`false`", "Allow an `http://` Azure endpoint."),
    file(
        "backups.storage.azure.managed_identity",
        "`false`",
        "Without a key or `AZURE_*` credentials, use the VM's managed identity.",
    ),
    file(
        "oidc.providers",
        "none",
        "`[[oidc.providers]]` tables, one per [organisation sign-in](sign-in.md) provider (keys \
         [below](#sign-in-providers)).",
    ),
];

/// The keys of one `[[backups.policies]]` table.
pub const POLICY_KEYS: &[Setting] = &[
    file(
        "name",
        "required",
        "Lowercase letters, digits and dashes; appears in file names. Not `manual` or `uploaded`.",
    ),
    file(
        "scope",
        "`database`",
        "`database`, or `full`: the database plus the uploaded files under `<data dir>/files/`.",
    ),
    file(
        "schedule",
        "required",
        "Five cron fields in the company's time zone (`0 */4 * * *`), or `@hourly`, `@daily`, `@weekly`, `@monthly`.",
    ),
    file("destination", "`local`", "`local` (`<data dir>/backups/`) or a [destination URL](backups.md#destinations)."),
    file("keep", "`forever`", "`last N`, `30 days`, `12 weeks` or `forever`."),
    file("passphrase", "unset", "Encrypts the backups (age, scrypt); at least 12 characters.").secret(),
    file("passphrase_file", "unset", "A file holding the passphrase instead (trailing newline dropped)."),
];

/// The keys of one `[[oidc.providers]]` table.
pub const PROVIDER_KEYS: &[Setting] = &[
    file("id", "required", "Lowercase letters, digits, `-`, `_`; unique. Used in URLs and logs."),
    file("name", "required", "Shown on the button and on error pages."),
    file(
        "issuer",
        "required",
        "Discovery reads `{issuer}/.well-known/openid-configuration`. `https://` only (`http://` on 127.0.0.1 or \
         localhost, for tests).",
    ),
    file("client_id", "required", "From the provider's app registration."),
    file("client_secret", "one of the two required", "The client secret.").secret(),
    file(
        "client_secret_file",
        "one of the two required",
        "A file holding the client secret (read at start-up, trailing newline dropped).",
    ),
    file(
        "allowed_domains",
        "required",
        "Email domains that may sign in. Exact: `example.com` does not admit `eu.example.com`.",
    ),
    file("scopes", "`[\"email\", \"profile\"]`", "Requested besides `openid`."),
    file(
        "require_hd",
        "`false`",
        "The id_token's `hd` claim must be one of `allowed_domains`. With one domain, the `hd` hint is also sent (it \
         only preselects the account).",
    ),
    file(
        "assume_email_verified",
        "`false`",
        "Accept `email` without `email_verified = true`. Only for providers that never send that claim but issue \
         every address themselves ([Entra ID](sign-in.md#microsoft-entra-id)).",
    ),
    file(
        "groups_claim",
        "unset",
        "The id_token claim holding the user's groups: a list of strings or one string. Required with `groups` and \
         `superuser_groups`.",
    ),
    file("groups", "empty", "Claim value → name of an existing Bravely group."),
    file("superuser_groups", "empty", "Claim values that make a user a superuser."),
];

/// Environment variables that are not settings, with what they do.
pub const OTHER_ENV: &[(&str, &str)] = &[
    ("BRAVELY_CONFIG", "The path of the TOML file (also `--config`)."),
    (
        "BRAVELY_LOG",
        "The log filter, with `tracing` `EnvFilter` syntax. The default is `info`; `BRAVELY_LOG=debug` logs every \
         request with its status and time.",
    ),
    ("NO_COLOR", "Turns off ANSI colours in text logs."),
    (
        "SENTRY_DSN, SENTRY_ENVIRONMENT, SENTRY_RELEASE",
        "Turn on and label error reports (see [Observability](observability.md#error-reports-sentry)).",
    ),
    (
        "LISTEN_FDS, LISTEN_PID",
        "Set by systemd socket activation; the server then serves the passed socket instead of binding `listen`.",
    ),
];

/// The `BRAVELY_*` variables the loader accepts (each also as `<NAME>_FILE`).
pub fn known_env() -> impl Iterator<Item = &'static str> {
    SETTINGS
        .iter()
        .filter_map(|s| s.env)
        .chain(OTHER_ENV.iter().flat_map(|(names, _)| names.split(", ")).filter(|n| n.starts_with("BRAVELY_")))
}

fn escape_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn table(rows: &[Setting], with_env: bool) -> String {
    let mut out = String::new();
    if with_env {
        out.push_str("| Key | Default | Environment variable / flag | Meaning |\n| --- | --- | --- | --- |\n");
    } else {
        out.push_str("| Key | Default | Meaning |\n| --- | --- | --- |\n");
    }
    for s in rows {
        let mut meaning = s.meaning.to_string();
        if s.secret {
            meaning.push_str(" A secret: never logged, `[redacted]` in `Debug` output.");
        }
        if with_env {
            let mut how = match s.env {
                Some(v) if s.secret => format!("`{v}` (or `…_FILE`)"),
                Some(v) => format!("`{v}`"),
                None => "file only".to_string(),
            };
            if let Some(f) = s.flag {
                how.push_str(", ");
                how.push_str(f);
            }
            out.push_str(&format!("| `{}` | {} | {} | {} |\n", s.key, s.default, how, escape_cell(&meaning)));
        } else {
            out.push_str(&format!("| `{}` | {} | {} |\n", s.key, s.default, escape_cell(&meaning)));
        }
    }
    out
}

/// The generated parts of the book, by region name (`<!-- generated: NAME -->` … `<!-- end
/// generated: NAME -->` in `docs/src`).
pub fn generated() -> Vec<(&'static str, String)> {
    let other = OTHER_ENV.iter().map(|(names, what)| {
        let names: Vec<String> = names.split(", ").map(|n| format!("**`{n}`**")).collect();
        format!("- {}: {what}\n", names.join(", "))
    });
    vec![
        ("settings", table(SETTINGS, true)),
        ("policy-keys", table(POLICY_KEYS, false)),
        ("provider-keys", table(PROVIDER_KEYS, false)),
        ("other-env", other.collect()),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::Config;

    /// Dotted keys of the leaves of a serialized value: scalars, `null` (an unset option),
    /// arrays and empty maps. An array of tables is walked through its first element, as
    /// `key[].field`.
    fn leaves(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    leaves(&key, v, out);
                }
            }
            serde_json::Value::Array(a) if a.first().is_some_and(|e| e.is_object()) => {
                leaves(&format!("{prefix}[]"), &a[0], out);
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }

    fn keys(rows: &[Setting], prefix: &str) -> BTreeSet<String> {
        rows.iter().map(|s| format!("{prefix}{}", s.key)).collect()
    }

    fn compare(what: &str, declared: BTreeSet<String>, documented: BTreeSet<String>) {
        let missing: Vec<_> = declared.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&declared).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "{what}: missing from src/config/reference.rs: {missing:?}; there but unknown to the loader: {stale:?}"
        );
    }

    #[test]
    fn every_setting_of_the_default_config_has_a_row() {
        let mut declared = BTreeSet::new();
        leaves("", &serde_json::to_value(Config::default()).expect("serializes"), &mut declared);
        compare("settings", declared, keys(SETTINGS, ""));
    }

    #[test]
    fn every_key_of_a_policy_and_a_provider_has_a_row() {
        // Only required keys are given: defaults fill the rest, and all of them serialize.
        let cfg = Config::from_toml(
            r#"
[[backups.policies]]
name = "p"
schedule = "@daily"
[[oidc.providers]]
id = "x"
name = "X"
issuer = "https://x.example"
client_id = "c"
"#,
        )
        .expect("parses");
        let mut declared = BTreeSet::new();
        leaves("backups", &serde_json::to_value(&cfg.backups.policies).expect("serializes"), &mut declared);
        leaves("oidc", &serde_json::to_value(&cfg.oidc.providers).expect("serializes"), &mut declared);
        let mut documented = keys(POLICY_KEYS, "backups[].");
        documented.extend(keys(PROVIDER_KEYS, "oidc[]."));
        compare("table keys", declared, documented);
    }

    #[test]
    fn every_variable_the_loader_reads_has_a_row() {
        let asked = std::cell::RefCell::new(BTreeSet::new());
        let mut cfg = Config::default();
        cfg.apply_env(|name| {
            asked.borrow_mut().insert(name.strip_suffix("_FILE").unwrap_or(name).to_string());
            None
        })
        .expect("nothing set");
        let documented: BTreeSet<String> = SETTINGS.iter().filter_map(|s| s.env).map(str::to_string).collect();
        compare("environment variables", asked.into_inner(), documented);
    }

    #[test]
    fn defaults_in_the_docs_are_the_real_ones() {
        let default = serde_json::to_value(Config::default()).expect("serializes");
        for s in SETTINGS {
            let v = s.key.split('.').fold(&default, |v, k| &v[k]);
            let shown = match v {
                serde_json::Value::String(t) => Some(t.clone()),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some(v.to_string()),
                _ => None,
            };
            match shown {
                Some(t) => assert!(
                    s.default.starts_with(&format!("`{t}`")),
                    "{}: default is {t:?}, docs say {}",
                    s.key,
                    s.default
                ),
                None if v.is_null() => {
                    assert!(!s.default.starts_with('`'), "{}: unset by default, docs say {}", s.key, s.default)
                }
                None => {}
            }
        }
    }

    #[test]
    fn keys_are_unique() {
        for rows in [SETTINGS, POLICY_KEYS, PROVIDER_KEYS] {
            let mut seen = BTreeSet::new();
            for s in rows {
                assert!(seen.insert(s.key), "{} twice", s.key);
            }
        }
    }
}
