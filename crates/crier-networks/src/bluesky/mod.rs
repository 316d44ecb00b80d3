//! Bluesky (the AT Protocol), spoken as plain XRPC to the account's PDS.
//!
//! - Connect: a handle (or email) and an app password → `com.atproto.server.createSession` at
//!   the service the user names (default `https://bsky.social`). The account's PDS is the
//!   session's DID document `#atproto_pds` endpoint when the answer carries one (an entryway
//!   such as bsky.social does), else the login service (a PDS logged into directly). The
//!   credentials keep both JWTs, the access token's `exp`, and the login itself, so a new
//!   session can be made when the refresh token has expired too.
//! - Publish: one `app.bsky.feed.post` record per part, at a record key derived from the part's
//!   idempotency key ([`tid::from_key`]): a retry targets the same record and the PDS refuses a
//!   second copy (with a 500, not a conflict), so every failed `createRecord` is checked with
//!   `getRecord` before it counts as a failure. Facets at UTF-8 byte offsets ([`facets`]);
//!   images through `uploadBlob` with alt text and aspect ratio; a link card
//!   (`app.bsky.embed.external`) for the first link when there are no images, its page and
//!   image fetched through the SSRF-guarded client with size caps; threads as replies with
//!   `root` and `parent` strong refs.
//! - Video is refused by the rules: Bluesky's video goes through a separate video service
//!   (`video.bsky.app`, job-based processing), which is not part of a PDS and cannot be tested
//!   against one.
//! - Metrics come from `app.bsky.feed.getPosts`, which a PDS only proxies to an AppView; a lone
//!   PDS has none and the answer is `Unavailable`.
//! - Trending topics: `app.bsky.unspecced.getTrendingTopics`, an AppView method too, read per
//!   account because the AppView ranks it for the viewer ([`trends`]).
//!
//! Every server here is one the user names, so every call goes through
//! [`crate::http::client`] and [`crate::http::check_url`].

pub mod card;
pub mod facets;
pub mod tid;
mod trends;
mod xrpc;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::Metrics;
use serde_json::{Value, json};

use crate::{
    Attachment, ConnectKind, Connected, Credentials, Login, MediaRules, Network, NetworkError,
    Part, PublishedPart, Rules, Session, TrendScope, TrendingTopic,
};
use xrpc::{Xrpc, XrpcError};

pub const PLATFORM: &str = "bluesky";
const POST: &str = "app.bsky.feed.post";
/// The lexicon's `maxSize` for an image blob of `app.bsky.embed.images`.
pub const MAX_IMAGE_BYTES: u64 = 1_000_000;
/// The largest page read for a link card, and the largest card image.
const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// The longest wait for a card's page or image: a card is decoration and must not eat the
/// publisher's budget for the call (its default is 15 s).
const CARD_TIMEOUT: Duration = Duration::from_secs(5);
/// How many facets (mentions resolved one by one) a part may carry; the rest stay text.
const MAX_MENTIONS: usize = 20;
/// All mentions of one part are resolved within this (the publisher bounds the whole call,
/// and a post must not time out on every attempt because handles on dead domains resolve
/// slowly); what is not resolved by then stays plain text.
const MENTIONS_BUDGET: Duration = Duration::from_secs(4);

pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::Graphemes,
    max_length: 300,
    threads: true,
    max_thread_parts: 25,
    media: MediaRules {
        min_count: 0,
        max_count: 4,
        image_types: ["image/jpeg", "image/png", "image/webp", "image/gif"]
            .map(str::to_owned)
            .to_vec(),
        max_image_bytes: MAX_IMAGE_BYTES,
        max_image_side: 0,
        // See the module documentation: the video service is not part of a PDS.
        video_types: Vec::new(),
        max_video_bytes: 0,
        max_video_ms: 0,
        max_videos: 0,
        mix: false,
        max_alt_text: 2000,
    },
    options: Vec::new(),
    // A tag facet is at most 64 graphemes (app.bsky.richtext.facet#tag); Bluesky documents
    // no count, so 10 is a conservative bound of ours.
    hashtags: crate::rules::HashtagRules {
        max_count: 10,
        recommended: 2,
        max_length: 64,
    },
});

#[derive(Debug, Clone)]
pub struct BlueskyConfig {
    /// Where to log in when the user names no service.
    pub default_service: String,
    /// Lets calls reach loopback and private addresses (self-hosted PDS, tests).
    pub allow_private_networks: bool,
    /// Timeout of each call.
    pub timeout: Duration,
}

impl Default for BlueskyConfig {
    fn default() -> Self {
        Self {
            default_service: "https://bsky.social".into(),
            allow_private_networks: false,
            timeout: Duration::from_secs(30),
        }
    }
}

pub struct Bluesky {
    config: BlueskyConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

/// A record's strong reference.
#[derive(Debug, Clone)]
struct StrongRef {
    uri: String,
    cid: String,
}

impl Bluesky {
    pub fn new(config: BlueskyConfig, clock: Arc<dyn Clock>) -> Self {
        let http = crate::http::client(config.timeout, config.allow_private_networks);
        Self {
            config,
            http,
            clock,
        }
    }

    /// A server's base URL, checked by the SSRF guard.
    fn base(&self, service: &str) -> Result<url::Url, NetworkError> {
        crate::http::check_url(service, self.config.allow_private_networks)
            .map_err(|e| NetworkError::rejected(format!("bluesky: {service}: {e}")))
    }

    fn xrpc<'a>(&'a self, base: &'a url::Url) -> Xrpc<'a> {
        Xrpc {
            http: &self.http,
            base,
            now_s: self.clock.now_ms() / 1000,
        }
    }

    fn session_base(&self, s: &Session<'_>) -> Result<url::Url, NetworkError> {
        let service = s
            .account
            .service
            .as_deref()
            .or(s.credentials.service.as_deref())
            .unwrap_or(&self.config.default_service);
        self.base(service)
    }

    fn did<'a>(&self, s: &Session<'a>) -> Result<&'a str, NetworkError> {
        let did = s.account.external_id.as_str();
        if did.starts_with("did:") {
            Ok(did)
        } else {
            Err(NetworkError::Unauthorized {
                message: "bluesky: the account has no DID; connect it again".into(),
            })
        }
    }

    /// `createSession`, and the credentials and identity it gives.
    async fn create_session(&self, login: &Login) -> Result<(Value, url::Url), NetworkError> {
        let service = login
            .service
            .as_deref()
            .unwrap_or(&self.config.default_service);
        let base = self.base(service)?;
        let session = self
            .xrpc(&base)
            .procedure(
                "com.atproto.server.createSession",
                &json!({"identifier": login.identifier, "password": login.password}),
                None,
            )
            .await
            .map_err(|e| match e.status {
                // Wrong identifier or password: 401 AuthenticationRequired (or 400).
                Some(400 | 401) => NetworkError::Unauthorized { message: e.message },
                _ => e.into_network(false),
            })?;
        Ok((session, base))
    }

    fn credentials(
        &self,
        session: &Value,
        login: Option<Login>,
    ) -> Result<Credentials, NetworkError> {
        let access = str_field(session, "accessJwt")?;
        let refresh = str_field(session, "refreshJwt")?;
        Ok(Credentials {
            access_token: access.to_owned(),
            refresh_token: Some(refresh.to_owned()),
            expires_at: jwt_exp_ms(access),
            client: None,
            login,
            service: None,
        })
    }

    async fn get_record(
        &self,
        base: &url::Url,
        repo: &str,
        collection: &str,
        rkey: &str,
    ) -> Result<Option<Value>, XrpcError> {
        match self
            .xrpc(base)
            .query(
                "com.atproto.repo.getRecord",
                &[("repo", repo), ("collection", collection), ("rkey", rkey)],
                None,
            )
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is("RecordNotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn published(&self, did: &str, uri: &str) -> PublishedPart {
        let rkey = uri.rsplit('/').next().unwrap_or_default();
        PublishedPart {
            external_id: uri.to_owned(),
            url: format!("https://bsky.app/profile/{did}/post/{rkey}"),
        }
    }

    /// The strong ref of a post named by its `at://` URI.
    async fn strong_ref(&self, base: &url::Url, uri: &str) -> Result<StrongRef, NetworkError> {
        let (repo, collection, rkey) = parse_at_uri(uri)
            .ok_or_else(|| NetworkError::rejected(format!("bluesky: not a post URI: {uri}")))?;
        let record = self
            .get_record(base, repo, collection, rkey)
            .await
            .map_err(|e| e.into_network(false))?
            .ok_or_else(|| {
                NetworkError::rejected(format!("bluesky: the post to reply to is gone: {uri}"))
            })?;
        Ok(StrongRef {
            uri: str_field(&record, "uri")?.to_owned(),
            cid: str_field(&record, "cid")?.to_owned(),
        })
    }

    async fn upload_blob(
        &self,
        base: &url::Url,
        token: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<Value, NetworkError> {
        let answer = self
            .xrpc(base)
            .upload("com.atproto.repo.uploadBlob", bytes, content_type, token)
            .await
            .map_err(|e| e.into_network(true))?;
        answer
            .get("blob")
            .cloned()
            .ok_or_else(|| NetworkError::unavailable("bluesky: uploadBlob answered no blob"))
    }

    async fn facets(&self, base: &url::Url, text: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut mentions = 0;
        let deadline = tokio::time::Instant::now() + MENTIONS_BUDGET;
        for span in facets::detect(text) {
            let feature = match span.feature {
                facets::Feature::Link(uri) => {
                    json!({"$type": "app.bsky.richtext.facet#link", "uri": uri})
                }
                facets::Feature::Tag(tag) => {
                    json!({"$type": "app.bsky.richtext.facet#tag", "tag": tag})
                }
                facets::Feature::Mention(handle) => {
                    mentions += 1;
                    if mentions > MAX_MENTIONS {
                        continue;
                    }
                    // A handle that does not resolve (in the budget) stays plain text.
                    let query = self.xrpc(base);
                    let params = [("handle", handle.as_str())];
                    let resolve = query.query("com.atproto.identity.resolveHandle", &params, None);
                    let Ok(Ok(resolved)) = tokio::time::timeout_at(deadline, resolve).await else {
                        continue;
                    };
                    let Some(did) = resolved.get("did").and_then(Value::as_str) else {
                        continue;
                    };
                    json!({"$type": "app.bsky.richtext.facet#mention", "did": did})
                }
            };
            out.push(json!({
                "index": {"byteStart": span.start, "byteEnd": span.end},
                "features": [feature],
            }));
        }
        out
    }

    async fn images(
        &self,
        base: &url::Url,
        token: &str,
        media: &[Attachment],
    ) -> Result<Value, NetworkError> {
        let mut images = Vec::with_capacity(media.len());
        for m in media {
            if m.meta.is_video() || !RULES.media.image_types.contains(&m.meta.content_type) {
                return Err(NetworkError::MediaRejected {
                    message: format!(
                        "bluesky: {} is {}; Bluesky takes jpeg, png, webp and gif images here",
                        m.meta.id, m.meta.content_type
                    ),
                });
            }
            if m.bytes.len() as u64 > MAX_IMAGE_BYTES {
                return Err(NetworkError::MediaRejected {
                    message: format!(
                        "bluesky: {} is {} bytes; images are at most {MAX_IMAGE_BYTES}",
                        m.meta.id,
                        m.bytes.len()
                    ),
                });
            }
            // The type is the bytes' (a PDS may store what it is told).
            if sniff_image(&m.bytes) != Some(m.meta.content_type.as_str()) {
                return Err(NetworkError::MediaRejected {
                    message: format!(
                        "bluesky: {}'s bytes are not {}",
                        m.meta.id, m.meta.content_type
                    ),
                });
            }
            let blob = self
                .upload_blob(base, token, m.bytes.clone(), &m.meta.content_type)
                .await?;
            let alt: String = m
                .meta
                .alt_text
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(2000)
                .collect();
            let mut image = json!({"image": blob, "alt": alt});
            if let (Some(w), Some(h)) = (m.meta.width, m.meta.height)
                && w > 0
                && h > 0
            {
                image["aspectRatio"] = json!({"width": w, "height": h});
            }
            images.push(image);
        }
        Ok(json!({"$type": "app.bsky.embed.images", "images": images}))
    }

    /// The card of `link`, or `None` when the page cannot be read: a card is decoration, and a
    /// post is not held back for it. A card image that fails leaves a card without a thumb.
    async fn link_card(&self, base: &url::Url, token: &str, link: &str) -> Option<Value> {
        let page_url = crate::http::check_url(link, self.config.allow_private_networks).ok()?;
        let resp = self
            .http
            .get(page_url.clone())
            .timeout(CARD_TIMEOUT.min(self.config.timeout))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let is_html = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|t| t.contains("html"));
        if !is_html {
            return None;
        }
        let body = xrpc::read_capped(resp, MAX_PAGE_BYTES).await.ok()?;
        let found = card::parse(&String::from_utf8_lossy(&body));
        let mut external = json!({
            "uri": link,
            "title": found.title.unwrap_or_else(|| link.to_owned()),
            "description": found.description.unwrap_or_default(),
        });
        if let Some(image) = found.image
            && let Some(thumb) = self.card_thumb(base, token, &page_url, &image).await
        {
            external["thumb"] = thumb;
        }
        Some(json!({"$type": "app.bsky.embed.external", "external": external}))
    }

    async fn card_thumb(
        &self,
        base: &url::Url,
        token: &str,
        page: &url::Url,
        image: &str,
    ) -> Option<Value> {
        let url = page.join(image).ok()?;
        let url = crate::http::check_url(url.as_str(), self.config.allow_private_networks).ok()?;
        let resp = self
            .http
            .get(url)
            .timeout(CARD_TIMEOUT.min(self.config.timeout))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let bytes = xrpc::read_capped(resp, MAX_IMAGE_BYTES as usize)
            .await
            .ok()?;
        let content_type = sniff_image(&bytes)?;
        self.upload_blob(base, token, bytes, content_type)
            .await
            .ok()
    }
}

/// The image type from the bytes' magic numbers (never the server's word).
pub fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, NetworkError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| NetworkError::unavailable(format!("bluesky: the answer has no {key}")))
}

/// `at://{repo}/{collection}/{rkey}`.
pub fn parse_at_uri(uri: &str) -> Option<(&str, &str, &str)> {
    let rest = uri.strip_prefix("at://")?;
    let mut it = rest.split('/');
    let (repo, collection, rkey) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || repo.is_empty() || collection.is_empty() || rkey.is_empty() {
        return None;
    }
    Some((repo, collection, rkey))
}

/// The `exp` of a JWT (epoch ms), read without checking the signature: it only schedules the
/// refresh, and the server checks the token itself.
pub fn jwt_exp_ms(jwt: &str) -> Option<i64> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()?.checked_mul(1000)
}

/// The PDS endpoint of a DID document.
fn pds_endpoint(did_doc: &Value) -> Option<&str> {
    did_doc
        .get("service")?
        .as_array()?
        .iter()
        .find(|s| {
            s.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| id == "#atproto_pds" || id.ends_with("#atproto_pds"))
        })?
        .get("serviceEndpoint")?
        .as_str()
}

#[async_trait::async_trait]
impl Network for Bluesky {
    fn rules(&self) -> &Rules {
        &RULES
    }

    fn connect_kind(&self) -> ConnectKind {
        ConnectKind::Credentials
    }

    async fn login(&self, login: &Login) -> Result<Connected, NetworkError> {
        let (session, login_base) = self.create_session(login).await?;
        let did = str_field(&session, "did")?.to_owned();
        let handle = str_field(&session, "handle")?.to_owned();
        // The account's own PDS, when the login went through an entryway; it passes the same
        // guard as any server a user names.
        let service = match session.get("didDoc").and_then(pds_endpoint) {
            Some(endpoint) => self.base(endpoint)?,
            None => login_base,
        };
        let service_str = service.as_str().trim_end_matches('/').to_owned();
        let mut credentials = self.credentials(&session, Some(login.clone()))?;
        // The PDS goes with the tokens, not the identity: the account is its DID wherever it
        // is hosted, so a move to another PDS and a reconnect keep the same account.
        credentials.service = Some(service_str.clone());
        let profile = self
            .get_record(&service, &did, "app.bsky.actor.profile", "self")
            .await
            .ok()
            .flatten();
        let value = profile.as_ref().and_then(|p| p.get("value"));
        let display_name = value
            .and_then(|v| v.get("displayName"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let avatar_url = value
            .and_then(|v| v.pointer("/avatar/ref/$link"))
            .and_then(Value::as_str)
            .map(|cid| format!("{service_str}/xrpc/com.atproto.sync.getBlob?did={did}&cid={cid}"));
        Ok(Connected {
            profile_url: Some(format!("https://bsky.app/profile/{handle}")),
            external_id: did,
            handle,
            display_name,
            avatar_url,
            service: None,
            credentials,
        })
    }

    async fn refresh(&self, s: Session<'_>) -> Result<Credentials, NetworkError> {
        let base = self.session_base(&s)?;
        let login = s.credentials.login.clone();
        if let Some(refresh) = s.credentials.refresh_token.as_deref() {
            match self
                .xrpc(&base)
                .procedure_empty("com.atproto.server.refreshSession", refresh)
                .await
            {
                Ok(session) => {
                    let mut fresh = self.credentials(&session, login)?;
                    fresh.service = s.credentials.service.clone();
                    return Ok(fresh);
                }
                // The refresh token itself expired or was revoked: a new session below.
                Err(e) if matches!(e.status, Some(400 | 401)) => {}
                Err(e) => return Err(e.into_network(false)),
            }
        }
        let Some(login) = login else {
            return Err(NetworkError::Unauthorized {
                message: "bluesky: the session expired; connect the account again".into(),
            });
        };
        let (session, _) = self.create_session(&login).await?;
        if str_field(&session, "did")? != s.account.external_id {
            return Err(NetworkError::Unauthorized {
                message: "bluesky: the login now names another account".into(),
            });
        }
        let mut fresh = self.credentials(&session, Some(login))?;
        fresh.service = s.credentials.service.clone();
        Ok(fresh)
    }

    async fn revoke(&self, s: Session<'_>) -> Result<(), NetworkError> {
        let base = self.session_base(&s)?;
        let Some(refresh) = s.credentials.refresh_token.as_deref() else {
            return Ok(());
        };
        match self
            .xrpc(&base)
            .procedure_empty("com.atproto.server.deleteSession", refresh)
            .await
        {
            Ok(_) => Ok(()),
            // Already gone is what we wanted.
            Err(e) if matches!(e.status, Some(400 | 401)) => Ok(()),
            Err(e) => Err(e.into_network(false)),
        }
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        let base = self.session_base(&s)?;
        let did = self.did(&s)?;
        let token = s.credentials.access_token.as_str();
        let rkey = tid::from_key(part.idem_key);

        let mut record = json!({
            "$type": POST,
            "text": part.text,
            "createdAt": self.clock.now().to_string(),
        });
        let facets = self.facets(&base, part.text).await;
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        if let Some(lang) = part.options.language.as_deref().filter(|l| !l.is_empty()) {
            record["langs"] = json!([lang]);
        }
        if let (Some(root), Some(parent)) = (part.thread.first(), part.thread.last()) {
            let root = self.strong_ref(&base, root).await?;
            let parent = self.strong_ref(&base, parent).await?;
            record["reply"] = json!({
                "root": {"uri": root.uri, "cid": root.cid},
                "parent": {"uri": parent.uri, "cid": parent.cid},
            });
        }
        if !part.media.is_empty() {
            if part.media.len() > RULES.media.max_count {
                return Err(NetworkError::MediaRejected {
                    message: format!(
                        "bluesky: {} images; a post takes at most {}",
                        part.media.len(),
                        RULES.media.max_count
                    ),
                });
            }
            record["embed"] = self.images(&base, token, part.media).await?;
        } else if let Some(link) =
            facets::detect(part.text)
                .into_iter()
                .find_map(|s| match s.feature {
                    facets::Feature::Link(l) => Some(l),
                    _ => None,
                })
            && let Some(card) = self.link_card(&base, token, &link).await
        {
            record["embed"] = card;
        }

        let created = self
            .xrpc(&base)
            .procedure(
                "com.atproto.repo.createRecord",
                &json!({"repo": did, "collection": POST, "rkey": rkey, "record": record}),
                Some(token),
            )
            .await;
        match created {
            Ok(answer) => Ok(self.published(did, str_field(&answer, "uri")?)),
            Err(e) => {
                // A record at our key may be there: a retry after a lost answer (the PDS says
                // 500 for a duplicate key) or an answer cut on the way back. Only the record
                // tells; if it cannot be read, the first error stands.
                match self.get_record(&base, did, POST, &rkey).await {
                    Ok(Some(found)) => Ok(self.published(did, str_field(&found, "uri")?)),
                    _ => Err(e.into_network(false)),
                }
            }
        }
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let idem_key = part.idem_key;
        let base = self.session_base(&s)?;
        let did = self.did(&s)?;
        let rkey = tid::from_key(idem_key);
        let found = self
            .get_record(&base, did, POST, &rkey)
            .await
            .map_err(|e| e.into_network(false))?;
        found
            .map(|r| Ok(self.published(did, str_field(&r, "uri")?)))
            .transpose()
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        let base = self.session_base(&s)?;
        parse_at_uri(external_id).ok_or_else(|| {
            NetworkError::rejected(format!("bluesky: not a post URI: {external_id}"))
        })?;
        let answer = self
            .xrpc(&base)
            .query(
                "app.bsky.feed.getPosts",
                &[("uris", external_id)],
                Some(&s.credentials.access_token),
            )
            .await
            .map_err(|e| match e.into_network(false) {
                // A PDS answers app.bsky.* only by proxying to an AppView; without one it says
                // 400 "No service configured", which is not the post's fault.
                NetworkError::Rejected { message } => NetworkError::unavailable(message),
                other => other,
            })?;
        let post = answer
            .get("posts")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .ok_or_else(|| NetworkError::rejected(format!("bluesky: no post {external_id}")))?;
        let count = |k: &str| post.get(k).and_then(Value::as_i64).unwrap_or(0);
        Ok(Metrics {
            likes: count("likeCount"),
            reposts: count("repostCount"),
            replies: count("replyCount"),
            // Bluesky does not publish views.
            impressions: 0,
        })
    }

    fn trend_scope(&self) -> Option<TrendScope> {
        Some(TrendScope::Account)
    }

    async fn trending(&self, s: Session<'_>) -> Result<Vec<TrendingTopic>, NetworkError> {
        let base = self.session_base(&s)?;
        let limit = trends::LIMIT.to_string();
        let answer = self
            .xrpc(&base)
            .query(
                trends::NSID,
                &[("limit", limit.as_str())],
                Some(&s.credentials.access_token),
            )
            .await
            .map_err(|e| match e.into_network(false) {
                // A PDS without an AppView says 400 "No service configured for …": not a
                // refusal of this account, and it may be configured later.
                NetworkError::Rejected { message } => NetworkError::unavailable(message),
                other => other,
            })?;
        trends::topics(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_uris_and_jwts() {
        assert_eq!(
            parse_at_uri("at://did:plc:abc/app.bsky.feed.post/3k2a"),
            Some(("did:plc:abc", "app.bsky.feed.post", "3k2a"))
        );
        for bad in [
            "",
            "at://",
            "at://did/x",
            "https://x/y/z",
            "at://a/b/c/d",
            "at://a//c",
        ] {
            assert_eq!(parse_at_uri(bad), None, "{bad}");
        }
        // {"exp":1700000000}
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000}"#);
        assert_eq!(
            jwt_exp_ms(&format!("h.{payload}.s")),
            Some(1_700_000_000_000)
        );
        assert_eq!(jwt_exp_ms("nope"), None);
        assert_eq!(jwt_exp_ms("a.!!!.c"), None);
    }

    #[test]
    fn sniffing_and_did_docs() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff_image(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_image(b"<html>"), None);
        let doc = json!({"service": [{"id": "#other", "serviceEndpoint": "x"},
            {"id": "#atproto_pds", "serviceEndpoint": "https://pds.example"}]});
        assert_eq!(pds_endpoint(&doc), Some("https://pds.example"));
        assert_eq!(pds_endpoint(&json!({})), None);
    }

    /// With private networks refused, a link to a loopback page is never fetched (neither by
    /// literal address nor by a name that resolves to loopback): no card, no connection.
    #[tokio::test]
    async fn a_card_page_on_a_private_address_is_not_fetched() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let server = tokio::spawn(async move {
            while let Ok((_sock, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let strict = Bluesky::new(
            BlueskyConfig {
                timeout: Duration::from_secs(2),
                ..BlueskyConfig::default()
            },
            Arc::new(crier_core::SystemClock),
        );
        let base = url::Url::parse("https://pds.invalid").unwrap();
        for link in [
            format!("http://127.0.0.1:{port}/page"),
            format!("http://localhost:{port}/page"),
            format!("http://[::ffff:127.0.0.1]:{port}/page"),
        ] {
            assert_eq!(strict.link_card(&base, "t", &link).await, None, "{link}");
        }
        // The unguarded twin does connect (so the zero above means something).
        let open = Bluesky::new(
            BlueskyConfig {
                allow_private_networks: true,
                timeout: Duration::from_secs(2),
                ..BlueskyConfig::default()
            },
            Arc::new(crier_core::SystemClock),
        );
        let before = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(before, 0, "the guarded client connected");
        let _ = open
            .link_card(&base, "t", &format!("http://127.0.0.1:{port}/page"))
            .await;
        assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) > 0);
        server.abort();
    }

    #[test]
    fn errors_map_to_stable_kinds() {
        let e = |status: Option<u16>, error: Option<&str>| XrpcError {
            status,
            error: error.map(str::to_owned),
            message: "m".into(),
            timeout: false,
            retry_after: Some(Duration::from_secs(7)),
        };
        assert!(matches!(
            e(Some(400), Some("ExpiredToken")).into_network(false),
            NetworkError::Unauthorized { .. }
        ));
        assert!(matches!(
            e(Some(401), None).into_network(false),
            NetworkError::Unauthorized { .. }
        ));
        assert_eq!(
            e(Some(429), None).into_network(false),
            NetworkError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            e(Some(502), None).into_network(false),
            NetworkError::Unavailable { .. }
        ));
        assert!(matches!(
            e(None, None).into_network(false),
            NetworkError::Unavailable { .. }
        ));
        assert!(matches!(
            e(Some(400), Some("InvalidRequest")).into_network(false),
            NetworkError::Rejected { .. }
        ));
        assert!(matches!(
            e(Some(400), None).into_network(true),
            NetworkError::MediaRejected { .. }
        ));
        let mut t = e(None, None);
        t.timeout = true;
        assert_eq!(t.into_network(false), NetworkError::Timeout);
    }
}
