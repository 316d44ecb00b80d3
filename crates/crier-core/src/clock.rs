//! Time as an injected dependency: production code asks a [`Clock`], tests move a
//! [`ManualClock`] to walk through expiry, rotation overlap and rate-limit windows.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.as_millisecond())))
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, to: Timestamp) {
        self.0.store(to.as_millisecond(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).expect("clock in range")
    }

    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the Unix epoch to a timestamp; storage keeps times as BIGINT ms.
pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The UTC calendar day `ms` falls in, as `YYYY-MM-DD`.
pub fn utc_day(ms: i64) -> String {
    from_ms(ms)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .strftime("%Y-%m-%d")
        .to_string()
}

/// A usage period: a calendar month in UTC, e.g. `2026-11`, and its bounds in epoch ms
/// (`start` inclusive, `end` exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    pub period: String,
    pub start: i64,
    pub end: i64,
}

impl Month {
    /// The month `ms` falls in.
    pub fn of(ms: i64) -> Self {
        let date = from_ms(ms).to_zoned(jiff::tz::TimeZone::UTC).date();
        let first = date.first_of_month();
        let next = first
            .checked_add(jiff::Span::new().months(1))
            .unwrap_or(first);
        let at = |d: jiff::civil::Date| {
            d.to_zoned(jiff::tz::TimeZone::UTC)
                .map_or(i64::MAX, |z| z.timestamp().as_millisecond())
        };
        Self {
            period: first.strftime("%Y-%m").to_string(),
            start: at(first),
            end: at(next),
        }
    }
}

#[cfg(test)]
mod month_tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_month_is_its_utc_calendar_month() {
        let m = Month::of(ms("2026-11-30T23:59:59.999Z"));
        assert_eq!(m.period, "2026-11");
        assert_eq!(m.start, ms("2026-11-01T00:00:00Z"));
        assert_eq!(m.end, ms("2026-12-01T00:00:00Z"));
        let d = Month::of(ms("2026-12-31T12:00:00Z"));
        assert_eq!(
            (d.period.as_str(), d.end),
            ("2026-12", ms("2027-01-01T00:00:00Z"))
        );
        assert_eq!(Month::of(m.end).period, "2026-12");
    }
}
