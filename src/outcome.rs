//! What a task's status means for the pipeline: pure decisions over plain
//! data, no AWS.
//!
//! "Task is STOPPED with exit 137 and this was start attempt 2 of 3: what
//! now?" is answered here and tested with tables of cases.

use crate::task::TaskView;

/// The state of the migration, as far as the pipeline is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not stopped yet and within the timeout.
    Running { elapsed: u64, last_status: String },
    /// Still running past `timeoutSeconds`: stop it and fail.
    TimedOut { elapsed: u64 },
    /// The decisive container exited 0.
    Succeeded { duration: u64 },
    /// The decisive container exited non-zero: the migration failed.
    Failed {
        exit_code: i32,
        duration: u64,
        reason: String,
    },
    /// The task stopped without the decisive container ever exiting
    /// (`TaskFailedToStart`, or no exit code): a start failure.
    NotStarted { reason: String, transient: bool },
    /// The task stopped, but it has no container named like the decisive
    /// one (a hand-made continuation token, or a task started from another
    /// task definition): whether the migration ran cannot be told from it.
    /// Not a start failure — the task may well have run — and retrying
    /// the same token will not help. Words: [`container_missing_message`].
    ContainerMissing {
        /// The decisive container looked for.
        container: String,
        /// The containers the task has, sorted.
        containers: Vec<String>,
        /// The task's `stoppedReason`.
        reason: String,
    },
}

/// Classifies a task by its decisive `container` at `now` (epoch seconds).
/// Sidecars never decide. A missing exit code is never success.
pub fn classify(task: &TaskView, container: &str, timeout_secs: u64, now: f64) -> Outcome {
    let since = |t: Option<f64>, until: f64| t.map(|t| (until - t).max(0.0) as u64).unwrap_or(0);
    if task.last_status != "STOPPED" {
        let elapsed = since(task.created_at, now);
        return if elapsed >= timeout_secs {
            Outcome::TimedOut { elapsed }
        } else {
            Outcome::Running {
                elapsed,
                last_status: task.last_status.clone(),
            }
        };
    }
    let stopped_reason = task
        .stopped_reason
        .clone()
        .unwrap_or_else(|| "no reason given".into());
    let decisive = task.containers.get(container);
    let duration = since(
        task.started_at.or(task.created_at),
        task.stopped_at.unwrap_or(now),
    );
    let Some(decisive) = decisive else {
        return Outcome::ContainerMissing {
            container: container.to_owned(),
            containers: task.containers.keys().cloned().collect(),
            reason: stopped_reason,
        };
    };
    let exit_code = decisive.exit_code;
    match exit_code {
        Some(code) if task.stop_code.as_deref() != Some("TaskFailedToStart") => {
            if code == 0 {
                Outcome::Succeeded { duration }
            } else {
                Outcome::Failed {
                    exit_code: code,
                    duration,
                    reason: stopped_reason,
                }
            }
        }
        _ => {
            let reason = match decisive.reason.as_deref() {
                Some(why) => format!("{stopped_reason}; container `{container}`: {why}"),
                None => stopped_reason,
            };
            Outcome::NotStarted {
                transient: is_transient(&reason),
                reason,
            }
        }
    }
}

/// What the pipeline is told about [`Outcome::ContainerMissing`]: that
/// the task stopped, that it has no such container (and which it has), that
/// the migration's result is therefore unknown — never "could not start"
/// or "stopped before the migration ran", which may be untrue — and what
/// to do.
pub fn container_missing_message(
    task_id: &str,
    container: &str,
    containers: &[String],
    stopped_reason: &str,
) -> String {
    let has = match containers {
        [] => "no containers at all".to_owned(),
        names => {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("only {}", names.join(", "))
        }
    };
    format!(
        "Task {task_id} stopped ({stopped_reason}), but it has no container `{container}` to take the \
         migration's exit code from (it has {has}), so whether the migration succeeded is unknown. \
         The continuation token or the task definition names a container the task does not have: \
         check task {task_id} in ECS, then retry the stage."
    )
}

/// Words for a task's ECS `lastStatus` while it is not yet (or no longer)
/// running, for progress summaries ("Migration running for 41s (task …,
/// attempt 1, waiting for ECS to place it)"). `None` for `RUNNING` —
/// nothing to add — and for a status this version does not know (a caller
/// may show that one as it is).
///
/// Per ECS's task lifecycle: `PROVISIONING` prepares resources before the
/// launch (an `awsvpc` task's network interface), `PENDING` waits for the
/// container agent and available resources, `ACTIVATING` is where ECS
/// pulls the images, creates the containers and sets up networking, load
/// balancers and service discovery; `DEACTIVATING`, `STOPPING` and
/// `DEPROVISIONING` take the task down towards `STOPPED`.
pub fn progress_phrase(last_status: &str) -> Option<&'static str> {
    match last_status {
        "PROVISIONING" | "PENDING" => Some("waiting for ECS to place it"),
        "ACTIVATING" => Some("pulling the image and starting the containers"),
        "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => Some("stopping"),
        "STOPPED" => Some("stopped"),
        _ => None,
    }
}

/// Whether a start failure is worth another attempt: capacity, placement
/// resources, the agent, throttling. Anything else (bad image, missing
/// secret, bad network) will fail the same way again.
pub fn is_transient(reason: &str) -> bool {
    const MARKERS: &[&str] = &[
        "resource:",
        "agent",
        "capacity",
        "throttl",
        "rate exceeded",
        "toomanyrequests",
        "too many requests",
        "timeout waiting for network interface",
        "serviceunavailable",
        "service unavailable",
        "internal error",
    ];
    let reason = reason.to_ascii_lowercase();
    MARKERS.iter().any(|m| reason.contains(m))
}

/// After a failed start attempt: try again, or give up and say how.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterStartFailure {
    /// Hand back a continuation token and start the next attempt.
    Retry,
    /// Transient, but `maxStartAttempts` are used up: `SystemUnavailable`.
    Exhausted,
    /// Retrying will not help: `JobFailed`.
    Permanent,
}

/// `tries` counts the start attempts made in this action execution,
/// including the one that just failed.
pub fn after_start_failure(
    transient: bool,
    tries: u32,
    max_start_attempts: u32,
) -> AfterStartFailure {
    match (transient, tries < max_start_attempts) {
        (false, _) => AfterStartFailure::Permanent,
        (true, true) => AfterStartFailure::Retry,
        (true, false) => AfterStartFailure::Exhausted,
    }
}

/// `percentComplete` for a running task: elapsed share of the timeout,
/// never 100 before it is done.
pub fn percent(elapsed: u64, timeout_secs: u64) -> i32 {
    ((elapsed * 100) / timeout_secs.max(1)).min(99) as i32
}

/// `4m12s`, `41s`, `1h02m`.
pub fn human(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::ContainerView;

    fn task(status: &str, stop_code: Option<&str>, containers: &[(&str, Option<i32>)]) -> TaskView {
        TaskView {
            arn: "arn:aws:ecs:eu-west-1:1:task/c/abc".into(),
            last_status: status.into(),
            stop_code: stop_code.map(Into::into),
            stopped_reason: Some("Essential container in task exited".into()),
            created_at: Some(1000.0),
            started_at: Some(1010.0),
            stopped_at: Some(1051.0),
            containers: containers
                .iter()
                .map(|(name, code)| {
                    (
                        name.to_string(),
                        ContainerView {
                            exit_code: *code,
                            reason: None,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn classification_table() {
        let exited = Some("EssentialContainerExited");
        let cases = [
            (task("RUNNING", None, &[("app", None)]), 1100.0, "running"),
            (task("PENDING", None, &[("app", None)]), 1100.0, "running"),
            (
                task("RUNNING", None, &[("app", None)]),
                1000.0 + 3600.0,
                "timed out",
            ),
            (
                task("STOPPED", exited, &[("app", Some(0))]),
                1100.0,
                "succeeded",
            ),
            (
                task("STOPPED", exited, &[("app", Some(3))]),
                1100.0,
                "failed",
            ),
            (
                task("STOPPED", exited, &[("app", Some(137))]),
                1100.0,
                "failed",
            ),
            // The sidecar's exit code does not decide.
            (
                task("STOPPED", exited, &[("app", Some(0)), ("envoy", Some(1))]),
                1100.0,
                "succeeded",
            ),
            (
                task("STOPPED", exited, &[("app", Some(2)), ("envoy", Some(0))]),
                1100.0,
                "failed",
            ),
            // No exit code is never success.
            (
                task("STOPPED", exited, &[("app", None), ("envoy", Some(0))]),
                1100.0,
                "not started",
            ),
            (
                task("STOPPED", Some("TaskFailedToStart"), &[("app", None)]),
                1100.0,
                "not started",
            ),
            (
                task("STOPPED", Some("TaskFailedToStart"), &[("app", Some(0))]),
                1100.0,
                "not started",
            ),
            // The decisive container is not in the task: not a start failure.
            (
                task("STOPPED", exited, &[("envoy", Some(0))]),
                1100.0,
                "container missing",
            ),
            (
                task("STOPPED", Some("TaskFailedToStart"), &[("envoy", None)]),
                1100.0,
                "container missing",
            ),
        ];
        for (task, now, expected) in cases {
            let outcome = classify(&task, "app", 3600, now);
            let got = match outcome {
                Outcome::Running { .. } => "running",
                Outcome::TimedOut { .. } => "timed out",
                Outcome::Succeeded { .. } => "succeeded",
                Outcome::Failed { .. } => "failed",
                Outcome::NotStarted { .. } => "not started",
                Outcome::ContainerMissing { .. } => "container missing",
            };
            assert_eq!(got, expected, "{task:?} at {now}");
        }
    }

    #[test]
    fn durations_come_from_the_task_clock() {
        let done = task(
            "STOPPED",
            Some("EssentialContainerExited"),
            &[("app", Some(3))],
        );
        assert_eq!(
            classify(&done, "app", 3600, 9999.0),
            Outcome::Failed {
                exit_code: 3,
                duration: 41,
                reason: "Essential container in task exited".into()
            }
        );
        let running = task("RUNNING", None, &[("app", None)]);
        assert_eq!(
            classify(&running, "app", 3600, 1252.0),
            Outcome::Running {
                elapsed: 252,
                last_status: "RUNNING".into()
            }
        );
    }

    #[test]
    fn a_missing_decisive_container_is_named_with_what_the_task_has() {
        let done = task(
            "STOPPED",
            Some("EssentialContainerExited"),
            &[("web", Some(0)), ("envoy", Some(0))],
        );
        let outcome = classify(&done, "app", 3600, 1100.0);
        assert_eq!(
            outcome,
            Outcome::ContainerMissing {
                container: "app".into(),
                containers: vec!["envoy".into(), "web".into()],
                reason: "Essential container in task exited".into(),
            }
        );
        let cases: [(&[String], &str); 3] = [
            (&["web".into()], "it has only `web`"),
            (
                &["envoy".into(), "web".into()],
                "it has only `envoy`, `web`",
            ),
            (&[], "it has no containers at all"),
        ];
        for (containers, has) in cases {
            let text = container_missing_message(
                "abc",
                "app",
                containers,
                "Essential container in task exited",
            );
            assert!(text.contains(has), "{text}");
            assert!(
                text.starts_with(
                    "Task abc stopped (Essential container in task exited), but it has no container `app`"
                ),
                "{text}"
            );
            assert!(
                text.contains("unknown") && text.contains("retry the stage"),
                "{text}"
            );
            for untrue in ["could not start", "before the migration ran"] {
                assert!(!text.contains(untrue), "{text}");
            }
        }
    }

    #[test]
    fn progress_phrases_follow_the_ecs_task_lifecycle() {
        let cases = [
            ("PROVISIONING", Some("waiting for ECS to place it")),
            ("PENDING", Some("waiting for ECS to place it")),
            (
                "ACTIVATING",
                Some("pulling the image and starting the containers"),
            ),
            ("RUNNING", None),
            ("DEACTIVATING", Some("stopping")),
            ("STOPPING", Some("stopping")),
            ("DEPROVISIONING", Some("stopping")),
            ("STOPPED", Some("stopped")),
            ("SOMETHING_NEW", None),
            ("", None),
            ("pending", None),
        ];
        for (status, phrase) in cases {
            assert_eq!(progress_phrase(status), phrase, "{status}");
        }
    }

    #[test]
    fn transient_start_failures() {
        for reason in [
            "RESOURCE:MEMORY",
            "RESOURCE:ENI",
            "AGENT",
            "Capacity is unavailable at this time. Please try again later or in a different availability zone",
            "ecs:RunTask failed: ThrottlingException: Rate exceeded",
            "Timeout waiting for network interface provisioning to complete.",
        ] {
            assert!(is_transient(reason), "{reason}");
        }
        for reason in [
            "CannotPullContainerError: pull image manifest has been retried 1 time(s): not found",
            "ResourceInitializationError: unable to pull secrets",
            "ATTRIBUTE",
            "MISSING",
            "Task stopped by user",
        ] {
            assert!(!is_transient(reason), "{reason}");
        }
    }

    #[test]
    fn start_retries_are_bounded() {
        use AfterStartFailure::*;
        assert_eq!(after_start_failure(true, 1, 3), Retry);
        assert_eq!(after_start_failure(true, 2, 3), Retry);
        assert_eq!(after_start_failure(true, 3, 3), Exhausted);
        assert_eq!(after_start_failure(false, 1, 3), Permanent);
        assert_eq!(after_start_failure(true, 1, 1), Exhausted);
    }

    #[test]
    fn percent_and_human_durations() {
        assert_eq!(percent(0, 3600), 0);
        assert_eq!(percent(1800, 3600), 50);
        assert_eq!(percent(5000, 3600), 99);
        assert_eq!(human(41), "41s");
        assert_eq!(human(252), "4m12s");
        assert_eq!(human(3720), "1h02m");
    }
}
