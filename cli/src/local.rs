//! Local mode: the same core on one machine — the embedded store and queues, the pull worker
//! over the embedded pull queue (each integration's next pull a delayed message, as in AWS)
//! with the sweeper every minute, a local HTTP listener for the webhook (same route, same
//! answers as the Lambda), and a write-back worker. Shuts down gracefully: in-flight work
//! finishes, and a restart resumes from the store.

use anyhow::Context;
use serde::Deserialize;
use shared::app::{ClientCache, Pacing};
use shared::clock::SystemClock;
use shared::metrics::LogMetrics;
use shared::pull::handler::{PullConfig, PullPorts, PullRequest, handle as pull};
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{JobSource, QueuedJob, Received};
use shared::schedule::{
    PullKind, SweepConfig, SweepPorts, WorkerConfig, WorkerPorts, handle_batch, seed, sweep,
};
use shared::secrets::SecretSource;
use shared::settings::IntegrationSettings;
use shared::store::Store;
use shared::store::prelude::*;
use shared::webhook::router::{WebhookState, router};
use shared::writeback::handler::{WriteBackConfig, WriteBackPorts, handle as write_back};
use shared::writeback::{DEFAULT_SHOPIFY_TEMPLATE, HttpShopifyTrigger};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The local-mode configuration file (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The embedded store (and queue) file.
    #[serde(default = "default_store")]
    pub store: PathBuf,
    /// Where the webhook listener binds.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// How long a failed write-back waits before it is retried.
    #[serde(default = "default_visibility")]
    pub write_back_retry_seconds: u64,
    /// How long a write-back claim holds before a restarted worker may take it over (after a
    /// crash, jobs in flight wait this long).
    #[serde(default = "default_claim_hold")]
    pub claim_hold_seconds: u64,
    /// The Shopify trigger link template (`{id}`, `{order_id}`).
    #[serde(default = "default_template")]
    pub shopify_trigger_url_template: String,
    /// The integrations served (saved to the store at start).
    #[serde(default)]
    pub integrations: Vec<IntegrationSettings>,
}

fn default_store() -> PathBuf {
    "cin7-gss.sqlite3".into()
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}
fn default_visibility() -> u64 {
    30
}
fn default_claim_hold() -> u64 {
    30
}
fn default_template() -> String {
    DEFAULT_SHOPIFY_TEMPLATE.into()
}

impl LocalConfig {
    /// Reads and validates a configuration file.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Self =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        for s in &config.integrations {
            s.validate()
                .with_context(|| format!("integration {:?} in {}", s.id, path.display()))?;
        }
        Ok(config)
    }
}

/// A running local mode.
pub struct LocalRuntime {
    pub addr: SocketAddr,
    pub store: Store,
    clients: Arc<ClientCache>,
    queue: EmbeddedQueue,
    owner: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How often local mode's sweeper runs.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The sweeper's ports over local mode's store and pull queue.
fn sweep_ports<'a>(store: &'a Store, pulls: &'a EmbeddedQueue) -> SweepPorts<'a> {
    SweepPorts {
        integrations: store,
        schedules: store,
        pulls,
        clock: &SystemClock,
    }
}

/// The next non-empty batch of up to `max` messages, waiting for one; `None` once asked to
/// stop.
async fn next_batch(
    queue: &EmbeddedQueue,
    max: usize,
    visibility: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Option<Vec<Received>> {
    loop {
        if *stop.borrow() {
            return None;
        }
        match queue.receive(max, visibility).await {
            Ok(r) if !r.is_empty() => return Some(r),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "queue unavailable"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Acknowledges the received messages that did not fail.
async fn acknowledge(queue: &EmbeddedQueue, received: &[Received], failed: &[String]) {
    for r in received.iter().filter(|r| !failed.contains(&r.message_id)) {
        if let Err(e) = queue.ack(&r.receipt).await {
            tracing::error!(error = %e, message_id = %r.message_id, "could not acknowledge");
        }
    }
}

/// The pull's ports over local mode's store, queue and clients.
fn pull_ports<'a>(
    store: &'a Store,
    clients: &'a ClientCache,
    queue: &'a EmbeddedQueue,
) -> PullPorts<'a> {
    PullPorts {
        integrations: store,
        store,
        clients,
        queue,
        clock: &SystemClock,
        metrics: &LogMetrics,
    }
}

impl LocalRuntime {
    /// Opens the store, saves the configured integrations and starts each one's pulls, and
    /// starts the listener, the pull worker, the sweeper and the write-back worker.
    pub async fn start(
        config: &LocalConfig,
        secrets: Arc<dyn SecretSource>,
    ) -> anyhow::Result<Self> {
        let table = shared::store::sqlite::SqliteTable::open(&config.store)?;
        let store = Store::new(Arc::new(table), Arc::new(shared::clock::SystemClock));
        let queue = EmbeddedQueue::open(&config.store, crate::backend::LOCAL_MAX_RECEIVES)?;
        let pulls =
            EmbeddedQueue::open_pulls(&config.store, crate::backend::LOCAL_PULL_MAX_RECEIVES)?;
        for s in &config.integrations {
            store.put_integration(s).await?;
            if s.enabled {
                seed(sweep_ports(&store, &pulls), &s.id, PullKind::Seed).await?;
            }
        }
        let clients = Arc::new(ClientCache::new(
            Arc::new(store.clone()),
            secrets.clone(),
            Pacing::Shared,
        ));
        let (stop, stopped) = watch::channel(false);
        // One owner for this process's leases and claims, unique to this start.
        let owner = shared::app::process_owner("serve");
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the webhook listener to {}", config.listen))?;
        let addr = listener.local_addr()?;
        let app = router(WebhookState {
            store: Arc::new(store.clone()),
            secrets: secrets.clone(),
            queue: Arc::new(queue.clone()),
            clock: Arc::new(SystemClock),
            metrics: Arc::new(LogMetrics),
        });
        let mut tasks = Vec::new();
        let mut stop_listener = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_listener.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "webhook listener stopped");
            }
        }));

        let (store_p, clients_p, queue_p, pulls_p, mut stop_p) = (
            store.clone(),
            clients.clone(),
            queue.clone(),
            pulls.clone(),
            stopped.clone(),
        );
        let runtime_clients = clients.clone();
        let worker_config = WorkerConfig {
            concurrency: 4,
            margin: Duration::from_secs(5),
            owner: owner.clone(),
            ..WorkerConfig::default()
        };
        tasks.push(tokio::spawn(async move {
            // Received pull messages stay hidden this long: a pull killed with the process is
            // tried again after it.
            let visibility = Duration::from_secs(300);
            while let Some(received) = next_batch(&pulls_p, 10, visibility, &mut stop_p).await {
                let worker = WorkerPorts::over(
                    &store_p,
                    clients_p.as_ref(),
                    &queue_p,
                    &pulls_p,
                    &SystemClock,
                    &LogMetrics,
                );
                let batch = received.iter().map(QueuedJob::from).collect();
                let failed = handle_batch(batch, worker, &worker_config, None).await;
                acknowledge(&pulls_p, &received, &failed).await;
            }
        }));
        let (store_s, pulls_s, mut stop_s) = (store.clone(), pulls.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop_s.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(SWEEP_EVERY) => {}
                }
                if let Err(e) = sweep(sweep_ports(&store_s, &pulls_s), SweepConfig::default()).await
                {
                    tracing::error!(error = %e, "sweep failed");
                }
            }
        }));

        let shopify =
            HttpShopifyTrigger::new(Duration::from_secs(10)).map_err(anyhow::Error::msg)?;
        let wb = WriteBackConfig {
            shopify_template: config.shopify_trigger_url_template.clone(),
            claim_hold: Duration::from_secs(config.claim_hold_seconds.max(1)),
            max_receives: crate::backend::LOCAL_MAX_RECEIVES,
            ..WriteBackConfig::new(owner.clone())
        };
        let visibility = Duration::from_secs(config.write_back_retry_seconds.max(1));
        let (store_w, queue_w, mut stop_w) = (store.clone(), queue.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(received) = next_batch(&queue_w, 100, visibility, &mut stop_w).await {
                let batch: Vec<QueuedJob> = received.iter().map(QueuedJob::from).collect();
                let ports = WriteBackPorts {
                    integrations: &store_w,
                    store: &store_w,
                    clients: clients.as_ref(),
                    shopify: &shopify,
                    requeue: &queue_w,
                    clock: &SystemClock,
                    metrics: &LogMetrics,
                };
                let failed = write_back(batch, ports, &wb, None).await;
                acknowledge(&queue_w, &received, &failed).await;
            }
        }));
        Ok(Self {
            addr,
            store,
            clients: runtime_clients,
            queue,
            owner,
            stop,
            tasks,
        })
    }

    /// Runs one pull of every enabled integration now, beside the pull worker's (the lease
    /// keeps them single-flight), with its reconcile.
    pub async fn pull_now(&self) -> anyhow::Result<Vec<shared::pull::PullSummary>> {
        let config = PullConfig {
            concurrency: 2,
            margin: Duration::from_secs(5),
            owner: self.owner.clone(),
        };
        let ports = pull_ports(&self.store, &self.clients, &self.queue);
        Ok(pull(PullRequest::All, ports, &config, None).await?)
    }

    /// The webhook URL of an integration.
    pub fn webhook_url(&self, integration: &str) -> String {
        format!(
            "http://{}{}{integration}",
            self.addr,
            shared::webhook::ROUTE_PREFIX
        )
    }

    /// Stops accepting work and waits for in-flight work to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// `serve --config FILE`: runs until Ctrl-C.
pub async fn serve(config_path: &std::path::Path) -> anyhow::Result<()> {
    let config = LocalConfig::read(config_path)?;
    let runtime = LocalRuntime::start(&config, Arc::new(shared::secrets::env::EnvSecrets)).await?;
    println!(
        "cin7-gss local mode: store {}, webhook listener http://{}, each integration pulled on its own schedule (import.business_hours)",
        config.store.display(),
        runtime.addr,
    );
    for s in &config.integrations {
        println!(
            "  {}: GoSweetSpot webhook URL {}",
            s.id,
            runtime.webhook_url(&s.id)
        );
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("shutting down: finishing in-flight work…");
    runtime.shutdown().await;
    println!("stopped");
    Ok(())
}
