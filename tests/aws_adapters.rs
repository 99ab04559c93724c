//! The AWS adapters (DynamoDB table, SQS queue, Secrets Manager source) against a local AWS
//! emulator. Run them under `scripts/with-moto`, which starts moto and sets
//! `AWS_ENDPOINT_URL`:
//!
//! ```sh
//! scripts/with-moto cargo test -p integration-tests --test aws_adapters
//! ```
//!
//! Every test creates its own table, queue or secret and deletes it afterwards, also when the
//! test fails.

use aws_sdk_sqs::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept};
use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use shared::clock::ManualClock;
use shared::queue::sqs::{self, SqsQueue};
use shared::queue::{JobQueue, JobSource, Outgoing};
use shared::secrets::aws::SecretsManagerSource;
use shared::secrets::{ExposeSecret, SecretError, SecretSource, SecretString};
use shared::store::dynamodb::{self, CLAIM_CONDITION, DynamoTable};
use shared::store::table::{COMPLETED, IN_PROGRESS};
use shared::store::{Cond, Item, Table};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Fails the test, saying how to run it, when no emulator is set.
fn require_emulator() {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty()),
        "AWS_ENDPOINT_URL is not set: these tests run against a local AWS emulator; run them \
         with `scripts/with-moto cargo test -p integration-tests --test aws_adapters`"
    );
}

async fn dynamo_client() -> aws_sdk_dynamodb::Client {
    require_emulator();
    aws_sdk_dynamodb::Client::new(&shared::aws_config::sdk_config().await)
}

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    require_emulator();
    aws_sdk_secretsmanager::Client::new(&shared::aws_config::sdk_config().await)
}

/// The secret's value as Secrets Manager holds it, read past every cache.
async fn stored_secret(client: &aws_sdk_secretsmanager::Client, name: &str) -> String {
    let out = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .unwrap();
    out.secret_string().unwrap_or_default().to_string()
}

/// A name no other test (or test run) uses: process id, a counter and the clock's nanoseconds.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

fn now_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(d.as_millis()).expect("milliseconds fit an i64")
}

/// Runs `body` as its own task, then `cleanup`, then re-raises the body's panic if it had one.
async fn guarded<B, C>(body: B, cleanup: C)
where
    B: Future<Output = ()> + Send + 'static,
    C: Future<Output = ()>,
{
    let result = tokio::spawn(body).await;
    cleanup.await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB
// ---------------------------------------------------------------------------------------------

/// Runs `f` with a fresh table, deleted afterwards.
async fn with_table<F, Fut>(f: F)
where
    F: FnOnce(DynamoTable) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let client = dynamo_client().await;
    let name = unique("cin7gss-test");
    dynamodb::create_table(&client, &name)
        .await
        .expect("create the table");
    let table = DynamoTable::new(client.clone(), name.clone());
    guarded(f(table), async {
        dynamodb::delete_table(&client, &name)
            .await
            .expect("delete the table");
    })
    .await;
}

fn item(pk: &str, sk: &str, doc: &str) -> Item {
    Item {
        pk: pk.into(),
        sk: sk.into(),
        doc: doc.into(),
        version: 1,
        ..Item::default()
    }
}

#[test]
fn claim_condition_is_the_powertools_condition_with_the_owner() {
    assert!(CLAIM_CONDITION.contains("attribute_not_exists(pk)"));
    assert!(CLAIM_CONDITION.contains("expires_at < :now_s"));
    assert!(
        CLAIM_CONDITION
            .contains("(#state = :in_progress AND (held_until_ms < :now_ms OR #owner = :owner))")
    );
}

#[tokio::test]
async fn dynamo_create_table_is_idempotent() {
    let client = dynamo_client().await;
    let name = unique("cin7gss-test");
    dynamodb::create_table(&client, &name)
        .await
        .expect("create the table");
    dynamodb::create_table(&client, &name)
        .await
        .expect("create it again");
    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .expect("describe TTL");
    let attribute = ttl
        .time_to_live_description()
        .and_then(|d| d.attribute_name())
        .map(str::to_string);
    dynamodb::delete_table(&client, &name)
        .await
        .expect("delete the table");
    dynamodb::delete_table(&client, &name)
        .await
        .expect("deleting a deleted table is fine");
    assert_eq!(attribute.as_deref(), Some("expires_at"));
}

#[tokio::test]
async fn dynamo_put_get_query_delete_add() {
    with_table(|t| async move {
        let now_s = now_ms() / 1000;
        let full = Item {
            pk: "INT#a".into(),
            sk: "ORDER#000000000042".into(),
            doc: r#"{"id":42}"#.into(),
            state: Some("PUBLISHED".into()),
            owner: Some("pull".into()),
            held_until_ms: Some(now_ms() + 1000),
            expires_at: Some(now_s + 3600),
            version: 7,
        };
        assert!(t.put(full.clone(), Cond::Always, now_s).await.unwrap());
        assert_eq!(
            t.get("INT#a", "ORDER#000000000042", now_s).await.unwrap(),
            Some(full.clone())
        );
        assert_eq!(t.get("INT#a", "ORDER#1", now_s).await.unwrap(), None);
        assert_eq!(
            t.get("INT#b", "ORDER#000000000042", now_s).await.unwrap(),
            None
        );

        let bare = item("INT#a", "CURSOR", "{}");
        assert!(t.put(bare.clone(), Cond::Always, now_s).await.unwrap());
        assert_eq!(
            t.get("INT#a", "CURSOR", now_s).await.unwrap(),
            Some(bare.clone())
        );
        // An unconditional put replaces the whole item.
        let replaced = item("INT#a", "CURSOR", r#"{"at":1}"#);
        assert!(t.put(replaced.clone(), Cond::Always, now_s).await.unwrap());
        assert_eq!(
            t.get("INT#a", "CURSOR", now_s).await.unwrap(),
            Some(replaced)
        );

        let orders = t.query("INT#a", "ORDER#", None, now_s).await.unwrap();
        assert_eq!(orders, vec![full]);
        assert_eq!(t.query("INT#a", "", None, now_s).await.unwrap().len(), 2);

        assert!(t.delete("INT#a", "CURSOR", None).await.unwrap());
        assert_eq!(t.get("INT#a", "CURSOR", now_s).await.unwrap(), None);
        assert!(
            t.delete("INT#a", "CURSOR", None).await.unwrap(),
            "deleting an absent item without an owner succeeds"
        );

        let exp = now_s + 86_400;
        assert_eq!(t.add("INT#a", "CALLS#2025-01-02", 1, exp).await.unwrap(), 1);
        assert_eq!(t.add("INT#a", "CALLS#2025-01-02", 2, exp).await.unwrap(), 3);
        assert_eq!(t.add("INT#a", "CALLS#2025-01-03", 5, exp).await.unwrap(), 5);
        // Adding 0 reads a counter, creating it at zero.
        assert_eq!(t.add("INT#a", "CALLS#2025-01-02", 0, exp).await.unwrap(), 3);
        assert_eq!(t.add("INT#a", "CALLS#2025-01-04", 0, exp).await.unwrap(), 0);
        let counter = t
            .get("INT#a", "CALLS#2025-01-02", now_s)
            .await
            .unwrap()
            .expect("the counter exists");
        assert_eq!(counter.version, 3);
        assert_eq!(counter.doc, "{}");
        assert_eq!(counter.expires_at, Some(exp));
    })
    .await;
}

#[tokio::test]
async fn dynamo_delete_with_an_owner_only_deletes_its_own() {
    with_table(|t| async move {
        let now_s = now_ms() / 1000;
        let lease = Item {
            owner: Some("a".into()),
            ..item("INT#a", "LEASE#pull", "{}")
        };
        assert!(t.put(lease, Cond::Always, now_s).await.unwrap());
        assert!(!t.delete("INT#a", "LEASE#pull", Some("b")).await.unwrap());
        assert!(t.get("INT#a", "LEASE#pull", now_s).await.unwrap().is_some());
        assert!(t.delete("INT#a", "LEASE#pull", Some("a")).await.unwrap());
        assert!(t.get("INT#a", "LEASE#pull", now_s).await.unwrap().is_none());
        assert!(
            !t.delete("INT#a", "LEASE#pull", Some("a")).await.unwrap(),
            "nobody holds an absent item"
        );
    })
    .await;
}

#[tokio::test]
async fn dynamo_absent_and_version_conditions() {
    with_table(|t| async move {
        let now_s = now_ms() / 1000;
        let v1 = item("INTEGRATIONS", "acme", r#"{"v":1}"#);
        assert!(t.put(v1.clone(), Cond::Absent, now_s).await.unwrap());
        assert!(!t.put(v1.clone(), Cond::Absent, now_s).await.unwrap());
        assert!(!t.put(v1.clone(), Cond::Version(0), now_s).await.unwrap());

        let v2 = Item {
            doc: r#"{"v":2}"#.into(),
            version: 2,
            ..v1.clone()
        };
        assert!(t.put(v2.clone(), Cond::Version(1), now_s).await.unwrap());
        assert!(
            !t.put(v2.clone(), Cond::Version(1), now_s).await.unwrap(),
            "a stale version loses"
        );
        assert_eq!(
            t.get("INTEGRATIONS", "acme", now_s).await.unwrap(),
            Some(v2)
        );

        // Version 0 means absent.
        let other = item("INTEGRATIONS", "other", "{}");
        assert!(t.put(other, Cond::Version(0), now_s).await.unwrap());

        // An expired item counts as absent for both conditions.
        let expired = Item {
            expires_at: Some(now_s - 10),
            version: 4,
            ..item("INT#a", "IDEM#k", "{}")
        };
        assert!(t.put(expired, Cond::Always, now_s).await.unwrap());
        assert!(
            !t.put(item("INT#a", "IDEM#k", "{}"), Cond::Version(4), now_s)
                .await
                .unwrap(),
            "an expired item has no live version"
        );
        assert!(
            t.put(item("INT#a", "IDEM#k", "{}"), Cond::Absent, now_s)
                .await
                .unwrap()
        );
        let revived = Item {
            expires_at: Some(now_s - 10),
            ..item("INT#a", "IDEM#j", "{}")
        };
        assert!(t.put(revived, Cond::Always, now_s).await.unwrap());
        assert!(
            t.put(item("INT#a", "IDEM#j", "{}"), Cond::Version(0), now_s)
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn dynamo_claims_follow_the_idempotency_semantics() {
    with_table(|t| async move {
        let now_s = now_ms() / 1000;
        let t0 = now_ms();
        let claim = |owner: &str, held_until_ms: i64, state: &str| Item {
            state: Some(state.into()),
            owner: Some(owner.into()),
            held_until_ms: Some(held_until_ms),
            expires_at: Some(now_s + 3600),
            ..item("INT#a", "IDEM#order-42", "{}")
        };
        let cond = |owner: &str, now_ms: i64| Cond::Claim {
            now_ms,
            owner: owner.into(),
        };

        // Two concurrent claims of an absent key: exactly one wins. (DynamoDB evaluates a
        // condition and writes atomically; scripts/with-moto serves moto one request at a time
        // so that it does too.)
        let (a, b) = tokio::join!(
            t.put(claim("a", t0 + 10_000, IN_PROGRESS), cond("a", t0), now_s),
            t.put(claim("b", t0 + 10_000, IN_PROGRESS), cond("b", t0), now_s),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            a ^ b,
            "exactly one of two claims of an absent key wins (a: {a}, b: {b})"
        );
        let held = t.get("INT#a", "IDEM#order-42", now_s).await.unwrap();
        let winner = held.and_then(|i| i.owner).expect("the claim has an owner");
        assert!(
            (winner == "a" && a) || (winner == "b" && b),
            "the holder {winner} won its claim (a: {a}, b: {b})"
        );
        let winner = winner.as_str();
        let loser = if winner == "a" { "b" } else { "a" };
        assert!(
            !t.put(
                claim(loser, t0 + 10_000, IN_PROGRESS),
                cond(loser, t0),
                now_s
            )
            .await
            .unwrap(),
            "a claim of a held key loses"
        );

        // While the hold lasts, nobody else can claim.
        assert!(
            !t.put(
                claim(loser, t0 + 15_000, IN_PROGRESS),
                cond(loser, t0 + 5_000),
                now_s
            )
            .await
            .unwrap()
        );
        // The holder can renew.
        assert!(
            t.put(
                claim(winner, t0 + 15_000, IN_PROGRESS),
                cond(winner, t0 + 5_000),
                now_s
            )
            .await
            .unwrap()
        );
        // Once the hold has lapsed, another claimant takes it over.
        assert!(
            !t.put(
                claim("c", t0 + 30_000, IN_PROGRESS),
                cond("c", t0 + 14_999),
                now_s
            )
            .await
            .unwrap()
        );
        assert!(
            t.put(
                claim("c", t0 + 30_000, IN_PROGRESS),
                cond("c", t0 + 15_001),
                now_s
            )
            .await
            .unwrap()
        );
        // The holder completes it.
        assert!(
            t.put(
                claim("c", t0 + 30_000, COMPLETED),
                cond("c", t0 + 16_000),
                now_s
            )
            .await
            .unwrap()
        );

        // A completed claim that has not expired is not claimable, however old its hold.
        assert!(
            !t.put(
                claim("d", t0 + 2_000_000, IN_PROGRESS),
                cond("d", t0 + 1_000_000),
                now_s + 1000
            )
            .await
            .unwrap()
        );
        // An expired one is.
        assert!(
            t.put(
                claim("d", t0 + 4_000_000, IN_PROGRESS),
                cond("d", t0 + 3_700_000),
                now_s + 3601
            )
            .await
            .unwrap()
        );
        let now = t.get("INT#a", "IDEM#order-42", now_s).await.unwrap();
        assert_eq!(now.and_then(|i| i.owner).as_deref(), Some("d"));
    })
    .await;
}

#[tokio::test]
async fn dynamo_expired_items_read_as_absent() {
    with_table(|t| async move {
        let now_s = now_ms() / 1000;
        let expiring = Item {
            expires_at: Some(now_s + 60),
            ..item("INT#a", "DELIVERY#1", "{}")
        };
        assert!(t.put(expiring.clone(), Cond::Always, now_s).await.unwrap());
        assert!(
            t.put(item("INT#a", "DELIVERY#2", "{}"), Cond::Always, now_s)
                .await
                .unwrap()
        );

        // Live until (and at) its expiry second.
        assert_eq!(
            t.get("INT#a", "DELIVERY#1", now_s + 60).await.unwrap(),
            Some(expiring)
        );
        assert_eq!(
            t.get("INT#a", "DELIVERY#1", now_s + 61).await.unwrap(),
            None
        );
        let live = t
            .query("INT#a", "DELIVERY#", None, now_s + 61)
            .await
            .unwrap();
        let keys: Vec<_> = live.iter().map(|i| i.sk.as_str()).collect();
        assert_eq!(
            keys,
            ["DELIVERY#2"],
            "an item without expires_at never expires"
        );
        assert_eq!(
            t.query("INT#a", "DELIVERY#", None, now_s)
                .await
                .unwrap()
                .len(),
            2
        );
    })
    .await;
}

#[tokio::test]
async fn dynamo_query_filters_by_state_in_sort_key_order() {
    with_table(|t| async move {
        let now_s = now_ms() / 1000;
        // 30 orders written out of order, alternating states, beside other kinds of items.
        let mut ids: Vec<u64> = (1..=30).map(|i| i * 7919 % 1_000_003).collect();
        ids.reverse();
        for (n, id) in ids.iter().enumerate() {
            let state = if n % 2 == 0 { "PENDING" } else { "PUBLISHED" };
            let order = Item {
                state: Some(state.into()),
                ..item(
                    "INT#a",
                    &format!("ORDER#{id:012}"),
                    &format!(r#"{{"id":{id}}}"#),
                )
            };
            assert!(t.put(order, Cond::Always, now_s).await.unwrap());
        }
        for other in ["SLIP#PS-1", "CURSOR", "ORDEX"] {
            let it = Item {
                state: Some("PENDING".into()),
                ..item("INT#a", other, "{}")
            };
            assert!(t.put(it, Cond::Always, now_s).await.unwrap());
        }
        let elsewhere = Item {
            state: Some("PENDING".into()),
            ..item("INT#b", "ORDER#000000000001", "{}")
        };
        assert!(t.put(elsewhere, Cond::Always, now_s).await.unwrap());

        let all = t.query("INT#a", "ORDER#", None, now_s).await.unwrap();
        let mut expected: Vec<String> = ids.iter().map(|id| format!("ORDER#{id:012}")).collect();
        expected.sort();
        let got: Vec<String> = all.iter().map(|i| i.sk.clone()).collect();
        assert_eq!(got, expected);

        let pending = t
            .query("INT#a", "ORDER#", Some("PENDING"), now_s)
            .await
            .unwrap();
        assert_eq!(pending.len(), 15);
        assert!(
            pending
                .iter()
                .all(|i| i.state.as_deref() == Some("PENDING") && i.sk.starts_with("ORDER#"))
        );
        assert!(pending.windows(2).all(|w| w[0].sk < w[1].sk));
        let published = t
            .query("INT#a", "ORDER#", Some("PUBLISHED"), now_s)
            .await
            .unwrap();
        assert_eq!(published.len(), 15);
        assert!(
            t.query("INT#a", "ORDER#", Some("NONE"), now_s)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// SQS
// ---------------------------------------------------------------------------------------------

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

async fn sqs_client(counter: Option<CountBatches>) -> aws_sdk_sqs::Client {
    require_emulator();
    let sdk = shared::aws_config::sdk_config().await;
    let mut config = aws_sdk_sqs::config::Builder::from(&sdk);
    if let Some(counter) = counter {
        config = config.interceptor(counter);
    }
    aws_sdk_sqs::Client::from_conf(config.build())
}

/// Runs `f` with fresh queues (`names.len()` of them, URLs in order), deleted afterwards. A
/// queue is created with the dead-letter queue `(index of an earlier queue, max receives)`.
async fn with_queues<F, Fut>(client: aws_sdk_sqs::Client, specs: &[Option<(usize, u32)>], f: F)
where
    F: FnOnce(Vec<String>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut urls: Vec<String> = Vec::new();
    for spec in specs {
        let dlq = match spec {
            Some((index, max)) => {
                let arn = sqs::queue_arn(&client, &urls[*index])
                    .await
                    .expect("the dead-letter queue's ARN");
                Some((arn, *max))
            }
            None => None,
        };
        let url = sqs::create_queue(
            &client,
            &unique("cin7gss-test"),
            dlq.as_ref().map(|(arn, max)| (arn.as_str(), *max)),
        )
        .await
        .expect("create a queue");
        urls.push(url);
    }
    let cleanup_urls = urls.clone();
    guarded(f(urls), async {
        for url in &cleanup_urls {
            sqs::delete_queue(&client, url)
                .await
                .expect("delete a queue");
        }
    })
    .await;
}

/// Receives until `want` messages came or `tries` receives came back empty.
async fn receive_all(
    q: &SqsQueue,
    want: usize,
    visibility: Duration,
) -> Vec<shared::queue::Received> {
    let mut got = Vec::new();
    let mut empty = 0;
    while got.len() < want && empty < 3 {
        let batch = q.receive(want - got.len(), visibility).await.unwrap();
        if batch.is_empty() {
            empty += 1;
        }
        got.extend(batch);
    }
    got
}

#[tokio::test]
async fn sqs_sends_in_batches_of_ten_and_each_message_arrives_once() {
    let counter = CountBatches::default();
    let client = sqs_client(Some(counter.clone())).await;
    let c = client.clone();
    with_queues(client, &[None], move |urls| async move {
        let q = SqsQueue::new(c, urls[0].clone());
        let messages: Vec<Outgoing> = (0..25)
            .map(|i| Outgoing {
                integration_id: format!("int-{}", i % 3),
                body: format!(r#"{{"n":{i}}}"#),
                ..Outgoing::default()
            })
            .collect();
        q.send(&messages).await.unwrap();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            3,
            "25 messages take 3 batches"
        );

        let got = receive_all(&q, 25, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 25);
        let mut by_body: HashMap<String, String> = HashMap::new();
        for m in &got {
            assert_eq!(m.receive_count, 1);
            assert!(
                by_body
                    .insert(m.body.clone(), m.integration_id.clone())
                    .is_none(),
                "{} arrived twice",
                m.body
            );
            q.ack(&m.receipt).await.unwrap();
        }
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(
                by_body.get(&m.body),
                Some(&m.integration_id),
                "message {i} arrives with its integration_id"
            );
        }
        let q = q.with_wait(Duration::ZERO);
        assert!(
            q.receive(10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty()
        );

        // Nothing to send is no call.
        q.send(&[]).await.unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 3);
    })
    .await;
}

#[tokio::test]
async fn sqs_delays_a_message_and_groups_it_by_integration() {
    let client = sqs_client(None).await;
    let c = client.clone();
    with_queues(client, &[None], move |urls| async move {
        let q = SqsQueue::new(c.clone(), urls[0].clone()).with_wait(Duration::ZERO);
        q.send(&[
            Outgoing {
                integration_id: "acme".into(),
                body: "later".into(),
                delay: Duration::from_secs(900),
            },
            Outgoing {
                integration_id: "bolt".into(),
                body: "now".into(),
                ..Outgoing::default()
            },
        ])
        .await
        .unwrap();
        let got = c
            .receive_message()
            .queue_url(&urls[0])
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
            )
            .send()
            .await
            .unwrap();
        let messages = got.messages();
        assert_eq!(messages.len(), 1, "the delayed message is not visible yet");
        assert_eq!(messages[0].body(), Some("now"));
        let group = messages[0]
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
            .map(String::as_str);
        assert_eq!(group, Some("bolt"), "grouped by integration");
    })
    .await;
}

#[tokio::test]
async fn sqs_an_unacknowledged_message_reappears_after_its_visibility_timeout() {
    let client = sqs_client(None).await;
    let c = client.clone();
    with_queues(client, &[None], move |urls| async move {
        let q = SqsQueue::new(c.clone(), urls[0].clone()).with_wait(Duration::ZERO);
        let job = Outgoing {
            integration_id: "acme".into(),
            body: r#"{"job":"writeback"}"#.into(),
            ..Outgoing::default()
        };
        q.send(std::slice::from_ref(&job)).await.unwrap();

        let first = q.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].receive_count, 1);
        assert_eq!(first[0].integration_id, "acme");
        assert!(
            q.receive(10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty(),
            "hidden while its visibility timeout runs"
        );

        // The visibility timeout ends (SQS's clock, not ours: ended at once, not waited for).
        c.change_message_visibility()
            .queue_url(&urls[0])
            .receipt_handle(&first[0].receipt)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        // Received with no visibility timeout: were it not deleted, it would be back at once.
        let again = q.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].message_id, first[0].message_id);
        assert_eq!(again[0].body, job.body);
        assert_eq!(again[0].receive_count, 2);

        q.ack(&again[0].receipt).await.unwrap();
        assert!(
            q.receive(10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty(),
            "an acknowledged message is gone"
        );
    })
    .await;
}

#[tokio::test]
async fn sqs_a_message_received_too_often_moves_to_the_dead_letter_queue() {
    let client = sqs_client(None).await;
    let c = client.clone();
    // Queue 0 is the dead-letter queue of queue 1, after 2 receives.
    with_queues(client, &[None, Some((0, 2))], move |urls| async move {
        let dlq = SqsQueue::new(c.clone(), urls[0].clone()).with_wait(Duration::ZERO);
        let q = SqsQueue::new(c, urls[1].clone()).with_wait(Duration::ZERO);
        let job = Outgoing {
            integration_id: "acme".into(),
            body: r#"{"job":"poison"}"#.into(),
            ..Outgoing::default()
        };
        q.send(std::slice::from_ref(&job)).await.unwrap();

        // Received with no visibility timeout, it is back at once each time.
        for expected_count in 1..=2 {
            let got = q.receive(10, Duration::ZERO).await.unwrap();
            assert_eq!(got.len(), 1, "receive {expected_count}");
            assert_eq!(got[0].receive_count, expected_count);
        }
        assert!(
            q.receive(10, Duration::from_secs(1))
                .await
                .unwrap()
                .is_empty(),
            "after 2 receives the message leaves the queue"
        );

        let dead = dlq.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, job.body);
        assert_eq!(dead[0].integration_id, "acme");
        dlq.ack(&dead[0].receipt).await.unwrap();
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager
// ---------------------------------------------------------------------------------------------

/// Runs `f` with a fresh secret name (nothing stored under it yet), deleting the secret, and
/// those named `<name>-other` and `<name>-binary`, afterwards.
async fn with_secret_name<F, Fut>(f: F)
where
    F: FnOnce(aws_sdk_secretsmanager::Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let client = secrets_client().await;
    let name = unique("cin7gss/test");
    guarded(f(client.clone(), name.clone()), async {
        for id in [
            name.clone(),
            format!("{name}-other"),
            format!("{name}-binary"),
        ] {
            // The secret may never have been created.
            let _ = client
                .delete_secret()
                .secret_id(&id)
                .force_delete_without_recovery(true)
                .send()
                .await;
        }
    })
    .await;
}

#[tokio::test]
async fn secrets_are_fetched_once_per_reference_per_ttl() {
    with_secret_name(|client, name| async move {
        let writer = SecretsManagerSource::new(client.clone(), Duration::from_secs(300));
        let value = SecretString::from("gss-key-0f9e8d");
        writer.put(&name, &value).await.unwrap();
        // The writer's cache holds what it wrote.
        assert_eq!(
            writer.get(&name).await.unwrap().expose_secret(),
            "gss-key-0f9e8d"
        );
        assert_eq!(writer.fetches(), 0);

        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let reader =
            SecretsManagerSource::new(client, Duration::from_secs(300)).with_clock(clock.clone());
        for _ in 0..2 {
            let got = reader.get(&name).await.unwrap();
            assert_eq!(got.expose_secret(), "gss-key-0f9e8d");
        }
        assert_eq!(reader.fetches(), 1, "one fetch within the TTL");

        clock.advance(chrono::Duration::seconds(299));
        reader.get(&name).await.unwrap();
        assert_eq!(reader.fetches(), 1, "still within the TTL");
        clock.advance(chrono::Duration::seconds(2));
        assert_eq!(
            reader.get(&name).await.unwrap().expose_secret(),
            "gss-key-0f9e8d"
        );
        assert_eq!(reader.fetches(), 2, "fetched again after the TTL");

        // Concurrent gets of a cold reference share one fetch.
        clock.advance(chrono::Duration::seconds(301));
        let (a, b, c) = tokio::join!(reader.get(&name), reader.get(&name), reader.get(&name));
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(reader.fetches(), 3);
    })
    .await;
}

#[tokio::test]
async fn secrets_put_updates_an_existing_secret() {
    with_secret_name(|client, name| async move {
        let source = SecretsManagerSource::new(client.clone(), Duration::from_secs(300));
        source
            .put(&name, &SecretString::from("first-value"))
            .await
            .unwrap();
        source
            .put(&name, &SecretString::from("second-value"))
            .await
            .unwrap();
        assert_eq!(
            source.get(&name).await.unwrap().expose_secret(),
            "second-value"
        );
        let fresh = SecretsManagerSource::new(client, Duration::from_secs(300));
        assert_eq!(
            fresh.get(&name).await.unwrap().expose_secret(),
            "second-value"
        );
        assert_eq!(fresh.fetches(), 1);
    })
    .await;
}

#[tokio::test]
async fn secrets_missing_and_empty_are_typed_and_name_only_the_reference() {
    with_secret_name(|client, name| async move {
        let source = SecretsManagerSource::new(client.clone(), Duration::from_secs(300));
        // A value in the cache, which no message may show.
        let cached = format!("{name}-other");
        let value = "cin7-key-do-not-print-91c3";
        source
            .put(&cached, &SecretString::from(value))
            .await
            .unwrap();

        let missing = source.get(&name).await;
        let err = missing.expect_err("a missing secret is an error");
        assert!(
            matches!(&err, SecretError::NotFound { reference } if reference == &name),
            "{err:?}"
        );
        assert!(!err.is_transient());
        let message = err.to_string();
        assert!(message.contains(&name), "{message}");
        assert!(!message.contains(value), "{message}");
        assert!(!format!("{err:?}").contains(value));

        let debug = format!("{source:?}");
        assert!(!debug.contains(value), "{debug}");
        assert!(debug.contains("SecretsManagerSource"), "{debug}");

        // A secret with no string value (binary only) is empty.
        let binary = format!("{name}-binary");
        client
            .create_secret()
            .name(&binary)
            .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![1, 2, 3]))
            .send()
            .await
            .unwrap();
        let empty = source.get(&binary).await;
        assert!(
            matches!(&empty, Err(SecretError::Empty { reference }) if reference == &binary),
            "{empty:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Declared IAM actions
// ---------------------------------------------------------------------------------------------

/// Records the name of every operation a client sends (from the SDK's operation metadata).
#[derive(Debug, Clone, Default)]
struct Operations(Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

impl Operations {
    /// The recorded operations as IAM actions of `service`, and forgets them. A batch
    /// operation is authorised as its single form (`SendMessageBatch` as `sqs:SendMessage`).
    fn take_actions(&self, service: &str) -> std::collections::BTreeSet<String> {
        let mut ops = self.0.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *ops)
            .into_iter()
            .map(|op| format!("{service}:{}", op.strip_suffix("Batch").unwrap_or(&op)))
            .collect()
    }
}

impl Intercept for Operations {
    fn name(&self) -> &'static str {
        "Operations"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_sqs::config::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(m.name().to_string());
        }
        Ok(())
    }
}

fn actions(list: &[&str]) -> std::collections::BTreeSet<String> {
    list.iter().map(|a| a.to_string()).collect()
}

#[tokio::test]
async fn each_table_operation_calls_the_actions_dynamodb_table_declares() {
    require_emulator();
    let sdk = shared::aws_config::sdk_config().await;
    let ops = Operations::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(ops.clone())
            .build(),
    );
    let name = unique("cin7gss-test");
    dynamodb::create_table(&client, &name)
        .await
        .expect("create the table");
    let cleanup = client.clone();
    let table_name = name.clone();
    guarded(
        async move {
            let table = DynamoTable::new(client, name);
            ops.take_actions("dynamodb");
            for op in shared::store::TableOp::ALL {
                match op {
                    shared::store::TableOp::Get => {
                        table.get("p", "s", 0).await.unwrap();
                    }
                    shared::store::TableOp::Put => {
                        table
                            .put(item("p", "s", "{}"), Cond::Always, 0)
                            .await
                            .unwrap();
                    }
                    shared::store::TableOp::Delete => {
                        table.delete("p", "s", Some("owner")).await.unwrap();
                    }
                    shared::store::TableOp::Query => {
                        table.query("p", "", None, 0).await.unwrap();
                    }
                    shared::store::TableOp::Add => {
                        table.add("p", "n", 1, i64::MAX).await.unwrap();
                    }
                }
                assert_eq!(
                    ops.take_actions("dynamodb"),
                    actions(DynamoTable::iam_actions(op)),
                    "{op:?}"
                );
            }
        },
        async move {
            dynamodb::delete_table(&cleanup, &table_name)
                .await
                .expect("delete the table");
        },
    )
    .await;
}

#[tokio::test]
async fn a_queue_send_and_a_secret_fetch_call_the_actions_their_adapters_declare() {
    require_emulator();
    let sdk = shared::aws_config::sdk_config().await;
    let sqs_ops = Operations::default();
    let sqs_client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(sqs_ops.clone())
            .build(),
    );
    with_queues(sqs_client.clone(), &[None], |urls| async move {
        let queue = SqsQueue::new(sqs_client, urls[0].clone());
        sqs_ops.take_actions("sqs");
        let messages: Vec<Outgoing> = (0..12)
            .map(|i| Outgoing {
                integration_id: "acme".into(),
                body: format!("{{\"n\":{i}}}"),
                ..Outgoing::default()
            })
            .collect();
        queue.send(&messages).await.unwrap();
        assert_eq!(
            sqs_ops.take_actions("sqs"),
            actions(&[SqsQueue::SEND_ACTION])
        );
    })
    .await;
    let secret_ops = Operations::default();
    let secrets_client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .interceptor(secret_ops.clone())
            .build(),
    );
    with_secret_name(|client, name| async move {
        SecretsManagerSource::new(client, Duration::from_secs(300))
            .put(&name, &SecretString::from("k".to_string()))
            .await
            .unwrap();
        let reader = SecretsManagerSource::new(secrets_client, Duration::from_secs(300));
        secret_ops.take_actions("secretsmanager");
        reader.get(&name).await.unwrap();
        assert_eq!(
            secret_ops.take_actions("secretsmanager"),
            actions(&[SecretsManagerSource::IAM_ACTION])
        );
    })
    .await;
}

#[tokio::test]
async fn one_secret_holds_an_integrations_keys_as_json() {
    with_secret_name(|client, name| async move {
        let writer = SecretsManagerSource::new(client.clone(), Duration::from_secs(300));
        // `secrets set` of two keys into one secret: the second keeps the first.
        for (key, value) in [("cin7_api_key", "cin7-7d1e"), ("gss_access_key", "gss-0b2c")] {
            writer
                .put(&format!("{name}#{key}"), &SecretString::from(value))
                .await
                .unwrap();
        }
        let object: serde_json::Value =
            serde_json::from_str(&stored_secret(&client, &name).await).unwrap();
        assert_eq!(
            object,
            serde_json::json!({"cin7_api_key": "cin7-7d1e", "gss_access_key": "gss-0b2c"})
        );

        let reader = SecretsManagerSource::new(client.clone(), Duration::from_secs(300));
        let cin7 = reader.get(&format!("{name}#cin7_api_key")).await.unwrap();
        let gss = reader.get(&format!("{name}#gss_access_key")).await.unwrap();
        assert_eq!(
            (cin7.expose_secret(), gss.expose_secret()),
            ("cin7-7d1e", "gss-0b2c")
        );
        assert_eq!(reader.fetches(), 1, "one GetSecretValue for both keys");
        let missing = reader.get(&format!("{name}#webhook_secret")).await;
        assert!(
            matches!(&missing, Err(SecretError::NoKey { reference, .. }) if reference.ends_with("#webhook_secret")),
            "{missing:?}"
        );
        // The whole-value form still reads the secret as it is.
        assert!(
            reader
                .get(&name)
                .await
                .unwrap()
                .expose_secret()
                .contains("cin7_api_key")
        );
        // A plain secret read by key is a clear error naming the reference, not the value.
        let plain = format!("{name}-other");
        writer
            .put(&plain, &SecretString::from("not-json-3f"))
            .await
            .unwrap();
        let err = reader
            .get(&format!("{plain}#cin7_api_key"))
            .await
            .expect_err("not JSON");
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        assert!(!err.to_string().contains("not-json-3f"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_setting_keys_of_one_shared_secret_at_once_lose_none() {
    with_secret_name(|client, name| async move {
        let dir = tempfile::tempdir().unwrap();
        let table =
            shared::store::sqlite::SqliteTable::open(&dir.path().join("s.sqlite3")).unwrap();
        let store = Arc::new(shared::store::Store::new(
            Arc::new(table),
            Arc::new(shared::clock::SystemClock),
        ));
        SecretsManagerSource::new(client.clone(), Duration::from_secs(300))
            .with_writers(store.clone(), "first")
            .put(&format!("{name}#existing"), &SecretString::from("kept"))
            .await
            .unwrap();
        // Twelve `secrets set` at once, each a merchant's key in one shard secret: each reads
        // the JSON object, sets its key and writes it back under the store's lease. Six are
        // separate operators; six share one source (one process, one owner name), whose
        // writes must take turns as well.
        let shared_writer = Arc::new(
            SecretsManagerSource::new(client.clone(), Duration::from_secs(300))
                .with_writers(store.clone(), "operator-shared"),
        );
        let writers = (0..12).map(|i| {
            let writer = if i % 2 == 0 {
                shared_writer.clone()
            } else {
                Arc::new(
                    SecretsManagerSource::new(client.clone(), Duration::from_secs(300))
                        .with_writers(store.clone(), &format!("operator-{i}")),
                )
            };
            let reference = format!("{name}#merchant-{i:02}/cin7_api_key");
            async move {
                writer
                    .put(&reference, &SecretString::from(format!("key-{i}")))
                    .await
            }
        });
        for written in futures::future::join_all(writers).await {
            written.unwrap();
        }
        let stored = stored_secret(&client, &name).await;
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&stored).unwrap();
        let mut expected: serde_json::Map<String, serde_json::Value> = (0..12)
            .map(|i| {
                (
                    format!("merchant-{i:02}/cin7_api_key"),
                    format!("key-{i}").into(),
                )
            })
            .collect();
        expected.insert("existing".into(), "kept".into());
        assert_eq!(object, expected, "every writer's key is kept");
        // A key that would take the secret past Secrets Manager's 64 KB is refused, naming
        // the secret, and nothing is written.
        let huge = SecretString::from("x".repeat(shared::secrets::aws::MAX_SECRET_BYTES));
        let refused = SecretsManagerSource::new(client.clone(), Duration::from_secs(300))
            .with_writers(store.clone(), "late")
            .put(&format!("{name}#merchant-99/cin7_api_key"), &huge)
            .await;
        assert!(
            matches!(&refused, Err(SecretError::TooLarge { reference, .. }) if *reference == name),
            "{refused:?}"
        );
        assert_eq!(stored_secret(&client, &name).await, stored);
        // The lease was given back: the next writer takes it at once.
        assert!(
            shared::store::Leases::acquire_secret_lease(
                store.as_ref(),
                &name,
                "next",
                Duration::from_secs(5)
            )
            .await
            .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn a_rotated_cin7_key_is_used_after_a_401_without_restarting() {
    with_secret_name(|client, name| async move {
        let mut rig = integration_tests::WriteBackRig::new().await;
        let secrets = Arc::new(SecretsManagerSource::new(
            client.clone(),
            Duration::from_secs(300),
        ));
        for (key, value) in [
            ("cin7_api_key", integration_tests::CIN7_KEY),
            ("gss_access_key", integration_tests::GSS_KEY),
        ] {
            secrets
                .put(&format!("{name}#{key}"), &SecretString::from(value))
                .await
                .unwrap();
        }
        rig.clients = shared::app::ClientCache::new(
            Arc::new(rig.store.clone()),
            secrets.clone(),
            shared::app::Pacing::InProcess,
        )
        .with_http(Duration::from_secs(5), integration_tests::fast_retry(3));
        let mut settings = rig
            .integration("acme", serde_json::json!({"send_ticket_number": true}))
            .await;
        settings.cin7.api_key.0 = format!("{name}#cin7_api_key");
        settings.gss.access_key.0 = format!("{name}#gss_access_key");
        shared::store::Integrations::put_integration(&rig.store, &settings)
            .await
            .unwrap();
        let ticketed = |id: i64| {
            let order = integration_tests::order(id, &format!("SO-{id}"), chrono::Utc::now());
            rig.ticketed("acme", order, sandbox::Ticket::default())
        };
        let first = ticketed(1).await;
        let before = secrets.fetches();
        assert!(rig.run(rig.messages(&[first], 1)).await.is_empty());
        assert_eq!(
            secrets.fetches(),
            before,
            "the writer's cache held the keys"
        );

        // The merchant regenerates the CIN7 key and saves it; the container keeps running.
        rig.cin7.rotate_key("cin7-rotated-5a");
        let writer = SecretsManagerSource::new(client.clone(), Duration::from_secs(300));
        writer
            .put(
                &format!("{name}#cin7_api_key"),
                &SecretString::from("cin7-rotated-5a"),
            )
            .await
            .unwrap();
        let second = ticketed(2).await;
        let refused = rig
            .run(rig.messages(std::slice::from_ref(&second), 1))
            .await;
        assert_eq!(
            refused.len(),
            1,
            "the old key's 401 fails the job for redelivery"
        );
        let redelivered = rig.run(rig.messages(&[second], 2)).await;
        assert!(redelivered.is_empty(), "the redelivery uses the new key");
        assert_eq!(
            secrets.fetches(),
            before + 1,
            "the secret read again once, after the 401"
        );
        let dispatched = shared::store::Records::list_orders(
            &rig.store,
            "acme",
            Some(shared::records::OrderState::Dispatched),
        )
        .await
        .unwrap();
        assert_eq!(dispatched.len(), 2);
    })
    .await;
}
