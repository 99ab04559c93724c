//! The write-back use-case for one integration's jobs of one batch: one GoSweetSpot shipment
//! read, one CIN7 order read and one CIN7 PUT for the whole batch; idempotent per
//! (integration, consignment, action) through the store's claims, so duplicates, redelivery
//! and a crash between the PUT and the record never dispatch twice nor add freight twice.
//!
//! The actions, each claimed on its own: `cin7` (the one PUT carrying dispatch, tracking and
//! freight for the consignment) and `shopify` (the trigger after a dispatch). A failed Shopify
//! trigger is retried on redelivery without repeating the CIN7 update.

use super::plan::{ConsignmentEffect, NewConsignment, OrderPlan, plan_order};
use crate::cin7::Cin7Client;
use crate::cin7::model::{OrderRow, PutOutcome, SALES_ORDER_FIELDS, SalesOrder, SalesOrderUpdate};
use crate::gss::GssClient;
use crate::gss::model::Shipment;
use crate::http::ApiError;
use crate::jobs::WriteBackJob;
use crate::settings::{IntegrationSettings, shopify_link_id};
use crate::sightings::is_deleted;
use crate::store::records::update_record;
use crate::store::{Claim, ConsignmentRecord, OrderRecord, OrderState, Store, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Reads shipments from GoSweetSpot.
#[async_trait]
pub trait ShipmentSource: Send + Sync {
    async fn shipments(&self, connotes: &[String]) -> Result<Vec<Shipment>, ApiError>;
}

/// Reads and updates CIN7 orders.
#[async_trait]
pub trait OrderUpdater: Send + Sync {
    /// The orders with these ids (one list call).
    async fn orders(&self, ids: &[i64]) -> Result<Vec<OrderRow>, ApiError>;
    /// One PUT of partial orders.
    async fn update(&self, updates: &[SalesOrderUpdate]) -> Result<Vec<PutOutcome>, ApiError>;
}

/// Calls CIN7's Shopify "update order status" link.
#[async_trait]
pub trait ShopifyTrigger: Send + Sync {
    async fn trigger(&self, url: &str) -> Result<(), ShopifyError>;
}

/// Why the Shopify link was not called, or refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopifyError {
    /// The trigger's HTTP client could not be built.
    #[error("Shopify trigger not set up: {0}")]
    Setup(String),
    /// The link could not be reached (connection, timeout).
    #[error("Shopify trigger not reached: {0}")]
    Unreached(String),
    /// The link answered with a status other than 2xx.
    #[error("Shopify trigger answered HTTP {0}")]
    Status(u16),
}

#[async_trait]
impl ShipmentSource for GssClient {
    async fn shipments(&self, connotes: &[String]) -> Result<Vec<Shipment>, ApiError> {
        self.get_shipments(connotes).await
    }
}

#[async_trait]
impl OrderUpdater for Cin7Client {
    async fn orders(&self, ids: &[i64]) -> Result<Vec<OrderRow>, ApiError> {
        self.orders_by_id(ids, SALES_ORDER_FIELDS).await
    }
    async fn update(&self, updates: &[SalesOrderUpdate]) -> Result<Vec<PutOutcome>, ApiError> {
        self.update_orders(updates).await
    }
}

/// A Shopify trigger over HTTP: a GET of the link, any 2xx is success.
#[derive(Debug, Clone)]
pub struct HttpShopifyTrigger {
    http: reqwest::Client,
}

impl HttpShopifyTrigger {
    /// A trigger with its own HTTP client (rustls, timeout).
    pub fn new(timeout: Duration) -> Result<Self, ShopifyError> {
        reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map(|http| Self { http })
            .map_err(|e| ShopifyError::Setup(e.to_string()))
    }
}

#[async_trait]
impl ShopifyTrigger for HttpShopifyTrigger {
    async fn trigger(&self, url: &str) -> Result<(), ShopifyError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ShopifyError::Unreached(e.without_url().to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ShopifyError::Status(response.status().as_u16()))
        }
    }
}

/// The default Shopify trigger link template (`{id}`: the `idCustomerAppsLink`; `{order_id}`:
/// the CIN7 sales order id). CIN7 does not document this endpoint: deployments set
/// `SHOPIFY_TRIGGER_URL_TEMPLATE` to the link their CIN7 Shopify module shows.
pub const DEFAULT_SHOPIFY_TEMPLATE: &str = "https://go.cin7.com/Cloud/Integrations/Shopify/UpdateOrderStatus.aspx?idCustomerAppsLink={id}&OrderId={order_id}";

/// The Shopify link for one order, from the integration's setting and the template.
pub fn shopify_url(setting: &str, template: &str, cin7_id: i64) -> Option<String> {
    let id = shopify_link_id(setting)?;
    Some(
        template
            .replace("{id}", &id)
            .replace("{order_id}", &cin7_id.to_string()),
    )
}

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
    pub store: &'a Store,
    pub gss: &'a dyn ShipmentSource,
    pub cin7: &'a dyn OrderUpdater,
    pub shopify: &'a dyn ShopifyTrigger,
    pub shopify_template: &'a str,
    /// CIN7's pacing for this integration: the Shopify link is CIN7's too.
    pub cin7_pacing: &'a dyn crate::rate_limit::RateLimiter,
    /// Names this worker's claims.
    pub owner: &'a str,
    /// How long a claim holds before another worker may take it over.
    pub claim_hold: Duration,
    pub now: DateTime<Utc>,
}

/// The result stored with a completed `cin7` claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cin7Result {
    cin7_id: i64,
    dispatched: bool,
    ok: bool,
}

fn claim_key(connote: &str, action: &str) -> String {
    format!("{connote}:{action}")
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

enum Cin7Step {
    Written { dispatched: bool },
    Outcome(JobOutcome),
}

async fn release_all(
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

async fn note_transient(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    jobs: &[&WriteBackJob],
    error: &str,
) -> Result<Vec<Cin7Step>, StoreError> {
    release_all(deps, settings, jobs, "cin7").await?;
    for job in jobs {
        update_record(deps.store, &settings.id, job.cin7_id, |r, _| {
            r.last_error = Some(format!("{}: {error}", job.connote));
        })
        .await?;
    }
    Ok(jobs
        .iter()
        .map(|_| Cin7Step::Outcome(JobOutcome::Retry(error.to_string())))
        .collect())
}

fn parsed_orders(rows: Vec<OrderRow>) -> BTreeMap<i64, SalesOrder> {
    rows.into_iter()
        .filter_map(|r| match r {
            OrderRow::Parsed(o) => Some((o.id, *o)),
            OrderRow::Unparseable(_) => None,
        })
        .collect()
}

fn consignments_for(
    jobs: &[&WriteBackJob],
    shipments: &BTreeMap<String, Shipment>,
    cin7_id: i64,
) -> Vec<NewConsignment> {
    jobs.iter()
        .filter(|j| j.cin7_id == cin7_id)
        .map(|j| NewConsignment {
            connote: j.connote.clone(),
            tracking_url: j.tracking_url.clone(),
            created_utc: j.created_utc,
            shipment: shipments.get(&j.connote).cloned(),
            webhook_cost: j.total_cost,
        })
        .collect()
}

async fn write_cin7(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    jobs: &[&WriteBackJob],
) -> Result<Vec<Cin7Step>, StoreError> {
    let ids: Vec<i64> = jobs
        .iter()
        .map(|j| j.cin7_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // The consignments already written to these orders: read with the new ones, in the same
    // call, to see whether they still stand (a relabel deletes the first ticket).
    let mut records: BTreeMap<i64, OrderRecord> = BTreeMap::new();
    for id in &ids {
        if let Some(record) = deps.store.get_order(&settings.id, *id).await? {
            records.insert(*id, record);
        }
    }
    let batch: BTreeSet<&str> = jobs.iter().map(|j| j.connote.as_str()).collect();
    let earlier: BTreeMap<i64, Vec<String>> = records
        .iter()
        .map(|(id, r)| {
            let written = r
                .consignments
                .iter()
                .filter(|c| !c.deleted && (c.tracking_written || c.freight_added.is_some()))
                .filter(|c| !batch.contains(c.connote.as_str()))
                .map(|c| c.connote.clone())
                .collect();
            (*id, written)
        })
        .collect();
    let mut connotes: Vec<String> = batch.iter().map(|c| c.to_string()).collect();
    connotes.extend(earlier.values().flatten().cloned());
    let shipments: BTreeMap<String, Shipment> = match deps.gss.shipments(&connotes).await {
        Ok(list) => list
            .into_iter()
            .filter_map(|s| s.consignment_no.clone().map(|c| (c, s)))
            .collect(),
        Err(e) => return note_transient(deps, settings, jobs, &e.to_string()).await,
    };
    // An earlier consignment GoSweetSpot no longer lists, or lists as deleted, was replaced.
    let deleted = |id: &i64| -> Vec<String> {
        earlier
            .get(id)
            .into_iter()
            .flatten()
            .filter(|c| shipments.get(*c).is_none_or(is_deleted))
            .cloned()
            .collect()
    };
    let orders = match deps.cin7.orders(&ids).await {
        Ok(rows) => parsed_orders(rows),
        Err(e) => return note_transient(deps, settings, jobs, &e.to_string()).await,
    };

    // Plan each order once, with all of its consignments in this batch.
    let mut plans: BTreeMap<i64, OrderPlan> = BTreeMap::new();
    let mut permanent: BTreeMap<i64, (String, String)> = BTreeMap::new();
    for cin7_id in &ids {
        let Some(order) = orders.get(cin7_id) else {
            permanent.insert(
                *cin7_id,
                (
                    "order_not_found".into(),
                    format!("CIN7 has no sales order {cin7_id}"),
                ),
            );
            continue;
        };
        if order.is_void == Some(true) || order.status == crate::cin7::model::OrderStatus::Void {
            permanent.insert(
                *cin7_id,
                ("order_void".into(), "the CIN7 order is void".into()),
            );
            continue;
        }
        let plan = plan_order(
            order,
            records.get(cin7_id),
            &consignments_for(jobs, &shipments, *cin7_id),
            settings,
            deps.now,
            &deleted(cin7_id),
        );
        plans.insert(*cin7_id, plan);
    }

    let updates: Vec<SalesOrderUpdate> = plans.values().filter_map(|p| p.update.clone()).collect();
    let mut put_results: BTreeMap<i64, Result<(), String>> = BTreeMap::new();
    let mut transient: Option<String> = None;
    if !updates.is_empty() {
        match deps.cin7.update(&updates).await {
            Ok(outcomes) => {
                for o in outcomes {
                    put_results.insert(o.id, o.result.map_err(|e| e.join("; ")));
                }
            }
            Err(ApiError::BatchRefused { .. }) if updates.len() > 1 => {
                // One bad order refused the whole call: isolate it, one PUT each.
                for u in &updates {
                    let r = match deps.cin7.update(std::slice::from_ref(u)).await {
                        Ok(mut o) => o
                            .pop()
                            .map(|o| o.result.map_err(|e| e.join("; ")))
                            .unwrap_or(Err("no result".into())),
                        Err(e) if e.is_transient() => {
                            transient = Some(e.to_string());
                            continue;
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    put_results.insert(u.id, r);
                }
            }
            Err(e) if !e.is_transient() => {
                for u in &updates {
                    put_results.insert(u.id, Err(e.to_string()));
                }
            }
            Err(e) => {
                // The PUT may have committed (CIN7 answers 500 to dispatches it made): read the
                // orders back and decide from what they show.
                tracing::warn!(integration = %settings.id, error = %e, "CIN7 PUT failed; reading the orders back");
                match deps.cin7.orders(&ids).await {
                    Ok(rows) => {
                        let now_orders = parsed_orders(rows);
                        for u in &updates {
                            let Some(order) = now_orders.get(&u.id) else {
                                continue;
                            };
                            let again = plan_order(
                                order,
                                records.get(&u.id),
                                &consignments_for(jobs, &shipments, u.id),
                                settings,
                                deps.now,
                                &deleted(&u.id),
                            );
                            if again.update.is_none() {
                                put_results.insert(u.id, Ok(()));
                            }
                        }
                        transient = Some(e.to_string());
                    }
                    Err(read) => transient = Some(format!("{e}; read-back failed: {read}")),
                }
            }
        }
    }

    let mut steps = Vec::new();
    for job in jobs {
        let cin7_id = job.cin7_id;
        let step = if let Some((reason, detail)) = permanent.get(&cin7_id) {
            fail_permanently(deps, settings, job, reason, detail).await?;
            Cin7Step::Outcome(JobOutcome::Failed(detail.clone()))
        } else if let Some(plan) = plans.get(&cin7_id) {
            let result = if plan.update.is_none() {
                Some(Ok(()))
            } else {
                put_results.get(&cin7_id).cloned()
            };
            match result {
                Some(Ok(())) => {
                    let effect = plan.effects.iter().find(|e| e.connote == job.connote);
                    record_success(deps, settings, job, plan, effect).await?;
                    Cin7Step::Written {
                        dispatched: plan.dispatches,
                    }
                }
                Some(Err(message)) => {
                    fail_permanently(deps, settings, job, "cin7_rejected", &message).await?;
                    Cin7Step::Outcome(JobOutcome::Failed(message))
                }
                None => {
                    let error = transient
                        .clone()
                        .unwrap_or_else(|| "no result from CIN7".into());
                    note_transient(deps, settings, &[*job], &error)
                        .await?
                        .pop()
                        .unwrap_or(Cin7Step::Outcome(JobOutcome::Retry(error)))
                }
            }
        } else {
            Cin7Step::Outcome(JobOutcome::Retry("not planned".into()))
        };
        steps.push(step);
    }
    Ok(steps)
}

async fn fail_permanently(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    job: &WriteBackJob,
    reason: &str,
    detail: &str,
) -> Result<(), StoreError> {
    tracing::warn!(integration = %settings.id, reference = ?job.reference, connote = %job.connote, reason, detail, "write-back failed permanently");
    update_record(deps.store, &settings.id, job.cin7_id, |r, now| {
        r.transition(
            OrderState::Failed,
            reason,
            Some(format!("{}: {detail}", job.connote)),
            now,
        );
    })
    .await?;
    let result = serde_json::json!({"cin7_id": job.cin7_id, "dispatched": false, "ok": false});
    deps.store
        .complete(
            &settings.id,
            &claim_key(&job.connote, "cin7"),
            deps.owner,
            &result.to_string(),
        )
        .await?;
    Ok(())
}

async fn record_success(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    job: &WriteBackJob,
    plan: &OrderPlan,
    effect: Option<&ConsignmentEffect>,
) -> Result<(), StoreError> {
    let dispatched_now = plan.dispatches;
    update_record(
        deps.store,
        &settings.id,
        job.cin7_id,
        |r: &mut OrderRecord, now| {
            if r.reference.is_none() {
                r.reference = job.reference.clone();
            }
            if r.packing_slip.is_none() {
                r.packing_slip = Some(job.packing_slip.clone());
            }
            let entry = match r
                .consignments
                .iter_mut()
                .position(|c| c.connote == job.connote)
            {
                Some(i) => &mut r.consignments[i],
                None => {
                    r.consignments.push(ConsignmentRecord {
                        connote: job.connote.clone(),
                        ..ConsignmentRecord::default()
                    });
                    let last = r.consignments.len() - 1;
                    &mut r.consignments[last]
                }
            };
            if let Some(e) = effect {
                entry.tracking_url = e.tracking_url.clone().or(entry.tracking_url.take());
                entry.carrier = e.carrier.clone().or(entry.carrier.take());
                entry.created_utc = e.created_utc.or(entry.created_utc);
                entry.tracking_written |= e.tracking_written;
                if e.freight_ex_tax.is_some() {
                    entry.freight_added = e.freight_ex_tax;
                }
            }
            r.last_error = None;
            for c in r
                .consignments
                .iter_mut()
                .filter(|c| plan.relabelled.contains(&c.connote))
            {
                c.deleted = true;
            }
            let notes = (!plan.notes.is_empty()).then(|| plan.notes.join("; "));
            // Without "send ticket number" nothing is dispatched in CIN7: the record says the
            // consignment was written back (its freight, when that is on).
            let reason = match (settings.write_back.send_ticket_number, dispatched_now) {
                _ if !plan.relabelled.is_empty() => "relabelled",
                (true, true) => "dispatched",
                (true, false) => "consignment_added",
                (false, _) => "written_back",
            };
            let detail = match &notes {
                Some(n) => format!("{}: {n}", job.connote),
                None => job.connote.clone(),
            };
            r.transition(OrderState::Dispatched, reason, Some(detail), now);
        },
    )
    .await?;
    tracing::info!(integration = %settings.id, reference = ?job.reference, connote = %job.connote, dispatched = dispatched_now, "written back");
    let result =
        serde_json::json!({"cin7_id": job.cin7_id, "dispatched": dispatched_now, "ok": true});
    deps.store
        .complete(
            &settings.id,
            &claim_key(&job.connote, "cin7"),
            deps.owner,
            &result.to_string(),
        )
        .await?;
    Ok(())
}

async fn shopify(
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
            update_record(deps.store, &settings.id, cin7_id, |r, now| {
                r.transition(
                    OrderState::Dispatched,
                    "shopify_triggered",
                    Some(job.connote.clone()),
                    now,
                );
            })
            .await?;
            tracing::info!(integration = %settings.id, connote = %job.connote, "Shopify trigger called");
            Ok(JobOutcome::Done)
        }
        Err(e) => {
            deps.store
                .release_claim(&settings.id, &key, deps.owner)
                .await?;
            update_record(deps.store, &settings.id, cin7_id, |r, _| {
                r.last_error = Some(format!("{}: {e}", job.connote));
            })
            .await?;
            Ok(JobOutcome::Retry(e.to_string()))
        }
    }
}
