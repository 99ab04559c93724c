//! The backstop for lost webhooks: every consignment GoSweetSpot changed since the last
//! reconcile, of an order this integration published and not yet seen, is queued for
//! write-back exactly as the webhook would queue it (see [`crate::sightings`]), marked as
//! brought by the reconcile.
//!
//! GoSweetSpot drops a webhook delivery after 10 failed retries (≈ 9 hours) and advises polling
//! as the backstop: an outage of our API, a wrong secret for a day or a webhook never configured
//! would otherwise leave orders undispatched in CIN7. One `GET /api/shipments` window a run
//! (`lastupdateminutc` = the last reconcile less `import.overlap_seconds`, `lastupdatemaxutc` =
//! now; pages of 250): an idle reconcile costs one GoSweetSpot call, N changed shipments
//! ⌈N/250⌉. The cursor moves only once the window's jobs are queued; a first reconcile starts at
//! `import.start_from` (default: seven days back). It is saved when a reconcile queued something
//! and otherwise at most every [`CURSOR_EVERY`]: in between the window grows from the saved
//! cursor, and what it lists again was seen already (a duplicate, skipped by a read) — a write
//! a poll saved for a read of each recently changed shipment.

use crate::clock::Clock;
use crate::gss::GssClient;
use crate::gss::model::Shipment;
use crate::http::ApiError;
use crate::queue::JobQueue;
use crate::settings::IntegrationSettings;
use crate::sightings::{
    Ignored, Queueing, Sighting, SightingDeps, SightingError, SightingSummary, Source,
    count_ignored, judge, queue_new,
};
use crate::store::{ReconcileCursor, ReconcileStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The shipments GoSweetSpot changed in a window (the reconcile's view of the GSS client).
#[async_trait]
pub trait ShipmentFeed: Send + Sync {
    /// Every shipment changed from `from` to `to` (UTC).
    async fn changed(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Shipment>, ApiError>;
}

#[async_trait]
impl ShipmentFeed for GssClient {
    async fn changed(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Shipment>, ApiError> {
        self.changed_shipments(from, to).await
    }
}

/// What a reconcile needs.
#[derive(Clone, Copy)]
pub struct ReconcileDeps<'a> {
    /// Orders by packing slip, sightings, records, the reconcile cursor.
    pub store: &'a dyn ReconcileStore,
    /// The write-back queue.
    pub queue: &'a dyn JobQueue,
    /// GoSweetSpot's changed shipments (through the integration's shared window).
    pub feed: &'a dyn ShipmentFeed,
    /// Tells the end of the window.
    pub clock: &'a dyn Clock,
}

/// How a reconcile runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReconcileOptions {
    /// Start here instead of at the cursor (a backfill after an outage).
    pub since: Option<DateTime<Utc>>,
    /// Say what would be queued; queue nothing, move no cursor.
    pub dry_run: bool,
}

/// What a reconcile found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileSummary {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Shipments GoSweetSpot listed in the window.
    pub shipments: usize,
    /// Consignments queued (or, in a dry run, that would be): each one a webhook we missed.
    pub queued: Vec<String>,
    /// Already queued (by the webhook, or an earlier reconcile).
    pub duplicates: usize,
    /// Shipments not ours or not writable, by reason.
    pub ignored_reasons: BTreeMap<String, usize>,
    pub dry_run: bool,
}

/// Why a reconcile did not finish; its cursor stays where it was.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Sighting(#[from] SightingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a reconcile of `settings` starts: the cursor less the overlap, or `import.start_from`
/// (default seven days before `now`).
pub fn starts_at(
    cursor: Option<&ReconcileCursor>,
    settings: &IntegrationSettings,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match cursor {
        Some(c) => {
            c.through - chrono::Duration::seconds(i64::from(settings.import.overlap_seconds))
        }
        None => settings
            .import
            .start_from
            .unwrap_or(now - chrono::Duration::days(7)),
    }
}

/// How old the saved cursor may grow before an idle reconcile saves it again.
pub const CURSOR_EVERY: chrono::Duration = chrono::Duration::minutes(15);

/// Runs one reconcile of one integration.
pub async fn reconcile(
    deps: ReconcileDeps<'_>,
    settings: &IntegrationSettings,
    options: ReconcileOptions,
) -> Result<ReconcileSummary, ReconcileError> {
    let id = settings.id.as_str();
    let now = deps.clock.now();
    let cursor = deps.store.get_reconcile_cursor(id).await?;
    let from = options
        .since
        .unwrap_or_else(|| starts_at(cursor.as_ref(), settings, now));
    let to = now;
    let shipments = deps.feed.changed(from, to).await?;
    let listed = shipments.len();
    let (sightings, ignored): (Vec<_>, Vec<_>) = shipments
        .into_iter()
        .enumerate()
        .map(|(index, s)| judge(index, s, Vec::new()))
        .partition(Result::is_ok);
    let sightings: Vec<Sighting> = sightings.into_iter().filter_map(Result::ok).collect();
    let ignored: Vec<Ignored> = ignored.into_iter().filter_map(Result::err).collect();
    let mut summary = SightingSummary::default();
    count_ignored(id, Source::Reconcile, &ignored, &mut summary);
    let jobs = queue_new(
        SightingDeps {
            store: deps.store,
            queue: deps.queue,
            clock: deps.clock,
        },
        id,
        &sightings,
        Source::Reconcile,
        if options.dry_run {
            Queueing::DryRun
        } else {
            Queueing::Queue
        },
        &mut summary,
    )
    .await?;
    let queued: Vec<String> = jobs.into_iter().map(|j| j.connote).collect();
    let stale = cursor
        .as_ref()
        .is_none_or(|c| now - c.saved_at >= CURSOR_EVERY);
    if !options.dry_run && (stale || !queued.is_empty()) {
        // Through the start of the window's last second: what changed later in that second may
        // not have been listed yet, and is asked for again next time (a repeat is a duplicate).
        use chrono::SubsecRound;
        deps.store
            .put_reconcile_cursor(
                id,
                &ReconcileCursor {
                    through: to.trunc_subsecs(0),
                    saved_at: now,
                },
            )
            .await?;
    }
    if !queued.is_empty() && !options.dry_run {
        tracing::warn!(
            integration = id,
            reconciled = queued.len(),
            connotes = ?queued,
            "consignments reconciled: GoSweetSpot's webhook never brought them (check the webhook's URL and secret)"
        );
    }
    Ok(ReconcileSummary {
        from,
        to,
        shipments: listed,
        queued,
        duplicates: summary.duplicates,
        ignored_reasons: summary.ignored_reasons,
        dry_run: options.dry_run,
    })
}
