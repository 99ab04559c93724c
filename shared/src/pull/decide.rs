//! What to do with one order read from CIN7, given what the store knows of it. Pure.

use super::gates::{self, Skip, SkipReason};
use super::mapping::{self, Mapped};
use crate::cin7::model::OrderRow;
use crate::records::{OrderRecord, OrderState};
use crate::settings::IntegrationSettings;
use chrono::{DateTime, Utc};

/// The decision for one order.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not published: record why.
    Skip(Skip),
    /// Published earlier and now out of the gates (or void): delete it from GoSweetSpot.
    Delete { skip: Skip, packing_slip: String },
    /// New, or changed since it was published: (re-)publish.
    Publish {
        mapped: Box<Mapped>,
        warnings: Vec<String>,
        /// True when GoSweetSpot already has an earlier version.
        update: bool,
    },
    /// Published and unchanged: nothing to do.
    Unchanged,
    /// Already ticketed (a consignment is known), dispatched or in conflict: the pull leaves it
    /// alone.
    Settled,
}

/// Decides for one row.
pub fn decide(
    row: &OrderRow,
    existing: Option<&OrderRecord>,
    settings: &IntegrationSettings,
    now: DateTime<Utc>,
) -> Decision {
    let state = existing.map(|r| r.state);
    if matches!(
        state,
        Some(OrderState::Dispatched | OrderState::Conflict | OrderState::Ignored)
    ) {
        return Decision::Settled;
    }
    // GoSweetSpot has ticketed it: whatever CIN7 shows now (dispatched by a write-back still
    // in flight, or edited), it is never deleted from GoSweetSpot nor re-published.
    if existing.is_some_and(|r| !r.consignments.is_empty()) {
        return Decision::Settled;
    }
    let order = match row {
        OrderRow::Parsed(order) => order,
        OrderRow::Unparseable(u) => {
            return Decision::Skip(Skip {
                reason: SkipReason::Unparseable,
                detail: Some(u.error.clone()),
            });
        }
    };
    let gated = gates::check(order, &settings.import, now)
        .and_then(|()| mapping::map_order(order, settings));
    match (gated, existing) {
        (Err(skip), Some(record)) if record.state == OrderState::Published => Decision::Delete {
            skip,
            packing_slip: record
                .packing_slip
                .clone()
                .unwrap_or_else(|| mapping::packing_slip(order)),
        },
        (Err(skip), _) => Decision::Skip(skip),
        (Ok(mapped), Some(record))
            if record.state == OrderState::Published
                && record.content_hash.as_deref() == Some(mapped.content_hash.as_str()) =>
        {
            Decision::Unchanged
        }
        (Ok(mapped), record) => {
            let warnings = if settings.import.block_batched_items {
                Vec::new()
            } else {
                gates::batched_skus(order)
                    .into_iter()
                    .map(|sku| {
                        format!(
                            "{sku} is Batch/Serial stock-controlled without a size grid: its stock will not be deducted when dispatched through GoSweetSpot"
                        )
                    })
                    .collect()
            };
            Decision::Publish {
                update: record.is_some_and(|r| r.state == OrderState::Published),
                mapped: Box::new(mapped),
                warnings,
            }
        }
    }
}
