//! A CIN7 Omni sandbox: the sales order endpoints the product uses, faithful to the reference
//! where it is confirmed (Basic auth, bare-array pages, `rows` default 50 and max 250, the
//! `where` subset, `order`, `fields`, PUT of partial orders with per-item results), and to its
//! corrections: dates served in the account's local time with an offset and six digits (and
//! compared as local wall-clock times, see [`AccountTime`]), a PUT that sends `customFields`
//! replacing the whole map, and IIS's 404.15 for a query string over 2,048 characters.
//!
//! Orders are held as JSON objects in camelCase; dates are rewritten as they are served.

use crate::account_time::AccountTime;
use crate::harness::{self, Harness, Running};
use crate::where_clause;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The CIN7 `trackingCode` limit (50 characters, from the BranchTransfer model).
pub const TRACKING_CODE_MAX: usize = 50;

/// What the API connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub read: bool,
    pub update: bool,
}

#[derive(Debug)]
struct State_ {
    username: String,
    /// The connection's key; the merchant may regenerate it ([`Cin7Sandbox::rotate_key`]).
    api_key: Mutex<String>,
    permissions: Mutex<Permissions>,
    orders: Mutex<BTreeMap<i64, Value>>,
    /// Per order: how many applied updates dispatched it and how many changed its freight.
    applied: Mutex<BTreeMap<i64, Applied>>,
    time: Mutex<AccountTime>,
    /// What `modifiedDate` is stamped with ([`Cin7Sandbox::set_clock`]).
    clock: Mutex<Clock>,
    harness: Arc<Harness>,
}

/// Tells the sandbox's time.
pub type Now = dyn Fn() -> DateTime<Utc> + Send + Sync;

#[derive(Clone)]
struct Clock(Arc<Now>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// IIS's default `maxQueryString`: a longer query string is answered 404.15.
pub const MAX_QUERY_STRING: usize = 2048;

/// How many applied updates did what to one order (for exactly-once checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub dispatches: usize,
    pub freight_changes: usize,
}

/// A running CIN7 sandbox.
#[derive(Debug)]
pub struct Cin7Sandbox {
    state: Arc<State_>,
    running: Running,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cin7Sandbox {
    /// Starts a sandbox accepting these credentials, with full permissions and no orders.
    pub async fn start(username: &str, api_key: &str) -> std::io::Result<Self> {
        let harness = Arc::new(Harness::default());
        let state = Arc::new(State_ {
            username: username.to_string(),
            api_key: Mutex::new(api_key.to_string()),
            permissions: Mutex::new(Permissions {
                read: true,
                update: true,
            }),
            orders: Mutex::default(),
            applied: Mutex::default(),
            time: Mutex::default(),
            clock: Mutex::new(Clock(Arc::new(Utc::now))),
            harness: harness.clone(),
        });
        let router = Router::new()
            .route("/api/v1/SalesOrders", get(list).put(update))
            .route("/api/v1/SalesOrders/{id}", get(get_one))
            .route("/shopify/update-order-status", get(shopify_trigger))
            .layer(axum::middleware::from_fn(iis_query_limit))
            .with_state(state.clone());
        let running = harness::serve(router, harness).await?;
        Ok(Self { state, running })
    }

    /// The base URL to configure as `cin7.base_url` (ends in `/api`).
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.running.addr)
    }

    /// A Shopify trigger link template pointing at this sandbox (`{id}`, `{order_id}`).
    pub fn shopify_template(&self) -> String {
        format!(
            "http://{}/shopify/update-order-status?idCustomerAppsLink={{id}}&OrderId={{order_id}}",
            self.running.addr
        )
    }

    /// Recording, faults and rate limits.
    pub fn harness(&self) -> &Harness {
        &self.state.harness
    }

    /// Stamps edits and updates with `now` instead of the wall clock (a simulation in
    /// compressed time).
    pub fn set_clock(&self, now: Arc<Now>) {
        *lock(&self.state.clock) = Clock(now);
    }

    /// Regenerates the API connection's key, as a merchant does in CIN7: from now on only
    /// `new_key` is accepted (the old one gets 401).
    pub fn rotate_key(&self, new_key: &str) {
        *lock(&self.state.api_key) = new_key.to_string();
    }

    /// How dates are written and compared (New Zealand local time by default).
    pub fn set_account_time(&self, time: AccountTime) {
        *lock(&self.state.time) = time;
    }

    /// Sets what the API connection may do.
    pub fn set_permissions(&self, permissions: Permissions) {
        *lock(&self.state.permissions) = permissions;
    }

    /// Adds or replaces an order (a camelCase JSON object with a numeric `id`).
    pub fn put_order(&self, order: Value) {
        if let Some(id) = order.get("id").and_then(Value::as_i64) {
            lock(&self.state.orders).insert(id, order);
        }
    }

    /// Edits an order in place as a CIN7 user would, bumping `modifiedDate` to now.
    pub fn edit_order(&self, id: i64, edit: impl FnOnce(&mut Value)) -> bool {
        let mut orders = lock(&self.state.orders);
        let Some(order) = orders.get_mut(&id) else {
            return false;
        };
        edit(order);
        order["modifiedDate"] = json!(stamp(self.state.now()));
        true
    }

    /// One order as stored (dates as they were written to the sandbox, not as served).
    pub fn order(&self, id: i64) -> Option<Value> {
        lock(&self.state.orders).get(&id).cloned()
    }

    /// What applied updates did to each order (dispatches, freight changes).
    pub fn applied(&self) -> BTreeMap<i64, Applied> {
        lock(&self.state.applied).clone()
    }

    /// Every order, by id.
    pub fn orders(&self) -> Vec<Value> {
        lock(&self.state.orders).values().cloned().collect()
    }
}

impl State_ {
    fn now(&self) -> DateTime<Utc> {
        let clock = lock(&self.clock).clone();
        (clock.0)()
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// IIS refuses a query string over [`MAX_QUERY_STRING`] characters before the application
/// sees it: 404.15, with its HTML page.
async fn iis_query_limit(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let length = request.uri().query().map_or(0, str::len);
    if length > MAX_QUERY_STRING {
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html")],
            "<html><head><title>IIS 10.0 Detailed Error - 404.15 - Not Found</title></head><body>\
             <h3>HTTP Error 404.15 - Not Found</h3><h4>The request filtering module is configured \
             to deny a request where the query string is too long.</h4></body></html>",
        )
            .into_response();
    }
    next.run(request).await
}

/// An order as served: every date (a key ending in `date`, at any depth) written as `time`
/// writes dates.
fn served(order: Value, time: AccountTime) -> Value {
    match order {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match &v {
                        Value::String(text) if k.to_ascii_lowercase().ends_with("date") => {
                            match shared::tolerant::parse_datetime(text) {
                                Ok(Some(instant)) => Value::String(time.write(instant)),
                                _ => v,
                            }
                        }
                        _ => served(v, time),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| served(v, time)).collect()),
        other => other,
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

fn authorise(state: &State_, headers: &HeaderMap) -> Result<Permissions, Box<Response>> {
    let expected = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        state.username,
        lock(&state.api_key)
    ));
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    if given != Some(expected.as_str()) {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "Authorization has been denied for this request.",
        )));
    }
    Ok(*lock(&state.permissions))
}

fn forbidden() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "API user does not have permission to access SalesOrders",
    )
}

async fn list(
    State(state): State<Arc<State_>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match authorise(&state, &headers) {
        Err(r) => return *r,
        Ok(p) if !p.read => return forbidden(),
        Ok(_) => {}
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let rows = match param("rows").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if (1..=250).contains(&n) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "rows must be between 1 and 250"),
    };
    let page = match param("page").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "page must be at least 1"),
    };
    let conditions = match param("where").filter(|w| !w.trim().is_empty()) {
        None => Vec::new(),
        Some(w) => match where_clause::parse(w) {
            Ok(c) => c,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid where clause: {e}"),
                );
            }
        },
    };
    let (order_field, descending) = match param("order").map(str::trim).filter(|o| !o.is_empty()) {
        None => ("id".to_string(), false),
        Some(o) => {
            let mut words = o.split_whitespace();
            let field = words.next().unwrap_or("id").to_string();
            // Several sources say a bare field sorts descending.
            let desc = !words.next().is_some_and(|d| d.eq_ignore_ascii_case("asc"));
            (field, desc)
        }
    };
    let fields: Option<Vec<String>> = param("fields").filter(|f| !f.trim().is_empty()).map(|f| {
        f.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    });

    let time = *lock(&state.time);
    let mut matching: Vec<Value> = lock(&state.orders)
        .values()
        .filter(|o| where_clause::matches(o, &conditions, time))
        .cloned()
        .collect();
    let key = |o: &Value| sort_key(where_clause::field(o, &order_field));
    // Ties break by id ascending so paging is stable.
    matching.sort_by(|a, b| {
        let primary = key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal);
        let primary = if descending {
            primary.reverse()
        } else {
            primary
        };
        primary.then_with(|| id_of(a).cmp(&id_of(b)))
    });
    let page_items: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * rows)
        .take(rows)
        .map(|o| served(project(o, fields.as_deref()), time))
        .collect();
    Json(Value::Array(page_items)).into_response()
}

fn id_of(o: &Value) -> i64 {
    o.get("id").and_then(Value::as_i64).unwrap_or_default()
}

#[derive(Debug, PartialEq, PartialOrd)]
enum SortKey {
    Missing,
    Number(f64),
    Date(chrono::DateTime<Utc>),
    Text(String),
}

fn sort_key(v: Option<&Value>) -> SortKey {
    match v {
        Some(Value::Number(n)) => SortKey::Number(n.as_f64().unwrap_or_default()),
        Some(Value::String(s)) => match shared::tolerant::parse_datetime(s) {
            Ok(Some(d)) => SortKey::Date(d),
            _ => SortKey::Text(s.to_lowercase()),
        },
        _ => SortKey::Missing,
    }
}

fn project(order: Value, fields: Option<&[String]>) -> Value {
    match (order, fields) {
        (Value::Object(map), Some(fields)) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f.eq_ignore_ascii_case(k)))
                .collect(),
        ),
        (order, _) => order,
    }
}

/// Stands in for CIN7's Shopify "update order status" link (its real form is not documented):
/// answers 200 and is recorded like every request.
async fn shopify_trigger(Query(params): Query<HashMap<String, String>>) -> Response {
    if params.contains_key("idCustomerAppsLink") {
        Json(json!({"message": "Order status update queued"})).into_response()
    } else {
        error(StatusCode::BAD_REQUEST, "idCustomerAppsLink is required")
    }
}

async fn get_one(
    State(state): State<Arc<State_>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match authorise(&state, &headers) {
        Err(r) => return *r,
        Ok(p) if !p.read => return forbidden(),
        Ok(_) => {}
    }
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, "The id must be a number");
    };
    let time = *lock(&state.time);
    match lock(&state.orders).get(&id) {
        Some(order) => Json(served(order.clone(), time)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("Sales order {id} not found")),
    }
}

async fn update(State(state): State<Arc<State_>>, headers: HeaderMap, body: String) -> Response {
    match authorise(&state, &headers) {
        Err(r) => return *r,
        Ok(p) if !p.update => return forbidden(),
        Ok(_) => {}
    }
    let items = match serde_json::from_str::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "The request body must be a list"),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")),
    };
    if items.len() > 250 {
        return error(StatusCode::BAD_REQUEST, "At most 250 orders per request");
    }
    let now = state.now();
    let mut orders = lock(&state.orders);
    let mut applied = lock(&state.applied);
    let results: Vec<Value> = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let id = item.get("id").and_then(Value::as_i64);
            let before = id.and_then(|i| orders.get(&i)).cloned();
            let outcome = apply_update(&mut orders, item, now);
            if let (Ok(()), Some(i), Some(before)) = (&outcome, id, before)
                && let Some(after) = orders.get(&i)
            {
                let entry = applied.entry(i).or_default();
                if before.get("dispatchedDate").is_none_or(Value::is_null)
                    && after.get("dispatchedDate").is_some_and(|d| !d.is_null())
                {
                    entry.dispatches += 1;
                }
                if before.get("freightTotal") != after.get("freightTotal") {
                    entry.freight_changes += 1;
                }
            }
            json!({
                "index": index,
                "success": outcome.is_ok(),
                "id": id,
                "code": null,
                "errors": outcome.err().map(|e| vec![e]).unwrap_or_default(),
            })
        })
        .collect();
    Json(Value::Array(results)).into_response()
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

fn apply_update(
    orders: &mut BTreeMap<i64, Value>,
    item: Value,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let Value::Object(changes) = item else {
        return Err("Each order must be an object".into());
    };
    let id = changes
        .get("id")
        .and_then(Value::as_i64)
        .ok_or("Each order must have an id")?;
    if changes.keys().any(|k| k.eq_ignore_ascii_case("status")) {
        return Err("status is read-only".into());
    }
    if changes.keys().any(|k| k.eq_ignore_ascii_case("lineItems")) {
        return Err("lineItems updates are not supported by the sandbox".into());
    }
    let order = orders
        .get_mut(&id)
        .ok_or_else(|| format!("Sales order {id} not found"))?;
    if let Some(code) = changes.get("trackingCode").and_then(Value::as_str)
        && code.chars().count() > TRACKING_CODE_MAX
    {
        return Err(format!(
            "trackingCode exceeds {TRACKING_CODE_MAX} characters"
        ));
    }
    if let Some(freight) = changes.get("freightTotal")
        && !freight.is_number()
    {
        return Err("freightTotal must be a number".into());
    }
    let dispatching = changes.get("dispatchedDate").is_some_and(|d| !d.is_null());
    if dispatching {
        let void = is_true(order.get("isVoid"))
            || order.get("status").and_then(Value::as_str) == Some("Void");
        if void {
            return Err("Cannot dispatch a void order".into());
        }
        let approved = is_true(order.get("isApproved"))
            || order.get("status").and_then(Value::as_str) == Some("Approved");
        if !approved {
            return Err("The order must be approved before it is dispatched".into());
        }
    }
    let Value::Object(target) = order else {
        return Err("Stored order is not an object".into());
    };
    for (key, value) in changes {
        if key != "id" {
            target.insert(key, value);
        }
    }
    if dispatching {
        target
            .entry("stage")
            .and_modify(|s| {
                if s.as_str() != Some("Dispatched") {
                    *s = json!("Dispatched");
                }
            })
            .or_insert(json!("Dispatched"));
        target.insert("logisticsStatus".into(), json!(2));
        if let Some(Value::Array(lines)) = target.get_mut("lineItems") {
            for line in lines {
                let qty = line.get("qty").cloned().unwrap_or(json!(0));
                line["qtyShipped"] = qty;
            }
        }
    }
    target.insert("modifiedDate".into(), json!(stamp(now)));
    Ok(())
}
