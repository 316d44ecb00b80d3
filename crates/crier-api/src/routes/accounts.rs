//! Connected social accounts: connect (the sandbox connects at once), list, disconnect; and
//! for sandbox accounts, their timeline (what was "posted") and fault injection.
//!
//! An account belongs to one mode: a test-mode key connects and sees only test-mode accounts,
//! a live key only live ones. Anything else does not exist for the key (404). The rules are
//! `crier_app::accounts`; these handlers parse, call and render.

use axum::Json;
use axum::extract::State;
use crier_core::clock::from_ms;
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
    /// `direct`: finish with `POST /v1/connect/{platform}`; `oauth`: send the user to
    /// `authorization_url` first.
    pub method: &'static str,
    pub authorization_url: Option<String>,
}

/// Start connecting an account on `platform`.
#[utoipa::path(get, path = "/v1/connect/{platform}", tag = "accounts",
    params(("platform" = String, Path, description = "e.g. `sandbox`")),
    security(("bearer" = ["accounts:write"]), ("api_key" = ["accounts:write"])),
    responses((status = 200, body = ConnectStart), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn connect_start(
    State(state): State<AppState>,
    _auth: Auth<need::AccountsWrite>,
    ApiPath(platform): ApiPath<String>,
) -> ApiResult<Json<ConnectStart>> {
    state.app().accounts().known_platform(&platform)?;
    Ok(Json(ConnectStart {
        platform,
        method: "direct",
        authorization_url: None,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectSandbox {
    /// The account's handle: 1 to 50 letters, digits, `_`, `.` or `-`.
    #[schema(schema_with = crate::openapi::fields::handle)]
    pub handle: String,
}

/// Finish connecting an account. The sandbox connects at once with a handle. Live and
/// test-mode accounts are counted apart, each against the plan's `connected_accounts`.
#[utoipa::path(post, path = "/v1/connect/{platform}", tag = "accounts", request_body = ConnectSandbox,
    params(("platform" = String, Path, description = "e.g. `sandbox`")),
    security(("bearer" = ["accounts:write"]), ("api_key" = ["accounts:write"])),
    responses((status = 201, body = AccountObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn connect(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AccountsWrite>,
    ApiPath(platform): ApiPath<String>,
    ApiJson(req): ApiJson<ConnectSandbox>,
) -> ApiResult<Created<AccountObject>> {
    let account = state
        .app()
        .accounts()
        .connect(&p.caller(), &platform, &req.handle)
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
    /// How many of the next calls fail, 0 to 1000 (0 clears).
    #[schema(minimum = 0, maximum = 1000)]
    pub fail_next: u32,
    /// `error`, `timeout` (the post lands but the answer is lost) or `rate_limit`.
    #[schema(schema_with = crate::openapi::fields::fault_kind)]
    pub kind: String,
    /// The `Retry-After` the failures carry, 0 to 86400 seconds.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 86400)]
    pub retry_after_seconds: u32,
}

/// Tell a sandbox account to fail its next calls.
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
        .set_faults(&account, req.fail_next, &req.kind, req.retry_after_seconds)
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
/// the posts published in it.
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
    let mut data = Vec::with_capacity(rows.len());
    for (account_id, posts, m) in rows {
        let Some(account) = state
            .store()
            .get_account(p.workspace_id(), &account_id)
            .await?
            .filter(|a| a.livemode == p.livemode())
        else {
            continue;
        };
        data.push(AccountMetrics {
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
