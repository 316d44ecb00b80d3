//! Weekly posting slots in a workspace's IANA time zone. A slot is a weekday and a local time
//! ("Monday 09:00"); its instants are computed in the zone for each date, so 09:00 stays 09:00
//! local across daylight-saving changes. A slot that falls into a spring-forward gap moves
//! forward by the gap (02:30 becomes 03:30); in an autumn fold it is the first 01:30.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// How far ahead a free slot is looked for.
pub const HORIZON_WEEKS: i64 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    /// ISO weekday, 1 (Monday) to 7 (Sunday).
    pub weekday: i64,
    /// Minutes after local midnight, 0 to 1439.
    pub minute: i64,
}

impl Slot {
    /// Parses `("monday", "09:30")`; day names may be abbreviated to three letters.
    pub fn parse(day: &str, time: &str) -> Option<Slot> {
        let day = day.to_ascii_lowercase();
        let weekday = DAYS.iter().position(|d| day == *d || day == d[..3])? as i64 + 1;
        let (h, m) = time.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        ((0..24).contains(&h) && (0..60).contains(&m)).then_some(Slot {
            weekday,
            minute: h * 60 + m,
        })
    }

    pub fn day_name(self) -> &'static str {
        DAYS[(self.weekday - 1).clamp(0, 6) as usize]
    }

    pub fn time(self) -> String {
        format!("{:02}:{:02}", self.minute / 60, self.minute % 60)
    }

    /// This slot's instant on `date` in `tz` (if `date` is its weekday).
    pub fn on(self, date: Date, tz: &TimeZone) -> Option<Timestamp> {
        if date.weekday().to_monday_one_offset() as i64 != self.weekday {
            return None;
        }
        let time = Time::new((self.minute / 60) as i8, (self.minute % 60) as i8, 0, 0).ok()?;
        tz.to_ambiguous_zoned(date.to_datetime(time))
            .compatible()
            .ok()
            .map(|z| z.timestamp())
    }
}

/// The first slot instant strictly after `after` that `taken` does not already hold, looking
/// up to `weeks` weeks ahead. `taken` holds instants in milliseconds.
pub fn next_free(
    slots: &[Slot],
    tz: &TimeZone,
    after: Timestamp,
    taken: &[i64],
    weeks: i64,
) -> Option<Timestamp> {
    if slots.is_empty() {
        return None;
    }
    let mut sorted = slots.to_vec();
    sorted.sort();
    let start = after.to_zoned(tz.clone()).date();
    for day in 0..(weeks * 7 + 1) {
        let date = start.checked_add(day.days()).ok()?;
        let wd = date.weekday();
        for slot in sorted
            .iter()
            .filter(|s| s.weekday == wd.to_monday_one_offset() as i64)
        {
            if let Some(at) = slot.on(date, tz)
                && at > after
                && !taken.contains(&at.as_millisecond())
            {
                return Some(at);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parse_slots() {
        assert_eq!(
            Slot::parse("monday", "09:30"),
            Some(Slot {
                weekday: 1,
                minute: 570
            })
        );
        assert_eq!(
            Slot::parse("Sun", "23:59"),
            Some(Slot {
                weekday: 7,
                minute: 1439
            })
        );
        for (d, t) in [
            ("funday", "09:00"),
            ("mon", "24:00"),
            ("mon", "9:00"),
            ("mon", "09:60"),
            ("monx", "09:00"),
        ] {
            assert_eq!(Slot::parse(d, t), None, "{d} {t}");
        }
    }

    #[test]
    fn berlin_slots_keep_local_time_across_spring_forward() {
        // Europe/Berlin moves from +01:00 to +02:00 on Sunday 2026-03-29 at 02:00.
        let berlin = tz("Europe/Berlin");
        let sun_0900 = Slot::parse("sunday", "09:00").unwrap();
        let before = next_free(&[sun_0900], &berlin, ts("2026-03-22T12:00:00Z"), &[], 2).unwrap();
        assert_eq!(
            before,
            ts("2026-03-29T07:00:00Z"),
            "09:00 CEST is 07:00 UTC"
        );
        let prev_week =
            next_free(&[sun_0900], &berlin, ts("2026-03-15T00:00:00Z"), &[], 2).unwrap();
        assert_eq!(
            prev_week,
            ts("2026-03-15T08:00:00Z"),
            "09:00 CET is 08:00 UTC"
        );
        // 02:30 does not exist that day: it moves forward to 03:30 CEST.
        let gap = Slot::parse("sunday", "02:30").unwrap();
        let at = next_free(&[gap], &berlin, ts("2026-03-28T12:00:00Z"), &[], 1).unwrap();
        assert_eq!(at, ts("2026-03-29T01:30:00Z"));
    }

    #[test]
    fn new_york_slots_across_fall_back() {
        // America/New_York falls back from -04:00 to -05:00 on Sunday 2026-11-01 at 02:00.
        let ny = tz("America/New_York");
        let sun_0130 = Slot::parse("sunday", "01:30").unwrap();
        let at = next_free(&[sun_0130], &ny, ts("2026-10-31T12:00:00Z"), &[], 1).unwrap();
        assert_eq!(at, ts("2026-11-01T05:30:00Z"), "the first 01:30 (EDT)");
        let mon_0900 = Slot::parse("monday", "09:00").unwrap();
        let at = next_free(&[mon_0900], &ny, ts("2026-10-31T12:00:00Z"), &[], 1).unwrap();
        assert_eq!(at, ts("2026-11-02T14:00:00Z"), "09:00 EST is 14:00 UTC");
    }

    #[test]
    fn next_free_skips_taken_and_past_slots() {
        let utc = TimeZone::UTC;
        let slots = [
            Slot::parse("mon", "09:00").unwrap(),
            Slot::parse("mon", "17:00").unwrap(),
        ];
        // 2026-11-23 is a Monday.
        let now = ts("2026-11-23T10:00:00Z");
        let first = next_free(&slots, &utc, now, &[], 2).unwrap();
        assert_eq!(first, ts("2026-11-23T17:00:00Z"));
        let second = next_free(&slots, &utc, now, &[first.as_millisecond()], 2).unwrap();
        assert_eq!(second, ts("2026-11-30T09:00:00Z"));
        assert_eq!(next_free(&[], &utc, now, &[], 2), None);
    }
}
