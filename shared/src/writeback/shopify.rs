//! The write-back's `shopify` action: CIN7's Shopify link called once per dispatched
//! consignment, claimed on its own so a failed trigger is retried without repeating the CIN7
//! update.

use super::ports::shopify_url;
use super::run::{JobOutcome, WriteBackDeps, claim_key};
use crate::jobs::WriteBackJob;
use crate::settings::IntegrationSettings;
use crate::store::{Claim, StoreError, update_record};

pub(super) async fn shopify(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    job: &WriteBackJob,
    cin7_id: i64,
) -> Result<JobOutcome, StoreError> {
    let Some(url) = settings
        .write_back
        .shopify_trigger
        .as_deref()
        .and_then(|s| shopify_url(s, deps.shopify_template, cin7_id))
    else {
        return Ok(JobOutcome::Done);
    };
    let key = claim_key(&job.connote, "shopify");
    match deps
        .store
        .claim(&settings.id, &key, deps.owner, deps.claim_hold)
        .await?
    {
        Claim::Completed(_) => return Ok(JobOutcome::Done),
        Claim::InProgress => {
            return Ok(JobOutcome::Retry(
                "Shopify trigger in progress elsewhere".into(),
            ));
        }
        Claim::Acquired => {}
    }
    if let Err(e) = deps.cin7_pacing.acquire().await {
        deps.store
            .release_claim(&settings.id, &key, deps.owner)
            .await?;
        return Ok(JobOutcome::Retry(e.to_string()));
    }
    match deps.shopify.trigger(&url).await {
        Ok(()) => {
            deps.store
                .complete(&settings.id, &key, deps.owner, "\"ok\"")
                .await?;
            update_record(deps.store, deps.clock, &settings.id, cin7_id, |r, now| {
                r.shopify_triggered(&job.connote, now)
            })
            .await?;
            tracing::info!(integration = %settings.id, connote = %job.connote, "Shopify trigger called");
            Ok(JobOutcome::Done)
        }
        Err(e) => {
            deps.store
                .release_claim(&settings.id, &key, deps.owner)
                .await?;
            update_record(deps.store, deps.clock, &settings.id, cin7_id, |r, _| {
                r.write_back_deferred(&job.connote, &e.to_string())
            })
            .await?;
            Ok(JobOutcome::Retry(e.to_string()))
        }
    }
}
