//! `order-pull`: wires the DynamoDB store, Secrets Manager, the per-integration clients and the
//! SQS write-back queue (the reconcile queues on it) from a typed configuration read once at
//! start-up, then hands each event to `shared::pull::handler`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use order_pull::Config;
use serde_json::{Value, json};
use shared::app::{ClientCache, config_from_env, deadline_from_epoch_ms, init_failed};
use shared::clock::SystemClock;
use shared::metrics::EmfStdout;
use shared::pull::handler::{PullPorts, handle, parse_event};
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
    let store = shared::aws_config::dynamo_store(&sdk, &config.table_name);
    let secrets = shared::aws_config::secrets_manager(
        &sdk,
        Duration::from_secs(config.secrets_cache_seconds),
    );
    let clients = ClientCache::shared(Arc::new(store.clone()), Arc::new(secrets));
    let queue = shared::aws_config::sqs_queue(&sdk, &config.write_back_queue_url);
    let metrics = EmfStdout(Arc::new(SystemClock));
    let ports = PullPorts {
        integrations: &store,
        store: &store,
        clients: &clients,
        queue: &queue,
        clock: &SystemClock,
        metrics: &metrics,
    };
    let pull = config.pull();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let pull = &pull;
        async move {
            let request = parse_event(&event.payload)?;
            let deadline = deadline_from_epoch_ms(event.context.deadline, &SystemClock);
            let summaries = handle(request, ports, pull, Some(deadline)).await?;
            Ok::<Value, Error>(json!({ "summaries": summaries }))
        }
    }))
    .await
}
