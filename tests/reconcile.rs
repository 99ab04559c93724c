//! Nothing lost when webhooks are lost: the reconcile at the end of every pull queues the
//! write-back of every consignment of our orders that no webhook brought; and a relabel (a
//! ticket deleted and printed again) replaces the first consignment instead of adding to it.
//! Through the real path — the sandboxes over sockets, the pull, the webhook's use-case and the
//! write-back — on SQLite and on DynamoDB (moto).

use chrono::{TimeZone, Utc};
use integration_tests::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use sandbox::{FaultKind, Matcher, Method, Ticket};
use serde_json::Value;
use shared::gss::client::ops as gss_ops;
use shared::pull::reconcile::{ReconcileDeps, ReconcileOptions, reconcile};
use shared::pull::{PullOptions, PullOutcome};
use shared::records::OrderState;
use shared::store::Table;
use shared::store::prelude::*;
use shared::writeback::run::JobOutcome;
use std::sync::Arc;

async fn rig(table: Option<Arc<dyn Table>>) -> PullRig {
    let mut rig = match table {
        Some(table) => PullRig::with_table(table).await,
        None => PullRig::new().await,
    };
    rig.settings.write_back.send_ticket_number = true;
    rig.settings.write_back.freight = shared::settings::FreightMode::Cost;
    rig
}

fn seed(rig: &PullRig, ids: std::ops::RangeInclusive<i64>) {
    let base = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    for id in ids {
        rig.cin7.put_order(order(
            id,
            &format!("SO-{id}"),
            base + chrono::Duration::minutes(id),
        ));
    }
}

fn ticket(cost: Decimal) -> Ticket {
    Ticket {
        cost,
        carrier: "Post Haste - AKL - 2011".into(),
    }
}

/// The written-back fields of a CIN7 order.
fn written(o: &Value) -> (Value, Value, Value, Value) {
    (
        o["stage"].clone(),
        o["logisticsCarrier"].clone(),
        o["freightTotal"].clone(),
        o["internalComments"].clone(),
    )
}

async fn consignments_without_a_webhook_are_written_back_as_webhook_ones(rig: PullRig) {
    seed(&rig, 1..=3);
    let first = rig.pull(&PullOptions::default()).await;
    assert_eq!((first.published, first.reconciled), (3, 0), "{first:?}");
    assert_eq!(rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS), 1);
    // SO-1's webhook arrives; SO-2's and SO-3's never do.
    let s1 = rig.gss.create_ticket("SO-1", ticket(dec!(8.50))).unwrap();
    let s2 = rig.gss.create_ticket("SO-2", ticket(dec!(8.50))).unwrap();
    let s3 = rig.gss.create_ticket("SO-3", ticket(dec!(6.00))).unwrap();
    assert_eq!(rig.webhook(std::slice::from_ref(&s1)).await.queued, 1);
    let by_webhook = rig.take_jobs().await;
    assert_eq!(rig.write_back(&by_webhook).await, [JobOutcome::Done]);
    // The next pull's reconcile finds the other two: one GoSweetSpot GET for the window.
    let gets = rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS);
    let second = rig.pull(&PullOptions::default()).await;
    assert_eq!(second.outcome, PullOutcome::Completed);
    assert_eq!(second.reconciled, 2, "{second:?}");
    assert_eq!(rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS) - gets, 1);
    let by_reconcile = rig.take_jobs().await;
    let mut connotes: Vec<&str> = by_reconcile.iter().map(|j| j.connote.as_str()).collect();
    connotes.sort();
    assert_eq!(
        connotes,
        [
            s2.consignment_no.as_deref().unwrap(),
            s3.consignment_no.as_deref().unwrap()
        ]
    );
    assert!(
        rig.write_back(&by_reconcile)
            .await
            .iter()
            .all(|o| *o == JobOutcome::Done)
    );
    // Dispatched exactly as the webhook's: stage, carrier, freight, tracking.
    let (o1, o2) = (rig.cin7.order(1).unwrap(), rig.cin7.order(2).unwrap());
    let same = |o: &Value, connote: &str| {
        let (stage, carrier, freight, comments) = written(o);
        assert_eq!(stage, "Dispatched");
        assert_eq!(carrier, "Post Haste");
        assert_eq!(o["trackingCode"], connote);
        assert!(
            comments
                .as_str()
                .unwrap()
                .ends_with(&format!("4180-{connote}"))
        );
        freight
    };
    let f1 = same(&o1, s1.consignment_no.as_deref().unwrap());
    let f2 = same(&o2, s2.consignment_no.as_deref().unwrap());
    assert_eq!(f1, f2, "8.50 × 1.15 both ways");
    assert_eq!(f1, 9.78);
    let applied = rig.cin7.applied();
    assert!(
        (1..=3).all(|id| applied[&id].dispatches == 1),
        "{applied:?}"
    );
    // The record says which path brought each.
    let r1 = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    let r2 = rig.store.get_order("acme", 2).await.unwrap().unwrap();
    let brought = |r: &shared::records::OrderRecord| {
        r.history
            .iter()
            .find(|t| t.reason == "ticketed")
            .and_then(|t| t.detail.clone())
            .unwrap_or_default()
    };
    assert!(brought(&r1).ends_with("(by webhook)"), "{}", brought(&r1));
    assert!(brought(&r2).ends_with("(by reconcile)"), "{}", brought(&r2));
    assert_eq!(r2.state, OrderState::Dispatched);
    // An idle reconcile afterwards: exactly one GoSweetSpot call, nothing queued.
    let gets = rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS);
    let puts = rig.gss_client.calls().get(gss_ops::PUT_ORDERS);
    let idle = rig.pull(&PullOptions::default()).await;
    assert_eq!(idle.reconciled, 0);
    assert_eq!(rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS) - gets, 1);
    assert_eq!(rig.gss_client.calls().get(gss_ops::PUT_ORDERS), puts);
    assert!(rig.take_jobs().await.is_empty());
}

#[tokio::test]
async fn consignments_without_a_webhook_are_written_back_as_webhook_ones_on_sqlite() {
    consignments_without_a_webhook_are_written_back_as_webhook_ones(rig(None).await).await;
}

#[tokio::test]
async fn consignments_without_a_webhook_are_written_back_as_webhook_ones_on_dynamodb() {
    consignments_without_a_webhook_are_written_back_as_webhook_ones(
        rig(Some(dynamo_table().await)).await,
    )
    .await;
}

async fn a_webhook_and_a_reconcile_of_one_consignment_dispatch_once(rig: PullRig) {
    seed(&rig, 1..=1);
    rig.pull(&PullOptions::default()).await;
    let shipment = rig.gss.create_ticket("SO-1", ticket(dec!(8.50))).unwrap();
    // The webhook and the reconcile in the same second, at once.
    let reconciling = reconcile(
        ReconcileDeps {
            store: &rig.store,
            queue: &rig.queue,
            feed: &rig.gss_client,
            clock: &shared::clock::SystemClock,
        },
        &rig.settings,
        ReconcileOptions::default(),
    );
    let delivery = [shipment];
    let (found, delivered) = tokio::join!(reconciling, rig.webhook(&delivery));
    let found = found.unwrap();
    let queued = found.queued.len() + delivered.queued;
    // Queued by one path (or, racing exactly, by both: the write-back is idempotent), never
    // by neither.
    assert!((1..=2).contains(&queued), "{found:?} {delivered:?}");
    let jobs = rig.take_jobs().await;
    assert_eq!(jobs.len(), queued);
    rig.write_back(&jobs).await;
    assert_eq!(rig.cin7.applied()[&1].dispatches, 1);
    assert_eq!(rig.cin7.applied()[&1].freight_changes, 1);
    // And once more, later, changes nothing.
    let again = rig.pull(&PullOptions::default()).await;
    assert_eq!(again.reconciled, 0);
    assert!(rig.take_jobs().await.is_empty());
}

#[tokio::test]
async fn a_webhook_and_a_reconcile_of_one_consignment_dispatch_once_on_sqlite() {
    a_webhook_and_a_reconcile_of_one_consignment_dispatch_once(rig(None).await).await;
}

#[tokio::test]
async fn a_webhook_and_a_reconcile_of_one_consignment_dispatch_once_on_dynamodb() {
    a_webhook_and_a_reconcile_of_one_consignment_dispatch_once(
        rig(Some(dynamo_table().await)).await,
    )
    .await;
}

async fn a_relabel_leaves_one_connote_and_its_freight_and_a_split_still_sums(
    rig: PullRig,
    deleted_listed: bool,
) {
    rig.gss.set_list_deleted(deleted_listed);
    seed(&rig, 1..=2);
    rig.pull(&PullOptions::default()).await;
    // SO-1: ticketed, written back, then the ticket deleted and printed again with other parcels.
    let first = rig.gss.create_ticket("SO-1", ticket(dec!(8.50))).unwrap();
    rig.webhook(std::slice::from_ref(&first)).await;
    rig.write_back(&rig.take_jobs().await).await;
    let first_connote = first.consignment_no.clone().unwrap();
    rig.gss.delete_ticket(&first_connote).unwrap();
    let second = rig
        .gss
        .create_ticket(
            "SO-1",
            Ticket {
                cost: dec!(12.00),
                carrier: "NZ Couriers - WLG".into(),
            },
        )
        .unwrap();
    let gets = rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS);
    rig.webhook(std::slice::from_ref(&second)).await;
    assert_eq!(
        rig.write_back(&rig.take_jobs().await).await,
        [JobOutcome::Done]
    );
    assert_eq!(
        rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS) - gets,
        1,
        "the earlier consignment is read with the new one"
    );
    let o = rig.cin7.order(1).unwrap();
    let second_connote = second.consignment_no.clone().unwrap();
    assert_eq!(o["trackingCode"], second_connote.as_str());
    assert_eq!(
        o["freightTotal"], 13.8,
        "12.00 × 1.15, the first's freight taken off"
    );
    assert_eq!(o["logisticsCarrier"], "NZ Couriers");
    let comments = o["internalComments"].as_str().unwrap();
    assert!(!comments.contains(&first_connote), "{comments}");
    assert!(comments.ends_with(&second_connote), "{comments}");
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_eq!(record.reason, "relabelled");
    let deleted: Vec<(&str, bool)> = record
        .consignments
        .iter()
        .map(|c| (c.connote.as_str(), c.deleted))
        .collect();
    assert_eq!(
        deleted,
        [
            (first_connote.as_str(), true),
            (second_connote.as_str(), false)
        ]
    );
    // The reconcile does not bring the deleted ticket back.
    let later = rig.pull(&PullOptions::default()).await;
    assert_eq!(later.reconciled, 0, "{later:?}");
    // SO-2: a true split shipment (both stand) sums.
    let a = rig.gss.create_ticket("SO-2", ticket(dec!(8.50))).unwrap();
    rig.webhook(std::slice::from_ref(&a)).await;
    rig.write_back(&rig.take_jobs().await).await;
    let b = rig.gss.create_ticket("SO-2", ticket(dec!(5.00))).unwrap();
    rig.webhook(std::slice::from_ref(&b)).await;
    rig.write_back(&rig.take_jobs().await).await;
    let o = rig.cin7.order(2).unwrap();
    assert_eq!(
        o["trackingCode"],
        format!(
            "{},{}",
            a.consignment_no.unwrap(),
            b.consignment_no.unwrap()
        )
    );
    assert_eq!(o["freightTotal"], 15.53, "(8.50 + 5.00) × 1.15");
}

#[tokio::test]
async fn a_relabel_on_sqlite_when_gosweetspot_leaves_deleted_tickets_out() {
    a_relabel_leaves_one_connote_and_its_freight_and_a_split_still_sums(rig(None).await, false)
        .await;
}

#[tokio::test]
async fn a_relabel_on_dynamodb_when_gosweetspot_lists_them_as_deleted() {
    a_relabel_leaves_one_connote_and_its_freight_and_a_split_still_sums(
        rig(Some(dynamo_table().await)).await,
        true,
    )
    .await;
}

#[tokio::test]
async fn changed_shipments_page_by_250_and_a_failed_reconcile_never_fails_the_publishing() {
    let rig = rig(None).await;
    seed(&rig, 1..=260);
    assert_eq!(rig.pull(&PullOptions::default()).await.published, 260);
    for id in 1..=260 {
        rig.gss
            .create_ticket(&format!("SO-{id}"), ticket(dec!(5)))
            .unwrap();
    }
    // GoSweetSpot down for the next pull's reconcile: the pull still publishes, the cursor stays.
    seed(&rig, 261..=262);
    rig.gss.harness().inject(
        Matcher::route(Method::GET, "/api/shipments"),
        FaultKind::Status {
            status: 503,
            retry_after: None,
        },
        10,
    );
    let failed = rig.pull(&PullOptions::default()).await;
    assert_eq!(failed.outcome, PullOutcome::Completed);
    assert_eq!(failed.published, 2);
    assert_eq!(failed.reconciled, 0);
    assert!(failed.reconcile_error.is_some(), "{failed:?}");
    rig.gss.harness().clear_faults();
    // The next one reconciles the whole window: 260 changed shipments in two pages.
    let gets = rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS);
    let next = rig.pull(&PullOptions::default()).await;
    assert_eq!(next.reconciled, 260, "{next:?}");
    assert_eq!(
        rig.gss_client.calls().get(gss_ops::GET_SHIPMENTS) - gets,
        2,
        "⌈260/250⌉"
    );
    assert_eq!(rig.take_jobs().await.len(), 260);
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_a_queue_down_keeps_the_cursor() {
    let rig = rig(None).await;
    seed(&rig, 1..=2);
    rig.pull(&PullOptions::default()).await;
    let shipment = rig.gss.create_ticket("SO-1", ticket(dec!(5))).unwrap();
    let deps = ReconcileDeps {
        store: &rig.store,
        queue: &rig.queue,
        feed: &rig.gss_client,
        clock: &shared::clock::SystemClock,
    };
    let cursor = rig.store.get_reconcile_cursor("acme").await.unwrap();
    let dry = reconcile(
        deps,
        &rig.settings,
        ReconcileOptions {
            since: None,
            dry_run: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.queued, [shipment.consignment_no.clone().unwrap()]);
    assert!(dry.dry_run);
    assert_eq!(
        rig.store.get_reconcile_cursor("acme").await.unwrap(),
        cursor
    );
    assert!(rig.take_jobs().await.is_empty());
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert!(record.consignments.is_empty(), "nothing noted by a dry run");
    // The queue refuses: nothing is marked seen and the cursor stays, so the next run queues.
    let down = QueueDown;
    let refused = reconcile(
        ReconcileDeps {
            queue: &down,
            ..deps
        },
        &rig.settings,
        ReconcileOptions::default(),
    )
    .await;
    assert!(refused.is_err());
    assert_eq!(
        rig.store.get_reconcile_cursor("acme").await.unwrap(),
        cursor
    );
    assert!(
        !rig.store
            .consignment_seen("acme", shipment.consignment_no.as_deref().unwrap())
            .await
            .unwrap()
    );
    let again = reconcile(deps, &rig.settings, ReconcileOptions::default())
        .await
        .unwrap();
    assert_eq!(again.queued.len(), 1);
    assert_ne!(
        rig.store.get_reconcile_cursor("acme").await.unwrap(),
        cursor
    );
}

/// A queue that refuses every send.
struct QueueDown;

#[async_trait::async_trait]
impl shared::queue::JobQueue for QueueDown {
    async fn send(
        &self,
        messages: &[shared::queue::Outgoing],
    ) -> Result<(), shared::queue::QueueError> {
        Err(shared::queue::QueueError::Unavailable(format!(
            "{} messages refused",
            messages.len()
        )))
    }
}
