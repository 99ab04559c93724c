//! An in-memory [`Table`] with the semantics of the SQLite adapter, for measuring the webhook
//! handler without storage I/O.

use async_trait::async_trait;
use shared::store::table::{Cond, Item, StoreError, Table, live};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Items by `(pk, sk)`.
#[derive(Debug, Default)]
pub struct MemTable {
    items: Mutex<BTreeMap<(String, String), Item>>,
}

impl MemTable {
    fn items(&self) -> MutexGuard<'_, BTreeMap<(String, String), Item>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Table for MemTable {
    async fn get(&self, pk: &str, sk: &str, now_s: i64) -> Result<Option<Item>, StoreError> {
        let items = self.items();
        Ok(live(
            items.get(&(pk.to_string(), sk.to_string())).cloned(),
            now_s,
        ))
    }

    async fn put(&self, item: Item, cond: Cond, now_s: i64) -> Result<bool, StoreError> {
        let mut items = self.items();
        let key = (item.pk.clone(), item.sk.clone());
        let allowed = cond.holds(live(items.get(&key).cloned(), now_s).as_ref());
        if allowed {
            items.insert(key, item);
        }
        Ok(allowed)
    }

    async fn delete(&self, pk: &str, sk: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        let mut items = self.items();
        let key = (pk.to_string(), sk.to_string());
        match owner {
            None => {
                items.remove(&key);
                Ok(true)
            }
            Some(owner) => {
                if items.get(&key).and_then(|i| i.owner.as_deref()) == Some(owner) {
                    items.remove(&key);
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
        }
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        state: Option<&str>,
        now_s: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let items = self.items();
        let from = (pk.to_string(), sk_prefix.to_string());
        Ok(items
            .range(from..)
            .take_while(|((p, s), _)| p == pk && s.starts_with(sk_prefix))
            .filter_map(|(_, i)| live(Some(i.clone()), now_s))
            .filter(|i| state.is_none_or(|s| i.state.as_deref() == Some(s)))
            .collect())
    }

    async fn add(&self, pk: &str, sk: &str, n: i64, expires_at: i64) -> Result<i64, StoreError> {
        let mut items = self.items();
        let item = items
            .entry((pk.to_string(), sk.to_string()))
            .or_insert_with(|| Item {
                pk: pk.to_string(),
                sk: sk.to_string(),
                doc: "{}".into(),
                ..Item::default()
            });
        item.version += n;
        item.expires_at = Some(expires_at);
        Ok(item.version)
    }
}
