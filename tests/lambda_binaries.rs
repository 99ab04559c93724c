//! The three function binaries as Lambda runs them: processes polling a local Runtime API
//! stub, with the environment the template gives them, moto as AWS (`AWS_ENDPOINT_URL`, set by
//! `scripts/with-moto`) and the sandboxes as CIN7 and GoSweetSpot. Drives the whole path:
//! schedule event → order published in GoSweetSpot → ticketed → webhook event → SQS message
//! handed to write-back as an SQS event → CIN7 order dispatched.
//!
//! The binaries are those `make test` builds first (`cargo build --bins`, debug profile; the
//! release binaries are measured by `make bench` and packaged by `make package`).

use chrono::{TimeZone, Utc};
use integration_tests::runtime_stub::{FunctionProcess, Outcome, RuntimeStub, start_function};
use integration_tests::*;
use sandbox::{Cin7Sandbox, GssSandbox, Ticket};
use serde_json::{Value, json};
use shared::queue::JobSource;
use shared::secrets::SecretString;
use std::path::PathBuf;
use std::time::Duration;

fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the function binaries first (`cargo build --workspace --bins`; make test does)",
        path.display()
    );
    path
}

fn start(name: &str, stub: &RuntimeStub, env: &[(&str, String)]) -> FunctionProcess {
    start_function(&binary(name), name, stub, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_full_path_through_the_three_binaries() {
    let sdk = shared::aws_config::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique_name("e2e");
    shared::store::dynamodb::create_table(&dynamo, &table)
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq_url = shared::queue::sqs::create_queue(&sqs, &unique_name("e2e-dlq"), None)
        .await
        .unwrap();
    let dlq_arn = shared::queue::sqs::queue_arn(&sqs, &dlq_url).await.unwrap();
    let queue_url =
        shared::queue::sqs::create_queue(&sqs, &unique_name("e2e-q"), Some((&dlq_arn, 5)))
            .await
            .unwrap();
    let secrets = shared::aws_config::secrets_manager(&sdk, Duration::from_secs(1));
    let prefix = unique_name("cin7-gss");
    let webhook_secret = "e2e-webhook-secret";
    for (name, value) in [
        ("cin7", CIN7_KEY),
        ("gss", GSS_KEY),
        ("webhook", webhook_secret),
    ] {
        secrets
            .put(
                &format!("{prefix}/{name}"),
                &SecretString::from(value.to_string()),
            )
            .await
            .unwrap();
    }

    let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.unwrap();
    let gss = GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
    cin7.put_order(order(
        1,
        "E2E-1",
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
    ));
    let store = shared::aws_config::dynamo_store(&sdk, &table);
    let mut settings = sandbox_settings("acme", &cin7, &gss);
    settings.cin7.api_key.0 = format!("{prefix}/cin7");
    settings.gss.access_key.0 = format!("{prefix}/gss");
    settings.webhook.secret.0 = format!("{prefix}/webhook");
    settings.webhook.signature_param = Some("signature".into());
    settings.import.max_age_days = 5000;
    settings.write_back.send_ticket_number = true;
    settings.write_back.freight = shared::settings::FreightMode::Cost;
    settings.write_back.shopify_trigger = Some("800541".into());
    store.put_integration(&settings).await.unwrap();

    // 1. The schedule.
    let stub = RuntimeStub::start().await;
    let _pull = start(
        "order-pull",
        &stub,
        &[
            ("TABLE_NAME", table.clone()),
            ("PULL_CONCURRENCY", "4".into()),
            ("PULL_MARGIN_SECONDS", "20".into()),
            ("SECRETS_CACHE_SECONDS", "300".into()),
        ],
    );
    let scheduled: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../events/order-pull-scheduled.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let Outcome::Response(answer) = stub.invoke(scheduled, Duration::from_secs(60)).await else {
        panic!("order-pull failed")
    };
    assert_eq!(answer["summaries"][0]["published"], 1, "{answer}");
    assert!(gss.order("E2E-1").is_some());

    // 2. Ticketed in GoSweetSpot; the webhook as API Gateway hands it over.
    let shipment = gss.ticket("E2E-1", Ticket::default()).await.unwrap();
    let body = serde_json::to_string(std::slice::from_ref(&shipment)).unwrap();
    let signature = shared::signature::sign(webhook_secret.as_bytes(), body.as_bytes()).unwrap();
    let stub = RuntimeStub::start().await;
    let _hook = start(
        "consignment-webhook",
        &stub,
        &[
            ("TABLE_NAME", table.clone()),
            ("WRITE_BACK_QUEUE_URL", queue_url.clone()),
            ("SECRETS_CACHE_SECONDS", "300".into()),
        ],
    );
    let Outcome::Response(answer) = stub
        .invoke(
            webhook_event("acme", &body, &signature),
            Duration::from_secs(60),
        )
        .await
    else {
        panic!("consignment-webhook failed")
    };
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let bad = stub
        .invoke(
            webhook_event("acme", &body, "AAAA"),
            Duration::from_secs(60),
        )
        .await;
    assert!(
        matches!(bad, Outcome::Response(ref r) if r["statusCode"] == 401),
        "{bad:?}"
    );

    // 3. The queued job, handed to write-back as the event source mapping would.
    let queue = shared::aws_config::sqs_queue(&sdk, &queue_url);
    let received = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(received.len(), 1);
    let records: Vec<Value> = received
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id, "receiptHandle": m.receipt, "body": m.body,
                "attributes": {"ApproximateReceiveCount": m.receive_count.to_string()},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:ap-southeast-2:123456789012:write-back", "awsRegion": "ap-southeast-2"
            })
        })
        .collect();
    let stub = RuntimeStub::start().await;
    let _write_back = start(
        "write-back",
        &stub,
        &[
            ("TABLE_NAME", table.clone()),
            ("MAX_RECEIVE_COUNT", "5".into()),
            ("SHOPIFY_TRIGGER_URL_TEMPLATE", cin7.shopify_template()),
            ("SECRETS_CACHE_SECONDS", "300".into()),
        ],
    );
    let Outcome::Response(answer) = stub
        .invoke(json!({"Records": records}), Duration::from_secs(60))
        .await
    else {
        panic!("write-back failed")
    };
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    for m in &received {
        queue.ack(&m.receipt).await.unwrap();
    }
    let o = cin7.order(1).unwrap();
    assert_eq!(o["stage"], "Dispatched");
    assert_eq!(
        o["trackingCode"],
        shipment.consignment_no.clone().unwrap().as_str()
    );
    assert_eq!(o["freightTotal"], 9.78);
    assert_eq!(
        cin7.harness().count("GET", "/shopify/"),
        1,
        "the Shopify link was called once"
    );
}

#[tokio::test]
async fn a_binary_without_its_configuration_exits_through_init_error() {
    for name in ["order-pull", "write-back", "consignment-webhook"] {
        let stub = RuntimeStub::start().await;
        let mut f = start(name, &stub, &[]);
        let (status, _f) = tokio::task::spawn_blocking(move || (f.0.wait(), f))
            .await
            .unwrap();
        assert!(!status.unwrap().success(), "{name} exits non-zero");
        let errors = stub.init_errors();
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        let message = errors[0].1["errorMessage"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(message.contains("TABLE_NAME"), "{name}: {message}");
        assert_eq!(stub.next_calls(), 0, "{name} never asked for an event");
    }
}
