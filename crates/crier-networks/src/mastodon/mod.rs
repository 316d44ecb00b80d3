//! Mastodon: any instance a user names, through the instance's REST API.
//!
//! Connecting: crier registers itself on the instance (`POST /api/v1/apps`, scopes
//! `read write`), sends the user to `/oauth/authorize` with PKCE (S256), trades the code at
//! `/oauth/token` and reads the account (`/api/v1/accounts/verify_credentials`). The client
//! goes into the credentials, so refresh and revoke need nothing else.
//!
//! Publishing one part: each attachment is uploaded (`POST /api/v2/media`, multipart `file`
//! and `description` = alt text); a `202` means the instance is still processing it, so
//! `GET /api/v1/media/:id` is polled (bounded in count and time) until it has a `url`. Then
//! `POST /api/v1/statuses` with `Idempotency-Key` = the part's key, `in_reply_to_id` = the
//! thread's last part, and the account's `visibility`, `spoiler_text` and `language`.
//! Media still processing at the end of the polls is `Unavailable` (the job retries; the
//! uploads are not reused, the instance removes unattached media by itself).
//!
//! Limits: `/api/v2/instance`, cached per instance ([`instance`]). Errors: see [`call`].
//! Trending tags: the instance's public `/api/v1/trends/tags`, one list per instance
//! ([`trends`]).
//! Finding a part whose answer was lost: Mastodon has no search by idempotency key (the key
//! only makes the instance replay the first status for a repeated POST, for about an hour). So
//! the time of the first attempt is kept in the part's durable steps before the POST; a
//! look-up reads the account's latest 40 statuses, keeps those created since then (less five
//! minutes of clock skew) that reply to the same status, and compares each one's source text
//! (`GET /api/v1/statuses/:id/source`, at most 10) with the part's text, exactly. The steps
//! live in the store, so this holds across restarts and nodes. Limits: two statuses with the
//! same text replying to the same status in the window cannot be told apart (the newest is
//! taken), and a status older than the latest 40 is not seen.
//!
//! Every instance is a server a user names: every URL passes [`crate::http::check_url`] and
//! every call goes through [`crate::http::client`] (the SSRF guard), with a timeout, and every
//! answer is read with a size cap.

mod call;
mod instance;
mod trends;

use std::sync::Arc;
use std::time::Duration;

use crier_core::Clock;
use crier_store::{Account, Metrics};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::{
    Authorize, ConnectKind, Connected, Credentials, Exchange, Network, NetworkError, OAuthClient,
    Part, PublishedPart, Rules, Session, TrendScope, TrendingTopic,
};

pub use instance::{DEFAULT_RULES, Instance, PLATFORM};

use call::Endpoint;

/// The OAuth scopes crier asks for: reading the account and its statuses, and posting.
pub const SCOPES: &str = "read write";

/// How the connector talks to instances.
#[derive(Debug, Clone)]
pub struct MastodonConfig {
    /// Lets instances on loopback and private addresses be reached (self-hosting, tests).
    pub allow_private_networks: bool,
    /// The timeout of each call.
    pub timeout: Duration,
    /// The app's name as instances show it ("via crier").
    pub client_name: String,
    pub website: Option<String>,
    /// The pause between two polls of a media object the instance is still processing.
    pub media_poll_interval: Duration,
    /// The longest time spent polling one media object (at most 60 polls in any case).
    pub media_poll_max: Duration,
}

impl Default for MastodonConfig {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            timeout: Duration::from_secs(30),
            client_name: "crier".into(),
            website: None,
            media_poll_interval: Duration::from_secs(1),
            media_poll_max: Duration::from_secs(60),
        }
    }
}

/// The most polls of one media object, whatever the configured times.
const MAX_MEDIA_POLLS: u32 = 60;
/// How long a look-up of the instance's limits may take before the defaults stand in.
const INSTANCE_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew allowed between us and the instance when matching statuses in a look-up.
const LOOKUP_SKEW_MS: i64 = 5 * 60 * 1000;
/// The step that keeps when a part was first sent (epoch ms).
const STARTED_AT: &str = "started_at";
/// Source texts fetched at most in one look-up.
const LOOKUP_MAX_SOURCES: usize = 20;
/// Pages of the account's statuses (40 each) one look-up reads at most.
const LOOKUP_PAGES: usize = 5;
const LOOKUP_PAGE: usize = 40;

pub struct Mastodon {
    config: MastodonConfig,
    http: reqwest::Client,
    /// For `/api/v2/instance` only: a shorter timeout, so a rules check never waits long.
    instance_http: reqwest::Client,
    clock: Arc<dyn Clock>,
    instances: instance::Cache,
}

impl Mastodon {
    pub fn new(config: MastodonConfig, clock: Arc<dyn Clock>) -> Self {
        let http = crate::http::client(config.timeout, config.allow_private_networks);
        let instance_http = crate::http::client(
            config.timeout.min(INSTANCE_TIMEOUT),
            config.allow_private_networks,
        );
        Self {
            config,
            http,
            instance_http,
            clock,
            instances: instance::Cache::default(),
        }
    }

    /// The instance's base URL (scheme, host, port), checked against the SSRF policy.
    fn base(&self, instance: &str) -> Result<url::Url, NetworkError> {
        let url = crate::http::check_url(instance, self.config.allow_private_networks)
            .map_err(|e| NetworkError::rejected(format!("mastodon: instance {instance}: {e}")))?;
        let mut base = url.clone();
        base.set_path("/");
        base.set_query(None);
        base.set_fragment(None);
        Ok(base)
    }

    fn endpoint(base: &url::Url, path: &str) -> url::Url {
        let mut u = base.clone();
        u.set_path(path);
        u
    }

    /// The instance and account of a session.
    fn session_base(&self, s: &Session<'_>) -> Result<url::Url, NetworkError> {
        let service = s
            .account
            .service
            .as_deref()
            .ok_or_else(|| NetworkError::Unauthorized {
                message: "mastodon: the account has no instance; connect it again".into(),
            })?;
        self.base(service)
    }

    fn bearer(s: &Session<'_>) -> String {
        format!("Bearer {}", s.credentials.access_token)
    }

    fn form(pairs: &[(&str, &str)]) -> String {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            f.append_pair(k, v);
        }
        f.finish()
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        s: &Session<'_>,
        url: url::Url,
        endpoint: Endpoint,
    ) -> Result<(reqwest::StatusCode, T), NetworkError> {
        let resp = call::send(self.http.get(url).header(AUTHORIZATION, Self::bearer(s))).await?;
        call::read(resp, endpoint, self.clock.as_ref()).await
    }

    /// The instance's limits and domain, from the cache or read now (bounded); the defaults
    /// when it cannot be read.
    pub async fn instance(&self, base: &url::Url) -> Arc<Instance> {
        let key = base.as_str().trim_end_matches('/').to_owned();
        let now = self.clock.now_ms();
        if let Some(found) = self.instances.get(&key, now) {
            return found;
        }
        let read = async {
            let resp = call::send(
                self.instance_http
                    .get(Self::endpoint(base, "/api/v2/instance")),
            )
            .await?;
            call::read::<instance::V2Instance>(resp, Endpoint::Other, self.clock.as_ref()).await
        };
        // The client's own timeout bounds it too; this also bounds a trickling body.
        let read = tokio::time::timeout(
            self.config.timeout.min(INSTANCE_TIMEOUT) + Duration::from_millis(500),
            read,
        )
        .await
        .unwrap_or(Err(NetworkError::Timeout));
        let (found, ttl) = match read {
            Ok((_, doc)) => (Arc::new(Instance::from_document(&doc)), instance::TTL_MS),
            Err(e) => {
                tracing::warn!(instance = %key, error = %e, "mastodon: instance limits unreadable; using the defaults");
                (Arc::new(Instance::defaults()), instance::FAILED_TTL_MS)
            }
        };
        self.instances
            .put(&key, found.clone(), now.saturating_add(ttl), now);
        found
    }

    async fn token(
        &self,
        base: &url::Url,
        pairs: &[(&str, &str)],
        refusal: fn(String) -> NetworkError,
    ) -> Result<TokenResponse, NetworkError> {
        let resp = call::send(
            self.http
                .post(Self::endpoint(base, "/oauth/token"))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Self::form(pairs)),
        )
        .await?;
        match call::read::<TokenResponse>(resp, Endpoint::Other, self.clock.as_ref()).await {
            Ok((_, t)) if !t.access_token.is_empty() => Ok(t),
            Ok(_) => Err(NetworkError::unavailable(
                "mastodon: the token endpoint answered without an access token",
            )),
            // The token endpoint's refusals (400 invalid_grant, 401 invalid_client) are
            // about this code or this client; the caller decides what they mean.
            Err(NetworkError::Rejected { message } | NetworkError::Unauthorized { message }) => {
                Err(refusal(message))
            }
            Err(e) => Err(e),
        }
    }

    fn credentials(&self, t: TokenResponse, client: &OAuthClient) -> Credentials {
        Credentials {
            access_token: t.access_token,
            refresh_token: t.refresh_token.filter(|r| !r.is_empty()),
            expires_at: t.expires_in.filter(|&s| s > 0).map(|s| {
                self.clock
                    .now_ms()
                    .saturating_add(s.min(10 * 365 * 86_400).saturating_mul(1000))
            }),
            client: Some(client.clone()),
            login: None,
            service: None,
        }
    }

    /// Uploads one attachment and waits until the instance has processed it.
    async fn upload(
        &self,
        s: &Session<'_>,
        base: &url::Url,
        a: &crate::Attachment,
    ) -> Result<String, NetworkError> {
        let file = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::from(a.bytes.clone()),
            a.bytes.len() as u64,
        )
        .file_name(sanitize_filename(&a.meta.filename))
        .mime_str(&a.meta.content_type)
        .map_err(|_| NetworkError::MediaRejected {
            message: format!(
                "mastodon: {} has a content type that is not a MIME type",
                a.meta.id
            ),
        })?;
        let mut form = reqwest::multipart::Form::new().part("file", file);
        if let Some(alt) = a.meta.alt_text.as_deref().filter(|t| !t.is_empty()) {
            form = form.text("description", alt.to_owned());
        }
        let resp = call::send(
            self.http
                .post(Self::endpoint(base, "/api/v2/media"))
                .header(AUTHORIZATION, Self::bearer(s))
                .multipart(form),
        )
        .await?;
        let (status, media) =
            call::read::<MediaAttachment>(resp, Endpoint::Media, self.clock.as_ref()).await?;
        if media.id.is_empty() {
            return Err(NetworkError::unavailable(
                "mastodon: the instance answered an upload without a media id",
            ));
        }
        if status != reqwest::StatusCode::ACCEPTED && media.url.is_some() {
            return Ok(media.id);
        }
        self.wait_processed(s, base, &media.id).await?;
        Ok(media.id)
    }

    /// Polls `GET /api/v1/media/:id` until it has a `url` (200), bounded in polls and time.
    async fn wait_processed(
        &self,
        s: &Session<'_>,
        base: &url::Url,
        id: &str,
    ) -> Result<(), NetworkError> {
        let started = tokio::time::Instant::now();
        let url = Self::endpoint(base, &format!("/api/v1/media/{}", path_segment(id)));
        for _ in 0..MAX_MEDIA_POLLS {
            if started.elapsed() + self.config.media_poll_interval > self.config.media_poll_max {
                break;
            }
            tokio::time::sleep(self.config.media_poll_interval).await;
            // 206 Partial Content: still processing; 200 with a url: ready; 422: it failed.
            let (status, media) = self
                .get_json::<MediaAttachment>(s, url.clone(), Endpoint::Media)
                .await?;
            if status == reqwest::StatusCode::OK && media.url.is_some() {
                return Ok(());
            }
        }
        Err(NetworkError::unavailable(format!(
            "mastodon: media {id} is still being processed by the instance after {} s",
            started.elapsed().as_secs()
        )))
    }

    fn published(status: &Status) -> Result<PublishedPart, NetworkError> {
        if status.id.is_empty() {
            return Err(NetworkError::unavailable(
                "mastodon: the instance answered without a status id",
            ));
        }
        let url = status
            .url
            .clone()
            .or_else(|| status.uri.clone())
            .unwrap_or_default();
        Ok(PublishedPart {
            external_id: status.id.clone(),
            url,
        })
    }
}

/// A file name safe to put in a multipart header: the last path component, printable ASCII
/// without quotes, at most 100 characters.
fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';'))
        .take(100)
        .collect();
    if clean.is_empty() {
        "upload".into()
    } else {
        clean
    }
}

/// An id from the instance, as one path segment (ids are digits on Mastodon; anything else is
/// percent-encoded so it cannot change the path).
fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

#[derive(Debug, serde::Deserialize)]
struct AppResponse {
    client_id: String,
    client_secret: Option<String>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

#[derive(Debug, serde::Deserialize)]
struct AccountEntity {
    id: String,
    username: String,
    #[serde(default)]
    acct: String,
    display_name: Option<String>,
    avatar: Option<String>,
    url: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct MediaAttachment {
    #[serde(default)]
    id: String,
    url: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Status {
    #[serde(default)]
    id: String,
    url: Option<String>,
    uri: Option<String>,
    created_at: Option<String>,
    in_reply_to_id: Option<String>,
    #[serde(default)]
    favourites_count: i64,
    #[serde(default)]
    reblogs_count: i64,
    #[serde(default)]
    replies_count: i64,
}

#[derive(Debug, serde::Deserialize)]
struct StatusSource {
    #[serde(default)]
    text: String,
}

#[async_trait::async_trait]
impl Network for Mastodon {
    fn rules(&self) -> &Rules {
        &DEFAULT_RULES
    }

    async fn rules_for(&self, account: &Account) -> Rules {
        let Some(base) = account.service.as_deref().and_then(|s| self.base(s).ok()) else {
            return DEFAULT_RULES.clone();
        };
        self.instance(&base).await.rules.clone()
    }

    fn connect_kind(&self) -> ConnectKind {
        ConnectKind::OAuth {
            pkce: true,
            per_instance: true,
        }
    }

    async fn register_client(
        &self,
        instance: &url::Url,
        redirect_uri: &str,
    ) -> Result<OAuthClient, NetworkError> {
        let base = self.base(instance.as_str())?;
        let mut pairs = vec![
            ("client_name", self.config.client_name.as_str()),
            ("redirect_uris", redirect_uri),
            ("scopes", SCOPES),
        ];
        if let Some(w) = &self.config.website {
            pairs.push(("website", w));
        }
        let resp = call::send(
            self.http
                .post(Self::endpoint(&base, "/api/v1/apps"))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Self::form(&pairs)),
        )
        .await?;
        let (_, app) = call::read::<AppResponse>(resp, Endpoint::Other, self.clock.as_ref())
            .await
            .map_err(|e| match e {
                // Nobody is connected yet: a refusal is the instance's, not an account's.
                NetworkError::Unauthorized { message } => NetworkError::Rejected { message },
                e => e,
            })?;
        if app.client_id.is_empty() {
            return Err(NetworkError::unavailable(
                "mastodon: the instance registered the app without a client id",
            ));
        }
        Ok(OAuthClient {
            client_id: app.client_id,
            client_secret: app.client_secret.filter(|s| !s.is_empty()),
        })
    }

    fn authorize_url(&self, a: &Authorize<'_>) -> Result<url::Url, NetworkError> {
        let instance = a
            .instance
            .ok_or_else(|| NetworkError::rejected("mastodon: an instance is needed"))?;
        let challenge = a
            .code_challenge
            .ok_or_else(|| NetworkError::rejected("mastodon: a PKCE code challenge is needed"))?;
        let mut url = Self::endpoint(&self.base(instance.as_str())?, "/oauth/authorize");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &a.client.client_id)
            .append_pair("redirect_uri", a.redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", a.state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url)
    }

    async fn exchange_code(&self, e: &Exchange<'_>) -> Result<Connected, NetworkError> {
        let instance = e
            .instance
            .ok_or_else(|| NetworkError::rejected("mastodon: an instance is needed"))?;
        let base = self.base(instance.as_str())?;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", e.code),
            ("client_id", e.client.client_id.as_str()),
            ("redirect_uri", e.redirect_uri),
            ("scope", SCOPES),
        ];
        if let Some(secret) = &e.client.client_secret {
            pairs.push(("client_secret", secret));
        }
        if let Some(v) = e.code_verifier {
            pairs.push(("code_verifier", v));
        }
        let token = self
            .token(&base, &pairs, |message| NetworkError::Rejected { message })
            .await?;
        let credentials = self.credentials(token, e.client);
        let resp = call::send(
            self.http
                .get(Self::endpoint(&base, "/api/v1/accounts/verify_credentials"))
                .header(
                    AUTHORIZATION,
                    format!("Bearer {}", credentials.access_token),
                ),
        )
        .await?;
        let (_, me) =
            call::read::<AccountEntity>(resp, Endpoint::Other, self.clock.as_ref()).await?;
        if me.id.is_empty() || me.username.is_empty() {
            return Err(NetworkError::unavailable(
                "mastodon: verify_credentials answered without an account id",
            ));
        }
        let handle = if me.acct.contains('@') {
            me.acct.clone()
        } else {
            let host = match self.instance(&base).await.domain.clone() {
                Some(d) => d,
                None => match (base.host_str(), base.port()) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    (Some(h), None) => h.to_owned(),
                    _ => String::new(),
                },
            };
            format!("{}@{host}", me.username)
        };
        Ok(Connected {
            external_id: me.id,
            handle,
            display_name: me.display_name.filter(|d| !d.is_empty()),
            avatar_url: me.avatar,
            profile_url: me.url,
            service: Some(base.as_str().trim_end_matches('/').to_owned()),
            credentials,
        })
    }

    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        let Some(refresh_token) = s.credentials.refresh_token.as_deref() else {
            return Err(NetworkError::rejected(
                "this network does not support token refresh",
            ));
        };
        let client = s
            .credentials
            .client
            .as_ref()
            .ok_or_else(|| NetworkError::Unauthorized {
                message: "mastodon: no OAuth client is known for this account".into(),
            })?;
        let base = self.session_base(&s)?;
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client.client_id.as_str()),
        ];
        if let Some(secret) = &client.client_secret {
            pairs.push(("client_secret", secret));
        }
        let token = self
            .token(&base, &pairs, |message| NetworkError::Unauthorized {
                message,
            })
            .await?;
        let mut fresh = self.credentials(token, client);
        if fresh.refresh_token.is_none() {
            fresh.refresh_token = Some(refresh_token.to_owned());
        }
        Ok(fresh)
    }

    async fn revoke(&self, s: Session<'_>) -> Result<(), NetworkError> {
        let base = self.session_base(&s)?;
        let mut pairs = vec![("token", s.credentials.access_token.as_str())];
        if let Some(client) = &s.credentials.client {
            pairs.push(("client_id", client.client_id.as_str()));
            if let Some(secret) = &client.client_secret {
                pairs.push(("client_secret", secret));
            }
        }
        let resp = call::send(
            self.http
                .post(Self::endpoint(&base, "/oauth/revoke"))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Self::form(&pairs)),
        )
        .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(call::error_of(resp, Endpoint::Other, self.clock.as_ref()).await)
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        let base = self.session_base(&s)?;
        let mut media_ids = Vec::with_capacity(part.media.len());
        for a in part.media {
            media_ids.push(self.upload(&s, &base, a).await?);
        }
        let reply_to = part.thread.last().map(String::as_str);
        let mut pairs: Vec<(&str, &str)> = vec![("status", part.text)];
        for id in &media_ids {
            pairs.push(("media_ids[]", id));
        }
        if let Some(r) = reply_to {
            pairs.push(("in_reply_to_id", r));
        }
        let o = part.options;
        for (k, v) in [
            ("visibility", &o.visibility),
            ("spoiler_text", &o.spoiler_text),
            ("language", &o.language),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                pairs.push((k, v));
            }
        }
        // Kept before the status is sent, durably (the part's steps): when the first attempt
        // went out, which a look-up after a lost answer or a crash searches from.
        if part.steps.get(STARTED_AT).await?.is_none() {
            part.steps
                .put(STARTED_AT, &self.clock.now_ms().to_string())
                .await?;
        }
        let resp = call::send(
            self.http
                .post(Self::endpoint(&base, "/api/v1/statuses"))
                .header(AUTHORIZATION, Self::bearer(&s))
                .header("Idempotency-Key", part.idem_key)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Self::form(&pairs)),
        )
        .await?;
        let (_, status) = call::read::<Status>(resp, Endpoint::Other, self.clock.as_ref()).await?;
        Self::published(&status)
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let Some(started_at) = part.steps.get(STARTED_AT).await? else {
            // Nothing was ever sent for this part (the time is kept before the first POST).
            return Ok(None);
        };
        let started_at: i64 = started_at.parse().map_err(|_| {
            NetworkError::unavailable("mastodon: a kept start time is not a number")
        })?;
        let in_reply_to = part.thread.last().cloned();
        let base = self.session_base(&s)?;
        let since = started_at - LOOKUP_SKEW_MS;
        let created_ms = |st: &Status| {
            st.created_at
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond())
        };
        // "Not published" only when every status since the part was sent was looked at: an
        // account that posted more than the pages hold since, or more look-alike statuses
        // than the sources fetched, answers "cannot tell" (and the part is tried again
        // later), never a second status.
        let cannot_tell = || {
            NetworkError::unavailable(
                "mastodon: the account posted too much since this part was sent to tell whether \
                 it was published",
            )
        };
        let mut sources = 0;
        let mut max_id: Option<String> = None;
        for _ in 0..LOOKUP_PAGES {
            let mut url = Self::endpoint(
                &base,
                &format!(
                    "/api/v1/accounts/{}/statuses",
                    path_segment(&s.account.external_id)
                ),
            );
            url.query_pairs_mut()
                .append_pair("limit", &LOOKUP_PAGE.to_string())
                .append_pair("exclude_reblogs", "true");
            if let Some(id) = &max_id {
                url.query_pairs_mut().append_pair("max_id", id);
            }
            let (_, statuses) = self
                .get_json::<Vec<Status>>(&s, url, Endpoint::Other)
                .await?;
            // The account's statuses come newest first.
            let candidates = statuses.iter().filter(|st| {
                st.in_reply_to_id == in_reply_to && created_ms(st).is_some_and(|t| t >= since)
            });
            for st in candidates {
                if sources == LOOKUP_MAX_SOURCES {
                    return Err(cannot_tell());
                }
                sources += 1;
                let url = Self::endpoint(
                    &base,
                    &format!("/api/v1/statuses/{}/source", path_segment(&st.id)),
                );
                let (_, source) = self
                    .get_json::<StatusSource>(&s, url, Endpoint::Other)
                    .await?;
                if source.text == part.text {
                    return Self::published(st).map(Some);
                }
            }
            // A short page is the account's first status; one whose oldest status is older
            // than the part reaches back far enough.
            let reached = match statuses.last() {
                None => true,
                Some(oldest) => {
                    statuses.len() < LOOKUP_PAGE || created_ms(oldest).is_some_and(|t| t < since)
                }
            };
            if reached {
                return Ok(None);
            }
            max_id = statuses.last().map(|st| st.id.clone());
        }
        Err(cannot_tell())
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        let base = self.session_base(&s)?;
        let url = Self::endpoint(
            &base,
            &format!("/api/v1/statuses/{}", path_segment(external_id)),
        );
        let (_, st) = self.get_json::<Status>(&s, url, Endpoint::Other).await?;
        Ok(Metrics {
            likes: st.favourites_count.max(0),
            reposts: st.reblogs_count.max(0),
            replies: st.replies_count.max(0),
            // Mastodon does not count views.
            impressions: 0,
        })
    }

    fn trend_scope(&self) -> Option<TrendScope> {
        Some(TrendScope::Server)
    }

    async fn trending(&self, s: Session<'_>) -> Result<Vec<TrendingTopic>, NetworkError> {
        let base = self.session_base(&s)?;
        let mut url = Self::endpoint(&base, "/api/v1/trends/tags");
        url.query_pairs_mut()
            .append_pair("limit", &trends::LIMIT.to_string());
        // Public: no token (see the `trends` module).
        let resp = call::send(self.http.get(url)).await?;
        let (_, tags) =
            call::read::<Vec<serde_json::Value>>(resp, Endpoint::Other, self.clock.as_ref())
                .await?;
        Ok(trends::topics(&tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_and_ids_cannot_escape() {
        assert_eq!(sanitize_filename("../../etc/pa\"ss;wd.png"), "passwd.png");
        assert_eq!(sanitize_filename("dir\\x.png"), "x.png");
        assert_eq!(sanitize_filename("é"), "upload");
        assert_eq!(path_segment("123"), "123");
        assert_eq!(path_segment("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
    }

    #[test]
    fn the_authorize_url_has_every_parameter_and_pkce() {
        let m = Mastodon::new(
            MastodonConfig::default(),
            Arc::new(crier_core::clock::SystemClock),
        );
        let client = OAuthClient {
            client_id: "cid".into(),
            client_secret: Some("secret".into()),
        };
        let instance: url::Url = "https://social.example/some/path?q=1".parse().unwrap();
        let url = m
            .authorize_url(&Authorize {
                client: &client,
                instance: Some(&instance),
                redirect_uri: "https://crier.example/cb?x=1",
                state: "st&ate",
                code_challenge: Some("chal"),
            })
            .unwrap();
        assert_eq!(url.path(), "/oauth/authorize");
        assert_eq!(url.host_str(), Some("social.example"));
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["redirect_uri"], "https://crier.example/cb?x=1");
        assert_eq!(q["scope"], "read write");
        assert_eq!(q["state"], "st&ate");
        assert_eq!(q["code_challenge"], "chal");
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(!url.as_str().contains("secret"));
        // A loopback instance is refused while private networks are not allowed.
        let local: url::Url = "http://127.0.0.1:3000".parse().unwrap();
        let err = m
            .authorize_url(&Authorize {
                client: &client,
                instance: Some(&local),
                redirect_uri: "https://crier.example/cb",
                state: "s",
                code_challenge: Some("c"),
            })
            .unwrap_err();
        assert_eq!(err.code(), "network_rejected");
    }
}
