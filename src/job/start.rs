//! Starting (or resuming) an attempt: plan over the attempt records, claim,
//! lock, reset, RunTask — each side effect claimed before it is done.

use std::time::Duration;

use tracing::{info, instrument, warn};

use super::plan::{self, Before, Caller, StartPlan, plan_start};
use super::register::Definition;
use super::{Deployment, Invocation, epoch_secs, in_progress, now, retry_later, rfc3339, text};
use crate::artifact;
use crate::config::Rerun;
use crate::failure::Failure;
use crate::lock::{self, Acquire, Holder};
use crate::outcome::{self, AfterStartFailure};
use crate::report::Report;
use crate::revision;
use crate::state::{self, Claim, FailureClass, State, Status, recent_after};
use crate::task::{self, Container, NotStarted, Placement, TaskView};
use crate::token::{Phase, Watch};

/// Tries whose outcome was unknown (RunTask) or that AWS was too busy for,
/// in continuations, before the action gives up (a claimed attempt stays
/// claimed: a stage retry resumes it with the same `clientToken`). Thirty:
/// throttling is backpressure — a fleet of 200 deployments at SSM's default
/// 3 writes a second queues for minutes (`make fleet`), and each
/// continuation is seconds apart — yet an outage still ends in a clear
/// `SystemUnavailable`.
const MAX_UNKNOWN: u32 = 30;
/// Claims lost to concurrent contenders before giving up for now.
const MAX_LOST_CLAIMS: usize = 10;

/// What an attempt must know of its deployment's earlier ones before its
/// RunTask (see [`Deployment::earlier`]).
enum Earlier {
    /// Nothing holds it back.
    Run,
    /// The task of the timed-out attempt before it is still stopping.
    Stopping { task_arn: String, attempt: u32 },
    /// An earlier attempt applied the migration: its record (as ECS's
    /// answer makes it), and that answer when it is news to the records.
    Applied(Box<(State, Option<TaskView>)>),
}

/// What a start needs besides the records: gathered in one round trip.
struct Facts {
    container: Container,
    definition: Definition,
    placement: Placement,
    lock_records: Vec<(u64, Holder)>,
    /// The attempt records listed; the latest is what the summary holds (it
    /// is never written back to an attempt older than it).
    records: Vec<State>,
}

impl Deployment {
    /// Starts, resumes or re-reports an attempt for `caller`. `unknown`
    /// counts unknown RunTask outcomes of the attempt being resumed.
    #[instrument(skip_all, fields(deployment = %self.id, job = caller.job()))]
    pub(super) async fn start(
        &self,
        inv: &Invocation<'_>,
        caller: Caller<'_>,
        unknown: u32,
    ) -> Result<Report, Failure> {
        let config = &self.config;
        let clients = inv.clients;
        let lock_records = async {
            match &config.lock {
                Some(name) => lock::list(&clients.ssm, name).await,
                None => Ok(Vec::new()),
            }
        };
        let described = async {
            let task_definition = match &config.task_definition_from_service {
                Some(service) => {
                    revision::service_task_definition(&clients.ecs, &config.cluster, service)
                        .await?
                }
                None => config.task_definition.clone(),
            };
            revision::describe(&clients.ecs, &task_definition).await
        };
        // Read now, in parallel; what is wrong with it matters only to an
        // attempt that is about to run (see `Definition::register`).
        let images = async {
            let data = &inv.job.data;
            let artifacts = &data.input_artifacts;
            let credentials = data.artifact_credentials.as_ref();
            Ok(artifact::resolve(&clients.s3, &config.images, artifacts, credentials).await)
        };
        // Upgraded from the single-record model: its record (seq 0) still
        // says whether this deployment already migrated. Read with the rest
        // by an action run's first job (a continuation has claimed a record).
        let legacy = async {
            match caller {
                Caller::First { .. } => state::read_summary(&clients.ssm, &config.state_parameter)
                    .await
                    .map(|old| old.filter(|r| r.seq == 0)),
                _ => Ok(None),
            }
        };
        let (described, placement, records, lock_records, images, legacy) = tokio::join!(
            described,
            task::placement(&clients.ecs, config),
            state::list(&clients.ssm, &config.state_parameter),
            lock_records,
            images,
            legacy,
        );
        let mut records = match records {
            Ok(records) => records,
            Err(failure) => return self.not_now(inv, caller, None, unknown, failure).await,
        };
        let read = (|| -> Result<_, Failure> {
            Ok((described?, placement?, lock_records?, images?, legacy?))
        })();
        let (described, placement, lock_records, images, legacy) = match read {
            Ok(facts) => facts,
            Err(failure) => {
                let report = self.not_now(inv, caller, None, unknown, failure).await;
                return match report {
                    Err(failure) => Err(self.gave_up(inv, caller, &records, failure).await),
                    busy => busy,
                };
            }
        };
        let container = match task::decisive_container(&described.definition, config) {
            Ok(container) => container,
            Err(failure) => return self.not_now(inv, caller, None, unknown, failure).await,
        };
        let definition = Definition {
            configured: match &config.task_definition_from_service {
                Some(_) => described
                    .definition
                    .task_definition_arn()
                    .unwrap_or_default()
                    .to_owned(),
                None => config.task_definition.clone(),
            },
            arn: described
                .definition
                .task_definition_arn()
                .unwrap_or(&config.task_definition)
                .to_owned(),
            image: described.image_of(&container.name).map(str::to_owned),
            register: images.and_then(|set| match set {
                Some(set) => {
                    let from = config.images.from_entry();
                    revision::plan(&described, &set, &container.name, from, &self.id)
                }
                None => Ok(None),
            }),
        };
        if records.is_empty() {
            records.extend(legacy);
        }
        for _ in 0..MAX_LOST_CLAIMS {
            let plan = plan_start(&records, &self.id, caller, config.rerun);
            info!(?plan, "start plan");
            let record = match plan {
                StartPlan::Report(record) => {
                    if record.status.is_final() && record.task_arn.is_none() {
                        // Ended without a task: a crash between its record
                        // and the release must not hold the lock for the
                        // 15 minutes of the takeover proof.
                        self.release_lock(inv, record.seq).await;
                    }
                    let report = self.report(&record, &container, caller)?;
                    let run = caller.action_job();
                    return self.succeeded(inv, run, &record, &container, report).await;
                }
                StartPlan::AlreadySucceeded(record) => {
                    let report = text::already_applied(&record, &container);
                    let run = caller.action_job();
                    return self.succeeded(inv, run, &record, &container, report).await;
                }
                StartPlan::Superseded { latest, unstarted } => {
                    let seq = unstarted.as_ref().map(|r| r.seq);
                    let done = self
                        .superseded(inv, caller, &latest, unstarted, &container)
                        .await;
                    return match done {
                        Err(busy @ Failure::Unavailable { .. }) => {
                            self.not_now(inv, caller, seq, unknown, busy).await
                        }
                        other => other,
                    };
                }
                StartPlan::Lost => {
                    return Err(Failure::Job(format!(
                        "The attempt record this continuation belongs to is gone from `{}/a/` (deleted by hand, or cleaned up after newer deployments). Retry the stage.",
                        config.state_parameter
                    )));
                }
                StartPlan::Confirm => {
                    let attempt = records.last().map_or(1, |top| top.attempt + 1);
                    return in_progress(
                        Phase::Start {
                            deployment: self.id.clone(),
                            action_job: caller.action_job().to_owned(),
                            busy: unknown,
                        },
                        format!("Starting attempt {attempt} of deployment {}", self.id),
                        None,
                        None,
                    );
                }
                StartPlan::Resume(record) => record,
                StartPlan::Claim {
                    seq,
                    attempt,
                    reruns,
                    tries,
                    rerun_of,
                } => {
                    // A bad artifact fails the action before anything is
                    // claimed, registered or run.
                    if let Err(failure) = &definition.register {
                        return self
                            .not_now(inv, caller, None, unknown, failure.clone())
                            .await;
                    }
                    let reruns = match rerun_of {
                        Some(failed) => {
                            let ssm = &clients.ssm;
                            match state::claimed(ssm, &config.state_parameter, Claim::Rerun, failed)
                                .await
                            {
                                Ok(rerun) => reruns + u32::from(rerun),
                                Err(failure) => {
                                    return self.not_now(inv, caller, None, unknown, failure).await;
                                }
                            }
                        }
                        None => reruns,
                    };
                    let claim = State {
                        reruns,
                        tries,
                        container: Some(container.name.clone()),
                        ..self.claim(caller, seq, attempt, &records)
                    };
                    let ssm = &clients.ssm;
                    match state::create(ssm, &config.state_parameter, &claim).await {
                        Ok(true) => {
                            info!(seq, attempt, "claimed the attempt");
                            state::clean_up(ssm, &config.state_parameter, &records).await;
                            claim
                        }
                        Ok(false) => {
                            info!(seq, "another invocation claimed this attempt first");
                            match state::list(ssm, &config.state_parameter).await {
                                Ok(now) => records = now,
                                Err(failure) => {
                                    return self.not_now(inv, caller, None, unknown, failure).await;
                                }
                            }
                            continue;
                        }
                        Err(failure) => {
                            return self.not_now(inv, caller, None, unknown, failure).await;
                        }
                    }
                }
            };
            let facts = Facts {
                container,
                definition,
                placement,
                lock_records,
                records,
            };
            // Boxed: the start future is deep (debug builds run out of stack).
            return Box::pin(self.go(inv, caller, record, facts, unknown)).await;
        }
        let lost = Failure::Unavailable {
            api: "ssm:PutParameter",
            detail: format!(
                "lost the claim of the next attempt to other invocations {MAX_LOST_CLAIMS} times in a row"
            ),
        };
        self.not_now(inv, caller, None, unknown, lost).await
    }

    /// Goes on with an unfinished attempt: watch its task, or take the
    /// lock, reset and call RunTask.
    async fn go(
        &self,
        inv: &Invocation<'_>,
        caller: Caller<'_>,
        record: State,
        facts: Facts,
        unknown: u32,
    ) -> Result<Report, Failure> {
        let config = &self.config;
        let clients = inv.clients;
        let Facts {
            container,
            definition,
            placement,
            lock_records,
            records,
        } = facts;
        let top = records.last();
        let resume = Phase::Resume {
            deployment: self.id.clone(),
            action_job: caller.action_job().to_owned(),
            seq: record.seq,
            unknown,
        };
        if let Some(task_arn) = &record.task_arn {
            info!(%task_arn, "resuming the watch of the running migration");
            let watch = self.watch_of(caller, &record, task_arn, &container);
            return self
                .watch(inv, watch)
                .await
                .or_else(|failure| Ok(Report::failed(&failure, Some(task_arn))));
        }

        let mut lock_since = None;
        if let Some(lock_name) = &config.lock {
            let me = Holder {
                deployment: self.id.clone(),
                state_parameter: config.state_parameter.clone(),
                seq: record.seq,
                attempt: record.attempt,
                cluster: config.cluster.clone(),
                acquired_at: epoch_secs(now()),
                refreshed_at: None,
                released: false,
            };
            match lock::acquire(clients, lock_name, &me, lock_records).await {
                Ok(Acquire::Held { since }) => lock_since = Some(since),
                Ok(Acquire::TakenOver) => {
                    return Err(Failure::Job(format!(
                        "Attempt {} of deployment {} lost lock {lock_name}: its start made no progress for {} and another deployment took the lock over, recording this attempt as failed. Nothing was started for it; retry the stage.",
                        record.attempt,
                        self.id,
                        outcome::human(lock::NO_PROGRESS_SECS)
                    )));
                }
                Ok(Acquire::Busy(holder)) => {
                    // Waiters poll less the longer they wait: a jittered
                    // pause of up to a quarter of the time waited (1–20 s)
                    // before the token, so that many deployments queued on
                    // one lock do not spend the account's SSM reads.
                    let waited =
                        epoch_secs(now()).saturating_sub(epoch_of(record.started_at.as_deref()));
                    let cap = Duration::from_secs((waited / 4).clamp(1, 20));
                    inv.pause(config.wait_seconds, cap).await;
                    let who = holder
                        .map(|h| format!("deployment {} (attempt {})", h.deployment, h.attempt))
                        .unwrap_or_else(|| "another deployment".into());
                    return in_progress(
                        resume,
                        format!(
                            "Waiting: {who} is migrating the same database (lock {lock_name}); attempt {} of this deployment starts when its task has stopped",
                            record.attempt
                        ),
                        None,
                        None,
                    );
                }
                Err(failure) => {
                    return self
                        .not_now(inv, caller, Some(record.seq), unknown, failure)
                        .await;
                }
            }
        }

        let earlier = match unknown {
            0 => self.earlier(inv, &records, &record).await,
            // An earlier RunTask of this attempt may have started its task:
            // the look was made before it.
            _ => Ok(Earlier::Run),
        };
        match earlier {
            Ok(Earlier::Run) => {}
            Ok(Earlier::Stopping { task_arn, attempt }) => {
                inv.pause(config.wait_seconds, Duration::from_secs(10))
                    .await;
                return in_progress(
                    resume,
                    format!(
                        "Waiting: task {} of attempt {attempt} was told to stop and is still stopping; attempt {} starts when it has stopped",
                        task::task_id(&task_arn),
                        record.attempt
                    ),
                    None,
                    None,
                );
            }
            Ok(Earlier::Applied(found)) => {
                let (done, view) = *found;
                return match self.applied(inv, &done, view, &record, top).await {
                    Ok(applied) => {
                        let report = text::already_applied(&done, &container);
                        let run = caller.action_job();
                        self.succeeded(inv, run, &applied, &container, report).await
                    }
                    Err(failure) => {
                        self.not_now(inv, caller, Some(record.seq), unknown, failure)
                            .await
                    }
                };
            }
            Err(failure) => {
                return self
                    .not_now(inv, caller, Some(record.seq), unknown, failure)
                    .await;
            }
        }

        let chosen = match self.revision(inv, &record, &definition, &records).await {
            Ok(chosen) => chosen,
            Err(failure) if retry_later(&failure).is_some() || unknown > 0 => {
                // Busy AWS — or an earlier RunTask of this attempt whose
                // outcome is unknown may have started a task: the attempt
                // and its lock stay as they are.
                return self
                    .not_now(inv, caller, Some(record.seq), unknown, failure)
                    .await;
            }
            Err(failure) => {
                // Nothing can run for this attempt (a bad artifact, a
                // revision ECS refused): record that, give the lock back.
                let failed = record.failed(
                    FailureClass::Permanent,
                    &failure.to_string(),
                    &rfc3339(now()),
                );
                self.record_end(inv, &failed, top).await;
                return Err(failure);
            }
        };
        let record = chosen.on(record);

        if config.stop_on_pipeline_stop && unknown == 0 {
            let stop = state::claim_name(&config.state_parameter, Claim::Stop, record.seq);
            match state::get(&clients.ssm, &stop).await {
                Ok(None) => {}
                Ok(Some(_)) => return self.stopped_before_start(inv, record, top).await,
                Err(failure) => {
                    return self
                        .not_now(inv, caller, Some(record.seq), unknown, failure)
                        .await;
                }
            }
        }
        if let Err(failure) = self.reset(inv).await {
            if retry_later(&failure).is_some() || unknown > 0 {
                return self
                    .not_now(inv, caller, Some(record.seq), unknown, failure)
                    .await;
            }
            // Denied (or refused): RunTask was never sent for this attempt,
            // so nothing can run; record that and give the lock back now
            // rather than leave it to the 15-minute takeover.
            let failed = record.failed(
                FailureClass::Permanent,
                &failure.to_string(),
                &rfc3339(now()),
            );
            self.record_end(inv, &failed, top).await;
            return Err(failure);
        }

        // Fenced: RunTask only soon after the lock showed progress (see
        // `lock`); past that, the next invocation refreshes it first.
        if let Some(since) = lock_since
            && epoch_secs(now()).saturating_sub(since) > lock::RUN_WITHIN_SECS
        {
            return in_progress(
                resume,
                format!(
                    "Starting attempt {} took long (AWS was slow); refreshing the lock before RunTask",
                    record.attempt
                ),
                None,
                None,
            );
        }
        let client_token = task::client_token(&config.state_parameter, &self.id, record.attempt);
        let ran = task::run(
            &clients.ecs,
            config,
            &chosen.run,
            &container,
            &placement,
            &self.id,
            &client_token,
        )
        .await;
        match ran {
            Ok(task::Started { task_arn, replayed }) => {
                info!(%task_arn, attempt = record.attempt, replayed, "migration task started");
                // Its time is now, not the claim's: an attempt may have
                // waited an hour for the lock, and a task ECS does not show
                // yet must not look an hour old (gone) to the watch.
                let started_at = if replayed {
                    record.started_at.clone()
                } else {
                    Some(rfc3339(now()))
                };
                let running = State {
                    status: Status::Running,
                    task_arn: Some(task_arn.clone()),
                    started_at,
                    ..record
                };
                if let Err(failure) = write_both(inv, &config.state_parameter, &running, top).await
                {
                    // The token carries the task; waiters find it by its tag.
                    warn!(%failure, "could not record the running task; watching it anyway");
                }
                let watch = self.watch_of(caller, &running, &task_arn, &container);
                if replayed {
                    // This attempt's task ran before and has stopped: record it now.
                    return self
                        .watch(inv, watch)
                        .await
                        .or_else(|failure| Ok(Report::failed(&failure, Some(&task_arn))));
                }
                in_progress(
                    Phase::Watch(watch),
                    format!(
                        "Migration task started (task {}, attempt {})",
                        task::task_id(&task_arn),
                        running.attempt
                    ),
                    Some(0),
                    Some(task_arn),
                )
            }
            Err(NotStarted::Unknown(detail)) if unknown + 1 < MAX_UNKNOWN => {
                warn!(
                    detail,
                    "RunTask's outcome is unknown; trying the same attempt again"
                );
                in_progress(
                    Phase::Resume {
                        deployment: self.id.clone(),
                        action_job: caller.action_job().to_owned(),
                        seq: record.seq,
                        unknown: unknown + 1,
                    },
                    format!(
                        "ECS did not answer RunTask for attempt {} ({detail}); trying the same attempt again with the same clientToken, which cannot start a second task",
                        record.attempt
                    ),
                    None,
                    None,
                )
            }
            Err(NotStarted::Unknown(detail)) => Err(Failure::Unavailable {
                api: "ecs:RunTask",
                detail: format!(
                    "ECS did not answer RunTask for attempt {} in {MAX_UNKNOWN} tries ({detail}). The attempt stays claimed: retrying the stage resumes it with the same clientToken",
                    record.attempt
                ),
            }),
            Err(NotStarted::Attempt { reason, transient }) => {
                self.start_failed(inv, record, &reason, transient, resume, top)
                    .await
            }
            Err(NotStarted::Fatal(failure)) => {
                // ECS rejected the request itself: no task exists for it.
                let failed = record.failed(
                    FailureClass::Permanent,
                    &failure.to_string(),
                    &rfc3339(now()),
                );
                self.record_end(inv, &failed, None).await;
                Err(failure)
            }
        }
    }

    /// What this deployment's earlier attempts say before `record` runs
    /// ([`plan::before_run`]), asking ECS how a timed-out one really ended:
    /// its task still stopping holds `record` back (without a lock nothing
    /// else would), and a task that exited 0 applied the migration.
    async fn earlier(
        &self,
        inv: &Invocation<'_>,
        records: &[State],
        record: &State,
    ) -> Result<Earlier, Failure> {
        let earlier = match plan::before_run(records, record, self.config.rerun) {
            Before::Run => return Ok(Earlier::Run),
            Before::Applied(done) => return Ok(Earlier::Applied(Box::new((done.clone(), None)))),
            Before::Unseen(earlier) => earlier,
        };
        let Some(arn) = earlier.task_arn.as_deref() else {
            return Ok(Earlier::Run);
        };
        let Some(view) = task::describe(&inv.clients.ecs, &self.config.cluster, arn).await? else {
            // Forgotten by ECS (stopped over an hour ago): nothing to learn.
            return Ok(Earlier::Run);
        };
        if view.last_status != "STOPPED" {
            return Ok(Earlier::Stopping {
                task_arn: view.arn,
                attempt: earlier.attempt,
            });
        }
        Ok(match lock::settled(earlier, Some(&view), &rfc3339(now())) {
            Some(done) if done.status == Status::Succeeded && self.config.rerun == Rerun::Once => {
                Earlier::Applied(Box::new((done, Some(view))))
            }
            _ => Earlier::Run,
        })
    }

    /// Ends `record` without running it: attempt `done` of this deployment
    /// applied the migration (its task exited 0 after it was told to stop;
    /// `view`, when that is news, records it too). Returns `record` ended.
    async fn applied(
        &self,
        inv: &Invocation<'_>,
        done: &State,
        view: Option<TaskView>,
        record: &State,
        top: Option<&State>,
    ) -> Result<State, Failure> {
        let config = &self.config;
        let applied = State {
            status: Status::Succeeded,
            task_arn: done.task_arn.clone(),
            exit_code: Some(0),
            failure_class: None,
            finished_at: done.finished_at.clone(),
            reason: Some(format!(
                "not run: attempt {} (task {}) had applied the migration",
                done.attempt,
                task::task_id(done.task_arn.as_deref().unwrap_or_default())
            )),
            ..record.clone()
        };
        // This attempt's end first: once it says succeeded, nothing of this
        // deployment runs again, whatever happens to the next write.
        write_both(inv, &config.state_parameter, &applied, top).await?;
        if let Some(view) = view
            && let Err(failure) =
                lock::record_stopped(inv.clients, &config.state_parameter, done.seq, &view).await
        {
            warn!(%failure, seq = done.seq, "could not record how the timed-out attempt ended");
        }
        self.release_lock(inv, applied.seq).await;
        Ok(applied)
    }

    /// The pipeline execution was stopped while this attempt had not
    /// recorded a task: nothing new is started. A RunTask of an earlier
    /// invocation may still have started one (its answer died with it), so
    /// that task, if ECS lists it, is stopped and recorded as the attempt's
    /// (the lock follows it); if none is listed, the attempt is recorded
    /// failed and the lock left to the proof-based takeover (SPEC §4
    /// step 3), never released on a guess.
    async fn stopped_before_start(
        &self,
        inv: &Invocation<'_>,
        record: State,
        top: Option<&State>,
    ) -> Result<Report, Failure> {
        let config = &self.config;
        let ecs = &inv.clients.ecs;
        let token = task::client_token(&config.state_parameter, &self.id, record.attempt);
        let since = epoch_of(record.started_at.as_deref()).saturating_sub(60) as f64;
        let why = format!(
            "the pipeline execution was stopped before attempt {} started its task",
            record.attempt
        );
        if let Some(found) = task::find_started(ecs, &config.cluster, &token, since).await? {
            let reason = format!("migrate-once: {why}");
            task::stop(ecs, &config.cluster, &found.arn, &reason).await?;
            let running = State {
                status: Status::Running,
                task_arn: Some(found.arn.clone()),
                ..record
            };
            write_both(inv, &config.state_parameter, &running, top).await?;
            return Err(Failure::Job(format!(
                "Deployment {}: the pipeline execution was stopped (stopOnPipelineStop); task {} of attempt {} was stopped.",
                self.id,
                task::task_id(&found.arn),
                running.attempt
            )));
        }
        let failed = record.failed(FailureClass::Permanent, &why, &rfc3339(now()));
        write_both(inv, &config.state_parameter, &failed, top).await?;
        Err(Failure::Job(format!(
            "Deployment {}: {why} (stopOnPipelineStop); nothing was run. Retry the stage to migrate.",
            self.id
        )))
    }

    /// Sets every `resetParameters` entry to `"0"`: done, and seen done,
    /// before this attempt's RunTask is sent, by whichever invocation sends
    /// it — so a reset whose writes failed or whose writer crashed is
    /// finished by whoever goes on with the attempt. Written even when a
    /// flag reads `"0"` already: that may be an older deployment's reset
    /// that an instance has claimed (`migrate-once claim` tells resets
    /// apart by version), and this deployment's instances need their own.
    /// So the flags are written once per attempt, twice only when an
    /// invocation died between them and RunTask — before the migration
    /// succeeded, so before any instance of this deployment ran. Once the
    /// attempt's task is recorded, nobody comes here for it again.
    async fn reset(&self, inv: &Invocation<'_>) -> Result<(), Failure> {
        let ssm = &inv.clients.ssm;
        for name in &self.config.reset_parameters {
            state::put(ssm, name, "0", true).await?;
        }
        Ok(())
    }

    /// A start attempt failed for certain (`failures[]`, or the task stopped
    /// before the migration ran): record it, give the lock back, then retry
    /// or give up. `retry_same` is the phase to hand back when recording
    /// itself meets a transient error.
    pub(super) async fn start_failed(
        &self,
        inv: &Invocation<'_>,
        record: State,
        reason: &str,
        transient: bool,
        retry_same: Phase,
        current: Option<&State>,
    ) -> Result<Report, Failure> {
        let class = if transient {
            FailureClass::Transient
        } else {
            FailureClass::Permanent
        };
        let failed = record.failed(class, reason, &rfc3339(now()));
        if let Err(failure) = write_both(inv, &self.config.state_parameter, &failed, current).await
        {
            if let Some(why) = retry_later(&failure) {
                return in_progress(
                    retry_same,
                    format!(
                        "Attempt {} could not start; recording that ({why}), trying again shortly",
                        record.attempt
                    ),
                    None,
                    record.task_arn.clone(),
                );
            }
            return Err(failure);
        }
        self.release_lock(inv, record.seq).await;
        let max = self.config.max_start_attempts;
        let tries = record.tries.max(1);
        match outcome::after_start_failure(transient, tries, max) {
            AfterStartFailure::Retry => {
                warn!(reason, tries, "start attempt failed; retrying");
                self.retry_after(
                    &record,
                    format!(
                        "Attempt {} could not start ({reason}); retrying ({tries} of {max} start attempts used)",
                        record.attempt
                    ),
                )
            }
            AfterStartFailure::Exhausted => Err(Failure::Unavailable {
                api: "ecs:RunTask",
                detail: format!(
                    "the migration task could not start in {tries} attempts (maxStartAttempts {max}); last reason: {reason}"
                ),
            }),
            AfterStartFailure::Permanent => Err(Failure::Job(format!(
                "The migration task could not start (attempt {}, deployment {}): {reason}. \
                 Check the image, secrets and network of the task definition, then retry the stage.",
                record.attempt, self.id
            ))),
        }
    }

    /// Hands the next job the start of the attempt after `failed`.
    fn retry_after(&self, failed: &State, summary: String) -> Result<Report, Failure> {
        in_progress(
            Phase::Retry {
                deployment: self.id.clone(),
                action_job: failed.action_job.clone(),
                after: failed.seq,
                busy: 0,
            },
            summary,
            None,
            failed.task_arn.clone(),
        )
    }

    /// A repeated or late delivery: what the attempt record says, as a
    /// report. Unfinished attempts hand back a token to go on with them.
    fn report(
        &self,
        record: &State,
        container: &Container,
        caller: Caller<'_>,
    ) -> Result<Report, Failure> {
        match (&record.status, &record.task_arn) {
            (Status::Running, Some(task_arn)) => in_progress(
                Phase::Watch(self.watch_of(caller, record, task_arn, container)),
                format!(
                    "Migration running (task {}, attempt {})",
                    task::task_id(task_arn),
                    record.attempt
                ),
                None,
                Some(task_arn.clone()),
            ),
            // The job that recorded a transient start failure, delivered
            // again because its report did not get through: the same report
            // (the next job starts the next attempt).
            (Status::Failed, _)
                if record.failed_transiently()
                    && outcome::after_start_failure(
                        true,
                        record.tries.max(1),
                        self.config.max_start_attempts,
                    ) == AfterStartFailure::Retry
                    && record.job_id == caller.job() =>
            {
                let reason = record.reason.as_deref().unwrap_or("transient");
                let summary = format!(
                    "Attempt {} could not start ({reason}); retrying",
                    record.attempt
                );
                self.retry_after(record, summary)
            }
            (Status::Starting | Status::Running, _) => in_progress(
                Phase::Resume {
                    deployment: self.id.clone(),
                    action_job: record.action_job.clone(),
                    seq: record.seq,
                    unknown: 0,
                },
                format!(
                    "Attempt {} of deployment {} is starting",
                    record.attempt, self.id
                ),
                None,
                None,
            ),
            _ => text::replay(record, container),
        }
    }

    /// Another deployment started on the state parameter after this one.
    async fn superseded(
        &self,
        inv: &Invocation<'_>,
        caller: Caller<'_>,
        latest: &str,
        unstarted: Option<State>,
        container: &Container,
    ) -> Result<Report, Failure> {
        // A claim whose RunTask outcome was unknown may have a task after
        // all: then that task is this attempt's, recorded and watched to its
        // end like any other (the lock follows it). Nothing new starts.
        let started = match &unstarted {
            Some(record) => {
                let token =
                    task::client_token(&self.config.state_parameter, &self.id, record.attempt);
                let since = epoch_of(record.started_at.as_deref()).saturating_sub(60) as f64;
                task::find_started(&inv.clients.ecs, &self.config.cluster, &token, since).await?
            }
            None => None,
        };
        if let (Some(record), Some(found)) = (&unstarted, &started) {
            let running = State {
                status: Status::Running,
                task_arn: Some(found.arn.clone()),
                ..record.clone()
            };
            let sp = &self.config.state_parameter;
            if let Err(failure) = state::write(&inv.clients.ssm, sp, &running).await {
                warn!(%failure, "could not record the task found for the attempt");
            }
            let watch = self.watch_of(caller, &running, &found.arn, container);
            return self
                .watch(inv, watch)
                .await
                .or_else(|failure| Ok(Report::failed(&failure, Some(&found.arn))));
        }
        if let Some(record) = unstarted {
            let failed = record.failed(
                FailureClass::Permanent,
                &format!("superseded by deployment {latest} before its task started"),
                &rfc3339(now()),
            );
            let ssm = &inv.clients.ssm;
            if let Err(failure) = state::write(ssm, &self.config.state_parameter, &failed).await {
                warn!(%failure, "could not mark the superseded attempt failed");
            }
        }
        Err(Failure::Job(format!(
            "Deployment {} is superseded: deployment {latest} was started on state parameter `{}` after it, \
             and only the latest deployment migrates. Nothing was run for {}.",
            self.id, self.config.state_parameter, self.id
        )))
    }

    /// An error before RunTask was answered: transient ones keep the action
    /// in progress (the attempt, if claimed, stays claimed); others fail it.
    /// `claimed` is the attempt claimed so far, if any.
    async fn not_now(
        &self,
        inv: &Invocation<'_>,
        caller: Caller<'_>,
        claimed: Option<u64>,
        unknown: u32,
        failure: Failure,
    ) -> Result<Report, Failure> {
        let Some(why) = retry_later(&failure) else {
            return Err(failure);
        };
        if unknown + 1 >= MAX_UNKNOWN {
            return Err(failure);
        }
        // Backpressure: a jittered pause growing with the busy answers in a
        // row (1 s, 2 s, 4 s … up to 32 s), within what this invocation may
        // wait, so that a throttled fleet does not come back all at once.
        let cap = Duration::from_secs(1 << unknown.min(5));
        inv.pause(self.config.wait_seconds, cap).await;
        let unknown = unknown + 1;
        // Never a final report before a claim: a later copy of this job
        // must find the action run's claim, never start an attempt itself.
        let deployment = self.id.clone();
        let action_job = caller.action_job().to_owned();
        let phase = match (claimed, caller) {
            (Some(seq), _) | (None, Caller::Resume { seq, .. }) => Phase::Resume {
                deployment,
                action_job,
                seq,
                unknown,
            },
            (None, Caller::Retry { after, .. }) => Phase::Retry {
                deployment,
                action_job,
                after,
                busy: unknown,
            },
            (None, Caller::First { .. }) => Phase::Start {
                deployment,
                action_job,
                busy: unknown,
            },
        };
        in_progress(
            phase,
            format!("AWS is busy ({why}); trying again shortly"),
            None,
            None,
        )
    }

    /// The claim of attempt `attempt` as record `seq` by `caller`, after
    /// `records`.
    fn claim(&self, caller: Caller<'_>, seq: u64, attempt: u32, records: &[State]) -> State {
        State {
            deployment: self.id.clone(),
            status: Status::Starting,
            attempt,
            task_arn: None,
            exit_code: None,
            failure_class: None,
            reruns: 0,
            started_at: Some(rfc3339(now())),
            finished_at: None,
            seq,
            job_id: caller.job().to_owned(),
            action_job: caller.action_job().to_owned(),
            tries: 1,
            container: None,
            reason: None,
            recent: recent_after(records.last(), &self.id),
            task_definition: None,
            image: None,
            image_set: None,
        }
    }

    /// The first job of an action run failing for good before it claimed
    /// anything (a denied or exhausted read): its attempt is claimed as
    /// failed, so that a late copy of the job (after the IAM fix, hours
    /// later, after newer deployments) finds it and only reports it, and a
    /// newer deployment's claim remembers this one as superseded. Best
    /// effort, returns `failure`.
    async fn gave_up(
        &self,
        inv: &Invocation<'_>,
        caller: Caller<'_>,
        records: &[State],
        failure: Failure,
    ) -> Failure {
        let Caller::First { .. } = caller else {
            return failure;
        };
        let StartPlan::Claim { seq, attempt, .. } =
            plan_start(records, &self.id, caller, self.config.rerun)
        else {
            return failure;
        };
        let failed = self.claim(caller, seq, attempt, records).failed(
            FailureClass::Permanent,
            &failure.to_string(),
            &rfc3339(now()),
        );
        if let Err(e) = state::create(&inv.clients.ssm, &self.config.state_parameter, &failed).await
        {
            warn!(error = %e, "could not record the failure before the claim");
        }
        failure
    }

    /// The watch of an attempt's task.
    pub(super) fn watch_of(
        &self,
        caller: Caller<'_>,
        record: &State,
        task_arn: &str,
        container: &Container,
    ) -> Watch {
        Watch {
            deployment: self.id.clone(),
            action_job: caller.action_job().to_owned(),
            seq: record.seq,
            attempt: record.attempt,
            task_arn: task_arn.to_owned(),
            container: record
                .container
                .clone()
                .unwrap_or_else(|| container.name.clone()),
            logs: container.logs.clone(),
            since: epoch_of(record.started_at.as_deref()),
        }
    }

    /// Writes a final record (and the summary) and gives the lock back.
    /// Failures are logged: the lock follows the task, so a contender takes
    /// over once the task has stopped and records the outcome itself.
    pub(super) async fn record_end(
        &self,
        inv: &Invocation<'_>,
        record: &State,
        current: Option<&State>,
    ) {
        if let Err(failure) = write_both(inv, &self.config.state_parameter, record, current).await {
            warn!(%failure, "could not record the outcome");
        }
        self.release_lock(inv, record.seq).await;
    }

    /// Releases this attempt's lock records; a failure is logged.
    pub(super) async fn release_lock(&self, inv: &Invocation<'_>, seq: u64) {
        if let Some(lock_name) = &self.config.lock
            && let Err(failure) = lock::release(
                &inv.clients.ssm,
                lock_name,
                &self.config.state_parameter,
                seq,
            )
            .await
        {
            warn!(%failure, lock = %lock_name, "could not release the lock");
        }
    }
}

/// Epoch seconds of an RFC 3339 time we wrote; now when absent.
fn epoch_of(time: Option<&str>) -> u64 {
    state::epoch_of(time).unwrap_or_else(|| epoch_secs(now()))
}

/// Writes the attempt record and, at the same time, the summary (unless
/// `current`, what the summary holds, is a newer attempt). The record is
/// the truth; the summary is its copy for people and tools, repaired by
/// the next write if only one of the two got through.
pub(super) async fn write_both(
    inv: &Invocation<'_>,
    state_parameter: &str,
    record: &State,
    current: Option<&State>,
) -> Result<(), Failure> {
    let ssm = &inv.clients.ssm;
    tokio::try_join!(
        state::write(ssm, state_parameter, record),
        state::write_summary(ssm, state_parameter, record, current)
    )
    .map(|_| ())
}
