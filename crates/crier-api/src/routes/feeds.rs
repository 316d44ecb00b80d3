//! `/v1/feeds`: RSS 2.0, Atom and JSON Feed automations. A feed names a URL, the accounts its
//! entries go to, a template (`{title}`, `{link}`, `{summary}`), a mode (`draft`, `queue` or
//! `publish`), a poll interval and a `backfill`; the poller (crier-worker `feeds.rs`) does
//! the rest and records its outcome on the feed (`last_polled_at`, `last_error`,
//! `consecutive_failures`).
//!
//! Rules kept here:
//! - URLs are `http`/`https` and, unless the operator allows private networks, must not point
//!   at private, loopback or link-local addresses (checked at creation by resolving the name,
//!   and again at every poll).
//! - A feed that schedules or publishes what it reads (`queue`, `publish`) acts with the
//!   key's publishing rights: creating or changing one needs `posts:publish` too, so
//!   `feeds:write` alone cannot publish.
//! - Feeds belong to one mode: a test-mode key sees and makes only test-mode feeds, which go
//!   only to sandbox accounts.
//! - A key limited to brands or accounts (`crier_app::reach`) sees only feeds whose every
//!   account it reaches, and gives feeds only such accounts (others are refused as unknown).

use axum::Json;
use axum::extract::State;
use crier_core::clock::from_ms;
use crier_core::ids::FeedId;
use crier_core::{ErrorCode, Scope};
use crier_store::{Feed, FeedMode, FeedSettings};
use crier_worker::http::{UrlError, check_url, is_public};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Created, List, Pagination};
use crate::routes::posts::Deleted;

pub const MAX_TEMPLATE: usize = 1000;
pub const MIN_INTERVAL: i64 = 60;
pub const MAX_INTERVAL: i64 = 86_400;
pub const DEFAULT_INTERVAL: i64 = 900;
pub const MAX_BACKFILL: i64 = 50;
pub const MAX_FEEDS: i64 = 100;
pub const DEFAULT_TEMPLATE: &str = "{title} {link}";
pub const PLACEHOLDERS: [&str; 3] = ["title", "link", "summary"];

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedObject {
    #[schema(example = "feed_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "feed")]
    pub object: &'static str,
    #[schema(example = "https://blog.example.com/feed.xml")]
    pub url: String,
    pub account_ids: Vec<String>,
    #[schema(example = "{title} {link}")]
    pub template: String,
    /// `draft`, `queue` or `publish`.
    #[schema(example = "draft")]
    pub mode: &'static str,
    #[schema(example = 900)]
    pub poll_interval_seconds: i64,
    pub backfill: i64,
    pub enabled: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_polled_at: Option<Timestamp>,
    /// When the feed is polled next; `null` while it is disabled.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_poll_at: Option<Timestamp>,
    /// Why the last poll failed; `null` after a successful one.
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
    pub livemode: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&Feed> for FeedObject {
    fn from(f: &Feed) -> Self {
        Self {
            id: f.id.to_string(),
            object: "feed",
            url: f.url.clone(),
            account_ids: f.account_ids.iter().map(ToString::to_string).collect(),
            template: f.template.clone(),
            mode: f.mode.as_str(),
            poll_interval_seconds: f.poll_interval_seconds,
            backfill: f.backfill,
            enabled: f.enabled,
            last_polled_at: f.last_polled_at.map(from_ms),
            next_poll_at: f.enabled.then(|| from_ms(f.next_poll_at)),
            last_error: f.last_error.clone(),
            consecutive_failures: f.consecutive_failures,
            livemode: f.livemode,
            created_at: from_ms(f.created_at),
            updated_at: from_ms(f.updated_at),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFeed {
    /// The feed's `http`/`https` URL (RSS 2.0, Atom or JSON Feed).
    #[schema(schema_with = crate::openapi::fields::feed_url)]
    pub url: String,
    /// The accounts new entries go to (1 to 20).
    #[schema(schema_with = crate::openapi::fields::account_ids)]
    pub account_ids: Vec<String>,
    /// 1 to 1000 characters with at least one of `{title}`, `{link}`, `{summary}` (default
    /// `{title} {link}`).
    #[schema(schema_with = crate::openapi::fields::feed_template)]
    pub template: Option<String>,
    /// `draft` (default), `queue` (the next free queue slot) or `publish` (at once); the last
    /// two need `posts:publish`.
    #[schema(schema_with = crate::openapi::fields::feed_mode)]
    pub mode: Option<String>,
    /// 60 to 86400 (default 900).
    #[schema(minimum = 60, maximum = 86400)]
    pub poll_interval_seconds: Option<i64>,
    /// How many of the newest entries the first read posts although they are older than the
    /// feed, 0 to 50 (default 0: only entries published after the feed was created).
    #[schema(minimum = 0, maximum = 50)]
    pub backfill: Option<i64>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFeed {
    /// A new URL starts over: only entries published after the change are posted (plus
    /// `backfill`).
    #[schema(schema_with = crate::openapi::fields::feed_url_optional)]
    pub url: Option<String>,
    #[schema(schema_with = crate::openapi::fields::account_ids_optional)]
    pub account_ids: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::fields::feed_template)]
    pub template: Option<String>,
    #[schema(schema_with = crate::openapi::fields::feed_mode)]
    pub mode: Option<String>,
    #[schema(minimum = 60, maximum = 86400)]
    pub poll_interval_seconds: Option<i64>,
    #[schema(minimum = 0, maximum = 50)]
    pub backfill: Option<i64>,
    /// Turning a feed on polls it at once.
    pub enabled: Option<bool>,
}

// ---- validation ----

/// Checks the URL's scheme and shape, and that its host resolves to public addresses only
/// (unless private networks are allowed); returns it normalised.
async fn check_feed_url(state: &AppState, url: &str) -> ApiResult<String> {
    let allow = state.config().allow_private_networks;
    // The bound is on what was sent, as the OpenAPI description says, not on it trimmed.
    if url.chars().count() > 2048 {
        return Err(ApiError::invalid(
            "url",
            "`url` is not a valid URL (at most 2048 characters, no credentials).",
        ));
    }
    let parsed = check_url(url.trim(), allow).map_err(|e| {
        let msg = match e {
            UrlError::Scheme => "`url` must be an http or https URL.".to_owned(),
            UrlError::Invalid => {
                "`url` is not a valid URL (at most 2048 characters, no credentials).".to_owned()
            }
            UrlError::Private => format!("`url` is refused: {e}."),
        };
        ApiError::invalid("url", msg)
    })?;
    if !allow && let Some(host) = parsed.host_str().filter(|h| !h.starts_with('[')) {
        let port = parsed.port_or_known_default().unwrap_or(443);
        // A name that does not resolve now may later; the poller checks every address it
        // connects to anyway. One that resolves to a private address is refused now.
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map(|a| a.collect())
            .unwrap_or_default();
        if addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(ApiError::invalid(
                "url",
                format!("`url` resolves to a private, loopback or link-local address ({host})."),
            ));
        }
    }
    Ok(parsed.to_string())
}

/// `{name}` tokens of a template, where `name` is a lower-case identifier.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.match_indices('{').filter_map(move |(i, _)| {
        let rest = &template[i + 1..];
        let end = rest.find('}')?;
        let name = &rest[..end];
        (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        .then_some(name)
    })
}

fn check_template(t: &str) -> ApiResult<()> {
    let len = t.chars().count();
    if t.trim().is_empty() || len > MAX_TEMPLATE {
        return Err(ApiError::invalid(
            "template",
            format!("`template` must be 1 to {MAX_TEMPLATE} characters."),
        ));
    }
    let mut known = 0;
    for name in placeholders(t) {
        if !PLACEHOLDERS.contains(&name) {
            return Err(ApiError::invalid(
                "template",
                format!(
                    "Unknown placeholder `{{{name}}}` in `template`; use {{title}}, {{link}} or {{summary}}."
                ),
            ));
        }
        known += 1;
    }
    if known == 0 {
        return Err(ApiError::invalid(
            "template",
            "`template` must contain at least one of {title}, {link} or {summary}.",
        ));
    }
    Ok(())
}

fn parse_mode(m: &str) -> ApiResult<FeedMode> {
    FeedMode::parse(m).ok_or_else(|| {
        ApiError::invalid(
            "mode",
            format!("`mode` must be `draft`, `queue` or `publish`, not `{m}`."),
        )
    })
}

fn check_interval(s: i64) -> ApiResult<()> {
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&s) {
        return Err(ApiError::invalid(
            "poll_interval_seconds",
            format!("`poll_interval_seconds` must be from {MIN_INTERVAL} to {MAX_INTERVAL}."),
        ));
    }
    Ok(())
}

fn check_backfill(n: i64) -> ApiResult<()> {
    if !(0..=MAX_BACKFILL).contains(&n) {
        return Err(ApiError::invalid(
            "backfill",
            format!("`backfill` must be from 0 to {MAX_BACKFILL}."),
        ));
    }
    Ok(())
}

/// A feed that schedules or publishes acts with the key's publishing rights.
fn check_publishing(p: &Principal, mode: FeedMode) -> ApiResult<()> {
    if mode != FeedMode::Draft {
        p.require(Scope::PostsPublish)?;
    }
    Ok(())
}

/// The feed `id` of this key's workspace and mode, if every account it posts to is within the
/// key's reach (a key limited to brands or accounts sees no other feed).
async fn visible_feed(state: &AppState, p: &Principal, id: &str) -> ApiResult<Feed> {
    let not_found = || ApiError::not_found("feed", id);
    let id = FeedId::parse(id).ok_or_else(not_found)?;
    let feed = state
        .store()
        .get_feed(p.workspace_id(), &id)
        .await?
        .filter(|f| f.livemode == p.livemode())
        .ok_or_else(not_found)?;
    let caller = p.caller();
    if caller.is_limited()
        && !state
            .app()
            .reach(&caller)
            .await?
            .accounts(feed.account_ids.iter())
    {
        return Err(not_found());
    }
    Ok(feed)
}

// ---- handlers ----

/// List feeds, newest first.
#[utoipa::path(get, path = "/v1/feeds", tag = "feeds", params(Pagination),
    security(("bearer" = ["feeds:read"]), ("api_key" = ["feeds:read"])),
    responses((status = 200, body = inline(List<FeedObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::FeedsRead>,
    page: Pagination,
) -> ApiResult<Json<List<FeedObject>>> {
    let caller = p.caller();
    let feeds = match state.app().reach(&caller).await?.account_list() {
        None => {
            state
                .store()
                .list_feeds(
                    p.workspace_id(),
                    Some(p.livemode()),
                    page.limit,
                    page.offset,
                )
                .await?
        }
        Some(within) => {
            state
                .store()
                .list_feeds_within(&caller.tenant, &within, page.limit, page.offset)
                .await?
        }
    };
    Ok(Json(List::of(&feeds, FeedObject::from)))
}

/// Create a feed. It is read at once; its first read posts only entries published after now
/// (plus `backfill`).
#[utoipa::path(post, path = "/v1/feeds", tag = "feeds", request_body = CreateFeed,
    security(("bearer" = ["feeds:write"]), ("api_key" = ["feeds:write"])),
    responses((status = 201, body = FeedObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::FeedsWrite>,
    ApiJson(req): ApiJson<CreateFeed>,
) -> ApiResult<Created<FeedObject>> {
    let url = check_feed_url(&state, &req.url).await?;
    let accounts = state
        .app()
        .posts()
        .resolve_accounts(&p.caller(), "account_ids", &req.account_ids)
        .await?;
    let template = req.template.unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());
    check_template(&template)?;
    let mode = parse_mode(req.mode.as_deref().unwrap_or("draft"))?;
    let interval = req.poll_interval_seconds.unwrap_or(DEFAULT_INTERVAL);
    check_interval(interval)?;
    let backfill = req.backfill.unwrap_or(0);
    check_backfill(backfill)?;
    check_publishing(&p, mode)?;
    if state.store().count_feeds(p.workspace_id()).await? >= MAX_FEEDS {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("This workspace already has {MAX_FEEDS} feeds, the most it may have."),
        ));
    }
    let settings = FeedSettings {
        url,
        account_ids: accounts.iter().map(|a| a.id.clone()).collect(),
        template,
        mode,
        poll_interval_seconds: interval,
        backfill,
        enabled: req.enabled.unwrap_or(true),
    };
    let feed = Feed::new(
        p.workspace_id(),
        p.livemode(),
        settings,
        state.clock().now_ms(),
    );
    state.store().insert_feed(&feed).await?;
    Ok(Created(FeedObject::from(&feed)))
}

/// One feed, with the outcome of its last poll.
#[utoipa::path(get, path = "/v1/feeds/{id}", tag = "feeds", params(("id" = String, Path)),
    security(("bearer" = ["feeds:read"]), ("api_key" = ["feeds:read"])),
    responses((status = 200, body = FeedObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::FeedsRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<FeedObject>> {
    Ok(Json(FeedObject::from(
        &visible_feed(&state, &p, &id).await?,
    )))
}

/// Change a feed. A new `url` starts over (entries published before the change are not
/// posted, apart from `backfill`); turning a feed on (`enabled`) polls it at once.
#[utoipa::path(patch, path = "/v1/feeds/{id}", tag = "feeds", request_body = UpdateFeed,
    params(("id" = String, Path)),
    security(("bearer" = ["feeds:write"]), ("api_key" = ["feeds:write"])),
    responses((status = 200, body = FeedObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::FeedsWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateFeed>,
) -> ApiResult<Json<FeedObject>> {
    let feed = visible_feed(&state, &p, &id).await?;
    let mut s = feed.settings();
    if let Some(url) = req.url {
        s.url = check_feed_url(&state, &url).await?;
    }
    if let Some(ids) = req.account_ids {
        let accounts = state
            .app()
            .posts()
            .resolve_accounts(&p.caller(), "account_ids", &ids)
            .await?;
        s.account_ids = accounts.iter().map(|a| a.id.clone()).collect();
    }
    if let Some(t) = req.template {
        check_template(&t)?;
        s.template = t;
    }
    if let Some(m) = req.mode {
        s.mode = parse_mode(&m)?;
    }
    if let Some(i) = req.poll_interval_seconds {
        check_interval(i)?;
        s.poll_interval_seconds = i;
    }
    if let Some(b) = req.backfill {
        check_backfill(b)?;
        s.backfill = b;
    }
    if let Some(e) = req.enabled {
        s.enabled = e;
    }
    check_publishing(&p, s.mode)?;
    let updated = state
        .store()
        .update_feed(p.workspace_id(), &feed.id, &s, state.clock().now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("feed", &id))?;
    Ok(Json(FeedObject::from(&updated)))
}

/// Delete a feed. The posts it made stay.
#[utoipa::path(delete, path = "/v1/feeds/{id}", tag = "feeds", params(("id" = String, Path)),
    security(("bearer" = ["feeds:write"]), ("api_key" = ["feeds:write"])),
    responses((status = 200, body = Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::FeedsWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    let feed = visible_feed(&state, &p, &id).await?;
    if !state
        .store()
        .delete_feed(p.workspace_id(), &feed.id)
        .await?
    {
        return Err(ApiError::not_found("feed", &id));
    }
    Ok(Json(Deleted {
        id: feed.id.to_string(),
        object: "feed",
        deleted: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        for ok in [
            "{title} {link}",
            "{summary}",
            "New: {title}\n\n{link} {not closed",
            "{title} {}",
            "{title} { spaced }",
        ] {
            assert!(check_template(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "characters"),
            ("   ", "characters"),
            ("no placeholders", "at least one"),
            ("{Title}", "at least one"),
            ("{title} {author}", "{author}"),
            ("{tit_le}", "{tit_le}"),
        ] {
            let e = check_template(bad).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("template"));
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
        let long = format!("{{title}}{}", "x".repeat(MAX_TEMPLATE));
        assert!(check_template(&long).is_err());
        let max = format!("{{title}}{}", "é".repeat(MAX_TEMPLATE - 7));
        assert!(check_template(&max).is_ok(), "1000 characters, not bytes");
    }
}
