//! The CIN7 and GoSweetSpot clients against the sandboxes over real sockets.

use chrono::{Duration as Days, TimeZone, Utc};
use integration_tests::*;
use sandbox::{Cin7Sandbox, FaultKind, GssSandbox, Matcher, Method, Permissions, Ticket};
use serde_json::json;
use shared::cin7::client::ops as cin7_ops;
use shared::cin7::model::{OrderRow, SALES_ORDER_FIELDS};
use shared::cin7::query::{Direction, ListQuery, Where};
use shared::cin7::update::SalesOrderUpdate;
use shared::gss::client::ops as gss_ops;
use shared::gss::model::{CustomerOrder, DeleteOutcome, OrderProduct};
use shared::http::ApiError;
use shared::rate_limit::{Window, WindowLimiter};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn cin7_with_orders(n: i64) -> Cin7Sandbox {
    let sandbox = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.unwrap();
    let base = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    for id in 1..=n {
        sandbox.put_order(order(id, &format!("SO-{id}"), base + Days::seconds(id)));
    }
    sandbox
}

fn since_query() -> ListQuery {
    ListQuery {
        filter: Where::new().modified_since(&shared::timestamp::Timestamp::utc(
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )),
        order: Some(("modifiedDate", Direction::Asc)),
        fields: SALES_ORDER_FIELDS.to_vec(),
        ..ListQuery::default()
    }
}

#[tokio::test]
async fn pages_until_a_short_page_with_exact_call_counts() {
    let sandbox = cin7_with_orders(600).await;
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(3));
    let rows = client.list_all(since_query()).await.unwrap();
    assert_eq!(rows.len(), 600);
    let ids: Vec<i64> = rows.iter().filter_map(OrderRow::id).collect();
    assert_eq!(
        ids,
        (1..=600).collect::<Vec<_>>(),
        "every order once, in modifiedDate order"
    );
    assert_eq!(client.calls().get(cin7_ops::LIST), 3);
    assert_eq!(sandbox.harness().count("GET", "/api/v1/SalesOrders"), 3);
    let pages: Vec<String> = sandbox
        .harness()
        .records()
        .iter()
        .map(|r| r.query.clone())
        .collect();
    assert!(
        pages[2].contains("page=3") && pages[2].contains("rows=250"),
        "{pages:?}"
    );
    assert!(
        pages[0].contains("fields=id%2Creference"),
        "fields= is limited: {}",
        pages[0]
    );

    // An exact multiple of the page size costs one more (empty) page.
    let sandbox = cin7_with_orders(500).await;
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(3));
    assert_eq!(client.list_all(since_query()).await.unwrap().len(), 500);
    assert_eq!(client.calls().get(cin7_ops::LIST), 3);
}

#[tokio::test]
async fn rows_over_the_maximum_are_refused_before_sending() {
    let sandbox = cin7_with_orders(1).await;
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(3));
    let err = client
        .list_page(&ListQuery {
            rows: 251,
            ..ListQuery::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::InvalidRequest { .. }), "{err}");
    assert_eq!(client.calls().total(), 0);
}

#[tokio::test]
async fn bad_credentials_and_missing_permissions_are_permanent_and_named() {
    let sandbox = cin7_with_orders(3).await;
    let wrong_key = "wrong-key-do-not-print";
    let client = cin7_client(&sandbox, wrong_key, unlimited(), fast_retry(5));
    let err = client.list_page(&since_query()).await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }));
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(
        msg.contains("401") && msg.contains("cin7.api_username"),
        "{msg}"
    );
    assert!(!msg.contains(wrong_key) && !format!("{err:?}").contains(wrong_key));
    assert!(!format!("{client:?}").contains(wrong_key));
    assert_eq!(client.calls().total(), 1, "a 401 is not retried");

    sandbox.set_permissions(Permissions {
        read: false,
        update: true,
    });
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(5));
    let err = client.get_order(1).await.unwrap_err();
    assert!(matches!(err, ApiError::Forbidden { .. }));
    assert!(!err.is_transient());
    assert!(err.to_string().contains("Sales Orders Read"), "{err}");
    assert!(!err.to_string().contains(CIN7_KEY));
}

#[tokio::test]
async fn a_429_burst_is_absorbed_honouring_retry_after() {
    let sandbox = cin7_with_orders(300).await;
    sandbox.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 429,
            retry_after: Some(1),
        },
        2,
    );
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(5));
    let started = Instant::now();
    let rows = client.list_all(since_query()).await.unwrap();
    assert_eq!(rows.len(), 300, "nothing lost");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited out both Retry-After: 1"
    );
    assert_eq!(sandbox.harness().throttled(), 2);
    assert_eq!(
        client.calls().get(cin7_ops::LIST),
        4,
        "2 throttled + 2 pages"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_surfaced_as_transient() {
    let sandbox = cin7_with_orders(3).await;
    sandbox.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(4));
    assert_eq!(client.list_all(since_query()).await.unwrap().len(), 3);
    assert_eq!(client.calls().total(), 3, "two 503s then success");

    sandbox.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 500,
            retry_after: None,
        },
        10,
    );
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(4));
    let err = client.list_page(&since_query()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Server {
                status: 500,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(client.calls().total(), 4);
}

#[tokio::test]
async fn malformed_json_is_a_clear_error_not_a_panic() {
    let sandbox = cin7_with_orders(5).await;
    // Once: retried and recovered.
    sandbox
        .harness()
        .inject(Matcher::any(), FaultKind::Truncate, 1);
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(3));
    assert_eq!(client.list_all(since_query()).await.unwrap().len(), 5);

    // Always: a typed error naming the problem.
    sandbox
        .harness()
        .inject(Matcher::any(), FaultKind::Truncate, 3);
    let err = client.get_order(1).await.unwrap_err();
    assert!(matches!(err, ApiError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("invalid JSON"), "{err}");
    sandbox
        .harness()
        .inject(Matcher::any(), FaultKind::Garbage, 3);
    let err = client.list_page(&since_query()).await.unwrap_err();
    assert!(matches!(err, ApiError::Malformed { .. }), "{err}");
}

#[tokio::test]
async fn get_by_id_and_not_found() {
    let sandbox = cin7_with_orders(2).await;
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(3));
    let order = client.get_order(2).await.unwrap().unwrap();
    assert_eq!(order.reference.as_deref(), Some("SO-2"));
    assert_eq!(client.get_order(99).await.unwrap(), None);
    assert_eq!(client.calls().get(cin7_ops::GET), 2);
}

#[tokio::test]
async fn put_partial_failure_maps_errors_to_the_right_orders() {
    let sandbox = cin7_with_orders(3).await;
    sandbox.edit_order(2, |o| o["isVoid"] = json!(true));
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(3));
    let when = Utc.with_ymd_and_hms(2024, 5, 2, 3, 15, 0).unwrap();
    let dispatch = |id| SalesOrderUpdate {
        id,
        dispatched_date: Some(when),
        stage: Some("Dispatched".into()),
        tracking_code: Some("SSPOT018667".into()),
        ..Default::default()
    };
    let outcomes = client
        .update_orders(&[dispatch(1), dispatch(2), dispatch(404)])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!((outcomes[0].id, outcomes[0].result.clone()), (1, Ok(())));
    assert_eq!(outcomes[1].id, 2);
    assert!(outcomes[1].result.as_ref().unwrap_err()[0].contains("void"));
    assert_eq!(outcomes[2].id, 404);
    assert!(outcomes[2].result.as_ref().unwrap_err()[0].contains("not found"));

    let stored = sandbox.order(1).unwrap();
    assert_eq!(stored["dispatchedDate"], "2024-05-02T03:15:00Z");
    assert_eq!(stored["trackingCode"], "SSPOT018667");
    assert_eq!(stored["stage"], "Dispatched");
    assert_eq!(stored["firstName"], "Aroha", "untouched fields are kept");
    let sent = &sandbox.harness().records()[0].body;
    let body: serde_json::Value = serde_json::from_str(sent).unwrap();
    assert_eq!(
        body[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["dispatchedDate", "id", "stage", "trackingCode"],
        "only the changed fields, never status"
    );
}

#[tokio::test]
async fn a_put_that_commits_then_answers_500_is_not_resent() {
    let sandbox = cin7_with_orders(1).await;
    sandbox
        .harness()
        .inject(Matcher::method(Method::PUT), FaultKind::CommitThen500, 1);
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(5));
    let err = client
        .update_orders(&[SalesOrderUpdate {
            id: 1,
            stage: Some("Dispatched".into()),
            ..Default::default()
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Server { status: 500, .. }));
    assert!(err.is_transient());
    assert_eq!(
        client.calls().get(cin7_ops::PUT),
        1,
        "never resent: the caller reads back"
    );
    assert_eq!(
        sandbox.order(1).unwrap()["stage"],
        "Dispatched",
        "it did commit"
    );
}

#[tokio::test]
async fn two_hundred_calls_respect_both_windows_as_the_sandbox_saw_them() {
    // CIN7's 3/s and 60/min compressed 20×: a "second" is 50 ms, a "minute" 3 s. The client
    // keeps a margin over the windows the sandbox enforces and checks, as it does in production
    // (wider here, relative to the window, so a loaded machine's scheduling delays between the
    // limiter's grant and the request's arrival cannot squeeze calls together).
    let second = Duration::from_millis(50);
    let sandbox = cin7_with_orders(1).await;
    sandbox.harness().set_limits(scaled_cin7_windows(second));
    let limiter = Arc::new(WindowLimiter::new(vec![
        Window::new(3, second + Duration::from_millis(25)),
        Window::new(60, second * 60 + Duration::from_millis(100)),
    ]));
    let client = Arc::new(cin7_client(&sandbox, CIN7_KEY, limiter, fast_retry(1)));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    client.get_order(1).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let h = sandbox.harness();
    assert_eq!(h.records().len(), 200);
    assert_eq!(h.throttled(), 0, "our pacing never drew a 429");
    assert!(h.max_in_window(second) <= 3, "{}", h.max_in_window(second));
    assert!(
        h.max_in_window(second * 60) <= 60,
        "{}",
        h.max_in_window(second * 60)
    );
}

fn customer_order(slip: &str) -> CustomerOrder {
    CustomerOrder {
        packingslipno: slip.into(),
        consignee: "Aroha Smith".into(),
        address1: "12 Queen Street".into(),
        city: "Auckland".into(),
        postcode: "1010".into(),
        country: "NZ".into(),
        delvref: slip.into(),
        costcentre: Some("Online".into()),
        products: vec![OrderProduct {
            productcode: "TEE-BLK-M".into(),
            description: "Black Tee M".into(),
            units: 2.into(),
            unitvalue: rust_decimal::Decimal::new(2995, 2),
            currency: Some("NZD".into()),
            unitkg: None,
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn gss_publish_upsert_processed_and_delete() {
    let sandbox = GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
    sandbox.set_markup("Online", rust_decimal::Decimal::new(10, 0));
    let client = gss_client(&sandbox, GSS_KEY, unlimited(), fast_retry(3));
    let orders: Vec<CustomerOrder> = (1..=3)
        .map(|i| customer_order(&format!("SO-{i}")))
        .collect();
    let results = client.put_customer_orders(&orders).await.unwrap();
    assert!(results.iter().all(|r| r.result), "{results:?}");
    let sent = &sandbox.harness().records()[0];
    assert!(
        sent.body.contains("\"packingslipno\":\"SO-1\""),
        "{}",
        sent.body
    );

    // Edit while pending: upserted. Ticket one, then it is "already processed".
    let mut edited = customer_order("SO-1");
    edited.delvinstructions = "Side door".into();
    let shipment = sandbox.ticket("SO-2", Ticket::default()).await.unwrap();
    let results = client
        .put_customer_orders(&[edited, customer_order("SO-2")])
        .await
        .unwrap();
    assert!(results[0].result);
    assert_eq!(sandbox.order("SO-1").unwrap().delvinstructions, "Side door");
    assert!(results[1].already_processed(), "{results:?}");

    let deleted = client
        .delete_customer_orders(&["SO-1".into(), "SO-2".into(), "NOPE".into()])
        .await
        .unwrap();
    assert_eq!(deleted["SO-1"], DeleteOutcome::Deleted);
    assert_eq!(deleted["SO-2"], DeleteOutcome::AlreadyProcessed);
    assert_eq!(deleted["NOPE"], DeleteOutcome::InvalidPackingSlip);

    let too_many: Vec<String> = (0..51).map(|i| i.to_string()).collect();
    let calls_before = client.calls().total();
    assert!(client.delete_customer_orders(&too_many).await.is_err());
    assert_eq!(
        client.calls().total(),
        calls_before,
        "refused before sending"
    );

    let states = client
        .get_customer_orders(&["SO-2".into(), "SO-3".into()])
        .await
        .unwrap();
    assert_eq!(states.len(), 2);
    let connote = shipment.consignment_no.clone().unwrap();
    let shipments = client
        .get_shipments(std::slice::from_ref(&connote))
        .await
        .unwrap();
    assert_eq!(shipments.len(), 1);
    let s = &shipments[0];
    assert_eq!(
        s.carrier.as_deref(),
        Some("Post Haste - AKL - 2011"),
        "GoSweetSpot's carrier is a rate-card label"
    );
    assert_eq!(s.cost_centre.as_deref(), Some("Online"));
    assert_eq!(s.total_cost, Some(rust_decimal::Decimal::new(850, 2)));
    assert_eq!(
        s.items[0].charge_marked_up_line_total,
        Some(rust_decimal::Decimal::new(935, 2))
    );
    assert_eq!(client.calls().get(gss_ops::GET_SHIPMENTS), 1);
    let headers_ok = sandbox.harness().records().iter().all(|r| r.status != 401);
    assert!(headers_ok);
}

#[tokio::test]
async fn gss_wrong_key_and_server_errors() {
    let sandbox = GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
    let wrong = "gss-wrong-key-do-not-print";
    let client = gss_client(&sandbox, wrong, unlimited(), fast_retry(3));
    let err = client
        .put_customer_orders(&[customer_order("A")])
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("gss.site_id") && !err.to_string().contains(wrong));

    let client = gss_client(&sandbox, GSS_KEY, unlimited(), fast_retry(3));
    sandbox.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 502,
            retry_after: None,
        },
        5,
    );
    let err = client.get_shipments(&["X".into()]).await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(client.calls().get(gss_ops::GET_SHIPMENTS), 3);
    // An upsert is idempotent, so a 5xx is retried.
    sandbox.harness().clear_faults();
    sandbox.harness().inject(
        Matcher::any(),
        FaultKind::Status {
            status: 500,
            retry_after: None,
        },
        1,
    );
    assert!(
        client
            .put_customer_orders(&[customer_order("A")])
            .await
            .unwrap()[0]
            .result
    );
    assert_eq!(client.calls().get(gss_ops::PUT_ORDERS), 2);
}

#[tokio::test]
async fn urls_stay_under_2000_characters_and_the_sandbox_refuses_longer_as_iis_does() {
    let sandbox = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.unwrap();
    let base = 1_895_719_000;
    for i in 0..250 {
        sandbox.put_order(json!({"id": base + i, "reference": format!("R{i}"), "modifiedDate": "2026-11-20T09:00:00Z"}));
    }
    let client = cin7_client(&sandbox, CIN7_KEY, unlimited(), fast_retry(2));
    // 250 ten-digit ids do not fit one `id IN (…)`: two calls, every order found.
    let ids: Vec<i64> = (0..250).map(|i| base + i).collect();
    let rows = client.orders_by_id(&ids, &["id"]).await.unwrap();
    assert_eq!(rows.len(), 250);
    assert_eq!(client.calls().get(cin7_ops::LIST), 2);
    for r in sandbox.harness().records() {
        assert!(
            r.path.len() + 1 + r.query.len() < 2000 && r.status == 200,
            "{} characters answered {}",
            r.query.len(),
            r.status
        );
    }
    // A query that cannot fit is refused before it is sent.
    let query = ListQuery {
        filter: Where::new().id_in(&ids),
        ..ListQuery::default()
    };
    assert!(!client.url_fits(&query));
    let err = client.list_page(&query).await.unwrap_err();
    assert!(matches!(err, ApiError::InvalidRequest { .. }), "{err}");
    assert_eq!(client.calls().get(cin7_ops::LIST), 2, "not sent");
    // What CIN7's IIS answers past 2,048 characters of query string.
    let raw = format!(
        "{}/v1/SalesOrders?where={}",
        sandbox.base_url(),
        "x".repeat(2049)
    );
    let answer = reqwest::Client::new()
        .get(raw)
        .basic_auth(CIN7_USER, Some(CIN7_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert!(answer.text().await.unwrap().contains("404.15"));
}
