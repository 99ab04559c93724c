//! The store behaviour suite and the queue on the embedded (SQLite) adapters.

use chrono::Utc;
use integration_tests::store_suite;
use shared::clock::ManualClock;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{JobQueue, JobSource, Outgoing};
use shared::store::Table;
use shared::store::prelude::*;
use shared::store::sqlite::SqliteTable;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

async fn table() -> Arc<dyn Table> {
    // The table outlives this function, so the directory is kept (under the OS temp dir).
    let path = tempfile::tempdir().unwrap().keep().join("store.sqlite3");
    Arc::new(SqliteTable::open(&path).unwrap())
}

store_suite!(table());

#[tokio::test]
async fn the_store_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    {
        let (store, _) = store_suite::store(Arc::new(SqliteTable::open(&path).unwrap()));
        store
            .put_integration(&store_suite::settings("acme"))
            .await
            .unwrap();
    }
    let (store, _) = store_suite::store(Arc::new(SqliteTable::open(&path).unwrap()));
    assert!(store.get_integration("acme").await.unwrap().is_some());
}

fn jobs(n: usize) -> Vec<Outgoing> {
    (0..n)
        .map(|i| Outgoing {
            integration_id: if i % 2 == 0 { "acme" } else { "bolt" }.into(),
            body: format!("{{\"job\":{i}}}"),
            ..Outgoing::default()
        })
        .collect()
}

#[tokio::test]
async fn queue_delivers_each_acknowledged_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(&dir.path().join("q.sqlite3"), 5).unwrap();
    queue.send(&jobs(25)).await.unwrap();
    let mut seen = BTreeSet::new();
    loop {
        let batch = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for m in batch {
            assert!(seen.insert(m.body.clone()), "delivered twice: {}", m.body);
            assert_eq!(m.receive_count, 1);
            queue.ack(&m.receipt).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn an_unacknowledged_job_reappears_then_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let open = || {
        EmbeddedQueue::open(&path, 3)
            .unwrap()
            .with_clock(clock.clone())
    };
    let queue = open();
    queue.send(&jobs(1)).await.unwrap();
    let visibility = Duration::from_secs(30);
    let past_visibility = || clock.advance(chrono::Duration::seconds(31));
    let first = queue.receive(10, visibility).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        queue.receive(10, visibility).await.unwrap().is_empty(),
        "hidden while in flight"
    );
    clock.advance(chrono::Duration::seconds(29));
    assert!(
        queue.receive(10, visibility).await.unwrap().is_empty(),
        "hidden until its visibility lapses"
    );
    clock.advance(chrono::Duration::seconds(2));
    // A restart in between: the job is in the file, not in memory.
    drop(queue);
    let queue = open();
    let again = queue.receive(10, visibility).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
    // A stale receipt acknowledges nothing.
    queue.ack(&first[0].receipt).await.unwrap();
    past_visibility();
    assert_eq!(
        queue.receive(10, visibility).await.unwrap()[0].receive_count,
        3
    );
    past_visibility();
    assert!(
        queue.receive(10, visibility).await.unwrap().is_empty(),
        "dead after 3 receives"
    );
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].integration_id, "acme");
    assert_eq!(dead[0].receive_count, 3);

    assert_eq!(queue.redrive(None).await.unwrap(), 1);
    let back = queue.receive(10, visibility).await.unwrap();
    assert_eq!((back.len(), back[0].receive_count), (1, 1));
    queue.ack(&back[0].receipt).await.unwrap();
    assert!(queue.dead_letters().await.unwrap().is_empty());
}
