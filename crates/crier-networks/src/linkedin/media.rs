//! Media for a post: each attachment becomes an asset URN the post's `content` names.
//!
//! - Images (Images API, `…/shares/images-api`): `POST /rest/images?action=initializeUpload`
//!   `{initializeUploadRequest: {owner}}` → `{value: {uploadUrl, image}}`, then the bytes are
//!   `PUT` to `uploadUrl`. JPG, PNG and GIF; fewer than 36,152,320 pixels.
//! - Video (Videos API, `…/shares/videos-api`): `POST /rest/videos?action=initializeUpload`
//!   `{initializeUploadRequest: {owner, fileSizeBytes, uploadCaptions, uploadThumbnail}}` →
//!   `{value: {video, uploadToken, uploadInstructions: [{uploadUrl, firstByte, lastByte}]}}`;
//!   each byte range is `PUT` to its URL and answers an `ETag`; then
//!   `POST /rest/videos?action=finalizeUpload` `{finalizeUploadRequest: {video, uploadToken,
//!   uploadedPartIds: [etags in order]}}`. The video is then processed: `GET
//!   /rest/videos/{urn}` until `status` is `AVAILABLE` (`PROCESSING_FAILED`: refused).
//! - Documents (Documents API, `…/shares/documents-api`; PDF carousels):
//!   `POST /rest/documents?action=initializeUpload` → `{value: {uploadUrl, document}}`, `PUT`.
//!
//! Exactly once: each URN is kept in the part's steps (`img0`, `vid`, `doc`) before its bytes
//! go up, and a `.up` step once they are all up (finalized, for video). A retry reuses an asset
//! whose bytes are up; one initialized but not uploaded is initialized again (LinkedIn drops
//! assets no post uses).

use std::time::{Duration, Instant};

use crate::hosted::Api;
use crate::{Attachment, NetworkError, Part};

use super::call::{self, API};

/// Fewer pixels than this (Images API).
pub const MAX_IMAGE_PIXELS: u64 = 36_152_320;
/// The most polls of one video's processing, whatever the configured times.
const MAX_POLLS: u32 = 100;
/// The most upload parts of one video we follow (LinkedIn's parts are 4 MiB: 500 MB is 120).
const MAX_PARTS: usize = 200;

/// What kind of asset an attachment becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Video,
    Document,
}

impl Kind {
    pub fn of(a: &Attachment) -> Option<Self> {
        match a.meta.content_type.as_str() {
            "image/png" | "image/jpeg" | "image/gif" => Some(Self::Image),
            "video/mp4" => Some(Self::Video),
            "application/pdf" => Some(Self::Document),
            _ => None,
        }
    }
}

/// The post's `content` for its media: one image or video or document as `media`, 2 to 20
/// images as `multiImage`; `None` for a post of text alone.
pub async fn content(
    api: &Api,
    token: &str,
    owner: &str,
    part: &Part<'_>,
) -> Result<Option<serde_json::Value>, NetworkError> {
    let kinds = check(part.media)?;
    let Some(first) = kinds.first() else {
        return Ok(None);
    };
    match first {
        Kind::Image => {
            let mut images = Vec::with_capacity(part.media.len());
            for (i, a) in part.media.iter().enumerate() {
                let urn = image(api, token, owner, part, i, a).await?;
                let mut entry = serde_json::json!({ "id": urn });
                if let Some(alt) = a.meta.alt_text.as_deref().filter(|t| !t.is_empty()) {
                    entry["altText"] = alt.into();
                }
                images.push(entry);
            }
            Ok(Some(if images.len() == 1 {
                serde_json::json!({ "media": images.remove(0) })
            } else {
                serde_json::json!({ "multiImage": { "images": images } })
            }))
        }
        Kind::Video => {
            let urn = video(api, token, owner, part, &part.media[0]).await?;
            Ok(Some(serde_json::json!({ "media": { "id": urn } })))
        }
        Kind::Document => {
            let a = &part.media[0];
            let urn = document(api, token, owner, part, a).await?;
            let title = if a.meta.filename.is_empty() {
                "Document"
            } else {
                &a.meta.filename
            };
            Ok(Some(
                serde_json::json!({ "media": { "id": urn, "title": title } }),
            ))
        }
    }
}

/// The kinds of the attachments, refused when LinkedIn would refuse them: 1 to 20 images, or
/// one video, or one document, never mixed; images under the pixel limit.
fn check(media: &[Attachment]) -> Result<Vec<Kind>, NetworkError> {
    let refuse = |m: String| NetworkError::MediaRejected {
        message: format!("linkedin: {m}"),
    };
    let mut kinds = Vec::with_capacity(media.len());
    for a in media {
        let kind = Kind::of(a).ok_or_else(|| {
            refuse(format!(
                "{} is {}; LinkedIn takes JPG, PNG, GIF, MP4 and PDF",
                a.meta.id, a.meta.content_type
            ))
        })?;
        if kind == Kind::Image {
            let pixels =
                u64::from(a.meta.width.unwrap_or(0)) * u64::from(a.meta.height.unwrap_or(0));
            if pixels >= MAX_IMAGE_PIXELS {
                return Err(refuse(format!(
                    "{} has {pixels} pixels; LinkedIn takes fewer than {MAX_IMAGE_PIXELS}",
                    a.meta.id
                )));
            }
        }
        kinds.push(kind);
    }
    let images = kinds.iter().filter(|k| **k == Kind::Image).count();
    if images > 20 || (images < kinds.len() && images > 0) || (images == 0 && kinds.len() > 1) {
        return Err(refuse(
            "a post takes 1 to 20 images, or one video, or one document, not a mix".into(),
        ));
    }
    Ok(kinds)
}

#[derive(serde::Deserialize)]
struct Value<T> {
    value: T,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageUpload {
    upload_url: String,
    image: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentUpload {
    upload_url: String,
    document: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoUpload {
    video: String,
    #[serde(default)]
    upload_token: String,
    upload_instructions: Vec<Instruction>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instruction {
    upload_url: String,
    first_byte: u64,
    last_byte: u64,
}

#[derive(serde::Deserialize)]
struct VideoStatus {
    #[serde(default)]
    status: String,
}

/// The asset kept under `key` whose bytes are up, if there is one.
async fn kept(part: &Part<'_>, key: &str) -> Result<Option<String>, NetworkError> {
    let Some(urn) = part.steps.get(key).await? else {
        return Ok(None);
    };
    let up = part.steps.get(&format!("{key}.up")).await?;
    Ok((up.as_deref() == Some(urn.as_str())).then_some(urn))
}

async fn initialize<T: serde::de::DeserializeOwned>(
    api: &Api,
    token: &str,
    resource: &str,
    request: serde_json::Value,
) -> Result<T, NetworkError> {
    let mut url = api.url(API, &format!("/rest/{resource}"));
    url.query_pairs_mut()
        .append_pair("action", "initializeUpload");
    let body = serde_json::json!({ "initializeUploadRequest": request });
    let v: Value<T> = call::read(
        api,
        call::json(call::rest(api.http.post(url), token), &body),
    )
    .await?;
    Ok(v.value)
}

/// Whether the member's token may go to `url`: `https` on `linkedin.com` or a subdomain of it,
/// or the configured base's origin (tests, a proxy).
fn upload_host_ok(api: &Api, url: &url::Url) -> bool {
    let linkedin = url.scheme() == "https"
        && url
            .host_str()
            .is_some_and(|h| h == "linkedin.com" || h.ends_with(".linkedin.com"));
    linkedin
        || api
            .config
            .base
            .as_ref()
            .is_some_and(|b| b.origin() == url.origin())
}

/// `PUT`s `bytes` to an upload URL LinkedIn gave; the part's `ETag`, if it sent one. The URL
/// is the answer's, and the request carries the member's token: a URL off LinkedIn's hosts is
/// refused before anything is sent.
async fn put(
    api: &Api,
    token: &str,
    upload_url: &str,
    bytes: bytes::Bytes,
) -> Result<Option<String>, NetworkError> {
    let url = url::Url::parse(upload_url).map_err(|e| {
        NetworkError::unavailable(format!("linkedin: an upload URL that is not one: {e}"))
    })?;
    if !upload_host_ok(api, &url) {
        return Err(NetworkError::unavailable(format!(
            "linkedin: an upload URL off LinkedIn's hosts ({}); not sent",
            url.origin().ascii_serialization()
        )));
    }
    let req = api
        .http
        .put(url)
        .header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(bytes);
    let resp = api.send(req).await?;
    if !resp.status().is_success() {
        return Err(call::error_of(api, resp).await);
    }
    Ok(resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

async fn image(
    api: &Api,
    token: &str,
    owner: &str,
    part: &Part<'_>,
    i: usize,
    a: &Attachment,
) -> Result<String, NetworkError> {
    let key = format!("img{i}");
    if let Some(urn) = kept(part, &key).await? {
        return Ok(urn);
    }
    let up: ImageUpload =
        initialize(api, token, "images", serde_json::json!({ "owner": owner })).await?;
    part.steps.put(&key, &up.image).await?;
    put(api, token, &up.upload_url, a.bytes.clone()).await?;
    part.steps.put(&format!("{key}.up"), &up.image).await?;
    Ok(up.image)
}

async fn document(
    api: &Api,
    token: &str,
    owner: &str,
    part: &Part<'_>,
    a: &Attachment,
) -> Result<String, NetworkError> {
    if let Some(urn) = kept(part, "doc").await? {
        return Ok(urn);
    }
    let up: DocumentUpload = initialize(
        api,
        token,
        "documents",
        serde_json::json!({ "owner": owner }),
    )
    .await?;
    part.steps.put("doc", &up.document).await?;
    put(api, token, &up.upload_url, a.bytes.clone()).await?;
    part.steps.put("doc.up", &up.document).await?;
    Ok(up.document)
}

async fn video(
    api: &Api,
    token: &str,
    owner: &str,
    part: &Part<'_>,
    a: &Attachment,
) -> Result<String, NetworkError> {
    let urn = match kept(part, "vid").await? {
        Some(urn) => urn,
        None => upload_video(api, token, owner, part, a).await?,
    };
    wait_available(api, token, &urn).await?;
    Ok(urn)
}

async fn upload_video(
    api: &Api,
    token: &str,
    owner: &str,
    part: &Part<'_>,
    a: &Attachment,
) -> Result<String, NetworkError> {
    let size = a.bytes.len() as u64;
    let up: VideoUpload = initialize(
        api,
        token,
        "videos",
        serde_json::json!({
            "owner": owner,
            "fileSizeBytes": size,
            "uploadCaptions": false,
            "uploadThumbnail": false,
        }),
    )
    .await?;
    part.steps.put("vid", &up.video).await?;
    if up.upload_instructions.is_empty() || up.upload_instructions.len() > MAX_PARTS {
        return Err(NetworkError::unavailable(format!(
            "linkedin: {} upload instructions for one video",
            up.upload_instructions.len()
        )));
    }
    let mut etags = Vec::with_capacity(up.upload_instructions.len());
    for ins in &up.upload_instructions {
        if ins.first_byte > ins.last_byte || ins.last_byte >= size {
            return Err(NetworkError::unavailable(
                "linkedin: an upload instruction outside the file",
            ));
        }
        let chunk = a
            .bytes
            .slice(ins.first_byte as usize..=ins.last_byte as usize);
        let etag = put(api, token, &ins.upload_url, chunk)
            .await?
            .ok_or_else(|| {
                NetworkError::unavailable("linkedin: an uploaded part without an ETag")
            })?;
        etags.push(etag);
    }
    let mut url = api.url(API, "/rest/videos");
    url.query_pairs_mut()
        .append_pair("action", "finalizeUpload");
    let body = serde_json::json!({ "finalizeUploadRequest": {
        "video": up.video,
        "uploadToken": up.upload_token,
        "uploadedPartIds": etags,
    }});
    let resp = api
        .send(call::json(call::rest(api.http.post(url), token), &body))
        .await?;
    if !resp.status().is_success() {
        return Err(call::error_of(api, resp).await);
    }
    part.steps.put("vid.up", &up.video).await?;
    Ok(up.video)
}

/// Polls the video until LinkedIn has processed it, bounded by `poll_max` and [`MAX_POLLS`];
/// still processing then is `Unavailable` (the retry resumes from the kept URN).
async fn wait_available(api: &Api, token: &str, urn: &str) -> Result<(), NetworkError> {
    let started = Instant::now();
    for n in 0..MAX_POLLS {
        let url = api.url(API, &format!("/rest/videos/{}", call::urn_path(urn)));
        let s: VideoStatus = call::read(api, call::rest(api.http.get(url), token)).await?;
        match s.status.as_str() {
            "AVAILABLE" => return Ok(()),
            "PROCESSING_FAILED" => {
                return Err(NetworkError::MediaRejected {
                    message: format!("linkedin: video {urn} failed processing"),
                });
            }
            _ => {}
        }
        if started.elapsed() + api.config.poll_interval > api.config.poll_max || n + 1 == MAX_POLLS
        {
            break;
        }
        api.pause(api.config.poll_interval.max(Duration::from_millis(1)))
            .await;
    }
    Err(NetworkError::unavailable(format!(
        "linkedin: video {urn} is still processing; the retry resumes with it"
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::hosted::HostedConfig;

    fn api(base: Option<&str>) -> Api {
        let config = HostedConfig {
            base: base.map(|b| b.parse().unwrap()),
            ..HostedConfig::default()
        };
        Api::new("linkedin", config, Arc::new(crier_core::SystemClock))
    }

    #[test]
    fn the_token_goes_to_linkedins_hosts_or_the_base_only() {
        let ok = |api: &Api, u: &str| upload_host_ok(api, &u.parse().unwrap());
        let real = api(None);
        assert!(ok(&real, "https://www.linkedin.com/dms-uploads/x"));
        assert!(ok(&real, "https://linkedin.com/x"));
        assert!(!ok(&real, "http://www.linkedin.com/x"), "not https");
        assert!(!ok(&real, "https://linkedin.com.evil.example/x"));
        assert!(!ok(&real, "https://evillinkedin.com/x"));
        let local = api(Some("http://127.0.0.1:8080"));
        assert!(ok(&local, "http://127.0.0.1:8080/dms-uploads/x"));
        assert!(!ok(&local, "http://127.0.0.1:8081/dms-uploads/x"));
    }
}
