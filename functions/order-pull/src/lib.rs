//! `order-pull`'s configuration, what it declares it calls, and the wiring its `main.rs` and
//! the test of its code path (tests/code_paths.rs) share.

use serde::{Deserialize, Serialize};
use shared::app::{
    Declaration, EnvVar, METRICS_PER_INTEGRATION, SECRETS_CACHE_SECONDS, TABLE_NAME,
    WRITE_BACK_QUEUE_URL, default_secrets_cache_seconds, process_owner,
};
use shared::pull::handler::PullConfig;
use shared::schedule::{SweepConfig, WorkerConfig};
use std::time::Duration;

/// The function's configuration: each field from the environment variable of its name in
/// upper case.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    pub table_name: String,
    pub write_back_queue_url: String,
    /// The pull queue: each pull sends its integration's next message here.
    pub pull_queue_url: String,
    #[serde(default = "default_concurrency")]
    pub pull_concurrency: usize,
    #[serde(default = "default_margin")]
    pub pull_margin_seconds: u64,
    #[serde(default = "default_slice_seconds")]
    pub pull_slice_seconds: u64,
    #[serde(default = "default_slice_pages")]
    pub pull_slice_pages: u32,
    #[serde(default = "default_grace")]
    pub pull_sweep_grace_seconds: u64,
    /// The longest a schedule's pulls go without reconciling.
    #[serde(default = "default_reconcile_seconds")]
    pub pull_reconcile_seconds: u64,
    #[serde(default = "default_secrets_cache_seconds")]
    pub secrets_cache_seconds: u64,
    /// EMF dimensions per integration (`METRICS_PER_INTEGRATION`, default false).
    #[serde(default)]
    pub metrics_per_integration: bool,
}

fn default_concurrency() -> usize {
    10
}
fn default_margin() -> u64 {
    20
}
fn default_slice_seconds() -> u64 {
    60
}
fn default_slice_pages() -> u32 {
    20
}
fn default_grace() -> u64 {
    120
}
fn default_reconcile_seconds() -> u64 {
    300
}

/// What the function calls and reads: its store (the pull's lease, cursors, records, call
/// budget, the shared rate windows, the schedules and their due index; the reconcile's
/// sightings), the pull queue (each pull sends its integration's next message; the sweeper
/// re-seeds) and the write-back queue (the reconcile sends), and the integrations' API keys;
/// its SQS event source reads the pull queue.
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
    event_source_actions: &[
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ],
    env: &[
        TABLE_NAME,
        WRITE_BACK_QUEUE_URL,
        EnvVar {
            name: "PULL_QUEUE_URL",
            default: None,
        },
        EnvVar {
            name: "PULL_CONCURRENCY",
            default: Some("10"),
        },
        EnvVar {
            name: "PULL_MARGIN_SECONDS",
            default: Some("20"),
        },
        EnvVar {
            name: "PULL_SLICE_SECONDS",
            default: Some("60"),
        },
        EnvVar {
            name: "PULL_SLICE_PAGES",
            default: Some("20"),
        },
        EnvVar {
            name: "PULL_SWEEP_GRACE_SECONDS",
            default: Some("120"),
        },
        EnvVar {
            name: "PULL_RECONCILE_SECONDS",
            default: Some("300"),
        },
        SECRETS_CACHE_SECONDS,
        METRICS_PER_INTEGRATION,
    ],
};

/// The configurations of the function's three handlers, with one lease owner for this process.
#[derive(Debug, Clone)]
pub struct Handlers {
    /// A direct pull of one integration.
    pub pull: PullConfig,
    /// The pull messages.
    pub worker: WorkerConfig,
    /// The schedule's sweep.
    pub sweep: SweepConfig,
}

impl Config {
    /// The handlers' configuration (this process's lease owner minted here).
    pub fn handlers(&self) -> Handlers {
        let owner = process_owner("order-pull");
        let margin = Duration::from_secs(self.pull_margin_seconds);
        Handlers {
            pull: PullConfig {
                concurrency: self.pull_concurrency,
                margin,
                owner: owner.clone(),
            },
            worker: WorkerConfig {
                concurrency: self.pull_concurrency,
                slice_pages: self.pull_slice_pages,
                slice_time: Duration::from_secs(self.pull_slice_seconds),
                margin,
                owner,
                reconcile_every: Duration::from_secs(self.pull_reconcile_seconds),
                ..WorkerConfig::default()
            },
            sweep: SweepConfig {
                grace: Duration::from_secs(self.pull_sweep_grace_seconds),
                ..SweepConfig::default()
            },
        }
    }
}
