//! Settings and sync state: the [`Table`] port and its adapters, and [`Store`], which keeps
//! everything the core keeps over any table. Each aggregate is a narrow port trait in its own
//! module, implemented by [`Store`]; each flow states at its signature which it touches,
//! through the bundles below ([`PullStore`], [`ReconcileStore`], [`SightingStore`],
//! [`WebhookStore`], [`WriteBackStore`]).
//!
//! Key layout (partition key / sort key), the same in both adapters:
//!
//! | pk | sk | holds | port |
//! |---|---|---|---|
//! | `INTEGRATIONS` | `<id>` | settings of one integration | [`Integrations`] |
//! | `INT#<id>` | `ORDER#<cin7 id, 12 digits>` | an order's sync record (state attribute for listing) | [`Records`] |
//! | `INT#<id>` | `SLIP#<packing slip>` | packing slip → CIN7 id | [`Records`] |
//! | `INT#<id>` | `CURSOR` | the pull cursor | [`Cursors`] |
//! | `INT#<id>` | `RECONCILE` | the reconcile cursor | [`Cursors`] |
//! | `INT#<id>` | `LEASE#<name>` | a single-flight lease (owner, held until) | [`Leases`] |
//! | `INT#<id>` | `IDEM#<key>` | an idempotency claim (Powertools contract) | [`Claims`] |
//! | `INT#<id>` | `CALLS#<date>` | CIN7 calls that UTC day (expires after 3 days) | [`CallBudget`] |
//! | `INT#<id>` | `RATE#<service>` | the recent call times of the cross-process rate window | [`RateWindows`] |
//! | `INT#<id>` | `CONSIGNMENT#<connote>` | a consignment the webhook or reconcile has queued | [`Sightings`] |
//! | `INT#<id>` | `DELIVERY#<time>#<hash>` | a webhook delivery, for audit (kept 30 days) | [`Deliveries`] |
//! | `INT#<id>` | `SCHEDULE` | the pull schedule: the message chain's token, the next pull's due time | [`Schedules`] |
//! | `DUE#<5-minute bucket>` | `<id>` | the due index: the integration's next pull is due in this bucket | [`Schedules`] |
//! | `SWEEPER` | `CURSOR` | the first due bucket the next sweep reads | [`Schedules`] |
//! | `SECRET#<name>` | `LEASE` | serializes the writes of one secret (`secrets set`) | [`Leases`] |

mod budget;
mod claims;
mod cursors;
mod deliveries;
mod integrations;
mod leases;
mod rate_window;
mod records;
mod schedules;
mod sightings;
pub mod table;

#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "local")]
pub mod sqlite;

pub use budget::CallBudget;
pub use claims::{Claim, Claims, IDEMPOTENCY_KEEP};
pub use cursors::{Cursors, PullCursor, ReconcileCursor};
pub use deliveries::{Deliveries, DeliveryAudit};
pub use integrations::{Integrations, SaveSettingsError};
pub use leases::Leases;
pub use rate_window::{RateWindows, StoreRateLimiter};
pub use records::{Records, update_record};
pub use schedules::{DUE_BUCKET_SECONDS, DueEntry, Schedule, Schedules, due_bucket};
pub use sightings::Sightings;
pub use table::{COMPLETED, Cond, IN_PROGRESS, Item, StoreError, Table, TableOp};

/// The port traits, for code that works on a [`Store`] directly (the CLI, tests, benches).
pub mod prelude {
    pub use super::{
        CallBudget, Claims, Cursors, Deliveries, Integrations, Leases, RateWindows, Records,
        Schedules, Sightings,
    };
}

use crate::clock::Clock;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// What queueing a sighting touches: orders by packing slip, sightings, order records.
pub trait SightingStore: Records + Sightings {}
impl<T: Records + Sightings + ?Sized> SightingStore for T {}

/// What the reconcile touches: its cursor, and what queueing sightings touches.
pub trait ReconcileStore: Cursors + SightingStore {}
impl<T: Cursors + SightingStore + ?Sized> ReconcileStore for T {}

/// What the pull touches: its lease, cursors, order records and the CIN7 call budget, and
/// what its reconcile touches.
pub trait PullStore: Leases + CallBudget + ReconcileStore {}
impl<T: Leases + CallBudget + ReconcileStore + ?Sized> PullStore for T {}

/// What the webhook touches: the integration's settings, the delivery audit, and what
/// queueing sightings touches.
pub trait WebhookStore: Integrations + Deliveries + SightingStore {}
impl<T: Integrations + Deliveries + SightingStore + ?Sized> WebhookStore for T {}

/// What the write-back touches: its claims, order records, and the CIN7 call budget (its
/// calls count toward the integration's daily limit as the pull's do).
pub trait WriteBackStore: Claims + Records + CallBudget {}
impl<T: Claims + Records + CallBudget + ?Sized> WriteBackStore for T {}

/// Everything the core keeps, over any [`Table`]: implements every port above.
#[derive(Clone)]
pub struct Store {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// A store over `table`, telling time (expiry, holds, windows) by `clock`.
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn now_s(&self) -> i64 {
        self.now().timestamp()
    }

    /// The JSON document at a key of an integration's partition.
    async fn get_doc<T: DeserializeOwned>(
        &self,
        integration: &str,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        match self
            .table
            .get(&int_pk(integration), sk, self.now_s())
            .await?
        {
            Some(item) => from_doc(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Writes a JSON document at a key of an integration's partition, unconditionally.
    async fn put_doc<T: Serialize + Sync>(
        &self,
        integration: &str,
        sk: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let item = Item {
            pk: int_pk(integration),
            sk: sk.into(),
            doc: to_doc(value)?,
            ..Item::default()
        };
        self.table.put(item, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    /// The items of an integration's partition under a sort-key prefix, as documents.
    async fn query_docs<T: DeserializeOwned>(
        &self,
        integration: &str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.table
            .query(&int_pk(integration), prefix, None, self.now_s())
            .await?
            .iter()
            .map(from_doc)
            .collect()
    }
}

fn int_pk(integration: &str) -> String {
    format!("INT#{integration}")
}

fn to_doc<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(&item.doc)
        .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", item.pk, item.sk)))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
