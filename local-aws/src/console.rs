//! The console printer: what a person watching the CodePipeline console
//! would see while the action runs — "In progress" with percentage and
//! summary on each report, then "Succeeded" with the output variables, or
//! "Failed" with the failure type and message.
//!
//! Colour only when stdout is a terminal.

use crate::codepipeline::JobReport;
use crate::pipeline_driver::{ActionEvent, ActionResult, ActionStatus, Observer};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Output variables in the order a reader wants them; others follow.
const VARIABLE_ORDER: [&str; 6] = [
    "TaskArn",
    "ExitCode",
    "Deployment",
    "Attempts",
    "DurationSeconds",
    "LogStream",
];

/// Text width of wrapped messages (after the indent).
const WIDTH: usize = 96;

/// Splits `text` into lines of at most `width` characters at spaces
/// (longer words stay whole); existing line breaks are kept.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

/// Prints action events as console lines.
pub struct Console {
    color: bool,
    started: Mutex<Instant>,
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn clock(d: Duration) -> String {
    let tenths = d.as_millis() / 100;
    format!(
        "{:02}:{:02}.{}",
        tenths / 600,
        (tenths / 10) % 60,
        tenths % 10
    )
}

fn short(id: &str) -> String {
    if id.chars().count() > 8 {
        format!("{}…", id.chars().take(4).collect::<String>())
    } else {
        id.to_string()
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new(std::io::stdout().is_terminal())
    }
}

impl Console {
    /// A printer; `color` adds ANSI colours.
    pub fn new(color: bool) -> Self {
        Console {
            color,
            started: Mutex::new(crate::clock::instant()),
        }
    }

    /// The printer as a driver observer, writing to stdout.
    pub fn observer(self) -> Observer {
        let console = Arc::new(self);
        Arc::new(move |event: &ActionEvent| {
            let text = console.render(event);
            if !text.is_empty() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
        })
    }

    fn elapsed(&self) -> Duration {
        self.started
            .lock()
            .map(|s| crate::clock::instant().saturating_duration_since(*s))
            .unwrap_or_default()
    }

    /// The lines for one event (empty for events a person would not see).
    pub fn render(&self, event: &ActionEvent) -> String {
        let s = Style { on: self.color };
        match event {
            ActionEvent::Started {
                pipeline,
                stage,
                action,
                execution_id,
            } => {
                if let Ok(mut started) = self.started.lock() {
                    *started = crate::clock::instant();
                }
                format!(
                    "{} {}   {}\n",
                    s.paint("1;34", "▶"),
                    s.paint("1", &format!("{pipeline} · {stage} · {action}")),
                    s.paint("2", &format!("(execution {})", short(execution_id)))
                )
            }
            ActionEvent::JobCreated { .. } => String::new(),
            ActionEvent::Reported(r) if r.success && r.continuation_token.is_some() => {
                self.progress_line(&s, r)
            }
            ActionEvent::Reported(_) => String::new(),
            ActionEvent::Finished(result) => self.final_lines(&s, result),
        }
    }

    fn progress_line(&self, s: &Style, r: &JobReport) -> String {
        let percent = r
            .percent_complete
            .map(|p| format!("{p:>3}%"))
            .unwrap_or_else(|| "    ".into());
        format!(
            "  {}  {}  {}  {}\n",
            s.paint("2", &clock(self.elapsed())),
            s.paint("36", &format!("{:<11}", "In progress")),
            percent,
            r.summary.as_deref().unwrap_or("")
        )
    }

    fn final_lines(&self, s: &Style, result: &ActionResult) -> String {
        let time = s.paint("2", &clock(self.elapsed()));
        let indent = " ".repeat(11);
        let mut out = String::new();
        match result.status {
            ActionStatus::Succeeded => {
                out.push_str(&format!(
                    "  {time}  {}        {}\n",
                    s.paint("1;32", &format!("{:<11}", "Succeeded")),
                    result.summary.as_deref().unwrap_or("")
                ));
                let mut vars: Vec<(String, String)> = VARIABLE_ORDER
                    .iter()
                    .filter_map(|k| {
                        result
                            .output_variables
                            .get(*k)
                            .map(|v| (k.to_string(), v.clone()))
                    })
                    .collect();
                vars.extend(
                    result
                        .output_variables
                        .iter()
                        .filter(|(k, _)| !VARIABLE_ORDER.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
                let mut line = String::new();
                for (k, v) in vars {
                    let item = format!("{k} = {v}");
                    if !line.is_empty() && line.chars().count() + item.chars().count() > WIDTH {
                        out.push_str(&format!("{indent}{}\n", s.paint("2", &line)));
                        line.clear();
                    }
                    if !line.is_empty() {
                        line.push_str(" · ");
                    }
                    line.push_str(&item);
                }
                if !line.is_empty() {
                    out.push_str(&format!("{indent}{}\n", s.paint("2", &line)));
                }
            }
            status => {
                let kind = match status {
                    ActionStatus::Failed => result.failure_type.clone().unwrap_or_default(),
                    ActionStatus::TimedOut => "Timed out".into(),
                    _ => "No report".into(),
                };
                out.push_str(&format!(
                    "  {time}  {}        {}\n",
                    s.paint("1;31", &format!("{:<11}", "Failed")),
                    s.paint("31", &kind),
                ));
                for line in wrap(result.message.as_deref().unwrap_or(""), WIDTH) {
                    out.push_str(&format!("{indent}{line}\n"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn progress_and_success_read_like_the_console() {
        let c = Console::new(false);
        let start = c.render(&ActionEvent::Started {
            pipeline: "app-pipeline".into(),
            stage: "Migrate".into(),
            action: "RunMigration".into(),
            execution_id: "6c1f0e52-aaaa".into(),
        });
        assert_eq!(
            start,
            "▶ app-pipeline · Migrate · RunMigration   (execution 6c1f…)\n"
        );
        let line = c.render(&ActionEvent::Reported(JobReport {
            success: true,
            continuation_token: Some("t".into()),
            percent_complete: Some(12),
            summary: Some("Migration running for 0m01s".into()),
            ..Default::default()
        }));
        assert!(
            line.contains("In progress   12%  Migration running for 0m01s"),
            "{line}"
        );
        let mut vars = BTreeMap::new();
        vars.insert("ExitCode".to_string(), "0".to_string());
        vars.insert("TaskArn".to_string(), "arn:x".to_string());
        let done = c.render(&ActionEvent::Finished(Box::new(ActionResult {
            execution_id: "e".into(),
            status: ActionStatus::Succeeded,
            failure_type: None,
            message: None,
            summary: Some("Migration finished".into()),
            output_variables: vars,
            reports: vec![],
            jobs: vec![],
            task_arns: vec![],
            invocations: vec![],
            elapsed: Duration::ZERO,
        })));
        assert!(
            done.contains("Succeeded") && done.contains("TaskArn = arn:x · ExitCode = 0"),
            "{done}"
        );
    }

    #[test]
    fn long_messages_wrap_at_spaces() {
        let lines = wrap("aaa bbb ccc\nddd", 7);
        assert_eq!(lines, vec!["aaa bbb", "ccc", "ddd"]);
    }

    #[test]
    fn clock_formats_minutes_seconds_tenths() {
        assert_eq!(clock(Duration::from_millis(64_150)), "01:04.1");
    }
}
