//! What Meta's Graph APIs share (Facebook Pages and Instagram at `graph.facebook.com` /
//! `graph.instagram.com`, Threads at `graph.threads.net`): the error object and the usage
//! headers, and what they mean in our terms.
//!
//! References: "Graph API – Handling Errors"
//! (developers.facebook.com/docs/graph-api/guides/error-handling) and "Rate Limiting"
//! (developers.facebook.com/docs/graph-api/overview/rate-limiting).
//!
//! - The error body is `{"error": {"message", "type", "code", "error_subcode",
//!   "error_user_msg", "fbtrace_id"}}`.
//! - `code` 190 (`OAuthException`: token expired, revoked, password changed, app removed)
//!   and 102 (session) are [`NetworkError::Unauthorized`]; so are 10 and 200–299 (permission
//!   not granted or revoked): the account must be connected again.
//! - 4, 17, 32, 613, 80001–80014 (app, user, page and business-use-case throttles) are
//!   [`NetworkError::RateLimited`]; the pause is read from the usage headers
//!   (`estimated_time_to_regain_access`, minutes) when they carry one.
//! - 1 and 2 (unknown error, service temporarily unavailable) and any 5xx are
//!   [`NetworkError::Unavailable`]; 368 (temporarily blocked for policy) and everything else
//!   with a 4xx is [`NetworkError::Rejected`].
//! - `X-App-Usage`, `X-Page-Usage`, `X-Ad-Account-Usage` and `X-Business-Use-Case-Usage` say
//!   how much of the quota is used, in percent; [`usage`] reads the highest, so a connector
//!   slows down before it is throttled.

use std::time::Duration;

use crate::NetworkError;

/// The error object of a Graph API answer.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub error_user_msg: Option<String>,
}

#[derive(serde::Deserialize)]
struct Envelope {
    error: GraphError,
}

/// The error in a Graph answer's body, if it has one.
pub fn parse_error(body: &[u8]) -> Option<GraphError> {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error)
}

/// Whether the error is a throttle.
pub fn is_throttle(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 613) || (80_001..=80_014).contains(&code)
}

/// What an unsuccessful Graph answer means (see the module's table). `media` marks calls
/// about a media object, whose refusals are [`NetworkError::MediaRejected`].
pub fn error_of(
    network: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    media: bool,
) -> NetworkError {
    let e = parse_error(body).unwrap_or_default();
    let text = e
        .error_user_msg
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or(&e.message);
    let message = format!(
        "{network}: {status} {} (code {}{})",
        crate::hosted::short(text),
        e.code,
        e.error_subcode
            .map(|s| format!(", subcode {s}"))
            .unwrap_or_default()
    );
    if is_throttle(e.code) || status == 429 {
        return NetworkError::RateLimited {
            retry_after: usage(headers).and_then(|u| u.regain),
        };
    }
    match (e.code, status) {
        (190 | 102 | 10, _) | (200..=299, _) => NetworkError::Unauthorized { message },
        (1 | 2, _) | (_, 500..=599) => NetworkError::Unavailable {
            message,
            retry_after: None,
        },
        _ if media => NetworkError::MediaRejected { message },
        _ => NetworkError::Rejected { message },
    }
}

/// How much of its quotas the app has used, from the usage headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// The highest percentage any header reports (call count, CPU time, total time).
    pub percent: f64,
    /// How long until access is regained, when a header says.
    pub regain: Option<Duration>,
}

/// Reads `X-App-Usage` / `X-Page-Usage` (`{"call_count":…,"total_cputime":…,
/// "total_time":…}`) and `X-Business-Use-Case-Usage` (`{"<id>":[{"type","call_count",
/// "total_cputime","total_time","estimated_time_to_regain_access"}]}`). `None` when none is
/// there or readable.
pub fn usage(headers: &reqwest::header::HeaderMap) -> Option<Usage> {
    let mut percent: Option<f64> = None;
    let mut regain: Option<Duration> = None;
    let mut take = |v: &serde_json::Value| {
        for k in ["call_count", "total_cputime", "total_time"] {
            if let Some(p) = v.get(k).and_then(serde_json::Value::as_f64) {
                percent = Some(percent.map_or(p, |q| q.max(p)));
            }
        }
        if let Some(m) = v
            .get("estimated_time_to_regain_access")
            .and_then(serde_json::Value::as_u64)
            .filter(|m| *m > 0)
        {
            let d = Duration::from_secs(m.min(24 * 60) * 60);
            regain = Some(regain.map_or(d, |r| r.max(d)));
        }
    };
    for name in ["x-app-usage", "x-page-usage", "x-ad-account-usage"] {
        if let Some(v) = header_json(headers, name) {
            take(&v);
        }
    }
    if let Some(serde_json::Value::Object(by_id)) =
        header_json(headers, "x-business-use-case-usage")
    {
        for entries in by_id.values() {
            for e in entries.as_array().into_iter().flatten() {
                take(e);
            }
        }
    }
    percent.map(|percent| Usage { percent, regain })
}

fn header_json(headers: &reqwest::header::HeaderMap, name: &str) -> Option<serde_json::Value> {
    let v = headers.get(name)?.to_str().ok()?;
    if v.len() > 8192 {
        return None;
    }
    serde_json::from_str(v).ok()
}

/// The pause a connector takes before its next call when usage is high: none under 80 %,
/// then up to 5 s at 100 % (the call still goes; the throttle itself is a
/// [`NetworkError::RateLimited`]).
pub fn slow_down(u: Option<Usage>) -> Option<Duration> {
    let p = u?.percent;
    (p >= 80.0).then(|| Duration::from_millis((((p.min(100.0) - 80.0) / 20.0) * 5000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn errors_map_by_code() {
        let body = |code: i64| {
            format!(
                r#"{{"error":{{"message":"m","type":"OAuthException","code":{code},"fbtrace_id":"x"}}}}"#
            )
        };
        let h = HeaderMap::new();
        let code = |c: i64, status: u16| {
            error_of("facebook", status, &h, body(c).as_bytes(), false).code()
        };
        assert_eq!(code(190, 400), "account_disconnected");
        assert_eq!(code(200, 403), "account_disconnected");
        assert_eq!(code(4, 400), "network_rate_limited");
        assert_eq!(code(32, 400), "network_rate_limited");
        assert_eq!(code(80_001, 400), "network_rate_limited");
        assert_eq!(code(2, 500), "network_unavailable");
        assert_eq!(code(100, 400), "network_rejected");
        assert_eq!(code(368, 400), "network_rejected");
        assert_eq!(
            error_of("instagram", 400, &h, body(100).as_bytes(), true).code(),
            "media_rejected"
        );
        assert_eq!(
            error_of("facebook", 502, &h, b"<html>", false).code(),
            "network_unavailable"
        );
    }

    #[test]
    fn usage_headers_are_read_and_slow_down_before_the_throttle() {
        let h = headers(&[
            (
                "x-app-usage",
                r#"{"call_count":42,"total_cputime":10,"total_time":85}"#,
            ),
            (
                "x-business-use-case-usage",
                r#"{"123":[{"type":"pages","call_count":95,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":3}]}"#,
            ),
        ]);
        let u = usage(&h).unwrap();
        assert_eq!(u.percent, 95.0);
        assert_eq!(u.regain, Some(Duration::from_secs(180)));
        assert_eq!(slow_down(Some(u)), Some(Duration::from_millis(3750)));
        assert_eq!(
            slow_down(usage(&headers(&[("x-app-usage", r#"{"call_count":10}"#)]))),
            None
        );
        assert_eq!(usage(&HeaderMap::new()), None);
        let body = br#"{"error":{"message":"Application request limit reached","code":4}}"#;
        assert_eq!(
            error_of("facebook", 400, &h, body, false),
            NetworkError::RateLimited {
                retry_after: Some(Duration::from_secs(180))
            }
        );
    }
}
