//! SPEC §4's guarantees under every fault, against the local control plane:
//! the built `migrate-once` binary run as Lambda processes (crash restarts,
//! async redelivery, duplicate deliveries) over the real SDK and HTTP.
//!
//! - a crash right after *each* AWS call of a clean deployment;
//! - duplicate deliveries of every job, concurrent and sequential, and late
//!   duplicates of every job after the action ended;
//! - throttling, 5xx and AccessDenied on each operation, once and for good;
//! - 20 deployments at once on one lock; stale lock takeover by two
//!   contenders; the lock released on every terminal path;
//! - a few seeded random fault schedules of the whole binary, a smoke run
//!   (`MIGRATE_ONCE_FAULT_SEED`, `MIGRATE_ONCE_FAULT_SCHEDULES` reproduce
//!   one): exploring schedules is the simulator's job (`sim/`, `make sim`).
//!
//! Every check is on what the pipeline saw (reports, status, failure type,
//! message), how many tasks ECS started and when (the task timeline), and
//! what SSM holds (state record, lock records). Scenarios are built from
//! `tests/scenarios/faults.json`, whose function environment makes the SDK
//! try 3 times with 1 ms backoff, so nothing here sleeps for real.

use local_aws::scenario::{Calls, DuplicateDelivery, FaultRule, ParameterSpec};
use local_aws::{
    ActionResult, ActionStatus, Fault, FunctionHost, LocalAws, PipelineDriver, Scenario,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const STATE: &str = "/migrate-once/app/app-migrate";
const LOCK: &str = "/migrate-once/app/app-migrate/lock";
/// How many whole-system cases run at once (2 cores; each case is a few
/// short-lived processes mostly waiting on each other).
const PARALLEL: usize = 4;

fn bootstrap() -> String {
    std::env::var("MIGRATE_ONCE_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrate-once").to_string())
}

fn base() -> Scenario {
    Scenario::from_file(format!(
        "{}/tests/scenarios/faults.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("faults.json")
}

fn scenario_file(name: &str) -> Scenario {
    Scenario::from_file(format!(
        "{}/tests/scenarios/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("scenario")
}

fn rule(operation: &str, calls: Calls, fault: Fault) -> FaultRule {
    FaultRule {
        operation: operation.into(),
        calls,
        fault,
    }
}

fn exec_id(n: usize) -> String {
    format!("f0000000-0000-4000-8000-{n:012}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A control plane and a function host for one case.
struct Sys {
    aws: LocalAws,
    host: FunctionHost,
}

impl Sys {
    async fn start(scenario: Scenario) -> Sys {
        let aws = LocalAws::start(scenario).await.expect("control plane");
        let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
        Sys { aws, host }
    }

    /// Runs one action execution of `execution`, bounded in time.
    async fn action(&self, execution: &str) -> Result<ActionResult, String> {
        let driver = PipelineDriver::new(&self.aws, &self.host);
        tokio::time::timeout(Duration::from_secs(30), driver.run(execution))
            .await
            .map_err(|_| {
                format!(
                    "action {execution} did not end within 30 s (a hang or a lock never released)"
                )
            })
    }

    /// Runs one action per execution id, all at the same moment.
    async fn actions(&self, executions: &[String]) -> Result<Vec<ActionResult>, String> {
        let (results, unfinished) = self
            .actions_until(executions, Duration::from_secs(40))
            .await?;
        match unfinished.as_slice() {
            [] => Ok(results),
            _ => Err(format!("actions {unfinished:?} did not end within 40 s")),
        }
    }

    /// Runs the actions at once; returns the finished ones and the execution
    /// ids of those still in progress after `bound`.
    async fn actions_until(
        &self,
        executions: &[String],
        bound: Duration,
    ) -> Result<(Vec<ActionResult>, Vec<String>), String> {
        let mut set = JoinSet::new();
        for (i, e) in executions.iter().enumerate() {
            let driver = PipelineDriver::new(&self.aws, &self.host);
            let e = e.clone();
            set.spawn(async move {
                let r = tokio::time::timeout(bound, driver.run(&e)).await;
                (i, e, r)
            });
        }
        let mut out: Vec<Option<ActionResult>> = vec![None; executions.len()];
        let mut unfinished = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, _, Ok(r))) => out[i] = Some(r),
                Ok((_, e, Err(_))) => unfinished.push(e),
                Err(e) => return Err(format!("driver panicked: {e}")),
            }
        }
        Ok((out.into_iter().flatten().collect(), unfinished))
    }

    fn state(&self) -> Option<Value> {
        self.aws
            .parameter(STATE)
            .and_then(|p| serde_json::from_str(&p.value).ok())
    }

    /// The top lock record (the lock), as (name, value).
    fn lock_top(&self) -> Option<(String, Value)> {
        self.aws
            .parameters()
            .into_iter()
            .filter(|p| p.name.starts_with(&format!("{LOCK}/")))
            .max_by(|a, b| a.name.cmp(&b.name))
            .map(|p| {
                (
                    p.name,
                    serde_json::from_str(&p.value).unwrap_or(Value::Null),
                )
            })
    }

    /// Tasks tagged with `execution`'s deployment id.
    fn tasks_of(&self, execution: &str) -> Vec<String> {
        self.aws
            .task_timeline()
            .into_iter()
            .filter(|t| t.deployment.as_deref() == Some(execution))
            .map(|t| t.arn)
            .collect()
    }

    /// Whether the lock is held only as the model allows: released, or
    /// held by an attempt that has a task (alive until ECS says STOPPED,
    /// then the next contender takes over at once). An attempt without a
    /// task would make the next deployment wait for the no-progress proof.
    fn lock_free_or_stale(&self) -> bool {
        let Some((_, top)) = self.lock_top() else {
            return true;
        };
        top["released"] == true || self.holder_task(&top).is_some()
    }

    /// The task of the attempt a lock record names, per its attempt record.
    fn holder_task(&self, holder: &Value) -> Option<String> {
        let record = format!(
            "{}/a/{:010}",
            holder["stateParameter"].as_str()?,
            holder["seq"].as_u64()?
        );
        let value: Value = serde_json::from_str(&self.aws.parameter(&record)?.value).ok()?;
        value["taskArn"].as_str().map(str::to_owned)
    }

    fn explain(&self, results: &[&ActionResult]) -> String {
        let calls: Vec<String> = self.aws.calls().iter().map(|c| c.to_string()).collect();
        let actions: Vec<String> = results
            .iter()
            .map(|r| {
                format!(
                    "action {}: {:?} {:?} {:?}\n  reports: {:?}",
                    r.execution_id,
                    r.status,
                    r.failure_type,
                    r.message,
                    r.reports
                        .iter()
                        .map(|x| (
                            x.success,
                            x.continuation_token.is_some(),
                            x.summary.clone(),
                            x.failure_message.clone()
                        ))
                        .collect::<Vec<_>>()
                )
            })
            .collect();
        let logs = self.host.logs();
        let tail: String = logs
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "{}\nstate: {:?}\nlock top: {:?}\ntimeline: {:?}\ncalls:\n{}\nfunction logs (tail):\n{tail}",
            actions.join("\n"),
            self.state(),
            self.lock_top(),
            self.aws.task_timeline(),
            calls.join("\n")
        )
    }

    /// SPEC §4 for one deployment that must end well: it succeeded with
    /// exactly one task, every job was reported once and only the last
    /// finally, the state record says succeeded for attempt 1 with that
    /// task, the lock is released, and no two migrations overlapped.
    fn check_exactly_once(&self, r: &ActionResult) -> Result<(), String> {
        let e = &r.execution_id;
        let mut problems = Vec::new();
        if r.status != ActionStatus::Succeeded {
            problems.push(format!("status {:?}: {:?}", r.status, r.message));
        }
        let tasks = self.tasks_of(e);
        if tasks.len() != 1 {
            problems.push(format!("{} tasks for the deployment", tasks.len()));
        }
        if r.reports.len() != r.jobs.len() {
            problems.push(format!(
                "{} jobs but {} reports",
                r.jobs.len(),
                r.reports.len()
            ));
        }
        let finals = r
            .reports
            .iter()
            .filter(|x| x.continuation_token.is_none())
            .count();
        if finals != 1
            || r.reports
                .last()
                .is_some_and(|x| x.continuation_token.is_some())
        {
            problems.push(format!("{finals} final reports"));
        }
        if let Some(task) = tasks.first() {
            if r.output_variables.get("TaskArn") != Some(task) {
                problems.push(format!(
                    "TaskArn output {:?}",
                    r.output_variables.get("TaskArn")
                ));
            }
            let state = self.state().unwrap_or(Value::Null);
            if state["deployment"] != e.as_str()
                || state["status"] != "succeeded"
                || state["attempt"] != 1
                || state["taskArn"] != task.as_str()
            {
                problems.push(format!("state record {state}"));
            }
        }
        match self.lock_top() {
            Some((_, top)) if top["released"] != true => {
                problems.push(format!("lock still held: {top}"))
            }
            _ => {}
        }
        if !self.aws.overlapping_tasks().is_empty() {
            problems.push("two migrations overlapped".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{}\n{}", problems.join("; "), self.explain(&[r])))
        }
    }

    /// The job event Lambda would deliver again for job `i` of `r`.
    fn job_event(&self, r: &ActionResult, i: usize) -> Value {
        let mut data = json!({
            "actionConfiguration": {"configuration": {
                "FunctionName": self.aws.scenario().function.name,
                "UserParameters": self.aws.scenario().user_parameters.resolved(&r.execution_id),
            }},
            "inputArtifacts": [],
            "outputArtifacts": [],
        });
        if i > 0
            && let Some(token) = &r.reports[i - 1].continuation_token
        {
            data["continuationToken"] = json!(token);
        }
        json!({"CodePipeline.job": {"id": r.jobs[i], "accountId": "123456789012", "data": data}})
    }
}

/// Runs `cases` (name, future) at most [`PARALLEL`] at a time and fails
/// with every failing case's explanation.
async fn run_cases<F>(cases: Vec<(String, F)>) -> usize
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let total = cases.len();
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut set = JoinSet::new();
    for (name, case) in cases {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            (name, case.await)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(why))) => failures.push(format!("=== {name}: {why}")),
            Err(e) => failures.push(format!("=== a case panicked: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    total
}

/// The AWS calls of a clean deployment, in order, as (operation, n-th call
/// of that operation).
async fn clean_sequence() -> (Vec<(String, u32)>, usize) {
    let sys = Sys::start(base()).await;
    let e = exec_id(1);
    let r = sys.action(&e).await.expect("clean run");
    sys.check_exactly_once(&r).expect("clean run");
    let calls = sys
        .aws
        .calls()
        .into_iter()
        .map(|c| (c.operation, c.call_number))
        .collect();
    (calls, r.jobs.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_each_aws_call_still_runs_one_task_and_reports_once() {
    let (sequence, _) = clean_sequence().await;
    assert!(sequence.len() >= 15, "{sequence:?}");
    let cases = sequence
        .into_iter()
        .enumerate()
        .map(|(k, (op, n))| {
            let name = format!("crash after call {} ({op}#{n})", k + 1);
            (name, async move {
                let mut s = base();
                s.faults = vec![rule(&op, Calls::Numbers(vec![n]), Fault::Crash)];
                let sys = Sys::start(s).await;
                let r = sys.action(&exec_id(1)).await?;
                let crashed = r.invocations.iter().any(|i| {
                    i.attempts
                        .iter()
                        .any(|a| matches!(a.result, local_aws::AttemptResult::Crashed(_)))
                });
                if !crashed {
                    return Err(format!("no delivery crashed\n{}", sys.explain(&[&r])));
                }
                sys.check_exactly_once(&r)
            })
        })
        .collect();
    let n = run_cases(cases).await;
    eprintln!("crash matrix: {n} positions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_of_every_job_start_one_task_and_report_once() {
    let (_, jobs) = clean_sequence().await;
    let mut cases = Vec::new();
    for job in 1..=jobs as u32 {
        for concurrent in [true, false] {
            let name = format!("job {job} delivered twice (concurrent: {concurrent})");
            cases.push((name, async move {
                let mut s = base();
                s.duplicate_deliveries = vec![DuplicateDelivery { job, concurrent }];
                let sys = Sys::start(s).await;
                let r = sys.action(&exec_id(1)).await?;
                if r.invocations.iter().any(|i| !i.succeeded()) {
                    return Err(format!(
                        "a duplicate returned an error instead of counting as done\n{}",
                        sys.explain(&[&r])
                    ));
                }
                sys.check_exactly_once(&r)
            }));
        }
    }
    run_cases(cases).await;
}

/// Late duplicates: after the action ended (successfully, or after a
/// transient start failure and a second attempt), Lambda delivers every job
/// of it again. Nothing may change: no task, no report, the same state
/// record and lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_duplicates_of_every_job_change_nothing() {
    let mut cases = Vec::new();
    for retried in [false, true] {
        let name = format!("late duplicates (start retried: {retried})");
        cases.push((name, async move {
            let mut s = base();
            if retried {
                s.tasks = serde_json::from_value(json!([
                    {"timeline": ["PROVISIONING", "PENDING"], "stopCode": "TaskFailedToStart",
                     "stoppedReason": "RESOURCE:ENI", "exitCodes": {}},
                    {}
                ]))
                .expect("tasks");
            }
            let sys = Sys::start(s).await;
            let r = sys.action(&exec_id(1)).await?;
            if r.status != ActionStatus::Succeeded {
                return Err(sys.explain(&[&r]));
            }
            let before = (
                sys.aws.task_count(),
                sys.aws.reports().len(),
                sys.state(),
                sys.lock_top(),
            );
            for i in 0..r.jobs.len() {
                let outcome = sys.host.invoke_async(&sys.job_event(&r, i)).wait().await;
                let after = (
                    sys.aws.task_count(),
                    sys.aws.reports().len(),
                    sys.state(),
                    sys.lock_top(),
                );
                if after != before || !outcome.succeeded() {
                    return Err(format!(
                        "late duplicate of job {} changed something or failed ({:?}):\nbefore {before:?}\nafter  {after:?}\n{}",
                        i + 1,
                        outcome.attempts.last().map(|a| a.result.to_string()),
                        sys.explain(&[&r])
                    ));
                }
            }
            Ok(())
        }));
    }
    run_cases(cases).await;
}

/// The same late duplicates, while the *next* deployment holds the lock and
/// its task runs: the old jobs must not touch its state record or lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_duplicates_never_touch_the_next_deployments_state_or_lock() {
    let mut s = base();
    s.tasks = serde_json::from_value(json!([
        {"timeline": ["PROVISIONING"], "stopCode": "TaskFailedToStart",
         "stoppedReason": "RESOURCE:ENI", "exitCodes": {}},
        {},
        {"timeline": ["RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING","RUNNING"]}
    ]))
    .expect("tasks");
    s.timing.continuation_delay_millis = 50;
    let sys = Sys::start(s).await;
    let first = sys.action(&exec_id(1)).await.expect("first");
    assert_eq!(
        first.status,
        ActionStatus::Succeeded,
        "{}",
        sys.explain(&[&first])
    );

    let driver = PipelineDriver::new(&sys.aws, &sys.host);
    let second = tokio::spawn(async move { driver.run(&exec_id(2)).await });
    // Wait until deployment 2 is running its task.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sys
        .state()
        .is_none_or(|s| s["deployment"] != exec_id(2).as_str() || s["status"] != "running")
    {
        assert!(
            Instant::now() < deadline,
            "deployment 2 never ran\n{}",
            sys.explain(&[])
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let holder = |top: Option<(String, Value)>| {
        top.map(|(name, v)| (name, v["deployment"].clone(), v["seq"].clone()))
    };
    let held = holder(sys.lock_top());
    for i in 0..first.jobs.len() {
        sys.host
            .invoke_async(&sys.job_event(&first, i))
            .wait()
            .await;
        let state = sys.state().unwrap_or(Value::Null);
        assert!(
            state["deployment"] == exec_id(2).as_str() && holder(sys.lock_top()) == held,
            "a late duplicate of deployment 1's job {} touched deployment 2's state or lock: {state}\n{}",
            i + 1,
            sys.explain(&[&first])
        );
    }
    let second = second.await.expect("second");
    assert_eq!(
        second.status,
        ActionStatus::Succeeded,
        "{}",
        sys.explain(&[&first, &second])
    );
    // Attempt 1 failed to start, attempt 2 ran: one task each.
    assert_eq!(
        sys.tasks_of(&exec_id(1)).len(),
        2,
        "{}",
        sys.explain(&[&first, &second])
    );
    assert_eq!(
        sys.tasks_of(&exec_id(2)).len(),
        1,
        "{}",
        sys.explain(&[&first, &second])
    );
    assert!(
        sys.aws.overlapping_tasks().is_empty(),
        "{}",
        sys.explain(&[&first, &second])
    );
    assert_eq!(sys.state().unwrap()["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_once_are_retried_and_exhausted_fail_naming_the_api() {
    let (sequence, _) = clean_sequence().await;
    let ops: BTreeSet<String> = sequence.into_iter().map(|(op, _)| op).collect();
    let mut cases = Vec::new();
    for op in &ops {
        for fault in [Fault::Throttle, Fault::Http500, Fault::Http503] {
            // Once: the SDK's retry absorbs it.
            let (o, name) = (op.clone(), format!("{op} {fault:?} once"));
            cases.push((
                name,
                Box::pin(async move {
                    let mut s = base();
                    s.faults = vec![rule(&o, Calls::Numbers(vec![1]), fault)];
                    let sys = Sys::start(s).await;
                    let r = sys.action(&exec_id(1)).await?;
                    sys.check_exactly_once(&r)
                })
                    as std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
            ));
        }
        for fault in [Fault::Throttle, Fault::Http500] {
            let (o, name) = (op.clone(), format!("{op} {fault:?} always"));
            cases.push((name, Box::pin(async move { exhausted(&o, fault).await })));
        }
    }
    let n = run_cases(cases).await;
    eprintln!(
        "throttle/5xx matrix: {n} cases over {} operations",
        ops.len()
    );
}

/// One operation failing for good with `fault`: the action must end (no
/// hang), with `SystemUnavailable` / `PermissionError` naming the API, at
/// most one task, and the lock not left held by a live-looking holder.
async fn exhausted(op: &str, fault: Fault) -> Result<(), String> {
    let mut s = base();
    let calls = if matches!(op, "DescribeTasks" | "GetParameter") && fault != Fault::AccessDenied {
        // Never seeing the task, or never being able to record its end,
        // keeps the action in progress (the migration may have succeeded);
        // here the first 3 invocations cannot.
        Calls::Numbers((1..=9).collect())
    } else {
        Calls::Keyword("all".into())
    };
    s.faults = vec![rule(op, calls, fault)];
    let sys = Sys::start(s).await;
    let r = sys.action(&exec_id(1)).await?;
    let fail = |why: String| Err(format!("{why}\n{}", sys.explain(&[&r])));
    if sys.aws.task_count() > 1 || !sys.aws.overlapping_tasks().is_empty() {
        return fail("more than one task".into());
    }
    let unknown_run_task = op == "RunTask" && fault != Fault::AccessDenied;
    if !unknown_run_task && !sys.lock_free_or_stale() {
        return fail("the action ended but the lock is held by a holder without a task".into());
    }
    let service = match op {
        "GetParameter" | "PutParameter" | "GetParametersByPath" | "DeleteParameters" => "ssm",
        "PutJobSuccessResult" | "PutJobFailureResult" | "GetJobDetails" => "codepipeline",
        _ => "ecs",
    };
    let api = format!("{service}:{op}");
    let expected_type = if fault == Fault::AccessDenied {
        "PermissionError"
    } else {
        "SystemUnavailable"
    };
    match op {
        // Cannot report at all: Lambda's redeliveries run out; the pipeline
        // sees no report (CodePipeline fails the job when it times out).
        "PutJobSuccessResult" => {
            if r.status != ActionStatus::NoReport {
                return fail(format!("expected no report, got {:?}", r.status));
            }
        }
        // Clean-up of old lock records is best effort.
        "DeleteParameters" => return sys.check_exactly_once(&r),
        // RunTask's outcome stays unknown: the attempt stays claimed (and
        // holds the lock) so that a stage retry resumes it with the same
        // clientToken; nothing is recorded as failed.
        "RunTask" if unknown_run_task => {
            let state = sys
                .aws
                .parameter(&format!("{STATE}/a/0000000001"))
                .map(|p| p.value);
            if r.failure_type.as_deref() != Some("SystemUnavailable")
                || !r
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("same clientToken"))
                || !state.is_some_and(|v| v.contains("\"starting\""))
            {
                return fail("expected SystemUnavailable with the attempt still claimed".into());
            }
        }
        "DescribeTasks" | "GetParameter" if fault != Fault::AccessDenied => {
            sys.check_exactly_once(&r)?;
            if !r
                .reports
                .iter()
                .any(|x| x.summary.as_deref().is_some_and(|s| s.contains(&api)))
            {
                return fail(format!("no progress summary names {api}"));
            }
        }
        _ => {
            if r.status != ActionStatus::Failed
                || r.failure_type.as_deref() != Some(expected_type)
                || !r.message.as_deref().is_some_and(|m| m.contains(&api))
            {
                return fail(format!("expected {expected_type} naming {api}"));
            }
            if r.reports.len() != r.jobs.len() {
                return fail("a job was not reported".into());
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_on_each_call_is_a_permission_error_naming_it() {
    let (sequence, _) = clean_sequence().await;
    let ops: BTreeSet<String> = sequence.into_iter().map(|(op, _)| op).collect();
    let cases = ops
        .into_iter()
        .map(|op| {
            (format!("{op} AccessDenied"), async move {
                exhausted(&op, Fault::AccessDenied).await
            })
        })
        .collect();
    run_cases(cases).await;
}

/// The start meets throttling for good right after it took the lock (the
/// reset claim and everything after): the action stays in progress with the
/// attempt claimed and the lock held, and runs exactly once when SSM answers
/// again. (Before, the action failed and a stage retry started over.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_throttled_after_taking_the_lock_waits_and_then_runs_once() {
    let mut s = base();
    // PutParameter #1 claims the attempt, #2 creates the lock record; the
    // next nine (three invocations' SDK tries) are throttled.
    s.faults = vec![rule(
        "PutParameter",
        Calls::Numbers((3..=11).collect()),
        Fault::Throttle,
    )];
    s.user_parameters = with_reset(&s, &["/app/once-flag"]);
    let sys = Sys::start(s).await;
    let r = sys.action(&exec_id(1)).await.expect("action");
    sys.check_exactly_once(&r).unwrap();
    assert!(
        r.reports.iter().any(|x| x
            .summary
            .as_deref()
            .is_some_and(|m| m.contains("ssm:PutParameter"))),
        "{}",
        sys.explain(&[&r])
    );
    // The flag was reset once, by the attempt that claimed the reset.
    let resets = sys
        .aws
        .calls_of("PutParameter")
        .into_iter()
        .filter(|c| c.ok() && c.request["Name"] == "/app/once-flag")
        .count();
    assert_eq!(resets, 1, "{}", sys.explain(&[&r]));
}

/// UserParameters of `s` with `edit` applied (after `deployment` is the
/// pipeline execution id again).
fn edit_params(s: &Scenario, edit: impl FnOnce(&mut Value)) -> local_aws::scenario::UserParameters {
    let mut params: Value = serde_json::from_str(&s.user_parameters.resolved("x")).expect("json");
    params["deployment"] = json!("#{codepipeline.PipelineExecutionId}");
    edit(&mut params);
    local_aws::scenario::UserParameters::Json(params)
}

/// UserParameters of `s` with `resetParameters` set.
fn with_reset(s: &Scenario, names: &[&str]) -> local_aws::scenario::UserParameters {
    edit_params(s, |p| p["resetParameters"] = json!(names))
}

/// UserParameters of `s` with a state parameter per execution and `LOCK`
/// shared by all (several services' migrations on one database).
fn with_shared_lock(s: &Scenario, deployment: &str) -> local_aws::scenario::UserParameters {
    edit_params(s, |p| {
        p["deployment"] = json!(deployment);
        p["stateParameter"] = json!("/migrate-once/app/#{codepipeline.PipelineExecutionId}");
        p["lock"] = json!(LOCK);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_terminal_path_releases_the_lock() {
    let mut cases = Vec::new();
    for (name, expected) in [
        ("success", "Succeeded"),
        ("exit-nonzero", "JobFailed"),
        ("failed-to-start", "JobFailed"),
        ("timeout", "JobFailed"),
        ("capacity-exhausted", "SystemUnavailable"),
    ] {
        cases.push((format!("{name} releases the lock"), async move {
            let s = if name == "capacity-exhausted" {
                let mut s = base();
                s.tasks = serde_json::from_value(json!([
                    {"runTaskFailure": "RESOURCE:MEMORY"},
                    {"runTaskFailure": "RESOURCE:MEMORY"},
                    {"runTaskFailure": "RESOURCE:MEMORY"}
                ]))
                .expect("tasks");
                s
            } else {
                scenario_file(name)
            };
            let sys = Sys::start(s).await;
            let r = sys.action(&sys.aws.scenario().execution_id()).await?;
            let got = r
                .failure_type
                .clone()
                .unwrap_or_else(|| format!("{:?}", r.status));
            let fail = |why: String| Err(format!("{why}\n{}", sys.explain(&[&r])));
            if got != expected {
                return fail(format!("ended {got}, expected {expected}"));
            }
            let state = sys.state().unwrap_or(Value::Null);
            let status = if expected == "Succeeded" {
                "succeeded"
            } else {
                "failed"
            };
            if state["status"] != status {
                return fail(format!("state {state}, expected {status}"));
            }
            if name == "timeout" {
                let stops = sys.aws.calls_of("StopTask");
                if !stops.iter().any(|c| {
                    c.ok()
                        && c.request["reason"]
                            .as_str()
                            .is_some_and(|why| why.contains("timed out"))
                }) {
                    return fail("no StopTask with a reason naming the timeout".into());
                }
                if !r
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("timed out"))
                {
                    return fail("the failure does not say it timed out".into());
                }
            }
            if name == "capacity-exhausted"
                && !r
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("ecs:RunTask"))
            {
                return fail("message does not name ecs:RunTask".into());
            }
            match sys.lock_top() {
                Some((_, top)) if top["released"] == true => {}
                // A timed-out task is stopping: the lock stays with it until
                // ECS says STOPPED; the next deployment then takes over at
                // once (and records nothing: the outcome is recorded).
                Some((_, top)) if name == "timeout" && sys.holder_task(&top).is_some() => {
                    let next = sys.action("f0000000-0000-4000-8000-00000000000a").await?;
                    if next.status != ActionStatus::Succeeded
                        || next.reports.iter().any(|x| {
                            x.summary
                                .as_deref()
                                .is_some_and(|m| m.starts_with("Waiting"))
                        })
                    {
                        return fail(
                            "the next deployment did not take over the stopped holder at once"
                                .into(),
                        );
                    }
                    if sys
                        .state()
                        .is_some_and(|s| s["deployment"] != next.execution_id.as_str())
                    {
                        return fail(
                            "the state parameter does not show the latest deployment".into(),
                        );
                    }
                    return Ok(());
                }
                other => return fail(format!("lock not released: {other:?}")),
            }
            Ok(())
        }));
    }
    run_cases(cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_deployments_at_once_migrate_one_at_a_time_and_all_finish() {
    let mut s = base();
    s.timing.continuation_delay_millis = 20;
    s.function.max_instances = 25;
    // Twenty services' migrations, each with its own state, on one database.
    s.user_parameters = with_shared_lock(&s, "#{codepipeline.PipelineExecutionId}");
    let sys = Sys::start(s).await;
    let executions: Vec<String> = (1..=20).map(exec_id).collect();
    let results = match sys.actions(&executions).await {
        Ok(r) => r,
        Err(why) => panic!("{why}\n{}", sys.explain(&[])),
    };
    let all: Vec<&ActionResult> = results.iter().collect();
    let explain = || sys.explain(&all);
    for r in &results {
        assert_eq!(r.status, ActionStatus::Succeeded, "{}", explain());
        assert_eq!(sys.tasks_of(&r.execution_id).len(), 1, "{}", explain());
        assert_eq!(r.reports.len(), r.jobs.len(), "{}", explain());
    }
    assert_eq!(sys.aws.task_count(), 20);
    assert!(
        sys.aws.overlapping_tasks().is_empty(),
        "overlap\n{}",
        explain()
    );
    // Waiting deployments said whom they wait for.
    let waiting: Vec<&str> = results
        .iter()
        .flat_map(|r| r.reports.iter())
        .filter_map(|x| x.summary.as_deref())
        .filter(|s| s.starts_with("Waiting"))
        .collect();
    assert!(!waiting.is_empty(), "{}", explain());
    for w in &waiting {
        assert!(
            executions
                .iter()
                .any(|e| w.contains(&format!("deployment {e}"))),
            "a waiting summary does not name the holder: {w}"
        );
    }
    let (_, top) = sys.lock_top().expect("lock");
    assert_eq!(top["released"], true);
}

/// Deployments started at once on the *same* state parameter: only the
/// latest one started may migrate (SPEC §4 step 4); the others fail as
/// superseded without a task, and nothing overlaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_racing_on_one_state_parameter_never_run_an_older_one() {
    let mut s = base();
    s.timing.continuation_delay_millis = 20;
    let sys = Sys::start(s).await;
    let executions: Vec<String> = (1..=5).map(exec_id).collect();
    let results = match sys.actions(&executions).await {
        Ok(r) => r,
        Err(why) => panic!("{why}\n{}", sys.explain(&[])),
    };
    let all: Vec<&ActionResult> = results.iter().collect();
    let explain = || sys.explain(&all);
    let mut succeeded = 0;
    for r in &results {
        let tasks = sys.tasks_of(&r.execution_id).len();
        match r.status {
            ActionStatus::Succeeded => {
                succeeded += 1;
                assert_eq!(tasks, 1, "{}", explain());
            }
            _ => {
                assert!(
                    r.message
                        .as_deref()
                        .is_some_and(|m| m.contains("superseded")),
                    "{}",
                    explain()
                );
                assert_eq!(tasks, 0, "{}", explain());
            }
        }
        assert_eq!(r.reports.len(), r.jobs.len(), "{}", explain());
    }
    assert!(succeeded >= 1, "{}", explain());
    assert!(sys.aws.overlapping_tasks().is_empty(), "{}", explain());
    assert_eq!(
        sys.state().expect("state")["status"],
        "succeeded",
        "{}",
        explain()
    );
}

/// A lock record left by deployment `old` (attempt record 1 of the state
/// parameter, `holder_record`'s fields over a claimed attempt), taken at
/// `acquired_at`.
fn stale_world(holder_record: Value, acquired_at: u64) -> Scenario {
    let mut record = json!({"deployment": "old", "status": "starting", "attempt": 1, "seq": 1,
                            "jobId": "old-job", "actionJob": "old-job", "tries": 1, "container": "app"});
    if let (Some(r), Some(extra)) = (record.as_object_mut(), holder_record.as_object()) {
        r.extend(extra.clone());
    }
    let mut s = base();
    s.parameters = vec![
        ParameterSpec {
            name: STATE.into(),
            value: record.clone(),
            kind: "String".into(),
        },
        ParameterSpec {
            name: format!("{STATE}/a/0000000001"),
            value: record,
            kind: "String".into(),
        },
        ParameterSpec {
            name: format!("{LOCK}/0000000007"),
            value: json!({"deployment": "old", "stateParameter": STATE, "seq": 1, "attempt": 1,
                          "cluster": "app", "acquiredAt": acquired_at, "released": false}),
            kind: "String".into(),
        },
    ];
    s
}

const GONE_TASK: &str =
    "arn:aws:ecs:us-east-1:123456789012:task/app/00000000000000000000000000000000";

/// Holders that are provably over: ECS no longer knows their task, or they
/// never started one, and they made no progress for 15 minutes. Two
/// contenders at once: exactly one takes over, records the holder's
/// outcome, and both then migrate one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_holders_are_taken_over_by_exactly_one_of_two_contenders() {
    let idle = now_secs() - 20 * 60;
    let holders = [
        (
            "task gone, idle 20 min",
            json!({"status": "running", "taskArn": GONE_TASK}),
            idle,
        ),
        ("never started a task, idle 20 min", json!({}), idle),
        (
            "never started a task, 25 h old",
            json!({}),
            now_secs() - 25 * 3600,
        ),
    ];
    let mut cases = Vec::new();
    for (what, record, at) in holders {
        for round in 0..2 {
            let record = record.clone();
            cases.push((
                format!("stale holder ({what}), round {round}"),
                async move {
                    let sys = Sys::start(stale_world(record, at)).await;
                    let executions = vec![exec_id(1), exec_id(2)];
                    let results = sys
                        .actions(&executions)
                        .await
                        .map_err(|e| format!("{e}\n{}", sys.explain(&[])))?;
                    let all: Vec<&ActionResult> = results.iter().collect();
                    let fail = |why: String| Err(format!("{why}\n{}", sys.explain(&all)));
                    // Both are new deployments on one state parameter: the
                    // later claim supersedes the earlier unless it already ran.
                    let ran: Vec<&ActionResult> = results
                        .iter()
                        .filter(|r| r.status == ActionStatus::Succeeded)
                        .collect();
                    if ran.is_empty()
                        || ran.iter().any(|r| sys.tasks_of(&r.execution_id).len() != 1)
                    {
                        return fail("no contender migrated exactly once".into());
                    }
                    if !sys.aws.overlapping_tasks().is_empty() {
                        return fail("both contenders migrated at once".into());
                    }
                    // Record 8 (the takeover) was created exactly once.
                    let creates = sys
                        .aws
                        .calls_of("PutParameter")
                        .into_iter()
                        .filter(|c| {
                            c.ok()
                                && c.request["Name"] == format!("{LOCK}/0000000008").as_str()
                                && c.request["Overwrite"] != true
                        })
                        .count();
                    if creates != 1 {
                        return fail(format!("the takeover record was created {creates} times"));
                    }
                    // The holder's outcome was recorded for it.
                    let old = sys
                        .aws
                        .parameter(&format!("{STATE}/a/0000000001"))
                        .map(|p| p.value);
                    if !old.is_some_and(|v| v.contains("\"failed\"")) {
                        return fail("the stale holder's outcome was not recorded".into());
                    }
                    Ok(())
                },
            ));
        }
    }
    run_cases(cases).await;
}

/// Holders that may still be migrating are waited for, whatever their
/// record says (SPEC §4 step 3): a fresh claim; a failed record while a stage
/// retry has just taken the lock (issue 8, sequence 2: the record is the
/// *lock holder's attempt*, not the deployment's last one); a task that ECS
/// answers MISSING moments after RunTask (sequence 3). The waiting summary
/// names the holder; once it releases, the waiter migrates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_holder_is_waited_for_with_its_name_in_the_summary() {
    let cases = [
        ("fresh claim", json!({})),
        (
            "failed record, no task",
            json!({"status": "failed", "failureClass": "permanent"}),
        ),
        (
            "MISSING task moments after RunTask",
            json!({"status": "running", "taskArn": GONE_TASK}),
        ),
    ];
    let mut runs = Vec::new();
    for (what, record) in cases {
        runs.push((format!("live holder ({what})"), async move {
            let sys = Sys::start(stale_world(record, now_secs())).await;
            let driver = PipelineDriver::new(&sys.aws, &sys.host);
            let run = tokio::spawn(async move { driver.run(&exec_id(1)).await });
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let waiting = sys
                    .aws
                    .reports()
                    .iter()
                    .filter(|r| {
                        r.summary
                            .as_deref()
                            .is_some_and(|s| s.contains("Waiting: deployment old"))
                    })
                    .count();
                if waiting >= 2 {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("never waited\n{}", sys.explain(&[])));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if sys.aws.task_count() != 0 {
                return Err(format!(
                    "started while the lock was held\n{}",
                    sys.explain(&[])
                ));
            }
            // The holder finishes and releases its record.
            sys.aws.put_parameter(
                &format!("{LOCK}/0000000007"),
                &json!({"deployment": "old", "stateParameter": STATE, "seq": 1, "cluster": "app",
                        "acquiredAt": now_secs(), "released": true})
                .to_string(),
            );
            let r = tokio::time::timeout(Duration::from_secs(20), run)
                .await
                .map_err(|_| "did not end".to_string())?
                .map_err(|e| e.to_string())?;
            sys.check_exactly_once(&r)
        }));
    }
    run_cases(runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_tokens_and_unknown_events_have_no_side_effect() {
    let sys = Sys::start(base()).await;
    let up = sys.aws.scenario().user_parameters.resolved(&exec_id(1));
    let job = sys.aws.create_job(&exec_id(1), Some("not-a-token"));
    let garbage_token = json!({"CodePipeline.job": {"id": job, "accountId": "123456789012", "data": {
        "actionConfiguration": {"configuration": {"FunctionName": "migrate-once", "UserParameters": up}},
        "continuationToken": "not-a-token"}}});
    let outcome = sys.host.invoke_async(&garbage_token).wait().await;
    assert!(outcome.succeeded(), "{outcome:?}\n{}", sys.host.logs());
    let reports = sys.aws.reports();
    assert_eq!(reports.len(), 1);
    assert!(!reports[0].success, "{reports:?}");
    for event in [
        json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
        json!({"hello": "world"}),
        json!([1, 2, 3]),
    ] {
        let outcome = sys.host.invoke_async(&event).wait().await;
        assert!(
            !outcome.succeeded(),
            "an unknown event must be refused: {outcome:?}"
        );
    }
    let writes: Vec<_> = sys
        .aws
        .calls()
        .into_iter()
        .filter(|c| {
            !matches!(
                c.operation.as_str(),
                "PutJobFailureResult" | "DescribeTaskDefinition" | "DescribeServices"
            )
        })
        .map(|c| c.operation)
        .collect();
    assert!(writes.is_empty(), "side effects: {writes:?}");
    assert_eq!(sys.aws.task_count(), 0);
    assert!(sys.aws.parameters().is_empty());
}

// ---------------------------------------------------------------------------
// Randomised fault schedules.

/// splitmix64: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Whether a call took effect: answered OK, or applied with its answer lost.
fn took_effect(c: &local_aws::CallRecord) -> bool {
    c.ok() || c.fault.as_deref() == Some("LostAnswer")
}

/// The instance-side flag the random schedules reset.
const FLAG: &str = "/app/once-flag";

const OPERATIONS: &[&str] = &[
    "DescribeTaskDefinition",
    "DescribeServices",
    "GetParameter",
    "GetParametersByPath",
    "PutParameter",
    "DeleteParameters",
    "RunTask",
    "DescribeTasks",
    "PutJobSuccessResult",
];

/// A random world: 1–3 deployments at once, a few throttles / 5xx on
/// random calls of random operations, up to two crashes, duplicate
/// deliveries of random jobs.
fn random_schedule(seed: u64) -> (Scenario, Vec<String>, String) {
    let mut rng = Rng(seed);
    let mut s = base();
    let deployments = 1 + rng.below(3) as usize;
    let mut faults = Vec::new();
    for _ in 0..rng.below(8) {
        let op = OPERATIONS[rng.below(OPERATIONS.len() as u64) as usize];
        let fault = match rng.below(4) {
            0 => Fault::Throttle,
            1 => Fault::Http500,
            2 => Fault::Http503,
            // The call takes effect, its answer is lost (a timeout after
            // the fact): RunTask's task exists, a create's record exists.
            _ => Fault::LostAnswer,
        };
        let n = 1 + rng.below(30) as u32;
        faults.push(rule(op, Calls::Numbers(vec![n]), fault));
    }
    for _ in 0..rng.below(3) {
        let op = OPERATIONS[rng.below(OPERATIONS.len() as u64) as usize];
        let n = 1 + rng.below(20) as u32;
        faults.push(rule(op, Calls::Numbers(vec![n]), Fault::Crash));
    }
    let mut duplicates = Vec::new();
    for job in 1..=5 {
        if rng.chance(20) {
            duplicates.push(DuplicateDelivery {
                job,
                concurrent: rng.chance(50),
            });
        }
    }
    let describe = format!(
        "{deployments} deployments, faults {:?}, duplicates {:?}",
        faults
            .iter()
            .map(|f| format!("{}#{:?}:{:?}", f.operation, f.calls, f.fault))
            .collect::<Vec<_>>(),
        duplicates
            .iter()
            .map(|d| (d.job, d.concurrent))
            .collect::<Vec<_>>()
    );
    // ECS's eventual consistency: a fresh task may be MISSING for a while.
    let missing: Vec<u32> = (0..deployments).map(|_| rng.below(3) as u32).collect();
    s.tasks = missing
        .iter()
        .map(|&n| local_aws::scenario::TaskOutcome {
            missing_describes: n,
            ..Default::default()
        })
        .collect();
    let describe = format!("{describe}, MISSING answers {missing:?}");
    s.user_parameters = with_reset(&s, &[FLAG]);
    s.faults = faults;
    s.duplicate_deliveries = duplicates;
    s.timing.continuation_delay_millis = 5;
    (s, (1..=deployments).map(exec_id).collect(), describe)
}

/// Runs one schedule and checks the invariants of SPEC §4.
async fn run_schedule(seed: u64) -> Result<(), String> {
    let (scenario, executions, describe) = random_schedule(seed);
    let sys = Sys::start(scenario).await;
    let (results, unfinished) = sys
        .actions_until(&executions, Duration::from_secs(40))
        .await
        .map_err(|e| format!("{describe}\n{e}\n{}", sys.explain(&[])))?;
    let all: Vec<&ActionResult> = results.iter().collect();
    let fail = |why: String| Err(format!("{describe}\n{why}\n{}", sys.explain(&all)));

    // An action may still be waiting only for an abandoned holder: one
    // that holds the lock without a task (it crashed, or lost every answer,
    // before RunTask answered) and whose action has ended. It is alive as far
    // as anyone can prove for 15 minutes, as it must be: the task it may
    // have started could be running.
    let abandoned = sys.lock_top().is_some_and(|(_, top)| {
        top["released"] != true
            && sys.holder_task(&top).is_none()
            && results
                .iter()
                .any(|r| top["deployment"] == r.execution_id.as_str())
    });
    if !unfinished.is_empty() && !abandoned {
        return fail(format!(
            "actions {unfinished:?} did not end within 40 s, and no abandoned holder explains it"
        ));
    }

    // No two migrations at once.
    if !sys.aws.overlapping_tasks().is_empty() {
        return fail(format!(
            "overlapping migrations: {:?}",
            sys.aws.overlapping_tasks()
        ));
    }
    let puts = sys.aws.calls_of("PutParameter");
    // The state parameter never goes back to an older attempt.
    let mut shown = 0;
    for c in puts.iter().filter(|c| c.ok() && c.request["Name"] == STATE) {
        let seq = c.request["Value"]
            .as_str()
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0);
        if seq < shown {
            return fail(format!(
                "the state parameter went back from attempt record {shown} to {seq}"
            ));
        }
        shown = seq;
    }
    // Every attempt's RunTask is sent after its reset: before the first
    // RunTask of each clientToken, a job of the same pipeline execution
    // wrote the flag.
    let execution_of = |job: &Option<String>| {
        results
            .iter()
            .find(|r| job.as_ref().is_some_and(|j| r.jobs.contains(j)))
            .map(|r| r.execution_id.clone())
    };
    let calls = sys.aws.calls();
    let mut reset_by: Vec<Option<String>> = Vec::new();
    let mut tokens = std::collections::BTreeSet::new();
    for c in &calls {
        if c.operation == "PutParameter" && c.ok() && c.request["Name"] == FLAG {
            reset_by.push(execution_of(&c.job_id));
        }
        if c.operation == "RunTask"
            && tokens.insert(c.request["clientToken"].as_str().unwrap_or("").to_owned())
        {
            let execution = execution_of(&c.job_id);
            let resets = c
                .job_id
                .as_deref()
                .and_then(|j| sys.aws.job_user_parameters(j));
            if execution.is_some()
                && resets.is_some_and(|p| p.contains(FLAG))
                && !reset_by.contains(&execution)
            {
                let writes: Vec<String> = calls
                    .iter()
                    .filter(|w| w.operation == "PutParameter" && w.request["Name"] == FLAG)
                    .map(|w| format!("#{} {} job {:?}", w.seq, w.status, w.job_id))
                    .collect();
                return fail(format!(
                    "RunTask {} (#{}, job {:?}) was sent before its execution reset {FLAG}; the flag's writes: {writes:?}",
                    c.request["clientToken"], c.seq, c.job_id
                ));
            }
        }
    }
    let state_writes: Vec<Value> = puts
        .iter()
        .filter(|c| {
            c.request["Name"]
                .as_str()
                .is_some_and(|n| n.starts_with(STATE))
        })
        .map(|c| {
            let mut v: Value = c.request["Value"]
                .as_str()
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or(Value::Null);
            v["_ok"] = json!(c.ok());
            v
        })
        .collect();
    let final_state = sys.state().unwrap_or(Value::Null);
    for r in &results {
        let e = r.execution_id.as_str();
        // At most one task per attempt: every task of the deployment came
        // from its own clientToken.
        let tokens: BTreeSet<String> = sys
            .aws
            .calls_of("RunTask")
            .into_iter()
            .filter(|c| {
                c.ok()
                    && c.request["tags"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t["value"] == e))
            })
            .filter_map(|c| c.request["clientToken"].as_str().map(str::to_owned))
            .collect();
        let tasks = sys.tasks_of(e);
        let claimed = puts
            .iter()
            .filter(|c| {
                took_effect(c)
                    && c.request["Overwrite"] != true
                    && c.request["Name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{STATE}/a/")))
                    && c.request["Value"].as_str().is_some_and(|v| v.contains(e))
            })
            .count();
        if tasks.len() > claimed {
            return fail(format!(
                "{e}: {} tasks from {claimed} claimed attempts",
                tasks.len()
            ));
        }
        if tasks.len() > tokens.len() {
            return fail(format!(
                "{e}: {} tasks from {} attempts",
                tasks.len(),
                tokens.len()
            ));
        }
        match r.status {
            ActionStatus::Succeeded => {
                if tasks.is_empty()
                    || r.output_variables
                        .get("TaskArn")
                        .is_none_or(|t| !tasks.contains(t))
                {
                    return fail(format!("{e}: succeeded without its task"));
                }
                if r.reports.len() != r.jobs.len() {
                    return fail(format!("{e}: a job was not reported"));
                }
                // The state said so (the write was made; if it failed for
                // good, the call log shows the attempt).
                let recorded = state_writes.iter().any(|w| {
                    w["deployment"] == e
                        && w["status"] == "succeeded"
                        && w["taskArn"] == r.output_variables["TaskArn"].as_str()
                });
                if !recorded {
                    return fail(format!("{e}: succeeded but its state record never said so"));
                }
            }
            ActionStatus::Failed => {
                let m = r.message.as_deref().unwrap_or("");
                let superseded = r.failure_type.as_deref() == Some("JobFailed")
                    && m.contains("superseded")
                    && tasks.is_empty();
                if !superseded
                    && (r.failure_type.as_deref() != Some("SystemUnavailable") || !m.contains(':'))
                {
                    return fail(format!("{e}: unclear failure {:?}: {m}", r.failure_type));
                }
                if r.reports.len() != r.jobs.len() {
                    return fail(format!("{e}: a job was not reported"));
                }
            }
            ActionStatus::NoReport => {
                // Only when no delivery of the last job could report: every
                // one crashed or could not reach CodePipeline.
                let last = r.jobs.last().cloned().unwrap_or_default();
                let deliveries: Vec<_> = sys
                    .aws
                    .deliveries()
                    .into_iter()
                    .filter(|d| d.job_id.as_deref() == Some(last.as_str()))
                    .collect();
                let reachable = r.invocations.iter().flat_map(|i| &i.attempts).any(|a| {
                    matches!(&a.result, local_aws::AttemptResult::Error { error_message, .. } if !error_message.contains("codepipeline:PutJob"))
                });
                if reachable || deliveries.is_empty() {
                    return fail(format!(
                        "{e}: a job went unreported although the function could have reported it"
                    ));
                }
            }
            ActionStatus::TimedOut => return fail(format!("{e}: a job timed out (a hang)")),
        }
    }
    // The record on file is consistent with its deployment's outcome.
    if let Some(r) = results
        .iter()
        .find(|r| final_state["deployment"] == r.execution_id.as_str())
        && r.status == ActionStatus::Succeeded
        && final_state["status"] != "succeeded"
        && !state_writes
            .iter()
            .any(|w| w["_ok"] == false && w["status"] == "succeeded")
    {
        return fail(format!(
            "final state {final_state} for a succeeded deployment"
        ));
    }
    if !sys.lock_free_or_stale() && !abandoned {
        return fail("every action ended but the lock looks held".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_fault_schedules_keep_every_guarantee() {
    let seed: u64 = std::env::var("MIGRATE_ONCE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let budget = Duration::from_secs(
        std::env::var("MIGRATE_ONCE_FAULT_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8),
    );
    let max: u64 = std::env::var("MIGRATE_ONCE_FAULT_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    eprintln!(
        "random fault schedules: seed {seed} (reproduce: MIGRATE_ONCE_FAULT_SEED={seed}; one schedule: MIGRATE_ONCE_FAULT_SEED=<its seed> MIGRATE_ONCE_FAULT_SCHEDULES=1)"
    );
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut set = JoinSet::new();
    let mut launched = 0u64;
    let mut failures = Vec::new();
    while launched < max && started.elapsed() < budget {
        let permit = gate.clone().acquire_owned().await.expect("semaphore");
        let schedule_seed = seed.wrapping_add(launched);
        launched += 1;
        set.spawn(async move {
            let _permit = permit;
            (schedule_seed, run_schedule(schedule_seed).await)
        });
        while let Some(done) = set.try_join_next() {
            if let Ok((s, Err(why))) = done {
                failures.push(format!("=== schedule seed {s}: {why}"));
            }
        }
    }
    while let Some(done) = set.join_next().await {
        match done {
            Ok((s, Err(why))) => failures.push(format!("=== schedule seed {s}: {why}")),
            Ok(_) => {}
            Err(e) => failures.push(format!("=== a schedule panicked: {e}")),
        }
    }
    eprintln!(
        "random fault schedules: {launched} ran in {:.1} s, {} failed",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        launched >= 3 || launched == max,
        "only {launched} schedules fit the budget"
    );
    assert!(
        failures.is_empty(),
        "{} of {launched} schedules failed (base seed {seed}):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn schedules_are_reproducible_from_their_seed() {
    let (_, a, da) = random_schedule(42);
    let (_, b, db) = random_schedule(42);
    assert_eq!((a, da), (b, db));
}

/// Issue 8's sequences, each against the real binary. Every one failed on
/// the single-record model this replaced.
mod sequences {
    use super::*;

    /// Two deployments sharing one lock, each with its own state parameter
    /// (two services' migrations on one database), `deployment` as given.
    fn shared_lock(mut s: Scenario, deployment: &str) -> Scenario {
        s.user_parameters = with_shared_lock(&s, deployment);
        s
    }

    /// 1. A timed-out task keeps running for its stopTimeout after StopTask:
    /// the waiting deployment starts only once ECS says it is STOPPED.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopping_task_keeps_the_lock_until_it_has_stopped() {
        let mut s = shared_lock(
            scenario_file("timeout"),
            "#{codepipeline.PipelineExecutionId}",
        );
        s.tasks[0].stop_delay_millis = 1500;
        s.timing.continuation_delay_millis = 50;
        let sys = Sys::start(s).await;
        let results = sys
            .actions(&[exec_id(1), exec_id(2)])
            .await
            .expect("actions");
        let all: Vec<&ActionResult> = results.iter().collect();
        assert!(
            sys.aws.overlapping_tasks().is_empty(),
            "the next migration started beside a stopping one\n{}",
            sys.explain(&all)
        );
        assert_eq!(sys.aws.task_count(), 2, "{}", sys.explain(&all));
        assert!(
            results.iter().any(|r| r
                .message
                .as_deref()
                .is_some_and(|m| m.contains("timed out"))),
            "{}",
            sys.explain(&all)
        );
    }

    /// 3. DescribeTasks answers MISSING for a task created moments ago:
    /// the task is watched on, never called a failed start.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fresh_task_that_ecs_does_not_show_yet_is_watched_on() {
        let mut s = base();
        s.tasks = vec![local_aws::scenario::TaskOutcome {
            missing_describes: 4,
            ..Default::default()
        }];
        let sys = Sys::start(s).await;
        let r = sys.action(&exec_id(1)).await.expect("action");
        sys.check_exactly_once(&r).unwrap();
        assert!(
            r.reports.iter().any(|x| x
                .summary
                .as_deref()
                .is_some_and(|m| m.contains("does not show"))),
            "{}",
            sys.explain(&[&r])
        );
    }

    /// 4. RunTask creates the task and the answer is lost, through every
    /// SDK try: the same attempt is tried again with the same clientToken,
    /// which returns that task. One task, attempt 1.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_run_task_answer_is_retried_as_the_same_attempt() {
        let mut s = base();
        s.faults = vec![rule(
            "RunTask",
            Calls::Numbers(vec![1, 2, 3]),
            Fault::LostAnswer,
        )];
        let sys = Sys::start(s).await;
        let r = sys.action(&exec_id(1)).await.expect("action");
        sys.check_exactly_once(&r).unwrap();
        let tokens: BTreeSet<String> = sys
            .aws
            .calls_of("RunTask")
            .into_iter()
            .filter_map(|c| c.request["clientToken"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(tokens.len(), 1, "{}", sys.explain(&[&r]));
    }

    /// 6. A late copy of job 1 after the action waited for the lock, and of
    /// every later job, after everything ended: no task, no report, no
    /// record, no reset changes — also with `rerun: "always"`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn late_copies_after_a_lock_wait_change_nothing() {
        for rerun in ["once", "always"] {
            let mut s = shared_lock(base(), "#{codepipeline.PipelineExecutionId}");
            s.user_parameters = edit_params(&s, |p| {
                p["rerun"] = json!(rerun);
                p["resetParameters"] = json!([FLAG]);
            });
            s.timing.continuation_delay_millis = 20;
            // Tasks run for wall-clock time, long enough that the second
            // deployment meets the first one's lock even on a busy machine.
            let long = local_aws::scenario::TaskOutcome {
                timeline: vec!["PENDING".into(), "RUNNING".into(), "RUNNING".into()],
                step_millis: Some(700),
                ..Default::default()
            };
            s.tasks = vec![long.clone(), long];
            let sys = Sys::start(s).await;
            let results = sys
                .actions(&[exec_id(1), exec_id(2)])
                .await
                .expect("actions");
            let all: Vec<&ActionResult> = results.iter().collect();
            assert!(
                results.iter().all(|r| r.status == ActionStatus::Succeeded),
                "{}",
                sys.explain(&all)
            );
            let waited = results
                .iter()
                .find(|r| {
                    r.reports.iter().any(|x| {
                        x.summary
                            .as_deref()
                            .is_some_and(|m| m.starts_with("Waiting"))
                    })
                })
                .expect("one deployment waited for the other");
            let snapshot = || {
                (
                    sys.aws.task_count(),
                    sys.aws.reports().len(),
                    sys.aws
                        .parameters()
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect::<Vec<_>>(),
                )
            };
            let before = snapshot();
            for r in &results {
                for i in 0..r.jobs.len() {
                    let outcome = sys.host.invoke_async(&sys.job_event(r, i)).wait().await;
                    assert!(outcome.succeeded(), "{}", sys.explain(&all));
                    assert!(
                        snapshot() == before,
                        "rerun {rerun}: a late copy of job {} of {} (waited: {}) changed something\n{}",
                        i + 1,
                        r.execution_id,
                        r.execution_id == waited.execution_id,
                        sys.explain(&all)
                    );
                }
            }
        }
    }

    /// 10. Two state parameters share a lock and the same custom deployment
    /// id: two different holders, never two migrations at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_deployment_id_on_two_state_parameters_does_not_share_the_lock() {
        let mut s = shared_lock(base(), "release-42");
        s.timing.continuation_delay_millis = 20;
        s.tasks = vec![
            serde_json::from_value(
                json!({"timeline": ["PENDING", "RUNNING", "RUNNING", "RUNNING"]}),
            )
            .expect("task"),
            serde_json::from_value(
                json!({"timeline": ["PENDING", "RUNNING", "RUNNING", "RUNNING"]}),
            )
            .expect("task"),
        ];
        let sys = Sys::start(s).await;
        let results = sys
            .actions(&[exec_id(1), exec_id(2)])
            .await
            .expect("actions");
        let all: Vec<&ActionResult> = results.iter().collect();
        assert!(
            results.iter().all(|r| r.status == ActionStatus::Succeeded),
            "{}",
            sys.explain(&all)
        );
        assert_eq!(sys.aws.task_count(), 2, "{}", sys.explain(&all));
        assert!(
            sys.aws.overlapping_tasks().is_empty(),
            "{}",
            sys.explain(&all)
        );
    }
}
