//! Rolling services, whole-system-ish: the real SDK client talks to the
//! local control plane over HTTP, and each test drives `roll::update`, then
//! `roll::describe` (+ `roll::history` where ours is not listed) +
//! `roll::plan_roll` in a loop the way the roll does — one plan per look —
//! asserting what the pipeline would be told and on which look.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use local_aws::{LocalAws, Scenario};
use migrate_once::roll::{self, RollFailure, RollPlan, Sent, UpdateSpec};
use migrate_once::token::Rolled;
use serde_json::{Value, json};

/// A control plane whose cluster `app` has the services given, each
/// running `<name>:1` with 4 tasks, and an ECS client pointed at it.
async fn world(services: Value) -> (LocalAws, aws_sdk_ecs::Client) {
    world_with_faults(services, json!([])).await
}

/// [`world`], with the scenario's `faults`.
async fn world_with_faults(services: Value, faults: Value) -> (LocalAws, aws_sdk_ecs::Client) {
    let mut definitions = Vec::new();
    let services: Vec<Value> = services
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            let name = s["name"].as_str().expect("name");
            for revision in [1, 2] {
                definitions.push(json!({"family": name, "revision": revision,
                                        "containers": [{"name": name}]}));
            }
            let mut s = s.clone();
            s["cluster"] = json!("app");
            s["taskDefinition"] = json!(format!("{name}:1"));
            s["desiredCount"] = json!(4);
            s
        })
        .collect();
    let scenario = Scenario::from_json(
        &json!({"clusters": ["app"], "taskDefinitions": definitions, "services": services,
                "faults": faults})
        .to_string(),
    )
    .expect("scenario");
    let aws = LocalAws::start(scenario).await.expect("control plane");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(aws.endpoint_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            local_aws::FAKE_ACCESS_KEY_ID,
            local_aws::FAKE_SECRET_ACCESS_KEY,
            None,
            None,
            "local-aws",
        ))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .load()
        .await;
    (aws, aws_sdk_ecs::Client::new(&sdk))
}

/// How a followed roll ended, and on which look.
#[derive(Debug)]
struct Ended {
    plan: RollPlan,
    /// 1-based number of the look (DescribeServices) that decided.
    look: u32,
    /// The failure message the pipeline would get, for a failure.
    message: Option<String>,
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sends `UpdateService` for `service`, expecting an answer.
async fn started(ecs: &aws_sdk_ecs::Client, spec: &UpdateSpec) -> String {
    match roll::update(ecs, spec).await.expect("UpdateService") {
        Sent::Started(id) => id,
        other => panic!("{other:?}"),
    }
}

/// Starts one deployment per service (in order), then looks until the plan
/// is not `Wait`; each look moves the plan's clock on by `tick` seconds.
/// Returns the followed pairs and the end.
async fn roll(
    ecs: &aws_sdk_ecs::Client,
    services: &[(&str, Option<&str>)],
    timeout: u64,
    tick: u64,
) -> (Vec<(String, String)>, Ended) {
    let since = epoch_now() as u64;
    let mut followed = Vec::new();
    let mut rolled = Vec::new();
    for (service, task_definition) in services {
        let id = started(ecs, &UpdateSpec::new("app", service, *task_definition)).await;
        followed.push((service.to_string(), id.clone()));
        rolled.push(Rolled {
            id: Some(id),
            since,
            ..Rolled::default()
        });
    }
    let names: Vec<String> = followed.iter().map(|(s, _)| s.clone()).collect();
    let base = epoch_now();
    for look in 1..=50 {
        let views = roll::describe(ecs, "app", &names)
            .await
            .expect("DescribeServices");
        let mut histories = Vec::new();
        for (name, r) in names.iter().zip(&rolled) {
            let view = views.iter().find(|v| &v.name == name).expect("listed");
            histories.push(
                match (&view.current_service_deployment, roll::unlisted(r, view)) {
                    (Some(arn), true) => roll::history(ecs, arn).await.expect("history"),
                    _ => None,
                },
            );
        }
        let now = base + (u64::from(look) * tick) as f64;
        let (next, plan) = roll::plan_roll(&names, &rolled, &views, &histories, now, timeout);
        rolled = next;
        if let RollPlan::Wait { progress, .. } = &plan {
            let summary = roll::progress_summary(progress);
            assert!(summary.starts_with("Rolling "), "{summary}");
            continue;
        }
        let message = match &plan {
            RollPlan::Failed {
                service,
                deployment_id,
                why,
            } => {
                let view = views.iter().find(|v| &v.name == service);
                let id = deployment_id.as_deref().expect("known");
                let stopped = roll::stopped_reasons(ecs, "app", service, id)
                    .await
                    .expect("stopped tasks");
                Some(roll::failure_message(
                    service,
                    Some(id),
                    why,
                    view.map(|v| v.events.as_slice()).unwrap_or_default(),
                    &stopped,
                ))
            }
            _ => None,
        };
        return (
            followed,
            Ended {
                plan,
                look,
                message,
            },
        );
    }
    panic!("the roll never ended");
}

#[tokio::test]
async fn roll_completes_and_names_each_deployment() {
    let (aws, ecs) = world(json!([{"name": "web", "rollouts": [{"steps": 3}]}])).await;
    let before = roll::describe(&ecs, "app", &["web".into()]).await.unwrap();
    let old = before[0].primary().unwrap().to_owned();
    let (followed, ended) = roll(&ecs, &[("web", Some("web:2"))], 1800, 10).await;
    assert_eq!(ended.plan, RollPlan::Done, "{ended:?}");
    assert_eq!(ended.look, 3, "completed on the third look");
    let id = &followed[0].1;
    assert!(id.starts_with("ecs-svc/") && id != &old, "{id}");
    assert_eq!(
        roll::outputs(&followed).get("ServiceDeployment_web"),
        Some(id)
    );
    let after = roll::describe(&ecs, "app", &["web".into()]).await.unwrap();
    assert!(
        after[0]
            .task_definition
            .as_deref()
            .is_some_and(|t| t.ends_with("task-definition/web:2"))
    );
    assert_eq!(after[0].deployments.len(), 1, "the old deployment drained");
    let updates = aws.calls_of("UpdateService");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].request["forceNewDeployment"], true);
    assert_eq!(updates[0].request["taskDefinition"], "web:2");
}

#[tokio::test]
async fn without_images_the_service_is_forced_to_redeploy_what_it_runs() {
    let (aws, ecs) = world(json!([{"name": "web", "rollouts": [{"steps": 1}]}])).await;
    let (_, ended) = roll(&ecs, &[("web", None)], 1800, 10).await;
    assert_eq!(ended.plan, RollPlan::Done);
    let update = &aws.calls_of("UpdateService")[0].request;
    assert_eq!(update["forceNewDeployment"], true);
    assert!(update.get("taskDefinition").is_none(), "{update}");
    let after = roll::describe(&ecs, "app", &["web".into()]).await.unwrap();
    assert!(
        after[0]
            .task_definition
            .as_deref()
            .is_some_and(|t| t.ends_with("web:1"))
    );
}

#[tokio::test]
async fn a_failed_deployment_fails_the_roll_with_ecs_reasons() {
    let (_aws, ecs) = world(json!([{"name": "web", "rollouts": [{
        "outcome": "failed", "steps": 2, "reason": "ECS deployment circuit breaker: tasks failed to start.",
        "stoppedTaskReasons": ["Task failed container health checks", "Essential container in task exited"]}]}]))
    .await;
    let (followed, ended) = roll(&ecs, &[("web", Some("web:2"))], 1800, 10).await;
    assert_eq!(ended.look, 2, "reported on the look that saw FAILED");
    assert_eq!(
        ended.plan,
        RollPlan::Failed {
            service: "web".into(),
            deployment_id: Some(followed[0].1.clone()),
            why: RollFailure::Failed {
                reason: Some("ECS deployment circuit breaker: tasks failed to start.".into())
            },
        }
    );
    let message = ended.message.unwrap();
    for expected in [
        "Service `web` failed to roll",
        "tasks failed to start.",
        "deployment failed: tasks failed to start.",
        ": Task failed container health checks.",
        ": Essential container in task exited.",
        "retry the stage",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
}

#[tokio::test]
async fn a_circuit_breaker_rollback_is_reported_on_the_first_look_after_it() {
    let (_aws, ecs) = world(json!([{"name": "web", "rollouts": [{
        "outcome": "rolledBack", "steps": 3, "stoppedTaskReasons": ["CannotPullContainerError"]}]}]))
    .await;
    let old = roll::describe(&ecs, "app", &["web".into()]).await.unwrap()[0]
        .primary()
        .unwrap()
        .to_owned();
    let (followed, ended) = roll(&ecs, &[("web", Some("web:2"))], 1800, 10).await;
    assert_eq!(ended.look, 3, "the look on which ECS rolled back");
    match &ended.plan {
        RollPlan::Failed {
            why: RollFailure::RolledBack { primary, .. },
            ..
        } => assert_eq!(primary.as_deref(), Some(old.as_str())),
        other => panic!("not a rollback: {other:?}"),
    }
    let message = ended.message.unwrap();
    assert!(message.contains("was rolled back"), "{message}");
    assert!(
        message.contains(&format!("rolling back to deployment {old}")),
        "{message}"
    );
    assert!(message.contains("CannotPullContainerError"), "{message}");
    // A continuation that looks only after ECS cleaned the failed deployment
    // up still reports the rollback, not success on the old revision: the
    // events (and the service deployment) say what happened.
    let views = roll::describe(&ecs, "app", &["web".into()]).await.unwrap();
    assert!(
        views[0].deployments.iter().all(|d| d.id != followed[0].1),
        "gone"
    );
    let rolled = Rolled {
        id: Some(followed[0].1.clone()),
        since: epoch_now() as u64 - 60,
        ..Rolled::default()
    };
    let history = roll::history(
        &ecs,
        views[0].current_service_deployment.as_deref().unwrap(),
    )
    .await
    .unwrap()
    .expect("the update's service deployment");
    assert_eq!(history.status, "ROLLBACK_SUCCESSFUL");
    for history in [None, Some(history)] {
        let (_, plan) = roll::plan_roll(
            &["web".into()],
            std::slice::from_ref(&rolled),
            &views,
            &[history],
            epoch_now(),
            1800,
        );
        match plan {
            RollPlan::Failed {
                why: RollFailure::RolledBack { primary, .. },
                ..
            } => assert_eq!(primary.as_deref(), Some(old.as_str())),
            other => panic!("not a rollback: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_second_of_two_services_fails() {
    let (_aws, ecs) = world(json!([
        {"name": "web", "rollouts": [{"steps": 2}]},
        {"name": "worker", "rollouts": [{"outcome": "failed", "steps": 4}]}]))
    .await;
    let (followed, ended) = roll(
        &ecs,
        &[("web", Some("web:2")), ("worker", Some("worker:2"))],
        1800,
        10,
    )
    .await;
    assert_eq!(ended.look, 4);
    match &ended.plan {
        RollPlan::Failed {
            service,
            deployment_id,
            why: RollFailure::Failed { .. },
        } => {
            assert_eq!(service, "worker");
            assert_eq!(deployment_id.as_deref(), Some(followed[1].1.as_str()));
        }
        other => panic!("{other:?}"),
    }
    let message = ended.message.unwrap();
    assert!(
        message.starts_with("Service `worker` failed to roll"),
        "{message}"
    );
    assert!(!message.contains("service web"), "{message}");
}

#[tokio::test]
async fn a_roll_that_does_not_finish_in_time_times_out() {
    let (_aws, ecs) = world(json!([{"name": "web", "rollouts": [{"steps": 1000}]}])).await;
    let (_, ended) = roll(&ecs, &[("web", Some("web:2"))], 300, 60).await;
    assert_eq!(ended.look, 5, "300 s at 60 s per look");
    match &ended.plan {
        RollPlan::Failed {
            why: RollFailure::TimedOut { elapsed, .. },
            ..
        } => assert!((300..=302).contains(elapsed), "{elapsed}"),
        other => panic!("{other:?}"),
    }
    let message = ended.message.unwrap();
    assert!(
        message.contains("Service `web` did not become stable in 5m00s"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_service_is_a_configuration_error() {
    let (_aws, ecs) = world(json!([{"name": "web"}])).await;
    let err = roll::update(&ecs, &UpdateSpec::new("app", "api", None))
        .await
        .unwrap_err();
    assert_eq!(
        err.failure_type(),
        aws_sdk_codepipeline::types::FailureType::ConfigurationError
    );
    assert!(err.to_string().contains("service `api`"), "{err}");
}

#[tokio::test]
async fn the_deployment_is_found_again_after_a_crash_before_its_id_was_recorded() {
    let (aws, ecs) = world(json!([{"name": "web"}])).await;
    let claimed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let since = claimed_at - 5.0;
    let views = roll::describe(&ecs, "app", &["web".into()]).await.unwrap();
    assert_eq!(
        roll::deployment_since(&views[0], since),
        None,
        "no update yet"
    );
    let id = started(&ecs, &UpdateSpec::new("app", "web", None)).await;
    // ...the invocation dies here; the next one looks instead of updating.
    let views = roll::describe(&ecs, "app", &["web".into()]).await.unwrap();
    assert_eq!(roll::deployment_since(&views[0], since), Some(id));
    assert_eq!(aws.calls_of("UpdateService").len(), 1);
}

#[tokio::test]
async fn a_lost_update_answer_is_sent_once_and_found_by_looking() {
    let (aws, ecs) = world_with_faults(
        json!([{"name": "web"}]),
        json!([{"operation": "UpdateService", "calls": [1], "fault": "lostAnswer"}]),
    )
    .await;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 5.0;
    let sent = roll::update(&ecs, &UpdateSpec::new("app", "web", None))
        .await
        .expect("not refused");
    assert!(matches!(sent, Sent::Unanswered(_)), "{sent:?}");
    assert_eq!(
        aws.calls_of("UpdateService").len(),
        1,
        "never retried by the SDK: a retry could start a second deployment"
    );
    let views = roll::describe(&ecs, "app", &["web".into()]).await.unwrap();
    let found = roll::deployment_since(&views[0], since).expect("the update happened");
    assert_eq!(views[0].primary(), Some(found.as_str()));
}

#[tokio::test]
async fn a_throttled_update_is_a_refusal_tried_again_in_the_call() {
    let (aws, ecs) = world_with_faults(
        json!([{"name": "web"}]),
        json!([{"operation": "UpdateService", "calls": [1], "fault": "throttle"}]),
    )
    .await;
    let id = started(&ecs, &UpdateSpec::new("app", "web", None)).await;
    let calls = aws.calls_of("UpdateService");
    assert_eq!(calls.len(), 2, "the throttled one changed nothing");
    let views = roll::describe(&ecs, "app", &["web".into()]).await.unwrap();
    assert_eq!(views[0].primary(), Some(id.as_str()));
    assert_eq!(views[0].deployments.len(), 2, "one new deployment");
}
