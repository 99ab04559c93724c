//! The storage port: one table of items addressed by a partition and a sort key, with the
//! conditional writes every claim and lease needs. The DynamoDB adapter maps it one-to-one onto
//! a DynamoDB table; the embedded adapter onto one SQLite table. Everything above it (leases,
//! idempotency, sync records) is written once, in [`super::Store`], so both adapters behave
//! alike by construction and are checked by one behavioural test suite.

use async_trait::async_trait;

/// One stored item. `doc` is the JSON document; the other fields are the attributes conditions
/// and queries look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    /// The JSON document.
    pub doc: String,
    /// A short state for listing and claims (`IN_PROGRESS`, `COMPLETED`, an order state, …).
    pub state: Option<String>,
    /// Who holds a claim or lease.
    pub owner: Option<String>,
    /// Until when (epoch milliseconds) an in-progress claim or a lease holds.
    pub held_until_ms: Option<i64>,
    /// When the item expires (epoch seconds; DynamoDB's TTL attribute). Expired items are
    /// treated as absent by every read and condition, whether or not they are deleted yet.
    pub expires_at: Option<i64>,
    /// Bumped on every conditional update, for optimistic concurrency.
    pub version: i64,
}

/// The condition a write must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Unconditional.
    Always,
    /// Only when no live item has this key.
    Absent,
    /// Only when the live item's version is this one (0 = absent).
    Version(i64),
    /// The claim condition of the Powertools idempotency utility, also used for leases: the
    /// item is absent, or expired, or in progress with its hold lapsed or held by `owner` (so
    /// a holder renews its own claim or lease; a completed claim is never taken again, not even
    /// by the worker that completed it).
    Claim { now_ms: i64, owner: String },
    /// Only when the live item is held by `owner` (completing one's own claim).
    HeldBy(String),
}

impl Cond {
    /// Whether the condition holds over the live item at the key (`None`: absent or expired):
    /// the one definition an adapter that checks conditions itself uses (DynamoDB writes the
    /// same as a condition expression).
    pub fn holds(&self, existing: Option<&Item>) -> bool {
        match (self, existing) {
            (Cond::Always, _) | (Cond::Absent, None) => true,
            (Cond::Absent, Some(_)) => false,
            (Cond::Version(v), e) => e.map_or(0, |e| e.version) == *v,
            (Cond::Claim { .. }, None) => true,
            (Cond::HeldBy(_), None) => false,
            (Cond::HeldBy(owner), Some(e)) => e.owner.as_deref() == Some(owner.as_str()),
            (Cond::Claim { now_ms, owner }, Some(e)) => {
                e.state.as_deref() == Some(IN_PROGRESS)
                    && (e.held_until_ms.is_some_and(|h| h < *now_ms)
                        || e.owner.as_deref() == Some(owner.as_str()))
            }
        }
    }
}

/// The item itself when it is live at `now_s` (not expired): expired items are absent to every
/// read and condition, whether or not they are deleted yet.
pub fn live(item: Option<Item>, now_s: i64) -> Option<Item> {
    item.filter(|i| i.expires_at.is_none_or(|e| e >= now_s))
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The state value of an in-progress claim.
pub const IN_PROGRESS: &str = "IN_PROGRESS";
/// The state value of a completed claim.
pub const COMPLETED: &str = "COMPLETED";

/// The operations of a [`Table`], for what an adapter declares each one calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableOp {
    Get,
    Put,
    Delete,
    Query,
    Add,
}

impl TableOp {
    /// Every operation.
    pub const ALL: [TableOp; 5] = [Self::Get, Self::Put, Self::Delete, Self::Query, Self::Add];
}

/// A table of items (see the module docs).
#[async_trait]
pub trait Table: Send + Sync {
    /// The live item at a key (expired items read as absent).
    async fn get(&self, pk: &str, sk: &str, now_s: i64) -> Result<Option<Item>, StoreError>;

    /// Writes `item` when `cond` holds; `Ok(false)` when it does not. The stored version is
    /// the item's version.
    async fn put(&self, item: Item, cond: Cond, now_s: i64) -> Result<bool, StoreError>;

    /// Deletes an item when `owner` is `None` or holds it; `Ok(false)` otherwise.
    async fn delete(&self, pk: &str, sk: &str, owner: Option<&str>) -> Result<bool, StoreError>;

    /// Live items of a partition whose sort key starts with `sk_prefix`, optionally only those
    /// in `state`, in sort-key order.
    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        state: Option<&str>,
        now_s: i64,
    ) -> Result<Vec<Item>, StoreError>;

    /// Atomically adds `n` to a counter item (created at zero) and returns the new value.
    async fn add(&self, pk: &str, sk: &str, n: i64, expires_at: i64) -> Result<i64, StoreError>;
}
