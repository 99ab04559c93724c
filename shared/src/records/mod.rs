//! The order record: what is kept about each CIN7 order — where it stands, why, its history and
//! its consignments — and, in [`transitions`], each way a flow changes it. Pure: the store
//! reads and saves records ([`crate::store::Records`], [`crate::store::update_record`]); the
//! pull, the sightings and the write-back say what happened through one method each.

pub mod transitions;

pub use transitions::{
    ConsignmentEffect, Publication, PublishOutcome, Removal, WrittenBack, reasons,
};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
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
    /// When GoSweetSpot last took this order (published or updated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    /// Its freshness: from CIN7's last modification of the order to `published_at`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness_seconds: Option<i64>,
    /// The optimistic-concurrency version (not part of the document).
    #[serde(skip)]
    pub version: i64,
    /// The packing slip the store's index holds for this order, as last read or saved (not
    /// part of the document): [`crate::store::Records::save_order`] writes the index only when
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
            published_at: None,
            freshness_seconds: None,
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
