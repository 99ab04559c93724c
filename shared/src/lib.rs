//! The cin7-gss core shared by the Lambda functions, the operator CLI and the tests.
//!
//! - [`cin7`] and [`gss`]: the two APIs' models (read tolerantly) and their clients.
//! - [`http`]: pacing, retries, typed errors and call counting the clients share.
//! - [`rate_limit`]: the sliding-window limiter behind the pacing.
//! - [`reconcile`]: the backstop for lost webhooks, run at the end of every pull.
//! - [`sightings`]: consignments GoSweetSpot reports (webhook or reconcile), judged alone and
//!   queued for write-back once.
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
pub mod secrets;
pub mod settings;
pub mod sightings;
pub mod signature;
pub mod store;
pub mod timestamp;
pub mod tolerant;
pub mod webhook;
pub mod writeback;
