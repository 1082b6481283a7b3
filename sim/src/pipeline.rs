//! CodePipeline, as the function meets it: each run of the Invoke action
//! creates a job, invokes the function asynchronously, waits for the
//! report (or the job timeout), and after a continuation creates a new job
//! carrying the token; a failed action sends the EventBridge event, an
//! operator may retry the stage or ask for a rerun, a stopped pipeline
//! abandons the action and sends its own events. Stage retries — the
//! operator's or the function's `RetryStageExecution` — start a new run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use local_aws::JobReport;
use local_aws::inproc::WireRequest;
use serde_json::json;

use crate::draw::{Execution, Family, PIPELINE, Plan, STAGE};
use crate::lambda::Lambda;
use crate::note;
use crate::rng::Rng;
use crate::timeline::Timeline;

/// How an action-failed event is labelled in the timeline.
pub const ACTION_FAILED: &str = "FAILED ";

/// CodePipeline's job timeout for an Invoke action's job.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Longer than any action may run (the simulator's own bound).
pub const ACTION_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// How one action run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Succeeded,
    Failed,
    /// A job was not reported within the job timeout.
    TimedOut,
    /// The pipeline was stopped (stop and abandon).
    Abandoned,
    /// It ran past [`ACTION_LIMIT`].
    Unended,
}

/// One run of the action: its jobs and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    /// Index into [`Plan::executions`].
    pub execution: usize,
    /// 1 for the first run, 2 after the first stage retry, …
    pub number: u32,
    /// The run's jobs, in order, with when each was created (since the
    /// schedule began).
    pub jobs: Vec<String>,
    pub created: Vec<Duration>,
    /// How it ended.
    pub end: End,
    /// The final report.
    pub last: Option<JobReport>,
}

/// The pipelines of one schedule.
pub struct Pipelines {
    plan: Arc<Plan>,
    lambda: Arc<Lambda>,
    rng: Mutex<Rng>,
    /// Every run that ended.
    pub runs: Mutex<Vec<Run>>,
    /// Runs started per execution.
    started: Mutex<Vec<u32>>,
    timeline: Arc<Timeline>,
    busy: crate::Busy,
    origin: tokio::time::Instant,
    reported: Arc<crate::check::Reported>,
}

impl Pipelines {
    /// The pipelines of `plan`.
    pub fn new(
        plan: Arc<Plan>,
        lambda: Arc<Lambda>,
        rng: Rng,
        timeline: Arc<Timeline>,
        busy: crate::Busy,
        reported: Arc<crate::check::Reported>,
    ) -> Arc<Pipelines> {
        let runs = vec![0; plan.executions.len()];
        Arc::new(Pipelines {
            plan,
            lambda,
            rng: Mutex::new(rng),
            runs: Mutex::new(Vec::new()),
            started: Mutex::new(runs),
            timeline,
            busy,
            origin: tokio::time::Instant::now(),
            reported,
        })
    }

    fn draw<T>(&self, f: impl FnOnce(&mut Rng) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Starts every execution at its time.
    pub fn start(self: &Arc<Self>) {
        for (i, e) in self.plan.executions.iter().enumerate() {
            let at = Duration::from_secs(e.start_at);
            self.spawn_run(i, at);
        }
    }

    /// A stage retry of `execution_id` was accepted: run the action again.
    pub fn retried(self: &Arc<Self>, execution_id: &str) {
        if let Some(i) = self
            .plan
            .executions
            .iter()
            .position(|e| e.id == execution_id)
        {
            self.spawn_run(i, Duration::from_secs(1));
        }
    }

    fn spawn_run(self: &Arc<Self>, execution: usize, after: Duration) {
        let pipelines = self.clone();
        let busy = self.busy.enter();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            pipelines.run(execution).await;
            drop(busy);
        });
    }

    async fn run(self: &Arc<Self>, index: usize) {
        let e = &self.plan.executions[index];
        let family = &self.plan.families[e.family];
        let number = {
            let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
            started[index] += 1;
            started[index]
        };
        let aws = &self.lambda.net().aws;
        if family.modelled {
            aws.start_stage(&e.id);
        }
        note!(
            self.timeline,
            0,
            "execution {} ({}): action run {number} starts",
            short(&e.id),
            family.family
        );
        let action_execution = format!("{}-run{number}", e.id);
        let stop_at = e
            .stop_after
            .filter(|_| number == 1)
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
        let limit = tokio::time::Instant::now() + ACTION_LIMIT;
        let mut token = None;
        let mut jobs = Vec::new();
        let mut created = Vec::new();
        let (end, last) = loop {
            let job = aws.new_job(
                &e.id,
                &action_execution,
                jobs.len() as u32 + 1,
                token.take(),
            );
            jobs.push(job.id.clone());
            created.push(self.origin.elapsed());
            note!(
                self.timeline,
                0,
                "job {} (run {number} of {})",
                short(&job.id),
                short(&e.id)
            );
            self.lambda.invoke(&job.id, aws.job_event(&job));
            let deadline = (tokio::time::Instant::now() + JOB_TIMEOUT).min(limit);
            match self.await_report(&job.id, deadline, stop_at).await {
                Waited::Report(r) if !r.success => break (End::Failed, Some(*r)),
                Waited::Report(r) => match &r.continuation_token {
                    Some(t) => {
                        token = Some(t.clone());
                        let pause = Duration::from_secs(self.plan.delivery.continuation_delay);
                        tokio::time::sleep(pause).await;
                    }
                    None => break (End::Succeeded, Some(*r)),
                },
                Waited::TimedOut if tokio::time::Instant::now() >= limit => {
                    break (End::Unended, None);
                }
                Waited::TimedOut => break (End::TimedOut, None),
                Waited::Stopped => break (End::Abandoned, None),
            }
        };
        note!(
            self.timeline,
            0,
            "execution {}: action run {number} ended {end:?}",
            short(&e.id)
        );
        if family.modelled {
            aws.finish_stage(&e.id, end == End::Succeeded);
        }
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Run {
                execution: index,
                number,
                jobs,
                created,
                end,
                last,
            });
        // The instances did their once-per-deployment work — unless a newer
        // deployment of the family has started since (then its reset is
        // theirs to consume, not ours).
        let superseded = {
            let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
            self.plan
                .executions
                .iter()
                .enumerate()
                .any(|(i, other)| i > index && other.family == e.family && started[i] > 0)
        };
        if end == End::Succeeded && !superseded {
            for name in &family.resets {
                aws.put_parameter(name, "1");
            }
        }
        match end {
            End::Abandoned if family.modelled => self.stopped(e),
            End::Failed | End::TimedOut => self.failed(e, family, number).await,
            _ => {}
        }
    }

    async fn await_report(
        &self,
        job: &str,
        deadline: tokio::time::Instant,
        stop_at: Option<tokio::time::Instant>,
    ) -> Waited {
        let aws = &self.lambda.net().aws;
        let stop_at = stop_at.unwrap_or(deadline + Duration::from_secs(1));
        loop {
            let reported = self.reported.waiter(job);
            if let Some(r) = aws.job_report(job) {
                return Waited::Report(Box::new(r));
            }
            tokio::select! {
                biased;
                _ = reported.notified() => {}
                _ = tokio::time::sleep_until(stop_at) => return Waited::Stopped,
                _ = tokio::time::sleep_until(deadline) => return Waited::TimedOut,
            }
        }
    }

    /// The pipeline was stopped: CodePipeline's two events (STOPPING,
    /// then STOPPED), each delivered at least once.
    fn stopped(&self, e: &Execution) {
        for state in ["STOPPING", "STOPPED"] {
            let event = json!({
                "version": "0",
                "id": format!("{}-{state}", e.id),
                "detail-type": "CodePipeline Pipeline Execution State Change",
                "source": "aws.codepipeline",
                "account": "123456789012",
                "region": "us-east-1",
                "detail": {"pipeline": PIPELINE, "execution-id": e.id, "state": state, "version": 1},
            });
            self.lambda
                .invoke(&format!("{state} {}", short(&e.id)), event);
        }
    }

    /// The action failed: the EventBridge event for the pipeline's rule,
    /// then perhaps an operator.
    async fn failed(self: &Arc<Self>, e: &Execution, family: &Family, number: u32) {
        if family.modelled {
            let event = json!({
                "version": "0",
                "id": format!("{}-failed-{number}", e.id),
                "detail-type": "CodePipeline Action Execution State Change",
                "source": "aws.codepipeline",
                "account": "123456789012",
                "region": "us-east-1",
                "detail": {
                    "pipeline": PIPELINE, "execution-id": e.id, "stage": STAGE,
                    "action": STAGE, "state": "FAILED", "version": 1,
                    "type": {"owner": "AWS", "provider": "Lambda", "category": "Invoke", "version": "1"},
                },
            });
            self.lambda
                .invoke(&format!("{ACTION_FAILED}{}", short(&e.id)), event);
        }
        let b = self.plan.delivery;
        let (retry, rerun, after) = self.draw(|rng| {
            (
                rng.chance(b.operator_retry),
                rng.chance(b.operator_rerun),
                rng.range(60, 7200),
            )
        });
        if !(retry || rerun) || number >= 4 {
            return;
        }
        let busy = self.busy.enter();
        let pipelines = self.clone();
        let (id, modelled) = (e.id.clone(), family.modelled);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(after)).await;
            match (modelled, rerun) {
                (true, true) => {
                    let event = json!({
                        "version": "0",
                        "id": format!("{id}-rerun-{number}"),
                        "detail-type": "Migration Rerun Requested",
                        "source": "migrate-once",
                        "detail": {"pipeline": PIPELINE, "stage": STAGE, "executionId": id},
                    });
                    pipelines
                        .lambda
                        .invoke(&format!("rerun request {}", short(&id)), event);
                }
                (true, false) => pipelines.operator_retry(&id).await,
                (false, _) => pipelines.retried(&id),
            }
            drop(busy);
        });
    }

    /// An operator presses "Retry" (a RetryStageExecution of their own).
    async fn operator_retry(&self, execution_id: &str) {
        let body = json!({
            "pipelineName": PIPELINE, "stageName": STAGE,
            "pipelineExecutionId": execution_id, "retryMode": "FAILED_ACTIONS",
        });
        let request = WireRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![(
                "x-amz-target".into(),
                "CodePipeline_20150709.RetryStageExecution".into(),
            )],
            body: body.to_string().into_bytes(),
            ..WireRequest::default()
        };
        let answer = self.lambda.net().apply_as_operator(&request).await;
        note!(
            self.timeline,
            0,
            "operator retries the stage of {}: {}",
            short(execution_id),
            answer.status
        );
    }
}

enum Waited {
    Report(Box<JobReport>),
    TimedOut,
    Stopped,
}

/// The first eight characters of an id.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}
