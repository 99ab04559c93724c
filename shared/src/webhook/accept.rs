//! The use-case: a verified, parsed delivery becomes write-back jobs.
//!
//! Each shipment is judged alone. Those set aside while reading ([`Delivery::ignored`]: no
//! consignment, no packing slip, malformed) and those of a packing slip we never published (a
//! manual ticket, or an order from another source) are acknowledged and counted by reason; a
//! consignment already queued is a duplicate (a repeat, or its picked/delivered event);
//! anything else becomes one [`WriteBackJob`]. Before a job is queued its consignment is noted
//! on the order's record, so a pull never deletes from GoSweetSpot, nor calls conflicting, an
//! order GoSweetSpot has ticketed. All new jobs of the delivery go to the queue in one
//! [`JobQueue::send`] (batched by the queue), and only after the queue took them are their
//! consignments marked as seen, so a delivery that could not be queued is queued in full when
//! GoSweetSpot retries it. Every delivery is recorded for audit, with its counts by reason.
//!
//! Two deliveries of one new consignment racing each other can both queue it; the write-back
//! is idempotent per consignment, so the second job changes nothing.

use super::parse::{Delivery, IgnoreReason, WebhookShipment};
use crate::jobs::WriteBackJob;
use crate::queue::{JobQueue, Outgoing, QueueError};
use crate::store::records::update_record;
use crate::store::{ConsignmentRecord, DeliveryAudit, OrderState, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// What became of a delivery's shipments: the 202 body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DeliverySummary {
    /// Write-back jobs queued.
    pub queued: usize,
    /// Shipments acknowledged without a job (see `ignored_reasons`).
    pub ignored: usize,
    /// Consignments already queued (repeats and later events).
    pub duplicates: usize,
    /// The ignored shipments by reason code (left out when none was ignored).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ignored_reasons: BTreeMap<String, usize>,
}

impl DeliverySummary {
    fn ignore(&mut self, reason: IgnoreReason) {
        self.ignored += 1;
        *self
            .ignored_reasons
            .entry(reason.as_str().to_string())
            .or_default() += 1;
    }
}

/// Why a delivery could not be taken; GoSweetSpot should retry it (500).
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The state store could not be read or written.
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

/// The reason recorded on an order when GoSweetSpot reports a consignment for it.
pub const REASON_TICKETED: &str = "ticketed";

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
    delivery: &Delivery,
) -> Result<DeliverySummary, AcceptError> {
    let mut audit = DeliveryAudit {
        at: deps.now,
        body_sha256: body_sha256(body),
        shipments: delivery.len(),
        queued: 0,
        ignored: 0,
        duplicates: 0,
        ignored_reasons: BTreeMap::new(),
        outcome: OUTCOME_ACCEPTED.into(),
    };
    let mut summary = DeliverySummary::default();
    for set_aside in &delivery.ignored {
        tracing::info!(
            integration = integration_id,
            index = set_aside.index,
            connote = set_aside.connote.as_deref().unwrap_or(""),
            outcome = "ignored",
            reason = set_aside.reason.as_str(),
            detail = %set_aside.detail,
            "webhook shipment"
        );
        summary.ignore(set_aside.reason);
    }
    let result = queue_new(deps, integration_id, &delivery.shipments, &mut summary).await;
    match &result {
        Ok(()) => {
            audit.queued = summary.queued;
            audit.ignored = summary.ignored;
            audit.duplicates = summary.duplicates;
            audit.ignored_reasons = summary.ignored_reasons.clone();
        }
        Err(AcceptError::Store(_)) => audit.outcome = OUTCOME_STORE_FAILED.into(),
        Err(AcceptError::Queue(_) | AcceptError::Encode(_)) => {
            audit.outcome = OUTCOME_QUEUE_FAILED.into();
        }
    }
    record_audit(deps.store, integration_id, &audit).await;
    result.map(|()| summary)
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

/// Notes a consignment GoSweetSpot reported on its order's record (once per consignment),
/// keeping the order's state: from then on the pull leaves the order alone.
async fn note_ticketed(
    store: &Store,
    integration_id: &str,
    job: &WriteBackJob,
) -> Result<(), StoreError> {
    update_record(store, integration_id, job.cin7_id, |r, now| {
        if r.consignments.iter().any(|c| c.connote == job.connote) {
            return;
        }
        r.consignments.push(ConsignmentRecord {
            connote: job.connote.clone(),
            tracking_url: job.tracking_url.clone(),
            created_utc: job.created_utc,
            ..ConsignmentRecord::default()
        });
        if r.packing_slip.is_none() {
            r.packing_slip = Some(job.packing_slip.clone());
        }
        if r.reference.is_none() {
            r.reference = job.reference.clone();
        }
        // A slip indexed before its publish was recorded has no history yet: it is published.
        let state = if r.history.is_empty() {
            OrderState::Published
        } else {
            r.state
        };
        r.transition(state, REASON_TICKETED, Some(job.connote.clone()), now);
    })
    .await?;
    Ok(())
}

async fn queue_new(
    deps: AcceptDeps<'_>,
    integration_id: &str,
    shipments: &[WebhookShipment],
    summary: &mut DeliverySummary,
) -> Result<(), AcceptError> {
    let mut jobs: Vec<WriteBackJob> = Vec::new();
    let mut in_this_delivery: HashSet<&str> = HashSet::new();
    for s in shipments {
        let connote = s.connote.as_str();
        let log = |outcome: &str, reason: &str| {
            tracing::info!(
                integration = integration_id,
                index = s.index,
                connote,
                packing_slip = %s.packing_slip,
                event = s.event.as_str(),
                outcome,
                reason,
                unreadable_fields = ?s.unreadable,
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
            summary.ignore(reason);
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
        return Ok(());
    }
    for job in &jobs {
        note_ticketed(deps.store, integration_id, job).await?;
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
            "source": "webhook",
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
    Ok(())
}
