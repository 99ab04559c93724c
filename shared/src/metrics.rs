//! The metrics port: the core hands its [`Counts`] to a [`MetricsSink`]. In Lambda the sink
//! writes CloudWatch Embedded Metric Format — one JSON line on stdout per record, which
//! CloudWatch Logs turns into metrics with no API call — dimensioned by function only (a
//! custom metric per merchant would cost more than the merchant's compute); the integration
//! rides along as a property of the line, for CloudWatch Logs Insights. Per-integration
//! dimensions are a setting ([`Dimensions::PerIntegration`]). Local mode logs the counts;
//! tests capture them.

use crate::clock::Clock;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "cin7-gss";

/// Which dimensions the EMF records carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dimensions {
    /// The function only; the integration is a property of the log line (the default).
    #[default]
    Function,
    /// The function, and the function with the integration (a metric per merchant).
    PerIntegration,
}

impl Dimensions {
    /// From the functions' `METRICS_PER_INTEGRATION` setting.
    pub fn per_integration(on: bool) -> Self {
        if on {
            Self::PerIntegration
        } else {
            Self::Function
        }
    }
}

/// Builds one EMF record: counts (unit `Count`) for one function, dimensioned as `dimensions`
/// says; the integration, when given, is always a property of the line.
pub fn record(
    function: &str,
    integration: Option<&str>,
    counts: &[(&str, u64)],
    at_ms: i64,
    dimensions: Dimensions,
) -> Value {
    let metrics: Vec<Value> = counts
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    let dimensions = match (integration, dimensions) {
        (Some(_), Dimensions::PerIntegration) => json!([["Function", "Integration"], ["Function"]]),
        _ => json!([["Function"]]),
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

/// One record of counts: one function's, for one integration or (`None`) the whole deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub function: &'static str,
    pub integration: Option<String>,
    pub counts: Vec<(String, u64)>,
}

impl Counts {
    /// One integration's counts.
    pub fn of(function: &'static str, integration: &str, counts: &[(&str, u64)]) -> Self {
        Self {
            function,
            integration: Some(integration.to_string()),
            counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    /// Counts for the whole deployment, dimensioned by function only (what an alarm across
    /// every integration watches).
    pub fn total(function: &'static str, counts: &[(&str, u64)]) -> Self {
        Self {
            integration: None,
            ..Self::of(function, "", counts)
        }
    }

    /// The count of `name`, if recorded.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counts.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The EMF record of these counts at `at_ms`.
    pub fn emf(&self, at_ms: i64, dimensions: Dimensions) -> Value {
        let counts: Vec<(&str, u64)> = self.counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        record(
            self.function,
            self.integration.as_deref(),
            &counts,
            at_ms,
            dimensions,
        )
    }
}

/// Where the core's metrics go.
pub trait MetricsSink: Send + Sync {
    /// Records one set of counts.
    fn emit(&self, counts: Counts);
}

/// EMF on stdout, where CloudWatch Logs reads it (the Lambda functions), stamped by `clock`.
pub struct EmfStdout {
    pub clock: Arc<dyn Clock>,
    pub dimensions: Dimensions,
}

impl MetricsSink for EmfStdout {
    fn emit(&self, counts: Counts) {
        println!(
            "{}",
            counts.emf(self.clock.now().timestamp_millis(), self.dimensions)
        );
    }
}

/// Counts in the debug log (local mode, where nothing reads EMF).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogMetrics;

impl MetricsSink for LogMetrics {
    fn emit(&self, counts: Counts) {
        tracing::debug!(function = counts.function, integration = ?counts.integration, counts = ?counts.counts, "metrics");
    }
}

/// Keeps every record, for tests to read.
#[derive(Debug, Default)]
pub struct CapturedMetrics(Mutex<Vec<Counts>>);

impl CapturedMetrics {
    /// Every record so far.
    pub fn all(&self) -> Vec<Counts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The sum of `name` over every record of `function`.
    pub fn sum(&self, function: &str, name: &str) -> u64 {
        self.all()
            .iter()
            .filter(|c| c.function == function)
            .filter_map(|c| c.get(name))
            .sum()
    }
}

impl MetricsSink for CapturedMetrics {
    fn emit(&self, counts: Counts) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_carry_no_integration_dimension_by_default() {
        let counts = Counts::of("write-back", "acme", &[("WriteBacksDone", 4)]);
        let line = counts.emf(7, Dimensions::default()).to_string();
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert_eq!(
            parsed["Integration"], "acme",
            "a property for Logs Insights"
        );
        assert_eq!(parsed["Function"], "write-back");
        assert_eq!(parsed["WriteBacksDone"], 4);
        let per = counts.emf(7, Dimensions::per_integration(true));
        assert_eq!(
            per["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Integration"], ["Function"]]),
            "per merchant, and the function's total an alarm reads"
        );
        assert_eq!(Dimensions::per_integration(false), Dimensions::Function);
    }

    #[test]
    fn emf_shape() {
        let r = record(
            "order-pull",
            Some("acme"),
            &[("OrdersPublished", 3), ("Cin7Calls", 2)],
            1,
            Dimensions::PerIntegration,
        );
        assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Namespace"], "cin7-gss");
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"],
            "Cin7Calls"
        );
        assert_eq!(r["OrdersPublished"], 3);
        assert_eq!(r["Integration"], "acme");
        let total = record(
            "order-pull",
            None,
            &[("ConsignmentsReconciled", 2)],
            1,
            Dimensions::PerIntegration,
        );
        assert_eq!(
            total["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert!(total.get("Integration").is_none());
        assert_eq!(total["ConsignmentsReconciled"], 2);
    }
}
