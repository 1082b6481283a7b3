//! Watching the task: progress, the outcome recorded once, the lock given
//! back once ECS says the task has stopped.

use std::time::Duration;

use tracing::{instrument, warn};

use super::start::write_both;
use super::{Deployment, Invocation, epoch_secs, in_progress, now, retry_later, rfc3339, text};
use crate::config::Rerun;
use crate::failure::Failure;
use crate::outcome::{self, Outcome};
use crate::report::Report;
use crate::state::{self, FailureClass, State, Status};
use crate::task::{self, Container, TaskView};
use crate::token::{Phase, Watch};

/// Longest pause between two DescribeTasks calls within one invocation.
const MAX_POLL_DELAY: Duration = Duration::from_secs(10);
/// How long after RunTask a `MISSING` answer is ECS's eventual consistency
/// rather than a task it forgot (stopped tasks are kept about an hour).
const MISSING_IS_YOUNG_SECS: u64 = 3600;

impl Deployment {
    /// Watches the task for up to `waitSeconds`, then reports progress or
    /// the outcome.
    #[instrument(skip_all, fields(deployment = %self.id, task_arn = %watch.task_arn))]
    pub(super) async fn watch(
        &self,
        inv: &Invocation<'_>,
        watch: Watch,
    ) -> Result<Report, Failure> {
        let config = &self.config;
        let until = inv.wait_until(config.wait_seconds, now());
        let mut delay = Duration::from_secs(1);
        loop {
            let view = match task::describe(&inv.clients.ecs, &config.cluster, &watch.task_arn)
                .await
            {
                Ok(view) => view,
                Err(failure) => {
                    let Some(why) = retry_later(&failure) else {
                        return Err(failure);
                    };
                    // The task runs on whether or not we can see it: look again later.
                    return self.still(
                        &watch,
                        format!("Could not check on the migration ({why}); checking again shortly"),
                        None,
                    );
                }
            };
            let age = epoch_secs(now()).saturating_sub(watch.since);
            let Some(view) = view else {
                if age < MISSING_IS_YOUNG_SECS {
                    if now() + delay < until {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_POLL_DELAY);
                        continue;
                    }
                    return self.still(
                        &watch,
                        format!(
                            "ECS does not show task {} yet (it is eventually consistent); checking again shortly",
                            task::task_id(&watch.task_arn)
                        ),
                        None,
                    );
                }
                return self.forgotten(inv, &watch).await;
            };
            let now_secs = now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            match outcome::classify(&view, &watch.container, config.timeout_seconds, now_secs) {
                Outcome::Running { .. } if now() + delay < until => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_POLL_DELAY);
                }
                Outcome::Running {
                    elapsed,
                    last_status,
                } => {
                    let state = match outcome::progress_phrase(&last_status) {
                        Some(phrase) => format!(", {phrase}"),
                        None if last_status == "RUNNING" => String::new(),
                        None => format!(", {}", last_status.to_ascii_lowercase()),
                    };
                    return self.still(
                        &watch,
                        format!(
                            "Migration running for {} (task {}, attempt {}{state})",
                            outcome::human(elapsed),
                            task::task_id(&watch.task_arn),
                            watch.attempt
                        ),
                        Some(
                            self.migration_percent(outcome::percent(
                                elapsed,
                                config.timeout_seconds,
                            )),
                        ),
                    );
                }
                Outcome::TimedOut { elapsed } => return self.timed_out(inv, &watch, elapsed).await,
                done => return self.finish(inv, &watch, &view, done).await,
            }
        }
    }

    /// Progress: the same watch again.
    fn still(
        &self,
        watch: &Watch,
        summary: String,
        percent: Option<i32>,
    ) -> Result<Report, Failure> {
        in_progress(
            Phase::Watch(watch.clone()),
            summary,
            percent,
            Some(watch.task_arn.clone()),
        )
    }

    /// The attempt record to finish: as recorded, or rebuilt from the token
    /// when it is gone.
    async fn current(
        &self,
        inv: &Invocation<'_>,
        watch: &Watch,
    ) -> Result<(State, Option<State>), Failure> {
        let ssm = &inv.clients.ssm;
        let sp = &self.config.state_parameter;
        let (record, summary) = tokio::try_join!(
            state::read(ssm, sp, watch.seq),
            state::read_summary(ssm, sp)
        )?;
        let record = record.unwrap_or_else(|| State {
            deployment: self.id.clone(),
            status: Status::Running,
            attempt: watch.attempt,
            task_arn: None,
            exit_code: None,
            failure_class: None,
            reruns: 0,
            started_at: None,
            finished_at: None,
            seq: watch.seq,
            job_id: String::new(),
            action_job: watch.action_job.clone(),
            tries: 1,
            container: Some(watch.container.clone()),
            reason: None,
            recent: Vec::new(),
            task_definition: None,
            image: None,
            image_set: None,
        });
        let record = State {
            task_arn: Some(watch.task_arn.clone()),
            ..record
        };
        Ok((record, summary))
    }

    /// The task stopped: record the outcome once, give the lock back, report.
    async fn finish(
        &self,
        inv: &Invocation<'_>,
        watch: &Watch,
        view: &TaskView,
        outcome: Outcome,
    ) -> Result<Report, Failure> {
        let (record, summary) = match self.current(inv, watch).await {
            Ok(found) => found,
            Err(failure) => return self.recording_later(watch, failure),
        };
        let container = Container {
            name: watch.container.clone(),
            logs: watch.logs.clone(),
        };
        let task_id = task::task_id(&watch.task_arn);
        let finished_at = rfc3339(now());
        let done = match &outcome {
            _ if record.status.is_final() => record.clone(),
            Outcome::Succeeded { .. } => {
                record.finished(Status::Succeeded, Some(0), None, &finished_at)
            }
            Outcome::Failed { exit_code, .. } => record.finished(
                Status::Failed,
                Some(*exit_code),
                Some(FailureClass::Permanent),
                &finished_at,
            ),
            Outcome::NotStarted { reason, transient } => {
                let reason = format!(
                    "task {} stopped before the migration ran: {reason}",
                    task::task_id(&view.arn)
                );
                return self
                    .start_failed(
                        inv,
                        record,
                        &reason,
                        *transient,
                        Phase::Watch(watch.clone()),
                        summary.as_ref(),
                    )
                    .await;
            }
            // The task may have run: not a start failure, never retried.
            Outcome::ContainerMissing {
                container,
                containers,
                reason,
            } => record.failed(
                FailureClass::Permanent,
                &outcome::container_missing_message(task_id, container, containers, reason),
                &finished_at,
            ),
            Outcome::Running { .. } | Outcome::TimedOut { .. } => {
                unreachable!("finish is only called for a stopped task")
            }
        };
        // Record the outcome once; a repeat (after a crash between the two
        // writes, too) only completes the summary.
        let sp = &self.config.state_parameter;
        let written = if !record.status.is_final() {
            write_both(inv, sp, &done, summary.as_ref()).await
        } else if summary
            .as_ref()
            .is_none_or(|s| s.seq == done.seq && *s != done)
        {
            state::write_summary(&inv.clients.ssm, sp, &done, summary.as_ref()).await
        } else {
            Ok(())
        };
        // SSM refusing a new version (its oldest is labelled) is the
        // operator's to fix, and must not cost the outcome: the record is
        // written on its own (a refused summary may have cut its write
        // short), the lock is given back, and the report says what to do.
        let refused = match written {
            Ok(()) => None,
            Err(refused @ Failure::VersionLimit { .. }) => {
                let recorded = record.status.is_final()
                    || match state::write(&inv.clients.ssm, sp, &done).await {
                        Ok(()) => true,
                        Err(Failure::VersionLimit { .. }) => false,
                        Err(failure) => return self.recording_later(watch, failure),
                    };
                Some((refused, recorded))
            }
            Err(failure) => return self.recording_later(watch, failure),
        };
        self.release_lock(inv, watch.seq).await;
        let Some((refused, recorded)) = refused else {
            return self
                .report_end(inv, watch, outcome, &done, &container)
                .await;
        };
        if done.status == Status::Succeeded {
            // Not rolled on: the stage retry after the fix does that.
            return Err(self.succeeded_but(&done, &refused, recorded));
        }
        match self
            .report_end(inv, watch, outcome, &done, &container)
            .await
        {
            Err(Failure::Job(message)) => Err(Failure::Job(format!("{message} Also: {refused}."))),
            other => other,
        }
    }

    /// The report of a stopped task whose outcome is recorded.
    async fn report_end(
        &self,
        inv: &Invocation<'_>,
        watch: &Watch,
        outcome: Outcome,
        done: &State,
        container: &Container,
    ) -> Result<Report, Failure> {
        let task_id = task::task_id(&watch.task_arn);
        if done.status != Status::Succeeded
            && !matches!(
                outcome,
                Outcome::Failed { .. } | Outcome::ContainerMissing { .. }
            )
        {
            // Recorded before as something else (a start failure, a stop).
            return text::replay(done, container);
        }
        match outcome {
            Outcome::Succeeded { duration } if done.status == Status::Succeeded => {
                let report = text::success(done, container, Some(duration));
                self.succeeded(inv, &watch.action_job, done, container, report)
                    .await
            }
            Outcome::Failed {
                exit_code,
                duration,
                reason,
            } => {
                let secrets = crate::logs::Secrets::of(&self.config, inv.job);
                let lines =
                    crate::logs::last_lines(&inv.clients.logs, container, task_id, &secrets).await;
                Err(Failure::Job(format!(
                    "Migration failed: container `{}` exited with code {exit_code} after {} (task {task_id}, attempt {}, deployment {}). \
                     Stopped reason: {reason}. {lines}{} Fix the migration and retry the stage.",
                    watch.container,
                    outcome::human(duration),
                    watch.attempt,
                    self.id,
                    text::log_pointer(container, task_id),
                )))
            }
            Outcome::ContainerMissing {
                container,
                containers,
                reason,
            } => Err(Failure::Job(outcome::container_missing_message(
                task_id,
                &container,
                &containers,
                &reason,
            ))),
            _ => {
                let report = text::replay(done, container)?;
                self.succeeded(inv, &watch.action_job, done, container, report)
                    .await
            }
        }
    }

    /// A succeeded migration whose record or summary SSM refused
    /// (`refused`, a [`Failure::VersionLimit`]): the operator's to fix, so a
    /// `ConfigurationError` that says the migration succeeded, where its
    /// outcome is, and what to do.
    fn succeeded_but(&self, done: &State, refused: &Failure, recorded: bool) -> Failure {
        let kept = if recorded {
            format!(
                "its outcome is recorded in `{}`",
                state::attempt_name(&self.config.state_parameter, done.seq)
            )
        } else {
            "its outcome could not be recorded".to_owned()
        };
        let retry = match self.config.rerun {
            Rerun::Once => "the migration is not run again: the retry reports it applied",
            Rerun::Always => "with `rerun: always` the retry runs the migration again",
        };
        Failure::Configuration(format!(
            "The migration succeeded (task {}, attempt {}, deployment {}) and {kept}, but {refused}. \
             Then retry the stage; {retry}.",
            task::task_id(done.task_arn.as_deref().unwrap_or_default()),
            done.attempt,
            self.id,
        ))
    }

    /// Past `timeoutSeconds`: stop the task, record the failure, report it.
    /// The lock stays with the attempt: its task is alive until ECS reports
    /// it `STOPPED` (a stopping task runs on for its `stopTimeout`), and a
    /// contender takes over then.
    async fn timed_out(
        &self,
        inv: &Invocation<'_>,
        watch: &Watch,
        elapsed: u64,
    ) -> Result<Report, Failure> {
        let config = &self.config;
        let limit = outcome::human(config.timeout_seconds);
        let reason = format!(
            "migrate-once: timed out after {limit} (timeoutSeconds {})",
            config.timeout_seconds
        );
        if let Err(failure) =
            task::stop(&inv.clients.ecs, &config.cluster, &watch.task_arn, &reason).await
        {
            let Some(why) = retry_later(&failure) else {
                return Err(failure);
            };
            return self.timing_out_later(watch, "stopping", &why);
        }
        // Recorded before it is reported: a timeout reported but not
        // recorded would leave the record `running` with nobody watching.
        let recorded = match self.current(inv, watch).await {
            Ok((record, summary)) if !record.status.is_final() => {
                let failed = record.failed(
                    FailureClass::Permanent,
                    &format!("timed out after {limit}"),
                    &rfc3339(now()),
                );
                write_both(inv, &config.state_parameter, &failed, summary.as_ref()).await
            }
            found => found.map(|_| ()),
        };
        if let Err(failure) = recorded {
            let Some(why) = retry_later(&failure) else {
                warn!(%failure, "could not record the timeout; the lock's next contender records the outcome");
                return self.timeout_failure(inv, watch, elapsed).await;
            };
            return self.timing_out_later(watch, "recording the stop of", &why);
        }
        self.timeout_failure(inv, watch, elapsed).await
    }

    /// A step of the timeout (`doing` the task) met a transient error: the
    /// same watch again, the step retried by the next invocation.
    fn timing_out_later(&self, watch: &Watch, doing: &str, why: &str) -> Result<Report, Failure> {
        self.still(
            watch,
            format!(
                "Timed out; {doing} task {} ({why}), trying again shortly",
                task::task_id(&watch.task_arn)
            ),
            None,
        )
    }

    /// The timeout's failure, with the migration's last lines.
    async fn timeout_failure(
        &self,
        inv: &Invocation<'_>,
        watch: &Watch,
        elapsed: u64,
    ) -> Result<Report, Failure> {
        let config = &self.config;
        let container = Container {
            name: watch.container.clone(),
            logs: watch.logs.clone(),
        };
        let task_id = task::task_id(&watch.task_arn);
        let secrets = crate::logs::Secrets::of(&self.config, inv.job);
        let lines = crate::logs::last_lines(&inv.clients.logs, &container, task_id, &secrets).await;
        Err(Failure::Job(format!(
            "Migration timed out after {} (timeoutSeconds {}); task {task_id} was stopped (attempt {}, deployment {}). {lines}{} \
             Raise `timeoutSeconds` if the migration needs longer, then retry the stage.",
            outcome::human(elapsed),
            config.timeout_seconds,
            watch.attempt,
            self.id,
            text::log_pointer(&container, task_id),
        )))
    }

    /// ECS no longer knows a task started over an hour ago: it has stopped,
    /// and its outcome is lost.
    async fn forgotten(&self, inv: &Invocation<'_>, watch: &Watch) -> Result<Report, Failure> {
        let task_id = task::task_id(&watch.task_arn);
        let reason = format!(
            "ECS no longer knows task {task_id} (stopped tasks are kept about an hour); its outcome is unknown"
        );
        let (record, summary) = match self.current(inv, watch).await {
            Ok(found) => found,
            Err(failure) => return self.recording_later(watch, failure),
        };
        if !record.status.is_final() {
            let failed = record.failed(FailureClass::Permanent, &reason, &rfc3339(now()));
            self.record_end(inv, &failed, summary.as_ref()).await;
        } else {
            self.release_lock(inv, watch.seq).await;
        }
        Err(Failure::Job(format!(
            "{reason} (attempt {}, deployment {}). Check the migration's logs, then retry the stage.",
            watch.attempt, self.id
        )))
    }

    /// A transient error while recording the end: never fail a migration
    /// that may have succeeded; look again in the next invocation.
    fn recording_later(&self, watch: &Watch, failure: Failure) -> Result<Report, Failure> {
        let Some(why) = retry_later(&failure) else {
            return Err(failure);
        };
        self.still(
            watch,
            format!(
                "Task {} has stopped; recording its outcome ({why}), trying again shortly",
                task::task_id(&watch.task_arn)
            ),
            None,
        )
    }
}
