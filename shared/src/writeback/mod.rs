//! The write-back: consignments created in GoSweetSpot written back to CIN7 — dispatched,
//! ticket number, carrier, tracking URL, freight (cost or marked up) — and the Shopify trigger.
//!
//! - [`plan`]: what to PUT for an order (pure).
//! - [`ports`]: GoSweetSpot shipments, CIN7 orders and the Shopify link, and their adapters.
//! - [`run`]: one integration's batch: each consignment's claims, then its actions —
//!   [`cin7`] (one shipment read, one order read, one PUT, read-back after a failed PUT,
//!   records) and [`shopify`] (the trigger).
//! - [`handler`]: the `write-back` function's batch handling with partial failures.

pub mod cin7;
pub mod handler;
pub mod plan;
pub mod ports;
pub mod run;
pub mod shopify;

pub use ports::{
    DEFAULT_SHOPIFY_TEMPLATE, HttpShopifyTrigger, OrderUpdater, ShipmentSource, ShopifyError,
    ShopifyTrigger, shopify_url,
};
