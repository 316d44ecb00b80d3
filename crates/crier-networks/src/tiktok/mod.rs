//! TikTok, through the Content Posting API (direct post) and Login Kit's OAuth 2.0 v2.
//!
//! References (read November 2026):
//! - Login Kit for Web: developers.tiktok.com/doc/login-kit-web — the user approves at
//!   `https://www.tiktok.com/v2/auth/authorize/` with `client_key` (not `client_id`), a
//!   comma-separated `scope`, `redirect_uri`, `state`, `response_type=code`.
//! - Manage user access tokens: developers.tiktok.com/doc/oauth-user-access-token-management —
//!   `POST https://open.tiktokapis.com/v2/oauth/token/` (form: `client_key`, `client_secret`,
//!   `code`, `grant_type`, `redirect_uri`) answers `open_id`, `scope`, `access_token`
//!   (`expires_in`, 24 h), `refresh_token` (`refresh_expires_in`, 365 d); refresh with
//!   `grant_type=refresh_token` (the refresh token may rotate: the newest one is kept);
//!   revoke at `POST /v2/oauth/revoke/` (`client_key`, `client_secret`, `token`).
//!   PKCE: `code_verifier` is "required for mobile and desktop app only"; the web flow is a
//!   confidential client (its secret stays on the server) with `state`, so crier sends no
//!   PKCE challenge (`ConnectKind::OAuth { pkce: false }`).
//! - Display API `GET /v2/user/info/` (developers.tiktok.com/doc/tiktok-api-v2-get-user-info):
//!   `open_id` (our external id), `avatar_url`, `display_name` under `user.info.basic`; the
//!   `username` needs `user.info.profile`, which crier does not ask for: the handle comes from
//!   creator info (`creator_username`, under `video.publish`). `follower_count` needs
//!   `user.info.stats`, which crier asks for (for [`Network::followers`]); an account
//!   connected before it was asked for, or whose user unticked it, answers no count
//!   (`scope_not_authorized`) until it is connected again.
//! - Direct Post: developers.tiktok.com/doc/content-posting-api-reference-direct-post;
//!   Query Creator Info: …/content-posting-api-reference-query-creator-info; Media Transfer
//!   Guide (chunks, `PULL_FROM_URL`): …/content-posting-api-media-transfer-guide; Get Post
//!   Status: …/content-posting-api-reference-get-video-status; Query Videos (metrics):
//!   …/tiktok-api-v2-video-query; errors: …/tiktok-api-v2-error-handling; rate limits:
//!   …/tiktok-api-v2-rate-limit.
//!
//! Publishing one part ([`publish`]): creator info first (the privacy levels offered, whether
//! comments, duets and stitches are off, the longest video allowed) — a privacy level not
//! offered or a video too long is refused before anything is sent; then `video/init/` with
//! the caption as `title` and `FILE_UPLOAD` (the bytes PUT in chunks to `upload_url` with
//! `Content-Range`) or, with the option `source = "pull"`, `PULL_FROM_URL` (TikTok fetches the
//! attachment's signed URL; its domain must be verified for the client); then
//! `status/fetch/` is polled until `PUBLISH_COMPLETE` (bounded by `poll_max` and a count).
//!
//! Exactly once: TikTok takes no idempotency key. The `publish_id` of `video/init/` is kept
//! in the part's steps (with the `upload_url`) before any byte is sent, and is the
//! reconciliation handle: a retry resumes it (re-sending the chunks TikTok does not have,
//! then polling) and never initialises again unless TikTok says it `FAILED`; `lookup` polls
//! its status (`PUBLISH_COMPLETE` → the post; `FAILED` → `None`, cleared so the retry starts
//! again; still processing → an error, never `None`). No `publish_id` kept → nothing was
//! initialised that can become a post (`FILE_UPLOAD` needs our bytes) → `None`; with
//! `PULL_FROM_URL` a lost `init` answer could still become a post, so `lookup` then also
//! lists the account's videos for our caption since `sent_at`; a miss there is an error, never
//! `None` (the list shows only public, processed videos), unless the `init` was refused.
//!
//! Not supported: text alone (TikTok posts are videos or photos); threads; photo posts (the
//! photo endpoint takes images by URL from a verified domain only — not done yet); more than
//! one video; alt text. A private (`SELF_ONLY`) post, or one still in moderation when polling
//! ends, has no public post id: its `external_id` is the `publish_id` and its URL the
//! profile's; metrics then ask the status again for the id.

mod api;
mod publish;

use std::sync::{Arc, LazyLock};

use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::Metrics;

use crate::hosted::{Api, HostedConfig};
use crate::oauth2::{ClientAuth, OAuth2};
use crate::{
    Authorize, ConnectKind, Connected, Credentials, Exchange, MediaRules, Network, NetworkError,
    OptionRule, Part, PublishedPart, Rules, Session,
};

pub use api::{DAILY_CAP_RETRY, PENDING_RETRY, RATE_WINDOW};
pub use publish::{CHUNK_SIZE, MAX_CHUNKS, MAX_SINGLE_CHUNK, chunking};

pub const PLATFORM: &str = "tiktok";

/// The API host.
const API: &str = "https://open.tiktokapis.com";
/// The web host: the authorization page and post and profile links.
const WWW: &str = "https://www.tiktok.com";

/// Login Kit scopes: the profile basics, direct posting, reading the user's videos (metrics
/// and the look-up of a pulled video), and the profile's counts (`user.info.stats`: the
/// follower count).
pub const SCOPES: &[&str] = &[
    "user.info.basic",
    "video.publish",
    "video.list",
    "user.info.stats",
];

/// The privacy levels of `post_info.privacy_level`, most public first (the default is the
/// most public one the creator is offered).
pub const PRIVACY_LEVELS: &[&str] = &[
    "PUBLIC_TO_EVERYONE",
    "FOLLOWER_OF_CREATOR",
    "MUTUAL_FOLLOW_FRIENDS",
    "SELF_ONLY",
];

/// The longest caption (`post_info.title`), in UTF-16 code units ("max 2200 utf-16 runes").
pub const MAX_CAPTION_UTF16: usize = 2200;
/// The largest video ("Video Restrictions": up to 4 GB).
pub const MAX_VIDEO_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// The longest video when creator info does not say (10 minutes; the creator's own
/// `max_video_post_duration_sec` is checked at publishing).
pub const DEFAULT_MAX_VIDEO_MS: u64 = 10 * 60 * 1000;

/// TikTok's documented limits. The caption is counted in code points here (the rules have no
/// UTF-16 count); publishing checks the 2200 UTF-16 units TikTok counts.
pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::CodePoints,
    max_length: MAX_CAPTION_UTF16,
    threads: false,
    max_thread_parts: 1,
    media: MediaRules {
        min_count: 1,
        max_count: 1,
        image_types: Vec::new(),
        max_image_bytes: 0,
        max_image_side: 0,
        video_types: vec![
            "video/mp4".into(),
            "video/webm".into(),
            "video/quicktime".into(),
        ],
        max_video_bytes: MAX_VIDEO_BYTES,
        max_video_ms: DEFAULT_MAX_VIDEO_MS,
        max_videos: 1,
        mix: false,
        max_alt_text: 0,
    },
    options: vec![
        OptionRule::choice(
            "privacy",
            PRIVACY_LEVELS,
            "Who may watch the video; must be one the creator is offered (creator info). \
             Default: the most public one offered. Unaudited TikTok clients may post SELF_ONLY only.",
        ),
        OptionRule::flag(
            "allow_comments",
            "Whether viewers may comment; default: as the creator's own settings allow.",
        ),
        OptionRule::flag(
            "allow_duet",
            "Whether viewers may duet; default: as the creator's own settings allow.",
        ),
        OptionRule::flag(
            "allow_stitch",
            "Whether viewers may stitch; default: as the creator's own settings allow.",
        ),
        OptionRule::choice(
            "source",
            &["file", "pull"],
            "How TikTok gets the video: `file` (uploaded in chunks, the default) or `pull` \
             (TikTok fetches the media's signed URL; its domain must be verified for the client).",
        ),
    ],
    // TikTok documents no count for the API; 5 follows the in-app cap reported since 2025, and
    // the length is a conservative value of ours.
    hashtags: crate::rules::HashtagRules {
        max_count: 5,
        recommended: 3,
        max_length: 100,
    },
});

/// The TikTok connector.
pub struct TikTok {
    api: Api,
}

impl TikTok {
    pub fn new(config: HostedConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            api: Api::new(PLATFORM, config, clock),
        }
    }

    fn oauth(&self) -> OAuth2 {
        OAuth2 {
            network: PLATFORM,
            authorize: self.api.url(WWW, "/v2/auth/authorize/"),
            token: self.api.url(API, "/v2/oauth/token/"),
            revoke: Some(self.api.url(API, "/v2/oauth/revoke/")),
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            scope_separator: ",",
            client_auth: ClientAuth::Body,
            client_id_param: "client_key",
            extra_authorize: Vec::new(),
        }
    }

    fn endpoint(&self, path: &str) -> url::Url {
        self.api.url(API, path)
    }

    /// The account's profile: `open_id`, display name and avatar (`user.info.basic`).
    async fn user_info(&self, token: &str) -> Result<UserInfo, NetworkError> {
        let mut url = self.endpoint("/v2/user/info/");
        url.query_pairs_mut()
            .append_pair("fields", "open_id,union_id,avatar_url,display_name");
        let data: UserData = api::call(&self.api, token, self.api.http.get(url), None).await?;
        if data.user.open_id.is_empty() {
            return Err(NetworkError::unavailable(
                "tiktok: user info answered without an open_id",
            ));
        }
        Ok(data.user)
    }

    /// A post's link: `https://www.tiktok.com/@{username}/video/{id}`.
    fn video_url(handle: &str, id: &str) -> String {
        format!("{WWW}/@{}/video/{id}", handle.trim_start_matches('@'))
    }

    fn profile_url(handle: &str) -> String {
        format!("{WWW}/@{}", handle.trim_start_matches('@'))
    }

    /// The counts of one video (`POST /v2/video/query/`, `video.list`).
    async fn query_video(&self, token: &str, id: &str) -> Result<Metrics, NetworkError> {
        let mut url = self.endpoint("/v2/video/query/");
        url.query_pairs_mut().append_pair(
            "fields",
            "id,like_count,comment_count,share_count,view_count",
        );
        let body = serde_json::json!({"filters": {"video_ids": [id]}});
        let data: VideoList =
            api::call(&self.api, token, self.api.http.post(url), Some(&body)).await?;
        let v = data
            .videos
            .into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| {
                NetworkError::rejected(format!(
                    "tiktok: video {id} is not one of this account's videos (deleted or private)"
                ))
            })?;
        Ok(Metrics {
            likes: v.like_count,
            reposts: v.share_count,
            replies: v.comment_count,
            impressions: v.view_count,
        })
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct UserData {
    #[serde(default)]
    user: UserInfo,
}

#[derive(Debug, Default, serde::Deserialize)]
struct UserInfo {
    #[serde(default)]
    open_id: String,
    #[serde(default)]
    avatar_url: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// A video of `video/query/` and `video/list/`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Video {
    #[serde(default, deserialize_with = "publish::id_string")]
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub video_description: Option<String>,
    #[serde(default)]
    pub create_time: i64,
    #[serde(default)]
    pub like_count: i64,
    #[serde(default)]
    pub comment_count: i64,
    #[serde(default)]
    pub share_count: i64,
    #[serde(default)]
    pub view_count: i64,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct VideoList {
    #[serde(default)]
    pub videos: Vec<Video>,
}

#[async_trait::async_trait]
impl Network for TikTok {
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
        let tokens = self.oauth().exchange(&self.api.http, e).await?;
        // The user may untick scopes at the consent screen; without video.publish nothing can
        // be posted, so the connection is refused now rather than at the first post.
        if let Some(granted) = tokens.scope.as_deref() {
            let granted: Vec<&str> = granted.split([',', ' ']).map(str::trim).collect();
            if !granted.contains(&"video.publish") {
                return Err(NetworkError::rejected(
                    "tiktok: the user did not grant video.publish; connect again and allow posting",
                ));
            }
        }
        let mut credentials = tokens.credentials(self.api.clock.now_ms(), None);
        credentials.client = Some(e.client.clone());
        let token = credentials.access_token.clone();
        let user = self.user_info(&token).await?;
        if let Some(open_id) = tokens.extra.get("open_id").and_then(|v| v.as_str())
            && open_id != user.open_id
        {
            return Err(NetworkError::unavailable(
                "tiktok: the token's open_id and the user info's differ",
            ));
        }
        let creator = self.creator_info(&token).await?;
        let handle = creator.creator_username.clone();
        Ok(Connected {
            external_id: user.open_id,
            profile_url: (!handle.is_empty()).then(|| Self::profile_url(&handle)),
            handle,
            display_name: user
                .display_name
                .filter(|d| !d.is_empty())
                .or_else(|| Some(creator.creator_nickname.clone()).filter(|n| !n.is_empty())),
            avatar_url: user.avatar_url.filter(|a| !a.is_empty()),
            service: None,
            credentials,
        })
    }

    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        let c = s.credentials;
        let client = c
            .client
            .as_ref()
            .ok_or_else(|| NetworkError::Unauthorized {
                message: "tiktok: the account has no OAuth client on record; connect it again"
                    .into(),
            })?;
        let refresh = c
            .refresh_token
            .as_deref()
            .ok_or_else(|| NetworkError::Unauthorized {
                message: "tiktok: no refresh token; connect the account again".into(),
            })?;
        let tokens = self
            .oauth()
            .refresh(&self.api.http, client, refresh)
            .await?;
        let mut fresh = tokens.credentials(self.api.clock.now_ms(), Some(refresh));
        fresh.client = Some(client.clone());
        Ok(fresh)
    }

    async fn revoke(&self, s: Session<'_>) -> Result<(), NetworkError> {
        let Some(client) = s.credentials.client.as_ref() else {
            return Ok(());
        };
        self.oauth()
            .revoke(&self.api.http, client, &s.credentials.access_token)
            .await
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        self.publish_part(&s, &part).await
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        self.find(&s, &part).await
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        let id = if publish::is_video_id(external_id) {
            external_id.to_owned()
        } else {
            // A publish id stands in for a post TikTok gave no public id for (yet).
            self.resolve_post_id(&s.credentials.access_token, external_id)
                .await?
        };
        self.query_video(&s.credentials.access_token, &id).await
    }

    /// `GET /v2/user/info/?fields=follower_count` (`user.info.stats`). A token without that
    /// scope (`scope_not_authorized`, `scope_permission_missed`: connected before crier asked
    /// for it, or the user unticked it) has no count to give: `None`, not a disconnection;
    /// every other refusal maps as the other calls' do.
    async fn followers(&self, s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        #[derive(Debug, Default, serde::Deserialize)]
        struct Stats {
            #[serde(default)]
            user: StatsUser,
        }
        #[derive(Debug, Default, serde::Deserialize)]
        struct StatsUser {
            #[serde(default)]
            follower_count: Option<u64>,
        }
        let mut url = self.endpoint("/v2/user/info/");
        url.query_pairs_mut()
            .append_pair("fields", "follower_count");
        let req = self.api.http.get(url);
        match api::answer::<Stats>(&self.api, &s.credentials.access_token, req, None).await? {
            api::Answer::Data(d) => Ok(d.user.follower_count),
            api::Answer::Refused(_, e)
                if matches!(
                    e.code.as_str(),
                    "scope_not_authorized" | "scope_permission_missed"
                ) =>
            {
                Ok(None)
            }
            api::Answer::Refused(status, e) => Err(api::error_of(status, &e)),
        }
    }
}
