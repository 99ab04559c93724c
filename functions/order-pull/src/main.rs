//! `order-pull`: wires the DynamoDB store, Secrets Manager, the per-integration clients, the
//! SQS pull queue and the write-back queue (the reconcile queues on it) from a typed
//! configuration read once at start-up, then hands each event to its handler: pull messages to
//! the worker, the schedule to the sweeper, `{"integration_id"}` to a direct pull.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use order_pull::Config;
use serde_json::{Value, json};
use shared::app::{ClientCache, config_from_env, deadline_from_epoch_ms, init_failed};
use shared::clock::SystemClock;
use shared::metrics::{Dimensions, EmfStdout};
use shared::pull::handler::{PullEvent, PullPorts, PullRequest, handle, parse_event};
use shared::queue::sqs_response;
use shared::schedule::{SweepPorts, WorkerPorts, handle_batch, sweep};
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
    let clients = ClientCache::shared(Arc::new(store.clone()), Arc::new(secrets)).with_ttl(
        Duration::from_secs(config.secrets_cache_seconds),
        Arc::new(SystemClock),
    );
    let queue = shared::aws_config::sqs_queue(&sdk, &config.write_back_queue_url);
    let pulls = shared::aws_config::sqs_queue(&sdk, &config.pull_queue_url);
    let metrics = EmfStdout {
        clock: Arc::new(SystemClock),
        dimensions: Dimensions::per_integration(config.metrics_per_integration),
    };
    let ports = PullPorts {
        integrations: &store,
        store: &store,
        clients: &clients,
        queue: &queue,
        clock: &SystemClock,
        metrics: &metrics,
    };
    let worker = WorkerPorts {
        pull: ports,
        schedules: &store,
        pulls: &pulls,
    };
    let sweeper = SweepPorts {
        integrations: &store,
        schedules: &store,
        pulls: &pulls,
        clock: &SystemClock,
    };
    let handlers = config.handlers();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let handlers = &handlers;
        async move {
            let deadline = deadline_from_epoch_ms(event.context.deadline, &SystemClock);
            match parse_event(&event.payload)? {
                PullEvent::Messages(batch) => {
                    let failed =
                        handle_batch(batch, worker, &handlers.worker, Some(deadline)).await;
                    Ok::<Value, Error>(serde_json::to_value(sqs_response(failed))?)
                }
                PullEvent::Sweep => {
                    let summary = sweep(sweeper, handlers.sweep).await?;
                    Ok(json!({ "sweep": summary }))
                }
                PullEvent::One(id) => {
                    let request = PullRequest::One(id);
                    let summaries = handle(request, ports, &handlers.pull, Some(deadline)).await?;
                    Ok(json!({ "summaries": summaries }))
                }
            }
        }
    }))
    .await
}
