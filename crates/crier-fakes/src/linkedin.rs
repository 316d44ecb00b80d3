//! A stateful fake of LinkedIn's OAuth 2.0 server and versioned Community Management API, as
//! the LinkedIn connector uses them. Written from the reference (learn.microsoft.com/linkedin/…):
//! `shared/authentication/authorization-code-flow` and `…/programmatic-refresh-tokens`
//! (tokens of 60 days, refresh tokens of 365 days; this fake grants them, as LinkedIn does to
//! approved apps), `consumer/integrations/self-serve/sign-in-with-linkedin-v2` (`/v2/userinfo`),
//! `marketing/community-management/organizations/organization-access-control-by-role`
//! (`organizationAcls`), `…/organizations/organization-lookup-api`, `…/shares/posts-api`,
//! `…/shares/little-text-format`, `…/shares/images-api`, `…/shares/videos-api`,
//! `…/shares/documents-api`, `…/shares/multiimage-post-api`,
//! `…/shares/network-update-social-actions`, "Retrieve Organization Follower Count"
//! (`GET /rest/networkSizes/{organization urn}?edgeType=COMPANY_FOLLOWED_BY_MEMBER` →
//! `{"firstDegreeSize": n}`; another edge type or a member's URN is a 400, an unknown
//! organization a 404), `marketing/versioning`,
//! `shared/api-guide/concepts/error-handling` and `…/rate-limits`.
//!
//! What it enforces: bearer tokens and their expiry (401 `INVALID_ACCESS_TOKEN`); on every
//! `/rest` call a `LinkedIn-Version` the fake serves (202501 to 202612; missing: 426
//! `VERSION_MISSING`, another: 426 `NONEXISTENT_VERSION`); the author (and an asset's owner)
//! is the member or a page they administer (403 `ACCESS_DENIED`); the commentary at most 3000
//! characters once `little` escapes are read; `CONNECTIONS` visibility for members only;
//! assets are uploaded (and videos finalized with their parts' ETags in order, and processed)
//! before a post names them; 2 to 20 images in a `multiImage`; a post repeating the
//! author's commentary is refused ("Content is a duplicate of urn:li:share:…", 422). A test
//! may make LinkedIn slow to make posts ([`LinkedInFake::set_creation_lag`]: not listed, nor a
//! duplicate, until then) and fail create calls after doing their work
//! ([`LinkedInFake::fail_after_create`]).
//!
//! The users: the member `user-1` ("Ada Lovelace") administers the page 2414183 ("Crier Test
//! Co", `crier-test-co`); the page 5550001 is someone else's.
//!
//! Rate limits: LinkedIn answers a throttled call 429 with no reset header (quotas reset at
//! midnight UTC). [`LinkedInFake::rate_limited`] adds `Retry-After`, which the conformance
//! suite needs to check that a reset the network names is honoured; a fault without it
//! (`rate_limited_daily`) is LinkedIn's own answer, which the connector meets with a pause
//! until the next UTC midnight.

// The handlers' helpers answer the refusal itself (an axum `Response`) as their error.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use crier_core::Clock;
use crier_networks::Network;
use crier_networks::linkedin::{LinkedIn, little};
use serde_json::{Value, json};

use crate::kit::{self, Fault, Faults, OAuthServer, Token};
use crate::{FakeNetwork, FakePost, Features};

/// The member who approves.
pub const MEMBER: &str = "user-1";
/// The page the member administers, and one they do not.
pub const PAGE: u64 = 2_414_183;
pub const OTHER_PAGE: u64 = 5_550_001;
/// Access tokens live 60 days, refresh tokens 365.
pub const ACCESS_TTL: i64 = 5_184_000;
pub const REFRESH_TTL: i64 = 31_536_000;
/// The parts a video is uploaded in.
pub const VIDEO_PART: u64 = 4 * 1024 * 1024;
const MAX_VIDEO: u64 = 500 * 1024 * 1024;
const MAX_COMMENTARY: usize = 3000;
const MAX_ALT_TEXT: usize = 4086;

#[derive(Debug, Clone)]
struct Org {
    name: String,
    vanity: String,
    admins: Vec<String>,
    followers: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Image,
    Video,
    Document,
}

#[derive(Debug, Clone)]
struct Asset {
    kind: Kind,
    owner: String,
    /// `WAITING_UPLOAD`, `PROCESSING`, `AVAILABLE`, `PROCESSING_FAILED`.
    status: &'static str,
    content_type: String,
    /// Videos: the declared size, the upload token, each part's ETag and first bytes.
    size: u64,
    upload_token: String,
    parts: BTreeMap<usize, (String, Vec<u8>)>,
}

#[derive(Debug, Clone)]
struct Post {
    id: String,
    author: String,
    commentary: String,
    visibility: String,
    created_at: i64,
    /// When LinkedIn has finished making it (epoch ms): from then on it is listed and refuses
    /// a duplicate ([`LinkedInFake::set_creation_lag`]).
    shown_at: i64,
    content: Option<Value>,
    media: Vec<String>,
    likes: u64,
}

#[derive(Default)]
struct Inner {
    orgs: BTreeMap<u64, Org>,
    names: HashMap<String, String>,
    assets: HashMap<String, Asset>,
    posts: Vec<Post>,
    next: u64,
    /// How long (ms) a post takes to be made once its create call is accepted.
    lag: i64,
    /// The next create calls accepted and then answered 500.
    fail_created: u32,
}

struct Shared {
    clock: Arc<dyn Clock>,
    oauth: OAuthServer,
    inner: Mutex<Inner>,
}

type S = Arc<Shared>;

pub struct LinkedInFake {
    base: url::Url,
    shared: S,
    faults: Faults,
}

fn error(status: u16, code: Option<&str>, service: Option<i64>, message: &str) -> Response {
    let mut body = json!({ "status": status, "message": message });
    if let Some(c) = code {
        body["code"] = c.into();
    }
    if let Some(s) = service {
        body["serviceErrorCode"] = s.into();
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(body),
    )
        .into_response()
}

fn query(raw: Option<String>) -> HashMap<String, String> {
    kit::form(raw.unwrap_or_default().as_bytes())
}

fn person(user: &str) -> String {
    format!("urn:li:person:{user}")
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The token of a `/v2` call.
    fn bearer(&self, headers: &HeaderMap) -> Result<Token, Response> {
        self.oauth.bearer(headers).ok_or_else(|| {
            error(
                401,
                Some("INVALID_ACCESS_TOKEN"),
                Some(65600),
                "Invalid access token",
            )
        })
    }

    /// The token of a `/rest` call, which also needs a served `LinkedIn-Version`.
    fn rest(&self, headers: &HeaderMap) -> Result<Token, Response> {
        let token = self.bearer(headers)?;
        let version = headers
            .get("linkedin-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if version.is_empty() {
            return Err(error(
                426,
                Some("VERSION_MISSING"),
                None,
                "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
            ));
        }
        let served = version.len() == 6
            && version
                .parse::<u32>()
                .is_ok_and(|v| (202_501..=202_612).contains(&v) && v % 100 >= 1 && v % 100 <= 12);
        if !served {
            return Err(error(
                426,
                Some("NONEXISTENT_VERSION"),
                None,
                &format!("Requested version {version} is not active"),
            ));
        }
        Ok(token)
    }

    /// Whether `user` may act as `author` (themselves, or a page they administer).
    fn may_act_as(&self, user: &str, author: &str) -> bool {
        if author == person(user) {
            return true;
        }
        let i = self.inner.lock().expect("linkedin");
        author
            .strip_prefix("urn:li:organization:")
            .and_then(|id| id.parse::<u64>().ok())
            .and_then(|id| i.orgs.get(&id))
            .is_some_and(|o| o.admins.iter().any(|a| a == user))
    }
}

fn denied(what: &str) -> Response {
    error(
        403,
        Some("ACCESS_DENIED"),
        Some(100),
        &format!("Not enough permissions to access: {what}"),
    )
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

fn oauth_error(e: kit::OAuthError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({ "error": e.error, "error_description": e.description })),
    )
        .into_response()
}

async fn authorization(State(s): State<S>, RawQuery(q): RawQuery) -> Response {
    match s.oauth.authorize(&query(q), "client_id") {
        Ok(url) => (StatusCode::FOUND, [("location", url.to_string())]).into_response(),
        Err(e) => oauth_error(e),
    }
}

async fn access_token(State(s): State<S>, headers: HeaderMap, body: Bytes) -> Response {
    match s.oauth.token(&headers, &kit::form(&body), "client_id") {
        Ok(t) => {
            let mut out = json!({
                "access_token": t.access_token,
                "expires_in": t.expires_in,
                "scope": t.scope,
                "token_type": "Bearer",
            });
            if let Some(r) = t.refresh_token {
                out["refresh_token"] = r.into();
                out["refresh_token_expires_in"] = REFRESH_TTL.into();
            }
            axum::Json(out).into_response()
        }
        Err(e) => oauth_error(e),
    }
}

async fn revoke(State(s): State<S>, body: Bytes) -> Response {
    let f = kit::form(&body);
    let g = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if g("client_id") != "crier-client" || g("client_secret") != "crier-secret" {
        return oauth_error(kit::OAuthError {
            status: 401,
            error: "invalid_client",
            description: "Client authentication failed".into(),
        });
    }
    s.oauth.revoke(g("token"));
    StatusCode::OK.into_response()
}

async fn userinfo(State(s): State<S>, headers: HeaderMap) -> Response {
    let t = match s.bearer(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let name = s
        .inner
        .lock()
        .expect("linkedin")
        .names
        .get(&t.user)
        .cloned()
        .unwrap_or_else(|| t.user.clone());
    let (given, family) = name.split_once(' ').unwrap_or((name.as_str(), ""));
    axum::Json(json!({
        "sub": t.user,
        "name": name,
        "given_name": given,
        "family_name": family,
        "picture": format!("https://media.licdn.com/dms/image/{}/profile.jpg", t.user),
        "locale": { "country": "US", "language": "en" },
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Organizations
// ---------------------------------------------------------------------------------------------

async fn organization_acls(
    State(s): State<S>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let t = match s.rest(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !t
        .scope
        .split(' ')
        .any(|x| x == "rw_organization_admin" || x == "r_organization_admin")
    {
        return denied("organizationAcls.FINDER-roleAssignee");
    }
    let q = query(q);
    if q.get("q").map(String::as_str) != Some("roleAssignee") {
        return error(400, Some("ILLEGAL_ARGUMENT"), None, "Unsupported finder");
    }
    let role = q
        .get("role")
        .cloned()
        .unwrap_or_else(|| "ADMINISTRATOR".into());
    let state = q.get("state").cloned().unwrap_or_else(|| "APPROVED".into());
    let i = s.inner.lock().expect("linkedin");
    let elements: Vec<Value> = if role == "ADMINISTRATOR" && state == "APPROVED" {
        i.orgs
            .iter()
            .filter(|(_, o)| o.admins.contains(&t.user))
            .map(|(id, _)| {
                json!({
                    "roleAssignee": person(&t.user),
                    "state": "APPROVED",
                    "role": "ADMINISTRATOR",
                    "organization": format!("urn:li:organization:{id}"),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    axum::Json(json!({
        "paging": { "start": 0, "count": elements.len(), "total": elements.len(), "links": [] },
        "elements": elements,
    }))
    .into_response()
}

async fn organization(State(s): State<S>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = s.rest(&headers) {
        return r;
    }
    let i = s.inner.lock().expect("linkedin");
    let Some((id, o)) = id
        .parse::<u64>()
        .ok()
        .and_then(|n| i.orgs.get(&n).map(|o| (n, o)))
    else {
        return error(
            404,
            Some("NOT_FOUND"),
            None,
            &format!("Organization {id} not found"),
        );
    };
    axum::Json(json!({
        "id": id,
        "localizedName": o.name,
        "vanityName": o.vanity,
        "name": { "localized": { "en_US": o.name }, "preferredLocale": { "country": "US", "language": "en" } },
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Assets
// ---------------------------------------------------------------------------------------------

fn upload_base(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}/dms-uploads")
}

/// The owner of an `initializeUploadRequest`, checked.
fn init_owner(s: &Shared, t: &Token, body: &Bytes) -> Result<Value, Response> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| error(400, None, None, "ERROR :: / :: the body is not JSON"))?;
    let req = v.get("initializeUploadRequest").cloned().ok_or_else(|| {
        error(422, None, None, "ERROR :: /initializeUploadRequest :: field is required but not found and has no default value")
    })?;
    let owner = req.get("owner").and_then(Value::as_str).unwrap_or("");
    if owner.is_empty() {
        return Err(error(
            422,
            None,
            None,
            "ERROR :: /initializeUploadRequest/owner :: field is required but not found and has no default value",
        ));
    }
    if !s.may_act_as(&t.user, owner) {
        return Err(denied(&format!("assets owned by {owner}")));
    }
    Ok(req)
}

fn new_asset(kind: Kind, owner: &str, size: u64) -> Asset {
    Asset {
        kind,
        owner: owner.to_owned(),
        status: "WAITING_UPLOAD",
        content_type: String::new(),
        size,
        upload_token: String::new(),
        parts: BTreeMap::new(),
    }
}

async fn images(
    State(s): State<S>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    simple_upload(&s, &headers, q, &body, Kind::Image).await
}

async fn documents(
    State(s): State<S>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    simple_upload(&s, &headers, q, &body, Kind::Document).await
}

async fn simple_upload(
    s: &Shared,
    headers: &HeaderMap,
    q: Option<String>,
    body: &Bytes,
    kind: Kind,
) -> Response {
    let t = match s.rest(headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if query(q).get("action").map(String::as_str) != Some("initializeUpload") {
        return error(400, Some("ILLEGAL_ARGUMENT"), None, "Unsupported action");
    }
    let req = match init_owner(s, &t, body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let owner = req["owner"].as_str().unwrap_or_default();
    let id = format!("D4E10AQ{}", kit::random(9));
    let (urn, path, field) = match kind {
        Kind::Image => (format!("urn:li:image:{id}"), "image", "image"),
        _ => (format!("urn:li:document:{id}"), "document", "document"),
    };
    s.inner
        .lock()
        .expect("linkedin")
        .assets
        .insert(urn.clone(), new_asset(kind, owner, 0));
    let expires = s.now_ms() + 24 * 3600 * 1000;
    let mut value = json!({
        "uploadUrlExpiresAt": expires,
        "uploadUrl": format!("{}/{path}/{}", upload_base(headers), crate::linkedin::path_id(&urn)),
    });
    value[field] = urn.into();
    axum::Json(json!({ "value": value })).into_response()
}

/// An asset URN as it appears in an upload path.
pub(crate) fn path_id(urn: &str) -> String {
    url::form_urlencoded::byte_serialize(urn.as_bytes()).collect()
}

async fn videos(
    State(s): State<S>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let t = match s.rest(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match query(q).get("action").map(String::as_str) {
        Some("initializeUpload") => {
            let req = match init_owner(&s, &t, &body) {
                Ok(r) => r,
                Err(r) => return r,
            };
            let owner = req["owner"].as_str().unwrap_or_default();
            let size = req
                .get("fileSizeBytes")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if size == 0 || size > MAX_VIDEO {
                return error(
                    400,
                    None,
                    None,
                    &format!(
                        "ERROR :: /initializeUploadRequest/fileSizeBytes :: {size} is outside 1 to {MAX_VIDEO}"
                    ),
                );
            }
            let urn = format!("urn:li:video:D4E10AQ{}", kit::random(9));
            let mut asset = new_asset(Kind::Video, owner, size);
            asset.upload_token = kit::random(12);
            let n = size.div_ceil(VIDEO_PART);
            let base = upload_base(&headers);
            let instructions: Vec<Value> = (0..n)
                .map(|p| {
                    let first = p * VIDEO_PART;
                    let last = ((p + 1) * VIDEO_PART).min(size) - 1;
                    json!({
                        "uploadUrl": format!("{base}/video/{}/{p}", path_id(&urn)),
                        "firstByte": first,
                        "lastByte": last,
                    })
                })
                .collect();
            let token = asset.upload_token.clone();
            s.inner
                .lock()
                .expect("linkedin")
                .assets
                .insert(urn.clone(), asset);
            axum::Json(json!({ "value": {
                "uploadUrlsExpireAt": s.now_ms() + 24 * 3600 * 1000,
                "video": urn,
                "uploadInstructions": instructions,
                "uploadToken": token,
            }}))
            .into_response()
        }
        Some("finalizeUpload") => finalize(&s, &t, &body),
        _ => error(400, Some("ILLEGAL_ARGUMENT"), None, "Unsupported action"),
    }
}

fn finalize(s: &Shared, t: &Token, body: &Bytes) -> Response {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let req = &v["finalizeUploadRequest"];
    let urn = req["video"].as_str().unwrap_or_default();
    let mut i = s.inner.lock().expect("linkedin");
    let Some(a) = i.assets.get_mut(urn).filter(|a| a.kind == Kind::Video) else {
        return error(
            404,
            Some("NOT_FOUND"),
            None,
            &format!("Video {urn} not found"),
        );
    };
    if a.owner != person(&t.user) && !a.owner.starts_with("urn:li:organization:") {
        return denied("videos.ACTION-finalizeUpload");
    }
    if req["uploadToken"].as_str() != Some(a.upload_token.as_str()) {
        return error(
            400,
            None,
            None,
            "ERROR :: /finalizeUploadRequest/uploadToken :: does not match",
        );
    }
    let parts = a.size.div_ceil(VIDEO_PART) as usize;
    let sent: Vec<&str> = req["uploadedPartIds"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let expected: Vec<&str> = a.parts.values().map(|(etag, _)| etag.as_str()).collect();
    if a.parts.len() != parts || sent != expected {
        return error(
            400,
            None,
            None,
            "ERROR :: /finalizeUploadRequest/uploadedPartIds :: the parts uploaded and their ETags do not match",
        );
    }
    let head = a.parts.get(&0).map(|(_, h)| h.clone()).unwrap_or_default();
    let mp4 = head.len() >= 8 && &head[4..8] == b"ftyp";
    a.content_type = if mp4 {
        "video/mp4".into()
    } else {
        String::new()
    };
    a.status = "PROCESSING";
    StatusCode::OK.into_response()
}

async fn video_status(State(s): State<S>, headers: HeaderMap, Path(urn): Path<String>) -> Response {
    if let Err(r) = s.rest(&headers) {
        return r;
    }
    let mut i = s.inner.lock().expect("linkedin");
    let Some(a) = i.assets.get_mut(&urn).filter(|a| a.kind == Kind::Video) else {
        return error(
            404,
            Some("NOT_FOUND"),
            None,
            &format!("Video {urn} not found"),
        );
    };
    let shown = a.status;
    // Processing takes one look.
    if a.status == "PROCESSING" {
        a.status = if a.content_type.is_empty() {
            "PROCESSING_FAILED"
        } else {
            "AVAILABLE"
        };
    }
    axum::Json(json!({ "id": urn, "owner": a.owner, "status": shown, "duration": 12000 }))
        .into_response()
}

fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        None
    }
}

async fn upload(
    State(s): State<S>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = s.bearer(&headers) {
        return r;
    }
    let mut i = s.inner.lock().expect("linkedin");
    let Some(a) = i.assets.get_mut(&id) else {
        return error(404, Some("NOT_FOUND"), None, "Unknown upload");
    };
    match (kind.as_str(), a.kind) {
        ("image", Kind::Image) => match sniff(&body) {
            Some(ct) => {
                a.content_type = ct.into();
                a.status = "AVAILABLE";
            }
            None => a.status = "PROCESSING_FAILED",
        },
        ("document", Kind::Document) => {
            if body.starts_with(b"%PDF-") {
                a.content_type = "application/pdf".into();
                a.status = "AVAILABLE";
            } else {
                a.status = "PROCESSING_FAILED";
            }
        }
        _ => return error(400, None, None, "Wrong upload URL"),
    }
    StatusCode::CREATED.into_response()
}

async fn upload_part(
    State(s): State<S>,
    headers: HeaderMap,
    Path((id, n)): Path<(String, usize)>,
    body: Bytes,
) -> Response {
    if let Err(r) = s.bearer(&headers) {
        return r;
    }
    let mut i = s.inner.lock().expect("linkedin");
    let Some(a) = i.assets.get_mut(&id).filter(|a| a.kind == Kind::Video) else {
        return error(404, Some("NOT_FOUND"), None, "Unknown upload");
    };
    let first = n as u64 * VIDEO_PART;
    let expected = (first + VIDEO_PART).min(a.size).saturating_sub(first);
    if first >= a.size || body.len() as u64 != expected {
        return error(
            400,
            None,
            None,
            &format!("part {n} must be {expected} bytes"),
        );
    }
    let etag = format!("/ambry-video/signedId/{}", kit::random(9));
    a.parts
        .insert(n, (etag.clone(), body.iter().take(16).copied().collect()));
    (StatusCode::OK, [("etag", etag)]).into_response()
}

// ---------------------------------------------------------------------------------------------
// Posts
// ---------------------------------------------------------------------------------------------

/// The asset a post names, ready and the author's, or the refusal.
fn ready(i: &Inner, urn: &str, author: &str, field: &str) -> Result<Asset, Response> {
    let refuse = |why: &str| error(400, None, None, &format!("ERROR :: {field} :: {urn} {why}"));
    let a = i.assets.get(urn).ok_or_else(|| refuse("does not exist"))?;
    if a.owner != author {
        return Err(refuse("is not owned by the author"));
    }
    match a.status {
        "AVAILABLE" => Ok(a.clone()),
        "WAITING_UPLOAD" => Err(refuse("is not uploaded")),
        "PROCESSING" => Err(refuse("is still processing")),
        _ => Err(refuse("failed processing")),
    }
}

/// The content types of a post's `content`, checked.
fn content_media(i: &Inner, content: &Value, author: &str) -> Result<Vec<String>, Response> {
    if let Some(m) = content.get("media") {
        let urn = m["id"].as_str().unwrap_or_default();
        let a = ready(i, urn, author, "/content/media/id")?;
        if a.kind == Kind::Document && m["title"].as_str().is_none_or(str::is_empty) {
            return Err(error(
                422,
                None,
                None,
                "ERROR :: /content/media/title :: a document needs a title",
            ));
        }
        alt_ok(m, "/content/media/altText")?;
        return Ok(vec![a.content_type]);
    }
    if let Some(multi) = content.get("multiImage") {
        let images = multi["images"].as_array().cloned().unwrap_or_default();
        if !(2..=20).contains(&images.len()) {
            return Err(error(
                422,
                None,
                None,
                "ERROR :: /content/multiImage/images :: a multi-image post takes 2 to 20 images",
            ));
        }
        let mut out = Vec::new();
        for (n, img) in images.iter().enumerate() {
            let urn = img["id"].as_str().unwrap_or_default();
            let a = ready(
                i,
                urn,
                author,
                &format!("/content/multiImage/images/{n}/id"),
            )?;
            if a.kind != Kind::Image {
                return Err(error(
                    400,
                    None,
                    None,
                    &format!("ERROR :: /content/multiImage/images/{n}/id :: {urn} is not an image"),
                ));
            }
            alt_ok(img, &format!("/content/multiImage/images/{n}/altText"))?;
            out.push(a.content_type);
        }
        return Ok(out);
    }
    Err(error(
        422,
        None,
        None,
        "ERROR :: /content :: unsupported content",
    ))
}

fn alt_ok(v: &Value, field: &str) -> Result<(), Response> {
    let n = v["altText"].as_str().map_or(0, |a| a.chars().count());
    if n > MAX_ALT_TEXT {
        return Err(error(
            422,
            None,
            None,
            &format!("ERROR :: {field} :: length {n} exceeds {MAX_ALT_TEXT}"),
        ));
    }
    Ok(())
}

async fn create_post(State(s): State<S>, headers: HeaderMap, body: Bytes) -> Response {
    let t = match s.rest(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(400, None, None, "ERROR :: / :: the body is not JSON");
    };
    let author = v["author"].as_str().unwrap_or_default().to_owned();
    if !s.may_act_as(&t.user, &author) {
        return denied("partnerApiPostsExternal.CREATE.20251101");
    }
    let required = |f: &str| {
        error(
            422,
            None,
            None,
            &format!("ERROR :: /{f} :: field is required but not found and has no default value"),
        )
    };
    if v["lifecycleState"].as_str() != Some("PUBLISHED") {
        return required("lifecycleState");
    }
    if v["distribution"]["feedDistribution"].as_str().is_none() {
        return required("distribution/feedDistribution");
    }
    let visibility = v["visibility"].as_str().unwrap_or_default().to_owned();
    if !["PUBLIC", "CONNECTIONS", "LOGGED_IN"].contains(&visibility.as_str()) {
        return error(
            422,
            None,
            None,
            &format!("ERROR :: /visibility :: {visibility} is not a visibility"),
        );
    }
    if visibility == "CONNECTIONS" && author.starts_with("urn:li:organization:") {
        return error(
            422,
            None,
            None,
            "ERROR :: /visibility :: CONNECTIONS is for member authors",
        );
    }
    let commentary = v["commentary"].as_str().unwrap_or_default().to_owned();
    let shown = little::unescape(&commentary);
    let n = shown.chars().count();
    if n > MAX_COMMENTARY {
        return error(
            422,
            None,
            None,
            &format!("ERROR :: /commentary :: length {n} exceeds {MAX_COMMENTARY}"),
        );
    }
    let mut i = s.inner.lock().expect("linkedin");
    let content = v.get("content").filter(|c| !c.is_null()).cloned();
    let media = match &content {
        Some(c) => match content_media(&i, c, &author) {
            Ok(m) => m,
            Err(r) => return r,
        },
        None if shown.trim().is_empty() => return required("commentary"),
        None => Vec::new(),
    };
    let now = s.now_ms();
    if !commentary.is_empty()
        && let Some(dup) = i
            .posts
            .iter()
            .find(|p| p.author == author && p.commentary == commentary && p.shown_at <= now)
    {
        return error(
            422,
            None,
            None,
            &format!(
                "ERROR :: /commentary :: Content is a duplicate of {}",
                dup.id
            ),
        );
    }
    i.next += 1;
    let kind = if media.iter().any(|m| m.starts_with("video/")) {
        "ugcPost"
    } else {
        "share"
    };
    let id = format!("urn:li:{kind}:{}", 7_300_000_000_000_000_000u64 + i.next);
    let shown_at = now + i.lag;
    i.posts.push(Post {
        id: id.clone(),
        author,
        commentary,
        visibility,
        created_at: now,
        shown_at,
        content,
        media,
        likes: 0,
    });
    if i.fail_created > 0 {
        // The work is done; the answer says otherwise.
        i.fail_created -= 1;
        return error(500, None, None, "Internal Server Error");
    }
    (
        StatusCode::CREATED,
        [("x-restli-id", id.clone()), ("x-linkedin-id", id)],
    )
        .into_response()
}

async fn list_posts(State(s): State<S>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let t = match s.rest(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let q = query(q);
    if q.get("q").map(String::as_str) != Some("author") {
        return error(400, Some("ILLEGAL_ARGUMENT"), None, "Unsupported finder");
    }
    let author = q.get("author").cloned().unwrap_or_default();
    if !s.may_act_as(&t.user, &author) {
        return denied("partnerApiPostsExternal.FINDER-author.20251101");
    }
    let count = q
        .get("count")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let start = q
        .get("start")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let now = s.now_ms();
    let i = s.inner.lock().expect("linkedin");
    // A post LinkedIn is still making is not listed yet.
    let mut mine: Vec<&Post> = i
        .posts
        .iter()
        .filter(|p| p.author == author && p.shown_at <= now)
        .collect();
    mine.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    let total = mine.len();
    let elements: Vec<Value> = mine
        .into_iter()
        .skip(start)
        .take(count)
        .map(|p| {
            let mut e = json!({
                "id": p.id,
                "author": p.author,
                "commentary": p.commentary,
                "visibility": p.visibility,
                "lifecycleState": "PUBLISHED",
                "createdAt": p.created_at,
                "publishedAt": p.created_at,
                "lastModifiedAt": p.created_at,
                "distribution": { "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [] },
                "isReshareDisabledByAuthor": false,
            });
            if let Some(c) = &p.content {
                e["content"] = c.clone();
            }
            e
        })
        .collect();
    axum::Json(json!({
        "paging": { "start": start, "count": count, "total": total, "links": [] },
        "elements": elements,
    }))
    .into_response()
}

/// `GET /rest/networkSizes/{organization urn}?edgeType=COMPANY_FOLLOWED_BY_MEMBER`.
async fn network_size(
    State(s): State<S>,
    headers: HeaderMap,
    Path(urn): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = s.rest(&headers) {
        return r;
    }
    let q = query(q);
    let edge = q.get("edgeType").map(String::as_str).unwrap_or("");
    if edge != "COMPANY_FOLLOWED_BY_MEMBER" {
        return error(
            400,
            Some("ILLEGAL_ARGUMENT"),
            None,
            &format!("Invalid value for param edgeType: {edge}"),
        );
    }
    let Some(id) = urn
        .strip_prefix("urn:li:organization:")
        .and_then(|id| id.parse::<u64>().ok())
    else {
        return error(
            400,
            Some("ILLEGAL_ARGUMENT"),
            None,
            &format!("{urn} is not an organization URN"),
        );
    };
    let i = s.inner.lock().expect("linkedin");
    let Some(o) = i.orgs.get(&id) else {
        return error(404, Some("NOT_FOUND"), None, &format!("{urn} not found"));
    };
    axum::Json(json!({ "firstDegreeSize": o.followers })).into_response()
}

async fn social_actions(
    State(s): State<S>,
    headers: HeaderMap,
    Path(urn): Path<String>,
) -> Response {
    if let Err(r) = s.rest(&headers) {
        return r;
    }
    let i = s.inner.lock().expect("linkedin");
    let Some(p) = i.posts.iter().find(|p| p.id == urn) else {
        return error(404, Some("NOT_FOUND"), None, &format!("{urn} not found"));
    };
    axum::Json(json!({
        "$URN": format!("urn:li:socialActions:{urn}"),
        "target": urn,
        "likesSummary": { "totalLikes": p.likes, "aggregatedTotalLikes": p.likes, "likedByCurrentUser": false },
        "commentsSummary": { "totalFirstLevelComments": 0, "aggregatedTotalComments": 0 },
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------------

impl LinkedInFake {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let oauth = OAuthServer::new(clock.clone(), ACCESS_TTL, true, false);
        let mut inner = Inner::default();
        inner.names.insert(MEMBER.into(), "Ada Lovelace".into());
        inner.orgs.insert(
            PAGE,
            Org {
                name: "Crier Test Co".into(),
                vanity: "crier-test-co".into(),
                admins: vec![MEMBER.into()],
                followers: 0,
            },
        );
        inner.orgs.insert(
            OTHER_PAGE,
            Org {
                name: "Someone Else Inc".into(),
                vanity: "someone-else".into(),
                admins: Vec::new(),
                followers: 0,
            },
        );
        let shared = Arc::new(Shared {
            clock,
            oauth,
            inner: Mutex::new(inner),
        });
        let faults = Faults::default();
        let router = Router::new()
            .route("/oauth/v2/authorization", get(authorization))
            .route("/oauth/v2/accessToken", post(access_token))
            .route("/oauth/v2/revoke", post(revoke))
            .route("/v2/userinfo", get(userinfo))
            .route("/rest/organizationAcls", get(organization_acls))
            .route("/rest/organizations/{id}", get(organization))
            .route("/rest/images", post(images))
            .route("/rest/documents", post(documents))
            .route("/rest/videos", post(videos))
            .route("/rest/videos/{urn}", get(video_status))
            .route("/dms-uploads/{kind}/{id}", put(upload))
            .route("/dms-uploads/video/{id}/{n}", put(upload_part))
            .route("/rest/posts", post(create_post).get(list_posts))
            .route("/rest/socialActions/{urn}", get(social_actions))
            .route("/rest/networkSizes/{urn}", get(network_size))
            // A video part is 4 MiB; axum's default limit is 2 MB.
            .layer(axum::extract::DefaultBodyLimit::max(
                2 * VIDEO_PART as usize,
            ))
            .with_state(shared.clone());
        let base = kit::serve(faults.wrap(router)).await;
        Self {
            base,
            shared,
            faults,
        }
    }

    pub fn oauth(&self) -> &OAuthServer {
        &self.shared.oauth
    }

    /// Tokens for the member, issued directly.
    pub fn issue(&self) -> kit::Issued {
        self.shared
            .oauth
            .issue(MEMBER, &crier_networks::linkedin::SCOPES.join(" "))
    }

    /// The member no longer administers `page`.
    pub fn remove_admin(&self, page: u64) {
        if let Some(o) = self
            .shared
            .inner
            .lock()
            .expect("linkedin")
            .orgs
            .get_mut(&page)
        {
            o.admins.clear();
        }
    }

    /// LinkedIn's own throttle answer: 429 without a reset header.
    pub fn rate_limited_daily(&self) -> Fault {
        Fault::status(
            "POST",
            "/rest/posts",
            429,
            json!({
                "status": 429,
                "message": "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
            }),
        )
    }

    /// The commentary of a post as the fake holds it (`little`, as sent).
    pub fn commentary(&self, id: &str) -> Option<String> {
        let i = self.shared.inner.lock().expect("linkedin");
        i.posts
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.commentary.clone())
    }

    /// The `content` and `visibility` of a post.
    pub fn post_json(&self, id: &str) -> Option<(Option<Value>, String)> {
        let i = self.shared.inner.lock().expect("linkedin");
        i.posts
            .iter()
            .find(|p| p.id == id)
            .map(|p| (p.content.clone(), p.visibility.clone()))
    }

    /// LinkedIn takes `lag` to make a post once its create call is accepted: until then the
    /// post is not listed (`GET /rest/posts`) nor refuses a duplicate, though it will appear.
    /// LinkedIn documents no figure; this is the case a look-up soon after a call that timed
    /// out or was answered 5xx must not take for "not published".
    pub fn set_creation_lag(&self, lag: std::time::Duration) {
        self.shared.inner.lock().expect("linkedin").lag = lag.as_millis() as i64;
    }

    /// The next `n` create calls (`POST /rest/posts`) make their post, then answer 500: a
    /// failure that landed anyway.
    pub fn fail_after_create(&self, n: u32) {
        self.shared.inner.lock().expect("linkedin").fail_created = n;
    }

    /// How many assets were initialized.
    pub fn assets(&self) -> usize {
        self.shared.inner.lock().expect("linkedin").assets.len()
    }
}

#[async_trait::async_trait]
impl FakeNetwork for LinkedInFake {
    fn platform(&self) -> &'static str {
        crier_networks::linkedin::PLATFORM
    }

    fn base(&self) -> url::Url {
        self.base.clone()
    }

    fn connector(&self, clock: Arc<dyn Clock>) -> Arc<dyn Network> {
        Arc::new(LinkedIn::new(crate::kit::test_config(self.base()), clock))
    }

    fn features(&self) -> Features {
        Features {
            text: true,
            threads: false,
            images: true,
            video: true,
        }
    }

    fn posts(&self) -> Vec<FakePost> {
        let i = self.shared.inner.lock().expect("linkedin");
        i.posts
            .iter()
            .map(|p| FakePost {
                id: p.id.clone(),
                author: p.author.clone(),
                text: little::unescape(&p.commentary),
                reply_to: None,
                media: p.media.clone(),
            })
            .collect()
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn publish_call(&self) -> (&'static str, String) {
        ("POST", "/rest/posts".into())
    }

    fn rate_limited(&self, reset_secs: u64) -> Fault {
        self.rate_limited_daily()
            .header("Retry-After", reset_secs.to_string())
    }

    fn documented_errors(&self) -> Vec<(Fault, &'static str)> {
        let f = |status: u16, body: Value| Fault::status("POST", "/rest/posts", status, body);
        vec![
            (
                f(
                    401,
                    json!({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access token"}),
                ),
                "account_disconnected",
            ),
            (
                f(
                    401,
                    json!({"status": 401, "serviceErrorCode": 65601, "code": "REVOKED_ACCESS_TOKEN", "message": "The token used in the request has been revoked by the user"}),
                ),
                "account_disconnected",
            ),
            (
                f(
                    403,
                    json!({"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED", "message": "Not enough permissions to access: partnerApiPostsExternal.CREATE.20251101"}),
                ),
                "account_disconnected",
            ),
            (
                f(
                    422,
                    json!({"status": 422, "message": "ERROR :: /commentary :: length 3001 exceeds 3000"}),
                ),
                "network_rejected",
            ),
            (
                f(
                    422,
                    json!({"status": 422, "message": "ERROR :: /commentary :: Content is a duplicate of urn:li:share:7300000000000000001"}),
                ),
                "network_rejected",
            ),
            (
                f(
                    400,
                    json!({"status": 400, "message": "ERROR :: /content/media/id :: urn:li:image:C4E10AQx is not uploaded"}),
                ),
                "media_rejected",
            ),
            (
                f(
                    426,
                    json!({"status": 426, "code": "VERSION_MISSING", "message": "A version must be present. Please specify a version by adding the LinkedIn-Version header."}),
                ),
                "network_rejected",
            ),
            (
                f(
                    429,
                    json!({"status": 429, "message": "Resource level throttle APPLICATION DAY limit for calls to this resource is reached."}),
                ),
                "network_rate_limited",
            ),
            (
                f(
                    500,
                    json!({"status": 500, "message": "Internal Server Error"}),
                ),
                "network_unavailable",
            ),
            (
                f(
                    503,
                    json!({"status": 503, "message": "Service Unavailable"}),
                ),
                "network_unavailable",
            ),
        ]
    }

    fn revoke_access(&self) {
        self.shared.oauth.revoke_user(MEMBER);
    }

    /// Every page is followed by `n` (the member's own followers LinkedIn does not give
    /// crier: [`FakeNetwork::reports_followers`] is false).
    fn set_followers(&self, n: u64) {
        let mut i = self.shared.inner.lock().expect("linkedin");
        for o in i.orgs.values_mut() {
            o.followers = n;
        }
    }

    /// The suite connects the member, whose follower count the connector does not read.
    fn reports_followers(&self) -> bool {
        false
    }

    fn like(&self, id: &str, n: u64) {
        let mut i = self.shared.inner.lock().expect("linkedin");
        if let Some(p) = i.posts.iter_mut().find(|p| p.id == id) {
            p.likes = n;
        }
    }
}
