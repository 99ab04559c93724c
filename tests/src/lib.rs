//! Helpers the integration tests share: clients wired to the sandboxes, and order fixtures.
#![recursion_limit = "256"]

use chrono::{DateTime, Utc};
use sandbox::{Cin7Sandbox, GssSandbox};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::cin7::{Cin7Client, Cin7Config};
use shared::gss::{GssClient, GssConfig};
use shared::http::RetryPolicy;
use shared::rate_limit::{RateLimiter, Window, WindowLimiter};
use std::sync::Arc;
use std::time::Duration;

pub const CIN7_USER: &str = "sandbox-user";
pub const CIN7_KEY: &str = "cin7-key-7f3a9c";
pub const GSS_SITE: &str = "4180";
pub const GSS_KEY: &str = "gss-key-51b2e8";

/// A retry policy fast enough for tests.
pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(5),
    }
}

/// A limiter that never waits (for tests about something else).
pub fn unlimited() -> Arc<dyn RateLimiter> {
    Arc::new(WindowLimiter::new(Vec::new()))
}

/// CIN7's limits compressed in time: 3 per `second` and 60 per 60 × `second`.
pub fn scaled_cin7_windows(second: Duration) -> Vec<Window> {
    vec![Window::new(3, second), Window::new(60, second * 60)]
}

/// A CIN7 client for a sandbox.
pub fn cin7_client(
    sandbox: &Cin7Sandbox,
    key: &str,
    limiter: Arc<dyn RateLimiter>,
    retry: RetryPolicy,
) -> Cin7Client {
    Cin7Client::new(Cin7Config {
        base_url: sandbox.base_url(),
        username: CIN7_USER.into(),
        api_key: SecretString::from(key.to_string()),
        timeout: Duration::from_secs(5),
        retry,
        limiter,
    })
    .expect("client builds")
}

/// A GoSweetSpot client for a sandbox.
pub fn gss_client(
    sandbox: &GssSandbox,
    key: &str,
    limiter: Arc<dyn RateLimiter>,
    retry: RetryPolicy,
) -> GssClient {
    GssClient::new(GssConfig {
        base_url: sandbox.base_url(),
        site_id: GSS_SITE.into(),
        access_key: SecretString::from(key.to_string()),
        support_email: "dev@example.co.nz".into(),
        timeout: Duration::from_secs(5),
        retry,
        limiter,
    })
    .expect("client builds")
}

/// A realistic approved, undispatched NZ sales order with one FIFO line.
pub fn order(id: i64, reference: &str, modified: DateTime<Utc>) -> Value {
    json!({
        "id": id,
        "createdDate": "2024-05-01T22:14:03Z",
        "modifiedDate": modified.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "isApproved": true,
        "status": "Approved",
        "isVoid": false,
        "reference": reference,
        "stage": "New",
        "branchId": 3,
        "firstName": "Aroha", "lastName": "Smith", "company": "",
        "email": "aroha@example.co.nz", "phone": "021 555 0101", "mobile": "",
        "deliveryFirstName": "Aroha", "deliveryLastName": "Smith", "deliveryCompany": "",
        "deliveryAddress1": "12 Queen Street", "deliveryAddress2": "Unit 3",
        "deliveryCity": "Auckland", "deliveryState": "Auckland Central",
        "deliveryPostalCode": "1010", "deliveryCountry": "New Zealand",
        "deliveryInstructions": "Leave at reception",
        "internalComments": "Shopify order",
        "trackingCode": null, "logisticsCarrier": null,
        "freightTotal": 0, "currencyCode": "NZD", "taxStatus": "Incl", "taxRate": 15,
        "dispatchedDate": null,
        "customFields": {},
        "lineItems": [{
            "id": id * 10, "code": "TEE-BLK-M", "name": "Black Tee M", "qty": 2,
            "unitPrice": 29.95, "stockControl": "FIFO", "sizes": [], "qtyShipped": 0
        }]
    })
}
