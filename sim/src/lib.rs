//! Deterministic simulation of migrate-once: the real handler (the code the
//! Lambda runs, `migrate_once::Function`) against local-aws's world, in one
//! process, on tokio's paused clock, with every choice the world makes drawn
//! from one seed.
//!
//! - [`draw`]: the schedule a seed stands for (families, executions, tasks,
//!   fault rates).
//! - [`wire`]: the SDK's `HttpClient` into the world, with crashes, lost
//!   answers, throttling and 5xx.
//! - [`lambda`]: asynchronous invocations, copies, retries, environments
//!   and their clock skew.
//! - [`pipeline`]: CodePipeline's action runs, stage retries, stops and
//!   EventBridge events.
//! - [`check`]: the invariants.
//! - [`timeline`]: the story of a schedule, for a seed replayed.
//!
//! A schedule is one `tokio` current-thread runtime with paused time: when
//! every task waits, time jumps to the next timer, so a 6-hour late copy
//! costs nothing. Same seed, same schedule: local-aws's ids, the SDK's
//! retry jitter (fastrand) and the product's clock are all seeded from it.

pub mod check;
pub mod draw;
pub mod lambda;
pub mod pipeline;
pub mod rng;
pub mod timeline;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::rng::Rng;
use crate::timeline::Timeline;

/// How long the world is left alone after the last action ended, so that
/// every late copy (up to 6 h) arrives before the checks at rest.
const REST: Duration = Duration::from_secs(7 * 3600);
/// A schedule still busy after this much virtual time is a violation.
const HORIZON: Duration = Duration::from_secs(4 * 24 * 3600);

/// Counts what is still going on (action runs, deliveries, operators), so
/// that the schedule knows when it has ended.
#[derive(Clone)]
pub struct Busy(Arc<watch::Sender<usize>>);

/// One thing going on; dropped when it ends.
pub struct Entered(Arc<watch::Sender<usize>>);

impl Busy {
    fn new() -> Busy {
        Busy(Arc::new(watch::Sender::new(0)))
    }

    /// Something starts.
    pub fn enter(&self) -> Entered {
        self.0.send_modify(|n| *n += 1);
        Entered(self.0.clone())
    }

    async fn idle(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// What one schedule found.
#[derive(Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Each violated invariant, as a sentence.
    pub violations: Vec<String>,
    /// The story, when it was kept.
    pub timeline: Option<String>,
    /// Deliveries made (a size of the schedule).
    pub deliveries: usize,
    /// Every action run: its execution (index), how it ended, its jobs and
    /// its final report's failure type.
    pub runs: Vec<(usize, pipeline::End, usize, Option<String>)>,
}

/// Runs the schedule of `seed`; keeps its timeline when `story` is set.
pub fn simulate(seed: u64, story: bool) -> Outcome {
    simulate_plan(seed, draw::plan(seed), story)
}

/// Runs `plan` (drawn from `seed`, perhaps edited by a regression).
pub fn simulate_plan(seed: u64, plan: draw::Plan, story: bool) -> Outcome {
    // A thread of its own: the handler's futures are deep (a debug build
    // needs more than a test thread's stack), and the virtual epoch and the
    // seeded ids are per thread.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("a current-thread runtime");
            runtime.block_on(schedule(seed, plan, story))
        })
        .expect("a simulation thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

async fn schedule(seed: u64, plan: draw::Plan, story: bool) -> Outcome {
    local_aws::ids::reseed(seed);
    fastrand::seed(seed);
    local_aws::clock::set_virtual_epoch(lambda::epoch());
    let plan = Arc::new(plan);
    let mut rng = Rng::new(seed.rotate_left(17));
    let timeline = Arc::new(Timeline::new(story));
    let busy = Busy::new();

    let (retries_tx, mut retries_rx) = tokio::sync::mpsc::unbounded_channel();
    let online = Arc::new(check::Online::new(&plan, retries_tx));
    let aws = local_aws::LocalAws::in_process(plan.scenario.clone());
    let net = wire::Net::new(
        aws,
        rng.fork(),
        plan.rates,
        plan.windows.clone(),
        plan.scripted.clone(),
        online.clone(),
        timeline.clone(),
    );
    let lambda = lambda::Lambda::new(
        net.clone(),
        rng.fork(),
        plan.delivery,
        timeline.clone(),
        busy.clone(),
    );
    let pipelines = pipeline::Pipelines::new(
        plan.clone(),
        lambda.clone(),
        rng.fork(),
        timeline.clone(),
        busy.clone(),
        online.reported.clone(),
    );

    let retrying = {
        let pipelines = pipelines.clone();
        tokio::spawn(async move {
            while let Some(execution) = retries_rx.recv().await {
                pipelines.retried(&execution);
            }
        })
    };
    let starting = busy.enter();
    pipelines.start();
    drop(starting);

    let mut violations = Vec::new();
    let ended = tokio::time::timeout(HORIZON, async {
        busy.idle().await;
        tokio::time::sleep(REST).await;
        busy.idle().await;
    })
    .await;
    if ended.is_err() {
        violations.push(format!(
            "unended: the schedule was still busy after {} h of virtual time",
            HORIZON.as_secs() / 3600
        ));
    }
    retrying.abort();

    let runs = pipelines
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let deliveries = lambda.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let reruns = online
        .reruns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let first_claims = online
        .first_claims
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let updates = online
        .updates
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    violations.extend(online.violations());
    violations.extend(check::at_rest(&check::Facts {
        plan: &plan,
        aws: &net.aws,
        runs: &runs,
        deliveries: &deliveries,
        reruns: &reruns,
        first_claims: &first_claims,
        updates: &updates,
    }));
    local_aws::clock::clear_virtual_epoch();
    Outcome {
        seed,
        violations,
        timeline: story.then(|| timeline.render()),
        deliveries: deliveries.len(),
        runs: runs
            .iter()
            .map(|r| {
                let failure = r.last.as_ref().and_then(|l| l.failure_type.clone());
                (r.execution, r.end, r.jobs.len(), failure)
            })
            .collect(),
    }
}
