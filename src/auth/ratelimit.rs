//! Failed-login limits per account and per client address, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

pub struct LoginLimiter {
    per_account: u32,
    per_ip: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<DateTime<Utc>>>>,
}

impl LoginLimiter {
    pub fn new(per_account: u32, per_ip: u32, window: Duration) -> Self {
        LoginLimiter { per_account, per_ip, window, failures: Mutex::new(HashMap::new()) }
    }

    fn keys(email: &str, ip: &str) -> (String, String) {
        (format!("acct:{}", email.trim().to_lowercase()), format!("ip:{ip}"))
    }

    /// `Err(minutes to wait)` when either limit is reached.
    pub fn check(&self, email: &str, ip: &str, now: DateTime<Utc>) -> Result<(), i64> {
        let (a, i) = Self::keys(email, ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0;
        for (key, limit) in [(a, self.per_account), (i, self.per_ip)] {
            if let Some(v) = map.get_mut(&key) {
                v.retain(|t| now - *t < self.window);
                if v.len() as u32 >= limit
                    && let Some(first) = v.first()
                {
                    wait = wait.max((*first + self.window - now).num_minutes() + 1);
                }
            }
        }
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    pub fn fail(&self, email: &str, ip: &str, now: DateTime<Utc>) {
        let (a, i) = Self::keys(email, ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, v| v.last().is_some_and(|t| now - *t < self.window));
        }
        map.entry(a).or_default().push(now);
        map.entry(i).or_default().push(now);
    }

    pub fn succeed(&self, email: &str) {
        let (a, _) = Self::keys(email, "");
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_an_account_after_the_limit_and_frees_it_later() {
        let l = LoginLimiter::new(3, 100, Duration::minutes(15));
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        for _ in 0..3 {
            assert!(l.check("a@x.io", "1.1.1.1", t0).is_ok());
            l.fail("a@x.io", "1.1.1.1", t0);
        }
        assert!(l.check("A@x.io", "2.2.2.2", t0).is_err());
        assert!(l.check("b@x.io", "1.1.1.1", t0).is_ok());
        assert!(l.check("a@x.io", "1.1.1.1", t0 + Duration::minutes(16)).is_ok());
    }

    #[test]
    fn limits_an_address_across_accounts() {
        let l = LoginLimiter::new(100, 2, Duration::minutes(15));
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        l.fail("a@x.io", "9.9.9.9", t0);
        l.fail("b@x.io", "9.9.9.9", t0);
        assert!(l.check("c@x.io", "9.9.9.9", t0).is_err());
    }
}
