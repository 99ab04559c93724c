//! The `order-pull` function's events and its in-process pulls. In Lambda, an SQS event is a
//! batch of pull messages (the worker, [`crate::schedule::worker`]), the EventBridge schedule
//! runs the sweeper ([`crate::schedule::sweeper`]), and `{"integration_id": "…"}` pulls one
//! integration at once (an operator's direct invoke). [`handle`] pulls every enabled
//! integration (a bounded number at once) or one; one integration's failure is reported in its
//! summary and never stops the others.

use super::ports::SharedSink;
use super::run::{PullDeps, PullError, PullOptions, PullOutcome, PullSummary, run_pull};
use crate::app::{ClientError, ClientProvider};
use crate::clock::Clock;
use crate::metrics::{Counts, MetricsSink};
use crate::queue::{JobQueue, QueuedJob};
use crate::settings::IntegrationSettings;
use crate::store::{Integrations, PullStore, StoreError};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// The function's name in metrics.
pub const FUNCTION: &str = "order-pull";

/// What an event to the function asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// Pull messages from the pull queue (an SQS event).
    Messages(Vec<QueuedJob>),
    /// The schedule: sweep for overdue integrations.
    Sweep,
    /// Pull this integration now.
    One(String),
}

/// What to pull in process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullRequest {
    /// Every enabled integration (the schedule).
    All,
    /// One integration ("sync now").
    One(String),
}

/// Why an event could not be handled at all.
#[derive(Debug, thiserror::Error)]
pub enum PullHandlerError {
    #[error(
        "unrecognised event: expected an SQS event, an EventBridge scheduled event or {{\"integration_id\": \"…\"}}"
    )]
    UnknownEvent,
    #[error("no integration {0:?}")]
    UnknownIntegration(String),
    #[error("integration {0:?} is disabled")]
    Disabled(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Deserialize)]
struct One {
    integration_id: String,
}

/// The parts of an SQS event record the worker reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SqsRecord {
    message_id: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    attributes: std::collections::HashMap<String, Value>,
    event_source: String,
}

#[derive(Deserialize)]
struct SqsRecords {
    #[serde(rename = "Records")]
    records: Vec<SqsRecord>,
}

/// Reads the event.
pub fn parse_event(event: &Value) -> Result<PullEvent, PullHandlerError> {
    if let Ok(one) = One::deserialize(event)
        && !one.integration_id.trim().is_empty()
    {
        return Ok(PullEvent::One(one.integration_id));
    }
    if let Ok(sqs) = SqsRecords::deserialize(event)
        && sqs.records.iter().all(|r| r.event_source == "aws:sqs")
    {
        return Ok(PullEvent::Messages(
            sqs.records
                .into_iter()
                .map(|r| QueuedJob {
                    receive_count: r
                        .attributes
                        .get("ApproximateReceiveCount")
                        .and_then(Value::as_str)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                    message_id: r.message_id,
                    body: r.body,
                })
                .collect(),
        ));
    }
    let scheduled = event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        || event.get("source").and_then(Value::as_str) == Some("aws.events");
    if scheduled {
        Ok(PullEvent::Sweep)
    } else {
        Err(PullHandlerError::UnknownEvent)
    }
}

/// The handler's fixed configuration.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// Integrations pulled at once on a schedule.
    pub concurrency: usize,
    /// Stop this long before the deadline.
    pub margin: Duration,
    /// Names leases (unique per container).
    pub owner: String,
}

/// What the handler works through.
#[derive(Clone, Copy)]
pub struct PullPorts<'a> {
    /// Which integrations to pull.
    pub integrations: &'a dyn Integrations,
    /// What each pull keeps.
    pub store: &'a dyn PullStore,
    pub clients: &'a dyn ClientProvider,
    /// The write-back queue each pull's reconcile queues on.
    pub queue: &'a dyn JobQueue,
    pub clock: &'a dyn Clock,
    pub metrics: &'a dyn MetricsSink,
}

/// Pulls as asked, returning each integration's summary; each pull ends with its reconcile.
pub async fn handle(
    request: PullRequest,
    ports: PullPorts<'_>,
    config: &PullConfig,
    deadline: Option<Instant>,
) -> Result<Vec<PullSummary>, PullHandlerError> {
    let integrations: Vec<IntegrationSettings> = match request {
        PullRequest::One(id) => {
            let settings = ports
                .integrations
                .get_integration(&id)
                .await?
                .ok_or_else(|| PullHandlerError::UnknownIntegration(id.clone()))?;
            if !settings.enabled {
                return Err(PullHandlerError::Disabled(id));
            }
            vec![settings]
        }
        PullRequest::All => ports
            .integrations
            .list_integrations()
            .await?
            .into_iter()
            .filter(|s| s.enabled)
            .collect(),
    };
    let options = PullOptions {
        owner: config.owner.clone(),
        deadline,
        margin: config.margin,
        ..PullOptions::default()
    };
    let summaries = futures::stream::iter(integrations)
        .map(|settings| {
            let options = options.clone();
            async move { pull_one(ports, &settings, &options).await }
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    Ok(summaries)
}

fn failed(id: &str, error: String) -> PullSummary {
    PullSummary {
        error: Some(error),
        ..PullSummary::of(id, PullOutcome::Failed)
    }
}

/// Pulls one integration and reports it (log line and metrics); never fails: a failure is in
/// the summary.
pub(crate) async fn pull_one(
    ports: PullPorts<'_>,
    settings: &IntegrationSettings,
    options: &PullOptions,
) -> PullSummary {
    let id = settings.id.as_str();
    let built = match ports.clients.clients(settings).await {
        Ok(c) => c,
        Err(e @ (ClientError::Secret(_) | ClientError::Api(_))) => {
            tracing::error!(integration = id, error = %e, "cannot build clients");
            return failed(id, e.to_string());
        }
    };
    let before = (built.cin7.calls().total(), built.gss.calls().total());
    // The pull reads shipments only in its reconcile.
    let shipment_reads = || {
        built
            .gss
            .calls()
            .get(crate::gss::client::ops::GET_SHIPMENTS)
    };
    let reads_before = shipment_reads();
    let calls = || {
        (
            built.cin7.calls().total() - before.0,
            built.gss.calls().total() - before.1,
        )
    };
    let gss = SharedSink {
        sink: &built.gss,
        share: built.pull_gss_share.as_ref(),
    };
    let result = run_pull(
        PullDeps {
            store: ports.store,
            cin7: &built.cin7,
            gss: &gss,
            feed: &built.gss,
            queue: ports.queue,
            clock: ports.clock,
            calls: &calls,
        },
        settings,
        options,
    )
    .await;
    let summary = match result {
        Ok(s) => s,
        Err(e @ (PullError::Store(_) | PullError::Api(_))) => {
            tracing::error!(integration = id, error = %e, "pull failed");
            failed(id, e.to_string())
        }
    };
    tracing::info!(
        integration = id,
        outcome = ?summary.outcome,
        seen = summary.seen,
        published = summary.published,
        updated = summary.updated,
        deleted = summary.deleted,
        conflicts = summary.conflicts,
        cin7_calls = summary.cin7_calls,
        gss_calls = summary.gss_calls,
        "pull finished"
    );
    let mut counts: Vec<(String, u64)> = vec![
        ("OrdersSeen".into(), summary.seen as u64),
        ("OrdersPublished".into(), summary.published as u64),
        ("OrdersUpdated".into(), summary.updated as u64),
        ("OrdersDeleted".into(), summary.deleted as u64),
        ("OrderConflicts".into(), summary.conflicts as u64),
        ("OrdersFailed".into(), summary.failed as u64),
        ("Cin7Calls".into(), summary.cin7_calls),
        ("GssCalls".into(), summary.gss_calls),
        ("ConsignmentsReconciled".into(), summary.reconciled as u64),
        ("ReconcileGssCalls".into(), shipment_reads() - reads_before),
        (
            "PullFailures".into(),
            u64::from(summary.outcome == PullOutcome::Failed),
        ),
    ];
    if let Some(longest) = summary.freshness_seconds.iter().max() {
        // The longest any order published by this pull waited after CIN7 last modified it.
        counts.push((
            "FreshnessSeconds".into(),
            u64::try_from(*longest).unwrap_or(0),
        ));
    }
    for (reason, n) in &summary.skipped {
        counts.push((format!("OrdersSkipped_{reason}"), *n as u64));
    }
    ports.metrics.emit(Counts {
        function: FUNCTION,
        integration: Some(id.to_string()),
        counts,
    });
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events() {
        assert_eq!(
            parse_event(&json!({"integration_id": "acme"})).unwrap(),
            PullEvent::One("acme".into())
        );
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(parse_event(&scheduled).unwrap(), PullEvent::Sweep);
        let sqs = json!({"Records": [
            {"messageId": "m1", "body": "{}", "attributes": {"ApproximateReceiveCount": "3"}, "eventSource": "aws:sqs"},
            {"messageId": "m2", "body": "x", "eventSource": "aws:sqs"}
        ]});
        assert_eq!(
            parse_event(&sqs).unwrap(),
            PullEvent::Messages(vec![
                QueuedJob {
                    message_id: "m1".into(),
                    body: "{}".into(),
                    receive_count: 3
                },
                QueuedJob {
                    message_id: "m2".into(),
                    body: "x".into(),
                    receive_count: 1
                },
            ])
        );
        assert!(
            parse_event(&json!({"Records": [{"messageId": "m", "eventSource": "aws:s3"}]}))
                .is_err()
        );
        assert!(parse_event(&json!({"integration_id": ""})).is_err());
        assert!(parse_event(&json!({"hello": 1})).is_err());
        assert!(parse_event(&json!("x")).is_err());
    }
}
