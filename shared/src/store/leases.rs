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

    /// Takes (or renews) the lease that serializes the writes of one secret (by its name), so
    /// writers that read, change and rewrite a secret several integrations share never lose
    /// one another's keys; `false` while someone else holds it.
    async fn acquire_secret_lease(
        &self,
        secret: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives a secret's lease back (only its owner can).
    async fn release_secret_lease(&self, secret: &str, owner: &str) -> Result<bool, StoreError>;
}

fn secret_pk(secret: &str) -> String {
    format!("SECRET#{secret}")
}

impl Store {
    async fn take_lease(
        &self,
        pk: String,
        sk: String,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let until = now.timestamp_millis() + millis(ttl);
        let item = Item {
            pk,
            sk,
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
        self.take_lease(int_pk(integration), format!("LEASE#{name}"), owner, ttl)
            .await
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

    async fn acquire_secret_lease(
        &self,
        secret: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.take_lease(secret_pk(secret), "LEASE".into(), owner, ttl)
            .await
    }

    async fn release_secret_lease(&self, secret: &str, owner: &str) -> Result<bool, StoreError> {
        self.table
            .delete(&secret_pk(secret), "LEASE", Some(owner))
            .await
    }
}
