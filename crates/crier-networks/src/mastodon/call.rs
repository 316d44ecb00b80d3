//! One HTTP call to an instance and what its answer means.
//!
//! Error policy (every call of the connector goes through [`send`] and [`read`]):
//! - `2xx` is the answer; its body is read up to [`MAX_BODY`] bytes (checked on the declared
//!   length first, then while reading), so an instance cannot make us buffer without bound.
//! - `401` is [`NetworkError::Unauthorized`]: the token is no longer accepted.
//! - `403` is [`NetworkError::Unauthorized`] when the instance refuses the *account or token*
//!   (a disabled or suspended login, a token without the scope), else
//!   [`NetworkError::Rejected`] (an action not allowed, e.g. replying to a status we may not see).
//! - `422`, `413` and other `4xx` are [`NetworkError::Rejected`], or
//!   [`NetworkError::MediaRejected`] on the media endpoints; the instance's own `error` text is
//!   kept as the message.
//! - `429` is [`NetworkError::RateLimited`] with `Retry-After` (seconds or an HTTP date) or
//!   Mastodon's `X-RateLimit-Reset` (an ISO 8601 time) turned into a duration, capped at a day.
//! - `5xx`, a refused connection or a body over the cap is [`NetworkError::Unavailable`]
//!   (with `Retry-After` when a 503 sent one); no answer in time is [`NetworkError::Timeout`].

use std::time::Duration;

use crier_core::Clock;

use crate::NetworkError;

/// The most we read of any answer. Mastodon's largest answers here (an instance document, a
/// page of 40 statuses) are well under this.
pub const MAX_BODY: usize = 1024 * 1024;

/// The longest pause an instance's rate-limit headers may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Which endpoint family a call is to: a refusal on the media endpoints is about the media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Media,
    Other,
}

/// Sends a request: a timeout is [`NetworkError::Timeout`], any other failure to get an
/// answer (connection refused, the SSRF guard refusing the address) is `Unavailable`.
pub async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, NetworkError> {
    req.send().await.map_err(transport)
}

pub fn transport(e: reqwest::Error) -> NetworkError {
    if e.is_timeout() {
        NetworkError::Timeout
    } else {
        let e = e.without_url();
        // `{:#}`-like detail without the URL's query (which may carry nothing secret here,
        // but keep messages short and stable).
        let mut message = format!("mastodon: the instance could not be reached: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        NetworkError::unavailable(message)
    }
}

/// Reads a response's body up to [`MAX_BODY`] bytes.
pub async fn body(mut resp: reqwest::Response) -> Result<Vec<u8>, NetworkError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn too_large() -> NetworkError {
    NetworkError::unavailable(format!(
        "mastodon: the instance's answer is larger than {} bytes",
        MAX_BODY
    ))
}

/// A successful answer's status code and JSON, or the error its status means.
pub async fn read<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    endpoint: Endpoint,
    clock: &dyn Clock,
) -> Result<(reqwest::StatusCode, T), NetworkError> {
    let status = resp.status();
    if !status.is_success() {
        return Err(error_of(resp, endpoint, clock).await);
    }
    let bytes = body(resp).await?;
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        NetworkError::unavailable(format!(
            "mastodon: the instance answered {status} with a body that is not what Mastodon sends: {e}"
        ))
    })?;
    Ok((status, value))
}

/// The error an unsuccessful answer means (see the module's policy).
pub async fn error_of(
    resp: reqwest::Response,
    endpoint: Endpoint,
    clock: &dyn Clock,
) -> NetworkError {
    let status = resp.status();
    let retry_after = retry_after(resp.headers(), clock);
    // The message is best effort: a body we cannot read still leaves the status's meaning.
    let message = match body(resp).await {
        Ok(bytes) => error_text(&bytes),
        Err(_) => None,
    }
    .unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned()
    });
    let message = format!("mastodon: {} {message}", status.as_u16());
    match status.as_u16() {
        401 => NetworkError::Unauthorized { message },
        403 if refuses_the_account(&message) => NetworkError::Unauthorized { message },
        429 => NetworkError::RateLimited { retry_after },
        400..=499 if endpoint == Endpoint::Media => NetworkError::MediaRejected { message },
        400..=499 => NetworkError::Rejected { message },
        _ => NetworkError::Unavailable {
            message,
            retry_after,
        },
    }
}

/// Mastodon's error entity is `{"error": "…"}` (OAuth errors add `error_description`, the
/// readable one). Kept to 500 characters.
pub fn error_text(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: Option<serde_json::Value>,
        error_description: Option<String>,
    }
    let parsed: ErrorBody = serde_json::from_slice(bytes).ok()?;
    let text = match (parsed.error_description, parsed.error) {
        (Some(d), _) if !d.trim().is_empty() => d,
        (_, Some(serde_json::Value::String(e))) => e,
        (_, Some(other)) => other.to_string(),
        _ => return None,
    };
    Some(text.chars().take(500).collect())
}

/// A 403 that is about who is calling rather than what is asked: Mastodon answers these for
/// a disabled, unconfirmed or suspended login and for a token lacking the scope.
fn refuses_the_account(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "login",
        "suspended",
        "authorized scopes",
        "access token",
        "authenticated",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// The pause a 429 or 503 asks for: `Retry-After` (delta seconds or an HTTP date), else
/// Mastodon's `X-RateLimit-Reset` (ISO 8601), relative to `clock`; capped at a day.
pub fn retry_after(headers: &reqwest::header::HeaderMap, clock: &dyn Clock) -> Option<Duration> {
    let now = clock.now();
    let until = |t: jiff::Timestamp| -> Duration {
        let ms = t
            .as_millisecond()
            .saturating_sub(now.as_millisecond())
            .max(0);
        Duration::from_millis(ms as u64)
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let found = if let Some(v) = header("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            Some(Duration::from_secs(secs.min(MAX_RETRY_AFTER.as_secs())))
        } else {
            jiff::fmt::rfc2822::DateTimeParser::new()
                .parse_timestamp(v)
                .ok()
                .map(until)
        }
    } else {
        None
    };
    let found = found.or_else(|| {
        header("x-ratelimit-reset")
            .and_then(|v| v.parse::<jiff::Timestamp>().ok())
            .map(until)
    });
    found.map(|d| d.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crier_core::clock::ManualClock;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn clock() -> ManualClock {
        ManualClock::new("2026-12-02T06:00:00Z".parse().unwrap())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_in_every_form_mastodon_and_proxies_send() {
        let c = clock();
        let at = |h: &[(&'static str, &str)]| retry_after(&headers(h), &c);
        assert_eq!(
            at(&[("retry-after", "120")]),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            at(&[("retry-after", "Wed, 02 Dec 2026 06:01:30 GMT")]),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            at(&[("x-ratelimit-reset", "2026-12-02T06:05:00.000Z")]),
            Some(Duration::from_secs(300))
        );
        // Retry-After wins over the reset time.
        assert_eq!(
            at(&[
                ("retry-after", "7"),
                ("x-ratelimit-reset", "2026-12-02T06:05:00.000Z")
            ]),
            Some(Duration::from_secs(7))
        );
        // A time in the past is "now"; an absurd one is capped at a day; garbage is nothing.
        assert_eq!(
            at(&[("x-ratelimit-reset", "2026-12-02T05:00:00Z")]),
            Some(Duration::ZERO)
        );
        assert_eq!(at(&[("retry-after", "99999999999")]), Some(MAX_RETRY_AFTER));
        assert_eq!(
            at(&[("x-ratelimit-reset", "2030-01-01T00:00:00Z")]),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(at(&[("retry-after", "soon")]), None);
        assert_eq!(at(&[]), None);
    }

    #[test]
    fn the_instances_error_text_is_kept() {
        assert_eq!(
            error_text(br#"{"error":"Validation failed: Text can't be blank"}"#).as_deref(),
            Some("Validation failed: Text can't be blank")
        );
        assert_eq!(
            error_text(br#"{"error":"invalid_grant","error_description":"The grant is invalid."}"#)
                .as_deref(),
            Some("The grant is invalid.")
        );
        assert_eq!(error_text(b"<html>502</html>"), None);
        assert_eq!(
            error_text(format!(r#"{{"error":"{}"}}"#, "x".repeat(2000)).as_bytes())
                .map(|s| s.len()),
            Some(500)
        );
    }

    #[test]
    fn a_403_about_the_login_is_a_disconnected_account() {
        assert!(refuses_the_account(
            "mastodon: 403 Your login is currently disabled"
        ));
        assert!(refuses_the_account(
            "mastodon: 403 This action is outside the authorized scopes"
        ));
        assert!(!refuses_the_account(
            "mastodon: 403 This action is not allowed"
        ));
    }
}
