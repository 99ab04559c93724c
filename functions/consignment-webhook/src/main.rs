//! `consignment-webhook`: wires the DynamoDB store, Secrets Manager and the SQS write-back
//! queue from a typed configuration read once at start-up, then hands each API Gateway request
//! to `consignment_webhook::handle_request` (and so to `shared::webhook::http`).

use consignment_webhook::handle_request;
use lambda_http::{Error, Request, service_fn};
use serde::Deserialize;
use shared::app::{config_from_env, init_failed};
use shared::webhook::WebhookDeps;
use std::time::Duration;

#[derive(Deserialize)]
struct Config {
    table_name: String,
    write_back_queue_url: String,
    #[serde(default = "default_secrets_ttl")]
    secrets_cache_seconds: u64,
}

fn default_secrets_ttl() -> u64 {
    300
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config: Config = match config_from_env() {
        Ok(c) => c,
        Err(e) => return Err(init_failed(e.to_string()).await.into()),
    };
    let sdk = shared::aws_config::sdk_config().await;
    let store = shared::aws_config::dynamo_store(&sdk, &config.table_name);
    let secrets = shared::aws_config::secrets_manager(
        &sdk,
        Duration::from_secs(config.secrets_cache_seconds),
    );
    let queue = shared::aws_config::sqs_queue(&sdk, &config.write_back_queue_url);
    let deps = WebhookDeps {
        store: &store,
        secrets: &secrets,
        queue: &queue,
    };
    lambda_http::run(service_fn(|request: Request| async move {
        Ok::<_, Error>(handle_request(deps, request).await)
    }))
    .await
}
