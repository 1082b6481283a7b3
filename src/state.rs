//! The deployment state in SSM (SPEC §5): one create-only record per
//! attempt, and the state parameter itself as the summary people read.
//!
//! # The records
//!
//! Under a state parameter `S`:
//!
//! - `S/a/0000000001`, `S/a/0000000002`, …: **attempt records**, one per
//!   RunTask attempt of any deployment on `S`, numbered in the order they
//!   were claimed (the number is the attempt's `seq`). A record is *created*
//!   with `Overwrite=false`: of any number of invocations that want to start
//!   the next attempt, exactly one creates it (the claim), and only that
//!   attempt's own chain of jobs writes it afterwards (`running`, then the
//!   outcome). The highest-numbered record is the latest attempt, and its
//!   deployment is the latest deployment started on `S`.
//! - `S/reset/<seq>`: created by whoever resets `resetParameters` for attempt
//!   `seq`, so they are reset once per attempt, never by a repeated delivery.
//! - `S/rerun/<seq>`, `S/stop/<seq>`: created by the EventBridge handler
//!   that reruns the stage after attempt `seq` failed, or stops its task
//!   when the pipeline stopped: one RetryStageExecution or StopTask per
//!   attempt, however often EventBridge delivers the event.
//! - `S` itself: a copy of the latest attempt record in the SPEC §5 shape,
//!   for people and tools. Nothing relies on it; it is written after the
//!   record it copies, and not when the writer knows of a newer attempt (a
//!   read-then-write: a write delayed past a newer attempt's own is
//!   repaired by that attempt's next write).
//!
//! Why a late or repeated delivery can only re-report: every record names
//! the job that claimed it (`jobId`) and the first job of its action run
//! (`actionJob`, carried in every continuation token). A job without a token
//! whose id is some record's `actionJob` is a repeated delivery of an action
//! run that already began, and a continuation names the attempt it belongs
//! to; either one finds what that attempt recorded and reports it. Starting
//! an attempt needs a claim, and a claim needs the latest record to say that
//! this caller may start the next one ([`crate::job::plan`]).
//!
//! Old records are deleted by the next claim: beyond the newest [`KEEP`]
//! records, a record of a deployment that is no longer the latest goes (with
//! its claims), and so does a finished record of the latest deployment once
//! no late copy of its jobs can arrive ([`LATE_DELIVERY_SECS`]; a constant
//! `deployment` or `rerun: "always"` makes many). The deployments those
//! records named stay known through the latest record's `recent` list, so a
//! very late job of one of them is still recognised as superseded.
//!
//! So one state parameter keeps, at rest: the summary, at most [`KEEP`]
//! attempt records (plus those of the last [`LATE_DELIVERY_SECS`] before
//! the last claim) with at most five claims each, and the roll claims of
//! the action runs of the last [`LATE_DELIVERY_SECS`] before the last roll.

use std::collections::BTreeMap;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::failure::Failure;

/// Attempt records kept besides the latest deployment's own.
pub const KEEP: usize = 6;
/// How many earlier deployments the latest record remembers.
const RECENT: usize = 64;

/// Where the attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Claimed; RunTask has not been answered yet (or not been called).
    Starting,
    /// RunTask answered with this task.
    Running,
    Succeeded,
    Failed,
}

impl Status {
    /// Whether the attempt is over.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed)
    }
}

/// Whether a failure is worth an automatic rerun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    Transient,
    Permanent,
}

/// One attempt record, and the summary in the state parameter (the SPEC §5
/// fields first, then ours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub deployment: String,
    pub status: Status,
    /// The deployment's attempt number: never restarts for a deployment.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<FailureClass>,
    #[serde(default)]
    pub reruns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Position of the record among all attempts on the state parameter.
    #[serde(default)]
    pub seq: u64,
    /// The job that claimed this attempt.
    #[serde(default)]
    pub job_id: String,
    /// The first job of the action run this attempt belongs to.
    #[serde(default)]
    pub action_job: String,
    /// Start attempts made by this action run, this one included.
    #[serde(default)]
    pub tries: u32,
    /// The decisive container, so whoever records the outcome (a contender
    /// taking over a stale lock, too) judges the same container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Why the attempt failed, in a sentence, when it did not exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Keys ([`deployment_key`]) of the deployments started on this state
    /// parameter before this one, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<String>,
    /// The task definition revision the attempt runs (SPEC §4 output
    /// `TaskDefinitionArn`): registered with the pipeline's images (§4a), or
    /// the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    /// The decisive container's image in that revision (output `Image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// [`crate::revision::image_digest`] of the images registered for this
    /// deployment: a later attempt with the same images reuses
    /// `task_definition` instead of registering again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_set: Option<String>,
}

impl State {
    /// The same record, finished.
    pub fn finished(
        &self,
        status: Status,
        exit_code: Option<i32>,
        class: Option<FailureClass>,
        now: &str,
    ) -> State {
        State {
            status,
            exit_code,
            failure_class: class,
            finished_at: Some(now.to_owned()),
            ..self.clone()
        }
    }

    /// The record of a failure that is not an exit code: a start failure, a
    /// timeout, a stop.
    pub fn failed(&self, class: FailureClass, reason: &str, now: &str) -> State {
        State {
            reason: Some(reason.to_owned()),
            ..self.finished(Status::Failed, None, Some(class), now)
        }
    }

    /// Whether this attempt may be rerun automatically.
    pub fn failed_transiently(&self) -> bool {
        self.status == Status::Failed && self.failure_class == Some(FailureClass::Transient)
    }
}

/// A short, SSM-safe, stable key for a deployment id.
pub fn deployment_key(deployment: &str) -> String {
    let digest = Sha256::digest(deployment.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The `recent` list of a new record that follows `top`.
pub fn recent_after(top: Option<&State>, deployment: &str) -> Vec<String> {
    let Some(top) = top else { return Vec::new() };
    let mut recent = top.recent.clone();
    if top.deployment != deployment {
        recent.retain(|k| *k != deployment_key(&top.deployment));
        recent.insert(0, deployment_key(&top.deployment));
    }
    recent.truncate(RECENT);
    recent
}

/// `S/a/<seq>`.
pub fn attempt_name(state_parameter: &str, seq: u64) -> String {
    format!("{state_parameter}/a/{seq:010}")
}

/// `S/<kind>/<seq>`: the create-only claim of a side effect of attempt `seq`.
pub fn claim_name(state_parameter: &str, kind: Claim, seq: u64) -> String {
    let kind = match kind {
        Claim::Reset => "reset",
        Claim::Rerun => "rerun",
        Claim::Stop => "stop",
        Claim::Register => "register",
    };
    format!("{state_parameter}/{kind}/{seq:010}")
}

/// The claim of one service's `UpdateService` in one action run (SPEC
/// §4b): `<stateParameter>/roll/<run>-<index>`, `run` a digest of the
/// action run's first job, `index` the service's place in `deploy.services`.
pub fn roll_claim_name(state_parameter: &str, action_job: &str, index: usize) -> String {
    let run: String = Sha256::digest(action_job.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{state_parameter}/roll/{run}-{index:02}")
}

/// A claim whose creator may have died: after this long without its side
/// effect (longer than any AWS call may take: the SDK gives up after 40 s)
/// it is taken over, itself by a create-only claim.
pub const TAKEOVER_SECS: u64 = 60;

/// Creates the claim `name` with this invocation's `value`
/// ([`crate::job`]'s claim values start with their time). `Ok(None)`: ours —
/// created now, or by this invocation before an answer was lost. Otherwise
/// the value another invocation created it with.
pub async fn claim_mine(ssm: &Client, name: &str, value: &str) -> Result<Option<String>, Failure> {
    if put(ssm, name, value, false).await? {
        return Ok(None);
    }
    let found = get(ssm, name).await?.unwrap_or_default();
    Ok((found != value).then_some(found))
}

/// Epoch seconds at the start of a claim's value (a claim value starts with
/// the time it was made); 0 when unreadable, so it counts as old.
pub fn claimed_at(value: Option<&str>) -> u64 {
    value
        .and_then(|v| v.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// Side effects of an attempt claimed besides the attempt itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Resetting `resetParameters` for the attempt.
    Reset,
    /// Rerunning the stage after the attempt failed.
    Rerun,
    /// Stopping the attempt's task because its pipeline execution stopped.
    Stop,
    /// Registering the task definition revision with the pipeline's images.
    Register,
}

/// The attempt records of a state parameter, lowest `seq` first. Values that
/// are not records of ours are a configuration error (someone else's data
/// under our prefix).
pub async fn list(ssm: &Client, state_parameter: &str) -> Result<Vec<State>, Failure> {
    let mut records = BTreeMap::new();
    for (name, value) in children(ssm, &format!("{state_parameter}/a")).await? {
        let Some(seq) = name.rsplit('/').next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let record = parse(&name, &value)?;
        records.insert(seq, State { seq, ..record });
    }
    Ok(records.into_values().collect())
}

/// The parameters directly under `path`, as (name, value), every page.
pub async fn children(ssm: &Client, path: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut found = Vec::new();
    let mut next_token = None;
    loop {
        let out = ssm
            .get_parameters_by_path()
            .path(path)
            .recursive(false)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| Failure::from_sdk("ssm:GetParametersByPath", e))?;
        found.extend(out.parameters().iter().map(|p| {
            (
                p.name().unwrap_or_default().to_owned(),
                p.value().unwrap_or_default().to_owned(),
            )
        }));
        next_token = out.next_token;
        if next_token.is_none() {
            return Ok(found);
        }
    }
}

/// Reads one attempt record; `None` when it does not exist.
pub async fn read(ssm: &Client, state_parameter: &str, seq: u64) -> Result<Option<State>, Failure> {
    let name = attempt_name(state_parameter, seq);
    match get(ssm, &name).await? {
        Some(value) => parse(&name, &value).map(|r| Some(State { seq, ..r })),
        None => Ok(None),
    }
}

/// Reads the summary in the state parameter itself.
pub async fn read_summary(ssm: &Client, state_parameter: &str) -> Result<Option<State>, Failure> {
    match get(ssm, state_parameter).await? {
        Some(value) => parse(state_parameter, &value).map(Some),
        None => Ok(None),
    }
}

fn parse(name: &str, value: &str) -> Result<State, Failure> {
    serde_json::from_str(value).map_err(|e| {
        Failure::Configuration(format!(
            "SSM parameter `{name}` holds a value that is not a migrate-once state record ({e}); \
             set `stateParameter` to a name of its own, or delete the parameter if it is stale"
        ))
    })
}

/// Claims attempt `record.seq`: `Ok(false)` when another invocation did.
pub async fn create(ssm: &Client, state_parameter: &str, record: &State) -> Result<bool, Failure> {
    let value = serde_json::to_string(record).expect("state serialises");
    put(
        ssm,
        &attempt_name(state_parameter, record.seq),
        &value,
        false,
    )
    .await
}

/// Overwrites the attempt record (only its own chain, or whoever records
/// the outcome of a stale holder, does).
pub async fn write(ssm: &Client, state_parameter: &str, record: &State) -> Result<(), Failure> {
    let value = serde_json::to_string(record).expect("state serialises");
    put(
        ssm,
        &attempt_name(state_parameter, record.seq),
        &value,
        true,
    )
    .await
    .map(|_| ())
}

/// Copies `record` into the state parameter unless `current` (what it holds
/// now, as read by the caller) is a newer attempt.
pub async fn write_summary(
    ssm: &Client,
    state_parameter: &str,
    record: &State,
    current: Option<&State>,
) -> Result<(), Failure> {
    if current.is_some_and(|c| c.seq > record.seq) {
        return Ok(());
    }
    let value = serde_json::to_string(record).expect("state serialises");
    put(ssm, state_parameter, &value, true).await.map(|_| ())
}

/// Claims a side effect of attempt `seq`: `Ok(true)` for the one winner.
pub async fn claim(
    ssm: &Client,
    state_parameter: &str,
    kind: Claim,
    seq: u64,
    value: &str,
) -> Result<bool, Failure> {
    put(ssm, &claim_name(state_parameter, kind, seq), value, false).await
}

/// Whether the side effect was claimed.
pub async fn claimed(
    ssm: &Client,
    state_parameter: &str,
    kind: Claim,
    seq: u64,
) -> Result<bool, Failure> {
    Ok(get(ssm, &claim_name(state_parameter, kind, seq))
        .await?
        .is_some())
}

/// The records a new claim may delete at `now` (epoch seconds), beyond the
/// newest [`KEEP`]: those of deployments other than the latest, and the
/// latest's finished ones that no late delivery can still ask for. Pure, so
/// the rule is tested on its own.
pub fn expired(records: &[State], now: u64) -> Vec<u64> {
    let Some(top) = records.last() else {
        return Vec::new();
    };
    let keep_from = records.len().saturating_sub(KEEP);
    let cutoff = now.saturating_sub(LATE_DELIVERY_SECS);
    let done_long_ago = |r: &State| {
        r.status.is_final()
            && epoch_of(r.finished_at.as_deref().or(r.started_at.as_deref()))
                .is_some_and(|t| t < cutoff)
    };
    records
        .iter()
        .enumerate()
        .filter(|(i, r)| *i < keep_from && (r.deployment != top.deployment || done_long_ago(r)))
        .map(|(_, r)| r.seq)
        .collect()
}

/// Epoch seconds of an RFC 3339 time we wrote.
pub fn epoch_of(time: Option<&str>) -> Option<u64> {
    let time = time?;
    let parsed =
        aws_smithy_types::DateTime::from_str(time, aws_smithy_types::date_time::Format::DateTime);
    Some(parsed.ok()?.secs().max(0) as u64)
}

/// Deletes the records [`expired`] names, with their claims (and the
/// registration takeover claims of those that registered a revision).
/// Best effort: clutter must never fail a deployment.
pub async fn clean_up(ssm: &Client, state_parameter: &str, records: &[State]) {
    let now = crate::clock::epoch_secs(crate::clock::now());
    let expired = expired(records, now);
    let mut names: Vec<String> = expired
        .iter()
        .flat_map(|&seq| {
            [
                attempt_name(state_parameter, seq),
                claim_name(state_parameter, Claim::Reset, seq),
                claim_name(state_parameter, Claim::Rerun, seq),
                claim_name(state_parameter, Claim::Stop, seq),
                claim_name(state_parameter, Claim::Register, seq),
            ]
        })
        .collect();
    if names.is_empty() {
        return;
    }
    let registered = records
        .iter()
        .any(|r| expired.contains(&r.seq) && r.image_set.is_some());
    if registered {
        // Takeover claims (`<claim>-t<k>`) are named by age: listed.
        let prefix = format!("{state_parameter}/register");
        match children(ssm, &prefix).await {
            Ok(claims) => names.extend(claims.into_iter().map(|(name, _)| name).filter(|name| {
                expired.iter().any(|&seq| {
                    name.starts_with(&claim_name(state_parameter, Claim::Register, seq))
                })
            })),
            Err(e) => tracing::warn!(error = %e, "could not list old registration claims"),
        }
    }
    delete(ssm, &names).await;
    clean_roll_claims(ssm, state_parameter, now).await;
}

/// Deletes roll claims older than any delivery that could still arrive.
/// Roll claims belong to action runs, not attempts: called by the next
/// claim and by each roll, so they never pile up whatever the pattern of
/// use.
pub async fn clean_roll_claims(ssm: &Client, state_parameter: &str, now: u64) {
    let cutoff = now.saturating_sub(LATE_DELIVERY_SECS);
    match children(ssm, &format!("{state_parameter}/roll")).await {
        Ok(claims) => {
            let old: Vec<String> = claims
                .into_iter()
                .filter(|(_, value)| claimed_at(Some(value)) < cutoff)
                .map(|(name, _)| name)
                .collect();
            delete(ssm, &old).await;
        }
        Err(e) => tracing::warn!(error = %e, "could not list old roll claims"),
    }
}

/// How long what a delivery may still ask for is kept: Lambda may deliver
/// an event again up to 6 h later, and a run's later jobs came up to an
/// hour after its first.
pub const LATE_DELIVERY_SECS: u64 = 7 * 3600;

/// `DeleteParameters` in chunks of ten, best effort (missing names are fine).
pub async fn delete(ssm: &Client, names: &[String]) {
    for chunk in names.chunks(10) {
        if let Err(e) = ssm
            .delete_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
        {
            tracing::warn!(error = %Failure::from_sdk("ssm:DeleteParameters", e), "could not delete old records");
        }
    }
}

/// `GetParameter`, with "not found" as `None`.
pub async fn get(ssm: &Client, name: &str) -> Result<Option<String>, Failure> {
    match ssm.get_parameter().name(name).send().await {
        Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_parameter_not_found()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Failure::from_sdk("ssm:GetParameter", e)),
    }
}

/// `PutParameter` of a `String`; with `overwrite = false`, `Ok(false)` means
/// the parameter already existed (SSM's one compare-and-set). A parameter
/// SSM will not give a new version (a labelled oldest of its 100) is
/// [`Failure::VersionLimit`], naming it.
pub async fn put(ssm: &Client, name: &str, value: &str, overwrite: bool) -> Result<bool, Failure> {
    let result = ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::String)
        .overwrite(overwrite)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if !overwrite
                && e.as_service_error()
                    .is_some_and(|e| e.is_parameter_already_exists()) =>
        {
            Ok(false)
        }
        Err(e) => Err(Failure::version_limit(name, &e)
            .unwrap_or_else(|| Failure::from_sdk("ssm:PutParameter", e))),
    }
}

/// Records for tests of the modules that decide over them.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn record(deployment: &str, seq: u64, status: Status) -> State {
        State {
            deployment: deployment.into(),
            status,
            attempt: 1,
            task_arn: None,
            exit_code: None,
            failure_class: None,
            reruns: 0,
            started_at: None,
            finished_at: None,
            seq,
            job_id: "j".into(),
            action_job: "j".into(),
            tries: 1,
            container: None,
            reason: None,
            recent: Vec::new(),
            task_definition: None,
            image: None,
            image_set: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::record;
    use super::*;

    #[test]
    fn record_uses_the_spec_field_names() {
        let mut r = record("exec-1", 3, Status::Starting);
        r.started_at = Some("2026-01-01T00:00:00Z".into());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["deployment"], "exec-1");
        assert_eq!(json["status"], "starting");
        assert_eq!(json["attempt"], 1);
        assert_eq!(json["startedAt"], "2026-01-01T00:00:00Z");
        let done = r.finished(
            Status::Failed,
            Some(3),
            Some(FailureClass::Permanent),
            "later",
        );
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["exitCode"], 3);
        assert_eq!(json["failureClass"], "permanent");
        assert_eq!(json["finishedAt"], "later");
    }

    #[test]
    fn names_sort_by_number() {
        assert_eq!(attempt_name("/s", 7), "/s/a/0000000007");
        assert!(attempt_name("/s", 10) > attempt_name("/s", 9));
        assert_eq!(claim_name("/s", Claim::Reset, 2), "/s/reset/0000000002");
    }

    #[test]
    fn only_old_records_of_earlier_deployments_expire() {
        let mut records: Vec<State> = (1..=10)
            .map(|seq| record(&format!("d{seq}"), seq, Status::Succeeded))
            .collect();
        let now = 100_000;
        assert_eq!(expired(&records, now), vec![1, 2, 3, 4]);
        // The latest deployment's own records stay while a late copy of
        // their jobs may still come…
        for r in records.iter_mut().skip(2) {
            r.deployment = "d10".into();
            r.finished_at = Some("1970-01-02T03:46:40Z".into()); // now
        }
        assert_eq!(expired(&records, now), vec![1, 2]);
        // …and go once none can (finished over 7 h ago), but never the
        // newest KEEP nor an unfinished one.
        let later = now + LATE_DELIVERY_SECS + 1;
        records[2].status = Status::Running;
        assert_eq!(expired(&records, later), vec![1, 2, 4]);
        assert!(expired(&[], now).is_empty());
        assert_eq!(epoch_of(Some("1970-01-02T03:46:40Z")), Some(now));
    }

    #[test]
    fn recent_remembers_earlier_deployments_newest_first_and_bounded() {
        let mut top = record("a", 1, Status::Succeeded);
        assert!(recent_after(None, "a").is_empty());
        assert!(recent_after(Some(&top), "a").is_empty());
        top.recent = recent_after(Some(&top), "b");
        assert_eq!(top.recent, vec![deployment_key("a")]);
        top.deployment = "b".into();
        assert_eq!(
            recent_after(Some(&top), "c"),
            vec![deployment_key("b"), deployment_key("a")]
        );
        top.recent = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(recent_after(Some(&top), "c").len(), RECENT);
        assert_eq!(deployment_key("a").len(), 16);
    }
}
