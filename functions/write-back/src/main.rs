//! `write-back`: wires the DynamoDB store, Secrets Manager, the per-integration clients and
//! the Shopify trigger from a typed configuration read once at start-up, then hands each SQS
//! batch to `shared::writeback::handler`, reporting partial batch failures.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;
use shared::app::{ClientCache, Pacing, config_from_env, init_failed, process_owner};
use shared::clock::SystemClock;
use shared::metrics::EmfStdout;
use shared::writeback::handler::{WriteBackConfig, WriteBackPorts, from_sqs, handle, sqs_response};
use shared::writeback::{DEFAULT_SHOPIFY_TEMPLATE, HttpShopifyTrigger};
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize)]
struct Config {
    table_name: String,
    #[serde(default = "default_max_receives")]
    max_receive_count: u32,
    #[serde(default = "default_template")]
    shopify_trigger_url_template: String,
    #[serde(default = "default_secrets_ttl")]
    secrets_cache_seconds: u64,
}

fn default_max_receives() -> u32 {
    5
}
fn default_template() -> String {
    DEFAULT_SHOPIFY_TEMPLATE.into()
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
    let clients = ClientCache::new(Arc::new(store.clone()), Arc::new(secrets), Pacing::Shared);
    let shopify = HttpShopifyTrigger::new(Duration::from_secs(10))?;
    let metrics = EmfStdout(Arc::new(SystemClock));
    let ports = WriteBackPorts {
        integrations: &store,
        store: &store,
        clients: &clients,
        shopify: &shopify,
        clock: &SystemClock,
        metrics: &metrics,
    };
    let write_back = WriteBackConfig {
        shopify_template: config.shopify_trigger_url_template,
        claim_hold: Duration::from_secs(120),
        max_receives: config.max_receive_count,
        owner: process_owner("write-back"),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let write_back = &write_back;
        async move {
            let failed = handle(from_sqs(event.payload), ports, write_back).await;
            Ok::<_, Error>(sqs_response(failed))
        }
    }))
    .await
}
