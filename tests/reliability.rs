//! The reliability suite: the whole system — pull, webhook and write-back, through the same
//! library handlers the Lambdas and local mode run — against the sandboxes with faults
//! injected, and the promises checked from the sandboxes' own records afterwards:
//! every eligible order published once, every consignment written back once, no freight added
//! twice, nothing lost (dispatched, or dead-lettered with its reason on the order), CIN7's
//! windows never exceeded, no secret in any log line.
//!
//! `make test` runs every scenario at a reduced size; `make reliability` runs them at full size
//! (`-- --ignored`) and prints the table. CIN7's limits are compressed in time (a "second" of
//! 50 ms, a "minute" of 3 s) for both our pacing and the sandbox's check.

use chrono::{TimeZone, Utc};
use integration_tests::*;
use rust_decimal::Decimal;
use sandbox::{Cin7Sandbox, FaultKind, GssSandbox, Matcher, Method, Ticket};
use serde_json::json;
use shared::app::{Cin7Pacing, ClientCache};
use shared::pull::PullOutcome;
use shared::pull::handler::{PullConfig, PullRequest, handle as pull};
use shared::queue::JobSource;
use shared::queue::embedded::EmbeddedQueue;
use shared::rate_limit::Window;
use shared::store::{OrderState, Store, Table};
use shared::webhook::http::{WebhookDeps, WebhookRequest, handle as webhook};
use shared::writeback::handler::{QueuedJob, WriteBackConfig, handle as write_back};
use shared::writeback::run::HttpShopifyTrigger;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_millis(50);
const WEBHOOK_SECRET: &str = "whsec-3c1d5e";

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary (debug level and up), for the secrets check.
fn logs() -> &'static Mutex<Vec<u8>> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| Sink)
            .try_init();
    });
    &LOGS
}

/// What a scenario injects.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    cin7_429: f64,
    cin7_5xx: f64,
    cin7_timeouts: f64,
    cin7_put_commit_then_500: bool,
    gss_5xx: f64,
    malformed: f64,
    kill_write_back: bool,
    concurrent: bool,
    bad_credentials_neighbour: bool,
    /// The store on DynamoDB (moto) behind a proxy that drops every connection for this long
    /// in the middle of the write-backs.
    dynamodb_outage: Option<Duration>,
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    scenario: &'static str,
    faults: String,
    orders: usize,
    published_once: bool,
    dispatched_once: bool,
    freight_once: bool,
    lost: usize,
    rate_violations: usize,
    secrets_leaked: usize,
}

impl Row {
    fn ok(&self) -> bool {
        self.published_once
            && self.dispatched_once
            && self.freight_once
            && self.lost == 0
            && self.rate_violations == 0
            && self.secrets_leaked == 0
    }
}

struct Merchant {
    id: String,
    cin7: Cin7Sandbox,
    gss: GssSandbox,
}

async fn merchant(id: &str, orders: usize, store: &Store, wrong_key: bool) -> Merchant {
    let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.unwrap();
    cin7.harness().set_limits(scaled_cin7_windows(SECOND));
    let gss = GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
    let base = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    for n in 1..=orders as i64 {
        let mut o = order(n, &format!("{id}-{n}"), base + chrono::Duration::seconds(n));
        o["taxStatus"] = json!(if n % 2 == 0 { "Incl" } else { "Excl" });
        cin7.put_order(o);
    }
    let mut s = sandbox_settings(id, &cin7, &gss);
    s.import.max_age_days = 5000;
    s.write_back.send_ticket_number = true;
    s.write_back.freight = shared::settings::FreightMode::Cost;
    s.webhook.signature_param = Some("signature".into());
    if wrong_key {
        s.cin7.api_key.0 = "WRONG_KEY".into();
    }
    store.put_integration(&s).await.unwrap();
    Merchant {
        id: id.into(),
        cin7,
        gss,
    }
}

fn inject(m: &Merchant, f: &Faults) {
    let h = m.cin7.harness();
    if f.cin7_429 > 0.0 {
        h.inject_ratio(
            Matcher::any(),
            FaultKind::Status {
                status: 429,
                retry_after: Some(0),
            },
            f.cin7_429,
        );
    }
    if f.cin7_5xx > 0.0 {
        h.inject_ratio(
            Matcher::any(),
            FaultKind::Status {
                status: 503,
                retry_after: None,
            },
            f.cin7_5xx,
        );
    }
    if f.cin7_timeouts > 0.0 {
        h.inject_ratio(
            Matcher::any(),
            FaultKind::Hang(Duration::from_millis(700)),
            f.cin7_timeouts,
        );
    }
    if f.cin7_put_commit_then_500 {
        h.inject_ratio(Matcher::method(Method::PUT), FaultKind::CommitThen500, 1.0);
    }
    if f.gss_5xx > 0.0 {
        m.gss.harness().inject_ratio(
            Matcher::any(),
            FaultKind::Status {
                status: 500,
                retry_after: None,
            },
            f.gss_5xx,
        );
    }
    if f.malformed > 0.0 {
        h.inject_ratio(
            Matcher::route(Method::GET, "/api/v1"),
            FaultKind::Truncate,
            f.malformed / 2.0,
        );
        h.inject_ratio(
            Matcher::route(Method::GET, "/api/v1"),
            FaultKind::Garbage,
            f.malformed / 2.0,
        );
        m.gss.harness().inject_ratio(
            Matcher::route(Method::GET, "/api/shipments"),
            FaultKind::Truncate,
            f.malformed,
        );
    }
}

fn clear(m: &Merchant) {
    m.cin7.harness().clear_faults();
    m.gss.harness().clear_faults();
}

struct World {
    store: Store,
    queue: EmbeddedQueue,
    clients: ClientCache,
    config: WriteBackConfig,
    shopify: HttpShopifyTrigger,
    secrets: MapSecrets,
}

fn world(table: Arc<dyn Table>, queue_path: &std::path::Path) -> World {
    let store = Store::new(table, Arc::new(shared::clock::SystemClock));
    let mut secrets = sandbox_secrets();
    secrets
        .0
        .insert("WRONG_KEY".into(), "not-the-cin7-key".into());
    let clients_secrets = sandbox_secrets();
    let mut cs = clients_secrets.0.clone();
    cs.insert("WRONG_KEY".into(), "not-the-cin7-key".into());
    let clients = ClientCache::new(store.clone(), Arc::new(MapSecrets(cs)), Cin7Pacing::Shared)
        .with_http(Duration::from_millis(400), fast_retry(3))
        .with_cin7_windows(vec![
            Window::new(3, SECOND + Duration::from_millis(25)),
            Window::new(60, SECOND * 60 + Duration::from_millis(100)),
        ]);
    World {
        store,
        queue: EmbeddedQueue::open(queue_path, 5).unwrap(),
        clients,
        config: WriteBackConfig {
            shopify_template: String::new(),
            claim_hold: Duration::from_millis(800),
            max_receives: 5,
            owner: unique_name("rel"),
        },
        shopify: HttpShopifyTrigger::new(Duration::from_secs(2)).unwrap(),
        secrets,
    }
}

async fn pull_until_done(w: &World, id: &str, deadline: Instant) {
    let config = PullConfig {
        concurrency: 1,
        margin: Duration::ZERO,
        owner: unique_name("pull"),
    };
    while Instant::now() < deadline {
        let s = pull(
            PullRequest::One(id.into()),
            &w.store,
            &w.clients,
            &config,
            None,
        )
        .await
        .unwrap();
        if s[0].outcome == PullOutcome::Completed {
            return;
        }
    }
}

/// Delivers each consignment's created, picked and delivered webhooks, three times each,
/// shuffled; a 500 is retried as GoSweetSpot would.
async fn deliver(w: &World, m: &Merchant, shipments: &[shared::gss::model::Shipment]) {
    let mut deliveries = Vec::new();
    for s in shipments {
        let mut picked = s.clone();
        picked.picked = Some("2026-11-27T10:00:00".into());
        let mut delivered = picked.clone();
        delivered.delivered = Some("2026-11-28T10:00:00".into());
        for _ in 0..3 {
            deliveries.extend([s.clone(), picked.clone(), delivered.clone()]);
        }
    }
    fastrand::shuffle(&mut deliveries);
    for d in deliveries {
        let body = serde_json::to_string(&[d]).unwrap();
        let sig = shared::signature::sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes()).unwrap();
        let query = vec![("signature".to_string(), sig)];
        for _ in 0..20 {
            let r = webhook(
                WebhookDeps {
                    store: &w.store,
                    secrets: &w.secrets,
                    queue: &w.queue,
                },
                &WebhookRequest {
                    method: "POST",
                    integration_id: Some(&m.id),
                    query: &query,
                    content_type: Some("application/json"),
                    body: body.as_bytes(),
                },
            )
            .await;
            if r.status != 500 {
                assert_eq!(r.status, 202, "{}", r.body);
                break;
            }
        }
    }
}

/// Runs write-back workers until the queue is empty (or the deadline passes). With `kill`, a
/// worker dies at a random point of a batch now and then (nothing acknowledged; its claims
/// stay in progress until their hold lapses), as a killed process would.
async fn drain(w: &World, workers: usize, kill: bool, deadline: Instant) {
    let worker = || async {
        while Instant::now() < deadline {
            let received = w
                .queue
                .receive(100, Duration::from_millis(600))
                .await
                .unwrap();
            if received.is_empty() {
                if w.queue.depth().await.unwrap() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let batch: Vec<QueuedJob> = received
                .iter()
                .map(|r| QueuedJob {
                    message_id: r.message_id.clone(),
                    body: r.body.clone(),
                    receive_count: r.receive_count,
                })
                .collect();
            let work = write_back(batch, &w.store, &w.clients, &w.shopify, &w.config);
            let failed = if kill && fastrand::f64() < 0.3 {
                let cut = Duration::from_millis(fastrand::u64(1..40));
                match tokio::time::timeout(cut, work).await {
                    Ok(failed) => failed,
                    Err(_) => continue,
                }
            } else {
                work.await
            };
            for r in received.iter().filter(|r| !failed.contains(&r.message_id)) {
                w.queue.ack(&r.receipt).await.unwrap();
            }
        }
    };
    futures::future::join_all((0..workers).map(|_| worker())).await;
}

/// Runs one scenario and checks its invariants.
async fn scenario(name: &'static str, orders: usize, faults: Faults) -> Row {
    let secrets_in_logs = [CIN7_KEY, GSS_KEY, WEBHOOK_SECRET, "not-the-cin7-key"];
    let logs = logs();
    let dir = tempfile::tempdir().unwrap();
    let table =
        Arc::new(shared::store::sqlite::SqliteTable::open(&dir.path().join("s.sqlite3")).unwrap());
    let w = world(table, &dir.path().join("s.sqlite3"));
    let m = merchant("acme", orders, &w.store, false).await;
    let neighbour = if faults.bad_credentials_neighbour {
        Some(merchant("bolt", orders.min(20), &w.store, true).await)
    } else {
        None
    };
    let third = if faults.bad_credentials_neighbour {
        Some(merchant("carl", orders.min(20), &w.store, false).await)
    } else {
        None
    };
    inject(&m, &faults);
    let deadline = Instant::now() + Duration::from_secs(240);

    // Pull (twice at once when asked) until complete.
    if faults.concurrent {
        tokio::join!(
            pull_until_done(&w, "acme", deadline),
            pull_until_done(&w, "acme", deadline)
        );
    } else {
        pull_until_done(&w, "acme", deadline).await;
    }
    if let Some(n) = &neighbour {
        let config = PullConfig {
            concurrency: 1,
            margin: Duration::ZERO,
            owner: unique_name("pull"),
        };
        let s = pull(
            PullRequest::One(n.id.clone()),
            &w.store,
            &w.clients,
            &config,
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            s[0].outcome,
            PullOutcome::Failed,
            "the bad integration fails"
        );
        assert!(
            s[0].error.as_deref().unwrap_or("").contains("401"),
            "and says why: {:?}",
            s[0].error
        );
    }
    if let Some(c) = &third {
        pull_until_done(&w, &c.id, deadline).await;
    }

    // The dispatcher tickets every published order; the webhooks arrive repeated and shuffled.
    let mut shipments = Vec::new();
    for slip in m.gss.packing_slips() {
        shipments.push(
            m.gss
                .ticket(
                    &slip,
                    Ticket {
                        cost: Decimal::new(850, 2),
                        carrier: "Post Haste".into(),
                    },
                )
                .await
                .unwrap(),
        );
    }
    deliver(&w, &m, &shipments).await;
    if let Some(c) = &third {
        let mut s = Vec::new();
        for slip in c.gss.packing_slips() {
            s.push(c.gss.ticket(&slip, Ticket::default()).await.unwrap());
        }
        deliver(&w, c, &s).await;
    }
    drain(
        &w,
        if faults.concurrent { 4 } else { 1 },
        faults.kill_write_back,
        deadline,
    )
    .await;
    // Faults off: what is left must complete (redelivery), or be dead-lettered with a reason.
    clear(&m);
    drain(&w, 1, false, deadline).await;

    // The invariants, from the sandboxes' own records.
    let mut published: BTreeMap<String, usize> = BTreeMap::new();
    for r in m.gss.harness().records() {
        if r.method == "PUT" && r.status == 200 {
            for o in serde_json::from_str::<Vec<serde_json::Value>>(&r.body).unwrap_or_default() {
                *published
                    .entry(o["packingslipno"].as_str().unwrap_or("").to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    let applied = m.cin7.applied();
    let failed = w
        .store
        .list_orders("acme", Some(OrderState::Failed))
        .await
        .unwrap();
    let mut lost = 0;
    let mut freight_once = true;
    for id in 1..=orders as i64 {
        let o = m.cin7.order(id).unwrap();
        let dispatched = o["stage"] == "Dispatched";
        let dead_lettered = failed
            .iter()
            .any(|r| r.cin7_id == id && !r.reason.is_empty());
        if !dispatched && !dead_lettered {
            lost += 1;
        }
        if dispatched {
            let want = if id % 2 == 0 {
                Decimal::new(978, 2)
            } else {
                Decimal::new(850, 2)
            };
            let got: Decimal = o["freightTotal"].to_string().parse().unwrap_or_default();
            freight_once &= got == want;
        }
    }
    let published_once = published.len() == orders && published.values().all(|n| *n == 1);
    let dispatched_once = applied.values().all(|a| a.dispatches <= 1);
    freight_once &= applied.values().all(|a| a.freight_changes <= 1);
    let h = m.cin7.harness();
    let rate_violations =
        usize::from(h.max_in_window(SECOND) > 3) + usize::from(h.max_in_window(SECOND * 60) > 60);
    let text =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(
        text.contains("\"integration\""),
        "the logs were captured (the secrets check is real)"
    );
    let secrets_leaked = secrets_in_logs.iter().filter(|s| text.contains(*s)).count();
    Row {
        scenario: name,
        faults: describe(&faults),
        orders,
        published_once,
        dispatched_once,
        freight_once,
        lost,
        rate_violations,
        secrets_leaked,
    }
}

fn describe(f: &Faults) -> String {
    let mut parts = Vec::new();
    let mut pct = |name: &str, v: f64| {
        if v > 0.0 {
            parts.push(format!("{name} {:.0}%", v * 100.0));
        }
    };
    pct("CIN7 429", f.cin7_429);
    pct("CIN7 5xx", f.cin7_5xx);
    pct("CIN7 timeouts", f.cin7_timeouts);
    pct("GSS 5xx", f.gss_5xx);
    pct("malformed bodies", f.malformed);
    if let Some(d) = f.dynamodb_outage {
        parts.push(format!("DynamoDB away {} s", d.as_secs_f64()));
    }
    for (on, name) in [
        (f.cin7_put_commit_then_500, "CIN7 PUT 500 after commit"),
        (f.kill_write_back, "write-back killed at random"),
        (f.concurrent, "2 pulls + 4 workers"),
        (f.bad_credentials_neighbour, "3 integrations, 1 bad key"),
    ] {
        if on {
            parts.push(name.to_string());
        }
    }
    parts.push("webhooks 3x shuffled".into());
    parts.join(", ")
}

fn print(rows: &[Row]) {
    println!(
        "{:<28} {:>6} {:>9} {:>10} {:>8} {:>5} {:>10} {:>8}  faults",
        "scenario", "orders", "published", "dispatched", "freight", "lost", "rate viol.", "secrets"
    );
    for r in rows {
        let yes = |b: bool| if b { "once" } else { "TWICE" };
        println!(
            "{:<28} {:>6} {:>9} {:>10} {:>8} {:>5} {:>10} {:>8}  {}",
            r.scenario,
            r.orders,
            yes(r.published_once),
            yes(r.dispatched_once),
            yes(r.freight_once),
            r.lost,
            r.rate_violations,
            r.secrets_leaked,
            r.faults
        );
    }
}

fn scenarios() -> Vec<(&'static str, Faults)> {
    vec![
        (
            "cin7_429_30pct",
            Faults {
                cin7_429: 0.3,
                ..Faults::default()
            },
        ),
        (
            "cin7_5xx_and_timeouts_20pct",
            Faults {
                cin7_5xx: 0.1,
                cin7_timeouts: 0.1,
                ..Faults::default()
            },
        ),
        (
            "cin7_put_500_after_commit",
            Faults {
                cin7_put_commit_then_500: true,
                ..Faults::default()
            },
        ),
        (
            "gss_5xx_20pct",
            Faults {
                gss_5xx: 0.2,
                ..Faults::default()
            },
        ),
        ("webhooks_3x_shuffled", Faults::default()),
        (
            "write_back_killed",
            Faults {
                kill_write_back: true,
                ..Faults::default()
            },
        ),
        (
            "two_pulls_four_workers",
            Faults {
                concurrent: true,
                ..Faults::default()
            },
        ),
        (
            "three_integrations_one_bad",
            Faults {
                bad_credentials_neighbour: true,
                ..Faults::default()
            },
        ),
        (
            "malformed_bodies",
            Faults {
                malformed: 0.2,
                ..Faults::default()
            },
        ),
    ]
}

async fn run_all(orders: usize, outage: Duration) {
    let mut rows = Vec::new();
    let mut all = scenarios();
    all.push((
        "dynamodb_away",
        Faults {
            dynamodb_outage: Some(outage),
            ..Faults::default()
        },
    ));
    for (name, faults) in all {
        rows.push(scenario(name, orders, faults).await);
    }
    print(&rows);
    let bad: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.scenario)
        .collect();
    assert!(bad.is_empty(), "scenarios with a wrong cell: {bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reduced_scenarios() {
    run_all(30, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "full size: make reliability"]
async fn full_scenarios() {
    run_all(500, Duration::from_secs(10)).await;
}
