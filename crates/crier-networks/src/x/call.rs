//! One call to the X API v2 and what its answer means in our terms.
//!
//! Errors come in two shapes (docs.x.com/x-api/fundamentals/response-codes-and-errors): the
//! v2 problem `{"title", "detail", "type", "status", "errors": [...]}` and the v1-style
//! `{"errors": [{"message", "code"}]}` some gateways still send. Status first:
//!
//! - `401` (and v1 codes 32, 89: invalid or expired token) → [`NetworkError::Unauthorized`];
//! - `429` (and v1 code 88) → [`NetworkError::RateLimited`], the pause from the rate-limit
//!   headers: the reset of whichever window is exhausted (`x-rate-limit-*`, the 24-hour
//!   `x-user-limit-24hour-*` and `x-app-limit-24hour-*` of the create call), as epoch seconds;
//! - `5xx` (and v1 codes 130 over capacity, 131 internal error) → `Unavailable`;
//! - other `4xx` → `Rejected`, or `MediaRejected` for media calls.
//!
//! The duplicate-content refusal of the create call (`403` "You are not allowed to create a
//! Tweet with duplicate content.", v1 code 187) is told apart by [`Answer::is_duplicate`]: the
//! connector resolves it by a look-up instead of failing.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::NetworkError;
use crate::hosted::{Api, short};

/// A complete answer: status, headers and the capped body.
pub(super) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Sends `req` and reads its whole answer (capped at [`crate::hosted::MAX_BODY`]).
pub(super) async fn call(api: &Api, req: reqwest::RequestBuilder) -> Result<Answer, NetworkError> {
    let resp = api.send(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = api.body(resp).await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

#[derive(Debug, Default, serde::Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<ProblemItem>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ProblemItem {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    code: Option<i64>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T` (a successful answer).
    pub fn json<T: serde::de::DeserializeOwned>(&self, api: &Api) -> Result<T, NetworkError> {
        api.parse(&self.body)
    }

    fn problem(&self) -> Problem {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    fn codes(&self) -> Vec<i64> {
        self.problem()
            .errors
            .iter()
            .filter_map(|e| e.code)
            .collect()
    }

    /// The network's words: `title: detail`, or the errors' messages.
    pub fn message(&self) -> String {
        let p = self.problem();
        let mut parts: Vec<String> = Vec::new();
        if let Some(t) = p.title.filter(|t| !t.is_empty()) {
            parts.push(t);
        }
        if let Some(d) = p.detail.filter(|d| !d.is_empty()) {
            parts.push(d);
        }
        for e in p.errors.iter().take(3) {
            if let Some(m) = e.message.as_ref().or(e.detail.as_ref()) {
                parts.push(m.clone());
            }
        }
        if parts.is_empty() {
            parts.push(String::from_utf8_lossy(&self.body).into_owned());
        }
        short(&parts.join(": "))
    }

    /// The create call's refusal of a text this user posted lately.
    pub fn is_duplicate(&self) -> bool {
        self.status == 403
            && (self
                .message()
                .to_ascii_lowercase()
                .contains("duplicate content")
                || self.codes().contains(&187))
    }

    /// What an unsuccessful answer means (see the module's table); `media` for media calls.
    pub fn error(&self, api: &Api, what: &str, media: bool) -> NetworkError {
        let message = format!("x: {what}: {} {}", self.status, self.message());
        let codes = self.codes();
        let v1 = |c: &[i64]| codes.iter().any(|x| c.contains(x));
        if self.status == 429 || v1(&[88]) {
            return NetworkError::RateLimited {
                retry_after: self.retry_after(api),
            };
        }
        if self.status == 401 || v1(&[32, 89]) {
            return NetworkError::Unauthorized { message };
        }
        if self.status >= 500 || v1(&[130, 131]) {
            return NetworkError::Unavailable {
                message,
                retry_after: Api::retry_after(&self.headers),
            };
        }
        if media {
            NetworkError::MediaRejected { message }
        } else {
            NetworkError::Rejected { message }
        }
    }

    /// The pause a rate limit asks for: the reset of the exhausted window (the 24-hour ones
    /// first, as they are the longer), else `x-rate-limit-reset`, else `Retry-After`.
    pub fn retry_after(&self, api: &Api) -> Option<Duration> {
        let num = |name: &str| -> Option<i64> {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        };
        for prefix in ["x-user-limit-24hour", "x-app-limit-24hour", "x-rate-limit"] {
            if num(&format!("{prefix}-remaining")) == Some(0)
                && let Some(reset) = num(&format!("{prefix}-reset"))
            {
                return Some(api.until_epoch_seconds(reset));
            }
        }
        num("x-rate-limit-reset")
            .map(|r| api.until_epoch_seconds(r))
            .or_else(|| Api::retry_after(&self.headers))
    }
}

/// `req` with a JSON body (the workspace's reqwest is built without its `json` feature).
pub(super) fn with_json(
    req: reqwest::RequestBuilder,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    req.header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}
