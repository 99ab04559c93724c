//! Tolerant deserialisation helpers for the JSON CIN7 and GoSweetSpot send.
//!
//! Both APIs are loosely typed in practice: numbers arrive as strings, enums as names or
//! integers, dates with or without fractional seconds and with or without `Z`, and any field
//! may be `null` or missing. Every helper here maps those shapes onto one Rust type and turns
//! anything it cannot read into a serde error (never a panic), so one bad order is reported on
//! its own instead of failing a whole page.

use crate::timestamp::{Timestamp, UnreadableDate};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::Value;
use std::str::FromStr;

/// Reads an optional string: `null`, missing and `""` are `None`; numbers and booleans are
/// rendered as text.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => {
            return Err(D::Error::custom(format!(
                "expected text, got {}",
                kind(&other)
            )));
        }
    })
}

/// Reads an optional integer from a number or numeric string.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => value_to_i64(&v).map(Some).map_err(D::Error::custom),
    }
}

/// Reads an optional boolean from `true`/`false`, `"true"`/`"false"` (any case) or `0`/`1`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(Value::Number(n)) => Some(n.as_f64().is_some_and(|f| f != 0.0)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "" => None,
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => return Err(D::Error::custom(format!("expected a boolean, got {s:?}"))),
        },
        Some(other) => {
            return Err(D::Error::custom(format!(
                "expected a boolean, got {}",
                kind(&other)
            )));
        }
    })
}

/// Reads an optional decimal from a JSON number or a numeric string, exactly as written.
pub fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => value_to_decimal(&v).map(Some).map_err(D::Error::custom),
    }
}

/// Reads a decimal, treating `null` and missing as zero.
pub fn decimal_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    opt_decimal(d).map(Option::unwrap_or_default)
}

/// Reads an optional UTC timestamp (see [`parse_datetime`]). `.NET`'s "no date" value
/// (`0001-01-01T00:00:00`) reads as `None`.
pub fn opt_datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_datetime(&s).map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!(
            "expected a date, got {}",
            kind(&other)
        ))),
    }
}

/// Reads a list, treating `null` and missing as empty.
pub fn vec_or_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Parses a timestamp as CIN7 and GoSweetSpot write them (see [`Timestamp::parse`]), keeping
/// only the instant. Years before 1900 are the `.NET` "no date" placeholder and read as `None`.
pub fn parse_datetime(s: &str) -> Result<Option<DateTime<Utc>>, UnreadableDate> {
    Ok(Timestamp::parse(s)?.map(|t| t.instant()))
}

/// Reads an optional timestamp with the form it was written in (see [`Timestamp`]); `null`,
/// missing, `""` and the "no date" placeholder are `None`.
pub fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Timestamp::parse(&s).map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!(
            "expected a date, got {}",
            kind(&other)
        ))),
    }
}

/// Formats a timestamp the way CIN7 expects it in `where` clauses and PUT bodies:
/// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
pub fn format_cin7_datetime(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A JSON value that is not the number it should be. Messages name the kind or quote a short
/// text, never more than the sender's own input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected an integer, got {0}")]
    NotAnInteger(String),
    #[error("expected a number, got {0}")]
    NotANumber(String),
}

/// Converts a JSON number or numeric string to an integer.
pub fn value_to_i64(v: &Value) -> Result<i64, ValueError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| ValueError::NotAnInteger(n.to_string())),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| ValueError::NotAnInteger(format!("{s:?}"))),
        other => Err(ValueError::NotAnInteger(kind(other).to_string())),
    }
}

/// Converts a JSON number or numeric string to a decimal without going through binary floating
/// point for strings; numbers use their shortest round-trip rendering (so `19.99` stays `19.99`).
pub fn value_to_decimal(v: &Value) -> Result<Decimal, ValueError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return Err(ValueError::NotANumber(kind(other).to_string())),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| ValueError::NotANumber(format!("{text:?}")))
}

/// A response body that is not what it should be: not JSON, or JSON of another shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
}

/// A short name for the JSON type of a value, for error messages (never the value itself).
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Rewrites every object key to lower case without underscores, recursively, so a model can
/// match field names case-insensitively as GoSweetSpot does (`ConsignmentNo`, `consignmentno`
/// and `Consignment_No` all become `consignmentno`).
pub fn normalise_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (normalise_key(&k), normalise_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalise_keys).collect()),
        other => other,
    }
}

/// The normalised form of one field name (see [`normalise_keys`]).
pub fn normalise_key(k: &str) -> String {
    k.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    #[test]
    fn dates_in_every_shape_cin7_sends() {
        let want = Utc.with_ymd_and_hms(2024, 5, 2, 1, 2, 11).unwrap();
        for s in [
            "2024-05-02T01:02:11Z",
            "2024-05-02T01:02:11",
            "2024-05-02T01:02:11+00:00",
            "2024-05-02 01:02:11",
        ] {
            assert_eq!(parse_datetime(s).unwrap(), Some(want), "{s}");
        }
        let frac = parse_datetime("2024-05-02T01:02:11.1234567")
            .unwrap()
            .unwrap();
        assert_eq!(frac.timestamp_subsec_nanos(), 123_456_700);
        assert_eq!(parse_datetime("0001-01-01T00:00:00").unwrap(), None);
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn decimals_keep_their_written_value() {
        assert_eq!(
            value_to_decimal(&serde_json::json!(19.99)).unwrap(),
            dec!(19.99)
        );
        assert_eq!(
            value_to_decimal(&serde_json::json!("7.50")).unwrap(),
            dec!(7.50)
        );
        assert_eq!(
            value_to_decimal(&serde_json::json!(1e2)).unwrap(),
            dec!(100)
        );
        assert!(value_to_decimal(&serde_json::json!("abc")).is_err());
        assert!(value_to_decimal(&serde_json::json!([1])).is_err());
    }

    #[test]
    fn keys_normalise_across_spellings() {
        let v = normalise_keys(serde_json::json!({"Consignment_No": 1, "Items": [{"PartNo": 2}]}));
        assert_eq!(
            v,
            serde_json::json!({"consignmentno": 1, "items": [{"partno": 2}]})
        );
    }

    #[test]
    fn integers_from_numbers_and_strings() {
        assert_eq!(value_to_i64(&serde_json::json!(42)).unwrap(), 42);
        assert_eq!(value_to_i64(&serde_json::json!("42")).unwrap(), 42);
        assert_eq!(value_to_i64(&serde_json::json!(42.0)).unwrap(), 42);
        assert!(value_to_i64(&serde_json::json!(4.5)).is_err());
    }
}
