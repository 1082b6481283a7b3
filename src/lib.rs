//! migrate-once: run a one-off ECS migration task exactly once per
//! CodePipeline deployment, never concurrently, and report the outcome.
//!
//! The modules, in the order a reader meets them:
//!
//! - [`event`]: the events the function accepts, parsed leniently.
//! - [`config`]: UserParameters merged over `MIGRATE_ONCE_*` defaults.
//! - [`artifact`]: the images the pipeline deploys, read from its input artifact.
//! - [`revision`]: the task definition revision that runs those images.
//! - [`job`]: a CodePipeline job from event to report — the state machine
//!   ([`job::plan`]: who may start an attempt; `start`, `watch`, `text`).
//! - [`rerun`]: EventBridge-driven reruns and stops.
//! - [`state`]: the attempt records in SSM (one create-only claim per attempt)
//!   and the summary in the state parameter.
//! - [`lock`]: the lock that keeps two migrations of one database apart; it
//!   follows the holder's task.
//! - [`task`]: the ECS task: decisive container, idempotent RunTask, describe, stop.
//! - [`outcome`]: what a task's status means — pure decisions.
//! - [`logs`]: the migration's own last log lines, for a failure message.
//! - [`roll`]: rolling the services after the migration — the UpdateService
//!   request, following each deployment by its id ([`roll::plan_roll`]), words.
//! - [`sdk`]: how every AWS call is retried and bounded.
//! - [`token`]: the continuation token between invocations.
//! - [`report`]: the one report each job gets.
//! - [`failure`]: the failures a pipeline sees, and AWS errors mapped to them.
//! - [`invocation`]: what Lambda sees: the deadline, sanitised; stable error types.
//! - [`logging`]: the function's own log, which no dump of an event or body reaches.
//! - [`clock`]: the time of day and the jitter, wall or virtual (the simulator).
//! - [`claim`]: `migrate-once claim`, the instance-side once-per-reset claim (§8).

pub mod artifact;
pub mod claim;
pub mod clock;
pub mod config;
pub mod event;
pub mod failure;
pub mod invocation;
pub mod job;
pub mod lock;
pub mod logging;
pub mod logs;
pub mod outcome;
pub mod report;
pub mod rerun;
pub mod revision;
pub mod roll;
pub mod sdk;
pub mod state;
pub mod task;
pub mod token;

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::event::Event;
use crate::invocation::InvocationError;
use crate::rerun::Rerunner;

/// The AWS clients, built once per cold start and lent to every invocation.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ssm: aws_sdk_ssm::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub pipeline: aws_sdk_codepipeline::Client,
    /// CloudWatch Logs, to quote a failed migration's last lines.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// S3, to read the input artifact; each request carries the job's
    /// artifact credentials (see [`artifact::read_object`]).
    pub s3: artifact::S3,
}

impl Clients {
    /// Clients for one shared SDK configuration.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Clients {
            ssm: aws_sdk_ssm::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            pipeline: aws_sdk_codepipeline::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            s3: artifact::S3::lazy(sdk),
        }
    }
}

/// Everything an invocation needs that outlives it.
#[derive(Debug)]
pub struct Function {
    pub clients: Clients,
    /// The `MIGRATE_ONCE_*` environment variables, read once.
    pub defaults: Vec<(String, String)>,
    /// This function's name, to find its actions in a pipeline.
    pub function_name: String,
    /// The one clock every invocation reads ([`clock`]).
    pub clock: Arc<clock::Clock>,
}

impl Function {
    /// Reads the configuration defaults from the process environment.
    pub fn new(clients: Clients) -> Self {
        let defaults = std::env::vars()
            .filter(|(name, _)| name.starts_with(config::ENV_PREFIX))
            .collect();
        let function_name =
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "migrate-once".into());
        Function {
            clients,
            defaults,
            function_name,
            clock: Arc::new(clock::Clock::wall()),
        }
    }

    /// Handles one invocation. Returns `Err` when the event is not one we
    /// accept, when a job could not be reported, or when an EventBridge
    /// action failed (so Lambda delivers it again; every path is
    /// idempotent); each with a stable `errorType` ([`InvocationError`]).
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, InvocationError> {
        self.clock.scope(self.handle_in_scope(event)).await
    }

    async fn handle_in_scope(&self, event: LambdaEvent<Value>) -> Result<Value, InvocationError> {
        let fallback = invocation::FALLBACK_BUDGET;
        let (deadline, replaced) =
            invocation::invocation_deadline(event.context.deadline, clock::now(), fallback);
        if let Some(why) = replaced {
            invocation::warn_deadline_replaced(why, event.context.deadline, fallback);
        }
        match event::parse(event.payload).map_err(InvocationError::UnrecognizedEvent)? {
            Event::Job(job) => {
                // Boxed: the job future is large, and deep to lay out.
                let sent = Box::pin(job::handle(&self.clients, &self.defaults, &job, deadline))
                    .await
                    .map_err(|failure| InvocationError::ReportFailed {
                        job_id: job.id.clone(),
                        failure,
                    })?;
                Ok(json!({ "job": job.id, "reported": format!("{sent:?}") }))
            }
            Event::ActionFailed(event) => {
                let done = self.rerunner().action_failed(&event).await;
                Ok(json!({ "done": done.map_err(InvocationError::RerunFailed)? }))
            }
            Event::PipelineStopped(event) => {
                let done = self.rerunner().pipeline_stopped(&event).await;
                Ok(json!({ "done": done.map_err(InvocationError::StopFailed)? }))
            }
            Event::RerunRequested(request) => {
                let done = self.rerunner().rerun_requested(&request).await;
                Ok(json!({ "done": done.map_err(InvocationError::RerunFailed)? }))
            }
        }
    }

    fn rerunner(&self) -> Rerunner<'_> {
        Rerunner {
            clients: &self.clients,
            defaults: &self.defaults,
            function_name: &self.function_name,
        }
    }
}
