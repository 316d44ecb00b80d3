//! Connected social accounts: connect (the sandbox connects at once), list, disconnect; and
//! for sandbox accounts, their timeline (what was "posted") and fault injection.
//!
//! An account belongs to one mode: a test-mode key connects and sees only test-mode accounts,
//! a live key only live ones. Anything else does not exist for the key (404). The rules are
//! `crier_app::accounts`; these handlers parse, call and render.

use axum::Json;
use axum::extract::State;
use crier_app::connect::Finish;
use crier_core::clock::from_ms;
use crier_networks::ConnectKind;
use crier_store::Account;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crier_store::views::AccountObject;

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Created, List, Pagination};

/// The account `id` if this key may see it.
pub async fn visible_account(state: &AppState, p: &Principal, id: &str) -> ApiResult<Account> {
    Ok(state.app().accounts().get(&p.caller(), id).await?)
}

/// Connected accounts of this key's mode, newest first.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(Pagination),
    security(("bearer" = ["accounts:read"]), ("api_key" = ["accounts:read"])),
    responses((status = 200, body = inline(List<AccountObject>)),
        (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AccountsRead>,
    page: Pagination,
) -> ApiResult<Json<List<AccountObject>>> {
    let accounts = state
        .app()
        .accounts()
        .list(&p.caller(), page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&accounts, AccountObject::from)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectStart {
    pub platform: String,
    /// `direct` (the sandbox: finish with a `handle`), `credentials` (Bluesky: finish with
    /// `identifier` and `app_password`) or `oauth` (send the user to `url`, then finish with
    /// the `code` the network sends to `redirect_uri` and this `state`).
    pub method: &'static str,
    /// OAuth: where the user approves crier.
    pub url: Option<String>,
    /// OAuth: single-use, bound to this workspace and mode; expires at `expires_at`.
    pub state: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

/// Start connecting an account on `platform`. OAuth networks answer the authorization URL and
/// a `state` (10 minutes, single use, this workspace and mode; PKCE S256 where the network
/// takes it); `redirect_uri` must be one the operator allows (`connect_redirect_uris`), and
/// Mastodon needs `instance`, the server's base URL (it passes the SSRF guard; crier registers
/// itself there once per instance and redirect URI).
#[utoipa::path(get, path = "/v1/connect/{platform}", tag = "accounts",
    params(("platform" = String, Path, description = "`sandbox`, `bluesky`, `mastodon`"),
        ("redirect_uri" = Option<String>, Query, description = "OAuth networks: where the network sends the user back (an allowed redirect URI)"),
        ("instance" = Option<String>, Query, description = "Mastodon: the server's base URL, e.g. `https://mastodon.social`")),
    security(("bearer" = ["accounts:write"]), ("api_key" = ["accounts:write"])),
    responses((status = 200, body = ConnectStart), (status = "4XX", body = crate::error::ErrorEnvelope),
        (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn connect_start(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AccountsWrite>,
    ApiPath(platform): ApiPath<String>,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<ConnectStart>> {
    let (mut redirect_uri, mut instance) = (None, None);
    for (name, value) in crate::extract::query_pairs(parts.uri.query()) {
        let slot = match name.as_str() {
            "redirect_uri" => &mut redirect_uri,
            "instance" => &mut instance,
            _ => continue,
        };
        // Given at all, it must be what the OpenAPI says: an absolute URI (even where the
        // platform does not use it, as for the sandbox).
        let max = crier_app::connect::MAX_URI;
        if value.chars().count() > max || url::Url::parse(&value).is_err() {
            return Err(ApiError::invalid(
                name.clone(),
                format!("`{name}` must be an absolute URL of at most {max} characters."),
            ));
        }
        if slot.replace(value).is_some() {
            return Err(ApiError::invalid(
                name.clone(),
                format!("`{name}` is given more than once."),
            ));
        }
    }
    let app = state.app();
    let kind = app
        .networks()
        .get(&platform)
        .map(|n| n.connect_kind())
        .ok_or_else(|| ApiError::from(crier_app::AppError::not_found("platform", &platform)))?;
    let started = app
        .connections()
        .start(
            &p.caller(),
            &platform,
            redirect_uri.as_deref(),
            instance.as_deref(),
        )
        .await?;
    let method = match kind {
        ConnectKind::Instant => "direct",
        ConnectKind::Credentials => "credentials",
        ConnectKind::OAuth { .. } => "oauth",
    };
    Ok(Json(ConnectStart {
        platform,
        method,
        url: started.as_ref().map(|s| s.url.clone()),
        state: started.as_ref().map(|s| s.state.clone()),
        expires_at: started.map(|s| s.expires_at),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// The sandbox: the account's handle, 1 to 50 letters, digits, `_`, `.` or `-`.
    #[schema(schema_with = crate::openapi::fields::handle)]
    pub handle: Option<String>,
    /// OAuth networks: the `code` the network sent to the redirect URI.
    #[schema(max_length = 2048)]
    pub code: Option<String>,
    /// OAuth networks: the `state` `GET /v1/connect/{platform}` answered.
    #[schema(max_length = 2048)]
    pub state: Option<String>,
    /// Bluesky: the handle or email to log in with.
    #[schema(max_length = 253)]
    pub identifier: Option<String>,
    /// Bluesky: an app password (Settings → App passwords), never the account password.
    #[schema(max_length = 256)]
    pub app_password: Option<String>,
    /// Bluesky: the PDS to log in at (default `https://bsky.social`); passes the SSRF guard.
    #[schema(max_length = 2048)]
    pub service: Option<String>,
}

/// Finish connecting an account: the sandbox with a `handle`, Bluesky with `identifier` and
/// `app_password` (refused credentials are `400` with `param` `app_password`), OAuth networks
/// with `code` and `state` (an unknown, expired, reused or foreign `state` is `400` with `param`
/// `state`). Reconnecting the same network account updates it (same id). Live and test-mode
/// accounts are counted apart, each against the plan's `connected_accounts`. Where one approval
/// gives several accounts (a LinkedIn member and the pages they administer, each Facebook Page)
/// all are saved while the plan has room (at most 50), and the first is answered; the others
/// are in `GET /v1/accounts`. The networks of one operator need the operator's OAuth client
/// (`oauth_clients.<platform>`); without it `400` with `param` `platform`.
#[utoipa::path(post, path = "/v1/connect/{platform}", tag = "accounts", request_body = ConnectRequest,
    params(("platform" = String, Path, description = "`sandbox`, `bluesky`, `mastodon`")),
    security(("bearer" = ["accounts:write"]), ("api_key" = ["accounts:write"])),
    responses((status = 201, body = AccountObject), (status = "4XX", body = crate::error::ErrorEnvelope),
        (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn connect(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AccountsWrite>,
    ApiPath(platform): ApiPath<String>,
    ApiJson(req): ApiJson<ConnectRequest>,
) -> ApiResult<Created<AccountObject>> {
    let finish = Finish {
        handle: req.handle,
        code: req.code,
        state: req.state,
        identifier: req.identifier,
        app_password: req.app_password,
        service: req.service,
    };
    let account = state
        .app()
        .connections()
        .finish(&p.caller(), &platform, finish)
        .await?;
    Ok(Created(AccountObject::from(&account)))
}

/// Disconnect an account. Its pending targets fail with `account_disconnected`.
#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path)),
    security(("bearer" = ["accounts:write"]), ("api_key" = ["accounts:write"])),
    responses((status = 200, body = AccountObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn disconnect(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AccountsWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AccountObject>> {
    let account = state.app().accounts().disconnect(&p.caller(), &id).await?;
    Ok(Json(AccountObject::from(&account)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePost {
    /// The network's id of the post.
    pub id: String,
    #[schema(example = "sandbox_post")]
    pub object: &'static str,
    pub body: String,
    pub reply_to: Option<String>,
    /// The idempotency key crier sent with it (`post_…:acct_…:part`).
    pub idempotency_key: String,
    /// The media it carried (`med_…` ids).
    pub media_ids: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// What was "posted" to a sandbox account, oldest first.
#[utoipa::path(get, path = "/v1/accounts/{id}/timeline", tag = "accounts",
    params(("id" = String, Path), Pagination),
    security(("bearer" = ["accounts:read"]), ("api_key" = ["accounts:read"])),
    responses((status = 200, body = inline(List<TimelinePost>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn timeline(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AccountsRead>,
    ApiPath(id): ApiPath<String>,
    page: Pagination,
) -> ApiResult<Json<List<TimelinePost>>> {
    let account = state.app().accounts().sandbox(&p.caller(), &id).await?;
    let posts = state
        .store()
        .sandbox_timeline(&account.id, page.limit, page.offset)
        .await?;
    Ok(Json(List {
        data: posts
            .items
            .into_iter()
            .map(|s| TimelinePost {
                id: s.external_id,
                object: "sandbox_post",
                body: s.body,
                reply_to: s.reply_to,
                idempotency_key: s.idem_key,
                media_ids: s.media_ids,
                created_at: from_ms(s.created_at),
            })
            .collect(),
        has_more: posts.has_more,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// How many of the next calls fail, 0 to 1000 (0, the default, clears).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub fail_next: u32,
    /// `error` (the default), `timeout` (the post lands but the answer is lost) or
    /// `rate_limit`.
    #[serde(default = "default_fault_kind")]
    #[schema(schema_with = crate::openapi::fields::fault_kind)]
    pub kind: String,
    /// The `Retry-After` the failures carry, 0 to 86400 seconds.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 86400)]
    pub retry_after_seconds: u32,
    /// How long every publish call of the account takes, 0 (the default) to 10000 ms, until
    /// set again: a network's latency, to measure publishing under it.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000)]
    pub latency_ms: u32,
}

fn default_fault_kind() -> String {
    "error".into()
}

/// Tell a sandbox account to fail its next calls, or to answer slowly.
///
/// Each call replaces the account's settings as a whole: `fail_next` calls fail as `kind`
/// says (with `retry_after_seconds`), and every publish call waits `latency_ms` first.
#[utoipa::path(post, path = "/v1/accounts/{id}/faults", tag = "accounts", request_body = Faults,
    params(("id" = String, Path)),
    security(("bearer" = ["accounts:write"]), ("api_key" = ["accounts:write"])),
    responses((status = 200, body = Faults), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn faults(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AccountsWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<Faults>> {
    // The account first: another workspace's id is 404 whatever the body says.
    let accounts = state.app().accounts();
    let account = accounts.sandbox(&p.caller(), &id).await?;
    let req: Faults = crate::extract::parse_json(body.to_string().as_bytes())?;
    accounts
        .set_faults(
            &account,
            req.fail_next,
            &req.kind,
            req.retry_after_seconds,
            req.latency_ms,
        )
        .await?;
    Ok(Json(req))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountMetrics {
    pub account_id: String,
    pub platform: String,
    pub handle: String,
    /// Targets published in the period.
    pub posts: i64,
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub impressions: i64,
    /// The account's followers at the last reading in the period, where its network reports
    /// them (read by the metrics collector, once per account and `metrics_every`).
    pub followers: Option<i64>,
    /// Followers gained (or lost) between the first and the last reading in the period.
    pub followers_change: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountAnalytics {
    #[schema(example = "account_analytics")]
    pub object: &'static str,
    #[schema(value_type = String, format = DateTime)]
    pub from: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub to: Timestamp,
    pub data: Vec<AccountMetrics>,
}

/// Metrics per account over a period (`from`, `to`; default the last 30 days), summed over
/// the posts published in it, with the account's followers and their change over the period
/// where its network reports them.
#[utoipa::path(get, path = "/v1/accounts/analytics", tag = "accounts",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query)),
    security(("bearer" = ["analytics:read"]), ("api_key" = ["analytics:read"])),
    responses((status = 200, body = AccountAnalytics), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn analytics(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AnalyticsRead>,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<AccountAnalytics>> {
    let now = state.clock().now();
    let mut to = now;
    let mut from = None;
    for (name, value) in crate::extract::query_pairs(parts.uri.query()) {
        let parse = |v: &str| {
            v.parse::<Timestamp>().map_err(|_| {
                ApiError::invalid(name.clone(), format!("`{name}` must be an RFC 3339 time."))
            })
        };
        match name.as_str() {
            "from" => from = Some(parse(&value)?),
            "to" => to = parse(&value)?,
            _ => {}
        }
    }
    // Checked: `to` may be near the edge of the representable range (year -9999).
    let from = match from {
        Some(from) => from,
        None => to
            .checked_sub(jiff::SignedDuration::from_hours(24 * 30))
            .map_err(|_| {
                ApiError::invalid(
                    "to",
                    "`to` is too early to count 30 days back from it; give `from` too.",
                )
            })?,
    };
    if from >= to {
        return Err(ApiError::invalid("from", "`from` must be before `to`."));
    }
    let rows = state
        .store()
        .account_metrics(p.workspace_id(), from.as_millisecond(), to.as_millisecond())
        .await?;
    // Only the accounts this key reaches (all, unless it is limited to brands or accounts).
    let reach = state.app().reach(&p.caller()).await?;
    let rows = rows.into_iter().filter(|(a, ..)| reach.account(a));
    let day = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    let (from_day, to_day) = (day(from), day(to));
    let mut data = Vec::new();
    for (account_id, posts, m) in rows {
        let Some(account) = state
            .store()
            .get_account(p.workspace_id(), &account_id)
            .await?
            .filter(|a| a.livemode == p.livemode())
        else {
            continue;
        };
        let followers = state
            .store()
            .followers_between(p.workspace_id(), &account.id, &from_day, &to_day)
            .await?;
        data.push(AccountMetrics {
            followers: followers.map(|(_, last)| last),
            followers_change: followers.map(|(first, last)| last - first),
            account_id: account.id.to_string(),
            platform: account.platform,
            handle: account.handle,
            posts,
            likes: m.likes,
            reposts: m.reposts,
            replies: m.replies,
            impressions: m.impressions,
        });
    }
    Ok(Json(AccountAnalytics {
        object: "account_analytics",
        from,
        to,
        data,
    }))
}
