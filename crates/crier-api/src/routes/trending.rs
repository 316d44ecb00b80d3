//! Trending topics: what the networks the workspace is on publish as trending (Mastodon's
//! trending tags per instance, Bluesky's trending topics per account), cached and refreshed by
//! a worker, merged with the workspace's own rising hashtags. The rules are
//! `crier_app::trending`; this handler parses, calls and renders.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::ApiResult;
use crate::extract::{List, Pagination};

/// One trending topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendObject {
    /// As people write it: a hashtag with its `#`, or a phrase (Bluesky's topics); at most
    /// 100 characters.
    #[schema(example = "#rustlang", max_length = 100)]
    pub topic: String,
    /// Where it trends: `mastodon`, `bluesky` (the networks of the workspace's live accounts)
    /// or `workspace` (rising in the workspace's own posts).
    #[schema(example = "mastodon")]
    pub source: String,
    /// 0 to 1: the topic's score normalised by the best of its own list (each network list
    /// and the workspace's are scored differently), so 1 is the top of a list.
    #[schema(example = 0.75, minimum = 0.0, maximum = 1.0)]
    pub score: f64,
}

/// Trending topics, hottest first: the cached trends of the networks the workspace has live
/// accounts on (refreshed every `trends_refresh_seconds`), merged with hashtags rising in the
/// workspace's own posts (the last 7 days against the 28 before). A topic listed by several
/// sources (compared case-insensitively, without `#` and spaces) appears once, with its best
/// score. Test-mode keys see only the rising hashtags of test-mode posts.
#[utoipa::path(get, path = "/v1/trending", tag = "trending", params(Pagination),
    security(("bearer" = ["analytics:read"]), ("api_key" = ["analytics:read"])),
    responses((status = 200, body = inline(List<TrendObject>)),
        (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AnalyticsRead>,
    page: Pagination,
) -> ApiResult<Json<List<TrendObject>>> {
    let found = state
        .app()
        .trending()
        .page(&p.caller(), page.limit as usize, page.offset as usize)
        .await?;
    Ok(Json(List {
        data: found
            .items
            .into_iter()
            .map(|t| TrendObject {
                topic: t.topic,
                source: t.source,
                score: t.score,
            })
            .collect(),
        has_more: found.has_more,
    }))
}
