//! `/v1/posts` and `/v1/batches`: drafts, edits, scheduling (at a time or the next queue slot),
//! publishing now, cancelling, approving, retrying, deleting, and per-post analytics.
//!
//! The handlers parse, call the post rules of the application layer (`crier_app::posts`: the
//! state machine, validation, network rules, approvals, the quota) and render what they return.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use crier_app::posts::{BatchItem, NewPost, PostEdit, Review, When};
use crier_core::Scope;
use crier_core::clock::from_ms;
use crier_core::ids::AccountId;
use crier_core::posts::PostStatus;
use crier_store::{Post, PostFilter, PostOverride};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crier_store::views::{PostObject, TargetErrorObject, TargetObject};

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Created, List, Pagination, query_pairs};

pub use crier_app::posts::{MAX_ACCOUNTS, MAX_BATCH, MAX_REASON, MAX_TEXT, MAX_THREAD};

// ---- wire types ----

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePost {
    /// The text (the first part of a thread).
    #[schema(schema_with = crate::openapi::fields::post_body)]
    pub body: String,
    /// Further parts, published as replies in order.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fields::thread)]
    pub thread: Vec<String>,
    /// The accounts to publish to (1 to 20); or give `brand_id`.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fields::account_ids)]
    pub account_ids: Vec<String>,
    /// A brand whose connected accounts the post goes to, instead of `account_ids`.
    #[schema(schema_with = crate::openapi::fields::brand_id)]
    pub brand_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fields::media_ids)]
    pub media_ids: Vec<String>,
    /// Per-account text: `{"acct_…": {"body": "…", "thread": […]}}`.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fields::overrides)]
    pub overrides: BTreeMap<String, PostOverride>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePost {
    #[schema(schema_with = crate::openapi::fields::post_body_optional)]
    pub body: Option<String>,
    #[schema(schema_with = crate::openapi::fields::thread_optional)]
    pub thread: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::fields::account_ids_optional)]
    pub account_ids: Option<Vec<String>>,
    /// New accounts: those of this brand (not with `account_ids`).
    #[schema(schema_with = crate::openapi::fields::brand_id)]
    pub brand_id: Option<String>,
    #[schema(schema_with = crate::openapi::fields::media_ids_optional)]
    pub media_ids: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::fields::overrides_optional)]
    pub overrides: Option<BTreeMap<String, PostOverride>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePost {
    /// When to publish (RFC 3339, in the future). Or give `slot`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<Timestamp>,
    /// `next`: the next free slot of the workspace's queue.
    #[schema(schema_with = crate::openapi::fields::slot)]
    pub slot: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovePost {
    /// Reject instead of approving; the post goes back to draft.
    #[serde(default)]
    pub reject: bool,
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchPost {
    #[serde(flatten)]
    pub post: CreatePost,
    /// Schedule this post at once (needs `posts:publish`).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    /// 1 to 100 posts, created all or nothing.
    #[schema(schema_with = crate::openapi::fields::batch_posts)]
    pub posts: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub object: &'static str,
    pub deleted: bool,
}

impl From<CreatePost> for NewPost {
    fn from(r: CreatePost) -> Self {
        Self {
            body: r.body,
            thread: r.thread,
            account_ids: r.account_ids,
            brand_id: r.brand_id,
            media_ids: r.media_ids,
            overrides: r.overrides,
        }
    }
}

impl From<UpdatePost> for PostEdit {
    fn from(r: UpdatePost) -> Self {
        Self {
            body: r.body,
            thread: r.thread,
            account_ids: r.account_ids,
            brand_id: r.brand_id,
            media_ids: r.media_ids,
            overrides: r.overrides,
        }
    }
}

impl From<SchedulePost> for When {
    fn from(r: SchedulePost) -> Self {
        Self {
            scheduled_at: r.scheduled_at,
            slot: r.slot,
        }
    }
}

/// The post `id` as the key `p` sees it (`404` in another workspace or mode).
pub async fn visible_post(state: &AppState, p: &Principal, id: &str) -> ApiResult<Post> {
    Ok(state.app().posts().get(&p.caller(), id).await?)
}

fn render(post: &Post) -> Json<PostObject> {
    Json(PostObject::from(post))
}

// ---- handlers ----

/// List posts, newest first. Filters: `status`, `account_id`, `from`/`to` (RFC 3339, on the
/// scheduled or published time).
#[utoipa::path(get, path = "/v1/posts", tag = "posts",
    params(Pagination,
        ("status" = Option<String>, Query), ("account_id" = Option<String>, Query),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query)),
    security(("bearer" = ["posts:read"]), ("api_key" = ["posts:read"])),
    responses((status = 200, body = inline(List<PostObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsRead>,
    page: Pagination,
    parts: Parts,
) -> ApiResult<Json<List<PostObject>>> {
    let mut filter = PostFilter::default();
    let time = |name: &str, v: &str| {
        v.parse::<Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|_| ApiError::invalid(name, format!("`{name}` must be an RFC 3339 time.")))
    };
    for (name, value) in query_pairs(parts.uri.query()) {
        match name.as_str() {
            "status" => {
                filter.status = Some(PostStatus::parse(&value).ok_or_else(|| {
                    ApiError::invalid("status", format!("Unknown status `{value}`."))
                })?)
            }
            "account_id" => {
                filter.account_id = Some(AccountId::parse(&value).ok_or_else(|| {
                    ApiError::invalid("account_id", format!("No such account: '{value}'."))
                })?)
            }
            "from" => filter.from = Some(time("from", &value)?),
            "to" => filter.to = Some(time("to", &value)?),
            _ => {}
        }
    }
    let posts = state
        .app()
        .posts()
        .list(&p.caller(), filter, page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&posts, PostObject::from)))
}

/// Create a draft, to `account_ids` or to the connected accounts of `brand_id` (exactly one of
/// the two; the post keeps `brand_id`).
#[utoipa::path(post, path = "/v1/posts", tag = "posts", request_body = CreatePost,
    security(("bearer" = ["posts:write"]), ("api_key" = ["posts:write"])),
    responses((status = 201, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsWrite>,
    ApiJson(req): ApiJson<CreatePost>,
) -> ApiResult<Created<PostObject>> {
    let post = state.app().posts().create(&p.caller(), req.into()).await?;
    Ok(Created(PostObject::from(&post)))
}

/// One post with its targets.
#[utoipa::path(get, path = "/v1/posts/{id}", tag = "posts", params(("id" = String, Path)),
    security(("bearer" = ["posts:read"]), ("api_key" = ["posts:read"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PostObject>> {
    Ok(render(&visible_post(&state, &p, &id).await?))
}

/// Edit a draft, a scheduled post or one waiting for approval (not once publishing).
#[utoipa::path(patch, path = "/v1/posts/{id}", tag = "posts", request_body = UpdatePost,
    params(("id" = String, Path)),
    security(("bearer" = ["posts:write"]), ("api_key" = ["posts:write"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdatePost>,
) -> ApiResult<Json<PostObject>> {
    let post = state
        .app()
        .posts()
        .edit(&p.caller(), &id, req.into())
        .await?;
    Ok(render(&post))
}

/// Delete a post (a scheduled post is unscheduled first). Not while it is publishing.
#[utoipa::path(delete, path = "/v1/posts/{id}", tag = "posts", params(("id" = String, Path)),
    security(("bearer" = ["posts:delete"]), ("api_key" = ["posts:delete"])),
    responses((status = 200, body = Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsDelete>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    let id = state.app().posts().delete(&p.caller(), &id).await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        object: "post",
        deleted: true,
    }))
}

/// Schedule at `scheduled_at`, or at the next free queue slot with `{"slot":"next"}`.
#[utoipa::path(post, path = "/v1/posts/{id}/schedule", tag = "posts", request_body = SchedulePost,
    params(("id" = String, Path)),
    security(("bearer" = ["posts:publish"]), ("api_key" = ["posts:publish"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn schedule(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsPublish>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SchedulePost>,
) -> ApiResult<Json<PostObject>> {
    let post = state
        .app()
        .posts()
        .schedule(&p.caller(), &id, req.into())
        .await?;
    Ok(render(&post))
}

/// Publish now.
#[utoipa::path(post, path = "/v1/posts/{id}/publish", tag = "posts",
    params(("id" = String, Path)),
    security(("bearer" = ["posts:publish"]), ("api_key" = ["posts:publish"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn publish(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsPublish>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PostObject>> {
    let post = state.app().posts().publish_now(&p.caller(), &id).await?;
    Ok(render(&post))
}

/// Publish again to the accounts that failed.
#[utoipa::path(post, path = "/v1/posts/{id}/retry", tag = "posts",
    params(("id" = String, Path)),
    security(("bearer" = ["posts:publish"]), ("api_key" = ["posts:publish"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn retry(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsPublish>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PostObject>> {
    let post = state.app().posts().retry(&p.caller(), &id).await?;
    Ok(render(&post))
}

/// Back to draft from scheduled (or from waiting for approval).
#[utoipa::path(post, path = "/v1/posts/{id}/cancel", tag = "posts",
    params(("id" = String, Path)),
    security(("bearer" = ["posts:publish"]), ("api_key" = ["posts:publish"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsPublish>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PostObject>> {
    let post = state.app().posts().cancel(&p.caller(), &id).await?;
    Ok(render(&post))
}

/// Approve a post waiting for approval (it goes to its scheduled time, or out now), or reject
/// it with `{"reject":true,"reason":…}` (back to draft).
#[utoipa::path(post, path = "/v1/posts/{id}/approve", tag = "posts", request_body = ApprovePost,
    params(("id" = String, Path)),
    security(("bearer" = ["posts:approve"]), ("api_key" = ["posts:approve"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn approve(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsApprove>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ApprovePost>,
) -> ApiResult<Json<PostObject>> {
    let review = Review {
        reject: req.reject,
        reason: req.reason,
    };
    let post = state.app().posts().review(&p.caller(), &id, review).await?;
    Ok(render(&post))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetMetrics {
    pub account_id: String,
    pub platform: String,
    pub external_id: Option<String>,
    pub url: Option<String>,
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub impressions: i64,
    /// When the metrics were collected; `null` before the first collection.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub collected_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PostAnalytics {
    pub post_id: String,
    #[schema(example = "post_analytics")]
    pub object: &'static str,
    pub data: Vec<TargetMetrics>,
}

/// Per-account metrics of a post's published targets.
#[utoipa::path(get, path = "/v1/posts/{id}/analytics", tag = "posts", params(("id" = String, Path)),
    security(("bearer" = ["analytics:read"]), ("api_key" = ["analytics:read"])),
    responses((status = 200, body = PostAnalytics), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn analytics(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AnalyticsRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PostAnalytics>> {
    let post = visible_post(&state, &p, &id).await?;
    let collected = state
        .store()
        .post_metrics(p.workspace_id(), &post.id)
        .await?;
    let data = post
        .targets
        .iter()
        .filter(|t| t.status == crier_core::posts::TargetStatus::Published)
        .map(|t| {
            let m = collected.iter().find(|(a, ..)| a == &t.account_id);
            let metrics = m.map(|(_, m, _)| *m).unwrap_or_default();
            TargetMetrics {
                account_id: t.account_id.to_string(),
                platform: t.platform.clone(),
                external_id: t.external_id.clone(),
                url: t.url.clone(),
                likes: metrics.likes,
                reposts: metrics.reposts,
                replies: metrics.replies,
                impressions: metrics.impressions,
                collected_at: m.map(|(.., at)| from_ms(*at)),
            }
        })
        .collect();
    Ok(Json(PostAnalytics {
        post_id: post.id.to_string(),
        object: "post_analytics",
        data,
    }))
}

/// One item of a batch. Read in two steps rather than through `#[serde(flatten)]`, which
/// buffers the fields and so loses the path of the one at fault (`param` would name only the
/// item, not its field).
fn batch_item(mut value: serde_json::Value) -> ApiResult<BatchPost> {
    let scheduled_at = value
        .as_object_mut()
        .and_then(|o| o.remove("scheduled_at"))
        .filter(|v| !v.is_null());
    let post: CreatePost = crate::extract::parse_json(value.to_string().as_bytes())?;
    let scheduled_at = scheduled_at
        .map(|v| {
            serde_json::from_value::<Timestamp>(v).map_err(|_| {
                ApiError::invalid("scheduled_at", "`scheduled_at` must be an RFC 3339 time.")
            })
        })
        .transpose()?;
    Ok(BatchPost { post, scheduled_at })
}

/// Create up to 100 drafts, or scheduled posts where `scheduled_at` is given, all or nothing.
#[utoipa::path(post, path = "/v1/batches", tag = "posts", request_body = CreateBatch,
    security(("bearer" = ["posts:write"]), ("api_key" = ["posts:write"])),
    responses((status = 201, body = inline(List<PostObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn batch(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsWrite>,
    ApiJson(req): ApiJson<CreateBatch>,
) -> ApiResult<Created<List<PostObject>>> {
    if req.posts.is_empty() || req.posts.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "posts",
            format!("`posts` must hold 1 to {MAX_BATCH} posts."),
        ));
    }
    let mut items = Vec::with_capacity(req.posts.len());
    for (i, value) in req.posts.into_iter().enumerate() {
        let item = batch_item(value).map_err(|mut e| {
            e.param.get_or_insert_default();
            e.within(&format!("posts[{i}]."))
        })?;
        if item.scheduled_at.is_some() {
            // Scheduling is publishing: the batch needs that scope too.
            p.require(Scope::PostsPublish)?;
        }
        items.push(BatchItem {
            post: item.post.into(),
            scheduled_at: item.scheduled_at,
        });
    }
    let posts = state.app().posts().create_batch(&p.caller(), items).await?;
    Ok(Created(List {
        data: posts.iter().map(PostObject::from).collect(),
        has_more: false,
    }))
}

// ---- preflight ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateStored {
    /// A stored post of this key's workspace and mode.
    #[schema(schema_with = crate::openapi::fields::post_id)]
    pub post_id: String,
}

/// A post as `POST /v1/posts` takes it, or `{"post_id": …}` for a stored one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ValidateRequest {
    Stored(ValidateStored),
    New(CreatePost),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationProblem {
    pub account_id: String,
    #[schema(example = "bluesky")]
    pub platform: String,
    /// Stable: `{platform}.{area}.{rule}`, e.g. `bluesky.text.max_graphemes`,
    /// `mastodon.media.max_count`.
    #[schema(example = "bluesky.text.max_graphemes")]
    pub rule: String,
    /// `body`, `thread[i]`, `media_ids` or `media_ids[i]`.
    pub field: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    #[schema(example = "post_validation")]
    pub object: &'static str,
    /// Whether every target network would take the post as it is.
    pub valid: bool,
    /// Every problem for every target at once.
    pub problems: Vec<ValidationProblem>,
}

/// Preflight: every problem of a post for every target network at once, each with a stable rule
/// id, without saving anything. The same rules refuse the post when it is scheduled or
/// published. Input that is malformed in itself (unknown accounts, media that is not ready, text
/// over crier's own bounds) is `400` as for `POST /v1/posts`.
#[utoipa::path(post, path = "/v1/posts/validate", tag = "posts", request_body = ValidateRequest,
    security(("bearer" = ["posts:write"]), ("api_key" = ["posts:write"])),
    responses((status = 200, body = Validation), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn validate(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsWrite>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<Validation>> {
    let raw = body.to_string();
    let req = if body.get("post_id").is_some() {
        let stored: ValidateStored = crate::extract::parse_json(raw.as_bytes())?;
        crier_app::posts::Preflight::Stored(stored.post_id)
    } else {
        let new: CreatePost = crate::extract::parse_json(raw.as_bytes())?;
        crier_app::posts::Preflight::New(new.into())
    };
    let (_, problems) = state.app().posts().validate(&p.caller(), req).await?;
    Ok(Json(Validation {
        object: "post_validation",
        valid: problems.is_empty(),
        problems: problems
            .into_iter()
            .map(|p| ValidationProblem {
                account_id: p.account_id,
                platform: p.platform,
                rule: p.violation.rule,
                field: p.violation.field,
                message: p.violation.message,
            })
            .collect(),
    }))
}
