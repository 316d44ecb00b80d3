//! Finding a part an earlier attempt published (X takes no idempotency key).
//!
//! Before the create call the connector keeps `sent_at` (the clock's ms, the first attempt's)
//! in the part's steps. A look-up lists the account's tweets since `sent_at` minus a skew
//! (`GET /2/users/{id}/tweets`, `start_time`, `tweet.fields=created_at,text,
//! in_reply_to_user_id,referenced_tweets,entities`, newest first, at most [`MAX_PAGES`] pages
//! of 100) and matches the text exactly as X renders it back — `&amp;`/`&lt;`/`&gt;`
//! unescaped, each `t.co` link replaced by its `expanded_url`, the media link X appends
//! removed — and, for a thread's part, the tweet it replies to; a part with media must also
//! carry the media ids kept in the steps (`attachments.media_keys` are `{type}_{media id}`), so
//! two posts of media alone are never taken for each other. No `sent_at`: the create call
//! never went out, so the part is certainly not published. More pages than we read: we cannot
//! tell, which is an error, never "not found". No match within [`LAG_MS`] of `sent_at` (by the
//! connector's clock) is an error too: X's timeline lags behind a create, and it rewrites text
//! (a bare domain becomes a `t.co` link) so a match may be missed; only after that is a miss
//! "not found".

use super::call::call;
use super::{API, X};
use crate::{NetworkError, Part, PublishedPart, Session};

/// Clock skew allowed between us and X.
pub const SKEW_MS: i64 = 5 * 60 * 1000;
/// Pages of 100 tweets read at most in one look-up.
pub const MAX_PAGES: usize = 5;
/// How long after `sent_at` a miss is still "cannot tell" (the timeline's lag).
pub const LAG_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, serde::Deserialize)]
struct Timeline {
    #[serde(default)]
    data: Vec<Tweet>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Meta {
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct Tweet {
    pub id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    referenced_tweets: Vec<Reference>,
    #[serde(default)]
    entities: Option<Entities>,
    #[serde(default)]
    attachments: Option<Attachments>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Attachments {
    #[serde(default)]
    media_keys: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Entities {
    #[serde(default)]
    urls: Vec<UrlEntity>,
}

#[derive(Debug, serde::Deserialize)]
struct UrlEntity {
    #[serde(default)]
    url: String,
    #[serde(default)]
    expanded_url: Option<String>,
    /// Set on the link X appends for attached media.
    #[serde(default)]
    media_key: Option<String>,
}

impl Tweet {
    /// The text as it was sent: entities unescaped, links expanded, the media link removed.
    pub(super) fn original_text(&self) -> String {
        let mut text = self
            .text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        if let Some(e) = &self.entities {
            for u in e.urls.iter().filter(|u| u.url.starts_with("https://t.co/")) {
                let with = match (&u.media_key, &u.expanded_url) {
                    (Some(_), _) => "",
                    (None, Some(expanded)) => expanded.as_str(),
                    (None, None) => continue,
                };
                text = text.replace(&u.url, with);
            }
        }
        text.trim().to_owned()
    }

    fn replies_to(&self) -> Option<&str> {
        self.referenced_tweets
            .iter()
            .find(|r| r.kind == "replied_to")
            .map(|r| r.id.as_str())
    }

    /// The media ids of its attachments (`3_123` → `123`), in order.
    fn media_ids(&self) -> Vec<&str> {
        self.attachments
            .iter()
            .flat_map(|a| a.media_keys.iter())
            .map(|k| k.split_once('_').map_or(k.as_str(), |(_, id)| id))
            .collect()
    }
}

/// Whether `tweet` is `part` as we sent it, with `media` (the ids kept in its steps).
fn matches(tweet: &Tweet, part: &Part<'_>, media: &[String]) -> bool {
    tweet.original_text() == part.text.trim()
        && tweet.replies_to() == part.thread.last().map(String::as_str)
        && (media.is_empty() || tweet.media_ids() == media)
}

impl X {
    /// The look-up of a part whose create call went out at `sent_at`: a miss of a part of
    /// media alone is an error until [`LAG_MS`] after it (see the module doc).
    pub(super) async fn find_sent(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        sent_at: i64,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        if let Some(found) = self.find(s, part, sent_at).await? {
            return Ok(Some(found));
        }
        // A part with text has a second guard: X refuses the same text from the same account
        // again as duplicate content, and `publish` resolves that refusal by this look-up, so
        // a retry after a miss cannot post it twice. A part of media alone has none: its miss
        // is "cannot tell" until the timeline has had time to catch up.
        if !part.text.trim().is_empty() {
            return Ok(None);
        }
        let wait = sent_at.saturating_add(LAG_MS) - self.api.clock.now_ms();
        if wait > 0 {
            return Err(NetworkError::Unavailable {
                message: "x: the part is not in the account's timeline yet; X's timeline lags, \
                          so it cannot be told until 15 minutes after it was sent"
                    .into(),
                retry_after: Some(std::time::Duration::from_millis(wait.min(LAG_MS) as u64)),
            });
        }
        Ok(None)
    }

    /// The part among the account's tweets since `sent_at` (see the module doc).
    pub(super) async fn find(
        &self,
        s: &Session<'_>,
        part: &Part<'_>,
        sent_at: i64,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let since = jiff::Timestamp::from_millisecond(sent_at.saturating_sub(SKEW_MS))
            .map_err(|e| NetworkError::rejected(format!("x: a send time out of range: {e}")))?;
        // Whole seconds: X takes `YYYY-MM-DDTHH:mm:ssZ`.
        let since = jiff::Timestamp::from_second(since.as_second())
            .map_err(|e| NetworkError::rejected(format!("x: a send time out of range: {e}")))?;
        let user = super::id_segment(&s.account.external_id)?;
        let media = self.kept_media_ids(part).await?;
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.api.url(API, &format!("/2/users/{user}/tweets"));
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("start_time", &since.to_string())
                    .append_pair("max_results", "100")
                    .append_pair(
                        "tweet.fields",
                        "created_at,text,in_reply_to_user_id,referenced_tweets,entities,attachments",
                    );
                if let Some(t) = &token {
                    q.append_pair("pagination_token", t);
                }
            }
            let answer = call(&self.api, self.authed(s, self.api.http.get(url))).await?;
            if !answer.is_success() {
                return Err(answer.error(&self.api, "timeline", false));
            }
            let page: Timeline = answer.json(&self.api)?;
            if let Some(t) = page.data.iter().find(|t| matches(t, part, &media)) {
                return self.published(s, &t.id).map(Some);
            }
            match page.meta.next_token.filter(|t| !t.is_empty()) {
                None => return Ok(None),
                next => token = next,
            }
        }
        Err(NetworkError::unavailable(format!(
            "x: more than {} tweets since the part was sent; cannot tell whether it was published",
            MAX_PAGES * 100
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_read_back_as_it_was_sent() {
        let t: Tweet = serde_json::from_value(serde_json::json!({
            "id": "1",
            "text": "a &amp; b &lt;3 https://t.co/abc https://t.co/pic",
            "entities": {"urls": [
                {"start": 13, "end": 36, "url": "https://t.co/abc", "expanded_url": "https://example.com/x"},
                {"start": 37, "end": 60, "url": "https://t.co/pic", "expanded_url": "https://x.com/u/status/1/photo/1", "media_key": "3_1"}
            ]}
        }))
        .unwrap();
        assert_eq!(t.original_text(), "a & b <3 https://example.com/x");
    }
}
