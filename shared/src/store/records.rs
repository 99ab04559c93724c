//! What the store keeps about each CIN7 order and each pull, and [`update_record`], the one
//! way every flow changes an order's record.

use super::{Store, StoreError};
use crate::timestamp::Timestamp;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Published to GoSweetSpot and waiting to be ticketed.
    Published,
    /// Not published; the reason says why.
    Skipped,
    /// Removed from GoSweetSpot after leaving the gates or being voided.
    Deleted,
    /// GoSweetSpot had already processed it when we tried to change or delete it.
    Conflict,
    /// Ticketed in GoSweetSpot and written back to CIN7.
    Dispatched,
    /// A webhook shipment we did not publish (a manual ticket), acknowledged and ignored.
    Ignored,
    /// Something failed that needs an operator; the reason and detail say what.
    Failed,
}

impl OrderState {
    /// Every state, for parsing and listing.
    pub const ALL: [OrderState; 7] = [
        Self::Published,
        Self::Skipped,
        Self::Deleted,
        Self::Conflict,
        Self::Dispatched,
        Self::Ignored,
        Self::Failed,
    ];

    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Skipped => "skipped",
            Self::Deleted => "deleted",
            Self::Conflict => "conflict",
            Self::Dispatched => "dispatched",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of state, kept in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub state: OrderState,
    /// A reason code such as `stage_excluded` or `published`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A consignment created in GoSweetSpot for the order, and what was written back for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsignmentRecord {
    pub connote: String,
    pub tracking_url: Option<String>,
    pub carrier: Option<String>,
    pub created_utc: Option<DateTime<Utc>>,
    /// The freight this consignment added to `freightTotal`, once written.
    pub freight_added: Option<Decimal>,
    /// Whether this consignment's tracking was written to CIN7.
    pub tracking_written: bool,
    /// Deleted in GoSweetSpot after it was written (a relabel) and taken off the order.
    pub deleted: bool,
}

/// Everything kept about one CIN7 order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub cin7_id: i64,
    #[serde(default)]
    pub reference: Option<String>,
    /// The `packingslipno` it is (or would be) published under.
    #[serde(default)]
    pub packing_slip: Option<String>,
    /// The hash of what was last published, for change detection.
    #[serde(default)]
    pub content_hash: Option<String>,
    #[serde(default)]
    pub modified_date: Option<DateTime<Utc>>,
    pub state: OrderState,
    pub reason: String,
    #[serde(default)]
    pub detail: Option<String>,
    /// Non-blocking notes, e.g. stock that will not be deducted on dispatch.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Fields shortened to GoSweetSpot's limits.
    #[serde(default)]
    pub truncations: Vec<String>,
    #[serde(default)]
    pub history: Vec<Transition>,
    #[serde(default)]
    pub consignments: Vec<ConsignmentRecord>,
    /// The last transient write-back failure, until a write-back succeeds.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The optimistic-concurrency version (not part of the document).
    #[serde(skip)]
    pub version: i64,
    /// The packing slip the store's index holds for this order, as last read or saved (not
    /// part of the document): [`super::Store::save_order`] writes the index only when
    /// `packing_slip` differs from it.
    #[serde(skip)]
    pub indexed_slip: Option<String>,
}

impl OrderRecord {
    /// A new record in `state`.
    pub fn new(cin7_id: i64, state: OrderState, reason: &str, at: DateTime<Utc>) -> Self {
        Self {
            cin7_id,
            reference: None,
            packing_slip: None,
            content_hash: None,
            modified_date: None,
            state,
            reason: reason.to_string(),
            detail: None,
            warnings: Vec::new(),
            truncations: Vec::new(),
            history: vec![Transition {
                at,
                state,
                reason: reason.to_string(),
                detail: None,
            }],
            consignments: Vec::new(),
            last_error: None,
            version: 0,
            indexed_slip: None,
        }
    }

    /// A record with no history yet; its first [`transition`](Self::transition) sets its state.
    pub fn blank(cin7_id: i64) -> Self {
        Self {
            history: Vec::new(),
            reason: String::new(),
            ..Self::new(cin7_id, OrderState::Skipped, "", DateTime::<Utc>::MIN_UTC)
        }
    }

    /// Moves to `state` for `reason`, keeping the history. A repeat of the current state and
    /// reason with the same detail adds nothing. The entry is stamped `at`, or the last
    /// entry's time if that is later (clocks of different processes may disagree), so the
    /// history is always in time order.
    pub fn transition(
        &mut self,
        state: OrderState,
        reason: &str,
        detail: Option<String>,
        at: DateTime<Utc>,
    ) {
        if self.state == state && self.reason == reason && self.detail == detail {
            return;
        }
        let at = self.history.last().map_or(at, |last| last.at.max(at));
        self.state = state;
        self.reason = reason.to_string();
        self.detail = detail.clone();
        self.history.push(Transition {
            at,
            state,
            reason: reason.to_string(),
            detail,
        });
    }
}

/// Where the next pull starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullCursor {
    /// The latest `modifiedDate` handled, in the form CIN7 wrote it (a cursor saved before
    /// forms were kept reads as UTC): the next pull reads from it, less the overlap, written in
    /// the same form.
    pub modified_since: Timestamp,
    /// When the cursor was last saved.
    pub saved_at: DateTime<Utc>,
}

/// Where the next reconcile starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileCursor {
    /// The end of the last window whose consignments were all queued: the next reconcile asks
    /// for shipments changed since then (less the overlap).
    pub through: DateTime<Utc>,
    /// When the cursor was last saved.
    pub saved_at: DateTime<Utc>,
}

/// A webhook delivery, kept for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAudit {
    pub at: DateTime<Utc>,
    /// SHA-256 (hex) of the raw body.
    pub body_sha256: String,
    pub shipments: usize,
    pub queued: usize,
    pub ignored: usize,
    pub duplicates: usize,
    /// The ignored shipments by reason code.
    #[serde(default)]
    pub ignored_reasons: BTreeMap<String, usize>,
    /// `accepted`, or why it was refused.
    pub outcome: String,
}

/// Reads (or starts) one order record, changes it and saves it, retrying when it changed
/// underneath; unchanged records are not written. `change` is given the store clock's time at
/// each attempt, to stamp the transitions it makes: every entry of a history is stamped when it
/// is written, by whichever flow writes it.
pub async fn update_record(
    store: &Store,
    integration: &str,
    cin7_id: i64,
    mut change: impl FnMut(&mut OrderRecord, DateTime<Utc>),
) -> Result<OrderRecord, StoreError> {
    loop {
        let mut record = store
            .get_order(integration, cin7_id)
            .await?
            .unwrap_or_else(|| OrderRecord::blank(cin7_id));
        let before = record.clone();
        change(&mut record, store.now());
        if record == before {
            return Ok(record);
        }
        if store.save_order(integration, &mut record).await? {
            return Ok(record);
        }
    }
}
