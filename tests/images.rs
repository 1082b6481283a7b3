//! Whole-system tests of SPEC §4a: the migration runs the images the
//! pipeline is deploying. The built binary reads the action's input
//! artifact from the local artifact store (S3 over REST, SigV4 with the
//! job's artifact credentials, KMS-encrypted), registers one revision per
//! deployment and image set, and RunTask runs it. Each test asserts what
//! the pipeline saw and what ECS ran (`tasks_run`, `revisions`).

mod action;

use action::{Run, bootstrap, drive};
use local_aws::{ActionStatus, FunctionHost, LocalAws, Scenario};
use serde_json::{Value, json};

const FAMILY: &str = "app-migrate";
const OLD_APP: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1";
const NEW_APP: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:2";
const OLD_WORKER: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/worker:1";
const NEW_WORKER: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/worker:2";
const SIDECAR: &str = "public.ecr.aws/datadog/agent:7";

/// A pipeline whose migration task definition runs `migrate` (decisive),
/// `worker` and a sidecar, with the given input artifacts and extra
/// UserParameters / scenario fields.
fn scenario(artifacts: Value, user: Value, extra: Value) -> Scenario {
    let mut user_parameters = json!({
        "deployment": "#{codepipeline.PipelineExecutionId}",
        "taskDefinition": FAMILY,
        "container": "migrate",
        "network": {"subnets": ["subnet-0a1b2c3d"], "securityGroups": ["sg-0123456789abcdef0"]},
        "launchType": "FARGATE",
        "waitSeconds": 0
    });
    for (k, v) in user.as_object().unwrap() {
        user_parameters[k] = v.clone();
    }
    let mut scenario = json!({
        "pipeline": {"name": "app-pipeline", "stage": "Deploy", "action": "Migrate",
                     "executionId": "7d1e0c55-1111-4c57-a3a8-2f0e9b7d4a11"},
        "userParameters": user_parameters,
        "environment": {"MIGRATE_ONCE_CLUSTER": "app"},
        "clusters": ["app"],
        "taskDefinitions": [{
            "family": FAMILY, "revision": 3,
            "taskRoleArn": "arn:aws:iam::123456789012:role/app-task",
            "executionRoleArn": "arn:aws:iam::123456789012:role/app-task-execution",
            "tags": {"team": "payments"},
            "containers": [
                {"name": "migrate", "image": OLD_APP, "essential": true,
                 "logGroup": "/ecs/app-migrate", "logStreamPrefix": "migrate"},
                {"name": "worker", "image": OLD_WORKER, "essential": false},
                {"name": "datadog-agent", "image": SIDECAR, "essential": false}
            ]
        }],
        "artifacts": artifacts,
        "tasks": [{"timeline": ["PENDING", "RUNNING"], "exitCodes": {"migrate": 0}}]
    });
    for (k, v) in extra.as_object().unwrap() {
        scenario[k] = v.clone();
    }
    Scenario::from_json(&scenario.to_string()).unwrap()
}

fn definitions(entries: &[(&str, &str)]) -> String {
    let list: Vec<Value> = entries
        .iter()
        .map(|(name, uri)| json!({"name": name, "imageUri": uri}))
        .collect();
    Value::Array(list).to_string()
}

impl Run {
    fn registered(&self) -> Vec<local_aws::ecs::Revision> {
        self.aws
            .revisions(FAMILY)
            .into_iter()
            .filter(|r| r.registered)
            .collect()
    }

    /// The pipeline failed with a ConfigurationError containing every
    /// `words`, and nothing was registered, reset or run.
    fn assert_refused(&self, words: &[&str]) {
        assert_eq!(
            self.result.status,
            ActionStatus::Failed,
            "{}",
            self.explain()
        );
        assert_eq!(
            self.result.failure_type.as_deref(),
            Some("ConfigurationError"),
            "{}",
            self.explain()
        );
        let message = self.message();
        for word in words {
            assert!(message.contains(word), "{word:?} not in {message:?}");
        }
        assert!(self.registered().is_empty(), "{}", self.explain());
        assert_eq!(self.aws.task_count(), 0, "{}", self.explain());
        assert!(self.aws.calls_of("RegisterTaskDefinition").is_empty());
    }

    fn assert_no_secret(&self) {
        let logs = self.host.logs();
        for secret in [
            local_aws::pipeline_driver::ARTIFACT_SECRET_ACCESS_KEY,
            local_aws::pipeline_driver::ARTIFACT_SESSION_TOKEN,
        ] {
            assert!(!logs.contains(secret), "the function logged {secret}");
            for report in &self.result.reports {
                let text = format!("{:?} {:?}", report.summary, report.failure_message);
                assert!(!text.contains(secret), "reported {secret}: {text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_definitions_replace_every_named_container_and_from_names_the_decisive_one() {
    // The build names its containers `web` and `worker`; the migration's
    // container is `migrate` and gets web's image through `from`.
    let file = definitions(&[("web", NEW_APP), ("worker", NEW_WORKER), ("other", "x:9")]);
    let run = Run::start(scenario(
        json!([{"name": "SourceOutput", "files": {"README.md": "app"}},
               {"name": "BuildOutput", "files": {"imagedefinitions.json": file}}]),
        json!({"images": {"from": "web"}}),
        json!({}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    let registered = run.registered();
    assert_eq!(registered.len(), 1, "{}", run.explain());
    let revision = &registered[0];
    assert_eq!(revision.images["migrate"], NEW_APP);
    assert_eq!(revision.images["worker"], NEW_WORKER);
    assert_eq!(revision.images["datadog-agent"], SIDECAR, "not named: kept");
    assert_eq!(revision.tags["team"], "payments", "tags carried over");
    assert_eq!(
        revision.tags["migrate-once:deployment"],
        run.aws.scenario().execution_id()
    );
    let ran = run.aws.tasks_run();
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].task_definition_arn, revision.arn, "RunTask ran it");
    assert_eq!(ran[0].images["migrate"], NEW_APP);
    assert_eq!(run.output("TaskDefinitionArn"), Some(revision.arn.as_str()));
    assert_eq!(run.output("Image"), Some(NEW_APP));
    let summary = run.result.reports.last().unwrap().summary.clone().unwrap();
    assert!(summary.contains(NEW_APP), "{summary}");
    // The artifact was read with the job's credentials only.
    for call in run.aws.calls_of("GetObject") {
        assert_eq!(call.status, 200, "{call}");
        assert_eq!(
            call.request["accessKeyId"].as_str(),
            Some(local_aws::pipeline_driver::ARTIFACT_ACCESS_KEY_ID)
        );
    }
    run.assert_no_secret();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_detail_with_a_digest_runs_the_pinned_image() {
    let digest = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";
    let detail = json!({"ImageURI": NEW_APP, "ImageDigest": digest}).to_string();
    let run = Run::start(scenario(
        json!([{"name": "BuildOutput", "files": {"imageDetail.json": detail}}]),
        json!({}),
        json!({}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    let pinned = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{digest}");
    let ran = run.aws.tasks_run();
    assert_eq!(ran[0].images["migrate"], pinned);
    assert_eq!(
        ran[0].images["worker"], OLD_WORKER,
        "imageDetail: decisive only"
    );
    assert_eq!(run.output("Image"), Some(pinned.as_str()));
    let summary = run.result.reports.last().unwrap().summary.clone().unwrap();
    assert!(
        summary.contains(digest),
        "the summary names the digest: {summary}"
    );
    assert_eq!(run.registered().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_false_runs_the_task_definition_as_it_is() {
    let run = Run::start(scenario(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": definitions(&[("migrate", NEW_APP)])}}]),
        json!({"images": false}),
        json!({}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    assert!(run.registered().is_empty());
    assert!(run.aws.calls_of("GetObject").is_empty(), "not even read");
    let ran = run.aws.tasks_run();
    assert!(
        ran[0]
            .task_definition_arn
            .ends_with("task-definition/app-migrate:3")
    );
    assert_eq!(ran[0].images["migrate"], OLD_APP);
    assert_eq!(run.output("Image"), Some(OLD_APP));
    assert_eq!(
        run.output("TaskDefinitionArn"),
        Some(ran[0].task_definition_arn.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_without_an_image_file_runs_as_it_is_unless_images_asks_for_one() {
    let artifacts = json!([{"name": "BuildOutput", "files": {"README.md": "no images"}}]);
    let auto = Run::start(scenario(artifacts.clone(), json!({}), json!({}))).await;
    assert_eq!(
        auto.result.status,
        ActionStatus::Succeeded,
        "{}",
        auto.explain()
    );
    assert!(auto.registered().is_empty());
    assert_eq!(auto.aws.tasks_run()[0].images["migrate"], OLD_APP);

    let asked = Run::start(scenario(
        artifacts,
        json!({"images": {"artifact": "BuildOutput"}}),
        json!({}),
    ))
    .await;
    asked.assert_refused(&["BuildOutput", "imagedefinitions.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_zip_is_a_configuration_error_naming_the_artifact() {
    let run = Run::start(scenario(
        json!([{"name": "BuildOutput", "raw": "this is not a zip file"}]),
        json!({}),
        json!({}),
    ))
    .await;
    run.assert_refused(&["BuildOutput", "ZIP"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_image_file_is_a_configuration_error_naming_artifact_and_file() {
    let run = Run::start(scenario(
        json!([{"name": "BuildOutput",
                "files": {"imagedefinitions.json": definitions(&[("migrate", NEW_APP)])},
                "padTo": {"imagedefinitions.json": 200_000}}]),
        json!({}),
        json!({}),
    ))
    .await;
    run.assert_refused(&["BuildOutput", "imagedefinitions.json", "100 KB"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_read_is_a_permission_error_naming_s3_get_object() {
    let run = Run::start(scenario(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": definitions(&[("migrate", NEW_APP)])}}]),
        json!({}),
        json!({"faults": [{"operation": "GetObject", "calls": "all", "fault": "accessDenied"}]}),
    ))
    .await;
    assert_eq!(run.result.status, ActionStatus::Failed, "{}", run.explain());
    assert_eq!(run.result.failure_type.as_deref(), Some("PermissionError"));
    let message = run.message();
    assert!(
        message.contains("s3:GetObject") && message.contains("BuildOutput"),
        "{message}"
    );
    assert!(run.registered().is_empty());
    assert_eq!(run.aws.task_count(), 0);
    run.assert_no_secret();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_registers_one_revision() {
    let run = Run::start(scenario(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": definitions(&[("migrate", NEW_APP)])}}]),
        json!({}),
        json!({"duplicateDeliveries": [{"job": 1, "concurrent": true}, {"job": 2}]}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    assert_eq!(run.registered().len(), 1, "{}", run.explain());
    assert_eq!(run.aws.task_count(), 1);
    assert_eq!(
        run.aws.tasks_run()[0].task_definition_arn,
        run.registered()[0].arn
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_register_task_definition_reuses_the_revision() {
    let run = Run::start(scenario(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": definitions(&[("migrate", NEW_APP)])}}]),
        // A pinned revision: the family's latest (the registered one) would
        // already run the new image and need no registration.
        json!({"taskDefinition": "app-migrate:3"}),
        json!({"faults": [{"operation": "RegisterTaskDefinition", "calls": [1], "fault": "crash"}]}),
    ))
    .await;
    assert_eq!(
        run.result.status,
        ActionStatus::Succeeded,
        "{}",
        run.explain()
    );
    assert!(run.host.cold_starts() >= 2, "the crash happened");
    let registered = run.registered();
    assert_eq!(
        registered.len(),
        1,
        "found again by its tags\n{}",
        run.explain()
    );
    assert!(
        !run.aws.calls_of("ListTaskDefinitions").is_empty(),
        "the resumption looked for it\n{}",
        run.explain()
    );
    assert_eq!(run.aws.task_count(), 1);
    assert_eq!(
        run.aws.tasks_run()[0].task_definition_arn,
        registered[0].arn
    );
    assert_eq!(
        run.output("TaskDefinitionArn"),
        Some(registered[0].arn.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_retry_with_a_new_image_registers_a_new_revision_and_one_with_the_same_reuses_it() {
    let build = |image: &str| definitions(&[("migrate", image)]);
    let scenario = scenario(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": build(NEW_APP)}}]),
        json!({}),
        json!({"tasks": [
            {"timeline": ["RUNNING"], "exitCodes": {"migrate": 1}},
            {"timeline": ["RUNNING"], "exitCodes": {"migrate": 1}},
            {"timeline": ["RUNNING"], "exitCodes": {"migrate": 0}}
        ]}),
    );
    let aws = LocalAws::start(scenario).await.unwrap();
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let first = drive(&aws, &host).await;
    assert_eq!(first.status, ActionStatus::Failed, "{first:?}");
    // The same build again: the same revision.
    let same = drive(&aws, &host).await;
    assert_eq!(same.status, ActionStatus::Failed, "{same:?}");
    // A fixed build of the same execution's stage: a new revision.
    let fixed = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:3";
    aws.replace_artifact("BuildOutput", &[("imagedefinitions.json", &build(fixed))]);
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
    let registered = run.registered();
    assert_eq!(registered.len(), 2, "{}", run.explain());
    let ran = run.aws.tasks_run();
    assert_eq!(ran.len(), 3);
    assert_eq!(ran[0].task_definition_arn, registered[0].arn);
    assert_eq!(
        ran[1].task_definition_arn, registered[0].arn,
        "same images: reused"
    );
    assert_eq!(ran[2].task_definition_arn, registered[1].arn);
    assert_eq!(ran[2].images["migrate"], fixed);
    assert_eq!(run.output("Image"), Some(fixed));
    assert_eq!(run.output("Attempts"), Some("3"));
}
