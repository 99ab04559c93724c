//! The `write-back` function's handler: a batch of queued jobs, grouped by integration, each
//! group written back with [`run_batch`]; returns the ids of the messages that must be
//! redelivered (partial batch failure). A message that fails on its last allowed receive is
//! recorded as failed on its order, with the reason, before it goes to the dead-letter queue.

use super::ports::ShopifyTrigger;
use super::run::{JobOutcome, WriteBackDeps, run_batch};
use crate::app::ClientProvider;
use crate::clock::Clock;
use crate::jobs::WriteBackJob;
use crate::metrics::{Counts, MetricsSink};
use crate::queue::QueuedJob;
use crate::records::reasons;
use crate::store::{Integrations, WriteBackStore, update_record};
use std::collections::BTreeMap;
use std::time::Duration;

/// The handler's fixed configuration.
#[derive(Debug, Clone)]
pub struct WriteBackConfig {
    /// The Shopify link template (see `DEFAULT_SHOPIFY_TEMPLATE`).
    pub shopify_template: String,
    /// How long a claim holds before another worker may take it over.
    pub claim_hold: Duration,
    /// The queue's redrive limit (`maxReceiveCount`).
    pub max_receives: u32,
    /// Names this worker's claims.
    pub owner: String,
}

/// The function's name in metrics.
pub const FUNCTION: &str = "write-back";

/// What the handler works through.
#[derive(Clone, Copy)]
pub struct WriteBackPorts<'a> {
    /// Each job's integration.
    pub integrations: &'a dyn Integrations,
    /// Claims and order records.
    pub store: &'a dyn WriteBackStore,
    pub clients: &'a dyn ClientProvider,
    pub shopify: &'a dyn ShopifyTrigger,
    pub clock: &'a dyn Clock,
    pub metrics: &'a dyn MetricsSink,
}

/// Handles a batch; returns the message ids to redeliver.
pub async fn handle(
    batch: Vec<QueuedJob>,
    ports: WriteBackPorts<'_>,
    config: &WriteBackConfig,
) -> Vec<String> {
    let mut failed = Vec::new();
    let mut groups: BTreeMap<String, Vec<(QueuedJob, WriteBackJob)>> = BTreeMap::new();
    for message in batch {
        match WriteBackJob::from_body(&message.body) {
            Ok(job) => groups
                .entry(job.integration_id.clone())
                .or_default()
                .push((message, job)),
            Err(e) => {
                tracing::error!(message_id = %message.message_id, error = %e, "unreadable write-back job; left for the dead-letter queue");
                failed.push(message.message_id);
            }
        }
    }
    for (integration, group) in groups {
        failed.extend(handle_integration(&integration, group, ports, config).await);
    }
    failed
}

async fn handle_integration(
    integration: &str,
    group: Vec<(QueuedJob, WriteBackJob)>,
    ports: WriteBackPorts<'_>,
    config: &WriteBackConfig,
) -> Vec<String> {
    let all_ids = || {
        group
            .iter()
            .map(|(m, _)| m.message_id.clone())
            .collect::<Vec<_>>()
    };
    let settings = match ports.integrations.get_integration(integration).await {
        Ok(Some(s)) if s.enabled => s,
        Ok(Some(_)) => {
            tracing::warn!(
                integration,
                "integration disabled; jobs left for redelivery"
            );
            return all_ids();
        }
        Ok(None) => {
            tracing::error!(integration, "jobs for an unknown integration");
            return all_ids();
        }
        Err(e) => {
            tracing::error!(integration, error = %e, "store unavailable");
            return all_ids();
        }
    };
    let built = match ports.clients.clients(&settings).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(integration, error = %e, "cannot build clients");
            return all_ids();
        }
    };
    let cin7_before = built.cin7.calls().total();
    let deps = WriteBackDeps {
        store: ports.store,
        gss: &built.gss,
        cin7: &built.cin7,
        shopify: ports.shopify,
        shopify_template: &config.shopify_template,
        cin7_pacing: built.cin7_pacing.as_ref(),
        owner: &config.owner,
        claim_hold: config.claim_hold,
        clock: ports.clock,
    };
    let jobs: Vec<WriteBackJob> = group.iter().map(|(_, j)| j.clone()).collect();
    let ran = run_batch(&deps, &settings, &jobs).await;
    // The write-back's CIN7 calls count toward the integration's daily limit, as the pull's do.
    let cin7_calls = built.cin7.calls().total() - cin7_before;
    if cin7_calls > 0
        && let Err(e) = ports
            .store
            .count_calls(integration, i64::try_from(cin7_calls).unwrap_or(i64::MAX))
            .await
    {
        tracing::warn!(integration, error = %e, cin7_calls, "could not count the write-back's CIN7 calls");
    }
    let outcomes = match ran {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(integration, error = %e, "store failed during write-back");
            return all_ids();
        }
    };
    let mut failed = Vec::new();
    let (mut done, mut permanent, mut retried) = (0u64, 0u64, 0u64);
    for ((message, job), outcome) in group.iter().zip(outcomes) {
        match outcome {
            JobOutcome::Done => done += 1,
            JobOutcome::Failed(_) => permanent += 1,
            JobOutcome::Retry(reason) => {
                retried += 1;
                failed.push(message.message_id.clone());
                if message.receive_count >= config.max_receives {
                    let detail = format!(
                        "{reason} (after {} attempts; the job is in the dead-letter queue)",
                        message.receive_count
                    );
                    let recorded = update_record(
                        ports.store,
                        ports.clock,
                        integration,
                        job.cin7_id,
                        |r, now| {
                            r.write_back_failed(
                                &job.connote,
                                reasons::WRITE_BACK_EXHAUSTED,
                                &detail,
                                now,
                            )
                        },
                    )
                    .await;
                    if let Err(e) = recorded {
                        tracing::error!(integration, connote = %job.connote, error = %e, "could not record the exhausted job");
                    }
                }
                tracing::warn!(integration, connote = %job.connote, reference = ?job.reference, attempt = message.receive_count, reason, "write-back will be retried");
            }
        }
    }
    ports.metrics.emit(Counts::of(
        FUNCTION,
        integration,
        &[
            ("WriteBacksDone", done),
            ("WriteBacksFailed", permanent),
            ("WriteBacksRetried", retried),
            ("Cin7Calls", cin7_calls),
        ],
    ));
    failed
}
