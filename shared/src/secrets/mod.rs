//! The secrets port. Settings hold secret *references* (a Secrets Manager name or ARN in AWS
//! mode, an environment variable name in local mode), never secret values; a [`SecretSource`]
//! resolves a reference when a client is built. Values are [`SecretString`]s, whose `Debug`
//! is redacted, and no error message carries a value.
//!
//! A reference `name#json_key` names one key of a secret holding a JSON object (the convention
//! of ECS's `valueFrom` and the Parameters utilities): `cin7-gss/acme-nz#cin7_api_key`, so one
//! secret may hold all of an integration's keys. Without `#` the whole value is the secret.

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
    /// A `name#json_key` reference whose secret is not a JSON object with that key as a
    /// non-empty string.
    #[error("secret {reference:?}: {problem}")]
    NoKey {
        reference: String,
        problem: &'static str,
    },
    /// A write that would make the secret larger than its store allows.
    #[error(
        "secret {reference:?} would hold {bytes} bytes, over the {limit} a secret may: put these keys in another secret"
    )]
    TooLarge {
        reference: String,
        bytes: usize,
        limit: usize,
    },
}

/// A reference split into the secret's name and, for `name#json_key`, the key.
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once('#') {
        Some((name, key)) => (name, Some(key)),
        None => (reference, None),
    }
}

/// The value `reference` names in a secret's whole value `whole`: the value itself, or the key
/// of a `name#json_key` reference read from it as a JSON object.
pub fn resolve(reference: &str, whole: &SecretString) -> Result<SecretString, SecretError> {
    let Some(key) = split_reference(reference).1 else {
        return Ok(whole.clone());
    };
    let no_key = |problem| SecretError::NoKey {
        reference: reference.to_string(),
        problem,
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(whole.expose_secret())
            .map_err(|_| no_key("the secret is not a JSON object"))?;
    match object.get(key) {
        Some(serde_json::Value::String(v)) if !v.is_empty() => Ok(SecretString::from(v.clone())),
        Some(serde_json::Value::String(_)) => Err(no_key("the key's value is empty")),
        Some(_) => Err(no_key("the key's value is not a string")),
        None => Err(no_key("the secret has no such key")),
    }
}

/// `whole` (a secret's current value, `None` when there is none yet) with the key of a
/// `name#json_key` reference set to `value`: what `secrets set` stores.
pub fn with_key(
    reference: &str,
    whole: Option<&SecretString>,
    value: &SecretString,
) -> Result<SecretString, SecretError> {
    let Some(key) = split_reference(reference).1 else {
        return Ok(value.clone());
    };
    let mut object: serde_json::Map<String, serde_json::Value> = match whole {
        Some(w) => serde_json::from_str(w.expose_secret()).map_err(|_| SecretError::NoKey {
            reference: reference.to_string(),
            problem: "the secret exists and is not a JSON object",
        })?,
        None => serde_json::Map::new(),
    };
    object.insert(
        key.to_string(),
        serde_json::Value::String(value.expose_secret().to_string()),
    );
    Ok(SecretString::from(
        serde_json::Value::Object(object).to_string(),
    ))
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

    /// Drops any cached value of `reference`, so the next [`get`](Self::get) reads it afresh
    /// (after an API refused it). Sources without a cache need not do anything.
    fn forget(&self, _reference: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_key_reference_reads_one_key_and_a_plain_one_the_whole_value() {
        let whole = SecretString::from(r#"{"cin7_api_key":"c-1","gss_access_key":"g-2","n":3}"#);
        assert_eq!(
            resolve("acme#gss_access_key", &whole)
                .unwrap()
                .expose_secret(),
            "g-2"
        );
        assert_eq!(
            resolve("acme", &whole).unwrap().expose_secret(),
            whole.expose_secret()
        );
        for (reference, problem) in [
            ("acme#missing", "the secret has no such key"),
            ("acme#n", "the key's value is not a string"),
        ] {
            let err = resolve(reference, &whole).unwrap_err();
            assert_eq!(err.to_string(), format!("secret {reference:?}: {problem}"));
        }
        let plain = SecretString::from("c-1");
        let err = resolve("acme#cin7_api_key", &plain).unwrap_err();
        assert!(!err.to_string().contains("c-1"), "{err}");
    }

    #[test]
    fn setting_a_key_keeps_the_others_and_starts_an_object_when_there_is_none() {
        let value = SecretString::from("new");
        let first = with_key("acme#a", None, &value).unwrap();
        assert_eq!(first.expose_secret(), r#"{"a":"new"}"#);
        let both = with_key("acme#b", Some(&first), &SecretString::from("b-1")).unwrap();
        assert_eq!(resolve("acme#a", &both).unwrap().expose_secret(), "new");
        assert_eq!(resolve("acme#b", &both).unwrap().expose_secret(), "b-1");
        assert!(with_key("acme#a", Some(&SecretString::from("plain")), &value).is_err());
        assert_eq!(
            with_key("acme", Some(&first), &value)
                .unwrap()
                .expose_secret(),
            "new"
        );
    }
}
