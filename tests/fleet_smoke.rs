//! The small version of `make fleet` (issue 14) that CI runs: 20
//! deployments started within one second over 20 families, 10 of them on
//! 2 shared locks, the built `migrate-once` binary against the local
//! control plane with the account's API quotas switched on (AWS's defaults
//! ×3, so SSM writes are still throttled). Every deployment must succeed,
//! no (deployment, attempt) may get two tasks, no two migrations on one
//! lock may overlap, and the whole fleet must end within 60 s.

use local_aws::fleet::{FleetConfig, run};
use std::time::Duration;

fn bootstrap() -> String {
    std::env::var("MIGRATE_ONCE_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrate-once").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_deployments_under_quotas_keep_every_guarantee() {
    let config = FleetConfig {
        deployments: 20,
        families: 20,
        shared_locks: 10,
        lock_groups: 2,
        quota_scale: Some(3.0),
        bootstrap: bootstrap(),
        step_millis: 300,
        continuation_millis: 300,
        wait_seconds: 0,
        max_instances: 25,
        start_window: Duration::from_secs(1),
        bound: Duration::from_secs(60),
    };
    let report = match run(&config).await {
        Ok(r) => r,
        Err(e) => panic!("fleet did not run: {e}"),
    };
    let table = report.table("fleet smoke");
    assert!(report.violations().is_empty(), "{table}");
    assert_eq!(report.succeeded, 20, "{table}");
    assert_eq!(report.tasks, 20, "{table}");
    assert!(report.elapsed < Duration::from_secs(60), "{table}");
}
