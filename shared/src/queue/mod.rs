//! The write-back job queue port. Production: SQS (the Lambda event source consumes it; this
//! port sends, and reads the dead-letter queue for the operator). Local mode: an embedded
//! durable queue with visibility timeouts, redelivery and a dead-letter list.

use async_trait::async_trait;
use std::time::Duration;

#[cfg(feature = "local")]
pub mod embedded;
#[cfg(feature = "aws")]
pub mod sqs;

/// The most messages one SQS `SendMessageBatch` takes.
pub const MAX_SEND_BATCH: usize = 10;

/// A message to queue: the integration it belongs to (also sent as a message attribute) and
/// its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub integration_id: String,
    pub body: String,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The id the queue gave the message.
    pub message_id: String,
    /// What acknowledges (deletes) this delivery.
    pub receipt: String,
    pub integration_id: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

/// Why a queue call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("queue refused {failed} of {sent} messages: {detail}")]
    Rejected {
        sent: usize,
        failed: usize,
        detail: String,
    },
}

/// Sends jobs.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues every message (in batches of at most [`MAX_SEND_BATCH`]); an error means some
    /// may not have been queued, so the caller must not acknowledge their source.
    async fn send(&self, messages: &[Outgoing]) -> Result<(), QueueError>;
}

/// Reads and acknowledges jobs: the embedded queue's consumer side, and the dead-letter queue's
/// for the operator.
#[async_trait]
pub trait JobSource: Send + Sync {
    /// Up to `max` visible messages, hidden for `visibility` after this receive.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, QueueError>;
    /// Acknowledges (deletes) a received message.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;
}
