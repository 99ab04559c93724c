//! The order pull: CIN7 sales orders that pass the import gates are published to GoSweetSpot
//! as customer orders and kept in step.
//!
//! - [`gates`]: the import gates and their reason codes (pure).
//! - [`address`]: a CIN7 delivery address in GoSweetSpot's fields, country-aware (pure).
//! - [`mapping`]: CIN7 order → GoSweetSpot customer order, field limits, content hash (pure).
//! - [`decide`]: publish, update, delete, skip or leave, per order (pure).
//! - [`paging`]: where a pull reads from and how it pages (pure).
//! - [`ports`]: CIN7 orders in, GoSweetSpot customer orders out, and their adapters.
//! - [`run`]: the use-case: lease, cursor, paging, records, then the reconcile.
//! - `batches`: the publishes and deletes sent 50 at a time, and their outcomes recorded.
//! - [`reconcile`]: the backstop for lost webhooks, the last step of every pull.
//! - [`handler`]: the `order-pull` function's event handling.

pub mod address;
mod batches;
pub mod decide;
pub mod gates;
pub mod handler;
pub mod mapping;
pub mod paging;
pub mod ports;
pub mod reconcile;
pub mod run;

pub use ports::{OrderSink, OrderSource, SharedSink};
pub use run::{PullDeps, PullError, PullOptions, PullOutcome, PullSummary, Slice, run_pull};
