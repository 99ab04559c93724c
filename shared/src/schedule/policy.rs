//! When an integration is next pulled (pure): every minute while orders are arriving in the
//! merchant's business hours, backing off when it is quiet and at night, and never faster than
//! its share of CIN7's daily call limit allows.
//!
//! | | active (an order new or changed in the last 30 min) | quiet up to 2 h | quieter |
//! |---|---|---|---|
//! | business hours | 1 min | 2 min | 5 min |
//! | outside them | 2 min | 15 min | 15 min |
//!
//! The budget: the pull's CIN7 calls today (UTC, as [`crate::store::CallBudget`] counts them)
//! against `import.poll_budget_percent` of the daily limit. The calls left are spread evenly
//! over what is left of the day: the delay is never shorter than the time left divided by the
//! calls left, and once the share is spent the next pull waits for the next day's window.

use crate::settings::ImportSettings;
use chrono::{DateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use std::str::FromStr;
use std::time::Duration;

/// How long after an order arrives the integration counts as active.
pub const ACTIVE_FOR: Duration = Duration::from_secs(30 * 60);
/// How long an integration stays "quiet" (2 min in business hours) before it is "quieter".
pub const QUIET_FOR: Duration = Duration::from_secs(2 * 3600);

const MINUTE: u64 = 60;

/// Opening and closing times, local, `"HH:MM-HH:MM"`; closing before opening spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessHours {
    open: NaiveTime,
    close: NaiveTime,
}

/// Why business hours could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusinessHoursError {
    #[error("{0:?} is not \"HH:MM-HH:MM\"")]
    Format(String),
    #[error("opens and closes at the same time")]
    Empty,
}

impl FromStr for BusinessHours {
    type Err = BusinessHoursError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let format = || BusinessHoursError::Format(s.to_string());
        let (open, close) = s.split_once('-').ok_or_else(format)?;
        let time = |t: &str| {
            let t = t.trim();
            if t == "24:00" {
                return Ok(NaiveTime::MIN);
            }
            if t.len() != 5 {
                return Err(format());
            }
            NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| format())
        };
        if open.trim() == close.trim() {
            return Err(BusinessHoursError::Empty);
        }
        // "00:00-24:00" is the whole day: opening and closing at midnight.
        Ok(Self {
            open: time(open)?,
            close: time(close)?,
        })
    }
}

impl BusinessHours {
    /// Whether the local time `t` is within the hours (opening inclusive, closing exclusive;
    /// all day when they are the same time, as in "00:00-24:00").
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.open < self.close {
            self.open <= t && t < self.close
        } else {
            t >= self.open || t < self.close
        }
    }
}

/// One integration's polling policy, read from its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    hours: BusinessHours,
    zone: Tz,
    /// CIN7 calls a day the pull may use.
    budget: i64,
}

/// Settings the policy could not read (validated settings never give one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("import.business_hours: {0}")]
    Hours(#[from] BusinessHoursError),
    #[error("import.timezone: {0:?} is not an IANA time zone")]
    Zone(String),
}

impl PollPolicy {
    /// The policy of `import` under CIN7's `daily_limit`.
    pub fn of(import: &ImportSettings, daily_limit: i64) -> Result<Self, PolicyError> {
        Ok(Self {
            hours: import.business_hours.parse()?,
            zone: import
                .timezone
                .parse()
                .map_err(|_| PolicyError::Zone(import.timezone.clone()))?,
            budget: daily_limit * i64::from(import.poll_budget_percent.min(100)) / 100,
        })
    }

    /// The policy of the default settings (07:00–19:00 in Auckland, 40 %), for settings it
    /// cannot read.
    pub fn fallback(daily_limit: i64) -> Self {
        Self {
            hours: BusinessHours {
                open: NaiveTime::from_hms_opt(7, 0, 0).unwrap_or(NaiveTime::MIN),
                close: NaiveTime::from_hms_opt(19, 0, 0).unwrap_or(NaiveTime::MIN),
            },
            zone: chrono_tz::Pacific::Auckland,
            budget: daily_limit * 40 / 100,
        }
    }

    /// Whether `at` is in the merchant's business hours, in its time zone.
    pub fn in_business_hours(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone).time();
        self.hours
            .contains(local.with_nanosecond(0).unwrap_or(local))
    }

    /// The delay before the next pull, given when an order last arrived and the pull's CIN7
    /// calls so far today.
    pub fn next_delay(
        &self,
        now: DateTime<Utc>,
        last_activity: Option<DateTime<Utc>>,
        calls_today: i64,
    ) -> Duration {
        let quiet = last_activity
            .map(|a| (now - a).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::MAX);
        let minutes = match (self.in_business_hours(now), quiet) {
            (true, q) if q < ACTIVE_FOR => 1,
            (true, q) if q < QUIET_FOR => 2,
            (true, _) => 5,
            (false, q) if q < ACTIVE_FOR => 2,
            (false, _) => 15,
        };
        let ladder = Duration::from_secs(minutes * MINUTE);
        ladder.max(self.budget_gap(now, calls_today))
    }

    /// The shortest delay the day's budget allows: the rest of the UTC day over the calls left
    /// (until the next day once none is left).
    fn budget_gap(&self, now: DateTime<Utc>, calls_today: i64) -> Duration {
        let midnight = (now.date_naive() + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .map(|m| m.and_utc())
            .unwrap_or(now);
        let left_of_day = (midnight - now).to_std().unwrap_or(Duration::ZERO);
        let calls_left = self.budget - calls_today;
        if calls_left <= 0 {
            return left_of_day + Duration::from_secs(1);
        }
        left_of_day / u32::try_from(calls_left).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy(hours: &str, zone: &str, percent: u8) -> PollPolicy {
        let import = ImportSettings {
            business_hours: hours.into(),
            timezone: zone.into(),
            poll_budget_percent: percent,
            ..ImportSettings::default()
        };
        PollPolicy::of(&import, 5000).unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn business_hours_read_and_span_midnight() {
        let day: BusinessHours = "07:00-19:00".parse().unwrap();
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(day.contains(t(7, 0)) && day.contains(t(18, 59)));
        assert!(!day.contains(t(19, 0)) && !day.contains(t(6, 59)));
        let night: BusinessHours = "22:00-06:00".parse().unwrap();
        assert!(night.contains(t(23, 0)) && night.contains(t(5, 0)) && !night.contains(t(12, 0)));
        let all: BusinessHours = "00:00-24:00".parse().unwrap();
        assert!(all.contains(t(0, 0)) && all.contains(t(23, 59)));
        for bad in [
            "7-19",
            "07:00",
            "07:00-25:00",
            "07:00-07:00",
            "7:00-19:00",
            "",
        ] {
            assert!(bad.parse::<BusinessHours>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fallback_is_the_default_settings_policy() {
        assert_eq!(
            PollPolicy::fallback(5000),
            PollPolicy::of(&ImportSettings::default(), 5000).unwrap()
        );
    }

    #[test]
    fn the_ladder_follows_activity_and_hours() {
        let p = policy("07:00-19:00", "Pacific/Auckland", 100);
        // 10:00 NZDT on 1 December is 21:00 UTC on 30 November.
        let open = utc(2026, 11, 30, 21, 0);
        assert!(p.in_business_hours(open));
        let ago = |m: i64| Some(open - chrono::Duration::minutes(m));
        assert_eq!(p.next_delay(open, ago(5), 0), MIN);
        assert_eq!(p.next_delay(open, ago(29), 0), MIN);
        assert_eq!(p.next_delay(open, ago(31), 0), 2 * MIN);
        assert_eq!(p.next_delay(open, ago(121), 0), 5 * MIN);
        assert_eq!(p.next_delay(open, None, 0), 5 * MIN);
        // 22:00 NZDT.
        let night = utc(2026, 12, 1, 9, 0);
        assert!(!p.in_business_hours(night));
        assert_eq!(p.next_delay(night, Some(night), 0), 2 * MIN);
        assert_eq!(p.next_delay(night, None, 0), 15 * MIN);
    }

    #[test]
    fn business_hours_move_with_daylight_saving() {
        let p = policy("07:00-19:00", "Pacific/Auckland", 40);
        // Before 27 September 2026 (NZST, +12): 07:00 local is 19:00 UTC the day before.
        assert!(!p.in_business_hours(utc(2026, 9, 25, 18, 30)));
        assert!(p.in_business_hours(utc(2026, 9, 25, 19, 0)));
        // After it (NZDT, +13): 07:00 local is 18:00 UTC.
        assert!(p.in_business_hours(utc(2026, 9, 28, 18, 0)));
        assert!(!p.in_business_hours(utc(2026, 9, 28, 17, 59)));
        // Closing follows too: 19:00 NZDT is 06:00 UTC, 19:00 NZST 07:00 UTC.
        assert!(!p.in_business_hours(utc(2026, 9, 29, 6, 0)));
        assert!(p.in_business_hours(utc(2026, 9, 24, 6, 30)));
        // Another zone, another offset: 07:00 in Sydney (AEST, +10) in July is 21:00 UTC.
        let syd = policy("07:00-19:00", "Australia/Sydney", 40);
        assert!(syd.in_business_hours(utc(2026, 7, 1, 21, 0)));
        assert!(!syd.in_business_hours(utc(2026, 7, 1, 20, 59)));
    }

    #[test]
    fn the_budget_caps_the_rate_and_waits_for_the_next_day() {
        // 40 % of 5,000 = 2,000 calls a day.
        let p = policy("00:00-24:00", "UTC", 40);
        let noon = utc(2026, 12, 1, 12, 0);
        // Half the day left, 1,000 calls used: 1,000 left over 43,200 s → 43.2 s, under a minute.
        assert_eq!(p.next_delay(noon, Some(noon), 1000), MIN);
        // 1,900 used: 100 left over 43,200 s → 432 s.
        assert_eq!(
            p.next_delay(noon, Some(noon), 1900),
            Duration::from_secs(432)
        );
        // Spent: the next pull is just after midnight UTC.
        assert_eq!(
            p.next_delay(noon, Some(noon), 2000),
            Duration::from_secs(12 * 3600 + 1)
        );
        // A day of active polling at the delays the policy picks stays within the share.
        let mut t = utc(2026, 12, 1, 0, 0);
        let mut calls = 0;
        while t < utc(2026, 12, 2, 0, 0) {
            calls += 1;
            let d = p.next_delay(t, Some(t), calls);
            t += chrono::Duration::from_std(d).unwrap();
        }
        assert!(calls <= 2000, "{calls}");
        let tight = policy("00:00-24:00", "UTC", 1);
        let mut t = utc(2026, 12, 1, 0, 0);
        let mut calls = 0;
        while t < utc(2026, 12, 2, 0, 0) {
            calls += 1;
            t += chrono::Duration::from_std(tight.next_delay(t, Some(t), calls)).unwrap();
        }
        // Spread over the day: the share is used, never exceeded.
        assert!((49..=50).contains(&calls), "{calls}");
    }
}
