//! How the CIN7 sandbox writes and compares dates.
//!
//! CIN7's official samples return the account's local time with its offset and six digits of a
//! second (`2024-03-20T13:30:44.518448+13:00`); in which zone a `where` clause compares is not
//! documented. The sandbox's default takes the pessimistic reading: dates are written in New
//! Zealand time (NZST +12:00, NZDT +13:00 from the last Sunday of September to the first Sunday
//! of April), and a `where` value on a date is compared as a local wall-clock time, whatever
//! zone designator it carries — so a cursor written in UTC re-reads half a day, and the hour
//! the clocks go back repeats. Orders are still sorted by instant.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use shared::timestamp::Timestamp;

/// How dates are written and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountTime {
    /// New Zealand local time with its offset and six digits, compared as wall-clock times.
    #[default]
    Auckland,
    /// UTC with `Z`, compared as instants (what the first notes assumed).
    Utc,
}

impl AccountTime {
    /// A stored date as the sandbox serves it.
    pub fn write(&self, instant: DateTime<Utc>) -> String {
        match self {
            Self::Utc => instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            Self::Auckland => {
                let offset = nz_offset(instant);
                instant
                    .with_timezone(&offset)
                    .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
                    .to_string()
            }
        }
    }

    /// What a date is compared as: the instant (UTC mode) or the local wall-clock time
    /// (Auckland mode), as a naive time.
    pub fn comparable_stored(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Self::Utc => instant.naive_utc(),
            Self::Auckland => instant.with_timezone(&nz_offset(instant)).naive_local(),
        }
    }

    /// What a `where` value is compared as: its instant (UTC mode), or the wall-clock time it
    /// was written with, its designator ignored (Auckland mode).
    pub fn comparable_literal(&self, literal: &Timestamp) -> NaiveDateTime {
        match self {
            Self::Utc => literal.instant().naive_utc(),
            Self::Auckland => {
                let offset = literal.form().zone.offset_seconds();
                match FixedOffset::east_opt(offset) {
                    Some(zone) => literal.instant().with_timezone(&zone).naive_local(),
                    None => literal.instant().naive_utc(),
                }
            }
        }
    }
}

/// New Zealand's offset at an instant: +13:00 from the last Sunday of September, 02:00 NZST,
/// to the first Sunday of April, 03:00 NZDT (both 14:00 UTC the day before); +12:00 otherwise.
pub fn nz_offset(instant: DateTime<Utc>) -> FixedOffset {
    let year = instant.year();
    let daylight = instant < daylight_ends(year) || instant >= daylight_starts(year);
    let hours = if daylight { 13 } else { 12 };
    FixedOffset::east_opt(hours * 3600).unwrap_or_else(|| chrono::Offset::fix(&Utc))
}

/// 14:00 UTC on the Saturday before the first Sunday of April.
fn daylight_ends(year: i32) -> DateTime<Utc> {
    let april = NaiveDate::from_ymd_opt(year, 4, 1).unwrap_or_default();
    let sunday =
        april + Duration::days(i64::from((7 - april.weekday().num_days_from_sunday()) % 7));
    the_day_before_at_14_utc(sunday)
}

/// 14:00 UTC on the Saturday before the last Sunday of September.
fn daylight_starts(year: i32) -> DateTime<Utc> {
    let last = NaiveDate::from_ymd_opt(year, 9, 30).unwrap_or_default();
    let sunday = last - Duration::days(i64::from(last.weekday().num_days_from_sunday()));
    the_day_before_at_14_utc(sunday)
}

fn the_day_before_at_14_utc(day: NaiveDate) -> DateTime<Utc> {
    let before = day - Duration::days(1);
    Utc.from_utc_datetime(&before.and_hms_opt(14, 0, 0).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn new_zealand_offsets_around_both_changes() {
        // 2026: daylight ends Sunday 5 April 03:00 NZDT; starts Sunday 27 September 02:00 NZST.
        let t = AccountTime::Auckland;
        assert_eq!(
            t.write(utc("2026-04-04T13:59:59Z")),
            "2026-04-05T02:59:59.000000+13:00"
        );
        assert_eq!(
            t.write(utc("2026-04-04T14:00:00Z")),
            "2026-04-05T02:00:00.000000+12:00"
        );
        assert_eq!(
            t.write(utc("2026-09-26T13:59:59Z")),
            "2026-09-27T01:59:59.000000+12:00"
        );
        assert_eq!(
            t.write(utc("2026-09-26T14:00:00Z")),
            "2026-09-27T03:00:00.000000+13:00"
        );
        assert_eq!(
            t.write(utc("2026-12-01T09:00:00.5Z")),
            "2026-12-01T22:00:00.500000+13:00"
        );
        assert_eq!(
            t.write(utc("2026-07-01T09:00:00Z")),
            "2026-07-01T21:00:00.000000+12:00"
        );
        assert_eq!(
            AccountTime::Utc.write(utc("2026-07-01T09:00:00Z")),
            "2026-07-01T09:00:00.000Z"
        );
    }

    #[test]
    fn literals_compare_by_their_wall_clock() {
        let t = AccountTime::Auckland;
        let z = Timestamp::parse("2026-11-20T01:00:00Z").unwrap().unwrap();
        let local = Timestamp::parse("2026-11-20T14:00:00+13:00")
            .unwrap()
            .unwrap();
        assert_eq!(z.instant(), local.instant());
        // The same instant: as a wall clock, the UTC literal reads thirteen hours earlier.
        assert_eq!(t.comparable_literal(&z).to_string(), "2026-11-20 01:00:00");
        assert_eq!(
            t.comparable_literal(&local).to_string(),
            t.comparable_stored(local.instant()).to_string()
        );
        assert_eq!(
            AccountTime::Utc.comparable_literal(&local),
            AccountTime::Utc.comparable_stored(z.instant())
        );
    }
}
