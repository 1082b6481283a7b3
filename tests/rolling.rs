//! Whole-system tests of SPEC §4b: after the migration the built binary
//! rolls the services of `deploy` (one `UpdateService` each per action run)
//! and follows each new deployment by its id through continuation tokens,
//! against local-aws's services with scripted rollouts (completed, FAILED,
//! rolled back by the circuit breaker). Each test asserts what the
//! pipeline saw and what ECS was asked.

mod action;

use action::{Run, bootstrap, drive};
use local_aws::{ActionStatus, FunctionHost, LocalAws, Scenario};
use serde_json::{Value, json};

const NEW_WEB: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:2";

/// The migration `app-migrate:3` and services `web` (web:7, 4 tasks) and
/// `worker` (worker:4, 2 tasks), each with the rollouts given; `deploy`
/// rolls `services`.
fn scenario(services: &[&str], web: Value, worker: Value, extra: Value) -> Scenario {
    let mut scenario = json!({
        "pipeline": {"name": "app-pipeline", "stage": "Deploy", "action": "MigrateAndRoll",
                     "executionId": "5e2a0c55-2222-4c57-a3a8-2f0e9b7d4a11"},
        "userParameters": {
            "deployment": "#{codepipeline.PipelineExecutionId}",
            "taskDefinition": "app-migrate",
            "network": {"fromService": "web"},
            "waitSeconds": 0,
            "deploy": {"services": services, "timeoutSeconds": 1800}
        },
        "environment": {"MIGRATE_ONCE_CLUSTER": "app"},
        "clusters": ["app"],
        "taskDefinitions": [
            {"family": "app-migrate", "revision": 3,
             "containers": [{"name": "app", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1"}]},
            {"family": "web", "revision": 7,
             "containers": [{"name": "web", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1"},
                            {"name": "envoy", "image": "envoy:1", "essential": false}]},
            {"family": "worker", "revision": 4,
             "containers": [{"name": "worker", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/worker:1"}]}
        ],
        "services": [
            {"name": "web", "cluster": "app", "launchType": "FARGATE", "subnets": ["subnet-0a1b2c3d"],
             "securityGroups": ["sg-0123456789abcdef0"], "taskDefinition": "web:7", "desiredCount": 4,
             "rollouts": web},
            {"name": "worker", "cluster": "app", "launchType": "FARGATE", "subnets": ["subnet-0a1b2c3d"],
             "taskDefinition": "worker:4", "desiredCount": 2, "rollouts": worker}
        ],
        "tasks": [{"timeline": ["PENDING", "RUNNING"]}]
    });
    for (k, v) in extra.as_object().unwrap() {
        scenario[k] = v.clone();
    }
    Scenario::from_json(&scenario.to_string()).unwrap()
}

impl Run {
    /// UpdateService requests that reached ECS, per service.
    fn updates(&self, service: &str) -> Vec<Value> {
        self.aws
            .calls_of("UpdateService")
            .into_iter()
            .filter(|c| c.status == 200 && c.request["service"] == service)
            .map(|c| c.request.clone())
            .collect()
    }

    fn assert_failed_naming(&self, words: &[&str]) {
        assert_eq!(
            self.result.status,
            ActionStatus::Failed,
            "{}",
            self.explain()
        );
        assert_eq!(
            self.result.failure_type.as_deref(),
            Some("JobFailed"),
            "{}",
            self.explain()
        );
        for word in words {
            assert!(
                self.message().contains(word),
                "{word:?} not in {:?}",
                self.message()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_that_completes_reports_both_phases_and_the_deployment() {
    let definitions = json!([{"name": "web", "imageUri": NEW_WEB}]).to_string();
    let run = Run::start(scenario(
        &["web"],
        json!([{"outcome": "completed", "steps": 3}]),
        json!([]),
        json!({"artifacts": [{"name": "BuildOutput", "files": {"imagedefinitions.json": definitions}}],
               "userParameters": {
                   "deployment": "#{codepipeline.PipelineExecutionId}",
                   "taskDefinition": "app-migrate", "network": {"fromService": "web"},
                   "images": {"from": "web"}, "waitSeconds": 0,
                   "deploy": {"services": ["web"], "timeoutSeconds": 1800}}}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    let updates = run.updates("web");
    assert_eq!(updates.len(), 1, "{}", run.explain());
    // web:7 with web's new image, the sidecar kept: a new revision of web.
    let web = run.aws.revisions("web");
    let new = web.iter().find(|r| r.registered).expect("web registered");
    assert_eq!(new.images["web"], NEW_WEB);
    assert_eq!(new.images["envoy"], "envoy:1");
    assert_eq!(updates[0]["taskDefinition"], new.arn.as_str());
    // The migration ran the new image too (its own revision).
    assert_eq!(run.aws.tasks_run()[0].images["app"], NEW_WEB);
    let id = run.output("ServiceDeployment_web").unwrap_or_default();
    assert!(id.starts_with("ecs-svc/"), "{id}");
    assert!(run.output("TaskArn").is_some(), "migration outputs kept");
    let percents: Vec<i64> = run
        .result
        .reports
        .iter()
        .filter_map(|r| r.percent_complete)
        .collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert!(
        percents.iter().any(|p| *p < 50) && percents.iter().any(|p| *p >= 50),
        "{percents:?}"
    );
    let summaries: Vec<String> = run
        .result
        .reports
        .iter()
        .filter_map(|r| r.summary.clone())
        .collect();
    assert!(
        summaries.iter().any(
            |s| s.starts_with("Rolling web: ") && s.contains("/4 running (deployment ecs-svc/")
        ),
        "{summaries:?}"
    );
    assert!(
        summaries.last().unwrap().contains("then rolled web"),
        "{summaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deployment_fails_the_action_naming_service_reason_and_stopped_tasks() {
    let run = Run::start(scenario(
        &["web"],
        json!([{"outcome": "failed", "steps": 2, "reason": "ECS deployment circuit breaker: tasks failed to start.",
                "stoppedTaskReasons": ["Task failed ELB health checks in (target-group web-tg)"]}]),
        json!([]),
        json!({}),
    ))
    .await;
    run.assert_failed_naming(&["`web`", "FAILED", "circuit breaker", "ELB health checks"]);
    assert_eq!(run.aws.task_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_breaker_rollback_is_reported_on_the_first_look_after_it() {
    let steps = 2;
    let run = Run::start(scenario(
        &["web"],
        json!([{"outcome": "rolledBack", "steps": steps,
                "stoppedTaskReasons": ["CannotPullContainerError: pull image manifest has been retried 5 time(s)"]}]),
        json!([]),
        json!({}),
    ))
    .await;
    run.assert_failed_naming(&["`web`", "rolled back", "CannotPullContainerError"]);
    // Observations of web after its update: the rollout ends at `steps`;
    // the report follows that very look, not the timeout.
    let update = run
        .aws
        .calls()
        .iter()
        .position(|c| c.operation == "UpdateService")
        .expect("updated");
    let looks = run.aws.calls()[update..]
        .iter()
        .filter(|c| c.operation == "DescribeServices")
        .count();
    assert!(
        looks <= steps as usize + 1,
        "{looks} looks\n{}",
        run.explain()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_past_its_timeout_fails_as_not_stable() {
    let run = Run::start(scenario(
        &["web"],
        json!([{"outcome": "completed", "steps": 50, "createdSecondsAgo": 1900}]),
        json!([]),
        json!({}),
    ))
    .await;
    run.assert_failed_naming(&["`web`", "did not become stable"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_services_the_failing_second_is_named() {
    let run = Run::start(scenario(
        &["web", "worker"],
        json!([{"outcome": "completed", "steps": 1}]),
        json!([{"outcome": "failed", "steps": 3, "reason": "tasks failed to start"}]),
        json!({}),
    ))
    .await;
    run.assert_failed_naming(&["`worker`", "tasks failed to start"]);
    assert_eq!(run.updates("web").len(), 1);
    assert_eq!(run.updates("worker").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_a_crash_right_after_update_service_start_one_deployment_per_service() {
    let run = Run::start(scenario(
        &["web", "worker"],
        json!([{"outcome": "completed", "steps": 2}]),
        json!([{"outcome": "completed", "steps": 2}]),
        json!({"faults": [{"operation": "UpdateService", "calls": [1], "fault": "crash"}],
               "duplicateDeliveries": [{"job": 1, "concurrent": true}, {"job": 3}, {"job": 4, "concurrent": true}]}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    assert!(run.host.cold_starts() >= 2, "the crash happened");
    assert_eq!(run.updates("web").len(), 1, "{}", run.explain());
    assert_eq!(run.updates("worker").len(), 1, "{}", run.explain());
    assert_eq!(run.aws.task_count(), 1);
    assert!(
        run.result
            .output_variables
            .contains_key("ServiceDeployment_worker")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_images_the_services_are_forced_to_a_new_deployment() {
    let run = Run::start(scenario(&["web"], json!([]), json!([]), json!({}))).await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    let updates = run.updates("web");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["forceNewDeployment"], true);
    assert!(
        updates[0].get("taskDefinition").is_none_or(Value::is_null),
        "{:?}",
        updates[0]
    );
    assert!(run.aws.revisions("web").iter().all(|r| !r.registered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_retry_after_a_failed_roll_rolls_again_without_migrating_again() {
    let scenario = scenario(
        &["web"],
        json!([{"outcome": "failed", "steps": 1}, {"outcome": "completed", "steps": 1}]),
        json!([]),
        json!({}),
    );
    let aws = LocalAws::start(scenario).await.unwrap();
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let first = drive(&aws, &host).await;
    assert_eq!(
        first.status,
        ActionStatus::Failed,
        "{first:?}\n{}",
        host.logs()
    );
    let retry = drive(&aws, &host).await;
    let run = Run {
        aws,
        host,
        result: retry,
    };
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    assert_eq!(run.aws.task_count(), 1, "migrated once");
    assert_eq!(run.updates("web").len(), 2, "rolled twice");
    let last = run
        .result
        .reports
        .last()
        .and_then(|r| r.summary.clone())
        .unwrap_or_default();
    assert!(last.contains("Already applied"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_was_lost_is_found_by_looking_never_sent_again() {
    // web is updated; worker's UpdateService takes effect but its answer is
    // lost (sent once, no SDK retry): the roll goes on without worker's id,
    // and the next look finds worker's deployment since its claim.
    let run = Run::start(scenario(
        &["web", "worker"],
        json!([{"outcome": "completed", "steps": 2}]),
        json!([{"outcome": "completed", "steps": 2}]),
        json!({"faults": [{"operation": "UpdateService", "calls": [2], "fault": "lostAnswer"}]}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    assert_eq!(
        run.aws.calls_of("UpdateService").len(),
        2,
        "{}",
        run.explain()
    );
    let started = run
        .result
        .reports
        .iter()
        .filter_map(|r| r.summary.as_deref())
        .find(|s| s.starts_with("Migration done; rolling web (ecs-svc/"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        started.contains("web (ecs-svc/") && started.ends_with(", worker"),
        "worker followed without its id until ECS shows it: {started}\n{}",
        run.explain()
    );
    for service in ["web", "worker"] {
        assert!(
            run.result.output_variables[&format!("ServiceDeployment_{service}")]
                .starts_with("ecs-svc/"),
            "{}",
            run.explain()
        );
    }
}

// --- The roll tells the truth: what ECS says decides, at the pace of the
// migration's watch, and nothing is updated twice. -------------------------

const CANNOT_PULL: &str =
    "CannotPullContainerError: pull image manifest has been retried 5 time(s)";

impl Run {
    /// When the first UpdateService reached ECS (control-plane time).
    fn updated_at(&self) -> std::time::Duration {
        self.aws
            .calls_of("UpdateService")
            .first()
            .map(|c| c.at)
            .unwrap_or_else(|| panic!("no UpdateService\n{}", self.explain()))
    }

    /// DescribeServices calls at or after `at`: the roll's looks.
    fn looks_since(&self, at: std::time::Duration) -> usize {
        self.aws
            .calls_of("DescribeServices")
            .iter()
            .filter(|c| c.at >= at)
            .count()
    }

    /// Reports of the action's jobs at or after `at`.
    fn reports_since(&self, at: std::time::Duration) -> usize {
        self.result.reports.iter().filter(|r| r.at >= at).count()
    }

    /// When the action's last report arrived.
    fn ended_at(&self) -> std::time::Duration {
        self.result.reports.last().map(|r| r.at).unwrap_or_default()
    }

    /// The distinct ECS deployment ids the failure message names.
    fn deployments_named(&self) -> std::collections::BTreeSet<&str> {
        self.message()
            .match_indices("ecs-svc/")
            .map(|(i, _)| &self.message()[i..i + 27])
            .collect()
    }

    fn summaries(&self) -> Vec<String> {
        self.result
            .reports
            .iter()
            .filter_map(|r| r.summary.clone())
            .collect()
    }
}

/// The scenario's `userParameters` for `services`, with `waitSeconds` and
/// `deploy.timeoutSeconds`.
fn user_parameters(services: &[&str], wait_seconds: u64, timeout: u64) -> Value {
    json!({"deployment": "#{codepipeline.PipelineExecutionId}", "taskDefinition": "app-migrate",
           "network": {"fromService": "web"}, "waitSeconds": wait_seconds,
           "deploy": {"services": services, "timeoutSeconds": timeout}})
}

/// A rollout the circuit breaker rolls back `after_millis` after
/// UpdateService, in one go: by the next look ours has left
/// `deployments[]` and the previous deployment is `PRIMARY` and `COMPLETED`
/// again, with the service events saying so.
fn fast_rollback(after_millis: u64) -> Value {
    json!({"outcome": "rolledBack", "steps": 1, "stepMillis": after_millis, "rollbackSteps": 0,
           "stoppedTaskReasons": [CANNOT_PULL]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_over_before_the_first_look_fails_that_look_and_a_stage_retry_rolls_again() {
    let scenario = scenario(
        &["web"],
        json!([fast_rollback(1000), {"outcome": "completed", "steps": 1}]),
        json!([]),
        json!({"timing": {"continuationDelayMillis": 1500}}),
    );
    let aws = LocalAws::start(scenario).await.unwrap();
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let first = drive(&aws, &host).await;
    let run = Run {
        aws,
        host,
        result: first,
    };
    run.assert_failed_naming(&[
        "`web`",
        "rolled back",
        "rolling back to deployment ecs-svc/",
        "deployment failed: tasks failed to start",
        CANNOT_PULL,
    ]);
    assert!(
        run.deployments_named().len() >= 2,
        "ours and the one ECS went back to: {}",
        run.message()
    );
    let update = run.updated_at();
    assert_eq!(
        run.looks_since(update),
        1,
        "decided on the first look\n{}",
        run.explain()
    );
    assert!(
        run.summaries()
            .iter()
            .all(|s| !s.contains("waiting for ECS to list")),
        "{:?}",
        run.summaries()
    );
    // A stage retry is a new run: it rolls again, in its window.
    let retry = drive(&run.aws, &run.host).await;
    assert_eq!(
        retry.status,
        ActionStatus::Succeeded,
        "{retry:?}\n{}",
        run.host.logs()
    );
    assert_eq!(run.updates("web").len(), 2, "rolled twice");
    assert_eq!(run.aws.task_count(), 1, "migrated once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_seen_rolling_then_gone_is_reported_within_two_looks() {
    let run = Run::start(scenario(
        &["web"],
        json!([fast_rollback(1500)]),
        json!([]),
        json!({"userParameters": user_parameters(&["web"], 3, 1800)}),
    ))
    .await;
    run.assert_failed_naming(&["`web`", "rolled back", CANNOT_PULL]);
    assert!(run.deployments_named().len() >= 2, "{}", run.message());
    let rolled_back = run.updated_at() + std::time::Duration::from_millis(1500);
    let looks = run.looks_since(rolled_back);
    assert!(
        (1..=2).contains(&looks),
        "{looks} looks after ECS rolled back\n{}",
        run.explain()
    );
    // It was seen rolling first (the looks within waitSeconds, not one
    // per continuation), and reported within waitSeconds of the rollback.
    assert!(run.looks_since(run.updated_at()) >= 2, "{}", run.explain());
    let late = run.ended_at().saturating_sub(rolled_back);
    assert!(
        late.as_secs_f64() < 3.0 + 1.5,
        "reported {late:?} after the rollback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_roll_fails_within_wait_seconds_of_its_timeout() {
    // worker (2 tasks) sticks at 1/2 running; ECS dates its deployment 57 s
    // back, so the 60 s timeout (counted from ECS's `createdAt`) runs out
    // 3 s after UpdateService.
    let user = user_parameters(&["worker"], 2, 60);
    let run = Run::start(scenario(
        &["worker"],
        json!([]),
        json!([{"outcome": "stuck", "steps": 1, "createdSecondsAgo": 57}]),
        json!({"userParameters": user}),
    ))
    .await;
    run.assert_failed_naming(&[
        "`worker`",
        "did not become stable in 1m00s",
        "1/2 tasks running",
    ]);
    let update = run.updated_at();
    let after = run.ended_at().saturating_sub(update).as_secs_f64();
    assert!(
        (2.5..3.0 + 2.0 + 1.0).contains(&after),
        "reported {after:.1}s after UpdateService (timeout at 3 s, waitSeconds 2)\n{}",
        run.explain()
    );
    // Looks paced by the wait: about one a second at most, not hundreds.
    let looks = run.looks_since(update);
    assert!(
        looks <= 8,
        "{looks} looks in {after:.1}s\n{}",
        run.explain()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roll_waits_between_looks_as_the_migration_does() {
    let run = Run::start(scenario(
        &["web"],
        json!([{"outcome": "completed", "steps": 4, "stepMillis": 1000}]),
        json!([]),
        json!({"userParameters": user_parameters(&["web"], 2, 1800)}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    let update = run.updated_at();
    let seconds = run.ended_at().saturating_sub(update).as_secs_f64();
    let looks = run.looks_since(update);
    let reports = run.reports_since(update);
    // 4 s of rolling: looks 1, 2, 4, 8… s apart within an invocation of
    // waitSeconds 2 (at most ~3 per invocation), one report per invocation.
    assert!(
        looks as f64 <= 2.0 * seconds + 3.0,
        "{looks} DescribeServices in {seconds:.1}s\n{}",
        run.explain()
    );
    assert!(
        reports as f64 <= seconds / 2.0 + 3.0,
        "{reports} reports in {seconds:.1}s\n{}",
        run.explain()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_update_answer_then_a_fast_rollback_fails_at_once_and_updates_nothing_again() {
    // web's UpdateService takes effect but its answer is lost; the circuit
    // breaker rolls ours back before anyone looks. The next look finds no
    // deployment since the claim in `deployments[]`, but the service's
    // events and service deployment tell what happened.
    let run = Run::start(scenario(
        &["web"],
        json!([fast_rollback(500)]),
        json!([]),
        json!({"faults": [{"operation": "UpdateService", "calls": [1], "fault": "lostAnswer"}],
               "timing": {"continuationDelayMillis": 1500}}),
    ))
    .await;
    run.assert_failed_naming(&["`web`", "rolled back", CANNOT_PULL]);
    assert_eq!(
        run.aws.calls_of("UpdateService").len(),
        1,
        "sent once, ever\n{}",
        run.explain()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_copy_of_the_first_job_after_a_failed_roll_only_re_reports() {
    // The circuit breaker rolls web back on the first look; one look later
    // ours has left `deployments[]`.
    let run = Run::start(scenario(
        &["web"],
        json!([{"outcome": "rolledBack", "steps": 1}, {"outcome": "completed", "steps": 1}]),
        json!([]),
        json!({}),
    ))
    .await;
    run.assert_failed_naming(&["`web`", "rolled back"]);
    // Lambda delivers the first job again, minutes later: the roll's claim
    // is old by then (its time is set back here, as if it were).
    let claim = run
        .aws
        .parameters()
        .into_iter()
        .find(|p| p.name.contains("/roll/"))
        .expect("the roll's claim");
    let (at, who) = claim.value.split_once(' ').expect("time, then whose");
    let backdated = at.parse::<u64>().expect("claim time") - 600;
    run.aws
        .put_parameter(&claim.name, &format!("{backdated} {who}"));
    let execution = run.aws.scenario().execution_id();
    let first_job = run.result.jobs[0].clone();
    let user = run.aws.scenario().user_parameters.resolved(&execution);
    let event = json!({"CodePipeline.job": {"id": first_job, "accountId": "123456789012", "data": {
        "actionConfiguration": {"configuration": {"FunctionName": run.aws.scenario().function.name,
                                                  "UserParameters": user}},
        "inputArtifacts": [], "outputArtifacts": []}}});
    let late = run.host.invoke_async(&event).wait().await;
    assert!(late.succeeded(), "{late:?}\n{}", run.host.logs());
    assert_eq!(
        run.aws.calls_of("UpdateService").len(),
        1,
        "the rejected revision is not rolled again\n{}",
        run.explain()
    );
    assert_eq!(run.aws.task_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roll_scenario_files_end_as_they_say() {
    let file = |name: &str| {
        Scenario::from_file(format!(
            "{}/tests/scenarios/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let fast = Run::start(file("roll-rolled-back-fast")).await;
    fast.assert_failed_naming(&["`web`", "rolled back", CANNOT_PULL]);
    let stuck = Run::start(file("roll-stuck")).await;
    stuck.assert_failed_naming(&["`worker`", "did not become stable in 1m00s", "1/2"]);
    let after = stuck.ended_at().saturating_sub(stuck.updated_at());
    assert!(after.as_secs_f64() < 5.0 + 5.0 + 1.0, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_job_after_its_run_ended_updates_nothing() {
    // The job that would make the first UpdateService crashes (the second
    // DescribeServices; the first is the migration's `fromService`) and is
    // never delivered again: the action run ends without a report. Lambda
    // then delivers a copy of that job, later than CodePipeline's job
    // timeout (its token's time is set back here, as if it were).
    let run = Run::start(scenario(
        &["web"],
        json!([{"outcome": "completed", "steps": 1}]),
        json!([]),
        json!({"faults": [{"operation": "DescribeServices", "calls": [2], "fault": "crash"}],
               "timing": {"maxRedeliveries": 0}}),
    ))
    .await;
    assert_ne!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    assert!(
        run.aws.calls_of("UpdateService").is_empty(),
        "{}",
        run.explain()
    );
    let crashed = run.result.jobs.last().expect("jobs").clone();
    let token = run
        .result
        .reports
        .iter()
        .rev()
        .find_map(|r| r.continuation_token.clone())
        .expect("the crashed job's token");
    let mut token: Value = serde_json::from_str(&token).unwrap();
    if token["p"] == "roll" {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        token["ia"] = json!(now - 25 * 60);
    }
    let execution = run.aws.scenario().execution_id();
    let user = run.aws.scenario().user_parameters.resolved(&execution);
    let event = json!({"CodePipeline.job": {"id": crashed, "accountId": "123456789012", "data": {
        "actionConfiguration": {"configuration": {"FunctionName": run.aws.scenario().function.name,
                                                  "UserParameters": user}},
        "inputArtifacts": [], "outputArtifacts": [], "continuationToken": token.to_string()}}});
    let late = run.host.invoke_async(&event).wait().await;
    assert!(late.succeeded(), "{late:?}\n{}", run.host.logs());
    assert!(
        run.aws.calls_of("UpdateService").is_empty(),
        "a copy after the run ended rolls nothing\n{}",
        run.explain()
    );
}
