//! The CIN7 call budget: calls counted per integration and UTC day.

use super::{Store, StoreError, int_pk};
use async_trait::async_trait;

/// How long a day's count is kept.
const KEEP_S: i64 = 3 * 24 * 3600;

/// CIN7 calls per day.
#[async_trait]
pub trait CallBudget: Send + Sync {
    /// Adds `n` CIN7 calls to today's (UTC) count and returns the day's total.
    async fn count_calls(&self, integration: &str, n: i64) -> Result<i64, StoreError>;

    /// Today's (UTC) CIN7 call count so far (a read: no write).
    async fn calls_today(&self, integration: &str) -> Result<i64, StoreError>;
}

fn day_key(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("CALLS#{}", now.format("%Y-%m-%d"))
}

#[async_trait]
impl CallBudget for Store {
    async fn count_calls(&self, integration: &str, n: i64) -> Result<i64, StoreError> {
        let now = self.now();
        self.table
            .add(
                &int_pk(integration),
                &day_key(now),
                n,
                now.timestamp() + KEEP_S,
            )
            .await
    }

    async fn calls_today(&self, integration: &str) -> Result<i64, StoreError> {
        let now = self.now();
        let item = self
            .table
            .get(&int_pk(integration), &day_key(now), now.timestamp())
            .await?;
        Ok(item.map_or(0, |i| i.version))
    }
}
