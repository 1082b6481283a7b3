//! The ECS side of running the pipeline's images, with the real SDK client
//! over `aws-smithy-mocks`: what DescribeTaskDefinition is asked, that a
//! registration carries every field RegisterTaskDefinition accepts with
//! only the images changed, and how failures map.

// `inferenceAccelerators` is deprecated in ECS but still accepted and carried over.
#![allow(deprecated)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::{
    DescribeTaskDefinitionError, DescribeTaskDefinitionOutput,
};
use aws_sdk_ecs::operation::register_task_definition::{
    RegisterTaskDefinitionError, RegisterTaskDefinitionInput, RegisterTaskDefinitionOutput,
};
use aws_sdk_ecs::types::error::{AccessDeniedException, ClientException};
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, CpuArchitecture, EphemeralStorage, InferenceAccelerator,
    IpcMode, NetworkMode, OsFamily, PidMode, ProxyConfiguration, RuntimePlatform, Service, Tag,
    TaskDefinition, TaskDefinitionField, TaskDefinitionPlacementConstraint,
    TaskDefinitionPlacementConstraintType, TaskDefinitionStatus, Volume,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use migrate_once::artifact::{ImageSet, Images};
use migrate_once::failure::Failure;
use migrate_once::revision::{self, Described};

const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/app-migrate:7";

/// A task definition with every field RegisterTaskDefinition accepts set,
/// and the read-only ones DescribeTaskDefinition adds.
fn full_definition() -> TaskDefinition {
    TaskDefinition::builder()
        .task_definition_arn(ARN)
        .family("app-migrate")
        .revision(7)
        .status(TaskDefinitionStatus::Active)
        .task_role_arn("arn:aws:iam::123456789012:role/app-task")
        .execution_role_arn("arn:aws:iam::123456789012:role/app-exec")
        .network_mode(NetworkMode::Awsvpc)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("r/app:1")
                .essential(true)
                .command("bin/migrate")
                .build(),
        )
        .container_definitions(
            ContainerDefinition::builder()
                .name("envoy")
                .image("r/envoy:1")
                .essential(false)
                .build(),
        )
        .volumes(Volume::builder().name("scratch").build())
        .placement_constraints(
            TaskDefinitionPlacementConstraint::builder()
                .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                .expression("attribute:ecs.os-type == linux")
                .build(),
        )
        .requires_compatibilities(Compatibility::Fargate)
        .compatibilities(Compatibility::Ec2)
        .compatibilities(Compatibility::Fargate)
        .cpu("512")
        .memory("1024")
        .pid_mode(PidMode::Task)
        .ipc_mode(IpcMode::None)
        .proxy_configuration(
            ProxyConfiguration::builder()
                .container_name("envoy")
                .build()
                .unwrap(),
        )
        .inference_accelerators(
            InferenceAccelerator::builder()
                .device_name("gpu0")
                .device_type("eia2.medium")
                .build()
                .unwrap(),
        )
        .ephemeral_storage(EphemeralStorage::builder().size_in_gib(30).build())
        .runtime_platform(
            RuntimePlatform::builder()
                .cpu_architecture(CpuArchitecture::Arm64)
                .operating_system_family(OsFamily::Linux)
                .build(),
        )
        .enable_fault_injection(true)
        .registered_by("arn:aws:iam::123456789012:user/ops")
        .build()
}

fn tags() -> Vec<Tag> {
    vec![
        Tag::builder().key("team").value("db").build(),
        Tag::builder()
            .key("aws:cloudformation:stack-name")
            .value("app")
            .build(),
    ]
}

fn detail(uri: &str) -> ImageSet {
    ImageSet {
        artifact: "BuildOutput".into(),
        file: "imageDetail.json".into(),
        images: Images::Decisive(uri.into()),
    }
}

#[tokio::test]
async fn describe_asks_for_tags_and_an_unknown_definition_is_a_configuration_error() {
    let found = mock!(aws_sdk_ecs::Client::describe_task_definition)
        .match_requests(|r| {
            r.task_definition() == Some("app-migrate") && r.include() == [TaskDefinitionField::Tags]
        })
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(full_definition())
                .set_tags(Some(tags()))
                .build()
        });
    let missing = mock!(aws_sdk_ecs::Client::describe_task_definition).then_error(|| {
        DescribeTaskDefinitionError::ClientException(
            ClientException::builder()
                .message("Unable to describe task definition.")
                .build(),
        )
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&found, &missing]);
    let described = revision::describe(&ecs, "app-migrate").await.unwrap();
    assert_eq!(described.definition, full_definition());
    assert_eq!(described.tags, tags());
    assert_eq!(described.label(), "app-migrate:7");
    assert_eq!(described.image_of("app"), Some("r/app:1"));
    let err = revision::describe(&ecs, "nope").await.unwrap_err();
    assert!(
        matches!(&err, Failure::Configuration(m) if m.contains("task definition `nope` was not found")),
        "{err:?}"
    );
}

#[tokio::test]
async fn registration_carries_every_field_over_with_only_the_images_changed() {
    let sent: Arc<Mutex<Vec<RegisterTaskDefinitionInput>>> = Arc::default();
    let seen = sent.clone();
    let register =
        mock!(aws_sdk_ecs::Client::register_task_definition).then_compute_output(move |input| {
            seen.lock().unwrap().push(input.clone());
            RegisterTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .task_definition_arn(
                            "arn:aws:ecs:eu-west-1:123456789012:task-definition/app-migrate:8",
                        )
                        .build(),
                )
                .build()
        });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&register]);
    let described = Described {
        definition: full_definition(),
        tags: tags(),
    };
    let spec = revision::plan(
        &described,
        &detail("r/app@sha256:beef"),
        "app",
        None,
        "dep-1",
    )
    .unwrap()
    .expect("a new image: a new revision");
    assert_eq!(
        revision::register(&ecs, &spec).await.unwrap(),
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/app-migrate:8"
    );
    assert_eq!(register.num_calls(), 1);

    let input = sent.lock().unwrap().pop().unwrap();
    let d = full_definition();
    assert_eq!(input.family(), d.family());
    assert_eq!(input.task_role_arn(), d.task_role_arn());
    assert_eq!(input.execution_role_arn(), d.execution_role_arn());
    assert_eq!(input.network_mode(), d.network_mode());
    assert_eq!(input.volumes(), d.volumes());
    assert_eq!(input.placement_constraints(), d.placement_constraints());
    assert_eq!(
        input.requires_compatibilities(),
        d.requires_compatibilities()
    );
    assert_eq!(input.cpu(), d.cpu());
    assert_eq!(input.memory(), d.memory());
    assert_eq!(input.pid_mode(), d.pid_mode());
    assert_eq!(input.ipc_mode(), d.ipc_mode());
    assert_eq!(input.proxy_configuration(), d.proxy_configuration());
    assert_eq!(input.inference_accelerators(), d.inference_accelerators());
    assert_eq!(input.ephemeral_storage(), d.ephemeral_storage());
    assert_eq!(input.runtime_platform(), d.runtime_platform());
    assert_eq!(input.enable_fault_injection(), d.enable_fault_injection());
    // The containers are the described ones but for the decisive image.
    let mut expected = d.container_definitions().to_vec();
    expected[0].image = Some("r/app@sha256:beef".into());
    assert_eq!(input.container_definitions(), expected.as_slice());
    let tags: Vec<(&str, &str)> = input
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(
        tags,
        [
            ("team", "db"),
            ("migrate-once:deployment", "dep-1"),
            ("migrate-once:images", spec.digest.as_str())
        ]
    );
    assert_eq!(
        spec.images,
        BTreeMap::from([
            ("app".to_owned(), "r/app@sha256:beef".to_owned()),
            ("envoy".to_owned(), "r/envoy:1".to_owned())
        ])
    );
}

#[tokio::test]
async fn a_denied_registration_names_the_iam_action() {
    let register = mock!(aws_sdk_ecs::Client::register_task_definition).then_error(|| {
        RegisterTaskDefinitionError::AccessDeniedException(
            AccessDeniedException::builder()
                .message("not authorized to perform ecs:RegisterTaskDefinition")
                .meta(
                    ErrorMetadata::builder()
                        .code("AccessDeniedException")
                        .build(),
                )
                .build(),
        )
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&register]);
    let described = Described {
        definition: full_definition(),
        tags: Vec::new(),
    };
    let spec = revision::plan(&described, &detail("r/app:2"), "app", None, "d")
        .unwrap()
        .unwrap();
    let err = revision::register(&ecs, &spec).await.unwrap_err();
    assert!(
        matches!(
            err,
            Failure::Permission {
                api: "ecs:RegisterTaskDefinition",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn from_service_resolves_the_revision_the_service_runs() {
    let services = mock!(aws_sdk_ecs::Client::describe_services)
        .match_requests(|r| r.cluster() == Some("prod") && r.services() == ["web"])
        .then_output(|| {
            DescribeServicesOutput::builder()
                .services(
                    Service::builder()
                        .service_name("web")
                        .status("ACTIVE")
                        .task_definition(
                            "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:42",
                        )
                        .build(),
                )
                .build()
        });
    let none = mock!(aws_sdk_ecs::Client::describe_services)
        .then_output(|| DescribeServicesOutput::builder().build());
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &[&services, &none]);
    assert_eq!(
        revision::service_task_definition(&ecs, "prod", "web")
            .await
            .unwrap(),
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:42"
    );
    let err = revision::service_task_definition(&ecs, "prod", "gone")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Failure::Configuration(m) if m.contains("service `gone` was not found in cluster `prod`")),
        "{err:?}"
    );
}
