//! Prometheus metrics, kept in memory and written in the text exposition format (0.0.4).
//!
//! The format is a few lines per series, so it is written here rather than through a registry
//! crate: the whole surface is [`HttpMetrics::observe`], [`CommitMetrics::observe`] and
//! [`render`]. Requests are counted by route *pattern* (`/admin/:slug/:id/`), never by raw path,
//! so the number of series stays bounded whatever clients ask for.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use poem::http::Method;

/// Upper bounds, in seconds, of the request and commit latency buckets.
pub const LATENCY_BOUNDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Upper bounds of the writes-per-commit buckets (the writer folds at most 512 writes).
pub const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The route label of requests no route matched (404s, wrong methods).
pub const UNMATCHED: &str = "unmatched";
/// The route label of unsafe requests refused by the CSRF check, which runs before routing.
pub const CSRF_REFUSED: &str = "csrf_refused";

/// A Prometheus histogram: per-bucket counts (made cumulative when written), sum and count.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// `counts[i]` counts observations in `(bounds[i-1], bounds[i]]`; the last slot is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is `k="v",…` or empty.
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, n) in self.counts.iter().enumerate() {
            cumulative += n;
            let le = self.bounds.get(i).map(|b| b.to_string()).unwrap_or_else(|| "+Inf".into());
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Escapes a label value (`\`, `"` and newlines).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    latency: Histogram,
}

/// Requests by method, route pattern and status, and their latency by method and route.
#[derive(Default)]
pub struct HttpMetrics {
    routes: Mutex<HashMap<(Method, Arc<str>), RouteStats>>,
}

impl HttpMetrics {
    pub fn observe(&self, method: &Method, route: &Arc<str>, status: u16, seconds: f64) {
        let mut routes = lock(&self.routes);
        let stats = routes
            .entry((method.clone(), route.clone()))
            .or_insert_with(|| RouteStats { by_status: BTreeMap::new(), latency: Histogram::new(LATENCY_BOUNDS) });
        *stats.by_status.entry(status).or_default() += 1;
        stats.latency.observe(seconds);
    }

    fn write(&self, out: &mut String) {
        let routes = lock(&self.routes);
        let mut keys: Vec<&(Method, Arc<str>)> = routes.keys().collect();
        keys.sort_by(|a, b| (&*a.1, a.0.as_str()).cmp(&(&*b.1, b.0.as_str())));
        out.push_str(
            "# HELP bravely_http_requests_total HTTP requests answered, by method, route pattern and status.\n",
        );
        out.push_str("# TYPE bravely_http_requests_total counter\n");
        for k in &keys {
            for (status, n) in &routes[*k].by_status {
                let _ = writeln!(
                    out,
                    "bravely_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    k.0,
                    label(&k.1)
                );
            }
        }
        out.push_str(
            "# HELP bravely_http_request_duration_seconds Time from receiving a request to its response, by method and route pattern.\n",
        );
        out.push_str("# TYPE bravely_http_request_duration_seconds histogram\n");
        for k in &keys {
            let labels = format!("method=\"{}\",route=\"{}\"", k.0, label(&k.1));
            routes[*k].latency.write(out, "bravely_http_request_duration_seconds", &labels);
        }
    }
}

struct CommitStats {
    seconds: Histogram,
    writes: Histogram,
    failures: u64,
}

/// The group-commit writer: how long each batch took to become durable, and its size.
pub struct CommitMetrics {
    stats: Mutex<CommitStats>,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            stats: Mutex::new(CommitStats {
                seconds: Histogram::new(LATENCY_BOUNDS),
                writes: Histogram::new(BATCH_BOUNDS),
                failures: 0,
            }),
        }
    }
}

impl CommitMetrics {
    /// One batch: `writes` transactions made durable together in `seconds`, or not (`ok`).
    pub fn observe(&self, writes: usize, seconds: f64, ok: bool) {
        let mut s = lock(&self.stats);
        s.seconds.observe(seconds);
        s.writes.observe(writes as f64);
        if !ok {
            s.failures += 1;
        }
    }

    /// Batches committed so far.
    pub fn batches(&self) -> u64 {
        lock(&self.stats).seconds.count()
    }

    fn write(&self, out: &mut String) {
        let s = lock(&self.stats);
        out.push_str(
            "# HELP bravely_store_commit_seconds Time the writer took to run a batch of writes and make it durable (one fsync).\n",
        );
        out.push_str("# TYPE bravely_store_commit_seconds histogram\n");
        s.seconds.write(out, "bravely_store_commit_seconds", "");
        out.push_str(
            "# HELP bravely_store_commit_writes Write transactions made durable by one commit (group commit).\n",
        );
        out.push_str("# TYPE bravely_store_commit_writes histogram\n");
        s.writes.write(out, "bravely_store_commit_writes", "");
        out.push_str("# HELP bravely_store_commit_failures_total Batches whose durable commit failed.\n");
        out.push_str("# TYPE bravely_store_commit_failures_total counter\n");
        let _ = writeln!(out, "bravely_store_commit_failures_total {}", s.failures);
    }
}

#[derive(Default)]
struct BackupStats {
    /// (operation, result) -> count
    outcomes: std::collections::BTreeMap<(&'static str, &'static str), u64>,
    last_success_unix: Option<i64>,
    last_seconds: Option<f64>,
}

/// Backups made and verified, and when the last one succeeded (for alerting on staleness).
#[derive(Default)]
pub struct BackupMetrics {
    stats: Mutex<BackupStats>,
}

impl BackupMetrics {
    /// A backup attempt: `ok`, how long it took, and (on success) when it finished.
    pub fn created(&self, ok: bool, seconds: f64, finished_unix: i64) {
        let mut s = lock(&self.stats);
        *s.outcomes.entry(("create", if ok { "ok" } else { "failed" })).or_default() += 1;
        if ok {
            s.last_success_unix = Some(finished_unix);
            s.last_seconds = Some(seconds);
        }
    }

    pub fn verified(&self, ok: bool) {
        *lock(&self.stats).outcomes.entry(("verify", if ok { "ok" } else { "failed" })).or_default() += 1;
    }

    fn write(&self, out: &mut String) {
        let s = lock(&self.stats);
        out.push_str(
            "# HELP bravely_backups_total Backups made and verified, by result.
",
        );
        out.push_str(
            "# TYPE bravely_backups_total counter
",
        );
        for ((op, result), n) in &s.outcomes {
            let _ = writeln!(out, "bravely_backups_total{{operation=\"{op}\",result=\"{result}\"}} {n}");
        }
        if let Some(t) = s.last_success_unix {
            out.push_str(
                "# HELP bravely_backup_last_success_timestamp_seconds When the last backup succeeded.
",
            );
            out.push_str(
                "# TYPE bravely_backup_last_success_timestamp_seconds gauge
",
            );
            let _ = writeln!(out, "bravely_backup_last_success_timestamp_seconds {t}");
        }
        if let Some(d) = s.last_seconds {
            out.push_str(
                "# HELP bravely_backup_last_duration_seconds How long the last successful backup took.
",
            );
            out.push_str(
                "# TYPE bravely_backup_last_duration_seconds gauge
",
            );
            let _ = writeln!(out, "bravely_backup_last_duration_seconds {d}");
        }
    }
}

/// The whole scrape.
pub fn render(http: &HttpMetrics, commits: &CommitMetrics, backups: &BackupMetrics) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("# HELP bravely_build_info The running version.\n# TYPE bravely_build_info gauge\n");
    let _ = writeln!(out, "bravely_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    http.write(&mut out);
    commits.write(&mut out);
    backups.write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::new(&[0.25, 1.0]);
        for v in [0.125, 0.25, 0.5, 7.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"0.25\"} 2\nx_bucket{a=\"b\",le=\"1\"} 3\nx_bucket{a=\"b\",le=\"+Inf\"} 4\n\
             x_sum{a=\"b\"} 7.875\nx_count{a=\"b\"} 4\n"
        );
    }

    #[test]
    fn requests_are_counted_by_route_pattern_and_status() {
        let m = HttpMetrics::default();
        let route: Arc<str> = Arc::from("/admin/:slug/");
        m.observe(&Method::GET, &route, 200, 0.002);
        m.observe(&Method::GET, &route, 200, 0.003);
        m.observe(&Method::GET, &route, 403, 0.001);
        let out = render(&m, &CommitMetrics::default(), &BackupMetrics::default());
        assert!(out.contains("bravely_http_requests_total{method=\"GET\",route=\"/admin/:slug/\",status=\"200\"} 2\n"));
        assert!(out.contains("bravely_http_requests_total{method=\"GET\",route=\"/admin/:slug/\",status=\"403\"} 1\n"));
        assert!(out.contains(
            "bravely_http_request_duration_seconds_bucket{method=\"GET\",route=\"/admin/:slug/\",le=\"+Inf\"} 3\n"
        ));
        assert!(out.contains("bravely_store_commit_failures_total 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
