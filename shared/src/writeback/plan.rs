//! Write-back planning: from an order's current CIN7 state, what the store knows of its
//! consignments, the new consignments of this batch and the integration's settings, the one
//! partial update to PUT and what it means for each consignment. Pure, so every rule of the
//! seed is unit-tested here.
//!
//! Freight is idempotent by construction: `freightTotal` is set to an absolute figure computed
//! from the *set* of consignments written (earlier ones from the record, plus this batch's), so
//! a retry computes the same figure and can never add a consignment twice.

use crate::cin7::model::{SalesOrder, TaxStatus};
use crate::cin7::update::SalesOrderUpdate;
use crate::gss::model::Shipment;
use crate::records::{ConsignmentEffect, ConsignmentRecord, OrderRecord};
use crate::settings::{FreightMode, IntegrationSettings, Markup, TrackingUrlField};
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::BTreeMap;

/// CIN7's `trackingCode` limit.
pub const TRACKING_CODE_MAX: usize = 50;

/// A consignment to write back, joined with what GoSweetSpot says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConsignment {
    pub connote: String,
    pub tracking_url: Option<String>,
    pub created_utc: Option<DateTime<Utc>>,
    /// From `GET /api/shipments`, when GoSweetSpot returned it.
    pub shipment: Option<Shipment>,
    /// The webhook's cost, used when the shipment read has none.
    pub webhook_cost: Option<Decimal>,
}

/// The plan for one order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPlan {
    /// The partial order to PUT; `None` when nothing needs to change.
    pub update: Option<SalesOrderUpdate>,
    pub effects: Vec<ConsignmentEffect>,
    /// Earlier consignments GoSweetSpot no longer lists (a relabel: the dispatcher deleted the
    /// ticket and printed another), taken off the order by this update.
    pub relabelled: Vec<String>,
    /// Whether this update dispatches the order (so the Shopify trigger may follow).
    pub dispatches: bool,
    /// Operator-facing notes (freight left alone and why, truncations, fallbacks).
    pub notes: Vec<String>,
}

/// Rounds to cents, half away from zero.
pub fn round_cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The carrier name written to `logisticsCarrier` for GoSweetSpot's `Carrier`, which is a
/// rate-card label ("Post Haste - AKL - 2011"): the name before the first " - ", or what the
/// integration maps that name (or the whole label) to in `write_back.carrier_names` (matched
/// case-insensitively), so a merchant can write the names Shopify recognises.
pub fn carrier_name(label: &str, names: &BTreeMap<String, String>) -> Option<String> {
    let name = label.split(" - ").next().unwrap_or(label).trim();
    let label = label.trim();
    if name.is_empty() {
        return None;
    }
    let mapped = [label, name].into_iter().find_map(|key| {
        names
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_string())
    });
    Some(mapped.unwrap_or_else(|| name.to_string()))
}

/// GoSweetSpot's marked-up charge of a shipment: the sum over its items of
/// `Charge_MarkedUpLineTotal`, or `None` when that is 0 (or absent) on every item, which is
/// how GoSweetSpot says no markup is defined (the field is not nullable in its own client).
/// An item without a marked-up figure among others that have one counts at its cost.
fn marked_up_charge(shipment: &Shipment) -> Option<Decimal> {
    let marked = |i: &crate::gss::model::ShipmentItem| {
        i.charge_marked_up_line_total.filter(|m| !m.is_zero())
    };
    if !shipment.items.iter().any(|i| marked(i).is_some()) {
        return None;
    }
    Some(
        shipment
            .items
            .iter()
            .map(|i| marked(i).or(i.charge_line_total).unwrap_or_default())
            .sum(),
    )
}

/// The freight figure (ex tax) of one consignment under a freight mode, and a note when a
/// fallback was used.
pub fn consignment_freight(
    mode: FreightMode,
    consignment: &NewConsignment,
    settings: &IntegrationSettings,
) -> (Option<Decimal>, Option<String>) {
    let cost = consignment
        .shipment
        .as_ref()
        .and_then(|s| s.total_cost)
        .or(consignment.webhook_cost);
    match mode {
        FreightMode::Off => (None, None),
        FreightMode::Cost => (cost, None),
        FreightMode::MarkedUp => {
            if let Some(marked) = consignment.shipment.as_ref().and_then(marked_up_charge) {
                return (Some(marked), None);
            }
            let centre = consignment
                .shipment
                .as_ref()
                .and_then(|s| s.cost_centre.clone());
            let markup = centre
                .as_ref()
                .and_then(|c| settings.write_back.markup_by_cost_centre.get(c));
            match (cost, markup) {
                (Some(cost), Some(Markup::Percent(p))) => (
                    Some(cost * (Decimal::ONE_HUNDRED + *p) / Decimal::ONE_HUNDRED),
                    Some(format!(
                        "{}: no marked-up charge from GoSweetSpot; applied {p}% for cost centre {}",
                        consignment.connote,
                        centre.unwrap_or_default()
                    )),
                ),
                (Some(cost), Some(Markup::Fixed(f))) => (
                    Some(cost + *f),
                    Some(format!(
                        "{}: no marked-up charge from GoSweetSpot; added {f} for cost centre {}",
                        consignment.connote,
                        centre.unwrap_or_default()
                    )),
                ),
                (Some(cost), None) => (
                    Some(cost),
                    Some(format!(
                        "{}: no marked-up charge from GoSweetSpot and no markup set for cost centre {:?}; cost used",
                        consignment.connote,
                        centre.unwrap_or_default()
                    )),
                ),
                (None, _) => (None, None),
            }
        }
    }
}

/// Adds tax at the order's rate when its prices include tax, then rounds to cents.
pub fn with_order_tax(ex_tax: Decimal, order: &SalesOrder) -> Decimal {
    let gross = match order.tax_status {
        TaxStatus::Incl => {
            let rate = order.tax_rate.unwrap_or_default();
            ex_tax * (Decimal::ONE_HUNDRED + rate) / Decimal::ONE_HUNDRED
        }
        _ => ex_tax,
    };
    round_cents(gross)
}

fn tracking_codes(existing: Option<&str>) -> Vec<String> {
    existing
        .unwrap_or("")
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Plans the write-back of `new` consignments to one order; `now` dates the dispatch when no
/// consignment says when it was created. `deleted` names earlier consignments of the record
/// that GoSweetSpot no longer lists: a relabel, not a split shipment. Their connotes leave
/// `trackingCode`, their tracking URLs leave where they were written, their carrier gives way
/// to the new one's, and the freight becomes the sum over the consignments that stand — all in
/// the same update as the new consignments'.
pub fn plan_order(
    order: &SalesOrder,
    record: Option<&OrderRecord>,
    new: &[NewConsignment],
    settings: &IntegrationSettings,
    now: DateTime<Utc>,
    deleted: &[String],
) -> OrderPlan {
    let wb = &settings.write_back;
    let written =
        |c: &&ConsignmentRecord| !c.deleted && (c.tracking_written || c.freight_added.is_some());
    let relabelled: Vec<&ConsignmentRecord> = record
        .map(|r| {
            r.consignments
                .iter()
                .filter(written)
                .filter(|c| deleted.contains(&c.connote))
                .collect()
        })
        .unwrap_or_default();
    let mut update = SalesOrderUpdate {
        id: order.id,
        ..SalesOrderUpdate::default()
    };
    let mut notes = Vec::new();
    let mut effects: Vec<ConsignmentEffect> = new
        .iter()
        .map(|c| ConsignmentEffect {
            connote: c.connote.clone(),
            carrier: c
                .shipment
                .as_ref()
                .and_then(|s| s.carrier.as_deref())
                .and_then(|label| carrier_name(label, &wb.carrier_names)),
            tracking_url: c
                .tracking_url
                .clone()
                .or_else(|| c.shipment.as_ref().and_then(|s| s.tracking.clone())),
            created_utc: c
                .created_utc
                .or_else(|| c.shipment.as_ref().and_then(|s| s.created_utc)),
            tracking_written: false,
            freight_ex_tax: None,
        })
        .collect();
    let mut dispatches = false;

    if wb.send_ticket_number {
        // Dispatch once: the first consignment's creation time.
        if order.dispatched_date.is_none() {
            let when = effects
                .iter()
                .filter_map(|e| e.created_utc)
                .min()
                .unwrap_or(now);
            update.dispatched_date = Some(when);
            update.stage = Some("Dispatched".into());
            dispatches = true;
        }
        // Connotes joined within CIN7's limit, less those of deleted tickets.
        let mut codes = tracking_codes(order.tracking_code.as_deref());
        let before = codes.len();
        codes.retain(|c| !relabelled.iter().any(|r| &r.connote == c));
        let removed = codes.len() < before;
        let existing = codes.len();
        for e in &effects {
            if !codes.contains(&e.connote) {
                codes.push(e.connote.clone());
            }
        }
        let mut joined = String::new();
        let mut added = false;
        for (i, code) in codes.iter().enumerate() {
            let next = if joined.is_empty() {
                code.clone()
            } else {
                format!("{joined},{code}")
            };
            if next.chars().count() > TRACKING_CODE_MAX {
                notes.push(format!(
                    "trackingCode is full ({TRACKING_CODE_MAX} characters): {code} not added"
                ));
                continue;
            }
            joined = next;
            added |= i >= existing;
        }
        if added || removed {
            update.tracking_code = Some(joined);
        }
        // A carrier already on the order is kept, unless it was a deleted ticket's.
        let current = order.logistics_carrier.as_deref().map(str::trim);
        let replaceable = current.is_none_or(|c| {
            c.is_empty() || relabelled.iter().any(|r| r.carrier.as_deref() == Some(c))
        });
        if replaceable
            && let Some(carrier) = effects.iter().find_map(|e| e.carrier.clone())
            && current != Some(carrier.as_str())
        {
            update.logistics_carrier = Some(carrier);
        }
        let urls: Vec<String> = effects
            .iter()
            .filter_map(|e| e.tracking_url.clone())
            .collect();
        let gone: Vec<&str> = relabelled
            .iter()
            .filter_map(|r| r.tracking_url.as_deref())
            .collect();
        match &wb.tracking_url_field {
            TrackingUrlField::InternalComments => {
                let existing = order.internal_comments.clone().unwrap_or_default();
                let mut text = if gone.is_empty() {
                    existing.clone()
                } else {
                    existing
                        .lines()
                        .filter(|l| !gone.contains(&l.trim()))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                for url in &urls {
                    if !text.lines().any(|l| l.trim() == url) {
                        if !text.is_empty() && !text.ends_with('\n') {
                            text.push('\n');
                        }
                        text.push_str(url);
                    }
                }
                if text != existing {
                    update.internal_comments = Some(text);
                }
            }
            TrackingUrlField::CustomField(key) => {
                let existing = order
                    .custom_fields
                    .get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                let mut text = existing
                    .split_whitespace()
                    .filter(|w| !gone.contains(w))
                    .collect::<Vec<_>>()
                    .join(" ");
                for url in &urls {
                    if !text.split_whitespace().any(|w| w == url) {
                        if !text.is_empty() {
                            text.push(' ');
                        }
                        text.push_str(url);
                    }
                }
                if text != existing {
                    // A PUT that sends customFields may replace the whole map: send the
                    // order's other fields back as they are.
                    let mut fields = order.custom_fields.clone();
                    fields.insert(key.clone(), serde_json::Value::String(text));
                    update.custom_fields = Some(fields);
                }
            }
        }
        for e in &mut effects {
            e.tracking_written = true;
        }
    }

    if wb.freight != FreightMode::Off {
        // What our earlier write-backs put on the order, and what of it still stands.
        let standing_before = |c: &&ConsignmentRecord| !c.deleted;
        let written_before: Decimal = record
            .map(|r| {
                r.consignments
                    .iter()
                    .filter(standing_before)
                    .filter_map(|c| c.freight_added)
                    .sum()
            })
            .unwrap_or_default();
        let taken_off: Decimal = relabelled.iter().filter_map(|c| c.freight_added).sum();
        let earlier = written_before - taken_off;
        let already_counted = |connote: &str| {
            record.is_some_and(|r| {
                r.consignments
                    .iter()
                    .filter(standing_before)
                    .any(|c| c.connote == connote && c.freight_added.is_some())
            })
        };
        let mut this_batch = Decimal::ZERO;
        let mut any = !taken_off.is_zero();
        for (c, e) in new.iter().zip(effects.iter_mut()) {
            if already_counted(&c.connote) {
                continue;
            }
            let (amount, note) = consignment_freight(wb.freight, c, settings);
            notes.extend(note);
            match amount {
                Some(amount) if amount > Decimal::ZERO => {
                    e.freight_ex_tax = Some(amount);
                    this_batch += amount;
                    any = true;
                }
                Some(_) => notes.push(format!(
                    "{}: GoSweetSpot gave a freight of 0; freight not written",
                    c.connote
                )),
                None => notes.push(format!(
                    "{}: GoSweetSpot gave no cost; freight not written",
                    c.connote
                )),
            }
        }
        if any
            && !matches!(
                order.tax_status,
                TaxStatus::Incl | TaxStatus::Excl | TaxStatus::Exempt
            )
        {
            let status = match &order.tax_status {
                TaxStatus::Other(code) => format!("taxStatus {code:?}"),
                _ => "no taxStatus".to_string(),
            };
            tracing::warn!(cin7_id = order.id, %status, "CIN7 order's tax status is not a known name: freight written without tax");
            notes.push(format!(
                "{status} is not Incl, Excl or Exempt: freight written as GoSweetSpot's figure, without tax"
            ));
        }
        if any {
            let ours_before = with_order_tax(written_before, order);
            let target = with_order_tax(earlier + this_batch, order);
            let current = order.freight_total.unwrap_or_default();
            let ours =
                current.is_zero() || (written_before > Decimal::ZERO && current == ours_before);
            if current == target {
                // Already written (a retry after the PUT committed): nothing to send.
            } else if ours || wb.overwrite_existing_freight {
                update.freight_total = Some(target);
            } else {
                notes.push(format!(
                    "freightTotal {current} was already set on the order; left alone (write_back.overwrite_existing_freight is off)"
                ));
                for e in &mut effects {
                    e.freight_ex_tax = None;
                }
            }
        }
    }

    let changes = update
        != SalesOrderUpdate {
            id: order.id,
            ..SalesOrderUpdate::default()
        };
    if !relabelled.is_empty() {
        notes.push(format!(
            "{} deleted in GoSweetSpot (a relabel): taken off the order",
            relabelled
                .iter()
                .map(|r| r.connote.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    OrderPlan {
        update: changes.then_some(update),
        effects,
        relabelled: relabelled.iter().map(|r| r.connote.clone()).collect(),
        dispatches,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gss::model::ShipmentItem;
    use crate::records::{ConsignmentRecord, OrderState};
    use rust_decimal_macros::dec;
    use serde_json::json;

    fn settings(write_back: serde_json::Value) -> IntegrationSettings {
        IntegrationSettings::from_json(
            &json!({
                "id": "acme",
                "cin7": {"api_username": "u", "api_key": "k"},
                "gss": {"site_id": "1", "access_key": "k", "support_email": "a@b.nz"},
                "webhook": {"secret": "s"},
                "write_back": write_back
            })
            .to_string(),
        )
        .unwrap()
    }

    fn order(tax: TaxStatus) -> SalesOrder {
        SalesOrder {
            id: 7,
            tax_status: tax,
            tax_rate: Some(dec!(15)),
            freight_total: Some(Decimal::ZERO),
            internal_comments: Some("Shopify order 5512345678".into()),
            ..Default::default()
        }
    }

    fn consignment(connote: &str, cost: Decimal, marked: Option<Decimal>) -> NewConsignment {
        NewConsignment {
            connote: connote.into(),
            tracking_url: Some(format!("https://gosweetspot.com/track/4180-{connote}")),
            created_utc: Some(Utc.with_ymd_and_hms(2026, 11, 27, 1, 2, 3).unwrap()),
            shipment: Some(Shipment {
                consignment_no: Some(connote.into()),
                total_cost: Some(cost),
                carrier: Some("Post Haste - AKL - 2011".into()),
                cost_centre: Some("Online".into()),
                // Never null in GoSweetSpot's answers: 0 when no markup is defined.
                items: vec![ShipmentItem {
                    charge_line_total: Some(cost),
                    charge_marked_up_line_total: Some(marked.unwrap_or_default()),
                }],
                ..Default::default()
            }),
            webhook_cost: Some(cost),
        }
    }

    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).unwrap()
    }

    #[test]
    fn ticket_number_dispatches_with_connote_carrier_and_url() {
        let s = settings(json!({"send_ticket_number": true}));
        let plan = plan_order(
            &order(TaxStatus::Incl),
            None,
            &[consignment("SSPOT1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        let u = plan.update.unwrap();
        assert!(plan.dispatches);
        assert_eq!(u.stage.as_deref(), Some("Dispatched"));
        assert_eq!(
            u.dispatched_date,
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 1, 2, 3).unwrap())
        );
        assert_eq!(u.tracking_code.as_deref(), Some("SSPOT1"));
        assert_eq!(
            u.logistics_carrier.as_deref(),
            Some("Post Haste"),
            "the carrier's name, not its rate-card label"
        );
        assert_eq!(
            u.internal_comments.as_deref(),
            Some("Shopify order 5512345678\nhttps://gosweetspot.com/track/4180-SSPOT1")
        );
        assert_eq!(u.freight_total, None, "freight off by default");
    }

    #[test]
    fn nothing_is_written_when_every_setting_is_off() {
        let s = settings(json!({}));
        let plan = plan_order(
            &order(TaxStatus::Incl),
            None,
            &[consignment("SSPOT1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(plan.update, None);
    }

    #[test]
    fn an_existing_carrier_and_url_are_kept_and_not_duplicated() {
        let s = settings(json!({"send_ticket_number": true}));
        let mut o = order(TaxStatus::Incl);
        o.logistics_carrier = Some("NZ Post".into());
        o.internal_comments = Some("note\nhttps://gosweetspot.com/track/4180-SSPOT1".into());
        o.tracking_code = Some("SSPOT1".into());
        o.dispatched_date = Some(Utc::now());
        let plan = plan_order(
            &o,
            None,
            &[consignment("SSPOT1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(plan.update, None, "already written: a retry sends nothing");
    }

    #[test]
    fn tracking_url_in_a_custom_field() {
        let s = settings(
            json!({"send_ticket_number": true, "tracking_url_field": "customFields.orders_1000"}),
        );
        let plan = plan_order(
            &order(TaxStatus::Excl),
            None,
            &[consignment("SSPOT1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        let u = plan.update.unwrap();
        assert_eq!(u.internal_comments, None);
        assert_eq!(
            u.custom_fields.unwrap(),
            BTreeMap::from([(
                "orders_1000".to_string(),
                json!("https://gosweetspot.com/track/4180-SSPOT1")
            )])
        );
    }

    #[test]
    fn a_custom_field_update_sends_the_orders_other_fields_back() {
        let s = settings(
            json!({"send_ticket_number": true, "tracking_url_field": "customFields.orders_1000"}),
        );
        let mut o = order(TaxStatus::Excl);
        o.custom_fields = BTreeMap::from([
            ("gift_note".to_string(), json!("Happy birthday")),
            ("orders_1000".to_string(), json!("https://t.example/old")),
            ("priority".to_string(), json!(2)),
        ]);
        let plan = plan_order(
            &o,
            None,
            &[consignment("SSPOT1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(
            plan.update.unwrap().custom_fields.unwrap(),
            BTreeMap::from([
                ("gift_note".to_string(), json!("Happy birthday")),
                (
                    "orders_1000".to_string(),
                    json!("https://t.example/old https://gosweetspot.com/track/4180-SSPOT1")
                ),
                ("priority".to_string(), json!(2)),
            ])
        );
    }

    #[test]
    fn the_carrier_is_the_name_of_the_rate_card_label_or_its_mapping() {
        let none = BTreeMap::new();
        assert_eq!(
            carrier_name("Post Haste - AKL - 2011", &none).as_deref(),
            Some("Post Haste")
        );
        assert_eq!(
            carrier_name("NZ Couriers", &none).as_deref(),
            Some("NZ Couriers")
        );
        assert_eq!(
            carrier_name("Castle Parcels-Local - WLG", &none).as_deref(),
            Some("Castle Parcels-Local")
        );
        assert_eq!(carrier_name("  ", &none), None);
        assert_eq!(carrier_name(" - AKL", &none), None);
        let names = BTreeMap::from([
            ("post haste".to_string(), "PostHaste NZ".to_string()),
            ("NZ Post - Courier - 1".to_string(), "NZ Post".to_string()),
        ]);
        assert_eq!(
            carrier_name("Post Haste - AKL - 2011", &names).as_deref(),
            Some("PostHaste NZ")
        );
        assert_eq!(
            carrier_name("NZ Post - Courier - 1", &names).as_deref(),
            Some("NZ Post"),
            "a whole label can be mapped too"
        );
        let s = settings(json!({"send_ticket_number": true,
            "carrier_names": {"Post Haste": "PostHaste NZ"}}));
        let plan = plan_order(
            &order(TaxStatus::Excl),
            None,
            &[consignment("SSPOT1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(
            plan.update.unwrap().logistics_carrier.as_deref(),
            Some("PostHaste NZ")
        );
    }

    #[test]
    fn an_unknown_tax_status_is_said_and_adds_no_tax() {
        let s = settings(json!({"freight": "cost"}));
        let plan = plan_order(
            &order(TaxStatus::Other("1".into())),
            None,
            &[consignment("C1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(plan.update.unwrap().freight_total, Some(dec!(8.50)));
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("taxStatus \"1\" is not Incl")),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn a_freight_of_zero_is_never_written() {
        for mode in ["cost", "marked_up"] {
            let s = settings(json!({"freight": mode}));
            let plan = plan_order(
                &order(TaxStatus::Incl),
                None,
                &[consignment("C1", dec!(0), None)],
                &s,
                now(),
                &[],
            );
            assert_eq!(plan.update, None, "{mode}");
            assert!(
                plan.notes.iter().any(|n| n.contains("freight of 0")),
                "{mode}: {:?}",
                plan.notes
            );
            assert_eq!(plan.effects[0].freight_ex_tax, None);
        }
    }

    #[test]
    fn no_dispatch_time_from_gosweetspot_dispatches_at_now() {
        let s = settings(json!({"send_ticket_number": true}));
        let mut c = consignment("SSPOT1", dec!(8.50), None);
        c.created_utc = None;
        if let Some(shipment) = c.shipment.as_mut() {
            shipment.created_utc = None;
        }
        let plan = plan_order(&order(TaxStatus::Excl), None, &[c], &s, now(), &[]);
        assert_eq!(plan.update.unwrap().dispatched_date, Some(now()));
    }

    #[test]
    fn freight_cost_with_and_without_tax() {
        let s = settings(json!({"freight": "cost"}));
        let incl = plan_order(
            &order(TaxStatus::Incl),
            None,
            &[consignment("C1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(
            incl.update.unwrap().freight_total,
            Some(dec!(9.78)),
            "8.50 × 1.15 = 9.775 → 9.78"
        );
        let excl = plan_order(
            &order(TaxStatus::Excl),
            None,
            &[consignment("C1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(excl.update.unwrap().freight_total, Some(dec!(8.50)));
    }

    #[test]
    fn marked_up_freight_from_gss_or_the_fallback_markup() {
        let s = settings(json!({"freight": "marked_up",
            "markup_by_cost_centre": {"Online": {"percent": "12.5"}}}));
        let gss = plan_order(
            &order(TaxStatus::Excl),
            None,
            &[consignment("C1", dec!(8.50), Some(dec!(9.35)))],
            &s,
            now(),
            &[],
        );
        assert_eq!(gss.update.unwrap().freight_total, Some(dec!(9.35)));
        // No marked-up figure (0 on every item): 4.07 × 1.125 = 4.57875 → 4.58 ex tax; incl
        // 15 %: 5.2655625 → 5.27.
        let excl = plan_order(
            &order(TaxStatus::Excl),
            None,
            &[consignment("C1", dec!(4.07), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(excl.update.unwrap().freight_total, Some(dec!(4.58)));
        assert!(excl.notes[0].contains("applied 12.5%"));
        let incl = plan_order(
            &order(TaxStatus::Incl),
            None,
            &[consignment("C1", dec!(4.07), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(incl.update.unwrap().freight_total, Some(dec!(5.27)));
        let fixed = settings(json!({"freight": "marked_up",
            "markup_by_cost_centre": {"Online": {"fixed": "2.50"}}}));
        let plan = plan_order(
            &order(TaxStatus::Excl),
            None,
            &[consignment("C1", dec!(4.07), None)],
            &fixed,
            now(),
            &[],
        );
        assert_eq!(plan.update.unwrap().freight_total, Some(dec!(6.57)));
        // No markup from GoSweetSpot and none configured for the cost centre: the cost.
        let bare = settings(json!({"freight": "marked_up"}));
        let plan = plan_order(
            &order(TaxStatus::Excl),
            None,
            &[consignment("C1", dec!(4.07), None)],
            &bare,
            now(),
            &[],
        );
        assert_eq!(plan.update.unwrap().freight_total, Some(dec!(4.07)));
        assert!(plan.notes[0].contains("cost used"), "{:?}", plan.notes);
        // Several parcels, one of them without a marked-up figure: it counts at its cost.
        let mut split = consignment("C1", dec!(10), Some(dec!(6.60)));
        if let Some(shipment) = split.shipment.as_mut() {
            shipment.items = vec![
                ShipmentItem {
                    charge_line_total: Some(dec!(6)),
                    charge_marked_up_line_total: Some(dec!(6.60)),
                },
                ShipmentItem {
                    charge_line_total: Some(dec!(4)),
                    charge_marked_up_line_total: Some(dec!(0)),
                },
            ];
        }
        let plan = plan_order(&order(TaxStatus::Excl), None, &[split], &s, now(), &[]);
        assert_eq!(plan.update.unwrap().freight_total, Some(dec!(10.60)));
        assert_eq!(round_cents(dec!(0.005)), dec!(0.01));
        assert_eq!(round_cents(dec!(-0.005)), dec!(-0.01));
    }

    #[test]
    fn existing_freight_is_left_alone_unless_overwriting() {
        let mut o = order(TaxStatus::Excl);
        o.freight_total = Some(dec!(7.50));
        let keep = settings(json!({"freight": "cost"}));
        let plan = plan_order(
            &o,
            None,
            &[consignment("C1", dec!(8.50), None)],
            &keep,
            now(),
            &[],
        );
        assert_eq!(plan.update, None);
        assert!(
            plan.notes.iter().any(|n| n.contains("left alone")),
            "{:?}",
            plan.notes
        );
        assert_eq!(
            plan.effects[0].freight_ex_tax, None,
            "the record says none was added"
        );
        let overwrite = settings(json!({"freight": "cost", "overwrite_existing_freight": true}));
        let plan = plan_order(
            &o,
            None,
            &[consignment("C1", dec!(8.50), None)],
            &overwrite,
            now(),
            &[],
        );
        assert_eq!(plan.update.unwrap().freight_total, Some(dec!(8.50)));
    }

    #[test]
    fn a_split_shipment_adds_each_consignment_once() {
        let s = settings(json!({"send_ticket_number": true, "freight": "cost"}));
        let mut o = order(TaxStatus::Incl);
        let first = plan_order(
            &o,
            None,
            &[consignment("C1", dec!(8.50), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(
            first.update.as_ref().unwrap().freight_total,
            Some(dec!(9.78))
        );
        // CIN7 after the first write-back, and our record of it.
        o.freight_total = Some(dec!(9.78));
        o.logistics_carrier = Some("Post Haste".into());
        o.dispatched_date = Some(Utc::now());
        o.tracking_code = Some("C1".into());
        o.internal_comments =
            Some("Shopify order 5512345678\nhttps://gosweetspot.com/track/4180-C1".into());
        let mut record = OrderRecord::new(7, OrderState::Dispatched, "dispatched", Utc::now());
        record.consignments.push(ConsignmentRecord {
            connote: "C1".into(),
            freight_added: Some(dec!(8.50)),
            tracking_written: true,
            ..Default::default()
        });
        let second = plan_order(
            &o,
            Some(&record),
            &[consignment("C2", dec!(5.00), None)],
            &s,
            now(),
            &[],
        );
        let u = second.update.unwrap();
        assert!(!second.dispatches, "dispatched once");
        assert_eq!(u.dispatched_date, None);
        assert_eq!(u.tracking_code.as_deref(), Some("C1,C2"));
        assert_eq!(
            u.freight_total,
            Some(dec!(15.53)),
            "(8.50 + 5.00) × 1.15 = 15.525 → 15.53"
        );
        assert!(
            u.internal_comments
                .unwrap()
                .ends_with("4180-C1\nhttps://gosweetspot.com/track/4180-C2")
        );
        // The second one again (redelivered after it committed): nothing more.
        o.freight_total = Some(dec!(15.53));
        o.tracking_code = Some("C1,C2".into());
        o.internal_comments = Some(
            "x\nhttps://gosweetspot.com/track/4180-C1\nhttps://gosweetspot.com/track/4180-C2"
                .into(),
        );
        let again = plan_order(
            &o,
            Some(&record),
            &[consignment("C2", dec!(5.00), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(again.update, None);
    }

    #[test]
    fn a_relabel_replaces_the_deleted_consignment_in_one_update() {
        let s = settings(json!({"send_ticket_number": true, "freight": "cost"}));
        let mut o = order(TaxStatus::Incl);
        // CIN7 after the first write-back (C1 by Post Haste, 8.50 ex tax), and our record.
        o.freight_total = Some(dec!(9.78));
        o.logistics_carrier = Some("Post Haste".into());
        o.dispatched_date = Some(Utc::now());
        o.tracking_code = Some("C1".into());
        o.internal_comments =
            Some("Shopify order 5512345678\nhttps://gosweetspot.com/track/4180-C1".into());
        let mut record = OrderRecord::new(7, OrderState::Dispatched, "dispatched", Utc::now());
        record.consignments.push(ConsignmentRecord {
            connote: "C1".into(),
            tracking_url: Some("https://gosweetspot.com/track/4180-C1".into()),
            carrier: Some("Post Haste".into()),
            freight_added: Some(dec!(8.50)),
            tracking_written: true,
            ..Default::default()
        });
        let mut c2 = consignment("C2", dec!(5.00), None);
        if let Some(shipment) = c2.shipment.as_mut() {
            shipment.carrier = Some("NZ Couriers - WLG".into());
        }
        let relabel = plan_order(&o, Some(&record), &[c2.clone()], &s, now(), &["C1".into()]);
        assert_eq!(relabel.relabelled, ["C1"]);
        assert!(!relabel.dispatches, "dispatched once, by the first");
        let u = relabel.update.unwrap();
        assert_eq!(u.tracking_code.as_deref(), Some("C2"));
        assert_eq!(
            u.internal_comments.as_deref(),
            Some("Shopify order 5512345678\nhttps://gosweetspot.com/track/4180-C2")
        );
        assert_eq!(
            u.freight_total,
            Some(dec!(5.75)),
            "5.00 × 1.15: only C2 stands"
        );
        assert_eq!(u.logistics_carrier.as_deref(), Some("NZ Couriers"));
        assert!(
            relabel
                .notes
                .iter()
                .any(|n| n.contains("C1 deleted in GoSweetSpot"))
        );
        // The same consignment as a split shipment (C1 stands): both, freight summed.
        let split = plan_order(&o, Some(&record), &[c2], &s, now(), &[]);
        assert!(split.relabelled.is_empty());
        let u = split.update.unwrap();
        assert_eq!(u.tracking_code.as_deref(), Some("C1,C2"));
        assert_eq!(u.freight_total, Some(dec!(15.53)));
        assert_eq!(u.logistics_carrier, None, "the first carrier is kept");
    }

    #[test]
    fn a_relabel_in_a_custom_field_takes_the_old_url_out() {
        let s = settings(
            json!({"send_ticket_number": true, "tracking_url_field": "customFields.tracking"}),
        );
        let mut o = order(TaxStatus::Excl);
        o.dispatched_date = Some(Utc::now());
        o.tracking_code = Some("C1".into());
        o.custom_fields = BTreeMap::from([
            (
                "tracking".to_string(),
                json!("https://gosweetspot.com/track/4180-C1"),
            ),
            ("gift".to_string(), json!("yes")),
        ]);
        let mut record = OrderRecord::new(7, OrderState::Dispatched, "dispatched", Utc::now());
        record.consignments.push(ConsignmentRecord {
            connote: "C1".into(),
            tracking_url: Some("https://gosweetspot.com/track/4180-C1".into()),
            tracking_written: true,
            ..Default::default()
        });
        let plan = plan_order(
            &o,
            Some(&record),
            &[consignment("C2", dec!(5), None)],
            &s,
            now(),
            &["C1".into()],
        );
        assert_eq!(
            plan.update.unwrap().custom_fields.unwrap(),
            BTreeMap::from([
                ("gift".to_string(), json!("yes")),
                (
                    "tracking".to_string(),
                    json!("https://gosweetspot.com/track/4180-C2")
                ),
            ])
        );
    }

    #[test]
    fn tracking_codes_stay_within_fifty_characters() {
        let s = settings(json!({"send_ticket_number": true}));
        let mut o = order(TaxStatus::Excl);
        o.tracking_code = Some("AAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBB".into());
        o.dispatched_date = Some(Utc::now());
        let plan = plan_order(
            &o,
            None,
            &[consignment("CCCCCCCCCCCC", dec!(1), None)],
            &s,
            now(),
            &[],
        );
        assert_eq!(
            plan.update.as_ref().and_then(|u| u.tracking_code.clone()),
            None
        );
        assert!(plan.notes[0].contains("trackingCode is full"));
    }
}
