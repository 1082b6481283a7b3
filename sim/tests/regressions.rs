//! Named regression schedules: each sequence an outside review or the
//! simulator found, as a drawn schedule with the one fault that makes it,
//! so that it replays whatever else changes in the generator.
//!
//! Each test first proves that its schedule still reaches the sequence
//! (the scripted fault fired), then that no invariant broke.

use sim::draw::{self, Plan};
use sim::pipeline::End;
use sim::wire::{Fate, FaultRates, Scripted};

/// The first seed whose plan satisfies `wanted`, quieted: no drawn faults,
/// no copies, only the executions `keep` picks.
fn schedule(wanted: impl Fn(&Plan) -> bool, keep: usize) -> (u64, Plan) {
    let (seed, mut plan) = (0..10_000)
        .map(|seed| (seed, draw::plan(seed)))
        .find(|(_, plan)| wanted(plan))
        .expect("some seed draws such a schedule");
    plan.rates = FaultRates::default();
    plan.windows.clear();
    plan.delivery.concurrent_copy = 0.0;
    plan.delivery.late_copy = 0.0;
    plan.delivery.operator_retry = 0.0;
    plan.delivery.operator_rerun = 0.0;
    plan.executions.truncate(keep);
    for e in &mut plan.executions {
        e.stop_after = None;
    }
    (seed, plan)
}

fn run(seed: u64, plan: Plan, reaches: &str) -> sim::Outcome {
    let outcome = sim::simulate_plan(seed, plan, true);
    let story = outcome.timeline.clone().unwrap_or_default();
    assert!(
        story.lines().any(|l| l.contains(reaches)),
        "seed {seed} no longer reaches the sequence ({reaches:?} is not in its story):\n{story}"
    );
    assert!(
        outcome.violations.is_empty(),
        "seed {seed}: {:#?}\n{story}",
        outcome.violations
    );
    outcome
}

/// The first `times` calls of `operation` whose request contains
/// `containing` are throttled: through every SDK retry when `times` covers
/// them.
fn throttled(operation: &'static str, containing: &'static str, times: u32) -> Vec<Scripted> {
    (1..=times)
        .map(|nth| Scripted {
            operation,
            containing,
            nth,
            fate: Fate::Throttled,
        })
        .collect()
}

fn family_zero_only(plan: &Plan, n: usize) -> bool {
    plan.executions.len() >= n && plan.executions.iter().take(n).all(|e| e.family == 0)
}

/// Issue 21.1 (found by the simulator at seed 32 on the first 32 schedules
/// of main): the invocation resetting the flags dies after the first write;
/// the next job must finish the reset before RunTask, not take the claim
/// for the deed.
#[test]
fn a_reset_cut_short_is_finished_before_run_task() {
    let (seed, mut plan) = schedule(
        |p| p.families[0].resets.len() == 2 && family_zero_only(p, 1),
        1,
    );
    plan.scenario.tasks[0] = local_aws::TaskOutcome::default();
    plan.scripted = vec![Scripted {
        operation: "PutParameter",
        containing: "once-0",
        nth: 1,
        fate: Fate::CrashAfter,
    }];
    let outcome = run(seed, plan, "once-0 = 0 → applied, then the caller crashed");
    assert_eq!(outcome.runs[0].1, End::Succeeded, "{:?}", outcome.runs);
}

/// Issue 21.3: a transient start failure whose report is throttled through
/// every SDK retry; the redelivered job must hand back the retry, not
/// replay a failure.
#[test]
fn a_transient_start_failure_whose_report_failed_still_retries() {
    let (seed, mut plan) = schedule(|p| family_zero_only(p, 1), 1);
    plan.scenario.tasks[0].run_task_failure = Some("RESOURCE:MEMORY".into());
    plan.scenario.tasks[0].exit_codes = None;
    plan.scenario.tasks[1] = local_aws::TaskOutcome::default();
    plan.scripted = throttled("PutJobSuccessResult", "could not start", 5);
    let outcome = run(seed, plan, "could not start");
    assert_eq!(outcome.runs[0].1, End::Succeeded, "{:?}", outcome.runs);
}

/// Issue 21.4: AccessDenied on a reset parameter fails the action as a
/// PermissionError and gives the lock back at once: the next deployment
/// does not wait 15 minutes for it.
#[test]
fn a_denied_reset_gives_the_lock_back() {
    let (seed, mut plan) = schedule(
        |p| !p.families[0].resets.is_empty() && family_zero_only(p, 2),
        2,
    );
    plan.executions[1].start_at = plan.executions[0].start_at + 5;
    plan.scripted = vec![Scripted {
        operation: "PutParameter",
        containing: "once-0",
        nth: 1,
        fate: Fate::Denied,
    }];
    let outcome = run(seed, plan, "AccessDeniedException");
    let first = outcome.runs.iter().find(|r| r.0 == 0).expect("a first run");
    assert_eq!(first.1, End::Failed);
    assert_eq!(first.3.as_deref(), Some("PermissionError"));
    let second = outcome
        .runs
        .iter()
        .find(|r| r.0 == 1)
        .expect("a second run");
    assert!(second.2 < 40, "the second deployment waited: {second:?}");
}

/// The same seed is the same schedule, to the letter.
#[test]
fn a_seed_replays_exactly() {
    for seed in [1, 2, 3, 32, 313] {
        let a = sim::simulate(seed, true);
        let b = sim::simulate(seed, true);
        assert_eq!(a.timeline, b.timeline, "seed {seed} did not replay");
        assert_eq!(a.violations, b.violations);
    }
}

/// Issue 20.4: the UpdateService takes effect but its answer is lost, and
/// the circuit breaker rolls the deployment back before anyone looks:
/// the roll is found by looking, fails as rolled back, and the service is
/// never updated a second time (the invariants count UpdateService per run).
#[test]
fn a_lost_update_answer_then_a_fast_rollback_updates_once_and_fails() {
    let (seed, mut plan) = schedule(
        |p| !p.families[0].services.is_empty() && family_zero_only(p, 1),
        1,
    );
    plan.scenario.tasks[0] = local_aws::TaskOutcome::default();
    plan.scenario.services[0].rollouts[0] = serde_json::from_value(serde_json::json!({
        "outcome": "rolledBack", "steps": 1, "rollbackSteps": 0,
    }))
    .expect("a rollout");
    plan.scripted = vec![Scripted {
        operation: "UpdateService",
        containing: "",
        nth: 1,
        fate: Fate::Lost,
    }];
    let outcome = run(seed, plan, "UpdateService  → applied, answer lost");
    assert_eq!(outcome.runs[0].1, End::Failed, "{:?}", outcome.runs);
    assert_eq!(outcome.runs[0].3.as_deref(), Some("JobFailed"));
}

/// Issues 20.1 and 20.2: a rollback over before the first look fails the
/// action at once, and a stuck rollout fails at its timeout — neither waits
/// on "not listed yet" or "1/2 running" for ever.
#[test]
fn a_fast_rollback_and_a_stuck_roll_both_fail() {
    for (rollout, reaches) in [
        (
            r#"{"outcome":"rolledBack","steps":1,"rollbackSteps":0}"#,
            "UpdateService",
        ),
        (r#"{"outcome":"stuck","steps":1}"#, "UpdateService"),
    ] {
        let (seed, mut plan) = schedule(
            |p| !p.families[0].services.is_empty() && family_zero_only(p, 1),
            1,
        );
        plan.scenario.tasks[0] = local_aws::TaskOutcome::default();
        plan.scenario.services[0].rollouts[0] = serde_json::from_str(rollout).expect("a rollout");
        let outcome = run(seed, plan, reaches);
        let story = outcome.timeline.clone().unwrap_or_default();
        let rolling_reports = story
            .lines()
            .filter(|l| l.contains("PutJobSuccessResult Rolling"))
            .count();
        if rollout.contains("rolledBack") {
            // Reported within two looks of ECS showing it.
            assert!(
                rolling_reports <= 2,
                "{rolling_reports} rolling reports:\n{story}"
            );
        }
        let (_, end, jobs, failure) = &outcome.runs[0];
        assert_eq!(*end, End::Failed, "{rollout}: {:?}", outcome.runs);
        assert_eq!(failure.as_deref(), Some("JobFailed"), "{rollout}");
        assert!(*jobs < 200, "{rollout}: {jobs} jobs");
    }
}

/// Issue 21 (found by the simulator, kind "ran twice after exiting 0 while
/// stopping", first at seed 2000259 of main): the migration times out, is
/// told to stop and exits 0 during its stopTimeout; the operator's stage
/// retry must find that it applied, not run it again — also when the
/// invocation that found it out dies right after taking the lock over.
#[test]
fn a_timed_out_migration_that_exits_0_while_stopping_is_not_run_again() {
    for crash in [false, true] {
        let (seed, mut plan) =
            schedule(|p| !p.families[0].rerun_always && family_zero_only(p, 1), 1);
        let timeout = plan.families[0].timeout;
        plan.scenario.tasks[0] = local_aws::TaskOutcome {
            step_millis: Some(draw::past_timeout(timeout)),
            stop_delay_millis: 60_000,
            ..local_aws::TaskOutcome::default()
        };
        plan.delivery.operator_retry = 1.0;
        plan.delivery.operator_rerun = 0.0;
        if crash {
            plan.scripted = vec![Scripted {
                operation: "PutParameter",
                containing: "lock/0000000002",
                nth: 1,
                fate: Fate::CrashAfter,
            }];
        }
        let outcome = run(seed, plan, "operator retries the stage");
        let story = outcome.timeline.clone().unwrap_or_default();
        // The pipeline saw the timeout fail, then the retry succeed.
        let ends: Vec<End> = outcome.runs.iter().map(|r| r.1).collect();
        assert_eq!(
            ends,
            [End::Failed, End::Succeeded],
            "crash {crash}:\n{story}"
        );
        let run_tasks = story.lines().filter(|l| l.contains("RunTask ")).count();
        assert_eq!(run_tasks, 1, "crash {crash}:\n{story}");
        if crash {
            assert!(story.contains("then the caller crashed"), "{story}");
        }
    }
}

/// Issue 21 (kind "stale record"): the timeout's record is throttled
/// through every SDK retry; the timeout is reported only once it is
/// recorded, so the record does not say `running` at rest.
#[test]
fn a_timeout_is_recorded_before_it_is_reported() {
    let (seed, mut plan) = schedule(|p| family_zero_only(p, 1), 1);
    let timeout = plan.families[0].timeout;
    plan.scenario.tasks[0] = local_aws::TaskOutcome {
        step_millis: Some(draw::past_timeout(timeout)),
        ..local_aws::TaskOutcome::default()
    };
    // The record and the summary are written together: five SDK attempts each.
    plan.scripted = throttled("PutParameter", "timed out", 10);
    let outcome = run(seed, plan, "ThrottlingException");
    assert_eq!(outcome.runs[0].1, End::Failed, "{:?}", outcome.runs);
    assert_eq!(outcome.runs[0].3.as_deref(), Some("JobFailed"));
}
