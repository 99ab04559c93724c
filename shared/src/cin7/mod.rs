//! CIN7 Omni (API v1): sales order models, query building and the client.

pub mod client;
pub mod model;
pub mod query;

pub use client::{Cin7Client, Cin7Config};
