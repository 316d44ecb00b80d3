//! Media through the v2 chunked upload (docs.x.com/x-api/media/quickstart/media-upload-chunked):
//! `POST /2/media/upload/initialize` (JSON `media_type`, `total_bytes`, `media_category`) →
//! `POST /2/media/upload/{id}/append` (multipart `segment_index`, `media`) for each segment →
//! `POST /2/media/upload/{id}/finalize`; when the answer carries `processing_info` (video,
//! GIF), `GET /2/media/upload?command=STATUS&media_id=…` is polled until `succeeded`. Alt text
//! goes through `POST /2/media/metadata`. Images take the same path (one segment).
//!
//! Every id is kept in the part's steps before the next call: `media.{i}` (the id),
//! `media.{i}.of` (our media id, so an edited post never reuses another file's upload),
//! `media.{i}.expires` (epoch ms, from `expires_after_secs`) and `media.{i}.state`
//! (`uploading`, `finalized`, `ready`). A retry reuses a `ready` upload that is still valid,
//! resumes polling a `finalized` one, and starts an `uploading` one again (the abandoned
//! upload expires at X by itself).

use std::time::Duration;

use reqwest::header::AUTHORIZATION;

use super::call::{Answer, call, with_json};
use super::{API, X};
use crate::{Attachment, NetworkError, Part, Session};

/// Bytes per `append` (X takes up to 5 MB; smaller segments retry cheaper).
pub const SEGMENT: usize = 1024 * 1024;
/// The most segments of one upload (X's `segment_index` is 0–999).
const MAX_SEGMENTS: usize = 1000;
/// The most status polls of one upload, whatever the configured times.
const MAX_POLLS: u32 = 60;
/// An upload is reused only while it stays valid this much longer.
const REUSE_MARGIN_MS: i64 = 10 * 60 * 1000;

#[derive(serde::Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(serde::Deserialize)]
struct Upload {
    #[serde(default)]
    id: String,
    #[serde(default)]
    expires_after_secs: Option<i64>,
    #[serde(default)]
    processing_info: Option<Processing>,
}

#[derive(Debug, serde::Deserialize)]
struct Processing {
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// `image/gif` → `tweet_gif`, video → `tweet_video`, other images → `tweet_image`.
fn category(content_type: &str) -> &'static str {
    if content_type == "image/gif" {
        "tweet_gif"
    } else if content_type.starts_with("video/") {
        "tweet_video"
    } else {
        "tweet_image"
    }
}

fn step(i: usize, name: &str) -> String {
    if name.is_empty() {
        format!("media.{i}")
    } else {
        format!("media.{i}.{name}")
    }
}

impl X {
    /// The X media ids of the part's attachments, uploaded now or reused from an earlier
    /// attempt (see the module doc).
    pub(super) async fn media_ids(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
    ) -> Result<Vec<String>, NetworkError> {
        let mut ids = Vec::with_capacity(part.media.len());
        for (i, a) in part.media.iter().enumerate() {
            ids.push(self.one_media(s, part, i, a).await?);
        }
        Ok(ids)
    }

    /// The media ids of the part's uploads kept in its steps, when every attachment has one
    /// (an empty list otherwise: the look-up then matches on text alone).
    pub(super) async fn kept_media_ids(
        &self,
        part: &Part<'_>,
    ) -> Result<Vec<String>, NetworkError> {
        let mut ids = Vec::with_capacity(part.media.len());
        for i in 0..part.media.len() {
            match part.steps.get(&step(i, "")).await? {
                Some(id) => ids.push(id),
                None => return Ok(Vec::new()),
            }
        }
        Ok(ids)
    }

    async fn one_media(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        i: usize,
        a: &Attachment,
    ) -> Result<String, NetworkError> {
        let steps = part.steps;
        let kept = steps.get(&step(i, "")).await?;
        let of = steps.get(&step(i, "of")).await?;
        let state = steps.get(&step(i, "state")).await?;
        let expires: i64 = steps
            .get(&step(i, "expires"))
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let valid = expires > self.api.clock.now_ms().saturating_add(REUSE_MARGIN_MS);
        if let Some(id) = kept.filter(|_| of.as_deref() == Some(a.meta.id.as_str()) && valid) {
            match state.as_deref() {
                Some("ready") => return Ok(id),
                Some("finalized") => match self.wait_processed(s, &id).await {
                    Ok(()) => return self.ready(s, part, i, a, id).await,
                    // X no longer knows it (or it failed): upload again.
                    Err(NetworkError::Rejected { .. } | NetworkError::MediaRejected { .. }) => {}
                    Err(e) => return Err(e),
                },
                _ => {}
            }
        }
        self.upload(s, part, i, a).await
    }

    async fn upload(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        i: usize,
        a: &Attachment,
    ) -> Result<String, NetworkError> {
        let segments = a.bytes.len().div_ceil(SEGMENT);
        if a.bytes.is_empty() || segments > MAX_SEGMENTS {
            return Err(NetworkError::MediaRejected {
                message: format!("x: {} is empty or too large to upload", a.meta.id),
            });
        }
        let init = serde_json::json!({
            "media_type": a.meta.content_type,
            "total_bytes": a.bytes.len(),
            "media_category": category(&a.meta.content_type),
        });
        let answer = self
            .media_call(
                with_json(
                    self.authed(
                        s,
                        self.api
                            .http
                            .post(self.api.url(API, "/2/media/upload/initialize")),
                    ),
                    &init,
                ),
                "media initialize",
            )
            .await?;
        let up: Envelope<Upload> = answer.json(&self.api)?;
        let id = up.data.id;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NetworkError::unavailable(
                "x: media initialize answered without a media id",
            ));
        }
        let ttl = up
            .data
            .expires_after_secs
            .unwrap_or(86_400)
            .clamp(0, 30 * 86_400);
        let expires = self.api.clock.now_ms().saturating_add(ttl * 1000);
        let steps = part.steps;
        steps.put(&step(i, "state"), "uploading").await?;
        steps.put(&step(i, ""), &id).await?;
        steps.put(&step(i, "of"), &a.meta.id).await?;
        steps.put(&step(i, "expires"), &expires.to_string()).await?;
        for (n, chunk) in a.bytes.chunks(SEGMENT).enumerate() {
            let media = reqwest::multipart::Part::stream_with_length(
                reqwest::Body::from(a.bytes.slice_ref(chunk)),
                chunk.len() as u64,
            )
            .file_name("segment")
            .mime_str("application/octet-stream")
            .map_err(|e| NetworkError::unavailable(format!("x: a multipart part: {e}")))?;
            let form = reqwest::multipart::Form::new()
                .text("segment_index", n.to_string())
                .part("media", media);
            let url = self.api.url(API, &format!("/2/media/upload/{id}/append"));
            self.media_call(
                self.authed(s, self.api.http.post(url)).multipart(form),
                "media append",
            )
            .await?;
        }
        let url = self.api.url(API, &format!("/2/media/upload/{id}/finalize"));
        let answer = self
            .media_call(self.authed(s, self.api.http.post(url)), "media finalize")
            .await?;
        let done: Envelope<Upload> = answer.json(&self.api)?;
        steps.put(&step(i, "state"), "finalized").await?;
        match done.data.processing_info {
            None => {}
            Some(p) if p.state == "succeeded" => {}
            Some(p) if p.state == "failed" => return Err(processing_failed(&id, &p)),
            Some(_) => self.wait_processed(s, &id).await?,
        }
        self.ready(s, part, i, a, id).await
    }

    /// Sets the alt text, then marks the upload ready in the steps.
    async fn ready(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        i: usize,
        a: &Attachment,
        id: String,
    ) -> Result<String, NetworkError> {
        if let Some(alt) = a.meta.alt_text.as_deref().filter(|t| !t.trim().is_empty()) {
            let alt: String = alt.chars().take(1000).collect();
            let body = serde_json::json!({"id": id, "metadata": {"alt_text": {"text": alt}}});
            self.media_call(
                with_json(
                    self.authed(
                        s,
                        self.api.http.post(self.api.url(API, "/2/media/metadata")),
                    ),
                    &body,
                ),
                "media metadata",
            )
            .await?;
        }
        part.steps.put(&step(i, "state"), "ready").await?;
        Ok(id)
    }

    /// Polls the upload's status until `succeeded`, bounded in polls and in `poll_max`.
    async fn wait_processed(&self, s: &Session<'_>, id: &str) -> Result<(), NetworkError> {
        let started = tokio::time::Instant::now();
        let cfg = &self.api.config;
        for n in 0..MAX_POLLS {
            if n > 0 {
                if started.elapsed() + cfg.poll_interval > cfg.poll_max {
                    break;
                }
                self.api.pause(cfg.poll_interval).await;
            }
            let mut url = self.api.url(API, "/2/media/upload");
            url.query_pairs_mut()
                .append_pair("command", "STATUS")
                .append_pair("media_id", id);
            let answer = self
                .media_call(self.authed(s, self.api.http.get(url)), "media status")
                .await?;
            let st: Envelope<Upload> = answer.json(&self.api)?;
            match st.data.processing_info {
                None => return Ok(()),
                Some(p) if p.state == "succeeded" => return Ok(()),
                Some(p) if p.state == "failed" => return Err(processing_failed(id, &p)),
                Some(_) => {}
            }
        }
        Err(NetworkError::Unavailable {
            message: format!(
                "x: media {id} is still being processed after {} ms",
                started.elapsed().as_millis()
            ),
            retry_after: Some(Duration::from_secs(30)),
        })
    }

    pub(super) fn authed(
        &self,
        s: &Session<'_>,
        req: reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        req.header(
            AUTHORIZATION,
            format!("Bearer {}", s.credentials.access_token),
        )
    }

    async fn media_call(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Answer, NetworkError> {
        let answer = call(&self.api, req).await?;
        if answer.is_success() {
            Ok(answer)
        } else {
            Err(answer.error(&self.api, what, true))
        }
    }
}

fn processing_failed(id: &str, p: &Processing) -> NetworkError {
    let why = p
        .error
        .as_ref()
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("processing failed");
    NetworkError::MediaRejected {
        message: format!("x: media {id}: {}", crate::hosted::short(why)),
    }
}
