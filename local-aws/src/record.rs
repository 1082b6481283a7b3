//! The call log: every AWS call and every Lambda delivery, timestamped, for
//! assertions ("no RunTask after the failure", "which invocation made this
//! call").

use crate::faults::Service;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// One AWS API call as the control plane saw it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Position in the log, from 1.
    pub seq: usize,
    /// Time since the control plane started (`crate::clock`: virtual under
    /// a simulator).
    pub at: Duration,
    /// Wall-clock time of the call (`crate::clock::now`).
    pub wall: SystemTime,
    /// Which service.
    pub service: Service,
    /// Operation name, e.g. `RunTask`.
    pub operation: String,
    /// 1-based number of this call among calls of the same operation.
    pub call_number: u32,
    /// The request body (JSON; a string if it was not JSON).
    pub request: Value,
    /// HTTP status answered.
    pub status: u16,
    /// Error code answered, if any.
    pub error: Option<String>,
    /// Error message answered, if any.
    pub error_message: Option<String>,
    /// Name of the injected fault, if any.
    pub fault: Option<String>,
    /// `X-Amzn-Trace-Id` the SDK sent (identifies the Lambda invocation).
    pub trace_id: Option<String>,
    /// The CodePipeline job whose invocation made the call, when known.
    pub job_id: Option<String>,
}

impl CallRecord {
    /// Whether the call was answered with success.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// One line of a call log, for test failure messages:
/// `  0.012s ecs RunTask#1 → 400 ThrottlingException [fault throttle]`.
impl std::fmt::Display for CallRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  {:>7.3}s {} {}#{} → {}",
            self.at.as_secs_f64(),
            self.service,
            self.operation,
            self.call_number,
            self.status
        )?;
        if let Some(error) = &self.error {
            write!(f, " {error}")?;
        }
        if let Some(fault) = &self.fault {
            write!(f, " [fault {fault}]")?;
        }
        Ok(())
    }
}

/// One delivery of an invocation to a function process.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    /// Lambda request id (the same for redeliveries of one invocation).
    pub request_id: String,
    /// 1 for the first delivery, 2 and 3 for Lambda's async retries.
    pub attempt: u32,
    /// The trace id handed out with this delivery.
    pub trace_id: String,
    /// Which execution environment (process slot) got it.
    pub instance: u64,
    /// The CodePipeline job id in the event, if it is a job event.
    pub job_id: Option<String>,
    /// Time since the control plane started.
    pub at: Duration,
}

/// Thread-safe append-only logs plus the trace → job index.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    calls: Mutex<Vec<CallRecord>>,
    deliveries: Mutex<Vec<DeliveryRecord>>,
    trace_jobs: Mutex<BTreeMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Recorder {
    /// An empty log whose clock starts at `started` (a `crate::clock`
    /// instant).
    pub fn new(started: Instant) -> Self {
        Recorder {
            started,
            calls: Mutex::new(Vec::new()),
            deliveries: Mutex::new(Vec::new()),
            trace_jobs: Mutex::new(BTreeMap::new()),
        }
    }

    /// Time since the control plane started.
    pub fn elapsed(&self) -> Duration {
        crate::clock::instant().saturating_duration_since(self.started)
    }

    /// Appends a call; `seq` and `at` are filled in here.
    pub fn push_call(&self, mut call: CallRecord) {
        let mut calls = lock(&self.calls);
        call.seq = calls.len() + 1;
        calls.push(call);
    }

    /// Appends a delivery and indexes its trace id.
    pub fn push_delivery(&self, delivery: DeliveryRecord) {
        if let (Some(root), Some(job)) = (
            crate::ids::trace_root(&delivery.trace_id),
            delivery.job_id.as_ref(),
        ) {
            lock(&self.trace_jobs).insert(root.to_string(), job.clone());
        }
        lock(&self.deliveries).push(delivery);
    }

    /// The job whose delivery handed out this trace header.
    pub fn job_for_trace(&self, trace_header: &str) -> Option<String> {
        let root = crate::ids::trace_root(trace_header)?;
        lock(&self.trace_jobs).get(root).cloned()
    }

    /// A copy of the call log.
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.calls).clone()
    }

    /// A copy of the delivery log.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        lock(&self.deliveries).clone()
    }
}
