//! `consignment-webhook`: wires the DynamoDB store, Secrets Manager and the SQS write-back
//! queue from a typed configuration read once at start-up into the webhook router
//! (`shared::webhook::router`), and serves it under `lambda_http` behind API Gateway.

use consignment_webhook::{Config, app};
use lambda_http::Error;
use shared::app::{config_from_env, init_failed};
use shared::clock::SystemClock;
use shared::metrics::{Dimensions, EmfStdout};
use shared::webhook::router::WebhookState;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config: Config = match config_from_env() {
        Ok(c) => c,
        Err(e) => return Err(init_failed(e.to_string()).await.into()),
    };
    let sdk = shared::aws_config::sdk_config().await;
    let state = WebhookState {
        store: Arc::new(shared::aws_config::dynamo_store(&sdk, &config.table_name)),
        secrets: Arc::new(shared::aws_config::secrets_manager(
            &sdk,
            Duration::from_secs(config.secrets_cache_seconds),
        )),
        queue: Arc::new(shared::aws_config::sqs_queue(
            &sdk,
            &config.write_back_queue_url,
        )),
        clock: Arc::new(SystemClock),
        metrics: Arc::new(EmfStdout {
            clock: Arc::new(SystemClock),
            dimensions: Dimensions::per_integration(config.metrics_per_integration),
        }),
    };
    lambda_http::run(app(state)).await
}
