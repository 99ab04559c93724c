//! Helpers the integration tests share: clients wired to the sandboxes, and order fixtures.
#![recursion_limit = "256"]

use chrono::{DateTime, Utc};
use sandbox::{Cin7Sandbox, GssSandbox};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::cin7::{Cin7Client, Cin7Config};
use shared::gss::{GssClient, GssConfig};
use shared::http::RetryPolicy;
use shared::rate_limit::{RateLimiter, Window, WindowLimiter};
use std::sync::Arc;
use std::time::Duration;

pub const CIN7_USER: &str = "sandbox-user";
pub const CIN7_KEY: &str = "cin7-key-7f3a9c";
pub const GSS_SITE: &str = "4180";
pub const GSS_KEY: &str = "gss-key-51b2e8";

/// A retry policy fast enough for tests.
pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(5),
        jitter_seed: None,
    }
}

/// How many cases a property test runs: `default` in `make test`, or `PROPTEST_CASES` when it
/// is set (`make reliability` sets it high, as a fuzzing run).
pub fn prop_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A limiter that never waits (for tests about something else).
pub fn unlimited() -> Arc<dyn RateLimiter> {
    Arc::new(WindowLimiter::new(Vec::new()))
}

/// CIN7's limits compressed in time: 3 per `second` and 60 per 60 × `second`.
pub fn scaled_cin7_windows(second: Duration) -> Vec<Window> {
    vec![Window::new(3, second), Window::new(60, second * 60)]
}

/// A CIN7 client for a sandbox.
pub fn cin7_client(
    sandbox: &Cin7Sandbox,
    key: &str,
    limiter: Arc<dyn RateLimiter>,
    retry: RetryPolicy,
) -> Cin7Client {
    Cin7Client::new(Cin7Config {
        base_url: sandbox.base_url(),
        username: CIN7_USER.into(),
        api_key: SecretString::from(key.to_string()),
        http: shared::http::client(shared::http::Service::Cin7, Duration::from_secs(5))
            .expect("http client"),
        retry,
        limiter,
    })
    .expect("client builds")
}

/// A GoSweetSpot client for a sandbox.
pub fn gss_client(
    sandbox: &GssSandbox,
    key: &str,
    limiter: Arc<dyn RateLimiter>,
    retry: RetryPolicy,
) -> GssClient {
    GssClient::new(GssConfig {
        base_url: sandbox.base_url(),
        site_id: GSS_SITE.into(),
        access_key: SecretString::from(key.to_string()),
        support_email: "dev@example.co.nz".into(),
        http: shared::http::client(shared::http::Service::Gss, Duration::from_secs(5))
            .expect("http client"),
        retry,
        limiter,
    })
    .expect("client builds")
}

/// A realistic approved, undispatched NZ sales order with one FIFO line.
pub fn order(id: i64, reference: &str, modified: DateTime<Utc>) -> Value {
    json!({
        "id": id,
        "createdDate": "2024-05-01T22:14:03Z",
        "modifiedDate": modified.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "isApproved": true,
        "status": "Approved",
        "isVoid": false,
        "reference": reference,
        "stage": "New",
        "branchId": 3,
        "firstName": "Aroha", "lastName": "Smith", "company": "",
        "email": "aroha@example.co.nz", "phone": "021 555 0101", "mobile": "",
        "deliveryFirstName": "Aroha", "deliveryLastName": "Smith", "deliveryCompany": "",
        "deliveryAddress1": "12 Queen Street", "deliveryAddress2": "Unit 3",
        "deliveryCity": "Auckland", "deliveryState": "Auckland",
        "deliveryPostalCode": "1010", "deliveryCountry": "New Zealand",
        "deliveryInstructions": "Leave at reception",
        "internalComments": "Shopify order",
        "trackingCode": null, "logisticsCarrier": null,
        "freightTotal": 0, "currencyCode": "NZD", "taxStatus": "Incl", "taxRate": 15,
        "dispatchedDate": null,
        "customFields": {},
        "lineItems": [{
            "id": id * 10, "code": "TEE-BLK-M", "name": "Black Tee M", "qty": 2,
            "unitPrice": 29.95, "stockControl": "FIFO", "sizes": [], "qtyShipped": 0
        }]
    })
}

pub mod outage_proxy;
pub mod recording;
pub mod runtime_stub;
pub mod store_suite;

/// Settings for an integration whose CIN7 and GoSweetSpot are the given sandboxes.
pub fn sandbox_settings(
    id: &str,
    cin7: &Cin7Sandbox,
    gss: &GssSandbox,
) -> shared::settings::IntegrationSettings {
    shared::settings::IntegrationSettings::from_json(
        &json!({
            "id": id,
            "name": format!("Merchant {id}"),
            "cin7": {"api_username": CIN7_USER, "api_key": "CIN7_KEY", "base_url": cin7.base_url()},
            "gss": {"site_id": GSS_SITE, "access_key": "GSS_KEY", "support_email": "ops@example.nz",
                    "base_url": gss.base_url(), "cost_centre": "Online"},
            "webhook": {"secret": "WEBHOOK_SECRET"},
            "import": {"start_from": "2024-01-01T00:00:00Z", "max_age_days": 100000}
        })
        .to_string(),
    )
    .expect("valid settings")
}

/// A pull wired to sandboxes and a store, with an embedded queue for its reconcile's jobs.
pub struct PullRig {
    pub cin7: Cin7Sandbox,
    pub gss: GssSandbox,
    pub store: shared::store::Store,
    pub settings: shared::settings::IntegrationSettings,
    pub cin7_client: Cin7Client,
    pub gss_client: GssClient,
    pub queue: shared::queue::embedded::EmbeddedQueue,
}

impl PullRig {
    /// Sandboxes, clients (unpaced, fast retries) and a SQLite store in a temp directory.
    pub async fn new() -> Self {
        let path = tempfile::tempdir()
            .expect("tempdir")
            .keep()
            .join("store.sqlite3");
        let table = Arc::new(shared::store::sqlite::SqliteTable::open(&path).expect("store"));
        Self::with_table(table).await
    }

    /// The same over any table.
    pub async fn with_table(table: Arc<dyn shared::store::Table>) -> Self {
        let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY)
            .await
            .expect("cin7 sandbox");
        let gss = GssSandbox::start(GSS_SITE, GSS_KEY)
            .await
            .expect("gss sandbox");
        let store = shared::store::Store::new(table, Arc::new(shared::clock::SystemClock));
        let settings = sandbox_settings("acme", &cin7, &gss);
        let cin7_client = cin7_client(&cin7, CIN7_KEY, unlimited(), fast_retry(4));
        let gss_client = gss_client(&gss, GSS_KEY, unlimited(), fast_retry(4));
        let queue = shared::queue::embedded::EmbeddedQueue::open(
            &tempfile::tempdir()
                .expect("tempdir")
                .keep()
                .join("queue.sqlite3"),
            5,
        )
        .expect("queue");
        Self {
            cin7,
            gss,
            store,
            settings,
            cin7_client,
            gss_client,
            queue,
        }
    }

    /// Runs one pull.
    pub async fn pull(&self, options: &shared::pull::PullOptions) -> shared::pull::PullSummary {
        let calls = || {
            (
                self.cin7_client.calls().total(),
                self.gss_client.calls().total(),
            )
        };
        shared::pull::run_pull(
            shared::pull::PullDeps {
                store: &self.store,
                cin7: &self.cin7_client,
                gss: &self.gss_client,
                feed: &self.gss_client,
                queue: &self.queue,
                clock: &shared::clock::SystemClock,
                calls: &calls,
            },
            &self.settings,
            options,
        )
        .await
        .expect("pull runs")
    }

    /// What the webhook's use-case queues for a delivery of these shipments, on the rig's
    /// queue (it notes each consignment on its order first).
    pub async fn webhook(
        &self,
        shipments: &[shared::gss::model::Shipment],
    ) -> shared::sightings::SightingSummary {
        let body = serde_json::to_vec(shipments).expect("shipments encode");
        shared::webhook::accept_delivery(
            shared::sightings::SightingDeps {
                store: &self.store,
                queue: &self.queue,
                clock: &shared::clock::SystemClock,
            },
            &self.store,
            "acme",
            &body,
            &shared::webhook::parse_delivery(&body).expect("a delivery"),
        )
        .await
        .expect("accepted")
    }

    /// Takes every job off the rig's queue (what the reconcile, or a webhook, queued).
    pub async fn take_jobs(&self) -> Vec<shared::jobs::WriteBackJob> {
        use shared::queue::JobSource;
        let mut jobs = Vec::new();
        loop {
            let batch = self
                .queue
                .receive(100, Duration::from_secs(3600))
                .await
                .expect("receive");
            if batch.is_empty() {
                return jobs;
            }
            for m in batch {
                self.queue.ack(&m.receipt).await.expect("ack");
                jobs.push(shared::jobs::WriteBackJob::from_body(&m.body).expect("a job"));
            }
        }
    }

    /// Writes back `jobs` with the rig's clients and settings (no Shopify trigger).
    pub async fn write_back(
        &self,
        jobs: &[shared::jobs::WriteBackJob],
    ) -> Vec<shared::writeback::run::JobOutcome> {
        let pacing = unlimited();
        let deps = shared::writeback::run::WriteBackDeps {
            store: &self.store,
            gss: &self.gss_client,
            cin7: &self.cin7_client,
            shopify: &NoShopify,
            shopify_template: "",
            cin7_pacing: pacing.as_ref(),
            owner: "worker",
            claim_hold: Duration::from_secs(120),
            clock: &shared::clock::SystemClock,
        };
        shared::writeback::run::run_batch(&deps, &self.settings, jobs)
            .await
            .expect("write-back runs")
    }

    /// How many times each packing slip was sent in a GoSweetSpot PUT.
    pub fn publish_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for r in self.gss.harness().records() {
            if r.method == "PUT" && r.status == 200 {
                let orders: Vec<Value> = serde_json::from_str(&r.body).unwrap_or_default();
                for o in orders {
                    let slip = o["packingslipno"].as_str().unwrap_or_default().to_string();
                    *counts.entry(slip).or_insert(0) += 1;
                }
            }
        }
        counts
    }
}

/// A Shopify trigger that is never configured (its calls succeed, counted nowhere).
pub struct NoShopify;

#[async_trait::async_trait]
impl shared::writeback::ShopifyTrigger for NoShopify {
    async fn trigger(&self, _: &str) -> Result<(), shared::writeback::ShopifyError> {
        Ok(())
    }
}

/// A name no other test (or run) uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// A fresh DynamoDB table on the local AWS endpoint (`AWS_ENDPOINT_URL`, set by
/// `scripts/with-moto`); the emulator is discarded after the run.
pub async fn dynamo_table() -> Arc<dyn shared::store::Table> {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run under scripts/with-moto (make test does)"
    );
    let sdk = shared::aws_config::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let name = unique_name("store");
    shared::store::dynamodb::create_table(&client, &name)
        .await
        .expect("create table");
    Arc::new(shared::store::dynamodb::DynamoTable::new(client, name))
}

/// Secrets from a fixed map (tests).
#[derive(Default)]
pub struct MapSecrets(pub std::collections::HashMap<String, String>);

#[async_trait::async_trait]
impl shared::secrets::SecretSource for MapSecrets {
    async fn get(&self, reference: &str) -> Result<SecretString, shared::secrets::SecretError> {
        self.0
            .get(reference)
            .map(|v| SecretString::from(v.clone()))
            .ok_or_else(|| shared::secrets::SecretError::NotFound {
                reference: reference.to_string(),
            })
    }
}

/// The secrets `sandbox_settings` refers to, with the sandboxes' keys.
pub fn sandbox_secrets() -> MapSecrets {
    MapSecrets(
        [
            ("CIN7_KEY", CIN7_KEY),
            ("GSS_KEY", GSS_KEY),
            ("WEBHOOK_SECRET", "whsec-3c1d5e"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
}

/// The write-back wired to sandboxes, a SQLite store and the handler's configuration.
pub struct WriteBackRig {
    pub cin7: Cin7Sandbox,
    pub gss: GssSandbox,
    pub store: shared::store::Store,
    pub clients: shared::app::ClientCache,
    pub shopify: shared::writeback::HttpShopifyTrigger,
    pub config: shared::writeback::handler::WriteBackConfig,
    /// The write-back queue deferred jobs are sent to again.
    pub requeue: shared::queue::embedded::EmbeddedQueue,
    /// Every metric the handler emitted.
    pub metrics: shared::metrics::CapturedMetrics,
    next_message: std::sync::atomic::AtomicU64,
}

impl WriteBackRig {
    /// Sandboxes and a SQLite store in a temp directory.
    pub async fn new() -> Self {
        let path = tempfile::tempdir()
            .expect("tempdir")
            .keep()
            .join("store.sqlite3");
        Self::with_table(Arc::new(
            shared::store::sqlite::SqliteTable::open(&path).expect("store"),
        ))
        .await
    }

    /// The same over any table.
    pub async fn with_table(table: Arc<dyn shared::store::Table>) -> Self {
        let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY)
            .await
            .expect("cin7 sandbox");
        let gss = GssSandbox::start(GSS_SITE, GSS_KEY)
            .await
            .expect("gss sandbox");
        let store = shared::store::Store::new(table, Arc::new(shared::clock::SystemClock));
        let clients = shared::app::ClientCache::new(
            Arc::new(store.clone()),
            Arc::new(sandbox_secrets()),
            shared::app::Pacing::InProcess,
        )
        .with_http(Duration::from_secs(5), fast_retry(3));
        let config = shared::writeback::handler::WriteBackConfig {
            shopify_template: cin7.shopify_template(),
            claim_hold: Duration::from_secs(60),
            ..shared::writeback::handler::WriteBackConfig::new(unique_name("worker"))
        };
        let requeue = shared::queue::embedded::EmbeddedQueue::open(
            &tempfile::tempdir()
                .expect("tempdir")
                .keep()
                .join("queue.sqlite3"),
            5,
        )
        .expect("queue");
        Self {
            cin7,
            gss,
            store,
            clients,
            shopify: shared::writeback::HttpShopifyTrigger::new(Duration::from_secs(5))
                .expect("http client"),
            config,
            requeue,
            metrics: Default::default(),
            next_message: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Saves an integration whose write-back settings are `write_back` (JSON).
    pub async fn integration(
        &self,
        id: &str,
        write_back: Value,
    ) -> shared::settings::IntegrationSettings {
        let mut settings = sandbox_settings(id, &self.cin7, &self.gss);
        settings.write_back = serde_json::from_value(write_back).expect("write-back settings");
        shared::store::Integrations::put_integration(&self.store, &settings)
            .await
            .expect("valid settings");
        settings
    }

    /// An order in CIN7, published in GoSweetSpot (and recorded so), ticketed: the job the
    /// webhook would queue for it.
    pub async fn ticketed(
        &self,
        integration: &str,
        cin7_order: Value,
        ticket: sandbox::Ticket,
    ) -> shared::jobs::WriteBackJob {
        let id = cin7_order["id"].as_i64().expect("order id");
        let slip = cin7_order["reference"]
            .as_str()
            .expect("reference")
            .to_string();
        self.cin7.put_order(cin7_order);
        let gss = gss_client(&self.gss, GSS_KEY, unlimited(), fast_retry(3));
        if self.gss.order(&slip).is_none() {
            let order = shared::gss::model::CustomerOrder {
                packingslipno: slip.clone(),
                consignee: "Aroha Smith".into(),
                country: "NZ".into(),
                costcentre: Some("Online".into()),
                ..Default::default()
            };
            gss.put_customer_orders(&[order]).await.expect("published");
            let mut record = shared::records::OrderRecord::new(
                id,
                shared::records::OrderState::Published,
                "published",
                Utc::now(),
            );
            record.packing_slip = Some(slip.clone());
            record.reference = Some(slip.clone());
            shared::store::Records::save_order(&self.store, integration, &mut record)
                .await
                .expect("record");
        }
        self.job_for(
            integration,
            id,
            &slip,
            self.gss.ticket(&slip, ticket).await.expect("ticketed"),
        )
    }

    /// The job for a shipment.
    pub fn job_for(
        &self,
        integration: &str,
        cin7_id: i64,
        slip: &str,
        s: shared::gss::model::Shipment,
    ) -> shared::jobs::WriteBackJob {
        shared::jobs::WriteBackJob {
            integration_id: integration.into(),
            connote: s.consignment_no.unwrap_or_default(),
            packing_slip: slip.into(),
            cin7_id,
            reference: Some(slip.into()),
            tracking_url: s.tracking,
            total_cost: s.total_cost,
            created_utc: s.created_utc,
            manual_ticket: false,
        }
    }

    /// Messages for jobs, as a queue would deliver them (`receive_count` given).
    pub fn messages(
        &self,
        jobs: &[shared::jobs::WriteBackJob],
        receive_count: u32,
    ) -> Vec<shared::queue::QueuedJob> {
        jobs.iter()
            .map(|j| shared::queue::QueuedJob {
                message_id: format!(
                    "m{}",
                    self.next_message
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ),
                body: j.to_body().expect("job body"),
                receive_count,
            })
            .collect()
    }

    /// Runs the handler on a batch; returns the failed message ids.
    pub async fn run(&self, batch: Vec<shared::queue::QueuedJob>) -> Vec<String> {
        self.run_until(batch, None).await
    }

    /// Runs the handler on a batch as an invocation ending at `deadline`.
    pub async fn run_until(
        &self,
        batch: Vec<shared::queue::QueuedJob>,
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<String> {
        let ports = shared::writeback::handler::WriteBackPorts {
            integrations: &self.store,
            store: &self.store,
            clients: &self.clients,
            shopify: &self.shopify,
            requeue: &self.requeue,
            clock: &shared::clock::SystemClock,
            metrics: &self.metrics,
        };
        shared::writeback::handler::handle(batch, ports, &self.config, deadline).await
    }

    /// CIN7 PUTs so far.
    pub fn cin7_puts(&self) -> usize {
        self.cin7.harness().count("PUT", "/api/v1/SalesOrders")
    }

    /// Shopify trigger calls so far.
    pub fn shopify_calls(&self) -> usize {
        self.cin7.harness().count("GET", "/shopify/")
    }
}

/// A signature as it travels in a query string: `+`, `/` and `=` percent-encoded.
pub fn encode_signature(signature: &str) -> String {
    signature
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_string(),
            '/' => "%2F".to_string(),
            '=' => "%3D".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Delivers `shipments` to the webhook handler as GoSweetSpot does: one body, signed with the
/// integration's webhook `secret`, in the query's `signature`.
pub async fn deliver(
    ports: shared::webhook::WebhookPorts<'_>,
    integration: &str,
    shipments: &[shared::gss::model::Shipment],
    secret: &str,
) -> shared::webhook::WebhookResponse {
    let body = serde_json::to_vec(shipments).expect("shipments encode");
    let signature = shared::signature::sign(secret.as_bytes(), &body).expect("an HMAC key");
    let query =
        shared::webhook::parse_query(&format!("signature={}", encode_signature(&signature)));
    shared::webhook::handle(
        ports,
        &shared::webhook::WebhookRequest {
            method: "POST",
            integration_id: Some(integration),
            query: &query,
            body: &body,
            oversized: false,
        },
    )
    .await
}

/// An API Gateway HTTP API (payload 2.0) request posting a signed webhook body.
pub fn webhook_event(integration: &str, body: &str, signature: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/gosweetspot/{integration_id}",
        "rawPath": format!("/webhooks/gosweetspot/{integration}"),
        "rawQueryString": format!("signature={}", encode_signature(signature)),
        "headers": {"content-type": "application/json", "user-agent": "GoSweetSpot"},
        "queryStringParameters": {"signature": signature},
        "pathParameters": {"integration_id": integration},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": "POST", "path": format!("/webhooks/gosweetspot/{integration}"),
                     "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "GoSweetSpot"},
            "requestId": "r-1", "routeKey": "POST /webhooks/gosweetspot/{integration_id}",
            "stage": "$default", "time": "27/Nov/2026:09:00:00 +0000", "timeEpoch": 1795800000000i64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Stores the sandboxes' keys and `webhook_secret` in Secrets Manager as `<prefix>/cin7`,
/// `<prefix>/gss` and `<prefix>/webhook`.
pub async fn put_sandbox_secrets(
    secrets: &shared::secrets::aws::SecretsManagerSource,
    prefix: &str,
    webhook_secret: &str,
) {
    for (name, value) in [
        ("cin7", CIN7_KEY),
        ("gss", GSS_KEY),
        ("webhook", webhook_secret),
    ] {
        secrets
            .put(
                &format!("{prefix}/{name}"),
                &SecretString::from(value.to_string()),
            )
            .await
            .expect("secret stored");
    }
}
