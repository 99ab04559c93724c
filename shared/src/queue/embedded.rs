//! The embedded durable queue of local mode, with SQS's semantics: a received message is
//! hidden for its visibility timeout and comes back unless acknowledged; a message received
//! more than `max_receives` times goes to the dead-letter list instead, where the operator can
//! see and redrive it. Jobs live in a SQLite table, so they survive a crash or restart.

use super::{JobQueue, JobSource, Outgoing, QueueError, Received};
use crate::clock::{Clock, SystemClock};
use crate::store::sqlite::open_connection;
use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A message on the dead-letter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub integration_id: String,
    pub body: String,
    pub receive_count: u32,
}

/// The SQLite-backed queue.
#[derive(Clone)]
pub struct EmbeddedQueue {
    conn: Arc<Mutex<Connection>>,
    /// The SQLite table holding this queue's messages.
    table: &'static str,
    max_receives: u32,
    /// Tells the time visibility and redrives are measured by.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("max_receives", &self.max_receives)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

impl EmbeddedQueue {
    /// Opens (creating if needed) the write-back queue in a SQLite file; a message received
    /// more than `max_receives` times is dead-lettered (SQS's `maxReceiveCount`).
    pub fn open(path: &Path, max_receives: u32) -> Result<Self, QueueError> {
        Self::open_table(path, "jobs", max_receives)
    }

    /// Opens (creating if needed) the pull queue in a SQLite file, beside the write-back
    /// queue.
    pub fn open_pulls(path: &Path, max_receives: u32) -> Result<Self, QueueError> {
        Self::open_table(path, "pulls", max_receives)
    }

    fn open_table(path: &Path, table: &'static str, max_receives: u32) -> Result<Self, QueueError> {
        let conn = open_connection(path).map_err(unavailable)?;
        conn.execute_batch(
            &"CREATE TABLE IF NOT EXISTS jobs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                integration_id TEXT NOT NULL,
                body TEXT NOT NULL,
                receive_count INTEGER NOT NULL DEFAULT 0,
                visible_at_ms INTEGER NOT NULL,
                receipt TEXT,
                dead INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX IF NOT EXISTS jobs_visible ON jobs (dead, visible_at_ms);"
                .replace("jobs", table),
        )
        .map_err(unavailable)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            table,
            max_receives: max_receives.max(1),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same queue, telling time by `clock` (tests move a manual clock past a visibility).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A statement written for the `jobs` table, on this queue's table.
    fn sql(&self, statement: &str) -> String {
        statement.replace("jobs", self.table)
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(unavailable)?
    }

    /// The dead-letter list, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let list = self.sql(
            "SELECT id, integration_id, body, receive_count FROM jobs WHERE dead = 1 ORDER BY id",
        );
        self.with(move |conn| {
            let mut stmt = conn.prepare(&list).map_err(unavailable)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(DeadLetter {
                        message_id: row.get::<_, i64>(0)?.to_string(),
                        integration_id: row.get(1)?,
                        body: row.get(2)?,
                        receive_count: row.get(3)?,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    /// Moves dead letters back onto the queue (all, or those with these ids) with a fresh
    /// receive count; returns how many moved.
    pub async fn redrive(&self, ids: Option<Vec<String>>) -> Result<usize, QueueError> {
        let now = self.now_ms();
        let all = self.sql(
            "UPDATE jobs SET dead = 0, receive_count = 0, visible_at_ms = ?1, receipt = NULL WHERE dead = 1",
        );
        let one = format!("{all} AND id = ?2");
        self.with(move |conn| {
            let moved = match ids {
                None => conn.execute(&all, params![now]),
                Some(ids) => {
                    let mut total = 0;
                    for id in ids {
                        let Ok(id) = id.parse::<i64>() else { continue };
                        total += conn.execute(&one, params![now, id]).map_err(unavailable)?;
                    }
                    Ok(total)
                }
            };
            moved.map_err(unavailable)
        })
        .await
    }

    /// Messages waiting or in flight (not dead).
    pub async fn depth(&self) -> Result<usize, QueueError> {
        let count = self.sql("SELECT COUNT(*) FROM jobs WHERE dead = 0");
        self.with(move |conn| {
            conn.query_row(&count, [], |r| r.get::<_, i64>(0))
                .map(|n| usize::try_from(n).unwrap_or_default())
                .map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn send(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        let messages = messages.to_vec();
        let now = self.now_ms();
        let insert =
            self.sql("INSERT INTO jobs (integration_id, body, visible_at_ms) VALUES (?1, ?2, ?3)");
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            for m in &messages {
                let delay = m.delay.min(super::MAX_DELAY).as_millis() as i64;
                tx.execute(&insert, params![m.integration_id, m.body, now + delay])
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl JobSource for EmbeddedQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        let max_receives = self.max_receives;
        let now = self.now_ms();
        let select = self.sql(
            "SELECT id, integration_id, body, receive_count FROM jobs
             WHERE dead = 0 AND visible_at_ms <= ?1 ORDER BY id LIMIT ?2",
        );
        let dead = self.sql("UPDATE jobs SET dead = 1 WHERE id = ?1");
        let hide = self.sql(
            "UPDATE jobs SET receive_count = ?1, visible_at_ms = ?2, receipt = ?3 WHERE id = ?4",
        );
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let due: Vec<(i64, String, String, u32)> = {
                let mut stmt = tx.prepare(&select).map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![now, max as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)?
            };
            let hidden_until = now + i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX);
            let mut out = Vec::new();
            for (id, integration_id, body, count) in due {
                if count >= max_receives {
                    tx.execute(&dead, params![id]).map_err(unavailable)?;
                    tracing::warn!(
                        message_id = id,
                        integration_id,
                        receives = count,
                        "dead-lettered"
                    );
                    continue;
                }
                let receipt = format!("{id}:{}:{:016x}", count + 1, fastrand::u64(..));
                tx.execute(&hide, params![count + 1, hidden_until, receipt, id])
                    .map_err(unavailable)?;
                out.push(Received {
                    message_id: id.to_string(),
                    receipt,
                    integration_id,
                    body,
                    receive_count: count + 1,
                });
            }
            tx.commit().map_err(unavailable)?;
            Ok(out)
        })
        .await
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        let receipt = receipt.to_string();
        let delete = self.sql("DELETE FROM jobs WHERE receipt = ?1");
        self.with(move |conn| {
            conn.execute(&delete, params![receipt])
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }
}
