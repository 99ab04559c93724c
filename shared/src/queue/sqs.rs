//! The SQS adapter of the queue ports: [`SqsQueue`] sends jobs with `SendMessageBatch` and
//! reads (for the operator's dead-letter queue, and tests) with `ReceiveMessage`.
//!
//! Every message carries its integration as the string message attribute `integration_id`.

use super::{JobQueue, JobSource, MAX_SEND_BATCH, Outgoing, QueueError, Received};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use std::time::Duration;

/// The message attribute that names a message's integration.
pub const INTEGRATION_ID_ATTRIBUTE: &str = "integration_id";

/// The most messages one `ReceiveMessage` returns.
const MAX_RECEIVE_BATCH: usize = 10;

/// The longest visibility timeout SQS accepts (12 hours), in seconds.
const MAX_VISIBILITY_S: u64 = 43_200;

/// How many per-message failures a [`QueueError::Rejected`] detail names.
const DETAIL_FAILURES: usize = 5;

/// One SQS queue, addressed by its URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    wait: Duration,
}

impl SqsQueue {
    /// The IAM action [`JobQueue::send`] calls: it sends with `SendMessageBatch`, which IAM
    /// authorises as `sqs:SendMessage` (checked against an SQS endpoint by the adapter's tests).
    pub const SEND_ACTION: &str = "sqs:SendMessage";

    /// The queue at `queue_url`. A receive waits up to one second for a first message (a short
    /// long poll, so an almost empty queue is not sampled as empty). Each message is sent with
    /// its integration as the `MessageGroupId`: on a standard queue that makes it an SQS fair
    /// queue, where one integration's burst of messages does not hold back the others' (AWS,
    /// 2025). moto accepts and returns the group but does not reorder by it; the pull's slices
    /// and the write-back's concurrent groups keep the fleet fair without it.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            wait: Duration::from_secs(1),
        }
    }

    /// The same queue, with receives waiting up to `wait` (at most 20 s) for a first message.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

fn unavailable<E, R>(e: &SdkError<E, R>) -> QueueError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError::Unavailable(DisplayErrorContext(e).to_string())
}

fn build_error(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(format!("request could not be built: {e}"))
}

/// Whole seconds, rounded up, within what SQS accepts.
fn seconds(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    // At most MAX_VISIBILITY_S, which fits an i32.
    i32::try_from(s.min(MAX_VISIBILITY_S)).unwrap_or(i32::MAX)
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        let mut failures: Vec<String> = Vec::new();
        let mut failed = 0usize;
        for (chunk_no, chunk) in messages.chunks(MAX_SEND_BATCH).enumerate() {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, m) in chunk.iter().enumerate() {
                let attribute = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&m.integration_id)
                    .build()
                    .map_err(build_error)?;
                // The message's index in `messages`: unique within the batch, and it names the
                // message in an error.
                let id = chunk_no * MAX_SEND_BATCH + i;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(id.to_string())
                    .message_body(&m.body)
                    .message_attributes(INTEGRATION_ID_ATTRIBUTE, attribute)
                    .set_delay_seconds(
                        (!m.delay.is_zero()).then(|| seconds(m.delay.min(super::MAX_DELAY))),
                    )
                    .set_message_group_id(
                        (!m.integration_id.is_empty()).then(|| m.integration_id.clone()),
                    )
                    .build()
                    .map_err(build_error)?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            failed += out.failed().len();
            for f in out.failed() {
                if failures.len() < DETAIL_FAILURES {
                    let message = f.message().unwrap_or_default();
                    failures.push(format!("message {}: {} {message}", f.id(), f.code()));
                }
            }
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(QueueError::Rejected {
                sent: messages.len(),
                failed,
                detail: failures.join("; "),
            })
        }
    }
}

#[async_trait]
impl JobSource for SqsQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        let mut received = Vec::new();
        let mut first = true;
        while received.len() < max {
            let want = (max - received.len()).min(MAX_RECEIVE_BATCH);
            // Only the first call waits: a later one follows a full batch.
            let wait = if first { seconds(self.wait) } else { 0 };
            first = false;
            let out = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                // `want` is at most 10.
                .max_number_of_messages(i32::try_from(want).unwrap_or(10))
                .visibility_timeout(seconds(visibility))
                .wait_time_seconds(wait)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            let messages = out.messages();
            let got = messages.len();
            for m in messages {
                let integration_id = m
                    .message_attributes()
                    .and_then(|a| a.get(INTEGRATION_ID_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default()
                    .to_string();
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(1);
                received.push(Received {
                    message_id: m.message_id().unwrap_or_default().to_string(),
                    receipt: m.receipt_handle().unwrap_or_default().to_string(),
                    integration_id,
                    body: m.body().unwrap_or_default().to_string(),
                    receive_count,
                });
            }
            if got < want {
                break;
            }
        }
        Ok(received)
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

/// Creates a standard queue (or finds it, when it exists with the same attributes) and
/// returns its URL. With `dlq` = `(arn, max_receive_count)`, a message received that many
/// times without being acknowledged moves to the queue `arn`. For tests and local emulators.
pub async fn create_queue(
    client: &Client,
    name: &str,
    dlq: Option<(&str, u32)>,
) -> Result<String, QueueError> {
    let mut req = client.create_queue().queue_name(name);
    if let Some((arn, max_receive_count)) = dlq {
        let policy = serde_json::json!({
            "deadLetterTargetArn": arn,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        req = req.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let out = req.send().await.map_err(|e| unavailable(&e))?;
    out.queue_url()
        .map(str::to_string)
        .ok_or_else(|| QueueError::Unavailable(format!("queue {name} was created without a URL")))
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(client: &Client, url: &str) -> Result<String, QueueError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| unavailable(&e))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Unavailable(format!("queue {url} has no ARN")))
}

/// Deletes the queue at `url`; a queue that does not exist is already deleted.
pub async fn delete_queue(client: &Client, url: &str) -> Result<(), QueueError> {
    match client.delete_queue().queue_url(url).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_queue_does_not_exist()) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_clamp() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_secs(30)), 30);
        assert_eq!(seconds(Duration::from_millis(30_001)), 31);
        assert_eq!(seconds(Duration::from_secs(1_000_000)), 43_200);
    }
}
