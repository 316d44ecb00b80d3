//! Connected social accounts: connect (the sandbox connects at once), list, disconnect; and
//! for sandbox accounts, their timeline (what was "posted") and fault injection.
//!
//! An account belongs to one mode: a test-mode key connects and sees only test-mode accounts,
//! a live key only live ones. Anything else does not exist for the key (404).

use axum::Json;
use axum::extract::{Path, State};
use crier_core::clock::from_ms;
use crier_core::ids::AccountId;
use crier_networks::sandbox::PLATFORM as SANDBOX;
use crier_store::{Account, Fault};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crier_store::views::AccountObject;

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Created, List, Pagination};

/// The account `id` if this key may see it.
pub async fn visible_account(state: &AppState, p: &Principal, id: &str) -> ApiResult<Account> {
    let not_found = || ApiError::not_found("account", id);
    let id = AccountId::parse(id).ok_or_else(not_found)?;
    state
        .store()
        .get_account(p.workspace_id(), &id)
        .await?
        .filter(|a| a.livemode == p.livemode())
        .ok_or_else(not_found)
}

async fn sandbox_account(state: &AppState, p: &Principal, id: &str) -> ApiResult<Account> {
    let account = visible_account(state, p, id).await?;
    if account.platform != SANDBOX {
        return Err(ApiError::invalid(
            "id",
            "Only sandbox accounts have a timeline and fault injection.",
        ));
    }
    Ok(account)
}

fn known_platform(state: &AppState, platform: &str) -> ApiResult<()> {
    if state.networks().get(platform).is_none() {
        return Err(ApiError::not_found("platform", platform));
    }
    Ok(())
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
        .store()
        .list_accounts(
            p.workspace_id(),
            Some(p.livemode()),
            page.limit,
            page.offset,
        )
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
    Path(platform): Path<String>,
) -> ApiResult<Json<ConnectStart>> {
    known_platform(&state, &platform)?;
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

/// Finish connecting an account. The sandbox connects at once with a handle.
#[utoipa::path(post, path = "/v1/connect/{platform}", tag = "accounts", request_body = ConnectSandbox,
    params(("platform" = String, Path, description = "e.g. `sandbox`")),
    security(("bearer" = ["accounts:write"]), ("api_key" = ["accounts:write"])),
    responses((status = 201, body = AccountObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn connect(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AccountsWrite>,
    Path(platform): Path<String>,
    ApiJson(req): ApiJson<ConnectSandbox>,
) -> ApiResult<Created<AccountObject>> {
    known_platform(&state, &platform)?;
    let handle = req.handle.trim();
    let valid = !handle.is_empty()
        && handle.len() <= 50
        && handle
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(ApiError::invalid(
            "handle",
            "`handle` must be 1 to 50 letters, digits, `_`, `.` or `-`.",
        ));
    }
    if let Some(limit) = p.plan().connected_accounts {
        let count = state
            .store()
            .count_connected_accounts(p.workspace_id())
            .await?
            .max(0) as u64;
        if count >= limit {
            return Err(ApiError::new(
                crier_core::ErrorCode::QuotaExceeded,
                format!("This workspace's plan allows {limit} connected accounts."),
            ));
        }
    }
    let account = Account {
        id: AccountId::generate(),
        workspace_id: p.workspace_id().clone(),
        platform,
        handle: handle.to_owned(),
        livemode: p.livemode(),
        status: "connected".into(),
        created_at: state.clock().now_ms(),
        disconnected_at: None,
    };
    state.store().insert_account(&account).await?;
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
    Path(id): Path<String>,
) -> ApiResult<Json<AccountObject>> {
    let account = visible_account(&state, &p, &id).await?;
    let account = state
        .store()
        .disconnect_account(p.workspace_id(), &account.id, state.clock().now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("account", &id))?;
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
    Path(id): Path<String>,
    page: Pagination,
) -> ApiResult<Json<List<TimelinePost>>> {
    let account = sandbox_account(&state, &p, &id).await?;
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
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<Faults>> {
    // The account first: another workspace's id is 404 whatever the body says.
    let account = sandbox_account(&state, &p, &id).await?;
    let req: Faults = crate::extract::parse_json(body.to_string().as_bytes())?;
    if req.fail_next > 1000 {
        return Err(ApiError::invalid(
            "fail_next",
            "`fail_next` must be from 0 to 1000.",
        ));
    }
    if !matches!(req.kind.as_str(), "error" | "timeout" | "rate_limit") {
        return Err(ApiError::invalid(
            "kind",
            "`kind` must be `error`, `timeout` or `rate_limit`.",
        ));
    }
    if req.retry_after_seconds > 86_400 {
        return Err(ApiError::invalid(
            "retry_after_seconds",
            "`retry_after_seconds` must be from 0 to 86400.",
        ));
    }
    state
        .store()
        .sandbox_set_fault(
            &account.id,
            i64::from(req.fail_next),
            &Fault {
                kind: req.kind.clone(),
                retry_after_seconds: i64::from(req.retry_after_seconds),
            },
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
    let from = from.unwrap_or_else(|| to - jiff::SignedDuration::from_hours(24 * 30));
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
