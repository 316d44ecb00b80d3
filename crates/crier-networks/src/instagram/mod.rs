//! Instagram professional accounts (Business and Creator) through the Instagram API with
//! Instagram Login: connecting, publishing images, reels and carousels, and reading counts.
//!
//! References (developers.facebook.com/docs/instagram-platform/…):
//! - "Business Login for Instagram" (`instagram-api-with-instagram-login/business-login`):
//!   `https://www.instagram.com/oauth/authorize` with `response_type=code` and comma-separated
//!   scopes; the code is traded at `POST https://api.instagram.com/oauth/access_token` (form:
//!   `client_id`, `client_secret`, `grant_type=authorization_code`, `redirect_uri`, `code`) for
//!   a short-lived token (one hour).
//! - "Access Token" (`reference/access_token`): `GET graph.instagram.com/access_token
//!   ?grant_type=ig_exchange_token&client_secret&access_token` trades it for a long-lived token
//!   (60 days). "Refresh Access Token" (`reference/refresh_access_token`): `GET
//!   /refresh_access_token?grant_type=ig_refresh_token&access_token` gives a new one valid 60
//!   days more. There is no refresh token: the long-lived token refreshes itself, so crier keeps
//!   it as [`Credentials::refresh_token`] too (the app schedules refreshes only for credentials
//!   that have one) and [`Network::refresh`] sends it. There is no revocation endpoint: a
//!   disconnect forgets the token (the user removes the app in Instagram's settings).
//! - "Content Publishing" (`content-publishing`), "IG User Media" (`reference/ig-user/media`),
//!   "IG User Media Publish", "IG Container" (`reference/ig-container`) and "IG User Content
//!   Publishing Limit": media are given by URL (the network fetches them: crier gives the
//!   attachment's signed URL); `POST /{ig-user-id}/media` makes a container (`image_url`,
//!   `caption`, `alt_text`; a single video is a reel: `media_type=REELS`, `video_url`,
//!   `share_to_feed`; a carousel is 2–10 children made with `is_carousel_item=true`, then a
//!   `media_type=CAROUSEL` container with `children`); `GET /{container-id}?fields=status_code`
//!   says `IN_PROGRESS`, `FINISHED`, `ERROR`, `EXPIRED` (not published within 24 hours) or
//!   `PUBLISHED`; `POST /{ig-user-id}/media_publish` with `creation_id` publishes it and answers
//!   the media id. `GET /{ig-user-id}/content_publishing_limit` says how many of the 100 posts
//!   of the rolling 24 hours are used.
//! - "IG User" (`reference/ig-user`): `GET /me?fields=followers_count` is the account's
//!   followers (`instagram_business_basic`).
//! - "IG Comment" / "IG Media Comments": `POST /{ig-media-id}/comments` (`message`), for the
//!   `first_comment` option. "IG Media": `like_count`, `comments_count`, `permalink`.
//! - "Error Codes" (`instagram-graph-api/reference/error-codes`) and the Graph API's error
//!   object ([`crate::graph`]): 9/2207042 is the publishing limit (rate limited), 9007/2207027
//!   "not ready to be published" and -1/-2 are transient, 9004/2207052 (the media could not be
//!   fetched) and the other media codes are media refusals.
//!
//! Exactly once (Instagram takes no idempotency key): every container id (each carousel child
//! `child.{i}`, then `container`) is kept in the part's steps before the next call, `sent_at`
//! before `media_publish`, and the media id (`media_id`) as soon as it is known. A retry
//! resumes: a kept media id is the post; a kept container is asked its status — `PUBLISHED`
//! means an earlier `media_publish` landed and its media is found among the account's recent
//! media by caption and time (never guessed: not found is an error, not "not published"),
//! `FINISHED`/`IN_PROGRESS` is published (after polling) without making a new one, `ERROR` or
//! `EXPIRED` gets a new container. Polling is bounded by `poll_max` and a count; a container
//! still processing at the end is `Unavailable` and the retry resumes from it.
//!
//! Limits and what is not supported: Instagram takes no text-only posts (refused before any
//! call, `instagram.media.required`; the rules cannot say "at least one medium" yet) and no
//! threads; captions are at most 2,200 characters and 30 hashtags (refused before any call:
//! the network refuses them or drops the post silently); images must be JPEG ("JPEG is the
//! only image format supported"), at most 8 MiB; reels 3 s to 15 min, at most 300 MB; at most
//! 10 items in a carousel; 100 API-published posts per account per rolling 24 hours (checked
//! before containers are made: at the limit the part waits an hour, as the API does not say
//! when the oldest post leaves the window). Stories, user and product tags, locations,
//! collaborators and cover images are not used. Insights (views, reach) are not read: the
//! counts crier shows are likes and comments.

mod publish;

pub use publish::{graph_time, hashtags};

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::Metrics;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::graph;
use crate::hosted::{Api, HostedConfig};
use crate::oauth2::{ClientAuth, OAuth2};
use crate::{
    Authorize, ConnectKind, Connected, Credentials, Exchange, MediaRules, Network, NetworkError,
    OptionRule, Part, PublishedPart, Rules, Session,
};

pub const PLATFORM: &str = "instagram";
/// The Graph API version of every `graph.instagram.com` call but the token ones.
pub const VERSION: &str = "v21.0";
/// What crier asks for: the profile, publishing, and comments (the first comment).
pub const SCOPES: [&str; 3] = [
    "instagram_business_basic",
    "instagram_business_content_publish",
    "instagram_business_manage_comments",
];
pub const MAX_CAPTION: usize = 2200;
pub const MAX_HASHTAGS: usize = 30;
pub const MAX_CAROUSEL: usize = 10;
pub const MAX_IMAGE_BYTES: u64 = 8 * 1024 * 1024;
pub const MAX_VIDEO_BYTES: u64 = 300 * 1000 * 1000;
pub const MIN_VIDEO_MS: u64 = 3_000;
pub const MAX_VIDEO_MS: u64 = 15 * 60 * 1000;
/// How long a part waits when the account has used its 100 posts of the rolling 24 hours.
pub const QUOTA_PAUSE: Duration = Duration::from_secs(3600);

const GRAPH: &str = "https://graph.instagram.com";
const API: &str = "https://api.instagram.com";
const WWW: &str = "https://www.instagram.com";

pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::CodePoints,
    max_length: MAX_CAPTION,
    threads: false,
    max_thread_parts: 1,
    media: MediaRules {
        min_count: 1,
        max_count: MAX_CAROUSEL,
        image_types: vec!["image/jpeg".into()],
        max_image_bytes: MAX_IMAGE_BYTES,
        // Wider images are scaled down by Instagram, not refused.
        max_image_side: 0,
        video_types: vec!["video/mp4".into(), "video/quicktime".into()],
        max_video_bytes: MAX_VIDEO_BYTES,
        max_video_ms: MAX_VIDEO_MS,
        max_videos: MAX_CAROUSEL,
        mix: true,
        // The reference gives no bound of its own for `alt_text`; the caption's.
        max_alt_text: MAX_CAPTION,
    },
    options: vec![
        OptionRule::text(
            "first_comment",
            MAX_CAPTION,
            "a comment posted on the post right after it is published (hashtags kept out of \
             the caption); a failure there does not fail the post",
        ),
        OptionRule::flag(
            "share_to_feed",
            "a reel also shows in the account's feed (reels only; Instagram's default is yes)",
        ),
    ],
    // Instagram took 30 hashtags in a caption until December 2025, when it cut the limit to 5
    // (announced by @creators); the length is a conservative value of ours.
    hashtags: crate::rules::HashtagRules {
        max_count: 5,
        recommended: 3,
        max_length: 100,
    },
});

/// The connector.
pub struct Instagram {
    api: Api,
    oauth: OAuth2,
}

/// An answer that is an object with an id.
#[derive(Debug, serde::Deserialize)]
struct Id {
    id: String,
}

/// `GET /access_token` and `/refresh_access_token`.
#[derive(Debug, serde::Deserialize)]
struct LongLived {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// `GET /me`.
#[derive(Debug, serde::Deserialize)]
struct Me {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    user_id: Option<serde_json::Value>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    profile_picture_url: Option<String>,
    #[serde(default)]
    account_type: Option<String>,
}

/// `url` with `query` appended.
fn with_query(mut url: url::Url, query: &[(&str, &str)]) -> url::Url {
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

/// A form body.
fn encode(form: &[(&str, String)]) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        f.append_pair(k, v);
    }
    f.finish()
}

/// Graph ids come as strings, sometimes as numbers.
fn id_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Instagram {
    pub fn new(config: HostedConfig, clock: Arc<dyn Clock>) -> Self {
        let api = Api::new(PLATFORM, config, clock);
        let oauth = OAuth2 {
            network: PLATFORM,
            authorize: api.url(WWW, "/oauth/authorize"),
            token: api.url(API, "/oauth/access_token"),
            revoke: None,
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            scope_separator: ",",
            client_auth: ClientAuth::Body,
            client_id_param: "client_id",
            extra_authorize: Vec::new(),
        };
        Self { api, oauth }
    }

    /// A versioned Graph endpoint.
    fn graph(&self, path: &str) -> url::Url {
        self.api.url(GRAPH, &format!("/{VERSION}{path}"))
    }

    /// Sends `req`, reads the capped answer, and maps a refusal (see the module's errors);
    /// `media` marks calls about a media object. Slows down when the usage headers say the
    /// quota is nearly used.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        media: bool,
    ) -> Result<T, NetworkError> {
        let resp = self.api.send(req).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = self.api.body(resp).await?;
        if !(200..300).contains(&status) {
            return Err(error_of(status, &headers, &body, media));
        }
        if let Some(pause) = graph::slow_down(graph::usage(&headers)) {
            self.api.pause(pause).await;
        }
        self.api.parse(&body)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, NetworkError> {
        let req = self
            .api
            .http
            .get(with_query(self.graph(path), query))
            .header(AUTHORIZATION, format!("Bearer {token}"));
        self.call(req, false).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        form: &[(&str, String)],
        media: bool,
    ) -> Result<T, NetworkError> {
        let req = self
            .api
            .http
            .post(self.graph(path))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(encode(form));
        self.call(req, media).await
    }

    /// The account the token acts for.
    async fn me(&self, token: &str) -> Result<Me, NetworkError> {
        self.get(
            token,
            "/me",
            &[(
                "fields",
                "id,user_id,username,name,profile_picture_url,account_type",
            )],
        )
        .await
    }

    /// A long-lived token (60 days) for a short-lived one (one hour).
    async fn long_lived(&self, short: &str, secret: &str) -> Result<LongLived, NetworkError> {
        let url = with_query(
            self.api.url(GRAPH, "/access_token"),
            &[
                ("grant_type", "ig_exchange_token"),
                ("client_secret", secret),
                ("access_token", short),
            ],
        );
        let req = self.api.http.get(url);
        self.call(req, false).await
    }

    fn credentials(&self, t: &LongLived, client: Option<crate::OAuthClient>) -> Credentials {
        let now = self.api.clock.now_ms();
        Credentials {
            access_token: t.access_token.clone(),
            // The long-lived token is what refreshes (see the module's doc).
            refresh_token: Some(t.access_token.clone()),
            expires_at: t
                .expires_in
                .filter(|s| *s > 0)
                .map(|s| now.saturating_add(s.saturating_mul(1000))),
            client,
            ..Credentials::default()
        }
    }
}

/// What an unsuccessful answer means: Instagram's own codes first, then the Graph table.
fn error_of(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    media: bool,
) -> NetworkError {
    if let Some(e) = graph::parse_error(body) {
        let message = format!(
            "{PLATFORM}: {status} {} (code {}{})",
            crate::hosted::short(e.error_user_msg.as_deref().unwrap_or(&e.message)),
            e.code,
            e.error_subcode
                .map(|s| format!(", subcode {s}"))
                .unwrap_or_default()
        );
        match (e.code, e.error_subcode) {
            // The account's 100 posts of the rolling 24 hours are used.
            (9, Some(2_207_042)) => {
                return NetworkError::RateLimited {
                    retry_after: Some(QUOTA_PAUSE),
                };
            }
            // "The media is not ready to be published", server errors, download timeouts.
            (9007 | -1 | -2, _) => {
                return NetworkError::Unavailable {
                    message,
                    retry_after: None,
                };
            }
            _ => {}
        }
    }
    graph::error_of(PLATFORM, status, headers, body, media)
}

#[async_trait::async_trait]
impl Network for Instagram {
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
        let secret = e.client.client_secret.as_deref().ok_or_else(|| {
            NetworkError::rejected("instagram: the app's client secret is not configured")
        })?;
        let short = self.oauth.exchange(&self.api.http, e).await?;
        let long = self.long_lived(&short.access_token, secret).await?;
        let me = self.me(&long.access_token).await?;
        if me.account_type.as_deref() == Some("PERSONAL") {
            return Err(NetworkError::rejected(
                "instagram: only professional accounts (Business or Creator) can publish \
                 through the API; switch the account to a professional one",
            ));
        }
        // The professional account's id (what the publishing endpoints take); the token
        // answer's `user_id` or the app-scoped `id` when `/me` does not say.
        let external_id = me
            .user_id
            .as_ref()
            .and_then(id_text)
            .or_else(|| short.extra.get("user_id").and_then(id_text))
            .or_else(|| me.id.as_ref().and_then(id_text))
            .ok_or_else(|| NetworkError::unavailable("instagram: /me answered no account id"))?;
        let handle = me.username.clone().unwrap_or_else(|| external_id.clone());
        Ok(Connected {
            profile_url: me
                .username
                .as_ref()
                .map(|u| format!("https://www.instagram.com/{u}/")),
            external_id,
            handle,
            display_name: me.name,
            avatar_url: me.profile_picture_url,
            service: None,
            credentials: self.credentials(&long, Some(e.client.clone())),
        })
    }

    /// `GET /refresh_access_token` with the long-lived token (kept as the refresh token).
    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        let token = s
            .credentials
            .refresh_token
            .as_deref()
            .unwrap_or(&s.credentials.access_token);
        let url = with_query(
            self.api.url(GRAPH, "/refresh_access_token"),
            &[("grant_type", "ig_refresh_token"), ("access_token", token)],
        );
        let req = self.api.http.get(url);
        let fresh: LongLived = self.call(req, false).await?;
        Ok(self.credentials(&fresh, s.credentials.client.clone()))
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        publish::publish(self, s, part).await
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        publish::lookup(self, s, part).await
    }

    /// Likes and comments of a media object (`like_count`, `comments_count`).
    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        #[derive(serde::Deserialize)]
        struct Counts {
            #[serde(default)]
            like_count: i64,
            #[serde(default)]
            comments_count: i64,
        }
        let c: Counts = self
            .get(
                &s.credentials.access_token,
                &format!("/{}", publish::path_id(external_id)?),
                &[("fields", "like_count,comments_count")],
            )
            .await?;
        Ok(Metrics {
            likes: c.like_count,
            replies: c.comments_count,
            ..Metrics::default()
        })
    }

    /// `GET /me?fields=followers_count`: the token's own professional account.
    async fn followers(&self, s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        #[derive(serde::Deserialize)]
        struct Counts {
            #[serde(default)]
            followers_count: Option<u64>,
        }
        let c: Counts = self
            .get(
                &s.credentials.access_token,
                "/me",
                &[("fields", "followers_count")],
            )
            .await?;
        Ok(c.followers_count)
    }
}
