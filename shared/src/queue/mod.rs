//! The queue ports, for the write-back jobs and the pull messages. Production: SQS (the Lambda
//! event sources consume it; this port sends, with delays, and reads the dead-letter queues for
//! the operator). Local mode: an embedded durable queue with delays, visibility timeouts,
//! redelivery and a dead-letter list.

use async_trait::async_trait;
use std::time::Duration;

#[cfg(feature = "local")]
pub mod embedded;
#[cfg(feature = "aws")]
pub mod sqs;

/// The most messages one SQS `SendMessageBatch` takes.
pub const MAX_SEND_BATCH: usize = 10;

/// The longest delay SQS gives a message (15 minutes); a longer one is sent as this.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// A message to queue: the integration it belongs to (also sent as a message attribute), its
/// JSON body, and how long it stays invisible after it is sent (at most [`MAX_DELAY`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outgoing {
    pub integration_id: String,
    pub body: String,
    pub delay: Duration,
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

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub message_id: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

impl From<&Received> for QueuedJob {
    fn from(r: &Received) -> Self {
        Self {
            message_id: r.message_id.clone(),
            body: r.body.clone(),
            receive_count: r.receive_count,
        }
    }
}

/// The messages of an SQS event (`ApproximateReceiveCount` as the receive count).
#[cfg(feature = "aws")]
pub fn from_sqs(event: aws_lambda_events::sqs::SqsEvent) -> Vec<QueuedJob> {
    event
        .records
        .into_iter()
        .map(|r| QueuedJob {
            message_id: r.message_id.unwrap_or_default(),
            body: r.body.unwrap_or_default(),
            receive_count: r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
        })
        .collect()
}

/// The partial batch response naming the messages to redeliver.
#[cfg(feature = "aws")]
pub fn sqs_response(failed: Vec<String>) -> aws_lambda_events::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = aws_lambda_events::sqs::BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
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
