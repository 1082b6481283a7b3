//! Per-account quotas over real HTTP: a scenario's `quotas` throttle calls
//! beyond a bucket like AWS does (`ThrottlingException`, "Rate exceeded"),
//! other buckets and unconfigured operations are untouched, and the call log
//! records the throttled calls (error code, no injected fault).

use local_aws::http_client::aws_call;
use local_aws::quota::{Quotas, Rate};
use local_aws::{LocalAws, Scenario};
use serde_json::json;

#[tokio::test]
async fn calls_beyond_a_bucket_are_throttled_like_aws() {
    let scenario = Scenario {
        quotas: Quotas {
            // Two writes now, the next one in ~17 minutes.
            ssm_write: Some(Rate {
                rate: 0.001,
                burst: 2.0,
            }),
            ..Quotas::default()
        },
        ..Scenario::default()
    };
    let aws = LocalAws::start(scenario).await.expect("start");
    let endpoint = aws.endpoint_url();
    let mut codes = Vec::new();
    for i in 0..3 {
        let body = json!({"Name": format!("/p/{i}"), "Value": "v", "Type": "String"});
        let r = aws_call(&endpoint, "AmazonSSM.PutParameter", &body)
            .await
            .expect("call");
        if i == 2 {
            assert_eq!(r.status, 400);
            let v = r.json().expect("json");
            assert_eq!(v["message"], "Rate exceeded");
            assert_eq!(v["Message"], "Rate exceeded");
        }
        codes.push(r.error_type());
    }
    assert_eq!(codes, [None, None, Some("ThrottlingException".to_string())]);
    // Reads are another bucket, not configured: never throttled.
    for _ in 0..50 {
        let r = aws_call(
            &endpoint,
            "AmazonSSM.GetParameter",
            &json!({"Name": "/p/0"}),
        )
        .await
        .expect("call");
        assert_eq!(r.status, 200);
    }
    assert!(
        aws.parameter("/p/2").is_none(),
        "a throttled write is not applied"
    );
    let throttled: Vec<_> = aws
        .calls()
        .into_iter()
        .filter(|c| c.error.as_deref() == Some("ThrottlingException"))
        .collect();
    assert_eq!(throttled.len(), 1);
    assert_eq!(throttled[0].operation, "PutParameter");
    assert_eq!(throttled[0].fault, None);
}

#[tokio::test]
async fn no_quotas_means_no_throttling() {
    let aws = LocalAws::start(Scenario::default()).await.expect("start");
    for i in 0..100 {
        let body = json!({"Name": format!("/q/{i}"), "Value": "v", "Type": "String"});
        let r = aws_call(&aws.endpoint_url(), "AmazonSSM.PutParameter", &body)
            .await
            .expect("call");
        assert_eq!(r.status, 200);
    }
}
