//! What the pipeline reads: the success report with its output variables,
//! failure messages, the log pointer. Pure, apart from the region name.

use std::collections::BTreeMap;

use aws_smithy_types::date_time::{DateTime, Format};

use crate::failure::Failure;
use crate::outcome;
use crate::report::Report;
use crate::state::{State, Status};
use crate::task::{self, Container};

/// The report for a succeeded record, with the SPEC §4 output variables.
pub fn success(record: &State, container: &Container, duration: Option<u64>) -> Report {
    let task_arn = record.task_arn.clone().unwrap_or_default();
    let task_id = task::task_id(&task_arn).to_owned();
    let duration = duration.or_else(|| {
        let parse = |t: &Option<String>| DateTime::from_str(t.as_deref()?, Format::DateTime).ok();
        Some((parse(&record.finished_at)?.secs() - parse(&record.started_at)?.secs()).max(0) as u64)
    });
    let mut outputs = BTreeMap::from([
        ("TaskArn".to_owned(), task_arn.clone()),
        (
            "ExitCode".to_owned(),
            record.exit_code.unwrap_or(0).to_string(),
        ),
        ("Deployment".to_owned(), record.deployment.clone()),
        ("Attempts".to_owned(), record.attempt.to_string()),
    ]);
    if let Some(duration) = duration {
        outputs.insert("DurationSeconds".into(), duration.to_string());
    }
    if let Some(stream) = log_stream(container, &task_id) {
        outputs.insert("LogStream".into(), stream);
    }
    if let Some(arn) = &record.task_definition {
        outputs.insert("TaskDefinitionArn".into(), arn.clone());
    }
    if let Some(image) = &record.image {
        outputs.insert("Image".into(), image.clone());
    }
    Report::Succeeded {
        summary: format!(
            "Migration finished: container `{}` exited 0{} (task {task_id}, attempt {}{})",
            container.name,
            duration
                .map(|d| format!(" after {}", outcome::human(d)))
                .unwrap_or_default(),
            record.attempt,
            record
                .image
                .as_deref()
                .map(|i| format!(", image {i}"))
                .unwrap_or_default()
        ),
        task_arn: Some(task_arn),
        outputs,
    }
}

/// How the summary of an already applied migration starts.
pub const ALREADY_APPLIED: &str = "Already applied";

/// The success report of a deployment whose migration already succeeded.
pub fn already_applied(record: &State, container: &Container) -> Report {
    let mut report = success(record, container, None);
    if let Report::Succeeded { summary, .. } = &mut report {
        *summary = format!(
            "{ALREADY_APPLIED}: deployment {} migrated successfully in attempt {}; not run again (rerun: once)",
            record.deployment, record.attempt
        );
    }
    report
}

/// The outcome a finished record reports again (a repeated delivery).
pub fn replay(record: &State, container: &Container) -> Result<Report, Failure> {
    match record.status {
        Status::Succeeded => Ok(success(record, container, None)),
        _ => Err(Failure::Job(format!(
            "Migration attempt {} of deployment {} already failed{} (task {}){}.",
            record.attempt,
            record.deployment,
            record
                .exit_code
                .map(|c| format!(" with exit code {c}"))
                .unwrap_or_default(),
            record
                .task_arn
                .as_deref()
                .map(task::task_id)
                .unwrap_or("none"),
            record
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
        ))),
    }
}

/// `<prefix>/<container>/<task id>`: the decisive container's log stream.
pub fn log_stream(container: &Container, task_id: &str) -> Option<String> {
    let (_, prefix) = container.logs.as_ref()?;
    Some(format!("{prefix}/{}/{task_id}", container.name))
}

/// Where the decisive container's logs are, as a sentence.
pub fn log_pointer(container: &Container, task_id: &str) -> String {
    match (&container.logs, log_stream(container, task_id)) {
        (Some((group, _)), Some(stream)) => {
            let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
            format!(
                "Logs: group {group}, stream {stream} (https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}/log-events/{}).",
                console_escape(group),
                console_escape(&stream)
            )
        }
        _ => format!(
            "Container `{}` does not log with awslogs and a stream prefix, so no log link is known.",
            container.name
        ),
    }
}

/// The CloudWatch console's double escaping of path parts (`/` → `$252F`).
fn console_escape(part: &str) -> String {
    part.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' => c.to_string(),
            other => {
                let mut buf = [0; 4];
                other
                    .encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("$25{b:02X}"))
                    .collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_links_escape_like_the_console() {
        assert_eq!(console_escape("/ecs/app"), "$252Fecs$252Fapp");
        assert_eq!(
            console_escape("migrate/app/0a1b"),
            "migrate$252Fapp$252F0a1b"
        );
    }

    #[test]
    fn the_log_stream_is_named_in_one_place() {
        let logged = Container {
            name: "app".into(),
            logs: Some(("/ecs/app".into(), "migrate".into())),
        };
        assert_eq!(
            log_stream(&logged, "0a1b").as_deref(),
            Some("migrate/app/0a1b")
        );
        assert!(log_pointer(&logged, "0a1b").contains("stream migrate/app/0a1b"));
        let silent = Container {
            name: "app".into(),
            logs: None,
        };
        assert_eq!(log_stream(&silent, "0a1b"), None);
    }
}
