//! Cron schedules, evaluated in the company's time zone.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

/// A parsed cron expression with the text it came from.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl Schedule {
    /// Five fields (`minute hour day-of-month month day-of-week`) or a nickname such as
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && fields != 5 {
            return Err(format!(
                "{text:?} is not a cron expression: give five fields (minute hour day month weekday), \
                 e.g. \"0 */4 * * *\" for every four hours"
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .build()
            .parse(text)
            .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))?;
        Ok(Schedule { text: text.to_string(), cron })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// In words, e.g. "At minute 0 past every 4th hour".
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The first scheduled time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t.with_timezone(&tz), false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The last scheduled time at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&t.with_timezone(&tz), true).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The longest gap between consecutive runs over the next few weeks (for staleness checks:
    /// "0 9 * * 1-5" has a three-day gap over the weekend).
    pub fn longest_interval(&self, from: DateTime<Utc>, tz: Tz) -> Duration {
        let mut longest = Duration::zero();
        let mut prev = match self.next_after(from, tz) {
            Some(t) => t,
            None => return Duration::days(366),
        };
        let horizon = from + Duration::days(35);
        for _ in 0..2000 {
            let Some(next) = self.next_after(prev, tz) else { break };
            longest = longest.max(next - prev);
            if next > horizon {
                break;
            }
            prev = next;
        }
        if longest.is_zero() { Duration::days(366) } else { longest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("valid").with_timezone(&Utc)
    }

    #[test]
    fn every_four_hours() {
        let s = Schedule::parse("0 */4 * * *").expect("valid");
        let tz: Tz = "UTC".parse().expect("tz");
        assert_eq!(s.next_after(at("2026-03-02T09:00:00Z"), tz), Some(at("2026-03-02T12:00:00Z")));
        assert_eq!(s.next_after(at("2026-03-02T12:00:00Z"), tz), Some(at("2026-03-02T16:00:00Z")));
        assert_eq!(s.latest_at_or_before(at("2026-03-02T15:59:00Z"), tz), Some(at("2026-03-02T12:00:00Z")));
        assert_eq!(s.longest_interval(at("2026-03-02T09:00:00Z"), tz), Duration::hours(4));
    }

    #[test]
    fn runs_in_the_company_time_zone() {
        let s = Schedule::parse("0 3 * * *").expect("valid");
        let tz: Tz = "Europe/Warsaw".parse().expect("tz");
        // 03:00 in Warsaw in March (before DST) is 02:00 UTC.
        assert_eq!(s.next_after(at("2026-03-02T09:00:00Z"), tz), Some(at("2026-03-03T02:00:00Z")));
    }

    #[test]
    fn weekday_schedules_allow_the_weekend_gap() {
        let s = Schedule::parse("0 9 * * 1-5").expect("valid");
        let tz: Tz = "UTC".parse().expect("tz");
        assert_eq!(s.longest_interval(at("2026-03-02T09:00:00Z"), tz), Duration::days(3));
    }

    #[test]
    fn bad_expressions_are_explained() {
        let e = Schedule::parse("every 4 hours").unwrap_err();
        assert!(e.contains("five fields"), "{e}");
        let e = Schedule::parse("0 25 * * *").unwrap_err();
        assert!(e.contains("not a valid cron expression"), "{e}");
        assert!(Schedule::parse("@weekly").is_ok());
    }
}
