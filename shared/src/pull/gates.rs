//! Import gates: whether a CIN7 order should be in GoSweetSpot, and if not, why (a reason code
//! the operator sees). Pure.

use crate::cin7::model::{OrderStatus, SalesOrder, StockControl};
use crate::settings::ImportSettings;
use chrono::{DateTime, Utc};
use std::fmt;

/// Why an order is not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    Void,
    NotApproved,
    AlreadyDispatched,
    StageExcluded,
    StageNotIncluded,
    BranchExcluded,
    TooOld,
    NoReference,
    UnknownCountry,
    BatchedItems,
    NoLines,
    Unparseable,
}

impl SkipReason {
    /// The reason code stored on the order and shown to the operator.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Void => "void",
            Self::NotApproved => "not_approved",
            Self::AlreadyDispatched => "already_dispatched",
            Self::StageExcluded => "stage_excluded",
            Self::StageNotIncluded => "stage_not_included",
            Self::BranchExcluded => "branch_excluded",
            Self::TooOld => "too_old",
            Self::NoReference => "no_reference",
            Self::UnknownCountry => "unknown_country",
            Self::BatchedItems => "batched_items",
            Self::NoLines => "no_lines",
            Self::Unparseable => "unparseable",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A gate that failed, with what the operator needs to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub reason: SkipReason,
    pub detail: Option<String>,
}

impl Skip {
    fn new(reason: SkipReason, detail: impl Into<Option<String>>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

fn same_stage(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The SKUs of lines that are Batch or Serial stock-controlled without a size grid: stock for
/// these is not deducted when the order is dispatched through GoSweetSpot.
pub fn batched_skus(order: &SalesOrder) -> Vec<String> {
    order
        .line_items
        .iter()
        .filter(|l| matches!(l.stock_control, StockControl::Batch | StockControl::Serial))
        .filter(|l| !l.has_size_grid())
        .map(|l| {
            l.code
                .clone()
                .unwrap_or_else(|| format!("line {}", l.id.unwrap_or_default()))
        })
        .collect()
}

/// Checks every gate except the country (which mapping decides) in a fixed order; the first
/// that fails is the reason.
pub fn check(order: &SalesOrder, import: &ImportSettings, now: DateTime<Utc>) -> Result<(), Skip> {
    if order.status == OrderStatus::Void || order.is_void == Some(true) {
        return Err(Skip::new(SkipReason::Void, None));
    }
    if order.status == OrderStatus::Draft || order.is_approved == Some(false) {
        return Err(Skip::new(SkipReason::NotApproved, None));
    }
    if let Some(when) = order.dispatched_date {
        return Err(Skip::new(
            SkipReason::AlreadyDispatched,
            format!("dispatched {}", when.format("%Y-%m-%d %H:%M UTC")),
        ));
    }
    let stage = order.stage.as_deref().unwrap_or("New");
    if import.exclude_stages.iter().any(|s| same_stage(s, stage)) {
        return Err(Skip::new(
            SkipReason::StageExcluded,
            format!("stage {stage:?}"),
        ));
    }
    if !import.stages.is_empty() && !import.stages.iter().any(|s| same_stage(s, stage)) {
        return Err(Skip::new(
            SkipReason::StageNotIncluded,
            format!("stage {stage:?}"),
        ));
    }
    if !import.branch_ids.is_empty()
        && !order
            .branch_id
            .is_some_and(|b| import.branch_ids.contains(&b))
    {
        return Err(Skip::new(
            SkipReason::BranchExcluded,
            format!(
                "branch {}",
                order.branch_id.map_or("none".into(), |b| b.to_string())
            ),
        ));
    }
    if let Some(created) = order.created_date
        && created < now - chrono::Duration::days(i64::from(import.max_age_days))
    {
        return Err(Skip::new(
            SkipReason::TooOld,
            format!(
                "created {} (older than {} days)",
                created.format("%Y-%m-%d"),
                import.max_age_days
            ),
        ));
    }
    if order
        .reference
        .as_deref()
        .is_none_or(|r| r.trim().is_empty())
    {
        return Err(Skip::new(SkipReason::NoReference, None));
    }
    if !order
        .line_items
        .iter()
        .any(|l| l.qty > rust_decimal::Decimal::ZERO)
    {
        return Err(Skip::new(SkipReason::NoLines, None));
    }
    if import.block_batched_items {
        let skus = batched_skus(order);
        if !skus.is_empty() {
            return Err(Skip::new(SkipReason::BatchedItems, skus.join(", ")));
        }
    }
    Ok(())
}
