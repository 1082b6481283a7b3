//! The thin AWS layer, tested with `aws-smithy-mocks`: the SDK clients are
//! real, their responses come from small in-memory fakes (an SSM store, one
//! ECS task, a CodePipeline that records reports), so each test asserts what
//! the pipeline saw and what was sent to ECS, not the order of calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatchlogs::operation::get_log_events::{GetLogEventsError, GetLogEventsOutput};
use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
use aws_sdk_codepipeline::operation::get_job_details::GetJobDetailsOutput;
use aws_sdk_codepipeline::operation::put_job_failure_result::{
    PutJobFailureResultError, PutJobFailureResultOutput,
};
use aws_sdk_codepipeline::operation::put_job_success_result::{
    PutJobSuccessResultError, PutJobSuccessResultOutput,
};
use aws_sdk_codepipeline::types::error::InvalidJobStateException;
use aws_sdk_codepipeline::types::{JobData, JobDetails, PipelineContext};
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::run_task::{RunTaskError, RunTaskInput, RunTaskOutput};
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::error::AccessDeniedException;
use aws_sdk_ecs::types::{
    Container, ContainerDefinition, LogConfiguration, LogDriver, Task, TaskDefinition, TaskStopCode,
};
use aws_sdk_ssm::operation::delete_parameters::DeleteParametersOutput;
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::operation::put_parameter::{PutParameterError, PutParameterOutput};
use aws_sdk_ssm::types::Parameter;
use aws_sdk_ssm::types::error::{ParameterAlreadyExists, ParameterNotFound};
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use migrate_once::event::{Event, Job};
use migrate_once::report::Sent;
use migrate_once::{Clients, job, task};

const TASK_ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task/prod/0a1b2c3d4e5f";
const STATE: &str = "/migrate-once/prod/app-migrate";

/// What the pipeline was told about a job.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    InProgress {
        job: String,
        token: String,
        summary: String,
    },
    Succeeded {
        job: String,
        summary: String,
        outputs: BTreeMap<String, String>,
    },
    Failed {
        job: String,
        kind: String,
        message: String,
    },
}

/// The fakes behind the mocked clients.
#[derive(Default)]
struct World {
    parameters: Mutex<BTreeMap<String, String>>,
    run_requests: Mutex<Vec<RunTaskInput>>,
    /// `(last status, decisive exit code)` DescribeTasks answers with.
    task: Mutex<(String, Option<i32>)>,
    reports: Mutex<Vec<Seen>>,
    deny_run_task: bool,
    /// GetLogEvents answers AccessDenied.
    deny_logs: bool,
    /// `(group, stream)` of every GetLogEvents call.
    log_reads: Mutex<Vec<(String, String)>>,
    refuse_reports: bool,
}

impl World {
    fn clients(self: &Arc<Self>) -> Clients {
        let w = self.clone();
        let get =
            mock!(aws_sdk_ssm::Client::get_parameter).then_compute_response(move |req| {
                match w.parameters.lock().unwrap().get(req.name().unwrap()) {
                    Some(value) => MockResponse::Output(
                        GetParameterOutput::builder()
                            .parameter(
                                Parameter::builder()
                                    .name(req.name().unwrap())
                                    .value(value)
                                    .build(),
                            )
                            .build(),
                    ),
                    None => MockResponse::Error(GetParameterError::ParameterNotFound(
                        ParameterNotFound::builder().build(),
                    )),
                }
            });
        let w = self.clone();
        let put = mock!(aws_sdk_ssm::Client::put_parameter).then_compute_response(move |req| {
            let mut parameters = w.parameters.lock().unwrap();
            let name = req.name().unwrap().to_owned();
            if req.overwrite() != Some(true) && parameters.contains_key(&name) {
                return MockResponse::Error(PutParameterError::ParameterAlreadyExists(
                    ParameterAlreadyExists::builder().build(),
                ));
            }
            parameters.insert(name, req.value().unwrap().to_owned());
            MockResponse::Output(PutParameterOutput::builder().version(1).build())
        });
        let w = self.clone();
        let by_path =
            mock!(aws_sdk_ssm::Client::get_parameters_by_path).then_compute_output(move |req| {
                let prefix = format!("{}/", req.path().unwrap());
                let parameters = w.parameters.lock().unwrap();
                GetParametersByPathOutput::builder()
                    .set_parameters(Some(
                        parameters
                            .iter()
                            .filter(|(k, _)| {
                                k.starts_with(&prefix) && !k[prefix.len()..].contains('/')
                            })
                            .map(|(k, v)| Parameter::builder().name(k).value(v).build())
                            .collect(),
                    ))
                    .build()
            });
        let w = self.clone();
        let delete =
            mock!(aws_sdk_ssm::Client::delete_parameters).then_compute_output(move |req| {
                for name in req.names() {
                    w.parameters.lock().unwrap().remove(name);
                }
                DeleteParametersOutput::builder().build()
            });
        let ssm = mock_client!(
            aws_sdk_ssm,
            RuleMode::MatchAny,
            &[&get, &put, &by_path, &delete]
        );

        let definition = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
            let logs = LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", "/ecs/app")
                .options("awslogs-stream-prefix", "migrate")
                .build()
                .unwrap();
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .task_definition_arn(
                            "arn:aws:ecs:eu-west-1:123456789012:task-definition/app-migrate:7",
                        )
                        .container_definitions(
                            ContainerDefinition::builder()
                                .name("app")
                                .essential(true)
                                .log_configuration(logs)
                                .build(),
                        )
                        .container_definitions(
                            ContainerDefinition::builder()
                                .name("envoy")
                                .essential(false)
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let w = self.clone();
        let run = mock!(aws_sdk_ecs::Client::run_task).then_compute_response(move |req| {
            w.run_requests.lock().unwrap().push(req.clone());
            if w.deny_run_task {
                return MockResponse::Error(RunTaskError::AccessDeniedException(
                    AccessDeniedException::builder()
                        .message("not authorized to perform ecs:RunTask")
                        .meta(
                            ErrorMetadata::builder()
                                .code("AccessDeniedException")
                                .build(),
                        )
                        .build(),
                ));
            }
            MockResponse::Output(
                RunTaskOutput::builder()
                    .tasks(Task::builder().task_arn(TASK_ARN).build())
                    .build(),
            )
        });
        let w = self.clone();
        let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(move |_| {
            let (status, exit_code) = w.task.lock().unwrap().clone();
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let mut task = Task::builder()
                .task_arn(TASK_ARN)
                .last_status(&status)
                .created_at(DateTime::from_secs_f64(now - 50.0))
                .started_at(DateTime::from_secs_f64(now - 45.0))
                .containers(
                    Container::builder()
                        .name("app")
                        .set_exit_code(exit_code)
                        .build(),
                )
                .containers(Container::builder().name("envoy").exit_code(1).build());
            if status == "STOPPED" {
                task = task
                    .stop_code(TaskStopCode::EssentialContainerExited)
                    .stopped_reason("Essential container in task exited")
                    .stopped_at(DateTime::from_secs_f64(now - 4.0));
            }
            DescribeTasksOutput::builder().tasks(task.build()).build()
        });
        let ecs = mock_client!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            &[&definition, &run, &describe]
        );

        let w = self.clone();
        let success = mock!(aws_sdk_codepipeline::Client::put_job_success_result)
            .then_compute_response(move |req| {
                if w.refuse_reports {
                    return MockResponse::Error(
                        PutJobSuccessResultError::InvalidJobStateException(
                            InvalidJobStateException::builder().build(),
                        ),
                    );
                }
                let job = req.job_id().unwrap().to_owned();
                let summary = req
                    .execution_details()
                    .and_then(|d| d.summary())
                    .unwrap_or_default()
                    .to_owned();
                w.reports
                    .lock()
                    .unwrap()
                    .push(match req.continuation_token() {
                        Some(token) => Seen::InProgress {
                            job,
                            token: token.to_owned(),
                            summary,
                        },
                        None => Seen::Succeeded {
                            job,
                            summary,
                            outputs: req
                                .output_variables()
                                .cloned()
                                .unwrap_or_default()
                                .into_iter()
                                .collect(),
                        },
                    });
                MockResponse::Output(PutJobSuccessResultOutput::builder().build())
            });
        let w = self.clone();
        let failure = mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
            .then_compute_response(move |req| {
                if w.refuse_reports {
                    return MockResponse::Error(
                        PutJobFailureResultError::InvalidJobStateException(
                            InvalidJobStateException::builder().build(),
                        ),
                    );
                }
                let details = req.failure_details().unwrap();
                w.reports.lock().unwrap().push(Seen::Failed {
                    job: req.job_id().unwrap().to_owned(),
                    kind: details.r#type().as_str().to_owned(),
                    message: details.message().to_owned(),
                });
                MockResponse::Output(PutJobFailureResultOutput::builder().build())
            });
        let details = mock!(aws_sdk_codepipeline::Client::get_job_details).then_output(|| {
            let context = PipelineContext::builder()
                .pipeline_execution_id("exec-1")
                .build();
            GetJobDetailsOutput::builder()
                .job_details(
                    JobDetails::builder()
                        .data(JobData::builder().pipeline_context(context).build())
                        .build(),
                )
                .build()
        });
        let pipeline = mock_client!(
            aws_sdk_codepipeline,
            RuleMode::MatchAny,
            &[&success, &failure, &details]
        );
        let w = self.clone();
        let events = mock!(aws_sdk_cloudwatchlogs::Client::get_log_events).then_compute_response(
            move |req| {
                w.log_reads.lock().unwrap().push((
                    req.log_group_name().unwrap_or_default().to_owned(),
                    req.log_stream_name().unwrap_or_default().to_owned(),
                ));
                if w.deny_logs {
                    return MockResponse::Error(GetLogEventsError::generic(
                        ErrorMetadata::builder()
                            .code("AccessDeniedException")
                            .message("not authorized to perform logs:GetLogEvents")
                            .build(),
                    ));
                }
                let lines = [
                    "== CreateUsers: migrating",
                    "rake aborted!",
                    "PG::UndefinedTable",
                ];
                MockResponse::Output(
                    GetLogEventsOutput::builder()
                        .set_events(Some(
                            lines
                                .iter()
                                .map(|l| OutputLogEvent::builder().message(*l).build())
                                .collect(),
                        ))
                        .build(),
                )
            },
        );
        let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, &[&events]);
        // No job here carries input artifacts: S3 is never called.
        let s3 =
            migrate_once::artifact::S3::ready(mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[]));
        Clients {
            ssm,
            ecs,
            pipeline,
            logs,
            s3,
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.parameters.lock().unwrap()[STATE]).unwrap()
    }

    fn last_report(&self) -> Seen {
        self.reports
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a report")
    }
}

fn job(id: &str, user_parameters: &str, token: Option<&str>) -> Job {
    let event = serde_json::json!({"CodePipeline.job": {"id": id, "data": {
        "actionConfiguration": {"configuration": {"FunctionName": "migrate-once", "UserParameters": user_parameters}},
        "continuationToken": token,
    }}});
    match migrate_once::event::parse(event).unwrap() {
        Event::Job(job) => job,
        other => panic!("{other:?}"),
    }
}

const PARAMS: &str = r#"{"cluster":"prod","taskDefinition":"app-migrate","command":["bin/migrate","up"],
    "environment":{"Z_LAST":"z","A_FIRST":"a"},
    "network":{"subnets":["subnet-b","subnet-a"],"securityGroups":["sg-1"],"assignPublicIp":false},
    "launchType":"FARGATE","waitSeconds":0}"#;

async fn invoke(clients: &Clients, job: &Job) -> Sent {
    let deadline = SystemTime::now() + Duration::from_secs(60);
    job::handle(clients, &[], job, deadline)
        .await
        .expect("reported")
}

#[tokio::test]
async fn first_invocation_starts_one_task_and_hands_back_a_token() {
    let world = Arc::new(World::default());
    let clients = world.clients();

    assert_eq!(
        invoke(&clients, &job("job-1", PARAMS, None)).await,
        Sent::Reported
    );

    let runs = world.run_requests.lock().unwrap().clone();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    // No `deployment` configured: the pipeline execution id from GetJobDetails.
    assert_eq!(
        run.client_token(),
        Some(task::client_token(STATE, "exec-1", 1).as_str())
    );
    assert_eq!(run.started_by(), Some("migrate-once"));
    assert_eq!(run.tags()[0].key(), Some("migrate-once:deployment"));
    assert_eq!(run.tags()[0].value(), Some("exec-1"));
    let container = &run.overrides().unwrap().container_overrides()[0];
    assert_eq!(container.name(), Some("app"));
    assert_eq!(container.command(), ["bin/migrate", "up"]);
    let env: Vec<_> = container
        .environment()
        .iter()
        .map(|kv| kv.name().unwrap())
        .collect();
    assert_eq!(
        env,
        ["A_FIRST", "Z_LAST"],
        "sorted, so a repeated RunTask is identical"
    );
    let vpc = run
        .network_configuration()
        .unwrap()
        .awsvpc_configuration()
        .unwrap();
    assert_eq!(vpc.subnets(), ["subnet-a", "subnet-b"]);
    assert_eq!(run.launch_type().map(|l| l.as_str()), Some("FARGATE"));

    let state = world.state();
    assert_eq!(state["deployment"], "exec-1");
    assert_eq!(state["status"], "running");
    assert_eq!(state["taskArn"], TASK_ARN);
    assert_eq!(state["attempt"], 1);
    let Seen::InProgress { token, summary, .. } = world.last_report() else {
        panic!("{:?}", world.last_report())
    };
    assert!(token.len() <= 2048 && token.contains(TASK_ARN), "{token}");
    assert!(summary.contains("Migration task started"), "{summary}");
    assert!(
        world
            .parameters
            .lock()
            .unwrap()
            .contains_key(&format!("{STATE}/lock/0000000001"))
    );
}

async fn started(world: &Arc<World>) -> (Clients, String) {
    let clients = world.clients();
    invoke(&clients, &job("job-1", PARAMS, None)).await;
    let Seen::InProgress { token, .. } = world.last_report() else {
        panic!()
    };
    (clients, token)
}

#[tokio::test]
async fn a_running_task_keeps_the_action_in_progress() {
    let world = Arc::new(World::default());
    *world.task.lock().unwrap() = ("RUNNING".into(), None);
    let (clients, token) = started(&world).await;

    invoke(&clients, &job("job-2", PARAMS, Some(&token))).await;

    let Seen::InProgress { job, summary, .. } = world.last_report() else {
        panic!("{:?}", world.last_report())
    };
    assert_eq!(job, "job-2");
    assert!(
        summary.starts_with("Migration running for 50s (task 0a1b2c3d4e5f"),
        "{summary}"
    );
}

#[tokio::test]
async fn exit_zero_succeeds_with_output_variables_and_releases_the_lock() {
    let world = Arc::new(World::default());
    let (clients, token) = started(&world).await;
    *world.task.lock().unwrap() = ("STOPPED".into(), Some(0));

    invoke(&clients, &job("job-2", PARAMS, Some(&token))).await;

    let Seen::Succeeded {
        outputs, summary, ..
    } = world.last_report()
    else {
        panic!("{:?}", world.last_report())
    };
    assert_eq!(outputs["TaskArn"], TASK_ARN);
    assert_eq!(outputs["ExitCode"], "0");
    assert_eq!(outputs["Deployment"], "exec-1");
    assert_eq!(outputs["Attempts"], "1");
    assert_eq!(outputs["DurationSeconds"], "41");
    assert_eq!(outputs["LogStream"], "migrate/app/0a1b2c3d4e5f");
    assert!(summary.contains("exited 0 after 41s"), "{summary}");
    assert_eq!(world.state()["status"], "succeeded");
    let lock: serde_json::Value = serde_json::from_str(
        &world.parameters.lock().unwrap()[&format!("{STATE}/lock/0000000001")],
    )
    .unwrap();
    assert_eq!(lock["released"], true);
}

#[tokio::test]
async fn non_zero_exit_fails_with_exit_code_container_and_logs() {
    let world = Arc::new(World::default());
    let (clients, token) = started(&world).await;
    *world.task.lock().unwrap() = ("STOPPED".into(), Some(3));

    invoke(&clients, &job("job-2", PARAMS, Some(&token))).await;

    let Seen::Failed { kind, message, .. } = world.last_report() else {
        panic!("{:?}", world.last_report())
    };
    assert_eq!(kind, "JobFailed");
    for needle in [
        "container `app` exited with code 3",
        "task 0a1b2c3d4e5f",
        "group /ecs/app",
        "migrate/app/0a1b2c3d4e5f",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    assert!(
        message.contains(
            "Last log lines: == CreateUsers: migrating | rake aborted! | PG::UndefinedTable."
        ),
        "{message}"
    );
    assert_eq!(
        *world.log_reads.lock().unwrap(),
        [("/ecs/app".to_owned(), "migrate/app/0a1b2c3d4e5f".to_owned())]
    );
    assert_eq!(world.state()["status"], "failed");
    assert_eq!(world.state()["exitCode"], 3);
}

#[tokio::test]
async fn unreadable_logs_do_not_change_the_failure() {
    let world = Arc::new(World {
        deny_logs: true,
        ..World::default()
    });
    let (clients, token) = started(&world).await;
    *world.task.lock().unwrap() = ("STOPPED".into(), Some(3));

    invoke(&clients, &job("job-2", PARAMS, Some(&token))).await;

    let Seen::Failed { kind, message, .. } = world.last_report() else {
        panic!("{:?}", world.last_report())
    };
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("exited with code 3"), "{message}");
    assert!(
        message.contains("(could not read logs: logs:GetLogEvents was denied"),
        "{message}"
    );
    assert!(message.contains("migrate/app/0a1b2c3d4e5f"), "{message}");
    assert_eq!(world.state()["status"], "failed");
}

#[tokio::test]
async fn a_successful_migration_reads_no_logs() {
    let world = Arc::new(World::default());
    let (clients, token) = started(&world).await;
    *world.task.lock().unwrap() = ("STOPPED".into(), Some(0));

    invoke(&clients, &job("job-2", PARAMS, Some(&token))).await;

    assert!(matches!(world.last_report(), Seen::Succeeded { .. }));
    assert!(world.log_reads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_deployment_that_already_succeeded_is_not_run_again() {
    let world = Arc::new(World::default());
    let (clients, token) = started(&world).await;
    *world.task.lock().unwrap() = ("STOPPED".into(), Some(0));
    invoke(&clients, &job("job-2", PARAMS, Some(&token))).await;

    // The stage is retried: a new job for the same deployment.
    invoke(&clients, &job("job-3", PARAMS, None)).await;

    assert_eq!(world.run_requests.lock().unwrap().len(), 1);
    let Seen::Succeeded {
        summary, outputs, ..
    } = world.last_report()
    else {
        panic!("{:?}", world.last_report())
    };
    assert!(summary.starts_with("Already applied"), "{summary}");
    assert_eq!(outputs["TaskArn"], TASK_ARN);
}

#[tokio::test]
async fn a_duplicate_start_resumes_the_same_task() {
    let world = Arc::new(World::default());
    *world.task.lock().unwrap() = ("RUNNING".into(), None);
    let (clients, _) = started(&world).await;

    invoke(&clients, &job("job-1", PARAMS, None)).await;

    assert_eq!(
        world.run_requests.lock().unwrap().len(),
        1,
        "never a second RunTask"
    );
    let Seen::InProgress { summary, .. } = world.last_report() else {
        panic!("{:?}", world.last_report())
    };
    assert!(summary.contains("Migration running"), "{summary}");
}

#[tokio::test]
async fn access_denied_is_a_permission_error_naming_the_call() {
    let world = Arc::new(World {
        deny_run_task: true,
        ..World::default()
    });
    let clients = world.clients();

    invoke(&clients, &job("job-1", PARAMS, None)).await;

    let Seen::Failed { kind, message, .. } = world.last_report() else {
        panic!("{:?}", world.last_report())
    };
    assert_eq!(kind, "PermissionError");
    assert!(message.contains("ecs:RunTask was denied"), "{message}");
    assert_eq!(world.state()["status"], "failed", "the attempt is recorded");
}

#[tokio::test]
async fn bad_config_is_reported_without_side_effects() {
    let world = Arc::new(World::default());
    let clients = world.clients();

    invoke(
        &clients,
        &job(
            "job-1",
            r#"{"cluster":"prod","timeoutSeconds":5,"colour":1}"#,
            None,
        ),
    )
    .await;

    let Seen::Failed { kind, message, .. } = world.last_report() else {
        panic!("{:?}", world.last_report())
    };
    assert_eq!(kind, "ConfigurationError");
    assert!(message.contains("3 problems"), "{message}");
    assert!(world.parameters.lock().unwrap().is_empty());
    assert!(world.run_requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_report_refused_as_already_made_counts_as_done() {
    let world = Arc::new(World {
        refuse_reports: true,
        ..World::default()
    });
    let clients = world.clients();

    assert_eq!(
        invoke(&clients, &job("job-1", PARAMS, None)).await,
        Sent::AlreadyReported
    );
}
