//! The pull schedule through the real path: the worker and the sweeper over the sandboxes (real
//! sockets), the SQLite store and the embedded pull queue, on a manual clock (the queue's delays
//! and visibility, the policy's business hours and the sweeper's grace all tell time by it).

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use integration_tests::*;
use sandbox::{Cin7Sandbox, GssSandbox};
use shared::app::{ClientCache, Pacing};
use shared::clock::ManualClock;
use shared::metrics::CapturedMetrics;
use shared::pull::PullOutcome;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{JobQueue, JobSource, Outgoing, QueueError, QueuedJob, Received};
use shared::schedule::{
    Handled, PullKind, PullMessage, SweepConfig, SweepPorts, WorkerConfig, WorkerPorts,
    handle_batch, handle_message, seed, sweep,
};
use shared::settings::IntegrationSettings;
use shared::store::Store;
use shared::store::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// 10:00 NZDT on a Tuesday: in the default business hours.
fn morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 21, 0, 0).unwrap()
}

const SALES_ORDERS: &str = "/api/v1/SalesOrders";

/// A pull queue whose sends fail while `down` is set (a crash between a pull and its next
/// message, seen from outside).
struct FlakyQueue {
    inner: EmbeddedQueue,
    down: AtomicBool,
}

#[async_trait]
impl JobQueue for FlakyQueue {
    async fn send(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable(
                "the process died before sending".into(),
            ));
        }
        self.inner.send(messages).await
    }
}

struct World {
    clock: Arc<ManualClock>,
    store: Store,
    clients: ClientCache,
    jobs: EmbeddedQueue,
    pulls: FlakyQueue,
    metrics: CapturedMetrics,
    cin7: Cin7Sandbox,
    gss: GssSandbox,
    config: WorkerConfig,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        Self::over(|table| table, Pacing::InProcess).await
    }

    /// A world whose SQLite table is wrapped by `wrap`, its clients paced as `pacing` says.
    async fn over(
        wrap: impl FnOnce(Arc<dyn shared::store::Table>) -> Arc<dyn shared::store::Table>,
        pacing: Pacing,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(morning()));
        let table =
            shared::store::sqlite::SqliteTable::open(&dir.path().join("s.sqlite3")).unwrap();
        let store = Store::new(wrap(Arc::new(table)), clock.clone());
        let clients =
            ClientCache::new(Arc::new(store.clone()), Arc::new(sandbox_secrets()), pacing)
                .with_http(Duration::from_secs(10), fast_retry(3));
        let jobs = EmbeddedQueue::open(&dir.path().join("q.sqlite3"), 5)
            .unwrap()
            .with_clock(clock.clone());
        let pulls = FlakyQueue {
            inner: EmbeddedQueue::open_pulls(&dir.path().join("q.sqlite3"), 3)
                .unwrap()
                .with_clock(clock.clone()),
            down: AtomicBool::new(false),
        };
        let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.unwrap();
        let gss = GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
        Self {
            clock,
            store,
            clients,
            jobs,
            pulls,
            metrics: CapturedMetrics::default(),
            cin7,
            gss,
            config: WorkerConfig {
                owner: "worker".into(),
                ..WorkerConfig::default()
            },
            _dir: dir,
        }
    }

    fn settings(&self, id: &str) -> IntegrationSettings {
        sandbox_settings(id, &self.cin7, &self.gss)
    }

    async fn integration(&self, id: &str) {
        self.store
            .put_integration(&self.settings(id))
            .await
            .unwrap();
    }

    fn orders(&self, from: i64, n: i64) {
        for id in from..from + n {
            self.cin7.put_order(order(
                id,
                &format!("SO-{id}"),
                morning() - chrono::Duration::hours(1) + chrono::Duration::seconds(id),
            ));
        }
    }

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

    async fn visible(&self) -> Vec<Received> {
        self.receive(10).await
    }

    async fn receive(&self, max: usize) -> Vec<Received> {
        self.pulls
            .inner
            .receive(max, Duration::from_secs(300))
            .await
            .unwrap()
    }

    /// Receives and handles every visible pull message; returns what each did.
    async fn handle_visible(&self) -> Vec<Handled> {
        let mut out = Vec::new();
        for r in self.visible().await {
            let handled = handle_message(&r.body, self.worker(), &self.config, None)
                .await
                .unwrap();
            self.pulls.inner.ack(&r.receipt).await.unwrap();
            out.push(handled);
        }
        out
    }

    fn advance(&self, d: Duration) {
        self.clock.advance(chrono::Duration::from_std(d).unwrap());
    }

    fn list_calls(&self) -> usize {
        self.cin7.harness().count("GET", SALES_ORDERS)
    }
}

fn delay_of(h: &Handled) -> Duration {
    match h {
        Handled::Pulled { delay, .. } => *delay,
        other => panic!("not pulled: {other:?}"),
    }
}

#[tokio::test]
async fn the_worker_reschedules_itself_with_the_policys_delay_and_an_idle_poll_costs_one_call() {
    let w = World::new().await;
    w.integration("acme").await;
    w.orders(1, 3);
    let seeded = seed(w.sweeper(), "acme", PullKind::Seed).await.unwrap();
    let handled = w.handle_visible().await;
    assert_eq!(handled.len(), 1);
    let Handled::Pulled {
        summary,
        next,
        delay,
    } = &handled[0]
    else {
        panic!("{handled:?}")
    };
    assert_eq!(summary.published, 3);
    assert_eq!(*next, PullKind::Next);
    assert_eq!(*delay, Duration::from_secs(60), "active in business hours");
    assert_eq!(summary.freshness_seconds.len(), 3);
    let schedule = w.store.get_schedule("acme").await.unwrap().unwrap();
    assert_ne!(schedule.token, seeded.token, "the chain moved on");
    assert_eq!(
        schedule.next_pull_due,
        morning() + chrono::Duration::seconds(60)
    );
    // The next message is delayed by the policy's minute.
    w.advance(Duration::from_secs(59));
    assert!(w.visible().await.is_empty());
    w.advance(Duration::from_secs(1));
    let calls = w.list_calls();
    let idle = w.handle_visible().await;
    assert_eq!(idle.len(), 1);
    assert_eq!(w.list_calls() - calls, 1, "an idle poll is one CIN7 call");
    assert_eq!(
        w.gss.harness().count("PUT", "/api/customerorders"),
        1,
        "nothing more was published"
    );
    // Still active (an order arrived a minute ago): every minute.
    assert_eq!(delay_of(&idle[0]), Duration::from_secs(60));
    // The reconcile (the backstop for lost webhooks) runs at most every five minutes: the
    // first pull's, then none until five minutes after it.
    let reconciles = || w.gss.harness().count("GET", "/api/shipments");
    assert_eq!(
        reconciles(),
        1,
        "the idle poll a minute later did not reconcile"
    );
    for minute in 2..=5 {
        w.advance(Duration::from_secs(60));
        assert_eq!(w.handle_visible().await.len(), 1);
        let expected = if minute < 5 { 1 } else { 2 };
        assert_eq!(reconciles(), expected, "after {minute} minutes");
    }
    // Quiet for over half an hour: every two minutes.
    w.advance(Duration::from_secs(31 * 60));
    let quiet = w.handle_visible().await;
    assert_eq!(delay_of(&quiet[0]), Duration::from_secs(120));
    assert_eq!(reconciles(), 3);
    // A record's freshness is CIN7's modification to the publish.
    let record = w.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_eq!(record.published_at, Some(morning()));
    assert_eq!(record.freshness_seconds, Some(3600 - 1));
    assert_eq!(w.metrics.sum("order-pull", "FreshnessSeconds"), 3600 - 1);
}

#[tokio::test]
async fn a_crash_between_the_pull_and_its_next_message_is_reseeded_by_the_sweeper_once() {
    let w = World::new().await;
    w.integration("acme").await;
    w.orders(1, 2);
    seed(w.sweeper(), "acme", PullKind::Seed).await.unwrap();
    let received = w.visible().await;
    w.pulls.down.store(true, Ordering::SeqCst);
    let handled = handle_message(&received[0].body, w.worker(), &w.config, None)
        .await
        .unwrap();
    assert!(matches!(handled, Handled::NotSent { .. }), "{handled:?}");
    w.pulls.inner.ack(&received[0].receipt).await.unwrap();
    w.pulls.down.store(false, Ordering::SeqCst);
    let grace = SweepConfig::default().grace;
    // Due in a minute; not overdue by the grace period until then.
    w.advance(Duration::from_secs(60) + grace - Duration::from_secs(1));
    let early = sweep(w.sweeper(), SweepConfig::default()).await.unwrap();
    assert!(early.reseeded.is_empty(), "{early:?}");
    assert!(w.visible().await.is_empty(), "nothing was sent");
    w.advance(Duration::from_secs(2) + Duration::from_secs(300));
    let swept = sweep(w.sweeper(), SweepConfig::default()).await.unwrap();
    assert_eq!(swept.reseeded, ["acme"]);
    let again = sweep(w.sweeper(), SweepConfig::default()).await.unwrap();
    assert!(again.reseeded.is_empty(), "re-seeded once: {again:?}");
    let handled = w.handle_visible().await;
    assert_eq!(handled.len(), 1, "exactly one message");
    assert!(matches!(handled[0], Handled::Pulled { .. }), "{handled:?}");
    // The sweep read the due index from its cursor: a handful of buckets, not every integration.
    assert!(swept.buckets <= 3, "{swept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_for_one_integration_never_pull_it_twice_at_once() {
    let w = World::new().await;
    w.integration("acme").await;
    w.orders(1, 5);
    let message = seed(w.sweeper(), "acme", PullKind::Seed).await.unwrap();
    let received = w.visible().await;
    w.cin7.harness().set_latency(Duration::from_millis(300));
    // The same message delivered twice at once (SQS is at least once).
    let (a, b) = tokio::join!(
        handle_message(&received[0].body, w.worker(), &w.config, None),
        handle_message(&received[0].body, w.worker(), &w.config, None)
    );
    let mut outcomes = [a.unwrap(), b.unwrap()]
        .map(|h| match h {
            Handled::Pulled { .. } => "pulled",
            Handled::Busy => "busy",
            Handled::Stale => "stale",
            other => panic!("{other:?}"),
        })
        .to_vec();
    outcomes.sort();
    assert!(
        outcomes == ["busy", "pulled"] || outcomes == ["pulled", "stale"],
        "{outcomes:?}"
    );
    assert_eq!(w.list_calls(), 1, "one pull");
    assert_eq!(w.gss.harness().count("PUT", "/api/customerorders"), 1);
    // A message of a replaced chain is dropped without a call.
    let old = PullMessage {
        token: "a-replaced-chain".into(),
        ..message
    };
    let handled = handle_message(&old.body(), w.worker(), &w.config, None)
        .await
        .unwrap();
    assert_eq!(handled, Handled::Stale);
    assert_eq!(w.list_calls(), 1);
}

#[tokio::test]
async fn a_backlog_continues_from_its_saved_cursor_behind_other_merchants_at_no_extra_call() {
    let w = World {
        config: WorkerConfig {
            slice_pages: 1,
            owner: "worker".into(),
            ..WorkerConfig::default()
        },
        ..World::new().await
    };
    w.integration("acme").await;
    // 900 orders: four pages of 250 (the last short).
    w.orders(1, 900);
    // Another merchant, on its own sandboxes.
    let cin7_b = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.unwrap();
    let gss_b = GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
    cin7_b.put_order(order(1, "B-1", morning() - chrono::Duration::minutes(5)));
    w.store
        .put_integration(&sandbox_settings("bolt", &cin7_b, &gss_b))
        .await
        .unwrap();
    seed(w.sweeper(), "acme", PullKind::Seed).await.unwrap();
    seed(w.sweeper(), "bolt", PullKind::Seed).await.unwrap();
    let mut order_handled = Vec::new();
    for _ in 0..10 {
        // One message at a time, in the queue's order.
        let Some(r) = w.receive(1).await.pop() else {
            break;
        };
        let handled = handle_message(&r.body, w.worker(), &w.config, None)
            .await
            .unwrap();
        let id = PullMessage::parse(&r.body).unwrap().integration_id;
        w.pulls.inner.ack(&r.receipt).await.unwrap();
        let outcome = match &handled {
            Handled::Pulled { summary, .. } => summary.outcome,
            other => panic!("{other:?}"),
        };
        order_handled.push((id, outcome));
    }
    assert_eq!(
        order_handled,
        [
            ("acme".to_string(), PullOutcome::Sliced),
            ("bolt".to_string(), PullOutcome::Completed),
            ("acme".to_string(), PullOutcome::Sliced),
            ("acme".to_string(), PullOutcome::Sliced),
            ("acme".to_string(), PullOutcome::Completed),
        ],
        "the other merchant's poll waited one slice"
    );
    assert_eq!(w.gss.packing_slips().len(), 900);
    assert_eq!(
        w.list_calls(),
        4,
        "⌈900 / 250⌉: a continuation re-reads nothing"
    );
    let cursor = w.store.get_cursor("acme").await.unwrap().unwrap();
    assert_eq!(cursor.resume, None, "read to the end");
}

#[tokio::test]
async fn unknown_disabled_and_malformed_messages() {
    let w = World::new().await;
    w.integration("acme").await;
    let mut off = w.settings("off");
    off.enabled = false;
    w.store.put_integration(&off).await.unwrap();
    for (id, reason) in [("nobody", "unknown_integration"), ("off", "disabled")] {
        let m = PullMessage::new(id, PullKind::Next);
        let handled = handle_message(&m.body(), w.worker(), &w.config, None)
            .await
            .unwrap();
        assert_eq!(handled, Handled::Dropped { reason });
    }
    assert!(w.visible().await.is_empty(), "dropped, not rescheduled");
    assert_eq!(w.list_calls(), 0);
    // A malformed message fails on every receive, then goes to the dead-letter list.
    w.pulls
        .inner
        .send(&[Outgoing {
            integration_id: "acme".into(),
            body: "{\"integration_id\": \"acme\"}".into(),
            ..Outgoing::default()
        }])
        .await
        .unwrap();
    for _ in 0..3 {
        let received = w.visible().await;
        assert_eq!(received.len(), 1);
        let batch = received.iter().map(QueuedJob::from).collect();
        let failed = handle_batch(batch, w.worker(), &w.config, None).await;
        assert_eq!(failed, [received[0].message_id.clone()]);
        w.advance(Duration::from_secs(301));
    }
    assert!(w.visible().await.is_empty());
    let dead = w.pulls.inner.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(w.metrics.sum("order-pull", "PullMessagesFailed"), 3);
}

#[tokio::test]
async fn the_poll_budget_spreads_the_rest_of_the_day() {
    let w = World::new().await;
    w.integration("acme").await;
    // 1,990 of the 2,000 calls polling may use today are spent.
    w.store.count_calls("acme", 1990).await.unwrap();
    seed(w.sweeper(), "acme", PullKind::Seed).await.unwrap();
    let handled = w.handle_visible().await;
    let delay = delay_of(&handled[0]);
    // 21:00 UTC: 3 h left of the UTC day over 9 calls left (one was just made).
    assert_eq!(delay, Duration::from_secs(3 * 3600 / 9));
    // The message is sent with SQS's longest delay; arriving early, it waits again.
    w.advance(Duration::from_secs(900));
    let early = w.handle_visible().await;
    assert_eq!(
        early,
        [Handled::Early {
            delay: delay - Duration::from_secs(900)
        }]
    );
    assert_eq!(w.list_calls(), 1);
}

/// DynamoDB writes by the kind of item, of `counted` since `before`.
fn writes_since(
    counted: &integration_tests::recording::CountingTable,
    before: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    counted
        .counts()
        .writes_by_kind
        .into_iter()
        .map(|(k, n)| (k.clone(), n - before.get(&k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn the_store_writes_of_an_idle_poll_an_order_a_webhook_and_a_write_back() {
    let counted = Arc::new(std::sync::OnceLock::new());
    let keep = counted.clone();
    let w = World::over(
        move |table| {
            let c = Arc::new(integration_tests::recording::CountingTable::new(
                table, None,
            ));
            let _ = keep.set(c.clone());
            c
        },
        Pacing::Shared,
    )
    .await;
    let counted: &integration_tests::recording::CountingTable =
        counted.get().expect("the world's table");
    let kinds = |list: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        list.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    let mut settings = w.settings("acme");
    settings.write_back.send_ticket_number = true;
    w.store.put_integration(&settings).await.unwrap();
    seed(w.sweeper(), "acme", PullKind::Seed).await.unwrap();
    // The first pull makes the cursors; each poll is handled when its message is due.
    let mut due = delay_of(&w.handle_visible().await[0]);
    let mut poll = async || {
        let before = counted.counts().writes_by_kind;
        w.advance(due);
        let handled = w.handle_visible().await;
        assert_eq!(handled.len(), 1);
        due = delay_of(&handled[0]);
        writes_since(counted, &before)
    };

    // An idle poll: the lease taken and given back, the day's CIN7 count, the schedule, and
    // one shared-window write for each call (the CIN7 list and the reconcile's GoSweetSpot
    // read); no cursor (the reconcile's was saved minutes ago). A merchant that has taken no
    // order is polled every five minutes, so each next due time falls in the next five-minute
    // bucket of the due index: the entry moves (a write and a delete) every idle poll.
    for _ in 0..2 {
        let idle = poll().await;
        assert_eq!(
            idle,
            kinds(&[
                ("CALLS", 1),
                ("DUE", 2),
                ("LEASE", 2),
                ("RATE", 2),
                ("SCHEDULE", 1)
            ]),
            "{idle:?}"
        );
    }

    // A poll that publishes one order: the idle poll's, plus the order's record and its
    // packing-slip index, the pull cursor, and the GoSweetSpot PUT's window write.
    w.orders(1, 1);
    let one = poll().await;
    assert_eq!(
        one,
        kinds(&[
            ("CALLS", 1),
            ("CURSOR", 1),
            ("LEASE", 2),
            ("ORDER", 1),
            ("RATE", 3),
            ("RECONCILE", 1),
            ("SCHEDULE", 1),
            ("SLIP", 1)
        ]),
        "{one:?} (the reconcile's cursor is 15 minutes old by this poll: saved)"
    );

    // The order's consignment webhook: the delivery's dedup entry, the consignment's sighting,
    // the order's record (the consignment noted); the job queued.
    let shipment = w
        .gss
        .create_ticket("SO-1", sandbox::Ticket::default())
        .unwrap();
    let secrets = sandbox_secrets();
    let before = counted.counts().writes_by_kind;
    let ports = shared::webhook::WebhookPorts {
        store: &w.store,
        secrets: &secrets,
        queue: &w.jobs,
        clock: w.clock.as_ref(),
        metrics: &w.metrics,
    };
    let answered = deliver(ports, "acme", &[shipment], "whsec-3c1d5e").await;
    assert_eq!(answered.status, 202, "{answered:?}");
    let webhook = writes_since(counted, &before);
    assert_eq!(
        webhook,
        kinds(&[("CONSIGNMENT", 1), ("DELIVERY", 1), ("ORDER", 1)]),
        "{webhook:?}"
    );

    // Its write-back: the consignment's claim taken and completed, the order's record, and a
    // window write for each call (GoSweetSpot's shipment read, CIN7's order read and PUT).
    let jobs: Vec<QueuedJob> = w
        .jobs
        .receive(10, Duration::from_secs(60))
        .await
        .unwrap()
        .iter()
        .map(QueuedJob::from)
        .collect();
    assert_eq!(jobs.len(), 1);
    let before = counted.counts().writes_by_kind;
    let ports = shared::writeback::handler::WriteBackPorts {
        integrations: &w.store,
        store: &w.store,
        clients: &w.clients,
        shopify: &NoShopify,
        requeue: &w.jobs,
        clock: w.clock.as_ref(),
        metrics: &w.metrics,
    };
    let config = shared::writeback::handler::WriteBackConfig::new("wb".into());
    assert!(
        shared::writeback::handler::handle(jobs, ports, &config, None)
            .await
            .is_empty()
    );
    let write_back = writes_since(counted, &before);
    assert_eq!(
        write_back,
        kinds(&[("CALLS", 1), ("IDEM", 2), ("ORDER", 1), ("RATE", 3)]),
        "{write_back:?}"
    );
}
