//! A GoSweetSpot sandbox: header auth, customer orders (upsert while pending, ignore once
//! processed, delete while pending), shipments, and a dispatcher's "ticket this order" that
//! creates a consignment and posts a signed webhook, as GoSweetSpot does.

use crate::harness::{self, Harness, Running};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use shared::gss::model::{CustomerOrder, Shipment, ShipmentItem, limits, parse};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// How the sandbox posts webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    /// The HMAC secret; `None` posts unsigned.
    pub secret: Option<String>,
    /// The query parameter carrying the signature (GoSweetSpot does not document its name).
    pub signature_param: String,
    /// Post the legacy form: a JSON string holding the JSON.
    pub legacy: bool,
}

/// One webhook post and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub body: String,
    /// HTTP status answered, or `None` when the receiver could not be reached.
    pub status: Option<u16>,
    /// The body answered (empty when none could be read).
    pub answer: String,
}

/// How a consignment is created.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub cost: Decimal,
    pub carrier: String,
}

impl Default for Ticket {
    /// GoSweetSpot's `Carrier` is a rate-card label, not a bare carrier name.
    fn default() -> Self {
        Self {
            cost: Decimal::new(850, 2),
            carrier: "Post Haste - AKL - 2011".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct OrderEntry {
    order: CustomerOrder,
    processed: bool,
    deleted: bool,
    connotes: Vec<String>,
}

#[derive(Debug)]
struct State_ {
    site_id: String,
    access_key: String,
    orders: Mutex<BTreeMap<String, OrderEntry>>,
    shipments: Mutex<BTreeMap<String, Shipment>>,
    /// When each consignment last changed (created, picked, delivered, deleted), for the
    /// `lastupdateminutc`/`lastupdatemaxutc` filter.
    updated: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// Tickets the dispatcher deleted (a relabel).
    deleted: Mutex<BTreeSet<String>>,
    /// Whether `GET /api/shipments` still lists deleted tickets (with `Status: "Deleted"`)
    /// rather than leaving them out; GoSweetSpot does not document which.
    list_deleted: Mutex<bool>,
    next_connote: Mutex<u64>,
    /// Percent markup per cost centre name, for `Charge_MarkedUpLineTotal`.
    markups: Mutex<BTreeMap<String, Decimal>>,
    webhook: Mutex<Option<WebhookTarget>>,
    deliveries: Mutex<Vec<Delivery>>,
    /// Packing slips that make GoSweetSpot refuse any whole `PUT /api/customerorders`
    /// carrying them (400, an ASP.NET ModelState body), with the field message.
    poison: Mutex<BTreeMap<String, String>>,
    harness: Arc<Harness>,
}

/// A running GoSweetSpot sandbox.
#[derive(Debug)]
pub struct GssSandbox {
    state: Arc<State_>,
    running: Running,
    http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a sandbox operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("no customer order {0:?}")]
    UnknownOrder(String),
    #[error("no consignment {0:?}")]
    UnknownConsignment(String),
    #[error("the webhook secret cannot key an HMAC")]
    BadSecret,
}

impl GssSandbox {
    /// Starts a sandbox for one site and access key.
    pub async fn start(site_id: &str, access_key: &str) -> std::io::Result<Self> {
        let harness = Arc::new(Harness::default());
        let state = Arc::new(State_ {
            site_id: site_id.to_string(),
            access_key: access_key.to_string(),
            orders: Mutex::default(),
            shipments: Mutex::default(),
            updated: Mutex::default(),
            deleted: Mutex::default(),
            list_deleted: Mutex::default(),
            next_connote: Mutex::new(18667),
            markups: Mutex::default(),
            webhook: Mutex::default(),
            deliveries: Mutex::default(),
            poison: Mutex::default(),
            harness: harness.clone(),
        });
        let router = Router::new()
            .route(
                "/api/customerorders",
                get(get_orders).put(put_orders).delete(delete_orders),
            )
            .route("/api/shipments", get(get_shipments))
            .with_state(state.clone());
        let running = harness::serve(router, harness).await?;
        Ok(Self {
            state,
            running,
            http: reqwest::Client::new(),
        })
    }

    /// The base URL to configure as `gss.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// Recording, faults and rate limits.
    pub fn harness(&self) -> &Harness {
        &self.state.harness
    }

    /// Sets a cost centre's markup in percent.
    pub fn set_markup(&self, cost_centre: &str, percent: Decimal) {
        lock(&self.state.markups).insert(cost_centre.to_string(), percent);
    }

    /// Where (and how) to post webhooks; `None` stops posting.
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        *lock(&self.state.webhook) = target;
    }

    /// A customer order as held (deleted ones excluded).
    pub fn order(&self, packing_slip: &str) -> Option<CustomerOrder> {
        lock(&self.state.orders)
            .get(packing_slip)
            .filter(|e| !e.deleted)
            .map(|e| e.order.clone())
    }

    /// Packing slips of every order held and not deleted.
    pub fn packing_slips(&self) -> Vec<String> {
        lock(&self.state.orders)
            .iter()
            .filter(|(_, e)| !e.deleted)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether an order has been ticketed.
    pub fn is_processed(&self, packing_slip: &str) -> bool {
        lock(&self.state.orders)
            .get(packing_slip)
            .is_some_and(|e| e.processed)
    }

    /// Every consignment created so far.
    pub fn shipments(&self) -> Vec<Shipment> {
        lock(&self.state.shipments).values().cloned().collect()
    }

    /// Every webhook post so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state.deliveries).clone()
    }

    /// Makes every `PUT /api/customerorders` that carries `packing_slip` fail as a whole with
    /// 400 and a ModelState body naming `message` (GoSweetSpot documents only per-order
    /// `result: false`; a third-party client shows such whole-request 400s).
    pub fn reject_batches_with(&self, packing_slip: &str, message: &str) {
        lock(&self.state.poison).insert(packing_slip.to_string(), message.to_string());
    }

    /// Whether `GET /api/shipments` lists deleted tickets with `Status: "Deleted"` (`true`) or
    /// leaves them out (`false`, the default).
    pub fn set_list_deleted(&self, list: bool) {
        *lock(&self.state.list_deleted) = list;
    }

    /// Deletes a ticket as a dispatcher does before reprinting with other parcels: the
    /// consignment stands no more, and its order may be ticketed again.
    pub fn delete_ticket(&self, connote: &str) -> Result<(), SandboxError> {
        if !lock(&self.state.shipments).contains_key(connote) {
            return Err(SandboxError::UnknownConsignment(connote.to_string()));
        }
        lock(&self.state.deleted).insert(connote.to_string());
        lock(&self.state.updated).insert(connote.to_string(), Utc::now());
        for entry in lock(&self.state.orders).values_mut() {
            entry.connotes.retain(|c| c != connote);
        }
        Ok(())
    }

    fn touch(&self, connote: &str) {
        lock(&self.state.updated).insert(connote.to_string(), Utc::now());
    }

    /// Stops refusing batches that carry `packing_slip` (see [`Self::reject_batches_with`]).
    pub fn accept_batches_with(&self, packing_slip: &str) {
        lock(&self.state.poison).remove(packing_slip);
    }

    /// Tickets an order as a dispatcher would: creates a consignment (connote, tracking URL,
    /// cost, carrier, the order's cost centre, and the marked-up charge when that cost centre
    /// has a markup), marks the order processed, and posts the "created" webhook if one is
    /// configured. An order may be ticketed more than once (a split shipment).
    pub async fn ticket(
        &self,
        packing_slip: &str,
        ticket: Ticket,
    ) -> Result<Shipment, SandboxError> {
        let shipment = self.create_ticket(packing_slip, ticket)?;
        self.post_webhook(std::slice::from_ref(&shipment)).await?;
        Ok(shipment)
    }

    /// A ticket created in GoSweetSpot's own UI, for no published order: `ManualTicket: true`
    /// and an empty `PackingSlipNo`, as in GoSweetSpot's documented webhook example. Not
    /// posted: [`Self::post_webhook`] sends it, alone or mixed with others.
    pub fn manual_ticket(&self, consignee: &str, ticket: Ticket) -> Shipment {
        let connote = self.next_connote();
        let shipment = Shipment {
            consignment_no: Some(connote.clone()),
            packing_slip_no: Some(String::new()),
            tracking: Some(self.tracking_url(&connote)),
            total_cost: Some(ticket.cost),
            created_utc: Some(Utc::now()),
            manual_ticket: Some(true),
            consignee: Some(consignee.to_uppercase()),
            carrier: Some(ticket.carrier),
            items: vec![ShipmentItem {
                charge_line_total: Some(ticket.cost),
                charge_marked_up_line_total: Some(Decimal::ZERO),
            }],
            ..Shipment::default()
        };
        self.touch(&connote);
        lock(&self.state.shipments).insert(connote, shipment.clone());
        shipment
    }

    fn next_connote(&self) -> String {
        let mut n = lock(&self.state.next_connote);
        *n += 1;
        format!("SSPOT{:06}", *n)
    }

    fn tracking_url(&self, connote: &str) -> String {
        format!(
            "https://gosweetspot.com/track/{}-{connote}",
            self.state.site_id
        )
    }

    /// Tickets an order as [`Self::ticket`] does, without posting the webhook (a delivery
    /// GoSweetSpot has not sent yet, or never will).
    pub fn create_ticket(
        &self,
        packing_slip: &str,
        ticket: Ticket,
    ) -> Result<Shipment, SandboxError> {
        let shipment = {
            let mut orders = lock(&self.state.orders);
            let entry = orders
                .get_mut(packing_slip)
                .filter(|e| !e.deleted)
                .ok_or_else(|| SandboxError::UnknownOrder(packing_slip.to_string()))?;
            let connote = self.next_connote();
            let markup = entry
                .order
                .costcentre
                .as_ref()
                .and_then(|c| lock(&self.state.markups).get(c).copied());
            // Non-nullable in GoSweetSpot's own client: 0 when no markup is defined.
            let marked_up = markup.map_or(Decimal::ZERO, |pct| {
                (ticket.cost * (Decimal::ONE_HUNDRED + pct) / Decimal::ONE_HUNDRED)
                    .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
            });
            let shipment = Shipment {
                consignment_no: Some(connote.clone()),
                packing_slip_no: Some(packing_slip.to_string()),
                tracking: Some(self.tracking_url(&connote)),
                total_cost: Some(ticket.cost),
                status: None,
                picked: None,
                delivered: None,
                created_utc: Some(Utc::now()),
                manual_ticket: Some(false),
                consignee: Some(entry.order.consignee.to_uppercase()),
                carrier: Some(ticket.carrier),
                cost_centre: entry.order.costcentre.clone(),
                items: vec![ShipmentItem {
                    charge_line_total: Some(ticket.cost),
                    charge_marked_up_line_total: Some(marked_up),
                }],
            };
            entry.processed = true;
            entry.connotes.push(connote.clone());
            self.touch(&connote);
            lock(&self.state.shipments).insert(connote, shipment.clone());
            shipment
        };
        Ok(shipment)
    }

    /// Records a courier pickup on a consignment and posts the webhook again.
    pub async fn pick(&self, connote: &str) -> Result<Shipment, SandboxError> {
        self.advance(connote, |s| {
            s.picked = Some(Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string());
            s.status = Some("Picked up".into());
        })
        .await
    }

    /// Records a delivery on a consignment and posts the webhook again.
    pub async fn deliver(&self, connote: &str) -> Result<Shipment, SandboxError> {
        self.advance(connote, |s| {
            s.delivered = Some(Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string());
            s.status = Some("Delivered".into());
        })
        .await
    }

    async fn advance(
        &self,
        connote: &str,
        change: impl FnOnce(&mut Shipment),
    ) -> Result<Shipment, SandboxError> {
        let shipment = {
            let mut shipments = lock(&self.state.shipments);
            let s = shipments
                .get_mut(connote)
                .ok_or_else(|| SandboxError::UnknownConsignment(connote.to_string()))?;
            change(s);
            s.clone()
        };
        self.touch(connote);
        self.post_webhook(std::slice::from_ref(&shipment)).await?;
        Ok(shipment)
    }

    /// Posts a webhook delivery of these shipments (signed when a secret is set) and records
    /// the answer. Does nothing when no webhook is configured.
    pub async fn post_webhook(&self, shipments: &[Shipment]) -> Result<Option<u16>, SandboxError> {
        let Some(target) = lock(&self.state.webhook).clone() else {
            return Ok(None);
        };
        let json = serde_json::to_string(shipments).unwrap_or_else(|_| "[]".into());
        let body = if target.legacy {
            serde_json::to_string(&json).unwrap_or_default()
        } else {
            json
        };
        let mut request = self
            .http
            .post(&target.url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(secret) = &target.secret {
            let signature = shared::signature::sign(secret.as_bytes(), body.as_bytes())
                .map_err(|_| SandboxError::BadSecret)?;
            request = request.query(&[(target.signature_param.as_str(), signature.as_str())]);
        }
        let (status, answer) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (Some(status), response.text().await.unwrap_or_default())
            }
            Err(_) => (None, String::new()),
        };
        lock(&self.state.deliveries).push(Delivery {
            body,
            status,
            answer,
        });
        Ok(status)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "Message": message }))).into_response()
}

fn authorise(state: &State_, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("access_key") == Some(state.access_key.as_str())
        && header("site_id") == Some(state.site_id.as_str())
    {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "Authorization has been denied for this request.",
        )))
    }
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn list_param(params: &HashMap<String, String>, name: &str) -> Vec<String> {
    param(params, name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The first field of a customer order longer than GoSweetSpot allows.
fn too_long(o: &CustomerOrder) -> Option<String> {
    let checks: [(&str, &str, usize); 12] = [
        ("packingslipno", &o.packingslipno, limits::PACKING_SLIP_NO),
        ("consignee", &o.consignee, limits::CONSIGNEE),
        ("address1", &o.address1, limits::ADDRESS),
        ("address2", &o.address2, limits::ADDRESS),
        ("suburb", &o.suburb, limits::SUBURB),
        ("city", &o.city, limits::CITY),
        ("postcode", &o.postcode, limits::POSTCODE),
        ("delvref", &o.delvref, limits::DELIVERY_REFERENCE),
        (
            "delvinstructions",
            &o.delvinstructions,
            limits::DELIVERY_INSTRUCTIONS,
        ),
        ("contactname", &o.contactname, limits::CONTACT_NAME),
        ("contactphone", &o.contactphone, limits::CONTACT_PHONE),
        ("email", &o.email, limits::EMAIL),
    ];
    checks
        .iter()
        .find(|(_, v, max)| v.chars().count() > *max)
        .map(|(name, _, max)| format!("{name} exceeds {max} characters"))
        .or_else(|| {
            o.products.iter().find_map(|p| {
                if p.productcode.chars().count() > limits::PRODUCT_CODE {
                    Some(format!(
                        "productcode exceeds {} characters",
                        limits::PRODUCT_CODE
                    ))
                } else if p.description.chars().count() > limits::PRODUCT_DESCRIPTION {
                    Some(format!(
                        "description exceeds {} characters",
                        limits::PRODUCT_DESCRIPTION
                    ))
                } else {
                    None
                }
            })
        })
        .or_else(|| (o.country.len() != 2).then(|| "country must be an ISO alpha-2 code".into()))
}

async fn put_orders(
    State(state): State<Arc<State_>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(r) = authorise(&state, &headers) {
        return *r;
    }
    let orders: Vec<CustomerOrder> = match parse(body.as_bytes()) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("Invalid request: {e}")),
    };
    {
        let poison = lock(&state.poison);
        let refused: BTreeMap<String, Value> = orders
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                poison
                    .get(&o.packingslipno)
                    .map(|m| (format!("orders[{i}].packingslipno"), json!([m])))
            })
            .collect();
        if !refused.is_empty() {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"Message": "The request is invalid.", "ModelState": refused})),
            )
                .into_response();
        }
    }
    let mut held = lock(&state.orders);
    let results: Vec<Value> = orders
        .into_iter()
        .map(|order| {
            let slip = order.packingslipno.clone();
            let (result, msg) = if slip.trim().is_empty() {
                (false, "packingslipno is required".to_string())
            } else if let Some(problem) = too_long(&order) {
                (false, problem)
            } else {
                match held.get_mut(&slip) {
                    Some(e) if e.processed && !e.deleted => (false, "already processed".into()),
                    Some(e) => {
                        e.order = order;
                        e.deleted = false;
                        (true, String::new())
                    }
                    None => {
                        held.insert(
                            slip.clone(),
                            OrderEntry {
                                order,
                                processed: false,
                                deleted: false,
                                connotes: Vec::new(),
                            },
                        );
                        (true, String::new())
                    }
                }
            };
            json!({"packingslipno": slip, "result": result, "msg": msg})
        })
        .collect();
    Json(Value::Array(results)).into_response()
}

fn page_of<T: serde::Serialize>(
    items: Vec<T>,
    params: &HashMap<String, String>,
    max: usize,
) -> Value {
    let size = param(params, "pagesize")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(max)
        .clamp(1, max);
    let page = param(params, "page")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let pages = items.len().div_ceil(size).max(1);
    let results: Vec<T> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    json!({"Page": page, "PageSize": size, "Pages": pages, "Results": results})
}

async fn get_orders(
    State(state): State<Arc<State_>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorise(&state, &headers) {
        return *r;
    }
    let wanted = list_param(&params, "packingslipno");
    let shipments = lock(&state.shipments).clone();
    let items: Vec<Value> = lock(&state.orders)
        .iter()
        .filter(|(slip, e)| !e.deleted && (wanted.is_empty() || wanted.contains(slip)))
        .map(|(_, e)| {
            let last = e.connotes.last().and_then(|c| shipments.get(c));
            let mut v = serde_json::to_value(&e.order).unwrap_or_default();
            v["status"] = json!({
                "Status": if e.processed { "PROCESSED" } else { "PENDING" },
                "ticketnumber": e.connotes.last(),
                "trackingurl": last.and_then(|s| s.tracking.clone()),
                "manualticket": false,
            });
            v
        })
        .collect();
    Json(page_of(items, &params, 100)).into_response()
}

async fn delete_orders(
    State(state): State<Arc<State_>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorise(&state, &headers) {
        return *r;
    }
    let slips = list_param(&params, "packingslipno");
    if slips.is_empty() {
        return error(StatusCode::BAD_REQUEST, "No packing slip numbers given");
    }
    if slips.len() > 50 {
        return error(StatusCode::CONFLICT, "At most 50 orders per request");
    }
    let mut held = lock(&state.orders);
    let answer: BTreeMap<String, &str> = slips
        .into_iter()
        .map(|slip| {
            let msg = match held.get_mut(&slip) {
                None => "Invalid packing slip number",
                Some(e) if e.deleted => "Cannot be deleted. Already deleted.",
                Some(e) if e.processed => "Cannot be deleted. Already processed.",
                Some(e) => {
                    e.deleted = true;
                    "Deleted."
                }
            };
            (slip, msg)
        })
        .collect();
    Json(answer).into_response()
}

async fn get_shipments(
    State(state): State<Arc<State_>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorise(&state, &headers) {
        return *r;
    }
    let connotes = list_param(&params, "shipments");
    let slips = list_param(&params, "ordernumbers");
    // The date filters are ignored when shipments or order numbers are given (documented).
    let window = |name: &str| {
        param(&params, name).and_then(|t| shared::tolerant::parse_datetime(t).ok().flatten())
    };
    let (from, to) = if connotes.is_empty() && slips.is_empty() {
        (window("lastupdateminutc"), window("lastupdatemaxutc"))
    } else {
        (None, None)
    };
    let updated = lock(&state.updated).clone();
    let deleted = lock(&state.deleted).clone();
    let list_deleted = *lock(&state.list_deleted);
    let items: Vec<Shipment> = lock(&state.shipments)
        .iter()
        .filter(|(c, _)| connotes.is_empty() || connotes.contains(c))
        .filter(|(_, s)| {
            slips.is_empty()
                || s.packing_slip_no
                    .as_ref()
                    .is_some_and(|p| slips.contains(p))
        })
        .filter(|(c, _)| {
            let at = updated.get(*c);
            from.is_none_or(|f| at.is_some_and(|a| *a >= f))
                && to.is_none_or(|t| at.is_some_and(|a| *a <= t))
        })
        .filter(|(c, _)| list_deleted || !deleted.contains(*c))
        .map(|(c, s)| {
            let mut s = s.clone();
            if deleted.contains(c) {
                s.status = Some("Deleted".into());
            }
            s
        })
        .collect();
    Json(page_of(items, &params, 250)).into_response()
}
