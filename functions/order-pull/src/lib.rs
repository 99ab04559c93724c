//! `order-pull`'s configuration, what it declares it calls, and the wiring its `main.rs` and
//! the test of its code path (tests/code_paths.rs) share.

use serde::{Deserialize, Serialize};
use shared::app::{
    Declaration, EnvVar, SECRETS_CACHE_SECONDS, TABLE_NAME, WRITE_BACK_QUEUE_URL,
    default_secrets_cache_seconds, process_owner,
};
use shared::pull::handler::PullConfig;
use std::time::Duration;

/// The function's configuration: each field from the environment variable of its name in
/// upper case.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    pub table_name: String,
    pub write_back_queue_url: String,
    #[serde(default = "default_concurrency")]
    pub pull_concurrency: usize,
    #[serde(default = "default_margin")]
    pub pull_margin_seconds: u64,
    #[serde(default = "default_secrets_cache_seconds")]
    pub secrets_cache_seconds: u64,
}

fn default_concurrency() -> usize {
    4
}
fn default_margin() -> u64 {
    20
}
/// What the function calls and reads: its store (the pull's lease, cursors, records, call
/// budget, the shared rate windows; the reconcile's sightings), the write-back queue (the
/// reconcile sends), and the integrations' API keys.
pub const DECLARATION: Declaration = Declaration {
    iam_actions: &[
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
        "sqs:SendMessage",
    ],
    event_source_actions: &[],
    env: &[
        TABLE_NAME,
        WRITE_BACK_QUEUE_URL,
        EnvVar {
            name: "PULL_CONCURRENCY",
            default: Some("4"),
        },
        EnvVar {
            name: "PULL_MARGIN_SECONDS",
            default: Some("20"),
        },
        SECRETS_CACHE_SECONDS,
    ],
};

impl Config {
    /// The handler's configuration (this process's lease owner minted here).
    pub fn pull(&self) -> PullConfig {
        PullConfig {
            concurrency: self.pull_concurrency,
            margin: Duration::from_secs(self.pull_margin_seconds),
            owner: process_owner("order-pull"),
        }
    }
}
