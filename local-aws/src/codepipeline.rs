//! CodePipeline: the job side of an Invoke action, and the pipeline
//! read/retry operations the rerun logic uses.
//!
//! What AWS enforces is enforced here, because the function's correctness
//! depends on it: a job is reported exactly once (`InvalidJobStateException`
//! on a second report, which is how a duplicate delivery learns it lost);
//! unknown jobs are `JobNotFoundException`; inputs are held to the model's
//! constraints (`ValidationException` naming each field); a job not
//! reported within the job timeout (20 minutes on AWS) can no longer be
//! reported.

use crate::clock;
use crate::scenario::Scenario;
use crate::wire::{ACCOUNT, ApiError, Input, OpResult, REGION, Violations, epoch};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The failure types `PutJobFailureResult` accepts.
pub const FAILURE_TYPES: [&str; 6] = [
    "JobFailed",
    "ConfigurationError",
    "PermissionError",
    "RevisionOutOfSync",
    "RevisionUnavailable",
    "SystemUnavailable",
];

/// A report a job worker made for one job, flattened for assertions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobReport {
    /// The job reported.
    pub job_id: String,
    /// Time since the control plane started.
    pub at: Duration,
    /// `PutJobSuccessResult` (true) or `PutJobFailureResult` (false).
    pub success: bool,
    /// Success: the continuation token, if the action goes on.
    pub continuation_token: Option<String>,
    /// Success: `executionDetails.summary`.
    pub summary: Option<String>,
    /// Success: `executionDetails.percentComplete`.
    pub percent_complete: Option<i64>,
    /// `executionDetails.externalExecutionId` or
    /// `failureDetails.externalExecutionId`.
    pub external_execution_id: Option<String>,
    /// Success: output variables.
    pub output_variables: BTreeMap<String, String>,
    /// Failure: `failureDetails.type`.
    pub failure_type: Option<String>,
    /// Failure: `failureDetails.message`.
    pub failure_message: Option<String>,
}

impl JobReport {
    /// Whether this report ends the action (no continuation token).
    pub fn is_final(&self) -> bool {
        !self.success || self.continuation_token.is_none()
    }
}

/// One job of an action execution.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job id (a UUID).
    pub id: String,
    /// 1 for the first job of the action execution, 2 for the next, …
    pub number: u32,
    /// The pipeline execution.
    pub execution_id: String,
    /// The action execution (stable across the action's jobs).
    pub action_execution_id: String,
    /// The continuation token this job carries.
    pub continuation_token: Option<String>,
    /// `UserParameters` with variables resolved.
    pub user_parameters: String,
    /// When the job was created (`crate::clock`; its timeout runs from
    /// here).
    pub created: Instant,
    /// The accepted report.
    pub report: Option<JobReport>,
}

/// A `RetryStageExecution` call that was accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRetry {
    /// Pipeline name.
    pub pipeline: String,
    /// Stage retried.
    pub stage: String,
    /// Execution retried.
    pub execution_id: String,
    /// `FAILED_ACTIONS` or `ALL_ACTIONS`.
    pub retry_mode: String,
    /// Time since the control plane started.
    pub at: Duration,
}

/// A pipeline execution and its stages' statuses.
#[derive(Debug, Clone)]
pub struct Execution {
    /// Execution id.
    pub id: String,
    /// `InProgress`, `Succeeded`, `Failed`, `Stopped`, …
    pub status: String,
    /// Status per stage name.
    pub stage_status: BTreeMap<String, String>,
    /// Start time.
    pub started: SystemTime,
    /// Last change.
    pub updated: SystemTime,
    /// Set when a retry put the stage back in progress.
    pub retrying: bool,
}

/// The CodePipeline control plane.
#[derive(Debug)]
pub struct CodePipeline {
    scenario: Scenario,
    origin: Instant,
    created: SystemTime,
    jobs: BTreeMap<String, Job>,
    /// Ids of the reported jobs, in the order the reports were accepted.
    reported: Vec<String>,
    executions: Vec<Execution>,
    retries: Vec<StageRetry>,
    job_timeout: Duration,
}

fn is_job_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    parts.len() == 5
        && parts.iter().zip(lens).all(|(p, l)| {
            p.len() == l
                && p.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
}

fn length(v: &mut Violations, value: &str, field: &str, min: usize, max: usize) {
    let n = value.chars().count();
    if n < min {
        v.add(
            value,
            field,
            &format!("Member must have length greater than or equal to {min}"),
        );
    } else if n > max {
        v.add(
            value,
            field,
            &format!("Member must have length less than or equal to {max}"),
        );
    }
}

impl CodePipeline {
    /// CodePipeline as the scenario describes it.
    pub fn new(scenario: &Scenario, origin: Instant) -> Self {
        let now = clock::now();
        let executions = scenario
            .pipeline
            .executions
            .iter()
            .map(|e| {
                let started = now - Duration::from_secs(e.started_seconds_ago);
                let mut stage_status = BTreeMap::new();
                if let Some(s) = &e.stage_status {
                    stage_status.insert(scenario.pipeline.stage.clone(), s.clone());
                }
                Execution {
                    id: e.id.clone(),
                    status: e.status.clone(),
                    stage_status,
                    started,
                    updated: started,
                    retrying: false,
                }
            })
            .collect();
        CodePipeline {
            scenario: scenario.clone(),
            origin,
            created: now - Duration::from_secs(30 * 86_400),
            jobs: BTreeMap::new(),
            reported: Vec::new(),
            executions,
            retries: Vec::new(),
            job_timeout: Duration::from_secs(scenario.timing.job_timeout_seconds),
        }
    }

    /// Creates the next job of an action execution (what CodePipeline does
    /// when the action starts and after each continuation report).
    pub fn create_job(
        &mut self,
        execution_id: &str,
        action_execution_id: &str,
        number: u32,
        continuation_token: Option<String>,
    ) -> Job {
        self.create_job_with_id(
            crate::ids::uuid(),
            execution_id,
            action_execution_id,
            number,
            continuation_token,
        )
    }

    /// Creates a job with a given id: a job whose event was made by hand
    /// (`events/*.json`) is then known, and its report accepted.
    pub fn create_job_with_id(
        &mut self,
        id: String,
        execution_id: &str,
        action_execution_id: &str,
        number: u32,
        continuation_token: Option<String>,
    ) -> Job {
        let job = Job {
            id,
            number,
            execution_id: execution_id.to_string(),
            action_execution_id: action_execution_id.to_string(),
            continuation_token,
            user_parameters: self
                .scenario
                .execution_user_parameters
                .get(execution_id)
                .unwrap_or(&self.scenario.user_parameters)
                .resolved(execution_id),
            created: clock::instant(),
            report: None,
        };
        if self.jobs.insert(job.id.clone(), job.clone()).is_some() {
            // A job made again under the same id forgets the old one's report.
            self.reported.retain(|id| *id != job.id);
        }
        job
    }

    /// A job by id.
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// The job timeout (how long a job waits for its report).
    pub fn job_timeout(&self) -> Duration {
        self.job_timeout
    }

    /// Every accepted report, in the order they were accepted (two reports
    /// at the same virtual instant keep that order too).
    pub fn reports(&self) -> Vec<JobReport> {
        self.reported
            .iter()
            .filter_map(|id| self.jobs.get(id)?.report.clone())
            .collect()
    }

    /// Every accepted `RetryStageExecution`.
    pub fn retries(&self) -> &[StageRetry] {
        &self.retries
    }

    /// A pipeline execution by id.
    pub fn execution(&self, id: &str) -> Option<&Execution> {
        self.executions.iter().find(|e| e.id == id)
    }

    /// Marks the action's stage (and the execution) in progress.
    pub fn start_stage(&mut self, execution_id: &str) {
        let stage = self.scenario.pipeline.stage.clone();
        let now = clock::now();
        match self.executions.iter_mut().find(|e| e.id == execution_id) {
            Some(e) => {
                e.status = "InProgress".into();
                e.stage_status.insert(stage, "InProgress".into());
                e.updated = now;
            }
            None => self.executions.push(Execution {
                id: execution_id.to_string(),
                status: "InProgress".into(),
                stage_status: [(stage, "InProgress".to_string())].into_iter().collect(),
                started: now,
                updated: now,
                retrying: false,
            }),
        }
    }

    /// Records how the action's stage ended. A failed stage fails the
    /// execution; a succeeded one leaves it in progress (later stages run).
    pub fn finish_stage(&mut self, execution_id: &str, succeeded: bool) {
        let stage = self.scenario.pipeline.stage.clone();
        if let Some(e) = self.executions.iter_mut().find(|e| e.id == execution_id) {
            let status = if succeeded { "Succeeded" } else { "Failed" };
            e.stage_status.insert(stage, status.into());
            e.retrying = false;
            if !succeeded {
                e.status = "Failed".into();
            }
            e.updated = clock::now();
        }
    }

    /// Dispatches one CodePipeline operation.
    pub fn handle(&mut self, operation: &str, input: &Value) -> OpResult {
        let i = Input(input);
        match operation {
            "GetJobDetails" => self.get_job_details(i),
            "PutJobSuccessResult" => self.put_job_success(i),
            "PutJobFailureResult" => self.put_job_failure(i),
            "GetPipeline" => self.get_pipeline(i),
            "GetPipelineState" => self.get_pipeline_state(i),
            "GetPipelineExecution" => self.get_pipeline_execution(i),
            "ListPipelineExecutions" => self.list_pipeline_executions(i),
            "RetryStageExecution" => self.retry_stage_execution(i),
            other => Err(ApiError::client(
                "UnknownOperationException",
                format!("the local control plane does not implement CodePipeline_20150709.{other}"),
            )),
        }
    }

    /// Time since the control plane started (`crate::clock`).
    fn since_start(&self) -> Duration {
        clock::instant().saturating_duration_since(self.origin)
    }

    /// Records `report` as its job's one report, if the job may still be
    /// reported ([`Self::job_for_report`]).
    fn accept(&mut self, report: JobReport) -> OpResult {
        let id = report.job_id.clone();
        self.job_for_report(&id)?.report = Some(report);
        self.reported.push(id);
        Ok(json!({}))
    }

    fn job_for_report(&mut self, job_id: &str) -> Result<&mut Job, ApiError> {
        let timeout = self.job_timeout;
        let job = self.jobs.get_mut(job_id).ok_or_else(|| {
            ApiError::client("JobNotFoundException", format!("Job {job_id} not found"))
        })?;
        if job.report.is_some() {
            return Err(ApiError::client(
                "InvalidJobStateException",
                format!(
                    "Job {job_id} is not in a valid state for this operation: it was already reported"
                ),
            ));
        }
        if clock::instant().saturating_duration_since(job.created) > timeout {
            return Err(ApiError::client(
                "InvalidJobStateException",
                format!(
                    "Job {job_id} timed out: no result was reported within {} s",
                    timeout.as_secs()
                ),
            ));
        }
        Ok(job)
    }

    fn get_job_details(&self, i: Input) -> OpResult {
        let job_id = i.str("jobId")?;
        let mut v = Violations::default();
        if !is_job_id(job_id) {
            v.add(job_id, "jobId", "Member must satisfy regular expression pattern: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
        }
        v.into_result("ValidationException")?;
        let job = self.jobs.get(job_id).ok_or_else(|| {
            ApiError::client("JobNotFoundException", format!("Job {job_id} not found"))
        })?;
        let p = &self.scenario.pipeline;
        let mut data = json!({
            "actionTypeId": {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"},
            "actionConfiguration": {"configuration": {
                "FunctionName": self.scenario.function.name,
                "UserParameters": job.user_parameters,
            }},
            "pipelineContext": {
                "pipelineName": p.name,
                "stage": {"name": p.stage},
                "action": {"name": p.action, "actionExecutionId": job.action_execution_id},
                "pipelineArn": self.pipeline_arn(),
                "pipelineExecutionId": job.execution_id,
            },
            "inputArtifacts": crate::s3::input_artifacts(&self.scenario),
            "outputArtifacts": [],
        });
        if let Some(t) = &job.continuation_token {
            data["continuationToken"] = json!(t);
        }
        Ok(json!({"jobDetails": {"id": job.id, "data": data, "accountId": ACCOUNT}}))
    }

    fn put_job_success(&mut self, i: Input) -> OpResult {
        let job_id = i.str("jobId")?;
        let token = i.opt_str("continuationToken")?;
        let details = i.opt_struct("executionDetails")?;
        let summary = details.map(|d| d.opt_str("summary")).transpose()?.flatten();
        let external = details
            .map(|d| d.opt_str("externalExecutionId"))
            .transpose()?
            .flatten();
        let percent = details
            .map(|d| d.opt_i64("percentComplete"))
            .transpose()?
            .flatten();
        let outputs = i.str_map("outputVariables")?;

        let mut v = Violations::default();
        if !is_job_id(job_id) {
            v.add(job_id, "jobId", "Member must satisfy regular expression pattern: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
        }
        if let Some(t) = token {
            length(&mut v, t, "continuationToken", 1, 2048);
        }
        if let Some(s) = summary {
            length(&mut v, s, "executionDetails.summary", 1, 2048);
        }
        if let Some(x) = external {
            length(&mut v, x, "executionDetails.externalExecutionId", 1, 1500);
        }
        if let Some(p) = percent
            && !(0..=100).contains(&p)
        {
            v.add(
                &p.to_string(),
                "executionDetails.percentComplete",
                "Member must have value between 0 and 100",
            );
        }
        for key in outputs.keys() {
            if key.is_empty()
                || key.len() > 128
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@-_".contains(c))
            {
                v.add(
                    key,
                    "outputVariables.key",
                    "Member must satisfy regular expression pattern: [A-Za-z0-9@\\-_]+",
                );
            }
        }
        if token.is_some() && !outputs.is_empty() {
            v.add_message(
                "outputVariables can be included only when there is no continuation token on the request",
            );
        }
        v.into_result("ValidationException")?;
        let size: usize = outputs.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > 122_880 {
            return Err(ApiError::client(
                "OutputVariablesSizeExceededException",
                "The size of the output variables exceeds the limit of 122880 characters",
            ));
        }
        self.accept(JobReport {
            job_id: job_id.to_string(),
            at: self.since_start(),
            success: true,
            continuation_token: token.map(str::to_string),
            summary: summary.map(str::to_string),
            percent_complete: percent,
            external_execution_id: external.map(str::to_string),
            output_variables: outputs,
            failure_type: None,
            failure_message: None,
        })
    }

    fn put_job_failure(&mut self, i: Input) -> OpResult {
        let job_id = i.str("jobId")?;
        let details = i.opt_struct("failureDetails")?.ok_or_else(|| {
            ApiError::client(
                "ValidationException",
                "1 validation error detected: Value null at 'failureDetails' failed to satisfy constraint: Member must not be null",
            )
        })?;
        let kind = details.str("type")?;
        let message = details.str("message")?;
        let external = details.opt_str("externalExecutionId")?;
        let mut v = Violations::default();
        if !is_job_id(job_id) {
            v.add(job_id, "jobId", "Member must satisfy regular expression pattern: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
        }
        if !FAILURE_TYPES.contains(&kind) {
            v.add(
                kind,
                "failureDetails.type",
                "Member must satisfy enum value set: [JobFailed, ConfigurationError, PermissionError, RevisionOutOfSync, RevisionUnavailable, SystemUnavailable]",
            );
        }
        length(&mut v, message, "failureDetails.message", 1, 5000);
        if let Some(x) = external {
            length(&mut v, x, "failureDetails.externalExecutionId", 1, 1500);
        }
        v.into_result("ValidationException")?;
        self.accept(JobReport {
            job_id: job_id.to_string(),
            at: self.since_start(),
            success: false,
            external_execution_id: external.map(str::to_string),
            failure_type: Some(kind.to_string()),
            failure_message: Some(message.to_string()),
            ..Default::default()
        })
    }

    fn pipeline_arn(&self) -> String {
        format!(
            "arn:aws:codepipeline:{REGION}:{ACCOUNT}:{}",
            self.scenario.pipeline.name
        )
    }

    fn check_pipeline(&self, name: &str) -> Result<(), ApiError> {
        if name == self.scenario.pipeline.name {
            Ok(())
        } else {
            Err(ApiError::client(
                "PipelineNotFoundException",
                format!("Account '{ACCOUNT}' does not have a pipeline with name '{name}'"),
            ))
        }
    }

    fn stages(&self) -> Value {
        let p = &self.scenario.pipeline;
        if let Some(stages) = &p.stages {
            return stages.clone();
        }
        json!([
            {"name": "Source", "actions": [{
                "name": "Source",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "runOrder": 1,
                "configuration": {"S3Bucket": "app-artifacts", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "SourceOutput"}],
                "inputArtifacts": [],
            }]},
            {"name": p.stage, "actions": [{
                "name": p.action,
                "actionTypeId": {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"},
                "runOrder": 1,
                "configuration": {
                    "FunctionName": self.scenario.function.name,
                    "UserParameters": self.scenario.user_parameters.raw(),
                },
                "outputArtifacts": [],
                "inputArtifacts": [],
                "namespace": "MigrateVariables",
            }]},
            {"name": "Deploy", "actions": [{
                "name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "ECS", "version": "1"},
                "runOrder": 1,
                "configuration": {"ClusterName": "app", "ServiceName": "app-web", "FileName": "imagedefinitions.json"},
                "outputArtifacts": [],
                "inputArtifacts": [{"name": "SourceOutput"}],
            }]},
        ])
    }

    fn get_pipeline(&self, i: Input) -> OpResult {
        let name = i.str("name")?;
        self.check_pipeline(name)?;
        Ok(json!({
            "pipeline": {
                "name": name,
                "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/{name}-role"),
                "artifactStore": {"type": "S3", "location": "app-artifacts"},
                "stages": self.stages(),
                "version": 1,
                "executionMode": "SUPERSEDED",
                "pipelineType": "V2",
            },
            "metadata": {
                "pipelineArn": self.pipeline_arn(),
                "created": epoch(self.created),
                "updated": epoch(self.created),
            }
        }))
    }

    fn newest_first(&self) -> Vec<&Execution> {
        let mut v: Vec<&Execution> = self.executions.iter().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.started));
        v
    }

    fn get_pipeline_state(&self, i: Input) -> OpResult {
        let name = i.str("name")?;
        self.check_pipeline(name)?;
        let stage = &self.scenario.pipeline.stage;
        let latest = self
            .newest_first()
            .into_iter()
            .find(|e| e.stage_status.contains_key(stage));
        let mut stage_state = json!({"stageName": stage, "actionStates": [{"actionName": self.scenario.pipeline.action}]});
        if let Some(e) = latest {
            let status = &e.stage_status[stage];
            stage_state["latestExecution"] = json!({"pipelineExecutionId": e.id, "status": status});
            stage_state["actionStates"][0]["latestExecution"] =
                json!({"status": status, "lastStatusChange": epoch(e.updated)});
        }
        Ok(json!({
            "pipelineName": name,
            "pipelineVersion": 1,
            "stageStates": [stage_state],
            "created": epoch(self.created),
            "updated": epoch(self.created),
        }))
    }

    fn execution_json(&self, e: &Execution) -> Value {
        json!({
            "pipelineExecutionId": e.id,
            "status": e.status,
            "startTime": epoch(e.started),
            "lastUpdateTime": epoch(e.updated),
            "sourceRevisions": [],
            "trigger": {"triggerType": "StartPipelineExecution", "triggerDetail": "local-aws"},
            "executionMode": "SUPERSEDED",
            "executionType": "STANDARD",
        })
    }

    fn get_pipeline_execution(&self, i: Input) -> OpResult {
        let name = i.str("pipelineName")?;
        self.check_pipeline(name)?;
        let id = i.str("pipelineExecutionId")?;
        let e = self.execution(id).ok_or_else(|| {
            ApiError::client(
                "PipelineExecutionNotFoundException",
                format!("Pipeline execution {id} not found"),
            )
        })?;
        Ok(json!({"pipelineExecution": {
            "pipelineName": name,
            "pipelineVersion": 1,
            "pipelineExecutionId": e.id,
            "status": e.status,
            "artifactRevisions": [],
            "variables": [],
            "executionMode": "SUPERSEDED",
            "executionType": "STANDARD",
        }}))
    }

    fn list_pipeline_executions(&self, i: Input) -> OpResult {
        let name = i.str("pipelineName")?;
        self.check_pipeline(name)?;
        let max = i.opt_i64("maxResults")?.unwrap_or(100).clamp(1, 100) as usize;
        let start: usize = match i.opt_str("nextToken")? {
            None => 0,
            Some(t) => t.parse().map_err(|_| {
                ApiError::client("InvalidNextTokenException", "The next token is not valid")
            })?,
        };
        let all = self.newest_first();
        let page: Vec<Value> = all
            .iter()
            .skip(start)
            .take(max)
            .map(|e| self.execution_json(e))
            .collect();
        let mut answer = json!({"pipelineExecutionSummaries": page});
        if start + max < all.len() {
            answer["nextToken"] = json!((start + max).to_string());
        }
        Ok(answer)
    }

    fn retry_stage_execution(&mut self, i: Input) -> OpResult {
        let name = i.str("pipelineName")?;
        let stage = i.str("stageName")?;
        let execution_id = i.str("pipelineExecutionId")?;
        let mode = i.str("retryMode")?;
        let mut v = Violations::default();
        if !["FAILED_ACTIONS", "ALL_ACTIONS"].contains(&mode) {
            v.add(
                mode,
                "retryMode",
                "Member must satisfy enum value set: [ALL_ACTIONS, FAILED_ACTIONS]",
            );
        }
        v.into_result("ValidationException")?;
        self.check_pipeline(name)?;
        if !self.stage_names().iter().any(|s| s == stage) {
            return Err(ApiError::client(
                "StageNotFoundException",
                format!("Stage {stage} not found in pipeline {name}"),
            ));
        }
        let latest = self
            .newest_first()
            .into_iter()
            .find(|e| e.stage_status.contains_key(stage))
            .map(|e| e.id.clone());
        let Some(e) = self.executions.iter().find(|e| e.id == execution_id) else {
            return Err(ApiError::client(
                "PipelineExecutionNotFoundException",
                format!("Pipeline execution {execution_id} not found for pipeline {name}"),
            ));
        };
        if latest.as_deref() != Some(execution_id) {
            return Err(ApiError::client(
                "NotLatestPipelineExecutionException",
                format!("Execution {execution_id} is not the latest execution of stage {stage}"),
            ));
        }
        match e.stage_status.get(stage).map(String::as_str) {
            Some("Failed") => {}
            Some("InProgress") if e.retrying => {
                return Err(ApiError::client(
                    "ConflictException",
                    format!("Stage {stage} of execution {execution_id} is already being retried"),
                ));
            }
            other => {
                return Err(ApiError::client(
                    "StageNotRetryableException",
                    format!(
                        "Stage {stage} of execution {execution_id} is not in a retryable state (status {})",
                        other.unwrap_or("not started")
                    ),
                ));
            }
        }
        let at = self.since_start();
        if let Some(e) = self.executions.iter_mut().find(|e| e.id == execution_id) {
            e.stage_status
                .insert(stage.to_string(), "InProgress".into());
            e.status = "InProgress".into();
            e.retrying = true;
            e.updated = clock::now();
        }
        self.retries.push(StageRetry {
            pipeline: name.to_string(),
            stage: stage.to_string(),
            execution_id: execution_id.to_string(),
            retry_mode: mode.to_string(),
            at,
        });
        Ok(json!({"pipelineExecutionId": execution_id}))
    }

    fn stage_names(&self) -> Vec<String> {
        self.stages()
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.get("name")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> CodePipeline {
        let scenario = Scenario::from_json(
            r##"{"userParameters": {"deployment": "#{codepipeline.PipelineExecutionId}", "cluster": "app"},
                 "pipeline": {"executions": [{"id": "old", "status": "Failed", "stageStatus": "Failed", "startedSecondsAgo": 600}]}}"##,
        )
        .unwrap();
        CodePipeline::new(&scenario, clock::instant())
    }

    #[test]
    fn a_job_is_reported_exactly_once() {
        let mut cp = pipeline();
        let job = cp.create_job("exec-1", "act-1", 1, None);
        let details = cp
            .handle("GetJobDetails", &json!({"jobId": job.id}))
            .unwrap();
        let params =
            details["jobDetails"]["data"]["actionConfiguration"]["configuration"]["UserParameters"]
                .as_str()
                .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(params).unwrap(),
            json!({"cluster": "app", "deployment": "exec-1"})
        );
        assert_eq!(
            details["jobDetails"]["data"]["pipelineContext"]["pipelineExecutionId"],
            "exec-1"
        );
        cp.handle(
            "PutJobSuccessResult",
            &json!({"jobId": job.id, "continuationToken": "t"}),
        )
        .unwrap();
        let again = cp.handle(
            "PutJobFailureResult",
            &json!({"jobId": job.id, "failureDetails": {"type": "JobFailed", "message": "m"}}),
        );
        assert_eq!(again.unwrap_err().code, "InvalidJobStateException");
        let unknown = cp.handle("PutJobSuccessResult", &json!({"jobId": crate::ids::uuid()}));
        assert_eq!(unknown.unwrap_err().code, "JobNotFoundException");
        assert_eq!(cp.reports().len(), 1);
    }

    #[test]
    fn report_constraints_are_enforced_and_named() {
        let mut cp = pipeline();
        let job = cp.create_job("exec-1", "act-1", 1, None);
        let err = cp
            .handle(
                "PutJobSuccessResult",
                &json!({
                    "jobId": job.id,
                    "continuationToken": "x".repeat(2049),
                    "executionDetails": {"summary": "s".repeat(2049), "percentComplete": 101},
                    "outputVariables": {"TaskArn": "a"},
                }),
            )
            .unwrap_err();
        assert_eq!(err.code, "ValidationException");
        for field in [
            "continuationToken",
            "executionDetails.summary",
            "percentComplete",
            "outputVariables",
        ] {
            assert!(
                err.message.contains(field),
                "{field} not named in {}",
                err.message
            );
        }
        let bad_type = cp
            .handle("PutJobFailureResult", &json!({"jobId": job.id, "failureDetails": {"type": "Oops", "message": "m".repeat(5001)}}))
            .unwrap_err();
        assert!(
            bad_type.message.contains("failureDetails.type")
                && bad_type.message.contains("failureDetails.message")
        );
        assert!(cp.reports().is_empty(), "a refused report must not count");
    }

    #[test]
    fn retry_needs_the_latest_failed_stage() {
        let mut cp = pipeline();
        let retry = |cp: &mut CodePipeline, id: &str| {
            cp.handle("RetryStageExecution", &json!({"pipelineName": "app-pipeline", "stageName": "Migrate", "pipelineExecutionId": id, "retryMode": "FAILED_ACTIONS"}))
        };
        assert_eq!(retry(&mut cp, "old").unwrap()["pipelineExecutionId"], "old");
        assert_eq!(retry(&mut cp, "old").unwrap_err().code, "ConflictException");
        cp.start_stage("new");
        assert_eq!(
            retry(&mut cp, "old").unwrap_err().code,
            "NotLatestPipelineExecutionException"
        );
        assert_eq!(
            retry(&mut cp, "new").unwrap_err().code,
            "StageNotRetryableException"
        );
        assert_eq!(cp.retries().len(), 1);
        let listed = cp
            .handle(
                "ListPipelineExecutions",
                &json!({"pipelineName": "app-pipeline"}),
            )
            .unwrap();
        assert_eq!(
            listed["pipelineExecutionSummaries"][0]["pipelineExecutionId"],
            "new"
        );
        let p = cp
            .handle("GetPipeline", &json!({"name": "app-pipeline"}))
            .unwrap();
        let raw = p["pipeline"]["stages"][1]["actions"][0]["configuration"]["UserParameters"]
            .as_str()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(raw).unwrap(),
            json!({"cluster": "app", "deployment": "#{codepipeline.PipelineExecutionId}"})
        );
    }
}
