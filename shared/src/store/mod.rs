//! Settings and sync state: the [`Table`] port, its adapters, and [`Store`], the one
//! implementation of everything the core keeps (integrations, order sync records, the pull
//! cursor, leases, idempotency claims, call counters, the cross-process rate window).
//!
//! Key layout (partition key / sort key), the same in both adapters:
//!
//! | pk | sk | holds |
//! |---|---|---|
//! | `INTEGRATIONS` | `<id>` | settings of one integration |
//! | `INT#<id>` | `ORDER#<cin7 id, 12 digits>` | an order's sync record (state attribute for listing) |
//! | `INT#<id>` | `SLIP#<packing slip>` | packing slip → CIN7 id |
//! | `INT#<id>` | `CURSOR` | the pull cursor |
//! | `INT#<id>` | `RECONCILE` | the reconcile cursor |
//! | `INT#<id>` | `LEASE#<name>` | a single-flight lease (owner, held until) |
//! | `INT#<id>` | `IDEM#<key>` | an idempotency claim (Powertools contract) |
//! | `INT#<id>` | `CALLS#<date>` | CIN7 calls that UTC day (expires after 3 days) |
//! | `INT#<id>` | `RATE#<service>` | the recent call times of the cross-process rate window |
//! | `INT#<id>` | `CONSIGNMENT#<connote>` | a consignment the webhook has queued |
//! | `INT#<id>` | `DELIVERY#<time>#<hash>` | a webhook delivery, for audit (kept 30 days) |

pub mod records;
pub mod table;

#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "local")]
pub mod sqlite;

pub use records::{
    ConsignmentRecord, DeliveryAudit, OrderRecord, OrderState, PullCursor, ReconcileCursor,
    Transition,
};
pub use table::{COMPLETED, Cond, IN_PROGRESS, Item, StoreError, Table};

use crate::clock::Clock;
use crate::rate_limit::{LimitError, RateLimiter, Window, wait_before};
use crate::settings::{IntegrationSettings, InvalidSettings};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// How long completed idempotency records are kept (DynamoDB TTL).
pub const IDEMPOTENCY_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why saving settings failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveSettingsError {
    #[error(transparent)]
    Invalid(#[from] InvalidSettings),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the key and must complete or release it.
    Acquired,
    /// Another worker holds it and its hold has not lapsed.
    InProgress,
    /// Already done; the stored result.
    Completed(String),
}

/// Everything the core keeps, over any [`Table`].
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

fn int_pk(integration: &str) -> String {
    format!("INT#{integration}")
}

fn order_sk(cin7_id: i64) -> String {
    format!("ORDER#{cin7_id:012}")
}

fn to_doc<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(&item.doc)
        .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", item.pk, item.sk)))
}

/// An order record as stored: its version, and the packing slip its index holds (every save
/// keeps the index in step with the record's slip).
fn order_from_item(item: &Item) -> Result<OrderRecord, StoreError> {
    let mut record: OrderRecord = from_doc(item)?;
    record.version = item.version;
    record.indexed_slip = record.packing_slip.clone();
    Ok(record)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// A store over `table`, telling time by `clock`.
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    /// The store clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn now_s(&self) -> i64 {
        self.now().timestamp()
    }

    // ---- integrations ----

    /// Validates and saves an integration's settings.
    pub async fn put_integration(
        &self,
        settings: &IntegrationSettings,
    ) -> Result<(), SaveSettingsError> {
        settings.validate()?;
        let item = Item {
            pk: "INTEGRATIONS".into(),
            sk: settings.id.clone(),
            doc: to_doc(settings)?,
            state: Some(
                if settings.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
                .into(),
            ),
            ..Item::default()
        };
        self.table.put(item, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    /// One integration's settings.
    pub async fn get_integration(
        &self,
        id: &str,
    ) -> Result<Option<IntegrationSettings>, StoreError> {
        match self.table.get("INTEGRATIONS", id, self.now_s()).await? {
            Some(item) => from_doc(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Every integration, by id.
    pub async fn list_integrations(&self) -> Result<Vec<IntegrationSettings>, StoreError> {
        self.table
            .query("INTEGRATIONS", "", None, self.now_s())
            .await?
            .iter()
            .map(from_doc)
            .collect()
    }

    /// Disables an integration; `false` when there is none with this id.
    pub async fn disable_integration(&self, id: &str) -> Result<bool, SaveSettingsError> {
        let Some(mut settings) = self.get_integration(id).await? else {
            return Ok(false);
        };
        settings.enabled = false;
        self.put_integration(&settings).await?;
        Ok(true)
    }

    // ---- order sync records ----

    /// One order's record.
    pub async fn get_order(
        &self,
        integration: &str,
        cin7_id: i64,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let item = self
            .table
            .get(&int_pk(integration), &order_sk(cin7_id), self.now_s())
            .await?;
        item.as_ref().map(order_from_item).transpose()
    }

    /// Saves a record if nobody else saved it since it was read (its `version`); on success the
    /// record's version moves on. `Ok(false)` means it changed underneath: read it again.
    /// The packing slip index is kept in step (written when the record's slip is not the one
    /// it was read or last saved with).
    pub async fn save_order(
        &self,
        integration: &str,
        record: &mut OrderRecord,
    ) -> Result<bool, StoreError> {
        let pk = int_pk(integration);
        let now_s = self.now_s();
        let item = Item {
            pk: pk.clone(),
            sk: order_sk(record.cin7_id),
            doc: to_doc(record)?,
            state: Some(record.state.as_str().into()),
            version: record.version + 1,
            ..Item::default()
        };
        if !self
            .table
            .put(item, Cond::Version(record.version), now_s)
            .await?
        {
            return Ok(false);
        }
        record.version += 1;
        if let Some(slip) = &record.packing_slip
            && record.indexed_slip.as_ref() != Some(slip)
        {
            let index = Item {
                pk,
                sk: format!("SLIP#{slip}"),
                doc: record.cin7_id.to_string(),
                ..Item::default()
            };
            self.table.put(index, Cond::Always, now_s).await?;
            record.indexed_slip = Some(slip.clone());
        }
        Ok(true)
    }

    /// Records that `packing_slip` is (about to be) published for `cin7_id`, before the
    /// GoSweetSpot call: a consignment webhook for it, however early, finds the order.
    pub async fn index_packing_slip(
        &self,
        integration: &str,
        packing_slip: &str,
        cin7_id: i64,
    ) -> Result<(), StoreError> {
        let index = Item {
            pk: int_pk(integration),
            sk: format!("SLIP#{packing_slip}"),
            doc: cin7_id.to_string(),
            ..Item::default()
        };
        self.table.put(index, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    /// The record of the order published under a packing slip (a blank record when the slip
    /// is indexed and the publish has not been recorded yet).
    pub async fn order_by_packing_slip(
        &self,
        integration: &str,
        packing_slip: &str,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let index = self
            .table
            .get(
                &int_pk(integration),
                &format!("SLIP#{packing_slip}"),
                self.now_s(),
            )
            .await?;
        let Some(index) = index else {
            return Ok(None);
        };
        let id: i64 = index
            .doc
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("packing slip index {packing_slip:?}")))?;
        Ok(Some(
            self.get_order(integration, id)
                .await?
                .unwrap_or_else(|| OrderRecord::blank(id)),
        ))
    }

    /// An integration's order records, all or only those in `state`, by CIN7 id.
    pub async fn list_orders(
        &self,
        integration: &str,
        state: Option<OrderState>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.table
            .query(
                &int_pk(integration),
                "ORDER#",
                state.map(|s| s.as_str()),
                self.now_s(),
            )
            .await?
            .iter()
            .map(order_from_item)
            .collect()
    }

    // ---- pull cursor ----

    /// The pull cursor, if a pull has saved one.
    pub async fn get_cursor(&self, integration: &str) -> Result<Option<PullCursor>, StoreError> {
        match self
            .table
            .get(&int_pk(integration), "CURSOR", self.now_s())
            .await?
        {
            Some(item) => from_doc(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Saves the pull cursor.
    pub async fn put_cursor(
        &self,
        integration: &str,
        cursor: &PullCursor,
    ) -> Result<(), StoreError> {
        let item = Item {
            pk: int_pk(integration),
            sk: "CURSOR".into(),
            doc: to_doc(cursor)?,
            ..Item::default()
        };
        self.table.put(item, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    // ---- reconcile cursor ----

    /// The reconcile cursor, if a reconcile has saved one.
    pub async fn get_reconcile_cursor(
        &self,
        integration: &str,
    ) -> Result<Option<ReconcileCursor>, StoreError> {
        match self
            .table
            .get(&int_pk(integration), "RECONCILE", self.now_s())
            .await?
        {
            Some(item) => from_doc(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Saves the reconcile cursor.
    pub async fn put_reconcile_cursor(
        &self,
        integration: &str,
        cursor: &ReconcileCursor,
    ) -> Result<(), StoreError> {
        let item = Item {
            pk: int_pk(integration),
            sk: "RECONCILE".into(),
            doc: to_doc(cursor)?,
            ..Item::default()
        };
        self.table.put(item, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    // ---- leases ----

    /// Takes (or renews) the named lease for `ttl`; `false` while someone else holds it.
    pub async fn acquire_lease(
        &self,
        integration: &str,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let until = now.timestamp_millis() + millis(ttl);
        let item = Item {
            pk: int_pk(integration),
            sk: format!("LEASE#{name}"),
            doc: "{}".into(),
            state: Some(IN_PROGRESS.into()),
            owner: Some(owner.into()),
            held_until_ms: Some(until),
            expires_at: Some(until / 1000 + 3600),
            version: 0,
        };
        let cond = Cond::Claim {
            now_ms: now.timestamp_millis(),
            owner: owner.into(),
        };
        self.table.put(item, cond, now.timestamp()).await
    }

    /// Gives a lease back (only its owner can).
    pub async fn release_lease(
        &self,
        integration: &str,
        name: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.table
            .delete(&int_pk(integration), &format!("LEASE#{name}"), Some(owner))
            .await
    }

    // ---- idempotency (the Powertools contract) ----

    /// Claims a key for `owner`, held for `in_progress_for` (after which another worker may
    /// take it over, as after a crash).
    pub async fn claim(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
        in_progress_for: Duration,
    ) -> Result<Claim, StoreError> {
        let pk = int_pk(integration);
        let sk = format!("IDEM#{key}");
        // Twice at most: a claim can lose to a record that is deleted before we read it.
        for _ in 0..2 {
            let now = self.now();
            let item = Item {
                pk: pk.clone(),
                sk: sk.clone(),
                doc: "null".into(),
                state: Some(IN_PROGRESS.into()),
                owner: Some(owner.into()),
                held_until_ms: Some(now.timestamp_millis() + millis(in_progress_for)),
                expires_at: Some(now.timestamp() + IDEMPOTENCY_KEEP.as_secs() as i64),
                version: 0,
            };
            let cond = Cond::Claim {
                now_ms: now.timestamp_millis(),
                owner: owner.into(),
            };
            if self.table.put(item, cond, now.timestamp()).await? {
                return Ok(Claim::Acquired);
            }
            match self.table.get(&pk, &sk, now.timestamp()).await? {
                Some(existing) if existing.state.as_deref() == Some(COMPLETED) => {
                    return Ok(Claim::Completed(existing.doc));
                }
                Some(_) => return Ok(Claim::InProgress),
                None => continue,
            }
        }
        Ok(Claim::InProgress)
    }

    /// Marks a claimed key done with its result; `false` when the claim had lapsed and been
    /// taken over (the result is then not stored).
    pub async fn complete(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
        result: &str,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let item = Item {
            pk: int_pk(integration),
            sk: format!("IDEM#{key}"),
            doc: result.into(),
            state: Some(COMPLETED.into()),
            owner: Some(owner.into()),
            held_until_ms: None,
            expires_at: Some(now.timestamp() + IDEMPOTENCY_KEEP.as_secs() as i64),
            version: 0,
        };
        // Only while we still hold it: a worker that took the claim over after our hold
        // lapsed owns it now, and its result must not be overwritten.
        let cond = Cond::HeldBy(owner.into());
        self.table.put(item, cond, now.timestamp()).await
    }

    /// The stored result of a completed claim, if the key is completed.
    pub async fn claim_result(
        &self,
        integration: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .table
            .get(&int_pk(integration), &format!("IDEM#{key}"), self.now_s())
            .await?
            .filter(|i| i.state.as_deref() == Some(COMPLETED))
            .map(|i| i.doc))
    }

    /// Forgets a claim whatever its state (the operator's replay of a finished job).
    pub async fn forget_claim(&self, integration: &str, key: &str) -> Result<(), StoreError> {
        self.table
            .delete(&int_pk(integration), &format!("IDEM#{key}"), None)
            .await?;
        Ok(())
    }

    /// What the webhook recorded when it queued a consignment (its packing slip and order).
    pub async fn consignment(
        &self,
        integration: &str,
        connote: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .table
            .get(
                &int_pk(integration),
                &format!("CONSIGNMENT#{connote}"),
                self.now_s(),
            )
            .await?
            .map(|i| i.doc))
    }

    /// Releases a claim after a failure, so a retry can claim it at once.
    pub async fn release_claim(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.table
            .delete(&int_pk(integration), &format!("IDEM#{key}"), Some(owner))
            .await
    }

    // ---- webhook sightings and audit ----

    /// Whether the webhook has already queued this consignment.
    pub async fn consignment_seen(
        &self,
        integration: &str,
        connote: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .table
            .get(
                &int_pk(integration),
                &format!("CONSIGNMENT#{connote}"),
                self.now_s(),
            )
            .await?
            .is_some())
    }

    /// Marks a consignment as queued; `false` when it already was.
    pub async fn mark_consignment_seen(
        &self,
        integration: &str,
        connote: &str,
        doc: &str,
    ) -> Result<bool, StoreError> {
        let item = Item {
            pk: int_pk(integration),
            sk: format!("CONSIGNMENT#{connote}"),
            doc: doc.to_string(),
            ..Item::default()
        };
        self.table.put(item, Cond::Absent, self.now_s()).await
    }

    /// Records a webhook delivery for audit; kept 30 days.
    pub async fn record_delivery(
        &self,
        integration: &str,
        audit: &DeliveryAudit,
    ) -> Result<(), StoreError> {
        let item = Item {
            pk: int_pk(integration),
            sk: format!(
                "DELIVERY#{}#{}",
                audit.at.format("%Y%m%dT%H%M%S%.6fZ"),
                audit.body_sha256.get(..16).unwrap_or(&audit.body_sha256)
            ),
            doc: to_doc(audit)?,
            state: Some(audit.outcome.clone()),
            expires_at: Some(self.now_s() + 30 * 24 * 3600),
            ..Item::default()
        };
        self.table.put(item, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    /// An integration's recorded webhook deliveries, oldest first.
    pub async fn list_deliveries(
        &self,
        integration: &str,
    ) -> Result<Vec<DeliveryAudit>, StoreError> {
        self.table
            .query(&int_pk(integration), "DELIVERY#", None, self.now_s())
            .await?
            .iter()
            .map(from_doc)
            .collect()
    }

    // ---- CIN7 call budget ----

    /// Adds `n` CIN7 calls to today's (UTC) count and returns the day's total.
    pub async fn count_calls(&self, integration: &str, n: i64) -> Result<i64, StoreError> {
        let now = self.now();
        self.table
            .add(
                &int_pk(integration),
                &format!("CALLS#{}", now.format("%Y-%m-%d")),
                n,
                now.timestamp() + 3 * 24 * 3600,
            )
            .await
    }

    /// Today's (UTC) CIN7 call count so far.
    pub async fn calls_today(&self, integration: &str) -> Result<i64, StoreError> {
        self.count_calls(integration, 0).await
    }

    // ---- cross-process rate window ----

    /// Takes one call from the shared window of `service` if every window has room; otherwise
    /// says how long to wait. Optimistic concurrency on the window's version, so concurrent
    /// processes never both take the last slot.
    pub async fn try_acquire_rate(
        &self,
        integration: &str,
        service: &str,
        windows: &[Window],
    ) -> Result<Option<Duration>, StoreError> {
        let pk = int_pk(integration);
        let sk = format!("RATE#{service}");
        let longest = windows.iter().map(|w| w.length).max().unwrap_or_default();
        loop {
            let current = self.table.get(&pk, &sk, self.now_s()).await?;
            // The clock is read after the log: every grant in it was written before this read,
            // so none is later than `now`, and this grant keeps the log in order. (Read before,
            // a slow read could return a later grant of another worker, and the window check,
            // which takes the log as ordered, would pick the wrong oldest call.)
            let now = self.now();
            let now_ms = now.timestamp_millis();
            let version = current.as_ref().map_or(0, |i| i.version);
            let mut log: Vec<i64> = match &current {
                Some(item) => from_doc(item)?,
                None => Vec::new(),
            };
            log.sort_unstable();
            log.retain(|t| *t > now_ms - millis(longest));
            let since_epoch = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
            let granted: Vec<Duration> = log.iter().map(|t| since_epoch(*t)).collect();
            if let Some(wait) = wait_before(&granted, windows, since_epoch(now_ms)) {
                return Ok(Some(wait.max(Duration::from_millis(1))));
            }
            log.push(now_ms);
            let item = Item {
                pk: pk.clone(),
                sk: sk.clone(),
                doc: to_doc(&log)?,
                version: version + 1,
                expires_at: Some(now.timestamp() + longest.as_secs() as i64 + 60),
                ..Item::default()
            };
            if self
                .table
                .put(item, Cond::Version(version), now.timestamp())
                .await?
            {
                return Ok(None);
            }
        }
    }
}

/// A [`RateLimiter`] whose window lives in the store, so every process and function of one
/// integration shares it (CIN7's limits hold per account and GoSweetSpot's per site, across
/// all of them). Within a process, callers are served in the order they asked.
pub struct StoreRateLimiter {
    store: Store,
    integration: String,
    service: &'static str,
    windows: Vec<Window>,
    turn: tokio::sync::Mutex<()>,
}

impl StoreRateLimiter {
    /// A limiter for one integration's calls to `service`.
    pub fn new(
        store: Store,
        integration: &str,
        service: &'static str,
        windows: Vec<Window>,
    ) -> Self {
        Self {
            store,
            integration: integration.to_string(),
            service,
            windows,
            turn: tokio::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl RateLimiter for StoreRateLimiter {
    async fn acquire(&self) -> Result<(), LimitError> {
        let _turn = self.turn.lock().await;
        loop {
            match self
                .store
                .try_acquire_rate(&self.integration, self.service, &self.windows)
                .await
            {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => tokio::time::sleep(wait).await,
                Err(e) => return Err(LimitError(e.to_string())),
            }
        }
    }
}
