//! Property tests: the parsers never panic on arbitrary input, and no reference can break out
//! of its quoted literal in a `where` clause.

use proptest::prelude::*;
use sandbox::where_clause::{self, Literal, Op};
use serde_json::Value;
use shared::cin7::model::{OrderRow, parse_page};
use shared::cin7::query::Where;
use shared::gss::model::{Paged, PublishResult, Shipment, parse};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("2024-05-02T01:02:11Z"),
            Just("2024-05-02T01:02:11.1234567"),
            Just("0001-01-01T00:00:00"),
            Just("Approved"),
            Just("batch"),
            Just("12.50"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    let keys = prop_oneof![
        Just("id".to_string()),
        Just("reference".to_string()),
        Just("status".to_string()),
        Just("modifiedDate".to_string()),
        Just("lineItems".to_string()),
        Just("stockControl".to_string()),
        Just("sizes".to_string()),
        Just("qty".to_string()),
        Just("freightTotal".to_string()),
        Just("customFields".to_string()),
        Just("ConsignmentNo".to_string()),
        Just("Items".to_string()),
        Just("Results".to_string()),
        "[a-zA-Z_]{1,10}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(integration_tests::prop_cases(512)))]

    #[test]
    fn order_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_page(&bytes);
    }

    #[test]
    fn order_parser_never_panics_on_json(v in arb_json()) {
        let _ = OrderRow::from_value(v.clone());
        let _ = parse_page(Value::Array(vec![v]).to_string().as_bytes());
    }

    #[test]
    fn gss_parsers_never_panic(v in arb_json()) {
        let body = v.to_string();
        let _ = parse::<Paged<Shipment>>(body.as_bytes());
        let _ = parse::<Vec<PublishResult>>(body.as_bytes());
        let _ = parse::<Vec<Shipment>>(body.as_bytes());
    }

    #[test]
    fn references_cannot_break_out_of_their_literal(reference in any::<String>()) {
        let clause = Where::new().reference(&reference).build().unwrap();
        let conditions = where_clause::parse(&clause).unwrap();
        prop_assert_eq!(conditions.len(), 1);
        prop_assert_eq!(&conditions[0].field, "reference");
        prop_assert_eq!(conditions[0].op, Op::Eq);
        prop_assert_eq!(&conditions[0].value, &Literal::Text(reference));
    }

    #[test]
    fn hostile_references_stay_one_condition(
        prefix in ".{0,8}",
        suffix in "( OR 1=1| AND id>0|'; DROP TABLE x; --|''|')",
    ) {
        let reference = format!("{prefix}'{suffix}");
        let clause = Where::new().id(7).reference(&reference).build().unwrap();
        let conditions = where_clause::parse(&clause).unwrap();
        prop_assert_eq!(conditions.len(), 2);
        prop_assert_eq!(&conditions[1].value, &Literal::Text(reference));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(integration_tests::prop_cases(256)))]

    #[test]
    fn settings_parsers_never_panic(v in arb_json(), text in ".{0,200}") {
        let _ = shared::settings::IntegrationSettings::from_json(&v.to_string());
        let _ = shared::settings::IntegrationSettings::from_json(&text);
        let _ = shared::settings::IntegrationSettings::from_toml(&text);
    }
}
