//! Rolling the services after the migration (SPEC §4b): what exactly
//! `UpdateService` gets, following each new deployment by its id, and the
//! words the pipeline reads.
//!
//! The decisions are pure: [`judge`] looks at everything ECS says about one
//! service — its `deployments[]`, its events, and (when `deployments[]` no
//! longer shows ours) its current service deployment — and says whether
//! the update this run made is rolling, done, not listed yet, or failed and
//! why; [`plan_roll`] puts the services together. The AWS layer is thin:
//! [`update`] sends one [`UpdateSpec`], [`describe`], [`history`] and
//! [`stopped_reasons`] gather facts. Claiming the `UpdateService` (one per
//! service per run) and carrying the followed updates across continuations
//! is the state machine's job, not this module's.
//!
//! Why follow the deployment *by its id* rather than "is the service
//! stable": after a circuit-breaker rollback the service is stable again —
//! on the old revision. `aws ecs wait services-stable` and several deploy
//! tools report that as success. The ECS Developer Guide says what a
//! rollback looks like ("How the Amazon ECS deployment circuit breaker
//! detects failures"): ours turns `FAILED`, and "the most recent deployment
//! that is in a `COMPLETED` state … changes from a `COMPLETED` to
//! `IN_PROGRESS`" — `PRIMARY` again, under its old id — while ours drains
//! and then leaves `deployments[]`. When that is over before anyone looks,
//! `deployments[]` shows the service as it was before the update; the
//! events (`(deployment ecs-svc/…) deployment failed: …`, `rolling back to
//! deployment ecs-svc/…`) and the service deployment (`ROLLBACK_…`) still
//! say what happened. So "not listed" has two meanings that must not be
//! mixed up: *not yet* (a read right after `UpdateService`) and *no longer*
//! (rolled back or replaced) — see [`judge`].

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::types::{DesiredStatus, Task};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::date_time::{DateTime, Format};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sha2::{Digest, Sha256};

use crate::failure::{Failure, is_throttling};
use crate::outcome::human;
use crate::report::{MAX_MESSAGE, MAX_SUMMARY, truncate};
use crate::token::Rolled;

/// Output variable prefix: `ServiceDeployment_<service>` holds the ECS
/// deployment id (`ecs-svc/…`) the roll started for that service. See
/// [`output_name`] for how a service name becomes a variable name.
pub const OUTPUT_PREFIX: &str = "ServiceDeployment_";

/// Newest service events quoted in a failure message (SPEC §4b: up to 5).
pub const EVENTS_QUOTED: usize = 5;
/// Stopped tasks of a failed deployment quoted in a failure message.
pub const STOPPED_QUOTED: usize = 5;
/// Clock skew allowed between our claim's time and ECS's timestamps.
pub const SKEW_SECS: f64 = 5.0;
/// Looks in a row that list nothing of ours, with nothing saying why,
/// before that counts as rolled back: one such read may be ECS's eventual
/// consistency right after `UpdateService`, two are not.
pub const MISSES: u32 = 2;
/// Throttled `UpdateService` answers retried within one call (a throttled
/// request was refused, not applied: sending it again is safe).
const THROTTLE_TRIES: u32 = 3;

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

/// What became of one `UpdateService` that ECS did not refuse.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// ECS answered with the deployment it started (the service's
    /// `PRIMARY` deployment in the answer).
    Started(String),
    /// The request went out but no answer came back (a timeout, a lost
    /// connection, a 5xx): ECS may well have applied it. It must never be
    /// sent again; the deployment is found by looking ([`judge`]).
    Unanswered(String),
}

/// Whether an `UpdateService` error leaves its outcome unknown: no answer
/// at all, or a 5xx. Anything else with an answer (4xx, throttling
/// included) is a refusal: ECS changed nothing.
pub fn outcome_unknown(service_error: bool, construction: bool, status: Option<u16>) -> bool {
    !construction && (!service_error || status.is_some_and(|s| s >= 500))
}

/// Sends one `UpdateService`.
///
/// Not idempotent — every call starts a deployment, and ECS takes no
/// client token for it — so the caller claims it first, and it is sent
/// without the SDK's retries: a 5xx or timeout after ECS applied it,
/// retried, would start a second deployment. Only a throttled answer (a
/// refusal) is tried again here, a few times. `Ok(Sent::Unanswered)` means
/// *unknown*: the update may have happened. `Err` means it did not: a
/// service that does not exist or is not `ACTIVE`, or that does not use ECS
/// rolling deployments (no `PRIMARY` deployment), is a configuration error
/// naming it; throttling that does not let up is [`Failure::Unavailable`].
pub async fn update(ecs: &Client, spec: &UpdateSpec) -> Result<Sent, Failure> {
    let name = service_name(&spec.service);
    let mut tries = 0;
    let out = loop {
        tries += 1;
        let sent = ecs
            .update_service()
            .cluster(&spec.cluster)
            .service(&spec.service)
            .set_task_definition(spec.task_definition.clone())
            .force_new_deployment(spec.force_new_deployment)
            .customize()
            .config_override(
                aws_sdk_ecs::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await;
        let e = match sent {
            Ok(out) => break out,
            Err(e) => e,
        };
        let status = e.raw_response().map(|r| r.status().as_u16());
        let construction = matches!(e, SdkError::ConstructionFailure(_));
        if outcome_unknown(e.as_service_error().is_some(), construction, status) {
            return Ok(Sent::Unanswered(DisplayErrorContext(&e).to_string()));
        }
        if e.code().is_some_and(is_throttling) && tries < THROTTLE_TRIES {
            let pause = Duration::from_millis(500 << tries);
            tokio::time::sleep(pause.mul_f64(crate::clock::jitter())).await;
            continue;
        }
        let missing = e.as_service_error().is_some_and(|s| {
            s.is_service_not_found_exception()
                || s.is_service_not_active_exception()
                || s.is_cluster_not_found_exception()
        });
        return Err(if missing {
            Failure::Configuration(format!(
                "service `{name}` cannot be updated in cluster `{}`: {}; check `deploy.services` and `cluster`",
                spec.cluster,
                DisplayErrorContext(&e)
            ))
        } else {
            Failure::from_sdk("ecs:UpdateService", e)
        });
    };
    let service = out.service();
    service
        .into_iter()
        .flat_map(|s| s.deployments())
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.id())
        .map(|id| Sent::Started(id.to_owned()))
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
    /// Epoch seconds.
    pub updated_at: Option<f64>,
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
    /// Newest first: all ECS lists (it keeps the latest 100).
    pub events: Vec<ServiceEvent>,
    /// The ARN of the service's current service deployment (ECS names the
    /// latest update's), for [`history`].
    pub current_service_deployment: Option<String>,
}

impl ServiceView {
    /// The service's `PRIMARY` deployment.
    pub fn primary_deployment(&self) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }

    /// The service's `PRIMARY` deployment id.
    pub fn primary(&self) -> Option<&str> {
        self.primary_deployment().map(|d| d.id.as_str())
    }

    fn deployment(&self, id: &str) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.id == id)
    }
}

/// DescribeServices for `services` (names or ARNs, 10 per call). A service
/// ECS does not know is simply absent from the answer ([`judge`] calls
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
                updated_at: secs(d.updated_at()),
            })
            .collect(),
        events,
        current_service_deployment: s.current_service_deployment().map(str::to_owned),
    }
}

/// One service deployment (DescribeServiceDeployments): the history of one
/// update, which ECS keeps after its deployment has left `deployments[]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryView {
    pub arn: String,
    /// `PENDING`, `IN_PROGRESS`, `SUCCESSFUL`, `STOPPED`, `STOP_REQUESTED`,
    /// `ROLLBACK_REQUESTED`, `ROLLBACK_IN_PROGRESS`, `ROLLBACK_SUCCESSFUL`,
    /// `ROLLBACK_FAILED`.
    pub status: String,
    pub status_reason: Option<String>,
    /// Epoch seconds.
    pub created_at: Option<f64>,
    /// Why ECS rolled it back, when it did.
    pub rollback_reason: Option<String>,
}

impl HistoryView {
    /// ECS rolled it back, or stopped it as failed.
    pub fn failed(&self) -> bool {
        self.status.starts_with("ROLLBACK_") || self.status == "STOPPED"
    }
}

/// DescribeServiceDeployments for one ARN (a service's
/// `currentServiceDeployment`); `None` when ECS does not know it.
pub async fn history(ecs: &Client, arn: &str) -> Result<Option<HistoryView>, Failure> {
    let out = ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .map_err(|e| Failure::from_sdk("ecs:DescribeServiceDeployments", e))?;
    Ok(out.service_deployments().first().map(|d| HistoryView {
        arn: d.service_deployment_arn().unwrap_or(arn).to_owned(),
        status: d
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        status_reason: d.status_reason().map(str::to_owned),
        created_at: secs(d.created_at()),
        rollback_reason: d.rollback().and_then(|r| r.reason()).map(str::to_owned),
    }))
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

/// How far one followed update is.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub service: String,
    /// The deployment followed; `None` while an update whose answer was
    /// lost has not shown itself yet.
    pub deployment_id: Option<String>,
    pub running: i32,
    pub desired: i32,
    /// Its `rolloutState` is `COMPLETED`.
    pub completed: bool,
    /// ECS lists it (`false`: waiting for it to show).
    pub listed: bool,
    /// Epoch seconds at which it times out: ECS's `createdAt` of it (the
    /// claim's time while ECS has not listed it) plus the timeout.
    pub times_out_at: f64,
}

/// Why a roll failed.
#[derive(Debug, Clone, PartialEq)]
pub enum RollFailure {
    /// Ours is `FAILED` and still `PRIMARY`: a circuit breaker without
    /// rollback, or with nothing `COMPLETED` to go back to. ECS's
    /// `rolloutStateReason`.
    Failed { reason: Option<String> },
    /// ECS went back to `primary`: ours is `FAILED` and no longer
    /// `PRIMARY`, or no longer listed while the events or the service
    /// deployment say it failed or was rolled back. `reason` is what ECS
    /// said.
    RolledBack {
        reason: Option<String>,
        primary: Option<String>,
    },
    /// A deployment newer than ours is `PRIMARY`: another update (a person,
    /// another pipeline) took the service over.
    Replaced { primary: String },
    /// Ours is not listed and nothing says why: listed before and gone now
    /// (`seen`), or never listed on [`MISSES`] looks in a row while the
    /// `PRIMARY` deployment is from before our update.
    Vanished { primary: Option<String>, seen: bool },
    /// The service is no longer `ACTIVE` (deleted or being deleted).
    ServiceGone,
    /// Still in progress past `deploy.timeoutSeconds`, counted from ECS's
    /// `createdAt` of ours (from our claim while ECS never listed it).
    TimedOut {
        elapsed: u64,
        running: i32,
        desired: i32,
    },
}

/// What one look says about one service's update.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Its deployment is `COMPLETED`.
    Completed,
    /// Its deployment is rolling.
    Rolling,
    /// ECS lists nothing of ours yet, and nothing says it failed: look
    /// again (eventual consistency right after `UpdateService`).
    Unlisted,
    Failed(RollFailure),
}

/// [`judge`]'s answer: the verdict, the update as the next look should
/// know it (the id found, seen, misses), and how far it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    pub rolled: Rolled,
    pub verdict: Verdict,
    pub progress: Progress,
}

/// The id in `(deployment ecs-svc/…) deployment failed: …`.
fn failed_in(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("(deployment ")?;
    let (id, rest) = rest.split_once(')')?;
    rest.trim_start()
        .starts_with("deployment failed")
        .then_some(id)
}

/// The id in `… rolling back to deployment ecs-svc/….`.
fn rolled_back_to(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("rolling back to deployment ")?;
    rest.split(|c: char| c.is_whitespace() || c == ')')
        .next()
        .map(|id| id.trim_end_matches('.'))
        .filter(|id| !id.is_empty())
}

fn since(view: &ServiceView, at: f64) -> impl Iterator<Item = &ServiceEvent> {
    view.events
        .iter()
        .filter(move |e| e.created_at.is_some_and(|t| t >= at))
}

/// The newest event since `at` saying deployment `id` failed.
fn failure_event<'a>(view: &'a ServiceView, id: &str, at: f64) -> Option<&'a ServiceEvent> {
    since(view, at).find(|e| failed_in(&e.message) == Some(id))
}

/// The newest event since `at` saying the service is rolling back, and to
/// which deployment.
fn rollback_event(view: &ServiceView, at: f64) -> Option<(&ServiceEvent, String)> {
    since(view, at).find_map(|e| rolled_back_to(&e.message).map(|to| (e, to.to_owned())))
}

/// A deployment the events say failed since `at`, which `deployments[]`
/// does not show as older than `at`: ours, rolled back and gone, when
/// `UpdateService`'s answer was lost.
fn failed_since(view: &ServiceView, at: f64) -> Option<String> {
    since(view, at)
        .filter_map(|e| failed_in(&e.message))
        .find(|id| {
            view.deployment(id)
                .is_none_or(|d| d.created_at.is_none_or(|c| c >= at))
        })
        .map(str::to_owned)
}

/// The deployment an `UpdateService` of ours started, found again when its
/// answer was lost (or another invocation sent it): the *oldest* deployment
/// of the service created at or after `since` (epoch seconds; pass the
/// claim's time less [`SKEW_SECS`]), whatever its status — a circuit
/// breaker's rollback comes after ours and must never be taken for it, and
/// ours may already be `ACTIVE` and `FAILED`. `None`: `deployments[]` shows
/// none (see [`evidence_since`] for what else may).
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

/// Whether ECS shows *any* update of the service since a claim made at
/// `since` (epoch seconds): a deployment created since (less
/// [`SKEW_SECS`]), an event since about a deployment failing or a
/// rollback, or a current service deployment created since (less the
/// skew). Events count only from the claim itself: what an update of ours
/// causes (tasks failing, a rollback) comes seconds after it, and an event
/// from just before the claim is an earlier run's. When none does, no `UpdateService` since then
/// took effect (the only case in which a claimed update may be sent by
/// another invocation).
pub fn evidence_since(view: &ServiceView, history: Option<&HistoryView>, since: f64) -> bool {
    let at = since - SKEW_SECS;
    deployment_since(view, at).is_some()
        || failed_since(view, since).is_some()
        || rollback_event(view, since).is_some()
        || history.is_some_and(|h| h.created_at.is_some_and(|c| c >= at))
}

/// Whether a look lists nothing of `rolled`: neither its id nor (when the
/// id is unknown) a deployment since its claim. Then the service's
/// current service deployment is worth asking about ([`history`]).
pub fn unlisted(rolled: &Rolled, view: &ServiceView) -> bool {
    match &rolled.id {
        Some(id) => view.deployment(id).is_none(),
        None => deployment_since(view, rolled.since as f64 - SKEW_SECS).is_none(),
    }
}

/// Decides one service's update from one look at everything ECS says
/// about it: `view` (DescribeServices; `None` when ECS does not list the
/// service) and `history` (its current service deployment, asked for when
/// `deployments[]` no longer lists ours). `now` is epoch seconds; past
/// `timeout` seconds a roll still in progress is timed out.
///
/// The rows, first match wins (the table test below has one case each):
///
/// | ECS says | verdict |
/// |---|---|
/// | the service is not `ACTIVE` | failed: service gone |
/// | ours `FAILED`, `PRIMARY` | failed: `FAILED` (no rollback) |
/// | ours `FAILED`, not `PRIMARY` | failed: rolled back |
/// | ours listed, `PRIMARY` is newer than ours | failed: replaced |
/// | ours listed, `PRIMARY` is another, older one | failed: rolled back |
/// | ours `PRIMARY`, an event since the claim says it failed | failed: rolled back |
/// | ours `PRIMARY`, `COMPLETED` | completed |
/// | ours `PRIMARY`, in progress past the timeout from its `createdAt` | failed: timed out |
/// | ours `PRIMARY`, in progress | rolling |
/// | ours not listed; an event, the `PRIMARY`'s `rolloutStateReason` or the service deployment since the claim says failed or rolling back | failed: rolled back |
/// | ours not listed, listed on an earlier look | failed: vanished |
/// | ours not listed, `PRIMARY` newer than the claim | failed: replaced |
/// | ours not listed, past the timeout from the claim | failed: timed out |
/// | ours not listed, the service deployment since the claim in progress | not listed yet |
/// | ours not listed, `PRIMARY` older than the claim, [`MISSES`] looks in a row | failed: vanished |
/// | ours not listed, `PRIMARY` older than the claim | not listed yet |
///
/// "Ours" is the deployment `UpdateService` answered with; when that
/// answer was lost, the oldest deployment since the claim
/// ([`deployment_since`]), else one the events say failed since the claim.
pub fn judge(
    service: &str,
    rolled: &Rolled,
    view: Option<&ServiceView>,
    history: Option<&HistoryView>,
    now: f64,
    timeout: u64,
) -> Look {
    // Deployments and service deployments of ours are created as the
    // update is sent (ECS's clock, give or take the skew); the events it
    // causes come seconds later, so those before the claim are not ours.
    let at = rolled.since as f64 - SKEW_SECS;
    let events_at = rolled.since as f64;
    let mut next = rolled.clone();
    let mut progress = Progress {
        service: service_name(service).to_owned(),
        deployment_id: rolled.id.clone(),
        running: 0,
        desired: view.map(|v| v.desired_count).unwrap_or_default(),
        completed: false,
        listed: false,
        times_out_at: rolled.since as f64 + timeout as f64,
    };
    let look = |rolled: Rolled, verdict: Verdict, progress: Progress| Look {
        rolled,
        verdict,
        progress,
    };
    let failed = |next: Rolled, progress: Progress, why: RollFailure| {
        look(next, Verdict::Failed(why), progress)
    };
    let Some(view) = view.filter(|v| v.status == "ACTIVE") else {
        return failed(next, progress, RollFailure::ServiceGone);
    };
    if next.id.is_none() {
        next.id = deployment_since(view, at).or_else(|| failed_since(view, events_at));
        progress.deployment_id = next.id.clone();
    }
    let primary = view.primary_deployment();
    let primary_id = primary.map(|p| p.id.clone());
    let ours_failed = next
        .id
        .as_deref()
        .and_then(|id| failure_event(view, id, events_at));
    let rollback = rollback_event(view, events_at);
    let Some(ours) = next.id.as_deref().and_then(|id| view.deployment(id)) else {
        // Not listed: not yet, or no longer.
        let primary_rolls_back = primary.and_then(|p| {
            p.rollout_state_reason
                .as_ref()
                .filter(|r| r.contains("rolling back"))
        });
        let history_failed =
            history.filter(|h| h.created_at.is_some_and(|c| c >= at) && h.failed());
        let reason = ours_failed
            .map(|e| e.message.clone())
            .or_else(|| rollback.as_ref().map(|(e, _)| e.message.clone()))
            .or_else(|| primary_rolls_back.cloned())
            .or_else(|| {
                history_failed.and_then(|h| h.rollback_reason.clone().or(h.status_reason.clone()))
            });
        if reason.is_some() || history_failed.is_some() {
            let primary = rollback.map(|(_, to)| to).or(primary_id);
            return failed(next, progress, RollFailure::RolledBack { reason, primary });
        }
        if rolled.seen {
            return failed(
                next,
                progress,
                RollFailure::Vanished {
                    primary: primary_id,
                    seen: true,
                },
            );
        }
        if let Some(p) =
            primary.filter(|p| p.created_at.is_some_and(|c| c >= at) && next.id.is_some())
        {
            let primary = p.id.clone();
            return failed(next, progress, RollFailure::Replaced { primary });
        }
        if now >= progress.times_out_at {
            let elapsed = (now - rolled.since as f64).max(0.0) as u64;
            let why = RollFailure::TimedOut {
                elapsed,
                running: 0,
                desired: progress.desired,
            };
            return failed(next, progress, why);
        }
        if history.is_some_and(|h| h.created_at.is_some_and(|c| c >= at)) {
            // ECS's history has our update, under way: deployments[] lags.
            return look(next, Verdict::Unlisted, progress);
        }
        next.misses += 1;
        if next.misses >= MISSES {
            return failed(
                next,
                progress,
                RollFailure::Vanished {
                    primary: primary_id,
                    seen: false,
                },
            );
        }
        return look(next, Verdict::Unlisted, progress);
    };
    next.seen = true;
    next.misses = 0;
    progress.listed = true;
    progress.running = ours.running_count;
    progress.desired = ours.desired_count;
    let created = ours.created_at.unwrap_or(rolled.since as f64);
    progress.times_out_at = created + timeout as f64;
    let is_primary = ours.status == "PRIMARY";
    if ours.rollout_state.as_deref() == Some("FAILED") {
        let reason = ours.rollout_state_reason.clone();
        let why = match is_primary {
            true => RollFailure::Failed { reason },
            false => RollFailure::RolledBack {
                reason,
                primary: primary_id,
            },
        };
        return failed(next, progress, why);
    }
    if !is_primary {
        let why = match primary {
            Some(p)
                if p.created_at
                    .zip(ours.created_at)
                    .is_some_and(|(p, o)| p > o)
                    && !p
                        .rollout_state_reason
                        .as_deref()
                        .is_some_and(|r| r.contains("rolling back")) =>
            {
                RollFailure::Replaced {
                    primary: p.id.clone(),
                }
            }
            p => RollFailure::RolledBack {
                reason: p
                    .and_then(|p| p.rollout_state_reason.clone())
                    .or_else(|| rollback.as_ref().map(|(e, _)| e.message.clone())),
                primary: primary_id,
            },
        };
        return failed(next, progress, why);
    }
    if let Some(event) = ours_failed {
        // Listed as PRIMARY and rolling, but the events say it failed: a
        // read that lags the events. Believe the events.
        let why = RollFailure::RolledBack {
            reason: Some(event.message.clone()),
            primary: rollback.map(|(_, to)| to),
        };
        return failed(next, progress, why);
    }
    progress.completed = match ours.rollout_state.as_deref() {
        Some(state) => state == "COMPLETED",
        // ECS reports no rolloutState for a service behind a Classic Load
        // Balancer: steady state is then the only deployment left, running
        // what it wants (as `services-stable` says).
        None => view.deployments.len() == 1 && ours.running_count == ours.desired_count,
    };
    if progress.completed {
        return look(next, Verdict::Completed, progress);
    }
    if now >= progress.times_out_at {
        let why = RollFailure::TimedOut {
            elapsed: (now - created).max(0.0) as u64,
            running: ours.running_count,
            desired: ours.desired_count,
        };
        return failed(next, progress, why);
    }
    look(next, Verdict::Rolling, progress)
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
        /// `None`: the update's answer was lost and ECS never showed which
        /// deployment it started.
        deployment_id: Option<String>,
        why: RollFailure,
    },
}

/// Decides the roll: [`judge`] for each service of `services` (in
/// `deploy.services` order) with its update `rolled[i]`, the views of one
/// DescribeServices, and `histories[i]` where asked for. Also returns the
/// updates as the next look should know them.
///
/// Fails fast: a failed service fails the roll whatever the others do, so
/// a rollback is reported on the first look that shows it, not at the
/// timeout. `Done` only once every service has been updated and completed.
pub fn plan_roll(
    services: &[String],
    rolled: &[Rolled],
    views: &[ServiceView],
    histories: &[Option<HistoryView>],
    now: f64,
    timeout: u64,
) -> (Vec<Rolled>, RollPlan) {
    let mut next = Vec::new();
    let mut progress = Vec::new();
    let mut failure = None;
    for (i, (service, update)) in services.iter().zip(rolled).enumerate() {
        let view = views
            .iter()
            .find(|v| v.name == service_name(service) && v.status == "ACTIVE");
        let history = histories.get(i).and_then(Option::as_ref);
        let look = judge(service, update, view, history, now, timeout);
        if let (Verdict::Failed(why), None) = (&look.verdict, &failure) {
            failure = Some(RollPlan::Failed {
                service: service_name(service).to_owned(),
                deployment_id: look.rolled.id.clone(),
                why: why.clone(),
            });
        }
        next.push(look.rolled);
        progress.push(look.progress);
    }
    if let Some(failed) = failure {
        return (next, failed);
    }
    if rolled.len() >= services.len() && progress.iter().all(|p| p.completed) {
        return (next, RollPlan::Done);
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
    let percent = ((total * 100.0) / services.len().max(1) as f64) as i32;
    let plan = RollPlan::Wait {
        progress,
        percent: percent.clamp(0, 99),
    };
    (next, plan)
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
        .map(|p| match (&p.deployment_id, p.listed) {
            (Some(id), true) => format!(
                "{}: {}/{} running (deployment {id})",
                p.service, p.running, p.desired
            ),
            (Some(id), false) => format!("{}: waiting for ECS to list deployment {id}", p.service),
            (None, _) => format!("{}: waiting for ECS to show its update", p.service),
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
/// what ECS says (`rolloutStateReason`, the event or the service
/// deployment that told), the newest events (up to 5), the stopped reasons
/// of its failed tasks (up to 5), and what to do. `events` and `stopped`
/// come from [`describe`] and [`stopped_reasons`]. Fits 5000.
pub fn failure_message(
    service: &str,
    deployment_id: Option<&str>,
    why: &RollFailure,
    events: &[ServiceEvent],
    stopped: &[StoppedTask],
) -> String {
    let service = service_name(service);
    let deployment = match deployment_id {
        Some(id) => format!("deployment {id}"),
        None => "the deployment of its UpdateService (whose answer was lost)".to_owned(),
    };
    let reason = |r: &Option<String>| {
        r.as_deref()
            .map(|r| format!(": {}", truncate(r.trim_end_matches('.'), 500)))
            .unwrap_or_default()
    };
    let runs = |p: &Option<String>| {
        p.as_deref()
            .map(|p| format!(" (the service runs {p} again)"))
            .unwrap_or_default()
    };
    let head = match why {
        RollFailure::Failed { reason: r } => {
            format!(
                "Service `{service}` failed to roll: {deployment} FAILED{}.",
                reason(r)
            )
        }
        RollFailure::RolledBack { reason: r, primary } => format!(
            "Service `{service}` was rolled back: {deployment} is no longer the PRIMARY deployment{}{}.",
            runs(primary),
            reason(r)
        ),
        RollFailure::Replaced { primary } => format!(
            "Service `{service}` was updated by someone else while it rolled: deployment {primary}, newer than {deployment}, is its PRIMARY deployment now (another UpdateService: a person, another pipeline)."
        ),
        RollFailure::Vanished {
            primary,
            seen: true,
        } => format!(
            "Service `{service}` was rolled back or replaced: ECS no longer lists {deployment}, which it was rolling, and says nothing about why; its PRIMARY deployment is {}.",
            primary.as_deref().unwrap_or("none")
        ),
        RollFailure::Vanished {
            primary,
            seen: false,
        } => format!(
            "Service `{service}` was rolled back, or its update never took effect: ECS never listed {deployment} (looked {MISSES} times), and its PRIMARY deployment {} is from before the update.",
            primary.as_deref().unwrap_or("(none)")
        ),
        RollFailure::ServiceGone => format!(
            "Service `{service}` is no longer ACTIVE (deleted or draining) while {deployment} was rolling."
        ),
        RollFailure::TimedOut {
            elapsed,
            running,
            desired,
        } => format!(
            "Service `{service}` did not become stable in {}: {deployment} is still in progress with {running}/{desired} tasks running.",
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
        RollFailure::Replaced { .. } => format!(
            " migrate-once rolled nothing back: service `{service}` runs the other update now; retry the stage if this release should still roll out over it (the migration, already applied, is not run again)."
        ),
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

    /// The claim's time in these tests; ECS timestamps are around it.
    const CLAIM: u64 = 1_000;

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

    /// A deployment created at `created` (epoch seconds).
    fn at(created: f64, d: DeploymentView) -> DeploymentView {
        DeploymentView {
            created_at: Some(created),
            ..d
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

    fn with_events(mut v: ServiceView, events: &[(f64, &str)]) -> ServiceView {
        v.events = events
            .iter()
            .map(|(t, m)| ServiceEvent {
                created_at: Some(*t),
                message: m.to_string(),
            })
            .collect();
        v
    }

    fn ours(id: Option<&str>, seen: bool, misses: u32) -> Rolled {
        Rolled {
            id: id.map(str::to_owned),
            since: CLAIM,
            seen,
            misses,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(s, d)| (s.to_string(), d.to_string()))
            .collect()
    }

    /// A verdict, shortened for a table.
    fn short(verdict: &Verdict) -> &'static str {
        match verdict {
            Verdict::Completed => "completed",
            Verdict::Rolling => "rolling",
            Verdict::Unlisted => "not listed yet",
            Verdict::Failed(why) => match why {
                RollFailure::Failed { .. } => "failed",
                RollFailure::RolledBack { .. } => "rolled back",
                RollFailure::Replaced { .. } => "replaced",
                RollFailure::Vanished { seen: true, .. } => "vanished",
                RollFailure::Vanished { seen: false, .. } => "never listed",
                RollFailure::ServiceGone => "service gone",
                RollFailure::TimedOut { .. } => "timed out",
            },
        }
    }

    const FAILED_EVENT: &str =
        "(service web) (deployment ecs-svc/2) deployment failed: tasks failed to start.";
    const ROLLBACK_EVENT: &str = "(service web) rolling back to deployment ecs-svc/1.";

    /// One case per row of `judge`'s table, in its order.
    #[test]
    fn judge_table() {
        let t = CLAIM as f64;
        let old = || {
            at(
                t - 86_400.0,
                deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 4),
            )
        };
        let old_primary = || {
            at(
                t - 86_400.0,
                deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 4),
            )
        };
        let mine = |status: &str, state: &str, running: i32| {
            at(t + 1.0, deployment("ecs-svc/2", status, state, running))
        };
        let history = |status: &str| HistoryView {
            arn: "arn:aws:ecs:us-east-1:1:service-deployment/app/web/abc".into(),
            status: status.into(),
            status_reason: Some("ECS deployment circuit breaker: tasks failed to start.".into()),
            created_at: Some(t + 1.0),
            rollback_reason: None,
        };
        let deleted = ServiceView {
            status: "INACTIVE".into(),
            ..view("web", vec![old_primary()])
        };
        type Case = (
            &'static str,
            Rolled,
            Option<ServiceView>,
            Option<HistoryView>,
            f64,
            &'static str,
        );
        let known = ours(Some("ecs-svc/2"), false, 0);
        let seen = ours(Some("ecs-svc/2"), true, 0);
        let cases: Vec<Case> = vec![
            ("the service is not ACTIVE", known.clone(), Some(deleted), None, t + 10.0, "service gone"),
            ("the service is not listed at all", known.clone(), None, None, t + 10.0, "service gone"),
            (
                "ours FAILED, PRIMARY",
                known.clone(),
                Some(view("web", vec![mine("PRIMARY", "FAILED", 0), old()])),
                None,
                t + 10.0,
                "failed",
            ),
            (
                "ours FAILED, no longer PRIMARY",
                known.clone(),
                Some(view("web", vec![mine("ACTIVE", "FAILED", 0), at(t - 86_400.0, deployment("ecs-svc/1", "PRIMARY", "IN_PROGRESS", 4))])),
                None,
                t + 10.0,
                "rolled back",
            ),
            (
                "ours listed, a newer PRIMARY",
                known.clone(),
                Some(view("web", vec![at(t + 30.0, deployment("ecs-svc/3", "PRIMARY", "IN_PROGRESS", 0)), mine("ACTIVE", "IN_PROGRESS", 2)])),
                None,
                t + 40.0,
                "replaced",
            ),
            (
                "ours listed, an older PRIMARY",
                known.clone(),
                Some(view("web", vec![mine("ACTIVE", "IN_PROGRESS", 0), old_primary()])),
                None,
                t + 10.0,
                "rolled back",
            ),
            (
                "ours PRIMARY, an event since the claim says it failed",
                known.clone(),
                Some(with_events(view("web", vec![mine("PRIMARY", "IN_PROGRESS", 1), old()]), &[(t + 9.0, FAILED_EVENT)])),
                None,
                t + 10.0,
                "rolled back",
            ),
            (
                "ours PRIMARY, COMPLETED",
                known.clone(),
                Some(view("web", vec![mine("PRIMARY", "COMPLETED", 4)])),
                None,
                t + 10.0,
                "completed",
            ),
            (
                "ours PRIMARY, in progress past the timeout from its createdAt",
                seen.clone(),
                Some(view("web", vec![mine("PRIMARY", "IN_PROGRESS", 2), old()])),
                None,
                t + 1.0 + 600.0,
                "timed out",
            ),
            (
                "ours PRIMARY, in progress",
                known.clone(),
                Some(view("web", vec![mine("PRIMARY", "IN_PROGRESS", 2), old()])),
                None,
                t + 10.0,
                "rolling",
            ),
            (
                "ours not listed, the events say it failed and ECS rolled back",
                known.clone(),
                Some(with_events(view("web", vec![old_primary()]), &[(t + 4.0, ROLLBACK_EVENT), (t + 4.0, FAILED_EVENT)])),
                None,
                t + 10.0,
                "rolled back",
            ),
            (
                "ours not listed, the PRIMARY is rolling back",
                known.clone(),
                Some(view("web", vec![DeploymentView {
                    rollout_state_reason: Some("ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1.".into()),
                    ..at(t - 86_400.0, deployment("ecs-svc/1", "PRIMARY", "IN_PROGRESS", 4))
                }])),
                None,
                t + 10.0,
                "rolled back",
            ),
            (
                "ours not listed, its service deployment was rolled back",
                known.clone(),
                Some(view("web", vec![old_primary()])),
                Some(history("ROLLBACK_SUCCESSFUL")),
                t + 10.0,
                "rolled back",
            ),
            (
                "ours not listed, listed on an earlier look",
                seen.clone(),
                Some(view("web", vec![old_primary()])),
                None,
                t + 10.0,
                "vanished",
            ),
            (
                "ours not listed, a PRIMARY newer than the claim",
                known.clone(),
                Some(view("web", vec![at(t + 20.0, deployment("ecs-svc/3", "PRIMARY", "IN_PROGRESS", 0)), old()])),
                None,
                t + 30.0,
                "replaced",
            ),
            (
                "ours not listed, past the timeout from the claim",
                known.clone(),
                Some(view("web", vec![old_primary()])),
                None,
                t + 600.0,
                "timed out",
            ),
            (
                "ours not listed, its service deployment in progress",
                ours(Some("ecs-svc/2"), false, 5),
                Some(view("web", vec![old_primary()])),
                Some(history("IN_PROGRESS")),
                t + 10.0,
                "not listed yet",
            ),
            (
                "ours not listed, an older PRIMARY, the second look in a row",
                ours(Some("ecs-svc/2"), false, 1),
                Some(view("web", vec![old_primary()])),
                None,
                t + 10.0,
                "never listed",
            ),
            (
                "ours not listed, an older PRIMARY, the first look",
                known.clone(),
                Some(view("web", vec![old_primary()])),
                None,
                t + 1.0,
                "not listed yet",
            ),
        ];
        for (name, rolled, view, history, now, expected) in cases {
            let look = judge("web", &rolled, view.as_ref(), history.as_ref(), now, 600);
            assert_eq!(short(&look.verdict), expected, "{name}: {look:?}");
        }
    }

    #[test]
    fn an_update_whose_answer_was_lost_is_found_by_looking() {
        let t = CLAIM as f64;
        let lost = ours(None, false, 0);
        let old = at(
            t - 86_400.0,
            deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 4),
        );
        // The oldest deployment since the claim is ours (a later rollback
        // deployment is not), whatever its status.
        let rolling = view(
            "web",
            vec![
                at(
                    t + 60.0,
                    deployment("ecs-svc/3", "PRIMARY", "IN_PROGRESS", 0),
                ),
                at(t + 1.0, deployment("ecs-svc/2", "ACTIVE", "FAILED", 0)),
                old.clone(),
            ],
        );
        let look = judge("web", &lost, Some(&rolling), None, t + 70.0, 600);
        assert_eq!(look.rolled.id.as_deref(), Some("ecs-svc/2"));
        assert_eq!(short(&look.verdict), "rolled back");
        // Gone from deployments[] already: the events name it.
        let gone = with_events(
            view(
                "web",
                vec![at(
                    t - 86_400.0,
                    deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 4),
                )],
            ),
            &[(t + 3.0, ROLLBACK_EVENT), (t + 3.0, FAILED_EVENT)],
        );
        let look = judge("web", &lost, Some(&gone), None, t + 10.0, 600);
        assert_eq!(look.rolled.id.as_deref(), Some("ecs-svc/2"));
        assert_eq!(
            look.verdict,
            Verdict::Failed(RollFailure::RolledBack {
                reason: Some(FAILED_EVENT.into()),
                primary: Some("ecs-svc/1".into()),
            })
        );
        // An event from before the claim (an earlier run's) is not ours.
        let earlier = with_events(
            view(
                "web",
                vec![at(
                    t - 86_400.0,
                    deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 4),
                )],
            ),
            &[(t - 2.0, ROLLBACK_EVENT), (t - 2.0, FAILED_EVENT)],
        );
        let look = judge("web", &lost, Some(&earlier), None, t + 1.0, 600);
        assert_eq!(look.rolled.id, None);
        assert_eq!(look.verdict, Verdict::Unlisted);
        assert_eq!(look.rolled.misses, 1);
    }

    #[test]
    fn a_look_remembers_what_it_saw() {
        let t = CLAIM as f64;
        let listed = view(
            "web",
            vec![at(
                t + 1.0,
                deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 1),
            )],
        );
        let look = judge(
            "web",
            &ours(Some("ecs-svc/2"), false, 1),
            Some(&listed),
            None,
            t + 2.0,
            600,
        );
        assert_eq!(look.rolled, ours(Some("ecs-svc/2"), true, 0));
        assert_eq!(look.progress.times_out_at, t + 1.0 + 600.0);
        assert_eq!((look.progress.running, look.progress.desired), (1, 4));
        let unlisted = view(
            "web",
            vec![at(
                t - 9.0,
                deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 4),
            )],
        );
        let look = judge(
            "web",
            &ours(Some("ecs-svc/2"), false, 0),
            Some(&unlisted),
            None,
            t + 2.0,
            600,
        );
        assert_eq!(look.rolled.misses, 1);
        assert!(!look.progress.listed);
        assert_eq!(look.progress.times_out_at, t + 600.0, "from the claim");
    }

    #[test]
    fn without_a_rollout_state_steady_means_alone_and_full() {
        let bare = |id: &str, status: &str, running: i32| DeploymentView {
            rollout_state: None,
            ..deployment(id, status, "", running)
        };
        let rolled = ours(Some("ecs-svc/2"), false, 0);
        let cases = [
            (vec![bare("ecs-svc/2", "PRIMARY", 4)], "completed"),
            (vec![bare("ecs-svc/2", "PRIMARY", 3)], "rolling"),
            (
                vec![
                    bare("ecs-svc/2", "PRIMARY", 4),
                    bare("ecs-svc/1", "ACTIVE", 1),
                ],
                "rolling",
            ),
        ];
        for (deployments, expected) in cases {
            let look = judge(
                "web",
                &rolled,
                Some(&view("web", deployments)),
                None,
                1.0,
                60,
            );
            assert_eq!(short(&look.verdict), expected, "{look:?}");
        }
    }

    #[test]
    fn plan_roll_puts_the_services_together() {
        let t = CLAIM as f64;
        let services = vec![
            "web".to_owned(),
            "arn:aws:ecs:us-east-1:1:service/app/worker".to_owned(),
        ];
        let web = |state: &str, running: i32| {
            view(
                "web",
                vec![at(
                    t + 1.0,
                    deployment("ecs-svc/2", "PRIMARY", state, running),
                )],
            )
        };
        let worker = |status: &str, state: &str, running: i32| {
            let mut v = view(
                "worker",
                vec![at(t + 1.0, deployment("ecs-svc/9", status, state, running))],
            );
            v.desired_count = 4;
            v
        };
        let both = [
            ours(Some("ecs-svc/2"), false, 0),
            ours(Some("ecs-svc/9"), false, 0),
        ];
        let plan = |rolled: &[Rolled], views: Vec<ServiceView>| {
            plan_roll(&services, rolled, &views, &[], t + 10.0, 600).1
        };
        let brief = |p: RollPlan| match p {
            RollPlan::Done => "done".to_owned(),
            RollPlan::Wait { percent, .. } => format!("wait {percent}"),
            RollPlan::Failed { service, .. } => format!("{service}: failed"),
        };
        let cases = [
            (
                "both rolling",
                both.to_vec(),
                vec![web("IN_PROGRESS", 3), worker("PRIMARY", "IN_PROGRESS", 1)],
                "wait 50",
            ),
            (
                "first done, second rolling",
                both.to_vec(),
                vec![web("COMPLETED", 4), worker("PRIMARY", "IN_PROGRESS", 0)],
                "wait 50",
            ),
            (
                "second fails while first rolls",
                both.to_vec(),
                vec![web("IN_PROGRESS", 1), worker("ACTIVE", "FAILED", 0)],
                "worker: failed",
            ),
            (
                "both completed",
                both.to_vec(),
                vec![worker("PRIMARY", "COMPLETED", 4), web("COMPLETED", 4)],
                "done",
            ),
            (
                "one completed, one not updated yet",
                both[..1].to_vec(),
                vec![web("COMPLETED", 4), worker("PRIMARY", "COMPLETED", 4)],
                "wait 50",
            ),
        ];
        for (name, rolled, views, expected) in cases {
            assert_eq!(brief(plan(&rolled, views)), expected, "{name}");
        }
        let (next, failed) = plan_roll(
            &services,
            &both,
            &[web("IN_PROGRESS", 1), worker("PRIMARY", "FAILED", 0)],
            &[],
            t + 10.0,
            600,
        );
        assert!(next.iter().all(|r| r.seen));
        assert_eq!(
            failed,
            RollPlan::Failed {
                service: "worker".into(),
                deployment_id: Some("ecs-svc/9".into()),
                why: RollFailure::Failed {
                    reason: Some("ECS deployment circuit breaker: tasks failed to start.".into())
                },
            }
        );
    }

    #[test]
    fn events_say_which_deployment_failed_and_where_ecs_went_back() {
        assert_eq!(failed_in(FAILED_EVENT), Some("ecs-svc/2"));
        assert_eq!(
            failed_in("(service web) (deployment ecs-svc/2) deployment completed."),
            None
        );
        assert_eq!(failed_in("(service web) has reached a steady state."), None);
        assert_eq!(rolled_back_to(ROLLBACK_EVENT), Some("ecs-svc/1"));
        assert_eq!(rolled_back_to(FAILED_EVENT), None);
    }

    #[test]
    fn evidence_of_an_update_since_a_claim() {
        let t = CLAIM as f64;
        let before = view(
            "web",
            vec![at(
                t - 86_400.0,
                deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 4),
            )],
        );
        let history = |created: f64| HistoryView {
            created_at: Some(created),
            ..Default::default()
        };
        assert!(!evidence_since(&before, None, t));
        assert!(!evidence_since(&before, Some(&history(t - 3600.0)), t));
        assert!(evidence_since(&before, Some(&history(t + 1.0)), t));
        assert!(evidence_since(
            &with_events(before.clone(), &[(t + 2.0, FAILED_EVENT)]),
            None,
            t
        ));
        assert!(!evidence_since(
            &with_events(before.clone(), &[(t - 2.0, FAILED_EVENT)]),
            None,
            t
        ));
        let after = view(
            "web",
            vec![at(t + 1.0, deployment("ecs-svc/2", "ACTIVE", "FAILED", 0))],
        );
        assert!(evidence_since(&after, None, t));
    }

    #[test]
    fn an_unanswered_update_is_one_that_may_have_happened() {
        let cases = [
            (false, false, None, true, "no answer at all"),
            (true, false, Some(500), true, "a 5xx"),
            (true, false, Some(503), true, "a 503"),
            (true, false, Some(400), false, "a refusal"),
            (true, false, Some(429), false, "throttled"),
            (false, true, None, false, "never built"),
        ];
        for (service_error, construction, status, unknown, name) in cases {
            assert_eq!(
                outcome_unknown(service_error, construction, status),
                unknown,
                "{name}"
            );
        }
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
        let p = |service: &str, id: Option<&str>, running, completed, listed| Progress {
            service: service.into(),
            deployment_id: id.map(str::to_owned),
            running,
            desired: 4,
            completed,
            listed,
            times_out_at: 0.0,
        };
        assert_eq!(
            progress_summary(&[
                p("web", Some("ecs-svc/123"), 3, false, true),
                p("api", Some("ecs-svc/7"), 0, false, false),
                p("cron", None, 0, false, false),
                p("worker", Some("ecs-svc/456"), 4, true, true),
            ]),
            "Rolling web: 3/4 running (deployment ecs-svc/123); api: waiting for ECS to list deployment ecs-svc/7; \
             cron: waiting for ECS to show its update; done: worker"
        );
        assert_eq!(
            done_summary(&pairs(&[("web", "ecs-svc/123")])),
            "rolled web (ecs-svc/123): every deployment COMPLETED"
        );
    }

    #[test]
    fn failure_messages_name_service_deployment_reason_events_and_stopped_tasks() {
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
        let reason = Some("ECS deployment circuit breaker: tasks failed to start.".to_owned());
        let cases = [
            (
                RollFailure::Failed {
                    reason: reason.clone(),
                },
                "Service `web` failed to roll: deployment ecs-svc/2 FAILED: ECS deployment circuit breaker: tasks failed to start.",
            ),
            (
                RollFailure::RolledBack {
                    reason: reason.clone(),
                    primary: Some("ecs-svc/1".into()),
                },
                "Service `web` was rolled back: deployment ecs-svc/2 is no longer the PRIMARY deployment (the service runs ecs-svc/1 again): ECS deployment circuit breaker: tasks failed to start.",
            ),
            (
                RollFailure::Replaced {
                    primary: "ecs-svc/3".into(),
                },
                "deployment ecs-svc/3, newer than deployment ecs-svc/2, is its PRIMARY deployment now",
            ),
            (
                RollFailure::Vanished {
                    primary: Some("ecs-svc/1".into()),
                    seen: true,
                },
                "ECS no longer lists deployment ecs-svc/2, which it was rolling",
            ),
            (
                RollFailure::Vanished {
                    primary: Some("ecs-svc/1".into()),
                    seen: false,
                },
                "ECS never listed deployment ecs-svc/2 (looked 2 times), and its PRIMARY deployment ecs-svc/1 is from before the update",
            ),
            (
                RollFailure::ServiceGone,
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
            let text = failure_message("web", Some("ecs-svc/2"), &why, &events, &stopped);
            assert!(text.contains(expected), "{text}");
            assert!(!text.contains(".."), "{text}");
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
        let lost = failure_message(
            "web",
            None,
            &RollFailure::RolledBack {
                reason: None,
                primary: None,
            },
            &[],
            &[],
        );
        assert!(
            lost.contains("the deployment of its UpdateService (whose answer was lost)"),
            "{lost}"
        );
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
            Some("ecs-svc/2"),
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
