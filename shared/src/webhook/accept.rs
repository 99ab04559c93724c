//! The use-case: a verified, parsed delivery becomes write-back jobs, and is recorded for audit.
//!
//! Each shipment is judged alone (see [`crate::sightings`]): those set aside while reading
//! ([`Delivery::ignored`]) and those of a packing slip we never published are acknowledged and
//! counted by reason; a consignment already queued is a duplicate; anything else is queued
//! once, its consignment noted on the order and marked seen as brought by the webhook. Every
//! delivery is recorded for audit with its counts.

use super::parse::Delivery;
use crate::sightings::{
    Queueing, SightingDeps, SightingError, SightingSummary, Source, count_ignored, queue_new,
};
use crate::store::{Deliveries, DeliveryAudit};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The audit outcome of an accepted delivery.
pub const OUTCOME_ACCEPTED: &str = "accepted";
/// The audit outcome of a delivery whose jobs the queue did not take.
pub const OUTCOME_QUEUE_FAILED: &str = "queue_failed";
/// The audit outcome of a delivery stopped by a state store failure.
pub const OUTCOME_STORE_FAILED: &str = "store_failed";
/// The audit outcome of a signed delivery whose body could not be read (400).
pub const OUTCOME_INVALID: &str = "invalid";

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
    deps: SightingDeps<'_>,
    audits: &dyn Deliveries,
    integration_id: &str,
    body: &[u8],
    delivery: &Delivery,
) -> Result<SightingSummary, SightingError> {
    let mut audit = DeliveryAudit {
        at: deps.clock.now(),
        body_sha256: body_sha256(body),
        shipments: delivery.len(),
        queued: 0,
        ignored: 0,
        duplicates: 0,
        ignored_reasons: BTreeMap::new(),
        outcome: OUTCOME_ACCEPTED.into(),
    };
    let mut summary = SightingSummary::default();
    count_ignored(
        integration_id,
        Source::Webhook,
        &delivery.ignored,
        &mut summary,
    );
    let result = queue_new(
        deps,
        integration_id,
        &delivery.shipments,
        Source::Webhook,
        Queueing::Queue,
        &mut summary,
    )
    .await;
    match &result {
        Ok(_) => {
            audit.queued = summary.queued;
            audit.ignored = summary.ignored;
            audit.duplicates = summary.duplicates;
            audit.ignored_reasons = summary.ignored_reasons.clone();
        }
        Err(SightingError::Store(_)) => audit.outcome = OUTCOME_STORE_FAILED.into(),
        Err(SightingError::Queue(_) | SightingError::Encode(_)) => {
            audit.outcome = OUTCOME_QUEUE_FAILED.into();
        }
    }
    record_audit(audits, integration_id, &audit).await;
    result.map(|_| summary)
}

/// Records a delivery for audit; a failure is logged and does not change the answer (the jobs
/// are queued or not either way).
pub async fn record_audit(store: &dyn Deliveries, integration_id: &str, audit: &DeliveryAudit) {
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
