//! Google's JSON errors and what they mean in our terms.
//!
//! "YouTube Data API – Errors" (developers.google.com/youtube/v3/docs/errors) and the
//! `videos.insert` reference: every error is
//! `{"error": {"code", "message", "errors": [{"reason", "domain", "message"}], "status"}}`.
//!
//! | answer | ours |
//! |---|---|
//! | 401 (`authError`, `youtubeSignupRequired`, any) | `Unauthorized` (the publisher refreshes first) |
//! | 403 `quotaExceeded`, `dailyLimitExceeded` | `RateLimited` until the next midnight Pacific Time |
//! | `uploadLimitExceeded` (400 or 403: the channel's own upload cap over 24 hours) | `RateLimited` for 24 h (or `Retry-After`) |
//! | 429, 403 `rateLimitExceeded` / `userRateLimitExceeded` | `RateLimited` (`Retry-After`) |
//! | 403 `insufficientPermissions`, `youtubeSignupRequired`, `authenticatedUserAccountClosed` / `…Suspended`, `authenticatedUserNotChannel`, `accountDelegationForbidden` | `Unauthorized`: the connection must be made again (or the channel created) |
//! | 403 `forbidden` and other 403s | `Rejected` (this request is not allowed, the account is fine) |
//! | 400 about the media (`mediaBodyRequired`, `invalidFile…`) | `MediaRejected` |
//! | 400 `invalidTitle`, `invalidDescription`, `invalidTags`, `invalidCategoryId`, other 4xx | `Rejected` |
//! | 5xx (`backendError`), 503 | `Unavailable` (`Retry-After` when sent): the upload resumes later |

use std::time::Duration;

use crate::NetworkError;
use crate::hosted::{Api, short};

/// One entry of `error.errors`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Detail {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub message: String,
}

/// `error` of a Google answer.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct GoogleError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub errors: Vec<Detail>,
}

impl GoogleError {
    /// The first reason (`quotaExceeded`), or empty.
    pub fn reason(&self) -> &str {
        self.errors.first().map_or("", |d| d.reason.as_str())
    }
}

#[derive(serde::Deserialize)]
struct Envelope {
    error: GoogleError,
}

/// The error in a Google answer's body, if it has one.
pub fn parse(body: &[u8]) -> Option<GoogleError> {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error)
}

/// Whether the reason says the project's daily quota is spent (reset at Pacific midnight).
pub fn is_quota(reason: &str) -> bool {
    matches!(reason, "quotaExceeded" | "dailyLimitExceeded")
}

const ACCOUNT_REASONS: &[&str] = &[
    "insufficientPermissions",
    "youtubeSignupRequired",
    "authenticatedUserAccountClosed",
    "authenticatedUserAccountSuspended",
    "authenticatedUserNotChannel",
    "accountDelegationForbidden",
];

/// What an unsuccessful answer means (see the module's table). `now_ms` is the clock's now,
/// for the quota reset.
pub fn error_of(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> NetworkError {
    let e = parse(body).unwrap_or_default();
    let reason = e.reason();
    let text = if e.message.is_empty() {
        e.errors
            .first()
            .map(|d| d.message.clone())
            .unwrap_or_default()
    } else {
        e.message.clone()
    };
    let message = format!("youtube: {status} {reason}: {}", short(&text));
    let retry_after = Api::retry_after(headers);
    if is_quota(reason) {
        return NetworkError::RateLimited {
            retry_after: Some(super::quota::until_reset(now_ms)),
        };
    }
    if reason == "uploadLimitExceeded" {
        return NetworkError::RateLimited {
            retry_after: retry_after.or(Some(Duration::from_secs(24 * 3600))),
        };
    }
    if status == 429 || matches!(reason, "rateLimitExceeded" | "userRateLimitExceeded") {
        return NetworkError::RateLimited { retry_after };
    }
    match status {
        401 => NetworkError::Unauthorized { message },
        403 if ACCOUNT_REASONS.contains(&reason) => NetworkError::Unauthorized { message },
        400 if reason.starts_with("media") || reason.starts_with("invalidFile") => {
            NetworkError::MediaRejected { message }
        }
        500..=599 => NetworkError::Unavailable {
            message,
            retry_after,
        },
        _ => NetworkError::Rejected { message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, reason: &str) -> NetworkError {
        let body = serde_json::json!({"error": {"code": status, "message": "m",
            "errors": [{"reason": reason, "domain": "youtube.x", "message": "m"}]}});
        error_of(status, &Default::default(), body.to_string().as_bytes(), 0)
    }

    #[test]
    fn google_errors_map_to_our_codes() {
        assert_eq!(err(403, "quotaExceeded").code(), "network_rate_limited");
        assert_eq!(
            err(400, "uploadLimitExceeded").code(),
            "network_rate_limited"
        );
        assert_eq!(err(403, "rateLimitExceeded").code(), "network_rate_limited");
        assert_eq!(err(401, "authError").code(), "account_disconnected");
        assert_eq!(
            err(401, "youtubeSignupRequired").code(),
            "account_disconnected"
        );
        assert_eq!(
            err(403, "insufficientPermissions").code(),
            "account_disconnected"
        );
        assert_eq!(err(403, "forbidden").code(), "network_rejected");
        assert_eq!(err(400, "invalidTitle").code(), "network_rejected");
        assert_eq!(err(400, "mediaBodyRequired").code(), "media_rejected");
        assert_eq!(err(503, "backendError").code(), "network_unavailable");
        assert_eq!(
            error_of(502, &Default::default(), b"<html>", 0).code(),
            "network_unavailable"
        );
    }
}
