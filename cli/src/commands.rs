//! The operator commands: settings, secrets, sync, the per-order log, replay and the DLQ.

use crate::backend::Backend;
use crate::output::{Output, table};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::json;
use shared::app::{ClientCache, ClientProvider, Pacing};
use shared::cin7::query::{ListQuery, MAX_ROWS};
use shared::clock::SystemClock;
use shared::http::ApiError;
use shared::jobs::WriteBackJob;
use shared::metrics::LogMetrics;
use shared::pull::OrderSource;
use shared::pull::decide::{Decision, decide};
use shared::pull::handler::{PullConfig, PullPorts, PullRequest, handle};
use shared::pull::paging::{self, Next};
use shared::pull::reconcile::{self as reconciling, ReconcileDeps, ReconcileOptions};
use shared::queue::{JobQueue, Outgoing};
use shared::records::{OrderRecord, OrderState};
use shared::schedule::{
    Handled, PullKind, SweepPorts, WorkerConfig, WorkerPorts, handle_message, seed, take_over,
};
use shared::secrets::{ExposeSecret, SecretString};
use shared::settings::IntegrationSettings;
use shared::store::prelude::*;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Reads settings from a TOML or JSON file (by extension; TOML otherwise).
pub fn read_settings(path: &Path) -> anyhow::Result<IntegrationSettings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        IntegrationSettings::from_json(&text)
    } else {
        IntegrationSettings::from_toml(&text)
    };
    parsed.with_context(|| format!("{} is not valid", path.display()))
}

async fn integration(backend: &Backend, id: &str) -> anyhow::Result<IntegrationSettings> {
    backend
        .store()
        .get_integration(id)
        .await?
        .with_context(|| format!("no integration {id:?}"))
}

/// `integrations put --file FILE`.
pub async fn put(backend: &Backend, file: &Path, out: &Output) -> anyhow::Result<()> {
    let settings = read_settings(file)?;
    backend.store().put_integration(&settings).await?;
    let scheduled = if settings.enabled {
        Some(start_pulls(backend, &settings.id).await?)
    } else {
        None
    };
    out.line(
        &format!(
            "saved integration {}{}",
            settings.id,
            scheduled.unwrap_or_default()
        ),
        json!({"saved": settings.id, "pulls_started": settings.enabled}),
    );
    Ok(())
}

/// Starts an integration's chain of pull messages: its first message is sent now, or, with no
/// pull queue to send on, its schedule is made due now for the sweeper to start. Says which.
pub async fn start_pulls(backend: &Backend, id: &str) -> anyhow::Result<&'static str> {
    let store = backend.store();
    Ok(match backend.pulls() {
        Some(pulls) => {
            let ports = SweepPorts {
                integrations: store,
                schedules: store,
                pulls,
                clock: &SystemClock,
            };
            seed(ports, id, PullKind::Seed).await?;
            "; its first pull is queued"
        }
        None => {
            take_over(store, &SystemClock, id, PullKind::Seed).await?;
            "; no pull queue given (--pull-queue-url): the sweeper starts its pulls on its next run after the grace period"
        }
    })
}

/// `integrations get ID`.
pub async fn get(backend: &Backend, id: &str) -> anyhow::Result<()> {
    let settings = integration(backend, id).await?;
    println!("{}", serde_json::to_string_pretty(&settings)?);
    Ok(())
}

/// `integrations list`.
pub async fn list(backend: &Backend, out: &Output) -> anyhow::Result<()> {
    let all = backend.store().list_integrations().await?;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let rows = all
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.name.clone(),
                if s.enabled { "yes" } else { "no" }.into(),
                s.cin7.api_username.clone(),
                s.gss.site_id.clone(),
                s.write_back.send_ticket_number.to_string(),
                format!("{:?}", s.write_back.freight).to_lowercase(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "id",
                "name",
                "enabled",
                "CIN7 user",
                "GSS site",
                "ticket no.",
                "freight"
            ],
            rows
        )
    );
    Ok(())
}

/// `integrations disable ID`.
pub async fn disable(backend: &Backend, id: &str, out: &Output) -> anyhow::Result<()> {
    if !backend.store().disable_integration(id).await? {
        bail!("no integration {id:?}");
    }
    out.line(
        &format!("disabled integration {id}"),
        json!({"disabled": id}),
    );
    Ok(())
}

/// `integrations test ID`: the checklist a merchant expects from "test connection".
pub async fn test(backend: &Backend, id: &str, out: &Output) -> anyhow::Result<bool> {
    let settings = integration(backend, id).await?;
    let secrets = backend.secrets();
    let mut checks: Vec<(String, Result<(), String>)> = Vec::new();
    let clients = ClientCache::new(
        Arc::new(backend.store().clone()),
        secrets.clone(),
        Pacing::InProcess,
    )
    .with_http(
        Duration::from_secs(15),
        shared::http::RetryPolicy::default(),
    );
    match clients.clients(&settings).await {
        Err(e) => checks.push((
            "API keys".into(),
            Err(format!("{e} — set it with `cin7-gss secrets set {id} …` (AWS) or export the variable (local)")),
        )),
        Ok(c) => {
            let probe = ListQuery {
                fields: vec!["id"],
                rows: 1,
                ..ListQuery::default()
            };
            checks.push((
                "CIN7 credentials and Sales Orders read permission".into(),
                c.cin7.list_page(&probe).await.map(|_| ()).map_err(|e| match e {
                    ApiError::Unauthorized { .. } => "CIN7 refused the API username or key: copy them again from Settings → Integrations & API → API v1".into(),
                    ApiError::Forbidden { .. } => "the CIN7 API user lacks the Sales Orders permission: tick Sales Orders Read and Update (and Products Read) on the API connection".into(),
                    other => format!("{other} — check cin7.base_url and try again"),
                }),
            ));
            checks.push((
                "GoSweetSpot credentials and site".into(),
                c.gss
                    .get_customer_orders(&["cin7-gss-connection-test".into()])
                    .await
                    .map(|_| ())
                    .map_err(|e| match e {
                        ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => "GoSweetSpot refused the access key or site: copy the key from Administration → Preferences & Settings → Advanced Settings and check gss.site_id".into(),
                        other => format!("{other} — check gss.base_url and try again"),
                    }),
            ));
        }
    }
    checks.push((
        "webhook secret".into(),
        secrets
            .get(&settings.webhook.secret.0)
            .await
            .map(|_| ())
            .map_err(|e| {
                format!("{e} — set the same HMAC secret here and in GoSweetSpot's webhook settings")
            }),
    ));
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    if out.json {
        let list: Vec<_> = checks
            .iter()
            .map(|(name, r)| json!({"check": name, "ok": r.is_ok(), "fix": r.as_ref().err()}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"ok": ok, "checks": list}))?
        );
    } else {
        for (name, result) in &checks {
            match result {
                Ok(()) => println!("  [ok]   {name}"),
                Err(fix) => println!("  [FAIL] {name}\n         fix: {fix}"),
            }
        }
    }
    Ok(ok)
}

/// `secrets set ID NAME` (value from standard input).
pub async fn set_secret(
    backend: &Backend,
    id: &str,
    name: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let settings = integration(backend, id).await?;
    let reference = match name {
        "cin7.api_key" => &settings.cin7.api_key,
        "gss.access_key" => &settings.gss.access_key,
        "webhook.secret" => &settings.webhook.secret,
        other => bail!(
            "unknown secret {other:?}: expected cin7.api_key, gss.access_key or webhook.secret"
        ),
    };
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("reading the secret from standard input")?;
    let value = SecretString::from(value.trim_end_matches(['\r', '\n']).to_string());
    if value.expose_secret().is_empty() {
        bail!("no secret on standard input");
    }
    match backend {
        Backend::Aws { secrets, .. } => {
            secrets.put(&reference.0, &value).await?;
            out.line(
                &format!(
                    "stored {name} of {id} in Secrets Manager as {}",
                    reference.0
                ),
                json!({"stored": reference.0}),
            );
            Ok(())
        }
        Backend::Local { .. } => match shared::secrets::split_reference(&reference.0) {
            (variable, Some(key)) => bail!(
                "local mode reads {name} from the key {key:?} of the JSON object in the environment variable {variable}: export it before `serve` (nothing is stored)"
            ),
            (variable, None) => bail!(
                "local mode reads {name} from the environment variable {variable}: export it before `serve` (nothing is stored)"
            ),
        },
    }
}

/// `sync-now ID`: one pull, its summary printed.
pub async fn sync_now(backend: &Backend, id: &str, out: &Output) -> anyhow::Result<bool> {
    let clients = ClientCache::new(
        Arc::new(backend.store().clone()),
        backend.secrets(),
        Pacing::Shared,
    );
    let config = PullConfig {
        concurrency: 1,
        margin: Duration::from_secs(5),
        owner: shared::app::process_owner("cli"),
    };
    let ports = PullPorts {
        integrations: backend.store(),
        store: backend.store(),
        clients: &clients,
        queue: backend.queue()?,
        clock: &SystemClock,
        metrics: &LogMetrics,
    };
    let summary = match backend.pulls() {
        // A sync-now message, handled here: the chain goes on from it on the pull queue.
        Some(pulls) => {
            let message = take_over(backend.store(), &SystemClock, id, PullKind::SyncNow).await?;
            let worker = WorkerPorts {
                pull: ports,
                schedules: backend.store(),
                pulls,
            };
            let handling = WorkerConfig {
                concurrency: 1,
                owner: config.owner.clone(),
                margin: config.margin,
                // Sync now reconciles too, however recently the chain did.
                reconcile_every: Duration::ZERO,
                ..WorkerConfig::default()
            };
            match handle_message(&message.body(), worker, &handling, None).await? {
                Handled::Pulled { summary, .. } => Some(*summary),
                Handled::Busy => bail!(
                    "another pull of {id} is running (its lease is held); try again when it ends"
                ),
                Handled::Dropped { reason } => bail!("{id} was not pulled: {reason}"),
                Handled::Replaced => {
                    bail!("{id} was pulled, but a newer sync-now took over its schedule")
                }
                Handled::NotSent { summary, error } => {
                    eprintln!(
                        "note: the next pull message was not sent ({error}); the sweeper re-seeds {id}"
                    );
                    Some(*summary)
                }
                Handled::Stale | Handled::Early { .. } => {
                    bail!("{id}: the schedule changed before the pull")
                }
            }
        }
        None => handle(PullRequest::One(id.into()), ports, &config, None)
            .await?
            .into_iter()
            .next(),
    };
    let Some(s) = summary.as_ref() else {
        bail!("nothing pulled");
    };
    if out.json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        println!(
            "{}: {:?} — seen {}, published {}, updated {}, unchanged {}, deleted {}, conflicts {}, failed {}; CIN7 calls {}, GoSweetSpot calls {}",
            s.integration,
            s.outcome,
            s.seen,
            s.published,
            s.updated,
            s.unchanged,
            s.deleted,
            s.conflicts,
            s.failed,
            s.cin7_calls,
            s.gss_calls
        );
        for (reason, n) in &s.skipped {
            println!("  skipped {reason}: {n}");
        }
        if s.reconciled > 0 {
            println!(
                "  reconciled: {} consignment(s) GoSweetSpot's webhook never brought were queued for write-back",
                s.reconciled
            );
        }
        if let Some(e) = &s.reconcile_error {
            println!("  reconcile failed (the next pull retries it): {e}");
        }
        if let Some(e) = &s.error {
            println!("  error: {e}");
        }
    }
    Ok(s.outcome != shared::pull::PullOutcome::Failed)
}

/// `pull ID --dry-run`: what a pull would do, changing nothing anywhere (CIN7 is only read;
/// GoSweetSpot and the store are not touched).
pub async fn dry_run(backend: &Backend, id: &str, out: &Output) -> anyhow::Result<()> {
    let settings = integration(backend, id).await?;
    let clients = ClientCache::new(
        Arc::new(backend.store().clone()),
        backend.secrets(),
        Pacing::InProcess,
    );
    let c = clients.clients(&settings).await?;
    let now = Utc::now();
    let cursor = backend.store().get_cursor(id).await?;
    let mut start = paging::first_page(cursor.as_ref(), &settings, now);
    let mut rows = Vec::new();
    let mut plan = Vec::new();
    // Paged as the pull pages; an order read again (the same start at a smaller offset) is
    // listed once.
    let mut listed = std::collections::BTreeSet::new();
    let fields = settings.import.order_fields();
    loop {
        let got = OrderSource::list_page(&c.cin7, &start.query(&fields)).await?;
        let full = got.len() >= MAX_ROWS as usize;
        let keys = paging::keys(&got);
        for row in got {
            if row.id().is_some_and(|i| !listed.insert(i)) {
                continue;
            }
            let existing = match row.id() {
                Some(i) => backend.store().get_order(id, i).await?,
                None => None,
            };
            let (action, why) = match decide(&row, existing.as_ref(), &settings, now) {
                Decision::Publish {
                    update: false,
                    mapped,
                    ..
                } => ("publish", mapped.order.packingslipno.clone()),
                Decision::Publish {
                    update: true,
                    mapped,
                    ..
                } => ("update", mapped.order.packingslipno.clone()),
                Decision::Delete { skip, packing_slip } => {
                    ("delete", format!("{packing_slip}: {}", skip.reason))
                }
                Decision::Skip(skip) => (
                    "skip",
                    match skip.detail {
                        Some(d) => format!("{} ({d})", skip.reason),
                        None => skip.reason.to_string(),
                    },
                ),
                Decision::Unchanged => ("unchanged", String::new()),
                Decision::Settled => (
                    "leave",
                    existing.map(|r| r.state.to_string()).unwrap_or_default(),
                ),
            };
            let reference = match &row {
                shared::cin7::model::OrderRow::Parsed(o) => o.reference.clone(),
                shared::cin7::model::OrderRow::Unparseable(u) => u.reference.clone(),
            }
            .unwrap_or_default();
            plan.push(json!({"cin7_id": row.id(), "reference": reference, "action": action, "detail": why}));
            rows.push(vec![
                row.id().map(|i| i.to_string()).unwrap_or_default(),
                reference,
                action.to_string(),
                why,
            ]);
        }
        start = match start.next(&keys, full, |s| c.cin7.fits(&s.query(&fields))) {
            Next::AtSmallerOffset(next) | Next::After(next) => next,
            Next::Done => break,
        };
    }
    if out.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        println!(
            "{}",
            table(&["CIN7 id", "reference", "would", "detail"], rows)
        );
        println!("dry run: nothing was written to GoSweetSpot, CIN7 or the store");
    }
    Ok(())
}

fn last_change(r: &OrderRecord) -> Option<DateTime<Utc>> {
    r.history.last().map(|t| t.at)
}

/// `orders ID [--state S] [--since T]`.
pub async fn orders(
    backend: &Backend,
    id: &str,
    state: Option<&str>,
    since: Option<DateTime<Utc>>,
    out: &Output,
) -> anyhow::Result<()> {
    let state = match state {
        None => None,
        Some(s) => Some(OrderState::parse(s).with_context(|| {
            let names: Vec<&str> = OrderState::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown state {s:?}: expected one of {}", names.join(", "))
        })?),
    };
    let records: Vec<OrderRecord> = backend
        .store()
        .list_orders(id, state)
        .await?
        .into_iter()
        .filter(|r| since.is_none_or(|t| last_change(r).is_some_and(|c| c >= t)))
        .collect();
    if out.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(());
    }
    let rows = records
        .iter()
        .map(|r| {
            vec![
                r.cin7_id.to_string(),
                r.reference.clone().unwrap_or_default(),
                r.packing_slip.clone().unwrap_or_default(),
                r.state.to_string(),
                r.reason.clone(),
                r.detail
                    .clone()
                    .or(r.last_error.clone())
                    .unwrap_or_default(),
                r.consignments
                    .iter()
                    .map(|c| c.connote.clone())
                    .collect::<Vec<_>>()
                    .join(","),
                last_change(r)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                r.freshness_seconds
                    .map(|f| f.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "CIN7 id",
                "reference",
                "packing slip",
                "state",
                "reason",
                "detail",
                "consignments",
                "changed (UTC)",
                "freshness (s)"
            ],
            rows
        )
    );
    Ok(())
}

/// `explain ID REFERENCE`: one order's whole history.
pub async fn explain(
    backend: &Backend,
    id: &str,
    reference: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let found = backend
        .store()
        .list_orders(id, None)
        .await?
        .into_iter()
        .find(|r| {
            r.reference.as_deref() == Some(reference)
                || r.packing_slip.as_deref() == Some(reference)
                || r.cin7_id.to_string() == reference
        })
        .with_context(|| format!("no order {reference:?} in integration {id}"))?;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    println!(
        "order {} (CIN7 id {}), packing slip {}: {} — {}",
        found.reference.as_deref().unwrap_or("?"),
        found.cin7_id,
        found.packing_slip.as_deref().unwrap_or("(not published)"),
        found.state,
        found.reason
    );
    if let (Some(at), Some(f)) = (found.published_at, found.freshness_seconds) {
        println!(
            "in GoSweetSpot {} s after CIN7 last modified it (published {})",
            f,
            at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    println!("history:");
    for t in &found.history {
        println!(
            "  {}  {:<10} {}{}",
            t.at.format("%Y-%m-%d %H:%M:%S"),
            t.state.as_str(),
            t.reason,
            t.detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        );
    }
    for c in &found.consignments {
        println!(
            "consignment {}: carrier {}, tracking {}, freight added {}, tracking written {}",
            c.connote,
            c.carrier.as_deref().unwrap_or("-"),
            c.tracking_url.as_deref().unwrap_or("-"),
            c.freight_added
                .map(|f| f.to_string())
                .unwrap_or_else(|| "-".into()),
            c.tracking_written
        );
    }
    for w in &found.warnings {
        println!("warning: {w}");
    }
    for t in &found.truncations {
        println!("truncated: {t}");
    }
    if let Some(e) = &found.last_error {
        println!("last write-back error: {e}");
    }
    Ok(())
}

/// `reconcile ID [--since T] [--dry-run]`: one reconcile now, what it found and queued.
pub async fn reconcile(
    backend: &Backend,
    id: &str,
    since: Option<DateTime<Utc>>,
    dry_run: bool,
    out: &Output,
) -> anyhow::Result<()> {
    let settings = integration(backend, id).await?;
    // A dry run writes nothing, not even the shared rate window.
    let pacing = if dry_run {
        Pacing::InProcess
    } else {
        Pacing::Shared
    };
    let clients = ClientCache::new(Arc::new(backend.store().clone()), backend.secrets(), pacing);
    let c = clients.clients(&settings).await?;
    let nowhere = NoQueue;
    let queue: &dyn JobQueue = if dry_run { &nowhere } else { backend.queue()? };
    let summary = reconciling::reconcile(
        ReconcileDeps {
            store: backend.store(),
            queue,
            feed: &c.gss,
            clock: &SystemClock,
        },
        &settings,
        ReconcileOptions { since, dry_run },
    )
    .await?;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{id}: GoSweetSpot listed {} shipment(s) changed from {} to {}",
        summary.shipments,
        summary.from.format("%Y-%m-%d %H:%M:%S UTC"),
        summary.to.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let verb = if dry_run { "would queue" } else { "queued" };
    println!(
        "  {verb} {} write-back(s) no webhook brought{}",
        summary.queued.len(),
        if summary.queued.is_empty() {
            String::new()
        } else {
            format!(": {}", summary.queued.join(", "))
        }
    );
    println!("  already queued: {}", summary.duplicates);
    for (reason, n) in &summary.ignored_reasons {
        println!("  ignored {reason}: {n}");
    }
    if dry_run {
        println!("dry run: nothing was queued, marked or moved");
    }
    Ok(())
}

/// The queue of a dry run: never sent to.
struct NoQueue;

#[async_trait::async_trait]
impl JobQueue for NoQueue {
    async fn send(&self, _: &[Outgoing]) -> Result<(), shared::queue::QueueError> {
        Err(shared::queue::QueueError::Unavailable(
            "a dry run queues nothing".into(),
        ))
    }
}

/// `replay ID CONNOTE`: queue a consignment's write-back again (after fixing what failed).
pub async fn replay(
    backend: &Backend,
    id: &str,
    connote: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let store = backend.store();
    let seen = store.consignment(id, connote).await?.with_context(|| {
        format!("neither the webhook nor a reconcile queued consignment {connote} for {id}")
    })?;
    let seen: serde_json::Value = serde_json::from_str(&seen)?;
    let (Some(slip), Some(cin7_id)) = (seen["packing_slip"].as_str(), seen["cin7_id"].as_i64())
    else {
        bail!("the record of consignment {connote} is incomplete");
    };
    let key = format!("{connote}:cin7");
    if let Some(result) = store.claim_result(id, &key).await? {
        let ok = serde_json::from_str::<serde_json::Value>(&result)
            .ok()
            .and_then(|v| v["ok"].as_bool())
            .unwrap_or(false);
        if !ok {
            store.forget_claim(id, &key).await?;
        }
    }
    let record = store.get_order(id, cin7_id).await?;
    let job = WriteBackJob {
        integration_id: id.into(),
        connote: connote.into(),
        packing_slip: slip.into(),
        cin7_id,
        reference: record.and_then(|r| r.reference),
        tracking_url: None,
        total_cost: None,
        created_utc: None,
        manual_ticket: false,
    };
    backend
        .queue()?
        .send(&[Outgoing {
            integration_id: id.into(),
            body: job.to_body()?,
            ..Outgoing::default()
        }])
        .await?;
    out.line(
        &format!("queued the write-back of {connote} again"),
        json!({"queued": connote}),
    );
    Ok(())
}

/// `dlq list`.
pub async fn dlq_list(backend: &Backend, out: &Output) -> anyhow::Result<()> {
    let letters: Vec<(String, String, String, u32)> = match backend {
        Backend::Local { queue, .. } => queue
            .dead_letters()
            .await?
            .into_iter()
            .map(|d| (d.message_id, d.integration_id, d.body, d.receive_count))
            .collect(),
        Backend::Aws { .. } => {
            // Peek: received with a short visibility and not acknowledged, so they stay.
            backend
                .dlq()?
                .receive(100, Duration::from_secs(5))
                .await?
                .into_iter()
                .map(|r| (r.message_id, r.integration_id, r.body, r.receive_count))
                .collect()
        }
    };
    if out.json {
        let list: Vec<_> = letters
            .iter()
            .map(|(m, i, b, n)| json!({"message_id": m, "integration_id": i, "body": b, "receives": n}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let rows = letters
        .into_iter()
        .map(|(m, i, b, n)| {
            let job = WriteBackJob::from_body(&b).ok();
            vec![
                m,
                i,
                job.as_ref()
                    .map(|j| j.connote.clone())
                    .unwrap_or_else(|| "(unreadable)".into()),
                job.map(|j| j.packing_slip).unwrap_or_default(),
                n.to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "message",
                "integration",
                "connote",
                "packing slip",
                "receives"
            ],
            rows
        )
    );
    Ok(())
}

/// `dlq redrive`: every dead letter back onto the write-back queue.
pub async fn dlq_redrive(backend: &Backend, out: &Output) -> anyhow::Result<()> {
    let moved = match backend {
        Backend::Local { queue, .. } => queue.redrive(None).await?,
        Backend::Aws { .. } => {
            let dlq = backend.dlq()?;
            let queue = backend.queue()?;
            let mut moved = 0;
            loop {
                let batch = dlq.receive(10, Duration::from_secs(60)).await?;
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    queue
                        .send(&[Outgoing {
                            integration_id: m.integration_id.clone(),
                            body: m.body.clone(),
                            ..Outgoing::default()
                        }])
                        .await?;
                    dlq.ack(&m.receipt).await?;
                    moved += 1;
                }
            }
            moved
        }
    };
    out.line(
        &format!("redrove {moved} messages"),
        json!({"redriven": moved}),
    );
    Ok(())
}
