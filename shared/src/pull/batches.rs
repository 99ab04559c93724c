//! The pull's batches to GoSweetSpot: orders to publish and to delete, sent 50 at a time
//! (a batch refused as a whole halved until the order it refuses is alone), each outcome
//! recorded on its order.

use super::gates::Skip;
use super::mapping::Mapped;
use super::run::{PullError, Run};
use crate::gss::model::{
    CustomerOrder, DeleteOutcome, PublishResult, error_text as gss_error_text,
};
use crate::http::ApiError;
use crate::records::{Publication, PublishOutcome, Removal, reasons};
use crate::store::update_record;
use crate::timestamp::Timestamp;

/// An order to publish.
pub(super) struct PendingPublish {
    pub(super) cin7_id: i64,
    pub(super) reference: Option<String>,
    pub(super) modified: Option<Timestamp>,
    /// Published before: this is an update.
    pub(super) decision_update: bool,
    pub(super) mapped: Box<Mapped>,
    pub(super) warnings: Vec<String>,
}

/// An order to take out of GoSweetSpot, and the gate it left by.
pub(super) struct PendingDelete {
    pub(super) cin7_id: i64,
    pub(super) packing_slip: String,
    pub(super) skip: Skip,
}

impl Run<'_> {
    pub(super) async fn flush_publishes(&mut self, n: usize) -> Result<(), PullError> {
        let batch: Vec<PendingPublish> = self.pending.drain(..n.min(self.pending.len())).collect();
        if batch.is_empty() {
            return Ok(());
        }
        // The packing slips are indexed first, so that a consignment webhook arriving before
        // the publish is recorded (or after a crash in between) still finds its order.
        for p in batch.iter().filter(|p| !p.decision_update) {
            self.deps
                .store
                .index_packing_slip(&self.settings.id, &p.mapped.order.packingslipno, p.cin7_id)
                .await?;
        }
        let orders: Vec<CustomerOrder> = batch.iter().map(|p| p.mapped.order.clone()).collect();
        // On an error nothing is recorded: the orders are re-read and published next run.
        let results = self.publish_isolating(&orders).await?;
        for (p, result) in batch.iter().zip(results) {
            let outcome = if result.result {
                PublishOutcome::Published {
                    republished: p.decision_update,
                }
            } else if result.already_processed() {
                PublishOutcome::AlreadyProcessed(result.msg.clone())
            } else {
                PublishOutcome::Rejected(result.msg.clone())
            };
            let sent = Publication {
                reference: p.reference.as_deref(),
                modified: p.modified.map(|m| m.instant()),
                packing_slip: &p.mapped.order.packingslipno,
                content_hash: &p.mapped.content_hash,
                truncations: &p.mapped.truncations,
                warnings: &p.warnings,
                // Indexed before the PUT above.
                slip_indexed: !p.decision_update,
            };
            let record = update_record(
                self.deps.store,
                self.deps.clock,
                &self.settings.id,
                p.cin7_id,
                |r, now| r.published(sent, &outcome, now),
            )
            .await?;
            if matches!(outcome, PublishOutcome::Published { .. })
                && let Some(f) = record.freshness_seconds
            {
                self.summary.freshness_seconds.push(f);
            }
            let (_, reason, detail) = outcome.transition();
            let counted = if !record.consignments.is_empty() {
                reasons::TICKETED
            } else {
                match outcome {
                    PublishOutcome::Published { republished: true } => self.summary.updated += 1,
                    PublishOutcome::Published { republished: false } => self.summary.published += 1,
                    PublishOutcome::AlreadyProcessed(_) => self.summary.conflicts += 1,
                    PublishOutcome::Rejected(_) => self.summary.failed += 1,
                }
                reason
            };
            tracing::info!(integration = %self.settings.id, reference = ?p.reference, packing_slip = %p.mapped.order.packingslipno, outcome = counted, detail = ?detail, "publish result");
        }
        Ok(())
    }

    /// Publishes orders, one call for all of them when GoSweetSpot takes it. When it refuses a
    /// whole call with 400 (one bad order fails its batch), the batch is halved until each
    /// refused order is alone, and that order's result carries GoSweetSpot's message; the
    /// others are published. Results are in the order given.
    async fn publish_isolating(
        &self,
        orders: &[CustomerOrder],
    ) -> Result<Vec<PublishResult>, PullError> {
        let mut results: Vec<Option<PublishResult>> = vec![None; orders.len()];
        let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
        parts.push(0..orders.len());
        while let Some(part) = parts.pop() {
            match self.deps.gss.publish(&orders[part.clone()]).await {
                Ok(answered) => {
                    for (slot, result) in results[part].iter_mut().zip(answered) {
                        *slot = Some(result);
                    }
                }
                Err(ApiError::BatchRefused { .. }) if part.len() > 1 => {
                    let middle = part.start + part.len() / 2;
                    tracing::info!(integration = %self.settings.id, orders = part.len(), "GoSweetSpot refused a whole batch (HTTP 400); halving it to find the order it refuses");
                    parts.push(middle..part.end);
                    parts.push(part.start..middle);
                }
                Err(
                    ApiError::Rejected {
                        status: 400,
                        detail,
                        ..
                    }
                    | ApiError::BatchRefused { detail, .. },
                ) => {
                    let order = &orders[part.start];
                    tracing::warn!(integration = %self.settings.id, packing_slip = %order.packingslipno, "GoSweetSpot refused this order; it is set aside");
                    results[part.start] = Some(PublishResult {
                        packingslipno: Some(order.packingslipno.clone()),
                        result: false,
                        msg: Some(gss_error_text(&detail)),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(results
            .into_iter()
            .zip(orders)
            .map(|(r, o)| {
                r.unwrap_or_else(|| PublishResult {
                    packingslipno: Some(o.packingslipno.clone()),
                    result: false,
                    msg: Some("no result from GoSweetSpot".into()),
                })
            })
            .collect())
    }

    pub(super) async fn flush_deletes(&mut self, n: usize) -> Result<(), PullError> {
        let batch: Vec<PendingDelete> = self.deletes.drain(..n.min(self.deletes.len())).collect();
        if batch.is_empty() {
            return Ok(());
        }
        let slips: Vec<String> = batch.iter().map(|d| d.packing_slip.clone()).collect();
        let outcomes = self.deps.gss.delete(&slips).await?;
        for d in &batch {
            let outcome = outcomes
                .get(&d.packing_slip)
                .cloned()
                .unwrap_or(DeleteOutcome::Other(
                    "no answer for this packing slip".into(),
                ));
            let removal = match outcome {
                DeleteOutcome::Deleted
                | DeleteOutcome::AlreadyDeleted
                | DeleteOutcome::InvalidPackingSlip => Removal::Deleted {
                    reason: d.skip.reason.code().to_string(),
                    detail: d.skip.detail.clone(),
                },
                DeleteOutcome::AlreadyProcessed => Removal::AlreadyProcessed {
                    gate: d.skip.reason.code().to_string(),
                },
                DeleteOutcome::Other(msg) => Removal::Failed(msg),
            };
            let record = update_record(
                self.deps.store,
                self.deps.clock,
                &self.settings.id,
                d.cin7_id,
                |r, now| r.removed(&removal, now),
            )
            .await?;
            if record.consignments.is_empty() {
                match removal {
                    Removal::Deleted { .. } => self.summary.deleted += 1,
                    Removal::AlreadyProcessed { .. } => self.summary.conflicts += 1,
                    Removal::Failed(_) => self.summary.failed += 1,
                }
            }
        }
        Ok(())
    }
}
