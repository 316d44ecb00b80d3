//! Publishing one part through media containers, resuming from the ids kept in the part's
//! steps, and finding a part an earlier attempt published (see the module above for the
//! strategy).

use std::time::Duration;

use crate::hosted::Api;
use crate::{Attachment, NetworkError, Part, PublishedPart, Session};

use super::api::{self, Kind, seg};

/// The container to publish (the carousel's, for several media).
const CONTAINER: &str = "container";
/// When `threads_publish` was called (epoch ms): the look-up's time window starts here.
const SENT_AT: &str = "sent_at";
/// The published media id.
const MEDIA_ID: &str = "media_id";
/// The most polls of one container, whatever the configured times.
const MAX_POLLS: u32 = 60;
/// Clock skew allowed between us and Threads when matching posts by time.
const SKEW_MS: i64 = 5 * 60 * 1000;
/// Pages of the account's posts read at most in one look-up.
const MAX_PAGES: usize = 5;
/// The pause when the publishing quota is used up (the window moves; the API does not say
/// when the oldest post leaves it).
const QUOTA_PAUSE: Duration = Duration::from_secs(3600);

/// A container's state, as `GET /{container-id}?fields=status` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    InProgress,
    Finished,
    Published,
    Error(String),
    Expired,
}

struct Ctx<'a> {
    api: &'a Api,
    token: &'a str,
    user: &'a str,
}

fn ctx<'a>(api: &'a Api, s: &Session<'a>) -> Result<Ctx<'a>, NetworkError> {
    Ok(Ctx {
        api,
        token: &s.credentials.access_token,
        user: super::user(s.account)?,
    })
}

fn child_step(i: usize) -> String {
    format!("child.{i}")
}

/// Publishes `part`, resuming from what earlier attempts kept.
pub async fn publish(
    api: &Api,
    s: Session<'_>,
    part: Part<'_>,
) -> Result<PublishedPart, NetworkError> {
    check(&part)?;
    let c = ctx(api, &s)?;
    if let Some(id) = part.steps.get(MEDIA_ID).await? {
        return published(&c, &id).await;
    }
    let kept = match part.steps.get(CONTAINER).await? {
        Some(id) => match status(&c, &id).await? {
            Some(Status::Finished) => Some(id),
            Some(Status::InProgress) => {
                wait(&c, &id).await?;
                Some(id)
            }
            Some(Status::Published) => {
                // An earlier publish landed and its answer was lost.
                return find(&c, &part).await?.ok_or_else(|| {
                    NetworkError::unavailable(format!(
                        "threads: container {id} is published but its post is not listed yet"
                    ))
                });
            }
            // Failed or expired (24 hours), or unknown: a new container.
            Some(Status::Error(_) | Status::Expired) | None => None,
        },
        None => None,
    };
    check_quota(&c, &part).await?;
    let container = match kept {
        Some(id) => id,
        None => create(&c, &part).await?,
    };
    if part.steps.get(SENT_AT).await?.is_none() {
        // The first attempt's: a later look-up's window starts there.
        part.steps
            .put(SENT_AT, &c.api.clock.now_ms().to_string())
            .await?;
    }
    let done: api::Id = api::post(
        c.api,
        c.token,
        &format!("/{}/threads_publish", seg(c.user)?),
        &[("creation_id", &container)],
        Kind::Plain,
    )
    .await?;
    if done.id.is_empty() {
        return Err(NetworkError::unavailable(
            "threads: threads_publish answered without a media id",
        ));
    }
    part.steps.put(MEDIA_ID, &done.id).await?;
    published(&c, &done.id).await
}

/// Finds `part` if an earlier attempt published it: `None` only when no container of it was
/// ever published.
pub async fn lookup(
    api: &Api,
    s: Session<'_>,
    part: Part<'_>,
) -> Result<Option<PublishedPart>, NetworkError> {
    let c = ctx(api, &s)?;
    if let Some(id) = part.steps.get(MEDIA_ID).await? {
        return published(&c, &id).await.map(Some);
    }
    let Some(container) = part.steps.get(CONTAINER).await? else {
        // No container was kept, so none could have been published.
        return Ok(None);
    };
    match status(&c, &container).await? {
        Some(Status::Published) => match find(&c, &part).await? {
            Some(found) => Ok(Some(found)),
            None => Err(NetworkError::unavailable(format!(
                "threads: container {container} is published but its post is not listed yet"
            ))),
        },
        Some(_) => Ok(None),
        // Threads no longer knows the container: the account's posts tell.
        None if part.steps.get(SENT_AT).await?.is_some() => find(&c, &part).await,
        None => Ok(None),
    }
}

/// What Threads would refuse of the text, refused before anything is sent.
fn check(part: &Part<'_>) -> Result<(), NetworkError> {
    let n = super::length(part.text);
    if n > super::MAX_LENGTH {
        return Err(NetworkError::rejected(format!(
            "threads: the text is {n} characters as Threads counts them (an emoji counts its \
             UTF-8 bytes); the limit is {}",
            super::MAX_LENGTH
        )));
    }
    if part.media.len() > super::MAX_CAROUSEL {
        return Err(NetworkError::MediaRejected {
            message: format!(
                "threads: a carousel takes at most {} items",
                super::MAX_CAROUSEL
            ),
        });
    }
    if part.text.trim().is_empty() && part.media.is_empty() {
        return Err(NetworkError::rejected(
            "threads: a post needs text or media",
        ));
    }
    Ok(())
}

/// Refuses at the profile's publishing quota (250 posts, 1,000 replies in 24 hours).
async fn check_quota(c: &Ctx<'_>, part: &Part<'_>) -> Result<(), NetworkError> {
    let page: api::Page<api::Quota> = api::get(
        c.api,
        c.token,
        &format!("/{}/threads_publishing_limit", seg(c.user)?),
        &[(
            "fields",
            "quota_usage,config,reply_quota_usage,reply_config",
        )],
        Kind::Plain,
    )
    .await?;
    let Some(q) = page.data.first() else {
        return Ok(());
    };
    let (used, config) = if part.thread.is_empty() {
        (q.quota_usage, q.config)
    } else {
        (q.reply_quota_usage, q.reply_config)
    };
    match config {
        Some(cfg) if cfg.quota_total > 0 && used >= cfg.quota_total => {
            let window = Duration::from_secs(cfg.quota_duration.clamp(60, 86_400) as u64);
            tracing::info!(
                used,
                total = cfg.quota_total,
                "threads: publishing quota used up"
            );
            Err(NetworkError::RateLimited {
                retry_after: Some(QUOTA_PAUSE.min(window)),
            })
        }
        _ => Ok(()),
    }
}

/// The part's fields every container of it carries.
fn common<'a>(part: &Part<'a>) -> Vec<(&'static str, &'a str)> {
    let mut pairs = Vec::new();
    if !part.text.is_empty() {
        pairs.push(("text", part.text));
    }
    if let Some(last) = part.thread.last() {
        pairs.push(("reply_to_id", last.as_str()));
    }
    if let Some(rc) = part
        .options
        .options
        .get("reply_control")
        .and_then(serde_json::Value::as_str)
    {
        pairs.push(("reply_control", rc));
    }
    pairs
}

/// The media fields of one attachment: its type, its URL and its alt text.
fn media_fields(a: &Attachment) -> Result<Vec<(&'static str, &str)>, NetworkError> {
    if a.url.is_empty() {
        return Err(NetworkError::MediaRejected {
            message: format!(
                "threads: {} has no public URL for Threads to fetch (the media store has none)",
                a.meta.id
            ),
        });
    }
    let mut pairs = if a.meta.is_video() {
        vec![("media_type", "VIDEO"), ("video_url", a.url.as_str())]
    } else {
        vec![("media_type", "IMAGE"), ("image_url", a.url.as_str())]
    };
    if let Some(alt) = a.meta.alt_text.as_deref().filter(|t| !t.trim().is_empty()) {
        pairs.push(("alt_text", alt));
    }
    Ok(pairs)
}

/// Creates the part's container (its children first, for a carousel), keeps its id, and
/// waits until it can be published.
async fn create(c: &Ctx<'_>, part: &Part<'_>) -> Result<String, NetworkError> {
    let mut pairs = common(part);
    let kind = match part.media {
        [] => {
            pairs.push(("media_type", "TEXT"));
            Kind::Plain
        }
        [one] => {
            pairs.extend(media_fields(one)?);
            Kind::Media
        }
        many => {
            let children = carousel_children(c, part, many).await?;
            let joined = children.join(",");
            pairs.push(("media_type", "CAROUSEL"));
            let id = container(c, part, &[pairs, vec![("children", &joined)]].concat()).await?;
            wait(c, &id).await?;
            return Ok(id);
        }
    };
    let id = container(c, part, &pairs).await?;
    if kind == Kind::Media {
        wait(c, &id).await?;
    }
    Ok(id)
}

/// `POST /{user-id}/threads`; the id is kept as the part's container.
async fn container(
    c: &Ctx<'_>,
    part: &Part<'_>,
    pairs: &[(&str, &str)],
) -> Result<String, NetworkError> {
    let kind = if pairs
        .iter()
        .any(|(k, v)| *k == "media_type" && *v != "TEXT")
    {
        Kind::Media
    } else {
        Kind::Plain
    };
    let made: api::Id = api::post(
        c.api,
        c.token,
        &format!("/{}/threads", seg(c.user)?),
        pairs,
        kind,
    )
    .await?;
    if made.id.is_empty() {
        return Err(NetworkError::unavailable(
            "threads: the container was created without an id",
        ));
    }
    part.steps.put(CONTAINER, &made.id).await?;
    Ok(made.id)
}

/// Each carousel item's container: the kept one when it is still usable, else a new one;
/// each waited for.
async fn carousel_children(
    c: &Ctx<'_>,
    part: &Part<'_>,
    media: &[Attachment],
) -> Result<Vec<String>, NetworkError> {
    let mut ids = Vec::with_capacity(media.len());
    for (i, a) in media.iter().enumerate() {
        let step = child_step(i);
        let reusable = match part.steps.get(&step).await? {
            Some(id) => matches!(
                status(c, &id).await?,
                Some(Status::Finished | Status::InProgress)
            )
            .then_some(id),
            None => None,
        };
        let id = match reusable {
            Some(id) => id,
            None => {
                let mut pairs = media_fields(a)?;
                pairs.push(("is_carousel_item", "true"));
                let made: api::Id = api::post(
                    c.api,
                    c.token,
                    &format!("/{}/threads", seg(c.user)?),
                    &pairs,
                    Kind::Media,
                )
                .await?;
                if made.id.is_empty() {
                    return Err(NetworkError::unavailable(
                        "threads: a carousel item was created without an id",
                    ));
                }
                part.steps.put(&step, &made.id).await?;
                made.id
            }
        };
        ids.push(id);
    }
    for id in &ids {
        wait(c, id).await?;
    }
    Ok(ids)
}

/// A container's status; `None` when Threads does not know it (any more).
async fn status(c: &Ctx<'_>, id: &str) -> Result<Option<Status>, NetworkError> {
    // "Object does not exist" (code 100, subcode 33): a container that is gone. Any other
    // refusal is not that, and is answered as it is.
    let Some(s) = api::get_existing::<api::ContainerStatus>(
        c.api,
        c.token,
        &format!("/{}", seg(id)?),
        &[("fields", "status,error_message")],
        Kind::Plain,
    )
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(match s.status.as_str() {
        "IN_PROGRESS" => Status::InProgress,
        "FINISHED" => Status::Finished,
        "PUBLISHED" => Status::Published,
        "EXPIRED" => Status::Expired,
        "ERROR" => Status::Error(s.error_message.unwrap_or_else(|| "UNKNOWN".into())),
        other => {
            return Err(NetworkError::unavailable(format!(
                "threads: container {id} has a status Threads does not document: {}",
                crate::hosted::short(other)
            )));
        }
    }))
}

/// Polls a container until it is FINISHED, bounded by `poll_max` and [`MAX_POLLS`]. ERROR is
/// the media's refusal; still processing at the end is `Unavailable` (the retry resumes from
/// the kept id).
async fn wait(c: &Ctx<'_>, id: &str) -> Result<(), NetworkError> {
    let started = tokio::time::Instant::now();
    let config = &c.api.config;
    for _ in 0..MAX_POLLS {
        match status(c, id).await? {
            Some(Status::Finished | Status::Published) => return Ok(()),
            Some(Status::Error(why)) => {
                return Err(NetworkError::MediaRejected {
                    message: format!(
                        "threads: container {id} failed: {}",
                        crate::hosted::short(&why)
                    ),
                });
            }
            Some(Status::Expired) => {
                return Err(NetworkError::unavailable(format!(
                    "threads: container {id} expired before it was published"
                )));
            }
            None => {
                return Err(NetworkError::unavailable(format!(
                    "threads: container {id} is not known to Threads"
                )));
            }
            Some(Status::InProgress) => {}
        }
        if started.elapsed() + config.poll_interval > config.poll_max {
            break;
        }
        c.api.pause(config.poll_interval).await;
    }
    Err(NetworkError::unavailable(format!(
        "threads: container {id} is still being processed after {} ms",
        started.elapsed().as_millis()
    )))
}

/// The part as published: its media id and permalink.
async fn published(c: &Ctx<'_>, media_id: &str) -> Result<PublishedPart, NetworkError> {
    let m: api::Media = api::get(
        c.api,
        c.token,
        &format!("/{}", seg(media_id)?),
        &[("fields", "id,permalink")],
        Kind::Plain,
    )
    .await?;
    let url = m
        .permalink
        .filter(|p| p.starts_with("https://"))
        .ok_or_else(|| {
            NetworkError::unavailable(format!("threads: post {media_id} has no permalink yet"))
        })?;
    Ok(PublishedPart {
        external_id: media_id.to_owned(),
        url,
    })
}

/// The account's post (or, for a thread's later part, its reply to the part before) with
/// this part's text, published since `sent_at`; `None` when every post of the window was
/// read and none matches, an error when the window was too long to read.
async fn find(c: &Ctx<'_>, part: &Part<'_>) -> Result<Option<PublishedPart>, NetworkError> {
    let now = c.api.clock.now_ms();
    let sent_at = part
        .steps
        .get(SENT_AT)
        .await?
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(now - 86_400_000);
    let from = sent_at - SKEW_MS;
    let since = (from.div_euclid(1000)).to_string();
    let (path, fields) = match part.thread.last() {
        Some(_) => (
            format!("/{}/replies", seg(c.user)?),
            "id,text,timestamp,permalink,replied_to",
        ),
        None => (
            format!("/{}/threads", seg(c.user)?),
            "id,text,timestamp,permalink",
        ),
    };
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = vec![
            ("fields", fields),
            ("since", since.as_str()),
            ("limit", "100"),
        ];
        if let Some(a) = &after {
            query.push(("after", a.as_str()));
        }
        let page: api::Page<api::Media> =
            api::get(c.api, c.token, &path, &query, Kind::Plain).await?;
        if let Some(m) = page.data.iter().find(|m| matches(m, part, from)) {
            let url = match m.permalink.clone().filter(|p| p.starts_with("https://")) {
                Some(u) => u,
                None => return published(c, &m.id).await.map(Some),
            };
            return Ok(Some(PublishedPart {
                external_id: m.id.clone(),
                url,
            }));
        }
        let next = page
            .paging
            .filter(|p| p.next.is_some())
            .and_then(|p| p.cursors)
            .and_then(|c| c.after);
        match next {
            Some(a) if !page.data.is_empty() => after = Some(a),
            _ => return Ok(None),
        }
    }
    Err(NetworkError::unavailable(
        "threads: too many posts since the attempt to tell whether it was published",
    ))
}

/// Whether `m` is this part: the same text, at or after `from`, replying to the part before.
fn matches(m: &api::Media, part: &Part<'_>, from: i64) -> bool {
    if m.id.is_empty() || m.text.as_deref().unwrap_or("").trim() != part.text.trim() {
        return false;
    }
    if m.timestamp
        .as_deref()
        .and_then(api::timestamp_ms)
        .is_some_and(|t| t < from)
    {
        return false;
    }
    match part.thread.last() {
        Some(parent) => m.replied_to.as_ref().is_some_and(|r| &r.id == parent),
        None => true,
    }
}
