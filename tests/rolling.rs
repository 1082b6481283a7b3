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
    // lost (sent once, no SDK retry): the next continuation keeps web's id
    // and finds worker's deployment since its claim.
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
    let busy = run
        .result
        .reports
        .iter()
        .filter_map(|r| r.summary.as_deref())
        .any(|s| s.contains("AWS is busy"));
    assert!(busy, "the lost answer was waited out\n{}", run.explain());
    for service in ["web", "worker"] {
        assert!(
            run.result.output_variables[&format!("ServiceDeployment_{service}")]
                .starts_with("ecs-svc/"),
            "{}",
            run.explain()
        );
    }
}
