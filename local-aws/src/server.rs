//! The HTTP server and its router, and [`LocalAws`], the handle tests hold.
//!
//! One router serves every listener: `POST /` with `X-Amz-Target` goes to
//! the AWS services, `/2018-06-01/runtime/…` to the Lambda Runtime API. The
//! main listener (the `AWS_ENDPOINT_URL`) answers AWS calls; each function
//! process gets its own listener for the Runtime API (its
//! `AWS_LAMBDA_RUNTIME_API`), because the connection is the only thing that
//! tells which process asked for the next event — and the host must know
//! that to redeliver the event when that process crashes.

use crate::codepipeline::{JobReport, StageRetry};
use crate::ecs::TaskTimeline;
use crate::function_host::HostInner;
use crate::record::{CallRecord, DeliveryRecord};
use crate::scenario::Scenario;
use crate::ssm::Parameter;
use crate::world::{World, lock};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The response type of every handler.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Routes requests of one listener.
#[derive(Clone)]
pub(crate) struct Router {
    pub world: Arc<World>,
    /// The function instance this listener belongs to (Runtime API).
    pub runtime: Option<(Arc<HostInner>, u64)>,
}

/// Builds a JSON response.
pub(crate) fn json_response(status: u16, body: &Value, headers: &[(&str, &str)]) -> HttpResponse {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
}

impl Router {
    /// Holds an AWS answer back for the scenario's `apiLatencyMillis`.
    async fn latency(&self) {
        let millis = self.world.scenario.timing.api_latency_millis;
        if millis > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        }
    }

    async fn route(self, req: Request<Incoming>) -> Result<HttpResponse, Infallible> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let method = req.method().clone();
        let headers = req.headers().clone();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return Ok(json_response(
                    400,
                    &json!({"__type": "SerializationException", "message": format!("could not read the request body: {e}")}),
                    &[],
                ));
            }
        };
        if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") {
            return Ok(match &self.runtime {
                Some((host, instance)) => {
                    crate::runtime_api::handle(host, *instance, &method, rest, &body).await
                }
                None => json_response(
                    404,
                    &json!({"errorType": "NotFound", "errorMessage": "the Lambda Runtime API is served on each function instance's own port; start the function with FunctionHost"}),
                    &[],
                ),
            });
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if header("x-amz-target").is_none()
            && (method == hyper::Method::GET || method == hyper::Method::HEAD)
        {
            let request = crate::s3::S3Request {
                method: method.to_string(),
                path: path.clone(),
                query: query.unwrap_or_default(),
                headers: headers
                    .iter()
                    .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect(),
            };
            let reply = self.world.s3_call(&request, header("x-amzn-trace-id"));
            self.latency().await;
            let mut builder = Response::builder()
                .status(
                    StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                )
                .header("x-amz-request-id", crate::ids::hex32());
            for (k, v) in &reply.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            return Ok(builder
                .body(Full::new(Bytes::from(reply.body)))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
        }
        let Some(target) = header("x-amz-target") else {
            return Ok(json_response(
                400,
                &json!({"__type": "MissingAuthenticationTokenException", "message": format!("{method} {path}: expected POST / with an X-Amz-Target header (awsJson1_1)")}),
                &[("x-amzn-errortype", "MissingAuthenticationTokenException")],
            ));
        };
        let reply = self
            .world
            .aws_call(&target, header("x-amzn-trace-id"), &body)
            .await;
        self.latency().await;
        let request_id = crate::ids::uuid();
        let mut hs = vec![
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-requestid", request_id.as_str()),
        ];
        if let Some(code) = &reply.error_type {
            hs.push(("x-amzn-errortype", code.as_str()));
        }
        Ok(json_response(reply.status, &reply.body, &hs))
    }
}

/// Serves `listener` with `router` until the returned task is aborted.
pub(crate) fn serve(listener: TcpListener, router: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("local-aws: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let router = router.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| router.clone().route(req));
                // Connection errors (a killed function process) are normal here.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// A running local control plane: SSM, ECS and CodePipeline over HTTP on
/// `127.0.0.1`, with the scenario's initial state. Dropping it stops the
/// server.
pub struct LocalAws {
    pub(crate) world: Arc<World>,
    addr: SocketAddr,
    /// `None` for a control plane called in process ([`crate::inproc`]).
    server: Option<JoinHandle<()>>,
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

impl LocalAws {
    /// Starts the control plane on a free port.
    pub async fn start(scenario: Scenario) -> std::io::Result<LocalAws> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let world = Arc::new(World::new(scenario));
        let server = serve(
            listener,
            Router {
                world: world.clone(),
                runtime: None,
            },
        );
        Ok(LocalAws {
            world,
            addr,
            server: Some(server),
        })
    }

    /// A handle on `world` with no listener (its address is unspecified).
    pub(crate) fn without_server(world: Arc<World>) -> LocalAws {
        LocalAws {
            world,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            server: None,
        }
    }

    /// Loads a scenario file and starts the control plane; panics with the
    /// scenario error, which is what a test wants.
    pub async fn start_file(path: impl AsRef<std::path::Path>) -> LocalAws {
        let scenario = match Scenario::from_file(path) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        match LocalAws::start(scenario).await {
            Ok(aws) => aws,
            Err(e) => panic!("cannot start the local control plane: {e}"),
        }
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The scenario the control plane was started with.
    pub fn scenario(&self) -> &Scenario {
        &self.world.scenario
    }

    /// The environment an SDK client needs to talk to this control plane:
    /// endpoint, fake credentials, region.
    pub fn sdk_environment(&self) -> Vec<(String, String)> {
        sdk_environment(&self.endpoint_url())
    }

    /// Every AWS call so far, in arrival order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.world.recorder.calls()
    }

    /// Every call of one operation (e.g. `"RunTask"`).
    pub fn calls_of(&self, operation: &str) -> Vec<CallRecord> {
        self.calls()
            .into_iter()
            .filter(|c| c.operation == operation)
            .collect()
    }

    /// Every delivery of an invocation to a function process.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.world.recorder.deliveries()
    }

    /// Every accepted job report, oldest first.
    pub fn reports(&self) -> Vec<JobReport> {
        lock(&self.world.pipeline).reports()
    }

    /// Every accepted `RetryStageExecution`.
    pub fn retries(&self) -> Vec<StageRetry> {
        lock(&self.world.pipeline).retries().to_vec()
    }

    /// Status of a pipeline execution (`InProgress`, `Failed`, …).
    pub fn execution_status(&self, execution_id: &str) -> Option<String> {
        lock(&self.world.pipeline)
            .execution(execution_id)
            .map(|e| e.status.clone())
    }

    /// The latest version of an SSM parameter.
    pub fn parameter(&self, name: &str) -> Option<Parameter> {
        lock(&self.world.ssm).get(name).cloned()
    }

    /// The latest version of every SSM parameter.
    pub fn parameters(&self) -> Vec<Parameter> {
        lock(&self.world.ssm).all()
    }

    /// Writes an SSM parameter behind the function's back (e.g. a stale
    /// lock left by a previous run).
    pub fn put_parameter(&self, name: &str, value: &str) {
        lock(&self.world.ssm).seed(name, value, "String", crate::clock::now());
    }

    /// Creates a CodePipeline job for `execution_id` the way the pipeline
    /// driver does (for tests that call the API by hand); returns its id.
    pub fn create_job(&self, execution_id: &str, continuation_token: Option<&str>) -> String {
        lock(&self.world.pipeline)
            .create_job(
                execution_id,
                &crate::ids::uuid(),
                1,
                continuation_token.map(str::to_string),
            )
            .id
    }

    /// Makes a job that CodePipeline did not create known to it under
    /// `job_id` (the id of a hand-made event such as `events/job-start.json`),
    /// as the first job of an action execution of `execution_id`, so that
    /// the function can report it.
    pub fn add_job(&self, job_id: &str, execution_id: &str, continuation_token: Option<&str>) {
        lock(&self.world.pipeline).create_job_with_id(
            job_id.to_owned(),
            execution_id,
            &crate::ids::uuid(),
            1,
            continuation_token.map(str::to_string),
        );
    }

    /// What each task `RunTask` created ran: task definition ARN and the
    /// image of each container.
    pub fn tasks_run(&self) -> Vec<crate::ecs::RanTask> {
        lock(&self.world.ecs).tasks_run()
    }

    /// Every revision of a task definition family, oldest first (those the
    /// scenario made and those `RegisterTaskDefinition` added).
    pub fn revisions(&self, family: &str) -> Vec<crate::ecs::Revision> {
        lock(&self.world.ecs).revisions(family)
    }

    /// The artifact store's objects (one per scenario artifact).
    pub fn artifacts(&self) -> Vec<crate::s3::Object> {
        self.world.s3.objects()
    }

    /// Replaces artifact `name`'s ZIP with one of `files` (path, content).
    pub fn replace_artifact(&self, name: &str, files: &[(&str, &str)]) {
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(path, content)| (path.to_string(), content.as_bytes().to_vec()))
            .collect();
        self.world.s3.replace(name, crate::s3::zip_files(&files));
    }

    /// How many tasks `RunTask` has created.
    pub fn task_count(&self) -> usize {
        lock(&self.world.ecs).tasks().len()
    }

    /// The timeline of every task (created, running, stop requested,
    /// stopped), relative to the control plane's start.
    pub fn task_timeline(&self) -> Vec<TaskTimeline> {
        lock(&self.world.ecs).timeline(self.world.origin)
    }

    /// Pairs of tasks whose active intervals (created → stopped, or stop
    /// requested when never observed stopped, or still running) overlap:
    /// two migrations that may have run at the same time. Empty is good.
    pub fn overlapping_tasks(&self) -> Vec<(String, String)> {
        let tasks = self.task_timeline();
        let mut pairs = Vec::new();
        for (i, a) in tasks.iter().enumerate() {
            for b in &tasks[i + 1..] {
                let a_end = a.end();
                let b_end = b.end();
                let a_before_b = a_end.is_some_and(|e| e <= b.created);
                let b_before_a = b_end.is_some_and(|e| e <= a.created);
                if !a_before_b && !b_before_a {
                    pairs.push((a.arn.clone(), b.arn.clone()));
                }
            }
        }
        pairs
    }
}

/// The environment an SDK client (or the function) needs to talk to the
/// control plane at `endpoint`: endpoint, fake credentials, region, no IMDS.
pub(crate) fn sdk_environment(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.to_owned()),
        ("AWS_REGION".into(), crate::wire::REGION.into()),
        ("AWS_DEFAULT_REGION".into(), crate::wire::REGION.into()),
        ("AWS_ACCESS_KEY_ID".into(), crate::FAKE_ACCESS_KEY_ID.into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            crate::FAKE_SECRET_ACCESS_KEY.into(),
        ),
        ("AWS_SESSION_TOKEN".into(), crate::FAKE_SESSION_TOKEN.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}
