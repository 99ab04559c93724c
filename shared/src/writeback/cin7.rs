//! The write-back's `cin7` action for a batch: the orders and their shipments read once, each
//! order planned ([`super::plan`]), one PUT (split when CIN7 refuses the batch as a whole), a
//! read-back after an ambiguous failure, and each job's outcome recorded on its order.

use super::plan::{NewConsignment, OrderPlan, plan_order};
use super::run::{Cin7Step, JobOutcome, WriteBackDeps, complete_cin7, release_all};
use crate::cin7::model::{OrderRow, SalesOrder};
use crate::cin7::update::SalesOrderUpdate;
use crate::gss::model::Shipment;
use crate::http::ApiError;
use crate::jobs::WriteBackJob;
use crate::records::{ConsignmentEffect, OrderRecord, WrittenBack, reasons};
use crate::settings::IntegrationSettings;
use crate::store::{StoreError, update_record};
use std::collections::{BTreeMap, BTreeSet};

async fn note_transient(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    jobs: &[&WriteBackJob],
    error: &str,
) -> Result<Vec<Cin7Step>, StoreError> {
    release_all(deps, settings, jobs, "cin7").await?;
    for job in jobs {
        update_record(deps.store, deps.clock, &settings.id, job.cin7_id, |r, _| {
            r.write_back_deferred(&job.connote, error)
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

pub(super) async fn write_cin7(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    jobs: &[&WriteBackJob],
) -> Result<Vec<Cin7Step>, StoreError> {
    let now = deps.clock.now();
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
            .filter(|c| shipments.get(*c).is_none_or(Shipment::is_deleted))
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
                    reasons::ORDER_NOT_FOUND.into(),
                    format!("CIN7 has no sales order {cin7_id}"),
                ),
            );
            continue;
        };
        if order.is_void == Some(true) || order.status == crate::cin7::model::OrderStatus::Void {
            permanent.insert(
                *cin7_id,
                (reasons::ORDER_VOID.into(), "the CIN7 order is void".into()),
            );
            continue;
        }
        let plan = plan_order(
            order,
            records.get(cin7_id),
            &consignments_for(jobs, &shipments, *cin7_id),
            settings,
            now,
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
                                now,
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
                    fail_permanently(deps, settings, job, reasons::CIN7_REJECTED, &message).await?;
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
    update_record(
        deps.store,
        deps.clock,
        &settings.id,
        job.cin7_id,
        |r, now| r.write_back_failed(&job.connote, reason, detail, now),
    )
    .await?;
    complete_cin7(deps, settings, job, false, false).await
}

async fn record_success(
    deps: &WriteBackDeps<'_>,
    settings: &IntegrationSettings,
    job: &WriteBackJob,
    plan: &OrderPlan,
    effect: Option<&ConsignmentEffect>,
) -> Result<(), StoreError> {
    let dispatched_now = plan.dispatches;
    let written = WrittenBack {
        job,
        effect,
        relabelled: &plan.relabelled,
        dispatched: dispatched_now,
        sends_ticket_number: settings.write_back.send_ticket_number,
        notes: &plan.notes,
    };
    update_record(
        deps.store,
        deps.clock,
        &settings.id,
        job.cin7_id,
        |r, now| r.written_back(written, now),
    )
    .await?;
    tracing::info!(integration = %settings.id, reference = ?job.reference, connote = %job.connote, dispatched = dispatched_now, "written back");
    complete_cin7(deps, settings, job, true, dispatched_now).await
}
