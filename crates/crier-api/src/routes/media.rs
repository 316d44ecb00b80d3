//! `/v1/media`: upload URLs, confirming uploads, reading, alt text, deleting (the rules are in
//! crier-app `media.rs`); and, for the embedded local store, the two signed routes that carry
//! no API key: `PUT /v1/media/uploads/{id}` (the bytes of a pending upload) and
//! `GET /v1/media/files/{id}` (the bytes of a ready media object).
//!
//! The signed routes are outside the keyed API and its OpenAPI operations: the URL's HMAC
//! signature and expiry are the authority (`403 forbidden` when tampered with or expired).
//! The JSON body limit does not apply to the upload: its body is streamed to a temporary file
//! with the media's declared size as the cap (`413 payload_too_large` beyond, without reading
//! more than the cap plus one chunk), and moved into place only when complete. A declared
//! `Content-Length` larger than the size is refused before any byte is read.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crier_app::media::{NewImport, NewUpload};
use crier_core::ErrorCode;
use crier_core::ids::MediaId;
use crier_media::StorageError;
use crier_store::views::{MediaObject, UploadObject};
use crier_store::{Media, MediaStatus};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Created, List, Pagination};
use crate::routes::posts::Deleted;

/// A body chunk must arrive within this, or the upload is dropped.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// The file's name, 1 to 255 characters, no control characters, `/` or `\`.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f/\\]*[^\x00-\x20\x7f-\x9f/\\][^\x00-\x1f\x7f-\x9f/\\]*$"
    )]
    pub filename: String,
    /// What the bytes will be; confirm checks it against the bytes.
    #[schema(schema_with = crate::openapi::fields::media_type)]
    pub content_type: String,
    /// The exact length of the bytes: 1 to 536870912 (the server's configured maximum, 512 MiB
    /// by default). It must fit the plan's media storage.
    #[schema(minimum = 1, maximum = 536870912)]
    pub size: u64,
    /// Up to 1500 characters.
    #[schema(max_length = 1500)]
    pub alt_text: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportMedia {
    #[schema(schema_with = crate::openapi::fields::import_url)]
    pub url: String,
    /// 1 to 255 characters, no control characters, `/` or `\`; default: the URL's last path
    /// segment, or `import` with the type's extension.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f/\\]*[^\x00-\x20\x7f-\x9f/\\][^\x00-\x1f\x7f-\x9f/\\]*$"
    )]
    pub filename: Option<String>,
    /// Up to 1500 characters.
    #[schema(max_length = 1500)]
    pub alt_text: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMedia {
    /// Up to 1500 characters; `null` or empty clears it.
    #[schema(max_length = 1500)]
    pub alt_text: Option<String>,
}

fn object(m: &Media) -> MediaObject {
    MediaObject::from(m)
}

/// Ask for an upload URL.
///
/// Answers the pending media object with `upload`: `PUT upload.url` with `upload.headers`
/// and the bytes, **without an API key**, before `upload.expires_at` (15 minutes by default).
/// The URL is signed: a tampered or expired one answers `403`, a body larger than `size`
/// `413`. Then `POST /v1/media/{id}/confirm`. `content_type` is one of the accepted image and
/// video types; `402 quota_exceeded` when `size` alone cannot fit the plan's media storage;
/// `409 conflict` when the workspace already has 100 uploads waiting for confirmation.
#[utoipa::path(post, path = "/v1/media/upload-url", tag = "media", request_body = CreateUpload,
    security(("bearer" = ["media:write"]), ("api_key" = ["media:write"])),
    responses((status = 201, body = MediaObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn upload_url(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::MediaWrite>,
    ApiJson(req): ApiJson<CreateUpload>,
) -> ApiResult<Created<MediaObject>> {
    let (media, target) = state
        .app()
        .media()
        .create_upload(
            &p.caller(),
            NewUpload {
                filename: req.filename,
                content_type: req.content_type,
                size: req.size,
                alt_text: req.alt_text,
            },
        )
        .await?;
    let mut o = object(&media);
    o.upload = Some(UploadObject {
        method: target.method,
        url: target.url,
        headers: target.headers,
        expires_at: crier_core::clock::from_ms(media.upload_expires_at),
    });
    Ok(Created(o))
}

/// Import media from a URL.
///
/// crier fetches `url` itself through the same guard as webhooks (http/https only; private
/// and loopback addresses refused unless the operator allows them; each redirect checked,
/// at most 5) and stores the bytes as an upload would be: the type is sniffed from the bytes
/// and must be an accepted image or video type, images need readable dimensions and videos a
/// readable duration, the plan's storage quota applies (`402 quota_exceeded`). Answers `201`
/// with the ready media object and emits `media.ready`. A URL that cannot be fetched, answers
/// an error, is larger than 64 MiB (or the configured maximum) or holds another type is `400
/// invalid_request` with `param` `url`, and leaves nothing behind. For larger files use
/// `POST /v1/media/upload-url`.
#[utoipa::path(post, path = "/v1/media/import", tag = "media", request_body = ImportMedia,
    security(("bearer" = ["media:write"]), ("api_key" = ["media:write"])),
    responses((status = 201, body = MediaObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn import(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::MediaWrite>,
    ApiJson(req): ApiJson<ImportMedia>,
) -> ApiResult<Created<MediaObject>> {
    let m = state
        .app()
        .media()
        .import(
            &p.caller(),
            NewImport {
                url: req.url,
                filename: req.filename,
                alt_text: req.alt_text,
            },
        )
        .await?;
    Ok(Created(object(&m)))
}

/// Confirm a finished upload.
///
/// Reads the bytes: `content_type` becomes the type sniffed from them, with `size`, `sha256`,
/// `width` and `height` for images and `duration_ms` for video. Bytes of a type crier does not
/// take, or not of the declared type, are `400` (`param` `content_type`); bytes whose length
/// differs from `size` (or none) are `400` (`param` `size`); the plan's storage quota is
/// `402 quota_exceeded`. A ready media object emits `media.ready`. Confirming a ready media
/// object again answers it unchanged.
#[utoipa::path(post, path = "/v1/media/{id}/confirm", tag = "media", params(("id" = String, Path)),
    security(("bearer" = ["media:write"]), ("api_key" = ["media:write"])),
    responses((status = 200, body = MediaObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn confirm(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::MediaWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MediaObject>> {
    // Not while a signed PUT is sending its bytes: the bytes confirmed are the bytes kept (the
    // PUT holds the same mark until its file is in place). Looked up first, so another
    // workspace's media is 404 as ever.
    let (media, _) = state.app().media().get(&p.caller().tenant, &id).await?;
    let _quiet = state.receiving(&media.id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            "This media's bytes are still being sent; confirm once the upload has ended.",
        )
    })?;
    let m = state.app().media().confirm(&p.caller(), &id).await?;
    Ok(Json(object(&m)))
}

/// List media, newest first (without read URLs).
#[utoipa::path(get, path = "/v1/media", tag = "media", params(Pagination),
    security(("bearer" = ["media:read"]), ("api_key" = ["media:read"])),
    responses((status = 200, body = inline(List<MediaObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::MediaRead>,
    page: Pagination,
) -> ApiResult<Json<List<MediaObject>>> {
    let items = state
        .app()
        .media()
        .list(&p.caller().tenant, page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&items, object)))
}

/// One media object; a ready one has `url`, a signed URL that reads its bytes for a short time
/// (15 minutes by default).
#[utoipa::path(get, path = "/v1/media/{id}", tag = "media", params(("id" = String, Path)),
    security(("bearer" = ["media:read"]), ("api_key" = ["media:read"])),
    responses((status = 200, body = MediaObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::MediaRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MediaObject>> {
    let (m, url) = state.app().media().get(&p.caller().tenant, &id).await?;
    let mut o = object(&m);
    o.url = url;
    Ok(Json(o))
}

/// Set or clear the alt text.
#[utoipa::path(patch, path = "/v1/media/{id}", tag = "media", request_body = UpdateMedia,
    params(("id" = String, Path)),
    security(("bearer" = ["media:write"]), ("api_key" = ["media:write"])),
    responses((status = 200, body = MediaObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::MediaWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateMedia>,
) -> ApiResult<Json<MediaObject>> {
    let m = state
        .app()
        .media()
        .set_alt_text(&p.caller(), &id, req.alt_text)
        .await?;
    Ok(Json(object(&m)))
}

/// Delete a media object and its bytes; `409 conflict` while a scheduled, pending-approval or
/// publishing post uses it.
#[utoipa::path(delete, path = "/v1/media/{id}", tag = "media", params(("id" = String, Path)),
    security(("bearer" = ["media:write"]), ("api_key" = ["media:write"])),
    responses((status = 200, body = Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::MediaWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    let m = state.app().media().delete(&p.caller(), &id).await?;
    Ok(Json(Deleted {
        id: m.id.to_string(),
        object: "media",
        deleted: true,
    }))
}

// ---- the signed routes of the local store (no API key) ----

#[derive(Debug, Serialize)]
struct Received {
    id: String,
    object: &'static str,
    status: &'static str,
    received: u64,
}

fn forbidden(message: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

/// Checks the signed URL's query for `method` on `id`; returns the media id.
fn check_signed(
    state: &AppState,
    method: &str,
    id: &str,
    query: Option<&str>,
) -> ApiResult<MediaId> {
    let Some(local) = state.app().media_settings().storage.as_local() else {
        // With S3 configured the URLs are the store's: these routes do not exist.
        return Err(ApiError::new(ErrorCode::NotFound, "No such route."));
    };
    let mut expires = None;
    let mut signature = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "expires" => expires = v.parse::<i64>().ok(),
            "signature" => signature = Some(v.into_owned()),
            _ => {}
        }
    }
    let refused = "This URL is not a valid signed media URL.";
    let (Some(expires), Some(signature)) = (expires, signature) else {
        return Err(forbidden(refused));
    };
    let id = MediaId::parse(id).ok_or_else(|| forbidden(refused))?;
    local
        .verify(
            method,
            id.as_str(),
            expires,
            &signature,
            state.clock().now_ms(),
        )
        .map_err(|e| match e {
            crier_media::local::UrlRefusal::Expired => {
                forbidden("This URL has expired; ask for a new one.")
            }
            crier_media::local::UrlRefusal::BadSignature => forbidden(refused),
        })?;
    Ok(id)
}

fn storage_fault(e: StorageError) -> ApiError {
    tracing::warn!(error = %e, "media storage failed");
    ApiError::new(
        ErrorCode::UpstreamUnavailable,
        "Media storage is unavailable; try again shortly.",
    )
}

fn too_large(size: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("The body is larger than the {size} bytes declared for this media."),
    )
}

/// The bytes of a pending upload (local store). Signed, no API key.
pub async fn put_upload(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let id = check_signed(&state, "PUT", &id, query.as_deref())?;
    let media = state
        .store()
        .media_by_signed_url(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("media", id.as_str()))?;
    if media.status != MediaStatus::Pending {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "This media is already confirmed; its bytes cannot change.",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > media.size) {
        return Err(too_large(media.size));
    }
    // One body at a time: parallel PUTs to one URL would each fill a file of the declared
    // size (outside the storage quota). Held until the file is in place, and confirm takes the
    // same mark, so the media cannot be confirmed while these bytes arrive.
    let _receiving = state.receiving(&media.id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            "Another request is sending this media's bytes; wait for it to end.",
        )
    })?;
    let local = state
        .app()
        .media_settings()
        .storage
        .as_local()
        .expect("checked by check_signed");
    let mut upload = local
        .begin(&media.storage_key, media.size)
        .await
        .map_err(storage_fault)?;
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::time::timeout(CHUNK_TIMEOUT, stream.next())
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "The upload stalled; send the bytes again.",
                )
            })?;
        match next {
            None => break,
            Some(Ok(chunk)) => match upload.write(&chunk).await {
                Ok(()) => {}
                Err(StorageError::TooLarge(n)) => return Err(too_large(n)),
                Err(e) => return Err(storage_fault(e)),
            },
            Some(Err(e)) => return Err(crate::extract::unreadable(e)),
        }
    }
    let received = upload.commit().await.map_err(storage_fault)?;
    Ok(Json(
        serde_json::to_value(Received {
            id: media.id.to_string(),
            object: "media_upload",
            status: "received",
            received,
        })
        .expect("serialisable"),
    ))
}

/// The bytes of a ready media object (local store). Signed, no API key.
pub async fn get_file(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let id = check_signed(&state, "GET", &id, query.as_deref())?;
    let media = state
        .store()
        .media_by_signed_url(&id)
        .await?
        .filter(|m| m.status == MediaStatus::Ready)
        .ok_or_else(|| ApiError::not_found("media", id.as_str()))?;
    let local = state
        .app()
        .media_settings()
        .storage
        .as_local()
        .expect("checked by check_signed");
    let (file, len) = match local.open_object(&media.storage_key).await {
        Ok(f) => f,
        Err(StorageError::Missing) => return Err(ApiError::not_found("media", id.as_str())),
        Err(e) => return Err(storage_fault(e)),
    };
    let stream = futures::stream::unfold((file, 0u64), move |(mut f, sent)| async move {
        use tokio::io::AsyncReadExt;
        if sent >= len {
            return None;
        }
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n.min((len - sent) as usize));
                let n = buf.len() as u64;
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                    (f, sent + n),
                ))
            }
            Err(e) => Some((Err(e), (f, len))),
        }
    });
    let content_type = media
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=60"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The local store's signed routes: outside the keyed API, not in the OpenAPI operations.
pub fn signed_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            &format!("{}/{{id}}", crier_media::local::UPLOAD_PATH),
            axum::routing::put(put_upload),
        )
        .route(
            &format!("{}/{{id}}", crier_media::local::FILE_PATH),
            axum::routing::get(get_file),
        )
}
