//! The `order-pull` handler with the event fixtures: every enabled integration on a schedule,
//! one on "sync now", failures isolated per integration; on SQLite and on DynamoDB (moto).

use chrono::{TimeZone, Utc};
use integration_tests::*;
use sandbox::{Cin7Sandbox, GssSandbox};
use serde_json::Value;
use shared::app::{ClientCache, ClientProvider, Pacing};
use shared::pull::PullOutcome;
use shared::pull::handler::{
    PullConfig, PullEvent, PullHandlerError, PullPorts, PullRequest, handle, parse_event,
};
use shared::rate_limit::Window;
use shared::records::OrderState;
use shared::store::prelude::*;
use shared::store::{Store, Table};
use std::sync::Arc;
use std::time::Duration;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn config() -> PullConfig {
    PullConfig {
        concurrency: 2,
        margin: Duration::from_secs(5),
        owner: "test".into(),
    }
}

struct World {
    cin7: Cin7Sandbox,
    gss: GssSandbox,
    store: Store,
    clients: ClientCache,
    queue: shared::queue::embedded::EmbeddedQueue,
    metrics: shared::metrics::CapturedMetrics,
}

impl World {
    fn ports(&self) -> PullPorts<'_> {
        PullPorts {
            integrations: &self.store,
            store: &self.store,
            clients: &self.clients,
            queue: &self.queue,
            clock: &shared::clock::SystemClock,
            metrics: &self.metrics,
        }
    }
}

async fn world(table: Arc<dyn Table>, pacing: Pacing) -> World {
    let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.unwrap();
    let gss = GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
    let base = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    for id in 1..=30 {
        cin7.put_order(order(
            id,
            &format!("SO-{id}"),
            base + chrono::Duration::minutes(id),
        ));
    }
    let store = Store::new(table, Arc::new(shared::clock::SystemClock));
    let mut secrets = sandbox_secrets();
    secrets.0.insert("WRONG_KEY".into(), "not-the-key".into());
    let clients = ClientCache::new(Arc::new(store.clone()), Arc::new(secrets), pacing)
        .with_http(Duration::from_secs(5), fast_retry(3));
    for (id, key, enabled) in [
        ("acme", "CIN7_KEY", true),
        ("bolt", "WRONG_KEY", true),
        ("carl", "CIN7_KEY", false),
    ] {
        let mut s = sandbox_settings(id, &cin7, &gss);
        s.cin7.api_key.0 = key.into();
        s.enabled = enabled;
        s.import.max_age_days = 5000;
        store.put_integration(&s).await.unwrap();
    }
    let queue = shared::queue::embedded::EmbeddedQueue::open(
        &tempfile::tempdir().unwrap().keep().join("q.sqlite3"),
        5,
    )
    .unwrap();
    World {
        cin7,
        gss,
        store,
        clients,
        queue,
        metrics: Default::default(),
    }
}

#[tokio::test]
async fn the_schedule_pulls_every_enabled_integration_and_isolates_failures() {
    let path = tempfile::tempdir().unwrap().keep().join("s.sqlite3");
    let w = world(
        Arc::new(shared::store::sqlite::SqliteTable::open(&path).unwrap()),
        Pacing::InProcess,
    )
    .await;
    // The schedule's event is the sweeper's now, an SQS event a batch of pull messages;
    // every enabled integration is pulled in process here (local mode's and the CLI's "pull
    // all").
    assert_eq!(
        parse_event(&fixture("order-pull-scheduled.json")).unwrap(),
        PullEvent::Sweep
    );
    let PullEvent::Messages(batch) = parse_event(&fixture("order-pull-messages.json")).unwrap()
    else {
        panic!("a batch of pull messages")
    };
    let message = shared::schedule::PullMessage::parse(&batch[0].body).unwrap();
    assert_eq!(
        (message.integration_id.as_str(), message.kind),
        ("acme", shared::schedule::PullKind::Next)
    );
    let mut summaries = handle(PullRequest::All, w.ports(), &config(), None)
        .await
        .unwrap();
    summaries.sort_by(|a, b| a.integration.cmp(&b.integration));
    assert_eq!(summaries.len(), 2, "the disabled integration is not pulled");
    assert_eq!(summaries[0].integration, "acme");
    assert_eq!(summaries[0].outcome, PullOutcome::Completed);
    assert_eq!(summaries[0].published, 30);
    assert_eq!(summaries[1].integration, "bolt");
    assert_eq!(summaries[1].outcome, PullOutcome::Failed);
    let error = summaries[1].error.clone().unwrap();
    assert!(
        error.contains("401") && error.contains("cin7.api_username"),
        "{error}"
    );
    assert!(!error.contains("not-the-key"));
    assert_eq!(w.gss.packing_slips().len(), 30);
}

#[tokio::test]
async fn sync_now_pulls_one_and_refuses_unknown_or_disabled() {
    let path = tempfile::tempdir().unwrap().keep().join("s.sqlite3");
    let w = world(
        Arc::new(shared::store::sqlite::SqliteTable::open(&path).unwrap()),
        Pacing::InProcess,
    )
    .await;
    let PullEvent::One(id) = parse_event(&fixture("order-pull-sync-now.json")).unwrap() else {
        panic!("a direct pull of one integration")
    };
    let summaries = handle(PullRequest::One(id), w.ports(), &config(), None)
        .await
        .unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].published, 30);
    let err = handle(PullRequest::One("nope".into()), w.ports(), &config(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, PullHandlerError::UnknownIntegration(_)));
    let err = handle(PullRequest::One("carl".into()), w.ports(), &config(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, PullHandlerError::Disabled(_)), "{err}");
    drop(w.cin7);
}

#[tokio::test]
async fn a_pull_on_dynamodb_with_the_shared_rate_window() {
    let w = world(dynamo_table().await, Pacing::Shared).await;
    let summaries = handle(PullRequest::One("acme".into()), w.ports(), &config(), None)
        .await
        .unwrap();
    assert_eq!(
        summaries[0].outcome,
        PullOutcome::Completed,
        "{summaries:?}"
    );
    assert_eq!(summaries[0].published, 30);
    assert_eq!(
        w.store
            .list_orders("acme", Some(OrderState::Published))
            .await
            .unwrap()
            .len(),
        30
    );
    // Idle poll: one CIN7 call, and the idle reconcile's one GoSweetSpot call.
    let again = handle(PullRequest::One("acme".into()), w.ports(), &config(), None)
        .await
        .unwrap();
    assert_eq!(
        (again[0].cin7_calls, again[0].gss_calls),
        (1, 1),
        "{again:?}"
    );
    assert_eq!(w.store.calls_today("acme").await.unwrap(), 2);
    assert!(w.cin7.harness().max_in_window(Duration::from_secs(1)) <= 3);
}

/// The grants (epoch ms) the store's shared window of each API holds after two processes —
/// each with the clients of its own `ClientCache`, as the pull and the write-back Lambdas each
/// have — made one call each to each API, under windows of one call per 600 ms (and ten a
/// minute, so the log keeps both grants).
async fn grants_after_a_call_from_each_process(
    w: &World,
    table: &Arc<dyn Table>,
    pacing: Pacing,
) -> (Option<Vec<i64>>, Option<Vec<i64>>) {
    let settings = w.store.get_integration("acme").await.unwrap().unwrap();
    let window = vec![
        Window::new(1, Duration::from_millis(600)),
        Window::new(10, Duration::from_secs(60)),
    ];
    let process = || {
        ClientCache::new(
            Arc::new(w.store.clone()),
            Arc::new(sandbox_secrets()),
            pacing,
        )
        .with_cin7_windows(window.clone())
        .with_gss_windows(window.clone(), Vec::new())
    };
    let (pull, write_back) = (process(), process());
    let pull = pull.clients(&settings).await.unwrap();
    let write_back = write_back.clients(&settings).await.unwrap();
    let connotes = vec!["SSPOT000001".to_string()];
    pull.gss.get_shipments(&connotes).await.unwrap();
    write_back.gss.get_shipments(&connotes).await.unwrap();
    pull.cin7.get_order(1).await.unwrap();
    write_back.cin7.get_order(1).await.unwrap();
    let grants = |service: &str| {
        let table = table.clone();
        let sk = format!("RATE#{service}");
        async move {
            table.get("INT#acme", &sk, 0).await.unwrap().map(|item| {
                // The log as stored: the oldest grant and each grant's offset from it.
                let log: serde_json::Value = serde_json::from_str(&item.doc).unwrap();
                let t0 = log["t0"].as_i64().expect("t0");
                let offsets = log["d"].as_array().expect("offsets");
                offsets
                    .iter()
                    .map(|d| t0 + d.as_i64().expect("an offset"))
                    .collect::<Vec<i64>>()
            })
        }
    };
    (grants("gss").await, grants("cin7").await)
}

#[tokio::test]
async fn shared_pacing_holds_across_processes_for_both_apis() {
    // GoSweetSpot asks for its limits per site and CIN7 enforces its own per account: calls
    // from separate functions must share one window per API.
    let table = dynamo_table().await;
    let w = world(table.clone(), Pacing::Shared).await;
    let (gss, cin7) = grants_after_a_call_from_each_process(&w, &table, Pacing::Shared).await;
    for (api, grants) in [("GoSweetSpot", gss), ("CIN7", cin7)] {
        let grants = grants.unwrap_or_else(|| panic!("{api}: no shared window"));
        assert_eq!(grants.len(), 2, "{api}: one grant per process: {grants:?}");
        assert!(
            grants[1] - grants[0] >= 600,
            "{api}: the second process was granted its call only once the first's left the \
             window: {grants:?}"
        );
    }
    // In-process pacing is per process: nothing is shared through the store.
    let other = dynamo_table().await;
    let w = world(other.clone(), Pacing::InProcess).await;
    let (gss, cin7) = grants_after_a_call_from_each_process(&w, &other, Pacing::InProcess).await;
    assert_eq!((gss, cin7), (None, None));
}
