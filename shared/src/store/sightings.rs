//! Consignment sightings: each consignment the webhook or the reconcile has queued for
//! write-back, so it is queued once.

use super::{Cond, Item, Store, StoreError, int_pk};
use async_trait::async_trait;

fn sighting_sk(connote: &str) -> String {
    format!("CONSIGNMENT#{connote}")
}

/// Consignments already queued.
#[async_trait]
pub trait Sightings: Send + Sync {
    /// Whether this consignment has already been queued.
    async fn consignment_seen(&self, integration: &str, connote: &str) -> Result<bool, StoreError>;

    /// Marks a consignment as queued, with what was recorded of it; `false` when it already
    /// was.
    async fn mark_consignment_seen(
        &self,
        integration: &str,
        connote: &str,
        doc: &str,
    ) -> Result<bool, StoreError>;

    /// What was recorded when the consignment was queued (its packing slip, order and source).
    async fn consignment(
        &self,
        integration: &str,
        connote: &str,
    ) -> Result<Option<String>, StoreError>;
}

#[async_trait]
impl Sightings for Store {
    async fn consignment_seen(&self, integration: &str, connote: &str) -> Result<bool, StoreError> {
        Ok(self.consignment(integration, connote).await?.is_some())
    }

    async fn mark_consignment_seen(
        &self,
        integration: &str,
        connote: &str,
        doc: &str,
    ) -> Result<bool, StoreError> {
        let item = Item {
            pk: int_pk(integration),
            sk: sighting_sk(connote),
            doc: doc.to_string(),
            ..Item::default()
        };
        self.table.put(item, Cond::Absent, self.now_s()).await
    }

    async fn consignment(
        &self,
        integration: &str,
        connote: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .table
            .get(&int_pk(integration), &sighting_sk(connote), self.now_s())
            .await?
            .map(|i| i.doc))
    }
}
