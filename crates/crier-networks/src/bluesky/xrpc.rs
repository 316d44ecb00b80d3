//! XRPC over the SSRF-guarded client: every call has the client's timeout, every body read is
//! capped, and every failure becomes an [`XrpcError`] that keeps what the server said.
//!
//! Error policy (turned into [`NetworkError`] by [`XrpcError::into_network`]):
//! 401, and `ExpiredToken` / `InvalidToken` / `AuthMissing` at any status → `Unauthorized`;
//! 429 → `RateLimited`, `ratelimit-reset` (epoch seconds) as the wait; 5xx and connection
//! failures → `Unavailable`; a timeout → `Timeout`; other 4xx → `Rejected`, or `MediaRejected`
//! for calls that carry media.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::NetworkError;

/// The largest XRPC answer we read (records, sessions, post views are a few KiB).
pub const MAX_ANSWER: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct XrpcError {
    /// `None`: no HTTP answer (connection failed or was cut).
    pub status: Option<u16>,
    /// The XRPC error name (`ExpiredToken`, `RecordNotFound`, ...).
    pub error: Option<String>,
    pub message: String,
    pub timeout: bool,
    /// From `ratelimit-reset` or `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl XrpcError {
    fn transport(e: &reqwest::Error) -> Self {
        Self {
            status: None,
            error: None,
            message: format!("bluesky: {}", error_chain(e)),
            timeout: e.is_timeout(),
            retry_after: None,
        }
    }

    pub fn is(&self, name: &str) -> bool {
        self.error.as_deref() == Some(name)
    }

    pub fn into_network(self, media: bool) -> NetworkError {
        if self.timeout {
            return NetworkError::Timeout;
        }
        let auth_error = matches!(
            self.error.as_deref(),
            Some("ExpiredToken" | "InvalidToken" | "AuthMissing" | "AuthenticationRequired")
        );
        match self.status {
            _ if auth_error => NetworkError::Unauthorized {
                message: self.message,
            },
            Some(401) => NetworkError::Unauthorized {
                message: self.message,
            },
            Some(429) => NetworkError::RateLimited {
                retry_after: self.retry_after,
            },
            None | Some(500..) => NetworkError::Unavailable {
                message: self.message,
                retry_after: self.retry_after,
            },
            Some(_) if media => NetworkError::MediaRejected {
                message: self.message,
            },
            Some(_) => NetworkError::Rejected {
                message: self.message,
            },
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Reads at most `cap` bytes of a body; a longer body is an error (not a truncation).
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Bytes, XrpcError> {
    if resp.content_length().is_some_and(|l| l > cap as u64) {
        return Err(too_large(cap));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| XrpcError::transport(&e))? {
        if buf.len() + chunk.len() > cap {
            return Err(too_large(cap));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

fn too_large(cap: usize) -> XrpcError {
    XrpcError {
        status: None,
        error: None,
        message: format!("bluesky: the answer is larger than {cap} bytes"),
        timeout: false,
        retry_after: None,
    }
}

/// A call's target: the server's base URL and the method.
pub struct Xrpc<'a> {
    pub http: &'a reqwest::Client,
    pub base: &'a url::Url,
    /// The current time in epoch seconds (for `ratelimit-reset`).
    pub now_s: i64,
}

impl Xrpc<'_> {
    fn url(&self, nsid: &str) -> url::Url {
        let mut url = self.base.clone();
        url.set_path(&format!("/xrpc/{nsid}"));
        url.set_query(None);
        url
    }

    pub async fn query(
        &self,
        nsid: &str,
        params: &[(&str, &str)],
        auth: Option<&str>,
    ) -> Result<Value, XrpcError> {
        let mut url = self.url(nsid);
        url.query_pairs_mut().extend_pairs(params);
        let mut req = self.http.get(url);
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        self.finish(req).await
    }

    pub async fn procedure(
        &self,
        nsid: &str,
        body: &Value,
        auth: Option<&str>,
    ) -> Result<Value, XrpcError> {
        let mut req = self
            .http
            .post(self.url(nsid))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).expect("JSON"));
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        self.finish(req).await
    }

    /// A procedure without input, authorized by `token` (refreshSession, deleteSession take
    /// the refresh token).
    pub async fn procedure_empty(&self, nsid: &str, token: &str) -> Result<Value, XrpcError> {
        let req = self.http.post(self.url(nsid)).bearer_auth(token);
        self.finish(req).await
    }

    pub async fn upload(
        &self,
        nsid: &str,
        bytes: Bytes,
        content_type: &str,
        auth: &str,
    ) -> Result<Value, XrpcError> {
        let req = self
            .http
            .post(self.url(nsid))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .bearer_auth(auth)
            .body(bytes);
        self.finish(req).await
    }

    async fn finish(&self, req: reqwest::RequestBuilder) -> Result<Value, XrpcError> {
        let resp = req.send().await.map_err(|e| XrpcError::transport(&e))?;
        let status = resp.status().as_u16();
        let retry_after = self.retry_after(resp.headers());
        let body = read_capped(resp, MAX_ANSWER).await?;
        if (200..300).contains(&status) {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&body).map_err(|e| XrpcError {
                status: Some(502),
                error: None,
                message: format!("bluesky: the answer is not JSON: {e}"),
                timeout: false,
                retry_after: None,
            });
        }
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .map(|s| s.chars().take(500).collect::<String>())
        };
        let error = field("error");
        let message = match (field("message"), &error) {
            (Some(m), Some(e)) => format!("bluesky: {e}: {m}"),
            (Some(m), None) => format!("bluesky: {m}"),
            (None, Some(e)) => format!("bluesky: {e} (HTTP {status})"),
            (None, None) => format!("bluesky: HTTP {status}"),
        };
        Err(XrpcError {
            status: Some(status),
            error,
            message,
            timeout: false,
            retry_after,
        })
    }

    fn retry_after(&self, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        // Bounded: a server cannot park the job for more than a day.
        let wait = num("ratelimit-reset")
            .map(|reset| reset - self.now_s)
            .or_else(|| num("retry-after"))?;
        Some(Duration::from_secs(wait.clamp(1, 86_400) as u64))
    }
}
