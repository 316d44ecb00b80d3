//! Publishing one video and finding it again: creator info, `video/init/`, the chunked
//! upload, the status polls, and the steps kept between them (see the module above for the
//! exactly-once strategy).
//!
//! Steps kept per part: `source` (`file`/`pull`), `privacy`, `sent_at` (ms, before `init`),
//! `publish_id` and `upload_url` (after `init`, before any byte is sent), `uploaded` (`1`
//! once the last chunk is accepted), `post_id` (once TikTok gives the public id). A cleared
//! step is an empty value (steps cannot be deleted).

use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};

use super::{TikTok, VideoList, WWW, api};
use crate::{Attachment, NetworkError, Part, PublishedPart, Session};

/// The chunk size of a video larger than [`MAX_SINGLE_CHUNK`]. "Each chunk must be at least
/// 5 MB but no greater than 64 MB, except for the final chunk, which can be greater than
/// chunk_size (up to 128 MB)"; "total_chunk_count should be equal to video_size divided by
/// chunk_size, rounded down"; at most 1000 chunks (Media Transfer Guide). 16 MiB chunks keep
/// a 4 GB video at 256 chunks and the final one under 32 MiB.
pub const CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// Up to this size a video goes as one chunk ("videos with a total size less than 5 MB must
/// be uploaded as a whole"; over 64 MB "must be uploaded in multiple chunks").
pub const MAX_SINGLE_CHUNK: u64 = 64 * 1024 * 1024;
/// "There must be a minimum of 1 chunk and a maximum of 1000 chunks."
pub const MAX_CHUNKS: u64 = 1000;
/// The most status polls in one call, whatever `poll_max` allows.
const MAX_POLLS: u32 = 120;
/// Clock skew allowed when matching a pulled video's `create_time` against `sent_at`.
const LOOKUP_SKEW_MS: i64 = 5 * 60 * 1000;

/// `(chunk_size, total_chunk_count)` for a video of `size` bytes, by the chunk rules.
pub fn chunking(size: u64) -> Result<(u64, u64), NetworkError> {
    if size == 0 {
        return Err(NetworkError::MediaRejected {
            message: "tiktok: the video is empty".into(),
        });
    }
    if size <= MAX_SINGLE_CHUNK {
        return Ok((size, 1));
    }
    let count = size / CHUNK_SIZE;
    if count > MAX_CHUNKS {
        return Err(NetworkError::MediaRejected {
            message: format!("tiktok: a {size}-byte video needs more than {MAX_CHUNKS} chunks"),
        });
    }
    Ok((CHUNK_SIZE, count))
}

/// Whether `id` is a TikTok video id (digits), not a publish id standing in for one.
pub fn is_video_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// An id sent as a JSON number (int64) or a string, as text.
pub fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::Deserialize;
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s,
        _ => String::new(),
    })
}

/// Creator info: what this account may post now.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(super) struct CreatorInfo {
    #[serde(default)]
    pub creator_username: String,
    #[serde(default)]
    pub creator_nickname: String,
    #[serde(default)]
    pub privacy_level_options: Vec<String>,
    #[serde(default)]
    pub comment_disabled: bool,
    #[serde(default)]
    pub duet_disabled: bool,
    #[serde(default)]
    pub stitch_disabled: bool,
    #[serde(default)]
    pub max_video_post_duration_sec: Option<u64>,
}

/// What the post's options ask for.
#[derive(Debug, Default)]
struct Wanted {
    privacy: Option<String>,
    comments: Option<bool>,
    duet: Option<bool>,
    stitch: Option<bool>,
    pull: bool,
}

/// The `post_info` decided from the options and creator info.
#[derive(Debug)]
struct Plan {
    privacy: String,
    disable_comment: bool,
    disable_duet: bool,
    disable_stitch: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Init {
    #[serde(default)]
    publish_id: String,
    #[serde(default)]
    upload_url: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Status {
    #[serde(default)]
    status: String,
    #[serde(default)]
    fail_reason: Option<String>,
    #[serde(default)]
    publicaly_available_post_id: Vec<serde_json::Value>,
    #[serde(default)]
    uploaded_bytes: Option<u64>,
}

impl Status {
    fn post_id(&self) -> Option<String> {
        self.publicaly_available_post_id
            .iter()
            .find_map(|v| match v {
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::String(s) if is_video_id(s) => Some(s.clone()),
                _ => None,
            })
    }
}

/// What one status answer says.
enum Seen {
    /// Published, with its public id.
    Done(String),
    /// Published, without a public id (private, or still in moderation).
    CompleteNoId,
    Failed(NetworkError),
    /// Sent to the creator's inbox to finish in the app (an upload, not a direct post).
    Inbox,
    Processing,
}

fn judge(st: &Status) -> Seen {
    match st.status.as_str() {
        "PUBLISH_COMPLETE" => match st.post_id() {
            Some(id) => Seen::Done(id),
            None => Seen::CompleteNoId,
        },
        "FAILED" => Seen::Failed(failure(st.fail_reason.as_deref().unwrap_or(""))),
        "SEND_TO_USER_INBOX" => Seen::Inbox,
        _ => Seen::Processing,
    }
}

/// A `fail_reason` in our terms (Get Post Status: `file_format_check_failed`,
/// `duration_check_failed`, `frame_rate_check_failed`, `picture_size_check_failed`,
/// `video_pull_failed`, `photo_pull_failed`, `auth_removed`, `spam_risk_*`, `internal`, …).
fn failure(reason: &str) -> NetworkError {
    let message = format!(
        "tiktok: publishing failed: {}",
        crate::hosted::short(reason)
    );
    match reason {
        r if r.ends_with("_check_failed") || r.ends_with("_pull_failed") => {
            NetworkError::MediaRejected { message }
        }
        "auth_removed" => NetworkError::Unauthorized { message },
        "spam_risk_too_many_posts" => NetworkError::RateLimited {
            retry_after: Some(api::DAILY_CAP_RETRY),
        },
        "internal" | "" => NetworkError::unavailable(message),
        _ => NetworkError::Rejected { message },
    }
}

fn inbox() -> NetworkError {
    NetworkError::rejected(
        "tiktok: the video was sent to the creator's inbox instead of being posted; \
         finish it in the TikTok app",
    )
}

/// The one video of a part; TikTok posts nothing else (photo posts are not supported here).
fn the_video<'a>(part: &Part<'a>) -> Result<&'a Attachment, NetworkError> {
    match part.media {
        [] => Err(NetworkError::rejected(
            "tiktok: a TikTok post is a video; text alone cannot be posted",
        )),
        [one] if one.meta.is_video() => Ok(one),
        [_] => Err(NetworkError::MediaRejected {
            message: "tiktok: only video posts are supported (photo posts are not)".into(),
        }),
        _ => Err(NetworkError::rejected("tiktok: a post takes one video")),
    }
}

fn wanted(part: &Part<'_>) -> Result<Wanted, NetworkError> {
    let o = &part.options.options;
    let flag = |name: &str| -> Result<Option<bool>, NetworkError> {
        match o.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(NetworkError::rejected(format!(
                "tiktok: option {name} must be true or false"
            ))),
        }
    };
    let text = |name: &str| -> Result<Option<String>, NetworkError> {
        match o.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(NetworkError::rejected(format!(
                "tiktok: option {name} must be text"
            ))),
        }
    };
    let privacy = text("privacy")?;
    if let Some(p) = &privacy
        && !super::PRIVACY_LEVELS.contains(&p.as_str())
    {
        return Err(NetworkError::rejected(format!(
            "tiktok: privacy {p} is not one of {}",
            super::PRIVACY_LEVELS.join(", ")
        )));
    }
    let pull = match text("source")?.as_deref() {
        None | Some("file") => false,
        Some("pull") => true,
        Some(other) => {
            return Err(NetworkError::rejected(format!(
                "tiktok: source {other} is not file or pull"
            )));
        }
    };
    Ok(Wanted {
        privacy,
        comments: flag("allow_comments")?,
        duet: flag("allow_duet")?,
        stitch: flag("allow_stitch")?,
        pull,
    })
}

/// The caption TikTok counts in UTF-16 units.
fn check_caption(text: &str) -> Result<(), NetworkError> {
    let n = text.encode_utf16().count();
    if n > super::MAX_CAPTION_UTF16 {
        return Err(NetworkError::rejected(format!(
            "tiktok: the caption is {n} UTF-16 units; TikTok takes up to {}",
            super::MAX_CAPTION_UTF16
        )));
    }
    Ok(())
}

/// One interaction: off when the creator has it off (asking for it then is refused), else as
/// asked, else on.
fn interaction(
    what: &str,
    creator_disabled: bool,
    asked: Option<bool>,
) -> Result<bool, NetworkError> {
    match (creator_disabled, asked) {
        (true, Some(true)) => Err(NetworkError::rejected(format!(
            "tiktok: the creator has turned {what} off in their TikTok settings"
        ))),
        (true, _) => Ok(true),
        (false, Some(allow)) => Ok(!allow),
        (false, None) => Ok(false),
    }
}

/// The `post_info` for this creator, or why it cannot be posted.
fn plan(c: &CreatorInfo, w: &Wanted, video: &Attachment) -> Result<Plan, NetworkError> {
    let offered = &c.privacy_level_options;
    let privacy = match &w.privacy {
        Some(p) if offered.iter().any(|o| o == p) => p.clone(),
        Some(p) => {
            return Err(NetworkError::rejected(format!(
                "tiktok: privacy {p} is not offered to this account; it may post {}",
                if offered.is_empty() {
                    "with no privacy level at all".to_owned()
                } else {
                    offered.join(", ")
                }
            )));
        }
        None => super::PRIVACY_LEVELS
            .iter()
            .find(|p| offered.iter().any(|o| o == *p))
            .map(|p| (*p).to_owned())
            .ok_or_else(|| {
                NetworkError::rejected("tiktok: creator info offers no privacy level to post with")
            })?,
    };
    let max_sec = c
        .max_video_post_duration_sec
        .filter(|s| *s > 0)
        .unwrap_or(super::DEFAULT_MAX_VIDEO_MS / 1000);
    if let Some(ms) = video.meta.duration_ms
        && ms > max_sec.saturating_mul(1000)
    {
        return Err(NetworkError::rejected(format!(
            "tiktok: the video is {} s long; this account may post videos up to {max_sec} s",
            ms.div_ceil(1000)
        )));
    }
    Ok(Plan {
        privacy,
        disable_comment: interaction("comments", c.comment_disabled, w.comments)?,
        disable_duet: interaction("duets", c.duet_disabled, w.duet)?,
        disable_stitch: interaction("stitches", c.stitch_disabled, w.stitch)?,
    })
}

/// A kept step, `None` when absent or cleared.
async fn kept(part: &Part<'_>, name: &str) -> Result<Option<String>, NetworkError> {
    Ok(part.steps.get(name).await?.filter(|v| !v.is_empty()))
}

/// Forgets a publish that failed, so the next attempt starts again. `sent_at` goes too: no
/// `init` is in flight any more, so a look-up before the next one has nothing to search for.
async fn clear(part: &Part<'_>) -> Result<(), NetworkError> {
    for name in ["publish_id", "upload_url", "uploaded", "post_id", "sent_at"] {
        part.steps.put(name, "").await?;
    }
    Ok(())
}

impl TikTok {
    fn published(handle: &str, id: &str) -> PublishedPart {
        PublishedPart {
            external_id: id.to_owned(),
            url: Self::video_url(handle, id),
        }
    }

    /// A post TikTok gives no public id for: the publish id stands in, the link is the
    /// profile's.
    fn published_without_id(handle: &str, publish_id: &str) -> PublishedPart {
        PublishedPart {
            external_id: publish_id.to_owned(),
            url: if handle.is_empty() {
                WWW.to_owned()
            } else {
                Self::profile_url(handle)
            },
        }
    }

    /// `POST /v2/post/publish/creator_info/query/`.
    pub(super) async fn creator_info(&self, token: &str) -> Result<CreatorInfo, NetworkError> {
        let url = self.endpoint("/v2/post/publish/creator_info/query/");
        api::call(
            &self.api,
            token,
            self.api.http.post(url),
            Some(&serde_json::json!({})),
        )
        .await
    }

    /// `POST /v2/post/publish/status/fetch/`.
    async fn status(&self, token: &str, publish_id: &str) -> Result<Status, NetworkError> {
        let url = self.endpoint("/v2/post/publish/status/fetch/");
        let body = serde_json::json!({ "publish_id": publish_id });
        api::call(&self.api, token, self.api.http.post(url), Some(&body)).await
    }

    /// The public id of a post known by its publish id, once TikTok gives one.
    pub(super) async fn resolve_post_id(
        &self,
        token: &str,
        publish_id: &str,
    ) -> Result<String, NetworkError> {
        let st = self.status(token, publish_id).await?;
        st.post_id().ok_or_else(|| {
            NetworkError::rejected(format!(
                "tiktok: {publish_id} has no public post id (a private post, or still in \
                 moderation: {}); TikTok gives no metrics for it",
                st.status
            ))
        })
    }

    pub(super) async fn publish_part(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
    ) -> Result<PublishedPart, NetworkError> {
        let video = the_video(part)?;
        let wanted = wanted(part)?;
        check_caption(part.text)?;
        let token = s.credentials.access_token.as_str();
        if let Some(publish_id) = kept(part, "publish_id").await? {
            return self.resume(s, part, video, &publish_id).await;
        }
        let creator = self.creator_info(token).await?;
        let plan = plan(&creator, &wanted, video)?;
        if wanted.pull && video.url.is_empty() {
            return Err(NetworkError::MediaRejected {
                message: "tiktok: source pull needs a URL TikTok can fetch the video from, and \
                          the media store has none"
                    .into(),
            });
        }
        let steps = part.steps;
        steps
            .put("source", if wanted.pull { "pull" } else { "file" })
            .await?;
        steps.put("privacy", &plan.privacy).await?;
        if kept(part, "sent_at").await?.is_none() {
            // The first attempt's (since the last refusal or failure cleared it): a later
            // look-up's window starts there.
            steps
                .put("sent_at", &self.api.clock.now_ms().to_string())
                .await?;
        }
        let init = match self.init(token, part.text, &plan, wanted.pull, video).await {
            Ok(init) => init,
            Err(e) => {
                if !matches!(e, NetworkError::Unavailable { .. } | NetworkError::Timeout) {
                    // TikTok answered with a refusal: nothing was initialised.
                    steps.put("sent_at", "").await?;
                }
                return Err(e);
            }
        };
        // Kept before a byte is sent: from here on this publish id is the post.
        steps.put("publish_id", &init.publish_id).await?;
        if !wanted.pull {
            let upload_url = init.upload_url.unwrap_or_default();
            steps.put("upload_url", &upload_url).await?;
            self.upload(video, &upload_url, 0).await?;
            steps.put("uploaded", "1").await?;
        }
        self.poll(s, part, &init.publish_id).await
    }

    /// `POST /v2/post/publish/video/init/`.
    async fn init(
        &self,
        token: &str,
        caption: &str,
        plan: &Plan,
        pull: bool,
        video: &Attachment,
    ) -> Result<Init, NetworkError> {
        let source_info = if pull {
            serde_json::json!({"source": "PULL_FROM_URL", "video_url": video.url})
        } else {
            let size = video.bytes.len() as u64;
            let (chunk_size, count) = chunking(size)?;
            serde_json::json!({
                "source": "FILE_UPLOAD",
                "video_size": size,
                "chunk_size": chunk_size,
                "total_chunk_count": count,
            })
        };
        // The cover a second in, past a fade from black, when the video is that long.
        let cover_ms = match video.meta.duration_ms {
            Some(ms) if ms < 2000 => 0,
            _ => 1000,
        };
        let body = serde_json::json!({
            "post_info": {
                "title": caption,
                "privacy_level": plan.privacy,
                "disable_comment": plan.disable_comment,
                "disable_duet": plan.disable_duet,
                "disable_stitch": plan.disable_stitch,
                "video_cover_timestamp_ms": cover_ms,
            },
            "source_info": source_info,
        });
        let url = self.endpoint("/v2/post/publish/video/init/");
        let init: Init = api::call(&self.api, token, self.api.http.post(url), Some(&body)).await?;
        if init.publish_id.is_empty()
            || (!pull && init.upload_url.as_deref().is_none_or(str::is_empty))
        {
            return Err(NetworkError::unavailable(
                "tiktok: video/init answered without a publish_id or upload_url",
            ));
        }
        Ok(init)
    }

    /// PUTs the video's chunks to `upload_url`, from the chunk holding byte `from` on
    /// (chunks are sent in order; a resumed upload re-sends the chunk TikTok has part of).
    async fn upload(
        &self,
        video: &Attachment,
        upload_url: &str,
        from: u64,
    ) -> Result<(), NetworkError> {
        let url = url::Url::parse(upload_url)
            .map_err(|_| NetworkError::unavailable("tiktok: the kept upload_url is not a URL"))?;
        let size = video.bytes.len() as u64;
        let (chunk, count) = chunking(size)?;
        let first = (from / chunk).min(count - 1);
        for i in first..count {
            let start = i * chunk;
            let end = if i + 1 == count { size } else { start + chunk };
            let body = video.bytes.slice(start as usize..end as usize);
            let req = self
                .api
                .http
                .put(url.clone())
                .header(CONTENT_TYPE, video.meta.content_type.as_str())
                .header(CONTENT_LENGTH, end - start)
                .header(CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1))
                .body(body);
            let resp = self.api.send(req).await?;
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                continue;
            }
            let bytes = self.api.body(resp).await.unwrap_or_default();
            return Err(upload_error(status, &bytes, i, count));
        }
        Ok(())
    }

    /// Picks up a publish an earlier attempt initialised: done, failed (cleared, its reason
    /// answered), or still going (the rest of the upload sent, then polled).
    async fn resume(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        video: &Attachment,
        publish_id: &str,
    ) -> Result<PublishedPart, NetworkError> {
        let token = s.credentials.access_token.as_str();
        let handle = s.account.handle.as_str();
        let st = self.status(token, publish_id).await?;
        match judge(&st) {
            Seen::Done(id) => {
                part.steps.put("post_id", &id).await?;
                return Ok(Self::published(handle, &id));
            }
            Seen::Failed(e) => {
                clear(part).await?;
                return Err(e);
            }
            Seen::Inbox => return Err(inbox()),
            Seen::CompleteNoId | Seen::Processing => {}
        }
        let file = kept(part, "source").await?.as_deref() != Some("pull");
        let have = st.uploaded_bytes.unwrap_or(0);
        let size = video.bytes.len() as u64;
        if file
            && kept(part, "uploaded").await?.is_none()
            && st.status == "PROCESSING_UPLOAD"
            && have < size
        {
            let Some(upload_url) = kept(part, "upload_url").await? else {
                // Initialised but no upload URL kept: no byte can have been sent, so this
                // publish id can never become a post.
                clear(part).await?;
                return Err(NetworkError::unavailable(
                    "tiktok: an earlier attempt kept no upload URL; starting again",
                ));
            };
            self.upload(video, &upload_url, have).await?;
        }
        if file {
            // Every byte is there (sent now, or by an attempt whose last answer was lost).
            part.steps.put("uploaded", "1").await?;
        }
        self.poll(s, part, publish_id).await
    }

    /// Polls the status until the post is published or failed, bounded by `poll_max` and
    /// [`MAX_POLLS`]; still processing at the end is `Unavailable` (the retry resumes).
    async fn poll(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        publish_id: &str,
    ) -> Result<PublishedPart, NetworkError> {
        let token = s.credentials.access_token.as_str();
        let handle = s.account.handle.as_str();
        let private = kept(part, "privacy").await?.as_deref() != Some("PUBLIC_TO_EVERYONE");
        let started = tokio::time::Instant::now();
        let interval = self.api.config.poll_interval;
        let mut complete = false;
        for n in 0..MAX_POLLS {
            if n > 0 {
                if started.elapsed() + interval > self.api.config.poll_max {
                    break;
                }
                self.api.pause(interval).await;
            }
            let st = self.status(token, publish_id).await?;
            match judge(&st) {
                Seen::Done(id) => {
                    part.steps.put("post_id", &id).await?;
                    return Ok(Self::published(handle, &id));
                }
                // A private post never gets a public id; a public one gets it after moderation.
                Seen::CompleteNoId if private => {
                    return Ok(Self::published_without_id(handle, publish_id));
                }
                Seen::CompleteNoId => complete = true,
                Seen::Failed(e) => {
                    clear(part).await?;
                    return Err(e);
                }
                Seen::Inbox => return Err(inbox()),
                Seen::Processing => {}
            }
        }
        if complete {
            return Ok(Self::published_without_id(handle, publish_id));
        }
        Err(NetworkError::Unavailable {
            message: format!(
                "tiktok: {publish_id} is still being processed after {} s; the retry resumes it",
                started.elapsed().as_secs()
            ),
            retry_after: Some(interval.max(Duration::from_secs(30))),
        })
    }

    /// The look-up (see the module's exactly-once strategy).
    pub(super) async fn find(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let handle = s.account.handle.as_str();
        let Some(publish_id) = kept(part, "publish_id").await? else {
            return self.find_pulled(s, part).await;
        };
        if let Some(id) = kept(part, "post_id").await? {
            return Ok(Some(Self::published(handle, &id)));
        }
        let st = self
            .status(s.credentials.access_token.as_str(), &publish_id)
            .await?;
        match judge(&st) {
            Seen::Done(id) => {
                part.steps.put("post_id", &id).await?;
                Ok(Some(Self::published(handle, &id)))
            }
            Seen::CompleteNoId => Ok(Some(Self::published_without_id(handle, &publish_id))),
            Seen::Failed(_) => {
                clear(part).await?;
                Ok(None)
            }
            Seen::Inbox => Err(inbox()),
            Seen::Processing => {
                let file = kept(part, "source").await?.as_deref() != Some("pull");
                let size = part.media.first().map_or(0, |m| m.bytes.len() as u64);
                if file
                    && kept(part, "uploaded").await?.is_none()
                    && st.uploaded_bytes.unwrap_or(0) < size
                {
                    // TikTok waits for bytes only we can send: not published, and publishing
                    // again resumes this same publish id (it never initialises anew).
                    return Ok(None);
                }
                Err(NetworkError::Unavailable {
                    message: format!("tiktok: {publish_id} is still being processed"),
                    retry_after: Some(self.api.config.poll_interval.max(Duration::from_secs(30))),
                })
            }
        }
    }

    /// No publish id kept. With `FILE_UPLOAD` nothing can have been posted (TikTok needs our
    /// bytes). With `PULL_FROM_URL` an `init` whose answer was lost may have been taken: the
    /// account's recent videos are searched for our caption since `sent_at`. A miss there
    /// proves nothing (the list has only public videos TikTok has finished processing, the
    /// latest 20), so it is an error, never `None`: the publisher asks again later and its
    /// retry budget fails the target rather than risk a second post. Only with no `sent_at`
    /// kept (no `init` sent, or its refusal or failure heard) is it `None`.
    async fn find_pulled(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        if kept(part, "source").await?.as_deref() != Some("pull") {
            return Ok(None);
        }
        let Some(sent_at) = kept(part, "sent_at")
            .await?
            .and_then(|v| v.parse::<i64>().ok())
        else {
            return Ok(None);
        };
        let mut url = self.endpoint("/v2/video/list/");
        url.query_pairs_mut()
            .append_pair("fields", "id,title,video_description,create_time");
        let body = serde_json::json!({ "max_count": 20 });
        let list: VideoList = api::call(
            &self.api,
            s.credentials.access_token.as_str(),
            self.api.http.post(url),
            Some(&body),
        )
        .await?;
        let text = part.text.trim();
        let found = list.videos.iter().find(|v| {
            let caption = v.title.as_deref().or(v.video_description.as_deref());
            caption.is_some_and(|c| c.trim() == text)
                && v.create_time.saturating_mul(1000) >= sent_at - LOOKUP_SKEW_MS
        });
        match found {
            Some(v) => Ok(Some(Self::published(s.account.handle.as_str(), &v.id))),
            None => Err(NetworkError::Unavailable {
                message: "tiktok: a pulled video's init went out and its answer was lost; it \
                          is not among the account's public, processed videos (yet), so \
                          whether it was posted cannot be told"
                    .into(),
                retry_after: Some(self.api.config.poll_interval.max(Duration::from_secs(30))),
            }),
        }
    }
}

/// A refused chunk: the upload service's error envelope when it sent one, else its status.
fn upload_error(status: u16, body: &[u8], chunk: u64, count: u64) -> NetworkError {
    #[derive(serde::Deserialize)]
    struct Env {
        error: api::ApiError,
    }
    let detail = serde_json::from_slice::<Env>(body)
        .map(|e| {
            format!(
                "{}: {}",
                e.error.code,
                crate::hosted::short(&e.error.message)
            )
        })
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(200).collect());
    let message = format!(
        "tiktok: chunk {} of {count} refused with {status}: {detail}",
        chunk + 1
    );
    match status {
        429 => NetworkError::RateLimited {
            retry_after: Some(api::RATE_WINDOW),
        },
        400..=499 => NetworkError::MediaRejected { message },
        _ => NetworkError::unavailable(message),
    }
}
