//! Single-flight leases: one holder at a time per integration and name.

use super::{Cond, IN_PROGRESS, Item, Store, StoreError, int_pk, millis};
use async_trait::async_trait;
use std::time::Duration;

/// Named leases.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes (or renews) the named lease for `ttl`; `false` while someone else holds it.
    async fn acquire_lease(
        &self,
        integration: &str,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives a lease back (only its owner can).
    async fn release_lease(
        &self,
        integration: &str,
        name: &str,
        owner: &str,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
impl Leases for Store {
    async fn acquire_lease(
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

    async fn release_lease(
        &self,
        integration: &str,
        name: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.table
            .delete(&int_pk(integration), &format!("LEASE#{name}"), Some(owner))
            .await
    }
}
