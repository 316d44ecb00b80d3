//! A fake of the Instagram API with Instagram Login, as crier's connector uses it.
//!
//! Written from developers.facebook.com/docs/instagram-platform: "Business Login for
//! Instagram" (`/oauth/authorize`, `POST /oauth/access_token` answering `access_token`,
//! `user_id`, `permissions`; codes single-use, ten minutes; short-lived tokens one hour),
//! "Access Token" (`GET /access_token?grant_type=ig_exchange_token&client_secret&access_token`:
//! a long-lived token, 60 days, `{access_token, token_type, expires_in}`), "Refresh Access
//! Token" (`GET /refresh_access_token?grant_type=ig_refresh_token`), "IG User" (`GET /me`;
//! `fields` as asked, with `followers_count`, `follows_count`, `media_count`),
//! "IG User Media" (`POST /{ig-user-id}/media`: `image_url` + `caption` + `alt_text`,
//! `media_type=REELS` + `video_url` + `share_to_feed`, `is_carousel_item`, and
//! `media_type=CAROUSEL` with `children` (2–10); `GET` lists the account's media, newest first), "IG Container"
//! (`status_code`: `IN_PROGRESS`, `FINISHED`, `ERROR`, `EXPIRED` after 24 hours unpublished,
//! `PUBLISHED`), "IG User Media Publish" (`creation_id`; a container publishes once),
//! "IG User Content Publishing Limit" (`{data:[{quota_usage, config:{quota_total: 100,
//! quota_duration: 86400}}]}`), "IG Media" (`like_count`, `comments_count`, `permalink`,
//! `timestamp` as `2026-12-02T09:30:00+0000`), "IG Media Comments" (`POST` with `message`), and
//! "Error Codes" (the Graph error object; 190 for a bad token; 9004/2207052 when the media
//! cannot be fetched or is not a photo or video Instagram takes, "Only photo or video can be
//! accepted as media type."; 36000/2207004 an image over 8 MiB; 352/2207026 an unsupported
//! video format; 9007/2207027 a container not ready to publish; 9/2207042 the publishing
//! limit; 4 with `X-Business-Use-Case-Usage` an app throttle).
//!
//! The fake really fetches `image_url` and `video_url` (reqwest, 10 s, no redirects) and sniffs
//! the bytes: JPEG is the only image format it publishes ("JPEG is the only image format
//! supported"); MP4/MOV videos. A new container answers `IN_PROGRESS` to its first
//! [`InstagramFake::set_processing_polls`] status reads (default 1), and `media_publish`
//! refuses it until then, as Instagram does while it processes. The graph calls take the token
//! as `Authorization: Bearer` or `access_token`. Not enforced: the 24-hour minimum age before a
//! long-lived token may be refreshed (the app refreshes near expiry), and aspect ratios.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use crier_core::Clock;
use crier_networks::Network;
use crier_networks::instagram::{Instagram, VERSION};
use serde_json::{Value, json};

use crate::kit::{self, Fault, Faults, OAuthServer};
use crate::{FakeNetwork, FakePost, Features};

/// The professional account that approves (Instagram ids are digits).
pub const USER: &str = "17841400000000001";
pub const USERNAME: &str = "crier.studio";
const SHORT_TTL: i64 = 3600;
const LONG_TTL: i64 = 60 * 24 * 3600;
const CONTAINER_TTL: i64 = 24 * 3600;
const MAX_CAPTION: usize = 2200;
const MAX_HASHTAGS: usize = 30;
const MAX_IMAGE: usize = 8 * 1024 * 1024;
const MAX_VIDEO: usize = 300 * 1000 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    InProgress,
    Finished,
    Error,
    Published,
}

#[derive(Debug, Clone)]
struct Container {
    owner: String,
    /// `IMAGE`, `VIDEO`, `REELS` or `CAROUSEL`.
    media_type: String,
    /// The fetched media's types (a carousel: its children's).
    content_types: Vec<String>,
    caption: String,
    alt_text: Option<String>,
    child: bool,
    created_at: i64,
    polls_left: u32,
    status: Status,
}

impl Container {
    /// Its status now: processing ends once its `IN_PROGRESS` reads are used.
    fn settled(&self) -> Status {
        match self.status {
            Status::InProgress if self.polls_left == 0 => Status::Finished,
            other => other,
        }
    }
}

#[derive(Debug, Clone)]
struct Media {
    id: String,
    owner: String,
    caption: String,
    media_type: String,
    content_types: Vec<String>,
    alt_text: Option<String>,
    /// Epoch seconds.
    at: i64,
    shortcode: String,
    likes: u64,
    comments: Vec<(String, String)>,
}

#[derive(Default)]
struct State_ {
    containers: HashMap<String, Container>,
    /// Oldest first.
    media: Vec<Media>,
    next_id: u64,
    processing_polls: u32,
    quota_total: i64,
    /// The account's `followers_count`.
    followers: u64,
    /// Container ids in the order they were made.
    made: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    clock: Arc<dyn Clock>,
    short: OAuthServer,
    long: OAuthServer,
    state: Arc<Mutex<State_>>,
    http: reqwest::Client,
}

/// The fake Instagram.
pub struct InstagramFake {
    base: url::Url,
    faults: Faults,
    shared: Shared,
}

impl InstagramFake {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let short = OAuthServer::new(clock.clone(), SHORT_TTL, false, false);
        let long = OAuthServer::new(clock.clone(), LONG_TTL, false, false);
        short.set_user(USER);
        long.set_user(USER);
        let shared = Shared {
            clock,
            short,
            long,
            state: Arc::new(Mutex::new(State_ {
                next_id: 17_900_000_000_000_001,
                processing_polls: 1,
                quota_total: 100,
                ..State_::default()
            })),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
        };
        let faults = Faults::default();
        let v = |p: &str| format!("/{VERSION}{p}");
        let router = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/access_token", post(code_token))
            .route("/access_token", get(exchange))
            .route("/refresh_access_token", get(refresh))
            .route(&v("/me"), get(me))
            .route(&v("/{id}"), get(node))
            .route(&v("/{id}/media"), get(list_media).post(create_container))
            .route(&v("/{id}/media_publish"), post(media_publish))
            .route(&v("/{id}/content_publishing_limit"), get(publishing_limit))
            .route(&v("/{id}/comments"), post(comment))
            .with_state(shared.clone());
        let base = kit::serve(faults.wrap(router)).await;
        Self {
            base,
            faults,
            shared,
        }
    }

    /// How many status reads a new container answers `IN_PROGRESS` to.
    pub fn set_processing_polls(&self, n: u32) {
        self.lock().processing_polls = n;
    }

    /// The posts an account may publish in 24 hours (100 by the reference).
    pub fn set_quota(&self, n: i64) {
        self.lock().quota_total = n;
    }

    /// How many containers were made (children included).
    pub fn containers_made(&self) -> usize {
        self.lock().made.len()
    }

    /// A container expires: as if 24 hours passed without it being published.
    pub fn expire_container(&self, id: &str) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.created_at -= CONTAINER_TTL + 1;
        }
    }

    /// A container is done processing: its next status read says `FINISHED`.
    pub fn finish_processing(&self, id: &str) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.polls_left = 0;
        }
    }

    /// A container fails processing (`ERROR`).
    pub fn fail_container(&self, id: &str) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.status = Status::Error;
        }
    }

    /// The comments on a media object.
    pub fn comments(&self, media: &str) -> Vec<String> {
        self.lock()
            .media
            .iter()
            .find(|m| m.id == media)
            .map(|m| m.comments.iter().map(|(_, t)| t.clone()).collect())
            .unwrap_or_default()
    }

    /// The alt text a single image was published with.
    pub fn alt_text(&self, media: &str) -> Option<String> {
        self.lock()
            .media
            .iter()
            .find(|m| m.id == media)
            .and_then(|m| m.alt_text.clone())
    }

    /// A media object's type (`IMAGE`, `REELS`, `CAROUSEL_ALBUM`).
    pub fn media_type(&self, media: &str) -> Option<String> {
        self.lock()
            .media
            .iter()
            .find(|m| m.id == media)
            .map(|m| m.media_type.clone())
    }

    /// Tokens issued straight to the account (a test that starts connected): long-lived.
    pub fn issue_long_lived(&self) -> String {
        self.shared
            .long
            .issue(USER, "instagram_business_basic")
            .access_token
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.shared.state.lock().expect("instagram state")
    }
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// The Graph error object.
fn graph_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut e = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "is_transient": false,
        "fbtrace_id": kit::random(9),
    });
    if let Some(s) = subcode {
        e["error_subcode"] = json!(s);
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({ "error": e })),
    )
        .into_response()
}

fn bad_token() -> Response {
    graph_error(
        400,
        190,
        None,
        "Invalid OAuth access token - Cannot parse access token",
    )
}

fn unsupported(id: &str) -> Response {
    graph_error(
        400,
        100,
        Some(33),
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded \
             due to missing permissions, or does not support this operation."
        ),
    )
}

/// The media could not be fetched, or is not something Instagram takes.
fn media_refused(detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {
            "message": "Only photo or video can be accepted as media type.",
            "type": "OAuthException",
            "code": 9004,
            "error_subcode": 2_207_052,
            "is_transient": false,
            "error_user_title": "Media download has failed.",
            "error_user_msg": format!("The media could not be fetched from this URI: {detail}"),
            "fbtrace_id": kit::random(9),
        }})),
    )
        .into_response()
}

fn oauth_error(e: &kit::OAuthError) -> Response {
    // Instagram's token endpoint answers its own shape, not RFC 6749's.
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({
            "error_type": "OAuthException",
            "code": e.status,
            "error_message": e.description,
        })),
    )
        .into_response()
}

/// Query and form parameters together (Graph takes either).
fn params(query: HashMap<String, String>, body: &[u8]) -> HashMap<String, String> {
    let mut p = kit::form(body);
    for (k, v) in query {
        p.entry(k).or_insert(v);
    }
    p
}

/// The user a graph call acts for: the bearer header or `access_token`.
fn caller(s: &Shared, headers: &HeaderMap, p: &HashMap<String, String>) -> Option<String> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::to_owned)
        .or_else(|| p.get("access_token").cloned())?;
    s.long
        .token_info(&token)
        .or_else(|| s.short.token_info(&token))
        .map(|t| t.user)
}

fn iso(secs: i64) -> String {
    crier_core::clock::from_ms(secs.saturating_mul(1000))
        .strftime("%Y-%m-%dT%H:%M:%S%z")
        .to_string()
}

fn hashtags(text: &str) -> usize {
    crier_networks::instagram::hashtags(text)
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let scopes = q.get("scope").map(String::as_str).unwrap_or("");
    if !scopes.split(',').any(|x| x == "instagram_business_basic") {
        return oauth_error(&kit::OAuthError {
            status: 400,
            error: "invalid_scope",
            description: "instagram_business_basic is required".into(),
        });
    }
    match s.short.authorize(&q, "client_id") {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(e) => oauth_error(&e),
    }
}

async fn code_token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = kit::form(&body);
    match s.short.token(&headers, &form, "client_id") {
        Ok(t) => axum::Json(json!({
            "access_token": t.access_token,
            "user_id": t.user.parse::<u64>().map(Value::from).unwrap_or(Value::from(t.user)),
            "permissions": t.scope.split(',').collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => oauth_error(&e),
    }
}

async fn exchange(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let f = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if f("grant_type") != "ig_exchange_token" {
        return graph_error(400, 100, None, "Unsupported grant_type");
    }
    if f("client_secret") != "crier-secret" {
        return graph_error(400, 101, None, "Error validating client secret.");
    }
    let Some(short) = s.short.token_info(f("access_token")) else {
        return bad_token();
    };
    let t = s.long.issue(&short.user, &short.scope);
    axum::Json(
        json!({"access_token": t.access_token, "token_type": "bearer", "expires_in": t.expires_in}),
    )
    .into_response()
}

async fn refresh(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let f = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if f("grant_type") != "ig_refresh_token" {
        return graph_error(400, 100, None, "Unsupported grant_type");
    }
    let Some(old) = s.long.token_info(f("access_token")) else {
        return bad_token();
    };
    let t = s.long.issue(&old.user, &old.scope);
    axum::Json(
        json!({"access_token": t.access_token, "token_type": "bearer", "expires_in": t.expires_in}),
    )
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

async fn me(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&s, &headers, &q) else {
        return bad_token();
    };
    let (followers, media) = {
        let st = s.state.lock().expect("instagram state");
        let media = st.media.iter().filter(|m| m.owner == user).count();
        (st.followers, media)
    };
    let all = json!({
        "id": "9000000000000001",
        "user_id": user,
        "username": USERNAME,
        "name": "Crier Studio",
        "account_type": "BUSINESS",
        "profile_picture_url": "https://scontent.cdninstagram.com/v/crier.jpg",
        "followers_count": followers,
        "follows_count": 0,
        "media_count": media,
    });
    let out = match q.get("fields") {
        Some(f) => pick(&all, Some(f)),
        None => all,
    };
    axum::Json(out).into_response()
}

/// `GET /{id}`: a container's status, or a media object's fields.
async fn node(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&s, &headers, &q) else {
        return bad_token();
    };
    let now = kit::now_secs(s.clock.as_ref());
    let mut st = s.state.lock().expect("instagram state");
    if let Some(c) = st.containers.get_mut(&id).filter(|c| c.owner == user) {
        let code = match c.settled() {
            Status::InProgress => {
                c.polls_left -= 1;
                "IN_PROGRESS"
            }
            Status::Finished => {
                if c.created_at + CONTAINER_TTL < now {
                    "EXPIRED"
                } else {
                    "FINISHED"
                }
            }
            Status::Error => "ERROR",
            Status::Published => "PUBLISHED",
        };
        let status = match code {
            "ERROR" => "Error: 2207053",
            "EXPIRED" => "Expired",
            "FINISHED" | "PUBLISHED" => {
                "Finished: Media has been uploaded and it is ready to be published."
            }
            _ => "In Progress: Media is still being processed.",
        };
        return axum::Json(json!({"id": id, "status_code": code, "status": status}))
            .into_response();
    }
    let Some(m) = st.media.iter().find(|m| m.id == id && m.owner == user) else {
        return unsupported(&id);
    };
    let all = media_json(m);
    axum::Json(pick(&all, q.get("fields").map(String::as_str))).into_response()
}

fn media_json(m: &Media) -> Value {
    json!({
        "id": m.id,
        "caption": m.caption,
        "media_type": m.media_type,
        "timestamp": iso(m.at),
        "permalink": format!("https://www.instagram.com/p/{}/", m.shortcode),
        "shortcode": m.shortcode,
        "like_count": m.likes,
        "comments_count": m.comments.len(),
        "username": USERNAME,
    })
}

/// The requested fields of an object (`id` always), as Graph answers.
fn pick(all: &Value, fields: Option<&str>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), all["id"].clone());
    let fields = fields.unwrap_or("id,caption,media_type,timestamp,permalink");
    for f in fields.split(',').map(str::trim) {
        if let Some(v) = all.get(f) {
            out.insert(f.to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

async fn list_media(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&s, &headers, &q) else {
        return bad_token();
    };
    if user != id {
        return unsupported(&id);
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .min(100);
    let st = s.state.lock().expect("instagram state");
    let data: Vec<Value> = st
        .media
        .iter()
        .rev()
        .filter(|m| m.owner == user)
        .take(limit)
        .map(|m| pick(&media_json(m), q.get("fields").map(String::as_str)))
        .collect();
    axum::Json(json!({ "data": data })).into_response()
}

async fn publishing_limit(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&s, &headers, &q) else {
        return bad_token();
    };
    if user != id {
        return unsupported(&id);
    }
    let now = kit::now_secs(s.clock.as_ref());
    let st = s.state.lock().expect("instagram state");
    let used = used_in_window(&st, &user, now);
    axum::Json(json!({"data": [{
        "quota_usage": used,
        "config": {"quota_total": st.quota_total, "quota_duration": 86400},
    }]}))
    .into_response()
}

fn used_in_window(st: &State_, user: &str, now: i64) -> i64 {
    st.media
        .iter()
        .filter(|m| m.owner == user && m.at > now - 86400)
        .count() as i64
}

/// What a fetched URL holds, sniffed.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        Some(if &bytes[8..10] == b"qt" {
            "video/quicktime"
        } else {
            "video/mp4"
        })
    } else {
        None
    }
}

/// Fetches a media URL as Instagram's servers do, at most `max` bytes.
async fn fetch(s: &Shared, url: &str, max: usize) -> Result<(Vec<u8>, &'static str), Response> {
    let resp = s
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| media_refused(&format!("{url} ({e})")))?;
    if !resp.status().is_success() {
        return Err(media_refused(&format!("{url} answered {}", resp.status())));
    }
    if resp.content_length().is_some_and(|n| n as usize > max) {
        return Err(too_large(max));
    }
    let mut resp = resp;
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| media_refused(&format!("{url} ({e})")))?
    {
        if out.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        out.extend_from_slice(&chunk);
    }
    let kind =
        sniff(&out).ok_or_else(|| media_refused(&format!("{url} is not a photo or video")))?;
    Ok((out, kind))
}

fn too_large(max: usize) -> Response {
    if max == MAX_IMAGE {
        graph_error(400, 36000, Some(2_207_004), "The image size is too large.")
    } else {
        graph_error(400, 352, Some(2_207_026), "The video file is too large.")
    }
}

async fn create_container(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = params(q, &body);
    let Some(user) = caller(&s, &headers, &p) else {
        return bad_token();
    };
    if user != id {
        return unsupported(&id);
    }
    let f = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let caption = f("caption").to_owned();
    if caption.chars().count() > MAX_CAPTION {
        return graph_error(
            400,
            100,
            None,
            "Param caption must be at most 2200 characters long.",
        );
    }
    if hashtags(&caption) > MAX_HASHTAGS {
        return graph_error(
            400,
            100,
            None,
            "The caption contains more than 30 hashtags.",
        );
    }
    let child = f("is_carousel_item") == "true";
    let (media_type, content_types) = match f("media_type") {
        "CAROUSEL" => match carousel(&s, &user, f("children")) {
            Ok(types) => ("CAROUSEL".to_owned(), types),
            Err(r) => return *r,
        },
        t @ ("REELS" | "VIDEO") => {
            if t == "VIDEO" && !child {
                return graph_error(
                    400,
                    100,
                    None,
                    "The VIDEO media type is only for carousel items; use REELS.",
                );
            }
            match fetch(&s, f("video_url"), MAX_VIDEO).await {
                Ok((_, kind)) if kind.starts_with("video/") => {
                    (t.to_owned(), vec![kind.to_owned()])
                }
                Ok(_) => {
                    return graph_error(
                        400,
                        352,
                        Some(2_207_026),
                        "The video format is not supported. Please check spec for supported \
                         video formats.",
                    );
                }
                Err(r) => return r,
            }
        }
        "" | "IMAGE" => match fetch(&s, f("image_url"), MAX_IMAGE).await {
            // "JPEG is the only image format supported."
            Ok((_, "image/jpeg")) => ("IMAGE".to_owned(), vec!["image/jpeg".to_owned()]),
            Ok((_, kind)) => return media_refused(&format!("{kind} is not JPEG")),
            Err(r) => return r,
        },
        other => {
            return graph_error(400, 100, None, &format!("Invalid media_type {other}"));
        }
    };
    let now = kit::now_secs(s.clock.as_ref());
    let mut st = s.state.lock().expect("instagram state");
    let cid = st.next_id.to_string();
    st.next_id += 1;
    let polls = st.processing_polls;
    st.containers.insert(
        cid.clone(),
        Container {
            owner: user,
            media_type,
            content_types,
            caption,
            alt_text: p.get("alt_text").cloned(),
            child,
            created_at: now,
            polls_left: polls,
            status: Status::InProgress,
        },
    );
    st.made.push(cid.clone());
    axum::Json(json!({ "id": cid })).into_response()
}

/// A carousel's children: 2 to 10 finished carousel items of the account; their types.
fn carousel(s: &Shared, user: &str, children: &str) -> Result<Vec<String>, Box<Response>> {
    let ids: Vec<&str> = children.split(',').filter(|c| !c.is_empty()).collect();
    if !(2..=10).contains(&ids.len()) {
        return Err(Box::new(graph_error(
            400,
            100,
            None,
            "A carousel takes 2 to 10 children.",
        )));
    }
    let st = s.state.lock().expect("instagram state");
    let mut types = Vec::new();
    for id in ids {
        match st.containers.get(id) {
            Some(c) if c.owner == user && c.child && c.settled() == Status::Finished => {
                types.extend(c.content_types.iter().cloned());
            }
            Some(c) if c.owner == user && c.child => {
                return Err(Box::new(graph_error(
                    400,
                    9007,
                    Some(2_207_027),
                    "The media is not ready for publishing, please wait for a moment",
                )));
            }
            _ => return Err(Box::new(unsupported(id))),
        }
    }
    Ok(types)
}

async fn media_publish(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = params(q, &body);
    let Some(user) = caller(&s, &headers, &p) else {
        return bad_token();
    };
    if user != id {
        return unsupported(&id);
    }
    let creation = p.get("creation_id").cloned().unwrap_or_default();
    let now = kit::now_secs(s.clock.as_ref());
    let mut st = s.state.lock().expect("instagram state");
    if used_in_window(&st, &user, now) >= st.quota_total {
        return graph_error(
            400,
            9,
            Some(2_207_042),
            "You reached maximum number of posts that is allowed to be published by Content \
             Publishing API.",
        );
    }
    let Some(c) = st
        .containers
        .get(&creation)
        .filter(|c| c.owner == user && !c.child)
        .cloned()
    else {
        return unsupported(&creation);
    };
    match c.settled() {
        Status::Published => {
            return graph_error(
                400,
                100,
                None,
                &format!("The container {creation} has already been published."),
            );
        }
        Status::Error => {
            return graph_error(400, -1, Some(2_207_053), "unknown upload error");
        }
        Status::InProgress => {
            return graph_error(
                400,
                9007,
                Some(2_207_027),
                "The media is not ready for publishing, please wait for a moment",
            );
        }
        Status::Finished if c.created_at + CONTAINER_TTL < now => {
            return graph_error(
                400,
                -2,
                Some(2_207_020),
                "The media you are trying to access has expired. Please try to upload again.",
            );
        }
        Status::Finished => {}
    }
    let mid = st.next_id.to_string();
    st.next_id += 1;
    if let Some(c) = st.containers.get_mut(&creation) {
        c.status = Status::Published;
    }
    st.media.push(Media {
        id: mid.clone(),
        owner: user,
        caption: c.caption,
        media_type: match c.media_type.as_str() {
            "CAROUSEL" => "CAROUSEL_ALBUM".to_owned(),
            other => other.to_owned(),
        },
        content_types: c.content_types,
        alt_text: c.alt_text,
        at: now,
        shortcode: kit::random(8),
        likes: 0,
        comments: Vec::new(),
    });
    axum::Json(json!({ "id": mid })).into_response()
}

async fn comment(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = params(q, &body);
    let Some(user) = caller(&s, &headers, &p) else {
        return bad_token();
    };
    let message = p.get("message").cloned().unwrap_or_default();
    if message.trim().is_empty() || message.chars().count() > MAX_CAPTION {
        return graph_error(
            400,
            100,
            None,
            "Param message must be 1 to 2200 characters.",
        );
    }
    let mut st = s.state.lock().expect("instagram state");
    let cid = st.next_id.to_string();
    st.next_id += 1;
    let Some(m) = st.media.iter_mut().find(|m| m.id == id && m.owner == user) else {
        return unsupported(&id);
    };
    m.comments.push((cid.clone(), message));
    axum::Json(json!({ "id": cid })).into_response()
}

// ---------------------------------------------------------------------------------------------
// The suite's view
// ---------------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl FakeNetwork for InstagramFake {
    fn platform(&self) -> &'static str {
        crier_networks::instagram::PLATFORM
    }

    fn base(&self) -> url::Url {
        self.base.clone()
    }

    fn connector(&self, clock: Arc<dyn Clock>) -> Arc<dyn Network> {
        Arc::new(Instagram::new(crate::kit::test_config(self.base()), clock))
    }

    /// Media only (no text alone), no threads; images only as JPEG, which the suite's PNG is
    /// not (the JPEG path is tested in `crier-networks/tests/instagram.rs`).
    fn features(&self) -> Features {
        Features {
            text: false,
            threads: false,
            images: false,
            video: true,
        }
    }

    fn posts(&self) -> Vec<FakePost> {
        self.lock()
            .media
            .iter()
            .map(|m| FakePost {
                id: m.id.clone(),
                author: m.owner.clone(),
                text: m.caption.clone(),
                reply_to: None,
                media: m.content_types.clone(),
            })
            .collect()
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn publish_call(&self) -> (&'static str, String) {
        ("POST", format!("/{VERSION}/{USER}/media_publish"))
    }

    /// Graph's app throttle (code 4) with the business use case header saying when access
    /// comes back (in minutes).
    fn rate_limited(&self, reset_secs: u64) -> Fault {
        let (_, path) = self.publish_call();
        let usage = json!({ USER: [{
            "type": "instagram",
            "call_count": 100,
            "total_cputime": 20,
            "total_time": 30,
            "estimated_time_to_regain_access": reset_secs.div_ceil(60),
        }]});
        Fault::status(
            "POST",
            &path,
            400,
            json!({"error": {"message": "Application request limit reached", "type": "OAuthException", "code": 4, "is_transient": true, "fbtrace_id": "AbCdEf"}}),
        )
        .header("x-business-use-case-usage", usage.to_string())
    }

    fn documented_errors(&self) -> Vec<(Fault, &'static str)> {
        let (_, publish) = self.publish_call();
        let create = format!("/{VERSION}/{USER}/media");
        let e = |code: i64, sub: Option<i64>, msg: &str| {
            let mut e = json!({"message": msg, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"});
            if let Some(s) = sub {
                e["error_subcode"] = json!(s);
            }
            json!({ "error": e })
        };
        vec![
            (
                Fault::status(
                    "POST",
                    &publish,
                    400,
                    e(
                        190,
                        Some(460),
                        "Error validating access token: The session has been invalidated because the user changed their password.",
                    ),
                ),
                "account_disconnected",
            ),
            (
                Fault::status(
                    "POST",
                    &publish,
                    400,
                    e(
                        9,
                        Some(2_207_042),
                        "You reached maximum number of posts that is allowed to be published by Content Publishing API.",
                    ),
                ),
                "network_rate_limited",
            ),
            (
                Fault::status(
                    "POST",
                    &publish,
                    400,
                    e(
                        4,
                        Some(2_207_051),
                        "We restrict certain activity to protect our community.",
                    ),
                ),
                "network_rate_limited",
            ),
            (
                Fault::status(
                    "POST",
                    &publish,
                    400,
                    e(
                        9007,
                        Some(2_207_027),
                        "The media is not ready for publishing, please wait for a moment",
                    ),
                ),
                "network_unavailable",
            ),
            (
                Fault::status(
                    "POST",
                    &publish,
                    500,
                    e(2, None, "Service temporarily unavailable"),
                ),
                "network_unavailable",
            ),
            (
                Fault::status(
                    "POST",
                    &publish,
                    400,
                    e(25, Some(2_207_050), "The Instagram account is restricted."),
                ),
                "network_rejected",
            ),
            (
                Fault::status(
                    "POST",
                    &create,
                    400,
                    e(
                        9004,
                        Some(2_207_052),
                        "Only photo or video can be accepted as media type.",
                    ),
                ),
                "media_rejected",
            ),
            (
                Fault::status(
                    "POST",
                    &create,
                    400,
                    e(
                        352,
                        Some(2_207_026),
                        "The video format is not supported. Please check spec for supported video formats.",
                    ),
                ),
                "media_rejected",
            ),
            (
                Fault::status(
                    "POST",
                    &create,
                    400,
                    e(-1, Some(2_207_001), "Instagram server error. Try again."),
                ),
                "network_unavailable",
            ),
        ]
    }

    fn revoke_access(&self) {
        self.shared.short.revoke_user(USER);
        self.shared.long.revoke_user(USER);
    }

    fn set_followers(&self, n: u64) {
        self.lock().followers = n;
    }

    fn like(&self, id: &str, n: u64) {
        if let Some(m) = self.lock().media.iter_mut().find(|m| m.id == id) {
            m.likes = n;
        }
    }
}
