//! ECS services with deployments: `UpdateService` starts a deployment that
//! rolls out as the scenario scripts it, `DescribeServices` shows it, a
//! failing rollout leaves stopped tasks behind for `ListTasks`
//! (`serviceName`, `desiredStatus`) and `DescribeTasks`, and
//! `DescribeServiceDeployments` keeps each update's history after its
//! deployment has left `deployments[]`.
//!
//! Each service starts with one `PRIMARY` deployment, `COMPLETED`, running
//! `desiredCount` tasks of its task definition. An `UpdateService` with
//! `forceNewDeployment` or a different `taskDefinition` makes a new
//! `PRIMARY` deployment (`ecs-svc/<19 digits>`, `IN_PROGRESS`, 0 running);
//! the one before becomes `ACTIVE`. The new deployment takes the service's
//! next scripted [`RolloutSpec`] and moves one step per `DescribeServices`
//! that names the service (or per `stepMillis` of `crate::clock` time):
//!
//! - `completed`: running grows to `desiredCount` over `steps`; at the last
//!   step `COMPLETED`, the older deployments are drained and gone.
//! - `stuck`: running grows to half of `desiredCount` (at least 1) over
//!   `steps` and stays there, `IN_PROGRESS`, for ever.
//! - `failed`: every step starts a task that stops (a stopped task with the
//!   next of `stoppedTaskReasons`, `startedBy` = the deployment id) and
//!   counts in `failedTasks`; at the last step `FAILED` with `reason`, still
//!   `PRIMARY` (a circuit breaker without rollback).
//! - `rolledBack`: as `failed`, and at the last step the circuit breaker
//!   rolls back, as the ECS Developer Guide describes it ("How the Amazon
//!   ECS deployment circuit breaker detects failures",
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html>):
//!   "it looks for the most recent deployment that is in a `COMPLETED`
//!   state. This is the deployment that it uses as the roll-back
//!   deployment. When the rollback starts, the deployment changes from a
//!   `COMPLETED` to `IN_PROGRESS`" — it becomes `PRIMARY` again under its
//!   old id, its `rolloutStateReason` `ECS deployment circuit breaker:
//!   rolling back to deploymentId <id>.` — and "when the deployment circuit
//!   breaker does not find a deployment that is in a `COMPLETED` state, the
//!   circuit breaker does not launch new tasks and the deployment is
//!   stalled" (ours then stays `PRIMARY` and `FAILED`). The failed
//!   deployment is `ACTIVE` and drains; `rollbackSteps` steps later (1 by
//!   default) it is gone and the one rolled back to is `COMPLETED` again.
//!   With `rollbackSteps: 0` that happens within the failing step: the fast
//!   case, where a look after it never sees ours at all. The service events
//!   are ECS's: `(service web) (deployment ecs-svc/…) deployment failed:
//!   tasks failed to start.`, then `(service web) rolling back to
//!   deployment ecs-svc/….`, and once back `… deployment completed.` and
//!   `… has reached a steady state.`
//!
//! Every deployment is also a *service deployment* (`DescribeServices`'
//! `currentServiceDeployment` names the newest, an ARN
//! `…:service-deployment/<cluster>/<service>/<id>`), whose `status` follows
//! the ECS API Reference (`ServiceDeployment`): `IN_PROGRESS`, then
//! `SUCCESSFUL`; a circuit breaker without rollback `STOPPED` ("The service
//! deployment stops when … the rollback option is not in use for the
//! failure detection mechanism … and the service fails"); with rollback
//! `ROLLBACK_IN_PROGRESS`, then `ROLLBACK_SUCCESSFUL`, with `rollback`
//! (`reason`, `startedAt`, `serviceRevisionArn`) — kept after the
//! deployment itself has left `deployments[]`.
//!
//! Service events are listed newest first, as ECS does.

use crate::clock;
use crate::scenario::ServiceSpec;
use crate::wire::{ACCOUNT, ApiError, Input, OpResult, REGION, epoch};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::SystemTime;
use tokio::time::Instant;

/// How one deployment started by `UpdateService` rolls out (scenario field
/// `services[].rollouts[]`, one per `UpdateService` in order; when they
/// run out, `completed` in 3 steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutSpec {
    /// How the deployment ends.
    #[serde(default)]
    pub outcome: RolloutOutcome,
    /// Observations (DescribeServices calls naming the service) until it
    /// ends; at least 1.
    #[serde(default = "default_steps")]
    pub steps: u32,
    /// One step per this many milliseconds (of `crate::clock` time)
    /// instead.
    #[serde(default)]
    pub step_millis: Option<u64>,
    /// `rolloutStateReason` of a failed deployment [ECS deployment circuit
    /// breaker: tasks failed to start.].
    #[serde(default)]
    pub reason: Option<String>,
    /// `stoppedReason` of the tasks a failing deployment starts, one task
    /// per step, cycling [Essential container in task exited].
    #[serde(default)]
    pub stopped_task_reasons: Vec<String>,
    /// The deployment's `createdAt` is reported this many seconds in the
    /// past, so a test can exercise the roll's timeout without sleeping.
    #[serde(default)]
    pub created_seconds_ago: u64,
    /// `rolledBack`: steps from the failure until the rollback is over (the
    /// failed deployment gone, the one rolled back to `COMPLETED`) [1]; 0:
    /// within the failing step, so no look ever sees ours `FAILED`.
    #[serde(default = "default_rollback_steps")]
    pub rollback_steps: u32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            outcome: RolloutOutcome::Completed,
            steps: default_steps(),
            step_millis: None,
            reason: None,
            stopped_task_reasons: Vec::new(),
            created_seconds_ago: 0,
            rollback_steps: default_rollback_steps(),
        }
    }
}

fn default_steps() -> u32 {
    3
}

fn default_rollback_steps() -> u32 {
    1
}

/// How a scripted deployment ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RolloutOutcome {
    /// `COMPLETED` with every task running.
    #[default]
    Completed,
    /// `FAILED`, still `PRIMARY`.
    Failed,
    /// `FAILED`, then rolled back by the circuit breaker.
    RolledBack,
    /// Half the tasks running, `IN_PROGRESS` for ever (say, a health check
    /// that half the tasks fail without the circuit breaker counting them).
    Stuck,
}

const DEFAULT_FAILURE: &str = "ECS deployment circuit breaker: tasks failed to start.";
const DEFAULT_STOPPED: &str = "Essential container in task exited";

#[derive(Debug, Clone)]
struct Script {
    spec: RolloutSpec,
    started: Instant,
    observations: u32,
    /// Steps applied so far.
    applied: u32,
    /// The deployment the circuit breaker rolled back to, once it has.
    rolled_back_to: Option<String>,
}

#[derive(Debug, Clone)]
struct Deployment {
    id: String,
    status: String,
    rollout_state: String,
    reason: String,
    task_definition: String,
    desired: i64,
    running: i64,
    failed_tasks: i64,
    created_at: SystemTime,
    updated_at: SystemTime,
    script: Option<Script>,
    /// The ARN of its service deployment (an entry of `Service::history`).
    service_deployment: String,
    /// The ARN of the service revision it deploys.
    revision: String,
}

/// One service deployment, as `DescribeServiceDeployments` tells it: the
/// history of one update, kept after its deployment has left
/// `deployments[]`.
#[derive(Debug, Clone)]
struct History {
    arn: String,
    created_at: SystemTime,
    updated_at: SystemTime,
    finished_at: Option<SystemTime>,
    stopped_at: Option<SystemTime>,
    /// `IN_PROGRESS`, `SUCCESSFUL`, `STOPPED`, `ROLLBACK_IN_PROGRESS`,
    /// `ROLLBACK_SUCCESSFUL`.
    status: String,
    status_reason: String,
    target: String,
    sources: Vec<String>,
    /// `(reason, startedAt, serviceRevisionArn)` once the circuit breaker
    /// rolled it back.
    rollback: Option<(String, SystemTime, String)>,
    failed_tasks: i64,
    desired: i64,
}

/// A task a service deployment started (only failed ones are kept).
#[derive(Debug, Clone)]
struct ServiceTask {
    arn: String,
    started_by: String,
    group: String,
    task_definition: String,
    stopped_reason: String,
    created_at: SystemTime,
}

#[derive(Debug, Clone)]
struct Service {
    cluster: String,
    name: String,
    desired: i64,
    deployments: Vec<Deployment>,
    /// `(id, at, message)`, newest first.
    events: Vec<(String, SystemTime, String)>,
    rollouts: VecDeque<RolloutSpec>,
    tasks: Vec<ServiceTask>,
    /// Service deployments, oldest first; the last is the current one.
    history: Vec<History>,
}

/// The deployments, events and service tasks of every service.
#[derive(Debug, Default)]
pub struct Services {
    services: Vec<Service>,
}

/// `ecs-svc/` and 19 digits, the shape of an ECS deployment id.
pub fn deployment_id() -> String {
    let digits: String = crate::ids::hex32()
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(19)
        .collect();
    format!("ecs-svc/{digits}")
}

/// 21 letters and digits, the shape of a service deployment's id in its ARN.
fn short_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    crate::ids::hex32()
        .as_bytes()
        .chunks(2)
        .chain(crate::ids::hex32().as_bytes().chunks(2))
        .take(21)
        .map(|pair| {
            let n = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0);
            char::from(ALPHABET[usize::from(n) % ALPHABET.len()])
        })
        .collect()
}

impl Services {
    /// The services of a scenario, each with one completed deployment (a day
    /// old) of
    /// `task_definition(spec)` (the resolved ARN of its task definition).
    pub fn new(specs: &[ServiceSpec], task_definition: impl Fn(&ServiceSpec) -> String) -> Self {
        // The running deployment was made long before the test.
        let now = clock::now() - std::time::Duration::from_secs(86_400);
        let services = specs
            .iter()
            .map(|s| {
                let desired = s.desired_count.unwrap_or(2);
                let mut service = Service {
                    cluster: s.cluster.clone(),
                    name: s.name.clone(),
                    desired,
                    deployments: Vec::new(),
                    events: Vec::new(),
                    rollouts: s.rollouts.iter().cloned().collect(),
                    tasks: Vec::new(),
                    history: Vec::new(),
                };
                let (arn, revision) = service.new_history(now, desired, Vec::new());
                if let Some(h) = service.history.last_mut() {
                    h.status = "SUCCESSFUL".into();
                    h.status_reason = "Service deployment completed.".into();
                    h.finished_at = Some(now);
                }
                service.deployments.push(Deployment {
                    id: deployment_id(),
                    status: "PRIMARY".into(),
                    rollout_state: "COMPLETED".into(),
                    reason: "ECS deployment completed.".into(),
                    task_definition: task_definition(s),
                    desired,
                    running: desired,
                    failed_tasks: 0,
                    created_at: now,
                    updated_at: now,
                    script: None,
                    service_deployment: arn,
                    revision,
                });
                service
            })
            .collect();
        Services { services }
    }

    fn find(&mut self, cluster: &str, name: &str) -> Option<&mut Service> {
        self.services
            .iter_mut()
            .find(|s| s.cluster == cluster && s.name == name)
    }

    /// Adds the deployment fields to a service's DescribeServices JSON;
    /// `observed` counts one step of its scripted rollouts.
    pub fn decorate(&mut self, cluster: &str, name: &str, observed: bool, v: &mut Value) {
        let Some(service) = self.find(cluster, name) else {
            return;
        };
        service.advance(observed);
        service.fill(v);
    }

    /// `UpdateService`: `task_definition` is the resolved ARN of the
    /// request's `taskDefinition`, when it named one. Answers `{service}`
    /// with `base` (the service's static JSON) decorated.
    pub fn update(
        &mut self,
        cluster: &str,
        input: &Value,
        task_definition: Option<String>,
        mut base: Value,
    ) -> OpResult {
        let i = Input(input);
        let reference = i.str("service")?;
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let force = i.opt_bool("forceNewDeployment")?.unwrap_or(false);
        let desired = i.opt_i64("desiredCount")?;
        let service = self
            .find(cluster, name)
            .ok_or_else(|| ApiError::client("ServiceNotFoundException", "Service not found."))?;
        service.advance(false);
        if let Some(d) = desired {
            if d < 0 {
                return Err(ApiError::client(
                    "InvalidParameterException",
                    "desiredCount must be at least 0.",
                ));
            }
            service.desired = d;
        }
        let current = service.primary().map(|d| d.task_definition.clone());
        let changed = task_definition.is_some() && task_definition != current;
        if force || changed {
            service.start_deployment(task_definition.or(current).unwrap_or_default());
        }
        service.fill(&mut base);
        Ok(json!({ "service": base }))
    }

    /// `DescribeServiceDeployments`: the service deployments named (1 to
    /// 20 ARNs), each found in any service of the cluster it names; an ARN
    /// nobody knows is a `failures[]` entry `MISSING`.
    pub fn describe_service_deployments(&mut self, arns: &[String]) -> OpResult {
        if arns.is_empty() || arns.len() > 20 {
            return Err(ApiError::client(
                "InvalidParameterException",
                "serviceDeploymentArns must name between 1 and 20 service deployments.",
            ));
        }
        let mut found = Vec::new();
        let mut failures = Vec::new();
        for arn in arns {
            let service = self
                .services
                .iter_mut()
                .find(|s| s.history.iter().any(|h| &h.arn == arn));
            match service {
                Some(service) => {
                    service.advance(false);
                    if let Some(h) = service.history.iter().find(|h| &h.arn == arn) {
                        found.push(service.history_json(h));
                    }
                }
                None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
            }
        }
        Ok(json!({"serviceDeployments": found, "failures": failures}))
    }

    /// Task ARNs for `ListTasks` with `serviceName`; only stopped tasks of
    /// failed rollouts are kept, so `RUNNING` lists none.
    pub fn list_tasks(&mut self, cluster: &str, service: &str, desired: &str) -> Vec<String> {
        let name = service.rsplit('/').next().unwrap_or(service);
        match self.find(cluster, name) {
            Some(s) if desired == "STOPPED" => {
                s.advance(false);
                s.tasks.iter().map(|t| t.arn.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// A service task as `DescribeTasks` answers it, by ARN or id.
    pub fn task_json(&self, cluster: &str, reference: &str) -> Option<Value> {
        let task = self
            .services
            .iter()
            .filter(|s| s.cluster == cluster)
            .flat_map(|s| &s.tasks)
            .find(|t| t.arn == reference || t.arn.rsplit('/').next() == Some(reference))?;
        Some(json!({
            "taskArn": task.arn,
            "clusterArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"),
            "taskDefinitionArn": task.task_definition,
            "group": task.group,
            "startedBy": task.started_by,
            "lastStatus": "STOPPED",
            "desiredStatus": "STOPPED",
            "launchType": "FARGATE",
            "cpu": "256",
            "memory": "512",
            "version": 4,
            "createdAt": epoch(task.created_at),
            "stoppingAt": epoch(task.created_at),
            "stoppedAt": epoch(task.created_at),
            "stopCode": "EssentialContainerExited",
            "stoppedReason": task.stopped_reason,
            "containers": [],
            "attachments": [],
            "overrides": {"containerOverrides": []},
        }))
    }
}

impl Service {
    fn primary(&self) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }

    fn event(&mut self, message: String) {
        self.events
            .insert(0, (crate::ids::uuid(), clock::now(), message));
        self.events.truncate(100);
    }

    /// A new service deployment (`IN_PROGRESS`) and the ARN of the service
    /// revision it deploys.
    fn new_history(
        &mut self,
        at: SystemTime,
        desired: i64,
        sources: Vec<String>,
    ) -> (String, String) {
        let (cluster, name) = (&self.cluster, &self.name);
        let arn = format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{cluster}/{name}/{}",
            short_id()
        );
        let digits: String = deployment_id().trim_start_matches("ecs-svc/").to_owned();
        let revision =
            format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{cluster}/{name}/{digits}");
        self.history.push(History {
            arn: arn.clone(),
            created_at: at,
            updated_at: at,
            finished_at: None,
            stopped_at: None,
            status: "IN_PROGRESS".into(),
            status_reason: "Service deployment in progress.".into(),
            target: revision.clone(),
            sources,
            rollback: None,
            failed_tasks: 0,
            desired,
        });
        (arn, revision)
    }

    fn history_mut(&mut self, arn: &str) -> Option<&mut History> {
        self.history.iter_mut().find(|h| h.arn == arn)
    }

    fn start_deployment(&mut self, task_definition: String) {
        let now = clock::now();
        let sources: Vec<String> = self
            .deployments
            .iter()
            .map(|d| d.revision.clone())
            .collect();
        for d in &mut self.deployments {
            if d.status == "PRIMARY" {
                d.status = "ACTIVE".into();
                d.updated_at = now;
            }
            // A superseded rollout stops where it is.
            d.script = None;
        }
        for h in &mut self.history {
            if h.status == "IN_PROGRESS" || h.status == "ROLLBACK_IN_PROGRESS" {
                h.status = "STOPPED".into();
                h.status_reason = "A newer service deployment replaced it.".into();
                h.stopped_at = Some(now);
                h.updated_at = now;
            }
        }
        let spec = self.rollouts.pop_front().unwrap_or_default();
        let created_at = now - std::time::Duration::from_secs(spec.created_seconds_ago);
        let (service_deployment, revision) = self.new_history(created_at, self.desired, sources);
        self.deployments.insert(
            0,
            Deployment {
                id: deployment_id(),
                status: "PRIMARY".into(),
                rollout_state: "IN_PROGRESS".into(),
                reason: "ECS deployment in progress.".into(),
                task_definition,
                desired: self.desired,
                running: 0,
                failed_tasks: 0,
                created_at,
                updated_at: now,
                script: Some(Script {
                    spec,
                    started: clock::instant(),
                    observations: 0,
                    applied: 0,
                    rolled_back_to: None,
                }),
                service_deployment,
                revision,
            },
        );
    }

    /// Applies every step that is due.
    fn advance(&mut self, observed: bool) {
        let scripted: Vec<String> = self
            .deployments
            .iter()
            .filter(|d| d.script.is_some())
            .map(|d| d.id.clone())
            .collect();
        for id in scripted {
            let mut due = None;
            while let Some(script) = self
                .deployments
                .iter_mut()
                .find(|d| d.id == id)
                .and_then(|d| d.script.as_mut())
            {
                let due = *due.get_or_insert_with(|| {
                    if observed {
                        script.observations += 1;
                    }
                    match script.spec.step_millis {
                        Some(ms) if ms > 0 => {
                            (clock::instant()
                                .saturating_duration_since(script.started)
                                .as_millis()
                                / u128::from(ms)) as u32
                        }
                        _ => script.observations,
                    }
                });
                if script.applied >= due {
                    break;
                }
                script.applied += 1;
                let step = script.applied;
                self.step(&id, step);
            }
        }
    }

    /// Step `step` (1-based) of deployment `id`'s rollout.
    fn step(&mut self, id: &str, step: u32) {
        let Some(index) = self.deployments.iter().position(|d| d.id == id) else {
            return;
        };
        let Some(script) = self.deployments[index].script.clone() else {
            return;
        };
        let steps = script.spec.steps.max(1);
        match script.spec.outcome {
            RolloutOutcome::Completed => {
                let desired = self.deployments[index].desired;
                self.grow(index, step, steps, desired, true);
            }
            RolloutOutcome::Stuck if step <= steps => {
                let desired = self.deployments[index].desired;
                self.grow(index, step, steps, (desired / 2).max(1).min(desired), false);
            }
            RolloutOutcome::Stuck => {}
            RolloutOutcome::Failed | RolloutOutcome::RolledBack if step <= steps => {
                self.fail_a_task(index, step, &script);
                if step == steps {
                    self.trip(index, &script);
                }
            }
            RolloutOutcome::Failed => {}
            RolloutOutcome::RolledBack => {
                if step >= steps + script.spec.rollback_steps {
                    self.rolled_back(id, &script);
                }
            }
        }
    }

    /// A rollout that grows to `target` running tasks over `steps`; the
    /// last step `completes` it, or leaves it in progress.
    fn grow(&mut self, index: usize, step: u32, steps: u32, target: i64, completes: bool) {
        let now = clock::now();
        let name = self.name.clone();
        let d = &mut self.deployments[index];
        let (id, desired) = (d.id.clone(), d.desired);
        let before = d.running;
        d.running = if step >= steps {
            target
        } else {
            target * i64::from(step) / i64::from(steps)
        };
        d.updated_at = now;
        let started = d.running - before;
        if started > 0 {
            self.event(format!(
                "(service {name}) has started {started} tasks: {}.",
                (0..started)
                    .map(|_| format!("(task {})", crate::ids::hex32()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        // The older deployments drain as the new one grows.
        let running = self.deployments[index].running;
        for other in self.deployments.iter_mut().filter(|o| o.id != id) {
            other.running = other.running.min((desired - running).max(0));
        }
        if step >= steps && completes {
            let d = &mut self.deployments[index];
            d.rollout_state = "COMPLETED".into();
            d.reason = "ECS deployment completed.".into();
            d.script = None;
            let arn = d.service_deployment.clone();
            self.deployments.retain(|o| o.id == id);
            if let Some(h) = self.history_mut(&arn) {
                h.status = "SUCCESSFUL".into();
                h.status_reason = "Service deployment completed.".into();
                h.finished_at = Some(now);
                h.updated_at = now;
            }
            self.event(format!(
                "(service {name}) (deployment {id}) deployment completed."
            ));
            self.event(format!("(service {name}) has reached a steady state."));
        }
    }

    /// One task of a failing rollout starts and stops.
    fn fail_a_task(&mut self, index: usize, step: u32, script: &Script) {
        let now = clock::now();
        let name = self.name.clone();
        let reasons = &script.spec.stopped_task_reasons;
        let reason = if reasons.is_empty() {
            DEFAULT_STOPPED.to_string()
        } else {
            reasons[(step as usize - 1) % reasons.len()].clone()
        };
        let task_id = crate::ids::hex32();
        let d = &mut self.deployments[index];
        d.failed_tasks += 1;
        d.updated_at = now;
        let task = ServiceTask {
            arn: format!(
                "arn:aws:ecs:{REGION}:{ACCOUNT}:task/{}/{task_id}",
                self.cluster
            ),
            started_by: d.id.clone(),
            group: format!("service:{name}"),
            task_definition: d.task_definition.clone(),
            stopped_reason: reason,
            created_at: now,
        };
        let (arn, failed) = (d.service_deployment.clone(), d.failed_tasks);
        self.tasks.insert(0, task);
        if let Some(h) = self.history_mut(&arn) {
            h.failed_tasks = failed;
            h.updated_at = now;
        }
        self.event(format!(
            "(service {name}) has started 1 tasks: (task {task_id})."
        ));
    }

    /// The circuit breaker trips on deployment `index`: `FAILED`, and with
    /// `rolledBack` the most recent `COMPLETED` deployment is `PRIMARY` and
    /// `IN_PROGRESS` again (module docs).
    fn trip(&mut self, index: usize, script: &Script) {
        let now = clock::now();
        let name = self.name.clone();
        let failure = script
            .spec
            .reason
            .clone()
            .unwrap_or_else(|| DEFAULT_FAILURE.to_string());
        let d = &mut self.deployments[index];
        d.rollout_state = "FAILED".into();
        d.reason = failure.clone();
        let (id, arn) = (d.id.clone(), d.service_deployment.clone());
        self.event(format!(
            "(service {name}) (deployment {id}) deployment failed: tasks failed to start."
        ));
        let back = match script.spec.outcome {
            RolloutOutcome::RolledBack => self
                .deployments
                .iter()
                .filter(|o| o.id != id && o.rollout_state == "COMPLETED")
                .max_by_key(|o| o.created_at)
                .map(|o| o.id.clone()),
            _ => None,
        };
        let Some(back) = back else {
            // No rollback (or nothing COMPLETED to go back to): stalled.
            self.deployments[index].script = None;
            if let Some(h) = self.history_mut(&arn) {
                h.status = "STOPPED".into();
                h.status_reason = failure;
                h.stopped_at = Some(now);
                h.updated_at = now;
            }
            return;
        };
        let mut revision = String::new();
        for o in &mut self.deployments {
            if o.id == back {
                o.status = "PRIMARY".into();
                o.rollout_state = "IN_PROGRESS".into();
                o.reason =
                    format!("ECS deployment circuit breaker: rolling back to deploymentId {back}.");
                o.updated_at = now;
                revision = o.revision.clone();
            } else if o.id == id {
                o.status = "ACTIVE".into();
                o.updated_at = now;
            }
        }
        if let Some(script) = self.deployments[index].script.as_mut() {
            script.rolled_back_to = Some(back.clone());
        }
        if let Some(h) = self.history_mut(&arn) {
            h.status = "ROLLBACK_IN_PROGRESS".into();
            h.status_reason = failure.clone();
            h.rollback = Some((failure, now, revision));
            h.updated_at = now;
        }
        self.event(format!(
            "(service {name}) rolling back to deployment {back}."
        ));
        if script.spec.rollback_steps == 0 {
            let script = self.deployments[index].script.clone();
            if let Some(script) = script {
                self.rolled_back(&id, &script);
            }
        }
    }

    /// The rollback is over: the failed deployment `id` has drained and is
    /// gone, the one rolled back to is `COMPLETED` again.
    fn rolled_back(&mut self, id: &str, script: &Script) {
        let now = clock::now();
        let name = self.name.clone();
        let Some(arn) = self
            .deployments
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.service_deployment.clone())
        else {
            return;
        };
        self.deployments.retain(|o| o.id != id);
        if let Some(h) = self.history_mut(&arn) {
            h.status = "ROLLBACK_SUCCESSFUL".into();
            h.finished_at = Some(now);
            h.updated_at = now;
        }
        let Some(back) = script.rolled_back_to.clone() else {
            return;
        };
        if let Some(d) = self.deployments.iter_mut().find(|d| d.id == back) {
            d.rollout_state = "COMPLETED".into();
            d.reason = "ECS deployment completed.".into();
            d.running = d.desired;
            d.updated_at = now;
        }
        self.event(format!(
            "(service {name}) (deployment {back}) deployment completed."
        ));
        self.event(format!("(service {name}) has reached a steady state."));
    }

    /// Writes the deployment fields into the service's JSON.
    fn fill(&self, v: &mut Value) {
        let deployments: Vec<Value> = self
            .deployments
            .iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "status": d.status,
                    "taskDefinition": d.task_definition,
                    "desiredCount": d.desired,
                    "pendingCount": (d.desired - d.running).max(0) * i64::from(d.status == "PRIMARY" && d.rollout_state == "IN_PROGRESS"),
                    "runningCount": d.running,
                    "failedTasks": d.failed_tasks,
                    "createdAt": epoch(d.created_at),
                    "updatedAt": epoch(d.updated_at),
                    "launchType": "FARGATE",
                    "rolloutState": d.rollout_state,
                    "rolloutStateReason": d.reason,
                })
            })
            .collect();
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|(id, at, message)| json!({"id": id, "createdAt": epoch(*at), "message": message}))
            .collect();
        v["deployments"] = json!(deployments);
        v["events"] = json!(events);
        v["desiredCount"] = json!(self.desired);
        v["runningCount"] = json!(self.deployments.iter().map(|d| d.running).sum::<i64>());
        v["pendingCount"] = json!(0);
        v["deploymentController"] = json!({"type": "ECS"});
        v["deploymentConfiguration"] = json!({
            "deploymentCircuitBreaker": {"enable": true, "rollback": true},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        });
        if let Some(current) = self.history.last() {
            v["currentServiceDeployment"] = json!(current.arn);
        }
        if let Some(primary) = self.primary() {
            v["taskDefinition"] = json!(primary.task_definition);
        }
    }

    /// One service deployment as `DescribeServiceDeployments` answers it.
    fn history_json(&self, h: &History) -> Value {
        let (cluster, name) = (&self.cluster, &self.name);
        let revision = |arn: &str| {
            let running: i64 = self
                .deployments
                .iter()
                .filter(|d| d.revision == arn)
                .map(|d| d.running)
                .sum();
            json!({"arn": arn, "requestedTaskCount": h.desired, "runningTaskCount": running, "pendingTaskCount": 0})
        };
        let mut v = json!({
            "serviceDeploymentArn": h.arn,
            "serviceArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}"),
            "clusterArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"),
            "createdAt": epoch(h.created_at),
            "startedAt": epoch(h.created_at),
            "updatedAt": epoch(h.updated_at),
            "status": h.status,
            "statusReason": h.status_reason,
            "sourceServiceRevisions": h.sources.iter().map(|s| revision(s)).collect::<Vec<_>>(),
            "targetServiceRevision": revision(&h.target),
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": true, "rollback": true},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
            "deploymentCircuitBreaker": {
                "status": if h.rollback.is_some() || h.status == "STOPPED" { "TRIGGERED" } else { "MONITORING" },
                "failureCount": h.failed_tasks,
                "threshold": (h.desired / 2).clamp(3, 200),
            },
        });
        if let Some(at) = h.finished_at {
            v["finishedAt"] = epoch(at);
        }
        if let Some(at) = h.stopped_at {
            v["stoppedAt"] = epoch(at);
        }
        if let Some((reason, at, revision)) = &h.rollback {
            v["rollback"] =
                json!({"reason": reason, "startedAt": epoch(*at), "serviceRevisionArn": revision});
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use crate::ecs::Ecs;
    use crate::scenario::Scenario;
    use serde_json::{Value, json};

    fn ecs(rollouts: Value) -> Ecs {
        let scenario = Scenario::from_json(
            &json!({
                "clusters": ["app"],
                "taskDefinitions": [
                    {"family": "web", "revision": 1, "containers": [{"name": "web"}]},
                    {"family": "web", "revision": 2, "containers": [{"name": "web"}]}],
                "services": [{"name": "web", "cluster": "app", "taskDefinition": "web:1",
                              "desiredCount": 4, "rollouts": rollouts}],
            })
            .to_string(),
        )
        .unwrap();
        Ecs::new(&scenario)
    }

    fn describe(e: &mut Ecs) -> Value {
        e.handle(
            "DescribeServices",
            &json!({"cluster": "app", "services": ["web"]}),
            None,
        )
        .unwrap()["services"][0]
            .clone()
    }

    fn update(e: &mut Ecs, request: Value) -> Value {
        e.handle("UpdateService", &request, None).unwrap()["service"].clone()
    }

    fn statuses(service: &Value) -> Vec<(String, String)> {
        service["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["status"].as_str().unwrap().to_owned(),
                    d["rolloutState"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn pair(status: &str, state: &str) -> (String, String) {
        (status.into(), state.into())
    }

    #[test]
    fn a_forced_deployment_rolls_out_and_completes() {
        let mut e = ecs(json!([{"outcome": "completed", "steps": 2}]));
        let before = describe(&mut e);
        assert_eq!(statuses(&before), [pair("PRIMARY", "COMPLETED")]);
        let old = before["deployments"][0]["id"].as_str().unwrap().to_owned();
        let updated = update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        let new = updated["deployments"][0]["id"].as_str().unwrap().to_owned();
        assert!(new.starts_with("ecs-svc/") && new.len() == 27, "{new}");
        assert_ne!(new, old);
        assert_eq!(
            statuses(&updated),
            [pair("PRIMARY", "IN_PROGRESS"), pair("ACTIVE", "COMPLETED")]
        );
        assert_eq!(updated["deployments"][0]["runningCount"], 0);
        assert!(
            updated["taskDefinition"]
                .as_str()
                .unwrap()
                .ends_with("web:1")
        );
        let halfway = describe(&mut e);
        assert_eq!(halfway["deployments"][0]["runningCount"], 2);
        assert_eq!(halfway["deployments"][1]["runningCount"], 2);
        let done = describe(&mut e);
        assert_eq!(statuses(&done), [pair("PRIMARY", "COMPLETED")]);
        assert_eq!(done["deployments"][0]["id"], new.as_str());
        assert_eq!(done["runningCount"], 4);
        assert_eq!(
            done["events"][0]["message"],
            "(service web) has reached a steady state."
        );
        assert_eq!(
            done["events"][1]["message"],
            format!("(service web) (deployment {new}) deployment completed.")
        );
    }

    #[test]
    fn a_failed_rollout_leaves_stopped_tasks_with_reasons() {
        let mut e = ecs(json!([{"outcome": "failed", "steps": 2, "reason": "boom",
                                "stoppedTaskReasons": ["health checks failed", "exit 1"]}]));
        let updated = update(
            &mut e,
            json!({"cluster": "app", "service": "web", "taskDefinition": "web:2"}),
        );
        let id = updated["deployments"][0]["id"].as_str().unwrap().to_owned();
        assert!(
            updated["taskDefinition"]
                .as_str()
                .unwrap()
                .ends_with("web:2")
        );
        assert_eq!(
            describe(&mut e)["deployments"][0]["rolloutState"],
            "IN_PROGRESS"
        );
        let failed = describe(&mut e);
        assert_eq!(
            statuses(&failed),
            [pair("PRIMARY", "FAILED"), pair("ACTIVE", "COMPLETED")]
        );
        assert_eq!(failed["deployments"][0]["rolloutStateReason"], "boom");
        assert_eq!(failed["deployments"][0]["failedTasks"], 2);
        let listed = e
            .handle(
                "ListTasks",
                &json!({"cluster": "app", "serviceName": "web", "desiredStatus": "STOPPED"}),
                None,
            )
            .unwrap();
        let arns = listed["taskArns"].clone();
        assert_eq!(arns.as_array().unwrap().len(), 2);
        let running = e
            .handle(
                "ListTasks",
                &json!({"cluster": "app", "serviceName": "web"}),
                None,
            )
            .unwrap();
        assert_eq!(running["taskArns"], json!([]));
        let tasks = e
            .handle(
                "DescribeTasks",
                &json!({"cluster": "app", "tasks": arns}),
                None,
            )
            .unwrap();
        assert_eq!(tasks["tasks"][0]["startedBy"], id.as_str());
        assert_eq!(tasks["tasks"][0]["stoppedReason"], "exit 1");
        assert_eq!(tasks["tasks"][1]["stoppedReason"], "health checks failed");
        assert_eq!(tasks["tasks"][0]["group"], "service:web");
    }

    fn ids(service: &Value) -> Vec<String> {
        service["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn messages(service: &Value) -> Vec<String> {
        service["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect()
    }

    fn history(e: &mut Ecs, arn: &Value) -> Value {
        e.handle(
            "DescribeServiceDeployments",
            &json!({"serviceDeploymentArns": [arn]}),
            None,
        )
        .unwrap()["serviceDeployments"][0]
            .clone()
    }

    #[test]
    fn the_circuit_breaker_brings_the_last_completed_deployment_back_then_ours_drains() {
        let mut e = ecs(json!([{"outcome": "rolledBack", "steps": 1}]));
        let old = describe(&mut e)["deployments"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let updated = update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        let ours = updated["deployments"][0]["id"].as_str().unwrap().to_owned();
        let current = updated["currentServiceDeployment"].clone();
        assert!(
            current
                .as_str()
                .unwrap()
                .contains(":service-deployment/app/web/"),
            "{current}"
        );
        assert_eq!(history(&mut e, &current)["status"], "IN_PROGRESS");
        // The breaker trips: ours FAILED and draining, the old one PRIMARY
        // and IN_PROGRESS again under its old id (the ECS Developer Guide).
        let rolling_back = describe(&mut e);
        assert_eq!(ids(&rolling_back), [ours.clone(), old.clone()]);
        assert_eq!(
            statuses(&rolling_back),
            [pair("ACTIVE", "FAILED"), pair("PRIMARY", "IN_PROGRESS")]
        );
        assert_eq!(
            rolling_back["deployments"][1]["rolloutStateReason"],
            format!("ECS deployment circuit breaker: rolling back to deploymentId {old}.")
        );
        assert_eq!(
            messages(&rolling_back)[..2],
            [
                format!("(service web) rolling back to deployment {old}."),
                format!(
                    "(service web) (deployment {ours}) deployment failed: tasks failed to start."
                ),
            ]
        );
        let during = history(&mut e, &current);
        assert_eq!(during["status"], "ROLLBACK_IN_PROGRESS");
        assert_eq!(during["rollback"]["reason"], super::DEFAULT_FAILURE);
        // One step later ours is gone and the old one COMPLETED again; the
        // service deployment keeps the story.
        let later = describe(&mut e);
        assert_eq!(statuses(&later), [pair("PRIMARY", "COMPLETED")]);
        assert_eq!(ids(&later), std::slice::from_ref(&old));
        assert_eq!(later["currentServiceDeployment"], current);
        assert_eq!(
            messages(&later)[0],
            "(service web) has reached a steady state."
        );
        let after = history(&mut e, &current);
        assert_eq!(after["status"], "ROLLBACK_SUCCESSFUL");
        assert!(after["finishedAt"].is_number());
        assert!(after["createdAt"].as_f64() >= updated["deployments"][0]["createdAt"].as_f64());
    }

    #[test]
    fn a_fast_rollback_is_over_before_anyone_sees_ours_failed() {
        let mut e = ecs(json!([{"outcome": "rolledBack", "steps": 1, "rollbackSteps": 0}]));
        let old = describe(&mut e)["deployments"][0]["id"].clone();
        let updated = update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        let ours = updated["deployments"][0]["id"].as_str().unwrap().to_owned();
        let after = describe(&mut e);
        assert_eq!(statuses(&after), [pair("PRIMARY", "COMPLETED")]);
        assert_eq!(after["deployments"][0]["id"], old);
        let events = messages(&after);
        assert!(
            events.contains(&format!(
                "(service web) (deployment {ours}) deployment failed: tasks failed to start."
            )),
            "{events:?}"
        );
        assert!(
            events.contains(&format!(
                "(service web) rolling back to deployment {}.",
                old.as_str().unwrap()
            )),
            "{events:?}"
        );
        let current = after["currentServiceDeployment"].clone();
        assert_eq!(history(&mut e, &current)["status"], "ROLLBACK_SUCCESSFUL");
    }

    #[test]
    fn the_breaker_goes_back_to_the_most_recent_completed_deployment() {
        let mut e = ecs(json!([{"steps": 5, "stepMillis": 3_600_000},
                               {"outcome": "rolledBack", "steps": 1}]));
        let original = describe(&mut e)["deployments"][0]["id"].clone();
        // The first update never gets anywhere (still IN_PROGRESS); the
        // second fails: the breaker goes back past the first, to the
        // original, the most recent deployment that is COMPLETED.
        update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        let rolled = describe(&mut e);
        assert_eq!(
            statuses(&rolled),
            [
                pair("ACTIVE", "FAILED"),
                pair("ACTIVE", "IN_PROGRESS"),
                pair("PRIMARY", "IN_PROGRESS")
            ]
        );
        assert_eq!(rolled["deployments"][2]["id"], original);
    }

    #[test]
    fn a_stuck_rollout_stays_half_way() {
        let mut e = ecs(json!([{"outcome": "stuck", "steps": 2}]));
        update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        let states: Vec<_> = (0..6)
            .map(|_| {
                let s = describe(&mut e);
                (
                    s["deployments"][0]["rolloutState"].clone(),
                    s["deployments"][0]["runningCount"].clone(),
                )
            })
            .collect();
        assert_eq!(states[0], (json!("IN_PROGRESS"), json!(1)));
        assert!(
            states[1..]
                .iter()
                .all(|s| *s == (json!("IN_PROGRESS"), json!(2))),
            "{states:?}"
        );
    }

    #[test]
    fn describe_service_deployments_checks_its_input() {
        let mut e = ecs(json!([]));
        let empty = e
            .handle(
                "DescribeServiceDeployments",
                &json!({"serviceDeploymentArns": []}),
                None,
            )
            .unwrap_err();
        assert_eq!(empty.code, "InvalidParameterException");
        let unknown = e
            .handle(
                "DescribeServiceDeployments",
                &json!({"serviceDeploymentArns": ["arn:aws:ecs:us-east-1:1:service-deployment/app/web/nope"]}),
                None,
            )
            .unwrap();
        assert_eq!(unknown["serviceDeployments"], json!([]));
        assert_eq!(unknown["failures"][0]["reason"], "MISSING");
        let current = describe(&mut e)["currentServiceDeployment"].clone();
        let first = history(&mut e, &current);
        assert_eq!(first["status"], "SUCCESSFUL");
        assert_eq!(
            first["serviceArn"],
            "arn:aws:ecs:us-east-1:123456789012:service/app/web"
        );
    }

    #[test]
    fn update_service_starts_a_deployment_only_when_something_changes() {
        let mut e = ecs(json!([]));
        let same = update(
            &mut e,
            json!({"cluster": "app", "service": "web", "taskDefinition": "web:1"}),
        );
        assert_eq!(statuses(&same), [pair("PRIMARY", "COMPLETED")]);
        let missing = e
            .handle(
                "UpdateService",
                &json!({"cluster": "app", "service": "api", "forceNewDeployment": true}),
                None,
            )
            .unwrap_err();
        assert_eq!(missing.code, "ServiceNotFoundException");
        let bad = e
            .handle(
                "UpdateService",
                &json!({"cluster": "app", "service": "web", "taskDefinition": "nope:9"}),
                None,
            )
            .unwrap_err();
        assert_eq!(bad.code, "InvalidParameterException");
        // Default rollout: completed after 3 observations.
        update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        let states: Vec<_> = (0..3)
            .map(|_| describe(&mut e)["deployments"][0]["rolloutState"].clone())
            .collect();
        assert_eq!(states, ["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]);
    }

    #[test]
    fn step_millis_moves_the_rollout_by_wall_clock_time() {
        let mut e = ecs(json!([{"outcome": "failed", "steps": 2, "stepMillis": 5}]));
        update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        std::thread::sleep(std::time::Duration::from_millis(12));
        let failed = describe(&mut e);
        assert_eq!(failed["deployments"][0]["rolloutState"], "FAILED");
        assert_eq!(failed["deployments"][0]["failedTasks"], 2);
    }
}
