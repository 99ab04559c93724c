//! The subset of CIN7's SQL-like `where` syntax the product sends: `field op value` conditions
//! joined by `AND`, with `=`, `<>`, `>`, `>=`, `<`, `<=`; values are single-quoted strings
//! (a doubled quote inside stands for one quote) or numbers. Anything else is refused, so a
//! test notices if the client ever sends more.

use crate::account_time::AccountTime;
use serde_json::Value;
use shared::timestamp::Timestamp;
use std::cmp::Ordering;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// `IN (…)`: the value is one of a list.
    In,
}

/// A literal on the right of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    /// The list of an `IN`.
    List(Vec<Literal>),
}

/// One `field op literal` condition; `field` is lower-cased (CIN7 field names are
/// case-insensitive).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: Literal,
}

/// Parses a clause into its conditions.
pub fn parse(clause: &str) -> Result<Vec<Condition>, String> {
    let mut chars = clause.chars().peekable();
    let mut conditions = Vec::new();
    loop {
        skip_ws(&mut chars);
        let field: String =
            std::iter::from_fn(|| chars.next_if(|c| c.is_alphanumeric() || *c == '_')).collect();
        if field.is_empty() {
            return Err(format!("expected a field name in {clause:?}"));
        }
        skip_ws(&mut chars);
        if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
            let word: String =
                std::iter::from_fn(|| chars.next_if(|c| c.is_alphabetic())).collect();
            if !word.eq_ignore_ascii_case("in") {
                return Err(format!("unsupported operator {word:?}"));
            }
            skip_ws(&mut chars);
            if chars.next() != Some('(') {
                return Err("expected ( after IN".into());
            }
            let mut items = Vec::new();
            loop {
                skip_ws(&mut chars);
                items.push(literal(&mut chars, &field)?);
                skip_ws(&mut chars);
                match chars.next() {
                    Some(',') => continue,
                    Some(')') => break,
                    _ => return Err("expected , or ) in an IN list".into()),
                }
            }
            conditions.push(Condition {
                field: field.to_ascii_lowercase(),
                op: Op::In,
                value: Literal::List(items),
            });
            skip_ws(&mut chars);
            if chars.peek().is_none() {
                return Ok(conditions);
            }
            let word: String =
                std::iter::from_fn(|| chars.next_if(|c| c.is_alphabetic())).collect();
            if !word.eq_ignore_ascii_case("and") {
                return Err(format!(
                    "unsupported syntax near {word:?} (only AND is understood)"
                ));
            }
            continue;
        }
        let op = match (chars.next(), chars.peek().copied()) {
            (Some('>'), Some('=')) => {
                chars.next();
                Op::Ge
            }
            (Some('<'), Some('=')) => {
                chars.next();
                Op::Le
            }
            (Some('<'), Some('>')) => {
                chars.next();
                Op::Ne
            }
            (Some('>'), _) => Op::Gt,
            (Some('<'), _) => Op::Lt,
            (Some('='), _) => Op::Eq,
            _ => return Err(format!("expected an operator after {field:?}")),
        };
        skip_ws(&mut chars);
        let value = literal(&mut chars, &field)?;
        conditions.push(Condition {
            field: field.to_ascii_lowercase(),
            op,
            value,
        });
        skip_ws(&mut chars);
        if chars.peek().is_none() {
            return Ok(conditions);
        }
        let word: String = std::iter::from_fn(|| chars.next_if(|c| c.is_alphabetic())).collect();
        if !word.eq_ignore_ascii_case("and") {
            return Err(format!(
                "unsupported syntax near {word:?} (only AND is understood)"
            ));
        }
    }
}

fn literal(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    field: &str,
) -> Result<Literal, String> {
    match chars.peek() {
        Some('\'') => {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        text.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => text.push(c),
                    None => return Err("unterminated string literal".into()),
                }
            }
            Ok(Literal::Text(text))
        }
        _ => {
            let num: String = std::iter::from_fn(|| {
                chars.next_if(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            })
            .collect();
            num.parse()
                .map(Literal::Number)
                .map_err(|_| format!("expected a value after {field:?}"))
        }
    }
}

fn skip_ws(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

/// Looks a field up in an order case-insensitively.
pub fn field<'a>(order: &'a Value, name: &str) -> Option<&'a Value> {
    order
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Whether an order satisfies every condition. Dates compare as `time` says (local wall-clock
/// times by default, see [`AccountTime`]), numbers as numbers, text case-insensitively (CIN7's
/// database collation).
pub fn matches(order: &Value, conditions: &[Condition], time: AccountTime) -> bool {
    conditions.iter().all(|c| {
        let actual = field(order, &c.field).unwrap_or(&Value::Null);
        if let Literal::List(items) = &c.value {
            return items.iter().any(|item| {
                let one = Condition {
                    field: c.field.clone(),
                    op: Op::Eq,
                    value: item.clone(),
                };
                matches(order, std::slice::from_ref(&one), time)
            });
        }
        let ordering = match (&c.value, actual) {
            (Literal::Number(n), v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .and_then(|a| a.partial_cmp(n)),
            (Literal::Text(t), Value::String(a)) => {
                match (
                    shared::tolerant::parse_datetime(a).ok().flatten(),
                    Timestamp::parse(t).ok().flatten(),
                ) {
                    (Some(a), Some(b)) if c.field.ends_with("date") => {
                        Some(time.comparable_stored(a).cmp(&time.comparable_literal(&b)))
                    }
                    _ => Some(a.to_lowercase().cmp(&t.to_lowercase())),
                }
            }
            (Literal::Text(t), Value::Number(n)) => Some(n.to_string().cmp(t)),
            _ => None,
        };
        match ordering {
            None => false,
            Some(o) => match c.op {
                Op::Eq | Op::In => o == Ordering::Equal,
                Op::Ne => o != Ordering::Equal,
                Op::Gt => o == Ordering::Greater,
                Op::Ge => o != Ordering::Less,
                Op::Lt => o == Ordering::Less,
                Op::Le => o != Ordering::Greater,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_what_the_client_sends() {
        let c = parse("modifiedDate>='2024-05-02T01:02:11Z' AND reference='O''Brien' and id=5")
            .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].field, "modifieddate");
        assert_eq!(c[0].op, Op::Ge);
        assert_eq!(c[1].value, Literal::Text("O'Brien".into()));
        assert_eq!(c[2].value, Literal::Number(5.0));
        assert!(parse("id=5 OR id=6").is_err());
        let c = parse("id IN (1, 2,3) AND reference='x'").unwrap();
        assert_eq!(c[0].op, Op::In);
        assert_eq!(
            c[0].value,
            Literal::List(vec![
                Literal::Number(1.0),
                Literal::Number(2.0),
                Literal::Number(3.0)
            ])
        );
        assert!(matches(
            &json!({"id": 2, "reference": "x"}),
            &c,
            AccountTime::Utc
        ));
        assert!(!matches(
            &json!({"id": 4, "reference": "x"}),
            &c,
            AccountTime::Utc
        ));
        assert!(parse("id IN (1").is_err());
        assert!(parse("reference='open").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn evaluates_dates_numbers_and_text() {
        let order = json!({"id": 5, "modifiedDate": "2024-05-02T01:02:11.5", "reference": "#1050"});
        let yes = |s: &str| matches(&order, &parse(s).unwrap(), AccountTime::Utc);
        assert!(yes("modifiedDate>='2024-05-02T01:02:11Z'"));
        assert!(!yes("modifiedDate>='2024-05-02T01:02:12Z'"));
        assert!(yes("id=5 AND reference='#1050'"));
        assert!(!yes("id<>5"));
        // In New Zealand wall-clock time (13:02:11.5 NZST that day), whatever the designator.
        let local = |s: &str| matches(&order, &parse(s).unwrap(), AccountTime::Auckland);
        assert!(local("modifiedDate>='2024-05-02T13:02:11.000000+12:00'"));
        assert!(!local("modifiedDate>='2024-05-02T13:02:12.000000+12:00'"));
        assert!(
            local("modifiedDate>='2024-05-02T13:02:11Z'"),
            "Z is ignored"
        );
        assert!(!local("modifiedDate>='2024-05-02T13:02:12Z'"));
        assert!(
            local("modifiedDate>='2024-05-02T01:02:11Z'"),
            "half a day early"
        );
    }
}
