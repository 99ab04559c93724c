//! The SAM template (`infra/template.yaml`) against the code it deploys:
//!
//! - each function's environment variables are exactly those it declares (`DECLARATION.env`,
//!   in `functions/*/src/lib.rs`, beside its `main.rs`), with the declared defaults, and the
//!   deploy outputs `make deploy-code` uses give the same;
//! - each function's IAM actions are exactly those it declares (`DECLARATION.iam_actions`, and
//!   its event source's). tests/code_paths.rs runs each function's code path over adapters
//!   that record their calls and checks the declarations, and tests/aws_adapters.rs checks the
//!   actions each adapter declares against the emulator;
//! - the settings the product depends on (table keys and TTL, redrive, visibility, the SQS
//!   event source, arm64 and `provided.al2023`, cargo-lambda's build metadata, log groups), and
//!   the crates' `[package.metadata.lambda.deploy]` agree with the template.
//!
//! The template is YAML with CloudFormation's tags; `make check-infra` converts it to JSON with
//! cfn-lint's own loader (`scripts/template_json.py`) into `target/template.json`, which this
//! test reads.

use serde_json::Value;
use shared::app::Declaration;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The template as JSON (see the module docs).
fn template() -> Value {
    let yaml = repo().join("infra/template.yaml");
    let json = std::env::var_os("INFRA_TEMPLATE_JSON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/template.json"));
    let missing = || {
        panic!(
            "{} is missing: it is infra/template.yaml as JSON, written by `make check-infra` \
             (`make test` runs it first). Run `make check-infra`, then this test again.",
            json.display()
        )
    };
    let Ok(json_meta) = std::fs::metadata(&json) else {
        missing()
    };
    let yaml_modified = std::fs::metadata(&yaml)
        .and_then(|m| m.modified())
        .expect("infra/template.yaml exists");
    let json_modified = json_meta.modified().expect("file times are available");
    assert!(
        json_modified >= yaml_modified,
        "{} is older than infra/template.yaml: run `make check-infra` to write it again",
        json.display()
    );
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| missing());
    serde_json::from_str(&text).expect("target/template.json is JSON")
}

/// The functions: logical id in the template, crate directory, binary, output prefix, and
/// what the function declares.
struct Function {
    logical_id: &'static str,
    dir: &'static str,
    binary: &'static str,
    outputs: &'static str,
    declaration: Declaration,
}

const FUNCTIONS: [Function; 3] = [
    Function {
        logical_id: "OrderPullFunction",
        dir: "functions/order-pull",
        binary: "order-pull",
        outputs: "OrderPull",
        declaration: order_pull::DECLARATION,
    },
    Function {
        logical_id: "WebhookFunction",
        dir: "functions/consignment-webhook",
        binary: "consignment-webhook",
        outputs: "Webhook",
        declaration: consignment_webhook::DECLARATION,
    },
    Function {
        logical_id: "WriteBackFunction",
        dir: "functions/write-back",
        binary: "write-back",
        outputs: "WriteBack",
        declaration: write_back::DECLARATION,
    },
];

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    t["Resources"]
        .get(id)
        .unwrap_or_else(|| panic!("the template has no resource {id}"))
}

fn props<'a>(t: &'a Value, id: &str) -> &'a Value {
    &resource(t, id)["Properties"]
}

/// A function property, or the `Globals.Function` one it inherits.
fn function_prop<'a>(t: &'a Value, id: &str, name: &str) -> &'a Value {
    match props(t, id).get(name) {
        Some(v) => v,
        None => &t["Globals"]["Function"][name],
    }
}

fn as_number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("a finite number"),
        Value::String(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{s:?} is not a number")),
        other => panic!("{other} is not a number"),
    }
}

fn diff(what: &str, template: &BTreeSet<String>, expected: &BTreeSet<String>) -> String {
    let extra: Vec<_> = template.difference(expected).collect();
    let missing: Vec<_> = expected.difference(template).collect();
    format!(
        "{what}: in the template but not expected: {extra:?}; expected but not in the template: {missing:?}"
    )
}

// ------------------------------------------------------------------ source text helpers

/// Rust source without comments (line and block) and without string contents that could
/// confuse the scans (string literals are kept: attributes need them).
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_str = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The source without whitespace, so method chains split over lines read as one.
fn squeeze(src: &str) -> String {
    src.chars().filter(|c| !c.is_whitespace()).collect()
}

// ------------------------------------------------------------------ environment

fn env_vars(t: &Value, id: &str) -> BTreeMap<String, Value> {
    props(t, id)["Environment"]["Variables"]
        .as_object()
        .unwrap_or_else(|| panic!("{id} has no Environment.Variables"))
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn each_function_is_given_exactly_the_environment_it_declares() {
    let t = template();
    for f in &FUNCTIONS {
        let declared: BTreeSet<String> = f.declaration.env.iter().map(|v| v.name.into()).collect();
        let given: BTreeSet<String> = env_vars(&t, f.logical_id).into_keys().collect();
        assert!(
            given == declared,
            "{}",
            diff(
                &format!("{} environment vs {} DECLARATION.env", f.logical_id, f.dir),
                &given,
                &declared
            )
        );
    }
}

#[test]
fn the_functions_read_no_environment_variable_outside_their_config() {
    for f in &FUNCTIONS {
        let dir = repo().join(f.dir).join("src");
        for entry in std::fs::read_dir(&dir).expect("the crate has sources") {
            let path = entry.expect("a directory entry").path();
            let src = squeeze(&strip_comments(&read(&path)));
            for reader in [
                "env::var(",
                "env::var_os(",
                "env::vars(",
                "env!(",
                "option_env!(",
            ] {
                assert!(
                    !src.contains(reader),
                    "{} reads the environment with `{reader}…`: read it through Config, so \
                     the template and this test see it",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn parameter_defaults_are_the_declared_defaults() {
    let t = template();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("{other} is not a default"),
    };
    for f in &FUNCTIONS {
        let vars = env_vars(&t, f.logical_id);
        for declared in f.declaration.env {
            let (Some(default), Some(value)) = (declared.default, vars.get(declared.name)) else {
                continue;
            };
            let template_default = match value {
                Value::Object(o) if o.contains_key("Ref") => {
                    let param = o["Ref"].as_str().expect("a Ref names a parameter");
                    match t["Parameters"].get(param) {
                        Some(p) => text(&p["Default"]),
                        None => continue,
                    }
                }
                Value::String(_) | Value::Number(_) => text(value),
                _ => continue,
            };
            assert_eq!(
                template_default, default,
                "{} {}: the template's default differs from the declared (and the code's) default",
                f.logical_id, declared.name
            );
        }
    }
}

/// Every string in a value (the text and variables of an `Fn::Sub`).
fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// How an environment value appears in the JSON of the `<Function>Environment` output.
fn fragment(key: &str, value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{key}\":\"{s}\""),
        Value::Number(n) => format!("\"{key}\":\"{n}\""),
        Value::Object(o) if o.contains_key("Ref") => {
            format!("\"{key}\":\"${{{}}}\"", o["Ref"].as_str().expect("a Ref"))
        }
        Value::Object(o) if o.contains_key("Fn::If") => {
            // [condition, value, AWS::NoValue]: present only when the condition holds.
            fragment(key, &o["Fn::If"][1])
        }
        other => panic!("environment value {other} of {key}: teach this test its form"),
    }
}

#[test]
fn the_deploy_outputs_give_each_function_its_environment() {
    let t = template();
    for f in &FUNCTIONS {
        let output = &t["Outputs"][format!("{}Environment", f.outputs)]["Value"]["Fn::Sub"];
        assert!(
            !output.is_null(),
            "the template has no {}Environment output (an Fn::Sub)",
            f.outputs
        );
        let mut text = String::new();
        strings(output, &mut text);
        let keys: BTreeSet<String> = text
            .split('"')
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| {
                w[1].starts_with(':')
                    && !w[0].is_empty()
                    && w[0]
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .map(|w| w[0].to_string())
            .collect();
        let vars = env_vars(&t, f.logical_id);
        let expected: BTreeSet<String> = vars.keys().cloned().collect();
        assert!(
            keys == expected,
            "{}",
            diff(
                &format!("{}Environment output", f.outputs),
                &keys,
                &expected
            )
        );
        for (key, value) in &vars {
            let want = fragment(key, value);
            assert!(
                text.contains(&want),
                "{}Environment output: expected {want} in {text}",
                f.outputs
            );
        }
        for suffix in ["FunctionName", "RoleArn"] {
            assert!(
                t["Outputs"].get(format!("{}{suffix}", f.outputs)).is_some(),
                "the template has no {}{suffix} output (make deploy-code needs it)",
                f.outputs
            );
        }
    }
}

// ------------------------------------------------------------------ IAM

/// The IAM actions a function declares: its code's and its event source's.
fn declared_actions(f: &Function) -> BTreeSet<String> {
    f.declaration
        .iam_actions
        .iter()
        .chain(f.declaration.event_source_actions)
        .map(|a| a.to_string())
        .collect()
}

/// The `Allow` statements of a function's inline policies.
fn statements(t: &Value, id: &str) -> Vec<Value> {
    let policies = props(t, id)["Policies"]
        .as_array()
        .unwrap_or_else(|| panic!("{id} has no Policies list"));
    assert!(
        props(t, id).get("Role").is_none(),
        "{id} names a Role: its Policies would be ignored"
    );
    policies
        .iter()
        .flat_map(|p| {
            let Some(list) = p.get("Statement").and_then(Value::as_array) else {
                panic!(
                    "{id}: policy {p} is not an inline policy document (a managed policy or a \
                     SAM policy template grants what this test cannot see)"
                )
            };
            list.clone()
        })
        .collect()
}

fn statement_actions(s: &Value) -> Vec<String> {
    match &s["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().expect("an action is a string").to_string())
            .collect(),
        other => panic!("statement action {other}"),
    }
}

#[test]
fn each_function_may_call_exactly_what_it_declares() {
    let t = template();
    for f in &FUNCTIONS {
        let mut granted = BTreeSet::new();
        for s in statements(&t, f.logical_id) {
            assert_eq!(s["Effect"], "Allow", "{}: {s}", f.logical_id);
            assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
            for action in statement_actions(&s) {
                assert!(
                    !action.contains('*'),
                    "{}: wildcard action {action}",
                    f.logical_id
                );
                granted.insert(action);
            }
        }
        let needed = declared_actions(f);
        assert!(
            granted == needed,
            "{}",
            diff(
                &format!("{} IAM actions vs its DECLARATION", f.logical_id),
                &granted,
                &needed
            )
        );
    }
}

#[test]
fn each_action_is_on_the_functions_own_resources_only() {
    let t = template();
    let secrets = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPrefix}*"});
    let table = serde_json::json!({"Fn::GetAtt": ["StateTable", "Arn"]});
    let queue = |name: &str| serde_json::json!({"Fn::GetAtt": [name, "Arn"]});
    // Each event source mapping's queue: the function it invokes may read that queue only.
    let mut sources: BTreeMap<String, Value> = BTreeMap::new();
    for (_, r) in t["Resources"].as_object().expect("resources") {
        if r["Type"] == "AWS::Lambda::EventSourceMapping" {
            let function = r["Properties"]["FunctionName"]["Ref"]
                .as_str()
                .expect("a mapping names its function")
                .to_string();
            sources.insert(function, r["Properties"]["EventSourceArn"].clone());
        }
    }
    for f in &FUNCTIONS {
        for s in statements(&t, f.logical_id) {
            for action in statement_actions(&s) {
                let sends = [queue("WriteBackQueue"), queue("PullQueue")];
                let allowed: Vec<&Value> = match action.split(':').next() {
                    Some("dynamodb") => vec![&table],
                    Some("sqs") if action == "sqs:SendMessage" => sends.iter().collect(),
                    Some("sqs") => sources.get(f.logical_id).into_iter().collect(),
                    Some("secretsmanager") => vec![&secrets],
                    _ => panic!("{}: unexpected service in {action}", f.logical_id),
                };
                assert!(
                    allowed.contains(&&s["Resource"]),
                    "{}: {action} must be on {allowed:?} only, not {}",
                    f.logical_id,
                    s["Resource"]
                );
            }
        }
    }
}

// ------------------------------------------------------------------ the rest of the shape

#[test]
fn functions_are_arm64_provided_al2023_built_by_cargo_lambda() {
    let t = template();
    for f in &FUNCTIONS {
        let r = resource(&t, f.logical_id);
        assert_eq!(r["Type"], "AWS::Serverless::Function");
        assert_eq!(
            function_prop(&t, f.logical_id, "Runtime"),
            "provided.al2023"
        );
        assert_eq!(
            function_prop(&t, f.logical_id, "Architectures"),
            &serde_json::json!(["arm64"])
        );
        assert_eq!(function_prop(&t, f.logical_id, "Handler"), "bootstrap");
        assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda");
        assert_eq!(r["Metadata"]["BuildProperties"]["Binary"], f.binary);
        let code_uri = props(&t, f.logical_id)["CodeUri"]
            .as_str()
            .expect("CodeUri is a path");
        let crate_dir = repo().join("infra").join(code_uri);
        assert_eq!(
            crate_dir.canonicalize().expect("CodeUri exists"),
            repo().join(f.dir).canonicalize().expect("the crate exists"),
            "{}: CodeUri",
            f.logical_id
        );
        let manifest = read(format!("{}/Cargo.toml", f.dir));
        assert!(
            manifest.contains(&format!("name = \"{}\"", f.binary)),
            "{}: no binary {}",
            f.dir,
            f.binary
        );
        let logging = function_prop(&t, f.logical_id, "LoggingConfig");
        assert_eq!(logging["LogFormat"], "JSON");
        assert_eq!(
            logging["ApplicationLogLevel"],
            serde_json::json!({"Ref": "ApplicationLogLevel"})
        );
        // Its log group, with retention.
        let group = t["Resources"]
            .as_object()
            .expect("resources")
            .values()
            .find(|r| {
                r["Type"] == "AWS::Logs::LogGroup"
                    && r["Properties"]["LogGroupName"]
                        == serde_json::json!({"Fn::Sub": format!("/aws/lambda/${{{}}}", f.logical_id)})
            })
            .unwrap_or_else(|| panic!("{}: no log group /aws/lambda/<its name>", f.logical_id));
        assert!(!group["Properties"]["RetentionInDays"].is_null());
        // Events that make SAM attach broad managed policies are not used.
        if let Some(events) = props(&t, f.logical_id)["Events"].as_object() {
            for (name, e) in events {
                assert!(
                    !["SQS", "Kinesis", "DynamoDB", "MSK", "MQ"]
                        .contains(&e["Type"].as_str().unwrap_or_default()),
                    "{}: event {name} is a pull event: SAM would attach a managed policy on every queue or stream of the account; declare an AWS::Lambda::EventSourceMapping instead",
                    f.logical_id
                );
            }
        }
    }
}

#[test]
fn the_table_has_the_key_ttl_and_recovery_the_store_expects() {
    let t = template();
    let p = props(&t, "StateTable");
    assert_eq!(resource(&t, "StateTable")["Type"], "AWS::DynamoDB::Table");
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        p["KeySchema"],
        serde_json::json!([
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"}
        ])
    );
    assert_eq!(
        p["AttributeDefinitions"],
        serde_json::json!([
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"}
        ])
    );
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"], "expires_at");
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert!(!p["DeletionProtectionEnabled"].is_null());
    // The adapter's own table creation (tests, local set-up) uses the same names.
    use shared::store::dynamodb::{PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
    assert_eq!(
        p["KeySchema"],
        serde_json::json!([
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"}
        ])
    );
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"], TTL_ATTRIBUTE);
}

#[test]
fn the_queue_redrives_as_the_write_back_counts_and_outlives_its_timeout() {
    let t = template();
    let queue = props(&t, "WriteBackQueue");
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(
        redrive["deadLetterTargetArn"],
        serde_json::json!({"Fn::GetAtt": ["WriteBackDeadLetterQueue", "Arn"]})
    );
    let max_receives = as_number(&redrive["maxReceiveCount"]);
    assert_eq!(max_receives, 5.0);
    let env = env_vars(&t, "WriteBackFunction");
    assert_eq!(
        as_number(&env["MAX_RECEIVE_COUNT"]),
        max_receives,
        "MAX_RECEIVE_COUNT must be the queue's maxReceiveCount (the write-back marks the order failed on that receive)"
    );
    let esm = props(&t, "WriteBackEventSource");
    assert_eq!(
        resource(&t, "WriteBackEventSource")["Type"],
        "AWS::Lambda::EventSourceMapping"
    );
    assert_eq!(
        esm["FunctionName"],
        serde_json::json!({"Ref": "WriteBackFunction"})
    );
    assert_eq!(
        esm["EventSourceArn"],
        serde_json::json!({"Fn::GetAtt": ["WriteBackQueue", "Arn"]})
    );
    assert_eq!(
        esm["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    let batch = as_number(&esm["BatchSize"]);
    let window = as_number(&esm["MaximumBatchingWindowInSeconds"]);
    assert!(
        batch <= 10.0 || window >= 1.0,
        "a batch over 10 needs a batching window"
    );
    assert!(
        batch <= 100.0,
        "a write-back batch is at most 100 messages (the call budget)"
    );
    assert_eq!(
        esm["ScalingConfig"]["MaximumConcurrency"],
        serde_json::json!({"Ref": "WriteBackMaximumConcurrency"}),
    );
    assert_eq!(
        as_number(&t["Parameters"]["WriteBackMaximumConcurrency"]["Default"]),
        10.0
    );
    let timeout = as_number(function_prop(&t, "WriteBackFunction", "Timeout"));
    let env = &function_prop(&t, "WriteBackFunction", "Environment")["Variables"];
    let group: f64 = env["WRITE_BACK_GROUP_SECONDS"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("WRITE_BACK_GROUP_SECONDS");
    let margin = shared::writeback::handler::GroupLimits::default().margin;
    assert!(
        group + margin.as_secs_f64() <= timeout,
        "a group's deadline and the margin fit inside the function's timeout"
    );
    assert!(
        as_number(&queue["VisibilityTimeout"]) >= 6.0 * timeout + window,
        "the visibility timeout must be at least 6 × the write-back's timeout plus the window"
    );
    let alarm = props(&t, "WriteBackDeadLetterAlarm");
    assert_eq!(alarm["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert_eq!(
        alarm["Dimensions"][0]["Value"],
        serde_json::json!({"Fn::GetAtt": ["WriteBackDeadLetterQueue", "QueueName"]})
    );
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(as_number(&alarm["Threshold"]), 0.0);
}

#[test]
fn the_pull_queue_feeds_the_pull_and_dead_letters_what_keeps_failing() {
    let t = template();
    let queue = props(&t, "PullQueue");
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        serde_json::json!({"Fn::GetAtt": ["PullDeadLetterQueue", "Arn"]})
    );
    assert!(as_number(&queue["RedrivePolicy"]["maxReceiveCount"]) >= 2.0);
    let esm = props(&t, "OrderPullEventSource");
    assert_eq!(
        resource(&t, "OrderPullEventSource")["Type"],
        "AWS::Lambda::EventSourceMapping"
    );
    assert_eq!(
        esm["FunctionName"],
        serde_json::json!({"Ref": "OrderPullFunction"})
    );
    assert_eq!(
        esm["EventSourceArn"],
        serde_json::json!({"Fn::GetAtt": ["PullQueue", "Arn"]})
    );
    assert_eq!(
        esm["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    assert_eq!(
        esm["ScalingConfig"]["MaximumConcurrency"],
        serde_json::json!({"Ref": "PullMaximumConcurrency"}),
        "a template parameter"
    );
    let batch = as_number(&esm["BatchSize"]);
    assert!(
        batch <= 10.0,
        "no batching window: a due pull waits for nobody"
    );
    assert!(esm["MaximumBatchingWindowInSeconds"].is_null());
    // The handler works on PULL_CONCURRENCY messages at once: at most the batch.
    let concurrency = &t["Parameters"]["PullConcurrency"];
    assert!(as_number(&concurrency["MaxValue"]) <= batch);
    let timeout = as_number(function_prop(&t, "OrderPullFunction", "Timeout"));
    assert!(
        as_number(&queue["VisibilityTimeout"]) >= 6.0 * timeout,
        "the visibility timeout must be at least 6 × the pull's timeout"
    );
    // A slice (and its publishing) fits in the function's time.
    let slice = as_number(&t["Parameters"]["PullSliceSeconds"]["MaxValue"]);
    let margin = as_number(&t["Parameters"]["PullMarginSeconds"]["MaxValue"]);
    assert!(slice + margin <= timeout, "{slice} + {margin} > {timeout}");
    let alarm = props(&t, "PullDeadLetterAlarm");
    assert_eq!(
        alarm["Dimensions"][0]["Value"],
        serde_json::json!({"Fn::GetAtt": ["PullDeadLetterQueue", "QueueName"]})
    );
    assert_eq!(as_number(&alarm["Threshold"]), 0.0);
}

#[test]
fn the_webhook_route_is_the_one_the_function_serves() {
    let t = template();
    let events = props(&t, "WebhookFunction")["Events"]
        .as_object()
        .expect("the webhook has events");
    let (_, event) = events
        .iter()
        .find(|(_, e)| e["Type"] == "HttpApi")
        .expect("an HttpApi event");
    let path = event["Properties"]["Path"].as_str().expect("a path");
    assert_eq!(path, shared::webhook::ROUTE, "the router's route");
    assert_eq!(event["Properties"]["PayloadFormatVersion"], "2.0");
    let api = props(&t, "WebhookApi");
    assert!(!api["DefaultRouteSettings"]["ThrottlingRateLimit"].is_null());
    assert!(!api["DefaultRouteSettings"]["ThrottlingBurstLimit"].is_null());
    assert!(!api["AccessLogSettings"]["DestinationArn"].is_null());
    let base = t["Outputs"]["WebhookBaseUrl"]["Value"]["Fn::Sub"]
        .as_str()
        .expect("WebhookBaseUrl is an Fn::Sub");
    assert!(base.ends_with(shared::webhook::ROUTE_PREFIX), "{base}");
    let schedule = props(&t, "OrderPullFunction")["Events"]
        .as_object()
        .expect("the pull has events")
        .values()
        .find(|e| e["Type"] == "Schedule")
        .expect("a schedule");
    assert_eq!(
        schedule["Properties"]["Schedule"],
        serde_json::json!({"Ref": "PullSchedule"})
    );
    assert_eq!(
        t["Parameters"]["PullSchedule"]["Default"],
        "rate(5 minutes)"
    );
}

#[test]
fn the_crates_deploy_metadata_agrees_with_the_template() {
    let t = template();
    for f in &FUNCTIONS {
        let manifest: toml::Table = read(format!("{}/Cargo.toml", f.dir))
            .parse()
            .unwrap_or_else(|e| panic!("{}/Cargo.toml: {e}", f.dir));
        let deploy = &manifest["package"]["metadata"]["lambda"]["deploy"];
        let memory = deploy["memory"].as_integer().expect("memory") as f64;
        let timeout = deploy["timeout"].as_integer().expect("timeout") as f64;
        assert_eq!(
            memory,
            as_number(function_prop(&t, f.logical_id, "MemorySize")),
            "{}: [package.metadata.lambda.deploy] memory vs the template's MemorySize",
            f.dir
        );
        assert_eq!(
            timeout,
            as_number(function_prop(&t, f.logical_id, "Timeout")),
            "{}: [package.metadata.lambda.deploy] timeout vs the template's Timeout",
            f.dir
        );
        let crate_tracing = deploy["tracing"].as_str().expect("tracing");
        let template_tracing = function_prop(&t, f.logical_id, "Tracing")
            .as_str()
            .unwrap_or("PassThrough");
        assert_eq!(
            crate_tracing.to_lowercase(),
            template_tracing.to_lowercase(),
            "{}: [package.metadata.lambda.deploy] tracing vs the template's Tracing",
            f.dir
        );
    }
}
