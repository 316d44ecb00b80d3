//! The resumable upload of one video ("Resumable uploads",
//! developers.google.com/youtube/v3/guides/using_resumable_upload_protocol; "videos.insert").
//!
//! 1. `POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status` with the
//!    video resource as JSON and `X-Upload-Content-Length` / `X-Upload-Content-Type`; `200`
//!    with `Location`: the session URI. It is kept in the part's steps before any byte goes.
//! 2. `PUT {session}` with the bytes, in chunks of a multiple of 256 KiB (all but the last),
//!    `Content-Range: bytes {first}-{last}/{size}`. `308 Resume Incomplete` with
//!    `Range: bytes=0-{n}` says what Google holds (maybe less than was sent): the next chunk
//!    starts at `n + 1`. `200`/`201` answers the video resource: done.
//! 3. After a crash or a lost answer: `PUT {session}` with `Content-Range: bytes */{size}` and
//!    no body asks the status: `308` (resume from its `Range`; none: from 0), `200`/`201`
//!    (the upload completed: that is our video, taken exactly once), `404`/`410` (the session
//!    expired: the uploads playlist is searched, then a new session started).
//!
//! A session URI is only followed to the API's own host: the bearer token goes nowhere else.

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};

use super::{
    API_HOST, Channel, List, Metadata, STEP_SENT_AT, STEP_SESSION, STEP_SIZE, STEP_VIDEO, YouTube,
};
use crate::{Attachment, NetworkError, Part, PublishedPart, Session};

/// Clock skew allowed when matching the uploads playlist against our attempt's time.
const LOOKUP_SKEW_MS: i64 = 10 * 60 * 1000;
/// The uploads read in one look-up (one `playlistItems` page, its most).
const LOOKUP_PAGE: usize = 50;
/// Calls past the chunks themselves before an upload is left for the next attempt.
const EXTRA_CALLS: usize = 8;

/// What a session holds.
enum State {
    /// The upload completed: the video resource.
    Complete(Video),
    /// Google holds the first `n` bytes.
    Received(u64),
    /// Google no longer knows the session.
    Expired,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Video {
    #[serde(default)]
    id: String,
    #[serde(default)]
    status: Option<VideoStatus>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct VideoStatus {
    #[serde(default, rename = "uploadStatus")]
    upload_status: Option<String>,
    #[serde(default, rename = "failureReason")]
    failure_reason: Option<String>,
    #[serde(default, rename = "rejectionReason")]
    rejection_reason: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct PlaylistItem {
    #[serde(default)]
    snippet: ItemSnippet,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ItemSnippet {
    #[serde(default, rename = "publishedAt")]
    published_at: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "resourceId")]
    resource_id: ResourceId,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ResourceId {
    #[serde(default, rename = "videoId")]
    video_id: String,
}

impl YouTube {
    /// Publishes `video` with `meta`, resuming what an earlier attempt kept.
    pub(super) async fn upload(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        video: &Attachment,
        meta: &Metadata,
    ) -> Result<PublishedPart, NetworkError> {
        let total = video.bytes.len() as u64;
        if total == 0 {
            return Err(NetworkError::MediaRejected {
                message: "youtube: the video is empty".into(),
            });
        }
        if let Some(id) = part.steps.get(STEP_VIDEO).await? {
            return Ok(published(&id, meta));
        }
        if let Some(uri) = part.steps.get(STEP_SESSION).await? {
            let kept = kept_size(part).await?.unwrap_or(total);
            match self.state(s, &uri, kept).await? {
                State::Complete(v) => return self.finished(part, v, meta).await,
                State::Received(n) if kept == total => {
                    return self.send_from(s, part, &uri, video, n, meta).await;
                }
                // The media changed under the kept session (it cannot complete it), or the
                // session is gone: before starting over, make sure it did not complete.
                _ => {
                    if let Some(found) = self.in_uploads(s, part, meta).await? {
                        return Ok(found);
                    }
                }
            }
        }
        let project = Self::project(s.credentials);
        self.ledger.check_insert(&self.quota, project, self.now())?;
        part.steps
            .put(STEP_SENT_AT, &self.now().to_string())
            .await?;
        part.steps.put(STEP_SIZE, &total.to_string()).await?;
        let uri = self.initiate(s, video, meta).await?;
        // Kept before any byte is sent: a video can only exist where a session is kept.
        part.steps.put(STEP_SESSION, uri.as_str()).await?;
        self.send_from(s, part, uri.as_str(), video, 0, meta).await
    }

    /// Finds the part's video if an earlier attempt uploaded it (see the module).
    pub(super) async fn find(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let Some(video) = part.media.iter().find(|m| m.meta.is_video()) else {
            // Publishing refuses such a part before any call: nothing was sent.
            return Ok(None);
        };
        let kept_video = part.steps.get(STEP_VIDEO).await?;
        let session = part.steps.get(STEP_SESSION).await?;
        if kept_video.is_none() && session.is_none() {
            // No session kept: no byte was ever sent, so no video exists.
            return Ok(None);
        }
        let meta = Metadata::of(part, video)?;
        if let Some(id) = kept_video {
            return Ok(Some(published(&id, &meta)));
        }
        let Some(uri) = session else {
            return Ok(None);
        };
        let kept = kept_size(part).await?.unwrap_or(video.bytes.len() as u64);
        match self.state(s, &uri, kept).await? {
            State::Complete(v) => self.finished(part, v, &meta).await.map(Some),
            // An upload still missing bytes is no video yet.
            State::Received(_) => Ok(None),
            State::Expired => self.in_uploads(s, part, &meta).await,
        }
    }

    /// Starts a resumable session: its URI.
    async fn initiate(
        &self,
        s: &Session<'_>,
        video: &Attachment,
        meta: &Metadata,
    ) -> Result<url::Url, NetworkError> {
        let project = Self::project(s.credentials);
        let mut url = self.api.url(API_HOST, "/upload/youtube/v3/videos");
        url.query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("part", "snippet,status");
        let req = self
            .api
            .http
            .post(url)
            .header(AUTHORIZATION, Self::bearer(&s.credentials.access_token))
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .header("X-Upload-Content-Length", video.bytes.len().to_string())
            .header("X-Upload-Content-Type", video.meta.content_type.as_str())
            .body(meta.resource().to_string());
        let (status, headers, body) = self.call(req).await?;
        if !(200..300).contains(&status) {
            return Err(self.fail(project, status, &headers, &body));
        }
        self.ledger.charge_insert(&self.quota, project, self.now());
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                NetworkError::unavailable("youtube: a resumable session without a Location")
            })?;
        self.session_uri(location)
    }

    /// The session URI of a `Location`, on the API's own host only.
    fn session_uri(&self, location: &str) -> Result<url::Url, NetworkError> {
        let api = self.api.url(API_HOST, "/upload/youtube/v3/videos");
        let uri = api
            .join(location)
            .map_err(|_| NetworkError::unavailable("youtube: the session URI is not a URL"))?;
        if uri.origin() != api.origin() || uri.as_str().len() > crate::MAX_STEP_VALUE {
            return Err(NetworkError::unavailable(format!(
                "youtube: a session URI off the API's host ({})",
                uri.origin().ascii_serialization()
            )));
        }
        Ok(uri)
    }

    /// Asks a session what it holds (`Content-Range: bytes */{total}`).
    async fn state(&self, s: &Session<'_>, uri: &str, total: u64) -> Result<State, NetworkError> {
        let token = &s.credentials.access_token;
        let uri = self.session_uri(uri)?;
        let req = self
            .api
            .http
            .put(uri)
            .header(AUTHORIZATION, Self::bearer(token))
            .header(CONTENT_RANGE, format!("bytes */{total}"))
            .header(CONTENT_LENGTH, "0");
        let (status, headers, body) = self.call(req).await?;
        match status {
            200 | 201 => Ok(State::Complete(self.api.parse(&body)?)),
            308 => Ok(State::Received(received(&headers))),
            404 | 410 => Ok(State::Expired),
            _ => Err(self.fail(Self::project(s.credentials), status, &headers, &body)),
        }
    }

    /// Sends the bytes from `offset` on, a chunk at a time, following what Google holds.
    async fn send_from(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        uri: &str,
        video: &Attachment,
        mut offset: u64,
        meta: &Metadata,
    ) -> Result<PublishedPart, NetworkError> {
        let uri = self.session_uri(uri)?;
        let token = &s.credentials.access_token;
        let total = video.bytes.len() as u64;
        let chunk = self.chunk as u64;
        let calls = (total.div_ceil(chunk) as usize).saturating_add(EXTRA_CALLS);
        for _ in 0..calls {
            let (range, body) = if offset >= total {
                (format!("bytes */{total}"), bytes::Bytes::new())
            } else {
                let end = (offset + chunk).min(total);
                (
                    format!("bytes {offset}-{}/{total}", end - 1),
                    video.bytes.slice(offset as usize..end as usize),
                )
            };
            let req = self
                .api
                .http
                .put(uri.clone())
                .header(AUTHORIZATION, Self::bearer(token))
                .header(CONTENT_TYPE, video.meta.content_type.as_str())
                .header(CONTENT_RANGE, range)
                .header(CONTENT_LENGTH, body.len().to_string())
                .body(body);
            let (status, headers, answer) = self.call(req).await?;
            match status {
                200 | 201 => {
                    let v: Video = self.api.parse(&answer)?;
                    return self.finished(part, v, meta).await;
                }
                308 => offset = received(&headers),
                404 | 410 => {
                    return Err(NetworkError::unavailable(
                        "youtube: the upload session expired; the next attempt starts a new one",
                    ));
                }
                _ => {
                    let project = Self::project(s.credentials);
                    return Err(self.fail(project, status, &headers, &answer));
                }
            }
        }
        Err(NetworkError::unavailable(format!(
            "youtube: the upload is at byte {offset} of {total} after {calls} calls; it resumes later"
        )))
    }

    /// The finished upload: refused when YouTube failed or rejected it, else kept and answered.
    async fn finished(
        &self,
        part: &Part<'_>,
        v: Video,
        meta: &Metadata,
    ) -> Result<PublishedPart, NetworkError> {
        if v.id.is_empty() {
            return Err(NetworkError::unavailable(
                "youtube: the upload completed without a video id",
            ));
        }
        let st = v.status.unwrap_or_default();
        if let Some(bad @ ("failed" | "rejected" | "deleted")) = st.upload_status.as_deref() {
            let why = st
                .failure_reason
                .or(st.rejection_reason)
                .unwrap_or_default();
            return Err(NetworkError::MediaRejected {
                message: format!("youtube: video {} was {bad} ({why})", v.id),
            });
        }
        part.steps.put(STEP_VIDEO, &v.id).await?;
        Ok(published(&v.id, meta))
    }

    /// The channel's recent uploads matched against the part: same title and description,
    /// published after our attempt (less the skew). `None` only when nothing matches and the
    /// page read reaches back before the attempt (an upload older than it, or fewer than
    /// [`LOOKUP_PAGE`]: the whole playlist); otherwise, or with no `sent_at` kept to bound the
    /// search, an error (cannot tell).
    async fn in_uploads(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        meta: &Metadata,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let token = &s.credentials.access_token;
        let project = Self::project(s.credentials);
        let Some(sent_at) = part
            .steps
            .get(STEP_SENT_AT)
            .await?
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
        else {
            // Matching against all time could take an older upload of the same title for it.
            return Err(NetworkError::unavailable(
                "youtube: no send time kept for the upload; cannot tell which upload is this part's",
            ));
        };
        let channels: List<Channel> = self
            .list(
                token,
                project,
                "/youtube/v3/channels",
                &[("part", "contentDetails"), ("mine", "true")],
            )
            .await?;
        let Some(uploads) = channels
            .items
            .into_iter()
            .find_map(|c| c.content_details.and_then(|d| d.related.uploads))
            .filter(|u| !u.is_empty())
        else {
            return Err(NetworkError::unavailable(
                "youtube: the channel's uploads playlist cannot be read; cannot tell whether the video exists",
            ));
        };
        let items: List<PlaylistItem> = self
            .list(
                token,
                project,
                "/youtube/v3/playlistItems",
                &[
                    ("part", "snippet"),
                    ("playlistId", &uploads),
                    ("maxResults", &LOOKUP_PAGE.to_string()),
                ],
            )
            .await?;
        let since = sent_at.saturating_sub(LOOKUP_SKEW_MS);
        // A page short of full is the whole playlist.
        let mut reached = items.items.len() < LOOKUP_PAGE;
        for sn in items.items.into_iter().map(|i| i.snippet) {
            let at = sn
                .published_at
                .parse::<jiff::Timestamp>()
                .ok()
                .map(|t| t.as_millisecond());
            if at.is_some_and(|at| at < since) {
                reached = true;
            }
            if sn.title == meta.title
                && sn.description == meta.description
                && at.is_some_and(|at| at >= since)
                && !sn.resource_id.video_id.is_empty()
            {
                part.steps.put(STEP_VIDEO, &sn.resource_id.video_id).await?;
                return Ok(Some(published(&sn.resource_id.video_id, meta)));
            }
        }
        if !reached {
            return Err(NetworkError::unavailable(format!(
                "youtube: the channel's latest {LOOKUP_PAGE} uploads do not reach back to the \
                 attempt; cannot tell whether the video exists"
            )));
        }
        Ok(None)
    }
}

fn published(id: &str, meta: &Metadata) -> PublishedPart {
    PublishedPart {
        external_id: id.to_owned(),
        url: meta.url(id),
    }
}

/// The size the kept session was started for.
async fn kept_size(part: &Part<'_>) -> Result<Option<u64>, NetworkError> {
    Ok(part
        .steps
        .get(STEP_SIZE)
        .await?
        .and_then(|v| v.parse().ok()))
}

/// The bytes Google holds, from a 308's `Range: bytes=0-{n}` (none: nothing yet).
fn received(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get(reqwest::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(_, last)| last.trim().parse::<u64>().ok())
        .map_or(0, |last| last.saturating_add(1))
}
