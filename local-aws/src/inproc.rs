//! The control plane without sockets: the same world, called in process.
//!
//! The whole-system tests reach [`World`] over HTTP from the real binary;
//! the simulator (`sim/`) drives the function's handler in its own process
//! and hands every SDK request straight to [`LocalAws::call`]. One world
//! model, two drivers: whatever a scenario means over HTTP it means here.

use crate::server::LocalAws;
use crate::world::World;
use std::sync::Arc;

/// An HTTP request as an SDK client sends it.
#[derive(Debug, Clone, Default)]
pub struct WireRequest {
    /// `POST`, `GET`, …
    pub method: String,
    /// The path, percent-encoded, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl WireRequest {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The awsJson operation (`RunTask`), or `GetObject` for S3.
    pub fn operation(&self) -> &str {
        match self.header("x-amz-target") {
            Some(target) => target.split_once('.').map_or(target, |(_, op)| op),
            None => "GetObject",
        }
    }
}

/// The answer to a [`WireRequest`].
#[derive(Debug, Clone)]
pub struct WireResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers to hand the client.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl LocalAws {
    /// A control plane that listens nowhere: call it with [`LocalAws::call`].
    pub fn in_process(scenario: crate::Scenario) -> LocalAws {
        LocalAws::without_server(Arc::new(World::new(scenario)))
    }

    /// Answers one request as the HTTP router would (awsJson by
    /// `X-Amz-Target`, else S3 REST), without the scenario's latency.
    pub async fn call(&self, request: &WireRequest) -> WireResponse {
        let trace = request.header("x-amzn-trace-id").map(str::to_owned);
        match request.header("x-amz-target") {
            Some(target) => {
                let target = target.to_owned();
                let reply = self.world.aws_call(&target, trace, &request.body).await;
                let mut headers = vec![(
                    "content-type".to_owned(),
                    "application/x-amz-json-1.1".to_owned(),
                )];
                if let Some(code) = reply.error_type {
                    headers.push(("x-amzn-errortype".to_owned(), code));
                }
                WireResponse {
                    status: reply.status,
                    headers,
                    body: reply.body.to_string().into_bytes(),
                }
            }
            None => {
                let s3 = crate::s3::S3Request {
                    method: request.method.clone(),
                    path: request.path.clone(),
                    query: request.query.clone(),
                    headers: request.headers.clone(),
                };
                let reply = self.world.s3_call(&s3, trace);
                WireResponse {
                    status: reply.status,
                    headers: reply.headers,
                    body: reply.body,
                }
            }
        }
    }
}

/// What CodePipeline itself does, for a driver that plays CodePipeline.
impl LocalAws {
    /// Creates job `number` of an action execution (what CodePipeline does
    /// when the action starts and after each continuation report).
    pub fn new_job(
        &self,
        execution_id: &str,
        action_execution_id: &str,
        number: u32,
        continuation_token: Option<String>,
    ) -> crate::codepipeline::Job {
        crate::world::lock(&self.world.pipeline).create_job(
            execution_id,
            action_execution_id,
            number,
            continuation_token,
        )
    }

    /// The job event Lambda receives for `job`, as CodePipeline sends it.
    pub fn job_event(&self, job: &crate::codepipeline::Job) -> serde_json::Value {
        crate::pipeline_driver::job_event(&self.world, job)
    }

    /// The report of job `id`, once it has one.
    pub fn job_report(&self, id: &str) -> Option<crate::JobReport> {
        crate::world::lock(&self.world.pipeline)
            .job(id)
            .and_then(|j| j.report.clone())
    }

    /// The UserParameters job `id` was created with (variables resolved).
    pub fn job_user_parameters(&self, id: &str) -> Option<String> {
        crate::world::lock(&self.world.pipeline)
            .job(id)
            .map(|j| j.user_parameters.clone())
    }

    /// Marks the action's stage of `execution_id` in progress.
    pub fn start_stage(&self, execution_id: &str) {
        crate::world::lock(&self.world.pipeline).start_stage(execution_id);
    }

    /// Records how the action's stage of `execution_id` ended.
    pub fn finish_stage(&self, execution_id: &str, succeeded: bool) {
        crate::world::lock(&self.world.pipeline).finish_stage(execution_id, succeeded);
    }

    /// Every task ECS created, with its scripted outcome and what RunTask
    /// asked for.
    pub fn tasks(&self) -> Vec<crate::ecs_task::Task> {
        crate::world::lock(&self.world.ecs).tasks().to_vec()
    }
}
