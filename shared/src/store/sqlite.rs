//! The embedded [`Table`] of local mode: one SQLite file (bundled SQLite, WAL journal,
//! `synchronous=FULL`), one `items` table keyed by `(pk, sk)`. Every conditional write runs in
//! a `BEGIN IMMEDIATE` transaction, so the check and the write are atomic across threads and
//! across processes sharing the file. Safe across restarts: nothing is held in memory.

use super::table::{Cond, Item, StoreError, Table, live};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The SQLite-backed table.
#[derive(Clone)]
pub struct SqliteTable {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTable").finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Opens a SQLite file with the settings both embedded adapters use.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(unavailable)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(unavailable)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(unavailable)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(unavailable)?;
    Ok(conn)
}

impl SqliteTable {
    /// Opens (creating if needed) the store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_connection(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS items (
                pk TEXT NOT NULL,
                sk TEXT NOT NULL,
                doc TEXT NOT NULL,
                state TEXT,
                owner TEXT,
                held_until_ms INTEGER,
                expires_at INTEGER,
                version INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (pk, sk)
            ) WITHOUT ROWID;",
        )
        .map_err(unavailable)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(unavailable)?
    }
}

const COLUMNS: &str = "pk, sk, doc, state, owner, held_until_ms, expires_at, version";

fn row_to_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        pk: row.get(0)?,
        sk: row.get(1)?,
        doc: row.get(2)?,
        state: row.get(3)?,
        owner: row.get(4)?,
        held_until_ms: row.get(5)?,
        expires_at: row.get(6)?,
        version: row.get(7)?,
    })
}

fn read(conn: &Connection, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM items WHERE pk = ?1 AND sk = ?2"),
        params![pk, sk],
        row_to_item,
    )
    .optional()
    .map_err(unavailable)
}

#[async_trait]
impl Table for SqliteTable {
    async fn get(&self, pk: &str, sk: &str, now_s: i64) -> Result<Option<Item>, StoreError> {
        let (pk, sk) = (pk.to_string(), sk.to_string());
        self.with(move |conn| Ok(live(read(conn, &pk, &sk)?, now_s)))
            .await
    }

    async fn put(&self, item: Item, cond: Cond, now_s: i64) -> Result<bool, StoreError> {
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let existing = live(read(&tx, &item.pk, &item.sk)?, now_s);
            let allowed = cond.holds(existing.as_ref());
            if allowed {
                tx.execute(
                    &format!(
                        "INSERT OR REPLACE INTO items ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ),
                    params![
                        item.pk,
                        item.sk,
                        item.doc,
                        item.state,
                        item.owner,
                        item.held_until_ms,
                        item.expires_at,
                        item.version
                    ],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(allowed)
        })
        .await
    }

    async fn delete(&self, pk: &str, sk: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        let (pk, sk, owner) = (pk.to_string(), sk.to_string(), owner.map(str::to_owned));
        self.with(move |conn| {
            let deleted = match owner {
                None => conn
                    .execute(
                        "DELETE FROM items WHERE pk = ?1 AND sk = ?2",
                        params![pk, sk],
                    )
                    .map(|_| true),
                Some(owner) => conn
                    .execute(
                        "DELETE FROM items WHERE pk = ?1 AND sk = ?2 AND owner = ?3",
                        params![pk, sk, owner],
                    )
                    .map(|n| n > 0),
            };
            deleted.map_err(unavailable)
        })
        .await
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        state: Option<&str>,
        now_s: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let (pk, prefix, state) = (
            pk.to_string(),
            sk_prefix.to_string(),
            state.map(str::to_owned),
        );
        self.with(move |conn| {
            // Prefix match without LIKE, so `%` and `_` in keys are literal.
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM items WHERE pk = ?1 AND substr(sk, 1, length(?2)) = ?2
                     AND (?3 IS NULL OR state = ?3)
                     AND (expires_at IS NULL OR expires_at >= ?4)
                     ORDER BY sk"
                ))
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![pk, prefix, state, now_s], row_to_item)
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn add(&self, pk: &str, sk: &str, n: i64, expires_at: i64) -> Result<i64, StoreError> {
        let (pk, sk) = (pk.to_string(), sk.to_string());
        self.with(move |conn| {
            conn.query_row(
                "INSERT INTO items (pk, sk, doc, expires_at, version) VALUES (?1, ?2, '{}', ?4, ?3)
                 ON CONFLICT (pk, sk) DO UPDATE SET version = version + ?3, expires_at = ?4
                 RETURNING version",
                params![pk, sk, n, expires_at],
                |row| row.get(0),
            )
            .map_err(unavailable)
        })
        .await
    }
}
