//! Helpers of `webhook.rs` and `webhook_prop.rs` (included by both with `#[path]`): a world of a
//! SQLite store, an embedded queue and test secrets, served by the webhook router as the Lambda
//! serves it (called with `oneshot`) or as local mode does (on a loopback socket); API Gateway
//! v2 requests built like the fixtures in `events/`; and a capture of every log line.
//!
//! The fixtures `events/webhook-*.json` are signed with the test secret [`SECRET`]
//! (`whsec-3c1d5e`, what `sandbox_secrets()` gives for the reference `WEBHOOK_SECRET`), for
//! the integration `acme`.
#![allow(dead_code)]

use base64::Engine;
use integration_tests::{MapSecrets, sandbox_secrets};
use lambda_http::Request;
use serde_json::{Value, json};
use shared::jobs::WriteBackJob;
use shared::metrics::CapturedMetrics;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{JobQueue, JobSource};
use shared::records::{OrderRecord, OrderState};
use shared::settings::IntegrationSettings;
use shared::store::Store;
use shared::store::prelude::*;
use shared::webhook::WebhookPorts;
use shared::webhook::router::{WebhookState, for_api_gateway, router};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

/// The webhook secret of `acme` (and of the disabled `carl`): the fixtures are signed with it.
pub const SECRET: &str = "whsec-3c1d5e";
/// The webhook secret of `bolt`, whose `signature_param` is `sig`.
pub const BOLT_SECRET: &str = "whsec-bolt-77a1f0";
/// A secret nobody configured, for "wrong secret" signatures.
pub const WRONG_SECRET: &str = "whsec-wrong-0000";
/// Every secret value of the world: none may appear in a log line.
pub const ALL_SECRETS: [&str; 5] = [
    SECRET,
    BOLT_SECRET,
    WRONG_SECRET,
    integration_tests::CIN7_KEY,
    integration_tests::GSS_KEY,
];

// ---------------------------------------------------------------------------------------------
// Log capture
// ---------------------------------------------------------------------------------------------

/// Every log line of the test process (JSON, all levels from debug up).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Appends to the capture.
pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

/// The capture, installed as the process's subscriber on first use.
pub fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        capture
    })
}

/// Fails when any secret value appears in any log line captured so far (by any test).
pub fn assert_no_secret_logged() {
    let text = logs().text();
    assert!(!text.is_empty(), "the capture sees the logs");
    for secret in ALL_SECRETS {
        assert!(!text.contains(secret), "a log line carries a secret");
    }
}

// ---------------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------------

/// Settings for a webhook test integration (its APIs are never called).
pub fn settings(
    id: &str,
    enabled: bool,
    secret_ref: &str,
    signature_param: Option<&str>,
) -> IntegrationSettings {
    IntegrationSettings::from_json(
        &json!({
            "id": id,
            "enabled": enabled,
            "cin7": {"api_username": "u", "api_key": "CIN7_KEY", "base_url": "http://127.0.0.1:9/api"},
            "gss": {"site_id": "4180", "access_key": "GSS_KEY", "support_email": "ops@example.nz",
                    "base_url": "http://127.0.0.1:9"},
            "webhook": {"secret": secret_ref, "signature_param": signature_param}
        })
        .to_string(),
    )
    .expect("valid settings")
}

/// A store, an embedded queue and secrets, with the integrations `acme` (enabled, secret
/// [`SECRET`], any single parameter), `bolt` (enabled, [`BOLT_SECRET`], parameter `sig`),
/// `carl` (disabled, [`SECRET`]) and `dora` (enabled, a secret reference that resolves to
/// nothing), and `acme`'s orders 1001–1003 published as `SO-1001`…`SO-1003`.
pub struct World {
    pub store: Store,
    pub queue: EmbeddedQueue,
    pub secrets: Arc<MapSecrets>,
    /// Every metric the endpoint emitted.
    pub metrics: Arc<CapturedMetrics>,
    _dir: tempfile::TempDir,
}

impl World {
    pub async fn new() -> Self {
        logs();
        let dir = tempfile::tempdir().expect("tempdir");
        let table = shared::store::sqlite::SqliteTable::open(&dir.path().join("store.sqlite3"))
            .expect("store");
        let store = Store::new(Arc::new(table), Arc::new(shared::clock::SystemClock));
        let queue = EmbeddedQueue::open(&dir.path().join("queue.sqlite3"), 5).expect("queue");
        Self::with(store, queue, dir).await
    }

    pub async fn with(store: Store, queue: EmbeddedQueue, dir: tempfile::TempDir) -> Self {
        let mut secrets = sandbox_secrets();
        secrets
            .0
            .insert("BOLT_WEBHOOK_SECRET".into(), BOLT_SECRET.into());
        for s in [
            settings("acme", true, "WEBHOOK_SECRET", None),
            settings("bolt", true, "BOLT_WEBHOOK_SECRET", Some("sig")),
            settings("carl", false, "WEBHOOK_SECRET", None),
            settings("dora", true, "NO_SUCH_SECRET", None),
        ] {
            store.put_integration(&s).await.expect("saved");
        }
        let world = Self {
            store,
            queue,
            secrets: Arc::new(secrets),
            metrics: Default::default(),
            _dir: dir,
        };
        for id in 1001..=1003 {
            world.publish("acme", id, &format!("SO-{id}")).await;
        }
        world
    }

    /// Records an order as published under `slip`.
    pub async fn publish(&self, integration: &str, cin7_id: i64, slip: &str) {
        publish(&self.store, integration, cin7_id, slip).await;
    }

    /// The endpoint's ports, as the transport-free core takes them.
    pub fn ports(&self) -> WebhookPorts<'_> {
        WebhookPorts {
            store: &self.store,
            secrets: self.secrets.as_ref(),
            queue: &self.queue,
            clock: &shared::clock::SystemClock,
            metrics: self.metrics.as_ref(),
        }
    }

    /// The router's state, with another queue.
    pub fn state_with(&self, queue: Arc<dyn JobQueue>) -> WebhookState {
        WebhookState {
            store: Arc::new(self.store.clone()),
            secrets: self.secrets.clone(),
            queue,
            clock: Arc::new(shared::clock::SystemClock),
            metrics: self.metrics.clone(),
        }
    }

    /// Posts through the router as the Lambda serves it.
    pub async fn call(&self, request: Request) -> Reply {
        self.call_with(Arc::new(self.queue.clone()), request).await
    }

    /// Posts through the router as the Lambda serves it, with another queue.
    pub async fn call_with(&self, queue: Arc<dyn JobQueue>, request: Request) -> Reply {
        let app = for_api_gateway(router(self.state_with(queue)));
        let response = app.oneshot(request).await.expect("the router answers");
        Reply::read(response).await
    }

    /// Takes every job off the embedded queue.
    pub async fn drain(&self) -> Vec<WriteBackJob> {
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
                assert_eq!(m.integration_id, "acme", "jobs carry their integration");
                self.queue.ack(&m.receipt).await.expect("ack");
                jobs.push(WriteBackJob::from_body(&m.body).expect("a job"));
            }
        }
    }
}

/// Records an order as published under `slip`.
pub async fn publish(store: &Store, integration: &str, cin7_id: i64, slip: &str) {
    let mut record = OrderRecord::new(
        cin7_id,
        OrderState::Published,
        "published",
        chrono::Utc::now(),
    );
    record.packing_slip = Some(slip.to_string());
    record.reference = Some(slip.to_string());
    assert!(
        store
            .save_order(integration, &mut record)
            .await
            .expect("saved")
    );
}

/// A response, read back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub raw: Vec<u8>,
    pub content_type: Option<String>,
    pub allow: Option<String>,
    pub content_length: Option<String>,
}

impl Reply {
    pub async fn read(response: axum::response::Response) -> Self {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status().as_u16();
        let (content_type, allow) = (header("content-type"), header("allow"));
        let content_length = header("content-length");
        let raw = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body")
            .to_vec();
        Self {
            status,
            // HTTP sends no body for HEAD (its headers say what it would be); every other
            // response's body is JSON.
            body: if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&raw).expect("every response body is JSON")
            },
            content_type,
            allow,
            content_length,
            raw,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// An `events/` fixture.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
}

/// The `lambda_http` request API Gateway's event becomes.
pub fn request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 request")
}

/// Percent-encodes everything but unreserved characters.
pub fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The Base64 HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    shared::signature::sign(secret.as_bytes(), body).expect("any key length")
}

/// `signature=<the signature under SECRET, percent-encoded>`.
pub fn signed_query(body: &[u8]) -> String {
    format!("signature={}", pct(&sign(SECRET, body)))
}

/// A request to build.
#[derive(Debug, Clone)]
pub struct Post {
    pub method: String,
    pub integration: Option<String>,
    /// Whether API Gateway passes `pathParameters` (else only the raw path has the id).
    pub path_parameters: bool,
    /// The raw query string; `None` leaves `rawQueryString` out (only the decoded
    /// `queryStringParameters` remain).
    pub raw_query: Option<String>,
    /// Overrides the decoded `queryStringParameters` (otherwise derived from `raw_query`).
    pub decoded_query: Option<Vec<(String, String)>>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub base64: bool,
}

impl Post {
    /// A POST of `body` to `acme`, signed with [`SECRET`], as `application/json`.
    pub fn signed(body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        Self {
            method: "POST".into(),
            integration: Some("acme".into()),
            path_parameters: true,
            raw_query: Some(signed_query(&body)),
            decoded_query: None,
            content_type: Some("application/json".into()),
            body,
            base64: false,
        }
    }

    pub fn to(mut self, integration: &str) -> Self {
        self.integration = Some(integration.into());
        self
    }

    pub fn query(mut self, raw: &str) -> Self {
        self.raw_query = Some(raw.into());
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = method.into();
        self
    }

    pub fn content_type(mut self, content_type: Option<&str>) -> Self {
        self.content_type = content_type.map(str::to_string);
        self
    }

    pub fn base64(mut self, base64: bool) -> Self {
        self.base64 = base64;
        self
    }

    /// The API Gateway v2 event, built on the `webhook-created-3.json` fixture. A body that is
    /// not UTF-8 is always sent Base64-encoded, as API Gateway does.
    pub fn event(&self) -> Value {
        let mut event = fixture("webhook-created-3.json");
        let id = self.integration.clone().unwrap_or_default();
        let path = format!("/webhooks/gosweetspot/{id}");
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
        event["requestContext"]["http"]["method"] = json!(self.method);
        event["pathParameters"] = match (&self.integration, self.path_parameters) {
            (Some(id), true) => json!({ "integration_id": id }),
            _ => Value::Null,
        };
        let decoded = self.decoded_query.clone().unwrap_or_else(|| {
            self.raw_query
                .as_deref()
                .map(shared::webhook::parse_query)
                .unwrap_or_default()
        });
        let map: serde_json::Map<String, Value> = decoded
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        event["queryStringParameters"] = if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        };
        match &self.raw_query {
            Some(raw) => event["rawQueryString"] = json!(raw),
            None => {
                if let Some(o) = event.as_object_mut() {
                    o.remove("rawQueryString");
                }
            }
        }
        let headers = event["headers"].as_object_mut().expect("headers");
        match &self.content_type {
            Some(ct) => headers.insert("content-type".into(), json!(ct)),
            None => headers.remove("content-type"),
        };
        headers.insert("content-length".into(), json!(self.body.len().to_string()));
        let text = std::str::from_utf8(&self.body)
            .ok()
            .filter(|_| !self.base64);
        match text {
            Some(text) => {
                event["body"] = json!(text);
                event["isBase64Encoded"] = json!(false);
            }
            None => {
                event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&self.body));
                event["isBase64Encoded"] = json!(true);
            }
        }
        if self.body.is_empty()
            && let Some(o) = event.as_object_mut()
        {
            o.remove("body");
        }
        event
    }

    /// The `lambda_http` request.
    pub fn request(&self) -> Request {
        request(&self.event())
    }
}

/// One shipment as GoSweetSpot posts it, for `event` `created`, `picked` or `delivered`.
pub fn shipment(connote: &str, slip: &str, event: &str) -> Value {
    let picked = matches!(event, "picked" | "delivered").then_some("2026-11-28T10:02:11");
    let delivered = (event == "delivered").then_some("2026-11-29T14:40:51");
    json!({
        "ConsignmentNo": connote, "Consignee": "AROHA SMITH", "ManualTicket": false,
        "PackingSlipNo": slip, "Picked": picked, "Delivered": delivered,
        "Status": delivered.map(|_| "Delivered").or(picked.map(|_| "Picked up")),
        "TotalCost": 8.5, "Tracking": format!("https://gosweetspot.com/track/4180-{connote}"),
        "CreatedUtc": "2026-11-27T19:30:00.113"
    })
}

/// The JSON body of a delivery.
pub fn body(shipments: &[Value]) -> Vec<u8> {
    serde_json::to_vec(shipments).expect("JSON")
}

/// A world's webhook router served on a loopback socket as local mode serves it (`axum::serve`),
/// for sandboxes that post real HTTP deliveries. Stops when dropped.
pub struct Listener {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Serves `world` on 127.0.0.1 and an ephemeral port.
    pub async fn start(world: &World) -> Self {
        let app = router(world.state_with(Arc::new(world.queue.clone())));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, task }
    }

    /// The webhook URL of an integration.
    pub fn url(&self, integration: &str) -> String {
        format!(
            "http://{}{}{integration}",
            self.addr,
            shared::webhook::ROUTE_PREFIX
        )
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
