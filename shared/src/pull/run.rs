//! The pull use-case: read changed CIN7 orders page by page from the cursor, decide each,
//! publish and delete in GoSweetSpot in batches of 50, record every outcome, and move the
//! cursor only past orders that are durably handled.

use super::decide::{Decision, decide};
use super::gates::Skip;
use crate::cin7::Cin7Client;
use crate::cin7::model::{OrderRow, SALES_ORDER_FIELDS};
use crate::cin7::query::{Direction, ListQuery, MAX_ROWS, Where};
use crate::gss::GssClient;
use crate::gss::client::ops as gss_ops;
use crate::gss::model::{
    CustomerOrder, DeleteOutcome, MAX_ORDERS_PER_CALL, PublishResult, error_text as gss_error_text,
};
use crate::http::{ApiError, Service};
use crate::queue::JobQueue;
use crate::rate_limit::RateLimiter;
use crate::reconcile::{ReconcileDeps, ReconcileOptions, ShipmentFeed, reconcile};
use crate::settings::IntegrationSettings;
use crate::store::records::update_record;
use crate::store::{OrderState, PullCursor, Store, StoreError};
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Reads CIN7 sales orders (the pull's view of the CIN7 client).
#[async_trait]
pub trait OrderSource: Send + Sync {
    /// One page of orders.
    async fn list_page(&self, query: &ListQuery) -> Result<Vec<OrderRow>, ApiError>;
    /// Whether the query's request URL is short enough to send (see
    /// [`crate::cin7::client::MAX_URL_CHARS`]).
    fn fits(&self, query: &ListQuery) -> bool;
}

/// Publishes and deletes GoSweetSpot customer orders (the pull's view of the GSS client).
#[async_trait]
pub trait OrderSink: Send + Sync {
    /// Upserts up to 50 orders.
    async fn publish(&self, orders: &[CustomerOrder]) -> Result<Vec<PublishResult>, ApiError>;
    /// Deletes up to 50 pending orders.
    async fn delete(
        &self,
        packing_slips: &[String],
    ) -> Result<BTreeMap<String, DeleteOutcome>, ApiError>;
}

#[async_trait]
impl OrderSource for Cin7Client {
    async fn list_page(&self, query: &ListQuery) -> Result<Vec<OrderRow>, ApiError> {
        Cin7Client::list_page(self, query).await
    }
    fn fits(&self, query: &ListQuery) -> bool {
        Cin7Client::url_fits(self, query)
    }
}

#[async_trait]
impl OrderSink for GssClient {
    async fn publish(&self, orders: &[CustomerOrder]) -> Result<Vec<PublishResult>, ApiError> {
        self.put_customer_orders(orders).await
    }
    async fn delete(
        &self,
        packing_slips: &[String],
    ) -> Result<BTreeMap<String, DeleteOutcome>, ApiError> {
        self.delete_customer_orders(packing_slips).await
    }
}

/// A sink that waits for a turn from `share` before each call: the pull's share of
/// GoSweetSpot's window ([`crate::rate_limit::pull_gss_share`]), so that the write-back, which
/// shares the same window, keeps pace during a large import.
pub struct SharedSink<'a> {
    pub sink: &'a dyn OrderSink,
    pub share: &'a dyn RateLimiter,
}

impl SharedSink<'_> {
    async fn turn(&self, operation: &'static str) -> Result<(), ApiError> {
        self.share.acquire().await.map_err(|e| ApiError::Limiter {
            service: Service::Gss,
            operation,
            detail: e.to_string(),
        })
    }
}

#[async_trait]
impl OrderSink for SharedSink<'_> {
    async fn publish(&self, orders: &[CustomerOrder]) -> Result<Vec<PublishResult>, ApiError> {
        self.turn(gss_ops::PUT_ORDERS).await?;
        self.sink.publish(orders).await
    }
    async fn delete(
        &self,
        packing_slips: &[String],
    ) -> Result<BTreeMap<String, DeleteOutcome>, ApiError> {
        self.turn(gss_ops::DELETE_ORDERS).await?;
        self.sink.delete(packing_slips).await
    }
}

/// How a pull runs.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Names this run's lease.
    pub owner: String,
    /// When the caller must have returned (the Lambda deadline); `None` for no limit.
    pub deadline: Option<Instant>,
    /// Stop cleanly when less than this remains before the deadline.
    pub margin: Duration,
    /// How long the single-flight lease holds without renewal.
    pub lease_ttl: Duration,
    /// CIN7's daily call budget for the account.
    pub daily_budget: i64,
    /// Calls of the daily budget the pull leaves for write-backs.
    pub write_back_reserve: i64,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            owner: "pull".into(),
            deadline: None,
            margin: Duration::from_secs(20),
            lease_ttl: Duration::from_secs(15 * 60),
            daily_budget: 5000,
            write_back_reserve: 1000,
        }
    }
}

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullOutcome {
    /// Read every changed order.
    Completed,
    /// Another pull of this integration holds the lease; nothing done.
    Busy,
    /// Stopped before the deadline with the cursor saved; the next run resumes.
    StoppedAtDeadline,
    /// Stopped to keep the daily CIN7 budget's reserve for write-backs.
    BudgetReserve,
    /// Stopped by an error; the cursor is saved as far as orders were handled.
    Failed,
}

/// What one pull did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullSummary {
    pub integration: String,
    pub outcome: PullOutcome,
    pub seen: usize,
    pub published: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub conflicts: usize,
    pub failed: usize,
    pub skipped: BTreeMap<String, usize>,
    pub cin7_calls: u64,
    pub gss_calls: u64,
    /// Where the next pull reads from (before the overlap), as CIN7 wrote it.
    pub cursor: Option<Timestamp>,
    /// Consignments the reconcile queued: webhooks GoSweetSpot never delivered.
    pub reconciled: usize,
    /// Why the reconcile failed, when it did (the next pull retries it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a pull could not even start or record.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What a pull needs.
pub struct PullDeps<'a> {
    pub store: &'a Store,
    pub cin7: &'a dyn OrderSource,
    pub gss: &'a dyn OrderSink,
    /// GoSweetSpot's changed shipments, for the reconcile (the integration's whole shared
    /// window, not the pull's share of it).
    pub feed: &'a dyn ShipmentFeed,
    /// The write-back queue the reconcile queues on.
    pub queue: &'a dyn JobQueue,
    pub now: DateTime<Utc>,
    /// CIN7 and GoSweetSpot calls so far (read for the summary).
    pub calls: &'a (dyn Fn() -> (u64, u64) + Send + Sync),
}

struct PendingPublish {
    cin7_id: i64,
    reference: Option<String>,
    modified: Option<Timestamp>,
    decision_update: bool,
    mapped: Box<super::mapping::Mapped>,
    warnings: Vec<String>,
}

struct PendingDelete {
    cin7_id: i64,
    packing_slip: String,
    skip: Skip,
}

struct Run<'a> {
    deps: PullDeps<'a>,
    settings: &'a IntegrationSettings,
    summary: PullSummary,
    pending: Vec<PendingPublish>,
    deletes: Vec<PendingDelete>,
}

impl Run<'_> {
    fn id(&self) -> &str {
        &self.settings.id
    }

    fn skipped(&mut self, reason: &str) {
        *self.summary.skipped.entry(reason.to_string()).or_default() += 1;
    }

    async fn record_skip(&mut self, row: &OrderRow, skip: Skip) -> Result<(), StoreError> {
        let Some(id) = row.id() else {
            tracing::warn!(integration = %self.id(), reason = skip.reason.code(), detail = ?skip.detail, "order without an id skipped");
            self.skipped(skip.reason.code());
            return Ok(());
        };
        let (reference, modified) = match row {
            OrderRow::Parsed(o) => (o.reference.clone(), o.modified_date),
            OrderRow::Unparseable(u) => (u.reference.clone(), u.modified_date),
        };
        update_record(self.deps.store, &self.settings.id, id, |r, now| {
            r.reference = reference.clone().or(r.reference.take());
            r.modified_date = modified.map(|m| m.instant()).or(r.modified_date);
            r.transition(
                OrderState::Skipped,
                skip.reason.code(),
                skip.detail.clone(),
                now,
            );
        })
        .await?;
        self.skipped(skip.reason.code());
        Ok(())
    }

    async fn flush_publishes(&mut self, n: usize) -> Result<(), PullError> {
        let batch: Vec<PendingPublish> = self.pending.drain(..n.min(self.pending.len())).collect();
        if batch.is_empty() {
            return Ok(());
        }
        // The packing slips are indexed first, so that a consignment webhook arriving before
        // the publish is recorded (or after a crash in between) still finds its order.
        for p in batch.iter().filter(|p| !p.decision_update) {
            self.deps
                .store
                .index_packing_slip(&self.settings.id, &p.mapped.order.packingslipno, p.cin7_id)
                .await?;
        }
        let orders: Vec<CustomerOrder> = batch.iter().map(|p| p.mapped.order.clone()).collect();
        // On an error nothing is recorded: the orders are re-read and published next run.
        let results = self.publish_isolating(&orders).await?;
        for (p, result) in batch.iter().zip(results) {
            let (state, reason, detail) = if result.result {
                if p.decision_update {
                    (OrderState::Published, "republished", None)
                } else {
                    (OrderState::Published, "published", None)
                }
            } else if result.already_processed() {
                (
                    OrderState::Conflict,
                    "already_processed",
                    result.msg.clone(),
                )
            } else {
                (OrderState::Failed, "gss_rejected", result.msg.clone())
            };
            let record = update_record(self.deps.store, &self.settings.id, p.cin7_id, |r, now| {
                r.reference = p.reference.clone();
                r.modified_date = p.modified.map(|m| m.instant());
                r.packing_slip = Some(p.mapped.order.packingslipno.clone());
                if !p.decision_update {
                    // Indexed before the PUT above.
                    r.indexed_slip = r.packing_slip.clone();
                }
                if state == OrderState::Published {
                    r.content_hash = Some(p.mapped.content_hash.clone());
                }
                r.truncations = p.mapped.truncations.clone();
                r.warnings = p.warnings.clone();
                // A consignment GoSweetSpot reported meanwhile (the webhook came early) is not
                // undone: the order is ticketed, not in conflict.
                if r.consignments.is_empty() {
                    r.transition(state, reason, detail.clone(), now);
                }
            })
            .await?;
            let counted = match (record.consignments.is_empty(), state, p.decision_update) {
                (false, _, _) => "ticketed",
                (true, OrderState::Published, true) => {
                    self.summary.updated += 1;
                    "republished"
                }
                (true, OrderState::Published, false) => {
                    self.summary.published += 1;
                    "published"
                }
                (true, OrderState::Conflict, _) => {
                    self.summary.conflicts += 1;
                    reason
                }
                (true, _, _) => {
                    self.summary.failed += 1;
                    reason
                }
            };
            tracing::info!(integration = %self.settings.id, reference = ?p.reference, packing_slip = %p.mapped.order.packingslipno, outcome = counted, detail = ?detail, "publish result");
        }
        Ok(())
    }

    /// Publishes orders, one call for all of them when GoSweetSpot takes it. When it refuses a
    /// whole call with 400 (one bad order fails its batch), the batch is halved until each
    /// refused order is alone, and that order's result carries GoSweetSpot's message; the
    /// others are published. Results are in the order given.
    async fn publish_isolating(
        &self,
        orders: &[CustomerOrder],
    ) -> Result<Vec<PublishResult>, PullError> {
        let mut results: Vec<Option<PublishResult>> = vec![None; orders.len()];
        let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
        parts.push(0..orders.len());
        while let Some(part) = parts.pop() {
            match self.deps.gss.publish(&orders[part.clone()]).await {
                Ok(answered) => {
                    for (slot, result) in results[part].iter_mut().zip(answered) {
                        *slot = Some(result);
                    }
                }
                Err(ApiError::BatchRefused { .. }) if part.len() > 1 => {
                    let middle = part.start + part.len() / 2;
                    tracing::info!(integration = %self.settings.id, orders = part.len(), "GoSweetSpot refused a whole batch (HTTP 400); halving it to find the order it refuses");
                    parts.push(middle..part.end);
                    parts.push(part.start..middle);
                }
                Err(
                    ApiError::Rejected {
                        status: 400,
                        detail,
                        ..
                    }
                    | ApiError::BatchRefused { detail, .. },
                ) => {
                    let order = &orders[part.start];
                    tracing::warn!(integration = %self.settings.id, packing_slip = %order.packingslipno, "GoSweetSpot refused this order; it is set aside");
                    results[part.start] = Some(PublishResult {
                        packingslipno: Some(order.packingslipno.clone()),
                        result: false,
                        msg: Some(gss_error_text(&detail)),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(results
            .into_iter()
            .zip(orders)
            .map(|(r, o)| {
                r.unwrap_or_else(|| PublishResult {
                    packingslipno: Some(o.packingslipno.clone()),
                    result: false,
                    msg: Some("no result from GoSweetSpot".into()),
                })
            })
            .collect())
    }

    async fn flush_deletes(&mut self, n: usize) -> Result<(), PullError> {
        let batch: Vec<PendingDelete> = self.deletes.drain(..n.min(self.deletes.len())).collect();
        if batch.is_empty() {
            return Ok(());
        }
        let slips: Vec<String> = batch.iter().map(|d| d.packing_slip.clone()).collect();
        let outcomes = self.deps.gss.delete(&slips).await?;
        for d in &batch {
            let outcome = outcomes
                .get(&d.packing_slip)
                .cloned()
                .unwrap_or(DeleteOutcome::Other(
                    "no answer for this packing slip".into(),
                ));
            let (state, reason, detail) = match &outcome {
                DeleteOutcome::Deleted
                | DeleteOutcome::AlreadyDeleted
                | DeleteOutcome::InvalidPackingSlip => (
                    OrderState::Deleted,
                    d.skip.reason.code().to_string(),
                    d.skip.detail.clone(),
                ),
                DeleteOutcome::AlreadyProcessed => (
                    OrderState::Conflict,
                    "already_processed".to_string(),
                    Some(format!(
                        "left the gates ({}) after GoSweetSpot ticketed it",
                        d.skip.reason.code()
                    )),
                ),
                DeleteOutcome::Other(msg) => (
                    OrderState::Failed,
                    "gss_delete_failed".to_string(),
                    Some(msg.clone()),
                ),
            };
            let record = update_record(self.deps.store, &self.settings.id, d.cin7_id, |r, now| {
                // Ticketed meanwhile: GoSweetSpot kept it, and the write-back is on its way.
                if r.consignments.is_empty() {
                    r.transition(state, &reason, detail.clone(), now);
                }
            })
            .await?;
            if record.consignments.is_empty() {
                match state {
                    OrderState::Deleted => self.summary.deleted += 1,
                    OrderState::Conflict => self.summary.conflicts += 1,
                    _ => self.summary.failed += 1,
                }
            }
        }
        Ok(())
    }

    fn time_is_short(&self, options: &PullOptions) -> bool {
        options
            .deadline
            .is_some_and(|d| d.saturating_duration_since(Instant::now()) < options.margin)
    }

    async fn handle_row(&mut self, row: OrderRow) -> Result<(), PullError> {
        self.summary.seen += 1;
        let existing = match row.id() {
            Some(id) => self.deps.store.get_order(&self.settings.id, id).await?,
            None => None,
        };
        match decide(&row, existing.as_ref(), self.settings, self.deps.now) {
            Decision::Skip(skip) => self.record_skip(&row, skip).await?,
            Decision::Unchanged => self.summary.unchanged += 1,
            Decision::Settled => {}
            Decision::Delete { skip, packing_slip } => {
                if let Some(cin7_id) = row.id() {
                    self.deletes.retain(|d| d.cin7_id != cin7_id);
                    self.pending.retain(|p| p.cin7_id != cin7_id);
                    self.deletes.push(PendingDelete {
                        cin7_id,
                        packing_slip,
                        skip,
                    });
                }
            }
            Decision::Publish {
                mapped,
                warnings,
                update,
            } => {
                if let OrderRow::Parsed(order) = &row {
                    self.pending.retain(|p| p.cin7_id != order.id);
                    self.deletes.retain(|d| d.cin7_id != order.id);
                    self.pending.push(PendingPublish {
                        cin7_id: order.id,
                        reference: order.reference.clone(),
                        modified: order.modified_date,
                        decision_update: update,
                        mapped,
                        warnings,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Runs one pull of one integration.
pub async fn run_pull(
    deps: PullDeps<'_>,
    settings: &IntegrationSettings,
    options: &PullOptions,
) -> Result<PullSummary, PullError> {
    let store = deps.store;
    let id = settings.id.clone();
    let summary = PullSummary {
        integration: id.clone(),
        outcome: PullOutcome::Completed,
        seen: 0,
        published: 0,
        updated: 0,
        unchanged: 0,
        deleted: 0,
        conflicts: 0,
        failed: 0,
        skipped: BTreeMap::new(),
        cin7_calls: 0,
        gss_calls: 0,
        cursor: None,
        reconciled: 0,
        reconcile_error: None,
        error: None,
    };
    if !store
        .acquire_lease(&id, "pull", &options.owner, options.lease_ttl)
        .await?
    {
        tracing::info!(integration = %id, "another pull holds the lease");
        return Ok(PullSummary {
            outcome: PullOutcome::Busy,
            ..summary
        });
    }
    let (calls_before, _) = (deps.calls)();
    let cursor = store.get_cursor(&id).await?;
    let since = reads_from(cursor.as_ref(), settings, deps.now);
    let mut run = Run {
        deps,
        settings,
        summary,
        pending: Vec::new(),
        deletes: Vec::new(),
    };
    let outcome = pages(&mut run, options, since).await;
    let handled_through = match &outcome {
        Ok(through) => *through,
        Err((through, _)) => *through,
    };
    let new_cursor = match (handled_through, &cursor) {
        (Some(t), Some(c)) if t.instant() <= c.modified_since.instant() => None,
        (Some(t), _) => Some(t),
        (None, _) => None,
    };
    if let Some(t) = new_cursor {
        store
            .put_cursor(
                &id,
                &PullCursor {
                    modified_since: t,
                    saved_at: run.deps.now,
                },
            )
            .await?;
    }
    // The backstop for lost webhooks, whatever became of the publishing (not when the deadline
    // is near: the next run reconciles the same window).
    if !matches!(
        outcome,
        Err((_, Stop::Outcome(PullOutcome::StoppedAtDeadline)))
    ) {
        let reconciled = reconcile(
            ReconcileDeps {
                store,
                queue: run.deps.queue,
                feed: run.deps.feed,
                now: run.deps.now,
            },
            settings,
            ReconcileOptions::default(),
        )
        .await;
        match reconciled {
            Ok(r) => run.summary.reconciled = r.queued.len(),
            Err(e) => {
                tracing::warn!(integration = %id, error = %e, "reconcile failed; the next pull retries it");
                run.summary.reconcile_error = Some(e.to_string());
            }
        }
    }
    let (cin7_calls, gss_calls) = (run.deps.calls)();
    let cin7_calls_now = cin7_calls.saturating_sub(calls_before);
    if cin7_calls_now > 0 {
        store.count_calls(&id, cin7_calls_now as i64).await?;
    }
    run.summary.cin7_calls = cin7_calls;
    run.summary.gss_calls = gss_calls;
    run.summary.cursor = new_cursor.or(cursor.map(|c| c.modified_since));
    match outcome {
        Ok(_) => {}
        Err((_, Stop::Outcome(o))) => run.summary.outcome = o,
        Err((_, Stop::Error(e))) => {
            tracing::error!(integration = %id, error = %e, "pull stopped by an error");
            run.summary.outcome = PullOutcome::Failed;
            run.summary.error = Some(e.to_string());
        }
    }
    store.release_lease(&id, "pull", &options.owner).await?;
    Ok(run.summary)
}

enum Stop {
    Outcome(PullOutcome),
    Error(PullError),
}

/// Where a pull reads from: the cursor less `import.overlap_seconds`, in the form CIN7 wrote
/// the cursor, or `import.start_from` (default: seven days before `now`) for a first pull.
pub fn reads_from(
    cursor: Option<&PullCursor>,
    settings: &IntegrationSettings,
    now: DateTime<Utc>,
) -> Timestamp {
    match cursor {
        Some(c) => c
            .modified_since
            .earlier_by(chrono::Duration::seconds(i64::from(
                settings.import.overlap_seconds,
            ))),
        None => Timestamp::utc(
            settings
                .import
                .start_from
                .unwrap_or(now - chrono::Duration::days(7)),
        ),
    }
}

/// Where a list page starts.
///
/// Pages are read by key, not by offset: the next page asks for the orders modified at or after
/// the second of the last order read, less the orders of that second already read. Offsets are
/// not stable while a run pages: an order modified meanwhile (dispatched by the write-back, or
/// edited by the merchant) moves to the end of the list, every later order moves one place
/// forward, and the next page by offset would skip one of them — for good, since the cursor
/// moves past it. When the page ends on the filter's own second, or the `id<>…` exclusions of
/// the orders at the last second would make the request URL too long for CIN7's server, the
/// next page is the next page of the same filter (by offset, as before: only a modification
/// during such a run of orders on one second could shift it).
///
/// Every `modifiedDate>=` value is written in the form CIN7 wrote the times it returned (see
/// [`crate::timestamp`]). When a page shows times at a smaller UTC offset than the value was
/// written in (the clocks went back, or the cursor was saved in another form), the same start
/// is asked again written at that offset: were CIN7 to compare local wall-clock times, the
/// repeated hour after the change would otherwise be skipped. Re-read orders cost no
/// GoSweetSpot call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageStart {
    since: Timestamp,
    excluded: Vec<i64>,
    page: u32,
}

impl PageStart {
    fn new(since: Timestamp) -> Self {
        Self {
            since: since.whole_second(),
            excluded: Vec::new(),
            page: 1,
        }
    }

    fn query(&self) -> ListQuery {
        ListQuery {
            filter: Where::new()
                .modified_since(&self.since)
                .excluding_ids(&self.excluded),
            order: Some(("modifiedDate", Direction::Asc)),
            fields: SALES_ORDER_FIELDS.to_vec(),
            page: self.page,
            rows: MAX_ROWS,
        }
    }

    /// Where the page after a full page of `rows` (id, `modifiedDate`) starts; `fits` says
    /// whether a start's request may be sent.
    fn after(
        &self,
        rows: &[(Option<i64>, Option<Timestamp>)],
        fits: impl Fn(&PageStart) -> bool,
    ) -> Self {
        let last = rows.last().and_then(|(_, m)| m.map(|t| t.whole_second()));
        if let Some(last) = last.filter(|l| l.instant() > self.since.instant()) {
            let at_last: Option<Vec<i64>> = rows
                .iter()
                .filter(|(_, m)| m.map(|t| t.whole_second().instant()) == Some(last.instant()))
                .map(|(id, _)| *id)
                .collect();
            if let Some(excluded) = at_last {
                let keyed = Self {
                    since: last,
                    excluded,
                    page: 1,
                };
                if fits(&keyed) {
                    return keyed;
                }
            }
        }
        Self {
            page: self.page + 1,
            ..self.clone()
        }
    }

    /// The same start written at the smallest UTC offset among `rows`, when that is smaller
    /// than the one it was written at (see the type's documentation).
    fn at_smaller_offset(&self, rows: &[(Option<i64>, Option<Timestamp>)]) -> Option<Self> {
        let written = self.since.form().zone.offset_seconds();
        let smallest = rows
            .iter()
            .filter_map(|(_, m)| *m)
            .min_by_key(|t| t.form().zone.offset_seconds())?;
        (smallest.form().zone.offset_seconds() < written).then(|| Self {
            since: self.since.in_form(smallest.form()),
            excluded: self.excluded.clone(),
            page: 1,
        })
    }
}

/// Pages through CIN7 from `since`; returns how far orders are durably handled.
async fn pages(
    run: &mut Run<'_>,
    options: &PullOptions,
    since: Timestamp,
) -> Result<Option<Timestamp>, (Option<Timestamp>, Stop)> {
    let mut handled_through: Option<Timestamp> = None;
    let mut page_max: Option<Timestamp> = None;
    let mut start = PageStart::new(since);
    loop {
        if run.time_is_short(options) {
            return Err((
                handled_through,
                Stop::Outcome(PullOutcome::StoppedAtDeadline),
            ));
        }
        let used_today = match run.deps.store.calls_today(&run.settings.id).await {
            Ok(n) => n + (run.deps.calls)().0 as i64,
            Err(e) => return Err((handled_through, Stop::Error(e.into()))),
        };
        if used_today >= options.daily_budget - options.write_back_reserve {
            tracing::warn!(integration = %run.settings.id, used_today, "daily CIN7 budget reserve reached");
            return Err((handled_through, Stop::Outcome(PullOutcome::BudgetReserve)));
        }
        let rows = match run.deps.cin7.list_page(&start.query()).await {
            Ok(rows) => rows,
            Err(e) => return Err((handled_through, Stop::Error(e.into()))),
        };
        let short = rows.len() < MAX_ROWS as usize;
        let keys: Vec<(Option<i64>, Option<Timestamp>)> =
            rows.iter().map(|r| (r.id(), r.modified_date())).collect();
        for row in rows {
            if let Some(m) = row.modified_date() {
                page_max = Some(match page_max {
                    Some(p) if p.instant() >= m.instant() => p,
                    _ => m,
                });
            }
            if let Err(e) = run.handle_row(row).await {
                return Err((handled_through, Stop::Error(e)));
            }
        }
        while run.pending.len() >= MAX_ORDERS_PER_CALL {
            if let Err(e) = run.flush_publishes(MAX_ORDERS_PER_CALL).await {
                return Err((handled_through, Stop::Error(e)));
            }
        }
        while run.deletes.len() >= MAX_ORDERS_PER_CALL {
            if let Err(e) = run.flush_deletes(MAX_ORDERS_PER_CALL).await {
                return Err((handled_through, Stop::Error(e)));
            }
        }
        if run.pending.is_empty() && run.deletes.is_empty() {
            handled_through = page_max;
        }
        if let Some(again) = start
            .at_smaller_offset(&keys)
            .filter(|s| run.deps.cin7.fits(&s.query()))
        {
            tracing::info!(integration = %run.settings.id, from = %again.since, "CIN7 wrote times at a smaller offset than asked: reading from the same point at that offset");
            start = again;
            continue;
        }
        if short {
            break;
        }
        start = start.after(&keys, |s| run.deps.cin7.fits(&s.query()));
    }
    if let Err(e) = run.flush_publishes(MAX_ORDERS_PER_CALL).await {
        return Err((handled_through, Stop::Error(e)));
    }
    if let Err(e) = run.flush_deletes(MAX_ORDERS_PER_CALL).await {
        return Err((handled_through, Stop::Error(e)));
    }
    Ok(page_max)
}

#[cfg(test)]
mod page_tests {
    use super::*;

    /// 2026-11-20 22:00:`s`.`ms` NZDT, written as CIN7's samples write it.
    fn t(s: u32, ms: u32) -> Option<Timestamp> {
        Timestamp::parse(&format!("2026-11-20T22:00:{s:02}.{ms:03}000+13:00"))
            .ok()
            .flatten()
    }

    fn always(_: &PageStart) -> bool {
        true
    }

    #[test]
    fn the_next_page_starts_at_the_last_second_less_what_was_read_there() {
        let start = PageStart::new(t(0, 0).unwrap());
        let rows = [
            (Some(1), t(1, 0)),
            (Some(2), t(2, 100)),
            (Some(3), t(2, 900)),
        ];
        let next = start.after(&rows, always);
        assert_eq!(next.since, t(2, 0).unwrap());
        assert_eq!(next.excluded, vec![2, 3]);
        assert_eq!(next.page, 1);
        assert_eq!(
            next.query().filter.build().unwrap(),
            "modifiedDate>='2026-11-20T22:00:02.000000+13:00' AND id<>2 AND id<>3",
            "written in the form CIN7 wrote"
        );
    }

    #[test]
    fn a_page_on_the_filters_own_second_or_a_url_too_long_pages_by_offset() {
        let start = PageStart::new(t(5, 0).unwrap());
        let same = [(Some(1), t(5, 0)), (Some(2), t(5, 500))];
        let next = start.after(&same, always);
        assert_eq!((next.since, next.page), (start.since, 2));
        assert!(next.excluded.is_empty());

        let ties: Vec<_> = (0..120).map(|id| (Some(id), t(9, 0))).collect();
        let next = start.after(&ties, |s| s.excluded.len() <= 100);
        assert_eq!((next.since, next.page), (start.since, 2));
        assert!(next.excluded.is_empty());

        let unreadable = [(Some(1), t(6, 0)), (None, t(7, 0))];
        let next = start.after(&unreadable, always);
        assert_eq!(
            (next.since, next.page),
            (start.since, 2),
            "an id missing at the last second"
        );
    }

    #[test]
    fn times_at_a_smaller_offset_ask_the_same_start_again_at_that_offset() {
        let start = PageStart::new(t(0, 0).unwrap());
        // After the clocks went back an hour (NZDT → NZST).
        let standard = Timestamp::parse("2026-11-20T21:30:00.000000+12:00")
            .unwrap()
            .unwrap();
        let rows = [(Some(1), t(1, 0)), (Some(2), Some(standard))];
        let again = start.at_smaller_offset(&rows).unwrap();
        assert_eq!(again.since.instant(), start.since.instant());
        assert_eq!(again.since.text(), "2026-11-20T21:00:00.000000+12:00");
        assert_eq!(again.page, 1);
        assert_eq!(again.at_smaller_offset(&rows), None, "asked once");
        assert_eq!(start.at_smaller_offset(&rows[..1]), None);
        let utc = PageStart::new(Timestamp::utc(start.since.instant()));
        assert_eq!(
            utc.at_smaller_offset(&rows),
            None,
            "+13:00 is not smaller than Z"
        );
    }
}

#[cfg(test)]
mod shared_sink_tests {
    use super::*;
    use crate::rate_limit::{Window, WindowLimiter};
    use std::sync::Mutex;

    /// Records when each call reached it.
    struct Clock(Instant, Mutex<Vec<Duration>>);

    #[async_trait]
    impl OrderSink for Clock {
        async fn publish(&self, _: &[CustomerOrder]) -> Result<Vec<PublishResult>, ApiError> {
            self.1
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.0.elapsed());
            Ok(Vec::new())
        }
        async fn delete(&self, _: &[String]) -> Result<BTreeMap<String, DeleteOutcome>, ApiError> {
            self.1
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.0.elapsed());
            Ok(BTreeMap::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_and_deletes_wait_for_the_pulls_share() {
        let sink = Clock(Instant::now(), Mutex::new(Vec::new()));
        let share = WindowLimiter::new(vec![Window::new(2, Duration::from_secs(1))]);
        let shared = SharedSink {
            sink: &sink,
            share: &share,
        };
        for _ in 0..3 {
            shared.publish(&[]).await.unwrap();
            shared.delete(&[]).await.unwrap();
        }
        let secs: Vec<u64> = sink
            .1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(secs, [0, 0, 1, 1, 2, 2]);
    }
}
