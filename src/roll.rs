//! Rolling the services after the migration (SPEC §4b): what exactly
//! `UpdateService` gets, following each new deployment by its id, and the
//! words the pipeline reads.
//!
//! The decisions are pure: [`plan_roll`] looks at what DescribeServices
//! said ([`ServiceView`]) about the deployments this run started and says
//! wait, done or failed — and which failure. The AWS layer is thin:
//! [`update`] sends one [`UpdateSpec`], [`describe`] and [`stopped_reasons`]
//! gather facts. Claiming the `UpdateService` (one per service per run) and
//! carrying the followed ids across continuations is the state machine's
//! job, not this module's.
//!
//! Why follow the deployment *by its id* rather than "is the service
//! stable": after a circuit-breaker rollback the service is stable again —
//! on the old revision. `aws ecs wait services-stable` and several deploy
//! tools report that as success. A followed id that is `FAILED`, no longer
//! `PRIMARY`, or gone is a failed roll, reported on the first look after
//! ECS knows it.

use std::collections::BTreeMap;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::types::{DesiredStatus, Task};
use aws_smithy_types::date_time::{DateTime, Format};
use sha2::{Digest, Sha256};

use crate::failure::Failure;
use crate::outcome::human;
use crate::report::{MAX_MESSAGE, MAX_SUMMARY, truncate};

/// Output variable prefix: `ServiceDeployment_<service>` holds the ECS
/// deployment id (`ecs-svc/…`) the roll started for that service. See
/// [`output_name`] for how a service name becomes a variable name.
pub const OUTPUT_PREFIX: &str = "ServiceDeployment_";

/// Newest service events quoted in a failure message (SPEC §4b: up to 5).
pub const EVENTS_QUOTED: usize = 5;
/// Stopped tasks of a failed deployment quoted in a failure message.
pub const STOPPED_QUOTED: usize = 5;

/// Exactly what one `UpdateService` call sends, as a value: "what do we ask
/// ECS to do to this service" is one function to read and test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSpec {
    pub cluster: String,
    /// Service name or ARN, as configured in `deploy.services`.
    pub service: String,
    /// The revision to roll to (§4a images replaced); `None` when there are
    /// no images: the service's current task definition is redeployed.
    pub task_definition: Option<String>,
    /// Always `true` from [`UpdateSpec::new`]: a revision equal to the one
    /// the service runs would otherwise start no deployment, and there
    /// would be nothing new to follow. With it, ECS starts exactly one.
    pub force_new_deployment: bool,
}

impl UpdateSpec {
    /// The update for one service of `deploy.services`.
    pub fn new(cluster: &str, service: &str, task_definition: Option<&str>) -> Self {
        UpdateSpec {
            cluster: cluster.to_owned(),
            service: service.to_owned(),
            task_definition: task_definition.map(str::to_owned),
            force_new_deployment: true,
        }
    }
}

/// The short name of a service given as a name or an ARN
/// (`arn:aws:ecs:…:service/<cluster>/<name>`).
pub fn service_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

/// Sends one `UpdateService` and returns the id of the deployment it
/// started (the service's `PRIMARY` deployment in the answer).
///
/// Not idempotent — every call starts a deployment, and ECS takes no
/// client token for it — so the caller claims it first, and this call is
/// sent **once**, without the SDK's retries: a 5xx or timeout after ECS
/// applied it, retried, would start a second deployment. So
/// [`Failure::Unavailable`] here means *unknown*: the update may have
/// happened. Look ([`describe`] + [`deployment_since`]) before sending it
/// again. A service that does not exist or is not `ACTIVE`, or that does
/// not use ECS rolling deployments (no `PRIMARY` deployment), is a
/// configuration error naming it.
pub async fn update(ecs: &Client, spec: &UpdateSpec) -> Result<String, Failure> {
    let name = service_name(&spec.service);
    let out = ecs
        .update_service()
        .cluster(&spec.cluster)
        .service(&spec.service)
        .set_task_definition(spec.task_definition.clone())
        .force_new_deployment(spec.force_new_deployment)
        .customize()
        .config_override(aws_sdk_ecs::config::Builder::default().retry_config(RetryConfig::disabled()))
        .send()
        .await
        .map_err(|e| {
            let missing = e.as_service_error().is_some_and(|s| {
                s.is_service_not_found_exception()
                    || s.is_service_not_active_exception()
                    || s.is_cluster_not_found_exception()
            });
            if missing {
                Failure::Configuration(format!(
                    "service `{name}` cannot be updated in cluster `{}`: {}; check `deploy.services` and `cluster`",
                    spec.cluster,
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                ))
            } else {
                Failure::from_sdk("ecs:UpdateService", e)
            }
        })?;
    let service = out.service();
    service
        .into_iter()
        .flat_map(|s| s.deployments())
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.id())
        .map(str::to_owned)
        .ok_or_else(|| {
            let controller = service
                .and_then(|s| s.deployment_controller())
                .map(|c| c.r#type().as_str().to_owned())
                .unwrap_or_else(|| "unknown".into());
            Failure::Configuration(format!(
                "service `{name}` answered UpdateService without a PRIMARY deployment (deployment controller: {controller}); \
                 `deploy` can only follow services that use ECS rolling deployments"
            ))
        })
}

/// One deployment of a service, as DescribeServices tells it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentView {
    /// `ecs-svc/<digits>`.
    pub id: String,
    /// `PRIMARY` (the one ECS is moving to), `ACTIVE` (being drained, or
    /// left behind by a rollback) or `INACTIVE`.
    pub status: String,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`; absent on services without
    /// the deployment circuit breaker's bookkeeping.
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
    pub desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
    /// Consecutively failed tasks (reset once one runs).
    pub failed_tasks: i32,
    pub task_definition: Option<String>,
    /// Epoch seconds.
    pub created_at: Option<f64>,
}

/// One service event (`(service web) has reached a steady state.`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceEvent {
    /// Epoch seconds.
    pub created_at: Option<f64>,
    pub message: String,
}

/// What DescribeServices says about one service, as plain data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceView {
    pub name: String,
    /// `ACTIVE`, `DRAINING` (being deleted) or `INACTIVE` (deleted).
    pub status: String,
    /// The task definition of the `PRIMARY` deployment.
    pub task_definition: Option<String>,
    pub desired_count: i32,
    pub running_count: i32,
    pub deployments: Vec<DeploymentView>,
    /// Newest first, at most [`EVENTS_QUOTED`].
    pub events: Vec<ServiceEvent>,
}

impl ServiceView {
    /// The service's `PRIMARY` deployment id.
    pub fn primary(&self) -> Option<&str> {
        self.deployments
            .iter()
            .find(|d| d.status == "PRIMARY")
            .map(|d| d.id.as_str())
    }
}

/// DescribeServices for `services` (names or ARNs, 10 per call). A service
/// ECS does not know is simply absent from the answer ([`plan_roll`] calls
/// that gone).
pub async fn describe(
    ecs: &Client,
    cluster: &str,
    services: &[String],
) -> Result<Vec<ServiceView>, Failure> {
    let mut views = Vec::new();
    for chunk in services.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| Failure::from_sdk("ecs:DescribeServices", e))?;
        views.extend(out.services().iter().map(service_view));
    }
    Ok(views)
}

fn secs(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<f64> {
    t.map(|t| t.as_secs_f64())
}

fn service_view(s: &aws_sdk_ecs::types::Service) -> ServiceView {
    let mut events: Vec<ServiceEvent> = s
        .events()
        .iter()
        .map(|e| ServiceEvent {
            created_at: secs(e.created_at()),
            message: e.message().unwrap_or_default().to_owned(),
        })
        .collect();
    // ECS lists events newest first; sort anyway so "newest" never depends
    // on that (a stable sort keeps ECS's order for equal times).
    events.sort_by(|a, b| {
        b.created_at
            .unwrap_or(0.0)
            .total_cmp(&a.created_at.unwrap_or(0.0))
    });
    events.truncate(EVENTS_QUOTED);
    ServiceView {
        name: s.service_name().unwrap_or_default().to_owned(),
        status: s.status().unwrap_or("ACTIVE").to_owned(),
        task_definition: s.task_definition().map(str::to_owned),
        desired_count: s.desired_count(),
        running_count: s.running_count(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| DeploymentView {
                id: d.id().unwrap_or_default().to_owned(),
                status: d.status().unwrap_or_default().to_owned(),
                rollout_state: d.rollout_state().map(|r| r.as_str().to_owned()),
                rollout_state_reason: d.rollout_state_reason().map(str::to_owned),
                desired_count: d.desired_count(),
                running_count: d.running_count(),
                pending_count: d.pending_count(),
                failed_tasks: d.failed_tasks(),
                task_definition: d.task_definition().map(str::to_owned),
                created_at: secs(d.created_at()),
            })
            .collect(),
        events,
    }
}

/// A stopped task of a deployment, and why it stopped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoppedTask {
    pub task_id: String,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    /// `(container, exit code, reason)` for containers that say something.
    pub containers: Vec<(String, Option<i32>, Option<String>)>,
    /// Epoch seconds.
    pub stopped_at: Option<f64>,
}

/// The stopped tasks of one deployment, newest first: ListTasks
/// (`serviceName`, `desiredStatus=STOPPED`; ECS keeps stopped tasks for
/// about an hour) then DescribeTasks, keeping the tasks whose `startedBy`
/// is the deployment id — ECS sets it so on every task a service
/// deployment starts. `startedBy` is not used as the ListTasks filter
/// because ECS requires it to be the only one. At most 100 tasks looked at.
pub async fn stopped_reasons(
    ecs: &Client,
    cluster: &str,
    service: &str,
    deployment_id: &str,
) -> Result<Vec<StoppedTask>, Failure> {
    let listed = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service_name(service))
        .desired_status(DesiredStatus::Stopped)
        .max_results(100)
        .send()
        .await
        .map_err(|e| Failure::from_sdk("ecs:ListTasks", e))?;
    if listed.task_arns().is_empty() {
        return Ok(Vec::new());
    }
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(listed.task_arns().to_vec()))
        .send()
        .await
        .map_err(|e| Failure::from_sdk("ecs:DescribeTasks", e))?;
    let mut stopped: Vec<StoppedTask> = out
        .tasks()
        .iter()
        .filter(|t| t.started_by() == Some(deployment_id))
        .map(stopped_task)
        .collect();
    stopped.sort_by(|a, b| {
        b.stopped_at
            .unwrap_or(0.0)
            .total_cmp(&a.stopped_at.unwrap_or(0.0))
    });
    Ok(stopped)
}

fn stopped_task(t: &Task) -> StoppedTask {
    StoppedTask {
        task_id: t
            .task_arn()
            .map(service_name)
            .unwrap_or_default()
            .to_owned(),
        stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
        stopped_reason: t.stopped_reason().map(str::to_owned),
        containers: t
            .containers()
            .iter()
            .filter(|c| c.exit_code().is_some_and(|x| x != 0) || c.reason().is_some())
            .map(|c| {
                (
                    c.name().unwrap_or_default().to_owned(),
                    c.exit_code(),
                    c.reason().map(str::to_owned),
                )
            })
            .collect(),
        stopped_at: secs(t.stopped_at()),
    }
}

/// How far one followed deployment is.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub service: String,
    pub deployment_id: String,
    pub running: i32,
    pub desired: i32,
    /// Its `rolloutState` is `COMPLETED`.
    pub completed: bool,
}

/// Why a roll failed.
#[derive(Debug, Clone, PartialEq)]
pub enum RollFailure {
    /// The deployment is `FAILED` (still `PRIMARY`: circuit breaker without
    /// rollback); ECS's `rolloutStateReason`.
    Failed { reason: Option<String> },
    /// The deployment is listed but no longer `PRIMARY`: the circuit breaker
    /// rolled back (or something else deployed over it). `primary` is the
    /// deployment the service runs now.
    RolledBack {
        reason: Option<String>,
        primary: Option<String>,
    },
    /// The deployment (or the whole service) is no longer listed: rolled
    /// back and already cleaned up, or the service was deleted.
    Gone { primary: Option<String> },
    /// Still in progress past `deploy.timeoutSeconds`.
    TimedOut {
        elapsed: u64,
        running: i32,
        desired: i32,
    },
}

/// What to do next about the roll.
#[derive(Debug, Clone, PartialEq)]
pub enum RollPlan {
    /// Every followed deployment is `COMPLETED`: report success.
    Done,
    /// Keep following; `percent` (0..=99) is the roll's own share done.
    Wait {
        progress: Vec<Progress>,
        percent: i32,
    },
    /// Report `JobFailed` for this service (the first failing one, in the
    /// order of `deploy.services`).
    Failed {
        service: String,
        deployment_id: String,
        why: RollFailure,
    },
}

/// Decides the roll from the followed `(service, deployment id)` pairs (in
/// `deploy.services` order) and what DescribeServices said about them.
///
/// Fails fast: a `FAILED`, no-longer-`PRIMARY` or vanished deployment fails
/// the roll whatever the others do, so a rollback is reported on the first
/// look after it happened, not at the timeout. `started_at`/`now` are epoch
/// seconds; past `timeout` seconds a roll still in progress is timed out.
pub fn plan_roll(
    followed: &[(String, String)],
    views: &[ServiceView],
    started_at: u64,
    now: u64,
    timeout: u64,
) -> RollPlan {
    let mut progress = Vec::new();
    for (service, id) in followed {
        let failed = |why| RollPlan::Failed {
            service: service_name(service).to_owned(),
            deployment_id: id.clone(),
            why,
        };
        let Some(view) = views
            .iter()
            .find(|v| v.name == service_name(service) && v.status == "ACTIVE")
        else {
            return failed(RollFailure::Gone { primary: None });
        };
        let primary = view.primary().map(str::to_owned);
        let Some(deployment) = view.deployments.iter().find(|d| &d.id == id) else {
            return failed(RollFailure::Gone { primary });
        };
        if deployment.status != "PRIMARY" {
            return failed(RollFailure::RolledBack {
                reason: deployment.rollout_state_reason.clone(),
                primary,
            });
        }
        if deployment.rollout_state.as_deref() == Some("FAILED") {
            return failed(RollFailure::Failed {
                reason: deployment.rollout_state_reason.clone(),
            });
        }
        progress.push(Progress {
            service: service_name(service).to_owned(),
            deployment_id: id.clone(),
            running: deployment.running_count,
            desired: deployment.desired_count,
            completed: match deployment.rollout_state.as_deref() {
                Some(state) => state == "COMPLETED",
                // ECS reports no rolloutState for a service behind a Classic
                // Load Balancer: steady state is then the only deployment
                // left, running what it wants (as `services-stable` says).
                None => {
                    view.deployments.len() == 1
                        && deployment.running_count == deployment.desired_count
                }
            },
        });
    }
    if progress.iter().all(|p| p.completed) {
        return RollPlan::Done;
    }
    let elapsed = now.saturating_sub(started_at);
    if elapsed >= timeout
        && let Some(p) = progress.iter().find(|p| !p.completed)
    {
        return RollPlan::Failed {
            service: p.service.clone(),
            deployment_id: p.deployment_id.clone(),
            why: RollFailure::TimedOut {
                elapsed,
                running: p.running,
                desired: p.desired,
            },
        };
    }
    let share = |p: &Progress| {
        if p.completed {
            1.0
        } else if p.desired <= 0 {
            0.0
        } else {
            (p.running.max(0) as f64 / p.desired as f64).min(1.0)
        }
    };
    let total: f64 = progress.iter().map(share).sum();
    let percent = ((total * 100.0) / progress.len().max(1) as f64) as i32;
    RollPlan::Wait {
        progress,
        percent: percent.clamp(0, 99),
    }
}

/// The deployment an `UpdateService` of ours started, found again after a
/// crash between the call and recording its answer: the *oldest*
/// deployment of the service created at or after `since` (epoch seconds;
/// pass the claim's time less a few seconds of clock skew) — a circuit
/// breaker's rollback deployment comes after ours, and must never be taken
/// for it. `None`: no deployment was started since, so the claimed update
/// never reached ECS.
///
/// Only sound because the claim guarantees no other invocation of this run
/// updates the service; a deployment someone else started in the same
/// seconds would be taken for ours (and then followed, which is what the
/// pipeline wants to know about anyway).
pub fn deployment_since(view: &ServiceView, since: f64) -> Option<String> {
    view.deployments
        .iter()
        .filter(|d| d.created_at.is_some_and(|at| at >= since))
        .min_by(|a, b| {
            a.created_at
                .unwrap_or(0.0)
                .total_cmp(&b.created_at.unwrap_or(0.0))
        })
        .map(|d| d.id.clone())
}

/// The output variable name for a service's deployment id:
/// `ServiceDeployment_<service>`, where every character outside
/// CodePipeline's `[A-Za-z0-9@\-_]` becomes `_` (ECS names already fit) and
/// a name that would exceed CodePipeline's 128 characters is cut and ends
/// with 8 hex digits of its SHA-256, so two long names cannot collide.
pub fn output_name(service: &str) -> String {
    let name: String = service_name(service)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let full = format!("{OUTPUT_PREFIX}{name}");
    if full.len() <= 128 {
        return full;
    }
    let digest = Sha256::digest(service.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}_{hex}", &full[..128 - 9])
}

/// The output variables the roll adds on success: one per followed service.
pub fn outputs(followed: &[(String, String)]) -> BTreeMap<String, String> {
    followed
        .iter()
        .map(|(service, id)| (output_name(service), id.clone()))
        .collect()
}

/// The in-progress summary: `Rolling web: 3/4 running (deployment
/// ecs-svc/123…)`, each service still rolling, then those done. Fits 2048.
pub fn progress_summary(progress: &[Progress]) -> String {
    let rolling: Vec<String> = progress
        .iter()
        .filter(|p| !p.completed)
        .map(|p| {
            format!(
                "{}: {}/{} running (deployment {})",
                p.service, p.running, p.desired, p.deployment_id
            )
        })
        .collect();
    let done: Vec<&str> = progress
        .iter()
        .filter(|p| p.completed)
        .map(|p| p.service.as_str())
        .collect();
    let mut text = format!("Rolling {}", rolling.join("; "));
    if !done.is_empty() {
        text.push_str(&format!("; done: {}", done.join(", ")));
    }
    truncate(&text, MAX_SUMMARY)
}

/// The success summary's roll part: `rolled web (ecs-svc/1…), worker (ecs-svc/2…):
/// every deployment COMPLETED`. Fits 2048.
pub fn done_summary(followed: &[(String, String)]) -> String {
    let rolled: Vec<String> = followed
        .iter()
        .map(|(s, id)| format!("{} ({id})", service_name(s)))
        .collect();
    truncate(
        &format!("rolled {}: every deployment COMPLETED", rolled.join(", ")),
        MAX_SUMMARY,
    )
}

fn when(t: Option<f64>) -> String {
    t.and_then(|t| DateTime::from_secs(t as i64).fmt(Format::DateTime).ok())
        .map(|t| format!("{t} "))
        .unwrap_or_default()
}

/// The `JobFailed` message for a failed roll: the service, the deployment,
/// what ECS says (`rolloutStateReason`), the newest events (up to 5), the
/// stopped reasons of its failed tasks (up to 5), and what to do. `events`
/// and `stopped` come from [`describe`] and [`stopped_reasons`]. Fits 5000.
pub fn failure_message(
    service: &str,
    deployment_id: &str,
    why: &RollFailure,
    events: &[ServiceEvent],
    stopped: &[StoppedTask],
) -> String {
    let service = service_name(service);
    let reason = |r: &Option<String>| {
        r.as_deref()
            .map(|r| format!(": {}", truncate(r, 500)))
            .unwrap_or_default()
    };
    let head = match why {
        RollFailure::Failed { reason: r } => {
            format!(
                "Service `{service}` failed to roll: deployment {deployment_id} FAILED{}.",
                reason(r)
            )
        }
        RollFailure::RolledBack { reason: r, primary } => format!(
            "Service `{service}` was rolled back: deployment {deployment_id} is no longer the PRIMARY deployment{}{}.",
            primary
                .as_deref()
                .map(|p| format!(" (the service runs {p} again)"))
                .unwrap_or_default(),
            reason(r)
        ),
        RollFailure::Gone { primary: Some(p) } => format!(
            "Service `{service}` was rolled back: deployment {deployment_id} is gone and the service's PRIMARY deployment is {p} (the circuit breaker rolled back, or another update replaced it)."
        ),
        RollFailure::Gone { primary: None } => format!(
            "Service `{service}` is no longer ACTIVE (deleted or draining) while deployment {deployment_id} was rolling."
        ),
        RollFailure::TimedOut {
            elapsed,
            running,
            desired,
        } => format!(
            "Service `{service}` did not become stable in {}: deployment {deployment_id} is still in progress with {running}/{desired} tasks running.",
            human(*elapsed)
        ),
    };
    let mut text = head;
    if !events.is_empty() {
        text.push_str(" Newest events:");
        for e in events.iter().take(EVENTS_QUOTED) {
            text.push_str(&format!(
                " [{}{}]",
                when(e.created_at),
                truncate(&e.message, 400)
            ));
        }
        text.push('.');
    }
    if !stopped.is_empty() {
        text.push_str(" Stopped tasks of the deployment:");
        for t in stopped.iter().take(STOPPED_QUOTED) {
            let mut line = format!(
                " task {}: {}",
                t.task_id,
                t.stopped_reason.as_deref().unwrap_or("no reason given")
            );
            for (name, code, why) in &t.containers {
                line.push_str(&format!("; container `{name}`"));
                if let Some(code) = code {
                    line.push_str(&format!(" exited {code}"));
                }
                if let Some(why) = why {
                    line.push_str(&format!(": {why}"));
                }
            }
            text.push_str(&truncate(&line, 400));
            text.push('.');
        }
    }
    let todo = match why {
        RollFailure::TimedOut { .. } => format!(
            " ECS goes on with the deployment; look at service `{service}` in the ECS console (events, stopped tasks, health checks), raise `deploy.timeoutSeconds` if it is only slow, then retry the stage: the migration is already applied and is not run again."
        ),
        _ => format!(
            " Fix the cause above (image, task definition, health checks; the tasks' logs say more), then retry the stage: service `{service}` is rolled again and the migration, already applied, is not run again."
        ),
    };
    text.push_str(&todo);
    truncate(&text, MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: &str, status: &str, state: &str, running: i32) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            status: status.into(),
            rollout_state: Some(state.into()),
            rollout_state_reason: (state == "FAILED")
                .then(|| "ECS deployment circuit breaker: tasks failed to start.".into()),
            desired_count: 4,
            running_count: running,
            ..Default::default()
        }
    }

    fn view(name: &str, deployments: Vec<DeploymentView>) -> ServiceView {
        ServiceView {
            name: name.into(),
            status: "ACTIVE".into(),
            desired_count: 4,
            deployments,
            ..Default::default()
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(s, d)| (s.to_string(), d.to_string()))
            .collect()
    }

    /// What `plan_roll` decides, shortened for a table.
    fn short(plan: &RollPlan) -> String {
        match plan {
            RollPlan::Done => "done".into(),
            RollPlan::Wait { percent, .. } => format!("wait {percent}"),
            RollPlan::Failed { service, why, .. } => {
                let why = match why {
                    RollFailure::Failed { .. } => "failed",
                    RollFailure::RolledBack { .. } => "rolled back",
                    RollFailure::Gone { primary: Some(_) } => "gone, replaced",
                    RollFailure::Gone { primary: None } => "gone",
                    RollFailure::TimedOut { .. } => "timed out",
                };
                format!("{service}: {why}")
            }
        }
    }

    #[test]
    fn plan_roll_table() {
        let web = |d: Vec<DeploymentView>| view("web", d);
        let worker = |d: Vec<DeploymentView>| view("worker", d);
        let old = deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 4);
        let both = pairs(&[("web", "ecs-svc/2"), ("worker", "ecs-svc/9")]);
        let web_only = pairs(&[("web", "ecs-svc/2")]);
        type Case<'a> = (
            &'a str,
            &'a [(String, String)],
            Vec<ServiceView>,
            u64,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "in progress",
                &web_only,
                vec![web(vec![
                    deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 3),
                    old.clone(),
                ])],
                10,
                "wait 75",
            ),
            (
                "completed",
                &web_only,
                vec![web(vec![deployment(
                    "ecs-svc/2",
                    "PRIMARY",
                    "COMPLETED",
                    4,
                )])],
                10,
                "done",
            ),
            (
                "failed, still primary",
                &web_only,
                vec![web(vec![
                    deployment("ecs-svc/2", "PRIMARY", "FAILED", 0),
                    old.clone(),
                ])],
                10,
                "web: failed",
            ),
            (
                "rolled back: listed, not primary",
                &web_only,
                vec![web(vec![
                    deployment("ecs-svc/2", "ACTIVE", "FAILED", 0),
                    deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 4),
                ])],
                10,
                "web: rolled back",
            ),
            (
                "rolled back and cleaned up",
                &web_only,
                vec![web(vec![deployment(
                    "ecs-svc/1",
                    "PRIMARY",
                    "COMPLETED",
                    4,
                )])],
                10,
                "web: gone, replaced",
            ),
            ("service deleted", &web_only, vec![], 10, "web: gone"),
            (
                "timed out",
                &web_only,
                vec![web(vec![deployment(
                    "ecs-svc/2",
                    "PRIMARY",
                    "IN_PROGRESS",
                    1,
                )])],
                600,
                "web: timed out",
            ),
            (
                "a failure beats the timeout",
                &web_only,
                vec![web(vec![deployment("ecs-svc/2", "PRIMARY", "FAILED", 0)])],
                600,
                "web: failed",
            ),
            (
                "completed at the timeout is done",
                &web_only,
                vec![web(vec![deployment(
                    "ecs-svc/2",
                    "PRIMARY",
                    "COMPLETED",
                    4,
                )])],
                600,
                "done",
            ),
            (
                "first done, second rolling",
                &both,
                vec![
                    web(vec![deployment("ecs-svc/2", "PRIMARY", "COMPLETED", 4)]),
                    worker(vec![deployment("ecs-svc/9", "PRIMARY", "IN_PROGRESS", 0)]),
                ],
                10,
                "wait 50",
            ),
            (
                "second fails while first is done",
                &both,
                vec![
                    web(vec![deployment("ecs-svc/2", "PRIMARY", "COMPLETED", 4)]),
                    worker(vec![deployment("ecs-svc/9", "PRIMARY", "FAILED", 0)]),
                ],
                10,
                "worker: failed",
            ),
            (
                "second fails while first is still rolling",
                &both,
                vec![
                    web(vec![deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 1)]),
                    worker(vec![deployment("ecs-svc/9", "ACTIVE", "FAILED", 0)]),
                ],
                10,
                "worker: rolled back",
            ),
            (
                "both completed",
                &both,
                vec![
                    worker(vec![deployment("ecs-svc/9", "PRIMARY", "COMPLETED", 4)]),
                    web(vec![deployment("ecs-svc/2", "PRIMARY", "COMPLETED", 4)]),
                ],
                10,
                "done",
            ),
        ];
        for (name, followed, views, now, expected) in cases {
            let plan = plan_roll(followed, &views, 0, now, 600);
            assert_eq!(short(&plan), expected, "{name}: {plan:?}");
        }
    }

    #[test]
    fn without_a_rollout_state_steady_means_alone_and_full() {
        let bare = |id: &str, status: &str, running: i32| DeploymentView {
            rollout_state: None,
            ..deployment(id, status, "", running)
        };
        let followed = pairs(&[("web", "ecs-svc/2")]);
        let cases = [
            (vec![bare("ecs-svc/2", "PRIMARY", 4)], "done"),
            (vec![bare("ecs-svc/2", "PRIMARY", 3)], "wait 75"),
            (
                vec![
                    bare("ecs-svc/2", "PRIMARY", 4),
                    bare("ecs-svc/1", "ACTIVE", 1),
                ],
                "wait 99",
            ),
        ];
        for (deployments, expected) in cases {
            let plan = plan_roll(&followed, &[view("web", deployments)], 0, 1, 60);
            assert_eq!(short(&plan), expected, "{plan:?}");
        }
    }

    #[test]
    fn a_deployment_started_since_the_claim_is_found_again() {
        let at = |id: &str, created: Option<f64>| DeploymentView {
            created_at: created,
            ..deployment(id, "ACTIVE", "COMPLETED", 4)
        };
        let cases = [
            (vec![at("ecs-svc/1", Some(90.0))], None),
            (
                vec![at("ecs-svc/2", Some(101.0)), at("ecs-svc/1", Some(90.0))],
                Some("ecs-svc/2"),
            ),
            (
                vec![
                    at("ecs-svc/1", Some(90.0)),
                    at("ecs-svc/2", Some(100.0)),
                    at("ecs-svc/3", Some(105.0)),
                ],
                Some("ecs-svc/2"),
            ),
            (vec![at("ecs-svc/9", None)], None),
        ];
        for (deployments, expected) in cases {
            assert_eq!(
                deployment_since(&view("web", deployments), 100.0).as_deref(),
                expected
            );
        }
    }

    #[test]
    fn plan_roll_names_what_it_saw() {
        let views = vec![view(
            "web",
            vec![
                deployment("ecs-svc/2", "ACTIVE", "FAILED", 0),
                deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 4),
            ],
        )];
        let followed = pairs(&[("arn:aws:ecs:us-east-1:1:service/app/web", "ecs-svc/2")]);
        assert_eq!(
            plan_roll(&followed, &views, 0, 1, 60),
            RollPlan::Failed {
                service: "web".into(),
                deployment_id: "ecs-svc/2".into(),
                why: RollFailure::RolledBack {
                    reason: Some("ECS deployment circuit breaker: tasks failed to start.".into()),
                    primary: Some("ecs-svc/1".into()),
                },
            }
        );
        let timed_out = plan_roll(
            &pairs(&[("web", "ecs-svc/1")]),
            &[view(
                "web",
                vec![deployment("ecs-svc/1", "PRIMARY", "IN_PROGRESS", 1)],
            )],
            100,
            1900,
            1800,
        );
        assert_eq!(
            timed_out,
            RollPlan::Failed {
                service: "web".into(),
                deployment_id: "ecs-svc/1".into(),
                why: RollFailure::TimedOut {
                    elapsed: 1800,
                    running: 1,
                    desired: 4
                },
            }
        );
    }

    #[test]
    fn output_names_fit_codepipeline() {
        let cases = [
            ("web", "ServiceDeployment_web"),
            ("api-v2_x", "ServiceDeployment_api-v2_x"),
            (
                "arn:aws:ecs:us-east-1:1:service/app/web",
                "ServiceDeployment_web",
            ),
            ("we.b", "ServiceDeployment_we_b"),
        ];
        for (service, expected) in cases {
            assert_eq!(output_name(service), expected);
        }
        let long_a = output_name(&"a".repeat(255));
        let long_b = output_name(&format!("{}b", "a".repeat(254)));
        assert_eq!(long_a.len(), 128);
        assert_ne!(long_a, long_b);
        for name in [long_a, long_b] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@-_".contains(c))
            );
        }
        assert_eq!(
            outputs(&pairs(&[("web", "ecs-svc/2"), ("worker", "ecs-svc/9")])),
            BTreeMap::from([
                ("ServiceDeployment_web".to_owned(), "ecs-svc/2".to_owned()),
                (
                    "ServiceDeployment_worker".to_owned(),
                    "ecs-svc/9".to_owned()
                ),
            ])
        );
    }

    #[test]
    fn summaries_say_who_is_rolling_and_how_far() {
        let progress = vec![
            Progress {
                service: "web".into(),
                deployment_id: "ecs-svc/123".into(),
                running: 3,
                desired: 4,
                completed: false,
            },
            Progress {
                service: "worker".into(),
                deployment_id: "ecs-svc/456".into(),
                running: 2,
                desired: 2,
                completed: true,
            },
        ];
        assert_eq!(
            progress_summary(&progress),
            "Rolling web: 3/4 running (deployment ecs-svc/123); done: worker"
        );
        assert_eq!(
            done_summary(&pairs(&[("web", "ecs-svc/123")])),
            "rolled web (ecs-svc/123): every deployment COMPLETED"
        );
    }

    #[test]
    fn failure_messages_name_service_reason_events_and_stopped_tasks() {
        let events: Vec<ServiceEvent> = (0..7)
            .map(|i| ServiceEvent {
                created_at: Some(1_764_561_600.0 - i as f64),
                message: format!("(service web) event {i}"),
            })
            .collect();
        let stopped = vec![StoppedTask {
            task_id: "abc123".into(),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![("app".into(), Some(1), Some("bad config".into()))],
            stopped_at: None,
        }];
        let cases = [
            (
                RollFailure::Failed {
                    reason: Some("ECS deployment circuit breaker: tasks failed to start.".into()),
                },
                "Service `web` failed to roll: deployment ecs-svc/2 FAILED: ECS deployment circuit breaker: tasks failed to start.",
            ),
            (
                RollFailure::RolledBack {
                    reason: None,
                    primary: Some("ecs-svc/1".into()),
                },
                "Service `web` was rolled back: deployment ecs-svc/2 is no longer the PRIMARY deployment (the service runs ecs-svc/1 again).",
            ),
            (
                RollFailure::Gone {
                    primary: Some("ecs-svc/1".into()),
                },
                "deployment ecs-svc/2 is gone and the service's PRIMARY deployment is ecs-svc/1",
            ),
            (
                RollFailure::Gone { primary: None },
                "Service `web` is no longer ACTIVE",
            ),
            (
                RollFailure::TimedOut {
                    elapsed: 1800,
                    running: 1,
                    desired: 4,
                },
                "Service `web` did not become stable in 30m00s: deployment ecs-svc/2 is still in progress with 1/4 tasks running.",
            ),
        ];
        for (why, expected) in cases {
            let text = failure_message("web", "ecs-svc/2", &why, &events, &stopped);
            assert!(text.contains(expected), "{text}");
            assert!(text.contains("(service web) event 4"), "{text}");
            assert!(!text.contains("event 5"), "only the newest 5: {text}");
            assert!(
                text.contains(
                    "task abc123: Essential container in task exited; container `app` exited 1: bad config."
                ),
                "{text}"
            );
            assert!(
                text.contains("2025-12-01T04:00:00Z (service web) event 0"),
                "{text}"
            );
            assert!(text.contains("retry the stage"), "{text}");
        }
        let huge = vec![
            ServiceEvent {
                created_at: None,
                message: "x".repeat(10_000),
            };
            5
        ];
        let many = vec![stopped[0].clone(); 50];
        let text = failure_message(
            "web",
            "ecs-svc/2",
            &RollFailure::Failed {
                reason: Some("y".repeat(10_000)),
            },
            &huge,
            &many,
        );
        assert!(text.chars().count() <= MAX_MESSAGE);
        assert!(text.ends_with("is not run again."), "the advice survives");
    }

    #[test]
    fn update_spec_always_forces_a_new_deployment() {
        assert_eq!(
            UpdateSpec::new("app", "web", Some("arn:td/web:7")),
            UpdateSpec {
                cluster: "app".into(),
                service: "web".into(),
                task_definition: Some("arn:td/web:7".into()),
                force_new_deployment: true,
            }
        );
        assert_eq!(UpdateSpec::new("app", "web", None).task_definition, None);
    }
}
