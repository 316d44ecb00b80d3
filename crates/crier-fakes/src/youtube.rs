//! A fake of the YouTube Data API v3 and Google's OAuth 2.0 server, from the references:
//!
//! - "Using OAuth 2.0 for Web Server Applications" (developers.google.com/identity/protocols/
//!   oauth2/web-server): `/o/oauth2/v2/auth` (a refresh token only with
//!   `access_type=offline`), `/token` (client id and secret in the body; access tokens of
//!   3,599 s; a refresh answers no new refresh token and the old one keeps working), `/revoke`.
//! - "channels.list" (`mine=true`, parts `snippet`, `statistics`, `contentDetails` with the
//!   uploads playlist; `statistics.subscriberCount` a string "rounded down to three
//!   significant figures", left out when `hiddenSubscriberCount` is true),
//!   "playlistItems.list" (the uploads playlist, newest first, at most 50),
//!   "videos.list" (`snippet`, `status`, `statistics`, counts as strings).
//! - "videos.insert" and "Resumable uploads" (developers.google.com/youtube/v3/guides/
//!   using_resumable_upload_protocol): `POST /upload/youtube/v3/videos?uploadType=resumable`
//!   with the video resource and `X-Upload-Content-Length`/`-Type` answers `200` and a
//!   `Location` (the session URI, `…&upload_id=…`); `PUT` to it with `Content-Range` sends
//!   bytes: a chunk that does not end the file keeps only whole 256 KiB units, and the answer
//!   is `308` with `Range: bytes=0-{n}` (no `Range` while nothing is held); the last byte
//!   answers `201` with the video resource; `Content-Range: bytes */{size}` asks the status
//!   (`308`, or `200` with the video once complete); sessions expire after a week (`404`).
//!   The metadata is checked as `videos.insert` documents: `invalidTitle` (1–100 characters,
//!   no `<` `>`), `invalidDescription` (5,000 bytes, no `<` `>`), `invalidTags` (500
//!   characters, a tag with a space counting its quotes), `invalidCategoryId`,
//!   `invalidVideoMetadata` (privacy), 256 GB at most, a video MIME type. Bytes that are no
//!   video container end `uploadStatus: failed` (`invalidFile`).
//! - "Quota calculator": every API call is charged (list 1; `videos.insert` per the
//!   [`Quota`] in force, the connector's default unless a test sets another) and the day resets
//!   at midnight Pacific Time; past it, `403` `quotaExceeded` (domain `youtube.quota`).
//! - "Errors": Google's `{"error": {"code", "message", "errors": [{"message", "domain",
//!   "reason"}], "status"}}`, `401` `authError` with `WWW-Authenticate`, `403`
//!   `insufficientPermissions` for a token without the scope.

// A handler's early refusal is a whole response (`Result<_, Response>`): its size does not
// matter in a test server.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crier_core::Clock;
use crier_networks::Network;
use crier_networks::youtube::{Quota, YouTube, next_reset_ms};
use serde_json::{Value, json};

use crate::kit::{self, Fault, Faults, OAuthServer};
use crate::{FakeNetwork, FakePost, Features};

const UPLOAD_PATH: &str = "/upload/youtube/v3/videos";
const SCOPE_UPLOAD: &str = "https://www.googleapis.com/auth/youtube.upload";
const SCOPE_READONLY: &str = "https://www.googleapis.com/auth/youtube.readonly";
/// Chunks that do not end the file are kept in whole units of this.
pub const CHUNK_UNIT: u64 = 256 * 1024;
/// A resumable session lives a week.
const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;
const MAX_VIDEO_BYTES: u64 = 256 * 1_000_000_000;
/// The category ids `videoCategories.list` answers for the US, assignable ones.
const CATEGORIES: &[&str] = &[
    "1", "2", "10", "15", "17", "19", "20", "22", "23", "24", "25", "26", "27", "28", "29",
];

/// A channel the fake holds, one per Google user.
#[derive(Debug, Clone)]
pub struct FakeChannel {
    pub id: String,
    pub title: String,
    pub handle: String,
}

/// A video the fake holds.
#[derive(Debug, Clone)]
pub struct FakeVideo {
    pub id: String,
    pub channel: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub category_id: String,
    pub privacy: String,
    pub made_for_kids: bool,
    pub content_type: String,
    pub size: u64,
    pub upload_status: String,
    pub published_at: String,
    pub likes: u64,
    pub views: u64,
    pub comments: u64,
}

#[derive(Debug, Clone)]
struct Upload {
    channel: String,
    resource: Value,
    total: u64,
    content_type: String,
    received: Vec<u8>,
    video: Option<String>,
    expires_at: i64,
}

struct Inner {
    channels: HashMap<String, FakeChannel>,
    offline_codes: HashSet<String>,
    /// The refresh token a client holds → the one the OAuth server rotated to (Google does
    /// not rotate: the client keeps using the first).
    refresh: HashMap<String, String>,
    uploads: HashMap<String, Upload>,
    videos: Vec<FakeVideo>,
    quota: Quota,
    reset_at: i64,
    units: u64,
    inserts: u64,
    /// Every channel's subscribers, and whether the count is hidden.
    subscribers: u64,
    hidden_subscribers: bool,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    oauth: OAuthServer,
    clock: Arc<dyn Clock>,
}

pub struct YouTubeFake {
    base: url::Url,
    shared: Shared,
    faults: Faults,
}

impl YouTubeFake {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let oauth = OAuthServer::new(clock.clone(), 3599, true, false);
        let mut channels = HashMap::new();
        channels.insert("user-1".to_owned(), channel_of("user-1"));
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                channels,
                offline_codes: HashSet::new(),
                refresh: HashMap::new(),
                uploads: HashMap::new(),
                videos: Vec::new(),
                quota: Quota::default(),
                reset_at: 0,
                units: 0,
                inserts: 0,
                subscribers: 0,
                hidden_subscribers: false,
            })),
            oauth,
            clock,
        };
        let faults = Faults::default();
        let router = Router::new()
            .route("/o/oauth2/v2/auth", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/youtube/v3/channels", get(list_channels))
            .route("/youtube/v3/videos", get(videos))
            .route("/youtube/v3/playlistItems", get(playlist_items))
            .route(UPLOAD_PATH, post(initiate).put(put_bytes))
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared.clone());
        let base = kit::serve(faults.wrap(router)).await;
        Self {
            base,
            shared,
            faults,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().expect("youtube fake")
    }

    /// The channel hides its subscriber count (`hiddenSubscriberCount`), or shows it again.
    pub fn hide_subscriber_count(&self, hidden: bool) {
        self.inner().hidden_subscribers = hidden;
    }

    pub fn oauth(&self) -> &OAuthServer {
        &self.shared.oauth
    }

    /// How uploads are charged from now on.
    pub fn set_quota(&self, quota: Quota) {
        self.inner().quota = quota;
    }

    /// Units and uploads charged today.
    pub fn quota_spent(&self) -> (u64, u64) {
        let mut i = self.inner();
        roll_day(&mut i, self.shared.clock.now_ms());
        (i.units, i.inserts)
    }

    /// `user` approves from now on, with a channel or (`None`) a Google account without one.
    pub fn set_user(&self, user: &str, has_channel: bool) {
        self.shared.oauth.set_user(user);
        let mut i = self.inner();
        if has_channel {
            i.channels
                .entry(user.to_owned())
                .or_insert_with(|| channel_of(user));
        } else {
            i.channels.remove(user);
        }
    }

    pub fn channel(&self, user: &str) -> Option<FakeChannel> {
        self.inner().channels.get(user).cloned()
    }

    /// Every video, oldest first.
    pub fn videos(&self) -> Vec<FakeVideo> {
        self.inner().videos.clone()
    }

    /// Resumable sessions started so far, and how many bytes each holds.
    pub fn sessions(&self) -> Vec<(u64, u64)> {
        self.inner()
            .uploads
            .values()
            .map(|u| (u.received.len() as u64, u.total))
            .collect()
    }

    /// Every resumable session is forgotten (as after its week).
    pub fn expire_sessions(&self) {
        self.inner().uploads.clear();
    }
}

fn channel_of(user: &str) -> FakeChannel {
    // Channel ids are `UC` and 22 base64url characters (16 random bytes).
    FakeChannel {
        id: format!("UC{}", kit::random(16)),
        title: format!("Channel of {user}"),
        handle: format!("@{}", user.replace('-', "")),
    }
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

fn google_error(status: u16, reason: &str, domain: &str, message: &str) -> Value {
    let kind = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    json!({"error": {"code": status, "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}],
        "status": kind}})
}

fn error(status: u16, reason: &str, domain: &str, message: &str) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(google_error(status, reason, domain, message)),
    )
        .into_response();
    if status == 401 {
        resp.headers_mut().insert(
            "www-authenticate",
            axum::http::HeaderValue::from_static(
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
            ),
        );
    }
    resp
}

fn bad(reason: &str, message: &str) -> Response {
    error(400, reason, "youtube.video", message)
}

fn quota_exceeded() -> Response {
    error(
        403,
        "quotaExceeded",
        "youtube.quota",
        "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.",
    )
}

fn oauth_error(e: kit::OAuthError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"error": e.error, "error_description": e.description})),
    )
        .into_response()
}

/// The user of a bearer token with `scope`, or Google's refusal.
fn authorized(s: &Shared, headers: &HeaderMap, scopes: &[&str]) -> Result<String, Response> {
    let Some(t) = s.oauth.bearer(headers) else {
        return Err(error(
            401,
            "authError",
            "global",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ));
    };
    let granted: Vec<&str> = t.scope.split(' ').collect();
    if !scopes.iter().any(|s| granted.contains(s)) {
        return Err(error(
            403,
            "insufficientPermissions",
            "global",
            "Request had insufficient authentication scopes.",
        ));
    }
    Ok(t.user)
}

fn roll_day(i: &mut Inner, now_ms: i64) {
    if now_ms >= i.reset_at {
        i.reset_at = next_reset_ms(now_ms);
        i.units = 0;
        i.inserts = 0;
    }
}

/// Charges a list call (1 unit); `quotaExceeded` past the day's units.
fn charge_list(s: &Shared) -> Result<(), Response> {
    let mut i = s.inner.lock().expect("youtube fake");
    roll_day(&mut i, s.clock.now_ms());
    if i.units + 1 > i.quota.daily_units {
        return Err(quota_exceeded());
    }
    i.units += 1;
    Ok(())
}

/// Charges an upload as the quota in force says.
fn charge_insert(i: &mut Inner, now_ms: i64) -> Result<(), Response> {
    roll_day(i, now_ms);
    let cost = i.quota.insert_units.max(1);
    let over_units = i.units + cost > i.quota.daily_units;
    let over_inserts = i.quota.daily_inserts.is_some_and(|max| i.inserts >= max);
    if over_units || over_inserts {
        return Err(quota_exceeded());
    }
    i.units += cost;
    i.inserts += 1;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    match s.oauth.authorize(&q, "client_id") {
        Ok(url) => {
            if q.get("access_type").map(String::as_str) == Some("offline")
                && let Some((_, code)) = url.query_pairs().find(|(k, _)| k == "code")
            {
                s.inner
                    .lock()
                    .expect("youtube fake")
                    .offline_codes
                    .insert(code.into_owned());
            }
            (StatusCode::FOUND, [("location", url.to_string())]).into_response()
        }
        Err(e) => oauth_error(e),
    }
}

async fn token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut form = kit::form(&body);
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let held = form.get("refresh_token").cloned().unwrap_or_default();
    if grant == "refresh_token" {
        let current = s
            .inner
            .lock()
            .expect("youtube fake")
            .refresh
            .get(&held)
            .cloned();
        if let Some(current) = current {
            form.insert("refresh_token".into(), current);
        }
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let issued = match s.oauth.token(&headers, &form, "client_id") {
        Ok(issued) => issued,
        Err(e) => return oauth_error(e),
    };
    let mut answer = json!({
        "access_token": issued.access_token,
        "expires_in": issued.expires_in,
        "scope": issued.scope,
        "token_type": "Bearer",
    });
    let mut i = s.inner.lock().expect("youtube fake");
    match (grant.as_str(), issued.refresh_token) {
        ("authorization_code", Some(r)) if i.offline_codes.remove(&code) => {
            i.refresh.insert(r.clone(), r.clone());
            answer["refresh_token"] = json!(r);
        }
        ("refresh_token", Some(r)) => {
            i.refresh.insert(held, r);
        }
        _ => {}
    }
    axum::Json(answer).into_response()
}

async fn revoke(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form = kit::form(&body);
    let Some(token) = form.get("token").or_else(|| q.get("token")).cloned() else {
        return oauth_error(kit::OAuthError {
            status: 400,
            error: "invalid_request",
            description: "token is required".into(),
        });
    };
    let current = s
        .inner
        .lock()
        .expect("youtube fake")
        .refresh
        .get(&token)
        .cloned();
    s.oauth.revoke(current.as_deref().unwrap_or(&token));
    axum::Json(json!({})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Data API
// ---------------------------------------------------------------------------------------------

fn parts(q: &HashMap<String, String>) -> Result<Vec<String>, Response> {
    let p = q.get("part").map(String::as_str).unwrap_or("");
    if p.is_empty() {
        return Err(error(400, "required", "global", "Required parameter: part"));
    }
    Ok(p.split(',').map(|x| x.trim().to_owned()).collect())
}

/// A subscriber count as channels.list answers it: rounded down to three significant figures.
pub fn rounded_subscribers(n: u64) -> u64 {
    let mut unit = 1;
    while n / unit >= 1000 {
        unit *= 10;
    }
    n / unit * unit
}

fn channel_json(i: &Inner, c: &FakeChannel, parts: &[String]) -> Value {
    let mut v = json!({"kind": "youtube#channel", "etag": kit::random(8), "id": c.id});
    let count = i.videos.iter().filter(|x| x.channel == c.id).count();
    if parts.iter().any(|p| p == "snippet") {
        v["snippet"] = json!({
            "title": c.title, "description": "", "customUrl": c.handle,
            "publishedAt": "2020-01-01T00:00:00Z",
            "thumbnails": {"default": {"url": format!("https://yt3.ggpht.example/{}=s88", c.id), "width": 88, "height": 88}},
        });
    }
    if parts.iter().any(|p| p == "statistics") {
        v["statistics"] = json!({"viewCount": "0",
            "hiddenSubscriberCount": i.hidden_subscribers, "videoCount": count.to_string()});
        if !i.hidden_subscribers {
            v["statistics"]["subscriberCount"] =
                json!(rounded_subscribers(i.subscribers).to_string());
        }
    }
    if parts.iter().any(|p| p == "contentDetails") {
        v["contentDetails"] =
            json!({"relatedPlaylists": {"likes": "", "uploads": uploads_playlist(&c.id)}});
    }
    v
}

fn uploads_playlist(channel: &str) -> String {
    format!("UU{}", channel.strip_prefix("UC").unwrap_or(channel))
}

fn list(kind: &str, items: Vec<Value>) -> Response {
    let n = items.len();
    axum::Json(json!({"kind": kind, "etag": kit::random(8),
        "pageInfo": {"totalResults": n, "resultsPerPage": n.max(5)}, "items": items}))
    .into_response()
}

async fn list_channels(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match authorized(&s, &headers, &[SCOPE_READONLY]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = charge_list(&s) {
        return r;
    }
    let parts = match parts(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let i = s.inner.lock().expect("youtube fake");
    let items: Vec<Value> = if q.get("mine").map(String::as_str) == Some("true") {
        i.channels
            .get(&user)
            .into_iter()
            .map(|c| channel_json(&i, c, &parts))
            .collect()
    } else if let Some(ids) = q.get("id") {
        let ids: Vec<&str> = ids.split(',').collect();
        i.channels
            .values()
            .filter(|c| ids.contains(&c.id.as_str()))
            .map(|c| channel_json(&i, c, &parts))
            .collect()
    } else {
        return error(
            400,
            "missingRequiredParameter",
            "youtube.parameter",
            "No filter selected. Expected one of: mine, id, forHandle",
        );
    };
    list("youtube#channelListResponse", items)
}

fn video_json(v: &FakeVideo, parts: &[String]) -> Value {
    let mut out = json!({"kind": "youtube#video", "etag": kit::random(8), "id": v.id});
    let all = parts.is_empty();
    if all || parts.iter().any(|p| p == "snippet") {
        out["snippet"] = json!({
            "publishedAt": v.published_at, "channelId": v.channel, "title": v.title,
            "description": v.description, "tags": v.tags, "categoryId": v.category_id,
            "liveBroadcastContent": "none",
            "thumbnails": {"default": {"url": format!("https://i.ytimg.example/vi/{}/default.jpg", v.id), "width": 120, "height": 90}},
        });
    }
    if all || parts.iter().any(|p| p == "status") {
        out["status"] = json!({
            "uploadStatus": v.upload_status,
            "privacyStatus": v.privacy, "license": "youtube", "embeddable": true,
            "publicStatsViewable": true, "madeForKids": v.made_for_kids,
            "selfDeclaredMadeForKids": v.made_for_kids,
        });
        if v.upload_status == "failed" {
            out["status"]["failureReason"] = json!("invalidFile");
        }
    }
    if all || parts.iter().any(|p| p == "statistics") {
        out["statistics"] = json!({"viewCount": v.views.to_string(),
            "likeCount": v.likes.to_string(), "favoriteCount": "0",
            "commentCount": v.comments.to_string()});
    }
    out
}

async fn videos(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match authorized(&s, &headers, &[SCOPE_READONLY]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = charge_list(&s) {
        return r;
    }
    let parts = match parts(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(ids) = q.get("id") else {
        return error(
            400,
            "missingRequiredParameter",
            "youtube.parameter",
            "No filter selected. Expected one of: id, chart, myRating",
        );
    };
    let ids: Vec<&str> = ids.split(',').collect();
    if ids.len() > 50 {
        return bad("maxResults", "At most 50 ids");
    }
    let i = s.inner.lock().expect("youtube fake");
    let mine = i
        .channels
        .get(&user)
        .map(|c| c.id.clone())
        .unwrap_or_default();
    let items = i
        .videos
        .iter()
        .filter(|v| ids.contains(&v.id.as_str()))
        .filter(|v| v.privacy != "private" || v.channel == mine)
        .map(|v| video_json(v, &parts))
        .collect();
    list("youtube#videoListResponse", items)
}

async fn playlist_items(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match authorized(&s, &headers, &[SCOPE_READONLY]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = charge_list(&s) {
        return r;
    }
    if let Err(r) = parts(&q) {
        return r;
    }
    let max: usize = match q.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 5,
        Some(Ok(n)) if n <= 50 => n,
        _ => return bad("invalidValue", "maxResults is 0 to 50"),
    };
    let playlist = q.get("playlistId").cloned().unwrap_or_default();
    let i = s.inner.lock().expect("youtube fake");
    let Some(owner) = i
        .channels
        .values()
        .find(|c| uploads_playlist(&c.id) == playlist)
    else {
        return error(
            404,
            "playlistNotFound",
            "youtube.playlistItem",
            "The playlist identified with the request's playlistId parameter cannot be found.",
        );
    };
    let mine = i.channels.get(&user).is_some_and(|c| c.id == owner.id);
    let items: Vec<Value> = i
        .videos
        .iter()
        .rev()
        .filter(|v| v.channel == owner.id && (mine || v.privacy != "private"))
        .take(max)
        .enumerate()
        .map(|(n, v)| {
            json!({"kind": "youtube#playlistItem", "etag": kit::random(8),
            "id": kit::random(12),
            "snippet": {"publishedAt": v.published_at, "channelId": v.channel,
                "title": v.title, "description": v.description, "playlistId": playlist,
                "position": n, "resourceId": {"kind": "youtube#video", "videoId": v.id}}})
        })
        .collect();
    list("youtube#playlistItemListResponse", items)
}

// ---------------------------------------------------------------------------------------------
// videos.insert, resumable
// ---------------------------------------------------------------------------------------------

/// The metadata problems `videos.insert` answers, first found.
fn check_resource(r: &Value) -> Result<(), Response> {
    let sn = &r["snippet"];
    let title = sn["title"].as_str().unwrap_or("");
    let n = title.chars().count();
    if n == 0 || n > 100 || title.contains(['<', '>']) {
        return Err(bad(
            "invalidTitle",
            "The request metadata specifies an invalid or empty video title.",
        ));
    }
    let description = sn["description"].as_str().unwrap_or("");
    if description.len() > 5000 || description.contains(['<', '>']) {
        return Err(bad(
            "invalidDescription",
            "The request metadata specifies an invalid video description.",
        ));
    }
    let mut total = 0;
    for t in sn["tags"].as_array().into_iter().flatten() {
        let t = t.as_str().unwrap_or("<");
        if t.contains(['<', '>']) {
            return Err(bad(
                "invalidTags",
                "The request metadata specifies invalid video keywords.",
            ));
        }
        total += t.chars().count() + if t.contains(' ') { 2 } else { 0 };
    }
    if total > 500 {
        return Err(bad(
            "invalidTags",
            "The request metadata specifies invalid video keywords.",
        ));
    }
    let category = sn["categoryId"].as_str().unwrap_or("");
    if !category.is_empty() && !CATEGORIES.contains(&category) {
        return Err(bad(
            "invalidCategoryId",
            "The snippet.categoryId property specifies an invalid category ID.",
        ));
    }
    let privacy = r["status"]["privacyStatus"].as_str().unwrap_or("public");
    if !["public", "unlisted", "private"].contains(&privacy) {
        return Err(bad(
            "invalidVideoMetadata",
            "The request metadata is invalid.",
        ));
    }
    Ok(())
}

async fn initiate(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let user = match authorized(&s, &headers, &[SCOPE_UPLOAD]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if q.get("uploadType").map(String::as_str) != Some("resumable") {
        return error(
            400,
            "invalidValue",
            "global",
            "This fake takes uploadType=resumable only",
        );
    }
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let Ok(total) = header("x-upload-content-length").parse::<u64>() else {
        return bad("badContent", "X-Upload-Content-Length is required");
    };
    let content_type = header("x-upload-content-type");
    if !(content_type.starts_with("video/") || content_type == "application/octet-stream") {
        return bad(
            "badContent",
            "The content type of the uploaded media is not supported.",
        );
    }
    if total == 0 || total > MAX_VIDEO_BYTES {
        return bad(
            "mediaBodyRequired",
            "The video is empty or larger than 256 GB.",
        );
    }
    let resource: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(400, "parseError", "global", "Parse Error"),
    };
    let now = s.clock.now_ms();
    let mut i = s.inner.lock().expect("youtube fake");
    if let Err(r) = charge_insert(&mut i, now) {
        return r;
    }
    if let Err(r) = check_resource(&resource) {
        return r;
    }
    let Some(channel) = i.channels.get(&user).map(|c| c.id.clone()) else {
        return error(
            401,
            "youtubeSignupRequired",
            "youtube.header",
            "The user has an unlinked Google Account: a YouTube channel is required to upload.",
        );
    };
    let id = kit::random(24);
    i.uploads.insert(
        id.clone(),
        Upload {
            channel,
            resource,
            total,
            content_type,
            received: Vec::new(),
            video: None,
            expires_at: kit::now_secs(s.clock.as_ref()) + SESSION_TTL_SECS,
        },
    );
    let host = header("host");
    let location = format!(
        "http://{host}{UPLOAD_PATH}?uploadType=resumable&part=snippet,status&upload_id={id}"
    );
    (StatusCode::OK, [("location", location)]).into_response()
}

/// `Content-Range`: `bytes a-b/T` → Some((a, b)), T; `bytes */T` → None, T.
fn content_range(headers: &HeaderMap) -> Option<(Option<(u64, u64)>, u64)> {
    let v = headers
        .get("content-range")?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes ")?;
    let (range, total) = v.split_once('/')?;
    let total = total.parse().ok()?;
    if range == "*" {
        return Some((None, total));
    }
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((Some((a, b)), total))
}

fn incomplete(received: u64) -> Response {
    let mut resp = Response::builder().status(308);
    if received > 0 {
        resp = resp.header("range", format!("bytes=0-{}", received - 1));
    }
    resp.body(axum::body::Body::empty()).expect("a response")
}

/// Whether the bytes open like a video container (ISO BMFF `ftyp`, EBML, AVI, MPEG, FLV).
fn looks_like_video(b: &[u8]) -> bool {
    (b.len() > 8 && &b[4..8] == b"ftyp")
        || b.starts_with(&[0x1a, 0x45, 0xdf, 0xa3])
        || (b.len() > 12 && b.starts_with(b"RIFF") && &b[8..12] == b"AVI ")
        || b.starts_with(&[0, 0, 1, 0xba])
        || b.starts_with(&[0, 0, 1, 0xb3])
        || b.starts_with(b"FLV")
}

async fn put_bytes(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let id = q.get("upload_id").cloned().unwrap_or_default();
    let now = s.clock.now_ms();
    let mut i = s.inner.lock().expect("youtube fake");
    let live = i
        .uploads
        .get(&id)
        .is_some_and(|u| u.expires_at > now.div_euclid(1000));
    if !live {
        i.uploads.remove(&id);
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let Some((range, total)) = content_range(&headers) else {
        return bad(
            "badContent",
            "Content-Range is required: bytes a-b/size or bytes */size",
        );
    };
    let up = i.uploads.get_mut(&id).expect("checked above");
    if total != up.total {
        return bad(
            "badContent",
            "Content-Range's size is not X-Upload-Content-Length",
        );
    }
    if let Some(done) = up.video.clone() {
        let v = i.videos.iter().find(|v| v.id == done).cloned();
        return match v {
            Some(v) => axum::Json(video_json(&v, &[])).into_response(),
            None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        };
    }
    let Some((a, b)) = range else {
        return incomplete(up.received.len() as u64);
    };
    let held = up.received.len() as u64;
    if body.len() as u64 != b - a + 1 || b >= total {
        return bad("badContent", "The body does not match Content-Range");
    }
    if a > held {
        return bad("badContent", "Content-Range starts past the bytes received");
    }
    // Bytes already held are not taken twice; a chunk that does not end the file keeps whole
    // 256 KiB units only.
    let end = if b + 1 == total {
        total
    } else {
        ((b + 1) / CHUNK_UNIT) * CHUNK_UNIT
    };
    if end > held {
        let from = (held - a) as usize;
        let to = (end - a) as usize;
        up.received.extend_from_slice(&body[from..to]);
    }
    if (up.received.len() as u64) < total {
        return incomplete(up.received.len() as u64);
    }
    let up = up.clone();
    let video = finish(&s, &mut i, &id, up);
    (StatusCode::CREATED, axum::Json(video_json(&video, &[]))).into_response()
}

/// The completed upload becomes a video on the channel.
fn finish(s: &Shared, i: &mut Inner, upload_id: &str, up: Upload) -> FakeVideo {
    let sn = &up.resource["snippet"];
    let st = &up.resource["status"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let video = FakeVideo {
        id: kit::random(8).chars().take(11).collect(),
        channel: up.channel.clone(),
        title: text(&sn["title"]),
        description: text(&sn["description"]),
        tags: sn["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        category_id: sn["categoryId"].as_str().unwrap_or("22").to_owned(),
        privacy: st["privacyStatus"].as_str().unwrap_or("public").to_owned(),
        made_for_kids: st["selfDeclaredMadeForKids"].as_bool().unwrap_or(false),
        content_type: up.content_type.clone(),
        size: up.total,
        upload_status: if looks_like_video(&up.received) {
            "uploaded"
        } else {
            "failed"
        }
        .into(),
        published_at: s.clock.now().to_string(),
        likes: 0,
        views: 0,
        comments: 0,
    };
    if let Some(u) = i.uploads.get_mut(upload_id) {
        u.video = Some(video.id.clone());
        u.received = Vec::new();
    }
    i.videos.push(video.clone());
    video
}

// ---------------------------------------------------------------------------------------------
// The conformance suite's view
// ---------------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl FakeNetwork for YouTubeFake {
    fn platform(&self) -> &'static str {
        crier_networks::youtube::PLATFORM
    }

    fn base(&self) -> url::Url {
        self.base.clone()
    }

    fn connector(&self, clock: Arc<dyn Clock>) -> Arc<dyn Network> {
        Arc::new(YouTube::new(crate::kit::test_config(self.base()), clock))
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
        self.videos()
            .into_iter()
            .map(|v| FakePost {
                id: v.id,
                author: v.channel,
                text: v.description,
                reply_to: None,
                media: vec![v.content_type],
            })
            .collect()
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn publish_call(&self) -> (&'static str, String) {
        ("POST", UPLOAD_PATH.into())
    }

    /// Google answers a per-user or per-minute throttle with `429` (`rateLimitExceeded`,
    /// domain `usageLimits`) and `Retry-After` seconds.
    fn rate_limited(&self, reset_secs: u64) -> Fault {
        Fault::status(
            "POST",
            UPLOAD_PATH,
            429,
            google_error(
                429,
                "rateLimitExceeded",
                "usageLimits",
                "Rate Limit Exceeded",
            ),
        )
        .header("Retry-After", reset_secs.to_string())
    }

    /// The quota refusal comes last: once Google says the day's quota is spent, the connector
    /// sends nothing more until the reset.
    fn documented_errors(&self) -> Vec<(Fault, &'static str)> {
        let f = |status: u16, reason: &str, domain: &str, message: &str| {
            Fault::status(
                "POST",
                UPLOAD_PATH,
                status,
                google_error(status, reason, domain, message),
            )
        };
        vec![
            (
                f(401, "authError", "global", "Invalid Credentials"),
                "account_disconnected",
            ),
            (
                f(
                    401,
                    "youtubeSignupRequired",
                    "youtube.header",
                    "Unlinked Google account",
                ),
                "account_disconnected",
            ),
            (
                f(
                    403,
                    "insufficientPermissions",
                    "global",
                    "Insufficient Permission",
                ),
                "account_disconnected",
            ),
            (
                f(403, "forbidden", "youtube.video", "Forbidden"),
                "network_rejected",
            ),
            (
                f(
                    400,
                    "invalidTitle",
                    "youtube.video",
                    "The request metadata specifies an invalid or empty video title.",
                ),
                "network_rejected",
            ),
            (
                f(
                    400,
                    "invalidCategoryId",
                    "youtube.video",
                    "The snippet.categoryId property specifies an invalid category ID.",
                ),
                "network_rejected",
            ),
            (
                f(503, "backendError", "global", "Backend Error").header("Retry-After", "30"),
                "network_unavailable",
            ),
            (
                f(
                    400,
                    "uploadLimitExceeded",
                    "youtube.video",
                    "The user has exceeded the number of videos they may upload.",
                ),
                "network_rate_limited",
            ),
            (
                f(
                    403,
                    "quotaExceeded",
                    "youtube.quota",
                    "The request cannot be completed because you have exceeded your quota.",
                ),
                "network_rate_limited",
            ),
        ]
    }

    fn revoke_access(&self) {
        let users: Vec<String> = self.inner().channels.keys().cloned().collect();
        for u in users {
            self.shared.oauth.revoke_user(&u);
        }
        self.shared.oauth.revoke_user("user-1");
    }

    fn set_followers(&self, n: u64) {
        self.inner().subscribers = n;
    }

    fn followers_read_as(&self, n: u64) -> Option<u64> {
        Some(rounded_subscribers(n))
    }

    fn like(&self, id: &str, n: u64) {
        if let Some(v) = self.inner().videos.iter_mut().find(|v| v.id == id) {
            v.likes += n;
        }
    }
}
