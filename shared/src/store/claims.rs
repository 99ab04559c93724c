//! Idempotency claims, on the contract of the Powertools idempotency utility: a key is claimed
//! (held for a while, then open to take over, as after a crash), completed with its result, or
//! released after a failure.

use super::{COMPLETED, Cond, IN_PROGRESS, Item, Store, StoreError, int_pk, millis};
use async_trait::async_trait;
use std::time::Duration;

/// How long completed idempotency records are kept (DynamoDB TTL).
pub const IDEMPOTENCY_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

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

fn claim_sk(key: &str) -> String {
    format!("IDEM#{key}")
}

/// Idempotency claims.
#[async_trait]
pub trait Claims: Send + Sync {
    /// Claims a key for `owner`, held for `in_progress_for` (after which another worker may
    /// take it over, as after a crash).
    async fn claim(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
        in_progress_for: Duration,
    ) -> Result<Claim, StoreError>;

    /// Marks a claimed key done with its result; `false` when the claim had lapsed and been
    /// taken over (the result is then not stored).
    async fn complete(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
        result: &str,
    ) -> Result<bool, StoreError>;

    /// Releases a claim after a failure, so a retry can claim it at once.
    async fn release_claim(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
    ) -> Result<bool, StoreError>;

    /// The stored result of a completed claim, if the key is completed.
    async fn claim_result(
        &self,
        integration: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Forgets a claim whatever its state (the operator's replay of a finished job).
    async fn forget_claim(&self, integration: &str, key: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl Claims for Store {
    async fn claim(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
        in_progress_for: Duration,
    ) -> Result<Claim, StoreError> {
        let pk = int_pk(integration);
        let sk = claim_sk(key);
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

    async fn complete(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
        result: &str,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let item = Item {
            pk: int_pk(integration),
            sk: claim_sk(key),
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

    async fn release_claim(
        &self,
        integration: &str,
        key: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.table
            .delete(&int_pk(integration), &claim_sk(key), Some(owner))
            .await
    }

    async fn claim_result(
        &self,
        integration: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .table
            .get(&int_pk(integration), &claim_sk(key), self.now_s())
            .await?
            .filter(|i| i.state.as_deref() == Some(COMPLETED))
            .map(|i| i.doc))
    }

    async fn forget_claim(&self, integration: &str, key: &str) -> Result<(), StoreError> {
        self.table
            .delete(&int_pk(integration), &claim_sk(key), None)
            .await?;
        Ok(())
    }
}
