//! Threads (Meta's Threads API at `graph.threads.net/v1.0`).
//!
//! References (developers.facebook.com/docs/threads/…):
//! - `get-started/get-access-tokens-and-permissions`: the authorization window
//!   `https://threads.net/oauth/authorize` (scopes comma-separated), the code traded at
//!   `POST https://graph.threads.net/oauth/access_token` (`client_id`, `client_secret`,
//!   `grant_type=authorization_code`, `redirect_uri`, `code` → `{access_token, user_id}`, a
//!   short-lived token of one hour).
//! - `get-started/long-lived-tokens`: `GET /access_token?grant_type=th_exchange_token
//!   &client_secret&access_token` → a long-lived token of 60 days; `GET /refresh_access_token
//!   ?grant_type=th_refresh_token&access_token` → a fresh one, again 60 days. The long-lived
//!   token refreshes itself, so it is kept as [`Credentials::refresh_token`] too: that is what
//!   makes crier's refresher schedule its renewal (crier-app `connect.rs` `save`: only
//!   renewable credentials get a `refresh_at`). Threads has no token revocation endpoint;
//!   a user removes the app in their Threads settings (disconnecting forgets the token).
//! - `posts`, `reference/publishing`, `posts#carousel-posts`: a media container
//!   (`POST /{user-id}/threads`, `media_type` TEXT / IMAGE / VIDEO / CAROUSEL, `text`,
//!   `image_url` / `video_url` that Threads fetches, `is_carousel_item` and `children` for
//!   carousels of 2 to 20 items, `reply_to_id` for a reply, `reply_control`, `alt_text`) is
//!   published with `POST /{user-id}/threads_publish` (`creation_id`) → the media id.
//!   Text posts are "limited to 500 characters; emojis are counted as the number of UTF-8
//!   bytes": see [`length`].
//! - `troubleshooting`: `GET /{container-id}?fields=status,error_message` answers
//!   IN_PROGRESS, FINISHED, PUBLISHED, ERROR (with `error_message`) or EXPIRED (not published
//!   within 24 hours).
//! - `overview#rate-limiting` and `reply-management`: 250 API-published posts and 1,000
//!   replies per profile in a moving 24 hours, read at `GET /{user-id}/threads_publishing_limit
//!   ?fields=quota_usage,config,reply_quota_usage,reply_config`.
//! - `insights`: `GET /{media-id}/insights?metric=views,likes,replies,reposts,quotes`; the
//!   account's followers: `GET /{user-id}/threads_insights?metric=followers_count` →
//!   `total_value.value` (`threads_manage_insights`, which crier asks for).
//! - Errors are Graph error objects ([`crate::graph`]): 190 (token) → `Unauthorized`, the
//!   throttle codes → `RateLimited`, refusals of a media container → `MediaRejected`.
//!
//! Exactly once (Threads takes no idempotency key): every container id is written to the
//! part's [`crate::Steps`] (`container`, `child.{i}`) before the next call, and `sent_at`
//! before `threads_publish`, then the media id (`media_id`). A retry resumes: a kept
//! FINISHED container is published (never a second one), IN_PROGRESS is waited for, ERROR or
//! EXPIRED is replaced by a new container, PUBLISHED means an earlier publish landed and its
//! media id is found by listing the account's posts (`/{user-id}/threads`, or
//! `/{user-id}/replies` for a thread's later parts) since `sent_at` and matching the text.
//! [`Network::lookup`] answers `None` only when no kept container was ever published.
//!
//! Limits and not supported: a thread is at most 25 parts (crier's bound; each reply counts
//! against the 1,000-replies quota); the publishing quota at its limit is `RateLimited` with a
//! pause of an hour (the API does not say when the oldest post leaves the moving window);
//! media go only by URL (an attachment without a signed URL is refused); polls, quotes,
//! topic tags, link attachments and location tags are not sent; metrics map `views` to
//! impressions.

mod api;
mod publish;

use std::sync::{Arc, LazyLock};

use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::{Account, Metrics};

use crate::hosted::{Api, HostedConfig};
use crate::oauth2::{ClientAuth, OAuth2};
use crate::rules::{MediaRules, OptionRule};
use crate::{
    Authorize, ConnectKind, Connected, Credentials, Exchange, Network, NetworkError, Part,
    PublishedPart, Rules, Session,
};

use api::{GRAPH, Kind, WWW};

pub const PLATFORM: &str = "threads";

/// What crier asks for: the profile, publishing, insights, and reading and managing replies
/// (the look-up of a thread's later parts lists the account's replies; the replies quota is
/// read with `threads_manage_replies`).
pub const SCOPES: &[&str] = &[
    "threads_basic",
    "threads_content_publish",
    "threads_manage_insights",
    "threads_read_replies",
    "threads_manage_replies",
];

/// The longest text: 500 characters as Threads counts them ([`length`]).
pub const MAX_LENGTH: usize = 500;
/// Items of a carousel.
pub const MAX_CAROUSEL: usize = 20;
const MAX_IMAGE_BYTES: u64 = 8 * 1024 * 1024;
const MAX_VIDEO_BYTES: u64 = 1024 * 1024 * 1024;

/// The accepted values of `reply_control`.
pub const REPLY_CONTROL: &[&str] = &["everyone", "accounts_you_follow", "mentioned_only"];

pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    // Characters; Threads counts an emoji as its UTF-8 bytes, which code points undercount:
    // `publish` checks the exact count ([`length`]) before anything is sent.
    counting: Counting::CodePoints,
    max_length: MAX_LENGTH,
    threads: true,
    max_thread_parts: 25,
    media: MediaRules {
        min_count: 0,
        max_count: MAX_CAROUSEL,
        image_types: ["image/jpeg", "image/png"].map(str::to_owned).to_vec(),
        max_image_bytes: MAX_IMAGE_BYTES,
        max_image_side: 0,
        video_types: ["video/mp4", "video/quicktime"].map(str::to_owned).to_vec(),
        max_video_bytes: MAX_VIDEO_BYTES,
        max_video_ms: 5 * 60 * 1000,
        max_videos: MAX_CAROUSEL,
        mix: true,
        max_alt_text: 1000,
    },
    options: vec![OptionRule::choice(
        "reply_control",
        REPLY_CONTROL,
        "Who may reply: everyone (the default), accounts_you_follow or mentioned_only.",
    )],
    // Threads takes one topic tag per post, of 1 to 50 characters.
    hashtags: crate::rules::HashtagRules {
        max_count: 1,
        recommended: 1,
        max_length: 50,
    },
});

/// The length of `text` as Threads counts it: characters, each emoji as many as its UTF-8
/// bytes ("Emojis are counted as the number of UTF-8 bytes", Threads Posts, Limitations).
pub fn length(text: &str) -> usize {
    text.chars()
        .map(|c| if is_emoji(c) { c.len_utf8() } else { 1 })
        .sum()
}

/// Emoji code points: the pictographic blocks, dingbats and symbols, regional indicators,
/// the variation selector and joiner of emoji sequences, and tag characters.
fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF
        | 0xFE0F | 0x200D | 0x20E3 | 0xE0020..=0xE007F)
}

/// The Threads connector.
pub struct Threads {
    api: Api,
    oauth: OAuth2,
}

impl Threads {
    pub fn new(config: HostedConfig, clock: Arc<dyn Clock>) -> Self {
        let api = Api::new(PLATFORM, config, clock);
        let oauth = OAuth2 {
            network: PLATFORM,
            authorize: api.url(WWW, "/oauth/authorize"),
            token: api.url(GRAPH, "/oauth/access_token"),
            revoke: None,
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            scope_separator: ",",
            client_auth: ClientAuth::Body,
            client_id_param: "client_id",
            extra_authorize: Vec::new(),
        };
        Self { api, oauth }
    }

    /// Credentials of a long-lived token: it is its own refresh token.
    fn credentials(&self, t: api::TokenAnswer, client: &crate::OAuthClient) -> Credentials {
        let now = self.api.clock.now_ms();
        Credentials {
            refresh_token: Some(t.access_token.clone()),
            expires_at: t
                .expires_in
                .filter(|s| *s > 0)
                .map(|s| now.saturating_add(s.min(365 * 86_400).saturating_mul(1000))),
            access_token: t.access_token,
            client: Some(client.clone()),
            ..Credentials::default()
        }
    }

    /// A short-lived token traded for a long-lived one (60 days).
    async fn long_lived(
        &self,
        short: &str,
        client: &crate::OAuthClient,
    ) -> Result<Credentials, NetworkError> {
        let secret = client
            .client_secret
            .as_deref()
            .ok_or_else(|| NetworkError::rejected("threads: the app secret is not configured"))?;
        let t: api::TokenAnswer = api::get_unauthenticated(
            &self.api,
            GRAPH,
            "/access_token",
            &[
                ("grant_type", "th_exchange_token"),
                ("client_secret", secret),
                ("access_token", short),
            ],
        )
        .await?;
        if t.access_token.is_empty() {
            return Err(NetworkError::unavailable(
                "threads: the long-lived token exchange answered without a token",
            ));
        }
        Ok(self.credentials(t, client))
    }

    async fn me(&self, token: &str) -> Result<api::Me, NetworkError> {
        let me: api::Me = api::get(
            &self.api,
            token,
            "/me",
            &[("fields", "id,username,name,threads_profile_picture_url")],
            Kind::Plain,
        )
        .await?;
        if me.id.is_empty() || me.username.is_empty() {
            return Err(NetworkError::unavailable(
                "threads: /me answered without an id or a username",
            ));
        }
        Ok(me)
    }
}

#[async_trait::async_trait]
impl Network for Threads {
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
        Ok(self.oauth.authorize_url(a))
    }

    async fn exchange_code(&self, e: &Exchange<'_>) -> Result<Connected, NetworkError> {
        let short = self.oauth.exchange(&self.api.http, e).await?;
        let credentials = self.long_lived(&short.access_token, e.client).await?;
        let me = self.me(&credentials.access_token).await?;
        let user_id = short.extra.get("user_id").map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        if user_id.as_deref().is_some_and(|u| u != me.id) {
            return Err(NetworkError::unavailable(
                "threads: the token's user is not the profile /me answers",
            ));
        }
        Ok(Connected {
            profile_url: Some(format!("https://www.threads.net/@{}", me.username)),
            external_id: me.id,
            handle: me.username,
            display_name: me.name.filter(|n| !n.trim().is_empty()),
            avatar_url: me.threads_profile_picture_url,
            service: None,
            credentials,
        })
    }

    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        let token = &s.credentials.access_token;
        let answer: Result<api::TokenAnswer, _> = api::get_unauthenticated(
            &self.api,
            GRAPH,
            "/refresh_access_token",
            &[("grant_type", "th_refresh_token"), ("access_token", token)],
        )
        .await;
        let t = match answer {
            Ok(t) if !t.access_token.is_empty() => t,
            Ok(_) => {
                return Err(NetworkError::unavailable(
                    "threads: the refresh answered without a token",
                ));
            }
            // An expired or revoked token cannot be refreshed: the account must connect again.
            Err(NetworkError::Rejected { message }) => {
                return Err(NetworkError::Unauthorized { message });
            }
            Err(e) => return Err(e),
        };
        let client = s.credentials.client.clone().unwrap_or(crate::OAuthClient {
            client_id: String::new(),
            client_secret: None,
        });
        let mut fresh = self.credentials(t, &client);
        fresh.client = s.credentials.client.clone();
        Ok(fresh)
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        publish::publish(&self.api, s, part).await
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        publish::lookup(&self.api, s, part).await
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        let page: api::Page<api::Insight> = api::get(
            &self.api,
            &s.credentials.access_token,
            &format!("/{}/insights", api::seg(external_id)?),
            &[("metric", "views,likes,replies,reposts,quotes")],
            Kind::Plain,
        )
        .await?;
        let get = |name: &str| {
            page.data
                .iter()
                .find(|i| i.name == name)
                .map_or(0, api::Insight::value)
        };
        Ok(Metrics {
            likes: get("likes"),
            reposts: get("reposts"),
            replies: get("replies"),
            impressions: get("views"),
        })
    }

    /// `GET /{user-id}/threads_insights?metric=followers_count` → `total_value.value`.
    async fn followers(&self, s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        let id = user(s.account)?;
        let page: api::Page<api::Insight> = api::get(
            &self.api,
            &s.credentials.access_token,
            &format!("/{}/threads_insights", api::seg(id)?),
            &[("metric", "followers_count")],
            Kind::Plain,
        )
        .await?;
        Ok(page
            .data
            .iter()
            .find(|i| i.name == "followers_count")
            .and_then(|i| {
                i.total_value
                    .as_ref()
                    .or_else(|| i.values.last())
                    .map(|v| v.value)
            })
            .and_then(|v| u64::try_from(v).ok()))
    }
}

/// The account a session acts as, for messages and paths.
fn user(account: &Account) -> Result<&str, NetworkError> {
    if account.external_id.is_empty() {
        return Err(NetworkError::Unauthorized {
            message: "threads: the account has no Threads user id; connect it again".into(),
        });
    }
    Ok(&account.external_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_count_their_utf8_bytes() {
        assert_eq!(length("hello"), 5);
        assert_eq!(length("é"), 1, "an accented letter is one character");
        assert_eq!(length("🎉"), 4);
        assert_eq!(length("ok ✅"), 3 + 3);
        assert_eq!(length("日本"), 2);
    }
}
