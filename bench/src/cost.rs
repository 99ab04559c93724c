//! The cost model: what one merchant costs a month, from the fleet run's counts per tenant-day
//! and AWS list prices in ap-southeast-2 (Sydney, the region nearest New Zealand's merchants).
//!
//! Each price carries its date and source. They were recorded from AWS's public pricing pages
//! and cannot be checked from the machine the benchmark runs on (no internet): update
//! [`PRICES`] when AWS changes them. Free tiers are left out (a deployment of thousands of
//! merchants is far past them).

use std::collections::BTreeMap;

/// One list price.
#[derive(Debug, Clone, Copy)]
pub struct Price {
    pub usd: f64,
    /// What one `usd` buys.
    pub unit: &'static str,
    pub recorded: &'static str,
    pub source: &'static str,
}

/// The price table (ap-southeast-2, on-demand, USD).
pub struct Prices {
    pub lambda_arm_gb_s: Price,
    pub lambda_requests: Price,
    pub dynamodb_write_units: Price,
    pub dynamodb_read_units: Price,
    pub sqs_requests: Price,
    pub api_gateway_http_requests: Price,
    pub secret_month: Price,
    pub secrets_api_calls: Price,
    pub cloudwatch_metric_month: Price,
    pub cloudwatch_alarm_month: Price,
    pub log_ingestion_gb: Price,
}

/// The prices the model uses.
pub const PRICES: Prices = Prices {
    lambda_arm_gb_s: Price {
        usd: 0.000_013_333_4,
        unit: "GB-second, arm64, first 7.5 billion a month",
        recorded: "2025-06",
        source: "https://aws.amazon.com/lambda/pricing/",
    },
    lambda_requests: Price {
        usd: 0.20 / 1e6,
        unit: "request",
        recorded: "2025-06",
        source: "https://aws.amazon.com/lambda/pricing/",
    },
    dynamodb_write_units: Price {
        usd: 0.7125 / 1e6,
        unit: "write request unit, on-demand (after the November 2024 price cut)",
        recorded: "2025-06",
        source: "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    },
    dynamodb_read_units: Price {
        usd: 0.1425 / 1e6,
        unit: "read request unit, on-demand",
        recorded: "2025-06",
        source: "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    },
    sqs_requests: Price {
        usd: 0.40 / 1e6,
        unit: "request, standard queue (64 KB chunk)",
        recorded: "2025-06",
        source: "https://aws.amazon.com/sqs/pricing/",
    },
    api_gateway_http_requests: Price {
        usd: 1.29 / 1e6,
        unit: "HTTP API request, first 300 million a month",
        recorded: "2025-06",
        source: "https://aws.amazon.com/api-gateway/pricing/",
    },
    secret_month: Price {
        usd: 0.40,
        unit: "secret-month",
        recorded: "2025-06",
        source: "https://aws.amazon.com/secrets-manager/pricing/",
    },
    secrets_api_calls: Price {
        usd: 0.05 / 1e4,
        unit: "API call",
        recorded: "2025-06",
        source: "https://aws.amazon.com/secrets-manager/pricing/",
    },
    cloudwatch_metric_month: Price {
        usd: 0.30,
        unit: "custom metric-month, first 10,000",
        recorded: "2025-06",
        source: "https://aws.amazon.com/cloudwatch/pricing/",
    },
    cloudwatch_alarm_month: Price {
        usd: 0.10,
        unit: "standard-resolution alarm-month",
        recorded: "2025-06",
        source: "https://aws.amazon.com/cloudwatch/pricing/",
    },
    log_ingestion_gb: Price {
        usd: 0.57,
        unit: "GB of logs ingested (standard class)",
        recorded: "2025-06",
        source: "https://aws.amazon.com/cloudwatch/pricing/",
    },
};

/// Days in the average month.
pub const DAYS_A_MONTH: f64 = 30.42;

/// What one merchant uses in a day (the fleet run's counts), and what the deployment uses
/// whatever its size.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub lambda_gb_s: f64,
    pub lambda_requests: f64,
    pub dynamodb_write_units: f64,
    pub dynamodb_read_units: f64,
    pub sqs_requests: f64,
    pub webhook_requests: f64,
    /// Merchants whose keys share one secret (1: a secret each).
    pub merchants_a_secret: f64,
    pub secrets_calls: f64,
    pub log_bytes: f64,
    /// Custom metrics the deployment publishes (all merchants together).
    pub deployment_metrics: f64,
    /// Alarms of the template.
    pub deployment_alarms: f64,
    /// SQS receives the event sources' pollers make a day on empty queues, and the sweeper's
    /// invocations a day (all merchants together).
    pub deployment_sqs_requests: f64,
    pub deployment_lambda_requests: f64,
}

/// SQS's empty-queue polling by Lambda's event sources: five pollers a queue, each long-polling
/// 20 s (AWS: "Lambda polls the queue with up to five concurrent batches"), on the two queues
/// with an event source.
pub fn idle_polling_a_day() -> f64 {
    2.0 * 5.0 * 3.0 * 60.0 * 24.0
}

/// Cost per merchant-month by component, and `total`, for a deployment of `merchants`.
pub fn cost_per_merchant_month(usage: &Usage, merchants: usize) -> BTreeMap<String, f64> {
    let p = &PRICES;
    let n = merchants.max(1) as f64;
    let month = DAYS_A_MONTH;
    let mut c = BTreeMap::new();
    c.insert(
        "lambda".to_string(),
        month
            * (usage.lambda_gb_s * p.lambda_arm_gb_s.usd
                + (usage.lambda_requests + usage.deployment_lambda_requests / n)
                    * p.lambda_requests.usd),
    );
    c.insert(
        "dynamodb".to_string(),
        month
            * (usage.dynamodb_write_units * p.dynamodb_write_units.usd
                + usage.dynamodb_read_units * p.dynamodb_read_units.usd),
    );
    c.insert(
        "sqs".to_string(),
        month * (usage.sqs_requests + usage.deployment_sqs_requests / n) * p.sqs_requests.usd,
    );
    c.insert(
        "api_gateway".to_string(),
        month * usage.webhook_requests * p.api_gateway_http_requests.usd,
    );
    c.insert(
        "secrets_manager".to_string(),
        (n / usage.merchants_a_secret.max(1.0)).ceil() / n * p.secret_month.usd
            + month * usage.secrets_calls * p.secrets_api_calls.usd,
    );
    c.insert(
        "cloudwatch_metrics".to_string(),
        (usage.deployment_metrics * p.cloudwatch_metric_month.usd
            + usage.deployment_alarms * p.cloudwatch_alarm_month.usd)
            / n,
    );
    c.insert(
        "cloudwatch_logs".to_string(),
        month * usage.log_bytes / 1e9 * p.log_ingestion_gb.usd,
    );
    let total = c.values().sum();
    c.insert("total".to_string(), total);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_costs_are_shared_and_per_merchant_costs_are_not() {
        let usage = Usage {
            merchants_a_secret: 1.0,
            deployment_metrics: 100.0,
            ..Usage::default()
        };
        let one = cost_per_merchant_month(&usage, 1);
        let many = cost_per_merchant_month(&usage, 1000);
        assert!((one["secrets_manager"] - 0.40).abs() < 1e-9);
        assert!((many["secrets_manager"] - 0.40).abs() < 1e-9);
        // Shared secrets: a deployment has at least one, and a secret for each hundred.
        let shared = Usage {
            merchants_a_secret: 100.0,
            ..Usage::default()
        };
        assert!((cost_per_merchant_month(&shared, 1)["secrets_manager"] - 0.40).abs() < 1e-9);
        assert!(
            (cost_per_merchant_month(&shared, 150)["secrets_manager"] - 0.80 / 150.0).abs() < 1e-9
        );
        assert!((cost_per_merchant_month(&shared, 10_000)["secrets_manager"] - 0.004).abs() < 1e-9);
        assert!((one["cloudwatch_metrics"] - 30.0).abs() < 1e-9);
        assert!((many["cloudwatch_metrics"] - 0.03).abs() < 1e-9);
        assert!((many["total"] - 0.43).abs() < 1e-9);
    }
}
