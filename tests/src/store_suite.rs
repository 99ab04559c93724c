//! The behavioural test suite every [`Table`] adapter must pass, run through [`Store`].
//! `store_suite!` instantiates it for one adapter (see `store_sqlite.rs`, `store_dynamodb.rs`).

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use shared::clock::{Clock, ManualClock};
use shared::pull::paging::PageStart;
use shared::rate_limit::Window;
use shared::records::{ConsignmentRecord, OrderRecord, OrderState};
use shared::settings::IntegrationSettings;
use shared::store::prelude::*;
use shared::store::{Claim, Cond, Item, PullCursor, Store, StoreError, Table};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A table that passes every call on and keeps the sort key of every write, so tests can
/// count the writes a store operation makes.
pub struct CountingTable {
    inner: Arc<dyn Table>,
    written: Mutex<Vec<String>>,
}

impl CountingTable {
    /// Counts the writes made to `inner`.
    pub fn over(inner: Arc<dyn Table>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            written: Mutex::new(Vec::new()),
        })
    }

    /// Writes so far to sort keys starting with `prefix` (`SLIP#`, `ORDER#`, …).
    pub fn writes(&self, prefix: &str) -> usize {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|sk| sk.starts_with(prefix))
            .count()
    }
}

#[async_trait::async_trait]
impl Table for CountingTable {
    async fn get(&self, pk: &str, sk: &str, now_s: i64) -> Result<Option<Item>, StoreError> {
        self.inner.get(pk, sk, now_s).await
    }

    async fn put(&self, item: Item, cond: Cond, now_s: i64) -> Result<bool, StoreError> {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(item.sk.clone());
        self.inner.put(item, cond, now_s).await
    }

    async fn delete(&self, pk: &str, sk: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        self.inner.delete(pk, sk, owner).await
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        state: Option<&str>,
        now_s: i64,
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.query(pk, sk_prefix, state, now_s).await
    }

    async fn add(&self, pk: &str, sk: &str, n: i64, expires_at: i64) -> Result<i64, StoreError> {
        self.inner.add(pk, sk, n, expires_at).await
    }
}

/// A store over `table` with a manual clock set to a fixed instant.
pub fn store(table: Arc<dyn Table>) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap(),
    ));
    (Store::new(table, clock.clone()), clock)
}

/// Valid settings for an integration id.
pub fn settings(id: &str) -> IntegrationSettings {
    IntegrationSettings::from_json(
        &serde_json::json!({
            "id": id,
            "name": format!("Merchant {id}"),
            "cin7": {"api_username": "user", "api_key": format!("{id}/cin7")},
            "gss": {"site_id": "4180", "access_key": format!("{id}/gss"), "support_email": "ops@example.nz"},
            "webhook": {"secret": format!("{id}/webhook")},
            "write_back": {"send_ticket_number": true, "freight": "marked_up",
                           "markup_by_cost_centre": {"Online": {"percent": "12.5"}}}
        })
        .to_string(),
    )
    .unwrap()
}

pub async fn integrations_round_trip(table: Arc<dyn Table>) {
    let (store, _) = store(table);
    let a = settings("acme");
    let b = settings("bolt");
    store.put_integration(&a).await.unwrap();
    store.put_integration(&b).await.unwrap();
    assert_eq!(
        store.get_integration("acme").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.get_integration("nope").await.unwrap(), None);
    let ids: Vec<String> = store
        .list_integrations()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["acme", "bolt"]);
    assert!(store.disable_integration("bolt").await.unwrap());
    assert!(!store.disable_integration("nope").await.unwrap());
    assert!(
        !store
            .get_integration("bolt")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );

    let mut bad = a.clone();
    bad.gss.support_email = "nobody".into();
    let err = store.put_integration(&bad).await.unwrap_err();
    assert!(err.to_string().contains("gss.support_email"), "{err}");
    assert_eq!(store.get_integration("acme").await.unwrap(), Some(a));
}

pub async fn orders_round_trip_and_list_by_state(table: Arc<dyn Table>) {
    let (store, clock) = store(table);
    let at = clock.now();
    let mut record = OrderRecord::new(1895719, OrderState::Published, "published", at);
    record.reference = Some("#1050".into());
    record.packing_slip = Some("#1050".into());
    record.content_hash = Some("abc123".into());
    record.modified_date = Some(at);
    record.detail = Some("batch 1".into());
    record.warnings = vec!["stock for HONEY-500 will not be deducted".into()];
    record.truncations = vec!["delvinstructions: 130 → 120 characters".into()];
    record.consignments = vec![ConsignmentRecord {
        connote: "SSPOT018667".into(),
        tracking_url: Some("https://gosweetspot.com/track/4180-SSPOT018667".into()),
        carrier: Some("Post Haste".into()),
        created_utc: Some(at),
        freight_added: Some(Decimal::new(935, 2)),
        tracking_written: true,
        deleted: false,
    }];
    record.transition(OrderState::Dispatched, "dispatched", None, at);
    assert!(store.save_order("acme", &mut record).await.unwrap());
    assert_eq!(record.version, 1);
    let back = store.get_order("acme", 1895719).await.unwrap().unwrap();
    assert_eq!(back, record, "every field round-trips");
    assert_eq!(
        store.order_by_packing_slip("acme", "#1050").await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        store.order_by_packing_slip("acme", "#9999").await.unwrap(),
        None
    );

    // A stale copy cannot overwrite a newer one.
    let mut stale = back.clone();
    stale.version = 0;
    assert!(!store.save_order("acme", &mut stale).await.unwrap());

    for (id, state) in [
        (2, OrderState::Skipped),
        (3, OrderState::Published),
        (4, OrderState::Skipped),
        (5, OrderState::Failed),
    ] {
        let mut r = OrderRecord::new(id, state, "x", at);
        assert!(store.save_order("acme", &mut r).await.unwrap());
    }
    let mut other = OrderRecord::new(6, OrderState::Skipped, "x", at);
    assert!(store.save_order("bolt", &mut other).await.unwrap());
    let ids = |v: Vec<OrderRecord>| v.into_iter().map(|r| r.cin7_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .list_orders("acme", Some(OrderState::Skipped))
            .await
            .unwrap()),
        [2, 4]
    );
    assert_eq!(
        ids(store
            .list_orders("acme", Some(OrderState::Dispatched))
            .await
            .unwrap()),
        [1895719]
    );
    assert_eq!(
        ids(store.list_orders("acme", None).await.unwrap()),
        [2, 3, 4, 5, 1895719]
    );
    assert_eq!(ids(store.list_orders("bolt", None).await.unwrap()), [6]);
}

pub async fn packing_slip_index_is_written_when_the_slip_changes(table: Arc<dyn Table>) {
    let counting = CountingTable::over(table);
    let (store, clock) = store(counting.clone());
    let at = clock.now();
    let mut record = OrderRecord::new(7, OrderState::Published, "published", at);
    record.packing_slip = Some("#2001".into());
    assert!(store.save_order("acme", &mut record).await.unwrap());
    assert_eq!(counting.writes("SLIP#"), 1);

    // Saves that keep the slip: the one just saved, one read back, one listed.
    record.transition(OrderState::Dispatched, "dispatched", None, at);
    assert!(store.save_order("acme", &mut record).await.unwrap());
    let mut read = store.get_order("acme", 7).await.unwrap().unwrap();
    read.last_error = Some("CIN7 answered 503".into());
    assert!(store.save_order("acme", &mut read).await.unwrap());
    let mut listed = store.list_orders("acme", None).await.unwrap().remove(0);
    listed.last_error = None;
    assert!(store.save_order("acme", &mut listed).await.unwrap());
    assert_eq!(counting.writes("ORDER#"), 4);
    assert_eq!(counting.writes("SLIP#"), 1, "the index is not rewritten");

    // A new slip is indexed, once.
    listed.packing_slip = Some("GSS-7".into());
    assert!(store.save_order("acme", &mut listed).await.unwrap());
    assert!(store.save_order("acme", &mut listed).await.unwrap());
    assert_eq!(counting.writes("SLIP#"), 2);
    let found = store.order_by_packing_slip("acme", "GSS-7").await.unwrap();
    assert_eq!(found.map(|r| r.cin7_id), Some(7));
}

pub async fn cursor_round_trips(table: Arc<dyn Table>) {
    let (store, clock) = store(table);
    assert_eq!(store.get_cursor("acme").await.unwrap(), None);
    // Kept in the form CIN7 wrote it: offset and precision.
    let cursor = PullCursor {
        modified_since: shared::timestamp::Timestamp::parse("2026-11-20T14:02:03.518448+13:00")
            .unwrap()
            .unwrap(),
        saved_at: clock.now(),
        resume: None,
    };
    store.put_cursor("acme", &cursor).await.unwrap();
    let read = store.get_cursor("acme").await.unwrap().unwrap();
    assert_eq!(read, cursor);
    assert_eq!(
        read.modified_since.text(),
        "2026-11-20T14:02:03.518448+13:00"
    );
    assert_eq!(store.get_cursor("bolt").await.unwrap(), None);
    // A cursor saved before forms were kept (a chrono UTC instant) reads as UTC.
    let old = PullCursor {
        modified_since: shared::timestamp::Timestamp::utc(
            Utc.with_ymd_and_hms(2026, 11, 20, 1, 2, 3).unwrap(),
        ),
        saved_at: clock.now(),
        resume: None,
    };
    let doc =
        serde_json::json!({"modified_since": "2026-11-20T01:02:03Z", "saved_at": clock.now()});
    assert_eq!(serde_json::from_value::<PullCursor>(doc).unwrap(), old);
    // Where a sliced pull stopped is kept whole.
    let resume = PageStart::new(cursor.modified_since);
    let sliced = PullCursor {
        resume: Some(resume.clone()),
        ..cursor
    };
    store.put_cursor("acme", &sliced).await.unwrap();
    let read = store.get_cursor("acme").await.unwrap().unwrap();
    assert_eq!(read.resume, Some(resume));
}

pub async fn lease_is_single_flight_and_expires(table: Arc<dyn Table>) {
    let (store, clock) = store(table);
    let ttl = Duration::from_secs(30);
    let attempts: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .acquire_lease("acme", "pull", &format!("worker-{i}"), ttl)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for a in attempts {
        winners += usize::from(a.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one concurrent claimant wins");

    assert!(
        store
            .acquire_lease("acme", "pull2", "a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease("acme", "pull2", "b", ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_lease("acme", "pull2", "a", ttl)
            .await
            .unwrap(),
        "owner renews"
    );
    clock.advance(chrono::Duration::seconds(31));
    assert!(
        store
            .acquire_lease("acme", "pull2", "b", ttl)
            .await
            .unwrap(),
        "expired lease taken over"
    );
    assert!(
        !store
            .acquire_lease("acme", "pull2", "a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !store.release_lease("acme", "pull2", "a").await.unwrap(),
        "only the owner releases"
    );
    assert!(store.release_lease("acme", "pull2", "b").await.unwrap());
    assert!(
        store
            .acquire_lease("acme", "pull2", "a", ttl)
            .await
            .unwrap()
    );
}

pub async fn idempotency_follows_the_powertools_contract(table: Arc<dyn Table>) {
    let (store, clock) = store(table);
    let hold = Duration::from_secs(60);
    let claims: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim("acme", "SSPOT1:dispatch", &format!("w{i}"), hold)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for c in claims {
        outcomes.push(c.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|c| **c == Claim::Acquired).count(),
        1
    );
    assert_eq!(
        outcomes.iter().filter(|c| **c == Claim::InProgress).count(),
        7
    );

    // Completed short-circuits.
    assert_eq!(
        store.claim("acme", "k1", "a", hold).await.unwrap(),
        Claim::Acquired
    );
    assert!(
        store
            .complete("acme", "k1", "a", "{\"ok\":true}")
            .await
            .unwrap()
    );
    assert_eq!(
        store.claim("acme", "k1", "b", hold).await.unwrap(),
        Claim::Completed("{\"ok\":true}".into())
    );
    // Also for the worker that completed it (a redelivery to the same container): its own
    // completed key is not claimed again.
    assert_eq!(
        store.claim("acme", "k1", "a", hold).await.unwrap(),
        Claim::Completed("{\"ok\":true}".into())
    );
    // A crashed worker's in-progress claim is taken over once its hold lapses.
    assert_eq!(
        store.claim("acme", "k2", "crashed", hold).await.unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store.claim("acme", "k2", "b", hold).await.unwrap(),
        Claim::InProgress
    );
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        store.claim("acme", "k2", "b", hold).await.unwrap(),
        Claim::Acquired
    );
    assert!(
        !store
            .complete("acme", "k2", "crashed", "late")
            .await
            .unwrap(),
        "lost its claim"
    );
    assert!(store.complete("acme", "k2", "b", "done").await.unwrap());
    // Released after a failure: claimable at once.
    assert_eq!(
        store.claim("acme", "k3", "a", hold).await.unwrap(),
        Claim::Acquired
    );
    assert!(store.release_claim("acme", "k3", "a").await.unwrap());
    assert_eq!(
        store.claim("acme", "k3", "b", hold).await.unwrap(),
        Claim::Acquired
    );
    // Completed records expire after the keep period.
    clock.advance(chrono::Duration::days(8));
    assert_eq!(
        store.claim("acme", "k1", "c", hold).await.unwrap(),
        Claim::Acquired
    );
}

pub async fn rate_window_holds_across_concurrent_tasks(table: Arc<dyn Table>) {
    let (store, clock) = store(table);
    let windows = vec![
        Window::new(3, Duration::from_secs(1)),
        Window::new(10, Duration::from_secs(60)),
    ];
    let mut granted_at = Vec::new();
    // Twenty rounds of one second: in each, four tasks try ten times each at the same instant.
    for _ in 0..20 {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (store, windows) = (store.clone(), windows.clone());
                tokio::spawn(async move {
                    let mut granted = 0;
                    for _ in 0..10 {
                        if store
                            .try_acquire_rate("acme", "cin7", &windows)
                            .await
                            .unwrap()
                            .is_none()
                        {
                            granted += 1;
                        }
                    }
                    granted
                })
            })
            .collect();
        let mut round = 0;
        for t in tasks {
            round += t.await.unwrap();
        }
        granted_at.push((clock.now(), round));
        clock.advance(chrono::Duration::seconds(1));
    }
    let per_second: Vec<usize> = granted_at.iter().map(|(_, n)| *n).collect();
    assert!(per_second.iter().all(|n| *n <= 3), "{per_second:?}");
    assert_eq!(
        per_second.iter().sum::<usize>(),
        10,
        "10 a minute: {per_second:?}"
    );
    assert_eq!(&per_second[..4], &[3, 3, 3, 1]);
    let waits = store
        .try_acquire_rate("acme", "cin7", &windows)
        .await
        .unwrap();
    assert!(waits.is_some_and(|w| w <= Duration::from_secs(60)));
}

pub async fn daily_call_counter_adds_atomically(table: Arc<dyn Table>) {
    let (store, clock) = store(table);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    store.count_calls("acme", 1).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.calls_today("acme").await.unwrap(), 100);
    assert_eq!(store.calls_today("bolt").await.unwrap(), 0);
    clock.advance(chrono::Duration::days(1));
    assert_eq!(
        store.calls_today("acme").await.unwrap(),
        0,
        "a new day starts at zero"
    );
}

pub async fn schedules_are_versioned_and_indexed_by_due_time(table: Arc<dyn Table>) {
    use shared::store::{DUE_BUCKET_SECONDS, DueEntry, Schedule, due_bucket};
    let (store, clock) = store(table);
    assert_eq!(store.get_schedule("acme").await.unwrap(), None);
    let due = clock.now() + chrono::Duration::minutes(1);
    let mut first = Schedule {
        token: "t1".into(),
        next_pull_due: due,
        last_activity: None,
        last_pull: None,
        last_reconcile: Some(due - chrono::Duration::minutes(3)),
        version: 0,
        indexed_bucket: None,
    };
    assert!(store.save_schedule("acme", &mut first).await.unwrap());
    let read = store.get_schedule("acme").await.unwrap().unwrap();
    assert_eq!((read.token.as_str(), read.version), ("t1", 1));
    assert_eq!(read.indexed_bucket, Some(due_bucket(due)));
    assert_eq!(read.last_reconcile, first.last_reconcile);
    let entry = |bucket| DueEntry {
        bucket,
        integration: "acme".into(),
    };
    assert_eq!(
        store.due_entries(due_bucket(due)).await.unwrap(),
        vec![entry(due_bucket(due))]
    );
    // A writer holding the old version loses: the chain is someone else's.
    let mut stale = Schedule {
        token: "t-stale".into(),
        version: 0,
        ..read.clone()
    };
    assert!(!store.save_schedule("acme", &mut stale).await.unwrap());
    // Moving the due time to another bucket moves the index entry.
    let later = due + chrono::Duration::seconds(3 * DUE_BUCKET_SECONDS);
    let mut moved = Schedule {
        token: "t2".into(),
        next_pull_due: later,
        ..read
    };
    assert!(store.save_schedule("acme", &mut moved).await.unwrap());
    assert!(store.due_entries(due_bucket(due)).await.unwrap().is_empty());
    assert_eq!(
        store.due_entries(due_bucket(later)).await.unwrap(),
        vec![entry(due_bucket(later))]
    );
    assert_eq!(
        store.get_schedule("acme").await.unwrap().unwrap().token,
        "t2"
    );
    store
        .drop_due_entry(&entry(due_bucket(later)))
        .await
        .unwrap();
    assert!(
        store
            .due_entries(due_bucket(later))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.sweep_cursor().await.unwrap(), None);
    store.put_sweep_cursor(42).await.unwrap();
    assert_eq!(store.sweep_cursor().await.unwrap(), Some(42));
}

/// Instantiates the suite for one adapter: `store_suite!(async { Arc<dyn Table> })`.
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@tests $make;
            integrations_round_trip,
            orders_round_trip_and_list_by_state,
            packing_slip_index_is_written_when_the_slip_changes,
            cursor_round_trips,
            lease_is_single_flight_and_expires,
            idempotency_follows_the_powertools_contract,
            rate_window_holds_across_concurrent_tasks,
            daily_call_counter_adds_atomically,
            schedules_are_versioned_and_indexed_by_due_time);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let table = $make.await;
                $crate::store_suite::$name(table).await;
            }
        )*
    };
}
