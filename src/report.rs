//! The one report each job gets: in progress (with a continuation token),
//! succeeded, or failed.
//!
//! CodePipeline accepts exactly one report per job id. [`send`] treats a
//! refusal because the job was already reported (a duplicate delivery that
//! lost the race) as done, so a re-delivered invocation never turns into an
//! error loop.

use std::collections::BTreeMap;

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{ExecutionDetails, FailureDetails, FailureType};

use crate::failure::Failure;
use crate::logs::{redact, unquote};

/// CodePipeline's limits on the texts of a report.
pub const MAX_SUMMARY: usize = 2048;
pub const MAX_MESSAGE: usize = 5000;
const MAX_EXTERNAL_ID: usize = 1500;

/// What to tell the pipeline about one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Still working: CodePipeline invokes us again with `token`.
    InProgress {
        token: String,
        summary: String,
        percent: Option<i32>,
        task_arn: Option<String>,
    },
    /// Done; `outputs` become the action's output variables.
    Succeeded {
        summary: String,
        task_arn: Option<String>,
        outputs: BTreeMap<String, String>,
    },
    /// Failed with a CodePipeline failure type.
    Failed {
        failure_type: FailureType,
        message: String,
        task_arn: Option<String>,
    },
}

impl Report {
    /// The failure report for `failure`, the migration's last log lines
    /// included (still marked: see [`Report::describe`] and [`send`]).
    pub fn failed(failure: &Failure, task_arn: Option<&str>) -> Report {
        Report::Failed {
            failure_type: failure.failure_type(),
            message: failure.report_message(),
            task_arn: task_arn.map(str::to_owned),
        }
    }

    /// One line for the function's own log: the migration's log lines
    /// quoted in a failure message are [`redact`]ed (they may hold
    /// connection strings, and the function's log has other readers than
    /// the migration's); the pipeline still gets them from [`send`].
    pub fn describe(&self) -> String {
        match self {
            Report::InProgress { summary, .. } => format!("in progress: {summary}"),
            Report::Succeeded { summary, .. } => format!("succeeded: {summary}"),
            Report::Failed {
                failure_type,
                message,
                ..
            } => format!("failed ({}): {}", failure_type.as_str(), redact(message)),
        }
    }
}

/// Whether the report was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Reported,
    /// The job had already been reported: a duplicate delivery. Done.
    AlreadyReported,
}

/// Sends the report for `job_id`. An error here is the one case where the
/// handler returns `Err`, so Lambda delivers the event again.
pub async fn send(pipeline: &Client, job_id: &str, report: &Report) -> Result<Sent, Failure> {
    let details = |summary: &str, percent: Option<i32>, task_arn: &Option<String>| {
        ExecutionDetails::builder()
            .summary(truncate(summary, MAX_SUMMARY))
            .set_percent_complete(percent)
            .set_external_execution_id(task_arn.as_deref().map(|t| truncate(t, MAX_EXTERNAL_ID)))
            .build()
    };
    let request = match report {
        Report::InProgress {
            token,
            summary,
            percent,
            task_arn,
        } => pipeline
            .put_job_success_result()
            .continuation_token(token)
            .execution_details(details(summary, *percent, task_arn)),
        Report::Succeeded {
            summary,
            task_arn,
            outputs,
        } => pipeline
            .put_job_success_result()
            .execution_details(details(summary, Some(100), task_arn))
            .set_output_variables(
                (!outputs.is_empty()).then(|| outputs.clone().into_iter().collect()),
            ),
        Report::Failed {
            failure_type,
            message,
            task_arn,
        } => {
            let failure = FailureDetails::builder()
                .r#type(failure_type.clone())
                .message(truncate(&unquote(message), MAX_MESSAGE))
                .set_external_execution_id(
                    task_arn.as_deref().map(|t| truncate(t, MAX_EXTERNAL_ID)),
                )
                .build()
                .expect("type and message are set");
            return match pipeline
                .put_job_failure_result()
                .job_id(job_id)
                .failure_details(failure)
                .send()
                .await
            {
                Ok(_) => Ok(Sent::Reported),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_invalid_job_state_exception()) =>
                {
                    Ok(already_reported(job_id))
                }
                Err(e) => Err(Failure::from_sdk("codepipeline:PutJobFailureResult", e)),
            };
        }
    };
    match request.job_id(job_id).send().await {
        Ok(_) => Ok(Sent::Reported),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_invalid_job_state_exception()) =>
        {
            Ok(already_reported(job_id))
        }
        Err(e) => Err(Failure::from_sdk("codepipeline:PutJobSuccessResult", e)),
    }
}

fn already_reported(job_id: &str) -> Sent {
    tracing::info!(
        job_id,
        "job was already reported (a duplicate delivery); nothing to do"
    );
    Sent::AlreadyReported
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_of_a_failure_report_omits_the_migrations_log_lines() {
        let failure = Failure::Job(format!(
            "Migration failed. {} Logs: group /ecs/app.",
            crate::logs::quote("Last log lines: postgres://admin:s3cr3t@db.")
        ));
        let report = Report::failed(&failure, None);
        let Report::Failed { message, .. } = &report else {
            panic!("{report:?}")
        };
        assert!(unquote(message).contains("postgres://admin:s3cr3t@db"));
        let logged = report.describe();
        assert!(!logged.contains("s3cr3t"), "{logged}");
        assert_eq!(
            logged,
            format!(
                "failed (JobFailed): Migration failed. {} Logs: group /ecs/app.",
                crate::logs::REDACTED
            )
        );
    }

    #[test]
    fn truncation_respects_limits_and_characters() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(3000);
        let cut = truncate(&long, MAX_SUMMARY);
        assert_eq!(cut.chars().count(), MAX_SUMMARY);
        assert!(cut.ends_with('…'));
    }
}
