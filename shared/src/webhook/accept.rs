//! The use-case: a verified, parsed delivery becomes write-back jobs.
//!
//! For each shipment: a packing slip we never published is ignored (a manual ticket, or an
//! order from another source); a consignment already queued is a duplicate (a repeat, or its
//! picked/delivered event); anything else becomes one [`WriteBackJob`]. All new jobs of the
//! delivery go to the queue in one [`JobQueue::send`] (batched by the queue), and only after
//! the queue took them are their consignments marked as seen, so a delivery that could not be
//! queued is queued in full when GoSweetSpot retries it. Every delivery is recorded for audit.
//!
//! Two deliveries of one new consignment racing each other can both queue it; the write-back
//! is idempotent per consignment, so the second job changes nothing.

use super::parse::WebhookShipment;
use crate::jobs::WriteBackJob;
use crate::queue::{JobQueue, Outgoing, QueueError};
use crate::store::{DeliveryAudit, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// Why a shipment was acknowledged without queueing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// `ManualTicket: true` and a packing slip we never published.
    ManualTicket,
    /// An integrated order, but not one we published (another order source on the site).
    NotPublishedByUs,
}

impl IgnoreReason {
    /// The reason code logged and kept.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ManualTicket => "manual_ticket",
            Self::NotPublishedByUs => "not_published_by_us",
        }
    }
}

/// What became of a delivery's shipments: the 202 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DeliverySummary {
    /// Write-back jobs queued.
    pub queued: usize,
    /// Shipments of packing slips we never published.
    pub ignored: usize,
    /// Consignments already queued (repeats and later events).
    pub duplicates: usize,
}

/// Why a delivery could not be taken; GoSweetSpot should retry it (500).
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The state store could not be read.
    #[error("state store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The queue did not take every job.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A job could not be encoded (not expected).
    #[error("a write-back job could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The audit outcome of an accepted delivery.
pub const OUTCOME_ACCEPTED: &str = "accepted";
/// The audit outcome of a delivery whose jobs the queue did not take.
pub const OUTCOME_QUEUE_FAILED: &str = "queue_failed";
/// The audit outcome of a delivery stopped by a state store failure.
pub const OUTCOME_STORE_FAILED: &str = "store_failed";
/// The audit outcome of a signed delivery whose body could not be read (400).
pub const OUTCOME_INVALID: &str = "invalid";

/// What the use-case needs from the world.
#[derive(Clone, Copy)]
pub struct AcceptDeps<'a> {
    /// Orders by packing slip, consignment sightings, the delivery audit.
    pub store: &'a Store,
    /// The write-back queue.
    pub queue: &'a dyn JobQueue,
    /// The time of the delivery.
    pub now: DateTime<Utc>,
}

/// SHA-256 (hex) of a body, for the audit.
pub fn body_sha256(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Queues the write-back of every newly seen consignment of a verified delivery of
/// `integration_id`, and records the delivery for audit.
pub async fn accept_delivery(
    deps: AcceptDeps<'_>,
    integration_id: &str,
    body: &[u8],
    shipments: &[WebhookShipment],
) -> Result<DeliverySummary, AcceptError> {
    let mut audit = DeliveryAudit {
        at: deps.now,
        body_sha256: body_sha256(body),
        shipments: shipments.len(),
        queued: 0,
        ignored: 0,
        duplicates: 0,
        outcome: OUTCOME_ACCEPTED.into(),
    };
    let result = queue_new(deps, integration_id, shipments).await;
    match &result {
        Ok(summary) => {
            audit.queued = summary.queued;
            audit.ignored = summary.ignored;
            audit.duplicates = summary.duplicates;
        }
        Err(AcceptError::Store(_)) => audit.outcome = OUTCOME_STORE_FAILED.into(),
        Err(AcceptError::Queue(_) | AcceptError::Encode(_)) => {
            audit.outcome = OUTCOME_QUEUE_FAILED.into();
        }
    }
    record_audit(deps.store, integration_id, &audit).await;
    result
}

/// Records a delivery for audit; a failure is logged and does not change the answer (the jobs
/// are queued or not either way).
pub async fn record_audit(store: &Store, integration_id: &str, audit: &DeliveryAudit) {
    if let Err(e) = store.record_delivery(integration_id, audit).await {
        tracing::error!(
            integration = integration_id,
            body_sha256 = %audit.body_sha256,
            outcome = %audit.outcome,
            error = %e,
            "webhook delivery could not be recorded for audit"
        );
    }
}

async fn queue_new(
    deps: AcceptDeps<'_>,
    integration_id: &str,
    shipments: &[WebhookShipment],
) -> Result<DeliverySummary, AcceptError> {
    let mut summary = DeliverySummary::default();
    let mut jobs: Vec<WriteBackJob> = Vec::new();
    let mut in_this_delivery: HashSet<&str> = HashSet::new();
    for s in shipments {
        let connote = s.connote.as_str();
        let log = |outcome: &str, reason: &str| {
            tracing::info!(
                integration = integration_id,
                connote,
                packing_slip = %s.packing_slip,
                event = s.event.as_str(),
                outcome,
                reason,
                "webhook shipment"
            );
        };
        if in_this_delivery.contains(connote) {
            summary.duplicates += 1;
            log("duplicate", "repeated_in_delivery");
            continue;
        }
        let Some(order) = deps
            .store
            .order_by_packing_slip(integration_id, &s.packing_slip)
            .await?
        else {
            let reason = if s.shipment.manual_ticket == Some(true) {
                IgnoreReason::ManualTicket
            } else {
                IgnoreReason::NotPublishedByUs
            };
            summary.ignored += 1;
            log("ignored", reason.as_str());
            continue;
        };
        if deps.store.consignment_seen(integration_id, connote).await? {
            summary.duplicates += 1;
            log("duplicate", "already_queued");
            continue;
        }
        in_this_delivery.insert(connote);
        jobs.push(WriteBackJob {
            integration_id: integration_id.to_string(),
            connote: connote.to_string(),
            packing_slip: s.packing_slip.clone(),
            cin7_id: order.cin7_id,
            reference: order.reference.clone(),
            tracking_url: s.shipment.tracking.clone(),
            total_cost: s.shipment.total_cost,
            created_utc: s.shipment.created_utc,
            manual_ticket: s.shipment.manual_ticket.unwrap_or(false),
        });
    }
    if jobs.is_empty() {
        return Ok(summary);
    }
    let messages = jobs
        .iter()
        .map(|job| {
            Ok(Outgoing {
                integration_id: integration_id.to_string(),
                body: job.to_body()?,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    if let Err(e) = deps.queue.send(&messages).await {
        tracing::error!(
            integration = integration_id,
            jobs = jobs.len(),
            error = %e,
            "write-back jobs could not be queued; answering 500 so GoSweetSpot retries"
        );
        return Err(e.into());
    }
    for job in &jobs {
        let seen = serde_json::json!({
            "packing_slip": job.packing_slip,
            "cin7_id": job.cin7_id,
            "queued_at": deps.now,
        })
        .to_string();
        // The jobs are queued: a failure here only means a retry may queue a duplicate job,
        // which the write-back ignores, so it is logged and the delivery still acknowledged.
        match deps
            .store
            .mark_consignment_seen(integration_id, &job.connote, &seen)
            .await
        {
            Ok(_) => tracing::info!(
                integration = integration_id,
                connote = %job.connote,
                packing_slip = %job.packing_slip,
                cin7_id = job.cin7_id,
                outcome = "queued",
                "webhook shipment"
            ),
            Err(e) => tracing::warn!(
                integration = integration_id,
                connote = %job.connote,
                error = %e,
                "queued, but the consignment could not be marked as seen"
            ),
        }
    }
    summary.queued = jobs.len();
    Ok(summary)
}
