//! One call to TikTok's API v2 and what its answer means in our terms.
//!
//! Every answer of `open.tiktokapis.com/v2` is an envelope `{"data": {…}, "error": {"code",
//! "message", "log_id"}}`; a call succeeded when the HTTP status is 2xx and `error.code` is
//! `"ok"` ("Error Handling", developers.tiktok.com/doc/tiktok-api-v2-error-handling).
//!
//! | `error.code` (HTTP status) | ours |
//! |---|---|
//! | `access_token_invalid` (401), `scope_not_authorized` (401), `scope_permission_missed` (401) | `Unauthorized` |
//! | `rate_limit_exceeded` (429) | `RateLimited`, [`RATE_WINDOW`] (no reset header is sent) |
//! | `spam_risk_too_many_posts`, `reached_active_user_cap` (403) | `RateLimited`, [`DAILY_CAP_RETRY`] |
//! | `spam_risk_too_many_pending_share` (403) | `RateLimited`, [`PENDING_RETRY`] |
//! | `url_ownership_unverified`, `invalid_file_upload` (403/400) | `MediaRejected` |
//! | `invalid_params`, `privacy_level_option_mismatch`, `spam_risk_user_banned_from_posting`, `unaudited_client_can_only_post_to_private_accounts`, any other 4xx | `Rejected` |
//! | `internal_error` (500), any 5xx | `Unavailable` |

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::NetworkError;
use crate::hosted::{Api, short};

/// TikTok sends no reset with a 429; its limits are counted over "a one minute sliding
/// window" ("Rate Limits", developers.tiktok.com/doc/tiktok-api-v2-rate-limit), so a minute
/// from now the window has moved past every request that counted.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
/// The per-user daily cap of API posts (`spam_risk_too_many_posts`) and the client's cap of
/// active users (`reached_active_user_cap`) are daily and send no reset either; an hour is
/// long enough not to hammer and short enough that a rolling day's slot is used soon.
pub const DAILY_CAP_RETRY: Duration = Duration::from_secs(3600);
/// Too many of the user's shares are still pending (`spam_risk_too_many_pending_share`); they
/// clear as TikTok processes them, in minutes.
pub const PENDING_RETRY: Duration = Duration::from_secs(300);

/// The error object of an answer.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub log_id: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<ApiError>,
}

/// What an error code means; `status` is the HTTP status it came with.
pub fn error_of(status: u16, e: &ApiError) -> NetworkError {
    let message = format!(
        "tiktok: {status} {}: {} (log_id {})",
        e.code,
        short(&e.message),
        e.log_id
    );
    match e.code.as_str() {
        "access_token_invalid" | "scope_not_authorized" | "scope_permission_missed" => {
            NetworkError::Unauthorized { message }
        }
        "rate_limit_exceeded" => NetworkError::RateLimited {
            retry_after: Some(RATE_WINDOW),
        },
        "spam_risk_too_many_posts" | "reached_active_user_cap" => NetworkError::RateLimited {
            retry_after: Some(DAILY_CAP_RETRY),
        },
        "spam_risk_too_many_pending_share" => NetworkError::RateLimited {
            retry_after: Some(PENDING_RETRY),
        },
        "url_ownership_unverified" | "invalid_file_upload" => {
            NetworkError::MediaRejected { message }
        }
        "internal_error" => NetworkError::unavailable(message),
        _ => match status {
            401 => NetworkError::Unauthorized { message },
            429 => NetworkError::RateLimited {
                retry_after: Some(RATE_WINDOW),
            },
            400..=499 => NetworkError::Rejected { message },
            _ => NetworkError::unavailable(message),
        },
    }
}

/// Sends `req` with the user's bearer `token` and a JSON `body` (or none), and reads the
/// envelope's `data` as `T`.
pub async fn call<T: serde::de::DeserializeOwned>(
    api: &Api,
    token: &str,
    req: reqwest::RequestBuilder,
    body: Option<&serde_json::Value>,
) -> Result<T, NetworkError> {
    match answer(api, token, req, body).await? {
        Answer::Data(t) => Ok(t),
        Answer::Refused(status, e) => Err(error_of(status, &e)),
    }
}

/// What an answer said: its `data`, or TikTok's refusal, not yet mapped (for callers that
/// read some codes differently).
pub enum Answer<T> {
    Data(T),
    Refused(u16, ApiError),
}

/// [`call`], with the refusal left to the caller.
pub async fn answer<T: serde::de::DeserializeOwned>(
    api: &Api,
    token: &str,
    req: reqwest::RequestBuilder,
    body: Option<&serde_json::Value>,
) -> Result<Answer<T>, NetworkError> {
    let mut req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    if let Some(b) = body {
        req = req
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .body(b.to_string());
    }
    let resp = api.send(req).await?;
    let status = resp.status().as_u16();
    let bytes = api.body(resp).await?;
    let env: Envelope = serde_json::from_slice(&bytes).unwrap_or_default();
    let error = env.error.unwrap_or_default();
    if !(200..300).contains(&status) || (!error.code.is_empty() && error.code != "ok") {
        if error.code.is_empty() {
            // Not TikTok's envelope (a proxy, a load balancer): judged by the status alone.
            let bare = ApiError {
                code: format!("http_{status}"),
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                log_id: String::new(),
            };
            return Ok(Answer::Refused(status, bare));
        }
        return Ok(Answer::Refused(status, error));
    }
    let data = env.data.unwrap_or(serde_json::Value::Null);
    api.parse(data.to_string().as_bytes()).map(Answer::Data)
}
