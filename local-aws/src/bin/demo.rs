//! Watch a deployment without an AWS account: runs the real built function
//! against the local control plane and prints what the CodePipeline console
//! would show — first a migration that succeeds, then one that fails.
//!
//! ```text
//! cargo build --bin migrate-once
//! cargo run -p local-aws --bin demo -- --bootstrap target/debug/migrate-once
//! ```
//!
//! Options: `--scenario FILE` (repeatable; default the two demo scenarios),
//! `--echo-logs` (show the function's own log lines).

use local_aws::{Console, FunctionConfig, FunctionHost, LocalAws, PipelineDriver, Scenario};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    bootstrap: PathBuf,
    scenarios: Vec<PathBuf>,
    echo_logs: bool,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bootstrap: workspace().join("target/debug/migrate-once"),
        scenarios: Vec::new(),
        echo_logs: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bootstrap" => {
                args.bootstrap = it.next().ok_or("--bootstrap needs a path")?.into();
            }
            "--scenario" => args
                .scenarios
                .push(it.next().ok_or("--scenario needs a path")?.into()),
            "--echo-logs" => args.echo_logs = true,
            "-h" | "--help" => {
                return Err(
                    "usage: demo [--bootstrap target/debug/migrate-once] [--scenario FILE]... [--echo-logs]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.scenarios.is_empty() {
        let dir = workspace().join("tests/scenarios");
        args.scenarios = vec![dir.join("demo-success.json"), dir.join("demo-failure.json")];
    }
    Ok(args)
}

async fn run_one(args: &Args, path: &PathBuf, color: bool) -> Result<(), String> {
    let scenario = Scenario::from_file(path).map_err(|e| e.to_string())?;
    if !scenario.description.is_empty() {
        let text = format!("# {}", scenario.description);
        if color {
            println!("\x1b[2m{text}\x1b[0m");
        } else {
            println!("{text}");
        }
    }
    let aws = LocalAws::start(scenario)
        .await
        .map_err(|e| format!("cannot start the local control plane: {e}"))?;
    let mut config = FunctionConfig::from_scenario(aws.scenario(), &args.bootstrap);
    config.echo_logs |= args.echo_logs;
    let host = FunctionHost::start(&aws, config).map_err(|e| e.to_string())?;
    let driver = PipelineDriver::new(&aws, &host).with_observer(Console::new(color).observer());
    driver.run_default().await;
    host.shutdown();
    println!();
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let color = std::io::stdout().is_terminal();
    println!(
        "migrate-once on a local control plane (no AWS account): {}\n",
        args.bootstrap.display()
    );
    for path in &args.scenarios {
        if let Err(e) = run_one(&args, path, color).await {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
