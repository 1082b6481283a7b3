//! `migrate-once claim`: the instance-side once-per-reset claim (SPEC §8).
//!
//! The seed practice runs a script on every instance: read an SSM flag, if it
//! is `"0"` write `"1"` and run the migration. Two instances that read `"0"`
//! together both run it; a failed run still leaves `"1"`; a flag that was never
//! reset skips the run silently. This module replaces that script.
//!
//! ## The argument
//!
//! A *reset* is the `"0"` the function writes at the start of a deployment
//! (`resetParameters`). Every write gives the parameter a new `Version`, and
//! SSM stamps it with `LastModifiedDate`; the pair names the reset for good
//! (versions restart at 1 when a parameter is deleted and created again, the
//! time does not repeat).
//!
//! 1. A claimer reads the parameter. `"0"` at reset `r`: it tries to *create*
//!    `<parameter>/claims/<version>-<millis>` (`PutParameter`,
//!    `Overwrite=false`). SSM's atomic create lets exactly one create succeed;
//!    everyone else gets `ParameterAlreadyExists` and has lost reset `r`.
//!    The record's value names its creator, a nonce included ([`Holder`]): a
//!    create whose answer was lost, retried by the SDK into
//!    `ParameterAlreadyExists`, is recognised by reading the record back and
//!    finding oneself — otherwise the reset would have no winner at all.
//! 2. The creator reads the parameter again. Only if it still shows reset `r`
//!    has it won. This is what makes deleting old claim records safe: a record
//!    is only ever deleted by the winner of a *newer* reset, so once it is
//!    gone the parameter no longer shows its reset, and a late claimer that
//!    re-creates it fails this check (and reads the parameter afresh). A
//!    read that fails is not an answer: transient errors are retried (until
//!    `--timeout`); a creator that still cannot tell deletes its own record
//!    before it exits 2 — it ran nothing, so the reset is free again for the
//!    next claimer instead of held by nobody.
//! 3. The winner runs the command with inherited stdio, forwarding SIGINT and
//!    SIGTERM, then writes `"1"` or `"failed"` — unless the parameter was reset
//!    again meanwhile: then it leaves the newer reset to its own claimers (a
//!    read-then-write, so only a reset landing in the milliseconds between
//!    the two can be overwritten; SSM has no conditional overwrite).
//! 4. Losers without `--wait` exit 0 at once. With `--wait` they poll, with
//!    bounded backoff, until the parameter leaves reset `r`: `"1"` exits 0,
//!    `"failed"` exits 1, a newer `"0"` starts again at 1; past `--timeout`
//!    they exit 1 naming the holder (host, pid, start time from its record).
//!
//! A winner that dies (SIGKILL, lost instance) leaves the claim held: nobody
//! runs the command for that reset again, `--timeout` bounds the waiters, and
//! the next reset frees it.
//!
//! Calls: a winner makes 2 `GetParameter` + 1 create, 1 `GetParameter` + 1
//! `PutParameter` to record the outcome and 1 `GetParametersByPath` (+ 1
//! `DeleteParameters` when there are older records) to tidy up; a loser
//! makes 1 `GetParameter` + 1 create + 1 `GetParameter` of the holder's
//! record (is it its own?), and with `--wait` one `GetParameter` per poll.
//! Transient errors of the create and of the reads and the outcome write
//! that follow it are tried again, with the poll backoff, until `--timeout`.

use std::ffi::OsString;
use std::time::Duration;
use tokio::time::Instant;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_types::date_time::{DateTime, Format};
use serde::{Deserialize, Serialize};

use crate::failure::Failure;

/// How to call it; printed with every argument error.
pub const USAGE: &str =
    "usage: migrate-once claim --parameter NAME [--wait] [--timeout SECS] -- COMMAND [ARG...]

Runs COMMAND on exactly one instance per reset of the SSM parameter NAME (the
\"0\" written at the start of a deployment), then sets NAME to \"1\" or \"failed\"
and exits with COMMAND's exit code. Other instances do not run it: they exit 0
at once, or with --wait wait for the outcome (exit 0 if it succeeded, 1 if it
failed or --timeout SECS passed; default 3600). Errors exit 2.";

/// Exit code for bad arguments, a missing or un-reset parameter, a denied call.
pub const EXIT_ERROR: i32 = 2;
/// Exit code of a `--wait` loser whose winner failed, or that timed out.
pub const EXIT_FAILED: i32 = 1;
/// How long `--wait` waits unless `--timeout` says otherwise (CodeDeploy's
/// longest hook timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// First poll interval of a `--wait` loser; `MIGRATE_ONCE_CLAIM_POLL_MS`
/// changes it (the tests use a few ms).
const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// The poll interval grows up to this multiple of the first one: with the
/// default, a waiter learns the outcome within ~10 s and 50 waiters poll SSM
/// at ~5 calls/s, far below its `GetParameter` limit.
const MAX_POLL_FACTOR: u32 = 10;
/// A claim record older than this (by its reset's time) is deleted whatever
/// its version: it belongs to a parameter that was deleted and created again.
const FORGOTTEN_MS: i64 = 24 * 3600 * 1000;

macro_rules! say {
    ($($arg:tt)*) => { eprintln!("migrate-once claim: {}", format_args!($($arg)*)) };
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// The SSM parameter the deployment resets to `"0"`.
    pub parameter: String,
    /// Whether a loser waits for the winner's outcome.
    pub wait: bool,
    /// How long a `--wait` loser waits in all.
    pub timeout: Duration,
    /// The command and its arguments, passed through untouched.
    pub command: Vec<OsString>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// Run the claim.
    Claim(Args),
    /// `--help`: print [`USAGE`] and exit 0.
    Help,
}

/// Parses the arguments after `claim`, by hand: the Lambda binary carries no
/// argument-parsing library for this one subcommand.
pub fn parse_args(args: &[OsString]) -> Result<Invocation, String> {
    let mut parameter = None;
    let mut wait = false;
    let mut timeout = None;
    let mut rest = args.iter();
    let mut command = None;
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str() else {
            return Err(format!(
                "unexpected argument {arg:?} (put the command after `--`)"
            ));
        };
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (text, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline {
                Some(v) => Ok(v.to_owned()),
                None => match rest.next().map(|v| v.to_str()) {
                    Some(Some(v)) if !v.starts_with("--") => Ok(v.to_owned()),
                    Some(Some(_)) | None => Err(format!("{name} needs a value")),
                    Some(None) => Err(format!("the value of {name} is not valid UTF-8")),
                },
            }
        };
        match flag {
            "--" => {
                command = Some(rest.by_ref().cloned().collect::<Vec<_>>());
                break;
            }
            "-h" | "--help" => return Ok(Invocation::Help),
            "--parameter" => {
                if parameter.is_some() {
                    return Err("--parameter is given twice".into());
                }
                parameter = Some(value("--parameter")?);
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs = v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("--timeout takes a whole number of seconds, not {v:?}"))?;
                timeout = Some(Duration::from_secs(secs));
            }
            "--wait" if inline.is_none() => wait = true,
            _ if flag.starts_with('-') => return Err(format!("unknown option {text}")),
            _ => {
                return Err(format!(
                    "unexpected argument {text:?}: put the command after `--`"
                ));
            }
        }
    }
    let parameter = match parameter {
        Some(p) if p.trim().is_empty() => return Err("--parameter is empty".into()),
        Some(p) if p.starts_with("arn:") => {
            return Err(format!(
                "--parameter takes the parameter's name, not its ARN ({p})"
            ));
        }
        Some(p) => p,
        None => return Err("--parameter NAME is required".into()),
    };
    let command = match command {
        Some(c) if !c.is_empty() => c,
        _ => return Err("no command: give it after `--`".into()),
    };
    Ok(Invocation::Claim(Args {
        parameter,
        wait,
        timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
        command,
    }))
}

/// The parameter as one `GetParameter` saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The value, `"0"`, `"1"`, `"failed"` or anything a person wrote.
    pub value: String,
    /// SSM's version of that value.
    pub version: i64,
    /// SSM's `LastModifiedDate` of that version, in epoch milliseconds.
    pub modified_ms: i64,
}

/// One reset of the parameter: the version and time of a `"0"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// SSM version of the `"0"`.
    pub version: i64,
    /// Its `LastModifiedDate` in epoch milliseconds.
    pub modified_ms: i64,
}

/// What a value means.
#[derive(Debug, Clone, PartialEq)]
pub enum Flag {
    /// `"0"`: reset, waiting for its one claimer.
    Reset(Reset),
    /// `"1"`: the command ran and succeeded since the last reset.
    Done,
    /// `"failed"`: the command ran and failed since the last reset.
    Failed,
    /// Anything else: not ours to interpret.
    Unknown(String),
}

impl Reading {
    /// What this reading's value means. Surrounding whitespace is ignored
    /// (a value written by hand may carry a newline).
    pub fn flag(&self) -> Flag {
        match self.value.trim() {
            "0" => Flag::Reset(Reset {
                version: self.version,
                modified_ms: self.modified_ms,
            }),
            "1" => Flag::Done,
            "failed" => Flag::Failed,
            other => Flag::Unknown(other.to_owned()),
        }
    }
}

/// A decision that ends the claim: exit code and what to tell the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    /// The process exit code.
    pub code: i32,
    /// The line for stderr.
    pub message: String,
}

fn exit(code: i32, message: impl Into<String>) -> Exit {
    Exit {
        code,
        message: message.into(),
    }
}

/// A value other than the three this product writes; always exit 2.
fn unknown_value(parameter: &str, value: &str) -> Exit {
    exit(
        EXIT_ERROR,
        format!(
            "{parameter} holds {value:?}, not \"0\" (reset), \"1\" (done) or \"failed\": \
             not running the command. Is it the parameter listed in the function's \
             `resetParameters`?"
        ),
    )
}

/// What a claimer does with its first reading (and with a reading after a
/// reset it saw went away): claim the reset, or exit.
///
/// `"failed"` exits 1 with `--wait`: a waiter exists so that nothing goes on
/// over a migration that did not apply, whether it arrived before the
/// winner finished or after. Without `--wait` it exits 0 like every loser.
pub fn on_read(parameter: &str, reading: &Reading, wait: bool) -> Result<Reset, Exit> {
    match reading.flag() {
        Flag::Reset(reset) => Ok(reset),
        Flag::Done => Err(exit(
            0,
            format!(
                "{parameter} is \"1\": the command already ran and succeeded after the \
                 latest reset (version {}); not running it",
                reading.version
            ),
        )),
        Flag::Failed => Err(exit(
            if wait { EXIT_FAILED } else { 0 },
            format!(
                "{parameter} is \"failed\": the command failed after the latest reset \
                 (version {}) and runs again only after a new reset; not running it",
                reading.version
            ),
        )),
        Flag::Unknown(value) => Err(unknown_value(parameter, &value)),
    }
}

/// What a `--wait` loser does with a poll's reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Waited {
    /// The claimed reset is still there: the holder has not finished.
    Still,
    /// The parameter was reset again: claim the new reset.
    NewReset,
    /// The holder finished (or something else happened): exit.
    Done(Exit),
}

/// The pure step of waiting for reset `claimed`'s holder.
pub fn on_poll(parameter: &str, claimed: Reset, reading: &Reading) -> Waited {
    match reading.flag() {
        Flag::Reset(reset) if reset == claimed => Waited::Still,
        Flag::Reset(_) => Waited::NewReset,
        Flag::Done => Waited::Done(exit(
            0,
            format!("the claim holder finished: {parameter} is \"1\" (succeeded)"),
        )),
        Flag::Failed => Waited::Done(exit(
            EXIT_FAILED,
            format!("the claim holder finished: {parameter} is \"failed\""),
        )),
        Flag::Unknown(value) => Waited::Done(unknown_value(parameter, &value)),
    }
}

/// The path the claim records of `parameter` live under. SSM requires a
/// hierarchical name to start with `/`, so a flat `flag` gets `/flag/claims`.
pub fn claims_path(parameter: &str) -> String {
    let base = parameter.trim_end_matches('/');
    if base.starts_with('/') {
        format!("{base}/claims")
    } else {
        format!("/{base}/claims")
    }
}

/// The create-only record whose creation wins `reset`.
pub fn claim_name(parameter: &str, reset: Reset) -> String {
    format!(
        "{}/{}-{}",
        claims_path(parameter),
        reset.version,
        reset.modified_ms
    )
}

/// The claim records among `names` that belong to resets older than
/// `current` and so can never be claimed again: a lower version, or (for a
/// parameter deleted and created again) a reset more than a day older.
/// Records of newer resets, and anything not shaped like a claim record,
/// are kept.
pub fn superseded_claims(parameter: &str, names: &[String], current: Reset) -> Vec<String> {
    let prefix = format!("{}/", claims_path(parameter));
    names
        .iter()
        .filter(|name| {
            let Some((version, millis)) = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once('-'))
            else {
                return false;
            };
            match (version.parse::<i64>(), millis.parse::<i64>()) {
                (Ok(v), Ok(ms)) => {
                    (v, ms) != (current.version, current.modified_ms)
                        && (v < current.version
                            || ms.saturating_add(FORGOTTEN_MS) < current.modified_ms)
                }
                _ => false,
            }
        })
        .cloned()
        .collect()
}

/// Who holds a claim: the value of its record, for people waiting on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The instance's host name.
    pub host: String,
    /// The claiming process.
    pub pid: u32,
    /// When it claimed, RFC 3339.
    pub started_at: String,
    /// What makes the record this claimer's own, whatever else it shares
    /// with another (a host name and pid 1 in every container).
    #[serde(default)]
    pub nonce: String,
}

impl Holder {
    /// This process, now.
    fn me() -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        Holder {
            host,
            pid: std::process::id(),
            started_at: DateTime::from(crate::clock::now())
                .fmt(Format::DateTime)
                .unwrap_or_default(),
            nonce: format!("{:016x}", crate::clock::nonce()),
        }
    }
}

/// The holder as a phrase, from its record's text (if it could be read).
pub fn describe_holder(record: Option<&str>) -> String {
    match record.and_then(|text| serde_json::from_str::<Holder>(text).ok()) {
        Some(h) => format!("pid {} on host {} (since {})", h.pid, h.host, h.started_at),
        None => "another claimer (its claim record could not be read)".into(),
    }
}

/// The next poll interval: `base` doubling per poll up to
/// `MAX_POLL_FACTOR × base`, never past the time left.
pub fn poll_delay(polls: u32, base: Duration, remaining: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(polls.min(16))
        .unwrap_or(MAX_POLL_FACTOR)
        .min(MAX_POLL_FACTOR);
    (base * factor).min(remaining)
}

/// The exit code of a finished command: its own code, or 128 + the signal
/// that killed it (the shell's convention).
pub fn exit_code(code: Option<i32>, signal: Option<i32>) -> i32 {
    match (code, signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// The first poll interval: `MIGRATE_ONCE_CLAIM_POLL_MS` (1..=60000) or 1 s.
pub fn poll_base(env: Option<&str>) -> Duration {
    env.and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| (1..=60_000).contains(ms))
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_POLL)
}

/// Why a claim stops with exit 2 after an AWS call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClaimError {
    /// The parameter does not exist, so nothing has ever reset it.
    #[error(
        "SSM parameter {0} does not exist, so no deployment has reset it: list it in the \
         function's `resetParameters` (each deployment then sets it to \"0\") or create it \
         with the value \"0\"; not running the command"
    )]
    Missing(String),
    /// IAM refused a call.
    #[error(
        "{api} on {name} was denied: {detail}. The instance role needs ssm:GetParameter and \
         ssm:PutParameter on the parameter and on {claims}/* (README: \"The instance-side claim\")"
    )]
    Denied {
        /// `ssm:Action`.
        api: &'static str,
        /// The parameter the call was about.
        name: String,
        /// The claims path of the claimed parameter.
        claims: String,
        /// The SDK's own text.
        detail: String,
    },
    /// Anything else AWS answered, after the SDK's retries.
    #[error("{api} on {name} failed: {detail}")]
    Call {
        /// `ssm:Action`.
        api: &'static str,
        /// The parameter the call was about.
        name: String,
        /// The SDK's own text.
        detail: String,
        /// Throttling, 5xx, timeouts: a waiter polls on through these.
        transient: bool,
    },
}

/// The thin AWS layer: the claimed parameter and its claim records.
struct Ssm<'a> {
    client: &'a Client,
    parameter: &'a str,
}

impl Ssm<'_> {
    fn error<E>(
        &self,
        api: &'static str,
        name: &str,
        err: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> ClaimError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let name = name.to_owned();
        match Failure::from_sdk(api, err) {
            Failure::Permission { api, detail } => ClaimError::Denied {
                api,
                name,
                claims: claims_path(self.parameter),
                detail,
            },
            Failure::Unavailable { api, detail } => ClaimError::Call {
                api,
                name,
                detail,
                transient: true,
            },
            other => ClaimError::Call {
                api,
                name,
                detail: other.to_string(),
                transient: false,
            },
        }
    }

    /// Reads the claimed parameter.
    async fn read(&self) -> Result<Reading, ClaimError> {
        let answer = self
            .client
            .get_parameter()
            .name(self.parameter)
            .send()
            .await;
        let parameter = match answer {
            Ok(out) => out.parameter,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                return Err(ClaimError::Missing(self.parameter.to_owned()));
            }
            Err(e) => return Err(self.error("ssm:GetParameter", self.parameter, e)),
        };
        let Some(p) = parameter else {
            return Err(ClaimError::Missing(self.parameter.to_owned()));
        };
        Ok(Reading {
            value: p.value.unwrap_or_default(),
            version: p.version,
            modified_ms: p
                .last_modified_date
                .and_then(|d| d.to_millis().ok())
                .unwrap_or_default(),
        })
    }

    /// The atomic create: `true` if this call created `name`.
    async fn create(&self, name: &str, record: &str) -> Result<bool, ClaimError> {
        let answer = self
            .client
            .put_parameter()
            .name(name)
            .value(record)
            .r#type(ParameterType::String)
            .overwrite(false)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_parameter_already_exists()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error("ssm:PutParameter", name, e)),
        }
    }

    /// Overwrites the claimed parameter with the outcome.
    async fn record(&self, value: &str) -> Result<(), ClaimError> {
        self.client
            .put_parameter()
            .name(self.parameter)
            .value(value)
            .overwrite(true)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("ssm:PutParameter", self.parameter, e))
    }

    /// The text of a claim record; `None` when it does not exist.
    async fn holder(&self, name: &str) -> Result<Option<String>, ClaimError> {
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error("ssm:GetParameter", name, e)),
        }
    }

    /// Deletes the claim record `name`: a creator that ran nothing gives
    /// the reset back. `false` when it could not.
    async fn give_back(&self, name: &str) -> bool {
        let answer = self.client.delete_parameters().names(name).send().await;
        match answer {
            Ok(_) => true,
            Err(e) => {
                say!(
                    "could not delete the claim record {name}: {}",
                    self.error("ssm:DeleteParameters", name, e)
                );
                false
            }
        }
    }

    /// Deletes the claim records of resets older than `current` (best
    /// effort: a failure only leaves a few small parameters behind).
    async fn tidy(&self, current: Reset) {
        let path = claims_path(self.parameter);
        let mut names = Vec::new();
        let mut token = None;
        // Ten pages of ten: far more than can pile up between two winners.
        for _ in 0..10 {
            let answer = self
                .client
                .get_parameters_by_path()
                .path(&path)
                .recursive(false)
                .set_next_token(token.take())
                .send()
                .await;
            match answer {
                Ok(out) => {
                    names.extend(out.parameters().iter().filter_map(|p| p.name.clone()));
                    token = out.next_token;
                    if token.is_none() {
                        break;
                    }
                }
                Err(e) => {
                    say!(
                        "could not list old claim records (harmless; they stay): {}",
                        self.error("ssm:GetParametersByPath", &path, e)
                    );
                    return;
                }
            }
        }
        let old = superseded_claims(self.parameter, &names, current);
        for chunk in old.chunks(10) {
            if let Err(e) = self
                .client
                .delete_parameters()
                .set_names(Some(chunk.to_vec()))
                .send()
                .await
            {
                say!(
                    "could not delete old claim records (harmless; they stay): {}",
                    self.error("ssm:DeleteParameters", &path, e)
                );
                return;
            }
        }
    }
}

/// The SDK configuration for an instance: region and credentials from the
/// usual chain (environment, profile, then the instance metadata service),
/// endpoints from `AWS_ENDPOINT_URL*`, bounded attempts.
async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        );
    // Fifty instances claiming at once may be throttled: five jittered tries
    // unless the SDK's own AWS_MAX_ATTEMPTS / AWS_RETRY_MODE say otherwise,
    // as the function's own calls ([`crate::sdk::retry_config`]).
    loader = loader.retry_config(crate::sdk::retry_config(|name| std::env::var(name).ok()));
    loader.load().await
}

/// `migrate-once claim ARGS…`: the process's exit code.
pub async fn main(args: Vec<OsString>) -> i32 {
    let args = match parse_args(&args) {
        Ok(Invocation::Claim(args)) => args,
        Ok(Invocation::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Err(problem) => {
            say!("{problem}");
            eprintln!("{USAGE}");
            return EXIT_ERROR;
        }
    };
    let client = Client::new(&sdk_config().await);
    let poll = poll_base(std::env::var("MIGRATE_ONCE_CLAIM_POLL_MS").ok().as_deref());
    let ssm = Ssm {
        client: &client,
        parameter: &args.parameter,
    };
    match claim(&ssm, &args, poll).await {
        Ok(code) => code,
        Err(e) => {
            say!("{e}");
            EXIT_ERROR
        }
    }
}

/// Claims, then runs as winner or waits as loser.
async fn claim(ssm: &Ssm<'_>, args: &Args, poll: Duration) -> Result<i32, ClaimError> {
    let parameter = ssm.parameter;
    let deadline = Instant::now() + args.timeout;
    let me = Holder::me();
    let record = serde_json::to_string(&me).unwrap_or_default();
    let mut reading = ssm.read().await?;
    loop {
        let reset = match on_read(parameter, &reading, args.wait) {
            Ok(reset) => reset,
            Err(exit) => {
                say!("{}", exit.message);
                return Ok(exit.code);
            }
        };
        let name = claim_name(parameter, reset);
        // A create whose outcome is unknown is tried again; lost, or created
        // by us with the answer lost (the retry then finds the record): the
        // record says whose it is.
        let created = patiently("create the claim record", deadline, poll, || {
            ssm.create(&name, &record)
        })
        .await?;
        let found = if created {
            None
        } else {
            let read = patiently("read the claim record", deadline, poll, || {
                ssm.holder(&name)
            });
            match read.await {
                Ok(found) => found,
                Err(e) => {
                    // Never ours without proof: at worst nobody runs it for
                    // this reset, never two.
                    say!("could not read the claim record {name}, so taking it as another's: {e}");
                    None
                }
            }
        };
        if created || found.as_deref() == Some(record.as_str()) {
            let confirmed = patiently("read the parameter", deadline, poll, || ssm.read()).await;
            reading = match confirmed {
                Ok(reading) => reading,
                Err(e) => {
                    let freed = if ssm.give_back(&name).await {
                        "gave the claim back (nothing was run), so the next claimer can run it"
                    } else {
                        "the claim stays held until the next reset"
                    };
                    say!(
                        "claimed {parameter} (reset version {}) but could not read it again; {freed}",
                        reset.version
                    );
                    return Err(e);
                }
            };
            if reading.flag() == Flag::Reset(reset) {
                return win(ssm, args, reset, poll).await;
            }
            // The parameter moved on between our read and our create: our
            // record is for a reset that is no longer current. Start over.
            continue;
        }
        if !args.wait {
            say!(
                "{parameter} was reset (version {}) and another instance holds the claim; \
                 not running the command (--wait waits for its outcome)",
                reset.version
            );
            return Ok(0);
        }
        let holder = describe_holder(found.as_deref());
        say!("waiting for {holder} to finish with {parameter}");
        match wait(ssm, reset, deadline, poll).await? {
            Some(Waited::Done(exit)) => {
                say!("{}", exit.message);
                return Ok(exit.code);
            }
            Some(Waited::Still | Waited::NewReset) => {
                // Reset again while we waited: claim the new reset.
                reading = ssm.read().await?;
            }
            None => {
                say!(
                    "gave up after {} s: the claim on {parameter} (reset version {}) is still \
                     held by {holder}; if that process died, a new reset frees the claim",
                    args.timeout.as_secs(),
                    reset.version
                );
                return Ok(EXIT_FAILED);
            }
        }
    }
}

/// `call` until it answers, trying transient errors (throttling, 5xx,
/// timeouts, after the SDK's own retries) again with the poll backoff until
/// `deadline`: unknown is not failed. What `call` reads or writes is the
/// same each time, so trying again is safe.
async fn patiently<T, F, Fut>(
    what: &str,
    deadline: Instant,
    base: Duration,
    mut call: F,
) -> Result<T, ClaimError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClaimError>>,
{
    let mut tries = 0;
    loop {
        match call().await {
            Err(ClaimError::Call {
                transient: true,
                detail,
                ..
            }) if Instant::now() < deadline => {
                say!("could not {what} (trying again): {detail}");
                let remaining = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(jittered(poll_delay(tries, base, remaining))).await;
                tries = tries.saturating_add(1);
            }
            other => return other,
        }
    }
}

/// Polls until reset `claimed` is gone or the deadline passes (`None`).
async fn wait(
    ssm: &Ssm<'_>,
    claimed: Reset,
    deadline: Instant,
    base: Duration,
) -> Result<Option<Waited>, ClaimError> {
    let mut polls = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(None);
        }
        tokio::time::sleep(jittered(poll_delay(polls, base, remaining))).await;
        polls = polls.saturating_add(1);
        match ssm.read().await {
            Ok(reading) => match on_poll(ssm.parameter, claimed, &reading) {
                Waited::Still => {}
                other => return Ok(Some(other)),
            },
            Err(ClaimError::Call {
                transient: true,
                detail,
                ..
            }) => say!("could not read {} (polling on): {detail}", ssm.parameter),
            Err(e) => return Err(e),
        }
    }
}

/// 75–100 % of `d`, so that waiters started together drift apart.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.75 + crate::clock::jitter() / 4.0)
}

/// The winner: runs the command, records the outcome, tidies up.
async fn win(ssm: &Ssm<'_>, args: &Args, reset: Reset, poll: Duration) -> Result<i32, ClaimError> {
    let parameter = ssm.parameter;
    let program = args.command[0].to_string_lossy();
    say!(
        "claimed {parameter} (reset version {}); running {program}",
        reset.version
    );
    let (code, succeeded) = match run(&args.command).await {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            (exit_code(status.code(), status.signal()), status.success())
        }
        Err(e) => {
            say!("cannot run {program}: {e}");
            (
                if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                },
                false,
            )
        }
    };
    let outcome = if succeeded { "1" } else { "failed" };
    // Exit non-zero when the outcome could not be recorded, even after a
    // successful command: the waiters would otherwise wait for nothing.
    let unrecorded = if succeeded { EXIT_ERROR } else { code };
    let deadline = Instant::now() + args.timeout;
    match patiently("read the parameter", deadline, poll, || ssm.read()).await {
        Ok(now) if now.flag() == Flag::Reset(reset) => {
            let recorded = patiently("record the outcome", deadline, poll, || ssm.record(outcome));
            if let Err(e) = recorded.await {
                say!("{program} exited with {code}, but the outcome could not be recorded: {e}");
                return Ok(unrecorded);
            }
            say!("{program} exited with {code}; set {parameter} to {outcome:?}");
        }
        Ok(now) => say!(
            "{program} exited with {code}; {parameter} changed while it ran (now {:?}, version \
             {}), so it is left as it is",
            now.value,
            now.version
        ),
        Err(e) => {
            say!("{program} exited with {code}, but the outcome could not be recorded: {e}");
            return Ok(unrecorded);
        }
    }
    ssm.tidy(reset).await;
    Ok(code)
}

/// Runs the command with this process's stdio, forwarding SIGINT and
/// SIGTERM to it (an operator's Ctrl-C, CodeDeploy stopping a hook), so that
/// the outcome is recorded however it ends.
async fn run(command: &[OsString]) -> std::io::Result<std::process::ExitStatus> {
    use tokio::signal::unix::{SignalKind, signal};
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    // Listen before the child exists, so no signal falls between.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut child = tokio::process::Command::new(program).args(rest).spawn()?;
    loop {
        let signal = tokio::select! {
            status = child.wait() => return status,
            Some(()) = interrupt.recv() => libc::SIGINT,
            Some(()) = terminate.recv() => libc::SIGTERM,
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) takes plain integers and touches no memory of
            // ours; `pid` is our own child, not yet reaped.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn claim_args(parameter: &str, wait: bool, timeout: u64, command: &[&str]) -> Invocation {
        Invocation::Claim(Args {
            parameter: parameter.into(),
            wait,
            timeout: Duration::from_secs(timeout),
            command: args(command),
        })
    }

    #[test]
    fn arguments_parse_by_hand() {
        let ok: &[(&[&str], Invocation)] = &[
            (
                &["--parameter", "/app/flag", "--", "sh", "-c", "echo"],
                claim_args("/app/flag", false, 3600, &["sh", "-c", "echo"]),
            ),
            (
                &[
                    "--parameter=/app/flag",
                    "--wait",
                    "--timeout",
                    "5",
                    "--",
                    "m",
                    "--wait",
                ],
                claim_args("/app/flag", true, 5, &["m", "--wait"]),
            ),
            (
                &["--wait", "--timeout=0", "--parameter", "flag", "--", "--"],
                claim_args("flag", true, 0, &["--"]),
            ),
            (&["--help"], Invocation::Help),
            (&["--parameter", "x", "-h"], Invocation::Help),
        ];
        for (input, expected) in ok {
            assert_eq!(parse_args(&args(input)).as_ref(), Ok(expected), "{input:?}");
        }
        let bad: &[(&[&str], &str)] = &[
            (&[], "--parameter NAME is required"),
            (&["--parameter", "/a"], "no command"),
            (&["--parameter", "/a", "--"], "no command"),
            (&["--parameter"], "--parameter needs a value"),
            (
                &["--parameter", "--wait", "--", "x"],
                "--parameter needs a value",
            ),
            (&["--parameter", "", "--", "x"], "--parameter is empty"),
            (
                &["--parameter", "/a", "--parameter", "/b", "--", "x"],
                "twice",
            ),
            (
                &["--parameter", "/a", "--timeout", "soon", "--", "x"],
                "whole number",
            ),
            (
                &["--parameter", "/a", "--timeout", "-1", "--", "x"],
                "whole number",
            ),
            (
                &["--parameter", "/a", "--timeout", "--", "x"],
                "--timeout needs a value",
            ),
            (
                &["--parameter", "/a", "--wait=yes", "--", "x"],
                "unknown option --wait=yes",
            ),
            (
                &["--parameter", "/a", "--force", "--", "x"],
                "unknown option --force",
            ),
            (
                &["--parameter", "/a", "make", "migrate"],
                "put the command after `--`",
            ),
            (
                &[
                    "--parameter",
                    "arn:aws:ssm:eu-west-1:1:parameter/a",
                    "--",
                    "x",
                ],
                "not its ARN",
            ),
        ];
        for (input, expected) in bad {
            match parse_args(&args(input)) {
                Err(message) => assert!(message.contains(expected), "{input:?}: {message}"),
                Ok(parsed) => panic!("{input:?} parsed as {parsed:?}"),
            }
        }
    }

    fn reading(value: &str, version: i64) -> Reading {
        Reading {
            value: value.into(),
            version,
            modified_ms: 1_000 * version,
        }
    }

    fn reset(version: i64) -> Reset {
        Reset {
            version,
            modified_ms: 1_000 * version,
        }
    }

    #[test]
    fn the_first_reading_claims_a_reset_and_explains_everything_else() {
        type Expected = Result<Reset, (i32, &'static str)>;
        let cases: &[(&str, bool, Expected)] = &[
            ("0", false, Ok(reset(7))),
            (" 0\n", true, Ok(reset(7))),
            ("1", false, Err((0, "already ran and succeeded"))),
            ("1", true, Err((0, "already ran and succeeded"))),
            ("failed", false, Err((0, "failed after the latest reset"))),
            ("failed", true, Err((1, "failed after the latest reset"))),
            ("banana", false, Err((2, "holds \"banana\", not \"0\""))),
            ("", true, Err((2, "holds \"\""))),
        ];
        for (value, wait, expected) in cases {
            let got = on_read("/app/flag", &reading(value, 7), *wait);
            match (got, expected) {
                (Ok(r), Ok(e)) => assert_eq!(r, *e),
                (Err(exit), Err((code, text))) => {
                    assert_eq!(exit.code, *code, "{value:?} wait={wait}");
                    assert!(exit.message.contains(text), "{}", exit.message);
                    assert!(exit.message.contains("/app/flag"), "{}", exit.message);
                }
                (got, _) => panic!("{value:?} wait={wait}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_waiter_follows_the_reset_it_lost() {
        let claimed = reset(7);
        assert_eq!(on_poll("/f", claimed, &reading("0", 7)), Waited::Still);
        assert_eq!(on_poll("/f", claimed, &reading("0", 9)), Waited::NewReset);
        // Same version, other time: the parameter was deleted and created again.
        let recreated = Reading {
            modified_ms: 99,
            ..reading("0", 7)
        };
        assert_eq!(on_poll("/f", claimed, &recreated), Waited::NewReset);
        let code = |r: &Reading| match on_poll("/f", claimed, r) {
            Waited::Done(exit) => exit.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(&reading("1", 8)), 0);
        assert_eq!(code(&reading("failed", 8)), 1);
        assert_eq!(code(&reading("banana", 8)), 2);
    }

    #[test]
    fn claim_records_live_under_the_parameter() {
        assert_eq!(claims_path("/app/flag"), "/app/flag/claims");
        assert_eq!(claims_path("flag"), "/flag/claims");
        assert_eq!(claims_path("/app/flag/"), "/app/flag/claims");
        assert_eq!(
            claim_name(
                "/app/flag",
                Reset {
                    version: 12,
                    modified_ms: 1_764_556_800_123
                }
            ),
            "/app/flag/claims/12-1764556800123"
        );
    }

    #[test]
    fn only_records_of_older_resets_are_tidied_away() {
        let day = FORGOTTEN_MS;
        let current = Reset {
            version: 10,
            modified_ms: 10 * day,
        };
        let names: Vec<String> = [
            "/f/claims/8-100".to_string(),            // older version
            format!("/f/claims/10-{}", 10 * day),     // our own
            format!("/f/claims/11-{}", 10 * day + 5), // a newer reset
            format!("/f/claims/40-{}", 8 * day),      // before a re-creation
            format!("/f/claims/12-{}", 10 * day - 5), // newer version, skewed clock
            "/f/claims/notes".to_string(),            // not ours
            "/f/claims/3-x".to_string(),              // not ours
        ]
        .into();
        assert_eq!(
            superseded_claims("/f", &names, current),
            vec![
                "/f/claims/8-100".to_string(),
                format!("/f/claims/40-{}", 8 * day)
            ]
        );
    }

    #[test]
    fn holders_are_named_for_the_people_waiting() {
        let record = r#"{"host":"ip-10-0-1-5","pid":4242,"startedAt":"2026-12-01T03:00:00Z"}"#;
        assert_eq!(
            describe_holder(Some(record)),
            "pid 4242 on host ip-10-0-1-5 (since 2026-12-01T03:00:00Z)"
        );
        assert!(describe_holder(Some("garbage")).contains("could not be read"));
        assert!(describe_holder(None).contains("could not be read"));
        let me = Holder::me();
        assert_eq!(me.pid, std::process::id());
        assert!(
            !me.host.is_empty() && me.started_at.ends_with('Z'),
            "{me:?}"
        );
    }

    #[test]
    fn polls_back_off_to_a_bound_and_stop_at_the_deadline() {
        let base = Duration::from_millis(100);
        let long = Duration::from_secs(3600);
        let delays: Vec<u128> = (0..8)
            .map(|n| poll_delay(n, base, long).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        assert_eq!(poll_delay(u32::MAX, base, long), base * MAX_POLL_FACTOR);
        assert_eq!(
            poll_delay(3, base, Duration::from_millis(30)),
            Duration::from_millis(30)
        );
        let j = jittered(Duration::from_millis(1000));
        assert!(j >= Duration::from_millis(750) && j <= Duration::from_millis(1000));
        assert_eq!(poll_base(None), DEFAULT_POLL);
        assert_eq!(poll_base(Some("5")), Duration::from_millis(5));
        assert_eq!(poll_base(Some("0")), DEFAULT_POLL);
        assert_eq!(poll_base(Some("lots")), DEFAULT_POLL);
    }

    #[test]
    fn a_command_exits_with_its_code_or_128_plus_its_signal() {
        assert_eq!(exit_code(Some(0), None), 0);
        assert_eq!(exit_code(Some(3), None), 3);
        assert_eq!(exit_code(None, Some(9)), 137);
        assert_eq!(exit_code(None, Some(15)), 143);
        assert_eq!(exit_code(None, None), 1);
    }
}
