//! The pull's ports to the APIs: [`OrderSource`] (CIN7 orders) and [`OrderSink`] (GoSweetSpot
//! customer orders), their adapters over the two clients, and [`SharedSink`], which paces the
//! sink by the pull's share of GoSweetSpot's window.

use crate::cin7::Cin7Client;
use crate::cin7::model::OrderRow;
use crate::cin7::query::ListQuery;
use crate::gss::GssClient;
use crate::gss::client::ops as gss_ops;
use crate::gss::model::{CustomerOrder, DeleteOutcome, PublishResult};
use crate::http::{ApiError, Service};
use crate::rate_limit::RateLimiter;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Reads CIN7 sales orders (the pull's view of the CIN7 client).
#[async_trait]
pub trait OrderSource: Send + Sync {
    /// One page of orders.
    async fn list_page(&self, query: &ListQuery) -> Result<Vec<OrderRow>, ApiError>;
    /// Whether the query's request URL is short enough to send (see
    /// [`crate::cin7::client::MAX_URL_CHARS`]).
    fn fits(&self, query: &ListQuery) -> bool;
}

/// Publishes and deletes GoSweetSpot customer orders (the pull's view of the GSS client).
#[async_trait]
pub trait OrderSink: Send + Sync {
    /// Upserts up to 50 orders.
    async fn publish(&self, orders: &[CustomerOrder]) -> Result<Vec<PublishResult>, ApiError>;
    /// Deletes up to 50 pending orders.
    async fn delete(
        &self,
        packing_slips: &[String],
    ) -> Result<BTreeMap<String, DeleteOutcome>, ApiError>;
}

#[async_trait]
impl OrderSource for Cin7Client {
    async fn list_page(&self, query: &ListQuery) -> Result<Vec<OrderRow>, ApiError> {
        Cin7Client::list_page(self, query).await
    }
    fn fits(&self, query: &ListQuery) -> bool {
        Cin7Client::url_fits(self, query)
    }
}

#[async_trait]
impl OrderSink for GssClient {
    async fn publish(&self, orders: &[CustomerOrder]) -> Result<Vec<PublishResult>, ApiError> {
        self.put_customer_orders(orders).await
    }
    async fn delete(
        &self,
        packing_slips: &[String],
    ) -> Result<BTreeMap<String, DeleteOutcome>, ApiError> {
        self.delete_customer_orders(packing_slips).await
    }
}

/// A sink that waits for a turn from `share` before each call: the pull's share of
/// GoSweetSpot's window ([`crate::rate_limit::pull_gss_share`]), so that the write-back, which
/// shares the same window, keeps pace during a large import.
pub struct SharedSink<'a> {
    pub sink: &'a dyn OrderSink,
    pub share: &'a dyn RateLimiter,
}

impl SharedSink<'_> {
    async fn turn(&self, operation: &'static str) -> Result<(), ApiError> {
        self.share.acquire().await.map_err(|e| ApiError::Limiter {
            service: Service::Gss,
            operation,
            detail: e.to_string(),
        })
    }
}

#[async_trait]
impl OrderSink for SharedSink<'_> {
    async fn publish(&self, orders: &[CustomerOrder]) -> Result<Vec<PublishResult>, ApiError> {
        self.turn(gss_ops::PUT_ORDERS).await?;
        self.sink.publish(orders).await
    }
    async fn delete(
        &self,
        packing_slips: &[String],
    ) -> Result<BTreeMap<String, DeleteOutcome>, ApiError> {
        self.turn(gss_ops::DELETE_ORDERS).await?;
        self.sink.delete(packing_slips).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::{Window, WindowLimiter};
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::time::Instant;

    /// Records when each call reached it.
    struct Clock(Instant, Mutex<Vec<Duration>>);

    #[async_trait]
    impl OrderSink for Clock {
        async fn publish(&self, _: &[CustomerOrder]) -> Result<Vec<PublishResult>, ApiError> {
            self.1
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.0.elapsed());
            Ok(Vec::new())
        }
        async fn delete(&self, _: &[String]) -> Result<BTreeMap<String, DeleteOutcome>, ApiError> {
            self.1
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.0.elapsed());
            Ok(BTreeMap::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_and_deletes_wait_for_the_pulls_share() {
        let sink = Clock(Instant::now(), Mutex::new(Vec::new()));
        let share = WindowLimiter::new(vec![Window::new(2, Duration::from_secs(1))]);
        let shared = SharedSink {
            sink: &sink,
            share: &share,
        };
        for _ in 0..3 {
            shared.publish(&[]).await.unwrap();
            shared.delete(&[]).await.unwrap();
        }
        let secs: Vec<u64> = sink
            .1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(secs, [0, 0, 1, 1, 2, 2]);
    }
}
