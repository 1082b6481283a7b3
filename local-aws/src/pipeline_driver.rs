//! The pipeline driver: runs one execution of the Invoke action end to end,
//! the way CodePipeline does.
//!
//! It creates a job, invokes the function asynchronously with the job
//! event, and waits for the job's report. A success with a continuation
//! token means "still running": after the continuation delay it creates a
//! NEW job (new id) carrying the token. The action ends with a success
//! without token, a failure, a job nobody reported once its invocation ran
//! out of deliveries ("no report"), or a job not reported within the job
//! timeout. Like CodePipeline, it moves on as soon as a report arrives, so a
//! late redelivery or duplicate of an old job runs concurrently with the
//! next job — the races the function must survive. Several drivers may run
//! at once (one per pipeline execution).

use crate::codepipeline::{Job, JobReport};
use crate::function_host::{FunctionHost, HostInner, InvocationOutcome};
use crate::server::LocalAws;
use crate::wire::{ACCOUNT, epoch};
use crate::world::{World, lock};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How an action execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStatus {
    /// A job was reported successful without a continuation token.
    Succeeded,
    /// A job was reported with `PutJobFailureResult`.
    Failed,
    /// A job's invocation finished all its deliveries without reporting.
    NoReport,
    /// A job was not reported within the job timeout.
    TimedOut,
}

/// What the pipeline saw of one action execution.
#[derive(Debug, Clone)]
pub struct ActionResult {
    /// The pipeline execution.
    pub execution_id: String,
    /// How it ended.
    pub status: ActionStatus,
    /// Failure type of the final report (`JobFailed`, …), if it failed.
    pub failure_type: Option<String>,
    /// The failure message, or why the action ended without a report.
    pub message: Option<String>,
    /// The final report's summary.
    pub summary: Option<String>,
    /// Output variables of the final success.
    pub output_variables: BTreeMap<String, String>,
    /// Every accepted report of the action's jobs, in order.
    pub reports: Vec<JobReport>,
    /// The action's job ids, in order.
    pub jobs: Vec<String>,
    /// Tasks created by invocations of this action's jobs.
    pub task_arns: Vec<String>,
    /// Every invocation (including duplicates) and its deliveries.
    pub invocations: Vec<InvocationOutcome>,
    /// Wall-clock duration of the action.
    pub elapsed: Duration,
}

impl ActionResult {
    /// How many tasks this action's invocations started.
    pub fn tasks_started(&self) -> usize {
        self.task_arns.len()
    }

    /// Whether the action succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == ActionStatus::Succeeded
    }
}

/// What an observer (the console printer) is told while an action runs.
#[derive(Debug, Clone)]
pub enum ActionEvent {
    /// The action started.
    Started {
        /// Pipeline name.
        pipeline: String,
        /// Stage name.
        stage: String,
        /// Action name.
        action: String,
        /// Pipeline execution id.
        execution_id: String,
    },
    /// A job was created and its event sent to the function.
    JobCreated {
        /// The job.
        job_id: String,
        /// 1-based job number within the action.
        number: u32,
    },
    /// A job was reported.
    Reported(JobReport),
    /// The action ended.
    Finished(Box<ActionResult>),
}

/// A callback for [`ActionEvent`]s.
pub type Observer = Arc<dyn Fn(&ActionEvent) + Send + Sync>;

/// Access key id in the job event's `artifactCredentials` (fake).
pub const ARTIFACT_ACCESS_KEY_ID: &str = "ASIALOCALARTIFACTKEY";
/// Secret in the job event's `artifactCredentials` — must never be logged.
pub const ARTIFACT_SECRET_ACCESS_KEY: &str = "artifact-secret-DO-NOT-LOG-7f3a9c";
/// Session token in the job event's `artifactCredentials`.
pub const ARTIFACT_SESSION_TOKEN: &str = "artifact-session-token-DO-NOT-LOG-1b2e";

/// Drives action executions of the scenario's pipeline against a function
/// host.
pub struct PipelineDriver {
    world: Arc<World>,
    host: Arc<HostInner>,
    observer: Option<Observer>,
}

impl PipelineDriver {
    /// A driver for the control plane's pipeline and this function.
    pub fn new(aws: &LocalAws, host: &FunctionHost) -> Self {
        PipelineDriver {
            world: aws.world.clone(),
            host: host.inner(),
            observer: None,
        }
    }

    /// Adds an observer (e.g. [`crate::console::Console::observer`]).
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    fn emit(&self, event: ActionEvent) {
        if let Some(o) = &self.observer {
            o(&event);
        }
    }

    /// The job event Lambda receives, as CodePipeline sends it.
    pub fn job_event(&self, job: &Job) -> Value {
        job_event(&self.world, job)
    }

    /// Runs the scenario's default execution (its `executionId`, or a new
    /// one).
    pub async fn run_default(&self) -> ActionResult {
        let id = self.world.scenario.execution_id();
        self.run(&id).await
    }

    /// Runs one action execution of pipeline execution `execution_id` to
    /// its end.
    pub async fn run(&self, execution_id: &str) -> ActionResult {
        let started = crate::clock::instant();
        let p = &self.world.scenario.pipeline;
        self.emit(ActionEvent::Started {
            pipeline: p.name.clone(),
            stage: p.stage.clone(),
            action: p.action.clone(),
            execution_id: execution_id.to_string(),
        });
        lock(&self.world.pipeline).start_stage(execution_id);
        let action_execution_id = crate::ids::uuid();
        let continuation_delay =
            Duration::from_millis(self.world.scenario.timing.continuation_delay_millis);

        let mut token: Option<String> = None;
        let mut jobs = Vec::new();
        let mut reports = Vec::new();
        let mut pending: Vec<JoinHandle<Vec<InvocationOutcome>>> = Vec::new();
        let mut finished: Vec<InvocationOutcome> = Vec::new();
        let mut number = 0u32;
        let (status, failure_type, message) = loop {
            number += 1;
            let job = lock(&self.world.pipeline).create_job(
                execution_id,
                &action_execution_id,
                number,
                token.clone(),
            );
            jobs.push(job.id.clone());
            self.emit(ActionEvent::JobCreated {
                job_id: job.id.clone(),
                number,
            });
            let mut deliveries = Some(self.deliver(&job));
            let (report, outcomes) = self.await_report(&job, &mut deliveries).await;
            pending.extend(deliveries);
            finished.extend(outcomes.unwrap_or_default());
            match report {
                Ok(r) => {
                    reports.push(r.clone());
                    self.emit(ActionEvent::Reported(r.clone()));
                    if !r.success {
                        break (ActionStatus::Failed, r.failure_type, r.failure_message);
                    }
                    match r.continuation_token {
                        None => break (ActionStatus::Succeeded, None, None),
                        Some(t) => {
                            token = Some(t);
                            tokio::time::sleep(continuation_delay).await;
                        }
                    }
                }
                Err((status, why)) => break (status, None, Some(why)),
            }
        };

        let mut invocations = finished;
        for handle in pending {
            if let Ok(outcomes) = handle.await {
                invocations.extend(outcomes);
            }
        }
        lock(&self.world.pipeline).finish_stage(execution_id, status == ActionStatus::Succeeded);
        let job_set: BTreeSet<&String> = jobs.iter().collect();
        let task_arns = lock(&self.world.ecs)
            .tasks()
            .iter()
            .filter(|t| t.job_id.as_ref().is_some_and(|j| job_set.contains(j)))
            .map(|t| t.arn.clone())
            .collect();
        let last = reports.last();
        let result = ActionResult {
            execution_id: execution_id.to_string(),
            status,
            failure_type,
            message,
            summary: last.and_then(|r| r.summary.clone()),
            output_variables: last
                .filter(|r| r.success)
                .map(|r| r.output_variables.clone())
                .unwrap_or_default(),
            reports,
            jobs,
            task_arns,
            invocations,
            elapsed: crate::clock::instant().saturating_duration_since(started),
        };
        self.emit(ActionEvent::Finished(Box::new(result.clone())));
        result
    }

    /// Invokes the function with the job's event (twice if the scenario
    /// says Lambda delivers this job twice). The handle resolves when every
    /// copy has finished all its deliveries.
    fn deliver(&self, job: &Job) -> JoinHandle<Vec<InvocationOutcome>> {
        let event = self.job_event(job);
        let duplicate = self
            .world
            .scenario
            .duplicate_deliveries
            .iter()
            .find(|d| d.job == job.number)
            .cloned();
        let host = self.host.clone();
        let first = host.invoke_async(&event);
        let concurrent_copy = duplicate
            .as_ref()
            .filter(|d| d.concurrent)
            .map(|_| host.invoke_async(&event));
        let later_copy = duplicate.is_some_and(|d| !d.concurrent);
        tokio::spawn(async move {
            let mut outcomes = vec![first.wait().await];
            if let Some(copy) = concurrent_copy {
                outcomes.push(copy.wait().await);
            }
            if later_copy {
                outcomes.push(host.invoke_async(&event).wait().await);
            }
            outcomes
        })
    }

    /// Waits until the job is reported, its deliveries are exhausted, or
    /// the job timeout passes. When the deliveries finished, the handle is
    /// consumed and their outcomes returned.
    async fn await_report(
        &self,
        job: &Job,
        deliveries: &mut Option<JoinHandle<Vec<InvocationOutcome>>>,
    ) -> (
        Result<JobReport, (ActionStatus, String)>,
        Option<Vec<InvocationOutcome>>,
    ) {
        let mut changed = self.world.pipeline_changed.subscribe();
        let timeout = lock(&self.world.pipeline).job_timeout();
        let deadline = job.created + timeout;
        let report = || {
            lock(&self.world.pipeline)
                .job(&job.id)
                .and_then(|j| j.report.clone())
        };
        loop {
            if let Some(r) = report() {
                return (Ok(r), None);
            }
            let Some(handle) = deliveries.as_mut() else {
                return (
                    Err((
                        ActionStatus::NoReport,
                        format!("job {} was never reported", job.id),
                    )),
                    None,
                );
            };
            // `biased`: when several are ready at one (virtual) instant, a
            // report wins over the deliveries ending, and both over the
            // deadline, on every run (an unbiased select picks at random).
            tokio::select! {
                biased;
                _ = changed.changed() => {}
                joined = handle => {
                    *deliveries = None;
                    let outcomes = joined.unwrap_or_default();
                    if let Some(r) = report() {
                        return (Ok(r), Some(outcomes));
                    }
                    let last = outcomes
                        .first()
                        .and_then(|o| o.attempts.last())
                        .map(|a| a.result.to_string())
                        .unwrap_or_else(|| "was never delivered".into());
                    let count = outcomes.first().map_or(0, |o| o.attempts.len());
                    return (
                        Err((
                            ActionStatus::NoReport,
                            format!(
                                "no report: the function never reported job {} ({} deliveries; the last {})",
                                job.id, count, last
                            ),
                        )),
                        Some(outcomes),
                    );
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return (
                        Err((
                            ActionStatus::TimedOut,
                            format!(
                                "job {} was not reported within {} s; the action timed out",
                                job.id,
                                timeout.as_secs()
                            ),
                        )),
                        None,
                    );
                }
            }
        }
    }
}

/// The job event Lambda receives for `job`, as CodePipeline sends it.
pub(crate) fn job_event(world: &World, job: &Job) -> Value {
    let expiration = epoch(crate::clock::now() + Duration::from_secs(3600));
    let mut data = json!({
        "actionConfiguration": {"configuration": {
            "FunctionName": world.scenario.function.name,
            "UserParameters": job.user_parameters,
        }},
        "inputArtifacts": crate::s3::input_artifacts(&world.scenario),
        "outputArtifacts": [],
        "artifactCredentials": {
            "accessKeyId": ARTIFACT_ACCESS_KEY_ID,
            "secretAccessKey": ARTIFACT_SECRET_ACCESS_KEY,
            "sessionToken": ARTIFACT_SESSION_TOKEN,
            "expirationTime": expiration.as_f64().map(|s| (s * 1000.0) as u64).unwrap_or(0),
        },
    });
    if let Some(t) = &job.continuation_token {
        data["continuationToken"] = json!(t);
    }
    json!({"CodePipeline.job": {"id": job.id, "accountId": ACCOUNT, "data": data}})
}
