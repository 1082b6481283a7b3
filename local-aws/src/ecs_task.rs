//! One scripted ECS task: its lifecycle, its stop, and its JSON shape.
//!
//! A task walks through its scenario timeline (`PROVISIONING → PENDING →
//! RUNNING …`) one step per `DescribeTasks` that includes it, or by time
//! ([`crate::clock`]) when the outcome sets `stepMillis`; after the last
//! step it is `STOPPED` with the scripted stop code, reason and exit codes.
//! A `StopTask` makes the next observation `STOPPED` with `UserInitiated`.
//! The instants of creation, first `RUNNING`, stop request and `STOPPED` are
//! kept so a test can prove that no two migrations overlapped.

use crate::clock;
use crate::scenario::{TaskDefinitionSpec, TaskOutcome};
use crate::wire::epoch;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Time since `at` on [`crate::clock`].
fn since(at: Instant) -> Duration {
    clock::instant().saturating_duration_since(at)
}

/// What `RunTask` asked for, echoed by `DescribeTasks`.
#[derive(Debug, Clone, Default)]
pub struct RunParameters {
    /// `startedBy`.
    pub started_by: Option<String>,
    /// `group` (default `family:<family>`).
    pub group: String,
    /// `tags` as sent.
    pub tags: Vec<Value>,
    /// `overrides` as sent.
    pub overrides: Option<Value>,
    /// `launchType`.
    pub launch_type: Option<String>,
    /// `capacityProviderStrategy` as sent.
    pub capacity_provider_strategy: Option<Value>,
    /// `platformVersion`.
    pub platform_version: Option<String>,
    /// `networkConfiguration` as sent.
    pub network_configuration: Option<Value>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    /// `stopCode`.
    pub stop_code: String,
    /// `stoppedReason`.
    pub stopped_reason: String,
    /// Exit code per container (None = no exit code reported).
    pub exit_codes: BTreeMap<String, Option<i32>>,
}

/// A task and its scripted future.
#[derive(Debug, Clone)]
pub struct Task {
    /// Task ARN.
    pub arn: String,
    /// The 32-hex task id (last ARN segment).
    pub id: String,
    /// Cluster name.
    pub cluster: String,
    /// Cluster ARN.
    pub cluster_arn: String,
    /// The task definition it runs.
    pub definition: TaskDefinitionSpec,
    /// The task definition ARN.
    pub definition_arn: String,
    /// The scripted outcome.
    pub outcome: TaskOutcome,
    /// What RunTask asked for.
    pub params: RunParameters,
    /// The CodePipeline job whose invocation created it, when known.
    pub job_id: Option<String>,
    /// `createdAt` as reported (already shifted by `createdSecondsAgo`).
    pub created_at: SystemTime,
    /// Creation instant (`crate::clock`, unshifted), for the overlap
    /// timeline.
    pub created_instant: Instant,
    observations: usize,
    version: i64,
    container_ids: Vec<String>,
    /// When the task was first seen `RUNNING`.
    pub started: Option<(SystemTime, Instant)>,
    /// `StopTask` reason and instant.
    pub stop_requested: Option<(String, SystemTime, Instant)>,
    /// How and when it stopped.
    pub stopped: Option<(Stopped, SystemTime, Instant)>,
}

impl Task {
    /// A new task in the first state of its timeline.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        arn: String,
        id: String,
        cluster: String,
        cluster_arn: String,
        definition: TaskDefinitionSpec,
        definition_arn: String,
        outcome: TaskOutcome,
        params: RunParameters,
        job_id: Option<String>,
    ) -> Task {
        let now = clock::now();
        let created_at = now
            .checked_sub(Duration::from_secs(outcome.created_seconds_ago))
            .unwrap_or(now);
        let container_count = definition.containers.len();
        let mut task = Task {
            arn,
            id,
            cluster,
            cluster_arn,
            definition,
            definition_arn,
            outcome,
            params,
            job_id,
            created_at,
            created_instant: clock::instant(),
            observations: 0,
            version: 1,
            container_ids: Vec::new(),
            started: None,
            stop_requested: None,
            stopped: None,
        };
        task.container_ids = (0..container_count).map(|_| crate::ids::uuid()).collect();
        task.refresh(false);
        task
    }

    /// Current `lastStatus`.
    pub fn last_status(&self) -> &str {
        if self.stopped.is_some() {
            return "STOPPED";
        }
        if self.stop_requested.is_some() && self.outcome.stop_delay_millis > 0 {
            return "STOPPING";
        }
        let idx = self.step_index();
        self.outcome
            .timeline
            .get(idx.min(self.outcome.timeline.len().saturating_sub(1)))
            .map(String::as_str)
            .unwrap_or("PROVISIONING")
    }

    /// Current `desiredStatus`.
    pub fn desired_status(&self) -> &str {
        if self.stopped.is_some() || self.stop_requested.is_some() {
            "STOPPED"
        } else {
            "RUNNING"
        }
    }

    fn step_index(&self) -> usize {
        match self.outcome.step_millis {
            Some(ms) if ms > 0 => (since(self.created_instant).as_millis() / ms as u128) as usize,
            _ => self.observations,
        }
    }

    /// Brings the task up to date; `observed` counts one `DescribeTasks`
    /// step. Records the RUNNING and STOPPED instants.
    pub fn refresh(&mut self, observed: bool) {
        if self.stopped.is_some() {
            return;
        }
        let before = self.last_status().to_string();
        if observed && self.outcome.step_millis.is_none() {
            self.observations += 1;
        }
        let delay = self.stop_delay();
        let stop_due = match (&self.stop_requested, self.outcome.step_millis) {
            (None, _) => false,
            (Some((_, _, at)), _) if !delay.is_zero() => since(*at) >= delay,
            (Some(_), Some(_)) => true,
            (Some(_), None) => observed,
        };
        // A task whose own end came before its stop timeout ran out
        // finished by itself (a migration that exits 0 while stopping),
        // however late this look is.
        let ended_first = match (&self.stop_requested, self.outcome.step_millis) {
            (Some((_, _, at)), Some(ms)) if ms > 0 && !delay.is_zero() => {
                let end = Duration::from_millis(ms * self.outcome.timeline.len() as u64);
                self.created_instant + end <= *at + delay
            }
            _ => false,
        };
        let stop_due = stop_due && !ended_first;
        if stop_due {
            let reason = self
                .stop_requested
                .as_ref()
                .map(|(r, _, _)| r.clone())
                .unwrap_or_default();
            let code = if self.started.is_some() {
                Some(137)
            } else {
                None
            };
            let exit_codes = self
                .definition
                .containers
                .iter()
                .map(|c| (c.name.clone(), code))
                .collect();
            self.finish(Stopped {
                stop_code: "UserInitiated".into(),
                stopped_reason: reason,
                exit_codes,
            });
        } else if self.step_index() >= self.outcome.timeline.len() {
            let exit_codes = self
                .definition
                .containers
                .iter()
                .map(|c| {
                    let code = match &self.outcome.exit_codes {
                        None => Some(0),
                        Some(map) => map.get(&c.name).copied(),
                    };
                    (c.name.clone(), code)
                })
                .collect();
            self.finish(Stopped {
                stop_code: self.outcome.stop_code.clone(),
                stopped_reason: self.outcome.stopped_reason.clone(),
                exit_codes,
            });
        } else if self.last_status() == "RUNNING" && self.started.is_none() {
            self.started = Some((clock::now(), clock::instant()));
        }
        if self.last_status() != before {
            self.version += 1;
        }
    }

    fn finish(&mut self, stopped: Stopped) {
        // A delayed stop completes `stopDelayMillis` after StopTask, whenever
        // it is observed.
        // (A task whose own end comes first while it is stopping stops then.)
        let at = match &self.stop_requested {
            Some((_, wall, instant))
                if !self.stop_delay().is_zero()
                    && *instant + self.stop_delay() <= clock::instant() =>
            {
                (*wall + self.stop_delay(), *instant + self.stop_delay())
            }
            _ => (clock::now(), clock::instant()),
        };
        self.stopped = Some((stopped, at.0, at.1));
    }

    /// How long a stopping task runs on after `StopTask` (its `stopTimeout`).
    pub fn stop_delay(&self) -> Duration {
        Duration::from_millis(self.outcome.stop_delay_millis)
    }

    /// Whether this `DescribeTasks` should answer `MISSING` for the task
    /// (ECS's eventual consistency right after RunTask); counts one.
    pub fn hidden_from_describe(&mut self) -> bool {
        // Only right after RunTask: ECS describes a task it has shown.
        if self.outcome.missing_describes == 0
            || clock::instant().saturating_duration_since(self.created_instant)
                > Duration::from_secs(60)
        {
            return false;
        }
        self.outcome.missing_describes -= 1;
        true
    }

    /// Records a `StopTask` (the first reason wins, as in ECS).
    pub fn request_stop(&mut self, reason: &str) {
        if self.stopped.is_none() && self.stop_requested.is_none() {
            self.stop_requested = Some((reason.to_string(), clock::now(), clock::instant()));
            self.version += 1;
        }
    }

    /// The task as `DescribeTasks` / `RunTask` answer it.
    pub fn to_json(&self, include_tags: bool) -> Value {
        let status = self.last_status();
        let mut t = Map::new();
        let mut put = |k: &str, v: Value| {
            t.insert(k.to_string(), v);
        };
        put("taskArn", json!(self.arn));
        put("clusterArn", json!(self.cluster_arn));
        put("taskDefinitionArn", json!(self.definition_arn));
        put("group", json!(self.params.group));
        put("lastStatus", json!(status));
        put("desiredStatus", json!(self.desired_status()));
        put("cpu", json!(self.definition.cpu));
        put("memory", json!(self.definition.memory));
        put("createdAt", epoch(self.created_at));
        put("version", json!(self.version));
        put("availabilityZone", json!("us-east-1a"));
        put("attachments", json!([]));
        put("attributes", json!([]));
        put("enableExecuteCommand", json!(false));
        put("healthStatus", json!("UNKNOWN"));
        put(
            "overrides",
            self.params.overrides.clone().unwrap_or_else(
                || json!({"containerOverrides": [], "inferenceAcceleratorOverrides": []}),
            ),
        );
        if let Some(lt) = &self.params.launch_type {
            put("launchType", json!(lt));
        }
        if let Some(cps) = self
            .params
            .capacity_provider_strategy
            .as_ref()
            .and_then(|v| v.as_array())
            .and_then(|a| a.first())
            .and_then(|i| i.get("capacityProvider"))
        {
            put("capacityProviderName", cps.clone());
        }
        if let Some(pv) = &self.params.platform_version {
            put("platformVersion", json!(pv));
        }
        if let Some(sb) = &self.params.started_by {
            put("startedBy", json!(sb));
        }
        if include_tags {
            put("tags", json!(self.params.tags));
        }
        if let Some((at, _)) = self.started {
            put("startedAt", epoch(at));
            put("pullStartedAt", epoch(at));
            put("pullStoppedAt", epoch(at));
            put("connectivity", json!("CONNECTED"));
            put("connectivityAt", epoch(at));
        }
        if let Some((_, at, _)) = &self.stop_requested {
            put("stoppingAt", epoch(*at));
        }
        if let Some((s, at, _)) = &self.stopped {
            put("stopCode", json!(s.stop_code));
            put("stoppedReason", json!(s.stopped_reason));
            put("stoppedAt", epoch(*at));
            put("executionStoppedAt", epoch(*at));
            if self.stop_requested.is_none() {
                put("stoppingAt", epoch(*at));
            }
        }
        let containers: Vec<Value> = self
            .definition
            .containers
            .iter()
            .zip(&self.container_ids)
            .map(|(c, id)| self.container_json(&c.name, &c.image, id, status))
            .collect();
        t.insert("containers".into(), Value::Array(containers));
        Value::Object(t)
    }

    fn container_json(&self, name: &str, image: &str, id: &str, task_status: &str) -> Value {
        let last = match task_status {
            "STOPPED" => "STOPPED",
            "RUNNING" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => "RUNNING",
            _ => "PENDING",
        };
        let mut c = json!({
            "containerArn": format!("{}/{id}", self.arn.replace(":task/", ":container/")),
            "taskArn": self.arn,
            "name": name,
            "image": image,
            "lastStatus": last,
            "networkBindings": [],
            "networkInterfaces": [],
            "healthStatus": "UNKNOWN",
            "cpu": "0",
        });
        if let Some((s, _, _)) = &self.stopped
            && let Some(Some(code)) = s.exit_codes.get(name)
        {
            c["exitCode"] = json!(code);
        }
        if self.stopped.is_some()
            && let Some(reason) = self.outcome.container_reasons.get(name)
        {
            c["reason"] = json!(reason);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> TaskDefinitionSpec {
        serde_json::from_value(json!({
            "family": "app-migrate",
            "containers": [{"name": "app"}, {"name": "sidecar", "essential": false}]
        }))
        .unwrap()
    }

    fn task(outcome: TaskOutcome) -> Task {
        Task::new(
            "arn:aws:ecs:us-east-1:123456789012:task/app/abc".into(),
            "abc".into(),
            "app".into(),
            "arn:aws:ecs:us-east-1:123456789012:cluster/app".into(),
            definition(),
            "arn:aws:ecs:us-east-1:123456789012:task-definition/app-migrate:1".into(),
            outcome,
            RunParameters::default(),
            None,
        )
    }

    #[test]
    fn timeline_advances_per_observation_then_stops() {
        let mut t = task(TaskOutcome {
            exit_codes: Some([("app".to_string(), 3)].into_iter().collect()),
            ..Default::default()
        });
        assert_eq!(t.last_status(), "PROVISIONING");
        t.refresh(true);
        assert_eq!(t.last_status(), "PENDING");
        t.refresh(true);
        assert_eq!(t.last_status(), "RUNNING");
        assert!(t.started.is_some());
        t.refresh(true);
        assert_eq!(t.last_status(), "STOPPED");
        let json = t.to_json(false);
        assert_eq!(json["containers"][0]["exitCode"], 3);
        assert!(json["containers"][1].get("exitCode").is_none());
        assert_eq!(json["stopCode"], "EssentialContainerExited");
        assert!(json["cpu"].is_string() && json["createdAt"].is_number());
    }

    #[test]
    fn stop_before_running_has_no_exit_code() {
        let mut t = task(TaskOutcome::default());
        t.request_stop("timed out");
        assert_eq!(t.desired_status(), "STOPPED");
        assert_ne!(t.last_status(), "STOPPED");
        t.refresh(true);
        let json = t.to_json(false);
        assert_eq!(json["lastStatus"], "STOPPED");
        assert_eq!(json["stopCode"], "UserInitiated");
        assert_eq!(json["stoppedReason"], "timed out");
        assert!(json["containers"][0].get("exitCode").is_none());
    }

    #[test]
    fn stop_while_running_exits_137() {
        let mut t = task(TaskOutcome::default());
        t.refresh(true);
        t.refresh(true);
        t.request_stop("deadline");
        t.refresh(true);
        assert_eq!(t.to_json(false)["containers"][0]["exitCode"], 137);
    }
}
