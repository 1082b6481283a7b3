//! The lock that keeps two deployments from migrating the same database at
//! once, built on the one compare-and-set SSM offers: creating a parameter
//! with `Overwrite=false`.
//!
//! # The argument
//!
//! The lock is a sequence of records `<lock>/0000000001`, `<lock>/0000000002`,
//! …, each a small JSON [`Holder`]. **The highest-numbered record is the
//! lock**; the ones below it are history. To acquire, a contender lists the
//! records, looks at the top one, `N`:
//!
//! - held by the same deployment: it already holds the lock (re-entrant, so a
//!   duplicate delivery never waits on itself);
//! - held by another deployment that is alive: it waits;
//! - released, or held by a stale holder (its task stopped, or older than
//!   24 h), or no records at all (`N = 0`): it *creates* `N + 1` with
//!   `Overwrite=false`.
//!
//! Creating is atomic: of any number of contenders that saw the same top `N`,
//! exactly one creates `N + 1`; the others get `ParameterAlreadyExists` and
//! wait. Nothing is ever taken over by deleting and re-creating (the race
//! where a slow contender deletes a fresh lock), and releasing never deletes
//! the top record — it overwrites the holder's own record with
//! `released: true` (only the holder writes its record). Because the top
//! record never disappears, every contender competes for the same next
//! number, and two contenders can never both hold the lock.
//!
//! History is cleaned up on release: records below the top are deleted. A
//! contender whose listing is behind by a record tries to create a number
//! that exists, fails, and waits — safe. Deleting history opens one gap: a
//! contender whose listing is *very* old (its PutParameter retried with
//! backoff while others came and went) may create a number that was
//! deleted, below the real top. So a contender that created a record lists
//! again and holds the lock only if its record is still the top; otherwise
//! it marks its record released and waits. The real top is never deleted
//! and numbers only grow, so a record created below it always sees it.
//!
//! After losing a create, a contender lists again to name the winner (the
//! waiting summary says whom it waits for); when the winner is its own
//! deployment — a concurrent duplicate delivery of the same job — it holds
//! the lock too: both copies then run the same attempt with the same
//! RunTask `clientToken`, which starts one task.
//!
//! Staleness is judged from the holder's state record and task. An error
//! reading them is an error of this invocation (reported, e.g. as
//! `PermissionError` naming the call), never silently "alive" or "stale".

use aws_sdk_ecs::Client as Ecs;
use aws_sdk_ssm::Client as Ssm;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::state::{self, Status};
use crate::task;

/// A holder older than this is stale whatever its state says.
pub const STALE_AFTER_SECS: u64 = 24 * 3600;
/// How long a holder whose task has stopped keeps the lock while its state
/// still says `running`. The holder is most likely between seeing the task
/// stop and recording the outcome; taking over at once would let the new
/// holder overwrite the state record first, and the old deployment's
/// outcome (what makes "at most once" hold for it) would never be written.
/// A live holder looks again within `waitSeconds` plus a continuation, so
/// five minutes only ever delays an abandoned holder.
pub const STOPPED_GRACE_SECS: f64 = 300.0;

/// The value of one lock record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    pub deployment: String,
    /// Where the holder keeps its state, to tell whether it is still alive.
    pub state_parameter: String,
    /// Epoch seconds.
    pub acquired_at: u64,
    #[serde(default)]
    pub released: bool,
}

/// The result of trying to take the lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquire {
    /// We hold it (freshly, or already).
    Held,
    /// Another live deployment holds it; `None` when we lost a race to a
    /// contender we have not seen yet.
    Busy(Option<Holder>),
}

/// What to do about the top record, before any further AWS call.
#[derive(Debug, Clone, PartialEq)]
enum Top {
    Mine,
    Free,
    /// Held by another deployment: alive unless its state says otherwise.
    Other(Holder),
}

fn judge(top: Option<&Holder>, deployment: &str, now: u64) -> Top {
    match top {
        None => Top::Free,
        Some(h) if h.released => Top::Free,
        Some(h) if h.deployment == deployment => Top::Mine,
        Some(h) if now.saturating_sub(h.acquired_at) >= STALE_AFTER_SECS => Top::Free,
        Some(h) => Top::Other(h.clone()),
    }
}

/// Takes the lock `name` for `me`, or says who has it.
pub async fn acquire(
    ssm: &Ssm,
    ecs: &Ecs,
    cluster: &str,
    name: &str,
    me: &Holder,
) -> Result<Acquire, Failure> {
    let records = list(ssm, name).await?;
    let (top_number, top) = match records.last() {
        Some((n, holder)) => (*n, Some(holder)),
        None => (0, None),
    };
    match judge(top, &me.deployment, me.acquired_at) {
        Top::Mine => return Ok(Acquire::Held),
        Top::Other(holder) => {
            if !is_stale(ssm, ecs, cluster, &holder, me.acquired_at).await? {
                return Ok(Acquire::Busy(Some(holder)));
            }
            tracing::warn!(lock = name, holder = %holder.deployment, "taking over a stale lock");
        }
        Top::Free => {}
    }
    let value = serde_json::to_string(me).expect("holder serialises");
    let mine = top_number + 1;
    let created = state::put(ssm, &record_name(name, mine), &value, false).await?;
    // Look again: after a lost race, to name the winner (or find it is us);
    // after a win, to be sure our record is the top (see the module docs).
    let records = list(ssm, name).await?;
    let Some((top_number, top)) = records.last() else {
        return Ok(Acquire::Busy(None));
    };
    if created && *top_number != mine {
        tracing::warn!(
            lock = name,
            record = mine,
            top = top_number,
            "created a lock record below the top; giving it back"
        );
        let released = Holder {
            released: true,
            ..me.clone()
        };
        let value = serde_json::to_string(&released).expect("holder serialises");
        state::put(ssm, &record_name(name, mine), &value, true).await?;
    }
    match judge(Some(top), &me.deployment, me.acquired_at) {
        Top::Mine if !top.released => Ok(Acquire::Held),
        _ if top.released => Ok(Acquire::Busy(None)),
        _ => Ok(Acquire::Busy(Some(top.clone()))),
    }
}

/// Releases every record `deployment` holds and deletes the history below
/// the top. Idempotent: releasing a lock not held is a no-op.
pub async fn release(ssm: &Ssm, name: &str, deployment: &str) -> Result<(), Failure> {
    let records = list(ssm, name).await?;
    for (n, holder) in records
        .iter()
        .filter(|(_, h)| h.deployment == deployment && !h.released)
    {
        let released = Holder {
            released: true,
            ..holder.clone()
        };
        let value = serde_json::to_string(&released).expect("holder serialises");
        state::put(ssm, &record_name(name, *n), &value, true).await?;
    }
    let history: Vec<String> = records
        .iter()
        .rev()
        .skip(1)
        .map(|(n, _)| record_name(name, *n))
        .collect();
    for chunk in history.chunks(10) {
        if let Err(e) = ssm
            .delete_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
        {
            // History is only clutter; a failed clean-up must not fail a deployment.
            tracing::warn!(lock = name, error = %Failure::from_sdk("ssm:DeleteParameters", e), "could not delete old lock records");
        }
    }
    Ok(())
}

/// A holder is stale when its state record says its migration is over, or
/// its task has stopped for [`STOPPED_GRACE_SECS`] (or ECS no longer knows
/// it). A holder that has not yet written its state (or is still starting)
/// is alive: we cannot tell otherwise, and the 24 h rule bounds the wait.
async fn is_stale(
    ssm: &Ssm,
    ecs: &Ecs,
    cluster: &str,
    holder: &Holder,
    now: u64,
) -> Result<bool, Failure> {
    let Some(record) = state::read(ssm, &holder.state_parameter).await? else {
        return Ok(false);
    };
    if record.deployment != holder.deployment {
        return Ok(false);
    }
    match (record.status, record.task_arn) {
        (Status::Succeeded | Status::Failed, _) => Ok(true),
        (Status::Running, Some(task_arn)) => {
            let task = task::describe(ecs, cluster, &task_arn).await?;
            Ok(task.is_none_or(|t| stopped_long_ago(&t, now)))
        }
        _ => Ok(false),
    }
}

/// Whether a task stopped more than [`STOPPED_GRACE_SECS`] before `now`.
fn stopped_long_ago(task: &task::TaskView, now: u64) -> bool {
    task.last_status == "STOPPED"
        && task
            .stopped_at
            .is_none_or(|at| now as f64 - at >= STOPPED_GRACE_SECS)
}

fn record_name(lock: &str, n: u64) -> String {
    format!("{lock}/{n:010}")
}

/// The lock's records, lowest number first. Records that do not parse are
/// skipped: they are not ours to judge.
async fn list(ssm: &Ssm, name: &str) -> Result<Vec<(u64, Holder)>, Failure> {
    let prefix = format!("{name}/");
    let mut records = Vec::new();
    let mut next_token = None;
    loop {
        let out = ssm
            .get_parameters_by_path()
            .path(name)
            .recursive(false)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| Failure::from_sdk("ssm:GetParametersByPath", e))?;
        for parameter in out.parameters() {
            let number = parameter
                .name()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.parse::<u64>().ok());
            let holder = parameter
                .value()
                .and_then(|v| serde_json::from_str::<Holder>(v).ok());
            if let (Some(number), Some(holder)) = (number, holder) {
                records.push((number, holder));
            }
        }
        next_token = out.next_token;
        if next_token.is_none() {
            break;
        }
    }
    records.sort_by_key(|(n, _)| *n);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(deployment: &str, acquired_at: u64, released: bool) -> Holder {
        Holder {
            deployment: deployment.into(),
            state_parameter: "/s".into(),
            acquired_at,
            released,
        }
    }

    #[test]
    fn judging_the_top_record() {
        let now = 100_000;
        assert_eq!(judge(None, "me", now), Top::Free);
        assert_eq!(judge(Some(&holder("me", now, false)), "me", now), Top::Mine);
        assert_eq!(
            judge(Some(&holder("other", now, true)), "me", now),
            Top::Free
        );
        assert_eq!(judge(Some(&holder("me", now, true)), "me", now), Top::Free);
        assert_eq!(
            judge(Some(&holder("other", now - 60, false)), "me", now),
            Top::Other(holder("other", now - 60, false))
        );
        assert_eq!(
            judge(
                Some(&holder("other", now - STALE_AFTER_SECS, false)),
                "me",
                now
            ),
            Top::Free
        );
    }

    #[test]
    fn a_stopped_task_frees_the_lock_only_after_the_grace() {
        let stopped = |at: Option<f64>| task::TaskView {
            last_status: "STOPPED".into(),
            stopped_at: at,
            ..Default::default()
        };
        assert!(!stopped_long_ago(&stopped(Some(1000.0)), 1000 + 60));
        assert!(stopped_long_ago(&stopped(Some(1000.0)), 1000 + 300));
        assert!(stopped_long_ago(&stopped(None), 1000));
        let running = task::TaskView {
            last_status: "RUNNING".into(),
            ..Default::default()
        };
        assert!(!stopped_long_ago(&running, u64::MAX));
    }

    #[test]
    fn record_names_sort_by_number() {
        assert_eq!(record_name("/l", 7), "/l/0000000007");
        assert!(record_name("/l", 10) > record_name("/l", 9));
    }
}
