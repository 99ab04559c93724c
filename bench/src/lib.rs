//! What the cin7-gss benchmarks share: an in-memory store table, the lower bound of a call
//! schedule under sliding-window limits, the call budget of `../shared/product.md`, the
//! in-process end-to-end flow (pull → GoSweetSpot → ticketed → webhook → write-back) against
//! the sandboxes, a signed 50-shipment webhook delivery for latency measurements, and the fleet
//! simulation (many merchants in compressed time through the pull schedule).
//!
//! The `runner` bench (`benches/runner.rs`) and the `core` bench (`benches/core.rs`) use it;
//! `make bench` runs both, in the bench profile. See `bench/README.md` for the method.

pub mod bound;
pub mod cost;
pub mod counting;
pub mod fleet;
pub mod flow;
pub mod mem_table;
pub mod stats;
pub mod webhook_fixture;

/// A write-back queue that accepts every message at once and keeps it (the queue's own cost
/// is excluded from the measurements).
#[derive(Debug, Default)]
pub struct VecQueue {
    sent: std::sync::Mutex<Vec<shared::queue::Outgoing>>,
}

impl VecQueue {
    /// Takes every message sent so far.
    pub fn take(&self) -> Vec<shared::queue::Outgoing> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes the oldest `max` messages (or all, when fewer wait).
    pub fn take_up_to(&self, max: usize) -> Vec<shared::queue::Outgoing> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let n = max.min(sent.len());
        sent.drain(..n).collect()
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl shared::queue::JobQueue for VecQueue {
    async fn send(
        &self,
        messages: &[shared::queue::Outgoing],
    ) -> Result<(), shared::queue::QueueError> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(messages);
        Ok(())
    }
}

pub use integration_tests::encode_signature;
