//! A short smoke run: both sandboxes on loopback, the real clients against them.

use anyhow::{Context, ensure};
use chrono::{Duration as Days, TimeZone, Utc};
use sandbox::{Cin7Sandbox, GssSandbox, Ticket};
use secrecy::SecretString;
use serde_json::json;
use shared::cin7::model::{OrderRow, SALES_ORDER_FIELDS, SalesOrderUpdate};
use shared::cin7::query::{Direction, ListQuery, Where};
use shared::cin7::{Cin7Client, Cin7Config};
use shared::gss::model::{CustomerOrder, OrderProduct};
use shared::gss::{GssClient, GssConfig};
use shared::http::RetryPolicy;
use shared::rate_limit::WindowLimiter;
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "smoke";
const KEY: &str = "smoke-cin7-key";
const SITE: &str = "4180";
const GSS_KEY: &str = "smoke-gss-key";

/// Runs the smoke and prints what happened.
pub async fn run() -> anyhow::Result<()> {
    let cin7 = Cin7Sandbox::start(USER, KEY).await?;
    let gss = GssSandbox::start(SITE, GSS_KEY).await?;
    println!("CIN7 sandbox        {}", cin7.base_url());
    println!("GoSweetSpot sandbox {}", gss.base_url());

    let start = Utc
        .with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
        .single()
        .context("date")?;
    for id in 1..=260 {
        cin7.put_order(json!({
            "id": id, "reference": format!("#{}", 1000 + id), "status": "Approved",
            "isApproved": true, "stage": "New",
            "modifiedDate": (start + Days::minutes(id)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "deliveryFirstName": "Aroha", "deliveryLastName": "Smith",
            "deliveryAddress1": "12 Queen Street", "deliveryCity": "Auckland",
            "deliveryPostalCode": "1010", "deliveryCountry": "New Zealand",
            "lineItems": [{"id": id * 10, "code": "TEE-BLK-M", "name": "Black Tee", "qty": 1,
                           "unitPrice": 29.95, "stockControl": "FIFO"}]
        }));
    }
    println!("seeded 260 sales orders in the CIN7 sandbox");

    let cin7_client = Cin7Client::new(Cin7Config {
        base_url: cin7.base_url(),
        username: USER.into(),
        api_key: SecretString::from(KEY),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy::default(),
        limiter: Arc::new(WindowLimiter::cin7()),
    })?;
    let gss_client = GssClient::new(GssConfig {
        base_url: gss.base_url(),
        site_id: SITE.into(),
        access_key: SecretString::from(GSS_KEY),
        support_email: "ops@example.co.nz".into(),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy::default(),
        limiter: Arc::new(WindowLimiter::gss()),
    })?;

    let rows = cin7_client
        .list_all(ListQuery {
            filter: Where::new().modified_since(start),
            order: Some(("modifiedDate", Direction::Asc)),
            fields: SALES_ORDER_FIELDS.to_vec(),
            ..ListQuery::default()
        })
        .await?;
    let parsed = rows
        .iter()
        .filter(|r| matches!(r, OrderRow::Parsed(_)))
        .count();
    println!(
        "listed {} orders ({parsed} parsed) in {} CIN7 calls",
        rows.len(),
        cin7_client.calls().total()
    );
    ensure!(rows.len() == 260, "expected 260 orders");

    let order = gss_client
        .put_customer_orders(&[CustomerOrder {
            packingslipno: "#1001".into(),
            consignee: "Aroha Smith".into(),
            address1: "12 Queen Street".into(),
            city: "Auckland".into(),
            postcode: "1010".into(),
            country: "NZ".into(),
            delvref: "#1001".into(),
            products: vec![OrderProduct {
                productcode: "TEE-BLK-M".into(),
                description: "Black Tee".into(),
                units: 1.into(),
                unitvalue: rust_decimal::Decimal::new(2995, 2),
                currency: Some("NZD".into()),
                unitkg: None,
            }],
            ..CustomerOrder::default()
        }])
        .await?;
    println!("published #1001 to GoSweetSpot: result={}", order[0].result);

    let shipment = gss.ticket("#1001", Ticket::default()).await?;
    let connote = shipment.consignment_no.clone().context("connote")?;
    println!("ticketed #1001 in the GoSweetSpot sandbox: consignment {connote}");
    let shipments = gss_client
        .get_shipments(std::slice::from_ref(&connote))
        .await?;
    let read = shipments.first().context("shipment not found")?;
    println!(
        "read shipment back: carrier {:?}, cost {:?}, tracking {:?}",
        read.carrier, read.total_cost, read.tracking
    );

    let outcomes = cin7_client
        .update_orders(&[SalesOrderUpdate {
            id: 1,
            dispatched_date: read.created_utc,
            stage: Some("Dispatched".into()),
            tracking_code: Some(connote.clone()),
            logistics_carrier: read.carrier.clone(),
            ..SalesOrderUpdate::default()
        }])
        .await?;
    println!("CIN7 PUT for order 1: {:?}", outcomes[0].result);
    let after = cin7_client
        .get_order(1)
        .await?
        .context("order 1 vanished")?;
    println!(
        "CIN7 order 1 now: stage {:?}, trackingCode {:?}, carrier {:?}",
        after.stage, after.tracking_code, after.logistics_carrier
    );
    ensure!(
        after.tracking_code.as_deref() == Some(connote.as_str()),
        "tracking not written"
    );
    println!(
        "calls: CIN7 {:?}, GoSweetSpot {:?}",
        cin7_client.calls().snapshot(),
        gss_client.calls().snapshot()
    );
    println!("smoke run OK");
    Ok(())
}
