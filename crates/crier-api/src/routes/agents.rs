//! `/v1/agents`: agents that write posts on a schedule or when asked, and their runs. The
//! rules live in `crier_app::agents`; this module parses, calls them and renders.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crier_app::agents::{AgentEdit, NewAgent, SourcesEdit};
use crier_store::views::{AgentObject, AgentRunObject};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Created, List, Pagination};
use crate::routes::posts::Deleted;

pub use crier_app::agents::{
    DEFAULT_CREDITS, DEFAULT_POSTS, MAX_AGENTS, MAX_CREDITS, MAX_FEEDS, MAX_INSTRUCTIONS, MAX_NAME,
    MAX_POSTS,
};

/// A field that may be sent as `null` to clear it: absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What an agent draws on; fields left out keep their value (on creation: knowledge and best
/// posts on, trending off, no feeds).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcesInput {
    /// The knowledge base (the brand's and the workspace's), searched for each subject.
    pub knowledge: Option<bool>,
    /// Trending topics.
    pub trending: Option<bool>,
    /// The best published posts of the brand (or of the agent's accounts).
    pub best_posts: Option<bool>,
    /// Feeds of this workspace and mode (at most 10) whose new entries are subjects.
    #[schema(schema_with = crate::openapi::fields::agent_feed_ids)]
    pub feed_ids: Option<Vec<String>>,
}

impl From<SourcesInput> for SourcesEdit {
    fn from(s: SourcesInput) -> Self {
        Self {
            knowledge: s.knowledge,
            trending: s.trending,
            best_posts: s.best_posts,
            feed_ids: s.feed_ids,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// 1 to 100 characters.
    #[schema(schema_with = crate::openapi::fields::agent_name)]
    pub name: String,
    /// What to write and how: 1 to 2000 characters.
    #[schema(schema_with = crate::openapi::fields::agent_instructions)]
    pub instructions: String,
    /// A brand of this mode: its voice and knowledge, and its connected accounts unless
    /// `account_ids` names others.
    #[schema(schema_with = crate::openapi::fields::brand_id_optional)]
    pub brand_id: Option<String>,
    /// The accounts its posts go to (needed without `brand_id`).
    #[schema(schema_with = crate::openapi::fields::account_ids_optional)]
    pub account_ids: Option<Vec<String>>,
    pub sources: Option<SourcesInput>,
    /// Five-field cron (`minute hour day-of-month month day-of-week`) in the workspace's time
    /// zone, at most 100 characters and 4 runs an hour; leave out to run only when asked.
    #[schema(max_length = 100, example = "0 9 * * mon-fri")]
    pub schedule: Option<String>,
    #[schema(schema_with = crate::openapi::fields::agent_output)]
    pub output: Option<String>,
    /// Posts per run, 1 to 10 (default 3).
    #[schema(minimum = 1, maximum = 10)]
    pub max_posts: Option<i64>,
    /// AI credits per run, 1 to 500 (default 20).
    #[schema(minimum = 1, maximum = 500)]
    pub max_credits: Option<i64>,
    /// Default true; a disabled agent's schedule does not run (it can still be run by hand).
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    #[schema(schema_with = crate::openapi::fields::agent_name_optional)]
    pub name: Option<String>,
    #[schema(schema_with = crate::openapi::fields::agent_instructions_optional)]
    pub instructions: Option<String>,
    /// `null` removes the brand (the accounts stay).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::openapi::fields::brand_id_optional)]
    pub brand_id: Option<Option<String>>,
    #[schema(schema_with = crate::openapi::fields::account_ids_optional)]
    pub account_ids: Option<Vec<String>>,
    pub sources: Option<SourcesInput>,
    /// `null` removes the schedule. A new schedule counts from now.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub schedule: Option<Option<String>>,
    #[schema(schema_with = crate::openapi::fields::agent_output)]
    pub output: Option<String>,
    #[schema(minimum = 1, maximum = 10)]
    pub max_posts: Option<i64>,
    #[schema(minimum = 1, maximum = 500)]
    pub max_credits: Option<i64>,
    /// Pause (`false`) or resume (`true`) the schedule; resuming counts from now.
    pub enabled: Option<bool>,
}

/// List agents, newest first.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(Pagination),
    security(("bearer" = ["agents:read"]), ("api_key" = ["agents:read"])),
    responses((status = 200, body = inline(List<AgentObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AgentsRead>,
    page: Pagination,
) -> ApiResult<Json<List<AgentObject>>> {
    let agents = state
        .app()
        .agents()
        .list(&p.caller(), page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&agents, AgentObject::from)))
}

/// Create an agent (at most 50 per workspace). Its schedule's first due time is
/// `next_run_at`.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = CreateAgent,
    security(("bearer" = ["agents:write"]), ("api_key" = ["agents:write"])),
    responses((status = 201, body = AgentObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AgentsWrite>,
    ApiJson(r): ApiJson<CreateAgent>,
) -> ApiResult<Created<AgentObject>> {
    let new = NewAgent {
        name: r.name,
        instructions: r.instructions,
        brand_id: r.brand_id,
        account_ids: r.account_ids,
        sources: r.sources.map(Into::into),
        schedule: r.schedule,
        output: r.output,
        max_posts: r.max_posts,
        max_credits: r.max_credits,
        enabled: r.enabled,
    };
    let agent = state.app().agents().create(&p.caller(), new).await?;
    Ok(Created(AgentObject::from(&agent)))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    security(("bearer" = ["agents:read"]), ("api_key" = ["agents:read"])),
    responses((status = 200, body = AgentObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AgentsRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AgentObject>> {
    let agent = state.app().agents().get(&p.caller(), &id).await?;
    Ok(Json(AgentObject::from(&agent)))
}

/// Change an agent, pause it or resume it (`enabled`).
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", request_body = UpdateAgent,
    params(("id" = String, Path)),
    security(("bearer" = ["agents:write"]), ("api_key" = ["agents:write"])),
    responses((status = 200, body = AgentObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AgentsWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<UpdateAgent>,
) -> ApiResult<Json<AgentObject>> {
    let edit = AgentEdit {
        name: r.name,
        instructions: r.instructions,
        brand_id: r.brand_id,
        account_ids: r.account_ids,
        sources: r.sources.map(Into::into),
        schedule: r.schedule,
        output: r.output,
        max_posts: r.max_posts,
        max_credits: r.max_credits,
        enabled: r.enabled,
    };
    let agent = state.app().agents().update(&p.caller(), &id, edit).await?;
    Ok(Json(AgentObject::from(&agent)))
}

/// Delete an agent and its runs; a run in progress records nothing. Its posts stay.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    security(("bearer" = ["agents:write"]), ("api_key" = ["agents:write"])),
    responses((status = 200, body = Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AgentsWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    let id = state.app().agents().delete(&p.caller(), &id).await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        object: "agent",
        deleted: true,
    }))
}

/// The agent's runs, newest first (the newest 200 are kept).
#[utoipa::path(get, path = "/v1/agents/{id}/runs", tag = "agents",
    params(("id" = String, Path), Pagination),
    security(("bearer" = ["agents:read"]), ("api_key" = ["agents:read"])),
    responses((status = 200, body = inline(List<AgentRunObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn runs(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AgentsRead>,
    ApiPath(id): ApiPath<String>,
    page: Pagination,
) -> ApiResult<Json<List<AgentRunObject>>> {
    let runs = state
        .app()
        .agents()
        .runs(&p.caller(), &id, page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&runs, AgentRunObject::from)))
}

/// Run the agent now, whether or not it is enabled: `202` with the queued run, which a worker
/// takes at once. `409` while an earlier asked-for run is waiting or running.
#[utoipa::path(post, path = "/v1/agents/{id}/runs", tag = "agents", params(("id" = String, Path)),
    security(("bearer" = ["agents:write"]), ("api_key" = ["agents:write"])),
    responses((status = 202, body = AgentRunObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn run_now(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AgentsWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<AgentRunObject>)> {
    let run = state.app().agents().run_now(&p.caller(), &id).await?;
    Ok((StatusCode::ACCEPTED, Json(AgentRunObject::from(&run))))
}

/// One run: what it drew on and asked, the posts it made, the credits it spent, its error.
#[utoipa::path(get, path = "/v1/agents/{id}/runs/{run_id}", tag = "agents",
    params(("id" = String, Path), ("run_id" = String, Path)),
    security(("bearer" = ["agents:read"]), ("api_key" = ["agents:read"])),
    responses((status = 200, body = AgentRunObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn run(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AgentsRead>,
    ApiPath((id, run_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<AgentRunObject>> {
    let run = state.app().agents().run(&p.caller(), &id, &run_id).await?;
    Ok(Json(AgentRunObject::from(&run)))
}
