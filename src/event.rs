//! The events the one function accepts (SPEC §2), parsed leniently.
//!
//! Own serde types rather than `aws_lambda_events`: those reject a job event
//! without artifacts or credentials, which CodePipeline and SAM's sample do
//! send. Unknown fields are ignored, and so are input artifacts and
//! credentials of an unexpected shape (they only matter when images are read
//! from an artifact, which then says what is missing). `artifactCredentials`
//! are kept in a type whose `Debug` hides the secret key and session token,
//! so they cannot end up in a log line.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One recognised event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A CodePipeline job: start or continue a migration.
    Job(Job),
    /// `aws.codepipeline` action execution FAILED.
    ActionFailed(PipelineEvent),
    /// `aws.codepipeline` pipeline execution STOPPING/STOPPED.
    PipelineStopped(PipelineEvent),
    /// `migrate-once` "Migration Rerun Requested".
    RerunRequested(RerunRequest),
}

/// A CodePipeline job as the Invoke action delivers it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Job {
    pub id: String,
    #[serde(default)]
    pub data: JobData,
}

/// The parts of the job data we use.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobData {
    #[serde(default)]
    pub action_configuration: ActionConfiguration,
    #[serde(default)]
    pub continuation_token: Option<String>,
    /// The action's input artifacts, in the pipeline's order.
    #[serde(default, deserialize_with = "lenient_artifacts")]
    pub input_artifacts: Vec<InputArtifact>,
    /// Temporary credentials for reading the input artifacts (the pipeline's
    /// artifact store, often KMS-encrypted), never the function's own role.
    #[serde(default, deserialize_with = "lenient_credentials")]
    pub artifact_credentials: Option<ArtifactCredentials>,
}

/// One input artifact: its name and where its ZIP lies in S3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputArtifact {
    /// The artifact name the pipeline gave it (`BuildOutput`).
    pub name: String,
    /// `location.s3Location.bucketName`.
    pub bucket: Option<String>,
    /// `location.s3Location.objectKey`.
    pub key: Option<String>,
}

/// The job's `artifactCredentials`. `Debug` shows the access key id only:
/// the secret and session token must never reach a log line or a message.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ArtifactCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for ArtifactCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

fn text_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// `inputArtifacts[]`, keeping whatever entries have a name; never an error.
fn lenient_artifacts<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<InputArtifact>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|item| {
            let location = ["location", "s3Location"];
            let at = |key: &str| text_at(item, &[location[0], location[1], key]).map(str::to_owned);
            Some(InputArtifact {
                name: text_at(item, &["name"])?.to_owned(),
                bucket: at("bucketName"),
                key: at("objectKey"),
            })
        })
        .collect())
}

/// `artifactCredentials`, when both keys are present; never an error.
fn lenient_credentials<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ArtifactCredentials>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let credentials = || {
        Some(ArtifactCredentials {
            access_key_id: text_at(&value, &["accessKeyId"])?.to_owned(),
            secret_access_key: text_at(&value, &["secretAccessKey"])?.to_owned(),
            session_token: text_at(&value, &["sessionToken"]).map(str::to_owned),
        })
    };
    Ok(credentials())
}

/// The action's configuration: `FunctionName`, `UserParameters`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ActionConfiguration {
    #[serde(default)]
    pub configuration: BTreeMap<String, Value>,
}

impl Job {
    /// The action's `UserParameters` text, if any.
    pub fn user_parameters(&self) -> Option<&str> {
        self.data
            .action_configuration
            .configuration
            .get("UserParameters")
            .and_then(Value::as_str)
    }
}

/// The fields of a CodePipeline EventBridge event we use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PipelineEvent {
    /// The EventBridge event id: the same on every delivery of one event.
    #[serde(skip)]
    pub event_id: String,
    pub pipeline: String,
    #[serde(rename = "execution-id")]
    pub execution_id: String,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    pub state: String,
}

/// An operator's rerun request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RerunRequest {
    #[serde(skip)]
    pub event_id: String,
    pub pipeline: String,
    pub stage: String,
    #[serde(default)]
    pub execution_id: Option<String>,
}

const ACCEPTED: &str = "accepted events: a CodePipeline job ({\"CodePipeline.job\":{…}}), \
an aws.codepipeline \"CodePipeline Action Execution State Change\" with detail.state FAILED, \
an aws.codepipeline \"CodePipeline Pipeline Execution State Change\" with detail.state STOPPING or STOPPED, \
or a migrate-once \"Migration Rerun Requested\" with detail {\"pipeline\",\"stage\"}";

/// Recognises an event, or says what was expected.
pub fn parse(event: Value) -> Result<Event, String> {
    if let Some(job) = event.get("CodePipeline.job") {
        return serde_json::from_value(job.clone())
            .map(Event::Job)
            .map_err(|e| format!("malformed CodePipeline job event: {e}"));
    }
    let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or_default();
    let event_id = text("id").to_owned();
    let detail = event.get("detail").cloned().unwrap_or(Value::Null);
    let state = detail
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pipeline_event = || {
        serde_json::from_value::<PipelineEvent>(detail.clone())
            .map(|e| PipelineEvent {
                event_id: event_id.clone(),
                ..e
            })
            .map_err(|e| format!("malformed {} event: {e}", text("detail-type")))
    };
    match (text("source"), text("detail-type")) {
        ("aws.codepipeline", "CodePipeline Action Execution State Change") if state == "FAILED" => {
            pipeline_event().map(Event::ActionFailed)
        }
        ("aws.codepipeline", "CodePipeline Pipeline Execution State Change")
            if matches!(state, "STOPPING" | "STOPPED") =>
        {
            pipeline_event().map(Event::PipelineStopped)
        }
        ("migrate-once", "Migration Rerun Requested") => {
            serde_json::from_value::<RerunRequest>(detail)
                .map(|r| {
                    Event::RerunRequested(RerunRequest {
                        event_id: event_id.clone(),
                        ..r
                    })
                })
                .map_err(|e| format!("malformed Migration Rerun Requested event: {e}"))
        }
        (source, detail_type) => Err(format!(
            "unrecognised event (source {source:?}, detail-type {detail_type:?}, state {state:?}); {ACCEPTED}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Event, String> {
        parse(serde_json::from_str(text).unwrap())
    }

    #[test]
    fn job_events_parse_leniently() {
        let minimal = load(r#"{"CodePipeline.job":{"id":"j-1"}}"#).unwrap();
        let Event::Job(job) = minimal else { panic!() };
        assert_eq!(job.id, "j-1");
        assert_eq!(job.user_parameters(), None);

        let full = load(
            r#"{"CodePipeline.job":{"id":"j-2","accountId":"1","data":{
                "actionConfiguration":{"configuration":{"FunctionName":"f","UserParameters":"{}"}},
                "inputArtifacts":[],"artifactCredentials":{"secretAccessKey":"s"},
                "continuationToken":"tok","encryptionKey":{"id":"k","type":"KMS"}}}}"#,
        )
        .unwrap();
        let Event::Job(job) = full else { panic!() };
        assert_eq!(job.user_parameters(), Some("{}"));
        assert_eq!(job.data.continuation_token.as_deref(), Some("tok"));
        assert!(!format!("{job:?}").contains("secretAccessKey"));
        assert_eq!(job.data.artifact_credentials, None, "no access key id");
    }

    #[test]
    fn input_artifacts_and_credentials() {
        let event = load(include_str!("../events/job-with-artifacts.json")).unwrap();
        let Event::Job(job) = event else { panic!() };
        assert_eq!(
            job.data.input_artifacts,
            vec![
                InputArtifact {
                    name: "SourceOutput".into(),
                    bucket: Some("codepipeline-us-east-1-123".into()),
                    key: Some("app-pipeline/SourceOutp/Xyz12Ab".into()),
                },
                InputArtifact {
                    name: "BuildOutput".into(),
                    bucket: Some("codepipeline-us-east-1-123".into()),
                    key: Some("app-pipeline/BuildOutpu/Kq9ZpL0".into()),
                },
            ]
        );
        let credentials = job.data.artifact_credentials.clone().unwrap();
        assert_eq!(credentials.access_key_id, "ASIAEXAMPLEARTIFACT");
        assert_eq!(credentials.secret_access_key, "SECRET-wJalrXUtnFEMI");
        assert_eq!(
            credentials.session_token.as_deref(),
            Some("TOKEN-IQoJb3JpZ2lu")
        );
        let shown = format!("{job:?} {job:#?} {credentials:?}");
        assert!(shown.contains("ASIAEXAMPLEARTIFACT"), "{shown}");
        for secret in ["SECRET-wJalrXUtnFEMI", "TOKEN-IQoJb3JpZ2lu"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn odd_artifact_shapes_are_ignored_not_fatal() {
        for data in [
            r#"{"inputArtifacts":{"name":"x"},"artifactCredentials":"nope"}"#,
            r#"{"inputArtifacts":[{"name":"A"},{"location":{}},7,{"name":"B","location":{"s3Location":{"bucketName":1}}}],"artifactCredentials":{"accessKeyId":"a"}}"#,
        ] {
            let event = load(&format!(
                r#"{{"CodePipeline.job":{{"id":"j","data":{data}}}}}"#
            ))
            .unwrap();
            let Event::Job(job) = event else { panic!() };
            assert_eq!(job.data.artifact_credentials, None);
            assert!(job.data.input_artifacts.iter().all(|a| a.bucket.is_none()));
        }
    }

    #[test]
    fn eventbridge_shapes_with_string_or_number_versions() {
        let failed = load(
            r#"{"source":"aws.codepipeline","detail-type":"CodePipeline Action Execution State Change",
                "detail":{"pipeline":"p","execution-id":"e","stage":"Migrate","action":"Run","state":"FAILED",
                "version":3,"type":{"owner":"AWS","category":"Invoke","provider":"Lambda","version":"1"}}}"#,
        )
        .unwrap();
        assert!(
            matches!(failed, Event::ActionFailed(ref e) if e.stage.as_deref() == Some("Migrate"))
        );
        let stopped = load(
            r#"{"source":"aws.codepipeline","detail-type":"CodePipeline Pipeline Execution State Change",
                "detail":{"pipeline":"p","execution-id":"e","state":"STOPPED","version":"3"}}"#,
        )
        .unwrap();
        assert!(matches!(stopped, Event::PipelineStopped(_)));
        let rerun = load(
            r#"{"id":"ev-1","source":"migrate-once","detail-type":"Migration Rerun Requested","detail":{"pipeline":"p","stage":"s"}}"#,
        )
        .unwrap();
        assert_eq!(
            rerun,
            Event::RerunRequested(RerunRequest {
                event_id: "ev-1".into(),
                pipeline: "p".into(),
                stage: "s".into(),
                execution_id: None
            })
        );
    }

    #[test]
    fn anything_else_names_the_accepted_shapes() {
        for text in [
            "{}",
            r#"{"source":"aws.codepipeline","detail-type":"CodePipeline Action Execution State Change","detail":{"state":"SUCCEEDED"}}"#,
            r#"{"Records":[]}"#,
        ] {
            let err = load(text).unwrap_err();
            assert!(err.contains("accepted events"), "{err}");
        }
        assert!(
            load(r#"{"CodePipeline.job":{"data":{}}}"#)
                .unwrap_err()
                .contains("missing field `id`")
        );
    }
}
