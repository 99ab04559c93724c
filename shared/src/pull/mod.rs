//! The order pull: CIN7 sales orders that pass the import gates are published to GoSweetSpot
//! as customer orders and kept in step.
//!
//! - [`gates`]: the import gates and their reason codes (pure).
//! - [`address`]: a CIN7 delivery address in GoSweetSpot's fields, country-aware (pure).
//! - [`mapping`]: CIN7 order → GoSweetSpot customer order, field limits, content hash (pure).
//! - [`decide`]: publish, update, delete, skip or leave, per order (pure).
//! - [`run`]: the use-case: lease, cursor, paging, batches, records.
//! - [`handler`]: the `order-pull` function's event handling.

pub mod address;
pub mod decide;
pub mod gates;
pub mod handler;
pub mod mapping;
pub mod run;

pub use run::{
    OrderSink, OrderSource, PullDeps, PullError, PullOptions, PullOutcome, PullSummary, SharedSink,
    run_pull,
};
