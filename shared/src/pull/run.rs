//! The pull use-case: read changed CIN7 orders page by page from the cursor, decide each,
//! publish and delete in GoSweetSpot in batches of 50, record every outcome, and move the
//! cursor only past orders that are durably handled.

use super::batches::{PendingDelete, PendingPublish};
use super::decide::{Decision, decide};
use super::gates::Skip;
use super::paging::{Next, PageStart, first_page, keys};
use super::ports::{OrderSink, OrderSource};
use super::reconcile::{ReconcileDeps, ReconcileOptions, ShipmentFeed, reconcile};
use crate::cin7::model::OrderRow;
use crate::cin7::query::MAX_ROWS;
use crate::clock::Clock;
use crate::gss::model::MAX_ORDERS_PER_CALL;
use crate::http::ApiError;
use crate::queue::JobQueue;
use crate::settings::IntegrationSettings;
use crate::store::{PullCursor, PullStore, StoreError, update_record};
use crate::timestamp::Timestamp;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

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
    /// The most this run may read before it stops with [`PullOutcome::Sliced`] (its cursor
    /// saved where it stopped, for a continuation); `None` reads to the end.
    pub slice: Option<Slice>,
    /// Whether this run reconciles (the scheduled worker reconciles at most every
    /// `PULL_RECONCILE_SECONDS`; a direct pull always does).
    pub reconcile: bool,
}

/// The share of time and pages one pull message may take, so that one merchant's backlog
/// never holds the pull workers for long: when it is used up with more to read, the run
/// publishes what it has read and stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// CIN7 list pages.
    pub pages: u32,
    /// When no further page is started.
    pub until: Instant,
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
            slice: None,
            reconcile: true,
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
    /// Used up its [`Slice`] with more to read: what it read is published, and the cursor
    /// says where a continuation resumes.
    Sliced,
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
    /// When this run's reconcile completed (none when it did not run or failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<DateTime<Utc>>,
    /// Of each order this run published, how long after CIN7 last modified it (seconds).
    #[serde(skip)]
    pub freshness_seconds: Vec<i64>,
    /// The integration's CIN7 calls today (UTC) as counted after this run's, when it made any
    /// (what the schedule's budget reads, without reading the count again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cin7_calls_today: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PullSummary {
    /// A summary of nothing done yet, ending in `outcome`.
    pub fn of(integration: &str, outcome: PullOutcome) -> Self {
        Self {
            integration: integration.to_string(),
            outcome,
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
            reconciled_at: None,
            freshness_seconds: Vec::new(),
            cin7_calls_today: None,
            error: None,
        }
    }
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
    pub store: &'a dyn PullStore,
    pub cin7: &'a dyn OrderSource,
    pub gss: &'a dyn OrderSink,
    /// GoSweetSpot's changed shipments, for the reconcile (the integration's whole shared
    /// window, not the pull's share of it).
    pub feed: &'a dyn ShipmentFeed,
    /// The write-back queue the reconcile queues on.
    pub queue: &'a dyn JobQueue,
    /// Tells the time: the run's, and each record change's.
    pub clock: &'a dyn Clock,
    /// CIN7 and GoSweetSpot calls so far (read for the summary).
    pub calls: &'a (dyn Fn() -> (u64, u64) + Send + Sync),
}

/// One pull under way: what it has read and not yet published or deleted.
pub(super) struct Run<'a> {
    pub(super) deps: PullDeps<'a>,
    /// When the run started.
    pub(super) now: DateTime<Utc>,
    pub(super) settings: &'a IntegrationSettings,
    pub(super) summary: PullSummary,
    pub(super) pending: Vec<PendingPublish>,
    pub(super) deletes: Vec<PendingDelete>,
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
        let modified = modified.map(|m| m.instant());
        update_record(
            self.deps.store,
            self.deps.clock,
            &self.settings.id,
            id,
            |r, now| {
                r.skipped(
                    reference.clone(),
                    modified,
                    skip.reason.code(),
                    skip.detail.clone(),
                    now,
                )
            },
        )
        .await?;
        self.skipped(skip.reason.code());
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
        match decide(&row, existing.as_ref(), self.settings, self.now) {
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
    let summary = PullSummary::of(&id, PullOutcome::Completed);
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
    let now = deps.clock.now();
    let cursor = store.get_cursor(&id).await?;
    let first = first_page(cursor.as_ref(), settings, now);
    let mut run = Run {
        deps,
        now,
        settings,
        summary,
        pending: Vec::new(),
        deletes: Vec::new(),
    };
    let outcome = pages(&mut run, options, first).await;
    let handled_through = match &outcome {
        Ok(through) => *through,
        Err((through, _)) => *through,
    };
    let new_cursor = match (handled_through, &cursor) {
        (Some(t), Some(c)) if t.instant() <= c.modified_since.instant() => None,
        (Some(t), _) => Some(t),
        (None, _) => None,
    };
    let old_resume = cursor.as_ref().and_then(|c| c.resume.clone());
    // A slice resumes where it stopped; a run read to the end, or one that moved its cursor
    // on, reads next from the cursor; one that stopped otherwise keeps what it had.
    let resume = match &outcome {
        Err((_, Stop::Slice(next))) => Some(next.clone()),
        Ok(_) => None,
        Err(_) if new_cursor.is_some() => None,
        Err(_) => old_resume.clone(),
    };
    let modified_since = new_cursor.or(cursor.as_ref().map(|c| c.modified_since));
    if let Some(t) = modified_since
        && (new_cursor.is_some() || resume != old_resume)
    {
        store
            .put_cursor(
                &id,
                &PullCursor {
                    modified_since: t,
                    saved_at: now,
                    resume,
                },
            )
            .await?;
    }
    // The backstop for lost webhooks, whatever became of the publishing (not when the deadline
    // is near, nor after a slice: the next run reconciles the same window).
    if options.reconcile
        && !matches!(
            outcome,
            Err((
                _,
                Stop::Outcome(PullOutcome::StoppedAtDeadline) | Stop::Slice(_)
            ))
        )
    {
        let reconciled = reconcile(
            ReconcileDeps {
                store,
                queue: run.deps.queue,
                feed: run.deps.feed,
                clock: run.deps.clock,
            },
            settings,
            ReconcileOptions::default(),
        )
        .await;
        match reconciled {
            Ok(r) => {
                run.summary.reconciled = r.queued.len();
                run.summary.reconciled_at = Some(r.to);
            }
            Err(e) => {
                tracing::warn!(integration = %id, error = %e, "reconcile failed; the next pull retries it");
                run.summary.reconcile_error = Some(e.to_string());
            }
        }
    }
    let (cin7_calls, gss_calls) = (run.deps.calls)();
    let cin7_calls_now = cin7_calls.saturating_sub(calls_before);
    if cin7_calls_now > 0 {
        run.summary.cin7_calls_today = Some(store.count_calls(&id, cin7_calls_now as i64).await?);
    }
    run.summary.cin7_calls = cin7_calls;
    run.summary.gss_calls = gss_calls;
    run.summary.cursor = modified_since;
    match outcome {
        Ok(_) => {}
        Err((_, Stop::Outcome(o))) => run.summary.outcome = o,
        Err((_, Stop::Slice(_))) => run.summary.outcome = PullOutcome::Sliced,
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
    /// The slice is used up; the next page would start here.
    Slice(PageStart),
    Error(PullError),
}

/// Pages through CIN7 from `start`; returns how far orders are durably handled.
async fn pages(
    run: &mut Run<'_>,
    options: &PullOptions,
    mut start: PageStart,
) -> Result<Option<Timestamp>, (Option<Timestamp>, Stop)> {
    let mut handled_through: Option<Timestamp> = None;
    let mut page_max: Option<Timestamp> = None;
    let mut pages_read = 0u32;
    let fields = run.settings.import.order_fields();
    loop {
        if run.time_is_short(options) {
            return Err((
                handled_through,
                Stop::Outcome(PullOutcome::StoppedAtDeadline),
            ));
        }
        if let Some(slice) = options.slice
            && pages_read > 0
            && (pages_read >= slice.pages || Instant::now() >= slice.until)
        {
            // What was read is published first, so the continuation starts clean.
            for flushed in [
                run.flush_publishes(MAX_ORDERS_PER_CALL).await,
                run.flush_deletes(MAX_ORDERS_PER_CALL).await,
            ] {
                if let Err(e) = flushed {
                    return Err((handled_through, Stop::Error(e)));
                }
            }
            return Err((page_max, Stop::Slice(start)));
        }
        let used_today = match run.deps.store.calls_today(&run.settings.id).await {
            Ok(n) => n + (run.deps.calls)().0 as i64,
            Err(e) => return Err((handled_through, Stop::Error(e.into()))),
        };
        if used_today >= options.daily_budget - options.write_back_reserve {
            tracing::warn!(integration = %run.settings.id, used_today, "daily CIN7 budget reserve reached");
            return Err((handled_through, Stop::Outcome(PullOutcome::BudgetReserve)));
        }
        let rows = match run.deps.cin7.list_page(&start.query(&fields)).await {
            Ok(rows) => rows,
            Err(e) => return Err((handled_through, Stop::Error(e.into()))),
        };
        pages_read += 1;
        let short = rows.len() < MAX_ROWS as usize;
        let keys = keys(&rows);
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
        start = match start.next(&keys, !short, |s| run.deps.cin7.fits(&s.query(&fields))) {
            Next::AtSmallerOffset(again) => {
                tracing::info!(integration = %run.settings.id, from = %again.since, "CIN7 wrote times at a smaller offset than asked: reading from the same point at that offset");
                again
            }
            Next::After(next) => next,
            Next::Done => break,
        };
    }
    if let Err(e) = run.flush_publishes(MAX_ORDERS_PER_CALL).await {
        return Err((handled_through, Stop::Error(e)));
    }
    if let Err(e) = run.flush_deletes(MAX_ORDERS_PER_CALL).await {
        return Err((handled_through, Stop::Error(e)));
    }
    Ok(page_max)
}
