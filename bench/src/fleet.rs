//! The fleet simulation (`make bench`'s fleet step): N merchants, each with its own CIN7 and
//! GoSweetSpot sandbox account (a sandbox pair each, with its own rate limits), orders arriving
//! on a day-shaped curve, in compressed time, through the real pull worker and sweeper over the
//! embedded pull queue with delays. Every clock the core reads — the store's, the queue's
//! delays and visibility, the policy's business hours — is one [`ScaledClock`]; the clients'
//! and the sandboxes' rate windows are compressed by the same factor, so the limits hold in
//! simulated time as in production.
//!
//! The write-back runs beside it: a simulated dispatcher tickets each published order after a
//! few minutes, its signed webhook is handled by the webhook's handler, and the write-back
//! handler consumes the queue in batches as the SQS event source does (a 10 s batching window,
//! at most `WriteBackMaximumConcurrency` batches at once). The store, the secrets and the queues
//! count what AWS would bill ([`crate::counting`]); [`crate::cost`] prices it.
//!
//! What it cannot model: the network latency of the real APIs (the sandboxes answer in well
//! under a millisecond; a real CIN7 call is assumed to take ≈0.5 s and a GoSweetSpot call
//! ≈0.3 s, added to the modelled Lambda durations), and Lambda's own scheduling. See
//! bench/README.md.

use crate::cost::{Usage, cost_per_merchant_month};
use crate::counting::{CountingQueue, CountingSecrets};
use crate::mem_table::MemTable;
use crate::stats::quantile;
use chrono::{DateTime, TimeZone, Utc};
use integration_tests::recording::CountingTable;
use integration_tests::{
    CIN7_KEY, CIN7_USER, GSS_KEY, GSS_SITE, MapSecrets, NoShopify, deliver, order,
};
use sandbox::{Cin7Sandbox, GssSandbox};
use serde::Serialize;
use shared::app::{ClientCache, Pacing};
use shared::clock::Clock;
use shared::metrics::CapturedMetrics;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{JobSource, QueuedJob};
use shared::rate_limit::Window;
use shared::records::OrderState;
use shared::schedule::policy::PollPolicy;
use shared::schedule::{
    Handled, PullKind, SweepConfig, SweepPorts, WorkerConfig, WorkerPorts, handle_message, seed,
    sweep,
};
use shared::settings::{FreightMode, IntegrationSettings};
use shared::store::Store;
use shared::store::prelude::*;
use shared::webhook::WebhookPorts;
use shared::writeback::handler::{GroupLimits, WriteBackConfig, WriteBackPorts};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time that runs `speed` times faster than the wall clock, from `start` (simulated).
#[derive(Debug)]
pub struct ScaledClock {
    start: DateTime<Utc>,
    real_start: Instant,
    speed: f64,
}

impl ScaledClock {
    /// Simulated time starting now at `start`, `speed` times the wall clock.
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        Self {
            start,
            real_start: Instant::now(),
            speed,
        }
    }

    /// The wall-clock time at which simulated time reaches `at`.
    pub fn real_at(&self, at: DateTime<Utc>) -> Instant {
        let sim = (at - self.start).to_std().unwrap_or_default();
        self.real_start + sim.div_f64(self.speed)
    }

    /// A simulated duration in wall-clock time.
    pub fn real(&self, sim: Duration) -> Duration {
        sim.div_f64(self.speed)
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let real = self.real_start.elapsed().mul_f64(self.speed);
        self.start + chrono::Duration::from_std(real).unwrap_or_default()
    }
}

/// The fleet to simulate.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub tenants: usize,
    /// The measured hours, after the warm-up.
    pub simulated_hours: f64,
    /// Simulated hours before them, not measured: every merchant starts idle (polled every
    /// five minutes) until its first order.
    pub warmup_hours: f64,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// A typical merchant's orders a day.
    pub orders_per_day: f64,
    /// A large merchant's (every 100th).
    pub large_orders_per_day: f64,
    /// The backlog merchant's import at the start.
    pub backlog: usize,
    pub seed: u64,
}

/// What the fleet run measured (see bench/README.md for each field).
#[derive(Debug, Clone, Serialize)]
pub struct FleetResult {
    pub tenants: usize,
    pub simulated_hours: f64,
    pub speed: f64,
    pub wall_s: f64,
    pub orders: usize,
    pub orders_published: usize,
    pub freshness_p50_s: f64,
    pub freshness_p95_s: f64,
    pub freshness_p95_s_backlog_tenant_excluded: f64,
    /// `None` when no other merchant's order was ready during the import.
    pub freshness_p95_s_others_during_backlog: Option<f64>,
    pub backlog_imported_s: Option<f64>,
    pub cin7_calls_per_idle_tenant_day: f64,
    pub cin7_calls_per_idle_tenant_day_policy: u32,
    pub cin7_budget_percent_max: f64,
    pub pull_invocations_per_tenant_day: f64,
    pub pull_handler_ms_p50: f64,
    /// How late the worker took scheduled messages (simulated seconds after the pull was
    /// due): above a second or two, this machine, not the schedule, set the freshness.
    pub pull_lag_p95_s: f64,
    pub pull_gb_s_per_tenant_day: f64,
    pub reseeded_by_sweeper: usize,
    /// What became of the pull messages handled, by kind (and a pull's outcome).
    pub messages: BTreeMap<String, u64>,
    pub cin7_429s: usize,
    /// The order records at the end, by state.
    pub records_by_state: BTreeMap<String, usize>,
    /// Consignments ticketed by the simulated dispatchers in the run.
    pub consignments: usize,
    /// Of them, dispatched in CIN7 by the end of the run.
    pub written_back: usize,
    /// Consignment created → CIN7 order dispatched, simulated seconds.
    pub writeback_p50_s: f64,
    pub writeback_p95_s: f64,
    pub writeback_invocations_per_tenant_day: f64,
    pub writeback_gb_s_per_tenant_day: f64,
    pub webhook_deliveries_per_tenant_day: f64,
    /// Every function's modelled GB-s (pull, webhook, write-back, sweeper).
    pub lambda_gb_s_per_tenant_day: f64,
    pub dynamodb_writes_per_tenant_day: f64,
    pub dynamodb_reads_per_tenant_day: f64,
    pub dynamodb_write_units_per_tenant_day: f64,
    pub dynamodb_read_units_per_tenant_day: f64,
    /// Write units per tenant-day by the kind of item written (`RATE`, `LEASE`, `ORDER`…).
    pub dynamodb_write_units_by_kind_per_tenant_day: BTreeMap<String, f64>,
    pub sqs_requests_per_tenant_day: f64,
    pub secrets_calls_per_tenant_day: f64,
    /// Distinct CloudWatch metrics (EMF dimension sets × names) per merchant.
    pub metrics_per_tenant: f64,
    pub log_bytes_per_tenant_day: f64,
    /// Per merchant-month at this fleet's size, by component (`total` their sum).
    pub cost_usd_per_merchant_month: BTreeMap<String, f64>,
    /// The same usage priced at 1, 100, 1,000 and 10,000 merchants (the deployment's fixed
    /// costs shared among them).
    pub cost_usd_per_merchant_month_at: BTreeMap<usize, BTreeMap<String, f64>>,
}

/// How long after an order is published its dispatcher tickets it (simulated seconds, uniform).
const TICKET_AFTER_S: (u64, u64) = (120, 1200);

/// The write-back's event source: its batching window and batch size, and the invocations at
/// once (`WriteBackMaximumConcurrency`'s default).
const WRITE_BACK_WINDOW: Duration = Duration::from_secs(10);
const WRITE_BACK_BATCH: usize = 100;
const WRITE_BACK_INVOCATIONS: usize = 10;

/// The modelled round trips (the sandboxes answer at once).
pub const CIN7_CALL_S: f64 = 0.5;
pub const GSS_CALL_S: f64 = 0.3;
pub const DYNAMODB_CALL_S: f64 = 0.005;

/// The template's memory: the pull and the write-back 128 MB, the webhook 256 MB (GB).
const FUNCTION_GB: f64 = 0.125;
const WEBHOOK_GB: f64 = 0.25;

/// Lambda's own log lines per invocation (START, END, REPORT), bytes.
const PLATFORM_LOG_BYTES: u64 = 350;

/// 09:45 in Auckland on a Tuesday (NZDT): business hours, the measured part from 10:00 after
/// the default warm-up.
pub fn start_of_run() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 20, 45, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

struct Tenant {
    id: String,
    cin7: Cin7Sandbox,
    gss: GssSandbox,
    /// Simulated arrival times of its orders in the run.
    arrivals: Vec<DateTime<Utc>>,
}

/// The share of a day's orders arriving per hour of local time: most in business hours,
/// peaking late morning and mid-afternoon.
fn hourly_share(local_hour: f64) -> f64 {
    let bump = |centre: f64| (-((local_hour - centre) / 1.5).powi(2)).exp();
    if (7.0..19.0).contains(&local_hour) {
        0.6 + bump(11.0) + bump(15.0)
    } else {
        0.08
    }
}

/// Arrivals of a merchant taking `per_day` orders, over the run, drawn by thinning.
fn arrivals(
    rng: &mut fastrand::Rng,
    per_day: f64,
    start: DateTime<Utc>,
    hours: f64,
) -> Vec<DateTime<Utc>> {
    let total: f64 = (0..24 * 60)
        .map(|m| hourly_share(f64::from(m) / 60.0) / 60.0)
        .sum();
    let peak = (0..24 * 60)
        .map(|m| hourly_share(f64::from(m) / 60.0))
        .fold(0.0, f64::max);
    let max_rate_per_s = per_day * peak / total / 3600.0;
    let mut out = Vec::new();
    let mut t = 0.0;
    let end = hours * 3600.0;
    loop {
        t += -(1.0 - rng.f64()).ln() / max_rate_per_s;
        if t >= end {
            break;
        }
        let at = start + chrono::Duration::milliseconds((t * 1000.0) as i64);
        let local = at.with_timezone(&chrono_tz::Pacific::Auckland);
        let hour = f64::from(chrono::Timelike::hour(&local))
            + f64::from(chrono::Timelike::minute(&local)) / 60.0;
        if rng.f64() < hourly_share(hour) / peak {
            out.push(at);
        }
    }
    out
}

/// Pull messages handled at once (the template's defaults allow 500: 50 invocations of 10).
const IN_FLIGHT: usize = 64;

/// What the handlings share.
struct Pool {
    store: Store,
    table: Arc<CountingTable>,
    clients: ClientCache,
    secrets: Arc<CountingSecrets<MapSecrets>>,
    /// The write-back queue: the webhook's and the reconcile's jobs, and deferrals.
    jobs: CountingQueue<EmbeddedQueue>,
    pulls: CountingQueue<EmbeddedQueue>,
    write_back: WriteBackConfig,
    metrics: CapturedMetrics,
    clock: Arc<ScaledClock>,
    config: WorkerConfig,
    backlog_id: String,
    stats: Mutex<Stats>,
}

/// What the handlings measured.
#[derive(Default)]
struct Stats {
    /// How late each message was taken after its pull was due (simulated).
    lags: Vec<Duration>,
    /// Each pull's handler time (wall).
    times: Vec<Duration>,
    tally: BTreeMap<String, u64>,
    /// When the backlog merchant's import read to the end.
    backlog_done: Option<DateTime<Utc>>,
    /// What the merchants other than the backlog's are billed for (its one-off import is left
    /// out of the per-merchant figures).
    billed: Billed,
    /// Write-back invocations and their handler time (wall).
    writeback_times: Vec<Duration>,
    /// Webhook deliveries and their handler time (wall).
    webhook_times: Vec<Duration>,
    /// Each consignment's ticket time (simulated), by integration and connote (each
    /// merchant's GoSweetSpot numbers its own).
    tickets: HashMap<(String, String), DateTime<Utc>>,
}

impl Pool {
    fn sweeper(&self) -> SweepPorts<'_> {
        SweepPorts {
            integrations: &self.store,
            schedules: &self.store,
            pulls: &self.pulls,
            clock: self.clock.as_ref(),
        }
    }

    fn worker(&self) -> WorkerPorts<'_> {
        WorkerPorts::over(
            &self.store,
            &self.clients,
            &self.jobs,
            &self.pulls,
            self.clock.as_ref(),
            &self.metrics,
        )
    }

    /// Handles one message and records what became of it.
    async fn handle(&self, r: shared::queue::Received) {
        let lag = match self.store.get_schedule(&r.integration_id).await {
            Ok(Some(s)) => (self.clock.now() - s.next_pull_due).to_std().ok(),
            _ => None,
        };
        let job = QueuedJob::from(&r);
        let began = Instant::now();
        let handled = handle_message(&job.body, self.worker(), &self.config, None).await;
        let took = began.elapsed();
        let kind = match &handled {
            Ok(Handled::Pulled { summary, .. }) => format!("pulled_{:?}", summary.outcome),
            Ok(other) => format!("{other:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_lowercase(),
            Err(_) => "failed".into(),
        };
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            *stats.tally.entry(kind).or_default() += 1;
            if r.integration_id != self.backlog_id {
                stats.billed.pull_s += took.as_secs_f64();
                stats.billed.invocations += 1.0;
                stats.billed.receives += 1.0;
            }
            if let Ok(Handled::Pulled { summary, .. }) = &handled {
                stats.lags.extend(lag);
                stats.times.push(took);
                if summary.integration == self.backlog_id
                    && summary.outcome == shared::pull::PullOutcome::Completed
                {
                    stats.backlog_done.get_or_insert(self.clock.now());
                }
            }
        }
        if handled.is_ok() {
            let _ = self.pulls.inner.ack(&r.receipt).await;
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tickets `slips` of tenant `t` now and delivers their shipments to the webhook handler,
    /// 50 to a signed delivery.
    async fn ticket(&self, t: &Tenant, slips: &[String]) {
        for chunk in slips.chunks(50) {
            let now = self.clock.now();
            let mut shipments = Vec::with_capacity(chunk.len());
            for slip in chunk {
                let Ok(mut shipment) = t.gss.create_ticket(slip, sandbox::Ticket::default()) else {
                    continue; // deleted meanwhile (cancelled in CIN7)
                };
                shipment.created_utc = Some(now);
                if let Some(c) = &shipment.consignment_no {
                    self.stats().tickets.insert((t.id.clone(), c.clone()), now);
                }
                shipments.push(shipment);
            }
            if shipments.is_empty() {
                continue;
            }
            let began = Instant::now();
            let ports = WebhookPorts {
                store: &self.store,
                secrets: self.secrets.as_ref(),
                queue: &self.jobs,
                clock: self.clock.as_ref(),
                metrics: &self.metrics,
            };
            let response = deliver(ports, &t.id, &shipments, WEBHOOK_SECRET).await;
            let took = began.elapsed();
            let mut stats = self.stats();
            stats.webhook_times.push(took);
            if t.id != self.backlog_id {
                stats.billed.webhook_s += took.as_secs_f64();
                stats.billed.invocations += 1.0;
                stats.billed.webhooks += 1.0;
            }
            *stats
                .tally
                .entry(format!("webhook_{}", response.status))
                .or_default() += 1;
        }
    }

    /// One write-back invocation: a batch as the event source hands it over; its failed
    /// messages come back after the visibility timeout.
    async fn write_back(&self, received: Vec<shared::queue::Received>) {
        let batch: Vec<QueuedJob> = received.iter().map(QueuedJob::from).collect();
        let ports = WriteBackPorts {
            integrations: &self.store,
            store: &self.store,
            clients: &self.clients,
            shopify: &NoShopify,
            requeue: &self.jobs,
            clock: self.clock.as_ref(),
            metrics: &self.metrics,
        };
        let began = Instant::now();
        let deadline = tokio::time::Instant::now() + self.clock.real(Duration::from_secs(180));
        let failed: BTreeSet<String> =
            shared::writeback::handler::handle(batch, ports, &self.write_back, Some(deadline))
                .await
                .into_iter()
                .collect();
        let took = began.elapsed();
        for r in &received {
            if !failed.contains(&r.message_id) {
                let _ = self.jobs.inner.ack(&r.receipt).await;
            }
        }
        let share = received
            .iter()
            .filter(|r| r.integration_id != self.backlog_id)
            .count() as f64
            / received.len().max(1) as f64;
        let mut stats = self.stats();
        stats.writeback_times.push(took);
        stats.billed.writeback_s += took.as_secs_f64() * share;
        stats.billed.writeback_invocations += share;
        stats.billed.invocations += share;
        stats.billed.receives += share;
    }
}

/// Handler time and requests billed to the merchants other than the backlog's; a write-back
/// batch is shared among its merchants by their share of its jobs.
#[derive(Default)]
struct Billed {
    pull_s: f64,
    webhook_s: f64,
    writeback_s: f64,
    invocations: f64,
    writeback_invocations: f64,
    webhooks: f64,
    /// SQS receives that returned messages (each with one batch delete).
    receives: f64,
}

/// The webhook secret every simulated merchant shares with its GoSweetSpot site.
const WEBHOOK_SECRET: &str = "whsec-fleet-3c1d5e";

/// Merchants whose keys share one Secrets Manager secret (the layout the README recommends
/// for a fleet: a secret costs USD 0.40 a month whatever it holds, and a hundred merchants'
/// keys are about 30 KB of its 64 KB).
pub const MERCHANTS_A_SECRET: usize = 100;

/// Function instances assumed to fetch every shared secret once per TTL (ten each of the pull,
/// the webhook and the write-back): the fleet runs in one process, whose one cache would
/// understate the fetches of a deployment's many.
pub const INSTANCES_FETCHING: f64 = 30.0;

/// The secret holding merchant `index`'s keys: the backlog merchant's alone (its one-off import
/// is not billed to the others), the rest [`MERCHANTS_A_SECRET`] to a secret.
fn secret_of(index: usize, tenant: &Tenant, backlog: bool) -> String {
    if backlog && index == 0 {
        format!("cin7-gss/{}", tenant.id)
    } else {
        format!("cin7-gss/merchants-{:03}", index / MERCHANTS_A_SECRET)
    }
}

/// Every merchant's keys as `secrets set` writes them: `<merchant>/<key>` in its secret's JSON
/// object.
fn fleet_secrets(tenants: &[Tenant], backlog: bool) -> MapSecrets {
    let mut secrets: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for (i, t) in tenants.iter().enumerate() {
        let object = secrets.entry(secret_of(i, t, backlog)).or_default();
        for (key, value) in [
            ("cin7_api_key", CIN7_KEY),
            ("gss_access_key", GSS_KEY),
            ("webhook_secret", WEBHOOK_SECRET),
        ] {
            object.insert(format!("{}/{key}", t.id), value.into());
        }
    }
    MapSecrets(
        secrets
            .into_iter()
            .map(|(name, object)| (name, serde_json::Value::Object(object).to_string()))
            .collect(),
    )
}

/// Runs the fleet.
pub async fn run(config: FleetConfig) -> FleetResult {
    let start = start_of_run();
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let second = Duration::from_secs(1).div_f64(config.speed);
    // The production windows, compressed; the clients pace a little under the sandboxes.
    let cin7_limits = vec![Window::new(3, second), Window::new(60, second * 60)];
    let cin7_pacing = vec![
        Window::new(3, second.mul_f64(1.15)),
        Window::new(60, (second * 60).mul_f64(1.05)),
    ];
    let gss_pacing = vec![
        Window::new(59, (second * 60).mul_f64(1.05)),
        Window::new(999, (second * 3600).mul_f64(1.02)),
    ];
    let pull_share = vec![Window::new(39, (second * 60).mul_f64(1.05))];

    let mut tenants = Vec::with_capacity(config.tenants);
    for n in 0..config.tenants {
        let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY)
            .await
            .unwrap_or_else(|e| panic!("CIN7 sandbox {n}: {e} (raise `ulimit -n`)"));
        let gss = GssSandbox::start(GSS_SITE, GSS_KEY)
            .await
            .unwrap_or_else(|e| panic!("GoSweetSpot sandbox {n}: {e} (raise `ulimit -n`)"));
        cin7.harness().set_limits(cin7_limits.clone());
        let per_day = if n % 100 == 99 {
            config.large_orders_per_day
        } else if n % 20 == 7 {
            // Every 20th merchant takes no orders in the run: the idle polls.
            0.0
        } else {
            config.orders_per_day
        };
        tenants.push(Tenant {
            id: format!("m{n:05}"),
            arrivals: arrivals(
                &mut rng,
                per_day,
                start,
                config.warmup_hours + config.simulated_hours,
            ),
            cin7,
            gss,
        });
    }
    // The backlog: merchant 0 imports this many orders modified the day before.
    let backlog_from = start - chrono::Duration::days(1);
    for i in 0..config.backlog as i64 {
        tenants[0].cin7.put_order(order(
            1_000_000 + i,
            &format!("BL-{i}"),
            backlog_from + chrono::Duration::seconds(i * 5),
        ));
    }

    let dir = std::path::Path::new("/dev/shm")
        .is_dir()
        .then(|| tempfile::tempdir_in("/dev/shm").ok())
        .flatten()
        .or_else(|| tempfile::tempdir().ok())
        .expect("a temporary directory");
    // The backlog merchant's one-off import is left out of what the others are billed for.
    let excluded = (config.backlog > 0).then(|| tenants[0].id.clone());
    let clock = Arc::new(ScaledClock::new(start, config.speed));
    // CIN7 stamps the write-back's updates with its (simulated) time, as it stamps edits.
    for t in &tenants {
        let clock = clock.clone();
        t.cin7.set_clock(Arc::new(move || clock.now()));
    }
    let table = Arc::new(CountingTable::new(
        Arc::new(MemTable::default()),
        excluded.as_ref().map(|id| format!("INT#{id}")),
    ));
    let store = Store::new(table.clone(), clock.clone());
    // Secrets Manager's cache, and the client cache, keep a secret for SECRETS_CACHE_SECONDS.
    let ttl = Duration::from_secs(300);
    let secrets = Arc::new(CountingSecrets::new(
        fleet_secrets(&tenants, excluded.is_some()),
        ttl,
        clock.clone(),
        excluded.as_ref().map(|id| format!("cin7-gss/{id}")),
    ));
    let clients = ClientCache::new(Arc::new(store.clone()), secrets.clone(), Pacing::InProcess)
        .with_cin7_windows(cin7_pacing)
        .with_gss_windows(gss_pacing, pull_share)
        .with_ttl(ttl, clock.clone());
    let pulls = EmbeddedQueue::open_pulls(&dir.path().join("pulls.sqlite3"), 3)
        .expect("the pull queue")
        .with_clock(clock.clone());
    let jobs = EmbeddedQueue::open(&dir.path().join("jobs.sqlite3"), 5)
        .expect("the write-back queue")
        .with_clock(clock.clone());
    for (i, t) in tenants.iter().enumerate() {
        let mut settings: IntegrationSettings =
            integration_tests::sandbox_settings(&t.id, &t.cin7, &t.gss);
        settings.import.start_from = Some(backlog_from - chrono::Duration::hours(1));
        let secret = secret_of(i, t, excluded.is_some());
        settings.cin7.api_key.0 = format!("{secret}#{}/cin7_api_key", t.id);
        settings.gss.access_key.0 = format!("{secret}#{}/gss_access_key", t.id);
        settings.webhook.secret.0 = format!("{secret}#{}/webhook_secret", t.id);
        settings.write_back.send_ticket_number = true;
        settings.write_back.freight = FreightMode::Cost;
        store
            .put_integration(&settings)
            .await
            .expect("settings saved");
    }
    let pool = Arc::new(Pool {
        config: WorkerConfig {
            slice_time: clock.real(Duration::from_secs(60)),
            owner: "fleet".into(),
            ..WorkerConfig::default()
        },
        write_back: WriteBackConfig {
            groups: GroupLimits {
                deadline: clock.real(Duration::from_secs(150)),
                margin: clock.real(Duration::from_secs(10)),
                ..GroupLimits::default()
            },
            ..WriteBackConfig::new("fleet-write-back".into())
        },
        store,
        table,
        clients,
        secrets,
        jobs: CountingQueue::new(jobs, excluded.clone()),
        pulls: CountingQueue::new(pulls, excluded.clone()),
        metrics: CapturedMetrics::default(),
        clock: clock.clone(),
        backlog_id: tenants[0].id.clone(),
        stats: Mutex::default(),
    });
    // Every merchant but the backlog's from the start; the backlog merchant is enabled when
    // the measured hours begin, its import then running beside everyone's polls.
    for t in &tenants[1..] {
        seed(pool.sweeper(), &t.id, PullKind::Seed)
            .await
            .expect("seeded");
    }
    let done = AtomicBool::new(false);
    let reseeded = AtomicU64::new(0);
    let measured_from = start + chrono::Duration::seconds((config.warmup_hours * 3600.0) as i64);
    let end = measured_from + chrono::Duration::seconds((config.simulated_hours * 3600.0) as i64);
    let wall = Instant::now();
    // The process's log counter is shared by every run in it (the day run follows the peak's).
    let logged_before = crate::counting::logged_bytes();
    // Orders appear in each merchant's CIN7 at their (simulated) arrival.
    let mut all_arrivals: Vec<(DateTime<Utc>, usize, i64)> = tenants
        .iter()
        .enumerate()
        .flat_map(|(n, t)| {
            t.arrivals
                .iter()
                .enumerate()
                .map(move |(i, at)| (*at, n, i as i64 + 1))
        })
        .collect();
    all_arrivals.sort();
    let orders = all_arrivals.len();
    let arrive = async {
        for (at, n, id) in &all_arrivals {
            tokio::time::sleep_until(clock.real_at(*at).into()).await;
            tenants[*n]
                .cin7
                .put_order(order(*id, &format!("{}-{id}", tenants[*n].id), *at));
        }
    };
    let backlog = async {
        tokio::time::sleep_until(clock.real_at(measured_from).into()).await;
        seed(pool.sweeper(), &pool.backlog_id, PullKind::Seed)
            .await
            .expect("seeded");
    };
    // Each message is handled on a task of its own (as each Lambda invocation has its own
    // CPU), at most `IN_FLIGHT` at once.
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let dispatch = async {
        while !done.load(Ordering::SeqCst) {
            let free = permits.available_permits().min(10);
            let received = if free == 0 {
                Vec::new()
            } else {
                pool.pulls
                    .inner
                    .receive(free, Duration::from_secs(600))
                    .await
                    .unwrap_or_default()
            };
            if received.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            for r in received {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.handle(r).await;
                    drop(permit);
                });
            }
        }
        // The handlings still in flight finish.
        let _ = permits.acquire_many(IN_FLIGHT as u32).await;
    };
    // The dispatchers: each published order is ticketed a few minutes after it is first seen.
    let dispatching = async {
        let mut rng = fastrand::Rng::with_seed(config.seed ^ 0x5eed);
        let mut seen: Vec<std::collections::HashSet<String>> =
            vec![Default::default(); tenants.len()];
        let mut due: BTreeMap<DateTime<Utc>, Vec<(usize, String)>> = BTreeMap::new();
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(clock.real(Duration::from_secs(30))).await;
            let now = clock.now();
            for (n, t) in tenants.iter().enumerate() {
                for slip in t.gss.packing_slips() {
                    if seen[n].insert(slip.clone()) {
                        let after = rng.u64(TICKET_AFTER_S.0..=TICKET_AFTER_S.1);
                        due.entry(now + chrono::Duration::seconds(after as i64))
                            .or_default()
                            .push((n, slip));
                    }
                }
            }
            let later = due.split_off(&now);
            let ready = std::mem::replace(&mut due, later);
            let mut by_tenant: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for (n, slip) in ready.into_values().flatten() {
                by_tenant.entry(n).or_default().push(slip);
            }
            for (n, slips) in by_tenant {
                pool.ticket(&tenants[n], &slips).await;
            }
        }
    };
    // The write-back's event source: every batching window, batches of up to 100 jobs, at most
    // `WRITE_BACK_INVOCATIONS` invocations at once, each on a task of its own.
    let invocations = Arc::new(tokio::sync::Semaphore::new(WRITE_BACK_INVOCATIONS));
    let writing_back = async {
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(clock.real(WRITE_BACK_WINDOW)).await;
            loop {
                let Ok(permit) = invocations.clone().acquire_owned().await else {
                    break;
                };
                let received = pool
                    .jobs
                    .inner
                    .receive(WRITE_BACK_BATCH, Duration::from_secs(1200))
                    .await
                    .unwrap_or_default();
                if received.is_empty() {
                    break;
                }
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.write_back(received).await;
                    drop(permit);
                });
            }
        }
        let _ = invocations
            .acquire_many(WRITE_BACK_INVOCATIONS as u32)
            .await;
    };
    let sweeping = async {
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(clock.real(Duration::from_secs(300))).await;
            if let Ok(s) = sweep(pool.sweeper(), SweepConfig::default()).await {
                reseeded.fetch_add(s.reseeded.len() as u64, Ordering::Relaxed);
            }
        }
    };
    let stop = async {
        tokio::time::sleep_until(clock.real_at(end).into()).await;
        done.store(true, Ordering::SeqCst);
    };
    tokio::join!(
        arrive,
        backlog,
        dispatch,
        dispatching,
        writing_back,
        sweeping,
        stop
    );
    let wall_s = wall.elapsed().as_secs_f64();
    // What AWS would bill, before the measurement below reads the store.
    let table_counts = pool.table.counts();
    let secrets_calls = pool.secrets.fetches();
    let sqs_sends = pool.jobs.requests() + pool.pulls.requests();
    let store = &pool.store;
    let stats = std::mem::take(&mut *pool.stats.lock().unwrap_or_else(|p| p.into_inner()));

    // Freshness, read from the records: CIN7's modification → published, simulated seconds.
    let backlog_done = stats.backlog_done;
    let (mut all, mut others, mut during) = (Vec::new(), Vec::new(), Vec::new());
    let mut published = 0;
    let mut max_calls = 0i64;
    let mut idle_calls = Vec::new();
    let mut records_by_state: BTreeMap<String, usize> = BTreeMap::new();
    for (n, t) in tenants.iter().enumerate() {
        let records = store.list_orders(&t.id, None).await.unwrap_or_default();
        for r in &records {
            *records_by_state
                .entry(format!("{:?} {}", r.state, r.reason))
                .or_default() += 1;
        }
        for r in &records {
            let (Some(f), Some(modified)) = (r.freshness_seconds, r.modified_date) else {
                continue;
            };
            published += 1;
            if modified < measured_from {
                continue; // the backlog (imported, not "ready during the run") or the warm-up
            }
            let f = Duration::from_secs(u64::try_from(f).unwrap_or_default());
            all.push(f);
            if n != 0 {
                others.push(f);
                if backlog_done.is_none_or(|d| modified <= d) && config.backlog > 0 {
                    during.push(f);
                }
            }
        }
        let calls = store.calls_today(&t.id).await.unwrap_or_default();
        max_calls = max_calls.max(calls);
        if t.arrivals.is_empty() && n != 0 {
            idle_calls.push(calls);
        }
    }
    let s = |d: Duration| d.as_secs_f64();
    let day = 24.0 / (config.warmup_hours + config.simulated_hours);
    let times = &stats.times;
    let handler_total: Duration = times.iter().sum();
    let idle_day = idle_calls.iter().sum::<i64>() as f64 / idle_calls.len().max(1) as f64 * day;
    let per_tenant_day = |x: f64| x / config.tenants as f64 * day;
    // Per merchant billed: the backlog merchant left out.
    let billed_tenants = config.tenants - usize::from(excluded.is_some());
    let per_billed_day = |x: f64| x / billed_tenants.max(1) as f64 * day;
    let billed = |t: &&Tenant| excluded.as_deref() != Some(t.id.as_str());

    // The write-back: each consignment's ticket → its order's dispatch in CIN7 (the record's
    // first `dispatched` transition), simulated seconds.
    let mut writebacks = Vec::new();
    for t in &tenants {
        for r in store
            .list_orders(&t.id, Some(OrderState::Dispatched))
            .await
            .unwrap_or_default()
        {
            let Some(dispatched) = r
                .history
                .iter()
                .find(|h| h.state == OrderState::Dispatched)
                .map(|h| h.at)
            else {
                continue;
            };
            for c in &r.consignments {
                if let Some(ticketed) = stats.tickets.get(&(t.id.clone(), c.connote.clone())) {
                    writebacks.push((dispatched - *ticketed).to_std().unwrap_or_default());
                }
            }
        }
    }
    // Modelled Lambda time: the handlers' own time here, plus the round trips the sandboxes
    // do not take (each CIN7 and GoSweetSpot call, each DynamoDB request, each SQS send).
    let cin7_calls: usize = tenants
        .iter()
        .filter(billed)
        .map(|t| t.cin7.harness().records().len())
        .sum();
    let gss_calls: usize = tenants
        .iter()
        .filter(billed)
        .map(|t| t.gss.harness().records().len())
        .sum();
    let metrics = pool.metrics.all();
    let billed_metrics: Vec<&shared::metrics::Counts> = metrics
        .iter()
        .filter(|c| c.integration.is_none() || c.integration != excluded)
        .collect();
    let writeback_groups: Vec<&&shared::metrics::Counts> = billed_metrics
        .iter()
        .filter(|c| {
            c.function == shared::writeback::handler::FUNCTION && c.get("Cin7Calls").is_some()
        })
        .collect();
    let wb_cin7: u64 = writeback_groups
        .iter()
        .filter_map(|c| c.get("Cin7Calls"))
        .sum();
    let b = &stats.billed;
    let writeback_s =
        b.writeback_s + wb_cin7 as f64 * CIN7_CALL_S + writeback_groups.len() as f64 * GSS_CALL_S;
    let all_gb_s = WEBHOOK_GB * b.webhook_s
        + FUNCTION_GB
            * (b.pull_s
                + b.writeback_s
                + cin7_calls as f64 * CIN7_CALL_S
                + gss_calls as f64 * GSS_CALL_S
                + (table_counts.reads + table_counts.writes) as f64 * DYNAMODB_CALL_S
                + sqs_sends as f64 * 0.01);
    // The shared pacing windows production uses (the fleet paces in process: its compressed
    // windows and the store's simulated clock do not mix): per CIN7 or GoSweetSpot call, one
    // read and one conditional write of the integration's window item, a log of the calls in
    // its longest window (a minute for CIN7, an hour for GoSweetSpot), stored as offsets from
    // the oldest call: ≈8 bytes a call.
    let hours = config.warmup_hours + config.simulated_hours;
    let per_merchant_hour = |calls: usize| calls as f64 / billed_tenants.max(1) as f64 / hours;
    let window_units = |in_window: f64| ((in_window * 8.0 + 140.0) / 1024.0).ceil().max(1.0);
    let rate_write_units = cin7_calls as f64 * window_units(per_merchant_hour(cin7_calls) / 60.0)
        + gss_calls as f64 * window_units(per_merchant_hour(gss_calls));
    let rate_requests = (cin7_calls + gss_calls) as f64;
    let invocations = b.invocations;
    // The metrics CloudWatch would hold: one per dimension set and name (dimensioned by
    // function only, the default), and the bytes of their EMF lines.
    let series: BTreeSet<(&str, &str)> = metrics
        .iter()
        .flat_map(|c| c.counts.iter().map(|(name, _)| (c.function, name.as_str())))
        .collect();
    let emf_bytes: usize = billed_metrics
        .iter()
        .map(|c| {
            c.emf(0, shared::metrics::Dimensions::Function)
                .to_string()
                .len()
                + 1
        })
        .sum();
    let log_bytes = emf_bytes as f64
        + crate::counting::logged_bytes().saturating_sub(logged_before) as f64
        + invocations * PLATFORM_LOG_BYTES as f64;
    let usage = Usage {
        lambda_gb_s: per_billed_day(all_gb_s),
        lambda_requests: per_billed_day(invocations),
        dynamodb_write_units: per_billed_day(table_counts.write_units as f64 + rate_write_units),
        dynamodb_read_units: per_billed_day(table_counts.read_units as f64 + rate_requests),
        // Sends, and each receive that returned messages with its batch delete.
        sqs_requests: per_billed_day(sqs_sends as f64 + 2.0 * b.receives),
        webhook_requests: per_billed_day(b.webhooks),
        merchants_a_secret: MERCHANTS_A_SECRET as f64,
        secrets_calls: per_billed_day(secrets_calls as f64 * INSTANCES_FETCHING),
        // The log lines of every merchant (the backlog's too: they are not told apart).
        log_bytes: per_tenant_day(log_bytes),
        deployment_metrics: series.len() as f64,
        deployment_alarms: 3.0,
        deployment_sqs_requests: crate::cost::idle_polling_a_day(),
        // The sweeper, every five minutes.
        deployment_lambda_requests: 288.0,
    };
    let cost_at = [1, 100, 1_000, 10_000]
        .into_iter()
        .map(|n| (n, cost_per_merchant_month(&usage, n)))
        .collect();
    FleetResult {
        tenants: config.tenants,
        simulated_hours: config.simulated_hours,
        speed: config.speed,
        wall_s,
        orders,
        orders_published: published,
        freshness_p50_s: s(quantile(&all, 0.5)),
        freshness_p95_s: s(quantile(&all, 0.95)),
        freshness_p95_s_backlog_tenant_excluded: s(quantile(&others, 0.95)),
        freshness_p95_s_others_during_backlog: (!during.is_empty())
            .then(|| s(quantile(&during, 0.95))),
        backlog_imported_s: backlog_done.map(|d| (d - measured_from).num_seconds() as f64),
        cin7_calls_per_idle_tenant_day: idle_day,
        cin7_calls_per_idle_tenant_day_policy: idle_polls_a_day(start),
        cin7_budget_percent_max: max_calls as f64 / 5000.0 * 100.0,
        pull_invocations_per_tenant_day: times.len() as f64 / config.tenants as f64 * day,
        pull_handler_ms_p50: quantile(times, 0.5).as_secs_f64() * 1000.0,
        pull_lag_p95_s: s(quantile(&stats.lags, 0.95)),
        // Handler wall time × the pull's memory, per merchant, per day.
        pull_gb_s_per_tenant_day: handler_total.as_secs_f64() * FUNCTION_GB / config.tenants as f64
            * day,
        reseeded_by_sweeper: reseeded.load(Ordering::Relaxed) as usize,
        messages: stats.tally,
        cin7_429s: tenants.iter().map(|t| t.cin7.harness().throttled()).sum(),
        records_by_state,
        consignments: stats.tickets.len(),
        written_back: writebacks.len(),
        writeback_p50_s: s(quantile(&writebacks, 0.5)),
        writeback_p95_s: s(quantile(&writebacks, 0.95)),
        writeback_invocations_per_tenant_day: per_billed_day(b.writeback_invocations),
        writeback_gb_s_per_tenant_day: per_billed_day(writeback_s * FUNCTION_GB),
        webhook_deliveries_per_tenant_day: usage.webhook_requests,
        lambda_gb_s_per_tenant_day: usage.lambda_gb_s,
        dynamodb_writes_per_tenant_day: per_billed_day(table_counts.writes as f64 + rate_requests),
        dynamodb_reads_per_tenant_day: per_billed_day(table_counts.reads as f64 + rate_requests),
        dynamodb_write_units_per_tenant_day: usage.dynamodb_write_units,
        dynamodb_read_units_per_tenant_day: usage.dynamodb_read_units,
        dynamodb_write_units_by_kind_per_tenant_day: table_counts
            .write_units_by_kind
            .iter()
            .map(|(k, v)| (k.clone(), per_billed_day(*v as f64)))
            .chain([(
                "RATE (modelled)".to_string(),
                per_billed_day(rate_write_units),
            )])
            .collect(),
        sqs_requests_per_tenant_day: usage.sqs_requests,
        secrets_calls_per_tenant_day: usage.secrets_calls,
        metrics_per_tenant: series.len() as f64 / config.tenants as f64,
        log_bytes_per_tenant_day: usage.log_bytes,
        cost_usd_per_merchant_month: cost_per_merchant_month(&usage, config.tenants),
        cost_usd_per_merchant_month_at: cost_at,
    }
}

/// CIN7 calls the policy schedules in a day for a merchant that takes no orders (one call a
/// poll, as tests/schedule.rs asserts).
pub fn idle_polls_a_day(from: DateTime<Utc>) -> u32 {
    let policy = PollPolicy::fallback(5000);
    let mut t = from;
    let mut calls = 0;
    while t < from + chrono::Duration::days(1) {
        calls += 1;
        let d = policy.next_delay(t, None, i64::from(calls));
        t += chrono::Duration::from_std(d).unwrap_or(chrono::Duration::minutes(15));
    }
    calls
}
