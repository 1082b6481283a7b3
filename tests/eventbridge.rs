//! Whole-system tests of SPEC §6: the built `migrate-once` binary, invoked
//! asynchronously with the EventBridge events of `events/*.json` (as the
//! template's rules deliver them), against local-aws's CodePipeline / ECS /
//! SSM. Each test asserts what CodePipeline and ECS saw (accepted
//! `RetryStageExecution`s, `StopTask`s) and what SSM holds, never the order
//! of the function's calls.
//!
//! EventBridge delivers at least once, so every event here is also
//! delivered a second time: the second copy must change nothing.

use local_aws::{ActionStatus, FunctionHost, InvocationOutcome, LocalAws, PipelineDriver};
use local_aws::{AttemptResult, CallRecord, Scenario};
use serde_json::{Value, json};
use std::time::Duration;

const STATE_PARAMETER: &str = "/migrate-once/app/app-migrate";
const LOCK: &str = "/migrate-once/app/app-migrate/lock";

const ACTION_FAILED: &str = include_str!("../events/action-failed.json");
const PIPELINE_STOPPED: &str = include_str!("../events/pipeline-stopped.json");
const RERUN_REQUESTED: &str = include_str!("../events/rerun-requested.json");

/// The function under test (see `tests/system.rs`).
fn bootstrap() -> String {
    std::env::var("MIGRATE_ONCE_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrate-once").to_string())
}

/// A control plane for one scenario and the function attached to it.
struct Stage {
    aws: LocalAws,
    host: FunctionHost,
}

impl Stage {
    async fn start(scenario: &str) -> Stage {
        let path = format!(
            "{}/tests/scenarios/{scenario}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let aws = LocalAws::start_file(path).await;
        let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
        Stage { aws, host }
    }

    /// A scenario file changed by `patch` (faults, tasks) before it starts.
    async fn patched(scenario: &str, patch: impl FnOnce(&mut Value)) -> Stage {
        let path = format!(
            "{}/tests/scenarios/{scenario}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("scenario file");
        let mut json: Value = serde_json::from_str(&text).expect("scenario JSON");
        patch(&mut json);
        let scenario = Scenario::from_json(&json.to_string()).expect("scenario");
        let aws = LocalAws::start(scenario)
            .await
            .expect("local control plane");
        let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
        Stage { aws, host }
    }

    /// The claim of the rerun after attempt record `seq` failed.
    fn rerun_claim(&self, seq: u64) -> Option<String> {
        self.aws
            .parameter(&format!("{STATE_PARAMETER}/rerun/{seq:010}"))
            .map(|p| p.value)
    }

    fn execution(&self) -> String {
        self.aws.scenario().execution_id()
    }

    fn driver(&self) -> PipelineDriver {
        PipelineDriver::new(&self.aws, &self.host)
    }

    /// Lambda's async invoke, as an EventBridge target: waits until the
    /// invocation succeeded or ran out of deliveries. An EventBridge event
    /// must never end in an error the function would be retried for.
    async fn deliver(&self, event: &Value) -> String {
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            self.host.invoke_async(event).wait(),
        )
        .await
        .unwrap_or_else(|_| panic!("the invocation did not end\n{}", self.explain()));
        self.response(&outcome)
    }

    /// Lambda's async invoke with its redeliveries: the answer of the
    /// delivery that ended Ok, and how many deliveries it took.
    async fn deliver_until_ok(&self, event: &Value) -> (String, usize) {
        let outcome = tokio::time::timeout(
            Duration::from_secs(20),
            self.host.invoke_async(event).wait(),
        )
        .await
        .unwrap_or_else(|_| panic!("the invocation did not end\n{}", self.explain()));
        match outcome.attempts.last().map(|a| &a.result) {
            Some(AttemptResult::Response(body)) => (body.clone(), outcome.attempts.len()),
            _ => panic!(
                "no delivery answered Ok: {:?}\n{}",
                outcome.attempts,
                self.explain()
            ),
        }
    }

    fn response(&self, outcome: &InvocationOutcome) -> String {
        match outcome.attempts.first().map(|a| &a.result) {
            Some(AttemptResult::Response(body)) if outcome.attempts.len() == 1 => body.clone(),
            _ => panic!(
                "the function did not answer Ok on the first delivery: {:?}\n{}",
                outcome.attempts,
                self.explain()
            ),
        }
    }

    /// Whether the function logged `needle`. Its output is read from the
    /// process's pipes, which may trail the invocation's answer a little.
    async fn logged(&self, needle: &str) -> bool {
        for _ in 0..100 {
            if self.host.logs().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// `RetryStageExecution` calls CodePipeline answered (accepted or not).
    fn retry_calls(&self) -> Vec<CallRecord> {
        self.aws.calls_of("RetryStageExecution")
    }

    fn state(&self) -> Value {
        let p = self
            .aws
            .parameter(STATE_PARAMETER)
            .unwrap_or_else(|| panic!("no state parameter\n{}", self.explain()));
        serde_json::from_str(&p.value).expect("state is JSON")
    }

    /// Lock records still held (not released) by `deployment`.
    fn lock_held_by(&self, deployment: &str) -> Vec<Value> {
        self.aws
            .parameters()
            .into_iter()
            .filter(|p| p.name.starts_with(LOCK))
            .filter_map(|p| serde_json::from_str::<Value>(&p.value).ok())
            .filter(|h| h["deployment"] == deployment && h["released"] != true)
            .collect()
    }

    /// Writes SSM parameters or calls that change the world, apart from
    /// reads: what "nothing happened" must leave empty.
    fn changes(&self) -> Vec<String> {
        self.aws
            .calls()
            .into_iter()
            .filter(|c| {
                [
                    "PutParameter",
                    "DeleteParameter",
                    "DeleteParameters",
                    "RetryStageExecution",
                    "RunTask",
                    "StopTask",
                ]
                .contains(&c.operation.as_str())
            })
            .map(|c| format!("{} {}", c.operation, c.request))
            .collect()
    }

    fn explain(&self) -> String {
        let calls: Vec<String> = self
            .aws
            .calls()
            .iter()
            .map(|c| format!("{c} {}", c.request))
            .collect();
        format!(
            "calls:\n{}\nstate: {:?}\nfunction logs:\n{}",
            calls.join("\n"),
            self.aws.parameter(STATE_PARAMETER).map(|p| p.value),
            self.host.logs()
        )
    }
}

/// A fixture event, with its `detail` fields replaced.
fn event(fixture: &str, detail: &[(&str, &str)]) -> Value {
    let mut event: Value = serde_json::from_str(fixture).expect("fixture is JSON");
    for (key, value) in detail {
        event["detail"][*key] = Value::from(*value);
    }
    event
}

fn action_failed(execution: &str) -> Value {
    event(
        ACTION_FAILED,
        &[
            ("pipeline", "app-pipeline"),
            ("stage", "Migrate"),
            ("action", "RunMigration"),
            ("execution-id", execution),
        ],
    )
}

fn with_id(mut event: Value, id: &str) -> Value {
    event["id"] = Value::from(id);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_rerun_once_even_when_the_event_arrives_twice() {
    let s = Stage::start("rerun-transient").await;
    let execution = s.execution();
    let failed = s.driver().run(&execution).await;
    assert_eq!(failed.status, ActionStatus::Failed, "{}", s.explain());
    assert_eq!(failed.failure_type.as_deref(), Some("SystemUnavailable"));
    assert_eq!(s.state()["failureClass"], "transient", "{}", s.explain());

    let event = action_failed(&execution);
    let first = s.deliver(&event).await;
    let second = s.deliver(&event).await;

    let retries = s.aws.retries();
    assert_eq!(retries.len(), 1, "{}", s.explain());
    assert_eq!(retries[0].retry_mode, "FAILED_ACTIONS");
    assert_eq!(retries[0].stage, "Migrate");
    assert_eq!(retries[0].execution_id, execution);
    assert_eq!(
        s.retry_calls().len(),
        1,
        "the second delivery must not even ask\n{}",
        s.explain()
    );
    assert!(first.contains("rerun 1 of 2"), "{first}");
    assert!(second.contains("already rerun"), "{second}");
    assert!(
        s.rerun_claim(s.state()["seq"].as_u64().unwrap_or_default())
            .is_some(),
        "the rerun of the failed attempt is claimed\n{}",
        s.explain()
    );

    // CodePipeline reruns the failed action: a new job, a new attempt, and
    // the count of automatic reruns survives it.
    let rerun = s.driver().run(&execution).await;
    assert!(rerun.succeeded(), "{rerun:?}\n{}", s.explain());
    assert_eq!(rerun.tasks_started(), 1);
    assert_eq!(
        rerun.output_variables.get("Attempts").map(String::as_str),
        Some("3")
    );
    assert_eq!(s.state()["reruns"], 1);
    // A late copy of the event about the old failure changes nothing now.
    let late = s.deliver(&event).await;
    assert!(late.contains("not rerunning"), "{late}");
    assert_eq!(s.retry_calls().len(), 1, "{}", s.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_of_the_event_rerun_the_stage_once() {
    let s = Stage::start("rerun-transient").await;
    let execution = s.execution();
    let failed = s.driver().run(&execution).await;
    assert_eq!(failed.status, ActionStatus::Failed, "{}", s.explain());

    let event = action_failed(&execution);
    let (a, b) = (s.host.invoke_async(&event), s.host.invoke_async(&event));
    let (a, b) = (a.wait().await, b.wait().await);
    s.response(&a);
    s.response(&b);
    assert_eq!(s.aws.retries().len(), 1, "{}", s.explain());
    assert_eq!(s.retry_calls().len(), 1, "{}", s.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_not_rerun() {
    let s = Stage::start("exit-nonzero").await;
    let execution = s.execution();
    let failed = s.driver().run(&execution).await;
    assert_eq!(failed.failure_type.as_deref(), Some("JobFailed"));
    assert_eq!(s.state()["failureClass"], "permanent", "{}", s.explain());

    let answer = s.deliver(&action_failed(&execution)).await;
    assert!(answer.contains("permanent"), "{answer}");
    assert!(s.retry_calls().is_empty(), "{}", s.explain());
    assert_eq!(s.state()["reruns"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_reruns_stop_at_max_auto_reruns() {
    let s = Stage::start("rerun-capped").await;
    let execution = s.execution();

    let answer = s.deliver(&action_failed(&execution)).await;
    assert!(answer.contains("2 of 2 automatic reruns"), "{answer}");
    assert!(s.retry_calls().is_empty(), "{}", s.explain());
    assert_eq!(s.state()["reruns"], 2);

    // One rerun left: the next failure event is rerun, and that uses it up.
    let record = format!("{STATE_PARAMETER}/a/0000000003");
    let mut state: Value = serde_json::from_str(&s.aws.parameter(&record).expect("record").value)
        .expect("record JSON");
    state["reruns"] = Value::from(1);
    s.aws.put_parameter(&record, &state.to_string());
    let event = with_id(
        action_failed(&execution),
        "0b9f3e2a-1c4d-4e5f-a6b7-c8d9e0f1a2b3",
    );
    let answer = s.deliver(&event).await;
    assert!(answer.contains("rerun 2 of 2"), "{answer}");
    assert_eq!(s.aws.retries().len(), 1, "{}", s.explain());
    assert!(s.rerun_claim(3).is_some(), "{}", s.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_request_reruns_the_latest_failed_execution_once() {
    let s = Stage::start("rerun-request").await;
    let latest = s.execution();
    let request = event(RERUN_REQUESTED, &[]);
    let first = s.deliver(&request).await;
    let second = s.deliver(&request).await;

    let retries = s.aws.retries();
    assert_eq!(retries.len(), 1, "{}", s.explain());
    assert_eq!(retries[0].execution_id, latest);
    assert_eq!(retries[0].stage, "Migrate");
    assert_eq!(retries[0].retry_mode, "FAILED_ACTIONS");
    assert_eq!(s.retry_calls().len(), 1, "{}", s.explain());
    assert!(first.contains("reran"), "{first}");
    // The stage is being retried now: the copy finds nothing to rerun.
    assert!(second.contains("nothing to rerun"), "{second}");
    assert_eq!(
        s.state()["reruns"],
        0,
        "an operator's rerun is not an automatic one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_an_older_execution_is_declined_by_codepipeline_not_an_error() {
    let s = Stage::start("rerun-request").await;
    let old = &s.aws.scenario().pipeline.executions[0].id;
    let request = event(RERUN_REQUESTED, &[("executionId", old)]);
    let answer = s.deliver(&request).await;
    assert!(answer.contains("not the latest execution"), "{answer}");
    assert!(s.aws.retries().is_empty(), "{}", s.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_when_the_latest_execution_succeeded_finds_nothing_to_rerun() {
    let s = Stage::start("rerun-nothing-failed").await;
    let answer = s.deliver(&event(RERUN_REQUESTED, &[])).await;
    assert!(answer.contains("nothing to rerun"), "{answer}");
    assert!(answer.contains("Succeeded"), "{answer}");
    assert!(s.changes().is_empty(), "{:?}\n{}", s.changes(), s.explain());
    assert!(
        s.logged("nothing to rerun").await,
        "a log line says why\n{}",
        s.host.logs()
    );
}

/// Runs the scenario's action in the background until the migration is
/// `running`, then hands back the running action.
async fn while_running(s: &Stage) -> tokio::task::JoinHandle<local_aws::ActionResult> {
    let driver = s.driver();
    let execution = s.execution();
    let action = tokio::spawn(async move { driver.run(&execution).await });
    for _ in 0..200 {
        if s.aws
            .parameter(STATE_PARAMETER)
            .is_some_and(|p| p.value.contains("\"running\""))
        {
            return action;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the migration never ran\n{}", s.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_pipeline_stops_the_migration_once() {
    let s = Stage::start("pipeline-stop").await;
    let execution = s.execution();
    let action = while_running(&s).await;
    let task_arn = s.state()["taskArn"].as_str().expect("task ARN").to_owned();

    let stopped = event(PIPELINE_STOPPED, &[("execution-id", &execution)]);
    let first = s.deliver(&stopped).await;
    let second = s.deliver(&stopped).await;

    let stops = s.aws.calls_of("StopTask");
    assert_eq!(stops.len(), 1, "{}", s.explain());
    assert_eq!(stops[0].request["task"], task_arn.as_str());
    assert_eq!(stops[0].request["cluster"], "app");
    let reason = stops[0].request["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&execution),
        "reason names the execution: {reason}"
    );
    assert!(first.contains("stopped task"), "{first}");
    // The second copy finds the outcome recorded (or, had it come while the
    // task was stopping, the stop claimed). The outcome is recorded from
    // ECS's facts once the task has stopped (here at once: it has no
    // stopTimeout), never from intent: by the copy that saw it stopped (the
    // action may have been abandoned with its pipeline) and by the action's
    // next job alike, and the lock is given back then.
    assert!(
        second.contains("no migration of execution") || second.contains("is being stopped"),
        "{second}"
    );
    assert!(first.contains("outcome is recorded"), "{first}");
    let by_event: Vec<String> = s
        .aws
        .calls_of("PutParameter")
        .into_iter()
        .filter(|c| c.job_id.is_none() && c.ok())
        .filter_map(|c| c.request["Name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        by_event.first(),
        Some(&format!("{STATE_PARAMETER}/stop/0000000001"))
    );
    let allowed = [
        format!("{STATE_PARAMETER}/stop/0000000001"),
        STATE_PARAMETER.to_owned(),
        format!("{STATE_PARAMETER}/a/0000000001"),
        format!("{STATE_PARAMETER}/lock/0000000001"),
    ];
    assert!(
        by_event.iter().all(|name| allowed.contains(name)),
        "{by_event:?}"
    );

    // The action itself then ends failed, with nothing started again.
    let result = tokio::time::timeout(Duration::from_secs(10), action)
        .await
        .expect("the action ends")
        .expect("driver");
    assert_eq!(result.status, ActionStatus::Failed, "{}", s.explain());
    assert_eq!(s.aws.task_count(), 1);
    assert_eq!(s.state()["status"], "failed");
    // The action's next job saw the task STOPPED and gave the lock back.
    assert!(
        s.lock_held_by(&execution).is_empty(),
        "the lock is released once the task stopped\n{}",
        s.explain()
    );
    // A stopped migration is not a transient failure: no automatic rerun.
    let answer = s.deliver(&action_failed(&execution)).await;
    assert!(answer.contains("not rerunning"), "{answer}");
    assert!(s.retry_calls().is_empty(), "{}", s.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stop_on_pipeline_stop_the_migration_runs_on() {
    let s = Stage::start("pipeline-stop-ignored").await;
    let execution = s.execution();
    let action = while_running(&s).await;

    let answer = s
        .deliver(&event(PIPELINE_STOPPED, &[("execution-id", &execution)]))
        .await;
    assert!(answer.contains("stopOnPipelineStop is false"), "{answer}");
    let result = tokio::time::timeout(Duration::from_secs(10), action)
        .await
        .expect("the action ends")
        .expect("driver");
    assert!(result.succeeded(), "{result:?}\n{}", s.explain());
    assert!(s.aws.calls_of("StopTask").is_empty(), "{}", s.explain());
    assert_eq!(s.state()["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_about_another_functions_action_change_nothing() {
    let s = Stage::start("foreign-function").await;
    let execution = s.execution();
    let events = [
        action_failed(&execution),
        event(PIPELINE_STOPPED, &[("execution-id", &execution)]),
        event(RERUN_REQUESTED, &[]),
    ];
    for e in &events {
        let answer = s.deliver(e).await;
        assert!(
            answer.contains("this function"),
            "the answer says why nothing was done: {answer}"
        );
    }
    assert!(s.changes().is_empty(), "{:?}\n{}", s.changes(), s.explain());
    assert!(s.aws.calls_of("GetPipeline").len() >= 3);
}

/// The SDK's retries, tried 3 times with 1 ms backoff, and `faults`.
fn with_faults(faults: Value) -> impl FnOnce(&mut Value) {
    move |scenario: &mut Value| {
        scenario["environment"]["AWS_MAX_ATTEMPTS"] = json!("3");
        scenario["environment"]["AWS_RETRY_INITIAL_BACKOFF_MS"] = json!("1");
        scenario["faults"] = faults;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_codepipeline_did_not_answer_is_made_by_the_redelivery() {
    // RetryStageExecution answers 500 through all of the SDK's tries: the
    // first delivery ends in an error, and Lambda delivers the same event
    // (same id) again. The rerun was claimed but never made: the redelivery
    // makes it, once.
    let faults =
        json!([{"operation": "RetryStageExecution", "calls": [1, 2, 3], "fault": "http500"}]);
    let s = Stage::patched("rerun-transient", with_faults(faults)).await;
    let execution = s.execution();
    let failed = s.driver().run(&execution).await;
    assert_eq!(failed.status, ActionStatus::Failed, "{}", s.explain());

    let event = action_failed(&execution);
    let (answer, deliveries) = s.deliver_until_ok(&event).await;
    assert_eq!(deliveries, 2, "{answer}\n{}", s.explain());
    assert!(answer.contains("rerun 1 of 2"), "{answer}\n{}", s.explain());
    let retries = s.aws.retries();
    assert_eq!(retries.len(), 1, "{}", s.explain());
    assert_eq!(retries[0].execution_id, execution);

    // EventBridge's own copy of the event, later: the rerun is done.
    let copy = s.deliver(&event).await;
    assert!(copy.contains("already rerun"), "{copy}");
    assert_eq!(
        s.retry_calls().len(),
        4,
        "the copy does not ask\n{}",
        s.explain()
    );

    // The rerun counts once.
    let rerun = s.driver().run(&execution).await;
    assert!(rerun.succeeded(), "{rerun:?}\n{}", s.explain());
    assert_eq!(s.state()["reruns"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ecs_did_not_answer_is_made_by_the_redelivery() {
    // StopTask answers 503 through all of the SDK's tries; the redelivery
    // of the same event stops the task.
    let faults = json!([{"operation": "StopTask", "calls": [1, 2, 3], "fault": "http503"}]);
    let s = Stage::patched("pipeline-stop", with_faults(faults)).await;
    let execution = s.execution();
    let action = while_running(&s).await;
    let task_arn = s.state()["taskArn"].as_str().expect("task ARN").to_owned();

    let stopped = event(PIPELINE_STOPPED, &[("execution-id", &execution)]);
    let (answer, deliveries) = s.deliver_until_ok(&stopped).await;
    assert_eq!(deliveries, 2, "{answer}\n{}", s.explain());
    assert!(answer.contains("stopped task"), "{answer}\n{}", s.explain());
    let accepted: Vec<CallRecord> = s
        .aws
        .calls_of("StopTask")
        .into_iter()
        .filter(|c| c.ok())
        .collect();
    assert_eq!(accepted.len(), 1, "{}", s.explain());
    assert_eq!(accepted[0].request["task"], task_arn.as_str());

    let result = tokio::time::timeout(Duration::from_secs(10), action)
        .await
        .expect("the action ends")
        .expect("driver");
    assert_eq!(result.status, ActionStatus::Failed, "{}", s.explain());
    assert_eq!(s.state()["status"], "failed");
    assert!(s.lock_held_by(&execution).is_empty(), "{}", s.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_request_reruns_once_however_often_it_is_delivered() {
    // The request's first delivery meets a RetryStageExecution that answers
    // 500 through the SDK's tries; its redelivery reruns the stage. The
    // rerun fails again (exit 3), and then EventBridge delivers the same
    // request (same event id) once more: that must not rerun a second time.
    // A new request (a new event) does.
    let faults =
        json!([{"operation": "RetryStageExecution", "calls": [1, 2, 3], "fault": "http500"}]);
    let s = Stage::patched("rerun-request", |scenario| {
        with_faults(faults)(scenario);
        scenario["tasks"] = json!([{"timeline": ["PENDING", "RUNNING"], "exitCodes": {"app": 3}}]);
    })
    .await;
    let latest = s.execution();
    let request = event(RERUN_REQUESTED, &[]);

    let (first, deliveries) = s.deliver_until_ok(&request).await;
    assert_eq!(deliveries, 2, "{first}\n{}", s.explain());
    assert!(first.contains("reran"), "{first}\n{}", s.explain());
    assert_eq!(s.aws.retries().len(), 1, "{}", s.explain());

    // CodePipeline reruns the failed action; the migration fails again.
    let rerun = s.driver().run(&latest).await;
    assert_eq!(rerun.status, ActionStatus::Failed, "{}", s.explain());
    assert_eq!(s.aws.execution_status(&latest).as_deref(), Some("Failed"));

    let copy = s.deliver(&request).await;
    assert!(copy.contains("already"), "{copy}\n{}", s.explain());
    assert_eq!(
        s.aws.retries().len(),
        1,
        "one request, one rerun\n{}",
        s.explain()
    );

    let again = with_id(request, "5e0c1d2b-7a8f-4b3c-9d1e-2f3a4b5c6d7e");
    let answer = s.deliver(&again).await;
    assert!(answer.contains("reran"), "{answer}\n{}", s.explain());
    assert_eq!(s.aws.retries().len(), 2, "{}", s.explain());
    assert_eq!(
        s.state()["reruns"],
        0,
        "an operator's rerun is not an automatic one"
    );
}
