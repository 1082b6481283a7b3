//! A local control plane for migrate-once: everything the Lambda talks to,
//! on `127.0.0.1`, so the real built binary can be run end to end without
//! an AWS account. Dev-only; never linked into `bootstrap`.
//!
//! A test is a few lines:
//!
//! ```no_run
//! # async fn demo() {
//! use local_aws::{FunctionHost, LocalAws, PipelineDriver};
//! let aws = LocalAws::start_file("tests/scenarios/success.json").await;
//! let host = FunctionHost::for_scenario(&aws, "target/debug/migrate-once").unwrap();
//! let result = PipelineDriver::new(&aws, &host).run_default().await;
//! assert!(result.succeeded());
//! assert_eq!(result.tasks_started(), 1);
//! # }
//! ```
//!
//! Map of the modules:
//!
//! - [`server`] — the HTTP server and router; [`LocalAws`], the handle
//!   tests hold (calls, reports, parameters, task timeline).
//! - [`wire`] — awsJson1_1 details: error bodies, epoch timestamps, typed
//!   field access, AWS-style validation messages.
//! - [`ssm`] — Parameter Store (create-only puts, versions, by-path).
//! - [`ecs`] — task definitions, services, `RunTask` with `clientToken`,
//!   `DescribeTasks`, `StopTask`, `ListTasks`.
//! - [`ecs_task`] — one scripted task's lifecycle and JSON shape.
//! - [`ecs_service`] — service deployments: `UpdateService`, scripted
//!   rollouts (completed, failed, rolled back), events, stopped tasks.
//! - [`codepipeline`] — jobs and their once-only reports; pipeline,
//!   executions and stage retries.
//! - [`logs`] — CloudWatch Logs `GetLogEvents` over the tasks' scripted
//!   `logLines`.
//! - [`runtime_api`] — the Lambda Runtime API routes.
//! - [`function_host`] — runs the function binary as a pool of processes
//!   with async-invoke redelivery and crash restarts.
//! - [`pipeline_driver`] — runs an action execution like CodePipeline:
//!   job, invoke, report, continuation, next job.
//! - [`scenario`] — the scenario file format.
//! - [`faults`] — throttling / 5xx / access denied / crash injection.
//! - [`quota`] — per-account token-bucket API quotas.
//! - [`fleet`] — many deployments at once under those quotas (`make fleet`).
//! - [`record`] — the call and delivery logs.
//! - [`console`] — prints what the CodePipeline console would show.
//! - [`inproc`] — the same world called in process (the simulator).
//! - [`http_client`] — a tiny HTTP client for tests of this crate.
//! - [`ids`] — AWS-shaped ids.

pub mod clock;
pub mod codepipeline;
pub mod console;
pub mod ecs;
pub mod ecs_service;
pub mod ecs_task;
pub mod faults;
pub mod fleet;
pub mod function_host;
pub mod http_client;
pub mod ids;
pub mod inproc;
pub mod logs;
pub mod pipeline_driver;
pub mod quota;
pub mod record;
pub(crate) mod runtime_api;
pub mod s3;
pub mod scenario;
pub mod server;
pub mod ssm;
pub mod wire;
pub(crate) mod world;

pub use codepipeline::{JobReport, StageRetry};
pub use console::Console;
pub use ecs::TaskTimeline;
pub use faults::Service;
pub use function_host::{
    Attempt, AttemptResult, FunctionConfig, FunctionHost, InvocationHandle, InvocationOutcome,
};
pub use pipeline_driver::{ActionEvent, ActionResult, ActionStatus, Observer, PipelineDriver};
pub use record::{CallRecord, DeliveryRecord};
pub use scenario::{Fault, Scenario, TaskOutcome};
pub use server::LocalAws;
pub use ssm::Parameter;

/// `AWS_ACCESS_KEY_ID` given to the function (fake; never checked).
pub const FAKE_ACCESS_KEY_ID: &str = "AKIALOCALAWSEXAMPLE";
/// `AWS_SECRET_ACCESS_KEY` given to the function — must never be logged.
pub const FAKE_SECRET_ACCESS_KEY: &str = "local-aws-secret-DO-NOT-LOG-4c9e1d";
/// `AWS_SESSION_TOKEN` given to the function — must never be logged.
pub const FAKE_SESSION_TOKEN: &str = "local-aws-session-token-DO-NOT-LOG-8a2f";
