//! The order pull end to end: CIN7 sandbox → pull → GoSweetSpot sandbox, with the store.

use chrono::{Duration as Span, TimeZone, Utc};
use integration_tests::*;
use sandbox::{FaultKind, Matcher, Ticket};
use serde_json::{Value, json};
use shared::cin7::client::ops as cin7_ops;
use shared::gss::client::ops as gss_ops;
use shared::pull::{PullOptions, PullOutcome};
use shared::records::OrderState;
use shared::store::prelude::*;
use std::sync::Arc;
use std::time::Duration;

fn at(minute: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap() + Span::minutes(minute)
}

fn opts() -> PullOptions {
    PullOptions::default()
}

/// A rig whose pulls read from their cursor exactly (no overlap), so re-reads are counted.
async fn rig_on(table: Option<Arc<dyn shared::store::Table>>) -> PullRig {
    let mut rig = match table {
        Some(table) => PullRig::with_table(table).await,
        None => PullRig::new().await,
    };
    rig.settings.import.overlap_seconds = 0;
    rig
}

fn seed(rig: &PullRig, n: i64, first_id: i64) {
    for i in 0..n {
        let id = first_id + i;
        rig.cin7.put_order(order(id, &format!("SO-{id}"), at(i)));
    }
}

fn line(id: i64, code: &str, stock: Value, sizes: Value) -> Value {
    json!({"id": id, "code": code, "name": code, "qty": 1, "unitPrice": 10, "stockControl": stock, "sizes": sizes})
}

#[tokio::test]
async fn a_realistic_mix_lands_in_the_right_states() {
    let rig = rig_on(None).await;
    let mut expected: Vec<(i64, OrderState, &str)> = Vec::new();
    let mut add = |id: i64, state: OrderState, reason: &'static str, edit: &dyn Fn(&mut Value)| {
        let mut o = order(id, &format!("MIX-{id}"), at(id));
        edit(&mut o);
        rig.cin7.put_order(o);
        expected.push((id, state, reason));
    };
    use OrderState::{Published as P, Skipped as S};
    add(1, P, "published", &|_| {});
    add(2, S, "not_approved", &|o| {
        o["status"] = json!("Draft");
        o["isApproved"] = json!(false);
    });
    add(3, S, "void", &|o| o["isVoid"] = json!(true));
    add(4, S, "void", &|o| o["status"] = json!(2));
    add(5, S, "already_dispatched", &|o| {
        o["dispatchedDate"] = json!("2026-11-19T10:00:00Z")
    });
    add(6, S, "stage_excluded", &|o| {
        o["stage"] = json!("Dispatched")
    });
    add(7, S, "stage_excluded", &|o| o["stage"] = json!("declined"));
    add(8, S, "stage_excluded", &|o| o["stage"] = json!("On Hold"));
    add(9, S, "stage_excluded", &|o| {
        o["stage"] = json!("Awaiting Payment")
    });
    add(10, P, "published", &|o| o["stage"] = json!("Fully Picked"));
    add(11, S, "too_old", &|o| {
        o["createdDate"] = json!("2020-01-01T00:00:00Z")
    });
    add(12, S, "batched_items", &|o| {
        o["lineItems"] = json!([line(121, "HONEY-500", json!("Batch"), json!([]))])
    });
    add(13, P, "published", &|o| {
        o["lineItems"] = json!([line(
            131,
            "TEE-RED",
            json!("Batch"),
            json!([{"name": "S", "code": "TEE-RED-S", "quantity": 1}])
        )])
    });
    add(14, S, "batched_items", &|o| {
        o["lineItems"] = json!([
            line(141, "CAM-1", json!("Serial"), json!([])),
            line(142, "TEE", json!("FIFO"), json!([]))
        ])
    });
    add(15, P, "published", &|o| o["deliveryCountry"] = json!(""));
    add(16, P, "published", &|o| {
        o["deliveryCountry"] = json!("Aotearoa")
    });
    add(17, P, "published", &|o| o["deliveryCountry"] = json!("NZ"));
    add(18, P, "published", &|o| {
        o["deliveryCountry"] = json!("Australia")
    });
    add(19, S, "unknown_country", &|o| {
        o["deliveryCountry"] = json!("Gondor")
    });
    add(20, P, "published", &|o| {
        o["reference"] = json!("SHOPIFY-ORDER-#100000001")
    });
    add(21, P, "published", &|o| {
        o["deliveryInstructions"] = json!("Leave by the back door. ".repeat(6))
    });
    add(22, P, "published", &|o| {
        o["deliveryFirstName"] = json!("Mātiu");
        o["deliveryLastName"] = json!("Te Whāiti-Ōtaki");
    });
    add(23, P, "published", &|o| {
        let lines: Vec<Value> = (0..200)
            .map(|i| line(2300 + i, &format!("SKU-{i}"), json!("FIFO"), json!([])))
            .collect();
        o["lineItems"] = json!(lines);
    });
    add(24, S, "no_reference", &|o| o["reference"] = json!(null));
    add(25, S, "unparseable", &|o| {
        o["lineItems"] = json!("not a list")
    });
    add(26, P, "published", &|o| o["status"] = json!("APPROVED"));
    add(27, P, "published", &|o| {
        o["deliveryCountry"] = json!("new zealand")
    });
    add(28, P, "published", &|o| o["mobile"] = json!("027 000 0000"));
    add(29, P, "published", &|o| {
        o["modifiedDate"] = json!("2026-11-20T09:29:00.1234567")
    });
    add(30, S, "no_lines", &|o| o["lineItems"] = json!([]));
    let mut rig = rig;
    rig.settings.import.block_batched_items = true;
    // The fixtures were created in May 2024; order 11 in 2020.
    rig.settings.import.max_age_days = 1500;

    let summary = rig.pull(&opts()).await;
    assert_eq!(summary.outcome, PullOutcome::Completed, "{summary:?}");
    for (id, state, reason) in &expected {
        let record = rig.store.get_order("acme", *id).await.unwrap().unwrap();
        assert_eq!(
            (record.state, record.reason.as_str()),
            (*state, *reason),
            "order {id}: {record:?}"
        );
    }
    let published = expected.iter().filter(|e| e.1 == P).count();
    assert_eq!(summary.published, published);
    assert_eq!(rig.gss.packing_slips().len(), published);
    assert!(rig.publish_counts().values().all(|n| *n == 1));

    // Field by field for a plain order.
    let o = rig.gss.order("MIX-1").unwrap();
    assert_eq!(o.consignee, "Aroha Smith");
    assert_eq!(o.address1, "Unit 3");
    assert_eq!(o.address2, "12 Queen Street");
    assert_eq!(
        o.suburb, "",
        "the second line is a unit; the region is never the suburb"
    );
    assert_eq!(o.city, "Auckland");
    assert_eq!(o.postcode, "1010");
    assert_eq!(o.country, "NZ");
    assert_eq!(o.delvref, "MIX-1");
    assert_eq!(o.delvinstructions, "Leave at reception");
    assert_eq!(o.contactname, "Aroha Smith");
    assert_eq!(o.contactphone, "021 555 0101");
    assert_eq!(o.email, "aroha@example.co.nz");
    assert_eq!(o.costcentre.as_deref(), Some("Online"));
    assert_eq!(o.products.len(), 1);
    assert_eq!(o.products[0].productcode, "TEE-BLK-M");
    assert_eq!(o.products[0].units, rust_decimal::Decimal::from(2));
    assert_eq!(o.products[0].unitvalue, rust_decimal::Decimal::new(2995, 2));
    assert_eq!(o.products[0].currency.as_deref(), Some("NZD"));
    // The variants.
    assert_eq!(rig.gss.order("MIX-16").unwrap().country, "NZ");
    assert_eq!(rig.gss.order("MIX-18").unwrap().country, "AU");
    assert_eq!(
        rig.gss.order("MIX-28").unwrap().contactphone,
        "021 555 0101"
    );
    let long_ref = rig.store.get_order("acme", 20).await.unwrap().unwrap();
    assert_eq!(long_ref.packing_slip.as_deref(), Some("C7-20"));
    assert_eq!(
        rig.gss.order("C7-20").unwrap().delvref,
        "SHOPIFY-ORDER-#100000001"
    );
    let long_note = rig.store.get_order("acme", 21).await.unwrap().unwrap();
    assert_eq!(
        long_note.truncations,
        ["delvinstructions: 143 → 120 characters"]
    );
    assert_eq!(
        rig.gss
            .order("MIX-21")
            .unwrap()
            .delvinstructions
            .chars()
            .count(),
        120
    );
    assert_eq!(
        rig.gss.order("MIX-22").unwrap().consignee,
        "Mātiu Te Whāiti-Ōtaki"
    );
    assert_eq!(rig.gss.order("MIX-23").unwrap().products.len(), 200);
    let batched = rig.store.get_order("acme", 14).await.unwrap().unwrap();
    assert_eq!(batched.detail.as_deref(), Some("CAM-1"));
    let unparseable = rig.store.get_order("acme", 25).await.unwrap().unwrap();
    assert!(unparseable.detail.unwrap().contains("lineItems"));
}

#[tokio::test]
async fn the_dispatcher_reads_the_customers_order_number_custom_fields_and_the_shipping_method() {
    let mut rig = rig_on(None).await;
    rig.settings.import.custom_field_1 = "salesPersonEmail".into();
    rig.settings.import.custom_field_2 = "customFields.orders_1000".into();
    rig.settings.import.instructions_prefix_shipping_method = true;
    rig.settings.validate().unwrap();
    let mut o = order(1, "SO-1", at(1));
    o["customerOrderNo"] = json!("PO-4471");
    o["freightDescription"] = json!("NZ Post Courier");
    o["salesPersonEmail"] = json!("kiri@acme.nz");
    o["projectName"] = json!("not asked for");
    o["customFields"] = json!({"orders_1000": "Gift wrap"});
    rig.cin7.put_order(o);
    let s = rig.pull(&opts()).await;
    assert_eq!(s.published, 1, "{s:?}");
    // salesPersonEmail is not among the fields the product reads: CIN7 sends it only because
    // the setting names it (the sandbox projects `fields=` as CIN7 does).
    let published = rig.gss.order("SO-1").unwrap();
    assert_eq!(published.delvref, "PO-4471");
    assert_eq!(
        published.delvinstructions,
        "NZ Post Courier: Leave at reception"
    );
    assert_eq!(published.custom_field_1.as_deref(), Some("kiri@acme.nz"));
    assert_eq!(published.custom_field_2.as_deref(), Some("Gift wrap"));
    assert_eq!(
        rig.cin7.harness().count("GET", "/api/v1/SalesOrders"),
        1,
        "one list call"
    );
}

#[tokio::test]
async fn batched_items_are_published_with_a_warning_when_not_blocked() {
    let rig = rig_on(None).await;
    let mut o = order(1, "B-1", at(1));
    o["lineItems"] = json!([line(11, "HONEY-500", json!("batch"), json!([]))]);
    rig.cin7.put_order(o);
    rig.pull(&opts()).await;
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_eq!(record.state, OrderState::Published);
    assert_eq!(record.warnings.len(), 1);
    assert!(
        record.warnings[0].contains("HONEY-500") && record.warnings[0].contains("not be deducted")
    );
}

#[tokio::test]
async fn call_budget_for_new_and_idle_polls() {
    let rig = rig_on(None).await;
    seed(&rig, 600, 1);
    let summary = rig.pull(&opts()).await;
    assert_eq!(summary.published, 600);
    assert_eq!(
        rig.cin7_client.calls().get(cin7_ops::LIST),
        3,
        "250 + 250 + 100"
    );
    assert_eq!(rig.gss_client.calls().get(gss_ops::PUT_ORDERS), 12);
    assert_eq!(
        rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS),
        1,
        "the reconcile: one window"
    );
    assert_eq!(rig.gss_client.calls().total(), 13);
    let listed: Vec<String> = rig
        .cin7
        .harness()
        .records()
        .iter()
        .map(|r| r.query.clone())
        .collect();
    assert!(
        listed
            .iter()
            .all(|q| q.contains("rows=250") && q.contains("order=modifiedDate+ASC")),
        "{listed:?}"
    );

    // Nothing changed: one CIN7 call (the cursor's page), and one GoSweetSpot call (the idle
    // reconcile's window).
    let summary = rig.pull(&opts()).await;
    assert_eq!(summary.published + summary.updated, 0);
    assert_eq!(rig.cin7_client.calls().get(cin7_ops::LIST), 4);
    assert_eq!(rig.gss_client.calls().get(gss_ops::PUT_ORDERS), 12);
    assert_eq!(rig.gss_client.calls().total(), 14);
    assert_eq!(
        rig.store.calls_today("acme").await.unwrap(),
        4,
        "the daily counter follows"
    );
}

#[tokio::test]
async fn each_packing_slip_is_indexed_once() {
    let path = tempfile::tempdir().unwrap().keep().join("store.sqlite3");
    let sqlite = Arc::new(shared::store::sqlite::SqliteTable::open(&path).unwrap());
    let table = integration_tests::store_suite::CountingTable::over(sqlite);
    let rig = rig_on(Some(table.clone())).await;
    seed(&rig, 3, 1);
    assert_eq!(rig.pull(&opts()).await.published, 3);
    assert_eq!(
        table.writes("SLIP#"),
        3,
        "indexed before the PUT, not again after it"
    );

    rig.cin7
        .edit_order(1, |o| o["deliveryInstructions"] = json!("Ring the bell"));
    rig.cin7.edit_order(2, |o| o["isVoid"] = json!(true));
    let summary = rig.pull(&opts()).await;
    assert_eq!((summary.updated, summary.deleted), (1, 1), "{summary:?}");
    assert_eq!(
        table.writes("SLIP#"),
        3,
        "a republish or a delete keeps the slip"
    );
    let record = rig
        .store
        .order_by_packing_slip("acme", "SO-1")
        .await
        .unwrap();
    assert_eq!(record.map(|r| r.state), Some(OrderState::Published));
}

#[tokio::test]
async fn orders_sharing_a_timestamp_across_a_page_boundary_publish_once() {
    let rig = rig_on(None).await;
    for id in 1..=300 {
        rig.cin7.put_order(order(id, &format!("T-{id}"), at(5)));
    }
    let summary = rig.pull(&opts()).await;
    assert_eq!(summary.published, 300);
    let again = rig.pull(&opts()).await;
    assert_eq!(again.published + again.updated, 0);
    let counts = rig.publish_counts();
    assert_eq!(counts.len(), 300);
    assert!(counts.values().all(|n| *n == 1));
}

#[tokio::test]
async fn edits_voids_and_tickets_after_publishing() {
    let rig = rig_on(None).await;
    seed(&rig, 3, 1);
    rig.pull(&opts()).await;
    rig.gss.ticket("SO-3", Ticket::default()).await.unwrap();

    rig.cin7
        .edit_order(1, |o| o["deliveryInstructions"] = json!("Ring the bell"));
    rig.cin7.edit_order(2, |o| o["isVoid"] = json!(true));
    rig.cin7.edit_order(3, |o| o["stage"] = json!("On Hold"));
    let summary = rig.pull(&opts()).await;
    assert_eq!(
        (summary.updated, summary.deleted, summary.conflicts),
        (1, 1, 1),
        "{summary:?}"
    );
    // No webhook came for SO-3's ticket: the reconcile at the end of the pull queued it.
    assert_eq!(summary.reconciled, 1, "{summary:?}");
    let jobs = rig.take_jobs().await;
    assert_eq!(
        jobs.iter()
            .map(|j| j.packing_slip.as_str())
            .collect::<Vec<_>>(),
        ["SO-3"]
    );
    assert_eq!(
        rig.gss.order("SO-1").unwrap().delvinstructions,
        "Ring the bell"
    );
    assert!(
        rig.gss.order("SO-2").is_none(),
        "voided order deleted from GoSweetSpot"
    );
    assert!(
        rig.gss.order("SO-3").is_some(),
        "ticketed order not deleted"
    );
    let mut records = Vec::new();
    for id in 1..=3 {
        records.push(rig.store.get_order("acme", id).await.unwrap().unwrap());
    }
    let states: Vec<(OrderState, &str)> = records
        .iter()
        .map(|r| (r.state, r.reason.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            (OrderState::Published, "republished"),
            (OrderState::Deleted, "void"),
            (OrderState::Conflict, "ticketed")
        ]
    );
    let reasons: Vec<&str> = records[2]
        .history
        .iter()
        .map(|t| t.reason.as_str())
        .collect();
    assert_eq!(reasons, ["published", "already_processed", "ticketed"]);
    let history: Vec<&str> = records[1]
        .history
        .iter()
        .map(|t| t.reason.as_str())
        .collect();
    assert_eq!(history, ["published", "void"]);
    assert_eq!(rig.publish_counts()["SO-1"], 2, "re-published once");

    // Another pull changes nothing more: its idle reconcile is its one GoSweetSpot call.
    let calls = rig.gss_client.calls().total();
    let again = rig.pull(&opts()).await;
    assert_eq!(rig.gss_client.calls().total(), calls + 1);
    assert_eq!(again.reconciled, 0);
    assert!(rig.take_jobs().await.is_empty());
}

#[tokio::test]
async fn two_pulls_at_once_do_the_work_once() {
    let rig = rig_on(None).await;
    seed(&rig, 120, 1);
    rig.cin7.harness().set_latency(Duration::from_millis(30));
    let a = PullOptions {
        owner: "a".into(),
        ..opts()
    };
    let b = PullOptions {
        owner: "b".into(),
        ..opts()
    };
    let (ra, rb) = tokio::join!(rig.pull(&a), rig.pull(&b));
    let outcomes = [ra.outcome, rb.outcome];
    assert!(
        outcomes.contains(&PullOutcome::Busy) && outcomes.contains(&PullOutcome::Completed),
        "{outcomes:?}"
    );
    assert_eq!(ra.published + rb.published, 120);
    assert!(rig.publish_counts().values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_pull_stopped_by_its_deadline_resumes_without_loss_or_duplicates() {
    let rig = rig_on(None).await;
    seed(&rig, 700, 1);
    rig.cin7.harness().set_latency(Duration::from_millis(150));
    let short = PullOptions {
        deadline: Some(tokio::time::Instant::now() + Duration::from_millis(400)),
        margin: Duration::from_millis(100),
        ..opts()
    };
    let first = rig.pull(&short).await;
    assert_eq!(first.outcome, PullOutcome::StoppedAtDeadline, "{first:?}");
    assert!(first.published < 700);
    rig.cin7.harness().set_latency(Duration::ZERO);
    let second = rig.pull(&opts()).await;
    assert_eq!(second.outcome, PullOutcome::Completed);
    assert_eq!(first.published + second.published, 700);
    let counts = rig.publish_counts();
    assert_eq!(counts.len(), 700);
    assert!(counts.values().all(|n| *n == 1));
}

#[tokio::test]
async fn throttling_and_server_errors_lose_and_duplicate_nothing() {
    let rig = rig_on(None).await;
    seed(&rig, 520, 1);
    rig.cin7.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 429,
            retry_after: Some(0),
        },
        3,
    );
    rig.gss.harness().inject_ratio(
        Matcher::any(),
        FaultKind::Status {
            status: 503,
            retry_after: None,
        },
        0.3,
    );
    rig.cin7.harness().inject_ratio(
        Matcher::any(),
        FaultKind::Status {
            status: 500,
            retry_after: None,
        },
        0.3,
    );
    let mut runs = 0;
    loop {
        runs += 1;
        let summary = rig.pull(&opts()).await;
        if summary.outcome == PullOutcome::Completed {
            break;
        }
        assert_eq!(
            summary.outcome,
            PullOutcome::Failed,
            "stops cleanly: {summary:?}"
        );
        assert!(summary.error.is_some());
        assert!(runs < 50, "never finished");
    }
    rig.cin7.harness().clear_faults();
    rig.gss.harness().clear_faults();
    rig.pull(&opts()).await;
    let counts = rig.publish_counts();
    assert_eq!(counts.len(), 520, "nothing lost");
    // A 503 answered after GoSweetSpot stored a batch does not exist in the sandbox (faults
    // answer instead of the handler), so every order is sent exactly once.
    assert!(
        counts.values().all(|n| *n == 1),
        "{:?}",
        counts.values().max()
    );
    assert_eq!(
        rig.store
            .list_orders("acme", Some(OrderState::Published))
            .await
            .unwrap()
            .len(),
        520
    );
}

/// The CIN7 client, dispatching the first 100 orders (as the write-back would, which moves
/// them to the end of the `modifiedDate` order) right after the first page is served.
struct DispatchingMidRun<'a> {
    rig: &'a PullRig,
    pages: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl shared::pull::OrderSource for DispatchingMidRun<'_> {
    async fn list_page(
        &self,
        query: &shared::cin7::query::ListQuery,
    ) -> Result<Vec<shared::cin7::model::OrderRow>, shared::http::ApiError> {
        let rows = self.rig.cin7_client.list_page(query).await;
        if self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            for id in 1..=100 {
                self.rig
                    .cin7
                    .edit_order(id, |o| o["stage"] = json!("Dispatched"));
            }
        }
        rows
    }
    fn fits(&self, query: &shared::cin7::query::ListQuery) -> bool {
        self.rig.cin7_client.url_fits(query)
    }
}

#[tokio::test]
async fn orders_modified_while_the_pull_pages_are_not_skipped() {
    let rig = rig_on(None).await;
    seed(&rig, 600, 1);
    let source = DispatchingMidRun {
        rig: &rig,
        pages: std::sync::atomic::AtomicUsize::new(0),
    };
    let calls = || {
        (
            rig.cin7_client.calls().total(),
            rig.gss_client.calls().total(),
        )
    };
    let summary = shared::pull::run_pull(
        shared::pull::PullDeps {
            store: &rig.store,
            cin7: &source,
            gss: &rig.gss_client,
            feed: &rig.gss_client,
            queue: &rig.queue,
            clock: &shared::clock::SystemClock,
            calls: &calls,
        },
        &rig.settings,
        &opts(),
    )
    .await
    .unwrap();
    assert_eq!(summary.outcome, PullOutcome::Completed);
    // By offset, the second page would have started 100 orders late once the dispatched 100
    // moved to the end: orders 251–350 skipped, and the cursor past them for good.
    let counts = rig.publish_counts();
    assert_eq!(counts.len(), 600, "every order published");
    assert!(counts.values().all(|n| *n == 1), "and once");
    // 250 + 250 + the last 100 and the 100 dispatched ones (seen again, changed by CIN7).
    assert_eq!(rig.cin7_client.calls().get(cin7_ops::LIST), 3);
}

/// A rig whose write-back dispatches ("send ticket number"), shared between tasks.
fn dispatching(mut rig: PullRig) -> Arc<PullRig> {
    rig.settings.write_back.send_ticket_number = true;
    Arc::new(rig)
}

fn assert_history_in_time_order(record: &shared::records::OrderRecord) {
    let times: Vec<_> = record.history.iter().map(|t| t.at).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(
        times, sorted,
        "order {}: {:?}",
        record.cin7_id, record.history
    );
}

/// The PUT of a write-back has committed in CIN7 (the order reads dispatched) while its record
/// is not yet `dispatched`: a pull then must neither DELETE the order from GoSweetSpot nor call
/// it conflicting. It did both, deciding from the record's state alone.
async fn a_pull_during_a_write_back_in_flight_leaves_the_order_alone(rig: PullRig) {
    let rig = dispatching(rig);
    seed(&rig, 1, 1);
    assert_eq!(rig.pull(&opts()).await.published, 1);
    let shipment = rig.gss.create_ticket("SO-1", Ticket::default()).unwrap();
    let summary = rig.webhook(std::slice::from_ref(&shipment)).await;
    assert_eq!(summary.queued + summary.duplicates, 1);
    let jobs = rig.take_jobs().await;
    // CIN7 commits the dispatch, then answers only after a long pause.
    rig.cin7.harness().inject(
        Matcher::route(sandbox::Method::PUT, "/api/v1/SalesOrders"),
        FaultKind::CommitThenWait(Duration::from_secs(2)),
        1,
    );
    let in_flight = {
        let rig = rig.clone();
        tokio::spawn(async move { rig.write_back(&jobs).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rig.cin7.order(1).unwrap()["dispatchedDate"].is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "the PUT never committed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_eq!(
        record.state,
        OrderState::Published,
        "the write-back is still in flight"
    );
    let summary = rig.pull(&opts()).await;
    assert_eq!((summary.deleted, summary.conflicts), (0, 0), "{summary:?}");
    assert_eq!(rig.gss.harness().count("DELETE", "/api/customerorders"), 0);
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_ne!(record.state, OrderState::Conflict);
    let outcomes = in_flight.await.unwrap();
    assert_eq!(outcomes, [shared::writeback::run::JobOutcome::Done]);
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.reason.as_str()),
        (OrderState::Dispatched, "dispatched")
    );
    let reasons: Vec<&str> = record.history.iter().map(|t| t.reason.as_str()).collect();
    assert_eq!(reasons, ["published", "ticketed", "dispatched"]);
    assert_history_in_time_order(&record);
}

#[tokio::test]
async fn a_pull_during_a_write_back_in_flight_leaves_the_order_alone_on_sqlite() {
    a_pull_during_a_write_back_in_flight_leaves_the_order_alone(rig_on(None).await).await;
}

#[tokio::test]
async fn a_pull_during_a_write_back_in_flight_leaves_the_order_alone_on_dynamodb() {
    a_pull_during_a_write_back_in_flight_leaves_the_order_alone(
        rig_on(Some(dynamo_table().await)).await,
    )
    .await;
}

/// Pulls back to back while a wave of webhooks is written back: no ticketed packing slip is
/// ever deleted from GoSweetSpot, every order is dispatched once, and every history is in
/// time order.
async fn pulls_back_to_back_during_a_webhook_wave(rig: PullRig) {
    let rig = dispatching(rig);
    let n = 40;
    seed(&rig, n, 1);
    assert_eq!(rig.pull(&opts()).await.published, n as usize);
    rig.cin7.harness().set_latency(Duration::from_millis(15));
    let shipments: Vec<_> = (1..=n)
        .map(|id| {
            rig.gss
                .create_ticket(&format!("SO-{id}"), Ticket::default())
                .unwrap()
        })
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pulls = {
        let (rig, stop) = (rig.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let s = rig.pull(&opts()).await;
                assert_eq!((s.deleted, s.conflicts, s.failed), (0, 0, 0), "{s:?}");
                runs += 1;
            }
            runs
        })
    };
    // Deliveries of five shipments, each written back in batches as they are queued.
    for wave in shipments.chunks(5) {
        // Those a pull's reconcile running meanwhile queued first are duplicates.
        let summary = rig.webhook(wave).await;
        assert_eq!(summary.queued + summary.duplicates, wave.len());
        let jobs = rig.take_jobs().await;
        let outcomes = rig.write_back(&jobs).await;
        assert!(
            outcomes
                .iter()
                .all(|o| *o == shared::writeback::run::JobOutcome::Done),
            "{outcomes:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = pulls.await.unwrap();
    assert!(runs >= 2, "the pulls ran during the wave ({runs})");
    assert_eq!(rig.gss.harness().count("DELETE", "/api/customerorders"), 0);
    let applied = rig.cin7.applied();
    for id in 1..=n {
        let record = rig.store.get_order("acme", id).await.unwrap().unwrap();
        assert_eq!(
            record.state,
            OrderState::Dispatched,
            "order {id}: {record:?}"
        );
        assert_history_in_time_order(&record);
        assert_eq!(applied[&id].dispatches, 1, "order {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_back_to_back_during_a_webhook_wave_on_sqlite() {
    pulls_back_to_back_during_a_webhook_wave(rig_on(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_back_to_back_during_a_webhook_wave_on_dynamodb() {
    pulls_back_to_back_during_a_webhook_wave(rig_on(Some(dynamo_table().await)).await).await;
}

#[tokio::test]
async fn one_order_refused_with_a_whole_batch_400_is_isolated_and_the_rest_published() {
    let rig = rig_on(None).await;
    seed(&rig, 50, 1);
    rig.gss
        .reject_batches_with("SO-17", "The Email field is not a valid e-mail address.");
    let summary = rig.pull(&opts()).await;
    assert_eq!(summary.outcome, PullOutcome::Completed, "{summary:?}");
    assert_eq!((summary.published, summary.failed), (49, 1), "{summary:?}");
    // 50 → 25 → 12 → 6 → 3 → 2 → 1 refused; each refused half is halved again and every other
    // half published once: 13 PUTs in all (1 without the refusal).
    assert_eq!(rig.gss_client.calls().get(gss_ops::PUT_ORDERS), 13);
    assert_eq!(rig.gss.packing_slips().len(), 49);
    assert!(rig.publish_counts().values().all(|n| *n == 1));
    let refused = rig.store.get_order("acme", 17).await.unwrap().unwrap();
    assert_eq!(
        (refused.state, refused.reason.as_str()),
        (OrderState::Failed, "gss_rejected")
    );
    assert_eq!(
        refused.detail.as_deref(),
        Some(
            "The request is invalid.; orders[0].packingslipno: The Email field is not a valid e-mail address."
        )
    );
    // The cursor moved on: the next pull publishes nothing; its one GoSweetSpot call is the
    // reconcile's.
    let calls = rig.gss_client.calls().get(gss_ops::PUT_ORDERS);
    let again = rig.pull(&opts()).await;
    assert_eq!((again.published, again.failed), (0, 0), "{again:?}");
    assert_eq!(rig.gss_client.calls().get(gss_ops::PUT_ORDERS), calls);
    // Fixed in CIN7 (and accepted by GoSweetSpot now), it is published by the next pull.
    rig.gss.accept_batches_with("SO-17");
    rig.cin7
        .edit_order(17, |o| o["email"] = json!("aroha@example.co.nz"));
    let fixed = rig.pull(&opts()).await;
    assert_eq!(fixed.published, 1, "{fixed:?}");
    let record = rig.store.get_order("acme", 17).await.unwrap().unwrap();
    assert_eq!(record.state, OrderState::Published);
}

/// CIN7 writes local times with their offset (`+13:00`, then `+12:00` once the clocks go
/// back) and, in the sandbox's pessimistic reading, compares `where` values as local
/// wall-clock times. Orders modified every 7 minutes from 22:30 NZDT on 4 April 2026 to 03:30
/// NZST on 5 April — across local midnight and the hour that repeats when daylight time ends at
/// 03:00 — are pulled every 30 minutes of their time: each is published once, none skipped,
/// and no pull re-reads more than the overlap (a cursor written in UTC re-read thirteen hours
/// every time).
#[tokio::test]
async fn no_order_is_skipped_across_local_midnight_and_the_clocks_going_back() {
    let rig = PullRig::new().await;
    assert_eq!(rig.settings.import.overlap_seconds, 60);
    let first = Utc.with_ymd_and_hms(2026, 4, 4, 9, 30, 0).unwrap();
    let times: Vec<_> = (0..54).map(|i| first + Span::minutes(7 * i)).collect();
    let mut published = 0;
    let mut rescans = 0;
    for (chunk, window) in times
        .chunk_by(|a, b| (*a - first).num_minutes() / 30 == (*b - first).num_minutes() / 30)
        .enumerate()
    {
        for t in window {
            let id = 1 + (*t - first).num_minutes() / 7;
            rig.cin7.put_order(order(id, &format!("TZ-{id}"), *t));
        }
        let lists_before = rig.cin7_client.calls().get(cin7_ops::LIST);
        let s = rig.pull(&opts()).await;
        assert_eq!(s.outcome, PullOutcome::Completed, "{s:?}");
        published += s.published;
        let lists = rig.cin7_client.calls().get(cin7_ops::LIST) - lists_before;
        rescans += lists - 1;
        // Re-read: the order within the overlap before the cursor; and once, when the clocks
        // go back, what the rescan at the new offset reads again — the first call's orders
        // and an hour of wall-clock time before the cursor (9 orders at this pace).
        let reread = s.seen - s.published;
        assert!(
            reread <= 1 || (lists == 2 && reread <= 1 + 9 + s.published),
            "pull {chunk}: read {} orders for {} new ({lists} list calls)",
            s.seen,
            s.published
        );
    }
    assert_eq!(published, times.len(), "every order published");
    // The orders of the repeated hour are read by the pull that first sees a +12:00 time,
    // which asks from the cursor again at that offset.
    assert_eq!(rescans, 1, "one rescan, at the change");
    // An idle pull afterwards costs one call and publishes nothing.
    let lists_before = rig.cin7_client.calls().get(cin7_ops::LIST);
    let idle = rig.pull(&opts()).await;
    assert_eq!(
        rig.cin7_client.calls().get(cin7_ops::LIST) - lists_before,
        1
    );
    assert_eq!(idle.published, 0);
    let counts = rig.publish_counts();
    assert_eq!(counts.len(), times.len());
    assert!(counts.values().all(|n| *n == 1), "and once: {counts:?}");
    // The cursor is kept as CIN7 wrote it.
    let cursor = rig.store.get_cursor("acme").await.unwrap().unwrap();
    assert_eq!(
        cursor.modified_since.text(),
        "2026-04-05T03:41:00.000000+12:00"
    );
    let where_clauses: Vec<String> = rig
        .cin7
        .harness()
        .records()
        .iter()
        .filter(|r| r.path == "/api/v1/SalesOrders")
        .map(|r| r.query.clone())
        .collect();
    assert!(
        where_clauses
            .last()
            .unwrap()
            .contains("2026-04-05T03%3A40%3A00.000000%2B12%3A00"),
        "the where value is written in that form: {:?}",
        where_clauses.last()
    );
}

#[tokio::test]
async fn ties_too_many_for_one_url_page_by_offset_and_none_is_skipped() {
    let rig = rig_on(None).await;
    // CIN7 ids are large: 160 orders a second apart, 90 sharing the next second, 50 after.
    let base = 1_895_719_000;
    for i in 0..300 {
        let second = if i < 160 {
            i
        } else if i < 250 {
            160
        } else {
            i - 89
        };
        rig.cin7.put_order(order(
            base + i,
            &format!("BIG-{i}"),
            at(0) + Span::seconds(second),
        ));
    }
    let summary = rig.pull(&opts()).await;
    assert_eq!(summary.outcome, PullOutcome::Completed, "{summary:?}");
    assert_eq!(summary.published, 300);
    // The 90 exclusions at the second the first page ends on would make a URL over 2,000
    // characters, which CIN7's IIS refuses (404.15): the second page is the next offset.
    let queries: Vec<String> = rig
        .cin7
        .harness()
        .records()
        .iter()
        .filter(|r| r.path == "/api/v1/SalesOrders")
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.query.len());
            assert!(r.query.len() + "/api/v1/SalesOrders?".len() < 2000);
            r.query.clone()
        })
        .collect();
    assert_eq!(queries.len(), 2);
    assert!(queries[1].contains("page=2"), "{}", queries[1]);
    assert!(rig.publish_counts().values().all(|n| *n == 1));
}
