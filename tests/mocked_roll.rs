//! The thin ECS layer of `roll`, tested with `aws-smithy-mocks`: what
//! UpdateService is sent, which deployment id comes back, which errors
//! leave its outcome unknown and which become pipeline failures, what a
//! service deployment says, and which stopped tasks belong to a deployment.

use std::sync::{Arc, Mutex};

use aws_sdk_codepipeline::types::FailureType;
use aws_sdk_ecs::operation::describe_service_deployments::DescribeServiceDeploymentsOutput;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::update_service::{
    UpdateServiceError, UpdateServiceInput, UpdateServiceOutput,
};
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::error::{AccessDeniedException, ServiceNotFoundException};
use aws_sdk_ecs::types::{
    Container, Deployment, DeploymentRolloutState, DesiredStatus, Rollback, Service,
    ServiceDeployment, ServiceDeploymentStatus, ServiceEvent, Task, TaskStopCode,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use migrate_once::roll::{self, Sent, UpdateSpec};

fn deployment(id: &str, status: &str, state: DeploymentRolloutState) -> Deployment {
    Deployment::builder()
        .id(id)
        .status(status)
        .rollout_state(state)
        .desired_count(4)
        .running_count(3)
        .failed_tasks(1)
        .task_definition("arn:aws:ecs:eu-west-1:1:task-definition/web:7")
        .build()
}

#[tokio::test]
async fn update_sends_the_spec_and_returns_the_primary_deployment() {
    let sent: Arc<Mutex<Vec<UpdateServiceInput>>> = Arc::default();
    let seen = sent.clone();
    let update = mock!(aws_sdk_ecs::Client::update_service).then_compute_output(move |req| {
        seen.lock().unwrap().push(req.clone());
        UpdateServiceOutput::builder()
            .service(
                Service::builder()
                    .service_name("web")
                    .deployments(deployment(
                        "ecs-svc/1",
                        "ACTIVE",
                        DeploymentRolloutState::Completed,
                    ))
                    .deployments(deployment(
                        "ecs-svc/2",
                        "PRIMARY",
                        DeploymentRolloutState::InProgress,
                    ))
                    .build(),
            )
            .build()
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&update]);
    let spec = UpdateSpec::new("prod", "web", Some("web:7"));
    assert_eq!(
        roll::update(&ecs, &spec).await.unwrap(),
        Sent::Started("ecs-svc/2".into())
    );
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].cluster(), Some("prod"));
    assert_eq!(sent[0].service(), Some("web"));
    assert_eq!(sent[0].task_definition(), Some("web:7"));
    assert_eq!(sent[0].force_new_deployment(), Some(true));
}

#[tokio::test]
async fn update_errors_become_pipeline_failures() {
    let missing = mock!(aws_sdk_ecs::Client::update_service).then_error(|| {
        UpdateServiceError::ServiceNotFoundException(
            ServiceNotFoundException::builder()
                .message("Service not found.")
                .meta(
                    ErrorMetadata::builder()
                        .code("ServiceNotFoundException")
                        .build(),
                )
                .build(),
        )
    });
    let denied = mock!(aws_sdk_ecs::Client::update_service).then_error(|| {
        UpdateServiceError::AccessDeniedException(
            AccessDeniedException::builder()
                .message("not authorized to perform ecs:UpdateService")
                .meta(
                    ErrorMetadata::builder()
                        .code("AccessDeniedException")
                        .build(),
                )
                .build(),
        )
    });
    let no_primary = mock!(aws_sdk_ecs::Client::update_service).then_output(|| {
        UpdateServiceOutput::builder()
            .service(Service::builder().service_name("web").build())
            .build()
    });
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::Sequential,
        &[&missing, &denied, &no_primary]
    );
    let spec = UpdateSpec::new("prod", "web", None);
    let cases = [
        (
            FailureType::ConfigurationError,
            "service `web` cannot be updated in cluster `prod`",
        ),
        (FailureType::PermissionError, "Grant `ecs:UpdateService`"),
        (
            FailureType::ConfigurationError,
            "without a PRIMARY deployment",
        ),
    ];
    for (kind, words) in cases {
        let err = roll::update(&ecs, &spec).await.unwrap_err();
        assert_eq!(err.failure_type(), kind, "{err}");
        assert!(err.to_string().contains(words), "{err}");
    }
    assert_eq!(
        missing.num_calls() + denied.num_calls() + no_primary.num_calls(),
        3
    );
}

#[tokio::test]
async fn describe_gives_deployments_events_and_the_current_service_deployment() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        let mut service = Service::builder()
            .service_name("web")
            .status("ACTIVE")
            .current_service_deployment("arn:aws:ecs:eu-west-1:1:service-deployment/prod/web/abc")
            .task_definition("arn:aws:ecs:eu-west-1:1:task-definition/web:7")
            .desired_count(4)
            .running_count(7)
            .deployments(Deployment::builder().build())
            .deployments(deployment(
                "ecs-svc/2",
                "PRIMARY",
                DeploymentRolloutState::Failed,
            ));
        for i in 0..8 {
            service = service.events(
                ServiceEvent::builder()
                    .created_at(DateTime::from_secs(1_000 - i))
                    .message(format!("event {i}"))
                    .build(),
            );
        }
        DescribeServicesOutput::builder()
            .services(service.build())
            .build()
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&describe]);
    let views = roll::describe(&ecs, "prod", &["web".into()]).await.unwrap();
    assert_eq!(views.len(), 1);
    let web = &views[0];
    assert_eq!(web.primary(), Some("ecs-svc/2"));
    assert_eq!(web.desired_count, 4);
    let primary = &web.deployments[1];
    assert_eq!(primary.rollout_state.as_deref(), Some("FAILED"));
    assert_eq!(
        (
            primary.running_count,
            primary.desired_count,
            primary.failed_tasks
        ),
        (3, 4, 1)
    );
    // All of them, newest first: the roll reads them for what happened
    // since its claim; the failure message quotes the newest five.
    let events: Vec<&str> = web.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(events.len(), 8);
    assert_eq!(events[..3], ["event 0", "event 1", "event 2"]);
    assert_eq!(
        web.current_service_deployment.as_deref(),
        Some("arn:aws:ecs:eu-west-1:1:service-deployment/prod/web/abc")
    );
}

#[tokio::test]
async fn an_update_without_an_answer_may_have_happened() {
    let server = mock!(aws_sdk_ecs::Client::update_service).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(500).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"ServerException","message":"We encountered an internal error."}"#,
            ),
        )
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&server]);
    let sent = roll::update(&ecs, &UpdateSpec::new("prod", "web", None))
        .await
        .expect("not a refusal");
    assert!(matches!(sent, Sent::Unanswered(_)), "{sent:?}");
    assert_eq!(server.num_calls(), 1, "sent once, never retried");
}

#[tokio::test]
async fn a_service_deployment_says_whether_ecs_rolled_it_back() {
    let describe = mock!(aws_sdk_ecs::Client::describe_service_deployments)
        .match_requests(|r| {
            r.service_deployment_arns()
                == ["arn:aws:ecs:eu-west-1:1:service-deployment/prod/web/abc"]
        })
        .then_output(|| {
            DescribeServiceDeploymentsOutput::builder()
                .service_deployments(
                    ServiceDeployment::builder()
                        .service_deployment_arn(
                            "arn:aws:ecs:eu-west-1:1:service-deployment/prod/web/abc",
                        )
                        .status(ServiceDeploymentStatus::RollbackSuccessful)
                        .status_reason("ECS deployment circuit breaker: tasks failed to start.")
                        .created_at(DateTime::from_secs(1_000))
                        .rollback(
                            Rollback::builder()
                                .reason("ECS deployment circuit breaker: tasks failed to start.")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let missing = mock!(aws_sdk_ecs::Client::describe_service_deployments)
        .then_output(|| DescribeServiceDeploymentsOutput::builder().build());
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&describe, &missing]);
    let history = roll::history(
        &ecs,
        "arn:aws:ecs:eu-west-1:1:service-deployment/prod/web/abc",
    )
    .await
    .unwrap()
    .expect("known");
    assert_eq!(history.status, "ROLLBACK_SUCCESSFUL");
    assert!(history.failed());
    assert_eq!(history.created_at, Some(1_000.0));
    assert_eq!(
        history.rollback_reason.as_deref(),
        Some("ECS deployment circuit breaker: tasks failed to start.")
    );
    assert_eq!(
        roll::history(
            &ecs,
            "arn:aws:ecs:eu-west-1:1:service-deployment/prod/web/nope"
        )
        .await
        .unwrap(),
        None
    );
}

#[tokio::test]
async fn stopped_reasons_keep_only_the_deployments_tasks() {
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| {
            r.service_name() == Some("web")
                && r.desired_status() == Some(&DesiredStatus::Stopped)
                && r.started_by().is_none()
        })
        .then_output(|| {
            ListTasksOutput::builder()
                .task_arns("arn:aws:ecs:eu-west-1:1:task/prod/aaa")
                .task_arns("arn:aws:ecs:eu-west-1:1:task/prod/bbb")
                .task_arns("arn:aws:ecs:eu-west-1:1:task/prod/ccc")
                .build()
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(|| {
        let task = |id: &str, started_by: &str, at: i64, reason: &str| {
            Task::builder()
                .task_arn(format!("arn:aws:ecs:eu-west-1:1:task/prod/{id}"))
                .started_by(started_by)
                .stopped_at(DateTime::from_secs(at))
                .stop_code(TaskStopCode::EssentialContainerExited)
                .stopped_reason(reason)
                .containers(
                    Container::builder()
                        .name("web")
                        .exit_code(1)
                        .reason("boom")
                        .build(),
                )
                .containers(Container::builder().name("envoy").exit_code(0).build())
                .build()
        };
        DescribeTasksOutput::builder()
            .tasks(task("aaa", "ecs-svc/2", 10, "older"))
            .tasks(task("bbb", "ecs-svc/1", 30, "another deployment"))
            .tasks(task("ccc", "ecs-svc/2", 20, "newer"))
            .build()
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&list, &describe]);
    let stopped = roll::stopped_reasons(
        &ecs,
        "prod",
        "arn:aws:ecs:eu-west-1:1:service/prod/web",
        "ecs-svc/2",
    )
    .await
    .unwrap();
    let seen: Vec<(&str, Option<&str>)> = stopped
        .iter()
        .map(|t| (t.task_id.as_str(), t.stopped_reason.as_deref()))
        .collect();
    assert_eq!(seen, [("ccc", Some("newer")), ("aaa", Some("older"))]);
    assert_eq!(
        stopped[0].containers,
        [("web".to_owned(), Some(1), Some("boom".to_owned()))],
        "only containers that say something"
    );
}
