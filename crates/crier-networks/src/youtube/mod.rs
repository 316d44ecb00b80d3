//! YouTube: a channel's video uploads through the YouTube Data API v3.
//!
//! References (developers.google.com):
//! - "Using OAuth 2.0 for Web Server Applications" (/identity/protocols/oauth2/web-server):
//!   `https://accounts.google.com/o/oauth2/v2/auth` with `access_type=offline` and
//!   `prompt=consent` (so a refresh token is issued on every approval) and PKCE S256; tokens at
//!   `https://oauth2.googleapis.com/token` (client id and secret in the body); revocation at
//!   `https://oauth2.googleapis.com/revoke`. Access tokens live 3,599 s; a refresh answers no
//!   new refresh token, so the old one is kept.
//! - "channels.list" (/youtube/v3/docs/channels/list): `mine=true` names the account: the
//!   channel id, its title, `customUrl` (the `@handle`) and thumbnail; the profile is
//!   `https://www.youtube.com/channel/{id}`. A Google account without a channel cannot upload
//!   (connecting it is refused).
//! - "videos.insert" (/youtube/v3/docs/videos/insert) and "Resumable uploads"
//!   (/youtube/v3/guides/using_resumable_upload_protocol): see [`upload`].
//! - "Quota calculator" (/youtube/v3/determine_quota_cost): see [`quota`].
//! - "Errors" (/youtube/v3/docs/errors): see [`errors`].
//! - "videos.list" (`part=statistics`): `likeCount`, `commentCount`, `viewCount` are our likes,
//!   replies and impressions.
//! - "channels.list" `part=statistics`, `mine=true`: `subscriberCount` (a string, which YouTube
//!   rounds down to three significant figures) is the account's followers; none when
//!   `hiddenSubscriberCount` is true. One list call: one quota unit, counted like the others.
//!
//! What a post is: exactly one video (no text-only post, no images: community posts are not
//! in the API), no threads. The part's text is the description (at most 5,000 bytes, no `<`
//! or `>`); the account's options: `title` (at most 100 characters, no `<` or `>`; by default
//! the text's first line cut to 100 characters), `privacy` (`public` by default, `unlisted`,
//! `private`; an unaudited API project's uploads are made private by YouTube whatever is
//! asked), `tags` (500 characters together), `made_for_kids` (false by default) and
//! `category_id` (`22`, People & Blogs, by default). Limits: 256 GB and 12 hours a video
//! ("Upload videos longer than 15 minutes", support.google.com/youtube/answer/71673).
//!
//! Shorts: YouTube makes a Short of a vertical or square video of at most three minutes;
//! `#Shorts` in the title or description is the creator's hint. We answer the
//! `https://www.youtube.com/shorts/{id}` link when the text carries `#Shorts` and what we know
//! of the video does not rule it out (not landscape, not over 3 minutes); otherwise
//! `https://www.youtube.com/watch?v={id}` (which plays Shorts too).
//!
//! Exactly once: the resumable session URI is kept in the part's steps before any byte is
//! sent; a retry asks the session's status (`Content-Range: bytes */{size}`) and resumes from
//! what Google holds, or takes the finished video it answers. No session kept means no byte
//! was sent, so no video can exist. A session Google no longer knows (expired after a week)
//! is looked up in the channel's uploads playlist (same title and description, uploaded
//! after the attempt) before a new one is started; "not there" only when the uploads read
//! reach back before the attempt's `sent_at` (else, or with no `sent_at`, cannot tell).

mod errors;
pub mod quota;
mod upload;

use std::sync::{Arc, LazyLock};

use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::Metrics;
use reqwest::header::AUTHORIZATION;

use crate::hosted::{Api, HostedConfig};
use crate::oauth2::{ClientAuth, OAuth2};
use crate::{
    Attachment, Authorize, ConnectKind, Connected, Credentials, Exchange, MediaRules, Network,
    NetworkError, OptionKind, OptionRule, Part, PublishedPart, Rules, Session,
};

pub use errors::{GoogleError, error_of};
pub use quota::{Ledger, Quota, next_reset_ms};

pub const PLATFORM: &str = "youtube";

/// Google's hosts (each becomes the configured base in tests).
pub const ACCOUNTS_HOST: &str = "https://accounts.google.com";
pub const OAUTH_HOST: &str = "https://oauth2.googleapis.com";
pub const API_HOST: &str = "https://www.googleapis.com";

/// Uploading videos, and reading the channel, its uploads and their statistics.
pub const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/youtube.upload",
    "https://www.googleapis.com/auth/youtube.readonly",
];

/// The video types YouTube takes ("Supported YouTube file formats",
/// support.google.com/youtube/answer/4497585), as our sniffer names them.
const VIDEO_TYPES: &[&str] = &[
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-msvideo",
    "video/mpeg",
    "video/x-matroska",
    "video/3gpp",
    "video/x-flv",
];

/// The most characters of a title, and the most bytes of a description (videos resource).
pub const MAX_TITLE: usize = 100;
pub const MAX_DESCRIPTION_BYTES: usize = 5000;
/// Tags together, in characters (a tag with a space counts its quotes: 2 more).
pub const MAX_TAGS_TOTAL: usize = 500;
/// The longest Short, for the link we answer.
const MAX_SHORT_MS: u64 = 3 * 60 * 1000;

/// The privacy statuses of a video.
pub const PRIVACY: &[&str] = &["public", "unlisted", "private"];

pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::CodePoints,
    max_length: MAX_DESCRIPTION_BYTES,
    threads: false,
    max_thread_parts: 1,
    media: MediaRules {
        min_count: 1,
        max_count: 1,
        image_types: Vec::new(),
        max_image_bytes: 0,
        max_image_side: 0,
        video_types: VIDEO_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        max_video_bytes: 256 * 1_000_000_000,
        max_video_ms: 12 * 3600 * 1000,
        max_videos: 1,
        mix: false,
        max_alt_text: 0,
    },
    options: vec![
        OptionRule::text(
            "title",
            MAX_TITLE,
            "The video's title (no < or >); by default the text's first line, cut to 100 characters.",
        ),
        OptionRule::choice(
            "privacy",
            PRIVACY,
            "Who can watch the video; public by default.",
        ),
        OptionRule {
            name: "tags",
            kind: OptionKind::Tags {
                max_count: 500,
                max_len: 100,
                max_total: MAX_TAGS_TOTAL,
            },
            about: "Keywords of the video, 500 characters together.",
        },
        OptionRule::flag(
            "made_for_kids",
            "Whether the video is made for children (COPPA); false by default.",
        ),
        OptionRule::text(
            "category_id",
            4,
            "The video category's id (videoCategories.list); 22, People & Blogs, by default.",
        ),
    ],
    // More than 15 hashtags in a description and YouTube ignores them all; the first three show
    // above the title. The length is a conservative value of ours.
    hashtags: crate::rules::HashtagRules {
        max_count: 15,
        recommended: 3,
        max_length: 100,
    },
});

/// The part's steps this connector keeps.
const STEP_SESSION: &str = "session";
const STEP_SIZE: &str = "size";
const STEP_VIDEO: &str = "video";
const STEP_SENT_AT: &str = "sent_at";

/// The upload chunk by default (a multiple of 256 KiB, as the protocol requires).
pub const DEFAULT_CHUNK: usize = 32 * CHUNK_UNIT;
/// Chunks are multiples of this (all but the last).
pub const CHUNK_UNIT: usize = 256 * 1024;

pub struct YouTube {
    api: Api,
    oauth: OAuth2,
    quota: Quota,
    ledger: Ledger,
    chunk: usize,
}

impl YouTube {
    pub fn new(config: HostedConfig, clock: Arc<dyn Clock>) -> Self {
        let api = Api::new(PLATFORM, config, clock);
        let oauth = OAuth2 {
            network: PLATFORM,
            authorize: api.url(ACCOUNTS_HOST, "/o/oauth2/v2/auth"),
            token: api.url(OAUTH_HOST, "/token"),
            revoke: Some(api.url(OAUTH_HOST, "/revoke")),
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            scope_separator: " ",
            client_auth: ClientAuth::Body,
            client_id_param: "client_id",
            extra_authorize: vec![("access_type", "offline"), ("prompt", "consent")],
        };
        Self {
            api,
            oauth,
            quota: Quota::default(),
            ledger: Ledger::default(),
            chunk: DEFAULT_CHUNK,
        }
    }

    /// How the project's quota is charged (see [`quota`]).
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }

    /// The upload chunk, rounded down to a multiple of 256 KiB (at least one).
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk = (bytes / CHUNK_UNIT).max(1) * CHUNK_UNIT;
        self
    }

    /// What this process has spent of `client_id`'s quota today: units, uploads.
    pub fn quota_spent(&self, client_id: &str) -> (u64, u64) {
        self.ledger.spent(client_id, self.now())
    }

    fn now(&self) -> i64 {
        self.api.clock.now_ms()
    }

    /// The Google project a session's calls are charged to: its OAuth client.
    fn project(creds: &Credentials) -> &str {
        creds.client.as_ref().map_or("", |c| c.client_id.as_str())
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// Sends a request and reads its answer (capped): status, headers, body.
    async fn call(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), NetworkError> {
        let resp = self.api.send(req).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = self.api.body(resp).await?;
        Ok((status, headers, body))
    }

    /// An error of the answer, after noting a spent quota.
    fn fail(
        &self,
        project: &str,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> NetworkError {
        let e = error_of(status, headers, body, self.now());
        if errors::parse(body).is_some_and(|g| errors::is_quota(g.reason())) {
            self.ledger.exhaust(project, self.now());
        }
        e
    }

    /// A list call (1 unit) of `path` with `query`, as `T`.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        project: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, NetworkError> {
        let mut url = self.api.url(API_HOST, path);
        url.query_pairs_mut().extend_pairs(query);
        let req = self
            .api
            .http
            .get(url)
            .header(AUTHORIZATION, Self::bearer(token));
        let (status, headers, body) = self.call(req).await?;
        self.ledger.charge(project, self.now(), quota::LIST_COST);
        if !(200..300).contains(&status) {
            return Err(self.fail(project, status, &headers, &body));
        }
        self.api.parse(&body)
    }

    /// The token's own channel (`channels.list mine=true`).
    async fn my_channel(&self, token: &str, project: &str) -> Result<Channel, NetworkError> {
        let list: List<Channel> = self
            .list(
                token,
                project,
                "/youtube/v3/channels",
                &[
                    ("part", "snippet,statistics,contentDetails"),
                    ("mine", "true"),
                ],
            )
            .await?;
        list.items
            .into_iter()
            .find(|c| !c.id.is_empty())
            .ok_or_else(|| {
                NetworkError::rejected(
                    "youtube: this Google account has no YouTube channel (youtubeSignupRequired); \
                     create one at youtube.com, then connect again",
                )
            })
    }

    fn connected(channel: Channel, credentials: Credentials) -> Connected {
        let s = channel.snippet;
        let thumbs = s.thumbnails.unwrap_or_default();
        let avatar = [thumbs.high, thumbs.medium, thumbs.default]
            .into_iter()
            .flatten()
            .map(|t| t.url)
            .find(|u| !u.is_empty());
        Connected {
            handle: s
                .custom_url
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| channel.id.clone()),
            display_name: Some(s.title).filter(|t| !t.is_empty()),
            avatar_url: avatar,
            profile_url: Some(format!("https://www.youtube.com/channel/{}", channel.id)),
            external_id: channel.id,
            service: None,
            credentials,
        }
    }
}

/// A list answer.
#[derive(Debug, Default, serde::Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Channel {
    #[serde(default)]
    id: String,
    #[serde(default)]
    snippet: ChannelSnippet,
    #[serde(default, rename = "contentDetails")]
    content_details: Option<ChannelContent>,
}

/// `channels.list part=statistics`.
#[derive(Debug, Default, serde::Deserialize)]
struct ChannelStats {
    #[serde(default)]
    id: String,
    #[serde(default)]
    statistics: Option<ChannelStatistics>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ChannelStatistics {
    /// A string of digits, as Google sends 64-bit counts.
    #[serde(default, rename = "subscriberCount")]
    subscriber_count: Option<serde_json::Value>,
    #[serde(default, rename = "hiddenSubscriberCount")]
    hidden_subscriber_count: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ChannelSnippet {
    #[serde(default)]
    title: String,
    #[serde(default, rename = "customUrl")]
    custom_url: Option<String>,
    #[serde(default)]
    thumbnails: Option<Thumbnails>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Thumbnails {
    default: Option<Thumbnail>,
    medium: Option<Thumbnail>,
    high: Option<Thumbnail>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Thumbnail {
    #[serde(default)]
    url: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ChannelContent {
    #[serde(default, rename = "relatedPlaylists")]
    related: RelatedPlaylists,
}

#[derive(Debug, Default, serde::Deserialize)]
struct RelatedPlaylists {
    #[serde(default)]
    uploads: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct VideoStats {
    #[serde(default)]
    id: String,
    #[serde(default)]
    statistics: Statistics,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Statistics {
    #[serde(default, rename = "viewCount", deserialize_with = "count")]
    views: i64,
    #[serde(default, rename = "likeCount", deserialize_with = "count")]
    likes: i64,
    #[serde(default, rename = "commentCount", deserialize_with = "count")]
    comments: i64,
}

/// Google sends counts as strings (`"123"`, 64-bit values in JSON).
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::Deserialize;
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// What the video resource says, from the part and the account's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub category_id: String,
    pub privacy: String,
    pub made_for_kids: bool,
    /// Whether the link answered is a Short's.
    pub short: bool,
}

impl Metadata {
    /// The metadata of `part` uploading `video`; a refusal when an option or the text does not
    /// fit what YouTube takes (the same refusals `videos.insert` answers, before any call).
    pub fn of(part: &Part<'_>, video: &Attachment) -> Result<Self, NetworkError> {
        let opts = &part.options.options;
        let text_opt = |name: &str| -> Result<Option<String>, NetworkError> {
            match opts.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(NetworkError::rejected(format!(
                    "youtube: the option {name} must be text"
                ))),
            }
        };
        let title = match text_opt("title")? {
            Some(t) => t.trim().to_owned(),
            None => default_title(part.text, &video.meta.filename),
        };
        let n = title.chars().count();
        if n == 0 || n > MAX_TITLE || title.contains(['<', '>']) {
            return Err(NetworkError::rejected(format!(
                "youtube: a title is 1 to {MAX_TITLE} characters without < or > (invalidTitle)"
            )));
        }
        let description = part.text.to_owned();
        if description.len() > MAX_DESCRIPTION_BYTES || description.contains(['<', '>']) {
            return Err(NetworkError::rejected(format!(
                "youtube: a description is at most {MAX_DESCRIPTION_BYTES} bytes without < or > \
                 (invalidDescription)"
            )));
        }
        let privacy = text_opt("privacy")?.unwrap_or_else(|| "public".into());
        if !PRIVACY.contains(&privacy.as_str()) {
            return Err(NetworkError::rejected(format!(
                "youtube: privacy is one of {}",
                PRIVACY.join(", ")
            )));
        }
        let tags = tags(opts.get("tags"))?;
        let made_for_kids = match opts.get("made_for_kids") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => {
                return Err(NetworkError::rejected(
                    "youtube: made_for_kids is true or false",
                ));
            }
        };
        let category_id = text_opt("category_id")?.unwrap_or_else(|| "22".into());
        if category_id.is_empty() || !category_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NetworkError::rejected(
                "youtube: category_id is a video category's number (invalidCategoryId)",
            ));
        }
        let short = is_short(&title, &description, video);
        Ok(Self {
            title,
            description,
            tags,
            category_id,
            privacy,
            made_for_kids,
            short,
        })
    }

    /// The `video` resource sent to `videos.insert`.
    fn resource(&self) -> serde_json::Value {
        let mut snippet = serde_json::json!({
            "title": self.title,
            "description": self.description,
            "categoryId": self.category_id,
        });
        if !self.tags.is_empty() {
            snippet["tags"] = serde_json::json!(self.tags);
        }
        serde_json::json!({
            "snippet": snippet,
            "status": {
                "privacyStatus": self.privacy,
                "selfDeclaredMadeForKids": self.made_for_kids,
            },
        })
    }

    /// The link to video `id`.
    pub fn url(&self, id: &str) -> String {
        if self.short {
            format!("https://www.youtube.com/shorts/{id}")
        } else {
            format!("https://www.youtube.com/watch?v={id}")
        }
    }
}

/// The first non-empty line of the text without `<` and `>`, cut to 100 characters; the file
/// name's stem when there is no text; `Video` when there is neither.
pub fn default_title(text: &str, filename: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '<' && *c != '>' && !c.is_control())
            .collect::<String>()
            .trim()
            .chars()
            .take(MAX_TITLE)
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let from_text = text.lines().map(clean).find(|l| !l.is_empty());
    let stem = filename.rsplit_once('.').map_or(filename, |(s, _)| s);
    from_text
        .or_else(|| Some(clean(stem)).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "Video".into())
}

fn tags(value: Option<&serde_json::Value>) -> Result<Vec<String>, NetworkError> {
    let items = match value {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items,
        Some(_) => return Err(NetworkError::rejected("youtube: tags is a list of texts")),
    };
    let mut out = Vec::with_capacity(items.len());
    let mut total = 0;
    for item in items {
        let Some(t) = item.as_str().map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(NetworkError::rejected("youtube: tags is a list of texts"));
        };
        if t.contains(['<', '>']) {
            return Err(NetworkError::rejected(
                "youtube: a tag has no < or > (invalidTags)",
            ));
        }
        // "If a tag contains a space, the API server handles the tag value as though it were
        // wrapped in quotation marks, and the quotation marks count toward the limit."
        total += t.chars().count() + if t.contains(' ') { 2 } else { 0 };
        out.push(t.to_owned());
    }
    if total > MAX_TAGS_TOTAL {
        return Err(NetworkError::rejected(format!(
            "youtube: tags are {total} characters together; the limit is {MAX_TAGS_TOTAL} (invalidTags)"
        )));
    }
    Ok(out)
}

/// `#Shorts` in the title or description, and nothing known that rules a Short out.
fn is_short(title: &str, description: &str, video: &Attachment) -> bool {
    let tagged = [title, description]
        .iter()
        .any(|t| t.to_lowercase().contains("#shorts"));
    let m = &video.meta;
    let landscape = matches!((m.width, m.height), (Some(w), Some(h)) if w > h);
    let long = m.duration_ms.is_some_and(|d| d > MAX_SHORT_MS);
    tagged && !landscape && !long
}

/// The one video of a part: YouTube takes nothing else.
fn the_video<'a>(part: &Part<'a>) -> Result<&'a Attachment, NetworkError> {
    if !part.thread.is_empty() {
        return Err(NetworkError::rejected("youtube does not support threads"));
    }
    match part.media {
        [one] if one.meta.is_video() => Ok(one),
        [] => Err(NetworkError::rejected(
            "youtube takes a video: a post of text alone cannot be published there",
        )),
        _ => Err(NetworkError::MediaRejected {
            message: "youtube takes exactly one video and no images".into(),
        }),
    }
}

#[async_trait::async_trait]
impl Network for YouTube {
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
        Ok(self.oauth.authorize_url(a))
    }

    async fn exchange_code(&self, e: &Exchange<'_>) -> Result<Connected, NetworkError> {
        let tokens = self.oauth.exchange(&self.api.http, e).await?;
        let mut credentials = tokens.credentials(self.now(), None);
        credentials.client = Some(e.client.clone());
        let channel = self
            .my_channel(&credentials.access_token, &e.client.client_id)
            .await?;
        Ok(Self::connected(channel, credentials))
    }

    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        let old = s.credentials;
        let (Some(refresh), Some(client)) = (old.refresh_token.as_deref(), old.client.as_ref())
        else {
            return Err(NetworkError::Unauthorized {
                message: "youtube: no refresh token; connect the account again".into(),
            });
        };
        let tokens = self.oauth.refresh(&self.api.http, client, refresh).await?;
        // Google does not rotate refresh tokens: the one we have stays.
        let mut fresh = tokens.credentials(self.now(), Some(refresh));
        fresh.client = Some(client.clone());
        Ok(fresh)
    }

    async fn revoke(&self, s: Session<'_>) -> Result<(), NetworkError> {
        let c = s.credentials;
        let Some(client) = c.client.as_ref() else {
            return Ok(());
        };
        // Revoking the refresh token ends the whole grant.
        let token = c.refresh_token.as_deref().unwrap_or(&c.access_token);
        self.oauth.revoke(&self.api.http, client, token).await
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        let video = the_video(&part)?;
        let meta = Metadata::of(&part, video)?;
        self.upload(&s, &part, video, &meta).await
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        self.find(&s, &part).await
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        let list: List<VideoStats> = self
            .list(
                &s.credentials.access_token,
                Self::project(s.credentials),
                "/youtube/v3/videos",
                &[("part", "statistics"), ("id", external_id)],
            )
            .await?;
        let v = list
            .items
            .into_iter()
            .find(|v| v.id == external_id)
            .ok_or_else(|| {
                NetworkError::rejected(format!(
                    "youtube: video {external_id} is not there (deleted or private)"
                ))
            })?;
        Ok(Metrics {
            likes: v.statistics.likes,
            reposts: 0,
            replies: v.statistics.comments,
            impressions: v.statistics.views,
        })
    }

    /// The channel's subscribers: `channels.list part=statistics mine=true` (1 quota unit,
    /// charged to the project's counter) → `statistics.subscriberCount`; `None` when the
    /// channel hides it (`hiddenSubscriberCount`).
    async fn followers(&self, s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        let list: List<ChannelStats> = self
            .list(
                &s.credentials.access_token,
                Self::project(s.credentials),
                "/youtube/v3/channels",
                &[("part", "statistics"), ("mine", "true")],
            )
            .await?;
        let channel = list
            .items
            .into_iter()
            .find(|c| c.id == s.account.external_id)
            .ok_or_else(|| NetworkError::Unauthorized {
                message: format!(
                    "youtube: the token is no longer channel {}'s; connect it again",
                    s.account.external_id
                ),
            })?;
        let Some(stats) = channel.statistics else {
            return Ok(None);
        };
        if stats.hidden_subscriber_count {
            return Ok(None);
        }
        Ok(match stats.subscriber_count {
            Some(serde_json::Value::String(n)) => n.trim().parse().ok(),
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            _ => None,
        })
    }
}
