//! Keeps local-aws's SSM honest: the same call sequence goes to moto's
//! server (whose SSM is faithful to AWS) and to local-aws, and the answers
//! must agree on what matters — status, error code, names, values,
//! versions, types, listing contents. ARNs, dates and request ids are only
//! checked for presence and type.
//!
//! Needs `moto_server` on PATH (`pip install 'moto[server]==5.2.1'`); the
//! test FAILS without it, so a CI that forgot to install it cannot pass.

use local_aws::http_client::{HttpResponse, aws_call};
use local_aws::{LocalAws, Scenario};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn find_moto() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p,
        None => panic!(
            "moto_server is not on PATH: install it with `pip install 'moto[server]==5.2.1'` \
             (or set MOTO_SERVER=/path/to/moto_server). This test compares local-aws's SSM with moto's and must not be skipped."
        ),
    }
}

/// Starts moto_server on a free port; returns the child and its endpoint.
async fn start_moto() -> (Child, String) {
    let path = find_moto();
    let mut child = Command::new(&path)
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(idx) = line.find("http://") {
                let url = line[idx..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                return Some(url);
            }
            seen.push(line);
        }
        None
    })
    .await;
    let url = match found {
        Ok(Some(url)) => url,
        _ => panic!(
            "moto_server did not start (is the server extra installed? pip install 'moto[server]==5.2.1'); its output:\n{}",
            seen.join("\n")
        ),
    };
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[derive(Clone, Copy)]
enum Check {
    /// Status and error code only.
    Status,
    /// `Version`, `Tier`.
    Put,
    /// `Parameter` fields.
    Get,
    /// `Parameters` (name → value) and `InvalidParameters`.
    GetMany,
    /// All pages of `GetParametersByPath`: the set of names.
    ByPath,
    /// `DeletedParameters`, `InvalidParameters`.
    DeleteMany,
}

fn steps() -> Vec<(&'static str, &'static str, Value, Check)> {
    vec![
        (
            "put create",
            "PutParameter",
            json!({"Name": "/mo/app/state", "Value": "v1", "Type": "String"}),
            Check::Put,
        ),
        (
            "put create-only conflict",
            "PutParameter",
            json!({"Name": "/mo/app/state", "Value": "x", "Type": "String", "Overwrite": false}),
            Check::Status,
        ),
        (
            "put overwrite",
            "PutParameter",
            json!({"Name": "/mo/app/state", "Value": "v2", "Overwrite": true}),
            Check::Put,
        ),
        (
            "get",
            "GetParameter",
            json!({"Name": "/mo/app/state"}),
            Check::Get,
        ),
        (
            "get version 1",
            "GetParameter",
            json!({"Name": "/mo/app/state:1"}),
            Check::Get,
        ),
        (
            "get missing",
            "GetParameter",
            json!({"Name": "/mo/app/missing"}),
            Check::Status,
        ),
        (
            "put deep",
            "PutParameter",
            json!({"Name": "/mo/app/deep/x", "Value": "d", "Type": "String"}),
            Check::Put,
        ),
        (
            "put reset",
            "PutParameter",
            json!({"Name": "/mo/app/reset1", "Value": "0", "Type": "String"}),
            Check::Put,
        ),
        (
            "put list",
            "PutParameter",
            json!({"Name": "/mo/app/list", "Value": "a,b", "Type": "StringList"}),
            Check::Put,
        ),
        (
            "put other",
            "PutParameter",
            json!({"Name": "/mo/other/y", "Value": "o", "Type": "String"}),
            Check::Put,
        ),
        (
            "get-parameters with a missing name",
            "GetParameters",
            json!({"Names": ["/mo/app/state", "/mo/app/missing", "/mo/app/list"]}),
            Check::GetMany,
        ),
        (
            "by path, one level",
            "GetParametersByPath",
            json!({"Path": "/mo/app", "Recursive": false}),
            Check::ByPath,
        ),
        (
            "by path, recursive",
            "GetParametersByPath",
            json!({"Path": "/mo/app", "Recursive": true}),
            Check::ByPath,
        ),
        (
            "by path, recursive, pages of 1",
            "GetParametersByPath",
            json!({"Path": "/mo/app/", "Recursive": true, "MaxResults": 1}),
            Check::ByPath,
        ),
        (
            "by path, MaxResults 11",
            "GetParametersByPath",
            json!({"Path": "/mo/app", "MaxResults": 11}),
            Check::Status,
        ),
        (
            "put new without type",
            "PutParameter",
            json!({"Name": "/mo/app/untyped", "Value": "u"}),
            Check::Status,
        ),
        (
            "put bogus type",
            "PutParameter",
            json!({"Name": "/mo/app/bogus", "Value": "u", "Type": "Bogus"}),
            Check::Status,
        ),
        (
            "delete",
            "DeleteParameter",
            json!({"Name": "/mo/app/state"}),
            Check::Status,
        ),
        (
            "delete missing",
            "DeleteParameter",
            json!({"Name": "/mo/app/state"}),
            Check::Status,
        ),
        (
            "get deleted",
            "GetParameter",
            json!({"Name": "/mo/app/state"}),
            Check::Status,
        ),
        (
            "delete-parameters with a missing name",
            "DeleteParameters",
            json!({"Names": ["/mo/app/reset1", "/mo/app/missing"]}),
            Check::DeleteMany,
        ),
    ]
}

async fn call(endpoint: &str, op: &str, body: &Value) -> HttpResponse {
    aws_call(endpoint, &format!("AmazonSSM.{op}"), body)
        .await
        .unwrap_or_else(|e| panic!("{op} to {endpoint}: {e}"))
}

fn sorted(v: &Value) -> Value {
    let mut items: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    json!(items)
}

fn parameter_view(p: &Value) -> Value {
    json!({
        "Name": p["Name"], "Type": p["Type"], "Value": p["Value"],
        "Version": p["Version"], "DataType": p["DataType"],
        "ARN is a string": p["ARN"].is_string(),
        "LastModifiedDate is a number": p["LastModifiedDate"].is_number(),
    })
}

/// The comparable view of one step's answer.
async fn observe(endpoint: &str, op: &str, body: &Value, check: Check) -> Value {
    let r = call(endpoint, op, body).await;
    let status = r.status;
    let error = r.error_type();
    let head = json!({"status": status, "error": error});
    if error.is_some() {
        return head;
    }
    let b = r.json().unwrap_or(Value::Null);
    let view = match check {
        Check::Status => Value::Null,
        Check::Put => json!({"Version": b["Version"], "Tier": b["Tier"]}),
        Check::Get => parameter_view(&b["Parameter"]),
        Check::GetMany => {
            let mut params: Vec<Value> = b["Parameters"]
                .as_array()
                .map(|a| a.iter().map(parameter_view).collect())
                .unwrap_or_default();
            params.sort_by_key(|p| p["Name"].to_string());
            json!({"Parameters": params, "InvalidParameters": sorted(&b["InvalidParameters"])})
        }
        Check::DeleteMany => json!({
            "DeletedParameters": sorted(&b["DeletedParameters"]),
            "InvalidParameters": sorted(&b["InvalidParameters"]),
        }),
        Check::ByPath => {
            let mut names: Vec<String> = Vec::new();
            let mut page = b;
            let mut pages = 0;
            loop {
                pages += 1;
                for p in page["Parameters"].as_array().into_iter().flatten() {
                    names.extend(p["Name"].as_str().map(str::to_string));
                }
                let Some(token) = page["NextToken"].as_str().map(str::to_string) else {
                    break;
                };
                if pages > 20 {
                    break;
                }
                let mut next = body.clone();
                next["NextToken"] = json!(token);
                page = call(endpoint, op, &next)
                    .await
                    .json()
                    .unwrap_or(Value::Null);
            }
            names.sort();
            json!({"names": names})
        }
    };
    json!({"status": status, "error": null, "answer": view})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_behaves_like_moto() {
    let (_moto, moto_url) = start_moto().await;
    let local = LocalAws::start(Scenario::default())
        .await
        .expect("local-aws");
    let local_url = local.endpoint_url();
    let mut differences = Vec::new();
    for (name, op, body, check) in steps() {
        let theirs = observe(&moto_url, op, &body, check).await;
        let ours = observe(&local_url, op, &body, check).await;
        if std::env::var_os("SSM_VS_MOTO_VERBOSE").is_some() {
            eprintln!(
                "{name}: moto {theirs}\n{:width$}local {ours}",
                "",
                width = name.len() + 2
            );
        }
        if theirs != ours {
            differences.push(format!(
                "step {name:?} ({op} {body}):\n   moto:      {theirs}\n   local-aws: {ours}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "local-aws's SSM differs from moto's:\n{}",
        differences.join("\n")
    );
}
