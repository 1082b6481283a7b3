//! The failures a pipeline can see, and the one place AWS errors become them.
//!
//! Every error that reaches the pipeline is a [`Failure`]; each variant maps to
//! exactly one CodePipeline failure type ([`Failure::failure_type`]). SDK
//! errors are classified by [`Failure::from_sdk`] — the only place that looks
//! at AWS error codes generically — keeping the SDK's own text
//! (`DisplayErrorContext`) so people see the real cause.

use aws_sdk_codepipeline::types::FailureType;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Why a job cannot go on. Callers branch on the variant; the text is for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The action's configuration (or what it names: task definition,
    /// container, service) is wrong. Fix the input and retry the stage.
    #[error("{0}")]
    Configuration(String),
    /// AWS refused a call for lack of permission. `api` is `service:Action`,
    /// which is also the IAM action to grant.
    #[error(
        "{api} was denied: {detail}. Grant `{api}` to the function's role (template.yaml) and retry the stage."
    )]
    Permission { api: &'static str, detail: String },
    /// AWS stayed throttled or unavailable after the SDK's retries, or the
    /// task could not get capacity within `maxStartAttempts`.
    #[error("{api} is unavailable: {detail}. This is usually transient: retry the stage.")]
    Unavailable { api: &'static str, detail: String },
    /// The migration itself failed: it exited non-zero, timed out, or could
    /// not start for a reason retrying will not fix. The text may hold the
    /// migration's own log lines, [`quote`](crate::logs::quote)d: `Display`
    /// (what a log line shows) redacts them; [`Failure::report_message`]
    /// keeps them for the pipeline.
    #[error("{}", crate::logs::redact(.0))]
    Job(String),
    /// SSM refused a new version of `parameter`: it has its 100 versions and
    /// the oldest, which SSM would delete to make room, carries a label
    /// (`ParameterMaxVersionLimitExceeded`). Only a person can fix that, so
    /// it is reported as a `ConfigurationError`; it is its own variant
    /// because what the caller was recording must not be lost with it
    /// (see `watch::finish`).
    #[error(
        "SSM parameter `{parameter}` cannot take a new version: it has the 100 versions SSM keeps, and its oldest version has a label, so SSM will not delete it to make room (ParameterMaxVersionLimitExceeded: {detail}). \
         Move the label to a newer version (`aws ssm label-parameter-version --name {parameter} --labels <label>`) or remove it \
         (`aws ssm unlabel-parameter-version --name {parameter} --parameter-version <oldest version> --labels <label>`)"
    )]
    VersionLimit { parameter: String, detail: String },
}

impl Failure {
    /// The CodePipeline failure type this failure is reported as.
    pub fn failure_type(&self) -> FailureType {
        match self {
            Failure::Configuration(_) => FailureType::ConfigurationError,
            Failure::Permission { .. } => FailureType::PermissionError,
            Failure::Unavailable { .. } => FailureType::SystemUnavailable,
            Failure::Job(_) => FailureType::JobFailed,
            Failure::VersionLimit { .. } => FailureType::ConfigurationError,
        }
    }

    /// The text for the pipeline's failure report: as `Display`, but with
    /// the migration's quoted log lines still in (and still marked, for
    /// [`Report::describe`](crate::report::Report::describe) to redact and
    /// [`report::send`](crate::report::send) to unmark).
    pub fn report_message(&self) -> String {
        match self {
            Failure::Job(text) => text.clone(),
            other => other.to_string(),
        }
    }

    /// The failure of a `PutParameter` of `parameter` that SSM refused with
    /// `ParameterMaxVersionLimitExceeded`, if `err` is that refusal.
    pub fn version_limit<E>(parameter: &str, err: &SdkError<E, HttpResponse>) -> Option<Failure>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        (err.code() == Some("ParameterMaxVersionLimitExceeded")).then(|| Failure::VersionLimit {
            parameter: parameter.to_owned(),
            detail: err
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| DisplayErrorContext(err).to_string()),
        })
    }

    /// Classifies an SDK error of the call `api` (`"ecs:RunTask"`) that the
    /// caller has no specific handling for.
    ///
    /// Access denied becomes [`Failure::Permission`]; throttling, 5xx,
    /// timeouts and connection failures (all already retried by the SDK)
    /// become [`Failure::Unavailable`]; any other service error means AWS
    /// rejected what we asked for, which comes from the configuration.
    pub fn from_sdk<E>(api: &'static str, err: SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_owned);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let service_error = matches!(err, SdkError::ServiceError(_));
        let detail = DisplayErrorContext(&err).to_string();
        classify(api, code.as_deref(), status, service_error, detail)
    }
}

/// The pure core of [`Failure::from_sdk`], over what an SDK error tells.
fn classify(
    api: &'static str,
    code: Option<&str>,
    status: Option<u16>,
    service_error: bool,
    detail: String,
) -> Failure {
    let code = code.unwrap_or_default();
    if is_access_denied(code) {
        Failure::Permission { api, detail }
    } else if !service_error || is_throttling(code) || status.is_some_and(|s| s >= 500) {
        Failure::Unavailable { api, detail }
    } else {
        Failure::Configuration(format!("AWS rejected {api}: {detail}"))
    }
}

fn is_access_denied(code: &str) -> bool {
    matches!(
        code,
        "AccessDeniedException"
            | "AccessDenied"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException"
    )
}

/// Error codes AWS uses for "slow down"; the SDK retries these first.
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            // SSM: concurrent writes to one parameter; retry later.
            | "TooManyUpdates"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_pipeline_failure_types() {
        let cases = [
            (
                Some("AccessDeniedException"),
                Some(400),
                true,
                FailureType::PermissionError,
            ),
            (
                Some("ThrottlingException"),
                Some(400),
                true,
                FailureType::SystemUnavailable,
            ),
            (
                Some("InternalServerError"),
                Some(500),
                true,
                FailureType::SystemUnavailable,
            ),
            (
                Some("ServerException"),
                Some(503),
                true,
                FailureType::SystemUnavailable,
            ),
            (None, None, false, FailureType::SystemUnavailable),
            (
                Some("InvalidParameterException"),
                Some(400),
                true,
                FailureType::ConfigurationError,
            ),
        ];
        for (code, status, service, expected) in cases {
            let failure = classify("ecs:RunTask", code, status, service, "detail".into());
            assert_eq!(failure.failure_type(), expected, "{code:?} {status:?}");
        }
    }

    #[test]
    fn a_job_failure_shows_its_quoted_log_lines_only_in_the_report() {
        let failure = Failure::Job(format!(
            "exit 1. {} Fix it.",
            crate::logs::quote("Last log lines: password=s3cr3t.")
        ));
        assert!(!failure.to_string().contains("s3cr3t"), "{failure}");
        assert!(
            failure
                .to_string()
                .starts_with("exit 1. Last log lines: (not in")
        );
        assert!(
            crate::logs::unquote(&failure.report_message())
                .contains("Last log lines: password=s3cr3t. Fix it.")
        );
        let other = Failure::Configuration("bad".into());
        assert_eq!(other.report_message(), other.to_string());
    }

    #[test]
    fn a_parameter_ssm_will_not_version_says_which_and_what_to_do() {
        let failure = Failure::VersionLimit {
            parameter: "/migrate-once/app/app".into(),
            detail: "Version 3, the oldest version, can't be deleted".into(),
        };
        assert_eq!(failure.failure_type(), FailureType::ConfigurationError);
        let text = failure.report_message();
        assert!(text.starts_with("SSM parameter `/migrate-once/app/app` cannot take"));
        assert!(text.contains("its oldest version has a label"), "{text}");
        assert!(text.contains("(ParameterMaxVersionLimitExceeded: Version 3, the oldest"));
        assert!(
            text.contains("aws ssm unlabel-parameter-version --name /migrate-once/app/app"),
            "{text}"
        );
    }

    #[test]
    fn permission_failure_names_the_iam_action() {
        let failure = classify(
            "ssm:PutParameter",
            Some("AccessDeniedException"),
            Some(400),
            true,
            "no".into(),
        );
        assert!(failure.to_string().contains("Grant `ssm:PutParameter`"));
    }
}
