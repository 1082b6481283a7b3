//! SSM keeps the newest 100 versions of a parameter and deletes the oldest
//! to make room, unless the oldest carries a label: then every write is
//! refused (`ParameterMaxVersionLimitExceeded`) until a person moves the
//! label. Only a person can fix that, so the pipeline is told which
//! parameter and what to do — and nothing the migration did is lost: its
//! outcome is recorded, the lock given back, and the stage retry after the
//! fix reports it without running it again.

use std::time::Duration;

use local_aws::http_client::aws_call;
use local_aws::{ActionResult, FunctionHost, LocalAws, PipelineDriver, Scenario};
use serde_json::{Value, json};

const STATE_PARAMETER: &str = "/migrate-once/app/app-migrate";
const LOCK: &str = "/migrate-once/app/app-migrate/lock";
const FLAG: &str = "/app/db-migration-state";

/// The function under test (see `tests/system.rs`).
fn bootstrap() -> String {
    std::env::var("MIGRATE_ONCE_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrate-once").to_string())
}

/// `tests/scenarios/success.json`, changed by `patch`.
async fn control_plane(patch: impl FnOnce(&mut Value)) -> LocalAws {
    let path = format!(
        "{}/tests/scenarios/success.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut scenario: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("scenario")).expect("json");
    patch(&mut scenario);
    let scenario = Scenario::from_json(&scenario.to_string()).expect("scenario");
    LocalAws::start(scenario)
        .await
        .expect("local control plane")
}

/// Gives `name` its 100 versions of `value`, the oldest labelled, as a
/// person pinning "the version before we started" would have left it.
async fn fill_with_labelled_oldest(aws: &LocalAws, name: &str, value: &str) {
    for _ in 0..100 {
        aws.put_parameter(name, value);
    }
    label(aws, name, 1).await;
}

/// `LabelParameterVersion` of `version` with the label `pinned`.
async fn label(aws: &LocalAws, name: &str, version: i64) {
    let answer = aws_call(
        &aws.endpoint_url(),
        "AmazonSSM.LabelParameterVersion",
        &json!({"Name": name, "ParameterVersion": version, "Labels": ["pinned"]}),
    )
    .await
    .expect("LabelParameterVersion");
    assert_eq!(answer.status, 200, "{}", answer.body);
}

async fn run(aws: &LocalAws, host: &FunctionHost) -> ActionResult {
    let execution = aws.scenario().execution_id();
    tokio::time::timeout(
        Duration::from_secs(40),
        PipelineDriver::new(aws, host).run(&execution),
    )
    .await
    .unwrap_or_else(|_| panic!("the action did not end\n{}", host.logs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_parameter_ssm_will_not_version_keeps_the_outcome_and_says_what_to_do() {
    let aws = control_plane(|_| {}).await;
    let older = json!({"deployment": "older-deployment", "status": "succeeded", "attempt": 1, "exitCode": 0});
    fill_with_labelled_oldest(&aws, STATE_PARAMETER, &older.to_string()).await;
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let execution = aws.scenario().execution_id();

    let first = run(&aws, &host).await;
    let explain = || format!("{first:?}\n{}", host.logs());
    assert_eq!(
        first.failure_type.as_deref(),
        Some("ConfigurationError"),
        "{}",
        explain()
    );
    assert_eq!(aws.task_count(), 1);

    // The outcome is recorded where the product reads it, and the lock is
    // given back: another deployment of this database is not held up.
    let record: Value = serde_json::from_str(
        &aws.parameter(&format!("{STATE_PARAMETER}/a/0000000001"))
            .expect("the attempt record")
            .value,
    )
    .expect("record JSON");
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["exitCode"], 0, "{record}");
    let held: Vec<Value> = aws
        .parameters()
        .into_iter()
        .filter(|p| p.name.starts_with(LOCK))
        .filter_map(|p| serde_json::from_str::<Value>(&p.value).ok())
        .filter(|h| h["deployment"] == execution.as_str() && h["released"] != true)
        .collect();
    assert!(
        held.is_empty(),
        "the lock is still held: {held:?}\n{}",
        explain()
    );

    // The pipeline is told that the migration succeeded, what is wrong
    // and what to do.
    let message = first.message.as_deref().unwrap_or_default();
    for needed in [
        "The migration succeeded",
        STATE_PARAMETER,
        "ParameterMaxVersionLimitExceeded",
        "its oldest version has a label",
        "aws ssm unlabel-parameter-version",
        "retry the stage",
        "not run again",
    ] {
        assert!(message.contains(needed), "{needed:?} missing: {message}");
    }

    // The operator moves the label to the newest version and retries the
    // stage: the migration is reported applied, not run again.
    let newest = aws
        .parameter(STATE_PARAMETER)
        .expect("state parameter")
        .version;
    label(&aws, STATE_PARAMETER, newest).await;
    let retry = run(&aws, &host).await;
    assert!(retry.succeeded(), "{retry:?}\n{}", host.logs());
    assert_eq!(retry.tasks_started(), 0);
    assert_eq!(aws.task_count(), 1);
    assert_eq!(
        retry.output_variables.get("ExitCode").map(String::as_str),
        Some("0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_parameter_ssm_will_not_version_stops_the_start_naming_it() {
    let aws = control_plane(|scenario| {
        scenario["userParameters"]["resetParameters"] = json!([FLAG]);
    })
    .await;
    fill_with_labelled_oldest(&aws, FLAG, "1").await;
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");

    let result = run(&aws, &host).await;
    assert_eq!(
        result.failure_type.as_deref(),
        Some("ConfigurationError"),
        "{result:?}\n{}",
        host.logs()
    );
    let message = result.message.as_deref().unwrap_or_default();
    for needed in [
        &format!("SSM parameter `{FLAG}`"),
        "its oldest version has a label",
        "aws ssm unlabel-parameter-version",
    ] {
        assert!(message.contains(needed), "{needed:?} missing: {message}");
    }
    assert_eq!(aws.task_count(), 0, "nothing ran before the reset");
}
