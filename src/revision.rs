//! A task definition revision that runs the pipeline's images (SPEC §4a).
//!
//! RunTask overrides cannot change an image, so running the code the
//! pipeline deploys takes a new revision: the task definition as described,
//! every field RegisterTaskDefinition accepts carried over, only the images
//! changed, tagged `migrate-once:deployment`. What to register is decided
//! by [`plan`], a pure function returning a [`RegisterSpec`] value (or
//! `None` when every image already matches); [`register`] sends it.
//!
//! Registering is not idempotent in ECS (every call makes a new revision),
//! so the caller claims the registration first and records the ARN
//! [`register`] returns; a revision registered by an invocation that died
//! before recording it is found again by its tags ([`find_registered`]):
//! retries, duplicates and crashes then reuse that revision.

use std::collections::BTreeMap;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{Tag, TaskDefinition, TaskDefinitionField};
use sha2::{Digest, Sha256};

use crate::artifact::{ImageSet, Images};
use crate::config;
use crate::failure::Failure;
use crate::task::DEPLOYMENT_TAG;

/// Tag carrying [`RegisterSpec::digest`] on every revision we register:
/// with [`DEPLOYMENT_TAG`], what finds the revision again.
pub const IMAGES_TAG: &str = "migrate-once:images";
/// The family's newest revisions [`find_registered`] looks at.
const LOOK_BACK: i32 = 10;

/// A task definition as DescribeTaskDefinition (with `include=TAGS`)
/// answers: the definition and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub definition: TaskDefinition,
    pub tags: Vec<Tag>,
}

impl Described {
    /// `family:revision`, for messages.
    pub fn label(&self) -> String {
        match self.definition.family() {
            Some(family) => format!("{family}:{}", self.definition.revision()),
            None => self
                .definition
                .task_definition_arn()
                .unwrap_or("the task definition")
                .to_owned(),
        }
    }

    /// Container name → image, for every container.
    pub fn images(&self) -> BTreeMap<String, String> {
        self.definition
            .container_definitions()
            .iter()
            .filter_map(|c| {
                Some((
                    c.name()?.to_owned(),
                    c.image().unwrap_or_default().to_owned(),
                ))
            })
            .collect()
    }

    /// The image a container of this definition runs now.
    pub fn image_of(&self, container: &str) -> Option<&str> {
        self.definition
            .container_definitions()
            .iter()
            .find(|c| c.name() == Some(container))
            .and_then(|c| c.image())
    }
}

/// A RegisterTaskDefinition request, as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterSpec {
    /// The revision it is derived from.
    pub source_arn: String,
    /// Container name → image, for every container of the new revision.
    pub images: BTreeMap<String, String>,
    /// [`image_digest`] of `images`: with the deployment, the identity of
    /// the registration (one revision per deployment and image set).
    pub digest: String,
    /// The definition to register: the described one with the images
    /// replaced. Only the fields RegisterTaskDefinition accepts are sent.
    pub definition: TaskDefinition,
    /// The described tags (less the reserved `aws:` ones, which ECS refuses
    /// to set) with `migrate-once:deployment` = deployment.
    pub tags: Vec<Tag>,
}

/// The images a task definition's containers get from an image set (pure).
///
/// `imagedefinitions.json`: every container named in it gets that image,
/// and the decisive container gets the image of entry `from` when set.
/// `imageDetail.json`: the decisive container gets its `ImageURI`.
/// The decisive container must get an image from the file: otherwise the
/// migration would silently run the old code (the names differ and `from`
/// is missing).
pub fn images_for(
    described: &Described,
    set: &ImageSet,
    decisive: &str,
    from: Option<&str>,
) -> Result<BTreeMap<String, String>, Failure> {
    let containers = described.definition.container_definitions();
    let names: Vec<&str> = containers.iter().filter_map(|c| c.name()).collect();
    if !names.contains(&decisive) {
        return Err(Failure::Configuration(format!(
            "container `{decisive}` is not in task definition {} (containers: {})",
            described.label(),
            names.join(", ")
        )));
    }
    let mut images = described.images();
    match &set.images {
        Images::Decisive(uri) => {
            images.insert(decisive.to_owned(), uri.clone());
        }
        Images::ByName(entries) => {
            for (name, image) in images.iter_mut() {
                if let Some(uri) = entries.get(name) {
                    image.clone_from(uri);
                }
            }
            let entry_names = || entries.keys().cloned().collect::<Vec<_>>().join(", ");
            match from {
                Some(from) => {
                    let uri = entries.get(from).ok_or_else(|| {
                        Failure::Configuration(format!(
                            "`images.from` names entry `{from}`, which is not in {} (entries: {})",
                            set.origin(),
                            entry_names()
                        ))
                    })?;
                    images.insert(decisive.to_owned(), uri.clone());
                }
                None if !entries.contains_key(decisive) => {
                    return Err(Failure::Configuration(format!(
                        "{} has no entry for the migration's container `{decisive}` (entries: {}); set `images.from` to the entry whose image the migration runs",
                        set.origin(),
                        entry_names()
                    )));
                }
                None => {}
            }
        }
    }
    Ok(images)
}

/// A stable digest of a revision to register: the revision it derives from
/// and its container → image map (pure). The same source and images give
/// the same 32 hex characters, whatever order they were found in; a new
/// source revision (more memory, say) with the same images does not.
pub fn image_digest(source: &str, images: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    hash.update(source.as_bytes());
    hash.update([0]);
    for (name, image) in images {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(image.as_bytes());
        hash.update([0]);
    }
    hash.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What to register so that the migration runs the image set's images
/// (pure). `Ok(None)`: every container already runs them; run `described`
/// as it is.
pub fn plan(
    described: &Described,
    set: &ImageSet,
    decisive: &str,
    from: Option<&str>,
    deployment: &str,
) -> Result<Option<RegisterSpec>, Failure> {
    let images = images_for(described, set, decisive, from)?;
    Ok(derive(described, images, deployment))
}

/// What to register so that a service of `deploy` runs the image set's
/// images (pure), as CodePipeline's ECS deploy action does:
/// `imagedefinitions.json` replaces the image of every container it names
/// (it must name at least one); `imageDetail.json` that of the service's
/// only essential container. `Ok(None)`: nothing changes.
pub fn plan_service(
    service: &str,
    described: &Described,
    set: &ImageSet,
    deployment: &str,
) -> Result<Option<RegisterSpec>, Failure> {
    let containers = described.definition.container_definitions();
    let names = || {
        containers
            .iter()
            .filter_map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut images = described.images();
    match &set.images {
        Images::ByName(entries) => {
            let mut named = 0;
            for (name, image) in images.iter_mut() {
                if let Some(uri) = entries.get(name) {
                    image.clone_from(uri);
                    named += 1;
                }
            }
            if named == 0 {
                return Err(Failure::Configuration(format!(
                    "{} names none of the containers of service `{service}` ({}: {}); name them as the service's task definition does",
                    set.origin(),
                    described.label(),
                    names()
                )));
            }
        }
        Images::Decisive(uri) => {
            let essential: Vec<&str> = containers
                .iter()
                .filter(|c| c.essential().unwrap_or(true))
                .filter_map(|c| c.name())
                .collect();
            let [only] = essential[..] else {
                return Err(Failure::Configuration(format!(
                    "{} names one image, but service `{service}` runs {} with essential containers {}; use imagedefinitions.json to say which container gets which image",
                    set.origin(),
                    described.label(),
                    essential.join(", ")
                )));
            };
            images.insert(only.to_owned(), uri.clone());
        }
    }
    Ok(derive(described, images, deployment))
}

/// The described definition with `images` (container → image) put in,
/// tagged for `deployment`; `None` when no image changes (pure).
fn derive(
    described: &Described,
    images: BTreeMap<String, String>,
    deployment: &str,
) -> Option<RegisterSpec> {
    let unchanged = described
        .definition
        .container_definitions()
        .iter()
        .all(|c| {
            c.name().and_then(|n| images.get(n)).map(String::as_str) == c.image().or(Some(""))
        });
    if unchanged {
        return None;
    }
    let containers = described
        .definition
        .container_definitions()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if let Some(image) = c.name.as_ref().and_then(|n| images.get(n)) {
                c.image = Some(image.clone());
            }
            c
        })
        .collect();
    let mut definition = described.definition.clone();
    definition.container_definitions = Some(containers);
    let mut tags: Vec<Tag> = described
        .tags
        .iter()
        .filter(|t| {
            let key = t.key().unwrap_or_default();
            !key.to_ascii_lowercase().starts_with("aws:")
                && key != DEPLOYMENT_TAG
                && key != IMAGES_TAG
        })
        .cloned()
        .collect();
    let source_arn = described
        .definition
        .task_definition_arn()
        .unwrap_or_default()
        .to_owned();
    let digest = image_digest(&source_arn, &images);
    tags.push(Tag::builder().key(DEPLOYMENT_TAG).value(deployment).build());
    tags.push(Tag::builder().key(IMAGES_TAG).value(&digest).build());
    Some(RegisterSpec {
        source_arn,
        digest,
        images,
        definition,
        tags,
    })
}

/// DescribeTaskDefinition with its tags. An unknown task definition is a
/// configuration error naming it.
pub async fn describe(ecs: &Client, task_definition: &str) -> Result<Described, Failure> {
    let out = ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| match e.as_service_error() {
            Some(service) if service.is_client_exception() => Failure::Configuration(format!(
                "task definition `{task_definition}` was not found by ecs:DescribeTaskDefinition ({}); check `taskDefinition` (family, family:revision or ARN) and the region",
                service.meta().message().unwrap_or("no detail")
            )),
            _ => Failure::from_sdk("ecs:DescribeTaskDefinition", e),
        })?;
    let tags = out.tags.unwrap_or_default();
    let definition = out.task_definition.ok_or_else(|| {
        Failure::Configuration(format!("task definition `{task_definition}` was not found"))
    })?;
    Ok(Described { definition, tags })
}

/// Registers the revision a [`RegisterSpec`] describes; returns its ARN.
/// Every call makes a new revision: claim before calling (module docs).
// `inferenceAccelerators` is deprecated (Elastic Inference ended) but still
// accepted: an old definition that has them is carried over as it is.
#[allow(deprecated)]
pub async fn register(ecs: &Client, spec: &RegisterSpec) -> Result<String, Failure> {
    let d = &spec.definition;
    let out = ecs
        .register_task_definition()
        .set_family(d.family.clone())
        .set_task_role_arn(d.task_role_arn.clone())
        .set_execution_role_arn(d.execution_role_arn.clone())
        .set_network_mode(d.network_mode.clone())
        .set_container_definitions(d.container_definitions.clone())
        .set_volumes(d.volumes.clone())
        .set_placement_constraints(d.placement_constraints.clone())
        .set_requires_compatibilities(d.requires_compatibilities.clone())
        .set_cpu(d.cpu.clone())
        .set_memory(d.memory.clone())
        .set_pid_mode(d.pid_mode.clone())
        .set_ipc_mode(d.ipc_mode.clone())
        .set_proxy_configuration(d.proxy_configuration.clone())
        .set_inference_accelerators(d.inference_accelerators.clone())
        .set_ephemeral_storage(d.ephemeral_storage.clone())
        .set_runtime_platform(d.runtime_platform.clone())
        .set_enable_fault_injection(d.enable_fault_injection)
        .set_tags((!spec.tags.is_empty()).then(|| spec.tags.clone()))
        // Sent once: a retried 5xx whose first try ECS applied would
        // register a second revision. An unknown outcome is looked for by
        // the next try ([`find_registered`]) before registering again.
        .customize()
        .config_override(
            aws_sdk_ecs::config::Builder::default()
                .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled()),
        )
        .send()
        .await
        .map_err(
            |e| match Failure::from_sdk("ecs:RegisterTaskDefinition", e) {
                Failure::Configuration(detail) => Failure::Configuration(format!(
                    "registering a revision of {} with the pipeline's images failed: {detail}",
                    spec.source_arn
                )),
                other => other,
            },
        )?;
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .map(str::to_owned)
        .ok_or_else(|| Failure::Unavailable {
            api: "ecs:RegisterTaskDefinition",
            detail: "the answer named no task definition ARN".into(),
        })
}

/// The revision registered from `spec.source_arn` for `deployment` and
/// image set `spec.digest`, if any: among the family's newest ACTIVE
/// revisions after the source, the one carrying both tags. Finds what a
/// registration whose invocation died (or whose answer was lost) made, so
/// that it is reused rather than registered again.
pub async fn find_registered(
    ecs: &Client,
    spec: &RegisterSpec,
    deployment: &str,
) -> Result<Option<String>, Failure> {
    let family = spec.definition.family().unwrap_or_default();
    let after = revision_number(&spec.source_arn);
    let out = ecs
        .list_task_definitions()
        .family_prefix(family)
        .sort(aws_sdk_ecs::types::SortOrder::Desc)
        .max_results(LOOK_BACK)
        .send()
        .await
        .map_err(|e| Failure::from_sdk("ecs:ListTaskDefinitions", e))?;
    for arn in out.task_definition_arns() {
        if config::family(arn) != family {
            continue;
        }
        if revision_number(arn) <= after {
            break; // newest first: the rest are older than the source
        }
        let described = describe(ecs, arn).await?;
        let tag = |key: &str| {
            described
                .tags
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
        };
        if tag(DEPLOYMENT_TAG) == Some(deployment) && tag(IMAGES_TAG) == Some(&spec.digest) {
            return Ok(Some(arn.clone()));
        }
    }
    Ok(None)
}

/// The revision number at the end of a task definition ARN (0 if none).
fn revision_number(arn: &str) -> u64 {
    arn.rsplit(':')
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The task definition an ECS service runs now (`taskDefinition:
/// {"fromService": …}`), via DescribeServices.
pub async fn service_task_definition(
    ecs: &Client,
    cluster: &str,
    service: &str,
) -> Result<String, Failure> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| match e.as_service_error() {
            Some(s) if s.is_cluster_not_found_exception() => Failure::Configuration(format!(
                "cluster `{cluster}` was not found by ecs:DescribeServices; check `cluster` and the region"
            )),
            _ => Failure::from_sdk("ecs:DescribeServices", e),
        })?;
    out.services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .and_then(|s| s.task_definition())
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::Configuration(format!(
                "`taskDefinition.fromService`: service `{service}` was not found in cluster `{cluster}`"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::ContainerDefinition;

    fn described(containers: &[(&str, &str)]) -> Described {
        let mut definition = TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:1:task-definition/app:4")
            .family("app")
            .revision(4);
        for (name, image) in containers {
            definition = definition.container_definitions(
                ContainerDefinition::builder()
                    .name(*name)
                    .image(*image)
                    .build(),
            );
        }
        Described {
            definition: definition.build(),
            tags: vec![
                Tag::builder().key("team").value("db").build(),
                Tag::builder()
                    .key("aws:cloudformation:stack-name")
                    .value("s")
                    .build(),
                Tag::builder().key(DEPLOYMENT_TAG).value("old").build(),
            ],
        }
    }

    fn definitions(entries: &[(&str, &str)]) -> ImageSet {
        ImageSet {
            artifact: "BuildOutput".into(),
            file: "imagedefinitions.json".into(),
            images: Images::ByName(
                entries
                    .iter()
                    .map(|(n, i)| (n.to_string(), i.to_string()))
                    .collect(),
            ),
        }
    }

    fn detail(uri: &str) -> ImageSet {
        ImageSet {
            artifact: "BuildOutput".into(),
            file: "imageDetail.json".into(),
            images: Images::Decisive(uri.into()),
        }
    }

    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        ImageSet,
        Option<&'a str>,
        Result<Option<&'a [(&'a str, &'a str)]>, &'a str>,
    );

    #[test]
    fn images_follow_the_file_rules() {
        let td: &[(&str, &str)] = &[("app", "r/app:1"), ("envoy", "r/envoy:1")];
        let cases: Vec<Case> = vec![
            (
                "named container gets its image; others ignored",
                td,
                definitions(&[("app", "r/app:2"), ("web", "r/web:2")]),
                None,
                Ok(Some(&[("app", "r/app:2"), ("envoy", "r/envoy:1")])),
            ),
            (
                "several containers named",
                td,
                definitions(&[("app", "r/app:2"), ("envoy", "r/envoy:2")]),
                None,
                Ok(Some(&[("app", "r/app:2"), ("envoy", "r/envoy:2")])),
            ),
            (
                "from renames the decisive container's entry",
                td,
                definitions(&[("web", "r/web:2"), ("envoy", "r/envoy:2")]),
                Some("web"),
                Ok(Some(&[("app", "r/web:2"), ("envoy", "r/envoy:2")])),
            ),
            (
                "from wins over a same-named entry",
                td,
                definitions(&[("app", "r/app:2"), ("web", "r/web:2")]),
                Some("web"),
                Ok(Some(&[("app", "r/web:2"), ("envoy", "r/envoy:1")])),
            ),
            (
                "already the images: nothing to register",
                td,
                definitions(&[("app", "r/app:1")]),
                None,
                Ok(None),
            ),
            (
                "imageDetail: the decisive container",
                td,
                detail("r/app@sha256:9f"),
                None,
                Ok(Some(&[("app", "r/app@sha256:9f"), ("envoy", "r/envoy:1")])),
            ),
            (
                "imageDetail: from is irrelevant",
                td,
                detail("r/app:1"),
                Some("web"),
                Ok(None),
            ),
            (
                "names differ and no from",
                td,
                definitions(&[("web", "r/web:2")]),
                None,
                Err(
                    "artifact `BuildOutput`, file `imagedefinitions.json` has no entry for the migration's container `app` (entries: web); set `images.from`",
                ),
            ),
            (
                "from names a missing entry",
                td,
                definitions(&[("web", "r/web:2")]),
                Some("api"),
                Err(
                    "`images.from` names entry `api`, which is not in artifact `BuildOutput`, file `imagedefinitions.json` (entries: web)",
                ),
            ),
        ];
        for (name, td, set, from, expected) in cases {
            let got = plan(&described(td), &set, "app", from, "dep-1");
            match (got, expected) {
                (Ok(None), Ok(None)) => {}
                (Ok(Some(spec)), Ok(Some(images))) => {
                    let images: BTreeMap<String, String> = images
                        .iter()
                        .map(|(n, i)| (n.to_string(), i.to_string()))
                        .collect();
                    assert_eq!(spec.images, images, "{name}");
                    assert_eq!(
                        spec.digest,
                        image_digest(&spec.source_arn, &images),
                        "{name}"
                    );
                    let registered: BTreeMap<String, String> = spec
                        .definition
                        .container_definitions()
                        .iter()
                        .map(|c| (c.name().unwrap().into(), c.image().unwrap().into()))
                        .collect();
                    assert_eq!(registered, images, "{name}");
                }
                (Err(e), Err(needle)) => {
                    assert!(matches!(e, Failure::Configuration(_)), "{name}: {e}");
                    assert!(e.to_string().contains(needle), "{name}: {e}");
                }
                (got, expected) => panic!("{name}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn unknown_decisive_container_is_a_configuration_error() {
        let err = plan(
            &described(&[("app", "a")]),
            &detail("b"),
            "migrate",
            None,
            "d",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("container `migrate` is not in task definition app:4 (containers: app)"),
            "{err}"
        );
    }

    #[test]
    fn tags_carry_over_with_the_deployment_and_without_reserved_keys() {
        let spec = plan(
            &described(&[("app", "a")]),
            &detail("b"),
            "app",
            None,
            "dep-9",
        )
        .unwrap()
        .unwrap();
        let tags: Vec<(&str, &str)> = spec
            .tags
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(
            tags,
            vec![
                ("team", "db"),
                (DEPLOYMENT_TAG, "dep-9"),
                (IMAGES_TAG, spec.digest.as_str())
            ]
        );
        assert_eq!(
            spec.source_arn,
            "arn:aws:ecs:us-east-1:1:task-definition/app:4"
        );
    }

    #[test]
    fn digest_is_stable_and_tells_image_sets_apart() {
        let a = BTreeMap::from([
            ("app".to_owned(), "r:1".to_owned()),
            ("x".into(), "r:2".into()),
        ]);
        let mut b = BTreeMap::new();
        b.insert("x".to_owned(), "r:2".to_owned());
        b.insert("app".to_owned(), "r:1".to_owned());
        assert_eq!(image_digest("s", &a), image_digest("s", &b));
        assert_eq!(image_digest("s", &a).len(), 32);
        let c = BTreeMap::from([
            ("app".to_owned(), "r:1x".to_owned()),
            ("".into(), "r:2".into()),
        ]);
        assert_ne!(image_digest("s", &a), image_digest("s", &c));
        assert_ne!(image_digest("s", &a), image_digest("t", &a));
        // Pinned: a claim key recorded by one version must match the next.
        assert_eq!(
            image_digest(
                "s",
                &BTreeMap::from([("app".to_owned(), "r/app:2".to_owned())])
            ),
            "d73774645826e770bf672a9f5859f77f"
        );
    }
}
