//! The SDK forwards the Lambda trace id: with `AWS_LAMBDA_FUNCTION_NAME`
//! set, its recursion-detection interceptor copies `_X_AMZN_TRACE_ID`
//! (which `lambda_runtime` sets per invocation from
//! `Lambda-Runtime-Trace-Id`) into `X-Amzn-Trace-Id`. local-aws relies on
//! this to know which function process made a call (for the `crash` fault
//! and to attribute tasks to jobs). One test per binary: it changes the
//! process environment.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use local_aws::{LocalAws, Scenario};

#[tokio::test]
async fn sdk_forwards_the_lambda_trace_id() {
    let trace = local_aws::ids::trace_id();
    // SAFETY: the only test in this binary; nothing reads the environment
    // concurrently before these writes.
    unsafe {
        std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "migrate-once");
        std::env::set_var("_X_AMZN_TRACE_ID", &trace);
    }
    let aws = LocalAws::start(Scenario::default()).await.expect("start");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(aws.endpoint_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "AKIA", "s", None, None, "t",
        ))
        .load()
        .await;
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name("/t")
        .value("1")
        .r#type(ParameterType::String)
        .send()
        .await
        .expect("put");
    let calls = aws.calls();
    assert_eq!(calls[0].trace_id.as_deref(), Some(trace.as_str()));
}
