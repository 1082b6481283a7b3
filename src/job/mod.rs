//! A CodePipeline job, from event to report (SPEC §4): the migration's state
//! machine.
//!
//! Every invocation ends in exactly one report for its job id. The modules:
//!
//! - [`plan`]: who may start an attempt — the pure decision over the
//!   attempt records ([`crate::state`]).
//! - `start`: claims or resumes an attempt, takes the lock, resets, calls
//!   RunTask; every side effect claimed first.
//! - `watch`: follows the task, records its outcome, releases the lock.
//! - `text`: what the pipeline reads: summaries, messages, output variables.
//!
//! Why a crash, a duplicate or a late delivery can only resume or re-report:
//! an attempt exists only once its record was *created* (one winner); its
//! resets and its rerun are claimed the same way; RunTask carries a
//! `clientToken` derived from (state parameter, deployment, attempt), and an
//! unknown RunTask outcome is retried as the same attempt; the lock is
//! re-entrant only for the same attempt and follows its task. Transient AWS
//! errors while starting (a bounded number of times), waiting for the lock,
//! watching or recording the end hand back a continuation token: an action
//! does not fail while its migration may still succeed.

pub mod plan;
mod register;
mod rolling;
mod start;
mod text;
mod watch;

use std::time::{Duration, SystemTime};

use aws_smithy_types::date_time::{DateTime, Format};
use tracing::{info, instrument};

use crate::Clients;
use crate::config::{self, Config};
use crate::event::Job;
use crate::failure::Failure;
use crate::report::{self, Report, Sent};
use crate::state;
use crate::token::Phase;
use plan::Caller;

/// Runs one job to its report. `Err` only when the report could not be
/// sent, so that Lambda delivers the event again.
#[instrument(skip_all, fields(job_id = %job.id))]
pub async fn handle(
    clients: &Clients,
    defaults: &[(String, String)],
    job: &Job,
    deadline: SystemTime,
) -> Result<Sent, Failure> {
    let invocation = Invocation {
        clients,
        job,
        deadline,
    };
    let report = match invocation.run(defaults).await {
        Ok(report) => report,
        Err(failure) => Report::failed(&failure, None),
    };
    info!(report = %report.describe(), "reporting");
    report::send(&clients.pipeline, &job.id, &report).await
}

/// One invocation: the job it was given and the time it has.
struct Invocation<'a> {
    clients: &'a Clients,
    job: &'a Job,
    deadline: SystemTime,
}

/// The migration of one deployment under one resolved configuration.
struct Deployment {
    config: Config,
    id: String,
}

impl Deployment {
    /// The migration's share of `percentComplete`: all of it, or the first
    /// half when the services roll after it (SPEC §4b).
    fn migration_percent(&self, percent: i32) -> i32 {
        match self.config.deploy {
            Some(_) => percent / 2,
            None => percent,
        }
    }
}

impl Invocation<'_> {
    async fn run(&self, defaults: &[(String, String)]) -> Result<Report, Failure> {
        let env = defaults.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let config = config::resolve(self.job.user_parameters(), env)
            .map_err(|e| Failure::Configuration(e.to_string()))?;
        let phase = match &self.job.data.continuation_token {
            Some(text) => Some(Phase::decode(text).map_err(|e| {
                Failure::Job(format!(
                    "{e}. Retry the stage: the attempt records let the new run pick up where this one is."
                ))
            })?),
            None => None,
        };
        let job = self.job.id.as_str();
        let deployment = |id: &str| Deployment {
            config: config.clone(),
            id: id.to_owned(),
        };
        match &phase {
            None => {
                let id = match &config.deployment {
                    Some(id) => id.clone(),
                    None => self.execution_id().await?,
                };
                let caller = Caller::First {
                    action_job: job,
                    job,
                };
                deployment(&id).start(self, caller, 0).await
            }
            Some(Phase::Resume {
                deployment: id,
                action_job,
                seq,
                unknown,
            }) => {
                let caller = Caller::Resume {
                    action_job,
                    job,
                    seq: *seq,
                };
                deployment(id).start(self, caller, *unknown).await
            }
            Some(Phase::Start {
                deployment: id,
                action_job,
                busy,
            }) => {
                let caller = Caller::First { action_job, job };
                deployment(id).start(self, caller, *busy).await
            }
            Some(Phase::Retry {
                deployment: id,
                action_job,
                after,
                busy,
            }) => {
                let caller = Caller::Retry {
                    action_job,
                    job,
                    after: *after,
                };
                deployment(id).start(self, caller, *busy).await
            }
            Some(Phase::Roll(roll)) => deployment(&roll.deployment).roll(self, roll.clone()).await,
            Some(Phase::Watch(watch)) => {
                let task_arn = watch.task_arn.clone();
                deployment(&watch.deployment)
                    .watch(self, watch.clone())
                    .await
                    .or_else(|failure| Ok(Report::failed(&failure, Some(&task_arn))))
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

    /// The value of a claim this invocation creates: its time (epoch
    /// seconds), then what is unique to it, so that a create whose answer
    /// was lost (the SDK's retry then finds the parameter existing) is
    /// still recognised as its own, and nobody else's is.
    fn claim_value(&self) -> String {
        let nonce = crate::clock::nonce();
        format!("{} {}:{nonce:016x}", epoch_secs(now()), self.job.id)
    }

    /// Sleeps a fully jittered pause of up to `cap`, never past what this
    /// invocation may wait ([`Invocation::wait_until`]): the backoff before
    /// a continuation token after AWS was busy or the lock was held.
    async fn pause(&self, wait_seconds: u64, cap: Duration) {
        let now = now();
        let budget = self
            .wait_until(wait_seconds, now)
            .duration_since(now)
            .unwrap_or_default()
            .min(cap);
        tokio::time::sleep(budget.mul_f64(crate::clock::jitter())).await;
    }

    /// Whether this invocation takes over claim `name`, which another
    /// invocation created with `value` and whose side effect cannot be
    /// seen: only once the claim is [`state::TAKEOVER_SECS`] old, and then
    /// by creating that generation's takeover claim `<name>-t<k>` (a taker
    /// that dies too is taken over by the next). Also the claim's age.
    async fn take_over(&self, name: &str, value: &str) -> Result<(bool, u64), Failure> {
        let age = epoch_secs(now()).saturating_sub(state::claimed_at(Some(value)));
        if age < state::TAKEOVER_SECS {
            return Ok((false, age));
        }
        let takeover = format!("{name}-t{}", age / state::TAKEOVER_SECS);
        let ssm = &self.clients.ssm;
        let mine = state::claim_mine(ssm, &takeover, &self.claim_value()).await?;
        Ok((mine.is_none(), age))
    }

    /// How long this invocation may keep waiting: `waitSeconds`, bounded by
    /// the Lambda deadline less a margin for the final calls and report.
    fn wait_until(&self, wait_seconds: u64, now: SystemTime) -> SystemTime {
        /// Time kept back from the Lambda deadline.
        const DEADLINE_MARGIN: Duration = Duration::from_secs(15);
        let budget = self
            .deadline
            .duration_since(now)
            .unwrap_or_default()
            .saturating_sub(DEADLINE_MARGIN);
        now + budget.min(Duration::from_secs(wait_seconds))
    }
}

/// An in-progress report that hands `phase` to the next invocation.
fn in_progress(
    phase: Phase,
    summary: String,
    percent: Option<i32>,
    task_arn: Option<String>,
) -> Result<Report, Failure> {
    Ok(Report::InProgress {
        token: phase.encode().map_err(Failure::Configuration)?,
        summary,
        percent,
        task_arn,
    })
}

/// Whether an error is worth another try in a later invocation (throttling,
/// 5xx, timeouts): then the action stays in progress.
fn retry_later(failure: &Failure) -> Option<String> {
    match failure {
        Failure::Unavailable { api, detail } => Some(format!("{api}: {detail}")),
        _ => None,
    }
}

pub(crate) use crate::clock::{epoch_secs, now};

pub(crate) fn rfc3339(t: SystemTime) -> String {
    rfc3339_secs(epoch_secs(t))
}

/// RFC 3339 for epoch seconds.
pub(crate) fn rfc3339_secs(secs: u64) -> String {
    DateTime::from_secs(secs as i64)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }
}
