//! One call to LinkedIn's versioned REST API and what its errors mean in our terms.
//!
//! Every `/rest` call carries `LinkedIn-Version: YYYYMM` and `X-Restli-Protocol-Version:
//! 2.0.0` ("Versioning", learn.microsoft.com/linkedin/marketing/versioning). The error body is
//! `{"status", "serviceErrorCode", "code", "message"}` ("Error Handling",
//! learn.microsoft.com/linkedin/shared/api-guide/concepts/error-handling):
//!
//! | answer | ours |
//! |---|---|
//! | 401 (`INVALID_ACCESS_TOKEN`, `REVOKED_ACCESS_TOKEN`, expired) | `Unauthorized` |
//! | 403 `ACCESS_DENIED` (a permission the token lacks, a page no longer administered) | `Unauthorized` |
//! | other 403 | `Rejected` |
//! | 426 (`VERSION_MISSING`, `NONEXISTENT_VERSION`: our version is sunset) | `Rejected` |
//! | 429 (daily application or member throttle; infrastructure protection) | `RateLimited` |
//! | 400 / 422 about `/content/…` (media not uploaded, failed processing) | `MediaRejected` |
//! | other 4xx | `Rejected` |
//! | 5xx | `Unavailable` |
//!
//! Rate limits (learn.microsoft.com/linkedin/shared/api-guide/concepts/rate-limits): quotas
//! are per day and "reset at midnight UTC"; a 429 carries no reset header. So the pause is
//! `Retry-After` when an answer has one, and otherwise until the next UTC midnight (plus a
//! minute, for the reset to happen before we come back).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::NetworkError;
use crate::hosted::{Api, short};

/// The API version crier is written against (`LinkedIn-Version`). LinkedIn serves a version
/// for at least a year after its release.
pub const VERSION: &str = "202511";

/// The API host (`/rest`, `/v2`).
pub const API: &str = "https://api.linkedin.com";
/// The web host (`/oauth/v2`, post URLs).
pub const WWW: &str = "https://www.linkedin.com";

/// LinkedIn's error body.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub service_error_code: Option<i64>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// Whether this is the refusal of a post whose commentary repeats a recent one, and the
    /// post it repeats when the message names it ("Content is a duplicate of urn:li:share:…").
    pub fn duplicate_of(&self) -> Option<Option<String>> {
        let m = &self.message;
        if !m.to_ascii_lowercase().contains("duplicate")
            && self.code.as_deref() != Some("DUPLICATE_POST")
        {
            return None;
        }
        let urn = ["urn:li:share:", "urn:li:ugcPost:"].iter().find_map(|p| {
            let at = m.find(p)?;
            let digits: String = m[at + p.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!digits.is_empty()).then(|| format!("{p}{digits}"))
        });
        Some(urn)
    }
}

/// A request to the versioned REST API (`/rest/...`) with the account's token.
pub fn rest(req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    req.header(AUTHORIZATION, format!("Bearer {token}"))
        .header("LinkedIn-Version", VERSION)
        .header("X-Restli-Protocol-Version", "2.0.0")
}

/// `req` with a JSON body.
pub fn json(req: reqwest::RequestBuilder, body: &serde_json::Value) -> reqwest::RequestBuilder {
    req.header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

/// A URN as one path segment (`urn%3Ali%3Ashare%3A1`), as Rest.li 2.0 wants it.
pub fn urn_path(urn: &str) -> String {
    url::form_urlencoded::byte_serialize(urn.as_bytes()).collect()
}

/// The pause until the next UTC midnight, plus a minute, from `now_ms`.
pub fn until_utc_midnight(now_ms: i64) -> Duration {
    const DAY: i64 = 24 * 3600 * 1000;
    let next = (now_ms.div_euclid(DAY) + 1) * DAY;
    Duration::from_millis((next - now_ms + 60_000) as u64)
}

/// What an unsuccessful answer means (see the module's table).
pub async fn error_of(api: &Api, resp: reqwest::Response) -> NetworkError {
    let status = resp.status().as_u16();
    let retry_after = Api::retry_after(resp.headers());
    let body = api.body(resp).await.unwrap_or_default();
    classify(api, status, retry_after, &ApiError::parse(&body))
}

/// [`error_of`] on a read answer.
pub fn classify(
    api: &Api,
    status: u16,
    retry_after: Option<Duration>,
    e: &ApiError,
) -> NetworkError {
    let code = e.code.as_deref().unwrap_or("");
    let message = format!("linkedin: {status} {code} {}", short(&e.message))
        .trim_end()
        .to_owned();
    match status {
        401 => NetworkError::Unauthorized { message },
        403 if code == "ACCESS_DENIED" || e.service_error_code == Some(100) => {
            NetworkError::Unauthorized { message }
        }
        426 => NetworkError::Rejected {
            message: format!("{message} (crier speaks LinkedIn-Version {VERSION})"),
        },
        429 => NetworkError::RateLimited {
            retry_after: Some(
                retry_after.unwrap_or_else(|| until_utc_midnight(api.clock.now_ms())),
            ),
        },
        400 | 422 if e.message.contains("/content") => NetworkError::MediaRejected { message },
        400..=499 => NetworkError::Rejected { message },
        _ => NetworkError::Unavailable {
            message,
            retry_after,
        },
    }
}

/// Sends `req` and reads a JSON answer as `T`; any unsuccessful answer is its error.
pub async fn read<T: serde::de::DeserializeOwned>(
    api: &Api,
    req: reqwest::RequestBuilder,
) -> Result<T, NetworkError> {
    let resp = api.send(req).await?;
    if !resp.status().is_success() {
        return Err(error_of(api, resp).await);
    }
    let body = api.body(resp).await?;
    api.parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duplicate_refusal_names_the_post_it_repeats() {
        let e = ApiError {
            message:
                "ERROR :: /commentary :: Content is a duplicate of urn:li:share:7012345678901234567"
                    .into(),
            ..ApiError::default()
        };
        assert_eq!(
            e.duplicate_of(),
            Some(Some("urn:li:share:7012345678901234567".into()))
        );
        let other = ApiError {
            message: "ERROR :: /commentary :: too long".into(),
            ..ApiError::default()
        };
        assert_eq!(other.duplicate_of(), None);
    }

    #[test]
    fn midnight_is_the_next_one_in_utc() {
        // 2027-01-15T08:00:00Z → 16 h and a minute.
        let t0 = 1_799_971_200_000 + 8 * 3600 * 1000;
        assert_eq!(until_utc_midnight(t0), Duration::from_secs(16 * 3600 + 60));
    }
}
