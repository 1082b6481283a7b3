//! The awsJson1_1 wire protocol, server side: errors, timestamps and
//! typed access to request fields.
//!
//! Everything here exists so that the service modules can say "this field
//! must be a string" or "answer `ParameterNotFound`" in one line and get the
//! exact shapes the Rust SDK's strict deserialisers accept: error code in
//! both `__type` and the `x-amzn-errortype` header, timestamps as epoch
//! seconds (JSON numbers), and `SerializationException` when a client sends
//! a field of the wrong JSON type (what AWS answers too).

use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The region every ARN and endpoint of the local control plane uses.
pub const REGION: &str = "us-east-1";
/// The account id every ARN of the local control plane uses.
pub const ACCOUNT: &str = "123456789012";

/// An AWS error answer: HTTP status, error code (`__type`) and message,
/// plus any modelled extra members (ECS `ConflictException.resourceIds`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status; 400 for client errors, 5xx for server faults.
    pub status: u16,
    /// The error shape name, e.g. `ParameterNotFound`.
    pub code: String,
    /// Human-readable message, as AWS would word it.
    pub message: String,
    /// Extra top-level members of the error body.
    pub extra: Vec<(String, Value)>,
}

impl ApiError {
    /// An error with an explicit HTTP status.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            extra: Vec::new(),
        }
    }

    /// A 400 client error, the common case.
    pub fn client(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// Adds a modelled member to the error body.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.push((key.to_string(), value));
        self
    }

    /// The JSON body AWS sends for this error.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("__type".into(), Value::String(self.code.clone()));
        body.insert("message".into(), Value::String(self.message.clone()));
        for (k, v) in &self.extra {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

/// Result type of every operation handler.
pub type OpResult = Result<Value, ApiError>;

/// A timestamp as awsJson sends it: epoch seconds with millisecond
/// precision, as a JSON number.
pub fn epoch(t: SystemTime) -> Value {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let millis = d.as_millis() as f64;
    serde_json::Number::from_f64(millis / 1000.0)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Collects AWS-style validation messages ("Value '…' at 'field' failed to
/// satisfy constraint: …") and turns them into one error naming all of them.
#[derive(Debug, Default)]
pub struct Violations {
    items: Vec<String>,
}

impl Violations {
    /// Records one violated constraint on `field`.
    pub fn add(&mut self, value: &str, field: &str, constraint: &str) {
        self.items.push(format!(
            "Value '{}' at '{field}' failed to satisfy constraint: {constraint}",
            elide(value, 100)
        ));
    }

    /// Records a free-form violation message.
    pub fn add_message(&mut self, message: impl Into<String>) {
        self.items.push(message.into());
    }

    /// `Ok(())` when nothing was recorded, otherwise the error AWS sends.
    pub fn into_result(self, code: &str) -> Result<(), ApiError> {
        match self.items.len() {
            0 => Ok(()),
            1 => Err(ApiError::client(
                code,
                format!("1 validation error detected: {}", self.items[0]),
            )),
            n => Err(ApiError::client(
                code,
                format!("{n} validation errors detected: {}", self.items.join("; ")),
            )),
        }
    }
}

/// Shortens `s` to `max` characters for error messages.
pub fn elide(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head}…")
    }
}

/// Typed, fallible access to the members of a request body.
///
/// A member of the wrong JSON type is a `SerializationException`; a missing
/// required member is a `ValidationException` worded like AWS's.
#[derive(Clone, Copy)]
pub struct Input<'a>(pub &'a Value);

impl<'a> Input<'a> {
    fn member(&self, field: &str) -> Option<&'a Value> {
        match self.0.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn mismatch(field: &str, expected: &str) -> ApiError {
        ApiError::client(
            "SerializationException",
            format!("member '{field}' must be {expected}"),
        )
    }

    /// The raw member, if present and not null.
    pub fn value(&self, field: &str) -> Option<&'a Value> {
        self.member(field)
    }

    /// An optional string member.
    pub fn opt_str(&self, field: &str) -> Result<Option<&'a str>, ApiError> {
        match self.member(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Self::mismatch(field, "a string")),
        }
    }

    /// A required string member.
    pub fn str(&self, field: &str) -> Result<&'a str, ApiError> {
        self.opt_str(field)?.ok_or_else(|| {
            ApiError::client(
                "ValidationException",
                format!(
                    "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
                ),
            )
        })
    }

    /// An optional boolean member.
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.member(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::mismatch(field, "a boolean")),
        }
    }

    /// An optional integer member.
    pub fn opt_i64(&self, field: &str) -> Result<Option<i64>, ApiError> {
        match self.member(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::mismatch(field, "an integer")),
            Some(_) => Err(Self::mismatch(field, "an integer")),
        }
    }

    /// An optional list of strings (absent = empty).
    pub fn str_list(&self, field: &str) -> Result<Vec<String>, ApiError> {
        match self.member(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Self::mismatch(field, "a list of strings"))
                })
                .collect(),
            Some(_) => Err(Self::mismatch(field, "a list of strings")),
        }
    }

    /// An optional map of string to string (absent = empty).
    pub fn str_map(
        &self,
        field: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
        match self.member(field) {
            None => Ok(Default::default()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| Self::mismatch(field, "a map of strings"))
                })
                .collect(),
            Some(_) => Err(Self::mismatch(field, "a map of strings")),
        }
    }

    /// An optional nested structure.
    pub fn opt_struct(&self, field: &str) -> Result<Option<Input<'a>>, ApiError> {
        match self.member(field) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(Input(v))),
            Some(_) => Err(Self::mismatch(field, "a structure")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_are_counted_and_joined() {
        let mut v = Violations::default();
        v.add("x", "a", "Member must be short");
        v.add("y", "b", "Member must be long");
        let err = v.into_result("ValidationException").unwrap_err();
        assert_eq!(err.code, "ValidationException");
        assert!(err.message.starts_with("2 validation errors detected: "));
        assert!(err.message.contains("at 'a'") && err.message.contains("at 'b'"));
    }

    #[test]
    fn wrong_member_type_is_a_serialization_exception() {
        let body = json!({"Name": 3});
        let err = Input(&body).str("Name").unwrap_err();
        assert_eq!(err.code, "SerializationException");
        let missing = Input(&body).str("Value").unwrap_err();
        assert_eq!(missing.code, "ValidationException");
    }

    #[test]
    fn epoch_is_a_number_with_millis() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(epoch(t), json!(1_700_000_000.123));
    }
}
