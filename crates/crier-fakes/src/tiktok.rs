//! A stateful fake of TikTok's Login Kit (OAuth 2.0 v2), Display API and Content Posting API
//! (direct post), written from the official references (read November 2026):
//!
//! - Login Kit for Web (developers.tiktok.com/doc/login-kit-web) and Manage User Access Tokens
//!   (…/doc/oauth-user-access-token-management): `client_key`, comma-separated scopes,
//!   no PKCE for web clients; access tokens for 24 h, refresh tokens for 365 d, rotated on
//!   refresh; token answers carry `open_id`, `scope`, `refresh_expires_in`; errors are
//!   `{"error", "error_description", "log_id"}`; revoke at `/v2/oauth/revoke/`.
//! - Get User Info (…/doc/tiktok-api-v2-get-user-info): fields by scope (`user.info.basic`:
//!   `open_id`, `union_id`, `avatar_url*`, `display_name`; `user.info.profile`: `username`,
//!   `profile_deep_link`, `bio_description`, `is_verified`; `user.info.stats`: counts).
//! - Query Creator Info, Direct Post, Media Transfer Guide, Get Post Status
//!   (…/doc/content-posting-api-reference-*): creator info per user; `video/init/` with its
//!   chunk rules (5–64 MB chunks, the final one up to 128 MB, `total_chunk_count` =
//!   `video_size / chunk_size` rounded down, 1–1000 chunks, a video under 5 MB in one chunk),
//!   the privacy level checked against the creator's options, the title at most 2200 UTF-16
//!   units, `PULL_FROM_URL` only from a verified URL prefix (the fake really GETs it);
//!   chunks PUT in order with `Content-Range` (206 until the last, 201 then); status
//!   `PROCESSING_UPLOAD`/`PROCESSING_DOWNLOAD` for a few polls, then `PUBLISH_COMPLETE`
//!   (`publicaly_available_post_id` only for public posts) or `FAILED` with a `fail_reason`.
//! - Rate limits (…/doc/tiktok-api-v2-rate-limit and the Direct Post page): `video/init/` is
//!   limited to 6 requests a minute per user token (a one-minute sliding window, on the
//!   test's clock), answered `429 rate_limit_exceeded` with no reset header; the daily cap of
//!   API posts per creator (`403 spam_risk_too_many_posts`; TikTok does not publish the
//!   number, 15 is what integrators report) and at most 5 pending shares
//!   (`403 spam_risk_too_many_pending_share`).
//! - Query Videos / List Videos (…/doc/tiktok-api-v2-video-query, …-video-list), `video.list`.
//! - Errors (…/doc/tiktok-api-v2-error-handling): `{"data": {}, "error": {"code", "message",
//!   "log_id"}}`, `code` `"ok"` on success.
//!
//! Not modelled: the 30-a-minute limit of `status/fetch/` (polls in tests are many and fast),
//! upload URL expiry (an hour), photo posts, the inbox (upload) flow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use crier_core::Clock;
use crier_networks::Network;
use serde_json::{Value, json};

use crate::kit::{self, Fault, Faults, OAuthServer};
use crate::{FakeNetwork, FakePost, Features};

/// The `open_id` of the user who approves.
pub const USER: &str = "-000dGlrdG9rLXVzZXItMQ";
/// Their username (`creator_username`).
pub const USERNAME: &str = "crier.test";

const MB: u64 = 1024 * 1024;
const INIT_PER_MINUTE: usize = 6;
const MAX_PENDING: usize = 5;
/// The largest video a pull fetches here (a fake's memory, not TikTok's 4 GB).
const MAX_PULL: usize = 256 * 1024 * 1024;

/// What creator info answers for one user.
#[derive(Debug, Clone)]
pub struct Creator {
    pub username: String,
    pub nickname: String,
    pub privacy_level_options: Vec<String>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
    pub max_video_post_duration_sec: u64,
}

impl Default for Creator {
    fn default() -> Self {
        Self {
            username: USERNAME.into(),
            nickname: "Crier Test".into(),
            privacy_level_options: vec![
                "PUBLIC_TO_EVERYONE".into(),
                "MUTUAL_FOLLOW_FRIENDS".into(),
                "FOLLOWER_OF_CREATOR".into(),
                "SELF_ONLY".into(),
            ],
            comment_disabled: false,
            duet_disabled: false,
            stitch_disabled: false,
            max_video_post_duration_sec: 600,
        }
    }
}

/// One `video/init/` as the fake holds it.
#[derive(Debug, Clone)]
pub struct Publish {
    pub id: String,
    pub user: String,
    pub title: String,
    pub privacy: String,
    pub disable_comment: bool,
    pub pull: bool,
    pub video_size: u64,
    pub chunk_size: u64,
    pub chunks: u64,
    pub received: u64,
    pub upload_token: String,
    pub content_type: String,
    /// The first bytes, to check the container.
    head: Vec<u8>,
    /// Every byte arrived (or was pulled): processing runs.
    pub complete: bool,
    pub status: &'static str,
    pub fail_reason: Option<String>,
    polls_left: u32,
    pub post_id: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone)]
struct Post {
    id: String,
    author: String,
    title: String,
    media: String,
    privacy: String,
    created: i64,
    likes: u64,
}

struct Inner {
    base: Option<url::Url>,
    creators: HashMap<String, Creator>,
    publishes: Vec<Publish>,
    posts: Vec<Post>,
    inits: HashMap<String, Vec<i64>>,
    verified: Vec<String>,
    processing_polls: u32,
    daily_cap: usize,
    granted: Option<String>,
    seq: u64,
    /// The user's `follower_count`.
    followers: u64,
}

#[derive(Clone)]
struct App {
    clock: Arc<dyn Clock>,
    oauth: OAuthServer,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
}

/// The fake TikTok.
pub struct TikTokFake {
    base: url::Url,
    app: App,
    faults: Faults,
}

fn log_id() -> String {
    format!("2026{}", kit::random(12))
}

/// A success in the v2 envelope.
fn ok(data: Value) -> Response {
    Json(json!({"data": data, "error": {"code": "ok", "message": "", "log_id": log_id()}}))
        .with(StatusCode::OK)
}

/// An error in the v2 envelope.
fn fail(status: u16, code: &str, message: &str) -> Response {
    Json(json!({"data": {}, "error": {"code": code, "message": message, "log_id": log_id()}}))
        .with(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The body of a v2 error, for faults.
pub fn error_body(code: &str, message: &str) -> Value {
    json!({"data": {}, "error": {"code": code, "message": message, "log_id": log_id()}})
}

struct Json(Value);

impl Json {
    fn with(self, status: StatusCode) -> Response {
        (
            status,
            [("content-type", "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// Whether `bytes` start like an MP4/QuickTime (`ftyp`) or WebM (EBML) file.
fn is_video(head: &[u8]) -> bool {
    head.get(4..8) == Some(b"ftyp") || head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3])
}

impl App {
    fn now(&self) -> i64 {
        kit::now_secs(self.clock.as_ref())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("tiktok fake")
    }

    /// The user of the bearer token, if it carries `scope`; else the refusal (a handler's
    /// answer, returned at once: its size does not matter here).
    #[allow(clippy::result_large_err)]
    fn user(&self, headers: &HeaderMap, scope: &str) -> Result<String, Response> {
        let Some(t) = self.oauth.bearer(headers) else {
            return Err(fail(
                401,
                "access_token_invalid",
                "The access token is invalid or not found in the request.",
            ));
        };
        if !t.scope.split(',').any(|s| s.trim() == scope) {
            return Err(fail(
                401,
                "scope_not_authorized",
                &format!(
                    "The user did not authorize the scope required for completing this request: {scope}"
                ),
            ));
        }
        Ok(t.user)
    }

    fn creator(&self, user: &str) -> Creator {
        self.lock().creators.get(user).cloned().unwrap_or_default()
    }

    /// Moves a publish on by one status poll: processing for a few polls, then published.
    fn advance(&self, i: &mut Inner, n: usize) {
        let now = self.now();
        let p = &mut i.publishes[n];
        if !p.complete || p.status == "FAILED" || p.status == "PUBLISH_COMPLETE" {
            return;
        }
        if p.polls_left > 0 {
            p.polls_left -= 1;
            return;
        }
        p.status = "PUBLISH_COMPLETE";
        i.seq += 1;
        let id = format!("7{:018}", 300_000_000_000_000_000u64 + i.seq);
        let p = &mut i.publishes[n];
        p.post_id = Some(id.clone());
        let post = Post {
            id,
            author: p.user.clone(),
            title: p.title.clone(),
            media: p.content_type.clone(),
            privacy: p.privacy.clone(),
            created: now,
            likes: 0,
        };
        i.posts.push(post);
    }
}

async fn authorize(
    State(app): State<App>,
    Query(mut q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(granted) = app.lock().granted.clone() {
        q.insert("scope".into(), granted);
    }
    match app.oauth.authorize(&q, "client_key") {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(e) => {
            Json(json!({"error": e.error, "error_description": e.description, "log_id": log_id()}))
                .with(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST))
        }
    }
}

async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let form = kit::form(&body);
    match app.oauth.token(&headers, &form, "client_key") {
        Ok(t) => Json(json!({
            "open_id": t.user,
            "scope": t.scope,
            "access_token": t.access_token,
            "expires_in": t.expires_in,
            "refresh_token": t.refresh_token,
            "refresh_expires_in": 31_536_000,
            "token_type": "Bearer",
        }))
        .with(StatusCode::OK),
        Err(e) => {
            Json(json!({"error": e.error, "error_description": e.description, "log_id": log_id()}))
                .with(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST))
        }
    }
}

async fn revoke(State(app): State<App>, body: Bytes) -> Response {
    let form = kit::form(&body);
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if f("client_key") != "crier-client" || f("client_secret") != "crier-secret" {
        return Json(json!({"error": "invalid_client", "error_description": "client authentication failed", "log_id": log_id()}))
            .with(StatusCode::UNAUTHORIZED);
    }
    app.oauth.revoke(f("token"));
    Json(json!({})).with(StatusCode::OK)
}

async fn user_info(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match app.user(&headers, "user.info.basic") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let scope = app
        .oauth
        .bearer(&headers)
        .map(|t| t.scope)
        .unwrap_or_default();
    let has = |s: &str| scope.split(',').any(|x| x.trim() == s);
    let c = app.creator(&user);
    let mut out = serde_json::Map::new();
    for field in q.get("fields").map(String::as_str).unwrap_or("").split(',') {
        let field = field.trim();
        let (needs, value) = match field {
            "open_id" => ("user.info.basic", json!(user)),
            "union_id" => ("user.info.basic", json!(format!("union-{user}"))),
            "avatar_url" | "avatar_url_100" | "avatar_large_url" => (
                "user.info.basic",
                json!(format!("https://p16.tiktokcdn.example/{}.jpeg", c.username)),
            ),
            "display_name" => ("user.info.basic", json!(c.nickname)),
            "username" => ("user.info.profile", json!(c.username)),
            "profile_deep_link" => (
                "user.info.profile",
                json!(format!("https://www.tiktok.com/@{}", c.username)),
            ),
            "bio_description" => ("user.info.profile", json!("")),
            "is_verified" => ("user.info.profile", json!(false)),
            "follower_count" => ("user.info.stats", json!(app.lock().followers)),
            "following_count" | "likes_count" => ("user.info.stats", json!(0)),
            "video_count" => {
                let i = app.lock();
                let n = i.posts.iter().filter(|p| p.author == user).count();
                ("user.info.stats", json!(n))
            }
            "" => continue,
            other => {
                return fail(400, "invalid_params", &format!("unknown field {other}"));
            }
        };
        if !has(needs) {
            return fail(
                401,
                "scope_permission_missed",
                &format!("field {field} needs the scope {needs}"),
            );
        }
        out.insert(field.to_owned(), value);
    }
    ok(json!({"user": out}))
}

async fn creator_info(State(app): State<App>, headers: HeaderMap) -> Response {
    let user = match app.user(&headers, "video.publish") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let c = app.creator(&user);
    ok(json!({
        "creator_avatar_url": format!("https://p16.tiktokcdn.example/{}.jpeg", c.username),
        "creator_username": c.username,
        "creator_nickname": c.nickname,
        "privacy_level_options": c.privacy_level_options,
        "comment_disabled": c.comment_disabled,
        "duet_disabled": c.duet_disabled,
        "stitch_disabled": c.stitch_disabled,
        "max_video_post_duration_sec": c.max_video_post_duration_sec,
    }))
}

/// The chunk rules of the Media Transfer Guide; why they are broken, if they are.
fn chunk_problem(size: u64, chunk: u64, count: u64) -> Option<String> {
    if size == 0 || size > 4 * 1024 * MB {
        return Some("video_size must be 1 byte to 4 GB".into());
    }
    if size < 5 * MB {
        return (chunk != size || count != 1).then(|| {
            "a video under 5 MB is uploaded whole: chunk_size = video_size, total_chunk_count = 1"
                .into()
        });
    }
    if !(5 * MB..=64 * MB).contains(&chunk) {
        return Some("chunk_size must be 5 MB to 64 MB".into());
    }
    if count != size / chunk {
        return Some("total_chunk_count must be video_size / chunk_size, rounded down".into());
    }
    if !(1..=1000).contains(&count) {
        return Some("total_chunk_count must be 1 to 1000".into());
    }
    let last = size - (count - 1) * chunk;
    (last > 128 * MB).then(|| "the final chunk may be at most 128 MB".into())
}

async fn init(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let user = match app.user(&headers, "video.publish") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = app.now();
    {
        let mut i = app.lock();
        let times = i.inits.entry(user.clone()).or_default();
        times.retain(|t| *t > now - 60);
        if times.len() >= INIT_PER_MINUTE {
            return fail(
                429,
                "rate_limit_exceeded",
                "The API rate limit was exceeded. Please try again later.",
            );
        }
        times.push(now);
        let today = i
            .publishes
            .iter()
            .filter(|p| p.user == user && p.created > now - 86_400)
            .count();
        if today >= i.daily_cap {
            return fail(
                403,
                "spam_risk_too_many_posts",
                "The daily post cap from the API is reached for the current user.",
            );
        }
        let pending = i
            .publishes
            .iter()
            .filter(|p| p.user == user && p.status.starts_with("PROCESSING"))
            .count();
        if pending >= MAX_PENDING {
            return fail(
                403,
                "spam_risk_too_many_pending_share",
                "The user has too many pending shares.",
            );
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return fail(400, "invalid_params", "the body is not JSON");
    };
    let info = &req["post_info"];
    let title = info["title"].as_str().unwrap_or("").to_owned();
    if title.encode_utf16().count() > 2200 {
        return fail(
            400,
            "invalid_params",
            "post_info.title is longer than 2200 UTF-16 runes",
        );
    }
    let privacy = info["privacy_level"].as_str().unwrap_or("").to_owned();
    let creator = app.creator(&user);
    if !creator.privacy_level_options.contains(&privacy) {
        return fail(
            403,
            "privacy_level_option_mismatch",
            "privacy_level is not one of the creator's privacy_level_options",
        );
    }
    for (flag, off) in [
        ("disable_comment", creator.comment_disabled),
        ("disable_duet", creator.duet_disabled),
        ("disable_stitch", creator.stitch_disabled),
    ] {
        if off && info[flag].as_bool() == Some(false) {
            return fail(
                400,
                "invalid_params",
                &format!("{flag} must be true: the creator has it off"),
            );
        }
    }
    let source = &req["source_info"];
    let mut p = Publish {
        id: String::new(),
        user: user.clone(),
        title,
        privacy,
        disable_comment: info["disable_comment"].as_bool().unwrap_or(false),
        pull: false,
        video_size: 0,
        chunk_size: 0,
        chunks: 0,
        received: 0,
        upload_token: kit::random(12),
        content_type: "video/mp4".into(),
        head: Vec::new(),
        complete: false,
        status: "PROCESSING_UPLOAD",
        fail_reason: None,
        polls_left: 0,
        post_id: None,
        created: now,
    };
    match source["source"].as_str() {
        Some("FILE_UPLOAD") => {
            let size = source["video_size"].as_u64().unwrap_or(0);
            let chunk = source["chunk_size"].as_u64().unwrap_or(0);
            let count = source["total_chunk_count"].as_u64().unwrap_or(0);
            if let Some(problem) = chunk_problem(size, chunk, count) {
                return fail(400, "invalid_params", &problem);
            }
            (p.video_size, p.chunk_size, p.chunks) = (size, chunk, count);
        }
        Some("PULL_FROM_URL") => {
            let url = source["video_url"].as_str().unwrap_or("").to_owned();
            let verified = app
                .lock()
                .verified
                .iter()
                .any(|v| url.starts_with(v.as_str()));
            if !verified {
                return fail(
                    403,
                    "url_ownership_unverified",
                    "The domain or URL prefix of video_url is not verified for this client.",
                );
            }
            p.pull = true;
            p.status = "PROCESSING_DOWNLOAD";
            pull(&app, &mut p, &url).await;
        }
        _ => {
            return fail(
                400,
                "invalid_params",
                "source_info.source must be FILE_UPLOAD or PULL_FROM_URL",
            );
        }
    }
    let mut i = app.lock();
    i.seq += 1;
    let kind = if p.pull { "url" } else { "file" };
    p.id = format!("v_pub_{kind}~v2-1.{}", 7_000_000_000_000_000_000u64 + i.seq);
    p.polls_left = if p.complete { i.processing_polls } else { 0 };
    let mut data = json!({"publish_id": p.id});
    if !p.pull
        && let Some(base) = &i.base
    {
        data["upload_url"] = json!(format!(
            "{base}upload/?upload_id={}&upload_token={}",
            i.seq, p.upload_token
        ));
    }
    p.upload_token = format!("{}:{}", i.seq, p.upload_token);
    i.publishes.push(p);
    ok(data)
}

/// Fetches a `PULL_FROM_URL` video for real; a failed or non-video fetch fails the publish.
async fn pull(app: &App, p: &mut Publish, url: &str) {
    let fetched = async {
        let resp = app.http.get(url).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("video/mp4")
            .to_owned();
        let bytes = crier_networks::oauth2::read_capped(resp, MAX_PULL)
            .await
            .ok()?;
        (!bytes.is_empty()).then_some((ct, bytes))
    }
    .await;
    match fetched {
        None => {
            p.status = "FAILED";
            p.fail_reason = Some("video_pull_failed".into());
        }
        Some((ct, bytes)) => {
            p.content_type = ct;
            p.video_size = bytes.len() as u64;
            p.received = p.video_size;
            if is_video(&bytes) {
                p.complete = true;
            } else {
                p.status = "FAILED";
                p.fail_reason = Some("file_format_check_failed".into());
            }
        }
    }
}

fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = headers.get("content-range")?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

async fn upload(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = format!(
        "{}:{}",
        q.get("upload_id").map(String::as_str).unwrap_or(""),
        q.get("upload_token").map(String::as_str).unwrap_or("")
    );
    let mut i = app.lock();
    let processing_polls = i.processing_polls;
    let Some(p) = i
        .publishes
        .iter_mut()
        .find(|p| !p.pull && p.upload_token == key)
    else {
        return fail(404, "invalid_params", "unknown upload_id or upload_token");
    };
    if p.complete {
        return fail(400, "invalid_file_upload", "the upload is already complete");
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(ct, "video/mp4" | "video/quicktime" | "video/webm") {
        return fail(
            400,
            "invalid_file_upload",
            "Content-Type must be video/mp4, video/quicktime or video/webm",
        );
    }
    let Some((start, end, total)) = content_range(&headers) else {
        return fail(
            400,
            "invalid_file_upload",
            "Content-Range must be bytes FIRST-LAST/TOTAL",
        );
    };
    let index = start / p.chunk_size.max(1);
    let expected_len = if index + 1 == p.chunks {
        p.video_size - start
    } else {
        p.chunk_size
    };
    // In order: the next chunk, or again one TikTok already has (a resumed upload).
    if total != p.video_size
        || start % p.chunk_size.max(1) != 0
        || start > p.received
        || index >= p.chunks
        || end + 1 - start != expected_len
        || body.len() as u64 != expected_len
    {
        return fail(
            416,
            "invalid_file_upload",
            &format!(
                "chunk {start}-{end}/{total} does not follow the chunks of this upload \
                 ({} bytes received, chunk_size {}, {} chunks)",
                p.received, p.chunk_size, p.chunks
            ),
        );
    }
    if start == 0 {
        p.head = body.iter().take(16).copied().collect();
        p.content_type = ct.to_owned();
    }
    p.received = end + 1;
    if p.received < p.video_size {
        return StatusCode::PARTIAL_CONTENT.into_response();
    }
    p.complete = true;
    if is_video(&p.head) {
        p.polls_left = processing_polls;
    } else {
        p.status = "FAILED";
        p.fail_reason = Some("file_format_check_failed".into());
    }
    StatusCode::CREATED.into_response()
}

async fn status(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let user = match app.user(&headers, "video.publish") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let req: Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = req["publish_id"].as_str().unwrap_or("");
    let mut i = app.lock();
    let Some(n) = i
        .publishes
        .iter()
        .position(|p| p.id == id && p.user == user)
    else {
        return fail(400, "invalid_params", "publish_id does not exist");
    };
    app.advance(&mut i, n);
    let p = &i.publishes[n];
    let public: Vec<Value> = match &p.post_id {
        Some(id) if p.privacy == "PUBLIC_TO_EVERYONE" => {
            vec![json!(id.parse::<u64>().unwrap_or(0))]
        }
        _ => Vec::new(),
    };
    let mut data = json!({
        "status": p.status,
        "publicaly_available_post_id": public,
        "uploaded_bytes": p.received,
    });
    if p.pull {
        data["downloaded_bytes"] = json!(p.received);
    }
    if let Some(reason) = &p.fail_reason {
        data["fail_reason"] = json!(reason);
    }
    ok(data)
}

fn video_json(p: &Post, fields: &str) -> Value {
    let mut out = serde_json::Map::new();
    for f in fields.split(',').map(str::trim) {
        let v = match f {
            "id" => json!(p.id),
            "title" | "video_description" => json!(p.title),
            "create_time" => json!(p.created),
            "like_count" => json!(p.likes),
            "comment_count" | "share_count" | "view_count" => json!(0),
            "share_url" => json!(format!("https://www.tiktok.com/@x/video/{}", p.id)),
            _ => continue,
        };
        out.insert(f.to_owned(), v);
    }
    Value::Object(out)
}

async fn video_query(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let user = match app.user(&headers, "video.list") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let fields = q.get("fields").cloned().unwrap_or_default();
    if fields.is_empty() {
        return fail(400, "invalid_params", "fields is required");
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(ids) = req["filters"]["video_ids"].as_array() else {
        return fail(400, "invalid_params", "filters.video_ids is required");
    };
    if ids.len() > 20 {
        return fail(400, "invalid_params", "at most 20 video_ids");
    }
    let i = app.lock();
    let videos: Vec<Value> = i
        .posts
        .iter()
        .filter(|p| p.author == user && ids.iter().any(|id| id.as_str() == Some(p.id.as_str())))
        .map(|p| video_json(p, &fields))
        .collect();
    ok(json!({"videos": videos, "cursor": 0, "has_more": false}))
}

async fn video_list(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let user = match app.user(&headers, "video.list") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let fields = q.get("fields").cloned().unwrap_or_default();
    let req: Value = serde_json::from_slice(&body).unwrap_or_default();
    let max = req["max_count"].as_u64().unwrap_or(10);
    if fields.is_empty() || !(1..=20).contains(&max) {
        return fail(
            400,
            "invalid_params",
            "fields is required; max_count is 1 to 20",
        );
    }
    let mut i = app.lock();
    // TikTok processes on its own; here time is counted in reads, so a listing moves every
    // processing publish of the user along too.
    for n in 0..i.publishes.len() {
        if i.publishes[n].user == user {
            app.advance(&mut i, n);
        }
    }
    let videos: Vec<Value> = i
        .posts
        .iter()
        .rev()
        .filter(|p| p.author == user && p.privacy == "PUBLIC_TO_EVERYONE")
        .take(max as usize)
        .map(|p| video_json(p, &fields))
        .collect();
    ok(json!({"videos": videos, "cursor": 0, "has_more": false}))
}

impl TikTokFake {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let oauth = OAuthServer::new(clock.clone(), 86_400, true, false);
        oauth.set_user(USER);
        let app = App {
            clock,
            oauth,
            inner: Arc::new(Mutex::new(Inner {
                base: None,
                creators: HashMap::new(),
                publishes: Vec::new(),
                posts: Vec::new(),
                inits: HashMap::new(),
                verified: Vec::new(),
                processing_polls: 1,
                daily_cap: 15,
                granted: None,
                seq: 0,
                followers: 0,
            })),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
        };
        let faults = Faults::default();
        let router = Router::new()
            .route("/v2/auth/authorize/", get(authorize))
            .route("/v2/oauth/token/", post(token))
            .route("/v2/oauth/revoke/", post(revoke))
            .route("/v2/user/info/", get(user_info))
            .route("/v2/post/publish/creator_info/query/", post(creator_info))
            .route("/v2/post/publish/video/init/", post(init))
            .route("/v2/post/publish/status/fetch/", post(status))
            .route("/v2/video/query/", post(video_query))
            .route("/v2/video/list/", post(video_list))
            .route("/upload/", put(upload))
            .layer(axum::extract::DefaultBodyLimit::max(200 * MB as usize))
            .with_state(app.clone());
        let base = kit::serve(faults.wrap(router)).await;
        app.lock().base = Some(base.clone());
        Self { base, app, faults }
    }

    pub fn oauth(&self) -> &OAuthServer {
        &self.app.oauth
    }

    /// Creator info for `user` from now on.
    pub fn set_creator(&self, user: &str, creator: Creator) {
        self.app.lock().creators.insert(user.to_owned(), creator);
    }

    /// `PULL_FROM_URL` accepts URLs starting with `prefix` (a verified domain or prefix).
    pub fn verify_url_prefix(&self, prefix: &str) {
        self.app.lock().verified.push(prefix.to_owned());
    }

    /// How many status polls a complete upload stays processing before it is published.
    pub fn set_processing_polls(&self, n: u32) {
        self.app.lock().processing_polls = n;
    }

    /// Every publish still processing finishes at its next status poll.
    pub fn finish_processing(&self) {
        for p in &mut self.app.lock().publishes {
            p.polls_left = 0;
        }
    }

    /// The most API posts a creator may make in a day.
    pub fn set_daily_cap(&self, n: usize) {
        self.app.lock().daily_cap = n;
    }

    /// The scopes the user grants at the consent screen (they may untick some).
    pub fn grant_only(&self, scopes: &str) {
        self.app.lock().granted = Some(scopes.to_owned());
    }

    /// Every `video/init/` so far, oldest first.
    pub fn publishes(&self) -> Vec<Publish> {
        self.app.lock().publishes.clone()
    }
}

#[async_trait::async_trait]
impl FakeNetwork for TikTokFake {
    fn platform(&self) -> &'static str {
        crier_networks::tiktok::PLATFORM
    }

    fn base(&self) -> url::Url {
        self.base.clone()
    }

    fn connector(&self, clock: Arc<dyn Clock>) -> Arc<dyn Network> {
        Arc::new(crier_networks::tiktok::TikTok::new(
            crate::kit::test_config(self.base()),
            clock,
        ))
    }

    fn features(&self) -> Features {
        Features {
            text: false,
            threads: false,
            images: false,
            video: true,
        }
    }

    fn posts(&self) -> Vec<FakePost> {
        let i = self.app.lock();
        i.posts
            .iter()
            .map(|p| {
                // A private post has no public id: the connector knows it by its publish id.
                let publish_id = i
                    .publishes
                    .iter()
                    .find(|x| x.post_id.as_deref() == Some(p.id.as_str()))
                    .map(|x| x.id.clone());
                FakePost {
                    id: match publish_id {
                        Some(pid) if p.privacy != "PUBLIC_TO_EVERYONE" => pid,
                        _ => p.id.clone(),
                    },
                    author: p.author.clone(),
                    text: p.title.clone(),
                    reply_to: None,
                    media: vec![p.media.clone()],
                }
            })
            .collect()
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn publish_call(&self) -> (&'static str, String) {
        ("POST", "/v2/post/publish/video/init/".into())
    }

    /// TikTok's 429: the v2 error envelope, no reset header (its window is a sliding minute),
    /// so `reset_secs` cannot be said.
    fn sends_reset(&self) -> bool {
        false
    }

    fn rate_limited(&self, _reset_secs: u64) -> Fault {
        Fault::status(
            "POST",
            "/v2/post/publish/video/init/",
            429,
            error_body(
                "rate_limit_exceeded",
                "The API rate limit was exceeded. Please try again later.",
            ),
        )
    }

    fn documented_errors(&self) -> Vec<(Fault, &'static str)> {
        let init = "/v2/post/publish/video/init/";
        let e = |status: u16, code: &str, message: &str| {
            Fault::status("POST", init, status, error_body(code, message))
        };
        vec![
            (
                e(
                    401,
                    "access_token_invalid",
                    "The access token is invalid or not found in the request.",
                ),
                "account_disconnected",
            ),
            (
                e(
                    401,
                    "scope_not_authorized",
                    "The user did not authorize the scope required for completing this request.",
                ),
                "account_disconnected",
            ),
            (
                e(
                    400,
                    "invalid_params",
                    "One or more fields in request is invalid.",
                ),
                "network_rejected",
            ),
            (
                e(
                    403,
                    "privacy_level_option_mismatch",
                    "privacy_level is not one of the creator's options.",
                ),
                "network_rejected",
            ),
            (
                e(
                    403,
                    "spam_risk_user_banned_from_posting",
                    "The user is banned from making new posts.",
                ),
                "network_rejected",
            ),
            (
                e(
                    403,
                    "unaudited_client_can_only_post_to_private_accounts",
                    "Unaudited clients can only post to a private account.",
                ),
                "network_rejected",
            ),
            (
                e(
                    403,
                    "url_ownership_unverified",
                    "The domain or URL prefix of video_url is not verified.",
                ),
                "media_rejected",
            ),
            (
                e(
                    403,
                    "spam_risk_too_many_posts",
                    "The daily post cap from the API is reached for the current user.",
                ),
                "network_rate_limited",
            ),
            (
                e(
                    403,
                    "spam_risk_too_many_pending_share",
                    "The user has too many pending shares.",
                ),
                "network_rate_limited",
            ),
            (
                e(
                    429,
                    "rate_limit_exceeded",
                    "The API rate limit was exceeded. Please try again later.",
                ),
                "network_rate_limited",
            ),
            (
                e(
                    500,
                    "internal_error",
                    "Something went wrong. Please try again later.",
                ),
                "network_unavailable",
            ),
            (
                Fault::status("POST", init, 503, json!(null)),
                "network_unavailable",
            ),
        ]
    }

    fn revoke_access(&self) {
        self.app.oauth.revoke_user(USER);
    }

    fn set_followers(&self, n: u64) {
        self.app.lock().followers = n;
    }

    fn like(&self, id: &str, n: u64) {
        let mut i = self.app.lock();
        let post_id = i
            .publishes
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.post_id.clone())
            .unwrap_or_else(|| id.to_owned());
        if let Some(p) = i.posts.iter_mut().find(|p| p.id == post_id) {
            p.likes += n;
        }
    }
}
