//! S3 `GetObject` over the real REST protocol, for the pipeline's input
//! artifacts.
//!
//! Requests are path-style (`GET /bucket/key`) and must carry a SigV4
//! `Authorization` header signed with the **job's** artifact credentials
//! (the `artifactCredentials` of the job event): the signature is verified
//! with their secret key, and the session token must be theirs. Any other
//! caller — above all the function's own role — is denied, as S3 denies a
//! role without `kms:Decrypt` on the pipeline's KMS key. Objects report
//! `x-amz-server-side-encryption: aws:kms` when the scenario says `kms`.
//!
//! The artifacts are built from the scenario (`artifacts`): a real ZIP
//! (deflate) of the given files, or raw bytes for a corrupt artifact.

use crate::pipeline_driver::{
    ARTIFACT_ACCESS_KEY_ID, ARTIFACT_SECRET_ACCESS_KEY, ARTIFACT_SESSION_TOKEN,
};
use crate::scenario::Scenario;
use crate::wire::{ACCOUNT, ApiError, REGION};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;

/// The artifact store bucket, named like CodePipeline's default one.
pub fn artifact_bucket() -> String {
    format!("codepipeline-{REGION}-{ACCOUNT}")
}

/// The KMS key the artifact store encrypts with.
pub fn artifact_kms_key() -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab")
}

/// One stored object.
#[derive(Debug, Clone)]
pub struct Object {
    /// The input artifact it holds.
    pub artifact: String,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Content.
    pub bytes: Vec<u8>,
    /// Encrypted with the artifact store's KMS key (SSE-KMS).
    pub kms: bool,
}

/// The objects of the artifact store.
#[derive(Debug, Default)]
pub struct S3 {
    /// Behind a lock so that a test can replace an artifact between runs.
    objects: std::sync::Mutex<Vec<Object>>,
}

/// A request as the router hands it over: method, raw (encoded) path and
/// query, and headers with lowercase names.
#[derive(Debug, Clone)]
pub struct S3Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path as sent, percent-encoded.
    pub path: String,
    /// The query string as sent, without `?`.
    pub query: String,
    /// Headers, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl S3Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An S3 answer.
#[derive(Debug, Clone)]
pub struct S3Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// Body bytes (the object, or an XML error).
    pub body: Vec<u8>,
    /// The error code, for the call log.
    pub error: Option<ApiError>,
}

/// Builds a ZIP holding `files` (path → content), deflate-compressed.
pub fn zip_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        // Writing to memory cannot fail but for a duplicate name, which the
        // scenario's map rules out.
        let _ = out.start_file(name.as_str(), options);
        let _ = out.write_all(content);
    }
    out.finish()
        .map(std::io::Cursor::into_inner)
        .unwrap_or_default()
}

/// The object key of a scenario's artifact `index`, shaped like
/// CodePipeline's (`<pipeline>/<artifact>/<random>`) but deterministic, so
/// the job events and GetJobDetails name the same object.
pub fn artifact_key(pipeline: &str, index: usize, name: &str) -> String {
    let hash = Sha256::digest(format!("{pipeline}/{index}/{name}").as_bytes());
    format!(
        "{}/{}/{}",
        truncate(pipeline, 20),
        truncate(name, 10),
        &hex(&hash)[..7]
    )
}

/// `inputArtifacts` of a job event (and of GetJobDetails).
pub fn input_artifacts(scenario: &Scenario) -> Value {
    Value::Array(
        scenario
            .artifacts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                json!({
                    "name": a.name,
                    "revision": null,
                    "location": {"type": "S3", "s3Location": {
                        "bucketName": artifact_bucket(),
                        "objectKey": artifact_key(&scenario.pipeline.name, i, &a.name)}},
                })
            })
            .collect(),
    )
}

impl S3 {
    /// The artifact store a scenario describes.
    pub fn new(scenario: &Scenario) -> S3 {
        let objects = scenario
            .artifacts
            .iter()
            .enumerate()
            .map(|(i, a)| Object {
                artifact: a.name.clone(),
                bucket: artifact_bucket(),
                key: artifact_key(&scenario.pipeline.name, i, &a.name),
                bytes: a.content(),
                kms: a.kms,
            })
            .collect();
        S3 {
            objects: std::sync::Mutex::new(objects),
        }
    }

    /// Every stored object.
    pub fn objects(&self) -> Vec<Object> {
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the content of artifact `name` (a later build of the same
    /// pipeline execution's stage, as a test needs it).
    pub fn replace(&self, name: &str, bytes: Vec<u8>) {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        for object in objects.iter_mut().filter(|o| o.artifact == name) {
            object.bytes = bytes.clone();
        }
    }

    /// Answers one REST request.
    pub fn handle(&self, request: &S3Request) -> S3Reply {
        match self.get_object(request) {
            Ok(reply) => reply,
            Err(e) => error_reply(e),
        }
    }

    fn get_object(&self, request: &S3Request) -> Result<S3Reply, ApiError> {
        if request.method != "GET" {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!(
                    "The specified method is not allowed against this resource (the local control plane serves GetObject only, not {}).",
                    request.method
                ),
            ));
        }
        let path = request.path.trim_start_matches('/');
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        let (bucket, key) = (percent_decode(bucket), percent_decode(key));
        authorize(request)?;
        let objects = self.objects();
        if objects.iter().all(|o| o.bucket != bucket) {
            return Err(ApiError::new(
                404,
                "NoSuchBucket",
                "The specified bucket does not exist",
            ));
        }
        let object = objects
            .iter()
            .find(|o| o.bucket == bucket && o.key == key)
            .ok_or_else(|| ApiError::new(404, "NoSuchKey", "The specified key does not exist."))?;
        let mut headers = vec![
            ("content-type".to_owned(), "application/zip".to_owned()),
            (
                "etag".to_owned(),
                format!("\"{}\"", &hex(&Sha256::digest(&object.bytes))[..32]),
            ),
            (
                "last-modified".to_owned(),
                "Tue, 01 Dec 2026 00:00:00 GMT".to_owned(),
            ),
        ];
        if object.kms {
            headers.push((
                "x-amz-server-side-encryption".to_owned(),
                "aws:kms".to_owned(),
            ));
            headers.push((
                "x-amz-server-side-encryption-aws-kms-key-id".to_owned(),
                artifact_kms_key(),
            ));
        }
        Ok(S3Reply {
            status: 200,
            headers,
            body: object.bytes.clone(),
            error: None,
        })
    }
}

fn truncate(s: &str, n: usize) -> &str {
    &s[..s.floor_char_boundary(n)]
}

/// The XML error body S3 sends.
pub fn error_reply(e: ApiError) -> S3Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
        xml_escape(&e.code),
        xml_escape(&e.message),
        &crate::ids::hex32()[..16]
    );
    S3Reply {
        status: e.status,
        headers: vec![("content-type".to_owned(), "application/xml".to_owned())],
        body: body.into_bytes(),
        error: Some(e),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn denied(why: &str) -> ApiError {
    ApiError::new(403, "AccessDenied", format!("Access Denied ({why})"))
}

/// Checks the SigV4 `Authorization` header: the job's artifact access key,
/// its session token, and a signature made with its secret key.
fn authorize(request: &S3Request) -> Result<(), ApiError> {
    let authorization = request
        .header("authorization")
        .ok_or_else(|| denied("the request is not signed"))?;
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| denied("only AWS4-HMAC-SHA256 signatures are accepted"))?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
    };
    let credential = field("Credential");
    let mut scope = credential.splitn(2, '/');
    let access_key = scope.next().unwrap_or_default();
    let scope = scope.next().unwrap_or_default();
    if access_key != ARTIFACT_ACCESS_KEY_ID {
        return Err(ApiError::new(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: kms:Decrypt on the artifact store's key (access key {access_key} is not the job's artifact credentials)",
                if access_key == crate::FAKE_ACCESS_KEY_ID {
                    format!("arn:aws:sts::{ACCOUNT}:assumed-role/migrate-once-role/migrate-once")
                } else {
                    "this caller".to_owned()
                }
            ),
        ));
    }
    if request.header("x-amz-security-token") != Some(ARTIFACT_SESSION_TOKEN) {
        return Err(ApiError::new(
            400,
            "InvalidToken",
            "The provided token is malformed or otherwise invalid (not the job's session token).",
        ));
    }
    let signed_headers = field("SignedHeaders");
    let signature = field("Signature");
    let date = request.header("x-amz-date").unwrap_or_default();
    let payload = request
        .header("x-amz-content-sha256")
        .unwrap_or("UNSIGNED-PAYLOAD");
    let mut query: Vec<&str> = request.query.split('&').filter(|p| !p.is_empty()).collect();
    query.sort_unstable();
    let query: Vec<String> = query
        .iter()
        .map(|p| {
            if p.contains('=') {
                (*p).to_owned()
            } else {
                format!("{p}=")
            }
        })
        .collect();
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        request.method,
        request.path,
        query.join("&")
    );
    for name in signed_headers.split(';') {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    canonical.push_str(&format!("\n{signed_headers}\n{payload}"));
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let parts: Vec<&str> = scope.split('/').collect();
    let mut key = format!("AWS4{ARTIFACT_SECRET_ACCESS_KEY}").into_bytes();
    for part in parts.iter().take(4) {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex(&hmac(&key, to_sign.as_bytes()));
    if parts.len() != 4 || parts[2] != "s3" || expected != signature {
        return Err(ApiError::new(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ));
    }
    Ok(())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs a GET like the SDK does, with the given keys.
    fn signed(path: &str, access: &str, secret: &str, token: &str) -> S3Request {
        let date = "20261201T000000Z";
        let payload = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = vec![
            ("host".to_owned(), "127.0.0.1:9".to_owned()),
            ("x-amz-content-sha256".to_owned(), payload.to_owned()),
            ("x-amz-date".to_owned(), date.to_owned()),
            ("x-amz-security-token".to_owned(), token.to_owned()),
        ];
        let signed_headers = "host;x-amz-content-sha256;x-amz-date;x-amz-security-token";
        let mut canonical = format!("GET\n{path}\nx-id=GetObject\n");
        for (n, v) in &headers {
            canonical.push_str(&format!("{n}:{v}\n"));
        }
        canonical.push_str(&format!("\n{signed_headers}\n{payload}"));
        let scope = format!("20261201/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{secret}").into_bytes();
        for part in scope.split('/') {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        let mut headers = headers;
        headers.push((
            "authorization".to_owned(),
            format!("AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"),
        ));
        S3Request {
            method: "GET".into(),
            path: path.into(),
            query: "x-id=GetObject".into(),
            headers,
        }
    }

    fn store() -> S3 {
        let scenario = Scenario::from_json(
            &json!({"artifacts": [{
                "name": "BuildOutput",
                "files": {"imagedefinitions.json": [{"name": "app", "imageUri": "r/app:2"}]}
            }]})
            .to_string(),
        )
        .unwrap();
        let s3 = S3::new(&scenario);
        let listed = input_artifacts(&scenario);
        assert_eq!(
            listed[0]["location"]["s3Location"]["objectKey"],
            s3.objects()[0].key
        );
        s3
    }

    #[test]
    fn the_job_credentials_read_a_kms_object() {
        let s3 = store();
        let object = &s3.objects()[0];
        let path = format!("/{}/{}", object.bucket, object.key);
        let reply = s3.handle(&signed(
            &path,
            ARTIFACT_ACCESS_KEY_ID,
            ARTIFACT_SECRET_ACCESS_KEY,
            ARTIFACT_SESSION_TOKEN,
        ));
        assert_eq!(reply.status, 200, "{:?}", reply.error);
        assert_eq!(reply.body, object.bytes);
        assert!(reply.body.starts_with(b"PK\x03\x04"));
        assert!(
            reply
                .headers
                .contains(&("x-amz-server-side-encryption".into(), "aws:kms".into()))
        );
        let missing = s3.handle(&signed(
            &format!("/{}/nope", object.bucket),
            ARTIFACT_ACCESS_KEY_ID,
            ARTIFACT_SECRET_ACCESS_KEY,
            ARTIFACT_SESSION_TOKEN,
        ));
        assert_eq!(
            (missing.status, missing.error.unwrap().code.as_str()),
            (404, "NoSuchKey")
        );
    }

    #[test]
    fn other_credentials_are_denied() {
        let s3 = store();
        let object = &s3.objects()[0];
        let path = format!("/{}/{}", object.bucket, object.key);
        let cases = [
            (
                signed(
                    &path,
                    crate::FAKE_ACCESS_KEY_ID,
                    crate::FAKE_SECRET_ACCESS_KEY,
                    crate::FAKE_SESSION_TOKEN,
                ),
                "AccessDenied",
            ),
            (
                signed(
                    &path,
                    ARTIFACT_ACCESS_KEY_ID,
                    "wrong-secret",
                    ARTIFACT_SESSION_TOKEN,
                ),
                "SignatureDoesNotMatch",
            ),
            (
                signed(
                    &path,
                    ARTIFACT_ACCESS_KEY_ID,
                    ARTIFACT_SECRET_ACCESS_KEY,
                    "other",
                ),
                "InvalidToken",
            ),
            (
                S3Request {
                    method: "GET".into(),
                    path: path.clone(),
                    query: String::new(),
                    headers: Vec::new(),
                },
                "AccessDenied",
            ),
        ];
        for (request, code) in cases {
            let reply = s3.handle(&request);
            let error = reply.error.expect(code);
            assert_eq!(error.code, code);
            assert!(String::from_utf8_lossy(&reply.body).contains(&format!("<Code>{code}</Code>")));
        }
        let own = s3.handle(&signed(
            &path,
            crate::FAKE_ACCESS_KEY_ID,
            crate::FAKE_SECRET_ACCESS_KEY,
            crate::FAKE_SESSION_TOKEN,
        ));
        assert_eq!(own.status, 403);
        assert!(own.error.unwrap().message.contains("migrate-once-role"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
