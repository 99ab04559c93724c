//! The pull queue's message: which integration to pull, and which link of its chain this is.

use serde::{Deserialize, Serialize};

/// Why a pull message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullKind {
    /// The next poll, at the delay the policy picked.
    Next,
    /// The rest of a pull that used up its slice, sent with no delay.
    Continue,
    /// The first message of an enabled or created integration, or a sweeper's re-seed.
    Seed,
    /// The operator's or merchant's "sync now".
    SyncNow,
}

/// One pull message. Only the message carrying the integration's current `token` pulls: a
/// message of a chain that was replaced (by a sync-now, a re-seed, or a duplicate delivery) is
/// dropped, so an integration always has one chain of messages, however they are lost or
/// repeated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullMessage {
    pub integration_id: String,
    pub token: String,
    pub kind: PullKind,
}

/// Why a message body is not a pull message.
#[derive(Debug, thiserror::Error)]
#[error("not a pull message: {0}")]
pub struct MalformedMessage(String);

impl PullMessage {
    /// A message for a new link of the chain.
    pub fn new(integration_id: &str, kind: PullKind) -> Self {
        Self {
            integration_id: integration_id.to_string(),
            token: uuid::Uuid::new_v4().simple().to_string(),
            kind,
        }
    }

    /// Reads a message body.
    pub fn parse(body: &str) -> Result<Self, MalformedMessage> {
        let m: Self = serde_json::from_str(body).map_err(|e| MalformedMessage(e.to_string()))?;
        if m.integration_id.trim().is_empty() || m.token.trim().is_empty() {
            return Err(MalformedMessage(
                "integration_id and token must not be empty".into(),
            ));
        }
        Ok(m)
    }

    /// The message body.
    pub fn body(&self) -> String {
        serde_json::json!({
            "integration_id": self.integration_id,
            "token": self.token,
            "kind": self.kind,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_one() {
        let m = PullMessage::new("acme", PullKind::Seed);
        assert_eq!(PullMessage::parse(&m.body()).unwrap(), m);
        assert_ne!(PullMessage::new("acme", PullKind::Seed).token, m.token);
        for bad in [
            "",
            "{}",
            "[1]",
            r#"{"integration_id":"acme"}"#,
            r#"{"integration_id":"","token":"t","kind":"next"}"#,
            r#"{"integration_id":"acme","token":"t","kind":"later"}"#,
            r#"{"integration_id":"acme","token":"t","kind":"next","x":1}"#,
        ] {
            assert!(PullMessage::parse(bad).is_err(), "{bad}");
        }
    }
}
