//! The GoSweetSpot client: header auth, paced under the requested ceiling, retried, counted.

use super::model::{
    CustomerOrder, CustomerOrderState, DeleteOutcome, MAX_ORDERS_PER_CALL, Paged, PublishResult,
    Shipment, parse,
};
use crate::http::{
    Answer, ApiError, CallCounter, CallKind, Endpoint, EndpointConfig, RetryPolicy, Service,
};
use crate::rate_limit::RateLimiter;
use crate::tolerant::BodyError;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Operation names, as counted by [`CallCounter`].
pub mod ops {
    pub const PUT_ORDERS: &str = "PUT /api/customerorders";
    pub const GET_ORDERS: &str = "GET /api/customerorders";
    pub const DELETE_ORDERS: &str = "DELETE /api/customerorders";
    pub const GET_SHIPMENTS: &str = "GET /api/shipments";
}

/// The largest `pagesize` of `GET /api/shipments`.
pub const MAX_SHIPMENTS_PAGE: usize = 250;

/// What a GoSweetSpot client needs.
pub struct GssConfig {
    /// e.g. `https://api.gosweetspot.com`.
    pub base_url: String,
    pub site_id: String,
    pub access_key: SecretString,
    pub support_email: String,
    /// The HTTP client, shared by every client of this API in the process
    /// ([`crate::http::client`]).
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
    pub limiter: Arc<dyn RateLimiter>,
}

/// A client for one GoSweetSpot site.
#[derive(Debug)]
pub struct GssClient {
    endpoint: Endpoint,
    base: String,
    headers: HeaderMap,
}

impl GssClient {
    /// Builds the client once; the access key is held only in a sensitive header value.
    pub fn new(config: GssConfig) -> Result<Self, ApiError> {
        let invalid = |detail: String| ApiError::InvalidRequest {
            service: Service::Gss,
            operation: "client setup",
            detail,
        };
        let url = url::Url::parse(&config.base_url)
            .map_err(|e| invalid(format!("gss.base_url is not a URL: {e}")))?;
        let header = |name: &'static str, value: &str, sensitive: bool| {
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                invalid(format!("{name} contains characters a header cannot carry"))
            })?;
            v.set_sensitive(sensitive);
            Ok::<_, ApiError>((HeaderName::from_static(name), v))
        };
        let mut headers = HeaderMap::new();
        for (name, value) in [
            header("access_key", config.access_key.expose_secret(), true)?,
            header("site_id", &config.site_id, false)?,
            header("supportemail", &config.support_email, false)?,
        ] {
            headers.insert(name, value);
        }
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let endpoint = Endpoint::new(EndpointConfig {
            service: Service::Gss,
            http: config.http,
            limiter: config.limiter,
            retry: config.retry,
            auth_hint: "check gss.site_id and the access key secret it refers to",
            permission_hint: "the GoSweetSpot access key cannot act for this site: check gss.site_id",
        });
        Ok(Self {
            endpoint,
            base: url.as_str().trim_end_matches('/').to_string(),
            headers,
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

    fn too_many(operation: &'static str, n: usize, max: usize) -> ApiError {
        ApiError::InvalidRequest {
            service: Service::Gss,
            operation,
            detail: format!("{n} items in one call; at most {max}"),
        }
    }

    /// `PUT /api/customerorders`: creates or updates pending orders (upsert on
    /// `packingslipno`); ticketed ones come back `result: false`, "already processed".
    pub async fn put_customer_orders(
        &self,
        orders: &[CustomerOrder],
    ) -> Result<Vec<PublishResult>, ApiError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        if orders.len() > MAX_ORDERS_PER_CALL {
            return Err(Self::too_many(
                ops::PUT_ORDERS,
                orders.len(),
                MAX_ORDERS_PER_CALL,
            ));
        }
        let url = format!("{}/api/customerorders", self.base);
        self.endpoint
            .call(
                ops::PUT_ORDERS,
                CallKind {
                    batch: orders.len() > 1,
                    ..CallKind::IDEMPOTENT
                },
                |http| http.put(&url).headers(self.headers.clone()).json(orders),
                |answer: &Answer| {
                    let results: Vec<PublishResult> = parse(&answer.body)?;
                    if results.len() != orders.len() {
                        return Err(BodyError::Shape(format!(
                            "{} results for {} orders",
                            results.len(),
                            orders.len()
                        )));
                    }
                    Ok(results)
                },
            )
            .await
    }

    /// `GET /api/customerorders?packingslipno=…`, every page.
    pub async fn get_customer_orders(
        &self,
        packing_slips: &[String],
    ) -> Result<Vec<CustomerOrderState>, ApiError> {
        let url = format!("{}/api/customerorders", self.base);
        let list = packing_slips.join(",");
        let mut all = Vec::new();
        let mut page = 1i64;
        loop {
            let params = [("packingslipno", list.clone()), ("page", page.to_string())];
            let answer: Paged<CustomerOrderState> = self
                .endpoint
                .call(
                    ops::GET_ORDERS,
                    CallKind::IDEMPOTENT,
                    |http| http.get(&url).headers(self.headers.clone()).query(&params),
                    |answer: &Answer| parse(&answer.body),
                )
                .await?;
            all.extend(answer.results);
            if page >= answer.pages.unwrap_or(1) {
                return Ok(all);
            }
            page += 1;
        }
    }

    /// `DELETE /api/customerorders?packingslipno=…` (at most 50): each packing slip's outcome.
    pub async fn delete_customer_orders(
        &self,
        packing_slips: &[String],
    ) -> Result<BTreeMap<String, DeleteOutcome>, ApiError> {
        if packing_slips.is_empty() {
            return Ok(BTreeMap::new());
        }
        if packing_slips.len() > MAX_ORDERS_PER_CALL {
            return Err(Self::too_many(
                ops::DELETE_ORDERS,
                packing_slips.len(),
                MAX_ORDERS_PER_CALL,
            ));
        }
        let url = format!("{}/api/customerorders", self.base);
        let params = [("packingslipno", packing_slips.join(","))];
        self.endpoint
            .call(
                ops::DELETE_ORDERS,
                CallKind::IDEMPOTENT,
                |http| {
                    http.delete(&url)
                        .headers(self.headers.clone())
                        .query(&params)
                },
                |answer: &Answer| {
                    // Keys are packing slips: matched exactly, never normalised.
                    let map: BTreeMap<String, serde_json::Value> =
                        serde_json::from_slice(&answer.body)
                            .map_err(|e| BodyError::Json(format!("delete result: {e}")))?;
                    Ok(map
                        .into_iter()
                        .map(|(slip, msg)| {
                            let text = msg
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| msg.to_string());
                            (slip, DeleteOutcome::from_message(&text))
                        })
                        .collect())
                },
            )
            .await
    }

    /// `GET /api/shipments?shipments=…`: the named consignments, every page.
    pub async fn get_shipments(&self, connotes: &[String]) -> Result<Vec<Shipment>, ApiError> {
        if connotes.is_empty() {
            return Ok(Vec::new());
        }
        self.shipment_pages(&[("shipments", connotes.join(","))])
            .await
    }

    /// `GET /api/shipments?lastupdateminutc=…&lastupdatemaxutc=…`: every shipment GoSweetSpot
    /// changed in the window, every page of 250 (an idle window costs one call). The times are
    /// sent in whole seconds, the window widened to them (`from` down, `to` up), as UTC
    /// wall-clock text without a zone designator: the parameters are named UTC, and an ASP.NET
    /// server would turn a `Z` into its own local time (inferred; GoSweetSpot shows no
    /// example).
    pub async fn changed_shipments(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Shipment>, ApiError> {
        use chrono::SubsecRound;
        let utc = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let up = if to.timestamp_subsec_nanos() > 0 {
            to.trunc_subsecs(0) + chrono::Duration::seconds(1)
        } else {
            to
        };
        self.shipment_pages(&[
            ("lastupdateminutc", utc(from.trunc_subsecs(0))),
            ("lastupdatemaxutc", utc(up)),
        ])
        .await
    }

    async fn shipment_pages(
        &self,
        filter: &[(&'static str, String)],
    ) -> Result<Vec<Shipment>, ApiError> {
        let url = format!("{}/api/shipments", self.base);
        let mut all = Vec::new();
        let mut page = 1i64;
        loop {
            let mut params: Vec<(&str, String)> = filter.to_vec();
            params.push(("page", page.to_string()));
            params.push(("pagesize", MAX_SHIPMENTS_PAGE.to_string()));
            let answer: Paged<Shipment> = self
                .endpoint
                .call(
                    ops::GET_SHIPMENTS,
                    CallKind::IDEMPOTENT,
                    |http| http.get(&url).headers(self.headers.clone()).query(&params),
                    |answer: &Answer| parse(&answer.body),
                )
                .await?;
            all.extend(answer.results);
            if page >= answer.pages.unwrap_or(1) {
                return Ok(all);
            }
            page += 1;
        }
    }
}
