//! The consignment webhook through the Lambda adapter, with requests built like API Gateway's
//! (HTTP API, payload 2.0) from the fixtures in `events/`: every status code, repeats and
//! events in any order, signatures, the queue down, the OpenAPI description, and no secret in
//! any log line. On a SQLite store and the embedded queue, except the SQS batching test, which
//! runs on DynamoDB and SQS against moto:
//!
//! ```sh
//! scripts/with-moto cargo test -p integration-tests --test webhook
//! ```
//!
//! The fixtures are signed with the test secret `whsec-3c1d5e` ([`support::SECRET`]) for the
//! integration `acme`.

#[path = "webhook_support.rs"]
mod support;

use aws_sdk_sqs::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept};
use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use integration_tests::{GSS_KEY, GSS_SITE, fast_retry, gss_client, unique_name, unlimited};
use serde_json::{Value, json};
use shared::queue::sqs::{self, SqsQueue};
use shared::queue::{JobQueue, JobSource};
use shared::store::prelude::*;
use shared::webhook::{MAX_BODY_BYTES, STATUS_CODES};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

const CREATED_CONNOTES: [&str; 3] = ["SSPOT018667", "SSPOT018668", "SSPOT018669"];

/// A queue whose endpoint nothing listens on.
fn unreachable_sqs() -> SqsQueue {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("ap-southeast-2"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .endpoint_url("http://127.0.0.1:1")
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(config),
        "http://127.0.0.1:1/123456789012/write-back",
    )
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI description, read by hand
// ---------------------------------------------------------------------------------------------

const PATH: &str = "/webhooks/gosweetspot/{integration_id}";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn openapi() -> Value {
    let path = format!(
        "{}/../infra/openapi/consignment-webhook.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("the description")).expect("JSON")
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(
            doc,
            doc.pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {r}")),
        ),
        None => v,
    }
}

/// Every status documented for the path, over all its operations.
fn documented_statuses(doc: &Value) -> BTreeSet<u16> {
    let item = &doc["paths"][PATH];
    METHODS
        .iter()
        .filter_map(|m| item.get(*m))
        .flat_map(|op| op["responses"].as_object().expect("responses").keys())
        .map(|k| k.parse().expect("a numeric status"))
        .collect()
}

/// The documented response of `method` for `status`.
fn documented_response<'a>(doc: &'a Value, method: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][PATH][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} is documented");
    let response = &op["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "{method} documents no {status} response"
    );
    resolve(doc, response)
}

/// Checks a value against a schema: `type` (object, integer, number, string, boolean,
/// array), `required`, `properties`, `additionalProperties` (`false` or a schema for every
/// other value), `minimum`, `enum`.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let object = value
                .as_object()
                .ok_or_else(|| format!("{at}: not an object"))?;
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap_or_default();
                if !object.contains_key(key) {
                    return Err(format!("{at}: {key} is required"));
                }
            }
            for (key, v) in object {
                match schema["properties"].get(key) {
                    Some(property) => conforms(doc, property, v, &format!("{at}.{key}"))?,
                    None if schema["additionalProperties"] == json!(false) => {
                        return Err(format!("{at}: {key} is not documented"));
                    }
                    None if schema["additionalProperties"].is_object() => conforms(
                        doc,
                        &schema["additionalProperties"],
                        v,
                        &format!("{at}.{key}"),
                    )?,
                    None => {}
                }
            }
            Ok(())
        }
        Some("integer") => {
            let n = value
                .as_i64()
                .ok_or_else(|| format!("{at}: not an integer"))?;
            match schema.get("minimum").and_then(Value::as_i64) {
                Some(min) if n < min => Err(format!("{at}: {n} < {min}")),
                _ => Ok(()),
            }
        }
        Some("number") if value.is_number() => Ok(()),
        Some("string") if value.is_string() => Ok(()),
        Some("boolean") if value.is_boolean() => Ok(()),
        Some("array") if value.is_array() => Ok(()),
        Some(other) => Err(format!("{at}: not of type {other}: {value}")),
        None => Ok(()),
    }
}

/// Checks a reply against the description of `method`'s `status` response.
fn assert_documented(doc: &Value, method: &str, reply: &Reply) {
    let response = documented_response(doc, method, reply.status);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {} has a JSON body",
        reply.status
    );
    if method.eq_ignore_ascii_case("HEAD") {
        // No body on HEAD, as HTTP has it: the headers give the length the body would have.
        assert!(reply.raw.is_empty(), "HEAD answered a body");
        let length = reply.content_length.as_deref().unwrap_or("0");
        assert!(length.parse::<usize>().is_ok_and(|n| n > 0), "{length}");
    } else if let Err(e) = conforms(doc, schema, &reply.body, "body") {
        panic!("{method} {} answered {}: {e}", reply.status, reply.body);
    }
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    if let Some(allow) = response["headers"].get("Allow") {
        let allowed = reply.allow.clone().expect("an Allow header");
        conforms(doc, &allow["schema"], &json!(allowed), "Allow").unwrap();
    } else {
        assert_eq!(reply.allow, None);
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_fixtures_are_signed_deliveries_of_published_orders() {
    let w = World::new().await;
    let created = w.call(request(&fixture("webhook-created-3.json"))).await;
    assert_eq!(created.status, 202, "{}", created.body);
    assert_eq!(
        created.body,
        json!({"queued": 3, "ignored": 0, "duplicates": 0})
    );
    let mut jobs = w.drain().await;
    jobs.sort_by(|a, b| a.connote.cmp(&b.connote));
    let connotes: Vec<&str> = jobs.iter().map(|j| j.connote.as_str()).collect();
    assert_eq!(connotes, CREATED_CONNOTES);
    let first = &jobs[0];
    assert_eq!(first.integration_id, "acme");
    assert_eq!(first.packing_slip, "SO-1001");
    assert_eq!(first.cin7_id, 1001);
    assert_eq!(first.reference.as_deref(), Some("SO-1001"));
    assert_eq!(
        first.tracking_url.as_deref(),
        Some("https://gosweetspot.com/track/4180-SSPOT018667")
    );
    assert_eq!(first.total_cost, Some(rust_decimal::Decimal::new(85, 1)));
    assert_eq!(
        first.created_utc.map(|t| t.to_rfc3339()),
        Some("2026-11-27T19:30:00.113+00:00".into())
    );
    assert!(!first.manual_ticket);
    assert_eq!(jobs[2].total_cost, Some(rust_decimal::Decimal::new(407, 2)));

    // The legacy body repeats SSPOT018667 (its signature carries a literal, unencoded '+');
    // the Base64-encoded one repeats the other two.
    let legacy = w.call(request(&fixture("webhook-legacy.json"))).await;
    assert_eq!(
        legacy.body,
        json!({"queued": 0, "ignored": 0, "duplicates": 1})
    );
    assert_eq!(legacy.status, 202);
    let encoded = w.call(request(&fixture("webhook-base64.json"))).await;
    assert_eq!(
        encoded.body,
        json!({"queued": 0, "ignored": 0, "duplicates": 2})
    );
    assert!(w.drain().await.is_empty());

    let bad = w
        .call(request(&fixture("webhook-bad-signature.json")))
        .await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.body, json!({"error": "unauthorised"}));

    // In a fresh world the legacy and Base64 deliveries queue their own consignments.
    let fresh = World::new().await;
    let legacy = fresh.call(request(&fixture("webhook-legacy.json"))).await;
    assert_eq!(legacy.body["queued"], 1);
    let encoded = fresh.call(request(&fixture("webhook-base64.json"))).await;
    assert_eq!(encoded.body["queued"], 2);
    assert_eq!(fresh.drain().await.len(), 3);
    assert_no_secret_logged();
}

#[tokio::test]
async fn every_status_code_from_a_real_request_as_the_openapi_description_says() {
    let w = World::new().await;
    let doc = openapi();
    let mut seen: BTreeSet<u16> = BTreeSet::new();
    let one = |n: usize| body(&[shipment(&format!("E{n}"), "SO-1001", "created")]);
    let mut missing: Vec<Value> = (0..4)
        .map(|i| shipment(&format!("M{i}"), "SO-1001", "created"))
        .collect();
    missing[2]["PackingSlipNo"] = Value::Null;
    let fifty_one = body(&vec![shipment("X", "SO-1001", "created"); 51]);
    let mut too_large = b"[".to_vec();
    too_large.resize(MAX_BODY_BYTES + 1, b' ');
    for base64 in [false, true] {
        let n = usize::from(base64);
        let cases: Vec<(u16, Post, Option<&str>)> = vec![
            (202, Post::signed(one(n)), None),
            (400, Post::signed(b"[{\"ConsignmentNo\":".to_vec()), None),
            (400, Post::signed(b"42".to_vec()), None),
            (400, Post::signed(br#""not json""#.to_vec()), None),
            (
                400,
                Post::signed(fifty_one.clone()),
                Some("51 shipments in one delivery; at most 50 are accepted"),
            ),
            (
                401,
                Post::signed(one(n))
                    .query(&format!("signature={}", pct(&sign(WRONG_SECRET, &one(n))))),
                Some("unauthorised"),
            ),
            (401, Post::signed(one(n)).to("nobody"), Some("unauthorised")),
            (405, Post::signed(one(n)).method("GET"), None),
            (405, Post::signed(one(n)).method("PUT"), None),
            (405, Post::signed(Vec::new()).method("HEAD"), None),
            (413, Post::signed(too_large.clone()), None),
            // The content type is no gate: GoSweetSpot does not document it.
            (
                202,
                Post::signed(one(n)).content_type(Some("text/plain")),
                None,
            ),
            (202, Post::signed(one(n)).content_type(None), None),
            // One shipment without a packing slip is ignored, the others queued.
            (202, Post::signed(body(&missing)), None),
        ];
        for (want, post, message) in cases {
            let post = post.base64(base64);
            let reply = w.call(post.request()).await;
            assert_eq!(
                reply.status, want,
                "{} base64={base64}: {}",
                post.method, reply.body
            );
            assert_documented(&doc, &post.method, &reply);
            if let Some(message) = message {
                assert_eq!(reply.body, json!({ "error": message }));
            }
            seen.insert(reply.status);
        }
    }
    let down: Arc<dyn JobQueue> = Arc::new(unreachable_sqs());
    let post = Post::signed(one(9)).base64(true);
    let reply = w.call_with(down.clone(), post.request()).await;
    assert_eq!(reply.status, 500);
    assert_documented(&doc, "POST", &reply);
    seen.insert(reply.status);

    let implemented: BTreeSet<u16> = STATUS_CODES.into_iter().collect();
    assert_eq!(seen, implemented, "every implemented status was answered");
    assert_eq!(
        documented_statuses(&doc),
        implemented,
        "the description documents exactly the implemented statuses"
    );
    // 405 is documented for every other method, with its Allow header.
    for method in METHODS.iter().filter(|m| !matches!(**m, "post" | "trace")) {
        let response = documented_response(&doc, method, 405);
        assert!(response["headers"]["Allow"].is_object(), "{method}");
    }
    assert_no_secret_logged();
}

#[tokio::test]
async fn repeats_and_events_in_any_order_queue_exactly_one_job_per_consignment() {
    let w = World::new().await;
    for id in 2001..=2006 {
        w.publish("acme", id, &format!("SO-{id}")).await;
    }
    let delivery = |ids: std::ops::RangeInclusive<i64>, event: &str| {
        let shipments: Vec<Value> = ids
            .map(|id| shipment(&format!("C{id}"), &format!("SO-{id}"), event))
            .collect();
        body(&shipments)
    };
    // The same created delivery three times.
    let created = delivery(2001..=2003, "created");
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(w.call(Post::signed(created.clone()).request()).await.body);
    }
    assert_eq!(
        answers,
        vec![
            json!({"queued": 3, "ignored": 0, "duplicates": 0}),
            json!({"queued": 0, "ignored": 0, "duplicates": 3}),
            json!({"queued": 0, "ignored": 0, "duplicates": 3}),
        ]
    );
    // Delivered, picked, then created: the first sighting queues.
    let mut answers = Vec::new();
    for event in ["delivered", "picked", "created"] {
        let post = Post::signed(delivery(2004..=2006, event));
        answers.push(w.call(post.request()).await.body["queued"].clone());
    }
    assert_eq!(answers, vec![json!(3), json!(0), json!(0)]);
    // And a later picked event of the first three.
    let picked = w
        .call(Post::signed(delivery(2001..=2003, "picked")).request())
        .await;
    assert_eq!(picked.body["duplicates"], 3);

    let jobs = w.drain().await;
    let mut per_connote: BTreeMap<String, usize> = BTreeMap::new();
    for job in &jobs {
        *per_connote.entry(job.connote.clone()).or_default() += 1;
    }
    assert_eq!(per_connote.len(), 6);
    assert!(per_connote.values().all(|n| *n == 1), "{per_connote:?}");
    for id in 2001..=2006 {
        assert!(
            w.store
                .consignment_seen("acme", &format!("C{id}"))
                .await
                .unwrap()
        );
    }
    // One consignment twice in one delivery is one job.
    w.publish("acme", 2007, "SO-2007").await;
    let twice = body(&[
        shipment("C2007", "SO-2007", "created"),
        shipment("C2007", "SO-2007", "picked"),
    ]);
    let reply = w.call(Post::signed(twice).request()).await;
    assert_eq!(
        reply.body,
        json!({"queued": 1, "ignored": 0, "duplicates": 1})
    );
    assert_eq!(w.drain().await.len(), 1);
    assert_no_secret_logged();
}

#[tokio::test]
async fn manual_tickets_and_other_orders_are_acknowledged_ignored_and_audited() {
    let w = World::new().await;
    let mut manual = shipment("MAN0001", "Pallet for Hamilton", "created");
    manual["ManualTicket"] = json!(true);
    let other = shipment("OTH0001", "SHOPIFY-77", "created");
    let ours = shipment("SSPOT000901", "SO-1002", "created");
    let delivery = body(&[manual, other, ours]);
    let reply = w.call(Post::signed(delivery.clone()).request()).await;
    assert_eq!(reply.status, 202);
    assert_eq!(
        reply.body,
        json!({"queued": 1, "ignored": 2, "duplicates": 0,
               "ignored_reasons": {"manual_ticket": 1, "not_published_by_us": 1}})
    );
    // Ignored shipments are not sightings: nothing to de-duplicate, nothing recorded on orders.
    assert!(!w.store.consignment_seen("acme", "MAN0001").await.unwrap());
    assert!(!w.store.consignment_seen("acme", "OTH0001").await.unwrap());
    assert_eq!(w.store.list_orders("acme", None).await.unwrap().len(), 3);
    let again = w.call(Post::signed(delivery.clone()).request()).await;
    assert_eq!(
        again.body,
        json!({"queued": 0, "ignored": 2, "duplicates": 1,
               "ignored_reasons": {"manual_ticket": 1, "not_published_by_us": 1}})
    );
    let audits = w.store.list_deliveries("acme").await.unwrap();
    assert_eq!(audits.len(), 2);
    let hash = shared::webhook::accept::body_sha256(&delivery);
    assert!(audits.iter().all(|a| a.body_sha256 == hash
        && a.shipments == 3
        && a.outcome == "accepted"
        && a.ignored == 2
        && a.ignored_reasons
            == BTreeMap::from([
                ("manual_ticket".to_string(), 1),
                ("not_published_by_us".to_string(), 1)
            ])));
    assert_eq!(audits.iter().map(|a| a.queued).collect::<Vec<_>>(), [1, 0]);
    // A signed body that is not a delivery is audited too.
    let invalid = w
        .call(Post::signed(b"[{\"ConsignmentNo\": \"X\"".to_vec()).request())
        .await;
    assert_eq!(invalid.status, 400);
    let audits = w.store.list_deliveries("acme").await.unwrap();
    assert_eq!(audits.len(), 3);
    assert_eq!(audits[2].outcome, "invalid");
    let text = logs().text();
    assert!(text.contains("manual_ticket") && text.contains("not_published_by_us"));
    assert!(
        text.contains("MAN0001"),
        "ignored shipments are logged with their connote"
    );
    assert_no_secret_logged();
}

#[tokio::test]
async fn a_mixed_delivery_like_gosweetspots_own_example_queues_what_it_can() {
    let w = World::new().await;
    let doc = openapi();
    // Manual tickets with an empty packing slip between ours, and things that are not
    // shipments at all: each judged alone, none failing the delivery.
    let mut manual_a = shipment("XYV00010931", "", "delivered");
    manual_a["ManualTicket"] = json!(true);
    let mut manual_b = shipment("XYV00010932", "", "delivered");
    manual_b["ManualTicket"] = json!(true);
    manual_b.as_object_mut().unwrap().remove("PackingSlipNo");
    let mut no_connote = shipment("", "SO-1002", "created");
    no_connote.as_object_mut().unwrap().remove("ConsignmentNo");
    let mut odd_cost = shipment("SSPOT000903", "SO-1003", "created");
    odd_cost["TotalCost"] = json!({"amount": 4});
    let delivery = body(&[
        manual_a,
        shipment("SSPOT000901", "SO-1001", "created"),
        json!("not a shipment"),
        manual_b,
        shipment("SSPOT000902", "SO-1002", "created"),
        no_connote,
        odd_cost,
        json!({"ConsignmentNo": ["X"], "PackingSlipNo": "SO-1001"}),
    ]);
    let reply = w.call(Post::signed(delivery.clone()).request()).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_documented(&doc, "POST", &reply);
    assert_eq!(
        reply.body,
        json!({"queued": 3, "ignored": 5, "duplicates": 0, "ignored_reasons":
            {"malformed_shipment": 2, "no_consignment": 1, "no_packing_slip": 2}})
    );
    let mut jobs = w.drain().await;
    jobs.sort_by(|a, b| a.connote.cmp(&b.connote));
    let queued: Vec<(&str, i64)> = jobs
        .iter()
        .map(|j| (j.connote.as_str(), j.cin7_id))
        .collect();
    assert_eq!(
        queued,
        [
            ("SSPOT000901", 1001),
            ("SSPOT000902", 1002),
            ("SSPOT000903", 1003)
        ]
    );
    assert_eq!(
        jobs[2].total_cost, None,
        "the unreadable cost is left out, not the shipment"
    );
    // The audit says the same, and the consignments are noted on their orders.
    let audit = w
        .store
        .list_deliveries("acme")
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((audit.shipments, audit.queued, audit.ignored), (8, 3, 5));
    assert_eq!(audit.ignored_reasons["no_packing_slip"], 2);
    assert_eq!(audit.outcome, "accepted");
    let record = w.store.get_order("acme", 1001).await.unwrap().unwrap();
    assert_eq!(record.consignments[0].connote, "SSPOT000901");
    assert_eq!(record.reason, "ticketed");
    let text = logs().text();
    assert!(text.contains("no_packing_slip") && text.contains("XYV00010931"));
    // GoSweetSpot's retry of the same post changes nothing.
    let again = w.call(Post::signed(delivery).request()).await;
    assert_eq!(
        (
            again.body["queued"].clone(),
            again.body["duplicates"].clone()
        ),
        (json!(0), json!(3))
    );
    assert!(w.drain().await.is_empty());
    assert_no_secret_logged();
}

#[tokio::test]
async fn the_gss_sandbox_posts_a_mixed_delivery_that_queues_only_our_orders() {
    let w = World::new().await;
    let gss = sandbox::GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
    let client = gss_client(&gss, GSS_KEY, unlimited(), fast_retry(2));
    let listener = Listener::start(&w).await;
    gss.set_webhook(Some(sandbox::WebhookTarget {
        url: listener.url("acme"),
        secret: Some(SECRET.into()),
        signature_param: "signature".into(),
        legacy: false,
    }));
    let orders: Vec<shared::gss::model::CustomerOrder> = ["SO-1001", "SO-1002"]
        .iter()
        .map(|slip| shared::gss::model::CustomerOrder {
            packingslipno: slip.to_string(),
            consignee: "Aroha Smith".into(),
            country: "NZ".into(),
            ..Default::default()
        })
        .collect();
    client.put_customer_orders(&orders).await.unwrap();
    let ours = [
        gss.create_ticket("SO-1001", sandbox::Ticket::default())
            .unwrap(),
        gss.create_ticket("SO-1002", sandbox::Ticket::default())
            .unwrap(),
    ];
    let manual = gss.manual_ticket("Titahi Bay Bowls", sandbox::Ticket::default());
    assert_eq!(manual.packing_slip_no.as_deref(), Some(""));
    let status = gss
        .post_webhook(&[manual, ours[0].clone(), ours[1].clone()])
        .await
        .unwrap();
    assert_eq!(status, Some(202));
    let answer: Value = serde_json::from_str(&gss.deliveries()[0].answer).unwrap();
    assert_eq!(
        answer,
        json!({"queued": 2, "ignored": 1, "duplicates": 0,
               "ignored_reasons": {"no_packing_slip": 1}})
    );
    assert_eq!(w.drain().await.len(), 2);
    assert_no_secret_logged();
}

#[tokio::test]
async fn signature_cases() {
    let w = World::new().await;
    // A delivery whose signature carries '+', '/' and '=' (the nonce varies the consignee).
    let (delivery, signature) = (0..10_000)
        .map(|n| {
            let mut s = shipment("SSPOT018670", "SO-1001", "created");
            s["Consignee"] = json!(format!("AROHA SMITH {n}"));
            let b = body(&[s]);
            let sig = sign(SECRET, &b);
            (b, sig)
        })
        .find(|(_, sig)| sig.contains('+') && sig.contains('/'))
        .expect("such a body");
    assert!(signature.ends_with('='));
    let status = |post: Post| {
        let w = &w;
        async move { w.call(post.request()).await }
    };
    let post = || Post::signed(delivery.clone());
    let refused = json!({"error": "unauthorised"});

    // Correct, percent-encoded (upper and lower case escapes), unencoded, and '+' read as a
    // space by form decoding.
    assert_eq!(status(post()).await.status, 202);
    let lower = pct(&signature)
        .replace("%2B", "%2b")
        .replace("%2F", "%2f")
        .replace("%3D", "%3d");
    assert_eq!(
        status(post().query(&format!("signature={lower}")))
            .await
            .status,
        202
    );
    assert_eq!(
        status(post().query(&format!("signature={signature}")))
            .await
            .status,
        202
    );
    let mut spaced = post();
    spaced.raw_query = None;
    spaced.decoded_query = Some(vec![("signature".into(), signature.replace('+', " "))]);
    assert_eq!(status(spaced).await.status, 202);

    // Wrong secret, truncated, empty, missing, a body changed by one byte.
    let wrong = sign(WRONG_SECRET, &delivery);
    let mut changed = delivery.clone();
    let at = changed.iter().position(|b| *b == b'8').expect("a digit");
    changed[at] = b'9';
    let mut changed_post = Post::signed(changed);
    changed_post.raw_query = post().raw_query;
    let unsigned = || {
        let mut p = post();
        p.raw_query = None;
        p
    };
    for (name, p) in [
        (
            "wrong secret",
            post().query(&format!("signature={}", pct(&wrong))),
        ),
        (
            "truncated",
            post().query(&format!(
                "signature={}",
                pct(&signature[..signature.len() - 2])
            )),
        ),
        (
            "one character short of padding",
            post().query(&format!(
                "signature={}",
                pct(&signature[..signature.len() - 1])
            )),
        ),
        ("empty", post().query("signature=")),
        ("missing", unsigned()),
        ("empty query", post().query("")),
        ("one byte changed", changed_post),
        (
            "two parameters",
            post().query(&format!("{}&x=1", signed_query(&delivery))),
        ),
        (
            "the same name twice",
            post().query(&format!(
                "{}&{}",
                signed_query(&delivery),
                signed_query(&delivery)
            )),
        ),
    ] {
        let reply = status(p).await;
        assert_eq!((name, reply.status), (name, 401));
        assert_eq!(reply.body, refused);
    }

    // Unset signature_param: a correct signature under any single name.
    for name in ["x", "hmac", "Signature", "gss_webhook_signature"] {
        let q = format!("{name}={}", pct(&signature));
        assert_eq!((name, status(post().query(&q)).await.status), (name, 202));
    }

    // signature_param = "sig" (bolt): only that parameter counts.
    let bolt_sig = pct(&sign(BOLT_SECRET, &delivery));
    let bolt = || post().to("bolt");
    assert_eq!(
        status(bolt().query(&format!("sig={bolt_sig}")))
            .await
            .status,
        202
    );
    assert_eq!(
        status(bolt().query(&format!("utm=1&sig={bolt_sig}&x=2")))
            .await
            .status,
        202
    );
    for q in [
        format!("signature={bolt_sig}"),
        format!("Sig={bolt_sig}"),
        format!("sig={bolt_sig}&sig={bolt_sig}"),
        format!("sig={}", pct(&signature)),
    ] {
        let reply = status(bolt().query(&q)).await;
        assert_eq!((q.as_str(), reply.status), (q.as_str(), 401));
    }

    // Unknown, disabled, missing-secret and absent integrations: byte for byte the same 401.
    let bad = status(post().query(&format!("signature={}", pct(&wrong)))).await;
    for id in ["nobody", "carl", "dora", "../acme", ""] {
        let reply = status(post().to(id)).await;
        assert_eq!((id, reply.status), (id, 401));
        assert_eq!(reply.raw, bad.raw, "{id}");
    }
    let mut no_id = post();
    no_id.integration = None;
    no_id.path_parameters = false;
    assert_eq!(status(no_id).await.raw, bad.raw);

    // Without path parameters the id is read from the raw path.
    let mut raw_path_only = post();
    raw_path_only.path_parameters = false;
    assert_eq!(status(raw_path_only).await.status, 202);
    assert_no_secret_logged();
}

#[tokio::test]
async fn refusals_log_the_parameter_names_but_never_their_values() {
    let w = World::new().await;
    let delivery = body(&[shipment("SSPOT018671", "SO-1001", "created")]);
    let value = "value-that-must-not-be-logged-5e1";
    let post = Post::signed(delivery).query(&format!("probe_name_one={value}&probe_name_two=2"));
    assert_eq!(w.call(post.request()).await.status, 401);
    let text = logs().text();
    let line = text
        .lines()
        .find(|l| l.contains("probe_name_one"))
        .expect("the refusal is logged");
    assert!(line.contains("probe_name_two"), "{line}");
    assert!(line.contains("signature_ambiguous"), "{line}");
    assert!(line.contains("webhook delivery refused"), "{line}");
    assert!(!text.contains(value), "a parameter value was logged");
    assert_no_secret_logged();
}

#[tokio::test]
async fn queue_down_answers_500_marks_nothing_and_the_retry_queues_everything() {
    let w = World::new().await;
    let down: Arc<dyn JobQueue> = Arc::new(unreachable_sqs());
    let fixture_request = || request(&fixture("webhook-created-3.json"));
    let reply = w.call_with(down.clone(), fixture_request()).await;
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.body,
        json!({"error": "the delivery could not be queued; please retry"})
    );
    for connote in CREATED_CONNOTES {
        assert!(!w.store.consignment_seen("acme", connote).await.unwrap());
    }
    // GoSweetSpot retries while the queue is still down, then after it is back.
    assert_eq!(
        w.call_with(down.clone(), fixture_request()).await.status,
        500
    );
    assert!(w.drain().await.is_empty());
    let retry = w.call(fixture_request()).await;
    assert_eq!(retry.status, 202);
    assert_eq!(retry.body["queued"], 3);
    assert_eq!(w.drain().await.len(), 3);
    let outcomes: Vec<String> = w
        .store
        .list_deliveries("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, ["queue_failed", "queue_failed", "accepted"]);
    assert_no_secret_logged();
}

#[tokio::test]
async fn the_gss_sandbox_s_bodies_created_picked_delivered_and_legacy() {
    let w = World::new().await;
    let gss = sandbox::GssSandbox::start(GSS_SITE, GSS_KEY).await.unwrap();
    let client = gss_client(&gss, GSS_KEY, unlimited(), fast_retry(2));
    let order = shared::gss::model::CustomerOrder {
        packingslipno: "SO-5001".into(),
        consignee: "Aroha Smith".into(),
        country: "NZ".into(),
        ..Default::default()
    };
    client.put_customer_orders(&[order]).await.unwrap();
    w.publish("acme", 5001, "SO-5001").await;
    // No webhook target: the sandbox returns the shipment, and the body is built as its
    // `post_webhook` builds it.
    let created = gss
        .ticket("SO-5001", sandbox::Ticket::default())
        .await
        .unwrap();
    let picked = gss
        .pick(created.consignment_no.as_deref().unwrap())
        .await
        .unwrap();
    let delivered = gss
        .deliver(created.consignment_no.as_deref().unwrap())
        .await
        .unwrap();
    let as_sandbox = |s: &shared::gss::model::Shipment, legacy: bool| {
        let json = serde_json::to_string(std::slice::from_ref(s)).unwrap();
        if legacy {
            serde_json::to_string(&json).unwrap()
        } else {
            json
        }
    };
    let mut queued = Vec::new();
    for (s, legacy) in [
        (&delivered, true),
        (&created, false),
        (&picked, false),
        (&created, true),
    ] {
        let reply = w.call(Post::signed(as_sandbox(s, legacy)).request()).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        queued.push(reply.body["queued"].as_u64().unwrap());
    }
    assert_eq!(queued, [1, 0, 0, 0]);
    let jobs = w.drain().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].connote, created.consignment_no.clone().unwrap());
    assert_eq!(jobs[0].cin7_id, 5001);
    assert_eq!(jobs[0].total_cost, created.total_cost);
    assert_eq!(jobs[0].tracking_url, created.tracking);
    assert_no_secret_logged();
}

#[tokio::test]
async fn no_secret_in_any_log_line_on_any_path() {
    let w = World::new().await;
    let delivery = body(&[shipment("SSPOT018672", "SO-1003", "created")]);
    let down: Arc<dyn JobQueue> = Arc::new(unreachable_sqs());
    for post in [
        Post::signed(delivery.clone()),
        Post::signed(delivery.clone()).to("dora"),
        Post::signed(delivery.clone()).to("carl"),
        Post::signed(delivery.clone()).to("nobody"),
        Post::signed(delivery.clone()).query(&format!("signature={SECRET}")),
        Post::signed(b"[1]".to_vec()),
        Post::signed(delivery.clone()).method("DELETE"),
        Post::signed(delivery.clone()).content_type(Some("text/xml")),
    ] {
        w.call(post.request()).await;
    }
    let reply = w
        .call_with(
            down.clone(),
            Post::signed(body(&[shipment("SSPOT018673", "SO-1003", "created")])).request(),
        )
        .await;
    assert_eq!(reply.status, 500);
    let text = logs().text();
    assert!(
        text.contains("webhook secret missing"),
        "dora's misconfiguration is logged"
    );
    assert!(text.contains("NO_SUCH_SECRET"), "by its reference");
    assert!(text.contains("SSPOT018672"), "connotes are logged");
    assert_no_secret_logged();
}

/// Counts the `SendMessageBatch` calls a client makes.
#[derive(Debug, Clone, Default)]
struct CountBatches(Arc<AtomicUsize>);

impl Intercept for CountBatches {
    fn name(&self) -> &'static str {
        "CountBatches"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context
            .input()
            .downcast_ref::<SendMessageBatchInput>()
            .is_some()
        {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test]
async fn fifty_shipments_are_fifty_jobs_in_five_batches_of_ten_on_sqs_and_dynamodb() {
    logs();
    let table = integration_tests::dynamo_table().await;
    let store = shared::store::Store::new(table, Arc::new(shared::clock::SystemClock));
    let sdk = shared::aws_config::sdk_config().await;
    let counter = CountBatches::default();
    let client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let url = sqs::create_queue(&client, &unique_name("webhook"), None)
        .await
        .unwrap();
    let queue = SqsQueue::new(client.clone(), url.clone()).with_wait(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let embedded =
        shared::queue::embedded::EmbeddedQueue::open(&dir.path().join("q.sqlite3"), 5).unwrap();
    let w = World::with(store, embedded, dir).await;
    let mut shipments = Vec::new();
    for id in 3001..=3050 {
        w.publish("acme", id, &format!("SO-{id}")).await;
        shipments.push(shipment(&format!("C{id}"), &format!("SO-{id}"), "created"));
    }
    let delivery = body(&shipments);
    let reply = w
        .call_with(
            Arc::new(queue.clone()),
            Post::signed(delivery.clone()).request(),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"queued": 50, "ignored": 0, "duplicates": 0})
    );
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        5,
        "five SendMessageBatch calls"
    );

    let mut received = Vec::new();
    let mut empty = 0;
    while received.len() < 50 && empty < 3 {
        let batch = queue
            .receive(50 - received.len(), Duration::from_secs(300))
            .await
            .unwrap();
        empty += usize::from(batch.is_empty());
        received.extend(batch);
    }
    let connotes: BTreeSet<String> = received
        .iter()
        .map(|m| {
            assert_eq!(m.integration_id, "acme");
            shared::jobs::WriteBackJob::from_body(&m.body)
                .unwrap()
                .connote
        })
        .collect();
    assert_eq!(received.len(), 50);
    assert_eq!(connotes.len(), 50);

    // Again: all duplicates, nothing sent.
    let again = w
        .call_with(Arc::new(queue.clone()), Post::signed(delivery).request())
        .await;
    assert_eq!(again.body["duplicates"], 50);
    assert_eq!(counter.0.load(Ordering::SeqCst), 5);
    sqs::delete_queue(&client, &url).await.unwrap();
    assert_no_secret_logged();
}
