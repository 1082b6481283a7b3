//! SSM Parameter Store: the operations migrate-once builds its state and
//! lock on.
//!
//! The semantics that matter for correctness are the ones AWS documents and
//! moto reproduces (a test compares the two): `PutParameter` with
//! `Overwrite=false` on an existing name is the only compare-and-set SSM
//! offers and fails with `ParameterAlreadyExists`; each write increments the
//! version; `GetParametersByPath` lists one level unless `Recursive`, at most
//! 10 per page. Names are normalised like SSM does: `/name` with a single
//! level is the same parameter as `name`. A parameter keeps its newest 100
//! versions: a write past that deletes the oldest, unless the oldest carries
//! a label (`LabelParameterVersion`), when SSM refuses the write with
//! `ParameterMaxVersionLimitExceeded` until a person moves the label.

use crate::wire::{ACCOUNT, ApiError, Input, OpResult, REGION, Violations, epoch};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Versions kept per parameter (AWS keeps 100).
const MAX_VERSIONS: usize = 100;
/// Page size limit of `GetParametersByPath`.
const BY_PATH_MAX_RESULTS: i64 = 10;

/// One version of a parameter, as the tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// Name as written by the first `PutParameter`.
    pub name: String,
    /// `String`, `StringList` or `SecureString`.
    pub kind: String,
    /// The value.
    pub value: String,
    /// Version, from 1.
    pub version: i64,
    /// When this version was written.
    pub last_modified: SystemTime,
    /// `text` (or `aws:ec2:image`).
    pub data_type: String,
    /// `Standard` or `Advanced`.
    pub tier: String,
    /// Labels on this version (`LabelParameterVersion`).
    pub labels: Vec<String>,
}

impl Parameter {
    /// The ARN AWS reports for the parameter.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{}",
            self.name.trim_start_matches('/')
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "Name": self.name,
            "Type": self.kind,
            "Value": self.value,
            "Version": self.version,
            "LastModifiedDate": epoch(self.last_modified),
            "ARN": self.arn(),
            "DataType": self.data_type,
        })
    }
}

/// The parameter store: versions per normalised name.
#[derive(Debug, Default)]
pub struct Ssm {
    params: BTreeMap<String, Vec<Parameter>>,
}

/// SSM treats `/name` (one level) and `name` as the same parameter.
fn normalize(name: &str) -> String {
    let stripped = name.strip_prefix('/').unwrap_or(name);
    if stripped.contains('/') {
        name.to_string()
    } else {
        stripped.to_string()
    }
}

/// Accepts a name, a `name:version` selector or a parameter ARN.
fn split_selector(name: &str) -> (String, Option<&str>) {
    let name = match name.split_once(":parameter/") {
        Some((prefix, rest)) if prefix.starts_with("arn:") => {
            let (path, selector) = match rest.rsplit_once(':') {
                Some((p, s)) => (p, Some(s)),
                None => (rest, None),
            };
            return (format!("/{path}"), selector);
        }
        _ => name,
    };
    match name.rsplit_once(':') {
        Some((n, s)) => (n.to_string(), Some(s)),
        None => (name.to_string(), None),
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::client("ParameterNotFound", format!("Parameter {name} not found."))
}

impl Ssm {
    /// Writes a parameter directly (scenario setup), as a new version.
    pub fn seed(&mut self, name: &str, value: &str, kind: &str, now: SystemTime) {
        let versions = self.params.entry(normalize(name)).or_default();
        let version = versions.last().map_or(1, |p| p.version + 1);
        versions.push(Parameter {
            name: versions
                .first()
                .map_or(name.to_string(), |p| p.name.clone()),
            kind: kind.to_string(),
            value: value.to_string(),
            version,
            last_modified: now,
            data_type: "text".into(),
            tier: "Standard".into(),
            labels: Vec::new(),
        });
    }

    /// The latest version of a parameter.
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.params.get(&normalize(name)).and_then(|v| v.last())
    }

    /// All latest versions, by name.
    pub fn all(&self) -> Vec<Parameter> {
        self.params
            .values()
            .filter_map(|v| v.last().cloned())
            .collect()
    }

    /// Dispatches one SSM operation.
    pub fn handle(&mut self, operation: &str, input: &Value, now: SystemTime) -> OpResult {
        let input = Input(input);
        match operation {
            "GetParameter" => self.get_parameter(input),
            "GetParameters" => self.get_parameters(input),
            "PutParameter" => self.put_parameter(input, now),
            "DeleteParameter" => self.delete_parameter(input),
            "DeleteParameters" => self.delete_parameters(input),
            "GetParametersByPath" => self.get_parameters_by_path(input),
            "LabelParameterVersion" => self.label_parameter_version(input),
            other => Err(ApiError::client(
                "UnknownOperationException",
                format!("the local control plane does not implement AmazonSSM.{other}"),
            )),
        }
    }

    fn lookup(&self, raw_name: &str) -> Result<Parameter, ApiError> {
        let (name, selector) = split_selector(raw_name);
        let versions = self
            .params
            .get(&normalize(&name))
            .ok_or_else(|| not_found(raw_name))?;
        match selector {
            None => versions.last().cloned().ok_or_else(|| not_found(raw_name)),
            Some(sel) => {
                let Ok(version) = sel.parse::<i64>() else {
                    return versions
                        .iter()
                        .find(|p| p.labels.iter().any(|l| l == sel))
                        .cloned()
                        .ok_or_else(|| {
                            ApiError::client(
                                "ParameterVersionNotFound",
                                format!(
                                    "Systems Manager could not find label {sel} for parameter {name}"
                                ),
                            )
                        });
                };
                versions
                    .iter()
                    .find(|p| p.version == version)
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::client(
                            "ParameterVersionNotFound",
                            format!(
                                "Systems Manager could not find version {version} of {name}. Verify the version and try again."
                            ),
                        )
                    })
            }
        }
    }

    fn get_parameter(&self, input: Input) -> OpResult {
        let name = input.str("Name")?;
        let p = self.lookup(name)?;
        Ok(json!({ "Parameter": p.to_json() }))
    }

    fn names(input: Input) -> Result<Vec<String>, ApiError> {
        let names = input.str_list("Names")?;
        let mut v = Violations::default();
        if names.is_empty() {
            v.add(
                "[]",
                "names",
                "Member must have length greater than or equal to 1",
            );
        }
        if names.len() > 10 {
            v.add(
                &format!("[{}]", names.join(", ")),
                "names",
                "Member must have length less than or equal to 10",
            );
        }
        v.into_result("ValidationException")?;
        Ok(names)
    }

    fn get_parameters(&self, input: Input) -> OpResult {
        let names = Self::names(input)?;
        let mut found = Vec::new();
        let mut invalid = Vec::new();
        for name in &names {
            match self.lookup(name) {
                Ok(p) => found.push(p.to_json()),
                Err(_) => invalid.push(Value::String(name.clone())),
            }
        }
        Ok(json!({ "Parameters": found, "InvalidParameters": invalid }))
    }

    fn validate_name(name: &str, v: &mut Violations) {
        let lower = name.trim_start_matches('/').to_ascii_lowercase();
        if name.is_empty() || name.chars().count() > 2048 {
            v.add(name, "name", "Member must have length between 1 and 2048");
        } else if lower.starts_with("aws") || lower.starts_with("ssm") {
            v.add_message(
                "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).",
            );
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        {
            v.add_message(format!(
                "Parameter name {name} is not valid: only a-zA-Z0-9_.-/ are allowed"
            ));
        } else if name.contains('/') && !name.starts_with('/') {
            v.add_message(
                "Parameter name must be a fully qualified name (begin with /) when it contains /.",
            );
        } else if name.matches('/').count() > 15 {
            v.add_message("Parameter name hierarchy exceeds the maximum of 15 levels.");
        }
    }

    fn put_parameter(&mut self, input: Input, now: SystemTime) -> OpResult {
        let name = input.str("Name")?;
        let value = input.str("Value")?;
        let kind = input.opt_str("Type")?;
        let overwrite = input.opt_bool("Overwrite")?.unwrap_or(false);
        let tier = input.opt_str("Tier")?.unwrap_or("Standard");
        let data_type = input.opt_str("DataType")?.unwrap_or("text");
        let has_tags = matches!(input.value("Tags"), Some(Value::Array(t)) if !t.is_empty());

        let mut v = Violations::default();
        Self::validate_name(name, &mut v);
        if value.is_empty() {
            v.add(
                "",
                "value",
                "Member must have length greater than or equal to 1",
            );
        }
        if let Some(k) = kind
            && !["String", "StringList", "SecureString"].contains(&k)
        {
            v.add(
                k,
                "type",
                "Member must satisfy enum value set: [SecureString, StringList, String]",
            );
        }
        if !["Standard", "Advanced", "Intelligent-Tiering"].contains(&tier) {
            v.add(
                tier,
                "tier",
                "Member must satisfy enum value set: [Advanced, Intelligent-Tiering, Standard]",
            );
        }
        v.into_result("ValidationException")?;
        if overwrite && has_tags {
            return Err(ApiError::client(
                "ValidationException",
                "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
            ));
        }
        if !["text", "aws:ec2:image"].contains(&data_type) {
            return Err(ApiError::client(
                "ValidationException",
                format!(
                    "The following data type is not supported: {data_type} (Data type names are all lowercase.)"
                ),
            ));
        }
        let effective_tier = if tier == "Intelligent-Tiering" {
            if value.len() > 4096 {
                "Advanced"
            } else {
                "Standard"
            }
        } else {
            tier
        };
        if effective_tier == "Standard" && value.len() > 4096 {
            return Err(ApiError::client(
                "ValidationException",
                "Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier.",
            ));
        }

        let key = normalize(name);
        let existing = self.params.get(&key).and_then(|v| v.last()).cloned();
        let param = match existing {
            Some(_) if !overwrite => {
                return Err(ApiError::client(
                    "ParameterAlreadyExists",
                    "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
                ));
            }
            Some(prev) => Parameter {
                name: prev.name.clone(),
                kind: kind.unwrap_or(&prev.kind).to_string(),
                value: value.to_string(),
                version: prev.version + 1,
                last_modified: now,
                data_type: data_type.to_string(),
                tier: effective_tier.to_string(),
                labels: Vec::new(),
            },
            None => {
                let Some(kind) = kind else {
                    return Err(ApiError::client(
                        "ValidationException",
                        "A parameter type is required when you create a parameter.",
                    ));
                };
                Parameter {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    value: value.to_string(),
                    version: 1,
                    last_modified: now,
                    data_type: data_type.to_string(),
                    tier: effective_tier.to_string(),
                    labels: Vec::new(),
                }
            }
        };
        let versions = self.params.entry(key).or_default();
        if versions.len() >= MAX_VERSIONS {
            if let Some(oldest) = versions.first().filter(|p| !p.labels.is_empty()) {
                return Err(ApiError::client(
                    "ParameterMaxVersionLimitExceeded",
                    format!(
                        "You attempted to create a new version of {} by calling the PutParameter API with the overwrite flag. Version {}, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again.",
                        oldest.name, oldest.version
                    ),
                ));
            }
            versions.remove(0);
        }
        let answer = json!({ "Version": param.version, "Tier": param.tier });
        versions.push(param);
        Ok(answer)
    }

    /// Puts labels on one version (the latest when none is named), moving
    /// them off any other version of the parameter, as SSM does.
    fn label_parameter_version(&mut self, input: Input) -> OpResult {
        let name = input.str("Name")?;
        let labels = input.str_list("Labels")?;
        let wanted = input.opt_i64("ParameterVersion")?;
        let mut v = Violations::default();
        if labels.is_empty() || labels.len() > 10 {
            v.add(
                &format!("[{}]", labels.join(", ")),
                "labels",
                "Member must have length between 1 and 10",
            );
        }
        v.into_result("ValidationException")?;
        let (valid, invalid): (Vec<String>, Vec<String>) = labels.into_iter().partition(|l| {
            let lower = l.to_ascii_lowercase();
            !l.is_empty()
                && l.len() <= 100
                && !l.starts_with(|c: char| c.is_ascii_digit())
                && !lower.starts_with("aws")
                && !lower.starts_with("ssm")
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        });
        let versions = self
            .params
            .get_mut(&normalize(name))
            .ok_or_else(|| not_found(name))?;
        let version = wanted.unwrap_or_else(|| versions.last().map_or(0, |p| p.version));
        if !versions.iter().any(|p| p.version == version) {
            return Err(ApiError::client(
                "ParameterVersionNotFound",
                format!(
                    "Systems Manager could not find version {version} of {name}. Verify the version and try again."
                ),
            ));
        }
        for p in versions.iter_mut() {
            p.labels.retain(|l| !valid.contains(l));
            if p.version == version {
                p.labels.extend(valid.iter().cloned());
            }
        }
        Ok(json!({ "InvalidLabels": invalid, "ParameterVersion": version }))
    }

    fn delete_parameter(&mut self, input: Input) -> OpResult {
        let name = input.str("Name")?;
        match self.params.remove(&normalize(name)) {
            Some(_) => Ok(json!({})),
            None => Err(not_found(name)),
        }
    }

    fn delete_parameters(&mut self, input: Input) -> OpResult {
        let names = Self::names(input)?;
        let mut deleted = Vec::new();
        let mut invalid = Vec::new();
        for name in names {
            if self.params.remove(&normalize(&name)).is_some() {
                deleted.push(Value::String(name));
            } else {
                invalid.push(Value::String(name));
            }
        }
        Ok(json!({ "DeletedParameters": deleted, "InvalidParameters": invalid }))
    }

    fn get_parameters_by_path(&self, input: Input) -> OpResult {
        let path = input.str("Path")?;
        let recursive = input.opt_bool("Recursive")?.unwrap_or(false);
        let max = input.opt_i64("MaxResults")?.unwrap_or(BY_PATH_MAX_RESULTS);
        let mut v = Violations::default();
        if !(1..=BY_PATH_MAX_RESULTS).contains(&max) {
            v.add(
                &max.to_string(),
                "maxResults",
                "Member must have value less than or equal to 10",
            );
        }
        if !path.starts_with('/') {
            v.add_message(format!(
                "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\". Path: {path}"
            ));
        }
        v.into_result("ValidationException")?;
        let start: usize = match input.opt_str("NextToken")? {
            None => 0,
            Some(t) => t.parse().map_err(|_| {
                ApiError::client("ValidationException", "The specified token is not valid.")
            })?,
        };
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let matching: Vec<&Parameter> = self
            .params
            .values()
            .filter_map(|v| v.last())
            .filter(|p| {
                let full = if p.name.starts_with('/') {
                    p.name.clone()
                } else {
                    format!("/{}", p.name)
                };
                match full.strip_prefix(&prefix) {
                    Some(rest) => !rest.is_empty() && (recursive || !rest.contains('/')),
                    None => false,
                }
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(start)
            .take(max as usize)
            .map(|p| p.to_json())
            .collect();
        let mut answer = json!({ "Parameters": page });
        if start + (max as usize) < matching.len() {
            answer["NextToken"] = Value::String((start + max as usize).to_string());
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(ssm: &mut Ssm, op: &str, body: Value) -> OpResult {
        ssm.handle(op, &body, SystemTime::now())
    }

    #[test]
    fn create_only_put_is_a_compare_and_set() {
        let mut ssm = Ssm::default();
        let first = call(
            &mut ssm,
            "PutParameter",
            json!({"Name":"/a/lock","Value":"x","Type":"String"}),
        );
        assert_eq!(first.unwrap(), json!({"Version":1,"Tier":"Standard"}));
        let second = call(
            &mut ssm,
            "PutParameter",
            json!({"Name":"/a/lock","Value":"y","Type":"String","Overwrite":false}),
        );
        assert_eq!(second.unwrap_err().code, "ParameterAlreadyExists");
        let over = call(
            &mut ssm,
            "PutParameter",
            json!({"Name":"/a/lock","Value":"z","Overwrite":true}),
        );
        assert_eq!(over.unwrap()["Version"], 2);
        let got = call(&mut ssm, "GetParameter", json!({"Name":"/a/lock"})).unwrap();
        assert_eq!(got["Parameter"]["Value"], "z");
        assert_eq!(got["Parameter"]["Type"], "String");
        assert_eq!(got["Parameter"]["DataType"], "text");
        assert!(got["Parameter"]["LastModifiedDate"].is_number());
        let v1 = call(&mut ssm, "GetParameter", json!({"Name":"/a/lock:1"})).unwrap();
        assert_eq!(v1["Parameter"]["Value"], "x");
    }

    #[test]
    fn missing_parameters_are_reported_the_aws_way() {
        let mut ssm = Ssm::default();
        assert_eq!(
            call(&mut ssm, "GetParameter", json!({"Name":"/nope"}))
                .unwrap_err()
                .code,
            "ParameterNotFound"
        );
        assert_eq!(
            call(&mut ssm, "DeleteParameter", json!({"Name":"/nope"}))
                .unwrap_err()
                .code,
            "ParameterNotFound"
        );
        ssm.seed("/x/one", "1", "String", SystemTime::now());
        let many = call(
            &mut ssm,
            "GetParameters",
            json!({"Names":["/x/one","/x/two"]}),
        )
        .unwrap();
        assert_eq!(many["InvalidParameters"], json!(["/x/two"]));
        assert_eq!(many["Parameters"][0]["Name"], "/x/one");
        let del = call(
            &mut ssm,
            "DeleteParameters",
            json!({"Names":["/x/one","/x/two"]}),
        )
        .unwrap();
        assert_eq!(
            del,
            json!({"DeletedParameters":["/x/one"],"InvalidParameters":["/x/two"]})
        );
    }

    #[test]
    fn by_path_respects_recursion_and_pages() {
        let mut ssm = Ssm::default();
        let now = SystemTime::now();
        for i in 0..12 {
            ssm.seed(&format!("/app/p{i:02}"), "v", "String", now);
        }
        ssm.seed("/app/deep/x", "v", "String", now);
        ssm.seed("/other/y", "v", "String", now);
        let flat = call(
            &mut ssm,
            "GetParametersByPath",
            json!({"Path":"/app","Recursive":false}),
        )
        .unwrap();
        assert_eq!(flat["Parameters"].as_array().unwrap().len(), 10);
        let token = flat["NextToken"].as_str().unwrap().to_string();
        let rest = call(
            &mut ssm,
            "GetParametersByPath",
            json!({"Path":"/app","NextToken":token}),
        )
        .unwrap();
        assert_eq!(rest["Parameters"].as_array().unwrap().len(), 2);
        assert!(rest.get("NextToken").is_none());
        let deep = call(
            &mut ssm,
            "GetParametersByPath",
            json!({"Path":"/app/","Recursive":true,"MaxResults":10,"NextToken":"10"}),
        )
        .unwrap();
        assert_eq!(deep["Parameters"].as_array().unwrap().len(), 3);
        let too_many = call(
            &mut ssm,
            "GetParametersByPath",
            json!({"Path":"/app","MaxResults":11}),
        );
        assert_eq!(too_many.unwrap_err().code, "ValidationException");
    }

    #[test]
    fn a_labelled_oldest_version_stops_new_versions_until_the_label_moves() {
        let mut ssm = Ssm::default();
        for i in 0..MAX_VERSIONS {
            ssm.seed("/app/state", &i.to_string(), "String", SystemTime::now());
        }
        let put = |ssm: &mut Ssm| {
            call(
                ssm,
                "PutParameter",
                json!({"Name":"/app/state","Value":"new","Overwrite":true}),
            )
        };
        // Unlabelled: the oldest version makes room.
        assert_eq!(put(&mut ssm).unwrap()["Version"], 101);
        let labelled = call(
            &mut ssm,
            "LabelParameterVersion",
            json!({"Name":"/app/state","ParameterVersion":2,"Labels":["golden","1bad"]}),
        )
        .unwrap();
        assert_eq!(
            labelled,
            json!({"InvalidLabels":["1bad"],"ParameterVersion":2})
        );
        let refused = put(&mut ssm).unwrap_err();
        assert_eq!(refused.code, "ParameterMaxVersionLimitExceeded");
        assert!(refused.message.contains("Version 2, the oldest version"));
        let by_label = call(
            &mut ssm,
            "GetParameter",
            json!({"Name":"/app/state:golden"}),
        )
        .unwrap();
        assert_eq!(by_label["Parameter"]["Version"], 2);
        // Moving the label to the latest version lets the write through.
        call(
            &mut ssm,
            "LabelParameterVersion",
            json!({"Name":"/app/state","Labels":["golden"]}),
        )
        .unwrap();
        assert_eq!(put(&mut ssm).unwrap()["Version"], 102);
    }

    #[test]
    fn single_level_names_are_normalised() {
        let mut ssm = Ssm::default();
        call(
            &mut ssm,
            "PutParameter",
            json!({"Name":"flag","Value":"0","Type":"String"}),
        )
        .unwrap();
        let again = call(
            &mut ssm,
            "PutParameter",
            json!({"Name":"/flag","Value":"1","Type":"String"}),
        );
        assert_eq!(again.unwrap_err().code, "ParameterAlreadyExists");
    }
}
