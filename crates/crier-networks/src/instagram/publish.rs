//! Publishing one part as containers, exactly once (see the module's doc): check, create or
//! resume the containers, poll them, publish, then the first comment and the link.

use std::time::{Duration, Instant};

use super::{Id, Instagram, MAX_CAPTION, MAX_CAROUSEL, MAX_HASHTAGS, PLATFORM};
use crate::{Attachment, NetworkError, Part, PublishedPart, Session};

/// The most status reads in one publish call, whatever the configured times.
const MAX_POLLS: u32 = 120;
/// Clock skew allowed between us and Instagram when matching recent media to a part.
const LOOKUP_SKEW_MS: i64 = 5 * 60 * 1000;
/// Recent media read when looking for a part whose publish answer was lost.
const LOOKUP_LIMIT: &str = "50";

/// What one part asks of Instagram, checked.
struct Plan<'a> {
    caption: &'a str,
    media: &'a [Attachment],
    first_comment: Option<&'a str>,
    share_to_feed: Option<bool>,
}

/// A container's `status_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    InProgress,
    Finished,
    Error,
    Expired,
    Published,
}

/// How many status reads are left in this call, and until when.
struct Budget {
    deadline: Instant,
    polls: u32,
    interval: Duration,
}

impl Budget {
    fn new(ig: &Instagram) -> Self {
        let c = &ig.api.config;
        Self {
            deadline: Instant::now() + c.poll_max,
            polls: MAX_POLLS,
            interval: c.poll_interval,
        }
    }

    /// Whether one more pause and read fit; spends one.
    fn take(&mut self) -> bool {
        if self.polls == 0 || Instant::now() + self.interval > self.deadline {
            return false;
        }
        self.polls -= 1;
        true
    }
}

/// An id as a path segment: Graph ids are digits (and `_` in some objects); anything else
/// (a kept step or an id from elsewhere) is refused rather than put in a URL.
pub(super) fn path_id(id: &str) -> Result<&str, NetworkError> {
    if !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(NetworkError::rejected(format!(
            "{PLATFORM}: `{}` is not an Instagram id",
            crate::hosted::short(id)
        )))
    }
}

/// Hashtags as Instagram counts them: `#` at the start of a word, followed by a letter,
/// digit or `_`.
pub fn hashtags(text: &str) -> usize {
    let mut count = 0;
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let starts_word = prev.is_none_or(|p| !(p.is_alphanumeric() || p == '_' || p == '#'));
        if c == '#'
            && starts_word
            && chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() || *n == '_')
        {
            count += 1;
        }
        prev = Some(c);
    }
    count
}

/// Everything Instagram would refuse, refused before any call.
fn plan<'a>(part: &Part<'a>) -> Result<Plan<'a>, NetworkError> {
    let rejected = |m: String| Err(NetworkError::rejected(format!("{PLATFORM}: {m}")));
    if part.media.is_empty() {
        return rejected(
            "instagram.media.required: Instagram posts need an image or a video; text alone \
             cannot be published"
                .into(),
        );
    }
    if !part.thread.is_empty() {
        return rejected("Instagram has no threads".into());
    }
    let len = part.text.chars().count();
    if len > MAX_CAPTION {
        return rejected(format!(
            "the caption is {len} characters; Instagram takes {MAX_CAPTION}"
        ));
    }
    let tags = hashtags(part.text);
    if tags > MAX_HASHTAGS {
        return rejected(format!(
            "the caption has {tags} hashtags; Instagram takes at most {MAX_HASHTAGS}"
        ));
    }
    if part.media.len() > MAX_CAROUSEL {
        return rejected(format!(
            "{} media; a carousel takes at most {MAX_CAROUSEL}",
            part.media.len()
        ));
    }
    for m in part.media {
        check_media(m, part.media.len() == 1)?;
    }
    let options = &part.options.options;
    let first_comment = match options.get("first_comment") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(t)) if t.chars().count() <= MAX_CAPTION => {
            Some(t.as_str()).filter(|t| !t.trim().is_empty())
        }
        Some(_) => {
            return rejected(format!(
                "first_comment must be text of at most {MAX_CAPTION} characters"
            ));
        }
    };
    let share_to_feed = match options.get("share_to_feed") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return rejected("share_to_feed must be true or false".into()),
    };
    Ok(Plan {
        caption: part.text,
        media: part.media,
        first_comment,
        share_to_feed,
    })
}

fn check_media(m: &Attachment, single: bool) -> Result<(), NetworkError> {
    let refused = |why: String| {
        Err(NetworkError::MediaRejected {
            message: format!("{PLATFORM}: {}: {why}", m.meta.id),
        })
    };
    if m.url.is_empty() {
        return refused(
            "Instagram fetches media by URL, and the media store has no public URL for it".into(),
        );
    }
    if m.meta.is_video() {
        if !super::RULES
            .media
            .video_types
            .contains(&m.meta.content_type)
        {
            return refused(format!("{} is not MP4 or MOV", m.meta.content_type));
        }
        if m.meta.size > super::MAX_VIDEO_BYTES {
            return refused(format!("{} bytes; a reel is at most 300 MB", m.meta.size));
        }
        if let Some(d) = m.meta.duration_ms
            && single
            && !(super::MIN_VIDEO_MS..=super::MAX_VIDEO_MS).contains(&d)
        {
            return refused(format!("{d} ms long; a reel is 3 s to 15 min"));
        }
    } else {
        if m.meta.content_type != "image/jpeg" {
            return refused(format!(
                "{} is not JPEG, the only image format Instagram publishes",
                m.meta.content_type
            ));
        }
        if m.meta.size > super::MAX_IMAGE_BYTES {
            return refused(format!("{} bytes; an image is at most 8 MiB", m.meta.size));
        }
    }
    Ok(())
}

async fn status(ig: &Instagram, token: &str, container: &str) -> Result<Status, NetworkError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        status_code: Option<String>,
        #[serde(default)]
        status: Option<String>,
    }
    let a: Answer = ig
        .get(
            token,
            &format!("/{}", path_id(container)?),
            &[("fields", "status_code,status")],
        )
        .await?;
    match a.status_code.as_deref() {
        Some("IN_PROGRESS") => Ok(Status::InProgress),
        Some("FINISHED") => Ok(Status::Finished),
        Some("ERROR") => {
            tracing::warn!(container, status = ?a.status, "instagram: a container failed");
            Ok(Status::Error)
        }
        Some("EXPIRED") => Ok(Status::Expired),
        Some("PUBLISHED") => Ok(Status::Published),
        other => Err(NetworkError::unavailable(format!(
            "{PLATFORM}: container {container} has an unknown status {other:?}"
        ))),
    }
}

/// Polls `container` until it is `FINISHED` (bounded): `ERROR` is the media's refusal,
/// `EXPIRED` or still processing at the end is `Unavailable` (the retry resumes or makes a
/// new one).
async fn wait_finished(
    ig: &Instagram,
    token: &str,
    container: &str,
    budget: &mut Budget,
) -> Result<(), NetworkError> {
    loop {
        match status(ig, token, container).await? {
            Status::Finished => return Ok(()),
            Status::Error => {
                return Err(NetworkError::MediaRejected {
                    message: format!(
                        "{PLATFORM}: Instagram could not process the media of container \
                         {container}"
                    ),
                });
            }
            Status::Expired => {
                return Err(NetworkError::unavailable(format!(
                    "{PLATFORM}: container {container} expired before it was published"
                )));
            }
            Status::Published => {
                return Err(NetworkError::unavailable(format!(
                    "{PLATFORM}: container {container} was published by another attempt"
                )));
            }
            Status::InProgress => {
                if !budget.take() {
                    return Err(NetworkError::unavailable(format!(
                        "{PLATFORM}: container {container} is still processing; the retry \
                         resumes from it"
                    )));
                }
                ig.api.pause(budget.interval).await;
            }
        }
    }
}

/// The 24-hour publishing limit, before any container is made.
async fn check_quota(ig: &Instagram, token: &str, user: &str) -> Result<(), NetworkError> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        quota_total: Option<i64>,
    }
    #[derive(serde::Deserialize)]
    struct Limit {
        #[serde(default)]
        quota_usage: i64,
        #[serde(default)]
        config: Option<Config>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        data: Vec<Limit>,
    }
    let a: Answer = ig
        .get(
            token,
            &format!("/{user}/content_publishing_limit"),
            &[("fields", "config,quota_usage")],
        )
        .await?;
    let Some(limit) = a.data.first() else {
        return Ok(());
    };
    let total = limit
        .config
        .as_ref()
        .and_then(|c| c.quota_total)
        .unwrap_or(100);
    if limit.quota_usage >= total {
        tracing::info!(
            user,
            used = limit.quota_usage,
            total,
            "instagram: the account's 24-hour publishing limit is reached"
        );
        return Err(NetworkError::RateLimited {
            retry_after: Some(super::QUOTA_PAUSE),
        });
    }
    Ok(())
}

/// The form of one item's container.
fn item_form(m: &Attachment, plan: &Plan<'_>, child: bool) -> Vec<(&'static str, String)> {
    let mut form = Vec::new();
    if m.meta.is_video() {
        form.push((
            "media_type",
            if child { "VIDEO" } else { "REELS" }.to_owned(),
        ));
        form.push(("video_url", m.url.clone()));
        if let (false, Some(share)) = (child, plan.share_to_feed) {
            form.push(("share_to_feed", share.to_string()));
        }
    } else {
        form.push(("image_url", m.url.clone()));
        if let Some(alt) = m.meta.alt_text.as_deref().filter(|a| !a.trim().is_empty()) {
            form.push(("alt_text", alt.to_owned()));
        }
    }
    if child {
        form.push(("is_carousel_item", "true".to_owned()));
    } else {
        form.push(("caption", plan.caption.to_owned()));
    }
    form
}

async fn create_container(
    ig: &Instagram,
    token: &str,
    user: &str,
    form: &[(&str, String)],
) -> Result<String, NetworkError> {
    let made: Id = ig
        .post(token, &format!("/{user}/media"), form, true)
        .await?;
    path_id(&made.id)?;
    Ok(made.id)
}

/// The carousel's children: kept ones reused unless they failed or expired, the others made
/// (each kept before the next), then all polled until finished.
async fn children(
    ig: &Instagram,
    token: &str,
    user: &str,
    part: &Part<'_>,
    plan: &Plan<'_>,
    budget: &mut Budget,
) -> Result<Vec<String>, NetworkError> {
    let mut ids = Vec::with_capacity(plan.media.len());
    for (i, m) in plan.media.iter().enumerate() {
        let key = format!("child.{i}");
        let kept = match part.steps.get(&key).await? {
            Some(id) if !id.is_empty() => match status(ig, token, &id).await? {
                Status::InProgress | Status::Finished => Some(id),
                _ => None,
            },
            _ => None,
        };
        let id = match kept {
            Some(id) => id,
            None => {
                let id = create_container(ig, token, user, &item_form(m, plan, true)).await?;
                part.steps.put(&key, &id).await?;
                id
            }
        };
        ids.push(id);
    }
    for id in &ids {
        wait_finished(ig, token, id, budget).await?;
    }
    Ok(ids)
}

/// Makes the part's container (after the quota check) and keeps its id.
async fn create(
    ig: &Instagram,
    token: &str,
    user: &str,
    part: &Part<'_>,
    plan: &Plan<'_>,
    budget: &mut Budget,
) -> Result<String, NetworkError> {
    check_quota(ig, token, user).await?;
    let id = match plan.media {
        [one] => create_container(ig, token, user, &item_form(one, plan, false)).await?,
        _ => {
            let kids = children(ig, token, user, part, plan, budget).await?;
            let form = [
                ("media_type", "CAROUSEL".to_owned()),
                ("children", kids.join(",")),
                ("caption", plan.caption.to_owned()),
            ];
            create_container(ig, token, user, &form).await?
        }
    };
    part.steps.put("container", &id).await?;
    Ok(id)
}

pub(super) async fn publish(
    ig: &Instagram,
    s: Session<'_>,
    part: Part<'_>,
) -> Result<PublishedPart, NetworkError> {
    let plan = plan(&part)?;
    let token = s.credentials.access_token.as_str();
    let user = path_id(&s.account.external_id)?;
    if let Some(media) = part.steps.get("media_id").await? {
        return finish(ig, token, &part, &plan, &media).await;
    }
    let mut budget = Budget::new(ig);
    let kept = match part.steps.get("container").await? {
        Some(c) if !c.is_empty() => match status(ig, token, &c).await? {
            Status::Published => {
                let found = find_recent(ig, token, user, &part).await?;
                return match found {
                    Some(media) => {
                        part.steps.put("media_id", &media).await?;
                        finish(ig, token, &part, &plan, &media).await
                    }
                    None => Err(not_listed_yet(&c)),
                };
            }
            Status::Finished | Status::InProgress => Some(c),
            Status::Error | Status::Expired => None,
        },
        _ => None,
    };
    let container = match kept {
        Some(c) => c,
        None => create(ig, token, user, &part, &plan, &mut budget).await?,
    };
    wait_finished(ig, token, &container, &mut budget).await?;
    if part.steps.get("sent_at").await?.is_none() {
        // The first attempt's: a later look-up's window starts there.
        part.steps
            .put("sent_at", &ig.api.clock.now_ms().to_string())
            .await?;
    }
    let published: Id = ig
        .post(
            token,
            &format!("/{user}/media_publish"),
            &[("creation_id", container.clone())],
            false,
        )
        .await?;
    path_id(&published.id)?;
    part.steps.put("media_id", &published.id).await?;
    finish(ig, token, &part, &plan, &published.id).await
}

fn not_listed_yet(container: &str) -> NetworkError {
    NetworkError::unavailable(format!(
        "{PLATFORM}: container {container} is published but its media is not among the \
         account's recent media yet"
    ))
}

/// After the media exists: the first comment (once; its failure is logged, not the post's),
/// and the media's link.
async fn finish(
    ig: &Instagram,
    token: &str,
    part: &Part<'_>,
    plan: &Plan<'_>,
    media: &str,
) -> Result<PublishedPart, NetworkError> {
    let media = path_id(media)?;
    if let Some(text) = plan.first_comment
        && part.steps.get("comment").await?.is_none()
    {
        let form = [("message", text.to_owned())];
        let kept = match ig
            .post::<Id>(token, &format!("/{media}/comments"), &form, false)
            .await
        {
            Ok(c) => c.id,
            Err(e) => {
                tracing::warn!(media, error = %e, "instagram: the first comment failed; the post stands");
                "failed".to_owned()
            }
        };
        part.steps.put("comment", &kept).await?;
    }
    #[derive(serde::Deserialize)]
    struct Link {
        #[serde(default)]
        permalink: Option<String>,
    }
    let link: Link = ig
        .get(token, &format!("/{media}"), &[("fields", "permalink")])
        .await?;
    let url = link
        .permalink
        .filter(|u| u.starts_with("https://"))
        .ok_or_else(|| {
            NetworkError::unavailable(format!("{PLATFORM}: media {media} has no permalink yet"))
        })?;
    Ok(PublishedPart {
        external_id: media.to_owned(),
        url,
    })
}

/// The account's recent media whose caption is the part's, published since the kept
/// `sent_at` (less the skew): the earliest such, if any.
async fn find_recent(
    ig: &Instagram,
    token: &str,
    user: &str,
    part: &Part<'_>,
) -> Result<Option<String>, NetworkError> {
    #[derive(serde::Deserialize)]
    struct Item {
        id: String,
        #[serde(default)]
        caption: Option<String>,
        #[serde(default)]
        timestamp: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        data: Vec<Item>,
    }
    let since = match part.steps.get("sent_at").await? {
        Some(ms) => ms.parse::<i64>().ok().map(|ms| ms - LOOKUP_SKEW_MS),
        None => None,
    };
    let page: Page = ig
        .get(
            token,
            &format!("/{user}/media"),
            &[
                ("fields", "id,caption,timestamp,permalink"),
                ("limit", LOOKUP_LIMIT),
            ],
        )
        .await?;
    let want = part.text.trim();
    let found = page
        .data
        .into_iter()
        .filter(|m| m.caption.as_deref().unwrap_or("").trim() == want)
        .filter_map(|m| {
            let at = m.timestamp.as_deref().and_then(graph_time);
            match since {
                Some(since) if at.is_none_or(|at| at < since) => None,
                _ => Some((at.unwrap_or(0), m.id)),
            }
        })
        .min_by_key(|(at, _)| *at)
        .map(|(_, id)| id);
    Ok(found)
}

/// A Graph timestamp (`2026-12-02T09:30:00+0000`) as epoch ms.
pub fn graph_time(s: &str) -> Option<i64> {
    jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%z", s)
        .ok()?
        .to_timestamp()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Whether an earlier attempt published the part: the kept media id, or a kept container
/// that says `PUBLISHED` (its media found by caption and time; not found is an error, never
/// "not published"). No container, or one not published: not published. A part found is
/// finished as `publish` would finish it: its first comment, once, then its link.
pub(super) async fn lookup(
    ig: &Instagram,
    s: Session<'_>,
    part: Part<'_>,
) -> Result<Option<PublishedPart>, NetworkError> {
    let token = s.credentials.access_token.as_str();
    let user = path_id(&s.account.external_id)?;
    // The options are checked again at publish; here a bad one must not hide a post.
    let plan = plan(&part).unwrap_or(Plan {
        caption: part.text,
        media: part.media,
        first_comment: None,
        share_to_feed: None,
    });
    if let Some(media) = part.steps.get("media_id").await? {
        return finish(ig, token, &part, &plan, &media).await.map(Some);
    }
    let Some(container) = part.steps.get("container").await?.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    match status(ig, token, &container).await? {
        Status::Published => match find_recent(ig, token, user, &part).await? {
            Some(media) => {
                part.steps.put("media_id", &media).await?;
                finish(ig, token, &part, &plan, &media).await.map(Some)
            }
            None => Err(not_listed_yet(&container)),
        },
        Status::InProgress | Status::Finished | Status::Error | Status::Expired => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashtags_are_counted_at_word_starts() {
        assert_eq!(hashtags("#a #b_c #1 #"), 3);
        assert_eq!(hashtags("no#tag here, ##double #ok"), 1);
        assert_eq!(hashtags(&"#x ".repeat(31)), 31);
        assert_eq!(hashtags("Ünï #çà"), 1);
    }

    #[test]
    fn graph_timestamps_are_read() {
        assert_eq!(graph_time("1970-01-01T00:00:01+0000"), Some(1000));
        assert_eq!(
            graph_time("2026-12-02T09:30:00+0100"),
            Some(1_796_200_200_000)
        );
        assert_eq!(graph_time("yesterday"), None);
    }

    #[test]
    fn ids_are_checked_before_they_go_in_a_path() {
        assert!(path_id("17895695668004550").is_ok());
        assert!(path_id("../me").is_err());
        assert!(path_id("").is_err());
    }
}
