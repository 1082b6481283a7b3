//! The per-deployment state record in SSM (SPEC §5), and what a start makes
//! of it.
//!
//! The record is the memory that survives crashes and retries: it says which
//! deployment last ran (or is running) the migration, which attempt, on which
//! task, and how it ended. [`plan_start`] is the pure decision "given the
//! record, what does a new start invocation do?" — it is where "at most once
//! per deployment" is decided.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use serde::{Deserialize, Serialize};

use crate::config::Rerun;
use crate::failure::Failure;

/// Where the deployment's migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Running,
    Succeeded,
    Failed,
}

/// Whether a failure is worth an automatic rerun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    Transient,
    Permanent,
}

/// The JSON value of the state parameter.
///
/// `jobId` (the CodePipeline job that started the current attempt) and
/// `eventId` are our additions to the SPEC's fields: the first tells a
/// duplicate delivery of that job (resume, never start again) from a stage
/// retry (a new job: new attempt); the second makes EventBridge-driven
/// reruns and stops happen once per event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub deployment: String,
    pub status: Status,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The last EventBridge event acted on, so a second delivery of the same
    /// event does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl State {
    /// The record of a new attempt that is about to call RunTask.
    pub fn starting(deployment: &str, attempt: u32, reruns: u32, job_id: &str, now: &str) -> State {
        State {
            deployment: deployment.to_owned(),
            status: Status::Starting,
            attempt,
            task_arn: None,
            exit_code: None,
            failure_class: None,
            reruns,
            started_at: Some(now.to_owned()),
            finished_at: None,
            job_id: Some(job_id.to_owned()),
            event_id: None,
        }
    }

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
}

/// What a start invocation does, given the state record.
#[derive(Debug, Clone, PartialEq)]
pub enum StartPlan {
    /// This deployment's migration already succeeded and `rerun` is `once`.
    AlreadySucceeded(State),
    /// This deployment's task is running: watch it, never start another.
    Watch { attempt: u32, task_arn: String },
    /// This job already finished its attempt (a duplicate delivery): report
    /// the recorded outcome again.
    Replay(State),
    /// Call RunTask for `attempt`. When the record says `starting` for the
    /// same attempt, this is a resumption after a crash, and the repeated
    /// `clientToken` makes ECS return the task it may already have started.
    Run { attempt: u32, reruns: u32 },
}

/// Decides how a start goes on from the state record (`None`: no record yet).
///
/// The attempt number never restarts for the same deployment, so every
/// RunTask attempt gets its own `clientToken`.
pub fn plan_start(
    state: Option<&State>,
    deployment: &str,
    job_id: &str,
    rerun: Rerun,
) -> StartPlan {
    let Some(state) = state.filter(|s| s.deployment == deployment) else {
        return StartPlan::Run {
            attempt: 1,
            reruns: 0,
        };
    };
    let same_job = state.job_id.as_deref() == Some(job_id);
    match state.status {
        Status::Succeeded if rerun == Rerun::Once => StartPlan::AlreadySucceeded(state.clone()),
        Status::Running => match &state.task_arn {
            Some(task_arn) => StartPlan::Watch {
                attempt: state.attempt,
                task_arn: task_arn.clone(),
            },
            None => StartPlan::Run {
                attempt: state.attempt,
                reruns: state.reruns,
            },
        },
        Status::Starting => StartPlan::Run {
            attempt: state.attempt,
            reruns: state.reruns,
        },
        Status::Succeeded | Status::Failed if same_job => StartPlan::Replay(state.clone()),
        Status::Succeeded | Status::Failed => StartPlan::Run {
            attempt: state.attempt + 1,
            reruns: state.reruns,
        },
    }
}

/// Reads the state record; `None` when the parameter does not exist.
///
/// A parameter that exists but is not a record of ours is a configuration
/// error: overwriting it could destroy someone's data.
pub async fn read(ssm: &Client, name: &str) -> Result<Option<State>, Failure> {
    let Some(value) = get(ssm, name).await? else {
        return Ok(None);
    };
    serde_json::from_str(&value).map(Some).map_err(|e| {
        Failure::Configuration(format!(
            "state parameter `{name}` holds a value that is not a migrate-once state record ({e}); \
             set `stateParameter` to a name of its own, or delete the parameter if it is stale"
        ))
    })
}

/// Writes the state record (overwriting: only the lock holder writes it).
pub async fn write(ssm: &Client, name: &str, state: &State) -> Result<(), Failure> {
    let value = serde_json::to_string(state).expect("state serialises");
    put(ssm, name, &value, true).await.map(|_| ())
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
/// the parameter already existed (SSM's one compare-and-set).
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
        Err(e) => Err(Failure::from_sdk("ssm:PutParameter", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(deployment: &str, status: Status, attempt: u32, job: &str) -> State {
        State {
            task_arn: Some("arn:task/1".into()),
            ..State::starting(deployment, attempt, 0, job, "2026-01-01T00:00:00Z")
        }
        .finished(status, None, None, "2026-01-01T00:01:00Z")
    }

    #[test]
    fn start_plans() {
        use Status::*;
        let once = Rerun::Once;
        let cases: Vec<(Option<State>, Rerun, StartPlan)> = vec![
            (
                None,
                once,
                StartPlan::Run {
                    attempt: 1,
                    reruns: 0,
                },
            ),
            (
                Some(state("other", Running, 4, "j0")),
                once,
                StartPlan::Run {
                    attempt: 1,
                    reruns: 0,
                },
            ),
            (
                Some(state("d", Succeeded, 2, "j0")),
                once,
                StartPlan::AlreadySucceeded(state("d", Succeeded, 2, "j0")),
            ),
            (
                Some(state("d", Succeeded, 2, "j0")),
                Rerun::Always,
                StartPlan::Run {
                    attempt: 3,
                    reruns: 0,
                },
            ),
            (
                Some(state("d", Running, 2, "j0")),
                once,
                StartPlan::Watch {
                    attempt: 2,
                    task_arn: "arn:task/1".into(),
                },
            ),
            (
                Some(state("d", Starting, 2, "j0")),
                once,
                StartPlan::Run {
                    attempt: 2,
                    reruns: 0,
                },
            ),
            // A stage retry (new job) after a failure: next attempt.
            (
                Some(state("d", Failed, 2, "j0")),
                once,
                StartPlan::Run {
                    attempt: 3,
                    reruns: 0,
                },
            ),
            // The same job again after it failed: a duplicate, never a new task.
            (
                Some(state("d", Failed, 2, "j1")),
                once,
                StartPlan::Replay(state("d", Failed, 2, "j1")),
            ),
            (
                Some(state("d", Succeeded, 2, "j1")),
                Rerun::Always,
                StartPlan::Replay(state("d", Succeeded, 2, "j1")),
            ),
        ];
        for (record, rerun, expected) in cases {
            assert_eq!(
                plan_start(record.as_ref(), "d", "j1", rerun),
                expected,
                "{record:?}"
            );
        }
    }

    #[test]
    fn record_uses_the_spec_field_names() {
        let record = State::starting("exec-1", 1, 0, "job-1", "2026-01-01T00:00:00Z");
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["deployment"], "exec-1");
        assert_eq!(json["status"], "starting");
        assert_eq!(json["attempt"], 1);
        assert_eq!(json["startedAt"], "2026-01-01T00:00:00Z");
        let done = record.finished(
            Status::Failed,
            Some(3),
            Some(FailureClass::Permanent),
            "later",
        );
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["exitCode"], 3);
        assert_eq!(json["failureClass"], "permanent");
    }
}
