//! The wire between the function's SDK clients and the world: an SDK
//! `HttpClient` that hands every request to local-aws's world in process,
//! unless the schedule has it go wrong first.
//!
//! What can go wrong is what goes wrong on a real network to AWS, drawn per
//! request from the schedule's generator ([`Net::draw`]):
//! - the calling invocation crashes *before* the request arrives (not
//!   applied) or *after* it was applied (the answer dies with the process);
//! - the answer is lost after the effect (a timeout the SDK retries);
//! - throttling and 5xx windows per service.
//!
//! A crash is a dropped future: the invocation that made the call is told
//! through its [`Caller`], and the delivery loop drops its handler at once
//! (`crate::lambda`), as Lambda drops a process that died.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use local_aws::LocalAws;
use local_aws::inproc::{WireRequest, WireResponse};
use tokio::sync::Notify;

use crate::rng::Rng;
use crate::timeline::Timeline;

tokio::task_local! {
    /// The invocation whose SDK call is on the wire.
    pub static CALLER: Arc<Caller>;
}

/// One delivery of an event to the function: who is calling, and whether
/// it has crashed.
#[derive(Debug, Default)]
pub struct Caller {
    /// The delivery's number in the timeline.
    pub delivery: u64,
    /// What was delivered: a job id, or the EventBridge event's kind.
    pub label: String,
    crashed: AtomicBool,
    wake: Notify,
}

impl Caller {
    /// A caller for delivery `delivery` of `label`.
    pub fn new(delivery: u64, label: &str) -> Arc<Caller> {
        Arc::new(Caller {
            delivery,
            label: label.to_owned(),
            ..Caller::default()
        })
    }

    fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Resolves once the caller has crashed.
    pub async fn crashed(&self) {
        while !self.crashed.load(Ordering::SeqCst) {
            self.wake.notified().await;
        }
    }
}

/// How often each fault happens, per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    /// The caller crashes before its request arrives.
    pub crash_before: f64,
    /// The caller crashes after its request was applied.
    pub crash_after: f64,
    /// The answer is lost after the request was applied.
    pub lost_answer: f64,
}

/// A window of virtual seconds during which one service is busy.
#[derive(Debug, Clone)]
pub struct Window {
    /// `ssm`, `ecs`, `codepipeline`, `logs`.
    pub service: &'static str,
    /// Start and end, virtual seconds since the schedule began.
    pub from: u64,
    pub until: u64,
    /// Throttled (400) or unavailable (500).
    pub throttle: bool,
    /// Share of the window's calls that fail.
    pub share: f64,
}

/// A fault a regression schedule asks for: the `nth` request (1-based) of
/// `operation` whose body contains `containing` meets `fate`.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub operation: &'static str,
    pub containing: &'static str,
    pub nth: u32,
    pub fate: Fate,
}

/// What a request meets on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    CrashBefore,
    CrashAfter,
    Lost,
    Throttled,
    Unavailable,
    /// AccessDenied, as a missing IAM permission answers.
    Denied,
}

/// Sees every request the world applied (the online invariants).
pub trait Observer: Send + Sync {
    /// Called before `request` is applied, with the world as it is.
    fn before(&self, aws: &LocalAws, caller: Option<&Caller>, request: &WireRequest);
    /// Called after `request` was applied.
    fn after(
        &self,
        aws: &LocalAws,
        caller: Option<&Caller>,
        request: &WireRequest,
        response: &WireResponse,
    );
}

/// The network of one schedule: the world, the fault generator, the log.
pub struct Net {
    /// The world.
    pub aws: LocalAws,
    rng: Mutex<Rng>,
    rates: FaultRates,
    windows: Vec<Window>,
    scripted: Vec<Scripted>,
    seen: Mutex<Vec<u32>>,
    started: tokio::time::Instant,
    observer: Arc<dyn Observer>,
    timeline: Arc<Timeline>,
}

impl Net {
    /// A network over `aws` with faults drawn from `rng`.
    pub fn new(
        aws: LocalAws,
        rng: Rng,
        rates: FaultRates,
        windows: Vec<Window>,
        scripted: Vec<Scripted>,
        observer: Arc<dyn Observer>,
        timeline: Arc<Timeline>,
    ) -> Arc<Net> {
        Arc::new(Net {
            aws,
            rng: Mutex::new(rng),
            rates,
            windows,
            seen: Mutex::new(vec![0; scripted.len()]),
            scripted,
            started: tokio::time::Instant::now(),
            observer,
            timeline,
        })
    }

    fn draw(&self, request: &WireRequest, caller: Option<&Caller>) -> Fate {
        if let Some(fate) = self.scripted_fate(request) {
            return fate;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        if caller.is_some() {
            let r = rng.unit();
            let rates = self.rates;
            if r < rates.crash_before {
                return Fate::CrashBefore;
            }
            if r < rates.crash_before + rates.crash_after {
                return Fate::CrashAfter;
            }
            if r < rates.crash_before + rates.crash_after + rates.lost_answer {
                return Fate::Lost;
            }
        }
        let service = service_of(request);
        let now = self.started.elapsed().as_secs();
        for w in &self.windows {
            if w.service == service && (w.from..w.until).contains(&now) && rng.unit() < w.share {
                return if w.throttle {
                    Fate::Throttled
                } else {
                    Fate::Unavailable
                };
            }
        }
        Fate::Delivered
    }

    fn scripted_fate(&self, request: &WireRequest) -> Option<Fate> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let body = std::str::from_utf8(&request.body).unwrap_or_default();
        let mut fate = None;
        for (rule, count) in self.scripted.iter().zip(seen.iter_mut()) {
            if rule.operation == request.operation() && body.contains(rule.containing) {
                *count += 1;
                if *count == rule.nth {
                    fate = fate.or(Some(rule.fate));
                }
            }
        }
        fate
    }

    async fn apply(&self, caller: Option<&Caller>, request: &WireRequest) -> WireResponse {
        self.observer.before(&self.aws, caller, request);
        let response = self.aws.call(request).await;
        self.observer.after(&self.aws, caller, request, &response);
        response
    }

    /// A request made by a person, not the function: applied as it is.
    pub async fn apply_as_operator(&self, request: &WireRequest) -> WireResponse {
        self.apply(None, request).await
    }

    async fn send(self: Arc<Self>, caller: Option<Arc<Caller>>, request: WireRequest) -> Answer {
        let fate = self.draw(&request, caller.as_deref());
        let who = caller.as_ref().map_or(0, |c| c.delivery);
        let op = request.operation().to_owned();
        let answer = match fate {
            Fate::CrashBefore => Answer::Never,
            Fate::CrashAfter => {
                self.apply(caller.as_deref(), &request).await;
                Answer::Never
            }
            Fate::Lost => {
                self.apply(caller.as_deref(), &request).await;
                Answer::Lost
            }
            Fate::Throttled => Answer::Response(error("ThrottlingException", 400, "Rate exceeded")),
            Fate::Unavailable => Answer::Response(error(
                "InternalServerError",
                500,
                "We encountered an internal error. Please try again.",
            )),
            Fate::Denied => Answer::Response(error(
                "AccessDeniedException",
                400,
                &format!("User is not authorized to perform: {}", request.operation()),
            )),
            Fate::Delivered => Answer::Response(self.apply(caller.as_deref(), &request).await),
        };
        if self.timeline.enabled() {
            let what = match (&answer, fate) {
                (Answer::Response(r), _) => {
                    format!("{}{}{}", r.status, error_suffix(r), detail(&request, r))
                }
                (Answer::Lost, _) => "applied, answer lost".into(),
                (Answer::Never, Fate::CrashAfter) => "applied, then the caller crashed".into(),
                (Answer::Never, _) => "the caller crashed before sending".into(),
            };
            self.timeline
                .note(who, format!("{op} {} → {what}", subject(&request)));
        }
        if matches!(answer, Answer::Never)
            && let Some(caller) = &caller
        {
            caller.crash();
        }
        answer
    }
}

enum Answer {
    Response(WireResponse),
    Lost,
    Never,
}

fn service_of(request: &WireRequest) -> &'static str {
    match request
        .header("x-amz-target")
        .map(|t| t.split('.').next().unwrap_or(""))
    {
        Some(p) if p.starts_with("AmazonSSM") => "ssm",
        Some(p) if p.starts_with("AmazonEC2ContainerService") => "ecs",
        Some(p) if p.starts_with("CodePipeline") => "codepipeline",
        Some(p) if p.starts_with("Logs") => "logs",
        _ => "s3",
    }
}

fn error(code: &str, status: u16, message: &str) -> WireResponse {
    WireResponse {
        status,
        headers: vec![("x-amzn-errortype".into(), code.into())],
        body: serde_json::json!({"__type": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}

/// What a request is about, for the timeline.
fn subject(request: &WireRequest) -> String {
    let input: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let field = |k: &str| input[k].as_str().map(str::to_owned);
    match request.operation() {
        "PutParameter" => format!(
            "{}{} = {}",
            field("Name").unwrap_or_default(),
            if input["Overwrite"] == true {
                ""
            } else {
                " (create)"
            },
            field("Value")
                .unwrap_or_default()
                .chars()
                .take(160)
                .collect::<String>()
        ),
        "GetParameter" | "DeleteParameter" => field("Name").unwrap_or_default(),
        "GetParametersByPath" => field("Path").unwrap_or_default(),
        "DeleteParameters" => input["Names"].to_string(),
        "RunTask" => field("clientToken").unwrap_or_default(),
        "StopTask" | "DescribeTasks" => {
            input["tasks"].to_string() + &field("task").unwrap_or_default()
        }
        "PutJobSuccessResult" | "PutJobFailureResult" => {
            let summary = input["executionDetails"]["summary"]
                .as_str()
                .map(str::to_owned);
            let failure = input["failureDetails"]["message"]
                .as_str()
                .map(str::to_owned);
            let token = input["continuationToken"].is_string();
            format!(
                "{}{}",
                summary.or(failure).unwrap_or_default(),
                if token { " (+token)" } else { "" }
            )
        }
        _ => String::new(),
    }
}

/// What an answer said, for the timeline.
fn detail(request: &WireRequest, response: &WireResponse) -> String {
    let output: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    match request.operation() {
        "RunTask" | "DescribeTasks" => {
            let tasks: Vec<String> = output["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let id = t["taskArn"]
                        .as_str()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or("");
                    format!(
                        "{} {}",
                        &id[..id.len().min(8)],
                        t["lastStatus"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let failures = output["failures"].as_array().map_or(0, Vec::len);
            format!(
                " [{}]{}",
                tasks.join(", "),
                if failures > 0 {
                    format!(" {failures} failures")
                } else {
                    String::new()
                }
            )
        }
        "GetParameter" => format!(
            " {}",
            output["Parameter"]["Value"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(160)
                .collect::<String>()
        ),
        _ => String::new(),
    }
}

fn error_suffix(r: &WireResponse) -> String {
    r.headers
        .iter()
        .find(|(n, _)| n == "x-amzn-errortype")
        .map(|(_, v)| format!(" {v}"))
        .unwrap_or_default()
}

/// The SDK's view of the [`Net`]: one `HttpClient` for every client of
/// every environment.
#[derive(Clone)]
pub struct Wire(pub Arc<Net>);

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wire")
    }
}

impl HttpClient for Wire {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Wire {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let caller = CALLER.try_with(Arc::clone).ok();
        let request = wire_request(&request);
        let net = self.0.clone();
        HttpConnectorFuture::new(async move {
            match net.send(caller, request).await {
                Answer::Response(r) => Ok(http_response(r)),
                Answer::Lost => Err(ConnectorError::timeout(
                    "the answer was lost after the request took effect".into(),
                )),
                Answer::Never => std::future::pending().await,
            }
        })
    }
}

fn wire_request(request: &HttpRequest) -> WireRequest {
    let uri = request.uri();
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let path_and_query = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    WireRequest {
        method: request.method().to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
            .collect(),
        body: request.body().bytes().unwrap_or_default().to_vec(),
    }
}

fn http_response(r: WireResponse) -> HttpResponse {
    let status = StatusCode::try_from(r.status)
        .unwrap_or_else(|_| StatusCode::try_from(500).expect("500 is a status code"));
    let mut response = HttpResponse::new(status, SdkBody::from(r.body));
    for (name, value) in r.headers {
        response.headers_mut().append(name, value);
    }
    response
}
