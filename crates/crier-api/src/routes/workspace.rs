//! `/v1/workspace`: the key's workspace, its settings, plan and this period's usage.
//!
//! Reads are served from a view cached for two seconds per workspace, so the most common
//! authenticated read costs no storage round trip. Usage counters are written in batches every
//! few seconds anyway, so the view is as fresh as the numbers behind it.
//!
//! The settings (time zone, approval rule) are live data: they decide when live posts go out
//! and whether they wait for approval. Test mode is a parallel world that must not change the
//! live one, so a test-mode key may read them but not change them (`403 forbidden_scope`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use crier_core::ids::WorkspaceId;
use crier_core::{Plan, clock::from_ms};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;

/// Workspace views, kept as objects (`/v1/me` reads its workspace part from them) and
/// serialised (`/v1/workspace`, the most common authenticated read, answers with the bytes as
/// they are).
pub type WorkspaceViews = crate::ttl_cache::TtlCache<WorkspaceId, CachedView>;

#[derive(Clone)]
pub struct CachedView {
    pub object: Arc<WorkspaceObject>,
    pub bytes: axum::body::Bytes,
}

/// The caller's workspace view: from the cache, else read (and cached for two seconds).
pub async fn cached_view(state: &AppState, p: &Principal) -> ApiResult<CachedView> {
    if let Some(view) = state.workspace_views().get(p.workspace_id()) {
        return Ok(view);
    }
    let object = load_view(state, p).await?;
    let bytes = axum::body::Bytes::from(serde_json::to_vec(&*object).map_err(ApiError::internal)?);
    let view = CachedView { object, bytes };
    state
        .workspace_views()
        .insert(p.workspace_id().clone(), view.clone());
    Ok(view)
}

pub fn views() -> WorkspaceViews {
    WorkspaceViews::new(100_000, Duration::from_secs(2))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanObject {
    #[schema(example = "self-hosted")]
    pub name: String,
    /// Ceiling for any key's per-minute limit.
    pub per_minute: u32,
    /// Ceiling for any key's per-day limit.
    pub per_day: u32,
    /// `null` means no quota.
    pub ai_credits_per_month: Option<u64>,
    pub posts_per_month: Option<u64>,
    pub connected_accounts: Option<u64>,
    pub media_storage_bytes: Option<u64>,
    pub brands: Option<u64>,
    pub kb_documents: Option<u64>,
    /// Characters of text the knowledge base may hold.
    pub kb_chars: Option<u64>,
    /// The largest video a clip job takes, in bytes.
    pub clip_max_bytes: Option<u64>,
    /// The longest video a clip job takes, in seconds.
    pub clip_max_seconds: Option<u64>,
    /// Paid scopes this plan includes.
    pub paid_scopes: Vec<&'static str>,
}

impl From<&Plan> for PlanObject {
    fn from(p: &Plan) -> Self {
        Self {
            name: p.name.clone(),
            per_minute: p.per_minute,
            per_day: p.per_day,
            ai_credits_per_month: p.ai_credits_per_month,
            posts_per_month: p.posts_per_month,
            connected_accounts: p.connected_accounts,
            media_storage_bytes: p.media_storage_bytes,
            brands: p.brands,
            kb_documents: p.kb_documents,
            kb_chars: p.kb_chars,
            clip_max_bytes: p.clip_max_bytes,
            clip_max_seconds: p.clip_max_seconds,
            paid_scopes: p.paid_scopes.names(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageObject {
    /// The calendar month (UTC) the counters cover, e.g. `2026-11`.
    pub period: String,
    #[schema(value_type = String, format = DateTime)]
    pub period_start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub period_end: Timestamp,
    /// Authenticated API requests this period (written every few seconds).
    pub requests: i64,
    pub posts_published: i64,
    pub ai_credits_used: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkspaceObject {
    #[schema(example = "ws_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "workspace")]
    pub object: &'static str,
    pub name: String,
    /// IANA time zone used for queue slots.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    pub require_approval: bool,
    pub plan: PlanObject,
    pub usage: UsageObject,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    /// An IANA time zone name such as `America/New_York`.
    #[schema(schema_with = crate::openapi::fields::timezone)]
    pub timezone: Option<String>,
    /// Whether scheduling and publishing wait for `posts:approve`.
    pub require_approval: Option<bool>,
}

/// The month around `now`, in UTC.
fn period_bounds(now: Timestamp) -> (Timestamp, Timestamp) {
    let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
    let start = utc
        .date()
        .first_of_month()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("month start in range");
    let end = start
        .checked_add(jiff::Span::new().months(1))
        .expect("month end in range");
    (start.timestamp(), end.timestamp())
}

async fn load_view(state: &AppState, p: &Principal) -> ApiResult<Arc<WorkspaceObject>> {
    let ws = state
        .store()
        .get_workspace(p.workspace_id())
        .await?
        .ok_or_else(|| ApiError::internal("a verified key's workspace is missing"))?;
    let now = state.clock().now();
    let period = AppState::period_of(now.as_millisecond());
    let usage = state.store().workspace_usage(&ws.id, &period).await?;
    let (start, end) = period_bounds(now);
    let plan = state.plan(&ws.plan).unwrap_or_else(|| p.key.plan.clone());
    let counter = |name: &str| usage.get(name).copied().unwrap_or(0);
    Ok(Arc::new(WorkspaceObject {
        id: ws.id.to_string(),
        object: "workspace",
        name: ws.name,
        timezone: ws.timezone,
        require_approval: ws.require_approval,
        plan: PlanObject::from(&*plan),
        usage: UsageObject {
            period,
            period_start: start,
            period_end: end,
            requests: counter("requests"),
            posts_published: counter("posts_published"),
            ai_credits_used: counter("ai_credits"),
        },
        created_at: from_ms(ws.created_at),
        updated_at: from_ms(ws.updated_at),
    }))
}

/// The workspace of the calling key, with its plan and this period's usage. Any valid key
/// may read it.
#[utoipa::path(get, path = "/v1/workspace", tag = "workspace",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AnyKey>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let view = cached_view(&state, &p).await?;
    Ok(json_bytes(view.bytes))
}

/// A JSON body serialised beforehand (a cached view), as a response.
pub fn json_bytes(bytes: axum::body::Bytes) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
}

/// Change the workspace's settings: `timezone` (IANA) and `require_approval`. Live keys only:
/// a test-mode key gets `403 forbidden_scope`.
#[utoipa::path(patch, path = "/v1/workspace", tag = "workspace", request_body = UpdateWorkspace,
    security(("bearer" = ["workspace:write"]), ("api_key" = ["workspace:write"])),
    responses(
        (status = 200, description = "The updated workspace", body = WorkspaceObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WorkspaceWrite>,
    ApiJson(req): ApiJson<UpdateWorkspace>,
) -> ApiResult<Json<Arc<WorkspaceObject>>> {
    let settings = crier_app::workspace::Settings {
        timezone: req.timezone,
        require_approval: req.require_approval,
    };
    state
        .app()
        .workspaces()
        .update(&p.caller(), settings)
        .await?;
    state.workspace_views().invalidate(p.workspace_id());
    let view = load_view(&state, &p).await?;
    Ok(Json(view))
}
