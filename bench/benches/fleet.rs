//! `make bench`'s fleet step: the fleet simulation of `src/fleet.rs` at the mode's size, its
//! table, and its figures merged into `bench/results.json` under `fleet`.
//!
//! Environment: `BENCH_FULL=1` (full size); `BENCH_FLEET_TENANTS`, `BENCH_FLEET_HOURS`,
//! `BENCH_FLEET_SPEED` (simulated seconds per second), `BENCH_FLEET_SEED`, `BENCH_FLEET_BACKLOG`
//! (the backlog merchant's import) override.

use cin7_gss_bench::cost::PRICES;
use cin7_gss_bench::fleet::{FleetConfig, run};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The price table, for the results file.
fn prices() -> Value {
    let p = &PRICES;
    let row = |price: &cin7_gss_bench::cost::Price| json!({"usd": price.usd, "unit": price.unit, "recorded": price.recorded, "source": price.source});
    json!({
        "region": "ap-southeast-2",
        "lambda_arm_gb_s": row(&p.lambda_arm_gb_s),
        "lambda_requests": row(&p.lambda_requests),
        "dynamodb_write_units": row(&p.dynamodb_write_units),
        "dynamodb_read_units": row(&p.dynamodb_read_units),
        "sqs_requests": row(&p.sqs_requests),
        "api_gateway_http_requests": row(&p.api_gateway_http_requests),
        "secret_month": row(&p.secret_month),
        "secrets_api_calls": row(&p.secrets_api_calls),
        "cloudwatch_metric_month": row(&p.cloudwatch_metric_month),
        "cloudwatch_alarm_month": row(&p.cloudwatch_alarm_month),
        "log_ingestion_gb": row(&p.log_ingestion_gb),
    })
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// What a run is judged on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Judged {
    /// The peak hours: freshness, the backlog, the call budget, the write-back's latency.
    Peak,
    /// A whole day: what a merchant costs a month.
    Day,
}

/// Runs one fleet simulation, prints its table and returns its figures for the results file.
async fn measure(label: &str, config: FleetConfig, judged: Judged) -> Value {
    let seed = config.seed;
    eprintln!(
        "bench: fleet{label}, {} merchants, {} simulated hours at {}× (seed {seed}; BENCH_FLEET_SEED replays) …",
        config.tenants, config.simulated_hours, config.speed
    );
    let result = run(config).await;
    let mut fleet = serde_json::to_value(&result).expect("the result encodes");
    fleet["seed"] = json!(seed);
    fleet["targets"] = json!({"freshness_p95_s": 60, "others_during_backlog_p95_s": 60, "cin7_budget_percent": 40,
        "writeback_p95_s": 30, "cost_usd_per_merchant_month": 0.50});
    fleet["prices"] = prices();
    println!(
        "\nfleet{label} ({} merchants, {} simulated h at {}×, {:.0} s)",
        result.tenants, result.simulated_hours, result.speed, result.wall_s
    );
    for (label, value, target) in [
        ("freshness p50 (s)", result.freshness_p50_s, None),
        ("freshness p95 (s)", result.freshness_p95_s, Some(60.0)),
        (
            "  without the backlog merchant",
            result.freshness_p95_s_backlog_tenant_excluded,
            Some(60.0),
        ),
        (
            "  others during the backlog import",
            result
                .freshness_p95_s_others_during_backlog
                .unwrap_or(f64::NAN),
            Some(60.0),
        ),
        (
            "CIN7 calls per idle merchant-day (run, ×24 h)",
            result.cin7_calls_per_idle_tenant_day,
            None,
        ),
        (
            "CIN7 calls per idle merchant-day (policy)",
            f64::from(result.cin7_calls_per_idle_tenant_day_policy),
            None,
        ),
        (
            "most of the daily 5,000 any merchant used (%)",
            result.cin7_budget_percent_max,
            Some(40.0),
        ),
        (
            "pull invocations per merchant-day",
            result.pull_invocations_per_tenant_day,
            None,
        ),
        (
            "pull handler p50 (ms, wall)",
            result.pull_handler_ms_p50,
            None,
        ),
        (
            "pull lag p95 (s after due: this machine's capacity)",
            result.pull_lag_p95_s,
            None,
        ),
        (
            "pull GB-s per merchant-day (128 MB, wall time only)",
            result.pull_gb_s_per_tenant_day,
            None,
        ),
        (
            "write-back p50 (s, ticket → CIN7 dispatched)",
            result.writeback_p50_s,
            None,
        ),
        (
            "write-back p95 (s, ticket → CIN7 dispatched)",
            result.writeback_p95_s,
            Some(30.0),
        ),
        (
            "write-back GB-s per merchant-day (modelled)",
            result.writeback_gb_s_per_tenant_day,
            None,
        ),
        (
            "Lambda GB-s per merchant-day, all functions",
            result.lambda_gb_s_per_tenant_day,
            None,
        ),
        (
            "DynamoDB writes per merchant-day",
            result.dynamodb_writes_per_tenant_day,
            None,
        ),
        (
            "DynamoDB write units per merchant-day",
            result.dynamodb_write_units_per_tenant_day,
            None,
        ),
        (
            "DynamoDB reads per merchant-day",
            result.dynamodb_reads_per_tenant_day,
            None,
        ),
        (
            "SQS requests per merchant-day",
            result.sqs_requests_per_tenant_day,
            None,
        ),
        (
            "Secrets Manager calls per merchant-day",
            result.secrets_calls_per_tenant_day,
            None,
        ),
        (
            "CloudWatch metrics per merchant",
            result.metrics_per_tenant,
            None,
        ),
        (
            "log bytes per merchant-day",
            result.log_bytes_per_tenant_day,
            None,
        ),
        (
            "cost per merchant-month (USD, this run's rate all day)",
            result.cost_usd_per_merchant_month["total"],
            Some(0.50),
        ),
    ] {
        // The cost target is judged on the day, every other on the peak hours.
        let is_cost = label.starts_with("cost per merchant-month");
        let target = target
            .filter(|_| is_cost == (judged == Judged::Day))
            .map_or(String::new(), |t| format!("   (target ≤ {t})"));
        println!("  {label:<48} {value:>10.2}{target}");
    }
    println!(
        "  orders {} arrived, {} published (backlog included); backlog imported after {:?} s; {} re-seeded by the sweeper; {} CIN7 429s",
        result.orders,
        result.orders_published,
        result.backlog_imported_s,
        result.reseeded_by_sweeper,
        result.cin7_429s
    );
    println!("  pull messages: {:?}", result.messages);
    println!("  records: {:?}", result.records_by_state);
    println!(
        "  consignments {} ticketed, {} written back by the end",
        result.consignments, result.written_back
    );
    println!(
        "  DynamoDB write units per merchant-day by item: {:.0?}",
        result.dynamodb_write_units_by_kind_per_tenant_day
    );
    println!("  cost per merchant-month (USD) by fleet size:");
    for (n, cost) in &result.cost_usd_per_merchant_month_at {
        let parts: Vec<String> = cost
            .iter()
            .filter(|(k, _)| *k != "total")
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        println!("    {n:>6}: {:.3}  ({})", cost["total"], parts.join(", "));
    }
    fleet
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The functions' log lines, counted (not kept) as CloudWatch Logs would ingest them: at
    // `info`, in the Lambda runtime's default text format.
    tracing_subscriber::fmt()
        .with_writer(|| cin7_gss_bench::counting::LogBytes)
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .init();
    let full = std::env::var_os("BENCH_FULL").is_some_and(|v| v == "1");
    // Full mode: as many merchants as this machine's open-file limit allows (six descriptors
    // a merchant: two sandbox listeners and both ends of two connections), slowed to what two
    // cores simulate without falling behind (the pull, the webhook and the write-back of every
    // merchant): see bench/README.md.
    let (tenants, hours, speed) = if full {
        (3_000.0, 2.0, 8.0)
    } else {
        (1_000.0, 2.0, 24.0)
    };
    // Parsed as an integer: a u64 seed does not survive a round trip through f64.
    let seed = std::env::var("BENCH_FLEET_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let config = FleetConfig {
        tenants: env_f64("BENCH_FLEET_TENANTS").unwrap_or(tenants) as usize,
        simulated_hours: env_f64("BENCH_FLEET_HOURS").unwrap_or(hours),
        warmup_hours: 0.25,
        speed: env_f64("BENCH_FLEET_SPEED").unwrap_or(speed),
        orders_per_day: 200.0,
        large_orders_per_day: 2_000.0,
        backlog: env_f64("BENCH_FLEET_BACKLOG").map_or(10_000, |b| b as usize),
        seed,
    };
    let mut fleet = measure("", config.clone(), Judged::Peak).await;
    // The day: a smaller fleet over 24 simulated hours (the business hours' peaks, the quiet
    // evening, the night's 15-minute polls), at a speed the machine keeps up with at that size;
    // what a merchant costs a month is priced from its counts (bench/README.md, "The cost
    // model"). BENCH_FLEET_DAY=0 skips it.
    if std::env::var_os("BENCH_FLEET_DAY").is_none_or(|v| v != "0") {
        let day = FleetConfig {
            tenants: env_f64("BENCH_FLEET_DAY_TENANTS").map_or(100, |t| t as usize),
            simulated_hours: 24.0,
            speed: env_f64("BENCH_FLEET_DAY_SPEED").unwrap_or(96.0),
            backlog: 0,
            seed: config.seed.wrapping_add(1),
            ..config
        };
        fleet["day"] = measure(" day", day, Judged::Day).await;
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results.json");
    let mut results: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| json!({}));
    results["fleet"] = fleet;
    let text = serde_json::to_string_pretty(&results).expect("results encode");
    std::fs::write(&path, text + "\n").expect("results written");
    println!("\nwritten: {} (fleet)", path.display());
}
