//! `write-back`: wires the DynamoDB store, Secrets Manager, the per-integration clients, the
//! write-back queue (for deferred jobs) and the Shopify trigger from a typed configuration read once at start-up, then hands each SQS
//! batch to `shared::writeback::handler`, reporting partial batch failures.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::app::{ClientCache, config_from_env, deadline_from_epoch_ms, init_failed};
use shared::clock::SystemClock;
use shared::metrics::{Dimensions, EmfStdout};
use shared::queue::{from_sqs, sqs_response};
use shared::writeback::HttpShopifyTrigger;
use shared::writeback::handler::{WriteBackPorts, handle};
use std::sync::Arc;
use std::time::Duration;
use write_back::Config;

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
    let clients = ClientCache::shared(Arc::new(store.clone()), Arc::new(secrets)).with_ttl(
        Duration::from_secs(config.secrets_cache_seconds),
        Arc::new(SystemClock),
    );
    let requeue = shared::aws_config::sqs_queue(&sdk, &config.write_back_queue_url);
    let shopify = HttpShopifyTrigger::new(Duration::from_secs(10))?;
    let metrics = EmfStdout {
        clock: Arc::new(SystemClock),
        dimensions: Dimensions::per_integration(config.metrics_per_integration),
    };
    let ports = WriteBackPorts {
        integrations: &store,
        store: &store,
        clients: &clients,
        shopify: &shopify,
        requeue: &requeue,
        clock: &SystemClock,
        metrics: &metrics,
    };
    let write_back = config.write_back();
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let write_back = &write_back;
        async move {
            let deadline = deadline_from_epoch_ms(event.context.deadline, &SystemClock);
            let failed = handle(from_sqs(event.payload), ports, write_back, Some(deadline)).await;
            Ok::<_, Error>(sqs_response(failed))
        }
    }))
    .await
}
