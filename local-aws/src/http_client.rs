//! A minimal HTTP/1.1 client over raw TCP, for tests of the control plane
//! itself (and the moto comparison) without pulling in the AWS SDK.
//!
//! One request per connection (`Connection: close`); the response body is
//! read to the end and de-chunked if needed.

use serde_json::Value;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, headers (lower-case names) and body text.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Null` if empty).
    pub fn json(&self) -> Result<Value, String> {
        if self.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&self.body)
            .map_err(|e| format!("response body is not JSON ({e}): {}", self.body))
    }

    /// The awsJson error code: `x-amzn-errortype` header or body `__type`,
    /// without namespace or URL parts.
    pub fn error_type(&self) -> Option<String> {
        let raw = self
            .header("x-amzn-errortype")
            .map(str::to_string)
            .or_else(|| {
                self.json()
                    .ok()?
                    .get("__type")?
                    .as_str()
                    .map(str::to_string)
            })?;
        let no_url = raw.split(':').next().unwrap_or(&raw);
        Some(no_url.rsplit('#').next().unwrap_or(no_url).to_string())
    }
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..pos]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        rest = &rest[pos + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// Sends one request to `addr` (`host:port`) and reads the whole answer.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// One awsJson1_1 call: `POST /` with `X-Amz-Target: <target>` and a fake
/// SigV4 `Authorization` header (region us-east-1), as an SDK would send.
/// `endpoint` is `http://host:port` or `host:port`.
pub async fn aws_call(endpoint: &str, target: &str, body: &Value) -> io::Result<HttpResponse> {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let service = match target.split('.').next().unwrap_or("") {
        "AmazonSSM" => "ssm",
        "AmazonEC2ContainerServiceV20141113" => "ecs",
        _ => "codepipeline",
    };
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000",
        crate::FAKE_ACCESS_KEY_ID
    );
    request(
        addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target),
            ("X-Amz-Date", "20250101T000000Z"),
            ("Authorization", &auth),
        ],
        &body.to_string(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
