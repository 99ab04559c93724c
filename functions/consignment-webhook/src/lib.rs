//! `consignment-webhook`'s configuration, what it declares it calls, and the service its
//! `main.rs` runs and the test of its code path (tests/code_paths.rs) calls.

use serde::{Deserialize, Serialize};
use shared::app::{
    Declaration, METRICS_PER_INTEGRATION, SECRETS_CACHE_SECONDS, TABLE_NAME, WRITE_BACK_QUEUE_URL,
    default_secrets_cache_seconds,
};
use shared::webhook::router::{WebhookState, for_api_gateway, router};

/// The function's configuration: each field from the environment variable of its name in
/// upper case.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    pub table_name: String,
    pub write_back_queue_url: String,
    #[serde(default = "default_secrets_cache_seconds")]
    pub secrets_cache_seconds: u64,
    /// EMF dimensions per integration (`METRICS_PER_INTEGRATION`, default false).
    #[serde(default)]
    pub metrics_per_integration: bool,
}

/// What the function calls and reads: its store (integrations, orders by packing slip, order
/// records, sightings, the delivery audit), the webhook secrets, and the write-back queue.
pub const DECLARATION: Declaration = Declaration {
    iam_actions: &[
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "secretsmanager:GetSecretValue",
        "sqs:SendMessage",
    ],
    event_source_actions: &[],
    env: &[
        TABLE_NAME,
        WRITE_BACK_QUEUE_URL,
        SECRETS_CACHE_SECONDS,
        METRICS_PER_INTEGRATION,
    ],
};

/// The webhook router as API Gateway invokes it (see `shared::webhook::router`).
pub fn app(
    state: WebhookState,
) -> impl tower::Service<
    lambda_http::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    for_api_gateway(router(state))
}
