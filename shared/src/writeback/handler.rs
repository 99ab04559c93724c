//! The `write-back` function's handler: a batch of queued jobs, grouped by integration, the
//! groups written back concurrently (at most [`GroupLimits::concurrency`] at once) with
//! [`run_batch`], each within its own deadline, so one slow or failing merchant never holds
//! another's jobs; returns the ids of the messages that must be redelivered (partial batch
//! failure). A message that fails on its last allowed receive is recorded as failed on its
//! order, with the reason, before it goes to the dead-letter queue. An integration that has
//! used its daily CIN7 budget has its jobs deferred to the next day's window (sent again with
//! a delay), never drawing on another's.

use super::ports::ShopifyTrigger;
use super::run::{JobOutcome, WriteBackDeps, run_batch};
use crate::app::ClientProvider;
use crate::clock::Clock;
use crate::jobs::WriteBackJob;
use crate::metrics::{Counts, MetricsSink};
use crate::queue::{JobQueue, MAX_DELAY, Outgoing, QueuedJob};
use crate::records::reasons;
use crate::store::{Integrations, WriteBackStore, update_record};
use chrono::{DateTime, Days, Utc};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

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
    /// How the batch's integration groups share the invocation.
    pub groups: GroupLimits,
    /// CIN7's daily call budget per integration: at it, jobs wait for the next UTC day.
    pub daily_budget: i64,
}

impl WriteBackConfig {
    /// The defaults, with this worker's claim owner.
    pub fn new(owner: String) -> Self {
        Self {
            shopify_template: super::DEFAULT_SHOPIFY_TEMPLATE.into(),
            claim_hold: Duration::from_secs(120),
            max_receives: 5,
            owner,
            groups: GroupLimits::default(),
            daily_budget: crate::pull::PullOptions::default().daily_budget,
        }
    }
}

/// How a batch's integration groups share one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Groups written back at once.
    pub concurrency: usize,
    /// The longest one group may take; its jobs are redelivered when it runs over.
    pub deadline: Duration,
    /// No group starts, and every group stops, this long before the invocation's deadline.
    pub margin: Duration,
}

impl Default for GroupLimits {
    fn default() -> Self {
        Self {
            concurrency: 10,
            deadline: Duration::from_secs(150),
            margin: Duration::from_secs(10),
        }
    }
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
    /// Where deferred jobs are sent again (the write-back queue itself).
    pub requeue: &'a dyn JobQueue,
    pub clock: &'a dyn Clock,
    pub metrics: &'a dyn MetricsSink,
}

/// Handles a batch within `deadline` (the invocation's; `None` for none); returns the message
/// ids to redeliver.
pub async fn handle(
    batch: Vec<QueuedJob>,
    ports: WriteBackPorts<'_>,
    config: &WriteBackConfig,
    deadline: Option<Instant>,
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
    let limits = config.groups;
    let results: Vec<Vec<String>> = futures::stream::iter(groups)
        .map(|(integration, group)| async move {
            let now = Instant::now();
            let mut until = now + limits.deadline;
            if let Some(deadline) = deadline {
                until = until.min(deadline.checked_sub(limits.margin).unwrap_or(now));
            }
            if until <= now {
                tracing::warn!(
                    integration,
                    jobs = group.len(),
                    "no time left in the invocation; jobs left for redelivery"
                );
                return ids(&group);
            }
            handle_integration(&integration, group, ports, config, until).await
        })
        .buffer_unordered(limits.concurrency.max(1))
        .collect()
        .await;
    failed.extend(results.into_iter().flatten());
    failed
}

fn ids(group: &[(QueuedJob, WriteBackJob)]) -> Vec<String> {
    group.iter().map(|(m, _)| m.message_id.clone()).collect()
}

/// How long a job waits for the next UTC day's budget: to a minute past midnight, in steps of
/// at most the queue's longest delay.
fn until_next_day(now: DateTime<Utc>) -> Duration {
    let midnight = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 1, 0))
        .map(|t| t.and_utc());
    midnight
        .and_then(|m| (m - now).to_std().ok())
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY)
}

/// Sends the group's jobs again for the next day's window; returns the ids to redeliver (all of
/// them when the send failed, none when it succeeded).
async fn defer(
    integration: &str,
    group: &[(QueuedJob, WriteBackJob)],
    ports: WriteBackPorts<'_>,
    used_today: i64,
) -> Vec<String> {
    let delay = until_next_day(ports.clock.now());
    let again: Vec<Outgoing> = group
        .iter()
        .map(|(m, _)| Outgoing {
            integration_id: integration.to_string(),
            body: m.body.clone(),
            delay,
        })
        .collect();
    match ports.requeue.send(&again).await {
        Ok(()) => {
            tracing::warn!(
                integration,
                used_today,
                jobs = group.len(),
                delay_s = delay.as_secs(),
                "daily CIN7 budget used; write-backs deferred"
            );
            ports.metrics.emit(Counts::of(
                FUNCTION,
                integration,
                &[("WriteBacksDeferred", group.len() as u64)],
            ));
            Vec::new()
        }
        Err(e) => {
            tracing::error!(integration, error = %e, "could not defer write-backs; left for redelivery");
            ids(group)
        }
    }
}

async fn handle_integration(
    integration: &str,
    group: Vec<(QueuedJob, WriteBackJob)>,
    ports: WriteBackPorts<'_>,
    config: &WriteBackConfig,
    until: Instant,
) -> Vec<String> {
    let all_ids = || ids(&group);
    let over = || {
        tracing::warn!(
            integration,
            jobs = group.len(),
            "the group ran past its deadline; jobs left for redelivery"
        );
        ids(&group)
    };
    let Ok(read) =
        tokio::time::timeout_at(until, ports.integrations.get_integration(integration)).await
    else {
        return over();
    };
    let settings = match read {
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
    match tokio::time::timeout_at(until, ports.store.calls_today(integration)).await {
        Err(_) => return over(),
        Ok(Err(e)) => {
            tracing::error!(integration, error = %e, "store unavailable");
            return all_ids();
        }
        Ok(Ok(used)) if used >= config.daily_budget => {
            return defer(integration, &group, ports, used).await;
        }
        Ok(Ok(_)) => {}
    }
    let built = match tokio::time::timeout_at(until, ports.clients.clients(&settings)).await {
        Err(_) => return over(),
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
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
    // Cut short at the deadline, a group loses nothing: its claims hold the consignments it
    // was writing until they expire, and its messages come back.
    let ran = tokio::time::timeout_at(until, run_batch(&deps, &settings, &jobs)).await;
    // The write-back's CIN7 calls count toward the integration's daily limit, as the pull's do
    // (those of a group cut short too).
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
        Err(_) => return over(),
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
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
