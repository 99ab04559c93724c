//! The cross-process rate window: the recent call times of one integration's calls to one
//! API, shared by every process and function through the store.
//!
//! The item holds the log compactly — the oldest grant's time and each grant's offset from it
//! in milliseconds ([`Log`]) — so a GoSweetSpot hour of a typical merchant (about a hundred
//! calls) stays under DynamoDB's 1 KB write unit, and a full one (999) under 8 KB instead of
//! 14 KB. A log written as a plain list of times (before) still reads.

use super::{Cond, Item, Store, StoreError, from_doc, int_pk, millis, to_doc};
use crate::rate_limit::{LimitError, RateLimiter, Window, wait_before};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Shared call windows.
#[async_trait]
pub trait RateWindows: Send + Sync {
    /// Takes one call from the shared window of `service` if every window has room; otherwise
    /// says how long to wait. Concurrent processes never both take the last slot.
    async fn try_acquire_rate(
        &self,
        integration: &str,
        service: &str,
        windows: &[Window],
    ) -> Result<Option<Duration>, StoreError>;
}

#[async_trait]
impl RateWindows for Store {
    async fn try_acquire_rate(
        &self,
        integration: &str,
        service: &str,
        windows: &[Window],
    ) -> Result<Option<Duration>, StoreError> {
        let pk = int_pk(integration);
        let sk = format!("RATE#{service}");
        let longest = windows.iter().map(|w| w.length).max().unwrap_or_default();
        // Optimistic concurrency on the window's version.
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
                Some(item) => from_doc::<Log>(item)?.times(),
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
                doc: to_doc(&Log::of(&log))?,
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

/// A window's log as stored: the first grant's time (ms since the epoch) and each grant's
/// offset from it, or (as written before) the times themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Log {
    Offsets { t0: i64, d: Vec<i64> },
    Times(Vec<i64>),
}

impl Log {
    /// The log of `times` (in order).
    fn of(times: &[i64]) -> Self {
        let t0 = times.first().copied().unwrap_or(0);
        Log::Offsets {
            t0,
            d: times.iter().map(|t| t - t0).collect(),
        }
    }

    /// The grants' times.
    fn times(self) -> Vec<i64> {
        match self {
            Log::Offsets { t0, d } => d.into_iter().map(|o| t0 + o).collect(),
            Log::Times(times) => times,
        }
    }
}

/// A [`RateLimiter`] whose window lives in the store, so every process and function of one
/// integration shares it (CIN7's limits hold per account and GoSweetSpot's per site, across
/// all of them). Within a process, callers are served in the order they asked.
pub struct StoreRateLimiter {
    windows_store: Arc<dyn RateWindows>,
    integration: String,
    service: &'static str,
    windows: Vec<Window>,
    turn: tokio::sync::Mutex<()>,
}

impl StoreRateLimiter {
    /// A limiter for one integration's calls to `service`.
    pub fn new(
        windows_store: Arc<dyn RateWindows>,
        integration: &str,
        service: &'static str,
        windows: Vec<Window>,
    ) -> Self {
        Self {
            windows_store,
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
                .windows_store
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_round_trips_compactly_and_reads_the_old_form() {
        let times: Vec<i64> = (0..100).map(|i| 1_764_612_000_000 + i * 36_000).collect();
        let doc = serde_json::to_string(&Log::of(&times)).unwrap();
        assert!(doc.len() < 800, "{} bytes", doc.len());
        let back: Log = serde_json::from_str(&doc).unwrap();
        assert_eq!(back.times(), times);
        let old: Log = serde_json::from_str(&serde_json::to_string(&times).unwrap()).unwrap();
        assert_eq!(old.times(), times);
        assert_eq!(Log::of(&[]).times(), Vec::<i64>::new());
    }
}
