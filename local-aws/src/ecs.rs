//! ECS: task definitions, services and scripted one-off tasks.
//!
//! `RunTask` honours `clientToken` as AWS documents it: the same token with
//! the same parameters returns the task(s) the first call created and starts
//! nothing; the same token with different parameters is a
//! `ConflictException` carrying the existing task ARNs in `resourceIds`.
//! (A call that created nothing — only `failures[]` — does not bind its
//! token.) Each created task takes the next scripted [`TaskOutcome`], which
//! may also be a `failures[]` answer instead of a task.
//!
//! [`TaskOutcome`]: crate::scenario::TaskOutcome

use crate::ecs_task::{RunParameters, Task};
use crate::scenario::{Scenario, ServiceSpec, TaskDefinitionSpec, TaskOutcome};
use crate::wire::{ACCOUNT, ApiError, Input, OpResult, REGION, epoch};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

/// One task's place on the timeline, for overlap assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTimeline {
    /// Task ARN.
    pub arn: String,
    /// The CodePipeline job whose invocation created it, when known.
    pub job_id: Option<String>,
    /// The `migrate-once:deployment` tag, when present.
    pub deployment: Option<String>,
    /// Creation, relative to the control plane's start.
    pub created: Duration,
    /// First observed `RUNNING`.
    pub started: Option<Duration>,
    /// `StopTask` received.
    pub stop_requested: Option<Duration>,
    /// Observed `STOPPED`.
    pub stopped: Option<Duration>,
    /// Current `lastStatus`.
    pub last_status: String,
    /// How long the task runs on after `StopTask`.
    pub stop_delay: Duration,
}

impl TaskTimeline {
    /// The end of the task's active interval: stopped, else when a requested
    /// stop completes (a stopping task is alive until then).
    pub fn end(&self) -> Option<Duration> {
        self.stopped
            .or(self.stop_requested.map(|at| at + self.stop_delay))
    }
}

#[derive(Debug)]
struct TokenUse {
    request: Value,
    task_arns: Vec<String>,
}

/// The ECS control plane.
#[derive(Debug)]
pub struct Ecs {
    clusters: Vec<String>,
    definitions: Vec<TaskDefinitionSpec>,
    services: Vec<ServiceSpec>,
    outcomes: VecDeque<TaskOutcome>,
    tasks: Vec<Task>,
    tokens: BTreeMap<String, TokenUse>,
    registered_at: SystemTime,
    rolls: crate::ecs_service::Services,
}

fn cluster_name(cluster: &str) -> &str {
    cluster.rsplit('/').next().unwrap_or(cluster)
}

fn cluster_arn(name: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}")
}

fn definition_arn(td: &TaskDefinitionSpec) -> String {
    format!(
        "arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{}:{}",
        td.family, td.revision
    )
}

fn tags_json(tags: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

/// One revision of a task definition family.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// Task definition ARN.
    pub arn: String,
    /// Container name → image.
    pub images: std::collections::BTreeMap<String, String>,
    /// Tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Made by `RegisterTaskDefinition` (not by the scenario).
    pub registered: bool,
}

/// What one task ran.
#[derive(Debug, Clone, PartialEq)]
pub struct RanTask {
    /// Task ARN.
    pub arn: String,
    /// The task definition revision it ran.
    pub task_definition_arn: String,
    /// Container name → image.
    pub images: std::collections::BTreeMap<String, String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterException", message)
}

impl Ecs {
    /// ECS as the scenario describes it.
    pub fn new(scenario: &Scenario) -> Self {
        let mut ecs = Ecs {
            clusters: scenario.clusters.clone(),
            definitions: scenario.task_definitions.clone(),
            services: scenario.services.clone(),
            outcomes: scenario.tasks.iter().cloned().collect(),
            tasks: Vec::new(),
            tokens: BTreeMap::new(),
            registered_at: crate::clock::now() - Duration::from_secs(86_400),
            rolls: Default::default(),
        };
        ecs.rolls = crate::ecs_service::Services::new(&scenario.services, |s| {
            ecs.service_task_definition(s)
        });
        ecs
    }

    /// Every task created so far.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The timeline of every task, relative to `origin` (a
    /// [`crate::clock::instant`]).
    pub fn timeline(&mut self, origin: tokio::time::Instant) -> Vec<TaskTimeline> {
        let rel = |i: tokio::time::Instant| i.saturating_duration_since(origin);
        self.tasks
            .iter_mut()
            .map(|t| {
                t.refresh(false);
                TaskTimeline {
                    arn: t.arn.clone(),
                    job_id: t.job_id.clone(),
                    deployment: t.params.tags.iter().find_map(|tag| {
                        (tag.get("key")?.as_str()? == "migrate-once:deployment")
                            .then(|| tag.get("value")?.as_str().map(str::to_string))
                            .flatten()
                    }),
                    created: rel(t.created_instant),
                    started: t.started.map(|(_, i)| rel(i)),
                    stop_requested: t.stop_requested.as_ref().map(|(_, _, i)| rel(*i)),
                    stopped: t.stopped.as_ref().map(|(_, _, i)| rel(*i)),
                    last_status: t.last_status().to_string(),
                    stop_delay: t.stop_delay(),
                }
            })
            .collect()
    }

    /// Dispatches one ECS operation; `job_id` is the calling invocation's
    /// job, recorded on the tasks it creates.
    pub fn handle(&mut self, operation: &str, input: &Value, job_id: Option<&str>) -> OpResult {
        let i = Input(input);
        match operation {
            "DescribeTaskDefinition" => self.describe_task_definition(i),
            "RegisterTaskDefinition" => self.register_task_definition(input),
            "ListTaskDefinitions" => self.list_task_definitions(i),
            "DescribeServices" => self.describe_services(i),
            "UpdateService" => self.update_service(input),
            "DescribeServiceDeployments" => self.describe_service_deployments(i),
            "RunTask" => self.run_task(input, job_id),
            "DescribeTasks" => self.describe_tasks(i),
            "StopTask" => self.stop_task(i),
            "ListTasks" => self.list_tasks(i),
            other => Err(ApiError::client(
                "UnknownOperationException",
                format!(
                    "the local control plane does not implement AmazonEC2ContainerServiceV20141113.{other}"
                ),
            )),
        }
    }

    fn check_cluster(&self, cluster: Option<&str>) -> Result<String, ApiError> {
        let name = cluster_name(cluster.unwrap_or("default")).to_string();
        if !self.clusters.is_empty() && !self.clusters.contains(&name) {
            return Err(ApiError::client(
                "ClusterNotFoundException",
                "Cluster not found.",
            ));
        }
        Ok(name)
    }

    /// Resolves `family`, `family:revision` or an ARN to a registered
    /// revision (the latest for a bare family).
    fn resolve_definition(&self, reference: &str) -> Option<&TaskDefinitionSpec> {
        let tail = reference
            .rsplit_once("task-definition/")
            .map(|(_, t)| t)
            .unwrap_or(reference);
        match tail.rsplit_once(':') {
            Some((family, rev)) => {
                let rev: u32 = rev.parse().ok()?;
                self.definitions
                    .iter()
                    .find(|d| d.family == family && d.revision == rev)
            }
            None => self
                .definitions
                .iter()
                .filter(|d| d.family == tail)
                .max_by_key(|d| d.revision),
        }
    }

    fn definition_json(&self, td: &TaskDefinitionSpec) -> Value {
        if let Some(request) = &td.registered {
            let mut v = request.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("tags");
                o.insert("taskDefinitionArn".into(), json!(definition_arn(td)));
                o.insert("revision".into(), json!(td.revision));
                o.insert("status".into(), json!("ACTIVE"));
                o.insert("networkMode".into(), json!(td.network_mode));
                o.insert("compatibilities".into(), json!(["EC2", "FARGATE"]));
                o.insert("requiresAttributes".into(), json!([]));
                o.insert("registeredAt".into(), epoch(crate::clock::now()));
                o.insert(
                    "registeredBy".into(),
                    json!(format!(
                        "arn:aws:sts::{ACCOUNT}:assumed-role/migrate-once-role/migrate-once"
                    )),
                );
            }
            return v;
        }
        let containers: Vec<Value> = td
            .containers
            .iter()
            .map(|c| {
                let mut v = json!({
                    "name": c.name,
                    "image": c.image,
                    "cpu": 0,
                    "essential": c.essential,
                    "portMappings": [],
                    "environment": [],
                    "mountPoints": [],
                    "volumesFrom": [],
                    "systemControls": [],
                });
                if let Some(cmd) = &c.command {
                    v["command"] = json!(cmd);
                }
                if let Some(group) = &c.log_group {
                    let mut options = json!({
                        "awslogs-group": group,
                        "awslogs-region": REGION,
                    });
                    if let Some(prefix) = &c.log_stream_prefix {
                        options["awslogs-stream-prefix"] = json!(prefix);
                    }
                    v["logConfiguration"] = json!({
                        "logDriver": "awslogs",
                        "options": options,
                        "secretOptions": [],
                    });
                }
                v
            })
            .collect();
        let mut v = json!({
            "taskDefinitionArn": definition_arn(td),
            "containerDefinitions": containers,
            "family": td.family,
            "networkMode": td.network_mode,
            "revision": td.revision,
            "volumes": [],
            "status": "ACTIVE",
            "requiresAttributes": [],
            "placementConstraints": [],
            "compatibilities": ["EC2", "FARGATE"],
            "requiresCompatibilities": td.requires_compatibilities,
            "cpu": td.cpu,
            "memory": td.memory,
            "registeredAt": epoch(self.registered_at),
            "registeredBy": format!("arn:aws:iam::{ACCOUNT}:root"),
        });
        if let Some(r) = &td.task_role_arn {
            v["taskRoleArn"] = json!(r);
        }
        if let Some(r) = &td.execution_role_arn {
            v["executionRoleArn"] = json!(r);
        }
        v
    }

    fn describe_task_definition(&self, i: Input) -> OpResult {
        let reference = i.str("taskDefinition")?;
        let td = self.resolve_definition(reference).ok_or_else(|| {
            ApiError::client("ClientException", "Unable to describe task definition.")
        })?;
        let mut answer = json!({ "taskDefinition": self.definition_json(td) });
        if i.str_list("include")?.iter().any(|x| x == "TAGS") {
            answer["tags"] = tags_json(&td.tags);
        }
        Ok(answer)
    }

    /// ARNs of the (all ACTIVE) revisions whose family starts with
    /// `familyPrefix`, by family and revision, `sort` ASC [default] or DESC,
    /// at most `maxResults` [100]; no paging beyond the first page.
    fn list_task_definitions(&self, i: Input) -> OpResult {
        let prefix = i.opt_str("familyPrefix")?.unwrap_or("");
        let mut found: Vec<&TaskDefinitionSpec> = self
            .definitions
            .iter()
            .filter(|d| d.family.starts_with(prefix))
            .collect();
        found.sort_by(|a, b| (&a.family, a.revision).cmp(&(&b.family, b.revision)));
        if i.opt_str("sort")? == Some("DESC") {
            found.reverse();
        }
        let max = i.opt_i64("maxResults")?.unwrap_or(100).clamp(1, 100) as usize;
        let arns: Vec<String> = found.into_iter().take(max).map(definition_arn).collect();
        Ok(json!({ "taskDefinitionArns": arns }))
    }

    /// A new revision of the request's family (1 for a new family), its
    /// tags kept; `DescribeTaskDefinition` echoes the request.
    fn register_task_definition(&mut self, body: &Value) -> OpResult {
        let i = Input(body);
        let family = i.str("family")?.to_string();
        if family.is_empty()
            || family.len() > 255
            || !family
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err(invalid(
                "Family must be 1 to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores.",
            ));
        }
        let Some(Value::Array(containers)) = i.value("containerDefinitions") else {
            return Err(invalid("Container definitions cannot be empty."));
        };
        if containers.is_empty() {
            return Err(invalid("Container definitions cannot be empty."));
        }
        let mut specs = Vec::new();
        for c in containers {
            let c = Input(c);
            let name = c.str("name")?.to_string();
            let image = c.str("image")?.to_string();
            if specs
                .iter()
                .any(|s: &crate::scenario::ContainerSpec| s.name == name)
            {
                return Err(invalid(format!("Duplicate container name {name}.")));
            }
            let options = c
                .opt_struct("logConfiguration")?
                .and_then(|l| l.value("options").cloned());
            let option = |key: &str| {
                options
                    .as_ref()
                    .and_then(|o| o.get(key))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            specs.push(crate::scenario::ContainerSpec {
                name,
                image,
                essential: c.opt_bool("essential")?.unwrap_or(true),
                command: match c.value("command") {
                    Some(_) => Some(c.str_list("command")?),
                    None => None,
                },
                log_group: option("awslogs-group"),
                log_stream_prefix: option("awslogs-stream-prefix"),
            });
        }
        let mut tags = std::collections::BTreeMap::new();
        if let Some(Value::Array(list)) = i.value("tags") {
            for tag in list {
                let key = Input(tag).str("key")?;
                let value = Input(tag).opt_str("value")?.unwrap_or("");
                if key.to_ascii_lowercase().starts_with("aws:") {
                    return Err(invalid("Tag keys starting with aws: are reserved."));
                }
                tags.insert(key.to_string(), value.to_string());
            }
        }
        let revision = self
            .definitions
            .iter()
            .filter(|d| d.family == family)
            .map(|d| d.revision)
            .max()
            .unwrap_or(0)
            + 1;
        let text = |field: &str, default: &str| -> Result<String, ApiError> {
            Ok(i.opt_str(field)?.unwrap_or(default).to_string())
        };
        let td = TaskDefinitionSpec {
            family,
            revision,
            network_mode: text("networkMode", "bridge")?,
            cpu: text("cpu", "")?,
            memory: text("memory", "")?,
            task_role_arn: i.opt_str("taskRoleArn")?.map(str::to_string),
            execution_role_arn: i.opt_str("executionRoleArn")?.map(str::to_string),
            requires_compatibilities: i.str_list("requiresCompatibilities")?,
            containers: specs,
            tags,
            registered: Some(body.clone()),
        };
        let answer = json!({
            "taskDefinition": self.definition_json(&td),
            "tags": tags_json(&td.tags),
        });
        self.definitions.push(td);
        Ok(answer)
    }

    /// Every revision of a family, oldest first: ARN, images per container
    /// and tags.
    pub fn revisions(&self, family: &str) -> Vec<Revision> {
        let mut revisions: Vec<Revision> = self
            .definitions
            .iter()
            .filter(|d| d.family == family)
            .map(|d| Revision {
                arn: definition_arn(d),
                images: d
                    .containers
                    .iter()
                    .map(|c| (c.name.clone(), c.image.clone()))
                    .collect(),
                tags: d.tags.clone(),
                registered: d.registered.is_some(),
            })
            .collect();
        revisions.sort_by_key(|r| r.arn.rsplit(':').next().and_then(|n| n.parse::<u32>().ok()));
        revisions
    }

    /// What each task RunTask created ran: its task definition ARN and the
    /// image of each container.
    pub fn tasks_run(&self) -> Vec<RanTask> {
        self.tasks
            .iter()
            .map(|t| RanTask {
                arn: t.arn.clone(),
                task_definition_arn: t.definition_arn.clone(),
                images: t
                    .definition
                    .containers
                    .iter()
                    .map(|c| (c.name.clone(), c.image.clone()))
                    .collect(),
            })
            .collect()
    }

    fn service_json(&self, s: &ServiceSpec) -> Value {
        let mut v = json!({
            "serviceArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/{}", s.cluster, s.name),
            "serviceName": s.name,
            "clusterArn": cluster_arn(&s.cluster),
            "status": "ACTIVE",
            "desiredCount": 2,
            "runningCount": 2,
            "pendingCount": 0,
            "loadBalancers": [],
            "serviceRegistries": [],
            "deployments": [],
            "events": [],
            "placementConstraints": [],
            "placementStrategy": [],
            "schedulingStrategy": "REPLICA",
            "createdAt": epoch(self.registered_at),
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": s.subnets,
                    "securityGroups": s.security_groups,
                    "assignPublicIp": if s.assign_public_ip { "ENABLED" } else { "DISABLED" },
                }
            },
        });
        if let Some(lt) = &s.launch_type {
            v["launchType"] = json!(lt);
        }
        if !s.capacity_provider_strategy.is_empty() {
            v["capacityProviderStrategy"] = json!(s.capacity_provider_strategy);
        }
        if let Some(pv) = &s.platform_version {
            v["platformVersion"] = json!(pv);
            v["platformFamily"] = json!("Linux");
        }
        if let Some(td) = &s.task_definition {
            v["taskDefinition"] = json!(
                self.resolve_definition(td)
                    .map(definition_arn)
                    .unwrap_or_else(|| td.clone())
            );
        }
        v
    }

    /// The task definition ARN a service runs before any `UpdateService`.
    fn service_task_definition(&self, s: &ServiceSpec) -> String {
        match &s.task_definition {
            Some(td) => self
                .resolve_definition(td)
                .map(definition_arn)
                .unwrap_or_else(|| td.clone()),
            None => format!(
                "arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{}:1",
                s.name
            ),
        }
    }

    fn update_service(&mut self, input: &Value) -> OpResult {
        let i = Input(input);
        let cluster = self.check_cluster(i.opt_str("cluster")?)?;
        let task_definition = match i.opt_str("taskDefinition")? {
            Some(td) => Some(
                self.resolve_definition(td)
                    .map(definition_arn)
                    .ok_or_else(|| invalid("TaskDefinition not found."))?,
            ),
            None => None,
        };
        let reference = i.str("service")?;
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let base = self
            .services
            .iter()
            .find(|s| s.name == name && s.cluster == cluster)
            .map(|s| self.service_json(s))
            .ok_or_else(|| ApiError::client("ServiceNotFoundException", "Service not found."))?;
        self.rolls.update(&cluster, input, task_definition, base)
    }

    fn describe_services(&mut self, i: Input) -> OpResult {
        let cluster = self.check_cluster(i.opt_str("cluster")?)?;
        let names = i.str_list("services")?;
        if names.is_empty() || names.len() > 10 {
            return Err(invalid("services must name between 1 and 10 services."));
        }
        let mut services = Vec::new();
        let mut failures = Vec::new();
        for reference in &names {
            let name = reference.rsplit('/').next().unwrap_or(reference);
            match self
                .services
                .iter()
                .find(|s| s.name == name && s.cluster == cluster)
            {
                Some(s) => {
                    let mut v = self.service_json(s);
                    self.rolls.decorate(&cluster, name, true, &mut v);
                    services.push(v);
                }
                None => failures.push(json!({
                    "arn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}"),
                    "reason": "MISSING",
                })),
            }
        }
        Ok(json!({ "services": services, "failures": failures }))
    }

    fn describe_service_deployments(&mut self, i: Input) -> OpResult {
        let arns = i.str_list("serviceDeploymentArns")?;
        self.rolls.describe_service_deployments(&arns)
    }

    fn run_task(&mut self, body: &Value, job_id: Option<&str>) -> OpResult {
        let i = Input(body);
        let cluster = self.check_cluster(i.opt_str("cluster")?)?;
        let reference = i.str("taskDefinition")?;
        let td = self
            .resolve_definition(reference)
            .cloned()
            .ok_or_else(|| invalid("TaskDefinition not found."))?;
        let count = i.opt_i64("count")?.unwrap_or(1);
        if !(1..=10).contains(&count) {
            return Err(invalid("count must be between 1 and 10."));
        }
        let launch_type = i.opt_str("launchType")?.map(str::to_string);
        let strategy = i.value("capacityProviderStrategy").cloned();
        if launch_type.is_some()
            && strategy
                .as_ref()
                .is_some_and(|s| s.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Err(invalid(
                "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.",
            ));
        }
        if let Some(lt) = &launch_type
            && !["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"].contains(&lt.as_str())
        {
            return Err(invalid(format!("launchType {lt} is not valid.")));
        }
        let network = i.value("networkConfiguration").cloned();
        if td.network_mode == "awsvpc" && network.is_none() {
            return Err(invalid(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            ));
        }
        let overrides = i.value("overrides").cloned();
        if let Some(ov) = i.opt_struct("overrides")?
            && let Some(Value::Array(cos)) = ov.value("containerOverrides")
        {
            for co in cos {
                let name = Input(co).opt_str("name")?.unwrap_or("");
                if !td.containers.iter().any(|c| c.name == name) {
                    return Err(invalid(format!(
                        "Override for container named {name} is not a container in the TaskDefinition."
                    )));
                }
            }
        }
        let started_by = i.opt_str("startedBy")?.map(str::to_string);
        if let Some(sb) = &started_by
            && (sb.len() > 128
                || !sb
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c)))
        {
            return Err(invalid(
                "startedBy may contain up to 128 letters, numbers, hyphens, forward slashes and underscores.",
            ));
        }
        let tags = match i.value("tags") {
            None => Vec::new(),
            Some(Value::Array(t)) => t.clone(),
            Some(_) => return Err(invalid("tags must be a list.")),
        };
        for tag in &tags {
            let key = Input(tag).opt_str("key")?.unwrap_or("");
            let value = Input(tag).opt_str("value")?.unwrap_or("");
            if key.is_empty() || key.len() > 128 || value.len() > 256 {
                return Err(invalid(format!(
                    "Tag key must be 1..128 characters and value at most 256: {key:?}"
                )));
            }
            if key.to_ascii_lowercase().starts_with("aws:") {
                return Err(invalid("Tag keys starting with aws: are reserved."));
            }
        }

        let token = i.opt_str("clientToken")?.map(str::to_string);
        let mut comparable = body.clone();
        if let Some(obj) = comparable.as_object_mut() {
            obj.remove("clientToken");
        }
        if let Some(t) = &token {
            if t.is_empty() || t.len() > 64 || !t.is_ascii() {
                return Err(invalid("clientToken must be 1 to 64 ASCII characters."));
            }
            if let Some(used) = self.tokens.get(t) {
                if used.request != comparable {
                    return Err(ApiError::client(
                        "ConflictException",
                        "The specified clientToken is already in use with a different RunTask request.",
                    )
                    .with("resourceIds", json!(used.task_arns)));
                }
                let tasks: Vec<Value> = used
                    .task_arns
                    .iter()
                    .filter_map(|arn| self.tasks.iter().find(|t| &t.arn == arn))
                    .map(|t| t.to_json(false))
                    .collect();
                return Ok(json!({ "tasks": tasks, "failures": [] }));
            }
        }

        let params = RunParameters {
            started_by,
            group: i
                .opt_str("group")?
                .map(str::to_string)
                .unwrap_or_else(|| format!("family:{}", td.family)),
            tags,
            overrides,
            launch_type,
            capacity_provider_strategy: strategy,
            platform_version: i.opt_str("platformVersion")?.map(str::to_string),
            network_configuration: network,
        };
        let mut created = Vec::new();
        let mut failures = Vec::new();
        for _ in 0..count {
            let outcome = self.outcomes.pop_front().unwrap_or_default();
            if let Some(reason) = &outcome.run_task_failure {
                let mut f = json!({ "reason": reason });
                if let Some(detail) = &outcome.run_task_failure_detail {
                    f["detail"] = json!(detail);
                }
                if reason.starts_with("RESOURCE") || reason == "AGENT" {
                    f["arn"] = json!(format!(
                        "arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{cluster}/{}",
                        crate::ids::hex32()
                    ));
                }
                failures.push(f);
                continue;
            }
            let id = outcome.task_id.clone().unwrap_or_else(crate::ids::hex32);
            let task = Task::new(
                format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{id}"),
                id,
                cluster.clone(),
                cluster_arn(&cluster),
                td.clone(),
                definition_arn(&td),
                outcome,
                params.clone(),
                job_id.map(str::to_string),
            );
            created.push(task.to_json(false));
            self.tasks.push(task);
        }
        if let Some(t) = token
            && !created.is_empty()
        {
            let task_arns = created
                .iter()
                .filter_map(|t| t["taskArn"].as_str().map(str::to_string))
                .collect();
            self.tokens.insert(
                t,
                TokenUse {
                    request: comparable,
                    task_arns,
                },
            );
        }
        Ok(json!({ "tasks": created, "failures": failures }))
    }

    fn find_task(&mut self, cluster: &str, reference: &str) -> Option<&mut Task> {
        self.tasks
            .iter_mut()
            .find(|t| t.cluster == cluster && (t.arn == reference || t.id == reference))
    }

    fn describe_tasks(&mut self, i: Input) -> OpResult {
        let cluster = self.check_cluster(i.opt_str("cluster")?)?;
        let refs = i.str_list("tasks")?;
        if refs.is_empty() || refs.len() > 100 {
            return Err(invalid("Tasks cannot be empty."));
        }
        let include_tags = i.str_list("include")?.iter().any(|x| x == "TAGS");
        let mut tasks = Vec::new();
        let mut failures = Vec::new();
        for reference in &refs {
            if let Some(task) = self.rolls.task_json(&cluster, reference) {
                tasks.push(task);
                continue;
            }
            let found = self.find_task(&cluster, reference);
            match found.and_then(|t| (!t.hidden_from_describe()).then_some(t)) {
                Some(t) => {
                    t.refresh(true);
                    tasks.push(t.to_json(include_tags));
                }
                None => {
                    let arn = if reference.starts_with("arn:") {
                        reference.clone()
                    } else {
                        format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{reference}")
                    };
                    failures.push(json!({ "arn": arn, "reason": "MISSING" }));
                }
            }
        }
        Ok(json!({ "tasks": tasks, "failures": failures }))
    }

    fn stop_task(&mut self, i: Input) -> OpResult {
        let cluster = self.check_cluster(i.opt_str("cluster")?)?;
        let reference = i.str("task")?;
        let reason = i
            .opt_str("reason")?
            .unwrap_or("Task stopped by user")
            .to_string();
        if reason.len() > 255 {
            return Err(invalid("reason must be at most 255 characters."));
        }
        let task = self
            .find_task(&cluster, reference)
            .ok_or_else(|| invalid("The referenced task was not found."))?;
        task.refresh(false);
        task.request_stop(&reason);
        Ok(json!({ "task": task.to_json(false) }))
    }

    fn list_tasks(&mut self, i: Input) -> OpResult {
        let cluster = self.check_cluster(i.opt_str("cluster")?)?;
        let family = i.opt_str("family")?;
        let started_by = i.opt_str("startedBy")?;
        let desired = i.opt_str("desiredStatus")?.unwrap_or("RUNNING");
        if !["RUNNING", "PENDING", "STOPPED"].contains(&desired) {
            return Err(invalid(format!("desiredStatus {desired} is not valid.")));
        }
        let max = i.opt_i64("maxResults")?.unwrap_or(100).clamp(1, 100) as usize;
        let start: usize = match i.opt_str("nextToken")? {
            None => 0,
            Some(t) => t.parse().map_err(|_| invalid("Invalid nextToken."))?,
        };
        if let Some(service) = i.opt_str("serviceName")? {
            let arns = self.rolls.list_tasks(&cluster, service, desired);
            return Ok(json!({ "taskArns": arns.iter().take(max).collect::<Vec<_>>() }));
        }
        let arns: Vec<String> = self
            .tasks
            .iter_mut()
            .filter(|t| t.cluster == cluster)
            .filter_map(|t| {
                t.refresh(false);
                let desired_matches = match desired {
                    "STOPPED" => t.desired_status() == "STOPPED",
                    _ => t.desired_status() == "RUNNING",
                };
                let ok = desired_matches
                    && family.is_none_or(|f| t.definition.family == f)
                    && started_by.is_none_or(|s| t.params.started_by.as_deref() == Some(s));
                ok.then(|| t.arn.clone())
            })
            .collect();
        let page: Vec<&String> = arns.iter().skip(start).take(max).collect();
        let mut answer = json!({ "taskArns": page });
        if start + max < arns.len() {
            answer["nextToken"] = json!((start + max).to_string());
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ecs(outcomes: Value) -> Ecs {
        let scenario = Scenario::from_json(
            &json!({
                "clusters": ["app"],
                "taskDefinitions": [{"family": "app-migrate", "revision": 3,
                    "containers": [{"name": "app", "logGroup": "/ecs/app", "logStreamPrefix": "migrate"}]}],
                "services": [{"name": "web", "cluster": "app", "launchType": "FARGATE", "subnets": ["subnet-1"]}],
                "tasks": outcomes,
            })
            .to_string(),
        )
        .unwrap();
        Ecs::new(&scenario)
    }

    fn run(token: &str, command: &str) -> Value {
        json!({
            "cluster": "app", "taskDefinition": "app-migrate:3", "clientToken": token,
            "startedBy": "migrate-once", "launchType": "FARGATE",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"]}},
            "overrides": {"containerOverrides": [{"name": "app", "command": [command]}]},
            "tags": [{"key": "migrate-once:deployment", "value": "d1"}],
        })
    }

    #[test]
    fn client_token_replays_the_same_task() {
        let mut e = ecs(json!([]));
        let first = e
            .handle("RunTask", &run("tok-1", "migrate"), Some("job-1"))
            .unwrap();
        let again = e.handle("RunTask", &run("tok-1", "migrate"), None).unwrap();
        assert_eq!(first["tasks"][0]["taskArn"], again["tasks"][0]["taskArn"]);
        assert_eq!(e.tasks().len(), 1);
        let conflict = e
            .handle("RunTask", &run("tok-1", "other"), None)
            .unwrap_err();
        assert_eq!(conflict.code, "ConflictException");
        assert_eq!(
            conflict.body()["resourceIds"][0],
            first["tasks"][0]["taskArn"]
        );
        e.handle("RunTask", &run("tok-2", "migrate"), None).unwrap();
        assert_eq!(e.tasks().len(), 2);
        assert_eq!(e.tasks()[0].job_id.as_deref(), Some("job-1"));
    }

    #[test]
    fn scripted_failure_creates_nothing_and_binds_no_token() {
        let mut e = ecs(json!([{"runTaskFailure": "RESOURCE:MEMORY"}, {}]));
        let failed = e.handle("RunTask", &run("tok", "m"), None).unwrap();
        assert_eq!(failed["tasks"], json!([]));
        assert_eq!(failed["failures"][0]["reason"], "RESOURCE:MEMORY");
        let ok = e.handle("RunTask", &run("tok", "m"), None).unwrap();
        assert_eq!(ok["tasks"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn describe_and_stop_follow_the_script() {
        let mut e = ecs(json!([{"timeline": ["PENDING", "RUNNING"], "exitCodes": {"app": 0}}]));
        let arn = e.handle("RunTask", &run("t", "m"), None).unwrap()["tasks"][0]["taskArn"].clone();
        let d = |e: &mut Ecs| {
            e.handle(
                "DescribeTasks",
                &json!({"cluster": "app", "tasks": [arn.clone(), "nope"], "include": ["TAGS"]}),
                None,
            )
            .unwrap()
        };
        let first = d(&mut e);
        assert_eq!(first["tasks"][0]["lastStatus"], "RUNNING");
        assert_eq!(first["tasks"][0]["tags"][0]["value"], "d1");
        assert_eq!(first["failures"][0]["reason"], "MISSING");
        let listed = e
            .handle(
                "ListTasks",
                &json!({"cluster": "app", "startedBy": "migrate-once"}),
                None,
            )
            .unwrap();
        assert_eq!(listed["taskArns"][0], arn);
        let stopped = e
            .handle(
                "StopTask",
                &json!({"cluster": "app", "task": arn, "reason": "timed out"}),
                None,
            )
            .unwrap();
        assert_eq!(stopped["task"]["desiredStatus"], "STOPPED");
        let last = d(&mut e);
        assert_eq!(last["tasks"][0]["stopCode"], "UserInitiated");
        assert_eq!(last["tasks"][0]["containers"][0]["exitCode"], 137);
    }

    #[test]
    fn registration_makes_a_new_revision_per_call_and_keeps_tags() {
        let mut e = ecs(json!([]));
        let request = json!({
            "family": "app-migrate", "networkMode": "awsvpc", "cpu": "512", "memory": "1024",
            "requiresCompatibilities": ["FARGATE"],
            "volumes": [{"name": "scratch"}],
            "containerDefinitions": [{"name": "app", "image": "r/app:2", "essential": true,
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/app", "awslogs-stream-prefix": "migrate"}}}],
            "tags": [{"key": "migrate-once:deployment", "value": "d1"}],
        });
        let first = e.handle("RegisterTaskDefinition", &request, None).unwrap();
        assert_eq!(first["taskDefinition"]["revision"], 4);
        assert_eq!(first["tags"][0]["value"], "d1");
        let second = e.handle("RegisterTaskDefinition", &request, None).unwrap();
        assert_eq!(
            second["taskDefinition"]["taskDefinitionArn"],
            format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/app-migrate:5")
        );
        let described = e
            .handle(
                "DescribeTaskDefinition",
                &json!({"taskDefinition": "app-migrate:4", "include": ["TAGS"]}),
                None,
            )
            .unwrap();
        assert_eq!(described["taskDefinition"]["volumes"][0]["name"], "scratch");
        assert_eq!(
            described["taskDefinition"]["containerDefinitions"][0]["image"],
            "r/app:2"
        );
        assert_eq!(described["taskDefinition"]["memory"], "1024");
        assert_eq!(
            described["tags"],
            json!([{"key": "migrate-once:deployment", "value": "d1"}])
        );
        assert!(described["taskDefinition"].get("tags").is_none());
        let latest = e
            .handle(
                "DescribeTaskDefinition",
                &json!({"taskDefinition": "app-migrate"}),
                None,
            )
            .unwrap();
        assert_eq!(latest["taskDefinition"]["revision"], 5);
        let revisions = e.revisions("app-migrate");
        assert_eq!(revisions.len(), 3);
        assert!(!revisions[0].registered && revisions[2].registered);
        assert_eq!(revisions[1].images["app"], "r/app:2");

        let mut run = run("tok", "m");
        run["taskDefinition"] = json!("app-migrate:4");
        e.handle("RunTask", &run, None).unwrap();
        let ran = e.tasks_run();
        assert_eq!(ran[0].task_definition_arn, revisions[1].arn);
        assert_eq!(ran[0].images["app"], "r/app:2");

        for (bad, needle) in [
            (
                json!({"family": "x", "containerDefinitions": []}),
                "cannot be empty",
            ),
            (
                json!({"family": "x y", "containerDefinitions": [{"name": "a", "image": "i"}]}),
                "Family",
            ),
            (
                json!({"family": "x", "containerDefinitions": [{"name": "a", "image": "i"}], "tags": [{"key": "aws:x", "value": "v"}]}),
                "reserved",
            ),
        ] {
            let err = e.handle("RegisterTaskDefinition", &bad, None).unwrap_err();
            assert!(err.message.contains(needle), "{bad}: {err:?}");
        }
    }

    #[test]
    fn definitions_and_services_resolve_like_ecs() {
        let mut e = ecs(json!([]));
        let td = e
            .handle(
                "DescribeTaskDefinition",
                &json!({"taskDefinition": "app-migrate"}),
                None,
            )
            .unwrap();
        assert_eq!(td["taskDefinition"]["revision"], 3);
        assert_eq!(td["taskDefinition"]["cpu"], "256");
        assert_eq!(
            td["taskDefinition"]["containerDefinitions"][0]["logConfiguration"]["options"]["awslogs-stream-prefix"],
            "migrate"
        );
        let missing = e
            .handle(
                "DescribeTaskDefinition",
                &json!({"taskDefinition": "nope"}),
                None,
            )
            .unwrap_err();
        assert_eq!(missing.code, "ClientException");
        let s = e
            .handle(
                "DescribeServices",
                &json!({"cluster": "app", "services": ["web", "gone"]}),
                None,
            )
            .unwrap();
        assert_eq!(
            s["services"][0]["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"],
            "DISABLED"
        );
        assert_eq!(s["failures"][0]["reason"], "MISSING");
    }
}
