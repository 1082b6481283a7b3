//! The function host and the pipeline driver, exercised with the
//! `fake-function` stand-in (raw Runtime API + awsJson, no SDK): async
//! redelivery, crash restarts, the crash fault, continuation jobs,
//! duplicate deliveries and a pool under concurrency.

use local_aws::{ActionStatus, AttemptResult, FunctionHost, LocalAws, PipelineDriver, Scenario};
use serde_json::{Value, json};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-function");

async fn start(mut scenario: Value) -> (LocalAws, FunctionHost) {
    let base = json!({
        "clusters": ["app"],
        "taskDefinitions": [{"family": "app-migrate", "containers": [{"name": "app"}]}],
    });
    if let (Some(s), Some(b)) = (scenario.as_object_mut(), base.as_object()) {
        for (k, v) in b {
            s.entry(k.clone()).or_insert(v.clone());
        }
    }
    let scenario = Scenario::from_json(&scenario.to_string()).expect("scenario");
    let aws = LocalAws::start(scenario).await.expect("start");
    let host = FunctionHost::for_scenario(&aws, FAKE).expect("host");
    (aws, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuations_create_a_new_job_each_time_until_final_success() {
    let (aws, host) = start(json!({
        "userParameters": {"deployment": "#{codepipeline.PipelineExecutionId}", "fake": {"steps": 3, "runTask": true}},
    }))
    .await;
    let result = PipelineDriver::new(&aws, &host).run("exec-1").await;
    assert_eq!(result.status, ActionStatus::Succeeded, "{result:?}");
    assert_eq!(result.jobs.len(), 4);
    let unique: std::collections::HashSet<_> = result.jobs.iter().collect();
    assert_eq!(unique.len(), 4, "every continuation is a new job id");
    let tokens: Vec<_> = result
        .reports
        .iter()
        .map(|r| r.continuation_token.clone())
        .collect();
    assert_eq!(
        tokens,
        vec![Some("1".into()), Some("2".into()), Some("3".into()), None]
    );
    assert_eq!(
        result.output_variables.get("Step").map(String::as_str),
        Some("3")
    );
    assert_eq!(result.tasks_started(), 1);
    let run = aws.calls_of("RunTask");
    assert_eq!(
        run[0].request["clientToken"], "fake-exec-1",
        "the execution id was resolved"
    );
    assert_eq!(
        aws.execution_status("exec-1").as_deref(),
        Some("InProgress")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_is_delivered_three_times_then_the_action_has_no_report() {
    let (aws, host) = start(json!({"userParameters": {"fake": {"mode": "error"}}})).await;
    let result = PipelineDriver::new(&aws, &host).run("exec-err").await;
    assert_eq!(result.status, ActionStatus::NoReport);
    assert!(
        result
            .message
            .as_deref()
            .unwrap_or("")
            .contains("no report"),
        "{result:?}"
    );
    let attempts = &result.invocations[0].attempts;
    assert_eq!(attempts.len(), 3);
    assert!(matches!(attempts[2].result, AttemptResult::Error { .. }));
    let deliveries = aws.deliveries();
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries
            .iter()
            .all(|d| d.request_id == deliveries[0].request_id)
    );
    assert_ne!(deliveries[0].trace_id, deliveries[1].trace_id);
    assert_eq!(host.cold_starts(), 1, "an error keeps the process");
    assert_eq!(aws.execution_status("exec-err").as_deref(), Some("Failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_process_is_replaced_by_a_new_cold_start() {
    let (aws, host) = start(json!({"userParameters": {"fake": {"mode": "exit"}}})).await;
    let result = PipelineDriver::new(&aws, &host).run("exec-exit").await;
    assert_eq!(result.status, ActionStatus::NoReport);
    let attempts = &result.invocations[0].attempts;
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| matches!(a.result, AttemptResult::Crashed(_))),
        "{attempts:?}"
    );
    assert_eq!(host.cold_starts(), 3);
    assert!(host.logs().contains("fake function cold start"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_fault_kills_the_caller_after_the_effect_and_lambda_redelivers() {
    let (aws, host) = start(json!({
        "userParameters": {"deployment": "#{codepipeline.PipelineExecutionId}", "fake": {"steps": 1, "runTask": true}},
        "faults": [{"operation": "RunTask", "calls": [1], "fault": "crash"}],
    }))
    .await;
    let result = PipelineDriver::new(&aws, &host).run("exec-crash").await;
    assert_eq!(result.status, ActionStatus::Succeeded, "{result:?}");
    assert_eq!(
        result.tasks_started(),
        1,
        "the replayed clientToken started nothing new"
    );
    let first_job = &result.invocations[0];
    assert_eq!(first_job.attempts.len(), 2);
    assert_eq!(
        first_job.attempts[0].result,
        AttemptResult::Crashed("killed by an injected crash fault".into())
    );
    let run = aws.calls_of("RunTask");
    assert_eq!(run.len(), 2);
    assert_eq!(
        run[0].job_id.as_deref(),
        Some(result.jobs[0].as_str()),
        "trace id maps the call to its job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_duplicate_delivery_gets_invalid_job_state() {
    let (aws, host) = start(json!({
        "userParameters": {"fake": {"steps": 1}},
        "duplicateDeliveries": [{"job": 1, "concurrent": true}],
    }))
    .await;
    let result = PipelineDriver::new(&aws, &host).run("exec-dup").await;
    assert_eq!(result.status, ActionStatus::Succeeded);
    assert_eq!(result.invocations.len(), 3, "job 1 twice, job 2 once");
    let refused: Vec<_> = aws
        .calls_of("PutJobSuccessResult")
        .into_iter()
        .filter(|c| c.error.as_deref() == Some("InvalidJobStateException"))
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(aws.reports().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_actions_share_a_bounded_pool() {
    let (aws, host) = start(json!({
        "userParameters": {"fake": {"steps": 1, "sleepMillis": 50}},
        "function": {"maxInstances": 5},
    }))
    .await;
    let driver = PipelineDriver::new(&aws, &host);
    let runs = (0..20).map(|i| {
        let driver = &driver;
        async move { driver.run(&format!("exec-{i}")).await }
    });
    let results = futures_join_all(runs).await;
    assert!(results.iter().all(|r| r.succeeded()), "{results:?}");
    assert!(host.cold_starts() <= 5, "{} processes", host.cold_starts());
    assert_eq!(aws.reports().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_failure_ends_the_action() {
    let (aws, host) = start(json!({"userParameters": {"fake": {"mode": "fail"}}})).await;
    let result = PipelineDriver::new(&aws, &host).run("exec-fail").await;
    assert_eq!(result.status, ActionStatus::Failed);
    assert_eq!(result.failure_type.as_deref(), Some("JobFailed"));
    assert_eq!(result.message.as_deref(), Some("fake failure"));
}

/// `join_all` without the futures crate: drive them on the runtime.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future,
{
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
