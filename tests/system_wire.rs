//! The local control plane speaks the wire format the real SDK clients
//! send and parse (awsJson1_1: targets, epoch timestamps, string `cpu`,
//! error codes and modelled error members), so whole-system tests exercise
//! the SDK's own serialisation, retries and error parsing. Independent of
//! the Lambda's code: only the SDK crates it links are used.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_codepipeline::types::{ExecutionDetails, FailureDetails, FailureType, StageRetryMode};
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, ContainerOverride, DesiredStatus, NetworkConfiguration, Tag, TaskOverride,
    TaskStopCode,
};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use local_aws::LocalAws;
use std::time::Duration;

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/wire.json");

async fn sdk(aws: &LocalAws) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(aws.endpoint_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            local_aws::FAKE_ACCESS_KEY_ID,
            local_aws::FAKE_SECRET_ACCESS_KEY,
            None,
            None,
            "local-aws",
        ))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .load()
        .await
}

#[tokio::test]
async fn ssm_answers_parse_in_the_sdk() {
    let aws = LocalAws::start_file(SCENARIO).await;
    let ssm = aws_sdk_ssm::Client::new(&sdk(&aws).await);

    let put = ssm
        .put_parameter()
        .name("/migrate-once/app/app-migrate")
        .value("{\"deployment\":\"d1\"}")
        .r#type(ParameterType::String)
        .overwrite(false)
        .send()
        .await
        .expect("create");
    assert_eq!(put.version(), 1);
    assert_eq!(put.tier().map(|t| t.as_str()), Some("Standard"));

    let conflict = ssm
        .put_parameter()
        .name("/migrate-once/app/app-migrate")
        .value("x")
        .r#type(ParameterType::String)
        .overwrite(false)
        .send()
        .await
        .expect_err("create-only put on an existing name");
    assert!(conflict.into_service_error().is_parameter_already_exists());

    let got = ssm
        .get_parameter()
        .name("/migrate-once/app/app-migrate")
        .send()
        .await
        .expect("get");
    let p = got.parameter().expect("parameter");
    assert_eq!(p.value(), Some("{\"deployment\":\"d1\"}"));
    assert_eq!(p.version(), 1);
    assert_eq!(p.r#type(), Some(&ParameterType::String));
    assert_eq!(p.data_type(), Some("text"));
    assert!(
        p.last_modified_date()
            .is_some_and(|d| d.secs() > 1_700_000_000)
    );
    assert!(
        p.arn()
            .is_some_and(|a| a.ends_with(":parameter/migrate-once/app/app-migrate"))
    );

    let missing = ssm
        .get_parameter()
        .name("/nope")
        .send()
        .await
        .expect_err("missing");
    assert!(missing.into_service_error().is_parameter_not_found());

    // GetParameters: the first call is throttled; the SDK retries it.
    let many = ssm
        .get_parameters()
        .names("/migrate-once/app/app-migrate")
        .names("/nope")
        .send()
        .await
        .expect("get-parameters after a throttle");
    assert_eq!(many.invalid_parameters(), ["/nope".to_string()]);
    assert_eq!(many.parameters().len(), 1);
    assert_eq!(
        aws.calls_of("GetParameters").len(),
        2,
        "throttled once, retried once"
    );

    for i in 0..12 {
        ssm.put_parameter()
            .name(format!("/migrate-once/app/reset/p{i:02}"))
            .value("0")
            .r#type(ParameterType::String)
            .send()
            .await
            .expect("seed");
    }
    let pages: Vec<_> = ssm
        .get_parameters_by_path()
        .path("/migrate-once/app")
        .recursive(true)
        .max_results(10)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .expect("paginated by-path");
    assert_eq!(pages.len(), 2);
    assert_eq!(
        pages.iter().map(|p| p.parameters().len()).sum::<usize>(),
        13
    );
    let flat = ssm
        .get_parameters_by_path()
        .path("/migrate-once/app")
        .send()
        .await
        .expect("one level");
    assert_eq!(flat.parameters().len(), 1);

    ssm.delete_parameter()
        .name("/migrate-once/app/app-migrate")
        .send()
        .await
        .expect("delete");
    let gone = ssm
        .delete_parameter()
        .name("/migrate-once/app/app-migrate")
        .send()
        .await
        .expect_err("delete missing");
    assert!(gone.into_service_error().is_parameter_not_found());

    let denied = ssm
        .delete_parameters()
        .names("/migrate-once/app/reset/p00")
        .send()
        .await
        .expect_err("access denied fault");
    let denied = denied.into_service_error();
    assert_eq!(denied.meta().code(), Some("AccessDeniedException"));
    assert!(
        denied
            .meta()
            .message()
            .unwrap_or("")
            .contains("ssm:DeleteParameters")
    );
}

#[tokio::test]
async fn ecs_answers_parse_in_the_sdk() {
    let aws = LocalAws::start_file(SCENARIO).await;
    let ecs = aws_sdk_ecs::Client::new(&sdk(&aws).await);

    let td = ecs
        .describe_task_definition()
        .task_definition("app-migrate")
        .send()
        .await
        .expect("describe td");
    let td = td.task_definition().expect("td");
    assert_eq!(td.revision(), 7);
    assert_eq!(td.cpu(), Some("256"));
    assert_eq!(
        td.task_role_arn(),
        Some("arn:aws:iam::123456789012:role/app-task")
    );
    let app = &td.container_definitions()[0];
    assert_eq!(app.essential(), Some(true));
    let options = app
        .log_configuration()
        .and_then(|l| l.options())
        .expect("awslogs options");
    assert_eq!(
        options.get("awslogs-stream-prefix").map(String::as_str),
        Some("migrate")
    );
    let unknown = ecs
        .describe_task_definition()
        .task_definition("nope")
        .send()
        .await
        .expect_err("unknown td");
    assert!(unknown.into_service_error().is_client_exception());

    let services = ecs
        .describe_services()
        .cluster("app")
        .services("app-web")
        .services("gone")
        .send()
        .await
        .expect("describe services");
    let web = &services.services()[0];
    let vpc = web
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .expect("awsvpc");
    assert_eq!(
        vpc.subnets(),
        ["subnet-a".to_string(), "subnet-b".to_string()]
    );
    assert_eq!(
        web.capacity_provider_strategy()[0].capacity_provider(),
        "FARGATE_SPOT"
    );
    assert_eq!(web.platform_version(), Some("1.4.0"));
    assert_eq!(services.failures()[0].reason(), Some("MISSING"));

    let run = |token: &'static str, command: &'static str| {
        ecs.run_task()
            .cluster("app")
            .task_definition("app-migrate:7")
            .client_token(token)
            .started_by("migrate-once")
            .tags(
                Tag::builder()
                    .key("migrate-once:deployment")
                    .value("d1")
                    .build(),
            )
            .overrides(
                TaskOverride::builder()
                    .container_overrides(
                        ContainerOverride::builder()
                            .name("app")
                            .command(command)
                            .build(),
                    )
                    .build(),
            )
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        AwsVpcConfiguration::builder()
                            .subnets("subnet-a")
                            .build()
                            .expect("vpc"),
                    )
                    .build(),
            )
            .send()
    };
    let first = run("tok-1", "migrate").await.expect("run task");
    let task = &first.tasks()[0];
    let arn = task.task_arn().expect("arn").to_string();
    assert_eq!(task.last_status(), Some("PROVISIONING"));
    assert_eq!(task.cpu(), Some("256"));
    assert!(task.created_at().is_some());
    let replay = run("tok-1", "migrate").await.expect("replay");
    assert_eq!(replay.tasks()[0].task_arn(), Some(arn.as_str()));
    let conflict = run("tok-1", "something else").await.expect_err("conflict");
    match conflict.into_service_error() {
        aws_sdk_ecs::operation::run_task::RunTaskError::ConflictException(c) => {
            assert_eq!(c.resource_ids(), std::slice::from_ref(&arn));
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }

    let describe = || {
        ecs.describe_tasks()
            .cluster("app")
            .tasks(arn.clone())
            .include(aws_sdk_ecs::types::TaskField::Tags)
            .send()
    };
    let mut statuses = Vec::new();
    let stopped = loop {
        let out = describe().await.expect("describe tasks");
        let t = out.tasks()[0].clone();
        statuses.push(t.last_status().unwrap_or_default().to_string());
        if t.last_status() == Some("STOPPED") {
            break t;
        }
        assert!(statuses.len() < 10, "never stopped: {statuses:?}");
    };
    assert_eq!(statuses, ["PENDING", "RUNNING", "STOPPED"]);
    assert_eq!(
        stopped.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited)
    );
    assert_eq!(stopped.containers()[0].exit_code(), Some(0));
    assert_eq!(
        stopped.containers()[1].exit_code(),
        None,
        "no exit code for a container missing from exitCodes"
    );
    assert_eq!(stopped.tags()[0].value(), Some("d1"));
    assert!(stopped.stopped_at().is_some() && stopped.started_at().is_some());

    let capacity = run("tok-2", "migrate").await.expect("scripted failure");
    assert!(capacity.tasks().is_empty());
    assert_eq!(capacity.failures()[0].reason(), Some("RESOURCE:MEMORY"));

    let failing = run("tok-3", "migrate").await.expect("third task");
    let failing_arn = failing.tasks()[0].task_arn().expect("arn").to_string();
    let listed = ecs
        .list_tasks()
        .cluster("app")
        .started_by("migrate-once")
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.task_arns(), std::slice::from_ref(&failing_arn));
    let stop = ecs
        .stop_task()
        .cluster("app")
        .task(failing_arn.clone())
        .reason("migrate-once: timed out after 60 s")
        .send()
        .await
        .expect("stop");
    assert_eq!(
        stop.task().and_then(|t| t.desired_status()),
        Some("STOPPED")
    );
    let after = ecs
        .describe_tasks()
        .cluster("app")
        .tasks(failing_arn)
        .tasks("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .expect("describe stopped");
    let t = &after.tasks()[0];
    assert_eq!(t.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert_eq!(
        t.stopped_reason(),
        Some("migrate-once: timed out after 60 s")
    );
    assert_eq!(t.containers()[0].exit_code(), None, "stopped before it ran");
    assert_eq!(after.failures()[0].reason(), Some("MISSING"));
    assert_eq!(aws.task_count(), 2);
}

#[tokio::test]
async fn codepipeline_answers_parse_in_the_sdk() {
    let aws = LocalAws::start_file(SCENARIO).await;
    let cp = aws_sdk_codepipeline::Client::new(&sdk(&aws).await);
    let execution = "22222222-2222-4222-8222-222222222222";
    let job = aws.create_job(execution, Some("v1.token"));

    let details = cp
        .get_job_details()
        .job_id(&job)
        .send()
        .await
        .expect("details");
    let data = details.job_details().and_then(|d| d.data()).expect("data");
    let ctx = data.pipeline_context().expect("pipeline context");
    assert_eq!(ctx.pipeline_name(), Some("app-pipeline"));
    assert_eq!(ctx.stage().and_then(|s| s.name()), Some("Migrate"));
    assert_eq!(ctx.action().and_then(|a| a.name()), Some("RunMigration"));
    assert_eq!(ctx.pipeline_execution_id(), Some(execution));
    assert_eq!(data.continuation_token(), Some("v1.token"));
    let config = data
        .action_configuration()
        .and_then(|c| c.configuration())
        .expect("config");
    assert!(
        config["UserParameters"].contains(execution),
        "variables resolved"
    );

    let too_long = cp
        .put_job_success_result()
        .job_id(&job)
        .continuation_token("t")
        .output_variables("TaskArn", "arn")
        .execution_details(
            ExecutionDetails::builder()
                .summary("s".repeat(2049))
                .build(),
        )
        .send()
        .await
        .expect_err("validation");
    let e = too_long.into_service_error();
    assert!(e.is_validation_exception());
    let message = e.meta().message().unwrap_or_default();
    assert!(
        message.contains("executionDetails.summary") && message.contains("outputVariables"),
        "{message}"
    );

    cp.put_job_success_result()
        .job_id(&job)
        .continuation_token("v1.next")
        .execution_details(
            ExecutionDetails::builder()
                .summary("Migration running for 0m04s")
                .percent_complete(10)
                .external_execution_id("arn:aws:ecs:us-east-1:123456789012:task/app/abc")
                .build(),
        )
        .send()
        .await
        .expect("report");
    let twice = cp
        .put_job_failure_result()
        .job_id(&job)
        .failure_details(
            FailureDetails::builder()
                .r#type(FailureType::JobFailed)
                .message("late")
                .build()
                .expect("details"),
        )
        .send()
        .await
        .expect_err("second report");
    assert!(twice.into_service_error().is_invalid_job_state_exception());
    let unknown = cp
        .put_job_success_result()
        .job_id("33333333-3333-4333-8333-333333333333")
        .send()
        .await
        .expect_err("unknown job");
    assert!(unknown.into_service_error().is_job_not_found_exception());
    let report = &aws.reports()[0];
    assert_eq!(report.percent_complete, Some(10));
    assert_eq!(report.continuation_token.as_deref(), Some("v1.next"));

    let pipeline = cp
        .get_pipeline()
        .name("app-pipeline")
        .send()
        .await
        .expect("pipeline");
    let stages = pipeline.pipeline().expect("declaration").stages();
    let action = &stages[1].actions()[0];
    assert_eq!(action.name(), "RunMigration");
    assert!(
        action.configuration().expect("config")["UserParameters"]
            .contains("#{codepipeline.PipelineExecutionId}")
    );
    assert!(pipeline.metadata().and_then(|m| m.created()).is_some());

    // ListPipelineExecutions: two 503s, then the SDK's third attempt works.
    let executions = cp
        .list_pipeline_executions()
        .pipeline_name("app-pipeline")
        .send()
        .await
        .expect("list after 503s");
    let summary = &executions.pipeline_execution_summaries()[0];
    assert_eq!(summary.status().map(|s| s.as_str()), Some("Failed"));
    assert!(summary.start_time().is_some());

    let retried = cp
        .retry_stage_execution()
        .pipeline_name("app-pipeline")
        .stage_name("Migrate")
        .pipeline_execution_id("11111111-1111-4111-8111-111111111111")
        .retry_mode(StageRetryMode::FailedActions)
        .send()
        .await
        .expect("retry");
    assert_eq!(
        retried.pipeline_execution_id(),
        Some("11111111-1111-4111-8111-111111111111")
    );
    let again = cp
        .retry_stage_execution()
        .pipeline_name("app-pipeline")
        .stage_name("Migrate")
        .pipeline_execution_id("11111111-1111-4111-8111-111111111111")
        .retry_mode(StageRetryMode::FailedActions)
        .send()
        .await
        .expect_err("already retrying");
    assert!(again.into_service_error().is_conflict_exception());
    assert_eq!(aws.retries().len(), 1);

    let state = cp
        .get_pipeline_state()
        .name("app-pipeline")
        .send()
        .await
        .expect("state");
    let latest = state.stage_states()[0].latest_execution().expect("latest");
    assert_eq!(
        latest.pipeline_execution_id(),
        "11111111-1111-4111-8111-111111111111"
    );
}
