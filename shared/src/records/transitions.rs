//! Every way an order's record changes, one method each, with the reason codes it records. The
//! pull, the sightings (webhook and reconcile) and the write-back call these and nothing else
//! to change a record, through [`crate::store::update_record`].

use super::{ConsignmentRecord, OrderRecord, OrderState};
use crate::jobs::WriteBackJob;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// The reason codes the record's transitions use (the pull's gate reasons are
/// [`crate::pull::gates::SkipReason`]'s).
pub mod reasons {
    /// Published to GoSweetSpot for the first time.
    pub const PUBLISHED: &str = "published";
    /// Published again after the order changed.
    pub const REPUBLISHED: &str = "republished";
    /// GoSweetSpot had already processed it when we tried to change or delete it.
    pub const ALREADY_PROCESSED: &str = "already_processed";
    /// GoSweetSpot refused the order.
    pub const GSS_REJECTED: &str = "gss_rejected";
    /// GoSweetSpot could not delete the order.
    pub const GSS_DELETE_FAILED: &str = "gss_delete_failed";
    /// GoSweetSpot reported a consignment for the order (webhook or reconcile).
    pub const TICKETED: &str = "ticketed";
    /// Written back and dispatched in CIN7.
    pub const DISPATCHED: &str = "dispatched";
    /// A further consignment written to an order already dispatched.
    pub const CONSIGNMENT_ADDED: &str = "consignment_added";
    /// Written back without dispatching ("send ticket number" off).
    pub const WRITTEN_BACK: &str = "written_back";
    /// A relabel: a deleted consignment taken off the order and the new one written.
    pub const RELABELLED: &str = "relabelled";
    /// CIN7's Shopify link was called.
    pub const SHOPIFY_TRIGGERED: &str = "shopify_triggered";
    /// The write-back failed on every allowed attempt; the job is in the dead-letter queue.
    pub const WRITE_BACK_EXHAUSTED: &str = "write_back_exhausted";
    /// CIN7 refused the write-back.
    pub const CIN7_REJECTED: &str = "cin7_rejected";
    /// CIN7 has no such sales order.
    pub const ORDER_NOT_FOUND: &str = "order_not_found";
    /// The CIN7 order is void.
    pub const ORDER_VOID: &str = "order_void";
}

/// What GoSweetSpot answered to one order's publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Taken: first published (`republished` false) or published again.
    Published { republished: bool },
    /// Already processed in GoSweetSpot; its message.
    AlreadyProcessed(Option<String>),
    /// Refused; its message.
    Rejected(Option<String>),
}

impl PublishOutcome {
    /// The state, reason and detail it records.
    pub fn transition(&self) -> (OrderState, &'static str, Option<String>) {
        match self {
            Self::Published { republished: false } => {
                (OrderState::Published, reasons::PUBLISHED, None)
            }
            Self::Published { republished: true } => {
                (OrderState::Published, reasons::REPUBLISHED, None)
            }
            Self::AlreadyProcessed(msg) => (
                OrderState::Conflict,
                reasons::ALREADY_PROCESSED,
                msg.clone(),
            ),
            Self::Rejected(msg) => (OrderState::Failed, reasons::GSS_REJECTED, msg.clone()),
        }
    }
}

/// What was sent to GoSweetSpot for one order.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    pub reference: Option<&'a str>,
    pub modified: Option<DateTime<Utc>>,
    pub packing_slip: &'a str,
    pub content_hash: &'a str,
    pub truncations: &'a [String],
    pub warnings: &'a [String],
    /// Whether the packing slip was indexed before the publish (a first publish is).
    pub slip_indexed: bool,
}

/// What became of an order the pull took out of GoSweetSpot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Gone (or never there): recorded with the gate's reason and detail.
    Deleted {
        reason: String,
        detail: Option<String>,
    },
    /// GoSweetSpot had ticketed it before it left the gates (`gate` is the reason it left).
    AlreadyProcessed { gate: String },
    /// GoSweetSpot could not delete it; its message.
    Failed(String),
}

/// What one write-back wrote to CIN7 for one consignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsignmentEffect {
    pub connote: String,
    pub carrier: Option<String>,
    pub tracking_url: Option<String>,
    pub created_utc: Option<DateTime<Utc>>,
    /// Whether the connote and tracking URL are in this update (or already on the order).
    pub tracking_written: bool,
    /// The ex-tax freight this consignment contributes, when freight is written.
    pub freight_ex_tax: Option<Decimal>,
}

/// A write-back that CIN7 took, for one consignment's job.
#[derive(Debug, Clone, Copy)]
pub struct WrittenBack<'a> {
    pub job: &'a WriteBackJob,
    /// What was written for the job's consignment, when the update touched it.
    pub effect: Option<&'a ConsignmentEffect>,
    /// Earlier consignments taken off the order (a relabel).
    pub relabelled: &'a [String],
    /// Whether this update dispatched the order.
    pub dispatched: bool,
    /// Whether the integration sends the ticket number (and so dispatches at all).
    pub sends_ticket_number: bool,
    /// Operator-facing notes of the plan.
    pub notes: &'a [String],
}

impl OrderRecord {
    /// The pull set the order aside: `reason` is a gate's code.
    pub fn skipped(
        &mut self,
        reference: Option<String>,
        modified: Option<DateTime<Utc>>,
        reason: &str,
        detail: Option<String>,
        at: DateTime<Utc>,
    ) {
        self.reference = reference.or(self.reference.take());
        self.modified_date = modified.or(self.modified_date);
        self.transition(OrderState::Skipped, reason, detail, at);
    }

    /// GoSweetSpot answered the order's publish. A consignment GoSweetSpot reported meanwhile
    /// (the webhook came early) is not undone: the order stays ticketed.
    pub fn published(
        &mut self,
        sent: Publication<'_>,
        outcome: &PublishOutcome,
        at: DateTime<Utc>,
    ) {
        let (state, reason, detail) = outcome.transition();
        self.reference = sent.reference.map(str::to_string);
        self.modified_date = sent.modified;
        self.packing_slip = Some(sent.packing_slip.to_string());
        if sent.slip_indexed {
            self.indexed_slip = self.packing_slip.clone();
        }
        if state == OrderState::Published {
            self.content_hash = Some(sent.content_hash.to_string());
            self.published_at = Some(at);
            self.freshness_seconds = sent.modified.map(|m| (at - m).num_seconds().max(0));
        }
        self.truncations = sent.truncations.to_vec();
        self.warnings = sent.warnings.to_vec();
        if self.consignments.is_empty() {
            self.transition(state, reason, detail, at);
        }
    }

    /// The pull took the order out of GoSweetSpot. Ticketed meanwhile, it stays ticketed:
    /// GoSweetSpot kept it, and the write-back is on its way.
    pub fn removed(&mut self, removal: &Removal, at: DateTime<Utc>) {
        if !self.consignments.is_empty() {
            return;
        }
        match removal {
            Removal::Deleted { reason, detail } => {
                self.transition(OrderState::Deleted, reason, detail.clone(), at)
            }
            Removal::AlreadyProcessed { gate } => self.transition(
                OrderState::Conflict,
                reasons::ALREADY_PROCESSED,
                Some(format!(
                    "left the gates ({gate}) after GoSweetSpot ticketed it"
                )),
                at,
            ),
            Removal::Failed(msg) => self.transition(
                OrderState::Failed,
                reasons::GSS_DELETE_FAILED,
                Some(msg.clone()),
                at,
            ),
        }
    }

    /// GoSweetSpot reported a consignment for the order (`source`: by webhook or reconcile),
    /// noted once per consignment, keeping the order's state: from then on the pull leaves the
    /// order alone.
    pub fn ticketed(&mut self, job: &WriteBackJob, source: &str, at: DateTime<Utc>) {
        if self.consignments.iter().any(|c| c.connote == job.connote) {
            return;
        }
        self.consignments.push(ConsignmentRecord {
            connote: job.connote.clone(),
            tracking_url: job.tracking_url.clone(),
            created_utc: job.created_utc,
            ..ConsignmentRecord::default()
        });
        self.fill_keys(job);
        // A slip indexed before its publish was recorded has no history yet: it is published.
        let state = if self.history.is_empty() {
            OrderState::Published
        } else {
            self.state
        };
        self.transition(
            state,
            reasons::TICKETED,
            Some(format!("{} (by {source})", job.connote)),
            at,
        );
    }

    /// A write-back for `connote` failed for now and will be retried: kept as the last error,
    /// the state unchanged.
    pub fn write_back_deferred(&mut self, connote: &str, error: &str) {
        self.last_error = Some(format!("{connote}: {error}"));
    }

    /// A write-back for `connote` failed for good (`reason`, one of [`reasons`]).
    pub fn write_back_failed(
        &mut self,
        connote: &str,
        reason: &str,
        detail: &str,
        at: DateTime<Utc>,
    ) {
        self.transition(
            OrderState::Failed,
            reason,
            Some(format!("{connote}: {detail}")),
            at,
        );
    }

    /// CIN7 took a write-back: the consignment's record is brought up to date, relabelled
    /// consignments are marked deleted, and the order is dispatched (or written back, when
    /// the integration does not send ticket numbers; or relabelled).
    pub fn written_back(&mut self, w: WrittenBack<'_>, at: DateTime<Utc>) {
        let job = w.job;
        self.fill_keys(job);
        let entry = match self
            .consignments
            .iter()
            .position(|c| c.connote == job.connote)
        {
            Some(i) => &mut self.consignments[i],
            None => {
                self.consignments.push(ConsignmentRecord {
                    connote: job.connote.clone(),
                    ..ConsignmentRecord::default()
                });
                let last = self.consignments.len() - 1;
                &mut self.consignments[last]
            }
        };
        if let Some(e) = w.effect {
            entry.tracking_url = e.tracking_url.clone().or(entry.tracking_url.take());
            entry.carrier = e.carrier.clone().or(entry.carrier.take());
            entry.created_utc = e.created_utc.or(entry.created_utc);
            entry.tracking_written |= e.tracking_written;
            if e.freight_ex_tax.is_some() {
                entry.freight_added = e.freight_ex_tax;
            }
        }
        self.last_error = None;
        for c in self
            .consignments
            .iter_mut()
            .filter(|c| w.relabelled.contains(&c.connote))
        {
            c.deleted = true;
        }
        // Without "send ticket number" nothing is dispatched in CIN7: the record says the
        // consignment was written back (its freight, when that is on).
        let reason = match (w.sends_ticket_number, w.dispatched) {
            _ if !w.relabelled.is_empty() => reasons::RELABELLED,
            (true, true) => reasons::DISPATCHED,
            (true, false) => reasons::CONSIGNMENT_ADDED,
            (false, _) => reasons::WRITTEN_BACK,
        };
        let detail = if w.notes.is_empty() {
            job.connote.clone()
        } else {
            format!("{}: {}", job.connote, w.notes.join("; "))
        };
        self.transition(OrderState::Dispatched, reason, Some(detail), at);
    }

    /// CIN7's Shopify link was called after `connote`'s write-back.
    pub fn shopify_triggered(&mut self, connote: &str, at: DateTime<Utc>) {
        self.transition(
            OrderState::Dispatched,
            reasons::SHOPIFY_TRIGGERED,
            Some(connote.to_string()),
            at,
        );
    }

    /// Takes the packing slip and reference from a job when the record has none yet.
    fn fill_keys(&mut self, job: &WriteBackJob) {
        if self.packing_slip.is_none() {
            self.packing_slip = Some(job.packing_slip.clone());
        }
        if self.reference.is_none() {
            self.reference = job.reference.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 9, minute, 0).unwrap()
    }

    fn job(connote: &str) -> WriteBackJob {
        WriteBackJob {
            integration_id: "acme".into(),
            connote: connote.into(),
            packing_slip: "#1050".into(),
            cin7_id: 7,
            reference: Some("#1050".into()),
            tracking_url: Some(format!("https://track/{connote}")),
            total_cost: None,
            created_utc: Some(at(1)),
            manual_ticket: false,
        }
    }

    fn published_record() -> OrderRecord {
        OrderRecord::new(7, OrderState::Published, reasons::PUBLISHED, at(0))
    }

    #[test]
    fn a_ticketed_order_is_not_undone_by_a_late_publish_or_removal() {
        let mut r = OrderRecord::blank(7);
        r.ticketed(&job("C1"), "webhook", at(1));
        assert_eq!(r.state, OrderState::Published);
        assert_eq!(r.reason, reasons::TICKETED);
        assert_eq!(r.detail.as_deref(), Some("C1 (by webhook)"));
        let sent = Publication {
            reference: Some("#1050"),
            modified: None,
            packing_slip: "#1050",
            content_hash: "h",
            truncations: &[],
            warnings: &[],
            slip_indexed: true,
        };
        r.published(sent, &PublishOutcome::AlreadyProcessed(None), at(2));
        assert_eq!(r.reason, reasons::TICKETED);
        r.removed(&Removal::Failed("x".into()), at(3));
        assert_eq!(r.reason, reasons::TICKETED);
        // Noted once per consignment.
        r.ticketed(&job("C1"), "reconcile", at(4));
        assert_eq!(r.history.len(), 1);
    }

    #[test]
    fn publish_outcomes_record_their_reasons() {
        for (outcome, state, reason) in [
            (
                PublishOutcome::Published { republished: false },
                OrderState::Published,
                reasons::PUBLISHED,
            ),
            (
                PublishOutcome::Published { republished: true },
                OrderState::Published,
                reasons::REPUBLISHED,
            ),
            (
                PublishOutcome::AlreadyProcessed(Some("m".into())),
                OrderState::Conflict,
                reasons::ALREADY_PROCESSED,
            ),
            (
                PublishOutcome::Rejected(Some("m".into())),
                OrderState::Failed,
                reasons::GSS_REJECTED,
            ),
        ] {
            let mut r = OrderRecord::blank(7);
            let sent = Publication {
                reference: Some("#1050"),
                modified: Some(at(0)),
                packing_slip: "#1050",
                content_hash: "h",
                truncations: &[],
                warnings: &[],
                slip_indexed: false,
            };
            r.published(sent, &outcome, at(1));
            assert_eq!((r.state, r.reason.as_str()), (state, reason));
            assert_eq!(
                r.content_hash.is_some(),
                state == OrderState::Published,
                "only a taken publish keeps its hash"
            );
            assert_eq!(r.indexed_slip, None);
        }
    }

    #[test]
    fn a_write_back_dispatches_relabels_or_only_writes() {
        let effect = ConsignmentEffect {
            connote: "C2".into(),
            carrier: Some("Post Haste".into()),
            tracking_url: Some("https://track/C2".into()),
            created_utc: None,
            tracking_written: true,
            freight_ex_tax: Some(Decimal::new(850, 2)),
        };
        let mut r = published_record();
        r.write_back_deferred("C2", "CIN7 down");
        let w = WrittenBack {
            job: &job("C2"),
            effect: Some(&effect),
            relabelled: &[],
            dispatched: true,
            sends_ticket_number: true,
            notes: &[],
        };
        r.written_back(w, at(5));
        assert_eq!(r.reason, reasons::DISPATCHED);
        assert_eq!(r.last_error, None);
        assert_eq!(r.consignments[0].freight_added, Some(Decimal::new(850, 2)));
        assert_eq!(r.consignments[0].carrier.as_deref(), Some("Post Haste"));

        let mut again = published_record();
        again.ticketed(&job("C1"), "webhook", at(1));
        let relabel = WrittenBack {
            relabelled: &["C1".to_string()],
            notes: &["freight left alone".to_string()],
            ..w
        };
        again.written_back(relabel, at(6));
        assert_eq!(again.reason, reasons::RELABELLED);
        assert!(again.consignments[0].deleted);
        assert_eq!(again.detail.as_deref(), Some("C2: freight left alone"));

        let mut quiet = published_record();
        quiet.written_back(
            WrittenBack {
                sends_ticket_number: false,
                ..w
            },
            at(5),
        );
        assert_eq!(quiet.reason, reasons::WRITTEN_BACK);
        let mut added = published_record();
        added.written_back(
            WrittenBack {
                dispatched: false,
                ..w
            },
            at(5),
        );
        assert_eq!(added.reason, reasons::CONSIGNMENT_ADDED);
    }

    #[test]
    fn removals_and_failures() {
        let mut r = published_record();
        r.removed(
            &Removal::AlreadyProcessed {
                gate: "stage_excluded".into(),
            },
            at(1),
        );
        assert_eq!(r.state, OrderState::Conflict);
        assert_eq!(
            r.detail.as_deref(),
            Some("left the gates (stage_excluded) after GoSweetSpot ticketed it")
        );
        r.write_back_failed("C1", reasons::ORDER_VOID, "the CIN7 order is void", at(2));
        assert_eq!(
            (r.state, r.detail.as_deref()),
            (OrderState::Failed, Some("C1: the CIN7 order is void"))
        );
    }
}
