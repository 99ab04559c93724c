//! The whole path in one process: N orders in the CIN7 sandbox → the pull publishes them to
//! the GoSweetSpot sandbox → every order is ticketed → the signed webhook deliveries (50
//! shipments each) go through the webhook handler into a queue → the write-back consumes the
//! jobs in batches of 100 → every order is dispatched in CIN7.
//!
//! Paced runs give the sandboxes the APIs' limits (scaled by a time factor; 1.0 is real time)
//! and the clients the production ceilings, scaled alike; CIN7's limiter is one for the pull
//! and the write-back, as the store-shared window is in production. Unpaced runs count calls.
//! A run is sequential (stage after stage, calls counted per stage) or pipelined (the stages at
//! once, as in production: see [`Schedule`]).

use crate::VecQueue;
use crate::bound::{
    CIN7_LIMITS, GSS_SANDBOX_LIMITS, Limit, cin7_ceilings, gss_ceilings, pull_gss_share_ceilings,
    scaled,
};
use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use integration_tests::{
    CIN7_KEY, CIN7_USER, GSS_KEY, GSS_SITE, cin7_client, gss_client, order, sandbox_secrets,
    sandbox_settings,
};
use sandbox::{Cin7Sandbox, GssSandbox, Ticket};
use shared::http::RetryPolicy;
use shared::jobs::WriteBackJob;
use shared::pull::{PullDeps, PullOptions, PullOutcome, SharedSink, run_pull};
use shared::rate_limit::{RateLimiter, Window, WindowLimiter};
use shared::store::Store;
use shared::store::prelude::*;
use shared::webhook::WebhookPorts;
use shared::writeback::run::{JobOutcome, WriteBackDeps, run_batch};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Jobs per write-back batch (the SQS event source's batch size).
pub const WRITE_BACK_BATCH: usize = 100;
/// Shipments per webhook delivery.
pub const DELIVERY: usize = 50;

/// How the stages of a run follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// The whole pull, then every ticket and webhook, then the whole write-back: each stage's
    /// calls are counted apart (the call-efficiency rows).
    Sequential,
    /// As in production: the dispatcher tickets orders as they are published, the webhooks
    /// queue their write-backs, and the write-back consumes batches of 100 (or what the SQS
    /// batching window gathered) while the pull is still publishing (the throughput rows).
    Pipelined,
}

/// What one run does.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    pub orders: usize,
    /// `Some(factor)`: paced, every window × factor. `None`: no limits anywhere.
    pub time_factor: Option<f64>,
    pub schedule: Schedule,
}

/// Calls of one phase, as the sandboxes recorded them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub cin7_get: u64,
    pub cin7_put: u64,
    pub gss_get: u64,
    pub gss_put: u64,
}

impl Calls {
    /// Every CIN7 call.
    pub fn cin7(&self) -> u64 {
        self.cin7_get + self.cin7_put
    }

    /// Every GoSweetSpot call.
    pub fn gss(&self) -> u64 {
        self.gss_get + self.gss_put
    }
}

/// The calls of a sequential run's two phases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseCalls {
    pub import: Calls,
    pub write_back: Calls,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct FlowResult {
    pub orders: usize,
    pub schedule: Schedule,
    pub wall: Duration,
    /// When the pull completed, from the start.
    pub pull_done: Duration,
    /// When the last webhook delivery was accepted, from the start.
    pub webhooks_done: Duration,
    /// Every call, as the sandboxes recorded them.
    pub calls: Calls,
    /// Per phase (sequential runs only: in a pipelined run the phases overlap).
    pub phases: Option<PhaseCalls>,
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

/// Everything a run shares: the sandboxes, the store, the clients and their limiters.
struct Rig {
    cin7: Cin7Sandbox,
    gss: GssSandbox,
    store: Store,
    settings: shared::settings::IntegrationSettings,
    cin7_api: shared::cin7::client::Cin7Client,
    gss_api: shared::gss::client::GssClient,
    cin7_limiter: Arc<dyn RateLimiter>,
    /// The pull's share of GoSweetSpot's window, as the pull handler takes it.
    pull_gss_share: WindowLimiter,
    secrets: integration_tests::MapSecrets,
    queue: VecQueue,
    /// How often the pipelined stages look for work.
    poll: Duration,
    /// The SQS event source's batching window, scaled.
    batch_window: Duration,
    _dir: tempfile::TempDir,
}

async fn rig(config: FlowConfig) -> Rig {
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

    let factor = config.time_factor.unwrap_or(0.0);
    let (cin7_limiter, gss_limiter): (Arc<dyn RateLimiter>, Arc<dyn RateLimiter>) =
        match config.time_factor {
            Some(f) => {
                cin7.harness().set_limits(windows(&scaled(&CIN7_LIMITS, f)));
                gss.harness()
                    .set_limits(windows(&scaled(&GSS_SANDBOX_LIMITS, f)));
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
    Rig {
        cin7,
        gss,
        store,
        settings,
        cin7_api,
        gss_api,
        cin7_limiter,
        pull_gss_share: WindowLimiter::new(match config.time_factor {
            Some(f) => windows(&scaled(&pull_gss_share_ceilings(), f)),
            None => Vec::new(),
        }),
        secrets: sandbox_secrets(),
        queue: VecQueue::default(),
        poll: Duration::from_millis(100)
            .mul_f64(factor)
            .max(Duration::from_millis(5)),
        batch_window: Duration::from_secs(10).mul_f64(factor),
        _dir: dir,
    }
}

/// Runs the pull until it has read everything; returns how many runs it took.
async fn pull(rig: &Rig) -> usize {
    let count = || (rig.cin7_api.calls().total(), rig.gss_api.calls().total());
    let mut runs = 0;
    loop {
        runs += 1;
        let summary = run_pull(
            PullDeps {
                store: &rig.store,
                cin7: &rig.cin7_api,
                gss: &SharedSink {
                    sink: &rig.gss_api,
                    share: &rig.pull_gss_share,
                },
                feed: &rig.gss_api,
                queue: &rig.queue,
                clock: &shared::clock::SystemClock,
                calls: &count,
            },
            &rig.settings,
            &PullOptions {
                owner: "bench".into(),
                daily_budget: i64::MAX / 4,
                write_back_reserve: 0,
                ..PullOptions::default()
            },
        )
        .await
        .expect("the pull runs");
        if summary.outcome == PullOutcome::Completed || runs >= 5 {
            return runs;
        }
    }
}

/// Tickets the given published orders and delivers their shipments, 50 to a signed delivery.
async fn ticket_and_deliver(rig: &Rig, slips: &[String]) {
    let secret = rig
        .secrets
        .0
        .get("WEBHOOK_SECRET")
        .cloned()
        .expect("webhook secret");
    for chunk in slips.chunks(DELIVERY) {
        let mut shipments = Vec::with_capacity(chunk.len());
        for slip in chunk {
            shipments.push(
                rig.gss
                    .ticket(slip, Ticket::default())
                    .await
                    .expect("ticketed"),
            );
        }
        let ports = WebhookPorts {
            store: &rig.store,
            secrets: &rig.secrets,
            queue: &rig.queue,
            clock: &shared::clock::SystemClock,
            metrics: &shared::metrics::LogMetrics,
        };
        let response = integration_tests::deliver(ports, "acme", &shipments, &secret).await;
        assert_eq!(response.status, 202, "webhook answered {response:?}");
    }
}

/// Writes back one batch of queued jobs; returns how many finished `Done`.
async fn write_back(rig: &Rig, batch: &[shared::queue::Outgoing]) -> usize {
    let jobs: Vec<WriteBackJob> = batch
        .iter()
        .map(|m| WriteBackJob::from_body(&m.body).expect("job body"))
        .collect();
    let deps = WriteBackDeps {
        store: &rig.store,
        gss: &rig.gss_api,
        cin7: &rig.cin7_api,
        shopify: &integration_tests::NoShopify,
        shopify_template: "",
        cin7_pacing: rig.cin7_limiter.as_ref(),
        owner: "bench",
        claim_hold: Duration::from_secs(120),
        clock: &shared::clock::SystemClock,
    };
    run_batch(&deps, &rig.settings, &jobs)
        .await
        .expect("write-back runs")
        .iter()
        .filter(|o| matches!(o, JobOutcome::Done))
        .count()
}

/// Runs the whole path once.
pub async fn run(config: FlowConfig) -> FlowResult {
    let rig = rig(config).await;
    let started = Instant::now();
    let (pull_runs, pull_done, webhooks_done, written_back, phases) = match config.schedule {
        Schedule::Sequential => {
            let runs = pull(&rig).await;
            let pull_done = started.elapsed();
            let import = calls(&rig.cin7, &rig.gss);
            ticket_and_deliver(&rig, &rig.gss.packing_slips()).await;
            let webhooks_done = started.elapsed();
            let before = calls(&rig.cin7, &rig.gss);
            let mut done = 0;
            for batch in rig.queue.take().chunks(WRITE_BACK_BATCH) {
                done += write_back(&rig, batch).await;
            }
            let phases = PhaseCalls {
                import,
                write_back: minus(calls(&rig.cin7, &rig.gss), before),
            };
            (runs, pull_done, webhooks_done, done, Some(phases))
        }
        Schedule::Pipelined => {
            let (runs, pull_done, webhooks_done, done) = pipelined(&rig, started).await;
            (runs, pull_done, webhooks_done, done, None)
        }
    };
    let wall = started.elapsed();
    let dispatched = rig
        .cin7
        .orders()
        .iter()
        .filter(|o| o["stage"] == "Dispatched")
        .count();
    FlowResult {
        orders: config.orders,
        schedule: config.schedule,
        wall,
        pull_done,
        webhooks_done,
        calls: calls(&rig.cin7, &rig.gss),
        phases,
        cin7_throttled: rig.cin7.harness().throttled(),
        gss_throttled: rig.gss.harness().throttled(),
        dispatched,
        written_back,
        pull_runs,
    }
}

/// The three stages at once, as in production: returns the pull's runs, when the pull and the
/// last delivery finished, and how many jobs were written back.
async fn pipelined(rig: &Rig, started: Instant) -> (usize, Duration, Duration, usize) {
    let pulled = AtomicBool::new(false);
    let delivered = AtomicBool::new(false);
    let pull_stage = async {
        let runs = pull(rig).await;
        pulled.store(true, Ordering::SeqCst);
        (runs, started.elapsed())
    };
    // The dispatcher: tickets what has been published since it last looked.
    let dispatch_stage = async {
        let mut ticketed: HashSet<String> = HashSet::new();
        loop {
            let finished = pulled.load(Ordering::SeqCst);
            let new: Vec<String> = rig
                .gss
                .packing_slips()
                .into_iter()
                .filter(|s| !ticketed.contains(s))
                .collect();
            if new.is_empty() {
                if finished {
                    delivered.store(true, Ordering::SeqCst);
                    return started.elapsed();
                }
                tokio::time::sleep(rig.poll).await;
                continue;
            }
            ticket_and_deliver(rig, &new).await;
            ticketed.extend(new);
        }
    };
    // The SQS event source: a batch when 100 jobs wait, or when the batching window has passed
    // since the first of them arrived, or when nothing more will come.
    let write_back_stage = async {
        let mut done = 0;
        let mut first_waiting: Option<Instant> = None;
        loop {
            let finished = delivered.load(Ordering::SeqCst);
            let waiting = rig.queue.len();
            if waiting == 0 {
                if finished {
                    return done;
                }
                first_waiting = None;
                tokio::time::sleep(rig.poll).await;
                continue;
            }
            let since = *first_waiting.get_or_insert_with(Instant::now);
            if waiting >= WRITE_BACK_BATCH || finished || since.elapsed() >= rig.batch_window {
                let batch = rig.queue.take_up_to(WRITE_BACK_BATCH);
                first_waiting = None;
                done += write_back(rig, &batch).await;
            } else {
                tokio::time::sleep(rig.poll).await;
            }
        }
    };
    let ((runs, pull_done), webhooks_done, done) =
        tokio::join!(pull_stage, dispatch_stage, write_back_stage);
    (runs, pull_done, webhooks_done, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pipelined_run_dispatches_every_order() {
        // The write-back dispatches orders while the pull still pages through them: nothing
        // may be skipped, and a webhook may come before the publish is recorded (at 3,000
        // orders this flow dispatched 1,276 before the pull paged by key and indexed each
        // packing slip before publishing it).
        let r = run(FlowConfig {
            orders: 700,
            time_factor: None,
            schedule: Schedule::Pipelined,
        })
        .await;
        assert_eq!(r.dispatched, 700);
        assert_eq!(r.written_back, 700);
        assert_eq!(
            r.calls.gss_put, 14,
            "each order published once, 50 to a call"
        );
    }
}
