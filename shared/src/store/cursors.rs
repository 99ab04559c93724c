//! Where the next pull and the next reconcile start.

use super::{Store, StoreError};
use crate::pull::paging::PageStart;
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const PULL: &str = "CURSOR";
const RECONCILE: &str = "RECONCILE";

/// Where the next pull starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullCursor {
    /// The latest `modifiedDate` handled, in the form CIN7 wrote it (a cursor saved before
    /// forms were kept reads as UTC): the next pull reads from it, less the overlap, written in
    /// the same form.
    pub modified_since: Timestamp,
    /// When the cursor was last saved.
    pub saved_at: DateTime<Utc>,
    /// Where the next pull resumes when the last one stopped at the end of its slice with more
    /// to read (the page it would have read next); `None` after a pull that read to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<PageStart>,
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

/// The pull's and the reconcile's cursors, one each per integration.
#[async_trait]
pub trait Cursors: Send + Sync {
    /// The pull cursor, if a pull has saved one.
    async fn get_cursor(&self, integration: &str) -> Result<Option<PullCursor>, StoreError>;

    /// Saves the pull cursor.
    async fn put_cursor(&self, integration: &str, cursor: &PullCursor) -> Result<(), StoreError>;

    /// The reconcile cursor, if a reconcile has saved one.
    async fn get_reconcile_cursor(
        &self,
        integration: &str,
    ) -> Result<Option<ReconcileCursor>, StoreError>;

    /// Saves the reconcile cursor.
    async fn put_reconcile_cursor(
        &self,
        integration: &str,
        cursor: &ReconcileCursor,
    ) -> Result<(), StoreError>;
}

#[async_trait]
impl Cursors for Store {
    async fn get_cursor(&self, integration: &str) -> Result<Option<PullCursor>, StoreError> {
        self.get_doc(integration, PULL).await
    }

    async fn put_cursor(&self, integration: &str, cursor: &PullCursor) -> Result<(), StoreError> {
        self.put_doc(integration, PULL, cursor).await
    }

    async fn get_reconcile_cursor(
        &self,
        integration: &str,
    ) -> Result<Option<ReconcileCursor>, StoreError> {
        self.get_doc(integration, RECONCILE).await
    }

    async fn put_reconcile_cursor(
        &self,
        integration: &str,
        cursor: &ReconcileCursor,
    ) -> Result<(), StoreError> {
        self.put_doc(integration, RECONCILE, cursor).await
    }
}
