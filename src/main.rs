//! Wiring only: logging, the SDK configuration and clients (once per cold
//! start), then the Lambda runtime loop.

use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use lambda_runtime::{Error, run, service_fn};
use migrate_once::{Clients, Function, sdk};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // `migrate-once claim …` on an instance (SPEC §8), never in Lambda.
    if std::env::args_os().nth(1).is_some_and(|a| a == "claim") {
        std::process::exit(migrate_once::claim::main(std::env::args_os().skip(2).collect()).await);
    }
    migrate_once::logging::init(|name| std::env::var(name).ok());

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
        .retry_config(sdk::retry_config(|name| std::env::var(name).ok()))
        .timeout_config(sdk::timeout_config())
        .load()
        .await;
    let function = Function::new(Clients::new(&sdk));

    run(service_fn(|event| function.handle(event))).await
}
