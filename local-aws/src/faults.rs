//! Fault injection: which call of which operation misbehaves, and how.
//!
//! Calls are numbered per operation from 1, counting every HTTP request
//! (so an SDK retry of a throttled call is the next number). The answers are
//! the ones AWS sends, so the SDK's own retry classification runs: a
//! `ThrottlingException` or a 5xx is retried by the SDK, `AccessDenied` is
//! not.

use crate::scenario::{Fault, FaultRule};
use crate::wire::{ACCOUNT, ApiError, REGION};
use std::collections::BTreeMap;

/// The AWS services the control plane speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// AWS Systems Manager Parameter Store.
    Ssm,
    /// Elastic Container Service.
    Ecs,
    /// CodePipeline.
    CodePipeline,
    /// CloudWatch Logs (the migration's `awslogs` streams).
    Logs,
    /// S3 (the pipeline's artifact store; REST, not awsJson).
    S3,
}

impl Service {
    /// Maps an `X-Amz-Target` prefix to the service.
    pub fn from_target_prefix(prefix: &str) -> Option<Service> {
        match prefix {
            "AmazonSSM" => Some(Service::Ssm),
            "AmazonEC2ContainerServiceV20141113" => Some(Service::Ecs),
            "CodePipeline_20150709" => Some(Service::CodePipeline),
            "Logs_20140328" => Some(Service::Logs),
            _ => None,
        }
    }

    /// The IAM action prefix (`ssm`, `ecs`, `codepipeline`, `logs`).
    pub fn iam_prefix(self) -> &'static str {
        match self {
            Service::Ssm => "ssm",
            Service::Ecs => "ecs",
            Service::CodePipeline => "codepipeline",
            Service::Logs => "logs",
            Service::S3 => "s3",
        }
    }

    /// The code this service uses for an internal error.
    fn internal_error_code(self) -> &'static str {
        match self {
            Service::Ssm => "InternalServerError",
            Service::Ecs => "ServerException",
            Service::CodePipeline => "InternalFailure",
            Service::Logs => "ServiceUnavailableException",
            Service::S3 => "InternalError",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Ssm => "SSM",
            Service::Ecs => "ECS",
            Service::CodePipeline => "CodePipeline",
            Service::Logs => "CloudWatch Logs",
            Service::S3 => "S3",
        })
    }
}

/// Per-operation call counters and the scenario's fault rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
    counts: BTreeMap<String, u32>,
}

impl Faults {
    /// Faults from a scenario.
    pub fn new(rules: Vec<FaultRule>) -> Self {
        Faults {
            rules,
            counts: BTreeMap::new(),
        }
    }

    /// Counts one call of `operation` and returns the fault to apply to it,
    /// with its 1-based call number.
    pub fn on_call(&mut self, operation: &str) -> (u32, Option<Fault>) {
        let n = self.counts.entry(operation.to_string()).or_insert(0);
        *n += 1;
        let fault = self
            .rules
            .iter()
            .find(|r| r.operation == operation && r.calls.matches(*n))
            .map(|r| r.fault);
        (*n, fault)
    }
}

/// The answer AWS gives for an injected fault (not used for `Crash`, which
/// answers normally after killing the caller).
pub fn fault_error(fault: Fault, service: Service, operation: &str) -> ApiError {
    match fault {
        Fault::Throttle => {
            let mut e = ApiError::client("ThrottlingException", "Rate exceeded");
            if service == Service::Ssm {
                e = e.with("Message", "Rate exceeded".into());
            }
            e
        }
        Fault::Http500 | Fault::LostAnswer => ApiError::new(
            500,
            service.internal_error_code(),
            "We encountered an internal error. Please try again.",
        ),
        Fault::Http503 => ApiError::new(503, "ServiceUnavailable", "Service Unavailable"),
        Fault::AccessDenied => ApiError::client(
            "AccessDeniedException",
            format!(
                "User: arn:aws:sts::{ACCOUNT}:assumed-role/migrate-once-role/migrate-once is not authorized to perform: {}:{operation} on resource: arn:aws:{}:{REGION}:{ACCOUNT}:* because no identity-based policy allows the {}:{operation} action",
                service.iam_prefix(),
                service.iam_prefix(),
                service.iam_prefix()
            ),
        ),
        Fault::Crash => ApiError::new(500, "InternalFailure", "the calling process was killed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Calls;

    #[test]
    fn faults_hit_only_the_chosen_calls() {
        let mut f = Faults::new(vec![FaultRule {
            operation: "RunTask".into(),
            calls: Calls::Numbers(vec![2]),
            fault: Fault::Throttle,
        }]);
        assert_eq!(f.on_call("RunTask"), (1, None));
        assert_eq!(f.on_call("DescribeTasks"), (1, None));
        assert_eq!(f.on_call("RunTask"), (2, Some(Fault::Throttle)));
        assert_eq!(f.on_call("RunTask"), (3, None));
    }

    #[test]
    fn access_denied_names_the_action() {
        let e = fault_error(Fault::AccessDenied, Service::Ecs, "RunTask");
        assert_eq!(e.code, "AccessDeniedException");
        assert!(e.message.contains("ecs:RunTask"));
    }
}
