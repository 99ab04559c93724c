//! The pure core per order, and the webhook handler in process. Run by `make bench`
//! (`cargo bench -p cin7-gss-bench --bench core`); writes `target/bench/core.json`, which
//! the `runner` bench folds into `bench/results.json`.
//!
//! - criterion: the CIN7 page parser (a page of 250 orders), the mapper and the write-back
//!   planner (one order each);
//! - the webhook handler (`shared::webhook::handle`) on a signed 50-shipment delivery of new
//!   consignments, each call timed: p50/p99 over an in-memory store and over a SQLite file,
//!   with a queue that accepts at once;
//! - instructions per order parsed, mapped and planned, counted by `valgrind --tool=callgrind`
//!   (hardware counters are not available in most VMs) as the difference between a run over
//!   1,000 orders and one over none;
//! - the resident memory of 2,000 merchants' clients cached in one process, each measured in a
//!   fresh child process: the client cache as the functions run it (one HTTP client per API),
//!   and, for comparison, two HTTP clients per merchant as it was built before issue 19.

use chrono::{TimeZone, Utc};
use cin7_gss_bench::stats::{ms, quantile};
use cin7_gss_bench::webhook_fixture::WebhookFixture;
use criterion::{Criterion, Throughput};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::cin7::model::{OrderRow, SalesOrder, parse_page};
use shared::settings::{FreightMode, IntegrationSettings};
use shared::writeback::plan::{NewConsignment, plan_order};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn page(n: usize) -> Vec<u8> {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
        .single()
        .expect("a valid date");
    let orders: Vec<Value> = (1..=n)
        .map(|i| {
            integration_tests::order(
                i as i64,
                &format!("#{}", 1000 + i),
                base + chrono::Duration::seconds(i as i64),
            )
        })
        .collect();
    serde_json::to_vec(&orders).expect("page encodes")
}

fn settings() -> IntegrationSettings {
    let mut s = cin7_gss_bench::webhook_fixture::settings();
    s.write_back.send_ticket_number = true;
    s.write_back.freight = FreightMode::Cost;
    s
}

fn parsed(body: &[u8]) -> Vec<SalesOrder> {
    parse_page(body)
        .expect("page parses")
        .into_iter()
        .filter_map(|r| match r {
            OrderRow::Parsed(o) => Some(*o),
            OrderRow::Unparseable(_) => None,
        })
        .collect()
}

fn consignment(order: &SalesOrder) -> NewConsignment {
    let connote = format!("SSPOT{:07}", order.id);
    NewConsignment {
        tracking_url: Some(format!("https://gosweetspot.com/track/4180-{connote}")),
        connote,
        created_utc: Some(Utc::now()),
        shipment: None,
        webhook_cost: Some(Decimal::new(850, 2)),
    }
}

/// Builds a page of 1,000 orders, then parses, maps and plans them when `process` (the
/// workload callgrind counts, with and without the processing).
fn workload(process: bool) {
    let body = page(1000);
    let settings = settings();
    if !process {
        black_box((&body, &settings));
        return;
    }
    let orders = parsed(black_box(&body));
    for o in &orders {
        let _ = black_box(shared::pull::mapping::map_order(o, &settings));
        black_box(plan_order(
            o,
            None,
            &[consignment(o)],
            &settings,
            chrono::Utc::now(),
            &[],
        ));
    }
}

/// Instructions per order from two callgrind runs of this binary.
fn instructions_per_order() -> Value {
    let n = 1000u64;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return json!({"note": format!("no current exe: {e}")}),
    };
    let count = |process: bool| -> Result<u64, String> {
        let out = std::process::Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                "--error-exitcode=0",
            ])
            .arg(&exe)
            .env(
                "BENCH_CORE_WORKLOAD",
                if process { "process" } else { "build" },
            )
            .output()
            .map_err(|e| format!("valgrind not available: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        stderr
            .lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "valgrind did not report a count".to_string())
    };
    match (count(false), count(true)) {
        (Ok(base), Ok(with)) => json!({
            "instructions_per_order": with.saturating_sub(base) / n,
            "method": "valgrind --tool=callgrind: (Ir of parse+map+plan of 1,000 orders − Ir of the same process with none) / 1,000",
        }),
        (Err(e), _) | (_, Err(e)) => json!({"note": e}),
    }
}

fn webhook_latency(fixture_table: Arc<dyn shared::store::Table>, samples: usize) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut fixture = WebhookFixture::new(fixture_table).await;
        let warm_up = samples / 10;
        let mut deliveries = Vec::with_capacity(samples + warm_up);
        for _ in 0..samples + warm_up {
            deliveries.push(fixture.delivery().await);
        }
        let mut times = Vec::with_capacity(samples);
        for (i, d) in deliveries.iter().enumerate() {
            let t0 = Instant::now();
            let response = fixture.handle(d).await;
            let took = t0.elapsed();
            assert_eq!(response.status, 202, "{response:?}");
            if i >= warm_up {
                times.push(took);
            }
            let queued = fixture.queue.take().len();
            assert_eq!(queued, 50, "every consignment queued");
        }
        json!({
            "samples": times.len(),
            "p50_ms": ms(quantile(&times, 0.5)),
            "p99_ms": ms(quantile(&times, 0.99)),
            "max_ms": ms(quantile(&times, 1.0)),
        })
    })
}

fn estimate_us(dir: &std::path::Path, id: &str, per: f64) -> Value {
    let path = dir.join(id).join("new").join("estimates.json");
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["median"]["point_estimate"].as_f64())
        .map_or(Value::Null, |ns| json!(ns / 1000.0 / per))
}

/// Merchants whose clients [`client_memory`] caches.
const CACHED_MERCHANTS: usize = 2000;

/// This process's resident set (`VmRSS`), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The child's side of [`client_memory`]: builds `CACHED_MERCHANTS` merchants' clients and
/// prints the resident set before and after as JSON.
fn clients_workload(shared_http: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let secrets = Arc::new(integration_tests::MapSecrets(
        [("CIN7_KEY", "cin7-key"), ("GSS_KEY", "gss-key")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ));
    let settings: Vec<IntegrationSettings> = (0..CACHED_MERCHANTS)
        .map(|i| {
            let mut s = cin7_gss_bench::webhook_fixture::settings();
            s.id = format!("merchant-{i:05}");
            s.cin7.api_key.0 = "CIN7_KEY".into();
            s.gss.access_key.0 = "GSS_KEY".into();
            s
        })
        .collect();
    let store = shared::store::Store::new(
        Arc::new(cin7_gss_bench::mem_table::MemTable::default()),
        Arc::new(shared::clock::SystemClock),
    );
    let before = rss_kib();
    let kept = runtime.block_on(async {
        if shared_http {
            let cache = shared::app::ClientCache::shared(Arc::new(store), secrets);
            for s in &settings {
                shared::app::ClientProvider::clients(&cache, s)
                    .await
                    .expect("clients");
            }
            assert_eq!(cache.cached_integrations(), CACHED_MERCHANTS);
            (Some(cache), Vec::new())
        } else {
            let own: Vec<_> = settings
                .iter()
                .map(|_| {
                    (
                        shared::http::client(shared::http::Service::Cin7, Duration::from_secs(20))
                            .expect("client"),
                        shared::http::client(shared::http::Service::Gss, Duration::from_secs(20))
                            .expect("client"),
                    )
                })
                .collect();
            (None, own)
        }
    });
    let after = rss_kib();
    println!(
        "{}",
        json!({"rss_before_kib": before, "rss_after_kib": after})
    );
    drop(kept);
}

/// The resident memory of `CACHED_MERCHANTS` merchants' clients, each way measured in a child.
fn client_memory() -> Value {
    let measure = |mode: &str| -> Value {
        let out = std::process::Command::new(std::env::current_exe().expect("bench binary"))
            .env("BENCH_CORE_CLIENTS", mode)
            .output()
            .expect("child ran");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let grown = v["rss_after_kib"].as_u64().unwrap_or(0) as f64
            - v["rss_before_kib"].as_u64().unwrap_or(0) as f64;
        json!({
            "rss_mib": v["rss_after_kib"].as_u64().map(|k| k as f64 / 1024.0),
            "grown_mib": grown / 1024.0,
            "kib_per_merchant": grown / CACHED_MERCHANTS as f64,
        })
    };
    json!({
        "merchants": CACHED_MERCHANTS,
        "client_cache": measure("shared"),
        "two_http_clients_per_merchant": measure("separate"),
        "method": "VmRSS of a fresh process before and after building the clients of 2,000 merchants: ClientCache (one HTTP client per API, the functions' wiring) vs two reqwest clients per merchant (the wiring before issue 19)",
    })
}

fn main() {
    if let Ok(mode) = std::env::var("BENCH_CORE_WORKLOAD") {
        workload(mode == "process");
        return;
    }
    if let Ok(mode) = std::env::var("BENCH_CORE_CLIENTS") {
        clients_workload(mode == "shared");
        return;
    }
    let full = std::env::var("BENCH_FULL").is_ok_and(|v| v == "1");
    let samples = if full { 2000 } else { 500 };

    eprintln!("core: webhook handler latency ({samples} deliveries of 50 shipments) …");
    let memory = webhook_latency(
        Arc::new(cin7_gss_bench::mem_table::MemTable::default()),
        samples,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = webhook_latency(
        Arc::new(
            shared::store::sqlite::SqliteTable::open(&dir.path().join("store.sqlite3"))
                .expect("store"),
        ),
        samples / 5,
    );

    let criterion_dir = target_dir().join("bench").join("criterion");
    let mut c = Criterion::default()
        .output_directory(&criterion_dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if full { 10 } else { 3 }))
        .sample_size(if full { 100 } else { 30 })
        .configure_from_args();
    let body = page(250);
    let orders = parsed(&body);
    let settings = settings();
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(250));
    group.bench_function("parse_page_250", |b| {
        b.iter(|| parse_page(black_box(&body)))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("map_order", |b| {
        b.iter(|| shared::pull::mapping::map_order(black_box(&orders[0]), &settings))
    });
    let new = [consignment(&orders[0])];
    group.bench_function("plan_order", |b| {
        b.iter(|| {
            plan_order(
                black_box(&orders[0]),
                None,
                &new,
                &settings,
                chrono::Utc::now(),
                &[],
            )
        })
    });
    group.finish();
    c.final_summary();

    eprintln!("core: instructions per order (callgrind) …");
    let instructions = instructions_per_order();
    eprintln!("core: memory of {CACHED_MERCHANTS} merchants' cached clients …");
    let clients = client_memory();
    eprintln!("core: {clients}");
    let group_dir = criterion_dir.join("core");
    let result = json!({
        "webhook_latency": {"memory": memory, "sqlite": sqlite,
            "method": "shared::webhook::handle on a signed delivery of 50 new consignments of published orders; queue excluded (accepts at once)"},
        "cpu_per_order": {
            "parse_us": estimate_us(&group_dir, "parse_page_250", 250.0),
            "map_us": estimate_us(&group_dir, "map_order", 1.0),
            "plan_us": estimate_us(&group_dir, "plan_order", 1.0),
            "instructions_per_order": instructions.get("instructions_per_order"),
            "instructions_note": instructions.get("note").or(instructions.get("method")),
        },
        "client_memory": clients,
    });
    let out = target_dir().join("bench").join("core.json");
    std::fs::create_dir_all(target_dir().join("bench")).expect("target/bench");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&result).expect("encodes") + "\n",
    )
    .expect("core.json written");
    eprintln!("core: written {}", out.display());
}
