//! Consignments GoSweetSpot reports, by webhook or found by the reconcile, each judged alone
//! and queued for write-back once.
//!
//! A shipment that cannot be written back is set aside with its reason ([`Ignored`]): no
//! consignment, no packing slip (GoSweetSpot's manual tickets carry `""`), a key that is not
//! text, a packing slip we never published. A consignment already queued is a duplicate.
//! Anything else becomes one [`WriteBackJob`]: before it is queued its consignment is noted on
//! the order's record (reason [`crate::records::reasons::TICKETED`]), so a pull never deletes from GoSweetSpot,
//! nor calls conflicting, an order GoSweetSpot has ticketed; all new jobs go to the queue in one
//! [`JobQueue::send`], and only after the queue took them are their consignments marked as
//! seen, with their [`Source`] — so what could not be queued is queued in full next time, and
//! a webhook and a reconcile of one consignment, however close, queue it once (or, racing, twice:
//! the write-back is idempotent per consignment).

use crate::clock::Clock;
use crate::gss::model::Shipment;
use crate::jobs::WriteBackJob;
use crate::queue::{JobQueue, Outgoing, QueueError};
use crate::store::{SightingStore, StoreError, update_record};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// The longest consignment number or packing slip accepted (they become store keys).
pub const MAX_KEY_CHARS: usize = 200;

/// Which path brought a consignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// GoSweetSpot's webhook delivery.
    Webhook,
    /// The reconcile against GoSweetSpot's changed shipments (a webhook we never got).
    Reconcile,
}

impl Source {
    /// The name kept on the sighting and shown by `explain`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Reconcile => "reconcile",
        }
    }
}

/// Which webhook event a shipment was posted for. The payload has no event field, so it is
/// inferred: `Delivered` set → delivered; else `Picked` set → picked; else created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShipmentEvent {
    /// The consignment (ticket) was created: what triggers the write-back.
    Created,
    /// A courier registered the pickup.
    Picked,
    /// A courier registered the delivery.
    Delivered,
}

impl ShipmentEvent {
    /// The event a shipment's `Picked`/`Delivered` fields imply.
    pub fn of(shipment: &Shipment) -> Self {
        if shipment.delivered.is_some() {
            Self::Delivered
        } else if shipment.picked.is_some() {
            Self::Picked
        } else {
            Self::Created
        }
    }

    /// The name used in logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Picked => "picked",
            Self::Delivered => "delivered",
        }
    }
}

/// Why a shipment was acknowledged without queueing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IgnoreReason {
    /// No `ConsignmentNo` (missing, null or blank).
    NoConsignment,
    /// No `PackingSlipNo` (missing, null or `""`: GoSweetSpot's manual tickets carry none).
    NoPackingSlip,
    /// Not an object, or a consignment or packing slip that is not text or is over
    /// [`MAX_KEY_CHARS`] characters.
    MalformedShipment,
    /// A ticket GoSweetSpot lists as deleted (a relabel's first ticket).
    DeletedTicket,
    /// `ManualTicket: true` and a packing slip we never published.
    ManualTicket,
    /// An integrated order, but not one we published (another order source on the site).
    NotPublishedByUs,
}

impl IgnoreReason {
    /// The reason code logged, counted and kept.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoConsignment => "no_consignment",
            Self::NoPackingSlip => "no_packing_slip",
            Self::MalformedShipment => "malformed_shipment",
            Self::DeletedTicket => "deleted_ticket",
            Self::ManualTicket => "manual_ticket",
            Self::NotPublishedByUs => "not_published_by_us",
        }
    }
}

/// One shipment that may be written back, its two keys checked and trimmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// Its position in its delivery or page, from 0.
    pub index: usize,
    /// The consignment (ticket) number.
    pub connote: String,
    /// The packing slip: our order number for an integrated order, the delivery reference for
    /// a manual ticket.
    pub packing_slip: String,
    /// The event it was posted for (for the reconcile, its latest state).
    pub event: ShipmentEvent,
    /// Everything GoSweetSpot sent that could be read, typed.
    pub shipment: Shipment,
    /// Fields that could not be read and were left out (named, never their values).
    pub unreadable: Vec<String>,
}

/// A shipment set aside, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Its position in its delivery or page, from 0.
    pub index: usize,
    pub reason: IgnoreReason,
    /// The consignment number, when one could be read.
    pub connote: Option<String>,
    /// What was wrong, safe to log: a field, never a value.
    pub detail: String,
}

/// Checks a shipment's two keys — a consignment number and a packing slip, each text of 1 to
/// [`MAX_KEY_CHARS`] characters once trimmed — and that it is not a deleted ticket.
pub fn judge(
    index: usize,
    shipment: Shipment,
    unreadable: Vec<String>,
) -> Result<Sighting, Ignored> {
    let ignored = |reason, connote: Option<String>, detail: String| Ignored {
        index,
        reason,
        connote,
        detail,
    };
    let connote = match key(shipment.consignment_no.as_deref()) {
        Key::Missing => {
            return Err(ignored(
                IgnoreReason::NoConsignment,
                None,
                "ConsignmentNo is missing".into(),
            ));
        }
        Key::TooLong => {
            return Err(ignored(
                IgnoreReason::MalformedShipment,
                None,
                format!("ConsignmentNo is longer than {MAX_KEY_CHARS} characters"),
            ));
        }
        Key::Ok(connote) => connote,
    };
    let packing_slip = match key(shipment.packing_slip_no.as_deref()) {
        Key::Missing => {
            return Err(ignored(
                IgnoreReason::NoPackingSlip,
                Some(connote),
                "PackingSlipNo is empty or missing".into(),
            ));
        }
        Key::TooLong => {
            return Err(ignored(
                IgnoreReason::MalformedShipment,
                Some(connote),
                format!("PackingSlipNo is longer than {MAX_KEY_CHARS} characters"),
            ));
        }
        Key::Ok(slip) => slip,
    };
    if shipment.is_deleted() {
        return Err(ignored(
            IgnoreReason::DeletedTicket,
            Some(connote),
            "the ticket is deleted".into(),
        ));
    }
    Ok(Sighting {
        index,
        connote,
        packing_slip,
        event: ShipmentEvent::of(&shipment),
        shipment,
        unreadable,
    })
}

enum Key {
    Missing,
    TooLong,
    Ok(String),
}

fn key(value: Option<&str>) -> Key {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        Key::Missing
    } else if value.chars().count() > MAX_KEY_CHARS {
        Key::TooLong
    } else {
        Key::Ok(value.to_string())
    }
}

/// What became of a delivery's or a reconcile's shipments (the webhook's 202 body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SightingSummary {
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

impl SightingSummary {
    /// Counts a shipment ignored for `reason`.
    pub fn ignore(&mut self, reason: IgnoreReason) {
        self.ignored += 1;
        *self
            .ignored_reasons
            .entry(reason.as_str().to_string())
            .or_default() += 1;
    }
}

/// Why sightings could not be taken (the webhook answers 500; the reconcile's cursor stays).
#[derive(Debug, thiserror::Error)]
pub enum SightingError {
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

/// What queueing sightings needs from the world.
#[derive(Clone, Copy)]
pub struct SightingDeps<'a> {
    /// Orders by packing slip, consignment sightings, order records.
    pub store: &'a dyn SightingStore,
    /// The write-back queue.
    pub queue: &'a dyn JobQueue,
    /// Stamps the notes and sightings.
    pub clock: &'a dyn Clock,
}

/// Logs and counts shipments set aside before queueing.
pub fn count_ignored(
    integration_id: &str,
    source: Source,
    ignored: &[Ignored],
    summary: &mut SightingSummary,
) {
    for set_aside in ignored {
        tracing::info!(
            integration = integration_id,
            source = source.as_str(),
            index = set_aside.index,
            connote = set_aside.connote.as_deref().unwrap_or(""),
            outcome = "ignored",
            reason = set_aside.reason.as_str(),
            detail = %set_aside.detail,
            "shipment"
        );
        summary.ignore(set_aside.reason);
    }
}

/// Whether [`queue_new`] queues, or only says what it would queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queueing {
    /// Note, queue and mark seen.
    Queue,
    /// Change nothing: return the jobs that would be queued.
    DryRun,
}

/// Queues the write-back of every consignment among `sightings` that is of an order we
/// published and not yet seen, and marks them seen with `source`; counts the rest. Returns
/// the jobs queued (or, in a dry run, those that would be).
pub async fn queue_new(
    deps: SightingDeps<'_>,
    integration_id: &str,
    sightings: &[Sighting],
    source: Source,
    queueing: Queueing,
    summary: &mut SightingSummary,
) -> Result<Vec<WriteBackJob>, SightingError> {
    let mut jobs: Vec<WriteBackJob> = Vec::new();
    let mut in_this_batch: HashSet<&str> = HashSet::new();
    for s in sightings {
        let connote = s.connote.as_str();
        let log = |outcome: &str, reason: &str| {
            tracing::info!(
                integration = integration_id,
                source = source.as_str(),
                index = s.index,
                connote,
                packing_slip = %s.packing_slip,
                event = s.event.as_str(),
                outcome,
                reason,
                unreadable_fields = ?s.unreadable,
                "shipment"
            );
        };
        if in_this_batch.contains(connote) {
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
        in_this_batch.insert(connote);
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
    if jobs.is_empty() || queueing == Queueing::DryRun {
        return Ok(jobs);
    }
    for job in &jobs {
        update_record(
            deps.store,
            deps.clock,
            integration_id,
            job.cin7_id,
            |r, now| r.ticketed(job, source.as_str(), now),
        )
        .await?;
    }
    let messages = jobs
        .iter()
        .map(|job| {
            Ok(Outgoing {
                integration_id: integration_id.to_string(),
                body: job.to_body()?,
                ..Outgoing::default()
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    if let Err(e) = deps.queue.send(&messages).await {
        tracing::error!(
            integration = integration_id,
            source = source.as_str(),
            jobs = jobs.len(),
            error = %e,
            "write-back jobs could not be queued"
        );
        return Err(e.into());
    }
    for job in &jobs {
        let seen = serde_json::json!({
            "packing_slip": job.packing_slip,
            "cin7_id": job.cin7_id,
            "queued_at": deps.clock.now(),
            "source": source.as_str(),
        })
        .to_string();
        // The jobs are queued: a failure here only means a retry may queue a duplicate job,
        // which the write-back ignores, so it is logged and the sighting still taken.
        match deps
            .store
            .mark_consignment_seen(integration_id, &job.connote, &seen)
            .await
        {
            Ok(_) => tracing::info!(
                integration = integration_id,
                source = source.as_str(),
                connote = %job.connote,
                packing_slip = %job.packing_slip,
                cin7_id = job.cin7_id,
                outcome = "queued",
                "shipment"
            ),
            Err(e) => tracing::warn!(
                integration = integration_id,
                connote = %job.connote,
                error = %e,
                "queued, but the consignment could not be marked as seen"
            ),
        }
    }
    summary.queued += jobs.len();
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipment(connote: Option<&str>, slip: Option<&str>) -> Shipment {
        Shipment {
            consignment_no: connote.map(str::to_string),
            packing_slip_no: slip.map(str::to_string),
            ..Shipment::default()
        }
    }

    #[test]
    fn keys_are_checked_and_trimmed() {
        let s = judge(3, shipment(Some(" A1 "), Some(" SO-1 ")), Vec::new()).unwrap();
        assert_eq!(
            (s.index, s.connote.as_str(), s.packing_slip.as_str()),
            (3, "A1", "SO-1")
        );
        assert_eq!(s.event, ShipmentEvent::Created);
        let reason = |c: Option<&str>, p: Option<&str>| {
            judge(0, shipment(c, p), Vec::new()).unwrap_err().reason
        };
        assert_eq!(reason(None, Some("P")), IgnoreReason::NoConsignment);
        assert_eq!(reason(Some("  "), Some("P")), IgnoreReason::NoConsignment);
        assert_eq!(reason(Some("A"), None), IgnoreReason::NoPackingSlip);
        assert_eq!(reason(Some("A"), Some("")), IgnoreReason::NoPackingSlip);
        let long = "X".repeat(MAX_KEY_CHARS + 1);
        assert_eq!(
            reason(Some(&long), Some("P")),
            IgnoreReason::MalformedShipment
        );
        assert_eq!(
            reason(Some("A"), Some(&long)),
            IgnoreReason::MalformedShipment
        );
        let e = judge(0, shipment(Some("A"), None), Vec::new()).unwrap_err();
        assert_eq!(e.connote.as_deref(), Some("A"));
        let mut gone = shipment(Some("A"), Some("P"));
        gone.status = Some("Deleted".into());
        assert_eq!(
            judge(0, gone, Vec::new()).unwrap_err().reason,
            IgnoreReason::DeletedTicket
        );
    }

    #[test]
    fn events_from_picked_and_delivered() {
        let mut s = shipment(Some("A"), Some("P"));
        assert_eq!(ShipmentEvent::of(&s), ShipmentEvent::Created);
        s.picked = Some("2026-11-28T10:02:11".into());
        assert_eq!(ShipmentEvent::of(&s), ShipmentEvent::Picked);
        s.delivered = Some("2026-11-29T14:40:51".into());
        assert_eq!(ShipmentEvent::of(&s), ShipmentEvent::Delivered);
    }
}
