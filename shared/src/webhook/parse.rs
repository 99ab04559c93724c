//! Reading a webhook body: a JSON array of up to [`MAX_SHIPMENTS`] shipments, one shipment
//! object, or the legacy form (a JSON string holding either), with field names matched
//! case-insensitively as GoSweetSpot matches them. Pure: no I/O.
//!
//! Each shipment is judged alone ([`crate::sightings::judge`]). GoSweetSpot retries a refused
//! delivery as a whole for about nine hours and then drops it, and its own documented example
//! mixes integrated shipments with manual tickets whose `PackingSlipNo` is `""`: a shipment that
//! cannot be written back is therefore set aside with its reason ([`Ignored`]) and never fails
//! its neighbours. Only a body that is not a delivery at all is an error ([`ParseError`]).

use crate::gss::model::Shipment;
use crate::sightings::{IgnoreReason, Ignored, Sighting, judge};
use crate::tolerant;
use serde_json::{Map, Value};

/// The most shipments GoSweetSpot puts in one delivery.
pub const MAX_SHIPMENTS: usize = 50;

/// The longest detail of a field error kept (serde's messages may quote the input).
const MAX_DETAIL_CHARS: usize = 160;

/// A delivery, read: the shipments that may be written back, and those set aside.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delivery {
    pub shipments: Vec<Sighting>,
    pub ignored: Vec<Ignored>,
}

impl Delivery {
    /// How many shipments the body held.
    pub fn len(&self) -> usize {
        self.shipments.len() + self.ignored.len()
    }

    /// Whether the body held no shipment at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a body is not a delivery (answered 400). Messages are safe to return to the sender.
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
}

/// Parses a delivery body. Shipments are numbered from 0 in their order in the body.
pub fn parse_delivery(body: &[u8]) -> Result<Delivery, ParseError> {
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
    let mut delivery = Delivery::default();
    for (index, item) in items.into_iter().enumerate() {
        match read_item(index, item) {
            Ok(shipment) => delivery.shipments.push(shipment),
            Err(ignored) => delivery.ignored.push(ignored),
        }
    }
    Ok(delivery)
}

const CONNOTE_KEY: &str = "consignmentno";
const SLIP_KEY: &str = "packingslipno";

/// Reads one shipment, or says why it cannot be written back.
fn read_item(index: usize, item: Value) -> Result<Sighting, Ignored> {
    let Value::Object(object) = tolerant::normalise_keys(item) else {
        return Err(Ignored {
            index,
            reason: IgnoreReason::MalformedShipment,
            connote: None,
            detail: "not an object".into(),
        });
    };
    let (shipment, unreadable) = read_tolerantly(object);
    if let Some(key) = unreadable
        .iter()
        .find(|k| *k == CONNOTE_KEY || *k == SLIP_KEY)
    {
        return Err(Ignored {
            index,
            reason: IgnoreReason::MalformedShipment,
            connote: None,
            detail: format!("{} is not text", field_name(key)),
        });
    }
    judge(
        index,
        shipment,
        unreadable.iter().map(|k| field_name(k)).collect(),
    )
}

/// Types a shipment object; a field whose value has the wrong type is left out (and named)
/// rather than losing the shipment: the write-back reads the consignment from GoSweetSpot
/// anyway, so only the two keys are essential.
fn read_tolerantly(object: Map<String, Value>) -> (Shipment, Vec<String>) {
    if let Ok(shipment) = serde_json::from_value(Value::Object(object.clone())) {
        return (shipment, Vec::new());
    }
    let mut unreadable = Vec::new();
    let mut kept = Map::new();
    for (key, value) in object {
        let alone = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        if serde_json::from_value::<Shipment>(alone).is_ok() {
            kept.insert(key, value);
        } else {
            unreadable.push(key);
        }
    }
    let shipment = serde_json::from_value(Value::Object(kept)).unwrap_or_default();
    (shipment, unreadable)
}

/// The documented spelling of a normalised key, for messages (the sender's own key is input).
fn field_name(normalised: &str) -> String {
    match normalised {
        CONNOTE_KEY => "ConsignmentNo".into(),
        SLIP_KEY => "PackingSlipNo".into(),
        other => shorten(other),
    }
}

fn shorten(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= MAX_DETAIL_CHARS {
        return clean;
    }
    let mut cut: String = clean.chars().take(MAX_DETAIL_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sightings::{MAX_KEY_CHARS, ShipmentEvent};
    use rust_decimal_macros::dec;

    const CREATED: &str = r#"[{"ConsignmentNo":"SSPOT018667","Status":null,"Picked":null,"Delivered":null,
        "Tracking":"https://gosweetspot.com/track/4180-SSPOT018667","TotalCost":4.07,
        "CreatedUtc":"2024-05-02T21:56:58.007","PackingSlipNo":"SO-10045","ManualTicket":false,
        "Consignee":"AROHA SMITH"}]"#;

    /// Shaped like the vendor's documented example: manual tickets (`PackingSlipNo: ""`)
    /// between integrated shipments, every one delivered.
    const MIXED: &str = r#"[
        {"ConsignmentNo":"XYV00020931","Status":"Delivered to FRONT DOOR","Picked":"2026-03-23T10:18:44",
         "Delivered":"2026-03-29T09:12:49","Tracking":"http://gosweetspot.com/track/XYV00020931",
         "TotalCost":16.34,"CreatedUtc":"2026-03-22T21:56:58.007","PackingSlipNo":"","ManualTicket":true,
         "Consignee":"TITAHI BAY BOWLS"},
        {"ConsignmentNo":"XYV00020938","Status":"Delivered to SAM","Picked":"2026-04-06T13:40:51",
         "Delivered":"2026-04-07T11:07:58","Tracking":"http://gosweetspot.com/track/XYV00020938",
         "TotalCost":12.66,"CreatedUtc":"2026-04-02T22:27:33.177","PackingSlipNo":"P133138809",
         "ManualTicket":false,"Consignee":"SAM CIVIL LTD"},
        {"ConsignmentNo":"XYV00020932","Status":"Delivered to PETER","Picked":"2026-03-31T09:51:14",
         "Delivered":"2026-04-02T12:08:41","Tracking":"http://gosweetspot.com/track/XYV00020932",
         "TotalCost":68.2,"CreatedUtc":"2026-03-29T23:31:12.597","PackingSlipNo":"","ManualTicket":true,
         "Consignee":"PETER WHITE"}
    ]"#;

    #[test]
    fn the_documented_created_delivery() {
        let delivery = parse_delivery(CREATED.as_bytes()).unwrap();
        assert_eq!(delivery.len(), 1);
        assert!(delivery.ignored.is_empty());
        let s = &delivery.shipments[0];
        assert_eq!(s.connote, "SSPOT018667");
        assert_eq!(s.packing_slip, "SO-10045");
        assert_eq!(s.event, ShipmentEvent::Created);
        assert_eq!(s.shipment.total_cost, Some(dec!(4.07)));
        assert_eq!(s.shipment.manual_ticket, Some(false));
        assert_eq!(s.shipment.consignee.as_deref(), Some("AROHA SMITH"));
        assert!(s.shipment.created_utc.is_some());
        assert!(s.unreadable.is_empty());
    }

    #[test]
    fn a_mixed_delivery_like_the_vendors_example_keeps_the_integrated_shipment() {
        let delivery = parse_delivery(MIXED.as_bytes()).unwrap();
        assert_eq!(delivery.len(), 3);
        let kept: Vec<(usize, &str)> = delivery
            .shipments
            .iter()
            .map(|s| (s.index, s.connote.as_str()))
            .collect();
        assert_eq!(kept, [(1, "XYV00020938")]);
        assert_eq!(delivery.shipments[0].event, ShipmentEvent::Delivered);
        let set_aside: Vec<(usize, IgnoreReason, Option<&str>)> = delivery
            .ignored
            .iter()
            .map(|i| (i.index, i.reason, i.connote.as_deref()))
            .collect();
        assert_eq!(
            set_aside,
            [
                (0, IgnoreReason::NoPackingSlip, Some("XYV00020931")),
                (2, IgnoreReason::NoPackingSlip, Some("XYV00020932")),
            ]
        );
    }

    #[test]
    fn one_object_legacy_strings_and_any_key_case() {
        let object =
            r#"{"consignmentno":"A1","PACKINGSLIPNO":"P1","Picked":"2016-04-06T13:40:51"}"#;
        let one = parse_delivery(object.as_bytes()).unwrap();
        assert_eq!(one.shipments[0].connote, "A1");
        assert_eq!(one.shipments[0].event, ShipmentEvent::Picked);
        let legacy = serde_json::to_string(CREATED).unwrap();
        let from_legacy = parse_delivery(legacy.as_bytes()).unwrap();
        assert_eq!(from_legacy, parse_delivery(CREATED.as_bytes()).unwrap());
        let delivered =
            r#"[{"Consignment_No":" A2 ","PackingSlipNo":7,"Picked":"x","Delivered":"y"}]"#;
        let d = parse_delivery(delivered.as_bytes()).unwrap();
        assert_eq!(d.shipments[0].connote, "A2");
        assert_eq!(d.shipments[0].packing_slip, "7");
        assert_eq!(d.shipments[0].event, ShipmentEvent::Delivered);
        assert!(parse_delivery(b"[]").unwrap().is_empty());
    }

    #[test]
    fn each_shipment_is_judged_alone_with_its_reason() {
        let long = "X".repeat(MAX_KEY_CHARS + 1);
        let body = serde_json::json!([
            {"ConsignmentNo": "A", "PackingSlipNo": "P"},
            {"ConsignmentNo": null, "PackingSlipNo": "P"},
            {"PackingSlipNo": "P"},
            {"ConsignmentNo": "  ", "PackingSlipNo": "P"},
            {"ConsignmentNo": "D", "PackingSlipNo": "  "},
            {"ConsignmentNo": "E"},
            3,
            "text",
            {"ConsignmentNo": {"nested": 1}, "PackingSlipNo": "P"},
            {"ConsignmentNo": long, "PackingSlipNo": "P"},
            {"ConsignmentNo": "F", "PackingSlipNo": ["P"]},
            {"ConsignmentNo": "G", "PackingSlipNo": "Q", "TotalCost": "lots", "Picked": {"a": 1}}
        ]);
        let delivery = parse_delivery(body.to_string().as_bytes()).unwrap();
        let reasons: Vec<(usize, &str)> = delivery
            .ignored
            .iter()
            .map(|i| (i.index, i.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, "no_consignment"),
                (2, "no_consignment"),
                (3, "no_consignment"),
                (4, "no_packing_slip"),
                (5, "no_packing_slip"),
                (6, "malformed_shipment"),
                (7, "malformed_shipment"),
                (8, "malformed_shipment"),
                (9, "malformed_shipment"),
                (10, "malformed_shipment"),
            ]
        );
        assert_eq!(delivery.ignored[4].connote.as_deref(), Some("E"));
        assert_eq!(delivery.ignored[7].detail, "ConsignmentNo is not text");
        assert!(
            delivery.ignored.iter().all(|i| !i.detail.contains('X')),
            "details never quote the input"
        );
        // A bad value in any other field costs that field only.
        let kept: Vec<&str> = delivery
            .shipments
            .iter()
            .map(|s| s.connote.as_str())
            .collect();
        assert_eq!(kept, ["A", "G"]);
        let g = &delivery.shipments[1];
        assert_eq!(g.shipment.total_cost, None);
        assert_eq!(
            g.event,
            ShipmentEvent::Created,
            "the unreadable Picked is left out"
        );
        let mut unreadable = g.unreadable.clone();
        unreadable.sort();
        assert_eq!(unreadable, ["picked", "totalcost"]);
    }

    #[test]
    fn only_a_body_that_is_not_a_delivery_is_an_error() {
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
        // Fifty shipments none of which can be written back are still a delivery.
        let fifty_blank = format!("[{}]", vec!["{}"; 50].join(","));
        assert_eq!(
            parse_delivery(fifty_blank.as_bytes())
                .unwrap()
                .ignored
                .len(),
            50
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
        assert_eq!(parsed.shipments[0].shipment.total_cost, shipment.total_cost);
        assert_eq!(parsed.shipments[0].connote, "SSPOT000001");
    }
}
