//! CIN7 Omni sales orders as the API sends them, read tolerantly.
//!
//! Field names are camelCase on the wire (confirmed by every client of the live API). Enums
//! arrive as names (any case) or integers, so they are parsed by hand; anything unknown is kept
//! as `Other` rather than rejected. Every field is optional or defaulted, and unknown fields
//! are ignored.

use crate::timestamp::Timestamp;
use crate::tolerant::{self, BodyError};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// The fields the product reads, for `fields=` on list calls (nothing else is fetched).
pub const SALES_ORDER_FIELDS: &[&str] = &[
    "id",
    "reference",
    "createdDate",
    "modifiedDate",
    "isApproved",
    "status",
    "isVoid",
    "stage",
    "branchId",
    "dispatchedDate",
    "firstName",
    "lastName",
    "company",
    "email",
    "phone",
    "mobile",
    "deliveryFirstName",
    "deliveryLastName",
    "deliveryCompany",
    "deliveryAddress1",
    "deliveryAddress2",
    "deliveryCity",
    "deliveryState",
    "deliveryPostalCode",
    "deliveryCountry",
    "deliveryInstructions",
    "internalComments",
    "trackingCode",
    "logisticsCarrier",
    "freightTotal",
    "currencyCode",
    "taxStatus",
    "taxRate",
    "customFields",
    "lineItems",
    "customerOrderNo",
    "freightDescription",
];

/// The header fields `import.custom_field_1` and `_2` may copy to GoSweetSpot (CIN7's names;
/// `customFields.<key>` names a custom field as well). Each is requested with `fields=` only
/// when a setting names it.
pub const COPYABLE_FIELDS: &[&str] = &[
    "reference",
    "customerOrderNo",
    "freightDescription",
    "internalComments",
    "deliveryInstructions",
    "projectName",
    "branchEmail",
    "voucherCode",
    "paymentTerms",
    "memberEmail",
    "salesPersonEmail",
    "email",
    "company",
    "phone",
    "mobile",
    "costCenter",
    "memberCostCenter",
    "departmentNumber",
    "storeLocationNumber",
    "distributionCenter",
    "surchargeDescription",
    "discountDescription",
    "trackingCode",
    "logisticsCarrier",
    "source",
];

/// The `fields=` name that brings a copyable field (`customFields.<key>` comes with
/// `customFields`); `None` when `name` is not one [`COPYABLE_FIELDS`] or a custom field names.
pub fn copyable_field(name: &str) -> Option<&'static str> {
    match name.strip_prefix("customFields.") {
        Some(key) if !key.trim().is_empty() => Some("customFields"),
        Some(_) => None,
        None => COPYABLE_FIELDS.iter().copied().find(|f| *f == name),
    }
}

/// A CIN7 sales order header with its lines.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SalesOrder {
    #[serde(deserialize_with = "id")]
    pub id: i64,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub reference: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_datetime")]
    pub created_date: Option<DateTime<Utc>>,
    /// As CIN7 wrote it: the pull's cursor and `where` values keep its form.
    #[serde(deserialize_with = "tolerant::opt_timestamp")]
    pub modified_date: Option<Timestamp>,
    #[serde(deserialize_with = "tolerant::opt_bool")]
    pub is_approved: Option<bool>,
    pub status: OrderStatus,
    #[serde(deserialize_with = "tolerant::opt_bool")]
    pub is_void: Option<bool>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub stage: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_i64")]
    pub branch_id: Option<i64>,
    #[serde(deserialize_with = "tolerant::opt_datetime")]
    pub dispatched_date: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub company: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub email: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub mobile: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_first_name: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_last_name: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_company: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_address1: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_address2: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_city: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_state: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_postal_code: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_country: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub delivery_instructions: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub internal_comments: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub tracking_code: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub logistics_carrier: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_decimal")]
    pub freight_total: Option<Decimal>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub currency_code: Option<String>,
    pub tax_status: TaxStatus,
    #[serde(deserialize_with = "tolerant::opt_decimal")]
    pub tax_rate: Option<Decimal>,
    #[serde(deserialize_with = "custom_fields")]
    pub custom_fields: BTreeMap<String, Value>,
    #[serde(deserialize_with = "tolerant::vec_or_empty")]
    pub line_items: Vec<LineItem>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub customer_order_no: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub freight_description: Option<String>,
    /// Every other field CIN7 sent (only what `fields=` asked for), for
    /// [`SalesOrder::field_text`].
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl SalesOrder {
    /// A header field (CIN7's name, or `customFields.<key>`) as text: a string as it is, a
    /// number or a boolean written out; `None` when absent, empty or not a scalar.
    pub fn field_text(&self, name: &str) -> Option<String> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let named = |v: &Option<String>| v.as_deref().map(|s| s.trim().to_string());
        let value = match name.strip_prefix("customFields.") {
            Some(key) => self.custom_fields.get(key).and_then(text),
            None => match name {
                "reference" => named(&self.reference),
                "customerOrderNo" => named(&self.customer_order_no),
                "freightDescription" => named(&self.freight_description),
                "internalComments" => named(&self.internal_comments),
                "deliveryInstructions" => named(&self.delivery_instructions),
                "email" => named(&self.email),
                "company" => named(&self.company),
                "phone" => named(&self.phone),
                "mobile" => named(&self.mobile),
                "trackingCode" => named(&self.tracking_code),
                "logisticsCarrier" => named(&self.logistics_carrier),
                other => self.other.get(other).and_then(text),
            },
        };
        value.filter(|v| !v.is_empty())
    }
}

/// One line of a sales order.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LineItem {
    #[serde(deserialize_with = "tolerant::opt_i64")]
    pub id: Option<i64>,
    #[serde(deserialize_with = "tolerant::opt_i64")]
    pub parent_id: Option<i64>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub code: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub option1: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub option2: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub option3: Option<String>,
    #[serde(deserialize_with = "tolerant::decimal_or_zero")]
    pub qty: Decimal,
    #[serde(deserialize_with = "tolerant::decimal_or_zero")]
    pub unit_price: Decimal,
    #[serde(deserialize_with = "tolerant::decimal_or_zero")]
    pub discount: Decimal,
    pub stock_control: StockControl,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub size_codes: Option<String>,
    #[serde(deserialize_with = "tolerant::vec_or_empty")]
    pub sizes: Vec<Size>,
}

/// One size of a size-grid line.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Size {
    #[serde(deserialize_with = "tolerant::opt_string", alias = "size")]
    pub name: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub code: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_decimal", alias = "qty")]
    pub quantity: Option<Decimal>,
}

impl LineItem {
    /// True when the line uses a size grid (sizes listed, or the read-only `sizeCodes`).
    pub fn has_size_grid(&self) -> bool {
        !self.sizes.is_empty()
            || self
                .size_codes
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty())
    }
}

/// `status` (read-only on CIN7): Draft = 0, Approved = 1, Void = 2 (confirmed, OrderStatus).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OrderStatus {
    Draft,
    Approved,
    Void,
    /// Missing or null.
    #[default]
    Unknown,
    /// A spelling or code this version does not know, kept as sent.
    Other(String),
}

/// `stockControl` of a line. Names are confirmed (FIFO, Batch, Serial, Non Stock); the integer
/// codes are not documented and are inferred from the order the help centre lists them in
/// (FIFO = 0, Batch = 1, Serial = 2, Non Stock = 3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StockControl {
    Fifo,
    Batch,
    Serial,
    NonStock,
    #[default]
    Unknown,
    Other(String),
}

/// `taxStatus` of an order. Names are confirmed (official samples render enums as names).
/// Integer codes are not: the C# client's enum order suggests Incl = 0, Excl = 1, Exempt = 2,
/// and another third-party source gives Incl = 1, Excl = 2, Exempt = 3 — so an integer is kept
/// as `Other` and never guessed (the write-back notes and logs it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TaxStatus {
    Incl,
    Excl,
    Exempt,
    #[default]
    Unknown,
    Other(String),
}

/// Maps a name (any case, spaces, hyphens and underscores ignored) or an integer code to an
/// enum variant; unknowns are kept as text.
fn lenient_enum<'de, D, T>(
    d: D,
    names: &[(&str, T)],
    codes: &[(i64, T)],
    unknown: T,
    other: fn(String) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Clone,
{
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => unknown,
        Some(Value::String(s)) => {
            let key: String = s
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            if key.is_empty() {
                unknown
            } else if let Ok(n) = key.parse::<i64>() {
                codes
                    .iter()
                    .find(|(c, _)| *c == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| other(s))
            } else {
                names
                    .iter()
                    .find(|(n, _)| *n == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| other(s))
            }
        }
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| codes.iter().find(|(c, _)| *c == n))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| other(n.to_string())),
        Some(v) => {
            return Err(serde::de::Error::custom(format!(
                "expected a name or a code, got {}",
                tolerant::kind(&v)
            )));
        }
    })
}

impl<'de> Deserialize<'de> for OrderStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use OrderStatus::*;
        lenient_enum(
            d,
            &[("draft", Draft), ("approved", Approved), ("void", Void)],
            &[(0, Draft), (1, Approved), (2, Void)],
            Unknown,
            Other,
        )
    }
}

impl<'de> Deserialize<'de> for StockControl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use StockControl::*;
        lenient_enum(
            d,
            &[
                ("fifo", Fifo),
                ("batch", Batch),
                ("serial", Serial),
                ("nonstock", NonStock),
            ],
            &[(0, Fifo), (1, Batch), (2, Serial), (3, NonStock)],
            Unknown,
            Other,
        )
    }
}

impl<'de> Deserialize<'de> for TaxStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use TaxStatus::*;
        lenient_enum(
            d,
            &[("incl", Incl), ("excl", Excl), ("exempt", Exempt)],
            &[],
            Unknown,
            Other,
        )
    }
}

fn id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    tolerant::opt_i64(d)?.ok_or_else(|| serde::de::Error::custom("order has no id"))
}

fn custom_fields<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Value>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(map)) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    })
}

/// One element of a list page: a parsed order, or why it could not be parsed (with whatever
/// identifying fields could still be read, so the pull can record and skip it).
#[derive(Debug, Clone, PartialEq)]
pub enum OrderRow {
    Parsed(Box<SalesOrder>),
    Unparseable(UnparseableOrder),
}

/// An order CIN7 sent that does not fit the model.
#[derive(Debug, Clone, PartialEq)]
pub struct UnparseableOrder {
    pub id: Option<i64>,
    pub reference: Option<String>,
    pub modified_date: Option<Timestamp>,
    pub error: String,
}

impl OrderRow {
    /// Parses one element of a page on its own, so a bad order never fails its neighbours.
    pub fn from_value(v: Value) -> Self {
        let field = |name: &str| v.get(name).cloned().unwrap_or(Value::Null);
        let parsed = serde_path_to_error::deserialize::<_, SalesOrder>(v.clone())
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))
            .and_then(|order| {
                if order.id > 0 {
                    Ok(order)
                } else {
                    Err("order has no id".to_string())
                }
            });
        match parsed {
            Ok(order) => OrderRow::Parsed(Box::new(order)),
            Err(error) => OrderRow::Unparseable(UnparseableOrder {
                id: tolerant::value_to_i64(&field("id")).ok(),
                reference: field("reference").as_str().map(str::to_owned),
                modified_date: field("modifiedDate")
                    .as_str()
                    .and_then(|s| Timestamp::parse(s).ok().flatten()),
                error,
            }),
        }
    }

    /// The CIN7 id, when one could be read.
    pub fn id(&self) -> Option<i64> {
        match self {
            OrderRow::Parsed(o) => Some(o.id),
            OrderRow::Unparseable(u) => u.id,
        }
    }

    /// The `modifiedDate`, when one could be read.
    pub fn modified_date(&self) -> Option<Timestamp> {
        match self {
            OrderRow::Parsed(o) => o.modified_date,
            OrderRow::Unparseable(u) => u.modified_date,
        }
    }
}

/// Parses a list page: a bare JSON array of orders. A body that is not an array is an error;
/// an element that is not a valid order becomes [`OrderRow::Unparseable`].
pub fn parse_page(body: &[u8]) -> Result<Vec<OrderRow>, BodyError> {
    match serde_json::from_slice::<Value>(body).map_err(|e| BodyError::Json(e.to_string()))? {
        Value::Array(items) => Ok(items.into_iter().map(OrderRow::from_value).collect()),
        other => Err(BodyError::Shape(format!(
            "expected a list of sales orders, got {}",
            tolerant::kind(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    #[test]
    fn reads_the_reference_example() {
        let body = json!([{
            "id": 1895719, "modifiedDate": "2024-05-02T01:02:11Z", "isApproved": true,
            "reference": "#1050", "status": "Approved", "stage": "New", "freightTotal": 7.5,
            "taxStatus": "Incl", "taxRate": 15, "customFields": {"orders_1000": "gift"},
            "unknownField": {"nested": true},
            "lineItems": [
                {"id": 8140, "code": "TEE-RED", "qty": 3, "unitPrice": 19.99, "stockControl": "Batch",
                 "sizes": [{"name": "S", "code": "TEE-RED-S", "quantity": 1}]},
                {"id": 8141, "code": "HONEY-500", "qty": 1, "unitPrice": 29.99, "stockControl": 2}
            ]
        }]);
        let rows = parse_page(body.to_string().as_bytes()).unwrap();
        let OrderRow::Parsed(o) = &rows[0] else {
            panic!("not parsed: {rows:?}")
        };
        assert_eq!(o.id, 1895719);
        assert_eq!(o.status, OrderStatus::Approved);
        assert_eq!(o.tax_status, TaxStatus::Incl);
        assert_eq!(o.freight_total, Some(dec!(7.5)));
        assert_eq!(o.line_items[0].unit_price, dec!(19.99));
        assert!(o.line_items[0].has_size_grid());
        assert_eq!(o.line_items[0].stock_control, StockControl::Batch);
        assert_eq!(o.line_items[1].stock_control, StockControl::Serial);
        assert!(!o.line_items[1].has_size_grid());
    }

    #[test]
    fn enums_in_any_case_or_as_codes() {
        let statuses = [
            (json!("APPROVED"), OrderStatus::Approved),
            (json!("void"), OrderStatus::Void),
            (json!(0), OrderStatus::Draft),
            (json!("1"), OrderStatus::Approved),
            (json!(null), OrderStatus::Unknown),
            (json!("Pending"), OrderStatus::Other("Pending".into())),
        ];
        // Integer tax codes are documented nowhere and contradicted between sources.
        for (v, want) in [
            (json!(1), TaxStatus::Other("1".into())),
            (json!("2"), TaxStatus::Other("2".into())),
            (json!("EXCL"), TaxStatus::Excl),
        ] {
            let o: SalesOrder = serde_json::from_value(json!({"id": 1, "taxStatus": v})).unwrap();
            assert_eq!(o.tax_status, want);
        }
        for (v, want) in statuses {
            let o: SalesOrder = serde_json::from_value(json!({"id": 1, "status": v})).unwrap();
            assert_eq!(o.status, want);
        }
        let line: LineItem = serde_json::from_value(json!({"stockControl": "Non Stock"})).unwrap();
        assert_eq!(line.stock_control, StockControl::NonStock);
    }

    #[test]
    fn nulls_missing_and_strings_for_numbers() {
        let o: SalesOrder = serde_json::from_value(json!({
            "id": "42", "reference": null, "freightTotal": "12.30", "lineItems": null,
            "dispatchedDate": "", "branchId": "3", "isVoid": "false"
        }))
        .unwrap();
        assert_eq!(o.id, 42);
        assert_eq!(o.reference, None);
        assert_eq!(o.freight_total, Some(dec!(12.30)));
        assert!(o.line_items.is_empty());
        assert_eq!(o.dispatched_date, None);
        assert_eq!(o.branch_id, Some(3));
        assert_eq!(o.is_void, Some(false));
    }

    #[test]
    fn a_bad_order_is_reported_alone() {
        let body = json!([
            {"id": 1, "modifiedDate": "2024-01-01T00:00:00Z"},
            {"id": 2, "reference": "R2", "modifiedDate": "2024-01-02T00:00:00Z", "lineItems": "oops"},
            {"reference": "no id"}
        ]);
        let rows = parse_page(body.to_string().as_bytes()).unwrap();
        assert!(matches!(rows[0], OrderRow::Parsed(_)));
        let OrderRow::Unparseable(bad) = &rows[1] else {
            panic!("{rows:?}")
        };
        assert_eq!(bad.id, Some(2));
        assert_eq!(bad.reference.as_deref(), Some("R2"));
        assert!(bad.modified_date.is_some());
        assert!(matches!(&rows[2], OrderRow::Unparseable(u) if u.error.contains("no id")));
        assert!(parse_page(b"{\"id\": 1}").is_err());
        assert!(parse_page(b"[{\"id\": 1").is_err());
    }
}
