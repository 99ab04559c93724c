//! Adapters that pass every call on and record which port operation it was, as the IAM action
//! the AWS adapter of that port calls for it (each AWS adapter declares its actions; the
//! adapters' tests check the declarations against the emulator). A function's code path run
//! over these records exactly the actions it needs.

use async_trait::async_trait;
use shared::queue::sqs::SqsQueue;
use shared::queue::{JobQueue, Outgoing, QueueError};
use shared::secrets::aws::SecretsManagerSource;
use shared::secrets::{SecretError, SecretSource, SecretString};
use shared::store::dynamodb::DynamoTable;
use shared::store::{Cond, Item, StoreError, Table, TableOp};
use std::collections::BTreeSet;
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
