//! `make bench`'s fleet step: the fleet simulation of `src/fleet.rs` at the mode's size, its
//! table, and its figures merged into `bench/results.json` under `fleet`.
//!
//! Environment: `BENCH_FULL=1` (full size); `BENCH_FLEET_TENANTS`, `BENCH_FLEET_HOURS`,
//! `BENCH_FLEET_SPEED` (simulated seconds per second), `BENCH_FLEET_SEED` override.

use cin7_gss_bench::fleet::{FleetConfig, run};
use serde_json::{Value, json};
use std::path::PathBuf;

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::var_os("BENCH_FULL").is_some_and(|v| v == "1");
    // Full mode: as many merchants as this machine's open-file limit allows (six descriptors
    // a merchant: two sandbox listeners and both ends of two connections), slowed to what two
    // cores simulate without falling behind: see bench/README.md.
    let (tenants, hours, speed) = if full {
        (3_000.0, 2.0, 16.0)
    } else {
        (1_000.0, 2.0, 48.0)
    };
    let seed = env_f64("BENCH_FLEET_SEED").map_or_else(|| fastrand::u64(..), |s| s as u64);
    let config = FleetConfig {
        tenants: env_f64("BENCH_FLEET_TENANTS").unwrap_or(tenants) as usize,
        simulated_hours: env_f64("BENCH_FLEET_HOURS").unwrap_or(hours),
        warmup_hours: 0.25,
        speed: env_f64("BENCH_FLEET_SPEED").unwrap_or(speed),
        orders_per_day: 200.0,
        large_orders_per_day: 2_000.0,
        backlog: 10_000,
        seed,
    };
    eprintln!(
        "bench: fleet, {} merchants, {} simulated hours at {}× (seed {seed}; BENCH_FLEET_SEED replays) …",
        config.tenants, config.simulated_hours, config.speed
    );
    let result = run(config).await;
    let mut fleet = serde_json::to_value(&result).expect("the result encodes");
    fleet["seed"] = json!(seed);
    fleet["targets"] = json!({"freshness_p95_s": 60, "others_during_backlog_p95_s": 60, "cin7_budget_percent": 40});
    println!(
        "\nfleet ({} merchants, {} simulated h at {}×, {:.0} s)",
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
            "pull GB-s per merchant-day (256 MB)",
            result.pull_gb_s_per_tenant_day,
            None,
        ),
    ] {
        let target = target.map_or(String::new(), |t| format!("   (target ≤ {t})"));
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
