//! The action's configuration: UserParameters merged over `MIGRATE_ONCE_*`
//! environment defaults (SPEC §3).
//!
//! Resolution is pure: it takes the UserParameters text and the environment
//! and returns either a [`Config`] or one [`ConfigError`] listing *every*
//! problem, each naming the field, where it came from, what was expected and
//! what was found. Values of `environment` are secrets by assumption: they are
//! never echoed in errors and never printed by `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// Prefix of the environment variables that carry configuration defaults.
pub const ENV_PREFIX: &str = "MIGRATE_ONCE_";

/// A fully validated action configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Identity of the deployment; `None` means "ask GetJobDetails".
    pub deployment: Option<String>,
    pub cluster: String,
    /// The task definition: a family, `family:revision` or ARN — or, when
    /// [`Config::task_definition_from_service`] is set, that service's name
    /// (then it is resolved by DescribeServices before anything else uses it).
    pub task_definition: String,
    /// `taskDefinition: {"fromService": "name"}`: run the task definition
    /// this ECS service runs now. A separate field rather than an enum so
    /// that every existing use of `task_definition` keeps compiling; a job
    /// replaces `task_definition` with the resolved ARN before using it.
    pub task_definition_from_service: Option<String>,
    /// Container to override and whose exit code decides; `None` means the
    /// only essential container of the task definition.
    pub container: Option<String>,
    pub command: Option<Vec<String>>,
    pub environment: Environment,
    pub network: Option<Network>,
    pub launch_type: Option<String>,
    pub capacity_provider_strategy: Vec<CapacityProvider>,
    pub platform_version: Option<String>,
    pub timeout_seconds: u64,
    pub state_parameter: String,
    pub reset_parameters: Vec<String>,
    /// Lock name; `None` when locking is disabled (`"lock": false`).
    pub lock: Option<String>,
    pub rerun: Rerun,
    pub max_start_attempts: u32,
    pub max_auto_reruns: u32,
    pub stop_on_pipeline_stop: bool,
    pub wait_seconds: u64,
    /// Which images the migration runs (SPEC §4a).
    pub images: Images,
    /// Services to roll after the migration (SPEC §4b).
    pub deploy: Option<Deploy>,
}

/// `images`: where the migration's images come from (SPEC §4a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Images {
    /// The first input artifact holding `imagedefinitions.json` or
    /// `imageDetail.json` at its root; none: the task definition as it is.
    Auto,
    /// Always the task definition as it is (`images: false`).
    Off,
    /// An explicit choice; what is named must exist.
    Select {
        /// Input artifact name; `None`: the first that holds the file.
        artifact: Option<String>,
        /// Path of the file in the ZIP; `None`: either standard name.
        file: Option<String>,
        /// `imagedefinitions.json` entry whose image the decisive container
        /// gets when the names differ.
        from: Option<String>,
    },
}

impl Images {
    /// `images.from`: the `imagedefinitions.json` entry whose image the
    /// decisive container gets, when set.
    pub fn from_entry(&self) -> Option<&str> {
        match self {
            Images::Select { from, .. } => from.as_deref(),
            _ => None,
        }
    }
}

/// `deploy`: roll these services after the migration (SPEC §4b).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    /// Service names (or ARNs) in the action's cluster; non-empty, distinct.
    pub services: Vec<String>,
    /// How long the services may take to become stable; 60..=82800.
    pub timeout_seconds: u64,
}

/// Environment overrides for the container. Sorted, so that a repeated
/// RunTask for the same attempt sends byte-identical overrides (ECS rejects a
/// reused `clientToken` with different parameters). `Debug` shows names only.
#[derive(Clone, Default, PartialEq)]
pub struct Environment(pub BTreeMap<String, String>);

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Where the task's network configuration comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Network {
    Awsvpc {
        subnets: Vec<String>,
        security_groups: Vec<String>,
        assign_public_ip: Option<bool>,
    },
    /// Copy network, launch type / capacity provider strategy and platform
    /// version from this ECS service.
    FromService(String),
}

/// One entry of a RunTask capacity provider strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityProvider {
    pub capacity_provider: String,
    pub weight: Option<i32>,
    pub base: Option<i32>,
}

/// Whether a deployment whose migration already succeeded runs it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    Once,
    Always,
}

/// Every problem found while resolving the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "Invalid configuration: {one}"),
            many => {
                write!(f, "Invalid configuration ({} problems):", many.len())?;
                for problem in many {
                    write!(f, "\n- {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The accepted fields, in the order errors and documentation list them.
pub const FIELDS: &[&str] = &[
    "deployment",
    "cluster",
    "taskDefinition",
    "container",
    "command",
    "environment",
    "network",
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "timeoutSeconds",
    "stateParameter",
    "resetParameters",
    "lock",
    "rerun",
    "maxStartAttempts",
    "maxAutoReruns",
    "stopOnPipelineStop",
    "waitSeconds",
    "images",
    "deploy",
];

/// Fields whose environment default is taken as plain text rather than JSON.
const TEXT_FIELDS: &[&str] = &[
    "deployment",
    "cluster",
    "taskDefinition",
    "container",
    "launchType",
    "platformVersion",
    "stateParameter",
    "rerun",
];

/// `taskDefinition` → `MIGRATE_ONCE_TASK_DEFINITION`.
pub fn env_name(field: &str) -> String {
    let mut name = String::from(ENV_PREFIX);
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
enum Source {
    UserParameters,
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::UserParameters => f.write_str("UserParameters"),
            Source::Env(name) => f.write_str(name),
        }
    }
}

/// Resolves the configuration from the action's `UserParameters` (absent or
/// blank means `{}`) over the `MIGRATE_ONCE_*` variables of `env` (other
/// variables are ignored; empty values count as unset).
pub fn resolve<'a>(
    user_parameters: Option<&str>,
    env: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut values: BTreeMap<&'static str, (Value, Source)> = BTreeMap::new();

    for (name, raw) in env {
        if !name.starts_with(ENV_PREFIX) || raw.trim().is_empty() {
            continue;
        }
        let Some(field) = FIELDS.iter().copied().find(|f| env_name(f) == name) else {
            problems.push(format!(
                "unknown environment variable `{name}`; accepted: {}",
                FIELDS
                    .iter()
                    .map(|f| env_name(f))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        };
        match env_value(field, raw) {
            Ok(value) => {
                values.insert(field, (value, Source::Env(name.to_owned())));
            }
            Err(e) if field == "environment" => problems.push(format!(
                "`{name}` must be a JSON object of strings (value not shown): {e}"
            )),
            Err(e) => problems.push(format!("`{name}` is not valid JSON ({e}); found `{raw}`")),
        }
    }

    match parse_user_parameters(user_parameters) {
        Ok(object) => {
            for (key, value) in object {
                match FIELDS.iter().copied().find(|f| *f == key) {
                    Some(field) => {
                        values.insert(field, (value, Source::UserParameters));
                    }
                    None => problems.push(format!(
                        "unknown field `{key}` in UserParameters; accepted fields: {}",
                        FIELDS.join(", ")
                    )),
                }
            }
        }
        Err(problem) => problems.push(problem),
    }

    let config = Fields {
        values,
        problems: &mut problems,
    }
    .build();
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError { problems }),
    }
}

fn env_value(field: &str, raw: &str) -> Result<Value, serde_json::Error> {
    // `taskDefinition` is text unless it is the `{"fromService":…}` object;
    // `images` is JSON unless it is the plain word `auto`.
    let object = raw.trim_start().starts_with('{');
    if (TEXT_FIELDS.contains(&field) && !(field == "taskDefinition" && object))
        || (field == "lock" && raw != "false")
        || (field == "images" && raw.trim() == "auto")
    {
        Ok(Value::String(raw.to_owned()))
    } else {
        serde_json::from_str(raw)
    }
}

fn parse_user_parameters(text: Option<&str>) -> Result<Map<String, Value>, String> {
    let text = text.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(format!(
            "UserParameters must be a JSON object such as {{\"cluster\":\"app\",\"taskDefinition\":\"app-migrate\"}}; found {}",
            kind(&other)
        )),
        // serde_json's message ends with "at line L column C".
        Err(e) => Err(format!("UserParameters is not valid JSON: {e}")),
    }
}

/// Reads typed fields out of the merged values, collecting problems.
struct Fields<'p> {
    values: BTreeMap<&'static str, (Value, Source)>,
    problems: &'p mut Vec<String>,
}

impl Fields<'_> {
    fn build(&mut self) -> Option<Config> {
        let deployment = self.string("deployment");
        let cluster = self.string("cluster");
        let (task_definition, task_definition_from_service) = self.task_definition();
        let container = self.string("container");
        let command = self.strings("command", true);
        let environment = self.environment();
        let network = self.network();
        let launch_type = self.string("launchType");
        let capacity_provider_strategy = self.capacity_providers();
        let platform_version = self.string("platformVersion");
        let timeout_seconds = self.integer("timeoutSeconds", 60, 82_800).unwrap_or(3600);
        let state_parameter = self.parameter_name("stateParameter");
        let reset_parameters = self.strings("resetParameters", false).unwrap_or_default();
        let lock = self.lock();
        let rerun = self.rerun();
        let max_start_attempts = self.integer("maxStartAttempts", 1, 10).unwrap_or(3);
        let max_auto_reruns = self.integer("maxAutoReruns", 0, 10).unwrap_or(2);
        let stop_on_pipeline_stop = self.boolean("stopOnPipelineStop").unwrap_or(false);
        let wait_seconds = self.integer("waitSeconds", 0, 600).unwrap_or(20);
        let images = self.images();
        let deploy = self.deploy();

        if cluster.is_none() && !self.values.contains_key("cluster") {
            self.problems.push(format!(
                "`cluster` is required: set it in UserParameters or `{}`",
                env_name("cluster")
            ));
        }
        if task_definition.is_none() && !self.values.contains_key("taskDefinition") {
            self.problems.push(format!(
                "`taskDefinition` is required: set it in UserParameters or `{}`",
                env_name("taskDefinition")
            ));
        }
        if let Some(source) = self.source("launchType")
            && !capacity_provider_strategy.is_empty()
        {
            self.problems.push(format!(
                "`launchType` ({source}) and `capacityProviderStrategy` are exclusive: set one"
            ));
        }
        for name in &reset_parameters {
            if let Err(why) = check_parameter_name(name) {
                self.problems
                    .push(format!("`resetParameters` entry `{name}` {why}"));
            }
        }

        let (cluster, task_definition) = (cluster?, task_definition?);
        // With `fromService` the family is not known before DescribeServices;
        // the service name stands in for it, so the default stays pure and
        // stable while the service moves from revision to revision.
        let state_parameter = state_parameter.unwrap_or_else(|| {
            format!(
                "/migrate-once/{}/{}",
                last_segment(&cluster),
                family(&task_definition)
            )
        });
        let lock = lock.unwrap_or_else(|| Some(format!("{state_parameter}/lock")));
        Some(Config {
            deployment,
            cluster,
            task_definition,
            task_definition_from_service,
            container,
            command,
            environment,
            network,
            launch_type,
            capacity_provider_strategy,
            platform_version,
            timeout_seconds,
            state_parameter,
            reset_parameters,
            lock,
            rerun,
            max_start_attempts: max_start_attempts as u32,
            max_auto_reruns: max_auto_reruns as u32,
            stop_on_pipeline_stop,
            wait_seconds,
            images,
            deploy,
        })
    }

    /// `taskDefinition`: a non-empty string, or `{"fromService":"name"}`
    /// (then the name is also returned as the first element).
    fn task_definition(&mut self) -> (Option<String>, Option<String>) {
        let Some((value, source)) = self.values.get("taskDefinition").cloned() else {
            return (None, None);
        };
        let Value::Object(object) = &value else {
            return (self.string("taskDefinition"), None);
        };
        for key in object.keys().filter(|k| *k != "fromService") {
            self.problems.push(format!(
                "`taskDefinition.{key}` ({source}) is not a known field; accepted: fromService"
            ));
        }
        match object.get("fromService") {
            Some(Value::String(s)) if !s.trim().is_empty() && object.len() == 1 => {
                (Some(s.clone()), Some(s.clone()))
            }
            Some(Value::String(s)) if !s.trim().is_empty() => (None, None),
            _ => {
                self.wrong(
                    "taskDefinition",
                    "a family, family:revision or ARN, or {\"fromService\":\"service name\"}",
                    &value,
                );
                (None, None)
            }
        }
    }

    fn images(&mut self) -> Images {
        let Some((value, source)) = self.values.get("images").cloned() else {
            return Images::Auto;
        };
        let expected = "\"auto\", false, or {\"artifact\":\"name\",\"file\":\"path\",\"from\":\"entry\"} (each optional)";
        let object = match &value {
            Value::String(s) if s == "auto" => return Images::Auto,
            Value::Bool(false) => return Images::Off,
            Value::Object(object) => object,
            other => {
                self.wrong("images", expected, other);
                return Images::Auto;
            }
        };
        let known = ["artifact", "file", "from"];
        for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
            self.problems.push(format!(
                "`images.{key}` ({source}) is not a known field; accepted: {}",
                known.join(", ")
            ));
        }
        let mut text = |key: &str| match object.get(key) {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(other) => {
                self.problems.push(format!(
                    "`images.{key}` ({source}): expected a non-empty string, found {}",
                    shown(other)
                ));
                None
            }
        };
        Images::Select {
            artifact: text("artifact"),
            file: text("file"),
            from: text("from"),
        }
    }

    fn deploy(&mut self) -> Option<Deploy> {
        let (value, source) = self.values.get("deploy").cloned()?;
        let Value::Object(object) = &value else {
            self.wrong(
                "deploy",
                "{\"services\":[\"name\",..],\"timeoutSeconds\":60..82800}",
                &value,
            );
            return None;
        };
        let mut ok = true;
        let known = ["services", "timeoutSeconds"];
        for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
            self.problems.push(format!(
                "`deploy.{key}` ({source}) is not a known field; accepted: {}",
                known.join(", ")
            ));
            ok = false;
        }
        let services: Option<Vec<String>> = match object.get("services") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .filter(|s| !s.trim().is_empty())
                        .map(str::to_owned)
                })
                .collect(),
            _ => None,
        };
        let services = match services {
            Some(services) => {
                let mut seen = std::collections::BTreeSet::new();
                let duplicates: Vec<&str> = services
                    .iter()
                    // A name and an ARN of one service are the same service.
                    .filter(|s| !seen.insert(last_segment(s)))
                    .map(String::as_str)
                    .collect();
                if !duplicates.is_empty() {
                    self.problems.push(format!(
                        "`deploy.services` ({source}) names {} more than once; each service is rolled once",
                        duplicates.join(", ")
                    ));
                    ok = false;
                }
                services
            }
            None => {
                self.problems.push(format!(
                    "`deploy.services` ({source}): expected a non-empty array of service names, found {}",
                    object.get("services").map(shown).unwrap_or_else(|| "nothing".into())
                ));
                ok = false;
                Vec::new()
            }
        };
        let timeout_seconds = match object.get("timeoutSeconds") {
            None => 1800,
            Some(v) => match v.as_u64().filter(|n| (60..=82_800).contains(n)) {
                Some(n) => n,
                None => {
                    self.problems.push(format!(
                        "`deploy.timeoutSeconds` ({source}): expected an integer from 60 to 82800, found {}",
                        shown(v)
                    ));
                    ok = false;
                    1800
                }
            },
        };
        ok.then_some(Deploy {
            services,
            timeout_seconds,
        })
    }

    fn source(&self, field: &str) -> Option<String> {
        self.values.get(field).map(|(_, s)| s.to_string())
    }

    fn wrong(&mut self, field: &str, expected: &str, found: &Value) {
        let source = self.source(field).unwrap_or_default();
        self.problems.push(format!(
            "`{field}` ({source}): expected {expected}, found {}",
            shown(found)
        ));
    }

    fn string(&mut self, field: &'static str) -> Option<String> {
        let (value, _) = self.values.get(field)?.clone();
        match value {
            Value::String(s) if !s.trim().is_empty() => Some(s),
            other => {
                self.wrong(field, "a non-empty string", &other);
                None
            }
        }
    }

    fn strings(&mut self, field: &'static str, non_empty: bool) -> Option<Vec<String>> {
        let (value, _) = self.values.get(field)?.clone();
        let items: Option<Vec<String>> = match &value {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        };
        match items {
            Some(items) if !(non_empty && items.is_empty()) => Some(items),
            _ => {
                let expected = if non_empty {
                    "a non-empty array of strings"
                } else {
                    "an array of strings"
                };
                self.wrong(field, expected, &value);
                None
            }
        }
    }

    fn integer(&mut self, field: &'static str, min: u64, max: u64) -> Option<u64> {
        let (value, _) = self.values.get(field)?.clone();
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.wrong(field, &format!("an integer from {min} to {max}"), &value);
                None
            }
        }
    }

    fn boolean(&mut self, field: &'static str) -> Option<bool> {
        let (value, _) = self.values.get(field)?.clone();
        match value {
            Value::Bool(b) => Some(b),
            other => {
                self.wrong(field, "true or false", &other);
                None
            }
        }
    }

    fn parameter_name(&mut self, field: &'static str) -> Option<String> {
        let name = self.string(field)?;
        match check_parameter_name(&name) {
            Ok(()) => Some(name),
            Err(why) => {
                let source = self.source(field).unwrap_or_default();
                self.problems
                    .push(format!("`{field}` ({source}) `{name}` {why}"));
                None
            }
        }
    }

    /// `Some(None)`: locking disabled; `None`: use the default name.
    fn lock(&mut self) -> Option<Option<String>> {
        let (value, _) = self.values.get("lock")?.clone();
        match value {
            Value::Bool(false) => Some(None),
            Value::String(_) => self.parameter_name("lock").map(Some),
            other => {
                self.wrong(
                    "lock",
                    "a parameter path such as \"/migrate-once/app/lock\", or false",
                    &other,
                );
                None
            }
        }
    }

    fn rerun(&mut self) -> Rerun {
        let Some((value, _)) = self.values.get("rerun").cloned() else {
            return Rerun::Once;
        };
        match value.as_str() {
            Some("once") => Rerun::Once,
            Some("always") => Rerun::Always,
            _ => {
                self.wrong("rerun", "\"once\" or \"always\"", &value);
                Rerun::Once
            }
        }
    }

    fn environment(&mut self) -> Environment {
        let Some((value, source)) = self.values.get("environment").cloned() else {
            return Environment::default();
        };
        let Value::Object(object) = value else {
            self.problems.push(format!(
                "`environment` ({source}): expected an object of name → string value, found {}",
                kind(&value)
            ));
            return Environment::default();
        };
        let mut environment = BTreeMap::new();
        for (name, value) in object {
            match value {
                Value::String(s) => {
                    environment.insert(name, s);
                }
                // The value may be a secret: say what kind it is, never what it is.
                other => self.problems.push(format!(
                    "`environment.{name}` ({source}): expected a string, found {} (value not shown)",
                    kind(&other)
                )),
            }
        }
        Environment(environment)
    }

    fn network(&mut self) -> Option<Network> {
        let (value, source) = self.values.get("network").cloned()?;
        let expected = "{\"subnets\":[..],\"securityGroups\":[..],\"assignPublicIp\":bool} or {\"fromService\":\"name\"}";
        let Value::Object(object) = &value else {
            self.wrong("network", expected, &value);
            return None;
        };
        let known = ["subnets", "securityGroups", "assignPublicIp", "fromService"];
        let mut ok = true;
        for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
            self.problems.push(format!(
                "`network.{key}` ({source}) is not a known field; accepted: {}",
                known.join(", ")
            ));
            ok = false;
        }
        if let Some(service) = object.get("fromService") {
            if object.len() > 1 {
                self.problems.push(format!(
                    "`network` ({source}): `fromService` copies the whole network configuration; remove the other keys"
                ));
                return None;
            }
            return match service.as_str() {
                Some(s) if !s.is_empty() => ok.then(|| Network::FromService(s.to_owned())),
                _ => {
                    self.problems.push(format!(
                        "`network.fromService` ({source}): expected a service name, found {}",
                        shown(service)
                    ));
                    None
                }
            };
        }
        let list = |key: &str| -> Option<Vec<String>> {
            match object.get(key) {
                None => Some(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Some(_) => None,
            }
        };
        let subnets = list("subnets");
        let security_groups = list("securityGroups");
        let assign_public_ip = match object.get("assignPublicIp") {
            None => Some(None),
            Some(Value::Bool(b)) => Some(Some(*b)),
            Some(_) => None,
        };
        match (subnets, security_groups, assign_public_ip) {
            (Some(subnets), Some(security_groups), Some(assign_public_ip))
                if !subnets.is_empty() =>
            {
                ok.then_some(Network::Awsvpc {
                    subnets,
                    security_groups,
                    assign_public_ip,
                })
            }
            _ => {
                self.wrong("network", expected, &value);
                None
            }
        }
    }

    fn capacity_providers(&mut self) -> Vec<CapacityProvider> {
        let Some((value, _)) = self.values.get("capacityProviderStrategy").cloned() else {
            return Vec::new();
        };
        let parse = |item: &Value| -> Option<CapacityProvider> {
            let object = item.as_object()?;
            if object
                .keys()
                .any(|k| !["capacityProvider", "weight", "base"].contains(&k.as_str()))
            {
                return None;
            }
            let number = |key: &str, max: i64| match object.get(key) {
                None => Some(None),
                Some(v) => v
                    .as_i64()
                    .filter(|n| (0..=max).contains(n))
                    .map(|n| Some(n as i32)),
            };
            Some(CapacityProvider {
                capacity_provider: object.get("capacityProvider")?.as_str()?.to_owned(),
                weight: number("weight", 1000)?,
                base: number("base", 100_000)?,
            })
        };
        let strategy: Option<Vec<CapacityProvider>> = match &value {
            Value::Array(items) if !items.is_empty() => items.iter().map(parse).collect(),
            _ => None,
        };
        strategy.unwrap_or_else(|| {
            self.wrong(
                "capacityProviderStrategy",
                "a non-empty array of {\"capacityProvider\":\"name\",\"weight\":0..1000,\"base\":0..100000}",
                &value,
            );
            Vec::new()
        })
    }
}

/// SSM parameter paths: absolute, at most 15 levels, of SSM's characters.
fn check_parameter_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if !name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        Err("must be an absolute parameter path such as /migrate-once/app/state".into())
    } else if !valid_chars {
        Err("may contain only letters, digits, and _ . - /".into())
    } else if name.len() > 900 {
        Err("is longer than 900 characters".into())
    } else {
        Ok(())
    }
}

/// Name part of an ARN or path-like identifier: `arn:…:cluster/app` → `app`.
pub fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// Task definition family of a family, `family:revision` or ARN.
pub fn family(task_definition: &str) -> &str {
    let name = last_segment(task_definition);
    name.split(':').next().unwrap_or(name)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A found value as it appears in a message: short, and typed.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        format!(
            "{} ({}…)",
            kind(value),
            &text[..text.floor_char_boundary(60)]
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_with(user: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        resolve(Some(user), env.iter().copied())
    }

    #[test]
    fn user_parameters_win_over_environment_defaults() {
        let config = resolve_with(
            r#"{"cluster":"blue","taskDefinition":"app-migrate:7","timeoutSeconds":120}"#,
            &[
                ("MIGRATE_ONCE_CLUSTER", "green"),
                ("MIGRATE_ONCE_TIMEOUT_SECONDS", "600"),
                ("MIGRATE_ONCE_WAIT_SECONDS", "5"),
                ("MIGRATE_ONCE_RESET_PARAMETERS", r#"["/app/once"]"#),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        assert_eq!(config.cluster, "blue");
        assert_eq!(config.timeout_seconds, 120);
        assert_eq!(config.wait_seconds, 5);
        assert_eq!(config.reset_parameters, vec!["/app/once"]);
        assert_eq!(config.state_parameter, "/migrate-once/blue/app-migrate");
        assert_eq!(
            config.lock.as_deref(),
            Some("/migrate-once/blue/app-migrate/lock")
        );
        assert_eq!(config.rerun, Rerun::Once);
        assert_eq!(config.max_start_attempts, 3);
    }

    #[test]
    fn defaults_derive_names_from_arns() {
        let config = resolve_with(
            r#"{"cluster":"arn:aws:ecs:eu-west-1:1:cluster/prod","taskDefinition":"arn:aws:ecs:eu-west-1:1:task-definition/db-migrate:12","lock":false}"#,
            &[],
        )
        .unwrap();
        assert_eq!(config.state_parameter, "/migrate-once/prod/db-migrate");
        assert_eq!(config.lock, None);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = resolve_with(
            r#"{"taskDefinition":7,"timeoutSeconds":30,"colour":"red","rerun":"twice","network":{"subnets":[]}}"#,
            &[("MIGRATE_ONCE_WAIT_SECONDS", "soon")],
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "unknown field `colour`",
            "`taskDefinition` (UserParameters): expected a non-empty string, found 7",
            "`timeoutSeconds` (UserParameters): expected an integer from 60 to 82800, found 30",
            "`rerun` (UserParameters): expected \"once\" or \"always\", found \"twice\"",
            "`network` (UserParameters)",
            "`MIGRATE_ONCE_WAIT_SECONDS` is not valid JSON",
            "`cluster` is required",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert_eq!(err.problems.len(), 7, "{text}");
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let err = resolve_with("{\n \"cluster\": \"app\",\n}", &[]).unwrap_err();
        assert!(err.to_string().contains("line 3 column 1"), "{err}");
    }

    #[test]
    fn environment_values_are_never_echoed() {
        let err = resolve_with(
            r#"{"cluster":"c","taskDefinition":"t","environment":{"DB_PASSWORD":12345678}}"#,
            &[("MIGRATE_ONCE_ENVIRONMENT", "{\"TOKEN\":\"hunter2\"")],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("environment.DB_PASSWORD"), "{text}");
        assert!(
            !text.contains("12345678") && !text.contains("hunter2"),
            "{text}"
        );

        let config = resolve_with(
            r#"{"cluster":"c","taskDefinition":"t","environment":{"DB_PASSWORD":"hunter2"}}"#,
            &[],
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn network_shapes() {
        let config = resolve_with(
            r#"{"cluster":"c","taskDefinition":"t","network":{"fromService":"web"}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(config.network, Some(Network::FromService("web".into())));
        let config = resolve_with(
            r#"{"cluster":"c","taskDefinition":"t","network":{"subnets":["s-1"],"securityGroups":["sg-1"],"assignPublicIp":false}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(
            config.network,
            Some(Network::Awsvpc {
                subnets: vec!["s-1".into()],
                security_groups: vec!["sg-1".into()],
                assign_public_ip: Some(false)
            })
        );
        let err = resolve_with(
            r#"{"cluster":"c","taskDefinition":"t","network":{"fromService":"web","subnets":["s"]},"launchType":"FARGATE","capacityProviderStrategy":[{"capacityProvider":"FARGATE_SPOT","weight":1}]}"#,
            &[],
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn unknown_environment_variable_is_an_error_and_empty_is_unset() {
        let err = resolve_with(
            r#"{"cluster":"c","taskDefinition":"t"}"#,
            &[("MIGRATE_ONCE_CLUSTR", "x"), ("MIGRATE_ONCE_CONTAINER", "")],
        )
        .unwrap_err();
        assert!(err.to_string().contains("`MIGRATE_ONCE_CLUSTR`"));
        assert_eq!(err.problems.len(), 1);
    }

    #[test]
    fn task_definition_from_service() {
        let config = resolve_with(
            r#"{"cluster":"c","taskDefinition":{"fromService":"web"}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(config.task_definition, "web");
        assert_eq!(config.task_definition_from_service.as_deref(), Some("web"));
        assert_eq!(config.state_parameter, "/migrate-once/c/web");
        let config = resolve_with(
            r#"{"cluster":"c"}"#,
            &[("MIGRATE_ONCE_TASK_DEFINITION", r#"{"fromService":"api"}"#)],
        )
        .unwrap();
        assert_eq!(config.task_definition_from_service.as_deref(), Some("api"));
        let config = resolve_with(r#"{"cluster":"c","taskDefinition":"app:3"}"#, &[]).unwrap();
        assert_eq!(config.task_definition_from_service, None);

        for (bad, needle) in [
            (
                r#"{"fromService":""}"#,
                "`taskDefinition` (UserParameters): expected",
            ),
            (
                r#"{"fromService":"web","x":1}"#,
                "`taskDefinition.x` (UserParameters) is not a known field",
            ),
            (r#"{"service":"web"}"#, "`taskDefinition.service`"),
            (
                "[]",
                "`taskDefinition` (UserParameters): expected a non-empty string",
            ),
        ] {
            let err = resolve_with(&format!(r#"{{"cluster":"c","taskDefinition":{bad}}}"#), &[])
                .unwrap_err();
            assert!(err.to_string().contains(needle), "{bad}: {err}");
            assert!(!err.to_string().contains("is required"), "{bad}: {err}");
        }
    }

    #[test]
    fn images_shapes() {
        let images = |user: &str, env: &[(&str, &str)]| {
            resolve_with(
                &format!(r#"{{"cluster":"c","taskDefinition":"t"{user}}}"#),
                env,
            )
            .map(|c| c.images)
        };
        assert_eq!(images("", &[]), Ok(Images::Auto));
        assert_eq!(images(r#","images":"auto""#, &[]), Ok(Images::Auto));
        assert_eq!(images(r#","images":false"#, &[]), Ok(Images::Off));
        assert_eq!(
            images("", &[("MIGRATE_ONCE_IMAGES", "false")]),
            Ok(Images::Off)
        );
        assert_eq!(
            images("", &[("MIGRATE_ONCE_IMAGES", "auto")]),
            Ok(Images::Auto)
        );
        assert_eq!(
            images(
                r#","images":{"from":"web"}"#,
                &[("MIGRATE_ONCE_IMAGES", "false")]
            ),
            Ok(Images::Select {
                artifact: None,
                file: None,
                from: Some("web".into())
            })
        );
        assert_eq!(
            images(
                "",
                &[(
                    "MIGRATE_ONCE_IMAGES",
                    r#"{"artifact":"BuildOutput","file":"out/imageDetail.json"}"#
                )]
            ),
            Ok(Images::Select {
                artifact: Some("BuildOutput".into()),
                file: Some("out/imageDetail.json".into()),
                from: None
            })
        );
        let err = images(r#","images":{"artifact":1,"fle":"x","from":""}"#, &[]).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        for needle in [
            "`images.fle` (UserParameters) is not a known field; accepted: artifact, file, from",
            "`images.artifact` (UserParameters): expected a non-empty string, found 1",
            "`images.from` (UserParameters): expected a non-empty string, found \"\"",
        ] {
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
        for bad in [r#""manual""#, "true", "[]"] {
            let err = images(&format!(r#","images":{bad}"#), &[]).unwrap_err();
            assert!(
                err.to_string()
                    .contains("`images` (UserParameters): expected \"auto\", false"),
                "{err}"
            );
        }
    }

    #[test]
    fn deploy_shapes() {
        let deploy = |value: &str| {
            resolve_with(
                &format!(r#"{{"cluster":"c","taskDefinition":"t","deploy":{value}}}"#),
                &[],
            )
            .map(|c| c.deploy)
        };
        assert_eq!(
            deploy(r#"{"services":["web","worker"]}"#),
            Ok(Some(Deploy {
                services: vec!["web".into(), "worker".into()],
                timeout_seconds: 1800
            }))
        );
        assert_eq!(
            deploy(r#"{"services":["web"],"timeoutSeconds":60}"#)
                .map(|d| d.map(|d| d.timeout_seconds)),
            Ok(Some(60))
        );
        let config = resolve_with(
            r#"{"cluster":"c","taskDefinition":"t"}"#,
            &[(
                "MIGRATE_ONCE_DEPLOY",
                r#"{"services":["api"],"timeoutSeconds":82800}"#,
            )],
        )
        .unwrap();
        assert_eq!(
            config.deploy.map(|d| d.services),
            Some(vec!["api".to_owned()])
        );

        let err =
            deploy(r#"{"services":["web","web",""],"timeoutSeconds":59,"wait":true}"#).unwrap_err();
        let text = err.to_string();
        for needle in [
            "`deploy.wait` (UserParameters) is not a known field",
            "`deploy.services` (UserParameters): expected a non-empty array of service names",
            "`deploy.timeoutSeconds` (UserParameters): expected an integer from 60 to 82800, found 59",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert_eq!(err.problems.len(), 3, "{text}");
        let err = deploy(r#"{"services":["web","worker","web"]}"#).unwrap_err();
        assert!(
            err.to_string().contains("names web more than once"),
            "{err}"
        );
        let err = deploy(r#"{"services":["web","arn:aws:ecs:us-east-1:1:service/app/web"]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
        for bad in [
            r#"{"services":[]}"#,
            r#"{}"#,
            r#"["web"]"#,
            r#"{"services":"web"}"#,
        ] {
            assert!(deploy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names_are_screaming_snake() {
        assert_eq!(env_name("taskDefinition"), "MIGRATE_ONCE_TASK_DEFINITION");
        assert_eq!(
            env_name("capacityProviderStrategy"),
            "MIGRATE_ONCE_CAPACITY_PROVIDER_STRATEGY"
        );
    }
}
