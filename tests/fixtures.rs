//! The files in `events/` are real event shapes: each one loads here into the
//! kind of event it claims to be, so `sam local invoke -e` and
//! `cargo lambda invoke --data-file` are fed what the function accepts.

use migrate_once::config;
use migrate_once::event::{self, Event};
use migrate_once::token::Phase;

fn load(text: &str) -> Event {
    event::parse(serde_json::from_str(text).expect("valid JSON")).expect("a recognised event")
}

fn job(text: &str) -> event::Job {
    match load(text) {
        Event::Job(job) => job,
        other => panic!("not a job: {other:?}"),
    }
}

#[test]
fn job_start_resolves_to_a_config() {
    let job = job(include_str!("../events/job-start.json"));
    assert!(job.data.continuation_token.is_none());
    let config = config::resolve(job.user_parameters(), []).expect("valid config");
    assert_eq!(config.cluster, "app");
    assert_eq!(config.task_definition, "app-migrate");
    assert_eq!(
        config.command.as_deref(),
        Some(&["bin/migrate".to_owned()][..])
    );
}

#[test]
fn job_continue_carries_a_token_this_build_reads() {
    let job = job(include_str!("../events/job-continue.json"));
    let token = job.data.continuation_token.as_deref().expect("a token");
    let Phase::Watch(watch) = Phase::decode(token).expect("decodes") else {
        panic!("not a watch token")
    };
    assert_eq!(watch.container, "app");
    assert!(watch.task_arn.starts_with("arn:aws:ecs:"));
}

#[test]
fn sam_generated_job_parses_and_its_placeholder_parameters_are_a_clear_error() {
    let job = job(include_str!("../events/job-sam-generated.json"));
    let err = config::resolve(job.user_parameters(), [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("UserParameters is not valid JSON"), "{err}");
}

#[test]
fn bad_config_names_every_problem() {
    let job = job(include_str!("../events/job-bad-config.json"));
    let err = config::resolve(job.user_parameters(), []).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`timeoutSeconds` (UserParameters): expected an integer"),
        "{text}"
    );
    assert!(text.contains("unknown field `retries`"), "{text}");
    assert_eq!(err.problems.len(), 2, "{text}");
}

#[test]
fn eventbridge_fixtures_are_recognised() {
    assert!(
        matches!(load(include_str!("../events/action-failed.json")), Event::ActionFailed(e) if e.state == "FAILED")
    );
    assert!(matches!(
        load(include_str!("../events/pipeline-stopped.json")),
        Event::PipelineStopped(_)
    ));
    assert!(
        matches!(load(include_str!("../events/rerun-requested.json")), Event::RerunRequested(r) if r.stage == "Migrate")
    );
}
