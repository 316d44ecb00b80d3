//! Facebook Pages through the Graph API (`https://graph.facebook.com/v21.0`).
//!
//! References (developers.facebook.com):
//! - Facebook Login, manual flow: /docs/facebook-login/guides/advanced/manual-flow
//! - Long-lived tokens and Page tokens: /docs/facebook-login/guides/access-tokens/get-long-lived
//! - Pages API, posts: /docs/pages-api/posts; `/{page-id}/feed`:
//!   /docs/graph-api/reference/page/feed; `/{page-id}/photos`:
//!   /docs/graph-api/reference/page/photos; `/{page-id}/videos`:
//!   /docs/graph-api/reference/page/videos and /docs/video-api/guides/publishing
//! - Errors: /docs/graph-api/guides/error-handling; rate limits and usage headers:
//!   /docs/graph-api/overview/rate-limiting (see [`crate::graph`])
//! - Reactions and comments summaries: /docs/graph-api/reference/post
//! - A Page's `followers_count` and `fan_count`: /docs/graph-api/reference/page
//!
//! Connecting ([`connect`]): one approval connects every Page the person manages, one account
//! per Page ([`Network::exchange_code_all`]; [`Network::exchange_code`] answers the first).
//! Its credentials are the Page token, which does not expire: no refresh ([`Network::refresh`]
//! only checks that it still works), no PKCE.
//!
//! Publishing one part as the Page, with its token:
//! - text (and a link preview from the `link` option): `POST /{page}/feed` (`message`, `link`);
//! - one image: `POST /{page}/photos`, multipart `source` with the bytes, `caption`;
//! - several images: each `POST /{page}/photos?published=false` (its id kept in the part's steps
//!   before the next), then `POST /{page}/feed` with `attached_media[i]={"media_fbid":…}`;
//! - one video: `POST graph-video…/{page}/videos`, multipart `source`, `description`. The
//!   non-resumable upload only: its limits (1 GB, 20 minutes) are the rules'; the resumable
//!   upload (to 10 GB, 240 minutes) is not implemented.
//!
//! The post's id is `{page-id}_{post-id}` (a video's, `{page-id}_{video-id}`), its URL
//! `https://www.facebook.com/{page-id}_{post-id}`.
//!
//! Exactly once: Graph takes no idempotency key. The ids of unpublished photos are kept in
//! the part's steps as each is uploaded (`photo.{i}`), so a retry attaches the same photos;
//! `sent_at` (ms) is kept before the first call that creates the post, `last_sent_at` before
//! each later one. [`Network::lookup`] answers "not published" only when no create call ever
//! went out (no `sent_at`); otherwise it lists the Page's `published_posts` since `sent_at`
//! (minus clock skew) and matches the text; a failure to list is an error, never "not
//! published". A miss is "not published" only once Graph has had time to finish the latest
//! create call (a timeout or a 5xx may still land): until [`crate::hosted::SETTLE`] plus the
//! call timeout after it (by the connector's clock), and at least 15 minutes for a video, which
//! is listed only once processed, it is an error ("cannot tell yet", with the time left as
//! `retry_after`), whatever the part's shape.
//!
//! Usage: every answer's `X-App-Usage` / `X-Page-Usage` / `X-Business-Use-Case-Usage` is read;
//! above 80 % of a quota the next call waits first ([`crate::graph::slow_down`], at most 5 s).
//! A throttle (codes 4, 17, 32, 613, 80001…) is `RateLimited` with the headers'
//! `estimated_time_to_regain_access`.
//!
//! Not supported: threads (comments are not a thread of posts), images and a video in one
//! post (Graph makes them separate posts), alt text (Graph's `alt_text_custom` has no
//! documented limit), revoking the grant on disconnect (see [`Network::revoke`]), and
//! impressions (Page insights need `read_insights`; metrics read reactions, comments and
//! shares).

mod api;
mod connect;
mod publish;

use std::sync::{Arc, LazyLock};

use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::Metrics;

use crate::hosted::{Api, HostedConfig};
use crate::rules::{MediaRules, OptionRule};
use crate::{
    Authorize, ConnectKind, Connected, Credentials, Exchange, Network, NetworkError, Part,
    PublishedPart, Rules, Session,
};

pub use connect::SCOPES;

use api::{Graph, id_segment};

pub const PLATFORM: &str = "facebook";

/// The longest message of a post: 63,206 characters (the Pages composer's and Graph's limit).
pub const MAX_MESSAGE: usize = 63_206;
/// Photos in one post. Graph documents no number for `attached_media`; 10 is what the Pages
/// composer and the multi-photo guides of publishing tools name, and what the fake enforces.
pub const MAX_PHOTOS: usize = 10;
/// "Page Photos" reference, photo specifications: files up to 4 MB (jpeg, bmp, png, gif,
/// tiff). Third-party guides say 10 MB; we keep the reference's number.
pub const MAX_PHOTO_BYTES: u64 = 4 * 1024 * 1024;
/// Video API, non-resumable upload: up to 1 GB and 20 minutes.
pub const MAX_VIDEO_BYTES: u64 = 1024 * 1024 * 1024;
pub const MAX_VIDEO_MS: u64 = 20 * 60 * 1000;
/// The longest `link` a post previews.
pub const MAX_LINK: usize = 2048;

pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::CodePoints,
    max_length: MAX_MESSAGE,
    threads: false,
    max_thread_parts: 1,
    media: MediaRules {
        min_count: 0,
        max_count: MAX_PHOTOS,
        image_types: [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/bmp",
            "image/tiff",
        ]
        .map(str::to_owned)
        .to_vec(),
        max_image_bytes: MAX_PHOTO_BYTES,
        max_image_side: 0,
        video_types: ["video/mp4", "video/quicktime"].map(str::to_owned).to_vec(),
        max_video_bytes: MAX_VIDEO_BYTES,
        max_video_ms: MAX_VIDEO_MS,
        max_videos: 1,
        mix: false,
        max_alt_text: 0,
    },
    options: vec![OptionRule::text(
        "link",
        MAX_LINK,
        "A URL Facebook shows as a link preview under the text (text posts only).",
    )],
    // Facebook documents no count or length: 10 and 100 are conservative values of ours.
    hashtags: crate::rules::HashtagRules {
        max_count: 10,
        recommended: 2,
        max_length: 100,
    },
});

/// The Facebook Pages connector.
pub struct Facebook {
    graph: Graph,
}

impl Facebook {
    pub fn new(config: HostedConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            graph: Graph::new(Api::new(PLATFORM, config, clock)),
        }
    }

    /// The Page of a session, as a path segment.
    fn page<'a>(s: &Session<'a>) -> Result<&'a str, NetworkError> {
        id_segment(&s.account.external_id).map_err(|_| NetworkError::Unauthorized {
            message: "facebook: the account is not a Page; connect it again".into(),
        })
    }
}

/// `/{post}?fields=…` as metrics need it.
#[derive(Debug, Default, serde::Deserialize)]
struct Engagement {
    #[serde(default)]
    reactions: Option<Summarised>,
    #[serde(default)]
    comments: Option<Summarised>,
    #[serde(default)]
    shares: Option<Shares>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Summarised {
    #[serde(default)]
    summary: Option<Summary>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Summary {
    #[serde(default)]
    total_count: i64,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Shares {
    #[serde(default)]
    count: i64,
}

fn total(s: Option<&Summarised>) -> i64 {
    s.and_then(|s| s.summary.as_ref())
        .map_or(0, |s| s.total_count)
}

#[async_trait::async_trait]
impl Network for Facebook {
    fn rules(&self) -> &Rules {
        &RULES
    }

    fn connect_kind(&self) -> ConnectKind {
        ConnectKind::OAuth {
            pkce: false,
            per_instance: false,
        }
    }

    fn authorize_url(&self, a: &Authorize<'_>) -> Result<url::Url, NetworkError> {
        Ok(self.oauth().authorize_url(a))
    }

    async fn exchange_code(&self, e: &Exchange<'_>) -> Result<Connected, NetworkError> {
        self.exchange_code_all(e)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| NetworkError::rejected("facebook: no Facebook Page"))
    }

    async fn exchange_code_all(&self, e: &Exchange<'_>) -> Result<Vec<Connected>, NetworkError> {
        let user = self.user_token(e).await?;
        self.pages(&user, e.client).await
    }

    /// A Page token does not expire, so there is nothing to refresh: this checks that it
    /// still works (`GET /me`, which is the Page), and answers the same credentials.
    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        #[derive(serde::Deserialize)]
        struct Me {
            id: String,
        }
        let me: Me = self
            .graph
            .get(self.graph.url("/me?fields=id"), &s.credentials.access_token)
            .await?;
        if me.id != s.account.external_id {
            return Err(NetworkError::Unauthorized {
                message: "facebook: the token is no longer this Page's".into(),
            });
        }
        Ok(s.credentials.clone())
    }

    /// Nothing is revoked: the account holds only its Page token, and the grant
    /// (`DELETE /me/permissions`, with a user token) covers every Page the person connected —
    /// disconnecting one Page must not disconnect the others. A person removes crier in their
    /// Facebook settings (Business Integrations) to revoke it all.
    async fn revoke(&self, _s: Session<'_>) -> Result<(), NetworkError> {
        Ok(())
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        let page = Self::page(&s)?;
        self.publish_part(page, &s.credentials.access_token, part)
            .await
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let page = Self::page(&s)?;
        self.find(page, &s.credentials.access_token, part).await
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        let id = id_segment(external_id)?;
        let mut url = self.graph.url(&format!("/{id}"));
        url.query_pairs_mut().append_pair(
            "fields",
            "reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0),shares",
        );
        let e: Engagement = self.graph.get(url, &s.credentials.access_token).await?;
        Ok(Metrics {
            likes: total(e.reactions.as_ref()),
            replies: total(e.comments.as_ref()),
            reposts: e.shares.map_or(0, |s| s.count),
            impressions: 0,
        })
    }

    /// `GET /{page-id}?fields=followers_count,fan_count` with the Page token
    /// (`pages_read_engagement`): `followers_count`, or `fan_count` (the Page's likes) where
    /// the Page answers no follower count.
    async fn followers(&self, s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        #[derive(serde::Deserialize)]
        struct Counts {
            #[serde(default)]
            followers_count: Option<u64>,
            #[serde(default)]
            fan_count: Option<u64>,
        }
        let page = Self::page(&s)?;
        let mut url = self.graph.url(&format!("/{page}"));
        url.query_pairs_mut()
            .append_pair("fields", "followers_count,fan_count");
        let c: Counts = self.graph.get(url, &s.credentials.access_token).await?;
        Ok(c.followers_count.or(c.fan_count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numeric_path_segments() {
        assert!(id_segment("1001_2002").is_ok());
        assert!(id_segment("").is_err());
        assert!(id_segment("../me").is_err());
        assert!(id_segment("1?x=1").is_err());
    }

    #[test]
    fn rules_count_characters_and_refuse_threads_and_mixes() {
        let long = "é".repeat(MAX_MESSAGE + 1);
        let v = RULES.check(&[long], &[]);
        assert!(
            v.iter().any(|v| v.rule == "facebook.text.max_characters"),
            "{v:?}"
        );
        assert!(RULES.check(&["é".repeat(MAX_MESSAGE)], &[]).is_empty());
        let v = RULES.check(&["a".into(), "b".into()], &[]);
        assert!(v.iter().any(|v| v.rule == "facebook.thread.unsupported"));
    }
}
