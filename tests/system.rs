//! Whole-system tests: the built `migrate-once` binary, run as a Lambda by
//! local-aws's function host (Runtime API, async redelivery), driven
//! through CodePipeline jobs and continuation tokens, talking to the local
//! SSM / ECS / CodePipeline over HTTP with the real SDK. Each test asserts
//! what the pipeline saw (status, failure type, message, output variables)
//! and how many migration tasks ran — the contract of SPEC.md §4.
//!
//! Scenarios are data: `tests/scenarios/<name>.json`. `waitSeconds: 0`
//! makes every invocation do one `DescribeTasks` and hand back a token, and
//! task timelines advance per `DescribeTasks`, so nothing sleeps.

use local_aws::pipeline_driver::{ARTIFACT_SECRET_ACCESS_KEY, ARTIFACT_SESSION_TOKEN};
use local_aws::{
    ActionResult, ActionStatus, AttemptResult, FunctionHost, LocalAws, PipelineDriver,
};
use serde_json::Value;
use std::time::Duration;

/// The function under test: the binary cargo built, or `MIGRATE_ONCE_BOOTSTRAP`
/// (e.g. a `cargo lambda build` output) when set.
fn bootstrap() -> String {
    std::env::var("MIGRATE_ONCE_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrate-once").to_string())
}
/// The environment override value every scenario passes; never to be logged.
const ENV_OVERRIDE_SECRET: &str = "s3cr3t-env-override-value";
const STATE_PARAMETER: &str = "/migrate-once/app/app-migrate";

struct Run {
    aws: LocalAws,
    host: FunctionHost,
    result: ActionResult,
}

impl Run {
    /// Everything a person needs when an assertion fails.
    fn explain(&self) -> String {
        let calls: Vec<String> = self.aws.calls().iter().map(|c| c.to_string()).collect();
        format!(
            "status {:?}, type {:?}, message {:?}\nreports: {:#?}\ncalls:\n{}\nfunction logs:\n{}",
            self.result.status,
            self.result.failure_type,
            self.result.message,
            self.result.reports,
            calls.join("\n"),
            self.host.logs()
        )
    }

    fn message(&self) -> &str {
        self.result.message.as_deref().unwrap_or("")
    }

    fn only_task_arn(&self) -> String {
        assert_eq!(self.result.tasks_started(), 1, "{}", self.explain());
        self.result.task_arns[0].clone()
    }

    fn state(&self) -> Value {
        let p = self
            .aws
            .parameter(STATE_PARAMETER)
            .unwrap_or_else(|| panic!("no state parameter {STATE_PARAMETER}\n{}", self.explain()));
        serde_json::from_str(&p.value)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {}", p.value))
    }

    fn assert_no_secret_in_logs(&self) {
        let logs = self.host.logs();
        for secret in [
            local_aws::FAKE_SECRET_ACCESS_KEY,
            local_aws::FAKE_SESSION_TOKEN,
            ARTIFACT_SECRET_ACCESS_KEY,
            ARTIFACT_SESSION_TOKEN,
            ENV_OVERRIDE_SECRET,
        ] {
            assert!(
                !logs.contains(secret),
                "the function logged a secret ({secret}):\n{logs}"
            );
        }
    }

    fn assert_reports_fit(&self) {
        for r in &self.result.reports {
            if let Some(s) = &r.summary {
                assert!(s.chars().count() <= 2048, "summary too long: {}", s.len());
            }
            if let Some(p) = r.percent_complete {
                assert!((0..=100).contains(&p), "percentComplete {p}");
            }
            if let Some(m) = &r.failure_message {
                assert!(m.chars().count() <= 5000, "message too long: {}", m.len());
            }
        }
        assert!(
            self.aws.overlapping_tasks().is_empty(),
            "two migrations overlapped\n{}",
            self.explain()
        );
    }
}

fn scenario(name: &str) -> String {
    format!("{}/tests/scenarios/{name}.json", env!("CARGO_MANIFEST_DIR"))
}

async fn run(name: &str) -> Run {
    let aws = LocalAws::start_file(scenario(name)).await;
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let driver = PipelineDriver::new(&aws, &host);
    let result = tokio::time::timeout(Duration::from_secs(40), driver.run_default())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "scenario {name}: the action did not end within 40 s\n{}",
                host.logs()
            )
        });
    let run = Run { aws, host, result };
    run.assert_reports_fit();
    run.assert_no_secret_in_logs();
    run
}

fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_migration_reports_progress_then_success_with_outputs() {
    let run = run("success").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Succeeded, "{}", run.explain());
    let arn = run.only_task_arn();
    let execution = run.aws.scenario().execution_id();

    // In progress with a token first, final success without one.
    assert!(r.reports.len() >= 2, "{}", run.explain());
    let (last, progress) = r.reports.split_last().expect("reports");
    assert!(last.continuation_token.is_none() && last.success);
    assert!(
        progress
            .iter()
            .all(|p| p.success && p.continuation_token.is_some())
    );
    assert!(
        r.reports
            .iter()
            .all(|p| p.external_execution_id.as_deref().is_none_or(|x| x == arn)),
        "externalExecutionId is the task ARN\n{}",
        run.explain()
    );
    assert_eq!(last.external_execution_id.as_deref(), Some(arn.as_str()));

    let out = &r.output_variables;
    assert_eq!(out.get("TaskArn"), Some(&arn));
    assert_eq!(out.get("ExitCode").map(String::as_str), Some("0"));
    assert_eq!(out.get("Deployment"), Some(&execution));
    assert_eq!(out.get("Attempts").map(String::as_str), Some("1"));
    assert!(
        out.get("DurationSeconds")
            .is_some_and(|d| d.parse::<u64>().is_ok()),
        "{out:?}"
    );
    assert_eq!(
        out.get("LogStream"),
        Some(&format!("migrate/app/{}", task_id(&arn)))
    );

    // RunTask carried what SPEC §4 says.
    let calls = run.aws.calls_of("RunTask");
    let req = &calls[0].request;
    assert_eq!(req["startedBy"], "migrate-once");
    assert!(
        req["clientToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty() && t.len() <= 64)
    );
    let tags = req["tags"].as_array().expect("tags");
    assert!(
        tags.iter()
            .any(|t| t["key"] == "migrate-once:deployment" && t["value"] == execution.as_str())
    );
    let overrides = &req["overrides"]["containerOverrides"][0];
    assert_eq!(overrides["name"], "app");
    assert_eq!(
        overrides["command"],
        serde_json::json!(["bin/rails", "db:migrate"])
    );
    let vpc = &req["networkConfiguration"]["awsvpcConfiguration"];
    assert_eq!(
        vpc["subnets"],
        serde_json::json!(["subnet-0a1b2c3d", "subnet-4e5f6a7b"])
    );
    assert_eq!(req["launchType"], "FARGATE");
    assert_eq!(req["platformVersion"], "1.4.0");

    let state = run.state();
    assert_eq!(state["deployment"], execution.as_str());
    assert_eq!(state["status"], "succeeded");
    assert_eq!(state["taskArn"], arn.as_str());
    assert_eq!(state["exitCode"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_exiting_non_zero_fails_the_action_with_code_reason_and_logs() {
    let run = run("exit-nonzero").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Failed, "{}", run.explain());
    assert_eq!(r.failure_type.as_deref(), Some("JobFailed"));
    let arn = run.only_task_arn();
    let m = run.message();
    for needle in [
        "3",
        "app",
        "Essential container in task exited",
        "/ecs/app-migrate",
    ] {
        assert!(m.contains(needle), "message should mention {needle:?}: {m}");
    }
    assert!(
        m.contains(&format!("migrate/app/{}", task_id(&arn))),
        "log stream in: {m}"
    );
    // The migration's own last lines, newest last, from the decisive
    // container's stream only (not the sidecar's), before the log pointer.
    let lines = m
        .split_once("Last log lines: ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no log lines in: {m}"));
    assert!(
        lines.contains(
            "bin/rails aborted! | StandardError: An error has occurred, this and all later migrations canceled: \
             | PG::UndefinedTable: ERROR:  relation \"users\" does not exist"
        ),
        "{m}"
    );
    assert!(
        lines.contains(
            "(See full trace by running task with --trace). Logs: group /ecs/app-migrate"
        ),
        "{m}"
    );
    assert!(!m.contains("datadog agent line"), "{m}");
    let reads = run.aws.calls_of("GetLogEvents");
    assert_eq!(reads.len(), 1, "{}", run.explain());
    assert_eq!(reads[0].request["logGroupName"], "/ecs/app-migrate");
    assert_eq!(
        reads[0].request["logStreamName"],
        format!("migrate/app/{}", task_id(&arn)).as_str()
    );
    assert_eq!(reads[0].request["startFromHead"], false);
    assert_eq!(
        r.reports
            .last()
            .and_then(|x| x.external_execution_id.clone()),
        Some(arn)
    );
    assert!(r.output_variables.is_empty());
    assert_eq!(run.state()["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_that_cannot_be_read_leave_the_failure_as_it_is() {
    let run = run("logs-denied").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Failed, "{}", run.explain());
    assert_eq!(r.failure_type.as_deref(), Some("JobFailed"));
    let arn = run.only_task_arn();
    let m = run.message();
    assert!(m.contains("exited with code 3"), "{m}");
    assert!(
        m.contains("Last log lines: (could not read logs: logs:GetLogEvents was denied"),
        "{m}"
    );
    assert!(!m.contains("rails aborted"), "{m}");
    assert!(
        m.contains(&format!("migrate/app/{}", task_id(&arn))),
        "log pointer in: {m}"
    );
    assert_eq!(run.state()["status"], "failed");
    assert!(
        run.aws
            .calls_of("GetLogEvents")
            .iter()
            .all(|c| c.error.as_deref() == Some("AccessDeniedException")),
        "{}",
        run.explain()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_fails_to_start_fails_the_action_without_retrying_a_permanent_cause() {
    let run = run("failed-to-start").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Failed, "{}", run.explain());
    assert_eq!(r.failure_type.as_deref(), Some("JobFailed"));
    assert!(
        run.message().contains("CannotPullContainerError"),
        "{}",
        run.message()
    );
    assert_eq!(
        r.tasks_started(),
        1,
        "a permanent start failure is not retried\n{}",
        run.explain()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_capacity_failure_is_retried_as_a_new_attempt() {
    let run = run("capacity-retry").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Succeeded, "{}", run.explain());
    assert_eq!(r.tasks_started(), 1);
    assert_eq!(
        r.output_variables.get("Attempts").map(String::as_str),
        Some("2")
    );
    let tokens: Vec<String> = run
        .aws
        .calls_of("RunTask")
        .iter()
        .filter_map(|c| c.request["clientToken"].as_str().map(str::to_string))
        .collect();
    assert!(
        tokens.len() >= 2 && tokens[0] != tokens[tokens.len() - 1],
        "each attempt has its own clientToken: {tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_of_a_job_start_one_migration() {
    let run = run("duplicate-delivery").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Succeeded, "{}", run.explain());
    assert_eq!(run.aws.task_count(), 1, "{}", run.explain());
    assert_eq!(
        r.reports.len(),
        r.jobs.len(),
        "each job reported exactly once"
    );
    assert!(
        r.invocations.iter().all(|i| i.succeeded()),
        "a duplicate must count its refused report as done, not error\n{}",
        run.explain()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_run_task_resumes_the_same_task() {
    let run = run("crash-after-runtask").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Succeeded, "{}", run.explain());
    assert_eq!(
        run.aws.task_count(),
        1,
        "the redelivery must not start a second task\n{}",
        run.explain()
    );
    let first = &r.invocations[0];
    assert!(first.attempts.len() >= 2, "{}", run.explain());
    assert!(matches!(
        first.attempts[0].result,
        AttemptResult::Crashed(_)
    ));
    assert_eq!(
        r.output_variables.get("Attempts").map(String::as_str),
        Some("1")
    );
    assert!(
        run.host.cold_starts() >= 2,
        "the killed process was replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_user_parameters_fail_with_every_problem_named_and_nothing_started() {
    let run = run("bad-config").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Failed, "{}", run.explain());
    assert_eq!(r.failure_type.as_deref(), Some("ConfigurationError"));
    for field in ["cluster", "timeoutSeconds", "colour"] {
        assert!(
            run.message().contains(field),
            "message should name {field}: {}",
            run.message()
        );
    }
    assert!(run.aws.calls_of("RunTask").is_empty());
    assert_eq!(run.aws.task_count(), 0);
    assert_eq!(r.jobs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_user_parameters_name_the_line_and_column() {
    let run = run("bad-json").await;
    assert_eq!(
        run.result.failure_type.as_deref(),
        Some("ConfigurationError"),
        "{}",
        run.explain()
    );
    assert!(run.message().contains("line 2"), "{}", run.message());
    assert_eq!(run.aws.task_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_past_its_timeout_is_stopped_and_fails() {
    let run = run("timeout").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Failed, "{}", run.explain());
    assert_eq!(r.failure_type.as_deref(), Some("JobFailed"));
    assert!(run.message().contains("timed out"), "{}", run.message());
    assert!(
        run.message().contains(
            "Last log lines: == 20240101093000 BackfillOrders: migrating | -- backfilling orders 1000000/48000000."
        ),
        "{}",
        run.message()
    );
    let arn = run.only_task_arn();
    let stops = run.aws.calls_of("StopTask");
    assert!(
        stops
            .iter()
            .any(|c| c.request["task"] == arn.as_str() && c.ok()),
        "{}",
        run.explain()
    );
    assert_eq!(run.state()["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_a_permission_error_naming_the_call() {
    let run = run("access-denied").await;
    let r = &run.result;
    assert_eq!(r.status, ActionStatus::Failed, "{}", run.explain());
    assert_eq!(r.failure_type.as_deref(), Some("PermissionError"));
    assert!(run.message().contains("RunTask"), "{}", run.message());
    assert_eq!(run.aws.task_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_deployment_is_not_migrated_again_but_the_next_one_is() {
    let aws = LocalAws::start_file(scenario("success")).await;
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let driver = PipelineDriver::new(&aws, &host);
    let execution = aws.scenario().execution_id();
    let first = driver.run(&execution).await;
    assert!(first.succeeded(), "{:?}\n{}", first, host.logs());
    let again = driver.run(&execution).await;
    assert!(again.succeeded(), "{:?}\n{}", again, host.logs());
    assert_eq!(again.tasks_started(), 0, "rerun: once — already applied");
    assert_eq!(again.reports.len(), 1, "reported success at once");
    let next = driver.run("6c1f0e52-0000-4c57-a3a8-2f0e9b7d4a12").await;
    assert!(
        next.succeeded(),
        "the lock was released: {:?}\n{}",
        next,
        host.logs()
    );
    assert_eq!(next.tasks_started(), 1);
    assert_eq!(aws.task_count(), 2);
    assert!(aws.overlapping_tasks().is_empty());
}
