//! Analytics over time: how many targets the workspace published on each day of a range, and
//! the engagement those targets have gathered, in the workspace's time zone.
//!
//! A target's metrics are one reading, overwritten at each collection (crier-store
//! `metrics.rs`), so "engagement of a day" is the engagement, as last collected, of what was
//! published that day. A post sent to three accounts is three publications.
//!
//! Bounded by construction: a range is at most [`MAX_DAYS`] days, storage answers one row per
//! quarter hour of it (never one per target), and the days are folded here. A caller limited
//! to brands or accounts counts only the accounts it reaches ([`crate::reach`]).

use crier_store::Metrics;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::{App, AppError, AppResult, Caller};

/// The longest range [`Analytics::daily`] reads, in days.
pub const MAX_DAYS: u32 = 92;

/// One local day's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayTotals {
    pub date: Date,
    /// Targets published that day.
    pub published: i64,
    /// Their metrics, summed, as last collected.
    pub metrics: Metrics,
}

/// Every day of a range, oldest first, empty days included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daily {
    /// The IANA time zone the days are read in (the workspace's).
    pub timezone: String,
    /// The start of the first day.
    pub from: Timestamp,
    /// The end of the last day (today's end).
    pub to: Timestamp,
    pub days: Vec<DayTotals>,
}

/// The analytics over one [`App`].
pub struct Analytics<'a> {
    pub(crate) app: &'a App,
}

impl Analytics<'_> {
    /// The last `days` days, today included, in the workspace's time zone (1 to
    /// [`MAX_DAYS`]).
    pub async fn daily(&self, c: &Caller, days: u32) -> AppResult<Daily> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(AppError::invalid(
                "days",
                format!("`days` must be from 1 to {MAX_DAYS}."),
            ));
        }
        let workspace = self
            .app
            .store()
            .get_workspace(c.workspace())
            .await?
            .ok_or_else(|| AppError::internal("workspace missing"))?;
        // A stored zone is checked when set; should one ever be unknown, read the days in UTC.
        let tz = TimeZone::get(&workspace.timezone).unwrap_or(TimeZone::UTC);
        let today = self.app.clock().now().to_zoned(tz.clone()).date();
        let (first, from, to) = range(today, days, &tz)
            .ok_or_else(|| AppError::internal("the range is outside the calendar"))?;
        let within = self.app.reach(c).await?.account_list();
        let buckets = self
            .app
            .store()
            .published_by_quarter_hour(
                &c.tenant,
                from.as_millisecond(),
                to.as_millisecond(),
                within.as_deref(),
            )
            .await?;
        Ok(Daily {
            timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
            from,
            to,
            days: fold(first, days, &tz, &buckets),
        })
    }
}

/// The first day of a range of `days` ending `today`, and the range's bounds.
fn range(today: Date, days: u32, tz: &TimeZone) -> Option<(Date, Timestamp, Timestamp)> {
    let first = today
        .checked_sub(jiff::Span::new().days(i64::from(days) - 1))
        .ok()?;
    let from = first.to_zoned(tz.clone()).ok()?.timestamp();
    let to = today
        .tomorrow()
        .ok()?
        .to_zoned(tz.clone())
        .ok()?
        .timestamp();
    Some((first, from, to))
}

/// Quarter-hour buckets (`(start ms, published, metrics)`) folded into the local days from
/// `first`, `days` of them. Every zone's offset is a whole number of quarter hours, so a
/// bucket lies within one local day.
fn fold(first: Date, days: u32, tz: &TimeZone, buckets: &[(i64, i64, Metrics)]) -> Vec<DayTotals> {
    let mut out: Vec<DayTotals> = Vec::with_capacity(days as usize);
    let mut date = first;
    for _ in 0..days {
        out.push(DayTotals {
            date,
            published: 0,
            metrics: Metrics::default(),
        });
        match date.tomorrow() {
            Ok(d) => date = d,
            Err(_) => break,
        }
    }
    for (start, published, m) in buckets {
        let Ok(at) = Timestamp::from_millisecond(*start) else {
            continue;
        };
        let day = at.to_zoned(tz.clone()).date();
        let Some(slot) = out.iter_mut().find(|d| d.date == day) else {
            continue;
        };
        slot.published += published;
        slot.metrics.likes += m.likes;
        slot.metrics.reposts += m.reposts;
        slot.metrics.replies += m.replies;
        slot.metrics.impressions += m.impressions;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(likes: i64) -> Metrics {
        Metrics {
            likes,
            reposts: 1,
            replies: 2,
            impressions: 10,
        }
    }

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn buckets_fold_into_local_days_across_a_dst_change() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // Clocks go back on 2026-10-25 (a 25-hour day).
        let today: Date = "2026-10-26".parse().unwrap();
        let (first, from, to) = range(today, 3, &tz).unwrap();
        assert_eq!(first.to_string(), "2026-10-24");
        assert_eq!(from, "2026-10-23T22:00:00Z".parse().unwrap());
        assert_eq!(to, "2026-10-26T23:00:00Z".parse().unwrap());
        let buckets = [
            (ms("2026-10-23T22:00:00Z"), 1, m(1)), // 00:00 on the 24th, local
            (ms("2026-10-24T21:45:00Z"), 2, m(2)), // 23:45 on the 24th (CEST)
            (ms("2026-10-25T22:45:00Z"), 3, m(3)), // 23:45 on the 25th (CET)
            (ms("2026-10-25T23:00:00Z"), 4, m(4)), // 00:00 on the 26th
        ];
        let days = fold(first, 3, &tz, &buckets);
        let got: Vec<(String, i64, i64, i64)> = days
            .iter()
            .map(|d| {
                (
                    d.date.to_string(),
                    d.published,
                    d.metrics.likes,
                    d.metrics.impressions,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("2026-10-24".into(), 3, 3, 20),
                ("2026-10-25".into(), 3, 3, 10),
                ("2026-10-26".into(), 4, 4, 10),
            ]
        );
    }

    #[test]
    fn a_zone_a_quarter_hour_off_the_hour_keeps_its_days() {
        let tz = TimeZone::get("Asia/Kathmandu").unwrap(); // +05:45
        let today: Date = "2026-11-22".parse().unwrap();
        let (first, from, _) = range(today, 1, &tz).unwrap();
        assert_eq!(from, "2026-11-21T18:15:00Z".parse().unwrap());
        let buckets = [
            (ms("2026-11-21T18:00:00Z"), 9, m(9)), // 23:45 the day before: outside
            (ms("2026-11-21T18:15:00Z"), 1, m(1)),
        ];
        let days = fold(first, 1, &tz, &buckets);
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].published, 1);
    }
}
