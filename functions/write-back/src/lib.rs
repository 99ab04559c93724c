//! `write-back`'s configuration, what it declares it calls, and the wiring its `main.rs` and
//! the test of its code path (tests/code_paths.rs) share.

use serde::{Deserialize, Serialize};
use shared::app::{
    Declaration, EnvVar, METRICS_PER_INTEGRATION, SECRETS_CACHE_SECONDS, TABLE_NAME,
    WRITE_BACK_QUEUE_URL, default_secrets_cache_seconds, process_owner,
};
use shared::writeback::DEFAULT_SHOPIFY_TEMPLATE;
use shared::writeback::handler::{GroupLimits, WriteBackConfig};
use std::time::Duration;

/// The function's configuration: each field from the environment variable of its name in
/// upper case.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    pub table_name: String,
    /// The write-back queue: jobs deferred to the next day's CIN7 budget are sent to it again.
    pub write_back_queue_url: String,
    #[serde(default = "default_max_receives")]
    pub max_receive_count: u32,
    #[serde(default = "default_template")]
    pub shopify_trigger_url_template: String,
    #[serde(default = "default_secrets_cache_seconds")]
    pub secrets_cache_seconds: u64,
    /// EMF dimensions per integration (`METRICS_PER_INTEGRATION`, default false).
    #[serde(default)]
    pub metrics_per_integration: bool,
    /// Integration groups of a batch written back at once (`WRITE_BACK_CONCURRENCY`).
    #[serde(default = "default_concurrency")]
    pub write_back_concurrency: usize,
    /// The longest one integration's group may take (`WRITE_BACK_GROUP_SECONDS`).
    #[serde(default = "default_group_seconds")]
    pub write_back_group_seconds: u64,
}

fn default_concurrency() -> usize {
    10
}
fn default_group_seconds() -> u64 {
    150
}

fn default_max_receives() -> u32 {
    5
}
fn default_template() -> String {
    DEFAULT_SHOPIFY_TEMPLATE.into()
}
/// What the function calls and reads: its store (claims, order records, the shared rate
/// windows, the daily count), the integrations' API keys, the write-back queue (sends of
/// deferred jobs), and — through Lambda's SQS event source, with the function's role — the
/// same queue's receives.
pub const DECLARATION: Declaration = Declaration {
    iam_actions: &[
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
        "sqs:SendMessage",
    ],
    event_source_actions: &[
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ],
    env: &[
        TABLE_NAME,
        WRITE_BACK_QUEUE_URL,
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
        EnvVar {
            name: "WRITE_BACK_CONCURRENCY",
            default: Some("10"),
        },
        EnvVar {
            name: "WRITE_BACK_GROUP_SECONDS",
            default: Some("150"),
        },
    ],
};

impl Config {
    /// The handler's configuration (this process's claim owner minted here).
    pub fn write_back(&self) -> WriteBackConfig {
        WriteBackConfig {
            shopify_template: self.shopify_trigger_url_template.clone(),
            max_receives: self.max_receive_count,
            groups: GroupLimits {
                concurrency: self.write_back_concurrency.max(1),
                deadline: Duration::from_secs(self.write_back_group_seconds.max(1)),
                ..GroupLimits::default()
            },
            ..WriteBackConfig::new(process_owner("write-back"))
        }
    }
}
