//! One schedule, drawn from a seed: the families and their configuration,
//! the pipeline executions and when they start, what each migration task
//! does, and how often the network and Lambda misbehave.
//!
//! Everything a schedule does that is not the product's own decision is
//! decided here or by a generator forked from here, so that a seed is the
//! whole schedule.

use local_aws::scenario::{ParameterSpec, TaskOutcome, UserParameters};
use local_aws::{Scenario, ids};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::rng::Rng;
use crate::wire::{FaultRates, Scripted, Window};

/// The cluster every family migrates on.
pub const CLUSTER: &str = "app";
/// The pipeline, stage and action the world models (family 0's); the
/// other families' pipelines are not modelled beyond their jobs.
pub const PIPELINE: &str = "app-pipeline";
pub const STAGE: &str = "Migrate";
/// The decisive container.
pub const CONTAINER: &str = "migrate";
/// The service family 0's pipeline may roll.
pub const SERVICE: &str = "web";

/// One task family migrating one database, deployed by one pipeline.
#[derive(Debug, Clone)]
pub struct Family {
    /// The task definition family.
    pub family: String,
    /// Its state parameter.
    pub state: String,
    /// Its lock (families may share one).
    pub lock: String,
    /// Its reset parameters.
    pub resets: Vec<String>,
    /// The secret in its environment overrides, if any.
    pub secret: Option<String>,
    /// `rerun`: `"once"` or `"always"`.
    pub rerun_always: bool,
    /// `timeoutSeconds`.
    pub timeout: u64,
    /// Whether this family's pipeline is the world's (EventBridge events,
    /// RetryStageExecution).
    pub modelled: bool,
    /// `stopOnPipelineStop`.
    pub stop_on_pipeline_stop: bool,
    /// The services rolled after the migration (`deploy`), if any.
    pub services: Vec<String>,
    /// Its UserParameters.
    pub params: Value,
}

/// One pipeline execution (a deployment) of a family.
#[derive(Debug, Clone)]
pub struct Execution {
    /// The pipeline execution id, also the deployment id.
    pub id: String,
    /// Index into [`Plan::families`].
    pub family: usize,
    /// Virtual seconds after the schedule's start.
    pub start_at: u64,
    /// The pipeline is stopped this many seconds into its first action run.
    pub stop_after: Option<u64>,
}

/// How Lambda and CodePipeline misbehave.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// An event is delivered twice at once.
    pub concurrent_copy: f64,
    /// An event is delivered again up to 6 h later.
    pub late_copy: f64,
    /// Largest clock skew of an environment, milliseconds either way.
    pub skew_millis: i64,
    /// CodePipeline's pause before the job after a continuation.
    pub continuation_delay: u64,
    /// An operator retries a failed stage.
    pub operator_retry: f64,
    /// An operator asks for a rerun through EventBridge.
    pub operator_rerun: f64,
}

/// A whole schedule.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The world.
    pub scenario: Scenario,
    /// The families.
    pub families: Vec<Family>,
    /// Every execution, in start order.
    pub executions: Vec<Execution>,
    /// Per-request faults.
    pub rates: FaultRates,
    /// Busy windows.
    pub windows: Vec<Window>,
    /// Faults a regression asks for, on top of the drawn ones.
    pub scripted: Vec<Scripted>,
    /// Lambda's and CodePipeline's behaviour.
    pub delivery: Delivery,
}

/// Draws the schedule of `seed`.
pub fn plan(seed: u64) -> Plan {
    let mut rng = Rng::new(seed);
    let family_count = rng.range(1, 3) as usize;
    let shared_lock = family_count > 1 && rng.chance(0.5);
    // One secret per schedule, in every family's overrides or in none: the
    // tasks (whose log lines may print it) are not drawn per family.
    let secret = rng
        .chance(0.5)
        .then(|| format!("s3cr3t-{:08x}", rng.u64() as u32));
    let families: Vec<Family> = (0..family_count)
        .map(|i| family(&mut rng.fork(), i, shared_lock, secret.clone()))
        .collect();

    let mut executions = Vec::new();
    let mut at = 0;
    for _ in 0..rng.range(1, 4) {
        let family = rng.range(0, family_count as u64 - 1) as usize;
        executions.push(Execution {
            id: uuid(&mut rng),
            family,
            start_at: at,
            stop_after: rng.chance(0.08).then(|| rng.range(5, 900)),
        });
        // Deployments overlap, follow closely, or come hours apart.
        at += *rng.pick(&[0, 5, 40, 300, 1200, 4000, 20_000]);
    }

    let mut tasks = Vec::new();
    for _ in 0..24 {
        tasks.push(task(&mut rng, &families[0]));
    }

    let quiet = rng.chance(0.3);
    let rates = if quiet {
        FaultRates::default()
    } else {
        FaultRates {
            crash_before: rng.unit() * 0.01,
            crash_after: rng.unit() * 0.01,
            lost_answer: rng.unit() * 0.02,
        }
    };
    let mut windows = Vec::new();
    if !quiet {
        for _ in 0..rng.range(0, 3) {
            let from = rng.range(0, 3600);
            windows.push(Window {
                service: ["ssm", "ssm", "ecs", "codepipeline", "logs"][rng.range(0, 4) as usize],
                from,
                until: from + rng.range(5, 90),
                throttle: rng.chance(0.7),
                share: 0.3 + rng.unit() * 0.6,
            });
        }
    }
    let delivery = Delivery {
        concurrent_copy: if quiet { 0.0 } else { rng.unit() * 0.05 },
        late_copy: if quiet { 0.0 } else { rng.unit() * 0.05 },
        skew_millis: rng.range(0, 2000) as i64,
        continuation_delay: rng.range(1, 30),
        operator_retry: rng.unit() * 0.6,
        operator_rerun: rng.unit() * 0.2,
    };

    let rollouts: Vec<Value> = (0..8).map(|_| rollout(&mut rng)).collect();
    let scenario = scenario(&families, &executions, tasks, rollouts);
    Plan {
        scenario,
        families,
        executions,
        rates,
        windows,
        scripted: Vec::new(),
        delivery,
    }
}

fn family(rng: &mut Rng, i: usize, shared_lock: bool, secret: Option<String>) -> Family {
    let family = format!("db-migrate-{}", (b'a' + i as u8) as char);
    let state = format!("/migrate-once/{CLUSTER}/{family}");
    let lock = if shared_lock {
        format!("/migrate-once/{CLUSTER}/shared-lock")
    } else {
        format!("{state}/lock")
    };
    let resets: Vec<String> = (0..rng.range(0, 2))
        .map(|r| format!("/app/{family}/once-{r}"))
        .collect();
    // An hour-long timeout costs hundreds of looks: drawn rarely.
    let timeout = if rng.chance(0.05) {
        3600
    } else {
        *rng.pick(&[60, 120, 300, 900])
    };
    let wait = *rng.pick(&[0, 5, 20]);
    let rerun_always = rng.chance(0.15);
    let stop_on_pipeline_stop = rng.chance(0.5);
    // Family 0's pipeline rolls its web service after the migration.
    let services: Vec<String> = if i == 0 && rng.chance(0.35) {
        vec![SERVICE.to_owned()]
    } else {
        Vec::new()
    };
    let mut params = json!({
        "deployment": local_aws::scenario::EXECUTION_ID_VARIABLE,
        "cluster": CLUSTER,
        "taskDefinition": family,
        "command": ["migrate", "up"],
        "launchType": "FARGATE",
        "network": {"subnets": ["subnet-0a1b"], "securityGroups": ["sg-0a1b"]},
        "timeoutSeconds": timeout,
        "waitSeconds": wait,
        "maxAutoReruns": rng.range(0, 2),
        "stopOnPipelineStop": stop_on_pipeline_stop,
    });
    if shared_lock {
        params["lock"] = json!(lock);
    }
    if !resets.is_empty() {
        params["resetParameters"] = json!(resets);
    }
    if let Some(secret) = &secret {
        params["environment"] = json!({"DB_PASSWORD": secret});
    }
    if rerun_always {
        params["rerun"] = json!("always");
    }
    if !services.is_empty() {
        params["deploy"] =
            json!({"services": services, "timeoutSeconds": *rng.pick(&[60, 300, 900])});
    }
    Family {
        family,
        state,
        lock,
        resets,
        secret,
        rerun_always,
        timeout,
        modelled: i == 0,
        stop_on_pipeline_stop,
        services,
        params,
    }
}

/// The timeline step of a task that runs past `timeout` seconds.
pub fn past_timeout(timeout: u64) -> u64 {
    timeout * 500 + 10_000
}

/// What the next task RunTask creates does.
fn task(rng: &mut Rng, family: &Family) -> TaskOutcome {
    let step = rng.range(2, 60) * 1000;
    let mut outcome = TaskOutcome {
        step_millis: Some(step),
        stop_delay_millis: if rng.chance(0.3) {
            rng.range(1, 120) * 1000
        } else {
            0
        },
        missing_describes: if rng.chance(0.2) {
            rng.range(1, 2) as u32
        } else {
            0
        },
        ..TaskOutcome::default()
    };
    let said = match &family.secret {
        Some(secret) if rng.chance(0.5) => format!("connecting with password={secret}"),
        _ => "connecting".to_owned(),
    };
    outcome.log_lines = BTreeMap::from([(
        CONTAINER.to_owned(),
        vec![said, "applying 0042_add_index".to_owned()],
    )]);
    let r = rng.unit();
    if r < 0.70 {
        outcome.exit_codes = Some(BTreeMap::from([(CONTAINER.to_owned(), 0)]));
    } else if r < 0.80 {
        outcome.exit_codes = Some(BTreeMap::from([(CONTAINER.to_owned(), 1)]));
    } else if r < 0.86 {
        outcome.run_task_failure = Some("RESOURCE:MEMORY".into());
    } else if r < 0.90 {
        outcome.stop_code = "TaskFailedToStart".into();
        outcome.stopped_reason = "CannotPullContainerError: pull access denied".into();
        outcome.exit_codes = Some(BTreeMap::new());
    } else {
        outcome.step_millis = Some(past_timeout(family.timeout));
        outcome.exit_codes = Some(BTreeMap::from([(CONTAINER.to_owned(), 0)]));
    }
    outcome
}

/// How the next deployment of the web service goes.
fn rollout(rng: &mut Rng) -> Value {
    let r = rng.unit();
    let outcome = if r < 0.6 {
        "completed"
    } else if r < 0.75 {
        "failed"
    } else if r < 0.9 {
        "rolledBack"
    } else {
        "stuck"
    };
    json!({
        "outcome": outcome,
        "steps": rng.range(1, 6),
        "stepMillis": rng.range(1, 40) * 1000,
        "rollbackSteps": rng.range(0, 2),
    })
}

fn scenario(
    families: &[Family],
    executions: &[Execution],
    tasks: Vec<TaskOutcome>,
    rollouts: Vec<Value>,
) -> Scenario {
    let mut definitions: Vec<Value> = families
        .iter()
        .map(|f| {
            json!({
                "family": f.family,
                "containers": [{
                    "name": CONTAINER,
                    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
                    "logGroup": "/ecs/app",
                    "logStreamPrefix": "migrate",
                }],
            })
        })
        .collect();
    definitions.push(json!({
        "family": SERVICE,
        "revision": 7,
        "containers": [{"name": SERVICE, "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"}],
    }));
    let mut scenario: Scenario = serde_json::from_value(json!({
        "pipeline": {"name": PIPELINE, "stage": STAGE, "action": STAGE},
        "clusters": [CLUSTER],
        "taskDefinitions": definitions,
        "services": [{
            "name": SERVICE,
            "cluster": CLUSTER,
            "launchType": "FARGATE",
            "subnets": ["subnet-0a1b"],
            "securityGroups": ["sg-0a1b"],
            "taskDefinition": format!("{SERVICE}:7"),
            "desiredCount": 2,
            "rollouts": rollouts,
        }],
        "userParameters": families[0].params,
    }))
    .expect("the simulator's scenario is well-formed");
    scenario.tasks = tasks;
    scenario.parameters = families
        .iter()
        .flat_map(|f| &f.resets)
        .map(|name| ParameterSpec {
            name: name.clone(),
            value: json!("1"),
            kind: "String".into(),
        })
        .collect();
    scenario.execution_user_parameters = executions
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                UserParameters::Json(families[e.family].params.clone()),
            )
        })
        .collect();
    scenario.function.name = "migrate-once".into();
    scenario
}

/// A pipeline execution id.
fn uuid(rng: &mut Rng) -> String {
    ids::uuid_from(rng.u64(), rng.u64())
}
