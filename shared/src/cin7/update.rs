//! The partial sales orders the write-back PUTs, and CIN7's answer matched to them.

use crate::tolerant;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A partial order for `PUT /v1/SalesOrders`: only the fields being changed are sent (`None`
/// fields are omitted). There is deliberately no `status` field: it is read-only on CIN7.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SalesOrderUpdate {
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none", with = "cin7_datetime")]
    pub dispatched_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logistics_carrier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_comments: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::float_option"
    )]
    pub freight_total: Option<Decimal>,
    /// The whole map: a PUT that sends `customFields` may replace it (undocumented), so the
    /// order's other fields are sent back with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<BTreeMap<String, Value>>,
}

mod cin7_datetime {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&crate::tolerant::format_cin7_datetime(t)),
            None => s.serialize_none(),
        }
    }
}

/// One element of the PUT response (`ResultItem`): `index` follows the request order.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PutResultItem {
    #[serde(deserialize_with = "tolerant::opt_i64")]
    pub index: Option<i64>,
    #[serde(deserialize_with = "tolerant::opt_bool")]
    pub success: Option<bool>,
    #[serde(deserialize_with = "tolerant::opt_i64")]
    pub id: Option<i64>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub code: Option<String>,
    #[serde(deserialize_with = "error_list")]
    pub errors: Vec<String>,
}

fn error_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => vec![s],
        _ => Vec::new(),
    })
}

/// The outcome of one order in a PUT, matched to the order id that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub id: i64,
    /// `Ok` when CIN7 accepted the change, else CIN7's messages.
    pub result: Result<(), Vec<String>>,
}

/// A PUT answer that does not account for the orders sent, one result each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutMatchError {
    #[error("result index {0} is negative")]
    NegativeIndex(i64),
    #[error("result index {0} matches no order sent")]
    NoSuchIndex(usize),
    #[error("result {index} names order {named} but order {sent} was sent there")]
    WrongOrder { index: usize, named: i64, sent: i64 },
    #[error("no result for order {0} sent")]
    Missing(i64),
}

/// Matches PUT result items to the orders sent, by `index` when present, else by position.
/// Errors when the answer does not account for every order sent.
pub fn match_put_results(
    sent: &[SalesOrderUpdate],
    items: Vec<PutResultItem>,
) -> Result<Vec<PutOutcome>, PutMatchError> {
    let mut outcomes: Vec<Option<PutOutcome>> = vec![None; sent.len()];
    for (position, item) in items.into_iter().enumerate() {
        let index = match item.index {
            Some(i) => usize::try_from(i).map_err(|_| PutMatchError::NegativeIndex(i))?,
            None => position,
        };
        let Some(order) = sent.get(index) else {
            return Err(PutMatchError::NoSuchIndex(index));
        };
        if let Some(id) = item.id.filter(|id| *id != 0 && *id != order.id) {
            return Err(PutMatchError::WrongOrder {
                index,
                named: id,
                sent: order.id,
            });
        }
        let result = if item.success == Some(true) {
            Ok(())
        } else if item.errors.is_empty() {
            Err(vec!["CIN7 reported failure without a message".to_string()])
        } else {
            Err(item.errors)
        };
        outcomes[index] = Some(PutOutcome {
            id: order.id,
            result,
        });
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.ok_or(PutMatchError::Missing(sent[i].id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    #[test]
    fn update_sends_only_changed_fields_and_never_status() {
        let u = SalesOrderUpdate {
            id: 7,
            stage: Some("Dispatched".into()),
            freight_total: Some(dec!(12.5)),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"id": 7, "stage": "Dispatched", "freightTotal": 12.5})
        );
    }

    #[test]
    fn put_results_match_by_index() {
        let sent = [
            SalesOrderUpdate {
                id: 10,
                ..Default::default()
            },
            SalesOrderUpdate {
                id: 20,
                ..Default::default()
            },
        ];
        let items: Vec<PutResultItem> = serde_json::from_value(json!([
            {"index": 1, "success": false, "id": 20, "errors": ["Invalid stage"]},
            {"index": 0, "success": true, "id": 10, "errors": []}
        ]))
        .unwrap();
        let out = match_put_results(&sent, items).unwrap();
        assert_eq!(
            out[0],
            PutOutcome {
                id: 10,
                result: Ok(())
            }
        );
        assert_eq!(
            out[1],
            PutOutcome {
                id: 20,
                result: Err(vec!["Invalid stage".into()])
            }
        );
        assert!(match_put_results(&sent, vec![]).is_err());
    }
}
