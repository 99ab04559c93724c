//! The pull schedule: each integration schedules its own next pull as a delayed message on the
//! pull queue, with a sweeper as the backstop.
//!
//! - [`policy`]: when the next pull is due — business hours, activity, the CIN7 budget (pure).
//! - [`message`]: the pull message and the token that keeps one chain per integration (pure).
//! - [`worker`]: a message pulls its integration for one slice and sends the next message.
//! - [`sweeper`]: re-seeds integrations whose pull is overdue; [`sweeper::seed`] starts a
//!   chain (an integration enabled or created, "sync now").

pub mod message;
pub mod policy;
pub mod sweeper;
pub mod worker;

pub use message::{PullKind, PullMessage};
pub use sweeper::{SweepConfig, SweepPorts, SweepSummary, seed, sweep, take_over};
pub use worker::{Handled, WorkerConfig, WorkerPorts, handle_batch, handle_message};
