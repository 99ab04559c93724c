//! Adapters that pass every call on and record which port operation it was, as the IAM action
//! the AWS adapter of that port calls for it (each AWS adapter declares its actions; the
//! adapters' tests check the declarations against the emulator). A function's code path run
//! over these records exactly the actions it needs. [`CountingTable`] counts what DynamoDB would
//! bill instead: requests, capacity units, and writes by the kind of item written.

use async_trait::async_trait;
use shared::queue::sqs::SqsQueue;
use shared::queue::{JobQueue, Outgoing, QueueError};
use shared::secrets::aws::SecretsManagerSource;
use shared::secrets::{SecretError, SecretSource, SecretString};
use shared::store::dynamodb::DynamoTable;
use shared::store::{Cond, Item, StoreError, Table, TableOp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The IAM actions recorded so far, shared by the recording adapters of one world.
#[derive(Debug, Clone, Default)]
pub struct Actions(Arc<Mutex<BTreeSet<String>>>);

impl Actions {
    fn add(&self, actions: &[&str]) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.extend(actions.iter().map(|a| a.to_string()));
    }

    /// Forgets what was recorded (after a test's set-up).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Every action recorded since the last [`clear`](Self::clear).
    pub fn recorded(&self) -> BTreeSet<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A [`Table`] recording each operation as DynamoDB's actions for it.
pub struct RecordingTable {
    pub inner: Arc<dyn Table>,
    pub actions: Actions,
}

impl RecordingTable {
    fn record(&self, op: TableOp) {
        self.actions.add(DynamoTable::iam_actions(op));
    }
}

#[async_trait]
impl Table for RecordingTable {
    async fn get(&self, pk: &str, sk: &str, now_s: i64) -> Result<Option<Item>, StoreError> {
        self.record(TableOp::Get);
        self.inner.get(pk, sk, now_s).await
    }

    async fn put(&self, item: Item, cond: Cond, now_s: i64) -> Result<bool, StoreError> {
        self.record(TableOp::Put);
        self.inner.put(item, cond, now_s).await
    }

    async fn delete(&self, pk: &str, sk: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        self.record(TableOp::Delete);
        self.inner.delete(pk, sk, owner).await
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        state: Option<&str>,
        now_s: i64,
    ) -> Result<Vec<Item>, StoreError> {
        self.record(TableOp::Query);
        self.inner.query(pk, sk_prefix, state, now_s).await
    }

    async fn add(&self, pk: &str, sk: &str, n: i64, expires_at: i64) -> Result<i64, StoreError> {
        self.record(TableOp::Add);
        self.inner.add(pk, sk, n, expires_at).await
    }
}

/// A [`JobQueue`] recording each send as SQS's action for it.
pub struct RecordingQueue<Q> {
    pub inner: Q,
    pub actions: Actions,
}

#[async_trait]
impl<Q: JobQueue> JobQueue for RecordingQueue<Q> {
    async fn send(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        self.actions.add(&[SqsQueue::SEND_ACTION]);
        self.inner.send(messages).await
    }
}

/// A [`SecretSource`] recording each fetch as Secrets Manager's action for it.
pub struct RecordingSecrets<S> {
    pub inner: S,
    pub actions: Actions,
}

#[async_trait]
impl<S: SecretSource> SecretSource for RecordingSecrets<S> {
    async fn get(&self, reference: &str) -> Result<SecretString, SecretError> {
        self.actions.add(&[SecretsManagerSource::IAM_ACTION]);
        self.inner.get(reference).await
    }
}

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
