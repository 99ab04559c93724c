//! The write-back: consignments created in GoSweetSpot written back to CIN7 — dispatched,
//! ticket number, carrier, tracking URL, freight (cost or marked up) — and the Shopify trigger.
//!
//! - [`plan`]: what to PUT for an order (pure).
//! - [`run`]: one integration's batch: claims, one shipment read, one order read, one PUT,
//!   read-back after a failed PUT, records.
//! - [`handler`]: the `write-back` function's batch handling with partial failures.

pub mod handler;
pub mod plan;
pub mod run;
