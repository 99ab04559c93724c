//! Signed webhook deliveries, each of 50 new consignments for 50 orders published just before
//! it (an order's record holds its own consignments, as in production: one or two, not one
//! per delivery the bench makes), with the store, secrets and queue the in-process handler
//! needs.

use crate::VecQueue;
use chrono::Utc;
use integration_tests::{MapSecrets, sandbox_secrets};
use rust_decimal::Decimal;
use shared::gss::model::{Shipment, ShipmentItem};
use shared::records::{OrderRecord, OrderState};
use shared::settings::IntegrationSettings;
use shared::store::prelude::*;
use shared::store::{Store, Table};
use shared::webhook::{WebhookPorts, WebhookRequest, WebhookResponse};
use std::sync::Arc;

/// The integration the fixture's deliveries are for.
pub const INTEGRATION: &str = "acme";
/// Shipments per delivery (GoSweetSpot's most).
pub const SHIPMENTS: usize = 50;

/// The webhook's world: a store holding the integration and the orders of the deliveries
/// made so far.
pub struct WebhookFixture {
    pub store: Store,
    pub secrets: MapSecrets,
    pub queue: VecQueue,
    secret: String,
    next_connote: u64,
    next_order: usize,
}

/// One prepared delivery: the body and its signature query.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub query: Vec<(String, String)>,
}

/// Settings of an integration whose APIs are never called (the webhook does not call them).
pub fn settings() -> IntegrationSettings {
    IntegrationSettings::from_json(
        &serde_json::json!({
            "id": INTEGRATION,
            "name": "Bench",
            "cin7": {"api_username": "u", "api_key": "CIN7_KEY", "base_url": "http://127.0.0.1:9"},
            "gss": {"site_id": "4180", "access_key": "GSS_KEY", "support_email": "ops@example.nz",
                    "base_url": "http://127.0.0.1:9"},
            "webhook": {"secret": "WEBHOOK_SECRET"}
        })
        .to_string(),
    )
    .expect("valid settings")
}

/// The packing slip of the fixture's order `i`.
pub fn slip(i: usize) -> String {
    format!("WH-{i:06}")
}

impl WebhookFixture {
    /// The integration saved in `table`.
    pub async fn new(table: Arc<dyn Table>) -> Self {
        let store = Store::new(table, Arc::new(shared::clock::SystemClock));
        store
            .put_integration(&settings())
            .await
            .expect("integration saved");
        let secrets = sandbox_secrets();
        let secret = secrets
            .0
            .get("WEBHOOK_SECRET")
            .cloned()
            .expect("webhook secret");
        Self {
            store,
            secrets,
            queue: VecQueue::default(),
            secret,
            next_connote: 100_000,
            next_order: 0,
        }
    }

    /// Publishes 50 new orders (their records saved) and returns a signed delivery of one
    /// consignment for each.
    pub async fn delivery(&mut self) -> Delivery {
        let first = self.next_order;
        self.next_order += SHIPMENTS;
        for i in first..self.next_order {
            let mut record =
                OrderRecord::new(i as i64 + 1, OrderState::Published, "published", Utc::now());
            record.packing_slip = Some(slip(i));
            record.reference = Some(slip(i));
            self.store
                .save_order(INTEGRATION, &mut record)
                .await
                .expect("order record saved");
        }
        let shipments: Vec<Shipment> = (first..self.next_order)
            .map(|i| {
                self.next_connote += 1;
                let connote = format!("SSPOT{:07}", self.next_connote);
                Shipment {
                    tracking: Some(format!("https://gosweetspot.com/track/4180-{connote}")),
                    consignment_no: Some(connote),
                    packing_slip_no: Some(slip(i)),
                    total_cost: Some(Decimal::new(850, 2)),
                    created_utc: Some(Utc::now()),
                    manual_ticket: Some(false),
                    consignee: Some("AROHA SMITH".into()),
                    carrier: Some("Post Haste".into()),
                    cost_centre: Some("Online".into()),
                    items: vec![ShipmentItem {
                        charge_line_total: Some(Decimal::new(850, 2)),
                        charge_marked_up_line_total: None,
                    }],
                    ..Shipment::default()
                }
            })
            .collect();
        let body = serde_json::to_vec(&shipments).expect("shipments encode");
        let signature =
            shared::signature::sign(self.secret.as_bytes(), &body).expect("secret keys an HMAC");
        Delivery {
            body,
            query: shared::webhook::parse_query(&format!(
                "signature={}",
                crate::encode_signature(&signature)
            )),
        }
    }

    /// Hands a delivery to the in-process handler.
    pub async fn handle(&self, delivery: &Delivery) -> WebhookResponse {
        let deps = WebhookPorts {
            store: &self.store,
            secrets: &self.secrets,
            queue: &self.queue,
            clock: &shared::clock::SystemClock,
            metrics: &shared::metrics::LogMetrics,
        };
        shared::webhook::handle(
            deps,
            &WebhookRequest {
                method: "POST",
                integration_id: Some(INTEGRATION),
                query: &delivery.query,
                body: &delivery.body,
                oversized: false,
            },
        )
        .await
    }
}
