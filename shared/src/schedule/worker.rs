//! The pull worker: each pull message pulls its integration for at most a slice, then sends
//! the integration's next message with the delay the policy picks (none when the slice ran out
//! with more to read). Only the message carrying the integration's current token pulls; the
//! schedule is saved before the next message is sent, so a message can never arrive before
//! the token it carries.

use super::message::{PullKind, PullMessage};
use super::policy::PollPolicy;
use crate::app::ClientProvider;
use crate::clock::Clock;
use crate::metrics::{Counts, MetricsSink};
use crate::pull::handler::{FUNCTION, PullPorts, pull_one};
use crate::pull::{PullOptions, PullOutcome, PullSummary, Slice};
use crate::queue::{JobQueue, MAX_DELAY, Outgoing, QueuedJob};
use crate::store::{Integrations, PullStore, Schedule, Schedules, StoreError};
use futures::StreamExt;
use std::time::Duration;
use tokio::time::Instant;

/// A message that arrives this much before its pull is due is pulled anyway.
const EARLY_TOLERANCE: chrono::Duration = chrono::Duration::seconds(5);

/// What the worker works through: the pull's ports, the schedules and the pull queue.
#[derive(Clone, Copy)]
pub struct WorkerPorts<'a> {
    pub pull: PullPorts<'a>,
    pub schedules: &'a dyn Schedules,
    /// The pull queue the next messages go on.
    pub pulls: &'a dyn JobQueue,
}

impl<'a> WorkerPorts<'a> {
    /// The worker's ports when one store keeps everything (local mode, the fleet bench, tests).
    pub fn over<S: Integrations + PullStore + Schedules>(
        store: &'a S,
        clients: &'a dyn ClientProvider,
        jobs: &'a dyn JobQueue,
        pulls: &'a dyn JobQueue,
        clock: &'a dyn Clock,
        metrics: &'a dyn MetricsSink,
    ) -> Self {
        Self {
            pull: PullPorts {
                integrations: store,
                store,
                clients,
                queue: jobs,
                clock,
                metrics,
            },
            schedules: store,
            pulls,
        }
    }
}

/// The worker's fixed configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Messages handled at once.
    pub concurrency: usize,
    /// The most CIN7 list pages one message reads.
    pub slice_pages: u32,
    /// The longest one message pulls before it publishes what it read and continues later.
    pub slice_time: Duration,
    /// How long a busy integration's message waits before it is tried again.
    pub busy_retry: Duration,
    /// How long a pull's lease holds (longer than a slice and its publishing).
    pub lease_ttl: Duration,
    /// Stop this long before the deadline.
    pub margin: Duration,
    /// Names leases (unique per process start; each message's pull adds its own suffix).
    pub owner: String,
    /// CIN7's daily call limit.
    pub daily_limit: i64,
    /// The longest a chain goes without reconciling (webhooks are the fast path; the
    /// reconcile, one GoSweetSpot call, is the backstop for lost ones).
    pub reconcile_every: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            slice_pages: 20,
            slice_time: Duration::from_secs(60),
            busy_retry: Duration::from_secs(15),
            lease_ttl: Duration::from_secs(5 * 60),
            margin: Duration::from_secs(20),
            owner: "pull-worker".into(),
            daily_limit: PullOptions::default().daily_budget,
            reconcile_every: Duration::from_secs(5 * 60),
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Pulled; the next message was sent with this delay.
    Pulled {
        summary: Box<PullSummary>,
        next: PullKind,
        delay: Duration,
    },
    /// Pulled, but the schedule was replaced meanwhile (a sync-now or a re-seed): that chain
    /// goes on, this one ends.
    Replaced,
    /// Pulled and rescheduled, but the next message could not be sent: the sweeper re-seeds
    /// the integration once it is overdue.
    NotSent {
        summary: Box<PullSummary>,
        error: String,
    },
    /// Not the integration's current chain: dropped.
    Stale,
    /// Arrived before its pull was due (delays are at most 15 minutes): sent again for the rest.
    Early { delay: Duration },
    /// Another pull holds the integration's lease: sent again after a short wait.
    Busy,
    /// Its integration is unknown or disabled: dropped (enabling it sends a new first message).
    Dropped { reason: &'static str },
}

/// Why a message must be delivered again (a malformed one goes to the dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Malformed(#[from] super::message::MalformedMessage),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not send the message again: {0}")]
    Resend(#[from] crate::queue::QueueError),
}

/// Handles a batch of pull messages; returns the ids of the messages to deliver again.
pub async fn handle_batch(
    batch: Vec<QueuedJob>,
    ports: WorkerPorts<'_>,
    config: &WorkerConfig,
    deadline: Option<Instant>,
) -> Vec<String> {
    let results = futures::stream::iter(batch)
        .map(|job| async move {
            let handled = handle_message(&job.body, ports, config, deadline).await;
            (job, handled)
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut failed = Vec::new();
    let (mut pulled, mut stale, mut dropped, mut not_sent, mut retried) = (0, 0, 0, 0, 0);
    for (job, handled) in results {
        match handled {
            Ok(Handled::Pulled { .. } | Handled::Replaced) => pulled += 1,
            Ok(Handled::Stale) => stale += 1,
            Ok(Handled::Dropped { .. }) => dropped += 1,
            Ok(Handled::NotSent { .. }) => not_sent += 1,
            Ok(Handled::Early { .. } | Handled::Busy) => retried += 1,
            Err(e) => {
                tracing::error!(message_id = %job.message_id, receives = job.receive_count, error = %e, "pull message failed; it is delivered again");
                failed.push(job.message_id);
            }
        }
    }
    ports.pull.metrics.emit(Counts::total(
        FUNCTION,
        &[
            ("PullMessagesPulled", pulled),
            ("PullMessagesStale", stale),
            ("PullMessagesDropped", dropped),
            ("PullMessagesRetried", retried),
            ("PullMessagesFailed", failed.len() as u64),
            ("PullScheduleSendFailures", not_sent),
        ],
    ));
    failed
}

/// Handles one pull message.
pub async fn handle_message(
    body: &str,
    ports: WorkerPorts<'_>,
    config: &WorkerConfig,
    deadline: Option<Instant>,
) -> Result<Handled, WorkerError> {
    let message = PullMessage::parse(body)?;
    let id = message.integration_id.as_str();
    let Some(settings) = ports.pull.integrations.get_integration(id).await? else {
        tracing::warn!(
            integration = id,
            "pull message for an unknown integration dropped"
        );
        return Ok(Handled::Dropped {
            reason: "unknown_integration",
        });
    };
    if !settings.enabled {
        tracing::info!(
            integration = id,
            "pull message for a disabled integration dropped"
        );
        return Ok(Handled::Dropped { reason: "disabled" });
    }
    let schedule = ports.schedules.get_schedule(id).await?;
    if let Some(s) = &schedule
        && s.token != message.token
    {
        tracing::debug!(integration = id, kind = ?message.kind, "pull message of a replaced chain dropped");
        return Ok(Handled::Stale);
    }
    let now = ports.pull.clock.now();
    if let Some(s) = &schedule
        && s.next_pull_due - EARLY_TOLERANCE > now
    {
        let delay = (s.next_pull_due - now).to_std().unwrap_or_default();
        resend(ports, &message, delay).await?;
        return Ok(Handled::Early { delay });
    }
    let last_reconcile = schedule.as_ref().and_then(|s| s.last_reconcile);
    let every = chrono::Duration::from_std(config.reconcile_every).unwrap_or(chrono::Duration::MAX);
    let reconcile = last_reconcile.is_none_or(|t| now + EARLY_TOLERANCE - t >= every);
    let options = PullOptions {
        // Unique to this handling: two deliveries of one message in one process (a batch is
        // handled concurrently) must not share the lease, as its owner may renew it.
        owner: format!("{}/{}", config.owner, uuid::Uuid::new_v4().simple()),
        deadline,
        margin: config.margin,
        lease_ttl: config.lease_ttl,
        daily_budget: config.daily_limit,
        slice: Some(Slice {
            pages: config.slice_pages.max(1),
            until: Instant::now() + config.slice_time,
        }),
        reconcile,
        ..PullOptions::default()
    };
    let summary = pull_one(ports.pull, &settings, &options).await;
    if summary.outcome == PullOutcome::Busy {
        resend(ports, &message, config.busy_retry).await?;
        return Ok(Handled::Busy);
    }
    let now = ports.pull.clock.now();
    let last_activity = if active(&summary) {
        Some(now)
    } else {
        schedule.as_ref().and_then(|s| s.last_activity)
    };
    let (next, delay) = if summary.outcome == PullOutcome::Sliced {
        (PullKind::Continue, Duration::ZERO)
    } else {
        let policy = PollPolicy::of(&settings.import, config.daily_limit).unwrap_or_else(|e| {
            tracing::warn!(integration = id, error = %e, "settings unreadable by the poll policy; its defaults apply");
            PollPolicy::fallback(config.daily_limit)
        });
        let calls_today = match summary.cin7_calls_today {
            Some(n) => n,
            None => ports.pull.store.calls_today(id).await?,
        };
        (
            PullKind::Next,
            policy.next_delay(now, last_activity, calls_today),
        )
    };
    let following = PullMessage::new(id, next);
    let mut saved = Schedule {
        token: following.token.clone(),
        next_pull_due: now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1)),
        last_activity,
        last_pull: Some(now),
        last_reconcile: summary.reconciled_at.or(last_reconcile),
        version: schedule.as_ref().map_or(0, |s| s.version),
        indexed_bucket: schedule.as_ref().and_then(|s| s.indexed_bucket),
    };
    if !ports.schedules.save_schedule(id, &mut saved).await? {
        tracing::info!(
            integration = id,
            "schedule replaced during the pull; that chain goes on"
        );
        return Ok(Handled::Replaced);
    }
    let sent = ports
        .pulls
        .send(&[Outgoing {
            integration_id: id.to_string(),
            body: following.body(),
            delay: delay.min(MAX_DELAY),
        }])
        .await;
    if let Err(e) = sent {
        tracing::error!(integration = id, error = %e, "next pull message not sent; the sweeper re-seeds the integration once it is overdue");
        return Ok(Handled::NotSent {
            summary: Box::new(summary),
            error: e.to_string(),
        });
    }
    tracing::info!(integration = id, next = ?next, delay_s = delay.as_secs(), outcome = ?summary.outcome, "next pull scheduled");
    Ok(Handled::Pulled {
        summary: Box::new(summary),
        next,
        delay,
    })
}

/// Whether a pull found an order new or changed (an order read again unchanged is not).
fn active(s: &PullSummary) -> bool {
    s.published + s.updated + s.deleted + s.conflicts + s.failed + s.skipped.values().sum::<usize>()
        > 0
}

/// Sends the same message again (same token) after `delay`.
async fn resend(
    ports: WorkerPorts<'_>,
    message: &PullMessage,
    delay: Duration,
) -> Result<(), WorkerError> {
    ports
        .pulls
        .send(&[Outgoing {
            integration_id: message.integration_id.clone(),
            body: message.body(),
            delay: delay.min(MAX_DELAY),
        }])
        .await?;
    Ok(())
}
