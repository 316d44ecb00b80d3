//! `/v1/posts` and `/v1/batches`: drafts, edits, scheduling (at a time or the next queue slot),
//! publishing now, cancelling, approving, retrying, deleting, and per-post analytics.
//!
//! Every state change goes through the post state machine (`crier_core::posts`) and commits
//! together with the jobs that act on it; a change the current status forbids is
//! `409 conflict` with storage unchanged. Text is checked against every target network's rules
//! when a post is scheduled or published, and `param` names the account and the field
//! (`targets.acct_….body`).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use crier_core::clock::{Month, from_ms};
use crier_core::ids::{AccountId, PostId};
use crier_core::posts::{Action, ApprovedTo, PostStatus, TargetStatus};
use crier_core::{ErrorCode, Scope};
use crier_networks::sandbox::PLATFORM as SANDBOX;
use crier_store::{Account, Post, PostFilter, PostOverride, Target, Transition};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crier_store::views::{PostObject, TargetErrorObject, TargetObject};

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Created, List, Pagination, query_pairs};

pub const MAX_TEXT: usize = 20_000;
pub const MAX_THREAD: usize = 25;
pub const MAX_ACCOUNTS: usize = 20;
pub const MAX_BATCH: usize = 100;

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
    /// The accounts to publish to (1 to 20).
    #[schema(schema_with = crate::openapi::fields::account_ids)]
    pub account_ids: Vec<String>,
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

// ---- validation ----

fn text(param: &str, s: &str) -> ApiResult<()> {
    if s.trim().is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must not be empty."),
        ));
    }
    if s.chars().count() > MAX_TEXT {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must be at most {MAX_TEXT} characters."),
        ));
    }
    Ok(())
}

fn thread(param: &str, parts: &[String]) -> ApiResult<()> {
    if parts.len() > MAX_THREAD {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` may have at most {MAX_THREAD} parts."),
        ));
    }
    for (i, part) in parts.iter().enumerate() {
        text(&format!("{param}[{i}]"), part)?;
    }
    Ok(())
}

/// Checks and resolves the accounts a post goes to: well-formed, in this workspace, of this
/// key's mode, connected; test-mode keys publish only to sandbox accounts.
pub(crate) async fn resolve_accounts(
    state: &AppState,
    p: &Principal,
    param: &str,
    ids: &[String],
) -> ApiResult<Vec<Account>> {
    if ids.is_empty() || ids.len() > MAX_ACCOUNTS {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must list 1 to {MAX_ACCOUNTS} accounts."),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut accounts = Vec::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id) {
            return Err(ApiError::invalid(param, format!("`{id}` is listed twice.")));
        }
        let unknown = || ApiError::invalid(param, format!("No such account: '{id}'."));
        let acct = AccountId::parse(id).ok_or_else(unknown)?;
        let account = state
            .store()
            .get_account(p.workspace_id(), &acct)
            .await?
            .filter(|a| a.livemode == p.livemode())
            .ok_or_else(unknown)?;
        if account.status != "connected" {
            return Err(ApiError::invalid(
                param,
                format!("Account '{id}' is disconnected."),
            ));
        }
        if !p.livemode() && account.platform != SANDBOX {
            return Err(ApiError::invalid(
                param,
                "Test-mode keys publish only to sandbox accounts.",
            ));
        }
        accounts.push(account);
    }
    Ok(accounts)
}

fn check_overrides(
    overrides: &BTreeMap<String, PostOverride>,
    accounts: &[String],
) -> ApiResult<()> {
    for (acct, o) in overrides {
        let param = format!("overrides.{acct}");
        if !accounts.contains(acct) {
            return Err(ApiError::invalid(
                param,
                "Overrides may only name accounts in `account_ids`.",
            ));
        }
        if let Some(body) = &o.body {
            text(&format!("{param}.body"), body)?;
        }
        if let Some(t) = &o.thread {
            thread(&format!("{param}.thread"), t)?;
        }
    }
    Ok(())
}

fn check_media(media: &[String]) -> ApiResult<()> {
    match media.first() {
        // Media uploads arrive with the media issue; until then no media id exists.
        Some(id) => Err(ApiError::invalid(
            "media_ids",
            format!("No such media: '{id}'."),
        )),
        None => Ok(()),
    }
}

async fn new_post(state: &AppState, p: &Principal, req: CreatePost) -> ApiResult<Post> {
    text("body", &req.body)?;
    thread("thread", &req.thread)?;
    let accounts = resolve_accounts(state, p, "account_ids", &req.account_ids).await?;
    check_overrides(&req.overrides, &req.account_ids)?;
    check_media(&req.media_ids)?;
    let now = state.clock().now_ms();
    Ok(Post {
        thread: req.thread,
        media_ids: req.media_ids,
        overrides: req.overrides,
        ..Post::draft(p.workspace_id(), p.livemode(), &accounts, req.body, now)
    })
}

/// Checks every target's text against its network's rules.
fn check_rules(state: &AppState, post: &Post) -> ApiResult<()> {
    for t in &post.targets {
        let Some(network) = state.networks().get(&t.platform) else {
            return Err(ApiError::invalid(
                "account_ids",
                format!("No connector for {}.", t.platform),
            ));
        };
        let parts = post.parts_for(&t.account_id);
        if let Err(v) = network.rules().check(&parts, post.media_ids.len()) {
            return Err(ApiError::invalid(
                format!("targets.{}.{}", t.account_id, v.field),
                format!(
                    "For account {} ({}): {} {}.",
                    t.account_id, t.platform, v.field, v.message
                ),
            ));
        }
    }
    Ok(())
}

/// A post a request wants to publish, for [`check_quota`].
struct Due<'a> {
    /// The post as stored before this request (`None`: a new one), whose place may be held.
    stored: Option<&'a Post>,
    /// The post as it will be, whose unpublished targets need a place.
    post: &'a Post,
    /// When it goes out: its schedule, or now.
    at: i64,
}

impl<'a> Due<'a> {
    /// A stored post going out at `at` as it is.
    fn stored(post: &'a Post, at: i64) -> Self {
        Self {
            stored: Some(post),
            post,
            at,
        }
    }
}

/// `402 quota_exceeded` when live posts would go past the plan's posts per month. Each post
/// counts in the month it is due, on top of what the workspace published that month and what
/// is already scheduled, publishing or awaiting approval for it. A post that already holds its
/// place (rescheduled, approved, edited) gives it up first, so it is not counted twice. The
/// publisher checks the published count again before a target's first call, so concurrent
/// requests cannot publish past the quota by more than a handful.
async fn check_quota(state: &AppState, p: &Principal, due: &[Due<'_>]) -> ApiResult<()> {
    let Some(limit) = p.plan().posts_per_month else {
        return Ok(());
    };
    let now = state.clock().now_ms();
    let this_month = Month::of(now);
    // month -> (the stored posts that may hold a place in it, the targets the posts add)
    let mut months: BTreeMap<String, (Month, Vec<&Post>, u64)> = BTreeMap::new();
    for d in due.iter().filter(|d| d.post.livemode) {
        let month = Month::of(d.at.max(now));
        let adding = d
            .post
            .targets
            .iter()
            .filter(|t| t.status != TargetStatus::Published)
            .count() as u64;
        let entry = months
            .entry(month.period.clone())
            .or_insert_with(|| (month, Vec::new(), 0));
        entry.1.extend(d.stored);
        entry.2 += adding;
    }
    for (month, stored, adding) in months.into_values() {
        // Overdue posts from earlier months go out now: they count in this month.
        let from = if month == this_month {
            i64::MIN
        } else {
            month.start
        };
        // Reserved first: a target that publishes between the two reads is then counted
        // twice (refusing one too many), never missed.
        let mut reserved = state
            .store()
            .reserved_targets(p.workspace_id(), from, month.end)
            .await?
            .max(0) as u64;
        let used = state
            .store()
            .workspace_usage(p.workspace_id(), &month.period)
            .await?
            .get(crier_store::METRIC_POSTS_PUBLISHED)
            .copied()
            .unwrap_or(0)
            .max(0) as u64;
        for post in stored {
            let holds_place = matches!(
                post.status,
                PostStatus::Scheduled | PostStatus::Publishing | PostStatus::PendingApproval
            ) && (from..month.end).contains(&post.scheduled_at.unwrap_or(0));
            if holds_place {
                let held = post
                    .targets
                    .iter()
                    .filter(|t| {
                        matches!(t.status, TargetStatus::Pending | TargetStatus::Publishing)
                    })
                    .count() as u64;
                reserved = reserved.saturating_sub(held);
            }
        }
        if used + reserved + adding > limit {
            return Err(ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "This workspace's plan allows {limit} posts in {}: {used} are published and \
                     {reserved} scheduled, so {adding} more do not fit.",
                    month.period
                ),
            ));
        }
    }
    Ok(())
}

pub async fn visible_post(state: &AppState, p: &Principal, id: &str) -> ApiResult<Post> {
    let not_found = || ApiError::not_found("post", id);
    let id = PostId::parse(id).ok_or_else(not_found)?;
    state
        .store()
        .get_post(p.workspace_id(), &id)
        .await?
        .filter(|post| post.livemode == p.livemode())
        .ok_or_else(not_found)
}

/// Where `action` takes `post` (see [`PostStatus::after`]), or `409 conflict` naming what it
/// cannot be (`verb`: "scheduled", "retried", …).
fn allowed(
    post: &Post,
    action: Action,
    require_approval: bool,
    approved_to: ApprovedTo,
    verb: &str,
) -> ApiResult<PostStatus> {
    post.status
        .after(action, require_approval, approved_to)
        .ok_or_else(|| illegal(post, verb))
}

fn illegal(post: &Post, what: &str) -> ApiError {
    ApiError::conflict(format!(
        "A post that is {} cannot be {what}.",
        post.status.as_str().replace('_', " ")
    ))
}

fn moved() -> ApiError {
    ApiError::conflict("The post changed while this request ran; read it and try again.")
}

async fn require_approval(state: &AppState, p: &Principal) -> ApiResult<bool> {
    Ok(state
        .store()
        .get_workspace(p.workspace_id())
        .await?
        .is_some_and(|w| w.require_approval))
}

/// Applies a transition and answers with the post as it is now.
async fn commit(
    state: &AppState,
    p: &Principal,
    post: &Post,
    t: Transition,
) -> ApiResult<Json<PostObject>> {
    let due_now = t.enqueue_at.is_some_and(|at| at <= t.now);
    if !state
        .store()
        .transition(p.workspace_id(), &post.id, &t)
        .await?
    {
        return Err(moved());
    }
    if due_now {
        state.publish_wake().notify_waiters();
    }
    let post = visible_post(state, p, post.id.as_str()).await?;
    Ok(Json(PostObject::from(&post)))
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
    let mut filter = PostFilter {
        livemode: Some(p.livemode()),
        ..PostFilter::default()
    };
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
        .store()
        .list_posts(p.workspace_id(), &filter, page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&posts, PostObject::from)))
}

/// Create a draft.
#[utoipa::path(post, path = "/v1/posts", tag = "posts", request_body = CreatePost,
    security(("bearer" = ["posts:write"]), ("api_key" = ["posts:write"])),
    responses((status = 201, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsWrite>,
    ApiJson(req): ApiJson<CreatePost>,
) -> ApiResult<Created<PostObject>> {
    let post = new_post(&state, &p, req).await?;
    state.store().insert_post(&post).await?;
    Ok(Created(PostObject::from(&post)))
}

/// One post with its targets.
#[utoipa::path(get, path = "/v1/posts/{id}", tag = "posts", params(("id" = String, Path)),
    security(("bearer" = ["posts:read"]), ("api_key" = ["posts:read"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<PostObject>> {
    Ok(Json(PostObject::from(
        &visible_post(&state, &p, &id).await?,
    )))
}

/// Edit a draft, a scheduled post or one waiting for approval (not once publishing).
#[utoipa::path(patch, path = "/v1/posts/{id}", tag = "posts", request_body = UpdatePost,
    params(("id" = String, Path)),
    security(("bearer" = ["posts:write"]), ("api_key" = ["posts:write"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsWrite>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdatePost>,
) -> ApiResult<Json<PostObject>> {
    let stored = visible_post(&state, &p, &id).await?;
    let mut post = stored.clone();
    allowed(&post, Action::Edit, false, ApprovedTo::Scheduled, "edited")?;
    if let Some(body) = req.body {
        text("body", &body)?;
        post.body = body;
    }
    if let Some(t) = req.thread {
        thread("thread", &t)?;
        post.thread = t;
    }
    if let Some(ids) = req.account_ids {
        let accounts = resolve_accounts(&state, &p, "account_ids", &ids).await?;
        post.account_ids = accounts.iter().map(|a| a.id.clone()).collect();
        post.targets = Target::pending_for(&post.id, &accounts);
    }
    if let Some(m) = req.media_ids {
        check_media(&m)?;
        post.media_ids = m;
    }
    if let Some(o) = req.overrides {
        post.overrides = o;
    }
    let account_names: Vec<String> = post.account_ids.iter().map(ToString::to_string).collect();
    check_overrides(&post.overrides, &account_names)?;
    if post.status != PostStatus::Draft {
        check_rules(&state, &post)?;
        // Other accounts take other places in the quota.
        let now = state.clock().now_ms();
        let due = Due {
            stored: Some(&stored),
            post: &post,
            at: post.scheduled_at.unwrap_or(now).max(now),
        };
        check_quota(&state, &p, &[due]).await?;
    }
    post.updated_at = state.clock().now_ms();
    if !state
        .store()
        .update_post_content(&post, post.status)
        .await?
    {
        return Err(moved());
    }
    let post = visible_post(&state, &p, &id).await?;
    Ok(Json(PostObject::from(&post)))
}

/// Delete a post (a scheduled post is unscheduled first). Not while it is publishing.
#[utoipa::path(delete, path = "/v1/posts/{id}", tag = "posts", params(("id" = String, Path)),
    security(("bearer" = ["posts:delete"]), ("api_key" = ["posts:delete"])),
    responses((status = 200, body = Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsDelete>,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    let post = visible_post(&state, &p, &id).await?;
    allowed(
        &post,
        Action::Delete,
        false,
        ApprovedTo::Scheduled,
        "deleted",
    )?;
    if !state
        .store()
        .delete_post(p.workspace_id(), &post.id, post.status)
        .await?
    {
        return Err(moved());
    }
    Ok(Json(Deleted {
        id: post.id.to_string(),
        object: "post",
        deleted: true,
    }))
}

/// The instant for `{"scheduled_at"}` or `{"slot":"next"}`.
async fn schedule_time(state: &AppState, p: &Principal, req: &SchedulePost) -> ApiResult<i64> {
    let now = state.clock().now();
    match (&req.scheduled_at, req.slot.as_deref()) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::invalid(
            "scheduled_at",
            "Give either `scheduled_at` or `slot`.",
        )),
        (Some(at), None) => {
            if *at <= now {
                return Err(ApiError::invalid(
                    "scheduled_at",
                    "`scheduled_at` must be in the future.",
                ));
            }
            Ok(at.as_millisecond())
        }
        (None, Some("next")) => {
            let ws = state
                .store()
                .get_workspace(p.workspace_id())
                .await?
                .ok_or_else(|| ApiError::internal("workspace missing"))?;
            state
                .store()
                .queue_plan(&ws, now.as_millisecond())
                .await?
                .next_free(now)
                .map(|t| t.as_millisecond())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "slot",
                        "No free queue slot in the next 8 weeks; set slots with PUT /v1/queue/slots.",
                    )
                })
        }
        (None, Some(other)) => Err(ApiError::invalid(
            "slot",
            format!("`slot` must be `next`, not `{other}`."),
        )),
    }
}

/// Schedule at `scheduled_at`, or at the next free queue slot with `{"slot":"next"}`.
#[utoipa::path(post, path = "/v1/posts/{id}/schedule", tag = "posts", request_body = SchedulePost,
    params(("id" = String, Path)),
    security(("bearer" = ["posts:publish"]), ("api_key" = ["posts:publish"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn schedule(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsPublish>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SchedulePost>,
) -> ApiResult<Json<PostObject>> {
    let post = visible_post(&state, &p, &id).await?;
    let approval = require_approval(&state, &p).await?;
    let to = allowed(
        &post,
        Action::Schedule,
        approval,
        ApprovedTo::Scheduled,
        "scheduled",
    )?;
    let at = schedule_time(&state, &p, &req).await?;
    check_rules(&state, &post)?;
    check_quota(&state, &p, &[Due::stored(&post, at)]).await?;
    let now = state.clock().now_ms();
    let t = Transition {
        scheduled_at: Some(Some(at)),
        enqueue_at: (to == PostStatus::Scheduled).then_some(at),
        ..Transition::new(post.status, to, now)
    };
    commit(&state, &p, &post, t).await
}

/// Publish now.
#[utoipa::path(post, path = "/v1/posts/{id}/publish", tag = "posts",
    params(("id" = String, Path)),
    security(("bearer" = ["posts:publish"]), ("api_key" = ["posts:publish"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn publish(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsPublish>,
    Path(id): Path<String>,
) -> ApiResult<Json<PostObject>> {
    let post = visible_post(&state, &p, &id).await?;
    let approval = require_approval(&state, &p).await?;
    let to = allowed(
        &post,
        Action::PublishNow,
        approval,
        ApprovedTo::Publishing,
        "published now",
    )?;
    check_rules(&state, &post)?;
    let now = state.clock().now_ms();
    check_quota(&state, &p, &[Due::stored(&post, now)]).await?;
    let t = Transition {
        scheduled_at: Some(None),
        enqueue_at: (to == PostStatus::Publishing).then_some(now),
        ..Transition::new(post.status, to, now)
    };
    commit(&state, &p, &post, t).await
}

/// Publish again to the accounts that failed.
#[utoipa::path(post, path = "/v1/posts/{id}/retry", tag = "posts",
    params(("id" = String, Path)),
    security(("bearer" = ["posts:publish"]), ("api_key" = ["posts:publish"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn retry(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsPublish>,
    Path(id): Path<String>,
) -> ApiResult<Json<PostObject>> {
    let post = visible_post(&state, &p, &id).await?;
    let to = allowed(
        &post,
        Action::Retry,
        false,
        ApprovedTo::Publishing,
        "retried",
    )?;
    let now = state.clock().now_ms();
    check_quota(&state, &p, &[Due::stored(&post, now)]).await?;
    let t = Transition {
        reset_failed_targets: true,
        enqueue_at: Some(now),
        ..Transition::new(post.status, to, now)
    };
    commit(&state, &p, &post, t).await
}

/// Back to draft from scheduled (or from waiting for approval).
#[utoipa::path(post, path = "/v1/posts/{id}/cancel", tag = "posts",
    params(("id" = String, Path)),
    security(("bearer" = ["posts:publish"]), ("api_key" = ["posts:publish"])),
    responses((status = 200, body = PostObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsPublish>,
    Path(id): Path<String>,
) -> ApiResult<Json<PostObject>> {
    let post = visible_post(&state, &p, &id).await?;
    let to = allowed(
        &post,
        Action::Cancel,
        false,
        ApprovedTo::Scheduled,
        "cancelled",
    )?;
    let t = Transition {
        scheduled_at: Some(None),
        ..Transition::new(post.status, to, state.clock().now_ms())
    };
    commit(&state, &p, &post, t).await
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
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ApprovePost>,
) -> ApiResult<Json<PostObject>> {
    if let Some(reason) = &req.reason
        && reason.chars().count() > 1000
    {
        return Err(ApiError::invalid(
            "reason",
            "`reason` must be at most 1000 characters.",
        ));
    }
    let post = visible_post(&state, &p, &id).await?;
    let now = state.clock().now_ms();
    let approved_to = match post.scheduled_at {
        Some(at) if at > now => ApprovedTo::Scheduled,
        _ => ApprovedTo::Publishing,
    };
    let action = if req.reject {
        Action::Reject
    } else {
        Action::Approve
    };
    let verb = if req.reject { "rejected" } else { "approved" };
    let to = allowed(&post, action, false, approved_to, verb)?;
    if !req.reject {
        check_rules(&state, &post)?;
        let due = post.scheduled_at.unwrap_or(now).max(now);
        check_quota(&state, &p, &[Due::stored(&post, due)]).await?;
    }
    let review = serde_json::json!({
        "decision": if req.reject { "rejected" } else { "approved" },
        "reason": req.reason,
        "by": p.key_id().as_str(),
        "at": from_ms(now),
    });
    let t = Transition {
        // Publishing now, or back to draft: the post no longer waits for a time.
        scheduled_at: matches!(to, PostStatus::Publishing | PostStatus::Draft).then_some(None),
        review: Some(Some(review)),
        enqueue_at: match to {
            PostStatus::Scheduled => post.scheduled_at,
            PostStatus::Publishing => Some(now),
            _ => None,
        },
        ..Transition::new(post.status, to, now)
    };
    commit(&state, &p, &post, t).await
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
    Path(id): Path<String>,
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
    let approval = require_approval(&state, &p).await?;
    let now = state.clock().now();
    let mut posts = Vec::with_capacity(req.posts.len());
    let mut scheduled = Vec::new();
    for (i, value) in req.posts.into_iter().enumerate() {
        let prefix = format!("posts[{i}].");
        let item = batch_item(value).map_err(|mut e| {
            e.param.get_or_insert_default();
            e.within(&prefix)
        })?;
        let mut post = new_post(&state, &p, item.post)
            .await
            .map_err(|e| e.within(&prefix))?;
        if let Some(at) = item.scheduled_at {
            p.require(Scope::PostsPublish)?;
            if at <= now {
                return Err(ApiError::invalid(
                    format!("{prefix}scheduled_at"),
                    "`scheduled_at` must be in the future.",
                ));
            }
            check_rules(&state, &post).map_err(|e| e.within(&prefix))?;
            // As stored before this batch: a draft, holding no place in the quota yet.
            scheduled.push((post.clone(), at.as_millisecond()));
            post.scheduled_at = Some(at.as_millisecond());
            post.status = if approval {
                PostStatus::PendingApproval
            } else {
                PostStatus::Scheduled
            };
        }
        posts.push(post);
    }
    let due: Vec<Due> = scheduled
        .iter()
        .map(|(post, at)| Due {
            stored: None,
            post,
            at: *at,
        })
        .collect();
    check_quota(&state, &p, &due).await?;
    state.store().insert_posts(&posts).await?;
    Ok(Created(List {
        data: posts.iter().map(PostObject::from).collect(),
        has_more: false,
    }))
}
