//! Wiring shared by the functions and local mode: per-integration API clients, built once per
//! container (or process) from the settings and their secrets, and rebuilt only when the
//! settings that shape them change.

use crate::cin7::{Cin7Client, Cin7Config};
use crate::clock::{Clock, SystemClock};
use crate::gss::{GssClient, GssConfig};
use crate::http::{ApiError, RetryPolicy, Service};
use crate::rate_limit::{RateLimiter, WindowLimiter, cin7_windows, gss_windows, pull_gss_share};
use crate::secrets::{SecretError, SecretSource};
use crate::settings::IntegrationSettings;
use crate::store::{RateWindows, StoreRateLimiter};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The clients of one integration.
pub struct IntegrationClients {
    pub cin7: Cin7Client,
    pub gss: GssClient,
    /// The pacing of every call to CIN7 for this integration (the client's own limiter).
    pub cin7_pacing: Arc<dyn RateLimiter>,
    /// The pull's share of GoSweetSpot's window ([`crate::rate_limit::pull_gss_share`]).
    pub pull_gss_share: Arc<dyn RateLimiter>,
}

impl std::fmt::Debug for IntegrationClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationClients")
            .field("cin7", &self.cin7)
            .field("gss", &self.gss)
            .finish_non_exhaustive()
    }
}

/// Why an integration's clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// How an integration's calls to CIN7 and GoSweetSpot are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// One window per integration and API, shared through the store by every process and
    /// function (production: the pull and the write-back are separate Lambdas, and both APIs
    /// count calls per account or site, not per caller).
    Shared,
    /// In this process only (a single local process).
    InProcess,
}

/// Gives the handlers an integration's clients.
#[async_trait]
pub trait ClientProvider: Send + Sync {
    /// The clients for an integration, as its settings shape them.
    async fn clients(
        &self,
        settings: &IntegrationSettings,
    ) -> Result<Arc<IntegrationClients>, ClientError>;
}

/// Builds and caches clients per integration: the [`ClientProvider`] of the functions and
/// local mode. Every integration's clients share one HTTP client per API (one connection pool
/// and one root-certificate store per process; credentials go on each request). An entry is
/// kept for a TTL (the secrets cache's, `SECRETS_CACHE_SECONDS`), rebuilt when the settings
/// that shape it change, and dropped — its secrets read again — as soon as either API has
/// answered 401 or 403 to it, so a rotated key is picked up without a cold start. Pacing
/// outlives the entries: a rebuilt client keeps its integration's windows.
pub struct ClientCache {
    windows_store: Arc<dyn RateWindows>,
    secrets: Arc<dyn SecretSource>,
    pacing: Pacing,
    timeout: Duration,
    retry: RetryPolicy,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    cin7_windows: Vec<crate::rate_limit::Window>,
    gss_windows: Vec<crate::rate_limit::Window>,
    pull_gss_share: Vec<crate::rate_limit::Window>,
    cin7_http: OnceLock<reqwest::Client>,
    gss_http: OnceLock<reqwest::Client>,
    cache: Mutex<HashMap<String, Cached>>,
    limiters: Mutex<HashMap<String, Limiters>>,
}

/// One integration's cached clients.
struct Cached {
    fingerprint: String,
    built: DateTime<Utc>,
    clients: Arc<IntegrationClients>,
}

/// One integration's pacing.
#[derive(Clone)]
struct Limiters {
    cin7: Arc<dyn RateLimiter>,
    gss: Arc<dyn RateLimiter>,
    pull_gss_share: Arc<dyn RateLimiter>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("pacing", &self.pacing)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What shapes an integration's clients; a change rebuilds them.
fn fingerprint(s: &IntegrationSettings) -> String {
    [
        s.cin7.base_url.as_str(),
        s.cin7.api_username.as_str(),
        s.cin7.api_key.0.as_str(),
        s.gss.base_url.as_str(),
        s.gss.site_id.as_str(),
        s.gss.access_key.0.as_str(),
        s.gss.support_email.as_str(),
    ]
    .join("\u{1f}")
}

/// How long a cache keeps an integration's clients unless told otherwise.
const DEFAULT_TTL: Duration = Duration::from_secs(300);

impl ClientCache {
    /// A cache resolving secrets through `secrets`; with [`Pacing::Shared`], the windows live
    /// in `windows_store`.
    pub fn new(
        windows_store: Arc<dyn RateWindows>,
        secrets: Arc<dyn SecretSource>,
        pacing: Pacing,
    ) -> Self {
        Self {
            windows_store,
            secrets,
            pacing,
            timeout: Duration::from_secs(20),
            retry: RetryPolicy::default(),
            ttl: DEFAULT_TTL,
            clock: Arc::new(SystemClock),
            cin7_windows: cin7_windows(),
            gss_windows: gss_windows(),
            pull_gss_share: pull_gss_share(),
            cin7_http: OnceLock::new(),
            gss_http: OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// A Lambda function's cache: every integration's calls paced through the windows the
    /// store shares across functions (the pull and the write-back call the same APIs).
    pub fn shared(windows_store: Arc<dyn RateWindows>, secrets: Arc<dyn SecretSource>) -> Self {
        Self::new(windows_store, secrets, Pacing::Shared)
    }

    /// Overrides the request timeout and retry policy (tests use short ones). Set before the
    /// first client is built: the HTTP clients are built once.
    pub fn with_http(mut self, timeout: Duration, retry: RetryPolicy) -> Self {
        self.timeout = timeout;
        self.retry = retry;
        self
    }

    /// Keeps each integration's clients (and the secrets in them) for `ttl`, telling time by
    /// `clock`.
    pub fn with_ttl(mut self, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        self.ttl = ttl;
        self.clock = clock;
        self
    }

    /// Overrides CIN7's pacing windows (tests compress time with these).
    pub fn with_cin7_windows(mut self, windows: Vec<crate::rate_limit::Window>) -> Self {
        self.cin7_windows = windows;
        self
    }

    /// Overrides GoSweetSpot's pacing windows and the pull's share of them (tests compress
    /// time with these).
    pub fn with_gss_windows(
        mut self,
        windows: Vec<crate::rate_limit::Window>,
        pull_share: Vec<crate::rate_limit::Window>,
    ) -> Self {
        self.gss_windows = windows;
        self.pull_gss_share = pull_share;
        self
    }

    /// The secret source this cache resolves through.
    pub fn secrets(&self) -> &Arc<dyn SecretSource> {
        &self.secrets
    }

    /// How many integrations' clients are cached.
    pub fn cached_integrations(&self) -> usize {
        lock(&self.cache).len()
    }

    /// The process's HTTP client for `service`, built on first use.
    fn http(&self, service: Service) -> Result<reqwest::Client, ApiError> {
        let cell = match service {
            Service::Cin7 => &self.cin7_http,
            Service::Gss => &self.gss_http,
        };
        if let Some(http) = cell.get() {
            return Ok(http.clone());
        }
        let built = crate::http::client(service, self.timeout)?;
        Ok(cell.get_or_init(|| built).clone())
    }

    /// The pacing of one integration's calls to `service` under `windows`.
    fn limiter(
        &self,
        settings: &IntegrationSettings,
        service: &'static str,
        windows: Vec<crate::rate_limit::Window>,
    ) -> Arc<dyn RateLimiter> {
        match self.pacing {
            Pacing::Shared => Arc::new(StoreRateLimiter::new(
                self.windows_store.clone(),
                &settings.id,
                service,
                windows,
            )),
            Pacing::InProcess => Arc::new(WindowLimiter::new(windows)),
        }
    }

    /// The integration's pacing, made on first use and kept for the process's life.
    fn limiters(&self, settings: &IntegrationSettings) -> Limiters {
        lock(&self.limiters)
            .entry(settings.id.clone())
            .or_insert_with(|| Limiters {
                cin7: self.limiter(settings, "cin7", self.cin7_windows.clone()),
                gss: self.limiter(settings, "gss", self.gss_windows.clone()),
                pull_gss_share: Arc::new(WindowLimiter::new(self.pull_gss_share.clone())),
            })
            .clone()
    }

    /// The cached clients, if still good for these settings: same fingerprint, within the
    /// TTL, and no 401/403 since they were built (then the secrets are read again).
    fn cached(
        &self,
        settings: &IntegrationSettings,
        print: &str,
    ) -> Option<Arc<IntegrationClients>> {
        let mut cache = lock(&self.cache);
        let entry = cache.get(&settings.id)?;
        let age = (self.clock.now() - entry.built)
            .to_std()
            .unwrap_or_default();
        let rejected =
            entry.clients.cin7.credentials_rejected() || entry.clients.gss.credentials_rejected();
        if entry.fingerprint == print && age < self.ttl && !rejected {
            return Some(entry.clients.clone());
        }
        if rejected {
            tracing::warn!(integration = %settings.id, "an API refused the credentials; reading the secrets again");
            self.secrets.forget(&settings.cin7.api_key.0);
            self.secrets.forget(&settings.gss.access_key.0);
        }
        cache.remove(&settings.id);
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map is still a valid map: its entries are only ever inserted whole.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl ClientProvider for ClientCache {
    /// The clients for an integration, built on first use and rebuilt as [`ClientCache`] says.
    async fn clients(
        &self,
        settings: &IntegrationSettings,
    ) -> Result<Arc<IntegrationClients>, ClientError> {
        let print = fingerprint(settings);
        if let Some(clients) = self.cached(settings, &print) {
            return Ok(clients);
        }
        let cin7_key = self.secrets.get(&settings.cin7.api_key.0).await?;
        let gss_key = self.secrets.get(&settings.gss.access_key.0).await?;
        let limiters = self.limiters(settings);
        let clients = Arc::new(IntegrationClients {
            cin7: Cin7Client::new(Cin7Config {
                base_url: settings.cin7.base_url.clone(),
                username: settings.cin7.api_username.clone(),
                api_key: cin7_key,
                http: self.http(Service::Cin7)?,
                retry: self.retry,
                limiter: limiters.cin7.clone(),
            })?,
            cin7_pacing: limiters.cin7,
            pull_gss_share: limiters.pull_gss_share,
            gss: GssClient::new(GssConfig {
                base_url: settings.gss.base_url.clone(),
                site_id: settings.gss.site_id.clone(),
                access_key: gss_key,
                support_email: settings.gss.support_email.clone(),
                http: self.http(Service::Gss)?,
                retry: self.retry,
                limiter: limiters.gss,
            })?,
        });
        lock(&self.cache).insert(
            settings.id.clone(),
            Cached {
                fingerprint: print,
                built: self.clock.now(),
                clients: clients.clone(),
            },
        );
        Ok(clients)
    }
}

/// The owner name of this process's leases and claims: `<role>-<random 128-bit id>`, and the
/// Lambda log stream's name when there is one (so an operator can find the container's logs).
/// Unique per process start: a PID is unique on one machine only, and Lambda's execution
/// environments are separate microVMs whose bootstrap typically runs under the same small PID,
/// so owners derived from PIDs let two containers share one lease or claim. Build it once at
/// start-up.
pub fn process_owner(role: &str) -> String {
    let id = uuid::Uuid::new_v4().simple();
    match std::env::var("AWS_LAMBDA_LOG_STREAM_NAME") {
        Ok(stream) if !stream.trim().is_empty() => format!("{role}-{id}-{}", stream.trim()),
        _ => format!("{role}-{id}"),
    }
}

/// The instant a Lambda invocation must have answered by, from its deadline in epoch
/// milliseconds and the time `clock` tells.
pub fn deadline_from_epoch_ms(deadline_ms: u64, clock: &dyn Clock) -> tokio::time::Instant {
    let now_ms = u64::try_from(clock.now().timestamp_millis()).unwrap_or_default();
    tokio::time::Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// What a Lambda function declares about itself, next to its `main.rs`: the AWS actions its
/// code path calls and the environment its `Config` reads. A test of each function's code path
/// (over adapters that record what they call) checks the actions, and the template test grants
/// and sets exactly what is declared.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    /// The IAM actions the function's own code calls (each adapter declares the actions of its
    /// operations: `DynamoTable::iam_actions`, `SqsQueue::SEND_ACTION`,
    /// `SecretsManagerSource::IAM_ACTION`).
    pub iam_actions: &'static [&'static str],
    /// The IAM actions Lambda's event source mapping calls with the function's role.
    pub event_source_actions: &'static [&'static str],
    /// The environment variables its `Config` reads.
    pub env: &'static [EnvVar],
}

/// One environment variable a function's `Config` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    /// The value the code takes when it is not set; `None` when it must be set.
    pub default: Option<&'static str>,
}

/// The state table's name: every function reads it.
pub const TABLE_NAME: EnvVar = EnvVar {
    name: "TABLE_NAME",
    default: None,
};

/// The write-back queue's URL: the functions that send to it read it.
pub const WRITE_BACK_QUEUE_URL: EnvVar = EnvVar {
    name: "WRITE_BACK_QUEUE_URL",
    default: None,
};

/// How long a secret's value is cached, in seconds: every function reads it.
pub const SECRETS_CACHE_SECONDS: EnvVar = EnvVar {
    name: "SECRETS_CACHE_SECONDS",
    default: Some("300"),
};

/// Whether EMF metrics carry the integration as a dimension (a metric per merchant: off by
/// default, see [`crate::metrics`]): every function reads it.
pub const METRICS_PER_INTEGRATION: EnvVar = EnvVar {
    name: "METRICS_PER_INTEGRATION",
    default: Some("false"),
};

/// [`SECRETS_CACHE_SECONDS`]'s default, for a `Config` field's `#[serde(default = …)]`.
pub fn default_secrets_cache_seconds() -> u64 {
    300
}

/// A function's environment that does not make its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable the function needs is not set.
    #[error("environment variable {0} is not set")]
    Missing(String),
    /// A variable is set but cannot be read as what it configures.
    #[error("invalid environment configuration: {0}")]
    Invalid(String),
}

/// Reads a function's typed configuration from the environment; a missing or malformed
/// variable is named in the error.
pub fn config_from_env<T: serde::de::DeserializeOwned>() -> Result<T, ConfigError> {
    envy::from_env::<T>().map_err(|e| match e {
        envy::Error::MissingValue(field) => ConfigError::Missing(field.to_uppercase()),
        envy::Error::Custom(msg) => ConfigError::Invalid(msg),
    })
}

/// Reports an initialisation failure to the Lambda Runtime API (`/runtime/init/error`), so
/// Lambda shows the message, and returns it as the error to exit with. Outside Lambda (no
/// `AWS_LAMBDA_RUNTIME_API`) it only returns the message.
pub async fn init_failed(message: String) -> String {
    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") {
        let url = format!("http://{api}/2018-06-01/runtime/init/error");
        let body = serde_json::json!({"errorMessage": message, "errorType": "Runtime.InitError"});
        let sent = reqwest::Client::new()
            .post(url)
            .header("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
            .json(&body)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Err(e) = sent {
            eprintln!("could not report the init error: {e}");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_unique_per_start_and_name_their_role() {
        let a = process_owner("order-pull");
        let b = process_owner("order-pull");
        assert_ne!(a, b);
        assert!(a.starts_with("order-pull-"), "{a}");
        let id = a.trim_start_matches("order-pull-");
        assert_eq!(id.len(), 32, "128 bits in hex: {id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
