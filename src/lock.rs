//! The lock that keeps two migrations of the same database from running at
//! once, built on the one compare-and-set SSM offers: creating a parameter
//! with `Overwrite=false`.
//!
//! # The argument
//!
//! The lock is a sequence of records `<lock>/0000000001`, `<lock>/0000000002`,
//! …, each a small JSON [`Holder`] naming one *attempt*: its state parameter,
//! its attempt record (`seq`), its deployment and its cluster. **The
//! highest-numbered record is the lock**; the ones below it are history. To
//! acquire, a contender lists the records and looks at the top one, `N`:
//!
//! - held by the same attempt (same state parameter and `seq`): it already
//!   holds the lock (re-entrant, so a duplicate delivery or a resumption
//!   never waits on itself). Another state parameter sharing the lock with
//!   the same deployment id is *another* holder;
//! - held by an attempt that is alive: it waits;
//! - released, held by a stale attempt, or no records at all (`N = 0`): it
//!   *creates* `N + 1` with `Overwrite=false`.
//!
//! Creating is atomic: of any number of contenders that saw the same top
//! `N`, exactly one creates `N + 1`; the others get `ParameterAlreadyExists`
//! and wait. Nothing is ever taken over by deleting and re-creating, and
//! releasing overwrites the holder's own record with `released: true`, so
//! the top record never disappears and every contender competes for the
//! same next number: two contenders can never both hold the lock.
//!
//! History below the top is deleted only once it is an hour old. A
//! contender's listing is at most one Lambda invocation (15 minutes) old
//! when it creates, so the number it creates can never be one that existed
//! and was deleted in between: the create always competes with the real top.
//!
//! # When a holder is alive
//!
//! **The lock follows the task.** A holder is alive while its migration task
//! may run: from before its RunTask until ECS says that task is `STOPPED`. A
//! stopping task (a timeout, a pipeline stop) runs on for its `stopTimeout`,
//! so its holder stays alive until ECS reports it stopped. Neither the
//! holder's state record (failed, timed out) nor its age makes it stale, and
//! neither does an ECS answer `MISSING` moments after RunTask (ECS is
//! eventually consistent). A holder is stale when:
//!
//! - its task is `STOPPED`; or
//! - it has no task we can see, its lock record is [`NO_PROGRESS_SECS`] old
//!   (its start has made no progress: a live start takes seconds), **and**
//!   ECS lists no task of its deployment created since it took the lock
//!   that is not `STOPPED` ([`task::find_started`], by the attempt's tag:
//!   stopped tasks stay listed for an hour, so a task started 15 minutes
//!   ago cannot hide). "No progress" is measured from when the holder took
//!   the lock: a live start takes seconds.
//!
//! A contender that finds a holder stale first records the holder's outcome
//! in the holder's attempt record (from ECS's facts), then creates the next
//! record at once: there is no grace period. An error while judging (a
//! throttled read) is an error of this invocation, never "stale".
//!
//! Only the attempt a record names releases it ([`release`]); an error path
//! of another copy never does.
//!
//! # Fencing the takeover
//!
//! A takeover judges a holder idle from its record's age, while the holder
//! may be retrying its start (RunTask 5xx, throttled resets) and about to
//! send RunTask. Two rules keep both from running:
//!
//! - **Progress refreshes.** A holder that finds its own record
//!   [`REFRESH_SECS`] old when it is about to start *creates the next
//!   record* as itself (`refreshedAt` now). That create competes with a
//!   takeover for the same number: exactly one wins, and the loser does
//!   not start (a holder taken over sees [`Acquire::TakenOver`]: its
//!   unreleased record below someone else's top).
//! - **RunTask only soon after progress.** The holder sends RunTask only
//!   within [`RUN_WITHIN_SECS`] of its record's progress time, five minutes
//!   before a contender may judge it idle. So a contender that judged a
//!   holder idle listed its tasks at least five minutes after any RunTask
//!   the holder sent under that record (a call lasts at most 40 s): that
//!   task is listed, and the holder is alive.

use aws_sdk_ssm::Client as Ssm;
use serde::{Deserialize, Serialize};

use crate::Clients;
use crate::failure::Failure;
use crate::outcome::{self, Outcome};
use crate::state::{self, FailureClass, State, Status};
use crate::task::{self, TaskView};

/// How long a holder without a visible task may make no progress before
/// ECS is asked whether it started anything.
pub const NO_PROGRESS_SECS: u64 = 15 * 60;
/// A holder whose record is this old refreshes it before RunTask.
const REFRESH_SECS: u64 = 5 * 60;
/// A holder sends RunTask only this long after its record showed progress:
/// five minutes before anyone may judge it idle (see "Fencing" above).
pub const RUN_WITHIN_SECS: u64 = 10 * 60;
/// History records younger than this are kept (see the module docs).
const HISTORY_KEPT_SECS: u64 = 3600;

/// The value of one lock record: the attempt holding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    pub deployment: String,
    /// Where the holder keeps its attempt records.
    pub state_parameter: String,
    /// The holder's attempt record.
    #[serde(default)]
    pub seq: u64,
    /// The deployment's attempt number, for people.
    #[serde(default)]
    pub attempt: u32,
    /// Where its task runs.
    #[serde(default)]
    pub cluster: String,
    /// Epoch seconds: when the attempt took the lock.
    pub acquired_at: u64,
    /// Epoch seconds: when it last showed progress by refreshing its
    /// record (see "Fencing" above); absent: `acquired_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<u64>,
    #[serde(default)]
    pub released: bool,
}

impl Holder {
    /// When the holder last made progress.
    pub fn progress_at(&self) -> u64 {
        self.refreshed_at.unwrap_or(self.acquired_at)
    }

    fn same_attempt(&self, other: &Holder) -> bool {
        self.state_parameter == other.state_parameter
            && self.seq == other.seq
            && self.deployment == other.deployment
    }
}

/// The result of trying to take the lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquire {
    /// We hold it (freshly, or already), by a record showing progress at
    /// `since` (epoch seconds): RunTask may be sent until
    /// `since + RUN_WITHIN_SECS`.
    Held { since: u64 },
    /// Another live attempt holds it (`None`: a contender we lost a race
    /// to, not seen yet).
    Busy(Option<Holder>),
    /// This attempt held the lock and a contender took it over (its start
    /// made no progress for [`NO_PROGRESS_SECS`]): the contender recorded
    /// the attempt's end, and the attempt must not start.
    TakenOver,
}

/// What the top record means, before any further AWS call.
#[derive(Debug, Clone, PartialEq)]
enum Top {
    /// Ours, showing progress at this time.
    Mine(u64),
    Free,
    /// Held by another attempt: judge its liveness.
    Other(Holder),
}

fn judge(top: Option<&Holder>, me: &Holder) -> Top {
    match top {
        None => Top::Free,
        Some(h) if h.released => Top::Free,
        Some(h) if h.same_attempt(me) => Top::Mine(h.progress_at()),
        Some(h) => Top::Other(h.clone()),
    }
}

/// Whether `me` held the lock before and lost it: an unreleased record of
/// its attempt below a top that is not its own. Pure.
fn taken_over(records: &[(u64, Holder)], me: &Holder) -> bool {
    let Some(((_, top), history)) = records.split_last() else {
        return false;
    };
    let ended = records
        .iter()
        .any(|(_, h)| h.same_attempt(me) && h.released);
    !top.same_attempt(me) && !ended && history.iter().any(|(_, h)| h.same_attempt(me))
}

/// Whether a holder may still be migrating.
#[derive(Debug, Clone, PartialEq)]
pub enum Liveness {
    Alive,
    /// Its task (if it had one: `None` when proven it started none) is over.
    Stale(Option<TaskView>),
}

/// What ECS says about a holder's task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskFact {
    /// DescribeTasks answered for the task the holder recorded.
    Seen(TaskView),
    /// No task is known: none recorded, or ECS answered `MISSING`.
    Unknown,
    /// Asked ECS for any task of the holder's deployment since it took the
    /// lock: this is what it found (`None`: it started none).
    Listed(Option<TaskView>),
}

/// Judges a holder from ECS's facts at `now` (epoch seconds). Pure.
pub fn liveness(holder: &Holder, fact: &TaskFact, now: u64) -> Liveness {
    let stopped = |t: &TaskView| t.last_status == "STOPPED";
    match fact {
        TaskFact::Seen(t) | TaskFact::Listed(Some(t)) if stopped(t) => {
            Liveness::Stale(Some(t.clone()))
        }
        TaskFact::Seen(_) | TaskFact::Listed(Some(_)) | TaskFact::Unknown => Liveness::Alive,
        TaskFact::Listed(None) if now.saturating_sub(holder.progress_at()) < NO_PROGRESS_SECS => {
            Liveness::Alive
        }
        TaskFact::Listed(None) => Liveness::Stale(None),
    }
}

/// Takes the lock `name` for `me`, given its current records (listed by the
/// caller, often together with other reads), or says who has it.
pub async fn acquire(
    clients: &Clients,
    name: &str,
    me: &Holder,
    records: Vec<(u64, Holder)>,
) -> Result<Acquire, Failure> {
    let ssm = &clients.ssm;
    let (top_number, top) = match records.last() {
        Some((n, holder)) => (*n, Some(holder)),
        None => (0, None),
    };
    if taken_over(&records, me) {
        return Ok(Acquire::TakenOver);
    }
    let now = me.acquired_at;
    let next = match judge(top, me) {
        Top::Mine(since) if now.saturating_sub(since) < REFRESH_SECS => {
            return Ok(Acquire::Held { since });
        }
        // Progress: the next record, as ourselves. It competes with a
        // contender's takeover for the same number: one of them wins.
        Top::Mine(_) => Holder {
            acquired_at: top.map_or(now, |h| h.acquired_at),
            refreshed_at: Some(now),
            ..me.clone()
        },
        Top::Free => me.clone(),
        Top::Other(holder) => {
            let fact = task_fact(clients, &holder, now).await?;
            match liveness(&holder, &fact, now) {
                Liveness::Alive => return Ok(Acquire::Busy(Some(holder))),
                Liveness::Stale(task) => {
                    tracing::warn!(lock = name, holder = %holder.deployment, seq = holder.seq, "taking over a stale lock");
                    record_outcome(
                        clients,
                        &holder.state_parameter,
                        holder.seq,
                        task.as_ref(),
                        now,
                    )
                    .await?;
                    me.clone()
                }
            }
        }
    };
    let value = serde_json::to_string(&next).expect("holder serialises");
    if state::put(ssm, &record_name(name, top_number + 1), &value, false).await? {
        clean_history(ssm, name, &records, now).await;
        return Ok(Acquire::Held { since: now });
    }
    // Lost the race: name the winner (or find it is another copy of us).
    let records = list(ssm, name).await?;
    if taken_over(&records, me) {
        return Ok(Acquire::TakenOver);
    }
    match records.last().map(|(_, h)| judge(Some(h), me)) {
        Some(Top::Mine(since)) => Ok(Acquire::Held { since }),
        Some(Top::Other(winner)) => Ok(Acquire::Busy(Some(winner))),
        _ => Ok(Acquire::Busy(None)),
    }
}

/// Gathers what ECS says about a holder's task: the recorded task, or —
/// once the holder has made no progress for [`NO_PROGRESS_SECS`] — any task
/// of its deployment.
async fn task_fact(clients: &Clients, holder: &Holder, now: u64) -> Result<TaskFact, Failure> {
    let record = state::read(&clients.ssm, &holder.state_parameter, holder.seq).await?;
    if let Some(arn) = record.as_ref().and_then(|r| r.task_arn.as_deref())
        && let Some(view) = task::describe(&clients.ecs, &holder.cluster, arn).await?
    {
        return Ok(TaskFact::Seen(view));
    }
    if now.saturating_sub(holder.progress_at()) < NO_PROGRESS_SECS {
        return Ok(TaskFact::Unknown);
    }
    let since = holder.acquired_at.saturating_sub(60) as f64;
    let token = task::client_token(&holder.state_parameter, &holder.deployment, holder.attempt);
    Ok(TaskFact::Listed(
        task::find_started(&clients.ecs, &holder.cluster, &token, since).await?,
    ))
}

/// Writes a stale holder's outcome into the summary it leads and its
/// attempt record, unless it is already recorded: what the holder's own
/// continuation would have written from the same facts.
async fn record_outcome(
    clients: &Clients,
    state_parameter: &str,
    seq: u64,
    task: Option<&TaskView>,
    now: u64,
) -> Result<(), Failure> {
    let ssm = &clients.ssm;
    let Some(record) = state::read(ssm, state_parameter, seq).await? else {
        return Ok(());
    };
    let Some(done) = settled(&record, task, &crate::job::rfc3339_secs(now)) else {
        return Ok(());
    };
    // The summary first: the record is the truth, and while it still says
    // running, whoever comes next (a redelivery, another contender) records
    // both again — the summary is never left behind by a crash in between.
    let summary = state::read_summary(ssm, state_parameter).await?;
    state::write_summary(ssm, state_parameter, &done, summary.as_ref()).await?;
    state::write(ssm, state_parameter, &done).await
}

/// Records the outcome of attempt `seq` under `state_parameter` from its
/// task, which ECS says has stopped: for an attempt whose own jobs will not
/// (its action was abandoned with a stopped pipeline).
pub async fn record_stopped(
    clients: &Clients,
    state_parameter: &str,
    seq: u64,
    task: &TaskView,
) -> Result<(), Failure> {
    let now = crate::clock::epoch_secs(crate::clock::now());
    record_outcome(clients, state_parameter, seq, Some(task), now).await
}

/// What an attempt's record becomes once ECS says how its task ended (or
/// that it started none); `None` when the record already says it. A
/// record failed before its task's end was seen (a timeout: the task was
/// told to stop) whose task then exited 0 during its `stopTimeout` becomes
/// `succeeded`: ECS's facts decide, and the migration must not run again.
/// Pure.
pub fn settled(record: &State, task: Option<&TaskView>, now: &str) -> Option<State> {
    if !record.status.is_final() {
        return Some(outcome_of(record, task, now));
    }
    let task = task?;
    let unseen_end = record.status == Status::Failed
        && record.exit_code.is_none()
        && record.task_arn.as_deref() == Some(task.arn.as_str());
    let done = outcome_of(record, Some(task), now);
    (unseen_end && done.status == Status::Succeeded && done.exit_code == Some(0)).then(|| State {
        failure_class: None,
        reason: Some(format!(
            "exited 0 after it was told to stop ({})",
            record.reason.as_deref().unwrap_or("stopped")
        )),
        ..done
    })
}

/// The final record of an attempt from its stopped task (or from the proof
/// that it started none). Pure.
pub fn outcome_of(record: &State, task: Option<&TaskView>, now: &str) -> State {
    let Some(task) = task else {
        return record.failed(
            FailureClass::Permanent,
            "abandoned before its task started (no task was started for it)",
            now,
        );
    };
    let container = record.container.as_deref().unwrap_or_default();
    let base = State {
        task_arn: Some(task.arn.clone()),
        ..record.clone()
    };
    match outcome::classify(task, container, u64::MAX, 0.0) {
        Outcome::Succeeded { .. } => base.finished(Status::Succeeded, Some(0), None, now),
        Outcome::Failed { exit_code, .. } => base.finished(
            Status::Failed,
            Some(exit_code),
            Some(FailureClass::Permanent),
            now,
        ),
        Outcome::NotStarted { reason, transient } => {
            let class = if transient {
                FailureClass::Transient
            } else {
                FailureClass::Permanent
            };
            base.failed(class, &reason, now)
        }
        Outcome::ContainerMissing { reason, .. } => {
            base.failed(FailureClass::Permanent, &reason, now)
        }
        Outcome::Running { .. } | Outcome::TimedOut { .. } => base,
    }
}

/// Releases the records held by the attempt (`state_parameter`, `seq`).
/// Idempotent: releasing a lock not held is a no-op.
pub async fn release(
    ssm: &Ssm,
    name: &str,
    state_parameter: &str,
    seq: u64,
) -> Result<(), Failure> {
    // Only the top record is the lock; the ones below are history.
    if let Some((n, holder)) = list(ssm, name).await?.pop()
        && holder.state_parameter == state_parameter
        && holder.seq == seq
        && !holder.released
    {
        let released = Holder {
            released: true,
            ..holder
        };
        let value = serde_json::to_string(&released).expect("holder serialises");
        state::put(ssm, &record_name(name, n), &value, true).await?;
    }
    Ok(())
}

/// Deletes history records over an hour old (see the module docs).
async fn clean_history(ssm: &Ssm, name: &str, records: &[(u64, Holder)], now: u64) {
    let old: Vec<String> = records
        .iter()
        .filter(|(_, h)| now.saturating_sub(h.acquired_at) >= HISTORY_KEPT_SECS)
        .map(|(n, _)| record_name(name, *n))
        .collect();
    state::delete(ssm, &old).await;
}

fn record_name(lock: &str, n: u64) -> String {
    format!("{lock}/{n:010}")
}

/// The lock's records, lowest number first. Records that do not parse are
/// skipped: they are not ours to judge.
pub async fn list(ssm: &Ssm, name: &str) -> Result<Vec<(u64, Holder)>, Failure> {
    let prefix = format!("{name}/");
    let mut records: Vec<(u64, Holder)> = state::children(ssm, name)
        .await?
        .into_iter()
        .filter_map(|(parameter, value)| {
            let number = parameter.strip_prefix(&prefix)?.parse::<u64>().ok()?;
            Some((number, serde_json::from_str::<Holder>(&value).ok()?))
        })
        .collect();
    records.sort_by_key(|(n, _)| *n);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(deployment: &str, seq: u64, acquired_at: u64, released: bool) -> Holder {
        Holder {
            deployment: deployment.into(),
            state_parameter: "/s".into(),
            seq,
            attempt: 1,
            cluster: "c".into(),
            acquired_at,
            refreshed_at: None,
            released,
        }
    }

    fn task(status: &str) -> TaskView {
        TaskView {
            arn: "arn:aws:ecs:r:1:task/c/t".into(),
            last_status: status.into(),
            ..Default::default()
        }
    }

    #[test]
    fn judging_the_top_record() {
        let me = holder("me", 5, 100, false);
        assert_eq!(judge(None, &me), Top::Free);
        assert_eq!(judge(Some(&holder("me", 5, 1, false)), &me), Top::Mine(1));
        let refreshed = Holder {
            refreshed_at: Some(90),
            ..holder("me", 5, 1, false)
        };
        assert_eq!(judge(Some(&refreshed), &me), Top::Mine(90));
        assert_eq!(judge(Some(&holder("x", 2, 1, true)), &me), Top::Free);
        // The same deployment's earlier attempt is another holder.
        assert_eq!(
            judge(Some(&holder("me", 4, 1, false)), &me),
            Top::Other(holder("me", 4, 1, false))
        );
        // So is the same deployment id on another state parameter.
        let other_state = Holder {
            state_parameter: "/other".into(),
            ..holder("me", 5, 1, false)
        };
        assert_eq!(
            judge(Some(&other_state), &me),
            Top::Other(other_state.clone())
        );
    }

    #[test]
    fn the_lock_follows_the_task() {
        let h = holder("d", 1, 1_000, false);
        let young = 1_000 + 60;
        let old = 1_000 + NO_PROGRESS_SECS;
        let cases = [
            (TaskFact::Seen(task("RUNNING")), young, Liveness::Alive),
            // A stopping task is alive, however old its holder.
            (
                TaskFact::Seen(task("DEACTIVATING")),
                u64::MAX,
                Liveness::Alive,
            ),
            (
                TaskFact::Seen(task("STOPPED")),
                young,
                Liveness::Stale(Some(task("STOPPED"))),
            ),
            // MISSING or not yet recorded: alive, never stale on its own.
            (TaskFact::Unknown, u64::MAX, Liveness::Alive),
            // Proven to have started nothing, but not for long enough.
            (TaskFact::Listed(None), young, Liveness::Alive),
            (TaskFact::Listed(None), old, Liveness::Stale(None)),
            (
                TaskFact::Listed(Some(task("PENDING"))),
                old,
                Liveness::Alive,
            ),
            (
                TaskFact::Listed(Some(task("STOPPED"))),
                old,
                Liveness::Stale(Some(task("STOPPED"))),
            ),
        ];
        for (fact, now, expected) in cases {
            assert_eq!(liveness(&h, &fact, now), expected, "{fact:?} at {now}");
        }
        // Progress is measured from the last refresh.
        let refreshed = Holder {
            refreshed_at: Some(1_000 + 600),
            ..h
        };
        assert_eq!(
            liveness(&refreshed, &TaskFact::Listed(None), old),
            Liveness::Alive
        );
    }

    #[test]
    fn a_holder_taken_over_knows_it() {
        let me = holder("me", 5, 100, false);
        let other = holder("x", 2, 200, false);
        let records = |hs: &[Holder]| -> Vec<(u64, Holder)> {
            hs.iter()
                .cloned()
                .enumerate()
                .map(|(i, h)| (i as u64 + 1, h))
                .collect()
        };
        // Below someone else's top, never released: taken over.
        assert!(taken_over(&records(&[me.clone(), other.clone()]), &me));
        // Ours on top (refreshed), or never ours: not.
        assert!(!taken_over(&records(&[me.clone(), me.clone()]), &me));
        assert!(!taken_over(&records(std::slice::from_ref(&other)), &me));
        assert!(!taken_over(&[], &me));
        // Released by ourselves once done, then someone else's: not.
        let released = holder("me", 5, 100, true);
        assert!(!taken_over(&records(&[me.clone(), released, other]), &me));
    }

    #[test]
    fn a_stale_holders_outcome_comes_from_its_task() {
        let record = State {
            container: Some("app".into()),
            ..state::tests_support::record("d", 3, Status::Running)
        };
        let mut stopped = task("STOPPED");
        stopped.stop_code = Some("EssentialContainerExited".into());
        stopped.containers.insert(
            "app".into(),
            task::ContainerView {
                exit_code: Some(0),
                reason: None,
            },
        );
        assert_eq!(
            outcome_of(&record, Some(&stopped), "t").status,
            Status::Succeeded
        );
        stopped.containers.get_mut("app").unwrap().exit_code = Some(2);
        let failed = outcome_of(&record, Some(&stopped), "t");
        assert_eq!((failed.status, failed.exit_code), (Status::Failed, Some(2)));
        let abandoned = outcome_of(&record, None, "t");
        assert_eq!(abandoned.status, Status::Failed);
        assert!(abandoned.reason.unwrap().contains("abandoned"));
    }

    #[test]
    fn a_timed_out_attempt_whose_task_exited_0_is_settled_as_succeeded() {
        let exited = |code: i32| {
            let mut t = task("STOPPED");
            t.stop_code = Some("EssentialContainerExited".into());
            t.containers.insert(
                "app".into(),
                task::ContainerView {
                    exit_code: Some(code),
                    reason: None,
                },
            );
            t
        };
        let running = State {
            container: Some("app".into()),
            task_arn: Some(task("STOPPED").arn),
            ..state::tests_support::record("d", 3, Status::Running)
        };
        let timed_out = running.failed(FailureClass::Permanent, "timed out after 1m", "t0");
        let settled_as = |record: &State, t: Option<&TaskView>| {
            settled(record, t, "t1").map(|r| (r.status, r.exit_code))
        };
        // Unfinished: always settled from the task.
        assert_eq!(
            settled_as(&running, Some(&exited(0))),
            Some((Status::Succeeded, Some(0)))
        );
        // Timed out, then exited 0 while stopping: ECS's answer wins.
        let done = settled(&timed_out, Some(&exited(0)), "t1").unwrap();
        assert_eq!((done.status, done.failure_class), (Status::Succeeded, None));
        assert!(done.reason.unwrap().contains("timed out after 1m"));
        // Timed out and killed, or no task seen: the failure stands.
        assert_eq!(settled_as(&timed_out, Some(&exited(137))), None);
        assert_eq!(settled_as(&timed_out, None), None);
        // A failure whose exit code was seen is never rewritten.
        let failed = running.finished(Status::Failed, Some(2), Some(FailureClass::Permanent), "t0");
        assert_eq!(settled_as(&failed, Some(&exited(0))), None);
        // Nor one about another task.
        let other = State {
            task_arn: Some("arn:aws:ecs:r:1:task/c/other".into()),
            ..timed_out.clone()
        };
        assert_eq!(settled_as(&other, Some(&exited(0))), None);
    }

    #[test]
    fn record_names_sort_by_number() {
        assert_eq!(record_name("/l", 7), "/l/0000000007");
        assert!(record_name("/l", 10) > record_name("/l", 9));
    }
}
