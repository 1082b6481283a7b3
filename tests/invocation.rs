//! Whole-system tests of what Lambda itself sees of an invocation: the
//! deadline the Runtime API hands over (an emulator's bogus one included)
//! and the `errorType` of a failed invocation, as posted to the Runtime
//! API's `/error` route. The built `migrate-once` binary runs under
//! local-aws's function host against the local control plane.

use local_aws::{
    AttemptResult, FunctionHost, InvocationOutcome, LocalAws, PipelineDriver, Scenario,
};
use serde_json::{Value, json};
use std::time::Duration;

fn bootstrap() -> String {
    std::env::var("MIGRATE_ONCE_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrate-once").to_string())
}

fn scenario(name: &str) -> String {
    format!("{}/tests/scenarios/{name}.json", env!("CARGO_MANIFEST_DIR"))
}

/// The `errorType` of every delivery of a failed invocation.
fn error_types(outcome: &InvocationOutcome) -> Vec<String> {
    outcome
        .attempts
        .iter()
        .map(|a| match &a.result {
            AttemptResult::Error { error_type, .. } => error_type.clone(),
            other => format!("not an error: {other}"),
        })
        .collect()
}

fn error_messages(outcome: &InvocationOutcome) -> Vec<String> {
    outcome
        .attempts
        .iter()
        .filter_map(|a| match &a.result {
            AttemptResult::Error { error_message, .. } => Some(error_message.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_1970_deadline_a_continuation_still_waits_for_the_task() {
    let aws = LocalAws::start_file(scenario("deadline-1970")).await;
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let result = tokio::time::timeout(
        Duration::from_secs(40),
        PipelineDriver::new(&aws, &host).run_default(),
    )
    .await
    .unwrap_or_else(|_| panic!("the action did not end within 40 s\n{}", host.logs()));
    let explain = || format!("{:#?}\nfunction logs:\n{}", result.reports, host.logs());
    assert!(result.succeeded(), "{}", explain());
    assert_eq!(result.tasks_started(), 1, "{}", explain());

    // Trusting 1970 would leave no time to wait: every continuation would
    // describe the task once and say "running for 0s". With the fallback
    // budget it watches for `waitSeconds` (2 s) first.
    let running: Vec<&str> = result
        .reports
        .iter()
        .filter_map(|r| r.summary.as_deref())
        .filter(|s| s.starts_with("Migration running for"))
        .collect();
    assert!(!running.is_empty(), "{}", explain());
    for summary in &running {
        assert!(
            !summary.starts_with("Migration running for 0s"),
            "a continuation did not wait: {summary}\n{}",
            explain()
        );
    }
    // start, one progress report after ~1 s of watching, then success.
    assert_eq!(result.reports.len(), 3, "{}", explain());
    assert_eq!(aws.calls_of("DescribeTasks").len(), 4, "{}", explain());

    // The replaced deadline is logged once per process, not per invocation.
    let logs = host.logs();
    let warnings = logs
        .matches("the Runtime API sent a deadline in the past")
        .count();
    assert!(
        warnings >= 1 && warnings as u64 <= host.cold_starts(),
        "{warnings} warnings for {} processes:\n{logs}",
        host.cold_starts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_fails_as_unrecognized_event_with_no_aws_call() {
    let aws = LocalAws::start(Scenario::default())
        .await
        .expect("control plane");
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    for event in [
        json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
        json!({"CodePipeline.job": {"data": {}}}),
        json!([1, 2, 3]),
    ] {
        let outcome = host.invoke_async(&event).wait().await;
        // Lambda delivers an asynchronous event 3 times in all.
        assert_eq!(
            error_types(&outcome),
            vec!["UnrecognizedEvent"; 3],
            "{event}: {outcome:?}\n{}",
            host.logs()
        );
        for message in error_messages(&outcome) {
            assert!(
                message.contains("accepted events") || message.contains("malformed"),
                "{message}"
            );
        }
    }
    assert!(aws.calls().is_empty(), "{:?}", aws.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_codepipeline_does_not_know_fails_as_report_failed() {
    let aws = LocalAws::start(Scenario::default())
        .await
        .expect("control plane");
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    // Bad UserParameters: the job fails at once, and its report is refused
    // (no such job), so the invocation cannot do its one duty.
    let job: Value = json!({"CodePipeline.job": {
        "id": "0badc0de-0000-4000-8000-000000000000",
        "data": {"actionConfiguration": {"configuration": {"UserParameters": "not json"}}}}});
    let outcome = host.invoke_async(&job).wait().await;
    assert_eq!(
        error_types(&outcome),
        vec!["ReportFailed"; 3],
        "{outcome:?}\n{}",
        host.logs()
    );
    for message in error_messages(&outcome) {
        assert!(
            message.starts_with(
                "job 0badc0de-0000-4000-8000-000000000000: could not report to CodePipeline: "
            ) && message.contains("codepipeline:PutJobFailureResult"),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventbridge_rerun_that_cannot_be_carried_out_fails_as_rerun_failed() {
    let scenario = Scenario::from_json(
        r#"{"faults": [{"operation": "GetPipeline", "calls": "all", "fault": "accessDenied"}]}"#,
    )
    .expect("scenario");
    let aws = LocalAws::start(scenario).await.expect("control plane");
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let event: Value =
        serde_json::from_str(include_str!("../events/action-failed.json")).expect("fixture");
    let outcome = host.invoke_async(&event).wait().await;
    assert_eq!(
        error_types(&outcome),
        vec!["RerunFailed"; 3],
        "{outcome:?}\n{}",
        host.logs()
    );
    for message in error_messages(&outcome) {
        assert!(
            message.starts_with("rerun not carried out: codepipeline:GetPipeline was denied"),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_naming_a_container_the_task_lacks_is_not_called_a_start_failure() {
    let aws = LocalAws::start_file(scenario("invoke-events")).await;
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let execution = aws.scenario().execution_id();
    // The start runs the task events/job-continue.json's token names.
    let start: Value =
        serde_json::from_str(include_str!("../events/job-start.json")).expect("fixture");
    let start_id = start["CodePipeline.job"]["id"].as_str().expect("job id");
    aws.add_job(start_id, &execution, None);
    assert!(
        host.invoke_async(&start).wait().await.succeeded(),
        "{}",
        host.logs()
    );
    assert_eq!(aws.task_count(), 1);

    // A hand-made token: the same task, but a container it does not have.
    let mut watch: Value =
        serde_json::from_str(include_str!("../events/job-continue.json")).expect("fixture");
    let token = watch["CodePipeline.job"]["data"]["continuationToken"]
        .as_str()
        .expect("token")
        .replace(r#""c":"app""#, r#""c":"migrate""#);
    assert!(token.contains(r#""c":"migrate""#), "{token}");
    let job_id = "44444444-abcd-4444-abcd-444444abcdef";
    watch["CodePipeline.job"]["id"] = json!(job_id);
    watch["CodePipeline.job"]["data"]["continuationToken"] = json!(token);
    aws.add_job(job_id, &execution, Some(&token));
    assert!(
        host.invoke_async(&watch).wait().await.succeeded(),
        "{}",
        host.logs()
    );

    let report = aws
        .reports()
        .into_iter()
        .find(|r| r.job_id == job_id)
        .unwrap_or_else(|| panic!("job not reported\n{}", host.logs()));
    assert!(!report.success, "{report:?}");
    assert_eq!(report.failure_type.as_deref(), Some("JobFailed"));
    let message = report.failure_message.unwrap_or_default();
    assert!(
        message.starts_with(
            "Task 0a1b2c3d4e5f67890a1b2c3d4e5f6789 stopped (Essential container in task exited), \
             but it has no container `migrate`"
        ) && message.contains("it has only `app`")
            && message.contains("unknown"),
        "{message}"
    );
    for untrue in ["could not start", "stopped before the migration ran"] {
        assert!(!message.contains(untrue), "{message}");
    }
    assert_eq!(aws.task_count(), 1, "no retry of a start that did not fail");
}
