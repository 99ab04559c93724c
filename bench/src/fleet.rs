//! The fleet simulation (`make bench`'s fleet step): N merchants, each with its own CIN7 and
//! GoSweetSpot sandbox account (a sandbox pair each, with its own rate limits), orders arriving
//! on a day-shaped curve, in compressed time, through the real pull worker and sweeper over the
//! embedded pull queue with delays. Every clock the core reads — the store's, the queue's
//! delays and visibility, the policy's business hours — is one [`ScaledClock`]; the clients'
//! and the sandboxes' rate windows are compressed by the same factor, so the limits hold in
//! simulated time as in production.
//!
//! What it cannot model: the network latency of the real APIs (the sandboxes answer in well
//! under a millisecond; a real CIN7 list call is assumed to take ≈0.5 s), and Lambda's own
//! scheduling. See bench/README.md.

use crate::mem_table::MemTable;
use crate::stats::quantile;
use chrono::{DateTime, TimeZone, Utc};
use integration_tests::{CIN7_KEY, CIN7_USER, GSS_KEY, GSS_SITE, order, sandbox_secrets};
use sandbox::{Cin7Sandbox, GssSandbox};
use serde::Serialize;
use shared::app::{ClientCache, Pacing};
use shared::clock::Clock;
use shared::metrics::CapturedMetrics;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{JobSource, QueuedJob};
use shared::rate_limit::Window;
use shared::schedule::policy::PollPolicy;
use shared::schedule::{
    Handled, PullKind, SweepConfig, SweepPorts, WorkerConfig, WorkerPorts, handle_message, seed,
    sweep,
};
use shared::settings::IntegrationSettings;
use shared::store::Store;
use shared::store::prelude::*;
use std::collections::BTreeMap;
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
}

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
    clients: ClientCache,
    jobs: crate::VecQueue,
    pulls: EmbeddedQueue,
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
            let _ = self.pulls.ack(&r.receipt).await;
        }
    }
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
    let clock = Arc::new(ScaledClock::new(start, config.speed));
    let store = Store::new(Arc::new(MemTable::default()), clock.clone());
    let clients = ClientCache::new(
        Arc::new(store.clone()),
        Arc::new(sandbox_secrets()),
        Pacing::InProcess,
    )
    .with_cin7_windows(cin7_pacing)
    .with_gss_windows(gss_pacing, pull_share);
    let pulls = EmbeddedQueue::open_pulls(&dir.path().join("pulls.sqlite3"), 3)
        .expect("the pull queue")
        .with_clock(clock.clone());
    for t in &tenants {
        let mut settings: IntegrationSettings =
            integration_tests::sandbox_settings(&t.id, &t.cin7, &t.gss);
        settings.import.start_from = Some(backlog_from - chrono::Duration::hours(1));
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
        store,
        clients,
        jobs: crate::VecQueue::default(),
        pulls,
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
    tokio::join!(arrive, backlog, dispatch, sweeping, stop);
    let wall_s = wall.elapsed().as_secs_f64();
    let store = &pool.store;
    let stats = std::mem::take(&mut *pool.stats.lock().unwrap_or_else(|p| p.into_inner()));

    // Freshness, read from the records: CIN7's modification → published, simulated seconds.
    let backlog_done = stats.backlog_done;
    let (mut all, mut others, mut during) = (Vec::new(), Vec::new(), Vec::new());
    let mut published = 0;
    let mut max_calls = 0i64;
    let mut idle_calls = Vec::new();
    for (n, t) in tenants.iter().enumerate() {
        let records = store.list_orders(&t.id, None).await.unwrap_or_default();
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
        // 256 MB functions: handler wall time × 0.25 GB, per merchant, per day.
        pull_gb_s_per_tenant_day: handler_total.as_secs_f64() * 0.25 / config.tenants as f64 * day,
        reseeded_by_sweeper: reseeded.load(Ordering::Relaxed) as usize,
        messages: stats.tally,
        cin7_429s: tenants.iter().map(|t| t.cin7.harness().throttled()).sum(),
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
