//! The ECS task: finding the decisive container, starting the task
//! idempotently, looking at it, stopping it.
//!
//! This is the thin layer over ECS. What a task's status means is decided
//! in [`crate::outcome`].

use std::collections::BTreeMap;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride,
    DesiredStatus, KeyValuePair, LaunchType, NetworkConfiguration, Tag, TaskField, TaskOverride,
};
use sha2::{Digest, Sha256};

use crate::config::{CapacityProvider, Config, Environment, Network, last_segment};
use crate::failure::Failure;

/// `startedBy` of every task we start, for `aws ecs list-tasks --started-by`.
pub const STARTED_BY: &str = "migrate-once";
/// Tag carrying the deployment id on every task we start.
pub const DEPLOYMENT_TAG: &str = "migrate-once:deployment";
/// Tag carrying the attempt's `clientToken`: what proves which attempt a
/// task belongs to when its holder never recorded it ([`find_started`]).
pub const ATTEMPT_TAG: &str = "migrate-once:attempt";

/// The decisive container of a task definition, and where it logs.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    /// `awslogs` group and stream prefix, when the container logs that way.
    pub logs: Option<(String, String)>,
}

/// Picks the decisive container of a described task definition: the
/// configured one, or else the only essential one.
pub fn decisive_container(
    definition: &aws_sdk_ecs::types::TaskDefinition,
    config: &Config,
) -> Result<Container, Failure> {
    let containers: Vec<(Container, bool)> = definition
        .container_definitions()
        .iter()
        .map(|c| {
            let logs = c.log_configuration().and_then(|l| {
                let options = l.options()?;
                (l.log_driver().as_str() == "awslogs").then(|| {
                    Some((
                        options.get("awslogs-group")?.clone(),
                        options.get("awslogs-stream-prefix")?.clone(),
                    ))
                })?
            });
            let name = c.name().unwrap_or_default().to_owned();
            (Container { name, logs }, c.essential().unwrap_or(true))
        })
        .collect();
    let label = definition
        .task_definition_arn()
        .map(last_segment)
        .unwrap_or(&config.task_definition);
    pick_container(label, &containers, config.container.as_deref())
}

/// The configured container, or else the only essential one.
fn pick_container(
    label: &str,
    containers: &[(Container, bool)],
    wanted: Option<&str>,
) -> Result<Container, Failure> {
    let names = || {
        containers
            .iter()
            .map(|c| c.0.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match wanted {
        Some(wanted) => containers
            .iter()
            .find(|c| c.0.name == wanted)
            .ok_or_else(|| {
                Failure::Configuration(format!(
                    "container `{wanted}` is not in task definition {label} (containers: {})",
                    names()
                ))
            })?,
        None => {
            let essential: Vec<_> = containers.iter().filter(|c| c.1).collect();
            match essential.as_slice() {
                [only] => *only,
                _ => {
                    return Err(Failure::Configuration(format!(
                        "task definition {label} has {} essential containers ({}); set `container` to the one whose exit code decides",
                        essential.len(),
                        names()
                    )));
                }
            }
        }
    };
    Ok(chosen.0.clone())
}

/// Network settings RunTask needs, resolved from the config (and the
/// service, for `fromService`). Lists are sorted so repeated requests are
/// identical.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub awsvpc: Option<(Vec<String>, Vec<String>, Option<bool>)>,
    pub launch_type: Option<String>,
    pub capacity_provider_strategy: Vec<CapacityProvider>,
    pub platform_version: Option<String>,
}

/// Resolves where the task runs; for `fromService` this costs one
/// DescribeServices call.
pub async fn placement(ecs: &Client, config: &Config) -> Result<Placement, Failure> {
    let mut placement = Placement {
        awsvpc: None,
        launch_type: config.launch_type.clone(),
        capacity_provider_strategy: config.capacity_provider_strategy.clone(),
        platform_version: config.platform_version.clone(),
    };
    match &config.network {
        None => {}
        Some(Network::Awsvpc {
            subnets,
            security_groups,
            assign_public_ip,
        }) => {
            placement.awsvpc = Some((sorted(subnets), sorted(security_groups), *assign_public_ip))
        }
        Some(Network::FromService(name)) => {
            let out = ecs
                .describe_services()
                .cluster(&config.cluster)
                .services(name)
                .send()
                .await
                .map_err(|e| Failure::from_sdk("ecs:DescribeServices", e))?;
            let service = out
                .services()
                .iter()
                .find(|s| s.status() != Some("INACTIVE"))
                .ok_or_else(|| {
                    Failure::Configuration(format!(
                        "`network.fromService`: service `{name}` was not found in cluster `{}`",
                        config.cluster
                    ))
                })?;
            if let Some(vpc) = service
                .network_configuration()
                .and_then(|n| n.awsvpc_configuration())
            {
                placement.awsvpc = Some((
                    sorted(vpc.subnets()),
                    sorted(vpc.security_groups()),
                    vpc.assign_public_ip()
                        .map(|a| *a == AssignPublicIp::Enabled),
                ));
            }
            let explicit =
                placement.launch_type.is_some() || !placement.capacity_provider_strategy.is_empty();
            if !explicit {
                placement.launch_type = service.launch_type().map(|l| l.as_str().to_owned());
                placement.capacity_provider_strategy = service
                    .capacity_provider_strategy()
                    .iter()
                    .map(|s| CapacityProvider {
                        capacity_provider: s.capacity_provider().to_owned(),
                        weight: Some(s.weight()),
                        base: Some(s.base()),
                    })
                    .collect();
            }
            if placement.platform_version.is_none() {
                placement.platform_version = service.platform_version().map(str::to_owned);
            }
        }
    }
    Ok(placement)
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items.dedup();
    items
}

/// `clientToken` for an attempt: the same (state parameter, deployment,
/// attempt) always gives the same token, so a RunTask repeated after a crash
/// returns the task the first call started instead of starting another.
/// ECS allows up to 64 characters.
pub fn client_token(state_parameter: &str, deployment: &str, attempt: u32) -> String {
    let mut hash = Sha256::new();
    for part in [state_parameter, deployment, &attempt.to_string()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(24).map(|b| format!("{b:02x}")).collect();
    format!("mo-{attempt}-{hex}")
}

/// The task RunTask gave us for an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub task_arn: String,
    /// The `clientToken` returned a task this attempt started before, which
    /// has already stopped (or ECS answered `ConflictException` naming it):
    /// a late duplicate is replaying a finished attempt, so its outcome must
    /// be looked at and recorded now — no later continuation will.
    pub replayed: bool,
}

/// Why RunTask did not give us a task.
#[derive(Debug, Clone, PartialEq)]
pub enum NotStarted {
    /// ECS could not place or start it (`failures[]`, capacity, throttling):
    /// counts as an attempt; `transient` says whether another may succeed.
    Attempt { reason: String, transient: bool },
    /// ECS did not answer (timeout, 5xx or throttling after the SDK's
    /// retries): the task may have been created. Retry the *same* attempt
    /// with the same `clientToken`; never count this as a failed attempt.
    Unknown(String),
    /// Retrying will not help: the failure to report.
    Fatal(Failure),
}

/// Starts the migration task for one attempt, running `task_definition`.
/// Idempotent per `client_token` (which must always come with the same
/// revision: the attempt's, recorded before RunTask).
pub async fn run(
    ecs: &Client,
    config: &Config,
    task_definition: &str,
    container: &Container,
    placement: &Placement,
    deployment: &str,
    client_token: &str,
) -> Result<Started, NotStarted> {
    let mut overrides = ContainerOverride::builder().name(&container.name);
    if let Some(command) = &config.command {
        overrides = overrides.set_command(Some(command.clone()));
    }
    let Environment(environment) = &config.environment;
    for (name, value) in environment {
        overrides = overrides.environment(KeyValuePair::builder().name(name).value(value).build());
    }
    let mut request = ecs
        .run_task()
        .cluster(&config.cluster)
        .task_definition(task_definition)
        .count(1)
        .started_by(STARTED_BY)
        .client_token(client_token)
        .tags(Tag::builder().key(DEPLOYMENT_TAG).value(deployment).build())
        .tags(Tag::builder().key(ATTEMPT_TAG).value(client_token).build())
        .overrides(
            TaskOverride::builder()
                .container_overrides(overrides.build())
                .build(),
        );
    if let Some((subnets, security_groups, public)) = &placement.awsvpc {
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(subnets.clone()))
            .set_security_groups((!security_groups.is_empty()).then(|| security_groups.clone()))
            .set_assign_public_ip(public.map(|p| {
                if p {
                    AssignPublicIp::Enabled
                } else {
                    AssignPublicIp::Disabled
                }
            }))
            .build()
            .map_err(|e| NotStarted::Fatal(Failure::Configuration(format!("`network`: {e}"))))?;
        request = request.network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(vpc)
                .build(),
        );
    }
    if let Some(launch_type) = &placement.launch_type {
        request = request.launch_type(LaunchType::from(launch_type.as_str()));
    }
    for item in &placement.capacity_provider_strategy {
        let item = CapacityProviderStrategyItem::builder()
            .capacity_provider(&item.capacity_provider)
            .set_weight(item.weight)
            .set_base(item.base)
            .build()
            .map_err(|e| {
                NotStarted::Fatal(Failure::Configuration(format!(
                    "`capacityProviderStrategy`: {e}"
                )))
            })?;
        request = request.capacity_provider_strategy(item);
    }
    if let Some(version) = &placement.platform_version {
        request = request.platform_version(version);
    }

    match request.send().await {
        Ok(out) => {
            if let Some(task) = out.tasks().first()
                && let Some(arn) = task.task_arn()
            {
                let stopped = task.last_status() == Some("STOPPED");
                return Ok(Started {
                    task_arn: arn.to_owned(),
                    replayed: stopped,
                });
            }
            let reason = out
                .failures()
                .iter()
                .map(|f| match f.detail() {
                    Some(detail) => format!("{} ({detail})", f.reason().unwrap_or("unknown")),
                    None => f.reason().unwrap_or("unknown").to_owned(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let reason = if reason.is_empty() {
                "RunTask returned no task and no failure".to_owned()
            } else {
                reason
            };
            Err(NotStarted::Attempt {
                transient: crate::outcome::is_transient(&reason),
                reason,
            })
        }
        Err(e) => {
            // A reused token with different parameters: ECS names the task the
            // token already started. That task *is* this attempt.
            if let Some(conflict) = e.as_service_error().filter(|s| s.is_conflict_exception())
                && let aws_sdk_ecs::operation::run_task::RunTaskError::ConflictException(c) =
                    conflict
                && let Some(task) = c.resource_ids().first()
            {
                return Ok(Started {
                    task_arn: task.clone(),
                    replayed: true,
                });
            }
            match Failure::from_sdk("ecs:RunTask", e) {
                Failure::Unavailable { detail, .. } => Err(NotStarted::Unknown(detail)),
                other => Err(NotStarted::Fatal(other)),
            }
        }
    }
}

/// What ECS says about a task, as plain data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskView {
    pub arn: String,
    pub last_status: String,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    /// Epoch seconds.
    pub created_at: Option<f64>,
    pub started_at: Option<f64>,
    pub stopped_at: Option<f64>,
    pub containers: BTreeMap<String, ContainerView>,
}

/// One container of a task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerView {
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// DescribeTasks for one task; `None` when ECS no longer knows it (stopped
/// tasks are kept for about an hour).
pub async fn describe(
    ecs: &Client,
    cluster: &str,
    task_arn: &str,
) -> Result<Option<TaskView>, Failure> {
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .tasks(task_arn)
        .send()
        .await
        .map_err(|e| Failure::from_sdk("ecs:DescribeTasks", e))?;
    Ok(out.tasks().first().map(|task| view(task, task_arn)))
}

fn view(task: &aws_sdk_ecs::types::Task, task_arn: &str) -> TaskView {
    let secs = |t: Option<&aws_sdk_ecs::primitives::DateTime>| t.map(|t| t.as_secs_f64());
    TaskView {
        arn: task.task_arn().unwrap_or(task_arn).to_owned(),
        last_status: task.last_status().unwrap_or("PROVISIONING").to_owned(),
        stop_code: task.stop_code().map(|c| c.as_str().to_owned()),
        stopped_reason: task.stopped_reason().map(str::to_owned),
        created_at: secs(task.created_at()),
        started_at: secs(task.started_at()),
        stopped_at: secs(task.stopped_at()),
        containers: task
            .containers()
            .iter()
            .map(|c| {
                (
                    c.name().unwrap_or_default().to_owned(),
                    ContainerView {
                        exit_code: c.exit_code(),
                        reason: c.reason().map(str::to_owned),
                    },
                )
            })
            .collect(),
    }
}

/// The task we started for the attempt whose `clientToken` this is, in
/// `cluster` since `since` (epoch seconds), preferring one that is not
/// `STOPPED`: the proof a lock contender needs that a holder without a
/// recorded task started none.
/// Stopped tasks stay listed for about an hour, so a task started within
/// the last hour cannot hide.
pub async fn find_started(
    ecs: &Client,
    cluster: &str,
    client_token: &str,
    since: f64,
) -> Result<Option<TaskView>, Failure> {
    let mut arns = Vec::new();
    for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let mut next_token = None;
        loop {
            let out = ecs
                .list_tasks()
                .cluster(cluster)
                .started_by(STARTED_BY)
                .desired_status(status.clone())
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| Failure::from_sdk("ecs:ListTasks", e))?;
            arns.extend(out.task_arns().iter().cloned());
            next_token = out.next_token;
            if next_token.is_none() {
                break;
            }
        }
    }
    let mut found: Vec<TaskView> = Vec::new();
    for chunk in arns.chunks(100) {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .include(TaskField::Tags)
            .send()
            .await
            .map_err(|e| Failure::from_sdk("ecs:DescribeTasks", e))?;
        // Listed but not described (ECS is eventually consistent): it may be
        // the attempt's task, so nothing is proven yet — look again later.
        if let Some(missing) = out.failures().first() {
            return Err(Failure::Unavailable {
                api: "ecs:DescribeTasks",
                detail: format!(
                    "ECS lists task {} but does not describe it yet ({})",
                    missing.arn().unwrap_or("?"),
                    missing.reason().unwrap_or("no reason")
                ),
            });
        }
        found.extend(
            out.tasks()
                .iter()
                .filter(|t| {
                    t.tags().iter().any(|tag| {
                        tag.key() == Some(ATTEMPT_TAG) && tag.value() == Some(client_token)
                    })
                })
                .map(|t| view(t, ""))
                .filter(|v| v.created_at.is_none_or(|at| at >= since)),
        );
    }
    found.sort_by_key(|v| v.last_status == "STOPPED");
    Ok(found.into_iter().next())
}

/// Stops a task, saying why in `stoppedReason` (ECS keeps 255 characters).
pub async fn stop(
    ecs: &Client,
    cluster: &str,
    task_arn: &str,
    reason: &str,
) -> Result<(), Failure> {
    let reason: String = reason.chars().take(255).collect();
    ecs.stop_task()
        .cluster(cluster)
        .task(task_arn)
        .reason(reason)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Failure::from_sdk("ecs:StopTask", e))
}

/// The short id of a task ARN, as the console shows it.
pub fn task_id(task_arn: &str) -> &str {
    last_segment(task_arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_token_is_stable_short_and_per_attempt() {
        let a1 = client_token("/migrate-once/app/db", "exec-1", 1);
        assert_eq!(a1, client_token("/migrate-once/app/db", "exec-1", 1));
        assert_ne!(a1, client_token("/migrate-once/app/db", "exec-1", 2));
        assert_ne!(a1, client_token("/migrate-once/app/db", "exec-2", 1));
        assert_ne!(a1, client_token("/migrate-once/other/db", "exec-1", 1));
        assert!(client_token("/p", &"x".repeat(500), 4_000_000_000).len() <= 64);
        assert!(a1.starts_with("mo-1-"));
    }

    #[test]
    fn picks_the_decisive_container() {
        let logs = Some(("/ecs/app".to_owned(), "migrate".to_owned()));
        let container = |name: &str, logs| Container {
            name: name.into(),
            logs,
        };
        let containers = vec![
            (container("app", logs.clone()), true),
            (container("envoy", None), false),
        ];
        let chosen = pick_container("app:3", &containers, None).unwrap();
        assert_eq!(
            chosen,
            Container {
                name: "app".into(),
                logs
            }
        );
        assert_eq!(
            pick_container("app:3", &containers, Some("envoy"))
                .unwrap()
                .name,
            "envoy"
        );
        let err = pick_container("app:3", &containers, Some("web")).unwrap_err();
        assert!(
            err.to_string().contains(
                "container `web` is not in task definition app:3 (containers: app, envoy)"
            )
        );
        let two = vec![(container("a", None), true), (container("b", None), true)];
        let err = pick_container("x:1", &two, None).unwrap_err();
        assert!(err.to_string().contains("2 essential containers"), "{err}");
    }
}
