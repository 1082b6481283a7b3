//! Per-account API throttling: one token bucket per quota, shared by every
//! caller of the control plane (like an AWS account and Region), so a fleet
//! of deployments competes for the same budget the way it does in AWS.
//!
//! A scenario opts in with a `quotas` object; without it nothing is
//! throttled, so existing scenarios behave exactly as before. A throttled
//! call is answered like AWS answers it (`ThrottlingException`, "Rate
//! exceeded", built by [`crate::faults::fault_error`]) and recorded in the
//! call log with that error code and no `fault`, so tests can tell quota
//! throttling from injected faults.
//!
//! Default figures ([`Quotas::aws_defaults`]) and where they come from:
//!
//! - **SSM reads** (GetParameter, GetParameters, GetParametersByPath,
//!   shared): 40 TPS, Parameter Store's default throughput: "Default
//!   throughput: 40 (shared by GetParameter, GetParameters,
//!   GetParametersByPath)" in "AWS Systems Manager endpoints and quotas", as
//!   quoted by a DevelopersIO (Classmethod) support article; the
//!   GetParameter/PutParameter API references say only that a standard
//!   throughput quota applies. Burst = rate: AWS publishes no burst figure.
//! - **SSM writes** (PutParameter, DeleteParameter, DeleteParameters,
//!   shared): 3 TPS, as AWS support answers users have published (10 with
//!   higher throughput); AWS documents no figure. Burst = rate.
//! - **ECS RunTask**: burst 100, refill 20/s; **ECS DescribeTasks**: burst
//!   100, refill 40/s. ECS documents the token-bucket model (bucket maximum
//!   capacity = burst, refill = sustained rate) in "Request throttling for
//!   the Amazon ECS API"
//!   (<https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html>;
//!   its example: cluster read actions such as DescribeClusters have a
//!   bucket of 50). The per-action figures used here (RunTask 100/20,
//!   DescribeTasks 100/40) come from a public summary of that page's table,
//!   not from the table itself: check them there before relying on them.
//! - **CodePipeline job results** (PutJobSuccessResult,
//!   PutJobFailureResult, shared): AWS publishes no rate for them ("Quotas in
//!   AWS CodePipeline" lists only resource counts and timeouts); 10/s with a
//!   burst of 20 is an assumption, deliberately low.

use crate::faults::Service;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::time::Instant;

/// One bucket's configuration: sustained `rate` (tokens per second) and
/// `burst` (bucket capacity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Tokens added per second (the sustained rate).
    pub rate: f64,
    /// Bucket capacity (the most calls in one burst).
    pub burst: f64,
}

impl Rate {
    /// `rate` per second with a burst of the same size.
    pub fn per_second(rate: f64) -> Rate {
        Rate { rate, burst: rate }
    }

    /// This rate multiplied by `factor` (rate and burst).
    pub fn scaled(self, factor: f64) -> Rate {
        Rate {
            rate: self.rate * factor,
            burst: self.burst * factor,
        }
    }
}

/// The scenario's `quotas`: one optional rate per bucket; an absent bucket
/// is not throttled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quotas {
    /// GetParameter, GetParameters, GetParametersByPath (shared).
    #[serde(default)]
    pub ssm_read: Option<Rate>,
    /// PutParameter, DeleteParameter, DeleteParameters (shared).
    #[serde(default)]
    pub ssm_write: Option<Rate>,
    /// ECS RunTask.
    #[serde(default)]
    pub run_task: Option<Rate>,
    /// ECS DescribeTasks.
    #[serde(default)]
    pub describe_tasks: Option<Rate>,
    /// CodePipeline PutJobSuccessResult and PutJobFailureResult (shared).
    #[serde(default)]
    pub job_results: Option<Rate>,
}

impl Quotas {
    /// AWS's default quotas for one account and Region (see the module
    /// docs for the source of each figure).
    pub fn aws_defaults() -> Quotas {
        Quotas {
            ssm_read: Some(Rate::per_second(40.0)),
            ssm_write: Some(Rate::per_second(3.0)),
            run_task: Some(Rate {
                rate: 20.0,
                burst: 100.0,
            }),
            describe_tasks: Some(Rate {
                rate: 40.0,
                burst: 100.0,
            }),
            job_results: Some(Rate {
                rate: 10.0,
                burst: 20.0,
            }),
        }
    }

    /// Every configured bucket multiplied by `factor` (e.g. 10 for a raised
    /// quota).
    pub fn scaled(&self, factor: f64) -> Quotas {
        let s = |r: Option<Rate>| r.map(|r| r.scaled(factor));
        Quotas {
            ssm_read: s(self.ssm_read),
            ssm_write: s(self.ssm_write),
            run_task: s(self.run_task),
            describe_tasks: s(self.describe_tasks),
            job_results: s(self.job_results),
        }
    }

    fn rate(&self, bucket: Bucket) -> Option<Rate> {
        match bucket {
            Bucket::SsmRead => self.ssm_read,
            Bucket::SsmWrite => self.ssm_write,
            Bucket::RunTask => self.run_task,
            Bucket::DescribeTasks => self.describe_tasks,
            Bucket::JobResults => self.job_results,
        }
    }
}

/// The quota an operation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bucket {
    /// Parameter Store reads.
    SsmRead,
    /// Parameter Store writes.
    SsmWrite,
    /// ECS RunTask.
    RunTask,
    /// ECS DescribeTasks.
    DescribeTasks,
    /// CodePipeline job results.
    JobResults,
}

/// Which bucket a call of `operation` on `service` draws from, if any.
pub fn bucket_of(service: Service, operation: &str) -> Option<Bucket> {
    match (service, operation) {
        (Service::Ssm, "GetParameter" | "GetParameters" | "GetParametersByPath") => {
            Some(Bucket::SsmRead)
        }
        (Service::Ssm, "PutParameter" | "DeleteParameter" | "DeleteParameters") => {
            Some(Bucket::SsmWrite)
        }
        (Service::Ecs, "RunTask") => Some(Bucket::RunTask),
        (Service::Ecs, "DescribeTasks") => Some(Bucket::DescribeTasks),
        (Service::CodePipeline, "PutJobSuccessResult" | "PutJobFailureResult") => {
            Some(Bucket::JobResults)
        }
        _ => None,
    }
}

/// A token bucket: starts full, refills continuously at `rate`, never holds
/// more than `burst`.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate: Rate,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    fn new(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate.burst,
            refilled: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.rate).min(self.rate.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The account's buckets.
#[derive(Debug)]
pub struct Throttle {
    quotas: Quotas,
    buckets: BTreeMap<Bucket, TokenBucket>,
}

impl Throttle {
    /// Buckets for `quotas`, all full.
    pub fn new(quotas: Quotas) -> Throttle {
        Throttle {
            quotas,
            buckets: BTreeMap::new(),
        }
    }

    /// Whether a call of `operation` may proceed at `now` (a
    /// [`crate::clock::instant`]), taking a token, or is throttled.
    pub fn admit(&mut self, service: Service, operation: &str, now: Instant) -> bool {
        let Some(bucket) = bucket_of(service, operation) else {
            return true;
        };
        let Some(rate) = self.quotas.rate(bucket) else {
            return true;
        };
        self.buckets
            .entry(bucket)
            .or_insert_with(|| TokenBucket::new(rate, now))
            .take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn operations_map_to_their_buckets() {
        let table = [
            (Service::Ssm, "GetParameter", Some(Bucket::SsmRead)),
            (Service::Ssm, "GetParametersByPath", Some(Bucket::SsmRead)),
            (Service::Ssm, "PutParameter", Some(Bucket::SsmWrite)),
            (Service::Ssm, "DeleteParameters", Some(Bucket::SsmWrite)),
            (Service::Ecs, "RunTask", Some(Bucket::RunTask)),
            (Service::Ecs, "DescribeTasks", Some(Bucket::DescribeTasks)),
            (Service::Ecs, "StopTask", None),
            (
                Service::CodePipeline,
                "PutJobFailureResult",
                Some(Bucket::JobResults),
            ),
            (Service::CodePipeline, "GetPipelineState", None),
            (Service::Logs, "GetLogEvents", None),
        ];
        for (service, op, want) in table {
            assert_eq!(bucket_of(service, op), want, "{op}");
        }
    }

    #[test]
    fn no_quotas_never_throttle() {
        let mut t = Throttle::new(Quotas::default());
        let now = crate::clock::instant();
        assert!((0..1000).all(|_| t.admit(Service::Ssm, "GetParameter", now)));
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut t = Throttle::new(Quotas {
            ssm_write: Some(Rate {
                rate: 3.0,
                burst: 5.0,
            }),
            ..Quotas::default()
        });
        let t0 = crate::clock::instant();
        let admitted = (0..10)
            .filter(|_| t.admit(Service::Ssm, "PutParameter", t0))
            .count();
        assert_eq!(admitted, 5);
        // Reads are a different bucket (unconfigured here).
        assert!(t.admit(Service::Ssm, "GetParameter", t0));
        // One second later: 3 more tokens, not 5.
        let t1 = t0 + Duration::from_secs(1);
        let admitted = (0..10)
            .filter(|_| t.admit(Service::Ssm, "DeleteParameter", t1))
            .count();
        assert_eq!(admitted, 3);
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(60);
        let admitted = (0..10)
            .filter(|_| t.admit(Service::Ssm, "PutParameter", t2))
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn scaling_multiplies_rate_and_burst() {
        let q = Quotas::aws_defaults().scaled(10.0);
        assert_eq!(q.ssm_read, Some(Rate::per_second(400.0)));
        assert_eq!(
            q.run_task,
            Some(Rate {
                rate: 200.0,
                burst: 1000.0
            })
        );
    }

    #[test]
    fn quotas_parse_from_scenario_json() {
        let q: Quotas =
            serde_json::from_str(r#"{"ssmRead": {"rate": 40, "burst": 40}}"#).expect("parses");
        assert_eq!(q.ssm_read, Some(Rate::per_second(40.0)));
        assert_eq!(q.ssm_write, None);
        assert!(serde_json::from_str::<Quotas>(r#"{"ssmReads": {}}"#).is_err());
    }
}
