//! The write-back against the sandboxes: what lands in CIN7 for every setting of the seed,
//! money, split shipments, duplicates, CIN7's 500-after-commit, faults and redelivery, and the
//! call budget of a batch.

use chrono::{TimeZone, Utc};
use integration_tests::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use sandbox::{FaultKind, Matcher, Method, Ticket};
use serde_json::{Value, json};
use shared::jobs::WriteBackJob;
use shared::queue::JobSource;
use shared::records::OrderState;
use shared::store::prelude::*;
use std::time::Duration;

fn cin7_order(id: i64, tax: &str, freight: Decimal) -> Value {
    let mut o = order(
        id,
        &format!("SO-{id}"),
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
    );
    o["taxStatus"] = json!(tax);
    o["freightTotal"] = json!(freight.to_string().parse::<f64>().unwrap());
    o
}

/// A ticket as GoSweetSpot makes it: its `Carrier` is a rate-card label.
fn ticket(cost: Decimal) -> Ticket {
    Ticket {
        cost,
        carrier: "Post Haste - AKL - 2011".into(),
    }
}

fn freight_of(o: &Value) -> Decimal {
    Decimal::from_str_exact(&o["freightTotal"].to_string()).unwrap()
}

#[tokio::test]
async fn dispatch_tracking_freight_and_shopify_land_in_cin7() {
    let rig = WriteBackRig::new().await;
    rig.gss.set_markup("Online", dec!(10));
    rig.integration("acme", json!({
        "send_ticket_number": true, "freight": "marked_up", "shopify_trigger":
        "https://go.cin7.com/Cloud/TransactionEntry/TransactionEntry.aspx?idCustomerAppsLink=800541&OrderId=1"
    })).await;
    let job = rig
        .ticketed(
            "acme",
            cin7_order(1, "Incl", Decimal::ZERO),
            ticket(dec!(8.50)),
        )
        .await;
    assert!(
        rig.run(rig.messages(std::slice::from_ref(&job), 1))
            .await
            .is_empty()
    );

    let o = rig.cin7.order(1).unwrap();
    assert_eq!(o["stage"], "Dispatched");
    assert!(o["dispatchedDate"].as_str().unwrap().ends_with('Z'));
    assert_eq!(o["trackingCode"], job.connote.as_str());
    assert_eq!(o["logisticsCarrier"], "Post Haste");
    let url = job.tracking_url.clone().unwrap();
    assert_eq!(o["internalComments"], format!("Shopify order\n{url}"));
    // Marked up by GoSweetSpot: 8.50 × 1.10 = 9.35, plus 15 % GST (Incl) = 10.7525 → 10.75.
    assert_eq!(freight_of(&o), dec!(10.75));
    assert_eq!(rig.shopify_calls(), 1);
    let trigger = rig
        .cin7
        .harness()
        .records()
        .into_iter()
        .find(|r| r.path.starts_with("/shopify/"))
        .unwrap();
    assert!(
        trigger.query.contains("idCustomerAppsLink=800541") && trigger.query.contains("OrderId=1"),
        "{}",
        trigger.query
    );
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_eq!(record.state, OrderState::Dispatched);
    assert_eq!(record.consignments.len(), 1);
    assert_eq!(record.consignments[0].freight_added, Some(dec!(9.35)));
    assert!(
        record
            .history
            .iter()
            .any(|t| t.reason == "shopify_triggered")
    );
}

#[tokio::test]
async fn custom_fields_survive_carriers_are_named_and_no_markup_falls_back() {
    let rig = WriteBackRig::new().await;
    // No markup on the cost centre in GoSweetSpot (Charge_MarkedUpLineTotal is 0 there): the
    // integration's fallback markup applies.
    rig.integration(
        "acme",
        json!({"send_ticket_number": true, "freight": "marked_up",
               "tracking_url_field": "customFields.tracking",
               "markup_by_cost_centre": {"Online": {"percent": "10"}},
               "carrier_names": {"Post Haste": "PostHaste NZ"}}),
    )
    .await;
    let mut order = cin7_order(1, "Excl", Decimal::ZERO);
    order["customFields"] = json!({"gift_note": "Happy birthday", "priority": 2});
    let job = rig.ticketed("acme", order, ticket(dec!(8.50))).await;
    let shipment = rig.gss.shipments().pop().unwrap();
    assert_eq!(
        shipment.items[0].charge_marked_up_line_total,
        Some(Decimal::ZERO)
    );
    assert!(
        rig.run(rig.messages(std::slice::from_ref(&job), 1))
            .await
            .is_empty()
    );
    let o = rig.cin7.order(1).unwrap();
    // The sandbox replaces the whole map on a PUT that sends customFields, as CIN7 may.
    assert_eq!(
        o["customFields"],
        json!({"gift_note": "Happy birthday", "priority": 2,
               "tracking": job.tracking_url.clone().unwrap()})
    );
    assert_eq!(o["logisticsCarrier"], "PostHaste NZ");
    assert_eq!(freight_of(&o), dec!(9.35), "8.50 + 10 %");
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_eq!(
        record.consignments[0].carrier.as_deref(),
        Some("PostHaste NZ")
    );
}

#[tokio::test]
async fn every_settings_combination_of_the_seed() {
    let rig = WriteBackRig::new().await;
    rig.gss.set_markup("Online", dec!(20));
    let mut id = 100;
    for ticket_on in [false, true] {
        for freight in ["off", "cost", "marked_up"] {
            for overwrite in [false, true] {
                for field in ["internalComments", "customFields.orders_1000"] {
                    for shopify in [false, true] {
                        if shopify && !ticket_on {
                            continue; // refused by validation: the trigger needs a dispatch
                        }
                        id += 1;
                        let integration = format!("combo-{id}");
                        let mut wb = json!({"send_ticket_number": ticket_on, "freight": freight,
                            "overwrite_existing_freight": overwrite, "tracking_url_field": field});
                        if shopify {
                            wb["shopify_trigger"] = json!("800541");
                        }
                        rig.integration(&integration, wb).await;
                        let shopify_before = rig.shopify_calls();
                        // An order that already carries a 7.50 shipping charge.
                        let job = rig
                            .ticketed(
                                &integration,
                                cin7_order(id, "Excl", dec!(7.50)),
                                ticket(dec!(10.00)),
                            )
                            .await;
                        assert!(
                            rig.run(rig.messages(std::slice::from_ref(&job), 1))
                                .await
                                .is_empty()
                        );
                        let o = rig.cin7.order(id).unwrap();
                        let case = format!(
                            "ticket={ticket_on} freight={freight} overwrite={overwrite} field={field} shopify={shopify}"
                        );
                        let url = job.tracking_url.clone().unwrap();
                        if ticket_on {
                            assert_eq!(o["stage"], "Dispatched", "{case}");
                            assert_eq!(o["trackingCode"], job.connote.as_str(), "{case}");
                            assert_eq!(o["logisticsCarrier"], "Post Haste", "{case}");
                            if field == "internalComments" {
                                assert!(
                                    o["internalComments"].as_str().unwrap().ends_with(&url),
                                    "{case}"
                                );
                            } else {
                                assert_eq!(
                                    o["customFields"]["orders_1000"],
                                    url.as_str(),
                                    "{case}"
                                );
                                assert_eq!(o["internalComments"], "Shopify order", "{case}");
                            }
                        } else {
                            assert_eq!(o["stage"], "New", "{case}");
                            assert!(o["trackingCode"].is_null(), "{case}");
                            assert_eq!(o["internalComments"], "Shopify order", "{case}");
                        }
                        let expected = match (freight, overwrite) {
                            ("off", _) | (_, false) => dec!(7.50),
                            ("cost", true) => dec!(10.00),
                            (_, true) => dec!(12.00),
                        };
                        assert_eq!(freight_of(&o), expected, "{case}");
                        assert_eq!(
                            rig.shopify_calls() - shopify_before,
                            usize::from(shopify),
                            "{case}"
                        );
                        if freight != "off" && !overwrite {
                            let record = rig
                                .store
                                .get_order(&integration, id)
                                .await
                                .unwrap()
                                .unwrap();
                            let said = record
                                .history
                                .iter()
                                .filter_map(|t| t.detail.clone())
                                .collect::<Vec<_>>();
                            assert!(
                                said.iter().any(|d| d.contains("left alone")),
                                "{case}: the record says why: {said:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn a_split_shipment_dispatches_once_and_adds_each_freight_once() {
    let rig = WriteBackRig::new().await;
    rig.integration(
        "acme",
        json!({"send_ticket_number": true, "freight": "cost"}),
    )
    .await;
    let first = rig
        .ticketed(
            "acme",
            cin7_order(1, "Incl", Decimal::ZERO),
            ticket(dec!(8.50)),
        )
        .await;
    let second = rig.job_for(
        "acme",
        1,
        "SO-1",
        rig.gss.ticket("SO-1", ticket(dec!(5.00))).await.unwrap(),
    );
    assert!(
        rig.run(rig.messages(std::slice::from_ref(&first), 1))
            .await
            .is_empty()
    );
    let dispatched_at = rig.cin7.order(1).unwrap()["dispatchedDate"].clone();
    assert!(
        rig.run(rig.messages(std::slice::from_ref(&second), 1))
            .await
            .is_empty()
    );
    // And both again, redelivered.
    assert!(
        rig.run(rig.messages(&[first.clone(), second.clone()], 2))
            .await
            .is_empty()
    );
    let o = rig.cin7.order(1).unwrap();
    assert_eq!(o["dispatchedDate"], dispatched_at, "dispatched once");
    assert_eq!(
        o["trackingCode"],
        format!("{},{}", first.connote, second.connote)
    );
    let comments = o["internalComments"].as_str().unwrap();
    assert!(comments.contains(first.tracking_url.as_deref().unwrap()));
    assert!(comments.contains(second.tracking_url.as_deref().unwrap()));
    assert_eq!(freight_of(&o), dec!(15.53), "(8.50 + 5.00) × 1.15");
    assert_eq!(
        rig.cin7_puts(),
        2,
        "one PUT per consignment, none for the redelivery"
    );
}

#[tokio::test]
async fn duplicates_in_one_batch_and_across_batches_change_cin7_once() {
    let rig = WriteBackRig::new().await;
    rig.integration(
        "acme",
        json!({"send_ticket_number": true, "freight": "cost"}),
    )
    .await;
    let job = rig
        .ticketed(
            "acme",
            cin7_order(1, "Excl", Decimal::ZERO),
            ticket(dec!(8.50)),
        )
        .await;
    let batch = rig.messages(&[job.clone(), job.clone(), job.clone()], 1);
    assert!(rig.run(batch).await.is_empty());
    assert!(
        rig.run(rig.messages(std::slice::from_ref(&job), 1))
            .await
            .is_empty()
    );
    assert!(
        rig.run(rig.messages(&[job.clone(), job.clone()], 3))
            .await
            .is_empty()
    );
    assert_eq!(rig.cin7_puts(), 1);
    assert_eq!(freight_of(&rig.cin7.order(1).unwrap()), dec!(8.50));
}

#[tokio::test]
async fn a_put_answered_500_after_committing_is_not_sent_again() {
    let rig = WriteBackRig::new().await;
    rig.integration(
        "acme",
        json!({"send_ticket_number": true, "freight": "cost"}),
    )
    .await;
    let job = rig
        .ticketed(
            "acme",
            cin7_order(1, "Excl", Decimal::ZERO),
            ticket(dec!(8.50)),
        )
        .await;
    rig.cin7
        .harness()
        .inject(Matcher::method(Method::PUT), FaultKind::CommitThen500, 1);
    assert!(
        rig.run(rig.messages(std::slice::from_ref(&job), 1))
            .await
            .is_empty(),
        "read back, found done"
    );
    assert_eq!(rig.cin7_puts(), 1);
    let record = rig.store.get_order("acme", 1).await.unwrap().unwrap();
    assert_eq!(record.state, OrderState::Dispatched);
    assert_eq!(record.consignments[0].freight_added, Some(dec!(8.50)));
    assert!(rig.run(rig.messages(&[job], 2)).await.is_empty());
    assert_eq!(rig.cin7_puts(), 1);
}

#[tokio::test]
async fn faults_fail_only_the_affected_messages_and_redelivery_completes() {
    let rig = WriteBackRig::new().await;
    rig.integration("acme", json!({"send_ticket_number": true}))
        .await;
    // A second integration on other sandboxes, whose CIN7 is failing.
    let other = WriteBackRig::new().await;
    let mut bolt = sandbox_settings("bolt", &other.cin7, &other.gss);
    bolt.write_back.send_ticket_number = true;
    rig.store.put_integration(&bolt).await.unwrap();
    let a = rig
        .ticketed(
            "acme",
            cin7_order(1, "Excl", Decimal::ZERO),
            ticket(dec!(8.50)),
        )
        .await;
    let mut b_order = cin7_order(2, "Excl", Decimal::ZERO);
    b_order["reference"] = json!("SO-2");
    other.cin7.put_order(b_order.clone());
    let b = {
        // Published and ticketed in the other GoSweetSpot sandbox, recorded in our store.
        let gss = gss_client(&other.gss, GSS_KEY, unlimited(), fast_retry(3));
        gss.put_customer_orders(&[shared::gss::model::CustomerOrder {
            packingslipno: "SO-2".into(),
            country: "NZ".into(),
            ..Default::default()
        }])
        .await
        .unwrap();
        let mut record =
            shared::records::OrderRecord::new(2, OrderState::Published, "published", Utc::now());
        record.packing_slip = Some("SO-2".into());
        rig.store.save_order("bolt", &mut record).await.unwrap();
        rig.job_for(
            "bolt",
            2,
            "SO-2",
            other.gss.ticket("SO-2", ticket(dec!(5))).await.unwrap(),
        )
    };
    other.cin7.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 429,
            retry_after: Some(0),
        },
        100,
    );
    let batch = rig.messages(&[a.clone(), b.clone()], 1);
    let b_message = batch[1].message_id.clone();
    let failed = rig.run(batch).await;
    assert_eq!(failed, [b_message], "only the affected message fails");
    assert_eq!(rig.cin7.order(1).unwrap()["stage"], "Dispatched");
    let record = rig.store.get_order("bolt", 2).await.unwrap().unwrap();
    assert!(record.last_error.unwrap().contains("429"));

    // GoSweetSpot failing too now, for the redelivery: still fails, then recovers.
    other.gss.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 503,
            retry_after: None,
        },
        3,
    );
    other.cin7.harness().clear_faults();
    assert_eq!(
        rig.run(rig.messages(std::slice::from_ref(&b), 2))
            .await
            .len(),
        1
    );
    assert!(
        rig.run(rig.messages(std::slice::from_ref(&b), 3))
            .await
            .is_empty(),
        "redelivery completes"
    );
    assert_eq!(other.cin7.order(2).unwrap()["stage"], "Dispatched");

    // A job that keeps failing is marked failed on its order at the redrive limit.
    let c = rig
        .ticketed(
            "acme",
            cin7_order(3, "Excl", Decimal::ZERO),
            ticket(dec!(1)),
        )
        .await;
    rig.gss.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 500,
            retry_after: None,
        },
        1000,
    );
    for attempt in 1..=5 {
        assert_eq!(
            rig.run(rig.messages(std::slice::from_ref(&c), attempt))
                .await
                .len(),
            1
        );
    }
    let failed = rig
        .store
        .list_orders("acme", Some(OrderState::Failed))
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].reason, "write_back_exhausted");
    assert!(failed[0].detail.clone().unwrap().contains("dead-letter"));
}

#[tokio::test]
async fn permanent_failures_are_recorded_and_finished() {
    let rig = WriteBackRig::new().await;
    rig.integration("acme", json!({"send_ticket_number": true}))
        .await;
    let void = rig
        .ticketed(
            "acme",
            cin7_order(1, "Excl", Decimal::ZERO),
            ticket(dec!(1)),
        )
        .await;
    rig.cin7.edit_order(1, |o| o["isVoid"] = json!(true));
    let gone: WriteBackJob = WriteBackJob {
        cin7_id: 404,
        ..void.clone()
    };
    let gone = WriteBackJob {
        connote: "SSPOT999999".into(),
        ..gone
    };
    assert!(
        rig.run(rig.messages(&[void, gone], 1)).await.is_empty(),
        "finished, not retried"
    );
    let failed = rig
        .store
        .list_orders("acme", Some(OrderState::Failed))
        .await
        .unwrap();
    let reasons: Vec<&str> = failed.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, ["order_void", "order_not_found"]);
}

#[tokio::test]
async fn a_batch_of_100_costs_one_shipment_read_and_one_put() {
    let rig = WriteBackRig::new().await;
    rig.integration(
        "acme",
        json!({"send_ticket_number": true, "freight": "cost"}),
    )
    .await;
    let mut jobs = Vec::new();
    for id in 1..=100 {
        jobs.push(
            rig.ticketed(
                "acme",
                cin7_order(id, "Incl", Decimal::ZERO),
                ticket(dec!(8.50)),
            )
            .await,
        );
    }
    rig.cin7.harness().clear_records();
    rig.gss.harness().clear_records();
    assert!(rig.run(rig.messages(&jobs, 1)).await.is_empty());
    assert_eq!(rig.gss.harness().count("GET", "/api/shipments"), 1);
    assert_eq!(rig.gss.harness().records().len(), 1);
    assert_eq!(rig.cin7_puts(), 1);
    assert_eq!(
        rig.cin7.harness().count("GET", "/api/v1/SalesOrders"),
        1,
        "one read of the 100 orders"
    );
    assert_eq!(
        rig.store.calls_today("acme").await.unwrap(),
        2,
        "the write-back's CIN7 calls count toward the daily limit"
    );
    let dispatched = rig
        .store
        .list_orders("acme", Some(OrderState::Dispatched))
        .await
        .unwrap();
    assert_eq!(dispatched.len(), 100);
    assert!(
        rig.cin7
            .orders()
            .iter()
            .all(|o| o["stage"] == "Dispatched" && freight_of(o) == dec!(9.78))
    );
}

#[tokio::test]
async fn the_sqs_fixture_runs_with_a_partial_failure_for_the_unknown_integration() {
    let path = format!(
        "{}/../events/write-back-sqs.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let batch = shared::queue::from_sqs(event);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[1].receive_count, 2);
    let rig = WriteBackRig::new().await;
    rig.integration(
        "acme",
        json!({"send_ticket_number": true, "freight": "cost"}),
    )
    .await;
    // The acme order of the fixture: SO-1, ticketed as SSPOT018668 (the sandbox's first).
    let job = rig
        .ticketed(
            "acme",
            cin7_order(1, "Excl", Decimal::ZERO),
            ticket(dec!(8.50)),
        )
        .await;
    assert_eq!(job.connote, "SSPOT018668");
    let failed = rig.run(batch).await;
    let response = shared::queue::sqs_response(failed);
    let ids: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        ids,
        ["6d9c1b1e-0002"],
        "bolt is not configured here: only its message fails"
    );
    assert_eq!(rig.cin7.order(1).unwrap()["trackingCode"], "SSPOT018668");
    assert_eq!(freight_of(&rig.cin7.order(1).unwrap()), dec!(8.50));
}

/// A TCP listener that accepts connections and never answers: a merchant whose API hangs.
async fn hanging_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test]
async fn one_hanging_and_one_failing_merchant_fail_alone_in_a_concurrent_batch() {
    let mut rig = WriteBackRig::new().await;
    // Groups are not cut by their own deadline here but by the invocation's: written one after
    // another, the hanging merchant (first in the batch's order) would hold the others until
    // the invocation ends.
    rig.config.groups.deadline = Duration::from_secs(60);
    rig.config.groups.margin = Duration::ZERO;
    let settings = json!({"send_ticket_number": true, "freight": "cost"});
    let mut jobs = Vec::new();
    for (integration, first_id) in [("a-hangs", 1), ("b-fails", 11), ("c-works", 21)] {
        rig.integration(integration, settings.clone()).await;
        for id in first_id..first_id + 3 {
            jobs.push(
                rig.ticketed(
                    integration,
                    cin7_order(id, "Incl", Decimal::ZERO),
                    ticket(dec!(8.50)),
                )
                .await,
            );
        }
    }
    let (hanging, _server) = hanging_server().await;
    let mut hangs = rig.store.get_integration("a-hangs").await.unwrap().unwrap();
    hangs.gss.base_url = hanging;
    rig.store.put_integration(&hangs).await.unwrap();
    let mut fails = rig.store.get_integration("b-fails").await.unwrap().unwrap();
    // A port nothing listens on: every connection is refused.
    fails.gss.base_url = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", closed.local_addr().unwrap())
    };
    rig.store.put_integration(&fails).await.unwrap();

    let batch = rig.messages(&jobs, 1);
    let expected_failed: Vec<String> = batch[..6].iter().map(|m| m.message_id.clone()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut failed = rig.run_until(batch, Some(deadline)).await;
    failed.sort();
    let mut expected = expected_failed;
    expected.sort();
    assert_eq!(
        failed, expected,
        "only the hanging and failing merchants' jobs come back"
    );
    let done = rig
        .store
        .list_orders("c-works", Some(OrderState::Dispatched))
        .await
        .unwrap();
    assert_eq!(
        done.len(),
        3,
        "the healthy merchant's jobs were written back"
    );
    for stuck in ["a-hangs", "b-fails"] {
        assert!(
            rig.store
                .list_orders(stuck, Some(OrderState::Dispatched))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_merchant_at_its_daily_budget_waits_for_the_next_day() {
    let rig = WriteBackRig::new().await;
    rig.integration("acme", json!({"send_ticket_number": true}))
        .await;
    let job = rig
        .ticketed(
            "acme",
            cin7_order(1, "Incl", Decimal::ZERO),
            ticket(dec!(8.50)),
        )
        .await;
    rig.store
        .count_calls("acme", rig.config.daily_budget)
        .await
        .unwrap();
    rig.cin7.harness().clear_records();
    rig.gss.harness().clear_records();
    assert!(
        rig.run(rig.messages(std::slice::from_ref(&job), 1))
            .await
            .is_empty(),
        "deferred, so acknowledged"
    );
    assert!(
        rig.cin7.harness().records().is_empty(),
        "no CIN7 call over the budget"
    );
    assert!(rig.gss.harness().records().is_empty());
    let deferred = rig
        .requeue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        deferred.is_empty(),
        "sent again with a delay, not visible yet"
    );
    assert_eq!(rig.requeue.depth().await.unwrap(), 1);
    assert_eq!(
        rig.metrics.sum("write-back", "WriteBacksDeferred"),
        1,
        "the deferral is counted"
    );
}
