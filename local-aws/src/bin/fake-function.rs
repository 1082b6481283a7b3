//! A stand-in Lambda for testing local-aws itself: speaks the Runtime API
//! and awsJson over raw HTTP (no AWS SDK), and behaves as the job's
//! `UserParameters` field `"fake"` says:
//!
//! - `{"mode": "report", "steps": N, "runTask": bool, "sleepMillis": n}` —
//!   start: (RunTask with a fixed client token, then) report success with
//!   token `1`; continue with token k: report token k+1, or the final
//!   success with output variables when k = N.
//! - `{"mode": "fail"}` — report `JobFailed`.
//! - `{"mode": "error"}` — return an error without reporting.
//! - `{"mode": "exit"}` — exit the process without reporting.
//!
//! Like the SDK inside a Lambda, it forwards the invocation's trace id as
//! `X-Amzn-Trace-Id` on every AWS call.

use local_aws::http_client::{self, HttpResponse};
use serde_json::{Value, json};
use std::time::Duration;

struct Ctx {
    api: String,
    endpoint: String,
    trace: String,
}

impl Ctx {
    async fn call(&self, target: &str, body: Value) -> Result<HttpResponse, String> {
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        http_client::request(
            &addr,
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", target),
                ("X-Amzn-Trace-Id", &self.trace),
            ],
            &body.to_string(),
        )
        .await
        .map_err(|e| format!("{target}: {e}"))
    }
}

async fn handle(ctx: &Ctx, event: &Value) -> Result<Value, String> {
    let job = event
        .get("CodePipeline.job")
        .ok_or("not a CodePipeline job event")?;
    let job_id = job["id"].as_str().ok_or("job without id")?;
    let data = &job["data"];
    let params: Value = data["actionConfiguration"]["configuration"]["UserParameters"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let fake = &params["fake"];
    if let Some(ms) = fake["sleepMillis"].as_u64() {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match fake["mode"].as_str().unwrap_or("report") {
        "error" => return Err("fake function asked to fail".into()),
        "exit" => std::process::exit(3),
        "fail" => {
            ctx.call(
                "CodePipeline_20150709.PutJobFailureResult",
                json!({"jobId": job_id, "failureDetails": {"type": "JobFailed", "message": "fake failure"}}),
            )
            .await?;
            return Ok(json!("reported failure"));
        }
        _ => {}
    }
    let steps = fake["steps"].as_u64().unwrap_or(1);
    let step: u64 = data["continuationToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut external = None;
    if step == 0 && fake["runTask"].as_bool().unwrap_or(false) {
        let deployment = params["deployment"].as_str().unwrap_or("d");
        let answer = ctx
            .call(
                "AmazonEC2ContainerServiceV20141113.RunTask",
                json!({
                    "cluster": "app", "taskDefinition": "app-migrate",
                    "clientToken": format!("fake-{deployment}"),
                    "startedBy": "migrate-once",
                    "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"]}},
                }),
            )
            .await?;
        external = answer.json()?["tasks"][0]["taskArn"]
            .as_str()
            .map(str::to_string);
    }
    let body = if step >= steps {
        json!({"jobId": job_id, "executionDetails": {"summary": "done", "percentComplete": 100},
               "outputVariables": {"Step": step.to_string()}})
    } else {
        let mut details = json!({"summary": format!("step {}", step + 1), "percentComplete": (step + 1) * 100 / (steps + 1)});
        if let Some(arn) = external {
            details["externalExecutionId"] = json!(arn);
        }
        json!({"jobId": job_id, "continuationToken": (step + 1).to_string(), "executionDetails": details})
    };
    let answer = ctx
        .call("CodePipeline_20150709.PutJobSuccessResult", body)
        .await?;
    if answer.status != 200 && answer.error_type().as_deref() != Some("InvalidJobStateException") {
        return Err(format!("report refused: {}", answer.body));
    }
    Ok(json!("reported"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    eprintln!("fake function cold start");
    loop {
        let next =
            match http_client::request(&api, "GET", "/2018-06-01/runtime/invocation/next", &[], "")
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("runtime API gone: {e}");
                    return;
                }
            };
        let request_id = next
            .header("lambda-runtime-aws-request-id")
            .unwrap_or_default()
            .to_string();
        let ctx = Ctx {
            api: api.clone(),
            endpoint: endpoint.clone(),
            trace: next
                .header("lambda-runtime-trace-id")
                .unwrap_or_default()
                .to_string(),
        };
        let event: Value = serde_json::from_str(&next.body).unwrap_or(Value::Null);
        let (path, body) = match handle(&ctx, &event).await {
            Ok(v) => (
                format!("/2018-06-01/runtime/invocation/{request_id}/response"),
                v,
            ),
            Err(e) => (
                format!("/2018-06-01/runtime/invocation/{request_id}/error"),
                json!({"errorType": "FakeError", "errorMessage": e}),
            ),
        };
        if let Err(e) = http_client::request(&ctx.api, "POST", &path, &[], &body.to_string()).await
        {
            eprintln!("could not post the result: {e}");
            return;
        }
    }
}
