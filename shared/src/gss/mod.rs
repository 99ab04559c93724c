//! GoSweetSpot: customer order and shipment models and the client.

pub mod client;
pub mod model;

pub use client::{GssClient, GssConfig};
