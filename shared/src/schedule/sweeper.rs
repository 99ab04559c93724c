//! The sweeper, the backstop of the pull schedule (the schedule's EventBridge rule runs it
//! every five minutes; local mode every minute): integrations whose next pull is overdue by
//! more than a grace period — a lost message, a crash between a pull and its next message —
//! are re-seeded with a new chain. It reads the due index from where the last sweep stopped,
//! never every integration.

use super::message::{PullKind, PullMessage};
use crate::clock::Clock;
use crate::queue::{JobQueue, Outgoing, QueueError};
use crate::store::{
    DUE_BUCKET_SECONDS, DueEntry, Integrations, Schedule, Schedules, StoreError, due_bucket,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// What the sweeper and seeding work through.
#[derive(Clone, Copy)]
pub struct SweepPorts<'a> {
    pub integrations: &'a dyn Integrations,
    pub schedules: &'a dyn Schedules,
    /// The pull queue.
    pub pulls: &'a dyn JobQueue,
    pub clock: &'a dyn Clock,
}

/// The sweeper's configuration.
#[derive(Debug, Clone, Copy)]
pub struct SweepConfig {
    /// How overdue a pull must be before the sweeper re-seeds it.
    pub grace: Duration,
    /// How far back a first sweep (no cursor yet) reads.
    pub first_lookback: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(120),
            first_lookback: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    /// Due-index buckets read (one store query each).
    pub buckets: usize,
    /// Index entries read.
    pub entries: usize,
    /// Integrations re-seeded, by id.
    pub reseeded: Vec<String>,
    /// Entries of integrations that are gone or disabled, removed.
    pub dropped: usize,
    /// Entries left behind by an interrupted save, moved to their schedule's bucket.
    pub reindexed: usize,
}

/// Why seeding or sweeping stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Starts a new chain for an integration now (enabling or creating it, "sync now", a
/// re-seed): its schedule takes a new token, due now, and its first message is sent with no
/// delay. Any message of the old chain is dropped when it arrives. Returns the message sent.
pub async fn seed(
    ports: SweepPorts<'_>,
    integration: &str,
    kind: PullKind,
) -> Result<PullMessage, SweepError> {
    for _ in 0..SEED_ATTEMPTS {
        let existing = ports.schedules.get_schedule(integration).await?;
        if let Some(m) = seed_from(ports, integration, existing.as_ref(), kind).await? {
            return Ok(m);
        }
    }
    Err(SweepError::Store(changing(integration)))
}

/// How often seeding reads the schedule again when it changed underneath.
const SEED_ATTEMPTS: usize = 5;

/// Replaces the schedule as read (`existing`) with a new chain due now; `None` when the
/// schedule changed since it was read. The chain's first message is the caller's to send.
async fn replace_chain(
    schedules: &dyn Schedules,
    clock: &dyn Clock,
    integration: &str,
    existing: Option<&Schedule>,
    kind: PullKind,
) -> Result<Option<PullMessage>, StoreError> {
    let message = PullMessage::new(integration, kind);
    let mut schedule = Schedule {
        token: message.token.clone(),
        next_pull_due: clock.now(),
        last_activity: existing.and_then(|s| s.last_activity),
        last_pull: existing.and_then(|s| s.last_pull),
        last_reconcile: existing.and_then(|s| s.last_reconcile),
        version: existing.map_or(0, |s| s.version),
        indexed_bucket: existing.and_then(|s| s.indexed_bucket),
    };
    Ok(schedules
        .save_schedule(integration, &mut schedule)
        .await?
        .then_some(message))
}

/// Starts a new chain whose first message this process handles itself ("sync now" in the
/// CLI): the schedule takes the message's token, and nothing is sent.
pub async fn take_over(
    schedules: &dyn Schedules,
    clock: &dyn Clock,
    integration: &str,
    kind: PullKind,
) -> Result<PullMessage, StoreError> {
    for _ in 0..SEED_ATTEMPTS {
        let existing = schedules.get_schedule(integration).await?;
        if let Some(m) =
            replace_chain(schedules, clock, integration, existing.as_ref(), kind).await?
        {
            return Ok(m);
        }
    }
    Err(changing(integration))
}

fn changing(integration: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "the schedule of {integration:?} changed {SEED_ATTEMPTS} times while it was seeded"
    ))
}

/// Replaces the schedule as read with a new chain due now and sends its first message; `None`
/// when the schedule changed since it was read.
async fn seed_from(
    ports: SweepPorts<'_>,
    integration: &str,
    existing: Option<&Schedule>,
    kind: PullKind,
) -> Result<Option<PullMessage>, SweepError> {
    let Some(message) =
        replace_chain(ports.schedules, ports.clock, integration, existing, kind).await?
    else {
        return Ok(None);
    };
    ports
        .pulls
        .send(&[Outgoing {
            integration_id: integration.to_string(),
            body: message.body(),
            ..Outgoing::default()
        }])
        .await?;
    Ok(Some(message))
}

/// One sweep: reads the due buckets from the cursor through the one `grace` ago, re-seeds the
/// enabled integrations overdue by more than `grace`, and moves the cursor on.
pub async fn sweep(ports: SweepPorts<'_>, config: SweepConfig) -> Result<SweepSummary, SweepError> {
    let now = ports.clock.now();
    let horizon = now - chrono::Duration::from_std(config.grace).unwrap_or_default();
    let last = due_bucket(horizon);
    let first = match ports.schedules.sweep_cursor().await? {
        Some(b) => b.min(last),
        None => {
            let back = i64::try_from(config.first_lookback.as_secs()).unwrap_or(i64::MAX);
            last - back / DUE_BUCKET_SECONDS
        }
    };
    let mut summary = SweepSummary::default();
    for bucket in first..=last {
        summary.buckets += 1;
        for entry in ports.schedules.due_entries(bucket).await? {
            summary.entries += 1;
            examine(ports, &entry, horizon, &mut summary).await?;
        }
    }
    // The last bucket is read again next time: its later entries were not overdue yet.
    ports.schedules.put_sweep_cursor(last).await?;
    if !summary.reseeded.is_empty() {
        tracing::warn!(reseeded = ?summary.reseeded, "sweeper re-seeded integrations whose pull was overdue");
    }
    Ok(summary)
}

async fn examine(
    ports: SweepPorts<'_>,
    entry: &DueEntry,
    horizon: DateTime<Utc>,
    summary: &mut SweepSummary,
) -> Result<(), SweepError> {
    let id = entry.integration.as_str();
    let enabled = ports
        .integrations
        .get_integration(id)
        .await?
        .is_some_and(|s| s.enabled);
    let schedule = ports.schedules.get_schedule(id).await?;
    let Some(schedule) = schedule.filter(|_| enabled) else {
        ports.schedules.drop_due_entry(entry).await?;
        summary.dropped += 1;
        return Ok(());
    };
    if schedule.indexed_bucket != Some(entry.bucket) {
        // Left behind by a save interrupted between its writes: index the schedule where it
        // is due, and drop this entry.
        let mut again = Schedule {
            indexed_bucket: None,
            ..schedule.clone()
        };
        ports.schedules.save_schedule(id, &mut again).await?;
        ports.schedules.drop_due_entry(entry).await?;
        summary.reindexed += 1;
        return Ok(());
    }
    if schedule.next_pull_due < horizon
        && seed_from(ports, id, Some(&schedule), PullKind::Seed)
            .await?
            .is_some()
    {
        tracing::warn!(integration = id, due = %schedule.next_pull_due, "pull overdue: re-seeded");
        summary.reseeded.push(id.to_string());
    }
    Ok(())
}
