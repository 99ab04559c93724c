//! The SAM template (`infra/template.yaml`) against the code it deploys:
//!
//! - each function's environment variables are exactly the fields of its `Config` (read from
//!   `functions/*/src/main.rs`), and the deploy outputs `make deploy-code` uses give the same;
//! - each function's IAM actions are exactly those its code path calls: a reviewed map of the
//!   `Store` methods, queue and secret operations each function calls (checked against the
//!   calls found in its modules), turned into SDK operations by reading the store's own source
//!   and the DynamoDB adapter, and into IAM actions;
//! - the settings the product depends on (table keys and TTL, redrive, visibility, the SQS
//!   event source, arm64 and `provided.al2023`, cargo-lambda's build metadata, log groups), and
//!   the crates' `[package.metadata.lambda.deploy]` agree with the template.
//!
//! The template is YAML with CloudFormation's tags; `make check-infra` converts it to JSON with
//! cfn-lint's own loader (`scripts/template_json.py`) into `target/template.json`, which this
//! test reads.

use serde_json::Value;
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

/// The functions: logical id in the template, crate directory, binary, output prefix.
struct Function {
    logical_id: &'static str,
    dir: &'static str,
    binary: &'static str,
    outputs: &'static str,
}

const FUNCTIONS: [Function; 3] = [
    Function {
        logical_id: "OrderPullFunction",
        dir: "functions/order-pull",
        binary: "order-pull",
        outputs: "OrderPull",
    },
    Function {
        logical_id: "WebhookFunction",
        dir: "functions/consignment-webhook",
        binary: "consignment-webhook",
        outputs: "Webhook",
    },
    Function {
        logical_id: "WriteBackFunction",
        dir: "functions/write-back",
        binary: "write-back",
        outputs: "WriteBack",
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

fn set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
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

/// The text between the `{` that follows `start` and its matching `}`.
fn braced_after<'a>(src: &'a str, start: &str) -> Option<&'a str> {
    let at = src.find(start)? + start.len();
    let open = at + src[at..].find('{')?;
    let mut depth = 0usize;
    for (i, c) in src[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&src[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The source without whitespace, so method chains split over lines read as one.
fn squeeze(src: &str) -> String {
    src.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A field of a function's `Config`: its environment variable and the name of the function
/// giving its default, if any.
#[derive(Debug)]
struct ConfigField {
    env: String,
    default_fn: Option<String>,
}

/// The fields of `struct Config` in a function's main.rs, as `shared::app::config_from_env`
/// (envy) reads them: each field from the environment variable of its name in upper case.
fn config_fields(dir: &str) -> Vec<ConfigField> {
    let src = strip_comments(&read(format!("{dir}/src/main.rs")));
    let header = src
        .find("struct Config")
        .unwrap_or_else(|| panic!("{dir}/src/main.rs has no `struct Config`"));
    // The struct's attributes: what precedes it since the previous item.
    let before = &src[..header];
    let item_start = before.rfind([';', '}']).unwrap_or(0);
    let struct_attrs = &before[item_start..];
    for unsupported in ["rename_all", "deny_unknown_fields"] {
        assert!(
            !struct_attrs.contains(unsupported),
            "{dir}: `{unsupported}` on Config is not understood by this test: teach it"
        );
    }
    let body = braced_after(&src, "struct Config").expect("Config has a body");
    // Split into fields at commas outside brackets, keeping each field's attributes.
    let mut fields = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in body.chars() {
        match c {
            '<' | '(' | '[' | '{' => depth += 1,
            '>' | ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                fields.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    fields.push(current);
    fields
        .into_iter()
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            // Attributes: #[...] (balanced), then the field.
            let mut rest = f.trim();
            let mut attrs = Vec::new();
            while let Some(stripped) = rest.strip_prefix("#[") {
                let mut depth = 1;
                let end = stripped
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '[' => depth += 1,
                            ']' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map(|(i, _)| i)
                    .expect("attributes are balanced");
                attrs.push(stripped[..end].to_string());
                rest = stripped[end + 1..].trim();
            }
            for attr in &attrs {
                for unsupported in ["flatten", "rename", "alias"] {
                    assert!(
                        !attr.contains(unsupported),
                        "{dir}: `{unsupported}` on a Config field is not understood by this test: teach it"
                    );
                }
            }
            let rest = rest
                .trim_start_matches("pub(crate)")
                .trim_start_matches("pub")
                .trim();
            let name = rest
                .split(':')
                .next()
                .expect("a field has a name")
                .trim()
                .to_string();
            let default_fn = attrs.iter().find_map(|a| {
                let at = a.find("default = \"")? + "default = \"".len();
                Some(a[at..a[at..].find('"')? + at].to_string())
            });
            ConfigField {
                env: name.to_uppercase(),
                default_fn,
            }
        })
        .collect()
}

/// The literal a `fn name() -> T { literal }` returns, when it is a plain number.
fn default_literal(dir: &str, function: &str) -> Option<f64> {
    let src = strip_comments(&read(format!("{dir}/src/main.rs")));
    let body = braced_after(&src, &format!("fn {function}()"))?;
    body.trim().replace('_', "").parse().ok()
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
fn each_function_is_given_exactly_the_environment_its_config_reads() {
    let t = template();
    for f in &FUNCTIONS {
        let config: BTreeSet<String> = config_fields(f.dir).into_iter().map(|c| c.env).collect();
        assert!(!config.is_empty(), "{}: no Config fields found", f.dir);
        let given: BTreeSet<String> = env_vars(&t, f.logical_id).into_keys().collect();
        assert!(
            given == config,
            "{}",
            diff(
                &format!(
                    "{} environment vs {}/src/main.rs Config",
                    f.logical_id, f.dir
                ),
                &given,
                &config
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
fn parameter_defaults_are_the_code_defaults() {
    let t = template();
    for f in &FUNCTIONS {
        let vars = env_vars(&t, f.logical_id);
        for field in config_fields(f.dir) {
            let (Some(default_fn), Some(value)) = (&field.default_fn, vars.get(&field.env)) else {
                continue;
            };
            let Some(code_default) = default_literal(f.dir, default_fn) else {
                continue;
            };
            let template_default = match value {
                Value::Object(o) if o.contains_key("Ref") => {
                    let param = o["Ref"].as_str().expect("a Ref names a parameter");
                    match t["Parameters"].get(param) {
                        Some(p) => as_number(&p["Default"]),
                        None => continue,
                    }
                }
                Value::String(_) | Value::Number(_) => as_number(value),
                _ => continue,
            };
            assert_eq!(
                template_default, code_default,
                "{} {}: the template's default differs from {}() in {}/src/main.rs",
                f.logical_id, field.env, default_fn, f.dir
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

/// The `Store` methods, queue and secret operations each function's code path calls,
/// reviewed by reading the code (`the_reviewed_store_calls_are_those_in_the_code` checks the
/// store calls against the function's modules):
///
/// - order-pull (`functions/order-pull/src/main.rs` → `shared::pull::handler` and `run`):
///   `handler::handle` reads one integration (`get_integration`, sync-now) or all
///   (`list_integrations`, the schedule); `run` takes and gives back the pull's lease
///   (`acquire_lease`, `release_lease`), reads and saves the cursor (`get_cursor`,
///   `put_cursor`), indexes each new order's packing slip before publishing it
///   (`index_packing_slip`), reads and saves order records (`get_order`, `save_order`, also
///   through `update_record`, which stamps transitions with the store's clock, `now`), counts CIN7 calls (`count_calls`, `calls_today`); the CIN7 client's
///   pacing is the store's shared window (`Pacing::Shared` → `StoreRateLimiter` →
///   `try_acquire_rate`). Secrets: the CIN7 and GoSweetSpot keys (`ClientCache::get`).
///   The reconcile at the end of each pull (`shared::reconcile`, `shared::sightings`) reads and
///   saves its cursor (`get_reconcile_cursor`, `put_reconcile_cursor`), finds orders by packing
///   slip, checks and marks consignments (`order_by_packing_slip`, `consignment_seen`,
///   `mark_consignment_seen`) and sends their jobs (`SqsQueue::send`).
/// - consignment-webhook (`functions/consignment-webhook` → `shared::webhook::http` and
///   `accept`): `authenticate` reads the integration (`get_integration`) and its webhook
///   secret; `queue_new` finds the order by packing slip (`order_by_packing_slip`), notes each
///   new consignment on its order (`update_record` → `get_order`, `save_order`, `now`), checks and
///   marks the consignment (`consignment_seen`, `mark_consignment_seen`), and sends the jobs
///   (`SqsQueue::send`); `record_audit` records the delivery (`record_delivery`).
/// - write-back (`functions/write-back` → `shared::writeback::handler` and `run`): reads the
///   integration (`get_integration`), claims, completes and releases each job's idempotency
///   key (`claim`, `complete`, `release_claim`), reads and updates order records
///   (`get_order`, and `update_record` → `get_order` + `save_order` + `now`), paces CIN7 and the
///   Shopify trigger through the shared window (`try_acquire_rate`). Secrets: the keys. The
///   SQS event source (Lambda's poller, with the function's role) receives and deletes the
///   messages and reads the queue's attributes.
struct CodePath {
    store: &'static [&'static str],
    queue_send: bool,
    secrets: bool,
    sqs_event_source: bool,
}

fn code_path(logical_id: &str) -> CodePath {
    match logical_id {
        "OrderPullFunction" => CodePath {
            store: &[
                "get_integration",
                "list_integrations",
                "acquire_lease",
                "release_lease",
                "get_cursor",
                "put_cursor",
                "index_packing_slip",
                "get_order",
                "save_order",
                "now",
                "count_calls",
                "calls_today",
                "try_acquire_rate",
                "get_reconcile_cursor",
                "put_reconcile_cursor",
                "order_by_packing_slip",
                "consignment_seen",
                "mark_consignment_seen",
            ],
            queue_send: true,
            secrets: true,
            sqs_event_source: false,
        },
        "WebhookFunction" => CodePath {
            store: &[
                "get_integration",
                "order_by_packing_slip",
                "get_order",
                "save_order",
                "now",
                "consignment_seen",
                "mark_consignment_seen",
                "record_delivery",
            ],
            queue_send: true,
            secrets: true,
            sqs_event_source: false,
        },
        "WriteBackFunction" => CodePath {
            store: &[
                "get_integration",
                "claim",
                "complete",
                "release_claim",
                "get_order",
                "save_order",
                "now",
                "try_acquire_rate",
            ],
            queue_send: false,
            secrets: true,
            sqs_event_source: true,
        },
        other => panic!("no code path reviewed for {other}"),
    }
}

/// The modules of each function's code path (beyond its own crate), scanned for store calls.
fn modules(logical_id: &str) -> &'static [&'static str] {
    match logical_id {
        "OrderPullFunction" => &[
            "shared/src/pull",
            "shared/src/reconcile.rs",
            "shared/src/sightings.rs",
        ],
        "WebhookFunction" => &["shared/src/webhook", "shared/src/sightings.rs"],
        "WriteBackFunction" => &["shared/src/writeback"],
        other => panic!("no modules listed for {other}"),
    }
}

/// `Store`'s methods (shared/src/store/mod.rs), each with the `Table` methods it calls
/// directly and the other `Store` methods it calls.
fn store_methods() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let src = strip_comments(&read("shared/src/store/mod.rs"));
    let at = src
        .find("impl Store {")
        .expect("shared/src/store/mod.rs has `impl Store {`");
    let body = braced_after(&src[at..], "impl Store").expect("impl Store has a body");
    let mut methods = BTreeMap::new();
    let mut rest = body;
    while let Some(at) = rest.find("fn ") {
        let after = &rest[at + 3..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(fn_body) = braced_after(after, "(") else {
            break;
        };
        // braced_after finds the first `{` after the parameters: the body (return types of
        // these methods hold no braces).
        let squeezed = squeeze(fn_body);
        let table: BTreeSet<String> = ["get", "put", "delete", "query", "add"]
            .iter()
            .filter(|m| squeezed.contains(&format!("self.table.{m}(")))
            .map(|m| m.to_string())
            .collect();
        let calls: BTreeSet<String> = squeezed
            .match_indices("self.")
            .filter_map(|(i, _)| {
                let name: String = squeezed[i + 5..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                squeezed[i + 5 + name.len()..]
                    .starts_with('(')
                    .then_some(name)
            })
            .collect();
        // Past the body and its closing brace.
        let end = fn_body.as_ptr() as usize - after.as_ptr() as usize + fn_body.len() + 1;
        methods.insert(name, (table, calls));
        rest = &after[end..];
    }
    methods
}

/// The `Table` methods a `Store` method reaches, through the `Store` methods it calls.
fn table_methods(
    method: &str,
    methods: &BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![method.to_string()];
    let mut out = BTreeSet::new();
    while let Some(m) = todo.pop() {
        if !seen.insert(m.clone()) {
            continue;
        }
        let (table, calls) = methods
            .get(&m)
            .unwrap_or_else(|| panic!("Store has no method {m} (shared/src/store/mod.rs)"));
        out.extend(table.iter().cloned());
        todo.extend(calls.iter().filter(|c| methods.contains_key(*c)).cloned());
    }
    out
}

/// The DynamoDB operation each `Table` method of the DynamoDB adapter calls
/// (shared/src/store/dynamodb.rs), as IAM actions.
fn dynamodb_actions() -> BTreeMap<String, BTreeSet<String>> {
    let src = strip_comments(&read("shared/src/store/dynamodb.rs"));
    let adapter = braced_after(&src, "impl Table for DynamoTable")
        .expect("shared/src/store/dynamodb.rs has `impl Table for DynamoTable`");
    // SDK operation (snake case, as the SDK's client methods) → IAM action.
    let operations = [
        ("get_item", "dynamodb:GetItem"),
        ("put_item", "dynamodb:PutItem"),
        ("delete_item", "dynamodb:DeleteItem"),
        ("query", "dynamodb:Query"),
        ("update_item", "dynamodb:UpdateItem"),
        ("scan", "dynamodb:Scan"),
        ("batch_get_item", "dynamodb:BatchGetItem"),
        ("batch_write_item", "dynamodb:BatchWriteItem"),
        ("transact_get_items", "dynamodb:GetItem"),
        ("transact_write_items", "dynamodb:PutItem"),
    ];
    ["get", "put", "delete", "query", "add"]
        .iter()
        .map(|m| {
            let body = braced_after(adapter, &format!("async fn {m}("))
                .unwrap_or_else(|| panic!("DynamoTable has no `async fn {m}`"));
            let squeezed = squeeze(body);
            let actions: BTreeSet<String> = operations
                .iter()
                .filter(|(op, _)| squeezed.contains(&format!(".client.{op}()")))
                .map(|(_, action)| action.to_string())
                .collect();
            assert!(
                !actions.is_empty(),
                "DynamoTable::{m} calls no DynamoDB operation this test knows: teach it"
            );
            assert!(
                !squeezed.contains(".client.transact_"),
                "DynamoTable::{m} uses a transaction: teach this test its IAM actions"
            );
            (m.to_string(), actions)
        })
        .collect()
}

/// The adapters' other calls: the SQS queue's `send` and the Secrets Manager source's
/// fetch, each the one SDK operation the IAM map below assumes.
#[test]
fn the_queue_and_secret_adapters_call_the_operations_the_map_assumes() {
    let sqs = strip_comments(&read("shared/src/queue/sqs.rs"));
    let send = squeeze(braced_after(&sqs, "async fn send(").expect("SqsQueue::send"));
    assert!(send.contains(".client.send_message_batch()"));
    for other in [
        ".client.send_message()",
        ".client.change_message_visibility",
    ] {
        assert!(
            !send.contains(other),
            "SqsQueue::send calls {other}: teach this test"
        );
    }
    let secrets = strip_comments(&read("shared/src/secrets/aws.rs"));
    let fetch = squeeze(braced_after(&secrets, "async fn fetch(").expect("fetch"));
    assert!(fetch.contains(".client.get_secret_value()"));
    assert!(!fetch.contains(".client.describe_secret()"));
    // The webhook's and the reconcile's jobs go through `JobQueue::send` only (never a
    // receive), in the sightings they share.
    let sightings = squeeze(&strip_comments(&read("shared/src/sightings.rs")));
    assert!(sightings.contains("queue.send("));
    assert!(!sightings.contains(".receive("));
}

/// The IAM actions a code path needs.
fn actions_of(path: &CodePath) -> BTreeSet<String> {
    let methods = store_methods();
    let dynamo = dynamodb_actions();
    let mut actions = BTreeSet::new();
    for m in path.store {
        for table in table_methods(m, &methods) {
            actions.extend(dynamo[&table].iter().cloned());
        }
    }
    if path.queue_send {
        // SqsQueue::send calls SendMessageBatch, which IAM authorises as sqs:SendMessage.
        actions.insert("sqs:SendMessage".into());
    }
    if path.secrets {
        // SecretsManagerSource fetches with GetSecretValue.
        actions.insert("secretsmanager:GetSecretValue".into());
    }
    if path.sqs_event_source {
        // What Lambda's SQS poller calls with the function's role.
        actions.extend(set([
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        ]));
    }
    actions
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
fn each_function_may_call_exactly_what_its_code_path_calls() {
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
        let needed = actions_of(&code_path(f.logical_id));
        assert!(
            granted == needed,
            "{}",
            diff(
                &format!("{} IAM actions vs its code path", f.logical_id),
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
    let queue = serde_json::json!({"Fn::GetAtt": ["WriteBackQueue", "Arn"]});
    for f in &FUNCTIONS {
        for s in statements(&t, f.logical_id) {
            for action in statement_actions(&s) {
                let expected = match action.split(':').next() {
                    Some("dynamodb") => &table,
                    Some("sqs") => &queue,
                    Some("secretsmanager") => &secrets,
                    _ => panic!("{}: unexpected service in {action}", f.logical_id),
                };
                assert_eq!(
                    &s["Resource"], expected,
                    "{}: {action} must be on {expected} only",
                    f.logical_id
                );
            }
        }
    }
}

#[test]
fn the_reviewed_store_calls_are_those_in_the_code() {
    let methods = store_methods();
    let update_record = {
        let src = strip_comments(&read("shared/src/store/records.rs"));
        squeeze(braced_after(&src, "pub async fn update_record(").expect("update_record"))
    };
    let store_calls = |squeezed: &str| -> BTreeSet<String> {
        methods
            .keys()
            .filter(|m| squeezed.contains(&format!("store.{m}(")))
            .cloned()
            .collect()
    };
    for f in &FUNCTIONS {
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in std::iter::once(&format!("{}/src", f.dir)[..])
            .chain(modules(f.logical_id).iter().copied())
        {
            let path = repo().join(dir);
            if path.is_file() {
                files.push(path);
                continue;
            }
            for entry in std::fs::read_dir(path).expect("a source directory") {
                let path = entry.expect("an entry").path();
                if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut found = BTreeSet::new();
        for path in &files {
            let src = strip_comments(&read(path));
            // Unit tests in these modules are not the function's code path.
            let src = src.split("#[cfg(test)]").next().unwrap_or_default();
            let squeezed = squeeze(src);
            found.extend(store_calls(&squeezed));
            if squeezed.contains("update_record(") {
                found.extend(store_calls(&update_record));
            }
            if squeezed.contains("Pacing::Shared") {
                // ClientCache paces CIN7 through StoreRateLimiter.
                found.insert("try_acquire_rate".to_string());
            }
        }
        let reviewed = set(code_path(f.logical_id).store.iter().copied());
        assert!(
            found == reviewed,
            "{}",
            diff(
                &format!(
                    "{}: Store calls found in {:?} vs the reviewed map in tests/infra.rs \
                     (review the code path, then update the map and the template's policy)",
                    f.logical_id,
                    modules(f.logical_id)
                ),
                &found,
                &reviewed
            )
        );
    }
}

#[test]
fn the_webhook_function_sends_to_the_queue_and_the_others_do_not() {
    for f in &FUNCTIONS {
        let main = squeeze(&strip_comments(&read(format!("{}/src/main.rs", f.dir))));
        assert_eq!(
            main.contains("sqs_queue("),
            code_path(f.logical_id).queue_send,
            "{}: whether it builds the SQS queue differs from the reviewed map",
            f.logical_id
        );
        assert!(
            main.contains("secrets_manager("),
            "{}: builds no Secrets Manager source",
            f.logical_id
        );
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
    let adapter = read("shared/src/store/dynamodb.rs");
    for name in [
        "const PK: &str = \"pk\"",
        "const SK: &str = \"sk\"",
        "const EXPIRES_AT: &str = \"expires_at\"",
    ] {
        assert!(
            adapter.contains(name),
            "shared/src/store/dynamodb.rs: {name}"
        );
    }
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
    assert_eq!(as_number(&esm["ScalingConfig"]["MaximumConcurrency"]), 2.0);
    let timeout = as_number(function_prop(&t, "WriteBackFunction", "Timeout"));
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
    assert_eq!(
        path,
        format!("{}{{integration_id}}", shared::webhook::ROUTE_PREFIX)
    );
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
