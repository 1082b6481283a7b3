//! A CodePipeline job, from event to report (SPEC §4).
//!
//! Every invocation ends in exactly one report for its job id. A start
//! (no continuation token) resolves the config, consults the state record
//! ([`state::plan_start`]), takes the lock, records the attempt and calls
//! RunTask; a continuation watches the task until it stops or times out and
//! then records the outcome and releases the lock.
//!
//! Every step is safe to repeat: the state record says where a deployment
//! is, the lock is re-entrant for the same deployment, and RunTask's
//! `clientToken` is derived from (state parameter, deployment, attempt), so
//! a crash or a duplicate delivery at any point resumes instead of starting
//! a second migration.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::date_time::{DateTime, Format};
use tracing::{info, instrument, warn};

use crate::Clients;
use crate::config::{self, Config};
use crate::event::Job;
use crate::failure::Failure;
use crate::lock::{self, Acquire, Holder};
use crate::outcome::{self, AfterStartFailure, Outcome};
use crate::report::{self, Report, Sent};
use crate::state::{self, FailureClass, StartPlan, State, Status};
use crate::task::{self, Container, NotStarted, TaskView};
use crate::token::{Phase, Watch};

/// Time kept back from the Lambda deadline for the final calls and report.
const DEADLINE_MARGIN: Duration = Duration::from_secs(15);
/// Longest pause between two DescribeTasks calls within one invocation.
const MAX_POLL_DELAY: Duration = Duration::from_secs(10);

/// Runs one job to its report. `Err` only when the report could not be
/// sent, so that Lambda delivers the event again.
#[instrument(skip_all, fields(job_id = %job.id))]
pub async fn handle(
    clients: &Clients,
    defaults: &[(String, String)],
    job: &Job,
    deadline: SystemTime,
) -> Result<Sent, Failure> {
    let report = match Jobs::new(clients, job, deadline).run(defaults).await {
        Ok(report) => report,
        Err(failure) => Report::failed(&failure, None),
    };
    info!(report = %report.describe(), "reporting");
    report::send(&clients.pipeline, &job.id, &report).await
}

/// One invocation's view of the job.
struct Jobs<'a> {
    clients: &'a Clients,
    job: &'a Job,
    deadline: SystemTime,
}

/// The resolved config and identity of the deployment being worked on.
struct Deployment {
    config: Config,
    id: String,
}

impl<'a> Jobs<'a> {
    fn new(clients: &'a Clients, job: &'a Job, deadline: SystemTime) -> Self {
        Jobs {
            clients,
            job,
            deadline,
        }
    }

    async fn run(&self, defaults: &[(String, String)]) -> Result<Report, Failure> {
        let env = defaults.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let config = config::resolve(self.job.user_parameters(), env)
            .map_err(|e| Failure::Configuration(e.to_string()))?;
        let phase = match &self.job.data.continuation_token {
            Some(text) => Some(Phase::decode(text).map_err(|e| {
                Failure::Job(format!("{e}. Retry the stage: the state record lets the new run pick up where this one is."))
            })?),
            None => None,
        };
        match phase {
            Some(Phase::Watch(watch)) => {
                let deployment = Deployment {
                    config,
                    id: watch.deployment.clone(),
                };
                let task_arn = watch.task_arn.clone();
                deployment
                    .watch(self, watch)
                    .await
                    .or_else(|failure| Ok(Report::failed(&failure, Some(&task_arn))))
            }
            Some(Phase::WaitLock { deployment, tries }) => {
                Deployment {
                    config,
                    id: deployment,
                }
                .start(self, tries, false)
                .await
            }
            Some(Phase::Start { deployment, tries }) => {
                Deployment {
                    config,
                    id: deployment,
                }
                .start(self, tries, true)
                .await
            }
            None => {
                let id = match &config.deployment {
                    Some(id) => id.clone(),
                    None => self.execution_id().await?,
                };
                Deployment { config, id }.start(self, 0, false).await
            }
        }
    }

    /// The pipeline execution id, for configs without `deployment`.
    async fn execution_id(&self) -> Result<String, Failure> {
        let out = self
            .clients
            .pipeline
            .get_job_details()
            .job_id(&self.job.id)
            .send()
            .await
            .map_err(|e| Failure::from_sdk("codepipeline:GetJobDetails", e))?;
        out.job_details()
            .and_then(|d| d.data())
            .and_then(|d| d.pipeline_context())
            .and_then(|c| c.pipeline_execution_id())
            .map(str::to_owned)
            .ok_or_else(|| {
                Failure::Configuration(
                    "cannot tell which deployment this is: GetJobDetails has no pipelineExecutionId. \
                     Add \"deployment\":\"#{codepipeline.PipelineExecutionId}\" to UserParameters"
                        .into(),
                )
            })
    }
}

impl Deployment {
    /// Starts (or resumes) the migration for this deployment. `tries` counts
    /// start attempts already made in this action execution; `retrying` is
    /// set when this job continues an action whose last start attempt failed.
    #[instrument(skip_all, fields(deployment = %self.id))]
    async fn start(&self, jobs: &Jobs<'_>, tries: u32, retrying: bool) -> Result<Report, Failure> {
        let Clients { ssm, ecs, .. } = jobs.clients;
        let config = &self.config;
        let container = task::decisive_container(ecs, config).await?;
        let placement = task::placement(ecs, config).await?;
        let record = state::read(ssm, &config.state_parameter).await?;
        // The record names the job that started the action execution, so a
        // late duplicate of that job is told from a stage retry (a new job).
        // A start retry within the same action keeps that job id: otherwise
        // a late duplicate of the first job, seeing a failed attempt started
        // by some other job, would start yet another attempt nobody watches.
        let action_job = record
            .as_ref()
            .filter(|r| retrying && r.deployment == self.id)
            .and_then(|r| r.job_id.clone())
            .unwrap_or_else(|| jobs.job.id.clone());

        // A start retry follows a *transient* failure only: a permanent one
        // here means this is a late duplicate of an old retry job after the
        // action already failed — say so again, start nothing.
        let failed_for_good = record.as_ref().filter(|r| {
            retrying
                && r.deployment == self.id
                && r.status == Status::Failed
                && r.failure_class != Some(FailureClass::Transient)
        });
        let plan = match (
            state::plan_start(record.as_ref(), &self.id, &jobs.job.id, config.rerun),
            failed_for_good,
        ) {
            (StartPlan::Run { .. }, Some(record)) => StartPlan::Replay(record.clone()),
            (plan, _) => plan,
        };
        let (attempt, reruns) = match plan {
            StartPlan::AlreadySucceeded(record) => {
                let mut report = self.success(&record, &container, None);
                if let Report::Succeeded { summary, .. } = &mut report {
                    *summary = format!(
                        "Already applied: deployment {} migrated successfully in attempt {}; not run again (rerun: once)",
                        self.id, record.attempt
                    );
                }
                return Ok(report);
            }
            StartPlan::Replay(record) => return self.replay(&record, &container),
            StartPlan::Watch { attempt, task_arn } => {
                info!(%task_arn, "resuming the running migration");
                let watch = Watch {
                    deployment: self.id.clone(),
                    attempt,
                    tries: tries.max(1),
                    task_arn: task_arn.clone(),
                    container: container.name,
                    logs: container.logs,
                };
                return self
                    .watch(jobs, watch)
                    .await
                    .or_else(|failure| Ok(Report::failed(&failure, Some(&task_arn))));
            }
            StartPlan::Run { attempt, reruns } => (attempt, reruns),
        };

        if let Some(lock_name) = &config.lock {
            let me = Holder {
                deployment: self.id.clone(),
                state_parameter: config.state_parameter.clone(),
                acquired_at: epoch_secs(now()) as u64,
                released: false,
            };
            let acquired = match lock::acquire(ssm, ecs, &config.cluster, lock_name, &me).await {
                Ok(acquired) => acquired,
                Err(failure) => {
                    // The create may have gone through before a later call
                    // failed: never leave a record held by a failed start.
                    self.release_lock(jobs).await;
                    return Err(failure);
                }
            };
            if let Acquire::Busy(holder) = acquired {
                let who = holder
                    .map(|h| format!("deployment {}", h.deployment))
                    .unwrap_or_else(|| "another deployment".into());
                return Ok(Report::InProgress {
                    token: self.token(Phase::WaitLock {
                        deployment: self.id.clone(),
                        tries,
                    })?,
                    summary: format!(
                        "Waiting: {who} is migrating the same database (lock {lock_name}); this deployment starts when it finishes"
                    ),
                    percent: None,
                    task_arn: None,
                });
            }
        }

        // The last EventBridge event acted on stays on record across attempts,
        // so a late copy of it cannot count as a new failure to rerun.
        let started = State {
            event_id: record
                .as_ref()
                .filter(|r| r.deployment == self.id)
                .and_then(|r| r.event_id.clone()),
            ..State::starting(&self.id, attempt, reruns, &action_job, &rfc3339(now()))
        };
        if let Err(failure) = self.record_start(jobs, &started).await {
            // Nothing was started: give the lock back rather than leave a
            // holder that looks alive (`starting`) for 24 h. (A concurrent
            // duplicate of this same job may have got further; it holds the
            // same record, and its own terminal path records the outcome.)
            self.release_lock(jobs).await;
            return Err(failure);
        }
        let client_token = task::client_token(&config.state_parameter, &self.id, attempt);
        let tries = tries + 1;
        match task::run(ecs, config, &container, &placement, &self.id, &client_token).await {
            Ok(task::Started { task_arn, replayed }) => {
                info!(%task_arn, attempt, replayed, "migration task started");
                let running = State {
                    status: Status::Running,
                    task_arn: Some(task_arn.clone()),
                    ..started
                };
                if let Err(failure) = state::write(ssm, &config.state_parameter, &running).await {
                    // Still `starting` in SSM: a resumption repeats RunTask
                    // with the same clientToken and gets this same task.
                    warn!(%failure, "could not record the running task; watching it anyway");
                }
                let watch = Watch {
                    deployment: self.id.clone(),
                    attempt,
                    tries,
                    task_arn: task_arn.clone(),
                    container: container.name,
                    logs: container.logs,
                };
                if replayed {
                    // This attempt ran before; record its outcome now.
                    return self
                        .watch(jobs, watch)
                        .await
                        .or_else(|failure| Ok(Report::failed(&failure, Some(&task_arn))));
                }
                Ok(Report::InProgress {
                    token: self.token(Phase::Watch(watch))?,
                    summary: format!(
                        "Migration task started (task {}, attempt {attempt})",
                        task::task_id(&task_arn)
                    ),
                    percent: Some(0),
                    task_arn: Some(task_arn),
                })
            }
            Err(NotStarted::Attempt { reason, transient }) => {
                self.start_failed(jobs, &started, true, &reason, transient, tries)
                    .await
            }
            Err(NotStarted::Fatal(failure)) => {
                let failed = started.finished(
                    Status::Failed,
                    None,
                    Some(FailureClass::Permanent),
                    &rfc3339(now()),
                );
                self.record_end(jobs, &failed).await;
                Err(failure)
            }
        }
    }

    /// Watches the task for up to `waitSeconds`, then reports progress or
    /// the outcome.
    #[instrument(skip_all, fields(deployment = %self.id, task_arn = %watch.task_arn))]
    async fn watch(&self, jobs: &Jobs<'_>, watch: Watch) -> Result<Report, Failure> {
        let config = &self.config;
        let budget = jobs
            .deadline
            .duration_since(now())
            .unwrap_or_default()
            .saturating_sub(DEADLINE_MARGIN);
        let until = now() + budget.min(Duration::from_secs(config.wait_seconds));
        let mut delay = Duration::from_secs(1);
        loop {
            let view = match task::describe(&jobs.clients.ecs, &config.cluster, &watch.task_arn)
                .await
            {
                Ok(view) => view,
                Err(Failure::Unavailable { api, detail }) => {
                    // The task runs on whether or not we can see it: look again later.
                    return Ok(Report::InProgress {
                        summary: format!(
                            "Could not check on the migration ({api}: {detail}); checking again shortly"
                        ),
                        token: self.token(Phase::Watch(watch.clone()))?,
                        percent: None,
                        task_arn: Some(watch.task_arn.clone()),
                    });
                }
                Err(other) => return Err(other),
            };
            let Some(view) = view else {
                return self
                    .finish(
                        jobs,
                        &watch,
                        None,
                        Outcome::NotStarted {
                            reason: "ECS no longer knows the task (stopped tasks are kept about an hour)".into(),
                            transient: false,
                        },
                    )
                    .await;
            };
            match outcome::classify(
                &view,
                &watch.container,
                config.timeout_seconds,
                epoch_secs(now()),
            ) {
                Outcome::Running { .. } if now() + delay < until => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_POLL_DELAY);
                }
                Outcome::Running {
                    elapsed,
                    last_status,
                } => {
                    let state = match last_status.as_str() {
                        "RUNNING" => String::new(),
                        other => format!(", {}", other.to_ascii_lowercase()),
                    };
                    return Ok(Report::InProgress {
                        summary: format!(
                            "Migration running for {} (task {}, attempt {}{state})",
                            outcome::human(elapsed),
                            task::task_id(&watch.task_arn),
                            watch.attempt
                        ),
                        percent: Some(outcome::percent(elapsed, config.timeout_seconds)),
                        token: self.token(Phase::Watch(watch.clone()))?,
                        task_arn: Some(watch.task_arn.clone()),
                    });
                }
                done => return self.finish(jobs, &watch, Some(&view), done).await,
            }
        }
    }

    /// Records a finished (or timed out) task, releases the lock and says
    /// what to report.
    async fn finish(
        &self,
        jobs: &Jobs<'_>,
        watch: &Watch,
        view: Option<&TaskView>,
        outcome: Outcome,
    ) -> Result<Report, Failure> {
        let config = &self.config;
        let Clients { ssm, ecs, .. } = jobs.clients;
        let record = state::read(ssm, &config.state_parameter).await?;
        // A late duplicate may finish an attempt that a newer one (or another
        // deployment) has replaced: then it reports, but writes nothing.
        let ours = record
            .as_ref()
            .is_none_or(|r| r.deployment == self.id && r.attempt == watch.attempt);
        let base = State {
            task_arn: Some(watch.task_arn.clone()),
            ..record.filter(|_| ours).unwrap_or_else(|| {
                State::starting(&self.id, watch.attempt, 0, &jobs.job.id, &rfc3339(now()))
            })
        };
        // A duplicate finishing an attempt already recorded as over keeps
        // the record as first written (its `finishedAt` included).
        let recorded = matches!(base.status, Status::Succeeded | Status::Failed)
            .then(|| base.finished_at.clone())
            .flatten();
        let record_end = |done: State| async move {
            if !ours {
                warn!("the state record has moved on to another attempt; leaving it alone");
                return done;
            }
            if let Some(finished_at) = recorded.filter(|_| done.status == base.status) {
                self.release_lock(jobs).await;
                return State {
                    finished_at: Some(finished_at),
                    ..done
                };
            }
            self.record_end(jobs, &done).await;
            done
        };
        let finished_at = rfc3339(now());
        let container = Container {
            name: watch.container.clone(),
            logs: watch.logs.clone(),
        };
        let task_id = task::task_id(&watch.task_arn);
        match outcome {
            Outcome::Succeeded { duration } => {
                let done =
                    record_end(base.finished(Status::Succeeded, Some(0), None, &finished_at)).await;
                Ok(self.success(&done, &container, Some(duration)))
            }
            Outcome::Failed {
                exit_code,
                duration,
                reason,
            } => {
                record_end(base.finished(
                    Status::Failed,
                    Some(exit_code),
                    Some(FailureClass::Permanent),
                    &finished_at,
                ))
                .await;
                let lines = crate::logs::last_lines(&jobs.clients.logs, &container, task_id).await;
                Err(Failure::Job(format!(
                    "Migration failed: container `{}` exited with code {exit_code} after {} (task {task_id}, attempt {}, deployment {}). \
                     Stopped reason: {reason}. {lines}{} Fix the migration and retry the stage.",
                    watch.container,
                    outcome::human(duration),
                    watch.attempt,
                    self.id,
                    self.log_pointer(&container, task_id),
                )))
            }
            Outcome::TimedOut { elapsed } => {
                let limit = outcome::human(config.timeout_seconds);
                let reason = format!(
                    "migrate-once: timed out after {limit} (timeoutSeconds {})",
                    config.timeout_seconds
                );
                task::stop(ecs, &config.cluster, &watch.task_arn, &reason).await?;
                record_end(base.finished(
                    Status::Failed,
                    None,
                    Some(FailureClass::Permanent),
                    &finished_at,
                ))
                .await;
                let lines = crate::logs::last_lines(&jobs.clients.logs, &container, task_id).await;
                Err(Failure::Job(format!(
                    "Migration timed out after {} (timeoutSeconds {}); task {task_id} was stopped (attempt {}, deployment {}). {lines}{} \
                     Raise `timeoutSeconds` if the migration needs longer, then retry the stage.",
                    outcome::human(elapsed),
                    config.timeout_seconds,
                    watch.attempt,
                    self.id,
                    self.log_pointer(&container, task_id),
                )))
            }
            Outcome::NotStarted { reason, transient } => {
                let reason = match view {
                    Some(view) => format!(
                        "task {} stopped before the migration ran: {reason}",
                        task::task_id(&view.arn)
                    ),
                    None => format!("task {task_id}: {reason}"),
                };
                self.start_failed(jobs, &base, ours, &reason, transient, watch.tries)
                    .await
            }
            Outcome::ContainerMissing {
                container,
                containers,
                reason,
            } => {
                // The task may have run: not a start failure, never retried.
                record_end(base.finished(
                    Status::Failed,
                    None,
                    Some(FailureClass::Permanent),
                    &finished_at,
                ))
                .await;
                Err(Failure::Job(outcome::container_missing_message(
                    task_id,
                    &container,
                    &containers,
                    &reason,
                )))
            }
            Outcome::Running { .. } => {
                unreachable!("finish is only called for a stopped or timed-out task")
            }
        }
    }

    /// A start attempt failed: record it, then retry or give up.
    ///
    /// `ours` is false when the state record has moved on (a late duplicate
    /// watching an attempt that a newer one, or another deployment, has
    /// replaced): then nothing is written and no lock is touched — the
    /// record and the lock belong to whoever replaced us — and the report
    /// (most likely refused as already sent) is all that is left.
    async fn start_failed(
        &self,
        jobs: &Jobs<'_>,
        record: &State,
        ours: bool,
        reason: &str,
        transient: bool,
        tries: u32,
    ) -> Result<Report, Failure> {
        let class = if transient {
            FailureClass::Transient
        } else {
            FailureClass::Permanent
        };
        let failed = record.finished(Status::Failed, None, Some(class), &rfc3339(now()));
        let max = self.config.max_start_attempts;
        match outcome::after_start_failure(transient, tries, max) {
            AfterStartFailure::Retry => {
                // Keep the lock: the next attempt follows right away.
                if ours {
                    state::write(&jobs.clients.ssm, &self.config.state_parameter, &failed).await?;
                }
                warn!(reason, tries, "start attempt failed; retrying");
                Ok(Report::InProgress {
                    token: self.token(Phase::Start {
                        deployment: self.id.clone(),
                        tries,
                    })?,
                    summary: format!(
                        "Attempt {} could not start ({reason}); retrying ({tries} of {max} start attempts used)",
                        record.attempt
                    ),
                    percent: None,
                    task_arn: record.task_arn.clone(),
                })
            }
            AfterStartFailure::Exhausted => {
                if ours {
                    self.record_end(jobs, &failed).await;
                }
                Err(Failure::Unavailable {
                    api: "ecs:RunTask",
                    detail: format!(
                        "the migration task could not start in {tries} attempts (maxStartAttempts {max}); last reason: {reason}"
                    ),
                })
            }
            AfterStartFailure::Permanent => {
                if ours {
                    self.record_end(jobs, &failed).await;
                }
                Err(Failure::Job(format!(
                    "The migration task could not start (attempt {}, deployment {}): {reason}. \
                     Check the image, secrets and network of the task definition, then retry the stage.",
                    record.attempt, self.id
                )))
            }
        }
    }

    /// Writes a terminal state record and releases the lock. Failures here
    /// are logged, not reported: the outcome is what the pipeline must see,
    /// and a stale lock is taken over once its holder's task has stopped.
    ///
    /// Why the invariants survive a failure here: the lock is released even
    /// when the state write failed, and a lock whose release failed is
    /// stale as soon as the holder's state is terminal or its task stopped
    /// ([`lock`]). A state write that failed leaves the record `running`
    /// with this task: a re-delivery or stage retry of this deployment
    /// watches the same (stopped) task and records the outcome then — it
    /// never starts another.
    async fn record_end(&self, jobs: &Jobs<'_>, record: &State) {
        let ssm = &jobs.clients.ssm;
        if let Err(failure) = state::write(ssm, &self.config.state_parameter, record).await {
            warn!(%failure, "could not record the outcome in the state parameter");
        }
        self.release_lock(jobs).await;
    }

    /// Writes the `starting` record and resets the `resetParameters`.
    async fn record_start(&self, jobs: &Jobs<'_>, started: &State) -> Result<(), Failure> {
        let ssm = &jobs.clients.ssm;
        state::write(ssm, &self.config.state_parameter, started).await?;
        for name in &self.config.reset_parameters {
            state::put(ssm, name, "0", true).await?;
        }
        Ok(())
    }

    /// Releases this deployment's lock records; a failure is logged (the
    /// holder turns stale once its state is terminal or its task stopped).
    async fn release_lock(&self, jobs: &Jobs<'_>) {
        if let Some(lock_name) = &self.config.lock
            && let Err(failure) = lock::release(&jobs.clients.ssm, lock_name, &self.id).await
        {
            warn!(%failure, lock = %lock_name, "could not release the lock");
        }
    }

    /// The report for a succeeded record, with the §4 output variables.
    fn success(&self, record: &State, container: &Container, duration: Option<u64>) -> Report {
        let task_arn = record.task_arn.clone().unwrap_or_default();
        let task_id = task::task_id(&task_arn).to_owned();
        let duration = duration.or_else(|| {
            let parse =
                |t: &Option<String>| DateTime::from_str(t.as_deref()?, Format::DateTime).ok();
            Some(
                (parse(&record.finished_at)?.secs() - parse(&record.started_at)?.secs()).max(0)
                    as u64,
            )
        });
        let mut outputs = BTreeMap::from([
            ("TaskArn".to_owned(), task_arn.clone()),
            (
                "ExitCode".to_owned(),
                record.exit_code.unwrap_or(0).to_string(),
            ),
            ("Deployment".to_owned(), self.id.clone()),
            ("Attempts".to_owned(), record.attempt.to_string()),
        ]);
        if let Some(duration) = duration {
            outputs.insert("DurationSeconds".into(), duration.to_string());
        }
        if let Some((_, prefix)) = &container.logs {
            outputs.insert(
                "LogStream".into(),
                format!("{prefix}/{}/{task_id}", container.name),
            );
        }
        Report::Succeeded {
            summary: format!(
                "Migration finished: container `{}` exited 0{} (task {task_id}, attempt {})",
                container.name,
                duration
                    .map(|d| format!(" after {}", outcome::human(d)))
                    .unwrap_or_default(),
                record.attempt
            ),
            task_arn: Some(task_arn),
            outputs,
        }
    }

    /// A duplicate of a job that already finished its attempt: the same
    /// outcome again (CodePipeline will most likely refuse it as reported).
    fn replay(&self, record: &State, container: &Container) -> Result<Report, Failure> {
        match record.status {
            Status::Succeeded => Ok(self.success(record, container, None)),
            _ => Err(Failure::Job(format!(
                "Migration attempt {} of deployment {} already failed{} (task {}).",
                record.attempt,
                self.id,
                record
                    .exit_code
                    .map(|c| format!(" with exit code {c}"))
                    .unwrap_or_default(),
                record
                    .task_arn
                    .as_deref()
                    .map(task::task_id)
                    .unwrap_or("none"),
            ))),
        }
    }

    /// Where the decisive container's logs are, as a sentence.
    fn log_pointer(&self, container: &Container, task_id: &str) -> String {
        match &container.logs {
            Some((group, prefix)) => {
                let stream = format!("{prefix}/{}/{task_id}", container.name);
                let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
                format!(
                    "Logs: group {group}, stream {stream} (https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}/log-events/{}).",
                    console_escape(group),
                    console_escape(&stream)
                )
            }
            None => format!(
                "Container `{}` does not log with awslogs and a stream prefix, so no log link is known.",
                container.name
            ),
        }
    }

    fn token(&self, phase: Phase) -> Result<String, Failure> {
        phase.encode().map_err(Failure::Configuration)
    }
}

/// The CloudWatch console's double escaping of path parts (`/` → `$252F`).
fn console_escape(part: &str) -> String {
    part.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' => c.to_string(),
            other => {
                let mut buf = [0; 4];
                other
                    .encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("$25{b:02X}"))
                    .collect()
            }
        })
        .collect()
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    DateTime::from_secs(epoch_secs(t) as i64)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_links_escape_like_the_console() {
        assert_eq!(console_escape("/ecs/app"), "$252Fecs$252Fapp");
        assert_eq!(
            console_escape("migrate/app/0a1b"),
            "migrate$252Fapp$252F0a1b"
        );
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }
}
