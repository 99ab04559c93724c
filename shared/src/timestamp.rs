//! A timestamp as an API wrote it: the instant, and the form it was written in — its zone
//! designator (`Z`, an offset such as `+13:00`, or none) and how many digits of a second.
//!
//! CIN7's official samples return local offsets (`2024-03-20T13:30:44.518448+13:00`), and in
//! which zone its `where` clause compares is not documented. The pull therefore keeps its cursor
//! in the form CIN7 returned and writes every `where` value in that form ([`Timestamp::text`]),
//! so whatever zone CIN7 compares in, the value is one CIN7 itself wrote.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A text that is not a timestamp in any form CIN7 or GoSweetSpot write (its first 64
/// characters, for the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable date {0:?}")]
pub struct UnreadableDate(pub String);

/// The zone designator of a written timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    /// `Z`.
    Utc,
    /// A numeric offset, in seconds east of UTC (`+13:00` is 46 800).
    Offset(i32),
    /// None: the wall time alone (read as UTC).
    Naive,
}

impl Zone {
    /// Seconds east of UTC (`Utc` and `Naive` are 0).
    pub fn offset_seconds(&self) -> i32 {
        match self {
            Self::Offset(s) => *s,
            Self::Utc | Self::Naive => 0,
        }
    }
}

/// How a timestamp was written: its zone and its fraction digits (0–9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Form {
    pub zone: Zone,
    pub digits: u8,
}

impl Form {
    /// `YYYY-MM-DDTHH:MM:SSZ`: whole seconds, UTC.
    pub const UTC_SECONDS: Form = Form {
        zone: Zone::Utc,
        digits: 0,
    };
}

/// An instant and the form it was (or is to be) written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    instant: DateTime<Utc>,
    form: Form,
}

impl Timestamp {
    /// `instant` written as `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn utc(instant: DateTime<Utc>) -> Self {
        Self {
            instant,
            form: Form::UTC_SECONDS,
        }
    }

    /// Reads a timestamp as CIN7 and GoSweetSpot write them: RFC 3339 (`Z` or an offset, with
    /// or without a colon), a naive `YYYY-MM-DDTHH:MM:SS[.fffffff]` (or with a space), or a bare
    /// date (midnight). Years before 1900 are the .NET "no date" placeholder: `None`.
    pub fn parse(text: &str) -> Result<Option<Self>, UnreadableDate> {
        let s = text.trim();
        let unreadable = || UnreadableDate(s.chars().take(64).collect());
        let digits = fraction_digits(s);
        let (instant, zone) = if let Ok(d) = DateTime::parse_from_rfc3339(s) {
            let zone = if s.ends_with(['Z', 'z']) {
                Zone::Utc
            } else {
                Zone::Offset(d.offset().local_minus_utc())
            };
            (d.with_timezone(&Utc), zone)
        } else if let Ok(d) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
            (
                d.with_timezone(&Utc),
                Zone::Offset(d.offset().local_minus_utc()),
            )
        } else if let Ok(n) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        {
            (Utc.from_utc_datetime(&n), Zone::Naive)
        } else {
            let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| unreadable())?;
            (
                Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)),
                Zone::Naive,
            )
        };
        if chrono::Datelike::year(&instant) < 1900 {
            return Ok(None);
        }
        Ok(Some(Self {
            instant,
            form: Form { zone, digits },
        }))
    }

    /// The instant.
    pub fn instant(&self) -> DateTime<Utc> {
        self.instant
    }

    /// The form it is written in.
    pub fn form(&self) -> Form {
        self.form
    }

    /// Another instant, written in this form.
    pub fn at(&self, instant: DateTime<Utc>) -> Self {
        Self {
            instant,
            form: self.form,
        }
    }

    /// The same instant, written in `form`.
    pub fn in_form(&self, form: Form) -> Self {
        Self {
            instant: self.instant,
            form,
        }
    }

    /// This timestamp moved back by `by`, in the same form.
    pub fn earlier_by(&self, by: Duration) -> Self {
        self.at(self.instant - by)
    }

    /// The start of its second (the fraction, if written, becomes zeros).
    pub fn whole_second(&self) -> Self {
        use chrono::SubsecRound;
        self.at(self.instant.trunc_subsecs(0))
    }

    /// The text, in its form: e.g. `2024-03-20T13:30:44.518448+13:00`.
    pub fn text(&self) -> String {
        let offset = self.form.zone.offset_seconds();
        let wall = match FixedOffset::east_opt(offset) {
            Some(zone) => self.instant.with_timezone(&zone).naive_local(),
            None => self.instant.naive_utc(),
        };
        let mut text = wall.format("%Y-%m-%dT%H:%M:%S").to_string();
        let digits = usize::from(self.form.digits.min(9));
        if digits > 0 {
            let nanos = format!(
                "{:09}",
                wall.and_utc().timestamp_subsec_nanos() % 1_000_000_000
            );
            text.push('.');
            text.push_str(&nanos[..digits]);
        }
        match self.form.zone {
            Zone::Utc => text.push('Z'),
            Zone::Naive => {}
            Zone::Offset(seconds) => {
                let sign = if seconds < 0 { '-' } else { '+' };
                let minutes = seconds.unsigned_abs() / 60;
                text.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
            }
        }
        text
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text)
            .map_err(serde::de::Error::custom)?
            .ok_or_else(|| serde::de::Error::custom(format!("no date in {text:?}")))
    }
}

/// How many digits follow the decimal point of the seconds (0 when none; at most 9 kept).
fn fraction_digits(s: &str) -> u8 {
    let Some(time) = s.find(['T', 't', ' ']).map(|at| &s[at..]) else {
        return 0;
    };
    let Some(dot) = time.find('.') else {
        return 0;
    };
    let n = time[dot + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count();
    u8::try_from(n.min(9)).unwrap_or(9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_written_back_as_it_was_read() {
        for text in [
            "2024-03-20T13:30:44.518448+13:00",
            "2024-03-20T13:30:44+12:00",
            "2024-05-02T01:02:11Z",
            "2024-05-02T01:02:11.123Z",
            "2024-05-02T01:02:11",
            "2024-05-02T01:02:11.1234567",
            "2024-01-15T08:00:00.5-05:00",
        ] {
            let t = Timestamp::parse(text).unwrap().unwrap();
            assert_eq!(t.text(), text);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }
    }

    #[test]
    fn instants_and_forms() {
        let local = Timestamp::parse("2024-03-20T13:30:44.518448+13:00")
            .unwrap()
            .unwrap();
        let utc = Timestamp::parse("2024-03-20T00:30:44.518448Z")
            .unwrap()
            .unwrap();
        assert_eq!(local.instant(), utc.instant());
        assert_eq!(local.form().zone, Zone::Offset(13 * 3600));
        assert_eq!(local.form().digits, 6);
        assert_eq!(
            local.earlier_by(Duration::seconds(60)).text(),
            "2024-03-20T13:29:44.518448+13:00"
        );
        assert_eq!(
            local.whole_second().text(),
            "2024-03-20T13:30:44.000000+13:00"
        );
        assert_eq!(
            local.in_form(Form::UTC_SECONDS).text(),
            "2024-03-20T00:30:44Z"
        );
        assert_eq!(
            local
                .in_form(Form {
                    zone: Zone::Offset(12 * 3600),
                    digits: 6
                })
                .text(),
            "2024-03-20T12:30:44.518448+12:00",
            "the same instant in another offset"
        );
        // Across local midnight: the local date is the next day's.
        let late = Timestamp::parse("2026-04-04T11:30:00Z").unwrap().unwrap();
        assert_eq!(
            late.in_form(local.form()).text(),
            "2026-04-05T00:30:00.000000+13:00"
        );
        let compact = Timestamp::parse("2024-03-20T13:30:44+1300")
            .unwrap()
            .unwrap();
        assert_eq!(compact.text(), "2024-03-20T13:30:44+13:00");
    }

    #[test]
    fn placeholders_and_garbage() {
        assert_eq!(Timestamp::parse("0001-01-01T00:00:00").unwrap(), None);
        assert!(Timestamp::parse("yesterday").is_err());
        let date = Timestamp::parse("2024-05-02").unwrap().unwrap();
        assert_eq!(date.text(), "2024-05-02T00:00:00");
        assert!(serde_json::from_str::<Timestamp>("\"0001-01-01T00:00:00\"").is_err());
        assert_eq!(
            Timestamp::utc(date.instant()).text(),
            "2024-05-02T00:00:00Z"
        );
    }
}
