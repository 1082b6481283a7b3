//! EventBridge reruns and stops (SPEC §6).
//!
//! The same function, invoked by EventBridge rules, reruns a stage whose
//! migration failed for a transient reason, reruns a stage on an operator's
//! request, and stops the migration task when the pipeline execution is
//! stopped. EventBridge delivers at least once: a rerun is claimed with an
//! atomic create keyed by the failed attempt (`<stateParameter>/rerun/<seq>`)
//! before RetryStageExecution, so a second delivery of the same event (or
//! another event about the same failure) does nothing. These paths never
//! write an attempt record: a stop only calls StopTask, and the outcome is
//! recorded from ECS's facts by whoever sees the task stopped.
//!
//! The action's configuration is not in these events: it is found with
//! GetPipeline, as the Invoke action of the stage whose `FunctionName` is
//! this function.

use aws_sdk_codepipeline::types::StageRetryMode;
use tracing::{info, warn};

use crate::Clients;
use crate::config::{self, Config};
use crate::event::{PipelineEvent, RerunRequest};
use crate::failure::Failure;
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
                // it: every delivery of the event (and any other event about
                // the same failure) finds it claimed; a crash in between
                // costs a rerun, never causes two.
                if !state::claim(ssm, sp, Claim::Rerun, record.seq, &event.event_id).await? {
                    return Ok(nothing(format!(
                        "not rerunning stage {}: attempt {} of deployment {} was already rerun",
                        action.stage, record.attempt, record.deployment
                    )));
                }
                self.retry_stage(&event.pipeline, &action.stage, &event.execution_id)
                    .await
                    .map(|done| {
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
        // A second delivery of the same request finds the stage being
        // retried (the execution is no longer Failed, or CodePipeline refuses
        // a second retry): nothing is claimed, so an operator's rerun never
        // uses up an automatic one.
        self.retry_stage(&request.pipeline, &request.stage, &execution_id)
            .await
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
            let running = records
                .iter()
                .rev()
                .find(|r| r.deployment == action.deployment && r.status == Status::Running);
            let Some((seq, task_arn)) = running.and_then(|r| Some((r.seq, r.task_arn.clone()?)))
            else {
                done.push(format!(
                    "stage {}: no migration of execution {} is running",
                    action.stage, event.execution_id
                ));
                continue;
            };
            let reason = format!(
                "migrate-once: pipeline execution {} was stopped",
                event.execution_id
            );
            if !state::claim(ssm, sp, Claim::Stop, seq, &event.event_id).await? {
                done.push(format!(
                    "stage {}: task {} is already being stopped",
                    action.stage,
                    task::task_id(&task_arn)
                ));
                continue;
            }
            // Only the stop: its outcome is recorded from ECS's facts (by the
            // action's next job, a lock contender or a stage retry), never
            // from intent — the task may have exited 0 just before.
            task::stop(&self.clients.ecs, &config.cluster, &task_arn, &reason).await?;
            done.push(format!(
                "stage {}: stopped task {}",
                action.stage,
                task::task_id(&task_arn)
            ));
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
