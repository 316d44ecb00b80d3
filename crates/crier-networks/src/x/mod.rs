//! X (formerly Twitter), through the X API v2.
//!
//! References (docs.x.com): "OAuth 2.0 Authorization Code Flow with PKCE"
//! (resources/fundamentals/authentication/oauth-2-0/authorization-code), "POST /2/tweets"
//! (x-api/posts/creation-of-a-post), "GET /2/users/me", "GET /2/users/:id/tweets"
//! (x-api/posts/timelines), "GET /2/tweets/:id" (public_metrics), "GET /2/users/me"
//! (`user.fields=public_metrics`: the account's `followers_count`), "Media upload"
//! (x-api/media/quickstart/media-upload-chunked, x-api/media/create-media-metadata), "Rate
//! limits" (x-api/fundamentals/rate-limits), "Response codes and errors", and "Counting
//! characters" (resources/fundamentals/counting-characters: twitter-text v3 weights).
//!
//! Connecting: OAuth 2.0 with PKCE (S256) at `https://x.com/i/oauth2/authorize`, the code
//! traded at `https://api.x.com/2/oauth2/token` with the client authenticated by HTTP Basic
//! (confidential clients), scopes `tweet.read tweet.write users.read offline.access
//! media.write`. Access tokens live two hours; `offline.access` gives a refresh token, which X
//! rotates at each refresh. The account is `GET /2/users/me` (id, username, name,
//! profile_image_url); its profile `https://x.com/{username}`. Revocation:
//! `POST /2/oauth2/revoke`.
//!
//! Publishing one part: its media are uploaded (see [`media`]), then `POST /2/tweets` with
//! `text`, `media.media_ids`, `reply.in_reply_to_tweet_id` (the thread's last part) and, on a
//! thread's first part, the account's `reply_settings` and `quote_tweet_id` options. The post
//! is `https://x.com/{username}/status/{id}`.
//!
//! Exactly once: X takes no idempotency key. Media ids are kept in the part's steps before the
//! tweet is created (a retry reuses uploads still valid), and `sent_at` before the create
//! call; [`lookup`](Network::lookup) then lists the account's tweets since then and matches
//! our text and reply target (see [`lookup`]). A retry whose first call did land is refused by
//! X as duplicate content (`403`): that refusal is resolved by the same look-up and answered
//! as published; when the look-up does not (yet) see it but an earlier attempt was sent, the
//! answer is "try again" (X's timeline lags a little), and when no attempt of ours was sent
//! it is a refusal (the user posted that text already). A look-up that misses a part with
//! text answers "not published" (the duplicate refusal guards the retry); for a part of media
//! alone, which X does not deduplicate, a miss is "cannot tell" until 15 minutes after
//! `sent_at` (the timeline's lag).
//!
//! Limits (rules): 280 weighted characters (URLs 23, CJK and emoji 2), threads of up to 25
//! parts, up to 4 images or 1 video (not both), images 5 MB (GIFs too: X takes 15 MB for
//! them, the rules have one image size), video 512 MB and 140 s, alt text 1000 characters.
//! Not supported: polls, long posts (Premium `note_tweet`), community posts, geo tags,
//! super-follower-only posts, tagging users in media.

mod call;
pub mod lookup;
pub mod media;

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

use call::call;

pub const PLATFORM: &str = "x";

/// The API's host.
pub(crate) const API: &str = "https://api.x.com";
/// Where users approve crier.
const WEB: &str = "https://x.com";

/// The OAuth scopes crier asks for: read and write posts, read the user, a refresh token,
/// upload media.
pub const SCOPES: &[&str] = &[
    "tweet.read",
    "tweet.write",
    "users.read",
    "offline.access",
    "media.write",
];

/// Who may reply, as `POST /2/tweets` takes it.
pub const REPLY_SETTINGS: &[&str] = &["following", "mentionedUsers", "subscribers", "verified"];

pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::Weighted,
    max_length: 280,
    threads: true,
    max_thread_parts: 25,
    media: MediaRules {
        min_count: 0,
        max_count: 4,
        image_types: ["image/jpeg", "image/png", "image/gif", "image/webp"]
            .map(String::from)
            .to_vec(),
        max_image_bytes: 5 * 1000 * 1000,
        max_image_side: 8192,
        video_types: ["video/mp4", "video/quicktime"].map(String::from).to_vec(),
        max_video_bytes: 512 * 1000 * 1000,
        max_video_ms: 140_000,
        max_videos: 1,
        mix: false,
        max_alt_text: 1000,
    },
    options: vec![
        OptionRule::choice(
            "reply_settings",
            REPLY_SETTINGS,
            "Who may reply to the post (the thread's first part): people the account follows, \
             the users it mentions, its subscribers, or verified accounts. Everyone by default.",
        ),
        OptionRule::text(
            "quote_tweet_id",
            19,
            "The id of a post the first part quotes (digits).",
        ),
    ],
    // X documents no count or length; it advises one or two. 10 and 100 are ours.
    hashtags: crate::rules::HashtagRules {
        max_count: 10,
        recommended: 2,
        max_length: 100,
    },
});

pub struct X {
    api: Api,
    oauth: OAuth2,
}

impl X {
    pub fn new(config: HostedConfig, clock: Arc<dyn Clock>) -> Self {
        let api = Api::new(PLATFORM, config, clock);
        let oauth = OAuth2 {
            network: PLATFORM,
            authorize: api.url(WEB, "/i/oauth2/authorize"),
            token: api.url(API, "/2/oauth2/token"),
            revoke: Some(api.url(API, "/2/oauth2/revoke")),
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            scope_separator: " ",
            client_auth: ClientAuth::Basic,
            client_id_param: "client_id",
            extra_authorize: Vec::new(),
        };
        Self { api, oauth }
    }

    /// The post X answered or listed as `id`; an id that is not one (digits) is `Unavailable`.
    fn published(&self, s: &Session<'_>, id: &str) -> Result<PublishedPart, NetworkError> {
        let id = id_segment(id).map_err(|_| {
            NetworkError::unavailable(format!(
                "x: a post id that is not an X id: `{}`",
                crate::hosted::short(id)
            ))
        })?;
        Ok(PublishedPart {
            external_id: id.to_owned(),
            url: format!("{WEB}/{}/status/{id}", path_segment(&s.account.handle)),
        })
    }

    /// `GET /2/users/me` with `token`.
    async fn me(&self, token: &str) -> Result<User, NetworkError> {
        let mut url = self.api.url(API, "/2/users/me");
        url.query_pairs_mut()
            .append_pair("user.fields", "profile_image_url");
        let answer = call(&self.api, self.api.http.get(url).bearer_auth(token)).await?;
        if !answer.is_success() {
            return Err(answer.error(&self.api, "users/me", false));
        }
        let me: Data<User> = answer.json(&self.api)?;
        let user = me
            .data
            .ok_or_else(|| NetworkError::unavailable("x: users/me answered without the user"))?;
        if user.id.is_empty() || user.username.is_empty() {
            return Err(NetworkError::unavailable(
                "x: users/me answered without an id or username",
            ));
        }
        Ok(user)
    }

    /// The `POST /2/tweets` body of `part` with `media_ids`.
    fn tweet_body(
        part: &Part<'_>,
        media_ids: &[String],
    ) -> Result<serde_json::Value, NetworkError> {
        let mut body = serde_json::Map::new();
        if !part.text.is_empty() {
            body.insert("text".into(), part.text.into());
        }
        if !media_ids.is_empty() {
            body.insert(
                "media".into(),
                serde_json::json!({ "media_ids": media_ids }),
            );
        }
        match part.thread.last() {
            Some(parent) => {
                body.insert(
                    "reply".into(),
                    serde_json::json!({ "in_reply_to_tweet_id": parent }),
                );
            }
            None => {
                let opts = &part.options.options;
                if let Some(v) = opts.get("reply_settings") {
                    let v = v
                        .as_str()
                        .filter(|v| REPLY_SETTINGS.contains(v))
                        .ok_or_else(|| {
                            NetworkError::rejected(format!(
                                "x: reply_settings must be one of {}",
                                REPLY_SETTINGS.join(", ")
                            ))
                        })?;
                    body.insert("reply_settings".into(), v.into());
                }
                if let Some(v) = opts.get("quote_tweet_id") {
                    let v = v
                        .as_str()
                        .filter(|v| {
                            !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit())
                        })
                        .ok_or_else(|| {
                            NetworkError::rejected("x: quote_tweet_id must be a post id (digits)")
                        })?;
                    body.insert("quote_tweet_id".into(), v.into());
                }
            }
        }
        Ok(serde_json::Value::Object(body))
    }

    /// `sent_at` of the part's first create call, kept before it goes out; whether this
    /// attempt is the first.
    async fn mark_sent(&self, part: &Part<'_>) -> Result<(i64, bool), NetworkError> {
        if let Some(at) = part
            .steps
            .get("sent_at")
            .await?
            .and_then(|v| v.parse().ok())
        {
            return Ok((at, false));
        }
        let now = self.api.clock.now_ms();
        part.steps.put("sent_at", &now.to_string()).await?;
        Ok((now, true))
    }
}

/// A name as one path segment, percent-encoded (a handle in a web link).
pub(crate) fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// An X id (a user's or a post's) for a path: digits only, so none can change the path (a
/// `..` would be a dot segment, encoded or not); anything else is refused.
pub(crate) fn id_segment(id: &str) -> Result<&str, NetworkError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(NetworkError::rejected(format!(
            "x: `{}` is not an X id",
            crate::hosted::short(id)
        )))
    }
}

#[derive(serde::Deserialize)]
struct Data<T> {
    #[serde(default = "Option::default")]
    data: Option<T>,
}

#[derive(serde::Deserialize)]
struct User {
    #[serde(default)]
    id: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    profile_image_url: Option<String>,
}

/// `GET /2/users/me?user.fields=public_metrics`.
#[derive(serde::Deserialize)]
struct WithUserMetrics {
    #[serde(default)]
    public_metrics: Option<UserMetrics>,
}

#[derive(serde::Deserialize)]
struct UserMetrics {
    #[serde(default)]
    followers_count: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Created {
    #[serde(default)]
    id: String,
}

#[derive(serde::Deserialize)]
struct WithMetrics {
    #[serde(default)]
    public_metrics: Option<PublicMetrics>,
}

#[derive(serde::Deserialize, Default)]
struct PublicMetrics {
    #[serde(default)]
    like_count: i64,
    #[serde(default)]
    retweet_count: i64,
    #[serde(default)]
    reply_count: i64,
    #[serde(default)]
    impression_count: i64,
}

#[async_trait::async_trait]
impl Network for X {
    fn rules(&self) -> &Rules {
        &RULES
    }

    fn connect_kind(&self) -> ConnectKind {
        ConnectKind::OAuth {
            pkce: true,
            per_instance: false,
        }
    }

    fn authorize_url(&self, a: &Authorize<'_>) -> Result<url::Url, NetworkError> {
        if a.code_challenge.is_none() {
            return Err(NetworkError::rejected("x: OAuth 2.0 at X requires PKCE"));
        }
        Ok(self.oauth.authorize_url(a))
    }

    async fn exchange_code(&self, e: &Exchange<'_>) -> Result<Connected, NetworkError> {
        let tokens = self.oauth.exchange(&self.api.http, e).await?;
        let credentials = Credentials {
            client: Some(e.client.clone()),
            ..tokens.credentials(self.api.clock.now_ms(), None)
        };
        let me = self.me(&credentials.access_token).await?;
        Ok(Connected {
            profile_url: Some(format!("{WEB}/{}", path_segment(&me.username))),
            external_id: me.id,
            handle: me.username,
            display_name: me.name.filter(|n| !n.is_empty()),
            avatar_url: me.profile_image_url.filter(|u| u.starts_with("https://")),
            service: None,
            credentials,
        })
    }

    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        let c = s.credentials;
        let (Some(client), Some(refresh)) = (&c.client, &c.refresh_token) else {
            return Err(NetworkError::Unauthorized {
                message: "x: no refresh token or client kept; connect the account again".into(),
            });
        };
        let tokens = self.oauth.refresh(&self.api.http, client, refresh).await?;
        Ok(Credentials {
            client: Some(client.clone()),
            ..tokens.credentials(self.api.clock.now_ms(), Some(refresh))
        })
    }

    async fn revoke(&self, s: Session<'_>) -> Result<(), NetworkError> {
        let c = s.credentials;
        let Some(client) = &c.client else {
            return Ok(());
        };
        if let Some(refresh) = &c.refresh_token {
            self.oauth.revoke(&self.api.http, client, refresh).await?;
        }
        self.oauth
            .revoke(&self.api.http, client, &c.access_token)
            .await
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        let media_ids = self.media_ids(&s, &part).await?;
        let body = Self::tweet_body(&part, &media_ids)?;
        let (sent_at, first) = self.mark_sent(&part).await?;
        let req = call::with_json(
            self.authed(&s, self.api.http.post(self.api.url(API, "/2/tweets"))),
            &body,
        );
        let answer = call(&self.api, req).await?;
        if answer.is_duplicate() {
            return match self.find(&s, &part, sent_at).await? {
                Some(found) => Ok(found),
                // An attempt of ours went out: X's timeline may not show it yet.
                None if !first => Err(NetworkError::Unavailable {
                    message: format!("x: {}; not yet in the timeline", answer.message()),
                    retry_after: Some(std::time::Duration::from_secs(30)),
                }),
                None => Err(answer.error(&self.api, "create post", false)),
            };
        }
        if !answer.is_success() {
            return Err(answer.error(&self.api, "create post", false));
        }
        let created: Data<Created> = answer.json(&self.api)?;
        match created.data.filter(|c| !c.id.is_empty()) {
            Some(c) => self.published(&s, &c.id),
            None => Err(NetworkError::unavailable(format!(
                "x: create post answered without an id: {}",
                answer.message()
            ))),
        }
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        match part
            .steps
            .get("sent_at")
            .await?
            .and_then(|v| v.parse::<i64>().ok())
        {
            // The create call never went out.
            None => Ok(None),
            Some(at) => self.find_sent(&s, &part, at).await,
        }
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        let mut url = self
            .api
            .url(API, &format!("/2/tweets/{}", id_segment(external_id)?));
        url.query_pairs_mut()
            .append_pair("tweet.fields", "public_metrics");
        let answer = call(&self.api, self.authed(&s, self.api.http.get(url))).await?;
        if !answer.is_success() {
            return Err(answer.error(&self.api, "post metrics", false));
        }
        let got: Data<WithMetrics> = answer.json(&self.api)?;
        // A post X no longer has is `200` with `errors` only.
        let Some(t) = got.data else {
            return Err(NetworkError::rejected(format!(
                "x: post {external_id}: {}",
                answer.message()
            )));
        };
        let m = t.public_metrics.unwrap_or_default();
        Ok(Metrics {
            likes: m.like_count,
            reposts: m.retweet_count,
            replies: m.reply_count,
            impressions: m.impression_count,
        })
    }

    /// `GET /2/users/me?user.fields=public_metrics` → `data.public_metrics.followers_count`
    /// (scope `users.read`, which crier asks for).
    async fn followers(&self, s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        let mut url = self.api.url(API, "/2/users/me");
        url.query_pairs_mut()
            .append_pair("user.fields", "public_metrics");
        let answer = call(&self.api, self.authed(&s, self.api.http.get(url))).await?;
        if !answer.is_success() {
            return Err(answer.error(&self.api, "users/me followers", false));
        }
        let me: Data<WithUserMetrics> = answer.json(&self.api)?;
        let user = me
            .data
            .ok_or_else(|| NetworkError::unavailable("x: users/me answered without the user"))?;
        Ok(user.public_metrics.and_then(|m| m.followers_count))
    }
}
