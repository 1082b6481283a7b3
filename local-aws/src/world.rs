//! The shared state behind every port: the three services, the fault
//! counters, the call log, and a link to the function host (so a `crash`
//! fault can kill the process that made the call).
//!
//! One AWS call is handled start to finish here: decode the target and
//! body, count the call and pick its fault, dispatch to the service, record
//! it, and — for `crash` — kill the caller before the answer goes out.

use crate::clock;
use crate::codepipeline::CodePipeline;
use crate::ecs::Ecs;
use crate::faults::{Faults, Service, fault_error};
use crate::function_host::HostInner;
use crate::record::{CallRecord, Recorder};
use crate::scenario::{Fault, Scenario};
use crate::ssm::Ssm;
use crate::wire::{ApiError, OpResult};
use serde_json::{Value, json};
use std::sync::{Mutex, MutexGuard, Weak};
use tokio::sync::watch;

/// An answer to an AWS call, ready to be put on the wire.
#[derive(Debug)]
pub(crate) struct AwsReply {
    pub status: u16,
    pub body: Value,
    pub error_type: Option<String>,
}

/// Locks a std mutex, ignoring poisoning: a panicked test thread must not
/// turn every later assertion into a confusing `PoisonError`.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything the control plane knows.
pub(crate) struct World {
    pub scenario: Scenario,
    /// When the control plane started (`crate::clock`).
    pub origin: tokio::time::Instant,
    pub ssm: Mutex<Ssm>,
    pub ecs: Mutex<Ecs>,
    pub pipeline: Mutex<CodePipeline>,
    /// The artifact store (read-only once built).
    pub s3: crate::s3::S3,
    pub faults: Mutex<Faults>,
    pub recorder: Recorder,
    /// Bumped after every successful CodePipeline call, so the pipeline
    /// driver wakes up when a job may have been reported.
    pub pipeline_changed: watch::Sender<u64>,
    pub host: Mutex<Weak<HostInner>>,
    pub echo: bool,
    /// The account's API quotas (`crate::quota`).
    pub throttle: Mutex<crate::quota::Throttle>,
}

impl World {
    pub fn new(scenario: Scenario) -> World {
        let origin = clock::instant();
        let mut ssm = Ssm::default();
        let now = clock::now();
        for p in &scenario.parameters {
            ssm.seed(&p.name, &p.value_text(), &p.kind, now);
        }
        World {
            ecs: Mutex::new(Ecs::new(&scenario)),
            pipeline: Mutex::new(CodePipeline::new(&scenario, origin)),
            s3: crate::s3::S3::new(&scenario),
            faults: Mutex::new(Faults::new(scenario.faults.clone())),
            ssm: Mutex::new(ssm),
            recorder: Recorder::new(origin),
            pipeline_changed: watch::Sender::new(0),
            host: Mutex::new(Weak::new()),
            echo: std::env::var_os("LOCAL_AWS_ECHO").is_some_and(|v| v != "0"),
            throttle: Mutex::new(crate::quota::Throttle::new(scenario.quotas.clone())),
            scenario,
            origin,
        }
    }

    fn dispatch(
        &self,
        service: Service,
        operation: &str,
        input: &Value,
        job: Option<&str>,
    ) -> OpResult {
        match service {
            Service::Ssm => lock(&self.ssm).handle(operation, input, clock::now()),
            Service::Ecs => lock(&self.ecs).handle(operation, input, job),
            Service::CodePipeline => lock(&self.pipeline).handle(operation, input),
            Service::Logs => crate::logs::handle(
                operation,
                input,
                &self.scenario.task_definitions,
                lock(&self.ecs).tasks(),
            ),
            Service::S3 => Err(ApiError::client(
                "InvalidRequest",
                "S3 speaks REST, not awsJson",
            )),
        }
    }

    /// Handles one awsJson call end to end.
    pub async fn aws_call(&self, target: &str, trace_id: Option<String>, body: &[u8]) -> AwsReply {
        let Some((service, operation)) = target
            .split_once('.')
            .and_then(|(prefix, op)| Some((Service::from_target_prefix(prefix)?, op)))
        else {
            return reply(Err(ApiError::client(
                "UnknownOperationException",
                format!(
                    "X-Amz-Target {target:?} is not an SSM, ECS, CodePipeline or CloudWatch Logs operation"
                ),
            )));
        };
        let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match serde_json::from_slice(body) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    return reply(Err(ApiError::client(
                        "SerializationException",
                        "the request body must be a JSON object",
                    )));
                }
                Err(e) => {
                    return reply(Err(ApiError::client(
                        "SerializationException",
                        format!("the request body is not JSON: {e}"),
                    )));
                }
            }
        };
        let (call_number, fault) = lock(&self.faults).on_call(operation);
        let job_id = trace_id
            .as_deref()
            .and_then(|t| self.recorder.job_for_trace(t));
        let throttled =
            fault.is_none() && !lock(&self.throttle).admit(service, operation, clock::instant());
        let result = match fault {
            _ if throttled => Err(fault_error(Fault::Throttle, service, operation)),
            Some(Fault::LostAnswer) => self
                .dispatch(service, operation, &request, job_id.as_deref())
                .and_then(|_| Err(fault_error(Fault::LostAnswer, service, operation))),
            Some(f) if f != Fault::Crash => Err(fault_error(f, service, operation)),
            _ => self.dispatch(service, operation, &request, job_id.as_deref()),
        };
        if service == Service::CodePipeline && result.is_ok() {
            self.pipeline_changed.send_modify(|n| *n += 1);
        }
        let answer = reply(result);
        let (error, error_message) = match &answer.error_type {
            Some(code) => (
                Some(code.clone()),
                answer
                    .body
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            None => (None, None),
        };
        if self.echo {
            eprintln!(
                "[local-aws {:>8.3}s] {service} {operation}#{call_number} → {}{}",
                self.recorder.elapsed().as_secs_f64(),
                answer.status,
                error
                    .as_deref()
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default()
            );
        }
        self.recorder.push_call(CallRecord {
            seq: 0,
            at: self.recorder.elapsed(),
            wall: clock::now(),
            service,
            operation: operation.to_string(),
            call_number,
            request,
            status: answer.status,
            error,
            error_message,
            fault: fault.map(|f| format!("{f:?}")),
            trace_id: trace_id.clone(),
            job_id,
        });
        if fault == Some(Fault::Crash) {
            let host = lock(&self.host).upgrade();
            match host {
                Some(host) => host.kill_caller(trace_id.as_deref()).await,
                None => eprintln!(
                    "local-aws: crash fault on {operation}#{call_number} but no function host is attached; answering normally"
                ),
            }
        }
        answer
    }
}

impl World {
    /// Handles one S3 REST request end to end: faults (on `GetObject`),
    /// the answer, and the call log (bucket, key and access key id only —
    /// never a secret).
    pub fn s3_call(
        &self,
        request: &crate::s3::S3Request,
        trace_id: Option<String>,
    ) -> crate::s3::S3Reply {
        let operation = if request.method == "GET" {
            "GetObject"
        } else {
            "S3"
        };
        let (call_number, fault) = lock(&self.faults).on_call(operation);
        let reply = match fault {
            Some(f) if f != Fault::Crash => {
                let mut e = fault_error(f, Service::S3, operation);
                if f == Fault::AccessDenied {
                    e.code = "AccessDenied".into();
                    e.status = 403;
                }
                crate::s3::error_reply(e)
            }
            _ => self.s3.handle(request),
        };
        let access_key = request
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .and_then(|(_, v)| v.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .unwrap_or_default()
            .to_string();
        let job_id = trace_id
            .as_deref()
            .and_then(|t| self.recorder.job_for_trace(t));
        if self.echo {
            eprintln!(
                "[local-aws {:>8.3}s] S3 {operation}#{call_number} {} → {}",
                self.recorder.elapsed().as_secs_f64(),
                request.path,
                reply.status
            );
        }
        self.recorder.push_call(CallRecord {
            seq: 0,
            at: self.recorder.elapsed(),
            wall: clock::now(),
            service: Service::S3,
            operation: operation.to_string(),
            call_number,
            request: json!({"path": request.path, "accessKeyId": access_key}),
            status: reply.status,
            error: reply.error.as_ref().map(|e| e.code.clone()),
            error_message: reply.error.as_ref().map(|e| e.message.clone()),
            fault: fault.map(|f| format!("{f:?}")),
            trace_id,
            job_id,
        });
        reply
    }
}

fn reply(result: OpResult) -> AwsReply {
    match result {
        Ok(body) => AwsReply {
            status: 200,
            body,
            error_type: None,
        },
        Err(e) => AwsReply {
            status: e.status,
            body: e.body(),
            error_type: Some(e.code),
        },
    }
}
