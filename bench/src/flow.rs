//! The whole path in one process: N orders in the CIN7 sandbox → the pull publishes them to
//! the GoSweetSpot sandbox → every order is ticketed → the signed webhook deliveries (50
//! shipments each) go through the webhook handler into a queue → the write-back consumes the
//! jobs in batches of 100 → every order is dispatched in CIN7.
//!
//! Paced runs give the sandboxes the APIs' limits (scaled by a time factor; 1.0 is real time)
//! and the clients the production ceilings, scaled alike; CIN7's limiter is one for the pull
//! and the write-back, as the store-shared window is in production. Unpaced runs count calls.

use crate::VecQueue;
use crate::bound::{CIN7_LIMITS, GSS_LIMITS, Limit, cin7_ceilings, gss_ceilings, scaled};
use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use integration_tests::{
    CIN7_KEY, CIN7_USER, GSS_KEY, GSS_SITE, cin7_client, gss_client, order, sandbox_secrets,
    sandbox_settings,
};
use sandbox::{Cin7Sandbox, GssSandbox, Ticket};
use shared::http::RetryPolicy;
use shared::jobs::WriteBackJob;
use shared::pull::{PullDeps, PullOptions, PullOutcome, run_pull};
use shared::rate_limit::{RateLimiter, Window, WindowLimiter};
use shared::store::Store;
use shared::webhook::{WebhookDeps, WebhookRequest};
use shared::writeback::run::{JobOutcome, ShopifyTrigger, WriteBackDeps, run_batch};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Jobs per write-back batch (the SQS event source's batch size).
pub const WRITE_BACK_BATCH: usize = 100;
/// Shipments per webhook delivery.
pub const DELIVERY: usize = 50;

/// What one run does.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    pub orders: usize,
    /// `Some(factor)`: paced, every window × factor. `None`: no limits anywhere.
    pub time_factor: Option<f64>,
}

/// Calls of one phase, as the sandboxes recorded them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub cin7_get: u64,
    pub cin7_put: u64,
    pub gss_get: u64,
    pub gss_put: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct FlowResult {
    pub orders: usize,
    pub wall: Duration,
    pub pull: Duration,
    pub ticket_and_webhook: Duration,
    pub write_back: Duration,
    pub import: Calls,
    pub write_back_calls: Calls,
    pub cin7_throttled: usize,
    pub gss_throttled: usize,
    /// Orders whose CIN7 stage is Dispatched at the end.
    pub dispatched: usize,
    /// Write-back jobs that finished `Done`.
    pub written_back: usize,
    pub pull_runs: usize,
}

fn windows(limits: &[Limit]) -> Vec<Window> {
    limits
        .iter()
        .map(|l| Window::new(l.max as u32, l.length))
        .collect()
}

struct NoShopify;

#[async_trait::async_trait]
impl ShopifyTrigger for NoShopify {
    async fn trigger(&self, _url: &str) -> Result<(), String> {
        Ok(())
    }
}

fn calls(cin7: &Cin7Sandbox, gss: &GssSandbox) -> Calls {
    let c = |h: &sandbox::Harness, m: &str, p: &str| h.count(m, p) as u64;
    Calls {
        cin7_get: c(cin7.harness(), "GET", "/api/v1/SalesOrders"),
        cin7_put: c(cin7.harness(), "PUT", "/api/v1/SalesOrders"),
        gss_get: c(gss.harness(), "GET", "/api/shipments"),
        gss_put: c(gss.harness(), "PUT", "/api/customerorders"),
    }
}

fn minus(a: Calls, b: Calls) -> Calls {
    Calls {
        cin7_get: a.cin7_get - b.cin7_get,
        cin7_put: a.cin7_put - b.cin7_put,
        gss_get: a.gss_get - b.gss_get,
        gss_put: a.gss_put - b.gss_put,
    }
}

/// Runs the whole path once.
pub async fn run(config: FlowConfig) -> FlowResult {
    let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY)
        .await
        .expect("cin7 sandbox");
    let gss = GssSandbox::start(GSS_SITE, GSS_KEY)
        .await
        .expect("gss sandbox");
    // The store file on tmpfs when there is one: the flow measures pacing and the core's
    // work, not this disk's fsync latency (the SQLite adapter writes with synchronous=FULL).
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    let table = Arc::new(
        shared::store::sqlite::SqliteTable::open(&dir.path().join("store.sqlite3")).expect("store"),
    );
    let store = Store::new(table, Arc::new(shared::clock::SystemClock));
    let mut settings = sandbox_settings("acme", &cin7, &gss);
    settings.write_back.send_ticket_number = true;
    settings.write_back.freight = shared::settings::FreightMode::Cost;
    store
        .put_integration(&settings)
        .await
        .expect("integration saved");

    let base = Utc
        .with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
        .single()
        .expect("a valid date");
    for i in 1..=config.orders {
        cin7.put_order(order(
            i as i64,
            &format!("B-{i}"),
            base + ChronoDuration::seconds(i as i64),
        ));
    }

    let (cin7_limiter, gss_limiter): (Arc<dyn RateLimiter>, Arc<dyn RateLimiter>) =
        match config.time_factor {
            Some(f) => {
                cin7.harness().set_limits(windows(&scaled(&CIN7_LIMITS, f)));
                gss.harness().set_limits(windows(&scaled(&GSS_LIMITS, f)));
                (
                    Arc::new(WindowLimiter::new(windows(&scaled(&cin7_ceilings(), f)))),
                    Arc::new(WindowLimiter::new(windows(&scaled(&gss_ceilings(), f)))),
                )
            }
            None => (
                Arc::new(WindowLimiter::new(Vec::new())),
                Arc::new(WindowLimiter::new(Vec::new())),
            ),
        };
    let retry = RetryPolicy::default();
    let cin7_api = cin7_client(&cin7, CIN7_KEY, cin7_limiter.clone(), retry);
    let gss_api = gss_client(&gss, GSS_KEY, gss_limiter, retry);

    let started = Instant::now();

    // 1. The pull, until it has read everything.
    let count = || (cin7_api.calls().total(), gss_api.calls().total());
    let mut pull_runs = 0;
    loop {
        pull_runs += 1;
        let summary = run_pull(
            PullDeps {
                store: &store,
                cin7: &cin7_api,
                gss: &gss_api,
                now: Utc::now(),
                calls: &count,
            },
            &settings,
            &PullOptions {
                owner: "bench".into(),
                daily_budget: i64::MAX / 4,
                write_back_reserve: 0,
                ..PullOptions::default()
            },
        )
        .await
        .expect("the pull runs");
        if summary.outcome == PullOutcome::Completed || pull_runs >= 5 {
            break;
        }
    }
    let pulled = started.elapsed();
    let import = calls(&cin7, &gss);

    // 2. Every published order ticketed; the shipments delivered 50 at a time.
    let secrets = sandbox_secrets();
    let secret = secrets
        .0
        .get("WEBHOOK_SECRET")
        .cloned()
        .expect("webhook secret");
    let queue = VecQueue::default();
    let mut shipments = Vec::new();
    for slip in gss.packing_slips() {
        shipments.push(
            gss.ticket(&slip, Ticket::default())
                .await
                .expect("ticketed"),
        );
    }
    for chunk in shipments.chunks(DELIVERY) {
        let body = serde_json::to_vec(chunk).expect("shipments encode");
        let signature = shared::signature::sign(secret.as_bytes(), &body).expect("HMAC key");
        let query = shared::webhook::parse_query(&format!(
            "signature={}",
            crate::encode_signature(&signature)
        ));
        let response = shared::webhook::handle(
            WebhookDeps {
                store: &store,
                secrets: &secrets,
                queue: &queue,
            },
            &WebhookRequest {
                method: "POST",
                integration_id: Some("acme"),
                query: &query,
                content_type: Some("application/json"),
                body: &body,
            },
        )
        .await;
        assert_eq!(response.status, 202, "webhook answered {response:?}");
    }
    let delivered = started.elapsed();
    let before_write_back = calls(&cin7, &gss);

    // 3. The write-back, 100 jobs a batch.
    let jobs: Vec<WriteBackJob> = queue
        .take()
        .iter()
        .map(|m| WriteBackJob::from_body(&m.body).expect("job body"))
        .collect();
    let mut done = 0;
    for batch in jobs.chunks(WRITE_BACK_BATCH) {
        let deps = WriteBackDeps {
            store: &store,
            gss: &gss_api,
            cin7: &cin7_api,
            shopify: &NoShopify,
            shopify_template: "",
            cin7_pacing: cin7_limiter.as_ref(),
            owner: "bench",
            claim_hold: Duration::from_secs(120),
            now: Utc::now(),
        };
        let outcomes = run_batch(&deps, &settings, batch)
            .await
            .expect("write-back runs");
        done += outcomes
            .iter()
            .filter(|o| matches!(o, JobOutcome::Done))
            .count();
    }
    let wall = started.elapsed();
    let after = calls(&cin7, &gss);
    let dispatched = cin7
        .orders()
        .iter()
        .filter(|o| o["stage"] == "Dispatched")
        .count();

    FlowResult {
        orders: config.orders,
        wall,
        pull: pulled,
        ticket_and_webhook: delivered - pulled,
        write_back: wall - delivered,
        import,
        write_back_calls: minus(after, before_write_back),
        cin7_throttled: cin7.harness().throttled(),
        gss_throttled: gss.harness().throttled(),
        dispatched,
        written_back: done,
        pull_runs,
    }
}
