//! Secrets from environment variables (local mode): the reference is the variable's name, or
//! `NAME#json_key` for one key of a variable holding a JSON object.

use super::{SecretError, SecretSource, SecretString, resolve, split_reference};
use async_trait::async_trait;

/// Reads each reference as an environment variable name.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSecrets;

#[async_trait]
impl SecretSource for EnvSecrets {
    async fn get(&self, reference: &str) -> Result<SecretString, SecretError> {
        match std::env::var(split_reference(reference).0) {
            Ok(v) if v.is_empty() => Err(SecretError::Empty {
                reference: reference.to_string(),
            }),
            Ok(v) => resolve(reference, &SecretString::from(v)),
            Err(std::env::VarError::NotPresent) => Err(SecretError::NotFound {
                reference: reference.to_string(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::Unavailable {
                reference: reference.to_string(),
                detail: "the variable is not valid UTF-8".into(),
            }),
        }
    }
}
