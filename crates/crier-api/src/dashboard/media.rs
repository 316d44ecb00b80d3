//! The composer's uploads: the page's script asks for an upload URL and confirms the upload
//! through these two calls (the API's own handlers with the session), and sends the bytes
//! itself to the signed URL, so it can show the upload's progress. The bytes never pass
//! through a dashboard handler: the local store's signed `PUT` (or S3's) takes them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Scripted;
use crate::AppState;
use crate::auth::Auth;
use crate::extract::{ApiJson, ApiPath, Created};
use crate::routes::media::{self as api, CreateUpload};

/// `POST /app/media/upload-url`: the API's `POST /v1/media/upload-url`, answering its JSON.
pub async fn upload_url(State(state): State<AppState>, call: Scripted) -> Response {
    let result = async {
        let req: CreateUpload = crate::extract::parse_json(&call.body)?;
        let auth = Auth::of(call.dash.principal.clone())?;
        api::upload_url(State(state.clone()), auth, ApiJson(req)).await
    }
    .await;
    match result {
        Ok(Created(media)) => (StatusCode::CREATED, Json(media)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /app/media/{id}/confirm`: the API's `POST /v1/media/{id}/confirm`.
pub async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    call: Scripted,
) -> Response {
    let result = async {
        let auth = Auth::of(call.dash.principal.clone())?;
        api::confirm(State(state.clone()), auth, ApiPath(id)).await
    }
    .await;
    match result {
        Ok(Json(media)) => Json(media).into_response(),
        Err(e) => e.into_response(),
    }
}
