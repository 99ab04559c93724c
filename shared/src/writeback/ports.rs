//! The write-back's ports to the APIs — [`ShipmentSource`] (GoSweetSpot shipments),
//! [`OrderUpdater`] (CIN7 orders read and updated), [`ShopifyTrigger`] (CIN7's Shopify link) —
//! and their adapters.

use crate::cin7::Cin7Client;
use crate::cin7::model::{OrderRow, SALES_ORDER_FIELDS};
use crate::cin7::update::{PutOutcome, SalesOrderUpdate};
use crate::gss::GssClient;
use crate::gss::model::Shipment;
use crate::http::ApiError;
use crate::settings::shopify_link_id;
use async_trait::async_trait;
use std::time::Duration;

/// Reads shipments from GoSweetSpot.
#[async_trait]
pub trait ShipmentSource: Send + Sync {
    async fn shipments(&self, connotes: &[String]) -> Result<Vec<Shipment>, ApiError>;
}

/// Reads and updates CIN7 orders.
#[async_trait]
pub trait OrderUpdater: Send + Sync {
    /// The orders with these ids (one list call).
    async fn orders(&self, ids: &[i64]) -> Result<Vec<OrderRow>, ApiError>;
    /// One PUT of partial orders.
    async fn update(&self, updates: &[SalesOrderUpdate]) -> Result<Vec<PutOutcome>, ApiError>;
}

/// Calls CIN7's Shopify "update order status" link.
#[async_trait]
pub trait ShopifyTrigger: Send + Sync {
    async fn trigger(&self, url: &str) -> Result<(), ShopifyError>;
}

/// Why the Shopify link was not called, or refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopifyError {
    /// The trigger's HTTP client could not be built.
    #[error("Shopify trigger not set up: {0}")]
    Setup(String),
    /// The link could not be reached (connection, timeout).
    #[error("Shopify trigger not reached: {0}")]
    Unreached(String),
    /// The link answered with a status other than 2xx.
    #[error("Shopify trigger answered HTTP {0}")]
    Status(u16),
}

#[async_trait]
impl ShipmentSource for GssClient {
    async fn shipments(&self, connotes: &[String]) -> Result<Vec<Shipment>, ApiError> {
        self.get_shipments(connotes).await
    }
}

#[async_trait]
impl OrderUpdater for Cin7Client {
    async fn orders(&self, ids: &[i64]) -> Result<Vec<OrderRow>, ApiError> {
        self.orders_by_id(ids, SALES_ORDER_FIELDS).await
    }
    async fn update(&self, updates: &[SalesOrderUpdate]) -> Result<Vec<PutOutcome>, ApiError> {
        self.update_orders(updates).await
    }
}

/// A Shopify trigger over HTTP: a GET of the link, any 2xx is success.
#[derive(Debug, Clone)]
pub struct HttpShopifyTrigger {
    http: reqwest::Client,
}

impl HttpShopifyTrigger {
    /// A trigger with its own HTTP client (rustls, timeout).
    pub fn new(timeout: Duration) -> Result<Self, ShopifyError> {
        reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map(|http| Self { http })
            .map_err(|e| ShopifyError::Setup(e.to_string()))
    }
}

#[async_trait]
impl ShopifyTrigger for HttpShopifyTrigger {
    async fn trigger(&self, url: &str) -> Result<(), ShopifyError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ShopifyError::Unreached(e.without_url().to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ShopifyError::Status(response.status().as_u16()))
        }
    }
}

/// The default Shopify trigger link template (`{id}`: the `idCustomerAppsLink`; `{order_id}`:
/// the CIN7 sales order id). CIN7 does not document this endpoint: deployments set
/// `SHOPIFY_TRIGGER_URL_TEMPLATE` to the link their CIN7 Shopify module shows.
pub const DEFAULT_SHOPIFY_TEMPLATE: &str = "https://go.cin7.com/Cloud/Integrations/Shopify/UpdateOrderStatus.aspx?idCustomerAppsLink={id}&OrderId={order_id}";

/// The Shopify link for one order, from the integration's setting and the template.
pub fn shopify_url(setting: &str, template: &str, cin7_id: i64) -> Option<String> {
    let id = shopify_link_id(setting)?;
    Some(
        template
            .replace("{id}", &id)
            .replace("{order_id}", &cin7_id.to_string()),
    )
}
