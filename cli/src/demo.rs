//! `cin7-gss demo`: CIN7 and GoSweetSpot sandboxes on loopback, 25 realistic orders, local
//! mode against them, a dispatcher ticketing in the GoSweetSpot sandbox (which posts signed
//! webhooks), and every order's journey shown live and in a final table. Succeeds when every
//! order ends where the seed's rules say it should.

use crate::local::{LocalConfig, LocalRuntime};
use crate::output::table;
use anyhow::Context;
use chrono::{TimeZone, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rust_decimal::Decimal;
use sandbox::{Cin7Sandbox, GssSandbox, Ticket, WebhookTarget};
use secrets::StaticSecrets;
use serde_json::{Value, json};
use shared::rate_limit::Window;
use shared::records::OrderState;
use shared::settings::IntegrationSettings;
use shared::store::prelude::*;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER: &str = "DemoMerchant";
const CIN7_KEY: &str = "demo-cin7-api-key";
const SITE: &str = "4180";
const GSS_KEY: &str = "demo-gss-access-key";
const WEBHOOK_SECRET: &str = "demo-webhook-hmac-secret";

mod secrets {
    use shared::secrets::{SecretError, SecretSource, SecretString};
    use std::collections::HashMap;

    /// The demo's secrets, held in memory (local mode proper reads environment variables).
    pub struct StaticSecrets(pub HashMap<String, String>);

    #[async_trait::async_trait]
    impl SecretSource for StaticSecrets {
        async fn get(&self, reference: &str) -> Result<SecretString, SecretError> {
            self.0
                .get(reference)
                .map(|v| SecretString::from(v.clone()))
                .ok_or_else(|| SecretError::NotFound {
                    reference: reference.to_string(),
                })
        }
    }
}

/// GoSweetSpot's `Carrier` is a rate-card label; CIN7 gets the carrier's name (mapped by the
/// demo's `write_back.carrier_names`).
const RATE_CARD: &str = "Post Haste - AKL - 2011";

/// The orders whose tickets go out in one delivery with a manual ticket.
const MIXED_DELIVERY: [i64; 2] = [1, 2];

/// The order whose webhook GoSweetSpot never sends: the next pull's reconcile brings it.
const WEBHOOK_LOST: i64 = 15;

/// One seeded order and what the seed's rules predict for it.
struct Seed {
    id: i64,
    reference: String,
    /// `None`: published then dispatched; `Some(reason)`: skipped for that reason.
    skipped: Option<&'static str>,
    /// Consignment costs when ticketed (two for a split shipment).
    tickets: Vec<Decimal>,
    incl_tax: bool,
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_default()
}

fn base_order(id: i64, reference: &str, incl: bool) -> Value {
    let modified = Utc
        .with_ymd_and_hms(2026, 11, 26, 9, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::minutes(id);
    json!({
        "id": id, "reference": reference, "status": "Approved", "isApproved": true, "isVoid": false,
        "stage": "New", "branchId": 1, "createdDate": "2026-11-25T20:00:00Z",
        "modifiedDate": modified.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "firstName": "Aroha", "lastName": "Smith", "email": "aroha@example.co.nz",
        "phone": "021 555 0101", "deliveryFirstName": "Aroha", "deliveryLastName": "Smith",
        "deliveryAddress1": format!("{} Queen Street", id), "deliveryAddress2": "Grey Lynn",
        "deliveryCity": "Auckland", "deliveryState": "Auckland", "deliveryPostalCode": "1021",
        "deliveryCountry": "New Zealand", "deliveryInstructions": "Leave at the door",
        "internalComments": format!("Shopify order {}", 5512345600i64 + id),
        "freightTotal": 0, "currencyCode": "NZD",
        "taxStatus": if incl { "Incl" } else { "Excl" }, "taxRate": 15,
        "lineItems": [{"id": id * 10, "code": "TEE-BLK-M", "name": "Black Tee", "option1": "M",
                       "qty": 2, "unitPrice": 29.95, "stockControl": "FIFO"}]
    })
}

fn seeds() -> Vec<(Seed, Value)> {
    let mut out = Vec::new();
    let mut add = |id: i64,
                   reference: &str,
                   skipped: Option<&'static str>,
                   tickets: Vec<Decimal>,
                   incl: bool,
                   edit: &dyn Fn(&mut Value)| {
        let mut order = base_order(id, reference, incl);
        edit(&mut order);
        out.push((
            Seed {
                id,
                reference: reference.to_string(),
                skipped,
                tickets,
                incl_tax: incl,
            },
            order,
        ));
    };
    add(1, "#1001", None, vec![dec("8.50")], true, &|_| {});
    add(2, "#1002", None, vec![dec("12.00")], false, &|_| {});
    add(3, "#1003", None, vec![dec("6.40")], true, &|o| {
        o["stage"] = json!("Processing")
    });
    add(4, "#1004", Some("stage_excluded"), vec![], true, &|o| {
        o["stage"] = json!("On Hold")
    });
    add(5, "#1005", Some("stage_excluded"), vec![], true, &|o| {
        o["stage"] = json!("Awaiting Payment")
    });
    add(6, "#1006", Some("already_dispatched"), vec![], true, &|o| {
        o["dispatchedDate"] = json!("2026-11-25T22:00:00Z");
        o["stage"] = json!("Dispatched");
    });
    add(7, "#1007", Some("void"), vec![], true, &|o| {
        o["isVoid"] = json!(true);
        o["status"] = json!("Void");
    });
    add(8, "#1008", Some("not_approved"), vec![], true, &|o| {
        o["status"] = json!("Draft");
        o["isApproved"] = json!(false);
    });
    add(9, "#1009", Some("batched_items"), vec![], true, &|o| {
        o["lineItems"] = json!([{"id": 91, "code": "HONEY-500", "name": "Manuka honey", "qty": 1,
            "unitPrice": 29.99, "stockControl": "Batch"}]);
    });
    add(10, "#1010", None, vec![dec("7.25")], true, &|o| {
        o["lineItems"] = json!([{"id": 101, "code": "TEE-RED", "name": "Tee", "qty": 3, "unitPrice": 19.99,
            "stockControl": "Batch", "sizes": [{"name": "S", "code": "TEE-RED-S", "quantity": 1},
                                                 {"name": "M", "code": "TEE-RED-M", "quantity": 2}]}]);
    });
    add(
        11,
        "#1011",
        None,
        vec![dec("8.50"), dec("5.00")],
        true,
        &|o| {
            o["lineItems"] = json!([{"id": 111, "code": "DESK", "name": "Standing desk", "qty": 1, "unitPrice": 899, "stockControl": "FIFO"},
                                {"id": 112, "code": "CHAIR", "name": "Chair", "qty": 1, "unitPrice": 399, "stockControl": "FIFO"}]);
        },
    );
    add(
        12,
        "SHOPIFY-NZ-ORDER-#1000012",
        None,
        vec![dec("9.10")],
        false,
        &|_| {},
    );
    add(13, "#1013", None, vec![dec("24.00")], false, &|o| {
        o["deliveryCountry"] = json!("Australia");
        o["deliveryAddress1"] = json!("1 George Street");
        o["deliveryAddress2"] = json!("Level 12");
        o["deliveryCity"] = json!("Sydney");
        o["deliveryState"] = json!("New South Wales");
        o["deliveryPostalCode"] = json!("2000");
    });
    add(14, "#1014", Some("unknown_country"), vec![], true, &|o| {
        o["deliveryCountry"] = json!("Narnia")
    });
    for id in 15..=25 {
        let incl = id % 2 == 1;
        let cost = Decimal::new((5 + id % 7) * 100 + (id * 13) % 100, 2);
        let reference = format!("#10{id}");
        add(id, &reference, None, vec![cost], incl, &|o| {
            if id == 17 {
                o["deliveryCountry"] = json!("Aotearoa");
            }
            if id == 19 {
                o["deliveryFirstName"] = json!("Mātiu");
                o["deliveryLastName"] = json!("Te Whāiti");
            }
        });
    }
    out
}

fn settings(cin7: &Cin7Sandbox, gss: &GssSandbox) -> anyhow::Result<IntegrationSettings> {
    IntegrationSettings::from_json(
        &json!({
            "id": "demo",
            "name": "Demo merchant",
            "cin7": {"api_username": USER, "api_key": "DEMO_CIN7_API_KEY", "base_url": cin7.base_url()},
            "gss": {"site_id": SITE, "access_key": "DEMO_GSS_ACCESS_KEY", "support_email": "ops@demo.example.nz",
                    "base_url": gss.base_url(), "cost_centre": "Online"},
            "webhook": {"secret": "DEMO_WEBHOOK_SECRET", "signature_param": "signature"},
            "import": {"start_from": "2026-11-01T00:00:00Z", "block_batched_items": true},
            "write_back": {"send_ticket_number": true, "freight": "marked_up",
                           "tracking_url_field": "internalComments", "shopify_trigger": "800541",
                           "carrier_names": {"Post Haste": "Post Haste Couriers"}}
        })
        .to_string(),
    )
    .context("demo settings")
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar.set_message(message.to_string());
    bar
}

/// Runs the demo; `Ok(true)` when every order ended as predicted.
pub async fn run(keep_running: bool) -> anyhow::Result<bool> {
    let cin7 = Cin7Sandbox::start(USER, CIN7_KEY).await?;
    // CIN7's real limits, enforced with 429s: the demo shows our pacing never trips them.
    cin7.harness().set_limits(vec![
        Window::new(3, Duration::from_secs(1)),
        Window::new(60, Duration::from_secs(60)),
    ]);
    let gss = GssSandbox::start(SITE, GSS_KEY).await?;
    gss.set_markup("Online", Decimal::from(10));
    let seeds = seeds();
    for (_, order) in &seeds {
        cin7.put_order(order.clone());
    }
    println!(
        "CIN7 sandbox        {}  ({} sales orders)",
        cin7.base_url(),
        seeds.len()
    );
    println!("GoSweetSpot sandbox {}", gss.base_url());

    let dir = tempfile::tempdir()?;
    let config = LocalConfig {
        store: dir.path().join("demo.sqlite3"),
        listen: "127.0.0.1:0".parse()?,
        write_back_retry_seconds: 2,
        claim_hold_seconds: 30,
        shopify_trigger_url_template: cin7.shopify_template(),
        integrations: vec![settings(&cin7, &gss)?],
    };
    let secrets = StaticSecrets(
        [
            ("DEMO_CIN7_API_KEY", CIN7_KEY),
            ("DEMO_GSS_ACCESS_KEY", GSS_KEY),
            ("DEMO_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let runtime = LocalRuntime::start(&config, Arc::new(secrets)).await?;
    println!(
        "local mode          store {}, webhook {}",
        config.store.display(),
        runtime.webhook_url("demo")
    );
    gss.set_webhook(Some(WebhookTarget {
        url: runtime.webhook_url("demo"),
        secret: Some(WEBHOOK_SECRET.into()),
        signature_param: "signature".into(),
        legacy: false,
    }));

    // 1. The first scheduled pull.
    let bar = spinner("pulling sales orders from CIN7 into GoSweetSpot…");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let recorded = runtime.store.list_orders("demo", None).await?.len();
        bar.set_message(format!(
            "pulling: {recorded}/{} orders decided",
            seeds.len()
        ));
        if recorded >= seeds.len() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pull did not finish within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published = runtime
        .store
        .list_orders("demo", Some(OrderState::Published))
        .await?;
    bar.finish_with_message(format!(
        "pulled: {} published to GoSweetSpot, {} skipped",
        published.len(),
        seeds.len() - published.len()
    ));

    // 2. The dispatcher tickets every published order (a split shipment twice). The first two
    // go out with a manual ticket in one delivery, as GoSweetSpot's own example mixes them:
    // the manual ticket (no packing slip) is ignored with its reason, the others queued.
    let bar = ProgressBar::new(seeds.iter().map(|(s, _)| s.tickets.len() as u64).sum());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut mixed = vec![gss.manual_ticket(
        "Titahi Bay Bowling Club",
        Ticket {
            cost: dec("16.34"),
            carrier: RATE_CARD.into(),
        },
    )];
    for (seed, _) in seeds.iter().filter(|(s, _)| s.skipped.is_none()) {
        let record = runtime
            .store
            .get_order("demo", seed.id)
            .await?
            .context("no record")?;
        let slip = record.packing_slip.clone().context("not published")?;
        for cost in &seed.tickets {
            bar.set_message(format!("ticketing {slip} in GoSweetSpot"));
            let ticket = Ticket {
                cost: *cost,
                carrier: RATE_CARD.into(),
            };
            if MIXED_DELIVERY.contains(&seed.id) {
                mixed.push(gss.create_ticket(&slip, ticket)?);
            } else if seed.id == WEBHOOK_LOST {
                gss.create_ticket(&slip, ticket)?;
            } else {
                gss.ticket(&slip, ticket).await?;
            }
            bar.inc(1);
        }
    }
    let manual_connote = mixed[0].consignment_no.clone().unwrap_or_default();
    gss.post_webhook(&mixed).await?;
    let mixed_answer = gss
        .deliveries()
        .into_iter()
        .find(|d| d.body.contains(&manual_connote))
        .map(|d| d.answer)
        .unwrap_or_default();
    let mixed_ok = serde_json::from_str::<Value>(&mixed_answer).is_ok_and(|a| {
        a["queued"] == mixed.len() - 1 && a["ignored_reasons"]["no_packing_slip"] == 1
    });
    bar.finish_with_message("ticketed: GoSweetSpot posted a signed webhook for each consignment");
    println!(
        "mixed delivery      {} manual ticket (PackingSlipNo \"\") and {} of ours in one post → {mixed_answer}",
        1,
        mixed.len() - 1
    );

    // 2b. One webhook never came: the next pull's reconcile finds that consignment.
    let reconciled: usize = runtime.pull_now().await?.iter().map(|s| s.reconciled).sum();
    let lost_ref = seeds
        .iter()
        .find(|(s, _)| s.id == WEBHOOK_LOST)
        .map_or("", |(s, _)| s.reference.as_str());
    println!(
        "webhook lost        {lost_ref}'s ticket was never posted; the next pull's reconcile queued {reconciled} write-back(s)"
    );
    let mixed_ok = mixed_ok && reconciled == 1;

    // 3. The write-backs.
    let bar = spinner("writing back to CIN7…");
    let expected_dispatched = seeds.iter().filter(|(s, _)| s.skipped.is_none()).count();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done = runtime
            .store
            .list_orders("demo", Some(OrderState::Dispatched))
            .await?
            .iter()
            .filter(|r| {
                let want = seeds
                    .iter()
                    .find(|(s, _)| s.id == r.cin7_id)
                    .map_or(0, |(s, _)| s.tickets.len());
                r.consignments.len() == want
                    && r.consignments.iter().all(|c| c.tracking_written)
                    && r.history.iter().any(|t| t.reason == "shopify_triggered")
            })
            .count();
        bar.set_message(format!(
            "written back: {done}/{expected_dispatched} orders dispatched in CIN7"
        ));
        if done >= expected_dispatched {
            break;
        }
        if Instant::now() >= deadline {
            bar.finish_with_message("write-back did not finish within 90 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish();

    // 4. The journeys.
    let mut all_ok = mixed_ok;
    let mut rows = Vec::new();
    for (seed, _) in &seeds {
        let record = runtime.store.get_order("demo", seed.id).await?;
        let order = cin7.order(seed.id).unwrap_or_default();
        let stage = order["stage"].as_str().unwrap_or("").to_string();
        let tracking = order["trackingCode"].as_str().unwrap_or("").to_string();
        let freight = Decimal::from_str(&order["freightTotal"].to_string())
            .map(|d| format!("{d:.2}"))
            .unwrap_or_default();
        // Where GoSweetSpot has the order: an Australian town in suburb and its state's
        // abbreviation in city; a New Zealand suburb from the second address line.
        let published = record
            .as_ref()
            .and_then(|r| r.packing_slip.as_deref())
            .and_then(|slip| gss.order(slip));
        let place = published
            .as_ref()
            .map(|o| format!("{} / {}", o.suburb, o.city))
            .unwrap_or_default();
        let place_ok = match (seed.skipped, seed.id) {
            (Some(_), _) => published.is_none(),
            (None, 13) => place == "Sydney / NSW",
            (None, _) => place == "Grey Lynn / Auckland",
        };
        let (decision, ok) = match (&record, seed.skipped) {
            (Some(r), Some(reason)) => (
                format!("skipped: {}", r.reason),
                r.state == OrderState::Skipped && r.reason == reason,
            ),
            (Some(r), None) => {
                let marked: Decimal = seed
                    .tickets
                    .iter()
                    .map(|c| {
                        (c * Decimal::new(110, 2)).round_dp_with_strategy(
                            2,
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        )
                    })
                    .sum();
                let want = if seed.incl_tax {
                    marked * Decimal::new(115, 2)
                } else {
                    marked
                }
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
                let got = Decimal::from_str(&freight).unwrap_or_default();
                let brought_by = if seed.id == WEBHOOK_LOST {
                    "(by reconcile)"
                } else {
                    "(by webhook)"
                };
                let path_ok = r.history.iter().any(|t| {
                    t.reason == "ticketed"
                        && t.detail.as_deref().is_some_and(|d| d.ends_with(brought_by))
                });
                let ok = path_ok
                    && r.state == OrderState::Dispatched
                    && stage == "Dispatched"
                    && order["logisticsCarrier"] == "Post Haste Couriers"
                    && r.consignments.len() == seed.tickets.len()
                    && got == want;
                (format!("published → {}", r.state), ok)
            }
            (None, _) => ("not seen".into(), false),
        };
        let ok = ok && place_ok;
        all_ok &= ok;
        rows.push(vec![
            seed.reference.clone(),
            decision,
            record
                .as_ref()
                .and_then(|r| r.packing_slip.clone())
                .unwrap_or_default(),
            place,
            record
                .as_ref()
                .map(|r| {
                    r.consignments
                        .iter()
                        .map(|c| c.connote.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            stage,
            tracking,
            if seed.skipped.is_none() {
                freight
            } else {
                String::new()
            },
            if ok { "✓" } else { "✗" }.into(),
        ]);
    }
    println!(
        "{}",
        table(
            &[
                "reference",
                "decision",
                "GSS packing slip",
                "GSS suburb / city",
                "consignment(s)",
                "CIN7 stage",
                "tracking",
                "freight written",
                "as predicted"
            ],
            rows
        )
    );
    let throttled = cin7.harness().throttled();
    println!(
        "CIN7 calls {} (429s: {throttled}, most in any second: {}), GoSweetSpot calls {}, Shopify triggers {}",
        cin7.harness().records().len(),
        cin7.harness().max_in_window(Duration::from_secs(1)),
        gss.harness().records().len(),
        cin7.harness().count("GET", "/shopify/")
    );
    println!(
        "{}",
        if all_ok {
            "demo OK: every order reached the state the rules predict"
        } else {
            "demo FAILED: some orders did not reach their predicted state"
        }
    );
    if keep_running {
        println!(
            "still running — CIN7 {} · GoSweetSpot {} · webhook {} · Ctrl-C to stop",
            cin7.base_url(),
            gss.base_url(),
            runtime.webhook_url("demo")
        );
        tokio::signal::ctrl_c().await?;
    }
    runtime.shutdown().await;
    Ok(all_ok)
}
