//! Adapters that count what the fleet's store, secrets and queues would be billed for: a
//! [`Table`] counting DynamoDB requests and their capacity units by item size (and each write by
//! the kind of item it wrote), a [`SecretSource`] that caches per secret for a TTL on the
//! simulated clock as Secrets Manager's adapter does and counts each `GetSecretValue`, and a
//! [`JobQueue`] counting SQS send requests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared::clock::Clock;
use shared::queue::{JobQueue, MAX_SEND_BATCH, Outgoing, QueueError};
use shared::secrets::{SecretError, SecretSource, SecretString, resolve, split_reference};
use shared::store::table::{Cond, Item, StoreError, Table};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes DynamoDB counts beyond the key and document: attribute names, numbers, the state and
/// owner (an estimate; DynamoDB bills by the item's size in its own encoding).
const ATTRIBUTE_OVERHEAD: usize = 60;

/// An item's billed size, estimated.
fn size(item: &Item) -> usize {
    item.pk.len()
        + item.sk.len()
        + item.doc.len()
        + item.owner.as_deref().map_or(0, str::len)
        + ATTRIBUTE_OVERHEAD
}

/// Write units of a write of `bytes` (one per KB, at least one).
fn write_units(bytes: usize) -> u64 {
    bytes.div_ceil(1024).max(1) as u64
}

/// Read units of a strongly consistent read of `bytes` (one per 4 KB, at least one).
fn read_units(bytes: usize) -> u64 {
    bytes.div_ceil(4096).max(1) as u64
}

/// The kind of item a key names: the sort key's text up to the first `#` (`RATE`, `LEASE`,
/// `ORDER`…), or the partition key's when the sort key is an id (the due index, `DUE`).
fn kind(pk: &str, sk: &str) -> String {
    let head = |k: &str| k.split(['#', '/']).next().unwrap_or(k).to_string();
    let sk_kind = head(sk);
    if sk_kind.chars().all(|c| c.is_ascii_uppercase()) {
        sk_kind
    } else {
        head(pk)
    }
}

/// DynamoDB requests and capacity units counted by [`CountingTable`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableCounts {
    pub reads: u64,
    pub writes: u64,
    pub read_units: u64,
    pub write_units: u64,
    /// Write requests by the kind of item written.
    pub writes_by_kind: BTreeMap<String, u64>,
    /// Write units by the kind of item written.
    pub write_units_by_kind: BTreeMap<String, u64>,
}

/// A table counting what DynamoDB would bill for each request passed to `inner`, except those
/// on the partition `excluded` (a one-off import left out of the per-merchant figures).
pub struct CountingTable {
    pub inner: Arc<dyn Table>,
    excluded: Option<String>,
    counts: Mutex<TableCounts>,
}

impl CountingTable {
    /// Counts over `inner`, leaving out requests on the partition `excluded`.
    pub fn new(inner: Arc<dyn Table>, excluded: Option<String>) -> Self {
        Self {
            inner,
            excluded,
            counts: Mutex::default(),
        }
    }

    fn counted(&self, pk: &str) -> bool {
        self.excluded.as_deref() != Some(pk)
    }

    /// What was counted so far.
    pub fn counts(&self) -> TableCounts {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn read(&self, bytes: usize) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.reads += 1;
        c.read_units += read_units(bytes);
    }

    fn write(&self, pk: &str, sk: &str, bytes: usize) {
        let units = write_units(bytes);
        let kind = kind(pk, sk);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.writes += 1;
        c.write_units += units;
        *c.writes_by_kind.entry(kind.clone()).or_default() += 1;
        *c.write_units_by_kind.entry(kind).or_default() += units;
    }
}

#[async_trait]
impl Table for CountingTable {
    async fn get(&self, pk: &str, sk: &str, now_s: i64) -> Result<Option<Item>, StoreError> {
        let got = self.inner.get(pk, sk, now_s).await?;
        if self.counted(pk) {
            self.read(got.as_ref().map_or(0, size));
        }
        Ok(got)
    }

    async fn put(&self, item: Item, cond: Cond, now_s: i64) -> Result<bool, StoreError> {
        // A refused conditional write is billed as a write too.
        if self.counted(&item.pk) {
            self.write(&item.pk, &item.sk, size(&item));
        }
        self.inner.put(item, cond, now_s).await
    }

    async fn delete(&self, pk: &str, sk: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        if self.counted(pk) {
            self.write(pk, sk, pk.len() + sk.len() + ATTRIBUTE_OVERHEAD);
        }
        self.inner.delete(pk, sk, owner).await
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        state: Option<&str>,
        now_s: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let items = self.inner.query(pk, sk_prefix, state, now_s).await?;
        if self.counted(pk) {
            self.read(items.iter().map(size).sum());
        }
        Ok(items)
    }

    async fn add(&self, pk: &str, sk: &str, n: i64, expires_at: i64) -> Result<i64, StoreError> {
        if self.counted(pk) {
            self.write(pk, sk, pk.len() + sk.len() + ATTRIBUTE_OVERHEAD);
        }
        self.inner.add(pk, sk, n, expires_at).await
    }
}

/// A secret source that keeps each secret for `ttl` of the simulated clock, as
/// `SecretsManagerSource` does, and counts the fetches (each a `GetSecretValue`) but those of
/// the secret `excluded`.
pub struct CountingSecrets<S> {
    inner: S,
    excluded: Option<String>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, (SecretString, DateTime<Utc>)>>,
    fetches: AtomicU64,
}

impl<S> CountingSecrets<S> {
    /// Caches `inner`'s secrets for `ttl` by `clock`, not counting the secret `excluded`.
    pub fn new(inner: S, ttl: Duration, clock: Arc<dyn Clock>, excluded: Option<String>) -> Self {
        Self {
            inner,
            excluded,
            ttl,
            clock,
            cache: Mutex::default(),
            fetches: AtomicU64::new(0),
        }
    }

    /// `GetSecretValue` calls so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl<S: SecretSource> SecretSource for CountingSecrets<S> {
    async fn get(&self, reference: &str) -> Result<SecretString, SecretError> {
        let name = split_reference(reference).0;
        let now = self.clock.now();
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .filter(|(_, at)| (now - *at).to_std().unwrap_or_default() < self.ttl)
            .map(|(v, _)| v.clone());
        let whole = match cached {
            Some(v) => v,
            None => {
                if self.excluded.as_deref() != Some(name) {
                    self.fetches.fetch_add(1, Ordering::Relaxed);
                }
                let v = self.inner.get(name).await?;
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_string(), (v.clone(), now));
                v
            }
        };
        resolve(reference, &whole)
    }

    fn forget(&self, reference: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(split_reference(reference).0);
    }
}

/// A queue counting SQS send requests (`SendMessageBatch`, up to 10 messages each), but those
/// of the integration `excluded`.
pub struct CountingQueue<Q> {
    pub inner: Q,
    excluded: Option<String>,
    requests: AtomicU64,
}

impl<Q> CountingQueue<Q> {
    /// Counts sends to `inner`, but the integration `excluded`'s.
    pub fn new(inner: Q, excluded: Option<String>) -> Self {
        Self {
            inner,
            excluded,
            requests: AtomicU64::new(0),
        }
    }

    /// Send requests so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl<Q: JobQueue> JobQueue for CountingQueue<Q> {
    async fn send(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        let counted = messages
            .iter()
            .filter(|m| self.excluded.as_deref() != Some(m.integration_id.as_str()))
            .count();
        self.requests
            .fetch_add(counted.div_ceil(MAX_SEND_BATCH) as u64, Ordering::Relaxed);
        self.inner.send(messages).await
    }
}

/// Bytes the process has logged through [`LogBytes`].
static LOGGED: AtomicU64 = AtomicU64::new(0);

/// Bytes logged so far through [`LogBytes`] (what CloudWatch Logs would ingest of them).
pub fn logged_bytes() -> u64 {
    LOGGED.load(Ordering::Relaxed)
}

/// A log writer that counts the bytes it is given and keeps none of them: the fleet bench's
/// `tracing` output, measured as the functions would log it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogBytes;

impl std::io::Write for LogBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGGED.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_dynamodbs_rounding() {
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
        assert_eq!(write_units(14 * 1024), 14);
        assert_eq!(read_units(4096), 1);
        assert_eq!(read_units(4097), 2);
        assert_eq!(kind("INT#acme", "RATE#cin7"), "RATE");
        assert_eq!(kind("INT#acme", "LEASE"), "LEASE");
        assert_eq!(kind("DUE#2026-11-30T20:45", "acme-nz"), "DUE");
    }
}
