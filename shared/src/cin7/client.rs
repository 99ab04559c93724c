//! The CIN7 Omni v1 client: Basic auth, paced, retried, counted.

use super::model::{OrderRow, SalesOrder, parse_page};
use super::query::{ListQuery, MAX_ROWS, Where};
use super::update::{PutOutcome, PutResultItem, SalesOrderUpdate, match_put_results};
use crate::http::{
    Answer, ApiError, CallCounter, CallKind, Endpoint, EndpointConfig, Idempotency, RetryPolicy,
    Service,
};
use crate::rate_limit::RateLimiter;
use crate::tolerant::BodyError;
use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// The most orders one PUT may carry (the list maximum; CIN7 documents no other).
pub const MAX_PUT_ORDERS: usize = 250;

/// The longest request URL sent to CIN7. CIN7 runs on ASP.NET, whose IIS refuses a query
/// string over 2,048 characters by default (404.15); CIN7's own limit is unpublished, so every
/// URL stays under 2,000.
pub const MAX_URL_CHARS: usize = 2000;

/// Operation names, as counted by [`CallCounter`].
pub mod ops {
    pub const LIST: &str = "GET /v1/SalesOrders";
    pub const GET: &str = "GET /v1/SalesOrders/{id}";
    pub const PUT: &str = "PUT /v1/SalesOrders";
}

/// What a CIN7 client needs.
pub struct Cin7Config {
    /// e.g. `https://api.cin7.com/api` (the `v1/…` paths are appended).
    pub base_url: String,
    pub username: String,
    pub api_key: SecretString,
    /// The HTTP client, shared by every client of this API in the process
    /// ([`crate::http::client`]).
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
    pub limiter: Arc<dyn RateLimiter>,
}

/// A client for one CIN7 account.
#[derive(Debug)]
pub struct Cin7Client {
    endpoint: Endpoint,
    base: String,
    base_url: url::Url,
    auth: HeaderValue,
}

impl Cin7Client {
    /// Builds the client once; the credentials are held only in a sensitive header value.
    pub fn new(config: Cin7Config) -> Result<Self, ApiError> {
        let invalid = |detail: String| ApiError::InvalidRequest {
            service: Service::Cin7,
            operation: "client setup",
            detail,
        };
        if config.username.trim().is_empty() {
            return Err(invalid("the CIN7 API username is empty".into()));
        }
        let url = url::Url::parse(&config.base_url)
            .map_err(|e| invalid(format!("cin7.base_url is not a URL: {e}")))?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            config.username,
            config.api_key.expose_secret()
        ));
        let mut auth = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
            invalid("the CIN7 credentials contain characters a header cannot carry".into())
        })?;
        auth.set_sensitive(true);
        let endpoint = Endpoint::new(EndpointConfig {
            service: Service::Cin7,
            http: config.http,
            limiter: config.limiter,
            retry: config.retry,
            auth_hint: "check cin7.api_username and the API key secret it refers to",
            permission_hint: "the CIN7 API connection lacks a permission: tick Sales Orders Read and Update, and Products Read",
        });
        Ok(Self {
            endpoint,
            base: url.as_str().trim_end_matches('/').to_string(),
            base_url: url,
            auth,
        })
    }

    /// Calls made by this client.
    pub fn calls(&self) -> &CallCounter {
        self.endpoint.calls()
    }

    /// True once the API has answered 401 or 403 to this client (its key may have been
    /// rotated: the client cache builds a new one with the secret read again).
    pub fn credentials_rejected(&self) -> bool {
        self.endpoint.credentials_rejected()
    }

    /// One page of `GET /v1/SalesOrders`. Each element is parsed on its own.
    pub async fn list_page(&self, query: &ListQuery) -> Result<Vec<OrderRow>, ApiError> {
        if query.rows == 0 || query.rows > MAX_ROWS || query.page == 0 {
            return Err(ApiError::InvalidRequest {
                service: Service::Cin7,
                operation: ops::LIST,
                detail: format!(
                    "rows must be 1–{MAX_ROWS} and page at least 1 (got rows {}, page {})",
                    query.rows, query.page
                ),
            });
        }
        let url = self.list_url(query);
        if url.as_str().len() > MAX_URL_CHARS {
            return Err(ApiError::InvalidRequest {
                service: Service::Cin7,
                operation: ops::LIST,
                detail: format!(
                    "the request URL would be {} characters; CIN7 is sent at most {MAX_URL_CHARS}",
                    url.as_str().len()
                ),
            });
        }
        self.endpoint
            .call(
                ops::LIST,
                CallKind::IDEMPOTENT,
                |http| {
                    http.get(url.clone())
                        .header(AUTHORIZATION, self.auth.clone())
                },
                |answer: &Answer| parse_page(&answer.body),
            )
            .await
    }

    /// The URL of a list query, exactly as sent.
    fn list_url(&self, query: &ListQuery) -> url::Url {
        let mut url = url::Url::parse(&format!("{}/v1/SalesOrders", self.base))
            .unwrap_or_else(|_| self.base_url.clone());
        url.query_pairs_mut().extend_pairs(query.params());
        url
    }

    /// Whether a list query's request URL is at most [`MAX_URL_CHARS`] long.
    pub fn url_fits(&self, query: &ListQuery) -> bool {
        self.list_url(query).as_str().len() <= MAX_URL_CHARS
    }

    /// The orders with these ids (`id IN (…)`), in as few list calls as fit: at most
    /// [`MAX_ROWS`] ids a call, and each call's URL within [`MAX_URL_CHARS`].
    pub async fn orders_by_id(
        &self,
        ids: &[i64],
        fields: &[&'static str],
    ) -> Result<Vec<OrderRow>, ApiError> {
        let query = |chunk: &[i64]| ListQuery {
            filter: Where::new().id_in(chunk),
            fields: fields.to_vec(),
            ..ListQuery::default()
        };
        let mut all = Vec::new();
        let mut rest = ids;
        while !rest.is_empty() {
            // The longest prefix that fits (URL length grows with each id).
            let mut n = rest.len().min(MAX_ROWS as usize);
            while n > 1 && !self.url_fits(&query(&rest[..n])) {
                n = (n * 3 / 4).max(1);
            }
            while n < rest.len().min(MAX_ROWS as usize) && self.url_fits(&query(&rest[..n + 1])) {
                n += 1;
            }
            all.extend(self.list_page(&query(&rest[..n])).await?);
            rest = &rest[n..];
        }
        Ok(all)
    }

    /// Every page of a query, from its `page` on, until a page comes back short.
    pub async fn list_all(&self, mut query: ListQuery) -> Result<Vec<OrderRow>, ApiError> {
        let mut all = Vec::new();
        loop {
            let page = self.list_page(&query).await?;
            let short = page.len() < query.rows as usize;
            all.extend(page);
            if short {
                return Ok(all);
            }
            query.page += 1;
        }
    }

    /// `GET /v1/SalesOrders/{id}`; `None` when CIN7 has no such order.
    pub async fn get_order(&self, id: i64) -> Result<Option<SalesOrder>, ApiError> {
        let url = format!("{}/v1/SalesOrders/{id}", self.base);
        self.endpoint
            .call(
                ops::GET,
                CallKind {
                    accept: &[404],
                    ..CallKind::IDEMPOTENT
                },
                |http| http.get(&url).header(AUTHORIZATION, self.auth.clone()),
                |answer: &Answer| {
                    if answer.status == StatusCode::NOT_FOUND {
                        return Ok(None);
                    }
                    let value: serde_json::Value = serde_json::from_slice(&answer.body)
                        .map_err(|e| BodyError::Json(e.to_string()))?;
                    match value {
                        serde_json::Value::Null => Ok(None),
                        v @ serde_json::Value::Object(_) => match OrderRow::from_value(v) {
                            OrderRow::Parsed(order) => Ok(Some(*order)),
                            OrderRow::Unparseable(u) => {
                                Err(BodyError::Shape(format!("order {id}: {}", u.error)))
                            }
                        },
                        other => Err(BodyError::Shape(format!(
                            "expected a sales order, got {}",
                            crate::tolerant::kind(&other)
                        ))),
                    }
                },
            )
            .await
    }

    /// `PUT /v1/SalesOrders` with partial orders; returns each order's outcome by id. Not
    /// retried after an ambiguous failure (CIN7 may answer 500 to a PUT it committed): the
    /// caller reads the orders back and decides.
    pub async fn update_orders(
        &self,
        updates: &[SalesOrderUpdate],
    ) -> Result<Vec<PutOutcome>, ApiError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        if updates.len() > MAX_PUT_ORDERS {
            return Err(ApiError::InvalidRequest {
                service: Service::Cin7,
                operation: ops::PUT,
                detail: format!(
                    "{} orders in one PUT; at most {MAX_PUT_ORDERS}",
                    updates.len()
                ),
            });
        }
        let url = format!("{}/v1/SalesOrders", self.base);
        self.endpoint
            .call(
                ops::PUT,
                CallKind {
                    idempotency: Idempotency::NotIdempotent,
                    accept: &[],
                    batch: updates.len() > 1,
                },
                |http| {
                    http.put(&url)
                        .header(AUTHORIZATION, self.auth.clone())
                        .json(updates)
                },
                |answer: &Answer| {
                    let items: Vec<PutResultItem> = serde_json::from_slice(&answer.body)
                        .map_err(|e| BodyError::Json(format!("PUT result: {e}")))?;
                    match_put_results(updates, items).map_err(|e| BodyError::Shape(e.to_string()))
                },
            )
            .await
    }
}
