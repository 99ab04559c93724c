//! The cin7-gss core shared by the Lambda functions, the operator CLI and the tests.
//!
//! The flows, each in one place, each stating at its signature the ports it works through:
//!
//! - [`pull`]: CIN7 orders into GoSweetSpot, ending with the reconcile (the backstop for lost
//!   webhooks).
//! - [`webhook`]: GoSweetSpot's consignment deliveries, served by one router.
//! - [`writeback`]: consignments written back to CIN7, and the Shopify trigger.
//!
//! What they share:
//!
//! - [`records`]: the order record and each transition of it (pure).
//! - [`sightings`]: consignments GoSweetSpot reports (webhook or reconcile), judged alone and
//!   queued for write-back once.
//! - [`store`]: the store's ports by aggregate, `Store` over any `Table`, and the adapters.
//! - [`cin7`] and [`gss`]: the two APIs' models (read tolerantly) and their clients.
//! - [`http`]: the clients' calls: pacing, counting, typed errors; [`http::classify`] and the
//!   backoff schedule decide retries.
//! - [`rate_limit`]: the sliding-window limiter behind the pacing.
//! - [`queue`], [`secrets`], [`clock`], [`metrics`]: the other ports and their adapters.
//! - [`app`]: the clients' cache and what every function's configuration shares.
//! - [`signature`]: webhook HMAC signing and constant-time verification.
//! - [`timestamp`]: a timestamp with the form it was written in (zone, precision).
//! - [`tolerant`]: serde helpers for loosely typed JSON.

pub mod app;
#[cfg(feature = "aws")]
pub mod aws_config;
pub mod cin7;
pub mod clock;
pub mod gss;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod pull;
pub mod queue;
pub mod rate_limit;
pub mod records;
pub mod schedule;
pub mod secrets;
pub mod settings;
pub mod sightings;
pub mod signature;
pub mod store;
pub mod timestamp;
pub mod tolerant;
pub mod webhook;
pub mod writeback;
