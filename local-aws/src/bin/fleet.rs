//! `make fleet`: many deployments at once under the account's API quotas
//! (issue 14); prints the table of [`local_aws::fleet::FleetReport`] and
//! exits non-zero when an invariant fails (a failed or unfinished
//! deployment, a duplicate task, two migrations overlapping on a lock).
//!
//! ```text
//! fleet --bootstrap target/release/migrate-once --deployments 200 \
//!       --families 150 --shared-locks 50 --lock-groups 10 --quota-scale 1
//! ```
//!
//! `--quota-scale 0` turns throttling off; `--step-millis` sets the
//! scripted task step (PENDING, RUNNING, STOPPED); `--continuation-millis`
//! the pipeline's pause between jobs; `--wait-seconds` the actions'
//! `waitSeconds` [5] (0: no backoff inside an invocation); `--instances`
//! the most function processes; `--bound-seconds` how long an action may
//! run.

use local_aws::fleet::{FleetConfig, run};
use std::process::ExitCode;
use std::time::Duration;

fn args() -> Result<FleetConfig, String> {
    let mut c = FleetConfig {
        deployments: 200,
        families: 150,
        shared_locks: 50,
        lock_groups: 10,
        bound: Duration::from_secs(1800),
        wait_seconds: 5,
        ..FleetConfig::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|e| format!("{flag}: {e} (got {v:?})"))
        };
        match flag.as_str() {
            "--deployments" => c.deployments = num(&value)?,
            "--families" => c.families = num(&value)?,
            "--shared-locks" => c.shared_locks = num(&value)?,
            "--lock-groups" => c.lock_groups = num(&value)?,
            "--instances" => c.max_instances = num(&value)?,
            "--step-millis" => c.step_millis = num(&value)? as u64,
            "--continuation-millis" => c.continuation_millis = num(&value)? as u64,
            "--wait-seconds" => c.wait_seconds = num(&value)? as u64,
            "--bound-seconds" => c.bound = Duration::from_secs(num(&value)? as u64),
            "--quota-scale" => {
                let scale: f64 = value
                    .parse()
                    .map_err(|e| format!("--quota-scale: {e} (got {value:?})"))?;
                c.quota_scale = (scale > 0.0).then_some(scale);
            }
            "--bootstrap" => c.bootstrap = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if c.shared_locks > c.families {
        return Err("--shared-locks must not exceed --families".into());
    }
    Ok(c)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let config = match args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet: {e}");
            return ExitCode::from(2);
        }
    };
    let quotas = match config.quota_scale {
        Some(s) => format!("AWS default quotas x{s}"),
        None => "no throttling".into(),
    };
    let title = format!(
        "fleet: {} deployments over {} families ({} on {} shared locks), {quotas}, task step {} ms",
        config.deployments,
        config.families,
        config.shared_locks,
        config.lock_groups,
        config.step_millis
    );
    let report = match run(&config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleet: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.table(&title));
    let violations = report.violations();
    if violations.is_empty() {
        println!("invariants: all hold");
        ExitCode::SUCCESS
    } else {
        println!("invariants FAILED: {}", violations.join("; "));
        ExitCode::FAILURE
    }
}
