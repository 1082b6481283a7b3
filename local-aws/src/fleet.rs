//! A fleet of deployments at once under the account's API quotas
//! (`make fleet`, issue 14): N pipeline executions started within one
//! second across M migration families (each its own `stateParameter`),
//! some families sharing a lock, the real function binary, tasks of
//! scripted durations. [`run`] drives them and [`FleetReport`] holds what
//! the table shows; the invariants (no failure, no duplicate task, no
//! overlap on a lock) are checked by [`FleetReport::violations`].
//!
//! Families: deployment `i` belongs to family `i % families`; the first
//! `shared_locks` families take lock `/migrate-once/fleet/lock-<f %
//! lock_groups>`, the others their default lock (`<stateParameter>/lock`).
//! When there are more deployments than families, the later deployment of
//! a family supersedes the earlier one (SPEC §4 step 4: only the latest one
//! started on a state parameter may migrate); those are counted as
//! superseded, not failed.

use crate::pipeline_driver::{ActionResult, ActionStatus, PipelineDriver};
use crate::quota::Quotas;
use crate::record::CallRecord;
use crate::scenario::{Scenario, TaskOutcome, UserParameters};
use crate::{FunctionHost, LocalAws, Service};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::task::JoinSet;

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Pipeline executions started at once.
    pub deployments: usize,
    /// Migration families (distinct state parameters).
    pub families: usize,
    /// How many families are on shared locks.
    pub shared_locks: usize,
    /// How many shared locks those families use.
    pub lock_groups: usize,
    /// Quotas: `None` for no throttling, else the AWS defaults times this.
    pub quota_scale: Option<f64>,
    /// The function binary.
    pub bootstrap: String,
    /// Wall-clock time of each task step (PENDING, RUNNING, then STOPPED).
    pub step_millis: u64,
    /// CodePipeline's pause before the job after a continuation.
    pub continuation_millis: u64,
    /// The actions' `waitSeconds`: how long an invocation may wait (for its
    /// task, and backing off while the lock is held or AWS throttles).
    pub wait_seconds: u64,
    /// Most concurrent function processes.
    pub max_instances: usize,
    /// Starts are spread evenly over this window.
    pub start_window: Duration,
    /// An action still running after this is reported as unfinished.
    pub bound: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            deployments: 20,
            families: 20,
            shared_locks: 10,
            lock_groups: 2,
            quota_scale: Some(1.0),
            bootstrap: "target/release/migrate-once".into(),
            step_millis: 500,
            continuation_millis: 500,
            wait_seconds: 0,
            max_instances: 50,
            start_window: Duration::from_secs(1),
            bound: Duration::from_secs(600),
        }
    }
}

/// The execution id of deployment `i`.
pub fn execution_id(i: usize) -> String {
    format!("f1ee7000-0000-4000-8000-{i:012}")
}

/// The state parameter of family `f`.
pub fn state_parameter(f: usize) -> String {
    format!("/migrate-once/fleet/family-{f:04}")
}

/// The lock of family `f`: shared for the first `shared` families.
pub fn lock_of(f: usize, shared: usize, groups: usize) -> String {
    if f < shared && groups > 0 {
        format!("/migrate-once/fleet/lock-{:03}", f % groups)
    } else {
        format!("{}/lock", state_parameter(f))
    }
}

/// The scenario: one account, one cluster, a task definition, and each
/// execution's own `UserParameters`.
pub fn scenario(config: &FleetConfig) -> Result<Scenario, String> {
    let families = config.families.max(1);
    let base = json!({
        "description": "fleet: many deployments at once under the account's quotas",
        "pipeline": {"name": "fleet-pipeline", "stage": "Migrate", "action": "RunMigration"},
        "function": {"maxInstances": config.max_instances.max(1), "timeoutSeconds": 60},
        "environment": {"MIGRATE_ONCE_CLUSTER": "app"},
        "clusters": ["app"],
        "taskDefinitions": [{"family": "app-migrate", "revision": 1,
            "containers": [{"name": "app", "logGroup": "/ecs/app-migrate", "logStreamPrefix": "migrate"}]}],
        "services": [{"name": "app-web", "cluster": "app", "launchType": "FARGATE",
            "subnets": ["subnet-0a1b2c3d"], "securityGroups": ["sg-0123456789abcdef0"],
            "assignPublicIp": false, "taskDefinition": "app-migrate"}],
        "timing": {"continuationDelayMillis": config.continuation_millis}
    });
    let mut s: Scenario = serde_json::from_value(base).map_err(|e| e.to_string())?;
    for i in 0..config.deployments {
        let f = i % families;
        let params = json!({
            "deployment": crate::scenario::EXECUTION_ID_VARIABLE,
            "taskDefinition": "app-migrate",
            "network": {"fromService": "app-web"},
            "waitSeconds": config.wait_seconds,
            "stateParameter": state_parameter(f),
            "lock": lock_of(f, config.shared_locks, config.lock_groups),
        });
        s.execution_user_parameters
            .insert(execution_id(i), UserParameters::Json(params));
    }
    s.tasks = (0..config.deployments * 2)
        .map(|_| TaskOutcome {
            timeline: vec!["PENDING".into(), "RUNNING".into()],
            step_millis: Some(config.step_millis),
            ..TaskOutcome::default()
        })
        .collect();
    if let Some(scale) = config.quota_scale {
        s.quotas = Quotas::aws_defaults().scaled(scale);
    }
    Ok(s)
}

/// One task as the fleet report sees it.
#[derive(Debug, Clone)]
pub struct FleetTask {
    /// The deployment (execution) that started it.
    pub deployment: String,
    /// Its lock.
    pub lock: String,
    /// Creation (since the control plane started).
    pub created: Duration,
    /// End of its active interval, if it ended.
    pub end: Option<Duration>,
}

/// Pairs of tasks on the same lock whose active intervals overlap, per
/// lock. Empty is good.
pub fn overlaps_per_lock(tasks: &[FleetTask]) -> BTreeMap<String, usize> {
    let mut by_lock: BTreeMap<&str, Vec<&FleetTask>> = BTreeMap::new();
    for t in tasks {
        by_lock.entry(&t.lock).or_default().push(t);
    }
    let mut out = BTreeMap::new();
    for (lock, ts) in by_lock {
        let mut n = 0;
        for (i, a) in ts.iter().enumerate() {
            for b in &ts[i + 1..] {
                let a_first = a.end.is_some_and(|e| e <= b.created);
                let b_first = b.end.is_some_and(|e| e <= a.created);
                if !a_first && !b_first {
                    n += 1;
                }
            }
        }
        if n > 0 {
            out.insert(lock.to_string(), n);
        }
    }
    out
}

/// Tasks beyond one per (deployment, attempt): `tasks` per deployment
/// against `attempts` (distinct RunTask `clientToken`s answered with
/// success) per deployment.
pub fn duplicate_tasks(
    tasks: &BTreeMap<String, usize>,
    attempts: &BTreeMap<String, usize>,
) -> usize {
    tasks
        .iter()
        .map(|(d, n)| n.saturating_sub(attempts.get(d).copied().unwrap_or(0).max(1)))
        .sum()
}

/// The `p`-th percentile (0–100, nearest rank) of `values`.
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    let mut v = values.to_vec();
    v.sort();
    let last = v.len().checked_sub(1)?;
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.saturating_sub(1).min(last)).copied()
}

/// The most events in any one whole second.
pub fn peak_per_second(times: &[Duration]) -> usize {
    let mut per: BTreeMap<u64, usize> = BTreeMap::new();
    for t in times {
        *per.entry(t.as_secs()).or_default() += 1;
    }
    per.values().copied().max().unwrap_or(0)
}

/// What one fleet run measured.
#[derive(Debug, Clone, Default)]
pub struct FleetReport {
    /// Deployments started.
    pub deployments: usize,
    /// Families.
    pub families: usize,
    /// Actions that succeeded.
    pub succeeded: usize,
    /// Actions that failed as superseded by a newer deployment of their
    /// family (expected when deployments > families).
    pub superseded: usize,
    /// Actions that failed otherwise, with their messages.
    pub failed: Vec<(String, String)>,
    /// Actions still running at the bound.
    pub unfinished: Vec<String>,
    /// Families whose state does not end `succeeded`.
    pub families_not_succeeded: usize,
    /// Tasks created.
    pub tasks: usize,
    /// Tasks beyond one per (deployment, attempt).
    pub duplicate_tasks: usize,
    /// Overlapping task pairs per lock.
    pub overlaps: BTreeMap<String, usize>,
    /// SSM reads (attempted, including throttled).
    pub ssm_reads: usize,
    /// SSM writes (attempted, including throttled).
    pub ssm_writes: usize,
    /// SSM reads not throttled.
    pub ssm_reads_admitted: usize,
    /// SSM writes not throttled.
    pub ssm_writes_admitted: usize,
    /// Throttled calls per operation.
    pub throttled: BTreeMap<String, usize>,
    /// Pipeline start → task created, per deployment that got a task.
    pub to_migration: Vec<Duration>,
    /// Task stopped → final report, per deployment.
    pub to_report: Vec<Duration>,
    /// Peak SSM reads in one second (attempted).
    pub peak_ssm_reads: usize,
    /// Peak SSM reads in one second (admitted: not throttled).
    pub peak_ssm_reads_ok: usize,
    /// Wall-clock time of the whole fleet.
    pub elapsed: Duration,
}

impl FleetReport {
    /// The invariants that failed, as sentences; empty is good.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.failed.is_empty() {
            v.push(format!("{} deployments failed", self.failed.len()));
        }
        if !self.unfinished.is_empty() {
            v.push(format!("{} deployments unfinished", self.unfinished.len()));
        }
        if self.duplicate_tasks > 0 {
            v.push(format!("{} duplicate tasks", self.duplicate_tasks));
        }
        let overlaps: usize = self.overlaps.values().sum();
        if overlaps > 0 {
            v.push(format!("{overlaps} overlapping task pairs on a lock"));
        }
        if self.families_not_succeeded > 0 {
            v.push(format!(
                "{} families whose state is not succeeded",
                self.families_not_succeeded
            ));
        }
        v
    }

    /// The table `make fleet` prints.
    pub fn table(&self, title: &str) -> String {
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        let per = |n: usize| n as f64 / self.deployments.max(1) as f64;
        let throttled: usize = self.throttled.values().sum();
        let throttled_by_op = self
            .throttled
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = [
            (
                "deployments (families)",
                format!("{} ({})", self.deployments, self.families),
            ),
            ("finished: succeeded", self.succeeded.to_string()),
            (
                "finished: superseded (older of a family)",
                self.superseded.to_string(),
            ),
            ("failed", self.failed.len().to_string()),
            ("unfinished at the bound", self.unfinished.len().to_string()),
            (
                "families not ending succeeded",
                self.families_not_succeeded.to_string(),
            ),
            ("tasks", self.tasks.to_string()),
            ("duplicate tasks", self.duplicate_tasks.to_string()),
            (
                "overlapping migrations per lock",
                self.overlaps.values().sum::<usize>().to_string(),
            ),
            (
                "SSM reads / deployment (attempted / admitted)",
                format!(
                    "{:.1} / {:.1}",
                    per(self.ssm_reads),
                    per(self.ssm_reads_admitted)
                ),
            ),
            (
                "SSM writes / deployment (attempted / admitted)",
                format!(
                    "{:.1} / {:.1}",
                    per(self.ssm_writes),
                    per(self.ssm_writes_admitted)
                ),
            ),
            (
                "throttled calls",
                if throttled == 0 {
                    "0".into()
                } else {
                    format!("{throttled} ({throttled_by_op})")
                },
            ),
            (
                "start → migration p50 / p99",
                format!(
                    "{} / {}",
                    ms(percentile(&self.to_migration, 50.0)),
                    ms(percentile(&self.to_migration, 99.0))
                ),
            ),
            (
                "task stop → report p50 / p99",
                format!(
                    "{} / {}",
                    ms(percentile(&self.to_report, 50.0)),
                    ms(percentile(&self.to_report, 99.0))
                ),
            ),
            (
                "peak SSM reads / s (attempted / admitted)",
                format!("{} / {}", self.peak_ssm_reads, self.peak_ssm_reads_ok),
            ),
            ("wall-clock", format!("{:.1} s", self.elapsed.as_secs_f64())),
        ];
        let mut out = format!("{title}\n");
        for (k, v) in rows {
            out.push_str(&format!("| {k:<46} | {v:>22} |\n"));
        }
        // Grouped by the failure message; one example of where it happened.
        let mut groups: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for (e, line) in &self.failed {
            let (why, context) = line.split_once(" | ").unwrap_or((line, ""));
            groups.entry(why).or_default().push((e, context));
        }
        for (why, cases) in groups {
            let (e, context) = cases[0];
            out.push_str(&format!(
                "  {} failed: {why}\n    e.g. {e}: {context}\n",
                cases.len()
            ));
        }
        for (lock, n) in &self.overlaps {
            out.push_str(&format!("  overlap on {lock}: {n} pairs\n"));
        }
        out
    }
}

fn is_read(op: &str) -> bool {
    matches!(op, "GetParameter" | "GetParameters" | "GetParametersByPath")
}

fn is_write(op: &str) -> bool {
    matches!(op, "PutParameter" | "DeleteParameter" | "DeleteParameters")
}

/// Where a failed action was: its failure (the SDK's dump cut off), how
/// many jobs it ran, whether it had a task, and the summaries before it.
fn failure_line(a: &ActionResult) -> String {
    let message = a.message.as_deref().unwrap_or("-");
    let short: String = message
        .split(" (ServiceError")
        .next()
        .unwrap_or(message)
        .chars()
        .take(200)
        .collect();
    let before: Vec<&str> = a
        .reports
        .iter()
        .filter_map(|r| r.summary.as_deref())
        .map(|s| s.split(" (").next().unwrap_or(s))
        .collect();
    format!(
        "{:?} {}: {short} | after {} jobs, {} task(s); earlier summaries: {}",
        a.status,
        a.failure_type.as_deref().unwrap_or("-"),
        a.jobs.len(),
        a.task_arns.len(),
        if before.is_empty() {
            "-".to_string()
        } else {
            before.join(" / ")
        }
    )
}

/// Runs the fleet and measures it.
pub async fn run(config: &FleetConfig) -> Result<FleetReport, String> {
    let scenario = scenario(config)?;
    let aws = LocalAws::start(scenario)
        .await
        .map_err(|e| format!("cannot start the control plane: {e}"))?;
    let host = FunctionHost::for_scenario(&aws, &config.bootstrap)
        .map_err(|e| format!("{}: {e}", config.bootstrap))?;
    // Real time on purpose: the report's `wall-clock` figure is how long
    // the machine took, whatever clock the control plane runs on.
    let wall = std::time::Instant::now();
    let n = config.deployments;
    let gap = config
        .start_window
        .checked_div(n.max(1) as u32)
        .unwrap_or_default();
    let mut set = JoinSet::new();
    let mut starts: BTreeMap<String, Duration> = BTreeMap::new();
    for i in 0..n {
        let e = execution_id(i);
        starts.insert(e.clone(), aws.world.recorder.elapsed());
        let driver = PipelineDriver::new(&aws, &host);
        let bound = config.bound;
        set.spawn(async move {
            let r = tokio::time::timeout(bound, driver.run(&e)).await;
            (e, r)
        });
        if i + 1 < n {
            tokio::time::sleep(gap).await;
        }
    }
    let mut results: Vec<ActionResult> = Vec::new();
    let mut unfinished = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((_, Ok(r))) => results.push(r),
            Ok((e, Err(_))) => unfinished.push(e),
            Err(e) => return Err(format!("driver panicked: {e}")),
        }
    }
    let elapsed = wall.elapsed();
    let calls = aws.calls();
    let timeline = aws.task_timeline();
    Ok(measure(
        config, &results, unfinished, &starts, &calls, &timeline, &aws, elapsed,
    ))
}

#[allow(clippy::too_many_arguments)]
fn measure(
    config: &FleetConfig,
    results: &[ActionResult],
    unfinished: Vec<String>,
    starts: &BTreeMap<String, Duration>,
    calls: &[CallRecord],
    timeline: &[crate::TaskTimeline],
    aws: &LocalAws,
    elapsed: Duration,
) -> FleetReport {
    let families = config.families.max(1);
    let family_of = |e: &str| -> Option<usize> {
        let i: usize = e.rsplit('-').next()?.parse().ok()?;
        Some(i % families)
    };
    let mut r = FleetReport {
        deployments: config.deployments,
        families: config.families,
        unfinished,
        elapsed,
        ..FleetReport::default()
    };
    let mut job_exec: BTreeMap<&str, &str> = BTreeMap::new();
    for a in results {
        for j in &a.jobs {
            job_exec.insert(j, &a.execution_id);
        }
        match a.status {
            ActionStatus::Succeeded => r.succeeded += 1,
            _ if a
                .message
                .as_deref()
                .is_some_and(|m| m.contains("superseded")) =>
            {
                r.superseded += 1
            }
            _ => r.failed.push((a.execution_id.clone(), failure_line(a))),
        }
    }
    // Tasks, per lock and per deployment.
    let mut fleet_tasks = Vec::new();
    let mut tasks_per: BTreeMap<String, usize> = BTreeMap::new();
    let mut first_task: BTreeMap<String, Duration> = BTreeMap::new();
    let mut last_stop: BTreeMap<String, Duration> = BTreeMap::new();
    for t in timeline {
        let Some(d) = t.deployment.clone() else {
            continue;
        };
        let lock = family_of(&d)
            .map(|f| lock_of(f, config.shared_locks, config.lock_groups))
            .unwrap_or_default();
        *tasks_per.entry(d.clone()).or_default() += 1;
        let first = first_task.entry(d.clone()).or_insert(t.created);
        *first = (*first).min(t.created);
        if let Some(end) = t.end() {
            let last = last_stop.entry(d.clone()).or_insert(end);
            *last = (*last).max(end);
        }
        fleet_tasks.push(FleetTask {
            deployment: d,
            lock,
            created: t.created,
            end: t.end(),
        });
    }
    r.tasks = fleet_tasks.len();
    r.overlaps = overlaps_per_lock(&fleet_tasks);
    // Attempts: distinct clientTokens of successful RunTask calls.
    let mut tokens: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut reads = Vec::new();
    let mut reads_ok = Vec::new();
    for c in calls {
        if c.service == Service::Ssm && is_read(&c.operation) {
            r.ssm_reads += 1;
            reads.push(c.at);
            if c.error.as_deref() != Some("ThrottlingException") {
                r.ssm_reads_admitted += 1;
                reads_ok.push(c.at);
            }
        }
        if c.service == Service::Ssm && is_write(&c.operation) {
            r.ssm_writes += 1;
            if c.error.as_deref() != Some("ThrottlingException") {
                r.ssm_writes_admitted += 1;
            }
        }
        if c.error.as_deref() == Some("ThrottlingException") && c.fault.is_none() {
            *r.throttled.entry(c.operation.clone()).or_default() += 1;
        }
        if c.operation == "RunTask" && c.ok() {
            let exec = c.job_id.as_deref().and_then(|j| job_exec.get(j).copied());
            let token = c.request.get("clientToken").and_then(Value::as_str);
            if let (Some(e), Some(t)) = (exec, token) {
                tokens.entry(e.to_string()).or_default().insert(t.into());
            }
        }
    }
    let attempts: BTreeMap<String, usize> = tokens.into_iter().map(|(d, t)| (d, t.len())).collect();
    r.duplicate_tasks = duplicate_tasks(&tasks_per, &attempts);
    r.peak_ssm_reads = peak_per_second(&reads);
    r.peak_ssm_reads_ok = peak_per_second(&reads_ok);
    for a in results {
        let e = &a.execution_id;
        if let (Some(start), Some(task)) = (starts.get(e), first_task.get(e)) {
            r.to_migration.push(task.saturating_sub(*start));
        }
        let final_report = a.reports.iter().rev().find(|x| x.is_final());
        if let (Some(stop), Some(rep)) = (last_stop.get(e), final_report) {
            r.to_report.push(rep.at.saturating_sub(*stop));
        }
    }
    // Every family ends with its state `succeeded`.
    let used = families.min(config.deployments);
    r.families_not_succeeded = (0..used)
        .filter(|f| {
            let status = aws
                .parameter(&state_parameter(*f))
                .and_then(|p| serde_json::from_str::<Value>(&p.value).ok())
                .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string));
            status.as_deref() != Some("succeeded")
        })
        .count();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(d: &str, lock: &str, from: u64, to: Option<u64>) -> FleetTask {
        FleetTask {
            deployment: d.into(),
            lock: lock.into(),
            created: Duration::from_millis(from),
            end: to.map(Duration::from_millis),
        }
    }

    #[test]
    fn overlaps_count_only_tasks_on_the_same_lock() {
        let tasks = [
            task("a", "L1", 0, Some(100)),
            task("b", "L1", 100, Some(200)),
            task("c", "L2", 50, Some(150)),
            task("d", "L2", 140, None),
            task("e", "L3", 0, Some(1000)),
        ];
        let got = overlaps_per_lock(&tasks);
        assert_eq!(got, BTreeMap::from([("L2".to_string(), 1)]));
    }

    #[test]
    fn duplicates_are_tasks_beyond_one_per_attempt() {
        let tasks = BTreeMap::from([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
        let attempts = BTreeMap::from([("b".into(), 2), ("c".into(), 1)]);
        assert_eq!(duplicate_tasks(&tasks, &attempts), 2);
    }

    #[test]
    fn percentiles_and_peaks() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&[], 50.0), None);
        let t = [0, 100, 900, 1000, 1500, 2100].map(Duration::from_millis);
        assert_eq!(peak_per_second(&t), 3);
    }

    #[test]
    fn families_and_locks() {
        assert_eq!(lock_of(3, 50, 10), "/migrate-once/fleet/lock-003");
        assert_eq!(lock_of(13, 50, 10), "/migrate-once/fleet/lock-003");
        assert_eq!(lock_of(60, 50, 10), "/migrate-once/fleet/family-0060/lock");
        let s = scenario(&FleetConfig {
            deployments: 4,
            families: 3,
            ..FleetConfig::default()
        })
        .expect("scenario");
        let up = s.execution_user_parameters[&execution_id(3)].resolved(&execution_id(3));
        let v: Value = serde_json::from_str(&up).expect("json");
        assert_eq!(v["stateParameter"], state_parameter(0));
        assert_eq!(v["deployment"], execution_id(3));
        assert!(s.quotas.ssm_read.is_some());
    }
}
