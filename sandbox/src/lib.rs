//! Sandbox servers for CIN7 Omni and GoSweetSpot on 127.0.0.1 and an ephemeral port, faithful
//! to `../shared/reference/` where it is confirmed. Both record every request and can inject
//! faults on demand (see [`harness`]). Used by the tests and by the local demo.

pub mod account_time;
pub mod cin7;
pub mod gss;
pub mod harness;
pub mod where_clause;

pub use account_time::AccountTime;
pub use axum::http::Method;
pub use cin7::{Applied, Cin7Sandbox, Permissions};
pub use gss::{Delivery, GssSandbox, Ticket, WebhookTarget};
pub use harness::{FaultKind, Harness, Matcher, Record};
