//! The project's daily YouTube Data API quota, as this process has spent it.
//!
//! "Quota calculator" (developers.google.com/youtube/v3/determine_quota_cost): every project
//! has 10,000 units a day; every request costs at least one unit (list calls cost 1), and
//! "daily quotas reset at midnight Pacific Time (PT)". How `videos.insert` is charged has
//! changed: the page long said 1,600 units out of those 10,000 ([`Quota::LEGACY`], still what
//! most guides quote); the current page says `videos.insert` (like `search.list`) has "its own
//! quota bucket" with "a default daily limit of 100 per day" at "1 per call"
//! ([`Quota::CURRENT`], the default here). An operator whose project is still charged the old
//! way picks [`Quota::LEGACY`] (`YouTube::with_quota`).
//!
//! The counter is per process and in memory (bounded: one entry per OAuth client, the day's
//! only): two crier processes sharing one Google project each count their own spending, so the
//! local refusal is a courtesy that saves a refused call; Google's own `quotaExceeded` answer
//! is still mapped to the same [`NetworkError::RateLimited`] and marks the day as spent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::NetworkError;

/// How a project's daily quota is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Units a day for every call but the separately counted uploads.
    pub daily_units: u64,
    /// Units one `videos.insert` costs out of `daily_units` (0 where uploads have their own
    /// bucket).
    pub insert_units: u64,
    /// Uploads a day in their own bucket, where they have one.
    pub daily_inserts: Option<u64>,
}

impl Quota {
    /// The current quota calculator: 10,000 units, uploads in their own bucket of 100 a day.
    pub const CURRENT: Quota = Quota {
        daily_units: 10_000,
        insert_units: 0,
        daily_inserts: Some(100),
    };
    /// The long-documented charge: an upload costs 1,600 of the 10,000 units.
    pub const LEGACY: Quota = Quota {
        daily_units: 10_000,
        insert_units: 1_600,
        daily_inserts: None,
    };
}

impl Default for Quota {
    fn default() -> Self {
        Self::CURRENT
    }
}

/// The cost of one list call (`channels.list`, `videos.list`, `playlistItems.list`).
pub const LIST_COST: u64 = 1;

/// The most OAuth clients (Google projects) one process tracks.
const MAX_PROJECTS: usize = 256;

/// What one project spent on one quota day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Spent {
    /// The quota day, as the Pacific date's days since the epoch.
    day: i32,
    units: u64,
    inserts: u64,
}

/// The spending of each project (OAuth client id) today, in this process.
#[derive(Debug, Default)]
pub struct Ledger(Mutex<HashMap<String, Spent>>);

impl Ledger {
    /// Whether an upload still fits today; `RateLimited` until the next reset when it does not.
    pub fn check_insert(
        &self,
        quota: &Quota,
        project: &str,
        now_ms: i64,
    ) -> Result<(), NetworkError> {
        let s = self.today(project, now_ms);
        let units_over = s.units.saturating_add(quota.insert_units.max(1)) > quota.daily_units;
        let inserts_over = quota.daily_inserts.is_some_and(|max| s.inserts >= max);
        if units_over || inserts_over {
            return Err(NetworkError::RateLimited {
                retry_after: Some(until_reset(now_ms)),
            });
        }
        Ok(())
    }

    /// Charges an upload (`videos.insert`).
    pub fn charge_insert(&self, quota: &Quota, project: &str, now_ms: i64) {
        self.update(project, now_ms, |s| {
            s.units = s.units.saturating_add(quota.insert_units.max(1));
            s.inserts = s.inserts.saturating_add(1);
        });
    }

    /// Charges `units` of list calls.
    pub fn charge(&self, project: &str, now_ms: i64, units: u64) {
        self.update(project, now_ms, |s| s.units = s.units.saturating_add(units));
    }

    /// Google said the quota is spent: nothing more is sent today.
    pub fn exhaust(&self, project: &str, now_ms: i64) {
        self.update(project, now_ms, |s| {
            s.units = u64::MAX / 2;
            s.inserts = u64::MAX / 2;
        });
    }

    /// Units and uploads spent today (tests, diagnostics).
    pub fn spent(&self, project: &str, now_ms: i64) -> (u64, u64) {
        let s = self.today(project, now_ms);
        (s.units, s.inserts)
    }

    fn today(&self, project: &str, now_ms: i64) -> Spent {
        let day = quota_day(now_ms);
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(project) {
            Some(s) if s.day == day => *s,
            _ => Spent {
                day,
                ..Spent::default()
            },
        }
    }

    fn update(&self, project: &str, now_ms: i64, f: impl FnOnce(&mut Spent)) {
        let day = quota_day(now_ms);
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Yesterday's spending is of no use: drop it before the map may grow.
        m.retain(|_, s| s.day == day);
        if m.len() >= MAX_PROJECTS && !m.contains_key(project) {
            return;
        }
        let s = m.entry(project.to_owned()).or_insert(Spent {
            day,
            ..Spent::default()
        });
        f(s);
    }
}

fn pacific() -> jiff::tz::TimeZone {
    // Bundled with jiff (`tzdb-bundle-always`), so this is found on every machine.
    jiff::tz::TimeZone::get("America/Los_Angeles").unwrap_or(jiff::tz::TimeZone::UTC)
}

fn zoned(now_ms: i64) -> jiff::Zoned {
    jiff::Timestamp::from_millisecond(now_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(pacific())
}

/// The quota day `now_ms` falls in: the Pacific date, as days since the epoch.
fn quota_day(now_ms: i64) -> i32 {
    let date = zoned(now_ms).date();
    date.since(jiff::civil::date(1970, 1, 1))
        .map(|span| span.get_days())
        .unwrap_or(0)
}

/// The next midnight in Pacific Time after `now_ms` (epoch ms): when YouTube quotas reset.
pub fn next_reset_ms(now_ms: i64) -> i64 {
    let z = zoned(now_ms);
    z.date()
        .tomorrow()
        .ok()
        .and_then(|d| d.to_zoned(pacific()).ok())
        .map(|m| m.timestamp().as_millisecond())
        .unwrap_or(now_ms + 24 * 3600 * 1000)
}

/// The pause until the next quota reset.
pub fn until_reset(now_ms: i64) -> Duration {
    Duration::from_millis(next_reset_ms(now_ms).saturating_sub(now_ms).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn the_quota_resets_at_pacific_midnight_in_summer_and_winter() {
        // PDT (UTC-7): midnight is 07:00 UTC.
        assert_eq!(
            next_reset_ms(ms("2026-07-01T06:59:59Z")),
            ms("2026-07-01T07:00:00Z")
        );
        assert_eq!(
            next_reset_ms(ms("2026-07-01T07:00:00Z")),
            ms("2026-07-02T07:00:00Z")
        );
        // PST (UTC-8): midnight is 08:00 UTC.
        assert_eq!(
            next_reset_ms(ms("2026-12-02T09:00:00Z")),
            ms("2026-12-03T08:00:00Z")
        );
        // The day DST ends (2026-11-01) has 25 hours.
        assert_eq!(
            next_reset_ms(ms("2026-11-01T07:00:00Z")),
            ms("2026-11-02T08:00:00Z")
        );
    }

    #[test]
    fn uploads_are_refused_when_the_day_is_spent_and_allowed_after_the_reset() {
        let l = Ledger::default();
        let q = Quota::LEGACY;
        let t = ms("2026-12-02T09:00:00Z");
        for _ in 0..6 {
            l.check_insert(&q, "p", t).unwrap();
            l.charge_insert(&q, "p", t);
        }
        assert_eq!(l.spent("p", t), (9_600, 6));
        let Err(NetworkError::RateLimited { retry_after }) = l.check_insert(&q, "p", t) else {
            panic!("the seventh upload does not fit in 10,000 units")
        };
        assert_eq!(retry_after, Some(Duration::from_secs(23 * 3600)));
        assert!(l.check_insert(&q, "other", t).is_ok(), "per project");
        assert!(l.check_insert(&q, "p", ms("2026-12-03T08:00:00Z")).is_ok());
        let c = Quota::CURRENT;
        l.exhaust("p", t);
        assert!(l.check_insert(&c, "p", t).is_err());
    }
}
