//! EventBridge reruns and stops (SPEC §6).
//!
//! The same function, invoked by EventBridge rules, reruns a stage whose
//! migration failed for a transient reason, reruns a stage on an operator's
//! request, and stops the migration task when the pipeline execution is
//! stopped. These paths never write an attempt record: a stop only calls
//! StopTask, and the outcome is recorded from ECS's facts by whoever sees
//! the task stopped.
//!
//! # Claimed, then done
//!
//! EventBridge delivers at least once, and Lambda delivers an event again
//! when an invocation fails. Each side effect is claimed with an atomic
//! create before it is made, keyed by what it is about:
//! `<stateParameter>/rerun/<seq>` (the automatic rerun after attempt `seq`
//! failed), `<stateParameter>/stop/<seq>` (the stop of its task) and
//! `<stateParameter>/request/<event>` (one operator's request, by its
//! EventBridge event id). The claim's value ([`ClaimValue`]) says how far
//! its action got: *taken* by the delivery that created it, *done* once the
//! action was carried out (or CodePipeline declined it), or *unfinished*
//! when the action failed — the delivery then ends in an error, and Lambda's
//! redelivery of the event finishes it. A delivery that finds the claim
//! ([`turn`]) does nothing when it is done or freshly taken by a copy of
//! the event still at work, and acts when it is unfinished or was taken
//! longer ago than any invocation lives (its delivery died). Acting again
//! is safe: RetryStageExecution of a stage that is being retried is
//! declined by CodePipeline, and StopTask is idempotent; what a done mark
//! prevents is a second rerun of a stage that failed again meanwhile. A
//! stop is never marked done (StopTask twice is harmless): one write fewer.
//!
//! The action's configuration is not in these events: it is found with
//! GetPipeline, as the Invoke action of the stage whose `FunctionName` is
//! this function.

use aws_sdk_codepipeline::types::StageRetryMode;
use tracing::{info, warn};

use crate::Clients;
use crate::clock::{epoch_secs, now};
use crate::config::{self, Config};
use crate::event::{PipelineEvent, RerunRequest};
use crate::failure::Failure;
use crate::lock;
use crate::state::{self, Claim, FailureClass, State, Status};
use crate::task;

/// The variable CodePipeline resolves to the execution id.
const EXECUTION_ID_VARIABLE: &str = "#{codepipeline.PipelineExecutionId}";

/// The action of a pipeline that runs this function, and its configuration.
#[derive(Debug)]
struct Action {
    stage: String,
    name: String,
    config: Config,
    /// The deployment id the action uses for `execution_id`.
    deployment: String,
}

/// Who is asking: the clients, the config defaults, and our own name.
pub struct Rerunner<'a> {
    pub clients: &'a Clients,
    pub defaults: &'a [(String, String)],
    /// `AWS_LAMBDA_FUNCTION_NAME`: actions pointing elsewhere are not ours.
    pub function_name: &'a str,
}

impl Rerunner<'_> {
    /// An action failed: rerun its stage if the failure was transient and
    /// reruns are left. Returns what was done, for the log and the result.
    pub async fn action_failed(&self, event: &PipelineEvent) -> Result<String, Failure> {
        let actions = self
            .actions(&event.pipeline, &event.execution_id, event.stage.as_deref())
            .await?;
        let Some(action) = actions
            .into_iter()
            .find(|a| event.action.as_deref().is_none_or(|name| name == a.name))
        else {
            return Ok(nothing(format!(
                "not rerunning: action {} of stage {} in pipeline {} does not run this function ({})",
                event.action.as_deref().unwrap_or("(unnamed)"),
                event.stage.as_deref().unwrap_or("(any)"),
                event.pipeline,
                self.function_name
            )));
        };
        let ssm = &self.clients.ssm;
        let sp = &action.config.state_parameter;
        let records = state::list(ssm, sp).await?;
        match rerun_decision(
            records.last(),
            &action.deployment,
            action.config.max_auto_reruns,
        ) {
            Err(why) => Ok(nothing(format!(
                "not rerunning stage {}: {why}",
                action.stage
            ))),
            Ok(record) => {
                // Claim the rerun of this failed attempt before asking for
                // it: every other delivery of the event (and any other event
                // about the same failure) finds it claimed, and makes it
                // only if this delivery could not (module docs).
                let name = state::claim_name(sp, Claim::Rerun, record.seq);
                let claim = match self.take(&name, &event.event_id).await? {
                    Ok(claim) => claim,
                    Err(found) => {
                        return Ok(nothing(format!(
                            "not rerunning stage {}: attempt {} of deployment {} {}",
                            action.stage,
                            record.attempt,
                            record.deployment,
                            found.phrase("was already rerun", "is being rerun")
                        )));
                    }
                };
                let done = self
                    .retry_stage(&event.pipeline, &action.stage, &event.execution_id)
                    .await;
                self.settle(&name, claim, &done, true).await;
                done.map(|done| {
                    format!(
                        "{done} (automatic rerun {} of {})",
                        record.reruns + 1,
                        action.config.max_auto_reruns
                    )
                })
            }
        }
    }

    /// An operator asked for a rerun of a stage: rerun it if it failed.
    ///
    /// Only a stage that runs this function is rerun: the request names a
    /// stage by hand, and a typo must not retry some other stage.
    pub async fn rerun_requested(&self, request: &RerunRequest) -> Result<String, Failure> {
        let executions = self
            .clients
            .pipeline
            .list_pipeline_executions()
            .pipeline_name(&request.pipeline)
            .max_results(20)
            .send()
            .await
            .map_err(|e| Failure::from_sdk("codepipeline:ListPipelineExecutions", e))?;
        let summaries = executions.pipeline_execution_summaries();
        let execution = match &request.execution_id {
            Some(id) => summaries
                .iter()
                .find(|s| s.pipeline_execution_id() == Some(id)),
            None => summaries.first(),
        };
        let Some(execution) = execution else {
            return Ok(nothing(match &request.execution_id {
                Some(id) => format!(
                    "nothing to rerun: execution {id} is not among the 20 latest of pipeline {}",
                    request.pipeline
                ),
                None => format!(
                    "nothing to rerun: pipeline {} has no executions",
                    request.pipeline
                ),
            }));
        };
        let execution_id = execution
            .pipeline_execution_id()
            .unwrap_or_default()
            .to_owned();
        let status = execution.status().map(|s| s.as_str()).unwrap_or("Unknown");
        if status != "Failed" {
            return Ok(nothing(format!(
                "nothing to rerun: execution {execution_id} of pipeline {} is {status}, not Failed",
                request.pipeline
            )));
        }
        let actions = self
            .actions(&request.pipeline, &execution_id, Some(&request.stage))
            .await?;
        if actions.is_empty() {
            return Ok(nothing(format!(
                "not rerunning: stage {} of pipeline {} has no action that runs this function ({})",
                request.stage, request.pipeline, self.function_name
            )));
        };
        // One request, one rerun, however often it is delivered: claimed by
        // its event id (an operator who wants another rerun sends another
        // request), under a name of its own, so that an operator's rerun
        // never uses up an automatic one.
        let sp = &actions[0].config.state_parameter;
        let name = request_claim_name(sp, &request.event_id);
        let claim = match self.take(&name, &request.event_id).await? {
            Ok(claim) => claim,
            Err(found) => {
                return Ok(nothing(format!(
                    "nothing to rerun: this request (event {}) {} for stage {} of pipeline {}",
                    request.event_id,
                    found.phrase(
                        "was already acted on",
                        "is already being acted on by another delivery"
                    ),
                    request.stage,
                    request.pipeline
                )));
            }
        };
        let done = self
            .retry_stage(&request.pipeline, &request.stage, &execution_id)
            .await;
        self.settle(&name, claim, &done, true).await;
        self.forget_old_requests(sp).await;
        done
    }

    /// The pipeline execution was stopped: stop its migration task if the
    /// action asks for that (`stopOnPipelineStop`).
    pub async fn pipeline_stopped(&self, event: &PipelineEvent) -> Result<String, Failure> {
        let mut done = Vec::new();
        for action in self
            .actions(&event.pipeline, &event.execution_id, None)
            .await?
        {
            let config = &action.config;
            if !config.stop_on_pipeline_stop {
                done.push(format!(
                    "stage {}: stopOnPipelineStop is false; the migration runs on",
                    action.stage
                ));
                continue;
            }
            let ssm = &self.clients.ssm;
            let sp = &config.state_parameter;
            let records = state::list(ssm, sp).await?;
            let latest = records.iter().rev().find(|r| {
                r.deployment == action.deployment
                    && matches!(r.status, Status::Starting | Status::Running)
            });
            let Some(latest) = latest else {
                done.push(format!(
                    "stage {}: no migration of execution {} is running",
                    action.stage, event.execution_id
                ));
                continue;
            };
            let seq = latest.seq;
            let name = state::claim_name(sp, Claim::Stop, seq);
            let Some(task_arn) = latest.task_arn.clone() else {
                // Claimed, its task not started (waiting for the lock, say):
                // the stop claim is what its start looks for before RunTask.
                let _already = self.take(&name, &event.event_id).await?;
                done.push(format!(
                    "stage {}: attempt {} of execution {} had not started its task; it will not",
                    action.stage, latest.attempt, event.execution_id
                ));
                continue;
            };
            let reason = format!(
                "migrate-once: pipeline execution {} was stopped",
                event.execution_id
            );
            let stopping = match self.take(&name, &event.event_id).await? {
                Ok(claim) => {
                    let stopped =
                        task::stop(&self.clients.ecs, &config.cluster, &task_arn, &reason).await;
                    self.settle(&name, claim, &stopped, false).await;
                    stopped?;
                    "stopped"
                }
                Err(_) => "is being stopped: task",
            };
            // Nobody else will: the action was abandoned with the pipeline.
            // Its outcome comes from ECS's facts once the task has stopped
            // (as a lock contender records a stale holder's), never from
            // intent — the task may have exited 0 just before. Until then
            // this delivery fails, so that Lambda delivers it again.
            let seen = task::describe(&self.clients.ecs, &config.cluster, &task_arn).await?;
            match seen.filter(|t| t.last_status == "STOPPED") {
                Some(view) => {
                    lock::record_stopped(self.clients, sp, seq, &view).await?;
                    if let Some(lock_name) = &config.lock {
                        lock::release(ssm, lock_name, sp, seq).await?;
                    }
                    done.push(format!(
                        "stage {}: {stopping} task {}; it has stopped and its outcome is recorded",
                        action.stage,
                        task::task_id(&task_arn)
                    ));
                }
                None => {
                    return Err(Failure::Unavailable {
                        api: "ecs:DescribeTasks",
                        detail: format!(
                            "task {} of stopped execution {} has not stopped yet (it runs on for its stopTimeout); its outcome is recorded when this event is delivered again",
                            task::task_id(&task_arn),
                            event.execution_id
                        ),
                    });
                }
            }
        }
        let summary = if done.is_empty() {
            format!(
                "pipeline {} has no action that runs this function ({})",
                event.pipeline, self.function_name
            )
        } else {
            done.join("; ")
        };
        info!(pipeline = %event.pipeline, execution = %event.execution_id, "{summary}");
        Ok(summary)
    }

    /// Claims the side effect `name` for this delivery of event `event_id`:
    /// `Ok(claim)` when this delivery is to make it (it created the claim —
    /// also when the create's answer was lost — or found it unfinished, or
    /// abandoned), otherwise what the claim says.
    async fn take(&self, name: &str, event_id: &str) -> Result<Result<ClaimValue, Found>, Failure> {
        let ssm = &self.clients.ssm;
        let mine = ClaimValue {
            at: epoch_secs(now()),
            event: event_id.replace(' ', "_"),
            nonce: format!("{:016x}", crate::clock::nonce()),
            mark: Mark::Taken,
        };
        let text = mine.to_string();
        if state::put(ssm, name, &text, false).await? {
            return Ok(Ok(mine));
        }
        let found = state::get(ssm, name).await?;
        if found.as_deref() == Some(text.as_str()) {
            return Ok(Ok(mine));
        }
        let found = found.as_deref().and_then(ClaimValue::parse);
        Ok(match turn(found.as_ref(), mine.at) {
            Turn::Act => {
                warn!(
                    claim = name,
                    "finishing a claimed action its own delivery did not finish"
                );
                Ok(mine)
            }
            Turn::Leave(found) => Err(found),
        })
    }

    /// Records how far the claimed action got: unfinished after an error
    /// (the delivery fails, and Lambda's redelivery finishes it), done after
    /// it was carried out when `mark_done`. Best effort: a claim left taken
    /// is finished by a delivery that finds it abandoned.
    async fn settle<T>(
        &self,
        name: &str,
        claim: ClaimValue,
        result: &Result<T, Failure>,
        mark_done: bool,
    ) {
        let mark = match result {
            Ok(_) if !mark_done => return,
            Ok(_) => Mark::Done,
            Err(_) => Mark::Unfinished,
        };
        let value = ClaimValue { mark, ..claim }.to_string();
        if let Err(failure) = state::put(&self.clients.ssm, name, &value, true).await {
            warn!(claim = name, %failure, "could not record how far the claimed action got");
        }
    }

    /// Deletes the request claims no delivery can arrive for any more.
    /// Best effort: a few small parameters are no reason to fail a rerun.
    async fn forget_old_requests(&self, state_parameter: &str) {
        let ssm = &self.clients.ssm;
        let cutoff = epoch_secs(now()).saturating_sub(REQUEST_CLAIM_TTL_SECS);
        match state::children(ssm, &format!("{state_parameter}/request")).await {
            Ok(claims) => {
                let old: Vec<String> = claims
                    .into_iter()
                    .filter(|(_, value)| state::claimed_at(Some(value)) < cutoff)
                    .map(|(name, _)| name)
                    .collect();
                state::delete(ssm, &old).await;
            }
            Err(failure) => warn!(%failure, "could not list old rerun requests"),
        }
    }

    /// RetryStageExecution with FAILED_ACTIONS. The refusals that mean "not
    /// now" (not the latest execution, stage not retryable, already being
    /// retried) are logged and answered, never retried: no retry storm.
    async fn retry_stage(
        &self,
        pipeline: &str,
        stage: &str,
        execution_id: &str,
    ) -> Result<String, Failure> {
        let result = self
            .clients
            .pipeline
            .retry_stage_execution()
            .pipeline_name(pipeline)
            .stage_name(stage)
            .pipeline_execution_id(execution_id)
            .retry_mode(StageRetryMode::FailedActions)
            .send()
            .await;
        match result {
            Ok(_) => {
                let done = format!(
                    "reran the failed actions of stage {stage} of {pipeline} (execution {execution_id})"
                );
                info!("{done}");
                Ok(done)
            }
            Err(e) => {
                let refusal = e.as_service_error().and_then(|s| {
                    if s.is_not_latest_pipeline_execution_exception() {
                        Some("it is not the latest execution")
                    } else if s.is_stage_not_retryable_exception() {
                        Some("the stage is not retryable (it did not fail, or is still running)")
                    } else if s.is_conflict_exception() {
                        Some("a retry is already in progress")
                    } else {
                        None
                    }
                });
                match refusal {
                    Some(why) => Ok(nothing(format!(
                        "CodePipeline declined to rerun stage {stage} of {pipeline} (execution {execution_id}): {why}"
                    ))),
                    None => Err(Failure::from_sdk("codepipeline:RetryStageExecution", e)),
                }
            }
        }
    }

    /// The Invoke actions of `pipeline` (in `stage`, if given) that run this
    /// function, with their configuration for `execution_id`.
    async fn actions(
        &self,
        pipeline: &str,
        execution_id: &str,
        stage: Option<&str>,
    ) -> Result<Vec<Action>, Failure> {
        let out = self
            .clients
            .pipeline
            .get_pipeline()
            .name(pipeline)
            .send()
            .await
            .map_err(|e| Failure::from_sdk("codepipeline:GetPipeline", e))?;
        let mut actions = Vec::new();
        let stages = out.pipeline().map(|p| p.stages()).unwrap_or_default();
        for declared in stages
            .iter()
            .filter(|s| stage.is_none_or(|name| name == s.name()))
        {
            for action in declared.actions() {
                let is_lambda = action
                    .action_type_id()
                    .is_some_and(|t| t.category().as_str() == "Invoke" && t.provider() == "Lambda");
                let configuration = action.configuration().cloned().unwrap_or_default();
                let targets_us = configuration
                    .get("FunctionName")
                    .is_some_and(|f| targets_function(f, self.function_name));
                if !(is_lambda && targets_us) {
                    continue;
                }
                let user_parameters = configuration
                    .get("UserParameters")
                    .map(|p| p.replace(EXECUTION_ID_VARIABLE, execution_id));
                let env = self.defaults.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let config = config::resolve(user_parameters.as_deref(), env).map_err(|e| {
                    Failure::Configuration(format!(
                        "action {} of stage {} in pipeline {pipeline}: {e}",
                        action.name(),
                        declared.name()
                    ))
                })?;
                actions.push(Action {
                    stage: declared.name().to_owned(),
                    name: action.name().to_owned(),
                    deployment: config
                        .deployment
                        .clone()
                        .unwrap_or_else(|| execution_id.to_owned()),
                    config,
                });
            }
        }
        Ok(actions)
    }
}

/// Logs and returns a "did nothing, and why".
fn nothing(why: String) -> String {
    info!("{why}");
    why
}

/// Whether an action's `FunctionName` (name, `name:alias` or ARN) is us.
fn targets_function(configured: &str, function_name: &str) -> bool {
    let name = configured
        .split_once(":function:")
        .map(|(_, rest)| rest)
        .unwrap_or(configured);
    let name = name.split(':').next().unwrap_or(name);
    name == function_name
}

/// How long a request claim is kept: EventBridge and Lambda deliver an
/// event again for up to 6 hours.
const REQUEST_CLAIM_TTL_SECS: u64 = 7 * 3600;

/// `<stateParameter>/request/<key>`: the claim of one operator request,
/// keyed by a digest of its event id.
fn request_claim_name(state_parameter: &str, event_id: &str) -> String {
    format!(
        "{state_parameter}/request/{}",
        state::deployment_key(event_id)
    )
}

/// How far a claimed action got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// In the hands of the delivery that claimed it.
    Taken,
    /// Carried out (or declined for good).
    Done,
    /// Its delivery failed; the next delivery makes it.
    Unfinished,
}

/// The value of a claim: `<epoch secs> <event id> <nonce>[ done|
/// unfinished]`. It starts with its time, as every claim value does
/// ([`state::claimed_at`]); the nonce makes it this delivery's own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimValue {
    at: u64,
    event: String,
    nonce: String,
    mark: Mark,
}

impl std::fmt::Display for ClaimValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.at, self.event, self.nonce)?;
        match self.mark {
            Mark::Taken => Ok(()),
            Mark::Done => f.write_str(" done"),
            Mark::Unfinished => f.write_str(" unfinished"),
        }
    }
}

impl ClaimValue {
    /// A claim value in this shape; `None` for anything else (a claim of
    /// an earlier version, which held only the event id).
    fn parse(text: &str) -> Option<ClaimValue> {
        let mut parts = text.split(' ');
        let at = parts.next()?.parse().ok()?;
        let event = parts.next()?.to_owned();
        let nonce = parts.next()?.to_owned();
        let mark = match parts.next() {
            None => Mark::Taken,
            Some("done") => Mark::Done,
            Some("unfinished") => Mark::Unfinished,
            Some(_) => return None,
        };
        parts.next().is_none().then_some(ClaimValue {
            at,
            event,
            nonce,
            mark,
        })
    }
}

/// What a delivery that could not create a claim does.
#[derive(Debug, PartialEq, Eq)]
enum Turn {
    /// Make the action: the claim's own delivery did not.
    Act,
    /// Leave it: done, or still in the hands of another delivery.
    Leave(Found),
}

/// Why a delivery left a claim alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// The action was carried out.
    Done,
    /// Another delivery is carrying it out now.
    InHand,
}

impl Found {
    /// `done` or `in_hand`, whichever this is.
    fn phrase<'a>(self, done: &'a str, in_hand: &'a str) -> &'a str {
        match self {
            Found::Done => done,
            Found::InHand => in_hand,
        }
    }
}

/// The pure rule for a claim found at `now`: an unfinished action is made
/// by whoever finds it; a taken one is left to its delivery until that
/// delivery must have ended ([`state::TAKEOVER_SECS`], longer than the
/// calls it makes may take), then made; a done one, or one in a shape of
/// an earlier version (which marked nothing), is left.
fn turn(found: Option<&ClaimValue>, now: u64) -> Turn {
    match found.map(|c| (c.mark, now.saturating_sub(c.at))) {
        Some((Mark::Unfinished, _)) => Turn::Act,
        Some((Mark::Taken, age)) if age >= state::TAKEOVER_SECS => Turn::Act,
        Some((Mark::Taken, _)) => Turn::Leave(Found::InHand),
        Some((Mark::Done, _)) | None => Turn::Leave(Found::Done),
    }
}

/// The latest attempt record when an automatic rerun is due, or why not.
fn rerun_decision<'s>(
    top: Option<&'s State>,
    deployment: &str,
    max_auto_reruns: u32,
) -> Result<&'s State, String> {
    let record = top.filter(|r| r.deployment == deployment).ok_or_else(|| {
        format!("the latest attempt on the state parameter is not deployment {deployment}'s")
    })?;
    if record.status != Status::Failed {
        return Err(format!("the migration is {:?}, not failed", record.status));
    }
    if record.failure_class != Some(FailureClass::Transient) {
        return Err(
            "the failure was permanent (the migration itself failed, or could not start for good)"
                .into(),
        );
    }
    if record.reruns >= max_auto_reruns {
        warn!(reruns = record.reruns, "automatic reruns used up");
        return Err(format!(
            "{} of {max_auto_reruns} automatic reruns are used up",
            record.reruns
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests_support::record;

    #[test]
    fn recognises_our_function_by_name_alias_or_arn() {
        assert!(targets_function("migrate-once", "migrate-once"));
        assert!(targets_function("migrate-once:live", "migrate-once"));
        assert!(targets_function(
            "arn:aws:lambda:eu-west-1:1:function:migrate-once",
            "migrate-once"
        ));
        assert!(targets_function(
            "arn:aws:lambda:eu-west-1:1:function:migrate-once:3",
            "migrate-once"
        ));
        assert!(!targets_function("migrate-twice", "migrate-once"));
    }

    #[test]
    fn claim_values_say_how_far_the_action_got() {
        let taken = ClaimValue {
            at: 1_800_000_000,
            event: "5b0a8a1c-7d1e".into(),
            nonce: "00000000000000ff".into(),
            mark: Mark::Taken,
        };
        assert_eq!(
            taken.to_string(),
            "1800000000 5b0a8a1c-7d1e 00000000000000ff"
        );
        for mark in [Mark::Taken, Mark::Done, Mark::Unfinished] {
            let value = ClaimValue {
                mark,
                ..taken.clone()
            };
            assert_eq!(ClaimValue::parse(&value.to_string()), Some(value.clone()));
            assert_eq!(state::claimed_at(Some(&value.to_string())), 1_800_000_000);
        }
        for other in [
            "5b0a8a1c-7d1e",
            "",
            "x y z",
            "1 e n maybe",
            "1 e n done more",
        ] {
            assert_eq!(ClaimValue::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_found_claim_is_finished_only_when_its_delivery_did_not() {
        let at = 1_800_000_000;
        let claim = |mark| ClaimValue {
            at,
            event: "e".into(),
            nonce: "n".into(),
            mark,
        };
        let cases = [
            (Some(claim(Mark::Unfinished)), 0, Turn::Act),
            (Some(claim(Mark::Unfinished)), 7200, Turn::Act),
            (Some(claim(Mark::Taken)), 0, Turn::Leave(Found::InHand)),
            (
                Some(claim(Mark::Taken)),
                state::TAKEOVER_SECS - 1,
                Turn::Leave(Found::InHand),
            ),
            (Some(claim(Mark::Taken)), state::TAKEOVER_SECS, Turn::Act),
            (Some(claim(Mark::Done)), 0, Turn::Leave(Found::Done)),
            (Some(claim(Mark::Done)), 7200, Turn::Leave(Found::Done)),
            // An earlier version's claim (the event id alone), or none.
            (None, 7200, Turn::Leave(Found::Done)),
        ];
        for (found, age, expected) in cases {
            assert_eq!(turn(found.as_ref(), at + age), expected, "{found:?} {age}");
        }
        // A clock behind the claim's own is not an old claim.
        assert_eq!(
            turn(Some(&claim(Mark::Taken)), at - 100),
            Turn::Leave(Found::InHand)
        );
    }

    #[test]
    fn request_claims_are_named_by_their_event() {
        let a = request_claim_name("/s", "c4f1e8a2-6b3d");
        assert!(a.starts_with("/s/request/") && a.len() == "/s/request/".len() + 16);
        assert_ne!(a, request_claim_name("/s", "c4f1e8a2-6b3e"));
        assert_eq!(a, request_claim_name("/s", "c4f1e8a2-6b3d"));
    }

    #[test]
    fn automatic_reruns_only_for_transient_failures_within_budget() {
        let failed = |class, reruns| State {
            reruns,
            ..record("exec", 3, Status::Failed).finished(Status::Failed, None, Some(class), "t")
        };
        let transient = failed(FailureClass::Transient, 0);
        assert!(rerun_decision(Some(&transient), "exec", 2).is_ok());
        assert!(rerun_decision(Some(&transient), "other", 2).is_err());
        assert!(rerun_decision(None, "exec", 2).is_err());
        assert!(rerun_decision(Some(&failed(FailureClass::Permanent, 0)), "exec", 2).is_err());
        assert!(rerun_decision(Some(&failed(FailureClass::Transient, 2)), "exec", 2).is_err());
        assert!(rerun_decision(Some(&failed(FailureClass::Transient, 1)), "exec", 2).is_ok());
        let succeeded = record("exec", 3, Status::Succeeded);
        assert!(rerun_decision(Some(&succeeded), "exec", 2).is_err());
    }
}
