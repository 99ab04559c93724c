//! Mapping a CIN7 sales order to a GoSweetSpot customer order, within GoSweetSpot's field
//! limits (every truncation is recorded), plus the content hash used for change detection.
//! Addresses are mapped country-aware by [`super::address`]. Pure.

use super::address::{Cin7Address, map_address};
use super::gates::{Skip, SkipReason};
use crate::cin7::model::SalesOrder;
use crate::gss::model::{CustomerOrder, OrderProduct, limits};
use crate::settings::IntegrationSettings;
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// A mapped order, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub order: CustomerOrder,
    /// Fields shortened to fit, as `field: N → M characters`.
    pub truncations: Vec<String>,
    /// SHA-256 (hex) of the published JSON.
    pub content_hash: String,
}

/// The `packingslipno` an order is published under: its reference when that is 1–20
/// characters without a comma (GoSweetSpot takes packing slip lists comma-separated),
/// otherwise a stable number derived from the CIN7 id (`C7-<id>`), recorded on the order.
pub fn packing_slip(order: &SalesOrder) -> String {
    let reference = order.reference.as_deref().map(str::trim).unwrap_or("");
    let fits = (1..=limits::PACKING_SLIP_NO).contains(&reference.chars().count())
        && !reference.contains(',');
    if fits {
        reference.to_string()
    } else {
        format!("C7-{}", order.id)
    }
}

/// ISO 3166 alpha-2 code for a country as CIN7 holds it (a name, an alias, an alpha-2 or
/// alpha-3 code, any case), using the `celes` tables. Two local names the tables lack are
/// added: "Aotearoa" (New Zealand) and "UK".
pub fn country_code(name: &str) -> Option<String> {
    let name = name.trim();
    let local = match name.to_ascii_lowercase().as_str() {
        "aotearoa" | "aotearoa new zealand" | "new zealand aotearoa" => Some("NZ"),
        "uk" => Some("GB"),
        _ => None,
    };
    if let Some(code) = local {
        return Some(code.into());
    }
    let squashed: String = name.chars().filter(|c| c.is_alphanumeric()).collect();
    celes::Country::from_str(name)
        .or_else(|_| celes::Country::from_str(&squashed))
        .ok()
        .map(|c| c.alpha2.to_string())
}

fn clean(s: Option<&str>) -> String {
    s.map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn joined(parts: &[Option<&str>]) -> String {
    parts
        .iter()
        .map(|p| clean(*p))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cuts `value` to `max` characters, recording the cut.
fn fit(field: &str, value: String, max: usize, truncations: &mut Vec<String>) -> String {
    let n = value.chars().count();
    if n <= max {
        return value;
    }
    truncations.push(format!("{field}: {n} → {max} characters"));
    value.chars().take(max).collect()
}

/// The value of one unit of a line: CIN7's `discount` is the line's *total* discount, so the
/// unit value is `unitPrice − discount / qty`, rounded half away from zero to cents and never
/// below 0.
pub fn unit_value(unit_price: Decimal, discount: Decimal, qty: Decimal) -> Decimal {
    let per_unit = if qty.is_zero() {
        discount
    } else {
        discount / qty
    };
    (unit_price - per_unit)
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
        .max(Decimal::ZERO)
}

/// Maps an order that passed the gates; fails only when its country cannot be mapped.
pub fn map_order(order: &SalesOrder, settings: &IntegrationSettings) -> Result<Mapped, Skip> {
    let country_text = clean(order.delivery_country.as_deref());
    let country = if country_text.is_empty() {
        settings.import.default_country.clone()
    } else {
        country_code(&country_text).ok_or(Skip {
            reason: SkipReason::UnknownCountry,
            detail: Some(format!("deliveryCountry {country_text:?}")),
        })?
    };
    let mut cut = Vec::new();
    let person = {
        let delivery = joined(&[
            order.delivery_first_name.as_deref(),
            order.delivery_last_name.as_deref(),
        ]);
        if delivery.is_empty() {
            joined(&[order.first_name.as_deref(), order.last_name.as_deref()])
        } else {
            delivery
        }
    };
    let company = clean(
        order
            .delivery_company
            .as_deref()
            .or(order.company.as_deref()),
    );
    let consignee = if company.is_empty() {
        person.clone()
    } else {
        company
    };
    let phone = {
        let phone = clean(order.phone.as_deref());
        if phone.is_empty() {
            clean(order.mobile.as_deref())
        } else {
            phone
        }
    };
    // The customer's own order number when CIN7 holds one (what a dispatcher and the
    // customer quote), else the order's reference.
    let reference = match clean(order.customer_order_no.as_deref()) {
        own if !own.is_empty() => own,
        _ => clean(order.reference.as_deref()),
    };
    let instructions = {
        let given = clean(order.delivery_instructions.as_deref());
        let method = clean(order.freight_description.as_deref());
        match (
            settings.import.instructions_prefix_shipping_method,
            method.is_empty(),
        ) {
            (true, false) if given.is_empty() => method,
            (true, false) => format!("{method}: {given}"),
            _ => given,
        }
    };
    let mut copied = |setting: &str, target: &str| {
        order
            .field_text(setting)
            .map(|v| fit(target, clean(Some(&v)), limits::CUSTOM_FIELD, &mut cut))
    };
    let custom_field_1 = copied(&settings.import.custom_field_1, "customField1Value");
    let custom_field_2 = copied(&settings.import.custom_field_2, "customField2Value");
    let currency = order
        .currency_code
        .as_deref()
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| c.len() == limits::CURRENCY);
    let products = order
        .line_items
        .iter()
        .filter(|l| l.qty > rust_decimal::Decimal::ZERO)
        .map(|l| {
            let description = joined(&[
                l.name.as_deref(),
                l.option1.as_deref(),
                l.option2.as_deref(),
                l.option3.as_deref(),
            ]);
            OrderProduct {
                productcode: fit(
                    "productcode",
                    clean(l.code.as_deref()),
                    limits::PRODUCT_CODE,
                    &mut cut,
                ),
                description: fit(
                    "description",
                    description,
                    limits::PRODUCT_DESCRIPTION,
                    &mut cut,
                ),
                units: l.qty,
                unitvalue: unit_value(l.unit_price, l.discount, l.qty),
                currency: currency.clone(),
                unitkg: None,
            }
        })
        .collect();
    let (line1, line2, city, state) = (
        clean(order.delivery_address1.as_deref()),
        clean(order.delivery_address2.as_deref()),
        clean(order.delivery_city.as_deref()),
        clean(order.delivery_state.as_deref()),
    );
    let address = map_address(
        &country,
        Cin7Address {
            line1: &line1,
            line2: &line2,
            city: &city,
            state: &state,
        },
    );
    let customer_order = CustomerOrder {
        packingslipno: packing_slip(order),
        consignee: fit("consignee", consignee, limits::CONSIGNEE, &mut cut),
        address1: fit("address1", address.address1, limits::ADDRESS, &mut cut),
        address2: fit("address2", address.address2, limits::ADDRESS, &mut cut),
        suburb: fit("suburb", address.suburb, limits::SUBURB, &mut cut),
        city: fit("city", address.city, limits::CITY, &mut cut),
        postcode: fit(
            "postcode",
            clean(order.delivery_postal_code.as_deref()),
            limits::POSTCODE,
            &mut cut,
        ),
        country,
        delvref: fit("delvref", reference, limits::DELIVERY_REFERENCE, &mut cut),
        delvinstructions: fit(
            "delvinstructions",
            instructions,
            limits::DELIVERY_INSTRUCTIONS,
            &mut cut,
        ),
        contactname: fit("contactname", person, limits::CONTACT_NAME, &mut cut),
        contactphone: fit("contactphone", phone, limits::CONTACT_PHONE, &mut cut),
        email: fit(
            "email",
            clean(order.email.as_deref()),
            limits::EMAIL,
            &mut cut,
        ),
        costcentre: settings.cost_centre_for(order.branch_id).map(str::to_owned),
        custom_field_1,
        custom_field_2,
        products,
    };
    let content_hash = content_hash(&customer_order);
    Ok(Mapped {
        order: customer_order,
        truncations: cut,
        content_hash,
    })
}

/// SHA-256 (hex) of a customer order's JSON: equal exactly when what would be published is.
pub fn content_hash(order: &CustomerOrder) -> String {
    let json = serde_json::to_vec(order).unwrap_or_default();
    Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cin7::model::LineItem;
    use rust_decimal_macros::dec;

    fn settings() -> IntegrationSettings {
        IntegrationSettings::from_json(
            &serde_json::json!({
                "id": "acme",
                "cin7": {"api_username": "u", "api_key": "k"},
                "gss": {"site_id": "1", "access_key": "k", "support_email": "a@b.nz",
                        "cost_centre": "Online", "cost_centre_by_branch": {"7": "Wholesale"}},
                "webhook": {"secret": "s"}
            })
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn countries_from_names_codes_and_local_names() {
        for (name, code) in [
            ("New Zealand", "NZ"),
            ("new zealand", "NZ"),
            ("NZ", "NZ"),
            ("NZL", "NZ"),
            ("Aotearoa", "NZ"),
            ("Australia", "AU"),
            ("United Kingdom", "GB"),
            ("United States", "US"),
        ] {
            assert_eq!(country_code(name).as_deref(), Some(code), "{name}");
        }
        assert_eq!(country_code("Middle Earth"), None);
    }

    #[test]
    fn unit_value_takes_the_lines_total_discount_per_unit() {
        for (price, discount, qty, want) in [
            (dec!(29.95), dec!(0), dec!(2), dec!(29.95)),
            (dec!(29.95), dec!(5), dec!(2), dec!(27.45)),
            (dec!(10), dec!(1), dec!(3), dec!(9.67)),
            (dec!(10), dec!(2), dec!(3), dec!(9.33)),
            (dec!(0.10), dec!(0.05), dec!(2), dec!(0.08)),
            (dec!(19.99), dec!(60), dec!(3), dec!(0)),
            (dec!(5), dec!(1), dec!(0), dec!(4)),
        ] {
            assert_eq!(
                unit_value(price, discount, qty),
                want,
                "{price} − {discount}/{qty}"
            );
        }
    }

    #[test]
    fn an_australian_order_names_its_state_in_city() {
        let order = SalesOrder {
            id: 13,
            reference: Some("#1013".into()),
            delivery_address1: Some("1 George Street".into()),
            delivery_city: Some("Sydney".into()),
            delivery_state: Some("New South Wales".into()),
            delivery_postal_code: Some("2000".into()),
            delivery_country: Some("Australia".into()),
            ..Default::default()
        };
        let o = map_order(&order, &settings()).unwrap().order;
        assert_eq!(
            (o.suburb.as_str(), o.city.as_str(), o.country.as_str()),
            ("Sydney", "NSW", "AU")
        );
    }

    #[test]
    fn packing_slip_is_the_reference_or_a_stable_derived_number() {
        let mut o = SalesOrder {
            id: 42,
            reference: Some("#1050".into()),
            ..Default::default()
        };
        assert_eq!(packing_slip(&o), "#1050");
        o.reference = Some("A-REFERENCE-LONGER-THAN-20".into());
        assert_eq!(packing_slip(&o), "C7-42");
        o.reference = Some("A,B".into());
        assert_eq!(packing_slip(&o), "C7-42");
    }

    #[test]
    fn maps_fields_within_limits_and_records_truncations() {
        let order = SalesOrder {
            id: 9,
            reference: Some("SO-9".into()),
            delivery_first_name: Some("Aroha".into()),
            delivery_last_name: Some("Smith".into()),
            delivery_address1: Some("12 Queen Street".into()),
            delivery_address2: Some("Unit 3".into()),
            delivery_city: Some("Auckland".into()),
            delivery_state: Some("Auckland".into()),
            delivery_postal_code: Some("1010".into()),
            delivery_country: Some("".into()),
            delivery_instructions: Some("x".repeat(130)),
            mobile: Some("021 555 0101".into()),
            branch_id: Some(7),
            currency_code: Some("nzd".into()),
            line_items: vec![LineItem {
                code: Some("TEE-BLK-M".into()),
                name: Some("Black Tee".into()),
                option1: Some("Medium".into()),
                qty: dec!(2),
                unit_price: dec!(29.95),
                // The line's total discount: 2.50 a unit.
                discount: dec!(5),
                ..Default::default()
            }],
            ..Default::default()
        };
        let m = map_order(&order, &settings()).unwrap();
        let o = &m.order;
        assert_eq!(o.packingslipno, "SO-9");
        assert_eq!(o.consignee, "Aroha Smith");
        assert_eq!(
            (
                o.address1.as_str(),
                o.address2.as_str(),
                o.suburb.as_str(),
                o.city.as_str()
            ),
            ("Unit 3", "12 Queen Street", "", "Auckland"),
            "the region is never the suburb"
        );
        assert_eq!(o.country, "NZ", "default country when empty");
        assert_eq!(o.contactphone, "021 555 0101", "mobile as fallback");
        assert_eq!(o.costcentre.as_deref(), Some("Wholesale"));
        assert_eq!(o.delvinstructions.chars().count(), 120);
        assert_eq!(m.truncations, ["delvinstructions: 130 → 120 characters"]);
        let p = &o.products[0];
        assert_eq!(p.description, "Black Tee Medium");
        assert_eq!(p.unitvalue, dec!(27.45), "29.95 − 5 / 2");
        assert_eq!(p.currency.as_deref(), Some("NZD"));
        assert_eq!(m.content_hash, content_hash(o));
        let mut changed = order.clone();
        changed.delivery_city = Some("Wellington".into());
        assert_ne!(
            map_order(&changed, &settings()).unwrap().content_hash,
            m.content_hash
        );
    }

    #[test]
    fn what_the_dispatcher_reads_references_custom_fields_and_the_shipping_method() {
        let order: SalesOrder = serde_json::from_value(serde_json::json!({
            "id": 10, "reference": "SO-10", "customerOrderNo": " PO 4471 ",
            "freightDescription": "NZ Post Courier", "deliveryInstructions": "Leave at door",
            "salesPersonEmail": "kiri@acme.nz", "projectName": 17,
            "customFields": {"orders_1000": "Gift wrap", "orders_1001": "y".repeat(60)},
        }))
        .unwrap();
        let plain = map_order(&order, &settings()).unwrap();
        assert_eq!(
            plain.order.delvref, "PO 4471",
            "the customer's order number first"
        );
        assert_eq!(plain.order.delvinstructions, "Leave at door");
        assert_eq!(
            (
                plain.order.custom_field_1.as_ref(),
                plain.order.custom_field_2.as_ref()
            ),
            (None, None)
        );
        let without_po = SalesOrder {
            customer_order_no: Some("  ".into()),
            ..order.clone()
        };
        assert_eq!(
            map_order(&without_po, &settings()).unwrap().order.delvref,
            "SO-10"
        );

        let mut s = settings();
        s.import.custom_field_1 = "customFields.orders_1000".into();
        s.import.custom_field_2 = "salesPersonEmail".into();
        s.import.instructions_prefix_shipping_method = true;
        let m = map_order(&order, &s).unwrap();
        assert_eq!(m.order.custom_field_1.as_deref(), Some("Gift wrap"));
        assert_eq!(m.order.custom_field_2.as_deref(), Some("kiri@acme.nz"));
        assert_eq!(m.order.delvinstructions, "NZ Post Courier: Leave at door");
        assert_ne!(m.content_hash, plain.content_hash);
        // A number is written out; a long value is cut to 50 and the cut recorded; a field the
        // order lacks is left out.
        s.import.custom_field_1 = "projectName".into();
        s.import.custom_field_2 = "customFields.orders_1001".into();
        let m = map_order(&order, &s).unwrap();
        assert_eq!(m.order.custom_field_1.as_deref(), Some("17"));
        assert_eq!(m.order.custom_field_2.as_ref().map(|v| v.len()), Some(50));
        assert_eq!(m.truncations, ["customField2Value: 60 → 50 characters"]);
        s.import.custom_field_1 = "customFields.missing".into();
        assert_eq!(map_order(&order, &s).unwrap().order.custom_field_1, None);
        // The shipping method alone when there are no instructions; cut to 120 with them.
        let bare = SalesOrder {
            delivery_instructions: None,
            ..order.clone()
        };
        assert_eq!(
            map_order(&bare, &s).unwrap().order.delvinstructions,
            "NZ Post Courier"
        );
        let long = SalesOrder {
            delivery_instructions: Some("z".repeat(110)),
            ..order
        };
        let m = map_order(&long, &s).unwrap();
        assert_eq!(m.order.delvinstructions.chars().count(), 120);
        assert!(m.order.delvinstructions.starts_with("NZ Post Courier: zzz"));
    }
}
