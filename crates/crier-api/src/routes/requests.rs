//! `/v1/requests/{request_id}`: one entry of the recent request log, by the id a response
//! carried in `X-Request-Id`.
//!
//! The log keeps the authenticated requests (API keys and sessions) of the last 7 days: method,
//! route template, status, error code, duration, time and the key; never bodies, query strings
//! or headers. It is written by the batched usage flush, every few seconds, so a look-up right
//! after a request may answer `404` for those seconds. A request of another workspace, one
//! made with a key this caller may not see (the rule of `GET /v1/keys/{id}`), an unknown id
//! and a malformed one are all the same `404 not_found`.

use axum::Json;
use axum::extract::State;
use crier_core::ids::RequestId;
use crier_store::views::RequestObject;

use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;

/// Look up a request of the last 7 days by its id (`X-Request-Id`).
#[utoipa::path(get, path = "/v1/requests/{request_id}", tag = "requests",
    params(("request_id" = String, Path, description = "The request's id (`req_…`), from its response's `X-Request-Id`")),
    security(("bearer" = ["keys:read"]), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "The request", body = RequestObject),
        (status = "4XX", description = "Refused, or no such request (yet: the log is written every few seconds)", body = crate::error::ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KeysRead>,
    ApiPath(request_id): ApiPath<String>,
) -> ApiResult<Json<RequestObject>> {
    let not_found = || ApiError::not_found("request", &request_id);
    let id = RequestId::parse(&request_id).ok_or_else(not_found)?;
    let entry = state
        .store()
        .request_log_entry(p.workspace_id(), id.as_str())
        .await?
        .ok_or_else(not_found)?;
    if !super::keys::may_see_requests_of(&state, &p, &entry.key_id).await? {
        return Err(not_found());
    }
    Ok(Json(RequestObject::from_entry(&entry)))
}
