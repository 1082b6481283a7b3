//! The guarantee, as invariants over what happened in one schedule.
//!
//! Online (while it runs, [`Online`] sees every request the world applies):
//! - every reset parameter is `"0"` when its attempt's RunTask is sent.
//!
//! At rest (after everything has ended and 7 h have passed, [`at_rest`]):
//! - never two migrations alive at once on a lock (a stopping task is alive);
//! - no task for a deployment after one of its tasks exited 0 (`rerun: once`);
//! - no migration of a deployment after a newer one's started on its state
//!   parameter;
//! - every job reported by a delivery that returned Ok in time; every
//!   action ended within CodePipeline's limits;
//! - success only for a deployment whose migration exited 0;
//! - no secret in any report, token or parameter;
//! - at most 25 parameters at rest under one state parameter;
//! - the visible record is not left `starting`/`running`, and counts the
//!   automatic reruns that happened.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use local_aws::LocalAws;
use local_aws::inproc::{WireRequest, WireResponse};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::draw::{CONTAINER, Plan};
use crate::lambda::{Delivered, Ended};
use crate::pipeline::{End, Run, short};
use crate::wire::{Caller, Observer};

/// Checks made while the schedule runs; also passes accepted stage retries
/// on to the pipelines.
pub struct Online {
    families: Vec<(String, Vec<String>)>,
    tokens: Mutex<BTreeSet<String>>,
    violations: Mutex<Vec<String>>,
    /// Automatic reruns (RetryStageExecution by the function) per execution.
    pub reruns: Mutex<BTreeMap<String, u32>>,
    /// The order deployments started in on each state parameter: the seq
    /// of each one's first attempt record.
    pub first_claims: Mutex<BTreeMap<(String, String), u64>>,
    /// Every UpdateService the world applied: service, the calling job,
    /// when (since the schedule began).
    pub updates: Mutex<Vec<(String, String, std::time::Duration)>>,
    origin: tokio::time::Instant,
    retries: UnboundedSender<String>,
    /// Who waits for which job's report.
    pub reported: Arc<Reported>,
}

/// Wakes the run waiting for a job once a report for it was applied — one
/// `Notify` per job, so that wake-ups come in a seeded order (a tokio
/// `watch` wakes its waiters in an order of its own random choosing).
#[derive(Default)]
pub struct Reported(Mutex<BTreeMap<String, Arc<tokio::sync::Notify>>>);

impl Reported {
    /// The `Notify` for job `id`.
    pub fn waiter(&self, id: &str) -> Arc<tokio::sync::Notify> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    fn reported(&self, id: &str) {
        let waiter = self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        if let Some(waiter) = waiter {
            waiter.notify_one();
        }
    }
}

impl Online {
    /// The online checks of `plan`; accepted stage retries go to `retries`.
    pub fn new(plan: &Plan, retries: UnboundedSender<String>) -> Online {
        Online {
            reported: Arc::default(),
            families: plan
                .families
                .iter()
                .map(|f| (f.family.clone(), f.resets.clone()))
                .collect(),
            tokens: Mutex::default(),
            violations: Mutex::default(),
            reruns: Mutex::default(),
            first_claims: Mutex::default(),
            updates: Mutex::default(),
            origin: tokio::time::Instant::now(),
            retries,
        }
    }

    /// What was found while running.
    pub fn violations(&self) -> Vec<String> {
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn body(request: &WireRequest) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

/// `db-migrate-a` from `db-migrate-a`, `db-migrate-a:3` or a revision ARN.
fn family_of(reference: &str) -> &str {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    name.split(':').next().unwrap_or(name)
}

impl Observer for Online {
    fn before(&self, aws: &LocalAws, _caller: Option<&Caller>, request: &WireRequest) {
        if request.operation() != "RunTask" {
            return;
        }
        let input = body(request);
        let token = input["clientToken"].as_str().unwrap_or_default().to_owned();
        if !self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone())
        {
            return;
        }
        let family = family_of(input["taskDefinition"].as_str().unwrap_or_default());
        let Some((_, resets)) = self.families.iter().find(|(f, _)| f == family) else {
            return;
        };
        for name in resets {
            let value = aws.parameter(name).map(|p| p.value);
            if value.as_deref() != Some("0") {
                self.violations
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!(
                        "reset not done: RunTask {token} for {family} sent while {name} is {value:?}"
                    ));
            }
        }
    }

    fn after(
        &self,
        _aws: &LocalAws,
        caller: Option<&Caller>,
        request: &WireRequest,
        response: &WireResponse,
    ) {
        if matches!(
            request.operation(),
            "PutJobSuccessResult" | "PutJobFailureResult"
        ) && response.status == 200
        {
            self.reported
                .reported(body(request)["jobId"].as_str().unwrap_or_default());
        }
        if request.operation() == "UpdateService" && response.status == 200 {
            let service = body(request)["service"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let job = caller.map_or_else(String::new, |c| c.label.clone());
            self.updates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((service, job, self.origin.elapsed()));
        }
        if request.operation() == "PutParameter" && response.status == 200 {
            let input = body(request);
            let name = input["Name"].as_str().unwrap_or_default();
            if input["Overwrite"] != true
                && let Some((state, seq)) = name.rsplit_once("/a/")
                && let Ok(seq) = seq.parse::<u64>()
            {
                let record: Value =
                    serde_json::from_str(input["Value"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                let deployment = record["deployment"].as_str().unwrap_or_default().to_owned();
                self.first_claims
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry((state.to_owned(), deployment))
                    .or_insert(seq);
            }
        }
        if request.operation() == "RetryStageExecution" && response.status == 200 {
            let execution = body(request)["pipelineExecutionId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            // An automatic rerun: the function acting on an action-failed
            // event (an operator's rerun request is not counted, SPEC §6).
            if caller.is_some_and(|c| c.label.starts_with(crate::pipeline::ACTION_FAILED)) {
                *self
                    .reruns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(execution.clone())
                    .or_default() += 1;
            }
            let _ = self.retries.send(execution);
        }
    }
}

/// A task as the invariants see it.
struct Seen {
    arn: String,
    family: String,
    deployment: String,
    created: std::time::Duration,
    end: Option<std::time::Duration>,
    exited_zero: bool,
    /// It was told to stop (a timeout, a pipeline stop) before it ended.
    stop_requested: bool,
}

fn tasks(aws: &LocalAws) -> Vec<Seen> {
    let timelines: BTreeMap<String, local_aws::TaskTimeline> = aws
        .task_timeline()
        .into_iter()
        .map(|t| (t.arn.clone(), t))
        .collect();
    let mut seen: Vec<Seen> = aws
        .tasks()
        .into_iter()
        .filter_map(|t| {
            let timeline = timelines.get(&t.arn)?;
            let deployment = t
                .params
                .tags
                .iter()
                .find(|tag| tag["key"] == "migrate-once:deployment")
                .and_then(|tag| tag["value"].as_str())
                .unwrap_or_default()
                .to_owned();
            let exited_zero = t.stopped.as_ref().is_some_and(|(stopped, _, _)| {
                stopped.exit_codes.get(CONTAINER).copied().flatten() == Some(0)
            });
            Some(Seen {
                stop_requested: t.stop_requested.is_some(),
                arn: t.arn.clone(),
                family: t.definition.family.clone(),
                deployment,
                created: timeline.created,
                end: timeline.end(),
                exited_zero,
            })
        })
        .collect();
    seen.sort_by_key(|t| t.created);
    seen
}

/// Everything the schedule did, for the checks at rest.
pub struct Facts<'a> {
    pub plan: &'a Plan,
    pub aws: &'a LocalAws,
    pub runs: &'a [Run],
    pub deliveries: &'a [Delivered],
    pub reruns: &'a BTreeMap<String, u32>,
    pub first_claims: &'a BTreeMap<(String, String), u64>,
    pub updates: &'a [(String, String, std::time::Duration)],
}

/// The invariants at rest; each violation as a sentence.
pub fn at_rest(facts: &Facts<'_>) -> Vec<String> {
    let mut found = Vec::new();
    let plan = facts.plan;
    let tasks = tasks(facts.aws);
    let family_of = |name: &str| plan.families.iter().find(|f| f.family == name);

    // Never two migrations alive at once on a lock.
    for (i, a) in tasks.iter().enumerate() {
        for b in &tasks[i + 1..] {
            let same_lock =
                family_of(&a.family).map(|f| &f.lock) == family_of(&b.family).map(|f| &f.lock);
            let apart = a.end.is_some_and(|end| end <= b.created);
            if same_lock && !apart {
                let end = a
                    .end
                    .map_or("-".to_owned(), |e| format!("{:.1}", e.as_secs_f64()));
                found.push(format!(
                    "overlap: {} ({} {}, alive {:.1}–{end} s) still alive when {} ({} {}) was created at {:.1} s on the same lock",
                    short_task(&a.arn),
                    a.family,
                    short(&a.deployment),
                    a.created.as_secs_f64(),
                    short_task(&b.arn),
                    b.family,
                    short(&b.deployment),
                    b.created.as_secs_f64(),
                ));
            }
        }
    }

    for family in &plan.families {
        // "Newer" is the order deployments claimed their first attempt on
        // the state parameter: a first job that crashed and came back a
        // minute later starts after a deployment that began meanwhile.
        let rank = |d: &str| {
            facts
                .first_claims
                .get(&(family.state.clone(), d.to_owned()))
                .copied()
        };
        let mine: Vec<&Seen> = tasks.iter().filter(|t| t.family == family.family).collect();
        for (i, t) in mine.iter().enumerate() {
            let earlier = &mine[..i];
            // Once per deployment. A migration told to stop (timed out)
            // that finished with exit 0 during its stopTimeout is its own
            // kind: the record says failed from the moment of StopTask
            // (SPEC §4), so a stage retry runs it again.
            if !family.rerun_always
                && let Some(done) = earlier
                    .iter()
                    .find(|e| e.deployment == t.deployment && e.exited_zero)
            {
                let kind = if done.stop_requested {
                    "ran twice after exiting 0 while stopping"
                } else {
                    "ran twice"
                };
                found.push(format!(
                    "{kind}: {} for deployment {} after {} had exited 0",
                    short_task(&t.arn),
                    short(&t.deployment),
                    short_task(&done.arn)
                ));
            }
            // Never an older deployment after a newer one started.
            if let Some(newer) = earlier
                .iter()
                .find(|e| rank(&e.deployment) > rank(&t.deployment))
            {
                found.push(format!(
                    "out of order: {} migrates deployment {} after {} of the newer deployment {} started",
                    short_task(&t.arn), short(&t.deployment), short_task(&newer.arn), short(&newer.deployment)
                ));
            }
        }
    }

    // Every job reported; every action ended in time; success only for a
    // migration that exited 0.
    let reports: BTreeMap<String, local_aws::JobReport> = facts
        .aws
        .reports()
        .into_iter()
        .map(|r| (r.job_id.clone(), r))
        .collect();
    for run in facts.runs {
        let e = &plan.executions[run.execution];
        let family = &plan.families[e.family];
        if run.end == End::Unended {
            found.push(format!(
                "unended: run {} of {} ran past 24 h",
                run.number,
                short(&e.id)
            ));
        }
        for (job, created) in run.jobs.iter().zip(&run.created) {
            if reports.contains_key(job) || run.end == End::Abandoned {
                continue;
            }
            let ended: Vec<&Ended> = facts
                .deliveries
                .iter()
                .filter(|d| d.label == *job)
                .map(|d| &d.ended)
                .collect();
            // A delivery that returned Ok in time must have reported (an
            // Err is the function asking Lambda to deliver again: when all
            // of Lambda's tries fail, the job is lost to Lambda, not to the
            // function; a copy after the job timed out cannot report it).
            let in_time = facts.deliveries.iter().any(|d| {
                d.label == *job
                    && d.at < *created + crate::pipeline::JOB_TIMEOUT
                    && d.ended == Ended::Ok
            });
            if in_time {
                found.push(format!(
                    "unreported: job {} of {} was never reported (its deliveries: {ended:?})",
                    short(job),
                    short(&e.id)
                ));
            }
        }
        if run.end == End::Succeeded
            && !tasks
                .iter()
                .any(|t| t.family == family.family && t.deployment == e.id && t.exited_zero)
        {
            found.push(format!(
                "untrue success: run {} of {} succeeded ({:?}) but no migration of it exited 0",
                run.number,
                short(&e.id),
                run.last.as_ref().and_then(|r| r.summary.clone())
            ));
        }
    }

    // One UpdateService per service per action run, only after its
    // migration exited 0, never after the run ended.
    let mut per_run: BTreeMap<(String, usize, u32), usize> = BTreeMap::new();
    for (service, job, at) in facts.updates {
        let Some(run) = facts.runs.iter().find(|r| r.jobs.contains(job)) else {
            found.push(format!(
                "stray update: {service} updated by {job:?}, no job of any run"
            ));
            continue;
        };
        let e = &plan.executions[run.execution];
        *per_run
            .entry((service.clone(), run.execution, run.number))
            .or_default() += 1;
        let migrated = tasks
            .iter()
            .any(|t| t.deployment == e.id && t.exited_zero && t.end.is_some_and(|end| end <= *at));
        if !migrated {
            found.push(format!(
                "roll before migration: {service} updated at {:.1} s for {} whose migration had not exited 0",
                at.as_secs_f64(),
                short(&e.id)
            ));
        }
        let last = run.created.last().copied().unwrap_or_default();
        if run.end != End::Unended && *at > last + crate::pipeline::JOB_TIMEOUT {
            found.push(format!(
                "late update: {service} updated at {:.1} s by a copy of a job of run {} of {}, which had ended",
                at.as_secs_f64(),
                run.number,
                short(&e.id)
            ));
        }
    }
    for ((service, execution, number), n) in per_run {
        if n > 1 {
            found.push(format!(
                "updated twice: {service} got {n} UpdateService in run {number} of {}",
                short(&plan.executions[execution].id)
            ));
        }
    }

    // No secret anywhere the pipeline or SSM shows.
    let secrets: Vec<&str> = plan
        .families
        .iter()
        .filter_map(|f| f.secret.as_deref())
        .chain([
            local_aws::FAKE_SECRET_ACCESS_KEY,
            local_aws::FAKE_SESSION_TOKEN,
            local_aws::pipeline_driver::ARTIFACT_SECRET_ACCESS_KEY,
            local_aws::pipeline_driver::ARTIFACT_SESSION_TOKEN,
        ])
        .collect();
    for r in reports.values() {
        let shown = [
            r.summary.as_deref(),
            r.failure_message.as_deref(),
            r.continuation_token.as_deref(),
        ];
        let outputs = r.output_variables.values().map(|v| Some(v.as_str()));
        for text in shown.into_iter().chain(outputs).flatten() {
            if let Some(s) = secrets.iter().find(|s| text.contains(**s)) {
                found.push(format!(
                    "secret: the report of job {} shows {s:?}",
                    short(&r.job_id)
                ));
            }
        }
    }
    let parameters = facts.aws.parameters();
    for p in &parameters {
        if let Some(s) = secrets.iter().find(|s| p.value.contains(**s)) {
            found.push(format!("secret: parameter {} holds {s:?}", p.name));
        }
    }

    // Bounded at rest; the visible record tells the truth.
    for family in &plan.families {
        let under = format!("{}/", family.state);
        let count = parameters
            .iter()
            .filter(|p| p.name.starts_with(&under))
            .count();
        if count > 25 {
            found.push(format!(
                "unbounded: {count} parameters at rest under {}",
                family.state
            ));
        }
        let Some(summary) = parameters.iter().find(|p| p.name == family.state) else {
            continue;
        };
        let record: Value = serde_json::from_str(&summary.value).unwrap_or(Value::Null);
        let status = record["status"].as_str().unwrap_or_default();
        let deployment = record["deployment"].as_str().unwrap_or_default();
        // Nobody can record the end of a migration left unwatched until the
        // next deployment or a stage retry: a run abandoned by a pipeline
        // stop that does not stop the task (or that no rule tells the
        // function of: only family 0's pipeline sends EventBridge events),
        // or a run whose job died in every delivery (it timed out).
        let ended_as = |end: End| {
            facts
                .runs
                .iter()
                .any(|r| r.end == end && plan.executions[r.execution].id == deployment)
        };
        let unwatched = ((!family.stop_on_pipeline_stop || !family.modelled)
            && ended_as(End::Abandoned))
            || ended_as(End::TimedOut);
        if (status == "starting" || status == "running") && !unwatched {
            found.push(format!(
                "stale record: {} says {status} at rest ({})",
                family.state, summary.value
            ));
        }
        let reruns = facts.reruns.get(deployment).copied().unwrap_or(0);
        let shown = record["reruns"].as_u64().unwrap_or(0);
        if u64::from(reruns) > shown {
            found.push(format!(
                "stale record: {} shows reruns {shown} after {reruns} automatic reruns of {}",
                family.state,
                short(deployment)
            ));
        }
    }
    found
}

fn short_task(arn: &str) -> &str {
    short(arn.rsplit('/').next().unwrap_or(arn))
}
