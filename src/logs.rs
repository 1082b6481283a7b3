//! The migration's own last log lines, for the message of a failed action.
//!
//! When a migration exits non-zero or times out, the first thing a person
//! wants is what it printed last ("rake aborted! … relation \"users\" does
//! not exist"), right in the pipeline, not three clicks away. [`last_lines`]
//! reads the tail of the decisive container's `awslogs` stream with one
//! `GetLogEvents` call and turns it into a short excerpt.
//!
//! Best effort by design: the outcome is already decided (the task exited
//! or timed out), so a log read that fails — denied, missing stream,
//! throttled — never changes the failure type; the excerpt then says in a
//! few words why the lines could not be read.
//!
//! The lines are the migration's output and may hold whatever it printed
//! (a connection string, a password in a failed `psql` command line): they
//! go to the user's own pipeline, and are never logged by this function,
//! whose log group has other readers. [`last_lines`] returns them wrapped
//! in [`QUOTE_OPEN`] … [`QUOTE_CLOSE`]; whatever carries the sentence on
//! (a [`Failure`](crate::failure::Failure), a
//! [`Report`](crate::report::Report)) shows it [`redact`]ed in its `Display`
//! and log lines, and only the report sent to the pipeline [`unquote`]s it.
//! The markers are control characters, which [`excerpt`] removes from every
//! line, so a migration cannot print its way out of the quote.
//!
//! What the pipeline may not see either is what the SPEC calls secret: the
//! values of the environment overrides (§3, "never logged or echoed") and
//! the job's artifact credentials (§4a). A migration that fails on its
//! database connection prints exactly those (`password=…`, a connection
//! string), so every line is masked with [`Secrets`] before it is quoted.

use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::config::Config;
use crate::event::Job;
use crate::failure::is_throttling;
use crate::task::Container;

/// How many of the newest lines are asked for.
pub const MAX_LINES: i32 = 20;
/// Most characters of the excerpt, separators included, so the whole failure
/// message stays well within CodePipeline's 5000.
pub const MAX_EXCERPT: usize = 1500;
/// Most characters kept of one line (its start: that is where the error is).
pub const MAX_LINE: usize = 500;
/// How long the read may take before the report goes out without it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two lines of the excerpt, which is one line of text.
const SEPARATOR: &str = " | ";
/// Opens the migration's own lines inside a message (STX: "start of text").
pub const QUOTE_OPEN: char = '\u{2}';
/// Closes them (ETX: "end of text").
pub const QUOTE_CLOSE: char = '\u{3}';
/// What the function's own log shows instead of the quoted lines.
pub const REDACTED: &str =
    "Last log lines: (not in the function's log; see the pipeline's failure message).";

/// What stands in a quoted line for a secret it held.
pub const MASK: &str = "***";
/// Values shorter than this are not masked: no credential is that short,
/// and masking `1` or `on` would blank every digit and word of the lines.
const MIN_SECRET: usize = 4;

/// The texts no quoted line may show, in every form a line is likely to
/// carry them: as they are, line by line (a multi-line value printed over
/// several log events) and percent-encoded (a password in a connection
/// URL). Longest first, so that a value holding a shorter one is masked
/// whole. `Debug` shows how many, never what.
#[derive(Clone, Default)]
pub struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} forms)", self.0.len())
    }
}

impl Secrets {
    /// Masks `values` (and their other forms).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Secrets {
        let mut forms: Vec<String> = Vec::new();
        for value in values {
            let lines = value.lines().map(str::trim);
            let encoded = percent_encoded(value);
            let lower = encoded.to_ascii_lowercase();
            for form in std::iter::once(value)
                .chain(lines)
                .chain([encoded.as_str(), lower.as_str()])
            {
                if form.chars().count() >= MIN_SECRET && !forms.iter().any(|f| f == form) {
                    forms.push(form.to_owned());
                }
            }
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Secrets(forms)
    }

    /// What an action's migration may print that the pipeline must not
    /// read: its environment override values and the job's artifact
    /// credentials.
    pub fn of(config: &Config, job: &Job) -> Secrets {
        let overrides = config.environment.0.values().map(String::as_str);
        let credentials = job.data.artifact_credentials.iter().flat_map(|c| {
            [
                Some(c.access_key_id.as_str()),
                Some(c.secret_access_key.as_str()),
                c.session_token.as_deref(),
            ]
            .into_iter()
            .flatten()
        });
        Secrets::new(overrides.chain(credentials))
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn hide(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for form in &self.0 {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), MASK);
            }
        }
        out
    }
}

/// `value` as a URL carries it: every byte outside RFC 3986's unreserved
/// characters as `%XX`.
fn percent_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The decisive container's last log lines as a sentence for the failure
/// message, followed by a space so it drops in before the next sentence:
/// `Last log lines: a | b | c. ` (the sentence [`quote`]d: it is the
/// migration's own output, with `secrets` masked) or `Last log lines:
/// (could not read logs: …) `. Empty when the container does not log with
/// `awslogs` and a stream prefix (the log pointer already says so).
pub async fn last_lines(
    logs: &Client,
    container: &Container,
    task_id: &str,
    secrets: &Secrets,
) -> String {
    let Some((group, prefix)) = &container.logs else {
        return String::new();
    };
    let stream = format!("{prefix}/{}/{task_id}", container.name);
    let read = logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(&stream)
        .start_from_head(false)
        .limit(MAX_LINES)
        .send();
    let text = match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(out)) => {
            let lines: Vec<&str> = out.events().iter().filter_map(|e| e.message()).collect();
            let text = excerpt_masking(&lines, MAX_EXCERPT, secrets);
            return format!("{} ", quote(&sentence(&text)));
        }
        Ok(Err(err)) => {
            let why = unreadable(
                err.code(),
                err.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()),
            );
            tracing::warn!(log_group = %group, log_stream = %stream, %why, "could not read the migration's log lines");
            format!("(could not read logs: {why})")
        }
        Err(_) => {
            tracing::warn!(log_group = %group, log_stream = %stream, "reading the migration's log lines timed out");
            "(could not read logs: logs:GetLogEvents timed out)".to_owned()
        }
    };
    format!("{} ", sentence(&text))
}

/// `Last log lines: <text>.`, the full stop added unless `text` ends a sentence.
fn sentence(text: &str) -> String {
    let end = if text.ends_with(['.', '!', '?']) {
        ""
    } else {
        "."
    };
    format!("Last log lines: {text}{end}")
}

/// `text` marked as the migration's own output: shown to the pipeline,
/// never in the function's log. `text` must not contain the markers
/// (an [`excerpt`] never does).
pub fn quote(text: &str) -> String {
    format!("{QUOTE_OPEN}{text}{QUOTE_CLOSE}")
}

/// `text` for the function's own log: every quoted part replaced by
/// [`REDACTED`]. A quote left open (a message cut short) is redacted to the
/// end, so a cut can only hide more.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(QUOTE_OPEN) {
        out.push_str(&rest[..start]);
        out.push_str(REDACTED);
        rest = &rest[start + QUOTE_OPEN.len_utf8()..];
        rest = match rest.find(QUOTE_CLOSE) {
            Some(end) => &rest[end + QUOTE_CLOSE.len_utf8()..],
            None => "",
        };
    }
    out.push_str(rest);
    out.replace(QUOTE_CLOSE, "")
}

/// `text` for the pipeline: the quoted lines kept, the markers removed.
pub fn unquote(text: &str) -> String {
    text.replace([QUOTE_OPEN, QUOTE_CLOSE], "")
}

/// Why the lines could not be read, in a few words.
fn unreadable(code: Option<&str>, not_found: bool) -> String {
    let code = code.unwrap_or_default();
    if not_found || code == "ResourceNotFoundException" {
        "the log group or stream does not exist (yet)".into()
    } else if matches!(
        code,
        "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException"
    ) {
        "logs:GetLogEvents was denied; grant it on the log group in template.yaml".into()
    } else if is_throttling(code) {
        "logs:GetLogEvents was throttled".into()
    } else if code.is_empty() {
        "logs:GetLogEvents failed".into()
    } else {
        format!("logs:GetLogEvents failed with {code}")
    }
}

/// The newest lines, oldest first, that fit in `max` characters, joined
/// into one line. Each line is cleaned of terminal colour codes and control
/// characters and cut to [`MAX_LINE`]; older lines that do not fit are
/// dropped (marked `…`). Blank lines carry nothing and are skipped.
pub fn excerpt(lines: &[&str], max: usize) -> String {
    excerpt_masking(lines, max, &Secrets::default())
}

/// [`excerpt`] with `secrets` masked in every line: before it is cleaned
/// (as printed) and after (a colour code or tab inside a value), and always
/// before it is cut, so that a cut cannot leave a secret's start behind.
pub fn excerpt_masking(lines: &[&str], max: usize, secrets: &Secrets) -> String {
    let cleaned: Vec<String> = lines
        .iter()
        .map(|line| cut(&secrets.hide(&clean(&secrets.hide(line))), MAX_LINE))
        .filter(|line| !line.is_empty())
        .collect();
    if cleaned.is_empty() {
        return "(the log stream has no lines)".into();
    }
    let sep = SEPARATOR.chars().count();
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in cleaned.iter().rev() {
        let cost = line.chars().count() + if kept.is_empty() { 0 } else { sep };
        // Room for the `…` + separator that marks dropped lines.
        let reserve = if kept.len() + 1 < cleaned.len() {
            1 + sep
        } else {
            0
        };
        if used + cost + reserve > max {
            break;
        }
        used += cost;
        kept.push(line);
    }
    if kept.is_empty() {
        // Not even the newest line fits: keep its start.
        return cut(&cleaned[cleaned.len() - 1], max);
    }
    if kept.len() < cleaned.len() {
        kept.push("…");
    }
    kept.reverse();
    kept.join(SEPARATOR)
}

/// One log line without ANSI escape sequences, control characters and
/// surrounding whitespace.
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI (`ESC [ … final`): skip to the final byte; other escapes: one char.
            if chars.next_if_eq(&'[').is_some() {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// `text` cut to at most `max` characters, the cut marked with `…`.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut head: String = text.chars().take(max.saturating_sub(1)).collect();
    head.push('…');
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_line_that_fits_oldest_first() {
        let lines = [
            "== 20240101 CreateUsers: migrating",
            "rake aborted!",
            "PG::UndefinedTable: ERROR: relation \"users\" does not exist",
        ];
        assert_eq!(
            excerpt(&lines, MAX_EXCERPT),
            "== 20240101 CreateUsers: migrating | rake aborted! | PG::UndefinedTable: ERROR: relation \"users\" does not exist"
        );
    }

    #[test]
    fn drops_the_oldest_lines_first_and_stays_within_the_limit() {
        let lines: Vec<String> = (1..=20)
            .map(|i| format!("line {i:02} {}", "x".repeat(90)))
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let text = excerpt(&lines, MAX_EXCERPT);
        assert!(text.chars().count() <= MAX_EXCERPT, "{}", text.len());
        assert!(text.starts_with("… | line "), "{text}");
        assert!(text.ends_with(&format!("line 20 {}", "x".repeat(90))));
        assert!(!text.contains("line 01"));
        // Every kept line is whole, newest last.
        let kept: Vec<&str> = text.split(SEPARATOR).skip(1).collect();
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "{kept:?}");
        assert!(kept.iter().all(|l| l.len() == 98));
    }

    #[test]
    fn an_overlong_line_keeps_its_start() {
        let long = format!("ERROR: {}", "y".repeat(5000));
        let text = excerpt(&[long.as_str()], MAX_EXCERPT);
        assert!(text.starts_with("ERROR: yyy"));
        assert!(text.ends_with('…'));
        assert_eq!(text.chars().count(), MAX_LINE);
        let tiny = excerpt(&["abcdef"], 4);
        assert_eq!(tiny, "abc…");
    }

    #[test]
    fn colour_codes_control_characters_and_blank_lines_are_removed() {
        let lines = ["\u{1b}[31mrake aborted!\u{1b}[0m\r\n", "   ", "a\tb\u{7}c"];
        assert_eq!(excerpt(&lines, 100), "rake aborted! | a b c");
        assert_eq!(excerpt(&[], 100), "(the log stream has no lines)");
        assert_eq!(excerpt(&["", "\n"], 100), "(the log stream has no lines)");
    }

    #[test]
    fn multibyte_text_is_cut_on_characters() {
        let lines = ["é".repeat(600)];
        let text = excerpt(&[lines[0].as_str()], MAX_EXCERPT);
        assert_eq!(text.chars().count(), MAX_LINE);
    }

    #[test]
    fn quoted_lines_are_redacted_for_the_log_and_kept_for_the_pipeline() {
        let lines = excerpt(
            &["connecting to postgres://admin:s3cr3t@db", "\u{2}\u{3}boom"],
            MAX_EXCERPT,
        );
        let message = format!(
            "Migration failed: exit 1. {} Logs: group /ecs/app.",
            quote(&sentence(&lines))
        );
        let cases = [
            (
                message.as_str(),
                format!("Migration failed: exit 1. {REDACTED} Logs: group /ecs/app."),
                "Migration failed: exit 1. Last log lines: connecting to postgres://admin:s3cr3t@db | boom. Logs: group /ecs/app.".to_owned(),
            ),
            ("no quote here", "no quote here".into(), "no quote here".into()),
            // Cut inside the quote: the rest is hidden.
            (
                "a \u{2}Last log lines: s3cr3t",
                format!("a {REDACTED}"),
                "a Last log lines: s3cr3t".into(),
            ),
            // Two quotes, and a stray close that only vanishes.
            (
                "\u{2}x\u{3} and \u{2}y\u{3}\u{3}.",
                format!("{REDACTED} and {REDACTED}."),
                "x and y.".into(),
            ),
        ];
        for (text, logged, reported) in cases {
            assert_eq!(redact(text), logged, "{text:?}");
            assert_eq!(unquote(text), reported, "{text:?}");
        }
    }

    #[test]
    fn secrets_are_masked_in_every_form_before_a_line_is_cut() {
        let secrets = Secrets::new(["pa ss+/word", "line-one\nline-two", "1", "", "on"]);
        let long = format!("{}pa ss+/word", "x".repeat(MAX_LINE - 5));
        let lines = [
            "password=pa ss+/word",
            "postgres://app:pa%20ss%2B%2Fword@db/app and pa%20ss%2b%2fword",
            "pa\tss+/word in a tab-cleaned line",
            "key: line-one",
            "line-two",
            long.as_str(),
            "migrated 1 table, logging on",
        ];
        let text = excerpt_masking(&lines, 5000, &secrets);
        let expected_long = cut(&format!("{}***", "x".repeat(MAX_LINE - 5)), MAX_LINE);
        assert_eq!(
            text,
            format!(
                "password=*** | postgres://app:***@db/app and *** | *** in a tab-cleaned line | key: *** | *** | {expected_long} | migrated 1 table, logging on"
            )
        );
        assert!(!text.contains("pa ss"), "{text}");
        assert_eq!(format!("{secrets:?}"), "Secrets(8 forms)");
        assert_eq!(Secrets::default().hide("as is"), "as is");
        // The longer of two overlapping values is masked whole.
        let nested = Secrets::new(["abcd", "abcdefgh"]);
        assert_eq!(nested.hide("abcdefgh abcd"), "*** ***");
    }

    #[test]
    fn unreadable_logs_say_why_in_a_few_words() {
        assert!(
            unreadable(Some("AccessDeniedException"), false)
                .contains("logs:GetLogEvents was denied")
        );
        assert!(unreadable(Some("ResourceNotFoundException"), true).contains("does not exist"));
        assert!(unreadable(Some("ThrottlingException"), false).contains("throttled"));
        assert_eq!(unreadable(None, false), "logs:GetLogEvents failed");
        assert_eq!(
            unreadable(Some("ServiceUnavailableException"), false),
            "logs:GetLogEvents failed with ServiceUnavailableException"
        );
    }
}
