//! Reading the pipeline's images from its input artifact, end to end over
//! HTTP: the real S3 client (the function's SDK configuration, path-style
//! against the local control plane) reads a real ZIP from the local artifact
//! store with the job's `artifactCredentials`, which the store checks like
//! S3 does (SigV4 with the job's secret and session token; anybody else,
//! the function's own role above all, is denied on the KMS-encrypted
//! objects). The job's artifacts come from the job event the local
//! pipeline sends, parsed by the function's own event parser.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use local_aws::pipeline_driver::{ARTIFACT_SECRET_ACCESS_KEY, ARTIFACT_SESSION_TOKEN};
use local_aws::{LocalAws, Scenario};
use migrate_once::artifact::{self, ImageSet, Images};
use migrate_once::config;
use migrate_once::event::{self, ArtifactCredentials, Event, Job};
use migrate_once::failure::Failure;
use serde_json::{Value, json};

async fn sdk(aws: &LocalAws) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(aws.endpoint_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            local_aws::FAKE_ACCESS_KEY_ID,
            local_aws::FAKE_SECRET_ACCESS_KEY,
            Some(local_aws::FAKE_SESSION_TOKEN.into()),
            None,
            "local-aws",
        ))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .load()
        .await
}

/// The job CodePipeline would send for this scenario, as the function
/// parses it.
fn job(aws: &LocalAws) -> Job {
    let event = json!({"CodePipeline.job": {"id": "j-1", "data": {
        "inputArtifacts": local_aws::s3::input_artifacts(aws.scenario()),
        "artifactCredentials": {
            "accessKeyId": local_aws::pipeline_driver::ARTIFACT_ACCESS_KEY_ID,
            "secretAccessKey": ARTIFACT_SECRET_ACCESS_KEY,
            "sessionToken": ARTIFACT_SESSION_TOKEN,
            "expirationTime": 1_800_000_000_000u64,
        },
    }}});
    match event::parse(event) {
        Ok(Event::Job(job)) => job,
        other => panic!("not a job: {other:?}"),
    }
}

struct Run {
    aws: LocalAws,
    result: Result<Option<ImageSet>, Failure>,
}

/// Starts a control plane with `artifacts` and resolves `images` for its job.
async fn resolve(artifacts: Value, images: config::Images) -> Run {
    let scenario = Scenario::from_json(&json!({ "artifacts": artifacts }).to_string()).unwrap();
    let aws = LocalAws::start(scenario).await.unwrap();
    let s3 = artifact::S3::lazy(&sdk(&aws).await);
    let job = job(&aws);
    let result = artifact::resolve(
        &s3,
        &images,
        &job.data.input_artifacts,
        job.data.artifact_credentials.as_ref(),
    )
    .await;
    if let Err(e) = &result {
        for secret in [ARTIFACT_SECRET_ACCESS_KEY, ARTIFACT_SESSION_TOKEN] {
            assert!(!e.to_string().contains(secret), "{e}");
        }
    }
    Run { aws, result }
}

fn select(artifact: Option<&str>, file: Option<&str>) -> config::Images {
    config::Images::Select {
        artifact: artifact.map(str::to_owned),
        file: file.map(str::to_owned),
        from: None,
    }
}

fn get_objects(aws: &LocalAws) -> Vec<(u16, String)> {
    aws.calls_of("GetObject")
        .iter()
        .map(|c| {
            (
                c.status,
                c.request["accessKeyId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

const DEFINITIONS: &str =
    r#"[{"name":"web","imageUri":"r/app:2"},{"name":"worker","imageUri":"r/worker:2"}]"#;

#[tokio::test]
async fn auto_takes_the_first_artifact_holding_an_image_file() {
    let run = resolve(
        json!([
            {"name": "SourceOutput", "files": {"README.md": "hello"}},
            {"name": "BuildOutput", "files": {"imagedefinitions.json": DEFINITIONS}},
            {"name": "Other", "files": {"imageDetail.json": {"ImageURI": "r/other:9"}}},
        ]),
        config::Images::Auto,
    )
    .await;
    let set = run.result.unwrap().unwrap();
    assert_eq!(set.artifact, "BuildOutput");
    assert_eq!(set.file, "imagedefinitions.json");
    assert_eq!(
        set.images,
        Images::ByName(BTreeMap::from([
            ("web".into(), "r/app:2".into()),
            ("worker".into(), "r/worker:2".into())
        ]))
    );
    // Two reads, both with the job's artifact key, both allowed.
    assert_eq!(
        get_objects(&run.aws),
        vec![
            (
                200,
                local_aws::pipeline_driver::ARTIFACT_ACCESS_KEY_ID.into()
            ),
            (
                200,
                local_aws::pipeline_driver::ARTIFACT_ACCESS_KEY_ID.into()
            )
        ]
    );
    assert!(run.aws.artifacts().iter().all(|o| o.kms));
}

#[tokio::test]
async fn image_detail_gives_the_decisive_image_with_its_digest() {
    let uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let run = resolve(
        json!([{"name": "BuildOutput", "files": {"imageDetail.json": {"ImageURI": uri, "ImageTags": ["v2"]}}}]),
        select(Some("BuildOutput"), None),
    )
    .await;
    let set = run.result.unwrap().unwrap();
    assert_eq!(set.images, Images::Decisive(uri.into()));
}

#[tokio::test]
async fn nothing_is_read_without_artifacts_or_with_images_false() {
    let run = resolve(json!([]), config::Images::Auto).await;
    assert_eq!(run.result, Ok(None));
    let run = resolve(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": DEFINITIONS}}]),
        config::Images::Off,
    )
    .await;
    assert_eq!(run.result, Ok(None));
    assert!(get_objects(&run.aws).is_empty());
    let run = resolve(
        json!([{"name": "SourceOutput", "files": {"app.py": "print()"}}]),
        config::Images::Auto,
    )
    .await;
    assert_eq!(run.result, Ok(None), "auto: no image file, run as it is");
}

fn configuration(result: Result<Option<ImageSet>, Failure>) -> String {
    match result {
        Err(Failure::Configuration(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_artifacts_are_configuration_errors_naming_artifact_and_file() {
    let missing = resolve(
        json!([{"name": "BuildOutput", "files": {"out/imagedefinitions.json": DEFINITIONS}}]),
        select(Some("BuildOutput"), None),
    )
    .await;
    let message = configuration(missing.result);
    assert!(
        message.contains("`BuildOutput` holds no imagedefinitions.json or imageDetail.json"),
        "{message}"
    );

    let corrupt = resolve(
        json!([{"name": "BuildOutput", "raw": "PK\u{3}\u{4} this is not a zip"}]),
        config::Images::Auto,
    )
    .await;
    let message = configuration(corrupt.result);
    assert!(
        message.starts_with("input artifact `BuildOutput`: is not a readable ZIP"),
        "{message}"
    );

    let oversized = resolve(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": DEFINITIONS},
                "padTo": {"imagedefinitions.json": 150_000}}]),
        config::Images::Auto,
    )
    .await;
    let message = configuration(oversized.result);
    assert!(
        message.contains(
            "input artifact `BuildOutput`, file `imagedefinitions.json`: is larger than 100 KB"
        ),
        "{message}"
    );

    let bad_json = resolve(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": "{\"web\": "}}]),
        config::Images::Auto,
    )
    .await;
    let message = configuration(bad_json.result);
    assert!(
        message.contains("file `imagedefinitions.json`: is not valid JSON"),
        "{message}"
    );

    let explicit_file = resolve(
        json!([{"name": "BuildOutput", "files": {"deploy/images.json": DEFINITIONS}}]),
        select(None, Some("deploy/images.json")),
    )
    .await;
    let set = explicit_file.result.unwrap().unwrap();
    assert_eq!(set.file, "deploy/images.json");

    let unknown = resolve(
        json!([{"name": "BuildOutput", "files": {"imagedefinitions.json": DEFINITIONS}}]),
        select(Some("Build"), None),
    )
    .await;
    assert!(configuration(unknown.result).contains("`Build`, which is not an input artifact"));
}

#[tokio::test]
async fn a_denied_read_is_a_permission_error_naming_s3_get_object_and_the_artifact() {
    // Injected: the artifact store's bucket policy or key refuses the job.
    let scenario = Scenario::from_json(
        &json!({
            "artifacts": [{"name": "BuildOutput", "files": {"imagedefinitions.json": DEFINITIONS}}],
            "faults": [{"operation": "GetObject", "calls": "all", "fault": "accessDenied"}],
        })
        .to_string(),
    )
    .unwrap();
    let aws = LocalAws::start(scenario).await.unwrap();
    let s3 = artifact::S3::lazy(&sdk(&aws).await);
    let job = job(&aws);
    let err = artifact::resolve(
        &s3,
        &config::Images::Auto,
        &job.data.input_artifacts,
        job.data.artifact_credentials.as_ref(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Failure::Permission { api: "s3:GetObject", detail } if detail.contains("`BuildOutput`")),
        "{err:?}"
    );
    assert_eq!(
        aws.calls_of("GetObject").len(),
        1,
        "AccessDenied is not retried"
    );
}

#[tokio::test]
async fn the_functions_own_credentials_are_denied_on_the_kms_artifact() {
    let scenario = Scenario::from_json(
        &json!({"artifacts": [{"name": "BuildOutput", "files": {"imagedefinitions.json": DEFINITIONS}}]})
            .to_string(),
    )
    .unwrap();
    let aws = LocalAws::start(scenario).await.unwrap();
    let s3 = artifact::S3::lazy(&sdk(&aws).await);
    let job = job(&aws);
    let own = ArtifactCredentials {
        access_key_id: local_aws::FAKE_ACCESS_KEY_ID.into(),
        secret_access_key: local_aws::FAKE_SECRET_ACCESS_KEY.into(),
        session_token: Some(local_aws::FAKE_SESSION_TOKEN.into()),
    };
    let err = artifact::resolve(
        &s3,
        &config::Images::Auto,
        &job.data.input_artifacts,
        Some(&own),
    )
    .await
    .unwrap_err();
    let Failure::Permission { api, detail } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*api, "s3:GetObject");
    assert!(detail.contains("kms:Decrypt"), "{detail}");
    assert!(!err.to_string().contains(local_aws::FAKE_SECRET_ACCESS_KEY));

    // A wrong secret with the right key id: the signature does not match.
    let forged = ArtifactCredentials {
        secret_access_key: "not-the-secret".into(),
        ..job.data.artifact_credentials.clone().unwrap()
    };
    let err = artifact::resolve(
        &s3,
        &config::Images::Auto,
        &job.data.input_artifacts,
        Some(&forged),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    assert!(
        !aws.calls()
            .iter()
            .any(|c| c.request.to_string().contains(ARTIFACT_SECRET_ACCESS_KEY)),
        "the call log holds no secret"
    );
}
