//! ECS services with deployments: `UpdateService` starts a deployment that
//! rolls out as the scenario scripts it, `DescribeServices` shows it, and a
//! failing rollout leaves stopped tasks behind for `ListTasks`
//! (`serviceName`, `desiredStatus`) and `DescribeTasks`.
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
//! - `failed`: every step starts a task that stops (a stopped task with the
//!   next of `stoppedTaskReasons`, `startedBy` = the deployment id) and
//!   counts in `failedTasks`; at the last step `FAILED` with `reason`, still
//!   `PRIMARY` (a circuit breaker without rollback).
//! - `rolledBack`: as `failed`, and at the last step the circuit breaker
//!   rolls back: the failed deployment becomes `ACTIVE`, the one it replaced
//!   `PRIMARY` again, with the event `(service web) rolling back to
//!   deployment …`; one step later the failed deployment is gone.
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
        }
    }
}

fn default_steps() -> u32 {
    3
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
    /// The deployment this one replaced (the rollback target).
    previous: Option<String>,
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
                Service {
                    cluster: s.cluster.clone(),
                    name: s.name.clone(),
                    desired,
                    deployments: vec![Deployment {
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
                    }],
                    events: Vec::new(),
                    rollouts: s.rollouts.iter().cloned().collect(),
                    tasks: Vec::new(),
                }
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

    fn start_deployment(&mut self, task_definition: String) {
        let now = clock::now();
        let previous = self.primary().map(|d| d.id.clone());
        for d in &mut self.deployments {
            if d.status == "PRIMARY" {
                d.status = "ACTIVE".into();
                d.updated_at = now;
            }
            // A superseded rollout stops where it is.
            d.script = None;
        }
        let spec = self.rollouts.pop_front().unwrap_or_default();
        let created_at = now - std::time::Duration::from_secs(spec.created_seconds_ago);
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
                    previous,
                }),
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
                let (step, script) = (script.applied, script.clone());
                self.step(&id, step, &script);
            }
        }
    }

    /// Step `step` (1-based) of deployment `id`'s rollout.
    fn step(&mut self, id: &str, step: u32, script: &Script) {
        let now = clock::now();
        let steps = script.spec.steps.max(1);
        let name = self.name.clone();
        let Some(index) = self.deployments.iter().position(|d| d.id == id) else {
            return;
        };
        match script.spec.outcome {
            RolloutOutcome::Completed => {
                let d = &mut self.deployments[index];
                let desired = d.desired;
                let before = d.running;
                d.running = if step >= steps {
                    desired
                } else {
                    desired * i64::from(step) / i64::from(steps)
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
                if step >= steps {
                    let d = &mut self.deployments[index];
                    d.rollout_state = "COMPLETED".into();
                    d.reason = "ECS deployment completed.".into();
                    d.script = None;
                    self.deployments.retain(|o| o.id == id);
                    self.event(format!(
                        "(service {name}) (deployment {id}) deployment completed."
                    ));
                    self.event(format!("(service {name}) has reached a steady state."));
                }
            }
            RolloutOutcome::Failed | RolloutOutcome::RolledBack if step <= steps => {
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
                    started_by: id.to_string(),
                    group: format!("service:{name}"),
                    task_definition: d.task_definition.clone(),
                    stopped_reason: reason,
                    created_at: now,
                };
                self.tasks.insert(0, task);
                self.event(format!(
                    "(service {name}) has started 1 tasks: (task {task_id})."
                ));
                if step == steps {
                    let failure = script
                        .spec
                        .reason
                        .clone()
                        .unwrap_or_else(|| DEFAULT_FAILURE.to_string());
                    let d = &mut self.deployments[index];
                    d.rollout_state = "FAILED".into();
                    d.reason = failure;
                    self.event(format!(
                        "(service {name}) (deployment {id}) deployment failed: tasks failed to start."
                    ));
                    if script.spec.outcome == RolloutOutcome::Failed {
                        self.deployments[index].script = None;
                    } else {
                        let previous = script.previous.clone();
                        let restored = self
                            .deployments
                            .iter_mut()
                            .find(|o| Some(&o.id) == previous.as_ref());
                        if let Some(back) = restored {
                            back.status = "PRIMARY".into();
                            back.rollout_state = "COMPLETED".into();
                            back.updated_at = now;
                            let back = back.id.clone();
                            self.deployments[index].status = "ACTIVE".into();
                            self.event(format!(
                                "(service {name}) rolling back to deployment {back}."
                            ));
                        }
                    }
                }
            }
            RolloutOutcome::Failed | RolloutOutcome::RolledBack => {
                // One step after the rollback the failed deployment is gone.
                self.deployments.retain(|o| o.id != id);
            }
        }
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
        if let Some(primary) = self.primary() {
            v["taskDefinition"] = json!(primary.task_definition);
        }
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

    #[test]
    fn the_circuit_breaker_rolls_back_then_the_failed_deployment_vanishes() {
        let mut e = ecs(json!([{"outcome": "rolledBack", "steps": 1}]));
        let old = describe(&mut e)["deployments"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        update(
            &mut e,
            json!({"cluster": "app", "service": "web", "forceNewDeployment": true}),
        );
        let rolled = describe(&mut e);
        assert_eq!(
            statuses(&rolled),
            [pair("ACTIVE", "FAILED"), pair("PRIMARY", "COMPLETED")]
        );
        assert_eq!(rolled["deployments"][1]["id"], old.as_str());
        assert_eq!(
            rolled["events"][0]["message"],
            format!("(service web) rolling back to deployment {old}.")
        );
        let later = describe(&mut e);
        assert_eq!(statuses(&later), [pair("PRIMARY", "COMPLETED")]);
        assert_eq!(later["deployments"][0]["id"], old.as_str());
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
