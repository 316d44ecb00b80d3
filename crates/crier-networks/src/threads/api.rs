//! One call to the Threads Graph API (`graph.threads.net/v1.0`): the token in the
//! `Authorization` header (never in a URL, so never in a log), a capped answer, and Threads'
//! Graph-style error objects in our terms ([`crate::graph::error_of`]).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::de::DeserializeOwned;

use crate::NetworkError;
use crate::hosted::Api;

/// The Graph host of Threads.
pub const GRAPH: &str = "https://graph.threads.net";
/// The host of the authorization page.
pub const WWW: &str = "https://threads.net";
/// The API version every path starts with.
pub const VERSION: &str = "/v1.0";

/// Whether a call is about a media object: its refusals are `MediaRejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Media,
}

/// An id (a user's, a container's, a post's) as one path segment: Threads ids are digits, so
/// anything else (a `..` would be a dot segment, encoded or not) is refused.
pub fn seg(id: &str) -> Result<&str, NetworkError> {
    if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(NetworkError::rejected(format!(
            "threads: `{}` is not a Threads id",
            crate::hosted::short(id)
        )))
    }
}

/// `GET {GRAPH}/v1.0{path}?{query}` with the token; the answer as `T`.
pub async fn get<T: DeserializeOwned>(
    api: &Api,
    token: &str,
    path: &str,
    query: &[(&str, &str)],
    kind: Kind,
) -> Result<T, NetworkError> {
    let mut url = api.url(GRAPH, &format!("{VERSION}{path}"));
    url.query_pairs_mut().extend_pairs(query);
    let req = api
        .http
        .get(url)
        .header(AUTHORIZATION, format!("Bearer {token}"));
    read(api, req, kind).await
}

/// `POST {GRAPH}/v1.0{path}` with the form `pairs` and the token; the answer as `T`.
pub async fn post<T: DeserializeOwned>(
    api: &Api,
    token: &str,
    path: &str,
    pairs: &[(&str, &str)],
    kind: Kind,
) -> Result<T, NetworkError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let req = api
        .http
        .post(api.url(GRAPH, &format!("{VERSION}{path}")))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    read(api, req, kind).await
}

/// `GET {host}{path}?{query}` without a bearer token (the token endpoints take theirs in the
/// query, as Threads documents them).
pub async fn get_unauthenticated<T: DeserializeOwned>(
    api: &Api,
    host: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Result<T, NetworkError> {
    let mut url = api.url(host, path);
    url.query_pairs_mut().extend_pairs(query);
    read(api, api.http.get(url), Kind::Plain).await
}

/// `get` of an object by id; `None` when Threads says it does not exist (Graph code 100,
/// subcode 33: "Object with ID … does not exist"). Every other refusal is an error.
pub async fn get_existing<T: DeserializeOwned>(
    api: &Api,
    token: &str,
    path: &str,
    query: &[(&str, &str)],
    kind: Kind,
) -> Result<Option<T>, NetworkError> {
    let mut url = api.url(GRAPH, &format!("{VERSION}{path}"));
    url.query_pairs_mut().extend_pairs(query);
    let req = api
        .http
        .get(url)
        .header(AUTHORIZATION, format!("Bearer {token}"));
    let resp = api.send(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = api.body(resp).await?;
    let gone = crate::graph::parse_error(&body)
        .is_some_and(|e| e.code == 100 && e.error_subcode == Some(33));
    if gone && (400..500).contains(&status) {
        return Ok(None);
    }
    answer(api, status, &headers, &body, kind).await.map(Some)
}

async fn read<T: DeserializeOwned>(
    api: &Api,
    req: reqwest::RequestBuilder,
    kind: Kind,
) -> Result<T, NetworkError> {
    let resp = api.send(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = api.body(resp).await?;
    answer(api, status, &headers, &body, kind).await
}

/// An answer read: its error in our terms, or its body as `T`.
async fn answer<T: DeserializeOwned>(
    api: &Api,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    kind: Kind,
) -> Result<T, NetworkError> {
    if !(200..300).contains(&status) {
        return Err(crate::graph::error_of(
            api.network,
            status,
            headers,
            body,
            kind == Kind::Media,
        ));
    }
    // A 200 that carries an error object is an error all the same.
    if let Some(e) = crate::graph::parse_error(body).filter(|e| e.code != 0) {
        tracing::debug!(code = e.code, "threads: an error object in a 200 answer");
        return Err(crate::graph::error_of(
            api.network,
            400,
            headers,
            body,
            kind == Kind::Media,
        ));
    }
    if let Some(pause) = crate::graph::slow_down(crate::graph::usage(headers)) {
        // Near the app's quota: the answer stands, the next call waits a little.
        api.pause(pause.min(Duration::from_secs(5))).await;
    }
    api.parse(body)
}

/// `{"id": "…"}`, the answer of the create and publish calls.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Id {
    #[serde(default)]
    pub id: String,
}

/// A container's status (`GET /{container-id}?fields=status,error_message`).
#[derive(Debug, serde::Deserialize)]
pub struct ContainerStatus {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// One Threads media object as the list endpoints answer it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Media {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub permalink: Option<String>,
    #[serde(default)]
    pub replied_to: Option<Id>,
}

/// A page of a list endpoint.
#[derive(Debug, serde::Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Paging {
    #[serde(default)]
    pub cursors: Option<Cursors>,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Cursors {
    #[serde(default)]
    pub after: Option<String>,
}

/// The publishing quota (`GET /{user-id}/threads_publishing_limit`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Quota {
    #[serde(default)]
    pub quota_usage: i64,
    #[serde(default)]
    pub config: Option<QuotaConfig>,
    #[serde(default)]
    pub reply_quota_usage: i64,
    #[serde(default)]
    pub reply_config: Option<QuotaConfig>,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct QuotaConfig {
    #[serde(default)]
    pub quota_total: i64,
    #[serde(default)]
    pub quota_duration: i64,
}

/// One metric of `GET /{media-id}/insights`.
#[derive(Debug, serde::Deserialize)]
pub struct Insight {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub values: Vec<InsightValue>,
    /// Some metrics answer a `total_value` instead of `values`.
    #[serde(default)]
    pub total_value: Option<InsightValue>,
}

#[derive(Debug, serde::Deserialize)]
pub struct InsightValue {
    #[serde(default)]
    pub value: i64,
}

impl Insight {
    pub fn value(&self) -> i64 {
        self.total_value
            .as_ref()
            .map(|v| v.value)
            .or_else(|| self.values.last().map(|v| v.value))
            .unwrap_or(0)
    }
}

/// The account (`GET /me?fields=id,username,name,threads_profile_picture_url`).
#[derive(Debug, serde::Deserialize)]
pub struct Me {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub threads_profile_picture_url: Option<String>,
}

/// A token answer (the short-lived code exchange, the long-lived exchange, a refresh).
#[derive(serde::Deserialize)]
pub struct TokenAnswer {
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// Parses a Graph timestamp (`2024-05-01T12:00:00+0000`) to epoch ms.
pub fn timestamp_ms(s: &str) -> Option<i64> {
    jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%z", s)
        .or_else(|_| s.parse::<jiff::Timestamp>())
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_timestamps_parse() {
        assert_eq!(
            timestamp_ms("2024-05-01T12:00:00+0000"),
            Some(1_714_564_800_000)
        );
        assert_eq!(
            timestamp_ms("2024-05-01T12:00:00Z"),
            Some(1_714_564_800_000)
        );
        assert_eq!(timestamp_ms("yesterday"), None);
    }
}
