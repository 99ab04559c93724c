//! The AWS SDK configuration every adapter's client is built from.

/// The SDK configuration from the standard chain: region and credentials from the
/// environment, the shared config files, or the container or instance role. The SDK itself
/// honours `AWS_ENDPOINT_URL` (and the per-service variants), which points the clients at a
/// local emulator in tests.
pub async fn sdk_config() -> ::aws_config::SdkConfig {
    ::aws_config::defaults(::aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A [`Store`](crate::store::Store) over a DynamoDB table, on the system clock.
pub fn dynamo_store(sdk: &::aws_config::SdkConfig, table: &str) -> crate::store::Store {
    crate::store::Store::new(
        std::sync::Arc::new(crate::store::dynamodb::DynamoTable::new(
            aws_sdk_dynamodb::Client::new(sdk),
            table,
        )),
        std::sync::Arc::new(crate::clock::SystemClock),
    )
}

/// Secrets Manager as the secret source, each value cached for `ttl`.
pub fn secrets_manager(
    sdk: &::aws_config::SdkConfig,
    ttl: std::time::Duration,
) -> crate::secrets::aws::SecretsManagerSource {
    crate::secrets::aws::SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(sdk), ttl)
}

/// The SQS write-back queue.
pub fn sqs_queue(sdk: &::aws_config::SdkConfig, queue_url: &str) -> crate::queue::sqs::SqsQueue {
    crate::queue::sqs::SqsQueue::new(aws_sdk_sqs::Client::new(sdk), queue_url)
}
