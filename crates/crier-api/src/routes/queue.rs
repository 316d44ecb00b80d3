//! The posting queue: weekly time slots in the workspace's time zone, and what is scheduled,
//! in the order it goes out. `POST /v1/posts/{id}/schedule {"slot":"next"}` takes the next
//! free slot.
//!
//! Each mode has its own queue, as it has its own posts: a key reads and replaces its mode's
//! slots, and a free slot is one its mode's posts do not take. A test-mode key never moves
//! or fills a live slot. A key limited to brands or accounts lists only the queued posts it
//! reaches, and cannot change the slots every account shares (`403 forbidden_scope`).

use axum::Json;
use axum::extract::State;
use crier_core::queue::Slot;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, List, Pagination};
use crate::routes::posts::PostObject;

pub const MAX_SLOTS: usize = 100;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotObject {
    /// `monday` … `sunday` (or `mon` … `sun`).
    #[schema(schema_with = crate::openapi::fields::weekday)]
    pub day: String,
    /// Local time, `HH:MM`.
    #[schema(schema_with = crate::openapi::fields::slot_time)]
    pub time: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Slots {
    #[schema(example = "queue_slots")]
    pub object: &'static str,
    /// The workspace's IANA time zone, in which the slots are read.
    pub timezone: String,
    pub slots: Vec<SlotObject>,
    /// When the next free slot is, if any in the next 8 weeks.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_free: Option<Timestamp>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSlots {
    /// At most 100 slots.
    #[schema(max_items = 100)]
    pub slots: Vec<SlotObject>,
}

/// The slots of the key's mode, and the next one its mode's posts leave free.
async fn slots_view(state: &AppState, p: &Principal) -> ApiResult<Slots> {
    let workspace = state
        .store()
        .get_workspace(p.workspace_id())
        .await?
        .ok_or_else(|| ApiError::internal("workspace missing"))?;
    let now = state.clock().now();
    let queue = state
        .store()
        .queue_plan(&workspace, p.livemode(), now.as_millisecond())
        .await?;
    Ok(Slots {
        object: "queue_slots",
        next_free: queue.next_free(now),
        timezone: workspace.timezone,
        slots: queue
            .slots
            .iter()
            .map(|s| SlotObject {
                day: s.day_name().to_owned(),
                time: s.time(),
            })
            .collect(),
    })
}

/// The weekly posting slots of the key's mode (test-mode keys have their own).
#[utoipa::path(get, path = "/v1/queue/slots", tag = "queue",
    security(("bearer" = ["queue:read"]), ("api_key" = ["queue:read"])),
    responses((status = 200, body = Slots), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get_slots(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::QueueRead>,
) -> ApiResult<Json<Slots>> {
    Ok(Json(slots_view(&state, &p).await?))
}

/// Replace the weekly posting slots of the key's mode (at most 100); the other mode's stay.
#[utoipa::path(put, path = "/v1/queue/slots", tag = "queue", request_body = PutSlots,
    security(("bearer" = ["queue:write"]), ("api_key" = ["queue:write"])),
    responses((status = 200, body = Slots), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn put_slots(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::QueueWrite>,
    ApiJson(req): ApiJson<PutSlots>,
) -> ApiResult<Json<Slots>> {
    // Every account of the mode shares the slots, beyond what a limited key reaches.
    p.caller()
        .require_unrestricted("change the queue's slots, which every account shares")?;
    if req.slots.len() > MAX_SLOTS {
        return Err(ApiError::invalid(
            "slots",
            format!("`slots` may hold at most {MAX_SLOTS} slots."),
        ));
    }
    let mut parsed = Vec::with_capacity(req.slots.len());
    for (i, s) in req.slots.iter().enumerate() {
        let slot = Slot::parse(&s.day, &s.time).ok_or_else(|| {
            ApiError::invalid(
                format!("slots[{i}]"),
                "A slot is `{\"day\":\"monday\",\"time\":\"09:30\"}` (24-hour local time).",
            )
        })?;
        parsed.push((slot.weekday, slot.minute));
    }
    state
        .store()
        .set_slots(p.workspace_id(), p.livemode(), &parsed)
        .await?;
    Ok(Json(slots_view(&state, &p).await?))
}

/// What is scheduled (and waiting for approval), in the order it goes out.
#[utoipa::path(get, path = "/v1/queue", tag = "queue", params(Pagination),
    security(("bearer" = ["queue:read"]), ("api_key" = ["queue:read"])),
    responses((status = 200, body = inline(List<PostObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::QueueRead>,
    page: Pagination,
) -> ApiResult<Json<List<PostObject>>> {
    let posts = state
        .app()
        .posts()
        .queue(&p.caller(), page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&posts, PostObject::from)))
}
