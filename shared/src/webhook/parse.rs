//! Reading a webhook body: a JSON array of up to [`MAX_SHIPMENTS`] shipments, one shipment
//! object, or the legacy form (a JSON string holding either), with field names matched
//! case-insensitively as GoSweetSpot matches them. Pure: no I/O.

use crate::gss::model::Shipment;
use crate::tolerant;
use serde_json::Value;

/// The most shipments GoSweetSpot puts in one delivery.
pub const MAX_SHIPMENTS: usize = 50;

/// The longest consignment number or packing slip accepted (they become store keys).
pub const MAX_KEY_CHARS: usize = 200;

/// The longest detail of a field error echoed back (serde's messages may quote the input).
const MAX_DETAIL_CHARS: usize = 160;

/// Which webhook event a shipment was posted for. The payload has no event field, so it is
/// inferred: `Delivered` set → delivered; else `Picked` set → picked; else created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// The consignment (ticket) was created: what triggers the write-back.
    Created,
    /// A courier registered the pickup.
    Picked,
    /// A courier registered the delivery.
    Delivered,
}

impl WebhookEvent {
    /// The event a shipment's `Picked`/`Delivered` fields imply.
    pub fn of(shipment: &Shipment) -> Self {
        if shipment.delivered.is_some() {
            Self::Delivered
        } else if shipment.picked.is_some() {
            Self::Picked
        } else {
            Self::Created
        }
    }

    /// The name used in logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Picked => "picked",
            Self::Delivered => "delivered",
        }
    }
}

/// One shipment of a delivery, with its two required fields checked and trimmed.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookShipment {
    /// The consignment (ticket) number.
    pub connote: String,
    /// The packing slip: our order number for an integrated order, the delivery reference for
    /// a manual ticket.
    pub packing_slip: String,
    /// The event the shipment was posted for.
    pub event: WebhookEvent,
    /// Everything GoSweetSpot sent, typed.
    pub shipment: Shipment,
}

/// Why a body is not a delivery. Messages are safe to return to the sender: they name an index
/// and a field, never anything but the sender's own input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (or, in the legacy form, a string that does not hold JSON).
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but neither a list of shipments nor one shipment.
    #[error(
        "expected a list of shipments, one shipment object, or a JSON string holding them; got {0}"
    )]
    Shape(&'static str),
    /// More shipments than GoSweetSpot ever sends in one delivery.
    #[error("{0} shipments in one delivery; at most {MAX_SHIPMENTS} are accepted")]
    TooMany(usize),
    /// A shipment is not an object.
    #[error("shipment {index}: expected an object, got {kind}")]
    NotAnObject { index: usize, kind: &'static str },
    /// A required field is missing, null or blank.
    #[error("shipment {index}: {field} is missing")]
    Missing { index: usize, field: &'static str },
    /// A required field is longer than [`MAX_KEY_CHARS`].
    #[error("shipment {index}: {field} is longer than {MAX_KEY_CHARS} characters")]
    TooLong { index: usize, field: &'static str },
    /// A field has a value of the wrong type.
    #[error("shipment {index}: {detail}")]
    Field { index: usize, detail: String },
}

/// Parses a delivery body. Shipments are numbered from 0 in their order in the body.
pub fn parse_delivery(body: &[u8]) -> Result<Vec<WebhookShipment>, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    // The legacy form: stringified JSON, decoded once more (and only once).
    let value = match value {
        Value::String(inner) => serde_json::from_str(&inner)
            .map_err(|e| ParseError::Json(format!("legacy body: {e}")))?,
        other => other,
    };
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => return Err(ParseError::Shape(tolerant::kind(&other))),
    };
    if items.len() > MAX_SHIPMENTS {
        return Err(ParseError::TooMany(items.len()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| parse_shipment(index, item))
        .collect()
}

fn parse_shipment(index: usize, item: Value) -> Result<WebhookShipment, ParseError> {
    if !item.is_object() {
        return Err(ParseError::NotAnObject {
            index,
            kind: tolerant::kind(&item),
        });
    }
    let shipment: Shipment =
        serde_json::from_value(tolerant::normalise_keys(item)).map_err(|e| ParseError::Field {
            index,
            detail: shorten(&e.to_string()),
        })?;
    let connote = required(index, "ConsignmentNo", shipment.consignment_no.as_deref())?;
    let packing_slip = required(index, "PackingSlipNo", shipment.packing_slip_no.as_deref())?;
    Ok(WebhookShipment {
        connote,
        packing_slip,
        event: WebhookEvent::of(&shipment),
        shipment,
    })
}

fn required(index: usize, field: &'static str, value: Option<&str>) -> Result<String, ParseError> {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(ParseError::Missing { index, field });
    }
    if value.chars().count() > MAX_KEY_CHARS {
        return Err(ParseError::TooLong { index, field });
    }
    Ok(value.to_string())
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_DETAIL_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const CREATED: &str = r#"[{"ConsignmentNo":"SSPOT018667","Status":null,"Picked":null,"Delivered":null,
        "Tracking":"https://gosweetspot.com/track/4180-SSPOT018667","TotalCost":4.07,
        "CreatedUtc":"2024-05-02T21:56:58.007","PackingSlipNo":"SO-10045","ManualTicket":false,
        "Consignee":"AROHA SMITH"}]"#;

    #[test]
    fn the_documented_created_delivery() {
        let shipments = parse_delivery(CREATED.as_bytes()).unwrap();
        assert_eq!(shipments.len(), 1);
        let s = &shipments[0];
        assert_eq!(s.connote, "SSPOT018667");
        assert_eq!(s.packing_slip, "SO-10045");
        assert_eq!(s.event, WebhookEvent::Created);
        assert_eq!(s.shipment.total_cost, Some(dec!(4.07)));
        assert_eq!(s.shipment.manual_ticket, Some(false));
        assert_eq!(s.shipment.consignee.as_deref(), Some("AROHA SMITH"));
        assert!(s.shipment.created_utc.is_some());
    }

    #[test]
    fn one_object_legacy_strings_and_any_key_case() {
        let object =
            r#"{"consignmentno":"A1","PACKINGSLIPNO":"P1","Picked":"2016-04-06T13:40:51"}"#;
        let one = parse_delivery(object.as_bytes()).unwrap();
        assert_eq!(one[0].connote, "A1");
        assert_eq!(one[0].event, WebhookEvent::Picked);
        let legacy = serde_json::to_string(CREATED).unwrap();
        let from_legacy = parse_delivery(legacy.as_bytes()).unwrap();
        assert_eq!(from_legacy, parse_delivery(CREATED.as_bytes()).unwrap());
        let delivered =
            r#"[{"Consignment_No":" A2 ","PackingSlipNo":7,"Picked":"x","Delivered":"y"}]"#;
        let d = parse_delivery(delivered.as_bytes()).unwrap();
        assert_eq!(d[0].connote, "A2");
        assert_eq!(d[0].packing_slip, "7");
        assert_eq!(d[0].event, WebhookEvent::Delivered);
        assert!(parse_delivery(b"[]").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_index_and_the_field() {
        let body = r#"[{"ConsignmentNo":"A","PackingSlipNo":"P"},
                       {"ConsignmentNo":"B","PackingSlipNo":"Q"},
                       {"ConsignmentNo":"C","PackingSlipNo":"R"},
                       {"ConsignmentNo":"D","PackingSlipNo":"  "}]"#;
        assert_eq!(
            parse_delivery(body.as_bytes()).unwrap_err().to_string(),
            "shipment 3: PackingSlipNo is missing"
        );
        let body = r#"[{"PackingSlipNo":"P","ConsignmentNo":null}]"#;
        assert_eq!(
            parse_delivery(body.as_bytes()).unwrap_err(),
            ParseError::Missing {
                index: 0,
                field: "ConsignmentNo"
            }
        );
        let body = r#"[{"ConsignmentNo":"A","PackingSlipNo":"P","TotalCost":"lots"}]"#;
        let err = parse_delivery(body.as_bytes()).unwrap_err();
        assert!(matches!(err, ParseError::Field { index: 0, .. }), "{err}");
        let body = r#"[{"ConsignmentNo":"A","PackingSlipNo":"P"}, 3]"#;
        assert_eq!(
            parse_delivery(body.as_bytes()).unwrap_err().to_string(),
            "shipment 1: expected an object, got a number"
        );
        let long = format!(
            r#"{{"ConsignmentNo":"{}","PackingSlipNo":"P"}}"#,
            "X".repeat(201)
        );
        assert!(matches!(
            parse_delivery(long.as_bytes()).unwrap_err(),
            ParseError::TooLong { index: 0, .. }
        ));
    }

    #[test]
    fn shapes_and_sizes() {
        assert!(matches!(
            parse_delivery(b"{").unwrap_err(),
            ParseError::Json(_)
        ));
        assert!(matches!(
            parse_delivery(b"").unwrap_err(),
            ParseError::Json(_)
        ));
        assert_eq!(
            parse_delivery(b"42").unwrap_err(),
            ParseError::Shape("a number")
        );
        assert!(matches!(
            parse_delivery(br#""not json""#).unwrap_err(),
            ParseError::Json(_)
        ));
        // Stringified twice is not the legacy form.
        let twice = serde_json::to_string(&serde_json::to_string(CREATED).unwrap()).unwrap();
        assert_eq!(
            parse_delivery(twice.as_bytes()).unwrap_err(),
            ParseError::Shape("text")
        );
        let one = r#"{"ConsignmentNo":"A","PackingSlipNo":"P"}"#;
        let fifty = format!("[{}]", vec![one; 50].join(","));
        assert_eq!(parse_delivery(fifty.as_bytes()).unwrap().len(), 50);
        let fifty_one = format!("[{}]", vec![one; 51].join(","));
        assert_eq!(
            parse_delivery(fifty_one.as_bytes()).unwrap_err(),
            ParseError::TooMany(51)
        );
    }

    #[test]
    fn the_sandbox_body_round_trips() {
        let shipment = Shipment {
            consignment_no: Some("SSPOT000001".into()),
            packing_slip_no: Some("SO-1".into()),
            total_cost: Some(dec!(8.50)),
            manual_ticket: Some(false),
            created_utc: Some(chrono::Utc::now()),
            ..Shipment::default()
        };
        let body = serde_json::to_string(std::slice::from_ref(&shipment)).unwrap();
        let parsed = parse_delivery(body.as_bytes()).unwrap();
        assert_eq!(parsed[0].shipment.total_cost, shipment.total_cost);
        assert_eq!(parsed[0].connote, "SSPOT000001");
    }
}
