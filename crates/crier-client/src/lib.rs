//! A client of crier's HTTP API (`../shared/API.md`): one request in, the JSON answer or the
//! error envelope out, with the request id either way. The `crier` CLI and `crier mcp` (the
//! MCP server over stdio) talk to a running server through it; neither parses envelopes or
//! headers itself.
//!
//! A client is bound to one server and one credential (an API key or a `sess_` token), sent
//! only in the `Authorization` header, never in a URL.

use std::collections::BTreeMap;
use std::time::Duration;

pub use reqwest::Method;
use serde_json::Value;

/// How long one request may take before the client gives up (uploads set their own).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a response body the client reads (a page of 100 posts is far less).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long an upload may take at least; larger files get a second more per 256 KiB (a link
/// slower than that is better served by a retry than by a longer wait).
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// A request to the API: a method, a path below the server's root (`/v1/posts?limit=10`),
/// and an optional JSON body.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    /// Sent as `Idempotency-Key`, so a write retried after a lost answer happens once.
    pub idempotency_key: Option<String>,
}

impl ApiRequest {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            body: None,
            idempotency_key: None,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, path).json(body)
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A successful answer (2xx).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    /// The JSON body (`null` for an empty one).
    pub body: Value,
    /// `X-Request-Id`, when the server sent one.
    pub request_id: Option<String>,
}

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with the error envelope (or, from something in between, a
    /// non-JSON error: then `code` is `http_<status>`).
    #[error("{message} ({code}, HTTP {status}{})", request_id.as_deref().map(|r| format!(", request {r}")).unwrap_or_default())]
    Api {
        status: u16,
        code: String,
        message: String,
        param: Option<String>,
        request_id: Option<String>,
    },
    /// No answer: the server is down, the address is wrong, or it timed out.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// An answer that is not what the API sends (not JSON, too large).
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// The request could not be made (a bad server URL, a credential that is not a header).
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The API's error code (`forbidden_scope`, …), for an answer with the envelope.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The error as the API's envelope (`{"error":{code,message,request_id,param}}`); errors
    /// that never reached the server get a code of their own (`unreachable`, `protocol`,
    /// `usage`) and no request id.
    pub fn envelope(&self) -> Value {
        let (code, message, param, request_id) = match self {
            Self::Api {
                code,
                message,
                param,
                request_id,
                ..
            } => (
                code.as_str(),
                message.clone(),
                param.clone(),
                request_id.clone(),
            ),
            Self::Unreachable { .. } => ("unreachable", self.to_string(), None, None),
            Self::Protocol { .. } => ("protocol", self.to_string(), None, None),
            Self::Usage(m) => ("usage", m.clone(), None, None),
        };
        let mut error =
            serde_json::json!({"code": code, "message": message, "request_id": request_id});
        if let Some(param) = param {
            error["param"] = Value::String(param);
        }
        serde_json::json!({ "error": error })
    }
}

/// A client of one server with one credential.
#[derive(Debug, Clone)]
pub struct Client {
    base: url::Url,
    credential: Option<String>,
    workspace: Option<String>,
    user_agent: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:8080`), sending `credential` (an API
    /// key or session token) as the bearer. `user_agent` names the program (`crier-cli/0.1`).
    pub fn new(
        base: &str,
        credential: Option<String>,
        user_agent: &str,
    ) -> Result<Self, ClientError> {
        let mut base = url::Url::parse(base)
            .map_err(|e| ClientError::Usage(format!("not a server URL: {base} ({e})")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(ClientError::Usage(format!(
                "not an http(s) server URL: {base}"
            )));
        }
        if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
            return Err(ClientError::Usage(
                "the server URL takes no query, fragment or credentials (a key goes in CRIER_API_KEY, never in a URL)".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if let Some(c) = &credential
            && (c.is_empty() || !c.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ClientError::Usage(
                "the API key is empty or holds characters a key never has".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        Ok(Self {
            base,
            credential,
            workspace: None,
            user_agent: user_agent.to_owned(),
            http,
        })
    }

    /// Sends `Crier-Workspace` (for a session in a user's other workspace).
    pub fn with_workspace(mut self, workspace: Option<String>) -> Self {
        self.workspace = workspace;
        self
    }

    /// The server's root URL (ends with `/`).
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    /// The absolute URL of an API path.
    pub fn url(&self, path: &str) -> Result<url::Url, ClientError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Usage(format!("bad path {path}: {e}")))
    }

    /// Sends `req` and reads the answer: a 2xx with its JSON, or the error.
    pub async fn send(&self, req: &ApiRequest) -> Result<ApiResponse, ClientError> {
        let url = self.url(&req.path)?;
        let mut builder = self
            .http
            .request(req.method.clone(), url.clone())
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(c) = &self.credential {
            builder = builder.bearer_auth(c);
        }
        if let Some(ws) = &self.workspace {
            builder = builder.header("crier-workspace", ws);
        }
        if let Some(k) = &req.idempotency_key {
            builder = builder.header("idempotency-key", k);
        }
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| self.unreachable(e, TIMEOUT))?;
        self.answer(resp, &url, TIMEOUT).await
    }

    /// Streams `file` (`size` bytes) to a presigned upload URL (`upload.url` and
    /// `upload.headers` of `POST /v1/media/upload-url`) with `PUT`. The URL is its own
    /// authority: the client's credential is never sent there, nor anything but the given
    /// headers. `progress` is called with the bytes sent so far as they leave.
    pub async fn put_upload(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        file: tokio::fs::File,
        size: u64,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<ApiResponse, ClientError> {
        use futures::StreamExt;

        let url = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ClientError::Protocol {
                url: url.to_owned(),
                reason: "the upload URL is not an http(s) URL".into(),
            })?;
        let timeout = UPLOAD_TIMEOUT + Duration::from_secs(size / (256 * 1024));
        let mut sent = 0u64;
        let body = tokio_util::io::ReaderStream::new(file).map(move |chunk| {
            if let Ok(c) = &chunk {
                sent += c.len() as u64;
                progress(sent);
            }
            chunk
        });
        let mut builder = self
            .http
            .put(url.clone())
            .timeout(timeout)
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .header(reqwest::header::CONTENT_LENGTH, size);
        for (name, value) in headers {
            // The signed URL's headers, minus anything that would carry a credential.
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("x-api-key")
            {
                continue;
            }
            builder = builder.header(name, value);
        }
        let resp = builder
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| self.unreachable(e, timeout))?;
        self.answer(resp, &url, timeout).await
    }

    fn unreachable(&self, e: reqwest::Error, timeout: Duration) -> ClientError {
        ClientError::Unreachable {
            url: self.base.to_string(),
            reason: if e.is_timeout() {
                format!("no answer within {} s", timeout.as_secs())
            } else if e.is_connect() {
                "connection refused or no route (is the server running?)".into()
            } else {
                e.to_string()
            },
        }
    }

    /// Reads an answer: a 2xx with its JSON (or an empty body), or the error.
    async fn answer(
        &self,
        mut resp: reqwest::Response,
        url: &url::Url,
        timeout: Duration,
    ) -> Result<ApiResponse, ClientError> {
        let status = resp.status().as_u16();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.unreachable(e, timeout))?
        {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(ClientError::Protocol {
                    url: url.to_string(),
                    reason: format!("a body over {MAX_BODY} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        read_answer(status, request_id, &bytes, url.as_str())
    }
}

/// An answer of the API as a result: a 2xx with its JSON body (`null` when empty), or the error
/// envelope as [`ClientError::Api`] (a non-JSON error gets the code `http_<status>` and a
/// snippet of the body). `request_id` is the `X-Request-Id` header, used when the envelope has
/// none; `url` names the request in protocol errors. Shared by [`Client`] and the server's
/// in-process MCP transport, so both read answers alike.
pub fn read_answer(
    status: u16,
    request_id: Option<String>,
    bytes: &[u8],
    url: &str,
) -> Result<ApiResponse, ClientError> {
    let body: Option<Value> = if bytes.is_empty() {
        Some(Value::Null)
    } else {
        serde_json::from_slice(bytes).ok()
    };
    if (200..300).contains(&status) {
        let body = body.ok_or_else(|| ClientError::Protocol {
            url: url.to_owned(),
            reason: format!("HTTP {status} with a body that is not JSON"),
        })?;
        return Ok(ApiResponse {
            status,
            body,
            request_id,
        });
    }
    let error = body.as_ref().and_then(|b| b.get("error"));
    let text = |k: &str| error.and_then(|e| e[k].as_str()).map(str::to_owned);
    Err(ClientError::Api {
        status,
        code: text("code").unwrap_or_else(|| format!("http_{status}")),
        message: text("message").unwrap_or_else(|| {
            let snippet: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
            format!("HTTP {status}: {snippet}")
        }),
        param: text("param"),
        request_id: text("request_id").or(request_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked_and_keys_never_go_in_them() {
        assert!(Client::new("http://127.0.0.1:8080", None, "t").is_ok());
        let c = Client::new("https://crier.example/base", None, "t").unwrap();
        assert_eq!(
            c.url("/v1/posts?limit=2").unwrap().as_str(),
            "https://crier.example/base/v1/posts?limit=2"
        );
        for bad in [
            "ftp://x",
            "not a url",
            "http://u:p@127.0.0.1",
            "http://127.0.0.1/?key=sk_live_x",
        ] {
            assert!(
                matches!(Client::new(bad, None, "t"), Err(ClientError::Usage(_))),
                "{bad}"
            );
        }
        assert!(Client::new("http://127.0.0.1", Some("sk live".into()), "t").is_err());
        assert!(Client::new("http://127.0.0.1", Some(String::new()), "t").is_err());
    }

    #[test]
    fn errors_become_the_envelope() {
        let e = ClientError::Api {
            status: 403,
            code: "forbidden_scope".into(),
            message: "This key cannot publish posts (needs posts:publish).".into(),
            param: None,
            request_id: Some("req_1".into()),
        };
        assert_eq!(e.envelope()["error"]["code"], "forbidden_scope");
        assert_eq!(e.envelope()["error"]["request_id"], "req_1");
        assert!(e.to_string().contains("request req_1"), "{e}");
        let down = ClientError::Unreachable {
            url: "http://127.0.0.1:1/".into(),
            reason: "refused".into(),
        };
        assert_eq!(down.envelope()["error"]["code"], "unreachable");
        assert!(down.envelope()["error"]["request_id"].is_null());
    }
}
