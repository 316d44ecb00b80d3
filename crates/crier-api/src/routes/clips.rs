//! `/v1/clips`: clip jobs that find the scenes of an uploaded video and cut clips from it in
//! the worker. The rules live in `crier_app::clips`; this module parses, calls them and
//! renders.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crier_app::clips::{NewClipJob, ShownJob};
use crier_core::clock::from_ms;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, List, Pagination};

#[derive(Debug, Serialize, ToSchema)]
pub struct ClipJobObject {
    #[schema(example = "clp_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "clip_job")]
    pub object: &'static str,
    /// The video the clips are cut from.
    pub media_id: String,
    pub target_seconds: f64,
    /// `9:16`, `1:1` or `16:9`.
    pub aspect: String,
    /// `crop` or `letterbox`.
    pub fit: String,
    pub max_clips: i64,
    pub scene_threshold: f64,
    /// `queued`, `running`, `completed`, `failed` or `canceled`.
    pub status: &'static str,
    /// 0 to 100 while it runs.
    pub progress: i64,
    /// How many times it started (more than 1 after a worker was lost).
    pub attempts: i64,
    /// The video's length, once measured.
    pub duration_seconds: Option<f64>,
    /// Where scenes change, in seconds from the start.
    pub scenes: Vec<f64>,
    pub clips: Vec<ClipObject>,
    pub error: Option<crier_store::views::AgentRunError>,
    pub livemode: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// One clip: where it is in the video, and the media object that holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClipObject {
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub media_id: String,
    /// A signed URL that reads the clip, valid for a short time (`null` once its media is
    /// deleted).
    pub url: Option<String>,
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl From<&ShownJob> for ClipJobObject {
    fn from(s: &ShownJob) -> Self {
        let j = &s.job;
        Self {
            id: j.id.to_string(),
            object: "clip_job",
            media_id: j.media_id.clone(),
            target_seconds: seconds(j.target_ms),
            aspect: j.aspect.clone(),
            fit: j.fit.clone(),
            max_clips: j.max_clips,
            scene_threshold: j.threshold as f64 / 1000.0,
            status: j.status.as_str(),
            progress: j.progress,
            attempts: j.attempts,
            duration_seconds: j.duration_ms.map(seconds),
            scenes: j.scenes.iter().copied().map(seconds).collect(),
            clips: j
                .clips
                .iter()
                .zip(&s.urls)
                .map(|(c, url)| ClipObject {
                    start_seconds: seconds(c.start_ms),
                    end_seconds: seconds(c.end_ms),
                    media_id: c.media_id.clone(),
                    url: url.clone(),
                })
                .collect(),
            error: j
                .error
                .as_ref()
                .map(|(code, message)| crier_store::views::AgentRunError {
                    code: code.clone(),
                    message: message.clone(),
                }),
            livemode: j.livemode,
            created_at: from_ms(j.created_at),
            updated_at: from_ms(j.updated_at),
            finished_at: j.finished_at.map(from_ms),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClipJob {
    /// A ready video of this workspace and mode (`POST /v1/media/upload-url`, then confirm).
    #[schema(schema_with = crate::openapi::fields::media_id)]
    pub media_id: String,
    /// The length each clip aims for, 3 to 180 seconds (default 30).
    #[schema(minimum = 3, maximum = 180)]
    pub target_seconds: Option<i64>,
    #[schema(schema_with = crate::openapi::fields::clip_aspect)]
    pub aspect: Option<String>,
    #[schema(schema_with = crate::openapi::fields::clip_fit)]
    pub fit: Option<String>,
    /// At most how many clips, 1 to 10 (default 3).
    #[schema(minimum = 1, maximum = 10)]
    pub max_clips: Option<i64>,
    /// How different two frames must be to count as a scene change, 0.05 to 0.95 (default 0.4,
    /// ffmpeg's scene score).
    #[schema(minimum = 0.05, maximum = 0.95)]
    pub scene_threshold: Option<f64>,
}

/// List clip jobs, newest first.
#[utoipa::path(get, path = "/v1/clips", tag = "clips", params(Pagination),
    security(("bearer" = ["clips:read"]), ("api_key" = ["clips:read"])),
    responses((status = 200, body = inline(List<ClipJobObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::ClipsRead>,
    page: Pagination,
) -> ApiResult<Json<List<ClipJobObject>>> {
    let jobs = state
        .app()
        .clips()
        .list(&p.caller(), page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&jobs, ClipJobObject::from)))
}

/// Queue a clip job for a ready video (needs `media:write` too: the clips are media). `202`
/// with the job; a worker runs it, its `progress` shows how far it is.
#[utoipa::path(post, path = "/v1/clips", tag = "clips", request_body = CreateClipJob,
    security(("bearer" = ["clips:write"]), ("api_key" = ["clips:write"])),
    responses((status = 202, body = ClipJobObject), (status = "4XX", body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::ClipsWrite>,
    ApiJson(r): ApiJson<CreateClipJob>,
) -> ApiResult<(StatusCode, Json<ClipJobObject>)> {
    let new = NewClipJob {
        media_id: r.media_id,
        target_seconds: r.target_seconds,
        aspect: r.aspect,
        fit: r.fit,
        max_clips: r.max_clips,
        scene_threshold: r.scene_threshold,
    };
    let job = state.app().clips().create(&p.caller(), new).await?;
    Ok((StatusCode::ACCEPTED, Json(ClipJobObject::from(&job))))
}

/// One clip job: its progress, the scenes found, the clips with signed download URLs.
#[utoipa::path(get, path = "/v1/clips/{id}", tag = "clips", params(("id" = String, Path)),
    security(("bearer" = ["clips:read"]), ("api_key" = ["clips:read"])),
    responses((status = 200, body = ClipJobObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::ClipsRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ClipJobObject>> {
    let job = state.app().clips().get(&p.caller(), &id).await?;
    Ok(Json(ClipJobObject::from(&job)))
}

/// Cancel a queued or running clip job (`409` once it ended); a running one stops at its next
/// step and keeps no clip.
#[utoipa::path(post, path = "/v1/clips/{id}/cancel", tag = "clips", params(("id" = String, Path)),
    security(("bearer" = ["clips:write"]), ("api_key" = ["clips:write"])),
    responses((status = 200, body = ClipJobObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::ClipsWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ClipJobObject>> {
    let job = state.app().clips().cancel(&p.caller(), &id).await?;
    Ok(Json(ClipJobObject::from(&job)))
}
