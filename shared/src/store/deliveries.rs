//! The webhook's delivery audit: each delivery and what came of it, kept 30 days.

use super::{Cond, Item, Store, StoreError, int_pk, to_doc};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a delivery's audit is kept.
const KEEP_S: i64 = 30 * 24 * 3600;

/// A webhook delivery, kept for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAudit {
    pub at: DateTime<Utc>,
    /// SHA-256 (hex) of the raw body.
    pub body_sha256: String,
    pub shipments: usize,
    pub queued: usize,
    pub ignored: usize,
    pub duplicates: usize,
    /// The ignored shipments by reason code.
    #[serde(default)]
    pub ignored_reasons: BTreeMap<String, usize>,
    /// `accepted`, or why it was refused.
    pub outcome: String,
}

/// The delivery audit.
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// Records a webhook delivery for audit; kept 30 days.
    async fn record_delivery(
        &self,
        integration: &str,
        audit: &DeliveryAudit,
    ) -> Result<(), StoreError>;

    /// An integration's recorded webhook deliveries, oldest first.
    async fn list_deliveries(&self, integration: &str) -> Result<Vec<DeliveryAudit>, StoreError>;
}

#[async_trait]
impl Deliveries for Store {
    async fn record_delivery(
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
            expires_at: Some(self.now_s() + KEEP_S),
            ..Item::default()
        };
        self.table.put(item, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    async fn list_deliveries(&self, integration: &str) -> Result<Vec<DeliveryAudit>, StoreError> {
        self.query_docs(integration, "DELIVERY#").await
    }
}
