//! One pipeline action run end to end, for the whole-system tests of the
//! images (`tests/images.rs`) and the roll (`tests/rolling.rs`): the built
//! binary as a Lambda against local-aws, driven through CodePipeline jobs.

use local_aws::{ActionResult, FunctionHost, LocalAws, PipelineDriver, Scenario};
use std::time::Duration;

/// The function under test: the binary cargo built, or
/// `MIGRATE_ONCE_BOOTSTRAP` (e.g. a `cargo lambda build` output) when set.
pub fn bootstrap() -> String {
    std::env::var("MIGRATE_ONCE_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrate-once").to_string())
}

/// A control plane, the function host, and what the last action run did.
pub struct Run {
    pub aws: LocalAws,
    pub host: FunctionHost,
    pub result: ActionResult,
}

impl Run {
    /// Starts `scenario` and runs its pipeline execution's action once.
    pub async fn start(scenario: Scenario) -> Run {
        let aws = LocalAws::start(scenario).await.unwrap();
        let host = FunctionHost::for_scenario(&aws, bootstrap()).expect("function binary");
        let result = drive(&aws, &host).await;
        Run { aws, host, result }
    }

    /// Everything a person needs when an assertion fails.
    pub fn explain(&self) -> String {
        let calls: Vec<String> = self.aws.calls().iter().map(|c| c.to_string()).collect();
        format!(
            "status {:?}, type {:?}, message {:?}\nreports: {:#?}\ncalls:\n{}\nfunction logs:\n{}",
            self.result.status,
            self.result.failure_type,
            self.result.message,
            self.result.reports,
            calls.join("\n"),
            self.host.logs()
        )
    }

    pub fn message(&self) -> &str {
        self.result.message.as_deref().unwrap_or_default()
    }

    pub fn output(&self, name: &str) -> Option<&str> {
        self.result.output_variables.get(name).map(String::as_str)
    }
}

/// Runs the scenario's pipeline execution's action once more (a stage
/// retry after the first run).
pub async fn drive(aws: &LocalAws, host: &FunctionHost) -> ActionResult {
    let driver = PipelineDriver::new(aws, host);
    let execution = aws.scenario().execution_id();
    tokio::time::timeout(Duration::from_secs(40), driver.run(&execution))
        .await
        .unwrap_or_else(|_| panic!("the action did not end within 40 s\n{}", host.logs()))
}
