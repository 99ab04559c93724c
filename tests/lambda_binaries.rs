//! The three function binaries as Lambda runs them: processes polling a local Runtime API
//! stub, with the environment the template gives them, moto as AWS (`AWS_ENDPOINT_URL`, set by
//! `scripts/with-moto`) and the sandboxes as CIN7 and GoSweetSpot. Drives the whole path:
//! the integration seeded → its pull message handed to order-pull as an SQS event → order
//! published in GoSweetSpot, the next message on the pull queue → ticketed → webhook event →
//! SQS message handed to write-back as an SQS event → CIN7 order dispatched.
//!
//! The binaries are those `make test` builds first (`cargo build --bins`, debug profile; the
//! release binaries are measured by `make bench` and packaged by `make package`).

use chrono::{TimeZone, Utc};
use integration_tests::runtime_stub::{
    FunctionProcess, Outcome, RuntimeStub, pid_namespaces_available, start_function,
    start_function_as_pid_one,
};
use integration_tests::*;
use sandbox::{Cin7Sandbox, GssSandbox, Ticket};
use serde_json::{Value, json};
use shared::queue::JobSource;
use shared::store::prelude::*;
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

/// What the binaries run against: a DynamoDB table and SQS queues on moto, their secrets in
/// Secrets Manager (moto), the sandboxes, and `acme`'s settings saved.
struct AwsWorld {
    sdk: aws_config::SdkConfig,
    table: String,
    queue_url: String,
    pull_queue_url: String,
    cin7: Cin7Sandbox,
    gss: GssSandbox,
    webhook_secret: &'static str,
}

impl AwsWorld {
    async fn new() -> Self {
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
        let pull_dlq_url = shared::queue::sqs::create_queue(&sqs, &unique_name("e2e-pdlq"), None)
            .await
            .unwrap();
        let pull_dlq_arn = shared::queue::sqs::queue_arn(&sqs, &pull_dlq_url)
            .await
            .unwrap();
        let pull_queue_url = shared::queue::sqs::create_queue(
            &sqs,
            &unique_name("e2e-pull"),
            Some((&pull_dlq_arn, 3)),
        )
        .await
        .unwrap();
        let secrets = shared::aws_config::secrets_manager(&sdk, Duration::from_secs(1));
        let prefix = unique_name("cin7-gss");
        let webhook_secret = "e2e-webhook-secret";
        put_sandbox_secrets(&secrets, &prefix, webhook_secret).await;
        let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY).await.unwrap();
        let gss = GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
        let mut settings = sandbox_settings("acme", &cin7, &gss);
        settings.cin7.api_key.0 = format!("{prefix}/cin7");
        settings.gss.access_key.0 = format!("{prefix}/gss");
        settings.webhook.secret.0 = format!("{prefix}/webhook");
        settings.webhook.signature_param = Some("signature".into());
        settings.import.max_age_days = 5000;
        settings.write_back.send_ticket_number = true;
        settings.write_back.freight = shared::settings::FreightMode::Cost;
        settings.write_back.shopify_trigger = Some("800541".into());
        shared::aws_config::dynamo_store(&sdk, &table)
            .put_integration(&settings)
            .await
            .unwrap();
        Self {
            sdk,
            table,
            queue_url,
            pull_queue_url,
            cin7,
            gss,
            webhook_secret,
        }
    }

    fn pull_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TABLE_NAME", self.table.clone()),
            ("WRITE_BACK_QUEUE_URL", self.queue_url.clone()),
            ("PULL_QUEUE_URL", self.pull_queue_url.clone()),
            ("PULL_CONCURRENCY", "10".into()),
            ("PULL_MARGIN_SECONDS", "20".into()),
            ("PULL_SLICE_SECONDS", "60".into()),
            ("PULL_SLICE_PAGES", "20".into()),
            ("PULL_SWEEP_GRACE_SECONDS", "120".into()),
            ("SECRETS_CACHE_SECONDS", "300".into()),
        ]
    }

    fn write_back_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TABLE_NAME", self.table.clone()),
            ("WRITE_BACK_QUEUE_URL", self.queue_url.clone()),
            ("MAX_RECEIVE_COUNT", "5".into()),
            ("SHOPIFY_TRIGGER_URL_TEMPLATE", self.cin7.shopify_template()),
            ("SECRETS_CACHE_SECONDS", "300".into()),
        ]
    }
}

/// An SQS event record of a message, as Lambda's event source mapping hands it over.
fn sqs_record(message_id: &str, receipt: &str, body: &str, receive_count: u32) -> Value {
    json!({
        "messageId": message_id, "receiptHandle": receipt, "body": body,
        "attributes": {"ApproximateReceiveCount": receive_count.to_string()},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-southeast-2:123456789012:write-back", "awsRegion": "ap-southeast-2"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_full_path_through_the_three_binaries() {
    let w = AwsWorld::new().await;
    let (sdk, table, queue_url, cin7, gss, webhook_secret) = (
        &w.sdk,
        &w.table,
        &w.queue_url,
        &w.cin7,
        &w.gss,
        w.webhook_secret,
    );
    cin7.put_order(order(
        1,
        "E2E-1",
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
    ));

    // 1. The integration seeded (as `integrations put` does), its message handed to
    // order-pull as the pull queue's event source would.
    let store = shared::aws_config::dynamo_store(sdk, table);
    let pulls = shared::aws_config::sqs_queue(sdk, &w.pull_queue_url);
    let seeded = shared::schedule::seed(
        shared::schedule::SweepPorts {
            integrations: &store,
            schedules: &store,
            pulls: &pulls,
            clock: &shared::clock::SystemClock,
        },
        "acme",
        shared::schedule::PullKind::Seed,
    )
    .await
    .unwrap();
    let received = pulls.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, seeded.body());
    let stub = RuntimeStub::start().await;
    let _pull = start("order-pull", &stub, &w.pull_env());
    let records: Vec<Value> = received
        .iter()
        .map(|m| sqs_record(&m.message_id, &m.receipt, &m.body, m.receive_count))
        .collect();
    let Outcome::Response(answer) = stub
        .invoke(json!({"Records": records}), Duration::from_secs(60))
        .await
    else {
        panic!("order-pull failed")
    };
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    pulls.ack(&received[0].receipt).await.unwrap();
    assert!(gss.order("E2E-1").is_some());
    // The next pull is scheduled: a delayed message with a new token, the schedule due then.
    let schedule = store.get_schedule("acme").await.unwrap().unwrap();
    assert_ne!(schedule.token, seeded.token);
    assert!(schedule.next_pull_due > Utc::now());
    assert!(
        pulls
            .receive(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "the next message is delayed"
    );
    // The schedule's event runs the sweeper: nothing is overdue.
    let scheduled: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../events/order-pull-scheduled.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let Outcome::Response(answer) = stub.invoke(scheduled, Duration::from_secs(60)).await else {
        panic!("order-pull's sweep failed")
    };
    assert_eq!(answer["sweep"]["reseeded"], json!([]), "{answer}");

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
    let queue = shared::aws_config::sqs_queue(sdk, queue_url);
    let received = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(received.len(), 1);
    let records: Vec<Value> = received
        .iter()
        .map(|m| sqs_record(&m.message_id, &m.receipt, &m.body, m.receive_count))
        .collect();
    let stub = RuntimeStub::start().await;
    let _write_back = start("write-back", &stub, &w.write_back_env());
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

/// Waits until a function has asked its stub for an event (its init is done).
async fn ready(stub: &RuntimeStub) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stub.next_calls() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the function did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two processes of one function whose PIDs are the same — each PID 1 of its own namespace,
/// as the bootstraps of two Lambda execution environments typically are — hold one lease and
/// one claim exclusively: owners were `order-pull-{pid}`, so both would have taken the pull's
/// lease (and both written back one consignment, triggering Shopify twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_lease_and_one_claim_exclude_a_second_container_with_the_same_pid() {
    let namespaces = pid_namespaces_available();
    if !namespaces {
        eprintln!(
            "NOTE: unshare --pid is not available here: the two processes run with different PIDs"
        );
    }
    let start_twice = |name: &str, stubs: &[RuntimeStub; 2], env: &[(&str, String)]| {
        stubs.each_ref().map(|stub| {
            if namespaces {
                start_function_as_pid_one(&binary(name), name, stub, env)
            } else {
                start_function(&binary(name), name, stub, env)
            }
        })
    };
    let w = AwsWorld::new().await;
    for id in 1..=3 {
        w.cin7.put_order(order(
            id,
            &format!("PID-{id}"),
            Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap() + chrono::Duration::minutes(id),
        ));
    }
    // Slow enough that the two overlap: whoever takes the lease or claim holds it for seconds.
    w.cin7.harness().set_latency(Duration::from_millis(1500));

    // The lease: two pulls of one integration at once.
    let stubs = [RuntimeStub::start().await, RuntimeStub::start().await];
    let _pulls = start_twice("order-pull", &stubs, &w.pull_env());
    for stub in &stubs {
        ready(stub).await;
    }
    let sync_now = json!({"integration_id": "acme"});
    let (a, b) = tokio::join!(
        stubs[0].invoke(sync_now.clone(), Duration::from_secs(60)),
        stubs[1].invoke(sync_now.clone(), Duration::from_secs(60))
    );
    let mut outcomes: Vec<String> = [a, b]
        .iter()
        .map(|o| match o {
            Outcome::Response(r) => r["summaries"][0]["outcome"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            other => panic!("order-pull failed: {other:?}"),
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["busy", "completed"],
        "one pull ran, the other found the lease held"
    );
    assert_eq!(w.cin7.harness().count("GET", "/api/v1/SalesOrders"), 1);
    assert_eq!(w.gss.harness().count("PUT", "/api/customerorders"), 1);

    // The claim: one consignment's job delivered to two write-back containers at once.
    let shipment = w.gss.create_ticket("PID-1", Ticket::default()).unwrap();
    let job = shared::jobs::WriteBackJob {
        integration_id: "acme".into(),
        connote: shipment.consignment_no.clone().unwrap(),
        packing_slip: "PID-1".into(),
        cin7_id: 1,
        reference: Some("PID-1".into()),
        tracking_url: shipment.tracking.clone(),
        total_cost: shipment.total_cost,
        created_utc: shipment.created_utc,
        manual_ticket: false,
    };
    let body = job.to_body().unwrap();
    let stubs = [RuntimeStub::start().await, RuntimeStub::start().await];
    let _write_backs = start_twice("write-back", &stubs, &w.write_back_env());
    for stub in &stubs {
        ready(stub).await;
    }
    let (a, b) = tokio::join!(
        stubs[0].invoke(
            json!({"Records": [sqs_record("m-1", "r-1", &body, 1)]}),
            Duration::from_secs(60)
        ),
        stubs[1].invoke(
            json!({"Records": [sqs_record("m-2", "r-2", &body, 1)]}),
            Duration::from_secs(60)
        )
    );
    let mut failures: Vec<usize> = [a, b]
        .iter()
        .map(|o| match o {
            Outcome::Response(r) => r["batchItemFailures"].as_array().map_or(99, Vec::len),
            other => panic!("write-back failed: {other:?}"),
        })
        .collect();
    failures.sort();
    assert_eq!(
        failures,
        [0, 1],
        "one container wrote back, the other found the claim held and left its message for redelivery"
    );
    assert_eq!(w.cin7.harness().count("PUT", "/api/v1/SalesOrders"), 1);
    assert_eq!(
        w.cin7.harness().count("GET", "/shopify/"),
        1,
        "Shopify triggered once"
    );
    assert_eq!(w.cin7.order(1).unwrap()["stage"], "Dispatched");
}
