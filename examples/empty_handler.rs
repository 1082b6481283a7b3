//! The cold-start baseline for `make bench`: an empty Rust handler that builds
//! the same three SDK clients (same TLS choice), and does nothing else.

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await;
    let clients = (
        aws_sdk_ssm::Client::new(&sdk),
        aws_sdk_ecs::Client::new(&sdk),
        aws_sdk_codepipeline::Client::new(&sdk),
    );
    run(service_fn(|_: LambdaEvent<Value>| {
        let _ = &clients;
        async { Ok::<Value, Error>(Value::Null) }
    }))
    .await
}
