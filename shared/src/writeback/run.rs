//! The write-back use-case for one integration's jobs of one batch: one GoSweetSpot shipment
//! read, one CIN7 order read and one CIN7 PUT for the whole batch; idempotent per
//! (integration, consignment, action) through the store's claims, so duplicates, redelivery
//! and a crash between the PUT and the record never dispatch twice nor add freight twice.
//!
//! The actions, each claimed on its own: `cin7` (the one PUT carrying dispatch, tracking and
//! freight for the consignment, [`super::cin7`]) and `shopify` (the trigger after a dispatch,
//! [`super::shopify`]). A failed Shopify trigger is retried on redelivery without repeating the
//! CIN7 update.

use super::cin7::write_cin7;
use super::ports::{OrderUpdater, ShipmentSource, ShopifyTrigger};
use super::shopify::shopify;
use crate::clock::Clock;
use crate::jobs::WriteBackJob;
use crate::rate_limit::RateLimiter;
use crate::settings::IntegrationSettings;
use crate::store::{Claim, StoreError, WriteBackStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How one job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Written back (or already was): acknowledge.
    Done,
    /// A permanent failure, recorded on the order: acknowledge.
    Failed(String),
    /// A transient failure: fail this message only, so it is redelivered.
    Retry(String),
}

/// What the write-back needs.
pub struct WriteBackDeps<'a> {
    /// Claims and order records.
    pub store: &'a dyn WriteBackStore,
    pub gss: &'a dyn ShipmentSource,
    pub cin7: &'a dyn OrderUpdater,
    pub shopify: &'a dyn ShopifyTrigger,
    pub shopify_template: &'a str,
    /// CIN7's pacing for this integration: the Shopify link is CIN7's too.
    pub cin7_pacing: &'a dyn RateLimiter,
    /// Names this worker's claims.
    pub owner: &'a str,
    /// How long a claim holds before another worker may take it over.
    pub claim_hold: Duration,
    /// Tells the time: the plan's, and each record change's.
    pub clock: &'a dyn Clock,
}

/// The result stored with a completed `cin7` claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cin7Result {
    cin7_id: i64,
    dispatched: bool,
    ok: bool,
}

pub(super) fn claim_key(connote: &str, action: &str) -> String {
    format!("{connote}:{action}")
}

/// Completes a job's `cin7` claim with its result: whether the order was written (`ok`) and
/// dispatched by it (so a redelivery knows whether the Shopify trigger is still due).
pub(super) async fn complete_cin7(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    job: &WriteBackJob,
    ok: bool,
    dispatched: bool,
) -> Result<(), StoreError> {
    let result = Cin7Result {
        cin7_id: job.cin7_id,
        dispatched,
        ok,
    };
    let result = serde_json::to_string(&result).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    deps.store
        .complete(
            &settings.id,
            &claim_key(&job.connote, "cin7"),
            deps.owner,
            &result,
        )
        .await?;
    Ok(())
}

/// Runs one integration's jobs; returns each job's outcome, in the order given.
pub async fn run_batch(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    jobs: &[WriteBackJob],
) -> Result<Vec<JobOutcome>, StoreError> {
    let id = settings.id.as_str();
    let store = deps.store;
    // One piece of work per consignment, however many messages carry it.
    let mut by_connote: BTreeMap<String, &WriteBackJob> = BTreeMap::new();
    for job in jobs {
        by_connote.entry(job.connote.clone()).or_insert(job);
    }
    let mut outcome: BTreeMap<String, JobOutcome> = BTreeMap::new();
    let mut acquired: Vec<&WriteBackJob> = Vec::new();
    let mut shopify_only: Vec<(&WriteBackJob, i64)> = Vec::new();
    for (connote, job) in &by_connote {
        match store
            .claim(id, &claim_key(connote, "cin7"), deps.owner, deps.claim_hold)
            .await?
        {
            Claim::Acquired => acquired.push(job),
            Claim::InProgress => {
                outcome.insert(
                    connote.clone(),
                    JobOutcome::Retry("another worker holds this consignment".into()),
                );
            }
            Claim::Completed(result) => {
                let done: Option<Cin7Result> = serde_json::from_str(&result).ok();
                match done {
                    Some(r)
                        if r.ok
                            && r.dispatched
                            && settings.write_back.shopify_trigger.is_some() =>
                    {
                        shopify_only.push((job, r.cin7_id));
                    }
                    _ => {
                        outcome.insert(connote.clone(), JobOutcome::Done);
                    }
                }
            }
        }
    }

    if !acquired.is_empty() {
        let results = write_cin7(deps, settings, &acquired).await?;
        for (job, result) in acquired.iter().zip(results) {
            match result {
                Cin7Step::Written { dispatched } => {
                    if dispatched && settings.write_back.shopify_trigger.is_some() {
                        shopify_only.push((job, job.cin7_id));
                    } else {
                        outcome.insert(job.connote.clone(), JobOutcome::Done);
                    }
                }
                Cin7Step::Outcome(o) => {
                    outcome.insert(job.connote.clone(), o);
                }
            }
        }
    }

    for (job, cin7_id) in shopify_only {
        let result = shopify(deps, settings, job, cin7_id).await?;
        outcome.insert(job.connote.clone(), result);
    }

    Ok(jobs
        .iter()
        .map(|j| {
            outcome
                .get(&j.connote)
                .cloned()
                .unwrap_or(JobOutcome::Retry("not processed".into()))
        })
        .collect())
}

pub(super) enum Cin7Step {
    Written { dispatched: bool },
    Outcome(JobOutcome),
}

pub(super) async fn release_all(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    jobs: &[&WriteBackJob],
    action: &str,
) -> Result<(), StoreError> {
    for job in jobs {
        deps.store
            .release_claim(&settings.id, &claim_key(&job.connote, action), deps.owner)
            .await?;
    }
    Ok(())
}
