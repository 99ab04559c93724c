//! Order records: reading, saving (optimistic concurrency) and the packing slip index, and
//! [`update_record`], the one way every flow changes a record (with a method of
//! [`crate::records`]).

use super::{Cond, Item, Store, StoreError, from_doc, int_pk, to_doc};
use crate::clock::Clock;
use crate::records::{OrderRecord, OrderState};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

fn order_sk(cin7_id: i64) -> String {
    format!("ORDER#{cin7_id:012}")
}

fn slip_sk(packing_slip: &str) -> String {
    format!("SLIP#{packing_slip}")
}

/// An order record as stored: its version, and the packing slip its index holds (every save
/// keeps the index in step with the record's slip).
fn order_from_item(item: &Item) -> Result<OrderRecord, StoreError> {
    let mut record: OrderRecord = from_doc(item)?;
    record.version = item.version;
    record.indexed_slip = record.packing_slip.clone();
    Ok(record)
}

/// Order records and the packing slip index.
#[async_trait]
pub trait Records: Send + Sync {
    /// One order's record.
    async fn get_order(
        &self,
        integration: &str,
        cin7_id: i64,
    ) -> Result<Option<OrderRecord>, StoreError>;

    /// Saves a record if nobody else saved it since it was read (its `version`); on success the
    /// record's version moves on. `Ok(false)` means it changed underneath: read it again.
    /// The packing slip index is kept in step (written when the record's slip is not the one
    /// it was read or last saved with).
    async fn save_order(
        &self,
        integration: &str,
        record: &mut OrderRecord,
    ) -> Result<bool, StoreError>;

    /// Records that `packing_slip` is (about to be) published for `cin7_id`, before the
    /// GoSweetSpot call: a consignment webhook for it, however early, finds the order.
    async fn index_packing_slip(
        &self,
        integration: &str,
        packing_slip: &str,
        cin7_id: i64,
    ) -> Result<(), StoreError>;

    /// The record of the order published under a packing slip (a blank record when the slip
    /// is indexed and the publish has not been recorded yet).
    async fn order_by_packing_slip(
        &self,
        integration: &str,
        packing_slip: &str,
    ) -> Result<Option<OrderRecord>, StoreError>;

    /// An integration's order records, all or only those in `state`, by CIN7 id.
    async fn list_orders(
        &self,
        integration: &str,
        state: Option<OrderState>,
    ) -> Result<Vec<OrderRecord>, StoreError>;
}

/// Reads (or starts) one order record, changes it and saves it, retrying when it changed
/// underneath; unchanged records are not written. `change` is given `clock`'s time at each
/// attempt, to stamp the transitions it makes: every entry of a history is stamped when it is
/// written, by whichever flow writes it.
pub async fn update_record(
    records: &dyn Records,
    clock: &dyn Clock,
    integration: &str,
    cin7_id: i64,
    mut change: impl FnMut(&mut OrderRecord, DateTime<Utc>),
) -> Result<OrderRecord, StoreError> {
    loop {
        let mut record = records
            .get_order(integration, cin7_id)
            .await?
            .unwrap_or_else(|| OrderRecord::blank(cin7_id));
        let before = record.clone();
        change(&mut record, clock.now());
        if record == before {
            return Ok(record);
        }
        if records.save_order(integration, &mut record).await? {
            return Ok(record);
        }
    }
}

#[async_trait]
impl Records for Store {
    async fn get_order(
        &self,
        integration: &str,
        cin7_id: i64,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let item = self
            .table
            .get(&int_pk(integration), &order_sk(cin7_id), self.now_s())
            .await?;
        item.as_ref().map(order_from_item).transpose()
    }

    async fn save_order(
        &self,
        integration: &str,
        record: &mut OrderRecord,
    ) -> Result<bool, StoreError> {
        let pk = int_pk(integration);
        let now_s = self.now_s();
        let item = Item {
            pk: pk.clone(),
            sk: order_sk(record.cin7_id),
            doc: to_doc(record)?,
            state: Some(record.state.as_str().into()),
            version: record.version + 1,
            ..Item::default()
        };
        if !self
            .table
            .put(item, Cond::Version(record.version), now_s)
            .await?
        {
            return Ok(false);
        }
        record.version += 1;
        if let Some(slip) = &record.packing_slip
            && record.indexed_slip.as_ref() != Some(slip)
        {
            let index = Item {
                pk,
                sk: slip_sk(slip),
                doc: record.cin7_id.to_string(),
                ..Item::default()
            };
            self.table.put(index, Cond::Always, now_s).await?;
            record.indexed_slip = Some(slip.clone());
        }
        Ok(true)
    }

    async fn index_packing_slip(
        &self,
        integration: &str,
        packing_slip: &str,
        cin7_id: i64,
    ) -> Result<(), StoreError> {
        let index = Item {
            pk: int_pk(integration),
            sk: slip_sk(packing_slip),
            doc: cin7_id.to_string(),
            ..Item::default()
        };
        self.table.put(index, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    async fn order_by_packing_slip(
        &self,
        integration: &str,
        packing_slip: &str,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let index = self
            .table
            .get(&int_pk(integration), &slip_sk(packing_slip), self.now_s())
            .await?;
        let Some(index) = index else {
            return Ok(None);
        };
        let id: i64 = index
            .doc
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("packing slip index {packing_slip:?}")))?;
        Ok(Some(
            self.get_order(integration, id)
                .await?
                .unwrap_or_else(|| OrderRecord::blank(id)),
        ))
    }

    async fn list_orders(
        &self,
        integration: &str,
        state: Option<OrderState>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.table
            .query(
                &int_pk(integration),
                "ORDER#",
                state.map(|s| s.as_str()),
                self.now_s(),
            )
            .await?
            .iter()
            .map(order_from_item)
            .collect()
    }
}
