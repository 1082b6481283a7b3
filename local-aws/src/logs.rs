//! CloudWatch Logs: the `awslogs` streams of the scripted tasks, read with
//! `GetLogEvents` (awsJson1_1, target prefix `Logs_20140328`).
//!
//! There is no state of its own: a log group exists when a task definition
//! container names it (`logGroup`), and the stream
//! `<logStreamPrefix>/<container>/<task id>` exists once the task has been
//! seen `RUNNING` (the container started). Its lines are the outcome's
//! `logLines` for that container, present once the task has stopped or a
//! stop was requested — the migration has printed them by then.
//!
//! Paging is by position: `nextForwardToken` `f/<n>` and `nextBackwardToken`
//! `b/<n>`, and a page at the end of the stream hands back the same token,
//! as AWS does.

use crate::ecs_task::Task;
use crate::scenario::TaskDefinitionSpec;
use crate::wire::{ApiError, Input, OpResult};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `limit` bounds of `GetLogEvents`.
const MAX_LIMIT: i64 = 10_000;

/// One event of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// The line.
    pub message: String,
}

/// Dispatches one CloudWatch Logs operation over the scripted tasks.
pub fn handle(
    operation: &str,
    input: &Value,
    definitions: &[TaskDefinitionSpec],
    tasks: &[Task],
) -> OpResult {
    match operation {
        "GetLogEvents" => get_log_events(Input(input), definitions, tasks),
        other => Err(ApiError::client(
            "UnknownOperationException",
            format!("the local control plane does not implement Logs_20140328.{other}"),
        )),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterException", message)
}

fn not_found(message: &str) -> ApiError {
    ApiError::client("ResourceNotFoundException", message)
}

/// A log group name from `logGroupName` or `logGroupIdentifier` (name or ARN).
fn group_name(i: Input) -> Result<String, ApiError> {
    match (i.opt_str("logGroupName")?, i.opt_str("logGroupIdentifier")?) {
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (Some(name), None) => Ok(name.to_string()),
        (None, Some(id)) => Ok(match id.split_once(":log-group:") {
            Some((_, rest)) => rest.trim_end_matches(":*").to_string(),
            None => id.to_string(),
        }),
        (None, None) => Err(invalid(
            "Either LogGroupName or LogGroupIdentifier should be provided.",
        )),
    }
}

/// The events of `group`/`stream`, or the error AWS gives when either is
/// missing.
pub fn stream_events(
    definitions: &[TaskDefinitionSpec],
    tasks: &[Task],
    group: &str,
    stream: &str,
) -> Result<Vec<LogEvent>, ApiError> {
    let group_exists = definitions
        .iter()
        .flat_map(|d| &d.containers)
        .any(|c| c.log_group.as_deref() == Some(group));
    if !group_exists {
        return Err(not_found("The specified log group does not exist."));
    }
    for task in tasks {
        for container in &task.definition.containers {
            let (Some(g), Some(prefix)) = (&container.log_group, &container.log_stream_prefix)
            else {
                continue;
            };
            if g != group || format!("{prefix}/{}/{}", container.name, task.id) != stream {
                continue;
            }
            let Some((started, _)) = task.started.or_else(|| {
                task.stopped
                    .as_ref()
                    .map(|(_, at, instant)| (*at, *instant))
            }) else {
                break;
            };
            let printed = task.stopped.is_some() || task.stop_requested.is_some();
            let lines = task
                .outcome
                .log_lines
                .get(&container.name)
                .filter(|_| printed)
                .cloned()
                .unwrap_or_default();
            let start = millis(started);
            return Ok(lines
                .into_iter()
                .enumerate()
                .map(|(n, message)| LogEvent {
                    timestamp: start + n as i64,
                    message,
                })
                .collect());
        }
    }
    Err(not_found("The specified log stream does not exist."))
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

/// A paging token: `f/<n>` or `b/<n>`, a position in the stream.
fn parse_token(token: &str, len: usize) -> Result<(bool, usize), ApiError> {
    let bad = || invalid("The specified nextToken is invalid.");
    let (forward, n) = match token.split_once('/') {
        Some(("f", n)) => (true, n),
        Some(("b", n)) => (false, n),
        _ => return Err(bad()),
    };
    let n: usize = n.parse().map_err(|_| bad())?;
    Ok((forward, n.min(len)))
}

fn get_log_events(i: Input, definitions: &[TaskDefinitionSpec], tasks: &[Task]) -> OpResult {
    let group = group_name(i)?;
    let stream = i.str("logStreamName")?;
    let limit = i.opt_i64("limit")?.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {MAX_LIMIT}"
        )));
    }
    let limit = limit as usize;
    let from_head = i.opt_bool("startFromHead")?.unwrap_or(false);
    let events = stream_events(definitions, tasks, &group, stream)?;
    let len = events.len();
    let (start, end) = match i.opt_str("nextToken")? {
        Some(token) => match parse_token(token, len)? {
            (true, n) => (n, (n + limit).min(len)),
            (false, n) => (n.saturating_sub(limit), n),
        },
        None if from_head => (0, limit.min(len)),
        None => (len.saturating_sub(limit), len),
    };
    let ingestion = millis(crate::clock::now());
    let page: Vec<Value> = events[start..end]
        .iter()
        .map(|e| {
            json!({
                "timestamp": e.timestamp,
                "message": e.message,
                "ingestionTime": ingestion.max(e.timestamp),
            })
        })
        .collect();
    Ok(json!({
        "events": page,
        "nextForwardToken": format!("f/{end}"),
        "nextBackwardToken": format!("b/{start}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs_task::RunParameters;
    use crate::scenario::TaskOutcome;

    fn definition() -> TaskDefinitionSpec {
        serde_json::from_value(json!({
            "family": "app-migrate",
            "containers": [
                {"name": "app", "logGroup": "/ecs/app-migrate", "logStreamPrefix": "migrate"},
                {"name": "sidecar"}
            ]
        }))
        .unwrap()
    }

    fn task(lines: &[&str]) -> Task {
        let outcome = TaskOutcome {
            timeline: vec!["PENDING".into(), "RUNNING".into()],
            log_lines: [(
                "app".to_string(),
                lines.iter().map(|l| l.to_string()).collect(),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        Task::new(
            "arn:aws:ecs:us-east-1:123456789012:task/app/abc".into(),
            "abc".into(),
            "app".into(),
            "arn:aws:ecs:us-east-1:123456789012:cluster/app".into(),
            definition(),
            "arn:aws:ecs:us-east-1:123456789012:task-definition/app-migrate:1".into(),
            outcome,
            RunParameters::default(),
            None,
        )
    }

    fn call(body: Value, tasks: &[Task]) -> OpResult {
        handle("GetLogEvents", &body, &[definition()], tasks)
    }

    fn messages(out: &Value) -> Vec<&str> {
        out["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_stream_has_the_scripted_lines_once_the_task_stopped() {
        let mut t = task(&["one", "two", "three"]);
        let body = json!({"logGroupName": "/ecs/app-migrate", "logStreamName": "migrate/app/abc"});
        // Started (RUNNING) but still running: the stream exists, empty.
        t.refresh(true);
        assert!(t.started.is_some());
        assert!(messages(&call(body.clone(), &[t.clone()]).unwrap()).is_empty());
        t.refresh(true);
        assert!(t.stopped.is_some());
        let out = call(body, &[t]).unwrap();
        assert_eq!(messages(&out), ["one", "two", "three"]);
        let e = &out["events"][0];
        assert!(e["timestamp"].is_i64() && e["ingestionTime"].is_i64());
        assert_eq!(out["nextForwardToken"], "f/3");
        assert_eq!(out["nextBackwardToken"], "b/0");
    }

    #[test]
    fn the_tail_is_read_backwards_with_a_limit_and_pages() {
        let mut t = task(&["1", "2", "3", "4", "5"]);
        t.refresh(true);
        t.request_stop("stop");
        let tasks = [t];
        let tail = call(
            json!({"logGroupName": "/ecs/app-migrate", "logStreamName": "migrate/app/abc",
                   "startFromHead": false, "limit": 2}),
            &tasks,
        )
        .unwrap();
        assert_eq!(messages(&tail), ["4", "5"]);
        let before = call(
            json!({"logGroupName": "/ecs/app-migrate", "logStreamName": "migrate/app/abc",
                   "limit": 2, "nextToken": tail["nextBackwardToken"]}),
            &tasks,
        )
        .unwrap();
        assert_eq!(messages(&before), ["2", "3"]);
        let head = call(
            json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/app-migrate:*",
                   "logStreamName": "migrate/app/abc", "startFromHead": true, "limit": 2}),
            &tasks,
        )
        .unwrap();
        assert_eq!(messages(&head), ["1", "2"]);
    }

    #[test]
    fn missing_groups_and_streams_are_resource_not_found() {
        let mut t = task(&["x"]);
        t.refresh(true);
        let tasks = || [t.clone()];
        let no_group = call(
            json!({"logGroupName": "/ecs/other", "logStreamName": "migrate/app/abc"}),
            &tasks(),
        )
        .unwrap_err();
        assert_eq!(no_group.code, "ResourceNotFoundException");
        assert!(no_group.message.contains("log group"));
        let no_stream = call(
            json!({"logGroupName": "/ecs/app-migrate", "logStreamName": "migrate/app/nope"}),
            &tasks(),
        )
        .unwrap_err();
        assert!(no_stream.message.contains("log stream"));
        // Before the container started there is no stream either.
        let before = task(&["x"]);
        assert!(before.started.is_none() && before.stopped.is_none());
        assert_eq!(
            call(
                json!({"logGroupName": "/ecs/app-migrate", "logStreamName": "migrate/app/abc"}),
                &[before]
            )
            .unwrap_err()
            .code,
            "ResourceNotFoundException"
        );
        let bad_limit = call(
            json!({"logGroupName": "/ecs/app-migrate", "logStreamName": "migrate/app/abc", "limit": 0}),
            &tasks(),
        )
        .unwrap_err();
        assert_eq!(bad_limit.code, "InvalidParameterException");
    }
}
