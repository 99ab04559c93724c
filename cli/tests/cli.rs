//! The CLI as a process: settings files, dry run, explain, serve killed and restarted, demo.

use assert_cmd::Command;
use sandbox::{Cin7Sandbox, GssSandbox, Ticket, WebhookTarget};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const USER: &str = "cli-user";
const CIN7_KEY: &str = "cli-cin7-key";
const SITE: &str = "4180";
const GSS_KEY: &str = "cli-gss-key";
const HOOK: &str = "cli-webhook-secret";

fn cli(store: &Path) -> Command {
    let mut c = Command::cargo_bin("cin7-gss").unwrap();
    c.env("CIN7_GSS_BACKEND", "local")
        .env("CIN7_GSS_STORE", store)
        .env("CLI_CIN7_KEY", CIN7_KEY)
        .env("CLI_GSS_KEY", GSS_KEY)
        .env("CLI_WEBHOOK", HOOK)
        .env_remove("RUST_LOG");
    c
}

fn settings_toml(id: &str, cin7: &str, gss: &str) -> String {
    format!(
        r#"
id = "{id}"
name = "CLI test"
[cin7]
api_username = "{USER}"
api_key = "CLI_CIN7_KEY"
base_url = "{cin7}"
[gss]
site_id = "{SITE}"
access_key = "CLI_GSS_KEY"
support_email = "ops@example.nz"
base_url = "{gss}"
[webhook]
secret = "CLI_WEBHOOK"
signature_param = "signature"
[import]
start_from = "2024-01-01T00:00:00Z"
max_age_days = 5000
[write_back]
send_ticket_number = true
freight = "cost"
"#
    )
}

fn order(id: i64) -> Value {
    json!({
        "id": id, "reference": format!("CLI-{id}"), "status": "Approved", "isApproved": true,
        "stage": "New", "createdDate": "2026-11-20T00:00:00Z",
        "modifiedDate": format!("2026-11-20T09:{:02}:00Z", id % 60),
        "deliveryFirstName": "Aroha", "deliveryLastName": "Smith",
        "deliveryAddress1": "12 Queen Street", "deliveryCity": "Auckland",
        "deliveryPostalCode": "1010", "deliveryCountry": "New Zealand",
        "taxStatus": "Excl", "taxRate": 15, "freightTotal": 0,
        "lineItems": [{"id": id * 10, "code": "TEE", "name": "Tee", "qty": 1, "unitPrice": 20, "stockControl": "FIFO"}]
    })
}

#[test]
fn integrations_put_get_list_with_valid_and_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite3");
    let good = dir.path().join("acme.toml");
    std::fs::write(
        &good,
        settings_toml(
            "acme",
            "https://api.cin7.com/api",
            "https://api.gosweetspot.com",
        ),
    )
    .unwrap();
    cli(&store)
        .args(["integrations", "put", "--file"])
        .arg(&good)
        .assert()
        .success();
    let out = cli(&store)
        .args(["integrations", "get", "acme"])
        .output()
        .unwrap();
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["cin7"]["api_key"], "CLI_CIN7_KEY",
        "references, never values"
    );
    let out = cli(&store)
        .args(["--json", "integrations", "list"])
        .output()
        .unwrap();
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 1);

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"id": "bolt", "cin7": {"api_username": "", "api_key": "K"},
        "gss": {"site_id": "1", "access_key": "K", "support_email": "nobody"},
        "webhook": {"secret": "S"}, "write_back": {"freight": "cost"}})
        .to_string(),
    )
    .unwrap();
    let out = cli(&store)
        .args(["integrations", "put", "--file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cin7.api_username: must not be empty"),
        "{err}"
    );
    assert!(err.contains("gss.support_email"), "{err}");
    cli(&store)
        .args(["integrations", "get", "bolt"])
        .assert()
        .code(1);
    cli(&store)
        .args(["integrations", "frobnicate"])
        .assert()
        .code(2);
    cli(&store)
        .args(["orders", "acme", "--state", "nonsense"])
        .assert()
        .code(1);
}

fn gss_put_bodies(gss: &GssSandbox) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in gss.harness().records() {
        if r.method == "PUT" && r.status == 200 {
            for o in serde_json::from_str::<Vec<Value>>(&r.body).unwrap_or_default() {
                *counts
                    .entry(o["packingslipno"].as_str().unwrap_or("").to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}

fn dispatch_puts(cin7: &Cin7Sandbox) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for r in cin7.harness().records() {
        if r.method == "PUT" && r.status == 200 {
            for o in serde_json::from_str::<Vec<Value>>(&r.body).unwrap_or_default() {
                if o.get("dispatchedDate").is_some() {
                    *counts.entry(o["id"].as_i64().unwrap_or(0)).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_explain_shows_the_history() {
    let cin7 = Cin7Sandbox::start(USER, CIN7_KEY).await.unwrap();
    let gss = GssSandbox::start(SITE, GSS_KEY).await.unwrap();
    for id in 1..=5 {
        cin7.put_order(order(id));
    }
    cin7.edit_order(5, |o| o["stage"] = json!("On Hold"));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite3");
    let file = dir.path().join("acme.toml");
    std::fs::write(
        &file,
        settings_toml("acme", &cin7.base_url(), &gss.base_url()),
    )
    .unwrap();
    let run = |args: Vec<String>| {
        let store = store.clone();
        async move {
            tokio::task::spawn_blocking(move || cli(&store).args(args).output().unwrap())
                .await
                .unwrap()
        }
    };
    assert!(
        run(vec![
            "integrations".into(),
            "put".into(),
            "--file".into(),
            file.display().to_string()
        ])
        .await
        .status
        .success()
    );
    let before_store = std::fs::read(&store).unwrap();
    let out = run(vec!["pull".into(), "acme".into(), "--dry-run".into()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("publish") && text.contains("stage_excluded"),
        "{text}"
    );
    assert!(
        gss.harness().records().is_empty(),
        "no GoSweetSpot call at all"
    );
    assert!(
        cin7.harness().records().iter().all(|r| r.method == "GET"),
        "CIN7 only read"
    );
    assert_eq!(
        std::fs::read(&store).unwrap(),
        before_store,
        "the store file is unchanged"
    );

    let out = run(vec!["sync-now".into(), "acme".into()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(gss.packing_slips().len(), 4);
    let out = run(vec!["explain".into(), "acme".into(), "CLI-5".into()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("skipped") && text.contains("stage_excluded") && text.contains("On Hold"),
        "{text}"
    );
    let out = run(vec![
        "--json".into(),
        "orders".into(),
        "acme".into(),
        "--state".into(),
        "published".into(),
    ])
    .await;
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 4);

    // A ticket whose webhook never came: `reconcile --dry-run` shows it and changes nothing;
    // `reconcile` queues it, and `explain` says the reconcile brought it.
    let shipment = gss
        .create_ticket("CLI-1", sandbox::Ticket::default())
        .unwrap();
    let connote = shipment.consignment_no.unwrap();
    let since = "--since=2026-01-01T00:00:00Z".to_string();
    let before_store = std::fs::read(&store).unwrap();
    let out = run(vec![
        "reconcile".into(),
        "acme".into(),
        since.clone(),
        "--dry-run".into(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "would queue 1 write-back(s) no webhook brought: {connote}"
        )),
        "{text}"
    );
    assert!(
        std::fs::read(&store).unwrap() == before_store,
        "a dry run writes nothing"
    );
    let out = run(vec![
        "--json".into(),
        "reconcile".into(),
        "acme".into(),
        since,
    ])
    .await;
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["queued"], json!([connote]));
    let out = run(vec!["explain".into(), "acme".into(), "CLI-1".into()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ticketed") && text.contains("by reconcile"),
        "{text}"
    );
}

/// A `serve` configuration for one integration on the sandboxes: its path and the store's.
fn serve_config(
    dir: &Path,
    port: u16,
    cin7: &Cin7Sandbox,
    gss: &GssSandbox,
    options: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let store = dir.join("serve.sqlite3");
    let config = dir.join("serve.toml");
    let integration = settings_toml("acme", &cin7.base_url(), &gss.base_url())
        .replace("[cin7]", "[integrations.cin7]")
        .replace("[gss]", "[integrations.gss]")
        .replace("[webhook]", "[integrations.webhook]")
        .replace("[import]", "[integrations.import]")
        .replace("[write_back]", "[integrations.write_back]");
    let text = format!(
        "store = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n{options}\n[[integrations]]\n{integration}",
        store.display()
    );
    std::fs::write(&config, text).unwrap();
    (config, store)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `serve` process, killed when dropped (also when a test fails).
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_serve(config: &Path, store: &Path) -> Serve {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cin7-gss"))
        .args(["serve", "--config"])
        .arg(config)
        .env("CIN7_GSS_STORE", store)
        .env("CLI_CIN7_KEY", CIN7_KEY)
        .env("CLI_GSS_KEY", GSS_KEY)
        .env("CLI_WEBHOOK", HOOK)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Serve(child)
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_and_restarted_publishes_and_dispatches_once() {
    let cin7 = Cin7Sandbox::start(USER, CIN7_KEY).await.unwrap();
    let gss = GssSandbox::start(SITE, GSS_KEY).await.unwrap();
    for id in 1..=12 {
        cin7.put_order(order(id));
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (config, store) = serve_config(
        dir.path(),
        port,
        &cin7,
        &gss,
        "write_back_retry_seconds = 1\nclaim_hold_seconds = 3",
    );
    gss.set_webhook(Some(WebhookTarget {
        url: format!("http://127.0.0.1:{port}/webhooks/gosweetspot/acme"),
        secret: Some(HOOK.into()),
        signature_param: "signature".into(),
        legacy: false,
    }));
    let child = spawn_serve(&config, &store);
    wait_for("the first pull", 30, || gss.packing_slips().len() == 12).await;
    // Ticket half, and kill -9 while their write-backs are under way.
    for id in 1..=6 {
        gss.ticket(&format!("CLI-{id}"), Ticket::default())
            .await
            .unwrap();
    }
    drop(child); // kill -9
    // Deliveries while it is down fail (GoSweetSpot would retry them later).
    for id in 7..=12 {
        gss.ticket(&format!("CLI-{id}"), Ticket::default())
            .await
            .unwrap();
    }
    let child = spawn_serve(&config, &store);
    wait_for("the listener", 30, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    // GoSweetSpot's retry of the deliveries that failed while we were down.
    let missed: Vec<_> = gss
        .shipments()
        .into_iter()
        .filter(|s| {
            let n: i64 = s
                .packing_slip_no
                .as_deref()
                .unwrap_or("")
                .trim_start_matches("CLI-")
                .parse()
                .unwrap_or(0);
            n >= 7
        })
        .collect();
    for s in &missed {
        gss.post_webhook(std::slice::from_ref(s)).await.unwrap();
    }
    wait_for("every order dispatched", 60, || {
        (1..=12).all(|id| cin7.order(id).is_some_and(|o| o["stage"] == "Dispatched"))
    })
    .await;
    // Every job acknowledged (none waiting or in flight, so no redelivery is still to come)
    // before counting.
    let queue = shared::queue::embedded::EmbeddedQueue::open(&store, 5).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.depth().await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the queue to drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(child);
    let published = gss_put_bodies(&gss);
    assert_eq!(published.len(), 12);
    assert!(
        published.values().all(|n| *n == 1),
        "published once: {published:?}"
    );
    let dispatched = dispatch_puts(&cin7);
    assert_eq!(dispatched.len(), 12);
    assert!(
        dispatched.values().all(|n| *n == 1),
        "dispatched once: {dispatched:?}"
    );
}

#[test]
fn the_demo_exits_zero() {
    let out = Command::cargo_bin("cin7-gss")
        .unwrap()
        .arg("demo")
        .timeout(Duration::from_secs(240))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("demo OK"), "{text}");
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_flood_against_the_local_listener() {
    let cin7 = Cin7Sandbox::start(USER, CIN7_KEY).await.unwrap();
    let gss = GssSandbox::start(SITE, GSS_KEY).await.unwrap();
    for id in 1..=5 {
        cin7.put_order(order(id));
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (config, store) = serve_config(dir.path(), port, &cin7, &gss, "");
    let serve = spawn_serve(&config, &store);
    wait_for("the first pull", 30, || gss.packing_slips().len() == 5).await;
    let url = format!("http://127.0.0.1:{port}/webhooks/gosweetspot/acme");
    let http = reqwest::Client::new();
    // 16 clients, 125 deliveries each: half signed (a new consignment each), half not.
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..125 {
                    let n = c * 125 + i;
                    let body = serde_json::to_string(&json!([{
                        "ConsignmentNo": format!("FLOOD{n:05}"), "PackingSlipNo": format!("CLI-{}", n % 5 + 1),
                        "Tracking": format!("https://gosweetspot.com/track/4180-FLOOD{n:05}"),
                        "TotalCost": 4.07, "CreatedUtc": "2026-11-27T01:02:03.000", "ManualTicket": false
                    }]))
                    .unwrap();
                    let signed = n % 2 == 0;
                    let sig = if signed {
                        shared::signature::sign(HOOK.as_bytes(), body.as_bytes()).unwrap()
                    } else {
                        "bm90IGEgc2lnbmF0dXJl".into()
                    };
                    let r = http
                        .post(&url)
                        .query(&[("signature", sig)])
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    let answer: Value = r.json().await.unwrap_or(Value::Null);
                    outcomes.push((signed, status, answer));
                }
                outcomes
            })
        })
        .collect();
    let mut signed_queued = 0;
    for c in clients {
        for (signed, status, answer) in c.await.unwrap() {
            if signed {
                assert_eq!(status, 202, "{answer}");
                assert_eq!(answer["queued"], 1, "{answer}");
                signed_queued += 1;
            } else {
                assert_eq!(status, 401, "{answer}");
            }
        }
    }
    assert_eq!(
        signed_queued, 1000,
        "every signed delivery queued exactly once"
    );
    let rss = peak_rss_kib(serve.0.id());
    println!("serve peak RSS after 2,000 deliveries: {} KiB", rss);
    assert!(
        rss > 0 && rss < 300 * 1024,
        "memory stays bounded: {rss} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_environment_variable_may_hold_every_key_as_json() {
    let cin7 = Cin7Sandbox::start(USER, CIN7_KEY).await.unwrap();
    let gss = GssSandbox::start(SITE, GSS_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite3");
    let file = dir.path().join("acme.toml");
    let toml = settings_toml("acme", &cin7.base_url(), &gss.base_url())
        .replace("\"CLI_CIN7_KEY\"", "\"CLI_KEYS#cin7_api_key\"")
        .replace("\"CLI_GSS_KEY\"", "\"CLI_KEYS#gss_access_key\"")
        .replace("\"CLI_WEBHOOK\"", "\"CLI_KEYS#webhook_secret\"");
    std::fs::write(&file, toml).unwrap();
    let keys = json!({"cin7_api_key": CIN7_KEY, "gss_access_key": GSS_KEY, "webhook_secret": HOOK});
    let run = |args: &'static [&'static str], keys: String| {
        let (store, file) = (store.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = cli(&store);
            c.env_remove("CLI_CIN7_KEY")
                .env_remove("CLI_GSS_KEY")
                .env("CLI_KEYS", keys);
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace("FILE", &file.display().to_string()))
                .collect();
            c.args(args).output().unwrap()
        })
    };
    let put = run(&["integrations", "put", "--file", "FILE"], keys.to_string())
        .await
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let tested = run(&["integrations", "test", "acme"], keys.to_string())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(tested.status.success(), "{stdout}");
    assert_eq!(stdout.matches("[ok]").count(), 3, "{stdout}");

    // A key missing from the object is named in the failed check, the value never shown.
    let partial = json!({"cin7_api_key": CIN7_KEY, "webhook_secret": HOOK}).to_string();
    let failed = run(&["integrations", "test", "acme"], partial)
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(!failed.status.success());
    assert!(
        stdout.contains("CLI_KEYS#gss_access_key") && stdout.contains("no such key"),
        "{stdout}"
    );
    assert!(!stdout.contains(CIN7_KEY), "{stdout}");
}
