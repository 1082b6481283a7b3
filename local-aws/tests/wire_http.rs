//! The wire basics over real HTTP: awsJson error shape and header, request
//! ids, malformed requests answered (never a dropped connection), and the
//! Runtime API only on function instance ports.

use local_aws::http_client::{aws_call, request};
use local_aws::{LocalAws, Scenario};
use serde_json::json;

#[tokio::test]
async fn errors_carry_type_in_body_and_header() {
    let aws = LocalAws::start(Scenario::default()).await.expect("start");
    let r = aws_call(
        &aws.endpoint_url(),
        "AmazonSSM.GetParameter",
        &json!({"Name": "/missing"}),
    )
    .await
    .expect("call");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-amzn-errortype"), Some("ParameterNotFound"));
    assert_eq!(r.json().unwrap()["__type"], "ParameterNotFound");
    assert_eq!(
        r.json().unwrap()["message"],
        "Parameter /missing not found."
    );
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(r.header("x-amzn-requestid").is_some());
    let calls = aws.calls();
    assert_eq!(calls[0].operation, "GetParameter");
    assert_eq!(calls[0].error.as_deref(), Some("ParameterNotFound"));
}

#[tokio::test]
async fn malformed_requests_get_an_answer() {
    let aws = LocalAws::start(Scenario::default()).await.expect("start");
    let addr = aws.address().to_string();
    let not_json = request(
        &addr,
        "POST",
        "/",
        &[("X-Amz-Target", "AmazonSSM.GetParameter")],
        "{nope",
    )
    .await
    .expect("call");
    assert_eq!(
        not_json.error_type().as_deref(),
        Some("SerializationException")
    );
    let wrong_type = aws_call(
        &aws.endpoint_url(),
        "AmazonSSM.GetParameter",
        &json!({"Name": 7}),
    )
    .await
    .expect("call");
    assert_eq!(
        wrong_type.error_type().as_deref(),
        Some("SerializationException")
    );
    let unknown = aws_call(&aws.endpoint_url(), "AmazonSQS.SendMessage", &json!({}))
        .await
        .expect("call");
    assert_eq!(
        unknown.error_type().as_deref(),
        Some("UnknownOperationException")
    );
    // A GET is S3's REST protocol (the artifact store): unsigned, it is
    // denied as S3 denies it.
    let unsigned = request(&addr, "GET", "/", &[], "").await.expect("call");
    assert_eq!(unsigned.status, 403);
    assert!(
        unsigned.body.contains("<Code>AccessDenied</Code>"),
        "{}",
        unsigned.body
    );
    // Anything else without X-Amz-Target is no AWS JSON call.
    let no_target = request(&addr, "POST", "/", &[], "").await.expect("call");
    assert_eq!(no_target.status, 400);
    let runtime = request(&addr, "GET", "/2018-06-01/runtime/invocation/next", &[], "")
        .await
        .expect("call");
    assert_eq!(runtime.status, 404);
    assert!(runtime.body.contains("FunctionHost"));
}
