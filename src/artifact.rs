//! The images the pipeline is deploying, read from the action's input
//! artifact (SPEC §4a).
//!
//! CodePipeline hands the action its input artifacts as ZIP files in S3 and
//! temporary `artifactCredentials` to read them. The build's output artifact
//! holds `imagedefinitions.json` (the ECS deploy action's format) or
//! `imageDetail.json` (the blue/green one). This module turns that into a
//! plain [`ImageSet`]:
//!
//! - [`candidates`] (pure): which artifacts and files to look at, from the
//!   `images` setting and the job's artifacts;
//! - [`read_object`] (I/O): the ZIP, read with the job's credentials;
//! - [`find_file`] and [`parse`] (pure): the file in the ZIP, and its JSON;
//! - [`resolve`]: the three together, the one call a job makes.
//!
//! Every bad artifact is a [`Failure::Configuration`] naming the artifact,
//! the file and what was wrong; a denied read is a [`Failure::Permission`]
//! naming `s3:GetObject` and the artifact. The credentials never appear in
//! a message or a log line.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use crate::config;
use crate::event::{ArtifactCredentials, InputArtifact};
use crate::failure::Failure;

/// The ECS standard deployment action's file: `[{"name","imageUri"}]`.
pub const IMAGE_DEFINITIONS: &str = "imagedefinitions.json";
/// The ECS blue/green deployment action's file: `{"ImageURI": …}`.
pub const IMAGE_DETAIL: &str = "imageDetail.json";
/// Largest image file accepted (SPEC §4a): a few images take a few hundred
/// bytes; anything near this is not what the build meant to hand over.
pub const MAX_FILE_BYTES: u64 = 100 * 1024;
/// Largest artifact ZIP read into memory. A build's output artifact is tiny;
/// a source artifact may be large, and the function has 128 MB.
pub const MAX_ARTIFACT_BYTES: u64 = 32 * 1024 * 1024;

/// The images one artifact file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// The input artifact the file came from (for messages).
    pub artifact: String,
    /// The file's path in the ZIP (for messages).
    pub file: String,
    pub images: Images,
}

/// What an image file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Images {
    /// `imagedefinitions.json`: container (entry) name → image URI.
    ByName(BTreeMap<String, String>),
    /// `imageDetail.json`: the image of the decisive container.
    Decisive(String),
}

impl ImageSet {
    /// `artifact `BuildOutput`, file `imagedefinitions.json``: how messages
    /// name where the images came from.
    pub fn origin(&self) -> String {
        format!("artifact `{}`, file `{}`", self.artifact, self.file)
    }
}

/// One artifact to look into, and the files to look for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub artifact: InputArtifact,
    pub files: Vec<String>,
}

/// What to read, decided from the `images` setting and the job's artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Artifacts in the pipeline's order; the first holding a file wins.
    pub candidates: Vec<Candidate>,
    /// Whether a file must be found (an explicit `images` object): if not,
    /// the task definition runs as it is.
    pub required: bool,
}

/// Which artifacts and files to look at (pure).
///
/// `"auto"`: every input artifact, for either standard file, none required.
/// `false`: nothing. An object: the named artifact (which must be an input
/// of the action) or else every input, the named file or else either
/// standard one; what it names must exist.
pub fn candidates(images: &config::Images, artifacts: &[InputArtifact]) -> Result<Plan, Failure> {
    let standard = || vec![IMAGE_DEFINITIONS.to_owned(), IMAGE_DETAIL.to_owned()];
    let (artifact, file) = match images {
        config::Images::Off => {
            return Ok(Plan {
                candidates: Vec::new(),
                required: false,
            });
        }
        config::Images::Auto => (None, None),
        config::Images::Select { artifact, file, .. } => (artifact.as_deref(), file.as_deref()),
    };
    let names = || {
        artifacts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<InputArtifact> = match artifact {
        None => artifacts.to_vec(),
        Some(wanted) => {
            let found = artifacts.iter().find(|a| a.name == wanted).ok_or_else(|| {
                Failure::Configuration(format!(
                    "`images.artifact` names `{wanted}`, which is not an input artifact of this action (inputs: {}); add it to the action's input artifacts or fix the name",
                    if artifacts.is_empty() { "none".to_owned() } else { names() }
                ))
            })?;
            vec![found.clone()]
        }
    };
    let required = matches!(images, config::Images::Select { .. });
    if required && chosen.is_empty() {
        return Err(Failure::Configuration(
            "`images` is an object, but this action has no input artifacts: add the build's output artifact (holding imagedefinitions.json or imageDetail.json) to the action's input artifacts, or set `images` to \"auto\" or false".into(),
        ));
    }
    let files = file.map(|f| vec![f.to_owned()]).unwrap_or_else(standard);
    Ok(Plan {
        candidates: chosen
            .into_iter()
            .map(|artifact| Candidate {
                artifact,
                files: files.clone(),
            })
            .collect(),
        required,
    })
}

/// Finds the first of `files` in the ZIP `bytes` of `artifact` and returns
/// its path and content (pure). `Ok(None)`: the ZIP holds none of them.
///
/// A file that is not a ZIP, an entry that cannot be decompressed, or a
/// file over [`MAX_FILE_BYTES`] (whatever its header claims) is an error.
pub fn find_file(
    artifact: &str,
    bytes: &[u8],
    files: &[String],
) -> Result<Option<(String, Vec<u8>)>, Failure> {
    let bad = |file: &str, what: String| {
        Failure::Configuration(format!(
            "input artifact `{artifact}`{}: {what}",
            if file.is_empty() {
                String::new()
            } else {
                format!(", file `{file}`")
            }
        ))
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        bad(
            "",
            format!(
                "is not a readable ZIP file ({e}); CodePipeline artifacts are ZIP files: check that the build's output artifact is the action's input"
            ),
        )
    })?;
    for file in files {
        let name = file.trim_start_matches("./");
        let mut entry = match archive.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => continue,
            Err(e) => return Err(bad(file, format!("cannot be read from the ZIP ({e})"))),
        };
        if entry.is_dir() {
            return Err(bad(file, "is a directory in the ZIP, not a file".into()));
        }
        let too_big = || {
            bad(
                file,
                format!(
                    "is larger than {} KB; an image file names a few images",
                    MAX_FILE_BYTES / 1024
                ),
            )
        };
        if entry.size() > MAX_FILE_BYTES {
            return Err(too_big());
        }
        let mut content = Vec::new();
        // The header's size may lie: never read more than the limit allows.
        (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut content)
            .map_err(|e| bad(file, format!("cannot be decompressed ({e})")))?;
        if content.len() as u64 > MAX_FILE_BYTES {
            return Err(too_big());
        }
        return Ok(Some((name.to_owned(), content)));
    }
    Ok(None)
}

/// Parses an image file (pure). The format follows the file name:
/// `imageDetail.json` (any directory) is `{"ImageURI": …}`, anything else
/// the `imagedefinitions.json` list `[{"name","imageUri"}]`.
pub fn parse(artifact: &str, file: &str, content: &[u8]) -> Result<ImageSet, Failure> {
    let bad = |what: String| {
        Failure::Configuration(format!(
            "input artifact `{artifact}`, file `{file}`: {what}"
        ))
    };
    let value: Value =
        serde_json::from_slice(content).map_err(|e| bad(format!("is not valid JSON ({e})")))?;
    let is_detail = config::last_segment(file) == IMAGE_DETAIL;
    let images = if is_detail {
        let uri = value.get("ImageURI").and_then(Value::as_str).map(str::trim);
        let digest = value.get("ImageDigest").and_then(Value::as_str);
        match uri {
            Some(uri) if !uri.is_empty() => Images::Decisive(pinned(uri, digest)),
            _ => {
                return Err(bad(format!(
                    "expected {{\"ImageURI\":\"<image>\"}} (the ECS blue/green format), found {}",
                    short(&value)
                )));
            }
        }
    } else {
        let expected = "expected [{\"name\":\"<container>\",\"imageUri\":\"<image>\"}, …] (the ECS deploy action's format)";
        let Value::Array(items) = &value else {
            return Err(bad(format!("{expected}, found {}", short(&value))));
        };
        if items.is_empty() {
            return Err(bad(format!("{expected}, found an empty list")));
        }
        let mut by_name = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let text = |key: &str| {
                item.get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            };
            let (Some(name), Some(uri)) = (text("name"), text("imageUri")) else {
                return Err(bad(format!("entry {i}: {expected}, found {}", short(item))));
            };
            if let Some(previous) = by_name.insert(name.to_owned(), uri.to_owned())
                && previous != uri
            {
                return Err(bad(format!(
                    "names container `{name}` twice, with different images"
                )));
            }
        }
        Images::ByName(by_name)
    };
    Ok(ImageSet {
        artifact: artifact.to_owned(),
        file: file.to_owned(),
        images,
    })
}

/// `repo:tag` pinned to `repo@sha256:…` when the file names the digest
/// (the ECR source action's `ImageDigest`): the migration runs exactly the
/// image that was pushed, even if the tag moves on.
fn pinned(uri: &str, digest: Option<&str>) -> String {
    let Some(digest) = digest.map(str::trim).filter(|d| d.starts_with("sha256:")) else {
        return uri.to_owned();
    };
    if uri.contains('@') {
        return uri.to_owned();
    }
    let repository = match uri.rfind(':') {
        Some(colon) if colon > uri.rfind('/').unwrap_or(0) => &uri[..colon],
        _ => uri,
    };
    format!("{repository}@{digest}")
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 120 {
        format!("{}…", &text[..text.floor_char_boundary(100)])
    } else {
        text
    }
}

/// The S3 client, built on first use from the shared SDK configuration
/// (once per process): the S3 client is the costliest of our clients to
/// build, and most invocations never read an artifact (every progress
/// check), so it stays off the cold start.
#[derive(Debug, Clone)]
pub struct S3 {
    sdk: Option<aws_config::SdkConfig>,
    client: std::sync::Arc<std::sync::OnceLock<aws_sdk_s3::Client>>,
}

impl S3 {
    /// Built from `sdk` when first needed.
    pub fn lazy(sdk: &aws_config::SdkConfig) -> S3 {
        S3 {
            sdk: Some(sdk.clone()),
            client: Default::default(),
        }
    }

    /// A client made elsewhere (tests).
    pub fn ready(client: aws_sdk_s3::Client) -> S3 {
        S3 {
            sdk: None,
            client: std::sync::Arc::new(client.into()),
        }
    }

    /// The client.
    pub fn get(&self) -> &aws_sdk_s3::Client {
        self.client.get_or_init(|| {
            s3_client(
                self.sdk
                    .as_ref()
                    .expect("a lazy S3 client has its SDK configuration"),
            )
        })
    }
}

/// The S3 client, built once per process from the shared SDK
/// configuration (HTTP stack, retries, timeouts, region). It carries the
/// function's credentials, but [`read_object`] replaces them on every
/// request with the job's. `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` are
/// honoured; with an endpoint override (a local control plane) requests are
/// path-style (`/bucket/key`), which needs no wildcard DNS.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let overridden =
        sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(overridden)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Reads an artifact's ZIP from S3 with the job's credentials (never the
/// function's own). Access denied names `s3:GetObject` and the artifact.
pub async fn read_object(
    s3: &aws_sdk_s3::Client,
    credentials: &ArtifactCredentials,
    artifact: &InputArtifact,
) -> Result<Vec<u8>, Failure> {
    let (Some(bucket), Some(key)) = (&artifact.bucket, &artifact.key) else {
        return Err(Failure::Configuration(format!(
            "input artifact `{}` has no S3 location in the job (inputArtifacts[].location.s3Location); only S3 artifact stores are supported",
            artifact.name
        )));
    };
    let provider = aws_sdk_s3::config::Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "codepipeline-artifact-credentials",
    );
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .customize()
        .config_override(aws_sdk_s3::config::Builder::default().credentials_provider(provider))
        .send()
        .await
        .map_err(|e| read_failure(&artifact.name, e))?;
    if out
        .content_length()
        .is_some_and(|n| n as u64 > MAX_ARTIFACT_BYTES)
    {
        return Err(too_large(&artifact.name));
    }
    let mut body = out.body.into_async_read();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(
        &mut tokio::io::AsyncReadExt::take(&mut body, MAX_ARTIFACT_BYTES + 1),
        &mut bytes,
    )
    .await
    .map_err(|e| Failure::Unavailable {
        api: "s3:GetObject",
        detail: format!("reading input artifact `{}` broke off: {e}", artifact.name),
    })?;
    if bytes.len() as u64 > MAX_ARTIFACT_BYTES {
        return Err(too_large(&artifact.name));
    }
    Ok(bytes)
}

fn too_large(artifact: &str) -> Failure {
    Failure::Configuration(format!(
        "input artifact `{artifact}` is larger than {} MB; the images are read from the build's small output artifact: name it with `images.artifact`",
        MAX_ARTIFACT_BYTES / (1024 * 1024)
    ))
}

fn read_failure<E>(
    artifact: &str,
    err: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Failure
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    match Failure::from_sdk("s3:GetObject", err) {
        Failure::Permission { api, detail } => Failure::Permission {
            api,
            detail: format!(
                "reading input artifact `{artifact}` with the job's artifact credentials: {detail}"
            ),
        },
        Failure::Configuration(detail) => Failure::Configuration(format!(
            "input artifact `{artifact}` could not be read: {detail}"
        )),
        other => other,
    }
}

/// The images of the job's input artifacts, as the `images` setting asks:
/// `Ok(None)` when the task definition runs as it is (`images: false`, or
/// `"auto"` and no artifact holds an image file).
pub async fn resolve(
    s3: &S3,
    images: &config::Images,
    artifacts: &[InputArtifact],
    credentials: Option<&ArtifactCredentials>,
) -> Result<Option<ImageSet>, Failure> {
    let plan = candidates(images, artifacts)?;
    if plan.candidates.is_empty() {
        return Ok(None);
    }
    let Some(credentials) = credentials else {
        return Err(Failure::Configuration(
            "the job carries input artifacts but no artifactCredentials to read them".into(),
        ));
    };
    for candidate in &plan.candidates {
        let name = &candidate.artifact.name;
        let bytes = read_object(s3.get(), credentials, &candidate.artifact).await?;
        if let Some((file, content)) = find_file(name, &bytes, &candidate.files)? {
            return parse(name, &file, &content).map(Some);
        }
    }
    if plan.required {
        let inputs: Vec<&str> = plan
            .candidates
            .iter()
            .map(|c| c.artifact.name.as_str())
            .collect();
        let files = plan
            .candidates
            .first()
            .map(|c| c.files.join(" or "))
            .unwrap_or_default();
        return Err(Failure::Configuration(format!(
            "input artifact{} `{}` hold{} no {files} at the ZIP's root; check the build's `artifacts` section (or `images.file`)",
            if inputs.len() == 1 { "" } else { "s" },
            inputs.join("`, `"),
            if inputs.len() == 1 { "s" } else { "" },
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn artifact(name: &str) -> InputArtifact {
        InputArtifact {
            name: name.into(),
            bucket: Some("bucket".into()),
            key: Some(format!("p/{name}/key")),
        }
    }

    fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, content) in files {
            out.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            out.write_all(content).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn an_image_detail_digest_pins_the_image() {
        let digest = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let cases = [
            (
                "r.ecr/app:latest",
                Some(digest),
                format!("r.ecr/app@{digest}"),
            ),
            (
                "r.ecr:5000/app",
                Some(digest),
                format!("r.ecr:5000/app@{digest}"),
            ),
            (
                "r.ecr/app@sha256:aa",
                Some(digest),
                "r.ecr/app@sha256:aa".into(),
            ),
            ("r.ecr/app:1", None, "r.ecr/app:1".into()),
            ("r.ecr/app:1", Some("latest"), "r.ecr/app:1".into()),
        ];
        for (uri, digest, expected) in cases {
            assert_eq!(pinned(uri, digest), expected, "{uri} {digest:?}");
        }
        let file = format!(r#"{{"ImageURI":"r.ecr/app:7","ImageDigest":"{digest}"}}"#);
        let set = parse("BuildOutput", IMAGE_DETAIL, file.as_bytes()).unwrap();
        assert_eq!(set.images, Images::Decisive(format!("r.ecr/app@{digest}")));
    }

    #[test]
    fn candidates_follow_the_images_setting() {
        let inputs = [artifact("SourceOutput"), artifact("BuildOutput")];
        let standard = vec![IMAGE_DEFINITIONS.to_owned(), IMAGE_DETAIL.to_owned()];
        let select = |artifact: Option<&str>, file: Option<&str>| config::Images::Select {
            artifact: artifact.map(str::to_owned),
            file: file.map(str::to_owned),
            from: None,
        };
        let plan = candidates(&config::Images::Auto, &inputs).unwrap();
        assert!(!plan.required);
        assert_eq!(plan.candidates.len(), 2);
        assert_eq!(plan.candidates[0].files, standard);
        assert!(
            candidates(&config::Images::Off, &inputs)
                .unwrap()
                .candidates
                .is_empty()
        );
        assert!(
            candidates(&config::Images::Auto, &[])
                .unwrap()
                .candidates
                .is_empty()
        );

        let plan = candidates(
            &select(Some("BuildOutput"), Some("out/images.json")),
            &inputs,
        )
        .unwrap();
        assert!(plan.required);
        assert_eq!(
            plan.candidates,
            vec![Candidate {
                artifact: artifact("BuildOutput"),
                files: vec!["out/images.json".into()]
            }]
        );
        let plan = candidates(&select(None, None), &inputs).unwrap();
        assert_eq!((plan.candidates.len(), plan.required), (2, true));

        let err = candidates(&select(Some("Build"), None), &inputs).unwrap_err();
        assert!(
            err.to_string().contains("`Build`, which is not an input artifact of this action (inputs: SourceOutput, BuildOutput)"),
            "{err}"
        );
        let err = candidates(&select(None, None), &[]).unwrap_err();
        assert!(err.to_string().contains("no input artifacts"), "{err}");
    }

    #[test]
    fn find_file_takes_the_first_wanted_file_at_the_root() {
        let files = vec![IMAGE_DEFINITIONS.to_owned(), IMAGE_DETAIL.to_owned()];
        let both = zip(&[
            ("sub/imagedefinitions.json", b"[]"),
            (IMAGE_DETAIL, b"{}"),
            (IMAGE_DEFINITIONS, b"[1]"),
        ]);
        assert_eq!(
            find_file("B", &both, &files).unwrap(),
            Some((IMAGE_DEFINITIONS.to_owned(), b"[1]".to_vec()))
        );
        let nested = zip(&[("sub/imagedefinitions.json", b"[]")]);
        assert_eq!(find_file("B", &nested, &files).unwrap(), None);
        assert_eq!(
            find_file("B", &nested, &["./sub/imagedefinitions.json".into()]).unwrap(),
            Some(("sub/imagedefinitions.json".to_owned(), b"[]".to_vec()))
        );
        let empty = zip(&[]);
        assert_eq!(find_file("B", &empty, &files).unwrap(), None);
    }

    #[test]
    fn find_file_refuses_what_is_not_a_small_file_in_a_zip() {
        let files = vec![IMAGE_DEFINITIONS.to_owned()];
        let err = find_file("BuildOutput", b"not a zip at all", &files).unwrap_err();
        assert!(matches!(err, Failure::Configuration(_)));
        assert!(
            err.to_string()
                .starts_with("input artifact `BuildOutput`: is not a readable ZIP"),
            "{err}"
        );
        let big = vec![b' '; MAX_FILE_BYTES as usize + 1];
        let err = find_file("BuildOutput", &zip(&[(IMAGE_DEFINITIONS, &big)]), &files).unwrap_err();
        assert!(
            err.to_string()
                .contains("file `imagedefinitions.json`: is larger than 100 KB"),
            "{err}"
        );
        let exact = vec![b' '; MAX_FILE_BYTES as usize];
        assert!(find_file("B", &zip(&[(IMAGE_DEFINITIONS, &exact)]), &files).is_ok());
        // A truncated ZIP (cut inside the central directory) is not readable.
        let whole = zip(&[(IMAGE_DEFINITIONS, b"[]")]);
        let cut = &whole[..whole.len() - 10];
        assert!(find_file("B", cut, &files).is_err());
    }

    #[test]
    fn parse_both_formats() {
        let set = parse(
            "BuildOutput",
            IMAGE_DEFINITIONS,
            br#"[{"name":"web","imageUri":"r/app:2"},{"name":"worker","imageUri":"r/app:2","extra":1}]"#,
        )
        .unwrap();
        assert_eq!(
            set.images,
            Images::ByName(BTreeMap::from([
                ("web".into(), "r/app:2".into()),
                ("worker".into(), "r/app:2".into())
            ]))
        );
        assert_eq!(
            set.origin(),
            "artifact `BuildOutput`, file `imagedefinitions.json`"
        );
        let set = parse(
            "BuildOutput",
            "out/imageDetail.json",
            br#"{"ImageURI":"r/app@sha256:abc","ImageTags":["2"]}"#,
        )
        .unwrap();
        assert_eq!(set.images, Images::Decisive("r/app@sha256:abc".into()));
    }

    #[test]
    fn parse_errors_name_artifact_file_and_what_was_wrong() {
        let cases: &[(&str, &str, &str)] = &[
            (
                IMAGE_DEFINITIONS,
                "[{\"name\":",
                "is not valid JSON (EOF while parsing",
            ),
            (
                IMAGE_DEFINITIONS,
                "{\"web\":\"img\"}",
                "expected [{\"name\"",
            ),
            (IMAGE_DEFINITIONS, "[]", "found an empty list"),
            (
                IMAGE_DEFINITIONS,
                "[{\"name\":\"web\"}]",
                "entry 0: expected",
            ),
            (
                IMAGE_DEFINITIONS,
                "[{\"name\":\"web\",\"imageUri\":7}]",
                "entry 0: expected",
            ),
            (
                IMAGE_DEFINITIONS,
                "[{\"name\":\"web\",\"imageUri\":\"a\"},{\"name\":\"web\",\"imageUri\":\"b\"}]",
                "names container `web` twice",
            ),
            (
                IMAGE_DETAIL,
                "{\"imageUri\":\"a\"}",
                "expected {\"ImageURI\"",
            ),
            (IMAGE_DETAIL, "[]", "expected {\"ImageURI\""),
            (IMAGE_DETAIL, "\u{feff}{}", "is not valid JSON"),
        ];
        for (file, content, needle) in cases {
            let err = parse("BuildOutput", file, content.as_bytes()).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Failure::Configuration(_)), "{text}");
            assert!(
                text.starts_with(&format!("input artifact `BuildOutput`, file `{file}`: ")),
                "{text}"
            );
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}
