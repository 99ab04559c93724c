//! Creating and deleting the state table, for tests and the CLI against local emulators
//! (production tables come from the infrastructure template).

use super::{EXPIRES_AT, PK, SK, unavailable};
use crate::store::StoreError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use std::time::Duration;

/// How long [`create_table`] waits for a new table to become active.
const ACTIVE_WAIT: Duration = Duration::from_secs(120);

/// Creates the table (on-demand billing, string keys `pk` and `sk`) unless it exists, waits
/// for it to be active, and enables TTL on `expires_at`. For tests and the CLI against local
/// emulators; production tables come from the infrastructure template.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let key = |attr: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attr)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    };
    let def = |attr: &str| {
        AttributeDefinition::builder()
            .attribute_name(attr)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    };
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .attribute_definitions(def(PK)?)
        .attribute_definitions(def(SK)?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) => {}
        Err(e) => return Err(unavailable(&e)),
    }

    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let status = out.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "table {name} is not active after {}s",
                ACTIVE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| unavailable(&e))?;
    let enabled = ttl.time_to_live_description().is_some_and(|d| {
        d.attribute_name() == Some(EXPIRES_AT)
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
    });
    if !enabled {
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
    }
    Ok(())
}

/// Deletes the table; a table that does not exist is already deleted.
pub async fn delete_table(client: &Client, name: &str) -> Result<(), StoreError> {
    match client.delete_table().table_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable(&e)),
    }
}
