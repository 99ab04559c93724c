//! The secrets port. Settings hold secret *references* (a Secrets Manager name or ARN in AWS
//! mode, an environment variable name in local mode), never secret values; a [`SecretSource`]
//! resolves a reference when a client is built. Values are [`SecretString`]s, whose `Debug`
//! is redacted, and no error message carries a value.

use async_trait::async_trait;
pub use secrecy::{ExposeSecret, SecretString};

#[cfg(feature = "aws")]
pub mod aws;
pub mod env;

/// Why a secret could not be had. Messages name the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference:?} not found")]
    NotFound { reference: String },
    #[error("secret {reference:?} is empty")]
    Empty { reference: String },
    #[error("secret {reference:?} could not be read: {detail}")]
    Unavailable { reference: String, detail: String },
}

impl SecretError {
    /// True when a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SecretError::Unavailable { .. })
    }
}

/// Resolves secret references to values.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The value a reference names.
    async fn get(&self, reference: &str) -> Result<SecretString, SecretError>;
}
