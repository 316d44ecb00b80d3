//! LinkedIn: members and the organization pages they administer, through the versioned
//! Community Management API (`https://api.linkedin.com/rest`, `LinkedIn-Version: YYYYMM`).
//!
//! References (learn.microsoft.com/linkedin/…):
//! - `shared/authentication/authorization-code-flow` (3-legged OAuth; tokens live 60 days),
//!   `shared/authentication/programmatic-refresh-tokens` (refresh tokens, 365 days, for the
//!   apps LinkedIn grants them), `consumer/integrations/self-serve/sign-in-with-linkedin-v2`
//!   (OpenID Connect, `GET /v2/userinfo` → `sub`);
//! - `marketing/community-management/organizations/organization-access-control-by-role`
//!   (`GET /rest/organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED`) and
//!   `…/organizations/organization-lookup-api` (`GET /rest/organizations/{id}`);
//! - `marketing/community-management/shares/posts-api` (`POST /rest/posts`, the new post's URN
//!   in `x-restli-id`; `GET /rest/posts?q=author`), `…/shares/little-text-format`,
//!   `…/shares/images-api`, `…/shares/videos-api`, `…/shares/documents-api`,
//!   `…/shares/multiimage-post-api`;
//! - `marketing/community-management/shares/network-update-social-actions` (`GET
//!   /rest/socialActions/{urn}`: likes and comments);
//! - `marketing/community-management/organizations/organization-lookup-api`, "Retrieve
//!   Organization Follower Count" (`GET /rest/networkSizes/{organization urn}
//!   ?edgeType=COMPANY_FOLLOWED_BY_MEMBER` → `firstDegreeSize`): a page's followers;
//! - `shared/api-guide/concepts/rate-limits`, `shared/api-guide/concepts/error-handling`.
//!
//! Connecting: one approval (scopes `openid profile w_member_social r_organization_social
//! w_organization_social rw_organization_admin`, no PKCE: crier is a confidential client)
//! connects the member (`urn:li:person:{sub}`) and every page they administer
//! (`urn:li:organization:{id}`); each account's credentials hold the same tokens. Nothing is
//! revoked at LinkedIn on disconnect: the member and their pages share one token, so revoking
//! it for any of them (the member included) would silently disconnect every other.
//!
//! Publishing: media first ([`media`]), then `POST /rest/posts` with the author, the
//! commentary in `little` ([`little`]: reserved characters escaped, mentions
//! `@[Name](urn:li:organization:…)` and hashtags kept), the account's `visibility` option
//! (`PUBLIC` by default; `CONNECTIONS` is for members), `MAIN_FEED` distribution and
//! `PUBLISHED`.
//!
//! Exactly once: LinkedIn takes no idempotency key. Every asset URN is kept in the part's
//! steps before the next step, `sent_at` (the clock's ms) before the first create call and
//! `last_sent_at` before each later one. A lost answer is found by [`Network::lookup`]: the
//! author's posts (`GET /rest/posts?q=author`, newest first by `LAST_MODIFIED`) are matched by
//! the exact commentary sent, created since `sent_at` (less five minutes of skew). No
//! `sent_at`: nothing was sent (`None`). No match, and the list reaches back before `sent_at`
//! (or is complete): not published (`None`), once LinkedIn has had time to finish the latest
//! create call ([`crate::hosted::SETTLE`] past the call timeout: a timeout or a 5xx may still
//! land); before, an error ("cannot tell yet"). A list that never reaches back that far: an
//! error (we cannot tell). A second net: when a retry's create call is refused as a duplicate
//! ("Content is a duplicate of urn:li:share:…") after an earlier attempt sent it, that post is
//! ours.
//!
//! Limits: commentary 3000 characters; 1 to 20 images (JPG, PNG, GIF; fewer than 36,152,320
//! pixels; alt text 4086 characters) or one MP4 video (3 s to 30 min, up to 500 MB; Videos
//! API) or one PDF document; never mixed. Not supported: threads (LinkedIn has none: a part
//! is one post), replies and reshares, polls and articles, documents through crier's media
//! store (it takes images and video only; the connector handles `application/pdf`).
//! Rate limits: daily, reset at midnight UTC, a 429 without a reset header (see [`call`]).

pub mod call;
pub mod little;
pub mod media;

use std::sync::{Arc, LazyLock};

use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::Metrics;

use crate::hosted::{Api, HostedConfig};
use crate::oauth2::{ClientAuth, OAuth2};
use crate::rules::{MediaRules, OptionRule};
use crate::{
    Authorize, ConnectKind, Connected, Credentials, Exchange, Network, NetworkError, Part,
    PublishedPart, Rules, Session,
};

use call::{API, WWW};

pub const PLATFORM: &str = "linkedin";

/// The scopes crier asks for: sign-in (`openid profile`), posting as the member, reading,
/// posting as and listing the pages they administer.
pub const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "w_member_social",
    "r_organization_social",
    "w_organization_social",
    "rw_organization_admin",
];

/// Who may see a post (`visibility`).
pub const VISIBILITIES: &[&str] = &["PUBLIC", "CONNECTIONS", "LOGGED_IN"];

/// The longest commentary, in characters.
pub const MAX_COMMENTARY: usize = 3000;
/// Pages connected with one approval, at most.
const MAX_PAGES: usize = 50;
/// Posts read in one look-up.
const LOOKUP_COUNT: usize = 50;
/// Pages of [`LOOKUP_COUNT`] posts a look-up reads at most.
const LOOKUP_PAGES: usize = 10;
/// Clock skew allowed between us and LinkedIn when matching posts in a look-up.
const LOOKUP_SKEW_MS: i64 = 5 * 60 * 1000;

pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::CodePoints,
    max_length: MAX_COMMENTARY,
    threads: false,
    max_thread_parts: 1,
    media: MediaRules {
        min_count: 0,
        max_count: 20,
        image_types: vec!["image/png".into(), "image/jpeg".into(), "image/gif".into()],
        // The Images API limits pixels (checked at publishing), not bytes; 10 MB is ours.
        max_image_bytes: 10 * 1024 * 1024,
        max_image_side: 0,
        video_types: vec!["video/mp4".into()],
        max_video_bytes: 500 * 1024 * 1024,
        max_video_ms: 30 * 60 * 1000,
        max_videos: 1,
        mix: false,
        max_alt_text: 4086,
    },
    options: vec![OptionRule::choice(
        "visibility",
        VISIBILITIES,
        "Who sees the post: PUBLIC (anyone), CONNECTIONS (the member's connections; members \
         only) or LOGGED_IN (signed-in LinkedIn members). PUBLIC when not set.",
    )],
    // LinkedIn documents no count or length: 10 and 100 are conservative values of ours.
    hashtags: crate::rules::HashtagRules {
        max_count: 10,
        recommended: 3,
        max_length: 100,
    },
});

pub struct LinkedIn {
    api: Api,
    oauth: OAuth2,
}

impl LinkedIn {
    pub fn new(config: HostedConfig, clock: Arc<dyn Clock>) -> Self {
        let api = Api::new(PLATFORM, config, clock);
        let oauth = OAuth2 {
            network: PLATFORM,
            authorize: api.url(WWW, "/oauth/v2/authorization"),
            token: api.url(WWW, "/oauth/v2/accessToken"),
            revoke: Some(api.url(WWW, "/oauth/v2/revoke")),
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            scope_separator: " ",
            client_auth: ClientAuth::Body,
            client_id_param: "client_id",
            extra_authorize: Vec::new(),
        };
        Self { api, oauth }
    }

    /// The member who approved (`GET /v2/userinfo`, OpenID Connect).
    async fn member(&self, creds: &Credentials) -> Result<Connected, NetworkError> {
        #[derive(serde::Deserialize)]
        struct UserInfo {
            sub: String,
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            picture: Option<String>,
        }
        let req = self
            .api
            .http
            .get(self.api.url(API, "/v2/userinfo"))
            .bearer_auth(&creds.access_token);
        let u: UserInfo = call::read(&self.api, req).await?;
        if u.sub.is_empty() {
            return Err(NetworkError::unavailable(
                "linkedin: userinfo without a sub",
            ));
        }
        Ok(Connected {
            external_id: format!("urn:li:person:{}", u.sub),
            handle: u.name.clone().unwrap_or_else(|| u.sub.clone()),
            display_name: u.name,
            avatar_url: u.picture,
            profile_url: None,
            service: None,
            credentials: creds.clone(),
        })
    }

    /// The pages the member administers (approved `ADMINISTRATOR` role), with their names.
    /// A token without the organization scopes (403) administers none.
    async fn pages(&self, creds: &Credentials) -> Result<Vec<Connected>, NetworkError> {
        #[derive(serde::Deserialize)]
        struct Acls {
            #[serde(default)]
            elements: Vec<Acl>,
        }
        #[derive(serde::Deserialize)]
        struct Acl {
            #[serde(default)]
            organization: String,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Organization {
            #[serde(default)]
            localized_name: Option<String>,
            #[serde(default)]
            vanity_name: Option<String>,
        }
        let mut url = self.api.url(API, "/rest/organizationAcls");
        url.query_pairs_mut()
            .append_pair("q", "roleAssignee")
            .append_pair("role", "ADMINISTRATOR")
            .append_pair("state", "APPROVED")
            .append_pair("count", &MAX_PAGES.to_string());
        let resp = self
            .api
            .send(call::rest(self.api.http.get(url), &creds.access_token))
            .await?;
        if resp.status().as_u16() == 403 {
            return Ok(Vec::new());
        }
        if !resp.status().is_success() {
            return Err(call::error_of(&self.api, resp).await);
        }
        let acls: Acls = self.api.parse(&self.api.body(resp).await?)?;
        let mut out = Vec::new();
        for acl in acls.elements.iter().take(MAX_PAGES) {
            let Some(id) = acl.organization.strip_prefix("urn:li:organization:") else {
                continue;
            };
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let url = self.api.url(API, &format!("/rest/organizations/{id}"));
            let org: Organization = call::read(
                &self.api,
                call::rest(self.api.http.get(url), &creds.access_token),
            )
            .await?;
            let name = org.localized_name.filter(|n| !n.is_empty());
            let vanity = org.vanity_name.filter(|n| !n.is_empty());
            out.push(Connected {
                external_id: acl.organization.clone(),
                handle: vanity
                    .clone()
                    .or_else(|| name.clone())
                    .unwrap_or_else(|| id.to_owned()),
                display_name: name,
                avatar_url: None,
                profile_url: vanity.map(|v| format!("https://www.linkedin.com/company/{v}/")),
                service: None,
                credentials: creds.clone(),
            });
        }
        Ok(out)
    }

    /// The author a session posts as: its account's URN.
    fn author<'a>(s: &Session<'a>) -> Result<&'a str, NetworkError> {
        let id = s.account.external_id.as_str();
        if id.starts_with("urn:li:person:") || id.starts_with("urn:li:organization:") {
            Ok(id)
        } else {
            Err(NetworkError::Unauthorized {
                message: format!("linkedin: {id} is not a member or a page; connect it again"),
            })
        }
    }

    fn published(urn: String) -> PublishedPart {
        let url = format!("https://www.linkedin.com/feed/update/{urn}/");
        PublishedPart {
            external_id: urn,
            url,
        }
    }

    /// The post's body (see the module).
    fn post_body(
        author: &str,
        commentary: &str,
        part: &Part<'_>,
        content: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, NetworkError> {
        let visibility = match part.options.options.get("visibility") {
            None => "PUBLIC",
            Some(serde_json::Value::String(v)) if VISIBILITIES.contains(&v.as_str()) => v,
            Some(other) => {
                return Err(NetworkError::rejected(format!(
                    "linkedin: visibility {other} is not one of {}",
                    VISIBILITIES.join(", ")
                )));
            }
        };
        let mut body = serde_json::json!({
            "author": author,
            "commentary": commentary,
            "visibility": visibility,
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
        });
        if let Some(c) = content {
            body["content"] = c;
        }
        Ok(body)
    }

    /// The author's posts, newest first: the elements, and whether the list is complete or
    /// reaches back before `since` (so a post created since then would be in it).
    async fn recent_posts(
        &self,
        token: &str,
        author: &str,
        since: i64,
        start: usize,
    ) -> Result<(Vec<ListedPost>, bool), NetworkError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            elements: Vec<ListedPost>,
        }
        let mut url = self.api.url(API, "/rest/posts");
        url.query_pairs_mut()
            .append_pair("q", "author")
            .append_pair("author", author)
            .append_pair("start", &start.to_string())
            .append_pair("count", &LOOKUP_COUNT.to_string())
            .append_pair("sortBy", "LAST_MODIFIED");
        let page: Page = call::read(&self.api, call::rest(self.api.http.get(url), token))
            .await
            .map_err(|e| match e {
                // Listing a member's posts takes `r_member_social`, which LinkedIn grants to
                // few apps: its refusal says nothing about the account's token, only that we
                // cannot tell whether the part landed.
                NetworkError::Unauthorized { message } if message.starts_with("linkedin: 403") => {
                    NetworkError::unavailable(format!(
                        "{message}; cannot list {author}'s posts to tell whether the part landed"
                    ))
                }
                other => other,
            })?;
        let complete = page.elements.len() < LOOKUP_COUNT
            || page
                .elements
                .iter()
                .any(|p| p.last_modified_at.unwrap_or(i64::MAX) < since);
        Ok((page.elements, complete))
    }

    /// The post an earlier attempt created with `commentary`, found among the author's
    /// recent ones (see the module); `Ok(None)` only when the list holds every post since
    /// `sent_at` and it is not among them (a call still landing is not listed yet: see
    /// [`Network::lookup`]).
    async fn find(
        &self,
        token: &str,
        author: &str,
        commentary: &str,
        sent_at: i64,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let since = sent_at - LOOKUP_SKEW_MS;
        // Page by page, newest first, until the list reaches back before `since` (a busy
        // account may have published many posts since, a crash test hundreds): bounded.
        for page in 0..LOOKUP_PAGES {
            let (posts, complete) = self
                .recent_posts(token, author, since, page * LOOKUP_COUNT)
                .await?;
            let found = posts.into_iter().find(|p| {
                p.commentary.as_deref() == Some(commentary)
                    && p.created_at.unwrap_or(0) >= since
                    && p.lifecycle_state.as_deref() != Some("DRAFT")
            });
            match found {
                Some(p) => return Ok(Some(Self::published(p.id))),
                None if complete => return Ok(None),
                None => {}
            }
        }
        Err(NetworkError::unavailable(format!(
            "linkedin: {author} has more than {} posts since this part was sent; cannot tell \
             whether it landed",
            LOOKUP_COUNT * LOOKUP_PAGES
        )))
    }

    async fn sent_at(part: &Part<'_>) -> Result<Option<i64>, NetworkError> {
        Ok(part
            .steps
            .get(crate::hosted::SENT_AT)
            .await?
            .and_then(|v| v.parse::<i64>().ok()))
    }
}

/// One post of `GET /rest/posts?q=author`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedPost {
    id: String,
    #[serde(default)]
    commentary: Option<String>,
    #[serde(default)]
    created_at: Option<i64>,
    #[serde(default)]
    last_modified_at: Option<i64>,
    #[serde(default)]
    lifecycle_state: Option<String>,
}

#[async_trait::async_trait]
impl Network for LinkedIn {
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
        // No PKCE: crier is a confidential client (its secret goes with the code).
        Ok(self.oauth.authorize_url(&Authorize {
            code_challenge: None,
            ..a.clone()
        }))
    }

    async fn exchange_code(&self, e: &Exchange<'_>) -> Result<Connected, NetworkError> {
        let tokens = self.oauth.exchange(&self.api.http, e).await?;
        let mut creds = tokens.credentials(self.api.clock.now_ms(), None);
        creds.client = Some(e.client.clone());
        self.member(&creds).await
    }

    async fn exchange_code_all(&self, e: &Exchange<'_>) -> Result<Vec<Connected>, NetworkError> {
        let tokens = self.oauth.exchange(&self.api.http, e).await?;
        let mut creds = tokens.credentials(self.api.clock.now_ms(), None);
        creds.client = Some(e.client.clone());
        let mut all = vec![self.member(&creds).await?];
        all.extend(self.pages(&creds).await?);
        Ok(all)
    }

    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        let c = s.credentials;
        let (Some(refresh), Some(client)) = (c.refresh_token.as_deref(), c.client.as_ref()) else {
            return Err(NetworkError::Unauthorized {
                message: "linkedin: no refresh token (LinkedIn grants them to some apps only); \
                          connect the account again"
                    .into(),
            });
        };
        let tokens = self.oauth.refresh(&self.api.http, client, refresh).await?;
        let mut fresh = tokens.credentials(self.api.clock.now_ms(), Some(refresh));
        fresh.client = Some(client.clone());
        Ok(fresh)
    }

    /// Never revokes at LinkedIn: the member and each page they administer hold the same
    /// token, so revoking it on any one's disconnect (the member's too) would silently break
    /// every other account of the approval. The user ends the grant in LinkedIn's settings.
    async fn revoke(&self, _s: Session<'_>) -> Result<(), NetworkError> {
        Ok(())
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        let author = Self::author(&s)?;
        if !part.thread.is_empty() {
            return Err(NetworkError::rejected("linkedin has no threads or replies"));
        }
        let length = part.text.chars().count();
        if length > MAX_COMMENTARY {
            return Err(NetworkError::rejected(format!(
                "linkedin: the commentary is {length} characters; the limit is {MAX_COMMENTARY}"
            )));
        }
        let token = s.credentials.access_token.as_str();
        let earlier = Self::sent_at(&part).await?;
        let content = media::content(&self.api, token, author, &part).await?;
        let commentary = little::escape(part.text);
        let body = Self::post_body(author, &commentary, &part, content)?;
        // The first attempt's `sent_at` starts a later look-up's window; every attempt's time
        // holds off its "not published" until LinkedIn has had time to finish that call.
        self.api.sending(part.steps, earlier.is_none()).await?;
        let req = call::json(
            call::rest(self.api.http.post(self.api.url(API, "/rest/posts")), token),
            &body,
        );
        let resp = self.api.send(req).await?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            let urn = resp
                .headers()
                .get("x-restli-id")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| v.starts_with("urn:li:"))
                .map(str::to_owned);
            return urn.map(Self::published).ok_or_else(|| {
                NetworkError::unavailable("linkedin: a created post without its x-restli-id")
            });
        }
        let retry_after = Api::retry_after(resp.headers());
        let bytes = self.api.body(resp).await.unwrap_or_default();
        let e = call::ApiError::parse(&bytes);
        if let (Some(named), Some(earlier)) = (e.duplicate_of(), earlier) {
            // An earlier attempt sent this part; LinkedIn has it.
            if let Some(urn) = named {
                return Ok(Self::published(urn));
            }
            if let Some(found) = self.find(token, author, &commentary, earlier).await? {
                return Ok(found);
            }
        }
        Err(call::classify(&self.api, status, retry_after, &e))
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let Some(sent_at) = Self::sent_at(&part).await? else {
            // The create call never went out.
            return Ok(None);
        };
        let author = Self::author(&s)?;
        let commentary = little::escape(part.text);
        match self
            .find(&s.credentials.access_token, author, &commentary, sent_at)
            .await?
        {
            Some(found) => Ok(Some(found)),
            // Certain only once the latest create call has had time to land.
            None => self.api.missed(part.steps, self.api.settle()).await,
        }
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct SocialActions {
            #[serde(default)]
            likes_summary: Option<Likes>,
            #[serde(default)]
            comments_summary: Option<Comments>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Likes {
            #[serde(default)]
            total_likes: i64,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Comments {
            #[serde(default)]
            aggregated_total_comments: i64,
        }
        let url = self.api.url(
            API,
            &format!("/rest/socialActions/{}", call::urn_path(external_id)),
        );
        let a: SocialActions = call::read(
            &self.api,
            call::rest(self.api.http.get(url), &s.credentials.access_token),
        )
        .await?;
        Ok(Metrics {
            likes: a.likes_summary.map_or(0, |l| l.total_likes),
            replies: a
                .comments_summary
                .map_or(0, |c| c.aggregated_total_comments),
            ..Metrics::default()
        })
    }

    /// A page's followers: `GET /rest/networkSizes/{urlencoded organization urn}
    /// ?edgeType=COMPANY_FOLLOWED_BY_MEMBER` → `firstDegreeSize`.
    ///
    /// A member's: `None`, and nothing is called. `networkSizes` documents only the
    /// organization edge (`COMPANY_FOLLOWED_BY_MEMBER`); a member's own follower count is in
    /// LinkedIn's member analytics (`memberFollowersCount`), which needs a member analytics
    /// permission (`r_member_profileAnalytics`) crier does not ask for, and the connections
    /// count (`r_1st_connections_size`) is a partner-program permission and counts
    /// connections, not followers. With our scopes (`openid profile w_member_social` and the
    /// organization ones) there is no documented call for it.
    async fn followers(&self, s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct NetworkSize {
            #[serde(default)]
            first_degree_size: Option<u64>,
        }
        let author = Self::author(&s)?;
        if !author.starts_with("urn:li:organization:") {
            return Ok(None);
        }
        let mut url = self.api.url(
            API,
            &format!("/rest/networkSizes/{}", call::urn_path(author)),
        );
        url.query_pairs_mut()
            .append_pair("edgeType", "COMPANY_FOLLOWED_BY_MEMBER");
        let size: NetworkSize = call::read(
            &self.api,
            call::rest(self.api.http.get(url), &s.credentials.access_token),
        )
        .await?;
        Ok(size.first_degree_size)
    }
}
