//! The Lambda Runtime API (`/2018-06-01/runtime/…`) as `lambda_runtime`
//! 1.5 speaks it: `GET invocation/next` (long poll) answered with the event
//! and the `Lambda-Runtime-*` headers, `POST invocation/{id}/response`,
//! `POST invocation/{id}/error`, `POST init/error`.
//!
//! This module only speaks HTTP; which event goes to which process, and
//! what an error or a crash means, is the function host's business.

use crate::function_host::HostInner;
use crate::server::{HttpResponse, json_response};
use hyper::Method;
use serde_json::json;
use std::sync::Arc;

fn accepted() -> HttpResponse {
    json_response(202, &json!({"status": "OK"}), &[])
}

fn bad_request(error_type: &str, message: impl Into<String>) -> HttpResponse {
    json_response(
        400,
        &json!({"errorType": error_type, "errorMessage": message.into()}),
        &[],
    )
}

/// Handles one Runtime API request of function instance `instance`;
/// `rest` is the path after `/2018-06-01/runtime/`.
pub(crate) async fn handle(
    host: &Arc<HostInner>,
    instance: u64,
    method: &Method,
    rest: &str,
    body: &[u8],
) -> HttpResponse {
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => match host.next(instance).await {
            Ok(d) => {
                let deadline = d.deadline_ms.to_string();
                let arn = host.function_arn();
                let resp = json_response(
                    200,
                    &serde_json::Value::Null,
                    &[
                        ("content-type", "application/json"),
                        (
                            "lambda-runtime-aws-request-id",
                            d.invocation.request_id.as_str(),
                        ),
                        ("lambda-runtime-deadline-ms", deadline.as_str()),
                        ("lambda-runtime-invoked-function-arn", arn.as_str()),
                        ("lambda-runtime-trace-id", d.trace_id.as_str()),
                    ],
                );
                let (parts, _) = resp.into_parts();
                hyper::Response::from_parts(
                    parts,
                    http_body_util::Full::new(d.invocation.event.clone()),
                )
            }
            Err(e) => json_response(
                500,
                &json!({"errorType": "ServiceException", "errorMessage": e}),
                &[],
            ),
        },
        (&Method::POST, ["invocation", request_id, "response"]) => {
            match host.respond(instance, request_id, body) {
                Ok(()) => accepted(),
                Err(e) => bad_request("InvalidRequestID", e),
            }
        }
        (&Method::POST, ["invocation", request_id, "error"]) => {
            match host.fail(instance, request_id, body) {
                Ok(()) => accepted(),
                Err(e) => bad_request("InvalidRequestID", e),
            }
        }
        (&Method::POST, ["init", "error"]) => {
            host.init_error(instance, body);
            accepted()
        }
        _ => json_response(
            404,
            &json!({"errorType": "NotFound", "errorMessage": format!("{method} /2018-06-01/runtime/{rest} is not a Runtime API route")}),
            &[],
        ),
    }
}
