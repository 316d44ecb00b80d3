//! One Graph API call as the Facebook connector makes it: the page's token in the
//! `Authorization` header (never in a URL), a pause first when the last answer's usage headers
//! said the app is close to its quota, the answer capped, and errors mapped by
//! [`crate::graph::error_of`].

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::AUTHORIZATION;

use crate::hosted::Api;
use crate::{NetworkError, graph};

use super::PLATFORM;

/// Graph API's host.
pub const GRAPH: &str = "https://graph.facebook.com";
/// Where videos are uploaded ("Video API – Publishing": `graph-video.facebook.com`).
pub const GRAPH_VIDEO: &str = "https://graph-video.facebook.com";
/// Where people log in and where posts are shown.
pub const WWW: &str = "https://www.facebook.com";
/// The Graph API version every path names: fixed, so an answer's shape does not change under
/// us when Meta moves the default version.
pub const VERSION: &str = "v21.0";

/// The Graph plumbing of the connector.
pub struct Graph {
    pub api: Api,
    /// The pause to take before the next call, from the last answer's usage headers.
    pause: Mutex<Option<Duration>>,
}

impl Graph {
    pub fn new(api: Api) -> Self {
        Self {
            api,
            pause: Mutex::new(None),
        }
    }

    /// `https://graph.facebook.com/v21.0{path}` (or the configured base).
    pub fn url(&self, path: &str) -> url::Url {
        self.api.url(GRAPH, &format!("/{VERSION}{path}"))
    }

    /// The same on the video upload host.
    pub fn video_url(&self, path: &str) -> url::Url {
        self.api.url(GRAPH_VIDEO, &format!("/{VERSION}{path}"))
    }

    /// Sends `req` with `token`; the answer's body when it is a success. `media` marks calls
    /// about a media object, whose refusals are `MediaRejected`.
    pub async fn call(
        &self,
        req: reqwest::RequestBuilder,
        token: &str,
        media: bool,
    ) -> Result<Vec<u8>, NetworkError> {
        let pause = self.pause.lock().ok().and_then(|mut p| p.take());
        if let Some(d) = pause {
            // Bounded by `graph::slow_down` (at most 5 s).
            tracing::debug!(
                pause_ms = d.as_millis() as u64,
                "facebook: usage is high; slowing down"
            );
            self.api.pause(d).await;
        }
        let resp = self
            .api
            .send(req.header(AUTHORIZATION, format!("Bearer {token}")))
            .await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Ok(mut p) = self.pause.lock() {
            *p = graph::slow_down(graph::usage(&headers));
        }
        let body = self.api.body(resp).await?;
        if !(200..300).contains(&status) {
            return Err(graph::error_of(PLATFORM, status, &headers, &body, media));
        }
        Ok(body)
    }

    /// A `GET` of `url` as JSON `T`.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: url::Url,
        token: &str,
    ) -> Result<T, NetworkError> {
        let body = self.call(self.api.http.get(url), token, false).await?;
        self.api.parse(&body)
    }

    /// A `POST` of an urlencoded form, the answer as JSON `T`.
    pub async fn post_form<T: serde::de::DeserializeOwned>(
        &self,
        url: url::Url,
        token: &str,
        form: &[(String, String)],
    ) -> Result<T, NetworkError> {
        let encoded = {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                f.append_pair(k, v);
            }
            f.finish()
        };
        let req = self
            .api
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(encoded);
        let body = self.call(req, token, false).await?;
        self.api.parse(&body)
    }

    /// A `POST` of a multipart form (media uploads), the answer as JSON `T`.
    pub async fn post_multipart<T: serde::de::DeserializeOwned>(
        &self,
        url: url::Url,
        token: &str,
        form: reqwest::multipart::Form,
    ) -> Result<T, NetworkError> {
        let body = self
            .call(self.api.http.post(url).multipart(form), token, true)
            .await?;
        self.api.parse(&body)
    }

    /// `paging.next` of a list as a URL on our Graph host (or base): only its path and query
    /// are kept, so a list never sends us (and the token) anywhere else.
    pub fn next_page(&self, next: &str) -> Option<url::Url> {
        let u = url::Url::parse(next).ok()?;
        let path = u.path();
        if !path.starts_with(&format!("/{VERSION}/")) {
            return None;
        }
        let rest = match u.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        Some(self.api.url(GRAPH, &rest))
    }
}

/// A Graph id as a path segment: digits and `_` only (page, post, photo and video ids are
/// numeric, a post's is `{page}_{post}`), so no id from storage can change the path.
pub fn id_segment(id: &str) -> Result<&str, NetworkError> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        Ok(id)
    } else {
        Err(NetworkError::rejected(format!(
            "facebook: `{}` is not a Graph id",
            crate::hosted::short(id)
        )))
    }
}

/// A Graph list page (`data` and `paging.next`).
#[derive(Debug, serde::Deserialize)]
pub struct List<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Paging {
    #[serde(default)]
    pub next: Option<String>,
}

impl<T> List<T> {
    pub fn next(&self) -> Option<&str> {
        self.paging.as_ref().and_then(|p| p.next.as_deref())
    }
}
