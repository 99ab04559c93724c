//! `write-back`'s configuration, what it declares it calls, and the wiring its `main.rs` and
//! the test of its code path (tests/code_paths.rs) share.

use serde::{Deserialize, Serialize};
use shared::app::{
    Declaration, EnvVar, METRICS_PER_INTEGRATION, SECRETS_CACHE_SECONDS, TABLE_NAME,
    default_secrets_cache_seconds, process_owner,
};
use shared::writeback::DEFAULT_SHOPIFY_TEMPLATE;
use shared::writeback::handler::WriteBackConfig;
use std::time::Duration;

/// The function's configuration: each field from the environment variable of its name in
/// upper case.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    pub table_name: String,
    #[serde(default = "default_max_receives")]
    pub max_receive_count: u32,
    #[serde(default = "default_template")]
    pub shopify_trigger_url_template: String,
    #[serde(default = "default_secrets_cache_seconds")]
    pub secrets_cache_seconds: u64,
    /// EMF dimensions per integration (`METRICS_PER_INTEGRATION`, default false).
    #[serde(default)]
    pub metrics_per_integration: bool,
}

fn default_max_receives() -> u32 {
    5
}
fn default_template() -> String {
    DEFAULT_SHOPIFY_TEMPLATE.into()
}
/// What the function calls and reads: its store (claims, order records, the shared rate
/// windows), the integrations' API keys, and — through Lambda's SQS event source, with the
/// function's role — the write-back queue.
pub const DECLARATION: Declaration = Declaration {
    iam_actions: &[
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
    ],
    event_source_actions: &[
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ],
    env: &[
        TABLE_NAME,
        EnvVar {
            name: "MAX_RECEIVE_COUNT",
            default: Some("5"),
        },
        EnvVar {
            name: "SHOPIFY_TRIGGER_URL_TEMPLATE",
            default: Some(DEFAULT_SHOPIFY_TEMPLATE),
        },
        SECRETS_CACHE_SECONDS,
        METRICS_PER_INTEGRATION,
    ],
};

impl Config {
    /// The handler's configuration (this process's claim owner minted here).
    pub fn write_back(&self) -> WriteBackConfig {
        WriteBackConfig {
            shopify_template: self.shopify_trigger_url_template.clone(),
            claim_hold: Duration::from_secs(120),
            max_receives: self.max_receive_count,
            owner: process_owner("write-back"),
        }
    }
}
