//! The local control plane on its own, for a function that something else
//! runs — `cargo lambda watch` (see `.ci/invoke-events` and the README's
//! "Invoke it by hand"):
//!
//! ```text
//! cargo run -p local-aws --bin serve -- --scenario tests/scenarios/invoke-events.json \
//!     --jobs events --env-file target/local-aws.env
//! cargo lambda watch --bin migrate-once --env-file target/local-aws.env
//! ```
//!
//! Loads the scenario, makes the CodePipeline jobs of the given event files
//! known (so that their reports are accepted), prints
//! `AWS_ENDPOINT_URL=http://127.0.0.1:PORT`, writes the environment an SDK
//! client needs to reach it (endpoint, region, fake credentials) to
//! `--env-file`, then prints one JSON line per accepted job report and runs
//! until it is killed or `--exit-after` seconds have passed.

use local_aws::{JobReport, LocalAws, Scenario};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: serve --scenario FILE [--jobs FILE_OR_DIR]... [--env-file FILE] [--exit-after SECONDS]";

struct Args {
    scenario: PathBuf,
    jobs: Vec<PathBuf>,
    env_file: Option<PathBuf>,
    exit_after: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut scenario = None;
    let mut args = Args {
        scenario: PathBuf::new(),
        jobs: Vec::new(),
        env_file: None,
        exit_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--scenario" => scenario = Some(PathBuf::from(value()?)),
            "--jobs" => args.jobs.push(value()?.into()),
            "--env-file" => args.env_file = Some(value()?.into()),
            "--exit-after" => {
                let text = value()?;
                let secs: u64 = text
                    .parse()
                    .map_err(|_| format!("--exit-after: {text:?} is not a number of seconds"))?;
                args.exit_after = Some(Duration::from_secs(secs));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    args.scenario = scenario.ok_or(USAGE)?;
    Ok(args)
}

/// The `CodePipeline.job` ids (and continuation tokens) of the event files
/// at `path` (a file, or every `*.json` in a directory); other events are
/// skipped.
fn job_events(path: &Path) -> Result<Vec<(String, Option<String>)>, String> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("cannot list {}: {e}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut jobs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let event: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
        let Some(job) = event.get("CodePipeline.job") else {
            continue;
        };
        let id = job
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{}: the job has no id", file.display()))?;
        let token = job
            .pointer("/data/continuationToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        jobs.push((id.to_owned(), token));
    }
    Ok(jobs)
}

/// One line per report: what CodePipeline was told about a job.
fn report_line(report: &JobReport) -> String {
    let status = match (report.success, &report.continuation_token) {
        (false, _) => "Failed",
        (true, Some(_)) => "InProgress",
        (true, None) => "Succeeded",
    };
    json!({
        "report": report.job_id,
        "status": status,
        "summary": report.summary,
        "failureType": report.failure_type,
        "message": report.failure_message,
    })
    .to_string()
}

async fn run(args: Args) -> Result<(), String> {
    let scenario = Scenario::from_file(&args.scenario).map_err(|e| e.to_string())?;
    let execution_id = scenario.execution_id();
    let aws = LocalAws::start(scenario)
        .await
        .map_err(|e| format!("cannot start the local control plane: {e}"))?;
    for path in &args.jobs {
        for (id, token) in job_events(path)? {
            aws.add_job(&id, &execution_id, token.as_deref());
        }
    }
    if let Some(file) = &args.env_file {
        let text: String = aws
            .sdk_environment()
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        std::fs::write(file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    println!("AWS_ENDPOINT_URL={}", aws.endpoint_url());
    let started = tokio::time::Instant::now();
    let mut printed = 0;
    loop {
        let reports = aws.reports();
        for report in reports.iter().skip(printed) {
            println!("{}", report_line(report));
        }
        printed = printed.max(reports.len());
        if args
            .exit_after
            .is_some_and(|limit| started.elapsed() >= limit)
        {
            return Err(format!(
                "stopping after --exit-after {} s",
                args.exit_after.unwrap_or_default().as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("serve: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::FAILURE
        }
    }
}
