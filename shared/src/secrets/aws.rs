//! Secrets from AWS Secrets Manager: the reference is a secret's name or ARN, and the value
//! its `SecretString` (or, for `name#json_key`, that key of it as a JSON object). Values are
//! cached per secret for a TTL, so a warm container fetches each secret once per TTL however
//! many clients and keys it reads from it.

use super::{
    ExposeSecret, SecretError, SecretSource, SecretString, resolve, split_reference, with_key,
};
use crate::clock::{Clock, SystemClock};
use crate::store::Leases;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cached value and when it was fetched.
struct Cached {
    value: SecretString,
    at: DateTime<Utc>,
}

/// One reference's cache slot. Its async lock is held across a fetch, so concurrent gets of
/// one reference share a single `GetSecretValue`.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// A [`SecretSource`] on Secrets Manager with a per-reference cache.
pub struct SecretsManagerSource {
    client: Client,
    ttl: Duration,
    slots: Mutex<HashMap<String, Slot>>,
    fetches: AtomicU64,
    /// Tells the time the TTL is measured by.
    clock: Arc<dyn Clock>,
    /// Serializes this source's writes with every other writer's (see [`Self::with_writers`]).
    writers: Option<Writers>,
}

/// The store's secret leases and this writer's name in them.
struct Writers {
    leases: Arc<dyn Leases>,
    owner: String,
}

/// How long a writer holds a secret's lease (a read and a write take well under a second).
const WRITE_LEASE: Duration = Duration::from_secs(30);
/// The most a secret's value may hold (Secrets Manager's quota: 65,536 bytes).
pub const MAX_SECRET_BYTES: usize = 65_536;
/// How long a writer waits for another's lease on the same secret.
const WRITE_WAIT: Duration = Duration::from_secs(60);

impl std::fmt::Debug for SecretsManagerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately no values, and not even which references are cached.
        f.debug_struct("SecretsManagerSource")
            .field("ttl", &self.ttl)
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

fn detail<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(e).to_string()
}

impl SecretsManagerSource {
    /// The IAM action a fetch calls (`GetSecretValue`, checked against a Secrets Manager
    /// endpoint by the adapter's tests).
    pub const IAM_ACTION: &str = "secretsmanager:GetSecretValue";

    /// A source that keeps each value for `ttl` after fetching it.
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            slots: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
            clock: Arc::new(SystemClock),
            writers: None,
        }
    }

    /// The same source, holding the store's lease on a secret while it reads, changes and
    /// rewrites it ([`Leases::acquire_secret_lease`]): Secrets Manager has no conditional
    /// write, so two writers setting different keys of one shared secret at once would
    /// otherwise lose one. Every writer of a deployment (`secrets set`) sets this.
    pub fn with_writers(mut self, leases: Arc<dyn Leases>, owner: &str) -> Self {
        self.writers = Some(Writers {
            leases,
            owner: owner.to_string(),
        });
        self
    }

    /// The same source, telling time by `clock` (tests move a manual clock past the TTL).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many `GetSecretValue` calls have been made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn slot(&self, reference: &str) -> Slot {
        // A poisoned map is still a valid map: its entries are only ever inserted whole.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(reference.to_string()).or_default().clone()
    }

    async fn fetch(&self, reference: &str) -> Result<SecretString, SecretError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .get_secret_value()
            .secret_id(reference)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception())
                {
                    SecretError::NotFound {
                        reference: reference.to_string(),
                    }
                } else {
                    SecretError::Unavailable {
                        reference: reference.to_string(),
                        detail: detail(&e),
                    }
                }
            })?;
        match out.secret_string() {
            Some(v) if !v.is_empty() => Ok(SecretString::from(v)),
            _ => Err(SecretError::Empty {
                reference: reference.to_string(),
            }),
        }
    }

    /// Stores `value` under `reference` (`PutSecretValue`, or `CreateSecret` when there is no
    /// such secret yet) and caches it. For `name#json_key`, the secret's current JSON object
    /// is read and the key set in it, the other keys kept.
    pub async fn put(&self, reference: &str, value: &SecretString) -> Result<(), SecretError> {
        let name = split_reference(reference).0;
        let Some(writers) = &self.writers else {
            return self.read_and_put(reference, value).await;
        };
        let unavailable = |detail: String| SecretError::Unavailable {
            reference: name.to_string(),
            detail,
        };
        // Unique to this write: the lease's owner may renew it, and two writes of one process
        // (one source, shared) must still take turns.
        let owner = format!("{}/{}", writers.owner, uuid::Uuid::new_v4().simple());
        let waiting_since = tokio::time::Instant::now();
        while !writers
            .leases
            .acquire_secret_lease(name, &owner, WRITE_LEASE)
            .await
            .map_err(|e| unavailable(format!("the store's lease on it: {e}")))?
        {
            if waiting_since.elapsed() > WRITE_WAIT {
                return Err(unavailable(format!(
                    "another writer has held it for over {} s",
                    WRITE_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let written = self.read_and_put(reference, value).await;
        let released = writers.leases.release_secret_lease(name, &owner).await;
        if let Err(e) = released {
            // It lapses by itself after WRITE_LEASE.
            tracing::warn!(secret = name, error = %e, "could not give a secret's write lease back");
        }
        written
    }

    /// The write of [`Self::put`], once it may write.
    async fn read_and_put(&self, reference: &str, value: &SecretString) -> Result<(), SecretError> {
        let (name, key) = split_reference(reference);
        let whole = match key {
            None => value.clone(),
            Some(_) => {
                let current = match self.fetch(name).await {
                    Ok(v) => Some(v),
                    Err(SecretError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                with_key(reference, current.as_ref(), value)?
            }
        };
        let bytes = whole.expose_secret().len();
        if bytes > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge {
                reference: name.to_string(),
                bytes,
                limit: MAX_SECRET_BYTES,
            });
        }
        self.put_whole(name, &whole).await
    }

    async fn put_whole(&self, reference: &str, value: &SecretString) -> Result<(), SecretError> {
        let unavailable = |detail: String| SecretError::Unavailable {
            reference: reference.to_string(),
            detail,
        };
        let put = self
            .client
            .put_secret_value()
            .secret_id(reference)
            .secret_string(value.expose_secret())
            .send()
            .await;
        match put {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(reference)
                    .secret_string(value.expose_secret())
                    .send()
                    .await
                    .map_err(|e| unavailable(detail(&e)))?;
            }
            Err(e) => return Err(unavailable(detail(&e))),
        }
        let slot = self.slot(reference);
        *slot.lock().await = Some(Cached {
            value: value.clone(),
            at: self.clock.now(),
        });
        Ok(())
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn get(&self, reference: &str) -> Result<SecretString, SecretError> {
        let name = split_reference(reference).0;
        let slot = self.slot(name);
        let mut cached = slot.lock().await;
        let age = |c: &Cached| (self.clock.now() - c.at).to_std().unwrap_or_default();
        if let Some(c) = cached.as_ref()
            && age(c) < self.ttl
        {
            return resolve(reference, &c.value);
        }
        let value = self.fetch(name).await?;
        *cached = Some(Cached {
            value: value.clone(),
            at: self.clock.now(),
        });
        resolve(reference, &value)
    }

    fn forget(&self, reference: &str) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.remove(split_reference(reference).0);
    }
}
