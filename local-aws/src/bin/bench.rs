//! `make bench`: the numbers migrate-once holds itself to, measured here.
//!
//! - **Cold start**: time from spawning the function process to its first
//!   `GET /runtime/invocation/next` (init done), median of N runs, for the
//!   real bootstrap, an empty Rust handler building the same three SDK
//!   clients, and the same empty handler in Python/boto3.
//! - **Peak RSS** (`VmHWM`) of the function process over a whole job (start
//!   and every continuation) against the local control plane.
//! - **AWS calls** made to start the migration (and in how many sequential
//!   round trips) and per progress check; SSM reads and writes per
//!   deployment. `--runs 0` measures only these.
//!
//! ```text
//! bench --bootstrap target/release/migrate-once \
//!       --baseline target/release/examples/empty_handler \
//!       --python bench/python_handler.py [--runs 20]
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use local_aws::{FunctionHost, LocalAws, PipelineDriver};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::Command;

/// The network round trip to AWS the bench's control plane adds to every
/// answer, so that dependent calls are told from concurrent ones.
const LATENCY: Duration = Duration::from_millis(30);

struct Args {
    bootstrap: PathBuf,
    baseline: PathBuf,
    python: PathBuf,
    runs: usize,
    scenario: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        bootstrap: "target/release/migrate-once".into(),
        baseline: "target/release/examples/empty_handler".into(),
        python: "bench/python_handler.py".into(),
        runs: 20,
        scenario: "tests/scenarios/success.json".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bootstrap" => args.bootstrap = value.into(),
            "--baseline" => args.baseline = value.into(),
            "--python" => args.python = value.into(),
            "--runs" => args.runs = value.parse().map_err(|e| format!("--runs: {e}"))?,
            "--scenario" => args.scenario = value.into(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

/// Cold start of the real bootstrap against the empty Rust and Python handlers.
async fn cold_starts(args: &Args) -> Result<(), String> {
    let bootstrap = args.bootstrap.to_string_lossy().into_owned();
    let baseline = args.baseline.to_string_lossy().into_owned();
    let python = args.python.to_string_lossy().into_owned();
    println!(
        "cold start (spawn → first /next), {} runs each, median / p90:",
        args.runs
    );
    let ours = median_cold_start(&[&bootstrap], args.runs).await?;
    let empty = median_cold_start(&[&baseline], args.runs).await?;
    let py = median_cold_start(&["python3", &python], args.runs.min(10)).await?;
    println!(
        "  migrate-once            {:>9} / {:>9}",
        ms(ours.0),
        ms(ours.1)
    );
    println!(
        "  empty Rust handler      {:>9} / {:>9}",
        ms(empty.0),
        ms(empty.1)
    );
    println!(
        "  empty Python/boto3      {:>9} / {:>9}",
        ms(py.0),
        ms(py.1)
    );
    println!(
        "  ratios: {:.2}x the empty Rust handler (goal <= 1.3x), {:.0}x faster than Python/boto3 (goal >= 30x)",
        ours.0.as_secs_f64() / empty.0.as_secs_f64(),
        py.0.as_secs_f64() / ours.0.as_secs_f64()
    );

    Ok(())
}

/// Spawns `program` as a Lambda process and times its init: until it asks
/// the Runtime API for its first invocation.
async fn cold_start(program: &[&str]) -> Result<Duration, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let api = listener.local_addr().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(program[0])
        .args(&program[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "migrate-once")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", local_aws::FAKE_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", local_aws::FAKE_SECRET_ACCESS_KEY)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", program[0]))?;
    let accepted = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await;
    let (mut stream, _) = accepted
        .map_err(|_| format!("{} never asked for an invocation", program[0]))?
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let _ = stream.read(&mut buf).await;
    let elapsed = started.elapsed();
    let _ = child.kill().await;
    Ok(elapsed)
}

async fn median_cold_start(program: &[&str], runs: usize) -> Result<(Duration, Duration), String> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(cold_start(program).await?);
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() * 9 / 10]))
}

/// `VmHWM` (peak resident set) in kB of the live process running `exe`.
fn peak_rss_kb(exe: &Path) -> Option<u64> {
    let exe = exe.canonicalize().ok()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        if std::fs::read_link(entry.path().join("exe")).ok().as_deref() != Some(exe.as_path()) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        return line.split_whitespace().nth(1)?.parse().ok();
    }
    None
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = args()?;
    if args.runs > 0 {
        cold_starts(&args).await?;
    }
    let mut scenario = local_aws::Scenario::from_file(&args.scenario).map_err(|e| e.to_string())?;
    scenario.timing.api_latency_millis = LATENCY.as_millis() as u64;
    let aws = LocalAws::start(scenario).await.map_err(|e| e.to_string())?;
    let host = FunctionHost::for_scenario(&aws, &args.bootstrap).map_err(|e| e.to_string())?;
    let result = PipelineDriver::new(&aws, &host).run_default().await;
    let rss = peak_rss_kb(&args.bootstrap);
    host.shutdown();
    if !result.succeeded() {
        return Err(format!("the benchmark job did not succeed: {result:?}"));
    }
    println!(
        "whole job ({}, {} jobs): peak RSS {} (goal <= 15 MB)",
        args.scenario.display(),
        result.jobs.len(),
        rss.map(|kb| format!("{:.1} MB", kb as f64 / 1024.0))
            .unwrap_or_else(|| "unknown".into())
    );

    let calls = aws.calls();
    let per_job = |job: &str| {
        calls
            .iter()
            .filter(|c| c.job_id.as_deref() == Some(job))
            .count()
    };
    if let Some((first, rest)) = result.jobs.split_first() {
        let progress: Vec<usize> = rest.iter().map(|j| per_job(j)).collect();
        // Every answer takes LATENCY: a call that arrives within half of it
        // after the previous one was sent together with it.
        let mut rounds = 0;
        let mut last: Option<Duration> = None;
        for c in calls
            .iter()
            .filter(|c| c.job_id.as_deref() == Some(first.as_str()))
        {
            if last.is_none_or(|at| c.at.saturating_sub(at) > LATENCY / 2) {
                rounds += 1;
            }
            if std::env::var_os("BENCH_CALLS").is_some() {
                println!("  round {rounds}: {} {}", c.service, c.operation);
            }
            last = Some(c.at);
        }
        println!(
            "AWS calls: {} to start the migration in {rounds} sequential round trips (incl. its report), per continuation: {progress:?} (incl. report)",
            per_job(first)
        );
    }
    let count = |ops: &[&str]| {
        calls
            .iter()
            .filter(|c| ops.contains(&c.operation.as_str()))
            .count()
    };
    println!(
        "SSM per deployment: {} reads (GetParameter, GetParametersByPath), {} writes (PutParameter, DeleteParameters)",
        count(&["GetParameter", "GetParameters", "GetParametersByPath"]),
        count(&["PutParameter", "DeleteParameter", "DeleteParameters"]),
    );
    Ok(())
}
