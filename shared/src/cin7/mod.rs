//! CIN7 Omni (API v1): sales order models, query building, the partial updates the
//! write-back sends, and the client.

pub mod client;
pub mod model;
pub mod query;
pub mod update;

pub use client::{Cin7Client, Cin7Config};
