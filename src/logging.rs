//! The function's own log: JSON in Lambda, at the level the function is
//! configured with, and never a raw event, request or response body.
//!
//! `lambda_runtime::tracing::init_default_subscriber` passes every level
//! through to every crate. At DEBUG/TRACE the crates under us dump what
//! they carry: `lambda_runtime` logs each raw event ("raw JSON event
//! received from Lambda": a job's `artifactCredentials`, the environment
//! override values in its UserParameters), `aws_smithy_runtime` logs every
//! request and response with its body ("transmitting request": RunTask with
//! the overrides, PutParameter values), `aws_sigv4` the signing inputs, and
//! hyper/rustls the wire. So [`permitted`] caps every target but this
//! crate's own at INFO, whatever `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` ask
//! for: an allowlist rather than a list of known offenders, so a new
//! dependency cannot start leaking at TRACE. Our own code logs identifiers
//! and outcomes only (never credentials, override values or the
//! migration's log lines) at every level, which `tests/system_secrets.rs`
//! checks at TRACE.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{LevelFilter, Targets, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The only target allowed below INFO: this crate's own code.
const OWN_TARGET: &str = "migrate_once";
/// The most verbose level any other crate may log at.
const DEPENDENCY_CAP: Level = Level::INFO;

/// How the log is written, decided from the environment alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// One JSON object per line (`AWS_LAMBDA_LOG_FORMAT=JSON`), which is
    /// what Lambda's log-level filtering and CloudWatch Logs Insights read.
    pub json: bool,
    /// Level directives: a bare level, or `RUST_LOG`'s `target=level` list
    /// (without span and field filters: [`Targets`], no regex engine).
    pub directives: String,
}

/// The settings for the environment `env`, the way Lambda's advanced
/// logging controls mean them: `AWS_LAMBDA_LOG_LEVEL` (TRACE … FATAL,
/// FATAL being ERROR here) wins; otherwise `RUST_LOG` (`target=level`
/// directives); otherwise INFO. Whatever they say, [`permitted`] still caps
/// the other crates.
pub fn settings(env: impl Fn(&str) -> Option<String>) -> Settings {
    let json = env("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let lambda_level = env("AWS_LAMBDA_LOG_LEVEL").and_then(|l| lambda_level(&l));
    let directives = match (lambda_level, env("RUST_LOG")) {
        (Some(level), _) => level.to_string(),
        (None, Some(rust_log)) if !rust_log.trim().is_empty() => rust_log.trim().to_owned(),
        _ => LevelFilter::INFO.to_string(),
    };
    Settings { json, directives }
}

/// One of Lambda's application log levels as a filter; `None` for anything else.
fn lambda_level(text: &str) -> Option<LevelFilter> {
    match text.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some(LevelFilter::TRACE),
        "DEBUG" => Some(LevelFilter::DEBUG),
        "INFO" => Some(LevelFilter::INFO),
        "WARN" => Some(LevelFilter::WARN),
        "ERROR" | "FATAL" => Some(LevelFilter::ERROR),
        _ => None,
    }
}

/// Whether an event or span of `target` at `level` may be written at all:
/// this crate's own at any level, every other crate's at INFO and above.
pub fn permitted(target: &str, level: &Level) -> bool {
    let own = target
        .strip_prefix(OWN_TARGET)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"));
    own || *level <= DEPENDENCY_CAP
}

/// Installs the process-wide subscriber, writing to stdout (Lambda sends
/// stdout to the function's log group). Call once, first thing in `main`.
pub fn init(env: impl Fn(&str) -> Option<String>) {
    // A second subscriber (only possible in tests) keeps the first.
    let _ = subscriber(&settings(env), std::io::stdout).try_init();
}

/// The subscriber for `settings` writing to `writer`: the level filter of
/// the settings AND the dependency cap, then the text or JSON format
/// Lambda's default subscriber uses (no timestamps: Lambda adds them).
pub fn subscriber<W>(settings: &Settings, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    // Unparsable directives mean INFO; targets not named keep INFO too.
    let levels = settings.directives.parse::<Targets>().unwrap_or_default();
    let levels = match levels.default_level() {
        Some(_) => levels,
        None => levels.with_default(LevelFilter::INFO),
    };
    let cap = filter_fn(|meta: &Metadata<'_>| permitted(meta.target(), meta.level()));
    let text = (!settings.json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .without_time()
            .with_ansi(false)
            .with_writer(writer.clone())
    });
    let json = settings.json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_target(false)
            .without_time()
            .with_writer(writer)
    });
    tracing_subscriber::registry()
        .with(levels)
        .with(cap)
        .with(text)
        .with(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// Environment variables set for a case.
    type Vars<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn the_level_comes_from_lambda_then_rust_log_then_info() {
        let cases: &[(Vars, &str, bool)] = &[
            (&[], "info", false),
            (&[("AWS_LAMBDA_LOG_LEVEL", "TRACE")], "trace", false),
            (&[("AWS_LAMBDA_LOG_LEVEL", "debug")], "debug", false),
            (&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")], "error", false),
            (
                &[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "trace")],
                "warn",
                false,
            ),
            (
                &[("AWS_LAMBDA_LOG_LEVEL", "LOUD"), ("RUST_LOG", "trace")],
                "trace",
                false,
            ),
            (
                &[("RUST_LOG", " aws_smithy_runtime=trace ")],
                "aws_smithy_runtime=trace",
                false,
            ),
            (&[("RUST_LOG", "")], "info", false),
            (&[("AWS_LAMBDA_LOG_FORMAT", "JSON")], "info", true),
            (&[("AWS_LAMBDA_LOG_FORMAT", "Text")], "info", false),
        ];
        for (vars, directives, json) in cases {
            let got = settings(env(vars));
            assert_eq!(
                got,
                Settings {
                    json: *json,
                    directives: (*directives).to_owned()
                },
                "{vars:?}"
            );
        }
    }

    #[test]
    fn only_our_own_targets_go_below_info() {
        let cases = [
            ("migrate_once", Level::TRACE, true),
            ("migrate_once::job", Level::TRACE, true),
            ("migrate_once_evil", Level::DEBUG, false),
            ("lambda_runtime::layers::api_response", Level::TRACE, false),
            (
                "aws_smithy_runtime::client::orchestrator",
                Level::TRACE,
                false,
            ),
            (
                "aws_smithy_runtime::client::orchestrator",
                Level::DEBUG,
                false,
            ),
            ("aws_sigv4::http_request::sign", Level::TRACE, false),
            ("hyper_util::client::legacy::pool", Level::DEBUG, false),
            ("lambda_runtime", Level::INFO, true),
            ("aws_config", Level::WARN, true),
            ("aws_smithy_runtime", Level::ERROR, true),
        ];
        for (target, level, expected) in cases {
            assert_eq!(permitted(target, &level), expected, "{target} {level}");
        }
    }

    /// A writer the tests can read back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// What the installed subscriber writes for the events the crates under
    /// us emit at TRACE/DEBUG, and for ours.
    fn written(vars: &[(&str, &str)]) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(&settings(env(vars)), buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "artifact-secret", "raw JSON event received from Lambda");
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", request = "RunTask body override-secret", "transmitting request");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "retry strategy has OKed initial request");
            tracing::trace!(target: "aws_sigv4::http_request::sign", canonical_request = "x-amz-security-token", "calculated signing parameters");
            tracing::info!(target: "lambda_runtime", "runtime info line");
            tracing::trace!("our own trace line");
            tracing::debug!("our own debug line");
            tracing::info!("our own info line");
        });
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn trace_everywhere_still_drops_the_dumps_of_the_crates_under_us() {
        for vars in [
            &[("AWS_LAMBDA_LOG_LEVEL", "TRACE")][..],
            &[("RUST_LOG", "trace")][..],
            &[(
                "RUST_LOG",
                "aws_smithy_runtime=trace,lambda_runtime=trace,aws_sigv4=trace",
            )][..],
            &[
                ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ][..],
        ] {
            let out = written(vars);
            for leak in [
                "artifact-secret",
                "override-secret",
                "x-amz-security-token",
                "retry strategy",
            ] {
                assert!(!out.contains(leak), "{vars:?} let {leak:?} through:\n{out}");
            }
            assert!(out.contains("runtime info line"), "{vars:?}:\n{out}");
            if vars.iter().any(|(_, v)| v.eq_ignore_ascii_case("trace")) {
                assert!(out.contains("our own trace line"), "{vars:?}:\n{out}");
            }
        }
    }

    #[test]
    fn the_level_asked_for_still_applies_to_our_own_lines_and_json_is_json() {
        let out = written(&[("AWS_LAMBDA_LOG_LEVEL", "INFO")]);
        assert!(out.contains("our own info line"), "{out}");
        assert!(!out.contains("our own debug line"), "{out}");
        let out = written(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")]);
        assert!(out.is_empty(), "{out}");
        let out = written(&[
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("AWS_LAMBDA_LOG_FORMAT", "json"),
        ]);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines.iter().all(|l| l["level"].is_string()), "{out}");
    }
}
