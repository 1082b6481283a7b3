//! The function host: runs the real built Lambda binary as child processes
//! and gives them Lambda's asynchronous-invocation semantics.
//!
//! - A pool of execution environments (processes), at most
//!   `max_instances`. An invocation goes to an idle process, else to a new
//!   one (a cold start), else waits in the queue.
//! - An invocation that returns an error, crashes its process or runs past
//!   the function timeout is delivered again (same request id, new trace
//!   id), up to `max_redeliveries` more times, after `redelivery_delay`.
//! - A process that exits is gone; the next invocation starts a new one.
//! - Each process gets its own Runtime API port, so the host always knows
//!   which process holds which delivery (to redeliver after a crash, and to
//!   kill the right process for a `crash` fault, found through the
//!   `X-Amzn-Trace-Id` the SDK forwards from `_X_AMZN_TRACE_ID`).
//! - stdout/stderr are captured (and optionally echoed) for assertions such
//!   as "no secret in the logs".

use crate::record::DeliveryRecord;
use crate::scenario::Scenario;
use crate::server::{LocalAws, Router, serve};
use crate::world::{World, lock};
use hyper::body::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// How the host runs the function.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The built Lambda binary (`bootstrap`).
    pub bootstrap: PathBuf,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    pub memory_mb: u32,
    /// Function timeout; sets the deadline header and kills overruns.
    pub timeout: Duration,
    /// A fixed deadline header (epoch ms) instead of now + `timeout`, to
    /// play an emulator that sends a bogus one; overruns are still killed
    /// after `timeout`.
    pub deadline_ms: Option<u64>,
    /// Most concurrent processes.
    pub max_instances: usize,
    /// Async-invoke retries after the first delivery (Lambda: 2).
    pub max_redeliveries: u32,
    /// Pause before a redelivery (Lambda: about a minute; here ~0).
    pub redelivery_delay: Duration,
    /// Extra environment (after the Lambda and AWS variables).
    pub environment: BTreeMap<String, String>,
    /// Echo the function's output to this process's stderr.
    pub echo_logs: bool,
}

impl FunctionConfig {
    /// The function as the scenario describes it.
    pub fn from_scenario(scenario: &Scenario, bootstrap: impl Into<PathBuf>) -> Self {
        FunctionConfig {
            bootstrap: bootstrap.into(),
            function_name: scenario.function.name.clone(),
            memory_mb: scenario.function.memory_mb,
            timeout: Duration::from_secs(scenario.function.timeout_seconds),
            deadline_ms: scenario.timing.deadline_millis,
            max_instances: scenario.function.max_instances.max(1),
            max_redeliveries: scenario.timing.max_redeliveries,
            redelivery_delay: Duration::from_millis(scenario.timing.redelivery_delay_millis),
            environment: scenario.environment.clone(),
            echo_logs: std::env::var_os("LOCAL_AWS_ECHO_LOGS").is_some_and(|v| v != "0"),
        }
    }
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    /// The function returned `Ok` with this response body.
    Response(String),
    /// The function returned `Err` (`POST …/error`).
    Error {
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        error_message: String,
    },
    /// The process died (exit status or the reason it was killed).
    Crashed(String),
    /// Still running at the function timeout; killed.
    TimedOut,
}

impl AttemptResult {
    /// Whether Lambda considers the invocation successful.
    pub fn is_success(&self) -> bool {
        matches!(self, AttemptResult::Response(_))
    }
}

impl std::fmt::Display for AttemptResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptResult::Response(_) => write!(f, "returned Ok"),
            AttemptResult::Error {
                error_type,
                error_message,
            } => write!(f, "returned Err ({error_type}: {error_message})"),
            AttemptResult::Crashed(why) => write!(f, "crashed ({why})"),
            AttemptResult::TimedOut => write!(f, "timed out"),
        }
    }
}

/// One delivery of an invocation and how it ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1, 2, 3.
    pub number: u32,
    /// The process slot that ran it.
    pub instance: u64,
    /// The trace id handed out.
    pub trace_id: String,
    /// How it ended.
    pub result: AttemptResult,
}

/// Everything that happened to one asynchronous invocation.
#[derive(Debug, Clone)]
pub struct InvocationOutcome {
    /// The Lambda request id (shared by redeliveries).
    pub request_id: String,
    /// Every delivery, in order.
    pub attempts: Vec<Attempt>,
}

impl InvocationOutcome {
    /// Whether the last delivery succeeded.
    pub fn succeeded(&self) -> bool {
        self.attempts.last().is_some_and(|a| a.result.is_success())
    }
}

/// A pending asynchronous invocation.
pub struct InvocationHandle {
    /// The Lambda request id.
    pub request_id: String,
    rx: oneshot::Receiver<InvocationOutcome>,
}

impl InvocationHandle {
    /// Waits until the invocation succeeded or ran out of deliveries.
    pub async fn wait(self) -> InvocationOutcome {
        let request_id = self.request_id;
        self.rx.await.unwrap_or_else(|_| InvocationOutcome {
            request_id,
            attempts: vec![Attempt {
                number: 0,
                instance: 0,
                trace_id: String::new(),
                result: AttemptResult::Crashed("the function host was shut down".into()),
            }],
        })
    }
}

pub(crate) struct Invocation {
    pub request_id: String,
    pub event: Bytes,
    job_id: Option<String>,
    attempts: Mutex<Vec<Attempt>>,
    done: Mutex<Option<oneshot::Sender<InvocationOutcome>>>,
}

#[derive(Clone)]
pub(crate) struct Delivery {
    pub invocation: Arc<Invocation>,
    pub attempt: u32,
    pub trace_id: String,
    pub deadline_ms: u64,
}

type KillRequest = oneshot::Sender<()>;

struct Instance {
    busy: Option<Delivery>,
    handed_out: bool,
    notify: Arc<Notify>,
    kill: mpsc::UnboundedSender<KillRequest>,
    /// Why the host killed it (reported instead of "crashed").
    kill_reason: Option<AttemptResult>,
    listener: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Pool {
    instances: BTreeMap<u64, Instance>,
    queue: VecDeque<Delivery>,
    closed: bool,
}

/// Shared state of the host (also reached from the Runtime API routes and
/// the `crash` fault).
pub(crate) struct HostInner {
    world: Arc<World>,
    endpoint: String,
    config: FunctionConfig,
    pool: Mutex<Pool>,
    logs: Mutex<String>,
    next_instance: AtomicU64,
    cold_starts: AtomicU64,
}

/// Runs the function binary under Lambda's async-invoke semantics. Dropping
/// it kills every process.
pub struct FunctionHost {
    inner: Arc<HostInner>,
}

impl Drop for FunctionHost {
    fn drop(&mut self) {
        self.inner.close();
    }
}

fn now_ms() -> u64 {
    crate::clock::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl FunctionHost {
    /// Attaches a function host to the control plane. Fails when the
    /// bootstrap binary does not exist (build it first).
    pub fn start(aws: &LocalAws, config: FunctionConfig) -> std::io::Result<FunctionHost> {
        if !config.bootstrap.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "function binary {} not found; build it first (cargo build --bin migrate-once)",
                    config.bootstrap.display()
                ),
            ));
        }
        let inner = Arc::new(HostInner {
            world: aws.world.clone(),
            endpoint: aws.endpoint_url(),
            config,
            pool: Mutex::new(Pool::default()),
            logs: Mutex::new(String::new()),
            next_instance: AtomicU64::new(1),
            cold_starts: AtomicU64::new(0),
        });
        *lock(&aws.world.host) = Arc::downgrade(&inner);
        Ok(FunctionHost { inner })
    }

    /// A host for the scenario's function, running `bootstrap`.
    pub fn for_scenario(
        aws: &LocalAws,
        bootstrap: impl Into<PathBuf>,
    ) -> std::io::Result<FunctionHost> {
        Self::start(
            aws,
            FunctionConfig::from_scenario(aws.scenario(), bootstrap),
        )
    }

    /// Invokes the function asynchronously with `event` (`InvocationType:
    /// Event`): returns at once; the handle resolves when it is done.
    pub fn invoke_async(&self, event: &Value) -> InvocationHandle {
        self.inner.invoke_async(event)
    }

    /// Everything the function processes printed so far.
    pub fn logs(&self) -> String {
        lock(&self.inner.logs).clone()
    }

    /// How many processes were started (cold starts).
    pub fn cold_starts(&self) -> u64 {
        self.inner.cold_starts.load(Ordering::Relaxed)
    }

    /// Kills every process and refuses new invocations.
    pub fn shutdown(&self) {
        self.inner.close();
    }

    pub(crate) fn inner(&self) -> Arc<HostInner> {
        self.inner.clone()
    }
}

impl HostInner {
    pub(crate) fn function_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            crate::wire::REGION,
            crate::wire::ACCOUNT,
            self.config.function_name
        )
    }

    pub(crate) fn invoke_async(self: &Arc<Self>, event: &Value) -> InvocationHandle {
        let (tx, rx) = oneshot::channel();
        let request_id = crate::ids::uuid();
        let job_id = event
            .get("CodePipeline.job")
            .and_then(|j| j.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let invocation = Arc::new(Invocation {
            request_id: request_id.clone(),
            event: Bytes::from(event.to_string()),
            job_id,
            attempts: Mutex::new(Vec::new()),
            done: Mutex::new(Some(tx)),
        });
        self.submit(self.new_delivery(invocation, 1));
        InvocationHandle { request_id, rx }
    }

    fn new_delivery(&self, invocation: Arc<Invocation>, attempt: u32) -> Delivery {
        Delivery {
            invocation,
            attempt,
            trace_id: crate::ids::trace_id(),
            deadline_ms: 0,
        }
    }

    fn log(&self, line: &str) {
        if self.config.echo_logs {
            eprintln!("{line}");
        }
        let mut logs = lock(&self.logs);
        logs.push_str(line);
        logs.push('\n');
    }

    /// Gives a delivery to an idle process, a new process, or the queue.
    fn submit(self: &Arc<Self>, delivery: Delivery) {
        let launch = {
            let mut pool = lock(&self.pool);
            if pool.closed {
                drop(pool);
                self.finish_attempt(
                    delivery,
                    0,
                    AttemptResult::Crashed("the function host was shut down".into()),
                );
                return;
            }
            if let Some(inst) = pool.instances.values_mut().find(|i| i.busy.is_none()) {
                inst.busy = Some(delivery);
                inst.handed_out = false;
                inst.notify.notify_one();
                None
            } else if pool.instances.len() < self.config.max_instances {
                let id = self.next_instance.fetch_add(1, Ordering::Relaxed);
                let (kill_tx, kill_rx) = mpsc::unbounded_channel();
                pool.instances.insert(
                    id,
                    Instance {
                        busy: Some(delivery),
                        handed_out: false,
                        notify: Arc::new(Notify::new()),
                        kill: kill_tx,
                        kill_reason: None,
                        listener: None,
                    },
                );
                Some((id, kill_rx))
            } else {
                pool.queue.push_back(delivery);
                None
            }
        };
        if let Some((id, kill_rx)) = launch {
            self.launch(id, kill_rx);
        }
    }

    fn base_environment(&self, runtime_api: &str, id: u64) -> Vec<(String, String)> {
        let c = &self.config;
        let mut env: Vec<(String, String)> = vec![
            ("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.into()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), c.function_name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                c.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                format!("/aws/lambda/{}", c.function_name),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME".into(),
                format!("2025/01/01/[$LATEST]{:032x}", id),
            ),
            (
                "AWS_EXECUTION_ENV".into(),
                "AWS_Lambda_provided.al2023".into(),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
            ("_HANDLER".into(), "bootstrap".into()),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("TZ".into(), ":UTC".into()),
        ];
        if let Some(dir) = c.bootstrap.parent() {
            env.push(("LAMBDA_TASK_ROOT".into(), dir.display().to_string()));
        }
        if let Some(path) = std::env::var_os("PATH") {
            env.push(("PATH".into(), path.to_string_lossy().into_owned()));
        }
        for key in [
            "RUST_LOG",
            "RUST_BACKTRACE",
            "AWS_LAMBDA_LOG_LEVEL",
            "AWS_LAMBDA_LOG_FORMAT",
        ] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.into(), v));
            }
        }
        env.extend(crate::server::sdk_environment(&self.endpoint));
        env.extend(c.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// Starts process `id` (its slot is already in the pool, holding its
    /// first delivery).
    fn launch(self: &Arc<Self>, id: u64, kill_rx: mpsc::UnboundedReceiver<KillRequest>) {
        match self.try_launch(id, kill_rx) {
            Ok(()) => {
                self.cold_starts.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.log(&format!(
                    "[local-aws] cannot start function instance {id}: {e}"
                ));
                self.on_exit(id, format!("could not start: {e}"));
            }
        }
    }

    fn try_launch(
        self: &Arc<Self>,
        id: u64,
        kill_rx: mpsc::UnboundedReceiver<KillRequest>,
    ) -> std::io::Result<()> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let server = serve(
            listener,
            Router {
                world: self.world.clone(),
                runtime: Some((self.clone(), id)),
            },
        );
        {
            let mut pool = lock(&self.pool);
            match pool.instances.get_mut(&id) {
                Some(inst) => inst.listener = Some(server),
                None => {
                    server.abort();
                    return Ok(());
                }
            }
        }
        let mut cmd = Command::new(&self.config.bootstrap);
        cmd.env_clear()
            .envs(self.base_environment(&addr.to_string(), id))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        self.log(&format!(
            "[local-aws] started function instance {id} (pid {}, runtime API {addr})",
            child.id().unwrap_or(0)
        ));
        if let Some(out) = child.stdout.take() {
            self.capture(id, "out", out);
        }
        if let Some(err) = child.stderr.take() {
            self.capture(id, "err", err);
        }
        let inner = self.clone();
        tokio::spawn(async move { inner.watch(id, child, kill_rx).await });
        Ok(())
    }

    fn capture(
        self: &Arc<Self>,
        id: u64,
        stream: &'static str,
        pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    ) {
        let inner = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                inner.log(&format!("[fn#{id} {stream}] {line}"));
            }
        });
    }

    async fn watch(
        self: Arc<Self>,
        id: u64,
        mut child: Child,
        mut kill_rx: mpsc::UnboundedReceiver<KillRequest>,
    ) {
        let status = loop {
            // `biased`: an exit already seen wins over a kill request, and
            // the choice does not depend on tokio's select RNG.
            tokio::select! {
                biased;
                status = child.wait() => break status,
                request = kill_rx.recv() => match request {
                    Some(ack) => {
                        let _ = child.start_kill();
                        let _ = ack.send(());
                    }
                    None => break child.wait().await,
                },
            }
        };
        let description = match status {
            Ok(s) => s.to_string(),
            Err(e) => format!("wait failed: {e}"),
        };
        self.log(&format!(
            "[local-aws] function instance {id} ended: {description}"
        ));
        self.on_exit(id, description);
    }

    /// A process ended: fail what it held, and start a process for queued
    /// work if there is room now.
    fn on_exit(self: &Arc<Self>, id: u64, description: String) {
        let (held, reason, launch) = {
            let mut pool = lock(&self.pool);
            let Some(inst) = pool.instances.remove(&id) else {
                return;
            };
            if let Some(l) = &inst.listener {
                l.abort();
            }
            let launch = if !pool.closed && !pool.queue.is_empty() {
                pool.queue.pop_front().map(|d| {
                    let new_id = self.next_instance.fetch_add(1, Ordering::Relaxed);
                    let (kill_tx, kill_rx) = mpsc::unbounded_channel();
                    pool.instances.insert(
                        new_id,
                        Instance {
                            busy: Some(d),
                            handed_out: false,
                            notify: Arc::new(Notify::new()),
                            kill: kill_tx,
                            kill_reason: None,
                            listener: None,
                        },
                    );
                    (new_id, kill_rx)
                })
            } else {
                None
            };
            (inst.busy, inst.kill_reason, launch)
        };
        if let Some(d) = held {
            let result = reason.unwrap_or(AttemptResult::Crashed(format!(
                "process exited: {description}"
            )));
            self.finish_attempt(d, id, result);
        }
        if let Some((new_id, kill_rx)) = launch {
            self.launch(new_id, kill_rx);
        }
    }

    /// Records how a delivery ended; redelivers or completes the invocation.
    fn finish_attempt(self: &Arc<Self>, d: Delivery, instance: u64, result: AttemptResult) {
        let success = result.is_success();
        let attempts = {
            let mut attempts = lock(&d.invocation.attempts);
            attempts.push(Attempt {
                number: d.attempt,
                instance,
                trace_id: d.trace_id.clone(),
                result,
            });
            attempts.clone()
        };
        let closed = lock(&self.pool).closed;
        if !success && d.attempt <= self.config.max_redeliveries && !closed {
            let inner = self.clone();
            let delay = self.config.redelivery_delay;
            let next = self.new_delivery(d.invocation.clone(), d.attempt + 1);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                inner.submit(next);
            });
            return;
        }
        if let Some(tx) = lock(&d.invocation.done).take() {
            let _ = tx.send(InvocationOutcome {
                request_id: d.invocation.request_id.clone(),
                attempts,
            });
        }
    }

    /// `GET invocation/next` of process `id`: waits for its delivery.
    pub(crate) async fn next(self: &Arc<Self>, id: u64) -> Result<Delivery, String> {
        loop {
            let notify = {
                let mut pool = lock(&self.pool);
                let inst = pool
                    .instances
                    .get_mut(&id)
                    .ok_or_else(|| format!("function instance {id} is not running"))?;
                if !inst.handed_out
                    && let Some(d) = inst.busy.as_mut()
                {
                    inst.handed_out = true;
                    d.deadline_ms = self
                        .config
                        .deadline_ms
                        .unwrap_or_else(|| now_ms() + self.config.timeout.as_millis() as u64);
                    let d = d.clone();
                    drop(pool);
                    self.world.recorder.push_delivery(DeliveryRecord {
                        request_id: d.invocation.request_id.clone(),
                        attempt: d.attempt,
                        trace_id: d.trace_id.clone(),
                        instance: id,
                        job_id: d.invocation.job_id.clone(),
                        at: self.world.recorder.elapsed(),
                    });
                    self.arm_timeout(id, &d);
                    return Ok(d);
                }
                inst.notify.clone()
            };
            notify.notified().await;
        }
    }

    fn arm_timeout(self: &Arc<Self>, id: u64, d: &Delivery) {
        let inner = self.clone();
        let request_id = d.invocation.request_id.clone();
        let attempt = d.attempt;
        let timeout = self.config.timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let mut pool = lock(&inner.pool);
            if let Some(inst) = pool.instances.get_mut(&id)
                && inst.handed_out
                && inst
                    .busy
                    .as_ref()
                    .is_some_and(|b| b.invocation.request_id == request_id && b.attempt == attempt)
            {
                inst.kill_reason = Some(AttemptResult::TimedOut);
                let (ack, _) = oneshot::channel();
                let _ = inst.kill.send(ack);
            }
        });
    }

    /// Takes the delivery process `id` holds, if it is `request_id`.
    fn take_delivery(&self, id: u64, request_id: &str) -> Result<Delivery, String> {
        let mut pool = lock(&self.pool);
        let holds = pool.instances.get(&id).is_some_and(|inst| {
            inst.handed_out
                && inst
                    .busy
                    .as_ref()
                    .is_some_and(|d| d.invocation.request_id == request_id)
        });
        if !holds {
            return Err(format!(
                "function instance {id} has no invocation {request_id} in progress"
            ));
        }
        let queued = if pool.closed {
            None
        } else {
            pool.queue.pop_front()
        };
        let inst = pool
            .instances
            .get_mut(&id)
            .ok_or_else(|| format!("function instance {id} is gone"))?;
        let d = inst
            .busy
            .take()
            .ok_or_else(|| format!("function instance {id} holds nothing"))?;
        inst.handed_out = false;
        if let Some(q) = queued {
            inst.busy = Some(q);
            inst.notify.notify_one();
        }
        Ok(d)
    }

    /// `POST invocation/{id}/response`.
    pub(crate) fn respond(
        self: &Arc<Self>,
        id: u64,
        request_id: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let d = self.take_delivery(id, request_id)?;
        let text = String::from_utf8_lossy(body).into_owned();
        self.finish_attempt(d, id, AttemptResult::Response(text));
        Ok(())
    }

    /// `POST invocation/{id}/error`.
    pub(crate) fn fail(
        self: &Arc<Self>,
        id: u64,
        request_id: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let d = self.take_delivery(id, request_id)?;
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let field = |k: &str| {
            parsed
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
        };
        self.finish_attempt(
            d,
            id,
            AttemptResult::Error {
                error_type: field("errorType"),
                error_message: field("errorMessage"),
            },
        );
        Ok(())
    }

    /// `POST init/error`: Lambda tears the environment down; the delivery
    /// it held fails with `Runtime.InitError`.
    pub(crate) fn init_error(self: &Arc<Self>, id: u64, body: &[u8]) {
        self.log(&format!(
            "[local-aws] function instance {id} reported an init error: {}",
            String::from_utf8_lossy(body)
        ));
        let mut pool = lock(&self.pool);
        if let Some(inst) = pool.instances.get_mut(&id) {
            inst.kill_reason = Some(AttemptResult::Error {
                error_type: "Runtime.InitError".into(),
                error_message: String::from_utf8_lossy(body).into_owned(),
            });
            let (ack, _) = oneshot::channel();
            let _ = inst.kill.send(ack);
        }
    }

    /// Kills the process whose delivery carried `trace` (the `crash`
    /// fault), or every busy process when the caller cannot be told apart.
    /// Returns once the kill signals are sent.
    pub(crate) async fn kill_caller(&self, trace: Option<&str>) {
        let root = trace.and_then(crate::ids::trace_root);
        let acks: Vec<oneshot::Receiver<()>> = {
            let mut pool = lock(&self.pool);
            let matching: Vec<u64> = pool
                .instances
                .iter()
                .filter(|(_, inst)| {
                    inst.handed_out
                        && inst.busy.as_ref().is_some_and(|d| {
                            root.is_some() && crate::ids::trace_root(&d.trace_id) == root
                        })
                })
                .map(|(id, _)| *id)
                .collect();
            let targets: Vec<u64> = if matching.is_empty() {
                pool.instances
                    .iter()
                    .filter(|(_, i)| i.handed_out)
                    .map(|(id, _)| *id)
                    .collect()
            } else {
                matching
            };
            targets
                .into_iter()
                .filter_map(|id| {
                    let inst = pool.instances.get_mut(&id)?;
                    inst.kill_reason = Some(AttemptResult::Crashed(
                        "killed by an injected crash fault".into(),
                    ));
                    let (ack, rx) = oneshot::channel();
                    inst.kill.send(ack).ok()?;
                    Some(rx)
                })
                .collect()
        };
        for ack in acks {
            let _ = tokio::time::timeout(Duration::from_secs(5), ack).await;
        }
    }

    fn close(&self) {
        let mut pool = lock(&self.pool);
        pool.closed = true;
        pool.queue.clear();
        for inst in pool.instances.values_mut() {
            let (ack, _) = oneshot::channel();
            let _ = inst.kill.send(ack);
        }
    }
}
