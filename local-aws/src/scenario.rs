//! Scenario files: everything a test or the demo needs to say about the
//! world the function runs in, as data (`tests/scenarios/*.json`).
//!
//! A scenario names the pipeline and action, the action's `UserParameters`,
//! the function's environment, the ECS task definitions and services, the
//! SSM parameters that already exist, the faults to inject, and — in order —
//! the outcome of every task `RunTask` will create. Unknown fields are
//! rejected so that a typo in a scenario fails loudly instead of silently
//! testing something else.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The CodePipeline variable the pipeline resolves in `UserParameters`.
pub const EXECUTION_ID_VARIABLE: &str = "#{codepipeline.PipelineExecutionId}";

/// A whole scenario file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// One line for people: what this scenario shows.
    #[serde(default)]
    pub description: String,
    /// The pipeline, stage and action the function runs in.
    #[serde(default)]
    pub pipeline: PipelineSpec,
    /// The Lambda function's settings (name, memory, timeout, pool size).
    #[serde(default)]
    pub function: FunctionSpec,
    /// The action's `UserParameters`: a JSON object (serialised compactly)
    /// or a string used verbatim (to test malformed JSON).
    #[serde(default)]
    pub user_parameters: UserParameters,
    /// Extra environment of the function, e.g. `MIGRATE_ONCE_CLUSTER`.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// ECS cluster names that exist; empty means "any name exists".
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Registered task definitions.
    #[serde(default)]
    pub task_definitions: Vec<TaskDefinitionSpec>,
    /// ECS services (for `network.fromService`).
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// SSM parameters that exist before the first call.
    #[serde(default)]
    pub parameters: Vec<ParameterSpec>,
    /// The outcome of each task `RunTask` creates, in creation order.
    /// When they run out, [`TaskOutcome::default`] (runs, exits 0) is used.
    #[serde(default)]
    pub tasks: Vec<TaskOutcome>,
    /// Faults to inject into chosen calls.
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// Job events Lambda delivers twice (at-least-once delivery).
    #[serde(default)]
    pub duplicate_deliveries: Vec<DuplicateDelivery>,
    /// Delays and limits of the pipeline and Lambda emulation.
    #[serde(default)]
    pub timing: Timing,
    /// Per-account API quotas (token buckets); absent: no throttling.
    #[serde(default)]
    pub quotas: crate::quota::Quotas,
    /// `UserParameters` of chosen executions (a fleet of pipelines sharing
    /// one account), overriding `userParameters`.
    #[serde(default)]
    pub execution_user_parameters: BTreeMap<String, UserParameters>,
    /// The action's input artifacts, in order: ZIPs in the artifact store
    /// (S3), named in every job event with the job's artifact credentials.
    #[serde(default)]
    pub artifacts: Vec<ArtifactSpec>,
}

/// One input artifact of the action.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactSpec {
    /// Artifact name, e.g. `BuildOutput`.
    pub name: String,
    /// Files of the ZIP: path → content (a string verbatim, anything else
    /// as its JSON text).
    #[serde(default)]
    pub files: BTreeMap<String, Value>,
    /// Pads a file of `files` with trailing spaces to this many bytes (still
    /// valid JSON), to test the size limit.
    #[serde(default)]
    pub pad_to: BTreeMap<String, usize>,
    /// The object's content verbatim instead of a ZIP (a corrupt artifact).
    #[serde(default)]
    pub raw: Option<String>,
    /// Encrypted with the artifact store's KMS key (SSE-KMS) [true].
    #[serde(default = "yes")]
    pub kms: bool,
}

impl ArtifactSpec {
    /// The object's bytes: `raw`, or a ZIP of `files`.
    pub fn content(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.as_bytes().to_vec();
        }
        let files: Vec<(String, Vec<u8>)> = self
            .files
            .iter()
            .map(|(path, value)| {
                let mut text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(&size) = self.pad_to.get(path) {
                    while text.len() < size {
                        text.push(' ');
                    }
                }
                (path.clone(), text.into_bytes())
            })
            .collect();
        crate::s3::zip_files(&files)
    }
}

/// The pipeline around the action.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    /// Pipeline name.
    #[serde(default = "default_pipeline_name")]
    pub name: String,
    /// Stage holding the migration action.
    #[serde(default = "default_stage")]
    pub stage: String,
    /// The migration action's name.
    #[serde(default = "default_action")]
    pub action: String,
    /// The execution the driver runs by default; a fresh UUID when absent.
    #[serde(default)]
    pub execution_id: Option<String>,
    /// The full `stages` list `GetPipeline` returns, verbatim; when absent a
    /// Source → <stage> → Deploy pipeline is synthesised around the action.
    #[serde(default)]
    pub stages: Option<Value>,
    /// Executions that happened before the test (for rerun logic).
    #[serde(default)]
    pub executions: Vec<ExecutionSpec>,
}

impl Default for PipelineSpec {
    fn default() -> Self {
        PipelineSpec {
            name: default_pipeline_name(),
            stage: default_stage(),
            action: default_action(),
            execution_id: None,
            stages: None,
            executions: Vec::new(),
        }
    }
}

fn default_pipeline_name() -> String {
    "app-pipeline".into()
}
fn default_stage() -> String {
    "Migrate".into()
}
fn default_action() -> String {
    "RunMigration".into()
}

/// A past pipeline execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionSpec {
    /// Pipeline execution id.
    pub id: String,
    /// Execution status (`InProgress`, `Succeeded`, `Failed`, `Stopped`, …).
    pub status: String,
    /// Status of the migration stage in that execution (`Failed`, …);
    /// absent when the execution never reached it.
    #[serde(default)]
    pub stage_status: Option<String>,
    /// How long ago the execution started.
    #[serde(default)]
    pub started_seconds_ago: u64,
}

/// The Lambda function's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionSpec {
    /// Function name (`AWS_LAMBDA_FUNCTION_NAME`, `FunctionName`).
    #[serde(default = "default_function_name")]
    pub name: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Function timeout: the deadline handed to each invocation; an
    /// invocation still running after it is killed and counts as an error.
    #[serde(default = "default_function_timeout")]
    pub timeout_seconds: u64,
    /// Most concurrent execution environments (processes).
    #[serde(default = "default_max_instances")]
    pub max_instances: usize,
}

impl Default for FunctionSpec {
    fn default() -> Self {
        FunctionSpec {
            name: default_function_name(),
            memory_mb: default_memory(),
            timeout_seconds: default_function_timeout(),
            max_instances: default_max_instances(),
        }
    }
}

fn default_function_name() -> String {
    "migrate-once".into()
}
fn default_memory() -> u32 {
    128
}
fn default_function_timeout() -> u64 {
    60
}
fn default_max_instances() -> usize {
    25
}

/// `UserParameters` as written in the scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserParameters {
    /// Raw text, passed through as is (for malformed-JSON tests).
    Text(String),
    /// A JSON value, serialised compactly.
    Json(Value),
}

impl Default for UserParameters {
    fn default() -> Self {
        UserParameters::Json(Value::Object(Default::default()))
    }
}

impl UserParameters {
    /// The configuration string as stored in the pipeline definition, with
    /// `#{...}` variables unresolved.
    pub fn raw(&self) -> String {
        match self {
            UserParameters::Text(s) => s.clone(),
            UserParameters::Json(v) => v.to_string(),
        }
    }

    /// The string a job carries: variables resolved the way CodePipeline
    /// does, by text substitution before the function sees it.
    pub fn resolved(&self, execution_id: &str) -> String {
        self.raw().replace(EXECUTION_ID_VARIABLE, execution_id)
    }
}

/// A registered task definition revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinitionSpec {
    /// Family name.
    pub family: String,
    /// Revision number.
    #[serde(default = "one")]
    pub revision: u32,
    /// `awsvpc` (default), `bridge`, `host` or `none`.
    #[serde(default = "default_network_mode")]
    pub network_mode: String,
    /// Task-level CPU units, a string as in the ECS model.
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Task-level memory (MiB), a string as in the ECS model.
    #[serde(default = "default_task_memory")]
    pub memory: String,
    /// Task role ARN.
    #[serde(default)]
    pub task_role_arn: Option<String>,
    /// Execution role ARN.
    #[serde(default)]
    pub execution_role_arn: Option<String>,
    /// `requiresCompatibilities`.
    #[serde(default = "default_compatibilities")]
    pub requires_compatibilities: Vec<String>,
    /// The containers.
    pub containers: Vec<ContainerSpec>,
    /// Tags (`DescribeTaskDefinition` with `include: ["TAGS"]`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// For a revision made by `RegisterTaskDefinition`: the request as sent,
    /// which `DescribeTaskDefinition` echoes.
    #[serde(skip)]
    pub registered: Option<Value>,
}

fn one() -> u32 {
    1
}
fn default_network_mode() -> String {
    "awsvpc".into()
}
fn default_cpu() -> String {
    "256".into()
}
fn default_task_memory() -> String {
    "512".into()
}
fn default_compatibilities() -> Vec<String> {
    vec!["FARGATE".into()]
}

/// A container definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Image reference.
    #[serde(default = "default_image")]
    pub image: String,
    /// Whether the task stops when this container stops.
    #[serde(default = "yes")]
    pub essential: bool,
    /// The image's default command.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// `awslogs-group` (logging uses the `awslogs` driver when set).
    #[serde(default)]
    pub log_group: Option<String>,
    /// `awslogs-stream-prefix`.
    #[serde(default)]
    pub log_stream_prefix: Option<String>,
}

fn default_image() -> String {
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest".into()
}
fn yes() -> bool {
    true
}

/// An ECS service: what `network.fromService` copies, and its deployments
/// ([`crate::ecs_service`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Cluster name.
    pub cluster: String,
    /// Launch type, exclusive with `capacityProviderStrategy`.
    #[serde(default)]
    pub launch_type: Option<String>,
    /// Capacity provider strategy items, as in the ECS model.
    #[serde(default)]
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    /// Platform version (Fargate).
    #[serde(default)]
    pub platform_version: Option<String>,
    /// awsvpc subnets.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// awsvpc security groups.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// awsvpc public IP assignment.
    #[serde(default)]
    pub assign_public_ip: bool,
    /// The service's task definition (family:revision or ARN).
    #[serde(default)]
    pub task_definition: Option<String>,
    /// `desiredCount` [2].
    #[serde(default)]
    pub desired_count: Option<i64>,
    /// How each deployment `UpdateService` starts rolls out, in order.
    #[serde(default)]
    pub rollouts: Vec<crate::ecs_service::RolloutSpec>,
}

/// One capacity provider strategy item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityProviderItem {
    /// Capacity provider name, e.g. `FARGATE_SPOT`.
    pub capacity_provider: String,
    /// Relative weight.
    #[serde(default)]
    pub weight: i32,
    /// Minimum tasks on this provider.
    #[serde(default)]
    pub base: i32,
}

/// An SSM parameter that exists before the test starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterSpec {
    /// Parameter name.
    pub name: String,
    /// Value; a JSON value other than a string is stored as its JSON text
    /// (convenient for the state parameter).
    pub value: Value,
    /// `String`, `StringList` or `SecureString`.
    #[serde(default = "default_parameter_type", rename = "type")]
    pub kind: String,
}

impl ParameterSpec {
    /// The stored value text.
    pub fn value_text(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

fn default_parameter_type() -> String {
    "String".into()
}

/// What happens to one task `RunTask` creates.
///
/// The task walks through `timeline`, one entry per `DescribeTasks` call
/// that includes it (or one entry per `stepMillis` of wall-clock time), and
/// after the last entry it is `STOPPED` with `stopCode`, `stoppedReason` and
/// the per-container `exitCodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskOutcome {
    /// `lastStatus` values before `STOPPED`; the first is what `RunTask`
    /// answers.
    #[serde(default = "default_timeline")]
    pub timeline: Vec<String>,
    /// Exit code per container name once stopped. Absent: every container
    /// exits 0. A container missing from the map has no exit code.
    #[serde(default)]
    pub exit_codes: Option<BTreeMap<String, i32>>,
    /// `stopCode` once stopped.
    #[serde(default = "default_stop_code")]
    pub stop_code: String,
    /// `stoppedReason` once stopped.
    #[serde(default = "default_stopped_reason")]
    pub stopped_reason: String,
    /// Per-container `reason` once stopped (e.g. `CannotPullContainerError`).
    #[serde(default)]
    pub container_reasons: BTreeMap<String, String>,
    /// `createdAt` is reported this many seconds in the past, so a test can
    /// exercise the function's timeout without sleeping.
    #[serde(default)]
    pub created_seconds_ago: u64,
    /// Advance the timeline by wall-clock time instead of per call.
    #[serde(default)]
    pub step_millis: Option<u64>,
    /// `RunTask` answers this `failures[].reason` and creates nothing.
    #[serde(default)]
    pub run_task_failure: Option<String>,
    /// `failures[].detail` for `runTaskFailure`.
    #[serde(default)]
    pub run_task_failure_detail: Option<String>,
    /// After `StopTask` the task stays `STOPPING` (alive) for this long before
    /// it is `STOPPED`, as a container with a long `stopTimeout` does.
    #[serde(default)]
    pub stop_delay_millis: u64,
    /// The first this many `DescribeTasks` calls that name the task answer
    /// `MISSING` (ECS is eventually consistent right after RunTask).
    #[serde(default)]
    pub missing_describes: u32,
    /// What each container printed (container name → lines, oldest first):
    /// the content of its `awslogs` stream once the task has stopped.
    #[serde(default)]
    pub log_lines: BTreeMap<String, Vec<String>>,
    /// The task's id (the last part of its ARN); absent: random. Lets a
    /// hand-made continuation token (`events/job-continue.json`) name the
    /// task that `RunTask` creates.
    #[serde(default)]
    pub task_id: Option<String>,
}

impl Default for TaskOutcome {
    fn default() -> Self {
        TaskOutcome {
            timeline: default_timeline(),
            exit_codes: None,
            stop_code: default_stop_code(),
            stopped_reason: default_stopped_reason(),
            container_reasons: BTreeMap::new(),
            created_seconds_ago: 0,
            stop_delay_millis: 0,
            missing_describes: 0,
            step_millis: None,
            run_task_failure: None,
            run_task_failure_detail: None,
            log_lines: BTreeMap::new(),
            task_id: None,
        }
    }
}

fn default_timeline() -> Vec<String> {
    vec!["PROVISIONING".into(), "PENDING".into(), "RUNNING".into()]
}
fn default_stop_code() -> String {
    "EssentialContainerExited".into()
}
fn default_stopped_reason() -> String {
    "Essential container in task exited".into()
}

/// A fault injected into chosen calls of one operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Operation name as in `X-Amz-Target`, e.g. `RunTask`.
    pub operation: String,
    /// Which calls (1-based, counting every HTTP request of that operation,
    /// SDK retries included): a list, or `"all"`.
    pub calls: Calls,
    /// What to do instead of (or after) answering.
    pub fault: Fault,
}

/// Call numbers a fault applies to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Calls {
    /// These call numbers (1-based).
    Numbers(Vec<u32>),
    /// The keyword `"all"`.
    Keyword(String),
}

impl Calls {
    /// Whether call number `n` (1-based) is selected.
    pub fn matches(&self, n: u32) -> bool {
        match self {
            Calls::Numbers(ns) => ns.contains(&n),
            Calls::Keyword(k) => k == "all",
        }
    }
}

/// The kinds of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Fault {
    /// HTTP 400 `ThrottlingException` (the SDK retries it with backoff).
    Throttle,
    /// HTTP 500 with the service's internal error code.
    Http500,
    /// HTTP 503 `ServiceUnavailable`.
    Http503,
    /// HTTP 400 `AccessDeniedException` naming the IAM action.
    AccessDenied,
    /// Apply the call, then SIGKILL the calling function process before it
    /// sees the answer.
    Crash,
    /// Apply the call, then answer HTTP 500 as if it had failed: the caller
    /// cannot tell whether it took effect (a timeout after the fact).
    LostAnswer,
}

/// A job whose event Lambda delivers twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuplicateDelivery {
    /// Which job of the action (1 = the first, token-less one).
    pub job: u32,
    /// Deliver both copies at once (otherwise the copy follows when the
    /// first delivery has finished).
    #[serde(default)]
    pub concurrent: bool,
}

/// Delays and limits of the emulation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timing {
    /// Pause between a continuation report and the next job.
    #[serde(default)]
    pub continuation_delay_millis: u64,
    /// Pause before Lambda redelivers a failed async invocation.
    #[serde(default)]
    pub redelivery_delay_millis: u64,
    /// How many times Lambda redelivers a failed async invocation.
    #[serde(default = "default_max_redeliveries")]
    pub max_redeliveries: u32,
    /// A job not reported within this time fails (AWS: 20 minutes).
    #[serde(default = "default_job_timeout")]
    pub job_timeout_seconds: u64,
    /// A fixed `Lambda-Runtime-Deadline-Ms` for every delivery, as an
    /// emulator may send (`cargo lambda watch`: 600000, i.e. 1970); absent:
    /// now + the function timeout, as Lambda sends.
    #[serde(default)]
    pub deadline_millis: Option<u64>,
    /// Every AWS API answer (not the Runtime API's) is held back this long,
    /// as a network round trip to AWS would: `make bench` counts sequential
    /// round trips by the gaps this leaves between dependent calls.
    #[serde(default)]
    pub api_latency_millis: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            continuation_delay_millis: 0,
            redelivery_delay_millis: 0,
            max_redeliveries: default_max_redeliveries(),
            job_timeout_seconds: default_job_timeout(),
            deadline_millis: None,
            api_latency_millis: 0,
        }
    }
}

fn default_max_redeliveries() -> u32 {
    2
}
fn default_job_timeout() -> u64 {
    1200
}

/// Why a scenario could not be loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Loads and checks a scenario file; the error names the file and the
    /// line/column of a syntax or field error.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("cannot read scenario {}: {e}", path.display())))?;
        Self::from_json(&text)
            .map_err(|e| ScenarioError(format!("scenario {}: {}", path.display(), e.0)))
    }

    /// Parses and checks a scenario from JSON text.
    pub fn from_json(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            serde_json::from_str(text).map_err(|e| ScenarioError(e.to_string()))?;
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), ScenarioError> {
        let mut problems = Vec::new();
        for rule in &self.faults {
            if let Calls::Keyword(k) = &rule.calls
                && k != "all"
            {
                problems.push(format!(
                    "fault on {}: calls must be a list of numbers or \"all\", found {k:?}",
                    rule.operation
                ));
            }
        }
        for (i, a) in self.artifacts.iter().enumerate() {
            if self.artifacts[..i].iter().any(|b| b.name == a.name) {
                problems.push(format!("artifact {} is named twice", a.name));
            }
            if a.raw.is_some() && !a.files.is_empty() {
                problems.push(format!(
                    "artifact {}: `raw` and `files` are exclusive",
                    a.name
                ));
            }
            for path in a.pad_to.keys().filter(|p| !a.files.contains_key(*p)) {
                problems.push(format!(
                    "artifact {}: padTo names {path}, which is not in files",
                    a.name
                ));
            }
        }
        for td in &self.task_definitions {
            if td.containers.is_empty() {
                problems.push(format!("task definition {} has no containers", td.family));
            }
        }
        for (i, t) in self.tasks.iter().enumerate() {
            if t.run_task_failure.is_none() && t.timeline.is_empty() {
                problems.push(format!("tasks[{i}]: timeline must not be empty"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError(problems.join("; ")))
        }
    }

    /// The default execution id: the scenario's, or a fresh one.
    pub fn execution_id(&self) -> String {
        self.pipeline
            .execution_id
            .clone()
            .unwrap_or_else(crate::ids::uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = Scenario::from_json("{}").unwrap();
        assert_eq!(s.pipeline.name, "app-pipeline");
        assert_eq!(s.timing.max_redeliveries, 2);
        assert_eq!(s.user_parameters.raw(), "{}");
    }

    #[test]
    fn typos_are_rejected_with_position() {
        let err = Scenario::from_json("{\n  \"taks\": []\n}").unwrap_err();
        assert!(err.0.contains("taks") && err.0.contains("line 2"), "{err}");
    }

    #[test]
    fn execution_variable_is_resolved_textually() {
        let s = Scenario::from_json(
            r##"{"userParameters": {"deployment": "#{codepipeline.PipelineExecutionId}"}}"##,
        )
        .unwrap();
        assert_eq!(s.user_parameters.resolved("abc"), r#"{"deployment":"abc"}"#);
    }

    #[test]
    fn bad_calls_keyword_is_rejected() {
        let err = Scenario::from_json(
            r#"{"faults":[{"operation":"RunTask","calls":"first","fault":"throttle"}]}"#,
        )
        .unwrap_err();
        assert!(err.0.contains("RunTask"));
    }
}
