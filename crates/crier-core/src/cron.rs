//! Schedules in the five-field cron form (`minute hour day-of-month month day-of-week`), read
//! in a time zone, with one rule for daylight-saving changes: **each local time the schedule
//! names is one due time.**
//!
//! - A local time that happens twice (the clocks go back) runs once, at its first instant.
//! - A local time that does not exist (the clocks go forward) runs once, at the instant it
//!   would have been with the offset before the change (02:30 becomes 03:30 in Europe), unless
//!   that instant is itself a due time, which then runs once.
//!
//! Fields take `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, and lists of
//! those separated by commas; months and days of the week also take English three-letter
//! names (`jan`, `mon`). Day of week 0 and 7 are Sunday. As in Vixie cron, when both the day
//! of the month and the day of the week are restricted (neither starts with `*`), a day
//! matching either runs; otherwise a day must match both.
//!
//! Bounds, so a schedule is cheap to keep and to run: at most [`MAX_LEN`] characters and at
//! most [`MAX_PER_HOUR`] minutes an hour; a schedule must have a due time within
//! [`HORIZON_DAYS`] days of any instant (so `0 0 31 2 *`, never due, is refused).

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// The longest schedule text.
pub const MAX_LEN: usize = 100;
/// The most minutes of an hour a schedule may name (at most 4 runs an hour).
pub const MAX_PER_HOUR: usize = 4;
/// How far ahead a due time is looked for: 8 years and a day covers 29 February across a
/// century that skips its leap year.
pub const HORIZON_DAYS: i32 = 8 * 366 + 1;

/// A parsed schedule. Its text is kept as given (trimmed, single spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field: its values as a bit set, and whether it was `*` (unrestricted).
fn field(s: &str, name: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(i as u32 + min);
        }
        match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) && v.len() <= 2 => Ok(n),
            _ => Err(format!("the {name} field has `{v}`; use {min} to {max}")),
        }
    };
    let mut bits = 0u64;
    let mut star = false;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let step = st
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max.max(1)).contains(n) && st.len() <= 2)
                    .ok_or_else(|| format!("the {name} field has a bad step `/{st}`"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            // As in Vixie cron, a field that starts with `*` (`*`, `*/2`) counts as unrestricted
            // for the day-of-month / day-of-week rule.
            star |= s.starts_with('*');
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("the {name} field has a backwards range `{range}`"));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `a/n`: from a to the end, every n.
            (a, if part.contains('/') { max } else { a })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parses a schedule; the error says which field is wrong and why.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > MAX_LEN {
            return Err(format!("a schedule is at most {MAX_LEN} characters"));
        }
        let fields: Vec<&str> = s.split_whitespace().collect();
        let [mi, h, dom, mo, dow] = fields[..] else {
            return Err(
                "a schedule has five fields: minute hour day-of-month month day-of-week".into(),
            );
        };
        let (minutes, _) = field(mi, "minute", 0, 59, &[])?;
        let (hours, _) = field(h, "hour", 0, 23, &[])?;
        let (days, days_star) = field(dom, "day-of-month", 1, 31, &[])?;
        let (months, _) = field(mo, "month", 1, 12, &MONTHS)?;
        let (mut weekdays, weekdays_star) = field(dow, "day-of-week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        if minutes.count_ones() as usize > MAX_PER_HOUR {
            return Err(format!(
                "a schedule runs at most {MAX_PER_HOUR} times an hour (the minute field names {})",
                minutes.count_ones()
            ));
        }
        let schedule = Self {
            text: fields.join(" "),
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_restricted: !days_star,
            weekdays_restricted: !weekdays_star,
        };
        // Never due (31 February): refused rather than kept silent.
        if schedule
            .next_after(Timestamp::UNIX_EPOCH, &TimeZone::UTC)
            .is_none()
        {
            return Err("the schedule is never due (no such date)".into());
        }
        Ok(schedule)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first due time strictly after `after`, in `tz` (see the module documentation for
    /// daylight-saving changes); `None` when there is none within [`HORIZON_DAYS`].
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // From the local day `after` falls in (a time of that day before `after` is skipped by
        // its instant: with a gap or a fold, local order and instant order differ).
        let mut day = after.to_zoned(tz.clone()).date();
        for _ in 0..HORIZON_DAYS {
            if self.day_matches(day) {
                for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    for m in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                        let local = DateTime::from_parts(day, Time::constant(h, m, 0, 0));
                        let at = first_instant(tz, local)?;
                        if at > after {
                            return Some(at);
                        }
                    }
                }
            }
            day = day.checked_add(1.day()).ok()?;
        }
        None
    }
}

/// The instant of a local time: its first when it happens twice, and with the offset before
/// the change when it does not exist.
fn first_instant(tz: &TimeZone, local: DateTime) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(local);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Gap { before, .. } => before.to_timestamp(local).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn runs(schedule: &str, tz: &str, from: &str, until: &str) -> Vec<String> {
        let s = Schedule::parse(schedule).unwrap();
        let tz = TimeZone::get(tz).unwrap();
        let mut out = Vec::new();
        let mut t = at(from);
        while let Some(n) = s.next_after(t, &tz) {
            if n >= at(until) {
                break;
            }
            out.push(n.to_string());
            t = n;
        }
        out
    }

    #[test]
    fn fields_and_errors() {
        for ok in [
            "0 9 * * *",
            "*/15 * * * *",
            "0,30 9-17 * * mon-fri",
            "5 4 1 jan,JUL *",
            "0 0 29 2 *",
            "0 12 * * 7",
            "  0   9 * *  1 ",
            "10/20 * * * *",
        ] {
            assert!(Schedule::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "five fields"),
            ("* * * *", "five fields"),
            ("* * * * * *", "five fields"),
            ("60 * * * *", "minute field"),
            ("* * * * *", "at most 4 times"),
            ("*/10 * * * *", "at most 4 times"),
            ("0 24 * * *", "hour field"),
            ("0 0 0 * *", "day-of-month"),
            ("0 0 * 13 *", "month field"),
            ("0 0 * * 8", "day-of-week"),
            ("0 0 * * funday", "day-of-week"),
            ("0 5-1 * * *", "backwards"),
            ("0 */0 * * *", "bad step"),
            ("0 0 31 2 *", "never due"),
            ("0 0 30 feb *", "never due"),
            ("-1 * * * *", "minute field"),
            ("0009 * * * *", "minute field"),
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("0 0 * * {}", "1,".repeat(60));
        assert!(Schedule::parse(&long).unwrap_err().contains("at most 100"));
        assert_eq!(
            Schedule::parse("  0   9 * *  1 ").unwrap().as_str(),
            "0 9 * * 1"
        );
    }

    #[test]
    fn plain_schedules() {
        assert_eq!(
            runs(
                "0 9 * * mon-fri",
                "UTC",
                "2026-11-27T10:00:00Z",
                "2026-12-02T00:00:00Z"
            ),
            ["2026-11-30T09:00:00Z", "2026-12-01T09:00:00Z"]
        );
        // A day-of-month field starting with `*` counts as unrestricted, as in Vixie cron: odd
        // days that are Mondays, not odd days or Mondays.
        assert_eq!(
            runs(
                "0 0 */2 * mon",
                "UTC",
                "2026-11-29T00:00:00Z",
                "2026-12-15T00:00:00Z"
            ),
            ["2026-12-07T00:00:00Z"]
        );
        // Day of month OR day of week when both are restricted.
        assert_eq!(
            runs(
                "0 0 1 * sun",
                "UTC",
                "2026-11-27T00:00:00Z",
                "2026-12-08T00:00:00Z"
            ),
            [
                "2026-11-29T00:00:00Z",
                "2026-12-01T00:00:00Z",
                "2026-12-06T00:00:00Z"
            ]
        );
        // Strictly after: a due time is not due again.
        let s = Schedule::parse("30 8 * * *").unwrap();
        let t = at("2026-11-27T08:30:00Z");
        assert_eq!(
            s.next_after(t, &TimeZone::UTC).unwrap(),
            at("2026-11-28T08:30:00Z")
        );
        // Leap days, eight years apart across 2100.
        let leap = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at("2096-03-01T00:00:00Z"), &TimeZone::UTC)
                .unwrap(),
            at("2104-02-29T00:00:00Z")
        );
    }

    #[test]
    fn daylight_saving_changes() {
        // Europe/Berlin: the clocks go forward at 02:00 on 2027-03-28 and back at 03:00 on
        // 2027-10-31. A daily 02:30 runs once each day, the missing one an hour on.
        assert_eq!(
            runs(
                "30 2 * * *",
                "Europe/Berlin",
                "2027-03-27T00:00:00Z",
                "2027-03-30T00:00:00Z"
            ),
            [
                "2027-03-27T01:30:00Z",
                "2027-03-28T01:30:00Z",
                "2027-03-29T00:30:00Z"
            ]
        );
        assert_eq!(
            runs(
                "30 2 * * *",
                "Europe/Berlin",
                "2027-10-30T00:00:00Z",
                "2027-11-02T00:00:00Z"
            ),
            [
                "2027-10-30T00:30:00Z",
                "2027-10-31T00:30:00Z",
                "2027-11-01T01:30:00Z"
            ]
        );
        // Hourly at :30 across the night the clocks go back: local 02:30 happens twice and
        // runs once, so the night has one run fewer in local hours than in real ones.
        let back = runs(
            "30 * * * *",
            "Europe/Berlin",
            "2027-10-30T22:00:00Z",
            "2027-10-31T03:00:00Z",
        );
        assert_eq!(
            back,
            [
                "2027-10-30T22:30:00Z",
                "2027-10-30T23:30:00Z",
                "2027-10-31T00:30:00Z",
                "2027-10-31T02:30:00Z"
            ]
        );
        // ... and across the night they go forward: 02:30 does not exist and is 03:30, which
        // is also due itself: one run.
        let forward = runs(
            "30 * * * *",
            "Europe/Berlin",
            "2027-03-27T23:00:00Z",
            "2027-03-28T03:00:00Z",
        );
        assert_eq!(
            forward,
            [
                "2027-03-27T23:30:00Z",
                "2027-03-28T00:30:00Z",
                "2027-03-28T01:30:00Z",
                "2027-03-28T02:30:00Z"
            ]
        );
        // A node that reaches the night's first due time late still runs the times the gap
        // moved after it (02:30 and 02:45 Berlin, which the gap makes 01:30Z and 01:45Z).
        let s = Schedule::parse("30,45 1,2 * * *").unwrap();
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            s.next_after(at("2027-03-28T01:05:00Z"), &tz).unwrap(),
            at("2027-03-28T01:30:00Z")
        );
        // New York, 9:00 every day: always 9:00 local, whatever the offset.
        assert_eq!(
            runs(
                "0 9 * * *",
                "America/New_York",
                "2027-03-13T00:00:00Z",
                "2027-03-16T00:00:00Z"
            ),
            [
                "2027-03-13T14:00:00Z",
                "2027-03-14T13:00:00Z",
                "2027-03-15T13:00:00Z"
            ]
        );
    }
}
