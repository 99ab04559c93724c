//! Each Lambda function's code path — the same handler and wiring its `main.rs` runs — over
//! adapters that record the AWS action each call would be, calls exactly what the function
//! declares (`DECLARATION.iam_actions`: nothing undeclared, nothing declared unused), and its
//! `Config` reads exactly the environment it declares, with the declared defaults.
//! tests/infra.rs checks the template against the same declarations.

use chrono::{TimeZone, Utc};
use integration_tests::recording::{Actions, RecordingQueue, RecordingSecrets, RecordingTable};
use integration_tests::*;
use rust_decimal::Decimal;
use sandbox::{Cin7Sandbox, FaultKind, GssSandbox, Matcher, Method, Ticket};
use serde_json::{Value, json};
use shared::app::{ClientCache, Declaration};
use shared::clock::SystemClock;
use shared::metrics::CapturedMetrics;
use shared::pull::PullOutcome;
use shared::pull::handler::{PullPorts, PullRequest};
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{JobSource, QueuedJob};
use shared::records::{OrderRecord, OrderState};
use shared::schedule::{PullKind, SweepPorts, WorkerPorts, handle_batch, seed, sweep};
use shared::store::Store;
use shared::store::prelude::*;
use shared::webhook::router::WebhookState;
use shared::writeback::HttpShopifyTrigger;
use shared::writeback::handler::WriteBackPorts;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// A store, a queue and the sandboxes' secrets, each recording into `actions`.
struct World {
    actions: Actions,
    store: Store,
    secrets: Arc<RecordingSecrets<MapSecrets>>,
    queue: Arc<RecordingQueue<EmbeddedQueue>>,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let actions = Actions::default();
    let table =
        shared::store::sqlite::SqliteTable::open(&dir.path().join("s.sqlite3")).expect("store");
    let store = Store::new(
        Arc::new(RecordingTable {
            inner: Arc::new(table),
            actions: actions.clone(),
        }),
        Arc::new(SystemClock),
    );
    let queue = EmbeddedQueue::open(&dir.path().join("q.sqlite3"), 5).expect("queue");
    World {
        store,
        secrets: Arc::new(RecordingSecrets {
            inner: sandbox_secrets(),
            actions: actions.clone(),
        }),
        queue: Arc::new(RecordingQueue {
            inner: queue,
            actions: actions.clone(),
        }),
        actions,
        _dir: dir,
    }
}

fn declared(d: &Declaration) -> BTreeSet<String> {
    d.iam_actions.iter().map(|a| a.to_string()).collect()
}

/// A function's `Config` from its declared environment (each default, or a sample value).
fn config<C: serde::de::DeserializeOwned>(d: &Declaration) -> C {
    envy::from_iter(d.env.iter().map(|v| {
        (
            v.name.to_string(),
            v.default.unwrap_or("sample").to_string(),
        )
    }))
    .expect("the declared environment makes a Config")
}

/// The declared environment is exactly what `Config` reads, with the code's defaults.
fn check_environment<C: serde::de::DeserializeOwned + serde::Serialize>(
    name: &str,
    d: &Declaration,
) {
    let full: C = config(d);
    let fields: BTreeSet<String> = match serde_json::to_value(&full).expect("Config serialises") {
        Value::Object(map) => map.keys().map(|k| k.to_uppercase()).collect(),
        other => panic!("{name}: Config is not a struct: {other}"),
    };
    let names: BTreeSet<String> = d.env.iter().map(|v| v.name.to_string()).collect();
    assert_eq!(
        fields, names,
        "{name}: Config's fields vs the declared environment"
    );
    // Only the variables without a default set: Config takes the declared defaults.
    let required = d
        .env
        .iter()
        .filter(|v| v.default.is_none())
        .map(|v| (v.name.to_string(), "sample".to_string()));
    let minimal: C = envy::from_iter(required)
        .unwrap_or_else(|e| panic!("{name}: a variable without a declared default: {e}"));
    let minimal = serde_json::to_value(&minimal).expect("Config serialises");
    for v in d.env {
        let value = &minimal[v.name.to_lowercase()];
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(
            shown,
            v.default.unwrap_or("sample"),
            "{name}: {}'s default in the code vs its declaration",
            v.name
        );
    }
}

#[test]
fn each_config_reads_exactly_its_declared_environment() {
    check_environment::<order_pull::Config>("order-pull", &order_pull::DECLARATION);
    check_environment::<write_back::Config>("write-back", &write_back::DECLARATION);
    check_environment::<consignment_webhook::Config>(
        "consignment-webhook",
        &consignment_webhook::DECLARATION,
    );
}

#[tokio::test]
async fn order_pull_calls_what_it_declares() {
    let w = world();
    let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.expect("cin7");
    let gss = GssSandbox::start(GSS_SITE, GSS_KEY).await.expect("gss");
    let base = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    for id in 1..=2 {
        cin7.put_order(order(
            id,
            &format!("SO-{id}"),
            base + chrono::Duration::minutes(id),
        ));
    }
    w.store
        .put_integration(&sandbox_settings("acme", &cin7, &gss))
        .await
        .expect("saved");
    let config: order_pull::Config = config(&order_pull::DECLARATION);
    let clients = ClientCache::shared(Arc::new(w.store.clone()), w.secrets.clone());
    let metrics = CapturedMetrics::default();
    let ports = PullPorts {
        integrations: &w.store,
        store: &w.store,
        clients: &clients,
        queue: w.queue.as_ref(),
        clock: &SystemClock,
        metrics: &metrics,
    };
    let pulls = RecordingQueue {
        inner: EmbeddedQueue::open(&w._dir.path().join("pulls.sqlite3"), 3).expect("queue"),
        actions: w.actions.clone(),
    };
    let sweeper = SweepPorts {
        integrations: &w.store,
        schedules: &w.store,
        pulls: &pulls,
        clock: &SystemClock,
    };
    w.actions.clear();
    // A direct pull publishes; GoSweetSpot tickets an order whose webhook never comes; the
    // integration is seeded and its pull message reconciles it; the schedule's sweep finds
    // nothing overdue.
    let handlers = config.handlers();
    let first = shared::pull::handler::handle(PullRequest::All, ports, &handlers.pull, None)
        .await
        .expect("pulled");
    assert_eq!(
        (first[0].outcome, first[0].published),
        (PullOutcome::Completed, 2)
    );
    gss.create_ticket("SO-1", Ticket::default())
        .expect("ticketed");
    seed(sweeper, "acme", PullKind::Seed).await.expect("seeded");
    let received = pulls
        .inner
        .receive(10, Duration::from_secs(30))
        .await
        .expect("received");
    let worker = WorkerPorts {
        pull: ports,
        schedules: &w.store,
        pulls: &pulls,
    };
    let batch = received.iter().map(QueuedJob::from).collect();
    let failed = handle_batch(batch, worker, &handlers.worker, None).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        metrics.sum("order-pull", "ConsignmentsReconciled"),
        1,
        "one record: its Function dimension is what the alarm reads"
    );
    let swept = sweep(sweeper, handlers.sweep).await.expect("swept");
    assert!(swept.reseeded.is_empty(), "{swept:?}");
    assert_eq!(w.actions.recorded(), declared(&order_pull::DECLARATION));
    assert_eq!(metrics.sum("order-pull", "OrdersPublished"), 2);
}

#[tokio::test]
async fn the_webhook_calls_what_it_declares() {
    let w = world();
    let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.expect("cin7");
    let gss = GssSandbox::start(GSS_SITE, GSS_KEY).await.expect("gss");
    w.store
        .put_integration(&sandbox_settings("acme", &cin7, &gss))
        .await
        .expect("saved");
    let mut record = OrderRecord::new(7, OrderState::Published, "published", Utc::now());
    record.packing_slip = Some("SO-7".into());
    assert!(
        w.store
            .save_order("acme", &mut record)
            .await
            .expect("saved")
    );
    let metrics = Arc::new(CapturedMetrics::default());
    let app = consignment_webhook::app(WebhookState {
        store: Arc::new(w.store.clone()),
        secrets: w.secrets.clone(),
        queue: w.queue.clone(),
        clock: Arc::new(SystemClock),
        metrics: metrics.clone(),
    });
    w.actions.clear();
    let body = json!([{"ConsignmentNo": "SSPOT000777", "PackingSlipNo": "SO-7",
        "TotalCost": 8.5, "CreatedUtc": "2026-11-27T01:02:03", "ManualTicket": false}])
    .to_string();
    let signature = shared::signature::sign(b"whsec-3c1d5e", body.as_bytes()).expect("signed");
    let event = webhook_event("acme", &body, &signature);
    let request = lambda_http::request::from_str(&event.to_string()).expect("a request");
    let response = app.oneshot(request).await.expect("answered");
    assert_eq!(response.status(), 202);
    assert_eq!(
        w.actions.recorded(),
        declared(&consignment_webhook::DECLARATION)
    );
    assert_eq!(metrics.sum("consignment-webhook", "JobsQueued"), 1);
}

#[tokio::test]
async fn the_write_back_calls_what_it_declares() {
    let w = world();
    let rig = WriteBackRig::with_table(Arc::new(RecordingTable {
        inner: Arc::new(
            shared::store::sqlite::SqliteTable::open(&w._dir.path().join("wb.sqlite3"))
                .expect("store"),
        ),
        actions: w.actions.clone(),
    }))
    .await;
    rig.integration(
        "acme",
        json!({"send_ticket_number": true, "freight": "cost", "shopify_trigger": "800541"}),
    )
    .await;
    let job = rig
        .ticketed(
            "acme",
            order(
                1,
                "SO-1",
                Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
            ),
            Ticket {
                cost: Decimal::new(850, 2),
                ..Ticket::default()
            },
        )
        .await;
    let config: write_back::Config = config(&write_back::DECLARATION);
    let mut handler_config = config.write_back();
    handler_config.shopify_template = rig.cin7.shopify_template();
    let clients = ClientCache::shared(Arc::new(rig.store.clone()), w.secrets.clone());
    let shopify = HttpShopifyTrigger::new(Duration::from_secs(5)).expect("client");
    let metrics = CapturedMetrics::default();
    let ports = WriteBackPorts {
        integrations: &rig.store,
        store: &rig.store,
        clients: &clients,
        shopify: &shopify,
        requeue: w.queue.as_ref(),
        clock: &SystemClock,
        metrics: &metrics,
    };
    // The Shopify link fails once: its claim is released, and the redelivery triggers it.
    rig.cin7.harness().inject(
        Matcher::route(Method::GET, "/shopify/"),
        FaultKind::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    w.actions.clear();
    let first = shared::writeback::handler::handle(
        rig.messages(std::slice::from_ref(&job), 1),
        ports,
        &handler_config,
        None,
    )
    .await;
    assert_eq!(first.len(), 1, "redelivered after the Shopify failure");
    let again =
        shared::writeback::handler::handle(rig.messages(&[job], 2), ports, &handler_config, None)
            .await;
    assert!(again.is_empty());
    let record = rig.store.get_order("acme", 1).await.expect("read");
    assert_eq!(
        record.map(|r| r.reason).as_deref(),
        Some("shopify_triggered")
    );
    // A second merchant at its daily CIN7 budget: its job is sent again for the next day.
    rig.integration("bolt", json!({"send_ticket_number": true}))
        .await;
    let deferred = rig
        .ticketed(
            "bolt",
            order(
                2,
                "SO-2",
                Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
            ),
            Ticket::default(),
        )
        .await;
    rig.store
        .count_calls("bolt", handler_config.daily_budget)
        .await
        .expect("count");
    let later = shared::writeback::handler::handle(
        rig.messages(&[deferred], 1),
        ports,
        &handler_config,
        None,
    )
    .await;
    assert!(later.is_empty());
    assert_eq!(metrics.sum("write-back", "WriteBacksDeferred"), 1);
    assert_eq!(w.actions.recorded(), declared(&write_back::DECLARATION));
    assert_eq!(metrics.sum("write-back", "WriteBacksDone"), 1);
}
