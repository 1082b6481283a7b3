//! Wiring only: logging, the SDK configuration and clients (once per cold
//! start), then the Lambda runtime loop.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use lambda_runtime::{Error, run, service_fn};
use migrate_once::{Clients, Function};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();

    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        // Lambda always sets AWS_REGION. (The default region chain would also
        // build an IMDS client, which needs the default HTTPS client we leave out.)
        .region(
            aws_config::meta::region::RegionProviderChain::first_try(
                aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
            )
            .or_else(Region::new("us-east-1")),
        )
        // Standard retries with jittered backoff: throttling and 5xx are
        // retried a few times before a call fails as SystemUnavailable.
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        // A hung endpoint must not eat the invocation: each attempt is bounded.
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(40))
                .build(),
        )
        .load()
        .await;
    let function = Function::new(Clients::new(&sdk));

    run(service_fn(|event| function.handle(event))).await
}
