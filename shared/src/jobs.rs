//! The write-back job: what the webhook queues for each newly seen consignment, and the
//! write-back consumes. Carries everything the write-back needs that the webhook knows; the
//! carrier and marked-up charge are read from GoSweetSpot by the write-back.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One consignment to write back to CIN7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBackJob {
    pub integration_id: String,
    /// The consignment (ticket) number.
    pub connote: String,
    pub packing_slip: String,
    /// The CIN7 order the packing slip was published for.
    pub cin7_id: i64,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    /// GoSweetSpot's cost, excluding tax, as the webhook gave it.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub total_cost: Option<Decimal>,
    #[serde(default)]
    pub created_utc: Option<DateTime<Utc>>,
    #[serde(default)]
    pub manual_ticket: bool,
}

impl WriteBackJob {
    /// The JSON body queued.
    pub fn to_body(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Reads a queued body.
    pub fn from_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let job = WriteBackJob {
            integration_id: "acme".into(),
            connote: "SSPOT018667".into(),
            packing_slip: "#1050".into(),
            cin7_id: 1895719,
            reference: Some("#1050".into()),
            tracking_url: Some("https://gosweetspot.com/track/4180-SSPOT018667".into()),
            total_cost: Some(Decimal::new(407, 2)),
            created_utc: Some(Utc::now()),
            manual_ticket: false,
        };
        assert_eq!(
            WriteBackJob::from_body(&job.to_body().unwrap()).unwrap(),
            job
        );
        assert!(WriteBackJob::from_body("{\"connote\": 1}").is_err());
    }
}
