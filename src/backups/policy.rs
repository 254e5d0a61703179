//! Backup policies: what to back up, when, where to, for how long, and whether encrypted.
//!
//! Without `[[backups.policies]]` in the configuration, two policies reproduce the original
//! setup: `database` every four hours kept 30 days in `<data dir>/backups`, and `full` weekly
//! kept forever at `backups.remote` (or locally when no remote is configured).

use chrono::{DateTime, Duration, Utc};

use crate::config::{Config, Secret};
use crate::jobs::Schedule;

/// Names that policies may not take: they label backups no policy made.
pub const MANUAL: &str = "manual";
pub const UPLOADED: &str = "uploaded";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retention {
    Forever,
    Last(usize),
    For(Duration),
}

impl Retention {
    pub fn parse(text: &str) -> Result<Retention, String> {
        let t = text.trim().to_lowercase();
        let bad = || {
            format!("keep = {text:?} is not understood: write \"forever\", \"last 10\", \"30 days\" or \"12 weeks\"")
        };
        if t == "forever" {
            return Ok(Retention::Forever);
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.as_slice() {
            ["last", n] => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Retention::Last(n)),
                _ => Err(bad()),
            },
            [n, unit] => {
                let n: i64 = n.parse().map_err(|_| bad())?;
                if n < 1 {
                    return Err(bad());
                }
                let d = match unit.trim_end_matches('s') {
                    "hour" => Duration::hours(n),
                    "day" => Duration::days(n),
                    "week" => Duration::weeks(n),
                    _ => return Err(bad()),
                };
                Ok(Retention::For(d))
            }
            _ => Err(bad()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Retention::Forever => "forever".into(),
            Retention::Last(n) => format!("last {n}"),
            Retention::For(d) => crate::jobs::human_duration(*d),
        }
    }

    /// Of one policy's backups (name, made at), the names retention removes now. The newest
    /// backup is never removed, whatever the rule says.
    pub fn expired(&self, now: DateTime<Utc>, backups: &[(String, DateTime<Utc>)]) -> Vec<String> {
        let mut sorted: Vec<&(String, DateTime<Utc>)> = backups.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        sorted
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, (_, at))| match self {
                Retention::Forever => false,
                Retention::Last(n) => *i >= *n,
                Retention::For(d) => now - *at > *d,
            })
            .map(|(_, (name, _))| name.clone())
            .collect()
    }
}

/// Where a policy's backups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `<data dir>/backups`.
    Local,
    /// An object-store URL (`s3://…`, `gs://…`, `az://…`, `file:///…`) or an absolute
    /// directory path (another disk, a mounted share).
    Remote(String),
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Local => "this server (data/backups)".into(),
            Target::Remote(url) => redact_url(url),
        }
    }
}

pub use super::destination::redact_url;

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub full: bool,
    pub schedule: Schedule,
    pub target: Target,
    pub retention: Retention,
    pub passphrase: Option<Secret>,
}

impl Policy {
    pub fn scope(&self) -> &'static str {
        if self.full { "full" } else { "database" }
    }
    /// The scheduler's key for this policy's job.
    pub fn job_key(&self) -> String {
        format!("backup-{}", self.name)
    }
}

fn target_of(dest: Option<&str>) -> Result<Target, String> {
    match dest.map(str::trim) {
        None | Some("") | Some("local") => Ok(Target::Local),
        Some(url) if super::destination::is_url(url) || url.starts_with('/') => Ok(Target::Remote(url.to_string())),
        Some(other) => Err(format!(
            "destination {:?} is not understood: use \"local\", an absolute directory, or a URL such as s3://bucket/prefix, gs://…, az://…",
            redact_url(other)
        )),
    }
}

/// The configured policies, or the defaults; errors name the policy and the field.
pub fn policies(config: &Config) -> anyhow::Result<Vec<Policy>> {
    if config.backups.policies.is_empty() {
        let remote = config.backups.remote.as_deref();
        return Ok(vec![
            Policy {
                name: "database".into(),
                full: false,
                schedule: Schedule::parse("0 */4 * * *").map_err(anyhow::Error::msg)?,
                target: Target::Local,
                retention: Retention::For(Duration::days(30)),
                passphrase: None,
            },
            Policy {
                name: "full".into(),
                full: true,
                schedule: Schedule::parse("0 3 * * 0").map_err(anyhow::Error::msg)?,
                target: target_of(remote).map_err(|e| anyhow::anyhow!("backups.remote: {e}"))?,
                retention: Retention::Forever,
                passphrase: None,
            },
        ]);
    }
    let mut out: Vec<Policy> = Vec::new();
    for p in &config.backups.policies {
        let ctx = |what: String| anyhow::anyhow!("backup policy {:?}: {what}", p.name);
        let name_ok = !p.name.is_empty()
            && p.name.len() <= 40
            && p.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(ctx("name must be 1 to 40 lowercase letters, digits or dashes".into()));
        }
        if [MANUAL, UPLOADED].contains(&p.name.as_str()) {
            return Err(ctx(format!("{:?} is reserved for backups no policy made", p.name)));
        }
        if out.iter().any(|o| o.name == p.name) {
            return Err(ctx("two policies have this name".into()));
        }
        let full = match p.scope.as_str() {
            "database" => false,
            "full" => true,
            other => return Err(ctx(format!("scope {other:?} must be \"database\" or \"full\""))),
        };
        let schedule = Schedule::parse(&p.schedule).map_err(|e| ctx(format!("schedule: {e}")))?;
        let target = target_of(p.destination.as_deref()).map_err(ctx)?;
        let retention = match &p.keep {
            None => Retention::Forever,
            Some(k) => Retention::parse(k).map_err(ctx)?,
        };
        let passphrase = match (&p.passphrase, &p.passphrase_file) {
            (Some(_), Some(_)) => return Err(ctx("give passphrase or passphrase_file, not both".into())),
            (Some(s), None) => Some(s.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ctx(format!("cannot read passphrase_file {}: {e}", path.display())))?;
                Some(Secret::new(text.trim_end_matches(['\n', '\r'])))
            }
            (None, None) => None,
        };
        if passphrase.as_ref().is_some_and(|s| s.expose().chars().count() < 12) {
            return Err(ctx("the passphrase must be at least 12 characters".into()));
        }
        out.push(Policy { name: p.name.clone(), full, schedule, target, retention, passphrase });
    }
    Ok(out)
}

/// The passphrase of the policy that made a backup, for verifying and restoring it.
pub fn passphrase_for(config: &Config, policy: &str) -> Option<Secret> {
    policies(config).ok()?.into_iter().find(|p| p.name == policy).and_then(|p| p.passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::hours(h)
    }

    #[test]
    fn retention_rules_parse_and_explain() {
        assert_eq!(Retention::parse("forever"), Ok(Retention::Forever));
        assert_eq!(Retention::parse("last 10"), Ok(Retention::Last(10)));
        assert_eq!(Retention::parse("30 days"), Ok(Retention::For(Duration::days(30))));
        assert_eq!(Retention::parse("1 week"), Ok(Retention::For(Duration::weeks(1))));
        for bad in ["last 0", "soon", "3 fortnights", "-1 days", "last"] {
            assert!(Retention::parse(bad).unwrap_err().contains("not understood"), "{bad}");
        }
    }

    #[test]
    fn keep_last_n_removes_the_oldest() {
        let b: Vec<_> = (0..5).map(|h| (format!("b{h}"), at(h))).collect();
        let mut gone = Retention::Last(2).expired(at(10), &b);
        gone.sort();
        assert_eq!(gone, vec!["b0", "b1", "b2"]);
        assert!(Retention::Forever.expired(at(10_000), &b).is_empty());
    }

    #[test]
    fn keep_for_a_duration_never_removes_the_newest() {
        let b: Vec<_> = (0..3).map(|h| (format!("b{h}"), at(h))).collect();
        let mut gone = Retention::For(Duration::hours(1)).expired(at(2), &b);
        gone.sort();
        assert_eq!(gone, vec!["b0"]);
        // Everything is old, but the newest backup stays.
        let mut gone = Retention::For(Duration::hours(1)).expired(at(100), &b);
        gone.sort();
        assert_eq!(gone, vec!["b0", "b1"]);
    }

    #[test]
    fn defaults_reproduce_the_original_setup() {
        let cfg = Config::default();
        let p = policies(&cfg).expect("defaults");
        assert_eq!(p[0].name, "database");
        assert_eq!(p[0].retention, Retention::For(Duration::days(30)));
        assert_eq!(p[0].schedule.text(), "0 */4 * * *");
        assert!(p[1].full && p[1].retention == Retention::Forever && p[1].target == Target::Local);
        let mut cfg = Config::default();
        cfg.backups.remote = Some("s3://bucket/bravely".into());
        assert_eq!(policies(&cfg).expect("ok")[1].target, Target::Remote("s3://bucket/bravely".into()));
    }

    #[test]
    fn bad_policies_name_the_policy_and_field() {
        let cfg = Config::from_toml("[[backups.policies]]\nname = \"db\"\nschedule = \"every day\"\n").expect("parses");
        let e = policies(&cfg).unwrap_err().to_string();
        assert!(e.contains("\"db\"") && e.contains("schedule"), "{e}");
        let cfg =
            Config::from_toml("[[backups.policies]]\nname = \"manual\"\nschedule = \"@daily\"\n").expect("parses");
        assert!(policies(&cfg).unwrap_err().to_string().contains("reserved"));
        let cfg = Config::from_toml(
            "[[backups.policies]]\nname = \"x\"\nschedule = \"@daily\"\ndestination = \"backups/elsewhere\"\n",
        )
        .expect("parses");
        assert!(policies(&cfg).unwrap_err().to_string().contains("not understood"));
    }

    #[test]
    fn urls_lose_credentials_when_shown() {
        assert_eq!(redact_url("s3://key:secret@bucket/p?x=1"), "s3://bucket/p");
        assert_eq!(target_of(Some("/mnt/nas/bravely")), Ok(Target::Remote("/mnt/nas/bravely".into())));
        assert_eq!(target_of(Some("local")), Ok(Target::Local));
        assert_eq!(redact_url("gs://bucket/p"), "gs://bucket/p");
    }
}
