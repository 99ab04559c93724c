//! The DynamoDB adapter of the [`Table`] port.
//!
//! # Table design
//!
//! One table holds everything. Its key is the partition key `pk` (S) and the sort key `sk`
//! (S); billing is on demand and DynamoDB's TTL is enabled on `expires_at`. Each item has:
//!
//! | attribute | type | what it holds |
//! |---|---|---|
//! | `pk` | S | the partition key |
//! | `sk` | S | the sort key |
//! | `doc` | S | the JSON document |
//! | `state` | S, optional | a short state for listing and claims (`IN_PROGRESS`, `COMPLETED`, …) |
//! | `owner` | S, optional | who holds a claim or lease |
//! | `held_until_ms` | N, optional | until when (epoch ms) an in-progress claim or lease holds |
//! | `expires_at` | N, optional | the TTL attribute (epoch seconds) |
//! | `version` | N | the optimistic-concurrency version; also a counter's value (see [`Table::add`]) |
//!
//! The keys the [`Store`](super) uses:
//!
//! | `pk` | `sk` | item |
//! |---|---|---|
//! | `INTEGRATIONS` | `<id>` | an integration's settings |
//! | `INT#<id>` | `ORDER#<cin7 id zero-padded to 12>` | an order's sync record |
//! | `INT#<id>` | `SLIP#<packing slip>` | the packing-slip index of sync records |
//! | `INT#<id>` | `CURSOR` | the order-pull cursor |
//! | `INT#<id>` | `LEASE#<name>` | a lease (for example the pull's) |
//! | `INT#<id>` | `IDEM#<key>` | an idempotency claim |
//! | `INT#<id>` | `CALLS#<yyyy-mm-dd>` | a daily API-call counter |
//! | `INT#<id>` | `RATE#<service>` | the cross-process rate window of a service |
//! | `INT#<id>` | `CONSIGNMENT#<connote>` | a GoSweetSpot consignment |
//! | `INT#<id>` | `DELIVERY#…` | the audit record of a webhook delivery |
//!
//! DynamoDB deletes expired items lazily (typically within days), so every read and every
//! condition here treats an item whose `expires_at` has passed as absent. Reads are strongly
//! consistent. [`Table::add`] does not reset a counter that has expired but is not deleted
//! yet, as the embedded adapter does not: counters are keyed by their period (`CALLS#<date>`).
//! A claim uses [`CLAIM_CONDITION`], the condition of the Powertools idempotency
//! utility extended with the owner, so a holder can renew its own claim or lease while it is in
//! progress.

mod admin;

pub use admin::{create_table, delete_table};

use super::table::{Cond, IN_PROGRESS, Item, StoreError, Table, TableOp, live};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

/// The condition of a claim (see [`Cond::Claim`]): the item is absent, or expired, or in
/// progress with its hold lapsed, or already held by the claimant.
pub const CLAIM_CONDITION: &str = "attribute_not_exists(pk) OR expires_at < :now_s \
     OR (#state = :in_progress AND (held_until_ms < :now_ms OR #owner = :owner))";

/// The condition of a write that needs the key to have no live item.
const ABSENT_CONDITION: &str = "attribute_not_exists(pk) OR expires_at < :now_s";

/// The condition of a write that needs the live item to have a given version.
const VERSION_CONDITION: &str =
    "version = :v AND (attribute_not_exists(expires_at) OR expires_at >= :now_s)";

/// The filter that keeps live items.
const LIVE_FILTER: &str = "(attribute_not_exists(expires_at) OR expires_at >= :now_s)";

/// The partition key the table is created with (the template declares the same).
pub const PARTITION_KEY: &str = "pk";
/// The sort key the table is created with.
pub const SORT_KEY: &str = "sk";
/// The attribute DynamoDB's time to live reads (seconds since the epoch).
pub const TTL_ATTRIBUTE: &str = "expires_at";

// The names of the attributes.
const PK: &str = PARTITION_KEY;
const SK: &str = SORT_KEY;
const DOC: &str = "doc";
const STATE: &str = "state";
const OWNER: &str = "owner";
const HELD_UNTIL_MS: &str = "held_until_ms";
const EXPIRES_AT: &str = TTL_ATTRIBUTE;
const VERSION: &str = "version";

/// A [`Table`] on one DynamoDB table (see the module docs).
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    /// The table `table_name`, reached through `client`.
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table: table_name.into(),
        }
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The text of an SDK error, with its sources.
fn detail<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(e).to_string()
}

fn unavailable<E, R>(e: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(detail(e))
}

/// The attributes of an item.
fn to_attributes(item: Item) -> HashMap<String, AttributeValue> {
    let mut m = HashMap::with_capacity(8);
    m.insert(PK.into(), s(item.pk));
    m.insert(SK.into(), s(item.sk));
    m.insert(DOC.into(), s(item.doc));
    if let Some(state) = item.state {
        m.insert(STATE.into(), s(state));
    }
    if let Some(owner) = item.owner {
        m.insert(OWNER.into(), s(owner));
    }
    if let Some(held) = item.held_until_ms {
        m.insert(HELD_UNTIL_MS.into(), num(held));
    }
    if let Some(exp) = item.expires_at {
        m.insert(EXPIRES_AT.into(), num(exp));
    }
    m.insert(VERSION.into(), num(item.version));
    m
}

fn string_attr(
    m: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<Option<String>, StoreError> {
    match m.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a string"
        ))),
    }
}

fn number_attr(m: &HashMap<String, AttributeValue>, name: &str) -> Result<Option<i64>, StoreError> {
    match m.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer: {v}"))),
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a number"
        ))),
    }
}

/// The item stored as these attributes.
fn from_attributes(m: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    let required = |name: &str| {
        string_attr(m, name)?
            .ok_or_else(|| StoreError::Corrupt(format!("an item has no {name} attribute")))
    };
    Ok(Item {
        pk: required(PK)?,
        sk: required(SK)?,
        doc: string_attr(m, DOC)?.unwrap_or_else(|| "{}".into()),
        state: string_attr(m, STATE)?,
        owner: string_attr(m, OWNER)?,
        held_until_ms: number_attr(m, HELD_UNTIL_MS)?,
        expires_at: number_attr(m, EXPIRES_AT)?,
        version: number_attr(m, VERSION)?.unwrap_or(0),
    })
}

/// A condition expression with its placeholders.
struct Condition {
    expression: &'static str,
    names: Vec<(&'static str, &'static str)>,
    values: Vec<(&'static str, AttributeValue)>,
}

/// The condition of [`Cond::HeldBy`]: the live item is held by this owner.
const HELD_BY_CONDITION: &str =
    "#owner = :owner AND (attribute_not_exists(expires_at) OR expires_at >= :now_s)";

fn condition(cond: Cond, now_s: i64) -> Option<Condition> {
    let absent = || Condition {
        expression: ABSENT_CONDITION,
        names: vec![],
        values: vec![(":now_s", num(now_s))],
    };
    match cond {
        Cond::Always => None,
        Cond::Absent | Cond::Version(0) => Some(absent()),
        Cond::Version(v) => Some(Condition {
            expression: VERSION_CONDITION,
            names: vec![],
            values: vec![(":v", num(v)), (":now_s", num(now_s))],
        }),
        Cond::HeldBy(owner) => Some(Condition {
            expression: HELD_BY_CONDITION,
            names: vec![("#owner", OWNER)],
            values: vec![(":owner", s(owner)), (":now_s", num(now_s))],
        }),
        Cond::Claim { now_ms, owner } => Some(Condition {
            expression: CLAIM_CONDITION,
            names: vec![("#state", STATE), ("#owner", OWNER)],
            values: vec![
                (":now_s", num(now_s)),
                (":in_progress", s(IN_PROGRESS)),
                (":now_ms", num(now_ms)),
                (":owner", s(owner)),
            ],
        }),
    }
}

impl DynamoTable {
    /// The IAM actions each [`Table`] operation calls (the one DynamoDB operation of each;
    /// checked against a DynamoDB endpoint by the adapter's tests).
    pub fn iam_actions(op: TableOp) -> &'static [&'static str] {
        match op {
            TableOp::Get => &["dynamodb:GetItem"],
            TableOp::Put => &["dynamodb:PutItem"],
            TableOp::Delete => &["dynamodb:DeleteItem"],
            TableOp::Query => &["dynamodb:Query"],
            TableOp::Add => &["dynamodb:UpdateItem"],
        }
    }
}

/// A conditional write's outcome: written (`true`), or its condition did not hold (`false`).
fn conditional<O, E, R>(sent: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match sent {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(|se| se.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(&e)),
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, pk: &str, sk: &str, now_s: i64) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        match out.item() {
            None => Ok(None),
            Some(attrs) => Ok(live(Some(from_attributes(attrs)?), now_s)),
        }
    }

    async fn put(&self, item: Item, cond: Cond, now_s: i64) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(item)));
        if let Some(c) = condition(cond, now_s) {
            req = req.condition_expression(c.expression);
            for (k, v) in c.names {
                req = req.expression_attribute_names(k, v);
            }
            for (k, v) in c.values {
                req = req.expression_attribute_values(k, v);
            }
        }
        conditional(req.send().await)
    }

    async fn delete(&self, pk: &str, sk: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk));
        if let Some(owner) = owner {
            req = req
                .condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", OWNER)
                .expression_attribute_values(":owner", s(owner));
        }
        conditional(req.send().await)
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        state: Option<&str>,
        now_s: i64,
    ) -> Result<Vec<Item>, StoreError> {
        // DynamoDB refuses an empty key value, so an empty prefix queries the whole partition.
        let key_condition = if sk_prefix.is_empty() {
            "pk = :pk"
        } else {
            "pk = :pk AND begins_with(sk, :prefix)"
        };
        let filter = if state.is_some() {
            "(attribute_not_exists(expires_at) OR expires_at >= :now_s) AND #state = :state"
        } else {
            LIVE_FILTER
        };
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression(key_condition)
                .filter_expression(filter)
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":now_s", num(now_s))
                .set_exclusive_start_key(start.take());
            if !sk_prefix.is_empty() {
                req = req.expression_attribute_values(":prefix", s(sk_prefix));
            }
            if let Some(state) = state {
                req = req
                    .expression_attribute_names("#state", STATE)
                    .expression_attribute_values(":state", s(state));
            }
            let out = req.send().await.map_err(|e| unavailable(&e))?;
            for attrs in out.items() {
                items.extend(live(Some(from_attributes(attrs)?), now_s));
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    async fn add(&self, pk: &str, sk: &str, n: i64, expires_at: i64) -> Result<i64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(
                "ADD version :n SET expires_at = :exp, doc = if_not_exists(doc, :empty)",
            )
            .expression_attribute_values(":n", num(n))
            .expression_attribute_values(":exp", num(expires_at))
            .expression_attribute_values(":empty", s("{}"))
            // ALL_NEW, not UPDATED_NEW: an emulator may leave out an attribute an update did not
            // change (adding 0 to a new counter), and the item is small.
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let attrs = out
            .attributes()
            .ok_or_else(|| StoreError::Corrupt("an update returned no attributes".into()))?;
        number_attr(attrs, VERSION)?
            .ok_or_else(|| StoreError::Corrupt("an update returned no version".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::table::COMPLETED;

    #[test]
    fn attributes_round_trip() {
        let item = Item {
            pk: "INT#a".into(),
            sk: "IDEM#k".into(),
            doc: "{\"x\":1}".into(),
            state: Some(COMPLETED.into()),
            owner: Some("me".into()),
            held_until_ms: Some(1_700_000_000_123),
            expires_at: Some(1_700_000_000),
            version: 3,
        };
        let back = from_attributes(&to_attributes(item.clone())).map_err(|e| e.to_string());
        assert_eq!(back, Ok(item));
    }

    #[test]
    fn optional_attributes_are_omitted() {
        let attrs = to_attributes(Item {
            pk: "p".into(),
            sk: "s".into(),
            ..Item::default()
        });
        let mut names: Vec<_> = attrs.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["doc", "pk", "sk", "version"]);
    }

    #[test]
    fn conditions_name_only_what_they_use() {
        assert!(condition(Cond::Always, 1).is_none());
        let v0 = condition(Cond::Version(0), 1).map(|c| c.expression);
        assert_eq!(v0, Some(ABSENT_CONDITION));
        let claim = condition(
            Cond::Claim {
                now_ms: 5,
                owner: "o".into(),
            },
            1,
        );
        let claim = claim.map(|c| {
            let used = c
                .names
                .iter()
                .map(|(k, _)| *k)
                .chain(c.values.iter().map(|(k, _)| *k))
                .all(|k| c.expression.contains(k));
            (c.expression, used)
        });
        assert_eq!(claim, Some((CLAIM_CONDITION, true)));
    }
}
