//! What Lambda itself sees of an invocation, apart from the job report: the
//! deadline it hands us (sanitised before anything relies on it) and the
//! error an invocation ends with when it fails.
//!
//! Both are pure and table-tested; [`crate::Function::handle`] applies them.

use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::Diagnostic;

use crate::failure::Failure;

/// The longest a Lambda function may run (its maximum timeout).
pub const MAX_LAMBDA_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Slack on top of [`MAX_LAMBDA_TIMEOUT`] before a deadline counts as
/// absurd: clock skew between the Runtime API and this process.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(60);

/// The budget an invocation assumes when the deadline it was given cannot
/// be believed.
///
/// Why a fixed 60 s: Lambda publishes no variable with the function's
/// timeout, and real Lambda always sends a real deadline — a bogus one
/// comes from an emulator (`cargo lambda watch` sends 600000 ms, i.e.
/// 1970). 60 s is the local control plane's default function timeout; the
/// job keeps 15 s of it back for its final calls and report, so a
/// continuation watches the task for `waitSeconds` (20 by default), at
/// most 45 s.
pub const FALLBACK_BUDGET: Duration = Duration::from_secs(60);

/// The deadline to work to, from the `Lambda-Runtime-Deadline-Ms` header
/// (`deadline_ms`, epoch milliseconds), and why it was replaced if it was.
///
/// A deadline that is absent (0), already past, or further away than any
/// Lambda function may run ([`MAX_LAMBDA_TIMEOUT`] + [`DEADLINE_SLACK`]) is
/// replaced by `now + fallback`. Trusting it would make the job either
/// never wait within an invocation (every continuation "running for 0s")
/// or wait past the function's real timeout and be killed mid-report.
pub fn invocation_deadline(
    deadline_ms: u64,
    now: SystemTime,
    fallback: Duration,
) -> (SystemTime, Option<&'static str>) {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let why = if deadline_ms == 0 {
        Some("the Runtime API sent no deadline")
    } else if deadline <= now {
        Some("the Runtime API sent a deadline in the past")
    } else if deadline > now + MAX_LAMBDA_TIMEOUT + DEADLINE_SLACK {
        Some("the Runtime API sent a deadline further away than the 15-minute Lambda maximum")
    } else {
        None
    };
    match why {
        Some(why) => (now + fallback, Some(why)),
        None => (deadline, None),
    }
}

/// Logs, once per process, that the deadline was replaced: an emulator
/// sends the same bogus deadline with every event, and one line says it.
pub fn warn_deadline_replaced(why: &str, deadline_ms: u64, fallback: Duration) {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            deadline_ms,
            fallback_secs = fallback.as_secs(),
            "{why}; working to a budget of {} s from the start of each invocation instead (logged once per process)",
            fallback.as_secs()
        );
    });
}

/// Why an invocation failed, as Lambda records it: each variant is a
/// stable `errorType` (shown by Lambda, the console and `cargo lambda
/// invoke`, and usable in alarms and metric filters) instead of a Rust type
/// name. Every one makes Lambda deliver an asynchronous event again, which
/// is safe: every path is idempotent.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// The event is none of the shapes the function accepts; nothing was
    /// done. Redelivery fails the same way.
    #[error("{0}")]
    UnrecognizedEvent(String),
    /// The job was worked on, but its report (progress, success or failure)
    /// could not be sent to CodePipeline; redelivery reports it.
    #[error("job {job_id}: could not report to CodePipeline: {failure}")]
    ReportFailed { job_id: String, failure: Failure },
    /// An EventBridge-driven rerun (automatic or requested) could not be
    /// carried out.
    #[error("rerun not carried out: {0}")]
    RerunFailed(Failure),
    /// Stopping the migration task of a stopped pipeline execution failed.
    #[error("could not stop the migration of a stopped pipeline execution: {0}")]
    StopFailed(Failure),
}

impl InvocationError {
    /// The `errorType` Lambda records; never changes for a variant.
    pub fn error_type(&self) -> &'static str {
        match self {
            InvocationError::UnrecognizedEvent(_) => "UnrecognizedEvent",
            InvocationError::ReportFailed { .. } => "ReportFailed",
            InvocationError::RerunFailed(_) => "RerunFailed",
            InvocationError::StopFailed(_) => "StopFailed",
        }
    }
}

/// What `lambda_runtime` posts to the Runtime API's `/error` route. Without
/// this, its blanket conversion for boxed errors names the Rust type
/// (`alloc::boxed::Box<dyn core::error::Error + …>`).
impl From<InvocationError> for Diagnostic {
    fn from(error: InvocationError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_that_cannot_be_believed_fall_back_to_the_budget() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now_ms = 1_800_000_000_000_u64;
        let fallback = Duration::from_secs(60);
        let max_ms = (MAX_LAMBDA_TIMEOUT + DEADLINE_SLACK).as_millis() as u64;
        // (deadline header, expected deadline, replaced?)
        let cases = [
            (0, now + fallback, true),
            // cargo lambda's emulator: 600000 ms after the epoch.
            (600_000, now + fallback, true),
            (now_ms - 1, now + fallback, true),
            (now_ms, now + fallback, true),
            (now_ms + 1, now + Duration::from_millis(1), false),
            (now_ms + 660_000, now + Duration::from_secs(660), false),
            (now_ms + max_ms, now + Duration::from_millis(max_ms), false),
            (now_ms + max_ms + 1, now + fallback, true),
            (u64::MAX / 2, now + fallback, true),
        ];
        for (header, expected, replaced) in cases {
            let (deadline, why) = invocation_deadline(header, now, fallback);
            assert_eq!(deadline, expected, "deadline header {header}");
            assert_eq!(why.is_some(), replaced, "deadline header {header}: {why:?}");
        }
    }

    #[test]
    fn each_reason_says_what_was_wrong() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let why = |ms| {
            invocation_deadline(ms, now, FALLBACK_BUDGET)
                .1
                .unwrap_or("")
        };
        assert!(why(0).contains("no deadline"));
        assert!(why(600_000).contains("in the past"));
        assert!(why(4_000_000_000_000).contains("15-minute"));
    }

    #[test]
    fn error_types_are_stable_names_not_rust_types() {
        let cases = [
            (
                InvocationError::UnrecognizedEvent("unrecognised event".into()),
                "UnrecognizedEvent",
                "unrecognised event",
            ),
            (
                InvocationError::ReportFailed {
                    job_id: "j-1".into(),
                    failure: Failure::Unavailable {
                        api: "codepipeline:PutJobSuccessResult",
                        detail: "throttled".into(),
                    },
                },
                "ReportFailed",
                "job j-1: could not report to CodePipeline: codepipeline:PutJobSuccessResult is unavailable",
            ),
            (
                InvocationError::RerunFailed(Failure::Permission {
                    api: "codepipeline:RetryStageExecution",
                    detail: "denied".into(),
                }),
                "RerunFailed",
                "rerun not carried out: codepipeline:RetryStageExecution was denied",
            ),
            (
                InvocationError::StopFailed(Failure::Job("gone".into())),
                "StopFailed",
                "could not stop the migration of a stopped pipeline execution: gone",
            ),
        ];
        for (error, error_type, message) in cases {
            let diagnostic = Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, error_type);
            assert!(
                diagnostic.error_message.starts_with(message),
                "{}",
                diagnostic.error_message
            );
        }
    }
}
