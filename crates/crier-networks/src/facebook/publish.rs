//! Publishing one part to a Page, and finding it again after a lost answer (see the module
//! documentation of [`super`] for the calls and the exactly-once strategy).

use crate::hosted::SENT_AT;
use crate::{Attachment, NetworkError, Part, PublishedPart};

use super::api::{List, WWW};
use super::{Facebook, MAX_PHOTOS, RULES};

/// Clock skew allowed between us and Facebook when matching posts in a look-up.
const LOOKUP_SKEW_S: i64 = 5 * 60;
/// The most `published_posts` pages (of 100 posts) read in one look-up.
const LOOKUP_MAX_PAGES: usize = 3;
/// How long after its latest create call a video's miss is still "cannot tell" at least:
/// `published_posts` shows a video only once it is processed.
pub const VIDEO_LAG_MS: i64 = 15 * 60 * 1000;

/// `{"id": …}`, with `post_id` when a published photo made a post.
#[derive(Debug, serde::Deserialize)]
struct Created {
    id: String,
    #[serde(default)]
    post_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Listed {
    id: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    created_time: Option<String>,
}

fn published(id: &str) -> Result<PublishedPart, NetworkError> {
    let id = super::api::id_segment(id)
        .map_err(|_| NetworkError::unavailable("facebook: a post id that is not a Graph id"))?;
    Ok(PublishedPart {
        external_id: id.to_owned(),
        url: format!("{WWW}/{id}"),
    })
}

/// What the part's media make of it.
enum Shape<'a> {
    Text,
    Photo(&'a Attachment),
    Photos(&'a [Attachment]),
    Video(&'a Attachment),
}

/// The part's shape, or why Facebook would refuse its media (checked before any call).
fn shape<'a>(media: &'a [Attachment]) -> Result<Shape<'a>, NetworkError> {
    let refuse = |m: String| Err(NetworkError::MediaRejected { message: m });
    let videos = media.iter().filter(|m| m.meta.is_video()).count();
    if media.len() > MAX_PHOTOS {
        return refuse(format!(
            "facebook: {} media; a post takes at most {MAX_PHOTOS} photos",
            media.len()
        ));
    }
    if videos > 0 && media.len() > 1 {
        return refuse("facebook: a post takes one video, or photos, not both".into());
    }
    for m in media {
        let types = if m.meta.is_video() {
            &RULES.media.video_types
        } else {
            &RULES.media.image_types
        };
        if !types.contains(&m.meta.content_type) {
            return refuse(format!(
                "facebook: {} is {}, which Facebook does not take",
                m.meta.id, m.meta.content_type
            ));
        }
    }
    Ok(match media {
        [] => Shape::Text,
        [one] if one.meta.is_video() => Shape::Video(one),
        [one] => Shape::Photo(one),
        many => Shape::Photos(many),
    })
}

/// The multipart `source` of an attachment.
fn source(m: &Attachment) -> Result<reqwest::multipart::Part, NetworkError> {
    let name: String = m
        .meta
        .filename
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(100)
        .collect();
    reqwest::multipart::Part::bytes(m.bytes.to_vec())
        .file_name(if name.is_empty() {
            "media".into()
        } else {
            name
        })
        .mime_str(&m.meta.content_type)
        .map_err(|_| NetworkError::MediaRejected {
            message: format!("facebook: {} has no valid content type", m.meta.id),
        })
}

impl Facebook {
    pub(super) async fn publish_part(
        &self,
        page: &str,
        token: &str,
        part: Part<'_>,
    ) -> Result<PublishedPart, NetworkError> {
        if !part.thread.is_empty() {
            return Err(NetworkError::rejected(
                "facebook: a Page post has no thread (comments are not posts)",
            ));
        }
        match shape(part.media)? {
            Shape::Text => {
                let mut form = vec![("message".to_owned(), part.text.to_owned())];
                if let Some(link) = link(&part)? {
                    form.push(("link".to_owned(), link));
                }
                self.feed(page, token, part, form).await
            }
            Shape::Photo(m) => {
                let form = reqwest::multipart::Form::new()
                    .part("source", source(m)?)
                    .text("caption", part.text.to_owned())
                    .text("published", "true");
                self.sent(&part).await?;
                let c: Created = self
                    .graph
                    .post_multipart(self.graph.url(&format!("/{page}/photos")), token, form)
                    .await?;
                published(&c.post_id.unwrap_or_else(|| format!("{page}_{}", c.id)))
            }
            Shape::Photos(many) => {
                let mut form = vec![("message".to_owned(), part.text.to_owned())];
                for (i, m) in many.iter().enumerate() {
                    let id = self.unpublished_photo(page, token, &part, i, m).await?;
                    form.push((
                        format!("attached_media[{i}]"),
                        serde_json::json!({ "media_fbid": id }).to_string(),
                    ));
                }
                self.feed(page, token, part, form).await
            }
            Shape::Video(m) => {
                let form = reqwest::multipart::Form::new()
                    .part("source", source(m)?)
                    .text("description", part.text.to_owned());
                self.sent(&part).await?;
                let c: Created = self
                    .graph
                    .post_multipart(
                        self.graph.video_url(&format!("/{page}/videos")),
                        token,
                        form,
                    )
                    .await?;
                published(&c.post_id.unwrap_or_else(|| format!("{page}_{}", c.id)))
            }
        }
    }

    /// `POST /{page}/feed`, after `sent_at` is kept.
    async fn feed(
        &self,
        page: &str,
        token: &str,
        part: Part<'_>,
        form: Vec<(String, String)>,
    ) -> Result<PublishedPart, NetworkError> {
        self.sent(&part).await?;
        let c: Created = self
            .graph
            .post_form(self.graph.url(&format!("/{page}/feed")), token, &form)
            .await?;
        published(&c.id)
    }

    /// Keeps when the create call goes out (`sent_at` the first time, `last_sent_at` after):
    /// from then on a look-up must list the Page's posts, and may say "not published" only
    /// once Graph has had time to finish the latest call ([`crate::hosted::Api::missed`]).
    async fn sent(&self, part: &Part<'_>) -> Result<(), NetworkError> {
        let first = part.steps.get(SENT_AT).await?.is_none();
        self.graph.api.sending(part.steps, first).await
    }

    /// The id of photo `i` uploaded unpublished: the one an earlier attempt kept, or a new
    /// upload whose id is kept before anything else happens.
    async fn unpublished_photo(
        &self,
        page: &str,
        token: &str,
        part: &Part<'_>,
        i: usize,
        m: &Attachment,
    ) -> Result<String, NetworkError> {
        let key = format!("photo.{i}");
        if let Some(id) = part.steps.get(&key).await? {
            return Ok(id);
        }
        let form = reqwest::multipart::Form::new()
            .part("source", source(m)?)
            .text("published", "false");
        let c: Created = self
            .graph
            .post_multipart(self.graph.url(&format!("/{page}/photos")), token, form)
            .await?;
        let id = super::api::id_segment(&c.id).map_err(|_| {
            NetworkError::unavailable("facebook: a photo id that is not a Graph id")
        })?;
        part.steps.put(&key, id).await?;
        Ok(id.to_owned())
    }

    /// The part, if an earlier attempt's create call made it (see the module documentation).
    pub(super) async fn find(
        &self,
        page: &str,
        token: &str,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let Some(sent_at) = part.steps.get(SENT_AT).await? else {
            // No create call ever went out.
            return Ok(None);
        };
        let sent_at: i64 = sent_at
            .parse()
            .map_err(|_| NetworkError::unavailable("facebook: a kept `sent_at` is not a time"))?;
        let since = sent_at.div_euclid(1000) - LOOKUP_SKEW_S;
        let mut url = self.graph.url(&format!("/{page}/published_posts"));
        url.query_pairs_mut()
            .append_pair("fields", "id,message,created_time")
            .append_pair("since", &since.to_string())
            .append_pair("limit", "100");
        let want = part.text.trim();
        for _ in 0..LOOKUP_MAX_PAGES {
            let list: List<Listed> = self.graph.get(url, token).await?;
            let hit = list.data.iter().find(|p| {
                p.message.as_deref().unwrap_or("").trim() == want
                    && p.created_time
                        .as_deref()
                        .and_then(epoch_seconds)
                        .is_none_or(|t| t >= since)
            });
            if let Some(p) = hit {
                return published(&p.id).map(Some);
            }
            let Some(next) = list.next().filter(|n| !n.is_empty()) else {
                return self.missed(&part).await;
            };
            // Pages left unread: a refused `next` is "cannot tell", never "not published".
            url = self.graph.next_page(next).ok_or_else(|| {
                NetworkError::unavailable(
                    "facebook: the Page's posts go on at a `next` page that is not a Graph URL; \
                     cannot tell whether the part was published",
                )
            })?;
        }
        Err(NetworkError::unavailable(
            "facebook: too many posts since the attempt to tell whether it was published",
        ))
    }

    /// Every post since `sent_at` read and none is the part: not published, once Graph has
    /// had time to finish the latest create call ([`crate::hosted::Api::missed`]): a call
    /// that timed out or was answered 5xx may still be making the post. A video is listed
    /// only once it is processed, so its miss waits at least [`VIDEO_LAG_MS`].
    async fn missed(&self, part: &Part<'_>) -> Result<Option<PublishedPart>, NetworkError> {
        let api = &self.graph.api;
        let settle = match shape(part.media) {
            Ok(Shape::Video(_)) => api
                .settle()
                .max(std::time::Duration::from_millis(VIDEO_LAG_MS as u64)),
            _ => api.settle(),
        };
        api.missed(part.steps, settle).await
    }
}

/// The `link` option: an http(s) URL.
fn link(part: &Part<'_>) -> Result<Option<String>, NetworkError> {
    let Some(v) = part.options.options.get("link") else {
        return Ok(None);
    };
    let s = v
        .as_str()
        .ok_or_else(|| NetworkError::rejected("facebook: the `link` option must be a URL"))?;
    match url::Url::parse(s.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && s.len() <= super::MAX_LINK => {
            Ok(Some(u.to_string()))
        }
        _ => Err(NetworkError::rejected(
            "facebook: the `link` option must be an http(s) URL of at most 2048 characters",
        )),
    }
}

/// Graph's `created_time` (`2026-12-02T09:21:07+0000`) as epoch seconds.
fn epoch_seconds(s: &str) -> Option<i64> {
    jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%z", s)
        .ok()
        .map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    #[test]
    fn graph_times_parse() {
        assert_eq!(super::epoch_seconds("1970-01-01T00:01:40+0000"), Some(100));
        assert_eq!(super::epoch_seconds("yesterday"), None);
    }
}
