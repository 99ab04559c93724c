//! Adapters that count what the fleet's secrets and queues would be billed for (the store's
//! counting table is `integration_tests::recording::CountingTable`, which the tests use too): a
//! [`SecretSource`] that caches per secret for a TTL on the simulated clock as Secrets
//! Manager's adapter does and counts each `GetSecretValue`, a [`JobQueue`] counting SQS send
//! requests, and a log writer counting bytes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared::clock::Clock;
use shared::queue::{JobQueue, MAX_SEND_BATCH, Outgoing, QueueError};
use shared::secrets::{SecretError, SecretSource, SecretString, resolve, split_reference};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
