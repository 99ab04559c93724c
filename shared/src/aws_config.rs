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
