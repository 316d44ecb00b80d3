//! `/v1/me`: who is calling. The key (or the session's user and role), what it may do (its
//! scopes, limits and restrictions), and its workspace. The CLI's `whoami` and the MCP server
//! start here: the scopes decide which commands and tools make sense.
//!
//! A key's answer follows from its cached record and its workspace's cached view alone, so it
//! is serialised once per pair and kept ([`MeViews`]): an entry is used only while both are the
//! very ones it was made from, so a changed key (a new record) or a new view (every two
//! seconds) makes a new answer. A session's answer reads its user, and is made each time.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use crier_core::ids::KeyId;
use crier_store::views::KeyObject;
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::cache::KeyRecord;
use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::routes::workspace::{WorkspaceObject, json_bytes};

/// Answers of `/v1/me` by key, with the key record and workspace view each was made from.
pub type MeViews = crate::ttl_cache::TtlCache<KeyId, MeView>;

#[derive(Clone)]
pub struct MeView {
    key: Arc<KeyRecord>,
    workspace: Arc<WorkspaceObject>,
    bytes: Bytes,
}

/// At most one answer per key, kept no longer than the workspace view it shows.
pub fn views() -> MeViews {
    MeViews::new(100_000, Duration::from_secs(2))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeObject {
    #[schema(example = "me")]
    pub object: &'static str,
    /// `api_key` or `session`.
    #[schema(example = "api_key")]
    pub auth: &'static str,
    /// What the caller may do: the key's scopes, or those of the session user's role.
    pub scopes: Vec<&'static str>,
    #[schema(example = "live")]
    pub mode: &'static str,
    pub livemode: bool,
    /// The calling key (never its secret); `null` for a session.
    pub key: Option<KeyObject>,
    /// The session's user; `null` for an API key.
    pub user: Option<MeUser>,
    pub workspace: MeWorkspace,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    #[schema(example = "usr_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    pub email: String,
    pub name: String,
    /// The user's role in the workspace: `owner`, `admin` or `member`.
    #[schema(example = "owner")]
    pub role: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeWorkspace {
    #[schema(example = "ws_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    pub name: String,
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    pub require_approval: bool,
    /// The plan's name (`GET /v1/workspace` has its limits and this period's usage).
    #[schema(example = "self-hosted")]
    pub plan: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// Who is calling: the key (its id, name, prefix, mode, scopes, limits and restrictions, never
/// its secret) or the session's user and role, and the workspace. Any valid key or session.
#[utoipa::path(get, path = "/v1/me", tag = "workspace", operation_id = "me_get",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller", body = MeObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AnyKey>,
) -> ApiResult<impl IntoResponse> {
    // The workspace part from the workspace view (at most two seconds old on another node; a
    // change through this node is seen at once).
    let view = crate::routes::workspace::cached_view(&state, &p).await?;
    if p.user().is_none()
        && let Some(me) = state.me_views().get(p.key_id())
        && Arc::ptr_eq(&me.key, &p.key)
        && Arc::ptr_eq(&me.workspace, &view.object)
    {
        return Ok(json_bytes(me.bytes));
    }
    let me = build(&state, &p, &view.object).await?;
    let bytes = Bytes::from(serde_json::to_vec(&me).map_err(ApiError::internal)?);
    if me.user.is_none() {
        state.me_views().insert(
            p.key_id().clone(),
            MeView {
                key: p.key.clone(),
                workspace: view.object.clone(),
                bytes: bytes.clone(),
            },
        );
    }
    Ok(json_bytes(bytes))
}

async fn build(
    state: &AppState,
    p: &crate::auth::Principal,
    ws: &WorkspaceObject,
) -> ApiResult<MeObject> {
    let user = match p.user() {
        Some(id) => {
            let user = state
                .store()
                .user_by_id(id)
                .await?
                .ok_or_else(|| ApiError::internal("a session's user is missing"))?;
            Some(MeUser {
                id: user.id.to_string(),
                email: user.email,
                name: user.name,
                role: p.key.role.map_or("member", |r| r.as_str()),
            })
        }
        None => None,
    };
    let row = &p.key.row;
    Ok(MeObject {
        object: "me",
        auth: if user.is_some() { "session" } else { "api_key" },
        scopes: row.scopes.names(),
        mode: row.mode.as_str(),
        livemode: p.livemode(),
        key: user.is_none().then(|| KeyObject::from_row(row, None)),
        user,
        workspace: MeWorkspace {
            id: ws.id.clone(),
            name: ws.name.clone(),
            timezone: ws.timezone.clone(),
            require_approval: ws.require_approval,
            plan: ws.plan.name.clone(),
            created_at: ws.created_at,
        },
    })
}
