//! Nothing secret in the function's log at any level: the built binary,
//! run by local-aws's function host at `AWS_LAMBDA_LOG_LEVEL=TRACE` (JSON,
//! as in Lambda) and at `RUST_LOG=trace` (text), through a failing and a
//! succeeding deployment whose job events carry `artifactCredentials` and
//! whose UserParameters carry an environment override. Neither, nor the
//! AWS credentials, nor any line the migration printed may appear in what
//! the function wrote; the pipeline's failure message still quotes the
//! migration's lines. (At TRACE `lambda_runtime` logs every raw event and
//! the SDK every request body: `src/logging.rs` is what keeps them out.)

use std::time::Duration;

use local_aws::pipeline_driver::{ARTIFACT_SECRET_ACCESS_KEY, ARTIFACT_SESSION_TOKEN};
use local_aws::{ActionResult, ActionStatus, FunctionHost, LocalAws, PipelineDriver, Scenario};
use serde_json::{Value, json};

/// The function under test, as in `tests/system.rs`.
fn bootstrap() -> String {
    std::env::var("MIGRATE_ONCE_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrate-once").to_string())
}

/// An environment override value: a secret someone put there anyway.
const OVERRIDE_SECRET: &str = "override-s3cr3t-DO-NOT-LOG-5d1c";
/// A password the migration prints as part of a connection string.
const DB_PASSWORD: &str = "s3cr3t-PASSWORD";
/// What the failing migration prints, newest last.
const MIGRATION_LINES: [&str; 3] = [
    "connecting to postgres://admin:s3cr3t-PASSWORD@db:5432/app",
    "== 20240101093000 CreateUsers: migrating",
    "PG::UndefinedTable: ERROR: relation \"users\" does not exist",
];

/// Which logging knobs the function is started with.
#[derive(Debug, Clone, Copy)]
enum Verbosity {
    /// `AWS_LAMBDA_LOG_LEVEL=TRACE`, `AWS_LAMBDA_LOG_FORMAT=JSON`: what the
    /// template's `LogLevel: TRACE` sets.
    LambdaTrace,
    /// `RUST_LOG=trace`, text format (and no Lambda level, which would win).
    RustLogTrace,
}

impl Verbosity {
    fn environment(self) -> Value {
        match self {
            Verbosity::LambdaTrace => json!({
                "AWS_LAMBDA_LOG_LEVEL": "TRACE",
                "AWS_LAMBDA_LOG_FORMAT": "JSON",
            }),
            Verbosity::RustLogTrace => json!({
                "AWS_LAMBDA_LOG_LEVEL": "",
                "AWS_LAMBDA_LOG_FORMAT": "",
                "RUST_LOG": "trace",
            }),
        }
    }
}

/// A deployment whose migration exits `exit_code` after printing
/// [`MIGRATION_LINES`], with an environment override holding [`OVERRIDE_SECRET`].
fn scenario(verbosity: Verbosity, exit_code: i32) -> Scenario {
    let mut environment = verbosity.environment();
    environment["MIGRATE_ONCE_CLUSTER"] = json!("app");
    let scenario = json!({
        "userParameters": {
            "deployment": "#{codepipeline.PipelineExecutionId}",
            "taskDefinition": "app-migrate",
            "command": ["bin/rails", "db:migrate"],
            "environment": {"DATABASE_PASSWORD": OVERRIDE_SECRET},
            "network": {"subnets": ["subnet-0a1b2c3d"], "securityGroups": ["sg-0123456789abcdef0"]},
            "waitSeconds": 0
        },
        "environment": environment,
        "clusters": ["app"],
        "taskDefinitions": [{
            "family": "app-migrate",
            "containers": [{"name": "app", "logGroup": "/ecs/app-migrate", "logStreamPrefix": "migrate"}]
        }],
        "tasks": [{
            "timeline": ["PENDING", "RUNNING"],
            "exitCodes": {"app": exit_code},
            "logLines": {"app": MIGRATION_LINES}
        }]
    });
    Scenario::from_json(&scenario.to_string()).expect("scenario")
}

/// Runs one deployment to its end; returns what the pipeline saw and
/// everything the function's processes wrote.
async fn deploy(verbosity: Verbosity, exit_code: i32) -> (ActionResult, String) {
    let aws = LocalAws::start(scenario(verbosity, exit_code))
        .await
        .expect("local-aws");
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let result = tokio::time::timeout(
        Duration::from_secs(40),
        PipelineDriver::new(&aws, &host).run_default(),
    )
    .await
    .unwrap_or_else(|_| panic!("{verbosity:?}: no end within 40 s\n{}", host.logs()));
    host.shutdown();
    (result, host.logs())
}

/// Fails naming the first secret or migration line found in `logs`.
fn assert_nothing_secret(verbosity: Verbosity, logs: &str) {
    // The function did log, at a level below INFO: the check is not vacuous.
    assert!(
        logs.contains("reporting"),
        "{verbosity:?}: no report line in the function's output:\n{logs}"
    );
    let secrets = [
        (
            "artifactCredentials secretAccessKey",
            ARTIFACT_SECRET_ACCESS_KEY,
        ),
        ("artifactCredentials sessionToken", ARTIFACT_SESSION_TOKEN),
        ("AWS secret access key", local_aws::FAKE_SECRET_ACCESS_KEY),
        ("AWS session token", local_aws::FAKE_SESSION_TOKEN),
        ("environment override value", OVERRIDE_SECRET),
        ("password the migration printed", DB_PASSWORD),
    ];
    let lines = MIGRATION_LINES.map(|line| ("a line the migration printed", line));
    for (what, secret) in secrets.iter().chain(&lines) {
        assert!(
            !logs.contains(secret),
            "{verbosity:?}: the function logged the {what} ({secret:?}):\n{logs}"
        );
    }
}

async fn nothing_secret_is_logged(verbosity: Verbosity) {
    let (failed, logs) = deploy(verbosity, 1).await;
    assert_eq!(failed.status, ActionStatus::Failed, "{failed:?}\n{logs}");
    assert_eq!(
        failed.failure_type.as_deref(),
        Some("JobFailed"),
        "{failed:?}"
    );
    let message = failed.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(&format!("Last log lines: {}.", MIGRATION_LINES.join(" | "))),
        "the pipeline should still get the migration's lines: {message}"
    );
    assert!(
        logs.contains("Last log lines: (not in the function's log"),
        "{verbosity:?}: the failure is logged, without its lines:\n{logs}"
    );
    assert_nothing_secret(verbosity, &logs);

    let (succeeded, logs) = deploy(verbosity, 0).await;
    assert!(succeeded.succeeded(), "{succeeded:?}\n{logs}");
    assert_nothing_secret(verbosity, &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_is_logged_at_lambda_trace_level() {
    nothing_secret_is_logged(Verbosity::LambdaTrace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_is_logged_with_rust_log_trace() {
    nothing_secret_is_logged(Verbosity::RustLogTrace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_values_the_migration_prints_are_not_quoted_to_the_pipeline() {
    // `environment: {"DB_PASSWORD": S}` and a migration that prints S on
    // its way to failing: the pipeline's failure message quotes its last
    // lines with S masked, in every form a line may carry it.
    const PASSWORD: &str = "pw-9f8e7d6c-SECRET+/=";
    let printed = [
        "connecting with password=pw-9f8e7d6c-SECRET+/=".to_owned(),
        "url: postgres://app:pw-9f8e7d6c-SECRET%2B%2F%3D@db:5432/app".to_owned(),
        format!("coloured: \u{1b}[31m{PASSWORD}\u{1b}[0m"),
        format!("long: {}{PASSWORD}", "x".repeat(480)),
        "FATAL: password authentication failed for user \"app\"".to_owned(),
    ];
    let scenario = json!({
        "userParameters": {
            "deployment": "#{codepipeline.PipelineExecutionId}",
            "taskDefinition": "app-migrate",
            "command": ["bin/rails", "db:migrate"],
            "environment": {"DB_PASSWORD": PASSWORD, "RAILS_ENV": "production"},
            "network": {"subnets": ["subnet-0a1b2c3d"], "securityGroups": ["sg-0123456789abcdef0"]},
            "waitSeconds": 0
        },
        "environment": {"MIGRATE_ONCE_CLUSTER": "app"},
        "clusters": ["app"],
        "taskDefinitions": [{
            "family": "app-migrate",
            "containers": [{"name": "app", "logGroup": "/ecs/app-migrate", "logStreamPrefix": "migrate"}]
        }],
        "tasks": [{
            "timeline": ["PENDING", "RUNNING"],
            "exitCodes": {"app": 1},
            "logLines": {"app": printed}
        }]
    });
    let aws = LocalAws::start(Scenario::from_json(&scenario.to_string()).expect("scenario"))
        .await
        .expect("local-aws");
    let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
    let failed = tokio::time::timeout(
        Duration::from_secs(40),
        PipelineDriver::new(&aws, &host).run_default(),
    )
    .await
    .unwrap_or_else(|_| panic!("no end within 40 s\n{}", host.logs()));
    host.shutdown();
    assert_eq!(
        failed.failure_type.as_deref(),
        Some("JobFailed"),
        "{failed:?}"
    );
    let message = failed.message.as_deref().unwrap_or_default();
    for form in [PASSWORD, "pw-9f8e7d6c-SECRET%2B%2F%3D", "pw-9f8e7d6c"] {
        assert!(
            !message.contains(form),
            "the failure message quotes the override value ({form:?}): {message}"
        );
    }
    assert!(
        message.contains(
            "connecting with password=*** | url: postgres://app:***@db:5432/app | coloured: ***"
        ),
        "the lines are still quoted, the value masked: {message}"
    );
    assert!(
        message.contains("FATAL: password authentication failed for user \"app\""),
        "{message}"
    );
}
