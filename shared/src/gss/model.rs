//! GoSweetSpot customer orders and shipments.
//!
//! GoSweetSpot matches field names case-insensitively, and its own examples mix spellings, so
//! every response is read through [`parse`], which normalises keys (lower case, no
//! underscores) before the typed models see them. Requests are written with the spellings of
//! the documentation.

use crate::tolerant::{self, BodyError};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Field length limits of a customer order (from the documented `neworder` model).
pub mod limits {
    pub const PACKING_SLIP_NO: usize = 20;
    pub const CONSIGNEE: usize = 60;
    pub const ADDRESS: usize = 60;
    pub const SUBURB: usize = 60;
    pub const CITY: usize = 60;
    pub const POSTCODE: usize = 10;
    pub const DELIVERY_REFERENCE: usize = 50;
    pub const DELIVERY_INSTRUCTIONS: usize = 120;
    pub const CONTACT_NAME: usize = 60;
    pub const CONTACT_PHONE: usize = 60;
    pub const EMAIL: usize = 60;
    pub const PRODUCT_CODE: usize = 20;
    pub const PRODUCT_DESCRIPTION: usize = 20;
    pub const CURRENCY: usize = 3;
    /// Cost centre names are not given a documented limit; we hold them to the contact limit.
    pub const COST_CENTRE: usize = 60;
    /// `customField1Value`/`customField2Value` have no documented limit either (inferred: held
    /// to `delvref`'s 50, the other reference GoSweetSpot shows with the order).
    pub const CUSTOM_FIELD: usize = 50;
}

/// Most orders in one `DELETE /api/customerorders` (documented: HTTP 409 above it), and the
/// batch size we publish in.
pub const MAX_ORDERS_PER_CALL: usize = 50;

/// Parses a GoSweetSpot JSON body with field names matched case-insensitively.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))?;
    serde_json::from_value(tolerant::normalise_keys(value))
        .map_err(|e| BodyError::Shape(e.to_string()))
}

/// GoSweetSpot's message in an error body, in whichever shape it comes: a top-level `Message`,
/// `Errors` (strings or `{Property, Message}` objects), or ASP.NET's `ModelState` /
/// `ValidationErrors` maps of field → messages; joined with "; ". A body that is not JSON is
/// returned as it is, trimmed (and a JSON body with none of these, compacted).
pub fn error_text(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.trim().to_string();
    };
    let value = tolerant::normalise_keys(value);
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = value.get("message").and_then(serde_json::Value::as_str) {
        parts.push(m.to_string());
    }
    let mut messages = |v: &serde_json::Value, field: Option<&str>| {
        let text = match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => {
                let message = o.get("message").and_then(serde_json::Value::as_str);
                let property = o.get("property").and_then(serde_json::Value::as_str);
                match (property, message) {
                    (Some(p), Some(m)) => Some(format!("{p}: {m}")),
                    (None, Some(m)) => Some(m.to_string()),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(text) = text {
            parts.push(match field {
                Some(f) => format!("{f}: {text}"),
                None => text,
            });
        }
    };
    if let Some(errors) = value.get("errors").and_then(serde_json::Value::as_array) {
        for e in errors {
            messages(e, None);
        }
    }
    for map in ["modelstate", "validationerrors"] {
        if let Some(fields) = value.get(map).and_then(serde_json::Value::as_object) {
            for (field, v) in fields {
                match v {
                    serde_json::Value::Array(list) => {
                        list.iter().for_each(|m| messages(m, Some(field)))
                    }
                    other => messages(other, Some(field)),
                }
            }
        }
    }
    if parts.is_empty() {
        value.to_string()
    } else {
        parts.join("; ")
    }
}

/// A customer order as published with `PUT /api/customerorders`. Field names are GoSweetSpot's
/// own (all lower case), so the struct reads as the documentation does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomerOrder {
    /// The upsert key: our order number, at most 20 characters.
    pub packingslipno: String,
    pub consignee: String,
    pub address1: String,
    pub address2: String,
    pub suburb: String,
    pub city: String,
    pub postcode: String,
    /// ISO 3166 alpha-2.
    pub country: String,
    pub delvref: String,
    pub delvinstructions: String,
    pub contactname: String,
    pub contactphone: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub costcentre: Option<String>,
    /// Shown to the dispatcher with the order (the field GoSweetSpot's docs name; bodies are
    /// matched case-insensitively).
    #[serde(
        rename = "customField1Value",
        alias = "customfield1value",
        skip_serializing_if = "Option::is_none"
    )]
    pub custom_field_1: Option<String>,
    #[serde(
        rename = "customField2Value",
        alias = "customfield2value",
        skip_serializing_if = "Option::is_none"
    )]
    pub custom_field_2: Option<String>,
    pub products: Vec<OrderProduct>,
}

/// One product line of a customer order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderProduct {
    pub productcode: String,
    pub description: String,
    #[serde(with = "rust_decimal::serde::float")]
    pub units: Decimal,
    #[serde(with = "rust_decimal::serde::float")]
    pub unitvalue: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::float_option"
    )]
    pub unitkg: Option<Decimal>,
}

/// The per-order answer to a publish.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishResult {
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub packingslipno: Option<String>,
    #[serde(deserialize_with = "bool_or_false")]
    pub result: bool,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub msg: Option<String>,
}

impl PublishResult {
    /// GoSweetSpot ignored the submission because the order is already ticketed.
    pub fn already_processed(&self) -> bool {
        !self.result
            && self
                .msg
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("already processed"))
    }
}

fn bool_or_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    tolerant::opt_bool(d).map(Option::unwrap_or_default)
}

/// A paged GoSweetSpot answer (`{Page, PageSize, Pages, Results}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Paged<T> {
    #[serde(default, deserialize_with = "tolerant::opt_i64")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "tolerant::opt_i64")]
    pub pages: Option<i64>,
    #[serde(default, deserialize_with = "tolerant::vec_or_empty")]
    pub results: Vec<T>,
}

/// A customer order as `GET /api/customerorders` returns it (the parts we read).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct CustomerOrderState {
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub packingslipno: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub costcentre: Option<String>,
    pub status: Option<CustomerOrderStatus>,
}

/// The `status` block of a customer order.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct CustomerOrderStatus {
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub status: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub ticketnumber: Option<String>,
    #[serde(deserialize_with = "tolerant::opt_string")]
    pub trackingurl: Option<String>,
}

/// What a delete answered for one packing slip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    AlreadyDeleted,
    /// Ticketed already: GoSweetSpot keeps it.
    AlreadyProcessed,
    InvalidPackingSlip,
    Other(String),
}

impl DeleteOutcome {
    /// Reads GoSweetSpot's message for one packing slip.
    pub fn from_message(msg: &str) -> Self {
        let m = msg.to_ascii_lowercase();
        if m.contains("already processed") {
            Self::AlreadyProcessed
        } else if m.contains("already deleted") {
            Self::AlreadyDeleted
        } else if m.contains("invalid packing slip") {
            Self::InvalidPackingSlip
        } else if m.trim_end_matches('.').trim() == "deleted" {
            Self::Deleted
        } else {
            Self::Other(msg.to_string())
        }
    }

    /// The documented message for this outcome.
    pub fn message(&self) -> &str {
        match self {
            Self::Deleted => "Deleted.",
            Self::AlreadyDeleted => "Cannot be deleted. Already deleted.",
            Self::AlreadyProcessed => "Cannot be deleted. Already processed.",
            Self::InvalidPackingSlip => "Invalid packing slip number",
            Self::Other(m) => m,
        }
    }
}

/// A shipment (consignment) as `GET /api/shipments` and the webhook describe it. Read from
/// normalised keys; written with GoSweetSpot's PascalCase spellings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Shipment {
    #[serde(
        rename(serialize = "ConsignmentNo", deserialize = "consignmentno"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub consignment_no: Option<String>,
    #[serde(
        rename(serialize = "PackingSlipNo", deserialize = "packingslipno"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub packing_slip_no: Option<String>,
    #[serde(
        rename(serialize = "Tracking", deserialize = "tracking"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub tracking: Option<String>,
    #[serde(
        rename(serialize = "TotalCost", deserialize = "totalcost"),
        deserialize_with = "tolerant::opt_decimal",
        serialize_with = "rust_decimal::serde::float_option::serialize"
    )]
    pub total_cost: Option<Decimal>,
    #[serde(
        rename(serialize = "Status", deserialize = "status"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub status: Option<String>,
    /// Local time the courier picked it up, as GoSweetSpot wrote it.
    #[serde(
        rename(serialize = "Picked", deserialize = "picked"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub picked: Option<String>,
    /// Local time it was delivered, as GoSweetSpot wrote it.
    #[serde(
        rename(serialize = "Delivered", deserialize = "delivered"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub delivered: Option<String>,
    #[serde(
        rename(serialize = "CreatedUtc", deserialize = "createdutc"),
        deserialize_with = "tolerant::opt_datetime",
        serialize_with = "gss_datetime"
    )]
    pub created_utc: Option<DateTime<Utc>>,
    #[serde(
        rename(serialize = "ManualTicket", deserialize = "manualticket"),
        deserialize_with = "tolerant::opt_bool"
    )]
    pub manual_ticket: Option<bool>,
    #[serde(
        rename(serialize = "Consignee", deserialize = "consignee"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub consignee: Option<String>,
    #[serde(
        rename(serialize = "Carrier", deserialize = "carrier"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub carrier: Option<String>,
    #[serde(
        rename(serialize = "CostCentre", deserialize = "costcentre"),
        deserialize_with = "tolerant::opt_string"
    )]
    pub cost_centre: Option<String>,
    #[serde(
        rename(serialize = "Items", deserialize = "items"),
        deserialize_with = "tolerant::vec_or_empty"
    )]
    pub items: Vec<ShipmentItem>,
}

impl Shipment {
    /// Whether GoSweetSpot lists the shipment as deleted (its `Status` says so).
    pub fn is_deleted(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| s.to_ascii_lowercase().contains("delet"))
    }
}

/// One package line of a shipment, with its charges.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ShipmentItem {
    #[serde(
        rename(serialize = "Charge_LineTotal", deserialize = "chargelinetotal"),
        deserialize_with = "tolerant::opt_decimal",
        serialize_with = "rust_decimal::serde::float_option::serialize"
    )]
    pub charge_line_total: Option<Decimal>,
    #[serde(
        rename(
            serialize = "Charge_MarkedUpLineTotal",
            deserialize = "chargemarkeduplinetotal"
        ),
        deserialize_with = "tolerant::opt_decimal",
        serialize_with = "rust_decimal::serde::float_option::serialize"
    )]
    pub charge_marked_up_line_total: Option<Decimal>,
}

fn gss_datetime<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn shipments_read_in_any_spelling() {
        let body = br#"{"Page":1,"PageSize":250,"Pages":1,"Results":[
            {"ConsignmentNo":"SSPOT018667","Tracking":"https://gosweetspot.com/track/4180-SSPOT018667",
             "TotalCost":4.07,"CreatedUtc":"2024-05-02T21:56:58.007","PackingSlipNo":"SO-10045",
             "ManualTicket":false,"Carrier":"Post Haste","CostCentre":"Online",
             "Items":[{"Charge_LineTotal":4.07,"Charge_MarkedUpLineTotal":4.48}]},
            {"consignmentno":"X2","totalcost":"1.5","items":null}]}"#;
        let page: Paged<Shipment> = parse(body).unwrap();
        assert_eq!(page.results.len(), 2);
        let s = &page.results[0];
        assert_eq!(s.consignment_no.as_deref(), Some("SSPOT018667"));
        assert_eq!(s.total_cost, Some(dec!(4.07)));
        assert_eq!(s.items[0].charge_marked_up_line_total, Some(dec!(4.48)));
        assert_eq!(s.manual_ticket, Some(false));
        assert_eq!(page.results[1].total_cost, Some(dec!(1.5)));
        let written = serde_json::to_value(s).unwrap();
        assert_eq!(written["ConsignmentNo"], "SSPOT018667");
        assert_eq!(written["Items"][0]["Charge_MarkedUpLineTotal"], 4.48);
        let back: Shipment = parse(written.to_string().as_bytes()).unwrap();
        assert_eq!(&back, s);
    }

    #[test]
    fn publish_results_and_delete_messages() {
        let r: Vec<PublishResult> =
            parse(br#"[{"packingslipno":"A","result":false,"msg":"already processed"}]"#).unwrap();
        assert!(r[0].already_processed());
        for outcome in [
            DeleteOutcome::Deleted,
            DeleteOutcome::AlreadyDeleted,
            DeleteOutcome::AlreadyProcessed,
            DeleteOutcome::InvalidPackingSlip,
        ] {
            assert_eq!(DeleteOutcome::from_message(outcome.message()), outcome);
        }
        assert!(parse::<Vec<PublishResult>>(b"[{").is_err());
    }

    #[test]
    fn error_text_in_every_shape() {
        assert_eq!(
            error_text(
                r#"{"Message":"The request is invalid.","ModelState":{"orders[3].email":["The Email field is not a valid e-mail address."]}}"#
            ),
            "The request is invalid.; orders[3].email: The Email field is not a valid e-mail address."
        );
        assert_eq!(
            error_text(r#"{"Errors":[{"Property":"Country","Message":"Unknown"}, "Bad"]}"#),
            "Country: Unknown; Bad"
        );
        assert_eq!(
            error_text(r#"{"ValidationErrors":{"postcode":"too long"}}"#),
            "postcode: too long"
        );
        assert_eq!(error_text("  Bad Request \n"), "Bad Request");
        assert_eq!(error_text(r#"{"odd":1}"#), r#"{"odd":1}"#);
    }
}
