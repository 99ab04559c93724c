//! The `runner` bench (`cargo bench -p cin7-gss-bench --bench runner`, no harness): the
//! measurements `make bench` prints and writes to `bench/results.json`.
//!
//! 1. Init time of the three function binaries (process start → first `GET
//!    …/invocation/next` on a local Runtime API stub), 30 starts each.
//! 2. Peak RSS (`VmHWM`) of each over a realistic invocation.
//! 3. Package size (the `make package` zip, else the binary zipped here).
//! 4. Throughput of the whole path against the rate-limit bound (time-compressed by default,
//!    real time with `BENCH_FULL=1`).
//! 5. Calls per order at several sizes against the budget.
//! 6. Webhook latency and 7. CPU per order, read from `target/bench/core.json` (the `core`
//!    bench writes it; `make bench` runs it first).
//!
//! Items 1 and 2 need AWS on a local endpoint: run under `scripts/with-moto` (make bench does).
//! Environment: `BENCH_FULL=1` (full sizes, real-time limits), `BENCH_PROFILE=release|debug`
//! (which function binaries; default release, falling back to debug when missing),
//! `BENCH_THROUGHPUT_ORDERS` and `BENCH_SECOND_MS` (override the throughput run).

use chrono::{TimeZone, Utc};
use cin7_gss_bench::bound::{
    Budget, CIN7_LIMITS, GSS_LIMITS, Limit, cin7_ceilings, earliest_last_start, gss_ceilings,
};
use cin7_gss_bench::flow::{self, FlowConfig, FlowResult, Schedule};
use cin7_gss_bench::stats::{ms, quantile};
use integration_tests::runtime_stub::{FunctionProcess, Outcome, RuntimeStub, start_function};
use integration_tests::{CIN7_KEY, CIN7_USER, GSS_KEY, GSS_SITE, order, sandbox_settings};
use sandbox::{Cin7Sandbox, GssSandbox, Ticket};
use serde_json::{Value, json};
use shared::store::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FUNCTIONS: [&str; 3] = ["order-pull", "consignment-webhook", "write-back"];
const STARTS: usize = 30;
/// lambda-perf (maxday.github.io/lambda-perf): Rust hello-world init, provided.al2023 arm64.
const LAMBDA_PERF_RUST_ARM64_MS: f64 = 13.8;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn full() -> bool {
    std::env::var("BENCH_FULL").is_ok_and(|v| v == "1")
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The function binaries measured, and the profile they were built with.
fn binaries() -> (String, Vec<(String, PathBuf)>) {
    let wanted = std::env::var("BENCH_PROFILE").unwrap_or_else(|_| "release".into());
    let found = |profile: &str| {
        FUNCTIONS
            .iter()
            .map(|f| (f.to_string(), target_dir().join(profile).join(f)))
            .collect::<Vec<_>>()
    };
    let release = found(&wanted);
    if release.iter().all(|(_, p)| p.exists()) {
        return (wanted, release);
    }
    eprintln!(
        "bench: {wanted} binaries missing (cargo build --release -p order-pull -p consignment-webhook -p write-back); measuring debug"
    );
    ("debug".into(), found("debug"))
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "memory_gib": (mem_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

/// Peak resident set size so far (`VmHWM`) of a running function, in KiB.
fn peak_rss_kib(function: &FunctionProcess) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", function.0.id())).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Everything the binaries need on the local AWS endpoint, and the sandboxes.
struct World {
    table: String,
    queue_url: String,
    pull_queue_url: String,
    secret_prefix: String,
    cin7: Cin7Sandbox,
    gss: GssSandbox,
}

const WEBHOOK_SECRET: &str = "bench-webhook-secret";

impl World {
    async fn new() -> Self {
        let sdk = shared::aws_config::sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let table = integration_tests::unique_name("bench");
        shared::store::dynamodb::create_table(&dynamo, &table)
            .await
            .expect("table created");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = shared::queue::sqs::create_queue(
            &sqs,
            &integration_tests::unique_name("bench-q"),
            None,
        )
        .await
        .expect("queue created");
        let pull_queue_url = shared::queue::sqs::create_queue(
            &sqs,
            &integration_tests::unique_name("bench-pulls"),
            None,
        )
        .await
        .expect("queue created");
        let secrets = shared::aws_config::secrets_manager(&sdk, Duration::from_secs(1));
        let secret_prefix = integration_tests::unique_name("cin7-gss-bench");
        integration_tests::put_sandbox_secrets(&secrets, &secret_prefix, WEBHOOK_SECRET).await;
        let cin7 = Cin7Sandbox::start(CIN7_USER, CIN7_KEY)
            .await
            .expect("cin7 sandbox");
        let gss = GssSandbox::start(GSS_SITE, GSS_KEY)
            .await
            .expect("gss sandbox");
        let store = shared::aws_config::dynamo_store(&sdk, &table);
        let mut settings = sandbox_settings("acme", &cin7, &gss);
        settings.cin7.api_key.0 = format!("{secret_prefix}/cin7");
        settings.gss.access_key.0 = format!("{secret_prefix}/gss");
        settings.webhook.secret.0 = format!("{secret_prefix}/webhook");
        settings.webhook.signature_param = Some("signature".into());
        settings.import.max_age_days = 5000;
        settings.write_back.send_ticket_number = true;
        settings.write_back.freight = shared::settings::FreightMode::Cost;
        store
            .put_integration(&settings)
            .await
            .expect("integration saved");
        Self {
            table,
            queue_url,
            pull_queue_url,
            secret_prefix,
            cin7,
            gss,
        }
    }

    fn env(&self, name: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("TABLE_NAME", self.table.clone()),
            ("SECRETS_CACHE_SECONDS", "300".into()),
        ];
        match name {
            "order-pull" => {
                env.push(("WRITE_BACK_QUEUE_URL", self.queue_url.clone()));
                env.push(("PULL_QUEUE_URL", self.pull_queue_url.clone()));
                env.push(("PULL_CONCURRENCY", "4".into()));
                env.push(("PULL_MARGIN_SECONDS", "1".into()));
            }
            "consignment-webhook" => env.push(("WRITE_BACK_QUEUE_URL", self.queue_url.clone())),
            _ => {
                env.push(("WRITE_BACK_QUEUE_URL", self.queue_url.clone()));
                env.push(("MAX_RECEIVE_COUNT", "5".into()));
                env.push(("SHOPIFY_TRIGGER_URL_TEMPLATE", self.cin7.shopify_template()));
            }
        }
        env
    }
}

async fn init_times(world: &World, binaries: &[(String, PathBuf)]) -> Value {
    let mut out = serde_json::Map::new();
    for (name, path) in binaries {
        let mut samples = Vec::new();
        let mut failures = 0;
        for _ in 0..STARTS {
            let stub = RuntimeStub::start().await;
            let t0 = Instant::now();
            let f = start_function(path, name, &stub, &world.env(name));
            let deadline = t0 + Duration::from_secs(10);
            while stub.first_next_at().is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            match stub.first_next_at() {
                Some(at) => samples.push(at.duration_since(t0)),
                None => failures += 1,
            }
            drop(f);
        }
        out.insert(
            name.clone(),
            json!({
                "starts": samples.len(),
                "failures": failures,
                "median_ms": ms(quantile(&samples, 0.5)),
                "p90_ms": ms(quantile(&samples, 0.9)),
                "min_ms": ms(quantile(&samples, 0.0)),
                "max_ms": ms(quantile(&samples, 1.0)),
            }),
        );
    }
    Value::Object(out)
}

/// Runs one invocation of a fresh process and reads its peak RSS before it is stopped.
async fn invoke_for_rss(
    world: &World,
    name: &str,
    path: &Path,
    event: Value,
) -> (Option<u64>, Duration, Value) {
    let stub = RuntimeStub::start().await;
    let f = start_function(path, name, &stub, &world.env(name));
    let t0 = Instant::now();
    let outcome = stub.invoke(event, Duration::from_secs(300)).await;
    let took = t0.elapsed();
    // The answer is posted before the runtime asks for the next event; wait for that so the
    // process is idle, then read the high-water mark.
    let until = Instant::now() + Duration::from_secs(5);
    while stub.next_calls() < 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rss = peak_rss_kib(&f);
    drop(f);
    let answer = match outcome {
        Outcome::Response(v) => v,
        Outcome::Error(e) => json!({"error": e}),
    };
    (rss, took, answer)
}

async fn peak_rss(world: &World, binaries: &[(String, PathBuf)], orders: usize) -> Value {
    let path = |n: &str| {
        binaries
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, p)| p.clone())
            .expect("binary listed")
    };
    let base = Utc
        .with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
        .single()
        .expect("a valid date");
    for i in 1..=orders {
        world.cin7.put_order(order(
            i as i64,
            &format!("R-{i}"),
            base + chrono::Duration::seconds(i as i64),
        ));
    }
    let mut out = serde_json::Map::new();

    // A direct pull (the schedule's EventBridge event runs the sweeper, which pulls nothing).
    let direct = json!({"integration_id": "acme"});
    let (rss, took, answer) =
        invoke_for_rss(world, "order-pull", &path("order-pull"), direct).await;
    out.insert(
        "order-pull".into(),
        json!({
            "invocation": format!("direct pull of {orders} new orders"),
            "peak_rss_mib": rss.map(|k| k as f64 / 1024.0),
            "invocation_s": took.as_secs_f64(),
            "published": answer["summaries"][0]["published"],
            "outcome": answer["summaries"][0]["outcome"],
        }),
    );

    let mut shipments = Vec::new();
    for i in 1..=100.min(orders) {
        if let Ok(s) = world.gss.ticket(&format!("R-{i}"), Ticket::default()).await {
            shipments.push((i as i64, s));
        }
    }
    let delivery: Vec<_> = shipments.iter().take(50).map(|(_, s)| s.clone()).collect();
    let body = serde_json::to_string(&delivery).expect("shipments encode");
    let signature =
        shared::signature::sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes()).expect("HMAC key");
    let (rss, took, answer) = invoke_for_rss(
        world,
        "consignment-webhook",
        &path("consignment-webhook"),
        integration_tests::webhook_event("acme", &body, &signature),
    )
    .await;
    out.insert(
        "consignment-webhook".into(),
        json!({
            "invocation": format!("signed delivery of {} shipments", delivery.len()),
            "peak_rss_mib": rss.map(|k| k as f64 / 1024.0),
            "invocation_s": took.as_secs_f64(),
            "status": answer["statusCode"],
            "answer": answer["body"],
        }),
    );

    let records: Vec<Value> = shipments
        .iter()
        .enumerate()
        .map(|(n, (id, s))| {
            let job = shared::jobs::WriteBackJob {
                integration_id: "acme".into(),
                connote: s.consignment_no.clone().unwrap_or_default(),
                packing_slip: format!("R-{id}"),
                cin7_id: *id,
                reference: Some(format!("R-{id}")),
                tracking_url: s.tracking.clone(),
                total_cost: s.total_cost,
                created_utc: s.created_utc,
                manual_ticket: false,
            };
            json!({
                "messageId": format!("m-{n}"), "receiptHandle": format!("r-{n}"),
                "body": job.to_body().expect("job body"),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:ap-southeast-2:123456789012:write-back",
                "awsRegion": "ap-southeast-2"
            })
        })
        .collect();
    let jobs = records.len();
    let (rss, took, answer) = invoke_for_rss(
        world,
        "write-back",
        &path("write-back"),
        json!({"Records": records}),
    )
    .await;
    let dispatched = (1..=jobs as i64)
        .filter(|id| {
            world
                .cin7
                .order(*id)
                .is_some_and(|o| o["stage"] == "Dispatched")
        })
        .count();
    out.insert(
        "write-back".into(),
        json!({
            "invocation": format!("SQS batch of {jobs} jobs"),
            "peak_rss_mib": rss.map(|k| k as f64 / 1024.0),
            "invocation_s": took.as_secs_f64(),
            "failed": answer["batchItemFailures"].as_array().map(Vec::len),
            "dispatched": dispatched,
        }),
    );
    let _ = &world.secret_prefix;
    Value::Object(out)
}

/// Size of a zip, and the size and ELF machine of the `bootstrap` inside it.
fn inspect_zip(zip: &Path) -> Option<(u64, u64, String)> {
    let script = "import sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        i = z.getinfo('bootstrap')\n\
        h = z.open(i).read(20)\n\
        m = {0x3e: 'x86_64', 0xb7: 'aarch64'}.get(int.from_bytes(h[18:20], 'little'), 'unknown')\n\
        print(i.file_size, m)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let inner = parts.next()?.parse().ok()?;
    let arch = parts.next()?.to_string();
    Some((std::fs::metadata(zip).ok()?.len(), inner, arch))
}

fn package_sizes(binaries: &[(String, PathBuf)]) -> Value {
    let mut out = serde_json::Map::new();
    let dir = target_dir().join("bench");
    let _ = std::fs::create_dir_all(&dir);
    let mib = |b: u64| b as f64 / 1024.0 / 1024.0;
    for (name, path) in binaries {
        // The binary measured here, zipped as Lambda wants it.
        let zip = dir.join(format!("{name}.zip"));
        let script = "import sys, zipfile\n\
            with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n\
            \x20   z.write(sys.argv[1], 'bootstrap')\n";
        let zipped = Command::new("python3")
            .args(["-c", script])
            .arg(path)
            .arg(&zip)
            .status()
            .is_ok_and(|s| s.success());
        let own = zipped.then(|| inspect_zip(&zip)).flatten();
        let packaged = target_dir().join("lambda").join(name).join("bootstrap.zip");
        let made = packaged.exists().then(|| inspect_zip(&packaged)).flatten();
        let entry = |z: Option<(u64, u64, String)>, source: &str| {
            z.map(|(zip, inner, arch)| {
                json!({"zip_mib": mib(zip), "binary_mib": mib(inner), "arch": arch, "source": source})
            })
        };
        let own = entry(own, "release binary zipped here (deflate, level 9)");
        let made = entry(made, "make package (target/lambda/<name>/bootstrap.zip)");
        // The packaged zip is what is deployed; it is the headline when there is one.
        let headline = made
            .clone()
            .or(own.clone())
            .unwrap_or(json!({"error": "no zip"}));
        let mut v = headline;
        v["make_package"] = made.unwrap_or(Value::Null);
        v["zipped_here"] = own.unwrap_or(Value::Null);
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn calls_json(c: &flow::Calls) -> Value {
    json!({"cin7_get": c.cin7_get, "cin7_put": c.cin7_put, "gss_get": c.gss_get, "gss_put": c.gss_put})
}

fn throughput_json(r: &FlowResult, factor: f64) -> Value {
    let budget = Budget::for_orders(r.orders as u64);
    let bound_at = |cin7: &[Limit], gss: &[Limit]| {
        (
            earliest_last_start(budget.cin7(), cin7).mul_f64(factor),
            earliest_last_start(budget.gss(), gss).mul_f64(factor),
        )
    };
    let (b_cin7, b_gss) = bound_at(&CIN7_LIMITS, &GSS_LIMITS);
    let bound = b_cin7.max(b_gss);
    let (c_cin7, c_gss) = bound_at(&cin7_ceilings(), &gss_ceilings());
    let ceiling_bound = c_cin7.max(c_gss);
    let ratio = |d: Duration| {
        if d.is_zero() {
            Value::Null
        } else {
            json!(r.wall.as_secs_f64() / d.as_secs_f64())
        }
    };
    json!({
        "orders": r.orders,
        "time_factor": factor,
        "schedule": format!("{:?}", r.schedule),
        "wall_s": r.wall.as_secs_f64(),
        "pull_done_s": r.pull_done.as_secs_f64(),
        "webhooks_done_s": r.webhooks_done.as_secs_f64(),
        "bound_s": bound.as_secs_f64(),
        "bound_cin7_s": b_cin7.as_secs_f64(),
        "bound_gss_s": b_gss.as_secs_f64(),
        "bound_at_our_ceilings_s": ceiling_bound.as_secs_f64(),
        "wall_over_bound": ratio(bound),
        "wall_over_ceiling_bound": ratio(ceiling_bound),
        "cin7_calls": r.calls.cin7(),
        "gss_calls": r.calls.gss(),
        "calls": calls_json(&r.calls),
        "budget_cin7": budget.cin7(),
        "budget_gss": budget.gss(),
        "throttled_429": {"cin7": r.cin7_throttled, "gss": r.gss_throttled},
        "dispatched": r.dispatched,
        "written_back": r.written_back,
    })
}

fn efficiency_json(r: &FlowResult) -> Value {
    let n = r.orders as u64;
    let b = Budget::for_orders(n);
    let per = |c: u64| c as f64 / n.max(1) as f64;
    let phases = r.phases.unwrap_or_default();
    let (import, write_back) = (phases.import, phases.write_back);
    json!({
        "orders": n,
        "import": {"cin7": import.cin7(), "gss": import.gss(), "cin7_per_order": per(import.cin7()),
                    "gss_per_order": per(import.gss()), "budget_cin7": b.import_cin7, "budget_gss": b.import_gss,
                    "calls": calls_json(&import)},
        "write_back": {"cin7": write_back.cin7(), "gss": write_back.gss(), "cin7_per_order": per(write_back.cin7()),
                        "gss_per_order": per(write_back.gss()), "budget_cin7": b.writeback_cin7, "budget_gss": b.writeback_gss,
                        "calls": calls_json(&write_back)},
        "within_budget": r.phases.is_some()
            && import.cin7() <= b.import_cin7 && import.gss() <= b.import_gss
            && write_back.cin7() <= b.writeback_cin7 && write_back.gss() <= b.writeback_gss,
        "dispatched": r.dispatched,
    })
}

fn f(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => v.to_string(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

fn print_table(results: &Value) {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let profile = results["binaries_profile"].as_str().unwrap_or("?");
    for name in FUNCTIONS {
        let i = &results["init_time"][name];
        if i.is_object() {
            let median = i["median_ms"].as_f64().unwrap_or(f64::MAX);
            rows.push([
                format!("init {name} ({profile})"),
                format!(
                    "median {} ms, p90 {} ms ({} starts)",
                    f(&i["median_ms"]),
                    f(&i["p90_ms"]),
                    i["starts"]
                ),
                format!("≤ 20 ms median (lambda-perf Rust arm64: {LAMBDA_PERF_RUST_ARM64_MS} ms)"),
                verdict(Some(median <= 20.0)).into(),
            ]);
        }
    }
    for name in FUNCTIONS {
        let r = &results["peak_rss"][name];
        if r.is_object() {
            let mib = r["peak_rss_mib"].as_f64();
            rows.push([
                format!("peak RSS {name}"),
                format!(
                    "{} MiB ({}, {} s)",
                    f(&r["peak_rss_mib"]),
                    r["invocation"].as_str().unwrap_or(""),
                    f(&r["invocation_s"])
                ),
                "≤ 40 MB".into(),
                verdict(mib.map(|m| m * 1.048_576 <= 40.0)).into(),
            ]);
        }
    }
    for name in FUNCTIONS {
        let p = &results["package_size"][name];
        if p.is_object() {
            let mib = p["zip_mib"].as_f64();
            rows.push([
                format!("zip {name}"),
                format!(
                    "{} MiB = {} MB ({} binary {} MiB; {}){}",
                    f(&p["zip_mib"]),
                    f(&json!(mib.unwrap_or_default() * 1.048_576)),
                    p["arch"].as_str().unwrap_or("?"),
                    f(&p["binary_mib"]),
                    p["source"].as_str().unwrap_or(""),
                    if p["make_package"].is_object() && p["zipped_here"].is_object() {
                        format!(
                            "; {} release zipped here: {} MiB",
                            p["zipped_here"]["arch"].as_str().unwrap_or("?"),
                            f(&p["zipped_here"]["zip_mib"])
                        )
                    } else {
                        String::new()
                    }
                ),
                "≤ 4 MB".into(),
                verdict(mib.map(|m| m * 1.048_576 <= 4.0)).into(),
            ]);
        }
    }
    let t = &results["throughput"];
    if t.is_object() {
        let ratio = t["wall_over_bound"].as_f64();
        let throttled = t["throttled_429"]["cin7"].as_u64().unwrap_or(0)
            + t["throttled_429"]["gss"].as_u64().unwrap_or(0);
        rows.push([
            format!(
                "throughput {} orders (time × {})",
                t["orders"], t["time_factor"]
            ),
            format!(
                "wall {} s, pipelined (unpaced {} s; pull done at {} s); bound {} s (CIN7 {} s, GSS {} s; at our ceilings {} s); {} CIN7 + {} GSS calls; 429s: {}; dispatched {}",
                f(&t["wall_s"]),
                f(&t["unpaced_wall_s"]),
                f(&t["pull_done_s"]),
                f(&t["bound_s"]),
                f(&t["bound_cin7_s"]),
                f(&t["bound_gss_s"]),
                f(&t["bound_at_our_ceilings_s"]),
                t["cin7_calls"],
                t["gss_calls"],
                throttled,
                t["dispatched"]
            ),
            "within 10 % of the bound, 0 429s".into(),
            verdict(ratio.map(|r| r <= 1.10 && throttled == 0)).into(),
        ]);
    }
    if let Some(list) = results["call_efficiency"].as_array() {
        for e in list {
            rows.push([
                format!("calls for {} orders", e["orders"]),
                format!(
                    "import CIN7 {} (budget {}), GSS {} (budget {}); write-back CIN7 {} (budget {}), GSS {} (budget {})",
                    e["import"]["cin7"],
                    e["import"]["budget_cin7"],
                    e["import"]["gss"],
                    e["import"]["budget_gss"],
                    e["write_back"]["cin7"],
                    e["write_back"]["budget_cin7"],
                    e["write_back"]["gss"],
                    e["write_back"]["budget_gss"]
                ),
                "the budget exactly".into(),
                verdict(e["within_budget"].as_bool()).into(),
            ]);
        }
    }
    let core = &results["core"];
    if let Some(w) = core.get("webhook_latency").filter(|w| w.is_object()) {
        rows.push([
            "webhook handle, 50 shipments".into(),
            format!(
                "p50 {} ms, p99 {} ms ({} deliveries, in-memory store; SQLite file: p50 {} ms, p99 {} ms)",
                f(&w["memory"]["p50_ms"]),
                f(&w["memory"]["p99_ms"]),
                w["memory"]["samples"],
                f(&w["sqlite"]["p50_ms"]),
                f(&w["sqlite"]["p99_ms"])
            ),
            "p99 ≤ 2 ms".into(),
            verdict(w["memory"]["p99_ms"].as_f64().map(|p| p <= 2.0)).into(),
        ]);
    }
    if let Some(c) = core.get("cpu_per_order").filter(|c| c.is_object()) {
        rows.push([
            "CPU per order".into(),
            format!(
                "parse {} µs, map {} µs, plan {} µs; instructions/order: {}",
                f(&c["parse_us"]),
                f(&c["map_us"]),
                f(&c["plan_us"]),
                c["instructions_per_order"]
                    .as_u64()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| c["instructions_note"].as_str().unwrap_or("n/a").into())
            ),
            "reported".into(),
            "n/a".into(),
        ]);
    } else {
        rows.push([
            "webhook latency, CPU per order".into(),
            "not measured: run `cargo bench -p cin7-gss-bench --bench core` first".into(),
            String::new(),
            "n/a".into(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
                .max(8)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(["measure", "result", "target", "verdict"]);
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3]]);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = full();
    let started = Instant::now();
    let (profile, binaries) = binaries();
    let mut results = json!({
        "mode": if full { "full" } else { "default" },
        "generated_at": Utc::now().to_rfc3339(),
        "machine": machine(),
        "binaries_profile": profile,
    });

    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        if binaries.iter().all(|(_, p)| p.exists()) {
            eprintln!("bench: init time ({STARTS} starts each) …");
            let world = World::new().await;
            results["init_time"] = init_times(&world, &binaries).await;
            results["init_time"]["reference_lambda_perf_rust_arm64_ms"] =
                json!(LAMBDA_PERF_RUST_ARM64_MS);
            eprintln!("bench: peak RSS …");
            results["peak_rss"] = peak_rss(&world, &binaries, 1000).await;
        } else {
            results["init_time"] = json!({"skipped": "function binaries not built"});
        }
    } else {
        results["init_time"] = json!({"skipped": "AWS_ENDPOINT_URL not set: run under scripts/with-moto (make bench does)"});
    }
    results["package_size"] = package_sizes(&binaries);

    let (orders, second_ms) = if full { (10_000, 1000) } else { (3_000, 200) };
    let orders = env_number("BENCH_THROUGHPUT_ORDERS").map_or(orders, |n| n as usize);
    let second_ms = env_number("BENCH_SECOND_MS").unwrap_or(second_ms);
    let factor = second_ms as f64 / 1000.0;
    eprintln!("bench: throughput, {orders} orders, a second of {second_ms} ms …");
    let paced = flow::run(FlowConfig {
        orders,
        time_factor: Some(factor),
        schedule: Schedule::Pipelined,
    })
    .await;
    results["throughput"] = throughput_json(&paced, factor);
    let unpaced = flow::run(FlowConfig {
        orders,
        time_factor: None,
        schedule: Schedule::Pipelined,
    })
    .await;
    results["throughput"]["unpaced_wall_s"] = json!(unpaced.wall.as_secs_f64());

    let sizes: &[usize] = if full {
        &[1, 10, 100, 10_000]
    } else {
        &[1, 10, 100, 1000]
    };
    let mut efficiency = Vec::new();
    for &n in sizes {
        eprintln!("bench: calls for {n} orders …");
        let r = flow::run(FlowConfig {
            orders: n,
            time_factor: None,
            schedule: Schedule::Sequential,
        })
        .await;
        efficiency.push(efficiency_json(&r));
    }
    results["call_efficiency"] = Value::Array(efficiency);

    let core_path = target_dir().join("bench").join("core.json");
    results["core"] = std::fs::read_to_string(&core_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| json!({"missing": core_path.display().to_string()}));
    results["runner_seconds"] = json!(started.elapsed().as_secs_f64());

    print_table(&results);
    let out = workspace().join("bench").join("results.json");
    let text = serde_json::to_string_pretty(&results).expect("results encode");
    std::fs::write(&out, text + "\n").expect("results written");
    println!("\nwritten: {}", out.display());
}
