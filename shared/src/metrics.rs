//! CloudWatch Embedded Metric Format: one JSON line on stdout per record, which CloudWatch
//! Logs turns into metrics with no API call. Dimensioned by integration.

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "cin7-gss";

/// Builds one EMF record: counts (unit `Count`) for one function, dimensioned by `Function`
/// and, when given, `Integration`.
pub fn record(
    function: &str,
    integration: Option<&str>,
    counts: &[(&str, u64)],
    at_ms: i64,
) -> Value {
    let metrics: Vec<Value> = counts
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    let dimensions = match integration {
        Some(_) => json!([["Function", "Integration"]]),
        None => json!([["Function"]]),
    };
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": metrics,
            }]
        }),
    );
    root.insert("Function".into(), json!(function));
    if let Some(integration) = integration {
        root.insert("Integration".into(), json!(integration));
    }
    for (name, value) in counts {
        root.insert((*name).into(), json!(value));
    }
    Value::Object(root)
}

/// Writes an EMF record of one integration's counts (see [`write`]).
pub fn emit(function: &str, integration: &str, counts: &[(&str, u64)]) {
    write(function, Some(integration), counts);
}

/// Writes an EMF record of counts for the whole deployment, dimensioned by function only
/// (what an alarm across every integration watches).
pub fn emit_total(function: &str, counts: &[(&str, u64)]) {
    write(function, None, counts);
}

/// Writes an EMF record to stdout when running in Lambda (where CloudWatch Logs reads it);
/// elsewhere (local mode, tests) the counts go to the debug log instead.
fn write(function: &str, integration: Option<&str>, counts: &[(&str, u64)]) {
    let now = chrono::Utc::now().timestamp_millis();
    let record = record(function, integration, counts, now);
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        println!("{record}");
    } else {
        tracing::debug!(metrics = %record, "metrics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let r = record(
            "order-pull",
            Some("acme"),
            &[("OrdersPublished", 3), ("Cin7Calls", 2)],
            1,
        );
        assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Namespace"], "cin7-gss");
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"],
            "Cin7Calls"
        );
        assert_eq!(r["OrdersPublished"], 3);
        assert_eq!(r["Integration"], "acme");
        let total = record("order-pull", None, &[("ConsignmentsReconciled", 2)], 1);
        assert_eq!(
            total["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert!(total.get("Integration").is_none());
        assert_eq!(total["ConsignmentsReconciled"], 2);
    }
}
