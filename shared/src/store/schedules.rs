//! Each integration's pull schedule: the token of its current message chain and when its next
//! pull is due, and a due-time index the sweeper reads instead of every integration.
//!
//! The index is a partition per five minutes of due time (`DUE#<bucket>`), one item per
//! integration in the bucket of its next pull. Saving a schedule moves the item when the bucket
//! changes (state first, then the new index item, then the old one deleted), so the buckets
//! behind the sweeper hold only integrations that are overdue, or entries a crash left behind
//! (the sweeper re-indexes those from the state). A sweep costs one query per bucket it passes
//! and one read per entry in them: O(overdue), not O(integrations).

use super::{Cond, Item, Store, StoreError, from_doc, int_pk, to_doc};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const SCHEDULE: &str = "SCHEDULE";
const SWEEPER_PK: &str = "SWEEPER";
const SWEEPER_SK: &str = "CURSOR";

/// The width of a due-index bucket, in seconds.
pub const DUE_BUCKET_SECONDS: i64 = 300;

/// The due-index bucket of a time.
pub fn due_bucket(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(DUE_BUCKET_SECONDS)
}

fn due_pk(bucket: i64) -> String {
    format!("DUE#{bucket}")
}

/// One integration's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The token of the one message that may pull next (see [`crate::schedule::message`]).
    pub token: String,
    /// When the next pull is due.
    pub next_pull_due: DateTime<Utc>,
    /// When the pull last found an order new or changed.
    #[serde(default)]
    pub last_activity: Option<DateTime<Utc>>,
    /// When the last pull ran.
    #[serde(default)]
    pub last_pull: Option<DateTime<Utc>>,
    /// When the pulls of this chain last reconciled (the worker reconciles at most every
    /// [`crate::schedule::WorkerConfig::reconcile_every`]).
    #[serde(default)]
    pub last_reconcile: Option<DateTime<Utc>>,
    /// The optimistic-concurrency version (not part of the document; 0 = never saved).
    #[serde(skip)]
    pub version: i64,
    /// The due-index bucket the stored schedule is indexed under (not part of the document).
    #[serde(skip)]
    pub indexed_bucket: Option<i64>,
}

/// An entry of the due index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    pub bucket: i64,
    pub integration: String,
}

#[derive(Serialize, Deserialize)]
struct SweepCursor {
    bucket: i64,
}

/// Pull schedules and their due index.
#[async_trait]
pub trait Schedules: Send + Sync {
    /// An integration's schedule, if it has one.
    async fn get_schedule(&self, integration: &str) -> Result<Option<Schedule>, StoreError>;

    /// Saves a schedule if nobody saved it since it was read (its `version`), and indexes it
    /// under its due time; `Ok(false)` when it was replaced meanwhile (the chain is someone
    /// else's now).
    async fn save_schedule(
        &self,
        integration: &str,
        schedule: &mut Schedule,
    ) -> Result<bool, StoreError>;

    /// The index entries of one bucket.
    async fn due_entries(&self, bucket: i64) -> Result<Vec<DueEntry>, StoreError>;

    /// Removes an index entry (an integration that is gone, disabled, or indexed elsewhere).
    async fn drop_due_entry(&self, entry: &DueEntry) -> Result<(), StoreError>;

    /// The first bucket the next sweep reads.
    async fn sweep_cursor(&self) -> Result<Option<i64>, StoreError>;

    /// Saves where the next sweep starts.
    async fn put_sweep_cursor(&self, bucket: i64) -> Result<(), StoreError>;
}

#[async_trait]
impl Schedules for Store {
    async fn get_schedule(&self, integration: &str) -> Result<Option<Schedule>, StoreError> {
        let item = self
            .table
            .get(&int_pk(integration), SCHEDULE, self.now_s())
            .await?;
        item.map(|item| {
            let mut s: Schedule = from_doc(&item)?;
            s.version = item.version;
            s.indexed_bucket = Some(due_bucket(s.next_pull_due));
            Ok(s)
        })
        .transpose()
    }

    async fn save_schedule(
        &self,
        integration: &str,
        schedule: &mut Schedule,
    ) -> Result<bool, StoreError> {
        let now_s = self.now_s();
        let item = Item {
            pk: int_pk(integration),
            sk: SCHEDULE.into(),
            doc: to_doc(schedule)?,
            version: schedule.version + 1,
            ..Item::default()
        };
        if !self
            .table
            .put(item, Cond::Version(schedule.version), now_s)
            .await?
        {
            return Ok(false);
        }
        schedule.version += 1;
        let bucket = due_bucket(schedule.next_pull_due);
        if schedule.indexed_bucket != Some(bucket) {
            let entry = Item {
                pk: due_pk(bucket),
                sk: integration.into(),
                doc: "{}".into(),
                ..Item::default()
            };
            self.table.put(entry, Cond::Always, now_s).await?;
            if let Some(old) = schedule.indexed_bucket {
                self.table.delete(&due_pk(old), integration, None).await?;
            }
            schedule.indexed_bucket = Some(bucket);
        }
        Ok(true)
    }

    async fn due_entries(&self, bucket: i64) -> Result<Vec<DueEntry>, StoreError> {
        Ok(self
            .table
            .query(&due_pk(bucket), "", None, self.now_s())
            .await?
            .into_iter()
            .map(|item| DueEntry {
                bucket,
                integration: item.sk,
            })
            .collect())
    }

    async fn drop_due_entry(&self, entry: &DueEntry) -> Result<(), StoreError> {
        self.table
            .delete(&due_pk(entry.bucket), &entry.integration, None)
            .await?;
        Ok(())
    }

    async fn sweep_cursor(&self) -> Result<Option<i64>, StoreError> {
        let item = self.table.get(SWEEPER_PK, SWEEPER_SK, self.now_s()).await?;
        item.map(|i| from_doc::<SweepCursor>(&i).map(|c| c.bucket))
            .transpose()
    }

    async fn put_sweep_cursor(&self, bucket: i64) -> Result<(), StoreError> {
        let item = Item {
            pk: SWEEPER_PK.into(),
            sk: SWEEPER_SK.into(),
            doc: to_doc(&SweepCursor { bucket })?,
            ..Item::default()
        };
        self.table.put(item, Cond::Always, self.now_s()).await?;
        Ok(())
    }
}
