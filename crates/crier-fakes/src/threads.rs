//! A stateful fake of Meta's Threads API (`graph.threads.net/v1.0` and the authorization
//! window of `threads.net`), written from developers.facebook.com/docs/threads:
//! `get-started/get-access-tokens-and-permissions` (authorize, code → short-lived token of an
//! hour with `user_id`), `get-started/long-lived-tokens` (`th_exchange_token` → 60 days,
//! `th_refresh_token` → 60 days more), `posts` and `reference/publishing` (media containers:
//! TEXT, IMAGE, VIDEO, CAROUSEL of 2 to 20 `is_carousel_item` children, `reply_to_id`,
//! `reply_control`; `threads_publish`; 500 characters with an emoji counted as its UTF-8
//! bytes), `troubleshooting` (container `status`: IN_PROGRESS, FINISHED, PUBLISHED, ERROR with
//! `error_message`, EXPIRED after 24 hours unpublished), `overview#rate-limiting` and
//! `reply-management` (250 posts and 1,000 replies in a moving 24 hours, enforced at
//! `threads_publish`, read at `threads_publishing_limit`), `reference/user` and
//! `reference/media` (`/{user-id}/threads`, `/{user-id}/replies`, `permalink`), `insights`
//! (`views`, `likes`, `replies`, `reposts`, `quotes` of a post; a user's
//! `/{user-id}/threads_insights` with `followers_count`, `likes`, `replies`, `reposts`,
//! `quotes`, `clicks` as `total_value` and `views` as daily `values`), and the Graph API error object
//! (`{"error":{"message","type","code","error_subcode","fbtrace_id"}}`, code 190 for a bad
//! token, 100 for a bad parameter).
//!
//! What it does for real: single-use codes and client secrets (through [`OAuthServer`]),
//! expiring short and long-lived tokens on the test's clock, fetching `image_url` and
//! `video_url` with reqwest (a failed download is refused: a 400 for an image, a container in
//! ERROR `FAILED_DOWNLOADING_VIDEO` for a video), sniffing JPEG / PNG / MP4 / MOV and the size
//! limits (8 MB, 1 GB), containers IN_PROGRESS for a number of polls, each container published
//! once, `reply_to_id` checked, the quotas counted.
//!
//! Leniency, on purpose: Threads refreshes a long-lived token only once it is 24 hours old;
//! the fake refreshes at any age (the conformance suite refreshes right after connecting).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crier_core::Clock;
use crier_networks::Network;
use serde_json::{Value, json};

use crate::kit::{self, Fault, Faults, OAuthServer, now_secs};
use crate::{FakeNetwork, FakePost, Features};

/// The fake's one Threads profile.
pub const USER_ID: &str = "17841400000000042";
pub const USERNAME: &str = "crier.tester";
/// Lifetimes (seconds): a short-lived token, a long-lived one.
pub const SHORT_TTL: i64 = 3600;
pub const LONG_TTL: i64 = 60 * 86_400;
pub const MAX_TEXT: usize = 500;
pub const POST_QUOTA: usize = 250;
pub const REPLY_QUOTA: usize = 1000;
const DAY: i64 = 86_400;
const MAX_IMAGE: u64 = 8 * 1024 * 1024;
const MAX_VIDEO: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStatus {
    InProgress,
    Finished,
    Published,
    Error(String),
}

#[derive(Debug, Clone)]
struct Container {
    owner: String,
    text: String,
    reply_to: Option<String>,
    carousel_item: bool,
    reply_control: Option<String>,
    /// Content types of its media (a carousel: its children's).
    media: Vec<String>,
    status: ContainerStatus,
    polls_left: u32,
    created_at: i64,
    used_in_carousel: bool,
}

#[derive(Debug, Clone)]
struct Post {
    id: String,
    owner: String,
    text: String,
    reply_to: Option<String>,
    media: Vec<String>,
    reply_control: Option<String>,
    timestamp: i64,
    shortcode: String,
    likes: u64,
    views: u64,
}

struct Inner {
    clock: Arc<dyn Clock>,
    long_tokens: HashMap<String, (String, i64)>,
    containers: HashMap<String, Container>,
    posts: Vec<Post>,
    next_id: u64,
    /// Polls a new image / video container answers IN_PROGRESS.
    image_polls: u32,
    video_polls: u32,
    /// The user's `followers_count`.
    followers: u64,
}

impl Inner {
    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn now(&self) -> i64 {
        now_secs(self.clock.as_ref())
    }

    /// The container's status now: EXPIRED when unpublished for 24 hours.
    fn status_of(&self, c: &Container) -> &'static str {
        match &c.status {
            ContainerStatus::Published => "PUBLISHED",
            _ if self.now() - c.created_at > DAY => "EXPIRED",
            ContainerStatus::InProgress => "IN_PROGRESS",
            ContainerStatus::Finished => "FINISHED",
            ContainerStatus::Error(_) => "ERROR",
        }
    }

    fn used(&self, owner: &str, replies: bool) -> usize {
        let since = self.now() - DAY;
        self.posts
            .iter()
            .filter(|p| p.owner == owner && p.timestamp > since)
            .filter(|p| p.reply_to.is_some() == replies)
            .count()
    }
}

/// The Threads fake.
#[derive(Clone)]
pub struct ThreadsFake {
    base: url::Url,
    state: Arc<Mutex<Inner>>,
    oauth: OAuthServer,
    faults: Faults,
}

#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<Inner>>,
    oauth: OAuthServer,
    http: reqwest::Client,
}

impl ThreadsFake {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let oauth = OAuthServer::new(clock.clone(), SHORT_TTL, false, false);
        oauth.set_user(USER_ID);
        let state = Arc::new(Mutex::new(Inner {
            clock,
            long_tokens: HashMap::new(),
            containers: HashMap::new(),
            posts: Vec::new(),
            next_id: 18_000_000_000_000_000,
            image_polls: 1,
            video_polls: 2,
            followers: 0,
        }));
        let faults = Faults::default();
        let ctx = Ctx {
            state: state.clone(),
            oauth: oauth.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client"),
        };
        let router = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/access_token", axum::routing::post(code_token))
            .route("/access_token", get(exchange))
            .route("/refresh_access_token", get(refresh))
            .route("/v1.0/me", get(me))
            .route("/v1.0/{id}", get(object))
            .route("/v1.0/{id}/threads", get(list_threads).post(create))
            .route("/v1.0/{id}/replies", get(list_replies))
            .route("/v1.0/{id}/threads_publish", axum::routing::post(publish))
            .route("/v1.0/{id}/threads_publishing_limit", get(limit))
            .route("/v1.0/{id}/insights", get(insights))
            .route("/v1.0/{id}/threads_insights", get(user_insights))
            .with_state(ctx);
        let base = kit::serve(faults.wrap(router)).await;
        Self {
            base,
            state,
            oauth,
            faults,
        }
    }

    /// How many polls new image and video containers stay IN_PROGRESS.
    pub fn set_processing_polls(&self, image: u32, video: u32) {
        let mut s = self.state.lock().expect("state");
        s.image_polls = image;
        s.video_polls = video;
    }

    /// A container's status as Threads would answer it now (`None`: unknown).
    pub fn container_status(&self, id: &str) -> Option<String> {
        let s = self.state.lock().expect("state");
        s.containers.get(id).map(|c| s.status_of(c).to_owned())
    }

    /// How many containers were created (carousel items included).
    pub fn containers_created(&self) -> usize {
        self.state.lock().expect("state").containers.len()
    }

    /// Marks a container failed (`error_message`), as a video that could not be processed.
    pub fn fail_container(&self, id: &str, error_message: &str) {
        if let Some(c) = self.state.lock().expect("state").containers.get_mut(id) {
            c.status = ContainerStatus::Error(error_message.to_owned());
        }
    }

    /// Who may reply to a post (`reply_control` as it was published; `None`: everyone).
    pub fn reply_control(&self, id: &str) -> Option<String> {
        let s = self.state.lock().expect("state");
        s.posts
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.reply_control.clone())
    }

    /// `n` posts published by the profile elsewhere (another app) now, using up quota.
    pub fn preload_posts(&self, n: usize, replies: bool) {
        let mut s = self.state.lock().expect("state");
        let now = s.now();
        let parent = s.posts.first().map(|p| p.id.clone());
        for i in 0..n {
            let id = s.id();
            s.posts.push(Post {
                id,
                owner: USER_ID.into(),
                text: format!("elsewhere {i}"),
                reply_to: if replies {
                    parent.clone().or(Some("0".into()))
                } else {
                    None
                },
                media: Vec::new(),
                reply_control: None,
                timestamp: now,
                shortcode: kit::random(8),
                likes: 0,
                views: 0,
            });
        }
    }

    /// Tokens for the profile without the OAuth dance: a long-lived token.
    pub fn long_lived_token(&self) -> String {
        let mut s = self.state.lock().expect("state");
        let token = kit::random(24);
        let exp = s.now() + LONG_TTL;
        s.long_tokens.insert(token.clone(), (USER_ID.into(), exp));
        token
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and tokens
// ---------------------------------------------------------------------------------------------

/// A Graph error object.
fn error(status: u16, code: i64, subcode: Option<i64>, kind: &str, message: &str) -> Response {
    let mut e = json!({
        "message": message,
        "type": kind,
        "code": code,
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

fn bad_param(message: &str) -> Response {
    error(400, 100, None, "THApiException", message)
}

fn bad_token() -> Response {
    error(
        401,
        190,
        None,
        "OAuthException",
        "Error validating access token: the session is invalid or has expired.",
    )
}

fn no_object(id: &str) -> Response {
    error(
        400,
        100,
        Some(33),
        "GraphMethodException",
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due \
             to missing permissions, or does not support this operation."
        ),
    )
}

/// The user a request's token acts for (`Authorization: Bearer` or `access_token`).
fn caller(ctx: &Ctx, headers: &HeaderMap, q: &HashMap<String, String>) -> Option<String> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| q.get("access_token").cloned())?;
    token_user(ctx, &token)
}

fn token_user(ctx: &Ctx, token: &str) -> Option<String> {
    {
        let s = ctx.state.lock().expect("state");
        if let Some((user, exp)) = s.long_tokens.get(token) {
            return (*exp > s.now()).then(|| user.clone());
        }
    }
    ctx.oauth.token_info(token).map(|t| t.user)
}

fn issue_long(ctx: &Ctx, user: &str) -> Response {
    let mut s = ctx.state.lock().expect("state");
    let token = kit::random(24);
    let exp = s.now() + LONG_TTL;
    s.long_tokens.insert(token.clone(), (user.to_owned(), exp));
    axum::Json(json!({"access_token": token, "token_type": "bearer", "expires_in": LONG_TTL}))
        .into_response()
}

fn fields(q: &HashMap<String, String>) -> Vec<String> {
    q.get("fields")
        .map(|f| f.split(',').map(|x| x.trim().to_owned()).collect())
        .unwrap_or_default()
}

/// The length Threads counts: characters, an emoji as its UTF-8 bytes.
fn text_length(text: &str) -> usize {
    text.chars()
        .map(|c| {
            let emoji = matches!(c as u32,
                0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF
                | 0xFE0F | 0x200D | 0x20E3 | 0xE0020..=0xE007F);
            if emoji { c.len_utf8() } else { 1 }
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

async fn authorize(State(ctx): State<Ctx>, Query(q): Query<HashMap<String, String>>) -> Response {
    match ctx.oauth.authorize(&q, "client_id") {
        Ok(to) => (StatusCode::FOUND, [("location", to.to_string())]).into_response(),
        Err(e) => error(e.status, 100, None, "OAuthException", &e.description),
    }
}

async fn code_token(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = kit::form(&body);
    match ctx.oauth.token(&headers, &form, "client_id") {
        Ok(t) => {
            axum::Json(json!({"access_token": t.access_token, "user_id": t.user})).into_response()
        }
        Err(e) if e.error == "invalid_client" => error(
            400,
            101,
            None,
            "OAuthException",
            "Error validating client secret.",
        ),
        Err(e) => error(400, 100, None, "OAuthException", &e.description),
    }
}

async fn exchange(State(ctx): State<Ctx>, Query(q): Query<HashMap<String, String>>) -> Response {
    let g = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if g("grant_type") != "th_exchange_token" {
        return bad_param("grant_type must be th_exchange_token");
    }
    let Some(info) = ctx.oauth.token_info(g("access_token")) else {
        return bad_token();
    };
    // The app's secret: the client the short-lived token was issued to.
    if info.client_id != "crier-client" || g("client_secret") != "crier-secret" {
        return error(
            400,
            101,
            None,
            "OAuthException",
            "Error validating client secret.",
        );
    }
    issue_long(&ctx, &info.user)
}

async fn refresh(State(ctx): State<Ctx>, Query(q): Query<HashMap<String, String>>) -> Response {
    let g = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if g("grant_type") != "th_refresh_token" {
        return bad_param("grant_type must be th_refresh_token");
    }
    let user = {
        let s = ctx.state.lock().expect("state");
        s.long_tokens
            .get(g("access_token"))
            .filter(|(_, exp)| *exp > s.now())
            .map(|(u, _)| u.clone())
    };
    match user {
        Some(user) => issue_long(&ctx, &user),
        None => bad_token(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

async fn me(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&ctx, &headers, &q) else {
        return bad_token();
    };
    let mut out = json!({"id": user});
    for f in fields(&q) {
        match f.as_str() {
            "username" => out["username"] = json!(USERNAME),
            "name" => out["name"] = json!("Crier Tester"),
            "threads_profile_picture_url" => {
                out["threads_profile_picture_url"] =
                    json!("https://scontent.cdninstagram.com/p.jpg");
            }
            "threads_biography" => out["threads_biography"] = json!(""),
            _ => {}
        }
    }
    axum::Json(out).into_response()
}

fn permalink(p: &Post) -> String {
    format!("https://www.threads.net/@{USERNAME}/post/{}", p.shortcode)
}

/// Epoch seconds as Graph writes times: `2024-05-01T12:00:00+0000`.
fn timestamp(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn post_json(p: &Post, fields: &[String]) -> Value {
    let mut out = json!({"id": p.id});
    for f in fields {
        match f.as_str() {
            "text" => out["text"] = json!(p.text),
            "timestamp" => out["timestamp"] = json!(timestamp(p.timestamp)),
            "permalink" => out["permalink"] = json!(permalink(p)),
            "username" => out["username"] = json!(USERNAME),
            "shortcode" => out["shortcode"] = json!(p.shortcode),
            "is_reply" => out["is_reply"] = json!(p.reply_to.is_some()),
            "replied_to" => {
                if let Some(r) = &p.reply_to {
                    out["replied_to"] = json!({"id": r});
                }
            }
            "media_type" => {
                let t = match p.media.len() {
                    0 => "TEXT_POST",
                    1 if p.media[0].starts_with("video/") => "VIDEO",
                    1 => "IMAGE",
                    _ => "CAROUSEL_ALBUM",
                };
                out["media_type"] = json!(t);
            }
            _ => {}
        }
    }
    out
}

/// `GET /{id}`: a container's status, or a media object.
async fn object(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&ctx, &headers, &q) else {
        return bad_token();
    };
    let s = ctx.state.lock().expect("state");
    if let Some(c) = s.containers.get(&id).filter(|c| c.owner == user) {
        let status = s.status_of(c);
        let mut out = json!({"id": id});
        for f in fields(&q) {
            match f.as_str() {
                "status" => out["status"] = json!(status),
                "error_message" => {
                    if let ContainerStatus::Error(m) = &c.status {
                        out["error_message"] = json!(m);
                    }
                }
                _ => {}
            }
        }
        drop(s);
        // A status read is a poll: processing moves on.
        let mut s = ctx.state.lock().expect("state");
        if let Some(c) = s.containers.get_mut(&id)
            && c.status == ContainerStatus::InProgress
        {
            if c.polls_left <= 1 {
                c.status = ContainerStatus::Finished;
            }
            c.polls_left = c.polls_left.saturating_sub(1);
        }
        return axum::Json(out).into_response();
    }
    match s.posts.iter().find(|p| p.id == id && p.owner == user) {
        Some(p) => axum::Json(post_json(p, &fields(&q))).into_response(),
        None => no_object(&id),
    }
}

fn list(
    ctx: &Ctx,
    headers: &HeaderMap,
    id: &str,
    q: &HashMap<String, String>,
    replies: bool,
) -> Response {
    let Some(user) = caller(ctx, headers, q) else {
        return bad_token();
    };
    if id != user && id != "me" {
        return no_object(id);
    }
    let since = q
        .get("since")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::MIN);
    let until = q
        .get("until")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::MAX);
    let limit = q
        .get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let offset = q
        .get("after")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let s = ctx.state.lock().expect("state");
    let mut mine: Vec<&Post> = s
        .posts
        .iter()
        .filter(|p| p.owner == user && p.reply_to.is_some() == replies)
        .filter(|p| p.timestamp >= since && p.timestamp <= until)
        .collect();
    mine.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(b.id.cmp(&a.id)));
    let f = fields(q);
    let data: Vec<Value> = mine
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| post_json(p, &f))
        .collect();
    let more = mine.len() > offset + limit;
    let mut paging = json!({"cursors": {"before": offset.to_string(), "after": (offset + data.len()).to_string()}});
    if more {
        paging["next"] = json!(format!(
            "https://graph.threads.net/v1.0/{user}/threads?after={}",
            offset + limit
        ));
    }
    axum::Json(json!({"data": data, "paging": paging})).into_response()
}

async fn list_threads(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list(&ctx, &headers, &id, &q, false)
}

async fn list_replies(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list(&ctx, &headers, &id, &q, true)
}

async fn limit(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&ctx, &headers, &q) else {
        return bad_token();
    };
    if id != user && id != "me" {
        return no_object(&id);
    }
    let s = ctx.state.lock().expect("state");
    let mut out = json!({});
    for f in fields(&q) {
        match f.as_str() {
            "quota_usage" => out["quota_usage"] = json!(s.used(&user, false)),
            "config" => out["config"] = json!({"quota_total": POST_QUOTA, "quota_duration": DAY}),
            "reply_quota_usage" => out["reply_quota_usage"] = json!(s.used(&user, true)),
            "reply_config" => {
                out["reply_config"] = json!({"quota_total": REPLY_QUOTA, "quota_duration": DAY});
            }
            _ => {}
        }
    }
    axum::Json(json!({"data": [out]})).into_response()
}

async fn insights(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&ctx, &headers, &q) else {
        return bad_token();
    };
    let s = ctx.state.lock().expect("state");
    let Some(p) = s.posts.iter().find(|p| p.id == id && p.owner == user) else {
        return no_object(&id);
    };
    let replies = s
        .posts
        .iter()
        .filter(|r| r.reply_to.as_deref() == Some(&p.id))
        .count() as u64;
    let mut data = Vec::new();
    for m in q.get("metric").map(String::as_str).unwrap_or("").split(',') {
        let value = match m.trim() {
            "views" => p.views,
            "likes" => p.likes,
            "replies" => replies,
            "reposts" | "quotes" | "shares" => 0,
            other => {
                return bad_param(&format!(
                    "(#100) metric[{other}] must be one of views, likes, replies, reposts, quotes, shares"
                ));
            }
        };
        data.push(json!({
            "name": m.trim(),
            "period": "lifetime",
            "values": [{"value": value}],
            "title": m.trim(),
            "description": "",
            "id": format!("{id}/insights/{}/lifetime", m.trim()),
        }));
    }
    axum::Json(json!({"data": data})).into_response()
}

/// `GET /{user-id}/threads_insights?metric=…`: the user's own insights (`me` or their id).
async fn user_insights(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = caller(&ctx, &headers, &q) else {
        return bad_token();
    };
    if id != user && id != "me" {
        return no_object(&id);
    }
    let s = ctx.state.lock().expect("state");
    let own: Vec<&Post> = s.posts.iter().filter(|p| p.owner == user).collect();
    let metrics = q.get("metric").map(String::as_str).unwrap_or("");
    if metrics.trim().is_empty() {
        return bad_param("(#100) The parameter metric is required");
    }
    let mut data = Vec::new();
    for m in metrics.split(',').map(str::trim) {
        let total = match m {
            "followers_count" => s.followers,
            "likes" => own.iter().map(|p| p.likes).sum(),
            "replies" => s
                .posts
                .iter()
                .filter(|r| {
                    r.reply_to
                        .as_deref()
                        .is_some_and(|to| own.iter().any(|p| p.id == to))
                })
                .count() as u64,
            "reposts" | "quotes" | "clicks" => 0,
            "views" => {
                data.push(json!({
                    "name": "views",
                    "period": "day",
                    "values": [{"value": own.iter().map(|p| p.views).sum::<u64>(), "end_time": timestamp(s.now())}],
                    "title": "views",
                    "description": "The number of times your profile was viewed.",
                    "id": format!("{user}/insights/views/day"),
                }));
                continue;
            }
            other => {
                return bad_param(&format!(
                    "(#100) metric[{other}] must be one of views, likes, replies, reposts, quotes, clicks, followers_count"
                ));
            }
        };
        data.push(json!({
            "name": m,
            "period": "day",
            "title": m,
            "description": "",
            "total_value": {"value": total},
            "id": format!("{user}/insights/{m}/day"),
        }));
    }
    axum::Json(json!({"data": data})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

/// What a downloaded media URL turned out to be.
enum Fetched {
    Ok(String),
    Failed(String),
}

/// Downloads `url` as Threads does, at most `max` bytes, and sniffs its type.
async fn fetch(http: &reqwest::Client, url: &str, max: u64, video: bool) -> Fetched {
    let Ok(mut resp) = http.get(url).send().await else {
        return Fetched::Failed("the media could not be fetched from the URI provided".into());
    };
    if !resp.status().is_success() {
        return Fetched::Failed(format!("the media URI answered {}", resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|n| n > max) {
        return Fetched::Failed(format!("the media is larger than {max} bytes"));
    }
    let mut bytes = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                bytes.extend_from_slice(&c);
                if bytes.len() as u64 > max {
                    return Fetched::Failed(format!("the media is larger than {max} bytes"));
                }
            }
            Ok(None) => break,
            Err(_) => return Fetched::Failed("the media download was interrupted".into()),
        }
    }
    let kind = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        if &bytes[8..10] == b"qt" {
            "video/quicktime"
        } else {
            "video/mp4"
        }
    } else {
        "application/octet-stream"
    };
    if kind.starts_with("video/") != video || kind == "application/octet-stream" {
        return Fetched::Failed(format!("unsupported media format ({kind})"));
    }
    Fetched::Ok(kind.to_owned())
}

/// `POST /{user-id}/threads`: a media container.
async fn create(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let mut p = q.clone();
    p.extend(kit::form(&body));
    let Some(user) = caller(&ctx, &headers, &p) else {
        return bad_token();
    };
    if id != user && id != "me" {
        return error(
            400,
            100,
            None,
            "THApiException",
            "Unsupported post request.",
        );
    }
    let g = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let text = g("text").to_owned();
    let carousel_item = g("is_carousel_item") == "true";
    if text_length(&text) > MAX_TEXT {
        return error(
            400,
            100,
            Some(4279009),
            "THApiException",
            "Param text must be at most 500 characters long.",
        );
    }
    let rc = g("reply_control");
    if !rc.is_empty()
        && ![
            "everyone",
            "accounts_you_follow",
            "mentioned_only",
            "parent_post_author_only",
            "followers_only",
        ]
        .contains(&rc)
    {
        return bad_param(
            "Param reply_control must be one of everyone, accounts_you_follow, mentioned_only.",
        );
    }
    let reply_to = Some(g("reply_to_id").to_owned()).filter(|r| !r.is_empty());
    if let Some(r) = &reply_to {
        let s = ctx.state.lock().expect("state");
        if !s.posts.iter().any(|x| &x.id == r) {
            return bad_param("Param reply_to_id is invalid: the post does not exist.");
        }
    }
    let media_type = g("media_type").to_owned();
    let (media, status, polls) = match media_type.as_str() {
        "TEXT" => {
            if text.trim().is_empty() || carousel_item {
                return bad_param("Param text is required for a TEXT post.");
            }
            (Vec::new(), ContainerStatus::Finished, 0)
        }
        "IMAGE" => {
            let url = g("image_url");
            if url.is_empty() {
                return bad_param("Param image_url is required for media_type IMAGE.");
            }
            match fetch(&ctx.http, url, MAX_IMAGE, false).await {
                Fetched::Ok(kind) => {
                    let polls = ctx.state.lock().expect("state").image_polls;
                    let status = if polls == 0 {
                        ContainerStatus::Finished
                    } else {
                        ContainerStatus::InProgress
                    };
                    (vec![kind], status, polls)
                }
                Fetched::Failed(why) => {
                    return error(
                        400,
                        100,
                        Some(2207052),
                        "THApiException",
                        &format!("Media download has failed: {why}"),
                    );
                }
            }
        }
        "VIDEO" => {
            let url = g("video_url");
            if url.is_empty() {
                return bad_param("Param video_url is required for media_type VIDEO.");
            }
            match fetch(&ctx.http, url, MAX_VIDEO, true).await {
                Fetched::Ok(kind) => {
                    let polls = ctx.state.lock().expect("state").video_polls;
                    let status = if polls == 0 {
                        ContainerStatus::Finished
                    } else {
                        ContainerStatus::InProgress
                    };
                    (vec![kind], status, polls)
                }
                // Videos are processed after the container exists: the failure is its status.
                Fetched::Failed(_) => (
                    Vec::new(),
                    ContainerStatus::Error("FAILED_DOWNLOADING_VIDEO".into()),
                    0,
                ),
            }
        }
        "CAROUSEL" => {
            if carousel_item {
                return bad_param("A carousel cannot be a carousel item.");
            }
            let ids: Vec<String> = g("children")
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            if !(2..=20).contains(&ids.len()) {
                return bad_param("Param children must list 2 to 20 carousel items.");
            }
            let mut s = ctx.state.lock().expect("state");
            let mut media = Vec::new();
            for cid in &ids {
                let Some(c) = s
                    .containers
                    .get(cid)
                    .filter(|c| c.owner == user && c.carousel_item)
                else {
                    return bad_param(&format!(
                        "Param children: {cid} is not a carousel item of this profile."
                    ));
                };
                if s.status_of(c) != "FINISHED" || c.used_in_carousel {
                    return bad_param(&format!(
                        "Param children: {cid} is not ready or already used."
                    ));
                }
                media.extend(c.media.clone());
            }
            for cid in &ids {
                if let Some(c) = s.containers.get_mut(cid) {
                    c.used_in_carousel = true;
                }
            }
            (media, ContainerStatus::Finished, 0)
        }
        _ => return bad_param("Param media_type must be one of TEXT, IMAGE, VIDEO, CAROUSEL."),
    };
    if carousel_item && reply_to.is_some() {
        return bad_param("A carousel item cannot be a reply.");
    }
    let mut s = ctx.state.lock().expect("state");
    let cid = s.id();
    let created_at = s.now();
    s.containers.insert(
        cid.clone(),
        Container {
            owner: user,
            text,
            reply_to,
            carousel_item,
            reply_control: Some(rc.to_owned()).filter(|r| !r.is_empty()),
            media,
            status,
            polls_left: polls,
            created_at,
            used_in_carousel: false,
        },
    );
    axum::Json(json!({"id": cid})).into_response()
}

/// `POST /{user-id}/threads_publish`: publishes a FINISHED container, once.
async fn publish(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let mut p = q.clone();
    p.extend(kit::form(&body));
    let Some(user) = caller(&ctx, &headers, &p) else {
        return bad_token();
    };
    if id != user && id != "me" {
        return error(
            400,
            100,
            None,
            "THApiException",
            "Unsupported post request.",
        );
    }
    let creation = p.get("creation_id").cloned().unwrap_or_default();
    let mut s = ctx.state.lock().expect("state");
    let Some(c) = s
        .containers
        .get(&creation)
        .filter(|c| c.owner == user && !c.carousel_item)
        .cloned()
    else {
        return bad_param("Param creation_id is not a media container of this profile.");
    };
    match s.status_of(&c) {
        "FINISHED" => {}
        "PUBLISHED" => return bad_param("The media container has already been published."),
        "EXPIRED" => {
            return bad_param("The media container has expired (not published within 24 hours).");
        }
        "IN_PROGRESS" => {
            return error(
                400,
                24,
                Some(4279009),
                "THApiException",
                "The media is not ready to be published; wait for its status to be FINISHED.",
            );
        }
        _ => return bad_param("The media container failed processing and cannot be published."),
    }
    let replies = c.reply_to.is_some();
    let (used, quota) = (
        s.used(&user, replies),
        if replies { REPLY_QUOTA } else { POST_QUOTA },
    );
    if used >= quota {
        return error(
            400,
            4,
            Some(2207042),
            "THApiException",
            "The profile has reached its publishing limit for the last 24 hours.",
        );
    }
    if let Some(r) = &c.reply_to
        && !s.posts.iter().any(|x| &x.id == r)
    {
        return bad_param("Param reply_to_id is invalid: the post does not exist.");
    }
    let media_id = s.id();
    let now = s.now();
    s.posts.push(Post {
        id: media_id.clone(),
        owner: user,
        text: c.text.clone(),
        reply_to: c.reply_to.clone(),
        media: c.media.clone(),
        reply_control: c.reply_control.clone(),
        timestamp: now,
        shortcode: kit::random(8).replace(['-', '_'], "x"),
        likes: 0,
        views: 0,
    });
    if let Some(c) = s.containers.get_mut(&creation) {
        c.status = ContainerStatus::Published;
    }
    axum::Json(json!({"id": media_id})).into_response()
}

// ---------------------------------------------------------------------------------------------
// The conformance suite's view
// ---------------------------------------------------------------------------------------------

fn graph_fault(
    method: &'static str,
    path: &str,
    status: u16,
    code: i64,
    kind: &str,
    message: &str,
) -> Fault {
    Fault::status(
        method,
        path,
        status,
        json!({"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}}),
    )
}

#[async_trait::async_trait]
impl FakeNetwork for ThreadsFake {
    fn platform(&self) -> &'static str {
        crier_networks::threads::PLATFORM
    }

    fn base(&self) -> url::Url {
        self.base.clone()
    }

    fn connector(&self, clock: Arc<dyn Clock>) -> Arc<dyn Network> {
        Arc::new(crier_networks::threads::Threads::new(
            crate::kit::test_config(self.base()),
            clock,
        ))
    }

    fn features(&self) -> Features {
        Features {
            text: true,
            threads: true,
            images: true,
            video: true,
        }
    }

    fn posts(&self) -> Vec<FakePost> {
        let s = self.state.lock().expect("state");
        s.posts
            .iter()
            .filter(|p| !p.text.starts_with("elsewhere "))
            .map(|p| FakePost {
                id: p.id.clone(),
                author: p.owner.clone(),
                text: p.text.clone(),
                reply_to: p.reply_to.clone(),
                media: p.media.clone(),
            })
            .collect()
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn publish_call(&self) -> (&'static str, String) {
        ("POST", format!("/v1.0/{USER_ID}/threads_publish"))
    }

    fn rate_limited(&self, reset_secs: u64) -> Fault {
        let (m, path) = self.publish_call();
        let minutes = reset_secs.div_ceil(60);
        let usage = json!({ USER_ID: [{
            "type": "threads",
            "call_count": 100,
            "total_cputime": 40,
            "total_time": 60,
            "estimated_time_to_regain_access": minutes,
        }]});
        graph_fault(
            m,
            &path,
            400,
            4,
            "OAuthException",
            "(#4) Application request limit reached",
        )
        .header("x-business-use-case-usage", usage.to_string())
    }

    fn documented_errors(&self) -> Vec<(Fault, &'static str)> {
        let (m, p) = self.publish_call();
        vec![
            (
                graph_fault(
                    m,
                    &p,
                    401,
                    190,
                    "OAuthException",
                    "Error validating access token: Session has expired.",
                ),
                "account_disconnected",
            ),
            (
                graph_fault(
                    m,
                    &p,
                    403,
                    10,
                    "OAuthException",
                    "(#10) Application does not have permission for this action",
                ),
                "account_disconnected",
            ),
            (
                graph_fault(m, &p, 400, 100, "THApiException", "Invalid parameter"),
                "network_rejected",
            ),
            (
                graph_fault(
                    m,
                    &p,
                    400,
                    368,
                    "OAuthException",
                    "The action attempted has been deemed abusive or is otherwise disallowed",
                ),
                "network_rejected",
            ),
            (
                graph_fault(
                    m,
                    &p,
                    400,
                    4,
                    "OAuthException",
                    "(#4) Application request limit reached",
                ),
                "network_rate_limited",
            ),
            (
                graph_fault(
                    m,
                    &p,
                    500,
                    2,
                    "OAuthException",
                    "An unexpected error has occurred. Please retry your request later.",
                ),
                "network_unavailable",
            ),
            (
                graph_fault(m, &p, 500, 1, "OAuthException", "An unknown error occurred"),
                "network_unavailable",
            ),
        ]
    }

    fn revoke_access(&self) {
        self.oauth.revoke_user(USER_ID);
        self.state
            .lock()
            .expect("state")
            .long_tokens
            .retain(|_, (u, _)| u != USER_ID);
    }

    fn set_followers(&self, n: u64) {
        self.state.lock().expect("state").followers = n;
    }

    fn like(&self, id: &str, n: u64) {
        let mut s = self.state.lock().expect("state");
        if let Some(p) = s.posts.iter_mut().find(|p| p.id == id) {
            p.likes += n;
            p.views += n * 10;
        }
    }
}
