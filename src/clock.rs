//! The one place that reads the wall clock. Everything else receives a [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};

/// Source of "now". The server uses [`Clock::system`]; tests inject [`Clock::manual`].
#[derive(Clone)]
pub struct Clock(Arc<Inner>);

enum Inner {
    System,
    /// Microseconds since the Unix epoch, settable by tests.
    Manual(AtomicI64),
}

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(Inner::System))
    }

    pub fn manual(start: DateTime<Utc>) -> Self {
        Clock(Arc::new(Inner::Manual(AtomicI64::new(start.timestamp_micros()))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Inner::System => Utc::now(),
            Inner::Manual(us) => DateTime::from_timestamp_micros(us.load(Ordering::SeqCst)).unwrap_or_default(),
        }
    }

    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// Moves a manual clock; a no-op on the system clock.
    pub fn advance(&self, by: chrono::Duration) {
        if let Inner::Manual(us) = &*self.0 {
            us.fetch_add(by.num_microseconds().unwrap_or(0), Ordering::SeqCst);
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        if let Inner::Manual(us) = &*self.0 {
            us.store(to.timestamp_micros(), Ordering::SeqCst);
        }
    }

    /// Monotonic instant for measuring durations (not a calendar time).
    pub fn instant(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Inner::System => f.write_str("Clock::System"),
            Inner::Manual(_) => write!(f, "Clock::Manual({})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-01-31T23:30:00Z").expect("valid").with_timezone(&Utc);
        let c = Clock::manual(start);
        assert_eq!(c.now(), start);
        c.advance(chrono::Duration::minutes(45));
        assert_eq!(c.today(), NaiveDate::from_ymd_opt(2026, 2, 1).expect("valid"));
    }
}
