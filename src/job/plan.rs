//! What a job that may start an attempt does, given the attempt records:
//! the pure decision at the heart of "at most once per deployment".
//!
//! Who may start an attempt (SPEC §4 step 4): the first job of an action run,
//! a continuation of that run (after a lock wait, a transient start failure
//! or an unknown RunTask outcome), a new job of a stage retry, or a rerun
//! (which is a stage retry). Never a repeated delivery of a job, however
//! late, and never a deployment other than the latest one on the state
//! parameter. [`plan_start`] encodes exactly that over plain records:
//!
//! - a job without a token whose id is some record's `actionJob` (or
//!   `jobId`) is a repeated delivery: it reports that record;
//! - a continuation names its action run and its attempt, so a repeated or
//!   late copy of it finds the attempt it belongs to and reports it, unless
//!   that attempt is still the one to go on with;
//! - a deployment that is not the latest (the top record names another, and
//!   this one appears in the records or in the top's `recent` list) is
//!   superseded: nothing starts;
//! - otherwise the next attempt is *claimed* (created, `Overwrite=false`) as
//!   record `top + 1`: one invocation wins, a loser plans again over the new
//!   records and finds the winner's claim.

use crate::config::Rerun;
use crate::state::{FailureClass, State, Status, deployment_key};

/// The job asking to start (or resume) an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Caller<'a> {
    /// The first job of an action run (`action_job == job`), or a
    /// continuation of it that could not claim anything yet (AWS was busy):
    /// it plans as the first job would.
    First { action_job: &'a str, job: &'a str },
    /// A continuation after attempt `after` failed to start transiently.
    Retry {
        action_job: &'a str,
        job: &'a str,
        after: u64,
    },
    /// A continuation that goes on with the claimed attempt `seq`.
    Resume {
        action_job: &'a str,
        job: &'a str,
        seq: u64,
    },
}

impl Caller<'_> {
    /// The first job of the caller's action run.
    pub fn action_job(&self) -> &str {
        match *self {
            Caller::First { action_job, .. }
            | Caller::Retry { action_job, .. }
            | Caller::Resume { action_job, .. } => action_job,
        }
    }

    /// This job's id.
    pub fn job(&self) -> &str {
        match *self {
            Caller::First { job, .. } | Caller::Retry { job, .. } | Caller::Resume { job, .. } => {
                job
            }
        }
    }
}

/// What the caller does.
#[derive(Debug, Clone, PartialEq)]
pub enum StartPlan {
    /// Claim record `seq` as the deployment's attempt `attempt`.
    /// `rerun_of`: the transiently failed attempt this one may be the
    /// automatic rerun of (its rerun claim adds one to `reruns`).
    Claim {
        seq: u64,
        attempt: u32,
        reruns: u32,
        tries: u32,
        rerun_of: Option<u64>,
    },
    /// Go on with this unfinished attempt: watch its task, or start it.
    Resume(State),
    /// Report what this record says, and do nothing else.
    Report(State),
    /// `rerun: once` and the deployment's migration already succeeded.
    AlreadySucceeded(State),
    /// Another deployment was started on the state parameter after this
    /// one; `unstarted` is this deployment's claimed attempt that never
    /// called RunTask, to be marked failed.
    Superseded {
        latest: String,
        unstarted: Option<State>,
    },
    /// A continuation whose attempt record is gone (deleted by hand).
    Lost,
    /// The first delivery of a job that would claim the next attempt after
    /// an earlier action run's: a stage retry or rerun — or a late copy of
    /// a job that adopted that run's attempt (adopting leaves no record of
    /// its own). It hands back a continuation first: CodePipeline refuses
    /// a late copy's report, and only a live job's continuation claims.
    Confirm,
}

/// Decides what `caller` does for `deployment`, given the attempt records
/// (lowest `seq` first).
pub fn plan_start(records: &[State], deployment: &str, caller: Caller, rerun: Rerun) -> StartPlan {
    let own = |r: &&State| r.deployment == deployment;
    // A repeated delivery of a job that claimed or began something.
    let repeated = records.iter().rev().filter(own).find(|r| match caller {
        Caller::First { action_job, job } => r.action_job == action_job || r.job_id == job,
        Caller::Retry { job, .. } | Caller::Resume { job, .. } => r.job_id == job,
    });
    if let Some(record) = repeated {
        return StartPlan::Report(record.clone());
    }
    if let Caller::Resume { seq, .. } = caller {
        let Some(record) = records
            .iter()
            .find(|r| r.seq == seq && r.deployment == deployment)
        else {
            return StartPlan::Lost;
        };
        let latest = records.last().map(|t| t.deployment.as_str());
        return match record.status {
            Status::Running => StartPlan::Resume(record.clone()),
            s if s.is_final() => StartPlan::Report(record.clone()),
            _ if latest != Some(deployment) => StartPlan::Superseded {
                latest: latest.unwrap_or_default().to_owned(),
                unstarted: Some(record.clone()),
            },
            // A newer attempt of this deployment exists while this one never
            // started: only hand-edited records get here.
            _ if records.last().is_some_and(|t| t.seq != seq) => StartPlan::Lost,
            _ => StartPlan::Resume(record.clone()),
        };
    }
    let Some(top) = records.last() else {
        return match caller {
            Caller::First { .. } => claim(1, 1, 0, 1, None),
            _ => StartPlan::Lost,
        };
    };
    if top.deployment != deployment {
        let known =
            records.iter().any(|r| own(&r)) || top.recent.contains(&deployment_key(deployment));
        if known || !matches!(caller, Caller::First { .. }) {
            // A running task of ours is still watched; an unstarted claim is void.
            if let Some(running) = records
                .iter()
                .rev()
                .filter(own)
                .find(|r| r.status == Status::Running)
            {
                return StartPlan::Resume(running.clone());
            }
            return StartPlan::Superseded {
                latest: top.deployment.clone(),
                unstarted: records
                    .iter()
                    .rev()
                    .filter(own)
                    .find(|r| r.status == Status::Starting)
                    .cloned(),
            };
        }
        return claim(top.seq + 1, 1, 0, 1, None);
    }
    match caller {
        Caller::First { action_job, job } => {
            if !top.status.is_final() {
                StartPlan::Resume(top.clone())
            } else if top.status == Status::Succeeded && rerun == Rerun::Once {
                StartPlan::AlreadySucceeded(top.clone())
            } else if action_job == job {
                StartPlan::Confirm
            } else {
                let rerun_of = top.failed_transiently().then_some(top.seq);
                claim(top.seq + 1, top.attempt + 1, top.reruns, 1, rerun_of)
            }
        }
        Caller::Retry {
            action_job, after, ..
        } => {
            if top.seq == after && top.action_job == action_job && top.failed_transiently() {
                claim(
                    top.seq + 1,
                    top.attempt + 1,
                    top.reruns,
                    top.tries + 1,
                    None,
                )
            } else {
                StartPlan::Report(top.clone())
            }
        }
        Caller::Resume { .. } => unreachable!("handled above"),
    }
}

/// What must be known of this deployment's earlier attempts before
/// `record`'s RunTask.
#[derive(Debug, PartialEq)]
pub enum Before<'r> {
    /// Nothing: it runs.
    Run,
    /// The attempt just before it failed before its task's end was seen (it
    /// timed out: its task was told to stop and may still be stopping, or
    /// may have exited 0 meanwhile). ECS must say how it ended.
    Unseen(&'r State),
    /// An earlier attempt succeeded (`rerun: once`; found so by an earlier
    /// look at a timed-out attempt that exited 0): it does not run.
    Applied(&'r State),
}

/// Decides [`Before`] for `record` over the attempt records. Pure.
pub fn before_run<'r>(records: &'r [State], record: &State, rerun: Rerun) -> Before<'r> {
    let mut earlier = records
        .iter()
        .rev()
        .filter(|r| r.deployment == record.deployment && r.seq < record.seq);
    if rerun == Rerun::Once
        && let Some(done) = earlier.clone().find(|r| r.status == Status::Succeeded)
    {
        return Before::Applied(done);
    }
    match earlier.find(|r| r.task_arn.is_some()) {
        Some(r)
            if r.status == Status::Failed
                && r.exit_code.is_none()
                && r.failure_class != Some(FailureClass::Transient) =>
        {
            Before::Unseen(r)
        }
        _ => Before::Run,
    }
}

fn claim(seq: u64, attempt: u32, reruns: u32, tries: u32, rerun_of: Option<u64>) -> StartPlan {
    StartPlan::Claim {
        seq,
        attempt,
        reruns,
        tries,
        rerun_of,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests_support::record;
    use crate::state::{FailureClass, recent_after};

    fn rec(deployment: &str, seq: u64, status: Status, action_job: &str, job: &str) -> State {
        State {
            action_job: action_job.into(),
            job_id: job.into(),
            attempt: seq as u32,
            ..record(deployment, seq, status)
        }
    }

    fn transient(mut r: State) -> State {
        r.failure_class = Some(FailureClass::Transient);
        r
    }

    #[test]
    fn start_plans() {
        use Status::*;
        let once = Rerun::Once;
        let first = Caller::First {
            action_job: "j9",
            job: "j9",
        };
        // The stage retry's job once it confirmed it is live.
        let confirmed = Caller::First {
            action_job: "j9",
            job: "j10",
        };
        let d_ok = rec("d", 1, Succeeded, "j1", "j1");
        let d_failed = rec("d", 1, Failed, "j1", "j1");
        let d_transient = transient(rec("d", 1, Failed, "j1", "j1"));
        let d_running = rec("d", 1, Running, "j1", "j1");
        let d_starting = rec("d", 1, Starting, "j1", "j1");
        let other = State {
            recent: recent_after(Some(&d_ok), "e"),
            ..rec("e", 2, Running, "k1", "k1")
        };
        let cases: Vec<(&str, Vec<State>, Caller, Rerun, StartPlan)> = vec![
            ("nothing yet", vec![], first, once, claim(1, 1, 0, 1, None)),
            (
                "a new deployment after another",
                vec![rec("x", 4, Succeeded, "k", "k")],
                first,
                once,
                claim(5, 1, 0, 1, None),
            ),
            (
                "already applied",
                vec![d_ok.clone()],
                first,
                once,
                StartPlan::AlreadySucceeded(d_ok.clone()),
            ),
            (
                "rerun always: confirm first",
                vec![d_ok.clone()],
                first,
                Rerun::Always,
                StartPlan::Confirm,
            ),
            (
                "rerun always: the next attempt",
                vec![d_ok.clone()],
                confirmed,
                Rerun::Always,
                claim(2, 2, 0, 1, None),
            ),
            (
                // Or a late copy of a job that adopted attempt 1: only a
                // live job's continuation claims.
                "stage retry after a failure: confirm first",
                vec![d_failed.clone()],
                first,
                once,
                StartPlan::Confirm,
            ),
            (
                "stage retry after a failure",
                vec![d_failed.clone()],
                confirmed,
                once,
                claim(2, 2, 0, 1, None),
            ),
            (
                "stage retry after a transient failure may be a rerun",
                vec![d_transient.clone()],
                confirmed,
                once,
                claim(2, 2, 0, 1, Some(1)),
            ),
            (
                "stage retry while the task runs: watch it",
                vec![d_running.clone()],
                first,
                once,
                StartPlan::Resume(d_running.clone()),
            ),
            (
                "stage retry of a claim that never ran: resume it",
                vec![d_starting.clone()],
                first,
                once,
                StartPlan::Resume(d_starting.clone()),
            ),
            (
                "repeated first job: report, even with rerun always",
                vec![d_ok.clone()],
                Caller::First {
                    action_job: "j1",
                    job: "j1",
                },
                Rerun::Always,
                StartPlan::Report(d_ok.clone()),
            ),
            (
                "late first job after its retries claimed more",
                vec![d_transient.clone(), rec("d", 2, Failed, "j1", "j2")],
                Caller::First {
                    action_job: "j1",
                    job: "j1",
                },
                once,
                StartPlan::Report(rec("d", 2, Failed, "j1", "j2")),
            ),
            (
                "start retry of the failed top",
                vec![d_transient.clone()],
                Caller::Retry {
                    action_job: "j1",
                    job: "j2",
                    after: 1,
                },
                once,
                claim(2, 2, 0, 2, None),
            ),
            (
                "late start retry after the next attempt",
                vec![d_transient.clone(), rec("d", 2, Succeeded, "j1", "j2")],
                Caller::Retry {
                    action_job: "j1",
                    job: "j3",
                    after: 1,
                },
                once,
                StartPlan::Report(rec("d", 2, Succeeded, "j1", "j2")),
            ),
            (
                "repeated start retry that claimed",
                vec![d_transient.clone(), rec("d", 2, Starting, "j1", "j2")],
                Caller::Retry {
                    action_job: "j1",
                    job: "j2",
                    after: 1,
                },
                once,
                StartPlan::Report(rec("d", 2, Starting, "j1", "j2")),
            ),
            (
                "resume after the lock wait",
                vec![d_starting.clone()],
                Caller::Resume {
                    action_job: "j1",
                    job: "j5",
                    seq: 1,
                },
                once,
                StartPlan::Resume(d_starting.clone()),
            ),
            (
                "resume of an attempt another deployment superseded",
                vec![d_starting.clone(), rec("e", 2, Starting, "k", "k")],
                Caller::Resume {
                    action_job: "j1",
                    job: "j5",
                    seq: 1,
                },
                once,
                StartPlan::Superseded {
                    latest: "e".into(),
                    unstarted: Some(d_starting.clone()),
                },
            ),
            (
                "late first job of an older deployment",
                vec![d_ok.clone(), other.clone()],
                first,
                once,
                StartPlan::Superseded {
                    latest: "e".into(),
                    unstarted: None,
                },
            ),
            (
                "older deployment known only from `recent`",
                vec![other.clone()],
                first,
                once,
                StartPlan::Superseded {
                    latest: "e".into(),
                    unstarted: None,
                },
            ),
            (
                "older deployment whose task still runs: watch it",
                vec![d_running.clone(), other.clone()],
                first,
                once,
                StartPlan::Resume(d_running.clone()),
            ),
            (
                "continuation whose record is gone",
                vec![],
                Caller::Resume {
                    action_job: "j1",
                    job: "j5",
                    seq: 3,
                },
                once,
                StartPlan::Lost,
            ),
        ];
        for (name, records, caller, rerun, expected) in cases {
            assert_eq!(plan_start(&records, "d", caller, rerun), expected, "{name}");
        }
    }

    #[test]
    fn before_an_attempt_runs_the_one_before_must_have_ended() {
        use Status::*;
        let with_task = |seq, status| State {
            task_arn: Some(format!("arn:task/{seq}")),
            ..record("d", seq, status)
        };
        let timed_out = with_task(1, Failed).failed(FailureClass::Permanent, "timed out", "t");
        let exited = with_task(1, Failed).finished(Failed, Some(1), None, "t");
        let start_failure =
            with_task(1, Failed).failed(FailureClass::Transient, "RESOURCE:MEMORY", "t");
        let applied = with_task(1, Succeeded).finished(Succeeded, Some(0), None, "t");
        let next = record("d", 3, Starting);
        let other = State {
            deployment: "e".into(),
            ..with_task(2, Failed).failed(FailureClass::Permanent, "timed out", "t")
        };
        let once = Rerun::Once;
        let before = |records: &[State], rerun| match before_run(records, &next, rerun) {
            Before::Run => "run",
            Before::Unseen(r) if r.seq == 1 => "unseen 1",
            Before::Applied(r) if r.seq == 1 => "applied by 1",
            _ => "other",
        };
        assert_eq!(
            before(&[timed_out.clone(), other.clone()], once),
            "unseen 1"
        );
        assert_eq!(before(&[exited], once), "run");
        assert_eq!(before(&[start_failure], once), "run");
        assert_eq!(before(&[other], once), "run");
        assert_eq!(before(std::slice::from_ref(&applied), once), "applied by 1");
        assert_eq!(before(&[applied], Rerun::Always), "run");
        // Still stopping matters with `rerun: always` too.
        assert_eq!(
            before(std::slice::from_ref(&timed_out), Rerun::Always),
            "unseen 1"
        );
        // Only the attempt just before counts.
        let after = with_task(2, Failed).finished(Failed, Some(1), None, "t");
        assert_eq!(before(&[timed_out, after], once), "run");
    }
}
